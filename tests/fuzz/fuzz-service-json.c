// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the control plane's JSON reader (service-json.c),
 * which parses registrations and statistics that arrive over the network.
 *
 * The input is parsed from an exact-size copy (so ASan sees any read past the
 * end). An accepted document is walked: every member the reader finds by key
 * and every array element must be a well-formed value itself. Independently,
 * the input taken as a C string must survive qkd_buf_json_str: the literal it
 * writes parses and unescapes back to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/service-util.h"

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
	if (!qkd_json_parse(copy, size, &j))
		walk(j, 0);
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
