/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * qkd_keystore: user API of the QKD kernel key store.
 *
 * Shared by the kernel module and by userspace (qkdctl, qkd-ks-sink, tests).
 * Documentation/keystore.md describes every command and attribute.
 */
#ifndef _UAPI_QKD_KEYSTORE_H
#define _UAPI_QKD_KEYSTORE_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* Generic netlink family */
#define QKD_GENL_NAME		"qkd_keystore"
#define QKD_GENL_VERSION	1
#define QKD_GENL_MCGRP_EVENTS	"events"

/* Key ring key type and names (see Documentation/keystore.md) */
#define QKD_KEY_TYPE		"qkd"

/* Limits */
#define QKD_LINK_NAME_MAX	32	/* including the terminating NUL */
#define QKD_KEY_MAX_BYTES	4096	/* largest single key */

enum qkd_cmd {
	QKD_CMD_UNSPEC,
	QKD_CMD_LINK_ADD,	/* admin: NAME [MAX_KEYS MAX_BYTES LOW_WATERMARK UID GID] */
	QKD_CMD_LINK_DEL,	/* admin: NAME */
	QKD_CMD_LINK_GET,	/* NAME, or dump every link of the namespace */
	QKD_CMD_KEY_PUSH,	/* admin: LINK KEY_ID KEY_DATA */
	QKD_CMD_KEY_FETCH,	/* admin: LINK [KEY_ID]; reply KEY_ID KEY_DATA, consumes */
	QKD_CMD_KEY_LIST,	/* dump: LINK; KEY_ID KEY_LEN KEY_STATE per key, no bytes */
	QKD_CMD_STATS_GET,	/* namespace-wide counters */
	QKD_CMD_EVENT_NEW_KEY,	/* multicast: LINK KEY_ID KEY_LEN KEYS_AVAIL */
	QKD_CMD_EVENT_LOW_WATERMARK, /* multicast: LINK KEYS_AVAIL LOW_WATERMARK */
	QKD_CMD_EVENT_LINK,	/* multicast: LINK LINK_STATE (added/removed) */
	QKD_CMD_XFRM_BIND,	/* admin: LINK XFRM_SADDR XFRM_DADDR XFRM_SPI_BASE XFRM_REQID
				 * [XFRM_MODE XFRM_ICV_BITS XFRM_LIFE_* XFRM_GRACE KEY_ID];
				 * reply XFRM_ID
				 */
	QKD_CMD_XFRM_UNBIND,	/* admin: LINK XFRM_ID */
	QKD_CMD_XFRM_GET,	/* dump: LINK; one message per binding */
	__QKD_CMD_MAX,
};

#define QKD_CMD_MAX (__QKD_CMD_MAX - 1)

enum qkd_attr {
	QKD_A_UNSPEC,
	QKD_A_LINK,		/* string, 1..31 chars [A-Za-z0-9._-] */
	QKD_A_KEY_ID,		/* u64 */
	QKD_A_KEY_DATA,		/* binary, 1..QKD_KEY_MAX_BYTES */
	QKD_A_KEY_LEN,		/* u32 */
	QKD_A_KEY_STATE,	/* u8, enum qkd_key_state */
	QKD_A_MAX_KEYS,		/* u32, 1..QKD_LINK_MAX_KEYS_LIMIT */
	QKD_A_MAX_BYTES,	/* u64, >= 1 */
	QKD_A_LOW_WATERMARK,	/* u32 */
	QKD_A_UID,		/* u32, owner of the link's keys */
	QKD_A_GID,		/* u32, group allowed to read the link's keys */
	QKD_A_KEYS_AVAIL,	/* u32 */
	QKD_A_KEYS_RESERVED,	/* u32 */
	QKD_A_BYTES_STORED,	/* u64 */
	QKD_A_KEYRING,		/* s32, serial of the link's keyring */
	QKD_A_STAT_PUSHED,	/* u64, keys pushed since creation */
	QKD_A_STAT_DELIVERED,	/* u64, keys delivered (any path) */
	QKD_A_STAT_WIPED,	/* u64, keys wiped (delivered or discarded) */
	QKD_A_STAT_BYTES_PUSHED,	/* u64 */
	QKD_A_STAT_BYTES_DELIVERED,	/* u64 */
	QKD_A_LINK_STATE,	/* u8, 1 added, 0 removed (event) */
	QKD_A_LINKS,		/* u32, number of links (stats) */
	QKD_A_PAD,
	QKD_A_XFRM_ID,		/* u32, binding id within the link */
	QKD_A_XFRM_SADDR,	/* binary, 4 (IPv4) or 16 (IPv6) bytes: this side */
	QKD_A_XFRM_DADDR,	/* binary, same length: the peer */
	QKD_A_XFRM_MODE,	/* u8, QKD_XFRM_MODE_* */
	QKD_A_XFRM_SPI_BASE,	/* u32, SPI of key id k is SPI_BASE + (k & 0xffff) */
	QKD_A_XFRM_REQID,	/* u32, reqid the operator's policies use */
	QKD_A_XFRM_ICV_BITS,	/* u32, 64, 96 or 128 (default 128) */
	QKD_A_XFRM_LIFE_BYTES,	/* u64, rekey after this many bytes out, 0 none */
	QKD_A_XFRM_LIFE_PACKETS,	/* u64, rekey after this many packets out, 0 none */
	QKD_A_XFRM_LIFE_SECONDS,	/* u64, rekey after this many seconds, 0 none */
	QKD_A_XFRM_GRACE,	/* u32, seconds an old inbound SA lives on (default 5) */
	QKD_A_XFRM_SPI,		/* u32, current outbound SPI */
	QKD_A_XFRM_GENERATIONS,	/* u64, keys installed so far */
	QKD_A_XFRM_USED_BYTES,	/* u64, bytes through the current outbound SA */
	QKD_A_XFRM_USED_PACKETS,	/* u64 */
	QKD_A_XFRM_AGE,		/* u64, seconds since the current outbound SA was added */
	QKD_A_XFRM_ERROR,	/* s32, last error of the binding (0 ok, -ENODATA waiting) */
	QKD_A_XFRM_NEXT_KEY_ID,	/* u64, key id of the pre-installed inbound SA */
	__QKD_A_MAX,
};

#define QKD_A_MAX (__QKD_A_MAX - 1)

#define QKD_LINK_MAX_KEYS_LIMIT	(1U << 20)

enum qkd_key_state {
	QKD_KEY_AVAILABLE = 1,	/* may be handed to any consumer */
	QKD_KEY_RESERVED = 2,	/* claimed by one consumer, being delivered */
	QKD_KEY_CONSUMED = 3,	/* delivered and wiped (only seen in events) */
};

/* XFRM bindings: ESP, rfc4106(gcm(aes)), 256-bit key + 32-bit salt per direction */
#define QKD_XFRM_MODE_TRANSPORT	0
#define QKD_XFRM_MODE_TUNNEL	1
#define QKD_XFRM_KEY_BYTES	72	/* a link key feeds both directions: 2 x 36 */

/* Key pump: /dev/qkd_pump */
#define QKD_PUMP_DEV		"/dev/qkd_pump"

struct qkd_pump_attach {
	char link[QKD_LINK_NAME_MAX];
};

#define QKD_PUMP_IOC_MAGIC	0xb7
/* Bind this open file to a link of the caller's network namespace. */
#define QKD_PUMP_ATTACH		_IOW(QKD_PUMP_IOC_MAGIC, 1, struct qkd_pump_attach)

#endif /* _UAPI_QKD_KEYSTORE_H */
