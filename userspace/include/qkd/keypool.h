/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Authentication key pool: secret key material shared by Alice and Bob
 * (pre-shared at first, refilled from distilled key), consumed and never
 * reused. A pool is a file of key bytes plus a persistent record of which
 * ranges are spent; spent bytes are wiped in the file. Several processes may
 * share one pool (file locking). Alice picks the offsets and tells Bob through
 * the (authenticated) channel; Bob takes the same offsets and refuses any that
 * are already spent, so a lying or replaying peer cannot make him reuse key.
 */
#ifndef QKD_KEYPOOL_H
#define QKD_KEYPOOL_H

#include <stddef.h>
#include <stdint.h>

struct qkd_keypool;

/* Open (or with create, create from initial bytes) a pool. NULL, errno set. */
struct qkd_keypool *qkd_keypool_open(const char *path);
int qkd_keypool_create(const char *path, const void *key, size_t len);
void qkd_keypool_close(struct qkd_keypool *kp);

/* Alice: take len unspent bytes, report where they were. 0 or -ENOSPC etc. */
int qkd_keypool_take(struct qkd_keypool *kp, size_t len, void *out, uint64_t *offset);
/* Bob: take len bytes at offset; -EKEYREJECTED if any of them was spent. */
int qkd_keypool_take_at(struct qkd_keypool *kp, uint64_t offset, size_t len, void *out);
/* Append fresh key material (recycling). 0 or -errno. */
int qkd_keypool_append(struct qkd_keypool *kp, const void *key, size_t len);
/* Unspent bytes, total bytes ever added, bytes spent. */
int qkd_keypool_stat(struct qkd_keypool *kp, uint64_t *available, uint64_t *total, uint64_t *spent);

#endif
