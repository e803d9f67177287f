// SPDX-License-Identifier: GPL-2.0
/*
 * Key source: keys from a file (or memory) held in this process. For host
 * tests, the fuzz target and the bench, where the kernel module is absent;
 * it behaves like the store: fetch consumes; the next key is the first unused
 * one in file order. Each line: "LINK KEY_ID HEX", ids unique per link. Bytes are wiped when consumed or closed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keysrc.h"

struct mkey {
	char link[32];
	uint64_t id;
	size_t len;
	int used;
	uint8_t *data;
};

struct keysrc_mem {
	struct keysrc base;
	pthread_mutex_t lock;
	struct mkey *k;
	size_t n, cap, hint;
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int mem_count(struct keysrc *s, const char *link, uint32_t *avail, uint32_t *max)
{
	struct keysrc_mem *m = (struct keysrc_mem *)s;
	uint32_t a = 0, all = 0;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->k[i].link, link))
			continue;
		all++;
		a += !m->k[i].used;
	}
	pthread_mutex_unlock(&m->lock);
	if (!all)
		return -ENOENT;
	*avail = a;
	*max = all;
	return 0;
}

static int mem_fetch(struct keysrc *s, const char *link, const uint64_t *id,
		     uint64_t *id_out, uint8_t *buf, size_t *len)
{
	struct keysrc_mem *m = (struct keysrc_mem *)s;
	struct mkey *best = NULL;
	int known = 0;

	/* The next key is the first unused one in file order: the hint skips
	 * the consumed prefix, so a bench draining the file stays linear.
	 */
	pthread_mutex_lock(&m->lock);
	while (m->hint < m->n && m->k[m->hint].used)
		m->hint++;
	for (size_t i = id ? 0 : m->hint; i < m->n; i++) {
		struct mkey *k = &m->k[i];

		if (strcmp(k->link, link))
			continue;
		known = 1;
		if (k->used || (id && k->id != *id))
			continue;
		best = k;
		break;
	}
	if (!known && !id && m->hint)
		for (size_t i = 0; i < m->hint && !known; i++)
			known = !strcmp(m->k[i].link, link);
	if (best) {
		memcpy(buf, best->data, best->len);
		*len = best->len;
		*id_out = best->id;
		explicit_bzero(best->data, best->len);
		best->used = 1;
	}
	pthread_mutex_unlock(&m->lock);
	if (!best)
		return known && !id ? -ENODATA : -ENOENT;
	return 0;
}

static int mem_exists(struct keysrc *s, const char *link, uint64_t id)
{
	struct keysrc_mem *m = (struct keysrc_mem *)s;
	int found = 0;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n && !found; i++)
		found = m->k[i].id == id && !m->k[i].used && !strcmp(m->k[i].link, link);
	pthread_mutex_unlock(&m->lock);
	return found;
}

static void mem_close(struct keysrc *s)
{
	struct keysrc_mem *m = (struct keysrc_mem *)s;

	for (size_t i = 0; i < m->n; i++) {
		explicit_bzero(m->k[i].data, m->k[i].len);
		free(m->k[i].data);
	}
	free(m->k);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct keysrc_ops mem_ops = {
	.count = mem_count,
	.fetch = mem_fetch,
	.exists = mem_exists,
	.close = mem_close,
};

/* One line; returns 0 (added or blank), -EINVAL if malformed. */
static int mem_line(struct keysrc_mem *m, const char *p, const char *end)
{
	struct mkey *k;
	size_t l = 0, hexlen;
	const char *q;
	char num[24];
	char *e;
	int ret;

	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	if (p == end || *p == '#')
		return 0;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct mkey *nk = calloc(cap, sizeof(*nk));

		if (!nk)
			return -ENOMEM;
		if (m->k) {
			memcpy(nk, m->k, m->n * sizeof(*nk));
			free(m->k);
		}
		m->k = nk;
		m->cap = cap;
	}
	k = &m->k[m->n];
	while (p < end && *p != ' ' && *p != '\t' && l < sizeof(k->link) - 1)
		k->link[l++] = *p++;
	k->link[l] = 0;
	if (!l || p == end || (*p != ' ' && *p != '\t'))
		return -EINVAL;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (l = 0; p < end && *p >= '0' && *p <= '9' && l < sizeof(num) - 1;)
		num[l++] = *p++;
	num[l] = 0;
	if (!l || p == end || (*p != ' ' && *p != '\t'))
		return -EINVAL;
	k->id = strtoull(num, &e, 10);
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (q = p; q < end && hexval(*q) >= 0; q++)
		;
	hexlen = (size_t)(q - p) / 2;
	if (!hexlen || hexlen > KME_KEY_MAX)
		return -EINVAL;
	k->data = malloc(hexlen);
	if (!k->data)
		return -ENOMEM;
	for (k->len = 0; k->len < hexlen && hexval(p[0]) >= 0 && hexval(p[1]) >= 0; p += 2) {
		k->data[k->len++] = hexval(p[0]) << 4 | hexval(p[1]);
	}
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	ret = !k->len || p != end ? -EINVAL : 0;
	if (ret) {
		explicit_bzero(k->data, hexlen);
		free(k->data);
		k->data = NULL;
		return ret;
	}
	m->n++;
	return 0;
}

static int mem_new(struct keysrc_mem **out)
{
	struct keysrc_mem *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->base.ops = &mem_ops;
	*out = m;
	return 0;
}

static int mem_parse(struct keysrc_mem *m, const char *text, size_t len, size_t *bad_line)
{
	const char *p = text, *end = text + len;
	size_t line = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		const char *le = nl ? nl : end;
		int ret;

		line++;
		ret = mem_line(m, p, le);
		if (ret) {
			*bad_line = line;
			return ret;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

int keysrc_mem_open(struct keysrc **out, const char *text, size_t len)
{
	struct keysrc_mem *m;
	size_t bad;
	int ret = mem_new(&m);

	if (ret)
		return ret;
	ret = mem_parse(m, text, len, &bad);
	if (ret) {
		mem_close(&m->base);
		return ret;
	}
	*out = &m->base;
	return 0;
}

int keysrc_file_open(struct keysrc **out, const char *path, char *err, size_t errlen)
{
	struct keysrc_mem *m;
	char *text = NULL;
	size_t cap = 0, len = 0, bad = 0, r;
	FILE *f = fopen(path, "r");
	int ret;

	if (!f) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		return -errno;
	}
	do {
		if (len == cap) {
			char *nt = malloc(cap ? cap * 2 : 65536);

			if (!nt) {
				ret = -ENOMEM;
				goto out;
			}
			if (text) {
				memcpy(nt, text, len);
				explicit_bzero(text, cap);
				free(text);
			}
			text = nt;
			cap = cap ? cap * 2 : 65536;
		}
		r = fread(text + len, 1, cap - len, f);
		len += r;
	} while (r);
	ret = mem_new(&m);
	if (ret)
		goto out;
	ret = mem_parse(m, text, len, &bad);
	if (ret) {
		snprintf(err, errlen, "key file %s: line %zu: %s", path, bad,
			 "expected LINK KEY_ID HEX");
		mem_close(&m->base);
		goto out;
	}
	*out = &m->base;
out:
	if (text) {
		explicit_bzero(text, cap);
		free(text);
	}
	fclose(f);
	return ret;
}
