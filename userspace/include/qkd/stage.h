/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The frame loop of a post-processing stage that handles one block at a time
 * (qkd-estimate, qkd-confirm, qkd-pa): every input frame must be in the state
 * the stage expects, the stage's work turns it into an output frame or says
 * why the block is given up, and the result is written, or written as ABORTED
 * with that reason. Aborts are counted by reason for the exit summary (the
 * runtime counts only the total).
 */
#ifndef QKD_STAGE_H
#define QKD_STAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "qkd/frame.h"
#include "qkd/module.h"

/*
 * The stage's work on input frame f. 1: out holds the result; 0: abort the
 * block with reason *why; <0: fatal (the block is aborted with reason peer and
 * the module fails). In place (QKD_STAGE_IN_PLACE) out is f itself.
 */
typedef int (*qkd_stage_fn)(struct qkd_module *m, struct qkd_frame *f, struct qkd_frame *out,
			    enum qkd_abort_reason *why);

struct qkd_stage {
	struct qkd_module *m;
	enum qkd_frame_state input;	/* the state input frames must be in */
	const char *input_name;		/* that state in the error: "sifted" */
	qkd_stage_fn work;
	bool in_place;		/* the work changes f and f goes on (else a new out frame) */
	bool defer;		/* defer-auth: out starts from the input's accumulators */
	bool keep_qber;		/* an aborted out frame keeps the input's QBER; else it is
				 * unknown unless the block was aborted for its QBER */
	bool log_aborts;	/* log the aborts by reason at the end */
	uint64_t aborted_by[QKD_ABORT_PEER + 1];
};

/*
 * The defer-auth parameter of every stage that talks to its peer per block
 * (one help text, so that --help says the same everywhere).
 */
#define QKD_STAGE_PARAM_DEFER_AUTH(var)						\
	{ "defer-auth", QKD_PARAM_BOOL, "false",					\
	  "Fold this stage's transcript into the frame's deferred authentication "	\
	  "accumulators (closed by qkd-auth) instead of verifying tags per block here",	\
	  false, &(var), 0, 0 }

/*
 * Close the authentication of block key_id's exchange: verify the peer's tags
 * now, or fold the transcript into acc's deferred accumulators (defer). 1:
 * authentic (or deferred); 0: the tags do not match and the block is to be
 * aborted with reason auth; <0: the exchange failed. Both failures are logged.
 */
int qkd_stage_auth(struct qkd_module *m, uint64_t key_id, bool defer, struct qkd_frame *acc);

/* Write f as ABORTED with reason why, counted. Like qkd_module_abort_frame. */
int qkd_stage_abort(struct qkd_stage *st, struct qkd_frame *f, enum qkd_abort_reason why);
/*
 * Read, work and write until the input ends or something fatal happens (then
 * the module is marked failed). The caller ends with qkd_module_finish().
 */
void qkd_stage_run(struct qkd_stage *st);

#endif
