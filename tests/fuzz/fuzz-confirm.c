// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the confirmation message decoder (what qkd-confirm on
 * Bob's side does with bytes from the peer). Beyond "no crash", a message the
 * decoder accepts must re-encode into exactly the same bytes, its plan must
 * count the tag bits it carries, and the tags of the decoded keys over a key
 * taken from the input must compare equal to themselves.
 */
#include <stdlib.h>
#include <string.h>

#include "qkd/confirm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qkd_confirm_plan p;
	struct qkd_confirm_tag t, u;
	const char *err = NULL;
	uint64_t n = 0, total = 0;
	uint8_t *buf;
	size_t len;

	if (qkd_confirm_decode(data, size, &p, &n, &t, &err)) {
		if (!err)
			abort();
		return 0;
	}
	for (unsigned i = 0; i < p.hashes; i++)
		total += p.tag_bits[i];
	if (total != p.total_bits || !p.hashes || p.hashes > QKD_CONFIRM_MAX_HASHES)
		abort();
	if (qkd_confirm_encode(&p, n, &t, &buf, &len))
		abort();
	if (len != size || memcmp(buf, data, size))
		abort();
	free(buf);
	/* hash the message itself as a key of up to size * 8 bits */
	uint64_t bits = n % (size * 8) + 1;

	memcpy(u.key, t.key, sizeof(u.key));
	qkd_confirm_compute(&p, data, bits, &t);
	qkd_confirm_compute(&p, data, bits, &u);
	if (!qkd_confirm_equal(&p, &t, &u))
		abort();
	return 0;
}
