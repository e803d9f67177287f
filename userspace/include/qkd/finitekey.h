/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Output length of privacy amplification.
 *
 * Finite-key bound of Tomamichel, Lim, Gisin and Renner, "Tight finite-key
 * analysis for quantum cryptography", Nat. Commun. 3:634 (2012), for BB84
 * with perfect basis preparation (q = 1):
 *
 *	l = floor( n [1 - h(Q + mu)] - leak_EC - log2(2 / (eps_sec^2 eps_cor)) )
 *
 *	mu = sqrt( (n + k) / (n k) * (k + 1) / k * ln(4 / eps_sec) )
 *
 * n: bits of the block entering privacy amplification (after the sample was
 * removed), k: bits of the sample that estimated the QBER Q, h: binary
 * entropy, leak_EC: every bit disclosed about the block on the classical
 * channel (estimation, error correction, confirmation; frame.disclosed_bits).
 * The key is eps_cor-correct and eps_sec-secret; the protocol is
 * (eps_sec + eps_cor)-secure. h(p) is taken as 1 for p >= 1/2.
 *
 * The alternative fixed mode keeps floor(ratio * n) bits whatever was
 * disclosed: it is an operator's choice without a security claim.
 */
#ifndef QKD_FINITEKEY_H
#define QKD_FINITEKEY_H

#include <stdint.h>

struct qkd_fk_result {
	double mu;	   /* statistical fluctuation of the QBER */
	double h;	   /* h(Q + mu) */
	double entropy;	   /* n [1 - h(Q + mu)] */
	double penalty;	   /* log2(2 / (eps_sec^2 eps_cor)) */
	double bound;	   /* entropy - leak - penalty, before flooring */
	uint64_t length;   /* l, 0 if the bound leaves nothing */
};

/* Binary entropy h(p) in bits; 0 at p <= 0, 1 at p >= 1/2 (see above). */
double qkd_binary_entropy(double p);

/* mu for block n, sample k at eps_sec; +infinity if k == 0 or n == 0. */
double qkd_fk_mu(uint64_t n, uint64_t k, double eps_sec);

/*
 * The finite-key length. qber in [0, 1], eps_sec and eps_cor in (0, 1).
 * Returns 0 and fills *r (r may be NULL for none), or -EINVAL for parameters
 * out of range. r->length == 0 means the block yields no key.
 */
int qkd_fk_length(uint64_t n, uint64_t k, double qber, uint64_t leak, double eps_sec,
		  double eps_cor, struct qkd_fk_result *r);

/* Fixed mode: floor(ratio * n), ratio in (0, 1]; 0 for a bad ratio. */
uint64_t qkd_fk_fixed_length(uint64_t n, double ratio);

#endif
