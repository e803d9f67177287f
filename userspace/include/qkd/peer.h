/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The peer channel: one TCP connection between stage N of Alice and stage N of
 * Bob. Bob listens, Alice connects (both configurable). A handshake checks
 * protocol version, pipeline name, stage name, instance and that the roles are
 * complementary. Every message carries the key id of the block it belongs to
 * and a type chosen by the module.
 *
 * Every message in both directions (header and body) is absorbed into the
 * current Wegman-Carter authentication context, per key id and per direction.
 * A block's transcript is closed either immediately, by exchanging one-time
 * padded tags (qkd_peer_auth_verify), or deferred, by folding its digests into
 * the frame's accumulators for qkd-auth (qkd_peer_auth_defer).
 */
#ifndef QKD_PEER_H
#define QKD_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "frame.h"

struct qkd_peer;
struct qkd_keypool;

enum qkd_role { QKD_ALICE = 0, QKD_BOB = 1 };

#define QKD_PEER_PROTO_VERSION 1
#define QKD_PEER_MAX_MSG (64u << 20)

struct qkd_peer_config {
	enum qkd_role role;
	const char *pipeline;	/* must match on both sides */
	const char *stage;	/* e.g. "sift"; must match */
	unsigned instance;	/* parallel instance index; must match */
	const char *address;	/* host or IP (v4/v6); default "127.0.0.1" / "::1" */
	const char *port;	/* service or number */
	bool listen;		/* true: accept one peer; false: connect (usually Bob listens) */
	int timeout_ms;		/* connect/handshake/receive stall limit; 0 = 30000 */
	struct qkd_keypool *pool; /* authentication keys; required */
};

/* Connect (retrying until timeout) or accept one peer, run the handshake. */
struct qkd_peer *qkd_peer_open(const struct qkd_peer_config *cfg);
void qkd_peer_close(struct qkd_peer *p);
/* Human-readable reason for the last failure on this peer. */
const char *qkd_peer_error(const struct qkd_peer *p);
/* Last error of qkd_peer_open, which has no handle to report on. */
const char *qkd_peer_open_error(void);
int qkd_peer_fd(const struct qkd_peer *p);

/* Send one message. 0 or -errno (-EPIPE: peer gone). */
int qkd_send(struct qkd_peer *p, uint64_t key_id, uint16_t type, const void *buf, size_t len);

struct qkd_msg {
	uint64_t key_id;
	uint16_t type;
	uint32_t len;
	const uint8_t *data; /* valid until the next qkd_recv on this peer */
};

/*
 * Receive the next message. 1 for a message, 0 when the peer closed cleanly,
 * -ETIMEDOUT after timeout_ms without progress, -EBADMSG for garbage,
 * -ECONNRESET etc.
 */
int qkd_recv(struct qkd_peer *p, struct qkd_msg *m);
/*
 * Like qkd_recv, for a caller that waits for a message of key_id (messages of
 * other key ids are returned as usual): instead of blocking, -EPROTO once the
 * peer has finished or abandoned key_id (it sent its closing, END or forget
 * for it), since no message of it can come any more.
 */
int qkd_recv_for(struct qkd_peer *p, uint64_t key_id, struct qkd_msg *m);
/* Receive exactly one message of this key id and type, else -EPROTO (also as qkd_recv_for). */
int qkd_recv_expect(struct qkd_peer *p, uint64_t key_id, uint16_t type, struct qkd_msg *m);

/*
 * Close the transcript of key_id immediately: both sides exchange one-time
 * padded tags over every message of this block in each direction.
 * 0 if both tags verify, -EBADMSG if any differs (the block must not yield key),
 * other -errno on channel failure.
 */
int qkd_peer_auth_verify(struct qkd_peer *p, uint64_t key_id);
/* Close the transcript of key_id by folding its digests into f's accumulators. */
int qkd_peer_auth_defer(struct qkd_peer *p, uint64_t key_id, struct qkd_frame *f);
/*
 * Close a frame's deferred authentication (qkd-auth): both sides exchange
 * one-time padded tags over f->auth_acc[0] and [1]. 0 if both verify,
 * -EBADMSG if any differs, other -errno on channel failure.
 */
int qkd_peer_auth_verify_frame(struct qkd_peer *p, const struct qkd_frame *f);
/*
 * Drop the transcript of key_id without verifying (block abandoned). The peer
 * is told: a closing of key_id it waits in (or starts later) returns -EBADMSG
 * at once instead of timing out.
 */
void qkd_peer_auth_forget(struct qkd_peer *p, uint64_t key_id);

/*
 * Open a new authentication context (fresh hash key from the pool, agreed with
 * the peer) and finalize the old one; open transcripts stay with the old
 * context until closed. Returns the new context id or -errno.
 */
int64_t qkd_peer_new_context(struct qkd_peer *p);

#endif
