// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_keystore: module entry, parameters and the module keyring.
 *
 * The QKD key store keeps the keys distilled by the qkdpipe post-processing
 * pipeline, per network namespace and per link, and hands each of them out
 * once: through the "qkd" keyring key type, the "qkd_keystore" generic-netlink
 * family and the /dev/qkd_pump character device.
 */
#include <linux/key.h>
#include <linux/module.h>
#include <net/genetlink.h>

#include "qks.h"

struct key *qks_module_keyring;

/*
 * The defaults are checked once, at load, against each other and like netlink
 * input; changing them at runtime would skip those checks, so they are read
 * only (a link's own limits are set per link over netlink).
 */
unsigned int qks_param_key_uid;
module_param_named(key_uid, qks_param_key_uid, uint, 0444);
MODULE_PARM_DESC(key_uid, "Default owner uid of new links' keys and keyrings (default 0: root)");

int qks_param_key_gid = -1;
module_param_named(key_gid, qks_param_key_gid, int, 0444);
MODULE_PARM_DESC(key_gid, "Default gid allowed to read new links' keys, -1 for none (default -1)");

unsigned int qks_param_max_keys = 65536;
module_param_named(max_keys, qks_param_max_keys, uint, 0444);
MODULE_PARM_DESC(max_keys, "Default limit of keys stored per link (default 65536)");

unsigned long qks_param_max_bytes = 64UL << 20;
module_param_named(max_bytes, qks_param_max_bytes, ulong, 0444);
MODULE_PARM_DESC(max_bytes, "Default limit of key bytes stored per link (default 64 MiB)");

unsigned int qks_param_low_watermark = 16;
module_param_named(low_watermark, qks_param_low_watermark, uint, 0444);
MODULE_PARM_DESC(low_watermark,
		 "Default available-key count under which a low-watermark event is sent, 0 for never (default 16)");

/* The getter may run while the module unloads: it reads a copy, not the key. */
static key_serial_t qks_keyring_serial;

static int qks_keyring_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", READ_ONCE(qks_keyring_serial));
}

static const struct kernel_param_ops qks_keyring_ops = {
	.get = qks_keyring_get,
};
module_param_cb(keyring, &qks_keyring_ops, NULL, 0444);
MODULE_PARM_DESC(keyring, "Serial number of the module keyring \"qkd\" (read only)");

static int __init qks_init(void)
{
	int err;

	/* Defaults given at load time are checked like netlink input. */
	if (!qks_param_max_keys || qks_param_max_keys > QKD_LINK_MAX_KEYS_LIMIT ||
	    !qks_param_max_bytes || qks_param_low_watermark > qks_param_max_keys) {
		pr_err("qkd_keystore: max_keys, max_bytes or low_watermark out of range\n");
		return -EINVAL;
	}
	err = qks_keytype_init();
	if (err)
		return err;
	qks_module_keyring = qks_keyring_create("qkd", GLOBAL_ROOT_UID,
						qks_param_key_gid < 0 ? INVALID_GID :
						KGIDT_INIT(qks_param_key_gid), NULL);
	if (IS_ERR(qks_module_keyring)) {
		err = PTR_ERR(qks_module_keyring);
		goto fail_keyring;
	}
	WRITE_ONCE(qks_keyring_serial, key_serial(qks_module_keyring));
	err = qks_xfrm_init();
	if (err)
		goto fail_xfrm;
	err = qks_store_init();
	if (err)
		goto fail_store;
	err = qks_pump_init();
	if (err)
		goto fail_pump;
	err = qks_genl_init();
	if (err)
		goto fail_genl;
	return 0;

fail_genl:
	qks_pump_exit();
fail_pump:
	qks_store_exit();
fail_store:
	qks_xfrm_exit();
fail_xfrm:
	key_invalidate(qks_module_keyring);
	key_put(qks_module_keyring);
fail_keyring:
	qks_keytype_exit();
	return err;
}

/* Every key is wiped on the way out: the pernet exit empties every link. */
static void __exit qks_exit(void)
{
	qks_genl_exit();
	qks_pump_exit();
	/* No more expiry notifications, then every binding and link goes. */
	qks_xfrm_exit();
	qks_store_exit();
	key_invalidate(qks_module_keyring);
	key_put(qks_module_keyring);
	qks_keytype_exit();
}

module_init(qks_init);
module_exit(qks_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("QKD key store: per-namespace key links, keyring key type, generic netlink, key pump");
MODULE_AUTHOR("qkdpipe developers");
MODULE_VERSION("0.1");
MODULE_ALIAS_GENL_FAMILY(QKD_GENL_NAME);
