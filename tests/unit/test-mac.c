// SPDX-License-Identifier: GPL-2.0
/*
 * The Wegman-Carter polynomial hash: PCLMULQDQ path == portable path ==
 * an independent bit-by-bit reference, on random keys and messages of many
 * lengths and random update splits; length-block and field properties.
 */
#include <string.h>
#include <stdlib.h>
#include <sys/random.h>

#include "kselftest_harness.h"
#include "qkd/mac.h"

/* ---- independent naive reference: shift-and-add, bit by bit ---------- */

struct u128 {
	uint64_t lo, hi;
};

static struct u128 ld(const uint8_t *p)
{
	struct u128 r = { 0, 0 };

	for (int i = 0; i < 8; i++) {
		r.lo |= (uint64_t)p[i] << (8 * i);
		r.hi |= (uint64_t)p[8 + i] << (8 * i);
	}
	return r;
}

/* a * b mod x^128 + x^7 + x^2 + x + 1, one bit of b at a time */
static struct u128 ref_mul(struct u128 a, struct u128 b)
{
	struct u128 r = { 0, 0 };

	for (int i = 0; i < 128; i++) {
		uint64_t bit = i < 64 ? (b.lo >> i) & 1 : (b.hi >> (i - 64)) & 1;
		uint64_t carry;

		if (bit) {
			r.lo ^= a.lo;
			r.hi ^= a.hi;
		}
		carry = a.hi >> 63;
		a.hi = (a.hi << 1) | (a.lo >> 63);
		a.lo <<= 1;
		if (carry)
			a.lo ^= 0x87;
	}
	return r;
}

static void ref_hash(const uint8_t key[16], const uint8_t *m, size_t len, uint8_t out[16])
{
	struct u128 k = ld(key), acc = { 0, 0 };
	uint8_t blk[16];

	for (size_t off = 0; off < len; off += 16) {
		size_t n = len - off < 16 ? len - off : 16;

		memset(blk, 0, 16);
		memcpy(blk, m + off, n);
		struct u128 b = ld(blk);

		acc.lo ^= b.lo;
		acc.hi ^= b.hi;
		acc = ref_mul(acc, k);
	}
	acc.lo ^= (uint64_t)len * 8;
	acc.hi ^= 1;
	acc = ref_mul(acc, k);
	for (int i = 0; i < 8; i++) {
		out[i] = (uint8_t)(acc.lo >> (8 * i));
		out[8 + i] = (uint8_t)(acc.hi >> (8 * i));
	}
}

/* ---- helpers ---------------------------------------------------------- */

static void rnd(void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = getrandom(b, n, 0);

		if (r > 0) {
			b += r;
			n -= (size_t)r;
		}
	}
}

static void hash(bool portable, const uint8_t key[16], const uint8_t *m, size_t len,
		 uint8_t out[16])
{
	struct qkd_polyhash h;

	qkd_mac_force_portable(portable);
	qkd_polyhash_init(&h, key);
	qkd_polyhash_update(&h, m, len);
	qkd_polyhash_final(&h, out);
	qkd_mac_force_portable(false);
}

/* Same message fed in random pieces. */
static void hash_split(bool portable, const uint8_t key[16], const uint8_t *m, size_t len,
		       uint8_t out[16])
{
	struct qkd_polyhash h;
	size_t off = 0;

	qkd_mac_force_portable(portable);
	qkd_polyhash_init(&h, key);
	while (off < len) {
		uint32_t r;
		size_t n;

		rnd(&r, sizeof(r));
		n = r % 300;
		if (n > len - off)
			n = len - off;
		qkd_polyhash_update(&h, m + off, n);
		off += n;
	}
	qkd_polyhash_final(&h, out);
	qkd_mac_force_portable(false);
}

/* ---- tests ------------------------------------------------------------ */

TEST(field_known_answers)
{
	uint8_t x[16] = { 2 }, x127[16] = { 0 }, out[16], want[16] = { 0x87 };
	uint8_t one[16] = { 1 }, a[16];

	x127[15] = 0x80; /* x^127 */
	for (int p = 0; p < 2; p++) {
		if (p && !qkd_mac_has_fast_path())
			break;
		qkd_mac_force_portable(!p);
		/* x * x^127 = x^128 = x^7 + x^2 + x + 1 */
		qkd_gf128_mul(out, x, x127);
		EXPECT_EQ(0, memcmp(out, want, 16));
		/* 1 is the identity */
		rnd(a, 16);
		qkd_gf128_mul(out, a, one);
		EXPECT_EQ(0, memcmp(out, a, 16));
	}
	qkd_mac_force_portable(false);
}

TEST(mul_fast_equals_portable_equals_reference)
{
	for (int i = 0; i < 2000; i++) {
		uint8_t a[16], b[16], o1[16], o2[16];
		struct u128 r;

		rnd(a, 16);
		rnd(b, 16);
		if (i < 4) { /* extremes */
			memset(a, i & 1 ? 0xff : 0, 16);
			memset(b, i & 2 ? 0xff : 0x80, 16);
		}
		qkd_mac_force_portable(true);
		qkd_gf128_mul(o1, a, b);
		qkd_mac_force_portable(false);
		qkd_gf128_mul(o2, a, b);
		r = ref_mul(ld(a), ld(b));
		ASSERT_EQ(0, memcmp(o1, o2, 16));
		ASSERT_EQ(r.lo, ld(o1).lo);
		ASSERT_EQ(r.hi, ld(o1).hi);
	}
}

TEST(hash_fast_equals_portable_equals_reference)
{
	static uint8_t msg[9000];
	size_t lens[] = { 0, 1, 15, 16, 17, 31, 32, 33, 127, 128, 129, 143, 144, 255, 256,
			  257, 1023, 1024, 1025, 4096, 8999, 9000 };
	int n = 0;

	ksft_print_msg("fast path available: %s\n", qkd_mac_has_fast_path() ? "yes" : "no");
	for (int round = 0; round < 400; round++) {
		uint8_t key[16], d_fast[16], d_port[16], d_ref[16], d_split[16];
		size_t len;

		if (round < (int)(sizeof(lens) / sizeof(lens[0]))) {
			len = lens[round];
		} else {
			uint32_t r;

			rnd(&r, sizeof(r));
			len = r % sizeof(msg);
		}
		rnd(key, 16);
		rnd(msg, len);
		hash(false, key, msg, len, d_fast);
		hash(true, key, msg, len, d_port);
		ref_hash(key, msg, len, d_ref);
		hash_split(round & 1, key, msg, len, d_split);
		ASSERT_EQ(0, memcmp(d_fast, d_port, 16)) TH_LOG("len %zu", len);
		ASSERT_EQ(0, memcmp(d_port, d_ref, 16)) TH_LOG("len %zu", len);
		ASSERT_EQ(0, memcmp(d_split, d_ref, 16)) TH_LOG("len %zu", len);
		n++;
	}
	ksft_print_msg("%d random messages agree on all three implementations\n", n);
}

TEST(length_block_separates_zero_padding)
{
	uint8_t key[16], z[64] = { 0 }, d[65][16];

	rnd(key, 16);
	/* 0..64 zero bytes: identical blocks after padding, distinct digests */
	for (int n = 0; n <= 64; n++)
		hash(false, key, z, (size_t)n, d[n]);
	for (int i = 0; i <= 64; i++) {
		for (int j = i + 1; j <= 64; j++) {
			ASSERT_NE(0, memcmp(d[i], d[j], 16)) {
				TH_LOG("%d vs %d zero bytes", i, j);
			}
		}
	}
	/* the empty message does not hash to zero */
	EXPECT_NE(0, memcmp(d[0], (uint8_t[16]){ 0 }, 16));
}

TEST(single_bit_flips_change_digest)
{
	uint8_t key[16], m[300], d0[16], d1[16];

	rnd(key, 16);
	rnd(m, sizeof(m));
	hash(false, key, m, sizeof(m), d0);
	for (size_t bit = 0; bit < sizeof(m) * 8; bit++) {
		m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		hash(bit & 1, key, m, sizeof(m), d1);
		m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ASSERT_NE(0, memcmp(d0, d1, 16)) TH_LOG("bit %zu", bit);
	}
}

TEST(tag_and_verify)
{
	uint8_t d[16], pad[16], t[16], t2[16];

	rnd(d, 16);
	rnd(pad, 16);
	qkd_mac_tag(d, pad, t);
	memcpy(t2, t, 16);
	EXPECT_EQ(0, qkd_mac_verify(t, t2));
	for (int i = 0; i < 128; i++) {
		t2[i / 8] ^= (uint8_t)(1u << (i % 8));
		EXPECT_NE(0, qkd_mac_verify(t, t2));
		t2[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* tag ^ pad gives the digest back */
	qkd_mac_tag(t, pad, t2);
	EXPECT_EQ(0, memcmp(t2, d, 16));
}

TEST(final_wipes_state)
{
	struct qkd_polyhash h;
	uint8_t key[16], d[16];

	rnd(key, 16);
	qkd_polyhash_init(&h, key);
	qkd_polyhash_update(&h, "abc", 3);
	qkd_polyhash_final(&h, d);
	for (size_t i = 0; i < sizeof(h); i++)
		ASSERT_EQ(0, ((uint8_t *)&h)[i]);
}

TEST_HARNESS_MAIN
