// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: ESP SAs keyed from a link's keys inside the kernel.
 *
 * A binding holds an SA template (addresses, mode, SPI base, reqid, ICV,
 * rekey budget). Each generation takes one key of at least 72 bytes from the
 * link, the lowest available id at or above the last one used, so both peers
 * walk through the same key ids without talking to each other. The key gives
 * one 288-bit rfc4106(gcm(aes)) key (256-bit key + 32-bit salt) per direction:
 * the side with the lower address sends with the first 36 bytes. The SPI of
 * key id k is SPI_BASE + hash_64(k, 16) in both directions.
 *
 * At any time a binding has the current generation (outbound and inbound SA)
 * and the next one pre-installed inbound only, so the peer may switch first.
 * It switches its outbound SA when that SA's soft byte/packet/time limit
 * expires (the xfrm_mgr notify callback), or when the peer's traffic arrives
 * on the next generation's inbound SA (follow the peer). An old inbound SA is
 * kept until traffic shows on a newer one, plus a grace period. Hard limits are
 * twice the soft ones: with no key to rekey, traffic stops rather than running
 * on a worn key. A key is reserved, not taken, until its inbound SA is in, so
 * a local failure loses no key. Key bytes never leave the kernel; they are wiped
 * once the SAs hold them, and an SA's key copy is wiped when the binding deletes it.
 */
#include <linux/hash.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>
#include <net/xfrm.h>

#include "xfrm.h"

static LIST_HEAD(qks_xbinds);
static DEFINE_SPINLOCK(qks_xbinds_lock);

/*
 * The SPI of key id k: SPI_BASE plus 16 bits mixed from the whole id, so ids
 * frame * 65536 + i of consecutive frames get different SPIs. Both peers
 * compute the same value.
 */
static u32 qks_xspi(const struct qks_xbind *b, u64 id)
{
	return b->t.spi_base + hash_64(id, 16);
}

/*
 * An SPI equal to one of the binding's recent generations would collide with
 * an SA still installed: such an id is skipped (left in the store). The
 * history depends only on the ids taken, so both peers skip the same ids.
 */
static bool qks_xspi_recent(const struct qks_xbind *b, u32 spi)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(b->spi_hist); i++)
		if (b->spi_hist_n > i && b->spi_hist[i] == spi)
			return true;
	return false;
}

static bool qks_xspi_taken(struct qks_xbind *b, u32 spi)
{
	const xfrm_address_t *dst[2] = { &b->t.saddr, &b->t.daddr };
	struct xfrm_state *x;
	int i;

	for (i = 0; i < 2; i++) {
		x = xfrm_state_lookup(b->link->net, 0, dst[i], htonl(spi),
				      IPPROTO_ESP, b->t.family);
		if (x) {
			xfrm_state_put(x);
			return true;
		}
	}
	return false;
}

/*
 * Reserve the next key and pre-install its inbound SA as b->next. The key
 * leaves the store only once that SA is in: any failure here (a foreign SA
 * at its SPI, ENOMEM, no ESP for the family) releases it, and the next try
 * takes the same id, as the peer does.
 */
static int qks_xgen_new(struct qks_xbind *b)
{
	u8 key[QKD_XFRM_KEY_BYTES];
	const u8 *in_half, *out_half;
	struct qks_xgen *g;
	int err, skips = 0;
	u64 id;
	u32 spi;

	g = kzalloc(sizeof(*g), GFP_KERNEL);
	if (!g)
		return -ENOMEM;
	for (;;) {
		err = qks_key_reserve_from(b->link, b, b->next_min, QKD_XFRM_KEY_BYTES,
					   key, sizeof(key), &id);
		if (err)
			goto out;
		spi = qks_xspi(b, id);
		if (!qks_xspi_recent(b, spi))
			break;
		qks_key_release(b->link, b, id);
		b->next_min = id + 1;
		if (++skips > ARRAY_SIZE(b->spi_hist)) {
			err = -EAGAIN;	/* again at the next work run */
			goto out;
		}
	}
	if (qks_xspi_taken(b, spi)) {
		err = -EEXIST;
		goto release;
	}
	g->key_id = id;
	g->spi = spi;
	out_half = b->low ? key : key + QKS_XKEY_LEN;
	in_half = b->low ? key + QKS_XKEY_LEN : key;
	memcpy(g->out_key, out_half, QKS_XKEY_LEN);
	g->has_out_key = true;
	g->in = qks_xstate_add(b, false, g->spi, in_half);
	if (IS_ERR(g->in)) {
		err = PTR_ERR(g->in);
		goto release;
	}
	/* In use now: out of the store; the outbound half waits in g. */
	qks_key_commit(b->link, b, id);
	b->next_min = id + 1;
	memmove(b->spi_hist + 1, b->spi_hist,
		sizeof(b->spi_hist) - sizeof(b->spi_hist[0]));
	b->spi_hist[0] = spi;
	if (b->spi_hist_n < ARRAY_SIZE(b->spi_hist))
		b->spi_hist_n++;
	list_add_tail(&g->node, &b->gens);
	b->next = g;
	memzero_explicit(key, sizeof(key));
	return 0;
release:
	qks_key_release(b->link, b, id);
out:
	memzero_explicit(key, sizeof(key));
	kfree_sensitive(g);
	return err;
}

/* Make the next generation current: new outbound SA, old one deleted. */
static int qks_xadvance(struct qks_xbind *b)
{
	struct qks_xgen *g;
	struct xfrm_state *out;
	int err;

	if (!b->next) {
		err = qks_xgen_new(b);
		if (err)
			return err;
	}
	g = b->next;
	out = qks_xstate_add(b, true, g->spi, g->out_key);
	if (IS_ERR(out))
		return PTR_ERR(out);
	memzero_explicit(g->out_key, sizeof(g->out_key));
	g->has_out_key = false;
	if (b->cur) {
		qks_xstate_del(b->cur->out);
		b->cur->out = NULL;
	}
	g->out = out;
	b->cur = g;
	b->next = NULL;
	b->generations++;
	WRITE_ONCE(b->cur_out, out);
	/* Pre-install the one after; failing that (no key yet) is retried. */
	return qks_xgen_new(b);
}

static void qks_xgen_free(struct qks_xgen *g)
{
	list_del(&g->node);
	qks_xstate_del(g->in);
	qks_xstate_del(g->out);
	kfree_sensitive(g);
}

/* Drop inbound SAs of generations the peer has moved away from. */
static void qks_xretire(struct qks_xbind *b)
{
	struct qks_xgen *g, *tmp, *newer;
	bool newer_used;
	int n = 0;

	list_for_each_entry(g, &b->gens, node)
		n++;
	list_for_each_entry_safe(g, tmp, &b->gens, node) {
		if (g == b->cur || g == b->next)
			break;
		newer_used = false;
		newer = list_next_entry(g, node);
		list_for_each_entry_from(newer, &b->gens, node)
			if (newer->in && qks_xpackets(newer->in))
				newer_used = true;
		if (newer_used && !g->retire_at)
			g->retire_at = jiffies + (unsigned long)b->t.grace * HZ;
		if (n > QKS_XMAX_GENS ||
		    (g->retire_at && time_after_eq(jiffies, g->retire_at))) {
			qks_xgen_free(g);
			n--;
		}
	}
}

static void qks_xbind_work(struct work_struct *w)
{
	struct qks_xbind *b = container_of(to_delayed_work(w), struct qks_xbind, work);
	bool rekey;
	int err = 0;

	mutex_lock(&b->lock);
	if (b->dead)
		goto unlock;
	rekey = atomic_xchg(&b->rekey, 0);
	/* The peer already sends with the next key: follow it. */
	if (b->next && qks_xpackets(b->next->in))
		rekey = true;
	/* Our outbound SA died (hard limit, or flushed by someone). */
	if (b->cur && b->cur->out && READ_ONCE(b->cur->out->km.state) == XFRM_STATE_DEAD)
		rekey = true;
	if (rekey) {
		struct qks_xgen *before = b->cur;

		err = qks_xadvance(b);
		/* Not switched (no key yet): the expiry will not be told again. */
		if (b->cur == before)
			atomic_set(&b->rekey, 1);
	} else if (!b->next) {
		err = qks_xgen_new(b);
	}
	qks_xretire(b);
	b->err = err;
	schedule_delayed_work(&b->work, HZ);
unlock:
	mutex_unlock(&b->lock);
}

int qks_xfrm_bind(struct qks_link *link, const struct qks_xfrm_tmpl *t, u32 *id,
		  struct netlink_ext_ack *extack)
{
	size_t alen = t->family == AF_INET ? 4 : 16;
	struct qks_xbind *b;
	int err;

	/*
	 * One binding per link: two would take keys in an order that depends on
	 * when each rekeys, which the peers cannot reproduce.
	 */
	mutex_lock(&link->xlock);
	if (!list_empty(&link->xbinds)) {
		mutex_unlock(&link->xlock);
		NL_SET_ERR_MSG(extack, "the link has a binding already: use one link per SA pair");
		return -EBUSY;
	}
	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b) {
		mutex_unlock(&link->xlock);
		return -ENOMEM;
	}
	kref_get(&link->ref);
	b->link = link;
	b->t = *t;
	/* One key never protects an SA forever: a budget is always set. */
	if (!t->life_bytes && !t->life_packets && !t->life_seconds)
		b->t.life_seconds = QKS_XDEFAULT_SECONDS;
	if (!b->t.life_packets || b->t.life_packets > QKS_XSOFT_PACKETS_MAX)
		b->t.life_packets = QKS_XSOFT_PACKETS_MAX;
	b->low = memcmp(&t->saddr, &t->daddr, alen) < 0;
	b->next_min = t->first_key_id;
	mutex_init(&b->lock);
	INIT_LIST_HEAD(&b->gens);
	INIT_DELAYED_WORK(&b->work, qks_xbind_work);

	mutex_lock(&b->lock);
	err = qks_xadvance(b);
	/* Only the current generation is needed to start. */
	if (err && b->cur) {
		b->err = err;
		err = 0;
	}
	mutex_unlock(&b->lock);
	if (err) {
		struct qks_xgen *g, *tmp;

		list_for_each_entry_safe(g, tmp, &b->gens, node)
			qks_xgen_free(g);
		if (err == -ENODATA)
			NL_SET_ERR_MSG(extack, "no key available on the link to start with");
		else if (err == -EMSGSIZE)
			NL_SET_ERR_MSG(extack, "the link's next key is shorter than 72 bytes");
		else if (err == -EEXIST)
			NL_SET_ERR_MSG(extack, "an SA with the first key's SPI exists already");
		else
			NL_SET_ERR_MSG(extack, "cannot install the ESP SA");
		mutex_unlock(&link->xlock);
		qks_link_put(link);
		kfree(b);
		return err;
	}

	/* Fully set up before the link's teardown can see it. */
	b->id = ++link->next_xid;
	*id = b->id;
	spin_lock_bh(&qks_xbinds_lock);
	list_add_tail(&b->all, &qks_xbinds);
	spin_unlock_bh(&qks_xbinds_lock);
	schedule_delayed_work(&b->work, HZ);
	list_add_tail(&b->node, &link->xbinds);
	mutex_unlock(&link->xlock);
	return 0;
}

static void qks_xbind_destroy(struct qks_xbind *b)
{
	struct qks_xgen *g, *tmp;

	/* Off the notify list first, so nothing can queue the work again. */
	spin_lock_bh(&qks_xbinds_lock);
	list_del(&b->all);
	spin_unlock_bh(&qks_xbinds_lock);
	mutex_lock(&b->lock);
	b->dead = true;
	mutex_unlock(&b->lock);
	cancel_delayed_work_sync(&b->work);
	list_for_each_entry_safe(g, tmp, &b->gens, node)
		qks_xgen_free(g);
	qks_link_put(b->link);
	kfree(b);
}

int qks_xfrm_unbind(struct qks_link *link, u32 id)
{
	struct qks_xbind *b, *found = NULL;

	mutex_lock(&link->xlock);
	list_for_each_entry(b, &link->xbinds, node) {
		if (b->id == id) {
			found = b;
			list_del(&b->node);
			break;
		}
	}
	mutex_unlock(&link->xlock);
	if (!found)
		return -ENOENT;
	qks_xbind_destroy(found);
	return 0;
}

void qks_xfrm_link_gone(struct qks_link *link)
{
	struct qks_xbind *b, *tmp;
	LIST_HEAD(gone);

	mutex_lock(&link->xlock);
	list_splice_init(&link->xbinds, &gone);
	mutex_unlock(&link->xlock);
	list_for_each_entry_safe(b, tmp, &gone, node) {
		list_del(&b->node);
		qks_xbind_destroy(b);
	}
}

static int qks_xfill_one(struct sk_buff *skb, struct qks_xbind *b)
{
	size_t alen = b->t.family == AF_INET ? 4 : 16;
	u64 bytes = 0, packets = 0, age = 0;
	struct xfrm_state *x;

	mutex_lock(&b->lock);
	x = b->cur ? b->cur->out : NULL;
	if (x) {
		spin_lock_bh(&x->lock);
		bytes = x->curlft.bytes;
		packets = x->curlft.packets;
		age = ktime_get_real_seconds() - x->curlft.add_time;
		spin_unlock_bh(&x->lock);
	}
	if (nla_put_u32(skb, QKD_A_XFRM_ID, b->id) ||
	    nla_put(skb, QKD_A_XFRM_SADDR, alen, &b->t.saddr) ||
	    nla_put(skb, QKD_A_XFRM_DADDR, alen, &b->t.daddr) ||
	    nla_put_u8(skb, QKD_A_XFRM_MODE, b->t.mode) ||
	    nla_put_u32(skb, QKD_A_XFRM_SPI_BASE, b->t.spi_base) ||
	    nla_put_u32(skb, QKD_A_XFRM_REQID, b->t.reqid) ||
	    nla_put_u32(skb, QKD_A_XFRM_ICV_BITS, b->t.icv_bits) ||
	    nla_put_u64_64bit(skb, QKD_A_XFRM_LIFE_BYTES, b->t.life_bytes, QKD_A_PAD) ||
	    nla_put_u64_64bit(skb, QKD_A_XFRM_LIFE_PACKETS, b->t.life_packets, QKD_A_PAD) ||
	    nla_put_u64_64bit(skb, QKD_A_XFRM_LIFE_SECONDS, b->t.life_seconds, QKD_A_PAD) ||
	    nla_put_u32(skb, QKD_A_XFRM_GRACE, b->t.grace) ||
	    (b->cur && (nla_put_u64_64bit(skb, QKD_A_KEY_ID, b->cur->key_id, QKD_A_PAD) ||
			nla_put_u32(skb, QKD_A_XFRM_SPI, b->cur->spi))) ||
	    (b->next && nla_put_u64_64bit(skb, QKD_A_XFRM_NEXT_KEY_ID, b->next->key_id,
					  QKD_A_PAD)) ||
	    nla_put_u64_64bit(skb, QKD_A_XFRM_GENERATIONS, b->generations, QKD_A_PAD) ||
	    nla_put_u64_64bit(skb, QKD_A_XFRM_USED_BYTES, bytes, QKD_A_PAD) ||
	    nla_put_u64_64bit(skb, QKD_A_XFRM_USED_PACKETS, packets, QKD_A_PAD) ||
	    nla_put_u64_64bit(skb, QKD_A_XFRM_AGE, age, QKD_A_PAD) ||
	    nla_put_s32(skb, QKD_A_XFRM_ERROR, b->err)) {
		mutex_unlock(&b->lock);
		return -EMSGSIZE;
	}
	mutex_unlock(&b->lock);
	return 0;
}

/* Dump helper: one message per binding from *pos on; advances *pos. */
int qks_xfrm_fill(struct sk_buff *skb, struct qks_link *link, u32 portid, u32 seq,
		  long *pos)
{
	struct qks_xbind *b;
	long idx = 0;
	void *hdr;
	int err = 0;

	mutex_lock(&link->xlock);
	list_for_each_entry(b, &link->xbinds, node) {
		if (idx++ < *pos)
			continue;
		hdr = genlmsg_put(skb, portid, seq, &qks_family, NLM_F_MULTI,
				  QKD_CMD_XFRM_GET);
		if (!hdr) {
			err = -EMSGSIZE;
			break;
		}
		if (nla_put_string(skb, QKD_A_LINK, link->name) || qks_xfill_one(skb, b)) {
			genlmsg_cancel(skb, hdr);
			err = -EMSGSIZE;
			break;
		}
		genlmsg_end(skb, hdr);
		(*pos)++;
	}
	mutex_unlock(&link->xlock);
	return err;
}

/* Soft expiry of one of our outbound SAs: time to rekey (atomic context). */
static int qks_km_notify(struct xfrm_state *x, const struct km_event *c)
{
	struct qks_xbind *b;

	if (c->event != XFRM_MSG_EXPIRE || c->data.hard)
		return 0;
	spin_lock_bh(&qks_xbinds_lock);
	list_for_each_entry(b, &qks_xbinds, all) {
		if (READ_ONCE(b->cur_out) == x) {
			atomic_set(&b->rekey, 1);
			mod_delayed_work(system_wq, &b->work, 0);
		}
	}
	spin_unlock_bh(&qks_xbinds_lock);
	return 0;
}

/* The xfrm core calls these without checking for NULL: refuse politely. */
static int qks_km_acquire(struct xfrm_state *x, struct xfrm_tmpl *t,
			  struct xfrm_policy *xp)
{
	return -EINVAL;
}

/*
 * xfrm_user_policy() keeps the error of the last key manager that set one:
 * leaving *dir alone keeps the socket user's errno what it is without us.
 */
static struct xfrm_policy *qks_km_compile_policy(struct sock *sk, int opt, u8 *data,
						 int len, int *dir)
{
	return NULL;
}

static struct xfrm_mgr qks_km = {
	.notify = qks_km_notify,
	.acquire = qks_km_acquire,
	.compile_policy = qks_km_compile_policy,
};

int qks_xfrm_init(void)
{
	xfrm_register_km(&qks_km);
	return 0;
}

void qks_xfrm_exit(void)
{
	xfrm_unregister_km(&qks_km);
}
