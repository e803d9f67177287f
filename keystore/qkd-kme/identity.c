// SPDX-License-Identifier: GPL-2.0
/*
 * SAE identity from the client certificate.
 */
#include <gnutls/x509.h>
#include <string.h>

#include "identity.h"

static int id_chars_ok(const char *s)
{
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e || *s == '/' || *s == '"' || *s == '\\')
			return 0;
	return 1;
}

static int from_cert(gnutls_x509_crt_t crt, enum kme_ident how, char *out, size_t n)
{
	size_t len = n;
	int ret;

	if (how == KME_IDENT_CN) {
		ret = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0,
						    out, &len);
		return ret < 0 ? -1 : 0;
	}
	for (unsigned i = 0;; i++) {
		unsigned crit;

		len = n;
		ret = gnutls_x509_crt_get_subject_alt_name(crt, i, out, &len, &crit);
		if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE || ret == GNUTLS_E_SHORT_MEMORY_BUFFER)
			return -1;
		if (ret < 0)
			continue;
		if ((how == KME_IDENT_SAN_DNS && ret == GNUTLS_SAN_DNSNAME) ||
		    (how == KME_IDENT_SAN_URI && ret == GNUTLS_SAN_URI)) {
			if (len >= n)
				return -1;
			out[len] = 0;
			return 0;
		}
	}
}

int kme_peer_identity(gnutls_session_t s, const struct kme_config *c, char *out, size_t n,
		      const char **why)
{
	const gnutls_datum_t *chain;
	unsigned status = 0, count = 0;
	gnutls_x509_crt_t crt;
	int ret;

	*why = "no client certificate";
	if (!s || gnutls_certificate_type_get(s) != GNUTLS_CRT_X509)
		return -1;
	chain = gnutls_certificate_get_peers(s, &count);
	if (!chain || !count)
		return -1;
	if (c->verify_client) {
		if (gnutls_certificate_verify_peers2(s, &status) < 0 || status) {
			*why = "client certificate does not verify against the CA";
			return -1;
		}
	}
	if (gnutls_x509_crt_init(&crt) < 0)
		return -1;
	ret = gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER);
	if (!ret)
		ret = from_cert(crt, c->ident, out, n);
	gnutls_x509_crt_deinit(crt);
	if (ret || !*out || !id_chars_ok(out)) {
		*why = "client certificate has no usable SAE identity (CN or subjectAltName)";
		return -1;
	}
	return 0;
}
