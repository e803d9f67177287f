// SPDX-License-Identifier: GPL-2.0
/*
 * ETSI GS QKD 014 routes: status, enc_keys, dec_keys (Documentation/etsi-014.md).
 *
 * Request JSON is parsed with jansson; responses that carry keys are written
 * by hand into one buffer so that key bytes exist only there (and in the
 * fetch buffer), both wiped: jansson's strings would be freed unwiped.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "keyid.h"

#define PREFIX "/api/v1/keys/"

void kme_resp_free(struct kme_resp *rs)
{
	if (rs->body) {
		explicit_bzero(rs->body, rs->len);
		free(rs->body);
	}
	rs->body = NULL;
	rs->len = 0;
}

static void resp_json(struct kme_resp *rs, int status, json_t *j)
{
	rs->status = status;
	rs->has_keys = 0;
	rs->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	rs->len = rs->body ? strlen(rs->body) : 0;
	if (!rs->body) {
		rs->status = 503;
		rs->body = strdup("{\"message\":\"out of memory\"}");
		rs->len = rs->body ? strlen(rs->body) : 0;
	}
	json_decref(j);
}

void kme_resp_error(struct kme_resp *rs, int status, const char *message, const char *detail)
{
	json_t *j = json_pack("{s:s}", "message", message);

	if (j && detail)
		json_object_set_new(j, "details", json_pack("[{s:s}]", "detail", detail));
	resp_json(rs, status, j);
}

/* The SAE ID in the path and the route after it; -1 if not an API path. */
static int split_path(const char *path, char *sae, size_t n, const char **route)
{
	const char *p, *slash;

	if (strncmp(path, PREFIX, strlen(PREFIX)))
		return -1;
	p = path + strlen(PREFIX);
	slash = strchr(p, '/');
	if (!slash || slash == p || (size_t)(slash - p) >= n)
		return -1;
	memcpy(sae, p, slash - p);
	sae[slash - p] = 0;
	*route = slash + 1;
	return 0;
}

/*
 * The pair this caller may use: enc_keys and status need the caller to be
 * the master of a pair whose slave is in the path; dec_keys the slave of a
 * pair whose master is in the path. 400 for an unknown SAE in the path, 401
 * when the caller is not the SAE the pair's keys are for.
 */
static const struct kme_pair *authorize(const struct kme_ctx *ctx, const struct kme_req *rq,
					const char *path_sae, int dec, struct kme_resp *rs)
{
	const struct kme_config *c = ctx->cfg;
	const struct kme_pair *p = NULL;
	int known = 0;

	for (size_t i = 0; i < c->npairs; i++) {
		const struct kme_pair *q = &c->pairs[i];

		if (strcmp(dec ? q->master : q->slave, path_sae))
			continue;
		known = 1;
		if (rq->sae && !strcmp(dec ? q->slave : q->master, rq->sae))
			p = q;
	}
	if (!known) {
		kme_resp_error(rs, 400, dec ? "unknown master_SAE_ID" : "unknown slave_SAE_ID",
			       NULL);
		return NULL;
	}
	if (!rq->sae) {
		kme_resp_error(rs, 401, "no verified SAE certificate", NULL);
		return NULL;
	}
	if (!p) {
		kme_resp_error(rs, 401, "this SAE is not authorized for that SAE pair", NULL);
		return NULL;
	}
	return p;
}

static void route_status(const struct kme_ctx *ctx, const struct kme_pair *p,
			 struct kme_resp *rs)
{
	const struct kme_config *c = ctx->cfg;
	uint32_t avail = 0, max = 0;
	int ret = ctx->src->ops->count(ctx->src, p->link, &avail, &max);
	json_t *j;

	if (ret) {
		kme_resp_error(rs, 503, "key store unavailable for this SAE pair", strerror(-ret));
		return;
	}
	j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		      "source_KME_ID", c->kme_id, "target_KME_ID", p->peer_kme,
		      "master_SAE_ID", p->master, "slave_SAE_ID", p->slave,
		      "key_size", (json_int_t)p->key_bits,
		      "stored_key_count", (json_int_t)avail,
		      "max_key_count", (json_int_t)max,
		      "max_key_per_request", (json_int_t)c->max_key_per_request,
		      "max_key_size", (json_int_t)(c->max_key_bits < p->key_bits ?
						   c->max_key_bits : p->key_bits),
		      "min_key_size", (json_int_t)c->min_key_bits,
		      "max_SAE_ID_count", (json_int_t)0);
	resp_json(rs, 200, j);
}

static int parse_uint(const char *s, long long *out)
{
	char *e;

	if (!s || *s < '0' || *s > '9' || strlen(s) > 9)
		return -1;
	*out = strtoll(s, &e, 10);
	return *e ? -1 : 0;
}

/* A member that must be an array when present; 0 if it is absent or empty. */
static int nonempty_array(json_t *o, const char *name, int *bad)
{
	json_t *a = json_object_get(o, name);

	if (!a)
		return 0;
	if (!json_is_array(a)) {
		*bad = 1;
		return 0;
	}
	return json_array_size(a) > 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t base64(char *out, const uint8_t *in, size_t n)
{
	size_t o = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = in[i] << 16 | in[i + 1] << 8 | in[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0);

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	return o;
}

/* Key container of n keys: room for each entry, then the closing bracket. */
struct container {
	char *buf;
	size_t len, cap;
	int n;
};

static int container_init(struct container *k, long long number, size_t bytes)
{
	k->cap = 32 + number * (64 + KME_UUID_LEN + 4 * (bytes / 3 + 1));
	k->buf = malloc(k->cap);
	k->len = 0;
	k->n = 0;
	if (!k->buf)
		return -1;
	k->len = snprintf(k->buf, k->cap, "{\"keys\":[");
	return 0;
}

static void container_add(struct container *k, const char *uuid, const uint8_t *key,
			  size_t len)
{
	k->len += snprintf(k->buf + k->len, k->cap - k->len, "%s{\"key_ID\":\"%s\",\"key\":\"",
			   k->n++ ? "," : "", uuid);
	k->len += base64(k->buf + k->len, key, len);
	k->len += snprintf(k->buf + k->len, k->cap - k->len, "\"}");
}

static void container_done(struct container *k, struct kme_resp *rs)
{
	k->len += snprintf(k->buf + k->len, k->cap - k->len, "]}");
	rs->status = 200;
	rs->body = k->buf;
	rs->len = k->len;
	rs->has_keys = 1;
}

static void container_drop(struct container *k)
{
	explicit_bzero(k->buf, k->cap);
	free(k->buf);
}

static void route_enc(const struct kme_ctx *ctx, const struct kme_pair *p,
		      const struct kme_req *rq, struct kme_resp *rs)
{
	const struct kme_config *c = ctx->cfg;
	long long number = 1, size = p->key_bits;
	uint32_t avail = 0, max;
	struct container k;
	uint8_t key[KME_KEY_MAX];
	int ret;

	if (!strcmp(rq->method, "POST")) {
		json_error_t e;
		json_t *o = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &e), *v;
		int bad = 0;

		if (!json_is_object(o)) {
			json_decref(o);
			kme_resp_error(rs, 400, "request body is not a JSON object", e.text);
			return;
		}
		if ((v = json_object_get(o, "number")))
			bad |= !json_is_integer(v), number = json_integer_value(v);
		if ((v = json_object_get(o, "size")))
			bad |= !json_is_integer(v), size = json_integer_value(v);
		if (nonempty_array(o, "additional_slave_SAE_IDs", &bad)) {
			json_decref(o);
			kme_resp_error(rs, 400, "additional_slave_SAE_IDs are not supported "
				       "(max_SAE_ID_count is 0)", NULL);
			return;
		}
		if (nonempty_array(o, "extension_mandatory", &bad)) {
			json_decref(o);
			kme_resp_error(rs, 400, "not all extension_mandatory parameters are supported",
				       NULL);
			return;
		}
		nonempty_array(o, "extension_optional", &bad);
		json_decref(o);
		if (bad) {
			kme_resp_error(rs, 400, "number and size must be integers, extensions arrays",
				       NULL);
			return;
		}
	} else if ((rq->number && parse_uint(rq->number, &number)) ||
		   (rq->size && parse_uint(rq->size, &size))) {
		kme_resp_error(rs, 400, "number and size must be decimal integers", NULL);
		return;
	}
	if (number < 1 || number > c->max_key_per_request) {
		kme_resp_error(rs, 400, "number is out of range (1..max_key_per_request)", NULL);
		return;
	}
	if (size < c->min_key_bits || size > c->max_key_bits || size % 8 || size > p->key_bits) {
		kme_resp_error(rs, 400, "size is not supported (a multiple of 8 from min_key_size "
			       "to max_key_size, at most the stored key size)", NULL);
		return;
	}
	ret = ctx->src->ops->count(ctx->src, p->link, &avail, &max);
	if (ret || avail < number) {
		kme_resp_error(rs, 503, "not enough keys for this SAE pair",
			       ret ? strerror(-ret) : NULL);
		return;
	}
	if (container_init(&k, number, size / 8)) {
		kme_resp_error(rs, 503, "out of memory", NULL);
		return;
	}
	for (long long i = 0; i < number; i++) {
		char uuid[KME_UUID_LEN + 1];
		uint64_t id;
		size_t len;

		ret = ctx->src->ops->fetch(ctx->src, p->link, NULL, &id, key, &len);
		if (!ret && (len < (size_t)size / 8 || kme_keyid_make(p->link, id, size / 8, uuid)))
			ret = -ERANGE;
		if (ret) {
			/* Keys already taken are lost on this side: never handed out twice. */
			explicit_bzero(key, sizeof(key));
			container_drop(&k);
			kme_resp_error(rs, 503, "key store failed during the request",
				       strerror(-ret));
			return;
		}
		container_add(&k, uuid, key, size / 8);
	}
	explicit_bzero(key, sizeof(key));
	container_done(&k, rs);
}

struct ids {
	uint64_t id[1024];
	size_t len[1024];
	size_t n;
};

static int add_id(const struct kme_pair *p, struct ids *ids, const char *s)
{
	if (!s || ids->n == 1024 || kme_keyid_parse(p->link, s, &ids->id[ids->n], &ids->len[ids->n]))
		return -1;
	for (size_t i = 0; i < ids->n; i++)
		if (ids->id[i] == ids->id[ids->n])
			return -1;
	ids->n++;
	return 0;
}

static int parse_key_ids(const struct kme_pair *p, const struct kme_req *rq, struct ids *ids,
			 struct kme_resp *rs)
{
	json_error_t e;
	json_t *o, *a, *v;
	size_t i;

	if (strcmp(rq->method, "POST")) {
		if (add_id(p, ids, rq->key_id)) {
			kme_resp_error(rs, 400, "key_ID missing or not a key_ID of this SAE pair",
				       NULL);
			return -1;
		}
		return 0;
	}
	o = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &e);
	a = json_object_get(o, "key_IDs");
	if (!json_is_array(a) || !json_array_size(a)) {
		kme_resp_error(rs, 400, "request body must be an object with a key_IDs array",
			       json_is_object(o) ? NULL : e.text);
		json_decref(o);
		return -1;
	}
	json_array_foreach(a, i, v) {
		if (add_id(p, ids, json_string_value(json_object_get(v, "key_ID")))) {
			json_decref(o);
			kme_resp_error(rs, 400, "a key_ID is malformed, repeated or not of this "
				       "SAE pair", NULL);
			return -1;
		}
	}
	json_decref(o);
	return 0;
}

static void route_dec(const struct kme_ctx *ctx, const struct kme_pair *p,
		      const struct kme_req *rq, struct kme_resp *rs)
{
	struct ids *ids = calloc(1, sizeof(*ids));
	uint8_t key[KME_KEY_MAX];
	struct container k;
	size_t maxlen = 0;

	if (!ids) {
		kme_resp_error(rs, 503, "out of memory", NULL);
		return;
	}
	if (parse_key_ids(p, rq, ids, rs))
		goto out;
	if (ids->n > ctx->cfg->max_key_per_request) {
		kme_resp_error(rs, 400, "more key_IDs than max_key_per_request", NULL);
		goto out;
	}
	/* All present before any is consumed: a bad request loses no key. */
	for (size_t i = 0; i < ids->n; i++) {
		int r = ctx->src->ops->exists(ctx->src, p->link, ids->id[i]);

		if (r < 0) {
			kme_resp_error(rs, 503, "key store unavailable", strerror(-r));
			goto out;
		}
		if (!r) {
			kme_resp_error(rs, 400, "key_ID not found (already delivered, or not yet "
				       "stored here)", NULL);
			goto out;
		}
		if (ids->len[i] > maxlen)
			maxlen = ids->len[i];
	}
	if (container_init(&k, ids->n, maxlen)) {
		kme_resp_error(rs, 503, "out of memory", NULL);
		goto out;
	}
	for (size_t i = 0; i < ids->n; i++) {
		char uuid[KME_UUID_LEN + 1];
		uint64_t got;
		size_t len;
		int ret = ctx->src->ops->fetch(ctx->src, p->link, &ids->id[i], &got, key, &len);

		if (!ret && len < ids->len[i])
			ret = -ERANGE;
		if (ret) {
			explicit_bzero(key, sizeof(key));
			container_drop(&k);
			kme_resp_error(rs, ret == -ENOENT ? 400 : 503,
				       "key_ID could not be delivered", strerror(-ret));
			goto out;
		}
		kme_keyid_make(p->link, got, ids->len[i], uuid);
		container_add(&k, uuid, key, ids->len[i]);
	}
	explicit_bzero(key, sizeof(key));
	container_done(&k, rs);
out:
	free(ids);
}

void kme_handle(const struct kme_ctx *ctx, const struct kme_req *rq, struct kme_resp *rs)
{
	const struct kme_pair *p;
	const char *route;
	char sae[KME_ID_MAX];
	int get = !strcmp(rq->method, "GET"), post = !strcmp(rq->method, "POST");
	int status, enc, dec;

	memset(rs, 0, sizeof(*rs));
	if (split_path(rq->path, sae, sizeof(sae), &route)) {
		kme_resp_error(rs, 404, "not an ETSI GS QKD 014 path", "/api/v1/keys/{SAE_ID}/...");
		return;
	}
	status = !strcmp(route, "status");
	enc = !strcmp(route, "enc_keys");
	dec = !strcmp(route, "dec_keys");
	if (!status && !enc && !dec) {
		kme_resp_error(rs, 404, "unknown method", "status, enc_keys or dec_keys");
		return;
	}
	if (!get && !(post && !status)) {
		kme_resp_error(rs, 405, "HTTP method not allowed here", NULL);
		return;
	}
	if (post && rq->body_len > KME_BODY_MAX) {
		kme_resp_error(rs, 400, "request body too large", NULL);
		return;
	}
	p = authorize(ctx, rq, sae, dec, rs);
	if (!p)
		return;
	if (status)
		route_status(ctx, p, rs);
	else if (dec != !p->master_side)
		kme_resp_error(rs, 401, dec ? "this KME is the master side of that SAE pair: "
			       "dec_keys is served by the slave's KME" :
			       "this KME is the slave side of that SAE pair: enc_keys is served "
			       "by the master's KME", NULL);
	else if (enc)
		route_enc(ctx, p, rq, rs);
	else
		route_dec(ctx, p, rq, rs);
}
