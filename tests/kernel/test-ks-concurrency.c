// SPDX-License-Identifier: GPL-2.0
/*
 * Concurrent pushers and readers: several processes push thousands of keys
 * while netlink fetchers, a key-pump reader and a keyring (keyctl) reader take
 * them. Every key must be delivered exactly once, with its own bytes, and the
 * link's counters must agree.
 */
#include <fcntl.h>
#include <keyutils.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "ks-test.h"

#define PUSHERS		4
#define KEYS_PER	2500
#define NKEYS		(PUSHERS * KEYS_PER)
#define KLEN		32

enum { BY_FETCH, BY_PUMP, BY_KEYRING, NWAYS };

struct shared {
	atomic_int seen[NKEYS];
	atomic_int delivered;
	atomic_int dup;
	atomic_int bad;
	atomic_int by[NWAYS];
	atomic_int pushers_done;
};

/* Key id in the first 8 bytes, so a pump reader can tell keys apart. */
static void make_key(uint64_t id, uint8_t *k)
{
	memcpy(k, &id, 8);
	ks_key_bytes(id, k + 8, KLEN - 8);
}

static void deliver(struct shared *sh, const uint8_t *k, size_t len, int way)
{
	uint8_t want[KLEN];
	uint64_t id;

	memcpy(&id, k, 8);
	if (len != KLEN || id >= NKEYS) {
		atomic_fetch_add(&sh->bad, 1);
		return;
	}
	make_key(id, want);
	if (memcmp(want, k, KLEN))
		atomic_fetch_add(&sh->bad, 1);
	if (atomic_fetch_add(&sh->seen[id], 1))
		atomic_fetch_add(&sh->dup, 1);
	atomic_fetch_add(&sh->by[way], 1);
	atomic_fetch_add(&sh->delivered, 1);
}

static int done(struct shared *sh)
{
	return atomic_load(&sh->delivered) >= NKEYS;
}

static void pusher(struct shared *sh, const char *link, int p)
{
	struct qksc *c;
	uint8_t k[KLEN];
	int i;

	if (qksc_open(&c))
		_exit(10);
	/* Interleaved ids: pusher p owns p, p+PUSHERS, ... */
	for (i = 0; i < KEYS_PER; i++) {
		uint64_t id = (uint64_t)i * PUSHERS + (uint64_t)p;

		make_key(id, k);
		if (qksc_key_push(c, link, id, k, KLEN))
			_exit(11);
	}
	atomic_fetch_add(&sh->pushers_done, 1);
	_exit(0);
}

static void fetcher(struct shared *sh, const char *link)
{
	uint8_t k[QKD_KEY_MAX_BYTES];
	struct qksc *c;
	uint64_t id;
	size_t len;
	int err;

	if (qksc_open(&c))
		_exit(20);
	while (!done(sh)) {
		err = qksc_key_fetch(c, link, NULL, &id, k, sizeof(k), &len);
		if (!err)
			deliver(sh, k, len, BY_FETCH);
		else if (err == -ENODATA)
			usleep(1000);
		else
			_exit(21);
	}
	_exit(0);
}

static void pump_reader(struct shared *sh, const char *link)
{
	struct qkd_pump_attach a;
	uint8_t k[KLEN];
	size_t got = 0;
	ssize_t n;
	int fd;

	memset(&a, 0, sizeof(a));
	snprintf(a.link, sizeof(a.link), "%s", link);
	fd = open(QKD_PUMP_DEV, O_RDONLY | O_NONBLOCK);
	if (fd < 0 || ioctl(fd, QKD_PUMP_ATTACH, &a))
		_exit(30);
	/* Stop only at a key boundary: a half-read key would be lost. */
	while (!done(sh) || got) {
		n = read(fd, k + got, KLEN - got);
		if (n > 0) {
			got += (size_t)n;
			if (got == KLEN) {
				deliver(sh, k, KLEN, BY_PUMP);
				got = 0;
			}
		} else if (n < 0 && errno == EAGAIN) {
			poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 20);
		} else {
			_exit(31);
		}
	}
	_exit(0);
}

static void keyring_reader(struct shared *sh, const char *link, key_serial_t kr)
{
	char desc[64];
	uint8_t k[KLEN];
	uint64_t id = 0;
	long n;
	key_serial_t key;

	while (!done(sh)) {
		if (atomic_load(&sh->seen[id])) {
			id = (id + 1) % NKEYS;
			continue;
		}
		snprintf(desc, sizeof(desc), "%s:%llu", link, (unsigned long long)id);
		id = (id + 7) % NKEYS;
		key = keyctl_search(kr, QKD_KEY_TYPE, desc, 0);
		if (key < 0)
			continue;
		n = keyctl_read(key, (char *)k, sizeof(k));
		if (n == KLEN)
			deliver(sh, k, (size_t)n, BY_KEYRING);
		else if (n >= 0 || (errno != ENOKEY && errno != EKEYREVOKED))
			atomic_fetch_add(&sh->bad, 1);
	}
	_exit(0);
}

FIXTURE(conc) {
	int unused;
};

FIXTURE_SETUP(conc)
{
}

FIXTURE_TEARDOWN(conc)
{
}

TEST_F_TIMEOUT(conc, pushers_and_readers_exactly_once, 300)
{
	struct qksc_link_cfg cfg = { .max_keys = NKEYS, .low_watermark = 0,
				     .uid = -1, .gid = -1 };
	struct qksc_link_info li;
	char link[QKD_LINK_NAME_MAX];
	struct shared *sh;
	struct timespec t0, t1;
	pid_t pids[PUSHERS + 4];
	int np = 0, i, status, missing = 0;
	struct qksc *c;

	ASSERT_EQ(0, qksc_open(&c)) TH_LOG("%s", qksc_error(c));
	ks_link_name(link, sizeof(link), "conc");
	cfg.name = link;
	ASSERT_EQ(0, qksc_link_add(c, &cfg));
	ASSERT_EQ(0, qksc_link_get(c, link, &li));
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		  -1, 0);
	ASSERT_NE(MAP_FAILED, sh);
	memset(sh, 0, sizeof(*sh));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 4; i++) {
		pids[np] = fork();
		ASSERT_LE(0, pids[np]);
		if (pids[np] == 0) {
			if (i < 2)
				fetcher(sh, link);
			else if (i == 2)
				pump_reader(sh, link);
			else
				keyring_reader(sh, link, li.keyring);
		}
		np++;
	}
	for (i = 0; i < PUSHERS; i++) {
		pids[np] = fork();
		ASSERT_LE(0, pids[np]);
		if (pids[np] == 0)
			pusher(sh, link, i);
		np++;
	}
	for (i = 0; i < np; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("child %d status %#x", i, status);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	for (i = 0; i < NKEYS; i++)
		missing += atomic_load(&sh->seen[i]) == 0;
	TH_LOG("%d keys in %.1f s: fetch %d, pump %d, keyring %d",
	       NKEYS, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
	       atomic_load(&sh->by[BY_FETCH]), atomic_load(&sh->by[BY_PUMP]),
	       atomic_load(&sh->by[BY_KEYRING]));
	EXPECT_EQ(PUSHERS, atomic_load(&sh->pushers_done));
	EXPECT_EQ(0, missing);
	EXPECT_EQ(0, atomic_load(&sh->dup));
	EXPECT_EQ(0, atomic_load(&sh->bad));
	EXPECT_EQ(NKEYS, atomic_load(&sh->delivered));
	/* Every path really competed. */
	EXPECT_LT(0, atomic_load(&sh->by[BY_FETCH]));
	EXPECT_LT(0, atomic_load(&sh->by[BY_PUMP]));
	EXPECT_LT(0, atomic_load(&sh->by[BY_KEYRING]));
	ASSERT_EQ(0, qksc_link_get(c, link, &li));
	EXPECT_EQ(0, li.keys_avail);
	EXPECT_EQ(0, li.keys_reserved);
	EXPECT_EQ(NKEYS, li.stats.pushed);
	EXPECT_EQ(NKEYS, li.stats.delivered);
	EXPECT_EQ(NKEYS, li.stats.wiped);
	EXPECT_EQ(NKEYS * KLEN, li.stats.bytes_delivered);
	qksc_link_del(c, link);
	qksc_close(c);
}

TEST_HARNESS_MAIN
