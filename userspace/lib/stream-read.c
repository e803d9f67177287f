// SPDX-License-Identifier: GPL-2.0
/*
 * Reading frames. Input is read in chunks of up to QKD_RBUF_SIZE into one
 * buffer and as many frames as it holds are decoded from it without another
 * syscall. A chunk is read only when the buffer holds no complete frame: by
 * then the pipe has had time to fill, so reads are few and large. (Reading
 * ahead as soon as a frame was handed out was measured: it made more, smaller
 * reads and cost CPU, for both transports alike.)
 *
 * Large frames (QKD_DIRECT_MIN and up) are read straight into the frame's
 * payload together with the next header (one readv per frame, no copy); the
 * stream stays in this "big" mode while large frames keep coming.
 *
 * Every byte read is accounted in [rhead, rtail) or the frame being returned,
 * so an -EINTR return (only before the first byte of a frame) loses nothing:
 * the next call carries on where this one stopped.
 */
#include <errno.h>
#include <string.h>

#include "frame-internal.h"
#include "stream-internal.h"

/* Fold a finished chunk read into the buffer. */
static void collect(struct qkd_stream *s)
{
	struct qkd_io_op *op = &s->rop;

	if (!op->done)
		return;
	op->done = false;
	if (op->res > 0)
		s->rtail += (uint32_t)op->res;
	else if (op->res == 0)
		s->eof = true;
	else
		qkd_stream_fail_errno(s, op->res, "read");
}

/* Start reading up to want bytes into the chunk; compacting if allowed. */
static void start_chunk_read(struct qkd_stream *s, uint32_t want, bool compact)
{
	struct qkd_io_op *op = &s->rop;
	uint32_t avail = s->rtail - s->rhead, space;

	if (!avail) {
		s->rhead = s->rtail = 0;
	} else if (compact && s->rhead && QKD_RBUF_SIZE - s->rtail < QKD_RBUF_SIZE / 2) {
		/* Only a partial frame is left here: move it to the front. */
		memmove(s->rbuf, s->rbuf + s->rhead, avail);
		s->rhead = 0;
		s->rtail = avail;
	}
	space = QKD_RBUF_SIZE - s->rtail;
	if (!space)
		return;
	op->iov[0].iov_base = s->rbuf + s->rtail;
	op->iov[0].iov_len = want < space ? want : space;
	op->niov = 1;
	op->buf_index = s->rbuf_index;
	s->io->start(op);
}

/* Copy decoded header fields into f, keeping f's payload buffer. */
static void set_header(struct qkd_frame *f, const struct qkd_frame *h)
{
	uint8_t *payload = f->payload;
	uint32_t cap = f->payload_cap;

	*f = *h;
	f->payload = payload;
	f->payload_cap = cap;
}

/* The whole frame h is in the buffer at rhead. */
static int deliver(struct qkd_stream *s, struct qkd_frame *f, const struct qkd_frame *h)
{
	const uint8_t *payload = s->rbuf + s->rhead + QKD_FRAME_HDR_LEN;
	const char *err;
	int ret;

	ret = qkd_frame_check_padding(h, payload, &err);
	if (ret)
		return qkd_stream_fail(s, ret, err);
	if (qkd_frame_reserve(f, h->payload_len))
		return -ENOMEM;		/* not sticky: the caller may free memory */
	set_header(f, h);
	if (h->payload_len)
		memcpy(f->payload, payload, h->payload_len);
	s->rhead += QKD_FRAME_HDR_LEN + h->payload_len;
	s->big_mode = false;
	return 1;
}

/* Frame h is large: take what is buffered, read the rest into f directly. */
static int read_direct(struct qkd_stream *s, struct qkd_frame *f, const struct qkd_frame *h)
{
	struct qkd_io_op *op = &s->rop;
	uint32_t have = s->rtail - s->rhead - QKD_FRAME_HDR_LEN;
	uint32_t rem = h->payload_len - have;
	const char *err;
	int ret;

	if (qkd_frame_reserve(f, h->payload_len))
		return -ENOMEM;
	memcpy(f->payload, s->rbuf + s->rhead + QKD_FRAME_HDR_LEN, have);
	s->rhead = s->rtail = 0;
	while (rem) {
		/* The rest of the payload and, if it is there, the next header. */
		op->iov[0].iov_base = f->payload + (h->payload_len - rem);
		op->iov[0].iov_len = rem;
		op->iov[1].iov_base = s->rbuf;
		op->iov[1].iov_len = QKD_FRAME_HDR_LEN;
		op->niov = 2;
		op->buf_index = -1;
		s->io->start(op);
		ret = s->io->wait(op, false);
		if (ret)
			return qkd_stream_fail_errno(s, ret, "waiting for input");
		op->done = false;
		if (op->res < 0)
			return qkd_stream_fail_errno(s, op->res, "read");
		if (op->res == 0) {
			s->eof = true;
			return qkd_stream_fail(s, -EPIPE, "end of stream inside a frame");
		}
		if ((uint32_t)op->res > rem) {
			s->rtail = (uint32_t)op->res - rem;
			rem = 0;
		} else {
			rem -= (uint32_t)op->res;
		}
	}
	ret = qkd_frame_check_padding(h, f->payload, &err);
	if (ret)
		return qkd_stream_fail(s, ret, err);
	set_header(f, h);
	s->big_mode = true;
	return 1;
}

int qkd_read_frame(struct qkd_stream *s, struct qkd_frame **fp)
{
	struct qkd_frame h;
	const char *err;
	int ret;

	if (!(s->flags & QKD_STREAM_READ))
		return -EBADF;
	if (s->sticky)
		return s->sticky;
	if (!*fp) {
		*fp = qkd_frame_new(0);
		if (!*fp)
			return -ENOMEM;
	}
	s->io->reap(s);
	for (;;) {
		uint32_t avail, want = QKD_RBUF_SIZE;

		collect(s);
		if (s->sticky)
			return s->sticky;
		avail = s->rtail - s->rhead;
		memset(&h, 0, sizeof(h));
		if (avail >= QKD_FRAME_HDR_LEN) {
			uint32_t need;

			ret = qkd_frame_decode_header(s->rbuf + s->rhead, avail, &h, &err);
			if (ret)
				return qkd_stream_fail(s, ret, err);
			need = QKD_FRAME_HDR_LEN + h.payload_len;
			if (avail >= need)
				return deliver(s, *fp, &h);
			if (need >= QKD_DIRECT_MIN && !s->rop.busy)
				return read_direct(s, *fp, &h);
		} else if (avail) {
			/* Refuse garbage from its first bytes (magic, version). */
			ret = (int)qkd_frame_decode(s->rbuf + s->rhead, avail, &h, &err);
			if (ret < 0)
				return qkd_stream_fail(s, ret, err);
			if (s->big_mode)
				want = QKD_FRAME_HDR_LEN - avail;
		} else if (s->big_mode) {
			want = QKD_FRAME_HDR_LEN;
		}
		if (s->eof) {
			if (!avail)
				return 0;
			return qkd_stream_fail(s, -EPIPE, "end of stream inside a frame");
		}
		if (!s->rop.busy)
			start_chunk_read(s, want, true);
		if (!s->rop.busy && !s->rop.done)	/* cannot happen: frames >= 64 KiB go direct */
			return qkd_stream_fail(s, -EIO, "internal error: read buffer full");
		ret = s->io->wait(&s->rop, avail == 0);
		if (ret == -EINTR)
			return -EINTR;
		if (ret)
			return qkd_stream_fail_errno(s, ret, "waiting for input");
	}
}
