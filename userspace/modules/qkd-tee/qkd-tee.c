// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-tee: copy a frame stream to files and to standard output, validating
 * each frame, like tee(1) for frames (to record what flows between two stages).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qkd/stream.h"

#define MAX_OUT 16

static const char usage[] =
"NAME\n"
"    qkd-tee - copy a qkdpipe frame stream to files and to standard output\n"
"\n"
"SYNOPSIS\n"
"    qkd-tee [-a] [--fallback] FILE...\n"
"\n"
"DESCRIPTION\n"
"    Reads a frame stream from standard input and writes every frame both to\n"
"    standard output and to each FILE (at most 16), so the traffic between two\n"
"    pipeline stages can be recorded without disturbing it. Frames are decoded\n"
"    and validated on the way (see Documentation/frame-format.md); a malformed\n"
"    or truncated input stops qkd-tee with an error after the frames before it\n"
"    have been written everywhere.\n"
"\n"
"    The files receive exactly the frames standard output receives, in the same\n"
"    order. They hold key material once the stream carries key bits: they are\n"
"    created with mode 0600.\n"
"\n"
"OPTIONS\n"
"    -a, --append     append to the FILEs instead of truncating them\n"
"    -f, --fallback   use plain read/write instead of io_uring\n"
"    -h, --help       show this help and exit\n"
"\n"
"ENVIRONMENT\n"
"    QKD_TRANSPORT=fallback  same as --fallback\n"
"\n"
"EXIT STATUS\n"
"    0 when the whole input was copied everywhere, 1 on malformed input or any\n"
"    read or write error (including a reader of standard output that went\n"
"    away), 2 on a usage error.\n"
"\n"
"EXAMPLE\n"
"    qkd-sift ... | qkd-tee sifted.frames | qkd-estimate ...\n";

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
		{ "append", no_argument, NULL, 'a' },
		{ "fallback", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct qkd_stream *in, *out[MAX_OUT + 1];
	const char *names[MAX_OUT + 1];
	struct qkd_frame *f = NULL;
	int c, nout = 0, status = 0, ret, oflags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
	unsigned flags = 0;

	while ((c = getopt_long(argc, argv, "afh", opts, NULL)) != -1) {
		switch (c) {
		case 'a': oflags = (oflags & ~O_TRUNC) | O_APPEND; break;
		case 'f': flags |= QKD_STREAM_FALLBACK; break;
		case 'h': fputs(usage, stdout); return 0;
		default:
			fputs("Try 'qkd-tee --help'.\n", stderr);
			return 2;
		}
	}
	if (optind == argc || argc - optind > MAX_OUT) {
		fprintf(stderr, "qkd-tee: give between 1 and %d FILEs. Try 'qkd-tee --help'.\n",
			MAX_OUT);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	for (int i = optind; i <= argc; i++) {
		const char *name = i < argc ? argv[i] : "stdout";
		int fd = i < argc ? open(argv[i], oflags, 0600) : dup(STDOUT_FILENO);

		if (fd < 0 || !(out[nout] = qkd_stream_open(fd, QKD_STREAM_WRITE | flags))) {
			fprintf(stderr, "qkd-tee: %s: %s\n", name, strerror(errno));
			return 1;
		}
		names[nout++] = name;
	}
	in = qkd_stream_open(dup(STDIN_FILENO), QKD_STREAM_READ | flags);
	if (!in) {
		fprintf(stderr, "qkd-tee: stdin: %s\n", strerror(errno));
		return 1;
	}
	while (!status && (ret = next_frame(in, &f)) > 0) {
		for (int i = 0; i < nout; i++) {
			if (qkd_write_frame(out[i], f)) {
				fprintf(stderr, "qkd-tee: %s: %s\n", names[i], qkd_stream_error(out[i]));
				status = 1;
				break;
			}
		}
	}
	if (!status && ret < 0) {
		fprintf(stderr, "qkd-tee: stdin: %s\n", qkd_stream_error(in));
		status = 1;
	}
	qkd_stream_close(in);
	for (int i = 0; i < nout; i++) {
		ret = qkd_stream_close(out[i]);
		if (ret && !status) {
			fprintf(stderr, "qkd-tee: %s: %s\n", names[i], strerror(-ret));
			status = 1;
		}
	}
	qkd_frame_free(f);
	return status;
}
