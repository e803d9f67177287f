// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-sim: the pipeline's source. Simulates a BB84 link (see qkd/bb84sim.h
 * for the physical model) and writes RAW frames for Alice and/or Bob. It
 * stands in for the quantum hardware; every later stage is the real
 * algorithm and never looks at the simulator's ground truth.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qkd/bb84sim.h"
#include "qkd/module.h"
#include "qkd/statefile.h"

static int64_t p_seed, p_slots, p_frames, p_first;
static double p_mu, p_distance, p_loss, p_eff, p_qber, p_dark, p_rate;
static char *p_alice_out, *p_bob_out, *p_truth;

static struct qkd_param params[] = {
	{ "seed", QKD_PARAM_INT, "-1",
	  "Seed of the simulation; the same seed gives the same frames. -1 draws one from "
	  "getrandom() (logged at info level so the run can be repeated)", false, &p_seed, -1,
	  9.2e18 },
	{ "slots", QKD_PARAM_INT, "1000000", "Time slots (pulses) per frame", false, &p_slots, 1,
	  1 << 28 },
	{ "frames", QKD_PARAM_INT, "0", "Frames to produce in this run (with --instance I/N: key "
	  "ids to step through); 0 runs until SIGTERM/SIGINT", false,
	  &p_frames, 0, 9.2e18 },
	{ "first-key-id", QKD_PARAM_INT, "0", "Key id of the first frame; later ones count up",
	  false, &p_first, 0, 9.2e18 },
	{ "mu", QKD_PARAM_DOUBLE, "0.5", "Mean photon number per pulse", true, &p_mu, 1e-6, 100 },
	{ "distance", QKD_PARAM_DOUBLE, "25", "Fibre length in km", true, &p_distance, 0, 1000 },
	{ "fiber-loss", QKD_PARAM_DOUBLE, "0.2", "Fibre attenuation in dB/km", true, &p_loss, 0,
	  10 },
	{ "efficiency", QKD_PARAM_DOUBLE, "0.2",
	  "Bob's optical transmittance times detector efficiency", true, &p_eff, 1e-9, 1 },
	{ "qber", QKD_PARAM_DOUBLE, "0.03",
	  "Optical error probability per detected photon in the matching basis; the sifted "
	  "QBER is this plus small dark-count and multi-click contributions", true, &p_qber, 0,
	  0.5 },
	{ "dark", QKD_PARAM_DOUBLE, "1e-6", "Dark-count probability per detector per slot", true,
	  &p_dark, 0, 0.5 },
	{ "rate", QKD_PARAM_DOUBLE, "0", "Frames per second; 0 = as fast as the pipeline takes "
	  "them", true, &p_rate, 0, 1e6 },
	{ "alice-out", QKD_PARAM_STRING, NULL,
	  "Write Alice's frames here (PATH, fd:N or -) instead of to --out", false, &p_alice_out,
	  0, 0 },
	{ "bob-out", QKD_PARAM_STRING, NULL,
	  "Write Bob's frames here (PATH, fd:N or -) instead of to --out", false, &p_bob_out, 0,
	  0 },
	{ "truth", QKD_PARAM_STRING, NULL,
	  "Write one line of ground truth per frame to this file (for tests): key_id, slots, "
	  "detected, multi, sifted, errors, qber; appended to when resuming from a state file",
	  false, &p_truth, 0, 0 },
	{ NULL },
};

static const struct qkd_module_desc desc = {
	.name = "qkd-sim",
	.stage = "sim",
	.summary = "simulate a BB84 link and write raw detection frames",
	.description =
		"Stands in for the quantum hardware of a BB84 link with polarisation encoding. "
		"In every time slot Alice sends a weak coherent pulse (Poisson photon number of "
		"mean mu) carrying a random bit in a random basis (Z or X). The fibre "
		"(distance, fiber-loss) and Bob's efficiency thin the photons; Bob measures in a "
		"random basis with two threshold detectors. A photon hits the wrong detector with "
		"probability qber in the matching basis and either one with probability 1/2 "
		"otherwise; each detector also fires on its own with probability dark. When both "
		"detectors click, Bob takes a random bit and the slot is flagged as a "
		"multi-click.\n\n"
		"Frames hold slots time slots each, one byte per slot (qkd/raw.h), and get key "
		"ids counting up from first-key-id. Alice's frames go to --alice-out, Bob's to "
		"--bob-out; the side named by --role goes to --out when its own option is not "
		"given, so two processes with --role alice and --role bob and the same seed "
		"produce the two halves of one run. With --instance I/N only key ids equal to I "
		"mod N are produced. Frame k depends only on (seed, k), so a run resumed from its "
		"--state-file continues exactly as it would have.",
	.needs = QKD_NEEDS_OUTPUT,
	.params = params,
	.examples =
		"Ten frames for both sides into files, reproducibly:\n"
		"    qkd-sim --seed 1 --frames 10 --alice-out a.raw --bob-out b.raw\n\n"
		"Bob's side of a 50 km link at 2% optical error into a pipe:\n"
		"    qkd-sim --role bob --seed 7 --distance 50 --qber 2% |\n"
		"      qkd-sift --role bob ...",
};

struct side {
	struct qkd_stream *s;	/* NULL: goes through qkd_module_write */
	struct qkd_frame *f;
	bool on;
};

static int save_hook(struct qkd_module *m, struct qkd_state *s);
static uint64_t next_key_id, seed;

static int write_side(struct qkd_module *m, struct side *sd, const char *who)
{
	int r;

	if (!sd->on)
		return 0;
	if (!sd->s)
		return qkd_module_write(m, sd->f);
	r = qkd_write_frame(sd->s, sd->f);
	if (r < 0)
		qkd_log(m, QKD_LOG_ERR, "%s output: %s", who, qkd_stream_error(sd->s));
	return r;
}

static int open_side(struct qkd_module *m, struct side *sd, const char *spec, bool is_role)
{
	const char *err = NULL;

	if (spec) {
		sd->s = qkd_module_open_stream(spec, QKD_STREAM_WRITE, &err);
		if (!sd->s) {
			qkd_log(m, QKD_LOG_ERR, "cannot open '%s': %s", spec, err);
			return -1;
		}
		sd->on = true;
	} else {
		sd->on = is_role;
	}
	return 0;
}

static void sleep_until(struct qkd_module *m, uint64_t deadline_ns)
{
	for (;;) {
		struct timespec now, ts;
		uint64_t t, left;

		clock_gettime(CLOCK_MONOTONIC, &now);
		t = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
		if (t >= deadline_ns || qkd_module_stopping(m))
			return;
		/* Short naps keep SIGTERM prompt. */
		left = deadline_ns - t;
		if (left > 20000000)
			left = 20000000;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left;
		nanosleep(&ts, NULL);
	}
}

static int flush_all(struct qkd_module *m, struct side *a, struct side *b)
{
	int r = qkd_module_flush(m);

	if (a->s && qkd_stream_flush(a->s) < 0) {
		qkd_log(m, QKD_LOG_ERR, "alice output: %s", qkd_stream_error(a->s));
		r = -1;
	}
	if (b->s && qkd_stream_flush(b->s) < 0) {
		qkd_log(m, QKD_LOG_ERR, "bob output: %s", qkd_stream_error(b->s));
		r = -1;
	}
	return r;
}

static uint64_t mono_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

int main(int argc, char **argv)
{
	struct qkd_module m;
	struct side alice = { 0 }, bob = { 0 };
	const struct qkd_state *saved;
	FILE *truth = NULL;
	uint64_t end, produced = 0, deadline;
	int ret = 0;

	if (qkd_module_init(&m, &desc, argc, argv))
		return 2;
	qkd_module_set_save_hook(&m, save_hook);

	seed = (uint64_t)p_seed;
	next_key_id = (uint64_t)p_first;
	saved = qkd_module_saved_state(&m);
	if (saved) {
		uint64_t v;

		if (!qkd_state_get_u64(saved, "next-key-id", &v))
			next_key_id = v;
		if (!qkd_state_get_u64(saved, "seed", &v)) {
			if (p_seed >= 0 && (uint64_t)p_seed != v)
				qkd_log(&m, QKD_LOG_WARN, "--seed differs from the saved run's; "
					"frames will not continue that run");
			else
				seed = v;
		}
	}
	if (p_seed < 0 && !saved) {
		qkd_random(&seed, sizeof(seed));
		seed >>= 1; /* keep it a valid --seed value */
	}
	qkd_log(&m, QKD_LOG_INFO, "seed %" PRIu64 ", first key id %" PRIu64 ", %" PRId64
		" slots per frame", seed, next_key_id, p_slots);

	if (open_side(&m, &alice, p_alice_out, m.role == QKD_ALICE) ||
	    open_side(&m, &bob, p_bob_out, m.role == QKD_BOB)) {
		ret = -1;
		goto out;
	}
	if (p_truth) {
		truth = fopen(p_truth, saved ? "ae" : "we");
		if (!truth) {
			qkd_log(&m, QKD_LOG_ERR, "cannot open truth file '%s': %m", p_truth);
			ret = -1;
			goto out;
		}
	}
	alice.f = qkd_frame_new((uint32_t)p_slots);
	bob.f = qkd_frame_new((uint32_t)p_slots);
	if (!alice.f || !bob.f) {
		qkd_log(&m, QKD_LOG_ERR, "out of memory");
		ret = -1;
		goto out;
	}

	/* --frames counts this run's frames, also when resuming. */
	end = p_frames ? next_key_id + (uint64_t)p_frames : UINT64_MAX;
	deadline = mono_ns();
	while (next_key_id < end && !qkd_module_stopping(&m)) {
		struct qkd_sim_params sp;
		struct qkd_sim_truth t;
		uint64_t k = next_key_id;
		double rate;

		if (m.state == QKD_MOD_PAUSED) {
			flush_all(&m, &alice, &bob);
			while (m.state == QKD_MOD_PAUSED && !qkd_module_stopping(&m))
				sleep_until(&m, mono_ns() + 20000000);
			/* The rate counts from the resume, not across the pause. */
			deadline = mono_ns();
			if (qkd_module_stopping(&m))
				break;
		}
		/* Parallel instances each make their own share of key ids. */
		if (k % m.instances != m.instance) {
			next_key_id++;
			continue;
		}
		pthread_mutex_lock(&m.lock);
		sp = (struct qkd_sim_params){ .seed = seed, .mu = p_mu,
					      .eta = qkd_sim_eta(p_distance, p_loss, p_eff),
					      .misalign = p_qber, .dark = p_dark };
		rate = p_rate;
		pthread_mutex_unlock(&m.lock);

		qkd_sim_frame(&sp, k, (uint64_t)p_slots, alice.f->payload, bob.f->payload, &t);
		for (int i = 0; i < 2; i++) {
			struct qkd_frame *f = i ? bob.f : alice.f;

			f->key_id = k;
			f->state = QKD_STATE_RAW;
			f->flags = i ? QKD_FRAME_F_BOB : 0;
			f->qber_ppm = QKD_QBER_UNKNOWN;
			f->bit_count = (uint64_t)p_slots;
			f->payload_len = (uint32_t)p_slots;
			f->disclosed_bits = 0;
			f->auth_ctx = 0;
			f->abort_reason = 0;
		}
		if (write_side(&m, &alice, "alice") < 0 || write_side(&m, &bob, "bob") < 0) {
			ret = -1;
			break;
		}
		if (!(alice.on && !alice.s) && !(bob.on && !bob.s)) {
			/* Neither side went through qkd_module_write: account here. */
			pthread_mutex_lock(&m.lock);
			if (!m.stats.start_ns) {
				m.stats.start_ns = mono_ns();
				if (m.state == QKD_MOD_READY)
					m.state = QKD_MOD_RUNNING;
			}
			m.stats.frames_out++;
			m.stats.bits_out += (uint64_t)p_slots;
			pthread_mutex_unlock(&m.lock);
		}
		if (truth) {
			fprintf(truth,
				"key_id=%" PRIu64 " slots=%" PRIu64 " detected=%" PRIu64
				" multi=%" PRIu64 " sifted=%" PRIu64 " errors=%" PRIu64
				" qber=%.6f configured=%.6f\n",
				k, t.slots, t.detected, t.multi, t.sifted, t.errors,
				t.sifted ? (double)t.errors / t.sifted : 0.0, sp.misalign);
			fflush(truth);
		}
		qkd_log(&m, QKD_LOG_DEBUG, "key %" PRIu64 ": %" PRIu64 " detections, %" PRIu64
			" multi-clicks", k, t.detected, t.multi);
		next_key_id = k + 1;
		produced++;
		if (rate > 0 && next_key_id < end) {
			/* Frames are batched: deliver this one before waiting. */
			if (flush_all(&m, &alice, &bob)) {
				ret = -1;
				break;
			}
			deadline += (uint64_t)(1e9 / rate);
			sleep_until(&m, deadline);
		}
	}
	qkd_log(&m, QKD_LOG_INFO, "%" PRIu64 " frames produced, next key id %" PRIu64, produced,
		next_key_id);
out:
	if (alice.s && qkd_stream_close(alice.s))
		ret = -1;
	if (bob.s && qkd_stream_close(bob.s))
		ret = -1;
	if (truth && fclose(truth))
		ret = -1;
	qkd_frame_free(alice.f);
	qkd_frame_free(bob.f);
	if (ret)
		qkd_module_fail(&m);
	return qkd_module_finish(&m);
}

static int save_hook(struct qkd_module *m, struct qkd_state *s)
{
	int r = qkd_state_set_u64(s, "next-key-id", next_key_id);

	return r ? r : qkd_state_set_u64(s, "seed", seed);
}
