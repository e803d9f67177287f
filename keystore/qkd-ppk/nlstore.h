/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qkd-ppk: asking the QKD key store (generic netlink, family "qkd_keystore")
 * which keyring holds a link's keys. Keyrings are global while the store is
 * per network namespace, so only the store can say which keyring is the
 * link of *our* namespace.
 */
#ifndef QKD_PPK_NLSTORE_H
#define QKD_PPK_NLSTORE_H

#include <keyutils.h>

/*
 * 0 and *ring on success; -EPROTONOSUPPORT if the key store module is not
 * loaded (no such family), -ENOENT if the link does not exist in this
 * namespace, other -errno.
 */
int ppk_nl_link_keyring(const char *link, key_serial_t *ring);

#endif
