// SPDX-License-Identifier: GPL-2.0
/*
 * 100,000 frames through a chain of four processes over real pipes:
 *
 *	producer (forked) -> qkd-cat -> qkd-cat -> consumer (this process)
 *
 * once over io_uring and once over the read/write fallback, with a consumer
 * that stalls from time to time so that every pipe fills up and back-pressure
 * reaches the producer. The consumer checks that key ids arrive exactly as
 * 0, 1, 2, ... (nothing lost, duplicated or reordered) and that every field and
 * every payload byte is what the producer derived from the key id. Frame sizes
 * mix tiny, medium and large (direct-I/O) frames.
 *
 * The qkd-cat binary is found under $QKD_BUILD/bin (default "build").
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "qkd/stream.h"

#define NFRAMES 100000

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Everything about frame k follows from k. */
static void make_frame(struct qkd_frame *f, uint64_t k)
{
	uint64_t h = mix(k), bits;
	uint32_t len, cls = (uint32_t)(h % 1000);

	if (cls < 940)
		bits = h >> 20 & 2047;			/* up to 256 bytes */
	else if (cls < 995)
		bits = h >> 20 & ((1u << 17) - 1);	/* up to 16 KiB */
	else
		bits = (64u << 13) + (h >> 20) % (192u << 13); /* 64-256 KiB: direct */
	f->key_id = k;
	f->state = k % 97 == 0 ? QKD_STATE_ABORTED : (uint8_t)(1 + k % 7);
	f->flags = k & 1 ? QKD_FRAME_F_BOB : 0;
	f->qber_ppm = (uint32_t)(h % 1000001);
	f->disclosed_bits = h ^ k;
	f->auth_ctx = k / 16;
	f->auth_stages = (uint32_t)(k % 9);
	f->abort_reason = f->state == QKD_STATE_ABORTED ? QKD_ABORT_QBER : 0;
	for (int i = 0; i < 16; i++) {
		f->auth_acc[0][i] = (uint8_t)(h >> (i % 8 * 8));
		f->auth_acc[1][i] = (uint8_t)(k >> (i % 8 * 8));
	}
	if (f->state == QKD_STATE_ABORTED) {
		bits = 0;
		len = 0;
	} else if (f->state == QKD_STATE_RAW) {
		len = (uint32_t)bits;
	} else {
		len = qkd_bits_to_bytes(bits);
	}
	f->bit_count = bits;
	f->payload_len = len;
	qkd_frame_reserve(f, len);
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t w = mix(h + i);

		memcpy(f->payload + i, &w, len - i < 8 ? len - i : 8);
	}
	if (f->state >= QKD_STATE_SIFTED && f->state <= QKD_STATE_AUTHENTICATED)
		for (uint64_t i = bits; i < (uint64_t)len * 8; i++)
			qkd_bit_set(f->payload, i, 0);
}

static int same(const struct qkd_frame *a, const struct qkd_frame *b)
{
	return a->key_id == b->key_id && a->state == b->state && a->flags == b->flags &&
	       a->qber_ppm == b->qber_ppm && a->bit_count == b->bit_count &&
	       a->disclosed_bits == b->disclosed_bits && a->auth_ctx == b->auth_ctx &&
	       a->abort_reason == b->abort_reason && a->auth_stages == b->auth_stages &&
	       !memcmp(a->auth_acc, b->auth_acc, sizeof(a->auth_acc)) &&
	       a->payload_len == b->payload_len &&
	       (!a->payload_len || !memcmp(a->payload, b->payload, a->payload_len));
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

static void producer(int fd, unsigned flags, uint64_t n)
{
	struct qkd_stream *s = qkd_stream_open(fd, QKD_STREAM_WRITE | flags);
	struct qkd_frame *f = qkd_frame_new(0);

	if (!s || !f)
		_exit(10);
	for (uint64_t k = 0; k < n; k++) {
		make_frame(f, k);
		if (qkd_write_frame(s, f)) {
			fprintf(stderr, "producer: frame %lu: %s\n", (unsigned long)k,
				qkd_stream_error(s));
			_exit(11);
		}
	}
	qkd_frame_free(f);
	_exit(qkd_stream_close(s) ? 12 : 0);
}

static pid_t spawn_cat(const char *cat, int in, int out, int *close_fds, int nclose)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	dup2(in, 0);
	dup2(out, 1);
	for (int i = 0; i < nclose; i++)
		close(close_fds[i]);
	execl(cat, "qkd-cat", (char *)NULL);
	fprintf(stderr, "exec %s: %s\n", cat, strerror(errno));
	_exit(127);
}

struct chain {
	pid_t pids[3];
	int out;	/* read end of the last pipe */
};

/* Start producer -> qkd-cat -> qkd-cat; returns the read end for the consumer. */
static int start_chain(struct chain *c, bool fallback, uint64_t n, char *cat, size_t catlen)
{
	const char *b = getenv("QKD_BUILD");
	int p[3][2], all[6];

	snprintf(cat, catlen, "%s/bin/qkd-cat", b && *b ? b : "build");
	if (access(cat, X_OK))
		return -1;
	if (fallback)
		setenv("QKD_TRANSPORT", "fallback", 1);
	else
		unsetenv("QKD_TRANSPORT");
	for (int i = 0; i < 3; i++) {
		if (pipe2(p[i], O_CLOEXEC))
			return -1;
		all[2 * i] = p[i][0];
		all[2 * i + 1] = p[i][1];
	}
	c->pids[0] = fork();
	if (!c->pids[0]) {
		for (int i = 0; i < 6; i++)
			if (all[i] != p[0][1])
				close(all[i]);
		producer(p[0][1], fallback ? QKD_STREAM_FALLBACK : 0, n);
	}
	c->pids[1] = spawn_cat(cat, p[0][0], p[1][1], all, 6);
	c->pids[2] = spawn_cat(cat, p[1][0], p[2][1], all, 6);
	for (int i = 0; i < 6; i++)
		if (all[i] != p[2][0])
			close(all[i]);
	c->out = p[2][0];
	return 0;
}

static int wait_chain(struct chain *c, int *status)
{
	int bad = 0;

	for (int i = 0; i < 3; i++) {
		waitpid(c->pids[i], &status[i], 0);
		if (!WIFEXITED(status[i]) || WEXITSTATUS(status[i]))
			bad++;
	}
	return bad;
}

FIXTURE(chain) {
	char cat[4096];
};

FIXTURE_VARIANT(chain) {
	bool fallback;
};

FIXTURE_VARIANT_ADD(chain, io_uring) { .fallback = false };
FIXTURE_VARIANT_ADD(chain, fallback) { .fallback = true };

FIXTURE_SETUP(chain) {}
FIXTURE_TEARDOWN(chain) {}

TEST_F_TIMEOUT(chain, hundred_thousand_frames_slow_reader, 120)
{
	struct qkd_frame *got = NULL, *want = qkd_frame_new(0);
	struct qkd_stream *in;
	struct chain c;
	uint64_t k = 0, bytes = 0, big = 0;
	int status[3], ret;

	signal(SIGPIPE, SIG_IGN);
	if (start_chain(&c, variant->fallback, NFRAMES, self->cat, sizeof(self->cat)))
		SKIP(return, "cannot start the chain (is qkd-cat built?)");
	in = qkd_stream_open(c.out, QKD_STREAM_READ | (variant->fallback ? QKD_STREAM_FALLBACK : 0));
	ASSERT_NE(NULL, in);
	ASSERT_EQ(!variant->fallback, qkd_stream_uses_uring(in));

	while ((ret = next_frame(in, &got)) > 0) {
		ASSERT_EQ(k, got->key_id) TH_LOG("frame lost, duplicated or reordered");
		make_frame(want, k);
		ASSERT_TRUE(same(want, got)) TH_LOG("frame %lu differs", (unsigned long)k);
		bytes += got->payload_len;
		big += got->payload_len >= (64u << 10);
		k++;
		/*
		 * The slow reader: two long stalls fill every pipe and every
		 * buffer of the chain, many short ones keep it stop-and-go.
		 */
		if (k == 1000 || k == 60000)
			usleep(150000);
		else if (k % 2500 == 0)
			usleep(3000);
	}
	ASSERT_EQ(0, ret) TH_LOG("read: %s", qkd_stream_error(in));
	EXPECT_EQ((uint64_t)NFRAMES, k);
	EXPECT_LT(200u, big);	/* the direct path was exercised */
	TH_LOG("%lu frames, %lu payload bytes, %lu large, transport %s", (unsigned long)k,
	       (unsigned long)bytes, (unsigned long)big,
	       variant->fallback ? "read/write" : "io_uring");
	qkd_stream_close(in);
	EXPECT_EQ(0, wait_chain(&c, status)) TH_LOG("exit status %x %x %x", status[0],
						    status[1], status[2]);
	qkd_frame_free(got);
	qkd_frame_free(want);
}

TEST_F(chain, consumer_going_away_stops_the_chain)
{
	struct qkd_frame *got = NULL;
	struct qkd_stream *in;
	struct chain c;
	int status[3];

	signal(SIGPIPE, SIG_IGN);
	if (start_chain(&c, variant->fallback, NFRAMES, self->cat, sizeof(self->cat)))
		SKIP(return, "cannot start the chain (is qkd-cat built?)");
	in = qkd_stream_open(c.out, QKD_STREAM_READ);
	ASSERT_NE(NULL, in);
	for (uint64_t k = 0; k < 100; k++) {
		ASSERT_EQ(1, next_frame(in, &got));
		ASSERT_EQ(k, got->key_id);
	}
	qkd_stream_close(in);
	/* Every stage notices the broken pipe and fails, none hangs. */
	EXPECT_EQ(3, wait_chain(&c, status));
	EXPECT_EQ(1, WEXITSTATUS(status[2]));
	EXPECT_EQ(11, WEXITSTATUS(status[0]));
	qkd_frame_free(got);
}

TEST_HARNESS_MAIN
