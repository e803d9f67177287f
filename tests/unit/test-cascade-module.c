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
#include "testproc.h"
#include "qkd/cascade.h"
#include "qkd/frame.h"
#include "qkd/module.h"
#include "qkd/stream.h"

#define MAX_FRAMES 64

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

static int run_pair(const struct tp_env *e, const char *opts, int timeout_s)
{
	char cmd[2][2048];

	for (int side = 0; side < 2; side++) {
		const char *role = side ? "bob" : "alice", *conn = side ? "--listen" : "--peer";
		char c = side ? 'b' : 'a';

		snprintf(cmd[side], sizeof(cmd[side]),
			 "%s/qkd-cascade --role %s %s 127.0.0.1:%d --keypool %c.pool %s "
			 "< %c.in > %c.out 2> %c.log", e->bin, role, conn, e->port, c, opts, c, c, c);
	}
	return tp_run_pair(e->dir, cmd[0], cmd[1], 100000, timeout_s, timeout_s, 5) ? -1 : 0;
}

/* Many frames of every kind through both modes of authentication. */
static void many_frames(struct __test_metadata *_metadata, const char *opts)
{
	static const double qs[] = { 0.005, 0.01, 0.02, 0.05, 0.08, 0.10 };
	enum { N = 32 };
	struct qkd_frame *a[N], *b[N], *oa[MAX_FRAMES], *ob[MAX_FRAMES];
	struct tp_env e;
	int na, nb, residual = 0;

	tp_env_init(&e, "/tmp/qkd-cascade.XXXXXX", 1048576, 1);
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
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", a, N));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", b, N));
	ASSERT_EQ(0, run_pair(&e, opts, 120));
	na = tp_read_frames(e.dir, "a.out", oa, MAX_FRAMES);
	nb = tp_read_frames(e.dir, "b.out", ob, MAX_FRAMES);
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
	tp_free_frames(oa, na);
	tp_free_frames(ob, nb);
	tp_free_frames(a, N);
	tp_free_frames(b, N);
	tp_rmdir(e.dir);
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
	struct tp_env e;

	tp_env_init(&e, "/tmp/qkd-cascade.XXXXXX", 1048576, 1);
	for (int i = 0; i < N; i++)
		estimated(1 + i, 20000, 0.05, &a[i], &b[i]);
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", a, N));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", b, N));
	ASSERT_EQ(0, run_pair(&e, "--max-rounds 10", 60));
	ASSERT_EQ(N, tp_read_frames(e.dir, "a.out", oa, MAX_FRAMES));
	ASSERT_EQ(N, tp_read_frames(e.dir, "b.out", ob, MAX_FRAMES));
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(QKD_STATE_ABORTED, oa[i]->state);
		ASSERT_EQ(QKD_ABORT_EC, oa[i]->abort_reason);
		ASSERT_EQ(QKD_STATE_ABORTED, ob[i]->state);
		ASSERT_EQ(QKD_ABORT_EC, ob[i]->abort_reason);
	}
	tp_free_frames(oa, N);
	tp_free_frames(ob, N);
	tp_free_frames(a, N);
	tp_free_frames(b, N);
	tp_rmdir(e.dir);
}

TEST(help_lists_schedules)
{
	struct tp_env e;
	char cmd[1200], out[65536];
	FILE *p;
	size_t n;

	tp_env_init(&e, "/tmp/qkd-cascade.XXXXXX", 1048576, 1);
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
	tp_rmdir(e.dir);
}

TEST_HARNESS_MAIN
