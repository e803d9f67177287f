// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: keys reserved by one consumer.
 *
 * An XFRM binding or a pump file reserves a key: it leaves the available list,
 * invisible to every other consumer, and is either committed (wiped, counted
 * as delivered) or released (available again in its place by id).
 */
#include <linux/slab.h>
#include <linux/string.h>

#include "qks.h"

/*
 * XFRM bindings: reserve the lowest available key with id >= min_id and at
 * least min_len bytes, copying its first len bytes to buf. The key stays in
 * the store, invisible to other consumers, until qks_key_commit() wipes it or
 * qks_key_release() makes it available again. A shorter key at the head is
 * left in place (-EMSGSIZE).
 */
int qks_key_reserve_from(struct qks_link *link, const void *owner, u64 min_id,
			 u32 min_len, u8 *buf, u32 len, u64 *id)
{
	struct qks_key *k = NULL, *pos;
	struct net *net;
	u32 avail;

	spin_lock(&link->lock);
	if (link->dead) {
		spin_unlock(&link->lock);
		return -ENOENT;
	}
	list_for_each_entry(pos, &link->avail, avail) {
		if (pos->id >= min_id) {
			k = pos;
			break;
		}
	}
	if (!k || k->len < min_len) {
		spin_unlock(&link->lock);
		return k ? -EMSGSIZE : -ENODATA;
	}
	list_del_init(&k->avail);
	k->state = QKD_KEY_RESERVED;
	k->owner = owner;
	link->n_avail--;
	link->n_reserved++;
	memcpy(buf, k->data, min(len, k->len));
	*id = k->id;
	net = qks_low_check(link);
	avail = link->n_avail;
	spin_unlock(&link->lock);
	qks_low_send(link, net, avail);
	return 0;
}

static struct qks_key *qks_key_reserved(struct qks_link *link, const void *owner,
					u64 id)
{
	struct qks_key *k = qks_key_lookup(link, id);

	if (k && k->owner == owner && k->state == QKD_KEY_RESERVED)
		return k;
	return NULL;
}

/* The reserved key is in use: it leaves the store and is wiped. */
void qks_key_commit(struct qks_link *link, const void *owner, u64 id)
{
	struct qks_key *k;

	spin_lock(&link->lock);
	k = qks_key_reserved(link, owner, id);
	if (k)
		qks_key_detach(link, k, k->len);
	spin_unlock(&link->lock);
	if (k)
		qks_key_free(k);
}

/* The reserved key was not used: available again, in its place by id. */
void qks_key_release(struct qks_link *link, const void *owner, u64 id)
{
	struct qks_key *k, *pos;

	spin_lock(&link->lock);
	k = qks_key_reserved(link, owner, id);
	if (k) {
		k->state = QKD_KEY_AVAILABLE;
		k->owner = NULL;
		link->n_reserved--;
		link->n_avail++;
		list_for_each_entry_reverse(pos, &link->avail, avail) {
			if (pos->id < k->id) {
				list_add(&k->avail, &pos->avail);
				goto added;
			}
		}
		list_add(&k->avail, &link->avail);
	}
added:
	spin_unlock(&link->lock);
}

/*
 * The pump: reserve the next key for @owner (or keep the one it has) and copy
 * up to @max of its unread bytes to @buf. Nothing is counted as read until
 * qks_pump_commit(): a copy to userspace that faults loses no byte.
 */
size_t qks_pump_take(struct qks_link *link, const void *owner, u64 *cur,
		     bool *has_cur, u8 *buf, size_t max, bool *eof)
{
	struct qks_key *k = NULL;
	struct net *net = NULL;
	u32 avail = 0;
	size_t n = 0;

	spin_lock(&link->lock);
	if (link->dead) {
		*eof = true;
		*has_cur = false;
		goto unlock;
	}
	if (*has_cur) {
		k = qks_key_reserved(link, owner, *cur);
		*has_cur = k;
	}
	if (!k) {
		k = list_first_entry_or_null(&link->avail, struct qks_key, avail);
		if (!k)
			goto unlock;
		list_del_init(&k->avail);
		k->state = QKD_KEY_RESERVED;
		k->owner = owner;
		link->n_avail--;
		link->n_reserved++;
		*cur = k->id;
		*has_cur = true;
		net = qks_low_check(link);
		avail = link->n_avail;
	}
	n = min_t(size_t, max, k->len - k->off);
	memcpy(buf, k->data + k->off, n);
unlock:
	spin_unlock(&link->lock);
	qks_low_send(link, net, avail);
	return n;
}

/* @n bytes of the pump's key reached the reader; a fully read key is wiped. */
void qks_pump_commit(struct qks_link *link, const void *owner, u64 cur,
		     bool *has_cur, size_t n)
{
	struct qks_key *k;

	spin_lock(&link->lock);
	k = qks_key_reserved(link, owner, cur);
	if (k) {
		k->off += min_t(size_t, n, k->len - k->off);
		if (k->off < k->len)
			k = NULL;
		else
			qks_key_detach(link, k, k->len);
	}
	/* Fully read, or gone with its link meanwhile: the pump has no key. */
	if (k || link->dead)
		*has_cur = false;
	spin_unlock(&link->lock);
	if (k)
		qks_key_free(k);
}

/* A pump closed in the middle of a key: the rest of it is wiped, never reused. */
void qks_pump_release(struct qks_link *link, const void *owner, u64 cur)
{
	struct qks_key *k;

	spin_lock(&link->lock);
	k = qks_key_lookup(link, cur);
	if (k && k->owner == owner && k->state == QKD_KEY_RESERVED)
		qks_key_detach(link, k, k->off);
	else
		k = NULL;
	spin_unlock(&link->lock);
	if (k)
		qks_key_free(k);
}

bool qks_link_readable(struct qks_link *link, bool has_cur)
{
	bool r;

	spin_lock(&link->lock);
	r = link->dead || link->n_avail || has_cur;
	spin_unlock(&link->lock);
	return r;
}
