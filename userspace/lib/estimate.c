// SPDX-License-Identifier: GPL-2.0
/*
 * QBER estimation core (protocol in qkd/estimate.h).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/estimate.h"
#include "qkd/frame.h"
#include "qkd/module.h"
#include "qkd/poslist.h"

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

uint64_t qkd_est_sample_size(uint64_t n, double ratio, uint64_t min_sample)
{
	double want = ceil(ratio * (double)n);
	uint64_t m = want >= (double)n ? n : (uint64_t)want;

	if (m < min_sample)
		m = min_sample;
	return m > n ? n : m;
}

/* Buffered getrandom(): one syscall per 2 KiB instead of one per draw. */
struct rnd {
	uint64_t w[256];
	unsigned left;
};

static uint64_t rnd_next(struct rnd *r)
{
	if (!r->left) {
		qkd_random(r->w, sizeof(r->w));
		r->left = 256;
	}
	return r->w[--r->left];
}

/* Uniform in [0, bound), unbiased (Lemire's multiply-and-reject). */
static uint64_t rnd_below(struct rnd *r, uint64_t bound)
{
	__uint128_t x = (__uint128_t)rnd_next(r) * bound;
	uint64_t lo = (uint64_t)x;

	if (lo < bound) {
		uint64_t t = -bound % bound;

		while (lo < t) {
			x = (__uint128_t)rnd_next(r) * bound;
			lo = (uint64_t)x;
		}
	}
	return (uint64_t)(x >> 64);
}

int qkd_est_choose(uint64_t n, uint64_t m, uint64_t *pos)
{
	uint64_t *map, k = 0;
	struct rnd r = { .left = 0 };

	if (m > n)
		return -EINVAL;
	map = calloc((size_t)(n / 64 + 1), sizeof(uint64_t));
	if (!map)
		return -ENOMEM;
	/* Floyd's algorithm: every m-subset equally likely, m draws. */
	for (uint64_t j = n - m; j < n; j++) {
		uint64_t t = rnd_below(&r, j + 1);

		if (map[t / 64] & (1ull << (t % 64)))
			t = j;
		map[t / 64] |= 1ull << (t % 64);
	}
	for (uint64_t w = 0; w <= n / 64; w++) {
		uint64_t bits = map[w];

		while (bits) {
			pos[k++] = w * 64 + (uint64_t)__builtin_ctzll(bits);
			bits &= bits - 1;
		}
	}
	free(map);
	/* The positions themselves become public; the generator state is not. */
	explicit_bzero(&r, sizeof(r));
	return 0;
}

int qkd_est_encode_sample(uint64_t n, const uint64_t *pos, uint64_t m, const uint8_t *key,
			  uint8_t **buf, size_t *len)
{
	size_t blen = (size_t)((m + 7) / 8), off;
	uint8_t *b = malloc(16 + qkd_poslist_max_len(m) + blen + 1);

	if (!b)
		return -ENOMEM;
	put_le64(b, n);
	put_le64(b + 8, m);
	off = 16 + qkd_poslist_encode(pos, m, b + 16);
	qkd_pos_gather(key, pos, m, b + off);
	*buf = b;
	*len = off + blen;
	return 0;
}

int qkd_est_decode_sample(const uint8_t *buf, size_t len, uint64_t n, uint64_t **pos,
			  uint64_t *m, uint8_t **bits, const char **err)
{
	uint64_t mm;
	ssize_t used;
	size_t blen;

	*pos = NULL;
	*bits = NULL;
	if (len < 16) {
		*err = "sample message shorter than its header";
		return -EBADMSG;
	}
	if (get_le64(buf) != n) {
		*err = "peer's sifted block has a different length";
		return -EPROTO;
	}
	mm = get_le64(buf + 8);
	if (mm > n || mm > len - 16) {
		*err = "sample larger than the block or the message";
		return -EBADMSG;
	}
	*pos = malloc((size_t)(mm ? mm : 1) * sizeof(uint64_t));
	if (!*pos) {
		*err = "out of memory";
		return -ENOMEM;
	}
	used = qkd_poslist_decode(buf + 16, len - 16, mm, n, *pos);
	blen = (size_t)((mm + 7) / 8);
	if (used < 0 || len - 16 - (size_t)used != blen) {
		*err = used < 0 ? "sample positions malformed, unordered or out of range"
				: "sample message has the wrong length";
		goto bad;
	}
	if ((mm & 7) && (buf[len - 1] >> (mm & 7))) {
		*err = "sample bits have padding bits set";
		goto bad;
	}
	*bits = malloc(blen + 1);
	if (!*bits) {
		*err = "out of memory";
		free(*pos);
		*pos = NULL;
		return -ENOMEM;
	}
	memcpy(*bits, buf + 16 + used, blen);
	*m = mm;
	return 0;
bad:
	free(*pos);
	*pos = NULL;
	return -EBADMSG;
}

double qkd_est_hoeffding(uint64_t m, double delta)
{
	if (!m)
		return 1.0;
	return sqrt(log(2.0 / delta) / (2.0 * (double)m));
}
