// SPDX-License-Identifier: GPL-2.0
/*
 * Finite-key output length: values computed independently (Python, double
 * precision) for the Tomamichel et al. bound, its monotonicity in every
 * input, blocks that yield nothing, and refused parameters.
 */
#include <errno.h>
#include <math.h>

#include "kselftest_harness.h"
#include "qkd/finitekey.h"

TEST(binary_entropy)
{
	ASSERT_EQ(0.0, qkd_binary_entropy(0));
	ASSERT_EQ(0.0, qkd_binary_entropy(-0.1));
	ASSERT_EQ(1.0, qkd_binary_entropy(0.5));
	ASSERT_EQ(1.0, qkd_binary_entropy(0.7));
	ASSERT_LT(fabs(qkd_binary_entropy(0.11) - 0.4999159582), 1e-9);
	ASSERT_LT(fabs(qkd_binary_entropy(0.02) - 0.1414405425), 1e-9);
}

TEST(known_lengths)
{
	struct qkd_fk_result r;

	/* n = 10^6, k = 10^5, Q = 2 %, leak 150000, eps_sec 1e-10, eps_cor 1e-12 */
	ASSERT_EQ(0, qkd_fk_length(1000000, 100000, 0.02, 150000, 1e-10, 1e-12, &r));
	ASSERT_LT(fabs(r.mu - 0.016387076723370947), 1e-12);
	ASSERT_LT(fabs(r.bound - 624418.2463257606), 1e-6);
	ASSERT_EQ(624418u, r.length);
	/* n = 2^20, k = 2^16, Q = 5 %, leak 330000, eps_sec 1e-9, eps_cor 1e-15 */
	ASSERT_EQ(0, qkd_fk_length(1u << 20, 1u << 16, 0.05, 330000, 1e-9, 1e-15, &r));
	ASSERT_LT(fabs(r.mu - 0.018932931747472462), 1e-12);
	ASSERT_EQ(338955u, r.length);
	/* small block: mu is large */
	ASSERT_EQ(0, qkd_fk_length(10000, 1000, 0.02, 1500, 1e-10, 1e-12, &r));
	ASSERT_LT(fabs(r.mu - 0.1639518623864534), 1e-12);
	ASSERT_EQ(1506u, r.length);
	ASSERT_LT(fabs(r.penalty - log2(2 / (1e-20 * 1e-12))), 1e-9);
}

TEST(monotone)
{
	struct qkd_fk_result a, b;

	ASSERT_EQ(0, qkd_fk_length(1 << 20, 1 << 16, 0.03, 200000, 1e-10, 1e-12, &a));
	ASSERT_EQ(0, qkd_fk_length(1 << 20, 1 << 16, 0.03, 200001, 1e-10, 1e-12, &b));
	ASSERT_EQ(a.length - 1, b.length);
	ASSERT_EQ(0, qkd_fk_length(1 << 20, 1 << 17, 0.03, 200000, 1e-10, 1e-12, &b));
	ASSERT_LT(b.mu, a.mu);
	ASSERT_GT(b.length, a.length);
	ASSERT_EQ(0, qkd_fk_length(1 << 20, 1 << 16, 0.04, 200000, 1e-10, 1e-12, &b));
	ASSERT_LT(b.length, a.length);
	ASSERT_EQ(0, qkd_fk_length(1 << 20, 1 << 16, 0.03, 200000, 1e-15, 1e-12, &b));
	ASSERT_LT(b.length, a.length);
	ASSERT_EQ(0, qkd_fk_length(1 << 20, 1 << 16, 0.03, 200000, 1e-10, 1e-20, &b));
	ASSERT_LT(b.length, a.length);
}

TEST(too_short_yields_nothing)
{
	struct qkd_fk_result r;

	/* QBER plus fluctuation at 1/2: nothing */
	ASSERT_EQ(0, qkd_fk_length(1 << 20, 1 << 16, 0.49, 0, 1e-10, 1e-12, &r));
	ASSERT_EQ(0u, r.length);
	/* leak larger than the entropy */
	ASSERT_EQ(0, qkd_fk_length(1 << 20, 1 << 16, 0.02, 1 << 20, 1e-10, 1e-12, &r));
	ASSERT_EQ(0u, r.length);
	/* no sample: no statistical guarantee, no key */
	ASSERT_EQ(0, qkd_fk_length(1 << 20, 0, 0.0, 0, 1e-10, 1e-12, &r));
	ASSERT_EQ(0u, r.length);
	/* tiny block: the penalty alone eats it */
	ASSERT_EQ(0, qkd_fk_length(100, 100, 0.0, 0, 1e-10, 1e-12, &r));
	ASSERT_EQ(0u, r.length);
	/* zero QBER, no leak, huge sample: never above n */
	ASSERT_EQ(0, qkd_fk_length(1000, 1ull << 40, 0.0, 0, 0.5, 0.5, &r));
	ASSERT_LE(r.length, 1000u);
}

TEST(bad_parameters)
{
	ASSERT_EQ(-EINVAL, qkd_fk_length(1000, 100, 0.02, 0, 0, 1e-12, NULL));
	ASSERT_EQ(-EINVAL, qkd_fk_length(1000, 100, 0.02, 0, 1e-10, 1.0, NULL));
	ASSERT_EQ(-EINVAL, qkd_fk_length(1000, 100, -0.1, 0, 1e-10, 1e-12, NULL));
	ASSERT_EQ(-EINVAL, qkd_fk_length(1000, 100, NAN, 0, 1e-10, 1e-12, NULL));
	ASSERT_EQ(-EINVAL, qkd_fk_length(1000, 100, 0.02, 0, NAN, 1e-12, NULL));
}

TEST(fixed_mode)
{
	ASSERT_EQ(500u, qkd_fk_fixed_length(1000, 0.5));
	ASSERT_EQ(333u, qkd_fk_fixed_length(1000, 1.0 / 3));
	ASSERT_EQ(1000u, qkd_fk_fixed_length(1000, 1.0));
	ASSERT_EQ(0u, qkd_fk_fixed_length(1000, 0));
	ASSERT_EQ(0u, qkd_fk_fixed_length(1000, 1.5));
}

TEST_HARNESS_MAIN
