// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-cat: concatenate frame streams, validating every frame. Also the
 * simplest relay between two pipeline stages (and the one the transport tests
 * and benchmark put in the middle of their chain).
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

static const char usage[] =
"NAME\n"
"    qkd-cat - concatenate and validate qkdpipe frame streams\n"
"\n"
"SYNOPSIS\n"
"    qkd-cat [-o FILE] [--fallback] [--count] [FILE...]\n"
"\n"
"DESCRIPTION\n"
"    Reads the frame streams in the FILEs, in order, and writes their frames to\n"
"    standard output (or to FILE with -o) as one stream. A FILE of \"-\", or no\n"
"    FILE at all, means standard input. Every frame is decoded and validated\n"
"    (magic, version, header checksum, state, payload length against bit count,\n"
"    reserved bytes, padding bits; see Documentation/frame-format.md), so\n"
"    qkd-cat also checks a stream or relays one pipe into another.\n"
"\n"
"    Pipes are driven by io_uring with batched, registered buffers; plain\n"
"    read(2)/write(2) is used when io_uring is refused or when asked for.\n"
"\n"
"OPTIONS\n"
"    -o, --output FILE  write to FILE (created or truncated) instead of stdout\n"
"    -f, --fallback     use plain read/write instead of io_uring\n"
"    -c, --count        print the number of frames and payload bytes to stderr\n"
"    -h, --help         show this help and exit\n"
"\n"
"ENVIRONMENT\n"
"    QKD_TRANSPORT=fallback  same as --fallback\n"
"\n"
"EXIT STATUS\n"
"    0 when every input was a well-formed stream and everything was written;\n"
"    1 on a malformed or truncated input (the message names the file and the\n"
"    frame), on a read or write error, or if the reader of the output went\n"
"    away; 2 on a usage error.\n"
"\n"
"EXAMPLES\n"
"    qkd-cat a.frames b.frames > ab.frames\n"
"    qkd-sim ... | qkd-cat --count > /dev/null\n";

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

static int cat_one(const char *name, struct qkd_stream *out, unsigned flags,
		   struct qkd_frame **f, unsigned long long *frames, unsigned long long *bytes)
{
	bool is_stdin = !strcmp(name, "-");
	int fd = is_stdin ? dup(STDIN_FILENO) : open(name, O_RDONLY | O_CLOEXEC);
	struct qkd_stream *in;
	unsigned long long n = 0;
	int ret, status = 0;

	if (fd < 0) {
		fprintf(stderr, "qkd-cat: %s: %s\n", name, strerror(errno));
		return 1;
	}
	in = qkd_stream_open(fd, QKD_STREAM_READ | flags);
	if (!in) {
		fprintf(stderr, "qkd-cat: %s: %s\n", name, strerror(errno));
		close(fd);
		return 1;
	}
	while ((ret = next_frame(in, f)) > 0) {
		n++;
		ret = qkd_write_frame(out, *f);
		if (ret) {
			fprintf(stderr, "qkd-cat: output: %s\n", qkd_stream_error(out));
			status = 1;
			break;
		}
		*bytes += (*f)->payload_len;
	}
	if (ret < 0 && !status) {
		fprintf(stderr, "qkd-cat: %s: frame %llu: %s\n", is_stdin ? "stdin" : name, n + 1,
			qkd_stream_error(in));
		status = 1;
	}
	*frames += n;
	qkd_stream_close(in);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "fallback", no_argument, NULL, 'f' },
		{ "count", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *output = NULL;
	unsigned flags = 0;
	bool count = false;
	unsigned long long frames = 0, bytes = 0;
	struct qkd_frame *f = NULL;
	struct qkd_stream *out;
	int c, fd, status = 0, ret;

	while ((c = getopt_long(argc, argv, "o:fch", opts, NULL)) != -1) {
		switch (c) {
		case 'o': output = optarg; break;
		case 'f': flags |= QKD_STREAM_FALLBACK; break;
		case 'c': count = true; break;
		case 'h': fputs(usage, stdout); return 0;
		default:
			fputs("Try 'qkd-cat --help'.\n", stderr);
			return 2;
		}
	}
	/* A vanished reader is reported as an error, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	fd = output ? open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
		    : dup(STDOUT_FILENO);
	if (fd < 0) {
		fprintf(stderr, "qkd-cat: %s: %s\n", output ? output : "stdout", strerror(errno));
		return 1;
	}
	out = qkd_stream_open(fd, QKD_STREAM_WRITE | flags);
	if (!out) {
		fprintf(stderr, "qkd-cat: output: %s\n", strerror(errno));
		return 1;
	}
	if (optind == argc)
		status = cat_one("-", out, flags, &f, &frames, &bytes);
	for (int i = optind; i < argc && !status; i++)
		status = cat_one(argv[i], out, flags, &f, &frames, &bytes);
	ret = qkd_stream_close(out);
	if (ret && !status) {
		fprintf(stderr, "qkd-cat: output: %s\n", strerror(-ret));
		status = 1;
	}
	qkd_frame_free(f);
	if (count)
		fprintf(stderr, "qkd-cat: %llu frames, %llu payload bytes\n", frames, bytes);
	return status;
}
