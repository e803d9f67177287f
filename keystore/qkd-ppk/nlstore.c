// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-ppk: QKD_CMD_LINK_GET over generic netlink for the link's keyring.
 */
#include <errno.h>
#include <string.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "../../kernel/uapi/qkd_keystore.h"
#include "nlstore.h"

struct link_reply {
	int found;
	key_serial_t ring;
};

static int on_link(struct nl_msg *msg, void *arg)
{
	struct link_reply *r = arg;
	struct nlattr *tb[QKD_A_MAX + 1];
	struct nla_policy pol[QKD_A_MAX + 1];

	memset(pol, 0, sizeof(pol));
	pol[QKD_A_LINK].type = NLA_STRING;
	pol[QKD_A_KEYRING].type = NLA_U32;
	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, QKD_A_MAX, pol) < 0)
		return NL_SKIP;
	if (tb[QKD_A_KEYRING]) {
		r->ring = (key_serial_t)nla_get_u32(tb[QKD_A_KEYRING]);
		r->found = 1;
	}
	return NL_OK;
}

/* Translate libnl's error codes into errno values for our callers. */
static int nl_to_errno(int err)
{
	switch (-err) {
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_PERM:
		return -EPERM;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_INVAL:
		return -EINVAL;
	default:
		return -EIO;
	}
}

int ppk_nl_link_keyring(const char *link, key_serial_t *ring)
{
	struct link_reply r = { 0, 0 };
	struct nl_sock *sk;
	struct nl_msg *msg = NULL;
	int fam, ret;

	if (strlen(link) >= QKD_LINK_NAME_MAX)
		return -ENAMETOOLONG;
	sk = nl_socket_alloc();
	if (!sk)
		return -ENOMEM;
	ret = genl_connect(sk);
	if (ret < 0) {
		ret = nl_to_errno(ret);
		goto out;
	}
	fam = genl_ctrl_resolve(sk, QKD_GENL_NAME);
	if (fam < 0) {
		ret = -EPROTONOSUPPORT;
		goto out;
	}
	msg = nlmsg_alloc();
	if (!msg) {
		ret = -ENOMEM;
		goto out;
	}
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, fam, 0, 0, QKD_CMD_LINK_GET,
			 QKD_GENL_VERSION) ||
	    nla_put_string(msg, QKD_A_LINK, link) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_link, &r);
	ret = nl_send_auto(sk, msg);
	if (ret >= 0)
		ret = nl_recvmsgs_default(sk);
	if (ret < 0) {
		/* The kernel answers an unknown link with ENOENT/ENODEV. */
		ret = (ret == -NLE_OBJ_NOTFOUND || ret == -NLE_NODEV) ? -ENOENT : nl_to_errno(ret);
		goto out;
	}
	ret = r.found ? 0 : -ENOENT;
	if (!ret)
		*ring = r.ring;
out:
	nlmsg_free(msg);
	nl_socket_free(sk);
	return ret;
}
