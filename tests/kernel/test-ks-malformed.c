// SPDX-License-Identifier: GPL-2.0
/*
 * Malformed generic-netlink input to qkd_keystore: missing, oversized and
 * wrong-type attributes, broken attribute headers, unknown commands and
 * attributes, output-only attributes, unprivileged senders, and a burst of
 * random messages. Every one must get an error (never an oops: vm-run fails
 * the run on any kernel report) and the store must stay untouched.
 */
#include <sched.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "ks-test.h"

FIXTURE(bad) {
	struct qksc *c;
	struct ks_raw r;
	char link[QKD_LINK_NAME_MAX];
	uint8_t a[8192];
};

FIXTURE_SETUP(bad)
{
	struct qksc_link_cfg cfg = { .low_watermark = -1, .uid = -1, .gid = -1 };

	ASSERT_EQ(0, qksc_open(&self->c)) TH_LOG("%s", qksc_error(self->c));
	ASSERT_EQ(0, ks_raw_open(&self->r, qksc_family(self->c)));
	ks_link_name(self->link, sizeof(self->link), "bad");
	cfg.name = self->link;
	ASSERT_EQ(0, qksc_link_add(self->c, &cfg));
}

FIXTURE_TEARDOWN(bad)
{
	qksc_link_del(self->c, self->link);
	close(self->r.fd);
	qksc_close(self->c);
}

/* The link must still be empty: nothing malformed was stored. */
static int stored(struct qksc *c, const char *link)
{
	struct qksc_link_info li;

	if (qksc_link_get(c, link, &li))
		return -1;
	return (int)li.stats.pushed;
}

static size_t put_link(uint8_t *a, size_t off, const char *link)
{
	return ks_put(a, off, QKD_A_LINK, link, strlen(link) + 1);
}

TEST_F(bad, missing_attributes)
{
	uint64_t id = 1;
	uint8_t key[16] = { 1 };
	size_t n;

	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, NULL, 0));
	n = put_link(self->a, 0, self->link);
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	n = ks_put(self->a, n, QKD_A_KEY_ID, &id, sizeof(id));
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	n = ks_put(self->a, 0, QKD_A_KEY_ID, &id, sizeof(id));
	n = ks_put(self->a, n, QKD_A_KEY_DATA, key, sizeof(key));
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_LINK_ADD, 0, NULL, 0));
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_LINK_DEL, 0, NULL, 0));
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_KEY_FETCH, 0, NULL, 0));
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_LINK_GET, 0, NULL, 0));
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_KEY_LIST, NLM_F_DUMP, NULL, 0));
	EXPECT_EQ(0, stored(self->c, self->link));
}

TEST_F(bad, oversized_and_empty_key)
{
	static uint8_t big[QKD_KEY_MAX_BYTES + 1];
	uint64_t id = 2;
	size_t n, base;

	base = put_link(self->a, 0, self->link);
	base = ks_put(self->a, base, QKD_A_KEY_ID, &id, sizeof(id));
	n = ks_put(self->a, base, QKD_A_KEY_DATA, big, sizeof(big));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	n = ks_put(self->a, base, QKD_A_KEY_DATA, NULL, 0);
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	/* The largest allowed key is fine. */
	n = ks_put(self->a, base, QKD_A_KEY_DATA, big, QKD_KEY_MAX_BYTES);
	EXPECT_EQ(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	EXPECT_EQ(1, stored(self->c, self->link));
}

TEST_F(bad, wrong_types)
{
	uint32_t id32 = 3, zero = 0;
	uint64_t id = 3, big = 1ULL << 41;
	uint8_t key[8] = { 1 }, u8 = 1;
	char name[64];
	size_t n, base;

	/* KEY_ID as a u32. */
	n = put_link(self->a, 0, self->link);
	n = ks_put(self->a, n, QKD_A_KEY_ID, &id32, sizeof(id32));
	n = ks_put(self->a, n, QKD_A_KEY_DATA, key, sizeof(key));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	/* LINK without its terminating NUL. */
	n = ks_put(self->a, 0, QKD_A_LINK, self->link, strlen(self->link));
	n = ks_put(self->a, n, QKD_A_KEY_ID, &id, sizeof(id));
	n = ks_put(self->a, n, QKD_A_KEY_DATA, key, sizeof(key));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	/* LINK too long. */
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	n = ks_put(self->a, 0, QKD_A_LINK, name, sizeof(name));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_LINK_ADD, 0, self->a, n));
	/* LINK as a u8. */
	n = ks_put(self->a, 0, QKD_A_LINK, &u8, 1);
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_LINK_DEL, 0, self->a, n));
	/* Limits out of range. */
	base = ks_put(self->a, 0, QKD_A_LINK, "range", 6);
	n = ks_put(self->a, base, QKD_A_MAX_KEYS, &zero, sizeof(zero));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_LINK_ADD, 0, self->a, n));
	n = ks_put(self->a, base, QKD_A_MAX_BYTES, &big, sizeof(big));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_LINK_ADD, 0, self->a, n));
	n = ks_put(self->a, base, QKD_A_MAX_KEYS, &(uint32_t){ 4 }, 4);
	n = ks_put(self->a, n, QKD_A_LOW_WATERMARK, &(uint32_t){ 5 }, 4);
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_LINK_ADD, 0, self->a, n));
	EXPECT_EQ(-ENOENT, qksc_link_del(self->c, "range"));
	EXPECT_EQ(0, stored(self->c, self->link));
}

TEST_F(bad, unknown_and_output_only_attributes)
{
	uint32_t v = 7;
	uint64_t id = 4;
	uint8_t key[8] = { 1 };
	size_t n, base;

	base = put_link(self->a, 0, self->link);
	base = ks_put(self->a, base, QKD_A_KEY_ID, &id, sizeof(id));
	base = ks_put(self->a, base, QKD_A_KEY_DATA, key, sizeof(key));
	n = ks_put(self->a, base, 200, &v, sizeof(v));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	n = ks_put(self->a, base, QKD_A_KEYS_AVAIL, &v, sizeof(v));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	n = ks_put(self->a, base, QKD_A_UNSPEC, &v, sizeof(v));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	EXPECT_EQ(0, stored(self->c, self->link));
}

TEST_F(bad, broken_attribute_headers)
{
	uint64_t id = 5;
	size_t n;

	/* Attribute length beyond the message. */
	n = put_link(self->a, 0, self->link);
	n = ks_put_raw(self->a, n, QKD_A_KEY_ID, 200, &id, sizeof(id));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	/* Attribute length shorter than its header. */
	n = put_link(self->a, 0, self->link);
	n = ks_put_raw(self->a, n, QKD_A_KEY_ID, 2, &id, sizeof(id));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n));
	/* Trailing bytes that are not a whole attribute. */
	n = put_link(self->a, 0, self->link);
	memset(self->a + n, 0xff, 3);
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_KEY_PUSH, 0, self->a, n + 3));
	EXPECT_EQ(0, stored(self->c, self->link));
}

TEST_F(bad, xfrm_bind_refusals)
{
	uint8_t a4[4] = { 10, 0, 0, 1 }, b4[4] = { 10, 0, 0, 2 }, a5[5] = { 0 };
	uint8_t b16[16] = { 0xfe, 0x80, [15] = 1 };
	uint32_t base = 0x1000, reqid = 1, zero = 0, big = 0xffff0001, icv = 100, id = 42;
	uint8_t mode = 7;
	size_t n, head;

	head = put_link(self->a, 0, self->link);
	/* Missing addresses, SPI base or reqid. */
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a, head));
	n = ks_put(self->a, head, QKD_A_XFRM_SADDR, a4, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_DADDR, b4, 4);
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a, n));
	n = ks_put(self->a, n, QKD_A_XFRM_SPI_BASE, &base, 4);
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a, n));
	n = ks_put(self->a, n, QKD_A_XFRM_REQID, &reqid, 4);
	/* Complete but the link has no key: refused, nothing installed. */
	EXPECT_EQ(-ENODATA, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a, n));
	/* Bad values. */
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a,
				ks_put(self->a, n, QKD_A_XFRM_MODE, &mode, 1)));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a,
				ks_put(self->a, n, QKD_A_XFRM_ICV_BITS, &icv, 4)));
	n = ks_put(self->a, head, QKD_A_XFRM_SADDR, a5, 5);
	n = ks_put(self->a, n, QKD_A_XFRM_DADDR, b4, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_SPI_BASE, &base, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_REQID, &reqid, 4);
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a, n));
	n = ks_put(self->a, head, QKD_A_XFRM_SADDR, a4, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_DADDR, b16, 16);
	n = ks_put(self->a, n, QKD_A_XFRM_SPI_BASE, &base, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_REQID, &reqid, 4);
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a, n));
	n = ks_put(self->a, head, QKD_A_XFRM_SADDR, a4, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_DADDR, a4, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_SPI_BASE, &base, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_REQID, &reqid, 4);
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a, n));
	n = ks_put(self->a, head, QKD_A_XFRM_SADDR, a4, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_DADDR, b4, 4);
	n = ks_put(self->a, n, QKD_A_XFRM_REQID, &reqid, 4);
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a,
				ks_put(self->a, n, QKD_A_XFRM_SPI_BASE, &zero, 4)));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_XFRM_BIND, 0, self->a,
				ks_put(self->a, n, QKD_A_XFRM_SPI_BASE, &big, 4)));
	/* Unbind of an unknown binding; unbind without an id. */
	EXPECT_EQ(-ENOENT, ks_raw_req(&self->r, QKD_CMD_XFRM_UNBIND, 0, self->a,
				      ks_put(self->a, head, QKD_A_XFRM_ID, &id, 4)));
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_XFRM_UNBIND, 0, self->a, head));
	EXPECT_EQ(-EINVAL, ks_raw_req(&self->r, QKD_CMD_XFRM_GET, NLM_F_DUMP, NULL, 0));
}

TEST_F(bad, unknown_commands)
{
	int cmd;

	for (cmd = QKD_CMD_XFRM_GET + 1; cmd < 256; cmd++)
		EXPECT_GT(0, ks_raw_req(&self->r, (uint8_t)cmd, 0, NULL, 0));
	EXPECT_GT(0, ks_raw_req(&self->r, QKD_CMD_UNSPEC, 0, NULL, 0));
	/* Event numbers are not commands. */
	for (cmd = QKD_CMD_EVENT_NEW_KEY; cmd <= QKD_CMD_EVENT_LINK; cmd++)
		EXPECT_GT(0, ks_raw_req(&self->r, (uint8_t)cmd, 0, NULL, 0));
}

TEST_F(bad, unprivileged_sender)
{
	pid_t pid = fork();
	int status;

	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct ks_raw r;
		uint64_t id = 6;
		uint8_t key[8] = { 1 };
		size_t n;
		int fails = 0;

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(100);
		if (ks_raw_open(&r, self->r.family))
			_exit(101);
		n = put_link(self->a, 0, self->link);
		n = ks_put(self->a, n, QKD_A_KEY_ID, &id, sizeof(id));
		n = ks_put(self->a, n, QKD_A_KEY_DATA, key, sizeof(key));
		fails += ks_raw_req(&r, QKD_CMD_KEY_PUSH, 0, self->a, n) != -EPERM;
		n = put_link(self->a, 0, self->link);
		fails += ks_raw_req(&r, QKD_CMD_KEY_FETCH, 0, self->a, n) != -EPERM;
		fails += ks_raw_req(&r, QKD_CMD_LINK_DEL, 0, self->a, n) != -EPERM;
		n = ks_put(self->a, 0, QKD_A_LINK, "evil", 5);
		fails += ks_raw_req(&r, QKD_CMD_LINK_ADD, 0, self->a, n) != -EPERM;
		n = put_link(self->a, 0, self->link);
		fails += ks_raw_req(&r, QKD_CMD_XFRM_BIND, 0, self->a, n) != -EPERM;
		fails += ks_raw_req(&r, QKD_CMD_XFRM_UNBIND, 0, self->a, n) != -EPERM;
		fails += ks_raw_req(&r, QKD_CMD_XFRM_GET, NLM_F_DUMP, self->a, n) != -EPERM;
		/* Key ids, lengths and counters are not for everyone either. */
		n = put_link(self->a, 0, self->link);
		fails += ks_raw_req(&r, QKD_CMD_LINK_GET, 0, self->a, n) != -EPERM;
		fails += ks_raw_req(&r, QKD_CMD_LINK_GET, NLM_F_DUMP, self->a, 0) != -EPERM;
		fails += ks_raw_req(&r, QKD_CMD_KEY_LIST, NLM_F_DUMP, self->a, n) != -EPERM;
		fails += ks_raw_req(&r, QKD_CMD_STATS_GET, 0, self->a, 0) != -EPERM;
		_exit(fails);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(0, stored(self->c, self->link));
	EXPECT_EQ(-ENOENT, qksc_link_del(self->c, "evil"));
}

static int still_works(struct qksc *c, const char *link)
{
	uint8_t k[4] = { 9, 9, 9, 9 }, out[QKD_KEY_MAX_BYTES];
	uint64_t id;
	size_t len;

	if (qksc_key_push(c, link, 77, k, sizeof(k)) ||
	    qksc_key_fetch(c, link, NULL, &id, out, sizeof(out), &len))
		return -1;
	return id == 77 && len == 4 && !memcmp(k, out, 4) ? 0 : -1;
}

/*
 * Random messages from root in a throwaway network namespace: whatever they
 * manage to create dies with it (which exercises the namespace-exit wipe).
 */
TEST_F(bad, random_burst_in_own_netns)
{
	pid_t pid = fork();
	int status;

	ASSERT_LE(0, pid);
	if (pid == 0) {
		static const uint16_t types[] = { QKD_A_LINK, QKD_A_KEY_ID, QKD_A_KEY_DATA,
						  QKD_A_MAX_KEYS, QKD_A_MAX_BYTES,
						  QKD_A_LOW_WATERMARK, QKD_A_UID, QKD_A_GID,
						  QKD_A_KEYS_AVAIL, 0, 99 };
		struct qksc *c;
		struct ks_raw r;
		uint8_t rnd[512];
		int i, j;

		if (unshare(CLONE_NEWNET) || qksc_open(&c) || ks_raw_open(&r, qksc_family(c)))
			_exit(100);
		for (i = 0; i < 3000; i++) {
			size_t n = 0;
			int nattr;

			if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
				_exit(101);
			nattr = rnd[0] % 5;
			for (j = 0; j < nattr; j++) {
				uint16_t t = types[rnd[1 + j] % (sizeof(types) / sizeof(types[0]))];
				size_t len = rnd[8 + j] % 24;

				/* Valid-looking names now and then, so links get created. */
				if (t == QKD_A_LINK && rnd[16 + j] & 1)
					n = ks_put(self->a, n, t, (rnd[17 + j] & 1) ? "r1" : "r2", 3);
				else if (rnd[24 + j] % 8 == 0)
					n = ks_put_raw(self->a, n, t, (uint16_t)rnd[32 + j], rnd + 64,
						       len);
				else
					n = ks_put(self->a, n, t, rnd + 64 + j * 24, len);
			}
			ks_raw_req(&r, (uint8_t)(rnd[40] % 16), (rnd[41] & 1) ? NLM_F_DUMP : 0,
				   self->a, n);
		}
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* The module still works. */
	EXPECT_EQ(0, still_works(self->c, self->link));
}

TEST_HARNESS_MAIN
