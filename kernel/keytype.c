// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: the "qkd" key type and the keyrings.
 *
 * Every stored key is also a key of type "qkd" described "<link>:<key id>" in
 * the keyring "qkd:<link>", itself in "qkd:net:<netns inode>" under the module
 * keyring "qkd". The keyring key carries no key material: its payload names
 * the store entry, and reading it (keyctl read/pipe) takes the entry out of the
 * store, so the bytes are delivered once whichever path asks first.
 *
 * The type is marked KEY_TYPE_NET_DOMAIN: a key is tagged with the network
 * namespace that pushed it, and searches only find keys of the searcher's own
 * namespace.
 */
#include <crypto/algapi.h>
#include <keys/request_key_auth-type.h>
#include <linux/cred.h>
#include <linux/key-type.h>
#include <linux/random.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

#include "qks.h"

/*
 * Anyone may call add_key("qkd", ...) and the keyring core hands the bytes to
 * our preparse. Only the module itself may create these keys: its requests
 * carry a random cookie userspace never sees.
 */
static u8 qks_cookie[32] __aligned(8);

struct qks_kprep {
	u8 cookie[sizeof(qks_cookie)];
	struct qks_link *link;
	u64 id;
};

struct qks_kpayload {
	struct qks_link *link;		/* a reference */
	u64 id;
};

static int qks_kt_preparse(struct key_preparsed_payload *prep)
{
	const struct qks_kprep *kp = prep->data;
	struct qks_kpayload *p;

	if (prep->datalen != sizeof(*kp) ||
	    crypto_memneq(kp->cookie, qks_cookie, sizeof(qks_cookie)))
		return -EPERM;
	p = kmalloc(sizeof(*p), GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	kref_get(&kp->link->ref);
	p->link = kp->link;
	p->id = kp->id;
	prep->payload.data[0] = p;
	prep->quotalen = 0;
	return 0;
}

static void qks_kt_free_preparse(struct key_preparsed_payload *prep)
{
	struct qks_kpayload *p = prep->payload.data[0];

	if (p) {
		qks_link_put(p->link);
		kfree(p);
	}
}

static void qks_kt_destroy(struct key *key)
{
	struct qks_kpayload *p = key->payload.data[0];

	if (p) {
		qks_link_put(p->link);
		kfree(p);
	}
}

static void qks_kt_describe(const struct key *key, struct seq_file *m)
{
	seq_puts(m, key->description);
}

/* Called with key->sem held for reading; the store does the rest. */
static long qks_kt_read(const struct key *key, char *buf, size_t buflen)
{
	struct qks_kpayload *p = key->payload.data[0];

	if (!p)
		return -ENOKEY;
	return qks_key_read(p->link, p->id, key, buf, buflen);
}

/*
 * A key that is not in the store cannot be made up: refuse request_key()
 * without the /sbin/request-key upcall, and invalidate the unconstructed key
 * so that no negative key is left behind in the caller's keyring.
 */
static int qks_kt_request_key(struct key *authkey, void *aux)
{
	struct key *target = get_request_key_auth(authkey)->target_key;

	complete_request_key(authkey, -ENOKEY);
	key_invalidate(target);
	return -ENOKEY;
}

struct key_type qks_key_type = {
	.name = QKD_KEY_TYPE,
	.flags = KEY_TYPE_NET_DOMAIN,
	.preparse = qks_kt_preparse,
	.free_preparse = qks_kt_free_preparse,
	.instantiate = generic_key_instantiate,
	.destroy = qks_kt_destroy,
	.describe = qks_kt_describe,
	.read = qks_kt_read,
	.request_key = qks_kt_request_key,
};

/* Keys: the link's owner (and group, if set) may find and read them. */
static key_perm_t qks_key_perm(kgid_t gid)
{
	key_perm_t perm = KEY_USR_VIEW | KEY_USR_READ | KEY_USR_SEARCH;

	if (gid_valid(gid))
		perm |= KEY_GRP_VIEW | KEY_GRP_READ | KEY_GRP_SEARCH;
	return perm;
}

struct key *qks_kkey_create(struct qks_link *link, u64 id)
{
	struct qks_kprep kp = { .link = link, .id = id };
	char desc[QKD_LINK_NAME_MAX + 24];
	struct key *kkey;
	int err;

	memcpy(kp.cookie, qks_cookie, sizeof(kp.cookie));
	snprintf(desc, sizeof(desc), "%s:%llu", link->name, id);
	/*
	 * key_alloc() tags the key with current's namespace; the callers make
	 * sure that is the link's namespace.
	 */
	kkey = key_alloc(&qks_key_type, desc, link->uid,
			 gid_valid(link->gid) ? link->gid : GLOBAL_ROOT_GID,
			 current_cred(), qks_key_perm(link->gid),
			 KEY_ALLOC_NOT_IN_QUOTA | KEY_ALLOC_SET_KEEP, NULL);
	if (IS_ERR(kkey))
		goto out;
	err = key_instantiate_and_link(kkey, &kp, sizeof(kp), NULL, NULL);
	if (err) {
		key_put(kkey);
		kkey = ERR_PTR(err);
	}
out:
	memzero_explicit(kp.cookie, sizeof(kp.cookie));
	return kkey;
}

int qks_kkey_link(struct qks_link *link, struct key *kkey)
{
	return key_link(link->keyring, kkey);
}

/*
 * Keyrings: owner and group may search them and link them into their own
 * keyrings (for request_key()); others get nothing, since SEARCH alone would
 * let them invalidate the keyring. KEEP makes keyrings and keys immune to
 * userspace invalidate, clear, unlink and revoke: only the module removes
 * them. Possessors get nothing extra: possession must not widen access.
 */
struct key *qks_keyring_create(const char *desc, kuid_t uid, kgid_t gid,
			       struct key *dest)
{
	key_perm_t perm = KEY_POS_VIEW | KEY_POS_SEARCH |
			  KEY_USR_VIEW | KEY_USR_READ | KEY_USR_SEARCH | KEY_USR_LINK;

	if (gid_valid(gid))
		perm |= KEY_GRP_VIEW | KEY_GRP_READ | KEY_GRP_SEARCH | KEY_GRP_LINK;
	return keyring_alloc(desc, uid, gid_valid(gid) ? gid : GLOBAL_ROOT_GID,
			     current_cred(), perm,
			     KEY_ALLOC_NOT_IN_QUOTA | KEY_ALLOC_SET_KEEP, NULL,
			     dest);
}

int qks_keytype_init(void)
{
	get_random_bytes(qks_cookie, sizeof(qks_cookie));
	return register_key_type(&qks_key_type);
}

/* Waits until the garbage collector has destroyed every key of the type. */
void qks_keytype_exit(void)
{
	unregister_key_type(&qks_key_type);
	memzero_explicit(qks_cookie, sizeof(qks_cookie));
}
