// SPDX-License-Identifier: GPL-2.0
/*
 * Cascade sessions and their shuffles. Each pass p >= 1 permutes the frame
 * with a permutation drawn by Fisher-Yates from a generator keyed by the
 * session seed (agreed by both sides through the authenticated channel), the
 * frame length and p. Shuffles are public in Cascade, so the generator needs
 * to be deterministic and well mixed, not secret: xoshiro256** seeded through
 * splitmix64. Pass 0 is the identity: channel errors are independent of
 * position, and keeping pass 0 unshuffled saves a gather on both sides.
 *
 * Passes of two blocks need no permutation, only the random half that is the
 * first block (cascade_perm_half_mask).
 *
 * Shuffles are drawn once per pass for N = 2^j positions and restricted to a
 * frame's n <= N bits by keeping the entries below n (a uniformly random
 * permutation of n, cheap to derive); the restricted permutations are cached
 * for the last CACHE_SETS frame lengths still in use. Sifted frames rarely
 * have the same length twice, so the restriction runs once per frame and pass:
 * it is one sequential, branch-free scan of the base shuffle, and the inverse
 * is a rank query on the kept entries (only Bob asks, once per corrected bit
 * and pass) instead of an array of n random writes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cascade-internal.h"

#define CACHE_SETS 4

struct rng {
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

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

static void rng_init(struct rng *r, const uint8_t *seed, uint64_t n, unsigned pass)
{
	uint64_t x = n * 0xd1342543de82ef95ull + pass;

	for (int i = 0; i < 4; i++) {
		uint64_t w;

		memcpy(&w, seed + 8 * i, 8);
		x ^= w;
		r->s[i] = splitmix64(&x);
	}
}

/* Uniform in [0, range), Lemire's multiply-and-reject. */
static inline uint64_t rng_below(struct rng *r, uint64_t range)
{
	__uint128_t m = (__uint128_t)rng_next(r) * range;
	uint64_t lo = (uint64_t)m;

	if (lo < range) {
		uint64_t t = -range % range;

		while (lo < t) {
			m = (__uint128_t)rng_next(r) * range;
			lo = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

void cascade_seed_combine(const uint8_t alice[CASCADE_SEED_LEN], const uint8_t bob[CASCADE_SEED_LEN],
			  uint8_t seed[CASCADE_SEED_LEN])
{
	for (unsigned i = 0; i < CASCADE_SEED_LEN; i++)
		seed[i] = alice[i] ^ bob[i];
}

struct cascade_session *cascade_session_new(const uint8_t seed[CASCADE_SEED_LEN])
{
	struct cascade_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	memcpy(s->seed, seed, CASCADE_SEED_LEN);
	return s;
}

static void perm_set_free(struct cascade_perm_set *ps)
{
	for (unsigned p = 0; p < CASCADE_MAX_PASSES; p++) {
		free(ps->perm[p].fwd);
		free(ps->perm[p].keep);
		free(ps->perm[p].keep_rank);
		free(ps->perm[p].half_mask);
		free(ps->perm[p].rank1);
	}
	free(ps);
}

void cascade_session_free(struct cascade_session *s)
{
	if (!s)
		return;
	while (s->sets) {
		struct cascade_perm_set *ps = s->sets;

		s->sets = ps->next;
		perm_set_free(ps);
	}
	while (s->bases) {
		struct cascade_base *b = s->bases;

		s->bases = b->next;
		for (unsigned p = 0; p < CASCADE_MAX_PASSES; p++) {
			free(b->fwd[p]);
			free(b->inv[p]);
		}
		free(b);
	}
	explicit_bzero(s->seed, sizeof(s->seed));
	free(s);
}

struct cascade_perm_set *cascade_perm_get(struct cascade_session *s, uint64_t n)
{
	struct cascade_perm_set *ps, **pp;
	unsigned count = 0;

	for (pp = &s->sets; (ps = *pp); pp = &ps->next) {
		if (ps->n == n) {
			/* Move to the front: most recently used. */
			*pp = ps->next;
			ps->next = s->sets;
			s->sets = ps;
			ps->refs++;
			return ps;
		}
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return NULL;
	ps->n = n;
	ps->sess = s;
	ps->refs = 1;
	ps->next = s->sets;
	s->sets = ps;
	/* Drop unused sets beyond the cache size, least recently used last. */
	for (pp = &s->sets; (ps = *pp);) {
		if (++count > CACHE_SETS && !ps->refs) {
			*pp = ps->next;
			perm_set_free(ps);
			continue;
		}
		pp = &ps->next;
	}
	return s->sets;
}

void cascade_perm_put(struct cascade_session *s, struct cascade_perm_set *ps)
{
	if (ps && ps->refs)
		ps->refs--;
}

static struct cascade_base *base_of(struct cascade_session *s, uint64_t N)
{
	struct cascade_base *b;

	for (b = s->bases; b && b->N != N; b = b->next)
		;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		b->N = N;
		b->next = s->bases;
		s->bases = b;
	}
	return b;
}

/* The shuffle of pass p over N = 2^j positions, drawn on first use. */
static const uint32_t *base_pass(struct cascade_session *s, uint64_t N, unsigned p)
{
	struct cascade_base *b = base_of(s, N);
	struct rng r;
	uint32_t *f;

	if (!b)
		return NULL;
	if (b->fwd[p])
		return b->fwd[p];
	f = malloc(N * sizeof(uint32_t));
	if (!f)
		return NULL;
	for (uint64_t i = 0; i < N; i++)
		f[i] = (uint32_t)i;
	rng_init(&r, s->seed, N, p);
	for (uint64_t i = N - 1; i > 0; i--) {
		uint64_t j = rng_below(&r, i + 1);
		uint32_t t = f[i];

		f[i] = f[j];
		f[j] = t;
	}
	b->fwd[p] = f;
	return f;
}

/* The inverse of base_pass(s, N, p), built once per session on Bob's first ask. */
static const uint32_t *base_inverse(struct cascade_session *s, uint64_t N, unsigned p)
{
	const uint32_t *f = base_pass(s, N, p);
	struct cascade_base *b = base_of(s, N);
	uint32_t *inv;

	if (!f || !b)
		return NULL;
	if (b->inv[p])
		return b->inv[p];
	inv = malloc(N * sizeof(uint32_t));
	if (!inv)
		return NULL;
	for (uint64_t i = 0; i < N; i++)
		inv[f[i]] = (uint32_t)i;
	b->inv[p] = inv;
	return inv;
}

static uint64_t pow2_at_least(uint64_t n)
{
	uint64_t N = 1;

	while (N < n)
		N *= 2;
	return N;
}

const struct cascade_perm *cascade_perm_pass(struct cascade_perm_set *ps, const uint8_t *seed,
					     unsigned p)
{
	struct cascade_perm *pm;
	const uint32_t *base;
	uint64_t n = ps->n, N = pow2_at_least(n), j = 0, nw;

	if (p == 0 || p >= CASCADE_MAX_PASSES)
		return NULL;
	pm = &ps->perm[p];
	if (pm->fwd)
		return pm;
	base = base_pass(ps->sess, N, p);
	if (!base)
		return NULL;
	nw = cascade_words(N);
	/* One spare slot: the branch-free scan below writes one past the last kept entry. */
	pm->fwd = malloc((n + 1) * sizeof(uint32_t));
	pm->keep = malloc(nw * 8);
	pm->keep_rank = malloc((nw + 1) * sizeof(uint32_t));
	if (!pm->fwd || !pm->keep || !pm->keep_rank) {
		free(pm->fwd);
		free(pm->keep);
		free(pm->keep_rank);
		pm->fwd = NULL;
		pm->keep = NULL;
		pm->keep_rank = NULL;
		return NULL;
	}
	pm->keep_rank[0] = 0;
	for (uint64_t w = 0; w < nw; w++) {
		uint64_t bits = 0, end = N - 64 * w < 64 ? N - 64 * w : 64;

		for (uint64_t b = 0; b < end; b++) {
			uint32_t v = base[64 * w + b];
			uint64_t kept = v < n;

			pm->fwd[j] = v;
			j += kept;
			bits |= kept << b;
		}
		pm->keep[w] = bits;
		pm->keep_rank[w + 1] = (uint32_t)j;
	}
	return pm;
}

uint64_t cascade_perm_inv(struct cascade_perm_set *ps, unsigned p, uint64_t i)
{
	struct cascade_perm *pm = &ps->perm[p];
	uint64_t at;

	if (!pm->base_inv) {
		pm->base_inv = base_inverse(ps->sess, pow2_at_least(ps->n), p);
		if (!pm->base_inv)
			return (uint64_t)-1;
	}
	at = pm->base_inv[i];
	return pm->keep_rank[at >> 6] +
	       cascade_popcount(pm->keep[at >> 6] & ((1ull << (at & 63)) - 1));
}

/*
 * The first block of a two-block pass: a uniformly random set of exactly
 * 'half' positions, drawn directly (random words, then random positions
 * cleared or set until the count is right: by symmetry every set of that size
 * is equally likely), so these passes never need a permutation.
 */
const uint64_t *cascade_perm_half_mask(struct cascade_perm_set *ps, const uint8_t *seed,
				       unsigned p, uint64_t half)
{
	struct cascade_perm *pm = &ps->perm[p];
	uint64_t n = ps->n, nw = cascade_words(n), count = 0;
	struct rng r;

	if (p == 0 || p >= CASCADE_MAX_PASSES || half > n)
		return NULL;
	if (pm->half_mask && pm->half == half)
		return pm->half_mask;
	if (!pm->half_mask) {
		pm->half_mask = malloc(nw * 8);
		pm->rank1 = malloc((nw + 1) * sizeof(uint32_t));
		if (!pm->half_mask || !pm->rank1) {
			free(pm->half_mask);
			free(pm->rank1);
			pm->half_mask = NULL;
			pm->rank1 = NULL;
			return NULL;
		}
	}
	/* A stream of its own: (seed, n, p) with the top bit set. */
	rng_init(&r, seed, n, p | 0x80000000u);
	for (uint64_t w = 0; w < nw; w++) {
		/* A one-block pass (half == n) is the whole frame. */
		pm->half_mask[w] = half == n ? ~0ull : rng_next(&r);
		if (w == nw - 1 && n % 64)
			pm->half_mask[w] &= (1ull << (n % 64)) - 1;
		count += cascade_popcount(pm->half_mask[w]);
	}
	while (count != half) {
		uint64_t i = rng_below(&r, n);
		unsigned bit = cascade_bit(pm->half_mask, i);

		if ((count > half) == (bit == 1)) {
			cascade_flip(pm->half_mask, i);
			count = bit ? count - 1 : count + 1;
		}
	}
	pm->rank1[0] = 0;
	for (uint64_t w = 0; w < nw; w++)
		pm->rank1[w + 1] = pm->rank1[w] + cascade_popcount(pm->half_mask[w]);
	pm->half = half;
	return pm->half_mask;
}

/* Position of the r-th set bit of x (r < popcount(x)). */
static inline unsigned select64(uint64_t x, unsigned r)
{
	while (r--)
		x &= x - 1;
	return (unsigned)__builtin_ctzll(x);
}

uint64_t cascade_mask_select(const struct cascade_perm *pm, uint64_t n, unsigned blk, uint64_t r)
{
	uint64_t nw = cascade_words(n), lo = 0, hi = nw;

	/* Largest word w with rank(w) <= r, where rank counts members before word w. */
	while (hi - lo > 1) {
		uint64_t mid = (lo + hi) / 2;
		uint64_t rk = blk ? 64 * mid - pm->rank1[mid] : pm->rank1[mid];

		if (rk <= r)
			lo = mid;
		else
			hi = mid;
	}
	uint64_t rk = blk ? 64 * lo - pm->rank1[lo] : pm->rank1[lo];
	uint64_t w = blk ? ~pm->half_mask[lo] : pm->half_mask[lo];

	return 64 * lo + select64(w, (unsigned)(r - rk));
}

unsigned cascade_mask_parity(const uint64_t *key, const uint64_t *mask, unsigned blk, uint64_t a,
			     uint64_t e)
{
	uint64_t inv = blk ? ~0ull : 0, wa = a >> 6, we = e >> 6, x;

	if (wa == we)
		return (unsigned)__builtin_parityll(key[wa] & (mask[wa] ^ inv) &
						    (~0ull << (a & 63)) & (~0ull >> (63 - (e & 63))));
	x = key[wa] & (mask[wa] ^ inv) & (~0ull << (a & 63));
	for (uint64_t i = wa + 1; i < we; i++)
		x ^= key[i] & (mask[i] ^ inv);
	x ^= key[we] & (mask[we] ^ inv) & (~0ull >> (63 - (e & 63)));
	return (unsigned)__builtin_parityll(x);
}

void cascade_gather(uint64_t *out, const uint64_t *in, const uint32_t *fwd, uint64_t n)
{
	uint64_t full = n / 64, j = 0;

	for (uint64_t w = 0; w < full; w++) {
		uint64_t v = 0;

		for (unsigned b = 0; b < 64; b++, j++) {
			uint32_t s = fwd[j];

			v |= ((in[s >> 6] >> (s & 63)) & 1) << b;
		}
		out[w] = v;
	}
	if (j < n) {
		uint64_t v = 0;

		for (unsigned b = 0; j < n; b++, j++) {
			uint32_t s = fwd[j];

			v |= ((in[s >> 6] >> (s & 63)) & 1) << b;
		}
		out[full] = v;
	}
}
