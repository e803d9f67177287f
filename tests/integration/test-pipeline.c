// SPDX-License-Identifier: GPL-2.0
/*
 * End to end through real processes: Alice's and Bob's pipelines
 * qkd-sim -> qkd-sift [-> qkd-estimate] connected by pipes, each stage pair by
 * an authenticated TCP peer channel on loopback, with a fresh pre-shared key
 * pool. The outputs are checked against the simulator's ground truth:
 *   - sifting keeps exactly the slots where Bob detected and the bases match
 *     (the raw frames are regenerated here from the seed and compared bit by
 *     bit), and the two sifted keys differ in exactly the true error count;
 *   - every QBER estimate lies within its Hoeffding bound (delta = 1e-6) of
 *     the block's true error rate, and the sampled errors plus the errors left
 *     in the key add up to the truth;
 *   - frames above the threshold are aborted on both sides;
 *   - SIGTERM to the sources or to the middle stages loses no accepted frame;
 *   - parallel instances (--out x2, --instance I/2, --in x2) restore key-id order;
 *   - a single bit flipped by a man in the middle in any sifting message makes
 *     the authentication fail on both sides and that frame yields no key.
 * Binaries come from $QKD_BUILD/bin (default build/bin).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testproc.h"
#include "qkd/bb84sim.h"
#include "qkd/estimate.h"
#include "qkd/frame.h"
#include "qkd/module.h"
#include "qkd/poslist.h"
#include "qkd/raw.h"
#include "qkd/stream.h"
/* The relay below parses the peer framing: take its constants from the source. */
#include "../../userspace/lib/peer-impl.h"

#define MAX_FRAMES 64
#define CMD 8192

struct truth {
	uint64_t key_id, slots, detected, multi, sifted, errors;
	double qber;
};

struct env {
	char dir[64];
	char bin[1024];
	int port;
};

static int port_free(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static void env_init(struct env *e)
{
	unsigned r;

	tp_bin_dir(e->bin, sizeof(e->bin));
	strcpy(e->dir, "/tmp/qkd-pipeline.XXXXXX");
	tp_mkdtemp(e->dir);
	/* Same random pre-shared key for both sides, each with its own spent record. */
	tp_identical_pools(e->dir, 1048576);
	/* Six consecutive loopback ports nobody is bound to right now. */
	for (int tries = 0; tries < 100; tries++) {
		int ok = 1;

		qkd_random(&r, sizeof(r));
		e->port = 20000 + (int)(r % 20000);
		for (int i = 0; i < 6 && ok; i++) {
			int fd = port_free(e->port + i);

			ok = fd >= 0;
			if (fd >= 0)
				close(fd);
		}
		if (ok)
			break;
	}
}

static void env_free(struct env *e)
{
	if (getenv("QKD_KEEP")) {
		fprintf(stderr, "# kept %s\n", e->dir);
		return;
	}
	tp_rmdir(e->dir);
}

static int read_truth(const struct env *e, const char *name, struct truth *t, int max)
{
	char path[256], line[512];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (n < max && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "key_id=%" SCNu64 " slots=%" SCNu64 " detected=%" SCNu64
			   " multi=%" SCNu64 " sifted=%" SCNu64 " errors=%" SCNu64 " qber=%lf",
			   &t[n].key_id, &t[n].slots, &t[n].detected, &t[n].multi, &t[n].sifted,
			   &t[n].errors, &t[n].qber) == 7)
			n++;
	}
	fclose(f);
	return n;
}

/* "exit: N frames in, M out" from a module's log. */
static int log_counts(const struct env *e, const char *name, uint64_t *in, uint64_t *out)
{
	char path[256], line[1024];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "exit: ");

		if (p && sscanf(p, "exit: %" SCNu64 " frames in, %" SCNu64 " out", in, out) == 2)
			found = 1;
	}
	fclose(f);
	return found ? 0 : -1;
}

/* "N frames produced" from qkd-sim's log, or -1. */
static int log_produced(const struct env *e, const char *name)
{
	char path[256], line[1024];
	FILE *f;
	int n = -1;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "info: ");

		if (p && strstr(p, " frames produced"))
			sscanf(p, "info: %d frames produced", &n);
	}
	fclose(f);
	return n;
}

static int run_pair(const struct env *e, const char *alice, const char *bob, int timeout)
{
	pid_t b = tp_spawn(e->dir, bob), a = tp_spawn(e->dir, alice);
	int sa = tp_wait(a, timeout), sb = tp_wait(b, timeout);

	return sa ? sa : sb;
}

/* ------------------------------------------------------------------------ */

FIXTURE(pipe) {
	struct env e;
};

FIXTURE_SETUP(pipe)
{
	env_init(&self->e);
}

/* Runs even when a test fails an assertion: no temporary directories left. */
FIXTURE_TEARDOWN(pipe)
{
	env_free(&self->e);
}

TEST_F_TIMEOUT(pipe, sifting_matches_ground_truth, 180)
{
	const uint64_t seed = 99, slots = 300000;
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	struct truth t[MAX_FRAMES];
	struct qkd_sim_params sp = { .seed = seed, .mu = 0.5, .eta = qkd_sim_eta(25, 0.2, 0.2),
				     .misalign = 0.05, .dark = 1e-5 };
	uint8_t *araw = malloc(slots), *braw = malloc(slots);
	int na, nb, nt;

	snprintf(b, CMD,
		 "%s/qkd-sim --role bob --seed %" PRIu64 " --frames 6 --slots %" PRIu64
		 " --qber 0.05 --dark 1e-5 --truth truth 2>sim-b.log | "
		 "%s/qkd-sift --role bob --listen 127.0.0.1:%d --keypool b.pool > b.out 2>b.log",
		 self->e.bin, seed, slots, self->e.bin, self->e.port);
	snprintf(a, CMD,
		 "%s/qkd-sim --role alice --seed %" PRIu64 " --frames 6 --slots %" PRIu64
		 " --qber 0.05 --dark 1e-5 2>sim-a.log | "
		 "%s/qkd-sift --role alice --peer 127.0.0.1:%d --keypool a.pool > a.out 2>a.log",
		 self->e.bin, seed, slots, self->e.bin, self->e.port);
	ASSERT_EQ(0, run_pair(&self->e, a, b, 60));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	nt = read_truth(&self->e, "truth", t, MAX_FRAMES);
	ASSERT_EQ(6, na);
	ASSERT_EQ(6, nb);
	ASSERT_EQ(6, nt);
	for (int i = 0; i < 6; i++) {
		uint64_t j = 0;

		ASSERT_EQ(QKD_STATE_SIFTED, fa[i]->state);
		ASSERT_EQ(QKD_STATE_SIFTED, fb[i]->state);
		ASSERT_EQ(t[i].key_id, fa[i]->key_id);
		ASSERT_EQ(t[i].key_id, fb[i]->key_id);
		ASSERT_EQ(0, fa[i]->flags & QKD_FRAME_F_BOB);
		ASSERT_EQ(QKD_FRAME_F_BOB, fb[i]->flags & QKD_FRAME_F_BOB);
		ASSERT_EQ(t[i].sifted, fa[i]->bit_count);
		ASSERT_EQ(t[i].sifted, fb[i]->bit_count);
		ASSERT_EQ(t[i].errors, qkd_bits_hamming(fa[i]->payload, fb[i]->payload,
							fa[i]->bit_count));
		/* Regenerate the raw frames and check every kept bit's origin. */
		qkd_sim_frame(&sp, t[i].key_id, slots, araw, braw, NULL);
		for (uint64_t s = 0; s < slots; s++) {
			if (!(braw[s] & QKD_RAW_DETECTED) || ((araw[s] ^ braw[s]) & QKD_RAW_BASIS))
				continue;
			ASSERT_LT(j, fa[i]->bit_count);
			ASSERT_EQ(araw[s] & QKD_RAW_VALUE, qkd_bit_get(fa[i]->payload, j));
			ASSERT_EQ(braw[s] & QKD_RAW_VALUE, qkd_bit_get(fb[i]->payload, j));
			j++;
		}
		ASSERT_EQ(j, fa[i]->bit_count);
	}
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
	free(araw);
	free(braw);
}

/*
 * Command lines of both sides. With wrap_sim / wrap_sift, that stage runs in
 * the background of a small shell that records its pid (X-a.pid) and exit
 * status (X-a.status), so a test can signal exactly that process.
 */
static void full_pipeline(const struct env *e, char *a, char *b, const char *simopts,
			  const char *estopts, bool wrap_sim, bool wrap_sift)
{
	for (int side = 0; side < 2; side++) {
		const char *role = side ? "bob" : "alice", *conn = side ? "--listen" : "--peer";
		char c = side ? 'b' : 'a', sim[1536], sift[1536];

		snprintf(sim, sizeof(sim), "%s/qkd-sim --role %s %s%s", e->bin, role, simopts,
			 side ? " --truth truth" : "");
		snprintf(sift, sizeof(sift), "%s/qkd-sift --role %s %s 127.0.0.1:%d --keypool %c.pool",
			 e->bin, role, conn, e->port, c);
		snprintf(side ? b : a, CMD,
			 "%s%s%s 2>sim-%c.log%s | %s%s%s 2>sift-%c.log%s | "
			 "%s/qkd-estimate --role %s %s 127.0.0.1:%d --keypool %c.pool %s "
			 "> %c.out 2>%c.log",
			 wrap_sim ? "{ " : "", sim, "", c,
			 wrap_sim ? side ? " & echo $! > sim-b.pid; wait $!; echo $? > sim-b.status; }"
					 : " & echo $! > sim-a.pid; wait $!; echo $? > sim-a.status; }"
				  : "",
			 wrap_sift ? "{ exec 3<&0; " : "", sift, wrap_sift ? " <&3" : "", c,
			 wrap_sift ? side ? " & echo $! > sift-b.pid; wait $!; echo $? > sift-b.status; }"
					  : " & echo $! > sift-a.pid; wait $!; echo $? > sift-a.status; }"
				   : "",
			 e->bin, role, conn, e->port + 1, c, estopts, c, c);
	}
}

static int read_int(const struct env *e, const char *name)
{
	char path[256];
	FILE *f;
	int v = -1;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

TEST_F_TIMEOUT(pipe, estimate_within_hoeffding_bound, 180)
{
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	struct truth t[MAX_FRAMES];
	int na, nb, nt;

	full_pipeline(&self->e, a, b, "--seed 4711 --frames 30 --slots 200000 --qber 0.04",
		      "--sample-ratio 0.15", false, false);
	ASSERT_EQ(0, run_pair(&self->e, a, b, 120));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	nt = read_truth(&self->e, "truth", t, MAX_FRAMES);
	ASSERT_EQ(30, na);
	ASSERT_EQ(30, nb);
	ASSERT_EQ(30, nt);
	for (int i = 0; i < 30; i++) {
		uint64_t m = t[i].sifted - fa[i]->bit_count, sample_errors;
		double est = fa[i]->qber_ppm / 1e6, dev = qkd_est_hoeffding(m, 1e-6);

		ASSERT_EQ(QKD_STATE_ESTIMATED, fa[i]->state);
		ASSERT_EQ(QKD_STATE_ESTIMATED, fb[i]->state);
		ASSERT_EQ(fa[i]->bit_count, fb[i]->bit_count);
		ASSERT_EQ(fa[i]->qber_ppm, fb[i]->qber_ppm);
		ASSERT_EQ(qkd_est_sample_size(t[i].sifted, 0.15, 64), m);
		EXPECT_LE(fabs(est - t[i].qber), dev)
			TH_LOG("key %" PRIu64 ": estimate %.5f, truth %.5f, m %" PRIu64,
			       fa[i]->key_id, est, t[i].qber, m);
		/* Sampled errors + errors left in the key = all errors of the block. */
		sample_errors = (uint64_t)llround(est * (double)m);
		ASSERT_EQ(t[i].errors, sample_errors + qkd_bits_hamming(fa[i]->payload,
									fb[i]->payload,
									fa[i]->bit_count));
	}
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

TEST_F_TIMEOUT(pipe, frames_above_threshold_are_aborted, 180)
{
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	int na, nb;

	full_pipeline(&self->e, a, b, "--seed 5 --frames 4 --slots 200000 --qber 0.25", "--max-qber 11%",
		      false, false);
	ASSERT_EQ(0, run_pair(&self->e, a, b, 60));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	ASSERT_EQ(4, na);
	ASSERT_EQ(4, nb);
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(QKD_STATE_ABORTED, fa[i]->state);
		ASSERT_EQ(QKD_STATE_ABORTED, fb[i]->state);
		ASSERT_EQ(QKD_ABORT_QBER, fa[i]->abort_reason);
		ASSERT_EQ(QKD_ABORT_QBER, fb[i]->abort_reason);
		ASSERT_EQ(0u, fa[i]->payload_len);
		ASSERT_GT(fa[i]->qber_ppm, 110000u); /* why it was aborted */
	}
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

/* Key ids 0..n-1 in order, every frame complete and of the same state on both sides. */
static void check_consecutive(struct __test_metadata *_metadata, struct qkd_frame **fa, int na,
			      struct qkd_frame **fb, int nb)
{
	ASSERT_EQ(na, nb);
	for (int i = 0; i < na; i++) {
		ASSERT_EQ((uint64_t)i, fa[i]->key_id);
		ASSERT_EQ((uint64_t)i, fb[i]->key_id);
		ASSERT_EQ(fa[i]->state, fb[i]->state);
		ASSERT_EQ(fa[i]->bit_count, fb[i]->bit_count);
	}
}

/* On a failure, show what the stages said. */
static void dump_logs(const struct env *e)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "cd %s && for f in *.log; do sed \"s/^/# $f: /\" $f; done >&2",
		 e->dir);
	if (system(cmd))
		fprintf(stderr, "# no logs\n");
}

static void signal_pidfile(struct __test_metadata *_metadata, const struct env *e,
			   const char *name)
{
	int pid = read_int(e, name), r;

	ASSERT_GT(pid, 1);
	r = kill(pid, SIGTERM);
	if (r)
		dump_logs(e);
	ASSERT_EQ(0, r) TH_LOG("%s: process %d is gone", name, pid);
}

/* Wait (up to 30 s) until a log contains needle. */
static int wait_log(const struct env *e, const char *name, const char *needle)
{
	char path[256], line[1024];

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	for (int i = 0; i < 3000; i++) {
		FILE *f = fopen(path, "r");
		bool found = false;

		while (f && !found && fgets(line, sizeof(line), f))
			found = strstr(line, needle) != NULL;
		if (f)
			fclose(f);
		if (found)
			return 0;
		usleep(10000);
	}
	return -1;
}

/* Wait (up to 30 s) until both outputs hold at least min_bytes: frames are flowing. */
static int wait_flowing(const struct env *e, off_t min_bytes)
{
	for (int i = 0; i < 3000; i++) {
		struct stat sa, sb;
		char pa[256], pb[256];

		snprintf(pa, sizeof(pa), "%s/a.out", e->dir);
		snprintf(pb, sizeof(pb), "%s/b.out", e->dir);
		if (!stat(pa, &sa) && !stat(pb, &sb) && sa.st_size >= min_bytes &&
		    sb.st_size >= min_bytes)
			return 0;
		usleep(10000);
	}
	return -1;
}

TEST_F_TIMEOUT(pipe, sigterm_to_sources_loses_no_frame, 180)
{
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	uint64_t in, out;
	pid_t pa, pb;
	int na, nb;

	/* Endless sources at 40 frames/s, stopped by SIGTERM; the rest drains. */
	full_pipeline(&self->e, a, b, "--seed 8 --slots 50000 --rate 40", "", true, false);
	pb = tp_spawn(self->e.dir, b);
	pa = tp_spawn(self->e.dir, a);
	/* Signal once a few frames came through (not after a fixed time: load varies). */
	ASSERT_EQ(0, wait_flowing(&self->e, 3 * QKD_FRAME_HDR_LEN));
	usleep(200000);
	signal_pidfile(_metadata, &self->e, "sim-a.pid");
	signal_pidfile(_metadata, &self->e, "sim-b.pid");
	ASSERT_EQ(0, tp_wait(pa, 30));
	ASSERT_EQ(0, tp_wait(pb, 30));
	ASSERT_EQ(0, read_int(&self->e, "sim-a.status"));
	ASSERT_EQ(0, read_int(&self->e, "sim-b.status"));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	ASSERT_GE(na, 3);
	ASSERT_GE(nb, 3);
	/* Every frame a source made came out at the end of its pipeline. */
	ASSERT_EQ(na, log_produced(&self->e, "sim-a.log"));
	ASSERT_EQ(nb, log_produced(&self->e, "sim-b.log"));
	ASSERT_EQ(0, log_counts(&self->e, "sift-a.log", &in, &out));
	ASSERT_EQ((uint64_t)na, in);
	ASSERT_EQ(0, log_counts(&self->e, "sift-b.log", &in, &out));
	ASSERT_EQ((uint64_t)nb, in);
	/*
	 * The two sources were started and stopped independently, so one may
	 * have made a few frames more: those have no counterpart and end
	 * aborted (reason peer), never lost.
	 */
	for (int i = 0; i < na; i++)
		ASSERT_EQ((uint64_t)i, fa[i]->key_id);
	for (int i = 0; i < nb; i++)
		ASSERT_EQ((uint64_t)i, fb[i]->key_id);
	for (int i = 0; i < (na < nb ? na : nb); i++) {
		ASSERT_EQ(QKD_STATE_ESTIMATED, fa[i]->state);
		ASSERT_EQ(QKD_STATE_ESTIMATED, fb[i]->state);
	}
	for (int i = na < nb ? na : nb; i < (na > nb ? na : nb); i++) {
		struct qkd_frame *x = na > nb ? fa[i] : fb[i];

		ASSERT_EQ(QKD_STATE_ABORTED, x->state);
		ASSERT_EQ(QKD_ABORT_PEER, x->abort_reason);
	}
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

TEST_F_TIMEOUT(pipe, sigterm_to_middle_stage_loses_no_accepted_frame, 180)
{
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	uint64_t in_a, out_a, in_b, out_b;
	pid_t pa, pb;
	int na, nb;

	full_pipeline(&self->e, a, b, "--seed 9 --slots 50000 --rate 40", "", false, true);
	pb = tp_spawn(self->e.dir, b);
	pa = tp_spawn(self->e.dir, a);
	ASSERT_EQ(0, wait_flowing(&self->e, 3 * QKD_FRAME_HDR_LEN));
	usleep(200000);
	signal_pidfile(_metadata, &self->e, "sift-a.pid");
	signal_pidfile(_metadata, &self->e, "sift-b.pid");
	ASSERT_EQ(0, tp_wait(pa, 30));
	ASSERT_EQ(0, tp_wait(pb, 30));
	/* The stopped stages exit 0 having written every frame they read. */
	ASSERT_EQ(0, read_int(&self->e, "sift-a.status"));
	ASSERT_EQ(0, read_int(&self->e, "sift-b.status"));
	ASSERT_EQ(0, log_counts(&self->e, "sift-a.log", &in_a, &out_a));
	ASSERT_EQ(0, log_counts(&self->e, "sift-b.log", &in_b, &out_b));
	ASSERT_EQ(in_a, out_a);
	ASSERT_EQ(in_b, out_b);
	ASSERT_GE(in_a, 3u);
	/* ... and they all reached the end of the pipeline, complete and in order. */
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	ASSERT_EQ((uint64_t)na, out_a);
	ASSERT_EQ((uint64_t)nb, out_b);
	for (int i = 0; i < na; i++)
		ASSERT_EQ((uint64_t)i, fa[i]->key_id);
	for (int i = 0; i < nb; i++)
		ASSERT_EQ((uint64_t)i, fb[i]->key_id);
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

TEST_F_TIMEOUT(pipe, parallel_instances_restore_order, 180)
{
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	int na, nb;

	/* sim -> 2 sift instances (fifos) -> one estimate merging both inputs */
	for (int side = 0; side < 2; side++) {
		const char *role = side ? "bob" : "alice", *conn = side ? "--listen" : "--peer";
		char c = side ? 'b' : 'a';

		snprintf(side ? b : a, CMD,
			 "mkfifo %c.s0 %c.s1 %c.t0 %c.t1 && "
			 "{ %s/qkd-sim --role %s --seed 21 --frames 9 --slots 100000 "
			 "--out %c.s0 --out %c.s1 2>sim-%c.log & "
			 "%s/qkd-sift --role %s %s 127.0.0.1:%d --instance 0/2 --keypool %c.pool "
			 "--in %c.s0 --out %c.t0 2>sift0-%c.log & "
			 "%s/qkd-sift --role %s %s 127.0.0.1:%d --instance 1/2 --keypool %c.pool "
			 "--in %c.s1 --out %c.t1 2>sift1-%c.log & "
			 "%s/qkd-estimate --role %s %s 127.0.0.1:%d --keypool %c.pool "
			 "--in %c.t0 --in %c.t1 > %c.out 2>%c.log; s=$?; wait; exit $s; }",
			 c, c, c, c, self->e.bin, role, c, c, c,
			 self->e.bin, role, conn, self->e.port, c, c, c, c,
			 self->e.bin, role, conn, self->e.port + 1, c, c, c, c,
			 self->e.bin, role, conn, self->e.port + 2, c, c, c, c, c);
	}
	ASSERT_EQ(0, run_pair(&self->e, a, b, 60));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	ASSERT_EQ(9, na);
	check_consecutive(_metadata, fa, na, fb, nb);
	for (int i = 0; i < na; i++)
		ASSERT_EQ(QKD_STATE_ESTIMATED, fa[i]->state);
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

/*
 * Man in the middle for one peer channel: accepts Alice on listen_port,
 * connects to Bob on bob_port and relays, parsing the peer framing
 * (PEER_HDR_LEN-byte header: le32 length, le16 type, u8 kind, u8 ctx, le64 key id). In the data
 * message of (direction, key id, type) given by each rule it flips one bit of
 * the body at the given offset from the end. Runs in a child process.
 */
struct flip {
	int dir;		/* 0: Alice -> Bob, 1: Bob -> Alice */
	uint64_t key_id;
	uint16_t type;
	long offset;		/* byte of the body; negative: from the end (-1 = last) */
	uint8_t mask;
};

static int tcp_listen(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1))
		return -1;
	return fd;
}

static int tcp_connect_retry(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	for (int i = 0; i < 1000; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (!connect(fd, (struct sockaddr *)&a, sizeof(a)))
			return fd;
		close(fd);
		usleep(10000);
	}
	return -1;
}

static void relay(int listen_port, int bob_port, const struct flip *rules, int nrules)
{
	int lfd = tcp_listen(listen_port), fd[2];
	uint8_t *buf[2];
	size_t len[2] = { 0, 0 }, cap = 1 << 24;

	if (lfd < 0)
		_exit(3);
	fd[0] = accept(lfd, NULL, NULL);	/* Alice */
	fd[1] = tcp_connect_retry(bob_port);	/* Bob */
	if (fd[0] < 0 || fd[1] < 0)
		_exit(4);
	buf[0] = malloc(cap);
	buf[1] = malloc(cap);
	for (;;) {
		struct pollfd p[2] = { { fd[0], POLLIN, 0 }, { fd[1], POLLIN, 0 } };

		if (poll(p, 2, 60000) <= 0)
			_exit(5);
		for (int d = 0; d < 2; d++) {
			ssize_t n;
			size_t off = 0;

			if (!(p[d].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(fd[d], buf[d] + len[d], cap - len[d]);
			if (n <= 0) {
				/* One side closed: pass the close on and finish. */
				shutdown(fd[!d], SHUT_WR);
				_exit(0);
			}
			len[d] += (size_t)n;
			/* Forward every complete message, altered where a rule says so. */
			while (len[d] - off >= PEER_HDR_LEN) {
				uint8_t *h = buf[d] + off;
				uint32_t blen = (uint32_t)h[0] | (uint32_t)h[1] << 8 |
						(uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
				uint16_t type = (uint16_t)(h[4] | h[5] << 8);
				uint64_t key = 0;

				if (len[d] - off < PEER_HDR_LEN + (size_t)blen)
					break;
				for (int i = 7; i >= 0; i--)
					key = key << 8 | h[8 + i];
				for (int r = 0; r < nrules; r++) {
					long at = rules[r].offset < 0 ? (long)blen + rules[r].offset
								      : rules[r].offset;

					if (h[6] == PEER_KIND_DATA && rules[r].dir == d && rules[r].key_id == key &&
					    rules[r].type == type && at >= 0 && at < (long)blen)
						h[PEER_HDR_LEN + at] ^= rules[r].mask;
				}
				if (write(fd[!d], h, PEER_HDR_LEN + blen) != (ssize_t)(PEER_HDR_LEN + blen))
					_exit(6);
				off += PEER_HDR_LEN + blen;
			}
			memmove(buf[d], buf[d] + off, len[d] - off);
			len[d] -= off;
		}
	}
}

TEST_F_TIMEOUT(pipe, flipped_bit_in_peer_message_yields_no_key, 180)
{
	/*
	 * One bit of Bob's detection announcement of key 2 (in the last byte:
	 * basis bits, so it still parses) and one bit of Alice's match mask of
	 * key 4 (first byte).
	 */
	static const struct flip rules[] = {
		{ 1, 2, 1, -1, 0x01 },
		{ 0, 4, 2, 0, 0x01 },
	};
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	struct truth t[MAX_FRAMES];
	int na, nb, proxy_port = self->e.port + 5;
	uint64_t in, out;
	pid_t mitm, pa, pb;

	mitm = fork();
	if (mitm == 0)
		relay(proxy_port, self->e.port, rules, 2);
	snprintf(b, CMD,
		 "%s/qkd-sim --role bob --seed 77 --frames 6 --slots 100000 --truth truth "
		 "2>sim-b.log | %s/qkd-sift --role bob --listen 127.0.0.1:%d --keypool b.pool "
		 "> b.out 2>b.log", self->e.bin, self->e.bin, self->e.port);
	snprintf(a, CMD,
		 "%s/qkd-sim --role alice --seed 77 --frames 6 --slots 100000 2>sim-a.log | "
		 "%s/qkd-sift --role alice --peer 127.0.0.1:%d --keypool a.pool > a.out 2>a.log",
		 self->e.bin, self->e.bin, proxy_port);
	pb = tp_spawn(self->e.dir, b);
	pa = tp_spawn(self->e.dir, a);
	ASSERT_EQ(0, tp_wait(pa, 60));
	ASSERT_EQ(0, tp_wait(pb, 60));
	ASSERT_EQ(0, tp_wait(mitm, 10));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	ASSERT_EQ(6, read_truth(&self->e, "truth", t, MAX_FRAMES));
	ASSERT_EQ(6, na);
	ASSERT_EQ(6, nb);
	for (int i = 0; i < 6; i++) {
		if (i == 2 || i == 4) {
			ASSERT_EQ(QKD_STATE_ABORTED, fa[i]->state);
			ASSERT_EQ(QKD_STATE_ABORTED, fb[i]->state);
			ASSERT_EQ(QKD_ABORT_AUTH, fa[i]->abort_reason);
			ASSERT_EQ(QKD_ABORT_AUTH, fb[i]->abort_reason);
			ASSERT_EQ(0u, fa[i]->payload_len);
			continue;
		}
		ASSERT_EQ(QKD_STATE_SIFTED, fa[i]->state);
		ASSERT_EQ(t[i].sifted, fa[i]->bit_count);
		ASSERT_EQ(t[i].errors, qkd_bits_hamming(fa[i]->payload, fb[i]->payload,
							fa[i]->bit_count));
	}
	/* Counted as authentication failures on both sides. */
	for (int side = 0; side < 2; side++) {
		char path[256], line[1024];
		FILE *f;
		int found = 0;

		snprintf(path, sizeof(path), "%s/%c.log", self->e.dir, side ? 'b' : 'a');
		f = fopen(path, "r");
		ASSERT_NE(NULL, f);
		while (fgets(line, sizeof(line), f))
			found |= strstr(line, "2 aborted") && strstr(line, "2 auth failures");
		fclose(f);
		ASSERT_TRUE(found);
	}
	ASSERT_EQ(0, log_counts(&self->e, "a.log", &in, &out));
	ASSERT_EQ(6u, out);
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

TEST_F_TIMEOUT(pipe, flipped_bit_in_estimate_messages_yields_no_key, 180)
{
	/* Alice's sample of key 3 (last byte: her sample bits), Bob's bits of key 4. */
	static const struct flip rules[] = {
		{ 0, 3, 1, -1, 0x01 },
		{ 1, 4, 2, 0, 0x01 },
	};
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	int na, nb, proxy_port = self->e.port + 5;
	pid_t mitm;

	mitm = fork();
	if (mitm == 0)
		relay(proxy_port, self->e.port + 1, rules, 2);
	full_pipeline(&self->e, a, b, "--seed 31 --frames 6 --slots 100000", "", false, false);
	/* Alice's estimate stage goes through the relay. */
	{
		char from[64], to[64], *p;

		snprintf(from, sizeof(from), "--peer 127.0.0.1:%d", self->e.port + 1);
		snprintf(to, sizeof(to), "--peer 127.0.0.1:%d", proxy_port);
		p = strstr(a, from);
		ASSERT_NE(NULL, p);
		ASSERT_EQ(strlen(from), strlen(to));
		memcpy(p, to, strlen(to));
	}
	ASSERT_EQ(0, run_pair(&self->e, a, b, 60));
	ASSERT_EQ(0, tp_wait(mitm, 10));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	ASSERT_EQ(6, na);
	ASSERT_EQ(6, nb);
	for (int i = 0; i < 6; i++) {
		uint8_t want = (i == 3 || i == 4) ? QKD_STATE_ABORTED : QKD_STATE_ESTIMATED;

		ASSERT_EQ(want, fa[i]->state);
		ASSERT_EQ(want, fb[i]->state);
		if (want == QKD_STATE_ABORTED) {
			ASSERT_EQ(QKD_ABORT_AUTH, fa[i]->abort_reason);
			ASSERT_EQ(QKD_ABORT_AUTH, fb[i]->abort_reason);
		} else {
			ASSERT_EQ(fa[i]->qber_ppm, fb[i]->qber_ppm);
		}
	}
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

/* Copy the frames of src whose key id is in keep[] (n entries) to dst. */
static int filter_frames(const struct env *e, const char *src, const char *dst,
			 const uint64_t *keep, int n)
{
	struct qkd_frame *f[MAX_FRAMES];
	struct qkd_stream *w;
	char path[256];
	int nf = tp_read_frames(e->dir, src, f, MAX_FRAMES), fd;

	snprintf(path, sizeof(path), "%s/%s", e->dir, dst);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	w = fd >= 0 ? qkd_stream_open(fd, QKD_STREAM_WRITE | QKD_STREAM_FALLBACK) : NULL;
	if (nf < 0 || !w)
		return -1;
	for (int i = 0; i < nf; i++)
		for (int j = 0; j < n; j++)
			if (f[i]->key_id == keep[j] && qkd_write_frame(w, f[i]))
				return -1;
	tp_free_frames(f, nf);
	return qkd_stream_close(w);
}

/*
 * Frames missing on one side (dropped upstream): the frames both sides have
 * are sifted as usual; each side's extra frames end aborted (reason peer),
 * whichever side has them and wherever they are, including at the end.
 */
TEST_F_TIMEOUT(pipe, frames_missing_on_one_side_are_aborted_not_mismatched, 180)
{
	static const uint64_t keep_a[] = { 0, 1, 2, 3, 4, 5, 7 };
	static const uint64_t keep_b[] = { 0, 2, 3, 5, 6, 7, 8, 9 };
	char a[CMD], b[CMD], cmd[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	struct truth t[MAX_FRAMES];
	int na, nb;

	snprintf(cmd, CMD, "%s/qkd-sim --seed 3 --frames 10 --slots 100000 --alice-out a.raw "
		 "--bob-out b.raw --truth truth 2>sim.log", self->e.bin);
	ASSERT_EQ(0, tp_wait(tp_spawn(self->e.dir, cmd), 30));
	ASSERT_EQ(10, read_truth(&self->e, "truth", t, MAX_FRAMES));
	ASSERT_EQ(0, filter_frames(&self->e, "a.raw", "a.in", keep_a, 7));
	ASSERT_EQ(0, filter_frames(&self->e, "b.raw", "b.in", keep_b, 8));
	snprintf(b, CMD, "%s/qkd-sift --role bob --listen 127.0.0.1:%d --keypool b.pool "
		 "--in b.in --out b.out 2>b.log", self->e.bin, self->e.port);
	snprintf(a, CMD, "%s/qkd-sift --role alice --peer 127.0.0.1:%d --keypool a.pool "
		 "--in a.in --out a.out 2>a.log", self->e.bin, self->e.port);
	ASSERT_EQ(0, run_pair(&self->e, a, b, 60));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	ASSERT_EQ(7, na);
	ASSERT_EQ(8, nb);
	for (int side = 0; side < 2; side++) {
		struct qkd_frame **f = side ? fb : fa;
		const uint64_t *keep = side ? keep_b : keep_a;
		const uint64_t *other = side ? keep_a : keep_b;
		int n = side ? 8 : 7, no = side ? 7 : 8;

		for (int i = 0; i < n; i++) {
			bool common = false;

			ASSERT_EQ(keep[i], f[i]->key_id);
			for (int j = 0; j < no; j++)
				common |= other[j] == keep[i];
			if (common) {
				ASSERT_EQ(QKD_STATE_SIFTED, f[i]->state);
				ASSERT_EQ(t[keep[i]].sifted, f[i]->bit_count);
			} else {
				ASSERT_EQ(QKD_STATE_ABORTED, f[i]->state);
				ASSERT_EQ(QKD_ABORT_PEER, f[i]->abort_reason);
			}
		}
	}
	/* The common frames still agree to the truth bit for bit. */
	for (int i = 0, j = 0; i < na && j < nb;) {
		if (fa[i]->key_id < fb[j]->key_id) {
			i++;
		} else if (fa[i]->key_id > fb[j]->key_id) {
			j++;
		} else {
			if (fa[i]->state == QKD_STATE_SIFTED)
				ASSERT_EQ(t[fa[i]->key_id].errors,
					  qkd_bits_hamming(fa[i]->payload, fb[j]->payload,
							   fa[i]->bit_count));
			i++;
			j++;
		}
	}
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

/*
 * The answering side waits for the next frame's request as long as the
 * other side's source takes: gaps between frames (here 0.5 s) longer than the
 * peer stall limit (0.3 s) are not a stall.
 */
TEST_F_TIMEOUT(pipe, slow_source_is_not_a_stalled_peer, 180)
{
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	int na, nb;

	snprintf(b, CMD, "%s/qkd-sim --role bob --seed 4 --frames 4 --slots 50000 --rate 2 "
		 "2>sim-b.log | %s/qkd-sift --role bob --listen 127.0.0.1:%d --keypool b.pool "
		 "--peer-timeout 300 > b.out 2>b.log", self->e.bin, self->e.bin, self->e.port);
	snprintf(a, CMD, "%s/qkd-sim --role alice --seed 4 --frames 4 --slots 50000 "
		 "2>sim-a.log | %s/qkd-sift --role alice --peer 127.0.0.1:%d --keypool a.pool "
		 "--peer-timeout 300 > a.out 2>a.log", self->e.bin, self->e.bin, self->e.port);
	ASSERT_EQ(0, run_pair(&self->e, a, b, 60));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	ASSERT_EQ(4, na);
	ASSERT_EQ(4, nb);
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(QKD_STATE_SIFTED, fa[i]->state);
		ASSERT_EQ(QKD_STATE_SIFTED, fb[i]->state);
	}
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

/* ... and a stop request ends that wait at once, aborting nothing already done. */
TEST_F_TIMEOUT(pipe, sigterm_while_waiting_for_a_slow_peer, 180)
{
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	struct timespec t0, t1;
	int na, nb;
	pid_t pa, pb;

	snprintf(b, CMD, "%s/qkd-sim --role bob --seed 4 --frames 3 --slots 50000 --rate 0.25 "
		 "2>sim-b.log | %s/qkd-sift --role bob --listen 127.0.0.1:%d --keypool b.pool "
		 "> b.out 2>b.log", self->e.bin, self->e.bin, self->e.port);
	snprintf(a, CMD, "%s/qkd-sim --role alice --seed 4 --frames 3 --slots 50000 "
		 "2>sim-a.log | { exec 3<&0; %s/qkd-sift --role alice --peer 127.0.0.1:%d "
		 "--keypool a.pool --log-level debug <&3 > a.out 2>a.log & echo $! > sift-a.pid; wait $!; "
		 "echo $? > sift-a.status; }", self->e.bin, self->e.bin, self->e.port);
	pb = tp_spawn(self->e.dir, b);
	pa = tp_spawn(self->e.dir, a);
	/* Frame 0 sifted (outputs are batched: watch the log); Bob's next is 4 s away. */
	ASSERT_EQ(0, wait_log(&self->e, "a.log", "key 0: "));
	usleep(300000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	signal_pidfile(_metadata, &self->e, "sift-a.pid");
	ASSERT_EQ(0, tp_wait(pa, 30));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_EQ(0, read_int(&self->e, "sift-a.status"));
	/* Well before Bob's next frame (the stop check runs every 100 ms). */
	ASSERT_LT((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 2500);
	ASSERT_EQ(0, tp_wait(pb, 30));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	/* Alice: frame 0 sifted, frame 1 (read, never started by Bob) aborted. */
	ASSERT_EQ(2, na);
	ASSERT_EQ(QKD_STATE_SIFTED, fa[0]->state);
	ASSERT_EQ(QKD_STATE_ABORTED, fa[1]->state);
	ASSERT_EQ(QKD_ABORT_PEER, fa[1]->abort_reason);
	/* Bob: frame 0 sifted, the rest aborted since Alice has ended. */
	ASSERT_EQ(3, nb);
	ASSERT_EQ(QKD_STATE_SIFTED, fb[0]->state);
	for (int i = 1; i < 3; i++) {
		ASSERT_EQ(QKD_STATE_ABORTED, fb[i]->state);
		ASSERT_EQ(QKD_ABORT_PEER, fb[i]->abort_reason);
	}
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

TEST_F_TIMEOUT(pipe, deferred_authentication_folds_both_stages, 180)
{
	char a[CMD], b[CMD];
	struct qkd_frame *fa[MAX_FRAMES], *fb[MAX_FRAMES];
	int na, nb;

	for (int side = 0; side < 2; side++) {
		const char *role = side ? "bob" : "alice", *conn = side ? "--listen" : "--peer";
		char c = side ? 'b' : 'a';

		snprintf(side ? b : a, CMD,
			 "%s/qkd-sim --role %s --seed 12 --frames 4 --slots 100000 2>sim-%c.log | "
			 "%s/qkd-sift --role %s %s 127.0.0.1:%d --keypool %c.pool --defer-auth "
			 "2>sift-%c.log | "
			 "%s/qkd-estimate --role %s %s 127.0.0.1:%d --keypool %c.pool --defer-auth "
			 "> %c.out 2>%c.log",
			 self->e.bin, role, c, self->e.bin, role, conn, self->e.port, c, c,
			 self->e.bin, role, conn, self->e.port + 1, c, c, c);
	}
	ASSERT_EQ(0, run_pair(&self->e, a, b, 60));
	na = tp_read_frames(self->e.dir, "a.out", fa, MAX_FRAMES);
	nb = tp_read_frames(self->e.dir, "b.out", fb, MAX_FRAMES);
	ASSERT_EQ(4, na);
	ASSERT_EQ(4, nb);
	for (int i = 0; i < 4; i++) {
		static const uint8_t zero[2][16];

		ASSERT_EQ(QKD_STATE_ESTIMATED, fa[i]->state);
		/* Both stages' transcripts, folded identically on both sides. */
		ASSERT_EQ(2u, fa[i]->auth_stages);
		ASSERT_EQ(2u, fb[i]->auth_stages);
		ASSERT_EQ(0, memcmp(fa[i]->auth_acc, fb[i]->auth_acc, sizeof(fa[i]->auth_acc)));
		ASSERT_NE(0, memcmp(fa[i]->auth_acc, zero, sizeof(zero)));
		if (i)
			ASSERT_NE(0, memcmp(fa[i]->auth_acc, fa[i - 1]->auth_acc,
					    sizeof(fa[i]->auth_acc)));
	}
	tp_free_frames(fa, na);
	tp_free_frames(fb, nb);
}

TEST_HARNESS_MAIN
