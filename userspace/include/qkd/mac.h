/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Wegman-Carter MAC: polynomial evaluation hash over GF(2^128) (an
 * epsilon-almost-XOR-universal family: epsilon <= blocks / 2^128), tag
 * one-time padded with fresh key. Fast path with PCLMULQDQ, portable path with
 * identical results; qkd_mac_force_portable() selects for tests and benches.
 */
#ifndef QKD_MAC_H
#define QKD_MAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QKD_MAC_KEY_LEN 16
#define QKD_MAC_TAG_LEN 16

struct qkd_polyhash {
	uint64_t key[2];
	uint64_t acc[2];
	uint64_t blocks;  /* 16-byte blocks absorbed */
	uint8_t buf[16];  /* partial block */
	unsigned buf_len;
	/* precomputed powers of key for the fast path */
	uint64_t pow[8][2];
};

void qkd_polyhash_init(struct qkd_polyhash *h, const uint8_t key[QKD_MAC_KEY_LEN]);
void qkd_polyhash_update(struct qkd_polyhash *h, const void *data, size_t len);
/* Appends the length block, writes the 16-byte digest, wipes h. */
void qkd_polyhash_final(struct qkd_polyhash *h, uint8_t out[QKD_MAC_TAG_LEN]);
/* tag = digest XOR pad */
void qkd_mac_tag(const uint8_t digest[16], const uint8_t pad[16], uint8_t tag[16]);
/* Constant-time comparison; 0 when equal. */
int qkd_mac_verify(const uint8_t a[16], const uint8_t b[16]);

/*
 * out = a * b in GF(2^128), same field and bit order as the hash (see
 * Documentation/authentication.md). Used for the deferred Horner chain.
 */
void qkd_gf128_mul(uint8_t out[16], const uint8_t a[16], const uint8_t b[16]);

bool qkd_mac_has_fast_path(void);
void qkd_mac_force_portable(bool portable);

#endif
