// SPDX-License-Identifier: GPL-2.0
/*
 * Position lists and packed-bit selections (see qkd/poslist.h).
 */
#include <errno.h>
#include <string.h>

#include "qkd/frame.h"
#include "qkd/poslist.h"

size_t qkd_poslist_encode(const uint64_t *pos, uint64_t n, uint8_t *out)
{
	uint8_t *p = out;
	uint64_t prev = 0;

	for (uint64_t i = 0; i < n; i++) {
		/* First entry is the position, later ones the gap minus one. */
		uint64_t v = i ? pos[i] - prev - 1 : pos[i];

		prev = pos[i];
		while (v >= 0x80) {
			*p++ = (uint8_t)(v | 0x80);
			v >>= 7;
		}
		*p++ = (uint8_t)v;
	}
	return (size_t)(p - out);
}

/*
 * One entry, checked: LEB128, minimal, the position below limit. 0 or
 * -EBADMSG.
 */
static int decode_one(const uint8_t *buf, size_t len, size_t *off, uint64_t limit,
		      uint64_t *next, uint64_t *pos)
{
	uint64_t v = 0;
	unsigned shift = 0;

	for (;;) {
		uint8_t b;

		if (*off >= len || shift > 63)
			return -EBADMSG;
		b = buf[(*off)++];
		if (shift == 63 && (b & 0x7e))
			return -EBADMSG; /* would overflow 64 bits */
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			/* Minimal encodings only: one byte string per list. */
			if (shift && !b)
				return -EBADMSG;
			break;
		}
		shift += 7;
	}
	if (v >= limit || *next > limit - 1 - v)
		return -EBADMSG;
	*pos = *next + v;
	*next = *pos + 1;
	return 0;
}

ssize_t qkd_poslist_decode(const uint8_t *buf, size_t len, uint64_t n, uint64_t limit,
			   uint64_t *pos)
{
	size_t off = 0;
	uint64_t next = 0, i = 0; /* next: smallest position the next entry may take */

	while (i < n) {
		/*
		 * Dense lists (sifting announces about every fifth slot) are runs
		 * of one-byte gaps. A run is decoded without per-entry checks and
		 * its last position checked against limit afterwards: positions
		 * only grow, and a run of k entries adds at most 128 k to next, so
		 * it cannot wrap when next starts that far below 2^64.
		 */
		uint64_t run = len - off < n - i ? len - off : n - i;

		if (run && run <= (UINT64_MAX - next) / 128) {
			const uint8_t *p = buf + off;
			uint64_t k = 0, nx = next;

			while (k < run && p[k] < 0x80) {
				nx += p[k];
				pos[i + k] = nx++;
				k++;
			}
			if (k) {
				if (nx - 1 >= limit)
					return -EBADMSG;
				next = nx;
				off += k;
				i += k;
				continue;
			}
		}
		if (decode_one(buf, len, &off, limit, &next, &pos[i]))
			return -EBADMSG;
		i++;
	}
	return (ssize_t)off;
}

void qkd_pos_gather(const uint8_t *src, const uint64_t *pos, uint64_t m, uint8_t *dst)
{
	memset(dst, 0, (size_t)((m + 7) / 8));
	for (uint64_t j = 0; j < m; j++)
		dst[j >> 3] |= (uint8_t)(qkd_bit_get(src, pos[j]) << (j & 7));
}

/* Up to 8 bytes from p, little-endian; 'avail' bytes readable. */
static uint64_t load_le(const uint8_t *p, size_t avail)
{
	uint64_t v = 0;

	for (size_t i = 0; i < 8 && i < avail; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/*
 * qkd-estimate removes a random tenth or so of a block: the kept bits come in
 * runs of about ten, which are moved up to 56 bits at a time through a 64-bit
 * accumulator instead of bit by bit.
 */
uint64_t qkd_pos_remove(const uint8_t *src, uint64_t n, const uint64_t *pos, uint64_t m,
			uint8_t *dst)
{
	size_t srclen = (size_t)((n + 7) / 8), dstlen = qkd_bits_to_bytes(n - m), done;
	uint64_t out = 0, i = 0, acc = 0;
	unsigned nacc = 0;
	uint8_t *d = dst;

	for (uint64_t j = 0; j <= m; j++) {
		uint64_t end = j < m ? pos[j] : n;

		if (end < i)
			continue; /* not increasing: nothing more to leave out here */
		while (i < end) {
			unsigned cnt = end - i < 56 ? (unsigned)(end - i) : 56;
			size_t byte = (size_t)(i >> 3);
			uint64_t v = load_le(src + byte, srclen - byte) >> (i & 7);

			v &= (1ull << cnt) - 1;
			acc |= v << nacc;
			if (nacc + cnt >= 64) {
				for (int b = 0; b < 8; b++)
					d[b] = (uint8_t)(acc >> (8 * b));
				d += 8;
				acc = v >> (64 - nacc); /* nacc > 8 here, so the shift is < 64 */
				nacc = nacc + cnt - 64;
			} else {
				nacc += cnt;
			}
			i += cnt;
			out += cnt;
		}
		i = end + 1;
	}
	for (unsigned b = 0; b < (nacc + 7) / 8; b++)
		d[b] = (uint8_t)(acc >> (8 * b));
	done = (size_t)(d - dst) + (nacc + 7) / 8;
	if (done < dstlen)
		memset(dst + done, 0, dstlen - done);
	return out;
}

uint64_t qkd_bits_hamming(const uint8_t *a, const uint8_t *b, uint64_t nbits)
{
	uint64_t d = 0, full = nbits / 8;

	for (uint64_t i = 0; i < full; i++)
		d += (uint64_t)__builtin_popcount((unsigned)(a[i] ^ b[i]));
	if (nbits & 7) {
		unsigned mask = (1u << (nbits & 7)) - 1;

		d += (uint64_t)__builtin_popcount((unsigned)(a[full] ^ b[full]) & mask);
	}
	return d;
}
