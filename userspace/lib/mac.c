// SPDX-License-Identifier: GPL-2.0
/*
 * Wegman-Carter polynomial hash over GF(2^128), portable path and dispatch.
 *
 * digest(M) = sum_{i=1..n} m_i k^(n+2-i)  ^  L k
 *
 * computed by Horner (acc = (acc ^ block) * k) over the message blocks m_1..m_n
 * (the last one zero-padded) and then one length block L = {bit length of M,
 * 1}. The length block makes messages that differ only by trailing zero bytes
 * (or by padding) distinct polynomials, and its constant hi word makes the
 * digest of the empty message (L k) non-zero, so an empty transcript is not
 * invisible when digests are chained. For M != M' of at most n blocks the
 * difference is a non-zero polynomial of degree <= n + 1 without constant
 * term, so Pr_k[digest(M) ^ digest(M') = c] <= (n + 1) / 2^128 for every c:
 * the family is epsilon-almost-XOR-universal. See
 * Documentation/authentication.md for the whole argument.
 *
 * The portable multiply is constant time (no key-dependent branches or table
 * look-ups): 64x64 carry-less products come from integer multiplications with
 * "holes" (the BearSSL technique), the high half from bit-reversed operands.
 */
#include <stdatomic.h>
#include <string.h>

#include "qkd/mac.h"
#include "mac-impl.h"

/* Low 64 bits of the carry-less product of x and y, constant time. */
static inline uint64_t bmul64(uint64_t x, uint64_t y)
{
	const uint64_t m1 = 0x1111111111111111ull, m2 = m1 << 1, m4 = m1 << 2,
		       m8 = m1 << 3;
	uint64_t x0 = x & m1, x1 = x & m2, x2 = x & m4, x3 = x & m8;
	uint64_t y0 = y & m1, y1 = y & m2, y2 = y & m4, y3 = y & m8;
	uint64_t z0, z1, z2, z3;

	/*
	 * Each partial product only collects terms whose exponents fall in
	 * one residue class mod 4; the three zero bits between them absorb the
	 * carries (at most 15 terms per position below bit 60; the 16 at bit
	 * 60 carry out beyond bit 63).
	 */
	z0 = (x0 * y0) ^ (x1 * y3) ^ (x2 * y2) ^ (x3 * y1);
	z1 = (x0 * y1) ^ (x1 * y0) ^ (x2 * y3) ^ (x3 * y2);
	z2 = (x0 * y2) ^ (x1 * y1) ^ (x2 * y0) ^ (x3 * y3);
	z3 = (x0 * y3) ^ (x1 * y2) ^ (x2 * y1) ^ (x3 * y0);
	return (z0 & m1) | (z1 & m2) | (z2 & m4) | (z3 & m8);
}

static inline uint64_t rev64(uint64_t x)
{
	x = ((x >> 1) & 0x5555555555555555ull) | ((x & 0x5555555555555555ull) << 1);
	x = ((x >> 2) & 0x3333333333333333ull) | ((x & 0x3333333333333333ull) << 2);
	x = ((x >> 4) & 0x0f0f0f0f0f0f0f0full) | ((x & 0x0f0f0f0f0f0f0f0full) << 4);
	return __builtin_bswap64(x);
}

/* Full 128-bit carry-less product of two 64-bit polynomials. */
static inline void clmul64(uint64_t x, uint64_t y, uint64_t *hi, uint64_t *lo)
{
	*lo = bmul64(x, y);
	/* rev(x) * rev(y) = x^126 * (x * y)(1/x): its low word reversed is
	 * the product's bits 63..126. */
	*hi = rev64(bmul64(rev64(x), rev64(y))) >> 1;
}

/* Reduce the 256-bit d[3..0] modulo x^128 + x^7 + x^2 + x + 1 into out. */
static inline void reduce256(uint64_t out[2], uint64_t d0, uint64_t d1, uint64_t d2,
			     uint64_t d3)
{
	/* x^192 = x^64 * (x^7 + x^2 + x + 1) */
	d1 ^= d3 ^ (d3 << 1) ^ (d3 << 2) ^ (d3 << 7);
	d2 ^= (d3 >> 63) ^ (d3 >> 62) ^ (d3 >> 57);
	/* x^128 = x^7 + x^2 + x + 1 */
	d0 ^= d2 ^ (d2 << 1) ^ (d2 << 2) ^ (d2 << 7);
	d1 ^= (d2 >> 63) ^ (d2 >> 62) ^ (d2 >> 57);
	out[0] = d0;
	out[1] = d1;
}

void qkd_gf128_mul_portable(uint64_t out[2], const uint64_t a[2], const uint64_t b[2])
{
	uint64_t lh, ll, hh, hl, mh, ml;

	/* Karatsuba: three 64x64 products. */
	clmul64(a[0], b[0], &lh, &ll);
	clmul64(a[1], b[1], &hh, &hl);
	clmul64(a[0] ^ a[1], b[0] ^ b[1], &mh, &ml);
	ml ^= ll ^ hl;
	mh ^= lh ^ hh;
	reduce256(out, ll, lh ^ ml, hl ^ mh, hh);
}

void qkd_polyhash_blocks_portable(uint64_t acc[2], const uint64_t pow[8][2],
				  const uint8_t *data, size_t n)
{
	uint64_t a[2] = { acc[0], acc[1] };

	for (size_t i = 0; i < n; i++, data += 16) {
		a[0] ^= qkd_le64(data);
		a[1] ^= qkd_le64(data + 8);
		qkd_gf128_mul_portable(a, a, pow[0]);
	}
	acc[0] = a[0];
	acc[1] = a[1];
}

/* -1 unknown, 0 portable, 1 clmul */
static atomic_int fast_state = -1;
static atomic_bool forced_portable;

bool qkd_mac_has_fast_path(void)
{
	int s = atomic_load_explicit(&fast_state, memory_order_relaxed);

	if (s < 0) {
		s = qkd_mac_cpu_has_clmul() ? 1 : 0;
		atomic_store(&fast_state, s);
	}
	return s == 1;
}

void qkd_mac_force_portable(bool portable)
{
	atomic_store(&forced_portable, portable);
}

static inline bool use_fast(void)
{
	return !atomic_load_explicit(&forced_portable, memory_order_relaxed) &&
	       qkd_mac_has_fast_path();
}

static void gf_mul(uint64_t out[2], const uint64_t a[2], const uint64_t b[2])
{
	if (use_fast())
		qkd_gf128_mul_clmul(out, a, b);
	else
		qkd_gf128_mul_portable(out, a, b);
}

static void blocks(struct qkd_polyhash *h, const uint8_t *data, size_t n)
{
	if (use_fast())
		qkd_polyhash_blocks_clmul(h->acc, (const uint64_t(*)[2])h->pow, data, n);
	else
		qkd_polyhash_blocks_portable(h->acc, (const uint64_t(*)[2])h->pow, data, n);
	h->blocks += n;
}

void qkd_gf128_mul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16])
{
	uint64_t x[2] = { qkd_le64(a), qkd_le64(a + 8) };
	uint64_t y[2] = { qkd_le64(b), qkd_le64(b + 8) };

	gf_mul(x, x, y);
	qkd_put_le64(out, x[0]);
	qkd_put_le64(out + 8, x[1]);
	explicit_bzero(x, sizeof(x));
	explicit_bzero(y, sizeof(y));
}

void qkd_polyhash_init(struct qkd_polyhash *h, const uint8_t key[QKD_MAC_KEY_LEN])
{
	memset(h, 0, sizeof(*h));
	h->key[0] = qkd_le64(key);
	h->key[1] = qkd_le64(key + 8);
	h->pow[0][0] = h->key[0];
	h->pow[0][1] = h->key[1];
	for (int i = 1; i < 8; i++)
		gf_mul(h->pow[i], h->pow[i - 1], h->key);
}

void qkd_polyhash_update(struct qkd_polyhash *h, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (!len)
		return; /* data may be NULL then */
	if (h->buf_len) {
		size_t n = 16 - h->buf_len;

		if (n > len)
			n = len;
		memcpy(h->buf + h->buf_len, p, n);
		h->buf_len += (unsigned)n;
		p += n;
		len -= n;
		if (h->buf_len < 16)
			return;
		blocks(h, h->buf, 1);
		h->buf_len = 0;
	}
	if (len >= 16) {
		blocks(h, p, len / 16);
		p += len & ~(size_t)15;
		len &= 15;
	}
	if (len) {
		memcpy(h->buf, p, len);
		h->buf_len = (unsigned)len;
	}
}

void qkd_polyhash_final(struct qkd_polyhash *h, uint8_t out[QKD_MAC_TAG_LEN])
{
	uint64_t bytes = h->blocks * 16 + h->buf_len;
	uint8_t len_block[16];

	if (h->buf_len) {
		memset(h->buf + h->buf_len, 0, 16 - h->buf_len);
		blocks(h, h->buf, 1);
	}
	qkd_put_le64(len_block, bytes * 8);
	qkd_put_le64(len_block + 8, 1);
	blocks(h, len_block, 1);
	qkd_put_le64(out, h->acc[0]);
	qkd_put_le64(out + 8, h->acc[1]);
	explicit_bzero(h, sizeof(*h));
}

void qkd_mac_tag(const uint8_t digest[16], const uint8_t pad[16], uint8_t tag[16])
{
	for (int i = 0; i < 16; i++)
		tag[i] = digest[i] ^ pad[i];
}

int qkd_mac_verify(const uint8_t a[16], const uint8_t b[16])
{
	volatile uint8_t d = 0;

	for (int i = 0; i < 16; i++)
		d |= a[i] ^ b[i];
	return d != 0;
}
