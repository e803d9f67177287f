// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: the "qkd_keystore" generic-netlink family.
 *
 * Every attribute is validated strictly by one policy; attributes the policy
 * does not list (the ones the kernel only sends) are refused as input.
 * Every command, and joining the event group, needs CAP_NET_ADMIN in the user
 * namespace owning the socket's network namespace: key ids, lengths and
 * counts are the operator's business, and a container may run its own store.
 * Documentation/keystore.md lists the commands and their attributes.
 */
#include <linux/cred.h>
#include <linux/key.h>
#include <linux/nsproxy.h>
#include <linux/string.h>
#include <net/genetlink.h>
#include <net/sock.h>

#include "qks.h"

static struct netlink_range_validation qks_max_keys_range = {
	.min = 1,
	.max = QKD_LINK_MAX_KEYS_LIMIT,
};

static struct netlink_range_validation qks_max_bytes_range = {
	.min = 1,
	.max = 1ULL << 40,
};

/* SPI_BASE + 0xffff must stay a valid SPI (256..2^32-1). */
static struct netlink_range_validation qks_spi_base_range = {
	.min = 256,
	.max = 0xffff0000ULL,
};

static struct netlink_range_validation qks_life_seconds_range = {
	.min = 0,
	.max = 1ULL << 31,
};

static const struct nla_policy qks_policy[QKD_A_MAX + 1] = {
	[QKD_A_LINK] = { .type = NLA_NUL_STRING, .len = QKD_LINK_NAME_MAX - 1 },
	[QKD_A_KEY_ID] = { .type = NLA_U64 },
	[QKD_A_KEY_DATA] = NLA_POLICY_RANGE(NLA_BINARY, 1, QKD_KEY_MAX_BYTES),
	[QKD_A_MAX_KEYS] = NLA_POLICY_FULL_RANGE(NLA_U32, &qks_max_keys_range),
	[QKD_A_MAX_BYTES] = NLA_POLICY_FULL_RANGE(NLA_U64, &qks_max_bytes_range),
	[QKD_A_LOW_WATERMARK] = { .type = NLA_U32 },
	[QKD_A_UID] = { .type = NLA_U32 },
	[QKD_A_GID] = { .type = NLA_U32 },
	[QKD_A_XFRM_ID] = { .type = NLA_U32 },
	[QKD_A_XFRM_SADDR] = NLA_POLICY_RANGE(NLA_BINARY, 4, 16),
	[QKD_A_XFRM_DADDR] = NLA_POLICY_RANGE(NLA_BINARY, 4, 16),
	[QKD_A_XFRM_MODE] = NLA_POLICY_MAX(NLA_U8, QKD_XFRM_MODE_TUNNEL),
	[QKD_A_XFRM_SPI_BASE] = NLA_POLICY_FULL_RANGE(NLA_U32, &qks_spi_base_range),
	[QKD_A_XFRM_REQID] = { .type = NLA_U32 },
	[QKD_A_XFRM_ICV_BITS] = NLA_POLICY_RANGE(NLA_U32, 64, 128),
	[QKD_A_XFRM_LIFE_BYTES] = { .type = NLA_U64 },
	[QKD_A_XFRM_LIFE_PACKETS] = { .type = NLA_U64 },
	[QKD_A_XFRM_LIFE_SECONDS] = NLA_POLICY_FULL_RANGE(NLA_U64, &qks_life_seconds_range),
	[QKD_A_XFRM_GRACE] = NLA_POLICY_RANGE(NLA_U32, 0, 3600),
};

enum { QKS_MCGRP_EVENTS };

static const struct genl_multicast_group qks_mcgrps[] = {
	[QKS_MCGRP_EVENTS] = {
		.name = QKD_GENL_MCGRP_EVENTS,
		.flags = GENL_MCAST_CAP_NET_ADMIN,
	},
};

static struct qks_link *qks_req_link(struct genl_info *info)
{
	struct qks_link *link;

	if (GENL_REQ_ATTR_CHECK(info, QKD_A_LINK))
		return ERR_PTR(-EINVAL);
	link = qks_link_find(genl_info_net(info), nla_data(info->attrs[QKD_A_LINK]));
	if (!link) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[QKD_A_LINK],
				    "no such link in this network namespace");
		return ERR_PTR(-ENOENT);
	}
	return link;
}

static int qks_put_stats(struct sk_buff *skb, const struct qks_stats *st)
{
	if (nla_put_u64_64bit(skb, QKD_A_STAT_PUSHED, st->pushed, QKD_A_PAD) ||
	    nla_put_u64_64bit(skb, QKD_A_STAT_DELIVERED, st->delivered, QKD_A_PAD) ||
	    nla_put_u64_64bit(skb, QKD_A_STAT_WIPED, st->wiped, QKD_A_PAD) ||
	    nla_put_u64_64bit(skb, QKD_A_STAT_BYTES_PUSHED, st->bytes_pushed,
			      QKD_A_PAD) ||
	    nla_put_u64_64bit(skb, QKD_A_STAT_BYTES_DELIVERED, st->bytes_delivered,
			      QKD_A_PAD))
		return -EMSGSIZE;
	return 0;
}

static int qks_fill_link(struct sk_buff *skb, struct qks_link *link, u32 portid,
			 u32 seq, int flags)
{
	struct qks_stats st;
	u32 avail, reserved;
	u64 bytes;
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &qks_family, flags, QKD_CMD_LINK_GET);
	if (!hdr)
		return -EMSGSIZE;
	qks_link_snapshot(link, &avail, &reserved, &bytes, &st);
	if (nla_put_string(skb, QKD_A_LINK, link->name) ||
	    nla_put_u32(skb, QKD_A_MAX_KEYS, link->max_keys) ||
	    nla_put_u64_64bit(skb, QKD_A_MAX_BYTES, link->max_bytes, QKD_A_PAD) ||
	    nla_put_u32(skb, QKD_A_LOW_WATERMARK, link->low_watermark) ||
	    nla_put_u32(skb, QKD_A_UID, from_kuid_munged(current_user_ns(), link->uid)) ||
	    (gid_valid(link->gid) &&
	     nla_put_u32(skb, QKD_A_GID, from_kgid_munged(current_user_ns(), link->gid))) ||
	    nla_put_u32(skb, QKD_A_KEYS_AVAIL, avail) ||
	    nla_put_u32(skb, QKD_A_KEYS_RESERVED, reserved) ||
	    nla_put_u64_64bit(skb, QKD_A_BYTES_STORED, bytes, QKD_A_PAD) ||
	    nla_put_s32(skb, QKD_A_KEYRING, key_serial(link->keyring)) ||
	    qks_put_stats(skb, &st)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

static int qks_cmd_link_add(struct sk_buff *skb, struct genl_info *info)
{
	struct qks_link_params p = {
		.max_keys = qks_param_max_keys,
		.max_bytes = qks_param_max_bytes,
		.low_watermark = qks_param_low_watermark,
		.uid = KUIDT_INIT(qks_param_key_uid),
		.gid = qks_param_key_gid < 0 ? INVALID_GID :
						KGIDT_INIT(qks_param_key_gid),
	};
	struct nlattr **a = info->attrs;

	if (GENL_REQ_ATTR_CHECK(info, QKD_A_LINK))
		return -EINVAL;
	if (a[QKD_A_MAX_KEYS])
		p.max_keys = nla_get_u32(a[QKD_A_MAX_KEYS]);
	if (a[QKD_A_MAX_BYTES])
		p.max_bytes = nla_get_u64(a[QKD_A_MAX_BYTES]);
	if (a[QKD_A_LOW_WATERMARK])
		p.low_watermark = nla_get_u32(a[QKD_A_LOW_WATERMARK]);
	if (p.low_watermark > p.max_keys) {
		NL_SET_ERR_MSG(info->extack, "low watermark above the key limit");
		return -EINVAL;
	}
	if (a[QKD_A_UID]) {
		p.uid = make_kuid(current_user_ns(), nla_get_u32(a[QKD_A_UID]));
		if (!uid_valid(p.uid)) {
			NL_SET_ERR_MSG_ATTR(info->extack, a[QKD_A_UID], "invalid uid");
			return -EINVAL;
		}
	}
	if (a[QKD_A_GID]) {
		p.gid = make_kgid(current_user_ns(), nla_get_u32(a[QKD_A_GID]));
		if (!gid_valid(p.gid)) {
			NL_SET_ERR_MSG_ATTR(info->extack, a[QKD_A_GID], "invalid gid");
			return -EINVAL;
		}
	}
	return qks_link_add(genl_info_net(info), nla_data(a[QKD_A_LINK]), &p,
			    info->extack);
}

static int qks_cmd_link_del(struct sk_buff *skb, struct genl_info *info)
{
	int err;

	if (GENL_REQ_ATTR_CHECK(info, QKD_A_LINK))
		return -EINVAL;
	err = qks_link_del(genl_info_net(info), nla_data(info->attrs[QKD_A_LINK]));
	if (err == -ENOENT)
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[QKD_A_LINK],
				    "no such link in this network namespace");
	return err;
}

static int qks_cmd_link_get(struct sk_buff *skb, struct genl_info *info)
{
	struct qks_link *link = qks_req_link(info);
	struct sk_buff *msg;
	int err;

	if (IS_ERR(link))
		return PTR_ERR(link);
	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg) {
		err = -ENOMEM;
		goto out;
	}
	err = qks_fill_link(msg, link, info->snd_portid, info->snd_seq, 0);
	if (err) {
		nlmsg_free(msg);
		goto out;
	}
	err = genlmsg_reply(msg, info);
out:
	qks_link_put(link);
	return err;
}

static int qks_dump_links(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct qks_net *qn = qks_net(sock_net(skb->sk));
	struct qks_link *link;
	long idx = 0, start = cb->args[0];

	mutex_lock(&qn->lock);
	list_for_each_entry(link, &qn->links, node) {
		if (idx >= start &&
		    qks_fill_link(skb, link, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, NLM_F_MULTI))
			break;
		idx++;
	}
	mutex_unlock(&qn->lock);
	cb->args[0] = idx;
	return skb->len;
}

static int qks_cmd_key_push(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr *data = info->attrs[QKD_A_KEY_DATA];
	struct qks_link *link;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, QKD_A_KEY_ID) ||
	    GENL_REQ_ATTR_CHECK(info, QKD_A_KEY_DATA)) {
		err = -EINVAL;
		goto wipe;
	}
	/* The keyring tags the key with current's namespace: it must be this one. */
	if (!net_eq(genl_info_net(info), current->nsproxy->net_ns)) {
		NL_SET_ERR_MSG(info->extack,
			       "push from the socket's own network namespace");
		err = -EXDEV;
		goto wipe;
	}
	link = qks_req_link(info);
	if (IS_ERR(link)) {
		err = PTR_ERR(link);
		goto wipe;
	}
	err = qks_key_push(link, nla_get_u64(info->attrs[QKD_A_KEY_ID]),
			   nla_data(data), nla_len(data), info->extack);
	qks_link_put(link);
wipe:
	/* The request buffer is freed without a wipe: wipe the key bytes here. */
	if (data)
		memzero_explicit(nla_data(data), nla_len(data));
	return err;
}

static int qks_cmd_key_fetch(struct sk_buff *skb, struct genl_info *info)
{
	struct qks_link *link = qks_req_link(info);
	struct nlattr *idattr = info->attrs[QKD_A_KEY_ID];
	struct sk_buff *msg;
	struct qks_key *k;
	u64 id;
	void *hdr;
	int err;

	if (IS_ERR(link))
		return PTR_ERR(link);
	/* Allocate first: once taken, a key must not be lost to -ENOMEM. */
	msg = genlmsg_new(nla_total_size(QKD_KEY_MAX_BYTES) + 64, GFP_KERNEL);
	if (!msg) {
		err = -ENOMEM;
		goto out;
	}
	if (idattr)
		id = nla_get_u64(idattr);
	k = qks_key_take(link, idattr ? &id : NULL);
	if (IS_ERR(k)) {
		err = PTR_ERR(k);
		if (err == -ENODATA)
			NL_SET_ERR_MSG(info->extack, "no key available on this link");
		else if (err == -ENOKEY)
			NL_SET_ERR_MSG_ATTR(info->extack, idattr, "no key with this id");
		else if (err == -EBUSY)
			NL_SET_ERR_MSG_ATTR(info->extack, idattr,
					    "key is reserved by another consumer");
		nlmsg_free(msg);
		goto out;
	}
	hdr = genlmsg_put_reply(msg, info, &qks_family, 0, QKD_CMD_KEY_FETCH);
	if (!hdr ||
	    nla_put_string(msg, QKD_A_LINK, link->name) ||
	    nla_put_u64_64bit(msg, QKD_A_KEY_ID, k->id, QKD_A_PAD) ||
	    nla_put_u32(msg, QKD_A_KEY_LEN, k->len) ||
	    nla_put(msg, QKD_A_KEY_DATA, k->len, k->data)) {
		qks_key_free(k);
		nlmsg_free(msg);
		err = -EMSGSIZE;
		goto out;
	}
	qks_key_free(k);
	genlmsg_end(msg, hdr);
	err = genlmsg_reply(msg, info);
out:
	qks_link_put(link);
	return err;
}

static int qks_dump_keys(struct sk_buff *skb, struct netlink_callback *cb)
{
	const struct genl_dumpit_info *info = genl_dumpit_info(cb);
	struct nlattr *name = info->attrs[QKD_A_LINK];
	struct qks_link *link;
	struct rb_node *n;
	struct qks_key *k;
	u64 next = cb->args[0];
	void *hdr;

	if (cb->args[1])
		return 0;	/* finished */
	if (!name) {
		NL_SET_ERR_MSG(cb->extack, "missing link name");
		return -EINVAL;
	}
	link = qks_link_find(sock_net(skb->sk), nla_data(name));
	if (!link) {
		NL_SET_ERR_MSG(cb->extack, "no such link in this network namespace");
		return -ENOENT;
	}
	spin_lock(&link->lock);
	/* Resume at the first key with id >= next. */
	n = link->keys.rb_node;
	k = NULL;
	while (n) {
		struct qks_key *pos = rb_entry(n, struct qks_key, node);

		if (pos->id >= next) {
			k = pos;
			n = n->rb_left;
		} else {
			n = n->rb_right;
		}
	}
	for (; k; k = rb_entry_safe(rb_next(&k->node), struct qks_key, node)) {
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
				  &qks_family, NLM_F_MULTI, QKD_CMD_KEY_LIST);
		if (!hdr)
			break;
		if (nla_put_u64_64bit(skb, QKD_A_KEY_ID, k->id, QKD_A_PAD) ||
		    nla_put_u32(skb, QKD_A_KEY_LEN, k->len) ||
		    nla_put_u8(skb, QKD_A_KEY_STATE, k->state)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
	}
	if (k)
		cb->args[0] = k->id;
	else
		cb->args[1] = 1;
	spin_unlock(&link->lock);
	qks_link_put(link);
	return skb->len;
}

static int qks_cmd_stats_get(struct sk_buff *skb, struct genl_info *info)
{
	struct qks_stats st;
	struct sk_buff *msg;
	void *hdr;
	u32 links;

	qks_net_stats(genl_info_net(info), &st, &links);
	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &qks_family, 0, QKD_CMD_STATS_GET);
	if (!hdr || nla_put_u32(msg, QKD_A_LINKS, links) || qks_put_stats(msg, &st)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int qks_get_addr(struct genl_info *info, int attr, xfrm_address_t *a)
{
	struct nlattr *na = info->attrs[attr];

	if (nla_len(na) != 4 && nla_len(na) != 16) {
		NL_SET_ERR_MSG_ATTR(info->extack, na,
				    "address must be 4 (IPv4) or 16 (IPv6) bytes");
		return -EINVAL;
	}
	memset(a, 0, sizeof(*a));
	memcpy(a, nla_data(na), nla_len(na));
	return nla_len(na) == 4 ? AF_INET : AF_INET6;
}

static int qks_cmd_xfrm_bind(struct sk_buff *skb, struct genl_info *info)
{
	struct qks_xfrm_tmpl t = { .icv_bits = 128, .grace = 5 };
	struct nlattr **a = info->attrs;
	struct qks_link *link;
	struct sk_buff *msg;
	int fs, fd, err;
	void *hdr;
	u32 id;

	if (GENL_REQ_ATTR_CHECK(info, QKD_A_XFRM_SADDR) ||
	    GENL_REQ_ATTR_CHECK(info, QKD_A_XFRM_DADDR) ||
	    GENL_REQ_ATTR_CHECK(info, QKD_A_XFRM_SPI_BASE) ||
	    GENL_REQ_ATTR_CHECK(info, QKD_A_XFRM_REQID))
		return -EINVAL;
	fs = qks_get_addr(info, QKD_A_XFRM_SADDR, &t.saddr);
	fd = qks_get_addr(info, QKD_A_XFRM_DADDR, &t.daddr);
	if (fs < 0 || fd < 0)
		return -EINVAL;
	if (fs != fd || !memcmp(&t.saddr, &t.daddr, sizeof(t.saddr))) {
		NL_SET_ERR_MSG(info->extack, "addresses must be of one family and differ");
		return -EINVAL;
	}
	t.family = fs;
	t.spi_base = nla_get_u32(a[QKD_A_XFRM_SPI_BASE]);
	t.reqid = nla_get_u32(a[QKD_A_XFRM_REQID]);
	if (a[QKD_A_XFRM_MODE])
		t.mode = nla_get_u8(a[QKD_A_XFRM_MODE]);
	if (a[QKD_A_XFRM_ICV_BITS])
		t.icv_bits = nla_get_u32(a[QKD_A_XFRM_ICV_BITS]);
	if (t.icv_bits != 64 && t.icv_bits != 96 && t.icv_bits != 128) {
		NL_SET_ERR_MSG(info->extack, "ICV must be 64, 96 or 128 bits");
		return -EINVAL;
	}
	if (a[QKD_A_XFRM_LIFE_BYTES])
		t.life_bytes = nla_get_u64(a[QKD_A_XFRM_LIFE_BYTES]);
	if (a[QKD_A_XFRM_LIFE_PACKETS])
		t.life_packets = nla_get_u64(a[QKD_A_XFRM_LIFE_PACKETS]);
	if (a[QKD_A_XFRM_LIFE_SECONDS])
		t.life_seconds = nla_get_u64(a[QKD_A_XFRM_LIFE_SECONDS]);
	if (t.life_bytes > (1ULL << 62) || t.life_packets > (1ULL << 62)) {
		NL_SET_ERR_MSG(info->extack, "lifetime too large");
		return -EINVAL;
	}
	if (a[QKD_A_XFRM_GRACE])
		t.grace = nla_get_u32(a[QKD_A_XFRM_GRACE]);
	if (a[QKD_A_KEY_ID])
		t.first_key_id = nla_get_u64(a[QKD_A_KEY_ID]);

	link = qks_req_link(info);
	if (IS_ERR(link))
		return PTR_ERR(link);
	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg) {
		qks_link_put(link);
		return -ENOMEM;
	}
	err = qks_xfrm_bind(link, &t, &id, info->extack);
	qks_link_put(link);
	if (err) {
		nlmsg_free(msg);
		return err;
	}
	hdr = genlmsg_put_reply(msg, info, &qks_family, 0, QKD_CMD_XFRM_BIND);
	if (!hdr || nla_put_u32(msg, QKD_A_XFRM_ID, id)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int qks_cmd_xfrm_unbind(struct sk_buff *skb, struct genl_info *info)
{
	struct qks_link *link;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, QKD_A_XFRM_ID))
		return -EINVAL;
	link = qks_req_link(info);
	if (IS_ERR(link))
		return PTR_ERR(link);
	err = qks_xfrm_unbind(link, nla_get_u32(info->attrs[QKD_A_XFRM_ID]));
	if (err == -ENOENT)
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[QKD_A_XFRM_ID],
				    "no such binding on this link");
	qks_link_put(link);
	return err;
}

static int qks_dump_xfrm(struct sk_buff *skb, struct netlink_callback *cb)
{
	const struct genl_dumpit_info *info = genl_dumpit_info(cb);
	struct nlattr *name = info->attrs[QKD_A_LINK];
	struct qks_link *link;
	int err;

	if (!name) {
		NL_SET_ERR_MSG(cb->extack, "missing link name");
		return -EINVAL;
	}
	link = qks_link_find(sock_net(skb->sk), nla_data(name));
	if (!link) {
		NL_SET_ERR_MSG(cb->extack, "no such link in this network namespace");
		return -ENOENT;
	}
	err = qks_xfrm_fill(skb, link, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			    &cb->args[0]);
	qks_link_put(link);
	/* A full buffer with something in it: come back for the rest. */
	if (err == -EMSGSIZE && skb->len)
		err = 0;
	return err ? err : skb->len;
}

static const struct genl_small_ops qks_ops[] = {
	{
		.cmd = QKD_CMD_LINK_ADD,
		.flags = GENL_UNS_ADMIN_PERM,
		.doit = qks_cmd_link_add,
	},
	{
		.cmd = QKD_CMD_LINK_DEL,
		.flags = GENL_UNS_ADMIN_PERM,
		.doit = qks_cmd_link_del,
	},
	{
		.cmd = QKD_CMD_LINK_GET,
		.flags = GENL_UNS_ADMIN_PERM,
		.doit = qks_cmd_link_get,
		.dumpit = qks_dump_links,
	},
	{
		.cmd = QKD_CMD_KEY_PUSH,
		.flags = GENL_UNS_ADMIN_PERM,
		.doit = qks_cmd_key_push,
	},
	{
		.cmd = QKD_CMD_KEY_FETCH,
		.flags = GENL_UNS_ADMIN_PERM,
		.doit = qks_cmd_key_fetch,
	},
	{
		.cmd = QKD_CMD_KEY_LIST,
		.flags = GENL_UNS_ADMIN_PERM,
		.dumpit = qks_dump_keys,
	},
	{
		.cmd = QKD_CMD_STATS_GET,
		.flags = GENL_UNS_ADMIN_PERM,
		.doit = qks_cmd_stats_get,
	},
	{
		.cmd = QKD_CMD_XFRM_BIND,
		.flags = GENL_UNS_ADMIN_PERM,
		.doit = qks_cmd_xfrm_bind,
	},
	{
		.cmd = QKD_CMD_XFRM_UNBIND,
		.flags = GENL_UNS_ADMIN_PERM,
		.doit = qks_cmd_xfrm_unbind,
	},
	{
		.cmd = QKD_CMD_XFRM_GET,
		.flags = GENL_UNS_ADMIN_PERM,
		.dumpit = qks_dump_xfrm,
	},
};

struct genl_family qks_family __ro_after_init = {
	.name = QKD_GENL_NAME,
	.version = QKD_GENL_VERSION,
	.maxattr = QKD_A_MAX,
	.policy = qks_policy,
	.netnsok = true,
	.parallel_ops = true,
	.module = THIS_MODULE,
	.small_ops = qks_ops,
	.n_small_ops = ARRAY_SIZE(qks_ops),
	.mcgrps = qks_mcgrps,
	.n_mcgrps = ARRAY_SIZE(qks_mcgrps),
};

/* Events carry no key material; nothing is built when nobody listens. */
static struct sk_buff *qks_event_new(struct net *net, u8 cmd, void **hdr)
{
	struct sk_buff *msg;

	if (!genl_has_listeners(&qks_family, net, QKS_MCGRP_EVENTS))
		return NULL;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return NULL;
	*hdr = genlmsg_put(msg, 0, 0, &qks_family, 0, cmd);
	if (!*hdr) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

static void qks_event_send(struct net *net, struct sk_buff *msg, void *hdr)
{
	genlmsg_end(msg, hdr);
	genlmsg_multicast_netns(&qks_family, net, msg, 0, QKS_MCGRP_EVENTS,
				GFP_KERNEL);
}

void qks_event_new_key(struct net *net, const char *link, u64 id, u32 len,
		       u32 avail)
{
	void *hdr;
	struct sk_buff *msg = qks_event_new(net, QKD_CMD_EVENT_NEW_KEY, &hdr);

	if (!msg)
		return;
	if (nla_put_string(msg, QKD_A_LINK, link) ||
	    nla_put_u64_64bit(msg, QKD_A_KEY_ID, id, QKD_A_PAD) ||
	    nla_put_u32(msg, QKD_A_KEY_LEN, len) ||
	    nla_put_u32(msg, QKD_A_KEYS_AVAIL, avail)) {
		nlmsg_free(msg);
		return;
	}
	qks_event_send(net, msg, hdr);
}

void qks_event_low(struct net *net, const char *link, u32 avail, u32 mark)
{
	void *hdr;
	struct sk_buff *msg = qks_event_new(net, QKD_CMD_EVENT_LOW_WATERMARK, &hdr);

	if (!msg)
		return;
	if (nla_put_string(msg, QKD_A_LINK, link) ||
	    nla_put_u32(msg, QKD_A_KEYS_AVAIL, avail) ||
	    nla_put_u32(msg, QKD_A_LOW_WATERMARK, mark)) {
		nlmsg_free(msg);
		return;
	}
	qks_event_send(net, msg, hdr);
}

void qks_event_link(struct net *net, const char *link, bool added)
{
	void *hdr;
	struct sk_buff *msg = qks_event_new(net, QKD_CMD_EVENT_LINK, &hdr);

	if (!msg)
		return;
	if (nla_put_string(msg, QKD_A_LINK, link) ||
	    nla_put_u8(msg, QKD_A_LINK_STATE, added)) {
		nlmsg_free(msg);
		return;
	}
	qks_event_send(net, msg, hdr);
}

int qks_genl_init(void)
{
	return genl_register_family(&qks_family);
}

void qks_genl_exit(void)
{
	genl_unregister_family(&qks_family);
}
