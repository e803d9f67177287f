// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-drop: drop frames at a given ratio, reproducibly, to test how the stages
 * after a lossy link or a crashed instance behave. Not for secrets: the
 * generator is a seeded splitmix64, chosen for repeatability.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qkd/stream.h"

static const char usage[] =
"NAME\n"
"    qkd-drop - drop frames from a qkdpipe frame stream at a given ratio\n"
"\n"
"SYNOPSIS\n"
"    qkd-drop --ratio R [--seed S] [--fallback] [--verbose]\n"
"\n"
"DESCRIPTION\n"
"    Copies the frame stream on standard input to standard output, dropping\n"
"    each frame independently with probability R. The choice comes from a\n"
"    splitmix64 generator seeded with S, so a given seed drops the same frames\n"
"    of the same stream every time: fault tests are reproducible. Frames that\n"
"    are kept are passed unchanged and in order. Frames are validated on the\n"
"    way like qkd-cat does.\n"
"\n"
"OPTIONS\n"
"    -r, --ratio R    probability of dropping a frame, 0 <= R <= 1 (required)\n"
"    -s, --seed S     seed of the generator, an unsigned 64-bit integer\n"
"                     (default 1)\n"
"    -f, --fallback   use plain read/write instead of io_uring\n"
"    -v, --verbose    print the key id of each dropped frame and a summary to\n"
"                     standard error\n"
"    -h, --help       show this help and exit\n"
"\n"
"ENVIRONMENT\n"
"    QKD_TRANSPORT=fallback  same as --fallback\n"
"\n"
"EXIT STATUS\n"
"    0 at the end of a well-formed input, 1 on malformed input or an I/O\n"
"    error, 2 on a usage error.\n"
"\n"
"EXAMPLE\n"
"    qkd-sim ... | qkd-drop --ratio 0.01 --seed 7 | qkd-sift ...\n";

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * qkd_read_frame returns -EINTR when a signal arrives between frames (with
 * io_uring also after a stop/continue or a ptrace attach); this program has
 * nothing to do on a signal, so it simply reads on.
 */
static int next_frame(struct qkd_stream *s, struct qkd_frame **f)
{
	int ret;

	do
		ret = qkd_read_frame(s, f);
	while (ret == -EINTR);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ratio", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 's' },
		{ "fallback", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	double ratio = -1;
	uint64_t seed = 1, state, threshold, kept = 0, dropped = 0;
	unsigned flags = 0;
	bool verbose = false;
	struct qkd_stream *in, *out;
	struct qkd_frame *f = NULL;
	int c, ret, status = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "r:s:fvh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			errno = 0;
			ratio = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(ratio >= 0 && ratio <= 1)) {
				fprintf(stderr, "qkd-drop: --ratio wants a number in [0, 1], not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 's':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (errno || *end || end == optarg || optarg[0] == '-') {
				fprintf(stderr, "qkd-drop: --seed wants an unsigned integer, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'f': flags |= QKD_STREAM_FALLBACK; break;
		case 'v': verbose = true; break;
		case 'h': fputs(usage, stdout); return 0;
		default:
			fputs("Try 'qkd-drop --help'.\n", stderr);
			return 2;
		}
	}
	if (ratio < 0 || optind != argc) {
		fputs("qkd-drop: --ratio is required and no operands are taken. "
		      "Try 'qkd-drop --help'.\n", stderr);
		return 2;
	}
	/* Drop when a uniform 64-bit draw falls below ratio * 2^64. */
	threshold = ratio >= 1 ? UINT64_MAX : (uint64_t)(ratio * 18446744073709551616.0);
	state = seed;
	signal(SIGPIPE, SIG_IGN);
	in = qkd_stream_open(dup(STDIN_FILENO), QKD_STREAM_READ | flags);
	out = qkd_stream_open(dup(STDOUT_FILENO), QKD_STREAM_WRITE | flags);
	if (!in || !out) {
		fprintf(stderr, "qkd-drop: %s\n", strerror(errno));
		return 1;
	}
	while ((ret = next_frame(in, &f)) > 0) {
		uint64_t draw = splitmix64(&state);

		if (ratio >= 1 || draw < threshold) {
			dropped++;
			if (verbose)
				fprintf(stderr, "qkd-drop: dropped key id %lu\n",
					(unsigned long)f->key_id);
			continue;
		}
		if (qkd_write_frame(out, f)) {
			fprintf(stderr, "qkd-drop: stdout: %s\n", qkd_stream_error(out));
			status = 1;
			break;
		}
		kept++;
	}
	if (!status && ret < 0) {
		fprintf(stderr, "qkd-drop: stdin: %s\n", qkd_stream_error(in));
		status = 1;
	}
	qkd_stream_close(in);
	ret = qkd_stream_close(out);
	if (ret && !status) {
		fprintf(stderr, "qkd-drop: stdout: %s\n", strerror(-ret));
		status = 1;
	}
	if (verbose)
		fprintf(stderr, "qkd-drop: kept %lu, dropped %lu\n", (unsigned long)kept,
			(unsigned long)dropped);
	qkd_frame_free(f);
	return status;
}
