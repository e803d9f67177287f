// SPDX-License-Identifier: GPL-2.0
/*
 * bench-cascade: Cascade error correction, every schedule side by side.
 *
 * For each schedule, frame length (2^14, 2^18 bits) and QBER (1, 2, 5, 8 %)
 * it runs the same frames twice:
 *   two processes  Alice and Bob forked apart, talking through a message link
 *                  (the authenticated peer channel when libqkd has it, else a
 *                  socket pair with the same framing; the header line says
 *                  which), many frames in flight;
 *   one process    Alice and Bob in one thread calling each other, the
 *                  setting of the public cascade-cpp anchor.
 * and prints the reconciliation efficiency f = disclosed / (n h(e/n)), the
 * frame error rate measured against Alice's key (with the number of frames),
 * round trips per frame and Mbit/s of sifted key. Errors: exactly round(Q n)
 * per frame at uniformly random positions. The baseline is the original
 * 4-pass schedule in one process, measured in the same run; ratios are
 * against it. A final block runs the recommended schedule on many more
 * frames for the frame error rate, and long frames at 2 % for throughput.
 *
 * Usage: bench-cascade [--quick] [--window N]
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qkd/cascade.h"
#include "qkd/frame.h"

/* ---- a buffered, full-duplex message link over a socket -------------- */

struct sock_link {
	int fd;
	uint8_t *out;
	size_t out_len, out_cap;
	uint8_t *in;
	size_t in_pos, in_len, in_cap;
};

#define HDR 16

static int flush_some(struct sock_link *s, bool block)
{
	while (s->out_len) {
		ssize_t n = send(s->fd, s->out, s->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			if (!block)
				return 0;
			return 1; /* caller polls */
		}
		memmove(s->out, s->out + n, s->out_len - (size_t)n);
		s->out_len -= (size_t)n;
	}
	return 0;
}

static int sl_send(void *ctx, uint64_t key_id, uint16_t type, const uint8_t *buf, size_t len)
{
	struct sock_link *s = ctx;

	if (s->out_len + HDR + len > s->out_cap) {
		size_t cap = (s->out_len + HDR + len) * 2;
		uint8_t *p = realloc(s->out, cap);

		if (!p)
			return -ENOMEM;
		s->out = p;
		s->out_cap = cap;
	}
	uint8_t *h = s->out + s->out_len;

	memcpy(h, &(uint32_t){ (uint32_t)len }, 4);
	memcpy(h + 4, &type, 2);
	memset(h + 6, 0, 2);
	memcpy(h + 8, &key_id, 8);
	if (len)
		memcpy(h + HDR, buf, len);
	s->out_len += HDR + len;
	/* Write out large backlogs early; small ones go with the next recv. */
	return s->out_len > (1 << 16) ? (flush_some(s, false) < 0 ? -EPIPE : 0) : 0;
}

static int sl_recv(void *ctx, uint64_t *key_id, uint16_t *type, const uint8_t **buf, size_t *len)
{
	struct sock_link *s = ctx;

	for (;;) {
		size_t avail = s->in_len - s->in_pos;

		if (avail >= HDR) {
			uint32_t l;

			memcpy(&l, s->in + s->in_pos, 4);
			if (avail >= HDR + l) {
				memcpy(type, s->in + s->in_pos + 4, 2);
				memcpy(key_id, s->in + s->in_pos + 8, 8);
				*buf = s->in + s->in_pos + HDR;
				*len = l;
				s->in_pos += HDR + l;
				return 1;
			}
			if (HDR + l > s->in_cap) {
				uint8_t *p = realloc(s->in, HDR + l + (1 << 16));

				if (!p)
					return -ENOMEM;
				s->in = p;
				s->in_cap = HDR + l + (1 << 16);
			}
		}
		if (s->in_pos) {
			memmove(s->in, s->in + s->in_pos, s->in_len - s->in_pos);
			s->in_len -= s->in_pos;
			s->in_pos = 0;
		}
		if (flush_some(s, false) < 0)
			return -EPIPE;
		struct pollfd p = { .fd = s->fd, .events = POLLIN | (s->out_len ? POLLOUT : 0) };

		if (poll(&p, 1, 30000) <= 0)
			return -ETIMEDOUT;
		if (p.revents & POLLOUT && flush_some(s, false) < 0)
			return -EPIPE;
		if (p.revents & (POLLIN | POLLHUP)) {
			ssize_t n = recv(s->fd, s->in + s->in_len, s->in_cap - s->in_len, 0);

			if (n == 0)
				return 0;
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				return -errno;
			if (n > 0)
				s->in_len += (size_t)n;
		}
	}
}

static int sl_drain(struct sock_link *s)
{
	while (s->out_len) {
		struct pollfd p = { .fd = s->fd, .events = POLLOUT };

		if (flush_some(s, false) < 0)
			return -EPIPE;
		if (s->out_len && poll(&p, 1, 30000) <= 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/* ---- frames ------------------------------------------------------------ */

static uint64_t rng;

static uint64_t xr(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct frame {
	struct cascade_job job;
	uint64_t *alice, *bob;
	uint64_t errors;
};

/* Both processes build the same frames from the same seed. */
static struct frame *make_frames(unsigned count, uint64_t n, double q, uint64_t seed, bool bob)
{
	struct frame *f = calloc(count, sizeof(*f));
	uint64_t words = (n + 63) / 64, e = (uint64_t)llround(q * (double)n);

	for (unsigned i = 0; i < count; i++) {
		rng = (seed ^ (i * 0x9e3779b97f4a7c15ull)) | 1;
		f[i].alice = aligned_alloc(64, ((words * 8 + 63) / 64) * 64);
		for (uint64_t w = 0; w < words; w++)
			f[i].alice[w] = xr();
		if (n % 64)
			f[i].alice[words - 1] &= (1ull << (n % 64)) - 1;
		f[i].errors = e;
		f[i].job.key_id = i + 1;
		f[i].job.n = n;
		f[i].job.qber = q;
		f[i].job.key = (uint8_t *)f[i].alice;
		if (!bob)
			continue;
		f[i].bob = aligned_alloc(64, ((words * 8 + 63) / 64) * 64);
		memcpy(f[i].bob, f[i].alice, words * 8);
		for (uint64_t k = 0; k < e;) {
			uint64_t pos = xr() % n;

			if ((f[i].alice[pos / 64] ^ f[i].bob[pos / 64]) >> (pos % 64) & 1)
				continue;
			f[i].bob[pos / 64] ^= 1ull << (pos % 64);
			k++;
		}
		f[i].job.key = (uint8_t *)f[i].bob;
	}
	return f;
}

static void free_frames(struct frame *f, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		free(f[i].alice);
		free(f[i].bob);
	}
	free(f);
}

struct stats {
	unsigned frames, failed, aborted;
	uint64_t bits, disclosed, errors, rounds;
	double fsum, secs;
};

static void account(struct stats *st, struct frame *f)
{
	uint64_t words = (f->job.n + 63) / 64;

	st->frames++;
	st->bits += f->job.n;
	st->rounds += f->job.result.rounds;
	st->disclosed += f->job.result.disclosed;
	st->errors += f->errors;
	st->fsum += cascade_efficiency(f->job.result.disclosed, f->job.n, f->errors);
	if (f->job.status)
		st->aborted++;
	if (memcmp(f->alice, f->bob, words * 8))
		st->failed++;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- one process ------------------------------------------------------- */

static void run_local(enum cascade_schedule sched, uint64_t n, double q, unsigned count,
		      uint64_t seed, struct stats *st)
{
	struct frame *f = make_frames(count, n, q, seed, true);
	struct cascade_config cfg = { .schedule = sched, .max_rounds = 20000 };
	uint8_t sseed[CASCADE_SEED_LEN];
	struct cascade_session *s;
	double t0;

	memset(st, 0, sizeof(*st));
	if (getrandom(sseed, sizeof(sseed), 0) != sizeof(sseed))
		exit(1);
	s = cascade_session_new(sseed);
	t0 = now();
	for (unsigned i = 0; i < count; i++) {
		struct cascade_bob *b = cascade_bob_new(s, &cfg, (uint8_t *)f[i].bob, n, q);
		struct cascade_alice *a = cascade_alice_new(s, (uint8_t *)f[i].alice, n);
		const uint8_t *rq, *an;
		size_t rl, al;
		int r;

		while ((r = cascade_bob_request(b, &rq, &rl)) > 0) {
			int ra = cascade_alice_handle(a, rq, rl, &an, &al);

			if (r == 2 || ra != 1 || cascade_bob_reply(b, an, al))
				break;
		}
		cascade_bob_result(b, &f[i].job.result);
		f[i].job.status = f[i].job.result.ok ? 0 : -ECANCELED;
		cascade_bob_free(b);
		cascade_alice_free(a);
	}
	st->secs = now() - t0;
	for (unsigned i = 0; i < count; i++)
		account(st, &f[i]);
	cascade_session_free(s);
	free_frames(f, count);
}

/* ---- two processes ----------------------------------------------------- */

#define MSG_CONFIG 0x0cf0
#define MSG_NONCE 0x0cf1
#define MSG_READY 0x0cf2
#define MSG_QUIT 0x0cf3

struct config_msg {
	uint32_t sched, count;
	uint64_t n, seed;
	double q;
};

struct drive_ctx {
	struct frame *f;
	unsigned count, next;
	struct stats *st;
};

static struct cascade_job *next_job(void *arg)
{
	struct drive_ctx *c = arg;

	return c->next < c->count ? &c->f[c->next++].job : NULL;
}

static struct cascade_job *find_job(void *arg, uint64_t key_id)
{
	struct drive_ctx *c = arg;

	return key_id >= 1 && key_id <= c->count ? &c->f[key_id - 1].job : NULL;
}

static int job_done(void *arg, struct cascade_job *j)
{
	return 0;
}

static int agree_seed(const struct cascade_link *l, bool bob, uint8_t seed[CASCADE_SEED_LEN])
{
	uint8_t mine[CASCADE_SEED_LEN];
	const uint8_t *theirs;
	uint64_t kid;
	uint16_t type;
	size_t len;

	if (getrandom(mine, sizeof(mine), 0) != sizeof(mine))
		return -EIO;
	if (l->send(l->ctx, 0, MSG_NONCE, mine, sizeof(mine)))
		return -EPIPE;
	if (l->recv(l->ctx, &kid, &type, &theirs, &len) != 1 || type != MSG_NONCE ||
	    len != CASCADE_SEED_LEN)
		return -EPROTO;
	if (bob)
		cascade_seed_combine(theirs, mine, seed);
	else
		cascade_seed_combine(mine, theirs, seed);
	return 0;
}

/* Alice's process: serve configurations until told to quit. */
static int alice_main(const struct cascade_link *l, struct sock_link *sl)
{
	for (;;) {
		const uint8_t *buf;
		uint64_t kid;
		uint16_t type;
		size_t len;
		struct config_msg cm;
		uint8_t seed[CASCADE_SEED_LEN];
		struct cascade_session *s;
		struct drive_ctx c = { 0 };
		struct stats st = { 0 };
		int r;

		if (l->recv(l->ctx, &kid, &type, &buf, &len) != 1)
			return 1;
		if (type == MSG_QUIT)
			return 0;
		if (type != MSG_CONFIG || len != sizeof(cm))
			return 1;
		memcpy(&cm, buf, sizeof(cm));
		c.f = make_frames(cm.count, cm.n, cm.q, cm.seed, false);
		c.count = cm.count;
		c.st = &st;
		if (agree_seed(l, false, seed))
			return 1;
		s = cascade_session_new(seed);
		if (l->send(l->ctx, 0, MSG_READY, NULL, 0))
			return 1;
		r = cascade_alice_serve(s, l, find_job, job_done, &c);
		cascade_session_free(s);
		free_frames(c.f, c.count);
		if (r) {
			fprintf(stderr, "alice: %s\n", strerror(-r));
			return 1;
		}
		sl_drain(sl);
	}
}

static int run_remote(const struct cascade_link *l, enum cascade_schedule sched, uint64_t n,
		      double q, unsigned count, uint64_t seed, unsigned window, struct stats *st)
{
	struct config_msg cm = { .sched = sched, .count = count, .n = n, .seed = seed, .q = q };
	struct cascade_config cfg = { .schedule = sched, .max_rounds = 20000 };
	struct drive_ctx c = { .count = count, .st = st };
	uint8_t sseed[CASCADE_SEED_LEN];
	struct cascade_session *s;
	const uint8_t *buf;
	uint64_t kid;
	uint16_t type;
	size_t len;
	double t0;
	int r;

	memset(st, 0, sizeof(*st));
	c.f = make_frames(count, n, q, seed, true);
	if (l->send(l->ctx, 0, MSG_CONFIG, (const uint8_t *)&cm, sizeof(cm)) ||
	    agree_seed(l, true, sseed) ||
	    l->recv(l->ctx, &kid, &type, &buf, &len) != 1 || type != MSG_READY)
		return -EPROTO;
	s = cascade_session_new(sseed);
	t0 = now();
	r = cascade_bob_drive(s, &cfg, l, window, next_job, job_done, &c);
	st->secs = now() - t0;
	for (unsigned i = 0; i < count; i++)
		account(st, &c.f[i]);
	cascade_session_free(s);
	free_frames(c.f, count);
	return r;
}

/* ---- report ------------------------------------------------------------ */

static void fmt_fer(char *out, size_t cap, const struct stats *st)
{
	if (st->failed)
		snprintf(out, cap, "%.1e (%u/%u)", (double)st->failed / st->frames, st->failed,
			 st->frames);
	else
		snprintf(out, cap, "0 (0/%u)", st->frames);
}

static double mbps(const struct stats *st)
{
	return st->secs > 0 ? (double)st->bits / st->secs / 1e6 : 0;
}

int main(int argc, char **argv)
{
	static const double qbers[] = { 0.01, 0.02, 0.05, 0.08 };
	static const unsigned logn[] = { 14, 18 };
	unsigned window = 16, quick = 0;
	struct sock_link sl = { 0 };
	struct cascade_link link = { .ctx = &sl, .send = sl_send, .recv = sl_recv };
	int sv[2], status, fails = 0;
	uint64_t seed;
	pid_t pid;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--window") && i + 1 < argc) {
			window = (unsigned)atoi(argv[++i]);
		} else {
			printf("usage: bench-cascade [--quick] [--window N]\n\n"
			       "Cascade error correction: efficiency, frame error rate, round trips and\n"
			       "throughput of every schedule at QBER 1, 2, 5, 8 %% on 2^14- and 2^18-bit\n"
			       "frames, Alice and Bob as two processes and in one process, against the\n"
			       "original schedule in one process as baseline. --quick: fewer frames.\n");
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(sv[0]);
		sl.fd = sv[1];
		sl.in_cap = 1 << 20;
		sl.in = malloc(sl.in_cap);
		_exit(alice_main(&link, &sl));
	}
	close(sv[1]);
	sl.fd = sv[0];
	sl.in_cap = 1 << 20;
	sl.in = malloc(sl.in_cap);
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		return 1;

	printf("Cascade: f = disclosed / (n h(e/n)); FER = frames differing from Alice's key after\n"
	       "Cascade / frames run; rt = round trips per frame; Mbit/s of sifted key.\n"
	       "two processes: Alice | Bob over a socket pair (unauthenticated: peer channel not used),\n"
	       "window %u frames in flight; one process: one thread (cascade-cpp's setting).\n\n",
	       window);
	printf("%-9s %-5s %-5s | %-7s %-16s %-6s %-7s | %-7s %-7s | %s\n", "schedule", "n", "QBER",
	       "f", "FER", "rt", "Mbit/s", "f(1p)", "Mbit/s", "x baseline");
	for (unsigned ni = 0; ni < 2; ni++) {
		for (unsigned qi = 0; qi < 4; qi++) {
			uint64_t n = 1ull << logn[ni];
			unsigned count = logn[ni] == 14 ? (quick ? 100 : 300) : (quick ? 8 : 24);
			struct stats base;

			run_local(CASCADE_ORIGINAL, n, qbers[qi], count, seed + qi, &base);
			for (int sc = 0; sc < CASCADE_N_SCHEDULES; sc++) {
				struct stats two, one;
				char fer[32];

				if (run_remote(&link, sc, n, qbers[qi], count, seed + qi, window, &two)) {
					fprintf(stderr, "bench-cascade: link failed\n");
					return 1;
				}
				if (sc == CASCADE_ORIGINAL)
					one = base;
				else
					run_local(sc, n, qbers[qi], count, seed + qi, &one);
				fmt_fer(fer, sizeof(fer), &two);
				printf("%-9s 2^%-3u %4.1f%% | %-7.4f %-16s %-6.0f %-7.1f | %-7.4f %-7.1f | "
				       "%.2fx\n",
				       cascade_schedule_name(sc), logn[ni], qbers[qi] * 100,
				       two.fsum / two.frames, fer, (double)two.rounds / two.frames,
				       mbps(&two), one.fsum / one.frames, mbps(&one),
				       mbps(&two) / mbps(&base));
				fflush(stdout);
			}
		}
		printf("\n");
	}

	/* Frame error rate and throughput of the recommended schedule. */
	printf("tuned schedule, two processes, more frames:\n");
	for (unsigned qi = 0; qi < 4; qi++) {
		struct stats st;
		char fer[32];
		unsigned count = quick ? 500 : 3000;

		if (run_remote(&link, CASCADE_TUNED, 1 << 14, qbers[qi], count, (seed ^ 0x55) + qi,
			       window, &st))
			return 1;
		fmt_fer(fer, sizeof(fer), &st);
		printf("  2^14 QBER %4.1f%%: f %.4f FER %s, %.1f Mbit/s\n", qbers[qi] * 100,
		       st.fsum / st.frames, fer, mbps(&st));
		fails += st.failed;
	}
	{
		struct stats st, base;
		char fer[32];
		unsigned count = quick ? 40 : 200;

		if (run_remote(&link, CASCADE_TUNED, 1 << 18, 0.02, count, seed ^ 0xaa, window, &st))
			return 1;
		run_local(CASCADE_ORIGINAL, 1 << 18, 0.02, count / 4, seed ^ 0xaa, &base);
		fmt_fer(fer, sizeof(fer), &st);
		printf("  2^18 QBER  2.0%%: f %.4f FER %s, %.1f Mbit/s (%.0f round trips/frame); "
		       "baseline original 1 process %.1f Mbit/s: %.2fx\n",
		       st.fsum / st.frames, fer, mbps(&st), (double)st.rounds / st.frames,
		       mbps(&base), mbps(&st) / mbps(&base));
	}
	sl_send(&sl, 0, MSG_QUIT, NULL, 0);
	sl_drain(&sl);
	waitpid(pid, &status, 0);
	return 0;
}
