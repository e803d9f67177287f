/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libqkd-internal: GF(2^128) arithmetic of the Wegman-Carter polynomial hash.
 *
 * Field: GF(2)[x] / (x^128 + x^7 + x^2 + x + 1). Bit order: a 16-byte block is
 * read as a little-endian 128-bit integer (bytes 0..7 -> lo word, 8..15 -> hi
 * word, each little-endian); bit i of that integer is the coefficient of x^i.
 * This is the "natural" order (not GCM's reflected one), so PCLMULQDQ works on
 * loaded blocks directly and the portable code needs no bit reversal of data.
 *
 * mac.c holds the portable code and the dispatch; mac-clmul.c, compiled with
 * -mpclmul -msse4.1, is only called after a CPUID check.
 */
#ifndef QKD_MAC_IMPL_H
#define QKD_MAC_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* out = a * b in GF(2^128); elements as {lo, hi}. out may alias a or b. */
void qkd_gf128_mul_portable(uint64_t out[2], const uint64_t a[2], const uint64_t b[2]);
void qkd_gf128_mul_clmul(uint64_t out[2], const uint64_t a[2], const uint64_t b[2]);

/*
 * Horner over n full 16-byte blocks: for each block m, acc = (acc ^ m) * k.
 * pow[i] = k^(i+1) for i < 8. The clmul version aggregates 8 blocks per
 * reduction: acc' = (acc ^ m0) k^8 ^ m1 k^7 ^ ... ^ m7 k, which is the same
 * polynomial, hence bit-identical results.
 */
void qkd_polyhash_blocks_portable(uint64_t acc[2], const uint64_t pow[8][2],
				  const uint8_t *data, size_t n);
void qkd_polyhash_blocks_clmul(uint64_t acc[2], const uint64_t pow[8][2],
			       const uint8_t *data, size_t n);

bool qkd_mac_cpu_has_clmul(void);

static inline uint64_t qkd_le64(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
	       (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline void qkd_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

#endif
