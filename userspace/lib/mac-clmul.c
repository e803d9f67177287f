// SPDX-License-Identifier: GPL-2.0
/*
 * PCLMULQDQ path of the GF(2^128) polynomial hash (see mac-impl.h for the
 * field and bit order). Compiled with -mpclmul -msse4.1; only reached after
 * qkd_mac_cpu_has_clmul() said yes.
 *
 * Speed comes from aggregated reduction: eight blocks are multiplied by
 * k^8..k^1 (precomputed), their unreduced 256-bit products XORed together,
 * and only the sum is reduced, so the two reduction multiplications are paid
 * once per 128 bytes instead of once per 16.
 */
#include <immintrin.h>
#include <cpuid.h>

#include "mac-impl.h"

bool qkd_mac_cpu_has_clmul(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return false;
	return (c & bit_PCLMUL) && (c & bit_SSE4_1);
}

static inline __m128i load2(const uint64_t v[2])
{
	return _mm_set_epi64x((long long)v[1], (long long)v[0]);
}

static inline void store2(uint64_t v[2], __m128i x)
{
	v[0] = (uint64_t)_mm_cvtsi128_si64(x);
	v[1] = (uint64_t)_mm_extract_epi64(x, 1);
}

/* Reduce hi:lo (256 bits) modulo x^128 + x^7 + x^2 + x + 1. */
static inline __m128i reduce(__m128i lo, __m128i hi)
{
	const __m128i r = _mm_set_epi64x(0, 0x87);
	/* x^192 = x^64 * 0x87: fold the top word into words 1..2 */
	__m128i t = _mm_clmulepi64_si128(hi, r, 0x01);

	lo = _mm_xor_si128(lo, _mm_slli_si128(t, 8));
	hi = _mm_xor_si128(hi, _mm_srli_si128(t, 8));
	/* x^128 = 0x87: fold word 2 into words 0..1 */
	t = _mm_clmulepi64_si128(hi, r, 0x00);
	return _mm_xor_si128(lo, t);
}

/* Karatsuba pieces accumulated without reduction. */
struct acc3 {
	__m128i lo, hi, mid;
};

static inline void mul_acc(struct acc3 *s, __m128i x, __m128i k, __m128i kk)
{
	__m128i xx = _mm_xor_si128(x, _mm_srli_si128(x, 8));

	s->lo = _mm_xor_si128(s->lo, _mm_clmulepi64_si128(x, k, 0x00));
	s->hi = _mm_xor_si128(s->hi, _mm_clmulepi64_si128(x, k, 0x11));
	s->mid = _mm_xor_si128(s->mid, _mm_clmulepi64_si128(xx, kk, 0x00));
}

static inline __m128i finish(const struct acc3 *s)
{
	__m128i mid = _mm_xor_si128(s->mid, _mm_xor_si128(s->lo, s->hi));
	__m128i lo = _mm_xor_si128(s->lo, _mm_slli_si128(mid, 8));
	__m128i hi = _mm_xor_si128(s->hi, _mm_srli_si128(mid, 8));

	return reduce(lo, hi);
}

static inline __m128i kk_of(__m128i k)
{
	return _mm_xor_si128(k, _mm_srli_si128(k, 8));
}

static inline __m128i mul1(__m128i x, __m128i k, __m128i kk)
{
	struct acc3 s = { _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128() };

	mul_acc(&s, x, k, kk);
	return finish(&s);
}

void qkd_gf128_mul_clmul(uint64_t out[2], const uint64_t a[2], const uint64_t b[2])
{
	__m128i k = load2(b);

	store2(out, mul1(load2(a), k, kk_of(k)));
}

void qkd_polyhash_blocks_clmul(uint64_t acc[2], const uint64_t pow[8][2],
			       const uint8_t *data, size_t n)
{
	__m128i a = load2(acc);
	__m128i k[8], kk[8];

	for (int i = 0; i < 8; i++) {
		k[i] = load2(pow[i]);
		kk[i] = kk_of(k[i]);
	}
	/* x86 is little-endian: an unaligned load is the block's {lo, hi}. */
	for (; n >= 8; n -= 8, data += 128) {
		struct acc3 s = { _mm_setzero_si128(), _mm_setzero_si128(),
				  _mm_setzero_si128() };
		__m128i m0 = _mm_xor_si128(a, _mm_loadu_si128((const __m128i *)data));

		mul_acc(&s, m0, k[7], kk[7]);
		for (int j = 1; j < 8; j++)
			mul_acc(&s, _mm_loadu_si128((const __m128i *)(data + 16 * j)),
				k[7 - j], kk[7 - j]);
		a = finish(&s);
	}
	for (; n; n--, data += 16)
		a = mul1(_mm_xor_si128(a, _mm_loadu_si128((const __m128i *)data)), k[0], kk[0]);
	store2(acc, a);
	/* k and its powers are secret: do not leave them in stack slots */
	for (int i = 0; i < 8; i++)
		k[i] = kk[i] = _mm_setzero_si128();
	__asm__ __volatile__("" : : "m"(k), "m"(kk));
}
