// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-cascade as two real processes on an authenticated TCP peer channel on
 * loopback (fresh pre-shared key pool), fed ESTIMATED frames written here:
 *   - every frame comes out CORRECTED with Bob's key equal to Alice's (at
 *     most one residual error in the run: Cascade's frame error rate), in
 *     key-id order, disclosed_bits grown by the parities sent, QBERs 0.5-10 %,
 *     odd lengths, more frames than the window, both authentication modes;
 *   - a frame aborted upstream passes through in order on both sides;
 *   - a frame only one side has is aborted on the other (reason peer);
 *   - a frame without a QBER is aborted on both sides;
 *   - a round limit too small to finish aborts the frames (reason ec);
 *   - --help lists the schedules; an unknown schedule is a usage error.
 * Binaries come from $QKD_BUILD/bin (default build/bin).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "qkd/cascade.h"
#include "qkd/frame.h"
#include "qkd/module.h"
#include "qkd/stream.h"

#define MAX_FRAMES 64

struct env {
	char dir[64];
	char bin[1024];
	int port;
};

static void env_init(struct env *e)
{
	const char *b = getenv("QKD_BUILD");
	char cmd[256], *top = realpath(b ? b : "build", NULL);

	snprintf(e->bin, sizeof(e->bin), "%s/bin", top ? top : "build");
	free(top);
	strcpy(e->dir, "/tmp/qkd-cascade.XXXXXX");
	if (!mkdtemp(e->dir))
		abort();
	snprintf(cmd, sizeof(cmd),
		 "cd %s && head -c 1048576 /dev/urandom > a.pool && cp a.pool b.pool && "
		 "printf 'QKDSPNT1\\0\\0\\0\\0\\0\\0\\0\\0' > a.pool.spent && "
		 "cp a.pool.spent b.pool.spent", e->dir);
	if (system(cmd))
		abort();
	/* A port nobody listens on now (the kernel's pick), not a random guess. */
	{
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t l = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
		    getsockname(fd, (struct sockaddr *)&a, &l))
			abort();
		e->port = ntohs(a.sin_port);
		close(fd);
	}
}

static void env_free(struct env *e)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", e->dir);
}

static pid_t spawn(const struct env *e, const char *cmd)
{
	pid_t pid = fork();

	if (pid == 0) {
		setpgid(0, 0);
		if (chdir(e->dir))
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int wait_for(pid_t pid, int timeout_s)
{
	struct timespec t0, now;
	int st;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > timeout_s) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		usleep(10000);
	}
}

static int write_frames(const struct env *e, const char *name, struct qkd_frame **f, int n)
{
	char path[256];
	struct qkd_stream *s;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	s = qkd_stream_open(fd, QKD_STREAM_WRITE | QKD_STREAM_FALLBACK);
	if (!s)
		return -1;
	for (int i = 0; i < n && !r; i++)
		if (f[i])
			r = qkd_write_frame(s, f[i]);
	if (qkd_stream_close(s))
		r = -1;
	return r;
}

static int read_frames(const struct env *e, const char *name, struct qkd_frame **out, int max)
{
	char path[256];
	struct qkd_stream *s;
	int fd, n = 0, r;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	s = qkd_stream_open(fd, QKD_STREAM_READ | QKD_STREAM_FALLBACK);
	if (!s)
		return -1;
	while (n < max) {
		out[n] = NULL;
		r = qkd_read_frame(s, &out[n]);
		if (r <= 0) {
			qkd_frame_free(out[n]);
			if (r < 0)
				n = -1;
			break;
		}
		n++;
	}
	qkd_stream_close(s);
	return n;
}

static uint64_t rs = 0x2545f4914f6cdd1dull;

static uint64_t xr(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

/* Alice's and Bob's ESTIMATED frame; Bob's with independent errors at rate q. */
static void estimated(uint64_t key_id, uint64_t bits, double q, struct qkd_frame **a,
		      struct qkd_frame **b)
{
	uint32_t len = qkd_bits_to_bytes(bits);

	*a = qkd_frame_new(len);
	*b = qkd_frame_new(len);
	if (!*a || !*b)
		abort();
	for (int s = 0; s < 2; s++) {
		struct qkd_frame *f = s ? *b : *a;

		f->key_id = key_id;
		f->state = QKD_STATE_ESTIMATED;
		f->flags = s ? QKD_FRAME_F_BOB : 0;
		f->qber_ppm = (uint32_t)(q * 1e6);
		f->bit_count = bits;
		f->disclosed_bits = 1000;
		f->payload_len = len;
	}
	for (uint64_t i = 0; i < bits; i++)
		qkd_bit_set((*a)->payload, i, (int)(xr() & 1));
	memcpy((*b)->payload, (*a)->payload, len);
	for (uint64_t i = 0; i < bits; i++)
		if ((double)(xr() >> 11) * 0x1p-53 < q)
			(*b)->payload[i / 8] ^= (uint8_t)(1u << (i % 8));
}

static int run_pair(const struct env *e, const char *opts, int timeout_s)
{
	char cmd[2][2048];
	pid_t pid[2];
	int st[2];

	for (int side = 0; side < 2; side++) {
		const char *role = side ? "bob" : "alice", *conn = side ? "--listen" : "--peer";
		char c = side ? 'b' : 'a';

		snprintf(cmd[side], sizeof(cmd[side]),
			 "%s/qkd-cascade --role %s %s 127.0.0.1:%d --keypool %c.pool %s "
			 "< %c.in > %c.out 2> %c.log", e->bin, role, conn, e->port, c, opts, c, c, c);
	}
	pid[1] = spawn(e, cmd[1]);
	usleep(100000);
	pid[0] = spawn(e, cmd[0]);
	st[0] = wait_for(pid[0], timeout_s);
	st[1] = wait_for(pid[1], timeout_s);
	if (st[0] || st[1]) {
		char c[256];

		snprintf(c, sizeof(c), "cd %s && tail -n 5 *.log >&2", e->dir);
		if (system(c))
			fprintf(stderr, "no logs\n");
	}
	return st[0] || st[1] ? -1 : 0;
}

static void free_all(struct qkd_frame **f, int n)
{
	for (int i = 0; i < n; i++)
		qkd_frame_free(f[i]);
}

/* Many frames of every kind through both modes of authentication. */
static void many_frames(struct __test_metadata *_metadata, const char *opts)
{
	static const double qs[] = { 0.005, 0.01, 0.02, 0.05, 0.08, 0.10 };
	enum { N = 32 };
	struct qkd_frame *a[N], *b[N], *oa[MAX_FRAMES], *ob[MAX_FRAMES];
	struct env e;
	int na, nb, residual = 0;

	env_init(&e);
	for (int i = 0; i < N; i++)
		estimated(10 + i, 8000 + 613 * (uint64_t)i, qs[i % 6], &a[i], &b[i]);
	/* frame 12: aborted upstream on both sides */
	for (int s = 0; s < 2; s++) {
		struct qkd_frame *f = s ? b[12] : a[12];

		f->state = QKD_STATE_ABORTED;
		f->abort_reason = QKD_ABORT_QBER;
		f->bit_count = 0;
		f->payload_len = 0;
	}
	/* frame 20: only Alice has it; frame 25: only Bob has it */
	qkd_frame_free(b[20]);
	b[20] = NULL;
	qkd_frame_free(a[25]);
	a[25] = NULL;
	/* frame 30: no QBER known */
	a[30]->qber_ppm = b[30]->qber_ppm = QKD_QBER_UNKNOWN;
	ASSERT_EQ(0, write_frames(&e, "a.in", a, N));
	ASSERT_EQ(0, write_frames(&e, "b.in", b, N));
	ASSERT_EQ(0, run_pair(&e, opts, 120));
	na = read_frames(&e, "a.out", oa, MAX_FRAMES);
	nb = read_frames(&e, "b.out", ob, MAX_FRAMES);
	ASSERT_EQ(N - 1, na);
	ASSERT_EQ(N - 1, nb);
	for (int i = 0, ia = 0, ib = 0; i < N; i++) {
		struct qkd_frame *fa = a[i] ? oa[ia++] : NULL, *fb = b[i] ? ob[ib++] : NULL;

		if (fa)
			ASSERT_EQ(10u + i, fa->key_id);
		if (fb)
			ASSERT_EQ(10u + i, fb->key_id);
		if (i == 12) {
			ASSERT_EQ(QKD_STATE_ABORTED, fa->state);
			ASSERT_EQ(QKD_ABORT_QBER, fa->abort_reason);
			ASSERT_EQ(QKD_STATE_ABORTED, fb->state);
			continue;
		}
		if (i == 20 || i == 25) {
			struct qkd_frame *f = fa ? fa : fb;

			ASSERT_EQ(QKD_STATE_ABORTED, f->state);
			ASSERT_EQ(QKD_ABORT_PEER, f->abort_reason);
			continue;
		}
		if (i == 30) {
			ASSERT_EQ(QKD_STATE_ABORTED, fa->state);
			ASSERT_EQ(QKD_STATE_ABORTED, fb->state);
			ASSERT_EQ(QKD_ABORT_EC, fb->abort_reason);
			continue;
		}
		ASSERT_EQ(QKD_STATE_CORRECTED, fa->state) TH_LOG("frame %d", i);
		ASSERT_EQ(QKD_STATE_CORRECTED, fb->state) TH_LOG("frame %d", i);
		ASSERT_EQ(a[i]->bit_count, fb->bit_count);
		ASSERT_EQ(0, memcmp(a[i]->payload, fa->payload, fa->payload_len));
		/*
		 * Cascade may leave an error in a frame now and then (about 1e-3
		 * per frame at these lengths; qkd-confirm catches it): allow one.
		 */
		if (memcmp(fa->payload, fb->payload, fa->payload_len)) {
			TH_LOG("frame %d (%" PRIu64 " bits) kept an error", i, fa->bit_count);
			residual++;
		}
		/* the parities went on top of what earlier stages disclosed */
		ASSERT_EQ(fa->disclosed_bits, fb->disclosed_bits);
		ASSERT_GT(fb->disclosed_bits, 1000 + fb->bit_count / 64);
		ASSERT_LT(fb->disclosed_bits, 1000 + fb->bit_count);
	}
	ASSERT_LE(residual, 1);
	free_all(oa, na);
	free_all(ob, nb);
	free_all(a, N);
	free_all(b, N);
	env_free(&e);
}

TEST(corrects_frames_immediate_auth)
{
	many_frames(_metadata, "--window 8 --batch 3 --schedule option7");
}

TEST(corrects_frames_deferred_auth)
{
	many_frames(_metadata, "--window 16 --defer-auth true --schedule tuned");
}

TEST(round_limit_aborts_with_ec)
{
	enum { N = 4 };
	struct qkd_frame *a[N], *b[N], *oa[MAX_FRAMES], *ob[MAX_FRAMES];
	struct env e;

	env_init(&e);
	for (int i = 0; i < N; i++)
		estimated(1 + i, 20000, 0.05, &a[i], &b[i]);
	ASSERT_EQ(0, write_frames(&e, "a.in", a, N));
	ASSERT_EQ(0, write_frames(&e, "b.in", b, N));
	ASSERT_EQ(0, run_pair(&e, "--max-rounds 10", 60));
	ASSERT_EQ(N, read_frames(&e, "a.out", oa, MAX_FRAMES));
	ASSERT_EQ(N, read_frames(&e, "b.out", ob, MAX_FRAMES));
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(QKD_STATE_ABORTED, oa[i]->state);
		ASSERT_EQ(QKD_ABORT_EC, oa[i]->abort_reason);
		ASSERT_EQ(QKD_STATE_ABORTED, ob[i]->state);
		ASSERT_EQ(QKD_ABORT_EC, ob[i]->abort_reason);
	}
	free_all(oa, N);
	free_all(ob, N);
	free_all(a, N);
	free_all(b, N);
	env_free(&e);
}

TEST(help_lists_schedules)
{
	struct env e;
	char cmd[1200], out[65536];
	FILE *p;
	size_t n;

	env_init(&e);
	snprintf(cmd, sizeof(cmd), "%s/qkd-cascade --help", e.bin);
	p = popen(cmd, "r");
	ASSERT_NE(NULL, p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	ASSERT_EQ(0, pclose(p));
	for (int s = 0; s < CASCADE_N_SCHEDULES; s++)
		ASSERT_NE(NULL, strstr(out, cascade_schedule_name(s)));
	ASSERT_NE(NULL, strstr(out, "defer-auth"));
	snprintf(cmd, sizeof(cmd), "%s/qkd-cascade --role bob --listen 127.0.0.1:%d "
		 "--keypool %s/b.pool --schedule bogus < /dev/null > /dev/null 2>&1", e.bin,
		 e.port, e.dir);
	ASSERT_NE(0, system(cmd));
	env_free(&e);
}

TEST_HARNESS_MAIN
