// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-confirm and qkd-pa as real processes: Alice's and Bob's chains
 * qkd-confirm | qkd-pa, fed CORRECTED frames written here (Bob's copy equal to
 * Alice's, or with one bit flipped), each stage pair on an authenticated TCP
 * peer channel on loopback with a fresh pre-shared key pool. Checks:
 *   - equal keys come out AMPLIFIED, bit-identical on both sides, with the
 *     finite-key length computed independently here (the tag bits of the
 *     confirmation counted as disclosed);
 *   - a single flipped bit aborts the frame on both sides (reason confirm);
 *   - a block too short for the bound is aborted on both sides (too-short);
 *   - fixed mode keeps floor(ratio n) bits;
 *   - with deferred authentication both stages fold equal digests into the
 *     frames; parameters that differ between the sides (eps-cor at
 *     confirmation, eps-sec at amplification) abort every frame on both sides;
 *   - the output is a different function of the key for each frame (fresh
 *     seeds): two frames with the same key give different outputs.
 * Binaries come from $QKD_BUILD/bin (default build/bin).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "testproc.h"
#include "qkd/confirm.h"
#include "qkd/finitekey.h"
#include "qkd/frame.h"
#include "qkd/module.h"
#include "qkd/stream.h"

#define MAX_FRAMES 16

static struct qkd_frame *corrected(uint64_t key_id, uint64_t bits, uint32_t qber_ppm,
				   uint64_t disclosed, int bob)
{
	struct qkd_frame *f = qkd_frame_new(qkd_bits_to_bytes(bits));

	if (!f)
		abort();
	f->key_id = key_id;
	f->state = QKD_STATE_CORRECTED;
	f->flags = bob ? QKD_FRAME_F_BOB : 0;
	f->qber_ppm = qber_ppm;
	f->bit_count = bits;
	f->disclosed_bits = disclosed;
	f->payload_len = qkd_bits_to_bytes(bits);
	return f;
}

static void random_key(struct qkd_frame *a, struct qkd_frame *b)
{
	qkd_random(a->payload, (size_t)((a->bit_count + 7) / 8));
	if (a->bit_count % 8)
		a->payload[a->bit_count / 8] &= (uint8_t)((1u << (a->bit_count % 8)) - 1);
	memcpy(b->payload, a->payload, a->payload_len);
}

/* Run both chains with per-side extra options; 0 when both exit 0. */
static int run_chains2(const struct tp_env *e, const char *const confirm_opts[2],
		       const char *const pa_opts[2], int timeout_s)
{
	char cmd[2][4096];

	for (int side = 0; side < 2; side++) {
		const char *role = side ? "bob" : "alice", *conn = side ? "--listen" : "--peer";
		char c = side ? 'b' : 'a';

		snprintf(cmd[side], sizeof(cmd[side]),
			 "%s/qkd-confirm --role %s %s 127.0.0.1:%d --keypool %c.pool "
			 "--eps-cor 1e-12 %s < %c.in 2> %c.confirm.log | "
			 "%s/qkd-pa --role %s %s 127.0.0.1:%d --keypool %c.pool --eps-cor 1e-12 "
			 "--eps-sec 1e-10 %s > %c.out 2> %c.pa.log",
			 e->bin, role, conn, e->port, c, confirm_opts[side], c, c, e->bin, role, conn,
			 e->port + 1, c, pa_opts[side], c, c);
	}
	return tp_run_pair(e->dir, cmd[0], cmd[1], 100000, timeout_s, timeout_s, 5);
}

static int run_chains(const struct tp_env *e, const char *pa_opts, int timeout_s)
{
	const char *const c[2] = { "", "" }, *const p[2] = { pa_opts, pa_opts };

	return run_chains2(e, c, p, timeout_s);
}

/* true when the log file contains needle */
static bool log_has(const struct tp_env *e, const char *name, const char *needle)
{
	char path[256], line[1024];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* What qkd-pa must output for a confirmed frame (k as derived by qkd-pa). */
static uint64_t expected_length(uint64_t n, double q, uint64_t disclosed)
{
	struct qkd_confirm_plan p;
	struct qkd_fk_result r;
	uint64_t k = (uint64_t)(0.1 * (double)n / 0.9);

	if (k < 64)
		k = 64;
	if (qkd_confirm_plan(n, 1e-12, &p) ||
	    qkd_fk_length(n, k, q, disclosed + p.total_bits, 1e-10, 1e-12, &r))
		abort();
	return r.length;
}

TEST(confirm_then_amplify)
{
	static const struct {
		uint64_t bits;
		uint32_t qber_ppm;
		uint64_t disclosed;
		int flip; /* bit to flip in Bob's copy, -1 none */
	} spec[] = {
		{ 100000, 20000, 17000, -1 },	/* ordinary */
		{ (1 << 18) + 3, 20000, 44000, -1 }, /* odd length */
		{ 50000, 20000, 9000, 31337 },	/* Cascade left an error */
		{ 2000, 20000, 300, -1 },	/* too short for the bound */
		{ 100000, 50000, 30000, 0 },	/* error at the first bit */
		{ 100000, 20000, 17000, -1 },	/* same key as frame 1 below */
		{ 70001, 30000, 18000, 70000 },	/* error at the last bit */
	};
	enum { N = sizeof(spec) / sizeof(spec[0]) };
	struct qkd_frame *a[N], *b[N], *oa[MAX_FRAMES], *ob[MAX_FRAMES];
	struct tp_env e;
	int na, nb;

	tp_env_init(&e, "/tmp/qkd-cpa.XXXXXX", 1048576, 2);
	for (int i = 0; i < N; i++) {
		a[i] = corrected(100 + i, spec[i].bits, spec[i].qber_ppm, spec[i].disclosed, 0);
		b[i] = corrected(100 + i, spec[i].bits, spec[i].qber_ppm, spec[i].disclosed, 1);
		random_key(a[i], b[i]);
		if (i == 5) {
			memcpy(a[i]->payload, a[0]->payload, a[0]->payload_len);
			memcpy(b[i]->payload, a[0]->payload, a[0]->payload_len);
		}
		if (spec[i].flip >= 0)
			b[i]->payload[spec[i].flip / 8] ^= (uint8_t)(1u << (spec[i].flip % 8));
	}
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", a, N));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", b, N));
	/* small seed parts: the seeds go in several messages */
	ASSERT_EQ(0, run_chains(&e, "--seed-part 4096", 60));
	na = tp_read_frames(e.dir, "a.out", oa, MAX_FRAMES);
	nb = tp_read_frames(e.dir, "b.out", ob, MAX_FRAMES);
	ASSERT_EQ(N, na);
	ASSERT_EQ(N, nb);
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(a[i]->key_id, oa[i]->key_id);
		ASSERT_EQ(a[i]->key_id, ob[i]->key_id);
		if (spec[i].flip >= 0) {
			ASSERT_EQ(QKD_STATE_ABORTED, oa[i]->state);
			ASSERT_EQ(QKD_STATE_ABORTED, ob[i]->state);
			ASSERT_EQ(QKD_ABORT_CONFIRM, oa[i]->abort_reason);
			ASSERT_EQ(QKD_ABORT_CONFIRM, ob[i]->abort_reason);
			continue;
		}
		uint64_t l = expected_length(spec[i].bits, spec[i].qber_ppm / 1e6,
					     spec[i].disclosed);

		if (l == 0) {
			ASSERT_EQ(QKD_STATE_ABORTED, oa[i]->state);
			ASSERT_EQ(QKD_STATE_ABORTED, ob[i]->state);
			ASSERT_EQ(QKD_ABORT_TOO_SHORT, oa[i]->abort_reason);
			ASSERT_EQ(QKD_ABORT_TOO_SHORT, ob[i]->abort_reason);
			continue;
		}
		ASSERT_EQ(QKD_STATE_AMPLIFIED, oa[i]->state) TH_LOG("frame %d", i);
		ASSERT_EQ(QKD_STATE_AMPLIFIED, ob[i]->state);
		ASSERT_EQ(l, oa[i]->bit_count);
		ASSERT_EQ(l, ob[i]->bit_count);
		ASSERT_EQ(oa[i]->payload_len, ob[i]->payload_len);
		ASSERT_EQ(0, memcmp(oa[i]->payload, ob[i]->payload, oa[i]->payload_len));
		ASSERT_GT(oa[i]->disclosed_bits, spec[i].disclosed);
		ASSERT_EQ(oa[i]->disclosed_bits, ob[i]->disclosed_bits);
		ASSERT_EQ(0, (int)(l % 8) ? oa[i]->payload[l / 8] >> (l % 8) : 0);
	}
	/* the stages report the reasons in their exit summaries, on both sides */
	for (int side = 0; side < 2; side++) {
		ASSERT_TRUE(log_has(&e, side ? "b.confirm.log" : "a.confirm.log",
				    "too-short 0, confirm 3, auth 0, peer 0"));
		ASSERT_TRUE(log_has(&e, side ? "b.pa.log" : "a.pa.log",
				    "too-short 1, confirm 0, auth 0, peer 0"));
	}
	/* frame 3 is too short, frame 1 is not: the test covers both branches */
	ASSERT_EQ(0u, expected_length(2000, 0.02, 300));
	ASSERT_NE(0u, expected_length(100000, 0.02, 17000));
	/* same input key, fresh seed: unrelated outputs */
	ASSERT_EQ(oa[0]->bit_count, oa[5]->bit_count);
	ASSERT_NE(0, memcmp(oa[0]->payload, oa[5]->payload, oa[0]->payload_len));
	for (int i = 0; i < N; i++) {
		qkd_frame_free(a[i]);
		qkd_frame_free(b[i]);
		qkd_frame_free(oa[i]);
		qkd_frame_free(ob[i]);
	}
	tp_rmdir(e.dir);
}

TEST(fixed_ratio_mode)
{
	enum { N = 3 };
	static const uint64_t bits[N] = { 4096, 99999, 12345 };
	struct qkd_frame *a[N], *b[N], *oa[MAX_FRAMES], *ob[MAX_FRAMES];
	struct tp_env e;

	tp_env_init(&e, "/tmp/qkd-cpa.XXXXXX", 1048576, 2);
	for (int i = 0; i < N; i++) {
		/* no QBER estimate: fixed mode does not need one */
		a[i] = corrected(7 + i, bits[i], QKD_QBER_UNKNOWN, 100, 0);
		b[i] = corrected(7 + i, bits[i], QKD_QBER_UNKNOWN, 100, 1);
		random_key(a[i], b[i]);
	}
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", a, N));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", b, N));
	ASSERT_EQ(0, run_chains(&e, "--mode fixed --ratio 0.25", 60));
	ASSERT_EQ(N, tp_read_frames(e.dir, "a.out", oa, MAX_FRAMES));
	ASSERT_EQ(N, tp_read_frames(e.dir, "b.out", ob, MAX_FRAMES));
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(QKD_STATE_AMPLIFIED, oa[i]->state);
		ASSERT_EQ(bits[i] / 4, oa[i]->bit_count);
		ASSERT_EQ(bits[i] / 4, ob[i]->bit_count);
		ASSERT_EQ(0, memcmp(oa[i]->payload, ob[i]->payload, oa[i]->payload_len));
		qkd_frame_free(a[i]);
		qkd_frame_free(b[i]);
		qkd_frame_free(oa[i]);
		qkd_frame_free(ob[i]);
	}
	tp_rmdir(e.dir);
}

/*
 * The smallest n >= from for which the Toeplitz seed of n + n / 2 - 1 bits
 * (fixed mode, ratio 0.5) ends exactly on a word boundary and its allocation
 * (one spare word) is an odd number of words: a write of one word past that
 * allocation lands on the next malloc chunk's header, which glibc notices
 * when the seed is freed (outside the tcache: above 1032 bytes).
 */
static uint64_t seed_on_word_boundary(uint64_t from)
{
	for (uint64_t n = from;; n++) {
		uint64_t s = n + n / 2 - 1;

		if (s % 64 == 0 && (s / 64) % 2 == 0)
			return n;
	}
}

/*
 * Blocks of varying lengths as sifting and estimation leave them, among them
 * lengths whose seed fills its last word exactly: qkd-pa wiped one word past
 * such a seed ('double free or corruption (!prev)' on both sides in the whole
 * pipeline, a heap-buffer-overflow under ASan).
 */
TEST(seed_lengths_on_word_boundaries)
{
	uint64_t bits[] = {
		seed_on_word_boundary(80),	/* 86: seed of 2 words, naive product */
		99999,
		seed_on_word_boundary(6000),	/* seed above the tcache sizes */
		seed_on_word_boundary(6001),
		4097,
		seed_on_word_boundary(40000),
		seed_on_word_boundary(116000),	/* a frame of the pipeline's size */
		116001,
		seed_on_word_boundary(116001),
		seed_on_word_boundary(2000) + 1, /* next to one: seed ends one bit in */
		seed_on_word_boundary(2000) - 1, /* and one bit short of the boundary */
	};
	enum { N = sizeof(bits) / sizeof(bits[0]) };
	struct qkd_frame *a[N], *b[N], *oa[MAX_FRAMES], *ob[MAX_FRAMES];
	struct tp_env e;

	ASSERT_EQ(86u, bits[0]);
	tp_env_init(&e, "/tmp/qkd-cpa.XXXXXX", 1048576, 2);
	for (int i = 0; i < N; i++) {
		a[i] = corrected(300 + i, bits[i], QKD_QBER_UNKNOWN, 0, 0);
		b[i] = corrected(300 + i, bits[i], QKD_QBER_UNKNOWN, 0, 1);
		random_key(a[i], b[i]);
	}
	ASSERT_EQ(0, tp_write_frames(e.dir, "a.in", a, N));
	ASSERT_EQ(0, tp_write_frames(e.dir, "b.in", b, N));
	ASSERT_EQ(0, run_chains(&e, "--mode fixed --ratio 0.5", 60));
	ASSERT_EQ(N, tp_read_frames(e.dir, "a.out", oa, MAX_FRAMES));
	ASSERT_EQ(N, tp_read_frames(e.dir, "b.out", ob, MAX_FRAMES));
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(QKD_STATE_AMPLIFIED, oa[i]->state) TH_LOG("frame %d, n %" PRIu64, i,
								      bits[i]);
		ASSERT_EQ(QKD_STATE_AMPLIFIED, ob[i]->state);
		ASSERT_EQ(bits[i] / 2, oa[i]->bit_count);
		ASSERT_EQ(bits[i] / 2, ob[i]->bit_count);
		ASSERT_EQ(0, memcmp(oa[i]->payload, ob[i]->payload, oa[i]->payload_len));
		qkd_frame_free(a[i]);
		qkd_frame_free(b[i]);
		qkd_frame_free(oa[i]);
		qkd_frame_free(ob[i]);
	}
	tp_rmdir(e.dir);
}

/* Write n equal random frames of bits each (QBER 2 %) for both sides. */
static void equal_frames(struct tp_env *e, int n, uint64_t bits, uint64_t disclosed)
{
	struct qkd_frame *a, *b, *fa[MAX_FRAMES], *fb[MAX_FRAMES];

	for (int i = 0; i < n; i++) {
		a = corrected(40 + i, bits, 20000, disclosed, 0);
		b = corrected(40 + i, bits, 20000, disclosed, 1);
		random_key(a, b);
		fa[i] = a;
		fb[i] = b;
	}
	if (tp_write_frames(e->dir, "a.in", fa, n) || tp_write_frames(e->dir, "b.in", fb, n))
		abort();
	for (int i = 0; i < n; i++) {
		qkd_frame_free(fa[i]);
		qkd_frame_free(fb[i]);
	}
}

TEST(deferred_authentication)
{
	const char *const d[2] = { "--defer-auth true", "--defer-auth true" };
	struct qkd_frame *oa[MAX_FRAMES], *ob[MAX_FRAMES];
	struct tp_env e;

	tp_env_init(&e, "/tmp/qkd-cpa.XXXXXX", 1048576, 2);
	equal_frames(&e, 3, 60000, 10000);
	ASSERT_EQ(0, run_chains2(&e, d, d, 60));
	ASSERT_EQ(3, tp_read_frames(e.dir, "a.out", oa, MAX_FRAMES));
	ASSERT_EQ(3, tp_read_frames(e.dir, "b.out", ob, MAX_FRAMES));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(QKD_STATE_AMPLIFIED, oa[i]->state);
		ASSERT_EQ(QKD_STATE_AMPLIFIED, ob[i]->state);
		ASSERT_EQ(0, memcmp(oa[i]->payload, ob[i]->payload, oa[i]->payload_len));
		/* both stages folded their transcript digests, the same on both sides */
		ASSERT_EQ(2u, oa[i]->auth_stages);
		ASSERT_EQ(2u, ob[i]->auth_stages);
		ASSERT_EQ(0, memcmp(oa[i]->auth_acc, ob[i]->auth_acc, sizeof(oa[i]->auth_acc)));
		qkd_frame_free(oa[i]);
		qkd_frame_free(ob[i]);
	}
	tp_rmdir(e.dir);
}

TEST(mismatched_parameters_abort_on_both_sides)
{
	const char *const none[2] = { "", "" };
	const char *const cor[2] = { "", "--eps-cor 1e-15" };
	/* Bob refuses after reading every part of the seed: the channel stays in step */
	const char *const sec[2] = { "--eps-sec 1e-3 --seed-part 4096", "" };
	struct qkd_frame *oa[MAX_FRAMES], *ob[MAX_FRAMES];
	struct tp_env e;

	/* confirmation tag plans differ: refused, nothing confirmed */
	tp_env_init(&e, "/tmp/qkd-cpa.XXXXXX", 1048576, 2);
	equal_frames(&e, 2, 60000, 10000);
	ASSERT_EQ(0, run_chains2(&e, cor, none, 60));
	ASSERT_EQ(2, tp_read_frames(e.dir, "a.out", oa, MAX_FRAMES));
	ASSERT_EQ(2, tp_read_frames(e.dir, "b.out", ob, MAX_FRAMES));
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(QKD_STATE_ABORTED, oa[i]->state);
		ASSERT_EQ(QKD_ABORT_PEER, oa[i]->abort_reason);
		ASSERT_EQ(QKD_ABORT_PEER, ob[i]->abort_reason);
		qkd_frame_free(oa[i]);
		qkd_frame_free(ob[i]);
	}
	tp_rmdir(e.dir);

	/* Alice asks for more output than Bob's bound allows: Bob refuses */
	tp_env_init(&e, "/tmp/qkd-cpa.XXXXXX", 1048576, 2);
	equal_frames(&e, 3, 60000, 10000);
	ASSERT_EQ(0, run_chains2(&e, none, sec, 60));
	ASSERT_EQ(3, tp_read_frames(e.dir, "a.out", oa, MAX_FRAMES));
	ASSERT_EQ(3, tp_read_frames(e.dir, "b.out", ob, MAX_FRAMES));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(QKD_STATE_ABORTED, oa[i]->state);
		ASSERT_EQ(QKD_STATE_ABORTED, ob[i]->state);
		ASSERT_EQ(QKD_ABORT_PEER, oa[i]->abort_reason);
		ASSERT_EQ(QKD_ABORT_PEER, ob[i]->abort_reason);
		qkd_frame_free(oa[i]);
		qkd_frame_free(ob[i]);
	}
	tp_rmdir(e.dir);
}

TEST_HARNESS_MAIN
