// SPDX-License-Identifier: GPL-2.0
/* The per-block frame loop shared by qkd-estimate, qkd-confirm and qkd-pa (qkd/stage.h). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "qkd/peer.h"
#include "qkd/stage.h"

int qkd_stage_abort(struct qkd_stage *st, struct qkd_frame *f, enum qkd_abort_reason why)
{
	if ((unsigned)why <= QKD_ABORT_PEER)
		st->aborted_by[why]++;
	return qkd_module_abort_frame(st->m, f, why);
}

int qkd_stage_auth(struct qkd_module *m, uint64_t key_id, bool defer, struct qkd_frame *acc)
{
	int r = defer ? qkd_peer_auth_defer(m->peer, key_id, acc)
		      : qkd_peer_auth_verify(m->peer, key_id);

	if (r == -EBADMSG) {
		qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": authentication failed; no key from "
			"this block", key_id);
		return 0;
	}
	if (r < 0) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": authentication exchange: %s", key_id,
			qkd_peer_error(m->peer));
		return r;
	}
	return 1;
}

static void log_aborts(const struct qkd_stage *st)
{
	qkd_log(st->m, QKD_LOG_INFO, "aborted frames by reason: too-short %" PRIu64 ", confirm %"
		PRIu64 ", auth %" PRIu64 ", peer %" PRIu64, st->aborted_by[QKD_ABORT_TOO_SHORT],
		st->aborted_by[QKD_ABORT_CONFIRM], st->aborted_by[QKD_ABORT_AUTH],
		st->aborted_by[QKD_ABORT_PEER]);
}

/*
 * An aborted block still tells the next stages which block it was (and
 * both sides abort it alike): out takes the input's identity.
 */
static void carry_identity(const struct qkd_stage *st, const struct qkd_frame *f,
			   struct qkd_frame *out, int r, enum qkd_abort_reason why)
{
	out->key_id = f->key_id;
	out->flags = f->flags;
	if (st->keep_qber)
		out->qber_ppm = f->qber_ppm;
	else if (r < 0 || why != QKD_ABORT_QBER)
		out->qber_ppm = QKD_QBER_UNKNOWN;
	out->disclosed_bits = f->disclosed_bits;
	out->auth_ctx = f->auth_ctx;
}

void qkd_stage_run(struct qkd_stage *st)
{
	struct qkd_module *m = st->m;
	struct qkd_frame *f = NULL, *out = NULL;
	int r;

	if (!st->in_place) {
		out = qkd_frame_new(4096);
		if (!out) {
			qkd_log(m, QKD_LOG_ERR, "out of memory");
			qkd_module_fail(m);
			return;
		}
	}
	while ((r = qkd_module_read(m, &f)) > 0) {
		struct qkd_frame *o = st->in_place ? f : out;
		enum qkd_abort_reason why = QKD_ABORT_PEER;

		if (f->state != st->input) {
			qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": input frame is %s, not %s; is %s in "
				"the right place?", f->key_id, qkd_frame_state_name(f->state),
				st->input_name, m->desc->name);
			qkd_module_fail(m);
			break;
		}
		if (!st->in_place && st->defer) {
			/* Deferred digests are folded into out: start from the input's. */
			memcpy(out->auth_acc, f->auth_acc, sizeof(out->auth_acc));
			out->auth_stages = f->auth_stages;
		}
		r = st->work(m, f, o, &why);
		if (r > 0) {
			r = qkd_module_write(m, o);
		} else {
			if (!st->in_place)
				carry_identity(st, f, out, r, why);
			if (r < 0) {
				qkd_stage_abort(st, o, QKD_ABORT_PEER);
				qkd_module_fail(m);
				break;
			}
			r = qkd_stage_abort(st, o, why);
		}
		if (r < 0)
			break;
	}
	qkd_frame_free(out);
	if (st->log_aborts)
		log_aborts(st);
}
