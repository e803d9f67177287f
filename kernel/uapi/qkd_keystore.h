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
	__QKD_A_MAX,
};

#define QKD_A_MAX (__QKD_A_MAX - 1)

#define QKD_LINK_MAX_KEYS_LIMIT	(1U << 20)

enum qkd_key_state {
	QKD_KEY_AVAILABLE = 1,	/* may be handed to any consumer */
	QKD_KEY_RESERVED = 2,	/* claimed by one consumer, being delivered */
	QKD_KEY_CONSUMED = 3,	/* delivered and wiped (only seen in events) */
};

/* Key pump: /dev/qkd_pump */
#define QKD_PUMP_DEV		"/dev/qkd_pump"

struct qkd_pump_attach {
	char link[QKD_LINK_NAME_MAX];
};

#define QKD_PUMP_IOC_MAGIC	0xb7
/* Bind this open file to a link of the caller's network namespace. */
#define QKD_PUMP_ATTACH		_IOW(QKD_PUMP_IOC_MAGIC, 1, struct qkd_pump_attach)

#endif /* _UAPI_QKD_KEYSTORE_H */
