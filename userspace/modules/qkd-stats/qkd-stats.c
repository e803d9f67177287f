// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-stats: one line per frame (key id, state, bits, QBER, disclosed bits)
 * and totals at the end. Shows metadata only, never payload bytes (key).
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
"    qkd-stats - print per-frame statistics of a qkdpipe frame stream\n"
"\n"
"SYNOPSIS\n"
"    qkd-stats [--pass] [--quiet] [--fallback] [FILE...]\n"
"\n"
"DESCRIPTION\n"
"    Reads the frame streams in the FILEs (standard input if none, or for\n"
"    \"-\") and prints one line per frame:\n"
"\n"
"        key_id=17 state=estimated bits=81234 qber=2.512% disclosed=9000 side=alice\n"
"\n"
"    with abort=REASON added for aborted frames and qber=? when the QBER is\n"
"    not known yet. At the end it prints the totals: frames, frames per state,\n"
"    key bits in frames that are not aborted, disclosed bits (the sum of the\n"
"    frames' disclosed_bits, i.e. of what was leaked for each block), and the\n"
"    bit-weighted mean QBER over the frames that carry one. Payload bytes,\n"
"    which may be key, are never printed.\n"
"\n"
"OPTIONS\n"
"    -p, --pass       also copy the frames unchanged to standard output, and\n"
"                     print the statistics on standard error, so qkd-stats can\n"
"                     sit between two stages\n"
"    -q, --quiet      print only the totals\n"
"    -f, --fallback   use plain read/write instead of io_uring\n"
"    -h, --help       show this help and exit\n"
"\n"
"ENVIRONMENT\n"
"    QKD_TRANSPORT=fallback  same as --fallback\n"
"\n"
"EXIT STATUS\n"
"    0 if every input was a well-formed stream, 1 on malformed or truncated\n"
"    input or an I/O error (the totals are still printed), 2 on a usage error.\n";

static const char *abort_name(uint8_t r)
{
	static const char *const names[] = {
		"none", "qber", "auth", "ec", "confirm", "too-short", "peer",
	};

	return r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

struct totals {
	unsigned long long frames, per_state[256], bits, disclosed, payload;
	double qber_bits, qber_weight;
};

static void line(FILE *o, const struct qkd_frame *f)
{
	fprintf(o, "key_id=%llu state=%s bits=%llu", (unsigned long long)f->key_id,
		qkd_frame_state_name(f->state), (unsigned long long)f->bit_count);
	if (f->qber_ppm == QKD_QBER_UNKNOWN)
		fputs(" qber=?", o);
	else
		fprintf(o, " qber=%.3f%%", f->qber_ppm / 1e4);
	fprintf(o, " disclosed=%llu side=%s", (unsigned long long)f->disclosed_bits,
		f->flags & QKD_FRAME_F_BOB ? "bob" : "alice");
	if (f->state == QKD_STATE_ABORTED)
		fprintf(o, " abort=%s", abort_name(f->abort_reason));
	fputc('\n', o);
}

static void account(struct totals *t, const struct qkd_frame *f)
{
	t->frames++;
	t->per_state[f->state]++;
	t->disclosed += f->disclosed_bits;
	t->payload += f->payload_len;
	if (f->state == QKD_STATE_ABORTED)
		return;
	t->bits += f->bit_count;
	if (f->qber_ppm != QKD_QBER_UNKNOWN && f->bit_count) {
		t->qber_bits += f->qber_ppm / 1e6 * (double)f->bit_count;
		t->qber_weight += (double)f->bit_count;
	}
}

static void print_totals(FILE *o, const struct totals *t)
{
	fprintf(o, "total: frames=%llu bits=%llu disclosed=%llu payload_bytes=%llu",
		t->frames, t->bits, t->disclosed, t->payload);
	if (t->qber_weight > 0)
		fprintf(o, " mean_qber=%.3f%%", 100 * t->qber_bits / t->qber_weight);
	else
		fputs(" mean_qber=?", o);
	for (int s = 0; s < 256; s++)
		if (t->per_state[s])
			fprintf(o, " %s=%llu", qkd_frame_state_name((uint8_t)s), t->per_state[s]);
	fputc('\n', o);
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
		{ "pass", no_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "fallback", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static struct totals t;
	bool pass = false, quiet = false;
	unsigned flags = 0;
	struct qkd_stream *out = NULL;
	struct qkd_frame *f = NULL;
	FILE *o = stdout;
	int c, status = 0, ret;

	while ((c = getopt_long(argc, argv, "pqfh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': pass = true; break;
		case 'q': quiet = true; break;
		case 'f': flags |= QKD_STREAM_FALLBACK; break;
		case 'h': fputs(usage, stdout); return 0;
		default:
			fputs("Try 'qkd-stats --help'.\n", stderr);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (pass) {
		o = stderr;
		out = qkd_stream_open(dup(STDOUT_FILENO), QKD_STREAM_WRITE | flags);
		if (!out) {
			fprintf(stderr, "qkd-stats: stdout: %s\n", strerror(errno));
			return 1;
		}
	}
	for (int i = optind; (i < argc || i == optind) && !status; i++) {
		const char *name = i < argc ? argv[i] : "-";
		bool is_stdin = !strcmp(name, "-");
		int fd = is_stdin ? dup(STDIN_FILENO) : open(name, O_RDONLY | O_CLOEXEC);
		struct qkd_stream *in = fd < 0 ? NULL : qkd_stream_open(fd, QKD_STREAM_READ | flags);

		if (!in) {
			fprintf(stderr, "qkd-stats: %s: %s\n", name, strerror(errno));
			status = 1;
			break;
		}
		while ((ret = next_frame(in, &f)) > 0) {
			if (!quiet)
				line(o, f);
			account(&t, f);
			if (out && qkd_write_frame(out, f)) {
				fprintf(stderr, "qkd-stats: stdout: %s\n", qkd_stream_error(out));
				status = 1;
				break;
			}
		}
		if (ret < 0 && !status) {
			fprintf(stderr, "qkd-stats: %s: frame %llu: %s\n", is_stdin ? "stdin" : name,
				t.frames + 1, qkd_stream_error(in));
			status = 1;
		}
		qkd_stream_close(in);
	}
	if (out) {
		ret = qkd_stream_close(out);
		if (ret && !status) {
			fprintf(stderr, "qkd-stats: stdout: %s\n", strerror(-ret));
			status = 1;
		}
	}
	print_totals(o, &t);
	if (fflush(o) && !status)
		status = 1;
	qkd_frame_free(f);
	return status;
}
