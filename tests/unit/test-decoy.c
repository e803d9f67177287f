// SPDX-License-Identifier: GPL-2.0
/*
 * The decoy-state bound (qkd/decoy.h) against the independent calculator
 * tests/decoy_calc.py on many cases made from the expected counts of a
 * decoy link (0..100 km, QBER 1..6 %, blocks 10^5..10^9 key-basis bits): the
 * C length never exceeds the calculator's and agrees with it to a bit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "qkd/decoy.h"

/* Expected counts of a three-intensity link with N pulses, key basis prob px. */
static void link_counts(double km, double e_opt, double total, const struct qkd_decoy_source *s,
			struct qkd_decoy_counts *c)
{
	double eta = pow(10, -0.02 * km) * 0.2, pdark = 2e-6, px = 0.9;

	for (int k = 0; k < QKD_DECOY_CLASSES; k++) {
		double q = 1 - (1 - pdark) * exp(-eta * s->mu[k]);
		double e = (pdark / 2 + e_opt * (1 - exp(-eta * s->mu[k]))) / q;
		double pulses = total * s->p[k];

		c->n_x[k] = (uint64_t)llround(pulses * px * px * q);
		c->n_z[k] = (uint64_t)llround(pulses * (1 - px) * (1 - px) * q);
		c->m_z[k] = (uint64_t)llround((double)c->n_z[k] * e);
	}
}

TEST(vacuum_signal_only_cases)
{
	/* Hand-checkable corner: no detections gives no key and no NaN. */
	struct qkd_decoy_source s = { { 0.5, 0.1, 0.0002 }, { 0.8, 0.15, 0.05 } };
	struct qkd_decoy_counts c = { { 0 }, { 0 }, { 0 } };
	struct qkd_decoy_result r;

	ASSERT_EQ(0, qkd_decoy_length(&s, &c, 0, 1e-10, 1e-12, &r));
	EXPECT_EQ(0u, r.length);
	s.mu[1] = 0.5; /* mu1 > mu2 + mu3 violated */
	EXPECT_EQ(-EINVAL, qkd_decoy_length(&s, &c, 0, 1e-10, 1e-12, &r));
}

TEST(against_independent_calculator)
{
	char in[] = "/tmp/test-decoy-in-XXXXXX";
	int fd = mkstemp(in), cases = 0, agree = 0, keys = 0;
	uint64_t mine[400];
	char cmd[256];
	FILE *f, *p;

	ASSERT_LE(0, fd);
	f = fdopen(fd, "w");
	ASSERT_NE(NULL, f);
	srand(12);
	for (int i = 0; i < 400; i++) {
		struct qkd_decoy_source s = {
			{ 0.4 + 0.3 * rand() / RAND_MAX, 0.05 + 0.15 * rand() / RAND_MAX,
			  (i % 2) ? 0.0002 : 0.0 },
			{ 0 },
		};
		struct qkd_decoy_counts c;
		struct qkd_decoy_result r;
		double km = 100.0 * rand() / RAND_MAX, e = 0.01 + 0.05 * rand() / RAND_MAX;
		double total = pow(10, 8 + 3.0 * rand() / RAND_MAX);
		double es = pow(10, -6 - 6.0 * rand() / RAND_MAX), ec = 1e-12;
		uint64_t leak;

		s.p[1] = 0.05 + 0.2 * rand() / RAND_MAX;
		s.p[2] = 0.02 + 0.1 * rand() / RAND_MAX;
		s.p[0] = 1 - s.p[1] - s.p[2];
		link_counts(km, e, total, &s, &c);
		leak = (uint64_t)(1.16 * 0.4 * (double)(c.n_x[0] + c.n_x[1] + c.n_x[2]) * e);
		ASSERT_EQ(0, qkd_decoy_length(&s, &c, leak, es, ec, &r));
		mine[i] = r.length;
		keys += r.length > 0;
		fprintf(f, "%.17g %.17g %.17g %.17g %.17g %.17g", s.mu[0], s.mu[1], s.mu[2],
			s.p[0], s.p[1], s.p[2]);
		for (int k = 0; k < 3; k++)
			fprintf(f, " %llu", (unsigned long long)c.n_x[k]);
		for (int k = 0; k < 3; k++)
			fprintf(f, " %llu", (unsigned long long)c.n_z[k]);
		for (int k = 0; k < 3; k++)
			fprintf(f, " %llu", (unsigned long long)c.m_z[k]);
		fprintf(f, " %llu %.17g %.17g\n", (unsigned long long)leak, es, ec);
		cases++;
	}
	ASSERT_EQ(0, fclose(f));
	snprintf(cmd, sizeof(cmd), "python3 tests/decoy_calc.py < %s", in);
	p = popen(cmd, "r");
	ASSERT_NE(NULL, p);
	for (int i = 0; i < cases; i++) {
		unsigned long long theirs;

		ASSERT_EQ(1, fscanf(p, "%llu", &theirs));
		/* Never longer than the calculator; equal up to rounding. */
		EXPECT_LE(mine[i], theirs);
		EXPECT_LE(theirs - mine[i], 1 + theirs / 1000000);
		agree += theirs - mine[i] <= 1 + theirs / 1000000;
	}
	EXPECT_EQ(0, pclose(p));
	unlink(in);
	EXPECT_EQ(cases, agree);
	/* The cases must exercise both outcomes. */
	EXPECT_LT(20, keys);
	EXPECT_LT(keys, cases);
	TH_LOG("%d cases, %d with key, all within rounding of the calculator", cases, keys);
}

TEST_HARNESS_MAIN
