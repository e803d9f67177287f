/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qkd-ppk: the VICI commands it sends to charon.
 */
#ifndef QKD_PPK_CHARON_H
#define QKD_PPK_CHARON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qkd/vici.h"

/*
 * load-shared { type = ppk, data = key, owners = [ppk_id], id = ppk_id }.
 * With tag false the unique id is left out: the secret then survives
 * `swanctl --load-creds` but cannot be listed or unloaded over VICI.
 * 0, -EREMOTEIO with charon's message in err, or -errno.
 */
int charon_load_ppk(struct vici_conn *c, const char *ppk_id, const uint8_t *key, size_t len,
		    bool tag, char *err, size_t errlen);

/* unload-shared { id = ppk_id }. */
int charon_unload_shared(struct vici_conn *c, const char *id, char *err, size_t errlen);

/*
 * get-shared: call fn for each unique id of a shared secret loaded over VICI.
 * Returns the number of ids or -errno.
 */
int charon_list_shared(struct vici_conn *c, int (*fn)(const char *id, void *arg), void *arg);

/* One IKE_SA as list-sas reports it (the fields qkd-ppk shows). */
struct charon_ike_sa {
	char name[256];
	char uniqueid[24];
	char state[32];
	char local_id[256];
	char remote_id[256];
	bool ppk;		/* a PPK was mixed into its keys */
};

/*
 * list-sas (streamed list-sa events), optionally only IKE_SAs of connection
 * ike: fn for each. The number of IKE_SAs or -errno.
 */
int charon_list_ike_sas(struct vici_conn *c, const char *ike,
			int (*fn)(const struct charon_ike_sa *sa, void *arg), void *arg);

/* version: daemon name and version into buf ("charon 5.9.8"). */
int charon_version(struct vici_conn *c, char *buf, size_t len);

#endif
