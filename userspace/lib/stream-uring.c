// SPDX-License-Identifier: GPL-2.0
/*
 * io_uring backend of the frame streams.
 *
 * One ring per thread, shared by every stream the thread opened: waiting for
 * any one operation also retires the others, so a relay that blocks on its
 * input still advances the write queue of its output, and one io_uring_enter
 * submits a write and waits for a read. Stream buffers are registered in a
 * sparse table of fixed buffers (READ_FIXED/WRITE_FIXED, no page pinning per
 * operation); if registration is refused (RLIMIT_MEMLOCK) plain READ/WRITE
 * opcodes are used.
 *
 * Pipes before Linux 6.x lack FMODE_NOWAIT, so io_uring would hand each read
 * to a worker thread that blocks in it. The engine sets O_NONBLOCK on FIFOs;
 * io_uring then either polls internally or completes with -EAGAIN, in which
 * case the operation is resubmitted behind a linked POLL_ADD: one submission,
 * woken by the pipe, no worker, no busy loop.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <liburing.h>

#include "stream-internal.h"

#define RING_ENTRIES 64
#define REG_SLOTS 64
#define POLL_TAG 1ul	/* low bit of user_data marks the linked POLL_ADD */

struct qkd_uring {
	struct io_uring ring;
	pid_t pid;		/* a forked child must not use its parent's ring */
	unsigned refs;
	bool fixed;		/* sparse buffer table registered */
	uint64_t reg_used;	/* bitmap of REG_SLOTS */
};

static __thread struct qkd_uring *thread_ring;

static int ring_create(struct qkd_uring **out)
{
	struct qkd_uring *r = calloc(1, sizeof(*r));
	struct io_uring_params p;
	int ret;

	if (!r)
		return -ENOMEM;
	/*
	 * DEFER_TASKRUN (6.1+): completions run when we wait, not as
	 * interrupts while we decode; needs SINGLE_ISSUER, which the per-thread
	 * ring satisfies. Older kernels reject the flags: retry without.
	 */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	ret = io_uring_queue_init_params(RING_ENTRIES, &r->ring, &p);
	if (ret == -EINVAL) {
		memset(&p, 0, sizeof(p));
		ret = io_uring_queue_init_params(RING_ENTRIES, &r->ring, &p);
	}
	if (ret < 0) {
		free(r);
		return ret;
	}
	r->pid = getpid();
	r->fixed = io_uring_register_buffers_sparse(&r->ring, REG_SLOTS) == 0;
	/* Saves an fd lookup on every io_uring_enter (5.18+; optional). */
	io_uring_register_ring_fd(&r->ring);
	*out = r;
	return 0;
}

int qkd_uring_attach(struct qkd_stream *s)
{
	int ret;

	if (thread_ring && thread_ring->pid != getpid())
		thread_ring = NULL;	/* inherited over fork: leave it alone */
	if (!thread_ring) {
		ret = ring_create(&thread_ring);
		if (ret)
			return ret;
	}
	thread_ring->refs++;
	s->ring = thread_ring;
	return 0;
}

void qkd_uring_detach(struct qkd_stream *s)
{
	struct qkd_uring *r = s->ring;

	if (!r)
		return;
	s->ring = NULL;
	if (--r->refs)
		return;
	if (r->pid == getpid())
		io_uring_queue_exit(&r->ring);
	if (thread_ring == r)
		thread_ring = NULL;
	free(r);
}

int qkd_uring_register(struct qkd_stream *s, void *mem, size_t len)
{
	struct qkd_uring *r = s->ring;
	struct iovec iov = { .iov_base = mem, .iov_len = len };

	if (!r || !r->fixed)
		return -1;
	for (int i = 0; i < REG_SLOTS; i++) {
		if (r->reg_used & (1ull << i))
			continue;
		if (io_uring_register_buffers_update_tag(&r->ring, i, &iov, NULL, 1) != 1)
			return -1;	/* e.g. RLIMIT_MEMLOCK: use unregistered I/O */
		r->reg_used |= 1ull << i;
		return i;
	}
	return -1;
}

void qkd_uring_unregister(struct qkd_stream *s, int index)
{
	struct qkd_uring *r = s->ring;
	struct iovec iov = { 0 };

	if (!r || index < 0)
		return;
	io_uring_register_buffers_update_tag(&r->ring, index, &iov, NULL, 1);
	r->reg_used &= ~(1ull << index);
}

static struct io_uring_sqe *get_sqe(struct qkd_uring *r)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&r->ring)))
		io_uring_submit(&r->ring);	/* SQ full: make room */
	return sqe;
}

static void prep_op(struct qkd_uring *r, struct qkd_io_op *op)
{
	struct io_uring_sqe *sqe = get_sqe(r);
	int fd = op->s->fd;

	if (op->niov == 1 && op->buf_index >= 0) {
		if (op->kind == QKD_IO_READ)
			io_uring_prep_read_fixed(sqe, fd, op->iov[0].iov_base,
						 (unsigned)op->iov[0].iov_len, -1, op->buf_index);
		else
			io_uring_prep_write_fixed(sqe, fd, op->iov[0].iov_base,
						  (unsigned)op->iov[0].iov_len, -1, op->buf_index);
	} else if (op->niov == 1) {
		if (op->kind == QKD_IO_READ)
			io_uring_prep_read(sqe, fd, op->iov[0].iov_base,
					   (unsigned)op->iov[0].iov_len, -1);
		else
			io_uring_prep_write(sqe, fd, op->iov[0].iov_base,
					    (unsigned)op->iov[0].iov_len, -1);
	} else {
		if (op->kind == QKD_IO_READ)
			io_uring_prep_readv(sqe, fd, op->iov, (unsigned)op->niov, -1);
		else
			io_uring_prep_writev(sqe, fd, op->iov, (unsigned)op->niov, -1);
	}
	io_uring_sqe_set_data(sqe, op);
}

static void uring_start(struct qkd_io_op *op)
{
	op->busy = true;
	op->done = false;
	op->poll_err = 0;
	prep_op(op->s->ring, op);
}

/* The fd was not ready: wait for it with a POLL_ADD linked to the retry. */
static void repoll(struct qkd_io_op *op)
{
	struct qkd_uring *r = op->s->ring;
	struct io_uring_sqe *sqe;

	if (io_uring_sq_space_left(&r->ring) < 2)
		io_uring_submit(&r->ring);
	sqe = get_sqe(r);
	io_uring_prep_poll_add(sqe, op->s->fd, op->kind == QKD_IO_READ ? POLLIN : POLLOUT);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, (uintptr_t)op | POLL_TAG);
	prep_op(r, op);
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
			/* a second iovec is never a registered buffer */
			op->buf_index = -1;
		}
	}
}

static void complete(struct qkd_io_op *op, int res)
{
	op->busy = false;
	if (op->kind == QKD_IO_READ) {
		op->res = res;
		op->done = true;
	} else {
		qkd_stream_write_done(op->s, res < 0 ? res : 0);
	}
}

static void dispatch(struct io_uring_cqe *cqe)
{
	uintptr_t data = (uintptr_t)io_uring_cqe_get_data(cqe);
	struct qkd_io_op *op = (struct qkd_io_op *)(data & ~POLL_TAG);
	int res = cqe->res;

	if (!op)
		return;		/* cancel request */
	if (data & POLL_TAG) {
		if (res < 0 && res != -ECANCELED)
			op->poll_err = res;
		return;
	}
	if (res == -ECANCELED && (op->cancelling || op->poll_err)) {
		/* cancelled at close, or the linked poll itself failed */
		complete(op, op->cancelling ? -ECANCELED : op->poll_err);
		return;
	}
	if (res == -EAGAIN || res == -EINTR || res == -ECANCELED) {
		repoll(op);
		return;
	}
	if (op->kind == QKD_IO_WRITE && res > 0) {
		advance(op, (size_t)res);
		if (op->niov) {
			prep_op(op->s->ring, op);	/* short write: the rest */
			return;
		}
		res = 0;
	} else if (op->kind == QKD_IO_WRITE && res == 0) {
		res = -EIO;	/* a pipe never accepts 0 of n > 0 bytes */
	}
	complete(op, res);
}

static void reap_ring(struct qkd_uring *r)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&r->ring, head, cqe) {
		dispatch(cqe);
		n++;
	}
	io_uring_cq_advance(&r->ring, n);
}

/*
 * Retiring a write may have started the next one: hand it to the kernel now,
 * since the caller may go on to block on something that is not a stream.
 */
static void submit_pending(struct qkd_uring *r)
{
	if (io_uring_sq_ready(&r->ring))
		io_uring_submit(&r->ring);
}

static void uring_reap(struct qkd_stream *s)
{
	reap_ring(s->ring);
	submit_pending(s->ring);
}

static void uring_submit(struct qkd_stream *s)
{
	io_uring_submit(&s->ring->ring);
}

static int uring_wait(struct qkd_io_op *op, bool intr)
{
	struct qkd_uring *r = op->s->ring;
	int ret;

	io_uring_submit(&r->ring);
	reap_ring(r);
	if (op->busy && op->kind == QKD_IO_READ) {
		/* About to block on input: let batched output go first. */
		qkd_stream_push_thread();
	}
	for (;;) {
		reap_ring(r);
		if (!op->busy) {
			submit_pending(r);
			return 0;
		}
		ret = io_uring_submit_and_wait(&r->ring, 1);
		if (ret == -EINTR) {
			if (intr) {
				reap_ring(r);
				submit_pending(r);
				return op->busy ? -EINTR : 0;
			}
			continue;
		}
		if (ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME)
			return ret;
	}
}

static void uring_cancel(struct qkd_io_op *op)
{
	struct qkd_uring *r = op->s->ring;
	struct io_uring_sqe *sqe;

	if (!op->busy)
		return;
	op->cancelling = true;	/* tells dispatch not to resubmit */
	sqe = get_sqe(r);
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data(sqe, NULL);
	sqe = get_sqe(r);
	io_uring_prep_cancel64(sqe, (uintptr_t)op | POLL_TAG, 0);
	io_uring_sqe_set_data(sqe, NULL);
	while (op->busy) {
		int ret = io_uring_submit_and_wait(&r->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			break;
		reap_ring(r);
	}
	op->busy = false;
	op->cancelling = false;
}

const struct qkd_io_backend qkd_io_uring = {
	.name = "io_uring",
	.start = uring_start,
	.wait = uring_wait,
	.reap = uring_reap,
	.submit = uring_submit,
	.cancel = uring_cancel,
};
