// SPDX-License-Identifier: GPL-2.0
/*
 * qksc: client of the qkd_keystore generic-netlink family, on libnl-genl.
 *
 * Requests go out with libnl. Replies that carry key bytes (KEY_FETCH) are
 * read into a buffer of our own and wiped, because libnl copies every message
 * into buffers it frees without wiping. The socket sets NETLINK_CAP_ACK so an
 * error acknowledgement never echoes a pushed key back.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "qksc.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

struct qksc {
	struct nl_sock *sk;
	int family;
	int fetch_fd;		/* plain socket for replies that carry key bytes */
	uint32_t fetch_seq;
	char err[256];
};

struct qksc_req {
	struct qksc *c;
	int error;
	bool done;
	int (*fn)(struct nlattr **tb, void *arg);
	void *arg;
};

const char *qksc_error(const struct qksc *c)
{
	return c->err;
}

int qksc_family(const struct qksc *c)
{
	return c->family;
}

struct nl_sock *qksc_sock(struct qksc *c)
{
	return c->sk;
}

static void qksc_seterr(struct qksc *c, int err, const char *msg)
{
	if (msg && *msg)
		snprintf(c->err, sizeof(c->err), "%s", msg);
	else
		snprintf(c->err, sizeof(c->err), "%s", strerror(-err));
}

/* The extended-ack message after a capped nlmsgerr, if any. */
static const char *qksc_extack(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = NLMSG_DATA(nlh);
	size_t off = NLMSG_HDRLEN + sizeof(*e);
	const struct nlattr *a;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NULL;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	off = NLMSG_ALIGN(off);
	while (off + NLA_HDRLEN <= nlh->nlmsg_len) {
		a = (const struct nlattr *)((const char *)nlh + off);
		if (a->nla_len < NLA_HDRLEN || off + a->nla_len > nlh->nlmsg_len)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG &&
		    a->nla_len > NLA_HDRLEN &&
		    memchr((const char *)a + NLA_HDRLEN, 0, a->nla_len - NLA_HDRLEN))
			return (const char *)a + NLA_HDRLEN;
		off += NLA_ALIGN(a->nla_len);
	}
	return NULL;
}

static int qksc_err_cb(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct qksc_req *r = arg;
	const struct nlmsghdr *nlh = (const void *)((const char *)e - NLMSG_HDRLEN);

	r->error = e->error < 0 ? e->error : -e->error;
	r->done = true;
	if (r->error)
		qksc_seterr(r->c, r->error, qksc_extack(nlh));
	return NL_STOP;
}

static int qksc_ack_cb(struct nl_msg *msg, void *arg)
{
	struct qksc_req *r = arg;

	r->done = true;
	return NL_STOP;
}

static int qksc_valid_cb(struct nl_msg *msg, void *arg)
{
	struct qksc_req *r = arg;
	struct nlattr *tb[QKD_A_MAX + 1];
	int err;

	if (!r->fn)
		return NL_OK;
	err = genlmsg_parse(nlmsg_hdr(msg), 0, tb, QKD_A_MAX, NULL);
	if (err < 0) {
		r->error = -EPROTO;
		qksc_seterr(r->c, r->error, "malformed reply from the kernel");
		return NL_STOP;
	}
	err = r->fn(tb, r->arg);
	if (err) {
		r->error = err < 0 ? err : 0;
		r->done = true;
		return NL_STOP;
	}
	return NL_OK;
}

/* Send msg (freed and wiped here) and process replies until ack/done/error. */
static int qksc_run(struct qksc *c, struct nl_msg *msg,
		    int (*fn)(struct nlattr **tb, void *arg), void *arg)
{
	struct qksc_req r = { .c = c, .fn = fn, .arg = arg };
	struct nl_cb *cb;
	int err;

	c->err[0] = 0;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		explicit_bzero(nlmsg_hdr(msg), nlmsg_hdr(msg)->nlmsg_len);
		nlmsg_free(msg);
		return -ENOMEM;
	}
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, qksc_valid_cb, &r);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, qksc_ack_cb, &r);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, qksc_ack_cb, &r);
	nl_cb_err(cb, NL_CB_CUSTOM, qksc_err_cb, &r);

	err = nl_send_auto(c->sk, msg);
	explicit_bzero(nlmsg_hdr(msg), nlmsg_hdr(msg)->nlmsg_len);
	nlmsg_free(msg);
	if (err < 0) {
		nl_cb_put(cb);
		qksc_seterr(c, -EIO, nl_geterror(err));
		return -EIO;
	}
	while (!r.done) {
		err = nl_recvmsgs(c->sk, cb);
		if (err < 0 && !r.done) {
			r.error = -EIO;
			qksc_seterr(c, r.error, nl_geterror(err));
			break;
		}
	}
	nl_cb_put(cb);
	return r.error;
}

static struct nl_msg *qksc_msg(struct qksc *c, int cmd, int flags)
{
	struct nl_msg *msg = nlmsg_alloc_size(QKD_KEY_MAX_BYTES + 512);

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, c->family, 0, flags, cmd,
			 QKD_GENL_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

int qksc_open(struct qksc **cp)
{
	struct qksc *c = calloc(1, sizeof(*c));
	int one = 1, err;

	*cp = c;
	if (!c)
		return -ENOMEM;
	c->fetch_fd = -1;
	c->sk = nl_socket_alloc();
	if (!c->sk) {
		qksc_seterr(c, -ENOMEM, NULL);
		return -ENOMEM;
	}
	err = genl_connect(c->sk);
	if (err < 0) {
		qksc_seterr(c, -EIO, nl_geterror(err));
		return -EIO;
	}
	setsockopt(nl_socket_get_fd(c->sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(nl_socket_get_fd(c->sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	c->family = genl_ctrl_resolve(c->sk, QKD_GENL_NAME);
	if (c->family < 0) {
		snprintf(c->err, sizeof(c->err),
			 "the qkd_keystore kernel module is not loaded (no generic netlink "
			 "family \"%s\"): load it with 'modprobe qkd_keystore' or "
			 "'insmod build/kmod/qkd_keystore.ko'", QKD_GENL_NAME);
		return -ENOENT;
	}
	return 0;
}

void qksc_close(struct qksc *c)
{
	if (!c)
		return;
	if (c->sk)
		nl_socket_free(c->sk);
	if (c->fetch_fd >= 0)
		close(c->fetch_fd);
	free(c);
}

int qksc_link_add(struct qksc *c, const struct qksc_link_cfg *cfg)
{
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_LINK_ADD, 0);

	if (!msg)
		return -ENOMEM;
	if (nla_put_string(msg, QKD_A_LINK, cfg->name) ||
	    (cfg->max_keys && nla_put_u32(msg, QKD_A_MAX_KEYS, cfg->max_keys)) ||
	    (cfg->max_bytes && nla_put_u64(msg, QKD_A_MAX_BYTES, cfg->max_bytes)) ||
	    (cfg->low_watermark >= 0 &&
	     nla_put_u32(msg, QKD_A_LOW_WATERMARK, (uint32_t)cfg->low_watermark)) ||
	    (cfg->uid >= 0 && nla_put_u32(msg, QKD_A_UID, (uint32_t)cfg->uid)) ||
	    (cfg->gid >= 0 && nla_put_u32(msg, QKD_A_GID, (uint32_t)cfg->gid))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	return qksc_run(c, msg, NULL, NULL);
}

int qksc_link_del(struct qksc *c, const char *name)
{
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_LINK_DEL, 0);

	if (!msg)
		return -ENOMEM;
	if (nla_put_string(msg, QKD_A_LINK, name)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	return qksc_run(c, msg, NULL, NULL);
}

static uint64_t get64(struct nlattr **tb, int a)
{
	return tb[a] ? nla_get_u64(tb[a]) : 0;
}

static uint32_t get32(struct nlattr **tb, int a)
{
	return tb[a] ? nla_get_u32(tb[a]) : 0;
}

static void qksc_parse_stats(struct nlattr **tb, struct qksc_stats *st)
{
	st->pushed = get64(tb, QKD_A_STAT_PUSHED);
	st->delivered = get64(tb, QKD_A_STAT_DELIVERED);
	st->wiped = get64(tb, QKD_A_STAT_WIPED);
	st->bytes_pushed = get64(tb, QKD_A_STAT_BYTES_PUSHED);
	st->bytes_delivered = get64(tb, QKD_A_STAT_BYTES_DELIVERED);
}

static void qksc_parse_link(struct nlattr **tb, struct qksc_link_info *li)
{
	memset(li, 0, sizeof(*li));
	if (tb[QKD_A_LINK])
		snprintf(li->name, sizeof(li->name), "%s", nla_get_string(tb[QKD_A_LINK]));
	li->max_keys = get32(tb, QKD_A_MAX_KEYS);
	li->max_bytes = get64(tb, QKD_A_MAX_BYTES);
	li->low_watermark = get32(tb, QKD_A_LOW_WATERMARK);
	li->uid = get32(tb, QKD_A_UID);
	li->gid = tb[QKD_A_GID] ? (int64_t)nla_get_u32(tb[QKD_A_GID]) : -1;
	li->keys_avail = get32(tb, QKD_A_KEYS_AVAIL);
	li->keys_reserved = get32(tb, QKD_A_KEYS_RESERVED);
	li->bytes_stored = get64(tb, QKD_A_BYTES_STORED);
	li->keyring = (int32_t)get32(tb, QKD_A_KEYRING);
	qksc_parse_stats(tb, &li->stats);
}

static int qksc_link_get_fn(struct nlattr **tb, void *arg)
{
	qksc_parse_link(tb, arg);
	return 0;
}

int qksc_link_get(struct qksc *c, const char *name, struct qksc_link_info *out)
{
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_LINK_GET, 0);

	if (!msg)
		return -ENOMEM;
	if (nla_put_string(msg, QKD_A_LINK, name)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	return qksc_run(c, msg, qksc_link_get_fn, out);
}

struct qksc_dump_arg {
	int (*fn)(const struct qksc_link_info *li, void *arg);
	void *arg;
};

static int qksc_link_dump_fn(struct nlattr **tb, void *arg)
{
	struct qksc_dump_arg *d = arg;
	struct qksc_link_info li;

	qksc_parse_link(tb, &li);
	return d->fn(&li, d->arg);
}

int qksc_link_dump(struct qksc *c,
		   int (*fn)(const struct qksc_link_info *li, void *arg), void *arg)
{
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_LINK_GET, NLM_F_DUMP);
	struct qksc_dump_arg d = { fn, arg };

	if (!msg)
		return -ENOMEM;
	return qksc_run(c, msg, qksc_link_dump_fn, &d);
}

int qksc_key_push(struct qksc *c, const char *link, uint64_t id,
		  const void *data, size_t len)
{
	struct nl_msg *msg;

	if (len == 0 || len > QKD_KEY_MAX_BYTES) {
		qksc_seterr(c, -EINVAL, "key length must be 1..4096 bytes");
		return -EINVAL;
	}
	msg = qksc_msg(c, QKD_CMD_KEY_PUSH, 0);
	if (!msg)
		return -ENOMEM;
	if (nla_put_string(msg, QKD_A_LINK, link) ||
	    nla_put_u64(msg, QKD_A_KEY_ID, id) ||
	    nla_put(msg, QKD_A_KEY_DATA, (int)len, data)) {
		explicit_bzero(nlmsg_hdr(msg), nlmsg_hdr(msg)->nlmsg_len);
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	return qksc_run(c, msg, NULL, NULL);
}

int qksc_key_fetch(struct qksc *c, const char *link, const uint64_t *id,
		   uint64_t *id_out, void *buf, size_t bufsz, size_t *len)
{
	/* Room for the reply, its ack and the kernel's overhead. */
	static _Thread_local unsigned char rbuf[QKD_KEY_MAX_BYTES + 4096];
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_KEY_FETCH, 0);
	struct nlattr *tb[QKD_A_MAX + 1];
	struct nlmsghdr *nlh;
	bool done = false, got = false;
	uint32_t seq;
	int err = 0, fd;
	ssize_t n;

	c->err[0] = 0;
	if (!msg)
		return -ENOMEM;
	if (nla_put_string(msg, QKD_A_LINK, link) ||
	    (id && nla_put_u64(msg, QKD_A_KEY_ID, *id))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	/*
	 * A socket of our own, so that libnl never buffers the reply and its
	 * sequence bookkeeping stays untouched.
	 */
	if (c->fetch_fd < 0) {
		struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
		int one = 1;

		c->fetch_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
		if (c->fetch_fd < 0 || bind(c->fetch_fd, (struct sockaddr *)&sa, sizeof(sa))) {
			err = -errno;
			nlmsg_free(msg);
			qksc_seterr(c, err, NULL);
			return err;
		}
		setsockopt(c->fetch_fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
		setsockopt(c->fetch_fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	}
	fd = c->fetch_fd;
	seq = ++c->fetch_seq;
	nlmsg_hdr(msg)->nlmsg_seq = seq;
	nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (send(fd, nlmsg_hdr(msg), nlmsg_hdr(msg)->nlmsg_len, 0) < 0) {
		err = -errno;
		nlmsg_free(msg);
		qksc_seterr(c, err, NULL);
		return err;
	}
	nlmsg_free(msg);
	err = 0;
	while (!done) {
		n = recv(fd, rbuf, sizeof(rbuf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			qksc_seterr(c, err, NULL);
			break;
		}
		for (nlh = (struct nlmsghdr *)rbuf; NLMSG_OK(nlh, (size_t)n);
		     nlh = NLMSG_NEXT(nlh, n)) {
			if (nlh->nlmsg_seq != seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(nlh);

				done = true;
				if (e->error && !err) {
					err = e->error;
					qksc_seterr(c, err, qksc_extack(nlh));
				}
				continue;
			}
			if (nlh->nlmsg_type != c->family || got)
				continue;
			if (genlmsg_parse(nlh, 0, tb, QKD_A_MAX, NULL) < 0 ||
			    !tb[QKD_A_KEY_DATA] || !tb[QKD_A_KEY_ID]) {
				err = -EPROTO;
				qksc_seterr(c, err, "malformed fetch reply from the kernel");
				continue;
			}
			if ((size_t)nla_len(tb[QKD_A_KEY_DATA]) > bufsz) {
				/* The key is consumed already: say so plainly. */
				err = -EMSGSIZE;
				qksc_seterr(c, err, "key larger than the caller's buffer; it is lost");
				continue;
			}
			*len = (size_t)nla_len(tb[QKD_A_KEY_DATA]);
			memcpy(buf, nla_data(tb[QKD_A_KEY_DATA]), *len);
			*id_out = nla_get_u64(tb[QKD_A_KEY_ID]);
			got = true;
		}
		explicit_bzero(rbuf, sizeof(rbuf));
	}
	if (!err && !got) {
		err = -EPROTO;
		qksc_seterr(c, err, "no key in the fetch reply");
	}
	return err;
}

struct qksc_list_arg {
	int (*fn)(uint64_t id, uint32_t len, int state, void *arg);
	void *arg;
};

static int qksc_key_list_fn(struct nlattr **tb, void *arg)
{
	struct qksc_list_arg *l = arg;

	return l->fn(get64(tb, QKD_A_KEY_ID), get32(tb, QKD_A_KEY_LEN),
		     tb[QKD_A_KEY_STATE] ? nla_get_u8(tb[QKD_A_KEY_STATE]) : 0, l->arg);
}

int qksc_key_list(struct qksc *c, const char *link,
		  int (*fn)(uint64_t id, uint32_t len, int state, void *arg), void *arg)
{
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_KEY_LIST, NLM_F_DUMP);
	struct qksc_list_arg l = { fn, arg };

	if (!msg)
		return -ENOMEM;
	if (nla_put_string(msg, QKD_A_LINK, link)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	return qksc_run(c, msg, qksc_key_list_fn, &l);
}

struct qksc_stats_arg {
	struct qksc_stats *st;
	uint32_t *links;
};

static int qksc_stats_fn(struct nlattr **tb, void *arg)
{
	struct qksc_stats_arg *s = arg;

	qksc_parse_stats(tb, s->st);
	*s->links = get32(tb, QKD_A_LINKS);
	return 0;
}

int qksc_stats_get(struct qksc *c, struct qksc_stats *st, uint32_t *links)
{
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_STATS_GET, 0);
	struct qksc_stats_arg s = { st, links };

	if (!msg)
		return -ENOMEM;
	return qksc_run(c, msg, qksc_stats_fn, &s);
}

struct qksc_mon_arg {
	int (*fn)(const struct qksc_event *ev, void *arg);
	void *arg;
	int stop;
};

static int qksc_mon_cb(struct nl_msg *msg, void *arg)
{
	struct qksc_mon_arg *m = arg;
	struct genlmsghdr *gh = nlmsg_data(nlmsg_hdr(msg));
	struct nlattr *tb[QKD_A_MAX + 1];
	struct qksc_event ev = { .cmd = gh->cmd };

	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, QKD_A_MAX, NULL) < 0)
		return NL_SKIP;
	if (tb[QKD_A_LINK])
		snprintf(ev.link, sizeof(ev.link), "%s", nla_get_string(tb[QKD_A_LINK]));
	ev.key_id = get64(tb, QKD_A_KEY_ID);
	ev.key_len = get32(tb, QKD_A_KEY_LEN);
	ev.keys_avail = get32(tb, QKD_A_KEYS_AVAIL);
	ev.low_watermark = get32(tb, QKD_A_LOW_WATERMARK);
	ev.link_added = tb[QKD_A_LINK_STATE] ? nla_get_u8(tb[QKD_A_LINK_STATE]) : 0;
	m->stop = m->fn(&ev, m->arg);
	return m->stop ? NL_STOP : NL_OK;
}

int qksc_monitor(struct qksc *c, int (*fn)(const struct qksc_event *ev, void *arg),
		 void *arg)
{
	struct qksc_mon_arg m = { fn, arg, 0 };
	int grp, err;

	grp = genl_ctrl_resolve_grp(c->sk, QKD_GENL_NAME, QKD_GENL_MCGRP_EVENTS);
	if (grp < 0) {
		qksc_seterr(c, -ENOENT, "no \"events\" multicast group in the family");
		return -ENOENT;
	}
	err = nl_socket_add_membership(c->sk, grp);
	if (err < 0) {
		qksc_seterr(c, -EIO, nl_geterror(err));
		return -EIO;
	}
	nl_socket_disable_seq_check(c->sk);
	nl_socket_modify_cb(c->sk, NL_CB_VALID, NL_CB_CUSTOM, qksc_mon_cb, &m);
	while (!m.stop) {
		err = nl_recvmsgs_default(c->sk);
		if (err < 0 && !m.stop) {
			qksc_seterr(c, -EIO, nl_geterror(err));
			return -EIO;
		}
	}
	return m.stop < 0 ? m.stop : 0;
}

static int qksc_put_addr(struct nl_msg *msg, int attr, const char *text, int *family)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, text, a) == 1) {
		*family = AF_INET;
		return nla_put(msg, attr, 4, a);
	}
	if (inet_pton(AF_INET6, text, a) == 1) {
		*family = AF_INET6;
		return nla_put(msg, attr, 16, a);
	}
	return -1;
}

static int qksc_xfrm_bind_fn(struct nlattr **tb, void *arg)
{
	*(uint32_t *)arg = get32(tb, QKD_A_XFRM_ID);
	return 0;
}

int qksc_xfrm_bind(struct qksc *c, const struct qksc_xfrm_cfg *cfg, uint32_t *id)
{
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_XFRM_BIND, 0);
	int fs = 0, fd = 0;

	if (!msg)
		return -ENOMEM;
	if (qksc_put_addr(msg, QKD_A_XFRM_SADDR, cfg->src, &fs) ||
	    qksc_put_addr(msg, QKD_A_XFRM_DADDR, cfg->dst, &fd)) {
		nlmsg_free(msg);
		qksc_seterr(c, -EINVAL, "src and dst must be IPv4 or IPv6 addresses");
		return -EINVAL;
	}
	if (nla_put_string(msg, QKD_A_LINK, cfg->link) ||
	    nla_put_u8(msg, QKD_A_XFRM_MODE, cfg->tunnel ? QKD_XFRM_MODE_TUNNEL :
							    QKD_XFRM_MODE_TRANSPORT) ||
	    nla_put_u32(msg, QKD_A_XFRM_SPI_BASE, cfg->spi_base) ||
	    nla_put_u32(msg, QKD_A_XFRM_REQID, cfg->reqid) ||
	    (cfg->icv_bits && nla_put_u32(msg, QKD_A_XFRM_ICV_BITS, cfg->icv_bits)) ||
	    (cfg->life_bytes && nla_put_u64(msg, QKD_A_XFRM_LIFE_BYTES, cfg->life_bytes)) ||
	    (cfg->life_packets && nla_put_u64(msg, QKD_A_XFRM_LIFE_PACKETS, cfg->life_packets)) ||
	    (cfg->life_seconds && nla_put_u64(msg, QKD_A_XFRM_LIFE_SECONDS, cfg->life_seconds)) ||
	    (cfg->grace >= 0 && nla_put_u32(msg, QKD_A_XFRM_GRACE, (uint32_t)cfg->grace)) ||
	    (cfg->first_key_id >= 0 &&
	     nla_put_u64(msg, QKD_A_KEY_ID, (uint64_t)cfg->first_key_id))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	return qksc_run(c, msg, qksc_xfrm_bind_fn, id);
}

int qksc_xfrm_unbind(struct qksc *c, const char *link, uint32_t id)
{
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_XFRM_UNBIND, 0);

	if (!msg)
		return -ENOMEM;
	if (nla_put_string(msg, QKD_A_LINK, link) || nla_put_u32(msg, QKD_A_XFRM_ID, id)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	return qksc_run(c, msg, NULL, NULL);
}

struct qksc_xdump_arg {
	int (*fn)(const struct qksc_xfrm_info *xi, void *arg);
	void *arg;
};

static void qksc_addr_text(struct nlattr *a, char *out, size_t n, int *family)
{
	*family = 0;
	snprintf(out, n, "?");
	if (!a)
		return;
	*family = nla_len(a) == 4 ? AF_INET : AF_INET6;
	inet_ntop(*family, nla_data(a), out, (socklen_t)n);
}

static int qksc_xfrm_dump_fn(struct nlattr **tb, void *arg)
{
	struct qksc_xdump_arg *d = arg;
	struct qksc_xfrm_info xi;

	memset(&xi, 0, sizeof(xi));
	xi.id = get32(tb, QKD_A_XFRM_ID);
	qksc_addr_text(tb[QKD_A_XFRM_SADDR], xi.src, sizeof(xi.src), &xi.family);
	qksc_addr_text(tb[QKD_A_XFRM_DADDR], xi.dst, sizeof(xi.dst), &xi.family);
	xi.tunnel = tb[QKD_A_XFRM_MODE] ? nla_get_u8(tb[QKD_A_XFRM_MODE]) : 0;
	xi.spi_base = get32(tb, QKD_A_XFRM_SPI_BASE);
	xi.reqid = get32(tb, QKD_A_XFRM_REQID);
	xi.icv_bits = get32(tb, QKD_A_XFRM_ICV_BITS);
	xi.grace = get32(tb, QKD_A_XFRM_GRACE);
	xi.life_bytes = get64(tb, QKD_A_XFRM_LIFE_BYTES);
	xi.life_packets = get64(tb, QKD_A_XFRM_LIFE_PACKETS);
	xi.life_seconds = get64(tb, QKD_A_XFRM_LIFE_SECONDS);
	xi.has_key = tb[QKD_A_KEY_ID] != NULL;
	xi.key_id = get64(tb, QKD_A_KEY_ID);
	xi.spi = get32(tb, QKD_A_XFRM_SPI);
	xi.has_next = tb[QKD_A_XFRM_NEXT_KEY_ID] != NULL;
	xi.next_key_id = get64(tb, QKD_A_XFRM_NEXT_KEY_ID);
	xi.generations = get64(tb, QKD_A_XFRM_GENERATIONS);
	xi.used_bytes = get64(tb, QKD_A_XFRM_USED_BYTES);
	xi.used_packets = get64(tb, QKD_A_XFRM_USED_PACKETS);
	xi.age = get64(tb, QKD_A_XFRM_AGE);
	xi.error = (int32_t)get32(tb, QKD_A_XFRM_ERROR);
	return d->fn(&xi, d->arg);
}

int qksc_xfrm_dump(struct qksc *c, const char *link,
		   int (*fn)(const struct qksc_xfrm_info *xi, void *arg), void *arg)
{
	struct nl_msg *msg = qksc_msg(c, QKD_CMD_XFRM_GET, NLM_F_DUMP);
	struct qksc_xdump_arg d = { fn, arg };

	if (!msg)
		return -ENOMEM;
	if (nla_put_string(msg, QKD_A_LINK, link)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	return qksc_run(c, msg, qksc_xfrm_dump_fn, &d);
}
