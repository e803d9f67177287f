// SPDX-License-Identifier: GPL-2.0
/*
 * BB84 sifting core (protocol in qkd/sift.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
	uint64_t n = 0, j = 0;

	memset(d, 0, sizeof(*d));
	for (uint64_t i = 0; i < slots; i++)
		n += (raw[i] & QKD_RAW_DETECTED) != 0;
	if (det_alloc(d, n))
		return -ENOMEM;
	d->slots = slots;
	d->n = n;
	for (uint64_t i = 0; i < slots; i++) {
		if (!(raw[i] & QKD_RAW_DETECTED))
			continue;
		d->pos[j] = i;
		if (raw[i] & QKD_RAW_BASIS)
			d->basis[j >> 3] |= (uint8_t)(1u << (j & 7));
		d->multi += (raw[i] & QKD_RAW_MULTI) != 0;
		j++;
	}
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
	int64_t matches = 0;

	if (slots != d->slots) {
		*err = "peer's raw frame has a different number of slots";
		return -EPROTO;
	}
	memset(mask, 0, qkd_sift_mask_len(d->n));
	for (uint64_t j = 0; j < d->n; j++) {
		unsigned a = (alice_raw[d->pos[j]] & QKD_RAW_BASIS) != 0;
		unsigned b = qkd_bit_get(d->basis, j);

		if (a == b) {
			mask[j >> 3] |= (uint8_t)(1u << (j & 7));
			matches++;
		}
	}
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
	uint64_t k = 0;

	memset(out, 0, qkd_bits_to_bytes(d->n));
	for (uint64_t j = 0; j < d->n; j++) {
		if (!qkd_bit_get(mask, j))
			continue;
		if (raw[d->pos[j]] & QKD_RAW_VALUE)
			out[k >> 3] |= (uint8_t)(1u << (k & 7));
		k++;
	}
	return k;
}
