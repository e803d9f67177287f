// SPDX-License-Identifier: GPL-2.0
/*
 * The key pump /dev/qkd_pump: exactly the bytes pushed, in key-id order, each
 * once, whatever the read sizes; nonblocking reads and poll; blocking reads
 * woken by a push; a pump closed mid-key wipes the rest; link removal ends the
 * stream; a read that faults half way loses no byte; attach checks.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "ks-test.h"

FIXTURE(pump) {
	struct qksc *c;
	char link[QKD_LINK_NAME_MAX];
	int fd;
};

FIXTURE_SETUP(pump)
{
	struct qksc_link_cfg cfg = { .low_watermark = 0, .uid = -1, .gid = -1 };

	ASSERT_EQ(0, qksc_open(&self->c)) TH_LOG("%s", qksc_error(self->c));
	ks_link_name(self->link, sizeof(self->link), "pump");
	cfg.name = self->link;
	ASSERT_EQ(0, qksc_link_add(self->c, &cfg));
	self->fd = open(QKD_PUMP_DEV, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(pump)
{
	if (self->fd >= 0)
		close(self->fd);
	qksc_link_del(self->c, self->link);
	qksc_close(self->c);
}

static int attach(int fd, const char *link)
{
	struct qkd_pump_attach a;

	memset(&a, 0, sizeof(a));
	snprintf(a.link, sizeof(a.link), "%s", link);
	return ioctl(fd, QKD_PUMP_ATTACH, &a) ? -errno : 0;
}

static ssize_t read_full(int fd, uint8_t *buf, size_t n, size_t chunk)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, buf + got, chunk < n - got ? chunk : n - got);
		if (r <= 0)
			return r < 0 ? -errno : (ssize_t)got;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Push nkeys random keys of random lengths; stream[] gets them in id order. */
static size_t push_random(struct qksc *c, const char *link, int nkeys,
			  uint8_t *stream, uint64_t first_id)
{
	uint16_t lens[64];
	size_t offs[64], total = 0;
	int i;

	if (nkeys > 64 || getrandom(lens, sizeof(lens), 0) != sizeof(lens))
		return 0;
	for (i = 0; i < nkeys; i++) {
		lens[i] = (uint16_t)(1 + lens[i] % QKD_KEY_MAX_BYTES);
		offs[i] = total;
		if (getrandom(stream + total, lens[i], 0) != lens[i])
			return 0;
		total += lens[i];
	}
	/* Push in reverse order: the pump must still stream in id order. */
	for (i = nkeys - 1; i >= 0; i--)
		if (qksc_key_push(c, link, first_id + (uint64_t)i, stream + offs[i], lens[i]))
			return 0;
	return total;
}

TEST_F(pump, exact_bytes_any_read_size)
{
	static const size_t chunks[] = { 1, 7, 4096, 65536 };
	static uint8_t want[64 * QKD_KEY_MAX_BYTES], got[64 * QKD_KEY_MAX_BYTES];
	struct qksc_link_info li;
	size_t total, k;

	ASSERT_EQ(0, attach(self->fd, self->link));
	for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		total = push_random(self->c, self->link, 16, want, 1000 * (k + 1));
		ASSERT_GT(total, 0);
		ASSERT_EQ((ssize_t)total, read_full(self->fd, got, total, chunks[k]));
		EXPECT_EQ(0, memcmp(want, got, total)) TH_LOG("chunk %zu", chunks[k]);
		ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
		EXPECT_EQ(0, li.keys_avail);
		EXPECT_EQ(0, li.keys_reserved);
	}
	ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
	EXPECT_EQ(li.stats.bytes_pushed, li.stats.bytes_delivered);
	EXPECT_EQ(64, li.stats.delivered);
}

TEST_F(pump, nonblocking_and_poll)
{
	struct pollfd p = { .fd = self->fd, .events = POLLIN };
	uint8_t k[5] = { 1, 2, 3, 4, 5 }, buf[16];

	ASSERT_EQ(0, attach(self->fd, self->link));
	ASSERT_EQ(0, fcntl(self->fd, F_SETFL, O_NONBLOCK));
	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(0, poll(&p, 1, 50));
	ASSERT_EQ(0, qksc_key_push(self->c, self->link, 1, k, sizeof(k)));
	ASSERT_EQ(1, poll(&p, 1, 1000));
	EXPECT_TRUE(p.revents & POLLIN);
	/* A short read leaves the rest of the key reserved for this file. */
	ASSERT_EQ(2, read(self->fd, buf, 2));
	ASSERT_EQ(1, poll(&p, 1, 0));
	ASSERT_EQ(3, read(self->fd, buf + 2, sizeof(buf) - 2));
	EXPECT_EQ(0, memcmp(buf, k, 5));
	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(EAGAIN, errno);
}

TEST_F(pump, blocking_read_woken_by_push)
{
	uint8_t k[32], buf[32];
	pid_t pid;
	int status;

	ks_key_bytes(5, k, sizeof(k));
	ASSERT_EQ(0, attach(self->fd, self->link));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct qksc *c;

		usleep(300000);
		if (qksc_open(&c) || qksc_key_push(c, self->link, 5, k, sizeof(k)))
			_exit(1);
		_exit(0);
	}
	ASSERT_EQ(32, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, k, sizeof(k)));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, status);
}

TEST_F(pump, close_mid_key_wipes_rest)
{
	uint8_t k1[100], k2[50], buf[100];
	struct qksc_link_info li;
	int fd2;

	ks_key_bytes(1, k1, sizeof(k1));
	ks_key_bytes(2, k2, sizeof(k2));
	ASSERT_EQ(0, qksc_key_push(self->c, self->link, 1, k1, sizeof(k1)));
	ASSERT_EQ(0, qksc_key_push(self->c, self->link, 2, k2, sizeof(k2)));
	ASSERT_EQ(0, attach(self->fd, self->link));
	ASSERT_EQ(10, read(self->fd, buf, 10));
	ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
	EXPECT_EQ(1, li.keys_reserved);
	EXPECT_EQ(1, li.keys_avail);
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
	EXPECT_EQ(0, li.keys_reserved);
	EXPECT_EQ(1, li.keys_avail);
	/* Key 1 counts as delivered (10 bytes) and wiped. */
	EXPECT_EQ(1, li.stats.delivered);
	EXPECT_EQ(1, li.stats.wiped);
	EXPECT_EQ(10, li.stats.bytes_delivered);
	/* Another pump starts at key 2: no byte of key 1 is handed out twice. */
	fd2 = open(QKD_PUMP_DEV, O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, attach(fd2, self->link));
	ASSERT_EQ(50, read(fd2, buf, sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, k2, 50));
	close(fd2);
}

/*
 * A read into a buffer whose second page is unmapped faults after the first
 * page: what was copied counts, the rest stays for the next read, in order.
 */
TEST_F(pump, fault_mid_read_loses_nothing)
{
	static uint8_t want[3 * 4096], got[3 * 4096];
	long pg = sysconf(_SC_PAGESIZE);
	struct qksc_link_info li;
	uint8_t *map;
	ssize_t r, r2;
	int i;

	ASSERT_EQ(sizeof(want), getrandom(want, sizeof(want), 0));
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, qksc_key_push(self->c, self->link, (uint64_t)i + 1,
					   want + 4096 * i, 4096));
	ASSERT_EQ(0, attach(self->fd, self->link));
	map = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, munmap(map + pg, pg));
	/* 100 bytes fit before the hole. */
	r = read(self->fd, map + pg - 100, 8192);
	ASSERT_GE(r, 0) TH_LOG("read into a partly unmapped buffer: %s (bytes lost)",
			       strerror(errno));
	ASSERT_LE(r, 100);
	memcpy(got, map + pg - 100, (size_t)r);
	munmap(map, pg);
	r2 = read_full(self->fd, got + r, sizeof(got) - (size_t)r, 65536);
	EXPECT_EQ((ssize_t)sizeof(got) - r, r2);
	EXPECT_EQ(0, memcmp(want, got, sizeof(got)));
	ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
	EXPECT_EQ(3, li.stats.delivered);
	EXPECT_EQ(li.stats.bytes_pushed, li.stats.bytes_delivered);
}

TEST_F(pump, link_removal_ends_stream)
{
	struct pollfd p = { .fd = self->fd, .events = POLLIN };
	uint8_t buf[16];

	ASSERT_EQ(0, attach(self->fd, self->link));
	ASSERT_EQ(0, qksc_link_del(self->c, self->link));
	ASSERT_EQ(1, poll(&p, 1, 1000));
	EXPECT_TRUE(p.revents & POLLHUP);
	EXPECT_EQ(0, read(self->fd, buf, sizeof(buf)));
}

TEST_F(pump, attach_checks)
{
	uint8_t buf[4];
	pid_t pid;
	int status;

	EXPECT_EQ(-1, read(self->fd, buf, sizeof(buf)));
	EXPECT_EQ(ENOTCONN, errno);
	EXPECT_EQ(-ENOENT, attach(self->fd, "no-such-link"));
	EXPECT_EQ(-EINVAL, attach(self->fd, "bad:name"));
	ASSERT_EQ(0, attach(self->fd, self->link));
	EXPECT_EQ(-EBUSY, attach(self->fd, self->link));
	EXPECT_EQ(-ENOTTY, ioctl(self->fd, _IO(0xb7, 99)) ? -errno : 0);

	/* An unprivileged user with the device opened may not attach to root's link. */
	ASSERT_EQ(0, chmod(QKD_PUMP_DEV, 0666));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd;

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(100);
		fd = open(QKD_PUMP_DEV, O_RDONLY);
		if (fd < 0)
			_exit(101);
		_exit(attach(fd, self->link) == -EACCES ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	chmod(QKD_PUMP_DEV, 0600);
	EXPECT_EQ(0, status);
}

/*
 * The opener's credentials count, not the caller's: a descriptor opened as
 * nobody stays nobody's even in a process that is root again.
 */
TEST_F(pump, opener_credentials_count)
{
	pid_t pid;
	int status;

	ASSERT_EQ(0, chmod(QKD_PUMP_DEV, 0666));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd;

		if (setresgid(-1, 65534, -1) || setresuid(-1, 65534, -1))
			_exit(100);
		fd = open(QKD_PUMP_DEV, O_RDONLY);
		if (fd < 0)
			_exit(101);
		if (setresuid(-1, 0, -1) || setresgid(-1, 0, -1))
			_exit(102);
		_exit(attach(fd, self->link) == -EACCES ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	chmod(QKD_PUMP_DEV, 0600);
	EXPECT_EQ(0, status);
}

TEST_F(pump, configured_uid_may_attach)
{
	struct qksc_link_cfg cfg = { .low_watermark = 0, .uid = 65534, .gid = -1 };
	char link[QKD_LINK_NAME_MAX];
	uint8_t k[8], buf[8];
	pid_t pid;
	int status;

	ks_link_name(link, sizeof(link), "pumpuid");
	cfg.name = link;
	ASSERT_EQ(0, qksc_link_add(self->c, &cfg));
	ks_key_bytes(3, k, sizeof(k));
	ASSERT_EQ(0, qksc_key_push(self->c, link, 3, k, sizeof(k)));
	ASSERT_EQ(0, chmod(QKD_PUMP_DEV, 0666));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd;

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(100);
		fd = open(QKD_PUMP_DEV, O_RDONLY | O_NONBLOCK);
		if (fd < 0 || attach(fd, link))
			_exit(101);
		if (read(fd, buf, sizeof(buf)) != sizeof(buf) || memcmp(buf, k, sizeof(k)))
			_exit(102);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	chmod(QKD_PUMP_DEV, 0600);
	EXPECT_EQ(0, status);
	qksc_link_del(self->c, link);
}

TEST_HARNESS_MAIN
