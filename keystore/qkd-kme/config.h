/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qkd-kme configuration (Documentation/etsi-014.md, "Configuration").
 * One "keyword value..." per line, # comments.
 */
#ifndef QKD_KME_CONFIG_H
#define QKD_KME_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define KME_ID_MAX	64
#define KME_PAIRS_MAX	64

enum kme_ident { KME_IDENT_CN, KME_IDENT_SAN_DNS, KME_IDENT_SAN_URI };

/* One SAE pair served over one link; this KME is its master or slave side. */
struct kme_pair {
	char link[32];
	char master[KME_ID_MAX], slave[KME_ID_MAX];
	char peer_kme[KME_ID_MAX];
	int master_side;	/* 1: enc_keys here, 0: dec_keys here */
	uint32_t key_bits;	/* stored key size */
};

struct kme_config {
	char kme_id[KME_ID_MAX];
	char listen_addr[64];
	uint16_t port;
	char cert[256], key[256], ca[256];
	int verify_client;	/* 0 only allowed on loopback */
	enum kme_ident ident;
	char source[300];	/* "netlink" or "file:PATH" */
	uint32_t max_key_per_request, min_key_bits, max_key_bits;
	uint32_t threads, conn_timeout, conn_limit;
	struct kme_pair pairs[KME_PAIRS_MAX];
	size_t npairs;
};

void kme_config_defaults(struct kme_config *c);
/* 0, or -1 with a message naming the line in err. */
int kme_config_load(struct kme_config *c, const char *path, char *err, size_t errlen);
int kme_config_parse(struct kme_config *c, const char *text, size_t len,
		     char *err, size_t errlen);
/* The start-up checks: ids, a certificate, mutual TLS off the loopback. */
int kme_config_check(const struct kme_config *c, char *err, size_t errlen);
/* The pair whose master and slave are these, or NULL. */
const struct kme_pair *kme_pair_find(const struct kme_config *c, const char *master,
				     const char *slave);
int kme_listen_is_loopback(const struct kme_config *c);

#endif
