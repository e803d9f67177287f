// SPDX-License-Identifier: GPL-2.0
/*
 * Decoy-state finite-key length (Lim et al. 2014; formulas in qkd/decoy.h).
 * Counts are exact integers; everything else is double precision and every
 * clamp goes the safe way, so a rounding never lengthens the key.
 */
#include <errno.h>
#include <math.h>

#include "qkd/decoy.h"
#include "qkd/finitekey.h"

static double tau(const struct qkd_decoy_source *s, int n)
{
	double t = 0;

	for (int k = 0; k < QKD_DECOY_CLASSES; k++) {
		double f = 1;

		for (int i = 2; i <= n; i++)
			f *= i;
		t += exp(-s->mu[k]) * pow(s->mu[k], n) * s->p[k] / f;
	}
	return t;
}

/* Hoeffding-corrected count of intensity k: e^mu_k / p_k (x +- delta). */
static double corr(const struct qkd_decoy_source *s, int k, double x, double delta, int sign)
{
	return exp(s->mu[k]) / s->p[k] * (x + sign * delta);
}

/* Eqs. (2) and (3) on one basis' counts. */
static void vac_single(const struct qkd_decoy_source *s, const uint64_t *n, double eps_sec,
		       double *s0, double *s1)
{
	double tot = (double)n[0] + (double)n[1] + (double)n[2];
	double d = sqrt(tot / 2 * log(21 / eps_sec));
	double m1 = s->mu[0], m2 = s->mu[1], m3 = s->mu[2];
	double t0 = tau(s, 0), t1 = tau(s, 1);
	double v, w;

	v = t0 * (m2 * corr(s, 2, (double)n[2], d, -1) - m3 * corr(s, 1, (double)n[1], d, 1)) /
	    (m2 - m3);
	*s0 = v > 0 ? v : 0;
	w = t1 * m1 *
	    (corr(s, 1, (double)n[1], d, -1) - corr(s, 2, (double)n[2], d, 1) -
	     (m2 * m2 - m3 * m3) / (m1 * m1) * (corr(s, 0, (double)n[0], d, 1) - *s0 / t0)) /
	    (m1 * (m2 - m3) - m2 * m2 + m3 * m3);
	*s1 = w > 0 ? w : 0;
}

static double gamma_fn(double a, double b, double c, double d)
{
	return sqrt((c + d) * (1 - b) * b / (c * d * log(2)) *
		    log2((c + d) / (c * d * (1 - b) * b) * 441 / (a * a)));
}

int qkd_decoy_length(const struct qkd_decoy_source *src, const struct qkd_decoy_counts *c,
		     uint64_t leak, double eps_sec, double eps_cor, struct qkd_decoy_result *r)
{
	double m1 = src->mu[0], m2 = src->mu[1], m3 = src->mu[2], mz, dm, v, b, l;
	uint64_t nx = 0;

	*r = (struct qkd_decoy_result){ 0 };
	if (!(eps_sec > 0 && eps_sec < 1) || !(eps_cor > 0 && eps_cor < 1))
		return -EINVAL;
	if (!(m3 >= 0 && m2 > m3 && m1 > m2 + m3 && isfinite(m1)))
		return -EINVAL;
	for (int k = 0; k < QKD_DECOY_CLASSES; k++) {
		if (!(src->p[k] > 0 && src->p[k] <= 1) || c->m_z[k] > c->n_z[k])
			return -EINVAL;
		nx += c->n_x[k];
	}
	vac_single(src, c->n_x, eps_sec, &r->s_x0, &r->s_x1);
	vac_single(src, c->n_z, eps_sec, &r->s_z0, &r->s_z1);
	mz = (double)c->m_z[0] + (double)c->m_z[1] + (double)c->m_z[2];
	dm = sqrt(mz / 2 * log(21 / eps_sec));
	v = tau(src, 1) * (corr(src, 1, (double)c->m_z[1], dm, 1) -
			   corr(src, 2, (double)c->m_z[2], dm, -1)) / (m2 - m3);
	r->v_z1 = v > 0 ? v : 0;
	if (r->s_z1 >= 1 && r->s_x1 >= 1) {
		b = r->v_z1 / r->s_z1;
		if (b < 1 / r->s_z1)
			b = 1 / r->s_z1;
		r->phi_x = b < 0.5 ? b + gamma_fn(eps_sec, b, r->s_z1, r->s_x1) : 0.5;
		if (!(r->phi_x < 0.5))
			r->phi_x = 0.5;
	} else {
		r->phi_x = 0.5;
	}
	r->penalty = 6 * log2(21 / eps_sec) + log2(2 / eps_cor);
	r->bound = r->s_x0 + r->s_x1 * (1 - qkd_binary_entropy(r->phi_x)) - (double)leak -
		   r->penalty;
	if (isfinite(r->bound) && r->bound >= 1) {
		l = floor(r->bound);
		r->length = l >= (double)nx ? nx : (uint64_t)l;
	}
	return 0;
}
