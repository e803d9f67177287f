// SPDX-License-Identifier: GPL-2.0
/*
 * GF(2^64) kernels of the additive FFT with carry-less multiplication.
 *
 * This file is compiled with -mpclmul -msse4.1 (Makefile rule for *-clmul.c);
 * the AVX-512 variants carry their own target attribute. Nothing here runs
 * unless the matching probe (CPUID through __builtin_cpu_supports, which also
 * checks that the OS saves the wide registers) said yes; gf2poly.c keeps a
 * portable path with identical results.
 *
 * Reduction modulo x^64 + x^4 + x^3 + x + 1 uses shifts instead of a second
 * and third carry-less multiply: for a 128-bit product lo + x^64 hi,
 *	hi x^64 = hi (x^4 + x^3 + x + 1) = low64 + x^64 o,  o < 16,
 * and o (x^4 + x^3 + x + 1) fits in 8 bits, so two shift-xor rounds finish.
 */
#include <immintrin.h>
#include <stdint.h>

#include "gf2poly-impl.h"

bool qkd_gf64_clmul_usable(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

bool qkd_gf64_avx512_usable(void)
{
	__builtin_cpu_init();
	return qkd_gf64_clmul_usable() && __builtin_cpu_supports("avx512f") &&
	       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("vpclmulqdq");
}

/* ---- 128-bit (two lanes) ---- */

static inline __m128i red128(__m128i lo, __m128i hi)
{
	__m128i o = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64(hi, 63), _mm_srli_epi64(hi, 61)),
				  _mm_srli_epi64(hi, 60));
	__m128i t = _mm_xor_si128(hi, o);

	t = _mm_xor_si128(t, _mm_slli_epi64(_mm_xor_si128(hi, o), 1));
	t = _mm_xor_si128(t, _mm_slli_epi64(_mm_xor_si128(hi, o), 3));
	t = _mm_xor_si128(t, _mm_slli_epi64(_mm_xor_si128(hi, o), 4));
	return _mm_xor_si128(lo, t);
}

/* Two products: lanes of x times the same lanes of y. */
static inline __m128i mul2(__m128i x, __m128i y)
{
	__m128i p0 = _mm_clmulepi64_si128(x, y, 0x00);
	__m128i p1 = _mm_clmulepi64_si128(x, y, 0x11);

	return red128(_mm_unpacklo_epi64(p0, p1), _mm_unpackhi_epi64(p0, p1));
}

static uint64_t clmul_mul(uint64_t a, uint64_t b)
{
	return (uint64_t)_mm_cvtsi128_si64(mul2(_mm_cvtsi64_si128((long long)a),
						_mm_cvtsi64_si128((long long)b)));
}

static void clmul_bfly_fwd(uint64_t *a, uint64_t *b, size_t len, uint64_t w)
{
	__m128i vw = _mm_set1_epi64x((long long)w);
	size_t j = 0;

	for (; j + 2 <= len; j += 2) {
		__m128i va = _mm_loadu_si128((const __m128i *)(a + j));
		__m128i vb = _mm_loadu_si128((const __m128i *)(b + j));

		va = _mm_xor_si128(va, mul2(vb, vw));
		vb = _mm_xor_si128(vb, va);
		_mm_storeu_si128((__m128i *)(a + j), va);
		_mm_storeu_si128((__m128i *)(b + j), vb);
	}
	for (; j < len; j++) {
		a[j] ^= clmul_mul(w, b[j]);
		b[j] ^= a[j];
	}
}

static void clmul_bfly_inv(uint64_t *a, uint64_t *b, size_t len, uint64_t w)
{
	__m128i vw = _mm_set1_epi64x((long long)w);
	size_t j = 0;

	for (; j + 2 <= len; j += 2) {
		__m128i va = _mm_loadu_si128((const __m128i *)(a + j));
		__m128i vb = _mm_loadu_si128((const __m128i *)(b + j));

		vb = _mm_xor_si128(vb, va);
		va = _mm_xor_si128(va, mul2(vb, vw));
		_mm_storeu_si128((__m128i *)(a + j), va);
		_mm_storeu_si128((__m128i *)(b + j), vb);
	}
	for (; j < len; j++) {
		b[j] ^= a[j];
		a[j] ^= clmul_mul(w, b[j]);
	}
}

static void clmul_pointwise(uint64_t *a, const uint64_t *b, size_t len)
{
	size_t j = 0;

	for (; j + 2 <= len; j += 2) {
		__m128i va = _mm_loadu_si128((const __m128i *)(a + j));
		__m128i vb = _mm_loadu_si128((const __m128i *)(b + j));

		_mm_storeu_si128((__m128i *)(a + j), mul2(va, vb));
	}
	for (; j < len; j++)
		a[j] = clmul_mul(a[j], b[j]);
}

static inline __m128i load2(const uint64_t *p)
{
	return _mm_loadu_si128((const __m128i *)p);
}

static inline void store2(uint64_t *p, __m128i v)
{
	_mm_storeu_si128((__m128i *)p, v);
}

static void clmul_leaf_fwd(uint64_t *f, const uint64_t w[7])
{
	__m128i x0 = load2(f), x1 = load2(f + 2), x2 = load2(f + 4), x3 = load2(f + 6);
	__m128i w2 = _mm_set1_epi64x((long long)w[0]);
	__m128i w1 = _mm_set_epi64x((long long)w[2], (long long)w[1]);
	__m128i w0a = _mm_set_epi64x((long long)w[4], (long long)w[3]);
	__m128i w0b = _mm_set_epi64x((long long)w[6], (long long)w[5]);
	__m128i a, b;

	/* level 2: (x0 x1) with (x2 x3) */
	x0 = _mm_xor_si128(x0, mul2(x2, w2));
	x1 = _mm_xor_si128(x1, mul2(x3, w2));
	x2 = _mm_xor_si128(x2, x0);
	x3 = _mm_xor_si128(x3, x1);
	/* level 1: x0 with x1 (w[1]), x2 with x3 (w[2]); a = (x0, x2), b = (x1, x3) */
	a = _mm_unpacklo_epi64(x0, x2);
	b = _mm_unpacklo_epi64(x1, x3);
	a = _mm_xor_si128(a, mul2(b, w1));
	b = _mm_xor_si128(b, a);
	__m128i a2 = _mm_unpackhi_epi64(x0, x2), b2 = _mm_unpackhi_epi64(x1, x3);

	a2 = _mm_xor_si128(a2, mul2(b2, w1));
	b2 = _mm_xor_si128(b2, a2);
	x0 = _mm_unpacklo_epi64(a, a2);	/* f0 f1 */
	x1 = _mm_unpacklo_epi64(b, b2);	/* f2 f3 */
	x2 = _mm_unpackhi_epi64(a, a2);	/* f4 f5 */
	x3 = _mm_unpackhi_epi64(b, b2);	/* f6 f7 */
	/* level 0: pairs; a = even elements, b = odd */
	a = _mm_unpacklo_epi64(x0, x1);
	b = _mm_unpackhi_epi64(x0, x1);
	a = _mm_xor_si128(a, mul2(b, w0a));
	b = _mm_xor_si128(b, a);
	store2(f, _mm_unpacklo_epi64(a, b));
	store2(f + 2, _mm_unpackhi_epi64(a, b));
	a = _mm_unpacklo_epi64(x2, x3);
	b = _mm_unpackhi_epi64(x2, x3);
	a = _mm_xor_si128(a, mul2(b, w0b));
	b = _mm_xor_si128(b, a);
	store2(f + 4, _mm_unpacklo_epi64(a, b));
	store2(f + 6, _mm_unpackhi_epi64(a, b));
}

static void clmul_leaf_inv(uint64_t *f, const uint64_t w[7])
{
	__m128i w2 = _mm_set1_epi64x((long long)w[0]);
	__m128i w1 = _mm_set_epi64x((long long)w[2], (long long)w[1]);
	__m128i w0a = _mm_set_epi64x((long long)w[4], (long long)w[3]);
	__m128i w0b = _mm_set_epi64x((long long)w[6], (long long)w[5]);
	__m128i x0 = load2(f), x1 = load2(f + 2), x2 = load2(f + 4), x3 = load2(f + 6);
	__m128i a, b, a2, b2;

	/* level 0 */
	a = _mm_unpacklo_epi64(x0, x1);
	b = _mm_unpackhi_epi64(x0, x1);
	b = _mm_xor_si128(b, a);
	a = _mm_xor_si128(a, mul2(b, w0a));
	x0 = _mm_unpacklo_epi64(a, b);
	x1 = _mm_unpackhi_epi64(a, b);
	a = _mm_unpacklo_epi64(x2, x3);
	b = _mm_unpackhi_epi64(x2, x3);
	b = _mm_xor_si128(b, a);
	a = _mm_xor_si128(a, mul2(b, w0b));
	x2 = _mm_unpacklo_epi64(a, b);
	x3 = _mm_unpackhi_epi64(a, b);
	/* level 1: a = (f0, f4), b = (f2, f6); a2 = (f1, f5), b2 = (f3, f7) */
	a = _mm_unpacklo_epi64(x0, x2);
	b = _mm_unpacklo_epi64(x1, x3);
	a2 = _mm_unpackhi_epi64(x0, x2);
	b2 = _mm_unpackhi_epi64(x1, x3);
	b = _mm_xor_si128(b, a);
	a = _mm_xor_si128(a, mul2(b, w1));
	b2 = _mm_xor_si128(b2, a2);
	a2 = _mm_xor_si128(a2, mul2(b2, w1));
	x0 = _mm_unpacklo_epi64(a, a2);
	x1 = _mm_unpacklo_epi64(b, b2);
	x2 = _mm_unpackhi_epi64(a, a2);
	x3 = _mm_unpackhi_epi64(b, b2);
	/* level 2 */
	x2 = _mm_xor_si128(x2, x0);
	x3 = _mm_xor_si128(x3, x1);
	x0 = _mm_xor_si128(x0, mul2(x2, w2));
	x1 = _mm_xor_si128(x1, mul2(x3, w2));
	store2(f, x0);
	store2(f + 2, x1);
	store2(f + 4, x2);
	store2(f + 6, x3);
}

const struct qkd_gf64_ops qkd_gf64_clmul = {
	.name = "pclmulqdq",
	.mul = clmul_mul,
	.bfly_fwd = clmul_bfly_fwd,
	.bfly_inv = clmul_bfly_inv,
	.pointwise = clmul_pointwise,
	.leaf_fwd = clmul_leaf_fwd,
	.leaf_inv = clmul_leaf_inv,
};

/* ---- 512-bit (eight lanes), AVX-512F/BW + VPCLMULQDQ ---- */

#define AVX512 __attribute__((target("avx512f,avx512bw,vpclmulqdq,pclmul,sse4.1")))

AVX512 static inline __m512i red512(__m512i lo, __m512i hi)
{
	__m512i o = _mm512_ternarylogic_epi64(_mm512_srli_epi64(hi, 63), _mm512_srli_epi64(hi, 61),
					      _mm512_srli_epi64(hi, 60), 0x96);
	__m512i h = _mm512_xor_si512(hi, o);
	__m512i t = _mm512_ternarylogic_epi64(h, _mm512_slli_epi64(h, 1),
					      _mm512_slli_epi64(h, 3), 0x96);

	return _mm512_ternarylogic_epi64(lo, t, _mm512_slli_epi64(h, 4), 0x96);
}

AVX512 static inline __m512i mul8(__m512i x, __m512i y)
{
	__m512i p0 = _mm512_clmulepi64_epi128(x, y, 0x00);
	__m512i p1 = _mm512_clmulepi64_epi128(x, y, 0x11);

	return red512(_mm512_unpacklo_epi64(p0, p1), _mm512_unpackhi_epi64(p0, p1));
}

AVX512 static void avx512_bfly_fwd(uint64_t *a, uint64_t *b, size_t len, uint64_t w)
{
	__m512i vw = _mm512_set1_epi64((long long)w);
	size_t j = 0;

	for (; j + 16 <= len; j += 16) {
		__m512i a0 = _mm512_loadu_si512(a + j), a1 = _mm512_loadu_si512(a + j + 8);
		__m512i b0 = _mm512_loadu_si512(b + j), b1 = _mm512_loadu_si512(b + j + 8);

		a0 = _mm512_xor_si512(a0, mul8(b0, vw));
		a1 = _mm512_xor_si512(a1, mul8(b1, vw));
		_mm512_storeu_si512(a + j, a0);
		_mm512_storeu_si512(a + j + 8, a1);
		_mm512_storeu_si512(b + j, _mm512_xor_si512(b0, a0));
		_mm512_storeu_si512(b + j + 8, _mm512_xor_si512(b1, a1));
	}
	for (; j + 8 <= len; j += 8) {
		__m512i va = _mm512_loadu_si512(a + j);
		__m512i vb = _mm512_loadu_si512(b + j);

		va = _mm512_xor_si512(va, mul8(vb, vw));
		_mm512_storeu_si512(a + j, va);
		_mm512_storeu_si512(b + j, _mm512_xor_si512(vb, va));
	}
	if (j < len)
		clmul_bfly_fwd(a + j, b + j, len - j, w);
}

AVX512 static void avx512_bfly_inv(uint64_t *a, uint64_t *b, size_t len, uint64_t w)
{
	__m512i vw = _mm512_set1_epi64((long long)w);
	size_t j = 0;

	for (; j + 16 <= len; j += 16) {
		__m512i a0 = _mm512_loadu_si512(a + j), a1 = _mm512_loadu_si512(a + j + 8);
		__m512i b0 = _mm512_loadu_si512(b + j), b1 = _mm512_loadu_si512(b + j + 8);

		b0 = _mm512_xor_si512(b0, a0);
		b1 = _mm512_xor_si512(b1, a1);
		_mm512_storeu_si512(b + j, b0);
		_mm512_storeu_si512(b + j + 8, b1);
		_mm512_storeu_si512(a + j, _mm512_xor_si512(a0, mul8(b0, vw)));
		_mm512_storeu_si512(a + j + 8, _mm512_xor_si512(a1, mul8(b1, vw)));
	}
	for (; j + 8 <= len; j += 8) {
		__m512i va = _mm512_loadu_si512(a + j);
		__m512i vb = _mm512_loadu_si512(b + j);

		vb = _mm512_xor_si512(vb, va);
		_mm512_storeu_si512(b + j, vb);
		_mm512_storeu_si512(a + j, _mm512_xor_si512(va, mul8(vb, vw)));
	}
	if (j < len)
		clmul_bfly_inv(a + j, b + j, len - j, w);
}

AVX512 static void avx512_pointwise(uint64_t *a, const uint64_t *b, size_t len)
{
	size_t j = 0;

	for (; j + 8 <= len; j += 8)
		_mm512_storeu_si512(a + j, mul8(_mm512_loadu_si512(a + j),
						_mm512_loadu_si512(b + j)));
	if (j < len)
		clmul_pointwise(a + j, b + j, len - j);
}

const struct qkd_gf64_ops qkd_gf64_avx512 = {
	.name = "avx512-vpclmulqdq",
	.mul = clmul_mul,
	.bfly_fwd = avx512_bfly_fwd,
	.bfly_inv = avx512_bfly_inv,
	.pointwise = avx512_pointwise,
	.leaf_fwd = clmul_leaf_fwd,
	.leaf_inv = clmul_leaf_inv,
};
