/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Frame streams between neighbouring stages: a pipe (or any fd) carrying
 * encoded frames. Driven by io_uring with batched submissions and registered
 * buffers; falls back to plain read/write when io_uring is refused
 * (EPERM/ENOSYS) or when forced (QKD_STREAM_FALLBACK flag or the environment
 * variable QKD_TRANSPORT=fallback).
 */
#ifndef QKD_STREAM_H
#define QKD_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include "frame.h"

/*
 * A stream belongs to the thread that opened it (io_uring rings are per
 * thread): read, write, flush and close it from that thread only.
 */
struct qkd_stream;

#define QKD_STREAM_READ 0x1
#define QKD_STREAM_WRITE 0x2
#define QKD_STREAM_FALLBACK 0x4 /* never use io_uring */

/* Wrap fd (ownership passes to the stream). NULL with errno set on failure. */
struct qkd_stream *qkd_stream_open(int fd, unsigned flags);
/* Flush pending writes, close the fd, free. Returns 0 or -errno of the flush. */
int qkd_stream_close(struct qkd_stream *s);
/* true if this stream runs on io_uring. */
bool qkd_stream_uses_uring(const struct qkd_stream *s);

/*
 * Read the next frame into *f (reusing its payload buffer, growing it as needed;
 * *f may be NULL, then a frame is allocated). Returns 1 for a frame, 0 at end of
 * stream (clean EOF between frames), -EBADMSG/-EMSGSIZE for a malformed frame
 * (the stream is then unusable), -EPIPE for EOF inside a frame, -EINTR if
 * interrupted by a signal before any byte of the frame arrived, other -errno.
 * qkd_stream_error() gives a human-readable reason for the last failure.
 */
int qkd_read_frame(struct qkd_stream *s, struct qkd_frame **f);

/*
 * Queue a frame for writing. May return before the bytes reach the fd (batched);
 * blocks when the reader is slow (back-pressure). 0 or -errno (-EPIPE when the
 * reader went away).
 */
int qkd_write_frame(struct qkd_stream *s, const struct qkd_frame *f);
/* Wait until every queued frame has been written. 0 or -errno. */
int qkd_stream_flush(struct qkd_stream *s);
const char *qkd_stream_error(const struct qkd_stream *s);

#endif
