/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the module service context (service.c), the QPM and
 * qpmctl: a growable text buffer with JSON output, a small validating JSON
 * reader for the flat and nested objects the control plane exchanges, and a
 * synchronous CoAP client request on top of libcoap.
 */
#ifndef QKD_SERVICE_UTIL_H
#define QKD_SERVICE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bound of any request body the control plane accepts. */
#define QKD_COAP_MAX_BODY (64u * 1024)

/* CoAP content formats used here (RFC 7252 section 12.3). */
#define QKD_CF_TEXT 0
#define QKD_CF_XML 41
#define QKD_CF_JSON 50
#define QKD_CF_CBOR 60
#define QKD_CF_NONE 0xffff	/* no Content-Format / Accept option */

/* Growable NUL-terminated text buffer; oom latches on allocation failure. */
struct qkd_buf {
	char *s;
	size_t len, cap;
	bool oom;
};

void qkd_buf_printf(struct qkd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qkd_buf_put(struct qkd_buf *b, const char *s, size_t n);
/* A JSON string literal (quoted, escaped); NULL prints null. */
void qkd_buf_json_str(struct qkd_buf *b, const char *s);
/* A JSON number; NaN/inf print null (JSON has no such numbers). */
void qkd_buf_json_num(struct qkd_buf *b, double v);
void qkd_buf_free(struct qkd_buf *b);

/*
 * JSON reading. A qkd_json is a span of text holding exactly one JSON value.
 * qkd_json_parse checks that text is one well-formed value (depth <= 32).
 */
struct qkd_json {
	const char *p;
	size_t n;
};

int qkd_json_parse(const char *text, size_t len, struct qkd_json *out);
/* Member of an object by key; false if v is no object or has no such key. */
bool qkd_json_member(struct qkd_json v, const char *key, struct qkd_json *out);
/* Element i of an array. */
bool qkd_json_index(struct qkd_json v, size_t i, struct qkd_json *out);
/*
 * The same document as CBOR (RFC 8949): objects become maps, integers major
 * types 0/1, other numbers float64, strings text strings. Appends to out.
 */
int qkd_json_to_cbor(const char *json, size_t len, struct qkd_buf *out);
/* Value as string (unescaped, truncated to outlen-1); false if not a string. */
bool qkd_json_str(struct qkd_json v, char *out, size_t outlen);
/* Value as number; false if not a number. */
bool qkd_json_num(struct qkd_json v, double *out);
/* Convenience: member key of object v as string / number. */
bool qkd_json_get_str(struct qkd_json v, const char *key, char *out, size_t outlen);
bool qkd_json_get_num(struct qkd_json v, const char *key, double *out);

/*
 * One synchronous CoAP request over UDP (confirmable, block-wise transfers
 * done by libcoap). host is a name or IPv4/IPv6 literal, port a number.
 * path may carry a query ("a/b?x=1&y=2"). content_format/accept are
 * QKD_CF_* or QKD_CF_NONE. On success returns 0 and fills *r (code as
 * class*100+detail, e.g. 205; body NUL-terminated, free with
 * qkd_coap_reply_free). Returns -ETIMEDOUT when no answer came within
 * timeout_ms, other -errno on local failure. If psk_identity is not NULL the
 * request goes over DTLS-PSK (needs a DTLS-capable libcoap at link time).
 */
struct qkd_coap_reply {
	int code;
	unsigned content_format;
	char *body;
	size_t len;
};

struct qkd_coap_psk {
	const char *identity;
	const uint8_t *key;
	size_t key_len;
};

int qkd_coap_request(const char *host, const char *port, int method, const char *path,
		     const void *payload, size_t len, unsigned content_format, unsigned accept,
		     int timeout_ms, const struct qkd_coap_psk *psk, struct qkd_coap_reply *r);
void qkd_coap_reply_free(struct qkd_coap_reply *r);
/* ETag for a response body (FNV-1a 64 over it). */
uint64_t qkd_etag(const void *data, size_t len);
/* coap_startup() once per process, libcoap's own logging kept to LOG_CRIT. */
void qkd_coap_startup(void);
/* Split "HOST:PORT", "[V6]:PORT" or "HOST" (default port def). 0 or -EINVAL. */
int qkd_split_hostport(const char *s, const char *def_port, char *host, size_t hostlen,
		       char *port, size_t portlen);

#endif
