// SPDX-License-Identifier: GPL-2.0
/*
 * Toeplitz hashing y = T(s) x over GF(2), T[i][j] = s[i - j + n - 1]
 * (definition and bit order in qkd/toeplitz.h).
 *
 * y[i] is the coefficient of z^(n-1+i) of S(z) X(z), so the fast path asks
 * the FFT multiplier for exactly those m bits of the product. The naive path
 * is the word-parallel matrix-vector product (64 matrix entries per AND), used
 * for small blocks where the FFT's fixed costs dominate, and as the baseline
 * of bench-pa. The reference is the definition written out bit by bit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/toeplitz.h"
#include "gf2poly-impl.h"

/* Below this many matrix entries (n m) the naive product is as fast (measured). */
#define NAIVE_MAX_ENTRIES (1ull << 14)

static inline int bit_at(const uint64_t *v, uint64_t i)
{
	return (int)((v[i / 64] >> (i % 64)) & 1);
}

static void clear_tail(uint64_t *out, uint64_t m)
{
	if (m % 64)
		out[m / 64] &= (1ull << (m % 64)) - 1;
}

void qkd_toeplitz_reference(uint64_t *out, const uint64_t *seed, const uint64_t *in,
			    uint64_t n, uint64_t m)
{
	memset(out, 0, ((m + 63) / 64) * sizeof(*out));
	for (uint64_t i = 0; i < m; i++) {
		int y = 0;

		for (uint64_t j = 0; j < n; j++)
			y ^= bit_at(seed, i - j + n - 1) & bit_at(in, j);
		out[i / 64] |= (uint64_t)y << (i % 64);
	}
}

/*
 * y[i] = parity(sum_j' r[j'] s[i + j']) with r[j'] = x[n - 1 - j']: the row i
 * of T read left to right is the seed window starting at bit i, reversed.
 */
static int toeplitz_naive(uint64_t *out, const uint64_t *seed, const uint64_t *in,
			  uint64_t n, uint64_t m)
{
	size_t nw = (size_t)((n + 63) / 64), sw = (size_t)((n + m - 1 + 63) / 64);
	uint64_t *r = calloc(nw, sizeof(*r)), *s = calloc(sw + 2, sizeof(*s));

	if (!r || !s) {
		free(r);
		free(s);
		return -ENOMEM;
	}
	for (uint64_t j = 0; j < n; j++)
		r[(n - 1 - j) / 64] |= (uint64_t)bit_at(in, j) << ((n - 1 - j) % 64);
	memcpy(s, seed, sw * sizeof(*s));
	if ((n + m - 1) % 64)
		s[sw - 1] &= (1ull << ((n + m - 1) % 64)) - 1;
	memset(out, 0, ((m + 63) / 64) * sizeof(*out));
	for (uint64_t i = 0; i < m; i++) {
		uint64_t acc = 0, q = i / 64;
		unsigned sh = i % 64;

		if (sh)
			for (size_t w = 0; w < nw; w++)
				acc ^= r[w] & ((s[q + w] >> sh) | (s[q + w + 1] << (64 - sh)));
		else
			for (size_t w = 0; w < nw; w++)
				acc ^= r[w] & s[q + w];
		out[i / 64] |= (uint64_t)__builtin_parityll(acc) << sh;
	}
	explicit_bzero(r, nw * sizeof(*r));
	explicit_bzero(s, (sw + 2) * sizeof(*s));
	free(r);
	free(s);
	return 0;
}

int qkd_toeplitz_hash_method(uint64_t *out, const uint64_t *seed, const uint64_t *in,
			     uint64_t n, uint64_t m, enum qkd_toeplitz_method method)
{
	int ret;

	if (!n || !m || n > QKD_TOEPLITZ_MAX_BITS || m > QKD_TOEPLITZ_MAX_BITS)
		return -EINVAL;
	if (method == QKD_TOEPLITZ_AUTO)
		method = n * m <= NAIVE_MAX_ENTRIES ? QKD_TOEPLITZ_NAIVE : QKD_TOEPLITZ_FFT;
	switch (method) {
	case QKD_TOEPLITZ_NAIVE:
		return toeplitz_naive(out, seed, in, n, m);
	case QKD_TOEPLITZ_FFT:
		ret = qkd_gf2poly_product_bits(out, n - 1, m, seed, n + m - 1, in, n);
		if (!ret)
			clear_tail(out, m);
		return ret;
	default:
		return -EINVAL;
	}
}

int qkd_toeplitz_hash(uint64_t *out, const uint64_t *seed, const uint64_t *in,
		      uint64_t n, uint64_t m)
{
	return qkd_toeplitz_hash_method(out, seed, in, n, m, QKD_TOEPLITZ_AUTO);
}
