/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Saved module state for hibernate/resume: a versioned, checksummed file
 * written atomically (temporary file, fsync, rename). Records are key=value
 * text lines so operators can read them; the trailer holds a CRC over the
 * whole content. A truncated or corrupted file is refused with a reason.
 */
#ifndef QKD_STATEFILE_H
#define QKD_STATEFILE_H

#include <stdint.h>

struct qkd_state;

struct qkd_state *qkd_state_new(const char *module, const char *role);
int qkd_state_set(struct qkd_state *s, const char *key, const char *value);
int qkd_state_set_u64(struct qkd_state *s, const char *key, uint64_t value);
/* Atomically write. 0 or -errno. */
int qkd_state_save(const struct qkd_state *s, const char *path);
/*
 * Load and verify (magic, version, module name, role, checksum). NULL on
 * failure with *err pointing at a reason.
 */
struct qkd_state *qkd_state_load(const char *path, const char *module, const char *role,
				 const char **err);
const char *qkd_state_get(const struct qkd_state *s, const char *key);
int qkd_state_get_u64(const struct qkd_state *s, const char *key, uint64_t *value);
void qkd_state_free(struct qkd_state *s);

#endif
