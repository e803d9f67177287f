// SPDX-License-Identifier: GPL-2.0
/*
 * key_ID derivation, see keyid.h and Documentation/etsi-014.md.
 */
#include <gnutls/crypto.h>
#include <stdio.h>
#include <string.h>

#include "keyid.h"

static int link_hash(const char *link, uint8_t h[32])
{
	static const char tag[] = "qkd-kme key_ID v1";
	uint8_t in[sizeof(tag) + 32];
	size_t l = strlen(link);

	if (l > 31)
		return -1;
	memcpy(in, tag, sizeof(tag));
	memcpy(in + sizeof(tag), link, l);
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, in, sizeof(tag) + l, h) ? -1 : 0;
}

int kme_keyid_make(const char *link, uint64_t id, size_t len, char out[KME_UUID_LEN + 1])
{
	uint8_t h[32], u[16];

	if (id >> 62 || !len || len > 4096 || link_hash(link, h))
		return -1;
	memcpy(u, h, 4);
	u[4] = len >> 8;
	u[5] = len;
	u[6] = 0x80 | (h[4] & 0x0f);
	u[7] = h[5];
	u[8] = 0x80 | (id >> 56);
	for (int i = 0; i < 7; i++)
		u[9 + i] = id >> (48 - 8 * i);
	snprintf(out, KME_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
		 u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	return 0;
}

static int hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int kme_keyid_parse(const char *link, const char *s, uint64_t *id, size_t *len)
{
	uint8_t h[32], u[16];
	size_t n = 0;

	if (strlen(s) != KME_UUID_LEN)
		return -1;
	for (int i = 0; i < KME_UUID_LEN; i++) {
		int a, b;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		a = hexv(s[i]);
		b = hexv(s[i + 1]);
		if (a < 0 || b < 0)
			return -1;
		u[n++] = a << 4 | b;
		i++;
	}
	if (link_hash(link, h) || memcmp(u, h, 4) || u[6] != (0x80 | (h[4] & 0x0f)) ||
	    u[7] != h[5] || (u[8] & 0xc0) != 0x80)
		return -1;
	*len = (size_t)u[4] << 8 | u[5];
	if (!*len || *len > 4096)
		return -1;
	*id = (uint64_t)(u[8] & 0x3f) << 56;
	for (int i = 0; i < 7; i++)
		*id |= (uint64_t)u[9 + i] << (48 - 8 * i);
	return 0;
}
