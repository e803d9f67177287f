/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BB84 link simulator (polarisation encoding, weak coherent pulses, active
 * basis choice at Bob, two threshold detectors per basis measurement).
 *
 * Per time slot Alice sends a pulse with Poisson photon number of mean mu in a
 * random basis (Z or X) carrying a random bit. The channel and Bob's detector
 * efficiency thin it to a Poisson number of detected photons of mean
 * mu * eta. Bob measures in a random basis: in the matching basis each photon
 * reaches the wrong detector with probability `misalign` (optical error), in
 * the other basis either detector with probability 1/2. Each detector also
 * fires on its own with probability `dark` per slot. Poisson thinning makes
 * the two detectors' photon counts independent Poisson variables, so each
 * detector clicks with probability 1 - (1 - dark) * exp(-lambda_j). One click
 * gives Bob's bit; both clicking is a multi-click and Bob assigns a random bit
 * (squashing). In the sifted key the QBER is about misalign plus the dark-count
 * and multi-click contributions.
 *
 * Frames are reproducible: the generator of frame k is seeded from (seed, k),
 * so any frame can be regenerated alone, and a resumed run continues exactly
 * as an uninterrupted one would have.
 */
#ifndef QKD_BB84SIM_H
#define QKD_BB84SIM_H

#include <stdint.h>

struct qkd_sim_params {
	uint64_t seed;
	double mu;	 /* mean photon number per pulse */
	double eta;	 /* total transmittance: channel * Bob's optics * detector efficiency */
	double misalign; /* optical error probability per photon in the matching basis */
	double dark;	 /* dark-count probability per detector per slot */
};

/* What the simulator knows and the protocol must find out (for tests). */
struct qkd_sim_truth {
	uint64_t slots;
	uint64_t detected;	/* slots where Bob registered a click */
	uint64_t multi;		/* of those, multi-clicks */
	uint64_t sifted;	/* detected slots with matching bases */
	uint64_t errors;	/* sifted slots where Bob's bit differs from Alice's */
};

/* eta from fibre length (km), attenuation (dB/km) and Bob's efficiency (0..1). */
double qkd_sim_eta(double km, double db_per_km, double bob_efficiency);

/*
 * Simulate one frame of `slots` slots: fills alice[] and bob[] (one byte per
 * slot, see qkd/raw.h) and, if truth is not NULL, the ground truth.
 */
void qkd_sim_frame(const struct qkd_sim_params *p, uint64_t key_id, uint64_t slots,
		   uint8_t *alice, uint8_t *bob, struct qkd_sim_truth *truth);

/* Expected detection probability per slot and sifted QBER for these parameters. */
double qkd_sim_expected_detection(const struct qkd_sim_params *p);
double qkd_sim_expected_qber(const struct qkd_sim_params *p);

#endif
