// SPDX-License-Identifier: GPL-2.0
/*
 * Plain read/write backend of the frame streams, for kernels or sandboxes
 * that refuse io_uring (and for comparison). It keeps the engine's batching:
 * one write(2) per full buffer, one read(2) per chunk. Writes complete
 * synchronously when started; reads happen when waited for, so a reader never
 * spends a syscall on a pipe that is still empty.
 *
 * FIFOs are non-blocking (set by the engine): waiting goes through poll(2),
 * which a signal interrupts even with SA_RESTART, so qkd_read_frame can return
 * -EINTR between frames.
 */
#include <errno.h>
#include <poll.h>
#include <unistd.h>
#include <sys/uio.h>

#include "stream-internal.h"

static int wait_fd(int fd, short events, bool intr)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int n = poll(&p, 1, -1);

		if (n >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
		if (intr)
			return -EINTR;
	}
}

/* Drop the first n transferred bytes from op's iovecs. */
static void advance(struct qkd_io_op *op, size_t n)
{
	while (n && op->niov) {
		size_t k = n < op->iov[0].iov_len ? n : op->iov[0].iov_len;

		op->iov[0].iov_base = (uint8_t *)op->iov[0].iov_base + k;
		op->iov[0].iov_len -= k;
		n -= k;
		if (!op->iov[0].iov_len) {
			op->iov[0] = op->iov[1];
			op->niov--;
		}
	}
}

static void plain_start(struct qkd_io_op *op)
{
	int fd = op->s->fd, ret = 0;

	op->busy = true;
	op->done = false;
	if (op->kind == QKD_IO_READ)
		return;		/* done in plain_wait */
	while (op->niov) {
		ssize_t n = writev(fd, op->iov, op->niov);

		if (n > 0) {
			advance(op, (size_t)n);
			continue;
		}
		if (n == 0) {
			ret = -EIO;
			break;
		}
		if (errno == EINTR)
			continue;	/* a frame is written whole, signal or not */
		if (errno == EAGAIN) {
			ret = wait_fd(fd, POLLOUT, false);
			if (ret)
				break;
			continue;
		}
		ret = -errno;
		break;
	}
	op->busy = false;
	qkd_stream_write_done(op->s, ret);
}

static int plain_wait(struct qkd_io_op *op, bool intr)
{
	int fd = op->s->fd;

	while (op->busy) {
		ssize_t n;

		if (op->kind != QKD_IO_READ)
			return 0;	/* writes never stay busy */
		n = readv(fd, op->iov, op->niov);
		if (n >= 0) {
			op->res = (int)n;
		} else if (errno == EAGAIN) {
			int ret;

			/* About to block on input: let batched output go first. */
			qkd_stream_push_thread();
			ret = wait_fd(fd, POLLIN, intr);

			if (ret)
				return ret;
			continue;
		} else if (errno == EINTR) {
			if (intr)
				return -EINTR;
			continue;
		} else {
			op->res = -errno;
		}
		op->busy = false;
		op->done = true;
	}
	return 0;
}

static void plain_reap(struct qkd_stream *s)
{
}

static void plain_submit(struct qkd_stream *s)
{
}

static void plain_cancel(struct qkd_io_op *op)
{
	op->busy = false;	/* nothing was started */
}

const struct qkd_io_backend qkd_io_plain = {
	.name = "read/write",
	.start = plain_start,
	.wait = plain_wait,
	.reap = plain_reap,
	.submit = plain_submit,
	.cancel = plain_cancel,
};
