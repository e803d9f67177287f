/* SPDX-License-Identifier: GPL-2.0 */
/* qkd_keystore: XFRM bindings, shared by xfrm.c and xfrm-sa.c. */
#ifndef QKS_XFRM_H
#define QKS_XFRM_H

#include "qks.h"

#define QKS_XKEY_LEN	36	/* one direction: AES-256 key + 4-byte salt */
#define QKS_XALG	"rfc4106(gcm(aes))"
#define QKS_XMAX_GENS	4	/* inbound SAs kept per binding at most */
/* Soft packet limit cap; the hard one (twice) stays below 2^32 */
#define QKS_XSOFT_PACKETS_MAX	BIT(30)
/* Rekey after an hour when the binding names no budget */
#define QKS_XDEFAULT_SECONDS	3600

struct qks_xgen {
	struct list_head node;		/* b->gens, oldest first */
	u64 key_id;
	u32 spi;
	struct xfrm_state *in;		/* our reference */
	struct xfrm_state *out;		/* current generation only */
	u8 out_key[QKS_XKEY_LEN];	/* until the outbound SA is installed */
	bool has_out_key;
	unsigned long retire_at;	/* jiffies, 0: not scheduled */
};

struct qks_xbind {
	struct list_head node;		/* link->xbinds, under link->xlock */
	struct list_head all;		/* qks_xbinds, under qks_xbinds_lock */
	struct qks_link *link;		/* a reference */
	u32 id;
	struct qks_xfrm_tmpl t;
	bool low;			/* our address is the lower one */

	struct mutex lock;		/* everything below */
	struct list_head gens;
	struct qks_xgen *cur, *next;
	u64 next_min;			/* lowest key id the next generation may use */
	u32 spi_hist[QKS_XMAX_GENS + 2];	/* SPIs of the last ids taken */
	u32 spi_hist_n;
	u64 generations;
	int err;
	bool dead;
	struct delayed_work work;

	struct xfrm_state *cur_out;	/* for the notify callback: compared only */
	atomic_t rekey;
};

void qks_xkey_wipe(struct xfrm_state *x);
struct xfrm_state *qks_xstate_add(struct qks_xbind *b, bool out, u32 spi,
				  const u8 *key);
void qks_xstate_del(struct xfrm_state *x);
u64 qks_xpackets(struct xfrm_state *x);

#endif
