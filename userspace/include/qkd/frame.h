/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A frame is one key block plus its metadata, as it travels between neighbouring
 * pipeline stages. Wire layout (little-endian, 96-byte header, then payload) is
 * documented byte by byte in Documentation/frame-format.md.
 */
#ifndef QKD_FRAME_H
#define QKD_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QKD_FRAME_MAGIC 0x46444b51u /* "QKDF" read as little-endian */
#define QKD_FRAME_VERSION 1
#define QKD_FRAME_HDR_LEN 96
#define QKD_FRAME_MAX_PAYLOAD (1u << 28)
#define QKD_QBER_UNKNOWN UINT32_MAX

enum qkd_frame_state {
	QKD_STATE_RAW = 1,	   /* detection events from the source (see qkd/raw.h) */
	QKD_STATE_SIFTED = 2,	   /* packed key bits, bases matched */
	QKD_STATE_ESTIMATED = 3,   /* sample disclosed and removed, qber_ppm set */
	QKD_STATE_CORRECTED = 4,   /* error correction done */
	QKD_STATE_CONFIRMED = 5,   /* keys verified equal by hash */
	QKD_STATE_AMPLIFIED = 6,   /* privacy amplification done */
	QKD_STATE_AUTHENTICATED = 7, /* every peer message of every stage verified */
	QKD_STATE_ABORTED = 0xff,  /* no key; payload empty; reason in flags */
};

enum qkd_abort_reason {
	QKD_ABORT_NONE = 0,
	QKD_ABORT_QBER = 1,	   /* estimated QBER above the threshold */
	QKD_ABORT_AUTH = 2,	   /* a peer message failed authentication */
	QKD_ABORT_EC = 3,	   /* error correction failed */
	QKD_ABORT_CONFIRM = 4,	   /* confirmation hash mismatch */
	QKD_ABORT_TOO_SHORT = 5,   /* finite-key bound leaves no key */
	QKD_ABORT_PEER = 6,	   /* peer disconnected or misbehaved during this block */
};

/* flags */
#define QKD_FRAME_F_BOB 0x01 /* written by Bob's side of the pipeline */

/*
 * In-memory frame. Payload of a state >= SIFTED is packed key bits: bit i is
 * (payload[i / 8] >> (i % 8)) & 1, payload_len = ceil(bit_count / 8) rounded up
 * to a multiple of 8 bytes (so it can be read as uint64_t words); padding bits are 0.
 */
struct qkd_frame {
	uint64_t key_id;
	uint8_t state;		 /* enum qkd_frame_state */
	uint8_t flags;
	uint32_t qber_ppm;	 /* QBER in parts per million, QKD_QBER_UNKNOWN if not known */
	uint64_t bit_count;	 /* key bits (or raw slots for RAW frames) in the payload */
	uint64_t disclosed_bits; /* bits leaked on the classical channel so far */
	uint64_t auth_ctx;	 /* id of the authentication context that covers this block; 0 none */
	uint8_t abort_reason;	 /* enum qkd_abort_reason, for ABORTED frames */
	/*
	 * Deferred authentication: running Wegman-Carter polynomial-hash
	 * accumulators of every peer message of every stage so far for this key
	 * block, one per direction (Alice->Bob, Bob->Alice), and the number of
	 * stage digests absorbed. Closed and verified by qkd-auth.
	 */
	uint8_t auth_acc[2][16];
	uint32_t auth_stages;
	uint32_t payload_len;
	uint32_t payload_cap;
	uint8_t *payload;	 /* owned; wiped on free */
};

/* Allocate a frame with room for payload_cap bytes (zeroed). NULL on ENOMEM. */
struct qkd_frame *qkd_frame_new(uint32_t payload_cap);
/* Make room for at least cap bytes, keeping the content. 0 or -ENOMEM. */
int qkd_frame_reserve(struct qkd_frame *f, uint32_t cap);
/* Wipe the payload (explicit_bzero) and free. NULL is fine. */
void qkd_frame_free(struct qkd_frame *f);

/* Bytes needed for bit_count packed bits (multiple of 8). */
static inline uint32_t qkd_bits_to_bytes(uint64_t bits)
{
	return (uint32_t)(((bits + 63) / 64) * 8);
}

/* Encode the 96-byte header of f into out. */
void qkd_frame_encode_header(const struct qkd_frame *f, uint8_t out[QKD_FRAME_HDR_LEN]);

/*
 * Decode and validate a header. On success fills every field of f except the
 * payload pointer/capacity and returns 0. On failure returns -EBADMSG (or
 * -EMSGSIZE for a payload over QKD_FRAME_MAX_PAYLOAD) and, if err is not NULL,
 * points *err at a static human-readable reason.
 */
int qkd_frame_decode_header(const uint8_t *buf, size_t len, struct qkd_frame *f, const char **err);

/*
 * Decode a whole frame from buf. Returns the number of bytes consumed (>0),
 * 0 if buf holds an incomplete frame, or a negative errno (see above).
 * Never reads past buf + len.
 */
ssize_t qkd_frame_decode(const uint8_t *buf, size_t len, struct qkd_frame *f, const char **err);

const char *qkd_frame_state_name(uint8_t state);

/* Packed-bit helpers. */
static inline int qkd_bit_get(const uint8_t *p, uint64_t i)
{
	return (p[i >> 3] >> (i & 7)) & 1;
}

static inline void qkd_bit_set(uint8_t *p, uint64_t i, int v)
{
	p[i >> 3] = (uint8_t)((p[i >> 3] & ~(1u << (i & 7))) | ((unsigned)(v & 1) << (i & 7)));
}

#endif
