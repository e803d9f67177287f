/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ETSI GS QKD 014 V1.1.1 API, independent of HTTP and TLS: one request
 * (method, path, query arguments, body, the caller's SAE identity taken
 * from its certificate) in, one status and JSON body out.
 */
#ifndef QKD_KME_API_H
#define QKD_KME_API_H

#include <stddef.h>

#include "config.h"
#include "keysrc.h"

#define KME_BODY_MAX	(64 * 1024)	/* larger request bodies: 400 */

struct kme_ctx {
	const struct kme_config *cfg;
	struct keysrc *src;
};

struct kme_req {
	const char *method;	/* "GET" or "POST" */
	const char *path;	/* without the query */
	const char *sae;	/* from the verified certificate; NULL: none */
	/* GET query arguments, NULL when absent */
	const char *number, *size, *key_id;
	const char *body;	/* POST body, not NUL-terminated */
	size_t body_len;
};

struct kme_resp {
	int status;
	char *body;	/* malloc'd JSON; free with kme_resp_free (wipes it) */
	size_t len;
	int has_keys;	/* body holds key material */
};

void kme_handle(const struct kme_ctx *ctx, const struct kme_req *rq, struct kme_resp *rs);
void kme_resp_free(struct kme_resp *rs);
/* For the HTTP layer's own errors (413, 405...): an ETSI Error object. */
void kme_resp_error(struct kme_resp *rs, int status, const char *message, const char *detail);

#endif
