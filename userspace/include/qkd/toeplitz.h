/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Toeplitz hashing over GF(2) for privacy amplification, and the fast GF(2)[x]
 * multiplication behind it.
 *
 * Bit vectors are packed LSB-first in 64-bit words, exactly like frame
 * payloads on little-endian machines: bit i is (w[i / 64] >> (i % 64)) & 1.
 *
 * The Toeplitz matrix T (m rows, n columns) is defined by a seed s of
 * n + m - 1 bits:
 *
 *	T[i][j] = s[i - j + n - 1]	(0 <= i < m, 0 <= j < n)
 *
 * so the first column (from the bottom row up) and the first row (from right
 * to left) are read off the seed, and the output is y = T x:
 *
 *	y[i] = XOR_{j=0}^{n-1} s[i - j + n - 1] & x[j]
 *
 * Seen as polynomials S(z) = sum s[k] z^k and X(z) = sum x[j] z^j, y[i] is the
 * coefficient of z^(n-1+i) in S(z) X(z): the "middle product". This is how the
 * fast path computes it (additive FFT over GF(2^64), see
 * Documentation/privacy-amplification.md).
 */
#ifndef QKD_TOEPLITZ_H
#define QKD_TOEPLITZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest input or seed accepted, in bits (2^31: a whole frame payload). */
#define QKD_TOEPLITZ_MAX_BITS (1ull << 31)

static inline uint64_t qkd_toeplitz_seed_bits(uint64_t n, uint64_t m)
{
	return n + m - 1;
}

enum qkd_toeplitz_method {
	QKD_TOEPLITZ_AUTO = 0,	/* pick the fastest for the size */
	QKD_TOEPLITZ_NAIVE,	/* O(n m / 64) word-parallel matrix-vector product */
	QKD_TOEPLITZ_FFT,	/* middle product through qkd_gf2poly_mul */
};

/*
 * out (m bits, ceil(m / 64) words; padding bits cleared) = T(seed) * in,
 * in has n bits, seed n + m - 1 bits (bits beyond are ignored).
 * 0, -EINVAL for n or m of 0 or over QKD_TOEPLITZ_MAX_BITS, -ENOMEM.
 */
int qkd_toeplitz_hash(uint64_t *out, const uint64_t *seed, const uint64_t *in,
		      uint64_t n, uint64_t m);
int qkd_toeplitz_hash_method(uint64_t *out, const uint64_t *seed, const uint64_t *in,
			     uint64_t n, uint64_t m, enum qkd_toeplitz_method method);

/*
 * Reference: the matrix-vector product bit by bit, straight from the
 * definition above. O(n m); for tests only.
 */
void qkd_toeplitz_reference(uint64_t *out, const uint64_t *seed, const uint64_t *in,
			    uint64_t n, uint64_t m);

/*
 * c = a * b in GF(2)[x]; a has na bits, b nb bits (bits beyond are ignored),
 * c receives na + nb - 1 bits in ceil((na + nb - 1) / 64) words, padding
 * cleared. c must not overlap a or b. 0, -EINVAL, -ENOMEM.
 */
int qkd_gf2poly_mul(uint64_t *c, const uint64_t *a, uint64_t na, const uint64_t *b, uint64_t nb);

/* Schoolbook product (word-level carry-less), for tests and small sizes. */
void qkd_gf2poly_mul_schoolbook(uint64_t *c, const uint64_t *a, uint64_t na,
				const uint64_t *b, uint64_t nb);

/*
 * Arithmetic backend of the FFT: "avx512-vpclmulqdq", "pclmulqdq" or
 * "portable", chosen once from CPUID. qkd_gf2poly_force_backend() restricts it
 * (for tests and benches): 0 = best available, 1 = at most pclmulqdq,
 * 2 = portable. Returns the name now in use.
 */
const char *qkd_gf2poly_backend(void);
const char *qkd_gf2poly_force_backend(int level);

/*
 * Large work arrays (4 MiB .. 512 MiB, at most two) are kept after use for
 * the next block, always wiped first. This returns them to the system.
 */
void qkd_gf2poly_release_cache(void);

#endif
