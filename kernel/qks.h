/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qkd_keystore internals: the per-namespace store of links and keys, the key
 * type, the generic-netlink family and the key pump share these declarations.
 *
 * Locking, outermost first:
 *   qks_net.lock (mutex)      the namespace's list of links
 *   key->sem (keyring core)   held for read around qks_kt_read()
 *   qks_link.lock (spinlock)  the link's keys, counters and state
 * Nothing that sleeps runs under qks_link.lock; keyring calls on a key
 * (key_invalidate, key_link) happen after it is dropped.
 */
#ifndef QKS_H
#define QKS_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/llist.h>
#include <linux/mutex.h>
#include <linux/rbtree.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/wait.h>
#include <net/net_namespace.h>
#include <net/netlink.h>
#include <net/xfrm.h>

#include "uapi/qkd_keystore.h"

struct key;
struct genl_family;

/* Counters kept per link and summed per namespace. */
struct qks_stats {
	u64 pushed;
	u64 delivered;
	u64 wiped;
	u64 bytes_pushed;
	u64 bytes_delivered;
};

/* One key of a link: shared key id, its state and its bytes. */
struct qks_key {
	struct rb_node node;		/* link->keys, ordered by id */
	struct list_head avail;		/* link->avail while AVAILABLE */
	struct list_head free;		/* on a list of keys to wipe */
	struct llist_node lnode;	/* on the deferred-free list */
	u64 id;
	u32 len;
	u32 off;			/* bytes already given to the pump */
	u8 state;			/* enum qkd_key_state */
	const void *owner;		/* the pump that reserved it */
	struct key *kkey;		/* its keyring key (a reference) */
	u8 data[];
};

struct qks_net;

/* A named peer relation of one network namespace. */
struct qks_link {
	struct kref ref;
	struct list_head node;		/* qks_net->links, under qks_net.lock */
	char name[QKD_LINK_NAME_MAX];
	struct net *net;		/* not a reference: valid while !dead */

	spinlock_t lock;		/* everything below up to stats */
	struct rb_root keys;		/* every stored key by id */
	struct list_head avail;		/* AVAILABLE keys, ascending id */
	u32 n_avail;
	u32 n_reserved;
	u64 bytes;
	bool dead;			/* removed: no new keys, readers see EOF */
	bool low_sent;			/* low-watermark event sent, not rearmed */
	struct qks_stats stats;

	/* Set at creation, constant afterwards. */
	u32 max_keys;
	u64 max_bytes;
	u32 low_watermark;
	kuid_t uid;
	kgid_t gid;			/* INVALID_GID: no group access */
	struct key *keyring;

	wait_queue_head_t wq;		/* pump readers waiting for keys */

	struct mutex xlock;		/* xbinds, next_xid */
	struct list_head xbinds;	/* XFRM bindings (xfrm.c) */
	u32 next_xid;
};

struct qks_net {
	struct mutex lock;		/* links, n_links, removed */
	struct list_head links;
	u32 n_links;
	struct key *keyring;		/* "qkd:net:<inum>" */
	struct qks_stats removed;	/* counters of links already removed */
};

/* main.c: module parameters and the module keyring */
extern struct key *qks_module_keyring;
extern unsigned int qks_param_key_uid;
extern int qks_param_key_gid;
extern unsigned int qks_param_max_keys;
extern unsigned long qks_param_max_bytes;
extern unsigned int qks_param_low_watermark;

/* store.c, store-key.c, store-reserve.c */
struct qks_link_params {
	u32 max_keys;
	u64 max_bytes;
	u32 low_watermark;
	kuid_t uid;
	kgid_t gid;
};

/* store-key.c, for the rest of the store: under link->lock unless noted */
struct qks_key *qks_key_lookup(struct qks_link *link, u64 id);
void qks_key_detach(struct qks_link *link, struct qks_key *k,
		    u32 delivered_bytes);
struct net *qks_low_check(struct qks_link *link);
void qks_low_send(struct qks_link *link, struct net *net, u32 avail); /* unlocked */
void qks_key_flush_deferred(void);

int qks_store_init(void);
void qks_store_exit(void);
struct qks_net *qks_net(struct net *net);
bool qks_link_name_valid(const char *name);
struct qks_link *qks_link_find(struct net *net, const char *name);
void qks_link_put(struct qks_link *link);
int qks_link_add(struct net *net, const char *name,
		 const struct qks_link_params *p, struct netlink_ext_ack *extack);
int qks_link_del(struct net *net, const char *name);
int qks_key_push(struct qks_link *link, u64 id, const void *data, u32 len,
		 struct netlink_ext_ack *extack);
struct qks_key *qks_key_take(struct qks_link *link, const u64 *id);
long qks_key_read(struct qks_link *link, u64 id, const struct key *kkey,
		  char *buf, size_t buflen);
struct qks_key *qks_key_take_from(struct qks_link *link, u64 min_id, u32 min_len);
void qks_key_free(struct qks_key *k);
/* XFRM support: reserve a key, then commit (used) or release (not used). */
int qks_key_reserve_from(struct qks_link *link, const void *owner, u64 min_id,
			 u32 min_len, u8 *buf, u32 len, u64 *id);
void qks_key_commit(struct qks_link *link, const void *owner, u64 id);
void qks_key_release(struct qks_link *link, const void *owner, u64 id);
void qks_link_snapshot(struct qks_link *link, u32 *avail, u32 *reserved,
		       u64 *bytes, struct qks_stats *st);
void qks_net_stats(struct net *net, struct qks_stats *st, u32 *links);

/* Pump support: reserve the next key, copy out of it, commit what was read. */
size_t qks_pump_take(struct qks_link *link, const void *owner, u64 *cur,
		     bool *has_cur, u8 *buf, size_t max, bool *eof);
void qks_pump_commit(struct qks_link *link, const void *owner, u64 cur,
		     bool *has_cur, size_t n);
void qks_pump_release(struct qks_link *link, const void *owner, u64 cur);
bool qks_link_readable(struct qks_link *link, bool has_cur);

/* keytype.c */
extern struct key_type qks_key_type;
int qks_keytype_init(void);
void qks_keytype_exit(void);
struct key *qks_kkey_create(struct qks_link *link, u64 id);
int qks_kkey_link(struct qks_link *link, struct key *kkey);
struct key *qks_keyring_create(const char *desc, kuid_t uid, kgid_t gid,
			       struct key *dest);

/* genl.c */
extern struct genl_family qks_family;
int qks_genl_init(void);
void qks_genl_exit(void);
void qks_event_new_key(struct net *net, const char *link, u64 id, u32 len,
		       u32 avail);
void qks_event_low(struct net *net, const char *link, u32 avail, u32 mark);
void qks_event_link(struct net *net, const char *link, bool added);

/* xfrm.c */
struct qks_xfrm_tmpl {
	xfrm_address_t saddr, daddr;
	u16 family;
	u8 mode;
	u32 spi_base, reqid, icv_bits, grace;
	u64 life_bytes, life_packets, life_seconds;
	u64 first_key_id;
};

int qks_xfrm_init(void);
void qks_xfrm_exit(void);
int qks_xfrm_bind(struct qks_link *link, const struct qks_xfrm_tmpl *t, u32 *id,
		  struct netlink_ext_ack *extack);
int qks_xfrm_unbind(struct qks_link *link, u32 id);
int qks_xfrm_fill(struct sk_buff *skb, struct qks_link *link, u32 portid, u32 seq,
		  long *pos);
void qks_xfrm_link_gone(struct qks_link *link);

/* pump.c */
int qks_pump_init(void);
void qks_pump_exit(void);

#endif /* QKS_H */
