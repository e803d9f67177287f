// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the frame decoder and the stream reader.
 *
 * The input is taken as a byte stream of frames. It is decoded with
 * qkd_frame_decode (from an exact-size copy, so ASan sees any read past the
 * end), every accepted frame must re-encode to exactly the bytes it came from,
 * and the same bytes are then fed through a pipe (or a memfd when larger than
 * a pipe) to qkd_read_frame, over io_uring or the fallback depending on the
 * last byte: the stream must return the same frames and end the same way
 * (clean end, -EPIPE for a cut frame, or the decoder's error).
 *
 * If the first byte has its top bit set, it is dropped and the header
 * checksum of every frame in the rest is recomputed before all this, so the
 * fuzzer gets past the CRC and exercises the field checks behind it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "qkd/stream.h"
#include "../../userspace/lib/frame-internal.h"

#define MAX_FRAMES 64

static struct qkd_frame *frames[MAX_FRAMES];
static struct qkd_stream *anchor;	/* keeps the thread's io_uring alive */

static void init(void)
{
	int p[2];

	signal(SIGPIPE, SIG_IGN);
	if (pipe(p) == 0) {
		anchor = qkd_stream_open(p[0], QKD_STREAM_READ);
		/* p[1] stays open: the anchor never sees EOF and is never read */
	}
	for (int i = 0; i < MAX_FRAMES; i++)
		frames[i] = qkd_frame_new(0);
}

static int same(const struct qkd_frame *a, const struct qkd_frame *b)
{
	return a->key_id == b->key_id && a->state == b->state && a->flags == b->flags &&
	       a->qber_ppm == b->qber_ppm && a->bit_count == b->bit_count &&
	       a->disclosed_bits == b->disclosed_bits && a->auth_ctx == b->auth_ctx &&
	       a->abort_reason == b->abort_reason && a->auth_stages == b->auth_stages &&
	       !memcmp(a->auth_acc, b->auth_acc, sizeof(a->auth_acc)) &&
	       a->payload_len == b->payload_len &&
	       (!a->payload_len || !memcmp(a->payload, b->payload, a->payload_len));
}

static int feed_fd(const uint8_t *data, size_t size)
{
	int p[2], fd;

	if (size < 65536) {
		if (pipe(p))
			abort();
		if (size && write(p[1], data, size) != (ssize_t)size)
			abort();
		close(p[1]);
		return p[0];
	}
	fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET))
		abort();
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	uint8_t *buf = malloc(size ? size : 1), hdr[QKD_FRAME_HDR_LEN];
	struct qkd_frame *g = NULL, scratch;
	struct qkd_stream *s;
	size_t off = 0;
	int n = 0, want_end, ret;
	const char *err;

	if (!inited) {
		init();
		inited = 1;
	}
	memcpy(buf, data, size);
	if (size && (data[0] & 0x80)) {
		/* Fix-up mode: valid checksums on every header. */
		memmove(buf, buf + 1, --size);
		for (size_t o = 0; size - o >= QKD_FRAME_HDR_LEN;) {
			uint32_t c = qkd_crc32c(buf + o, 92), len;

			for (int i = 0; i < 4; i++)
				buf[o + 92 + i] = (uint8_t)(c >> (8 * i));
			len = (uint32_t)buf[o + 44] | (uint32_t)buf[o + 45] << 8 |
			      (uint32_t)buf[o + 46] << 16 | (uint32_t)buf[o + 47] << 24;
			if (len > size - o - QKD_FRAME_HDR_LEN)
				break;
			o += QKD_FRAME_HDR_LEN + len;
		}
		data = buf;
	}

	/* Header-only decoding of any prefix never crashes. */
	memset(&scratch, 0, sizeof(scratch));
	qkd_frame_decode_header(buf, size < QKD_FRAME_HDR_LEN ? size : QKD_FRAME_HDR_LEN,
				&scratch, &err);

	/* Frame by frame, as a stream. */
	for (;;) {
		ssize_t r;

		if (off == size) {
			want_end = 0;
			break;
		}
		if (n == MAX_FRAMES) {
			want_end = 1;	/* stop comparing here */
			break;
		}
		r = qkd_frame_decode(buf + off, size - off, frames[n], &err);
		if (r == 0) {
			want_end = -EPIPE;
			break;
		}
		if (r < 0) {
			if (!err)
				abort();
			want_end = (int)r;
			break;
		}
		/* Canonical: re-encoding gives back the very same bytes. */
		qkd_frame_encode_header(frames[n], hdr);
		if (memcmp(hdr, buf + off, QKD_FRAME_HDR_LEN))
			abort();
		off += (size_t)r;
		n++;
	}
	if (want_end == -ENOMEM)
		goto out;

	s = qkd_stream_open(feed_fd(data, size),
			    QKD_STREAM_READ | (size && (data[size - 1] & 1) ? QKD_STREAM_FALLBACK : 0));
	if (!s)
		abort();
	for (int i = 0; i < n; i++) {
		if (qkd_read_frame(s, &g) != 1 || !same(g, frames[i]))
			abort();
	}
	if (want_end != 1) {
		ret = qkd_read_frame(s, &g);
		if (ret != want_end)
			abort();
		if (ret < 0 && !strcmp(qkd_stream_error(s), "no error"))
			abort();
	}
	qkd_stream_close(s);
	qkd_frame_free(g);
out:
	free(buf);
	return 0;
}
