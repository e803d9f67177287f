// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-pa: privacy amplification by Toeplitz hashing (qkd/toeplitz.h) with the
 * output length of the finite-key bound (qkd/finitekey.h) or a fixed ratio.
 *
 * Per frame, Alice computes the output length l, draws a fresh Toeplitz seed
 * of n + l - 1 bits with qkd_random() and sends l and the seed (in parts of
 * at most seed-part bytes); Bob checks that l is within his own bound and
 * acknowledges; both hash. A block the bound leaves no key for is aborted on
 * both sides with reason too-short. The seed is public: it discloses nothing
 * about the key, so disclosed_bits is unchanged.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/finitekey.h"
#include "qkd/module.h"
#include "qkd/stage.h"
#include "qkd/toeplitz.h"

enum { MSG_SEED = 1, MSG_SEED_PART = 2, MSG_ACK = 3 };

#define SEED_HDR 16

enum { ACK_REFUSED = 0, ACK_OK = 1 };

static char *p_mode;
static double p_eps_sec, p_eps_cor, p_ratio, p_sample_ratio;
static int64_t p_min_sample, p_sample_bits, p_seed_part;
static bool p_defer;

static struct qkd_param params[] = {
	{ "mode", QKD_PARAM_STRING, "finite-key",
	  "Output length: finite-key (Tomamichel et al. 2012 bound) or fixed (ratio * n)",
	  true, &p_mode, 0, 0 },
	{ "eps-sec", QKD_PARAM_DOUBLE, "1e-10",
	  "Secrecy parameter of the finite-key bound", true, &p_eps_sec, 1e-300, 0.5 },
	{ "eps-cor", QKD_PARAM_DOUBLE, "1e-12",
	  "Correctness parameter: the one qkd-confirm uses", true, &p_eps_cor, 1e-300, 0.5 },
	{ "sample-ratio", QKD_PARAM_DOUBLE, "0.1",
	  "qkd-estimate's sample-ratio: sets the sample size k of the bound", true,
	  &p_sample_ratio, 1e-4, 0.9 },
	{ "min-sample", QKD_PARAM_INT, "64",
	  "qkd-estimate's min-sample: sets the sample size k of the bound", true,
	  &p_min_sample, 1, 1e9 },
	{ "sample-bits", QKD_PARAM_INT, "0",
	  "Sample size k of the bound in bits when not 0 (overrides sample-ratio and "
	  "min-sample)", true, &p_sample_bits, 0, 1e12 },
	{ "ratio", QKD_PARAM_DOUBLE, "0.5",
	  "Output bits per input bit in fixed mode (no security claim)", true, &p_ratio, 1e-6,
	  1 },
	{ "seed-part", QKD_PARAM_INT, "33554432",
	  "Largest piece of the Toeplitz seed per peer message, in bytes (Alice's value is "
	  "used; Bob takes pieces of any size)", false, &p_seed_part, 4096, 33554432 },
	QKD_STAGE_PARAM_DEFER_AUTH(p_defer),
	{ NULL },
};

static const struct qkd_module_desc desc = {
	.name = "qkd-pa",
	.stage = "pa",
	.summary = "privacy amplification by Toeplitz hashing",
	.description =
		"Reads CONFIRMED frames and writes AMPLIFIED ones. For a block of n bits the "
		"output length l is, in finite-key mode (Tomamichel, Lim, Gisin, Renner, Nat. "
		"Commun. 3:634, 2012),\n\n"
		"    l = floor(n [1 - h(Q + mu)] - leak - log2(2 / (eps-sec^2 eps-cor)))\n"
		"    mu = sqrt((n + k) / (n k) * (k + 1) / k * ln(4 / eps-sec))\n\n"
		"with Q the frame's estimated QBER, leak its disclosed_bits (everything error "
		"correction and confirmation disclosed) and k the size of the sample that "
		"estimated Q. The frame does not carry k: it is sample-bits when set, otherwise "
		"max(min-sample, floor(sample-ratio n / (1 - sample-ratio))), which never "
		"exceeds the sample qkd-estimate took with the same two parameters (so mu is "
		"never underestimated). In fixed mode l = floor(ratio n).\n\n"
		"Alice computes l, draws a Toeplitz seed s of n + l - 1 bits from the kernel's "
		"CSPRNG and sends l and s; Bob computes his own bound and acknowledges if "
		"Alice's l does not exceed it. Both output y = T x with T[i][j] = s[i - j + n - "
		"1], computed in O(n log n) as the middle of the product of s and x by an "
		"additive FFT over GF(2^64) (see Documentation/privacy-amplification.md). A "
		"block for which l < 1 is aborted on both sides with reason too-short (counted "
		"as an aborted frame); one Bob refuses is aborted with reason peer. The seed is "
		"public and independent of the key: disclosed_bits is unchanged. Messages are "
		"authenticated like every peer message; tags are checked before the frame is "
		"written (or deferred with defer-auth).",
	.needs = QKD_NEEDS_INPUT | QKD_NEEDS_OUTPUT | QKD_NEEDS_PEER,
	.params = params,
	.examples =
		"Bob behind qkd-confirm, then Alice, at eps_sec 1e-10 and eps_cor 1e-15:\n"
		"    qkd-pa --role bob --listen 127.0.0.1:7005 --keypool bob.pool \\\n"
		"      --eps-cor 1e-15 < bob.confirmed > bob.amplified &\n"
		"    qkd-pa --role alice --peer 127.0.0.1:7005 --keypool alice.pool \\\n"
		"      --eps-cor 1e-15 < alice.confirmed > alice.amplified\n\n"
		"Fixed compression to a quarter, for tests without estimates:\n"
		"    qkd-pa --role alice --peer 127.0.0.1:7005 --keypool alice.pool \\\n"
		"      --mode fixed --ratio 0.25",
};

struct settings {
	bool fixed;
	double eps_sec, eps_cor, ratio, sample_ratio;
	uint64_t min_sample, sample_bits;
};

static int read_settings(struct qkd_module *m, struct settings *s)
{
	int r = 0;

	pthread_mutex_lock(&m->lock);
	if (!strcmp(p_mode, "fixed"))
		s->fixed = true;
	else if (!strcmp(p_mode, "finite-key"))
		s->fixed = false;
	else
		r = -EINVAL;
	s->eps_sec = p_eps_sec;
	s->eps_cor = p_eps_cor;
	s->ratio = p_ratio;
	s->sample_ratio = p_sample_ratio;
	s->min_sample = (uint64_t)p_min_sample;
	s->sample_bits = (uint64_t)p_sample_bits;
	pthread_mutex_unlock(&m->lock);
	if (r)
		qkd_log(m, QKD_LOG_ERR, "mode must be finite-key or fixed, not '%s'", p_mode);
	return r;
}

/* The output length this side allows for f (0: none). */
static uint64_t output_length(struct qkd_module *m, const struct qkd_frame *f,
			      const struct settings *s)
{
	struct qkd_fk_result r;
	uint64_t n = f->bit_count, k;

	if (s->fixed)
		return qkd_fk_fixed_length(n, s->ratio);
	if (f->qber_ppm == QKD_QBER_UNKNOWN) {
		qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": no QBER estimate on the frame; the "
			"finite-key bound needs one", f->key_id);
		return 0;
	}
	if (s->sample_bits) {
		k = s->sample_bits;
	} else {
		double kr = floor(s->sample_ratio * (double)n / (1 - s->sample_ratio));

		k = kr > (double)s->min_sample ? (uint64_t)kr : s->min_sample;
	}
	if (qkd_fk_length(n, k, f->qber_ppm / 1e6, f->disclosed_bits, s->eps_sec, s->eps_cor,
			  &r))
		return 0;
	qkd_log(m, QKD_LOG_DEBUG, "key %" PRIu64 ": n %" PRIu64 " k %" PRIu64 " Q %.5f mu %.5f "
		"leak %" PRIu64 " penalty %.1f -> l %" PRIu64, f->key_id, n, k, f->qber_ppm / 1e6,
		r.mu, f->disclosed_bits, r.penalty, r.length);
	return r.length;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/*
 * A Toeplitz seed of n + l - 1 bits in whole words (what qkd_toeplitz_hash
 * reads). It remembers its own size, so that it is wiped over exactly what was
 * allocated: recomputing the size from n and l where it is freed once wiped a
 * word past the end whenever the seed filled its last word exactly.
 */
struct pa_seed {
	uint64_t *w;
	size_t bytes;
};

static int seed_alloc(struct pa_seed *s, uint64_t bits)
{
	size_t bytes = (size_t)((bits + 63) / 64) * 8;

	s->w = calloc(1, bytes);
	if (!s->w)
		return -ENOMEM;
	s->bytes = bytes;
	return 0;
}

static void seed_wipe_free(struct pa_seed *s)
{
	if (s->w) {
		explicit_bzero(s->w, s->bytes);
		free(s->w);
	}
	s->w = NULL;
	s->bytes = 0;
}

/*
 * Alice: send l and the seed, wait for Bob's answer. 1 = go (seed in *seed),
 * 2 = Bob refused, 3 = l is 0 (too short, Bob agreed), 0 = no counterpart,
 * <0 fatal.
 */
static int alice_exchange(struct qkd_module *m, const struct qkd_frame *f, uint64_t l,
			  struct pa_seed *seed)
{
	uint64_t n = f->bit_count, sbits = l ? n + l - 1 : 0;
	size_t sbytes = (size_t)((sbits + 7) / 8), off = 0, chunk = (size_t)p_seed_part;
	struct qkd_msg msg;
	uint8_t *buf;
	int r;

	if (l) {
		if (seed_alloc(seed, sbits))
			return -ENOMEM;
		qkd_random(seed->w, sbytes);
		if (sbits % 8)
			((uint8_t *)seed->w)[sbytes - 1] &= (uint8_t)((1u << (sbits % 8)) - 1);
	}
	/* first message: header and the first part of the seed */
	size_t first = sbytes < chunk ? sbytes : chunk;

	buf = malloc(SEED_HDR + first);
	if (!buf)
		return -ENOMEM;
	put_le64(buf, n);
	put_le64(buf + 8, l);
	if (first)
		memcpy(buf + SEED_HDR, seed->w, first);
	r = qkd_module_peer_send(m, f->key_id, MSG_SEED, buf, SEED_HDR + first);
	free(buf);
	off = first;
	while (r > 0 && off < sbytes) {
		size_t part = sbytes - off < chunk ? sbytes - off : chunk;

		r = qkd_module_peer_send(m, f->key_id, MSG_SEED_PART, (uint8_t *)seed->w + off,
					 part);
		off += part;
	}
	if (r <= 0)
		return r;
	r = qkd_module_peer_reply(m, f->key_id, MSG_ACK, &msg);
	if (r <= 0)
		return r;
	if (msg.len != 1 || msg.data[0] > ACK_OK) {
		/* A forgery: the tag exchange that follows fails on both sides. */
		qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": malformed acknowledgement", f->key_id);
		return 2;
	}
	if (msg.data[0] != ACK_OK)
		return 2;
	return l ? 1 : 3;
}

/* Bob: receive l and the seed, check, answer. Return values as alice_exchange. */
static int bob_exchange(struct qkd_module *m, const struct qkd_frame *f, uint64_t mine,
			uint64_t *l, struct pa_seed *seed)
{
	uint64_t n = f->bit_count, na, sbits;
	size_t sbytes, off;
	struct qkd_msg msg;
	uint8_t ack = ACK_OK;
	const char *why = NULL;
	int r;

	r = qkd_module_peer_request(m, f->key_id, MSG_SEED, &msg);
	if (r <= 0)
		return r;
	if (msg.len < SEED_HDR) {
		why = "seed message shorter than its header";
		goto refuse;
	}
	na = get_le64(msg.data);
	*l = get_le64(msg.data + 8);
	if (na > QKD_TOEPLITZ_MAX_BITS || *l > QKD_TOEPLITZ_MAX_BITS) {
		why = "block or output length out of range";
		goto refuse;
	}
	/* the seed as Alice announced it, so that all its parts are read either way */
	sbits = *l ? na + *l - 1 : 0;
	sbytes = (size_t)((sbits + 7) / 8);
	/* parts of any size, as long as they add up to the announced seed */
	if (msg.len - SEED_HDR > sbytes || (sbytes && msg.len == SEED_HDR)) {
		why = "seed part has the wrong length";
		goto refuse;
	}
	if (na != n)
		why = "block lengths differ";
	else if (*l > mine)
		why = "Alice's output length exceeds this side's bound (are eps-sec, eps-cor, "
		      "mode and the sample parameters the same on both sides?)";
	if (!why && *l) {
		if (seed_alloc(seed, sbits))
			return -ENOMEM;
		memcpy(seed->w, msg.data + SEED_HDR, msg.len - SEED_HDR);
	}
	off = msg.len - SEED_HDR;
	while (off < sbytes) {
		r = qkd_module_peer_reply(m, f->key_id, MSG_SEED_PART, &msg);
		if (r <= 0)
			return r;
		if (!msg.len || msg.len > sbytes - off) {
			why = "seed part has the wrong length";
			goto refuse;
		}
		if (seed->w)
			memcpy((uint8_t *)seed->w + off, msg.data, msg.len);
		off += msg.len;
	}
	if (why)
		goto refuse;
	r = qkd_module_peer_send(m, f->key_id, MSG_ACK, &ack, 1);
	if (r <= 0)
		return r;
	return *l ? 1 : 3;

refuse:
	qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": %s; frame refused", f->key_id, why);
	ack = ACK_REFUSED;
	r = qkd_module_peer_send(m, f->key_id, MSG_ACK, &ack, 1);
	return r <= 0 ? r : 2;
}

/* 1 = amplified frame in out, 0 = abort with *why, <0 fatal. */
static int amplify_frame(struct qkd_module *m, struct qkd_frame *f, struct qkd_frame *out,
			 enum qkd_abort_reason *why)
{
	struct settings s;
	struct pa_seed seed = { NULL, 0 };
	uint64_t l = 0, n = f->bit_count;
	int x, r;

	if (!n) {
		*why = QKD_ABORT_TOO_SHORT;
		return 0;
	}
	*why = QKD_ABORT_PEER;
	if (read_settings(m, &s))
		return -EINVAL;
	if (m->role == QKD_ALICE) {
		l = output_length(m, f, &s);
		x = alice_exchange(m, f, l, &seed);
	} else {
		x = bob_exchange(m, f, output_length(m, f, &s), &l, &seed);
	}
	if (x <= 0) {
		seed_wipe_free(&seed);
		return x;
	}
	r = qkd_stage_auth(m, f->key_id, p_defer, out);
	if (r <= 0) {
		if (!r)
			*why = QKD_ABORT_AUTH;
		seed_wipe_free(&seed);
		return r;
	}
	if (x == 2) {
		seed_wipe_free(&seed);
		return 0;
	}
	if (x == 3) {
		qkd_log(m, QKD_LOG_INFO, "key %" PRIu64 ": %" PRIu64 " bits yield no key (QBER "
			"%.4f, %" PRIu64 " bits disclosed); frame dropped", f->key_id, n,
			f->qber_ppm == QKD_QBER_UNKNOWN ? -1.0 : f->qber_ppm / 1e6,
			f->disclosed_bits);
		*why = QKD_ABORT_TOO_SHORT;
		return 0;
	}
	if (qkd_frame_reserve(out, qkd_bits_to_bytes(l))) {
		qkd_log(m, QKD_LOG_ERR, "out of memory");
		seed_wipe_free(&seed);
		return -ENOMEM;
	}
	r = qkd_toeplitz_hash((uint64_t *)out->payload, seed.w, (const uint64_t *)f->payload, n, l);
	seed_wipe_free(&seed);
	if (r) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": Toeplitz hashing failed: %s", f->key_id,
			strerror(-r));
		return r;
	}
	out->key_id = f->key_id;
	out->state = QKD_STATE_AMPLIFIED;
	out->flags = f->flags;
	out->qber_ppm = f->qber_ppm;
	out->bit_count = l;
	out->payload_len = qkd_bits_to_bytes(l);
	out->disclosed_bits = f->disclosed_bits;
	out->auth_ctx = f->auth_ctx;
	out->abort_reason = 0;
	if (!p_defer) {
		memcpy(out->auth_acc, f->auth_acc, sizeof(out->auth_acc));
		out->auth_stages = f->auth_stages;
	}
	qkd_log(m, QKD_LOG_DEBUG, "key %" PRIu64 ": %" PRIu64 " -> %" PRIu64 " bits", f->key_id,
		n, l);
	return 1;
}

int main(int argc, char **argv)
{
	struct qkd_module m;
	struct qkd_stage st = { .m = &m, .input = QKD_STATE_CONFIRMED, .input_name = "confirmed",
				.work = amplify_frame,
				.keep_qber = true, .log_aborts = true };

	if (qkd_module_init(&m, &desc, argc, argv))
		return 2;
	st.defer = p_defer;
	qkd_stage_run(&st);
	return qkd_module_finish(&m);
}
