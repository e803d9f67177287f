/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qksc: userspace client of the qkd_keystore generic-netlink family (libnl-genl).
 * Used by qkdctl, qkd-ks-sink and the kernel tests.
 *
 * Every call returns 0 or a negative errno; on failure qksc_error() gives the
 * kernel's extended-ack message when it sent one. Key bytes never stay in a
 * buffer this code allocated: request and reply buffers are wiped.
 */
#ifndef QKSC_H
#define QKSC_H

#include <stddef.h>
#include <stdint.h>

#include "../../kernel/uapi/qkd_keystore.h"

struct qksc;

struct qksc_link_cfg {
	const char *name;
	uint32_t max_keys;	/* 0: module default */
	uint64_t max_bytes;	/* 0: module default */
	int64_t low_watermark;	/* < 0: module default */
	int64_t uid;		/* < 0: module default */
	int64_t gid;		/* < 0: module default */
};

struct qksc_stats {
	uint64_t pushed, delivered, wiped, bytes_pushed, bytes_delivered;
};

struct qksc_link_info {
	char name[QKD_LINK_NAME_MAX];
	uint32_t max_keys, low_watermark, uid, keys_avail, keys_reserved;
	int64_t gid;		/* -1: none */
	uint64_t max_bytes, bytes_stored;
	int32_t keyring;
	struct qksc_stats stats;
};

struct qksc_event {
	int cmd;		/* QKD_CMD_EVENT_* */
	char link[QKD_LINK_NAME_MAX];
	uint64_t key_id;
	uint32_t key_len, keys_avail, low_watermark;
	int link_added;
};

/* -ENOENT (with a message) when the module is not loaded. */
int qksc_open(struct qksc **c);
void qksc_close(struct qksc *c);
const char *qksc_error(const struct qksc *c);

int qksc_link_add(struct qksc *c, const struct qksc_link_cfg *cfg);
int qksc_link_del(struct qksc *c, const char *name);
int qksc_link_get(struct qksc *c, const char *name, struct qksc_link_info *out);
int qksc_link_dump(struct qksc *c,
		   int (*fn)(const struct qksc_link_info *li, void *arg), void *arg);
int qksc_key_push(struct qksc *c, const char *link, uint64_t id,
		  const void *data, size_t len);
/* id NULL: the next available key. buf receives up to QKD_KEY_MAX_BYTES. */
int qksc_key_fetch(struct qksc *c, const char *link, const uint64_t *id,
		   uint64_t *id_out, void *buf, size_t bufsz, size_t *len);
int qksc_key_list(struct qksc *c, const char *link,
		  int (*fn)(uint64_t id, uint32_t len, int state, void *arg), void *arg);
int qksc_stats_get(struct qksc *c, struct qksc_stats *st, uint32_t *links);
/* Subscribe to events and call fn for each until it returns non-zero. */
int qksc_monitor(struct qksc *c, int (*fn)(const struct qksc_event *ev, void *arg),
		 void *arg);

/* XFRM bindings (in-kernel ESP keying from a link). */
struct qksc_xfrm_cfg {
	const char *link;
	const char *src, *dst;	/* IPv4 or IPv6 addresses, text */
	int tunnel;		/* 0 transport, 1 tunnel */
	uint32_t spi_base, reqid;
	uint32_t icv_bits;	/* 0: 128 */
	uint64_t life_bytes, life_packets, life_seconds;
	int64_t grace;		/* < 0: default (5 s) */
	int64_t first_key_id;	/* < 0: lowest available */
};

struct qksc_xfrm_info {
	uint32_t id, spi_base, reqid, icv_bits, grace, spi;
	int family, tunnel;
	char src[64], dst[64];
	uint64_t life_bytes, life_packets, life_seconds;
	uint64_t key_id, next_key_id, generations, used_bytes, used_packets, age;
	int has_key, has_next;
	int32_t error;
};

int qksc_xfrm_bind(struct qksc *c, const struct qksc_xfrm_cfg *cfg, uint32_t *id);
int qksc_xfrm_unbind(struct qksc *c, const char *link, uint32_t id);
int qksc_xfrm_dump(struct qksc *c, const char *link,
		   int (*fn)(const struct qksc_xfrm_info *xi, void *arg), void *arg);

/* The family id, for tests that build raw messages. */
int qksc_family(const struct qksc *c);
/* The libnl socket, for tests. */
struct nl_sock *qksc_sock(struct qksc *c);

#endif /* QKSC_H */
