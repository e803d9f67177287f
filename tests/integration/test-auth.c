// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-auth as two real processes (Alice, Bob) on an authenticated loopback
 * channel, fed AMPLIFIED frames whose deferred accumulators are equal on both
 * sides (as honest earlier stages leave them) except for chosen frames where
 * Bob's accumulator differs by one bit (a message changed in transit in some
 * earlier stage). Checks: those frames are ABORTED with reason auth on both
 * sides and every other one is AUTHENTICATED with identical keys; the key
 * taken for recycling is exactly the tail of each authenticated key, appended
 * to both pools in key-id order and removed from the delivered key; both pools
 * spent exactly 48 bytes per frame plus 16 for the context, never the same
 * bytes twice; a frame whose stage count differs is dropped on both sides; the
 * consumption report is below 1% of the distilled key.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testproc.h"
#include "qkd/frame.h"
#include "qkd/keypool.h"
#include "qkd/module.h"
#include "qkd/stream.h"

#define NF 12
#define BITS (1u << 17)
#define POOL (1u << 20)

static int run_auth(const struct tp_env *e)
{
	char cmd[2][2048];

	for (int side = 0; side < 2; side++) {
		const char *role = side ? "bob" : "alice", *conn = side ? "--listen" : "--peer";
		char c = side ? 'b' : 'a';

		snprintf(cmd[side], sizeof(cmd[side]),
			 "%s/qkd-auth --role %s %s 127.0.0.1:%d --keypool %c.pool "
			 "--peer-timeout 5000 --log-level info < %c.in > %c.out 2> %c.log",
			 e->bin, role, conn, e->port, c, c, c, c);
	}
	return tp_run_pair(e->dir, cmd[0], cmd[1], 50000, 20, 5, 8);
}

static struct qkd_frame *amplified(uint64_t key_id, int bob)
{
	struct qkd_frame *f = qkd_frame_new(qkd_bits_to_bytes(BITS));

	if (!f)
		abort();
	f->key_id = key_id;
	f->state = QKD_STATE_AMPLIFIED;
	f->flags = bob ? QKD_FRAME_F_BOB : 0;
	f->qber_ppm = 20000;
	f->bit_count = BITS;
	f->payload_len = qkd_bits_to_bytes(BITS);
	f->auth_stages = 3;
	return f;
}

static bool log_has(const struct tp_env *e, char side, const char *what)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "grep -q '%s' %s/%c.log", what, e->dir, side);
	return system(cmd) == 0;
}

TEST(authenticates_recycles_and_drops_tampered)
{
	struct qkd_frame *in[2][NF], *out[2][NF];
	struct qkd_keypool *kp[2];
	struct tp_env e;
	uint64_t tot[2], spent[2], recycled = 0;
	uint8_t *tail;
	char path[256];
	int fd;

	tp_env_init(&e, "/tmp/qkd-auth.XXXXXX", POOL, 4);
	for (int i = 0; i < NF; i++) {
		in[0][i] = amplified((uint64_t)i + 100, 0);
		in[1][i] = amplified((uint64_t)i + 100, 1);
		qkd_random(in[0][i]->payload, BITS / 8);
		memcpy(in[1][i]->payload, in[0][i]->payload, BITS / 8);
		qkd_random(in[0][i]->auth_acc, sizeof(in[0][i]->auth_acc));
		memcpy(in[1][i]->auth_acc, in[0][i]->auth_acc, sizeof(in[0][i]->auth_acc));
	}
	/* an earlier stage's message changed in transit: accumulators differ */
	in[1][3]->auth_acc[0][5] ^= 0x10;
	in[1][8]->auth_acc[1][15] ^= 0x01;
	/* a stage missing on one side */
	in[1][10]->auth_stages = 2;
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", in[0], NF));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", in[1], NF));
	ASSERT_EQ(0, run_auth(&e));
	ASSERT_EQ(NF, tp_read_frames(e.dir, "a.out", out[0], NF));
	ASSERT_EQ(NF, tp_read_frames(e.dir, "b.out", out[1], NF));

	for (int i = 0; i < NF; i++) {
		struct qkd_frame *a = out[0][i], *b = out[1][i];

		ASSERT_EQ(a->key_id, b->key_id);
		ASSERT_EQ(in[0][i]->key_id, a->key_id);
		if (i == 3 || i == 8) {
			EXPECT_EQ(QKD_STATE_ABORTED, a->state);
			EXPECT_EQ(QKD_STATE_ABORTED, b->state);
			EXPECT_EQ(QKD_ABORT_AUTH, a->abort_reason);
			EXPECT_EQ(QKD_ABORT_AUTH, b->abort_reason);
			EXPECT_EQ(0u, a->bit_count);
			continue;
		}
		if (i == 10) {
			EXPECT_EQ(QKD_STATE_ABORTED, a->state);
			EXPECT_EQ(QKD_STATE_ABORTED, b->state);
			continue;
		}
		ASSERT_EQ(QKD_STATE_AUTHENTICATED, a->state);
		ASSERT_EQ(QKD_STATE_AUTHENTICATED, b->state);
		ASSERT_EQ(a->bit_count, b->bit_count);
		ASSERT_EQ(0, memcmp(a->payload, b->payload, a->payload_len));
		/* the delivered key is the input key minus a whole-byte tail */
		ASSERT_EQ(0u, (BITS - a->bit_count) % 8);
		ASSERT_LE(BITS - a->bit_count, (uint64_t)(BITS / 8 * 0.01 * 8));
		ASSERT_EQ(0, memcmp(a->payload, in[0][i]->payload, a->bit_count / 8));
		recycled += (BITS - a->bit_count) / 8;
	}
	EXPECT_GT(recycled, 0u);

	/* both pools grew by the recycled tails, in key-id order, and spent the same */
	for (int s = 0; s < 2; s++) {
		snprintf(path, sizeof(path), "%s/%c.pool", e.dir, s ? 'b' : 'a');
		kp[s] = qkd_keypool_open(path);
		ASSERT_NE(NULL, kp[s]);
		ASSERT_EQ(0, qkd_keypool_stat(kp[s], NULL, &tot[s], &spent[s]));
	}
	EXPECT_EQ((uint64_t)POOL + recycled, tot[0]);
	EXPECT_EQ(tot[0], tot[1]);
	/* 16 for the context + pad chunks of 480 and 960 bytes (10 + 20 closings
	 * of 48 bytes), which cover the 11 closed frames (frame 10 got none) */
	EXPECT_EQ(16u + 480u + 960u, spent[0]);
	EXPECT_EQ(spent[0], spent[1]);
	tail = malloc(recycled);
	ASSERT_NE(NULL, tail);
	snprintf(path, sizeof(path), "%s/b.pool", e.dir);
	fd = open(path, O_RDONLY);
	ASSERT_EQ((ssize_t)recycled, pread(fd, tail, recycled, POOL));
	close(fd);
	{
		uint64_t off = 0;

		for (int i = 0; i < NF; i++) {
			struct qkd_frame *a = out[0][i];
			uint64_t r;

			if (a->state != QKD_STATE_AUTHENTICATED)
				continue;
			r = (BITS - a->bit_count) / 8;
			EXPECT_EQ(0, memcmp(tail + off, in[0][i]->payload + a->bit_count / 8, r));
			off += r;
		}
	}
	free(tail);
	for (int s = 0; s < 2; s++)
		qkd_keypool_close(kp[s]);
	EXPECT_TRUE(log_has(&e, 'a', "key consumption"));
	EXPECT_TRUE(log_has(&e, 'b', "key consumption"));
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < NF; i++) {
			qkd_frame_free(in[s][i]);
			qkd_frame_free(out[s][i]);
		}
	tp_rmdir(e.dir);
}

TEST(runs_on_recycled_key_alone)
{
	/* a small pre-shared pool that only recycling can keep going: 12 frames
	 * need 16 + 12 x 48 = 592 bytes (too few for chunks of pads, so 48 bytes
	 * at a time); start with 300, set up with qkd-auth --init-pool */
	struct qkd_frame *in[2][NF], *out[2][NF];
	struct tp_env e;
	char cmd[4096];
	int ok = 0;

	tp_env_init(&e, "/tmp/qkd-auth.XXXXXX", POOL, 4);
	snprintf(cmd, sizeof(cmd), "cd %s && rm -f a.pool* b.pool* && "
		 "head -c 300 /dev/urandom > secret && "
		 "%s/qkd-auth --init-pool a.pool secret 2>/dev/null && "
		 "%s/qkd-auth --init-pool b.pool secret 2>/dev/null && "
		 "! %s/qkd-auth --init-pool b.pool secret 2>/dev/null && rm secret",
		 e.dir, e.bin, e.bin, e.bin);
	ASSERT_EQ(0, system(cmd));
	for (int i = 0; i < NF; i++) {
		in[0][i] = amplified((uint64_t)i, 0);
		in[1][i] = amplified((uint64_t)i, 1);
		qkd_random(in[0][i]->payload, BITS / 8);
		memcpy(in[1][i]->payload, in[0][i]->payload, BITS / 8);
	}
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", in[0], NF));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", in[1], NF));
	ASSERT_EQ(0, run_auth(&e));
	ASSERT_EQ(NF, tp_read_frames(e.dir, "a.out", out[0], NF));
	ASSERT_EQ(NF, tp_read_frames(e.dir, "b.out", out[1], NF));
	for (int i = 0; i < NF; i++) {
		ok += out[0][i]->state == QKD_STATE_AUTHENTICATED &&
		      out[1][i]->state == QKD_STATE_AUTHENTICATED &&
		      !memcmp(out[0][i]->payload, out[1][i]->payload, out[0][i]->payload_len);
	}
	EXPECT_EQ(NF, ok);
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < NF; i++) {
			qkd_frame_free(in[s][i]);
			qkd_frame_free(out[s][i]);
		}
	tp_rmdir(e.dir);
}

TEST(sessions_never_reuse_pool_key)
{
	/* three sessions on the same pools: each spends fresh bytes, exactly
	 * 16 for its context + pad chunks of 480 and 960 bytes (48 per frame), and Bob's
	 * pool refuses every byte spent before */
	struct qkd_frame *in[2][NF], *out[NF];
	struct qkd_keypool *kp;
	struct tp_env e;
	char path[256];
	uint64_t spent[2], tot[2], prev = 0;
	uint8_t buf[48];

	tp_env_init(&e, "/tmp/qkd-auth.XXXXXX", POOL, 4);
	for (int i = 0; i < NF; i++) {
		in[0][i] = amplified((uint64_t)i, 0);
		in[1][i] = amplified((uint64_t)i, 1);
		qkd_random(in[0][i]->payload, BITS / 8);
		memcpy(in[1][i]->payload, in[0][i]->payload, BITS / 8);
	}
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", in[0], NF));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", in[1], NF));
	for (int run = 0; run < 3; run++) {
		ASSERT_EQ(0, run_auth(&e));
		ASSERT_EQ(NF, tp_read_frames(e.dir, "b.out", out, NF));
		for (int i = 0; i < NF; i++) {
			EXPECT_EQ(QKD_STATE_AUTHENTICATED, out[i]->state);
			qkd_frame_free(out[i]);
		}
		for (int s = 0; s < 2; s++) {
			snprintf(path, sizeof(path), "%s/%c.pool", e.dir, s ? 'b' : 'a');
			kp = qkd_keypool_open(path);
			ASSERT_NE(NULL, kp);
			ASSERT_EQ(0, qkd_keypool_stat(kp, NULL, &tot[s], &spent[s]));
			if (s == 1) {
				/* everything spent so far lies in [0, spent) here: the pool is
				 * consumed from the front, and all of it is refused now */
				for (uint64_t off = 0; off + sizeof(buf) <= spent[s]; off += 4096)
					EXPECT_EQ(-EKEYREJECTED, qkd_keypool_take_at(kp, off, 16, buf));
			}
			qkd_keypool_close(kp);
		}
		EXPECT_EQ(spent[0], spent[1]);
		EXPECT_EQ(tot[0], tot[1]);
		EXPECT_EQ(prev + 16 + 480u + 960u, spent[0]);
		prev = spent[0];
	}
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < NF; i++)
			qkd_frame_free(in[s][i]);
	tp_rmdir(e.dir);
}

TEST(frame_missing_on_one_side)
{
	/* Alice lacks frames 3 and 11 (the last), Bob lacks frame 7 (dropped
	 * upstream on one side only): those are aborted where they exist, and
	 * both sides finish cleanly whoever runs out first; every other frame is
	 * authenticated with identical keys, and the pools stay identical */
	struct qkd_frame *all[2][NF], *in[2][NF], *out[2][NF];
	struct qkd_keypool *kp;
	struct tp_env e;
	char path[256];
	uint64_t tot[2], spent[2];
	int n[2] = { 0, 0 }, got[2];

	tp_env_init(&e, "/tmp/qkd-auth.XXXXXX", POOL, 4);
	for (int i = 0; i < NF; i++) {
		all[0][i] = amplified((uint64_t)i, 0);
		all[1][i] = amplified((uint64_t)i, 1);
		qkd_random(all[0][i]->payload, BITS / 8);
		memcpy(all[1][i]->payload, all[0][i]->payload, BITS / 8);
		if (i != 3 && i != NF - 1)
			in[0][n[0]++] = all[0][i];
		if (i != 7)
			in[1][n[1]++] = all[1][i];
	}
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", in[0], n[0]));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", in[1], n[1]));
	ASSERT_EQ(0, run_auth(&e));
	got[0] = tp_read_frames(e.dir, "a.out", out[0], NF);
	got[1] = tp_read_frames(e.dir, "b.out", out[1], NF);
	ASSERT_EQ(n[0], got[0]);
	ASSERT_EQ(n[1], got[1]);
	for (int s = 0; s < 2; s++) {
		for (int j = 0; j < got[s]; j++) {
			struct qkd_frame *f = out[s][j];

			if (f->key_id == 3 || f->key_id == 7 || f->key_id == NF - 1) {
				EXPECT_EQ(QKD_STATE_ABORTED, f->state);
				continue;
			}
			EXPECT_EQ(QKD_STATE_AUTHENTICATED, f->state);
			/* the same key as the other side's frame of this key id */
			for (int k = 0; k < got[1 - s]; k++)
				if (out[1 - s][k]->key_id == f->key_id) {
					EXPECT_EQ(f->bit_count, out[1 - s][k]->bit_count);
					EXPECT_EQ(0, memcmp(f->payload, out[1 - s][k]->payload,
							    f->payload_len));
				}
		}
	}
	for (int s = 0; s < 2; s++) {
		snprintf(path, sizeof(path), "%s/%c.pool", e.dir, s ? 'b' : 'a');
		kp = qkd_keypool_open(path);
		ASSERT_NE(NULL, kp);
		ASSERT_EQ(0, qkd_keypool_stat(kp, NULL, &tot[s], &spent[s]));
		qkd_keypool_close(kp);
	}
	EXPECT_EQ(tot[0], tot[1]);
	EXPECT_EQ(spent[0], spent[1]);
	for (int s = 0; s < 2; s++) {
		for (int i = 0; i < NF; i++)
			qkd_frame_free(all[s][i]);
		for (int j = 0; j < got[s]; j++)
			qkd_frame_free(out[s][j]);
	}
	tp_rmdir(e.dir);
}

TEST_HARNESS_MAIN
