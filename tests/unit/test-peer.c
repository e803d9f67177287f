// SPDX-License-Identifier: GPL-2.0
/*
 * The peer channel over real loopback TCP, Alice and Bob in two processes:
 * handshake mismatches (each with its own clear error), message round trips
 * with many key ids interleaved and a context switch in the middle, immediate
 * and deferred authentication, and a peer that disconnects, stalls, sends
 * garbage or oversized messages, or names spent key.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>

#include "kselftest_harness.h"
#include "peer-test.h"
#include "qkd/frame.h"

#define TMO 3000

/* Wait (at most 3 s) until the other side closes the connection. */
static void linger_until_closed(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c[256];

	while (poll(&pfd, 1, 3000) == 1 && read(fd, c, sizeof(c)) > 0)
		;
}

/* ---- round trip ------------------------------------------------------- */

#define KEYS 24
#define MSGS 240

static size_t msg_len(int j)
{
	/* 0 bytes, tiny, around block boundaries, a few KB */
	static const size_t lens[] = { 0, 1, 15, 16, 17, 100, 255, 1000, 4097 };

	return lens[(unsigned)(j * 7 + j / 5) % (sizeof(lens) / sizeof(lens[0]))];
}

/* Both sides run the same script, mirrored. 0 on success, else a code. */
static int roundtrip_side(struct pair *pr, enum qkd_role role)
{
	struct qkd_keypool *kp = qkd_keypool_open(role == QKD_ALICE ? pr->apool : pr->bpool);
	struct qkd_peer_config cfg = pt_cfg(role, pr->port, kp, TMO);
	struct qkd_frame f[KEYS];
	static uint8_t buf[1 << 20], want[1 << 20];
	struct qkd_peer *p;
	struct qkd_msg m;
	int64_t ctx;

	if (!kp)
		return 10;
	p = qkd_peer_open(&cfg);
	if (!p) {
		fprintf(stderr, "%d: open: %s\n", role, qkd_peer_open_error());
		return 11;
	}
	memset(f, 0, sizeof(f));
	for (int round = 0; round < 2; round++) {
		if (role == QKD_ALICE) {
			/* Alice sends every message, then reads every reply */
			for (int j = 0; j < MSGS; j++) {
				size_t n = msg_len(j);

				pt_fill(buf, n, (uint64_t)round << 32 | (uint64_t)j);
				if (qkd_send(p, (uint64_t)(j % KEYS), (uint16_t)j, buf, n))
					return 12;
			}
		}
		for (int j = 0; j < MSGS; j++) {
			size_t n = msg_len(j);

			if (qkd_recv(p, &m) != 1)
				return 13;
			pt_fill(want, n, (uint64_t)round << 32 | (uint64_t)j);
			if (m.key_id != (uint64_t)(j % KEYS) || m.type != (uint16_t)j ||
			    m.len != n || memcmp(m.data, want, n))
				return 14;
			if (role == QKD_BOB && qkd_send(p, m.key_id, m.type, m.data, m.len))
				return 15;
		}
		/* a large message for one key id */
		if (round == 0) {
			pt_fill(buf, sizeof(buf), 99);
			if (role == QKD_ALICE) {
				if (qkd_send(p, 3, 7777, buf, sizeof(buf)))
					return 16;
			} else if (qkd_recv_expect(p, 3, 7777, &m) != 1 || m.len != sizeof(buf) ||
				   memcmp(m.data, buf, sizeof(buf))) {
				return 17;
			}
			/* a new context between rounds: old transcripts stay with the old one */
			ctx = qkd_peer_new_context(p);
			if (ctx <= 0)
				return 18;
		}
	}
	/* close: even keys now, odd keys deferred into frames */
	for (int k = 0; k < KEYS; k++) {
		if (k % 2 == 0) {
			if (qkd_peer_auth_verify(p, (uint64_t)k)) {
				fprintf(stderr, "%d: verify %d: %s\n", role, k, qkd_peer_error(p));
				return 19;
			}
		} else {
			f[k].key_id = (uint64_t)k;
			if (qkd_peer_auth_defer(p, (uint64_t)k, &f[k]) || f[k].auth_stages != 1)
				return 20;
		}
	}
	/* a block with no message at all still closes */
	if (qkd_peer_auth_verify(p, 1000))
		return 21;
	for (int k = 1; k < KEYS; k += 2) {
		if (qkd_peer_auth_verify_frame(p, &f[k])) {
			fprintf(stderr, "%d: verify frame %d: %s\n", role, k, qkd_peer_error(p));
			return 22;
		}
	}
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	return 0;
}

static int bob_roundtrip(struct pair *pr, void *arg)
{
	return roundtrip_side(pr, QKD_BOB);
}

TEST(roundtrip_many_key_ids)
{
	struct pair pr;
	struct qkd_keypool *a, *b;
	uint64_t sa, sb;
	pid_t bob;

	ASSERT_EQ(0, pt_setup(&pr, 1 << 16));
	bob = pt_spawn(bob_roundtrip, &pr, NULL);
	EXPECT_EQ(0, roundtrip_side(&pr, QKD_ALICE));
	EXPECT_EQ(0, pt_wait(bob));
	/* both pools spent the same key: 2 contexts x 16 + pad chunks of 480 and
	 * 960 bytes (10 + 20 closings of 48 bytes), which cover the 13 verifies
	 * and 12 frame verifies */
	a = qkd_keypool_open(pr.apool);
	b = qkd_keypool_open(pr.bpool);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, qkd_keypool_stat(a, NULL, NULL, &sa));
	ASSERT_EQ(0, qkd_keypool_stat(b, NULL, NULL, &sb));
	EXPECT_EQ(2u * 16 + 480u + 960u, sa);
	EXPECT_EQ(sa, sb);
	qkd_keypool_close(a);
	qkd_keypool_close(b);
	pt_teardown(&pr);
}

/* ---- many contexts ----------------------------------------------------- */

/* 300 context switches (the context byte wraps), each with a block that
 * straddles the switch: its first message in the old context, the rest in the
 * new one; both sides must agree on every context id and every tag. */
static int contexts_side(struct pair *pr, enum qkd_role role)
{
	struct qkd_keypool *kp = qkd_keypool_open(role == QKD_ALICE ? pr->apool : pr->bpool);
	struct qkd_peer_config cfg = pt_cfg(role, pr->port, kp, TMO);
	struct qkd_peer *p;
	struct qkd_msg m;

	if (!kp || !(p = qkd_peer_open(&cfg)))
		return 10;
	for (uint64_t i = 0; i < 300; i++) {
		int64_t id;

		/* block i starts in the old context on Alice's side */
		if (role == QKD_ALICE && qkd_send(p, i, 1, "old", 3))
			return 11;
		id = qkd_peer_new_context(p);
		if (id <= 0)
			return 12;
		if (role == QKD_ALICE) {
			if (qkd_send(p, i, 2, &id, sizeof(id)) || qkd_recv(p, &m) != 1)
				return 13;
		} else {
			if (qkd_recv(p, &m) != 1 || m.type != 1 || qkd_recv(p, &m) != 1 ||
			    m.len != sizeof(id) || memcmp(m.data, &id, sizeof(id)))
				return 14; /* Bob's id differs from Alice's */
			if (qkd_send(p, i, 3, "new", 3))
				return 15;
		}
		if (qkd_peer_auth_verify(p, i)) {
			fprintf(stderr, "%d: block %llu: %s\n", role, (unsigned long long)i,
				qkd_peer_error(p));
			return 16;
		}
	}
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	return 0;
}

static int bob_contexts(struct pair *pr, void *arg)
{
	return contexts_side(pr, QKD_BOB);
}

TEST(three_hundred_context_switches)
{
	struct pair pr;
	pid_t bob;

	ASSERT_EQ(0, pt_setup(&pr, 1 << 16));
	bob = pt_spawn(bob_contexts, &pr, NULL);
	EXPECT_EQ(0, contexts_side(&pr, QKD_ALICE));
	EXPECT_EQ(0, pt_wait(bob));
	pt_teardown(&pr);
}

/* An open transcript pins its context: at most 200 contexts may separate it
 * from the newest (the context byte is the seq mod 256). */
static int pinned_side(struct pair *pr, enum qkd_role role)
{
	struct qkd_keypool *kp = qkd_keypool_open(role == QKD_ALICE ? pr->apool : pr->bpool);
	struct qkd_peer_config cfg = pt_cfg(role, pr->port, kp, TMO);
	struct qkd_peer *p;
	struct qkd_msg m;

	if (!kp || !(p = qkd_peer_open(&cfg)))
		return 10;
	if (role == QKD_ALICE ? qkd_send(p, 77, 1, "pin", 3) : qkd_recv(p, &m) != 1)
		return 11;
	for (int i = 0; i < 199; i++)
		if (qkd_peer_new_context(p) <= 0)
			return 12;
	if (role == QKD_ALICE && qkd_peer_new_context(p) != -EBUSY)
		return 13;
	qkd_peer_auth_forget(p, 77);
	if (qkd_peer_new_context(p) <= 0)
		return 14;
	if (role == QKD_ALICE ? qkd_send(p, 78, 1, "x", 1) : qkd_recv(p, &m) != 1)
		return 15;
	if (qkd_peer_auth_verify(p, 78))
		return 16;
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	return 0;
}

static int bob_pinned(struct pair *pr, void *arg)
{
	return pinned_side(pr, QKD_BOB);
}

TEST(open_transcript_limits_context_span)
{
	struct pair pr;
	pid_t bob;

	ASSERT_EQ(0, pt_setup(&pr, 1 << 16));
	bob = pt_spawn(bob_pinned, &pr, NULL);
	EXPECT_EQ(0, pinned_side(&pr, QKD_ALICE));
	EXPECT_EQ(0, pt_wait(bob));
	pt_teardown(&pr);
}

/* ---- abandoned blocks fail fast -------------------------------------- */

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Block 5: Alice sends one message and defers it (END); Bob, who expects a
 * second message that never comes, gets -EPROTO from qkd_recv_for instead of
 * stalling, and forgets the block; Alice's defer then fails with -EBADMSG at
 * once. Block 6: Alice verifies while Bob forgets it: -EBADMSG at once. Block
 * 7 then closes normally on both sides.
 */
static int abandon_side(struct pair *pr, enum qkd_role role)
{
	struct qkd_keypool *kp = qkd_keypool_open(role == QKD_ALICE ? pr->apool : pr->bpool);
	struct qkd_peer_config cfg = pt_cfg(role, pr->port, kp, TMO);
	struct qkd_frame f;
	struct qkd_peer *p;
	struct qkd_msg m;
	double t;

	if (!kp || !(p = qkd_peer_open(&cfg)))
		return 10;
	memset(&f, 0, sizeof(f));
	t = mono();
	if (role == QKD_ALICE) {
		if (qkd_send(p, 5, 1, "one", 3))
			return 11;
		if (qkd_peer_auth_defer(p, 5, &f) != -EBADMSG || !strstr(qkd_peer_error(p), "abandoned"))
			return 12;
		if (qkd_peer_auth_verify(p, 6) != -EBADMSG)
			return 13;
	} else {
		if (qkd_recv_for(p, 5, &m) != 1 || m.key_id != 5)
			return 14;
		if (qkd_recv_for(p, 5, &m) != -EPROTO || !strstr(qkd_peer_error(p), "finished"))
			return 15;
		qkd_peer_auth_forget(p, 5);
		qkd_peer_auth_forget(p, 6);
	}
	if (mono() - t > TMO / 2000.0)
		return 16; /* it waited for a timeout */
	if (role == QKD_ALICE ? qkd_send(p, 7, 1, "x", 1) : qkd_recv_expect(p, 7, 1, &m) != 1)
		return 17;
	if (qkd_peer_auth_verify(p, 7))
		return 18;
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	return 0;
}

static int bob_abandon(struct pair *pr, void *arg)
{
	return abandon_side(pr, QKD_BOB);
}

TEST(abandoned_blocks_fail_fast)
{
	struct pair pr;
	pid_t bob;

	ASSERT_EQ(0, pt_setup(&pr, 1 << 16));
	bob = pt_spawn(bob_abandon, &pr, NULL);
	EXPECT_EQ(0, abandon_side(&pr, QKD_ALICE));
	EXPECT_EQ(0, pt_wait(bob));
	pt_teardown(&pr);
}

/* ---- handshake mismatches --------------------------------------------- */

struct hs {
	const char *pipeline, *stage;
	unsigned instance;
	enum qkd_role role;
	bool listen;
	const char *expect;
};

static int hs_side(struct pair *pr, const struct hs *h, const char *pool)
{
	struct qkd_keypool *kp = qkd_keypool_open(pool);
	struct qkd_peer_config cfg = pt_cfg(h->role, pr->port, kp, TMO);
	struct qkd_peer *p;

	cfg.pipeline = h->pipeline;
	cfg.stage = h->stage;
	cfg.instance = h->instance;
	cfg.listen = h->listen;
	p = qkd_peer_open(&cfg);
	if (p) {
		qkd_peer_close(p);
		return 1;
	}
	if (!strstr(qkd_peer_open_error(), h->expect)) {
		fprintf(stderr, "error '%s' lacks '%s'\n", qkd_peer_open_error(), h->expect);
		return 2;
	}
	qkd_keypool_close(kp);
	return 0;
}

static int hs_bob(struct pair *pr, void *arg)
{
	return hs_side(pr, (const struct hs *)arg + 1, pr->bpool);
}

static void hs_case(struct __test_metadata *_metadata, const struct hs h[2])
{
	struct pair pr;
	pid_t bob;

	ASSERT_EQ(0, pt_setup(&pr, 4096));
	bob = pt_spawn(hs_bob, &pr, (void *)h);
	EXPECT_EQ(0, hs_side(&pr, &h[0], pr.apool));
	EXPECT_EQ(0, pt_wait(bob));
	pt_teardown(&pr);
}

TEST(handshake_pipeline_mismatch)
{
	const struct hs h[2] = {
		{ "p1", "s", 0, QKD_ALICE, false, "pipeline mismatch (ours 'p1', the peer's 'p2')" },
		{ "p2", "s", 0, QKD_BOB, true, "pipeline mismatch (ours 'p2', the peer's 'p1')" },
	};

	hs_case(_metadata, h);
}

TEST(handshake_stage_mismatch)
{
	const struct hs h[2] = {
		{ "p", "sift", 0, QKD_ALICE, false, "stage mismatch" },
		{ "p", "cascade", 0, QKD_BOB, true, "stage mismatch" },
	};

	hs_case(_metadata, h);
}

TEST(handshake_instance_mismatch)
{
	const struct hs h[2] = {
		{ "p", "s", 1, QKD_ALICE, false, "instance mismatch (ours 1, the peer's 2)" },
		{ "p", "s", 2, QKD_BOB, true, "instance mismatch (ours 2, the peer's 1)" },
	};

	hs_case(_metadata, h);
}

TEST(handshake_same_roles)
{
	/* two Alices: one told to listen */
	const struct hs h[2] = {
		{ "p", "s", 0, QKD_ALICE, false, "roles are not complementary (both sides are alice)" },
		{ "p", "s", 0, QKD_ALICE, true, "roles are not complementary (both sides are alice)" },
	};

	hs_case(_metadata, h);
}

/* A raw TCP peer speaking whatever bytes the test wants. */
static int raw_listen(const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)atoi(port)) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1))
		return -1;
	return fd;
}

static void put_hdr(uint8_t *h, uint32_t len, uint16_t type, uint8_t kind, uint64_t key)
{
	memset(h, 0, 16);
	for (int i = 0; i < 4; i++)
		h[i] = (uint8_t)(len >> (8 * i));
	h[4] = (uint8_t)type;
	h[5] = (uint8_t)(type >> 8);
	h[6] = kind;
	for (int i = 0; i < 8; i++)
		h[8 + i] = (uint8_t)(key >> (8 * i));
}

/* HELLO of a given version, as a fake Alice would send it. */
static size_t fake_hello(uint8_t *b, unsigned version)
{
	uint8_t *m = b + 16;
	size_t n = 0;

	memcpy(m, "QKDPEER1", 8);
	n = 8;
	m[n++] = (uint8_t)version;
	m[n++] = 0;
	m[n++] = 0; /* alice */
	m[n++] = 0;
	memset(m + n, 0, 4);
	n += 4;
	m[n++] = 4;
	m[n++] = 0;
	memcpy(m + n, "test", 4);
	n += 4;
	m[n++] = 1;
	m[n++] = 0;
	m[n++] = 's';
	put_hdr(b, (uint32_t)n, 1, 0x1e, 0);
	return 16 + n;
}

static int connect_port(const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)atoi(port)) };

	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		close(fd);
		usleep(10000);
	}
	return -1;
}

static int bob_open_expect(struct pair *pr, void *expect)
{
	struct qkd_keypool *kp = qkd_keypool_open(pr->bpool);
	struct qkd_peer_config cfg = pt_cfg(QKD_BOB, pr->port, kp, TMO);
	struct qkd_peer *p = qkd_peer_open(&cfg);

	if (p)
		return 1;
	if (!strstr(qkd_peer_open_error(), expect)) {
		fprintf(stderr, "bob: '%s' lacks '%s'\n", qkd_peer_open_error(), (char *)expect);
		return 2;
	}
	return 0;
}

TEST(handshake_version_mismatch)
{
	struct pair pr;
	uint8_t b[128];
	pid_t bob;
	int fd;

	ASSERT_EQ(0, pt_setup(&pr, 4096));
	bob = pt_spawn(bob_open_expect, &pr, "protocol version mismatch (we speak 1, the peer speaks 2)");
	fd = connect_port(pr.port);
	ASSERT_GE(fd, 0);
	ASSERT_EQ((ssize_t)fake_hello(b, 2), write(fd, b, fake_hello(b, 2)));
	EXPECT_EQ(0, pt_wait(bob));
	close(fd);
	pt_teardown(&pr);
}

TEST(handshake_not_a_peer)
{
	struct pair pr;
	struct qkd_keypool *kp;
	struct qkd_peer_config cfg;
	const char *http = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
	int lfd, fd;
	pid_t pid;

	ASSERT_EQ(0, pt_setup(&pr, 4096));
	lfd = raw_listen(pr.port);
	ASSERT_GE(lfd, 0);
	pid = fork();
	if (pid == 0) {
		fd = accept(lfd, NULL, NULL);
		if (write(fd, http, strlen(http)) < 0)
			_exit(1);
		linger_until_closed(fd);
		_exit(0);
	}
	close(lfd);
	kp = qkd_keypool_open(pr.apool);
	cfg = pt_cfg(QKD_ALICE, pr.port, kp, TMO);
	EXPECT_EQ(NULL, qkd_peer_open(&cfg));
	EXPECT_NE(NULL, strstr(qkd_peer_open_error(), "garbage")) {
		TH_LOG("error: %s", qkd_peer_open_error());
	}
	pt_wait(pid);
	qkd_keypool_close(kp);
	pt_teardown(&pr);
}

TEST(connect_timeout_when_nobody_listens)
{
	struct pair pr;
	struct qkd_keypool *kp;
	struct qkd_peer_config cfg;

	ASSERT_EQ(0, pt_setup(&pr, 4096));
	kp = qkd_keypool_open(pr.apool);
	cfg = pt_cfg(QKD_ALICE, pr.port, kp, 300);
	EXPECT_EQ(NULL, qkd_peer_open(&cfg));
	EXPECT_EQ(ETIMEDOUT, errno);
	EXPECT_NE(NULL, strstr(qkd_peer_open_error(), "cannot connect"));
	qkd_keypool_close(kp);
	pt_teardown(&pr);
}

TEST(ipv6_loopback)
{
	struct pair pr;
	struct qkd_keypool *kp;
	struct qkd_peer_config cfg;
	struct qkd_peer *p;
	struct qkd_msg m;
	pid_t pid;

	ASSERT_EQ(0, pt_setup(&pr, 4096));
	pid = fork();
	if (pid == 0) {
		struct qkd_keypool *bk = qkd_keypool_open(pr.bpool);
		struct qkd_peer_config bc = pt_cfg(QKD_BOB, pr.port, bk, TMO);
		struct qkd_peer *bp;

		bc.address = "::1";
		bp = qkd_peer_open(&bc);
		if (!bp)
			_exit(2);
		if (qkd_recv_expect(bp, 5, 1, &m) != 1 || m.len != 5 || memcmp(m.data, "hello", 5))
			_exit(3);
		_exit(qkd_peer_auth_verify(bp, 5) ? 4 : 0);
	}
	kp = qkd_keypool_open(pr.apool);
	cfg = pt_cfg(QKD_ALICE, pr.port, kp, TMO);
	cfg.address = "::1";
	p = qkd_peer_open(&cfg);
	ASSERT_NE(NULL, p) {
		TH_LOG("open: %s", qkd_peer_open_error());
	}
	EXPECT_EQ(0, qkd_send(p, 5, 1, "hello", 5));
	EXPECT_EQ(0, qkd_peer_auth_verify(p, 5));
	EXPECT_EQ(0, pt_wait(pid));
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	pt_teardown(&pr);
}

TEST(alice_listens_bob_connects)
{
	struct pair pr;
	struct qkd_keypool *kp;
	struct qkd_peer_config cfg;
	struct qkd_peer *p;
	struct qkd_msg m;
	pid_t pid;

	ASSERT_EQ(0, pt_setup(&pr, 4096));
	pid = fork();
	if (pid == 0) {
		struct qkd_keypool *bk = qkd_keypool_open(pr.bpool);
		struct qkd_peer_config bc = pt_cfg(QKD_BOB, pr.port, bk, TMO);
		struct qkd_peer *bp;

		bc.listen = false;
		bp = qkd_peer_open(&bc);
		if (!bp)
			_exit(2);
		if (qkd_recv_expect(bp, 9, 1, &m) != 1 || m.len != 2)
			_exit(3);
		_exit(qkd_peer_auth_verify(bp, 9) ? 4 : 0);
	}
	kp = qkd_keypool_open(pr.apool);
	cfg = pt_cfg(QKD_ALICE, pr.port, kp, TMO);
	cfg.listen = true;
	p = qkd_peer_open(&cfg);
	ASSERT_NE(NULL, p) {
		TH_LOG("open: %s", qkd_peer_open_error());
	}
	EXPECT_EQ(0, qkd_send(p, 9, 1, "hi", 2));
	EXPECT_EQ(0, qkd_peer_auth_verify(p, 9));
	EXPECT_EQ(0, pt_wait(pid));
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	pt_teardown(&pr);
}

/* ---- misbehaving peers ------------------------------------------------- */

enum misbehave { DISCONNECT, DISCONNECT_MID, STALL, GARBAGE, OVERSIZED };


static int bob_misbehave(struct pair *pr, void *arg)
{
	enum misbehave how = *(enum misbehave *)arg;
	struct qkd_keypool *kp = qkd_keypool_open(pr->bpool);
	struct qkd_peer_config cfg = pt_cfg(QKD_BOB, pr->port, kp, TMO);
	struct qkd_peer *p = qkd_peer_open(&cfg);
	uint8_t h[16];
	struct qkd_msg m;

	if (!p)
		return 2;
	/* one honest message first, then misbehave */
	if (qkd_recv_expect(p, 1, 1, &m) != 1 || qkd_send(p, 1, 2, "ok", 2))
		return 3;
	switch (how) {
	case DISCONNECT:
		close(qkd_peer_fd(p));
		_exit(0);
	case DISCONNECT_MID:
		put_hdr(h, 100, 1, 0xe1, 1);
		if (write(qkd_peer_fd(p), h, 16) != 16 || write(qkd_peer_fd(p), "abc", 3) != 3)
			return 4;
		close(qkd_peer_fd(p));
		_exit(0);
	case STALL:
		linger_until_closed(qkd_peer_fd(p));
		_exit(0);
	case GARBAGE:
		if (write(qkd_peer_fd(p), "GARBAGE GARBAGE GARBAGE", 23) != 23)
			return 4;
		linger_until_closed(qkd_peer_fd(p));
		_exit(0);
	case OVERSIZED:
		put_hdr(h, QKD_PEER_MAX_MSG + 1, 1, 0xe1, 1);
		if (write(qkd_peer_fd(p), h, 16) != 16)
			return 4;
		linger_until_closed(qkd_peer_fd(p));
		_exit(0);
	}
	return 5;
}

static void misbehave_case(struct __test_metadata *_metadata, enum misbehave how, int timeout,
			   int want_recv, int want_err, const char *want_msg)
{
	struct pair pr;
	struct qkd_keypool *kp;
	struct qkd_peer_config cfg;
	struct qkd_peer *p;
	struct qkd_msg m;
	pid_t bob;

	ASSERT_EQ(0, pt_setup(&pr, 4096));
	bob = pt_spawn(bob_misbehave, &pr, &how);
	kp = qkd_keypool_open(pr.apool);
	cfg = pt_cfg(QKD_ALICE, pr.port, kp, timeout);
	p = qkd_peer_open(&cfg);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, qkd_send(p, 1, 1, "hi", 2));
	ASSERT_EQ(1, qkd_recv_expect(p, 1, 2, &m));
	EXPECT_EQ(want_recv, qkd_recv(p, &m));
	EXPECT_NE(NULL, strstr(qkd_peer_error(p), want_msg)) {
		TH_LOG("error: %s", qkd_peer_error(p));
	}
	/* and the block yields no key */
	EXPECT_EQ(-want_err, qkd_peer_auth_verify(p, 1));
	EXPECT_EQ(-want_err, qkd_send(p, 1, 1, "x", 1));
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	EXPECT_EQ(0, pt_wait(bob));
	pt_teardown(&pr);
}

TEST(peer_disconnects)
{
	misbehave_case(_metadata, DISCONNECT, TMO, 0, EPIPE, "peer closed the connection");
}

TEST(peer_disconnects_mid_message)
{
	misbehave_case(_metadata, DISCONNECT_MID, TMO, -ECONNRESET, ECONNRESET,
		       "in the middle of a message");
}

TEST(peer_stalls)
{
	misbehave_case(_metadata, STALL, 300, -ETIMEDOUT, ETIMEDOUT, "peer stalled");
}

TEST(peer_sends_garbage)
{
	misbehave_case(_metadata, GARBAGE, TMO, -EBADMSG, EBADMSG, "garbage from peer");
}

TEST(peer_sends_oversized)
{
	misbehave_case(_metadata, OVERSIZED, TMO, -EMSGSIZE, EMSGSIZE, "oversized message");
}

TEST(send_oversized_refused_locally)
{
	struct pair pr;
	struct qkd_keypool *kp;
	struct qkd_peer_config cfg;
	struct qkd_peer *p;
	enum misbehave how = STALL;
	struct qkd_msg m;
	pid_t bob;

	ASSERT_EQ(0, pt_setup(&pr, 4096));
	bob = pt_spawn(bob_misbehave, &pr, &how);
	kp = qkd_keypool_open(pr.apool);
	cfg = pt_cfg(QKD_ALICE, pr.port, kp, TMO);
	p = qkd_peer_open(&cfg);
	ASSERT_NE(NULL, p);
	/* the length is refused before the buffer is touched */
	EXPECT_EQ(-EMSGSIZE, qkd_send(p, 1, 1, "", (size_t)QKD_PEER_MAX_MSG + 1));
	ASSERT_EQ(0, qkd_send(p, 1, 1, "hi", 2));
	ASSERT_EQ(1, qkd_recv_expect(p, 1, 2, &m));
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	pt_wait(bob);
	pt_teardown(&pr);
}

/* ---- key pool misuse --------------------------------------------------- */

TEST(spent_context_key_refused)
{
	struct pair pr;
	struct qkd_keypool *kp;
	uint8_t b[256], key[16];
	size_t n;
	pid_t bob;
	int fd;

	ASSERT_EQ(0, pt_setup(&pr, 4096));
	/* Bob has already used bytes 0..15 */
	kp = qkd_keypool_open(pr.bpool);
	ASSERT_EQ(0, qkd_keypool_take_at(kp, 0, 16, key));
	qkd_keypool_close(kp);
	bob = pt_spawn(bob_open_expect, &pr, "already spent");
	fd = connect_port(pr.port);
	ASSERT_GE(fd, 0);
	/* a replaying "Alice": hello, then a context at the spent offset 0 */
	n = fake_hello(b, 1);
	put_hdr(b + n, 12, 2, 0x1e, 0);
	memset(b + n + 16, 0, 12);
	b[n + 16] = 1; /* seq 1, offset 0 */
	ASSERT_EQ((ssize_t)(n + 28), write(fd, b, n + 28));
	EXPECT_EQ(0, pt_wait(bob));
	close(fd);
	pt_teardown(&pr);
}

static int bob_verify_many(struct pair *pr, void *arg)
{
	struct qkd_keypool *kp = qkd_keypool_open(pr->bpool);
	struct qkd_peer_config cfg = pt_cfg(QKD_BOB, pr->port, kp, TMO);
	struct qkd_peer *p = qkd_peer_open(&cfg);
	int n = *(int *)arg, rc = 0;

	if (!p)
		return 2;
	for (int k = 0; k < n && !rc; k++)
		rc = qkd_peer_auth_verify(p, (uint64_t)k);
	return rc == 0 ? 0 : rc == -EPIPE || rc == -ENOSPC ? 7 : 3;
}

TEST(pool_exhaustion_is_a_clear_error)
{
	struct pair pr;
	struct qkd_keypool *kp;
	struct qkd_peer_config cfg;
	struct qkd_peer *p;
	int n = 10, rc = 0, k;
	pid_t bob;

	/* 16 for the context + 3 closings of 48 bytes, not 4 */
	ASSERT_EQ(0, pt_setup(&pr, 16 + 3 * 48 + 20));
	bob = pt_spawn(bob_verify_many, &pr, &n);
	kp = qkd_keypool_open(pr.apool);
	cfg = pt_cfg(QKD_ALICE, pr.port, kp, TMO);
	p = qkd_peer_open(&cfg);
	ASSERT_NE(NULL, p);
	for (k = 0; k < n && !rc; k++)
		rc = qkd_peer_auth_verify(p, (uint64_t)k);
	EXPECT_EQ(4, k);
	EXPECT_EQ(-ENOSPC, rc);
	EXPECT_NE(NULL, strstr(qkd_peer_error(p), "key pool")) {
		TH_LOG("error: %s", qkd_peer_error(p));
	}
	qkd_peer_close(p);
	EXPECT_EQ(7, pt_wait(bob));
	qkd_keypool_close(kp);
	pt_teardown(&pr);
}

TEST_HARNESS_MAIN
