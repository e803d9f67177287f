// SPDX-License-Identifier: GPL-2.0
/*
 * VICI message encoding and decoding (see qkd/vici.h for the layers).
 *
 * Element layout:
 *   SECTION_START  type, u8 name length, name
 *   SECTION_END    type
 *   KEY_VALUE      type, u8 name length, name, be16 value length, value
 *   LIST_START     type, u8 name length, name
 *   LIST_ITEM      type, be16 value length, value
 *   LIST_END       type
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/vici.h"

/* Largest message that still fits one segment with type and a 255-byte name. */
#define VICI_MAX_MESSAGE	(VICI_MAX_SEGMENT - 2 - 255)

const char *vici_packet_type_name(unsigned int type)
{
	static const char *const names[] = {
		[VICI_CMD_REQUEST] = "CMD_REQUEST",
		[VICI_CMD_RESPONSE] = "CMD_RESPONSE",
		[VICI_CMD_UNKNOWN] = "CMD_UNKNOWN",
		[VICI_EVENT_REGISTER] = "EVENT_REGISTER",
		[VICI_EVENT_UNREGISTER] = "EVENT_UNREGISTER",
		[VICI_EVENT_CONFIRM] = "EVENT_CONFIRM",
		[VICI_EVENT_UNKNOWN] = "EVENT_UNKNOWN",
		[VICI_EVENT] = "EVENT",
	};

	if (type < sizeof(names) / sizeof(names[0]))
		return names[type];
	return "unknown packet type";
}

/* ---- builder ------------------------------------------------------------- */

void vici_builder_init(struct vici_builder *b)
{
	memset(b, 0, sizeof(*b));
}

void vici_builder_free(struct vici_builder *b)
{
	if (b->buf) {
		explicit_bzero(b->buf, b->cap);
		free(b->buf);
	}
	memset(b, 0, sizeof(*b));
}

static int fail(struct vici_builder *b, int err)
{
	if (!b->err)
		b->err = err;
	return b->err;
}

/*
 * Grow without realloc(): realloc may leave a copy of earlier bytes (key
 * material in load-shared) in freed memory, so copy and wipe ourselves.
 */
static int reserve(struct vici_builder *b, size_t more)
{
	size_t need, cap;
	uint8_t *nbuf;

	if (more > VICI_MAX_MESSAGE || b->len > VICI_MAX_MESSAGE - more)
		return fail(b, -EMSGSIZE);
	need = b->len + more;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	nbuf = malloc(cap);
	if (!nbuf)
		return fail(b, -ENOMEM);
	if (b->buf) {
		memcpy(nbuf, b->buf, b->len);
		explicit_bzero(b->buf, b->cap);
		free(b->buf);
	}
	b->buf = nbuf;
	b->cap = cap;
	return 0;
}

static void put_u8(struct vici_builder *b, uint8_t v)
{
	b->buf[b->len++] = v;
}

static void put_bytes(struct vici_builder *b, const void *p, size_t n)
{
	if (n)
		memcpy(b->buf + b->len, p, n);
	b->len += n;
}

/* Type byte plus optional name and optional value, after a size check. */
static int put_element(struct vici_builder *b, uint8_t type, const char *name,
		       const void *value, size_t vlen, bool has_value)
{
	size_t nlen = 0, total = 1;

	if (b->err)
		return b->err;
	if (name) {
		nlen = strlen(name);
		if (nlen > 255)
			return fail(b, -EINVAL);
		total += 1 + nlen;
	}
	if (has_value) {
		if (vlen > 0xffff)
			return fail(b, -EMSGSIZE);
		if (vlen && !value)
			return fail(b, -EINVAL);
		total += 2 + vlen;
	}
	if (reserve(b, total))
		return b->err;
	put_u8(b, type);
	if (name) {
		put_u8(b, (uint8_t)nlen);
		put_bytes(b, name, nlen);
	}
	if (has_value) {
		put_u8(b, (uint8_t)(vlen >> 8));
		put_u8(b, (uint8_t)vlen);
		put_bytes(b, value, vlen);
	}
	return 0;
}

int vici_begin_section(struct vici_builder *b, const char *name)
{
	if (b->err)
		return b->err;
	if (!name || b->in_list || b->depth >= VICI_MAX_DEPTH)
		return fail(b, -EINVAL);
	if (put_element(b, VICI_SECTION_START, name, NULL, 0, false))
		return b->err;
	b->depth++;
	return 0;
}

int vici_end_section(struct vici_builder *b)
{
	if (b->err)
		return b->err;
	if (b->in_list || b->depth == 0)
		return fail(b, -EINVAL);
	if (put_element(b, VICI_SECTION_END, NULL, NULL, 0, false))
		return b->err;
	b->depth--;
	return 0;
}

int vici_add_kv(struct vici_builder *b, const char *name, const void *value, size_t len)
{
	if (b->err)
		return b->err;
	if (!name || b->in_list)
		return fail(b, -EINVAL);
	return put_element(b, VICI_KEY_VALUE, name, value, len, true);
}

int vici_add_kv_str(struct vici_builder *b, const char *name, const char *value)
{
	if (!value)
		return fail(b, -EINVAL);
	return vici_add_kv(b, name, value, strlen(value));
}

int vici_begin_list(struct vici_builder *b, const char *name)
{
	if (b->err)
		return b->err;
	if (!name || b->in_list)
		return fail(b, -EINVAL);
	if (put_element(b, VICI_LIST_START, name, NULL, 0, false))
		return b->err;
	b->in_list = true;
	return 0;
}

int vici_add_item(struct vici_builder *b, const void *value, size_t len)
{
	if (b->err)
		return b->err;
	if (!b->in_list)
		return fail(b, -EINVAL);
	return put_element(b, VICI_LIST_ITEM, NULL, value, len, true);
}

int vici_add_item_str(struct vici_builder *b, const char *value)
{
	if (!value)
		return fail(b, -EINVAL);
	return vici_add_item(b, value, strlen(value));
}

int vici_end_list(struct vici_builder *b)
{
	if (b->err)
		return b->err;
	if (!b->in_list)
		return fail(b, -EINVAL);
	if (put_element(b, VICI_LIST_END, NULL, NULL, 0, false))
		return b->err;
	b->in_list = false;
	return 0;
}

int vici_builder_finish(const struct vici_builder *b)
{
	if (b->err)
		return b->err;
	if (b->depth || b->in_list)
		return -EINVAL;
	return 0;
}

/* ---- parser -------------------------------------------------------------- */

void vici_parser_init(struct vici_parser *p, const void *msg, size_t len)
{
	memset(p, 0, sizeof(*p));
	p->msg = msg;
	p->len = msg ? len : 0;
}

static bool take(struct vici_parser *p, size_t n, const uint8_t **out)
{
	if (n > p->len - p->off)
		return false;
	*out = p->msg + p->off;
	p->off += n;
	return true;
}

static bool take_name(struct vici_parser *p, struct vici_element *el)
{
	const uint8_t *l, *n;

	if (!take(p, 1, &l) || !take(p, *l, &n))
		return false;
	el->name = (const char *)n;
	el->name_len = *l;
	return true;
}

static bool take_value(struct vici_parser *p, struct vici_element *el)
{
	const uint8_t *l, *v;
	size_t len;

	if (!take(p, 2, &l))
		return false;
	len = (size_t)l[0] << 8 | l[1];
	if (!take(p, len, &v))
		return false;
	el->value = v;
	el->value_len = len;
	return true;
}

int vici_parser_next(struct vici_parser *p, struct vici_element *el)
{
	const uint8_t *t;

	memset(el, 0, sizeof(*el));
	if (p->done)
		return 0;
	if (p->off == p->len) {
		/* The end is only well-formed with everything closed. */
		if (p->depth || p->in_list)
			return -EBADMSG;
		p->done = true;
		el->type = VICI_END;
		return 0;
	}
	take(p, 1, &t);
	el->type = *t;
	switch (*t) {
	case VICI_SECTION_START:
		if (p->in_list || p->depth >= VICI_MAX_DEPTH || !take_name(p, el))
			return -EBADMSG;
		el->depth = p->depth++;
		return 1;
	case VICI_SECTION_END:
		if (p->in_list || p->depth == 0)
			return -EBADMSG;
		el->depth = --p->depth;
		return 1;
	case VICI_KEY_VALUE:
		if (p->in_list || !take_name(p, el) || !take_value(p, el))
			return -EBADMSG;
		break;
	case VICI_LIST_START:
		if (p->in_list || !take_name(p, el))
			return -EBADMSG;
		p->in_list = true;
		break;
	case VICI_LIST_ITEM:
		if (!p->in_list || !take_value(p, el))
			return -EBADMSG;
		break;
	case VICI_LIST_END:
		if (!p->in_list)
			return -EBADMSG;
		p->in_list = false;
		break;
	default:
		return -EBADMSG;
	}
	el->depth = p->depth;
	return 1;
}

int vici_message_validate(const void *msg, size_t len)
{
	struct vici_parser p;
	struct vici_element el;
	int ret;

	vici_parser_init(&p, msg, len);
	while ((ret = vici_parser_next(&p, &el)) > 0)
		;
	return ret;
}

bool vici_name_is(const struct vici_element *el, const char *name)
{
	size_t n = strlen(name);

	return el->name && el->name_len == n && memcmp(el->name, name, n) == 0;
}

/* Is the path component [c, c+clen) equal to the element's name? */
static bool name_eq(const struct vici_element *el, const char *c, size_t clen)
{
	return el->name && el->name_len == clen && memcmp(el->name, c, clen) == 0;
}

/*
 * Walk to the element named by the last component of path, descending only
 * into the sections named by the earlier components. want is KEY_VALUE or
 * LIST_START; on success the parser stands just after that element.
 */
static int seek(struct vici_parser *p, const char *path, enum vici_element_type want,
		struct vici_element *found)
{
	struct vici_element el;
	const char *comp = path;
	int matched = 0;	/* sections of path we are inside */
	int ret;

	if (!path || !*path)
		return -EINVAL;
	for (;;) {
		const char *dot = strchr(comp, '.');
		size_t clen = dot ? (size_t)(dot - comp) : strlen(comp);

		ret = vici_parser_next(p, &el);
		if (ret <= 0)
			return ret < 0 ? ret : -ENOENT;
		if (el.type == VICI_SECTION_END && el.depth < matched)
			/* Left a section of the path: the rest cannot match. */
			return -ENOENT;
		if (el.depth != matched)
			continue;
		if (dot && el.type == VICI_SECTION_START && name_eq(&el, comp, clen)) {
			matched++;
			comp = dot + 1;
		} else if (!dot && el.type == want && name_eq(&el, comp, clen)) {
			*found = el;
			return 0;
		}
	}
}

/* Finish walking so a lookup in a malformed message reports -EBADMSG. */
static int rest_valid(struct vici_parser *p)
{
	struct vici_element el;
	int ret;

	while ((ret = vici_parser_next(p, &el)) > 0)
		;
	return ret;
}

int vici_find(const void *msg, size_t len, const char *path,
	      const uint8_t **value, size_t *vlen)
{
	struct vici_parser p;
	struct vici_element el;
	int ret;

	vici_parser_init(&p, msg, len);
	ret = seek(&p, path, VICI_KEY_VALUE, &el);
	if (ret == -ENOENT && vici_message_validate(msg, len))
		return -EBADMSG;
	if (ret)
		return ret;
	ret = rest_valid(&p);
	if (ret)
		return ret;
	*value = el.value;
	*vlen = el.value_len;
	return 0;
}

int vici_find_str(const void *msg, size_t len, const char *path, char *out, size_t outlen)
{
	const uint8_t *v;
	size_t vlen;
	int ret;

	ret = vici_find(msg, len, path, &v, &vlen);
	if (ret)
		return ret;
	if (memchr(v, 0, vlen))
		return -EILSEQ;
	if (!out || vlen >= outlen)
		return -ENAMETOOLONG;
	memcpy(out, v, vlen);
	out[vlen] = 0;
	return 0;
}

int vici_list_foreach(const void *msg, size_t len, const char *path,
		      int (*fn)(const uint8_t *item, size_t len, void *arg), void *arg)
{
	struct vici_parser p;
	struct vici_element el;
	int ret, n = 0;

	/* Validate first so fn never sees items of a message we then reject. */
	ret = vici_message_validate(msg, len);
	if (ret)
		return ret;
	vici_parser_init(&p, msg, len);
	ret = seek(&p, path, VICI_LIST_START, &el);
	if (ret)
		return ret;
	for (;;) {
		ret = vici_parser_next(&p, &el);
		if (ret <= 0)
			return -EBADMSG;	/* cannot happen after validation */
		if (el.type == VICI_LIST_END)
			return n;
		if (fn) {
			ret = fn(el.value, el.value_len, arg);
			if (ret < 0)
				return ret;
		}
		n++;
	}
}

static bool printable(const uint8_t *v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return false;
	return true;
}

static void print_value(FILE *out, const uint8_t *v, size_t len)
{
	if (printable(v, len))
		fprintf(out, "%.*s", (int)len, (const char *)v);
	else
		fprintf(out, "<%zu bytes>", len);
}

/* Names are the peer's too: print them with non-printable bytes as '?'. */
static void print_name(FILE *out, int indent, const struct vici_element *el)
{
	fprintf(out, "%*s", indent, "");
	for (size_t i = 0; i < el->name_len; i++) {
		unsigned char c = el->name[i];

		fputc(c >= 0x20 && c < 0x7f ? c : '?', out);
	}
}

int vici_message_print(FILE *out, const void *msg, size_t len)
{
	struct vici_parser p;
	struct vici_element el;
	int ret, indent;

	ret = vici_message_validate(msg, len);
	if (ret)
		return ret;
	vici_parser_init(&p, msg, len);
	while ((ret = vici_parser_next(&p, &el)) > 0) {
		indent = 2 * (el.depth + (el.type == VICI_LIST_ITEM));
		switch (el.type) {
		case VICI_SECTION_START:
			print_name(out, indent, &el);
			fputs(" {\n", out);
			break;
		case VICI_SECTION_END:
			fprintf(out, "%*s}\n", indent, "");
			break;
		case VICI_KEY_VALUE:
			print_name(out, indent, &el);
			fputs(" = ", out);
			print_value(out, el.value, el.value_len);
			fputc('\n', out);
			break;
		case VICI_LIST_START:
			print_name(out, indent, &el);
			fputs(" = [\n", out);
			break;
		case VICI_LIST_ITEM:
			fprintf(out, "%*s", indent, "");
			print_value(out, el.value, el.value_len);
			fputc('\n', out);
			break;
		case VICI_LIST_END:
			fprintf(out, "%*s]\n", indent, "");
			break;
		default:
			break;
		}
	}
	return ret;
}
