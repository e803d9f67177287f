// SPDX-License-Identifier: GPL-2.0
/*
 * The QPM end to end, driven only over CoAP (the unmodified coap-client-notls
 * and qpmctl): Alice+Bob pipelines from XML, keys identical on both sides,
 * kill -9 of a module, hibernate/resume with two pipelines alternating, live
 * parameters, and every kind of bad input including random datagrams.
 *
 * Keys are checked in the pipelines' output files: per side no key id twice,
 * and every key id delivered on both sides carries the same key. The
 * simulator runs without optical errors and dark counts so that sifted and
 * estimated blocks must already agree bit for bit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <coap3/coap.h>
#include "qkd/frame.h"
#include "qkd/keypool.h"
#include "qkd/service-util.h"
#include "kselftest_harness.h"

static char bindir[512];

static void find_bindir(void)
{
	const char *b = getenv("QKD_BUILD");
	char exe[400];
	ssize_t n;

	if (b) {
		snprintf(bindir, sizeof(bindir), "%s/bin", b);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(bindir, sizeof(bindir), "%s/../bin", exe);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned free_udp_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	unsigned p;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &l);
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

static void dump_log(const char *dir);

FIXTURE(qpm) {
	char dir[64];
	char port[8];
	pid_t pid;
};

static int make_pools(const char *dir, const char *name)
{
	static uint8_t key[1 << 20];
	char a[256], b[256];
	int r;

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		return -EIO;
	snprintf(a, sizeof(a), "%s/%s-alice.pool", dir, name);
	snprintf(b, sizeof(b), "%s/%s-bob.pool", dir, name);
	r = qkd_keypool_create(a, key, sizeof(key));
	if (!r)
		r = qkd_keypool_create(b, key, sizeof(key));
	explicit_bzero(key, sizeof(key));
	return r;
}

/* An Alice+Bob pipeline sim -> sift -> estimate writing to DIR/NAME-{alice,bob}.out. */
static void write_pipeline(const char *dir, const char *name, const char *extra_attrs,
			   const char *sim_extra)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.xml", dir, name);
	f = fopen(path, "w");
	fprintf(f, "<?xml version=\"1.0\"?>\n<pipeline name=\"%s\" state-dir=\"%s/%s.state\" %s>\n",
		name, dir, name, extra_attrs);
	for (int s = 0; s < 2; s++) {
		const char *role = s ? "bob" : "alice";

		fprintf(f,
			"  <side role=\"%s\" keypool=\"%s/%s-%s.pool\">\n"
			"    <module exec=\"qkd-sim\" epoch-param=\"first-key-id\">\n"
			"      <param name=\"seed\" value=\"11\"/>\n"
			"      <param name=\"slots\" value=\"60000\"/>\n"
			"      <param name=\"rate\" value=\"40\"/>\n"
			"      <param name=\"qber\" value=\"0\"/>\n"
			"      <param name=\"dark\" value=\"0\"/>\n%s"
			"    </module>\n"
			"    <module exec=\"qkd-sift\" peer=\"true\"/>\n"
			"    <module exec=\"qkd-estimate\" peer=\"true\"/>\n"
			"    <output file=\"%s/%s-%s.out\"/>\n"
			"  </side>\n", role, dir, name, role, sim_extra, dir, name, role);
	}
	fprintf(f, "</pipeline>\n");
	fclose(f);
}

/*
 * The whole chain, sim -> sift -> estimate -> cascade -> confirm -> pa -> auth,
 * at 3% QBER: only error correction makes the keys equal, and qkd-auth
 * verifies every stage's deferred transcript before a key is written.
 */
static void write_full_pipeline(const char *dir, const char *name, const char *extra_attrs)
{
	static const char *const stages[] = { "sift", "estimate", "cascade", "confirm", "pa" };
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.xml", dir, name);
	f = fopen(path, "w");
	fprintf(f, "<?xml version=\"1.0\"?>\n<pipeline name=\"%s\" state-dir=\"%s/%s.state\" %s>\n",
		name, dir, name, extra_attrs);
	for (int s = 0; s < 2; s++) {
		const char *role = s ? "bob" : "alice";

		fprintf(f,
			"  <side role=\"%s\" keypool=\"%s/%s-%s.pool\">\n"
			"    <module exec=\"qkd-sim\" epoch-param=\"first-key-id\">\n"
			"      <param name=\"seed\" value=\"5\"/>\n"
			"      <param name=\"slots\" value=\"1000000\"/>\n"
			"      <param name=\"rate\" value=\"12\"/>\n"
			"      <param name=\"qber\" value=\"0.03\"/>\n"
			"    </module>\n", role, dir, name, role);
		for (unsigned i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
			fprintf(f, "    <module exec=\"qkd-%s\" peer=\"true\">"
				"<param name=\"defer-auth\" value=\"true\"/></module>\n", stages[i]);
		fprintf(f, "    <module exec=\"qkd-auth\" peer=\"true\"/>\n"
			"    <output file=\"%s/%s-%s.out\"/>\n  </side>\n", dir, name, role);
	}
	fprintf(f, "</pipeline>\n");
	fclose(f);
}

/* Start qpm on dir's run directory and port; its pid once it answers, or -1. */
static pid_t start_qpm(const char *dir, const char *port)
{
	char qpm_bin[600], rundir[128], listen[64], mods[128];
	struct qkd_coap_reply r;
	pid_t pid;

	snprintf(qpm_bin, sizeof(qpm_bin), "%s/qpm", bindir);
	snprintf(rundir, sizeof(rundir), "%s/run", dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%s", port);
	snprintf(mods, sizeof(mods), "%s/modules", dir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		char log[128];
		int fd;

		/* Never outlive the test, even one killed half-way. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		snprintf(log, sizeof(log), "%s/qpm.log", dir);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		execl(qpm_bin, "qpm", "--listen", listen, "--run-dir", rundir, "--module-dir",
		      mods, "--log-level", "debug", (char *)NULL);
		_exit(127);
	}
	/* Ready when it answers. */
	for (int i = 0; i < 100; i++) {
		if (!qkd_coap_request("127.0.0.1", port, COAP_REQUEST_GET, "qpm", NULL, 0,
				      QKD_CF_NONE, QKD_CF_NONE, 200, NULL, &r)) {
			qkd_coap_reply_free(&r);
			return pid;
		}
		usleep(50000);
	}
	return -1;
}

FIXTURE_SETUP(qpm)
{
	char mods[128], hang[160];
	FILE *f;

	find_bindir();
	strcpy(self->dir, "/tmp/qpm-test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->port, sizeof(self->port), "%u", free_udp_port());
	/*
	 * A module that never speaks CoAP (think of a third-party stage stuck in
	 * its set-up): it sits in a module directory searched before build/bin.
	 */
	snprintf(mods, sizeof(mods), "%s/modules", self->dir);
	ASSERT_EQ(0, mkdir(mods, 0700));
	snprintf(hang, sizeof(hang), "%s/qkd-hang", mods);
	f = fopen(hang, "w");
	ASSERT_NE(NULL, f);
	fputs("#!/bin/sh\nexec sleep 60\n", f);
	fclose(f);
	chmod(hang, 0700);
	self->pid = start_qpm(self->dir, self->port);
	ASSERT_GT(self->pid, 0);
	ASSERT_EQ(0, make_pools(self->dir, "p1"));
	ASSERT_EQ(0, make_pools(self->dir, "p2"));
}

FIXTURE_TEARDOWN(qpm)
{
	char cmd[200];
	int st;

	if (self->pid > 0) {
		kill(self->pid, SIGTERM);
		waitpid(self->pid, &st, 0);
		/* A clean exit also means no sanitizer report and no leak in a SAN build. */
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) dump_log(self->dir);
	}
	if (getenv("QPM_TEST_KEEP")) {
		fprintf(stderr, "# kept %s\n", self->dir);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", self->dir);
	if (system(cmd))
		fprintf(stderr, "# could not remove %s\n", self->dir);
}

/* Run a shell command line; its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#define CTL(self, ...) sh("%s/qpmctl -s 127.0.0.1:%s " __VA_ARGS__)

/* A JSON document from the QPM; caller frees r. */
static int get_json(const char *port, const char *path, struct qkd_coap_reply *r,
		    struct qkd_json *j)
{
	int ret = qkd_coap_request("127.0.0.1", port, COAP_REQUEST_GET, path, NULL, 0,
				   QKD_CF_NONE, QKD_CF_NONE, 2000, NULL, r);

	if (ret)
		return ret;
	if (r->code != 205 || qkd_json_parse(r->body, r->len, j)) {
		qkd_coap_reply_free(r);
		return -EPROTO;
	}
	return 0;
}

/* Two counters from one /stats answer of the module itself (through the QPM). */
static int live_stats(const char *port, const char *id, double *disclosed, double *bits)
{
	struct qkd_coap_reply r;
	struct qkd_json j;
	char path[200];
	int ok;

	snprintf(path, sizeof(path), "modules/%s/stats", id);
	if (get_json(port, path, &r, &j))
		return -1;
	ok = qkd_json_get_num(j, "disclosed_bits", disclosed) &&
	     qkd_json_get_num(j, "bits_in", bits);
	qkd_coap_reply_free(&r);
	return ok ? 0 : -1;
}

static double module_stat(const char *port, const char *id, const char *key)
{
	struct qkd_coap_reply r;
	struct qkd_json j, st;
	char path[200];
	double v = -1;

	snprintf(path, sizeof(path), "modules/%s", id);
	if (get_json(port, path, &r, &j))
		return -1;
	if (!strcmp(key, "pid") || !strcmp(key, "restarts") || !strcmp(key, "port"))
		qkd_json_get_num(j, key, &v);
	else if (qkd_json_member(j, "stats", &st))
		qkd_json_get_num(st, key, &v);
	qkd_coap_reply_free(&r);
	return v;
}

/* Wait until the frames in the output file of name/role reach n. */
struct keyset {
	uint64_t *id;
	uint8_t **key;
	uint32_t *len;
	uint8_t *state;
	size_t n;
};

static void keyset_free(struct keyset *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->key[i]);
	free(k->id);
	free(k->key);
	free(k->len);
	free(k->state);
	memset(k, 0, sizeof(*k));
}

/* Every frame of an output file; -1 if the file holds a malformed frame. */
static int read_keys(const char *path, struct keyset *k)
{
	struct qkd_frame *f = qkd_frame_new(0);
	uint8_t *buf = NULL;
	size_t len = 0, off = 0;
	struct stat st;
	int fd = open(path, O_RDONLY);
	int ret = 0;

	memset(k, 0, sizeof(*k));
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	fstat(fd, &st);
	len = (size_t)st.st_size;
	buf = malloc(len + 1);
	if (read(fd, buf, len) != (ssize_t)len)
		ret = -1;
	close(fd);
	while (!ret && off < len) {
		const char *err;
		ssize_t n = qkd_frame_decode(buf + off, len - off, f, &err);

		if (n == 0)
			break; /* a frame being written right now */
		if (n < 0) {
			fprintf(stderr, "# %s at %zu: %s\n", path, off, err);
			ret = -1;
			break;
		}
		k->id = realloc(k->id, (k->n + 1) * sizeof(*k->id));
		k->key = realloc(k->key, (k->n + 1) * sizeof(*k->key));
		k->len = realloc(k->len, (k->n + 1) * sizeof(*k->len));
		k->state = realloc(k->state, (k->n + 1) * sizeof(*k->state));
		k->id[k->n] = f->key_id;
		k->state[k->n] = f->state;
		k->len[k->n] = f->payload_len;
		k->key[k->n] = malloc(f->payload_len + 1);
		memcpy(k->key[k->n], f->payload, f->payload_len);
		k->n++;
		off += (size_t)n;
	}
	free(buf);
	qkd_frame_free(f);
	return ret;
}

/*
 * The delivery invariants for pipeline name: no key id twice on a side, and
 * equal keys wherever both sides delivered one. Returns the number of key
 * ids delivered (non-aborted) on both sides, or -1; *max_id the largest.
 */
static long check_keys(const char *dir, const char *name, uint64_t *max_id)
{
	struct keyset a, b;
	char pa[256], pb[256];
	long common = 0;
	bool bad = false;

	snprintf(pa, sizeof(pa), "%s/%s-alice.out", dir, name);
	snprintf(pb, sizeof(pb), "%s/%s-bob.out", dir, name);
	if (read_keys(pa, &a) || read_keys(pb, &b))
		return -1;
	if (max_id)
		*max_id = 0;
	for (int side = 0; side < 2; side++) {
		struct keyset *k = side ? &b : &a;

		for (size_t i = 0; i < k->n; i++)
			for (size_t j = i + 1; j < k->n; j++)
				if (k->id[i] == k->id[j]) {
					fprintf(stderr, "# %s: key id %llu delivered twice on %s\n",
						name, (unsigned long long)k->id[i],
						side ? "bob" : "alice");
					bad = true;
				}
	}
	for (size_t i = 0; i < a.n; i++) {
		if (max_id && a.id[i] > *max_id)
			*max_id = a.id[i];
		if (a.state[i] == QKD_STATE_ABORTED)
			continue;
		for (size_t j = 0; j < b.n; j++) {
			if (b.id[j] != a.id[i] || b.state[j] == QKD_STATE_ABORTED)
				continue;
			if (a.len[i] != b.len[j] || memcmp(a.key[i], b.key[j], a.len[i])) {
				fprintf(stderr, "# %s: key id %llu differs between the sides\n", name,
					(unsigned long long)a.id[i]);
				bad = true;
			}
			common++;
		}
	}
	keyset_free(&a);
	keyset_free(&b);
	return bad ? -1 : common;
}

/* Frames of a side's output in the given state. */
static long out_state(const char *dir, const char *name, const char *role, uint8_t state)
{
	struct keyset k;
	char p[256];
	long n = 0;

	snprintf(p, sizeof(p), "%s/%s-%s.out", dir, name, role);
	if (read_keys(p, &k))
		return -1;
	for (size_t i = 0; i < k.n; i++)
		n += k.state[i] == state;
	keyset_free(&k);
	return n;
}

static long out_frames(const char *dir, const char *name, const char *role)
{
	struct keyset k;
	char p[256];
	long n;

	snprintf(p, sizeof(p), "%s/%s-%s.out", dir, name, role);
	if (read_keys(p, &k))
		return -1;
	n = (long)k.n;
	keyset_free(&k);
	return n;
}

/*
 * Frames written so far by the last module of both sides (the smaller count),
 * from the modules' own statistics through the QPM; -1 if one cannot answer.
 * Output files are only read once a pipeline stopped: modules batch their
 * writes, so a file may lag behind while the pipeline runs.
 */
static long done(const char *port, const char *pl, const char *last)
{
	long n = -1;

	for (int s = 0; s < 2; s++) {
		struct qkd_coap_reply r;
		struct qkd_json j;
		char path[200];
		double v;

		snprintf(path, sizeof(path), "modules/%s/%s/%s/0/stats", pl, s ? "bob" : "alice",
			 last);
		/* A busy machine may delay an answer; a few tries before giving up. */
		for (int t = 0; get_json(port, path, &r, &j); t++)
			if (t == 3)
				return -1;
		if (!qkd_json_get_num(j, "frames_out", &v))
			v = -1;
		qkd_coap_reply_free(&r);
		if (s == 0 || (long)v < n)
			n = (long)v;
	}
	return n;
}

static bool wait_done(const char *port, const char *pl, const char *last, long n, int secs);

/* k more frames than now at the last module of both sides. */
static bool wait_more(const char *port, const char *pl, const char *last, long k, int secs)
{
	long base = done(port, pl, last);

	return base >= 0 && wait_done(port, pl, last, base + k, secs);
}

static bool wait_done(const char *port, const char *pl, const char *last, long n, int secs)
{
	uint64_t end = now_ms() + (uint64_t)secs * 1000;

	while (now_ms() < end) {
		if (done(port, pl, last) >= n)
			return true;
		usleep(100000);
	}
	return false;
}

static void dump_log(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "tail -n 30 %s/qpm.log | sed 's/^/# /' >&2", dir);
	if (system(cmd))
		return;
}

TEST_F_TIMEOUT(qpm, alice_bob_keys_identical, 120)
{
	long common;
	uint64_t maxid;

	write_pipeline(self->dir, "p1", "", "");
	/* Load and start with the stock CoAP client. */
	ASSERT_EQ(0, sh("coap-client-notls -m post -t 41 -f %s/p1.xml "
			"'coap://127.0.0.1:%s/pipelines?file=p1.xml' >/dev/null",
			self->dir, self->port));
	ASSERT_EQ(0, sh("coap-client-notls -m put -e start "
			"coap://127.0.0.1:%s/pipelines/p1/state >/dev/null", self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 15", bindir, self->port)) dump_log(self->dir);
	ASSERT_TRUE(wait_done(self->port, "p1", "estimate", 30, 40)) dump_log(self->dir);
	/* The status table shows both sides with rates and QBER (polled once a second). */
	for (int i = 0; i < 30 && CTL(self, "status | grep -q 'bob/estimate/0 .* running'",
				      bindir, self->port); i++)
		usleep(100000);
	EXPECT_EQ(0, CTL(self, "status | grep -q 'bob/estimate/0 .* running'", bindir,
			 self->port)) CTL(self, "status >&2", bindir, self->port);
	ASSERT_EQ(0, sh("coap-client-notls -m put -e stop "
			"coap://127.0.0.1:%s/pipelines/p1/state >/dev/null", self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 stopped 15", bindir, self->port)) dump_log(self->dir);
	common = check_keys(self->dir, "p1", &maxid);
	TH_LOG("%ld keys delivered identically on both sides", common);
	EXPECT_GE(common, 25);
}

TEST_F_TIMEOUT(qpm, full_chain_kill9_hibernate_resume, 300)
{
	long before, common, auth, hib;
	uint64_t max_before, max_after, max_hib;
	double pid;

	write_full_pipeline(self->dir, "p1", "restart-backoff-ms=\"200\"");
	ASSERT_EQ(0, CTL(self, "load %s/p1.xml >/dev/null", bindir, self->port, self->dir));
	ASSERT_EQ(0, CTL(self, "start p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 15", bindir, self->port)) dump_log(self->dir);
	ASSERT_TRUE(wait_done(self->port, "p1", "auth", 20, 60)) dump_log(self->dir);

	/* kill -9 of Alice's Cascade, the stage with the most state in flight. */
	pid = module_stat(self->port, "p1/alice/cascade/0", "pid");
	ASSERT_GT(pid, 1);
	ASSERT_EQ(0, kill((pid_t)pid, SIGKILL));
	before = check_keys(self->dir, "p1", &max_before);
	ASSERT_GE(before, 0);
	usleep(500000);
	ASSERT_EQ(0, CTL(self, "wait p1 running 20", bindir, self->port)) dump_log(self->dir);
	EXPECT_GE(module_stat(self->port, "p1/alice/cascade/0", "restarts"), 1);
	ASSERT_TRUE(wait_more(self->port, "p1", "auth", 20, 60))
		dump_log(self->dir);

	/* Hibernate the whole chain mid-stream, resume it, and go on. */
	ASSERT_EQ(0, CTL(self, "hibernate p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 hibernated 30", bindir, self->port)) dump_log(self->dir);
	hib = check_keys(self->dir, "p1", &max_hib);
	ASSERT_GE(hib, 0);
	ASSERT_EQ(0, CTL(self, "resume p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 20", bindir, self->port)) dump_log(self->dir);
	/* Counters resume from the state files (the drain added to them): count from here. */
	ASSERT_TRUE(wait_more(self->port, "p1", "auth", 20, 60)) dump_log(self->dir);
	ASSERT_EQ(0, CTL(self, "stop p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 stopped 30", bindir, self->port));

	common = check_keys(self->dir, "p1", &max_after);
	auth = out_state(self->dir, "p1", "alice", QKD_STATE_AUTHENTICATED);
	TH_LOG("%ld identical final keys (%ld authenticated on Alice's side), %ld before the "
	       "kill, %ld at hibernation; largest key id %llu -> %llu -> %llu", common, auth,
	       before, hib, (unsigned long long)max_before, (unsigned long long)max_hib,
	       (unsigned long long)max_after);
	ASSERT_GE(common, 0);
	EXPECT_GE(common, before + 15);
	EXPECT_GE(common, hib + 15);
	EXPECT_GE(auth, 40);
	EXPECT_GT(max_after, max_hib);
	EXPECT_GT(max_hib, max_before);
}

TEST_F_TIMEOUT(qpm, kill9_module_restarts, 240)
{
	long before, common;
	uint64_t max_before, max_after;
	double pid, restarts;

	write_pipeline(self->dir, "p1", "restart-backoff-ms=\"200\"", "");
	ASSERT_EQ(0, CTL(self, "load %s/p1.xml >/dev/null", bindir, self->port, self->dir));
	ASSERT_EQ(0, CTL(self, "start p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 15", bindir, self->port));
	ASSERT_TRUE(wait_done(self->port, "p1", "estimate", 15, 40)) dump_log(self->dir);

	/* kill -9 of Alice's sift mid-run. */
	pid = module_stat(self->port, "p1/alice/sift/0", "pid");
	ASSERT_GT(pid, 1);
	ASSERT_EQ(0, kill((pid_t)pid, SIGKILL));
	before = check_keys(self->dir, "p1", &max_before);
	ASSERT_GE(before, 0);
	usleep(500000);
	ASSERT_EQ(0, CTL(self, "wait p1 running 20", bindir, self->port)) dump_log(self->dir);
	restarts = module_stat(self->port, "p1/alice/sift/0", "restarts");
	EXPECT_GE(restarts, 1);
	EXPECT_NE(pid, module_stat(self->port, "p1/alice/sift/0", "pid"));
	/* The pipeline carries on: more keys after the restart. */
	ASSERT_TRUE(wait_more(self->port, "p1", "estimate", 15, 40))
		dump_log(self->dir);

	/* And once more on the other side, the estimator this time. */
	pid = module_stat(self->port, "p1/bob/estimate/0", "pid");
	ASSERT_GT(pid, 1);
	ASSERT_EQ(0, kill((pid_t)pid, SIGKILL));
	usleep(500000);
	ASSERT_EQ(0, CTL(self, "wait p1 running 20", bindir, self->port)) dump_log(self->dir);
	ASSERT_TRUE(wait_more(self->port, "p1", "estimate", 10, 40))
		dump_log(self->dir);
	ASSERT_EQ(0, CTL(self, "stop p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 stopped 15", bindir, self->port));

	common = check_keys(self->dir, "p1", &max_after);
	TH_LOG("%ld common keys before the kill, %ld in all; largest key id %llu -> %llu",
	       before, common, (unsigned long long)max_before, (unsigned long long)max_after);
	ASSERT_GE(common, 0);
	EXPECT_GT(common, before + 15);
	EXPECT_GT(max_after, max_before);
}

TEST_F_TIMEOUT(qpm, hibernate_resume_two_pipelines, 300)
{
	uint64_t m1a, m1b, m2a, m2b;
	long c1a, c1b, c2a, c2b, n;

	write_pipeline(self->dir, "p1", "", "");
	write_pipeline(self->dir, "p2", "", "");
	ASSERT_EQ(0, CTL(self, "load %s/p1.xml >/dev/null", bindir, self->port, self->dir));
	ASSERT_EQ(0, CTL(self, "load %s/p2.xml >/dev/null", bindir, self->port, self->dir));

	/* p1 runs, hibernates mid-stream; p2 runs meanwhile, hibernates; p1 resumes. */
	ASSERT_EQ(0, CTL(self, "start p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 15", bindir, self->port));
	ASSERT_TRUE(wait_done(self->port, "p1", "estimate", 15, 40)) dump_log(self->dir);
	ASSERT_EQ(0, sh("coap-client-notls -m post coap://127.0.0.1:%s/pipelines/p1/hibernate "
			">/dev/null", self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 hibernated 15", bindir, self->port)) dump_log(self->dir);
	c1a = check_keys(self->dir, "p1", &m1a);
	ASSERT_GE(c1a, 10);
	n = out_frames(self->dir, "p1", "alice");

	ASSERT_EQ(0, CTL(self, "start p2", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p2 running 15", bindir, self->port));
	ASSERT_TRUE(wait_done(self->port, "p2", "estimate", 15, 40)) dump_log(self->dir);
	/* A hibernated pipeline produces nothing. */
	EXPECT_EQ(n, out_frames(self->dir, "p1", "alice"));
	ASSERT_EQ(0, CTL(self, "hibernate p2", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p2 hibernated 15", bindir, self->port));
	c2a = check_keys(self->dir, "p2", &m2a);
	ASSERT_GE(c2a, 10);

	/* Resume only works on a hibernated pipeline. */
	EXPECT_NE(0, CTL(self, "resume p3 2>/dev/null", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "resume p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 15", bindir, self->port));
	ASSERT_TRUE(wait_more(self->port, "p1", "estimate", 15, 40)) dump_log(self->dir);
	ASSERT_EQ(0, CTL(self, "hibernate p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 hibernated 15", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "resume p2", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p2 running 15", bindir, self->port));
	ASSERT_TRUE(wait_more(self->port, "p2", "estimate", 10, 40));
	ASSERT_EQ(0, CTL(self, "stop p2", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p2 stopped 15", bindir, self->port));

	c1b = check_keys(self->dir, "p1", &m1b);
	c2b = check_keys(self->dir, "p2", &m2b);
	TH_LOG("p1: %ld -> %ld common keys, max id %llu -> %llu; p2: %ld -> %ld, %llu -> %llu",
	       c1a, c1b, (unsigned long long)m1a, (unsigned long long)m1b, c2a, c2b,
	       (unsigned long long)m2a, (unsigned long long)m2b);
	/* Identical keys, no key id reused across the hibernation, and progress. */
	EXPECT_GT(c1b, c1a + 10);
	EXPECT_GT(c2b, c2a + 5);
	EXPECT_GT(m1b, m1a);
	EXPECT_GT(m2b, m2a);

	/* A truncated state file is refused with the module's reason; the file stays. */
	ASSERT_EQ(0, sh("truncate -s 20 %s/p2.state/bob.estimate.0.state", self->dir));
	ASSERT_EQ(0, CTL(self, "start p2", bindir, self->port));
	EXPECT_EQ(1, CTL(self, "wait p2 running 10 >/dev/null 2>&1", bindir, self->port));
	EXPECT_EQ(0, CTL(self, "show p2 | grep -q 'bob/estimate/0 refused to start.*state file'",
			 bindir, self->port)) CTL(self, "show p2 >&2", bindir, self->port);
	EXPECT_EQ(0, sh("test -s %s/p2.state/bob.estimate.0.state", self->dir));
	EXPECT_EQ(c2b, check_keys(self->dir, "p2", NULL));
}

/* A hibernated pipeline outlives the QPM: a new QPM on the same run directory resumes it. */
TEST_F_TIMEOUT(qpm, hibernated_pipeline_survives_qpm_restart, 180)
{
	long c1, c2;
	uint64_t m1, m2;
	int st;

	write_pipeline(self->dir, "p1", "", "");
	ASSERT_EQ(0, CTL(self, "load %s/p1.xml >/dev/null", bindir, self->port, self->dir));
	ASSERT_EQ(0, CTL(self, "start p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 15", bindir, self->port));
	ASSERT_TRUE(wait_done(self->port, "p1", "estimate", 15, 40)) dump_log(self->dir);
	ASSERT_EQ(0, CTL(self, "hibernate p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 hibernated 20", bindir, self->port));
	c1 = check_keys(self->dir, "p1", &m1);
	ASSERT_GE(c1, 10);

	kill(self->pid, SIGTERM);
	ASSERT_EQ(self->pid, waitpid(self->pid, &st, 0));
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	self->pid = start_qpm(self->dir, self->port);
	ASSERT_GT(self->pid, 0);

	/* The new QPM knows p1 and that it is hibernated. */
	EXPECT_EQ(0, CTL(self, "wait p1 hibernated 5", bindir, self->port)) dump_log(self->dir);
	ASSERT_EQ(0, CTL(self, "resume p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 15", bindir, self->port));
	ASSERT_TRUE(wait_more(self->port, "p1", "estimate", 15, 40)) dump_log(self->dir);
	ASSERT_EQ(0, CTL(self, "stop p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 stopped 20", bindir, self->port));
	c2 = check_keys(self->dir, "p1", &m2);
	TH_LOG("%ld common keys before the QPM restart, %ld after; largest key id %llu -> %llu",
	       c1, c2, (unsigned long long)m1, (unsigned long long)m2);
	EXPECT_GE(c2, c1 + 10);
	EXPECT_GT(m2, m1);
	/* Unloading forgets it for good: a third QPM does not bring it back. */
	EXPECT_EQ(0, CTL(self, "unload p1", bindir, self->port));
	kill(self->pid, SIGTERM);
	waitpid(self->pid, &st, 0);
	self->pid = start_qpm(self->dir, self->port);
	ASSERT_GT(self->pid, 0);
	EXPECT_EQ(1, CTL(self, "show p1 >/dev/null 2>&1", bindir, self->port));
}

TEST_F_TIMEOUT(qpm, live_parameter_change, 120)
{
	double d0, b0, d1, b1, d2, b2, d3, b3, before, after;
	struct qkd_coap_reply r;

	write_pipeline(self->dir, "p1", "", "");
	ASSERT_EQ(0, CTL(self, "load %s/p1.xml >/dev/null", bindir, self->port, self->dir));
	ASSERT_EQ(0, CTL(self, "start p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 15", bindir, self->port));
	ASSERT_TRUE(wait_done(self->port, "p1", "estimate", 10, 40));
	ASSERT_EQ(0, live_stats(self->port, "p1/alice/estimate/0", &d0, &b0));
	usleep(1500000);
	ASSERT_EQ(0, live_stats(self->port, "p1/alice/estimate/0", &d1, &b1));
	ASSERT_GT(b1, b0);

	/* Through the QPM with the stock client: Alice's estimator discloses 40%. */
	ASSERT_EQ(0, sh("coap-client-notls -m put -e 0.4 "
			"coap://127.0.0.1:%s/modules/p1/alice/estimate/0/params/sample-ratio "
			">/dev/null", self->port));
	ASSERT_EQ(0, qkd_coap_request("127.0.0.1", self->port, COAP_REQUEST_GET,
				      "modules/p1/alice/estimate/0/params/sample-ratio", NULL, 0,
				      QKD_CF_NONE, QKD_CF_TEXT, 2000, NULL, &r));
	EXPECT_EQ(205, r.code);
	EXPECT_STREQ("0.4", r.body);
	qkd_coap_reply_free(&r);
	/* The next frames: from a point after the change on. */
	usleep(300000);
	ASSERT_EQ(0, live_stats(self->port, "p1/alice/estimate/0", &d2, &b2));
	usleep(1500000);
	ASSERT_EQ(0, live_stats(self->port, "p1/alice/estimate/0", &d3, &b3));
	ASSERT_GT(b3, b2);
	before = (d1 - d0) / (b1 - b0);
	after = (d3 - d2) / (b3 - b2);
	TH_LOG("disclosed fraction %.3f before, %.3f after the change",
	       before, after);
	EXPECT_LT(before, 0.2);
	EXPECT_GT(after, 0.37);
	EXPECT_GE(check_keys(self->dir, "p1", NULL), 10);
}

/* One request's response code and body. */
static int code_of(const char *port, int method, const char *path, const void *body,
		   size_t len, unsigned cf, unsigned accept, char *msg, size_t msglen)
{
	struct qkd_coap_reply r;
	int c;

	if (qkd_coap_request("127.0.0.1", port, method, path, body, len, cf, accept, 3000, NULL,
			     &r))
		return -1;
	c = r.code;
	if (msg)
		snprintf(msg, msglen, "%s", r.body ? r.body : "");
	qkd_coap_reply_free(&r);
	return c;
}

static bool serving(const char *port)
{
	return code_of(port, COAP_REQUEST_GET, "qpm", NULL, 0, QKD_CF_NONE, QKD_CF_NONE, NULL,
		       0) == 205;
}

TEST_F_TIMEOUT(qpm, bad_input_is_refused, 60)
{
	static const char *unknown_mod =
		"<pipeline name=\"x\">\n<side role=\"alice\">\n<module exec=\"qkd-nonesuch\"/>\n"
		"</side>\n</pipeline>\n";
	static const char *bad_schema =
		"<pipeline name=\"x\">\n<side role=\"carol\">\n<module exec=\"qkd-sim\"/>\n"
		"</side>\n</pipeline>\n";
	static const char *bad_wiring =
		"<pipeline name=\"x\">\n<side role=\"alice\">\n"
		"<module exec=\"qkd-sim\" instances=\"2\"/>\n"
		"<module exec=\"qkd-cat\" instances=\"3\"/>\n</side>\n</pipeline>\n";
	static const char *no_peer =
		"<pipeline name=\"x\">\n<side role=\"alice\" keypool=\"/nonexistent\">\n"
		"<module exec=\"qkd-sim\"/>\n<module exec=\"qkd-sift\" peer=\"true\"/>\n"
		"</side>\n</pipeline>\n";
	static const char *junk = "<pipeline name=\"x\">\n<side>\n</pipe";
	char msg[1200], big[70000], path[300];

	/* Malformed XML: 4.00 naming the file and the line. */
	EXPECT_EQ(400, code_of(self->port, COAP_REQUEST_POST, "pipelines?file=junk.xml", junk,
			       strlen(junk), QKD_CF_XML, QKD_CF_NONE, msg, sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "junk.xml:3:")) TH_LOG("%s", msg);
	EXPECT_EQ(400, code_of(self->port, COAP_REQUEST_POST, "pipelines?file=s.xml", bad_schema,
			       strlen(bad_schema), QKD_CF_XML, QKD_CF_NONE, msg, sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "s.xml:2:")) TH_LOG("%s", msg);
	EXPECT_NE(NULL, strstr(msg, "role")) TH_LOG("%s", msg);
	EXPECT_EQ(400, code_of(self->port, COAP_REQUEST_POST, "pipelines?file=u.xml",
			       unknown_mod, strlen(unknown_mod), QKD_CF_XML, QKD_CF_NONE, msg,
			       sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "u.xml:3: unknown module 'qkd-nonesuch'")) TH_LOG("%s", msg);
	EXPECT_EQ(400, code_of(self->port, COAP_REQUEST_POST, "pipelines?file=w.xml", bad_wiring,
			       strlen(bad_wiring), QKD_CF_XML, QKD_CF_NONE, msg, sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "w.xml:4:")) TH_LOG("%s", msg);
	EXPECT_EQ(400, code_of(self->port, COAP_REQUEST_POST, "pipelines?file=n.xml", no_peer,
			       strlen(no_peer), QKD_CF_XML, QKD_CF_NONE, msg, sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "n.xml:4:")) TH_LOG("%s", msg);
	/* The CLI reports the same with the real file name. */
	snprintf(path, sizeof(path), "%s/bad.xml", self->dir);
	{
		FILE *f = fopen(path, "w");

		fputs(unknown_mod, f);
		fclose(f);
	}
	EXPECT_EQ(1, CTL(self, "load %s 2>&1 | grep -q 'bad.xml:3: unknown module'; "
			 "exit $((1 - $?))", bindir, self->port, path));

	/* Oversized, wrong format, unknown things, wrong methods. */
	memset(big, 'x', sizeof(big));
	EXPECT_EQ(413, code_of(self->port, COAP_REQUEST_POST, "pipelines", big, sizeof(big),
			       QKD_CF_XML, QKD_CF_NONE, msg, sizeof(msg)));
	EXPECT_EQ(415, code_of(self->port, COAP_REQUEST_POST, "pipelines", "{}", 2, QKD_CF_JSON,
			       QKD_CF_NONE, NULL, 0));
	EXPECT_EQ(406, code_of(self->port, COAP_REQUEST_GET, "pipelines", NULL, 0, QKD_CF_NONE,
			       QKD_CF_XML, NULL, 0));
	{
		struct qkd_coap_reply r;

		/* The same list as CBOR: an array (major type 4) on request. */
		ASSERT_EQ(0, qkd_coap_request("127.0.0.1", self->port, COAP_REQUEST_GET, "pipelines",
					      NULL, 0, QKD_CF_NONE, QKD_CF_CBOR, 2000, NULL, &r));
		EXPECT_EQ(205, r.code);
		EXPECT_EQ(QKD_CF_CBOR, (int)r.content_format);
		EXPECT_EQ(4, r.len ? (uint8_t)r.body[0] >> 5 : -1);
		qkd_coap_reply_free(&r);
	}
	EXPECT_EQ(404, code_of(self->port, COAP_REQUEST_GET, "pipelines/nonesuch", NULL, 0,
			       QKD_CF_NONE, QKD_CF_NONE, msg, sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "no pipeline named nonesuch"));
	EXPECT_EQ(404, code_of(self->port, COAP_REQUEST_GET, "nothing/here", NULL, 0, QKD_CF_NONE,
			       QKD_CF_NONE, NULL, 0));
	EXPECT_EQ(405, code_of(self->port, COAP_REQUEST_PUT, "qpm", "x", 1, QKD_CF_TEXT,
			       QKD_CF_NONE, NULL, 0));
	EXPECT_EQ(400, code_of(self->port, COAP_REQUEST_POST, "register", "{\"pid\":", 7,
			       QKD_CF_JSON, QKD_CF_NONE, NULL, 0));
	EXPECT_EQ(404, code_of(self->port, COAP_REQUEST_POST, "register",
			       "{\"pid\":1,\"port\":9}", 18, QKD_CF_JSON, QKD_CF_NONE, NULL, 0));

	/* A bad parameter value: the module refuses it, the pipeline fails with its words. */
	write_pipeline(self->dir, "p1", "", "      <param name=\"mu\" value=\"lots\"/>\n");
	ASSERT_EQ(0, CTL(self, "load %s/p1.xml >/dev/null", bindir, self->port, self->dir));
	ASSERT_EQ(0, CTL(self, "start p1", bindir, self->port));
	EXPECT_EQ(1, CTL(self, "wait p1 running 10 2>/dev/null >/dev/null", bindir, self->port));
	EXPECT_EQ(0, CTL(self, "show p1 | grep -q 'failed.*refused to start.*lots'", bindir,
			 self->port)) dump_log(self->dir);
	/* An unknown action and a bad live value through the proxy. */
	EXPECT_EQ(400, code_of(self->port, COAP_REQUEST_PUT, "pipelines/p1/state", "explode", 7,
			       QKD_CF_TEXT, QKD_CF_NONE, NULL, 0));
	EXPECT_EQ(409, code_of(self->port, COAP_REQUEST_PUT, "pipelines/p1/state", "hibernate",
			       9, QKD_CF_TEXT, QKD_CF_NONE, NULL, 0));
	EXPECT_TRUE(serving(self->port));

	write_pipeline(self->dir, "p2", "", "");
	ASSERT_EQ(0, CTL(self, "load %s/p2.xml >/dev/null", bindir, self->port, self->dir));
	ASSERT_EQ(0, CTL(self, "start p2", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p2 running 15", bindir, self->port));
	EXPECT_EQ(400, code_of(self->port, COAP_REQUEST_PUT,
			       "modules/p2/bob/estimate/0/params/max-qber", "0.9", 3, QKD_CF_TEXT,
			       QKD_CF_NONE, msg, sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "range")) TH_LOG("%s", msg);
	EXPECT_EQ(403, code_of(self->port, COAP_REQUEST_PUT, "modules/p2/bob/sim/0/params/seed",
			       "5", 1, QKD_CF_TEXT, QKD_CF_NONE, NULL, 0));
	EXPECT_EQ(404, code_of(self->port, COAP_REQUEST_GET,
			       "modules/p2/bob/sim/0/params/nonesuch", NULL, 0, QKD_CF_NONE,
			       QKD_CF_NONE, NULL, 0));
	EXPECT_EQ(404, code_of(self->port, COAP_REQUEST_GET, "modules/p2/bob/sim/7", NULL, 0,
			       QKD_CF_NONE, QKD_CF_NONE, NULL, 0));
	/* A running pipeline cannot be replaced or unloaded. */
	EXPECT_EQ(409, code_of(self->port, COAP_REQUEST_DELETE, "pipelines/p2", NULL, 0,
			       QKD_CF_NONE, QKD_CF_NONE, NULL, 0));
	EXPECT_EQ(0, CTL(self, "stop p2", bindir, self->port));
	EXPECT_EQ(0, CTL(self, "wait p2 stopped 15", bindir, self->port));
	EXPECT_EQ(202, code_of(self->port, COAP_REQUEST_DELETE, "pipelines/p2", NULL, 0,
			       QKD_CF_NONE, QKD_CF_NONE, NULL, 0));
	EXPECT_TRUE(serving(self->port));
}

TEST_F_TIMEOUT(qpm, module_that_never_registers, 40)
{
	char path[256];
	FILE *f;
	uint64_t t0;

	/* qkd-hang never registers; the simulator before it does. */
	snprintf(path, sizeof(path), "%s/lonely.xml", self->dir);
	f = fopen(path, "w");
	fprintf(f, "<pipeline name=\"lonely\" register-timeout-ms=\"1500\" "
		"stop-timeout-ms=\"1000\" state-dir=\"%s/lonely\">\n"
		" <side role=\"alice\" keypool=\"%s/p1-alice.pool\">\n"
		"  <module exec=\"qkd-sim\"><param name=\"seed\" value=\"1\"/></module>\n"
		"  <module exec=\"qkd-hang\"/>\n"
		" </side>\n</pipeline>\n", self->dir, self->dir);
	fclose(f);
	ASSERT_EQ(0, CTL(self, "load %s >/dev/null", bindir, self->port, path));
	t0 = now_ms();
	ASSERT_EQ(0, CTL(self, "start lonely", bindir, self->port));
	EXPECT_EQ(1, CTL(self, "wait lonely running 10 >/dev/null 2>&1", bindir, self->port));
	EXPECT_EQ(0, CTL(self, "show lonely | grep -q 'lonely/alice/hang/0.*did not register'",
			 bindir, self->port)) dump_log(self->dir);
	/* Stopped cleanly: nothing of it keeps running. */
	while (now_ms() - t0 < 15000 &&
	       CTL(self, "show lonely | grep -q '\"alive\":0'", bindir, self->port))
		usleep(200000);
	EXPECT_EQ(0, CTL(self, "show lonely | grep -q '\"alive\":0'", bindir, self->port));
	EXPECT_TRUE(serving(self->port));
}

static void spray(const char *port, int count)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	uint8_t pkt[1400];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)atoi(port));
	for (int i = 0; i < count; i++) {
		size_t len;

		if (getrandom(pkt, sizeof(pkt), 0) != (ssize_t)sizeof(pkt))
			break;
		len = (size_t)(pkt[0] | pkt[1] << 8) % sizeof(pkt);
		/* Most look like CoAP version 1 requests so they reach the parser. */
		if (i % 4)
			pkt[0] = (uint8_t)(0x40 | (pkt[0] & 0x3f));
		if (i % 4 == 2)
			pkt[1] = (uint8_t)(1 + pkt[1] % 4); /* GET/POST/PUT/DELETE */
		sendto(fd, pkt, len, 0, (struct sockaddr *)&a, sizeof(a));
		if (i % 100 == 0)
			usleep(2000);
	}
	close(fd);
}

TEST_F_TIMEOUT(qpm, random_datagrams, 120)
{
	char mport[16];
	double port;

	write_pipeline(self->dir, "p1", "", "");
	ASSERT_EQ(0, CTL(self, "load %s/p1.xml >/dev/null", bindir, self->port, self->dir));
	ASSERT_EQ(0, CTL(self, "start p1", bindir, self->port));
	ASSERT_EQ(0, CTL(self, "wait p1 running 15", bindir, self->port));
	port = module_stat(self->port, "p1/bob/sift/0", "port");
	ASSERT_GT(port, 0);
	snprintf(mport, sizeof(mport), "%.0f", port);

	/* Bounded: 4000 datagrams at the QPM, 4000 at a module, loopback only. */
	spray(self->port, 4000);
	spray(mport, 4000);
	EXPECT_TRUE(serving(self->port));
	EXPECT_EQ(205, code_of(mport, COAP_REQUEST_GET, "state", NULL, 0, QKD_CF_NONE,
			       QKD_CF_NONE, NULL, 0));
	EXPECT_EQ(0, CTL(self, "wait p1 running 5", bindir, self->port));
	ASSERT_TRUE(wait_more(self->port, "p1", "estimate", 5, 30));
	EXPECT_GE(check_keys(self->dir, "p1", NULL), 5);
}

/* Remote administration: only DTLS-PSK, here on loopback with coaps://. */
TEST(dtls_psk_admin)
{
	char dir[] = "/tmp/qpm-dtls.XXXXXX", psk[64], bad[64], cmd[1200], plain[40], dtls[48];
	char bin[600], run[64];
	unsigned p1 = free_udp_port(), p2 = free_udp_port();
	struct qkd_coap_reply r;
	pid_t pid;
	int st;
	FILE *f;

	find_bindir();
	ASSERT_NE(NULL, mkdtemp(dir));
	snprintf(psk, sizeof(psk), "%s/psk", dir);
	snprintf(bad, sizeof(bad), "%s/bad", dir);
	f = fopen(psk, "w");
	fputs("qpm-admin\nsuper-secret-psk-0123456789\n", f);
	fclose(f);
	chmod(psk, 0600);
	f = fopen(bad, "w");
	fputs("intruder\nsuper-secret-psk-0123456789\n", f);
	fclose(f);
	chmod(bad, 0600);
	snprintf(bin, sizeof(bin), "%s/qpm", bindir);
	snprintf(run, sizeof(run), "%s/run", dir);

	/* Not loopback and no key: refused at start. A key file others can read: refused. */
	EXPECT_EQ(2, sh("%s --listen 0.0.0.0:%u --run-dir %s 2>/dev/null", bin, p2, run));
	chmod(psk, 0644);
	EXPECT_EQ(2, sh("%s --listen coaps://127.0.0.1:%u --psk-file %s --run-dir %s 2>/dev/null",
			bin, p2, psk, run));
	chmod(psk, 0600);

	snprintf(plain, sizeof(plain), "127.0.0.1:%u", p1);
	snprintf(dtls, sizeof(dtls), "coaps://127.0.0.1:%u", p2);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int fd = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fd, 2);
		execl(bin, "qpm", "--listen", plain, "--listen", dtls, "--psk-file", psk,
		      "--run-dir", run, (char *)NULL);
		_exit(127);
	}
	usleep(300000);
	/* qpmctl with the key, and the stock DTLS client. */
	EXPECT_EQ(0, sh("%s/qpmctl -k %s -s 127.0.0.1:%u list >/dev/null", bindir, psk, p2));
	EXPECT_EQ(0, sh("coap-client-openssl -u qpm-admin -k super-secret-psk-0123456789 "
			"coaps://127.0.0.1:%u/qpm | grep -q '\"name\":\"qpm\"'", p2));
	/* Wrong identity, or plain CoAP at the DTLS port: no answer. */
	EXPECT_EQ(1, sh("%s/qpmctl -t 1500 -k %s -s 127.0.0.1:%u list 2>/dev/null", bindir, bad,
			p2));
	snprintf(cmd, sizeof(cmd), "%u", p2);
	EXPECT_NE(0, qkd_coap_request("127.0.0.1", cmd, COAP_REQUEST_GET, "qpm", NULL, 0,
				      QKD_CF_NONE, QKD_CF_NONE, 1000, NULL, &r));
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	EXPECT_EQ(0, system(cmd));
}

TEST_HARNESS_MAIN
