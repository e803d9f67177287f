// SPDX-License-Identifier: GPL-2.0
/*
 * The supervisor: starts the processes of a pipeline with their pipes, peer
 * addresses, parameters and state files, follows their registration, and
 * reacts to their exits.
 *
 * Restart policy: neighbours of a process that dies see a broken pipe or a
 * closed peer channel, and frames in flight at that moment are gone anyway.
 * So the QPM restarts the pipeline as a unit: it asks every survivor to
 * terminate (SIGTERM: the frame in hand is finished and the module's state
 * file written), waits for them, backs off, and starts every process again
 * with its state file. Key ids continue from the saved state; nothing already
 * delivered is delivered again. A process that exits with status 2 rejected
 * its configuration (usage or set-up error): that is reported and not
 * retried.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include "qpm.h"

#define POLL_INTERVAL_MS 1000
#define KILL_GRACE_MS 3000
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 10000		/* running this long resets the back-off */

static bool alive(const struct qpm_proc *p)
{
	return p->pid > 0;
}

static unsigned n_alive(const struct qpm_pipeline *pl)
{
	unsigned n = 0;

	for (unsigned i = 0; i < pl->n_procs; i++)
		n += alive(&pl->procs[i]);
	return n;
}

static void signal_all(struct qpm_pipeline *pl, int sig)
{
	for (unsigned i = 0; i < pl->n_procs; i++)
		if (alive(&pl->procs[i]))
			kill(pl->procs[i].pid, sig);
}

static int mkdirs(const char *path)
{
	char tmp[512];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static const char *state_dir(const struct qpm_pipeline *pl, char *buf, size_t len)
{
	if (pl->state_dir)
		return pl->state_dir;
	snprintf(buf, len, "%s/%s", qpm.run_dir, pl->name);
	return buf;
}

/*
 * DIR/pipeline.state records how the pipeline last ended, so that a QPM
 * started again knows: "hibernated" (resume is possible), "stopped",
 * "running" (the QPM went away while it ran) or "unclean" (a crash). The last
 * two make the next start open a new key-id epoch.
 */
static void mark(struct qpm_pipeline *pl, const char *word)
{
	char dbuf[400], path[450], tmp[460];
	const char *dir = state_dir(pl, dbuf, sizeof(dbuf));
	int fd;

	if (mkdirs(dir))
		return;
	snprintf(path, sizeof(path), "%s/pipeline.state", dir);
	snprintf(tmp, sizeof(tmp), "%s/pipeline.state.tmp", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, word, strlen(word)) != (ssize_t)strlen(word) || fsync(fd)) {
		close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	if (rename(tmp, path))
		unlink(tmp);
}

static void mark_end(struct qpm_pipeline *pl)
{
	mark(pl, pl->unclean ? "unclean" : pl->state == PL_HIBERNATED ? "hibernated" : "stopped");
}

void qpm_pipeline_restore(struct qpm_pipeline *pl)
{
	char dbuf[400], path[450], word[32] = "";
	const char *dir = state_dir(pl, dbuf, sizeof(dbuf));
	FILE *f;

	snprintf(path, sizeof(path), "%s/epoch", dir);
	f = fopen(path, "re");
	if (f) {
		unsigned long long e;

		if (fscanf(f, "%llu", &e) == 1)
			pl->epoch = e;
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/pipeline.state", dir);
	f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(word, sizeof(word), f))
		word[0] = '\0';
	fclose(f);
	if (!strcmp(word, "hibernated"))
		pl->state = PL_HIBERNATED;
	else if (!strcmp(word, "running") || !strcmp(word, "unclean"))
		pl->unclean = true;
	qpm_log(QPM_INFO, "pipeline %s: last ended %s", pl->name, word[0] ? word : "unknown");
}

/* The process table of a pipeline, built once; restarts reuse it. */
static int build_procs(struct qpm_pipeline *pl, char *err, size_t errlen)
{
	char dbuf[400];
	const char *dir = state_dir(pl, dbuf, sizeof(dbuf));
	unsigned n = 0, k = 0;
	int r;

	r = mkdirs(dir);
	if (r) {
		snprintf(err, errlen, "cannot create state directory %s: %s", dir, strerror(-r));
		return r;
	}
	if (pl->procs)
		return 0;
	for (int s = 0; s < 2; s++)
		for (unsigned i = 0; i < pl->sides[s].n_mods; i++)
			n += pl->sides[s].mods[i].instances;
	pl->procs = calloc(n, sizeof(*pl->procs));
	if (!pl->procs)
		return -ENOMEM;
	pl->n_procs = n;
	for (int s = 0; s < 2; s++) {
		struct qpm_side *sd = &pl->sides[s];

		for (unsigned i = 0; i < sd->n_mods; i++)
			for (unsigned j = 0; j < sd->mods[i].instances; j++) {
				struct qpm_proc *p = &pl->procs[k++];

				p->pl = pl;
				p->side = s;
				p->mod = i;
				p->inst = j;
				snprintf(p->id, sizeof(p->id), "%s/%s/%s/%u", pl->name,
					 qpm_role_name(s), sd->mods[i].name, j);
				snprintf(p->statefile, sizeof(p->statefile), "%s/%s.%s.%u.state",
					 dir, qpm_role_name(s), sd->mods[i].name, j);
				snprintf(p->log, sizeof(p->log), "%s/%s.%s.%u.log", dir,
					 qpm_role_name(s), sd->mods[i].name, j);
				strcpy(p->state, "new");
			}
	}
	return 0;
}

static struct qpm_proc *proc_at(struct qpm_pipeline *pl, int side, unsigned mod, unsigned inst)
{
	for (unsigned i = 0; i < pl->n_procs; i++) {
		struct qpm_proc *p = &pl->procs[i];

		if (p->side == side && p->mod == mod && p->inst == inst)
			return p;
	}
	return NULL;
}

/* A free TCP port on the peer address for a peer channel (bind to 0, ask, close). */
static unsigned free_port(const char *addr)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct sockaddr_storage got;
	socklen_t len = sizeof(got);
	bool v6 = addr && strchr(addr, ':');
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned port = 0;

	if (fd < 0)
		return 0;
	if (v6)
		inet_pton(AF_INET6, addr, &a6.sin6_addr);
	else
		a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!v6 && addr)
		inet_pton(AF_INET, addr, &a4.sin_addr);
	if (!bind(fd, v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
		  v6 ? sizeof(a6) : sizeof(a4)) &&
	    !getsockname(fd, (struct sockaddr *)&got, &len))
		port = ntohs(v6 ? ((struct sockaddr_in6 *)&got)->sin6_port
				: ((struct sockaddr_in *)&got)->sin_port);
	close(fd);
	return port;
}

/* Peer port of (module name, instance), the same on both sides. */
struct peer_ports {
	const char *name[2 * QPM_MAX_MODULES];
	unsigned port[2 * QPM_MAX_MODULES][QPM_MAX_INSTANCES];
	unsigned n;
};

/*
 * The module of the same name on the other side, if any: a <peer> element on
 * either side fixes the address and port for both.
 */
static const struct qpm_moddef *twin(const struct qpm_pipeline *pl, const struct qpm_moddef *d)
{
	for (int s = 0; s < 2; s++)
		for (unsigned i = 0; i < pl->sides[s].n_mods; i++) {
			const struct qpm_moddef *o = &pl->sides[s].mods[i];

			if (o != d && !strcmp(o->name, d->name))
				return o;
		}
	return NULL;
}

static const char *peer_addr(const struct qpm_pipeline *pl, const struct qpm_moddef *d)
{
	const struct qpm_moddef *o = twin(pl, d);

	if (d->peer_addr)
		return d->peer_addr;
	return o && o->peer_addr ? o->peer_addr : "127.0.0.1";
}

static unsigned peer_port(struct peer_ports *pp, const struct qpm_pipeline *pl,
			  const struct qpm_moddef *d, unsigned inst)
{
	const struct qpm_moddef *o = twin(pl, d);
	unsigned fixed = d->peer_port ? d->peer_port : o ? o->peer_port : 0;
	unsigned i;

	for (i = 0; i < pp->n && strcmp(pp->name[i], d->name); i++)
		;
	if (i == pp->n) {
		pp->name[pp->n++] = d->name;
		for (unsigned j = 0; j < d->instances; j++)
			pp->port[i][j] = fixed ? fixed + j : free_port(peer_addr(pl, d));
	}
	return pp->port[i][inst];
}

/* Set up argv for p; strings live in the arena, freed by the caller. */
struct argv_b {
	char *v[256];
	unsigned n;
	bool oom;
};

static void arg(struct argv_b *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(struct argv_b *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a->n + 1 >= sizeof(a->v) / sizeof(a->v[0])) {
		a->oom = true;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		a->oom = true;
		s = NULL;
	}
	va_end(ap);
	if (s)
		a->v[a->n++] = s;
}

static void free_argv(struct argv_b *a)
{
	for (unsigned i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

static int spawn(struct qpm_proc *p, struct peer_ports *pp)
{
	struct qpm_pipeline *pl = p->pl;
	struct qpm_side *sd = &pl->sides[p->side];
	struct qpm_moddef *d = &sd->mods[p->mod];
	struct argv_b a = { 0 };
	pid_t pid;

	arg(&a, "%s", d->path);
	arg(&a, "--role=%s", qpm_role_name(p->side));
	arg(&a, "--pipeline=%s", pl->name);
	arg(&a, "--instance=%u/%u", p->inst, d->instances);
	for (unsigned i = 0; i < p->n_in; i++)
		arg(&a, "--in=fd:%d", p->pipes_in[i]);
	for (unsigned i = 0; i < p->n_out; i++)
		arg(&a, "--out=fd:%d", p->pipes_out[i]);
	if (d->peer) {
		unsigned port = peer_port(pp, pl, d, p->inst);
		const char *addr = peer_addr(pl, d);
		bool v6 = strchr(addr, ':');

		arg(&a, "--%s=%s%s%s:%u", p->side == QKD_BOB ? "listen" : "peer", v6 ? "[" : "",
		    addr, v6 ? "]" : "", port);
		if (sd->keypool)
			arg(&a, "--keypool=%s", sd->keypool);
	}
	if (d->config)
		arg(&a, "--config=%s", d->config);
	if (pl->log_level)
		arg(&a, "--log-level=%s", pl->log_level);
	arg(&a, "--state-file=%s", p->statefile);
	arg(&a, "--qpm=%s:%u", qpm.host, qpm.port);
	for (unsigned i = 0; i < d->n_params; i++)
		arg(&a, "--set=%s=%s", d->params[i].name, d->params[i].value);
	if (pl->unclean && d->epoch_param) {
		/*
		 * After a crash the source's state file may lag behind key ids it
		 * already handed out; a new epoch of key ids cannot collide.
		 */
		unlink(p->statefile);
		arg(&a, "--set=%s=%llu", d->epoch_param,
		    (unsigned long long)(pl->epoch << QPM_EPOCH_SHIFT));
	}
	a.v[a.n] = NULL;
	if (a.oom) {
		free_argv(&a);
		return -ENOMEM;
	}

	pid = fork();
	if (pid < 0) {
		free_argv(&a);
		return -errno;
	}
	if (pid == 0) {
		sigset_t none;
		int fd;

		/* A fresh process: default signals, its own group, dies with the QPM. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0 && fd != 0) {
			dup2(fd, 0);
			close(fd);
		}
		fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		/* Only the pipes meant for this process survive exec (all are CLOEXEC). */
		for (unsigned i = 0; i < p->n_in; i++)
			fcntl(p->pipes_in[i], F_SETFD, 0);
		for (unsigned i = 0; i < p->n_out; i++)
			fcntl(p->pipes_out[i], F_SETFD, 0);
		setenv("QKD_QPM_ID", p->id, 1);
		execv(a.v[0], a.v);
		dprintf(2, "qpm: cannot run %s: %s\n", a.v[0], strerror(errno));
		_exit(127);
	}
	free_argv(&a);
	p->pid = pid;
	p->registered = false;
	p->port = 0;
	p->spawned_ms = qpm_now_ms();
	strcpy(p->state, "starting");
	qpm_log(QPM_DEBUG, "%s: started %s as pid %d", p->id, d->exec, (int)pid);
	return 0;
}

static void close_pipes(struct qpm_pipeline *pl)
{
	for (unsigned i = 0; i < pl->n_procs; i++) {
		struct qpm_proc *p = &pl->procs[i];

		for (unsigned k = 0; k < p->n_in; k++)
			close(p->pipes_in[k]);
		for (unsigned k = 0; k < p->n_out; k++)
			close(p->pipes_out[k]);
		p->n_in = p->n_out = 0;
	}
}

static int add_fd(int *arr, unsigned *n, int fd)
{
	if (*n >= QPM_MAX_INSTANCES)
		return -E2BIG;
	arr[(*n)++] = fd;
	return 0;
}

/* Pipes between neighbouring stages of one side, and the side's input/output files. */
static int wire_side(struct qpm_pipeline *pl, int s, char *err, size_t errlen)
{
	struct qpm_side *sd = &pl->sides[s];

	for (unsigned i = 0; i + 1 < sd->n_mods; i++) {
		unsigned a = sd->mods[i].instances, b = sd->mods[i + 1].instances;
		unsigned n = a > b ? a : b;

		for (unsigned k = 0; k < n; k++) {
			struct qpm_proc *w = proc_at(pl, s, i, a == 1 ? 0 : k);
			struct qpm_proc *r = proc_at(pl, s, i + 1, b == 1 ? 0 : k);
			int fds[2];

			if (pipe2(fds, O_CLOEXEC)) {
				snprintf(err, errlen, "pipe: %s", strerror(errno));
				return -errno;
			}
			if (add_fd(r->pipes_in, &r->n_in, fds[0]) ||
			    add_fd(w->pipes_out, &w->n_out, fds[1])) {
				close(fds[0]);
				close(fds[1]);
				return -E2BIG;
			}
		}
	}
	if (sd->input && sd->n_mods) {
		int fd = open(sd->input, O_RDONLY | O_CLOEXEC);
		struct qpm_proc *p = proc_at(pl, s, 0, 0);

		if (fd < 0) {
			snprintf(err, errlen, "side %s: cannot open input %s: %s", qpm_role_name(s),
				 sd->input, strerror(errno));
			return -errno;
		}
		add_fd(p->pipes_in, &p->n_in, fd);
	}
	if (sd->output && sd->n_mods) {
		int fd = open(sd->output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		struct qpm_proc *p = proc_at(pl, s, sd->n_mods - 1, 0);

		if (fd < 0) {
			snprintf(err, errlen, "side %s: cannot open output %s: %s",
				 qpm_role_name(s), sd->output, strerror(errno));
			return -errno;
		}
		add_fd(p->pipes_out, &p->n_out, fd);
	}
	return 0;
}

/*
 * Bump the pipeline's key-id epoch, kept in <state dir>/epoch so that it
 * survives the QPM too. Written (and synced) before any source uses it.
 */
static int next_epoch(struct qpm_pipeline *pl)
{
	char dbuf[400], path[450], tmp[460], txt[32];
	const char *dir = state_dir(pl, dbuf, sizeof(dbuf));
	unsigned long long e = 0;
	FILE *f;
	int fd, n;

	snprintf(path, sizeof(path), "%s/epoch", dir);
	snprintf(tmp, sizeof(tmp), "%s/epoch.tmp", dir);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%llu", &e) != 1)
			e = 0;
		fclose(f);
	}
	if (e < pl->epoch)
		e = pl->epoch;
	e++;
	n = snprintf(txt, sizeof(txt), "%llu\n", e);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, txt, (size_t)n) != n || fsync(fd)) {
		close(fd);
		return -EIO;
	}
	close(fd);
	if (rename(tmp, path))
		return -errno;
	pl->epoch = e;
	qpm_log(QPM_INFO, "pipeline %s: key-id epoch %llu", pl->name, e);
	return 0;
}

static int spawn_all(struct qpm_pipeline *pl, char *err, size_t errlen)
{
	struct peer_ports *pp;
	int r = 0;

	if (pl->unclean) {
		r = next_epoch(pl);
		if (r) {
			snprintf(err, errlen, "cannot record the key-id epoch: %s", strerror(-r));
			return r;
		}
	}
	pp = calloc(1, sizeof(*pp));
	if (!pp)
		return -ENOMEM;
	for (int s = 0; s < 2 && !r; s++)
		if (pl->sides[s].present)
			r = wire_side(pl, s, err, errlen);
	for (unsigned i = 0; i < pl->n_procs && !r; i++) {
		r = spawn(&pl->procs[i], pp);
		if (r)
			snprintf(err, errlen, "%s: cannot start: %s", pl->procs[i].id, strerror(-r));
	}
	close_pipes(pl);
	free(pp);
	if (r) {
		signal_all(pl, SIGKILL);
		return r;
	}
	pl->starts++;
	pl->unclean = false;
	pl->state = PL_STARTING;
	mark(pl, "running");
	pl->deadline_ms = qpm_now_ms() + pl->register_timeout_ms;
	pl->killed = false;
	return 0;
}

int qpm_pipeline_start(struct qpm_pipeline *pl, char *err, size_t errlen)
{
	int r;

	switch (pl->state) {
	case PL_LOADED: case PL_STOPPED: case PL_HIBERNATED: case PL_COMPLETED: case PL_FAILED:
		break;
	default:
		snprintf(err, errlen, "pipeline %s is %s", pl->name, qpm_state_name(pl->state));
		return -EBUSY;
	}
	if (n_alive(pl)) {
		snprintf(err, errlen, "pipeline %s still has processes exiting", pl->name);
		return -EBUSY;
	}
	r = build_procs(pl, err, errlen);
	if (r)
		return r;
	pl->error[0] = '\0';
	pl->consecutive_restarts = 0;
	pl->restart_pending = false;
	r = spawn_all(pl, err, errlen);
	if (r) {
		pl->state = PL_FAILED;
		snprintf(pl->error, sizeof(pl->error), "%s", err);
		return r;
	}
	qpm_log(QPM_INFO, "pipeline %s: starting %u processes", pl->name, pl->n_procs);
	return 0;
}

/* Ask a source to hibernate over its own CoAP interface; SIGTERM if it does not answer. */
static void ask_to_stop(struct qpm_proc *p, const char *how)
{
	struct qkd_coap_reply r;
	char port[8];

	if (p->registered && p->port) {
		snprintf(port, sizeof(port), "%u", p->port);
		if (!qkd_coap_request("127.0.0.1", port, COAP_REQUEST_PUT, "state", how,
				      strlen(how), QKD_CF_TEXT, QKD_CF_NONE, 1000, NULL, &r)) {
			bool ok = r.code / 100 == 2;

			qkd_coap_reply_free(&r);
			if (ok)
				return;
		}
	}
	kill(p->pid, SIGTERM);
}

int qpm_pipeline_stop(struct qpm_pipeline *pl, bool hibernate, char *err, size_t errlen)
{
	if (hibernate && pl->state != PL_RUNNING) {
		snprintf(err, errlen, "pipeline %s is %s; only a running pipeline hibernates",
			 pl->name, qpm_state_name(pl->state));
		return -EBUSY;
	}
	switch (pl->state) {
	case PL_STARTING: case PL_RUNNING: case PL_RESTARTING:
		break;
	default:
		snprintf(err, errlen, "pipeline %s is %s", pl->name, qpm_state_name(pl->state));
		return -EBUSY;
	}
	pl->restart_pending = false;
	pl->killed = false;
	pl->deadline_ms = qpm_now_ms() + pl->stop_timeout_ms;
	/*
	 * A clean cut between frames, for stop as for hibernate: only the first
	 * stage of each side is asked; every later stage drains its input to
	 * end of stream, saves its state and exits by itself. Whatever is still
	 * running at the deadline gets SIGTERM, then SIGKILL.
	 */
	pl->state = hibernate ? PL_HIBERNATING : PL_STOPPING;
	for (unsigned i = 0; i < pl->n_procs; i++)
		if (pl->procs[i].mod == 0 && alive(&pl->procs[i]))
			ask_to_stop(&pl->procs[i], hibernate ? "hibernating" : "terminating");
	if (!n_alive(pl)) {
		pl->state = hibernate ? PL_HIBERNATED : PL_STOPPED;
		mark_end(pl);
	}
	qpm_log(QPM_INFO, "pipeline %s: %s", pl->name, qpm_state_name(pl->state));
	return 0;
}

static void fail(struct qpm_pipeline *pl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct qpm_pipeline *pl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pl->error, sizeof(pl->error), fmt, ap);
	va_end(ap);
	qpm_log(QPM_ERR, "pipeline %s failed: %s", pl->name, pl->error);
	pl->state = PL_FAILED;
	pl->unclean = true;
	mark(pl, "unclean");
	pl->restart_pending = false;
	pl->killed = false;
	pl->deadline_ms = qpm_now_ms() + pl->stop_timeout_ms;
	signal_all(pl, SIGTERM);
}

/* Last non-empty line of a module's log, for error reports. */
static void log_tail(const char *path, char *out, size_t outlen)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t end;

	out[0] = '\0';
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf) - 1, end > (off_t)sizeof(buf) - 1 ?
		  end - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	/* Skip runtime hints like "Try '... --help'" to the line that says what is wrong. */
	for (int tries = 0; tries < 3; tries++) {
		char *nl = strrchr(buf, '\n');
		char *line = nl ? nl + 1 : buf;

		if (strncmp(line, "Try '", 5) || !nl) {
			size_t l = strlen(line);

			if (l >= outlen)
				l = outlen - 1;
			memcpy(out, line, l);
			out[l] = '\0';
			return;
		}
		*nl = '\0';
	}
}

static void describe_exit(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "status 0x%x", st);
}

static void proc_gone(struct qpm_proc *p)
{
	if (p->sess) {
		coap_session_release(p->sess);
		p->sess = NULL;
	}
	p->pid = 0;
	p->registered = false;
	p->poll_pending = false;
	p->port = 0;
	strcpy(p->state, "exited");
}

static void on_exit_status(struct qpm_proc *p, int st)
{
	struct qpm_pipeline *pl = p->pl;
	bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	char how[96], tail[300];

	p->wstatus = st;
	p->ever_exited = true;
	proc_gone(p);
	describe_exit(st, how, sizeof(how));
	qpm_log(clean ? QPM_DEBUG : QPM_WARN, "%s: pid exited, %s", p->id, how);

	if (!clean)
		pl->unclean = true;
	switch (pl->state) {
	case PL_STARTING:
	case PL_RUNNING:
		if (clean)
			break;
		/*
		 * Status 2 is the modules' usage or set-up error (bad parameter,
		 * refused state file, ...), 127 an executable that cannot run:
		 * starting again would fail the same way.
		 */
		if (WIFEXITED(st) && (WEXITSTATUS(st) == 2 || WEXITSTATUS(st) == 127)) {
			log_tail(p->log, tail, sizeof(tail));
			fail(pl, "%s refused to start (%s): %s", p->id, how,
			     tail[0] ? tail : "see its log");
			break;
		}
		if (pl->consecutive_restarts >= pl->max_restarts) {
			log_tail(p->log, tail, sizeof(tail));
			fail(pl, "%s died (%s) after %u restarts: %s", p->id, how,
			     pl->consecutive_restarts, tail);
			break;
		}
		p->restarts++;
		pl->unclean = true;
		pl->state = PL_RESTARTING;
		pl->restart_pending = true;
		pl->killed = false;
		pl->deadline_ms = qpm_now_ms() + pl->stop_timeout_ms;
		snprintf(pl->error, sizeof(pl->error), "restarting: %s %s", p->id, how);
		qpm_log(QPM_WARN, "pipeline %s: %s %s, restarting the pipeline", pl->name, p->id,
			how);
		signal_all(pl, SIGTERM);
		break;
	default:
		break;
	}
}

static void reap(void)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
			for (unsigned i = 0; i < pl->n_procs; i++)
				if (pl->procs[i].pid == pid) {
					on_exit_status(&pl->procs[i], st);
					goto next;
				}
next:
		;
	}
}

static void poll_stats(struct qpm_proc *p, uint64_t now)
{
	coap_pdu_t *pdu;
	uint8_t tok[8];
	size_t toklen;

	if (!p->sess || (p->poll_pending && now - p->poll_ms < 3000) ||
	    now - p->poll_ms < POLL_INTERVAL_MS)
		return;
	pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, p->sess);
	if (!pdu)
		return;
	coap_session_new_token(p->sess, &toklen, tok);
	coap_add_token(pdu, toklen, tok);
	coap_add_option(pdu, COAP_OPTION_URI_PATH, 5, (const uint8_t *)"stats");
	if (coap_send(p->sess, pdu) != COAP_INVALID_MID) {
		p->poll_pending = true;
		p->poll_ms = now;
	}
}

static void tick_pipeline(struct qpm_pipeline *pl, uint64_t now)
{
	unsigned alive_n = n_alive(pl);

	for (unsigned i = 0; i < pl->n_procs; i++)
		if (alive(&pl->procs[i]) && pl->procs[i].registered)
			poll_stats(&pl->procs[i], now);

	switch (pl->state) {
	case PL_STARTING: {
		bool all = true;

		for (unsigned i = 0; i < pl->n_procs; i++) {
			struct qpm_proc *p = &pl->procs[i];

			/* A process that already finished cleanly counts as done. */
			if (alive(p) && !p->registered)
				all = false;
		}
		if (all) {
			pl->state = PL_RUNNING;
			pl->running_since_ms = now;
			pl->error[0] = '\0';
			qpm_log(QPM_INFO, "pipeline %s: running", pl->name);
		} else if (now > pl->deadline_ms) {
			for (unsigned i = 0; i < pl->n_procs; i++)
				if (alive(&pl->procs[i]) && !pl->procs[i].registered) {
					fail(pl, "%s (pid %d) did not register within %u ms",
					     pl->procs[i].id, (int)pl->procs[i].pid,
					     pl->register_timeout_ms);
					break;
				}
		}
		break;
	}
	case PL_RUNNING:
		if (!alive_n) {
			pl->state = PL_COMPLETED;
			mark_end(pl);
			qpm_log(QPM_INFO, "pipeline %s: completed (every process ended its input)",
				pl->name);
		} else if (now - pl->running_since_ms > STABLE_MS) {
			pl->consecutive_restarts = 0;
		}
		break;
	case PL_RESTARTING:
		if (alive_n)
			break;
		if (pl->restart_pending) {
			unsigned sh = pl->consecutive_restarts < 6 ? pl->consecutive_restarts : 6;
			uint64_t delay = (uint64_t)pl->backoff_ms << sh;

			pl->restart_pending = false;
			pl->restart_at_ms = now + (delay > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay);
		} else if (now >= pl->restart_at_ms) {
			char err[256];

			pl->consecutive_restarts++;
			pl->restarts++;
			if (spawn_all(pl, err, sizeof(err)))
				fail(pl, "restart failed: %s", err);
			else
				qpm_log(QPM_INFO, "pipeline %s: restarted (%u)", pl->name,
					pl->restarts);
		}
		return;
	case PL_STOPPING:
	case PL_HIBERNATING:
		if (!alive_n) {
			pl->state = pl->state == PL_STOPPING ? PL_STOPPED : PL_HIBERNATED;
			mark_end(pl);
			qpm_log(QPM_INFO, "pipeline %s: %s", pl->name, qpm_state_name(pl->state));
			return;
		}
		break;
	default:
		break;
	}
	/* Anything shutting down past its deadline gets SIGTERM, then SIGKILL. */
	if (alive_n && now > pl->deadline_ms &&
	    (pl->state == PL_STOPPING || pl->state == PL_HIBERNATING ||
	     pl->state == PL_RESTARTING || pl->state == PL_FAILED)) {
		if (!pl->killed) {
			qpm_log(QPM_WARN, "pipeline %s: %u processes still running, sending SIGTERM",
				pl->name, alive_n);
			signal_all(pl, SIGTERM);
			pl->killed = true;
			pl->deadline_ms = now + KILL_GRACE_MS;
		} else {
			qpm_log(QPM_WARN, "pipeline %s: killing %u processes", pl->name, alive_n);
			signal_all(pl, SIGKILL);
			pl->deadline_ms = now + KILL_GRACE_MS;
		}
	}
}

void qpm_tick(void)
{
	uint64_t now = qpm_now_ms();

	reap();
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		tick_pipeline(pl, now);
}

/* Reap until no process of any pipeline is left or until ms passed. */
static bool wait_all(uint64_t ms)
{
	uint64_t end = qpm_now_ms() + ms;
	bool any;

	do {
		any = false;
		reap();
		for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
			any |= n_alive(pl) > 0;
		if (any)
			usleep(20000);
	} while (any && qpm_now_ms() < end);
	return !any;
}

/*
 * On QPM exit: the same clean cut as a stop (sources first, the rest drains
 * and saves its state), then SIGTERM, then SIGKILL for whatever is left.
 */
void qpm_shutdown(void)
{
	char err[256];

	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		if (pl->state == PL_STARTING || pl->state == PL_RUNNING ||
		    pl->state == PL_RESTARTING)
			qpm_pipeline_stop(pl, false, err, sizeof(err));
	if (wait_all(5000))
		return;
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		signal_all(pl, SIGTERM);
	if (wait_all(3000))
		return;
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		signal_all(pl, SIGKILL);
	wait_all(1000);
}

struct qpm_proc *qpm_proc_find(const char *id)
{
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		for (unsigned i = 0; i < pl->n_procs; i++)
			if (!strcmp(pl->procs[i].id, id))
				return &pl->procs[i];
	return NULL;
}

static struct qpm_proc *proc_by_pid(pid_t pid)
{
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		for (unsigned i = 0; i < pl->n_procs; i++)
			if (pl->procs[i].pid == pid)
				return &pl->procs[i];
	return NULL;
}

int qpm_register(struct qkd_json j, char *err, size_t errlen)
{
	struct qpm_proc *p;
	coap_address_t a;
	double pid, port;

	if (!qkd_json_get_num(j, "pid", &pid) || !qkd_json_get_num(j, "port", &port) ||
	    pid < 1 || pid > 1e9 || port < 1 || port > 65535) {
		snprintf(err, errlen, "registration needs numeric pid and port");
		return -EINVAL;
	}
	p = proc_by_pid((pid_t)pid);
	if (!p) {
		snprintf(err, errlen, "pid %d is not a process this QPM started", (int)pid);
		return -ENOENT;
	}
	if (p->registered && p->port == (uint16_t)port)
		return 0; /* heartbeat */
	if (p->sess)
		coap_session_release(p->sess);
	p->port = (uint16_t)port;
	coap_address_init(&a);
	a.addr.sin.sin_family = AF_INET;
	a.addr.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.addr.sin.sin_port = htons(p->port);
	a.size = sizeof(a.addr.sin);
	p->sess = coap_new_client_session(qpm.ctx, NULL, &a, COAP_PROTO_UDP);
	p->registered = true;
	p->registered_ms = qpm_now_ms();
	p->poll_ms = 0;
	strcpy(p->state, "ready");
	qpm_log(QPM_DEBUG, "%s: registered, service port %u", p->id, p->port);
	return 0;
}

void qpm_deregister(pid_t pid)
{
	struct qpm_proc *p = proc_by_pid(pid);

	if (p && p->registered) {
		if (p->sess)
			coap_session_release(p->sess);
		p->sess = NULL;
		p->poll_pending = false;
		strcpy(p->state, "terminating");
	}
}

void qpm_stats_response(coap_session_t *sess, const coap_pdu_t *recv)
{
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		for (unsigned i = 0; i < pl->n_procs; i++) {
			struct qpm_proc *p = &pl->procs[i];
			const uint8_t *d;
			size_t len = 0, off, total;
			struct qkd_json j;
			char *copy;

			if (p->sess != sess)
				continue;
			p->poll_pending = false;
			if (coap_pdu_get_code(recv) != COAP_RESPONSE_CODE_CONTENT ||
			    !coap_get_data_large(recv, &len, &d, &off, &total) ||
			    qkd_json_parse((const char *)d, len, &j))
				return;
			copy = strndup((const char *)d, len);
			if (!copy)
				return;
			free(p->stats);
			p->stats = copy;
			qkd_json_get_str(j, "state", p->state, sizeof(p->state));
			return;
		}
}

void qpm_session_gone(coap_session_t *sess)
{
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		for (unsigned i = 0; i < pl->n_procs; i++)
			if (pl->procs[i].sess == sess)
				pl->procs[i].poll_pending = false;
}

void qpm_proc_stats_json(struct qpm_proc *p, struct qkd_buf *b)
{
	struct qpm_moddef *d = &p->pl->sides[p->side].mods[p->mod];
	char how[96];

	qkd_buf_printf(b, "{\"id\":");
	qkd_buf_json_str(b, p->id);
	qkd_buf_printf(b, ",\"pipeline\":");
	qkd_buf_json_str(b, p->pl->name);
	qkd_buf_printf(b, ",\"role\":\"%s\",\"module\":", qpm_role_name(p->side));
	qkd_buf_json_str(b, d->name);
	qkd_buf_printf(b, ",\"exec\":");
	qkd_buf_json_str(b, d->exec);
	qkd_buf_printf(b, ",\"instance\":%u,\"instances\":%u,\"pid\":%d,\"port\":%u,"
		       "\"registered\":%s,\"state\":", p->inst, d->instances, (int)p->pid, p->port,
		       p->registered ? "true" : "false");
	qkd_buf_json_str(b, p->state);
	qkd_buf_printf(b, ",\"restarts\":%u,\"last_exit\":", p->restarts);
	if (p->ever_exited) {
		describe_exit(p->wstatus, how, sizeof(how));
		qkd_buf_json_str(b, how);
	} else {
		qkd_buf_printf(b, "null");
	}
	qkd_buf_printf(b, ",\"log\":");
	qkd_buf_json_str(b, p->log);
	qkd_buf_printf(b, ",\"stats\":%s}", p->stats ? p->stats : "null");
}

void qpm_pipeline_json(struct qpm_pipeline *pl, struct qkd_buf *b, bool detail)
{
	unsigned alive_n = n_alive(pl);

	qkd_buf_printf(b, "{\"name\":");
	qkd_buf_json_str(b, pl->name);
	qkd_buf_printf(b, ",\"state\":\"%s\",\"source\":", qpm_state_name(pl->state));
	qkd_buf_json_str(b, pl->source);
	qkd_buf_printf(b, ",\"sides\":[");
	for (int s = 0, first = 1; s < 2; s++)
		if (pl->sides[s].present) {
			qkd_buf_printf(b, "%s\"%s\"", first ? "" : ",", qpm_role_name(s));
			first = 0;
		}
	qkd_buf_printf(b, "],\"processes\":%u,\"alive\":%u,\"starts\":%u,\"restarts\":%u,"
		       "\"epoch\":%llu,", pl->n_procs, alive_n, pl->starts, pl->restarts,
		       (unsigned long long)pl->epoch);
	/* What the pipeline delivers: the last stage of each side, all its instances. */
	for (int s = 0; s < 2; s++) {
		double keys = 0, bits = 0;

		if (!pl->sides[s].present || !pl->sides[s].n_mods)
			continue;
		for (unsigned i = 0; i < pl->n_procs; i++) {
			struct qpm_proc *p = &pl->procs[i];
			struct qkd_json j;
			double v;

			if (p->side != s || p->mod != pl->sides[s].n_mods - 1 || !alive(p) ||
			    !p->stats || qkd_json_parse(p->stats, strlen(p->stats), &j))
				continue;
			if (qkd_json_get_num(j, "keys_per_s_recent", &v))
				keys += v;
			if (qkd_json_get_num(j, "bits_per_s_recent", &v))
				bits += v;
		}
		qkd_buf_printf(b, "\"%s_keys_per_s\":", qpm_role_name(s));
		qkd_buf_json_num(b, keys);
		qkd_buf_printf(b, ",\"%s_bits_per_s\":", qpm_role_name(s));
		qkd_buf_json_num(b, bits);
		qkd_buf_printf(b, ",");
	}
	qkd_buf_printf(b, "\"error\":");
	qkd_buf_json_str(b, pl->error[0] ? pl->error : NULL);
	if (detail) {
		qkd_buf_printf(b, ",\"modules\":[");
		for (unsigned i = 0; i < pl->n_procs; i++) {
			qkd_buf_printf(b, "%s", i ? "," : "");
			qpm_proc_stats_json(&pl->procs[i], b);
		}
		qkd_buf_printf(b, "]");
	}
	qkd_buf_printf(b, "}");
}
