// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: the keys of a link.
 *
 * A link holds its keys in a red-black tree by key id plus a list of the
 * available ones in ascending id order, so "the next key" is the lowest
 * available id on both peers. A key leaves the store exactly once (fetch,
 * keyring read, pump, XFRM binding, link removal) and its bytes are wiped
 * when it does. Reservations (XFRM bindings, the pump) are in store-reserve.c.
 */
#include <linux/key.h>
#include <linux/llist.h>
#include <linux/nsproxy.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/workqueue.h>

#include "qks.h"

struct qks_key *qks_key_lookup(struct qks_link *link, u64 id)
{
	struct rb_node *n = link->keys.rb_node;

	while (n) {
		struct qks_key *k = rb_entry(n, struct qks_key, node);

		if (id < k->id)
			n = n->rb_left;
		else if (id > k->id)
			n = n->rb_right;
		else
			return k;
	}
	return NULL;
}

static void qks_key_insert(struct qks_link *link, struct qks_key *k)
{
	struct rb_node **p = &link->keys.rb_node, *parent = NULL;
	struct qks_key *pos;

	while (*p) {
		parent = *p;
		pos = rb_entry(parent, struct qks_key, node);
		p = k->id < pos->id ? &parent->rb_left : &parent->rb_right;
	}
	rb_link_node(&k->node, parent, p);
	rb_insert_color(&k->node, &link->keys);

	/* Keys usually arrive in ascending id order: search from the tail. */
	list_for_each_entry_reverse(pos, &link->avail, avail) {
		if (pos->id < k->id) {
			list_add(&k->avail, &pos->avail);
			return;
		}
	}
	list_add(&k->avail, &link->avail);
}

/* Remove @k from the store; the caller wipes and frees it. Under link->lock. */
void qks_key_detach(struct qks_link *link, struct qks_key *k,
		    u32 delivered_bytes)
{
	rb_erase(&k->node, &link->keys);
	if (k->state == QKD_KEY_AVAILABLE) {
		list_del_init(&k->avail);
		link->n_avail--;
	} else {
		link->n_reserved--;
	}
	link->bytes -= k->len;
	link->stats.delivered++;
	link->stats.bytes_delivered += delivered_bytes;
	link->stats.wiped++;
	k->state = QKD_KEY_CONSUMED;
}

/*
 * After a key left the available list: should a low-watermark event go out?
 * Returns a reference to the namespace to send it in, or NULL. Under lock.
 */
struct net *qks_low_check(struct qks_link *link)
{
	if (!link->low_watermark || link->low_sent || link->dead ||
	    link->n_avail >= link->low_watermark)
		return NULL;
	link->low_sent = true;
	/* NULL when the namespace is already being dismantled. */
	return maybe_get_net(link->net);
}

void qks_low_send(struct qks_link *link, struct net *net, u32 avail)
{
	if (!net)
		return;
	qks_event_low(net, link->name, avail, link->low_watermark);
	put_net(net);
}

void qks_key_free(struct qks_key *k)
{
	memzero_explicit(k->data, k->len);
	if (k->kkey) {
		key_invalidate(k->kkey);
		key_put(k->kkey);
	}
	kfree_sensitive(k);
}

/*
 * A keyring read holds key->sem, so the key cannot be invalidated there:
 * the bytes are wiped at once and the rest happens in a work item.
 */
static LLIST_HEAD(qks_deferred);

static void qks_deferred_fn(struct work_struct *work)
{
	struct llist_node *list = llist_del_all(&qks_deferred);
	struct qks_key *k, *tmp;

	llist_for_each_entry_safe(k, tmp, list, lnode)
		qks_key_free(k);
}

static DECLARE_WORK(qks_deferred_work, qks_deferred_fn);

/* After every keyring reader is gone (the key type is unregistered). */
void qks_key_flush_deferred(void)
{
	flush_work(&qks_deferred_work);
}

static void qks_key_free_deferred(struct qks_key *k)
{
	memzero_explicit(k->data, k->len);
	llist_add(&k->lnode, &qks_deferred);
	schedule_work(&qks_deferred_work);
}

static int qks_push_check(struct qks_link *link, u64 id, u32 len,
			  struct netlink_ext_ack *extack)
{
	if (link->dead) {
		NL_SET_ERR_MSG(extack, "link is being removed");
		return -ENOENT;
	}
	if (qks_key_lookup(link, id)) {
		NL_SET_ERR_MSG(extack, "a key with this id is already stored");
		return -EEXIST;
	}
	if (link->n_avail + link->n_reserved >= link->max_keys) {
		NL_SET_ERR_MSG(extack, "link is full: key count limit reached");
		return -ENOSPC;
	}
	if (link->bytes + len > link->max_bytes) {
		NL_SET_ERR_MSG(extack, "link is full: byte limit reached");
		return -EDQUOT;
	}
	return 0;
}

int qks_key_push(struct qks_link *link, u64 id, const void *data, u32 len,
		 struct netlink_ext_ack *extack)
{
	struct qks_key *k, *back;
	struct key *kkey;
	bool dead;
	u32 avail;
	int err;

	/* Cheap early refusal before allocating anything. */
	spin_lock(&link->lock);
	err = qks_push_check(link, id, len, extack);
	spin_unlock(&link->lock);
	if (err)
		return err;

	k = kmalloc(struct_size(k, data, len), GFP_KERNEL);
	if (!k)
		return -ENOMEM;
	memcpy(k->data, data, len);
	k->id = id;
	k->len = len;
	k->off = 0;
	k->owner = NULL;
	k->kkey = NULL;
	k->state = QKD_KEY_AVAILABLE;
	INIT_LIST_HEAD(&k->free);

	kkey = qks_kkey_create(link, id);
	if (IS_ERR(kkey)) {
		qks_key_free(k);
		NL_SET_ERR_MSG(extack, "cannot create the keyring key");
		return PTR_ERR(kkey);
	}
	k->kkey = kkey;

	spin_lock(&link->lock);
	err = qks_push_check(link, id, len, extack);
	if (!err) {
		qks_key_insert(link, k);
		link->n_avail++;
		link->bytes += len;
		link->stats.pushed++;
		link->stats.bytes_pushed += len;
		if (link->n_avail >= link->low_watermark)
			link->low_sent = false;
		avail = link->n_avail;
		/* Our own reference: a consumer may free k right after unlock. */
		key_get(kkey);
	}
	spin_unlock(&link->lock);
	if (err) {
		qks_key_free(k);
		return err;
	}

	err = qks_kkey_link(link, kkey);
	if (err) {
		/* Not findable through the keyring: undo unless already taken. */
		spin_lock(&link->lock);
		back = qks_key_lookup(link, id);
		if (back && back->kkey == kkey && back->state == QKD_KEY_AVAILABLE) {
			qks_key_detach(link, back, 0);
			link->stats.delivered--;
			link->stats.pushed--;
			link->stats.bytes_pushed -= len;
		} else {
			back = NULL;
		}
		spin_unlock(&link->lock);
		key_put(kkey);
		if (back) {
			qks_key_free(back);
			NL_SET_ERR_MSG(extack, "cannot link the key into the link keyring");
			return err;
		}
		return 0;
	}
	/* Linked after qks_link_kill() cleared the keyring? Undo that link. */
	spin_lock(&link->lock);
	dead = link->dead;
	spin_unlock(&link->lock);
	if (dead)
		key_unlink(link->keyring, kkey);
	key_put(kkey);
	if (dead)
		return -ENOENT;
	wake_up_interruptible(&link->wq);
	qks_event_new_key(link->net, link->name, id, len, avail);
	return 0;
}

struct qks_key *qks_key_take(struct qks_link *link, const u64 *id)
{
	struct qks_key *k;
	struct net *net;
	u32 avail;

	spin_lock(&link->lock);
	if (link->dead) {
		k = ERR_PTR(-ENOENT);
		goto unlock;
	}
	if (id) {
		k = qks_key_lookup(link, *id);
		if (!k)
			k = ERR_PTR(-ENOKEY);
		else if (k->state != QKD_KEY_AVAILABLE)
			k = ERR_PTR(-EBUSY);
	} else {
		k = list_first_entry_or_null(&link->avail, struct qks_key, avail);
		if (!k)
			k = ERR_PTR(-ENODATA);
	}
	if (IS_ERR(k))
		goto unlock;
	qks_key_detach(link, k, k->len);
	net = qks_low_check(link);
	avail = link->n_avail;
	spin_unlock(&link->lock);
	qks_low_send(link, net, avail);
	return k;
unlock:
	spin_unlock(&link->lock);
	return k;
}

/*
 * The lowest available key with id >= min_id, for XFRM bindings. A key shorter
 * than min_len is left in place (-EMSGSIZE): it is not wasted.
 */
struct qks_key *qks_key_take_from(struct qks_link *link, u64 min_id, u32 min_len)
{
	struct qks_key *k, *pos;
	struct net *net;
	u32 avail;

	spin_lock(&link->lock);
	k = ERR_PTR(-ENODATA);
	if (link->dead) {
		k = ERR_PTR(-ENOENT);
	} else {
		list_for_each_entry(pos, &link->avail, avail) {
			if (pos->id >= min_id) {
				k = pos;
				break;
			}
		}
	}
	if (!IS_ERR(k) && k->len < min_len)
		k = ERR_PTR(-EMSGSIZE);
	if (IS_ERR(k)) {
		spin_unlock(&link->lock);
		return k;
	}
	qks_key_detach(link, k, k->len);
	net = qks_low_check(link);
	avail = link->n_avail;
	spin_unlock(&link->lock);
	qks_low_send(link, net, avail);
	return k;
}

long qks_key_read(struct qks_link *link, u64 id, const struct key *kkey,
		  char *buf, size_t buflen)
{
	struct qks_key *k;
	struct net *net;
	u32 avail;
	long ret;

	/*
	 * Searches only find keys of the searcher's namespace; reading by serial
	 * number is held to the same rule.
	 */
	if (!net_eq(current->nsproxy->net_ns, link->net))
		return -EACCES;
	spin_lock(&link->lock);
	k = qks_key_lookup(link, id);
	if (link->dead || !k || k->kkey != kkey || k->state != QKD_KEY_AVAILABLE) {
		spin_unlock(&link->lock);
		return -ENOKEY;
	}
	ret = k->len;
	/* A size query (or a short buffer) must not consume the key. */
	if (!buf || buflen < k->len) {
		spin_unlock(&link->lock);
		return ret;
	}
	memcpy(buf, k->data, k->len);
	qks_key_detach(link, k, k->len);
	net = qks_low_check(link);
	avail = link->n_avail;
	spin_unlock(&link->lock);
	qks_key_free_deferred(k);
	qks_low_send(link, net, avail);
	return ret;
}
