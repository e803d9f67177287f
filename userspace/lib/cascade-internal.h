/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Cascade internals shared by the Alice and Bob halves: permutation cache,
 * packed-bit helpers and the segment encoding.
 */
#ifndef QKD_CASCADE_INTERNAL_H
#define QKD_CASCADE_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "qkd/cascade.h"

/* Segment opcodes (first byte of every Bob -> Alice segment). */
#define CASCADE_OP_START 0x01	/* n, passes, k[]: answer = top-level parities */
#define CASCADE_OP_QUERY 0x02	/* count, (pass, block, node)[]: answer = parities */
#define CASCADE_OP_DONE 0x03	/* corrected: no answer */
#define CASCADE_OP_ABORT 0x04	/* no answer */
#define CASCADE_WIRE_VERSION 1

/*
 * Permutation of pass p (p >= 1; pass 0 is the identity): fwd[j] is the
 * original position of permuted position j. Its inverse is not stored (only
 * Bob needs it, for the few bits he corrects): cascade_perm_inv() ranks the
 * position in the pass's base shuffle among the entries kept for this frame
 * length (keep, keep_rank), which costs a sequential pass per frame length
 * instead of n random writes. half_mask marks
 * the original positions whose permuted position is below half (for passes
 * with at most two blocks, whose block parities are then one masked XOR).
 */
struct cascade_perm {
	uint32_t *fwd;
	uint64_t *keep;		/* bit i: base shuffle entry i is below n */
	uint32_t *keep_rank;	/* keep_rank[w]: kept entries in words < w */
	const uint32_t *base_inv; /* inverse of the base shuffle, NULL until asked */
	uint64_t *half_mask;
	uint32_t *rank1;	/* rank1[w]: members of half_mask in words < w */
	uint64_t half;		/* split point half_mask was built for; 0 none */
};

struct cascade_perm_set {
	struct cascade_perm_set *next;
	struct cascade_session *sess;
	uint64_t n;
	unsigned refs;
	struct cascade_perm perm[CASCADE_MAX_PASSES];
};

/*
 * Permutations of N = 2^j positions; a frame of n <= N bits uses the
 * subsequence of entries below n, itself a uniformly random permutation.
 * Frames of varying length (the usual case after sifting) thus share one
 * Fisher-Yates shuffle per pass per power of two.
 */
struct cascade_base {
	struct cascade_base *next;
	uint64_t N;
	uint32_t *fwd[CASCADE_MAX_PASSES];
	uint32_t *inv[CASCADE_MAX_PASSES];	/* built on first use (Bob only) */
};

struct cascade_session {
	uint8_t seed[CASCADE_SEED_LEN];
	struct cascade_perm_set *sets;
	struct cascade_base *bases;
};

struct cascade_perm_set *cascade_perm_get(struct cascade_session *s, uint64_t n);
void cascade_perm_put(struct cascade_session *s, struct cascade_perm_set *ps);
/* Permutation of pass p (>= 1), generated on first use. NULL on ENOMEM. */
const struct cascade_perm *cascade_perm_pass(struct cascade_perm_set *ps, const uint8_t *seed,
					     unsigned p);
/* Permuted position of original bit i in pass p; -1 (as uint64_t) on ENOMEM. */
uint64_t cascade_perm_inv(struct cascade_perm_set *ps, unsigned p, uint64_t i);
/* half_mask for split point half (generated on first use). NULL on ENOMEM. */
const uint64_t *cascade_perm_half_mask(struct cascade_perm_set *ps, const uint8_t *seed,
				       unsigned p, uint64_t half);

/*
 * Without -mpopcnt, __builtin_popcountll is a libgcc call (4% of the Cascade
 * stage's CPU in the pipeline); the SWAR count is a dozen inline instructions.
 */
static inline unsigned cascade_popcount(uint64_t x)
{
#ifdef __POPCNT__
	return (unsigned)__builtin_popcountll(x);
#else
	x -= (x >> 1) & 0x5555555555555555ull;
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

/*
 * Passes of at most two blocks are never gathered: block 0 is the set of
 * half_mask, block 1 its complement, and a sub-block is a range of members in
 * original order. select gives the original position of member r of block
 * blk; mask_parity the parity of key bits of block blk in positions [a, e].
 */
uint64_t cascade_mask_select(const struct cascade_perm *pm, uint64_t n, unsigned blk, uint64_t r);
unsigned cascade_mask_parity(const uint64_t *key, const uint64_t *mask, unsigned blk, uint64_t a,
			     uint64_t e);

/* out[j] = in[fwd[j]] for j < n, padding bits of out cleared. */
void cascade_gather(uint64_t *out, const uint64_t *in, const uint32_t *fwd, uint64_t n);

static inline uint64_t cascade_words(uint64_t n)
{
	return (n + 63) / 64;
}

/* Parity of bits [a, a + len) of w. */
static inline unsigned cascade_range_parity(const uint64_t *w, uint64_t a, uint64_t len)
{
	uint64_t e, wa, we, x;

	if (!len)
		return 0;
	e = a + len - 1;
	wa = a >> 6;
	we = e >> 6;
	if (wa == we)
		return (unsigned)__builtin_parityll(w[wa] & (~0ull << (a & 63)) &
						    (~0ull >> (63 - (e & 63))));
	x = w[wa] & (~0ull << (a & 63));
	for (uint64_t i = wa + 1; i < we; i++)
		x ^= w[i];
	x ^= w[we] & (~0ull >> (63 - (e & 63)));
	return (unsigned)__builtin_parityll(x);
}

/* Parity of (a AND b) over nw words. */
static inline unsigned cascade_masked_parity(const uint64_t *a, const uint64_t *b, uint64_t nw)
{
	uint64_t x = 0;

	for (uint64_t i = 0; i < nw; i++)
		x ^= a[i] & b[i];
	return (unsigned)__builtin_parityll(x);
}

static inline unsigned cascade_bit(const uint64_t *w, uint64_t i)
{
	return (unsigned)(w[i >> 6] >> (i & 63)) & 1;
}

static inline void cascade_flip(uint64_t *w, uint64_t i)
{
	w[i >> 6] ^= 1ull << (i & 63);
}

/*
 * Node h (heap index, root 1) of a block [start, start + len): left child
 * 2h covers the first ceil(len / 2) bits. Returns 0 and the node's range, or
 * -1 if h does not exist in a block of that length.
 */
static inline int cascade_node_range(uint64_t h, uint64_t *start, uint64_t *len)
{
	int depth = 63 - __builtin_clzll(h);

	if (!(*len & (*len - 1))) {
		/* Power-of-two block: every level halves exactly. */
		if (depth >= 63 || (*len >> depth) == 0)
			return -1;
		*len >>= depth;
		*start += (h - (1ull << depth)) * *len;
		return 0;
	}
	for (int d = depth - 1; d >= 0; d--) {
		uint64_t l = (*len + 1) / 2;

		if (*len < 2)
			return -1;
		if ((h >> d) & 1) {
			*start += l;
			*len -= l;
		} else {
			*len = l;
		}
	}
	return 0;
}

/* Varints (LEB128). put returns bytes written; get returns bytes read or 0. */
static inline size_t cascade_put_varint(uint8_t *p, uint64_t v)
{
	size_t i = 0;

	while (v >= 0x80) {
		p[i++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[i++] = (uint8_t)v;
	return i;
}

static inline size_t cascade_get_varint(const uint8_t *p, size_t len, uint64_t *v)
{
	uint64_t r = 0;

	for (size_t i = 0; i < len && i < 10; i++) {
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			return i + 1;
		}
	}
	return 0;
}

#endif
