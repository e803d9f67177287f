// SPDX-License-Identifier: GPL-2.0
/*
 * The authentication key pool: key is consumed and never handed out twice,
 * not within a process, not across reopen, not across concurrent processes;
 * Bob's take_at refuses spent offsets; spent bytes are wiped in the file;
 * appended (recycled) key becomes available; the spent record survives a torn
 * write and compaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "qkd/keypool.h"

#define SECRET 65536

static void rnd(void *p, size_t n)
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

FIXTURE(pool)
{
	char dir[64];
	char path[128];
	uint8_t secret[SECRET];
};

FIXTURE_SETUP(pool)
{
	strcpy(self->dir, "/tmp/qkd-keypool-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->path, sizeof(self->path), "%s/pool", self->dir);
	rnd(self->secret, sizeof(self->secret));
	ASSERT_EQ(0, qkd_keypool_create(self->path, self->secret, sizeof(self->secret)));
}

FIXTURE_TEARDOWN(pool)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", self->dir);
	if (system(cmd))
		TH_LOG("cleanup of %s failed", self->dir);
}

TEST_F(pool, create_refuses_existing)
{
	EXPECT_EQ(-EEXIST, qkd_keypool_create(self->path, "x", 1));
}

TEST_F(pool, take_consumes_in_order_and_wipes)
{
	struct qkd_keypool *kp = qkd_keypool_open(self->path);
	uint8_t buf[48], file[48];
	uint64_t off, prev = 0, av, tot, sp;
	int fd;

	ASSERT_NE(NULL, kp);
	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(0, qkd_keypool_take(kp, sizeof(buf), buf, &off));
		if (i)
			ASSERT_GE(off, prev + sizeof(buf));
		prev = off;
		/* the bytes are the secret's at that offset */
		ASSERT_EQ(0, memcmp(buf, self->secret + off, sizeof(buf)));
		/* and are gone from the file */
		fd = open(self->path, O_RDONLY);
		ASSERT_EQ((ssize_t)sizeof(file), pread(fd, file, sizeof(file), (off_t)off));
		close(fd);
		for (size_t j = 0; j < sizeof(file); j++) {
			ASSERT_EQ(0, file[j]);
		}
	}
	ASSERT_EQ(0, qkd_keypool_stat(kp, &av, &tot, &sp));
	EXPECT_EQ((uint64_t)SECRET, tot);
	EXPECT_EQ(100 * sizeof(buf), sp);
	EXPECT_EQ((uint64_t)SECRET - 100 * sizeof(buf), av);
	qkd_keypool_close(kp);
}

TEST_F(pool, take_at_refuses_spent)
{
	struct qkd_keypool *kp = qkd_keypool_open(self->path);
	uint8_t buf[64];
	uint64_t off;

	ASSERT_NE(NULL, kp);
	ASSERT_EQ(0, qkd_keypool_take_at(kp, 1000, 32, buf));
	EXPECT_EQ(0, memcmp(buf, self->secret + 1000, 32));
	/* exactly, partly overlapping, containing */
	EXPECT_EQ(-EKEYREJECTED, qkd_keypool_take_at(kp, 1000, 32, buf));
	EXPECT_EQ(-EKEYREJECTED, qkd_keypool_take_at(kp, 1031, 16, buf));
	EXPECT_EQ(-EKEYREJECTED, qkd_keypool_take_at(kp, 990, 11, buf));
	EXPECT_EQ(-EKEYREJECTED, qkd_keypool_take_at(kp, 980, 64, buf));
	/* touching is fine */
	EXPECT_EQ(0, qkd_keypool_take_at(kp, 1032, 16, buf));
	EXPECT_EQ(0, qkd_keypool_take_at(kp, 984, 16, buf));
	/* beyond the end */
	EXPECT_EQ(-ENODATA, qkd_keypool_take_at(kp, SECRET - 8, 16, buf));
	EXPECT_EQ(-EINVAL, qkd_keypool_take_at(kp, UINT64_MAX - 4, 16, buf));
	/* Alice's take skips the spent hole */
	for (int i = 0; i < 200; i++) {
		ASSERT_EQ(0, qkd_keypool_take(kp, 16, buf, &off));
		ASSERT_TRUE(off + 16 <= 984 || off >= 1048);
	}
	qkd_keypool_close(kp);
}

TEST_F(pool, alice_and_bob_mirror)
{
	char bob_path[160];
	struct qkd_keypool *a, *b;
	uint8_t ka[32], kb[32];
	uint64_t off;

	snprintf(bob_path, sizeof(bob_path), "%s/bob", self->dir);
	ASSERT_EQ(0, qkd_keypool_create(bob_path, self->secret, sizeof(self->secret)));
	a = qkd_keypool_open(self->path);
	b = qkd_keypool_open(bob_path);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	for (int i = 0; i < 50; i++) {
		ASSERT_EQ(0, qkd_keypool_take(a, sizeof(ka), ka, &off));
		ASSERT_EQ(0, qkd_keypool_take_at(b, off, sizeof(kb), kb));
		ASSERT_EQ(0, memcmp(ka, kb, sizeof(ka)));
		/* a replayed offset is refused */
		ASSERT_EQ(-EKEYREJECTED, qkd_keypool_take_at(b, off, sizeof(kb), kb));
	}
	qkd_keypool_close(a);
	qkd_keypool_close(b);
}

TEST_F(pool, never_reused_across_reopen)
{
	uint64_t offs[60], off;
	uint8_t buf[16];
	int n = 0;

	for (int round = 0; round < 3; round++) {
		struct qkd_keypool *kp = qkd_keypool_open(self->path);

		ASSERT_NE(NULL, kp);
		/* everything taken before is refused after reopen */
		for (int i = 0; i < n; i++) {
			ASSERT_EQ(-EKEYREJECTED, qkd_keypool_take_at(kp, offs[i], 16, buf));
		}
		for (int i = 0; i < 20; i++) {
			ASSERT_EQ(0, qkd_keypool_take(kp, 16, buf, &off));
			for (int j = 0; j < n; j++) {
				ASSERT_TRUE(off + 16 <= offs[j] || off >= offs[j] + 16);
			}
			offs[n++] = off;
		}
		qkd_keypool_close(kp);
	}
}

TEST_F(pool, never_reused_across_processes)
{
	enum { PROCS = 4, TAKES = 150, LEN = 24 };
	int fds[PROCS][2];
	pid_t pid[PROCS];
	uint64_t all[PROCS * TAKES];
	int n = 0, status;

	for (int p = 0; p < PROCS; p++) {
		ASSERT_EQ(0, pipe(fds[p]));
		pid[p] = fork();
		ASSERT_GE(pid[p], 0);
		if (pid[p] == 0) {
			struct qkd_keypool *kp = qkd_keypool_open(self->path);
			uint8_t buf[LEN];
			uint64_t off;

			close(fds[p][0]);
			if (!kp)
				_exit(1);
			for (int i = 0; i < TAKES; i++) {
				if (qkd_keypool_take(kp, LEN, buf, &off))
					_exit(2);
				/* the key must be the secret's bytes */
				if (memcmp(buf, self->secret + off, LEN))
					_exit(3);
				if (write(fds[p][1], &off, sizeof(off)) != sizeof(off))
					_exit(4);
			}
			qkd_keypool_close(kp);
			_exit(0);
		}
		close(fds[p][1]);
	}
	for (int p = 0; p < PROCS; p++) {
		uint64_t off;

		while (read(fds[p][0], &off, sizeof(off)) == sizeof(off))
			all[n++] = off;
		close(fds[p][0]);
		ASSERT_EQ(pid[p], waitpid(pid[p], &status, 0));
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ(0, WEXITSTATUS(status));
	}
	ASSERT_EQ(PROCS * TAKES, n);
	for (int i = 0; i < n; i++) {
		for (int j = i + 1; j < n; j++) {
			ASSERT_TRUE(all[i] + LEN <= all[j] || all[j] + LEN <= all[i]);
		}
	}
	struct qkd_keypool *kp = qkd_keypool_open(self->path);
	uint64_t sp;

	ASSERT_NE(NULL, kp);
	ASSERT_EQ(0, qkd_keypool_stat(kp, NULL, NULL, &sp));
	EXPECT_EQ((uint64_t)PROCS * TAKES * LEN, sp);
	qkd_keypool_close(kp);
}

TEST_F(pool, exhaustion_and_append)
{
	struct qkd_keypool *kp = qkd_keypool_open(self->path);
	static uint8_t buf[SECRET], fresh[4096];
	uint64_t off, av, tot;

	ASSERT_NE(NULL, kp);
	ASSERT_EQ(0, qkd_keypool_take(kp, SECRET - 100, buf, &off));
	EXPECT_EQ(0u, off);
	EXPECT_EQ(-ENOSPC, qkd_keypool_take(kp, 101, buf, &off));
	ASSERT_EQ(0, qkd_keypool_take(kp, 100, buf, &off));
	EXPECT_EQ(-ENOSPC, qkd_keypool_take(kp, 1, buf, &off));
	rnd(fresh, sizeof(fresh));
	ASSERT_EQ(0, qkd_keypool_append(kp, fresh, sizeof(fresh)));
	ASSERT_EQ(0, qkd_keypool_stat(kp, &av, &tot, NULL));
	EXPECT_EQ((uint64_t)sizeof(fresh), av);
	EXPECT_EQ((uint64_t)SECRET + sizeof(fresh), tot);
	ASSERT_EQ(0, qkd_keypool_take(kp, 1000, buf, &off));
	EXPECT_EQ((uint64_t)SECRET, off);
	EXPECT_EQ(0, memcmp(buf, fresh, 1000));
	qkd_keypool_close(kp);
}

TEST_F(pool, missing_or_torn_record)
{
	char log[160];
	struct qkd_keypool *kp;
	uint8_t buf[16];
	uint64_t off;
	int fd;

	snprintf(log, sizeof(log), "%s.spent", self->path);
	kp = qkd_keypool_open(self->path);
	ASSERT_NE(NULL, kp);
	ASSERT_EQ(0, qkd_keypool_take(kp, 16, buf, &off));
	qkd_keypool_close(kp);
	/* a torn trailing record is cut; the complete ones stay */
	fd = open(log, O_WRONLY | O_APPEND);
	ASSERT_EQ(5, write(fd, "\x01\x02\x03\x04\x05", 5));
	close(fd);
	kp = qkd_keypool_open(self->path);
	ASSERT_NE(NULL, kp);
	EXPECT_EQ(-EKEYREJECTED, qkd_keypool_take_at(kp, off, 16, buf));
	ASSERT_EQ(0, qkd_keypool_take(kp, 16, buf, &off));
	qkd_keypool_close(kp);
	/* no record at all: refuse rather than start over */
	ASSERT_EQ(0, unlink(log));
	errno = 0;
	EXPECT_EQ(NULL, qkd_keypool_open(self->path));
	EXPECT_EQ(ENOENT, errno);
}

TEST_F(pool, zeroed_key_is_refused)
{
	struct qkd_keypool *kp = qkd_keypool_open(self->path);
	static const uint8_t zero[64];
	uint8_t buf[32];
	uint64_t tot;

	ASSERT_NE(NULL, kp);
	ASSERT_EQ(0, qkd_keypool_append(kp, zero, sizeof(zero)));
	ASSERT_EQ(0, qkd_keypool_stat(kp, NULL, &tot, NULL));
	EXPECT_EQ(-EKEYREJECTED, qkd_keypool_take_at(kp, tot - 32, 32, buf));
	qkd_keypool_close(kp);
}

TEST_F(pool, compaction_keeps_record)
{
	struct qkd_keypool *kp = qkd_keypool_open(self->path);
	struct stat st;
	char log[160];
	uint8_t buf[8];
	uint64_t off, sp;

	ASSERT_NE(NULL, kp);
	snprintf(log, sizeof(log), "%s.spent", self->path);
	/* 6000 adjacent 8-byte takes except slot 1: two merged ranges, 6000 records */
	for (uint64_t i = 0; i < 6001; i++) {
		if (i == 1)
			continue;
		ASSERT_EQ(0, qkd_keypool_take_at(kp, i * 8, 8, buf));
	}
	ASSERT_EQ(0, stat(log, &st));
	/* compacted: far fewer than 6000 records */
	EXPECT_LT(st.st_size, 16 + 16 * 3000);
	ASSERT_EQ(0, qkd_keypool_stat(kp, NULL, NULL, &sp));
	EXPECT_EQ(6000u * 8, sp);
	qkd_keypool_close(kp);
	kp = qkd_keypool_open(self->path);
	ASSERT_NE(NULL, kp);
	ASSERT_EQ(0, qkd_keypool_stat(kp, NULL, NULL, &sp));
	EXPECT_EQ(6000u * 8, sp);
	for (uint64_t i = 0; i < 6001; i += 97) {
		if (i != 1)
			ASSERT_EQ(-EKEYREJECTED, qkd_keypool_take_at(kp, i * 8, 8, buf));
	}
	/* the only free slot below the end is slot 1 */
	ASSERT_EQ(0, qkd_keypool_take(kp, 8, buf, &off));
	EXPECT_EQ(8u, off);
	ASSERT_EQ(0, qkd_keypool_take(kp, 8, buf, &off));
	EXPECT_EQ(6001u * 8, off);
	qkd_keypool_close(kp);
}

TEST_HARNESS_MAIN
