/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The SAE identity of a TLS peer: its certificate must verify against the
 * configured CA (unless verify_client no, loopback only); the identity is
 * the subject CN, or the first DNS or URI subjectAltName.
 */
#ifndef QKD_KME_IDENTITY_H
#define QKD_KME_IDENTITY_H

#include <gnutls/gnutls.h>
#include <stddef.h>

#include "config.h"

/* 0 and out set, or -1 with why (for the log; no secret in it). */
int kme_peer_identity(gnutls_session_t s, const struct kme_config *c, char *out, size_t n,
		      const char **why);

#endif
