// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: the per-network-namespace store.
 *
 * Each namespace has a list of links; each link holds its keys in a red-black
 * tree by key id plus a list of the available ones in ascending id order, so
 * "the next key" is the lowest available id on both peers. A key leaves the
 * store exactly once (fetch, keyring read, pump, link removal, namespace exit,
 * module unload) and its bytes are wiped when it does.
 */
#include <linux/ctype.h>
#include <linux/key.h>
#include <linux/llist.h>
#include <linux/nsproxy.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/workqueue.h>
#include <net/netns/generic.h>

#include "qks.h"

#define QKS_MAX_LINKS	256

static unsigned int qks_net_id __read_mostly;

struct qks_net *qks_net(struct net *net)
{
	return net_generic(net, qks_net_id);
}

bool qks_link_name_valid(const char *name)
{
	size_t i, n = strnlen(name, QKD_LINK_NAME_MAX);

	if (n == 0 || n >= QKD_LINK_NAME_MAX)
		return false;
	/* ':' separates link and key id in key descriptions: keep it out. */
	for (i = 0; i < n; i++)
		if (!isalnum(name[i]) && name[i] != '.' && name[i] != '_' &&
		    name[i] != '-')
			return false;
	return true;
}

static struct qks_key *qks_key_lookup(struct qks_link *link, u64 id)
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
static void qks_key_detach(struct qks_link *link, struct qks_key *k,
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
static struct net *qks_low_check(struct qks_link *link)
{
	if (!link->low_watermark || link->low_sent || link->dead ||
	    link->n_avail >= link->low_watermark)
		return NULL;
	link->low_sent = true;
	/* NULL when the namespace is already being dismantled. */
	return maybe_get_net(link->net);
}

static void qks_low_send(struct qks_link *link, struct net *net, u32 avail)
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

size_t qks_pump_take(struct qks_link *link, const void *owner, u64 *cur,
		     bool *has_cur, u8 *buf, size_t max, bool *eof)
{
	struct qks_key *k = NULL, *done = NULL;
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
		k = qks_key_lookup(link, *cur);
		if (k && (k->owner != owner || k->state != QKD_KEY_RESERVED))
			k = NULL;
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
	k->off += n;
	if (k->off == k->len) {
		qks_key_detach(link, k, k->len);
		*has_cur = false;
		done = k;
	}
unlock:
	spin_unlock(&link->lock);
	if (done)
		qks_key_free(done);
	qks_low_send(link, net, avail);
	return n;
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

void qks_link_snapshot(struct qks_link *link, u32 *avail, u32 *reserved,
		       u64 *bytes, struct qks_stats *st)
{
	spin_lock(&link->lock);
	*avail = link->n_avail;
	*reserved = link->n_reserved;
	*bytes = link->bytes;
	*st = link->stats;
	spin_unlock(&link->lock);
}

static void qks_stats_add(struct qks_stats *a, const struct qks_stats *b)
{
	a->pushed += b->pushed;
	a->delivered += b->delivered;
	a->wiped += b->wiped;
	a->bytes_pushed += b->bytes_pushed;
	a->bytes_delivered += b->bytes_delivered;
}

void qks_net_stats(struct net *net, struct qks_stats *st, u32 *links)
{
	struct qks_net *qn = qks_net(net);
	struct qks_link *link;

	mutex_lock(&qn->lock);
	*st = qn->removed;
	*links = qn->n_links;
	list_for_each_entry(link, &qn->links, node) {
		spin_lock(&link->lock);
		qks_stats_add(st, &link->stats);
		spin_unlock(&link->lock);
	}
	mutex_unlock(&qn->lock);
}

static void qks_link_release(struct kref *ref)
{
	struct qks_link *link = container_of(ref, struct qks_link, ref);

	key_put(link->keyring);
	kfree(link);
}

void qks_link_put(struct qks_link *link)
{
	kref_put(&link->ref, qks_link_release);
}

static struct qks_link *qks_link_find_locked(struct qks_net *qn,
					     const char *name)
{
	struct qks_link *link;

	list_for_each_entry(link, &qn->links, node)
		if (!strcmp(link->name, name))
			return link;
	return NULL;
}

struct qks_link *qks_link_find(struct net *net, const char *name)
{
	struct qks_net *qn = qks_net(net);
	struct qks_link *link;

	mutex_lock(&qn->lock);
	link = qks_link_find_locked(qn, name);
	if (link)
		kref_get(&link->ref);
	mutex_unlock(&qn->lock);
	return link;
}

int qks_link_add(struct net *net, const char *name,
		 const struct qks_link_params *p, struct netlink_ext_ack *extack)
{
	struct qks_net *qn = qks_net(net);
	struct qks_link *link;
	char desc[QKD_LINK_NAME_MAX + 8];
	int err;

	if (!qks_link_name_valid(name)) {
		NL_SET_ERR_MSG(extack, "link name must be 1-31 of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	link = kzalloc(sizeof(*link), GFP_KERNEL);
	if (!link)
		return -ENOMEM;
	kref_init(&link->ref);
	strscpy(link->name, name, sizeof(link->name));
	link->net = net;
	spin_lock_init(&link->lock);
	link->keys = RB_ROOT;
	INIT_LIST_HEAD(&link->avail);
	init_waitqueue_head(&link->wq);
	mutex_init(&link->xlock);
	INIT_LIST_HEAD(&link->xbinds);
	link->max_keys = p->max_keys;
	link->max_bytes = p->max_bytes;
	link->low_watermark = p->low_watermark;
	link->uid = p->uid;
	link->gid = p->gid;

	mutex_lock(&qn->lock);
	if (qks_link_find_locked(qn, name)) {
		NL_SET_ERR_MSG(extack, "a link with this name exists");
		err = -EEXIST;
		goto fail;
	}
	if (qn->n_links >= QKS_MAX_LINKS) {
		NL_SET_ERR_MSG(extack, "too many links in this namespace");
		err = -ENOSPC;
		goto fail;
	}
	snprintf(desc, sizeof(desc), "qkd:%s", name);
	link->keyring = qks_keyring_create(desc, p->uid, p->gid, qn->keyring);
	if (IS_ERR(link->keyring)) {
		err = PTR_ERR(link->keyring);
		link->keyring = NULL;
		NL_SET_ERR_MSG(extack, "cannot create the link keyring");
		goto fail;
	}
	list_add_tail(&link->node, &qn->links);
	qn->n_links++;
	mutex_unlock(&qn->lock);
	qks_event_link(net, name, true);
	return 0;
fail:
	mutex_unlock(&qn->lock);
	kfree(link);
	return err;
}

/* Take every key out of a link, wipe them, and make the link dead. */
static void qks_link_kill(struct qks_net *qn, struct qks_link *link)
{
	struct qks_key *k, *tmp;
	LIST_HEAD(victims);

	spin_lock(&link->lock);
	link->dead = true;
	rbtree_postorder_for_each_entry_safe(k, tmp, &link->keys, node) {
		list_add(&k->free, &victims);
		link->stats.wiped++;
	}
	link->keys = RB_ROOT;
	INIT_LIST_HEAD(&link->avail);
	link->n_avail = 0;
	link->n_reserved = 0;
	link->bytes = 0;
	qks_stats_add(&qn->removed, &link->stats);
	spin_unlock(&link->lock);

	wake_up_interruptible_all(&link->wq);
	/* SAs bound to the link go first: they are removed and their keys wiped. */
	qks_xfrm_link_gone(link);
	/*
	 * Unlink the keys first: each key's payload holds the link, which holds
	 * the keyring, which would hold the keys forever once invalidated.
	 */
	keyring_clear(link->keyring);
	list_for_each_entry_safe(k, tmp, &victims, free)
		qks_key_free(k);
	key_invalidate(link->keyring);
}

int qks_link_del(struct net *net, const char *name)
{
	struct qks_net *qn = qks_net(net);
	struct qks_link *link;

	mutex_lock(&qn->lock);
	link = qks_link_find_locked(qn, name);
	if (!link) {
		mutex_unlock(&qn->lock);
		return -ENOENT;
	}
	list_del(&link->node);
	qn->n_links--;
	qks_link_kill(qn, link);
	mutex_unlock(&qn->lock);
	qks_event_link(net, name, false);
	qks_link_put(link);
	return 0;
}

static int __net_init qks_net_init(struct net *net)
{
	struct qks_net *qn = qks_net(net);
	char desc[32];

	mutex_init(&qn->lock);
	INIT_LIST_HEAD(&qn->links);
	snprintf(desc, sizeof(desc), "qkd:net:%u", net->ns.inum);
	qn->keyring = qks_keyring_create(desc, GLOBAL_ROOT_UID, INVALID_GID,
					 qks_module_keyring);
	if (IS_ERR(qn->keyring)) {
		int err = PTR_ERR(qn->keyring);

		qn->keyring = NULL;
		return err;
	}
	return 0;
}

static void __net_exit qks_net_exit(struct net *net)
{
	struct qks_net *qn = qks_net(net);
	struct qks_link *link, *tmp;

	mutex_lock(&qn->lock);
	list_for_each_entry_safe(link, tmp, &qn->links, node) {
		list_del(&link->node);
		qn->n_links--;
		qks_link_kill(qn, link);
		qks_link_put(link);
	}
	mutex_unlock(&qn->lock);
	if (qn->keyring) {
		key_invalidate(qn->keyring);
		key_put(qn->keyring);
	}
}

static struct pernet_operations qks_net_ops = {
	.init = qks_net_init,
	.exit = qks_net_exit,
	.id = &qks_net_id,
	.size = sizeof(struct qks_net),
};

int qks_store_init(void)
{
	return register_pernet_subsys(&qks_net_ops);
}

/* Every namespace's links are wiped here; then the deferred frees finish. */
void qks_store_exit(void)
{
	unregister_pernet_subsys(&qks_net_ops);
	flush_work(&qks_deferred_work);
}
