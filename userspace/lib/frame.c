// SPDX-License-Identifier: GPL-2.0
/*
 * Frame encoding and validation. The wire layout is documented byte by byte in
 * Documentation/frame-format.md; the offsets below must match it.
 *
 * The decoder is the trust boundary between two processes: everything it
 * accepts is internally consistent (payload_len matches bit_count for the
 * state, reserved bytes are zero, the header checksum holds), so modules can
 * index payloads by bit_count without re-checking. It never reads past the
 * length it is given.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/frame.h"
#include "frame-internal.h"

/* Header offsets (see Documentation/frame-format.md). */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 4,
	OFF_HDR_LEN = 5,
	OFF_STATE = 6,
	OFF_FLAGS = 7,
	OFF_KEY_ID = 8,
	OFF_BIT_COUNT = 16,
	OFF_DISCLOSED = 24,
	OFF_AUTH_CTX = 32,
	OFF_QBER = 40,
	OFF_PAYLOAD_LEN = 44,
	OFF_AUTH_STAGES = 48,
	OFF_ABORT = 52,
	OFF_RSVD1 = 53,		/* 3 bytes, zero */
	OFF_ACC_AB = 56,	/* 16 bytes */
	OFF_ACC_BA = 72,	/* 16 bytes */
	OFF_RSVD2 = 88,		/* 4 bytes, zero */
	OFF_CRC = 92,		/* CRC32C of bytes 0..91 */
};

#define QKD_FRAME_F_KNOWN QKD_FRAME_F_BOB
#define QBER_PPM_MAX 1000000u

/*
 * ---- CRC32C ----
 * Every frame's header is checksummed twice per hop (encode, decode), so for
 * small frames the CRC costs as much as copying the payload: use the SSE4.2
 * crc32 instruction when the CPU has it, a table otherwise (same results,
 * checked against a bitwise reference in tests/unit/test-frame.c).
 */

static uint32_t crc_table[256];
static bool crc_hw;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
		crc_table[i] = c;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(const uint8_t *p, size_t len)
{
	uint64_t c = 0xffffffffu;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		memcpy(&v, p, 8);	/* x86 is little-endian, as crc32 expects */
		c = __builtin_ia32_crc32di(c, v);
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c ^ 0xffffffffu;
}
#endif

uint32_t qkd_crc32c(const void *buf, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const uint8_t *p = buf;
	uint32_t c = 0xffffffffu;

	pthread_once(&once, crc_init);
#if defined(__x86_64__)
	if (crc_hw)
		return crc32c_hw(p, len);
#endif
	while (len--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

/* ---- little-endian access, independent of host byte order and alignment ---- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- allocation ---- */

struct qkd_frame *qkd_frame_new(uint32_t payload_cap)
{
	struct qkd_frame *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->qber_ppm = QKD_QBER_UNKNOWN;
	if (payload_cap && qkd_frame_reserve(f, payload_cap)) {
		free(f);
		return NULL;
	}
	return f;
}

int qkd_frame_reserve(struct qkd_frame *f, uint32_t cap)
{
	uint8_t *p;

	if (cap <= f->payload_cap)
		return 0;
	/*
	 * Not realloc(): the old block may hold key bits and realloc would free
	 * it unwiped. Allocate, copy, wipe, free.
	 */
	p = calloc(1, cap);
	if (!p)
		return -ENOMEM;
	if (f->payload) {
		memcpy(p, f->payload, f->payload_cap);
		explicit_bzero(f->payload, f->payload_cap);
		free(f->payload);
	}
	f->payload = p;
	f->payload_cap = cap;
	return 0;
}

void qkd_frame_free(struct qkd_frame *f)
{
	if (!f)
		return;
	if (f->payload) {
		explicit_bzero(f->payload, f->payload_cap);
		free(f->payload);
	}
	explicit_bzero(f, sizeof(*f));
	free(f);
}

const char *qkd_frame_state_name(uint8_t state)
{
	switch (state) {
	case QKD_STATE_RAW: return "raw";
	case QKD_STATE_SIFTED: return "sifted";
	case QKD_STATE_ESTIMATED: return "estimated";
	case QKD_STATE_CORRECTED: return "corrected";
	case QKD_STATE_CONFIRMED: return "confirmed";
	case QKD_STATE_AMPLIFIED: return "amplified";
	case QKD_STATE_AUTHENTICATED: return "authenticated";
	case QKD_STATE_ABORTED: return "aborted";
	default: return "invalid";
	}
}

/* ---- validation shared by decoder and writer ---- */

static int fail(const char **err, const char *why, int ret)
{
	if (err)
		*err = why;
	return ret;
}

int qkd_frame_check(const struct qkd_frame *f, const char **err)
{
	if (f->flags & ~QKD_FRAME_F_KNOWN)
		return fail(err, "unknown flag bits set", -EBADMSG);
	if (f->qber_ppm > QBER_PPM_MAX && f->qber_ppm != QKD_QBER_UNKNOWN)
		return fail(err, "qber_ppm above 1000000 and not QKD_QBER_UNKNOWN", -EBADMSG);
	if (f->payload_len > QKD_FRAME_MAX_PAYLOAD)
		return fail(err, "payload_len above QKD_FRAME_MAX_PAYLOAD", -EMSGSIZE);

	switch (f->state) {
	case QKD_STATE_RAW:
		if (f->abort_reason != QKD_ABORT_NONE)
			return fail(err, "abort_reason set on a frame that is not aborted", -EBADMSG);
		/* One byte per time slot (qkd/raw.h). */
		if (f->bit_count > QKD_FRAME_MAX_PAYLOAD)
			return fail(err, "raw frame: bit_count above QKD_FRAME_MAX_PAYLOAD", -EMSGSIZE);
		if (f->payload_len != f->bit_count)
			return fail(err, "raw frame: payload_len differs from bit_count (one byte per slot)",
				    -EBADMSG);
		return 0;
	case QKD_STATE_SIFTED:
	case QKD_STATE_ESTIMATED:
	case QKD_STATE_CORRECTED:
	case QKD_STATE_CONFIRMED:
	case QKD_STATE_AMPLIFIED:
	case QKD_STATE_AUTHENTICATED:
		if (f->abort_reason != QKD_ABORT_NONE)
			return fail(err, "abort_reason set on a frame that is not aborted", -EBADMSG);
		if (f->bit_count > (uint64_t)QKD_FRAME_MAX_PAYLOAD * 8)
			return fail(err, "bit_count needs more than QKD_FRAME_MAX_PAYLOAD bytes", -EMSGSIZE);
		if (f->payload_len != qkd_bits_to_bytes(f->bit_count))
			return fail(err, "payload_len is not bit_count packed into 64-bit words",
				    -EBADMSG);
		return 0;
	case QKD_STATE_ABORTED:
		if (f->abort_reason == QKD_ABORT_NONE || f->abort_reason > QKD_ABORT_PEER)
			return fail(err, "aborted frame without a known abort_reason", -EBADMSG);
		if (f->payload_len != 0)
			return fail(err, "aborted frame with a non-empty payload", -EBADMSG);
		return 0;
	default:
		return fail(err, "unknown frame state", -EBADMSG);
	}
}

int qkd_frame_check_padding(const struct qkd_frame *f, const uint8_t *payload, const char **err)
{
	uint64_t bits;

	if (f->state < QKD_STATE_SIFTED || f->state > QKD_STATE_AUTHENTICATED)
		return 0;
	/* Only the last 64-bit word can hold padding; check it bit-exactly. */
	for (bits = f->bit_count; bits < (uint64_t)f->payload_len * 8; bits++) {
		if ((bits & 7) == 0) {
			/* whole bytes from here on */
			for (uint64_t i = bits / 8; i < f->payload_len; i++)
				if (payload[i])
					return fail(err, "padding bits after bit_count are not zero",
						    -EBADMSG);
			return 0;
		}
		if (qkd_bit_get(payload, bits))
			return fail(err, "padding bits after bit_count are not zero", -EBADMSG);
	}
	return 0;
}

/* ---- encoding ---- */

void qkd_frame_encode_header(const struct qkd_frame *f, uint8_t out[QKD_FRAME_HDR_LEN])
{
	memset(out, 0, QKD_FRAME_HDR_LEN);
	put32(out + OFF_MAGIC, QKD_FRAME_MAGIC);
	out[OFF_VERSION] = QKD_FRAME_VERSION;
	out[OFF_HDR_LEN] = QKD_FRAME_HDR_LEN;
	out[OFF_STATE] = f->state;
	out[OFF_FLAGS] = f->flags;
	put64(out + OFF_KEY_ID, f->key_id);
	put64(out + OFF_BIT_COUNT, f->bit_count);
	put64(out + OFF_DISCLOSED, f->disclosed_bits);
	put64(out + OFF_AUTH_CTX, f->auth_ctx);
	put32(out + OFF_QBER, f->qber_ppm);
	put32(out + OFF_PAYLOAD_LEN, f->payload_len);
	put32(out + OFF_AUTH_STAGES, f->auth_stages);
	out[OFF_ABORT] = f->abort_reason;
	memcpy(out + OFF_ACC_AB, f->auth_acc[0], 16);
	memcpy(out + OFF_ACC_BA, f->auth_acc[1], 16);
	put32(out + OFF_CRC, qkd_crc32c(out, OFF_CRC));
}

/* ---- decoding ---- */

/*
 * Checks that only need the first bytes of a header, so that a stream of
 * garbage is refused as soon as it starts instead of after 96 bytes.
 */
static int check_prefix(const uint8_t *buf, size_t len, const char **err)
{
	static const uint8_t magic[4] = { 'Q', 'K', 'D', 'F' };

	for (size_t i = 0; i < 4 && i < len; i++)
		if (buf[i] != magic[i])
			return fail(err, "bad magic: not a qkd frame (expected \"QKDF\")", -EBADMSG);
	if (len > OFF_VERSION && buf[OFF_VERSION] != QKD_FRAME_VERSION)
		return fail(err, "unsupported frame version", -EBADMSG);
	if (len > OFF_HDR_LEN && buf[OFF_HDR_LEN] != QKD_FRAME_HDR_LEN)
		return fail(err, "header_len is not 96", -EBADMSG);
	return 0;
}

int qkd_frame_decode_header(const uint8_t *buf, size_t len, struct qkd_frame *f, const char **err)
{
	struct qkd_frame t;
	int ret;

	ret = check_prefix(buf, len, err);
	if (ret)
		return ret;
	if (len < QKD_FRAME_HDR_LEN)
		return fail(err, "truncated header (fewer than 96 bytes)", -EBADMSG);
	if (get32(buf + OFF_CRC) != qkd_crc32c(buf, OFF_CRC))
		return fail(err, "header checksum (CRC32C) mismatch", -EBADMSG);
	if (buf[OFF_RSVD1] | buf[OFF_RSVD1 + 1] | buf[OFF_RSVD1 + 2] | get32(buf + OFF_RSVD2))
		return fail(err, "reserved header bytes are not zero", -EBADMSG);

	memset(&t, 0, sizeof(t));
	t.state = buf[OFF_STATE];
	t.flags = buf[OFF_FLAGS];
	t.key_id = get64(buf + OFF_KEY_ID);
	t.bit_count = get64(buf + OFF_BIT_COUNT);
	t.disclosed_bits = get64(buf + OFF_DISCLOSED);
	t.auth_ctx = get64(buf + OFF_AUTH_CTX);
	t.qber_ppm = get32(buf + OFF_QBER);
	t.payload_len = get32(buf + OFF_PAYLOAD_LEN);
	t.auth_stages = get32(buf + OFF_AUTH_STAGES);
	t.abort_reason = buf[OFF_ABORT];
	memcpy(t.auth_acc[0], buf + OFF_ACC_AB, 16);
	memcpy(t.auth_acc[1], buf + OFF_ACC_BA, 16);
	ret = qkd_frame_check(&t, err);
	if (ret)
		return ret;

	/* Copy field by field: f's payload pointer and capacity stay. */
	f->key_id = t.key_id;
	f->state = t.state;
	f->flags = t.flags;
	f->qber_ppm = t.qber_ppm;
	f->bit_count = t.bit_count;
	f->disclosed_bits = t.disclosed_bits;
	f->auth_ctx = t.auth_ctx;
	f->abort_reason = t.abort_reason;
	memcpy(f->auth_acc, t.auth_acc, sizeof(f->auth_acc));
	f->auth_stages = t.auth_stages;
	f->payload_len = t.payload_len;
	return 0;
}

ssize_t qkd_frame_decode(const uint8_t *buf, size_t len, struct qkd_frame *f, const char **err)
{
	struct qkd_frame t;
	int ret;

	ret = check_prefix(buf, len, err);
	if (ret)
		return ret;
	if (len < QKD_FRAME_HDR_LEN)
		return 0;
	/* Decode into a copy so that f is untouched by a rejected frame. */
	memset(&t, 0, sizeof(t));
	ret = qkd_frame_decode_header(buf, len, &t, err);
	if (ret)
		return ret;
	if (len - QKD_FRAME_HDR_LEN < t.payload_len)
		return 0;
	ret = qkd_frame_check_padding(&t, buf + QKD_FRAME_HDR_LEN, err);
	if (ret)
		return ret;
	if (qkd_frame_reserve(f, t.payload_len))
		return fail(err, "out of memory for the payload", -ENOMEM);
	t.payload = f->payload;
	t.payload_cap = f->payload_cap;
	*f = t;
	if (t.payload_len)
		memcpy(f->payload, buf + QKD_FRAME_HDR_LEN, t.payload_len);
	return (ssize_t)QKD_FRAME_HDR_LEN + t.payload_len;
}
