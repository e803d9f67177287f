// SPDX-License-Identifier: GPL-2.0
/*
 * The HTTPS server. libmicrohttpd parses HTTP and runs TLS (GnuTLS); each
 * request's body is collected (at most KME_BODY_MAX bytes), the caller's
 * SAE identity is read from its verified certificate, and the API answers.
 * Slow or idle clients are dropped after connection_timeout seconds and
 * the number of connections is capped, so slowloris costs a slot, not the
 * service.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "server.h"

struct kme_server {
	struct MHD_Daemon *d;
	const struct kme_ctx *ctx;
	int verbose;
	char *cert, *key, *ca;
};

struct upload {
	char *body;
	size_t len;
	int too_big;
};

static void wipe_free(void *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

static enum MHD_Result reply(struct MHD_Connection *conn, struct kme_resp *rs)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	/* MHD owns the body from here and wipes it (wipe_free) once sent. */
	r = MHD_create_response_from_buffer_with_free_callback(rs->len, rs->body, wipe_free);
	if (!r) {
		kme_resp_free(rs);
		return MHD_NO;
	}
	rs->body = NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (rs->has_keys)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, rs->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *version,
			       const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct kme_server *s = cls;
	struct upload *u = *con_cls;
	const union MHD_ConnectionInfo *ci;
	struct kme_resp rs;
	struct kme_req rq;
	char sae[KME_ID_MAX];
	const char *why = NULL;

	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return MHD_NO;
		*con_cls = u;
		return MHD_YES;
	}
	if (*upload_size) {
		if (u->len + *upload_size > KME_BODY_MAX) {
			u->too_big = 1;
		} else {
			char *nb = realloc(u->body, u->len + *upload_size + 1);

			if (!nb)
				return MHD_NO;
			u->body = nb;
			memcpy(u->body + u->len, upload_data, *upload_size);
			u->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (u->too_big) {
		kme_resp_error(&rs, 400, "request body too large", NULL);
		return reply(conn, &rs);
	}
	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.path = url;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci && !kme_peer_identity(ci->tls_session, s->ctx->cfg, sae, sizeof(sae), &why))
		rq.sae = sae;
	rq.number = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "number");
	rq.size = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "size");
	rq.key_id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "key_ID");
	rq.body = u->body ? u->body : "";
	rq.body_len = u->len;
	kme_handle(s->ctx, &rq, &rs);
	if (s->verbose || (rs.status >= 400 && rs.status != 404))
		fprintf(stderr, "qkd-kme: %s %s sae=%s -> %d%s%s\n", method, url,
			rq.sae ? rq.sae : "-", rs.status, why && !rq.sae ? ": " : "",
			why && !rq.sae ? why : "");
	return reply(conn, &rs);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	if (!u)
		return;
	free(u->body);
	free(u);
	*con_cls = NULL;
}

static char *slurp(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *b = NULL;
	long n;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || n > (1 << 20) || fseek(f, 0, SEEK_SET) ||
	    !(b = calloc(1, n + 1)) || fread(b, 1, n, f) != (size_t)n) {
		snprintf(err, errlen, "%s: cannot read", path);
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	fputs("qkd-kme: libmicrohttpd: ", stderr);
	vfprintf(stderr, fmt, ap);
}

int kme_server_start(struct kme_server **out, const struct kme_ctx *ctx, int verbose,
		     char *err, size_t errlen)
{
	const struct kme_config *c = ctx->cfg;
	struct kme_server *s = calloc(1, sizeof(*s));
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(c->port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(c->port) };
	unsigned flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_USE_ERROR_LOG;
	struct sockaddr *sa = (struct sockaddr *)&a4;

	if (!s)
		return -ENOMEM;
	s->ctx = ctx;
	s->verbose = verbose;
	if (inet_pton(AF_INET6, c->listen_addr, &a6.sin6_addr) == 1) {
		sa = (struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else if (inet_pton(AF_INET, c->listen_addr, &a4.sin_addr) != 1) {
		snprintf(err, errlen, "listen: %s is not an IPv4 or IPv6 address", c->listen_addr);
		goto fail;
	}
	s->cert = slurp(c->cert, err, errlen);
	s->key = s->cert ? slurp(c->key, err, errlen) : NULL;
	s->ca = s->key && *c->ca ? slurp(c->ca, err, errlen) : NULL;
	if (!s->key || (*c->ca && !s->ca))
		goto fail;
	s->d = MHD_start_daemon(flags, c->port, NULL, NULL, handler, s,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				MHD_OPTION_SOCK_ADDR, sa,
				MHD_OPTION_HTTPS_MEM_KEY, s->key,
				MHD_OPTION_HTTPS_MEM_CERT, s->cert,
				MHD_OPTION_HTTPS_PRIORITIES,
				"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->threads,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->conn_timeout,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->conn_limit,
				MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
				/* last: without a CA no certificate is requested */
				s->ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, s->ca,
				MHD_OPTION_END);
	if (!s->d) {
		snprintf(err, errlen, "cannot serve HTTPS on %s port %u (address in use, or a bad "
			 "certificate or key)", c->listen_addr, c->port);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	kme_server_stop(s);
	return -EINVAL;
}

void kme_server_stop(struct kme_server *s)
{
	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	if (s->key) {
		explicit_bzero(s->key, strlen(s->key));
		free(s->key);
	}
	free(s->cert);
	free(s->ca);
	free(s);
}
