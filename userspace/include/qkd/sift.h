/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BB84 sifting core (the qkd-sift module drives it over the peer channel).
 *
 *   Bob:   det = his detected slots and measurement bases
 *          -> announcement: u64 slots, u64 n (little-endian), n positions as
 *             LEB128 gaps (qkd/poslist.h), n basis bits packed
 *   Alice: checks it against her frame, answers with the n-bit match mask
 *          (bit j set iff her basis at det.pos[j] equals Bob's)
 *   both:  keep their own value bit at every detected slot whose mask bit is
 *          set, in slot order. Neither bit values nor Alice's bases for
 *          unmatched slots leave the station.
 *
 * Multi-clicks need nothing here: the source already gave Bob a random bit
 * for them (squashing), and they are counted for the statistics.
 */
#ifndef QKD_SIFT_H
#define QKD_SIFT_H

#include <stddef.h>
#include <stdint.h>

struct qkd_sift_det {
	uint64_t slots;	  /* slots in the raw frame */
	uint64_t n;	  /* detections */
	uint64_t multi;	  /* multi-clicks among them (Bob's side only) */
	uint64_t *pos;	  /* n slot indexes, strictly increasing */
	uint8_t *basis;	  /* n basis bits, packed */
};

/* Bob: collect the detections of a raw frame. 0 or -ENOMEM. */
int qkd_sift_detections(const uint8_t *raw, uint64_t slots, struct qkd_sift_det *d);
/* Encode the announcement into a malloc'd buffer. 0 or -ENOMEM. */
int qkd_sift_encode(const struct qkd_sift_det *d, uint8_t **buf, size_t *len);
/*
 * Alice: decode an announcement. -EBADMSG with *err set for anything
 * malformed (positions out of range or unordered, wrong length, more
 * detections than slots).
 */
int qkd_sift_decode(const uint8_t *buf, size_t len, struct qkd_sift_det *d, const char **err);
/* Bytes of the n-bit match mask. */
static inline size_t qkd_sift_mask_len(uint64_t n)
{
	return (size_t)((n + 7) / 8);
}
/*
 * Alice: compute the match mask from her raw frame (slots must equal
 * d->slots, else -EPROTO). Returns the number of matches.
 */
int64_t qkd_sift_match(const uint8_t *alice_raw, uint64_t slots, const struct qkd_sift_det *d,
		       uint8_t *mask, const char **err);
/*
 * Bob: check a received mask (length, padding bits zero). 0 or -EBADMSG.
 */
int qkd_sift_check_mask(const struct qkd_sift_det *d, const uint8_t *mask, size_t len,
			const char **err);
/*
 * Both: write the value bits of raw at the matched detections, packed, into
 * out (qkd_bits_to_bytes(n) bytes suffice; padding cleared). Returns the
 * number of key bits.
 */
uint64_t qkd_sift_keep(const uint8_t *raw, const struct qkd_sift_det *d, const uint8_t *mask,
		       uint8_t *out);
void qkd_sift_det_free(struct qkd_sift_det *d);

#endif
