// SPDX-License-Identifier: GPL-2.0
/* Process, port, pool and frame-file helpers shared by the test programs. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
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
#include "qkd/stream.h"
#include "testproc.h"

void tp_bin_dir(char *buf, size_t size)
{
	const char *b = getenv("QKD_BUILD");
	char *top = realpath(b ? b : "build", NULL);

	/* The modules run in a scratch directory: the path must be absolute. */
	snprintf(buf, size, "%s/bin", top ? top : "build");
	free(top);
}

void tp_mkdtemp(char *tmpl)
{
	if (!mkdtemp(tmpl))
		abort();
}

void tp_rmdir(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
}

void tp_identical_pools(const char *dir, size_t bytes)
{
	uint8_t *secret = malloc(bytes);
	char path[256];

	if (!secret)
		abort();
	qkd_random(secret, bytes);
	snprintf(path, sizeof(path), "%s/a.pool", dir);
	if (qkd_keypool_create(path, secret, bytes))
		abort();
	snprintf(path, sizeof(path), "%s/b.pool", dir);
	if (qkd_keypool_create(path, secret, bytes))
		abort();
	explicit_bzero(secret, bytes);
	free(secret);
}

int tp_free_ports(int n)
{
	for (int tries = 0; tries < 100; tries++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t l = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM, 0), base, ok = 1;

		/* port 0: the kernel picks one nobody uses, the rest are probed */
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
		    getsockname(fd, (struct sockaddr *)&a, &l))
			abort();
		base = ntohs(a.sin_port);
		close(fd);
		if (base + n > 65535)
			continue;
		for (int i = 0; i < n && ok; i++) {
			a.sin_port = htons((uint16_t)(base + i));
			fd = socket(AF_INET, SOCK_STREAM, 0);
			ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
			close(fd);
		}
		if (ok)
			return base;
	}
	abort();
}

void tp_env_init(struct tp_env *e, const char *tmpl, size_t pool_bytes, int nports)
{
	tp_bin_dir(e->bin, sizeof(e->bin));
	if (strlen(tmpl) >= sizeof(e->dir))
		abort();
	strcpy(e->dir, tmpl);
	tp_mkdtemp(e->dir);
	tp_identical_pools(e->dir, pool_bytes);
	e->port = tp_free_ports(nports);
}

static pid_t spawn_shell(const char *shell, const char *dir, const char *cmd)
{
	pid_t pid = fork();

	if (pid == 0) {
		/* own process group: a timeout kills the whole command line */
		setpgid(0, 0);
		if (chdir(dir))
			_exit(127);
		execl(shell, shell, "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

pid_t tp_spawn(const char *dir, const char *cmd)
{
	return spawn_shell("/bin/sh", dir, cmd);
}

pid_t tp_spawn_bash(const char *dir, const char *cmd)
{
	return spawn_shell("/bin/bash", dir, cmd);
}

int tp_wait(pid_t pid, int timeout_s)
{
	struct timespec t0, now;
	int st;

	if (pid < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > timeout_s) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		usleep(10000);
	}
}

int tp_run_pair(const char *dir, const char *alice, const char *bob, unsigned head_start_us,
		int alice_s, int bob_s, int log_lines)
{
	pid_t pid[2];
	int st[2];

	pid[1] = tp_spawn(dir, bob);
	usleep(head_start_us);
	pid[0] = tp_spawn(dir, alice);
	st[0] = tp_wait(pid[0], alice_s);
	st[1] = tp_wait(pid[1], bob_s);
	if (st[0] || st[1]) {
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "cd %s && tail -n %d *.log >&2", dir, log_lines);
		if (system(cmd))
			fprintf(stderr, "no logs\n");
	}
	return st[0] || st[1];
}

int tp_write_frames(const char *dir, const char *name, struct qkd_frame **f, int n)
{
	char path[256];
	struct qkd_stream *s;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	s = qkd_stream_open(fd, QKD_STREAM_WRITE | QKD_STREAM_FALLBACK);
	if (!s)
		return -1;
	for (int i = 0; i < n && !r; i++)
		if (f[i])
			r = qkd_write_frame(s, f[i]);
	if (qkd_stream_close(s))
		r = -1;
	return r;
}

int tp_read_frames(const char *dir, const char *name, struct qkd_frame **out, int max)
{
	char path[256];
	struct qkd_stream *s;
	int fd, n = 0, r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	s = qkd_stream_open(fd, QKD_STREAM_READ | QKD_STREAM_FALLBACK);
	if (!s)
		return -1;
	while (n < max) {
		out[n] = NULL;
		r = qkd_read_frame(s, &out[n]);
		if (r <= 0) {
			qkd_frame_free(out[n]);
			if (r < 0)
				n = -1;
			break;
		}
		n++;
	}
	qkd_stream_close(s);
	return n;
}

void tp_free_frames(struct qkd_frame **f, int n)
{
	for (int i = 0; i < n; i++)
		qkd_frame_free(f[i]);
}
