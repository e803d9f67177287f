/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where a KME's keys come from. The daemon uses the kernel store
 * (qkd_keystore.ko over generic netlink); host tests, the fuzz target and the
 * bench use a file of keys loaded into memory, so that the HTTP, TLS and
 * ETSI 014 layers above run unchanged without the module.
 *
 * Every fetch consumes the key at the source; the caller owns the bytes and
 * wipes them. All calls return 0 or a negative errno.
 */
#ifndef QKD_KME_KEYSRC_H
#define QKD_KME_KEYSRC_H

#include <stddef.h>
#include <stdint.h>

#define KME_KEY_MAX 4096	/* bytes, as QKD_KEY_MAX_BYTES */

struct keysrc;

struct keysrc_ops {
	/* Keys available (not reserved) and the link's capacity. */
	int (*count)(struct keysrc *s, const char *link, uint32_t *avail, uint32_t *max);
	/* id NULL: the next available key; else exactly that key (-ENOENT if absent). */
	int (*fetch)(struct keysrc *s, const char *link, const uint64_t *id,
		     uint64_t *id_out, uint8_t *buf, size_t *len);
	/* 1 if that key is available, 0 if not, or a negative errno: lets
	 * dec_keys check a whole request before it consumes anything.
	 */
	int (*exists)(struct keysrc *s, const char *link, uint64_t id);
	void (*close)(struct keysrc *s);
};

struct keysrc {
	const struct keysrc_ops *ops;
};

/* The kernel store of this network namespace. */
int keysrc_netlink_open(struct keysrc **out, char *err, size_t errlen);
/*
 * A file of "LINK KEY_ID HEX" lines (blank lines and # comments ignored),
 * loaded once; both KMEs of a lab pair load the same file.
 */
int keysrc_file_open(struct keysrc **out, const char *path, char *err, size_t errlen);
/* The same from memory: the fuzz target. text need not be NUL-terminated. */
int keysrc_mem_open(struct keysrc **out, const char *text, size_t len);

static inline void keysrc_close(struct keysrc *s)
{
	if (s)
		s->ops->close(s);
}

#endif
