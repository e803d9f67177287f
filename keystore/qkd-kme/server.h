/* SPDX-License-Identifier: GPL-2.0 */
/*
 * HTTPS with mutual TLS (libmicrohttpd over GnuTLS) in front of the API.
 */
#ifndef QKD_KME_SERVER_H
#define QKD_KME_SERVER_H

#include <stddef.h>

#include "api.h"

struct kme_server;

int kme_server_start(struct kme_server **out, const struct kme_ctx *ctx, int verbose,
		     char *err, size_t errlen);
void kme_server_stop(struct kme_server *s);

#endif
