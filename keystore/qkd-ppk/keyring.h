/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qkd-ppk: finding and taking QKD keys from the kernel keyring.
 *
 * The key store keeps one keyring per link; each key in it has the store's
 * own key type and a description that carries the link name and key id.
 * Reading a key of that type consumes it (the store wipes it), so a key is
 * read once, with a single read into a buffer large enough for any key.
 * The names are configurable so the same code serves other key types (the
 * host tests use "user" keys, which do not consume themselves: for those we
 * invalidate the key after a successful hand-over).
 */
#ifndef QKD_PPK_KEYRING_H
#define QKD_PPK_KEYRING_H

#include <stddef.h>
#include <stdint.h>
#include <keyutils.h>

/* Defaults of the QKD key store (Documentation/keystore.md). */
#define PPK_DEFAULT_KEY_TYPE		"qkd"
#define PPK_DEFAULT_KEYRING_DESC	"qkd:%l"
#define PPK_DEFAULT_KEY_DESC		"%l:%k"
/* Largest key we read: one VICI value holds at most 65535 bytes. */
#define PPK_KEY_MAX			65535

struct ppk_store {
	const char *key_type;		/* key type of QKD keys */
	const char *keyring_desc;	/* template, %l = link */
	const char *key_desc;		/* template, %l = link, %k = key id */
	key_serial_t keyring;		/* 0: find by keyring_desc */
};

struct ppk_key {
	uint64_t key_id;
	key_serial_t serial;
};

/*
 * Expand a description template: %l the link, %k the key id (decimal), %%
 * a percent sign. -EINVAL for an unknown conversion, -ENAMETOOLONG.
 */
int ppk_desc_format(const char *tmpl, const char *link, uint64_t key_id,
		    char *out, size_t outlen);
/*
 * Parse a key description against the template: 0 and *key_id if it is a
 * key of link, -ENOENT if it is not.
 */
int ppk_desc_parse(const char *tmpl, const char *link, const char *desc, uint64_t *key_id);

/* Find the link's keyring. Its serial, or -ENOENT / -EACCES / -errno. */
key_serial_t ppk_find_keyring(const struct ppk_store *st, const char *link);

/*
 * List the link's keys (ids ascending). Returns the count and a malloc'ed
 * array in *keys (free()), or -errno.
 */
int ppk_list_keys(const struct ppk_store *st, const char *link, struct ppk_key **keys);

/*
 * Take a key: the given key id, or with any_id the lowest available one.
 * Reads the key (consuming it in the QKD store) into buf (size >= PPK_KEY_MAX,
 * the caller wipes it). Returns the key length and fills *key, or -ENOENT if
 * there is no such key, -EACCES, -EKEYREVOKED, -EMSGSIZE, -errno.
 */
int ppk_take_key(const struct ppk_store *st, const char *link, int any_id, uint64_t key_id,
		 struct ppk_key *key, uint8_t *buf);

/*
 * After a hand-over: make sure the key is gone, whatever its type. For a QKD
 * key the read already consumed it and this is a no-op.
 */
void ppk_retire_key(const struct ppk_key *key);

#endif
