// SPDX-License-Identifier: GPL-2.0
/*
 * One synchronous CoAP request with libcoap: a private context per call, so
 * callers in different threads never share libcoap state (libcoap 4.3 is not
 * thread-safe within one context). Used by the QPM to reach modules and by
 * qpmctl to reach the QPM; block-wise transfers are left to libcoap.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <coap3/coap.h>
#include "qkd/service-util.h"

static pthread_once_t coap_once = PTHREAD_ONCE_INIT;

static void coap_init_once(void)
{
	coap_startup();
	/*
	 * libcoap logs every stray RST or malformed datagram at LOG_ALERT; on a
	 * control plane that is expected noise, our own code reports what matters.
	 */
	coap_set_log_level(LOG_EMERG);
}

void qkd_coap_startup(void)
{
	pthread_once(&coap_once, coap_init_once);
}

int qkd_split_hostport(const char *s, const char *def_port, char *host, size_t hostlen,
		       char *port, size_t portlen)
{
	const char *colon, *h = s;
	size_t hl;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb)
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (rb[1] && !colon)
			return -EINVAL;
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			colon = NULL; /* bare IPv6 literal without port */
		hl = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (!hl || hl >= hostlen)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (colon) {
		const char *p = colon + 1;
		char *e;
		long v = strtol(p, &e, 10);

		if (!*p || *e || v <= 0 || v > 65535 || strlen(p) >= portlen)
			return -EINVAL;
		strcpy(port, p);
	} else {
		if (!def_port || strlen(def_port) >= portlen)
			return -EINVAL;
		strcpy(port, def_port);
	}
	return 0;
}

struct req_state {
	bool done;
	int err;
	struct qkd_coap_reply *r;
};

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent,
				   const coap_pdu_t *recv, const coap_mid_t mid)
{
	struct req_state *st = coap_session_get_app_data(s);
	const uint8_t *data = NULL;
	size_t len = 0, off = 0, total = 0;
	coap_opt_iterator_t it;
	coap_opt_t *opt;
	coap_pdu_code_t code;

	if (!st || st->done)
		return COAP_RESPONSE_OK;
	code = coap_pdu_get_code(recv);
	st->r->code = (int)COAP_RESPONSE_CLASS(code) * 100 + (int)(code & 0x1f);
	opt = coap_check_option(recv, COAP_OPTION_CONTENT_FORMAT, &it);
	st->r->content_format = opt ? coap_decode_var_bytes(coap_opt_value(opt),
							     coap_opt_length(opt)) : QKD_CF_NONE;
	coap_get_data_large(recv, &len, &data, &off, &total);
	st->r->body = malloc(len + 1);
	if (!st->r->body) {
		st->err = -ENOMEM;
	} else {
		if (len)
			memcpy(st->r->body, data, len);
		st->r->body[len] = '\0';
		st->r->len = len;
	}
	st->done = true;
	return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t reason,
		    const coap_mid_t mid)
{
	struct req_state *st = coap_session_get_app_data(s);

	if (!st || st->done)
		return;
	st->done = true;
	st->err = reason == COAP_NACK_RST ? -ECONNREFUSED :
		  reason == COAP_NACK_TOO_MANY_RETRIES ? -ETIMEDOUT : -EIO;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int add_segments(coap_pdu_t *pdu, uint16_t opt, const char *s, size_t n, char sep)
{
	while (n) {
		const char *e = memchr(s, sep, n);
		size_t l = e ? (size_t)(e - s) : n;

		if (l && !coap_add_option(pdu, opt, l, (const uint8_t *)s))
			return -ENOMEM;
		if (!e)
			break;
		n -= l + 1;
		s = e + 1;
	}
	return 0;
}

int qkd_coap_request(const char *host, const char *port, int method, const char *path,
		     const void *payload, size_t len, unsigned content_format, unsigned accept,
		     int timeout_ms, const struct qkd_coap_psk *psk, struct qkd_coap_reply *r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	struct req_state st = { .r = r };
	coap_context_t *ctx = NULL;
	coap_session_t *sess = NULL;
	coap_address_t dst;
	coap_pdu_t *pdu;
	const char *q;
	uint8_t tok[8], buf[4];
	size_t toklen;
	uint64_t deadline;
	int ret;

	memset(r, 0, sizeof(*r));
	qkd_coap_startup();
	if (getaddrinfo(host, port, &hints, &ai) || !ai)
		return -EHOSTUNREACH;
	coap_address_init(&dst);
	if (ai->ai_addrlen > sizeof(dst.addr)) {
		freeaddrinfo(ai);
		return -EAFNOSUPPORT;
	}
	memcpy(&dst.addr, ai->ai_addr, ai->ai_addrlen);
	dst.size = ai->ai_addrlen;
	freeaddrinfo(ai);

	ctx = coap_new_context(NULL);
	if (!ctx)
		return -ENOMEM;
	coap_context_set_block_mode(ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
	coap_register_response_handler(ctx, on_response);
	coap_register_nack_handler(ctx, on_nack);
	if (psk) {
		coap_dtls_cpsk_t c = { .version = COAP_DTLS_CPSK_SETUP_VERSION };

		c.psk_info.identity.s = (const uint8_t *)psk->identity;
		c.psk_info.identity.length = strlen(psk->identity);
		c.psk_info.key.s = psk->key;
		c.psk_info.key.length = psk->key_len;
		sess = coap_new_client_session_psk2(ctx, NULL, &dst, COAP_PROTO_DTLS, &c);
	} else {
		sess = coap_new_client_session(ctx, NULL, &dst, COAP_PROTO_UDP);
	}
	if (!sess) {
		ret = psk ? -EPROTONOSUPPORT : -ENOMEM;
		goto out;
	}
	coap_session_set_app_data(sess, &st);

	pdu = coap_new_pdu(COAP_MESSAGE_CON, (coap_pdu_code_t)method, sess);
	if (!pdu) {
		ret = -ENOMEM;
		goto out;
	}
	coap_session_new_token(sess, &toklen, tok);
	coap_add_token(pdu, toklen, tok);
	q = strchr(path, '?');
	/* Options in ascending number: Uri-Path 11, Content-Format 12, Uri-Query 15, Accept 17. */
	ret = add_segments(pdu, COAP_OPTION_URI_PATH, path, q ? (size_t)(q - path) : strlen(path),
			   '/');
	if (!ret && payload && content_format != QKD_CF_NONE)
		coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
				coap_encode_var_safe(buf, sizeof(buf), content_format), buf);
	if (!ret && q)
		ret = add_segments(pdu, COAP_OPTION_URI_QUERY, q + 1, strlen(q + 1), '&');
	if (!ret && accept != QKD_CF_NONE)
		coap_add_option(pdu, COAP_OPTION_ACCEPT,
				coap_encode_var_safe(buf, sizeof(buf), accept), buf);
	if (ret) {
		coap_delete_pdu(pdu);
		goto out;
	}
	if (payload && len &&
	    !coap_add_data_large_request(sess, pdu, len, payload, NULL, NULL)) {
		coap_delete_pdu(pdu);
		ret = -ENOMEM;
		goto out;
	}
	if (coap_send(sess, pdu) == COAP_INVALID_MID) {
		ret = -EIO;
		goto out;
	}
	deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 2000);
	while (!st.done) {
		uint64_t t = now_ms();

		if (t >= deadline)
			break;
		coap_io_process(ctx, (uint32_t)(deadline - t < 50 ? deadline - t : 50));
	}
	ret = st.done ? st.err : -ETIMEDOUT;
out:
	if (sess) {
		coap_session_set_app_data(sess, NULL);
		coap_session_release(sess);
	}
	coap_free_context(ctx);
	if (ret)
		qkd_coap_reply_free(r);
	return ret;
}

void qkd_coap_reply_free(struct qkd_coap_reply *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}
