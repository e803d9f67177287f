// SPDX-License-Identifier: GPL-2.0
/*
 * VICI encoder/decoder: the builder produces the byte layout of strongSwan's
 * protocol description, random trees round-trip element by element, lookups
 * by path find what they should and nothing else, every kind of malformed
 * message and packet is refused (also every truncation of a valid one), and
 * the transport framing survives split reads, bad lengths, EOF and timeouts
 * over a real socket pair.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "qkd/vici.h"

/* The encoding example of strongSwan's VICI description, byte for byte. */
static const uint8_t example[] = {
	3, 4, 'k', 'e', 'y', '1', 0, 6, 'v', 'a', 'l', 'u', 'e', '1',
	1, 8, 's', 'e', 'c', 't', 'i', 'o', 'n', '1',
	1, 11, 's', 'u', 'b', '-', 's', 'e', 'c', 't', 'i', 'o', 'n',
	3, 4, 'k', 'e', 'y', '2', 0, 6, 'v', 'a', 'l', 'u', 'e', '2',
	2,
	4, 5, 'l', 'i', 's', 't', '1',
	5, 0, 5, 'i', 't', 'e', 'm', '1',
	5, 0, 5, 'i', 't', 'e', 'm', '2',
	6,
	2,
};

static void build_example(struct vici_builder *b)
{
	vici_builder_init(b);
	vici_add_kv_str(b, "key1", "value1");
	vici_begin_section(b, "section1");
	vici_begin_section(b, "sub-section");
	vici_add_kv_str(b, "key2", "value2");
	vici_end_section(b);
	vici_begin_list(b, "list1");
	vici_add_item_str(b, "item1");
	vici_add_item_str(b, "item2");
	vici_end_list(b);
	vici_end_section(b);
}

TEST(builder_matches_protocol_example)
{
	struct vici_builder b;

	build_example(&b);
	ASSERT_EQ(0, vici_builder_finish(&b));
	ASSERT_EQ(sizeof(example), b.len);
	ASSERT_EQ(0, memcmp(example, b.buf, b.len));
	vici_builder_free(&b);
	ASSERT_EQ(NULL, b.buf);
}

TEST(parser_walks_example)
{
	static const struct { int type, depth; const char *name, *value; } want[] = {
		{ VICI_KEY_VALUE, 0, "key1", "value1" },
		{ VICI_SECTION_START, 0, "section1", NULL },
		{ VICI_SECTION_START, 1, "sub-section", NULL },
		{ VICI_KEY_VALUE, 2, "key2", "value2" },
		{ VICI_SECTION_END, 1, NULL, NULL },
		{ VICI_LIST_START, 1, "list1", NULL },
		{ VICI_LIST_ITEM, 1, NULL, "item1" },
		{ VICI_LIST_ITEM, 1, NULL, "item2" },
		{ VICI_LIST_END, 1, NULL, NULL },
		{ VICI_SECTION_END, 0, NULL, NULL },
	};
	struct vici_parser p;
	struct vici_element el;

	vici_parser_init(&p, example, sizeof(example));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ASSERT_EQ(1, vici_parser_next(&p, &el));
		EXPECT_EQ(want[i].type, (int)el.type);
		EXPECT_EQ(want[i].depth, el.depth);
		if (want[i].name) {
			EXPECT_TRUE(vici_name_is(&el, want[i].name));
		} else {
			EXPECT_EQ(NULL, el.name);
		}
		if (want[i].value) {
			ASSERT_EQ(strlen(want[i].value), el.value_len);
			EXPECT_EQ(0, memcmp(want[i].value, el.value, el.value_len));
		}
	}
	ASSERT_EQ(0, vici_parser_next(&p, &el));
	ASSERT_EQ(VICI_END, (int)el.type);
	ASSERT_EQ(0, vici_parser_next(&p, &el));
}

TEST(find_by_path)
{
	const uint8_t *v;
	size_t n;
	char s[16];

	ASSERT_EQ(0, vici_find(example, sizeof(example), "key1", &v, &n));
	ASSERT_EQ(6u, n);
	ASSERT_EQ(0, memcmp(v, "value1", 6));
	ASSERT_EQ(0, vici_find_str(example, sizeof(example), "section1.sub-section.key2",
				   s, sizeof(s)));
	ASSERT_STREQ("value2", s);
	/* key2 is not in the root, nor directly in section1 */
	ASSERT_EQ(-ENOENT, vici_find(example, sizeof(example), "key2", &v, &n));
	ASSERT_EQ(-ENOENT, vici_find(example, sizeof(example), "section1.key2", &v, &n));
	ASSERT_EQ(-ENOENT, vici_find(example, sizeof(example), "nothere", &v, &n));
	/* a section or a list is not a key/value */
	ASSERT_EQ(-ENOENT, vici_find(example, sizeof(example), "section1", &v, &n));
	ASSERT_EQ(-ENOENT, vici_find(example, sizeof(example), "section1.list1", &v, &n));
	ASSERT_EQ(-ENAMETOOLONG, vici_find_str(example, sizeof(example), "key1", s, 6));
	ASSERT_EQ(0, vici_find_str(example, sizeof(example), "key1", s, 7));
	ASSERT_EQ(-EINVAL, vici_find(example, sizeof(example), "", &v, &n));
}

static int collect(const uint8_t *item, size_t len, void *arg)
{
	char *out = arg;

	strncat(out, (const char *)item, len);
	strcat(out, ",");
	return 0;
}

static int stop_at_second(const uint8_t *item, size_t len, void *arg)
{
	int *n = arg;

	return ++*n == 2 ? -EINTR : 0;
}

TEST(list_foreach)
{
	char out[64] = "";
	int n = 0;

	ASSERT_EQ(2, vici_list_foreach(example, sizeof(example), "section1.list1", collect, out));
	ASSERT_STREQ("item1,item2,", out);
	ASSERT_EQ(-ENOENT, vici_list_foreach(example, sizeof(example), "list1", collect, out));
	ASSERT_EQ(-EINTR, vici_list_foreach(example, sizeof(example), "section1.list1",
					    stop_at_second, &n));
}

TEST(empty_message_and_empty_values)
{
	struct vici_builder b;
	const uint8_t *v;
	size_t n;

	ASSERT_EQ(0, vici_message_validate(NULL, 0));
	vici_builder_init(&b);
	ASSERT_EQ(0, vici_builder_finish(&b));
	ASSERT_EQ(0, vici_add_kv(&b, "empty", NULL, 0));
	ASSERT_EQ(0, vici_begin_list(&b, "l"));
	ASSERT_EQ(0, vici_end_list(&b));
	ASSERT_EQ(0, vici_builder_finish(&b));
	ASSERT_EQ(0, vici_find(b.buf, b.len, "empty", &v, &n));
	ASSERT_EQ(0u, n);
	ASSERT_EQ(0, vici_list_foreach(b.buf, b.len, "l", NULL, NULL));
	vici_builder_free(&b);
}

TEST(builder_refuses_bad_structure)
{
	struct vici_builder b;
	char longname[257];
	static uint8_t big[65536];

	memset(longname, 'n', 256);
	longname[256] = 0;

	vici_builder_init(&b);
	ASSERT_EQ(-EINVAL, vici_end_section(&b));
	vici_builder_free(&b);

	vici_builder_init(&b);
	ASSERT_EQ(-EINVAL, vici_end_list(&b));
	vici_builder_free(&b);

	vici_builder_init(&b);
	ASSERT_EQ(-EINVAL, vici_add_item_str(&b, "x"));
	vici_builder_free(&b);

	vici_builder_init(&b);
	ASSERT_EQ(0, vici_begin_list(&b, "l"));
	ASSERT_EQ(-EINVAL, vici_add_kv_str(&b, "k", "v"));
	/* sticky: further calls fail with the first error */
	ASSERT_EQ(-EINVAL, vici_end_list(&b));
	ASSERT_EQ(-EINVAL, vici_builder_finish(&b));
	vici_builder_free(&b);

	vici_builder_init(&b);
	ASSERT_EQ(0, vici_begin_list(&b, "l"));
	ASSERT_EQ(-EINVAL, vici_begin_list(&b, "m"));
	vici_builder_free(&b);

	vici_builder_init(&b);
	ASSERT_EQ(0, vici_begin_list(&b, "l"));
	ASSERT_EQ(-EINVAL, vici_begin_section(&b, "s"));
	vici_builder_free(&b);

	vici_builder_init(&b);
	ASSERT_EQ(0, vici_begin_section(&b, "s"));
	ASSERT_EQ(-EINVAL, vici_builder_finish(&b));
	vici_builder_free(&b);

	vici_builder_init(&b);
	ASSERT_EQ(0, vici_add_kv_str(&b, longname + 1, "ok"));	/* 255 bytes is fine */
	ASSERT_EQ(-EINVAL, vici_add_kv_str(&b, longname, "v"));
	vici_builder_free(&b);

	vici_builder_init(&b);
	ASSERT_EQ(0, vici_add_kv(&b, "k", big, 65535));
	ASSERT_EQ(-EMSGSIZE, vici_add_kv(&b, "k2", big, 65536));
	vici_builder_free(&b);

	/* Beyond one segment in total: 7 such values fit, the 8th not. */
	vici_builder_init(&b);
	for (int i = 0; i < 7; i++)
		ASSERT_EQ(0, vici_add_kv(&b, "k", big, 65535));
	ASSERT_EQ(-EMSGSIZE, vici_add_kv(&b, "k", big, 65535));
	vici_builder_free(&b);

	vici_builder_init(&b);
	for (int i = 0; i < VICI_MAX_DEPTH; i++)
		ASSERT_EQ(0, vici_begin_section(&b, "d"));
	ASSERT_EQ(-EINVAL, vici_begin_section(&b, "d"));
	vici_builder_free(&b);
}

TEST(parser_refuses_malformed)
{
	static const struct { const char *what; uint8_t msg[16]; size_t len; } bad[] = {
		{ "unknown element type", { 7 }, 1 },
		{ "element type 0", { 0 }, 1 },
		{ "section end at root", { 2 }, 1 },
		{ "unclosed section", { 1, 1, 's' }, 3 },
		{ "unclosed list", { 4, 1, 'l' }, 3 },
		{ "item outside a list", { 5, 0, 1, 'x' }, 4 },
		{ "list end outside a list", { 6 }, 1 },
		{ "nested list", { 4, 1, 'l', 4, 1, 'm', 6, 6 }, 8 },
		{ "key/value in a list", { 4, 1, 'l', 3, 1, 'k', 0, 0, 6 }, 9 },
		{ "section in a list", { 4, 1, 'l', 1, 1, 's', 2, 6 }, 8 },
		{ "section end in a list", { 1, 1, 's', 4, 1, 'l', 2, 6 }, 8 },
		{ "name runs past the end", { 3, 9, 'k' }, 3 },
		{ "missing name length", { 1 }, 1 },
		{ "missing value length", { 3, 1, 'k' }, 3 },
		{ "half a value length", { 3, 1, 'k', 0 }, 4 },
		{ "value runs past the end", { 3, 1, 'k', 0, 5, 'a', 'b' }, 7 },
		{ "item value past the end", { 4, 1, 'l', 5, 1, 0, 6 }, 7 },
	};
	struct vici_parser p;
	struct vici_element el;
	uint8_t deep[2 * (VICI_MAX_DEPTH + 1) + VICI_MAX_DEPTH + 1];
	size_t n = 0;
	const uint8_t *v;
	size_t vl;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EBADMSG, vici_message_validate(bad[i].msg, bad[i].len))
			TH_LOG("%s accepted", bad[i].what);
		EXPECT_EQ(-EBADMSG, vici_find(bad[i].msg, bad[i].len, "k", &v, &vl))
			TH_LOG("%s: lookup did not report it", bad[i].what);
	}
	/* Sections nested one deeper than the limit. */
	for (int i = 0; i <= VICI_MAX_DEPTH; i++) {
		deep[n++] = 1;
		deep[n++] = 0;
	}
	for (int i = 0; i <= VICI_MAX_DEPTH; i++)
		deep[n++] = 2;
	ASSERT_EQ(-EBADMSG, vici_message_validate(deep, n));
	/* At the limit it is fine. */
	ASSERT_EQ(0, vici_message_validate(deep + 2, n - 3));

	/* The parser stays failed-safe: no element after an error is trusted. */
	vici_parser_init(&p, bad[0].msg, bad[0].len);
	ASSERT_EQ(-EBADMSG, vici_parser_next(&p, &el));
}

TEST(every_truncation_is_refused_or_a_valid_prefix)
{
	/* Cutting a message anywhere gives an error unless the cut falls at
	 * the end of a root-level element (then the prefix is a message). */
	static const size_t root_ends[] = { 14, sizeof(example) };

	for (size_t cut = 0; cut <= sizeof(example); cut++) {
		bool at_end = cut == 0;
		int ret;

		for (size_t i = 0; i < 2; i++)
			at_end |= cut == root_ends[i];
		ret = vici_message_validate(example, cut);
		EXPECT_EQ(at_end ? 0 : -EBADMSG, ret) TH_LOG("cut at %zu", cut);
	}
}

/* A deterministic generator, so a failure can be reproduced. */
static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*s >> 33);
}

struct rec {
	int type;
	char name[256];
	uint8_t value[300];
	size_t vlen;
};

static void rand_name(uint64_t *s, char *name)
{
	size_t n = 1 + rnd(s) % 20;

	if (rnd(s) % 50 == 0)
		n = 255;
	for (size_t i = 0; i < n; i++)
		name[i] = 'a' + rnd(s) % 26;
	name[n] = 0;
}

TEST(random_trees_round_trip)
{
	uint64_t seed = 0x5eed;
	struct rec *recs = calloc(400, sizeof(*recs));

	ASSERT_NE(NULL, recs);
	for (int iter = 0; iter < 300; iter++) {
		struct vici_builder b;
		struct vici_parser p;
		struct vici_element el;
		int n = 0, depth = 0;
		bool in_list = false;

		vici_builder_init(&b);
		while (n < 390) {
			struct rec *r = &recs[n];
			uint32_t c = rnd(&seed) % 10;

			if (c == 0 && n > 3)
				break;
			memset(r, 0, sizeof(*r));
			if (in_list) {
				if (c < 6) {
					r->type = VICI_LIST_ITEM;
					r->vlen = rnd(&seed) % sizeof(r->value);
					for (size_t i = 0; i < r->vlen; i++)
						r->value[i] = rnd(&seed);
					ASSERT_EQ(0, vici_add_item(&b, r->value, r->vlen));
				} else {
					r->type = VICI_LIST_END;
					ASSERT_EQ(0, vici_end_list(&b));
					in_list = false;
				}
			} else if (c < 4) {
				r->type = VICI_KEY_VALUE;
				rand_name(&seed, r->name);
				r->vlen = rnd(&seed) % sizeof(r->value);
				for (size_t i = 0; i < r->vlen; i++)
					r->value[i] = rnd(&seed);
				ASSERT_EQ(0, vici_add_kv(&b, r->name, r->value, r->vlen));
			} else if (c < 6 && depth < VICI_MAX_DEPTH) {
				r->type = VICI_SECTION_START;
				rand_name(&seed, r->name);
				ASSERT_EQ(0, vici_begin_section(&b, r->name));
				depth++;
			} else if (c < 8 && depth > 0) {
				r->type = VICI_SECTION_END;
				ASSERT_EQ(0, vici_end_section(&b));
				depth--;
			} else {
				r->type = VICI_LIST_START;
				rand_name(&seed, r->name);
				ASSERT_EQ(0, vici_begin_list(&b, r->name));
				in_list = true;
			}
			n++;
		}
		/* close everything */
		if (in_list) {
			memset(&recs[n], 0, sizeof(recs[n]));
			recs[n++].type = VICI_LIST_END;
			ASSERT_EQ(0, vici_end_list(&b));
		}
		while (depth--) {
			memset(&recs[n], 0, sizeof(recs[n]));
			recs[n++].type = VICI_SECTION_END;
			ASSERT_EQ(0, vici_end_section(&b));
		}
		ASSERT_EQ(0, vici_builder_finish(&b));

		vici_parser_init(&p, b.buf, b.len);
		for (int i = 0; i < n; i++) {
			ASSERT_EQ(1, vici_parser_next(&p, &el));
			ASSERT_EQ(recs[i].type, (int)el.type);
			if (recs[i].name[0]) {
				ASSERT_TRUE(vici_name_is(&el, recs[i].name));
			}
			if (el.type == VICI_KEY_VALUE || el.type == VICI_LIST_ITEM) {
				ASSERT_EQ(recs[i].vlen, el.value_len);
				ASSERT_EQ(0, memcmp(recs[i].value, el.value, el.value_len));
			}
		}
		ASSERT_EQ(0, vici_parser_next(&p, &el));
		vici_builder_free(&b);
	}
	free(recs);
}

TEST(print_is_readable_and_hides_binary)
{
	static const char want[] =
		"key1 = value1\n"
		"section1 {\n"
		"  sub-section {\n"
		"    key2 = value2\n"
		"  }\n"
		"  list1 = [\n"
		"    item1\n"
		"    item2\n"
		"  ]\n"
		"}\n";
	struct vici_builder b;
	uint8_t secret[4] = { 0xde, 0xad, 0xbe, 0xef };
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&text, &len);
	ASSERT_NE(NULL, f);
	ASSERT_EQ(0, vici_message_print(f, example, sizeof(example)));
	fclose(f);
	ASSERT_STREQ(want, text);
	free(text);

	/* binary values are shown as a length, control bytes in names as '?' */
	vici_builder_init(&b);
	vici_add_kv(&b, "data", secret, sizeof(secret));
	vici_add_kv_str(&b, "a\x1b[2Jb", "x");
	f = open_memstream(&text, &len);
	ASSERT_NE(NULL, f);
	ASSERT_EQ(0, vici_message_print(f, b.buf, b.len));
	fclose(f);
	ASSERT_STREQ("data = <4 bytes>\na?[2Jb = x\n", text);
	free(text);
	vici_builder_free(&b);
	ASSERT_EQ(-EBADMSG, vici_message_print(stdout, (const uint8_t *)"\x02", 1));
}

TEST(packet_parse)
{
	struct vici_packet pkt;
	uint8_t req[] = { VICI_CMD_REQUEST, 7, 'v', 'e', 'r', 's', 'i', 'o', 'n' };
	uint8_t resp[] = { VICI_CMD_RESPONSE, 3, 1, 'k', 0, 1, 'v' };
	uint8_t ev[] = { VICI_EVENT, 7, 'l', 'i', 's', 't', '-', 's', 'a', 2, 1, 'x' };
	uint8_t nulname[] = { VICI_EVENT, 3, 'a', 0, 'b' };
	uint8_t shortname[] = { VICI_EVENT_REGISTER, 5, 'a', 'b' };
	uint8_t noname[] = { VICI_EVENT };
	uint8_t badtype[] = { 8 };

	ASSERT_EQ(0, vici_packet_parse(req, sizeof(req), &pkt));
	ASSERT_EQ(VICI_CMD_REQUEST, pkt.type);
	ASSERT_STREQ("version", pkt.name);
	ASSERT_EQ(0u, pkt.msg_len);

	ASSERT_EQ(0, vici_packet_parse(resp, sizeof(resp), &pkt));
	ASSERT_STREQ("", pkt.name);
	ASSERT_EQ(sizeof(resp) - 1, pkt.msg_len);
	ASSERT_EQ(resp + 1, pkt.msg);

	ASSERT_EQ(0, vici_packet_parse(ev, sizeof(ev), &pkt));
	ASSERT_STREQ("list-sa", pkt.name);
	ASSERT_EQ(3u, pkt.msg_len);

	ASSERT_EQ(-EBADMSG, vici_packet_parse(nulname, sizeof(nulname), &pkt));
	ASSERT_EQ(-EBADMSG, vici_packet_parse(shortname, sizeof(shortname), &pkt));
	ASSERT_EQ(-EBADMSG, vici_packet_parse(noname, sizeof(noname), &pkt));
	ASSERT_EQ(-EBADMSG, vici_packet_parse(badtype, sizeof(badtype), &pkt));
	ASSERT_EQ(-EBADMSG, vici_packet_parse(req, 0, &pkt));
}

static void reply_packet(struct vici_packet *pkt, const struct vici_builder *b)
{
	memset(pkt, 0, sizeof(*pkt));
	pkt->type = VICI_CMD_RESPONSE;
	pkt->msg = b->buf;
	pkt->msg_len = b->len;
}

TEST(check_success)
{
	struct vici_builder b;
	struct vici_packet pkt;
	char err[16];
	uint8_t bad[] = { 2 };

	vici_builder_init(&b);
	vici_add_kv_str(&b, "success", "yes");
	reply_packet(&pkt, &b);
	ASSERT_EQ(0, vici_check_success(&pkt, err, sizeof(err)));
	vici_builder_free(&b);

	vici_builder_init(&b);
	vici_add_kv_str(&b, "success", "no");
	vici_add_kv_str(&b, "errmsg", "no such id");
	reply_packet(&pkt, &b);
	ASSERT_EQ(-EREMOTEIO, vici_check_success(&pkt, err, sizeof(err)));
	ASSERT_STREQ("no such id", err);
	vici_builder_free(&b);

	/* errmsg too long for the buffer: truncated, not lost */
	vici_builder_init(&b);
	vici_add_kv_str(&b, "success", "no");
	vici_add_kv_str(&b, "errmsg", "a rather long error message");
	reply_packet(&pkt, &b);
	ASSERT_EQ(-EREMOTEIO, vici_check_success(&pkt, err, sizeof(err)));
	ASSERT_STREQ("a rather long e", err);
	vici_builder_free(&b);

	/* no success key at all is a failure too */
	vici_builder_init(&b);
	vici_add_kv_str(&b, "other", "yes");
	reply_packet(&pkt, &b);
	ASSERT_EQ(-EREMOTEIO, vici_check_success(&pkt, err, sizeof(err)));
	ASSERT_NE(0, err[0]);
	vici_builder_free(&b);

	pkt.msg = bad;
	pkt.msg_len = sizeof(bad);
	ASSERT_EQ(-EBADMSG, vici_check_success(&pkt, err, sizeof(err)));
}

/* ---- transport over a real socket pair ---------------------------------- */

FIXTURE(conn) {
	struct vici_conn c;
	int peer;
};

FIXTURE_SETUP(conn)
{
	int sv[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	memset(&self->c, 0, sizeof(self->c));
	self->c.fd = sv[0];
	self->c.timeout_ms = 2000;
	self->peer = sv[1];
}

FIXTURE_TEARDOWN(conn)
{
	vici_close(&self->c);
	if (self->peer >= 0)
		close(self->peer);
}

static int read_n(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

TEST_F(conn, send_frames_named_packets)
{
	struct vici_builder b;
	uint8_t buf[64];

	build_example(&b);
	ASSERT_EQ(0, vici_send(&self->c, VICI_CMD_REQUEST, "version", b.buf, b.len));
	ASSERT_EQ(0, read_n(self->peer, buf, 4 + 1 + 1 + 7));
	ASSERT_EQ(0, buf[0]);
	ASSERT_EQ(0, buf[1]);
	ASSERT_EQ(0, buf[2]);
	ASSERT_EQ(1 + 1 + 7 + sizeof(example), buf[3]);
	ASSERT_EQ(VICI_CMD_REQUEST, buf[4]);
	ASSERT_EQ(7, buf[5]);
	ASSERT_EQ(0, memcmp(buf + 6, "version", 7));
	vici_builder_free(&b);
	/* named types need a name, unnamed ones must not have one */
	ASSERT_EQ(-EINVAL, vici_send(&self->c, VICI_CMD_REQUEST, NULL, NULL, 0));
	ASSERT_EQ(-EINVAL, vici_send(&self->c, VICI_CMD_RESPONSE, "x", NULL, 0));
	ASSERT_EQ(-EINVAL, vici_send(&self->c, 9, NULL, NULL, 0));
}

struct dribble {
	int fd;
	const uint8_t *buf;
	size_t len;
};

/* Write one byte at a time so the receiver sees every possible split. */
static void *dribble_thread(void *arg)
{
	struct dribble *d = arg;

	for (size_t i = 0; i < d->len; i++) {
		if (write(d->fd, d->buf + i, 1) != 1)
			break;
		if (i % 7 == 0)
			usleep(100);
	}
	return NULL;
}

TEST_F(conn, recv_reassembles_split_segments)
{
	uint8_t seg[4 + 1 + sizeof(example)];
	struct dribble d = { self->peer, seg, sizeof(seg) };
	struct vici_packet pkt;
	pthread_t t;
	char s[16];

	seg[0] = 0;
	seg[1] = 0;
	seg[2] = 0;
	seg[3] = 1 + sizeof(example);
	seg[4] = VICI_CMD_RESPONSE;
	memcpy(seg + 5, example, sizeof(example));
	ASSERT_EQ(0, pthread_create(&t, NULL, dribble_thread, &d));
	ASSERT_EQ(0, vici_recv(&self->c, &pkt));
	pthread_join(t, NULL);
	ASSERT_EQ(VICI_CMD_RESPONSE, pkt.type);
	ASSERT_EQ(sizeof(example), pkt.msg_len);
	ASSERT_EQ(0, vici_find_str(pkt.msg, pkt.msg_len, "section1.sub-section.key2", s,
				   sizeof(s)));
	ASSERT_STREQ("value2", s);
}

TEST_F(conn, recv_refuses_bad_lengths)
{
	struct vici_packet pkt;
	uint8_t zero[4] = { 0, 0, 0, 0 };
	uint8_t huge[4] = { 0, 0x08, 0, 1 };	/* 512 KiB + 1 */

	ASSERT_EQ(4, write(self->peer, zero, 4));
	ASSERT_EQ(-EBADMSG, vici_recv(&self->c, &pkt));
	ASSERT_EQ(4, write(self->peer, huge, 4));
	ASSERT_EQ(-EBADMSG, vici_recv(&self->c, &pkt));
}

TEST_F(conn, recv_eof_and_timeout)
{
	struct vici_packet pkt;
	uint8_t partial[6] = { 0, 0, 0, 10, VICI_CMD_RESPONSE, 3 };

	self->c.timeout_ms = 200;
	ASSERT_EQ(-ETIMEDOUT, vici_recv(&self->c, &pkt));
	ASSERT_EQ(6, write(self->peer, partial, 6));
	ASSERT_EQ(-ETIMEDOUT, vici_recv(&self->c, &pkt));
	close(self->peer);
	self->peer = -1;
	ASSERT_EQ(-ECONNRESET, vici_recv(&self->c, &pkt));
}

static int count_event(const struct vici_packet *ev, void *arg)
{
	int *n = arg;

	(*n)++;
	return strcmp(ev->name, "log") ? -EPROTO : 0;
}

TEST_F(conn, request_passes_events_and_maps_unknown)
{
	/* An event (log { k = "" }) arrives before the reply to the request. */
	uint8_t event[] = { 0, 0, 0, 10, VICI_EVENT, 3, 'l', 'o', 'g', 3, 1, 'k', 0, 0 };
	uint8_t unknown[] = { 0, 0, 0, 1, VICI_CMD_UNKNOWN };
	uint8_t confirm[] = { 0, 0, 0, 1, VICI_EVENT_CONFIRM };
	struct vici_packet pkt;
	uint8_t sink[64];
	int events = 0;

	ASSERT_EQ((ssize_t)sizeof(event), write(self->peer, event, sizeof(event)));
	ASSERT_EQ((ssize_t)sizeof(unknown), write(self->peer, unknown, sizeof(unknown)));
	ASSERT_EQ(-EOPNOTSUPP, vici_request(&self->c, "nope", NULL, &pkt, count_event, &events));
	ASSERT_EQ(1, events);
	/* the request itself went out as a named CMD_REQUEST without message */
	ASSERT_EQ(0, read_n(self->peer, sink, 4 + 2 + 4));
	ASSERT_EQ(6, sink[3]);
	ASSERT_EQ(VICI_CMD_REQUEST, sink[4]);
	ASSERT_EQ(0, memcmp(sink + 6, "nope", 4));

	/* a reply of the wrong kind is a protocol error */
	ASSERT_EQ((ssize_t)sizeof(confirm), write(self->peer, confirm, sizeof(confirm)));
	ASSERT_EQ(-EPROTO, vici_request(&self->c, "nope", NULL, &pkt, NULL, NULL));
}

/* Append one framed packet with a message to buf. */
static size_t frame(uint8_t *buf, uint8_t type, const char *name, const struct vici_builder *m)
{
	size_t n = 4, nlen = name ? strlen(name) : 0, len;

	buf[n++] = type;
	if (name) {
		buf[n++] = nlen;
		memcpy(buf + n, name, nlen);
		n += nlen;
	}
	if (m) {
		memcpy(buf + n, m->buf, m->len);
		n += m->len;
	}
	len = n - 4;
	buf[0] = len >> 24;
	buf[1] = len >> 16;
	buf[2] = len >> 8;
	buf[3] = len;
	return n;
}

struct seen {
	int n;
	char names[64];
	int fail_at;
};

static int on_sa(const struct vici_packet *ev, void *arg)
{
	struct seen *s = arg;
	struct vici_parser p;
	struct vici_element el;

	s->n++;
	vici_parser_init(&p, ev->msg, ev->msg_len);
	if (vici_parser_next(&p, &el) == 1 && el.type == VICI_SECTION_START)
		strncat(s->names, el.name, el.name_len);
	return s->n == s->fail_at ? -ECANCELED : 0;
}

/* list-sas as charon streams it: confirm, events, response, confirm. */
static size_t stream_script(uint8_t *buf)
{
	struct vici_builder e1, e2, r;
	size_t n = 0;

	vici_builder_init(&e1);
	vici_begin_section(&e1, "a");
	vici_add_kv_str(&e1, "ppk", "yes");
	vici_end_section(&e1);
	vici_builder_init(&e2);
	vici_begin_section(&e2, "b");
	vici_end_section(&e2);
	vici_builder_init(&r);
	vici_add_kv_str(&r, "done", "1");
	n += frame(buf + n, VICI_EVENT_CONFIRM, NULL, NULL);
	n += frame(buf + n, VICI_EVENT, "other-event", &e2);
	n += frame(buf + n, VICI_EVENT, "list-sa", &e1);
	n += frame(buf + n, VICI_EVENT, "list-sa", &e2);
	n += frame(buf + n, VICI_CMD_RESPONSE, NULL, &r);
	n += frame(buf + n, VICI_EVENT_CONFIRM, NULL, NULL);
	vici_builder_free(&e1);
	vici_builder_free(&e2);
	vici_builder_free(&r);
	return n;
}

TEST_F(conn, request_stream)
{
	uint8_t script[512], sink[256];
	struct seen seen = { 0, "", 0 };
	struct vici_packet resp;
	size_t n = stream_script(script);
	char v[8];

	ASSERT_EQ((ssize_t)n, write(self->peer, script, n));
	ASSERT_EQ(0, vici_request_stream(&self->c, "list-sas", NULL, "list-sa", on_sa, &seen,
					 &resp));
	/* only the registered event's packets, in order */
	ASSERT_EQ(2, seen.n);
	ASSERT_STREQ("ab", seen.names);
	/* the response survived the unregistration's receive */
	ASSERT_EQ(VICI_CMD_RESPONSE, resp.type);
	ASSERT_EQ(0, vici_find_str(resp.msg, resp.msg_len, "done", v, sizeof(v)));
	ASSERT_STREQ("1", v);
	/* register, request, unregister went out in that order */
	ASSERT_GT(read(self->peer, sink, sizeof(sink)), 0);
	ASSERT_EQ(VICI_EVENT_REGISTER, sink[4]);

	/* The callback fails on the first event: its error comes back, and the
	 * connection is still in step for the next exchange. */
	memset(&seen, 0, sizeof(seen));
	seen.fail_at = 1;
	ASSERT_EQ((ssize_t)n, write(self->peer, script, n));
	ASSERT_EQ(-ECANCELED, vici_request_stream(&self->c, "list-sas", NULL, "list-sa", on_sa,
						  &seen, &resp));
	ASSERT_EQ(1, seen.n);
	ASSERT_EQ((ssize_t)n, write(self->peer, script, n));
	memset(&seen, 0, sizeof(seen));
	ASSERT_EQ(0, vici_request_stream(&self->c, "list-sas", NULL, "list-sa", on_sa, &seen,
					 &resp));
	ASSERT_EQ(2, seen.n);
}

TEST_F(conn, register_unknown_event)
{
	uint8_t pkt[8];
	size_t n = frame(pkt, VICI_EVENT_UNKNOWN, NULL, NULL);

	ASSERT_EQ((ssize_t)n, write(self->peer, pkt, n));
	ASSERT_EQ(-ENOENT, vici_register(&self->c, "no-such-event"));
}

TEST_HARNESS_MAIN
