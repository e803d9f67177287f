// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the peer messages of sifting and estimation, which a
 * module decodes before the block's authentication is checked: Bob's
 * detection announcement (then matched against a raw frame made from the
 * input), the match mask, Alice's sample message, and bare position lists.
 * Every accepted message must re-encode to exactly the same bytes, and no
 * input may read out of bounds, leak or crash.
 */
#include <stdlib.h>
#include <string.h>

#include "qkd/estimate.h"
#include "qkd/frame.h"
#include "qkd/poslist.h"
#include "qkd/sift.h"

static void announcement(const uint8_t *d, size_t n)
{
	struct qkd_sift_det det;
	const char *err = NULL;
	uint8_t *enc, *mask, *key;
	size_t len;

	if (qkd_sift_decode(d, n, &det, &err)) {
		if (!err)
			abort();
		return;
	}
	if (qkd_sift_encode(&det, &enc, &len) || len != n || memcmp(enc, d, n))
		abort(); /* canonical: one encoding per announcement */
	free(enc);
	/* Match against a raw frame of the announced length when it is small. */
	if (det.slots <= (1u << 16)) {
		uint8_t *raw = calloc(1, det.slots + 1);

		for (uint64_t i = 0; i < det.slots; i++)
			raw[i] = d[i % n];
		mask = malloc(qkd_sift_mask_len(det.n) + 1);
		key = malloc(qkd_bits_to_bytes(det.n) + 8);
		if (qkd_sift_match(raw, det.slots, &det, mask, &err) < 0 ||
		    qkd_sift_check_mask(&det, mask, qkd_sift_mask_len(det.n), &err))
			abort();
		if (qkd_sift_keep(raw, &det, mask, key) > det.n)
			abort();
		free(key);
		free(mask);
		free(raw);
	}
	qkd_sift_det_free(&det);
}

static void sample(const uint8_t *d, size_t n)
{
	uint64_t *pos, m, blk;
	uint8_t *bits, *enc, *key;
	const char *err = NULL;
	size_t len;

	if (n < 8)
		return;
	/* The block length the receiver expects comes from the message itself. */
	memcpy(&blk, d, 8);
	blk = le64toh(blk);
	if (qkd_est_decode_sample(d, n, blk, &pos, &m, &bits, &err))
		return;
	if (blk <= (1u << 20)) {
		/* Re-encode from a key that has the decoded bits at the positions. */
		key = calloc(1, qkd_bits_to_bytes(blk) + 8);
		for (uint64_t j = 0; j < m; j++)
			qkd_bit_set(key, pos[j], qkd_bit_get(bits, j));
		if (qkd_est_encode_sample(blk, pos, m, key, &enc, &len) || len != n ||
		    memcmp(enc, d, n))
			abort();
		free(enc);
		free(key);
	}
	free(pos);
	free(bits);
}

static void poslist(const uint8_t *d, size_t n)
{
	uint64_t pos[64], limit = 1ull << (d[0] & 63);
	uint8_t enc[640];
	ssize_t used;
	size_t cnt = d[1] % 64;

	used = qkd_poslist_decode(d + 2, n - 2, cnt, limit, pos);
	if (used < 0)
		return;
	for (size_t i = 0; i < cnt; i++)
		if (pos[i] >= limit || (i && pos[i] <= pos[i - 1]))
			abort();
	if (qkd_poslist_encode(pos, cnt, enc) != (size_t)used || memcmp(enc, d + 2, (size_t)used))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *d;

	if (size < 3)
		return 0;
	/* An exact-size copy so that ASan catches any read past the end. */
	d = malloc(size - 1);
	memcpy(d, data + 1, size - 1);
	switch (data[0] % 3) {
	case 0: announcement(d, size - 1); break;
	case 1: sample(d, size - 1); break;
	default: poslist(d, size - 1); break;
	}
	free(d);
	return 0;
}
