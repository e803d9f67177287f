/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Finite-key length of decoy-state BB84 with three intensities, from
 * C. C. W. Lim, M. Curty, N. Walenta, F. Xu and H. Zbinden, "Concise security
 * bounds for practical decoy-state quantum key distribution", Phys. Rev. A 89,
 * 022307 (2014), arXiv:1311.7129, in the form of its Eqs. (1)-(5):
 *
 *   l = s_X0 + s_X1 (1 - h(phi_X)) - leak_EC - 6 log2(21/eps_sec) - log2(2/eps_cor)  (1)
 *   s_X0 >= tau_0 (mu2 n-_mu3 - mu3 n+_mu2) / (mu2 - mu3)                            (2)
 *   s_X1 >= tau_1 mu1 [n-_mu2 - n+_mu3 - (mu2^2 - mu3^2)/mu1^2 (n+_mu1 - s_X0/tau_0)]
 *           / [mu1 (mu2 - mu3) - mu2^2 + mu3^2]                                      (3)
 *   v_Z1 <= tau_1 (m+_mu2 - m-_mu3) / (mu2 - mu3)                                    (4)
 *   phi_X <= v_Z1/s_Z1 + gamma(eps_sec, v_Z1/s_Z1, s_Z1, s_X1)                      (5)
 *
 *   n+-_k = e^k / p_k (n_Xk +- sqrt(n_X/2 ln(21/eps_sec))), likewise m+-_k with the
 *   error counts m_Zk and m_Z; tau_n = sum_k e^-k k^n p_k / n!;
 *   gamma(a,b,c,d) = sqrt((c+d)(1-b)b/(c d ln 2) log2((c+d)/(c d (1-b) b) 21^2/a^2)).
 *
 * X is the key basis (every detection of every intensity in it is key), Z the
 * test basis (disclosed entirely); s_Z0, s_Z1 are Eqs. (2), (3) on the Z counts.
 * Requires mu1 > mu2 + mu3, mu2 > mu3 >= 0. Every estimate is taken on its safe
 * side: s_0 and s_1 are clamped at 0, phi_X at 1/2, and b in gamma at least
 * 1/s_Z1 (an observed rate of zero errors is treated as one error).
 */
#ifndef QKD_DECOY_H
#define QKD_DECOY_H

#include <stdint.h>

#define QKD_DECOY_CLASSES 3 /* signal mu1, decoy mu2, vacuum/weak mu3 */

struct qkd_decoy_source {
	double mu[QKD_DECOY_CLASSES]; /* intensities, mu1 > mu2 + mu3, mu2 > mu3 >= 0 */
	double p[QKD_DECOY_CLASSES];  /* their probabilities, each in (0, 1] */
};

struct qkd_decoy_counts {
	uint64_t n_x[QKD_DECOY_CLASSES]; /* key-basis detections per intensity */
	uint64_t n_z[QKD_DECOY_CLASSES]; /* test-basis detections per intensity */
	uint64_t m_z[QKD_DECOY_CLASSES]; /* test-basis errors per intensity */
};

struct qkd_decoy_result {
	double s_x0, s_x1, s_z0, s_z1, v_z1, phi_x;
	double penalty;	 /* 6 log2(21/eps_sec) + log2(2/eps_cor) */
	double bound;	 /* Eq. (1) before flooring */
	uint64_t length; /* floor(bound), capped at the key-basis bits; 0: no key */
};

/*
 * Eq. (1) for these counts, leak_EC bits disclosed about the key-basis bits,
 * eps_sec and eps_cor in (0, 1). 0 and *r filled, or -EINVAL for a source
 * outside the conditions above, or counts that are impossible (errors above
 * detections).
 */
int qkd_decoy_length(const struct qkd_decoy_source *src, const struct qkd_decoy_counts *c,
		     uint64_t leak, double eps_sec, double eps_cor, struct qkd_decoy_result *r);

#endif
