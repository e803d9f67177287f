// SPDX-License-Identifier: GPL-2.0
/*
 * Differential libFuzzer target for Toeplitz hashing: the first four bytes
 * choose n and m (1..4096 each), the rest fills seed and input (repeated);
 * the FFT product must equal the naive matrix-vector product, bit for bit,
 * with every padding bit of the output cleared.
 */
#include <stdlib.h>
#include <string.h>

#include "qkd/toeplitz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	uint64_t n = 1 + ((data[0] | (unsigned)data[1] << 8) % 4096);
	uint64_t m = 1 + ((data[2] | (unsigned)data[3] << 8) % 4096);
	size_t sw = (size_t)((n + m - 1 + 63) / 64), iw = (size_t)((n + 63) / 64);
	size_t ow = (size_t)((m + 63) / 64);
	uint64_t *seed = malloc(sw * 8), *in = malloc(iw * 8);
	uint64_t *a = malloc(ow * 8), *b = malloc(ow * 8);
	const uint8_t *src = data + 4;
	size_t slen = size - 4;

	if (!seed || !in || !a || !b)
		abort();
	for (size_t i = 0; i < sw * 8; i++)
		((uint8_t *)seed)[i] = src[i % slen];
	for (size_t i = 0; i < iw * 8; i++)
		((uint8_t *)in)[i] = src[(i * 7 + 3) % slen];
	memset(a, 0xff, ow * 8);
	memset(b, 0x55, ow * 8);
	if (qkd_toeplitz_hash_method(a, seed, in, n, m, QKD_TOEPLITZ_FFT) ||
	    qkd_toeplitz_hash_method(b, seed, in, n, m, QKD_TOEPLITZ_NAIVE) ||
	    memcmp(a, b, ow * 8))
		abort();
	free(seed);
	free(in);
	free(a);
	free(b);
	return 0;
}
