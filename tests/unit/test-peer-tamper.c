// SPDX-License-Identifier: GPL-2.0
/*
 * A man in the middle flips one bit: Alice talks to a forwarding TCP proxy
 * (a thread of the test) that relays to Bob (another process) and flips one
 * chosen bit of one chosen message in one direction. The session exchanges
 * messages for key id 7 (closed at once with qkd_peer_auth_verify) and key
 * id 8 (deferred into a frame and closed with qkd_peer_auth_verify_frame, as
 * qkd-auth does). For every message of the session, in both directions, and
 * several bits of each (header fields and body), the block that message
 * belongs to must fail authentication on BOTH sides; a flip in the very last
 * message of a closing exchange (V3 / FV3) fails Bob, who receives it (Alice
 * has already decided: see Documentation/authentication.md). A flip in the
 * handshake or context set-up fails every block. Without a flip, everything
 * verifies (the proxy is transparent).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>

#include "kselftest_harness.h"
#include "peer-test.h"
#include "qkd/frame.h"

/* Flips that desynchronise the closing wait for this long; honest runs use 3 s. */
#define TMO_FLIP 200
#define TMO_OK 3000

/* Wire order of the session's messages (see session() below). */
enum { A_HELLO, A_CTX, A_M0, A_M1, A_M2, A_M3, A_V1, A_V3, A_D0, A_END, A_FV1, A_FV3, A_N };
enum { B_HELLO, B_ACK, B_R0, B_R1, B_V2, B_E0, B_END, B_FV2, B_N };

struct flip {
	int dir;	/* 0: Alice->Bob, 1: Bob->Alice, -1: none */
	int msg;	/* index in that direction */
	size_t byte;	/* offset in the message, header included */
	int bit;
};

struct proxy {
	int lfd;
	const char *bob_port;
	struct flip f;
	volatile bool flipped;
	size_t msg_size[2][16]; /* sizes seen, for choosing body bits */
};

struct dirstate {
	uint8_t hdr[16];
	size_t pos, total;
	int idx;
};

static int connect_port(const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)atoi(port)) };

	for (int i = 0; i < 300; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		close(fd);
		usleep(10000);
	}
	return -1;
}

/* Track message boundaries (from the original bytes) and flip the chosen bit. */
static void relay_bytes(struct proxy *px, int dir, struct dirstate *st, uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t orig = b[i];

		if (st->idx >= 0 && px->f.dir == dir && px->f.msg == st->idx &&
		    px->f.byte == st->pos) {
			b[i] ^= (uint8_t)(1u << px->f.bit);
			px->flipped = true;
		}
		if (st->idx < 0)
			continue; /* lost track after a length flip: just relay */
		if (st->pos < 16)
			st->hdr[st->pos] = orig;
		st->pos++;
		if (st->pos == 16)
			st->total = 16 + ((size_t)st->hdr[0] | (size_t)st->hdr[1] << 8 |
					  (size_t)st->hdr[2] << 16 | (size_t)st->hdr[3] << 24);
		if (st->pos >= 16 && st->pos == st->total) {
			if (st->idx < 16)
				px->msg_size[dir][st->idx] = st->total;
			st->idx++;
			st->pos = 0;
		}
	}
}

static void *proxy_main(void *arg)
{
	struct proxy *px = arg;
	struct dirstate st[2] = { { .idx = 0 }, { .idx = 0 } };
	int a = accept(px->lfd, NULL, NULL), b;
	struct pollfd pfd[2];
	bool open[2] = { true, true };
	uint8_t buf[65536];

	if (a < 0)
		return NULL;
	b = connect_port(px->bob_port);
	if (b < 0) {
		close(a);
		return NULL;
	}
	pfd[0].fd = a;
	pfd[1].fd = b;
	while (open[0] || open[1]) {
		pfd[0].events = open[0] ? POLLIN : 0;
		pfd[1].events = open[1] ? POLLIN : 0;
		if (poll(pfd, 2, 5000) <= 0)
			break;
		for (int d = 0; d < 2; d++) {
			ssize_t n;

			if (!(pfd[d].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pfd[d].fd, buf, sizeof(buf));
			if (n <= 0) {
				open[d] = false;
				shutdown(pfd[1 - d].fd, SHUT_WR);
				continue;
			}
			relay_bytes(px, d, &st[d], buf, (size_t)n);
			if (send(pfd[1 - d].fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
				open[d] = false;
		}
	}
	close(a);
	close(b);
	return NULL;
}

/*
 * One session. Returns bit 0 if key 7 failed, bit 1 if key 8 failed
 * (any error counts: the block yields no key).
 */
static int session(struct pair *pr, enum qkd_role role, const char *port, int tmo)
{
	struct qkd_keypool *kp = qkd_keypool_open(role == QKD_ALICE ? pr->apool : pr->bpool);
	struct qkd_peer_config cfg = pt_cfg(role, port, kp, tmo);
	struct qkd_frame f;
	uint8_t buf[512];
	struct qkd_msg m;
	struct qkd_peer *p;
	int res7, res8;

	if (!kp)
		return 3;
	p = qkd_peer_open(&cfg);
	if (!p) {
		qkd_keypool_close(kp);
		return 3;
	}
	pt_fill(buf, sizeof(buf), 1234);
	memset(&f, 0, sizeof(f));
	f.key_id = 8;
	if (role == QKD_ALICE) {
		qkd_send(p, 7, 1, buf, 40);
		qkd_send(p, 7, 2, buf, 0);
		qkd_send(p, 7, 3, buf, 300);
		qkd_recv(p, &m);
		qkd_recv(p, &m);
		qkd_send(p, 7, 4, buf, 20);
		res7 = qkd_peer_auth_verify(p, 7);
		qkd_send(p, 8, 1, buf, 64);
		qkd_recv(p, &m);
	} else {
		qkd_recv(p, &m);
		qkd_recv(p, &m);
		qkd_recv(p, &m);
		qkd_send(p, 7, 11, buf, 33);
		qkd_send(p, 7, 12, buf, 17);
		qkd_recv(p, &m);
		res7 = qkd_peer_auth_verify(p, 7);
		qkd_recv(p, &m);
		qkd_send(p, 8, 21, buf, 10);
	}
	res8 = qkd_peer_auth_defer(p, 8, &f);
	if (!res8)
		res8 = qkd_peer_auth_verify_frame(p, &f);
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	return (res7 ? 1 : 0) | (res8 ? 2 : 0);
}

static int bob_main(struct pair *pr, void *arg)
{
	return session(pr, QKD_BOB, pr->port, *(int *)arg);
}

struct outcome {
	int alice, bob;
	bool flipped;
	size_t sizes[2][16];
};

static struct outcome run(struct flip f, int tmo)
{
	struct pair pr;
	struct proxy px = { .f = f };
	struct outcome o = { -1, -1, false, { { 0 } } };
	char pport[16];
	pthread_t th;
	pid_t bob;

	if (pt_setup(&pr, 8192))
		return o;
	snprintf(pport, sizeof(pport), "%d", pt_free_port());
	{
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
					 .sin_port = htons((uint16_t)atoi(pport)) };
		int one = 1;

		px.lfd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(px.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(px.lfd, (struct sockaddr *)&a, sizeof(a)) || listen(px.lfd, 1))
			return o;
	}
	px.bob_port = pr.port;
	bob = pt_spawn(bob_main, &pr, &tmo);
	pthread_create(&th, NULL, proxy_main, &px);
	o.alice = session(&pr, QKD_ALICE, pport, tmo);
	o.bob = pt_wait(bob);
	pthread_join(th, NULL);
	close(px.lfd);
	o.flipped = px.flipped;
	memcpy(o.sizes, px.msg_size, sizeof(o.sizes));
	pt_teardown(&pr);
	return o;
}

static const char *const a_names[] = { "HELLO", "CTX", "m0", "m1", "m2", "m3", "V1", "V3",
				       "d0", "END", "FV1", "FV3" };
static const char *const b_names[] = { "HELLO", "CTX_ACK", "r0", "r1", "V2", "e0", "END",
				       "FV2" };

/* Which blocks a flip in this message must fail, on both sides / on Bob only. */
static void expected(int dir, int msg, int *both, int *bob_only)
{
	*both = 0;
	*bob_only = 0;
	if (dir == 0) {
		switch (msg) {
		case A_HELLO: case A_CTX: *both = 3; break;
		case A_M0: case A_M1: case A_M2: case A_M3: case A_V1: *both = 1; break;
		case A_V3: *bob_only = 1; break;
		case A_D0: case A_END: case A_FV1: *both = 2; break;
		case A_FV3: *bob_only = 2; break;
		}
	} else {
		switch (msg) {
		case B_HELLO: case B_ACK: *both = 3; break;
		case B_R0: case B_R1: case B_V2: *both = 1; break;
		case B_E0: case B_END: case B_FV2: *both = 2; break;
		}
	}
}

FIXTURE(tamper)
{
	int unused;
};

FIXTURE_SETUP(tamper)
{
}

FIXTURE_TEARDOWN(tamper)
{
}

TEST_F(tamper, no_flip_everything_verifies)
{
	struct outcome o = run((struct flip){ .dir = -1 }, TMO_OK);

	EXPECT_EQ(0, o.alice);
	EXPECT_EQ(0, o.bob);
	EXPECT_FALSE(o.flipped);
	/* the session has the messages the expectations assume */
	for (int m = 0; m < A_N; m++)
		EXPECT_NE(0u, o.sizes[0][m]);
	for (int m = 0; m < B_N; m++)
		EXPECT_NE(0u, o.sizes[1][m]);
	EXPECT_EQ(0u, o.sizes[0][A_N]);
	EXPECT_EQ(0u, o.sizes[1][B_N]);
}

TEST_F_TIMEOUT(tamper, any_single_bit_flip_fails_the_block_on_both_sides, 240)
{
	struct outcome ref = run((struct flip){ .dir = -1 }, TMO_OK);
	int cases = 0, bad = 0;

	ASSERT_EQ(0, ref.alice);
	ASSERT_EQ(0, ref.bob);
	for (int dir = 0; dir < 2; dir++) {
		int n = dir ? B_N : A_N;

		for (int msg = 0; msg < n; msg++) {
			size_t size = ref.sizes[dir][msg];
			/* header: kind, ctx, type and key id bits; then body bits */
			struct { size_t byte; int bit; } pos[6] = {
				{ 6, 3 }, { 7, 0 }, { 4, 1 }, { 8, 2 },
			};
			int np = 4;

			for (int i = 0; i < 2 && size > 16; i++) {
				uint32_t r;

				pt_rnd(&r, sizeof(r));
				pos[np].byte = 16 + r % (size - 16);
				pos[np].bit = (int)(r >> 24) % 8;
				np++;
			}
			for (int i = 0; i < np; i++) {
				struct flip f = { dir, msg, pos[i].byte, pos[i].bit };
				struct outcome o = run(f, TMO_FLIP);

				/* a loaded machine can stall an honest step past the short
				 * timeout before the message is even sent: try once more */
				if (!o.flipped)
					o = run(f, 5 * TMO_FLIP);
				int both, bob_only;
				bool ok;

				expected(dir, msg, &both, &bob_only);
				ok = o.flipped && (o.alice & both) == both && (o.bob & both) == both &&
				     (o.bob & bob_only) == bob_only;
				cases++;
				if (getenv("TAMPER_VERBOSE"))
					TH_LOG("%s %s byte %zu bit %d: alice %d bob %d", dir ? "B->A" : "A->B",
					       dir ? b_names[msg] : a_names[msg], f.byte, f.bit, o.alice, o.bob);
				if (!ok) {
					bad++;
					TH_LOG("%s %s byte %zu bit %d: alice %d bob %d (must fail "
					       "%d on both, %d on bob)%s",
					       dir ? "B->A" : "A->B",
					       dir ? b_names[msg] : a_names[msg], f.byte, f.bit,
					       o.alice, o.bob, both, bob_only,
					       o.flipped ? "" : " [not flipped]");
				}
			}
		}
	}
	ksft_print_msg("%d single-bit flips over %d messages, %d failures to detect\n", cases,
		       A_N + B_N, bad);
	EXPECT_EQ(0, bad);
}

TEST_F(tamper, v1_chunk_length_flip_fails_only_its_block)
{
	/*
	 * V1's body: pool offset (8), chunk length (4), offset in the chunk (4),
	 * context (1), tag. The chunk length selects no pad bytes, so the tag
	 * cannot catch its change: Bob must refuse a length Alice cannot have
	 * sent. Each bit of its low two bytes fails key 7 on both sides and
	 * leaves key 8, which reuses the same chunk, intact.
	 */
	for (int bit = 0; bit < 16; bit++) {
		struct flip f = { 0, A_V1, 16 + 8 + bit / 8, bit % 8 };
		struct outcome o = run(f, TMO_FLIP);

		if (!o.flipped)
			o = run(f, 5 * TMO_FLIP);
		ASSERT_TRUE(o.flipped);
		EXPECT_EQ(1, o.alice) TH_LOG("chunk length bit %d: alice %d", bit, o.alice);
		EXPECT_EQ(1, o.bob) TH_LOG("chunk length bit %d: bob %d", bit, o.bob);
	}
}

TEST_F(tamper, body_flip_fails_only_its_block)
{
	/* a flipped body bit of a key-7 message fails key 7 and nothing else */
	struct outcome o = run((struct flip){ 0, A_M2, 16 + 100, 5 }, TMO_OK);

	EXPECT_TRUE(o.flipped);
	EXPECT_EQ(1, o.alice);
	EXPECT_EQ(1, o.bob);
	o = run((struct flip){ 1, B_R0, 16 + 3, 0 }, TMO_OK);
	EXPECT_TRUE(o.flipped);
	EXPECT_EQ(1, o.alice);
	EXPECT_EQ(1, o.bob);
	/* and one of key 8 fails key 8 only */
	o = run((struct flip){ 1, B_E0, 16 + 9, 7 }, TMO_OK);
	EXPECT_TRUE(o.flipped);
	EXPECT_EQ(2, o.alice);
	EXPECT_EQ(2, o.bob);
}

TEST_F(tamper, length_field_flip_breaks_the_channel)
{
	/* framing is lost: a clear channel error on both sides, no key */
	struct outcome o = run((struct flip){ 0, A_M0, 0, 3 }, TMO_FLIP);

	EXPECT_TRUE(o.flipped);
	EXPECT_EQ(3, o.alice);
	EXPECT_EQ(3, o.bob);
}

TEST_HARNESS_MAIN
