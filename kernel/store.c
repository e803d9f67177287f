// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: the per-network-namespace store of links.
 *
 * Each namespace has a list of named links (store-key.c keeps their keys).
 * Removing a link, a namespace exit or the module unload wipes every key the
 * link still holds.
 */
#include <linux/ctype.h>
#include <linux/key.h>
#include <linux/slab.h>
#include <linux/string.h>
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
	/*
	 * ':' separates link and key id in key descriptions: keep it out. The
	 * kernel's isalnum() also accepts Latin-1 letters: test ASCII first.
	 */
	for (i = 0; i < n; i++)
		if (!isascii(name[i]) ||
		    (!isalnum(name[i]) && name[i] != '.' && name[i] != '_' &&
		     name[i] != '-'))
			return false;
	return true;
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
	qks_key_flush_deferred();
}
