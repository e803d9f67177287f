// SPDX-License-Identifier: GPL-2.0
/*
 * Cascade, Alice's half: a parity oracle. She answers the parities of the
 * blocks and sub-blocks Bob names and counts every bit she sends. Everything
 * in a request is checked against the frame before it is used: a malformed,
 * truncated or out-of-range request is refused with -EBADMSG.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cascade-internal.h"
#include "qkd/frame.h"

struct cascade_alice {
	struct cascade_session *sess;
	struct cascade_perm_set *ps;
	const uint64_t *key;
	uint64_t n;
	unsigned passes;
	uint32_t k[CASCADE_MAX_PASSES];
	uint64_t nb[CASCADE_MAX_PASSES];
	uint64_t *copy[CASCADE_MAX_PASSES]; /* permuted key of pass p (p >= 1), lazy */
	const struct cascade_perm *mp[CASCADE_MAX_PASSES]; /* two-block passes */
	bool started, finished;
	uint64_t disclosed, corrected, rounds;
	uint8_t *out;
	size_t out_cap;
};

struct cascade_alice *cascade_alice_new(struct cascade_session *s, const uint8_t *key, uint64_t n)
{
	struct cascade_alice *a;

	if (!s || !key || !n || n > CASCADE_MAX_BITS || ((uintptr_t)key & 7)) {
		errno = EINVAL;
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->ps = cascade_perm_get(s, n);
	if (!a->ps) {
		free(a);
		errno = ENOMEM;
		return NULL;
	}
	a->sess = s;
	a->key = (const uint64_t *)(const void *)key;
	a->n = n;
	return a;
}

void cascade_alice_free(struct cascade_alice *a)
{
	if (!a)
		return;
	for (unsigned p = 0; p < CASCADE_MAX_PASSES; p++) {
		if (a->copy[p]) {
			explicit_bzero(a->copy[p], cascade_words(a->n) * 8);
			free(a->copy[p]);
		}
	}
	if (a->out) {
		explicit_bzero(a->out, a->out_cap);
		free(a->out);
	}
	cascade_perm_put(a->sess, a->ps);
	free(a);
}

void cascade_alice_result(const struct cascade_alice *a, struct cascade_result *r)
{
	memset(r, 0, sizeof(*r));
	r->done = a->finished;
	r->ok = a->finished && a->started;
	r->n = a->n;
	r->disclosed = a->disclosed;
	r->corrected = a->corrected;
	r->rounds = a->rounds;
	r->passes = a->passes;
	r->efficiency = cascade_efficiency(a->disclosed, a->n, a->corrected);
}

static int reserve(struct cascade_alice *a, size_t need)
{
	uint8_t *p;
	size_t cap;

	if (need <= a->out_cap)
		return 0;
	cap = need < 4096 ? 4096 : need * 2;
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	if (a->out) {
		explicit_bzero(a->out, a->out_cap);
		free(a->out);
	}
	a->out = p;
	a->out_cap = cap;
	return 0;
}

/* The permuted key of pass p, built on first use. */
static const uint64_t *pass_bits(struct cascade_alice *a, unsigned p)
{
	const struct cascade_perm *pm;

	if (p == 0)
		return a->key;
	if (a->copy[p])
		return a->copy[p];
	pm = cascade_perm_pass(a->ps, a->sess->seed, p);
	if (!pm)
		return NULL;
	a->copy[p] = malloc(cascade_words(a->n) * 8);
	if (!a->copy[p])
		return NULL;
	cascade_gather(a->copy[p], a->key, pm->fwd, a->n);
	return a->copy[p];
}

static inline void put_bit(uint8_t *bits, uint64_t i, unsigned v)
{
	bits[i >> 3] |= (uint8_t)(v << (i & 7));
}

static int handle_start(struct cascade_alice *a, const uint8_t *q, size_t len)
{
	uint64_t v, total = 0, bit = 0, nw = cascade_words(a->n);
	size_t off = 0, r;
	uint8_t *bits;

	if (a->started || len < 1 || q[off++] != CASCADE_WIRE_VERSION)
		return -EBADMSG;
	r = cascade_get_varint(q + off, len - off, &v);
	if (!r || v != a->n)
		return -EBADMSG;
	off += r;
	r = cascade_get_varint(q + off, len - off, &v);
	if (!r || v == 0 || v > CASCADE_MAX_PASSES)
		return -EBADMSG;
	off += r;
	a->passes = (unsigned)v;
	for (unsigned p = 0; p < a->passes; p++) {
		r = cascade_get_varint(q + off, len - off, &v);
		if (!r || v == 0 || v > a->n)
			return -EBADMSG;
		off += r;
		a->k[p] = (uint32_t)v;
		a->nb[p] = (a->n + v - 1) / v;
		/* Pass 0 sends every block, later passes all but the last. */
		total += p ? a->nb[p] - 1 : a->nb[p];
	}
	if (off != len)
		return -EBADMSG;
	if (reserve(a, 1 + (total + 7) / 8))
		return -ENOMEM;
	a->out[0] = CASCADE_OP_START;
	bits = a->out + 1;
	memset(bits, 0, (total + 7) / 8);
	for (unsigned p = 0; p < a->passes; p++) {
		uint64_t k = a->k[p], nb = a->nb[p];

		if (p && nb <= 2) {
			const uint64_t *m;

			m = cascade_perm_half_mask(a->ps, a->sess->seed, p, k);
			if (!m)
				return -ENOMEM;
			a->mp[p] = &a->ps->perm[p];
			if (nb == 2)
				put_bit(bits, bit++, cascade_masked_parity(a->key, m, nw));
			continue;
		}
		const uint64_t *w = pass_bits(a, p);

		if (!w)
			return -ENOMEM;
		for (uint64_t b = 0; b < nb - (p ? 1 : 0); b++) {
			uint64_t s = b * k, l = s + k <= a->n ? k : a->n - s;
			put_bit(bits, bit++, cascade_range_parity(w, s, l));
		}
	}
	a->started = true;
	a->disclosed += total;
	return (int)(1 + (total + 7) / 8);
}

static int handle_query(struct cascade_alice *a, const uint8_t *q, size_t len)
{
	uint64_t count, pass, blk, node;
	size_t off = 0, r;
	uint8_t *bits;

	if (!a->started)
		return -EBADMSG;
	r = cascade_get_varint(q, len, &count);
	if (!r || count == 0 || count > len) /* every entry takes >= 3 bytes */
		return -EBADMSG;
	off += r;
	if (reserve(a, 1 + (count + 7) / 8))
		return -ENOMEM;
	a->out[0] = CASCADE_OP_QUERY;
	bits = a->out + 1;
	memset(bits, 0, (count + 7) / 8);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t s, l;
		const uint64_t *w;

		r = cascade_get_varint(q + off, len - off, &pass);
		if (!r || pass >= a->passes)
			return -EBADMSG;
		off += r;
		r = cascade_get_varint(q + off, len - off, &blk);
		if (!r || blk >= a->nb[pass])
			return -EBADMSG;
		off += r;
		r = cascade_get_varint(q + off, len - off, &node);
		/* Node 1 is the block itself: its parity was sent in START. */
		if (!r || node < 2 || node >= (1ull << 40))
			return -EBADMSG;
		off += r;
		s = blk * a->k[pass];
		l = s + a->k[pass] <= a->n ? a->k[pass] : a->n - s;
		if (cascade_node_range(node, &s, &l))
			return -EBADMSG;
		if (a->mp[pass]) {
			const struct cascade_perm *mp = a->mp[pass];
			uint64_t r = s - blk * a->k[pass];

			put_bit(bits, i, cascade_mask_parity(a->key, mp->half_mask, (unsigned)blk,
							     cascade_mask_select(mp, a->n, (unsigned)blk, r),
							     cascade_mask_select(mp, a->n, (unsigned)blk,
										 r + l - 1)));
			continue;
		}
		w = pass_bits(a, (unsigned)pass);
		if (!w)
			return -ENOMEM;
		put_bit(bits, i, cascade_range_parity(w, s, l));
	}
	if (off != len)
		return -EBADMSG;
	a->disclosed += count;
	a->rounds++;
	return (int)(1 + (count + 7) / 8);
}

int cascade_alice_handle(struct cascade_alice *a, const uint8_t *req, size_t req_len,
			 const uint8_t **out, size_t *len)
{
	uint64_t v;
	int ret;

	if (a->finished || !req || req_len < 1)
		return -EBADMSG;
	switch (req[0]) {
	case CASCADE_OP_START:
		ret = handle_start(a, req + 1, req_len - 1);
		break;
	case CASCADE_OP_QUERY:
		ret = handle_query(a, req + 1, req_len - 1);
		break;
	case CASCADE_OP_DONE:
		if (!a->started || req_len < 2 ||
		    cascade_get_varint(req + 1, req_len - 1, &v) != req_len - 1 || v > a->n)
			return -EBADMSG;
		a->corrected = v;
		a->finished = true;
		return 0;
	case CASCADE_OP_ABORT:
		if (req_len != 1)
			return -EBADMSG;
		a->finished = true;
		a->started = false;
		return -ECANCELED;
	default:
		return -EBADMSG;
	}
	if (ret < 0)
		return ret;
	*out = a->out;
	*len = (size_t)ret;
	return 1;
}
