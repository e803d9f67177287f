// SPDX-License-Identifier: GPL-2.0
/*
 * JSON for the control plane: a growable output buffer and a small
 * validating reader. Input comes from the network (registrations, module
 * statistics relayed to qpmctl), so the reader never trusts lengths, bounds
 * its recursion and never reads outside the span it was given.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qkd/service-util.h"

static bool buf_grow(struct qkd_buf *b, size_t need)
{
	size_t cap;
	char *s;

	if (b->oom)
		return false;
	if (b->len + need + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + need + 1)
		cap *= 2;
	s = realloc(b->s, cap);
	if (!s) {
		b->oom = true;
		return false;
	}
	b->s = s;
	b->cap = cap;
	return true;
}

void qkd_buf_put(struct qkd_buf *b, const char *s, size_t n)
{
	if (!buf_grow(b, n))
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void qkd_buf_printf(struct qkd_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void qkd_buf_json_str(struct qkd_buf *b, const char *s)
{
	if (!s) {
		qkd_buf_put(b, "null", 4);
		return;
	}
	qkd_buf_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };

			qkd_buf_put(b, e, 2);
		} else if (c < 0x20) {
			qkd_buf_printf(b, "\\u%04x", c);
		} else {
			qkd_buf_put(b, (const char *)&c, 1);
		}
	}
	qkd_buf_put(b, "\"", 1);
}

void qkd_buf_json_num(struct qkd_buf *b, double v)
{
	if (!isfinite(v))
		qkd_buf_put(b, "null", 4);
	else if (v == (double)(int64_t)v && fabs(v) < 9e15)
		qkd_buf_printf(b, "%lld", (long long)v);
	else
		qkd_buf_printf(b, "%.6g", v);
}

void qkd_buf_free(struct qkd_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

/* ---- reader ---- */

#define JSON_MAX_DEPTH 32

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Returns the end of the string literal starting at p ('"'), or NULL. */
static const char *skip_string(const char *p, const char *end)
{
	p++;
	while (p < end) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c == '\\') {
			if (++p >= end)
				return NULL;
			if (*p == 'u') {
				if (end - p < 5)
					return NULL;
				for (int i = 1; i <= 4; i++)
					if (hexval(p[i]) < 0)
						return NULL;
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return NULL;
}

static const char *skip_number(const char *p, const char *end)
{
	const char *s = p;

	if (p < end && *p == '-')
		p++;
	if (p >= end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	return p > s ? p : NULL;
}

static const char *skip_value(const char *p, const char *end, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return NULL;
	p = skip_ws(p, end);
	if (p >= end)
		return NULL;
	switch (*p) {
	case '"':
		return skip_string(p, end);
	case '{':
	case '[': {
		char close = *p == '{' ? '}' : ']';
		bool obj = *p == '{';

		p = skip_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				p = skip_ws(p, end);
				if (p >= end || *p != '"')
					return NULL;
				p = skip_string(p, end);
				if (!p)
					return NULL;
				p = skip_ws(p, end);
				if (p >= end || *p != ':')
					return NULL;
				p++;
			}
			p = skip_value(p, end, depth + 1);
			if (!p)
				return NULL;
			p = skip_ws(p, end);
			if (p >= end)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p != ',')
				return NULL;
			p++;
		}
	}
	case 't':
		return end - p >= 4 && !memcmp(p, "true", 4) ? p + 4 : NULL;
	case 'f':
		return end - p >= 5 && !memcmp(p, "false", 5) ? p + 5 : NULL;
	case 'n':
		return end - p >= 4 && !memcmp(p, "null", 4) ? p + 4 : NULL;
	default:
		return skip_number(p, end);
	}
}

int qkd_json_parse(const char *text, size_t len, struct qkd_json *out)
{
	const char *end = text + len;
	const char *s = skip_ws(text, end);
	const char *e = skip_value(s, end, 0);

	if (!e || skip_ws(e, end) != end)
		return -EINVAL;
	out->p = s;
	out->n = (size_t)(e - s);
	return 0;
}

/* Unescape the string literal at v into out (truncating). */
static bool unescape(const char *p, const char *end, char *out, size_t outlen)
{
	size_t o = 0;

	if (p >= end || *p != '"' || !outlen)
		return false;
	p++;
	while (p < end && *p != '"') {
		unsigned c = (unsigned char)*p++;

		if (c == '\\' && p < end) {
			char e = *p++;

			switch (e) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u':
				c = 0;
				for (int i = 0; i < 4 && p < end; i++)
					c = c * 16 + (unsigned)hexval(*p++);
				if (c >= 0x80)
					c = '?'; /* control plane text is ASCII */
				break;
			default: c = (unsigned char)e; break;
			}
		}
		if (o + 1 < outlen)
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return true;
}

bool qkd_json_member(struct qkd_json v, const char *key, struct qkd_json *out)
{
	const char *p = v.p, *end = v.p + v.n;
	char name[128];

	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		return false;
	p = skip_ws(p + 1, end);
	while (p < end && *p == '"') {
		const char *ke = skip_string(p, end), *ve;

		if (!ke || !unescape(p, ke, name, sizeof(name)))
			return false;
		p = skip_ws(ke, end);
		if (p >= end || *p != ':')
			return false;
		p = skip_ws(p + 1, end);
		ve = skip_value(p, end, 1);
		if (!ve)
			return false;
		if (!strcmp(name, key)) {
			out->p = p;
			out->n = (size_t)(ve - p);
			return true;
		}
		p = skip_ws(ve, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	return false;
}

bool qkd_json_index(struct qkd_json v, size_t i, struct qkd_json *out)
{
	const char *p = v.p, *end = v.p + v.n;

	p = skip_ws(p, end);
	if (p >= end || *p != '[')
		return false;
	p = skip_ws(p + 1, end);
	for (size_t k = 0; p < end && *p != ']'; k++) {
		const char *ve = skip_value(p, end, 1);

		if (!ve)
			return false;
		if (k == i) {
			out->p = p;
			out->n = (size_t)(ve - p);
			return true;
		}
		p = skip_ws(ve, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	return false;
}

bool qkd_json_str(struct qkd_json v, char *out, size_t outlen)
{
	return unescape(v.p, v.p + v.n, out, outlen);
}

bool qkd_json_num(struct qkd_json v, double *out)
{
	char tmp[64];
	char *e;

	if (!v.n || v.n >= sizeof(tmp) || !skip_number(v.p, v.p + v.n))
		return false;
	memcpy(tmp, v.p, v.n);
	tmp[v.n] = '\0';
	*out = strtod(tmp, &e);
	return e != tmp;
}

bool qkd_json_get_str(struct qkd_json v, const char *key, char *out, size_t outlen)
{
	struct qkd_json m;

	return qkd_json_member(v, key, &m) && qkd_json_str(m, out, outlen);
}

bool qkd_json_get_num(struct qkd_json v, const char *key, double *out)
{
	struct qkd_json m;

	return qkd_json_member(v, key, &m) && qkd_json_num(m, out);
}

uint64_t qkd_etag(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* ---- CBOR (RFC 8949) rendering of a JSON document ---- */

static void cbor_head(struct qkd_buf *b, unsigned major, uint64_t v)
{
	uint8_t h[9];
	size_t n;

	if (v < 24) {
		h[0] = (uint8_t)(major << 5 | v);
		n = 1;
	} else if (v <= 0xff) {
		h[0] = (uint8_t)(major << 5 | 24);
		h[1] = (uint8_t)v;
		n = 2;
	} else if (v <= 0xffff) {
		h[0] = (uint8_t)(major << 5 | 25);
		h[1] = (uint8_t)(v >> 8);
		h[2] = (uint8_t)v;
		n = 3;
	} else if (v <= 0xffffffffu) {
		h[0] = (uint8_t)(major << 5 | 26);
		for (int i = 0; i < 4; i++)
			h[1 + i] = (uint8_t)(v >> (24 - 8 * i));
		n = 5;
	} else {
		h[0] = (uint8_t)(major << 5 | 27);
		for (int i = 0; i < 8; i++)
			h[1 + i] = (uint8_t)(v >> (56 - 8 * i));
		n = 9;
	}
	qkd_buf_put(b, (const char *)h, n);
}

static void cbor_text(struct qkd_buf *b, const char *p, const char *end)
{
	char tmp[1024];

	/* Control-plane strings are short; longer ones are cut like qkd_json_str does. */
	unescape(p, end, tmp, sizeof(tmp));
	cbor_head(b, 3, strlen(tmp));
	qkd_buf_put(b, tmp, strlen(tmp));
}

static const char *to_cbor(const char *p, const char *end, struct qkd_buf *b, int depth)
{
	const char *e;

	if (depth > JSON_MAX_DEPTH)
		return NULL;
	p = skip_ws(p, end);
	if (p >= end)
		return NULL;
	e = skip_value(p, end, depth);
	if (!e)
		return NULL;
	switch (*p) {
	case '"':
		cbor_text(b, p, e);
		return e;
	case '{':
	case '[': {
		bool obj = *p == '{';
		char close = obj ? '}' : ']';
		const char *q = skip_ws(p + 1, end);
		uint64_t n = 0;

		/* Count first: CBOR heads carry the length. */
		for (const char *c = q; c < e - 1;) {
			if (obj) {
				c = skip_ws(skip_string(c, end), end) + 1;
			}
			c = skip_ws(skip_value(c, end, depth + 1), end);
			n++;
			if (*c == ',')
				c = skip_ws(c + 1, end);
			else
				break;
		}
		cbor_head(b, obj ? 5 : 4, n);
		while (q < e && *q != close) {
			if (obj) {
				const char *ke = skip_string(q, end);

				cbor_text(b, q, ke);
				q = skip_ws(ke, end) + 1;
			}
			q = to_cbor(q, end, b, depth + 1);
			if (!q)
				return NULL;
			q = skip_ws(q, end);
			if (*q == ',')
				q = skip_ws(q + 1, end);
		}
		return e;
	}
	case 't':
		qkd_buf_put(b, "\xf5", 1);
		return e;
	case 'f':
		qkd_buf_put(b, "\xf4", 1);
		return e;
	case 'n':
		qkd_buf_put(b, "\xf6", 1);
		return e;
	default: {
		char buf[64], *tmp = buf;
		double v;
		size_t l = (size_t)(e - p);

		/* The text is not NUL-terminated: convert from a terminated copy. */
		if (l >= sizeof(buf) && !(tmp = malloc(l + 1))) {
			b->oom = true;
			return NULL;
		}
		memcpy(tmp, p, l);
		tmp[l] = '\0';
		v = strtod(tmp, NULL);
		if (!strpbrk(tmp, ".eE") && fabs(v) < 9.2e18) {
			long long i = strtoll(tmp, NULL, 10);

			if (i >= 0)
				cbor_head(b, 0, (uint64_t)i);
			else
				cbor_head(b, 1, (uint64_t)(-(i + 1)));
		} else {
			uint8_t f[9];
			uint64_t bits;

			memcpy(&bits, &v, sizeof(bits));
			f[0] = 0xfb;
			for (int k = 0; k < 8; k++)
				f[1 + k] = (uint8_t)(bits >> (56 - 8 * k));
			qkd_buf_put(b, (const char *)f, 9);
		}
		if (tmp != buf)
			free(tmp);
		return e;
	}
	}
}

int qkd_json_to_cbor(const char *json, size_t len, struct qkd_buf *out)
{
	struct qkd_json j;

	if (qkd_json_parse(json, len, &j))
		return -EINVAL;
	if (!to_cbor(j.p, j.p + j.n, out, 0) || out->oom)
		return out->oom ? -ENOMEM : -EINVAL;
	return 0;
}
