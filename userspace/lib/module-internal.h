/* SPDX-License-Identifier: GPL-2.0 */
/* Module runtime internals shared by module*.c. Not part of the libqkd API. */
#ifndef QKD_MODULE_INTERNAL_H
#define QKD_MODULE_INTERNAL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>

#include "qkd/module.h"
#include "qkd/statefile.h"

enum head_state { HEAD_EMPTY, HEAD_FULL, HEAD_EOF };

/* Everything the command line and config file can set besides parameters. */
struct qkd_module_opts {
	char *role;
	char *pipeline;
	char *instance;
	char *in[QKD_MAX_STREAMS], *out[QKD_MAX_STREAMS];
	unsigned n_in, n_out;
	bool in_from_cli, out_from_cli;
	char *peer, *listen;
	char *keypool;
	char *state_file;
	char *qpm;
	char *log_level;
	char *peer_timeout;
	char *config;
};

struct qkd_module_priv {
	struct qkd_module_opts opts;
	/* termination */
	atomic_bool stopping;
	atomic_bool in_read;	 /* main thread may block in a frame read */
	atomic_bool done;	 /* signal thread: stop waking */
	pthread_t main_thread, sig_thread;
	bool sig_thread_started;
	sigset_t old_mask;
	/* input merging */
	struct qkd_frame *cur;
	struct qkd_frame *head[QKD_MAX_STREAMS];
	enum head_state head_state[QKD_MAX_STREAMS];
	/* hibernation */
	struct qkd_state *loaded;
	int (*save_hook)(struct qkd_module *m, struct qkd_state *s);
	bool failed;
	bool service;
	/* peer exchanges: a received message not yet consumed (module-peer.c) */
	bool pending;
	uint64_t pending_key;
	uint16_t pending_type;
	uint8_t *pending_data;
	size_t pending_len, pending_cap;
	bool peer_ended;	/* QKD_MSG_END received */
	bool refused_valid;	/* refused_key: the last key id we sent QKD_MSG_ABORT for */
	uint64_t refused_key;
	bool eof;		/* end of input reached (not a stop request) */
};

/* module-opts.c */
int qkd_module_parse(struct qkd_module *m, int argc, char **argv);
int qkd_param_assign(struct qkd_module *m, struct qkd_param *p, const char *value,
		     char *err, size_t errlen);
struct qkd_param *qkd_param_find(const struct qkd_module *m, const char *name);
void qkd_module_free_opts(struct qkd_module *m);
int qkd_split_addr(const char *spec, char **host, char **port);

/* module-help.c */
void qkd_module_print_help(const struct qkd_module_desc *d, FILE *f);
void qkd_module_print_version(const struct qkd_module_desc *d, FILE *f);

/* module-peer.c */
void qkd_module_peer_finish(struct qkd_module *m);

/* module-signal.c */
int qkd_module_signals_start(struct qkd_module *m);
void qkd_module_signals_stop(struct qkd_module *m);


/* The options every module understands (module-opts.c); also drives --help. */
enum qkd_opt_id {
	OPT_ROLE, OPT_PIPELINE, OPT_INSTANCE, OPT_IN, OPT_OUT, OPT_PEER, OPT_LISTEN,
	OPT_KEYPOOL, OPT_PEER_TIMEOUT, OPT_CONFIG, OPT_SET, OPT_STATE_FILE, OPT_QPM,
	OPT_LOG_LEVEL, OPT_HELP, OPT_VERSION,
};

struct qkd_common_opt {
	const char *name;
	enum qkd_opt_id id;
	const char *meta;	/* NULL: takes no value */
	unsigned needs;		/* shown/accepted only if desc->needs has one of these; 0 = always */
	const char *help;
};

extern const struct qkd_common_opt qkd_common_opts[];
#endif
