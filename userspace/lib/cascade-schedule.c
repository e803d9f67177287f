// SPDX-License-Identifier: GPL-2.0
/*
 * Cascade block-size schedules. The first block size follows the QBER the
 * estimation stage reported; later passes follow the schedule's rule. The
 * published schedules are reproduced as described by their authors (and as
 * implemented by the public cascade-python/cascade-cpp), so results can be
 * compared with theirs; "tuned" is ours (see Documentation/cascade.md).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "qkd/cascade.h"

static const char *const names[CASCADE_N_SCHEDULES] = {
	[CASCADE_ORIGINAL] = "original",
	[CASCADE_YAN] = "yan",
	[CASCADE_OPTION7] = "option7",
	[CASCADE_OPTION8] = "option8",
	[CASCADE_TUNED] = "tuned",
};

static const char *const helps[CASCADE_N_SCHEDULES] = {
	[CASCADE_ORIGINAL] = "Brassard and Salvail (1993): 4 passes, k1 = ceil(0.73/Q), k(i+1) = 2 k(i)",
	[CASCADE_YAN] = "Yan et al. (2008): 10 passes, k1 = ceil(0.8/Q), k2 = 5 k1, then ceil(n/2)",
	[CASCADE_OPTION7] = "Martinez-Mateo et al. (2015) option 7: 14 passes, "
			    "k1 = 2^ceil(log2(1/Q)), k2 = 4 k1, then ceil(n/2)",
	[CASCADE_OPTION8] = "Martinez-Mateo et al. (2015) option 8: 14 passes, a = log2(1/Q) - 0.5, "
			    "k1 = 2^ceil(a), k2 = 2^ceil((a + 12)/2), then 4096",
	[CASCADE_TUNED] = "qkdpipe: 20 passes, k1 = 2^ceil(log2(0.5/Q)), k2 = 8 k1 (16 k1 "
			  "for n >= 2^16 and Q > 6.5 %), then ceil(n/2)",
};

const char *cascade_schedule_name(enum cascade_schedule s)
{
	return (unsigned)s < CASCADE_N_SCHEDULES ? names[s] : "unknown";
}

const char *cascade_schedule_help(enum cascade_schedule s)
{
	return (unsigned)s < CASCADE_N_SCHEDULES ? helps[s] : "";
}

int cascade_schedule_parse(const char *name)
{
	for (int i = 0; i < CASCADE_N_SCHEDULES; i++)
		if (name && !strcmp(name, names[i]))
			return i;
	return -EINVAL;
}

static uint32_t clamp_k(double k, uint64_t n)
{
	if (!(k >= 1))
		return 1;
	if (k >= (double)n)
		return (uint32_t)n;
	return (uint32_t)k;
}

/*
 * Tuned schedule: k1 = 2^ceil(log2(0.5/Q)), half option 7's first block, and
 * a second pass 8 times larger (16 times on long frames at high QBER), then
 * halves. Found by sweeping k1 and k2 (powers of two: a binary search in a
 * power-of-two block costs exactly log2 k parities) with bench-cascade at
 * QBER 1-8 % on 2^14- and 2^18-bit frames, keeping for each the least
 * disclosure at a frame error rate that stayed at zero in the sweep. Small
 * first blocks catch most errors cheaply; the large second pass then costs
 * few parities, and the cascade between the two finds the rest. The price is
 * more round trips than option 7 at high QBER on long frames.
 */
static void tuned_sizes(double q, uint64_t n, uint32_t k[2])
{
	k[0] = clamp_k(exp2(ceil(log2(0.5 / q))), n);
	k[1] = clamp_k((n >= 65536 && q > 0.065 ? 16.0 : 8.0) * k[0], n);
}

int cascade_block_sizes(enum cascade_schedule s, uint64_t n, double qber,
			uint32_t k[CASCADE_MAX_PASSES])
{
	double q, a;
	uint32_t half;
	int passes;

	if (!n || n > CASCADE_MAX_BITS || !(qber >= 0 && qber < 0.5))
		return -EINVAL;
	q = qber < CASCADE_MIN_QBER ? CASCADE_MIN_QBER : qber;
	half = clamp_k(ceil((double)n / 2), n);

	switch (s) {
	case CASCADE_ORIGINAL:
		passes = 4;
		k[0] = clamp_k(ceil(0.73 / q), n);
		for (int i = 1; i < passes; i++)
			k[i] = clamp_k(2.0 * k[i - 1], n);
		return passes;
	case CASCADE_YAN:
		passes = 10;
		k[0] = clamp_k(ceil(0.8 / q), n);
		k[1] = clamp_k(5.0 * k[0], n);
		break;
	case CASCADE_OPTION7:
		passes = 14;
		k[0] = clamp_k(exp2(ceil(log2(1 / q))), n);
		k[1] = clamp_k(4.0 * k[0], n);
		break;
	case CASCADE_OPTION8:
		passes = 14;
		a = log2(1 / q) - 0.5;
		k[0] = clamp_k(exp2(ceil(a)), n);
		k[1] = clamp_k(exp2(ceil((a + 12) / 2)), n);
		for (int i = 2; i < passes; i++)
			k[i] = clamp_k(4096, n);
		return passes;
	case CASCADE_TUNED:
		passes = 20;
		tuned_sizes(q, n, k);
		break;
	default:
		return -EINVAL;
	}
	for (int i = 2; i < passes; i++)
		k[i] = half;
	return passes;
}

double cascade_binary_entropy(double p)
{
	if (p <= 0 || p >= 1)
		return 0;
	return -p * log2(p) - (1 - p) * log2(1 - p);
}

double cascade_efficiency(uint64_t disclosed, uint64_t n, uint64_t errors)
{
	double h;

	if (!n || !errors)
		return 0;
	h = cascade_binary_entropy((double)errors / (double)n);
	return h > 0 ? (double)disclosed / ((double)n * h) : 0;
}
