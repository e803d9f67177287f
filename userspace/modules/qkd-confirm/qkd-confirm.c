// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-confirm: key confirmation after error correction (protocol and bound in
 * qkd/confirm.h). Alice sends fresh hash keys and her truncated polynomial
 * hashes, Bob compares with his own and answers with a verdict; a mismatch
 * discards the frame on both sides (QKD_ABORT_CONFIRM). The tag bits are
 * added to the frame's disclosed_bits, which privacy amplification subtracts.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/confirm.h"
#include "qkd/module.h"
#include "qkd/stage.h"

enum { MSG_TAG = 1, MSG_VERDICT = 2 };

static double p_eps_cor;
static bool p_defer;

static struct qkd_param params[] = {
	{ "eps-cor", QKD_PARAM_DOUBLE, "1e-12",
	  "Correctness parameter: a pair of different keys passes with probability at most "
	  "this (must be the same on both sides, and the one qkd-pa is given)",
	  true, &p_eps_cor, 1e-300, 0.5 },
	QKD_STAGE_PARAM_DEFER_AUTH(p_defer),
	{ NULL },
};

static const struct qkd_module_desc desc = {
	.name = "qkd-confirm",
	.stage = "confirm",
	.summary = "confirm that error correction left identical keys",
	.description =
		"Reads CORRECTED frames and writes CONFIRMED ones. For a block of n bits Alice "
		"draws r fresh 128-bit keys with the kernel's CSPRNG and sends them with her "
		"tags: the first t_i bits of the GF(2^128) polynomial hash of her key under "
		"key i. Bob hashes his own block with the same keys, compares in constant time "
		"and answers with the verdict. Equal tags: the frame goes on as CONFIRMED; "
		"different tags: it is written as ABORTED with reason confirm on both sides.\n\n"
		"The polynomial hash of B 128-bit blocks collides with probability at most "
		"(B + 1) / 2^t when cut to t bits, so r and the t_i are the smallest with "
		"sum t_i >= log2(1/eps-cor) + r log2(B + 1), t_i <= 128 (one hash for every "
		"usual eps-cor). Passing keys are then eps-cor-correct. The sum of the t_i is "
		"what the exchange tells about the key: it is added to the frame's "
		"disclosed_bits (and to this stage's disclosed-bit statistics) for privacy "
		"amplification to subtract. Messages are authenticated like every peer "
		"message; tags are checked before the frame is written (or deferred with "
		"defer-auth). A frame whose block length or tag plan differs between the "
		"sides is aborted with reason peer.",
	.needs = QKD_NEEDS_INPUT | QKD_NEEDS_OUTPUT | QKD_NEEDS_PEER,
	.params = params,
	.examples =
		"Bob behind qkd-cascade, then Alice, both at eps_cor = 1e-15:\n"
		"    qkd-confirm --role bob --listen 127.0.0.1:7004 --keypool bob.pool \\\n"
		"      --eps-cor 1e-15 < bob.corrected > bob.confirmed &\n"
		"    qkd-confirm --role alice --peer 127.0.0.1:7004 --keypool alice.pool \\\n"
		"      --eps-cor 1e-15 < alice.corrected > alice.confirmed",
};

/*
 * The exchange. 1 = tags equal, 2 = tags differ, 3 = frame to abort for a
 * protocol reason (already told to the peer, or the peer told us), 0 = no
 * counterpart, <0 fatal. *plan receives the plan in force.
 */
static int exchange(struct qkd_module *m, const struct qkd_frame *f, double eps_cor,
		    struct qkd_confirm_plan *plan)
{
	struct qkd_confirm_tag mine, theirs;
	struct qkd_confirm_plan pa;
	struct qkd_msg msg;
	const char *err = NULL;
	uint64_t n = f->bit_count, na = 0;
	uint8_t *buf, verdict;
	size_t len;
	int r;

	if (qkd_confirm_plan(n, eps_cor, plan)) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": no tag plan for %" PRIu64
			" bits at eps-cor %g", f->key_id, n, eps_cor);
		return -EINVAL;
	}
	if (m->role == QKD_ALICE) {
		qkd_confirm_new_keys(plan, &mine);
		qkd_confirm_compute(plan, f->payload, n, &mine);
		if (qkd_confirm_encode(plan, n, &mine, &buf, &len)) {
			qkd_log(m, QKD_LOG_ERR, "out of memory");
			return -ENOMEM;
		}
		r = qkd_module_peer_send(m, f->key_id, MSG_TAG, buf, len);
		free(buf);
		explicit_bzero(&mine, sizeof(mine));
		if (r <= 0)
			return r;
		r = qkd_module_peer_reply(m, f->key_id, MSG_VERDICT, &msg);
		if (r <= 0)
			return r;
		if (msg.len != 1 || msg.data[0] > 2) {
			/* A forgery: the tag exchange that follows fails on both sides. */
			qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": malformed verdict", f->key_id);
			return 3;
		}
		return msg.data[0] == 1 ? 1 : msg.data[0] == 0 ? 2 : 3;
	}

	r = qkd_module_peer_request(m, f->key_id, MSG_TAG, &msg);
	if (r <= 0)
		return r;
	r = qkd_confirm_decode(msg.data, msg.len, &pa, &na, &theirs, &err);
	if (!r && na != n) {
		err = "block lengths differ";
		r = -EPROTO;
	} else if (!r && !qkd_confirm_plan_equal(&pa, plan)) {
		err = "tag plans differ (is eps-cor the same on both sides?)";
		r = -EPROTO;
	}
	if (r) {
		qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": %s", f->key_id, err);
		/* verdict 2: refused; both sides abort the frame (reason peer) */
		verdict = 2;
		r = qkd_module_peer_send(m, f->key_id, MSG_VERDICT, &verdict, 1);
		return r <= 0 ? r : 3;
	}
	memcpy(mine.key, theirs.key, sizeof(mine.key));
	qkd_confirm_compute(plan, f->payload, n, &mine);
	verdict = qkd_confirm_equal(plan, &mine, &theirs) ? 1 : 0;
	explicit_bzero(&mine, sizeof(mine));
	explicit_bzero(&theirs, sizeof(theirs));
	r = qkd_module_peer_send(m, f->key_id, MSG_VERDICT, &verdict, 1);
	return r <= 0 ? r : verdict ? 1 : 2;
}

/* 1 = f confirmed in place (out is f), 0 = abort with *why, <0 fatal. */
static int confirm_frame(struct qkd_module *m, struct qkd_frame *f, struct qkd_frame *out,
			 enum qkd_abort_reason *why)
{
	struct qkd_confirm_plan plan;
	double eps_cor;
	int x, r;

	if (!f->bit_count) {
		*why = QKD_ABORT_TOO_SHORT;
		return 0;
	}
	*why = QKD_ABORT_PEER;
	pthread_mutex_lock(&m->lock);
	eps_cor = p_eps_cor;
	pthread_mutex_unlock(&m->lock);
	x = exchange(m, f, eps_cor, &plan);
	if (x <= 0)
		return x;
	r = qkd_stage_auth(m, f->key_id, p_defer, f);
	if (r <= 0) {
		if (!r)
			*why = QKD_ABORT_AUTH;
		return r;
	}
	if (x == 3)
		return 0;
	/* The tags are public now, whatever the verdict. */
	qkd_module_count_disclosed(m, plan.total_bits);
	f->disclosed_bits += plan.total_bits;
	if (x == 2) {
		qkd_log(m, QKD_LOG_INFO, "key %" PRIu64 ": keys differ after error correction; "
			"frame discarded", f->key_id);
		*why = QKD_ABORT_CONFIRM;
		return 0;
	}
	qkd_log(m, QKD_LOG_DEBUG, "key %" PRIu64 ": %" PRIu64 " bits confirmed with %u hash(es), "
		"%" PRIu64 " tag bits", f->key_id, f->bit_count, plan.hashes, plan.total_bits);
	f->state = QKD_STATE_CONFIRMED;
	return 1;
}

int main(int argc, char **argv)
{
	struct qkd_module m;
	struct qkd_stage st = { .m = &m, .input = QKD_STATE_CORRECTED, .input_name = "corrected",
				.work = confirm_frame,
				.in_place = true, .log_aborts = true };

	if (qkd_module_init(&m, &desc, argc, argv))
		return 2;
	qkd_stage_run(&st);
	return qkd_module_finish(&m);
}
