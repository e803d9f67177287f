// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-ppk: the link's keyring, its keys, and taking one key out of it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyring.h"
#include "nlstore.h"

int ppk_desc_format(const char *tmpl, const char *link, uint64_t key_id,
		    char *out, size_t outlen)
{
	size_t n = 0;
	int w;

	if (!outlen)
		return -ENAMETOOLONG;
	for (const char *t = tmpl; *t; t++) {
		const char *piece;
		char num[24];
		size_t plen;

		if (*t != '%') {
			if (n + 1 >= outlen)
				return -ENAMETOOLONG;
			out[n++] = *t;
			continue;
		}
		switch (*++t) {
		case 'l':
			piece = link;
			break;
		case 'k':
			w = snprintf(num, sizeof(num), "%" PRIu64, key_id);
			if (w < 0)
				return -EINVAL;
			piece = num;
			break;
		case '%':
			piece = "%";
			break;
		default:
			return -EINVAL;
		}
		plen = strlen(piece);
		if (n + plen >= outlen)
			return -ENAMETOOLONG;
		memcpy(out + n, piece, plen);
		n += plen;
	}
	out[n] = 0;
	return 0;
}

int ppk_desc_parse(const char *tmpl, const char *link, const char *desc, uint64_t *key_id)
{
	char prefix[512], suffix[512];
	const char *k = strstr(tmpl, "%k");
	size_t plen, slen, dlen = strlen(desc);
	char *tcopy;
	uint64_t v = 0;
	int ret;

	if (!k)
		return -EINVAL;
	/* Expand the parts before and after %k (key id 0 is not used there). */
	tcopy = strndup(tmpl, k - tmpl);
	if (!tcopy)
		return -ENOMEM;
	ret = ppk_desc_format(tcopy, link, 0, prefix, sizeof(prefix));
	free(tcopy);
	if (ret)
		return ret;
	ret = ppk_desc_format(k + 2, link, 0, suffix, sizeof(suffix));
	if (ret)
		return ret;
	plen = strlen(prefix);
	slen = strlen(suffix);
	if (dlen < plen + slen + 1 || strncmp(desc, prefix, plen) ||
	    strcmp(desc + dlen - slen, suffix))
		return -ENOENT;
	for (size_t i = plen; i < dlen - slen; i++) {
		unsigned int d = (unsigned char)desc[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -ENOENT;
		v = v * 10 + d;
	}
	*key_id = v;
	return 0;
}

key_serial_t ppk_find_keyring(const struct ppk_store *st, const char *link)
{
	char desc[256];
	key_serial_t ring;
	int ret;

	if (st->keyring)
		return st->keyring;
	/*
	 * The store's own answer first: it knows which keyring belongs to the
	 * link in our network namespace (keyrings themselves are global).
	 */
	ret = ppk_nl_link_keyring(link, &ring);
	if (ret == 0)
		return ring;
	if (ret != -EPROTONOSUPPORT)
		return ret;	/* the store is there and said no */
	ret = ppk_desc_format(st->keyring_desc, link, 0, desc, sizeof(desc));
	if (ret)
		return ret;
	ring = request_key("keyring", desc, NULL, 0);
	if (ring < 0)
		return errno == ENOKEY ? -ENOENT : -errno;
	return ring;
}

static int cmp_key(const void *a, const void *b)
{
	const struct ppk_key *x = a, *y = b;

	return x->key_id < y->key_id ? -1 : x->key_id > y->key_id;
}

/*
 * keyctl_describe gives "type;uid;gid;perm;description". The description may
 * itself hold ';', so split off exactly four fields.
 */
static int describe(key_serial_t id, char *type, size_t tlen, char **desc, char **buf)
{
	char *p;
	size_t n;

	if (keyctl_describe_alloc(id, buf) < 0)
		return -errno;
	p = *buf;
	n = strcspn(p, ";");
	if (!p[n] || n >= tlen) {
		free(*buf);
		return -EBADMSG;
	}
	memcpy(type, p, n);
	type[n] = 0;
	for (int i = 0; i < 4; i++) {
		p = strchr(p, ';');
		if (!p) {
			free(*buf);
			return -EBADMSG;
		}
		p++;
	}
	*desc = p;
	return 0;
}

int ppk_list_keys(const struct ppk_store *st, const char *link, struct ppk_key **keys)
{
	key_serial_t ring = ppk_find_keyring(st, link);
	key_serial_t *ids = NULL;
	struct ppk_key *out;
	long len;
	int n = 0;

	*keys = NULL;
	if (ring < 0)
		return ring;
	len = keyctl_read_alloc(ring, (void **)&ids);
	if (len < 0)
		return errno == ENOKEY ? -ENOENT : -errno;
	out = calloc(len / sizeof(*ids) + 1, sizeof(*out));
	if (!out) {
		free(ids);
		return -ENOMEM;
	}
	for (size_t i = 0; i < len / sizeof(*ids); i++) {
		char type[64], *desc = NULL, *buf = NULL;
		uint64_t kid;

		/* Keys consumed meanwhile or not viewable are simply not listed. */
		if (describe(ids[i], type, sizeof(type), &desc, &buf))
			continue;
		if (!strcmp(type, st->key_type) &&
		    !ppk_desc_parse(st->key_desc, link, desc, &kid)) {
			out[n].key_id = kid;
			out[n].serial = ids[i];
			n++;
		}
		free(buf);
	}
	free(ids);
	qsort(out, n, sizeof(*out), cmp_key);
	*keys = out;
	return n;
}

/* One read with room for any key: a QKD key is consumed by the read. */
static int read_once(key_serial_t serial, uint8_t *buf)
{
	long r = keyctl_read(serial, (char *)buf, PPK_KEY_MAX);

	if (r < 0) {
		switch (errno) {
		case ENOKEY:
		case EKEYEXPIRED:
			return -ENOENT;
		default:
			return -errno;
		}
	}
	if (r > PPK_KEY_MAX) {
		explicit_bzero(buf, PPK_KEY_MAX);
		return -EMSGSIZE;
	}
	if (r == 0)
		return -ENODATA;
	return (int)r;
}

int ppk_take_key(const struct ppk_store *st, const char *link, int any_id, uint64_t key_id,
		 struct ppk_key *key, uint8_t *buf)
{
	struct ppk_key *keys;
	int n, ret = -ENOENT;

	n = ppk_list_keys(st, link, &keys);
	if (n < 0)
		return n;
	/*
	 * Ascending ids: "next" is the first one we can read. Another consumer
	 * may take a key between listing and reading; then try the next one.
	 */
	for (int i = 0; i < n; i++) {
		if (!any_id && keys[i].key_id != key_id)
			continue;
		ret = read_once(keys[i].serial, buf);
		if (ret > 0) {
			*key = keys[i];
			break;
		}
		if (ret != -ENOENT && ret != -EKEYREVOKED && ret != -ENODATA)
			break;
		ret = -ENOENT;
		if (!any_id)
			break;
	}
	free(keys);
	return ret;
}

void ppk_retire_key(const struct ppk_key *key)
{
	/* Already gone for a consuming key type; errors do not matter. */
	keyctl_invalidate(key->serial);
}
