// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-ks-sink in front of the kernel key store: frames in, keys in the store
 * under their key ids (whole blocks, or cut with key-bytes), aborted frames
 * skipped, wrong input refused. Runs in the VM with the module loaded.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "ks-test.h"
#include "qkd/frame.h"
#include "qkd/stream.h"

FIXTURE(sink) {
	struct qksc *c;
	char link[QKD_LINK_NAME_MAX];
	char sink[512];
};

FIXTURE_SETUP(sink)
{
	const char *b = getenv("QKD_BUILD");

	snprintf(self->sink, sizeof(self->sink), "%s/bin/qkd-ks-sink", b ? b : "build");
	ASSERT_EQ(0, access(self->sink, X_OK)) TH_LOG("%s not built", self->sink);
	ASSERT_EQ(0, qksc_open(&self->c)) TH_LOG("%s", qksc_error(self->c));
	ks_link_name(self->link, sizeof(self->link), "sink");
}

FIXTURE_TEARDOWN(sink)
{
	qksc_link_del(self->c, self->link);
	qksc_close(self->c);
}

/* A frame of bits random key bits (padding zero), or an aborted one. */
static struct qkd_frame *make_frame(uint64_t id, uint64_t bits, uint8_t state)
{
	uint32_t len = qkd_bits_to_bytes(bits);
	struct qkd_frame *f = qkd_frame_new(len ? len : 8);

	if (!f)
		return NULL;
	f->key_id = id;
	f->state = state;
	f->qber_ppm = QKD_QBER_UNKNOWN;
	if (state == QKD_STATE_ABORTED) {
		f->abort_reason = QKD_ABORT_QBER;
		return f;
	}
	f->bit_count = bits;
	f->payload_len = len;
	if (getrandom(f->payload, len, 0) != (ssize_t)len) {
		qkd_frame_free(f);
		return NULL;
	}
	for (uint64_t i = bits; i < (uint64_t)len * 8; i++)
		f->payload[i / 8] &= (uint8_t)~(1u << (i % 8));
	return f;
}

/* Run the sink with extra args, feed it frames, return its exit status. */
static int run_sink(const char *sink, const char *link, const char *kb,
		    struct qkd_frame **frames, int n)
{
	struct qkd_stream *s;
	int p[2], status, i;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(p[0], 0);
		close(p[0]);
		close(p[1]);
		execl(sink, sink, "--link", link, "--create", "--key-bytes", kb,
		      "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	s = qkd_stream_open(p[1], QKD_STREAM_WRITE | QKD_STREAM_FALLBACK);
	for (i = 0; s && i < n; i++)
		if (qkd_write_frame(s, frames[i]))
			break;
	if (s)
		qkd_stream_close(s);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int fetch_eq(struct qksc *c, const char *link, uint64_t id, const uint8_t *want,
		    size_t len)
{
	uint8_t buf[QKD_KEY_MAX_BYTES];
	uint64_t got;
	size_t n;

	if (qksc_key_fetch(c, link, &id, &got, buf, sizeof(buf), &n))
		return -1;
	return n == len && got == id && !memcmp(buf, want, len) ? 0 : -1;
}

TEST_F(sink, whole_blocks_under_their_key_ids)
{
	struct qkd_frame *fr[4];
	struct qksc_link_info li;
	int i;

	fr[0] = make_frame(10, 256, QKD_STATE_AUTHENTICATED);
	fr[1] = make_frame(11, 0, QKD_STATE_ABORTED);
	fr[2] = make_frame(12, 1003, QKD_STATE_AUTHENTICATED);	/* 125 bytes + 3 bits */
	fr[3] = make_frame(13, 32768, QKD_STATE_AUTHENTICATED);	/* 4096 bytes */
	for (i = 0; i < 4; i++)
		ASSERT_NE(NULL, fr[i]);
	ASSERT_EQ(0, run_sink(self->sink, self->link, "0", fr, 4));
	ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
	EXPECT_EQ(3, li.keys_avail);
	EXPECT_EQ(0, fetch_eq(self->c, self->link, 10, fr[0]->payload, 32));
	EXPECT_EQ(0, fetch_eq(self->c, self->link, 12, fr[2]->payload, 125));
	EXPECT_EQ(0, fetch_eq(self->c, self->link, 13, fr[3]->payload, 4096));
	for (i = 0; i < 4; i++)
		qkd_frame_free(fr[i]);
}

TEST_F(sink, blocks_cut_into_keys)
{
	struct qkd_frame *fr[2];
	struct qksc_link_info li;
	int i;

	fr[0] = make_frame(1, 100000, QKD_STATE_AUTHENTICATED);	/* 12500 bytes: 390 keys */
	fr[1] = make_frame(2, 300, QKD_STATE_AUTHENTICATED);	/* 37 bytes: 1 key */
	ASSERT_NE(NULL, fr[0]);
	ASSERT_NE(NULL, fr[1]);
	ASSERT_EQ(0, run_sink(self->sink, self->link, "32", fr, 2));
	ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
	EXPECT_EQ(391, li.keys_avail);
	EXPECT_EQ(391 * 32, li.bytes_stored);
	EXPECT_EQ(0, fetch_eq(self->c, self->link, 65536, fr[0]->payload, 32));
	EXPECT_EQ(0, fetch_eq(self->c, self->link, 65536 + 389, fr[0]->payload + 389 * 32, 32));
	EXPECT_EQ(0, fetch_eq(self->c, self->link, 2 * 65536, fr[1]->payload, 32));
	for (i = 0; i < 2; i++)
		qkd_frame_free(fr[i]);
}

TEST_F(sink, refuses_wrong_input)
{
	struct qkd_frame *fr[2];

	/* Not a final key. */
	fr[0] = make_frame(1, 256, QKD_STATE_AMPLIFIED);
	ASSERT_NE(NULL, fr[0]);
	EXPECT_NE(0, run_sink(self->sink, self->link, "0", fr, 1));
	qkd_frame_free(fr[0]);
	/* A key id stored already. */
	fr[0] = make_frame(5, 256, QKD_STATE_AUTHENTICATED);
	fr[1] = make_frame(5, 256, QKD_STATE_AUTHENTICATED);
	EXPECT_NE(0, run_sink(self->sink, self->link, "0", fr, 2));
	qkd_frame_free(fr[0]);
	qkd_frame_free(fr[1]);
	/* A block too long for one key without key-bytes. */
	fr[0] = make_frame(6, 40000, QKD_STATE_AUTHENTICATED);
	EXPECT_NE(0, run_sink(self->sink, self->link, "0", fr, 1));
	qkd_frame_free(fr[0]);
}

TEST_HARNESS_MAIN
