// SPDX-License-Identifier: GPL-2.0
/*
 * Key confirmation: equal keys pass, every single-bit difference is caught
 * (over many trials, every bit position of small blocks, random positions of
 * large ones), the tag sizes follow eps_cor and the block length, the
 * disclosed count is the sum of the tag bits, and the wire message
 * round-trips and refuses malformed input.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kselftest_harness.h"
#include "qkd/confirm.h"

static uint8_t *rand_key(uint64_t nbits)
{
	size_t bytes = (size_t)((nbits + 63) / 64) * 8;
	uint8_t *k = malloc(bytes);

	if (k && getrandom(k, bytes, 0) != (ssize_t)bytes) {
		free(k);
		return NULL;
	}
	return k;
}

/* Alice computes with fresh keys; Bob with the keys she sent. */
static bool confirm_once(const struct qkd_confirm_plan *p, const uint8_t *ka, const uint8_t *kb,
			 uint64_t nbits)
{
	struct qkd_confirm_tag a, b, dec;
	struct qkd_confirm_plan pd;
	uint64_t n = 0;
	uint8_t *msg;
	size_t len;
	const char *err = NULL;

	qkd_confirm_new_keys(p, &a);
	qkd_confirm_compute(p, ka, nbits, &a);
	if (qkd_confirm_encode(p, nbits, &a, &msg, &len) ||
	    qkd_confirm_decode(msg, len, &pd, &n, &dec, &err) || n != nbits ||
	    !qkd_confirm_plan_equal(p, &pd))
		abort();
	free(msg);
	memcpy(b.key, dec.key, sizeof(b.key));
	qkd_confirm_compute(&pd, kb, nbits, &b);
	return qkd_confirm_equal(p, &dec, &b);
}

TEST(plan_sizes)
{
	struct qkd_confirm_plan p;

	/* 2^20 bits = 8192 blocks: log2(8193) = 13.0002 per hash */
	ASSERT_EQ(0, qkd_confirm_plan(1 << 20, pow(2, -40), &p));
	ASSERT_EQ(1u, p.hashes);
	ASSERT_EQ(54u, p.tag_bits[0]);
	ASSERT_EQ(54u, p.total_bits);
	/* tiny block: 1 block, log2(2) = 1 */
	ASSERT_EQ(0, qkd_confirm_plan(100, 1e-12, &p));
	ASSERT_EQ(1u, p.hashes);
	ASSERT_EQ((unsigned)ceil(-log2(1e-12) + 1), p.tag_bits[0]);
	/* more than 128 bits needed: two hashes, each with its own log2(B + 1) */
	ASSERT_EQ(0, qkd_confirm_plan(1 << 20, pow(2, -120), &p));
	ASSERT_EQ(2u, p.hashes);
	ASSERT_EQ(147u, p.total_bits); /* ceil(120 + 2 * 13.0002) */
	ASSERT_EQ(p.total_bits, (uint64_t)p.tag_bits[0] + p.tag_bits[1]);
	ASSERT_EQ(-EINVAL, qkd_confirm_plan(0, 1e-12, &p));
	ASSERT_EQ(-EINVAL, qkd_confirm_plan(1000, 0, &p));
	ASSERT_EQ(-EINVAL, qkd_confirm_plan(1000, 1, &p));
}

TEST(equal_keys_pass)
{
	static const uint64_t sizes[] = { 1, 7, 8, 9, 127, 128, 129, 1000, 65536, 1 << 20 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct qkd_confirm_plan p;
		uint8_t *k = rand_key(sizes[i]);

		ASSERT_EQ(0, qkd_confirm_plan(sizes[i], 1e-12, &p));
		for (int t = 0; t < 20; t++)
			ASSERT_TRUE(confirm_once(&p, k, k, sizes[i]));
		free(k);
	}
}

TEST(bits_beyond_the_block_are_ignored)
{
	struct qkd_confirm_plan p;
	uint8_t a[16] = { 0x5a, 0x03 }, b[16] = { 0x5a, 0xff, 0x77 };

	/* 10 bits: only the low 2 bits of byte 1 count */
	ASSERT_EQ(0, qkd_confirm_plan(10, 1e-9, &p));
	ASSERT_TRUE(confirm_once(&p, a, b, 10));
	b[1] = 0x02;
	ASSERT_FALSE(confirm_once(&p, a, b, 10));
}

TEST(every_single_bit_difference_is_caught)
{
	struct qkd_confirm_plan p;
	uint64_t n = 1031; /* odd, spans several hash blocks */
	uint8_t *ka = rand_key(n), *kb = rand_key(n);

	ASSERT_EQ(0, qkd_confirm_plan(n, 1e-12, &p));
	for (uint64_t bit = 0; bit < n; bit++) {
		memcpy(kb, ka, (n + 7) / 8);
		kb[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ASSERT_FALSE(confirm_once(&p, ka, kb, n)) TH_LOG("bit %llu", (unsigned long long)bit);
	}
	free(ka);
	free(kb);
}

TEST(random_differences_in_large_blocks)
{
	struct qkd_confirm_plan p;
	uint64_t n = (1 << 18) + 5;
	uint8_t *ka = rand_key(n), *kb = rand_key(n);

	/* eps_cor 2^-40 (tags of 52 bits): a false pass in 300 trials has p < 3e-10 */
	ASSERT_EQ(0, qkd_confirm_plan(n, pow(2, -40), &p));
	for (int t = 0; t < 300; t++) {
		uint32_t r[3];

		ASSERT_EQ((ssize_t)sizeof(r), getrandom(r, sizeof(r), 0));
		memcpy(kb, ka, (n + 7) / 8);
		kb[(r[0] % n) / 8] ^= (uint8_t)(1u << ((r[0] % n) % 8));
		if (t % 2) /* and some bursts */
			kb[(r[1] % n) / 8] ^= (uint8_t)(r[2] | 1);
		ASSERT_FALSE(confirm_once(&p, ka, kb, n));
	}
	free(ka);
	free(kb);
}

TEST(short_tags_collide_at_the_expected_rate)
{
	/*
	 * Sanity check of the analysis, not only of the code: with eps_cor = 1/4
	 * on a one-block key the tag is 3 bits (2 + log2 2); a fixed difference
	 * must collide for some keys (the bound 2/8 is not vacuous) and not for
	 * most. 4000 trials: expected rate <= 1/4.
	 */
	struct qkd_confirm_plan p;
	uint8_t a[16] = { 1 }, b[16] = { 3 };
	int same = 0;

	ASSERT_EQ(0, qkd_confirm_plan(64, 0.25, &p));
	ASSERT_EQ(3u, p.total_bits);
	for (int t = 0; t < 4000; t++)
		same += confirm_once(&p, a, b, 64);
	ASSERT_GT(same, 0);
	ASSERT_LT(same, 1000 + 150); /* 1/4 plus 5 sigma */
}

TEST(disclosed_count_is_the_tag_bits)
{
	struct qkd_confirm_plan p;
	struct qkd_confirm_tag t;
	uint8_t *msg, k[8] = { 0 };
	size_t len;

	ASSERT_EQ(0, qkd_confirm_plan(1 << 16, 1e-15, &p));
	qkd_confirm_new_keys(&p, &t);
	qkd_confirm_compute(&p, k, 64, &t);
	ASSERT_EQ(0, qkd_confirm_encode(&p, 1 << 16, &t, &msg, &len));
	/* the message carries exactly total_bits tag bits (rounded to bytes) */
	ASSERT_EQ(16 + 17 + (p.total_bits + 7) / 8, len);
	ASSERT_EQ((uint64_t)ceil(-log2(1e-15) + log2(513)), p.total_bits);
	free(msg);
}

TEST(decode_refuses_malformed)
{
	struct qkd_confirm_plan p, pd;
	struct qkd_confirm_tag t, d;
	uint64_t n;
	uint8_t *msg, k[8] = { 0 };
	size_t len;
	const char *err;

	ASSERT_EQ(0, qkd_confirm_plan(4096, 1e-12, &p));
	qkd_confirm_new_keys(&p, &t);
	qkd_confirm_compute(&p, k, 64, &t);
	ASSERT_EQ(0, qkd_confirm_encode(&p, 4096, &t, &msg, &len));
	ASSERT_EQ(0, qkd_confirm_decode(msg, len, &pd, &n, &d, &err));
	for (size_t l = 0; l < len; l++) {
		err = NULL;
		ASSERT_EQ(-EBADMSG, qkd_confirm_decode(msg, l, &pd, &n, &d, &err));
		ASSERT_NE(NULL, err);
	}
	msg[0] = 2;
	ASSERT_EQ(-EBADMSG, qkd_confirm_decode(msg, len, &pd, &n, &d, &err));
	msg[0] = 1;
	msg[1] = 0;
	ASSERT_EQ(-EBADMSG, qkd_confirm_decode(msg, len, &pd, &n, &d, &err));
	msg[1] = 1;
	msg[16] = 128; /* tag bits: 1..127, and 0 for 128 */
	ASSERT_EQ(-EBADMSG, qkd_confirm_decode(msg, len, &pd, &n, &d, &err));
	msg[16] = 255;
	ASSERT_EQ(-EBADMSG, qkd_confirm_decode(msg, len, &pd, &n, &d, &err));
	msg[16] = (uint8_t)p.tag_bits[0];
	ASSERT_EQ(0, qkd_confirm_decode(msg, len, &pd, &n, &d, &err));
	msg[len - 1] |= 0x80; /* padding bit of a 52-bit tag */
	ASSERT_EQ(-EBADMSG, qkd_confirm_decode(msg, len, &pd, &n, &d, &err));
	free(msg);
}

TEST_HARNESS_MAIN
