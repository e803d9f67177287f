/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the peer channel tests: a pair of key pools made from one
 * random secret (Alice's and Bob's copy, like two machines), a free loopback
 * port, and configurations. Each side of a test runs in its own process.
 */
#ifndef QKD_PEER_TEST_H
#define QKD_PEER_TEST_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qkd/keypool.h"
#include "qkd/peer.h"

struct pair {
	char dir[64];
	char apool[128], bpool[128];
	char port[16];
};

static inline void pt_rnd(void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = getrandom(b, n, 0);

		if (r > 0) {
			b += r;
			n -= (size_t)r;
		}
	}
}

/* A port nobody listens on right now (bind to 0, read it, close). */
static inline int pt_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &l))
		return -1;
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static inline int pt_setup(struct pair *pr, size_t secret_len)
{
	uint8_t *s = malloc(secret_len);
	int rc;

	strcpy(pr->dir, "/tmp/qkd-peer-XXXXXX");
	if (!s || !mkdtemp(pr->dir))
		return -1;
	snprintf(pr->apool, sizeof(pr->apool), "%s/alice.pool", pr->dir);
	snprintf(pr->bpool, sizeof(pr->bpool), "%s/bob.pool", pr->dir);
	snprintf(pr->port, sizeof(pr->port), "%d", pt_free_port());
	pt_rnd(s, secret_len);
	rc = qkd_keypool_create(pr->apool, s, secret_len) ||
	     qkd_keypool_create(pr->bpool, s, secret_len);
	free(s);
	return rc ? -1 : 0;
}

static inline void pt_teardown(struct pair *pr)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", pr->dir);
	if (system(cmd))
		fprintf(stderr, "cleanup of %s failed\n", pr->dir);
}

static inline struct qkd_peer_config pt_cfg(enum qkd_role role, const char *port,
					    struct qkd_keypool *kp, int timeout_ms)
{
	struct qkd_peer_config c = {
		.role = role, .pipeline = "test", .stage = "s", .instance = 0,
		.address = "127.0.0.1", .port = port, .listen = role == QKD_BOB,
		.timeout_ms = timeout_ms, .pool = kp,
	};

	return c;
}

/* Fork a child running fn(pr, arg); returns its pid. */
static inline pid_t pt_spawn(int (*fn)(struct pair *, void *), struct pair *pr, void *arg)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn(pr, arg));
	return pid;
}

static inline int pt_wait(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Deterministic message content, so the receiver can check it. */
static inline void pt_fill(uint8_t *b, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)x;
	}
}

#endif
