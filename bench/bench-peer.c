// SPDX-License-Identifier: GPL-2.0
/*
 * bench-peer: the authenticated peer channel between two processes on
 * loopback TCP: small-message rate, round-trip latency, bulk throughput
 * against plain TCP moving the same bytes (the baseline), and the cost of
 * closing a block immediately (verify: three messages, 48 bytes of pad) or
 * deferred (defer: END exchange, no pad).
 *
 *   bench-peer [--count N]
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qkd/frame.h"
#include "qkd/keypool.h"
#include "qkd/module.h"
#include "qkd/peer.h"

#define BULK_MSG 65536

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &l))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

struct run {
	char dir[64], pool[2][128], port[16];
	int n;
};

/* The script, run by both sides; Alice prints the figures. */
static int side(const struct run *r, enum qkd_role role)
{
	struct qkd_keypool *kp = qkd_keypool_open(r->pool[role]);
	struct qkd_peer_config cfg = {
		.role = role, .pipeline = "bench", .stage = "peer", .address = "127.0.0.1",
		.port = r->port, .listen = role == QKD_BOB, .timeout_ms = 30000, .pool = kp,
	};
	static uint8_t buf[BULK_MSG];
	struct qkd_frame f;
	struct qkd_peer *p;
	struct qkd_msg m;
	int n = r->n, blocks = n / 100 > 50 ? 50 : n / 100;
	double t;

	if (!kp || !(p = qkd_peer_open(&cfg))) {
		fprintf(stderr, "bench-peer: %s\n", kp ? qkd_peer_open_error() : "key pool");
		return 1;
	}
	qkd_random(buf, sizeof(buf));
	/* 1. one-way 64-byte messages, 100 per key id */
	t = now();
	for (int i = 0; i < n; i++) {
		if (role == QKD_ALICE ? qkd_send(p, (uint64_t)i / 100, 1, buf, 64)
				      : qkd_recv(p, &m) != 1)
			return 2;
	}
	/* Bob's end mark makes Alice's time include delivery */
	if (role == QKD_BOB ? qkd_send(p, 0, 9, NULL, 0) : qkd_recv(p, &m) != 1)
		return 2;
	t = now() - t;
	if (role == QKD_ALICE)
		printf("  64-byte messages one way:     %10.0f msg/s\n", n / t);
	for (int k = 0; k < n / 100; k++)
		qkd_peer_auth_forget(p, (uint64_t)k);
	qkd_peer_auth_forget(p, 0);
	/* 2. round trips */
	t = now();
	for (int i = 0; i < n / 10; i++) {
		if (role == QKD_ALICE) {
			if (qkd_send(p, 1000000, 2, buf, 64) || qkd_recv(p, &m) != 1)
				return 3;
		} else if (qkd_recv(p, &m) != 1 || qkd_send(p, 1000000, 3, buf, 64)) {
			return 3;
		}
	}
	t = now() - t;
	if (role == QKD_ALICE)
		printf("  round trip (64 B each way):   %10.1f us\n", t / (n / 10) * 1e6);
	qkd_peer_auth_forget(p, 1000000);
	/* 3. bulk */
	t = now();
	for (int i = 0; i < n / 20; i++) {
		if (role == QKD_ALICE ? qkd_send(p, 2000000, 4, buf, sizeof(buf))
				      : qkd_recv(p, &m) != 1)
			return 4;
	}
	if (role == QKD_BOB ? qkd_send(p, 0, 9, NULL, 0) : qkd_recv(p, &m) != 1)
		return 4;
	t = now() - t;
	if (role == QKD_ALICE)
		printf("  bulk, 64 KiB messages:        %10.3f GB/s\n",
		       (double)(n / 20) * sizeof(buf) / t / 1e9);
	/* 4. closings: a few messages per block, then verify or defer */
	for (int mode = 0; mode < 2; mode++) {
		t = now();
		for (int b = 0; b < blocks; b++) {
			uint64_t k = 3000000 + (uint64_t)mode * 1000 + (uint64_t)b;

			if (qkd_send(p, k, 5, buf, 256) || qkd_recv(p, &m) != 1)
				return 5;
			memset(&f, 0, sizeof(f));
			if (mode ? qkd_peer_auth_defer(p, k, &f) : qkd_peer_auth_verify(p, k))
				return 5;
		}
		t = now() - t;
		if (role == QKD_ALICE)
			printf("  block with %s:          %10.1f us (incl. one 256-byte "
			       "message each way)\n", mode ? "defer " : "verify", t / blocks * 1e6);
	}
	qkd_peer_close(p);
	qkd_keypool_close(kp);
	return 0;
}

/* Baseline: plain TCP moving the same bulk bytes, no framing, no MAC. */
static double plain_tcp(int n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	static uint8_t buf[BULK_MSG];
	size_t total = (size_t)(n / 20) * BULK_MSG, got = 0;
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd;
	double t;
	pid_t pid;

	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &l))
		return 0;
	pid = fork();
	if (pid == 0) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		size_t sent = 0;

		if (connect(c, (struct sockaddr *)&a, sizeof(a)))
			_exit(1);
		while (sent < total) {
			ssize_t k = write(c, buf, sizeof(buf));

			if (k <= 0)
				_exit(1);
			sent += (size_t)k;
		}
		if (read(c, buf, 1) < 0)
			_exit(1);
		_exit(0);
	}
	fd = accept(lfd, NULL, NULL);
	t = now();
	while (got < total) {
		ssize_t k = read(fd, buf, sizeof(buf));

		if (k <= 0)
			break;
		got += (size_t)k;
	}
	t = now() - t;
	if (write(fd, "x", 1) < 0)
		t = 0;
	close(fd);
	close(lfd);
	waitpid(pid, NULL, 0);
	return t > 0 ? (double)got / t / 1e9 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: bench-peer [--count N]\n\n"
		"Runs Alice and Bob of libqkd's authenticated peer channel as two processes\n"
		"on loopback TCP, with fresh key pools in a temporary directory, and prints:\n"
		"the rate of 64-byte messages sent one way (N of them, default 200000, every\n"
		"one absorbed into its Wegman-Carter transcript on both sides), the round-trip\n"
		"time (N/10 round trips), bulk throughput with 64 KiB messages (N/20 of them)\n"
		"next to plain TCP moving the same bytes (the baseline) and their ratio, and\n"
		"the time to close a block with qkd_peer_auth_verify and qkd_peer_auth_defer.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static uint8_t secret[1 << 20];
	struct run r = { .n = 200000 };
	double base;
	char cmd[128];
	pid_t bob;
	int c, st, rc;

	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			r.n = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (r.n < 1000 || r.n > 100000000) {
		fprintf(stderr, "bench-peer: --count must be 1000..100000000\n");
		return 2;
	}
	strcpy(r.dir, "/tmp/qkd-bench-peer.XXXXXX");
	if (!mkdtemp(r.dir))
		return 1;
	qkd_random(secret, sizeof(secret));
	for (int s = 0; s < 2; s++) {
		snprintf(r.pool[s], sizeof(r.pool[s]), "%s/%c.pool", r.dir, s ? 'b' : 'a');
		if (qkd_keypool_create(r.pool[s], secret, sizeof(secret)))
			return 1;
	}
	explicit_bzero(secret, sizeof(secret));
	snprintf(r.port, sizeof(r.port), "%d", free_port());
	printf("bench-peer: authenticated peer channel, two processes, loopback TCP\n");
	bob = fork();
	if (bob == 0)
		_exit(side(&r, QKD_BOB));
	rc = side(&r, QKD_ALICE);
	waitpid(bob, &st, 0);
	if (!rc && (!WIFEXITED(st) || WEXITSTATUS(st)))
		rc = 1;
	base = plain_tcp(r.n);
	printf("  plain TCP, same bulk bytes:   %10.3f GB/s (baseline)\n", base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", r.dir);
	if (system(cmd))
		fprintf(stderr, "bench-peer: could not remove %s\n", r.dir);
	if (rc)
		fprintf(stderr, "bench-peer: a side failed (%d)\n", rc);
	return rc ? 1 : 0;
}
