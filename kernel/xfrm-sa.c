// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: one ESP SA of a binding, installed, counted and deleted the
 * way the xfrm core expects of a key manager.
 */
#include <crypto/aead.h>
#include <linux/slab.h>
#include <net/xfrm.h>

#include "xfrm.h"

void qks_xkey_wipe(struct xfrm_state *x)
{
	spin_lock_bh(&x->lock);
	if (x->aead)
		memzero_explicit(x->aead->alg_key, (x->aead->alg_key_len + 7) / 8);
	spin_unlock_bh(&x->lock);
}

static u64 qks_xlimit(u64 v)
{
	return v ? v : XFRM_INF;
}

/* Tell xfrm_user (ip xfrm monitor, IKE daemons) and audit, as xfrm_user does. */
static void qks_xnotify(struct xfrm_state *x, int event)
{
	struct km_event c = { .event = event };

	km_state_notify(x, &c);
}

/* Install one ESP SA; returns it with a reference of ours. */
struct xfrm_state *qks_xstate_add(struct qks_xbind *b, bool out, u32 spi,
				  const u8 *key)
{
	struct xfrm_algo_desc *desc;
	struct xfrm_state *x;
	int err;

	desc = xfrm_aead_get_byname(QKS_XALG, b->t.icv_bits, 1);
	if (!desc)
		return ERR_PTR(-ENOENT);
	x = xfrm_state_alloc(b->link->net);
	if (!x)
		return ERR_PTR(-ENOMEM);
	x->id.proto = IPPROTO_ESP;
	x->id.spi = htonl(spi);
	x->id.daddr = out ? b->t.daddr : b->t.saddr;
	x->props.saddr = out ? b->t.saddr : b->t.daddr;
	x->props.family = b->t.family;
	x->props.mode = b->t.mode;
	x->props.reqid = b->t.reqid;
	x->props.replay_window = out ? 0 : 32;
	x->sel.family = b->t.family;
	x->lft.soft_byte_limit = XFRM_INF;
	x->lft.hard_byte_limit = XFRM_INF;
	x->lft.soft_packet_limit = XFRM_INF;
	x->lft.hard_packet_limit = XFRM_INF;
	if (out) {
		x->lft.soft_byte_limit = qks_xlimit(b->t.life_bytes);
		x->lft.hard_byte_limit = qks_xlimit(b->t.life_bytes * 2);
		/* Well below the 32-bit sequence number's wrap (no ESN). */
		x->lft.soft_packet_limit = min_t(u64, qks_xlimit(b->t.life_packets),
						 QKS_XSOFT_PACKETS_MAX);
		x->lft.hard_packet_limit = x->lft.soft_packet_limit * 2;
		x->lft.soft_add_expires_seconds = b->t.life_seconds;
		x->lft.hard_add_expires_seconds = b->t.life_seconds * 2;
	}
	x->aead = kzalloc(sizeof(*x->aead) + QKS_XKEY_LEN, GFP_KERNEL);
	if (!x->aead) {
		err = -ENOMEM;
		goto dead;
	}
	strscpy(x->aead->alg_name, QKS_XALG, sizeof(x->aead->alg_name));
	x->aead->alg_key_len = QKS_XKEY_LEN * 8;
	x->aead->alg_icv_len = b->t.icv_bits;
	memcpy(x->aead->alg_key, key, QKS_XKEY_LEN);
	x->props.ealgo = desc->desc.sadb_alg_id;
	/* Without geniv ESP asks the crypto API for "(null)(rfc4106(gcm(aes)))". */
	x->geniv = desc->uinfo.aead.geniv;

	err = xfrm_init_state(x);
	if (err)
		goto dead;
	xfrm_state_hold(x);
	err = xfrm_state_add(x);
	xfrm_audit_state_add(x, err ? 0 : 1, true);
	if (err) {
		__xfrm_state_put(x);
		goto dead;
	}
	qks_xnotify(x, XFRM_MSG_NEWSA);
	return x;
dead:
	x->km.state = XFRM_STATE_DEAD;
	if (x->aead)
		memzero_explicit(x->aead->alg_key, QKS_XKEY_LEN);
	xfrm_state_put(x);
	return ERR_PTR(err);
}

void qks_xstate_del(struct xfrm_state *x)
{
	int err;

	if (!x)
		return;
	err = xfrm_state_delete(x);
	xfrm_audit_state_delete(x, err ? 0 : 1, true);
	/* Not for an SA someone else deleted already (they told). */
	if (!err)
		qks_xnotify(x, XFRM_MSG_DELSA);
	qks_xkey_wipe(x);
	xfrm_state_put(x);
}

u64 qks_xpackets(struct xfrm_state *x)
{
	u64 n;

	spin_lock_bh(&x->lock);
	n = x->curlft.packets;
	spin_unlock_bh(&x->lock);
	return n;
}
