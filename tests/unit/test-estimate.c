// SPDX-License-Identifier: GPL-2.0
/*
 * QBER estimation core: the sample is a uniform subset, the wire format
 * round-trips and refuses malformed input, sampled bits are removed, and the
 * estimate lies within its Hoeffding bound of the block's true error rate on
 * every one of many simulated and sifted frames.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "qkd/bb84sim.h"
#include "qkd/estimate.h"
#include "qkd/frame.h"
#include "qkd/poslist.h"
#include "qkd/sift.h"

TEST(sample_size)
{
	ASSERT_EQ(100u, qkd_est_sample_size(1000, 0.1, 0));
	ASSERT_EQ(101u, qkd_est_sample_size(1001, 0.1, 0));
	ASSERT_EQ(500u, qkd_est_sample_size(1000, 0.1, 500));
	ASSERT_EQ(1000u, qkd_est_sample_size(1000, 0.1, 5000));
	ASSERT_EQ(1000u, qkd_est_sample_size(1000, 1.0, 0));
	ASSERT_EQ(0u, qkd_est_sample_size(0, 0.5, 10));
}

TEST(choice_is_sorted_distinct_and_uniform)
{
	enum { N = 64, M = 8, T = 20000 };
	unsigned hits[N] = { 0 };
	uint64_t pos[M];
	double expect = (double)T * M / N, sd = sqrt(expect * (1 - (double)M / N));

	for (int t = 0; t < T; t++) {
		ASSERT_EQ(0, qkd_est_choose(N, M, pos));
		for (int j = 0; j < M; j++) {
			ASSERT_LT(pos[j], (uint64_t)N);
			if (j)
				ASSERT_LT(pos[j - 1], pos[j]);
			hits[pos[j]]++;
		}
	}
	for (int i = 0; i < N; i++)
		ASSERT_LT(fabs(hits[i] - expect), 6 * sd);
	ASSERT_EQ(-EINVAL, qkd_est_choose(4, 5, pos));
	ASSERT_EQ(0, qkd_est_choose(M, M, pos));
	for (int j = 0; j < M; j++)
		ASSERT_EQ((uint64_t)j, pos[j]);
}

TEST(sample_message_round_trip_and_removal)
{
	uint8_t key[128], rest[136], *msg, *bits;
	uint64_t pos[100], *dpos, m;
	const uint64_t n = 1000;
	const char *err = NULL;
	size_t len;

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 37 + 11);
	ASSERT_EQ(0, qkd_est_choose(n, 100, pos));
	ASSERT_EQ(0, qkd_est_encode_sample(n, pos, 100, key, &msg, &len));
	ASSERT_EQ(0, qkd_est_decode_sample(msg, len, n, &dpos, &m, &bits, &err));
	ASSERT_EQ(100u, m);
	ASSERT_EQ(0, memcmp(pos, dpos, sizeof(pos)));
	for (uint64_t j = 0; j < m; j++)
		ASSERT_EQ(qkd_bit_get(key, pos[j]), qkd_bit_get(bits, j));
	ASSERT_EQ(900u, qkd_pos_remove(key, n, pos, m, rest));
	for (uint64_t i = 0, j = 0, k = 0; i < n; i++) {
		if (j < m && pos[j] == i) {
			j++;
			continue;
		}
		ASSERT_EQ(qkd_bit_get(key, i), qkd_bit_get(rest, k));
		k++;
	}
	free(dpos);
	free(bits);

	/* Wrong block length is a protocol error; every truncation is refused. */
	ASSERT_EQ(-EPROTO, qkd_est_decode_sample(msg, len, n + 1, &dpos, &m, &bits, &err));
	for (size_t l = 0; l < len; l++)
		ASSERT_NE(0, qkd_est_decode_sample(msg, l, n, &dpos, &m, &bits, &err));
	ASSERT_EQ(-EBADMSG, qkd_est_decode_sample(msg, len + 1, n, &dpos, &m, &bits, &err));
	msg[8] = 0xe9; /* m = 1001 > n */
	msg[9] = 0x03;
	ASSERT_EQ(-EBADMSG, qkd_est_decode_sample(msg, len, n, &dpos, &m, &bits, &err));
	free(msg);
}

/*
 * Over 200 sifted frames at several QBERs, the sample error rate is within
 * the Hoeffding deviation at delta = 1e-6 of the block's true error rate
 * (probability that any frame fails: <= 2e-4), and the average estimate is
 * within a much tighter bound of the average true rate, so a biased
 * estimator would fail too.
 */
TEST(estimate_within_hoeffding_bound)
{
	const double qbers[] = { 0.01, 0.03, 0.06, 0.10 };
	const uint64_t slots = 100000;
	uint8_t *a = malloc(slots), *b = malloc(slots);
	unsigned frames = 0;

	for (unsigned q = 0; q < 4; q++) {
		double sum_est = 0, sum_true = 0, sum_m = 0;

		for (unsigned k = 0; k < 50; k++) {
			struct qkd_sim_params p = { .seed = 4242 + q, .mu = 0.5, .eta = 0.5,
						    .misalign = qbers[q], .dark = 1e-6 };
			struct qkd_sim_truth t;
			struct qkd_sift_det d;
			uint8_t *mask, *ka, *kb, *sa, *sb;
			uint64_t n, m, *pos;
			double est, truth, dev;
			const char *err;

			qkd_sim_frame(&p, k, slots, a, b, &t);
			ASSERT_EQ(0, qkd_sift_detections(b, slots, &d));
			mask = malloc(qkd_sift_mask_len(d.n) + 1);
			ASSERT_LE(0, qkd_sift_match(a, slots, &d, mask, &err));
			ka = malloc(qkd_bits_to_bytes(d.n) + 8);
			kb = malloc(qkd_bits_to_bytes(d.n) + 8);
			n = qkd_sift_keep(a, &d, mask, ka);
			ASSERT_EQ(n, qkd_sift_keep(b, &d, mask, kb));
			ASSERT_EQ(t.sifted, n);
			m = qkd_est_sample_size(n, 0.1, 200);
			pos = malloc(m * sizeof(*pos));
			sa = malloc(m / 8 + 1);
			sb = malloc(m / 8 + 1);
			ASSERT_EQ(0, qkd_est_choose(n, m, pos));
			qkd_pos_gather(ka, pos, m, sa);
			qkd_pos_gather(kb, pos, m, sb);
			est = (double)qkd_bits_hamming(sa, sb, m) / m;
			truth = (double)t.errors / n;
			dev = qkd_est_hoeffding(m, 1e-6);
			EXPECT_LE(fabs(est - truth), dev)
				TH_LOG("q=%.2f frame %u: est %.5f true %.5f m %lu dev %.5f",
				       qbers[q], k, est, truth, (unsigned long)m, dev);
			sum_est += est * m;
			sum_true += truth * m;
			sum_m += m;
			frames++;
			free(pos); free(sa); free(sb); free(ka); free(kb); free(mask);
			qkd_sift_det_free(&d);
		}
		/* Pooled over 50 frames: within the pooled Hoeffding bound. */
		ASSERT_LT(fabs(sum_est - sum_true) / sum_m,
			  sqrt(log(2 / 1e-6) / (2 * sum_m)));
		ASSERT_LT(fabs(sum_true / sum_m - qbers[q]), 0.01);
	}
	ASSERT_EQ(200u, frames);
	free(a);
	free(b);
}

TEST(hoeffding_bound_values)
{
	/* ln(2/0.05) / 2000 = 0.0018444..., sqrt = 0.042947 */
	ASSERT_LT(fabs(qkd_est_hoeffding(1000, 0.05) - 0.042947), 1e-5);
	ASSERT_EQ(1.0, qkd_est_hoeffding(0, 0.05));
}

TEST_HARNESS_MAIN
