/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libqkd-internal: the peer channel's state, shared by peer.c (sockets,
 * handshake, framing, message queues) and peer-auth.c (authentication
 * contexts, per-key-id transcripts, tag exchanges). Wire format in
 * Documentation/peer-protocol.md.
 */
#ifndef QKD_PEER_IMPL_H
#define QKD_PEER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qkd/mac.h"
#include "qkd/peer.h"

/* Every message: le32 body length, le16 type, u8 kind, u8 ctx, le64 key id. */
#define PEER_HDR_LEN 16
#define PEER_KIND_DATA 0xe1
#define PEER_KIND_CTRL 0x1e /* all eight bits away from DATA, neither is printable ASCII */

enum peer_ctrl {
	CT_HELLO = 1,	/* handshake */
	CT_CTX = 2,	/* A->B: new context: le32 seq, le64 pool offset of its hash key */
	CT_CTX_ACK = 3,	/* B->A: le32 seq */
	CT_V1 = 4,	/* A->B: le64 chunk offset, le32 chunk length, le32 pad position,
			 * u8 ctx of A->B, tag(A->B) */
	CT_V2 = 5,	/* B->A: u8 ctx of B->A, tag(B->A) or random if V1 failed */
	CT_V3 = 6,	/* A->B: tag(B->A) as Alice saw it, or random if V2 failed */
	CT_END = 7,	/* either way: u8 ctx of the sender's direction; sender done with key id */
	CT_FV1 = 8,	/* like V1..V3 over a frame's deferred accumulators */
	CT_FV2 = 9,
	CT_FV3 = 10,
	CT_FORGET = 11,	/* either way: the sender abandoned this key id (no closing will come) */
};

#define PEER_RING 256 /* key ids remembered as abandoned by the peer / forgotten by us */

#define PEER_PAD_BYTES 48 /* three one-time pads per closing exchange */
#define PEER_V1_LEN 33
/*
 * Pads are taken from the pool in chunks, so that one durable pool update
 * serves many closings; Alice hands the chunk out 48 bytes at a time, Bob
 * takes the same chunk with take_at and marks every 16-byte unit he used.
 */
#define PEER_PAD_CHUNK 4096	/* largest chunk Bob accepts */
#define PEER_PAD_FIRST 480	/* Alice's first chunk: 10 closings; doubles up to */
#define PEER_PAD_LAST 3840	/* 80 closings, so a short session wastes little */
#define PEER_PAD_CACHED 2

struct pad_chunk {
	uint64_t off;
	uint32_t len;
	uint32_t used;		/* Alice: next position to hand out */
	uint64_t stamp;		/* Bob: last use, for eviction */
	uint8_t *key;		/* len bytes; handed-out bytes are wiped */
	uint64_t map[PEER_PAD_CHUNK / 16 / 64]; /* Bob: 16-byte units used */
};
#define PEER_MAX_CTX 200  /* span of live context seqs; seq is carried mod 256 */
#define PEER_MAX_TRANSCRIPTS (1u << 16)
#define PEER_MAX_QUEUED ((size_t)4 * QKD_PEER_MAX_MSG)

struct peer_ctx {
	uint32_t seq;
	uint64_t id;		/* pool offset of the hash key + 1: same on both sides */
	uint8_t key[QKD_MAC_KEY_LEN];
	unsigned refs;		/* transcript directions bound to it */
	struct peer_ctx *next;
};

struct peer_dir {
	struct peer_ctx *ctx;	/* NULL until the first message in this direction */
	struct qkd_polyhash h;
};

struct transcript {
	uint64_t key_id;
	struct peer_dir d[2];	/* [0] Alice->Bob, [1] Bob->Alice */
	struct transcript *next;
};

/* A received message kept for later: data for qkd_recv, control for a waiter. */
struct peer_msg {
	uint64_t key_id;
	uint16_t type;
	uint8_t kind;
	uint32_t len;
	struct peer_msg *next;
	uint8_t data[];
};

#define PEER_TBUCKETS 256

struct qkd_peer {
	int fd;
	enum qkd_role role;
	int timeout_ms;
	struct qkd_keypool *pool;
	char *pipeline, *stage;
	unsigned instance;

	int dead;		/* errno of a fatal channel failure, 0 while usable */
	char err[256];

	/* receive buffer */
	uint8_t *rbuf;
	size_t rcap, rpos, rlen;
	/* the body of the last message handed to the caller */
	struct peer_msg *cur;

	/* messages that arrived while waiting for something else */
	struct peer_msg *dq_head, *dq_tail;	/* data, FIFO */
	struct peer_msg *cq;			/* control, any order */
	size_t queued_bytes;

	/* authentication */
	struct peer_ctx *ctxs;		/* live contexts, newest first */
	struct peer_ctx *cur_ctx;	/* for directions bound by our sends */
	uint32_t ctx_seq;		/* newest context's seq */
	uint32_t ctx_acked;		/* Alice: newest seq Bob acknowledged */
	uint32_t ctx_claimed;		/* Bob: contexts returned by new_context */
	struct pad_chunk pc[PEER_PAD_CACHED];
	uint64_t pc_clock;
	uint32_t pc_next;		/* Alice: size of her next chunk */
	struct transcript *tt[PEER_TBUCKETS];
	size_t n_transcripts;
	bool open_done;			/* handshake finished */
	uint64_t abandoned[PEER_RING];	/* key ids the peer forgot */
	uint64_t forgotten[PEER_RING];	/* key ids we forgot */
	unsigned n_abandoned, n_forgotten;
};

static inline bool peer_ring_has(const uint64_t *ring, unsigned n, uint64_t key)
{
	for (unsigned i = 0; i < n && i < PEER_RING; i++)
		if (ring[i] == key)
			return true;
	return false;
}

static inline void peer_ring_add(uint64_t *ring, unsigned *n, uint64_t key)
{
	ring[*n % PEER_RING] = key;
	(*n)++;
	if (*n >= 2 * PEER_RING)
		*n -= PEER_RING; /* keeps n % PEER_RING and n >= PEER_RING */
}

/* peer.c */
/* Handshake and first context over a connected stream socket (taken over). */
struct qkd_peer *peer_open_fd(int fd, const struct qkd_peer_config *cfg);
int peer_fail(struct qkd_peer *p, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void peer_note(struct qkd_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int peer_send_raw(struct qkd_peer *p, uint8_t kind, uint8_t ctx, uint16_t type,
		  uint64_t key_id, const void *buf, size_t len, struct peer_dir *absorb);
/*
 * Wait for control message (type, key_id); returns it (caller frees) or NULL,
 * *rc set: -EBADMSG if the peer abandoned key_id, else a channel error.
 */
struct peer_msg *peer_wait_ctrl(struct qkd_peer *p, uint16_t type, uint64_t key_id, int *rc);

/* Pump one message (data is queued for qkd_recv); end of stream is fatal. */
int peer_pump_once(struct qkd_peer *p, const char *waiting_for);
/* Handle whatever has already arrived (e.g. context acks), without waiting. */
int peer_pump_ready(struct qkd_peer *p);

/* Drop stashed closing messages for key_id. */
void peer_purge_ctrl(struct qkd_peer *p, uint64_t key_id);

/* peer-auth.c */
int peer_auth_on_data(struct qkd_peer *p, uint8_t ctx, uint64_t key_id, const uint8_t *hdr,
		      const uint8_t *body, size_t len);
struct peer_dir *peer_auth_out_dir(struct qkd_peer *p, uint64_t key_id, uint8_t *ctx, int *rc);
int peer_auth_on_ctrl(struct qkd_peer *p, uint16_t type, uint64_t key_id, const uint8_t *body,
		      size_t len, bool *consumed);
int peer_auth_start(struct qkd_peer *p);
void peer_auth_free(struct qkd_peer *p);

static inline void peer_put_le16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void peer_put_le32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t peer_le16(const uint8_t *b)
{
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t peer_le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

#endif
