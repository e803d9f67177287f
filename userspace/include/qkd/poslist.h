/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Position lists and packed-bit selections, shared by sifting and parameter
 * estimation: a sorted list of bit positions travels on the peer channel as
 * LEB128 gaps (one byte per position when the positions are denser than
 * 1/128), and both peers then gather or remove the same positions from their
 * packed keys. Bit order is the frame's: bit i is (p[i / 8] >> (i % 8)) & 1.
 */
#ifndef QKD_POSLIST_H
#define QKD_POSLIST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Worst-case encoded size of n positions. */
static inline size_t qkd_poslist_max_len(uint64_t n)
{
	return (size_t)n * 10;
}

/* Encode n strictly increasing positions; returns the bytes written. */
size_t qkd_poslist_encode(const uint64_t *pos, uint64_t n, uint8_t *out);

/*
 * Decode exactly n positions from buf. Every position must be < limit and the
 * list strictly increasing (a gap cannot overflow), and every number minimally
 * encoded, so each list has exactly one encoding. Returns the bytes consumed
 * or -EBADMSG, never reading past buf + len.
 */
ssize_t qkd_poslist_decode(const uint8_t *buf, size_t len, uint64_t n, uint64_t limit,
			   uint64_t *pos);

/* dst bit j = src bit pos[j], for j < m. dst must hold ceil(m / 8) bytes; padding cleared. */
void qkd_pos_gather(const uint8_t *src, const uint64_t *pos, uint64_t m, uint8_t *dst);

/*
 * Copy the n bits of src to dst leaving out the m (sorted, < n) positions.
 * dst holds qkd_bits_to_bytes(n - m) bytes and may not alias src; the padding
 * up to that size is cleared. Returns n - m.
 */
uint64_t qkd_pos_remove(const uint8_t *src, uint64_t n, const uint64_t *pos, uint64_t m,
			uint8_t *dst);

/* Number of differing bits among the first nbits of a and b. */
uint64_t qkd_bits_hamming(const uint8_t *a, const uint8_t *b, uint64_t nbits);

#endif
