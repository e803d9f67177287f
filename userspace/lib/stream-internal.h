/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Inside of a frame stream (qkd/stream.h), shared by the engine
 * (stream.c, stream-read.c, stream-write.c) and its two I/O backends
 * (stream-uring.c, stream-plain.c).
 *
 * The engine keeps at most ONE read and ONE write in flight per stream: two
 * concurrent operations on a pipe may complete in any order, and a short write
 * followed by another write would interleave bytes. Batching, not concurrency,
 * is what keeps the syscall count low: small frames are gathered into large
 * write buffers, reads take whole chunks and several frames are decoded from
 * each.
 */
#ifndef QKD_STREAM_INTERNAL_H
#define QKD_STREAM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "qkd/stream.h"

#define QKD_WBUF_COUNT 4		/* write buffers per stream */
#define QKD_WBUF_SIZE (256u << 10)	/* bytes per write buffer */
#define QKD_RBUF_SIZE (1u << 20)	/* read chunk */
#define QKD_PIPE_SIZE (1u << 20)	/* F_SETPIPE_SZ asked for FIFOs (best effort) */
/*
 * Frames at least this large bypass the buffers: the payload goes to the fd
 * straight from (and into) the caller's frame, saving a memcpy on each side.
 */
#define QKD_DIRECT_MIN (64u << 10)
/*
 * A part-filled buffer older than this is written with the next frame, so a
 * slow producer's frames are not held back until a buffer fills.
 */
#define QKD_WBUF_MAX_AGE_MS 10

enum qkd_io_kind { QKD_IO_READ, QKD_IO_WRITE };

struct qkd_stream;

/* One in-flight operation. */
struct qkd_io_op {
	struct qkd_stream *s;
	enum qkd_io_kind kind;
	bool busy;		/* started, final result not yet known */
	bool done;		/* read finished, res not yet consumed */
	int res;		/* read: bytes, 0 at EOF, -errno */
	struct iovec iov[2];	/* what is left to transfer */
	int niov;
	int buf_index;		/* registered buffer of iov[0] (niov == 1) or -1 */
	int poll_err;		/* uring: error of the linked poll, if any */
	bool cancelling;	/* uring: cancel requested, do not resubmit */
};

struct qkd_io_backend {
	const char *name;
	/* Begin op. A write always transfers everything or fails. */
	void (*start)(struct qkd_io_op *op);
	/*
	 * Block until op is no longer busy. With intr, a signal returns -EINTR
	 * (op stays busy and may be waited for again). Other -errno are fatal.
	 */
	int (*wait)(struct qkd_io_op *op, bool intr);
	/* Handle finished operations without blocking. */
	void (*reap)(struct qkd_stream *s);
	/* Hand started operations to the kernel without waiting. */
	void (*submit)(struct qkd_stream *s);
	/* Cancel a busy read (at close); returns after it finished. */
	void (*cancel)(struct qkd_io_op *op);
};

extern const struct qkd_io_backend qkd_io_uring;
extern const struct qkd_io_backend qkd_io_plain;

struct qkd_uring;

struct qkd_stream {
	int fd;
	unsigned flags;
	int orig_fl;		/* file status flags to restore at close */
	bool restore_fl;
	const struct qkd_io_backend *io;
	struct qkd_uring *ring;	/* io_uring backend only */
	int sticky;		/* first fatal error; the stream is unusable after it */
	const char *err;	/* static reason of the last failure */
	char errbuf[128];

	/* Reading: a chunk buffer, bytes [rhead, rtail) not yet decoded. */
	uint8_t *rbuf;
	uint32_t rhead, rtail;
	int rbuf_index;		/* registered buffer index or -1 */
	bool eof;
	bool big_mode;		/* last frame was large: read payloads directly */
	struct qkd_io_op rop;

	/*
	 * Writing: a ring of buffers. wb[wfill] is being filled (wlen bytes);
	 * wqueued buffers starting at wsend wait to be written, the first one
	 * in flight when wop.busy.
	 */
	uint8_t *wb[QKD_WBUF_COUNT];
	uint32_t wb_len[QKD_WBUF_COUNT];
	int wb_index[QKD_WBUF_COUNT];
	unsigned wfill, wsend, wqueued;
	uint32_t wlen;
	uint64_t wfirst_ms;	/* when the fill buffer got its first byte */
	bool wdirect;		/* wop is a direct (unbuffered) write */
	struct qkd_io_op wop;

	/* Write streams of the owning thread, pushed before it blocks in a read. */
	struct qkd_stream *next, **pprev;
};

/* Engine callbacks for backends. */
void qkd_stream_write_done(struct qkd_stream *s, int res);
int qkd_stream_fail(struct qkd_stream *s, int err, const char *why);
int qkd_stream_fail_errno(struct qkd_stream *s, int err, const char *what);

/* Write side, used by the read side and close. */
int qkd_stream_push(struct qkd_stream *s);
void qkd_stream_push_thread(void);

/* io_uring backend set-up (stream-uring.c). */
int qkd_uring_attach(struct qkd_stream *s);	/* 0, or -errno from io_uring_queue_init */
void qkd_uring_detach(struct qkd_stream *s);
int qkd_uring_register(struct qkd_stream *s, void *mem, size_t len); /* index or -1 */
void qkd_uring_unregister(struct qkd_stream *s, int index);

#endif
