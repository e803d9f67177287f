/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Key confirmation after error correction (the qkd-confirm module drives it
 * over the peer channel).
 *
 * Alice draws r fresh 128-bit keys with qkd_random() and sends, for a block of
 * n bits, the keys and her tag: for hash i the first t_i bits of the
 * polynomial hash over GF(2^128) of her n key bits (qkd_polyhash, qkd/mac.h).
 * Bob computes the same over his block and compares in constant time.
 *
 * The polynomial hash of a B-block message is (B + 1) / 2^128 almost XOR
 * universal (B = ceil(n / 128) blocks plus the length block), so keeping t
 * bits of it gives Pr[tags equal | keys differ] <= (B + 1) / 2^t. With r
 * independent keys the tags collide with probability <= prod (B + 1) / 2^t_i;
 * the plan picks the fewest hashes and the shortest tags with
 *
 *	sum t_i >= log2(1 / eps_cor) + r log2(B + 1),	t_i <= 128,
 *
 * so the keys that pass are eps_cor-correct. The sum of the t_i bits is what
 * the exchange discloses about the key (the hash keys are independent of it);
 * the stage adds it to the frame's disclosed_bits.
 *
 * Wire format of Alice's message (little-endian):
 *	u8 version (1), u8 r, u16 zero, u32 zero, u64 n,
 *	r times: u8 t_i (1..127, 0 stands for 128), 16-byte hash key, ceil(t_i / 8) tag bytes (bits beyond
 *	t_i zero).
 * Bob's answer: u8 verdict (1 = tags equal, 0 = different).
 */
#ifndef QKD_CONFIRM_H
#define QKD_CONFIRM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QKD_CONFIRM_MAX_HASHES 8
#define QKD_CONFIRM_VERSION 1

struct qkd_confirm_plan {
	unsigned hashes;			/* r */
	unsigned tag_bits[QKD_CONFIRM_MAX_HASHES]; /* t_i, 1..128 */
	uint64_t total_bits;			/* sum t_i: bits disclosed */
};

/* Plan the tags for a block of nbits at eps_cor in (0, 1). 0 or -EINVAL. */
int qkd_confirm_plan(uint64_t nbits, double eps_cor, struct qkd_confirm_plan *p);

struct qkd_confirm_tag {
	uint8_t key[QKD_CONFIRM_MAX_HASHES][16];
	uint8_t tag[QKD_CONFIRM_MAX_HASHES][16]; /* first t_i bits used, rest zero */
};

/* Fresh hash keys (qkd_random) for plan p. */
void qkd_confirm_new_keys(const struct qkd_confirm_plan *p, struct qkd_confirm_tag *t);
/* Compute t->tag over the first nbits of key (packed LSB-first) with t->key. */
void qkd_confirm_compute(const struct qkd_confirm_plan *p, const uint8_t *key, uint64_t nbits,
			 struct qkd_confirm_tag *t);
/* Constant-time comparison of the tags of plan p; true when all equal. */
bool qkd_confirm_equal(const struct qkd_confirm_plan *p, const struct qkd_confirm_tag *a,
		       const struct qkd_confirm_tag *b);

/* Alice's message: malloc'd into *buf. 0 or -ENOMEM. */
int qkd_confirm_encode(const struct qkd_confirm_plan *p, uint64_t nbits,
		       const struct qkd_confirm_tag *t, uint8_t **buf, size_t *len);
/*
 * Bob: parse Alice's message into *p, *nbits and *t. -EBADMSG with *err set
 * for anything malformed (lengths, version, hash count, tag bits, non-zero
 * padding).
 */
int qkd_confirm_decode(const uint8_t *buf, size_t len, struct qkd_confirm_plan *p,
		       uint64_t *nbits, struct qkd_confirm_tag *t, const char **err);

/* true when plan a is the same as plan b (Bob checks Alice's choice). */
bool qkd_confirm_plan_equal(const struct qkd_confirm_plan *a, const struct qkd_confirm_plan *b);

#endif
