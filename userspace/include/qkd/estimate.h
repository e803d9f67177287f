/* SPDX-License-Identifier: GPL-2.0 */
/*
 * QBER estimation core (the qkd-estimate module drives it over the peer
 * channel).
 *
 *   Alice: m = sample size; m distinct positions drawn uniformly with
 *          qkd_random(); sends  u64 n, u64 m (little-endian), the positions
 *          as LEB128 gaps, her m sample bits packed.
 *   Bob:   checks it, answers with his m sample bits packed.
 *   both:  errors = Hamming distance of the two samples, QBER = errors / m,
 *          and the sampled bits are removed from the key: they are public now.
 *
 * Since the sample is a uniformly random subset drawn without replacement,
 * Hoeffding's inequality holds for it (Hoeffding 1963, section 6): with
 * probability at least 1 - delta the sample error rate lies within
 * sqrt(ln(2 / delta) / (2 m)) of the error rate of the whole sifted block.
 */
#ifndef QKD_ESTIMATE_H
#define QKD_ESTIMATE_H

#include <stddef.h>
#include <stdint.h>

/* max(min_sample, ceil(ratio * n)), but at most n. */
uint64_t qkd_est_sample_size(uint64_t n, double ratio, uint64_t min_sample);
/* m distinct positions < n, uniform, from qkd_random(), written sorted. 0 or -EINVAL/-ENOMEM. */
int qkd_est_choose(uint64_t n, uint64_t m, uint64_t *pos);

/* Alice's sample message: positions and her bits at them, malloc'd. */
int qkd_est_encode_sample(uint64_t n, const uint64_t *pos, uint64_t m, const uint8_t *key,
			  uint8_t **buf, size_t *len);
/*
 * Bob: decode Alice's sample message for a block of n bits. On success *pos
 * (m entries) and *bits (ceil(m / 8) bytes) are malloc'd. -EBADMSG with *err
 * for anything malformed, -EPROTO if the block length differs from n.
 */
int qkd_est_decode_sample(const uint8_t *buf, size_t len, uint64_t n, uint64_t **pos,
			  uint64_t *m, uint8_t **bits, const char **err);

/* Two-sided Hoeffding deviation for m samples at failure probability delta. */
double qkd_est_hoeffding(uint64_t m, double delta);

#endif
