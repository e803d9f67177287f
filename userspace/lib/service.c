// SPDX-License-Identifier: GPL-2.0
/*
 * A module's CoAP service context. One thread per module owns a private
 * libcoap context bound to an ephemeral UDP port on loopback; it serves
 * /state, /stats (observable), /params and /params/NAME, and registers the
 * module with the QPM. The frame-processing thread never waits for it: the
 * only shared data are the module's counters, state and live parameters,
 * which both sides touch briefly under m->lock. Calls into libcoap happen only
 * on the service thread (libcoap 4.3 is not thread-safe per context), so
 * qkd_service_stats_changed() merely sets a flag the thread picks up.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <coap3/coap.h>
#include "qkd/module.h"
#include "qkd/service.h"
#include "qkd/service-util.h"

#define SVC_POLL_MS 100
#define SVC_NOTIFY_MIN_MS 250	/* at most 4 notifications per second */
#define SVC_NOTIFY_IDLE_MS 1000	/* rates drift with time: notify at least this often */
#define SVC_REGISTER_RETRY_MS 1000
#define SVC_HEARTBEAT_MS 5000	/* re-registration doubles as heartbeat */
#define SVC_REFUSED_RETRY_MS 10000 /* after a refusal (say, a QPM that did not start us) */
#define SVC_MAX_PARAM_TEXT 1024

struct qkd_service {
	struct qkd_service *next;
	struct qkd_module *m;
	coap_context_t *ctx;
	coap_resource_t *r_state, *r_stats;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool stats_dirty;
	uint16_t port;
	/* registration */
	bool have_qpm;
	char qpm_host[256], qpm_port[16];
	coap_session_t *qpm_sess;
	bool registered, reg_pending, refused;
	uint64_t reg_sent_ms, reg_ok_ms;
	/* observation bookkeeping */
	uint64_t last_notify_ms;
	enum qkd_module_state last_state;
	/* recent-rate window, sampled by the service thread */
	uint64_t win_ms, win_keys, win_bits;
	double rate_keys, rate_bits;
};

static pthread_mutex_t svc_list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct qkd_service *svc_list;

static struct qkd_service *svc_of(struct qkd_module *m)
{
	struct qkd_service *s;

	pthread_mutex_lock(&svc_list_lock);
	for (s = svc_list; s && s->m != m; s = s->next)
		;
	pthread_mutex_unlock(&svc_list_lock);
	return s;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *mod_name(const struct qkd_module *m)
{
	return m->desc && m->desc->name ? m->desc->name : "module";
}

/* Own logging: the service must work before and after the runtime's logger. */
static void svc_log(const struct qkd_module *m, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void svc_log(const struct qkd_module *m, int level, const char *fmt, ...)
{
	static const char *const lv[] = { "error", "warning", "info", "debug" };
	char msg[512];
	va_list ap;

	if (level > m->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s[%s/%u] service %s: %s\n", mod_name(m),
		m->role == QKD_BOB ? "bob" : "alice", m->instance, lv[level & 3], msg);
}

static const char *const state_names[] = {
	[QKD_MOD_NEW] = "new",
	[QKD_MOD_READY] = "ready",
	[QKD_MOD_RUNNING] = "running",
	[QKD_MOD_PAUSED] = "paused",
	[QKD_MOD_TERMINATING] = "terminating",
};

static const char *state_name(enum qkd_module_state st)
{
	return (unsigned)st < sizeof(state_names) / sizeof(state_names[0]) ? state_names[st]
									  : "unknown";
}

/* ---- responses ---- */

static unsigned req_accept(const coap_pdu_t *req);

static void release_copy(coap_session_t *sess, void *p)
{
	free(p);
}

static void reply(coap_resource_t *r, coap_session_t *sess, const coap_pdu_t *req,
		  coap_pdu_t *resp, const coap_string_t *query, coap_pdu_code_t code,
		  uint16_t cf, const char *body, size_t len)
{
	struct qkd_buf cbor = { 0 };
	uint8_t *copy;

	coap_pdu_set_code(resp, code);
	if (!body)
		return;
	/* Content-format negotiation: the same document as CBOR on request. */
	if (cf == QKD_CF_JSON && req_accept(req) == QKD_CF_CBOR) {
		if (qkd_json_to_cbor(body, len, &cbor)) {
			qkd_buf_free(&cbor);
			coap_pdu_set_code(resp, COAP_RESPONSE_CODE_INTERNAL_ERROR);
			return;
		}
		body = cbor.s;
		len = cbor.len;
		cf = QKD_CF_CBOR;
	}
	/*
	 * Bodies larger than one datagram go block-wise (Block2): libcoap keeps
	 * the data for the later blocks, so it gets its own copy to release.
	 */
	copy = malloc(len ? len : 1);
	if (!copy) {
		qkd_buf_free(&cbor);
		coap_pdu_set_code(resp, COAP_RESPONSE_CODE_INTERNAL_ERROR);
		return;
	}
	memcpy(copy, body, len);
	qkd_buf_free(&cbor);
	coap_add_data_large_response(r, sess, req, resp, query, cf, -1, qkd_etag(copy, len), len,
				     copy, release_copy, copy);
}

/* 4.xx / 5.xx with a diagnostic payload (RFC 7252 section 5.5.2). */
static void reply_error(coap_pdu_t *resp, coap_pdu_code_t code, const char *msg)
{
	coap_pdu_set_code(resp, code);
	coap_add_data(resp, strlen(msg), (const uint8_t *)msg);
}

static void reply_buf(coap_resource_t *r, coap_session_t *sess, const coap_pdu_t *req,
		      coap_pdu_t *resp, const coap_string_t *query, struct qkd_buf *b)
{
	if (b->oom) {
		reply_error(resp, COAP_RESPONSE_CODE_INTERNAL_ERROR, "out of memory");
		return;
	}
	reply(r, sess, req, resp, query, COAP_RESPONSE_CODE_CONTENT, QKD_CF_JSON, b->s, b->len);
}

static unsigned req_accept(const coap_pdu_t *req)
{
	coap_opt_iterator_t it;
	coap_opt_t *o = coap_check_option(req, COAP_OPTION_ACCEPT, &it);

	return o ? coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o)) : QKD_CF_NONE;
}

static unsigned req_format(const coap_pdu_t *req)
{
	coap_opt_iterator_t it;
	coap_opt_t *o = coap_check_option(req, COAP_OPTION_CONTENT_FORMAT, &it);

	return o ? coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o)) : QKD_CF_NONE;
}

/*
 * Accept must name something we produce: JSON by default, CBOR on request,
 * text/plain where a resource offers it. Anything else is 4.06 Not Acceptable.
 */
static bool accept_ok(const coap_pdu_t *req, coap_pdu_t *resp, bool text_ok)
{
	unsigned a = req_accept(req);

	if (a == QKD_CF_NONE || a == QKD_CF_JSON || a == QKD_CF_CBOR ||
	    (text_ok && a == QKD_CF_TEXT))
		return true;
	reply_error(resp, COAP_RESPONSE_CODE_NOT_ACCEPTABLE,
		    text_ok ? "only application/json (50), application/cbor (60) or text/plain (0)"
			    : "only application/json (50) or application/cbor (60)");
	return false;
}

/*
 * The request body as a NUL-terminated string in buf. Returns false (and has
 * answered) when it is missing, too large or not text.
 */
static bool req_text(const coap_pdu_t *req, coap_pdu_t *resp, char *buf, size_t buflen)
{
	const uint8_t *data = NULL;
	size_t len = 0, off = 0, total = 0;

	coap_get_data_large(req, &len, &data, &off, &total);
	if (total > len || len >= buflen) {
		reply_error(resp, COAP_RESPONSE_CODE_REQUEST_TOO_LARGE, "request body too large");
		return false;
	}
	if (!len) {
		reply_error(resp, COAP_RESPONSE_CODE_BAD_REQUEST, "empty request body");
		return false;
	}
	for (size_t i = 0; i < len; i++)
		if (data[i] < 0x20 && data[i] != '\n' && data[i] != '\r' && data[i] != '\t') {
			reply_error(resp, COAP_RESPONSE_CODE_BAD_REQUEST, "body is not text");
			return false;
		}
	memcpy(buf, data, len);
	/* Trim surrounding white space so "echo value | coap-client -f-" works. */
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
		       buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	return true;
}

/* ---- /state ---- */

static void state_get(coap_resource_t *r, coap_session_t *sess, const coap_pdu_t *req,
		      const coap_string_t *query, coap_pdu_t *resp)
{
	struct qkd_service *s = coap_resource_get_userdata(r);
	struct qkd_module *m = s->m;
	enum qkd_module_state st;
	struct qkd_buf b = { 0 };

	if (!accept_ok(req, resp, true))
		return;
	pthread_mutex_lock(&m->lock);
	st = m->state;
	pthread_mutex_unlock(&m->lock);
	if (req_accept(req) == QKD_CF_TEXT) {
		const char *n = state_name(st);

		reply(r, sess, req, resp, query, COAP_RESPONSE_CODE_CONTENT, QKD_CF_TEXT, n,
		      strlen(n));
		return;
	}
	qkd_buf_printf(&b, "{\"state\":");
	qkd_buf_json_str(&b, state_name(st));
	qkd_buf_printf(&b, "}");
	reply_buf(r, sess, req, resp, query, &b);
	qkd_buf_free(&b);
}

/*
 * Termination and hibernation both end in the runtime's SIGTERM path: the
 * frame in hand is finished and written, the state file (if any) saved, and
 * the process exits. The QPM makes a hibernation a clean cut by asking only
 * the first module; the others see end of input.
 */
static void request_stop(struct qkd_module *m)
{
	kill(getpid(), SIGTERM);
}

static void state_put(coap_resource_t *r, coap_session_t *sess, const coap_pdu_t *req,
		      const coap_string_t *query, coap_pdu_t *resp)
{
	struct qkd_service *s = coap_resource_get_userdata(r);
	struct qkd_module *m = s->m;
	char want[32];
	struct qkd_json j;
	bool stop = false;
	const char *err = NULL;

	if (!req_text(req, resp, want, sizeof(want)))
		return;
	/* Accept both plain text and a JSON string or {"state": "..."}. */
	if (!qkd_json_parse(want, strlen(want), &j)) {
		char tmp[32];

		if (qkd_json_str(j, tmp, sizeof(tmp)) || qkd_json_get_str(j, "state", tmp, sizeof(tmp)))
			strcpy(want, tmp);
	}
	pthread_mutex_lock(&m->lock);
	if (!strcmp(want, "paused")) {
		if (m->state == QKD_MOD_RUNNING || m->state == QKD_MOD_READY)
			m->state = QKD_MOD_PAUSED;
		else if (m->state != QKD_MOD_PAUSED)
			err = "cannot pause in this state";
	} else if (!strcmp(want, "running")) {
		if (m->state == QKD_MOD_PAUSED)
			m->state = m->stats.start_ns ? QKD_MOD_RUNNING : QKD_MOD_READY;
		else if (m->state != QKD_MOD_RUNNING && m->state != QKD_MOD_READY)
			err = "cannot resume in this state";
	} else if (!strcmp(want, "terminating") || !strcmp(want, "hibernating")) {
		stop = true;
	} else {
		pthread_mutex_unlock(&m->lock);
		reply_error(resp, COAP_RESPONSE_CODE_BAD_REQUEST,
			    "state must be one of: running, paused, terminating, hibernating");
		return;
	}
	pthread_mutex_unlock(&m->lock);
	if (err) {
		reply_error(resp, COAP_RESPONSE_CODE(409), err);
		return;
	}
	if (stop) {
		svc_log(m, QKD_LOG_INFO, "%s requested over CoAP", want);
		request_stop(m);
	}
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CHANGED);
	coap_resource_notify_observers(s->r_state, NULL);
}

/* ---- /stats ---- */

static void stats_json(struct qkd_service *s, struct qkd_buf *b)
{
	struct qkd_module *m = s->m;
	struct qkd_stats st;
	enum qkd_module_state state;
	double up, keys;

	pthread_mutex_lock(&m->lock);
	st = m->stats;
	state = m->state;
	pthread_mutex_unlock(&m->lock);

	up = st.start_ns ? (double)(now_ns() - st.start_ns) / 1e9 : 0.0;
	keys = (double)(st.frames_out - (st.frames_aborted < st.frames_out ? st.frames_aborted
									    : st.frames_out));
	qkd_buf_printf(b, "{\"module\":");
	qkd_buf_json_str(b, mod_name(m));
	qkd_buf_printf(b, ",\"stage\":");
	qkd_buf_json_str(b, m->desc ? m->desc->stage : NULL);
	qkd_buf_printf(b, ",\"role\":\"%s\",\"pipeline\":", m->role == QKD_BOB ? "bob" : "alice");
	qkd_buf_json_str(b, m->pipeline);
	qkd_buf_printf(b, ",\"instance\":%u,\"instances\":%u,\"pid\":%d,\"state\":", m->instance,
		       m->instances, (int)getpid());
	qkd_buf_json_str(b, state_name(state));
	qkd_buf_printf(b,
		       ",\"frames_in\":%" PRIu64 ",\"frames_out\":%" PRIu64
		       ",\"frames_aborted\":%" PRIu64 ",\"keys\":%.0f,\"bits_in\":%" PRIu64
		       ",\"bits_out\":%" PRIu64 ",\"disclosed_bits\":%" PRIu64
		       ",\"auth_failures\":%" PRIu64 ",\"qber\":",
		       st.frames_in, st.frames_out, st.frames_aborted, keys, st.bits_in,
		       st.bits_out, st.disclosed_bits, st.auth_failures);
	if (st.last_qber < 0)
		qkd_buf_printf(b, "null");
	else
		qkd_buf_json_num(b, st.last_qber);
	qkd_buf_printf(b, ",\"efficiency\":");
	qkd_buf_json_num(b, st.last_efficiency);
	qkd_buf_printf(b, ",\"uptime_s\":");
	qkd_buf_json_num(b, round(up * 1000) / 1000);
	qkd_buf_printf(b, ",\"keys_per_s\":");
	qkd_buf_json_num(b, up > 0 ? keys / up : 0.0);
	qkd_buf_printf(b, ",\"bits_per_s\":");
	qkd_buf_json_num(b, up > 0 ? (double)st.bits_out / up : 0.0);
	qkd_buf_printf(b, ",\"keys_per_s_recent\":");
	qkd_buf_json_num(b, s->rate_keys);
	qkd_buf_printf(b, ",\"bits_per_s_recent\":");
	qkd_buf_json_num(b, s->rate_bits);
	qkd_buf_printf(b, "}");
}

static void stats_get(coap_resource_t *r, coap_session_t *sess, const coap_pdu_t *req,
		      const coap_string_t *query, coap_pdu_t *resp)
{
	struct qkd_service *s = coap_resource_get_userdata(r);
	struct qkd_buf b = { 0 };

	if (!accept_ok(req, resp, false))
		return;
	stats_json(s, &b);
	reply_buf(r, sess, req, resp, query, &b);
	qkd_buf_free(&b);
}

/* ---- /params ---- */

static const char *const type_names[] = { "int", "double", "string", "bool" };

/* Current value of p as JSON. Caller holds m->lock. */
static void param_value_json(const struct qkd_param *p, struct qkd_buf *b)
{
	if (!p->var) {
		qkd_buf_printf(b, "null");
		return;
	}
	switch (p->type) {
	case QKD_PARAM_INT:
		qkd_buf_printf(b, "%" PRId64, *(int64_t *)p->var);
		break;
	case QKD_PARAM_DOUBLE:
		qkd_buf_json_num(b, *(double *)p->var);
		break;
	case QKD_PARAM_STRING:
		qkd_buf_json_str(b, *(char **)p->var);
		break;
	case QKD_PARAM_BOOL:
		qkd_buf_printf(b, "%s", *(bool *)p->var ? "true" : "false");
		break;
	}
}

static void param_value_text(const struct qkd_param *p, struct qkd_buf *b)
{
	if (!p->var)
		return;
	switch (p->type) {
	case QKD_PARAM_INT:
		qkd_buf_printf(b, "%" PRId64, *(int64_t *)p->var);
		break;
	case QKD_PARAM_DOUBLE: {
		/* Shortest text that reads back as the same double. */
		double v = *(double *)p->var;
		char t[40];

		snprintf(t, sizeof(t), "%.15g", v);
		if (strtod(t, NULL) != v)
			snprintf(t, sizeof(t), "%.17g", v);
		qkd_buf_printf(b, "%s", t);
		break;
	}
	case QKD_PARAM_STRING:
		qkd_buf_printf(b, "%s", *(char **)p->var ? *(char **)p->var : "");
		break;
	case QKD_PARAM_BOOL:
		qkd_buf_printf(b, "%s", *(bool *)p->var ? "true" : "false");
		break;
	}
}

static void param_json(const struct qkd_param *p, struct qkd_buf *b)
{
	qkd_buf_printf(b, "{\"type\":\"%s\",\"value\":", type_names[p->type & 3]);
	param_value_json(p, b);
	qkd_buf_printf(b, ",\"default\":");
	qkd_buf_json_str(b, p->def);
	qkd_buf_printf(b, ",\"live\":%s", p->live ? "true" : "false");
	if (p->min != 0 || p->max != 0) {
		qkd_buf_printf(b, ",\"min\":");
		qkd_buf_json_num(b, p->min);
		qkd_buf_printf(b, ",\"max\":");
		qkd_buf_json_num(b, p->max);
	}
	qkd_buf_printf(b, ",\"help\":");
	qkd_buf_json_str(b, p->help);
	qkd_buf_printf(b, "}");
}

static void params_get(coap_resource_t *r, coap_session_t *sess, const coap_pdu_t *req,
		       const coap_string_t *query, coap_pdu_t *resp)
{
	struct qkd_service *s = coap_resource_get_userdata(r);
	struct qkd_module *m = s->m;
	struct qkd_buf b = { 0 };
	const struct qkd_param *p;
	bool first = true;

	if (!accept_ok(req, resp, false))
		return;
	qkd_buf_printf(&b, "{");
	pthread_mutex_lock(&m->lock);
	for (p = m->desc && m->desc->params ? m->desc->params : NULL; p && p->name; p++) {
		qkd_buf_printf(&b, "%s", first ? "" : ",");
		qkd_buf_json_str(&b, p->name);
		qkd_buf_printf(&b, ":");
		param_json(p, &b);
		first = false;
	}
	pthread_mutex_unlock(&m->lock);
	qkd_buf_printf(&b, "}");
	reply_buf(r, sess, req, resp, query, &b);
	qkd_buf_free(&b);
}

static void param_get(coap_resource_t *r, coap_session_t *sess, const coap_pdu_t *req,
		      const coap_string_t *query, coap_pdu_t *resp)
{
	struct qkd_service *s = coap_resource_get_userdata(r);
	const struct qkd_param *p = NULL;
	struct qkd_buf b = { 0 };
	coap_str_const_t *uri = coap_resource_get_uri_path(r);
	const char *name;

	if (!accept_ok(req, resp, true))
		return;
	name = (const char *)uri->s + strlen("params/");
	for (p = s->m->desc->params; p && p->name; p++)
		if (strlen(p->name) == uri->length - strlen("params/") &&
		    !memcmp(p->name, name, strlen(p->name)))
			break;
	if (!p || !p->name) {
		reply_error(resp, COAP_RESPONSE_CODE_NOT_FOUND, "no such parameter");
		return;
	}
	pthread_mutex_lock(&s->m->lock);
	if (req_accept(req) == QKD_CF_TEXT) {
		param_value_text(p, &b);
	} else {
		qkd_buf_printf(&b, "{\"name\":");
		qkd_buf_json_str(&b, p->name);
		qkd_buf_printf(&b, ",\"value\":");
		param_value_json(p, &b);
		qkd_buf_printf(&b, ",\"live\":%s}", p->live ? "true" : "false");
	}
	pthread_mutex_unlock(&s->m->lock);
	if (b.oom)
		reply_error(resp, COAP_RESPONSE_CODE_INTERNAL_ERROR, "out of memory");
	else
		reply(r, sess, req, resp, query, COAP_RESPONSE_CODE_CONTENT,
		      req_accept(req) == QKD_CF_TEXT ? QKD_CF_TEXT : QKD_CF_JSON,
		      b.s ? b.s : "", b.len);
	qkd_buf_free(&b);
}

/*
 * Parse text as a value of p's type within its bounds into *out (int64_t,
 * double, bool or a malloc'd string). NULL on success, else the reason.
 */
static const char *param_parse(const struct qkd_param *p, const char *text, void *out)
{
	char *e;

	switch (p->type) {
	case QKD_PARAM_INT: {
		long long v;

		errno = 0;
		v = strtoll(text, &e, 0);
		if (errno || e == text || *e)
			return "not an integer";
		if ((p->min != 0 || p->max != 0) && ((double)v < p->min || (double)v > p->max))
			return "out of range";
		*(int64_t *)out = v;
		return NULL;
	}
	case QKD_PARAM_DOUBLE: {
		double v;

		errno = 0;
		v = strtod(text, &e);
		if (errno || e == text || *e || !isfinite(v))
			return "not a number";
		if ((p->min != 0 || p->max != 0) && (v < p->min || v > p->max))
			return "out of range";
		*(double *)out = v;
		return NULL;
	}
	case QKD_PARAM_BOOL:
		if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes") ||
		    !strcmp(text, "on"))
			*(bool *)out = true;
		else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no") ||
			 !strcmp(text, "off"))
			*(bool *)out = false;
		else
			return "not a boolean (true/false)";
		return NULL;
	case QKD_PARAM_STRING:
		for (const char *c = text; *c; c++)
			if ((unsigned char)*c < 0x20)
				return "control characters are not allowed";
		*(char **)out = strdup(text);
		return *(char **)out ? NULL : "out of memory";
	}
	return "unknown parameter type";
}

static void param_put(coap_resource_t *r, coap_session_t *sess, const coap_pdu_t *req,
		      const coap_string_t *query, coap_pdu_t *resp)
{
	struct qkd_service *s = coap_resource_get_userdata(r);
	struct qkd_module *m = s->m;
	coap_str_const_t *uri = coap_resource_get_uri_path(r);
	const struct qkd_param *p;
	char text[SVC_MAX_PARAM_TEXT];
	union { int64_t i; double d; bool b; char *s; } v;
	const char *err;
	size_t nl = uri->length - strlen("params/");

	for (p = m->desc->params; p && p->name; p++)
		if (strlen(p->name) == nl && !memcmp(p->name, uri->s + strlen("params/"), nl))
			break;
	if (!p || !p->name) {
		reply_error(resp, COAP_RESPONSE_CODE_NOT_FOUND, "no such parameter");
		return;
	}
	if (!p->live) {
		reply_error(resp, COAP_RESPONSE_CODE_FORBIDDEN,
			    "parameter is not live; set it in the pipeline definition");
		return;
	}
	if (!req_text(req, resp, text, sizeof(text)))
		return;
	if (req_format(req) == QKD_CF_JSON) {
		struct qkd_json j, val;

		if (qkd_json_parse(text, strlen(text), &j)) {
			reply_error(resp, COAP_RESPONSE_CODE_BAD_REQUEST, "malformed JSON");
			return;
		}
		if (!qkd_json_member(j, "value", &val))
			val = j;
		if (*val.p == '"') {
			char tmp[SVC_MAX_PARAM_TEXT];

			qkd_json_str(val, tmp, sizeof(tmp));
			strcpy(text, tmp);
		} else {
			memmove(text, val.p, val.n);
			text[val.n] = '\0';
		}
	} else if (req_format(req) != QKD_CF_NONE && req_format(req) != QKD_CF_TEXT) {
		reply_error(resp, COAP_RESPONSE_CODE_UNSUPPORTED_CONTENT_FORMAT,
			    "send text/plain (0) or application/json (50)");
		return;
	}
	err = param_parse(p, text, &v);
	if (err) {
		char msg[160];

		snprintf(msg, sizeof(msg), "%s: %s", p->name, err);
		reply_error(resp, COAP_RESPONSE_CODE_BAD_REQUEST, msg);
		return;
	}
	/* The frame thread reads live parameters under the same lock per frame. */
	pthread_mutex_lock(&m->lock);
	switch (p->type) {
	case QKD_PARAM_INT: *(int64_t *)p->var = v.i; break;
	case QKD_PARAM_DOUBLE: *(double *)p->var = v.d; break;
	case QKD_PARAM_BOOL: *(bool *)p->var = v.b; break;
	case QKD_PARAM_STRING: {
		char *old = *(char **)p->var;

		*(char **)p->var = v.s;
		free(old);
		break;
	}
	}
	pthread_mutex_unlock(&m->lock);
	svc_log(m, QKD_LOG_INFO, "parameter %s set to %s over CoAP", p->name, text);
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CHANGED);
}

/* ---- registration with the QPM ---- */

static coap_response_t on_response(coap_session_t *sess, const coap_pdu_t *sent,
				   const coap_pdu_t *recv, const coap_mid_t mid)
{
	struct qkd_service *s = coap_session_get_app_data(sess);
	coap_pdu_code_t code = coap_pdu_get_code(recv);

	if (!s || sess != s->qpm_sess)
		return COAP_RESPONSE_OK;
	s->reg_pending = false;
	if (COAP_RESPONSE_CLASS(code) == 2) {
		if (!s->registered)
			svc_log(s->m, QKD_LOG_INFO, "registered with QPM %s:%s (service port %u)",
				s->qpm_host, s->qpm_port, s->port);
		s->registered = true;
		s->refused = false;
		s->reg_ok_ms = now_ms();
	} else {
		const uint8_t *d = NULL;
		size_t l = 0;

		coap_get_data(recv, &l, &d);
		/* Said once; the retries that follow are slow and quiet. */
		if (!s->refused)
			svc_log(s->m, QKD_LOG_WARN, "QPM refused registration: %d.%02d %.*s",
				COAP_RESPONSE_CLASS(code), code & 0x1f, (int)(l > 200 ? 200 : l),
				d ? (const char *)d : "");
		s->refused = true;
		s->registered = false;
	}
	return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *sess, const coap_pdu_t *sent,
		    const coap_nack_reason_t reason, const coap_mid_t mid)
{
	struct qkd_service *s = coap_session_get_app_data(sess);

	if (!s || sess != s->qpm_sess)
		return;
	if (s->reg_pending && !s->registered)
		svc_log(s->m, QKD_LOG_DEBUG, "QPM %s:%s not answering", s->qpm_host, s->qpm_port);
	s->reg_pending = false;
}

static void registration_json(struct qkd_service *s, struct qkd_buf *b)
{
	struct qkd_module *m = s->m;
	const char *id = getenv("QKD_QPM_ID");

	qkd_buf_printf(b, "{\"id\":");
	qkd_buf_json_str(b, id);
	qkd_buf_printf(b, ",\"name\":");
	qkd_buf_json_str(b, mod_name(m));
	qkd_buf_printf(b, ",\"stage\":");
	qkd_buf_json_str(b, m->desc ? m->desc->stage : NULL);
	qkd_buf_printf(b, ",\"role\":\"%s\",\"pipeline\":", m->role == QKD_BOB ? "bob" : "alice");
	qkd_buf_json_str(b, m->pipeline);
	qkd_buf_printf(b, ",\"instance\":%u,\"instances\":%u,\"pid\":%d,\"port\":%u}",
		       m->instance, m->instances, (int)getpid(), s->port);
}

static int resolve(const char *host, const char *port, coap_address_t *a)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai;

	if (getaddrinfo(host, port, &hints, &ai) || !ai)
		return -EHOSTUNREACH;
	coap_address_init(a);
	memcpy(&a->addr, ai->ai_addr, ai->ai_addrlen);
	a->size = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void send_registration(struct qkd_service *s)
{
	struct qkd_buf b = { 0 };
	coap_pdu_t *pdu;
	uint8_t tok[8], cf[2];
	size_t toklen;

	if (!s->qpm_sess) {
		coap_address_t a;

		if (resolve(s->qpm_host, s->qpm_port, &a))
			return;
		s->qpm_sess = coap_new_client_session(s->ctx, NULL, &a, COAP_PROTO_UDP);
		if (!s->qpm_sess)
			return;
		coap_session_set_app_data(s->qpm_sess, s);
	}
	registration_json(s, &b);
	pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST, s->qpm_sess);
	if (!pdu || b.oom) {
		coap_delete_pdu(pdu);
		qkd_buf_free(&b);
		return;
	}
	coap_session_new_token(s->qpm_sess, &toklen, tok);
	coap_add_token(pdu, toklen, tok);
	coap_add_option(pdu, COAP_OPTION_URI_PATH, 8, (const uint8_t *)"register");
	coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
			coap_encode_var_safe(cf, sizeof(cf), QKD_CF_JSON), cf);
	coap_add_data(pdu, b.len, (const uint8_t *)b.s);
	qkd_buf_free(&b);
	if (coap_send(s->qpm_sess, pdu) != COAP_INVALID_MID) {
		s->reg_pending = true;
		s->reg_sent_ms = now_ms();
	}
}

/* ---- the thread ---- */

static void sample_rates(struct qkd_service *s, uint64_t t)
{
	struct qkd_module *m = s->m;
	uint64_t keys, bits;

	pthread_mutex_lock(&m->lock);
	keys = m->stats.frames_out - (m->stats.frames_aborted < m->stats.frames_out
					      ? m->stats.frames_aborted : m->stats.frames_out);
	bits = m->stats.bits_out;
	pthread_mutex_unlock(&m->lock);
	if (s->win_ms && t > s->win_ms) {
		double dt = (double)(t - s->win_ms) / 1000.0;

		s->rate_keys = (double)(keys - s->win_keys) / dt;
		s->rate_bits = (double)(bits - s->win_bits) / dt;
	}
	s->win_ms = t;
	s->win_keys = keys;
	s->win_bits = bits;
}

static void *service_thread(void *arg)
{
	struct qkd_service *s = arg;
	uint64_t last_sample = 0;

	while (!atomic_load(&s->stop)) {
		uint64_t t;
		enum qkd_module_state st;

		coap_io_process(s->ctx, SVC_POLL_MS);
		t = now_ms();
		if (t - last_sample >= 1000) {
			sample_rates(s, t);
			last_sample = t;
		}
		pthread_mutex_lock(&s->m->lock);
		st = s->m->state;
		pthread_mutex_unlock(&s->m->lock);
		if (st != s->last_state) {
			s->last_state = st;
			coap_resource_notify_observers(s->r_state, NULL);
			atomic_store(&s->stats_dirty, true);
		}
		if (t - s->last_notify_ms >= SVC_NOTIFY_IDLE_MS ||
		    (atomic_load(&s->stats_dirty) && t - s->last_notify_ms >= SVC_NOTIFY_MIN_MS)) {
			atomic_store(&s->stats_dirty, false);
			coap_resource_notify_observers(s->r_stats, NULL);
			s->last_notify_ms = t;
		}
		if (s->have_qpm && !s->reg_pending &&
		    ((!s->registered && t - s->reg_sent_ms >= (s->refused ? SVC_REFUSED_RETRY_MS
									: SVC_REGISTER_RETRY_MS)) ||
		     (s->registered && t - s->reg_ok_ms >= SVC_HEARTBEAT_MS)))
			send_registration(s);
		else if (s->reg_pending && t - s->reg_sent_ms > 3000)
			s->reg_pending = false; /* give up on that one, retry */
	}
	return NULL;
}

static coap_resource_t *add_res(struct qkd_service *s, const char *path,
				coap_method_handler_t get, coap_method_handler_t put)
{
	coap_str_const_t *uri = coap_new_str_const((const uint8_t *)path, strlen(path));
	coap_resource_t *r;

	if (!uri)
		return NULL;
	/* RELEASE_URI: the resource owns and frees uri. */
	r = coap_resource_init(uri, COAP_RESOURCE_FLAGS_RELEASE_URI);
	if (!r) {
		coap_delete_str_const(uri);
		return NULL;
	}
	coap_resource_set_userdata(r, s);
	if (get)
		coap_register_handler(r, COAP_REQUEST_GET, get);
	if (put)
		coap_register_handler(r, COAP_REQUEST_PUT, put);
	coap_add_resource(s->ctx, r);
	return r;
}

int qkd_service_start(struct qkd_module *m, const char *qpm)
{
	struct qkd_service *s;
	coap_address_t a;
	coap_endpoint_t *ep;
	const char *desc, *colon;
	sigset_t all, old;
	int err;

	if (svc_of(m))
		return -EALREADY;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->last_state = (enum qkd_module_state)-1;
	if (qpm) {
		if (qkd_split_hostport(qpm, "5683", s->qpm_host, sizeof(s->qpm_host), s->qpm_port,
				       sizeof(s->qpm_port))) {
			svc_log(m, QKD_LOG_ERR, "bad QPM address '%s' (want HOST:PORT)", qpm);
			free(s);
			return -EINVAL;
		}
		s->have_qpm = true;
	}
	qkd_coap_startup();
	s->ctx = coap_new_context(NULL);
	if (!s->ctx) {
		free(s);
		return -ENOMEM;
	}
	coap_context_set_block_mode(s->ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
	coap_register_response_handler(s->ctx, on_response);
	coap_register_nack_handler(s->ctx, on_nack);
	/* Loopback only, ephemeral port: the QPM learns it from the registration. */
	coap_address_init(&a);
	a.addr.sin.sin_family = AF_INET;
	a.addr.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.addr.sin.sin_port = 0;
	a.size = sizeof(a.addr.sin);
	ep = coap_new_endpoint(s->ctx, &a, COAP_PROTO_UDP);
	desc = ep ? coap_endpoint_str(ep) : NULL;
	colon = desc ? strrchr(desc, ':') : NULL;
	if (!colon || !(s->port = (uint16_t)atoi(colon + 1))) {
		svc_log(m, QKD_LOG_ERR, "cannot bind the CoAP service to 127.0.0.1");
		err = -EADDRNOTAVAIL;
		goto fail;
	}
	s->r_state = add_res(s, "state", state_get, state_put);
	s->r_stats = add_res(s, "stats", stats_get, NULL);
	if (!s->r_state || !s->r_stats || !add_res(s, "params", params_get, NULL)) {
		err = -ENOMEM;
		goto fail;
	}
	coap_resource_set_get_observable(s->r_state, 1);
	coap_resource_set_get_observable(s->r_stats, 1);
	for (const struct qkd_param *p = m->desc ? m->desc->params : NULL; p && p->name; p++) {
		char path[160];

		if (snprintf(path, sizeof(path), "params/%s", p->name) >= (int)sizeof(path))
			continue;
		/* PUT on a fixed parameter answers 4.03 with a reason. */
		if (!add_res(s, path, param_get, param_put)) {
			err = -ENOMEM;
			goto fail;
		}
	}
	/* The service thread must never take the module's signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&s->thread, NULL, service_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto fail;
	pthread_mutex_lock(&svc_list_lock);
	s->next = svc_list;
	svc_list = s;
	pthread_mutex_unlock(&svc_list_lock);
	svc_log(m, QKD_LOG_DEBUG, "CoAP service on 127.0.0.1:%u", s->port);
	return 0;
fail:
	coap_free_context(s->ctx);
	free(s);
	return err;
}

int qkd_service_port(struct qkd_module *m)
{
	struct qkd_service *s = svc_of(m);

	return s ? s->port : -ENOENT;
}

bool qkd_service_registered(struct qkd_module *m)
{
	struct qkd_service *s = svc_of(m);

	return s && s->registered;
}

void qkd_service_stats_changed(struct qkd_module *m)
{
	struct qkd_service *s = svc_of(m);

	if (s)
		atomic_store(&s->stats_dirty, true);
}

void qkd_service_stop(struct qkd_module *m)
{
	struct qkd_service *s, **pp;

	pthread_mutex_lock(&svc_list_lock);
	for (pp = &svc_list; *pp && (*pp)->m != m; pp = &(*pp)->next)
		;
	s = *pp;
	if (s)
		*pp = s->next;
	pthread_mutex_unlock(&svc_list_lock);
	if (!s)
		return;
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	if (s->registered) {
		struct qkd_coap_reply r;
		char path[64];

		/* Best effort: the QPM also learns of the exit from waitpid. */
		snprintf(path, sizeof(path), "register?pid=%d", (int)getpid());
		if (!qkd_coap_request(s->qpm_host, s->qpm_port, COAP_REQUEST_DELETE, path, NULL, 0,
				      QKD_CF_NONE, QKD_CF_NONE, 300, NULL, &r))
			qkd_coap_reply_free(&r);
	}
	if (s->qpm_sess)
		coap_session_release(s->qpm_sess);
	coap_free_context(s->ctx);
	free(s);
}
