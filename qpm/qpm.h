/* SPDX-License-Identifier: GPL-2.0 */
/*
 * QKD Protocol Manager internals: pipeline definitions (pipeline.c), the
 * process supervisor (supervise.c) and the CoAP admin interface (admin.c).
 * Everything runs on one thread: the libcoap I/O loop in qpm.c calls
 * qpm_tick() between packets, so no locking is needed.
 */
#ifndef QPM_H
#define QPM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <coap3/coap.h>
#include "qkd/peer.h"
#include "qkd/service-util.h"

#define QPM_NAME_MAX 64
#define QPM_MAX_MODULES 32
#define QPM_MAX_INSTANCES 16	/* QKD_MAX_STREAMS in the runtime */
#define QPM_MAX_PARAMS 64

struct qpm_param {
	char *name, *value;
};

/* One <module> of a side, as written in the XML. */
struct qpm_moddef {
	char *name;		/* unique within the side, default: exec without "qkd-" */
	char *exec;		/* "qkd-sift" */
	char *path;		/* resolved executable */
	char *config;		/* optional --config file */
	char *epoch_param;	/* source's first-key-id parameter for crash restarts */
	unsigned instances;
	bool peer;		/* has a peer channel to the same module of the other side */
	char *peer_addr;	/* NULL: 127.0.0.1 */
	unsigned peer_port;	/* 0: chosen by the QPM at each start */
	struct qpm_param *params;
	unsigned n_params;
	int line;
};

struct qpm_side {
	bool present;
	enum qkd_role role;
	char *keypool;		/* --keypool for modules with a peer channel */
	char *input;		/* optional file the first module reads */
	char *output;		/* optional file the last module appends to */
	struct qpm_moddef mods[QPM_MAX_MODULES];
	unsigned n_mods;
	int line;
};

enum qpm_pl_state {
	PL_LOADED, PL_STARTING, PL_RUNNING, PL_RESTARTING, PL_STOPPING, PL_STOPPED,
	PL_HIBERNATING, PL_HIBERNATED, PL_COMPLETED, PL_FAILED,
};

struct qpm_pipeline;

/* One running (or restartable) process: instance inst of module mod of a side. */
struct qpm_proc {
	struct qpm_pipeline *pl;
	int side;		/* QKD_ALICE / QKD_BOB */
	unsigned mod, inst;
	char id[160];		/* PIPELINE/ROLE/MODULE/INSTANCE */
	pid_t pid;		/* 0 when not running */
	int wstatus;		/* of the last exit */
	bool ever_exited;
	bool registered;
	uint16_t port;		/* its CoAP service port */
	coap_session_t *sess;	/* for stats polling */
	bool poll_pending;
	uint64_t spawned_ms, registered_ms, poll_ms;
	char state[16];		/* module's own state, from its stats */
	char *stats;		/* last /stats JSON (malloc'd) */
	unsigned restarts;	/* times this process was started again */
	char statefile[512], log[512];
	int pipes_in[QPM_MAX_INSTANCES], pipes_out[QPM_MAX_INSTANCES];
	unsigned n_in, n_out;
};

struct qpm_pipeline {
	struct qpm_pipeline *next;
	char name[QPM_NAME_MAX + 1];
	char *source;		/* file name the definition came from */
	struct qpm_side sides[2];
	unsigned register_timeout_ms, max_restarts, backoff_ms, stop_timeout_ms;
	char *log_level;
	char *state_dir;	/* NULL: <run dir>/<name> */
	enum qpm_pl_state state;
	char error[512];
	struct qpm_proc *procs;
	unsigned n_procs;
	unsigned restarts, consecutive_restarts;
	uint64_t deadline_ms;	/* registration / stop deadline */
	uint64_t restart_at_ms;	/* PL_RESTARTING: when to start again */
	uint64_t running_since_ms;
	bool killed;		/* SIGKILL already sent in this stop */
	bool restart_pending;	/* stop then start again (supervision) */
	unsigned starts;
	bool unclean;		/* the next start follows a crash: new key-id epoch */
	uint64_t epoch;
};

/* Key ids of epoch E start at E << QPM_EPOCH_SHIFT. */
#define QPM_EPOCH_SHIFT 40

struct qpm {
	coap_context_t *ctx;
	char host[160];		/* loopback address modules register at */
	uint16_t port;
	char *run_dir;
	char *schema;
	char *module_dirs[8];
	unsigned n_module_dirs;
	struct qpm_pipeline *pipelines;
	bool verbose;
	volatile int quit;
	uint64_t start_ms;
};

extern struct qpm qpm;

uint64_t qpm_now_ms(void);
void qpm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum { QPM_ERR, QPM_WARN, QPM_INFO, QPM_DEBUG };

/* pipeline.c: parse and validate; on failure NULL and a multi-line message. */
struct qpm_pipeline *qpm_pipeline_load(const char *xml, size_t len, const char *source,
				       struct qkd_buf *err);
void qpm_pipeline_free(struct qpm_pipeline *pl);
struct qpm_pipeline *qpm_pipeline_find(const char *name);
const char *qpm_state_name(enum qpm_pl_state s);
const char *qpm_role_name(int side);

/* supervise.c */
int qpm_pipeline_start(struct qpm_pipeline *pl, char *err, size_t errlen);
int qpm_pipeline_stop(struct qpm_pipeline *pl, bool hibernate, char *err, size_t errlen);
void qpm_tick(void);
/* Apply how the pipeline last ended (state dir) to a freshly loaded one. */
void qpm_pipeline_restore(struct qpm_pipeline *pl);
void qpm_shutdown(void);
struct qpm_proc *qpm_proc_find(const char *id);
int qpm_register(struct qkd_json j, char *err, size_t errlen);
void qpm_deregister(pid_t pid);
void qpm_proc_stats_json(struct qpm_proc *p, struct qkd_buf *b);
void qpm_pipeline_json(struct qpm_pipeline *pl, struct qkd_buf *b, bool detail);
void qpm_stats_response(coap_session_t *sess, const coap_pdu_t *recv);
void qpm_session_gone(coap_session_t *sess);

/* persist.c: loaded definitions survive a QPM restart (RUN_DIR/pipelines/). */
int qpm_persist_save(const char *name, const char *xml, size_t len);
void qpm_persist_remove(const char *name);
void qpm_persist_load_all(void);

/* admin.c */
int qpm_admin_init(coap_context_t *ctx);

#endif
