// SPDX-License-Identifier: GPL-2.0
/*
 * The whole distillation pipeline, end to end: Alice's and Bob's chains
 *   qkd-sim | qkd-sift | qkd-estimate | qkd-cascade | qkd-confirm | qkd-pa | qkd-auth
 * as real processes (started by scripts/lib/pipeline.sh, the library the demo
 * and the benchmark use), each stage pair on its own loopback peer channel, a
 * fresh pre-shared key pool identical on both sides.
 *
 *  - identical final keys over several seeds and QBERs from 0.5% to 10%
 *    (finite-key privacy amplification up to 8%; at 8-10% also fixed-ratio
 *    amplification, since the finite-key bound leaves nothing of blocks this
 *    short there, which is checked too);
 *  - frames above qkd-estimate's abort threshold yield nothing on either side;
 *  - a man in the middle (a separate process relaying one stage's TCP
 *    connection) flips one bit of one peer message of one key block, in
 *    several stages and both directions: that block yields no key on either
 *    side, every other block still does, identical on both sides;
 *  - the key pools never hand out a byte twice: after two sessions on the same
 *    pools every spent range was recorded once, the records are disjoint and
 *    the same on both sides, spent key is wiped, unspent key (including what
 *    qkd-auth recycled) is identical on both sides and never part of a final
 *    key.
 *
 * Under the sanitizer build (QKD_BUILD ending in -san) fewer seeds run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

#define MAXK 64
#define POOL_BYTES 1048576u
/* pipeline.sh numbers the stages' ports from QKD_PORT in this order */
static const char *const stages[] = { "sift", "estimate", "cascade", "confirm", "pa", "auth" };

struct env {
	char dir[64];
	char top[1024];	/* source tree: scripts/lib/pipeline.sh */
	char bin[1100];
	int port;
	bool san;
	bool keep;	/* a run failed: keep the directory for a post-mortem */
};

/*
 * QKD_DISTILL_ONLY=WORD runs only the tests whose name (or, for the tamper
 * cases, stage name) contains WORD
 */
#define ONLY_IN(extra)							\
	do {								\
		const char *only_ = getenv("QKD_DISTILL_ONLY");	\
		if (only_ && !strstr(_metadata->name, only_) &&		\
		    !strstr(extra, only_))				\
			SKIP(return, "QKD_DISTILL_ONLY=%s", only_);	\
	} while (0)
#define ONLY() ONLY_IN("")

struct side {
	struct qkd_frame *f[MAXK];	/* by key id */
	int n;
};

static void env_init(struct env *e)
{
	const char *b = getenv("QKD_BUILD");
	char *build = realpath(b ? b : "build", NULL);
	char *slash;
	unsigned r;

	memset(e, 0, sizeof(*e));
	if (!build)
		abort();
	snprintf(e->bin, sizeof(e->bin), "%s/bin", build);
	e->san = strlen(build) > 4 && !strcmp(build + strlen(build) - 4, "-san");
	slash = strrchr(build, '/');
	if (slash)
		*slash = '\0';
	snprintf(e->top, sizeof(e->top), "%s", build);
	free(build);
	strcpy(e->dir, "/tmp/qkd-distill.XXXXXX");
	if (!mkdtemp(e->dir))
		abort();
	/* below the kernel's ephemeral ports (32768-60999), where a listen
	 * could collide with some connection's local port */
	qkd_random(&r, sizeof(r));
	e->port = 20000 + (int)(r % 12000);
}

static void env_free(struct env *e)
{
	if (e->keep) {
		fprintf(stderr, "# files of the failed run kept in %s\n", e->dir);
		return;
	}
	tp_rmdir(e->dir);
}

static void side_free(struct side *s)
{
	for (int i = 0; i < MAXK; i++)
		qkd_frame_free(s->f[i]);
	memset(s, 0, sizeof(*s));
}

/*
 * Read DIR/ROLE.keys into s, indexed by key id. -1 on a bad stream or when the
 * frames are not key ids 0, 1, 2, ... in this order.
 */
static int side_load(const struct env *e, const char *role, struct side *s)
{
	char path[256];
	struct qkd_stream *st;
	struct qkd_frame *f;
	int fd, r;

	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "%s/%s.keys", e->dir, role);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	st = qkd_stream_open(fd, QKD_STREAM_READ | QKD_STREAM_FALLBACK);
	if (!st)
		return -1;
	for (;;) {
		f = NULL;
		r = qkd_read_frame(st, &f);
		if (r <= 0)
			break;
		/* key ids 0, 1, 2, ... in order (lanes are merged back in order) */
		if (f->key_id != (uint64_t)s->n || f->key_id >= MAXK) {
			qkd_frame_free(f);
			r = -1;
			break;
		}
		s->f[f->key_id] = f;
		s->n++;
	}
	qkd_stream_close(st);
	return r < 0 ? -1 : s->n;
}

static void show_logs(struct env *e)
{
	char cmd[256];

	e->keep = true;
	snprintf(cmd, sizeof(cmd), "cd %s && for f in *.log; do [ -s $f ] && "
		 "{ echo \"== $f\"; tail -n 4 $f | cat -v; }; done >&2", e->dir);
	if (system(cmd))
		fprintf(stderr, "no logs\n");
}

/*
 * Run both sides through pipeline.sh with the shell assignments in vars
 * (QKD_QBERS, QKD_SIM_ARGS, QKD_ARGS_*, QKD_PEER_*). fresh_pools: create new
 * identical pools first. Returns the exit status of qkd_pair (0: every stage
 * of both sides ended cleanly), -1 on timeout.
 */
static int run_pair_once(struct env *e, const char *vars, bool fresh_pools, int timeout_s)
{
	char cmd[4096];
	int st;

	snprintf(cmd, sizeof(cmd),
		 ". '%s/scripts/lib/pipeline.sh' && QKD_BIN='%s' && QKD_PORT=%d && "
		 "QKD_COMMON='--log-level warning --peer-timeout 20000' && %s && "
		 "%s qkd_pair '%s'",
		 e->top, e->bin, e->port, vars,
		 fresh_pools ? "qkd_pools \"$PWD\" 1048576 &&" : "", e->dir);
	st = tp_wait(tp_spawn_bash(e->dir, cmd), timeout_s);
	if (st)
		show_logs(e);
	return st;
}

/*
 * Other jobs on the machine may hold one of the six ports: with fresh pools
 * and no man in the middle the run is repeated once on other ports.
 */
static int run_pair(struct env *e, const char *vars, bool fresh_pools, int timeout_s)
{
	char cmd[256];
	int st = run_pair_once(e, vars, fresh_pools, timeout_s);

	snprintf(cmd, sizeof(cmd), "grep -qs 'Address already in use' %s/*.log", e->dir);
	if (st > 0 && fresh_pools && !strstr(vars, "QKD_PEER_") && !system(cmd)) {
		e->port = e->port >= 31000 ? 20000 : e->port + 500;
		fprintf(stderr, "# a port was taken; again from port %d\n", e->port);
		e->keep = false;
		st = run_pair_once(e, vars, fresh_pools, timeout_s);
	}
	return st;
}

static bool keyed(const struct qkd_frame *f)
{
	return f && f->state == QKD_STATE_AUTHENTICATED && f->bit_count > 0;
}

/* Both sides' frames of key id k agree: same state, same key. */
static bool same(const struct side *a, const struct side *b, int k)
{
	const struct qkd_frame *x = a->f[k], *y = b->f[k];

	if (!x || !y || x->state != y->state)
		return false;
	if (x->state == QKD_STATE_ABORTED)
		return x->abort_reason == y->abort_reason && !x->payload_len && !y->payload_len;
	return x->bit_count == y->bit_count && x->payload_len == y->payload_len &&
	       !memcmp(x->payload, y->payload, x->payload_len);
}

/* ---- identical keys over seeds and QBERs ------------------------------------ */

/* 2^20 pulses, no fibre, transmittance 0.5: about 116 000 sifted bits a frame */
#define SIM "--slots 1048576 --distance 0 --efficiency 0.5"

static const double finite_q[] = { 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.065, 0.08 };
#define NFINITE (sizeof(finite_q) / sizeof(finite_q[0]))

/* plain tests share a fixture only for the harness's per-test timeout */
FIXTURE(distill) {
	int unused;
};

FIXTURE_SETUP(distill)
{
}

FIXTURE_TEARDOWN(distill)
{
}

TEST_F_TIMEOUT(distill, identical_keys_over_seeds_and_qbers, 400)
{
	struct env e;
	struct side a, b;
	char vars[1024], list[256] = "";
	int seeds, keys = 0;

	ONLY();

	env_init(&e);
	for (size_t i = 0; i < NFINITE; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%g ", finite_q[i]);
	seeds = e.san ? 2 : 5;
	for (int s = 0; s < seeds; s++) {
		uint32_t seed;

		qkd_random(&seed, sizeof(seed));
		seed &= 0x7fffffff;
		snprintf(vars, sizeof(vars), "QKD_QBERS='%s' QKD_SIM_ARGS='%s --seed %u'",
			 list, SIM, seed);
		ASSERT_EQ(0, run_pair(&e, vars, true, 120)) TH_LOG("seed %u", seed);
		ASSERT_EQ((int)NFINITE, side_load(&e, "alice", &a));
		ASSERT_EQ((int)NFINITE, side_load(&e, "bob", &b));
		for (size_t k = 0; k < NFINITE; k++) {
			EXPECT_TRUE(same(&a, &b, (int)k))
				TH_LOG("seed %u key %zu (QBER %g) differs", seed, k, finite_q[k]);
			if (finite_q[k] <= 0.065) {
				/* every block up to 6.5% must yield key */
				EXPECT_TRUE(keyed(a.f[k]))
					TH_LOG("seed %u key %zu (QBER %g): no key", seed, k,
					       finite_q[k]);
			} else if (!keyed(a.f[k])) {
				/*
				 * At 8% a block this short may be too short for
				 * the bound, or keep a residual error after
				 * Cascade that confirmation catches: both are
				 * the protocol working, never a delivered
				 * mismatch (checked by same() above).
				 */
				EXPECT_TRUE(a.f[k]->abort_reason == QKD_ABORT_TOO_SHORT ||
					    a.f[k]->abort_reason == QKD_ABORT_CONFIRM)
					TH_LOG("seed %u key %zu: abort reason %u", seed, k,
					       a.f[k]->abort_reason);
			}
			keys += keyed(a.f[k]) && same(&a, &b, (int)k);
		}
		side_free(&a);
		side_free(&b);
	}

	/*
	 * 8% to 10%: the finite-key bound leaves nothing of 10^5-bit blocks at
	 * 10% (too-short on both sides); with a fixed reduction ratio the rest of
	 * the chain (Cascade at its largest block sizes, confirmation,
	 * authentication) must still give identical keys.
	 */
	for (int mode = 0; mode < 2; mode++) {
		uint32_t seed;
		int nf = 7;

		qkd_random(&seed, sizeof(seed));
		seed &= 0x7fffffff;
		snprintf(vars, sizeof(vars), "QKD_QBERS='0.08*2 0.09*2 0.10*3' "
			 "QKD_SIM_ARGS='%s --seed %u' %s", SIM, seed,
			 mode ? "QKD_ARGS_pa='--mode fixed --ratio 0.05'" : "");
		ASSERT_EQ(0, run_pair(&e, vars, true, 120)) TH_LOG("seed %u", seed);
		ASSERT_EQ(nf, side_load(&e, "alice", &a));
		ASSERT_EQ(nf, side_load(&e, "bob", &b));
		for (int k = 0; k < nf; k++) {
			EXPECT_TRUE(same(&a, &b, k)) TH_LOG("seed %u key %d differs", seed, k);
			if (!mode && k >= 4) {
				EXPECT_EQ(QKD_STATE_ABORTED, a.f[k]->state);
				EXPECT_EQ(QKD_ABORT_TOO_SHORT, a.f[k]->abort_reason);
			} else if (mode && !keyed(a.f[k])) {
				/* 10% sits 3.5 sigma of the estimate below the 11% cut */
				EXPECT_EQ(QKD_ABORT_QBER, a.f[k]->abort_reason)
					TH_LOG("seed %u key %d: no key", seed, k);
			}
			keys += mode && keyed(a.f[k]) && same(&a, &b, k);
		}
		side_free(&a);
		side_free(&b);
	}
	TH_LOG("%d identical final keys", keys);
	EXPECT_GE(keys, seeds * 7 + 5);
	env_free(&e);
}

/*
 * Parallel instances: the source, qkd-sift and qkd-estimate in three lanes
 * (frame k in lane k mod 3, each lane its own peer channels), merged back into
 * key-id order by qkd-cascade.
 */
TEST_F_TIMEOUT(distill, identical_keys_through_three_lanes, 150)
{
	const int nf = 9;
	struct env e;
	struct side a, b;
	char vars[512];
	uint32_t seed;

	ONLY();

	env_init(&e);
	qkd_random(&seed, sizeof(seed));
	seed &= 0x7fffffff;
	snprintf(vars, sizeof(vars), "QKD_QBERS='0.01*3 0.03*3 0.05*3' QKD_SIM_ARGS='%s --seed %u' "
		 "QKD_LANES=3 QKD_LANE_STAGES='sift estimate'", SIM, seed);
	ASSERT_EQ(0, run_pair(&e, vars, true, 120));
	ASSERT_EQ(nf, side_load(&e, "alice", &a));
	ASSERT_EQ(nf, side_load(&e, "bob", &b));
	for (int k = 0; k < nf; k++) {
		EXPECT_TRUE(keyed(a.f[k]) && same(&a, &b, k)) TH_LOG("seed %u key %d", seed, k);
	}
	side_free(&a);
	side_free(&b);
	env_free(&e);
}

/* ---- above the threshold ------------------------------------------------------ */

TEST_F_TIMEOUT(distill, above_threshold_yields_nothing, 150)
{
	static const double q[] = { 0.03, 0.12, 0.03, 0.15, 0.25, 0.03, 0.5 };
	const int n = sizeof(q) / sizeof(q[0]);
	struct env e;
	struct side a, b;
	char vars[512], list[128] = "";
	uint32_t seed;

	ONLY();

	env_init(&e);
	for (int i = 0; i < n; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%g ", q[i]);
	qkd_random(&seed, sizeof(seed));
	seed &= 0x7fffffff;
	snprintf(vars, sizeof(vars), "QKD_QBERS='%s' QKD_SIM_ARGS='%s --seed %u'", list, SIM, seed);
	ASSERT_EQ(0, run_pair(&e, vars, true, 120));
	ASSERT_EQ(n, side_load(&e, "alice", &a));
	ASSERT_EQ(n, side_load(&e, "bob", &b));
	for (int k = 0; k < n; k++) {
		EXPECT_TRUE(same(&a, &b, k)) TH_LOG("key %d differs", k);
		if (q[k] > 0.11) {
			EXPECT_EQ(QKD_STATE_ABORTED, a.f[k]->state);
			EXPECT_EQ(QKD_STATE_ABORTED, b.f[k]->state);
			EXPECT_EQ(QKD_ABORT_QBER, a.f[k]->abort_reason);
			EXPECT_EQ(QKD_ABORT_QBER, b.f[k]->abort_reason);
			EXPECT_EQ(0u, a.f[k]->payload_len);
			EXPECT_EQ(0u, b.f[k]->payload_len);
		} else {
			EXPECT_TRUE(keyed(a.f[k])) TH_LOG("key %d (3%%) yielded nothing", k);
		}
	}
	side_free(&a);
	side_free(&b);
	env_free(&e);
}

/* ---- a man in the middle -------------------------------------------------------- */

/*
 * A separate process: accepts Alice's connection of one stage on its own
 * port, connects to Bob's real port and relays both directions, parsing the
 * peer framing (Documentation/peer-protocol.md: le32 body length, kind at byte
 * 6, 0xe1 for data, le64 key id at byte 8). It flips one bit in the middle of
 * the body of the nth data message of one key id in one direction (0 Alice to
 * Bob, 1 Bob to Alice). Exit status 0 when it flipped, 3 when the message never
 * came, 4 on a socket failure.
 */
struct mitm {
	const char *stage;
	int dir;
	uint64_t key_id;
	int nth;
};

struct track {
	uint8_t hdr[16];
	uint64_t pos, total, flip_at;
	int seen;
	bool flip;
};

static bool relay(const struct mitm *x, int dir, struct track *t, uint8_t *b, size_t n)
{
	bool flipped = false;

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
			t->flip = false;
			if (dir == x->dir && t->hdr[6] == 0xe1 && key == x->key_id && len > 0 &&
			    t->seen++ == x->nth) {
				t->flip = true;
				t->flip_at = 16 + len / 2 + 1; /* position count of that byte */
			}
		} else if (t->pos > 16 && t->flip && t->pos == t->flip_at) {
			b[i] ^= 0x10;
			flipped = true;
		}
		if (t->pos >= 16 && t->pos == t->total)
			t->pos = 0;
	}
	return flipped;
}

static int mitm_serve(int lfd, int bob_port, const struct mitm *x)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)bob_port) };
	struct track t[2];
	struct pollfd p[2] = { { .fd = -1 }, { .fd = -1 } };
	static uint8_t buf[1 << 16];
	bool flipped = false, open_[2] = { true, true };
	int fa, fb = -1;

	memset(t, 0, sizeof(t));
	p[0].fd = lfd;
	p[0].events = POLLIN;
	if (poll(p, 1, 30000) != 1)
		return 4;
	fa = accept(lfd, NULL, NULL);
	if (fa < 0)
		return 4;
	for (int i = 0; i < 1500 && fb < 0; i++) {
		fb = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fb, (struct sockaddr *)&a, sizeof(a))) {
			close(fb);
			fb = -1;
			usleep(20000);
		}
	}
	if (fb < 0)
		return 4;
	p[0].fd = fa;
	p[1].fd = fb;
	p[0].events = p[1].events = POLLIN;
	while ((open_[0] || open_[1]) && poll(p, 2, 30000) > 0) {
		for (int d = 0; d < 2; d++) {
			ssize_t n;

			if (!open_[d] || !(p[d].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[d].fd, buf, sizeof(buf));
			if (n <= 0) {
				/* pass the end on, keep relaying the other way */
				open_[d] = false;
				p[d].events = 0;
				p[d].fd = -1;
				shutdown(d ? fa : fb, SHUT_WR);
				continue;
			}
			flipped |= relay(x, d, &t[d], buf, (size_t)n);
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(d ? fa : fb, buf + off, (size_t)(n - off),
						 MSG_NOSIGNAL);

				if (w <= 0) {
					open_[0] = open_[1] = false;
					break;
				}
				off += w;
			}
		}
	}
	close(fa);
	close(fb);
	return flipped ? 0 : 3;
}

static pid_t mitm_start(const struct env *e, const struct mitm *x, int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd, idx = 0, one = 1;
	pid_t pid;

	for (int i = 0; i < 6; i++)
		if (!strcmp(stages[i], x->stage))
			idx = i;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		return -1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen)) {
		close(lfd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	pid = fork();
	if (pid == 0)
		_exit(mitm_serve(lfd, e->port + idx, x));
	close(lfd);
	return pid;
}

FIXTURE(tamper) {
	struct env e;
};

FIXTURE_VARIANT(tamper) {
	const char *stage;
	int dir;	/* 0: Alice to Bob, 1: Bob to Alice */
	int nth;
};

/* sift: Bob's detection list, Alice's basis-match mask */
FIXTURE_VARIANT_ADD(tamper, sift_bob_detections) { .stage = "sift", .dir = 1 };
FIXTURE_VARIANT_ADD(tamper, sift_alice_mask) { .stage = "sift", .dir = 0 };
/* estimate: Alice's sample positions and bits */
FIXTURE_VARIANT_ADD(tamper, estimate_alice_sample) { .stage = "estimate", .dir = 0 };
/* cascade: a parity request of Bob's second round, Alice's first answer */
FIXTURE_VARIANT_ADD(tamper, cascade_bob_request) { .stage = "cascade", .dir = 1, .nth = 1 };
FIXTURE_VARIANT_ADD(tamper, cascade_alice_parities) { .stage = "cascade", .dir = 0 };
/* confirm: Bob's verdict */
FIXTURE_VARIANT_ADD(tamper, confirm_bob_verdict) { .stage = "confirm", .dir = 1 };
/* pa: Alice's Toeplitz seed */
FIXTURE_VARIANT_ADD(tamper, pa_alice_seed) { .stage = "pa", .dir = 0 };
/* auth: Alice's block information (bit count, stages, recycling share) */
FIXTURE_VARIANT_ADD(tamper, auth_alice_info) { .stage = "auth", .dir = 0 };

FIXTURE_SETUP(tamper)
{
	env_init(&self->e);
}

FIXTURE_TEARDOWN(tamper)
{
	env_free(&self->e);
}

/*
 * A stage that does not come back within 40 s is killed (with the rest of the
 * pipeline) and the test fails: a tampered message must not stop a stage.
 */
TEST_F_TIMEOUT(tamper, one_bit_one_block_no_key, 90)
{
	const int nf = 5, victim = 2;
	struct mitm x = { .stage = variant->stage, .dir = variant->dir, .key_id = victim,
			  .nth = variant->nth };
	struct side a, b;
	char vars[512];
	uint32_t seed;
	int port = 0, st, rc;
	pid_t m;

	ONLY_IN(variant->stage);

	qkd_random(&seed, sizeof(seed));
	seed &= 0x7fffffff;
	m = mitm_start(&self->e, &x, &port);
	ASSERT_GT(m, 0);
	snprintf(vars, sizeof(vars), "QKD_QBERS='0.03*%d' QKD_SIM_ARGS='--slots 524288 "
		 "--distance 0 --efficiency 0.5 --seed %u' QKD_PEER_%s=127.0.0.1:%d",
		 nf, seed, variant->stage, port);
	rc = run_pair(&self->e, vars, true, 40);
	if (rc < 0)
		kill(m, SIGKILL);
	ASSERT_EQ(m, waitpid(m, &st, 0));
	ASSERT_LE(0, rc) TH_LOG("seed %u: the pipeline hung and was killed", seed);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(0, WEXITSTATUS(st)) TH_LOG("the man in the middle never saw the message");
	/* a flipped bit of a message body is no reason for a stage to give up */
	EXPECT_EQ(0, rc);
	ASSERT_EQ(nf, side_load(&self->e, "alice", &a));
	ASSERT_EQ(nf, side_load(&self->e, "bob", &b));
	for (int k = 0; k < nf; k++) {
		if (k == victim) {
			/* aborted on both sides; the reasons may differ (each side
			 * names what it saw first) */
			EXPECT_EQ(QKD_STATE_ABORTED, a.f[k]->state);
			EXPECT_EQ(QKD_STATE_ABORTED, b.f[k]->state);
			EXPECT_EQ(0u, a.f[k]->payload_len);
			EXPECT_EQ(0u, b.f[k]->payload_len);
			TH_LOG("%s: tampered block aborted, reasons %d (Alice) %d (Bob)",
			       variant->stage, a.f[k]->abort_reason, b.f[k]->abort_reason);
		} else {
			EXPECT_TRUE(same(&a, &b, k))
				TH_LOG("seed %u key %d: the sides differ", seed, k);
			EXPECT_TRUE(keyed(a.f[k])) TH_LOG("seed %u key %d: no key", seed, k);
		}
	}
	side_free(&a);
	side_free(&b);
}

/* ---- the key pools ---------------------------------------------------------------- */

struct range {
	uint64_t s, e;
};

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->s < y->s ? -1 : x->s > y->s;
}

/* The records of PATH.spent, sorted. -1 on a malformed record file. */
static int spent_load(const char *path, struct range **out)
{
	struct stat sb;
	uint8_t *buf;
	int fd, n;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) || sb.st_size < 16 || (sb.st_size - 16) % 16) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	buf = malloc((size_t)sb.st_size);
	if (!buf || read(fd, buf, (size_t)sb.st_size) != sb.st_size || memcmp(buf, "QKDSPNT1", 8)) {
		free(buf);
		close(fd);
		return -1;
	}
	close(fd);
	n = (int)((sb.st_size - 16) / 16);
	*out = calloc((size_t)n + 1, sizeof(**out));
	for (int i = 0; i < n; i++) {
		memcpy(&(*out)[i].s, buf + 16 + 16 * i, 8);
		memcpy(&(*out)[i].e, buf + 24 + 16 * i, 8);
	}
	free(buf);
	qsort(*out, (size_t)n, sizeof(**out), cmp_range);
	return n;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat sb;
	uint8_t *p;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &sb)) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	p = malloc((size_t)sb.st_size + 1);
	*len = (size_t)sb.st_size;
	if (!p || read(fd, p, *len) != (ssize_t)*len) {
		free(p);
		p = NULL;
	}
	close(fd);
	return p;
}

static bool in_ranges(const struct range *r, int n, uint64_t o)
{
	for (int i = 0; i < n; i++)
		if (o >= r[i].s && o < r[i].e)
			return true;
	return false;
}

TEST_F_TIMEOUT(distill, key_pool_never_reused, 300)
{
	struct env e;
	struct side a[2], b[2];
	struct range *ra = NULL, *rb = NULL;
	uint64_t spent_sum = 0, avail, total, spent;
	char vars[512], path[2][256];
	size_t la, lb;
	uint8_t *pa, *pb;
	int na, nb, keys = 0;

	ONLY();

	env_init(&e);
	/*
	 * Two sessions on the same pools, with a pool target above the pool so
	 * that qkd-auth recycles into it in both.
	 */
	for (int s = 0; s < 2; s++) {
		uint32_t seed;

		qkd_random(&seed, sizeof(seed));
		seed &= 0x7fffffff;
		snprintf(vars, sizeof(vars), "QKD_QBERS='0.02*4' QKD_SIM_ARGS='%s --seed %u' "
			 "QKD_ARGS_auth='--pool-target 4000000'", SIM, seed);
		ASSERT_EQ(0, run_pair(&e, vars, s == 0, 120));
		ASSERT_EQ(4, side_load(&e, "alice", &a[s]));
		ASSERT_EQ(4, side_load(&e, "bob", &b[s]));
		for (int k = 0; k < 4; k++)
			keys += keyed(a[s].f[k]) && same(&a[s], &b[s], k);
	}
	snprintf(path[0], sizeof(path[0]), "%s/alice.pool", e.dir);
	snprintf(path[1], sizeof(path[1]), "%s/bob.pool", e.dir);

	/* every hand-out is its own record, written before the key was used */
	snprintf(vars, sizeof(vars), "%s.spent", path[0]);
	na = spent_load(vars, &ra);
	snprintf(vars, sizeof(vars), "%s.spent", path[1]);
	nb = spent_load(vars, &rb);
	ASSERT_GT(na, 12);	/* contexts of six stages, two sessions, pads */
	ASSERT_LT(na, 4096) TH_LOG("record compacted: the check below would prove less");
	ASSERT_EQ(na, nb);
	for (int i = 0; i < na; i++) {
		EXPECT_LT(ra[i].s, ra[i].e);
		if (i)	/* disjoint: no byte was handed out twice */
			EXPECT_LE(ra[i - 1].e, ra[i].s)
				TH_LOG("ranges %d and %d overlap", i - 1, i);
		/* Bob took exactly the bytes Alice took */
		EXPECT_EQ(ra[i].s, rb[i].s);
		EXPECT_EQ(ra[i].e, rb[i].e);
		spent_sum += ra[i].e - ra[i].s;
	}
	for (int s = 0; s < 2; s++) {
		struct qkd_keypool *kp = qkd_keypool_open(path[s]);

		ASSERT_NE(NULL, kp);
		ASSERT_EQ(0, qkd_keypool_stat(kp, &avail, &total, &spent));
		qkd_keypool_close(kp);
		EXPECT_EQ(spent_sum, spent);
		EXPECT_EQ(total, avail + spent);
		EXPECT_GT(total, (uint64_t)POOL_BYTES) TH_LOG("nothing recycled");
	}

	/* spent key wiped, the rest (pre-shared and recycled) equal on both sides */
	pa = slurp(path[0], &la);
	pb = slurp(path[1], &lb);
	ASSERT_NE(NULL, pa);
	ASSERT_NE(NULL, pb);
	ASSERT_EQ(la, lb);
	ASSERT_EQ(total, (uint64_t)la);
	for (size_t o = 0; o < la; o++) {
		if (in_ranges(ra, na, o)) {
			if (pa[o] || pb[o]) {
				EXPECT_EQ(0, pa[o] | pb[o]) TH_LOG("spent byte %zu not wiped", o);
				break;
			}
		} else if (pa[o] != pb[o]) {
			EXPECT_EQ(pa[o], pb[o]) TH_LOG("unspent byte %zu differs", o);
			break;
		}
	}
	/* recycled key is taken out of the final keys: no 16 bytes of it in one */
	for (size_t o = POOL_BYTES; o + 16 <= la; o += 16) {
		static const uint8_t zero[16];

		if (!memcmp(pa + o, zero, 16))
			continue;
		for (int s = 0; s < 2; s++) {
			for (int k = 0; k < 4; k++) {
				EXPECT_EQ(NULL, memmem(a[s].f[k]->payload, a[s].f[k]->payload_len,
						       pa + o, 16))
					TH_LOG("recycled pool bytes at %zu are in final key %d",
					       o, k);
			}
		}
	}
	explicit_bzero(pa, la);
	explicit_bzero(pb, lb);
	free(pa);
	free(pb);
	free(ra);
	free(rb);
	for (int s = 0; s < 2; s++) {
		side_free(&a[s]);
		side_free(&b[s]);
	}
	EXPECT_EQ(8, keys);
	env_free(&e);
}

TEST_HARNESS_MAIN
