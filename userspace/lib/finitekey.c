// SPDX-License-Identifier: GPL-2.0
/*
 * Finite-key output length of privacy amplification (formula and references
 * in qkd/finitekey.h and Documentation/privacy-amplification.md).
 *
 * Every rounding goes the safe way: the bound is floored, mu and the penalty
 * are computed in double precision from exact integer inputs, and a result
 * that is not finite (NaN from absurd inputs) yields no key.
 */
#include <errno.h>
#include <math.h>

#include "qkd/finitekey.h"

double qkd_binary_entropy(double p)
{
	if (!(p > 0))
		return 0;
	if (p >= 0.5)
		return 1;
	return -p * log2(p) - (1 - p) * log2(1 - p);
}

double qkd_fk_mu(uint64_t n, uint64_t k, double eps_sec)
{
	if (!n || !k || !(eps_sec > 0 && eps_sec < 1))
		return INFINITY;
	double dn = (double)n, dk = (double)k;

	return sqrt((dn + dk) / (dn * dk) * (dk + 1) / dk * log(4 / eps_sec));
}

int qkd_fk_length(uint64_t n, uint64_t k, double qber, uint64_t leak, double eps_sec,
		  double eps_cor, struct qkd_fk_result *r)
{
	struct qkd_fk_result tmp;

	if (!r)
		r = &tmp;
	r->length = 0;
	if (!(qber >= 0 && qber <= 1) || !(eps_sec > 0 && eps_sec < 1) ||
	    !(eps_cor > 0 && eps_cor < 1))
		return -EINVAL;
	r->mu = qkd_fk_mu(n, k, eps_sec);
	r->h = qkd_binary_entropy(qber + r->mu);
	r->entropy = (double)n * (1 - r->h);
	/* log2(2 / (eps_sec^2 eps_cor)) without underflow of the product */
	r->penalty = 1 - 2 * log2(eps_sec) - log2(eps_cor);
	r->bound = r->entropy - (double)leak - r->penalty;
	if (isfinite(r->bound) && r->bound >= 1) {
		double l = floor(r->bound);

		r->length = l >= (double)n ? n : (uint64_t)l;
	}
	return 0;
}

uint64_t qkd_fk_fixed_length(uint64_t n, double ratio)
{
	if (!(ratio > 0 && ratio <= 1))
		return 0;
	double l = floor((double)n * ratio);

	return l >= (double)n ? n : (uint64_t)l;
}
