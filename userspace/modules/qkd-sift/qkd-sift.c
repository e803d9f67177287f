// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-sift: BB84 sifting over the peer channel (protocol in qkd/sift.h).
 * Bob announces his detections and bases, Alice answers with the
 * basis-match mask, both keep the matching positions. The block's transcript
 * is authenticated before a sifted frame is written: a failed verification
 * yields an ABORTED frame (QKD_ABORT_AUTH), never key.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/module.h"
#include "qkd/raw.h"
#include "qkd/sift.h"

enum { MSG_DETECTIONS = 1, MSG_MASK = 2 };

static bool p_defer;

static struct qkd_param params[] = {
	{ "defer-auth", QKD_PARAM_BOOL, "false",
	  "Fold this stage's transcript into the frame's deferred authentication "
	  "accumulators (closed by qkd-auth) instead of verifying tags per block here",
	  false, &p_defer, 0, 0 },
	{ NULL },
};

static const struct qkd_module_desc desc = {
	.name = "qkd-sift",
	.stage = "sift",
	.summary = "BB84 sifting over the authenticated peer channel",
	.description =
		"Reads RAW frames (one byte per time slot, qkd/raw.h) and writes SIFTED frames "
		"of packed key bits. For every frame Bob sends the positions of his "
		"detections (as LEB128 gaps) and the basis of each; Alice checks the "
		"announcement against her own frame and answers with a bit mask saying where "
		"the bases match; both keep their bit at exactly those positions, in slot "
		"order. Bit values never leave the station. Multi-clicks were already given a "
		"random bit by Bob's detector logic (squashing) and are counted.\n\n"
		"Every message of the block is absorbed into the Wegman-Carter authentication "
		"of the peer channel. Before a sifted frame is written both sides exchange "
		"one-time-padded tags over the block's transcript (or, with defer-auth, fold "
		"it into the frame for qkd-auth); if they do not verify the frame is written "
		"as ABORTED with reason auth and counted as an authentication failure. A "
		"frame that only one side has, or a malformed announcement, is aborted on both "
		"sides (reason peer). Sifting discloses bases, not key bits, so the frame's "
		"disclosed-bit count is unchanged.",
	.needs = QKD_NEEDS_INPUT | QKD_NEEDS_OUTPUT | QKD_NEEDS_PEER,
	.params = params,
	.examples =
		"Bob listens, Alice connects; both read their simulator's frames:\n"
		"    qkd-sim --role bob --seed 1 --frames 10 |\n"
		"      qkd-sift --role bob --listen 127.0.0.1:7001 \\\n"
		"        --keypool bob.pool > bob.sifted &\n"
		"    qkd-sim --role alice --seed 1 --frames 10 |\n"
		"      qkd-sift --role alice --peer 127.0.0.1:7001 \\\n"
		"        --keypool alice.pool > alice.sifted",
};

/* Sift one frame. 1 = sifted frame ready in *out, 0 = aborted (reason set), <0 fatal. */
static int sift_frame(struct qkd_module *m, const struct qkd_frame *f, struct qkd_frame *out,
		      enum qkd_abort_reason *why)
{
	struct qkd_sift_det det = { 0 };
	struct qkd_msg msg;
	uint8_t *buf = NULL, *mask = NULL;
	const uint8_t *use_mask;
	const char *err = NULL;
	bool bad_mask = false;
	size_t len;
	int r;

	*why = QKD_ABORT_PEER;
	if (m->role == QKD_BOB) {
		r = qkd_sift_detections(f->payload, f->bit_count, &det);
		if (!r)
			r = qkd_sift_encode(&det, &buf, &len);
		if (r) {
			qkd_log(m, QKD_LOG_ERR, "out of memory");
			goto fatal;
		}
		r = qkd_module_peer_send(m, f->key_id, MSG_DETECTIONS, buf, len);
		free(buf);
		if (r < 0)
			goto fatal;
		if (r == 0)
			goto done;
		r = qkd_module_peer_reply(m, f->key_id, MSG_MASK, &msg);
		if (r <= 0)
			goto done;
		/*
		 * A malformed mask still goes through the tag exchange, which Alice
		 * is already waiting in: a forged one then fails authentication on
		 * both sides; an authentic but malformed one is a peer bug.
		 */
		if (qkd_sift_check_mask(&det, msg.data, msg.len, &err)) {
			qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": %s", f->key_id, err);
			bad_mask = true;
		}
		use_mask = msg.data;
	} else {
		int64_t matches;

		r = qkd_module_peer_request(m, f->key_id, MSG_DETECTIONS, &msg);
		if (r <= 0)
			goto done;
		if (qkd_sift_decode(msg.data, msg.len, &det, &err) ||
		    !(mask = malloc(qkd_sift_mask_len(det.n) + 1))) {
			qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": %s", f->key_id,
				err ? err : "out of memory");
			r = qkd_module_peer_abort(m, f->key_id);
			goto done_zero;
		}
		matches = qkd_sift_match(f->payload, f->bit_count, &det, mask, &err);
		if (matches < 0) {
			qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": %s", f->key_id, err);
			r = qkd_module_peer_abort(m, f->key_id);
			goto done_zero;
		}
		r = qkd_module_peer_send(m, f->key_id, MSG_MASK, mask, qkd_sift_mask_len(det.n));
		if (r < 0)
			goto fatal;
		if (r == 0)
			goto done;
		use_mask = mask;
	}

	/* Build the sifted block, then authenticate before it can leave. */
	r = qkd_frame_reserve(out, qkd_bits_to_bytes(det.n) + 8);
	if (r) {
		qkd_log(m, QKD_LOG_ERR, "out of memory");
		goto fatal;
	}
	out->key_id = f->key_id;
	out->state = QKD_STATE_SIFTED;
	out->flags = f->flags;
	out->qber_ppm = QKD_QBER_UNKNOWN;
	out->disclosed_bits = f->disclosed_bits;
	out->auth_ctx = f->auth_ctx;
	out->abort_reason = 0;
	memcpy(out->auth_acc, f->auth_acc, sizeof(out->auth_acc));
	out->auth_stages = f->auth_stages;
	out->bit_count = bad_mask ? 0 : qkd_sift_keep(f->payload, &det, use_mask, out->payload);
	out->payload_len = qkd_bits_to_bytes(out->bit_count);

	r = p_defer ? qkd_peer_auth_defer(m->peer, f->key_id, out)
		    : qkd_peer_auth_verify(m->peer, f->key_id);
	if (r == -EBADMSG) {
		qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": authentication failed; no key from "
			"this block", f->key_id);
		*why = QKD_ABORT_AUTH;
		r = 0;
		goto done;
	}
	if (r < 0) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": authentication exchange: %s", f->key_id,
			qkd_peer_error(m->peer));
		goto fatal;
	}
	if (bad_mask) {
		r = 0;
		goto done;
	}
	qkd_log(m, QKD_LOG_DEBUG, "key %" PRIu64 ": %" PRIu64 " slots, %" PRIu64
		" detections (%" PRIu64 " multi), %" PRIu64 " sifted bits", f->key_id,
		f->bit_count, det.n, det.multi, out->bit_count);
	r = 1;
	goto done;
done_zero:
	r = r < 0 ? r : 0;
done:
	free(mask);
	qkd_sift_det_free(&det);
	return r;
fatal:
	free(mask);
	qkd_sift_det_free(&det);
	return r < 0 ? r : -EIO;
}

int main(int argc, char **argv)
{
	struct qkd_module m;
	struct qkd_frame *f = NULL, *out;
	int r;

	if (qkd_module_init(&m, &desc, argc, argv))
		return 2;
	out = qkd_frame_new(4096);
	if (!out) {
		qkd_log(&m, QKD_LOG_ERR, "out of memory");
		qkd_module_fail(&m);
		return qkd_module_finish(&m);
	}
	while ((r = qkd_module_read(&m, &f)) > 0) {
		enum qkd_abort_reason why;

		if (f->state != QKD_STATE_RAW) {
			qkd_log(&m, QKD_LOG_ERR, "key %" PRIu64 ": input frame is %s, not raw; is "
				"qkd-sift in the right place?", f->key_id,
				qkd_frame_state_name(f->state));
			qkd_module_fail(&m);
			break;
		}
		if (!!(f->flags & QKD_FRAME_F_BOB) != (m.role == QKD_BOB))
			qkd_log(&m, QKD_LOG_WARN, "key %" PRIu64 ": frame comes from the other "
				"role's source", f->key_id);
		r = sift_frame(&m, f, out, &why);
		if (r > 0)
			r = qkd_module_write(&m, out);
		else if (r == 0) {
			out->key_id = f->key_id;
			out->flags = f->flags;
			out->qber_ppm = QKD_QBER_UNKNOWN;
			out->disclosed_bits = f->disclosed_bits;
			out->auth_ctx = f->auth_ctx;
			r = qkd_module_abort_frame(&m, out, why);
		} else {
			/* Channel broken: this frame cannot be sifted; account it as aborted. */
			out->key_id = f->key_id;
			out->flags = f->flags;
			out->qber_ppm = QKD_QBER_UNKNOWN;
			qkd_module_abort_frame(&m, out, QKD_ABORT_PEER);
			qkd_module_fail(&m);
			break;
		}
		if (r < 0)
			break;
	}
	qkd_frame_free(out);
	return qkd_module_finish(&m);
}
