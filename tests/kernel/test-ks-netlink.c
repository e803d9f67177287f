// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore generic-netlink family: links, push/fetch, key states, limits,
 * statistics and multicast events. Runs in the VM with the module loaded.
 */
#include <poll.h>
#include <stdlib.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "kselftest_harness.h"
#include "ks-test.h"

FIXTURE(nl) {
	struct qksc *c;
	char link[QKD_LINK_NAME_MAX];
};

FIXTURE_SETUP(nl)
{
	struct qksc_link_cfg cfg = { .low_watermark = -1, .uid = -1, .gid = -1 };

	ASSERT_EQ(0, qksc_open(&self->c)) TH_LOG("%s", qksc_error(self->c));
	ks_link_name(self->link, sizeof(self->link), "nl");
	cfg.name = self->link;
	cfg.max_keys = 8;
	cfg.max_bytes = 256;
	cfg.low_watermark = 2;
	ASSERT_EQ(0, qksc_link_add(self->c, &cfg)) TH_LOG("%s", qksc_error(self->c));
}

FIXTURE_TEARDOWN(nl)
{
	qksc_link_del(self->c, self->link);
	qksc_close(self->c);
}

static int push_id(struct qksc *c, const char *link, uint64_t id, size_t len)
{
	uint8_t key[QKD_KEY_MAX_BYTES];

	ks_key_bytes(id, key, len);
	return qksc_key_push(c, link, id, key, len);
}

TEST_F(nl, link_show_and_duplicate)
{
	struct qksc_link_info li;
	struct qksc_link_cfg cfg = { .name = self->link, .low_watermark = -1,
				     .uid = -1, .gid = -1 };

	ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
	EXPECT_STREQ(self->link, li.name);
	EXPECT_EQ(8, li.max_keys);
	EXPECT_EQ(256, li.max_bytes);
	EXPECT_EQ(2, li.low_watermark);
	EXPECT_EQ(0, li.keys_avail);
	EXPECT_GT(li.keyring, 0);
	EXPECT_EQ(-EEXIST, qksc_link_add(self->c, &cfg));
	EXPECT_NE(NULL, strstr(qksc_error(self->c), "exists"));
	EXPECT_EQ(-ENOENT, qksc_link_get(self->c, "no-such-link", &li));
	EXPECT_EQ(-ENOENT, qksc_link_del(self->c, "no-such-link"));
	cfg.name = "bad name";
	EXPECT_EQ(-EINVAL, qksc_link_add(self->c, &cfg));
	cfg.name = "";
	EXPECT_EQ(-EINVAL, qksc_link_add(self->c, &cfg));
}

TEST_F(nl, push_fetch_by_id_and_next)
{
	uint8_t buf[QKD_KEY_MAX_BYTES], want[64];
	uint64_t id;
	size_t len;

	ASSERT_EQ(0, push_id(self->c, self->link, 30, 32));
	ASSERT_EQ(0, push_id(self->c, self->link, 10, 16));
	ASSERT_EQ(0, push_id(self->c, self->link, 20, 24));
	EXPECT_EQ(-EEXIST, push_id(self->c, self->link, 20, 24));

	/* By id. */
	ASSERT_EQ(0, qksc_key_fetch(self->c, self->link, &(uint64_t){20}, &id, buf,
				    sizeof(buf), &len));
	ks_key_bytes(20, want, 24);
	EXPECT_EQ(20, id);
	ASSERT_EQ(24, len);
	EXPECT_EQ(0, memcmp(buf, want, len));
	/* Consumed: gone for every path. */
	EXPECT_EQ(-ENOKEY, qksc_key_fetch(self->c, self->link, &(uint64_t){20}, &id,
					  buf, sizeof(buf), &len));
	/* Next = lowest available id, not push order. */
	ASSERT_EQ(0, qksc_key_fetch(self->c, self->link, NULL, &id, buf, sizeof(buf), &len));
	EXPECT_EQ(10, id);
	ASSERT_EQ(0, qksc_key_fetch(self->c, self->link, NULL, &id, buf, sizeof(buf), &len));
	EXPECT_EQ(30, id);
	ks_key_bytes(30, want, 32);
	EXPECT_EQ(0, memcmp(buf, want, 32));
	EXPECT_EQ(-ENODATA, qksc_key_fetch(self->c, self->link, NULL, &id, buf,
					   sizeof(buf), &len));
	EXPECT_NE(NULL, strstr(qksc_error(self->c), "no key available"));
	/* A consumed id may be pushed again (a new key of the same id). */
	EXPECT_EQ(0, push_id(self->c, self->link, 20, 8));
}

TEST_F(nl, limits)
{
	struct qksc_link_info li;
	uint8_t buf[QKD_KEY_MAX_BYTES];
	uint64_t id;
	size_t len;
	int i;

	/* Byte limit 256: 200 + 56 fit, one more byte does not. */
	ASSERT_EQ(0, push_id(self->c, self->link, 1, 200));
	ASSERT_EQ(0, push_id(self->c, self->link, 2, 56));
	EXPECT_EQ(-EDQUOT, push_id(self->c, self->link, 3, 1));
	EXPECT_NE(NULL, strstr(qksc_error(self->c), "byte limit"));
	ASSERT_EQ(0, qksc_key_fetch(self->c, self->link, &(uint64_t){1}, &id, buf,
				    sizeof(buf), &len));
	/* Key limit 8: 7 more fit beside key 2. */
	for (i = 0; i < 7; i++)
		ASSERT_EQ(0, push_id(self->c, self->link, 100 + i, 4));
	EXPECT_EQ(-ENOSPC, push_id(self->c, self->link, 200, 4));
	EXPECT_NE(NULL, strstr(qksc_error(self->c), "key count limit"));
	ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
	EXPECT_EQ(8, li.keys_avail);
	EXPECT_EQ(56 + 7 * 4, li.bytes_stored);
	EXPECT_EQ(9, li.stats.pushed);
	EXPECT_EQ(1, li.stats.delivered);
	EXPECT_EQ(1, li.stats.wiped);
	EXPECT_EQ(200 + 56 + 28, li.stats.bytes_pushed);
	EXPECT_EQ(200, li.stats.bytes_delivered);
}

static int count_keys(uint64_t id, uint32_t len, int state, void *arg)
{
	int *n = arg;

	if (state != QKD_KEY_AVAILABLE)
		return -EPROTO;
	n[0]++;
	n[1] += (int)len;
	return 0;
}

TEST_F(nl, list_and_stats)
{
	struct qksc_stats before, after;
	uint32_t links;
	int n[2] = { 0, 0 };
	int i;

	ASSERT_EQ(0, qksc_stats_get(self->c, &before, &links));
	EXPECT_GE(links, 1);
	for (i = 0; i < 5; i++)
		ASSERT_EQ(0, push_id(self->c, self->link, 1000 + i, 10));
	ASSERT_EQ(0, qksc_key_list(self->c, self->link, count_keys, n));
	EXPECT_EQ(5, n[0]);
	EXPECT_EQ(50, n[1]);
	ASSERT_EQ(0, qksc_link_del(self->c, self->link));
	/* Removed links still count in the namespace's totals. */
	ASSERT_EQ(0, qksc_stats_get(self->c, &after, &links));
	EXPECT_EQ(before.pushed + 5, after.pushed);
	EXPECT_EQ(before.wiped + 5, after.wiped);
	EXPECT_EQ(before.bytes_pushed + 50, after.bytes_pushed);
}

TEST_F(nl, key_list_dump_spans_messages)
{
	struct qksc_link_cfg cfg = { .max_keys = 5000, .low_watermark = 0,
				     .uid = -1, .gid = -1 };
	char big[QKD_LINK_NAME_MAX];
	int n[2] = { 0, 0 };
	int i;

	ks_link_name(big, sizeof(big), "nlbig");
	cfg.name = big;
	ASSERT_EQ(0, qksc_link_add(self->c, &cfg));
	for (i = 0; i < 1500; i++)
		ASSERT_EQ(0, push_id(self->c, big, (uint64_t)i * 3, 4));
	EXPECT_EQ(0, qksc_key_list(self->c, big, count_keys, n));
	EXPECT_EQ(1500, n[0]);
	EXPECT_EQ(0, qksc_link_del(self->c, big));
}

/* Read every pending event of a subscribed raw socket into cmds[]. */
static int read_events(int fd, int family, int *cmds, uint32_t *avail, int max)
{
	static uint8_t buf[16384];
	struct nlmsghdr *nlh;
	int n = 0;
	ssize_t len;

	while (n < max && poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 500) > 0) {
		len = recv(fd, buf, sizeof(buf), 0);
		if (len <= 0)
			break;
		for (nlh = (struct nlmsghdr *)buf; NLMSG_OK(nlh, (size_t)len) && n < max;
		     nlh = NLMSG_NEXT(nlh, len)) {
			struct nlattr *tb[QKD_A_MAX + 1];

			if (nlh->nlmsg_type != family ||
			    genlmsg_parse(nlh, 0, tb, QKD_A_MAX, NULL) < 0)
				continue;
			cmds[n] = ((struct genlmsghdr *)NLMSG_DATA(nlh))->cmd;
			avail[n] = tb[QKD_A_KEYS_AVAIL] ? nla_get_u32(tb[QKD_A_KEYS_AVAIL]) : 0;
			n++;
		}
	}
	return n;
}

TEST_F(nl, events_new_key_and_low_watermark)
{
	struct ks_raw r;
	uint8_t buf[QKD_KEY_MAX_BYTES];
	int cmds[32];
	uint32_t avail[32];
	uint64_t id;
	size_t len;
	int grp, n, i;

	grp = genl_ctrl_resolve_grp(qksc_sock(self->c), QKD_GENL_NAME,
				    QKD_GENL_MCGRP_EVENTS);
	ASSERT_GT(grp, 0);
	ASSERT_EQ(0, ks_raw_open(&r, qksc_family(self->c)));
	ASSERT_EQ(0, setsockopt(r.fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp,
				sizeof(grp)));
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, push_id(self->c, self->link, 1 + i, 16));
	/* avail 3 -> 2 -> 1: below the watermark (2) once, one event only. */
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, qksc_key_fetch(self->c, self->link, NULL, &id, buf,
					    sizeof(buf), &len));
	/* Refill above the mark, drain again: a second low-watermark event. */
	ASSERT_EQ(0, push_id(self->c, self->link, 10, 16));
	ASSERT_EQ(0, push_id(self->c, self->link, 11, 16));
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, qksc_key_fetch(self->c, self->link, NULL, &id, buf,
					    sizeof(buf), &len));
	n = read_events(r.fd, qksc_family(self->c), cmds, avail, 32);
	ASSERT_EQ(7, n);
	EXPECT_EQ(QKD_CMD_EVENT_NEW_KEY, cmds[0]);
	EXPECT_EQ(1, avail[0]);
	EXPECT_EQ(QKD_CMD_EVENT_NEW_KEY, cmds[2]);
	EXPECT_EQ(3, avail[2]);
	EXPECT_EQ(QKD_CMD_EVENT_LOW_WATERMARK, cmds[3]);
	EXPECT_EQ(1, avail[3]);
	EXPECT_EQ(QKD_CMD_EVENT_NEW_KEY, cmds[4]);
	EXPECT_EQ(QKD_CMD_EVENT_NEW_KEY, cmds[5]);
	EXPECT_EQ(3, avail[5]);
	EXPECT_EQ(QKD_CMD_EVENT_LOW_WATERMARK, cmds[6]);
	EXPECT_EQ(1, avail[6]);
	close(r.fd);
}

TEST_F(nl, link_removal_wipes_and_wakes)
{
	struct qksc_link_info li;
	uint8_t buf[QKD_KEY_MAX_BYTES];
	uint64_t id;
	size_t len;
	int i;

	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, push_id(self->c, self->link, i, 16));
	ASSERT_EQ(0, qksc_link_del(self->c, self->link));
	EXPECT_EQ(-ENOENT, qksc_link_get(self->c, self->link, &li));
	EXPECT_EQ(-ENOENT, qksc_key_fetch(self->c, self->link, NULL, &id, buf,
					  sizeof(buf), &len));
	/* Same name again: a fresh, empty link. */
	{
		struct qksc_link_cfg cfg = { .name = self->link, .low_watermark = -1,
					     .uid = -1, .gid = -1 };
		ASSERT_EQ(0, qksc_link_add(self->c, &cfg));
	}
	ASSERT_EQ(0, qksc_link_get(self->c, self->link, &li));
	EXPECT_EQ(0, li.keys_avail);
	EXPECT_EQ(0, li.stats.pushed);
}

TEST_HARNESS_MAIN
