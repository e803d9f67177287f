// SPDX-License-Identifier: GPL-2.0
/*
 * The QPM's CoAP resources. One catch-all resource routes every path, so the
 * resource tree can follow the pipelines and modules that come and go:
 *
 *   GET    /qpm                              version, uptime, counts
 *   GET    /pipelines                        every pipeline
 *   POST   /pipelines[?file=NAME]            load a definition (XML body)
 *   GET    /pipelines/P                      one pipeline with its modules
 *   DELETE /pipelines/P                      unload a stopped pipeline
 *   GET    /pipelines/P/state                its state
 *   PUT    /pipelines/P/state                start | stop | hibernate | resume
 *   POST   /pipelines/P/{start,stop,hibernate,resume}
 *   GET    /modules                          every module process with stats
 *   GET    /modules/P/ROLE/M/I               one module process
 *   GET|PUT /modules/P/ROLE/M/I/{state,stats,params,params/NAME}
 *                                            forwarded to the module itself
 *   POST   /register, DELETE /register?pid=N used by the modules
 *
 * Responses are JSON, or the same document as CBOR with Accept: 60. Every
 * error is a 4.xx/5.xx code with a one-line diagnostic payload.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qpm.h"

#define MAX_SEGS 12

static void err_reply(coap_pdu_t *resp, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void err_reply(coap_pdu_t *resp, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE(code));
	coap_add_data(resp, (size_t)n, (const uint8_t *)msg);
}

struct req {
	coap_resource_t *res;
	coap_session_t *sess;
	const coap_pdu_t *pdu;
	const coap_string_t *query;
	coap_pdu_t *resp;
	int method;
	char *seg[MAX_SEGS];
	unsigned n;
	const uint8_t *body;
	size_t len;
};

static void release_copy(coap_session_t *sess, void *p)
{
	free(p);
}

/*
 * A body that may need several blocks: libcoap serves the later blocks from
 * the data it is given, so it gets a copy of its own (freed by libcoap) and an
 * ETag that lets a client notice a body that changed between requests.
 */
static void add_body(struct req *r, unsigned cf, const char *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);

	if (!copy) {
		coap_pdu_set_code(r->resp, COAP_RESPONSE_CODE(500));
		return;
	}
	memcpy(copy, data, len);
	coap_add_data_large_response(r->res, r->sess, r->pdu, r->resp, r->query, (uint16_t)cf,
				     -1, qkd_etag(copy, len), len, copy, release_copy, copy);
}

static unsigned opt_uint(const coap_pdu_t *pdu, uint16_t num);

static void json_reply(struct req *r, int code, struct qkd_buf *b)
{
	if (b->oom) {
		err_reply(r->resp, 500, "out of memory");
		return;
	}
	coap_pdu_set_code(r->resp, COAP_RESPONSE_CODE(code));
	if (opt_uint(r->pdu, COAP_OPTION_ACCEPT) == QKD_CF_CBOR) {
		struct qkd_buf c = { 0 };

		if (qkd_json_to_cbor(b->s, b->len, &c))
			err_reply(r->resp, 500, "cannot render CBOR");
		else
			add_body(r, QKD_CF_CBOR, c.s, c.len);
		qkd_buf_free(&c);
		return;
	}
	add_body(r, QKD_CF_JSON, b->s, b->len);
}

static unsigned opt_uint(const coap_pdu_t *pdu, uint16_t num)
{
	coap_opt_iterator_t it;
	coap_opt_t *o = coap_check_option(pdu, num, &it);

	return o ? coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o)) : QKD_CF_NONE;
}

/* Value of key in the query string ("a=1&b=2"), copied into out. */
static bool query_get(const coap_string_t *q, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	const char *p, *end;

	if (!q || !q->s)
		return false;
	p = (const char *)q->s;
	end = p + q->length;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;

		if ((size_t)(e - p) > kl && !memcmp(p, key, kl) && p[kl] == '=') {
			size_t l = (size_t)(e - p) - kl - 1;

			if (l >= outlen)
				l = outlen - 1;
			memcpy(out, p + kl + 1, l);
			out[l] = '\0';
			return true;
		}
		p = e + 1;
	}
	return false;
}

static bool method_is(struct req *r, int m)
{
	return r->method == m;
}

static void not_allowed(struct req *r, const char *allowed)
{
	err_reply(r->resp, 405, "method not allowed here; use %s", allowed);
}

/* ---- /register ---- */

static void h_register(struct req *r)
{
	struct qkd_json j;
	char err[200], pid[16];

	if (method_is(r, COAP_REQUEST_POST)) {
		if (!r->len || qkd_json_parse((const char *)r->body, r->len, &j)) {
			err_reply(r->resp, 400, "registration body must be a JSON object");
			return;
		}
		switch (qpm_register(j, err, sizeof(err))) {
		case 0:
			coap_pdu_set_code(r->resp, COAP_RESPONSE_CODE(201));
			return;
		case -ENOENT:
			err_reply(r->resp, 404, "%s", err);
			return;
		default:
			err_reply(r->resp, 400, "%s", err);
			return;
		}
	}
	if (method_is(r, COAP_REQUEST_DELETE)) {
		char *e;
		long v;

		if (!query_get(r->query, "pid", pid, sizeof(pid))) {
			err_reply(r->resp, 400, "DELETE /register needs ?pid=N");
			return;
		}
		v = strtol(pid, &e, 10);
		if (*e || v < 1) {
			err_reply(r->resp, 400, "bad pid");
			return;
		}
		qpm_deregister((pid_t)v);
		coap_pdu_set_code(r->resp, COAP_RESPONSE_CODE(202));
		return;
	}
	not_allowed(r, "POST or DELETE");
}

/* ---- /pipelines ---- */

static void h_pipelines_list(struct req *r)
{
	struct qkd_buf b = { 0 };
	bool first = true;

	qkd_buf_printf(&b, "[");
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next) {
		qkd_buf_printf(&b, "%s", first ? "" : ",");
		qpm_pipeline_json(pl, &b, false);
		first = false;
	}
	qkd_buf_printf(&b, "]");
	json_reply(r, 205, &b);
	qkd_buf_free(&b);
}

static bool busy(const struct qpm_pipeline *pl)
{
	switch (pl->state) {
	case PL_LOADED: case PL_STOPPED: case PL_HIBERNATED: case PL_COMPLETED: case PL_FAILED:
		for (unsigned i = 0; i < pl->n_procs; i++)
			if (pl->procs[i].pid > 0)
				return true;
		return false;
	default:
		return true;
	}
}

static void h_load(struct req *r)
{
	struct qkd_buf err = { 0 }, b = { 0 };
	struct qpm_pipeline *pl, *old, **pp;
	char source[128] = "request";
	unsigned cf = opt_uint(r->pdu, COAP_OPTION_CONTENT_FORMAT);

	if (cf != QKD_CF_NONE && cf != QKD_CF_XML && cf != QKD_CF_TEXT && cf != 101 /* xml */) {
		err_reply(r->resp, 415, "send the pipeline as application/xml (41)");
		return;
	}
	if (!r->len) {
		err_reply(r->resp, 400, "empty body: send the pipeline XML");
		return;
	}
	query_get(r->query, "file", source, sizeof(source));
	for (char *c = source; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == '"')
			*c = '_';
	pl = qpm_pipeline_load((const char *)r->body, r->len, source, &err);
	if (!pl) {
		if (err.len && err.s[err.len - 1] == '\n')
			err.s[--err.len] = '\0';
		err_reply(r->resp, 400, "%s", err.s ? err.s : "invalid pipeline");
		qkd_buf_free(&err);
		return;
	}
	qkd_buf_free(&err);
	old = qpm_pipeline_find(pl->name);
	if (old && busy(old)) {
		err_reply(r->resp, 409, "pipeline %s exists and is %s; stop it first", pl->name,
			  qpm_state_name(old->state));
		qpm_pipeline_free(pl);
		return;
	}
	if (old) {
		for (pp = &qpm.pipelines; *pp != old; pp = &(*pp)->next)
			;
		*pp = old->next;
		qpm_pipeline_free(old);
	}
	/* Appended, so listings keep the load order. */
	for (pp = &qpm.pipelines; *pp; pp = &(*pp)->next)
		;
	*pp = pl;
	qpm_pipeline_restore(pl);
	if (qpm_persist_save(pl->name, (const char *)r->body, r->len))
		qpm_log(QPM_WARN, "pipeline %s: cannot keep its definition in %s", pl->name,
			qpm.run_dir);
	qpm_log(QPM_INFO, "pipeline %s loaded from %s (%s)", pl->name, source,
		qpm_state_name(pl->state));
	coap_add_option(r->resp, COAP_OPTION_LOCATION_PATH, 9, (const uint8_t *)"pipelines");
	coap_add_option(r->resp, COAP_OPTION_LOCATION_PATH, strlen(pl->name),
			(const uint8_t *)pl->name);
	qpm_pipeline_json(pl, &b, false);
	json_reply(r, 201, &b);
	qkd_buf_free(&b);
}

static void do_action(struct req *r, struct qpm_pipeline *pl, const char *act)
{
	char err[256];
	int ret;

	if (!strcmp(act, "start") || !strcmp(act, "running")) {
		ret = qpm_pipeline_start(pl, err, sizeof(err));
	} else if (!strcmp(act, "resume")) {
		if (pl->state != PL_HIBERNATED) {
			err_reply(r->resp, 409, "pipeline %s is %s, not hibernated", pl->name,
				  qpm_state_name(pl->state));
			return;
		}
		ret = qpm_pipeline_start(pl, err, sizeof(err));
	} else if (!strcmp(act, "stop") || !strcmp(act, "stopped")) {
		ret = qpm_pipeline_stop(pl, false, err, sizeof(err));
	} else if (!strcmp(act, "hibernate") || !strcmp(act, "hibernated")) {
		ret = qpm_pipeline_stop(pl, true, err, sizeof(err));
	} else {
		err_reply(r->resp, 400, "unknown action '%.40s': start, stop, hibernate or resume",
			  act);
		return;
	}
	if (ret == -EBUSY) {
		err_reply(r->resp, 409, "%s", err);
	} else if (ret) {
		err_reply(r->resp, 500, "%s", err);
	} else {
		struct qkd_buf b = { 0 };

		qpm_pipeline_json(pl, &b, false);
		json_reply(r, 204, &b);
		qkd_buf_free(&b);
	}
}

static void h_pipeline(struct req *r)
{
	struct qpm_pipeline *pl = qpm_pipeline_find(r->seg[1]);
	struct qkd_buf b = { 0 };

	if (!pl) {
		err_reply(r->resp, 404, "no pipeline named %.64s", r->seg[1]);
		return;
	}
	if (r->n == 2) {
		if (r->method == COAP_REQUEST_GET) {
			qpm_pipeline_json(pl, &b, true);
			json_reply(r, 205, &b);
			qkd_buf_free(&b);
		} else if (r->method == COAP_REQUEST_DELETE) {
			struct qpm_pipeline **pp;

			if (busy(pl)) {
				err_reply(r->resp, 409, "pipeline %s is %s; stop it first", pl->name,
					  qpm_state_name(pl->state));
				return;
			}
			for (pp = &qpm.pipelines; *pp != pl; pp = &(*pp)->next)
				;
			*pp = pl->next;
			qpm_persist_remove(pl->name);
			qpm_log(QPM_INFO, "pipeline %s unloaded", pl->name);
			qpm_pipeline_free(pl);
			coap_pdu_set_code(r->resp, COAP_RESPONSE_CODE(202));
		} else {
			not_allowed(r, "GET or DELETE");
		}
		return;
	}
	if (r->n == 3 && !strcmp(r->seg[2], "state")) {
		if (r->method == COAP_REQUEST_GET) {
			qkd_buf_printf(&b, "{\"state\":\"%s\"}", qpm_state_name(pl->state));
			json_reply(r, 205, &b);
			qkd_buf_free(&b);
		} else if (r->method == COAP_REQUEST_PUT) {
			char act[32];
			size_t l = r->len;
			struct qkd_json j;

			while (l && (r->body[l - 1] == '\n' || r->body[l - 1] == ' '))
				l--;
			if (!l || l >= sizeof(act)) {
				err_reply(r->resp, 400,
					  "body: start, stop, hibernate or resume");
				return;
			}
			memcpy(act, r->body, l);
			act[l] = '\0';
			if (!qkd_json_parse(act, l, &j)) {
				char tmp[32];

				if (qkd_json_str(j, tmp, sizeof(tmp)) ||
				    qkd_json_get_str(j, "state", tmp, sizeof(tmp)))
					strcpy(act, tmp);
			}
			do_action(r, pl, act);
		} else {
			not_allowed(r, "GET or PUT");
		}
		return;
	}
	if (r->n == 3 && (!strcmp(r->seg[2], "start") || !strcmp(r->seg[2], "stop") ||
			  !strcmp(r->seg[2], "hibernate") || !strcmp(r->seg[2], "resume"))) {
		if (r->method != COAP_REQUEST_POST) {
			not_allowed(r, "POST");
			return;
		}
		do_action(r, pl, r->seg[2]);
		return;
	}
	err_reply(r->resp, 404, "no such resource under /pipelines/%s", pl->name);
}

/* ---- /modules ---- */

static void h_modules(struct req *r)
{
	struct qkd_buf b = { 0 };
	bool first = true;

	if (r->method != COAP_REQUEST_GET) {
		not_allowed(r, "GET");
		return;
	}
	qkd_buf_printf(&b, "[");
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		for (unsigned i = 0; i < pl->n_procs; i++) {
			qkd_buf_printf(&b, "%s", first ? "" : ",");
			qpm_proc_stats_json(&pl->procs[i], &b);
			first = false;
		}
	qkd_buf_printf(&b, "]");
	json_reply(r, 205, &b);
	qkd_buf_free(&b);
}

/* Forward GET/PUT to the module's own service and relay its answer. */
static void proxy(struct req *r, struct qpm_proc *p, unsigned first)
{
	struct qkd_coap_reply rep;
	char path[512] = "", port[8];
	size_t o = 0;
	unsigned cf = opt_uint(r->pdu, COAP_OPTION_CONTENT_FORMAT);
	unsigned accept = opt_uint(r->pdu, COAP_OPTION_ACCEPT);
	int ret;

	if (r->method != COAP_REQUEST_GET && r->method != COAP_REQUEST_PUT) {
		not_allowed(r, "GET or PUT");
		return;
	}
	if (strcmp(r->seg[first], "state") && strcmp(r->seg[first], "stats") &&
	    strcmp(r->seg[first], "params")) {
		err_reply(r->resp, 404, "modules offer state, stats and params");
		return;
	}
	if (!p->registered || !p->port) {
		err_reply(r->resp, 503, "module %s is not registered (%s)", p->id, p->state);
		return;
	}
	for (unsigned i = first; i < r->n; i++)
		o += (size_t)snprintf(path + o, sizeof(path) - o, "%s%s", i > first ? "/" : "",
				      r->seg[i]);
	snprintf(port, sizeof(port), "%u", p->port);
	ret = qkd_coap_request("127.0.0.1", port, r->method, path, r->len ? r->body : NULL,
			       r->len, cf, accept, 1000, NULL, &rep);
	if (ret) {
		err_reply(r->resp, 504, "module %s did not answer: %s", p->id, strerror(-ret));
		return;
	}
	coap_pdu_set_code(r->resp, COAP_RESPONSE_CODE(rep.code));
	if (rep.len) {
		if (rep.code / 100 == 2)
			add_body(r, rep.content_format == QKD_CF_NONE ? QKD_CF_TEXT
								      : rep.content_format,
				 rep.body, rep.len);
		else
			coap_add_data(r->resp, rep.len > 1000 ? 1000 : rep.len,
				      (const uint8_t *)rep.body);
	}
	if (r->method == COAP_REQUEST_PUT && rep.code / 100 == 2)
		qpm_log(QPM_INFO, "%s: PUT %s forwarded", p->id, path);
	qkd_coap_reply_free(&rep);
}

static void h_module(struct req *r)
{
	char id[200];
	struct qpm_proc *p;

	if (r->n < 5) {
		err_reply(r->resp, 404, "module ids are PIPELINE/ROLE/MODULE/INSTANCE");
		return;
	}
	snprintf(id, sizeof(id), "%s/%s/%s/%s", r->seg[1], r->seg[2], r->seg[3], r->seg[4]);
	p = qpm_proc_find(id);
	if (!p) {
		err_reply(r->resp, 404, "no module %.190s", id);
		return;
	}
	if (r->n == 5) {
		struct qkd_buf b = { 0 };

		if (r->method != COAP_REQUEST_GET) {
			not_allowed(r, "GET");
			return;
		}
		qpm_proc_stats_json(p, &b);
		json_reply(r, 205, &b);
		qkd_buf_free(&b);
		return;
	}
	proxy(r, p, 5);
}

static void h_info(struct req *r)
{
	struct qkd_buf b = { 0 };
	unsigned np = 0, nm = 0;

	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next) {
		np++;
		nm += pl->n_procs;
	}
	qkd_buf_printf(&b, "{\"name\":\"qpm\",\"version\":\"1\",\"uptime_s\":%.1f,"
		       "\"pipelines\":%u,\"processes\":%u,\"port\":%u}",
		       (double)(qpm_now_ms() - qpm.start_ms) / 1000.0, np, nm, qpm.port);
	json_reply(r, 205, &b);
	qkd_buf_free(&b);
}

static void route(coap_resource_t *res, coap_session_t *sess, const coap_pdu_t *pdu,
		  const coap_string_t *query, coap_pdu_t *resp)
{
	struct req r = { .res = res, .sess = sess, .pdu = pdu, .query = query, .resp = resp };
	coap_string_t *path = coap_get_uri_path(pdu);
	size_t off = 0, total = 0;
	unsigned accept = opt_uint(pdu, COAP_OPTION_ACCEPT);

	r.method = coap_pdu_get_code(pdu);
	if (accept != QKD_CF_NONE && accept != QKD_CF_JSON && accept != QKD_CF_CBOR) {
		bool proxied = path && path->length > 8 && !memcmp(path->s, "modules/", 8);

		/* Modules also speak text/plain; let them judge forwarded requests. */
		if (!proxied || accept != QKD_CF_TEXT) {
			err_reply(resp, 406,
				  "responses are application/json (50) or application/cbor (60)");
			coap_delete_string(path);
			return;
		}
	}
	coap_get_data_large(pdu, &r.len, &r.body, &off, &total);
	if (total > QKD_COAP_MAX_BODY || r.len > QKD_COAP_MAX_BODY) {
		err_reply(resp, 413, "request body over %u bytes", QKD_COAP_MAX_BODY);
		coap_delete_string(path);
		return;
	}
	if (!path || !path->length) {
		err_reply(resp, 404, "try GET /pipelines, /modules or /qpm");
		coap_delete_string(path);
		return;
	}
	{
		char *buf = strndup((const char *)path->s, path->length);
		char *save = NULL;

		coap_delete_string(path);
		if (!buf) {
			err_reply(resp, 500, "out of memory");
			return;
		}
		for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
			if (r.n == MAX_SEGS) {
				err_reply(resp, 404, "path too deep");
				free(buf);
				return;
			}
			r.seg[r.n++] = t;
		}
		if (!r.n) {
			err_reply(resp, 404, "try GET /pipelines, /modules or /qpm");
		} else if (!strcmp(r.seg[0], "register") && r.n == 1) {
			h_register(&r);
		} else if (!strcmp(r.seg[0], "pipelines") && r.n == 1) {
			if (r.method == COAP_REQUEST_GET)
				h_pipelines_list(&r);
			else if (r.method == COAP_REQUEST_POST)
				h_load(&r);
			else
				not_allowed(&r, "GET or POST");
		} else if (!strcmp(r.seg[0], "pipelines")) {
			h_pipeline(&r);
		} else if (!strcmp(r.seg[0], "modules") && r.n == 1) {
			h_modules(&r);
		} else if (!strcmp(r.seg[0], "modules")) {
			h_module(&r);
		} else if (!strcmp(r.seg[0], "qpm") && r.n == 1) {
			if (r.method == COAP_REQUEST_GET)
				h_info(&r);
			else
				not_allowed(&r, "GET");
		} else {
			err_reply(resp, 404, "no resource /%.100s; try /pipelines, /modules, /qpm",
				  r.seg[0]);
		}
		free(buf);
	}
}

int qpm_admin_init(coap_context_t *ctx)
{
	static const char *const top[] = { "qpm", "pipelines", "modules" };
	coap_resource_t *r = coap_resource_unknown_init(route);

	if (!r)
		return -ENOMEM;
	coap_register_handler(r, COAP_REQUEST_GET, route);
	coap_register_handler(r, COAP_REQUEST_POST, route);
	coap_register_handler(r, COAP_REQUEST_DELETE, route);
	coap_add_resource(ctx, r);
	/*
	 * The top-level resources also exist by name, so that resource discovery
	 * (GET /.well-known/core) lists them; the same router serves them.
	 */
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		coap_resource_t *t = coap_resource_init(coap_make_str_const(top[i]), 0);

		if (!t)
			return -ENOMEM;
		for (int m = COAP_REQUEST_GET; m <= COAP_REQUEST_DELETE; m++)
			coap_register_handler(t, (coap_request_t)m, route);
		coap_add_attr(t, coap_make_str_const("rt"),
			      coap_make_str_const("\"qkdpipe.qpm\""), 0);
		coap_add_resource(ctx, t);
	}
	return 0;
}
