/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Module runtime: what every pipeline stage shares. A module is an ordinary
 * program written with POSIX-shaped calls:
 *
 *	struct qkd_module m;
 *	if (qkd_module_init(&m, &desc, argc, argv))
 *		return 2;
 *	while (qkd_module_read(&m, &f) > 0) {
 *		... qkd_send(m.peer, f->key_id, ...); qkd_recv(m.peer, ...) ...
 *		qkd_module_write(&m, f);
 *	}
 *	return qkd_module_finish(&m);
 *
 * Lifecycle: new -> ready (configured, streams open) -> running (first frame)
 * <-> paused -> terminating (SIGTERM/SIGINT or end of input). On SIGTERM the
 * frame being processed is finished and written; nothing already accepted is
 * lost.
 *
 * Parallel instances: --instance I/N. With several --out streams, frame key id
 * k goes to output k mod N_out; with several --in streams, frames are merged
 * back into key-id order.
 */
#ifndef QKD_MODULE_H
#define QKD_MODULE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include "frame.h"
#include "peer.h"
#include "stream.h"

enum qkd_param_type { QKD_PARAM_INT, QKD_PARAM_DOUBLE, QKD_PARAM_STRING, QKD_PARAM_BOOL };

/*
 * A tunable parameter. Values come from, in increasing priority: the default,
 * --config FILE (key=value lines), --set NAME=VALUE / --NAME VALUE on the
 * command line, and (for live ones) CoAP PUT while running, taking effect from
 * the next frame.
 */
struct qkd_param {
	const char *name;
	enum qkd_param_type type;
	const char *def;   /* default, as text */
	const char *help;  /* one sentence for --help */
	bool live;	   /* may change while running */
	void *var;	   /* int64_t*, double*, char** (malloc'd), bool* */
	double min, max;   /* numeric bounds (inclusive); both 0 = unbounded */
};

#define QKD_NEEDS_INPUT 0x1
#define QKD_NEEDS_OUTPUT 0x2
#define QKD_NEEDS_PEER 0x4
/*
 * The module wants to see ABORTED frames. Without it, qkd_module_read()
 * forwards them to the output itself (counted in frames_in/frames_out) and
 * hands the module only live frames.
 */
#define QKD_SEES_ABORTED 0x8

struct qkd_module_desc {
	const char *name;	 /* executable name, e.g. "qkd-sift" */
	const char *stage;	 /* peer-channel stage name, e.g. "sift" */
	const char *summary;	 /* one line for NAME in --help */
	const char *description; /* paragraphs for DESCRIPTION in --help */
	unsigned needs;		 /* QKD_NEEDS_* */
	struct qkd_param *params; /* terminated by an entry with name == NULL */
	const char *examples;	 /* preformatted lines for EXAMPLES in --help, or NULL */
};

enum qkd_module_state {
	QKD_MOD_NEW,
	QKD_MOD_READY,
	QKD_MOD_RUNNING,
	QKD_MOD_PAUSED,
	QKD_MOD_TERMINATING,
};

/* Counters kept for statistics and the CoAP interface. Updated under lock. */
struct qkd_stats {
	uint64_t frames_in, frames_out, frames_aborted;
	uint64_t bits_in, bits_out;	/* key bits read / written */
	uint64_t disclosed_bits;	/* added by this stage */
	uint64_t auth_failures;
	double last_qber;		/* of the last frame, -1 unknown */
	double last_efficiency;		/* reconciliation efficiency f, 0 if n/a */
	uint64_t start_ns;		/* CLOCK_MONOTONIC at running */
};

#define QKD_MAX_STREAMS 16

struct qkd_module {
	const struct qkd_module_desc *desc;
	enum qkd_role role;
	char *pipeline;
	unsigned instance, instances;
	struct qkd_stream *in[QKD_MAX_STREAMS];
	unsigned n_in;
	struct qkd_stream *out[QKD_MAX_STREAMS];
	unsigned n_out;
	struct qkd_peer *peer;		/* when desc->needs & QKD_NEEDS_PEER */
	struct qkd_keypool *pool;
	char *state_file;		/* --state-file: hibernation state */
	char *qpm;			/* --qpm HOST:PORT, or NULL */
	int log_level;
	struct qkd_stats stats;
	pthread_mutex_t lock;		/* stats, state and live parameters */
	volatile enum qkd_module_state state;
	void *priv;			/* runtime-private */
};

/*
 * Parse the command line and config file, open streams, key pool and (if
 * needed) the peer channel. Prints --help/--version and exits 0 itself; on a
 * usage or set-up error prints a clear message to stderr and returns -1.
 */
int qkd_module_init(struct qkd_module *m, const struct qkd_module_desc *d, int argc, char **argv);

/*
 * Next input frame, in key-id order across inputs. 1 = frame, 0 = end of input
 * or termination requested, <0 = error (already logged). *f is set to a frame
 * owned by the runtime: the module may modify it (and grow it with
 * qkd_frame_reserve) but must not free it; it stays valid until the next read
 * and is freed by qkd_module_finish(). Blocks while the module is paused.
 * ABORTED frames are forwarded to the output by the runtime unless the module
 * set QKD_SEES_ABORTED.
 */
int qkd_module_read(struct qkd_module *m, struct qkd_frame **f);
/* Write a frame to the output chosen by its key id; accounts it in stats. */
int qkd_module_write(struct qkd_module *m, const struct qkd_frame *f);
/*
 * Abort a frame in this stage: wipe its payload, mark it ABORTED with the
 * reason, count it (frames_aborted; auth_failures for QKD_ABORT_AUTH) and
 * write it to the output. Do not write it again. Returns as qkd_module_write.
 */
int qkd_module_abort_frame(struct qkd_module *m, struct qkd_frame *f, enum qkd_abort_reason why);
/*
 * Push every frame written so far down the output streams and wait until it
 * is written. Writes are batched; a module about to wait for something other
 * than its input (a clock, the peer) calls this so its downstream is not kept
 * waiting. The runtime does it itself before waiting for the peer's next
 * exchange. 0 or -errno (already logged).
 */
int qkd_module_flush(struct qkd_module *m);
/* Add bits this stage disclosed on the peer channel for statistics. */
void qkd_module_count_disclosed(struct qkd_module *m, uint64_t bits);
/* true once SIGTERM/SIGINT arrived or the QPM asked to terminate. */
bool qkd_module_stopping(const struct qkd_module *m);
/* Flush and close everything, wipe secrets. Returns the exit status for main. */
int qkd_module_finish(struct qkd_module *m);

/*
 * Hibernation (--state-file). The state loaded at start, or NULL when the
 * file did not exist; and a hook called by qkd_module_finish() on a clean exit
 * to add the module's own records before the file is written (the runtime
 * itself records its statistics counters and restores them at start).
 */
struct qkd_state;
const struct qkd_state *qkd_module_saved_state(const struct qkd_module *m);
void qkd_module_set_save_hook(struct qkd_module *m,
			      int (*hook)(struct qkd_module *m, struct qkd_state *s));
/* Mark the module failed: qkd_module_finish() then returns 1 and saves no state. */
void qkd_module_fail(struct qkd_module *m);
const char *qkd_module_state_name(enum qkd_module_state s);
/* Open a stream from a spec: PATH, fd:N or - (stdin/stdout); flags as qkd_stream_open. */
struct qkd_stream *qkd_module_open_stream(const char *spec, unsigned flags, const char **err);

/*
 * Per-frame request/reply exchanges on the peer channel that survive frames
 * missing on one side (dropped or aborted upstream on one side only) and
 * either side ending first. Each exchange has an initiator, which sends its
 * request for key id k with qkd_module_peer_send() and waits with
 * qkd_module_peer_reply(), and a responder, which gets the request for its
 * frame k with qkd_module_peer_request() and answers with
 * qkd_module_peer_send(). Requests for key ids the responder does not have
 * are answered with QKD_MSG_ABORT; a request for a later key id is kept and
 * tells the responder its own frame has no counterpart. Transcripts of
 * skipped key ids are forgotten.
 *
 * At the end qkd_module_finish() sends QKD_MSG_END and, at end of input,
 * refuses the peer's remaining requests until its QKD_MSG_END arrives, so both
 * sides finish cleanly whoever runs out of frames first. Once the peer has
 * ended, every call returns 0 without touching the channel.
 *
 * All return 1 on success (*msg valid until the next call on this module), 0
 * when the frame has no counterpart, the peer aborted it or the peer has ended
 * (abort the frame with QKD_ABORT_PEER; no more messages for k), or <0 on a
 * channel failure or protocol violation (already logged).
 */
#define QKD_MSG_ABORT 0xffff
#define QKD_MSG_END 0xfffe
int qkd_module_peer_send(struct qkd_module *m, uint64_t key_id, uint16_t type, const void *buf,
			 size_t len);
int qkd_module_peer_request(struct qkd_module *m, uint64_t key_id, uint16_t type,
			    struct qkd_msg *msg);
int qkd_module_peer_reply(struct qkd_module *m, uint64_t key_id, uint16_t type,
			  struct qkd_msg *msg);
/* Tell the peer this side gives up on key_id (it must not wait for us). 0 or -errno. */
int qkd_module_peer_abort(struct qkd_module *m, uint64_t key_id);
/* true once the peer sent QKD_MSG_END. */
bool qkd_module_peer_ended(const struct qkd_module *m);

/* Logging to stderr with module name, role and instance. Never log key material. */
enum { QKD_LOG_ERR, QKD_LOG_WARN, QKD_LOG_INFO, QKD_LOG_DEBUG };
void qkd_log(const struct qkd_module *m, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Randomness: getrandom(), retried; aborts the process if the kernel refuses. */
void qkd_random(void *buf, size_t len);

#endif
