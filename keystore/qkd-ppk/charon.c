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

/* Copy a value as text, replacing what is not printable (it is shown). */
static void copy_text(char *dst, size_t dlen, const uint8_t *v, size_t vlen)
{
	size_t n = vlen < dlen - 1 ? vlen : dlen - 1;

	for (size_t i = 0; i < n; i++)
		dst[i] = v[i] >= 0x20 && v[i] < 0x7f ? (char)v[i] : '?';
	dst[n] = 0;
}

struct sas_ctx {
	int (*fn)(const struct charon_ike_sa *sa, void *arg);
	void *arg;
	int count;
};

/*
 * A list-sa event holds one section per IKE_SA, named after its connection,
 * with the SA's properties as key/values and sub-sections (child-sas, ...).
 * Names may contain '.', so walk the elements instead of looking up paths.
 */
static int on_list_sa(const struct vici_packet *ev, void *arg)
{
	struct sas_ctx *ctx = arg;
	struct charon_ike_sa sa;
	struct vici_parser p;
	struct vici_element el;
	int ret;

	vici_parser_init(&p, ev->msg, ev->msg_len);
	while ((ret = vici_parser_next(&p, &el)) > 0) {
		if (el.type == VICI_SECTION_START && el.depth == 0) {
			memset(&sa, 0, sizeof(sa));
			copy_text(sa.name, sizeof(sa.name), (const uint8_t *)el.name, el.name_len);
		} else if (el.type == VICI_KEY_VALUE && el.depth == 1) {
			if (vici_name_is(&el, "uniqueid"))
				copy_text(sa.uniqueid, sizeof(sa.uniqueid), el.value, el.value_len);
			else if (vici_name_is(&el, "state"))
				copy_text(sa.state, sizeof(sa.state), el.value, el.value_len);
			else if (vici_name_is(&el, "local-id"))
				copy_text(sa.local_id, sizeof(sa.local_id), el.value, el.value_len);
			else if (vici_name_is(&el, "remote-id"))
				copy_text(sa.remote_id, sizeof(sa.remote_id), el.value, el.value_len);
			else if (vici_name_is(&el, "ppk"))
				sa.ppk = el.value_len == 3 && !memcmp(el.value, "yes", 3);
		} else if (el.type == VICI_SECTION_END && el.depth == 0) {
			ctx->count++;
			if (ctx->fn) {
				ret = ctx->fn(&sa, ctx->arg);
				if (ret < 0)
					return ret;
			}
		}
	}
	return ret;
}

int charon_list_ike_sas(struct vici_conn *c, const char *ike,
			int (*fn)(const struct charon_ike_sa *sa, void *arg), void *arg)
{
	struct sas_ctx ctx = { fn, arg, 0 };
	struct vici_builder b;
	struct vici_packet resp;
	int ret;

	vici_builder_init(&b);
	vici_add_kv_str(&b, "noblock", "yes");
	if (ike)
		vici_add_kv_str(&b, "ike", ike);
	ret = vici_request_stream(c, "list-sas", &b, "list-sa", on_list_sa, &ctx, &resp);
	vici_builder_free(&b);
	return ret ? ret : ctx.count;
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
