/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libqkd-internal: the GF(2^64) arithmetic kernels of the additive FFT
 * (gf2poly.c), with a portable implementation there and PCLMULQDQ /
 * AVX-512+VPCLMULQDQ ones in gf2poly-clmul.c, picked at run time from CPUID.
 *
 * GF(2^64) = GF(2)[x] / (x^64 + x^4 + x^3 + x + 1); an element is the
 * uint64_t of its coefficients, bit i for x^i.
 */
#ifndef QKD_GF2POLY_IMPL_H
#define QKD_GF2POLY_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qkd_gf64_ops {
	const char *name;
	uint64_t (*mul)(uint64_t a, uint64_t b);
	/* a[j] ^= w * b[j]; b[j] ^= a[j]   for j < len (forward butterfly) */
	void (*bfly_fwd)(uint64_t *a, uint64_t *b, size_t len, uint64_t w);
	/* b[j] ^= a[j]; a[j] ^= w * b[j]   for j < len (inverse butterfly) */
	void (*bfly_inv)(uint64_t *a, uint64_t *b, size_t len, uint64_t w);
	/* a[j] = a[j] * b[j] */
	void (*pointwise)(uint64_t *a, const uint64_t *b, size_t len);
	/*
	 * The three lowest FFT levels on one block of 8 (NULL: use the
	 * butterflies): level 2 with w[0], level 1 with w[1] (elements 0-3) and
	 * w[2] (4-7), level 0 with w[3..6] for the pairs 0-1, 2-3, 4-5, 6-7.
	 */
	void (*leaf_fwd)(uint64_t *f, const uint64_t w[7]);
	void (*leaf_inv)(uint64_t *f, const uint64_t w[7]);
};

extern const struct qkd_gf64_ops qkd_gf64_portable;
/* NULL members when the CPU lacks the instructions; see the probes. */
bool qkd_gf64_clmul_usable(void);
bool qkd_gf64_avx512_usable(void);
extern const struct qkd_gf64_ops qkd_gf64_clmul;
extern const struct qkd_gf64_ops qkd_gf64_avx512;

/* dst[i] ^= src[i]; regions do not overlap. */
static inline void qkd_memxor64(uint64_t *__restrict dst, const uint64_t *__restrict src,
				size_t words)
{
	size_t i = 0;

	for (; i + 4 <= words; i += 4) {
		dst[i] ^= src[i];
		dst[i + 1] ^= src[i + 1];
		dst[i + 2] ^= src[i + 2];
		dst[i + 3] ^= src[i + 3];
	}
	for (; i < words; i++)
		dst[i] ^= src[i];
}

/*
 * Bits [start, start + nbits) of a * b (a: na bits, b: nb bits, both > 0)
 * into out, through the additive FFT. 0, -EINVAL, -ENOMEM.
 */
int qkd_gf2poly_product_bits(uint64_t *out, uint64_t start, uint64_t nbits,
			     const uint64_t *a, uint64_t na, const uint64_t *b, uint64_t nb);

#endif
