// SPDX-License-Identifier: GPL-2.0
/*
 * BB84 sifting core (protocol in qkd/sift.h).
 *
 * The pipeline's links detect in about a fifth of the slots (qkd-sim at 0 km,
 * mu 0.5), so a per-slot or per-detection branch on random data mispredicts
 * constantly: that, not memory, was the cost of sifting. The loops here work
 * on 64 slots or 64 detections at a time: the raw bytes of a block become
 * bit masks (SSE2 pmovmskb where there is SSE2), set bits are walked with
 * count-trailing-zeros, and bits go out through a 64-bit accumulator.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "qkd/frame.h"
#include "qkd/poslist.h"
#include "qkd/raw.h"
#include "qkd/sift.h"

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Up to 8 bytes from p (fewer at the end of a bit string), little-endian. */
static uint64_t get_le_partial(const uint8_t *p, size_t bytes)
{
	uint64_t v = 0;

	if (bytes >= 8)
		return get_le64(p);
	for (size_t i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/*
 * Without -mpopcnt, __builtin_popcountll is a libgcc call (it showed up at 7%
 * of Bob's sifting); the SWAR count is a dozen inline instructions.
 */
static inline uint64_t popcount64(uint64_t x)
{
#ifdef __POPCNT__
	return (uint64_t)__builtin_popcountll(x);
#else
	x -= (x >> 1) & 0x5555555555555555ull;
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (x * 0x0101010101010101ull) >> 56;
#endif
}

/* Packed little-endian bit output, 64 bits at a time. */
struct bit_writer {
	uint8_t *p;
	uint64_t acc;
	unsigned n;
};

static inline void bw_flush_word(struct bit_writer *w)
{
	put_le64(w->p, w->acc);
	w->p += 8;
	w->acc = 0;
	w->n = 0;
}

/* Write the low 'bits' bits of v (bits <= 64). */
static inline void bw_put(struct bit_writer *w, uint64_t v, unsigned bits)
{
	if (!bits)
		return;
	if (bits < 64)
		v &= (1ull << bits) - 1;
	w->acc |= v << w->n;
	if (w->n + bits < 64) {
		w->n += bits;
		return;
	}
	{
		unsigned used = 64 - w->n;

		put_le64(w->p, w->acc);
		w->p += 8;
		w->acc = used < 64 ? v >> used : 0;
		w->n = bits - used;
	}
}

/* The last partial word: exactly (n + 7) / 8 bytes. */
static inline void bw_finish(struct bit_writer *w)
{
	for (unsigned i = 0; i < (w->n + 7) / 8; i++)
		w->p[i] = (uint8_t)(w->acc >> (8 * i));
}

/*
 * Masks of one block of up to 64 raw slots: bit i of *det is slot i's
 * QKD_RAW_DETECTED, and so on.
 */
struct raw_masks {
	uint64_t det, basis, multi;
};

static void raw_masks_tail(const uint8_t *raw, unsigned cnt, struct raw_masks *m)
{
	m->det = m->basis = m->multi = 0;
	for (unsigned i = 0; i < cnt; i++) {
		m->det |= (uint64_t)((raw[i] & QKD_RAW_DETECTED) != 0) << i;
		m->basis |= (uint64_t)((raw[i] & QKD_RAW_BASIS) != 0) << i;
		m->multi |= (uint64_t)((raw[i] & QKD_RAW_MULTI) != 0) << i;
	}
}

#ifdef __SSE2__
/* Bit 'bit' of each of 16 bytes to bit 7, then pmovmskb. */
#define MOVEMASK_BIT(v, bit) \
	((uint64_t)(uint16_t)_mm_movemask_epi8(_mm_slli_epi16((v), 7 - (bit))))

static inline void raw_masks64(const uint8_t *raw, struct raw_masks *m)
{
	m->det = m->basis = m->multi = 0;
	for (int q = 0; q < 4; q++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(raw + 16 * q));

		m->det |= MOVEMASK_BIT(v, 2) << (16 * q);
		m->basis |= MOVEMASK_BIT(v, 1) << (16 * q);
		m->multi |= MOVEMASK_BIT(v, 3) << (16 * q);
	}
}

static inline uint64_t det_mask64(const uint8_t *raw)
{
	uint64_t d = 0;

	for (int q = 0; q < 4; q++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(raw + 16 * q));

		d |= MOVEMASK_BIT(v, 2) << (16 * q);
	}
	return d;
}
#else
static inline void raw_masks64(const uint8_t *raw, struct raw_masks *m)
{
	raw_masks_tail(raw, 64, m);
}

static inline uint64_t det_mask64(const uint8_t *raw)
{
	struct raw_masks m;

	raw_masks_tail(raw, 64, &m);
	return m.det;
}
#endif

_Static_assert(QKD_RAW_VALUE == 0x01 && QKD_RAW_BASIS == 0x02 && QKD_RAW_DETECTED == 0x04 &&
	       QKD_RAW_MULTI == 0x08, "raw_masks64 hard-codes the raw bit positions");

void qkd_sift_det_free(struct qkd_sift_det *d)
{
	free(d->pos);
	free(d->basis);
	memset(d, 0, sizeof(*d));
}

static int det_alloc(struct qkd_sift_det *d, uint64_t n)
{
	d->pos = malloc((size_t)(n ? n : 1) * sizeof(uint64_t));
	d->basis = calloc(1, qkd_sift_mask_len(n) + 1);
	if (!d->pos || !d->basis) {
		qkd_sift_det_free(d);
		return -ENOMEM;
	}
	return 0;
}

int qkd_sift_detections(const uint8_t *raw, uint64_t slots, struct qkd_sift_det *d)
{
	uint64_t n = 0, j = 0, full = slots & ~63ull, i;
	struct bit_writer bw;
	struct raw_masks m;

	memset(d, 0, sizeof(*d));
	for (i = 0; i < full; i += 64)
		n += popcount64(det_mask64(raw + i));
	if (i < slots) {
		raw_masks_tail(raw + i, (unsigned)(slots - i), &m);
		n += popcount64(m.det);
	}
	if (det_alloc(d, n))
		return -ENOMEM;
	d->slots = slots;
	d->n = n;
	bw = (struct bit_writer){ .p = d->basis };
	for (i = 0; i < slots; i += 64) {
		uint64_t det, bas = 0;
		unsigned k = 0;

		if (i < full)
			raw_masks64(raw + i, &m);
		else
			raw_masks_tail(raw + i, (unsigned)(slots - i), &m);
		det = m.det;
		d->multi += popcount64(det & m.multi);
		/* Bob's bases at his detections, in order: a software pext. */
		while (det) {
			unsigned b = (unsigned)__builtin_ctzll(det);

			d->pos[j + k] = i + b;
			bas |= ((m.basis >> b) & 1) << k;
			k++;
			det &= det - 1;
		}
		bw_put(&bw, bas, k);
		j += k;
	}
	bw_finish(&bw);
	return 0;
}

int qkd_sift_encode(const struct qkd_sift_det *d, uint8_t **buf, size_t *len)
{
	size_t cap = 16 + qkd_poslist_max_len(d->n) + qkd_sift_mask_len(d->n), off;
	uint8_t *b = malloc(cap);

	if (!b)
		return -ENOMEM;
	put_le64(b, d->slots);
	put_le64(b + 8, d->n);
	off = 16 + qkd_poslist_encode(d->pos, d->n, b + 16);
	memcpy(b + off, d->basis, qkd_sift_mask_len(d->n));
	*buf = b;
	*len = off + qkd_sift_mask_len(d->n);
	return 0;
}

int qkd_sift_decode(const uint8_t *buf, size_t len, struct qkd_sift_det *d, const char **err)
{
	uint64_t slots, n;
	ssize_t used;
	size_t mlen;

	memset(d, 0, sizeof(*d));
	if (len < 16) {
		*err = "detection announcement shorter than its header";
		return -EBADMSG;
	}
	slots = get_le64(buf);
	n = get_le64(buf + 8);
	/* Each position takes at least one byte: bounds n before allocating. */
	if (n > slots || n > len - 16) {
		*err = "detection announcement claims more detections than it holds";
		return -EBADMSG;
	}
	if (det_alloc(d, n)) {
		*err = "out of memory";
		return -ENOMEM;
	}
	d->slots = slots;
	d->n = n;
	used = qkd_poslist_decode(buf + 16, len - 16, n, slots, d->pos);
	if (used < 0) {
		*err = "detection positions malformed, unordered or out of range";
		goto bad;
	}
	mlen = qkd_sift_mask_len(n);
	if (len - 16 - (size_t)used != mlen) {
		*err = "detection announcement has the wrong length";
		goto bad;
	}
	memcpy(d->basis, buf + 16 + used, mlen);
	if ((n & 7) && (d->basis[mlen - 1] >> (n & 7))) {
		*err = "detection announcement has padding bits set";
		goto bad;
	}
	return 0;
bad:
	qkd_sift_det_free(d);
	return -EBADMSG;
}

int64_t qkd_sift_match(const uint8_t *alice_raw, uint64_t slots, const struct qkd_sift_det *d,
		       uint8_t *mask, const char **err)
{
	size_t mlen = qkd_sift_mask_len(d->n);
	struct bit_writer bw = { .p = mask };
	int64_t matches = 0;

	if (slots != d->slots) {
		*err = "peer's raw frame has a different number of slots";
		return -EPROTO;
	}
	/* Branch-free: Alice's bases at 64 detections, compared with Bob's word-wise. */
	for (uint64_t j = 0; j < d->n; j += 64) {
		unsigned cnt = d->n - j < 64 ? (unsigned)(d->n - j) : 64;
		const uint64_t *pos = d->pos + j;
		uint64_t a = 0, b, eq;

		for (unsigned k = 0; k < cnt; k++)
			a |= (uint64_t)((alice_raw[pos[k]] >> 1) & 1) << k;
		b = get_le_partial(d->basis + j / 8, mlen - j / 8);
		eq = ~(a ^ b);
		if (cnt < 64)
			eq &= (1ull << cnt) - 1;
		matches += (int64_t)popcount64(eq);
		bw_put(&bw, eq, cnt);
	}
	bw_finish(&bw);
	return matches;
}

int qkd_sift_check_mask(const struct qkd_sift_det *d, const uint8_t *mask, size_t len,
			const char **err)
{
	size_t want = qkd_sift_mask_len(d->n);

	if (len != want) {
		*err = "match mask has the wrong length";
		return -EBADMSG;
	}
	if ((d->n & 7) && (mask[want - 1] >> (d->n & 7))) {
		*err = "match mask has padding bits set";
		return -EBADMSG;
	}
	return 0;
}

uint64_t qkd_sift_keep(const uint8_t *raw, const struct qkd_sift_det *d, const uint8_t *mask,
		       uint8_t *out)
{
	size_t mlen = qkd_sift_mask_len(d->n), outlen = qkd_bits_to_bytes(d->n);
	struct bit_writer bw = { .p = out };
	uint64_t k = 0;

	/* Matched detections only, 64 mask bits at a time. */
	for (uint64_t j = 0; j < d->n; j += 64) {
		uint64_t mw = get_le_partial(mask + j / 8, mlen - j / 8), v = 0;
		const uint64_t *pos = d->pos + j;
		unsigned c = 0;

		if (d->n - j < 64)
			mw &= (1ull << (d->n - j)) - 1;
		while (mw) {
			unsigned b = (unsigned)__builtin_ctzll(mw);

			v |= (uint64_t)(raw[pos[b]] & QKD_RAW_VALUE) << c;
			c++;
			mw &= mw - 1;
		}
		bw_put(&bw, v, c);
		k += c;
	}
	bw_finish(&bw);
	/* Padding cleared, as promised: everything after the last key bit. */
	if ((k + 7) / 8 < outlen)
		memset(out + (k + 7) / 8, 0, outlen - (k + 7) / 8);
	return k;
}
