// SPDX-License-Identifier: GPL-2.0
/*
 * Key confirmation core: planning the tags for eps_cor, computing them with
 * the GF(2^128) polynomial hash of qkd/mac.h, comparing in constant time, and
 * Alice's wire message (format and security argument in qkd/confirm.h).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/confirm.h"
#include "qkd/mac.h"
#include "qkd/module.h"

#define HDR_LEN 16

int qkd_confirm_plan(uint64_t nbits, double eps_cor, struct qkd_confirm_plan *p)
{
	if (!nbits || !(eps_cor > 0 && eps_cor < 1))
		return -EINVAL;
	uint64_t blocks = (nbits + 127) / 128;
	double per_hash = log2((double)blocks + 1), secure = -log2(eps_cor);

	memset(p, 0, sizeof(*p));
	for (unsigned r = 1; r <= QKD_CONFIRM_MAX_HASHES; r++) {
		double need = secure + r * per_hash;
		uint64_t total = (uint64_t)ceil(need);

		if (total > 128ull * r)
			continue;
		/* even split; every hash must itself be below collision probability 1 */
		unsigned base = (unsigned)(total / r), extra = (unsigned)(total % r);

		if (base < 1 || (double)base < per_hash)
			continue;
		p->hashes = r;
		p->total_bits = total;
		for (unsigned i = 0; i < r; i++)
			p->tag_bits[i] = base + (i < extra);
		return 0;
	}
	return -EINVAL;
}

bool qkd_confirm_plan_equal(const struct qkd_confirm_plan *a, const struct qkd_confirm_plan *b)
{
	if (a->hashes != b->hashes || a->total_bits != b->total_bits)
		return false;
	for (unsigned i = 0; i < a->hashes; i++)
		if (a->tag_bits[i] != b->tag_bits[i])
			return false;
	return true;
}

void qkd_confirm_new_keys(const struct qkd_confirm_plan *p, struct qkd_confirm_tag *t)
{
	memset(t, 0, sizeof(*t));
	qkd_random(t->key, (size_t)p->hashes * 16);
}

static void truncate_tag(uint8_t tag[16], unsigned bits)
{
	for (unsigned b = 0; b < 16; b++) {
		if (8 * b >= bits)
			tag[b] = 0;
		else if (8 * b + 8 > bits)
			tag[b] &= (uint8_t)((1u << (bits - 8 * b)) - 1);
	}
}

void qkd_confirm_compute(const struct qkd_confirm_plan *p, const uint8_t *key, uint64_t nbits,
			 struct qkd_confirm_tag *t)
{
	size_t full = (size_t)(nbits / 8);
	uint8_t last = nbits % 8 ? (uint8_t)(key[full] & ((1u << (nbits % 8)) - 1)) : 0;

	for (unsigned i = 0; i < p->hashes; i++) {
		struct qkd_polyhash h;

		qkd_polyhash_init(&h, t->key[i]);
		qkd_polyhash_update(&h, key, full);
		if (nbits % 8)
			qkd_polyhash_update(&h, &last, 1);
		qkd_polyhash_final(&h, t->tag[i]);
		truncate_tag(t->tag[i], p->tag_bits[i]);
	}
	for (unsigned i = p->hashes; i < QKD_CONFIRM_MAX_HASHES; i++)
		memset(t->tag[i], 0, 16);
	explicit_bzero(&last, sizeof(last));
}

bool qkd_confirm_equal(const struct qkd_confirm_plan *p, const struct qkd_confirm_tag *a,
		       const struct qkd_confirm_tag *b)
{
	volatile uint8_t diff = 0;

	for (unsigned i = 0; i < p->hashes; i++)
		for (unsigned j = 0; j < 16; j++)
			diff |= a->tag[i][j] ^ b->tag[i][j];
	return diff == 0;
}

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

int qkd_confirm_encode(const struct qkd_confirm_plan *p, uint64_t nbits,
		       const struct qkd_confirm_tag *t, uint8_t **buf, size_t *len)
{
	size_t n = HDR_LEN;

	for (unsigned i = 0; i < p->hashes; i++)
		n += 1 + 16 + (p->tag_bits[i] + 7) / 8;
	uint8_t *b = calloc(1, n), *q = b + HDR_LEN;

	if (!b)
		return -ENOMEM;
	b[0] = QKD_CONFIRM_VERSION;
	b[1] = (uint8_t)p->hashes;
	put_le64(b + 8, nbits);
	for (unsigned i = 0; i < p->hashes; i++) {
		unsigned tb = (p->tag_bits[i] + 7) / 8;

		*q++ = (uint8_t)(p->tag_bits[i] == 128 ? 0 : p->tag_bits[i]);
		memcpy(q, t->key[i], 16);
		q += 16;
		memcpy(q, t->tag[i], tb);
		q += tb;
	}
	*buf = b;
	*len = n;
	return 0;
}

int qkd_confirm_decode(const uint8_t *buf, size_t len, struct qkd_confirm_plan *p,
		       uint64_t *nbits, struct qkd_confirm_tag *t, const char **err)
{
	const char *why = NULL;
	size_t off = HDR_LEN;

	memset(p, 0, sizeof(*p));
	memset(t, 0, sizeof(*t));
	if (len < HDR_LEN)
		why = "confirmation message shorter than its header";
	else if (buf[0] != QKD_CONFIRM_VERSION)
		why = "unknown confirmation message version";
	else if (buf[1] < 1 || buf[1] > QKD_CONFIRM_MAX_HASHES)
		why = "hash count out of range";
	else if (buf[2] | buf[3] | buf[4] | buf[5] | buf[6] | buf[7])
		why = "reserved header bytes not zero";
	else if (!(*nbits = get_le64(buf + 8)))
		why = "empty key block";
	for (unsigned i = 0; !why && i < buf[1]; i++) {
		if (len - off < 17) {
			why = "confirmation message truncated";
			break;
		}
		unsigned bits = buf[off] ? buf[off] : 128, tb = (bits + 7) / 8;

		if (buf[off] >= 128) {
			/* 128 is written as 0: one encoding per message */
			why = "confirmation tag bit count out of range";
			break;
		}
		if (len - off - 17 < tb) {
			why = "confirmation tag truncated";
			break;
		}
		memcpy(t->key[i], buf + off + 1, 16);
		memcpy(t->tag[i], buf + off + 17, tb);
		if (bits % 8 && (t->tag[i][tb - 1] >> (bits % 8))) {
			why = "confirmation tag padding bits not zero";
			break;
		}
		p->tag_bits[i] = bits;
		p->total_bits += bits;
		off += 17 + tb;
	}
	if (!why && off != len)
		why = "trailing bytes after the confirmation tags";
	if (why) {
		explicit_bzero(t, sizeof(*t));
		memset(p, 0, sizeof(*p));
		if (err)
			*err = why;
		return -EBADMSG;
	}
	p->hashes = buf[1];
	return 0;
}
