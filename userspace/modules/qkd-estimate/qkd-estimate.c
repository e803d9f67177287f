// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-estimate: QBER estimation from a disclosed random sample (protocol in
 * qkd/estimate.h). Alice picks the sample with qkd_random(), both sides
 * compare their bits there, the sampled bits leave the key, and the frame is
 * aborted when the estimate is above the threshold.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/estimate.h"
#include "qkd/module.h"
#include "qkd/stage.h"
#include "qkd/poslist.h"

enum { MSG_SAMPLE = 1, MSG_BITS = 2 };

static double p_ratio, p_max_qber;
static int64_t p_min_sample;
static bool p_defer;

static struct qkd_param params[] = {
	{ "sample-ratio", QKD_PARAM_DOUBLE, "0.1",
	  "Fraction of the sifted bits disclosed for the estimate (Alice's value is used)", true,
	  &p_ratio, 1e-4, 0.9 },
	{ "min-sample", QKD_PARAM_INT, "64",
	  "Smallest sample, whatever the ratio; blocks not longer than it yield no key", true,
	  &p_min_sample, 1, 1e9 },
	{ "max-qber", QKD_PARAM_DOUBLE, "0.11",
	  "Abort the frame (reason qber) when the estimated QBER is above this", true,
	  &p_max_qber, 0, 0.5 },
	QKD_STAGE_PARAM_DEFER_AUTH(p_defer),
	{ NULL },
};

static const struct qkd_module_desc desc = {
	.name = "qkd-estimate",
	.stage = "estimate",
	.summary = "estimate the QBER from a disclosed random sample",
	.description =
		"Reads SIFTED frames and writes ESTIMATED ones. For every frame of n bits Alice "
		"draws m = max(min-sample, ceil(sample-ratio * n)) distinct positions uniformly "
		"with the kernel's CSPRNG and sends them with her bits there; Bob answers with "
		"his bits. Both count the differing bits e, set the frame's QBER to e / m and "
		"remove the m disclosed bits from the key, which keeps n - m bits. Above max-qber "
		"the frame is aborted (reason qber) on both sides; when nothing would be left "
		"it is aborted as too short.\n\n"
		"Because the sample is a uniformly random subset, the estimate is within "
		"sqrt(ln(2/delta) / (2m)) of the block's true error rate with probability at "
		"least 1 - delta (Hoeffding). The sampled bits are counted in the module's "
		"disclosed-bit statistics; they are not added to the frame's disclosed_bits, "
		"which counts leakage about the bits that remain, and these bits no longer "
		"belong to the key. Messages are authenticated like every peer message; tags "
		"are checked before the frame is written (or deferred with defer-auth).",
	.needs = QKD_NEEDS_INPUT | QKD_NEEDS_OUTPUT | QKD_NEEDS_PEER,
	.params = params,
	.examples =
		"Bob's side behind qkd-sift, disclosing 5%:\n"
		"    qkd-estimate --role bob --listen 127.0.0.1:7002 --keypool bob.pool \\\n"
		"      --sample-ratio 5% < bob.sifted > bob.estimated\n\n"
		"Alice, aborting above 8%:\n"
		"    qkd-estimate --role alice --peer 127.0.0.1:7002 \\\n"
		"      --keypool alice.pool --max-qber 0.08 < alice.sifted > alice.est",
};

struct sample {
	uint64_t m, *pos;
	uint8_t *mine, *theirs; /* m bits each */
};

static void sample_free(struct sample *s)
{
	if (s->mine)
		explicit_bzero(s->mine, (size_t)((s->m + 7) / 8));
	free(s->pos);
	free(s->mine);
	free(s->theirs);
	memset(s, 0, sizeof(*s));
}

/* Check a packed m-bit answer. */
static bool bits_ok(const struct qkd_msg *msg, uint64_t m)
{
	size_t want = (size_t)((m + 7) / 8);

	return msg->len == want && (!(m & 7) || !(msg->data[want - 1] >> (m & 7)));
}

/* Exchange the sample. 1 = s filled, 0 = frame aborted by/with the peer, <0 fatal. */
static int exchange(struct qkd_module *m, const struct qkd_frame *f, struct sample *s)
{
	uint64_t n = f->bit_count;
	struct qkd_msg msg;
	const char *err = NULL;
	uint8_t *buf = NULL;
	size_t len;
	int r;

	if (m->role == QKD_ALICE) {
		double ratio;
		int64_t min;

		pthread_mutex_lock(&m->lock);
		ratio = p_ratio;
		min = p_min_sample;
		pthread_mutex_unlock(&m->lock);
		s->m = qkd_est_sample_size(n, ratio, (uint64_t)min);
		s->pos = malloc((size_t)(s->m ? s->m : 1) * sizeof(uint64_t));
		s->mine = calloc(1, (size_t)(s->m / 8 + 1));
		s->theirs = calloc(1, (size_t)(s->m / 8 + 1));
		if (!s->pos || !s->mine || !s->theirs || qkd_est_choose(n, s->m, s->pos) ||
		    qkd_est_encode_sample(n, s->pos, s->m, f->payload, &buf, &len)) {
			qkd_log(m, QKD_LOG_ERR, "out of memory");
			return -ENOMEM;
		}
		qkd_pos_gather(f->payload, s->pos, s->m, s->mine);
		r = qkd_module_peer_send(m, f->key_id, MSG_SAMPLE, buf, len);
		explicit_bzero(buf, len);
		free(buf);
		if (r <= 0)
			return r;
		r = qkd_module_peer_reply(m, f->key_id, MSG_BITS, &msg);
		if (r <= 0)
			return r;
		if (!bits_ok(&msg, s->m)) {
			/* Bob is in the tag exchange now; a forgery fails it on both sides. */
			qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": peer's sample bits malformed",
				f->key_id);
			return 2;
		}
		memcpy(s->theirs, msg.data, msg.len);
		return 1;
	}

	r = qkd_module_peer_request(m, f->key_id, MSG_SAMPLE, &msg);
	if (r <= 0)
		return r;
	r = qkd_est_decode_sample(msg.data, msg.len, n, &s->pos, &s->m, &s->theirs, &err);
	if (r == 0)
		s->mine = calloc(1, (size_t)(s->m / 8 + 1));
	if (r || !s->mine) {
		qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": %s", f->key_id, r ? err : "out of memory");
		r = qkd_module_peer_abort(m, f->key_id);
		return r < 0 ? r : 0;
	}
	qkd_pos_gather(f->payload, s->pos, s->m, s->mine);
	return qkd_module_peer_send(m, f->key_id, MSG_BITS, s->mine, (size_t)((s->m + 7) / 8));
}

/* 1 = estimated frame in out, 0 = abort with *why, <0 fatal. */
static int estimate_frame(struct qkd_module *m, struct qkd_frame *f, struct qkd_frame *out,
			  enum qkd_abort_reason *why)
{
	struct sample s = { 0 };
	uint64_t errors, keep;
	double qber, max_qber;
	int r, x;

	*why = QKD_ABORT_PEER;
	x = exchange(m, f, &s);
	if (x <= 0) {
		sample_free(&s);
		return x;
	}
	r = qkd_stage_auth(m, f->key_id, p_defer, out);
	if (r <= 0) {
		if (!r)
			*why = QKD_ABORT_AUTH;
		sample_free(&s);
		return r;
	}
	if (x == 2) {
		sample_free(&s);
		return 0;
	}
	/* Disclosed on the channel, whatever happens to the frame now. */
	qkd_module_count_disclosed(m, s.m);
	errors = qkd_bits_hamming(s.mine, s.theirs, s.m);
	qber = s.m ? (double)errors / (double)s.m : 1.0;
	keep = f->bit_count - s.m;
	pthread_mutex_lock(&m->lock);
	max_qber = p_max_qber;
	m->stats.last_qber = qber;
	pthread_mutex_unlock(&m->lock);
	qkd_log(m, QKD_LOG_DEBUG, "key %" PRIu64 ": %" PRIu64 " bits, sample %" PRIu64 ", %" PRIu64
		" errors, QBER %.5f (+-%.5f at 1e-6), %" PRIu64 " bits kept", f->key_id,
		f->bit_count, s.m, errors, qber, qkd_est_hoeffding(s.m, 1e-6), keep);
	if (keep == 0 || s.m == 0) {
		/* Nothing left, or nothing to judge the block by. */
		*why = QKD_ABORT_TOO_SHORT;
		sample_free(&s);
		return 0;
	}
	if (qber > max_qber) {
		qkd_log(m, QKD_LOG_INFO, "key %" PRIu64 ": QBER %.4f above %.4f; frame aborted",
			f->key_id, qber, max_qber);
		*why = QKD_ABORT_QBER;
		/* Kept on the aborted frame: it tells the operator why. */
		out->qber_ppm = (uint32_t)llround(qber * 1e6);
		sample_free(&s);
		return 0;
	}
	if (qkd_frame_reserve(out, qkd_bits_to_bytes(keep) + 8)) {
		qkd_log(m, QKD_LOG_ERR, "out of memory");
		sample_free(&s);
		return -ENOMEM;
	}
	out->key_id = f->key_id;
	out->state = QKD_STATE_ESTIMATED;
	out->flags = f->flags;
	out->qber_ppm = (uint32_t)llround(qber * 1e6);
	out->disclosed_bits = f->disclosed_bits;
	out->auth_ctx = f->auth_ctx;
	out->abort_reason = 0;
	if (!p_defer) {
		memcpy(out->auth_acc, f->auth_acc, sizeof(out->auth_acc));
		out->auth_stages = f->auth_stages;
	}
	out->bit_count = qkd_pos_remove(f->payload, f->bit_count, s.pos, s.m, out->payload);
	out->payload_len = qkd_bits_to_bytes(out->bit_count);
	sample_free(&s);
	return 1;
}

int main(int argc, char **argv)
{
	struct qkd_module m;
	struct qkd_stage st = { .m = &m, .input = QKD_STATE_SIFTED, .input_name = "sifted",
				.work = estimate_frame };

	if (qkd_module_init(&m, &desc, argc, argv))
		return 2;
	st.defer = p_defer;
	qkd_stage_run(&st);
	return qkd_module_finish(&m);
}
