/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Cascade error correction, transport-independent core.
 *
 * Bob drives the protocol, Alice is a parity oracle. Each round Bob produces
 * one request segment per frame (cascade_bob_request) and Alice answers it
 * with packed parities (cascade_alice_handle); Bob consumes the answer
 * (cascade_bob_reply). The caller moves the segments: directly in one process
 * (tests, benches) or over the authenticated peer channel (qkd-cascade), with
 * as many frames in flight as it likes, since every frame has its own state.
 *
 * Every round, all blocks of a frame that need a parity ask at once, so the
 * number of round trips per frame is set by the longest chain of searches the
 * cascade step triggers (about 130 on 2^14 and 260 on 2^18 bits at QBER 2 %
 * with the tuned schedule), not by the number of blocks. Every parity bit
 * Alice sends is counted as disclosed.
 *
 * Wire format of the segments: Documentation/cascade.md.
 */
#ifndef QKD_CASCADE_H
#define QKD_CASCADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CASCADE_SEED_LEN 32
#define CASCADE_MAX_PASSES 32
/* Largest frame in bits (block and node indices must fit the wire format). */
#define CASCADE_MAX_BITS (1ull << 28)
/* Below this QBER the block-size formulas use this value (avoids huge blocks). */
#define CASCADE_MIN_QBER 0.001

enum cascade_schedule {
	CASCADE_ORIGINAL = 0,	/* Brassard-Salvail: 4 passes, k1 = 0.73/Q, doubling */
	CASCADE_YAN,		/* Yan et al.: 10 passes, k1 = 0.8/Q, k2 = 5 k1, then n/2 */
	CASCADE_OPTION7,	/* Martinez-Mateo et al. option 7: 14 passes, 2^ceil(log2 1/Q), x4, n/2 */
	CASCADE_OPTION8,	/* Martinez-Mateo et al. option 8: 14 passes, alpha-dependent, 4096 */
	CASCADE_TUNED,		/* qkdpipe: 20 passes, 2^ceil(log2 0.5/Q), x8 (x16), n/2 */
	CASCADE_N_SCHEDULES,
};

/* "original", "yan", "option7", "option8", "tuned". */
const char *cascade_schedule_name(enum cascade_schedule s);
/* One-line description for --help. */
const char *cascade_schedule_help(enum cascade_schedule s);
/* Schedule by name, or -EINVAL. */
int cascade_schedule_parse(const char *name);

/*
 * Block sizes of schedule s for an n-bit frame at QBER qber (fraction, from
 * the estimation stage): k[0..passes-1], each in [1, n]. Returns the number of
 * passes, or -EINVAL (n == 0, n > CASCADE_MAX_BITS, qber not in [0, 0.5)).
 */
int cascade_block_sizes(enum cascade_schedule s, uint64_t n, double qber,
			uint32_t k[CASCADE_MAX_PASSES]);

/* Binary entropy h(p) in bits; 0 at p = 0 and p = 1. */
double cascade_binary_entropy(double p);
/* f = disclosed / (n h(errors / n)); 0 when errors == 0 or n == 0. */
double cascade_efficiency(uint64_t disclosed, uint64_t n, uint64_t errors);

/*
 * A session: the shuffle seed both sides agreed on (fresh per session; the
 * caller obtains it through the authenticated channel) and the cache of the
 * permutations derived from it. Not thread-safe: one session per thread.
 */
struct cascade_session;
/*
 * Session seed from both sides' fresh nonces (each from getrandom, exchanged
 * over the authenticated channel): seed = alice XOR bob, so it is fresh as
 * long as either side is honest about its randomness.
 */
void cascade_seed_combine(const uint8_t alice[CASCADE_SEED_LEN], const uint8_t bob[CASCADE_SEED_LEN],
			  uint8_t seed[CASCADE_SEED_LEN]);
struct cascade_session *cascade_session_new(const uint8_t seed[CASCADE_SEED_LEN]);
void cascade_session_free(struct cascade_session *s);

struct cascade_config {
	enum cascade_schedule schedule;
	unsigned max_rounds;	/* give up after this many round trips; 0 = 1000 */
};

struct cascade_result {
	bool done;		/* protocol finished (successfully or not) */
	bool ok;		/* finished without hitting a limit */
	uint64_t n;		/* frame bits */
	uint64_t disclosed;	/* parity bits sent by Alice for this frame */
	uint64_t corrected;	/* bits Bob flipped */
	uint64_t rounds;	/* request/answer round trips */
	unsigned passes;
	double efficiency;	/* cascade_efficiency(disclosed, n, corrected) */
};

/*
 * Bob. key holds n packed bits (bit i = (key[i/8] >> (i%8)) & 1) in a buffer of
 * at least qkd_bits_to_bytes(n) bytes, 8-byte aligned, padding bits zero; it is
 * corrected in place and must stay valid until cascade_bob_free. NULL with
 * errno set (EINVAL, ENOMEM).
 */
struct cascade_bob;
struct cascade_bob *cascade_bob_new(struct cascade_session *s, const struct cascade_config *cfg,
				    uint8_t *key, uint64_t n, double qber);
/*
 * Next request segment for Alice: *out points at Bob's buffer, valid until the
 * next call. Returns 1 when a segment must be sent and answered, 2 when the
 * segment is the last one (DONE or ABORT: send it, Alice does not answer), 0
 * once finished, -EPROTO if called while an answer is outstanding.
 */
int cascade_bob_request(struct cascade_bob *b, const uint8_t **out, size_t *len);
/* Alice's answer to the last request. 0, or -EBADMSG for a malformed one. */
int cascade_bob_reply(struct cascade_bob *b, const uint8_t *buf, size_t len);
void cascade_bob_result(const struct cascade_bob *b, struct cascade_result *r);
/* Wipes everything derived from the key. NULL is fine. */
void cascade_bob_free(struct cascade_bob *b);

/* Alice. key as for Bob, read only. */
struct cascade_alice;
struct cascade_alice *cascade_alice_new(struct cascade_session *s, const uint8_t *key, uint64_t n);
/*
 * Handle one request segment. Returns 1 and sets *out and *len to the answer
 * segment (Alice's buffer, valid until the next call) that must be sent back;
 * 0 when the segment was DONE (frame finished, nothing to send); -ECANCELED
 * when it was ABORT; -EBADMSG for a malformed or out-of-order segment (the
 * frame must be aborted); -ENOMEM.
 */
int cascade_alice_handle(struct cascade_alice *a, const uint8_t *req, size_t req_len,
			 const uint8_t **out, size_t *len);
/* Alice's view once DONE arrived: disclosed, corrected (as Bob reported), ... */
void cascade_alice_result(const struct cascade_alice *a, struct cascade_result *r);
void cascade_alice_free(struct cascade_alice *a);

/*
 * Drivers: many frames in flight over one message link. The link is the
 * caller's (the authenticated peer channel in qkd-cascade, a socket pair or a
 * direct call in tests and benches). Every message belongs to one frame (its
 * key id) so that each frame's transcript can be authenticated on its own.
 */
#define CASCADE_MSG_SEGMENT 0x0c01	/* one request or answer segment */
#define CASCADE_MSG_END 0x0c02		/* Bob: no more frames (key id 0, empty) */

struct cascade_link {
	void *ctx;
	/* 0 or -errno */
	int (*send)(void *ctx, uint64_t key_id, uint16_t type, const uint8_t *buf, size_t len);
	/* 1 message (valid until the next recv), 0 peer closed, -errno */
	int (*recv)(void *ctx, uint64_t *key_id, uint16_t *type, const uint8_t **buf, size_t *len);
	/* optional: drop the transcript of a key id the peer has no frame for */
	void (*forget)(void *ctx, uint64_t key_id);
};

struct cascade_job {
	uint64_t key_id;
	bool skip;		/* Bob: no protocol, just hand it back in order */
	uint8_t *key;		/* n packed bits, 8-byte aligned; Bob's is corrected in place */
	uint64_t n;
	double qber;		/* Bob: from the estimation stage; Alice: unused */
	void *user;
	/* set by the driver before done() */
	int status;		/* 0 corrected, -ECANCELED aborted (round limit, peer), -errno */
	struct cascade_result result;
	bool joined;		/* Bob: Alice took part (a transcript to close on both sides) */
	/* driver-private */
	void *state;
	bool finished;
	struct cascade_job *next_done;
};

/*
 * Bob: keep up to window frames in flight (window >= 1). next(arg) gives the
 * next job or NULL when there are no more; done(arg, job) is called for every
 * job, in the order next() gave them, after its protocol ended (returning
 * non-zero stops the driver).
 *
 * done() is called in batches, at the same point of the message stream on
 * both sides: whenever the finished jobs at the head of the order include
 * 'batch' jobs Alice took part in (job->joined), and at the end. So done() may
 * run a blocking exchange with the peer for each joined job (closing its
 * authentication transcript) and both sides meet there without a pipeline
 * stall per frame. Jobs that are not joined only exist on Bob's side: close
 * their transcript locally (forget).
 *
 * Ends with a CASCADE_MSG_END message. Returns 0, or -errno for a link
 * failure (jobs not yet done are then reported with status -EPIPE).
 */
int cascade_bob_drive(struct cascade_session *s, const struct cascade_config *cfg,
		      const struct cascade_link *l, unsigned window, unsigned batch,
		      struct cascade_job *(*next)(void *arg),
		      int (*done)(void *arg, struct cascade_job *j), void *arg);

/*
 * Alice: answer Bob until CASCADE_MSG_END or the link closes. find(arg, key_id)
 * gives the job Bob names in a START (NULL: Alice has no such frame; Bob is
 * told and aborts it, and the link's forget drops that key id's transcript).
 * done(arg, job) as for Bob, in the same batches (batch must be Bob's). A
 * segment Alice refuses is answered with an empty segment, which makes Bob
 * abort the frame on both sides.
 */
int cascade_alice_serve(struct cascade_session *s, const struct cascade_link *l, unsigned batch,
			struct cascade_job *(*find)(void *arg, uint64_t key_id),
			int (*done)(void *arg, struct cascade_job *j), void *arg);

/*
 * Over libqkd's authenticated peer channel (qkd/peer.h): a link whose
 * messages are qkd_send/qkd_recv on p, each under its frame's key id; and the
 * session seed agreed from both sides' fresh nonces under key id
 * CASCADE_SEED_KEY_ID, whose transcript is verified before the seed is used.
 */
struct qkd_peer;
#define CASCADE_MSG_NONCE 0x0c03
#define CASCADE_SEED_KEY_ID UINT64_MAX
void cascade_link_peer(struct cascade_link *l, struct qkd_peer *p);
/*
 * Also tells Alice Bob's done() batch size (*batch: Bob's in, Alice's out),
 * which both drivers must share. 0, -EBADMSG if the exchange failed
 * authentication, -EPROTO for a malformed one, other -errno.
 */
int cascade_peer_agree_seed(struct qkd_peer *p, bool bob, uint32_t *batch,
			    uint8_t seed[CASCADE_SEED_LEN]);

#endif
