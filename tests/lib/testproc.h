/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers the test programs share to run module binaries as real processes:
 * a scratch directory with identical key pools, loopback ports, spawning a
 * shell command line in its own process group, waiting with a timeout, and
 * frame files written and read back. Linked into every build/tests/test-*.
 * Every helper either returns an error the test asserts on or, for setup that
 * cannot sensibly fail (mkdtemp, socket), aborts.
 */
#ifndef QKD_TESTPROC_H
#define QKD_TESTPROC_H

#include <stddef.h>
#include <sys/types.h>

struct qkd_frame;

/* Absolute path of the build's bin/ ($QKD_BUILD, else ./build) into buf. */
void tp_bin_dir(char *buf, size_t size);
/* mkdtemp(tmpl) or abort. */
void tp_mkdtemp(char *tmpl);
/* rm -rf dir; complains on stderr when that fails. */
void tp_rmdir(const char *dir);
/*
 * dir/a.pool and dir/b.pool: the same bytes fresh from getrandom(), each with
 * an empty spent record (as two peers provisioned with one pre-shared key).
 * Aborts on failure.
 */
void tp_identical_pools(const char *dir, size_t bytes);
/* The first of n consecutive loopback ports nobody is bound to right now. */
int tp_free_ports(int n);

/* The scratch of a test that runs a pair of modules. */
struct tp_env {
	char dir[64];	/* temporary directory the modules run in */
	char bin[1024];	/* tp_bin_dir() */
	int port;	/* the first of the free ports asked for */
};

/*
 * e->bin, a fresh directory from tmpl ("/tmp/NAME.XXXXXX"), identical pools of
 * pool_bytes in it and nports free consecutive ports. Aborts on failure.
 */
void tp_env_init(struct tp_env *e, const char *tmpl, size_t pool_bytes, int nports);

/* Run cmd with /bin/sh -c in dir, in its own process group. Returns the pid. */
pid_t tp_spawn(const char *dir, const char *cmd);
/* The same with /bin/bash (for scripts that need it). */
pid_t tp_spawn_bash(const char *dir, const char *cmd);
/*
 * Wait up to timeout_s for pid. Exit status, 128 + signal when killed, or -1
 * on timeout (the whole process group is killed and reaped).
 */
int tp_wait(pid_t pid, int timeout_s);

/*
 * Run a pair of command lines in dir: Bob's first (he listens), Alice's
 * head_start_us later; wait up to alice_s for Alice, then up to bob_s for Bob.
 * When either did not exit 0, the last log_lines lines of every *.log in dir
 * go to stderr. 0 when both exited 0, else 1.
 */
int tp_run_pair(const char *dir, const char *alice, const char *bob, unsigned head_start_us,
		int alice_s, int bob_s, int log_lines);

/* Write the non-NULL frames of f[0..n) to dir/name. 0 or -1. */
int tp_write_frames(const char *dir, const char *name, struct qkd_frame **f, int n);
/* Read up to max frames of dir/name into out. Count, or -1 on a bad stream. */
int tp_read_frames(const char *dir, const char *name, struct qkd_frame **out, int max);
/* Free f[0..n). */
void tp_free_frames(struct qkd_frame **f, int n);

#endif
