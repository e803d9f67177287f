// SPDX-License-Identifier: GPL-2.0
/*
 * Sifting, estimation and simulation throughput.
 *
 *   simulator        raw slots per second (both sides generated)
 *   sifting          raw slots per second through the whole in-memory protocol
 *                    (Bob's detections, encoding, Alice's decoding and match,
 *                    both sides keeping), against a baseline that scans both
 *                    raw frames directly with no messages at all
 *   announcement     bytes per detection on the wire, against a plain encoding
 *                    (8-byte position + 1 byte basis)
 *   estimation       sifted bits per second: sample choice (getrandom), sample
 *                    encoding/decoding and removal of the sampled bits
 *
 * Usage: bench-sift [SLOTS_PER_FRAME [FRAMES [KM [EFFICIENCY]]]]
 *   (default 1000000 x 20, 25 km, efficiency 0.2: about 1% of the slots
 *   detected). The detection density decides the cost of sifting:
 *   bench-pipeline's link is 0 km at efficiency 0.5 (about 22% detected, 9
 *   raw slots per sifted bit), so `bench-sift 2097152 20 0 0.5` measures the
 *   sifting of the pipeline, not the 25 km default.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qkd/bb84sim.h"
#include "qkd/estimate.h"
#include "qkd/frame.h"
#include "qkd/poslist.h"
#include "qkd/raw.h"
#include "qkd/sift.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Baseline: both raw frames side by side, keep matching detections. */
static uint64_t direct_scan(const uint8_t *a, const uint8_t *b, uint64_t slots, uint8_t *ka,
			    uint8_t *kb)
{
	uint64_t k = 0;

	for (uint64_t i = 0; i < slots; i++) {
		if (!(b[i] & QKD_RAW_DETECTED) || ((a[i] ^ b[i]) & QKD_RAW_BASIS))
			continue;
		qkd_bit_set(ka, k, a[i] & QKD_RAW_VALUE);
		qkd_bit_set(kb, k, b[i] & QKD_RAW_VALUE);
		k++;
	}
	return k;
}

int main(int argc, char **argv)
{
	uint64_t slots = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;
	int frames = argc > 2 ? atoi(argv[2]) : 20;
	double km = argc > 3 ? strtod(argv[3], NULL) : 25, eff = argc > 4 ? strtod(argv[4], NULL) : 0.2;
	struct qkd_sim_params p = { .seed = 1, .mu = 0.5, .eta = qkd_sim_eta(km, 0.2, eff),
				    .misalign = 0.03, .dark = 1e-6 };
	uint8_t *a = malloc(slots), *b = malloc(slots);
	uint8_t *ka = calloc(1, slots / 8 + 16), *kb = calloc(1, slots / 8 + 16);
	double t0, t_sim = 0, t_sift = 0, t_base = 0, t_est = 0;
	uint64_t dets = 0, wire = 0, sifted = 0, sink = 0;

	if (!a || !b || !ka || !kb || frames < 1 || km < 0 || !(eff > 0 && eff <= 1)) {
		fprintf(stderr, "usage: bench-sift [SLOTS [FRAMES [KM [EFFICIENCY]]]]\n");
		return 2;
	}
	for (int k = 0; k < frames; k++) {
		struct qkd_sift_det bd, ad;
		uint8_t *msg, *mask;
		size_t len;
		const char *err;
		uint64_t n, m, *pos, *dpos, mm;
		uint8_t *smsg, *bits, *rest;
		size_t slen;

		t0 = now();
		qkd_sim_frame(&p, (uint64_t)k, slots, a, b, NULL);
		t_sim += now() - t0;

		t0 = now();
		if (qkd_sift_detections(b, slots, &bd) || qkd_sift_encode(&bd, &msg, &len) ||
		    qkd_sift_decode(msg, len, &ad, &err))
			return 1;
		mask = malloc(qkd_sift_mask_len(ad.n) + 1);
		if (qkd_sift_match(a, slots, &ad, mask, &err) < 0 ||
		    qkd_sift_check_mask(&bd, mask, qkd_sift_mask_len(bd.n), &err))
			return 1;
		n = qkd_sift_keep(a, &ad, mask, ka);
		sink += qkd_sift_keep(b, &bd, mask, kb);
		t_sift += now() - t0;
		dets += bd.n;
		wire += len;
		sifted += n;

		t0 = now();
		sink += direct_scan(a, b, slots, ka, kb);
		t_base += now() - t0;

		t0 = now();
		m = qkd_est_sample_size(n, 0.1, 64);
		pos = malloc(m * sizeof(*pos) + 8);
		rest = malloc(qkd_bits_to_bytes(n) + 8);
		if (qkd_est_choose(n, m, pos) || qkd_est_encode_sample(n, pos, m, ka, &smsg, &slen) ||
		    qkd_est_decode_sample(smsg, slen, n, &dpos, &mm, &bits, &err))
			return 1;
		sink += qkd_pos_remove(ka, n, pos, m, rest);
		t_est += now() - t0;
		free(pos);
		free(rest);
		free(smsg);
		free(dpos);
		free(bits);
		free(mask);
		free(msg);
		qkd_sift_det_free(&ad);
		qkd_sift_det_free(&bd);
	}
	printf("frames: %d x %llu slots, %.2f%% detected, %llu sifted bits per frame\n", frames,
	       (unsigned long long)slots, 100.0 * dets / ((double)slots * frames),
	       (unsigned long long)(sifted / (uint64_t)frames));
	printf("simulator:    %8.1f Mslots/s\n", slots * frames / t_sim / 1e6);
	printf("sifting:      %8.1f Mslots/s  (direct scan baseline %.1f Mslots/s, ratio %.2f)\n",
	       slots * frames / t_sift / 1e6, slots * frames / t_base / 1e6, t_base / t_sift);
	printf("announcement: %8.2f bytes/detection  (plain 9 bytes, ratio %.2f)\n",
	       (double)wire / dets, 9.0 * dets / wire);
	printf("estimation:   %8.1f Msifted bits/s (10%% sample)\n", sifted / t_est / 1e6);
	return sink == 0 ? 1 : 0;
}
