// SPDX-License-Identifier: GPL-2.0
/*
 * Writing frames. Small frames are copied into a ring of QKD_WBUF_COUNT
 * buffers and a buffer is written when full, so thousands of small frames cost
 * one write. With io_uring the writes are asynchronous: qkd_write_frame
 * returns while earlier buffers are still going into the pipe, and blocks only
 * when every buffer is queued (back-pressure from a slow reader). Large frames
 * (QKD_DIRECT_MIN and up) go out in one vectored write straight from the
 * caller's payload after everything queued before them.
 *
 * A partly filled buffer is pushed out (without waiting) when the thread is
 * about to block reading any stream, so a stage never sits on output its
 * downstream is waiting for; qkd_stream_flush waits until all is written.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "frame-internal.h"
#include "stream-internal.h"

/* Coarse clock (vDSO, a few ns): only buffer ages of milliseconds matter. */
static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void start_next(struct qkd_stream *s)
{
	struct qkd_io_op *op = &s->wop;
	unsigned i = s->wsend;

	if (op->busy || !s->wqueued || s->sticky)
		return;
	op->iov[0].iov_base = s->wb[i];
	op->iov[0].iov_len = s->wb_len[i];
	op->niov = 1;
	op->buf_index = s->wb_index[i];
	s->io->start(op);
}


void qkd_stream_write_done(struct qkd_stream *s, int res)
{
	if (res < 0) {
		qkd_stream_fail_errno(s, res, res == -EPIPE ? "write: reader went away" : "write");
		/* Nothing more can be written: drop the queue. */
		s->wqueued = 0;
		s->wsend = s->wfill;
		return;
	}
	if (s->wdirect)
		return;		/* a direct write, not a queued buffer */
	s->wsend = (s->wsend + 1) % QKD_WBUF_COUNT;
	s->wqueued--;
	start_next(s);
}

/* Queue the buffer being filled. */
static void queue_fill(struct qkd_stream *s)
{
	if (!s->wlen)
		return;
	s->wb_len[s->wfill] = s->wlen;
	s->wfill = (s->wfill + 1) % QKD_WBUF_COUNT;
	s->wqueued++;
	s->wlen = 0;
	start_next(s);
}

/* Wait for the write in flight to finish (and the next to start). */
static int wait_write(struct qkd_stream *s)
{
	int ret;

	if (!s->wop.busy) {
		start_next(s);
		if (!s->wop.busy)
			return s->sticky;
	}
	s->io->submit(s);
	ret = s->io->wait(&s->wop, false);
	if (ret)
		return qkd_stream_fail_errno(s, ret, "waiting for the output");
	return s->sticky;
}

/* Make room for need bytes (<= QKD_WBUF_SIZE) in the fill buffer. */
static int get_room(struct qkd_stream *s, uint32_t need)
{
	int ret;

	if (QKD_WBUF_SIZE - s->wlen < need)
		queue_fill(s);
	/* Back-pressure: every buffer queued, the fill one included. */
	while (s->wqueued == QKD_WBUF_COUNT) {
		ret = wait_write(s);
		if (ret)
			return ret;
	}
	return s->sticky;
}

static int write_direct(struct qkd_stream *s, const struct qkd_frame *f)
{
	struct qkd_io_op *op = &s->wop;
	int ret;

	/* Everything queued before this frame goes first. */
	while (s->wqueued || op->busy) {
		ret = wait_write(s);
		if (ret)
			return ret;
	}
	op->iov[0].iov_base = s->wb[s->wfill];
	op->iov[0].iov_len = s->wlen;	/* earlier small frames and this header */
	op->iov[1].iov_base = f->payload;
	op->iov[1].iov_len = f->payload_len;
	op->niov = 2;
	op->buf_index = -1;
	s->wdirect = true;
	s->io->start(op);
	while (op->busy) {
		s->io->submit(s);
		ret = s->io->wait(op, false);
		if (ret) {
			s->wdirect = false;
			return qkd_stream_fail_errno(s, ret, "waiting for the output");
		}
	}
	s->wdirect = false;
	s->wlen = 0;
	return s->sticky;
}

int qkd_write_frame(struct qkd_stream *s, const struct qkd_frame *f)
{
	uint32_t total;
	const char *err;
	int ret;

	if (!(s->flags & QKD_STREAM_WRITE))
		return -EBADF;
	if (s->sticky)
		return s->sticky;
	if (qkd_frame_check(f, &err) ||
	    (f->payload_len && !f->payload) ||
	    qkd_frame_check_padding(f, f->payload, &err)) {
		/* The caller's bug, not the stream's: it stays usable. */
		s->err = f->payload_len && !f->payload ? "frame without a payload buffer" : err;
		return -EINVAL;
	}
	s->io->reap(s);
	total = QKD_FRAME_HDR_LEN + f->payload_len;
	if (total >= QKD_DIRECT_MIN) {
		ret = get_room(s, QKD_FRAME_HDR_LEN);
		if (ret)
			return ret;
		qkd_frame_encode_header(f, s->wb[s->wfill] + s->wlen);
		s->wlen += QKD_FRAME_HDR_LEN;
		return write_direct(s, f);
	}
	ret = get_room(s, total);
	if (ret)
		return ret;
	if (!s->wlen)
		s->wfirst_ms = now_ms();
	qkd_frame_encode_header(f, s->wb[s->wfill] + s->wlen);
	if (f->payload_len)
		memcpy(s->wb[s->wfill] + s->wlen + QKD_FRAME_HDR_LEN, f->payload, f->payload_len);
	s->wlen += total;
	/*
	 * A part-filled buffer is started only once it is old: starting it
	 * whenever the writer was idle quadrupled the io_uring_enter calls for
	 * 4 KiB frames. Output that must not wait at all is pushed before the
	 * thread blocks on input, or flushed.
	 */
	if (now_ms() - s->wfirst_ms >= QKD_WBUF_MAX_AGE_MS)
		queue_fill(s);
	s->io->submit(s);
	return s->sticky;
}

int qkd_stream_push(struct qkd_stream *s)
{
	if (s->sticky || !s->wlen)
		return s->sticky;
	queue_fill(s);
	s->io->submit(s);
	return s->sticky;
}

int qkd_stream_flush(struct qkd_stream *s)
{
	int ret;

	if (!(s->flags & QKD_STREAM_WRITE))
		return -EBADF;
	qkd_stream_push(s);
	while (s->wqueued || s->wop.busy) {
		ret = wait_write(s);
		if (ret)
			return ret;
	}
	return s->sticky;
}
