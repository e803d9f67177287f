// SPDX-License-Identifier: GPL-2.0
/*
 * Module runtime: set-up, the frame loop calls, statistics, hibernation state
 * and shutdown (API in qkd/module.h). Option parsing lives in module-opts.c,
 * --help in module-help.c, termination signals in module-signal.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "module-internal.h"
#include "qkd/keypool.h"
#include "qkd/service.h"
#include "qkd/statefile.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *role_name(enum qkd_role r)
{
	return r == QKD_BOB ? "bob" : "alice";
}

const char *qkd_module_state_name(enum qkd_module_state s)
{
	static const char *const names[] = { "new", "ready", "running", "paused", "terminating" };

	return (unsigned)s < 5 ? names[s] : "unknown";
}

void qkd_log(const struct qkd_module *m, int level, const char *fmt, ...)
{
	static const char *const lv[] = { "error", "warning", "info", "debug" };
	char msg[1024];
	va_list ap;

	if (m && level > m->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One write per line so the lines of concurrent processes do not mix. */
	if (m && m->desc)
		fprintf(stderr, "%s[%s/%u] %s: %s\n", m->desc->name, role_name(m->role),
			m->instance, lv[level & 3], msg);
	else
		fprintf(stderr, "qkd %s: %s\n", lv[level & 3], msg);
}

struct qkd_stream *qkd_module_open_stream(const char *spec, unsigned flags, const char **err)
{
	bool wr = flags & QKD_STREAM_WRITE;
	struct qkd_stream *s;
	int fd;

	if (!strcmp(spec, "-")) {
		fd = wr ? STDOUT_FILENO : STDIN_FILENO;
	} else if (!strncmp(spec, "fd:", 3)) {
		char *end;
		long v = strtol(spec + 3, &end, 10);

		if (!spec[3] || *end || v < 0 || v > 65535) {
			*err = "fd:N wants a descriptor number";
			errno = EINVAL;
			return NULL;
		}
		fd = (int)v;
		if (fcntl(fd, F_GETFD) < 0) {
			*err = "descriptor is not open";
			return NULL;
		}
	} else {
		/* Frames carry key material: files we create are private. */
		fd = wr ? open(spec, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
			: open(spec, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			*err = strerror(errno);
			return NULL;
		}
	}
	s = qkd_stream_open(fd, flags);
	if (!s) {
		int e = errno;

		*err = strerror(e);
		if (strcmp(spec, "-") && strncmp(spec, "fd:", 3))
			close(fd);
		errno = e;
	}
	return s;
}

static int parse_log_level(const char *v)
{
	static const char *const names[][2] = {
		{ "error", "err" }, { "warning", "warn" }, { "info", "info" }, { "debug", "debug" },
	};

	for (int i = 0; i < 4; i++)
		if (!strcasecmp(v, names[i][0]) || !strcasecmp(v, names[i][1]))
			return i;
	if (v[0] >= '0' && v[0] <= '3' && !v[1])
		return v[0] - '0';
	return -1;
}

static void setup_error(const struct qkd_module *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void setup_error(const struct qkd_module *m, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", m->desc->name, msg);
}

/* Turn the parsed option strings into the module's settings. */
static int interpret(struct qkd_module *m)
{
	struct qkd_module_opts *o = &((struct qkd_module_priv *)m->priv)->opts;
	const char *usage = "\nTry '%s --help' for more information.";
	char *end;

	if (o->log_level) {
		int l = parse_log_level(o->log_level);

		if (l < 0) {
			setup_error(m, "option '--log-level': '%s' is not one of error, warning, "
				       "info, debug", o->log_level);
			return -1;
		}
		m->log_level = l;
	}
	if (o->role) {
		if (!strcasecmp(o->role, "alice")) {
			m->role = QKD_ALICE;
		} else if (!strcasecmp(o->role, "bob")) {
			m->role = QKD_BOB;
		} else {
			setup_error(m, "option '--role': '%s' is neither alice nor bob", o->role);
			return -1;
		}
	} else if (m->desc->needs & QKD_NEEDS_PEER) {
		fprintf(stderr, "%s: --role alice|bob is required", m->desc->name);
		fprintf(stderr, usage, m->desc->name);
		fputc('\n', stderr);
		return -1;
	}
	m->pipeline = strdup(o->pipeline ? o->pipeline : "default");
	if (!m->pipeline)
		return -1;
	if (o->instance) {
		unsigned long i, n;

		errno = 0;
		i = strtoul(o->instance, &end, 10);
		if (end == o->instance || *end != '/' || o->instance[0] == '-')
			goto bad_instance;
		n = strtoul(end + 1, &end, 10);
		if (*end || errno || n < 1 || n > 4096 || i >= n)
			goto bad_instance;
		m->instance = (unsigned)i;
		m->instances = (unsigned)n;
	}
	if (o->state_file && !(m->state_file = strdup(o->state_file)))
		return -1;
	if (o->qpm && !(m->qpm = strdup(o->qpm)))
		return -1;
	return 0;
bad_instance:
	setup_error(m, "option '--instance': '%s' is not I/N with 0 <= I < N <= 4096",
		    o->instance);
	return -1;
}

static const char *const stat_keys[] = {
	"frames-in", "frames-out", "frames-aborted", "bits-in", "bits-out", "disclosed-bits",
	"auth-failures",
};

static uint64_t *stat_ptr(struct qkd_stats *s, int i)
{
	uint64_t *p[] = { &s->frames_in, &s->frames_out, &s->frames_aborted, &s->bits_in,
			  &s->bits_out, &s->disclosed_bits, &s->auth_failures };

	return p[i];
}

static int load_state(struct qkd_module *m)
{
	struct qkd_module_priv *pv = m->priv;
	const char *err = NULL;

	if (!m->state_file || access(m->state_file, F_OK))
		return 0;
	pv->loaded = qkd_state_load(m->state_file, m->desc->name, role_name(m->role), &err);
	if (!pv->loaded) {
		setup_error(m, "state file '%s': %s", m->state_file, err);
		return -1;
	}
	for (int i = 0; i < (int)(sizeof(stat_keys) / sizeof(stat_keys[0])); i++) {
		uint64_t v;

		if (!qkd_state_get_u64(pv->loaded, stat_keys[i], &v))
			*stat_ptr(&m->stats, i) = v;
	}
	qkd_log(m, QKD_LOG_INFO, "resuming from state file %s", m->state_file);
	return 0;
}

/* The same descriptor twice would be read (or closed) by two streams. */
static int duplicate_spec(struct qkd_module *m, char **list, unsigned n, const char *what)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = i + 1; j < n; j++)
			if (!strcmp(list[i], list[j]) && (!strcmp(list[i], "-") ||
							   !strncmp(list[i], "fd:", 3))) {
				setup_error(m, "--%s %s given twice", what, list[i]);
				return -1;
			}
	return 0;
}

static int open_streams(struct qkd_module *m)
{
	struct qkd_module_opts *o = &((struct qkd_module_priv *)m->priv)->opts;
	const char *err = NULL;
	unsigned i;

	if (duplicate_spec(m, o->in, o->n_in, "in") || duplicate_spec(m, o->out, o->n_out, "out"))
		return -1;

	if (m->desc->needs & QKD_NEEDS_INPUT) {
		unsigned n = o->n_in ? o->n_in : 1;

		for (i = 0; i < n; i++) {
			const char *spec = o->n_in ? o->in[i] : "-";

			m->in[i] = qkd_module_open_stream(spec, QKD_STREAM_READ, &err);
			if (!m->in[i]) {
				setup_error(m, "cannot open input '%s': %s", spec, err);
				return -1;
			}
			m->n_in++;
		}
	}
	if (m->desc->needs & QKD_NEEDS_OUTPUT) {
		unsigned n = o->n_out ? o->n_out : 1;

		for (i = 0; i < n; i++) {
			const char *spec = o->n_out ? o->out[i] : "-";

			m->out[i] = qkd_module_open_stream(spec, QKD_STREAM_WRITE, &err);
			if (!m->out[i]) {
				setup_error(m, "cannot open output '%s': %s", spec, err);
				return -1;
			}
			m->n_out++;
		}
	}
	return 0;
}

static int open_peer(struct qkd_module *m)
{
	struct qkd_module_opts *o = &((struct qkd_module_priv *)m->priv)->opts;
	struct qkd_peer_config cfg = { 0 };
	char *host = NULL, *port = NULL, *end;
	const char *spec;
	long timeout = 0;

	if (!(m->desc->needs & QKD_NEEDS_PEER))
		return 0;
	if (!o->keypool) {
		setup_error(m, "--keypool PATH is required for the peer channel");
		return -1;
	}
	if (!!o->peer == !!o->listen) {
		setup_error(m, "give exactly one of --peer HOST:PORT (connect) and --listen "
			       "HOST:PORT (accept)");
		return -1;
	}
	if (o->peer_timeout) {
		errno = 0;
		timeout = strtol(o->peer_timeout, &end, 10);
		if (!*o->peer_timeout || *end || errno || timeout < 1 || timeout > 86400000) {
			setup_error(m, "option '--peer-timeout': '%s' is not a number of "
				       "milliseconds (1 to 86400000)", o->peer_timeout);
			return -1;
		}
	}
	spec = o->peer ? o->peer : o->listen;
	if (qkd_split_addr(spec, &host, &port)) {
		setup_error(m, "option '--%s': '%s' is not HOST:PORT ([ADDR]:PORT for IPv6)",
			    o->peer ? "peer" : "listen", spec);
		return -1;
	}
	m->pool = qkd_keypool_open(o->keypool);
	if (!m->pool) {
		setup_error(m, "cannot open key pool '%s': %s", o->keypool, strerror(errno));
		goto fail;
	}
	cfg.role = m->role;
	cfg.pipeline = m->pipeline;
	cfg.stage = m->desc->stage ? m->desc->stage : m->desc->name;
	cfg.instance = m->instance;
	cfg.address = host;
	cfg.port = port;
	cfg.listen = o->listen != NULL;
	cfg.timeout_ms = (int)timeout;
	cfg.pool = m->pool;
	qkd_log(m, QKD_LOG_DEBUG, "peer channel: %s %s", cfg.listen ? "listening on" : "connecting to",
		spec);
	m->peer = qkd_peer_open(&cfg);
	if (!m->peer) {
		setup_error(m, "peer channel (%s %s): %s", cfg.listen ? "listen" : "connect", spec,
			    qkd_peer_open_error());
		goto fail;
	}
	free(host);
	free(port);
	return 0;
fail:
	free(host);
	free(port);
	return -1;
}

static void teardown(struct qkd_module *m)
{
	struct qkd_module_priv *pv = m->priv;

	if (pv) {
		qkd_module_signals_stop(m);
		qkd_frame_free(pv->cur);
		for (unsigned i = 0; i < QKD_MAX_STREAMS; i++)
			qkd_frame_free(pv->head[i]);
		qkd_state_free(pv->loaded);
		qkd_module_free_opts(m);
		free(pv);
		m->priv = NULL;
	}
	for (struct qkd_param *p = m->desc ? m->desc->params : NULL; p && p->name; p++) {
		if (p->type == QKD_PARAM_STRING && p->var) {
			free(*(char **)p->var);
			*(char **)p->var = NULL;
		}
	}
	free(m->pipeline);
	free(m->state_file);
	free(m->qpm);
	m->pipeline = m->state_file = m->qpm = NULL;
	pthread_mutex_destroy(&m->lock);
}

/* Close streams, peer and pool; returns nonzero if a flush failed. */
static int close_all(struct qkd_module *m)
{
	int ret = 0;

	for (unsigned i = 0; i < m->n_out; i++) {
		int r = qkd_stream_close(m->out[i]);

		if (r) {
			qkd_log(m, QKD_LOG_ERR, "output %u: flush failed: %s", i, strerror(-r));
			ret = -1;
		}
		m->out[i] = NULL;
	}
	m->n_out = 0;
	for (unsigned i = 0; i < m->n_in; i++) {
		qkd_stream_close(m->in[i]);
		m->in[i] = NULL;
	}
	m->n_in = 0;
	qkd_module_peer_finish(m);
	if (m->peer)
		qkd_peer_close(m->peer);
	m->peer = NULL;
	if (m->pool)
		qkd_keypool_close(m->pool);
	m->pool = NULL;
	return ret;
}

int qkd_module_init(struct qkd_module *m, const struct qkd_module_desc *d, int argc, char **argv)
{
	struct qkd_module_priv *pv;

	memset(m, 0, sizeof(*m));
	m->desc = d;
	m->log_level = QKD_LOG_INFO;
	m->role = QKD_ALICE;
	m->instances = 1;
	m->stats.last_qber = -1;
	m->state = QKD_MOD_NEW;
	pthread_mutex_init(&m->lock, NULL);
	pv = calloc(1, sizeof(*pv));
	if (!pv) {
		fprintf(stderr, "%s: out of memory\n", d->name);
		pthread_mutex_destroy(&m->lock);
		return -1;
	}
	m->priv = pv;

	if (qkd_module_parse(m, argc, argv) || interpret(m))
		goto fail;
	/* Before any other thread exists, so they all inherit the blocked signals. */
	if (qkd_module_signals_start(m)) {
		setup_error(m, "cannot set up signal handling");
		goto fail;
	}
	/*
	 * A refused state file is a set-up error the QPM must see as an exit
	 * before we register: registered and then gone, we would let the
	 * pipeline look running for a moment.
	 */
	if (load_state(m))
		goto fail;
	/*
	 * The control interface comes up next: opening the peer channel can
	 * wait for the other side, and the QPM expects to hear from us early.
	 */
	if (m->qpm) {
		if (qkd_service_start(m, m->qpm)) {
			setup_error(m, "cannot start the CoAP service for --qpm %s", m->qpm);
			goto fail;
		}
		pv->service = true;
	}
	if (open_streams(m) || open_peer(m))
		goto fail_close;
	pthread_mutex_lock(&m->lock);
	if (m->state == QKD_MOD_NEW)
		m->state = QKD_MOD_READY;
	pthread_mutex_unlock(&m->lock);
	qkd_log(m, QKD_LOG_DEBUG, "ready: pipeline %s, instance %u/%u, %u input(s), %u output(s)%s",
		m->pipeline, m->instance, m->instances, m->n_in, m->n_out,
		m->peer ? ", peer connected" : "");
	return 0;
fail_close:
	close_all(m);
fail:
	if (pv->service)
		qkd_service_stop(m);
	teardown(m);
	return -1;
}

static void mark_running(struct qkd_module *m)
{
	/* Caller holds m->lock. */
	if (!m->stats.start_ns)
		m->stats.start_ns = now_ns();
	if (m->state == QKD_MOD_READY)
		m->state = QKD_MOD_RUNNING;
}

bool qkd_module_stopping(const struct qkd_module *m)
{
	const struct qkd_module_priv *pv = m->priv;

	return atomic_load(&pv->stopping) || m->state == QKD_MOD_TERMINATING;
}

void qkd_module_fail(struct qkd_module *m)
{
	((struct qkd_module_priv *)m->priv)->failed = true;
}

/* Block while paused (the CoAP service flips the state). */
static void wait_unpaused(struct qkd_module *m)
{
	while (m->state == QKD_MOD_PAUSED && !qkd_module_stopping(m)) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
}

/* Read one frame from input i into *slot. 1, 0 (EOF or stop) or <0. */
static int read_one(struct qkd_module *m, unsigned i, struct qkd_frame **slot)
{
	struct qkd_module_priv *pv = m->priv;
	int r;

	for (;;) {
		atomic_store(&pv->in_read, true);
		/* Checked after in_read is set: a stop from now on gets us woken. */
		if (qkd_module_stopping(m)) {
			atomic_store(&pv->in_read, false);
			return 0;
		}
		r = qkd_read_frame(m->in[i], slot);
		atomic_store(&pv->in_read, false);
		if (r != -EINTR)
			break;
	}
	if (r < 0) {
		const char *why = qkd_stream_error(m->in[i]);

		qkd_log(m, QKD_LOG_ERR, "input %u: %s", i, why && *why ? why : strerror(-r));
		pv->failed = true;
	}
	return r;
}

/* Next frame in key-id order into pv->cur. */
static int next_frame(struct qkd_module *m)
{
	struct qkd_module_priv *pv = m->priv;
	int best = -1;

	if (m->n_in == 1) {
		int r;

		if (pv->head_state[0] == HEAD_EOF)
			return 0;
		r = read_one(m, 0, &pv->cur);
		if (r == 0 && !qkd_module_stopping(m)) {
			pv->head_state[0] = HEAD_EOF;
			pv->eof = true;
		}
		return r;
	}
	/* Fill every empty head; frames already taken are delivered even when stopping. */
	for (unsigned i = 0; i < m->n_in; i++) {
		int r;

		if (pv->head_state[i] != HEAD_EMPTY)
			continue;
		r = read_one(m, i, &pv->head[i]);
		if (r < 0)
			return r;
		if (r == 1)
			pv->head_state[i] = HEAD_FULL;
		else if (!qkd_module_stopping(m))
			pv->head_state[i] = HEAD_EOF;
	}
	for (unsigned i = 0; i < m->n_in; i++)
		if (pv->head_state[i] == HEAD_FULL &&
		    (best < 0 || pv->head[i]->key_id < pv->head[best]->key_id))
			best = (int)i;
	if (best < 0) {
		if (!qkd_module_stopping(m))
			pv->eof = true;
		return 0;
	}
	{
		struct qkd_frame *t = pv->cur;

		pv->cur = pv->head[best];
		pv->head[best] = t;
		pv->head_state[best] = HEAD_EMPTY;
	}
	return 1;
}

int qkd_module_read(struct qkd_module *m, struct qkd_frame **f)
{
	struct qkd_module_priv *pv = m->priv;

	if (!m->n_in)
		return 0;
	for (;;) {
		int r;

		wait_unpaused(m);
		r = next_frame(m);
		if (r <= 0)
			return r;
		pthread_mutex_lock(&m->lock);
		mark_running(m);
		m->stats.frames_in++;
		if (pv->cur->state != QKD_STATE_ABORTED)
			m->stats.bits_in += pv->cur->bit_count;
		pthread_mutex_unlock(&m->lock);
		if (pv->cur->state == QKD_STATE_ABORTED && !(m->desc->needs & QKD_SEES_ABORTED)) {
			qkd_log(m, QKD_LOG_DEBUG, "key %" PRIu64 ": passing on aborted frame",
				pv->cur->key_id);
			/* A module without outputs (a sink) just never sees it. */
			r = m->n_out ? qkd_module_write(m, pv->cur) : 0;
			if (r < 0)
				return r;
			continue;
		}
		*f = pv->cur;
		return 1;
	}
}

int qkd_module_write(struct qkd_module *m, const struct qkd_frame *f)
{
	struct qkd_module_priv *pv = m->priv;
	unsigned i;
	int r;

	if (!m->n_out) {
		qkd_log(m, QKD_LOG_ERR, "write without an output stream");
		return -EINVAL;
	}
	i = (unsigned)(f->key_id % m->n_out);
	r = qkd_write_frame(m->out[i], f);
	if (r < 0) {
		const char *why = qkd_stream_error(m->out[i]);

		qkd_log(m, QKD_LOG_ERR, "output %u: %s", i, why && *why ? why : strerror(-r));
		pv->failed = true;
		return r;
	}
	pthread_mutex_lock(&m->lock);
	mark_running(m);
	m->stats.frames_out++;
	if (f->state != QKD_STATE_ABORTED) {
		m->stats.bits_out += f->bit_count;
		if (f->qber_ppm != QKD_QBER_UNKNOWN)
			m->stats.last_qber = f->qber_ppm / 1e6;
	}
	pthread_mutex_unlock(&m->lock);
	if (pv->service)
		qkd_service_stats_changed(m);
	return 0;
}

int qkd_module_abort_frame(struct qkd_module *m, struct qkd_frame *f, enum qkd_abort_reason why)
{
	if (f->payload && f->payload_cap)
		explicit_bzero(f->payload, f->payload_cap);
	f->payload_len = 0;
	f->bit_count = 0;
	f->state = QKD_STATE_ABORTED;
	f->abort_reason = (uint8_t)why;
	pthread_mutex_lock(&m->lock);
	m->stats.frames_aborted++;
	if (why == QKD_ABORT_AUTH)
		m->stats.auth_failures++;
	pthread_mutex_unlock(&m->lock);
	return qkd_module_write(m, f);
}

int qkd_module_flush(struct qkd_module *m)
{
	int ret = 0;

	for (unsigned i = 0; i < m->n_out; i++) {
		int r = qkd_stream_flush(m->out[i]);

		if (r < 0 && !ret) {
			const char *why = qkd_stream_error(m->out[i]);

			qkd_log(m, QKD_LOG_ERR, "output %u: %s", i, why && *why ? why : strerror(-r));
			((struct qkd_module_priv *)m->priv)->failed = true;
			ret = r;
		}
	}
	return ret;
}

void qkd_module_count_disclosed(struct qkd_module *m, uint64_t bits)
{
	pthread_mutex_lock(&m->lock);
	m->stats.disclosed_bits += bits;
	pthread_mutex_unlock(&m->lock);
}

const struct qkd_state *qkd_module_saved_state(const struct qkd_module *m)
{
	return ((const struct qkd_module_priv *)m->priv)->loaded;
}

void qkd_module_set_save_hook(struct qkd_module *m,
			      int (*hook)(struct qkd_module *m, struct qkd_state *s))
{
	((struct qkd_module_priv *)m->priv)->save_hook = hook;
}

static int save_state(struct qkd_module *m)
{
	struct qkd_module_priv *pv = m->priv;
	struct qkd_state *s = qkd_state_new(m->desc->name, role_name(m->role));
	struct qkd_stats st;
	int r = s ? 0 : -ENOMEM;

	pthread_mutex_lock(&m->lock);
	st = m->stats;
	pthread_mutex_unlock(&m->lock);
	if (!r)
		r = qkd_state_set(s, "pipeline", m->pipeline);
	for (int i = 0; !r && i < (int)(sizeof(stat_keys) / sizeof(stat_keys[0])); i++)
		r = qkd_state_set_u64(s, stat_keys[i], *stat_ptr(&st, i));
	if (!r && pv->save_hook)
		r = pv->save_hook(m, s);
	if (!r)
		r = qkd_state_save(s, m->state_file);
	qkd_state_free(s);
	if (r)
		qkd_log(m, QKD_LOG_ERR, "cannot save state file %s: %s", m->state_file,
			strerror(-r));
	else
		qkd_log(m, QKD_LOG_INFO, "state saved to %s", m->state_file);
	return r;
}

int qkd_module_finish(struct qkd_module *m)
{
	struct qkd_module_priv *pv = m->priv;
	struct qkd_stats st;
	int status;

	pthread_mutex_lock(&m->lock);
	m->state = QKD_MOD_TERMINATING;
	st = m->stats;
	pthread_mutex_unlock(&m->lock);
	if (close_all(m))
		pv->failed = true;
	if (pv->service)
		qkd_service_stop(m);
	if (!pv->failed && m->state_file && save_state(m))
		pv->failed = true;
	qkd_log(m, QKD_LOG_INFO,
		"exit: %" PRIu64 " frames in, %" PRIu64 " out, %" PRIu64 " aborted, %" PRIu64
		" bits in, %" PRIu64 " out, %" PRIu64 " disclosed, %" PRIu64 " auth failures%s",
		st.frames_in, st.frames_out, st.frames_aborted, st.bits_in, st.bits_out,
		st.disclosed_bits, st.auth_failures, pv->failed ? " (FAILED)" : "");
	status = pv->failed ? 1 : 0;
	teardown(m);
	return status;
}
