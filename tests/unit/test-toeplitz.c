// SPDX-License-Identifier: GPL-2.0
/*
 * Toeplitz hashing and the GF(2)[x] multiplier behind it: the fast product
 * (additive FFT, every arithmetic backend this CPU has) must equal the O(n m)
 * matrix-vector product on random cases of many sizes: tiny, odd, powers of
 * two and their neighbours, m < n and m > n. The bit-by-bit reference is
 * checked against a hand-computed matrix so the convention itself is pinned.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kselftest_harness.h"
#include "qkd/toeplitz.h"

static uint64_t *rand_bits(uint64_t bits)
{
	size_t words = (size_t)((bits + 63) / 64) + 1;
	uint64_t *p = malloc(words * 8);

	if (p && getrandom(p, words * 8, 0) != (ssize_t)(words * 8)) {
		free(p);
		return NULL;
	}
	return p;
}

static size_t words_of(uint64_t bits)
{
	return (size_t)((bits + 63) / 64);
}

/* Small xorshift for sizes: reproducible sweeps, random content via getrandom. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Compare FFT and naive (and optionally the bit-level reference) on one case. */
static int check_case(uint64_t n, uint64_t m, int with_reference)
{
	uint64_t *s = rand_bits(n + m - 1), *x = rand_bits(n);
	size_t w = words_of(m) + 1;
	uint64_t *a = calloc(w, 8), *b = calloc(w, 8), *c = calloc(w, 8);
	int ok = s && x && a && b && c;

	/* garbage beyond the last output bit must be cleared, not kept */
	if (ok) {
		memset(b, 0xa5, w * 8);
		memset(c, 0x5a, w * 8);
	}
	if (ok)
		ok = !qkd_toeplitz_hash_method(a, s, x, n, m, QKD_TOEPLITZ_NAIVE) &&
		     !qkd_toeplitz_hash_method(b, s, x, n, m, QKD_TOEPLITZ_FFT) &&
		     !memcmp(a, b, words_of(m) * 8);
	if (ok && with_reference) {
		qkd_toeplitz_reference(c, s, x, n, m);
		ok = !memcmp(a, c, words_of(m) * 8);
	}
	if (!ok)
		fprintf(stderr, "# mismatch at n=%llu m=%llu\n", (unsigned long long)n,
			(unsigned long long)m);
	free(s);
	free(x);
	free(a);
	free(b);
	free(c);
	return ok;
}

TEST(reference_matches_hand_computed_matrix)
{
	/* n = 3, m = 2: T = [[s2 s1 s0], [s3 s2 s1]] */
	uint64_t seed = 0x6; /* s1 = s2 = 1 */
	uint64_t x, y;

	x = 0x1; /* x0 */
	qkd_toeplitz_reference(&y, &seed, &x, 3, 2);
	ASSERT_EQ(0x1ull, y); /* y0 = s2, y1 = s3 */
	x = 0x4; /* x2 */
	qkd_toeplitz_reference(&y, &seed, &x, 3, 2);
	ASSERT_EQ(0x2ull, y); /* y0 = s0, y1 = s1 */
	x = 0x7;
	qkd_toeplitz_reference(&y, &seed, &x, 3, 2);
	ASSERT_EQ(0x0ull, y); /* y0 = s2^s1^s0 = 0, y1 = s3^s2^s1 = 0 */
	ASSERT_EQ(0, qkd_toeplitz_hash_method(&y, &seed, &x, 3, 2, QKD_TOEPLITZ_FFT));
	ASSERT_EQ(0x0ull, y);
	x = 0x1;
	ASSERT_EQ(0, qkd_toeplitz_hash_method(&y, &seed, &x, 3, 2, QKD_TOEPLITZ_FFT));
	ASSERT_EQ(0x1ull, y);
}

TEST(bad_sizes_are_refused)
{
	uint64_t s[2] = { 0 }, x[2] = { 0 }, y[2];

	ASSERT_EQ(-EINVAL, qkd_toeplitz_hash(y, s, x, 0, 4));
	ASSERT_EQ(-EINVAL, qkd_toeplitz_hash(y, s, x, 4, 0));
	ASSERT_EQ(-EINVAL, qkd_toeplitz_hash(y, s, x, QKD_TOEPLITZ_MAX_BITS + 1, 4));
	ASSERT_EQ(-EINVAL, qkd_gf2poly_mul(y, s, 0, x, 3));
}

TEST(tiny_sizes_all_backends)
{
	for (int lvl = 2; lvl >= 0; lvl--) {
		const char *name = qkd_gf2poly_force_backend(lvl);

		for (uint64_t n = 1; n <= 70; n += (n < 10 ? 1 : 7))
			for (uint64_t m = 1; m <= 70; m += (m < 10 ? 1 : 9))
				ASSERT_TRUE(check_case(n, m, 1)) TH_LOG("backend %s", name);
	}
	qkd_gf2poly_force_backend(0);
}

TEST(random_sizes_against_reference)
{
	for (int lvl = 2; lvl >= 0; lvl--) {
		const char *name = qkd_gf2poly_force_backend(lvl);

		for (int i = 0; i < 60; i++) {
			uint64_t n = 1 + next_rand() % 1500, m = 1 + next_rand() % 1500;

			ASSERT_TRUE(check_case(n, m, 1)) TH_LOG("backend %s", name);
		}
	}
	qkd_gf2poly_force_backend(0);
}

TEST(powers_of_two_and_neighbours)
{
	/* Sizes around the FFT's own boundaries: pieces of 32 bits, 2^k points. */
	static const uint64_t base[] = { 32, 64, 1024, 4096, 16384, 65536 };

	for (int lvl = 1; lvl >= 0; lvl--) {
		const char *name = qkd_gf2poly_force_backend(lvl);

		for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
			for (int d = -1; d <= 1; d++) {
				uint64_t n = base[i] + d;

				ASSERT_TRUE(check_case(n, n / 2 + 1, 0)) TH_LOG("%s", name);
				ASSERT_TRUE(check_case(n, n, 0)) TH_LOG("%s", name);
				ASSERT_TRUE(check_case(n / 3 + 1, n, 0)) TH_LOG("%s", name);
			}
	}
	qkd_gf2poly_force_backend(0);
}

TEST(middle_product_with_wrap_around)
{
	/*
	 * For many (n, m) the FFT uses fewer points than the full product needs
	 * and lets the product wrap into its bottom, which a Toeplitz hash
	 * discards. Sweep sizes where that happens, right up to the boundary.
	 */
	for (int i = 0; i < 40; i++) {
		uint64_t n = (1u << 13) + next_rand() % (1u << 17);
		uint64_t m = n / 4 + next_rand() % (n - n / 4);

		if (n * m > (1ull << 31))
			m = (1ull << 31) / n;
		ASSERT_TRUE(check_case(n, m, 0));
	}
	/* (n, m) where the wrapped part ends exactly below the first piece used */
	static const uint64_t tight[][2] = {
		{ 140, 280 },
		{ 215, 215 },
		{ 281, 140 },
		{ 293, 147 },
		{ 323, 107 },
		{ 357, 71 },
		{ 739, 739 },
		{ 751, 750 },
		{ 990, 496 },
		{ 1003, 501 },
		{ 1126, 375 },
		{ 1247, 249 },
		{ 4051, 4051 },
		{ 4063, 4062 },
		{ 5409, 2705 },
		{ 6074, 2024 },
		{ 6112, 2037 },
		{ 6772, 1354 },
		{ 12267, 12266 },
		{ 16346, 8174 },
		{ 16359, 8179 },
		{ 18397, 6132 },
		{ 20439, 4087 },
		{ 40947, 81894 },
		{ 61419, 61418 }
	};
	for (size_t i = 0; i < sizeof(tight) / sizeof(tight[0]); i++) {
		ASSERT_TRUE(check_case(tight[i][0], tight[i][1],
				       tight[i][0] * tight[i][1] < (1u << 22)));
		/* one more output bit needs one more piece: still right */
		ASSERT_TRUE(check_case(tight[i][0], tight[i][1] + 1, 0));
	}
}

TEST(large_odd_sizes)
{
	ASSERT_TRUE(check_case(200003, 77777, 0));
	ASSERT_TRUE(check_case(131071, 1, 0));
	ASSERT_TRUE(check_case(1, 50001, 0));
	ASSERT_TRUE(check_case(98765, 98765, 0));
}

/* Output bit i recomputed alone: the (n, 1) hash of the seed window at bit i. */
static int row_agrees(const uint64_t *out, const uint64_t *seed, const uint64_t *in,
		      uint64_t n, uint64_t m, uint64_t i)
{
	size_t ww = (size_t)(n / 64) + 2, sw = words_of(n + m - 1);
	uint64_t *win = calloc(ww, 8), bit = 0, q = i / 64;
	unsigned sh = i % 64;
	int ok;

	for (size_t w = 0; w < ww; w++) {
		uint64_t lo = q + w < sw ? seed[q + w] : 0, hi = q + w + 1 < sw ? seed[q + w + 1] : 0;

		win[w] = sh ? (lo >> sh) | (hi << (64 - sh)) : lo;
	}
	ok = !qkd_toeplitz_hash_method(&bit, win, in, n, 1, QKD_TOEPLITZ_NAIVE) &&
	     (bit & 1) == ((out[i / 64] >> (i % 64)) & 1);
	free(win);
	return ok;
}

TEST(large_blocks_reuse_work_arrays)
{
	/* 2^23-bit blocks use 4 MiB work arrays, which are kept between calls */
	for (int t = 0; t < 2; t++) {
		uint64_t n = (1u << 23) + 13 * t, m = n / 2 + t;
		uint64_t *s = rand_bits(n + m - 1), *x = rand_bits(n), *y = calloc(words_of(m), 8);

		ASSERT_NE(NULL, y);
		ASSERT_EQ(0, qkd_toeplitz_hash(y, s, x, n, m));
		for (int r = 0; r < 24; r++) {
			uint64_t i = r == 0 ? 0 : r == 1 ? m - 1 : next_rand() % m;

			ASSERT_TRUE(row_agrees(y, s, x, n, m, i)) TH_LOG("row %llu", (unsigned long long)i);
		}
		free(s);
		free(x);
		free(y);
	}
	qkd_gf2poly_release_cache();
}

/* Random bits in exactly ceil(bits / 64) words: no slack for a stray access to hide in. */
static uint64_t *exact_bits(uint64_t bits)
{
	size_t words = words_of(bits);
	uint64_t *p = malloc(words * 8);

	if (p && getrandom(p, words * 8, 0) != (ssize_t)(words * 8)) {
		free(p);
		return NULL;
	}
	return p;
}

/*
 * Blocks one after another in one process, as qkd-pa hashes them: lengths that
 * vary from block to block (odd, as sifting leaves them), outputs shorter and
 * longer than half the input, seeds that fill their last word exactly or
 * spill one bit into a new one, and large blocks of different sizes around
 * them that take, replace and reuse the cached work arrays. Seed, input and
 * output are exactly as long as the definition says (as qkd-pa allocates
 * them), so the sanitizer build sees any access past them.
 */
TEST(block_sequence_exact_buffers)
{
	static const uint64_t seq[][2] = {
		{ 116001, 52000 }, { 86, 43 }, { 115713, 50240 }, { 115713, 50239 },
		{ 1, 1 }, { 113, 16 }, { (1u << 23) + 13, (1u << 22) + 7 },
		{ 99999, 99999 }, { 5718, 2859 }, { (1u << 24) - 3, 4097 },
		{ 131071, 128 }, { (1u << 23) - 1, (1u << 22) + 1 }, { 116001, 52000 },
	};

	for (size_t c = 0; c < sizeof(seq) / sizeof(seq[0]); c++) {
		uint64_t n = seq[c][0], m = seq[c][1];
		uint64_t *s = exact_bits(n + m - 1), *x = exact_bits(n);
		uint64_t *y = malloc(words_of(m) * 8), *z = malloc(words_of(m) * 8);

		ASSERT_NE(NULL, s);
		ASSERT_NE(NULL, x);
		ASSERT_NE(NULL, y);
		ASSERT_NE(NULL, z);
		memset(y, 0xa5, words_of(m) * 8);
		ASSERT_EQ(0, qkd_toeplitz_hash(y, s, x, n, m));
		if (n * m <= (1ull << 33)) {
			ASSERT_EQ(0, qkd_toeplitz_hash_method(z, s, x, n, m, QKD_TOEPLITZ_NAIVE));
			ASSERT_EQ(0, memcmp(y, z, words_of(m) * 8))
				TH_LOG("n %llu m %llu", (unsigned long long)n, (unsigned long long)m);
		} else {
			for (int r = 0; r < 16; r++) {
				uint64_t i = r == 0 ? 0 : r == 1 ? m - 1 : next_rand() % m;

				ASSERT_TRUE(row_agrees(y, s, x, n, m, i))
					TH_LOG("n %llu m %llu row %llu", (unsigned long long)n,
					       (unsigned long long)m, (unsigned long long)i);
			}
		}
		free(s);
		free(x);
		free(y);
		free(z);
	}
	qkd_gf2poly_release_cache();
}

TEST(auto_method_agrees)
{
	for (int i = 0; i < 20; i++) {
		uint64_t n = 1 + next_rand() % 20000, m = 1 + next_rand() % 20000;
		uint64_t *s = rand_bits(n + m - 1), *x = rand_bits(n);
		uint64_t *a = calloc(words_of(m), 8), *b = calloc(words_of(m), 8);

		ASSERT_NE(NULL, b);
		ASSERT_EQ(0, qkd_toeplitz_hash(a, s, x, n, m));
		ASSERT_EQ(0, qkd_toeplitz_hash_method(b, s, x, n, m, QKD_TOEPLITZ_NAIVE));
		ASSERT_EQ(0, memcmp(a, b, words_of(m) * 8));
		free(s);
		free(x);
		free(a);
		free(b);
	}
}

TEST(polynomial_product_against_schoolbook)
{
	for (int lvl = 2; lvl >= 0; lvl--) {
		qkd_gf2poly_force_backend(lvl);
		for (int i = 0; i < 40; i++) {
			uint64_t na = 1 + next_rand() % (lvl == 2 ? 30000 : 100000);
			uint64_t nb = 1 + next_rand() % (i < 20 ? 300 : 60000);
			uint64_t nc = na + nb - 1;
			uint64_t *a = rand_bits(na), *b = rand_bits(nb);
			uint64_t *c = malloc(words_of(nc) * 8), *d = malloc(words_of(nc) * 8);

			ASSERT_NE(NULL, d);
			ASSERT_EQ(0, qkd_gf2poly_mul(c, a, na, b, nb));
			qkd_gf2poly_mul_schoolbook(d, a, na, b, nb);
			ASSERT_EQ(0, memcmp(c, d, words_of(nc) * 8))
				TH_LOG("na=%llu nb=%llu", (unsigned long long)na,
				       (unsigned long long)nb);
			free(a);
			free(b);
			free(c);
			free(d);
		}
	}
	qkd_gf2poly_force_backend(0);
}

TEST(schoolbook_small_known_product)
{
	/* (1 + x)(1 + x) = 1 + x^2; (x^63)(x^63) = x^126 */
	uint64_t a = 3, c[2];
	uint64_t h[1] = { 1ull << 63 };

	qkd_gf2poly_mul_schoolbook(c, &a, 2, &a, 2);
	ASSERT_EQ(5ull, c[0]);
	qkd_gf2poly_mul_schoolbook(c, h, 64, h, 64);
	ASSERT_EQ(0ull, c[0]);
	ASSERT_EQ(1ull << 62, c[1]);
}

TEST_HARNESS_MAIN
