// SPDX-License-Identifier: GPL-2.0
/*
 * Multiplication in GF(2)[x] in O(N log N log log N) with an additive FFT over
 * GF(2^64) (Lin-Chung-Han "novel polynomial basis" on a Cantor basis, as in
 * Chen et al., "Faster multiplication for long binary polynomials", 2017).
 *
 * 1. Each operand is cut into 32-bit pieces; piece t becomes a GF(2^64)
 *    element (the polynomial of its bits) and the operand becomes a polynomial
 *    in y over GF(2^64) with those coefficients. The product of two pieces has
 *    degree <= 62, so every coefficient of the product polynomial in y is an
 *    honest GF(2)[x] polynomial of degree < 64, never reduced modulo the field
 *    polynomial; evaluating at y = x^32 (shift by 32 t and xor) gives the result.
 * 2. The polynomials in y (2^k coefficients, 2^k >= the product length) are
 *    converted from the monomial basis to the novel basis X_j = prod s_i^{b_i}
 *    (j = sum b_i 2^i), where s_i is the subspace polynomial of
 *    span(beta_0..beta_{i-1}) for the Cantor basis beta_0 = 1,
 *    beta_i^2 + beta_i = beta_{i-1}. With that basis the s_i have GF(2)
 *    coefficients and s_{2^a}(y) = y^{2^{2^a}} + y, so the conversion is XORs
 *    only: a Taylor expansion in T = y^M + y, M = 2^{2^a}, turns the problem into
 *    two smaller conversions (one with rows of M elements, one per row).
 * 3. The additive FFT evaluates at the 2^k points of span(beta_0..beta_{k-1}):
 *    level i (blocks of 2^{i+1}) does a ^= w b, b ^= a with one constant
 *    w = s_i(block offset) per block; on a Cantor basis s_i(beta_j) =
 *    beta_{j-i}, so w is simply the point whose Cantor coordinates are the
 *    block index shifted left by one.
 * 4. Pointwise products, the inverse FFT, the inverse conversion, and the
 *    pieces are added back at their offsets.
 *
 * All steps work depth-first on halves so that everything below ~1 MiB runs
 * in cache. Temporary buffers hold key material and are wiped before free.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "qkd/toeplitz.h"
#include "gf2poly-impl.h"

#define GF64_POLY_LOW 0x1bull /* x^4 + x^3 + x + 1 */
#define CANTOR_DIM 40	      /* basis elements computed: FFTs up to 2^40 points */
#define MAX_LOG 32	      /* points are indexed by 32 bits (cantor_point); 2^31-bit
				 operands need at most 2^28 */

/* ---------------------------------------------------------------- portable */

static void clmul64_portable(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi)
{
	uint64_t tl[16], th[16], l = 0, h = 0;

	tl[0] = th[0] = 0;
	tl[1] = a;
	th[1] = 0;
	for (int i = 2; i < 16; i += 2) {
		tl[i] = tl[i / 2] << 1;
		th[i] = (th[i / 2] << 1) | (tl[i / 2] >> 63);
		tl[i + 1] = tl[i] ^ a;
		th[i + 1] = th[i];
	}
	for (int s = 60; s >= 0; s -= 4) {
		unsigned nib = (unsigned)(b >> s) & 15;

		h = (h << 4) | (l >> 60);
		l <<= 4;
		l ^= tl[nib];
		h ^= th[nib];
	}
	*lo = l;
	*hi = h;
}

static inline uint64_t gf64_reduce(uint64_t lo, uint64_t hi)
{
	uint64_t o = (hi >> 63) ^ (hi >> 61) ^ (hi >> 60);
	uint64_t h = hi ^ o;

	return lo ^ h ^ (h << 1) ^ (h << 3) ^ (h << 4);
}

static uint64_t portable_mul(uint64_t a, uint64_t b)
{
	uint64_t lo, hi;

	clmul64_portable(a, b, &lo, &hi);
	return gf64_reduce(lo, hi);
}

static void portable_bfly_fwd(uint64_t *a, uint64_t *b, size_t len, uint64_t w)
{
	for (size_t j = 0; j < len; j++) {
		a[j] ^= portable_mul(w, b[j]);
		b[j] ^= a[j];
	}
}

static void portable_bfly_inv(uint64_t *a, uint64_t *b, size_t len, uint64_t w)
{
	for (size_t j = 0; j < len; j++) {
		b[j] ^= a[j];
		a[j] ^= portable_mul(w, b[j]);
	}
}

static void portable_pointwise(uint64_t *a, const uint64_t *b, size_t len)
{
	for (size_t j = 0; j < len; j++)
		a[j] = portable_mul(a[j], b[j]);
}

const struct qkd_gf64_ops qkd_gf64_portable = {
	.name = "portable",
	.mul = portable_mul,
	.bfly_fwd = portable_bfly_fwd,
	.bfly_inv = portable_bfly_inv,
	.pointwise = portable_pointwise,
};

/* ------------------------------------------------------ set-up, dispatch */

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static uint64_t cantor[CANTOR_DIM];
/* cantor_tab[q][v] = xor of cantor[8 q + l] over the bits l of v */
static uint64_t cantor_tab[4][256];
static const struct qkd_gf64_ops *best_ops, *ops;

/* Solve z^2 + z = c in GF(2^64) by Gaussian elimination; -1 if no solution. */
static int solve_artin_schreier(uint64_t c, uint64_t *z)
{
	uint64_t row[64], rhs[64];
	int pivcol[64], rank = 0;

	/* row r, bit j: coefficient r of L(x^j) = x^2j + x^j */
	for (int r = 0; r < 64; r++)
		row[r] = 0, rhs[r] = (c >> r) & 1;
	for (int j = 0; j < 64; j++) {
		uint64_t e = 1ull << j, img = portable_mul(e, e) ^ e;

		for (int r = 0; r < 64; r++)
			row[r] |= ((img >> r) & 1) << j;
	}
	for (int col = 0; col < 64 && rank < 64; col++) {
		int p = -1;

		for (int r = rank; r < 64; r++)
			if ((row[r] >> col) & 1) {
				p = r;
				break;
			}
		if (p < 0)
			continue;
		uint64_t tr = row[p], trh = rhs[p];

		row[p] = row[rank], rhs[p] = rhs[rank];
		row[rank] = tr, rhs[rank] = trh;
		for (int r = 0; r < 64; r++)
			if (r != rank && ((row[r] >> col) & 1)) {
				row[r] ^= row[rank];
				rhs[r] ^= rhs[rank];
			}
		pivcol[rank++] = col;
	}
	for (int r = rank; r < 64; r++)
		if (rhs[r])
			return -1;
	*z = 0;
	for (int r = 0; r < rank; r++)
		*z |= rhs[r] << pivcol[r];
	return 0;
}

static void setup(void)
{
	cantor[0] = 1;
	for (int i = 1; i < CANTOR_DIM; i++) {
		if (solve_artin_schreier(cantor[i - 1], &cantor[i]) ||
		    (portable_mul(cantor[i], cantor[i]) ^ cantor[i]) != cantor[i - 1]) {
			/* Cannot happen in GF(2^64) for i < 64; refuse to compute garbage. */
			fprintf(stderr, "gf2poly: Cantor basis construction failed at %d\n", i);
			abort();
		}
	}
	for (int q = 0; q < 4; q++)
		for (int v = 0; v < 256; v++) {
			uint64_t x = 0;

			for (int l = 0; l < 8; l++)
				if ((v >> l) & 1)
					x ^= cantor[8 * q + l];
			cantor_tab[q][v] = x;
		}
	best_ops = &qkd_gf64_portable;
	if (qkd_gf64_clmul_usable())
		best_ops = &qkd_gf64_clmul;
	if (qkd_gf64_avx512_usable())
		best_ops = &qkd_gf64_avx512;
	ops = best_ops;
}

static const struct qkd_gf64_ops *get_ops(void)
{
	pthread_once(&setup_once, setup);
	return ops;
}

const char *qkd_gf2poly_backend(void)
{
	return get_ops()->name;
}

const char *qkd_gf2poly_force_backend(int level)
{
	get_ops();
	ops = best_ops;
	if (level >= 1 && ops == &qkd_gf64_avx512)
		ops = &qkd_gf64_clmul;
	if (level >= 2)
		ops = &qkd_gf64_portable;
	return ops->name;
}

/* The point whose Cantor coordinates are the bits of v (v < 2^32). */
static inline uint64_t cantor_point(uint64_t v)
{
	return cantor_tab[0][v & 255] ^ cantor_tab[1][(v >> 8) & 255] ^
	       cantor_tab[2][(v >> 16) & 255] ^ cantor_tab[3][(v >> 24) & 255];
}

/* ------------------------------------------------------ basis conversion */

/*
 * f holds d * M elements of es words, d a power of two. Rewrite it as its
 * expansion sum_j h_j(y) T^j, T = y^M + y, deg h_j < M: digit j lands in
 * elements [j M, (j + 1) M). Recursively: divide by T^{d/2} = y^{dM/2} + y^{d/2}.
 *
 * Elements from len on are zero and stay zero (every step only adds higher
 * elements into lower ones), so the zero tail of a short operand is skipped.
 */
static void taylor_fwd(uint64_t *f, size_t d, size_t M, size_t es, size_t len)
{
	if (d <= 1 || !len)
		return;
	size_t half = d / 2, D = half * M, g = D - half, hi = len < d * M ? len : d * M;

	/* elements t >= D, from the top: f[t - g] ^= f[t]; chunks of <= g are independent */
	while (hi > D) {
		size_t lo = hi - D > g ? hi - g : D;

		qkd_memxor64(f + (lo - g) * es, f + lo * es, (hi - lo) * es);
		hi = lo;
	}
	taylor_fwd(f, half, M, es, len < D ? len : D);
	taylor_fwd(f + D * es, half, M, es, len > D ? len - D : 0);
}

static void taylor_inv(uint64_t *f, size_t d, size_t M, size_t es)
{
	if (d <= 1)
		return;
	size_t half = d / 2, D = half * M, g = D - half, top = d * M;

	taylor_inv(f, half, M, es);
	taylor_inv(f + D * es, half, M, es);
	for (size_t lo = D; lo < top;) {
		size_t hi = top - lo > g ? lo + g : top;

		qkd_memxor64(f + (lo - g) * es, f + lo * es, (hi - lo) * es);
		lo = hi;
	}
}

/* Largest power of two strictly below k (k >= 2). */
static inline unsigned split_of(unsigned k)
{
	unsigned s = 1;

	while (2 * s < k)
		s *= 2;
	return s;
}

/*
 * The recursion below unrolled for 8 and 16 single-word elements (generated by
 * running it symbolically): the bottom of the conversion is otherwise all
 * loop overhead.
 */
static inline void convert3_fwd_1(uint64_t *f)
{
	uint64_t x[8];

	memcpy(x, f, sizeof(x));
	x[2] ^= x[5]; x[3] ^= x[6]; x[4] ^= x[7]; x[1] ^= x[4]; x[2] ^= x[3]; x[1] ^= x[2];
	x[6] ^= x[7]; x[5] ^= x[6];
	memcpy(f, x, sizeof(x));
}

static inline void convert3_inv_1(uint64_t *f)
{
	uint64_t x[8];

	memcpy(x, f, sizeof(x));
	x[5] ^= x[6]; x[6] ^= x[7]; x[1] ^= x[2]; x[2] ^= x[3]; x[1] ^= x[4]; x[4] ^= x[7];
	x[3] ^= x[6]; x[2] ^= x[5];
	memcpy(f, x, sizeof(x));
}

static inline void convert4_fwd_1(uint64_t *f)
{
	uint64_t x[16];

	memcpy(x, f, sizeof(x));
	x[4] ^= x[10]; x[5] ^= x[11]; x[6] ^= x[12]; x[7] ^= x[13]; x[8] ^= x[14];
	x[9] ^= x[15]; x[2] ^= x[8]; x[3] ^= x[9]; x[2] ^= x[5]; x[3] ^= x[6]; x[4] ^= x[7];
	x[1] ^= x[4]; x[10] ^= x[13]; x[11] ^= x[14]; x[12] ^= x[15]; x[9] ^= x[12];
	x[8] ^= x[12]; x[9] ^= x[13]; x[10] ^= x[14]; x[11] ^= x[15]; x[4] ^= x[8];
	x[5] ^= x[9]; x[6] ^= x[10]; x[7] ^= x[11]; x[2] ^= x[3]; x[1] ^= x[2]; x[6] ^= x[7];
	x[5] ^= x[6]; x[10] ^= x[11]; x[9] ^= x[10]; x[14] ^= x[15]; x[13] ^= x[14];
	memcpy(f, x, sizeof(x));
}

static inline void convert4_inv_1(uint64_t *f)
{
	uint64_t x[16];

	memcpy(x, f, sizeof(x));
	x[13] ^= x[14]; x[14] ^= x[15]; x[9] ^= x[10]; x[10] ^= x[11]; x[5] ^= x[6];
	x[6] ^= x[7]; x[1] ^= x[2]; x[2] ^= x[3]; x[7] ^= x[11]; x[6] ^= x[10]; x[5] ^= x[9];
	x[4] ^= x[8]; x[11] ^= x[15]; x[10] ^= x[14]; x[9] ^= x[13]; x[8] ^= x[12];
	x[9] ^= x[12]; x[12] ^= x[15]; x[11] ^= x[14]; x[10] ^= x[13]; x[1] ^= x[4];
	x[4] ^= x[7]; x[3] ^= x[6]; x[2] ^= x[5]; x[3] ^= x[9]; x[2] ^= x[8]; x[9] ^= x[15];
	x[8] ^= x[14]; x[7] ^= x[13]; x[6] ^= x[12]; x[5] ^= x[11]; x[4] ^= x[10];
	memcpy(f, x, sizeof(x));
}


/* Monomial -> novel basis, 2^k elements of es words, zero from element len on. */
static void convert_fwd(uint64_t *f, unsigned k, size_t es, size_t len)
{
	if (k <= 1 || !len)
		return;
	if (es == 1 && k == 4) {
		convert4_fwd_1(f);
		return;
	}
	if (es == 1 && k == 3) {
		convert3_fwd_1(f);
		return;
	}
	if (k == 2) {
		/* s_1 = y^2 + y: the whole recursion for 4 elements */
		qkd_memxor64(f + 2 * es, f + 3 * es, es);
		qkd_memxor64(f + 1 * es, f + 2 * es, es);
		return;
	}
	unsigned s = split_of(k);
	size_t M = (size_t)1 << s, rows = (size_t)1 << (k - s);

	taylor_fwd(f, rows, M, es, len);
	/* rows below the last non-zero one are mixed into, never above it */
	size_t used = (len + M - 1) / M;

	convert_fwd(f, k - s, es * M, used);
	for (size_t r = 0; r < used && r < rows; r++)
		convert_fwd(f + r * M * es, s, es, len - r * M < M ? len - r * M : M);
}

static void convert_inv(uint64_t *f, unsigned k, size_t es)
{
	if (k <= 1)
		return;
	if (es == 1 && k == 4) {
		convert4_inv_1(f);
		return;
	}
	if (es == 1 && k == 3) {
		convert3_inv_1(f);
		return;
	}
	if (k == 2) {
		qkd_memxor64(f + 1 * es, f + 2 * es, es);
		qkd_memxor64(f + 2 * es, f + 3 * es, es);
		return;
	}
	unsigned s = split_of(k);
	size_t M = (size_t)1 << s, rows = (size_t)1 << (k - s);

	for (size_t r = 0; r < rows; r++)
		convert_inv(f + r * M * es, s, es);
	convert_inv(f, k - s, es * M);
	taylor_inv(f, rows, M, es);
}

/* --------------------------------------------------------- additive FFT */

/* Twiddles of the three lowest levels for the block of 8 at off. */
static inline void leaf_twiddles(uint64_t off, uint64_t w[7])
{
	uint64_t c0 = cantor_point(off), b1 = cantor[1], b2 = cantor[2];

	w[0] = cantor_point(off >> 2);
	w[1] = cantor_point(off >> 1);
	w[2] = w[1] ^ b1;
	w[3] = c0;
	w[4] = c0 ^ b1;
	w[5] = c0 ^ b2;
	w[6] = c0 ^ b1 ^ b2;
}

/* Evaluate the novel-basis polynomial f (2^k coefficients) on off + span. */
static void fft_fwd(const struct qkd_gf64_ops *o, uint64_t *f, unsigned k, uint64_t off)
{
	if (k == 0)
		return;
	size_t half = (size_t)1 << (k - 1);

	if (k == 3 && o->leaf_fwd) {
		uint64_t w[7];

		leaf_twiddles(off, w);
		o->leaf_fwd(f, w);
		return;
	}

	if (k == 1) {
		uint64_t w = cantor_point(off);

		f[0] ^= o->mul(w, f[1]);
		f[1] ^= f[0];
		return;
	}
	o->bfly_fwd(f, f + half, half, cantor_point(off >> (k - 1)));
	fft_fwd(o, f, k - 1, off);
	fft_fwd(o, f + half, k - 1, off + half);
}

/*
 * fft_fwd for f that is zero from element len on: where b is zero the
 * butterfly is a copy (a stays, b = a), and a half of the block that is
 * all zero before the copy is full after it.
 */
static void fft_fwd_prefix(const struct qkd_gf64_ops *o, uint64_t *f, unsigned k, uint64_t off,
			   size_t len)
{
	size_t half = (size_t)1 << (k - 1);

	if (k <= 4 || len >= 2 * half) {
		fft_fwd(o, f, k, off);
		return;
	}
	if (len <= half) {
		memcpy(f + half, f, len * sizeof(*f));
		fft_fwd_prefix(o, f, k - 1, off, len);
		fft_fwd_prefix(o, f + half, k - 1, off + half, len);
		return;
	}
	o->bfly_fwd(f, f + half, len - half, cantor_point(off >> (k - 1)));
	memcpy(f + len, f + (len - half), (2 * half - len) * sizeof(*f));
	fft_fwd(o, f, k - 1, off);
	fft_fwd(o, f + half, k - 1, off + half);
}

static void fft_inv(const struct qkd_gf64_ops *o, uint64_t *f, unsigned k, uint64_t off)
{
	if (k == 0)
		return;
	size_t half = (size_t)1 << (k - 1);

	if (k == 3 && o->leaf_inv) {
		uint64_t w[7];

		leaf_twiddles(off, w);
		o->leaf_inv(f, w);
		return;
	}

	if (k == 1) {
		uint64_t w = cantor_point(off);

		f[1] ^= f[0];
		f[0] ^= o->mul(w, f[1]);
		return;
	}
	fft_inv(o, f, k - 1, off);
	fft_inv(o, f + half, k - 1, off + half);
	o->bfly_inv(f, f + half, half, cantor_point(off >> (k - 1)));
}

/* ------------------------------------------------------ multiplication */

/* 32-bit pieces of the first nbits of a into f[0..N), zero beyond. */
static void unpack_pieces(uint64_t *f, size_t N, const uint64_t *a, uint64_t nbits)
{
	size_t pieces = (size_t)((nbits + 31) / 32);

	for (size_t t = 0; t < pieces; t++)
		f[t] = (a[t / 2] >> (32 * (t & 1))) & 0xffffffffull;
	if (nbits % 32)
		f[pieces - 1] &= (1ull << (nbits % 32)) - 1;
	memset(f + pieces, 0, (N - pieces) * sizeof(*f));
}

/* 64 bits of the product starting at bit 64 q, from the pieces' products. */
static inline uint64_t product_word(const uint64_t *f, size_t N, uint64_t q)
{
	uint64_t w = 0;

	if (2 * q < N)
		w ^= f[2 * q];
	if (2 * q + 1 < N)
		w ^= f[2 * q + 1] << 32;
	if (q > 0 && 2 * q - 1 < N)
		w ^= f[2 * q - 1] >> 32;
	return w;
}

/*
 * Work arrays: 64-byte aligned; from 4 MiB on 2 MiB aligned and marked for
 * transparent huge pages, since the FFT's outer levels stride over the whole
 * array and would otherwise miss the TLB on every access.
 */
static uint64_t *alloc_work(size_t bytes)
{
	const size_t huge = 2u << 20;

	if (bytes >= 2 * huge) {
		size_t b = (bytes + huge - 1) & ~(huge - 1);
		uint64_t *p = aligned_alloc(huge, b);

		if (p)
			madvise(p, b, MADV_HUGEPAGE); /* a hint; fine if refused */
		return p;
	}
	return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

/*
 * A small cache of large work arrays. Privacy amplification hashes one block
 * after another of about the same size; handing the arrays back to the
 * kernel after each one means it has to fault in and clear hundreds of MiB of
 * fresh pages for the next (a quarter of the time at 2^27 bits). Cached
 * arrays are always wiped before they are cached: they only ever hold zeros.
 */
#define CACHE_MIN_BYTES (4u << 20)
#define CACHE_MAX_BYTES (512u << 20)

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t *p;
	size_t bytes;
} cache[2];

/* A zeroed-or-garbage array of at least bytes; *cap receives its size. */
static uint64_t *get_work(size_t bytes, size_t *cap)
{
	uint64_t *p = NULL;
	int best = -1;

	if (bytes >= CACHE_MIN_BYTES) {
		pthread_mutex_lock(&cache_lock);
		for (int i = 0; i < 2; i++)
			if (cache[i].p && cache[i].bytes >= bytes && cache[i].bytes <= 2 * bytes &&
			    (best < 0 || cache[i].bytes < cache[best].bytes))
				best = i;
		if (best >= 0) {
			p = cache[best].p;
			*cap = cache[best].bytes;
			cache[best].p = NULL;
		}
		pthread_mutex_unlock(&cache_lock);
		if (p)
			return p;
	}
	*cap = bytes >= CACHE_MIN_BYTES ? (bytes + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1)
					 : bytes;
	return alloc_work(bytes);
}

/* Wipe the words used and keep the array for the next block, or free it. */
static void put_work(uint64_t *p, size_t cap, size_t words)
{
	if (!p)
		return;
	explicit_bzero(p, words * sizeof(*p));
	if (cap >= CACHE_MIN_BYTES && cap <= CACHE_MAX_BYTES) {
		int slot = -1;

		pthread_mutex_lock(&cache_lock);
		for (int i = 0; i < 2; i++)
			if (!cache[i].p && slot < 0)
				slot = i;
		if (slot < 0) /* replace the smaller one if this one is larger */
			slot = cache[0].bytes < cache[1].bytes ? 0 : 1;
		if (!cache[slot].p || cache[slot].bytes < cap) {
			uint64_t *old = cache[slot].p;

			cache[slot].p = p;
			cache[slot].bytes = cap;
			p = old; /* all zeros: plain free */
		}
		pthread_mutex_unlock(&cache_lock);
	}
	free(p);
}

void qkd_gf2poly_release_cache(void)
{
	pthread_mutex_lock(&cache_lock);
	for (int i = 0; i < 2; i++) {
		free(cache[i].p);
		cache[i].p = NULL;
	}
	pthread_mutex_unlock(&cache_lock);
}

/*
 * Smallest k for which 2^k evaluation points give the wanted bits exactly.
 *
 * The FFT yields P mod s_k(y), s_k(y) = y^N + sum_{j proper submask of k}
 * y^(2^j) with N = 2^k. Normally N >= L (the product's piece count) so
 * nothing wraps. But only the pieces t_min..t_max feed the wanted bits, and
 * the wrapped part y^N P_hi = sum_j y^(2^j) P_hi lands below (L - N) + E,
 * E = 2^(k & (k - 1)) the largest such power. When k is a power of two
 * (E = 1: s_k = y^N + y) that is just the bottom of the product, which a
 * middle product (Toeplitz hashing) throws away: N then only has to cover
 * the longer operand, which halves the work for seeds of 2^16 pieces.
 */
static unsigned choose_log(uint64_t ca, uint64_t cb, uint64_t start, uint64_t nbits)
{
	uint64_t L = ca + cb - 1, big = ca > cb ? ca : cb;
	uint64_t t_min = start >= 62 ? (start - 62 + 31) / 32 : 0;
	uint64_t t_max = (start + nbits - 1) / 32;
	unsigned k = 1;

	while ((1ull << k) < big)
		k++;
	for (; k <= MAX_LOG; k++) {
		uint64_t N = 1ull << k, E = 1ull << (k & (k - 1));

		if (L <= N)
			return k;
		if (t_max < N && L - N + E <= t_min)
			return k;
	}
	return k;
}

/*
 * Product of a (na bits) and b (nb bits); bits [start, start + nbits) of it
 * go to out. Both operands > 0 bits.
 */
static int fft_product_bits(uint64_t *out, uint64_t start, uint64_t nbits,
			    const uint64_t *a, uint64_t na, const uint64_t *b, uint64_t nb)
{
	const struct qkd_gf64_ops *o = get_ops();
	unsigned k = choose_log((na + 31) / 32, (nb + 31) / 32, start, nbits);

	if (k > MAX_LOG)
		return -EINVAL;
	size_t N = (size_t)1 << k, bytes = N * sizeof(uint64_t), cap_a, cap_b;
	uint64_t *fa = get_work(bytes, &cap_a), *fb = get_work(bytes, &cap_b);

	if (!fa || !fb) {
		put_work(fa, cap_a, 0);
		put_work(fb, cap_b, 0);
		return -ENOMEM;
	}
	unpack_pieces(fa, N, a, na);
	unpack_pieces(fb, N, b, nb);
	size_t la = (size_t)((na + 31) / 32), lb = (size_t)((nb + 31) / 32);

	convert_fwd(fa, k, 1, la);
	convert_fwd(fb, k, 1, lb);
	fft_fwd_prefix(o, fa, k, 0, la);
	fft_fwd_prefix(o, fb, k, 0, lb);
	o->pointwise(fa, fb, N);
	put_work(fb, cap_b, N);
	fft_inv(o, fa, k, 0);
	convert_inv(fa, k, 1);

	size_t words = (size_t)((nbits + 63) / 64);
	uint64_t q = start / 64;
	unsigned sh = start % 64;
	uint64_t cur = product_word(fa, N, q);

	for (size_t w = 0; w < words; w++) {
		uint64_t next = product_word(fa, N, q + w + 1);

		out[w] = sh ? (cur >> sh) | (next << (64 - sh)) : cur;
		cur = next;
	}
	if (nbits % 64)
		out[words - 1] &= (1ull << (nbits % 64)) - 1;
	put_work(fa, cap_a, N);
	return 0;
}

int qkd_gf2poly_mul(uint64_t *c, const uint64_t *a, uint64_t na, const uint64_t *b, uint64_t nb)
{
	if (!na || !nb || na > QKD_TOEPLITZ_MAX_BITS || nb > QKD_TOEPLITZ_MAX_BITS)
		return -EINVAL;
	if (na + nb <= 256 + 1) {
		qkd_gf2poly_mul_schoolbook(c, a, na, b, nb);
		return 0;
	}
	return fft_product_bits(c, 0, na + nb - 1, a, na, b, nb);
}

int qkd_gf2poly_product_bits(uint64_t *out, uint64_t start, uint64_t nbits,
			     const uint64_t *a, uint64_t na, const uint64_t *b, uint64_t nb)
{
	return fft_product_bits(out, start, nbits, a, na, b, nb);
}

void qkd_gf2poly_mul_schoolbook(uint64_t *c, const uint64_t *a, uint64_t na,
				const uint64_t *b, uint64_t nb)
{
	size_t wa = (size_t)((na + 63) / 64), wb = (size_t)((nb + 63) / 64);
	size_t wc = (size_t)((na + nb - 1 + 63) / 64);
	uint64_t lasta = na % 64 ? (1ull << (na % 64)) - 1 : ~0ull;
	uint64_t lastb = nb % 64 ? (1ull << (nb % 64)) - 1 : ~0ull;

	memset(c, 0, wc * sizeof(*c));
	for (size_t i = 0; i < wa; i++) {
		uint64_t x = i == wa - 1 ? a[i] & lasta : a[i];

		for (size_t j = 0; j < wb; j++) {
			uint64_t y = j == wb - 1 ? b[j] & lastb : b[j], lo, hi;

			clmul64_portable(x, y, &lo, &hi);
			c[i + j] ^= lo;
			if (i + j + 1 < wc)
				c[i + j + 1] ^= hi;
		}
	}
}
