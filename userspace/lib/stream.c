// SPDX-License-Identifier: GPL-2.0
/*
 * Frame streams: opening, closing, backend choice and error reporting.
 * Reading is in stream-read.c, writing in stream-write.c, the I/O itself in
 * stream-uring.c (io_uring) and stream-plain.c (read/write fallback).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "stream-internal.h"

/* Write streams of this thread (see qkd_stream_push_thread). */
static __thread struct qkd_stream *thread_writers;

int qkd_stream_fail(struct qkd_stream *s, int err, const char *why)
{
	if (!s->sticky) {
		s->sticky = err;
		s->err = why;
	}
	return s->sticky;
}

int qkd_stream_fail_errno(struct qkd_stream *s, int err, const char *what)
{
	if (!s->sticky) {
		snprintf(s->errbuf, sizeof(s->errbuf), "%s: %s", what, strerror(-err));
		s->sticky = err;
		s->err = s->errbuf;
	}
	return s->sticky;
}

const char *qkd_stream_error(const struct qkd_stream *s)
{
	return s && s->err ? s->err : "no error";
}

bool qkd_stream_uses_uring(const struct qkd_stream *s)
{
	return s->io == &qkd_io_uring;
}

static bool want_fallback(unsigned flags)
{
	const char *env = getenv("QKD_TRANSPORT");

	return (flags & QKD_STREAM_FALLBACK) || (env && !strcmp(env, "fallback"));
}

static void *buf_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void buf_free(struct qkd_stream *s, void *p, size_t len, int index)
{
	if (!p)
		return;
	qkd_uring_unregister(s, index);
	/* Frames carry key bits: wipe before the pages go back. */
	explicit_bzero(p, len);
	munmap(p, len);
}

static void release(struct qkd_stream *s)
{
	buf_free(s, s->rbuf, QKD_RBUF_SIZE, s->rbuf_index);
	for (int i = 0; i < QKD_WBUF_COUNT; i++)
		buf_free(s, s->wb[i], QKD_WBUF_SIZE, s->wb_index[i]);
	qkd_uring_detach(s);
	if (s->restore_fl)
		fcntl(s->fd, F_SETFL, s->orig_fl);
	if (s->pprev) {
		*s->pprev = s->next;
		if (s->next)
			s->next->pprev = s->pprev;
	}
	free(s);
}

/*
 * FIFOs: a larger pipe means fewer wake-ups per megabyte, and O_NONBLOCK lets
 * io_uring poll the pipe (6.1 pipes lack FMODE_NOWAIT) and lets the fallback
 * wait in poll(2), which signals always interrupt. The old flags are put
 * back at close, since the open file may be shared with other processes.
 */
static int setup_fd(struct qkd_stream *s)
{
	struct stat st;
	int fl;

	if (fstat(s->fd, &st))
		return -errno;
	fl = fcntl(s->fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if ((s->flags & QKD_STREAM_READ) && (fl & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if ((s->flags & QKD_STREAM_WRITE) && (fl & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (!S_ISFIFO(st.st_mode))
		return 0;
	if (fcntl(s->fd, F_GETPIPE_SZ) < (int)QKD_PIPE_SIZE)
		fcntl(s->fd, F_SETPIPE_SZ, QKD_PIPE_SIZE);	/* best effort */
	if (!(fl & O_NONBLOCK)) {
		if (fcntl(s->fd, F_SETFL, fl | O_NONBLOCK))
			return -errno;
		s->orig_fl = fl;
		s->restore_fl = true;
	}
	return 0;
}

struct qkd_stream *qkd_stream_open(int fd, unsigned flags)
{
	struct qkd_stream *s;
	int ret;

	if (fd < 0 || !(flags & (QKD_STREAM_READ | QKD_STREAM_WRITE)) ||
	    (flags & ~(QKD_STREAM_READ | QKD_STREAM_WRITE | QKD_STREAM_FALLBACK))) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->fd = fd;
	s->flags = flags;
	s->rbuf_index = -1;
	s->rop.s = s;
	s->rop.kind = QKD_IO_READ;
	s->wop.s = s;
	s->wop.kind = QKD_IO_WRITE;
	for (int i = 0; i < QKD_WBUF_COUNT; i++)
		s->wb_index[i] = -1;

	ret = setup_fd(s);
	if (ret)
		goto fail;
	s->io = &qkd_io_plain;
	if (!want_fallback(flags)) {
		ret = qkd_uring_attach(s);
		if (!ret)
			s->io = &qkd_io_uring;
		else if (ret != -EPERM && ret != -ENOSYS && ret != -EACCES)
			goto fail;	/* io_uring exists but failed: report it */
	}

	ret = -ENOMEM;
	if (flags & QKD_STREAM_READ) {
		s->rbuf = buf_alloc(QKD_RBUF_SIZE);
		if (!s->rbuf)
			goto fail;
		s->rbuf_index = qkd_uring_register(s, s->rbuf, QKD_RBUF_SIZE);
	}
	if (flags & QKD_STREAM_WRITE) {
		for (int i = 0; i < QKD_WBUF_COUNT; i++) {
			s->wb[i] = buf_alloc(QKD_WBUF_SIZE);
			if (!s->wb[i])
				goto fail;
			s->wb_index[i] = qkd_uring_register(s, s->wb[i], QKD_WBUF_SIZE);
		}
		s->next = thread_writers;
		if (s->next)
			s->next->pprev = &s->next;
		s->pprev = &thread_writers;
		thread_writers = s;
	}
	return s;
fail:
	release(s);
	errno = -ret;
	return NULL;
}

int qkd_stream_close(struct qkd_stream *s)
{
	int ret = 0;

	if (!s)
		return 0;
	if (s->flags & QKD_STREAM_WRITE)
		ret = qkd_stream_flush(s);
	if (s->rop.busy)
		s->io->cancel(&s->rop);
	/*
	 * A write may still be in flight if the flush gave up on an earlier
	 * error: the kernel must be done with the buffers before they go.
	 */
	while (s->wop.busy) {
		if (s->io->wait(&s->wop, false)) {
			/* The ring itself failed: leaking beats a use after free. */
			close(s->fd);
			return ret ? ret : -EIO;
		}
	}
	if (s->restore_fl)
		fcntl(s->fd, F_SETFL, s->orig_fl);
	s->restore_fl = false;
	if (close(s->fd) && !ret && errno != EINTR)
		ret = -errno;
	release(s);
	return ret;
}

void qkd_stream_push_thread(void)
{
	for (struct qkd_stream *s = thread_writers; s; s = s->next)
		qkd_stream_push(s);
}
