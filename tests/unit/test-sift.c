// SPDX-License-Identifier: GPL-2.0
/*
 * Sifting core and simulator: sifting keeps exactly the slots where Bob
 * detected and the bases match (checked against the simulator's ground truth
 * and against an independent scan of both raw frames), the wire messages
 * round-trip and malformed ones are refused, and the simulator's statistics
 * agree with its physical model.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "qkd/bb84sim.h"
#include "qkd/frame.h"
#include "qkd/poslist.h"
#include "qkd/raw.h"
#include "qkd/sift.h"

struct sifted {
	uint8_t *alice, *bob;
	uint64_t na, nb;
	struct qkd_sim_truth truth;
};

/* Run the whole sifting exchange in memory, exactly as qkd-sift does. */
static int run_sift(const struct qkd_sim_params *p, uint64_t key_id, uint64_t slots,
		    uint8_t *araw, uint8_t *braw, struct sifted *s)
{
	struct qkd_sift_det bd, ad;
	uint8_t *msg, *mask;
	size_t len;
	const char *err = NULL;
	int64_t matches;

	qkd_sim_frame(p, key_id, slots, araw, braw, &s->truth);
	if (qkd_sift_detections(braw, slots, &bd) || qkd_sift_encode(&bd, &msg, &len))
		return -1;
	if (qkd_sift_decode(msg, len, &ad, &err))
		return -2;
	mask = malloc(qkd_sift_mask_len(ad.n) + 1);
	matches = qkd_sift_match(araw, slots, &ad, mask, &err);
	if (matches < 0 || qkd_sift_check_mask(&bd, mask, qkd_sift_mask_len(bd.n), &err))
		return -3;
	s->alice = malloc(qkd_bits_to_bytes(ad.n) + 8);
	s->bob = malloc(qkd_bits_to_bytes(bd.n) + 8);
	s->na = qkd_sift_keep(araw, &ad, mask, s->alice);
	s->nb = qkd_sift_keep(braw, &bd, mask, s->bob);
	if ((int64_t)s->na != matches)
		return -4;
	free(mask);
	free(msg);
	qkd_sift_det_free(&ad);
	qkd_sift_det_free(&bd);
	return 0;
}

TEST(sifting_keeps_exactly_matching_detections)
{
	struct qkd_sim_params p = { .seed = 12345, .mu = 0.5, .eta = 0.2,
				    .misalign = 0.04, .dark = 1e-4 };
	const uint64_t slots = 200000;
	uint8_t *araw = malloc(slots), *braw = malloc(slots);

	for (uint64_t k = 0; k < 8; k++) {
		struct sifted s;
		uint64_t j = 0, errors = 0;

		ASSERT_EQ(0, run_sift(&p, 1000 + k, slots, araw, braw, &s));
		ASSERT_EQ(s.truth.sifted, s.na);
		ASSERT_EQ(s.truth.sifted, s.nb);
		ASSERT_EQ(s.truth.errors, qkd_bits_hamming(s.alice, s.bob, s.na));
		ASSERT_GT(s.na, 1000u);
		/* Independent scan: the j-th kept bit is the j-th matching slot. */
		for (uint64_t i = 0; i < slots; i++) {
			if (!(braw[i] & QKD_RAW_DETECTED) ||
			    ((araw[i] ^ braw[i]) & QKD_RAW_BASIS))
				continue;
			ASSERT_EQ(araw[i] & QKD_RAW_VALUE, qkd_bit_get(s.alice, j));
			ASSERT_EQ(braw[i] & QKD_RAW_VALUE, qkd_bit_get(s.bob, j));
			errors += (araw[i] ^ braw[i]) & QKD_RAW_VALUE;
			j++;
		}
		ASSERT_EQ(j, s.na);
		ASSERT_EQ(errors, s.truth.errors);
		/* Padding after the last key bit is zero. */
		for (uint64_t b = s.na; b < qkd_bits_to_bytes(s.na) * 8ull; b++)
			ASSERT_EQ(0, qkd_bit_get(s.alice, b));
		free(s.alice);
		free(s.bob);
	}
	free(araw);
	free(braw);
}

/*
 * The core works on 64 slots and 64 detections at a time: frame lengths
 * around those boundaries and detection densities from none to every slot,
 * against a plain per-slot scan (positions, bases, multi count, match mask,
 * kept bits, zero padding).
 */
TEST(sifting_at_every_density_and_length)
{
	static const uint64_t lengths[] = { 0, 1, 7, 63, 64, 65, 127, 128, 129, 4133 };
	static const unsigned density[] = { 0, 3, 22, 60, 100 }; /* percent detected */
	uint64_t rng = 0x9e3779b97f4a7c15ull;

	for (unsigned li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
		for (unsigned di = 0; di < sizeof(density) / sizeof(density[0]); di++) {
			uint64_t slots = lengths[li], n = 0, multi = 0, k = 0, matches = 0;
			uint8_t *a = malloc(slots + 1), *b = malloc(slots + 1), *mask, *ka, *kb;
			struct qkd_sift_det d;
			const char *err = NULL;

			for (uint64_t i = 0; i < slots; i++) {
				rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
				a[i] = QKD_RAW_DETECTED | (rng & 3);
				b[i] = (rng >> 8) & (QKD_RAW_VALUE | QKD_RAW_BASIS | QKD_RAW_MULTI);
				if ((rng >> 16) % 100 < density[di])
					b[i] |= QKD_RAW_DETECTED;
			}
			ASSERT_EQ(0, qkd_sift_detections(b, slots, &d));
			for (uint64_t i = 0; i < slots; i++) {
				if (!(b[i] & QKD_RAW_DETECTED))
					continue;
				ASSERT_LT(n, d.n);
				ASSERT_EQ(i, d.pos[n]);
				ASSERT_EQ(!!(b[i] & QKD_RAW_BASIS), qkd_bit_get(d.basis, n));
				multi += !!(b[i] & QKD_RAW_MULTI);
				n++;
			}
			ASSERT_EQ(n, d.n);
			ASSERT_EQ(multi, d.multi);
			mask = malloc(qkd_sift_mask_len(n) + 1);
			ka = malloc(qkd_bits_to_bytes(n) + 8);
			kb = malloc(qkd_bits_to_bytes(n) + 8);
			memset(mask, 0xff, qkd_sift_mask_len(n) + 1);
			memset(ka, 0xff, qkd_bits_to_bytes(n) + 8);
			memset(kb, 0xff, qkd_bits_to_bytes(n) + 8);
			ASSERT_LE(0, qkd_sift_match(a, slots, &d, mask, &err));
			ASSERT_EQ(0, qkd_sift_check_mask(&d, mask, qkd_sift_mask_len(n), &err));
			ASSERT_EQ(qkd_sift_keep(a, &d, mask, ka), qkd_sift_keep(b, &d, mask, kb));
			for (uint64_t j = 0; j < n; j++) {
				uint64_t i = d.pos[j];
				bool match = !((a[i] ^ b[i]) & QKD_RAW_BASIS);

				ASSERT_EQ(match, qkd_bit_get(mask, j));
				if (!match)
					continue;
				ASSERT_EQ(a[i] & QKD_RAW_VALUE, qkd_bit_get(ka, k));
				ASSERT_EQ(b[i] & QKD_RAW_VALUE, qkd_bit_get(kb, k));
				k++;
				matches++;
			}
			ASSERT_EQ(matches, qkd_sift_keep(a, &d, mask, ka));
			for (uint64_t bit = k; bit < qkd_bits_to_bytes(n) * 8ull; bit++) {
				ASSERT_EQ(0, qkd_bit_get(ka, bit));
				ASSERT_EQ(0, qkd_bit_get(kb, bit));
			}
			free(mask);
			free(ka);
			free(kb);
			qkd_sift_det_free(&d);
			free(a);
			free(b);
		}
	}
}

TEST(simulator_is_reproducible_per_key_id)
{
	struct qkd_sim_params p = { .seed = 7, .mu = 0.5, .eta = 0.1, .misalign = 0.02,
				    .dark = 1e-5 };
	uint8_t a1[4096], b1[4096], a2[4096], b2[4096];

	qkd_sim_frame(&p, 5, sizeof(a1), a1, b1, NULL);
	qkd_sim_frame(&p, 5, sizeof(a2), a2, b2, NULL);
	ASSERT_EQ(0, memcmp(a1, a2, sizeof(a1)));
	ASSERT_EQ(0, memcmp(b1, b2, sizeof(b1)));
	qkd_sim_frame(&p, 6, sizeof(a2), a2, b2, NULL);
	ASSERT_NE(0, memcmp(a1, a2, sizeof(a1)));
	p.seed = 8;
	qkd_sim_frame(&p, 5, sizeof(a2), a2, b2, NULL);
	ASSERT_NE(0, memcmp(a1, a2, sizeof(a1)));
}

/* Detection rate, basis balance and QBER agree with the model (6 sigma). */
TEST(simulator_statistics_match_model)
{
	const double qbers[] = { 0.0, 0.03, 0.08 };
	const uint64_t slots = 1000000;
	uint8_t *a = malloc(slots), *b = malloc(slots);

	for (unsigned q = 0; q < 3; q++) {
		struct qkd_sim_params p = { .seed = 99 + q, .mu = 0.6,
					    .eta = qkd_sim_eta(20, 0.2, 0.25),
					    .misalign = qbers[q], .dark = 1e-6 };
		struct qkd_sim_truth t;
		double pd = qkd_sim_expected_detection(&p), eq = qkd_sim_expected_qber(&p);
		double sd_det = sqrt(pd * (1 - pd) * slots);
		uint64_t zbasis = 0;

		qkd_sim_frame(&p, q, slots, a, b, &t);
		ASSERT_LT(fabs((double)t.detected - pd * slots), 6 * sd_det);
		/* Sifting keeps half the detections. */
		ASSERT_LT(fabs((double)t.sifted - t.detected / 2.0), 6 * sqrt(t.detected / 4.0));
		ASSERT_LT(fabs((double)t.errors - eq * t.sifted),
			  6 * sqrt(eq * (1 - eq) * t.sifted) + 1);
		for (uint64_t i = 0; i < slots; i++)
			zbasis += !(a[i] & QKD_RAW_BASIS);
		ASSERT_LT(fabs((double)zbasis - slots / 2.0), 6 * sqrt(slots / 4.0));
		if (qbers[q] == 0.0)
			ASSERT_LT(t.errors, t.sifted / 100);
	}
	free(a);
	free(b);
}

TEST(multi_clicks_occur_with_bright_pulses)
{
	struct qkd_sim_params p = { .seed = 3, .mu = 5, .eta = 0.5, .misalign = 0.05,
				    .dark = 0 };
	static uint8_t a[100000], b[100000];
	struct qkd_sim_truth t;
	struct qkd_sift_det d;
	uint64_t flagged = 0;

	double l = p.mu * p.eta, pr = 1 - exp(-l * (1 - p.misalign)), pw = 1 - exp(-l * p.misalign);
	double ph = 1 - exp(-l / 2), pm = 0.5 * pr * pw + 0.5 * ph * ph;
	double pd = 1 - 0.5 * (1 - pr) * (1 - pw) - 0.5 * (1 - ph) * (1 - ph);

	qkd_sim_frame(&p, 1, sizeof(a), a, b, &t);
	ASSERT_GT(t.multi, 1000u);
	/* Both detectors click independently: multi-click and detection rates. */
	ASSERT_LT(fabs((double)t.multi - pm * sizeof(a)), 6 * sqrt(pm * (1 - pm) * sizeof(a)));
	ASSERT_LT(fabs((double)t.detected - pd * sizeof(a)), 6 * sqrt(pd * (1 - pd) * sizeof(a)));
	for (size_t i = 0; i < sizeof(b); i++)
		flagged += (b[i] & (QKD_RAW_MULTI | QKD_RAW_DETECTED)) ==
			   (QKD_RAW_MULTI | QKD_RAW_DETECTED);
	ASSERT_EQ(t.multi, flagged);
	ASSERT_EQ(0, qkd_sift_detections(b, sizeof(b), &d));
	ASSERT_EQ(t.multi, d.multi);
	ASSERT_EQ(t.detected, d.n);
	qkd_sift_det_free(&d);
}

TEST(poslist_round_trip_and_limits)
{
	uint64_t pos[6] = { 0, 1, 127, 128, 1ull << 40, (1ull << 63) + 5 }, out[6];
	static const uint8_t wrap[11] = { 0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0xff, 0x01 };
	uint8_t buf[64];
	size_t len = qkd_poslist_encode(pos, 6, buf);

	ASSERT_EQ((ssize_t)len, qkd_poslist_decode(buf, len, 6, UINT64_MAX, out));
	ASSERT_EQ(0, memcmp(pos, out, sizeof(pos)));
	/* Limit enforced, truncation refused. */
	ASSERT_EQ(-EBADMSG, qkd_poslist_decode(buf, len, 6, 1ull << 40, out));
	ASSERT_EQ(-EBADMSG, qkd_poslist_decode(buf, len - 1, 6, UINT64_MAX, out));
	/* 42 as two bytes (0xaa 0x00) is not the minimal encoding: refused. */
	buf[0] = 0xaa;
	buf[1] = 0x00;
	ASSERT_EQ(-EBADMSG, qkd_poslist_decode(buf, 2, 1, UINT64_MAX, out));
	buf[0] = 0x2a;
	ASSERT_EQ(1, qkd_poslist_decode(buf, 1, 1, UINT64_MAX, out));
	ASSERT_EQ(42u, out[0]);
	/* A gap that would wrap around 2^64 after a first position of 5. */
	memcpy(buf, wrap, sizeof(wrap));
	ASSERT_EQ(-EBADMSG, qkd_poslist_decode(buf, sizeof(wrap), 2, UINT64_MAX, out));
}

TEST(malformed_announcements_are_refused)
{
	uint8_t raw[64] = { 0 }, araw[64] = { 0 }, *msg, mask[8];
	struct qkd_sift_det d, x;
	const char *err = NULL;
	size_t len;

	for (int i = 0; i < 64; i += 3)
		raw[i] = QKD_RAW_DETECTED | (i & 2 ? QKD_RAW_BASIS : 0);
	ASSERT_EQ(0, qkd_sift_detections(raw, 64, &d));
	ASSERT_EQ(0, qkd_sift_encode(&d, &msg, &len));
	ASSERT_EQ(0, qkd_sift_decode(msg, len, &x, &err));
	ASSERT_EQ(d.n, x.n);
	ASSERT_EQ(0, memcmp(d.pos, x.pos, d.n * sizeof(uint64_t)));
	/* Alice with a different frame length refuses. */
	ASSERT_EQ(-EPROTO, qkd_sift_match(araw, 63, &x, mask, &err));
	qkd_sift_det_free(&x);
	for (size_t l = 0; l < len; l++) {
		ASSERT_EQ(-EBADMSG, qkd_sift_decode(msg, l, &x, &err));
		ASSERT_NE(NULL, err);
	}
	ASSERT_EQ(-EBADMSG, qkd_sift_decode(msg, len + 1, &x, &err));
	/* n larger than slots */
	msg[8] = 65;
	ASSERT_EQ(-EBADMSG, qkd_sift_decode(msg, len, &x, &err));
	msg[8] = (uint8_t)d.n;
	/* slots too small for the last position */
	msg[0] = 60;
	ASSERT_EQ(-EBADMSG, qkd_sift_decode(msg, len, &x, &err));
	msg[0] = 64;
	/* padding bit in the basis bits (22 detections: 2 bits padding) */
	msg[len - 1] |= 0x80;
	ASSERT_EQ(-EBADMSG, qkd_sift_decode(msg, len, &x, &err));
	/* Bob refuses a mask of the wrong length or with padding set. */
	memset(mask, 0, sizeof(mask));
	ASSERT_EQ(-EBADMSG, qkd_sift_check_mask(&d, mask, 2, &err));
	mask[2] = 0x80;
	ASSERT_EQ(-EBADMSG, qkd_sift_check_mask(&d, mask, 3, &err));
	mask[2] = 0x01;
	ASSERT_EQ(0, qkd_sift_check_mask(&d, mask, 3, &err));
	free(msg);
	qkd_sift_det_free(&d);
}

TEST_HARNESS_MAIN
