// SPDX-License-Identifier: GPL-2.0
/*
 * BB84 link simulator (model in qkd/bb84sim.h). This stands in for the
 * quantum hardware, so it uses a fast seeded generator (xoshiro256**), not
 * qkd_random(): runs must be reproducible from a seed, and nothing it
 * produces is secret in the real system's sense.
 */
#include <math.h>
#include <string.h>

#include "qkd/bb84sim.h"
#include "qkd/raw.h"

struct xoshiro {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t xo_next(struct xoshiro *g)
{
	uint64_t *s = g->s, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static void xo_seed(struct xoshiro *g, uint64_t seed, uint64_t key_id)
{
	uint64_t x = seed ^ (key_id * 0xd1342543de82ef95ull);

	/* Mix the key id through twice so neighbouring frames are unrelated. */
	x = splitmix64(&x) ^ key_id;
	for (int i = 0; i < 4; i++)
		g->s[i] = splitmix64(&x);
}

/* Probability as a 53-bit threshold: event iff (r >> 11) < thr. */
static inline uint64_t thr53(double p)
{
	if (p <= 0)
		return 0;
	if (p >= 1)
		return 1ull << 53;
	return (uint64_t)(p * 9007199254740992.0);
}

double qkd_sim_eta(double km, double db_per_km, double bob_efficiency)
{
	return pow(10.0, -km * db_per_km / 10.0) * bob_efficiency;
}

static double click(double lambda, double dark)
{
	return 1.0 - (1.0 - dark) * exp(-lambda);
}

/*
 * Click outcome thresholds for one basis relation. The two detectors click
 * independently with probabilities p (the one the photon's bit points to in
 * Bob's basis, "right") and q ("wrong"); one 53-bit uniform draw U picks the
 * joint outcome: both if U < t_both, right only if U < t_right, wrong only if
 * U < t_wrong, else none. Same distribution as two draws, half the work.
 */
struct clicks {
	uint64_t t_both, t_right, t_wrong;
};

static struct clicks clicks_for(double p, double q)
{
	struct clicks c;

	c.t_both = thr53(p * q);
	c.t_right = thr53(p * q + p * (1 - q));
	c.t_wrong = thr53(p * q + p * (1 - q) + (1 - p) * q);
	return c;
}

void qkd_sim_frame(const struct qkd_sim_params *p, uint64_t key_id, uint64_t slots,
		   uint8_t *alice, uint8_t *bob, struct qkd_sim_truth *truth)
{
	double lambda = p->mu * p->eta;
	const struct clicks rel[2] = {
		/* [0]: bases match, [1]: they differ (either detector with 1/2) */
		clicks_for(click(lambda * (1.0 - p->misalign), p->dark),
			   click(lambda * p->misalign, p->dark)),
		clicks_for(click(lambda / 2, p->dark), click(lambda / 2, p->dark)),
	};
	struct qkd_sim_truth t = { .slots = slots };
	struct xoshiro g;
	uint64_t r = 0;
	unsigned have = 0;

	xo_seed(&g, p->seed, key_id);
	for (uint64_t i = 0; i < slots; i++) {
		unsigned a_bit, a_basis, b_basis, c_right, c_wrong, d0, d1;
		const struct clicks *c;
		uint64_t u;
		uint8_t b = 0;

		/* Three fair bits per slot from a shared 64-bit word. */
		if (have < 3) {
			r = xo_next(&g);
			have = 64;
		}
		a_bit = r & 1;
		a_basis = (r >> 1) & 1;
		b_basis = (r >> 2) & 1;
		r >>= 3;
		have -= 3;

		c = &rel[a_basis != b_basis];
		u = xo_next(&g) >> 11;
		c_right = u < c->t_right;
		c_wrong = u < c->t_both || (u >= c->t_right && u < c->t_wrong);
		/* Detector d0 is the one for bit 0 in Bob's basis. */
		d0 = a_bit ? c_wrong : c_right;
		d1 = a_bit ? c_right : c_wrong;

		alice[i] = (uint8_t)(QKD_RAW_DETECTED | (a_basis ? QKD_RAW_BASIS : 0) |
				     (a_bit ? QKD_RAW_VALUE : 0));
		if (d0 | d1) {
			unsigned v = d1;

			b = QKD_RAW_DETECTED | (b_basis ? QKD_RAW_BASIS : 0);
			if (d0 & d1) {
				b |= QKD_RAW_MULTI;
				v = xo_next(&g) >> 63;
				t.multi++;
			}
			b |= v ? QKD_RAW_VALUE : 0;
			t.detected++;
			if (a_basis == b_basis) {
				t.sifted++;
				t.errors += v != a_bit;
			}
		}
		bob[i] = b;
	}
	if (truth)
		*truth = t;
}

double qkd_sim_expected_detection(const struct qkd_sim_params *p)
{
	double l = p->mu * p->eta;
	double pm = 1 - (1 - click(l * (1 - p->misalign), p->dark)) *
			    (1 - click(l * p->misalign, p->dark));
	double pn = 1 - (1 - click(l / 2, p->dark)) * (1 - click(l / 2, p->dark));

	return (pm + pn) / 2;
}

double qkd_sim_expected_qber(const struct qkd_sim_params *p)
{
	double l = p->mu * p->eta;
	double pr = click(l * (1 - p->misalign), p->dark);
	double pw = click(l * p->misalign, p->dark);
	/* Error: only the wrong detector, or both (then half the time). */
	double err = (1 - pr) * pw + 0.5 * pr * pw;
	double det = 1 - (1 - pr) * (1 - pw);

	return det > 0 ? err / det : 0;
}
