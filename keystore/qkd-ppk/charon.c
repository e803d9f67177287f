// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-ppk: talking to charon over VICI.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "charon.h"

int charon_load_ppk(struct vici_conn *c, const char *ppk_id, const uint8_t *key, size_t len,
		    bool tag, char *err, size_t errlen)
{
	struct vici_builder b;
	struct vici_packet resp;
	int ret;

	vici_builder_init(&b);
	vici_add_kv_str(&b, "type", "ppk");
	if (tag)
		vici_add_kv_str(&b, "id", ppk_id);
	vici_add_kv(&b, "data", key, len);
	vici_begin_list(&b, "owners");
	vici_add_item_str(&b, ppk_id);
	vici_end_list(&b);
	ret = vici_builder_finish(&b);
	if (!ret) {
		/* Best effort: keep the request (it holds the key) out of swap. */
		mlock(b.buf, b.cap);
		ret = vici_request(c, "load-shared", &b, &resp, NULL, NULL);
		munlock(b.buf, b.cap);
	}
	vici_builder_free(&b);
	if (ret)
		return ret;
	return vici_check_success(&resp, err, errlen);
}

int charon_unload_shared(struct vici_conn *c, const char *id, char *err, size_t errlen)
{
	struct vici_builder b;
	struct vici_packet resp;
	int ret;

	vici_builder_init(&b);
	vici_add_kv_str(&b, "id", id);
	ret = vici_request(c, "unload-shared", &b, &resp, NULL, NULL);
	vici_builder_free(&b);
	if (ret)
		return ret;
	return vici_check_success(&resp, err, errlen);
}

struct list_ctx {
	int (*fn)(const char *id, void *arg);
	void *arg;
};

static int list_item(const uint8_t *item, size_t len, void *arg)
{
	struct list_ctx *ctx = arg;
	char *s;
	int ret;

	if (memchr(item, 0, len))
		return -EBADMSG;
	s = strndup((const char *)item, len);
	if (!s)
		return -ENOMEM;
	ret = ctx->fn(s, ctx->arg);
	free(s);
	return ret;
}

int charon_list_shared(struct vici_conn *c, int (*fn)(const char *id, void *arg), void *arg)
{
	struct list_ctx ctx = { fn, arg };
	struct vici_packet resp;
	int ret;

	ret = vici_request(c, "get-shared", NULL, &resp, NULL, NULL);
	if (ret)
		return ret;
	ret = vici_list_foreach(resp.msg, resp.msg_len, "keys", list_item, &ctx);
	return ret == -ENOENT ? 0 : ret;	/* charon omits an empty list? */
}

int charon_version(struct vici_conn *c, char *buf, size_t len)
{
	struct vici_packet resp;
	char daemon[64], version[64];
	int ret;

	ret = vici_request(c, "version", NULL, &resp, NULL, NULL);
	if (ret)
		return ret;
	ret = vici_find_str(resp.msg, resp.msg_len, "daemon", daemon, sizeof(daemon));
	if (!ret)
		ret = vici_find_str(resp.msg, resp.msg_len, "version", version, sizeof(version));
	if (ret)
		return ret == -ENOENT ? -EBADMSG : ret;
	snprintf(buf, len, "%s %s", daemon, version);
	return 0;
}
