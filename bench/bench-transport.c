// SPDX-License-Identifier: GPL-2.0
/*
 * Frame-transport throughput through the same 4-process chain the tests use,
 *
 *	producer -> qkd-cat -> qkd-cat -> consumer
 *
 * over io_uring and over the plain read/write fallback, for several frame
 * sizes, in one run. Prints payload GB/s for each and the ratio
 * io_uring / fallback. Each figure is the best of --reps runs (default 2),
 * alternating transports so that background load hits both alike.
 *
 * qkd-cat is taken from $QKD_BUILD/bin (default "build").
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "qkd/stream.h"

static const char usage[] =
"NAME\n"
"    bench-transport - frame throughput of io_uring vs read/write pipes\n"
"\n"
"SYNOPSIS\n"
"    bench-transport [--bytes N] [--reps N] [--size BYTES]...\n"
"\n"
"DESCRIPTION\n"
"    Sends frames through producer -> qkd-cat -> qkd-cat -> consumer (four\n"
"    processes, three pipes) once with the io_uring transport and once with\n"
"    the read/write fallback, and prints the payload throughput of each in\n"
"    GB/s (10^9 bytes per second), their ratio, and the CPU seconds (user +\n"
"    system, all four processes) spent per GB, which is less sensitive to\n"
"    other load on the machine. The consumer checks that\n"
"    key ids arrive in order and that no frame is lost.\n"
"\n"
"OPTIONS\n"
"    --bytes N    payload bytes per run (default 1073741824)\n"
"    --reps N     runs per transport and size; the best is printed (default 2)\n"
"    --size B     payload size of a frame; repeatable\n"
"                 (default 512, 4096, 65536 and 262144)\n"
"    -h, --help   show this help\n"
"\n"
"ENVIRONMENT\n"
"    QKD_BUILD    build directory holding bin/qkd-cat (default \"build\")\n";

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_seconds(int who)
{
	struct rusage u;

	getrusage(who, &u);
	return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec * 1e-6 +
	       (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec * 1e-6;
}

static void producer(int fd, unsigned flags, uint32_t size, uint64_t n)
{
	struct qkd_stream *s = qkd_stream_open(fd, QKD_STREAM_WRITE | flags);
	struct qkd_frame *f = qkd_frame_new(size);

	if (!s || !f)
		_exit(10);
	f->state = QKD_STATE_SIFTED;
	f->bit_count = (uint64_t)size * 8;
	f->payload_len = size;
	memset(f->payload, 0x5a, size);
	for (uint64_t k = 0; k < n; k++) {
		f->key_id = k;
		memcpy(f->payload, &k, size < 8 ? size : 8);
		if (qkd_write_frame(s, f)) {
			fprintf(stderr, "producer: %s\n", qkd_stream_error(s));
			_exit(11);
		}
	}
	_exit(qkd_stream_close(s) ? 12 : 0);
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

/*
 * One run; returns payload bytes per second, or a negative value on failure.
 * *cpu gets the CPU seconds (user + system) all four processes spent per GB.
 */
static double run(const char *cat, bool fallback, uint32_t size, uint64_t bytes, double *cpu)
{
	uint64_t n = bytes / size, k = 0;
	unsigned flags = fallback ? QKD_STREAM_FALLBACK : 0;
	struct qkd_frame *f = NULL;
	struct qkd_stream *in;
	int p[3][2], all[6], status, bad = 0;
	pid_t pids[3];
	double t0, t1, c0 = cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN);

	if (fallback)
		setenv("QKD_TRANSPORT", "fallback", 1);
	else
		unsetenv("QKD_TRANSPORT");
	for (int i = 0; i < 3; i++) {
		if (pipe2(p[i], O_CLOEXEC))
			return -1;
		all[2 * i] = p[i][0];
		all[2 * i + 1] = p[i][1];
	}
	t0 = now();
	for (int i = 0; i < 3; i++) {
		pids[i] = fork();
		if (pids[i])
			continue;
		if (i == 0) {
			for (int j = 0; j < 6; j++)
				if (all[j] != p[0][1])
					close(all[j]);
			producer(p[0][1], flags, size, n);
		}
		dup2(p[i - 1][0], 0);
		dup2(p[i][1], 1);
		execl(cat, "qkd-cat", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 6; i++)
		if (all[i] != p[2][0])
			close(all[i]);
	in = qkd_stream_open(p[2][0], QKD_STREAM_READ | flags);
	if (!in)
		return -1;
	while (next_frame(in, &f) > 0) {
		uint64_t id = 0;

		memcpy(&id, f->payload, size < 8 ? size : 8);
		if (f->key_id != k || (size >= 8 && id != k)) {
			fprintf(stderr, "bench-transport: frame %lu out of order\n",
				(unsigned long)k);
			bad = 1;
			break;
		}
		k++;
	}
	t1 = now();
	qkd_stream_close(in);
	qkd_frame_free(f);
	for (int i = 0; i < 3; i++) {
		waitpid(pids[i], &status, 0);
		bad |= !WIFEXITED(status) || WEXITSTATUS(status);
	}
	*cpu = (cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN) - c0) / ((double)n * size / 1e9);
	if (bad || k != n)
		return -1;
	return (double)n * size / (t1 - t0);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "reps", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	uint32_t sizes[16] = { 512, 4096, 65536, 262144 };
	int nsizes = 4, user_sizes = 0, reps = 2, c, status = 0;
	uint64_t bytes = 1ull << 30;
	const char *b = getenv("QKD_BUILD");
	char cat[4096];

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'b': bytes = strtoull(optarg, NULL, 0); break;
		case 'r': reps = atoi(optarg); break;
		case 's':
			if (user_sizes < 16)
				sizes[user_sizes++] = (uint32_t)strtoul(optarg, NULL, 0);
			nsizes = user_sizes;
			break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs("Try 'bench-transport --help'.\n", stderr); return 2;
		}
	}
	if (reps < 1 || !bytes) {
		fputs("bench-transport: --reps and --bytes must be positive\n", stderr);
		return 2;
	}
	snprintf(cat, sizeof(cat), "%s/bin/qkd-cat", b && *b ? b : "build");
	if (access(cat, X_OK)) {
		fprintf(stderr, "bench-transport: %s: %s (run make)\n", cat, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	printf("frame transport, producer -> qkd-cat -> qkd-cat -> consumer, %.2f GB per run, best of %d\n",
	       (double)bytes / 1e9, reps);
	printf("%10s %14s %14s %8s   %s\n", "payload", "io_uring GB/s", "fallback GB/s", "ratio",
	       "CPU s/GB io_uring, fallback");
	for (int i = 0; i < nsizes; i++) {
		double best[2] = { 0, 0 }, cpu[2] = { 1e9, 1e9 };

		if (!sizes[i] || sizes[i] > QKD_FRAME_MAX_PAYLOAD) {
			fprintf(stderr, "bench-transport: bad size %u\n", sizes[i]);
			return 2;
		}
		for (int r = 0; r < reps; r++) {
			for (int t = 0; t < 2; t++) {
				double c = 0, v = run(cat, t == 1, sizes[i], bytes, &c);

				if (v < 0) {
					fprintf(stderr, "bench-transport: run failed (%s, %u bytes)\n",
						t ? "fallback" : "io_uring", sizes[i]);
					status = 1;
				}
				if (v > best[t])
					best[t] = v;
				if (v > 0 && c < cpu[t])
					cpu[t] = c;
			}
		}
		printf("%10u %14.3f %14.3f %8.2f   %6.3f %6.3f%s\n", sizes[i], best[0] / 1e9,
		       best[1] / 1e9, best[1] > 0 ? best[0] / best[1] : 0, cpu[0], cpu[1],
		       best[0] < best[1] ? "  (io_uring slower)" : "");
		fflush(stdout);
	}
	return status;
}
