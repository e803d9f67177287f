// SPDX-License-Identifier: GPL-2.0
/*
 * Frame format: round trip of every field over many payload sizes, and
 * rejection of every kind of malformed or truncated input with the right
 * reason. The CRC32C here is an independent bitwise implementation, checked
 * against the standard test vector, so the library's table is checked too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "qkd/frame.h"

static uint32_t ref_crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
	}
	return ~c;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Recompute the header checksum after a deliberate edit. */
static void recrc(uint8_t *hdr)
{
	put32(hdr + 92, ref_crc32c(hdr, 92));
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next64(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A random valid frame of the given state and bit count. */
static struct qkd_frame *make(uint8_t state, uint64_t bits)
{
	uint32_t len = state == QKD_STATE_RAW ? (uint32_t)bits :
		       state == QKD_STATE_ABORTED ? 0 : qkd_bits_to_bytes(bits);
	struct qkd_frame *f = qkd_frame_new(len);

	f->state = state;
	f->key_id = next64();
	f->flags = next64() & QKD_FRAME_F_BOB;
	f->qber_ppm = next64() & 1 ? (uint32_t)(next64() % 1000001) : QKD_QBER_UNKNOWN;
	f->bit_count = bits;
	f->disclosed_bits = next64();
	f->auth_ctx = next64();
	f->auth_stages = (uint32_t)next64();
	f->abort_reason = state == QKD_STATE_ABORTED ? 1 + next64() % 6 : 0;
	for (int d = 0; d < 2; d++)
		for (int i = 0; i < 16; i++)
			f->auth_acc[d][i] = (uint8_t)next64();
	f->payload_len = len;
	for (uint32_t i = 0; i < len; i++)
		f->payload[i] = (uint8_t)next64();
	if (state >= QKD_STATE_SIFTED && state <= QKD_STATE_AUTHENTICATED)
		for (uint64_t i = bits; i < (uint64_t)len * 8; i++)
			qkd_bit_set(f->payload, i, 0);
	return f;
}

/* Encode f into a fresh buffer (header + payload); returns its length. */
static size_t encode(const struct qkd_frame *f, uint8_t **out)
{
	size_t n = QKD_FRAME_HDR_LEN + f->payload_len;

	*out = malloc(n);
	qkd_frame_encode_header(f, *out);
	if (f->payload_len)
		memcpy(*out + QKD_FRAME_HDR_LEN, f->payload, f->payload_len);
	return n;
}

static int same(const struct qkd_frame *a, const struct qkd_frame *b)
{
	return a->key_id == b->key_id && a->state == b->state && a->flags == b->flags &&
	       a->qber_ppm == b->qber_ppm && a->bit_count == b->bit_count &&
	       a->disclosed_bits == b->disclosed_bits && a->auth_ctx == b->auth_ctx &&
	       a->abort_reason == b->abort_reason && a->auth_stages == b->auth_stages &&
	       !memcmp(a->auth_acc, b->auth_acc, sizeof(a->auth_acc)) &&
	       a->payload_len == b->payload_len &&
	       (!a->payload_len || !memcmp(a->payload, b->payload, a->payload_len));
}

TEST(crc_vector_and_header_layout)
{
	static const uint8_t v[] = "123456789";
	struct qkd_frame *f = make(QKD_STATE_SIFTED, 100);
	uint8_t *buf;

	ASSERT_EQ(0xe3069283u, ref_crc32c(v, 9));
	encode(f, &buf);
	/* Spot-check documented offsets (Documentation/frame-format.md). */
	EXPECT_EQ(0, memcmp(buf, "QKDF", 4));
	EXPECT_EQ(1, buf[4]);
	EXPECT_EQ(96, buf[5]);
	EXPECT_EQ(QKD_STATE_SIFTED, buf[6]);
	EXPECT_EQ(f->key_id, get64(buf + 8));
	EXPECT_EQ(f->bit_count, get64(buf + 16));
	EXPECT_EQ(f->disclosed_bits, get64(buf + 24));
	EXPECT_EQ(f->auth_ctx, get64(buf + 32));
	EXPECT_EQ(f->payload_len, (uint32_t)get64(buf + 44));
	EXPECT_EQ(0, memcmp(buf + 56, f->auth_acc[0], 16));
	EXPECT_EQ(0, memcmp(buf + 72, f->auth_acc[1], 16));
	EXPECT_EQ(ref_crc32c(buf, 92), (uint32_t)get64(buf + 92) & 0xffffffffu);
	free(buf);
	qkd_frame_free(f);
}

TEST(round_trip_all_states_many_sizes)
{
	static const uint8_t states[] = { 1, 2, 3, 4, 5, 6, 7 };
	static const uint64_t big[] = { 511, 512, 513, 4095 * 8 + 3, 65536 * 8, 1000003 };
	struct qkd_frame *g = qkd_frame_new(0);
	unsigned checked = 0;

	for (size_t s = 0; s < sizeof(states); s++) {
		for (uint64_t bits = 0; bits < 300 + sizeof(big) / sizeof(big[0]); bits++) {
			uint64_t b = bits < 300 ? bits : big[bits - 300];
			struct qkd_frame *f = make(states[s], b);
			uint8_t *buf, *ext;
			size_t n = encode(f, &buf);
			const char *err = NULL;
			ssize_t r = qkd_frame_decode(buf, n, g, &err);

			ASSERT_EQ((ssize_t)n, r) TH_LOG("state %u bits %lu: %s", states[s],
							 (unsigned long)b, err);
			ASSERT_TRUE(same(f, g));
			/* Trailing bytes of a next frame are not consumed. */
			ext = malloc(n + 7);
			memcpy(ext, buf, n);
			memset(ext + n, 'Q', 7);
			ASSERT_EQ((ssize_t)n, qkd_frame_decode(ext, n + 7, g, &err));
			free(ext);
			free(buf);
			qkd_frame_free(f);
			checked++;
		}
	}
	for (int reason = 1; reason <= 6; reason++) {
		struct qkd_frame *f = make(QKD_STATE_ABORTED, next64() % 5000);
		uint8_t *buf;
		size_t n;

		f->abort_reason = (uint8_t)reason;
		n = encode(f, &buf);
		ASSERT_EQ((ssize_t)n, qkd_frame_decode(buf, n, g, NULL));
		ASSERT_TRUE(same(f, g));
		ASSERT_EQ(0u, g->payload_len);
		free(buf);
		qkd_frame_free(f);
	}
	EXPECT_EQ(7u * 306, checked);
	qkd_frame_free(g);
}

TEST(every_truncation_is_incomplete_never_accepted)
{
	struct qkd_frame *f = make(QKD_STATE_ESTIMATED, 1000), *g = qkd_frame_new(0);
	uint8_t *buf;
	size_t n = encode(f, &buf);
	const char *err;

	for (size_t len = 0; len < n; len++) {
		/* Exact-size copy so ASan catches any read past len. */
		uint8_t *p = malloc(len ? len : 1);

		memcpy(p, buf, len);
		ASSERT_EQ(0, qkd_frame_decode(p, len, g, &err)) TH_LOG("len %zu", len);
		if (len < QKD_FRAME_HDR_LEN) {
			err = NULL;
			ASSERT_EQ(-EBADMSG, qkd_frame_decode_header(p, len, g, &err));
			ASSERT_NE(NULL, err);
		}
		free(p);
	}
	free(buf);
	qkd_frame_free(f);
	qkd_frame_free(g);
}

TEST(every_flipped_header_bit_is_rejected)
{
	struct qkd_frame *f = make(QKD_STATE_CORRECTED, 777), *g = qkd_frame_new(0);
	uint8_t *buf;
	size_t n = encode(f, &buf);

	for (int bit = 0; bit < QKD_FRAME_HDR_LEN * 8; bit++) {
		const char *err = NULL;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ASSERT_GT(0, qkd_frame_decode(buf, n, g, &err)) TH_LOG("bit %d", bit);
		ASSERT_NE(NULL, err);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	ASSERT_EQ((ssize_t)n, qkd_frame_decode(buf, n, g, NULL));
	free(buf);
	qkd_frame_free(f);
	qkd_frame_free(g);
}

/*
 * One malformation per case: edit the encoded header (then fix the checksum
 * so the intended check, not the CRC, has to catch it).
 */
struct bad {
	const char *what;
	uint8_t state;
	uint64_t bits;
	int off, width;		/* field to overwrite */
	uint64_t value;
	bool keep_crc;		/* do not recompute the checksum */
	int err;
	const char *reason;	/* substring of the error */
};

static const struct bad bads[] = {
	{ "magic", 2, 64, 0, 4, 0x46444b52, true, -EBADMSG, "magic" },
	{ "version 0", 2, 64, 4, 1, 0, false, -EBADMSG, "version" },
	{ "version 2", 2, 64, 4, 1, 2, false, -EBADMSG, "version" },
	{ "header_len", 2, 64, 5, 1, 95, false, -EBADMSG, "header_len" },
	{ "crc", 2, 64, 92, 4, 0, true, -EBADMSG, "checksum" },
	{ "state 0", 2, 64, 6, 1, 0, false, -EBADMSG, "state" },
	{ "state 8", 2, 64, 6, 1, 8, false, -EBADMSG, "state" },
	{ "state 0xfe", 2, 64, 6, 1, 0xfe, false, -EBADMSG, "state" },
	{ "flags", 2, 64, 7, 1, 0x02, false, -EBADMSG, "flag" },
	{ "reserved 53", 2, 64, 53, 1, 1, false, -EBADMSG, "reserved" },
	{ "reserved 55", 2, 64, 55, 1, 0x80, false, -EBADMSG, "reserved" },
	{ "reserved 88", 2, 64, 88, 4, 1u << 31, false, -EBADMSG, "reserved" },
	{ "qber", 3, 64, 40, 4, 1000001, false, -EBADMSG, "qber" },
	{ "sifted len short", 2, 65, 44, 4, 8, false, -EBADMSG, "payload_len" },
	{ "sifted len long", 2, 64, 44, 4, 16, false, -EBADMSG, "payload_len" },
	{ "sifted not word multiple", 2, 64, 44, 4, 9, false, -EBADMSG, "payload_len" },
	{ "sifted bits huge", 2, 64, 16, 8, 1ull << 40, false, -EMSGSIZE, "bit_count" },
	{ "raw len", 1, 100, 44, 4, 99, false, -EBADMSG, "raw" },
	{ "raw bits", 1, 100, 16, 8, 101, false, -EBADMSG, "raw" },
	{ "raw huge", 1, 100, 16, 8, 1ull << 32, false, -EMSGSIZE, "raw" },
	{ "payload over max", 1, 100, 44, 4, (1u << 28) + 1, false, -EMSGSIZE, "QKD_FRAME_MAX_PAYLOAD" },
	{ "abort reason on sifted", 2, 64, 52, 1, 1, false, -EBADMSG, "abort_reason" },
	{ "abort reason on raw", 1, 64, 52, 1, 3, false, -EBADMSG, "abort_reason" },
	{ "aborted no reason", 0xff, 0, 52, 1, 0, false, -EBADMSG, "abort_reason" },
	{ "aborted reason 7", 0xff, 0, 52, 1, 7, false, -EBADMSG, "abort_reason" },
	{ "aborted payload", 0xff, 0, 44, 4, 8, false, -EBADMSG, "non-empty" },
};

TEST(each_malformation_rejected_with_its_reason)
{
	struct qkd_frame *g = qkd_frame_new(0);

	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		struct qkd_frame *f = make(b->state, b->bits);
		uint8_t *buf;
		size_t n = encode(f, &buf), big;
		const char *err = NULL;
		ssize_t r;

		for (int k = 0; k < b->width; k++)
			buf[b->off + k] = (uint8_t)(b->value >> (8 * k));
		if (!b->keep_crc)
			recrc(buf);
		/* Room for a payload as long as the edited header claims, if sane. */
		big = n + 64;
		buf = realloc(buf, big);
		memset(buf + n, 0, big - n);
		r = qkd_frame_decode(buf, big, g, &err);
		ASSERT_EQ(b->err, r) TH_LOG("%s: got %zd (%s)", b->what, r, err);
		ASSERT_NE(NULL, err);
		ASSERT_NE(NULL, strstr(err, b->reason)) TH_LOG("%s: reason \"%s\"", b->what, err);
		err = NULL;
		ASSERT_EQ(b->err, qkd_frame_decode_header(buf, QKD_FRAME_HDR_LEN, g, &err));
		ASSERT_NE(NULL, err);
		free(buf);
		qkd_frame_free(f);
	}
	qkd_frame_free(g);
}

TEST(padding_bits_must_be_zero)
{
	struct qkd_frame *g = qkd_frame_new(0);

	for (uint64_t bits = 1; bits < 200; bits += 7) {
		struct qkd_frame *f = make(QKD_STATE_AMPLIFIED, bits);
		uint8_t *buf;
		size_t n = encode(f, &buf);
		const char *err = NULL;

		if (bits % 64 == 0) {
			free(buf);
			qkd_frame_free(f);
			continue;
		}
		/* The last padding bit of the last word. */
		buf[n - 1] |= 0x80;
		ASSERT_EQ(-EBADMSG, qkd_frame_decode(buf, n, g, &err));
		ASSERT_NE(NULL, strstr(err, "padding"));
		buf[n - 1] &= 0x7f;
		/* The first padding bit. */
		qkd_bit_set(buf + QKD_FRAME_HDR_LEN, bits, 1);
		ASSERT_EQ(-EBADMSG, qkd_frame_decode(buf, n, g, &err)) TH_LOG("bits %lu",
									     (unsigned long)bits);
		free(buf);
		qkd_frame_free(f);
	}
	qkd_frame_free(g);
}

TEST(garbage_is_refused_from_the_first_bytes)
{
	struct qkd_frame *g = qkd_frame_new(0);
	const char *err = NULL;

	ASSERT_EQ(-EBADMSG, qkd_frame_decode((const uint8_t *)"QKX", 3, g, &err));
	ASSERT_NE(NULL, strstr(err, "magic"));
	ASSERT_EQ(-EBADMSG, qkd_frame_decode((const uint8_t *)"QKDF\x07", 5, g, &err));
	ASSERT_NE(NULL, strstr(err, "version"));
	ASSERT_EQ(0, qkd_frame_decode((const uint8_t *)"QKDF\x01\x60", 6, g, &err));
	qkd_frame_free(g);
}

TEST(rejected_frame_leaves_destination_untouched)
{
	struct qkd_frame *f = make(QKD_STATE_SIFTED, 128), *g;
	uint8_t *buf;
	size_t n = encode(f, &buf);

	g = make(QKD_STATE_RAW, 10);
	g->key_id = 4242;
	buf[6] = 9;
	recrc(buf);
	ASSERT_EQ(-EBADMSG, qkd_frame_decode(buf, n, g, NULL));
	EXPECT_EQ(4242u, g->key_id);
	EXPECT_EQ(QKD_STATE_RAW, g->state);
	free(buf);
	qkd_frame_free(f);
	qkd_frame_free(g);
}

TEST(reserve_keeps_content_and_names)
{
	struct qkd_frame *f = qkd_frame_new(16);

	ASSERT_NE(NULL, f);
	EXPECT_EQ(QKD_QBER_UNKNOWN, f->qber_ppm);
	memcpy(f->payload, "0123456789abcdef", 16);
	ASSERT_EQ(0, qkd_frame_reserve(f, 1 << 20));
	EXPECT_EQ(0, memcmp(f->payload, "0123456789abcdef", 16));
	EXPECT_EQ(0, f->payload[1 << 19]);
	EXPECT_STREQ("sifted", qkd_frame_state_name(2));
	EXPECT_STREQ("aborted", qkd_frame_state_name(0xff));
	EXPECT_STREQ("invalid", qkd_frame_state_name(0));
	qkd_frame_free(f);
	qkd_frame_free(NULL);
}

TEST_HARNESS_MAIN
