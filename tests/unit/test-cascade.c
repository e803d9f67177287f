// SPDX-License-Identifier: GPL-2.0
/*
 * Cascade core: Alice and Bob in one process exchanging the real segments.
 *  - every schedule corrects every frame of a deterministic sweep over seeds,
 *    frame lengths (powers of two and odd ones) and QBERs 0.5 - 10 %, and both
 *    keys end up identical;
 *  - the disclosed count equals the parity bits actually on the wire (counted
 *    here from the segments, independently of the library's own counters);
 *  - the schedules produce their documented block sizes;
 *  - shuffles depend on the agreed seed, and seeds are fresh;
 *  - truncated, garbled or out-of-order segments from the peer give an error
 *    on either side, never a crash (this program also runs under ASan/UBSan).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "kselftest_harness.h"
#include "qkd/cascade.h"
#include "qkd/frame.h"

static uint64_t rng_state;

static uint64_t next_rand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static size_t get_varint(const uint8_t *p, size_t len, uint64_t *v)
{
	uint64_t r = 0;

	for (size_t i = 0; i < len && i < 10; i++) {
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			return i + 1;
		}
	}
	return 0;
}

/*
 * Parity bits an answer to this request carries, computed from the request
 * alone: START asks every block of pass 1 and all but the last of each later
 * pass; QUERY asks one bit per entry.
 */
static uint64_t bits_asked(const uint8_t *q, size_t len)
{
	uint64_t n = 0, passes = 0, k = 1, total = 0, count = 0;
	size_t off = 2;

	if (q[0] == 0x02) {
		get_varint(q + 1, len - 1, &count);
		return count;
	}
	if (q[0] != 0x01)
		return 0;
	off += get_varint(q + off, len - off, &n);
	off += get_varint(q + off, len - off, &passes);
	for (uint64_t p = 0; p < passes; p++) {
		off += get_varint(q + off, len - off, &k);
		total += (n + k - 1) / k - (p ? 1 : 0);
	}
	return total;
}

struct run {
	struct cascade_result bob, alice;
	uint64_t wire_bits;	/* parity bits counted on the wire */
	uint64_t wire_bytes;	/* answer payload bytes */
	int status;		/* 0, or the first error */
};

/* One frame, segments shuttled directly. kb is corrected in place. */
static void run_frame(struct cascade_session *s, enum cascade_schedule sched, const uint64_t *ka,
		      uint64_t *kb, uint64_t n, double q, struct run *r)
{
	struct cascade_config cfg = { .schedule = sched, .max_rounds = 100000 };
	struct cascade_bob *b = cascade_bob_new(s, &cfg, (uint8_t *)kb, n, q);
	struct cascade_alice *a = cascade_alice_new(s, (const uint8_t *)ka, n);

	memset(r, 0, sizeof(*r));
	if (!a || !b) {
		r->status = -ENOMEM;
		goto out;
	}
	for (;;) {
		const uint8_t *req, *ans;
		size_t rl, al;
		int rb = cascade_bob_request(b, &req, &rl), ra;

		if (rb <= 0) {
			r->status = rb ? rb : -EPROTO;
			break;
		}
		ra = cascade_alice_handle(a, req, rl, &ans, &al);
		if (rb == 2) {
			r->status = ra == 0 ? 0 : ra;
			break;
		}
		if (ra != 1) {
			r->status = ra < 0 ? ra : -EPROTO;
			break;
		}
		r->wire_bits += bits_asked(req, rl);
		r->wire_bytes += al - 1;
		if ((al - 1) * 8 < bits_asked(req, rl)) {
			r->status = -EMSGSIZE;
			break;
		}
		ra = cascade_bob_reply(b, ans, al);
		if (ra) {
			r->status = ra;
			break;
		}
	}
	cascade_bob_result(b, &r->bob);
	cascade_alice_result(a, &r->alice);
out:
	cascade_bob_free(b);
	cascade_alice_free(a);
}

static void make_keys(uint64_t *ka, uint64_t *kb, uint64_t n, double q)
{
	uint64_t words = (n + 63) / 64;

	for (uint64_t i = 0; i < words; i++)
		ka[i] = next_rand();
	if (n % 64)
		ka[words - 1] &= (1ull << (n % 64)) - 1;
	memcpy(kb, ka, words * 8);
	/* Independent errors with probability q (Bernoulli, like a channel). */
	for (uint64_t i = 0; i < n; i++)
		if ((double)(next_rand() >> 11) * 0x1p-53 < q)
			kb[i / 64] ^= 1ull << (i % 64);
}

static struct cascade_session *session(uint64_t tag)
{
	uint8_t seed[CASCADE_SEED_LEN];

	for (unsigned i = 0; i < sizeof(seed); i++)
		seed[i] = (uint8_t)(tag * 131 + i * 7 + 1);
	return cascade_session_new(seed);
}

TEST(corrects_every_frame_of_a_sweep)
{
	static const double qbers[] = { 0.005, 0.01, 0.02, 0.035, 0.05, 0.08, 0.10 };
	static const uint64_t sizes[] = { 4096, 10007, 16384 };
	uint64_t *ka = malloc(16384 / 8 + 64), *kb = malloc(16384 / 8 + 64);
	unsigned frames = 0;

	ASSERT_TRUE(ka && kb);
	for (int sched = 0; sched < CASCADE_N_SCHEDULES; sched++) {
		for (unsigned qi = 0; qi < sizeof(qbers) / sizeof(qbers[0]); qi++) {
			for (unsigned si = 0; si < 3; si++) {
				/* The 4-pass original fails now and then by design. */
				unsigned seeds = sched == CASCADE_ORIGINAL ? 1 : 4;

				for (unsigned seed = 0; seed < seeds; seed++) {
					struct cascade_session *s = session(seed * 977 + qi);
					uint64_t n = sizes[si];
					struct run r;

					rng_state = 0x9e3779b97f4a7c15ull ^ (seed * 1000003 + qi * 101 + si);
					make_keys(ka, kb, n, qbers[qi]);
					run_frame(s, sched, ka, kb, n, qbers[qi], &r);
					cascade_session_free(s);
					ASSERT_EQ(0, r.status);
					ASSERT_TRUE(r.bob.ok);
					/*
					 * Option 8's later passes use 4096-bit blocks, made
					 * for long frames: below 2^14 bits they add nothing.
					 */
					if (sched != CASCADE_ORIGINAL &&
					    (sched != CASCADE_OPTION8 || n >= 16384))
						ASSERT_EQ(0, memcmp(ka, kb, (n + 7) / 8))
							TH_LOG("%s q=%.3f n=%lu seed=%u",
							       cascade_schedule_name(sched), qbers[qi],
							       (unsigned long)n, seed);
					frames++;
				}
			}
		}
	}
	TH_LOG("%u frames", frames);
	free(ka);
	free(kb);
}

TEST(original_schedule_mostly_corrects)
{
	uint64_t *ka = malloc(16384 / 8), *kb = malloc(16384 / 8);
	unsigned bad = 0;

	for (unsigned seed = 0; seed < 40; seed++) {
		struct cascade_session *s = session(seed);
		struct run r;

		rng_state = 0x1234567ull + seed;
		make_keys(ka, kb, 16384, 0.02);
		run_frame(s, CASCADE_ORIGINAL, ka, kb, 16384, 0.02, &r);
		cascade_session_free(s);
		ASSERT_EQ(0, r.status);
		bad += memcmp(ka, kb, 16384 / 8) != 0;
	}
	/* Published frame error rate of the 4-pass protocol is a few per cent. */
	ASSERT_LE(bad, 4u);
	free(ka);
	free(kb);
}

TEST(disclosed_equals_parities_sent)
{
	uint64_t *ka = malloc(16384 / 8), *kb = malloc(16384 / 8);

	for (int sched = 0; sched < CASCADE_N_SCHEDULES; sched++) {
		for (unsigned i = 0; i < 3; i++) {
			struct cascade_session *s = session(i + 50);
			double q = 0.01 + 0.03 * i;
			uint64_t errors = 0;
			struct run r;

			rng_state = 0xabcdefull + i + 10 * sched;
			make_keys(ka, kb, 16384, q);
			for (unsigned w = 0; w < 16384 / 64; w++)
				errors += (uint64_t)__builtin_popcountll(ka[w] ^ kb[w]);
			run_frame(s, sched, ka, kb, 16384, q, &r);
			cascade_session_free(s);
			ASSERT_EQ(0, r.status);
			ASSERT_GT(r.wire_bits, 0u);
			ASSERT_EQ(r.wire_bits, r.bob.disclosed);
			ASSERT_EQ(r.wire_bits, r.alice.disclosed);
			/* Answers are packed: never more than a byte per 8 bits asked + 1. */
			ASSERT_LE(r.wire_bytes * 8, r.wire_bits + 7 * (r.bob.rounds + 1));
			/* Bob only ever flips real errors. */
			ASSERT_LE(r.bob.corrected, errors);
			ASSERT_EQ(r.bob.corrected, r.alice.corrected);
			if (!memcmp(ka, kb, 16384 / 8)) {
				ASSERT_EQ(errors, r.bob.corrected);
				/* f reported = disclosed / (n h(e/n)), and > 1 (Shannon). */
				double f = (double)r.bob.disclosed /
					   (16384 * cascade_binary_entropy((double)errors / 16384));
				ASSERT_LT(fabs(f - r.bob.efficiency), 1e-9);
				ASSERT_GT(r.bob.efficiency, 1.0);
			}
		}
	}
	free(ka);
	free(kb);
}

TEST(schedules_have_documented_block_sizes)
{
	uint32_t k[CASCADE_MAX_PASSES];
	const uint64_t n = 1 << 18;

	/* original: 4 passes, ceil(0.73/Q) then doubling */
	ASSERT_EQ(4, cascade_block_sizes(CASCADE_ORIGINAL, n, 0.02, k));
	ASSERT_EQ(37u, k[0]);
	ASSERT_EQ(74u, k[1]);
	ASSERT_EQ(148u, k[2]);
	ASSERT_EQ(296u, k[3]);
	/* Yan et al.: 10 passes, ceil(0.8/Q), 5 k1, then n/2 */
	ASSERT_EQ(10, cascade_block_sizes(CASCADE_YAN, n, 0.02, k));
	ASSERT_EQ(40u, k[0]);
	ASSERT_EQ(200u, k[1]);
	for (int i = 2; i < 10; i++)
		ASSERT_EQ(n / 2, k[i]);
	/* option 7: 14 passes, 2^ceil(log2(1/Q)), 4 k1, then n/2 */
	ASSERT_EQ(14, cascade_block_sizes(CASCADE_OPTION7, n, 0.02, k));
	ASSERT_EQ(64u, k[0]);
	ASSERT_EQ(256u, k[1]);
	for (int i = 2; i < 14; i++)
		ASSERT_EQ(n / 2, k[i]);
	ASSERT_EQ(14, cascade_block_sizes(CASCADE_OPTION7, n, 0.08, k));
	ASSERT_EQ(16u, k[0]);
	ASSERT_EQ(64u, k[1]);
	/* option 8: a = log2(1/Q) - 0.5; 2^ceil(a), 2^ceil((a+12)/2), 4096 */
	ASSERT_EQ(14, cascade_block_sizes(CASCADE_OPTION8, n, 0.02, k));
	ASSERT_EQ(64u, k[0]);
	ASSERT_EQ(512u, k[1]);
	for (int i = 2; i < 14; i++)
		ASSERT_EQ(4096u, k[i]);
	/* tuned: 2^ceil(log2(0.5/Q)), 8 k1 (16 k1 on long frames above 6.5 %), n/2 */
	ASSERT_EQ(20, cascade_block_sizes(CASCADE_TUNED, n, 0.02, k));
	ASSERT_EQ(32u, k[0]);
	ASSERT_EQ(256u, k[1]);
	for (int i = 2; i < 20; i++)
		ASSERT_EQ(n / 2, k[i]);
	ASSERT_EQ(20, cascade_block_sizes(CASCADE_TUNED, n, 0.08, k));
	ASSERT_EQ(8u, k[0]);
	ASSERT_EQ(128u, k[1]);
	ASSERT_EQ(20, cascade_block_sizes(CASCADE_TUNED, 16384, 0.08, k));
	ASSERT_EQ(8u, k[0]);
	ASSERT_EQ(64u, k[1]);
	/* the initial block follows the QBER: smaller blocks for more errors */
	for (int sched = 0; sched < CASCADE_N_SCHEDULES; sched++) {
		uint32_t k2[CASCADE_MAX_PASSES];

		ASSERT_GT(cascade_block_sizes(sched, n, 0.01, k), 0);
		ASSERT_GT(cascade_block_sizes(sched, n, 0.08, k2), 0);
		ASSERT_GT(k[0], k2[0]);
	}
	/* odd length: n/2 rounds up, sizes never exceed n */
	ASSERT_EQ(14, cascade_block_sizes(CASCADE_OPTION7, 10007, 0.02, k));
	ASSERT_EQ(5004u, k[13]);
	ASSERT_EQ(4, cascade_block_sizes(CASCADE_ORIGINAL, 50, 0.001, k));
	ASSERT_EQ(50u, k[0]);
	/* bad input */
	ASSERT_EQ(-EINVAL, cascade_block_sizes(CASCADE_OPTION7, 0, 0.02, k));
	ASSERT_EQ(-EINVAL, cascade_block_sizes(CASCADE_OPTION7, n, 0.5, k));
	ASSERT_EQ(-EINVAL, cascade_block_sizes(CASCADE_OPTION7, n, NAN, k));
	ASSERT_EQ(-EINVAL, cascade_block_sizes(CASCADE_N_SCHEDULES, n, 0.02, k));
	/* names round-trip */
	for (int sched = 0; sched < CASCADE_N_SCHEDULES; sched++)
		ASSERT_EQ(sched, cascade_schedule_parse(cascade_schedule_name(sched)));
	ASSERT_EQ(-EINVAL, cascade_schedule_parse("nonsense"));
}

/* First request of a frame after START: it names sub-blocks of shuffled passes. */
static int transcript(const uint8_t seed[CASCADE_SEED_LEN], uint8_t *out, size_t cap, size_t *len)
{
	uint64_t *ka = malloc(4096 / 8), *kb = malloc(4096 / 8);
	struct cascade_session *s = cascade_session_new(seed);
	struct cascade_config cfg = { .schedule = CASCADE_OPTION7 };
	struct cascade_bob *b;
	struct cascade_alice *a;
	int ret = -1;

	rng_state = 42;
	make_keys(ka, kb, 4096, 0.05);
	b = cascade_bob_new(s, &cfg, (uint8_t *)kb, 4096, 0.05);
	a = cascade_alice_new(s, (uint8_t *)ka, 4096);
	*len = 0;
	/* Concatenate every request until pass 2 (shuffled) has been asked. */
	for (int i = 0; i < 40; i++) {
		const uint8_t *req, *ans;
		size_t rl, al;

		if (cascade_bob_request(b, &req, &rl) != 1 ||
		    cascade_alice_handle(a, req, rl, &ans, &al) != 1 ||
		    cascade_bob_reply(b, ans, al))
			break;
		if (*len + rl > cap)
			break;
		memcpy(out + *len, req, rl);
		*len += rl;
		ret = 0;
	}
	cascade_bob_free(b);
	cascade_alice_free(a);
	cascade_session_free(s);
	free(ka);
	free(kb);
	return ret;
}

TEST(shuffles_follow_the_agreed_seed_which_is_fresh)
{
	uint8_t na[CASCADE_SEED_LEN], nb[CASCADE_SEED_LEN], s1[CASCADE_SEED_LEN],
		s2[CASCADE_SEED_LEN];
	static uint8_t t1[1 << 20], t2[1 << 20];
	size_t l1, l2;

	/* Same key and errors, different seeds: different parity questions. */
	ASSERT_EQ(CASCADE_SEED_LEN, getrandom(na, sizeof(na), 0));
	ASSERT_EQ(CASCADE_SEED_LEN, getrandom(nb, sizeof(nb), 0));
	cascade_seed_combine(na, nb, s1);
	ASSERT_EQ(CASCADE_SEED_LEN, getrandom(nb, sizeof(nb), 0));
	cascade_seed_combine(na, nb, s2);
	/* a fresh nonce from either side gives a fresh seed */
	ASSERT_NE(0, memcmp(s1, s2, sizeof(s1)));
	ASSERT_EQ(0, transcript(s1, t1, sizeof(t1), &l1));
	ASSERT_EQ(0, transcript(s2, t2, sizeof(t2), &l2));
	ASSERT_TRUE(l1 != l2 || memcmp(t1, t2, l1));
	/* and the same seed reproduces them exactly (both sides agree) */
	ASSERT_EQ(0, transcript(s1, t2, sizeof(t2), &l2));
	ASSERT_EQ(l1, l2);
	ASSERT_EQ(0, memcmp(t1, t2, l1));
}

/* Run a frame but hand one side a damaged copy of the peer's segment number 'at'. */
static int damaged(int to_bob, unsigned at, unsigned how, uint64_t salt)
{
	uint64_t *ka = malloc(8192 / 8), *kb = malloc(8192 / 8);
	struct cascade_session *s = session(salt);
	struct cascade_config cfg = { .schedule = CASCADE_OPTION7, .max_rounds = 100000 };
	struct cascade_bob *b;
	struct cascade_alice *a;
	static uint8_t buf[1 << 20];
	int ret = 0;

	rng_state = 7 + salt;
	make_keys(ka, kb, 8192, 0.03);
	b = cascade_bob_new(s, &cfg, (uint8_t *)kb, 8192, 0.03);
	a = cascade_alice_new(s, (uint8_t *)ka, 8192);
	for (unsigned i = 0; ret == 0; i++) {
		const uint8_t *req, *ans;
		size_t rl, al;
		int rb = cascade_bob_request(b, &req, &rl);

		if (rb != 1) {
			ret = 1; /* finished without seeing the damage */
			break;
		}
		if (!to_bob && i == at) {
			size_t l = rl < sizeof(buf) ? rl : sizeof(buf);

			memcpy(buf, req, l);
			switch (how % 4) {
			case 0: l = (size_t)(salt % (l + 1)); break;	/* truncated */
			case 1: buf[salt % l] ^= (uint8_t)(1 + salt % 255); break;
			case 2: memset(buf + 1, 0xff, l - 1); break;	/* huge varints */
			case 3: l = l + 3 < sizeof(buf) ? l + 3 : l; break; /* trailing junk */
			}
			ret = cascade_alice_handle(a, buf, l, &ans, &al);
			if (ret == 1)
				ret = cascade_bob_reply(b, ans, al);
			break;
		}
		if (cascade_alice_handle(a, req, rl, &ans, &al) != 1) {
			ret = 2;
			break;
		}
		if (to_bob && i == at) {
			size_t l = al < sizeof(buf) ? al : sizeof(buf);

			memcpy(buf, ans, l);
			switch (how % 3) {
			case 0: l = l ? (size_t)(salt % l) : 0; break;
			case 1: l = l + 1 < sizeof(buf) ? l + 1 : l; break;
			case 2: buf[0] ^= 0x07; break;
			}
			ret = cascade_bob_reply(b, buf, l);
			break;
		}
		if (cascade_bob_reply(b, ans, al)) {
			ret = 3;
			break;
		}
	}
	cascade_bob_free(b);
	cascade_alice_free(a);
	cascade_session_free(s);
	free(ka);
	free(kb);
	return ret;
}

TEST(malformed_segments_are_refused)
{
	const uint8_t *out;
	size_t len;
	uint64_t key[64] = { 0 };
	struct cascade_session *s = session(1);
	struct cascade_alice *a = cascade_alice_new(s, (uint8_t *)key, 4096);
	struct cascade_config cfg = { .schedule = CASCADE_OPTION7 };
	static const uint8_t junk[][8] = {
		{ 0x00 }, { 0x02, 0x01, 0x00, 0x00, 0x02 },	/* query before start */
		{ 0x01, 0x01 }, { 0x03 }, { 0x99, 0x01 },
	};

	ASSERT_NE(NULL, a);
	ASSERT_EQ(-EBADMSG, cascade_alice_handle(a, junk[0], 0, &out, &len));
	for (unsigned i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		ASSERT_EQ(-EBADMSG, cascade_alice_handle(a, junk[i], i == 1 ? 5 : 2, &out, &len));
	}
	cascade_alice_free(a);
	cascade_session_free(s);

	/* Damage in transit: Alice refuses bad requests, Bob bad answers. */
	for (unsigned at = 0; at < 6; at++) {
		for (unsigned how = 0; how < 4; how++) {
			int r = damaged(0, at, how, at * 31 + how);

			/* A flipped bit may still form a valid question; then it is answered. */
			if (how != 1) {
				ASSERT_TRUE(r < 0) TH_LOG("to alice at %u how %u: %d", at, how, r);
			} else {
				ASSERT_TRUE(r <= 0) TH_LOG("to alice at %u how %u: %d", at, how, r);
			}
			r = damaged(1, at, how, at * 17 + how + 1);
			ASSERT_EQ(-EBADMSG, r) TH_LOG("to bob at %u how %u", at, how);
		}
	}
	/* bad construction arguments */
	ASSERT_EQ(NULL, cascade_alice_new(NULL, (uint8_t *)key, 64));
	s = session(2);
	ASSERT_EQ(NULL, cascade_alice_new(s, (uint8_t *)key, 0));
	ASSERT_EQ(NULL, cascade_alice_new(s, (uint8_t *)key + 1, 64));
	ASSERT_EQ(NULL, cascade_bob_new(s, &cfg, (uint8_t *)key, 64, 0.6));
	cfg.schedule = 99;
	ASSERT_EQ(NULL, cascade_bob_new(s, &cfg, (uint8_t *)key, 64, 0.02));
	cascade_session_free(s);
}

/*
 * A forged answer of the right length (parity bits flipped in transit, had
 * the channel not been authenticated) must end the frame, corrected or
 * aborted, within the round limit: never a search that flips the same bits
 * back and forth without asking anything.
 */
TEST(forged_parities_end_the_frame)
{
	uint64_t *ka = malloc(20000 / 8 + 8), *kb = malloc(20000 / 8 + 8);
	unsigned aborted = 0, runs = 0;

	for (unsigned at = 0; at < 12; at++) {
		for (unsigned bit = 0; bit < 8; bit++, runs++) {
			struct cascade_session *s = session(at * 8 + bit);
			struct cascade_config cfg = { .schedule = CASCADE_TUNED, .max_rounds = 3000 };
			struct cascade_bob *b;
			struct cascade_alice *a;
			struct cascade_result r;
			static uint8_t buf[1 << 16];
			int rb = 1;

			rng_state = 1000 + at;
			make_keys(ka, kb, 20000, 0.04);
			b = cascade_bob_new(s, &cfg, (uint8_t *)kb, 20000, 0.04);
			a = cascade_alice_new(s, (uint8_t *)ka, 20000);
			for (unsigned round = 0; rb == 1; round++) {
				const uint8_t *req, *ans;
				size_t rl, al;

				rb = cascade_bob_request(b, &req, &rl);
				if (rb != 1)
					break;
				ASSERT_EQ(1, cascade_alice_handle(a, req, rl, &ans, &al));
				ASSERT_LE(al, sizeof(buf));
				memcpy(buf, ans, al);
				/* flip one parity bit of the answer to round 'at' */
				if (round == at && al > 1)
					buf[1 + (bit * 7) % (al - 1)] ^= (uint8_t)(1u << bit);
				ASSERT_EQ(0, cascade_bob_reply(b, buf, al));
			}
			cascade_bob_result(b, &r);
			ASSERT_TRUE(r.done);
			ASSERT_LE(r.rounds, 3000u);
			aborted += !r.ok;
			cascade_bob_free(b);
			cascade_alice_free(a);
			cascade_session_free(s);
		}
	}
	TH_LOG("%u of %u frames with a forged parity aborted by Bob", aborted, runs);
	free(ka);
	free(kb);
}

TEST(random_garbage_never_crashes)
{
	static uint8_t buf[512];
	uint64_t key[128];
	struct cascade_session *s = session(3);

	rng_state = 99;
	for (int i = 0; i < 128; i++)
		key[i] = next_rand();
	for (int iter = 0; iter < 3000; iter++) {
		struct cascade_alice *a = cascade_alice_new(s, (uint8_t *)key, 8000);
		const uint8_t *out;
		size_t len = next_rand() % sizeof(buf), olen;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)next_rand();
		/* A plausible START first half the time, then garbage. */
		if (iter & 1) {
			static const uint8_t start[] = { 0x01, 0x01, 0xc0, 0x3e, 0x02, 0x40, 0x80, 0x02 };

			ASSERT_EQ(1, cascade_alice_handle(a, start, sizeof(start), &out, &olen));
			buf[0] = 0x02;
		}
		int r = cascade_alice_handle(a, buf, len, &out, &olen);

		ASSERT_TRUE(r == 1 || r == 0 || r == -EBADMSG || r == -ECANCELED);
		cascade_alice_free(a);
	}
	cascade_session_free(s);
}

TEST_HARNESS_MAIN
