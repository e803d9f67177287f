// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the control plane's JSON reader (service-json.c),
 * which parses registrations and statistics that arrive over the network.
 *
 * The input is parsed from an exact-size copy (so ASan sees any read past the
 * end). An accepted document is walked: every member the reader finds by key
 * and every array element must be a well-formed value itself. Independently,
 * the input taken as a C string must survive qkd_buf_json_str: the literal it
 * writes parses and unescapes back to the same text. Every accepted document
 * also renders as exactly one well-formed CBOR item (content negotiation).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/service-util.h"

/* End of the CBOR item at off, or -1 if malformed (definite lengths only). */
static long cbor_item(const uint8_t *p, size_t len, size_t off, int depth)
{
	unsigned major, ai;
	uint64_t arg = 0;

	if (off >= len || depth > 64)
		return -1;
	major = p[off] >> 5;
	ai = p[off] & 31;
	off++;
	if (ai >= 24 && ai <= 27) {
		size_t n = (size_t)1 << (ai - 24);

		if (off + n > len)
			return -1;
		for (size_t i = 0; i < n; i++)
			arg = arg << 8 | p[off + i];
		off += n;
	} else if (ai < 24) {
		arg = ai;
	} else {
		return -1;
	}
	if (major == 2 || major == 3)
		return arg <= len - off ? (long)(off + arg) : -1;
	if (major == 4 || major == 5) {
		for (uint64_t i = 0; i < arg * (major == 5 ? 2 : 1); i++) {
			long e = cbor_item(p, len, off, depth + 1);

			if (e < 0)
				return -1;
			off = (size_t)e;
		}
	}
	return major == 6 ? -1 : (long)off;
}

static void walk(struct qkd_json v, int depth)
{
	struct qkd_json e, chk;
	char s[64];
	double d;

	if (depth > 40)
		abort();
	/* A value found inside a valid document is itself a valid document. */
	if (qkd_json_parse(v.p, v.n, &chk) || chk.n != v.n)
		abort();
	qkd_json_str(v, s, sizeof(s));
	qkd_json_num(v, &d);
	for (size_t i = 0; i < 64 && qkd_json_index(v, i, &e); i++)
		walk(e, depth + 1);
	if (*v.p == '{') {
		static const char *const keys[] = { "pid", "port", "state", "stats", "a", "" };

		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (qkd_json_member(v, keys[k], &e))
				walk(e, depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	struct qkd_json j;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (!qkd_json_parse(copy, size, &j)) {
		struct qkd_buf c = { 0 };

		walk(j, 0);
		if (qkd_json_to_cbor(copy, size, &c) ||
		    cbor_item((const uint8_t *)c.s, c.len, 0, 0) != (long)c.len)
			abort();
		qkd_buf_free(&c);
	}
	free(copy);

	/* Round trip of a string through the writer (ASCII without NUL, short). */
	if (size < 200) {
		char text[201], back[256];
		struct qkd_buf b = { 0 };
		size_t n = 0;

		for (size_t i = 0; i < size; i++)
			if (data[i] && data[i] < 0x80)
				text[n++] = (char)data[i];
		text[n] = '\0';
		qkd_buf_json_str(&b, text);
		if (b.oom || qkd_json_parse(b.s, b.len, &j) || !qkd_json_str(j, back, sizeof(back)) ||
		    strcmp(back, text))
			abort();
		qkd_buf_free(&b);
	}
	return 0;
}
