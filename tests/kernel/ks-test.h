/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the qkd_keystore tests that run inside the VM
 * (scripts/vm-run tests/kernel/run-all), with the module loaded.
 */
#ifndef KS_TEST_H
#define KS_TEST_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "../../keystore/lib/qksc.h"

/* A link name unique to this process and tag. */
static inline void ks_link_name(char *buf, size_t n, const char *tag)
{
	snprintf(buf, n, "%s-%d", tag, (int)getpid());
}

/* Deterministic key bytes for key id: lets readers check what they got. */
static inline void ks_key_bytes(uint64_t id, uint8_t *buf, size_t len)
{
	uint64_t x = id * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		buf[i] = (uint8_t)((x * 0x2545f4914f6cdd1dULL) >> 56);
	}
}

/* Raw generic-netlink socket: sends exactly the bytes a test builds. */
struct ks_raw {
	int fd;
	uint16_t family;
	uint32_t seq;
};

static inline int ks_raw_open(struct ks_raw *r, int family)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int one = 1;

	r->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (r->fd < 0)
		return -errno;
	if (bind(r->fd, (struct sockaddr *)&sa, sizeof(sa)))
		return -errno;
	setsockopt(r->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	setsockopt(r->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	r->family = (uint16_t)family;
	r->seq = 1;
	return 0;
}

/* Append an attribute with an arbitrary header length field. */
static inline size_t ks_put_raw(uint8_t *buf, size_t off, uint16_t type,
				uint16_t hdrlen, const void *data, size_t len)
{
	struct nlattr a = { .nla_len = hdrlen, .nla_type = type };

	memcpy(buf + off, &a, sizeof(a));
	if (len)
		memcpy(buf + off + NLA_HDRLEN, data, len);
	return off + NLA_ALIGN(NLA_HDRLEN + len);
}

static inline size_t ks_put(uint8_t *buf, size_t off, uint16_t type,
			    const void *data, size_t len)
{
	return ks_put_raw(buf, off, type, (uint16_t)(NLA_HDRLEN + len), data, len);
}

/*
 * Send cmd with the attribute bytes attrs[0..len) and wait for the ack.
 * Returns the kernel's error (0 or negative errno); dump replies are skipped.
 */
static inline int ks_raw_req(struct ks_raw *r, uint8_t cmd, uint16_t flags,
			     const void *attrs, size_t len)
{
	static uint8_t buf[65536];
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	struct genlmsghdr *gh = NLMSG_DATA(nlh);
	uint32_t seq = r->seq++;
	ssize_t n;

	if (len > sizeof(buf) - NLMSG_HDRLEN - GENL_HDRLEN)
		return -E2BIG;
	memset(buf, 0, NLMSG_HDRLEN + GENL_HDRLEN);
	nlh->nlmsg_len = (uint32_t)(NLMSG_HDRLEN + GENL_HDRLEN + len);
	nlh->nlmsg_type = r->family;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = seq;
	gh->cmd = cmd;
	gh->version = QKD_GENL_VERSION;
	memcpy(buf + NLMSG_HDRLEN + GENL_HDRLEN, attrs, len);
	if (send(r->fd, buf, nlh->nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		n = recv(r->fd, buf, sizeof(buf), 0);
		if (n < 0)
			return -errno;
		for (nlh = (struct nlmsghdr *)buf; NLMSG_OK(nlh, (size_t)n);
		     nlh = NLMSG_NEXT(nlh, n)) {
			if (nlh->nlmsg_seq != seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(nlh))->error;
			/* A dump's end carries the dump's own error. */
			if (nlh->nlmsg_type == NLMSG_DONE)
				return nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) ?
				       *(int *)NLMSG_DATA(nlh) : 0;
		}
	}
}

#endif /* KS_TEST_H */
