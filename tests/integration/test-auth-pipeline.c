// SPDX-License-Identifier: GPL-2.0
/*
 * Deferred authentication through real stages: Alice's and Bob's chains
 * qkd-confirm | qkd-pa | qkd-auth, the first two with defer-auth (they fold
 * their transcripts into the frames and check no tag themselves), each stage
 * pair on its own loopback channel, fed CORRECTED frames with equal keys.
 * A man in the middle (a thread of this test) relays qkd-pa's channel and
 * flips one bit of the body of one message of one chosen frame (a part of the
 * Toeplitz seed, which qkd-pa cannot validate: without authentication Alice
 * and Bob would silently distil different keys). qkd-auth must drop exactly
 * that frame on both sides (reason auth) and authenticate every other one,
 * with identical keys. Without the flip, every frame is authenticated. The
 * same with stages that close their blocks themselves (no defer-auth): then
 * qkd-pa drops the tampered frame on both sides and qkd-auth passes it on.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testproc.h"
#include "qkd/frame.h"
#include "qkd/keypool.h"
#include "qkd/module.h"
#include "qkd/stream.h"

#define NF 6
#define BITS 40000
#define POOL (1u << 20)


/* ---- the man in the middle -------------------------------------------- */

struct mitm {
	int lfd, bob_port;
	uint64_t key_id;	/* flip in the first A->B data message of this key id */
	size_t min_body;	/* ... whose body is at least this long */
	bool enabled;
	volatile bool flipped;
};

struct track {
	uint8_t hdr[16];
	size_t pos, total;
	bool flip_this;
};

static void relay(struct mitm *x, int dir, struct track *t, uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (t->pos < 16)
			t->hdr[t->pos] = b[i];
		t->pos++;
		if (t->pos == 16) {
			uint64_t len = t->hdr[0] | (uint64_t)t->hdr[1] << 8 |
				       (uint64_t)t->hdr[2] << 16 | (uint64_t)t->hdr[3] << 24;
			uint64_t key = 0;

			for (int j = 0; j < 8; j++)
				key |= (uint64_t)t->hdr[8 + j] << (8 * j);
			t->total = 16 + len;
			t->flip_this = x->enabled && !x->flipped && dir == 0 &&
				       t->hdr[6] == 0xe1 && key == x->key_id && len >= x->min_body;
		} else if (t->pos > 16 && t->flip_this && t->pos == t->total) {
			/* the last byte of the body */
			b[i] ^= 0x04;
			x->flipped = true;
		}
		if (t->pos >= 16 && t->pos == t->total)
			t->pos = 0;
	}
}

static void *mitm_main(void *arg)
{
	struct mitm *x = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)x->bob_port) };
	struct track t[2] = { { .pos = 0 }, { .pos = 0 } };
	struct pollfd p[2];
	uint8_t buf[65536];
	int fa, fb = -1;

	fa = accept(x->lfd, NULL, NULL);
	if (fa < 0)
		return NULL;
	for (int i = 0; i < 500 && fb < 0; i++) {
		fb = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fb, (struct sockaddr *)&a, sizeof(a))) {
			close(fb);
			fb = -1;
			usleep(10000);
		}
	}
	p[0].fd = fa;
	p[1].fd = fb;
	p[0].events = p[1].events = POLLIN;
	while (fb >= 0 && poll(p, 2, 60000) > 0) {
		bool done = false;

		for (int d = 0; d < 2; d++) {
			ssize_t n;

			if (!(p[d].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[d].fd, buf, sizeof(buf));
			if (n <= 0) {
				done = true;
				break;
			}
			relay(x, d, &t[d], buf, (size_t)n);
			if (send(p[1 - d].fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
				done = true;
		}
		if (done)
			break;
	}
	close(fa);
	if (fb >= 0)
		close(fb);
	return NULL;
}

static int run_chains(const struct tp_env *e, struct mitm *x, bool defer)
{
	char cmd[2][4096];

	for (int side = 0; side < 2; side++) {
		const char *role = side ? "bob" : "alice", *conn = side ? "--listen" : "--peer";
		char c = side ? 'b' : 'a';
		/* Alice's qkd-pa goes through the man in the middle */
		int pa_port = side ? e->port + 1 : e->port + 3;

		snprintf(cmd[side], sizeof(cmd[side]),
			 "%s/qkd-confirm --role %s %s 127.0.0.1:%d --keypool %c.pool "
			 "--set defer-auth=%s --eps-cor 1e-12 < %c.in 2> %c.confirm.log | "
			 "%s/qkd-pa --role %s %s 127.0.0.1:%d --keypool %c.pool --eps-cor 1e-12 "
			 "--eps-sec 1e-10 --set defer-auth=%s 2> %c.pa.log | "
			 "%s/qkd-auth --role %s %s 127.0.0.1:%d --keypool %c.pool --log-level info "
			 "> %c.out 2> %c.auth.log",
			 e->bin, role, conn, e->port, c, defer ? "true" : "false", c, c,
			 e->bin, role, conn, pa_port, c, defer ? "true" : "false", c,
			 e->bin, role, conn, e->port + 2, c, c, c);
	}
	(void)x;
	return tp_run_pair(e->dir, cmd[0], cmd[1], 100000, 40, 10, 5);
}

static struct qkd_frame *corrected(uint64_t key_id, int bob)
{
	struct qkd_frame *f = qkd_frame_new(qkd_bits_to_bytes(BITS));

	if (!f)
		abort();
	f->key_id = key_id;
	f->state = QKD_STATE_CORRECTED;
	f->flags = bob ? QKD_FRAME_F_BOB : 0;
	f->qber_ppm = 10000;
	f->bit_count = BITS;
	f->disclosed_bits = BITS / 10;
	f->payload_len = qkd_bits_to_bytes(BITS);
	return f;
}

static void run_case(struct __test_metadata *_metadata, bool tamper, bool defer)
{
	struct qkd_frame *in[2][NF], *out[2][NF];
	struct mitm x = { .key_id = 2, .min_body = 64, .enabled = tamper };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	pthread_t th;
	struct tp_env e;
	int one = 1, good = 0;

	tp_env_init(&e, "/tmp/qkd-auth.XXXXXX", POOL, 4);
	x.bob_port = e.port + 1;
	a.sin_port = htons((uint16_t)(e.port + 3));
	x.lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(x.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ASSERT_EQ(0, bind(x.lfd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, listen(x.lfd, 1));
	for (int i = 0; i < NF; i++) {
		in[0][i] = corrected((uint64_t)i, 0);
		in[1][i] = corrected((uint64_t)i, 1);
		qkd_random(in[0][i]->payload, BITS / 8);
		memcpy(in[1][i]->payload, in[0][i]->payload, in[0][i]->payload_len);
	}
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", in[0], NF));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", in[1], NF));
	pthread_create(&th, NULL, mitm_main, &x);
	EXPECT_EQ(0, run_chains(&e, &x, defer));
	pthread_join(th, NULL);
	close(x.lfd);
	EXPECT_EQ(tamper, x.flipped);
	ASSERT_EQ(NF, tp_read_frames(e.dir, "a.out", out[0], NF));
	ASSERT_EQ(NF, tp_read_frames(e.dir, "b.out", out[1], NF));
	for (int i = 0; i < NF; i++) {
		struct qkd_frame *fa = out[0][i], *fb = out[1][i];

		ASSERT_EQ((uint64_t)i, fa->key_id);
		ASSERT_EQ((uint64_t)i, fb->key_id);
		if (tamper && (uint64_t)i == x.key_id) {
			/* deferred: qkd-auth catches it; immediate: qkd-pa does */
			EXPECT_EQ(QKD_STATE_ABORTED, fa->state);
			EXPECT_EQ(QKD_STATE_ABORTED, fb->state);
			EXPECT_EQ(QKD_ABORT_AUTH, fa->abort_reason);
			EXPECT_EQ(QKD_ABORT_AUTH, fb->abort_reason);
			continue;
		}
		EXPECT_EQ(QKD_STATE_AUTHENTICATED, fa->state);
		EXPECT_EQ(QKD_STATE_AUTHENTICATED, fb->state);
		/* deferred: qkd-confirm, qkd-pa and qkd-auth folded their transcripts
		 * in; immediate: only qkd-auth's own */
		EXPECT_EQ(defer ? 3u : 1u, fa->auth_stages);
		EXPECT_EQ(defer ? 3u : 1u, fb->auth_stages);
		if (fa->state == QKD_STATE_AUTHENTICATED && fb->state == fa->state &&
		    fa->bit_count == fb->bit_count && fa->bit_count > 0 &&
		    !memcmp(fa->payload, fb->payload, fa->payload_len))
			good++;
	}
	EXPECT_EQ(tamper ? NF - 1 : NF, good);
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < NF; i++) {
			qkd_frame_free(in[s][i]);
			qkd_frame_free(out[s][i]);
		}
	tp_rmdir(e.dir);
}

TEST(untampered_pipeline_authenticates_every_frame)
{
	run_case(_metadata, false, true);
}

TEST(tampered_pa_message_drops_that_frame_on_both_sides)
{
	run_case(_metadata, true, true);
}

TEST(immediate_mode_stages_then_qkd_auth)
{
	/* the stages close their blocks themselves; qkd-auth still closes its
	 * own messages and recycles; the tampered frame never reaches it */
	run_case(_metadata, false, false);
	run_case(_metadata, true, false);
}

TEST_HARNESS_MAIN
