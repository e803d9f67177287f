/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ETSI 014 key_ID <-> (link, key id, size): both KMEs compute the same UUID
 * from what their stores share (the link name and the pipeline's key id), so
 * they never need to talk. Layout (an RFC 9562 version-8 UUID), big-endian:
 *
 *   bytes 0-3   H[0..3]          H = SHA-256("qkd-kme key_ID v1\0" || link)
 *   bytes 4-5   size in bytes    1..4096 (the delivered size, maybe a prefix)
 *   byte  6     0x80 | H[4]&0xf  version 8
 *   byte  7     H[5]
 *   byte  8     0x80 | id>>56    variant 10; key ids are < 2^62
 *   bytes 9-15  id bits 55..0
 */
#ifndef QKD_KME_KEYID_H
#define QKD_KME_KEYID_H

#include <stddef.h>
#include <stdint.h>

#define KME_UUID_LEN 36

/* 0, or -1 if id or len cannot be represented. out gets 37 bytes. */
int kme_keyid_make(const char *link, uint64_t id, size_t len, char out[KME_UUID_LEN + 1]);
/* 0 if s is a key_ID of this link: id and len set; -1 otherwise. */
int kme_keyid_parse(const char *link, const char *s, uint64_t *id, size_t *len);

#endif
