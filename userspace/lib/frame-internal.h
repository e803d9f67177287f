/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libqkd-internal helpers shared by frame.c and the stream transport: the
 * checks the decoder applies, reused by the writer so that a module can never
 * put a frame on the wire that its neighbour would refuse.
 */
#ifndef QKD_FRAME_INTERNAL_H
#define QKD_FRAME_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "qkd/frame.h"

/* CRC32C (Castagnoli, reflected, init and final xor 0xffffffff). */
uint32_t qkd_crc32c(const void *buf, size_t len);

/*
 * Check the metadata of an in-memory frame against the wire rules (known state,
 * known flags, abort reason, QBER range, payload length vs bit count).
 * 0, -EBADMSG or -EMSGSIZE with *err set to a static reason.
 */
int qkd_frame_check(const struct qkd_frame *f, const char **err);

/* Check that the padding bits after bit_count of a packed-bit payload are 0. */
int qkd_frame_check_padding(const struct qkd_frame *f, const uint8_t *payload, const char **err);

#endif
