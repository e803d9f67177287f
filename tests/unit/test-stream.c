// SPDX-License-Identifier: GPL-2.0
/*
 * Frame streams on one pipe, for both transports: end of stream (clean and
 * inside a frame, at every possible cut), garbage, signals before and inside
 * a frame, refusal of invalid frames by the writer, backend selection, large
 * frames through the direct path, and the automatic push of batched output
 * before a thread blocks on input (no ping-pong deadlock).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stddef.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <dirent.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "qkd/stream.h"

static void fill(struct qkd_frame *f, uint64_t k, uint32_t bytes)
{
	f->key_id = k;
	f->state = QKD_STATE_SIFTED;
	f->bit_count = (uint64_t)bytes * 8;
	f->payload_len = bytes;
	f->qber_ppm = QKD_QBER_UNKNOWN;
	qkd_frame_reserve(f, bytes);
	for (uint32_t i = 0; i < bytes; i++)
		f->payload[i] = (uint8_t)(k * 131 + i * 7);
}

static int check(const struct qkd_frame *f, uint64_t k, uint32_t bytes)
{
	if (f->key_id != k || f->payload_len != bytes || f->bit_count != (uint64_t)bytes * 8)
		return 0;
	for (uint32_t i = 0; i < bytes; i++)
		if (f->payload[i] != (uint8_t)(k * 131 + i * 7))
			return 0;
	return 1;
}

static size_t encode(const struct qkd_frame *f, uint8_t *out)
{
	qkd_frame_encode_header(f, out);
	if (f->payload_len)
		memcpy(out + QKD_FRAME_HDR_LEN, f->payload, f->payload_len);
	return QKD_FRAME_HDR_LEN + f->payload_len;
}

static volatile sig_atomic_t alarms;

static int go_fd = -1;	/* written to by the handler when set */

static void on_alarm(int sig)
{
	alarms++;
	if (go_fd >= 0 && write(go_fd, "g", 1) != 1)
		alarms += 100;	/* makes the test fail visibly */
}

/* SA_RESTART on purpose: the stream must still return between frames. */
static void arm_alarm(int ms)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	struct itimerval it = { .it_value = { .tv_sec = 0, .tv_usec = ms * 1000 } };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
}

FIXTURE(stream) {
	unsigned flags;
};

FIXTURE_VARIANT(stream) {
	bool fallback;
};

FIXTURE_VARIANT_ADD(stream, io_uring) { .fallback = false };
FIXTURE_VARIANT_ADD(stream, fallback) { .fallback = true };

FIXTURE_SETUP(stream)
{
	unsetenv("QKD_TRANSPORT");
	self->flags = variant->fallback ? QKD_STREAM_FALLBACK : 0;
	signal(SIGPIPE, SIG_IGN);
}

FIXTURE_TEARDOWN(stream) {}

TEST_F(stream, every_cut_of_a_stream_is_eof_or_truncation)
{
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	uint8_t buf[3 * (QKD_FRAME_HDR_LEN + 24)];
	size_t n = 0, bounds[4] = { 0 };

	for (int k = 0; k < 3; k++) {
		fill(f, (uint64_t)k, 8 * (uint32_t)k);
		n += encode(f, buf + n);
		bounds[k + 1] = n;
	}
	for (size_t len = 0; len <= n; len++) {
		int p[2], ret, frames = 0;
		struct qkd_stream *s;
		bool boundary = len == bounds[0] || len == bounds[1] || len == bounds[2] ||
				len == bounds[3];

		ASSERT_EQ(0, pipe(p));
		ASSERT_EQ((ssize_t)len, write(p[1], buf, len));
		close(p[1]);
		s = qkd_stream_open(p[0], QKD_STREAM_READ | self->flags);
		ASSERT_NE(NULL, s);
		while ((ret = qkd_read_frame(s, &g)) == 1) {
			ASSERT_TRUE(check(g, (uint64_t)frames, 8 * (uint32_t)frames));
			frames++;
		}
		if (boundary) {
			ASSERT_EQ(0, ret) TH_LOG("len %zu: %s", len, qkd_stream_error(s));
		} else {
			ASSERT_EQ(-EPIPE, ret) TH_LOG("len %zu", len);
			ASSERT_NE(NULL, strstr(qkd_stream_error(s), "inside a frame"));
			/* The stream stays failed. */
			ASSERT_EQ(-EPIPE, qkd_read_frame(s, &g));
		}
		ASSERT_EQ(0, qkd_stream_close(s));
	}
	qkd_frame_free(f);
	qkd_frame_free(g);
}

TEST_F(stream, garbage_is_refused_with_a_reason)
{
	static const char junk[] = "this is not a frame stream at all, sorry";
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	uint8_t buf[256];
	int p[2];
	struct qkd_stream *s;

	/* One good frame, then garbage. */
	fill(f, 7, 16);
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ((ssize_t)encode(f, buf), write(p[1], buf, encode(f, buf)));
	ASSERT_EQ((ssize_t)sizeof(junk), write(p[1], junk, sizeof(junk)));
	close(p[1]);
	s = qkd_stream_open(p[0], QKD_STREAM_READ | self->flags);
	ASSERT_EQ(1, qkd_read_frame(s, &g));
	ASSERT_TRUE(check(g, 7, 16));
	ASSERT_EQ(-EBADMSG, qkd_read_frame(s, &g));
	ASSERT_NE(NULL, strstr(qkd_stream_error(s), "magic"));
	qkd_stream_close(s);
	qkd_frame_free(f);
	qkd_frame_free(g);
}

TEST_F(stream, signal_before_a_frame_returns_eintr_and_loses_nothing)
{
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	struct qkd_stream *r, *w;
	int p[2];

	ASSERT_EQ(0, pipe(p));
	r = qkd_stream_open(p[0], QKD_STREAM_READ | self->flags);
	w = qkd_stream_open(p[1], QKD_STREAM_WRITE | self->flags);
	ASSERT_NE(NULL, r);
	ASSERT_NE(NULL, w);
	alarms = 0;
	arm_alarm(50);
	ASSERT_EQ(-EINTR, qkd_read_frame(r, &g));
	ASSERT_EQ(1, alarms);
	fill(f, 1, 4000);
	ASSERT_EQ(0, qkd_write_frame(w, f));
	ASSERT_EQ(0, qkd_stream_flush(w));
	ASSERT_EQ(1, qkd_read_frame(r, &g));
	ASSERT_TRUE(check(g, 1, 4000));
	ASSERT_EQ(0, qkd_stream_close(w));
	ASSERT_EQ(0, qkd_read_frame(r, &g));
	ASSERT_EQ(0, qkd_stream_close(r));
	qkd_frame_free(f);
	qkd_frame_free(g);
}

/*
 * The writer sends half a frame and waits; the alarm's handler tells it to
 * send the rest. So the signal is certain to arrive while the reader is
 * inside the frame, and the frame can only complete after it: the read must
 * ride over the signal instead of returning -EINTR.
 */
TEST_F(stream, signal_inside_a_frame_does_not_cut_it)
{
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	static uint8_t buf[QKD_FRAME_HDR_LEN + 200000];
	struct qkd_stream *r;
	struct pollfd pfd;
	size_t n;
	int p[2], go[2];
	pid_t pid;

	for (int big = 0; big < 2; big++) {
		/* 2000 bytes: buffered path; 200000: direct path. */
		fill(f, 5, big ? 200000 : 2000);
		n = encode(f, buf);
		ASSERT_EQ(0, pipe(p));
		ASSERT_EQ(0, pipe(go));
		/* Room for the first half even before the stream enlarges the pipe. */
		fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
		pid = fork();
		if (!pid) {
			char c;

			close(p[0]);
			close(go[1]);
			if (write(p[1], buf, n / 2) != (ssize_t)(n / 2) || read(go[0], &c, 1) != 1)
				_exit(1);
			_exit(write(p[1], buf + n / 2, n - n / 2) == (ssize_t)(n - n / 2) ? 0 : 1);
		}
		close(p[1]);
		close(go[0]);
		go_fd = go[1];
		r = qkd_stream_open(p[0], QKD_STREAM_READ | self->flags);
		/* Wait until the first half is there, then let the alarm come. */
		pfd.fd = p[0];
		pfd.events = POLLIN;
		ASSERT_EQ(1, poll(&pfd, 1, 10000));
		alarms = 0;
		arm_alarm(50);
		ASSERT_EQ(1, qkd_read_frame(r, &g));
		ASSERT_EQ(1, alarms);
		ASSERT_TRUE(check(g, 5, big ? 200000 : 2000));
		ASSERT_EQ(0, qkd_read_frame(r, &g));
		qkd_stream_close(r);
		go_fd = -1;
		close(go[1]);
		waitpid(pid, NULL, 0);
	}
	qkd_frame_free(f);
	qkd_frame_free(g);
}

TEST_F(stream, writer_refuses_invalid_frames_and_stays_usable)
{
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	struct qkd_stream *r, *w;
	int p[2];

	ASSERT_EQ(0, pipe(p));
	r = qkd_stream_open(p[0], QKD_STREAM_READ | self->flags);
	w = qkd_stream_open(p[1], QKD_STREAM_WRITE | self->flags);
	fill(f, 1, 64);
	f->bit_count = 100;		/* payload_len should be 16 */
	ASSERT_EQ(-EINVAL, qkd_write_frame(w, f));
	ASSERT_NE(NULL, strstr(qkd_stream_error(w), "payload_len"));
	fill(f, 1, 64);
	f->state = 42;
	ASSERT_EQ(-EINVAL, qkd_write_frame(w, f));
	fill(f, 1, 64);
	f->bit_count = 511;		/* last bit of the payload is now padding */
	f->payload[63] = 0x80;
	ASSERT_EQ(-EINVAL, qkd_write_frame(w, f));
	ASSERT_NE(NULL, strstr(qkd_stream_error(w), "padding"));
	fill(f, 2, 64);
	ASSERT_EQ(0, qkd_write_frame(w, f));
	ASSERT_EQ(0, qkd_stream_close(w));
	ASSERT_EQ(1, qkd_read_frame(r, &g));
	ASSERT_TRUE(check(g, 2, 64));
	ASSERT_EQ(0, qkd_read_frame(r, &g));
	qkd_stream_close(r);
	qkd_frame_free(f);
	qkd_frame_free(g);
}

TEST_F(stream, large_and_small_frames_through_a_file)
{
	static const uint32_t sizes[] = { 0, 8, 4096, 65536, 1u << 20, 3u << 20, 16, 300000, 8 };
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	struct qkd_stream *r, *w;
	int fd = memfd_create("frames", MFD_CLOEXEC);

	ASSERT_LE(0, fd);
	w = qkd_stream_open(dup(fd), QKD_STREAM_WRITE | self->flags);
	for (int rep = 0; rep < 3; rep++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			fill(f, rep * 100 + i, sizes[i]);
			ASSERT_EQ(0, qkd_write_frame(w, f));
		}
	ASSERT_EQ(0, qkd_stream_close(w));
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	r = qkd_stream_open(fd, QKD_STREAM_READ | self->flags);
	for (int rep = 0; rep < 3; rep++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			ASSERT_EQ(1, qkd_read_frame(r, &g)) TH_LOG("%s", qkd_stream_error(r));
			ASSERT_TRUE(check(g, rep * 100 + i, sizes[i])) TH_LOG("frame %d/%zu", rep, i);
		}
	ASSERT_EQ(0, qkd_read_frame(r, &g));
	qkd_stream_close(r);
	qkd_frame_free(f);
	qkd_frame_free(g);
}

/*
 * Ping-pong with an echo process: each frame is written (batched, never
 * flushed explicitly) and then its echo is read. This only works because a
 * thread about to block on input pushes its batched output first.
 */
TEST_F(stream, batched_output_is_pushed_before_blocking_on_input)
{
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	struct qkd_stream *r, *w;
	int a[2], b[2];
	pid_t pid;

	ASSERT_EQ(0, pipe(a));
	ASSERT_EQ(0, pipe(b));
	pid = fork();
	if (!pid) {
		struct qkd_stream *in, *out;

		close(a[1]);
		close(b[0]);
		in = qkd_stream_open(a[0], QKD_STREAM_READ | self->flags);
		out = qkd_stream_open(b[1], QKD_STREAM_WRITE | self->flags);
		while (qkd_read_frame(in, &g) > 0)
			if (qkd_write_frame(out, g))
				_exit(1);
		_exit(qkd_stream_close(out) ? 1 : 0);
	}
	close(a[0]);
	close(b[1]);
	w = qkd_stream_open(a[1], QKD_STREAM_WRITE | self->flags);
	r = qkd_stream_open(b[0], QKD_STREAM_READ | self->flags);
	for (uint64_t k = 0; k < 200; k++) {
		fill(f, k, (uint32_t)(k % 5) * 8);
		ASSERT_EQ(0, qkd_write_frame(w, f));
		ASSERT_EQ(1, qkd_read_frame(r, &g));
		ASSERT_TRUE(check(g, k, (uint32_t)(k % 5) * 8));
	}
	ASSERT_EQ(0, qkd_stream_close(w));
	ASSERT_EQ(0, qkd_read_frame(r, &g));
	qkd_stream_close(r);
	int status;
	waitpid(pid, &status, 0);
	ASSERT_EQ(0, status);
	qkd_frame_free(f);
	qkd_frame_free(g);
}

static double mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/*
 * A slow producer that never flushes: its frames must still come out within
 * milliseconds (a part-filled buffer is written once it is 10 ms old), not
 * only when a buffer fills or the stream closes 1.5 s later.
 */
TEST_F(stream, slow_producer_frames_are_not_held_back)
{
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	struct qkd_stream *r;
	double t0, t30 = 0;
	int p[2], status;
	pid_t pid;

	ASSERT_EQ(0, pipe(p));
	t0 = mono();
	pid = fork();
	if (!pid) {
		struct qkd_stream *w;

		close(p[0]);
		w = qkd_stream_open(p[1], QKD_STREAM_WRITE | self->flags);
		for (uint64_t k = 0; k < 40; k++) {
			fill(f, k, 64);
			if (qkd_write_frame(w, f))
				_exit(1);
			usleep(5000);
		}
		usleep(1500000);
		_exit(qkd_stream_close(w) ? 2 : 0);
	}
	close(p[1]);
	r = qkd_stream_open(p[0], QKD_STREAM_READ | self->flags);
	for (uint64_t k = 0; k < 40; k++) {
		int ret;

		do
			ret = qkd_read_frame(r, &g);
		while (ret == -EINTR);
		ASSERT_EQ(1, ret);
		ASSERT_TRUE(check(g, k, 64));
		if (k == 30)
			t30 = mono() - t0;
	}
	/* Frame 30 is written at about 0.15 s; the close comes after 1.7 s. */
	EXPECT_GT(1.0, t30) TH_LOG("frame 30 arrived after %.3f s", t30);
	ASSERT_EQ(0, qkd_read_frame(r, &g));
	qkd_stream_close(r);
	waitpid(pid, &status, 0);
	ASSERT_EQ(0, status);
	qkd_frame_free(f);
	qkd_frame_free(g);
}

TEST_F(stream, reader_gone_gives_epipe)
{
	struct qkd_frame *f = qkd_frame_new(0);
	struct qkd_stream *w;
	int p[2], ret = 0;

	ASSERT_EQ(0, pipe(p));
	close(p[0]);
	w = qkd_stream_open(p[1], QKD_STREAM_WRITE | self->flags);
	fill(f, 1, 1000);
	for (int i = 0; i < 10000 && !ret; i++)
		ret = qkd_write_frame(w, f);
	if (!ret)
		ret = qkd_stream_flush(w);
	ASSERT_EQ(-EPIPE, ret);
	ASSERT_NE(NULL, strstr(qkd_stream_error(w), "reader went away"));
	ASSERT_EQ(-EPIPE, qkd_stream_close(w));
	qkd_frame_free(f);
}

TEST(backend_selection_and_fd_flags)
{
	struct qkd_stream *s;
	int p[2], other;

	signal(SIGPIPE, SIG_IGN);
	ASSERT_EQ(0, pipe(p));
	other = dup(p[0]);	/* same open file description */
	unsetenv("QKD_TRANSPORT");
	s = qkd_stream_open(p[0], QKD_STREAM_READ);
	ASSERT_NE(NULL, s);
	if (!qkd_stream_uses_uring(s))
		TH_LOG("io_uring refused here: the fallback was chosen automatically");
	ASSERT_TRUE(fcntl(other, F_GETFL) & O_NONBLOCK);
	ASSERT_EQ(0, qkd_stream_close(s));
	/* The original (blocking) flags are back for whoever shares the file. */
	ASSERT_FALSE(fcntl(other, F_GETFL) & O_NONBLOCK);

	s = qkd_stream_open(dup(other), QKD_STREAM_READ | QKD_STREAM_FALLBACK);
	ASSERT_FALSE(qkd_stream_uses_uring(s));
	qkd_stream_close(s);
	setenv("QKD_TRANSPORT", "fallback", 1);
	s = qkd_stream_open(dup(other), QKD_STREAM_READ);
	ASSERT_FALSE(qkd_stream_uses_uring(s));
	qkd_stream_close(s);
	unsetenv("QKD_TRANSPORT");

	/* Wrong direction and bad flags are refused. */
	errno = 0;
	ASSERT_EQ(NULL, qkd_stream_open(other, QKD_STREAM_WRITE));
	ASSERT_EQ(EBADF, errno);
	ASSERT_EQ(NULL, qkd_stream_open(other, 0));
	ASSERT_EQ(EINVAL, errno);
	close(other);
	close(p[1]);
}

/* Number of io_uring worker threads (iou-wrk-*) in process pid. */
static int io_workers(pid_t pid)
{
	char path[320], comm[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", pid, d->d_name);
		f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f) && !strncmp(comm, "iou-wrk", 7))
			n++;
		if (f)
			fclose(f);
	}
	closedir(dir);
	return n;
}

/*
 * A reader blocked on an empty pipe and a writer blocked on a full one must
 * not park an io_uring worker thread in a blocking read/write (what 6.1 does
 * with a pipe that is not O_NONBLOCK): the streams poll instead.
 */
TEST_F(stream, blocked_pipe_io_uses_no_worker_threads)
{
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	int in[2], out[2], status;
	uint8_t buf[4096];
	pid_t pid;

	if (variant->fallback)
		SKIP(return, "io_uring only");
	ASSERT_EQ(0, pipe(in));
	ASSERT_EQ(0, pipe(out));
	pid = fork();
	if (!pid) {
		struct qkd_stream *r = qkd_stream_open(in[0], QKD_STREAM_READ);
		struct qkd_stream *w = qkd_stream_open(out[1], QKD_STREAM_WRITE);
		int ret;

		close(in[1]);
		close(out[0]);
		if (!qkd_stream_uses_uring(r))
			_exit(3);
		/* Fill the output pipe and more: blocks in the write. */
		fill(f, 1, 60000);
		for (int i = 0; i < 200; i++)
			if (qkd_write_frame(w, f))
				_exit(4);
		if (qkd_stream_flush(w))
			_exit(5);
		/* Then wait on the empty input pipe. */
		do
			ret = qkd_read_frame(r, &g);
		while (ret == -EINTR);
		_exit(ret == 0 ? 0 : 6);
	}
	close(in[0]);
	close(out[1]);
	usleep(300000);		/* the child is blocked writing */
	EXPECT_EQ(0, io_workers(pid));
	/* Drain its output (checking nothing), so it gets to the read. */
	for (size_t total = 0; total < 200 * (60000 + QKD_FRAME_HDR_LEN);) {
		ssize_t n = read(out[0], buf, sizeof(buf));

		ASSERT_LT(0, n);
		total += (size_t)n;
	}
	usleep(300000);		/* the child is blocked reading */
	EXPECT_EQ(0, io_workers(pid));
	close(in[1]);
	waitpid(pid, &status, 0);
	ASSERT_EQ(0, status);
	qkd_frame_free(f);
	qkd_frame_free(g);
}

/* Make io_uring_setup fail with err for this process, as a sandbox would. */
static int refuse_io_uring(int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* In a child where io_uring is refused, streams fall back by themselves and work. */
static int child_without_io_uring(int err)
{
	struct qkd_frame *f = qkd_frame_new(0), *g = NULL;
	struct qkd_stream *r, *w;
	int p[2];

	unsetenv("QKD_TRANSPORT");
	if (refuse_io_uring(err) || pipe(p))
		return 10;
	r = qkd_stream_open(p[0], QKD_STREAM_READ);
	w = qkd_stream_open(p[1], QKD_STREAM_WRITE);
	if (!r || !w)
		return 11;
	if (qkd_stream_uses_uring(r) || qkd_stream_uses_uring(w))
		return 12;
	fill(f, 3, 104);
	if (qkd_write_frame(w, f) || qkd_stream_close(w))
		return 13;
	if (qkd_read_frame(r, &g) != 1 || !check(g, 3, 104) || qkd_read_frame(r, &g) != 0)
		return 14;
	qkd_stream_close(r);
	return 0;
}

TEST(fallback_chosen_when_io_uring_is_refused)
{
	static const int errs[] = { EPERM, ENOSYS };

	for (int i = 0; i < 2; i++) {
		int status;
		pid_t pid = fork();

		if (!pid)
			_exit(child_without_io_uring(errs[i]));
		waitpid(pid, &status, 0);
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ(0, WEXITSTATUS(status)) TH_LOG("io_uring_setup failing with %s",
							  strerror(errs[i]));
	}
}

TEST_HARNESS_MAIN
