// SPDX-License-Identifier: GPL-2.0
/*
 * The frame tools as a user runs them: qkd-cat, qkd-tee, qkd-stats and
 * qkd-drop, each fork/exec'd from $QKD_BUILD/bin (default "build") with files
 * or pipes on stdin/stdout, checking their output frame by frame.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "qkd/stream.h"

static char bindir[4096];

static const char *tool(const char *name)
{
	static char path[4200];
	const char *b = getenv("QKD_BUILD");

	snprintf(bindir, sizeof(bindir), "%s/bin", b && *b ? b : "build");
	snprintf(path, sizeof(path), "%s/%s", bindir, name);
	return path;
}

/* A memfd holding n frames with key ids first..first+n-1. */
static int make_stream(uint64_t first, int n)
{
	int fd = memfd_create("in", MFD_CLOEXEC);
	struct qkd_stream *s = qkd_stream_open(dup(fd), QKD_STREAM_WRITE);
	struct qkd_frame *f = qkd_frame_new(0);

	for (int i = 0; i < n; i++) {
		uint64_t k = first + (uint64_t)i;
		uint32_t len = (uint32_t)(k % 7) * 8;

		f->key_id = k;
		f->state = QKD_STATE_ESTIMATED;
		f->bit_count = (uint64_t)len * 8;
		f->payload_len = len;
		f->qber_ppm = 30000;
		f->disclosed_bits = 10;
		qkd_frame_reserve(f, len);
		if (len)
			memset(f->payload, (int)k, len);
		qkd_write_frame(s, f);
	}
	qkd_stream_close(s);
	qkd_frame_free(f);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/*
 * qkd_read_frame returns -EINTR when a signal arrives between frames (with
 * io_uring also after a stop/continue or a ptrace attach); this program has
 * nothing to do on a signal, so it simply reads on.
 */
static int next_frame(struct qkd_stream *s, struct qkd_frame **f)
{
	int ret;

	do
		ret = qkd_read_frame(s, f);
	while (ret == -EINTR);
	return ret;
}

/* Key ids of the frames in fd (from the start); -1 on a malformed stream. */
static int read_ids(int fd, uint64_t *ids, int max)
{
	struct qkd_stream *s;
	struct qkd_frame *f = NULL;
	int n = 0, ret;

	lseek(fd, 0, SEEK_SET);
	s = qkd_stream_open(dup(fd), QKD_STREAM_READ);
	while ((ret = next_frame(s, &f)) > 0) {
		for (uint32_t i = 0; i < f->payload_len; i++)
			if (f->payload[i] != (uint8_t)f->key_id)
				ret = -EBADMSG;
		if (ret < 0)
			break;
		if (n < max)
			ids[n] = f->key_id;
		n++;
	}
	qkd_stream_close(s);
	qkd_frame_free(f);
	return ret < 0 ? -1 : n;
}

/* Run argv with stdin/stdout/stderr on the given fds; returns the exit status. */
static int run(int in, int out, int err, char *const argv[])
{
	pid_t pid = fork();
	int status;

	if (!pid) {
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Empty a memfd and rewind it for the next tool's output. */
static int reset(int fd)
{
	return ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET);
}

/* Copy a memfd (from its start) into a new file. */
static int save(int from, const char *path)
{
	char buf[65536];
	int to = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	lseek(from, 0, SEEK_SET);
	while ((n = read(from, buf, sizeof(buf))) > 0)
		if (write(to, buf, (size_t)n) != n)
			return -1;
	return close(to);
}

static char *slurp(int fd)
{
	static char buf[1 << 16];
	ssize_t n;

	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

FIXTURE(tools) {
	int out, err, devnull;
	char dir[64];
};

FIXTURE_SETUP(tools)
{
	signal(SIGPIPE, SIG_IGN);
	if (access(tool("qkd-cat"), X_OK))
		SKIP(return, "tools not built");
	self->out = memfd_create("out", MFD_CLOEXEC);
	self->err = memfd_create("err", MFD_CLOEXEC);
	self->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	strcpy(self->dir, "/tmp/qkd-tools-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
}

FIXTURE_TEARDOWN(tools)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", self->dir);
	if (system(cmd))
		TH_LOG("cleanup of %s failed", self->dir);
}

TEST_F(tools, help_of_every_tool)
{
	static const char *const names[] = { "qkd-cat", "qkd-tee", "qkd-stats", "qkd-drop" };

	for (int i = 0; i < 4; i++) {
		char *argv[] = { (char *)tool(names[i]), "--help", NULL };

		ASSERT_EQ(0, reset(self->out));
		ASSERT_EQ(0, run(self->devnull, self->out, self->err, argv));
		ASSERT_NE(NULL, strstr(slurp(self->out), "SYNOPSIS"));
		ASSERT_NE(NULL, strstr(slurp(self->out), "EXIT STATUS"));
	}
	char *bad[] = { (char *)tool("qkd-drop"), "--ratio", "1.5", NULL };
	ASSERT_EQ(2, run(self->devnull, self->out, self->err, bad));
}

TEST_F(tools, cat_concatenates_files_and_stdin)
{
	char a[128], b[128];
	int fa = make_stream(0, 50), fb = make_stream(50, 30), fc = make_stream(80, 20);
	uint64_t ids[200];

	snprintf(a, sizeof(a), "%s/a", self->dir);
	snprintf(b, sizeof(b), "%s/b", self->dir);
	ASSERT_EQ(0, save(fa, a));
	ASSERT_EQ(0, save(fb, b));
	char *argv[] = { (char *)tool("qkd-cat"), a, b, "-", NULL };
	ASSERT_EQ(0, run(fc, self->out, self->err, argv));
	ASSERT_EQ(100, read_ids(self->out, ids, 200));
	for (int i = 0; i < 100; i++)
		ASSERT_EQ((uint64_t)i, ids[i]);
}

TEST_F(tools, cat_refuses_a_cut_stream)
{
	int in = make_stream(0, 10);
	struct stat st;

	fstat(in, &st);
	ASSERT_EQ(0, ftruncate(in, st.st_size - 5));
	char *argv[] = { (char *)tool("qkd-cat"), NULL };
	ASSERT_EQ(1, run(in, self->out, self->err, argv));
	ASSERT_NE(NULL, strstr(slurp(self->err), "frame 10: end of stream inside a frame"));
}

TEST_F(tools, tee_copies_to_files_and_stdout)
{
	char a[128], b[128];
	int in = make_stream(1000, 300), fa, fb;
	uint64_t ids[400];

	snprintf(a, sizeof(a), "%s/t1", self->dir);
	snprintf(b, sizeof(b), "%s/t2", self->dir);
	char *argv[] = { (char *)tool("qkd-tee"), a, b, NULL };
	ASSERT_EQ(0, run(in, self->out, self->err, argv));
	fa = open(a, O_RDONLY | O_CLOEXEC);
	fb = open(b, O_RDONLY | O_CLOEXEC);
	for (int fd = 0; fd < 3; fd++) {
		int which = fd == 0 ? self->out : fd == 1 ? fa : fb;

		ASSERT_EQ(300, read_ids(which, ids, 400));
		for (int i = 0; i < 300; i++)
			ASSERT_EQ(1000u + i, ids[i]);
	}
	close(fa);
	close(fb);
}

TEST_F(tools, drop_is_reproducible_and_keeps_order)
{
	int in = make_stream(0, 2000), out2 = memfd_create("o2", MFD_CLOEXEC);
	uint64_t ids[2000], ids2[2000];
	int n, n2;

	char *argv[] = { (char *)tool("qkd-drop"), "--ratio", "0.25", "--seed", "42", NULL };
	ASSERT_EQ(0, run(in, self->out, self->err, argv));
	lseek(in, 0, SEEK_SET);
	ASSERT_EQ(0, run(in, out2, self->err, argv));
	n = read_ids(self->out, ids, 2000);
	n2 = read_ids(out2, ids2, 2000);
	ASSERT_EQ(n, n2);
	ASSERT_EQ(0, memcmp(ids, ids2, sizeof(ids[0]) * (size_t)n));
	/* About 1500 kept (binomial sd ~19), strictly increasing ids. */
	ASSERT_LT(1400, n);
	ASSERT_GT(1600, n);
	for (int i = 1; i < n; i++)
		ASSERT_LT(ids[i - 1], ids[i]);

	char *all[] = { (char *)tool("qkd-drop"), "-r", "0", NULL };
	lseek(in, 0, SEEK_SET);
	ASSERT_EQ(0, reset(self->out));
	ASSERT_EQ(0, run(in, self->out, self->err, all));
	ASSERT_EQ(2000, read_ids(self->out, ids, 2000));
	char *none[] = { (char *)tool("qkd-drop"), "-r", "1", NULL };
	lseek(in, 0, SEEK_SET);
	ASSERT_EQ(0, reset(self->out));
	ASSERT_EQ(0, run(in, self->out, self->err, none));
	ASSERT_EQ(0, read_ids(self->out, ids, 2000));
	close(out2);
}

TEST_F(tools, stats_lines_and_totals)
{
	int in = make_stream(5, 3);
	const char *text;

	char *argv[] = { (char *)tool("qkd-stats"), NULL };
	ASSERT_EQ(0, run(in, self->out, self->err, argv));
	text = slurp(self->out);
	ASSERT_NE(NULL, strstr(text, "key_id=5 state=estimated bits=320 qber=3.000% disclosed=10"));
	ASSERT_NE(NULL, strstr(text, "key_id=7 state=estimated bits=0 qber=3.000%"));
	ASSERT_NE(NULL, strstr(text, "total: frames=3 bits=704 disclosed=30"));

	/* --pass: frames through, statistics on stderr. */
	char *pass[] = { (char *)tool("qkd-stats"), "--pass", "--quiet", NULL };
	uint64_t ids[4];
	lseek(in, 0, SEEK_SET);
	ASSERT_EQ(0, reset(self->out));
	ASSERT_EQ(0, run(in, self->out, self->err, pass));
	ASSERT_EQ(3, read_ids(self->out, ids, 4));
	ASSERT_NE(NULL, strstr(slurp(self->err), "total: frames=3"));
}

TEST_HARNESS_MAIN
