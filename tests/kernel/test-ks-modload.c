// SPDX-License-Identifier: GPL-2.0
/*
 * Load and unload qkd_keystore 100 times (ITER to change) with keys present:
 * pushed keys, keys read through the keyring (deferred free), a pump holding a
 * half-read key closed before unload, keys in a second network namespace,
 * ESP SAs bound to a link.
 * Every unload must succeed and, afterwards, root's key count in
 * /proc/key-users must be back at its baseline exactly and the kmalloc slab
 * object count within noise. Oopses and WARNs are caught by vm-run.
 * Needs QKD_MODULE (set by scripts/vm-run); leaves the module loaded.
 */
#include <fcntl.h>
#include <keyutils.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "ks-test.h"

#define KEYS 20

static int load(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	err = syscall(SYS_finit_module, fd, "", 0) ? -errno : 0;
	close(fd);
	return err;
}

static int unload(void)
{
	return syscall(SYS_delete_module, "qkd_keystore", O_NONBLOCK) ? -errno : 0;
}

static long root_keys(void)
{
	char line[256];
	long n = -1;
	FILE *f = fopen("/proc/key-users", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " 0: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

static long kmalloc_objs(void)
{
	char line[512], name[64];
	long active, sum = 0;
	FILE *f = fopen("/proc/slabinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld", name, &active) == 2 &&
		    !strncmp(name, "kmalloc-", 8) && strncmp(name, "kmalloc-rcl", 11) &&
		    strncmp(name, "kmalloc-cg", 10))
			sum += active;
	fclose(f);
	return sum;
}

static void settle(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	sync();
	if (fd >= 0) {
		if (write(fd, "3", 1) < 0)
			perror("drop_caches");
		close(fd);
	}
	usleep(300000);
}

static int push_keys(const char *link)
{
	struct qksc_link_cfg cfg = { .name = link, .max_keys = 64, .low_watermark = -1,
				     .uid = -1, .gid = -1 };
	uint8_t k[32];
	struct qksc *c;
	int i, err;

	err = qksc_open(&c);
	if (!err)
		err = qksc_link_add(c, &cfg);
	for (i = 1; !err && i <= KEYS; i++) {
		ks_key_bytes((uint64_t)i, k, sizeof(k));
		err = qksc_key_push(c, link, (uint64_t)i, k, sizeof(k));
	}
	qksc_close(c);
	return err;
}

/* An ESP SA pair keyed from the link (no traffic needed): unload must remove it. */
static int bind_sa(const char *link)
{
	struct qksc_xfrm_cfg x = { .link = link, .src = "10.99.0.1", .dst = "10.99.0.2",
				   .spi_base = 0x2000, .reqid = 9, .grace = -1,
				   .first_key_id = 100, .life_seconds = 60 };
	uint8_t k[QKD_XFRM_KEY_BYTES];
	struct qksc *c;
	uint32_t id;
	int err, i;

	err = qksc_open(&c);
	for (i = 0; !err && i < 2; i++) {
		ks_key_bytes(100 + (uint64_t)i, k, sizeof(k));
		err = qksc_key_push(c, link, 100 + (uint64_t)i, k, sizeof(k));
	}
	if (!err)
		err = qksc_xfrm_bind(c, &x, &id);
	qksc_close(c);
	return err;
}

/*
 * Extra consumers: a keyring read, a half-read pump key, another namespace
 * (which exits with keys and SAs in it), SAs bound to the link.
 */
static int busy_round(const char *link)
{
	struct qkd_pump_attach a;
	struct qksc_link_info li;
	struct qksc *c;
	uint8_t buf[32];
	char desc[64];
	key_serial_t key;
	pid_t pid;
	int fd, status, err;

	err = qksc_open(&c);
	if (!err)
		err = qksc_link_get(c, link, &li);
	qksc_close(c);
	if (err)
		return err;
	snprintf(desc, sizeof(desc), "%s:1", link);
	key = keyctl_search(li.keyring, QKD_KEY_TYPE, desc, 0);
	if (key < 0 || keyctl_read(key, (char *)buf, sizeof(buf)) != sizeof(buf))
		return -EIO;
	memset(&a, 0, sizeof(a));
	snprintf(a.link, sizeof(a.link), "%s", link);
	fd = open(QKD_PUMP_DEV, O_RDONLY | O_NONBLOCK);
	if (fd < 0 || ioctl(fd, QKD_PUMP_ATTACH, &a) || read(fd, buf, 5) != 5)
		return -EIO;
	close(fd);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(unshare(CLONE_NEWNET) || push_keys("ns") || bind_sa("ns") ? 1 : 0);
	if (waitpid(pid, &status, 0) != pid || status)
		return -EIO;
	return bind_sa(link);
}

FIXTURE(modload_fixture) {
	int unused;
};

FIXTURE_SETUP(modload_fixture)
{
}

FIXTURE_TEARDOWN(modload_fixture)
{
}

TEST_F_TIMEOUT(modload_fixture, insmod_rmmod_with_keys_no_leak, 900)
{
	const char *mod = getenv("QKD_MODULE");
	const char *it = getenv("ITER");
	int iter = it ? atoi(it) : 100, i, failed = 0, fd;
	long keys0, keys1, slab0, slab1;
	char link[32];

	ASSERT_NE(NULL, mod) TH_LOG("QKD_MODULE not set: run through scripts/vm-run");
	unload();
	/* Warm-up: first-time allocations (key users, netns) are not leaks. */
	ASSERT_EQ(0, load(mod));
	ASSERT_EQ(0, push_keys("w"));
	ASSERT_EQ(0, busy_round("w"));
	ASSERT_EQ(0, unload());
	settle();
	keys0 = root_keys();
	slab0 = kmalloc_objs();
	ASSERT_LT(0, keys0);

	for (i = 0; i < iter; i++) {
		snprintf(link, sizeof(link), "m%d", i);
		if (load(mod)) {
			failed++;
			continue;
		}
		failed += push_keys(link) != 0;
		if (i % 10 == 0)
			failed += busy_round(link) != 0;
		if (unload()) {
			TH_LOG("round %d: unload failed: %s", i, strerror(errno));
			failed++;
		}
	}
	EXPECT_EQ(0, failed);

	/* Keys are freed by the keyring garbage collector: give it a moment. */
	for (i = 0; i < 50 && root_keys() > keys0; i++)
		usleep(100000);
	settle();
	keys1 = root_keys();
	slab1 = kmalloc_objs();
	TH_LOG("%d rounds: root keys %ld -> %ld, kmalloc objects %ld -> %ld",
	       iter, keys0, keys1, slab0, slab1);
	EXPECT_EQ(keys0, keys1);
	/* Leaking just the store entries would add KEYS x rounds objects. */
	EXPECT_GT(400, slab1 - slab0);

	/* An open pump pins the module; closing it lets the unload through. */
	ASSERT_EQ(0, load(mod));
	fd = open(QKD_PUMP_DEV, O_RDONLY);
	ASSERT_LE(0, fd);
	EXPECT_NE(0, unload());
	close(fd);
	EXPECT_EQ(0, unload());
	ASSERT_EQ(0, load(mod));
}

TEST_HARNESS_MAIN
