/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Payload of a QKD_STATE_RAW frame: one byte per time slot, bit_count slots.
 * Alice's byte: value and basis she sent. Bob's byte: whether he detected
 * anything, the basis he measured in, the bit he got, and whether more than
 * one detector clicked (he then assigns a random bit, the usual squashing).
 */
#ifndef QKD_RAW_H
#define QKD_RAW_H

#define QKD_RAW_VALUE 0x01    /* bit value */
#define QKD_RAW_BASIS 0x02    /* 0 = rectilinear (Z), 1 = diagonal (X) */
#define QKD_RAW_DETECTED 0x04 /* Bob: a detector clicked in this slot (Alice: always set) */
#define QKD_RAW_MULTI 0x08    /* Bob: more than one detector clicked */

#endif
