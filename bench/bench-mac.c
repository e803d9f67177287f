// SPDX-License-Identifier: GPL-2.0
/*
 * bench-mac: throughput of the Wegman-Carter polynomial hash over GF(2^128),
 * PCLMULQDQ path vs portable path, in one run, with the ratio.
 *
 *   bench-mac [--size BYTES] [--seconds S]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qkd/mac.h"
#include "qkd/module.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* GB/s hashing buf (len bytes) repeatedly for about secs seconds. */
static double run(bool portable, const uint8_t *buf, size_t len, double secs, uint8_t sink[16])
{
	struct qkd_polyhash h;
	uint8_t key[16];
	double t0, t;
	uint64_t bytes = 0;

	qkd_random(key, sizeof(key));
	qkd_mac_force_portable(portable);
	t0 = now();
	do {
		uint8_t d[16];

		for (int i = 0; i < 4; i++) {
			qkd_polyhash_init(&h, key);
			qkd_polyhash_update(&h, buf, len);
			qkd_polyhash_final(&h, d);
			for (int j = 0; j < 16; j++)
				sink[j] ^= d[j];
			bytes += len;
		}
		t = now() - t0;
	} while (t < secs);
	qkd_mac_force_portable(false);
	return (double)bytes / t / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: bench-mac [--size BYTES] [--seconds S]\n"
		"\n"
		"Measures the throughput of libqkd's Wegman-Carter polynomial hash over\n"
		"GF(2^128) (the peer channel's authentication) on messages of BYTES bytes\n"
		"(default 1048576), first with the PCLMULQDQ fast path (if the CPU has it),\n"
		"then with the portable constant-time path, each for S seconds (default 1),\n"
		"and prints both in GB/s and their ratio.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	size_t size = 1 << 20;
	double secs = 1.0, fast = 0, port;
	uint8_t *buf, sink[16] = { 0 };
	int c;

	while ((c = getopt_long(argc, argv, "s:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			size = strtoull(optarg, NULL, 0);
			break;
		case 't':
			secs = strtod(optarg, NULL);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (size == 0 || size > (1u << 30) || !(secs > 0)) {
		fprintf(stderr, "bench-mac: --size must be 1..2^30 and --seconds > 0\n");
		return 2;
	}
	buf = malloc(size);
	if (!buf) {
		perror("bench-mac");
		return 1;
	}
	qkd_random(buf, size);
	printf("bench-mac: polynomial hash over GF(2^128), %zu-byte messages\n", size);
	if (qkd_mac_has_fast_path()) {
		fast = run(false, buf, size, secs, sink);
		printf("  pclmulqdq (aggregated x8): %8.3f GB/s\n", fast);
	} else {
		printf("  pclmulqdq: not available on this CPU\n");
	}
	port = run(true, buf, size, secs, sink);
	printf("  portable (constant time):  %8.3f GB/s\n", port);
	if (fast > 0)
		printf("  ratio fast/portable:       %8.1fx\n", fast / port);
	/* keep the compiler from discarding the work */
	volatile uint8_t keep = sink[0];
	(void)keep;
	free(buf);
	return 0;
}
