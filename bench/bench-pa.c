// SPDX-License-Identifier: GPL-2.0
/*
 * bench-pa: privacy amplification throughput (Toeplitz hashing over GF(2)),
 * libqkd's additive-FFT product against gf2x's multiplication (Debian
 * libgf2x) and the naive matrix-vector product, side by side in one run.
 *
 * For each input size n (bits) the output is m = n / 2 bits, i.e. the
 * Toeplitz seed has n + m - 1 bits. The gf2x column computes the same hash as
 * the product seed * input followed by extraction of bits n-1 .. n+m-2 (what
 * a PA built on gf2x would do); the naive column is the O(n m / 64)
 * word-parallel product, measured up to 2^16 bits and extrapolated as n m
 * beyond (marked "~"). gf2x takes ~45 s of CPU at 2^27 bits on this machine
 * kind, so to keep the run under a minute it is measured up to 2^24 and its
 * 2^27 time extrapolated from its own 2^22 -> 2^24 growth unless --full is
 * given. Every result that is computed is checked against the other ones;
 * where none is, 32 output bits are recomputed row by row.
 * Throughput is Mbit/s of input, single thread.
 */
#include <errno.h>
#include <getopt.h>
#include <gf2x.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "qkd/toeplitz.h"

/*
 * CPU time of this thread: the per-core cost, which stays meaningful while
 * other work shares the machine's two cores. Wall time is kept beside it.
 */
static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double wall(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double last_wall; /* wall seconds per call of the last TIME_IT */

static uint64_t *rand_words(size_t words)
{
	uint64_t *p = malloc(words * 8);

	if (!p) {
		perror("bench-pa: malloc");
		exit(1);
	}
	for (size_t off = 0; off < words * 8;) {
		ssize_t r = getrandom((uint8_t *)p + off, words * 8 - off, 0);

		if (r < 0) {
			perror("bench-pa: getrandom");
			exit(1);
		}
		off += (size_t)r;
	}
	return p;
}

/* Toeplitz hash through gf2x: full product, then the middle bits. */
static int toeplitz_gf2x(uint64_t *out, const uint64_t *seed, const uint64_t *in, uint64_t n,
			 uint64_t m, unsigned long *prod)
{
	size_t sw = (size_t)((n + m - 1 + 63) / 64), iw = (size_t)((n + 63) / 64);

	if (gf2x_mul(prod, (const unsigned long *)seed, sw, (const unsigned long *)in, iw))
		return -ENOMEM;
	uint64_t start = n - 1, q = start / 64;
	unsigned sh = start % 64;

	for (size_t w = 0; w < (m + 63) / 64; w++) {
		uint64_t lo = prod[q + w], hi = q + w + 1 < sw + iw ? prod[q + w + 1] : 0;

		out[w] = sh ? (lo >> sh) | (hi << (64 - sh)) : lo;
	}
	if (m % 64)
		out[(m - 1) / 64] &= (1ull << (m % 64)) - 1;
	return 0;
}

/*
 * Spot check where no full baseline ran: output bit i is output bit 0 of the
 * (n, 1) hash whose seed is the window of bits i .. i + n - 1.
 */
static int spot_check(const uint64_t *out, const uint64_t *seed, const uint64_t *in, uint64_t n,
		      uint64_t m, int rows)
{
	size_t ww = (size_t)(n / 64) + 2, sw = (size_t)((n + m - 1 + 63) / 64);
	uint64_t *win = malloc(ww * 8), bit;
	int ok = 1;

	if (!win)
		return 0;
	for (int r = 0; r < rows && ok; r++) {
		uint64_t i = r == 0 ? 0 : r == 1 ? m - 1 : ((uint64_t)rand() * 7919u) % m;
		uint64_t q = i / 64;
		unsigned sh = i % 64;

		for (size_t w = 0; w < ww; w++) {
			uint64_t lo = q + w < sw ? seed[q + w] : 0;
			uint64_t hi = q + w + 1 < sw ? seed[q + w + 1] : 0;

			win[w] = sh ? (lo >> sh) | (hi << (64 - sh)) : lo;
		}
		if (qkd_toeplitz_hash_method(&bit, win, in, n, 1, QKD_TOEPLITZ_NAIVE))
			ok = 0;
		else
			ok = (bit & 1) == ((out[i / 64] >> (i % 64)) & 1);
	}
	free(win);
	return ok;
}

/* Seconds per call, repeating until min_time (at least once). */
#define TIME_IT(secs, min_time, call)                                        \
	do {                                                                 \
		double t0_ = now(), w0_ = wall(), t_;                        \
		int reps_ = 0;                                               \
		do {                                                         \
			if (call) {                                          \
				fprintf(stderr, "bench-pa: %s failed\n", #call); \
				exit(1);                                     \
			}                                                    \
			reps_++;                                             \
			t_ = now() - t0_;                                    \
		} while (t_ < (min_time));                                   \
		(secs) = t_ / reps_;                                         \
		last_wall = (wall() - w0_) / reps_;                          \
	} while (0)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: bench-pa [--max-log K] [--min-log K] [--no-gf2x] [--full] [--help]\n"
		"\n"
		"Measure privacy amplification (Toeplitz hashing of n input bits to m = n/2\n"
		"output bits) with libqkd's additive-FFT product, with gf2x's multiplication\n"
		"and with the naive matrix-vector product, for n = 2^min-log .. 2^max-log\n"
		"(default 14 .. 27; sizes 2^14, 2^16, 2^18, 2^20, 2^22, 2^24, 2^27 within that\n"
		"range). Prints Mbit/s of input per core and the speed-up over each baseline;\n"
		"checks that libqkd's output equals gf2x's for every size. The naive product\n"
		"is measured up to 2^16 bits and extrapolated (quadratically) beyond, marked\n"
		"with '~'. Targets: >= 200 Mbit/s at 2^20 and >= 50 Mbit/s at 2^27.\n"
		"\n"
		"  --max-log K   largest input size 2^K (at most 31)\n"
		"  --min-log K   smallest input size 2^K (at least 6)\n"
		"  --no-gf2x     skip the gf2x column\n"
		"  --full        measure gf2x at 2^27 too instead of extrapolating (adds ~1 min)\n"
		"  --help        this text\n"
		"\n"
		"Exit status: 0 when every result agreed, 1 on a mismatch or error.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "max-log", required_argument, NULL, 'M' },
		{ "min-log", required_argument, NULL, 'm' },
		{ "no-gf2x", no_argument, NULL, 'g' },
		{ "full", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int logs[] = { 14, 16, 18, 20, 22, 24, 27 };
	int max_log = 27, min_log = 14, use_gf2x = 1, full = 0, c, status = 0;
	double naive_ref = 0; /* seconds per matrix entry, from the largest measured size */
	double gf2x_prev[2] = { 0, 0 }; /* gf2x seconds at the last two measured sizes */

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'M':
			max_log = atoi(optarg);
			break;
		case 'm':
			min_log = atoi(optarg);
			break;
		case 'g':
			use_gf2x = 0;
			break;
		case 'f':
			full = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc || max_log > 31 || min_log < 6 || min_log > max_log) {
		usage(stderr);
		return 1;
	}
	{
		/* the naive product's cost per matrix entry, for extrapolation */
		uint64_t n = 1u << 14, m = n / 2;
		uint64_t *seed = rand_words(n / 64 * 2), *in = rand_words(n / 64 + 1);
		uint64_t out[(1u << 13) / 64];
		double t;

		TIME_IT(t, 0.2, qkd_toeplitz_hash_method(out, seed, in, n, m, QKD_TOEPLITZ_NAIVE));
		naive_ref = t / ((double)n * (double)m);
		free(seed);
		free(in);
	}
	printf("bench-pa: Toeplitz hash n -> m = n/2 bits, single thread, backend %s\n"
	       "Mbit/s of input per core (thread CPU time; wall-clock figure in brackets)\n",
	       qkd_gf2poly_backend());
	printf("%10s %20s %12s %12s %10s %10s  %s\n", "n", "libqkd Mb/s [wall]", "gf2x Mb/s",
	       "naive Mb/s", "x gf2x", "x naive", "check");
	for (size_t i = 0; i < sizeof(logs) / sizeof(logs[0]); i++) {
		if (logs[i] < min_log || logs[i] > max_log)
			continue;
		uint64_t n = 1ull << logs[i], m = n / 2;
		size_t sw = (size_t)((n + m - 1 + 63) / 64) + 1, iw = (size_t)((n + 63) / 64) + 1;
		size_t ow = (size_t)((m + 63) / 64);
		uint64_t *seed = rand_words(sw), *in = rand_words(iw);
		uint64_t *a = calloc(ow, 8), *b = calloc(ow, 8);
		unsigned long *prod = malloc((sw + iw) * 8);
		double t_ours, t_gf2x = 0, t_naive;
		int naive_measured = n <= (1u << 16), check = -1;
		double min_time = n >= (1u << 24) ? 0.5 : 0.3;

		if (!a || !b || !prod) {
			perror("bench-pa: malloc");
			return 1;
		}
		double w_ours;

		if (qkd_toeplitz_hash(a, seed, in, n, m)) { /* warm-up: tables, first touch */
			fprintf(stderr, "bench-pa: qkd_toeplitz_hash failed\n");
			return 1;
		}
		TIME_IT(t_ours, min_time, qkd_toeplitz_hash(a, seed, in, n, m));
		w_ours = last_wall;
		int gf2x_measured = use_gf2x && (full || logs[i] <= 24);

		if (gf2x_measured) {
			TIME_IT(t_gf2x, min_time, toeplitz_gf2x(b, seed, in, n, m, prod));
			check = !memcmp(a, b, ow * 8);
			gf2x_prev[0] = gf2x_prev[1];
			gf2x_prev[1] = t_gf2x;
		} else if (use_gf2x && gf2x_prev[0] > 0) {
			/* growth from 2^22 to 2^24 (x4), applied for 2^24 -> 2^27 (x8) */
			t_gf2x = gf2x_prev[1] * pow(gf2x_prev[1] / gf2x_prev[0], 1.5);
		}
		if (naive_measured) {
			TIME_IT(t_naive, 0.3,
				qkd_toeplitz_hash_method(b, seed, in, n, m, QKD_TOEPLITZ_NAIVE));
			naive_ref = t_naive / ((double)n * (double)m);
			if (check < 0)
				check = !memcmp(a, b, ow * 8);
			else
				check = check && !memcmp(a, b, ow * 8);
		} else {
			t_naive = naive_ref * (double)n * (double)m;
		}
		if (check < 0)
			check = spot_check(a, seed, in, n, m, 32) ? 2 : 0;
		char gf2x_col[32] = "-", gf2x_ratio[32] = "-", naive_col[32], naive_ratio[32];
		const char *mark = naive_measured ? "" : "~", *gmark = gf2x_measured ? "" : "~";

		if (t_gf2x > 0) {
			snprintf(gf2x_col, sizeof(gf2x_col), "%s%.1f", gmark, n / t_gf2x / 1e6);
			snprintf(gf2x_ratio, sizeof(gf2x_ratio), "%s%.1f", gmark, t_gf2x / t_ours);
		}
		snprintf(naive_col, sizeof(naive_col), "%s%.3g", mark, n / t_naive / 1e6);
		snprintf(naive_ratio, sizeof(naive_ratio), "%s%.3g", mark, t_naive / t_ours);
		char ours[40];

		snprintf(ours, sizeof(ours), "%.1f [%.1f]", n / t_ours / 1e6, n / w_ours / 1e6);
		printf("%8s%-2d %20s %12s %12s %10s %10s  %s\n", "2^", logs[i], ours,
		       gf2x_col, naive_col, gf2x_ratio, naive_ratio,
		       check == 2 ? "32 rows agree" : check ? "agree" : "MISMATCH");
		fflush(stdout);
		if (check == 0)
			status = 1;
		free(seed);
		free(in);
		free(a);
		free(b);
		free(prod);
	}
	return status;
}
