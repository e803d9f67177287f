// SPDX-License-Identifier: GPL-2.0
/*
 * VICI packets and the client side of a connection to charon's unix socket.
 *
 * One command at a time per connection (the protocol has no sequence
 * numbers); events may arrive at any moment, also between a request and its
 * response, so every wait for a response dispatches or drops events.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qkd/vici.h"

int vici_packet_parse(const void *buf, size_t len, struct vici_packet *pkt)
{
	const uint8_t *p = buf;
	size_t off = 1;

	memset(pkt, 0, sizeof(*pkt));
	if (!p || len < 1 || len > VICI_MAX_SEGMENT)
		return -EBADMSG;
	pkt->type = p[0];
	if (pkt->type > VICI_EVENT)
		return -EBADMSG;
	if (vici_packet_is_named(pkt->type)) {
		size_t nlen;

		if (len < 2)
			return -EBADMSG;
		nlen = p[1];
		if (nlen > len - 2)
			return -EBADMSG;
		memcpy(pkt->name, p + 2, nlen);
		pkt->name[nlen] = 0;
		/* A name with an embedded NUL would compare as another name. */
		if (strlen(pkt->name) != nlen)
			return -EBADMSG;
		off = 2 + nlen;
	}
	pkt->msg = p + off;
	pkt->msg_len = len - off;
	return 0;
}

int vici_connect(struct vici_conn *c, const char *path, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout_ms = timeout_ms;
	if (!path || !*path)
		return -EINVAL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	c->fd = fd;
	return 0;
}

void vici_close(struct vici_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (c->rx) {
		explicit_bzero(c->rx, c->rx_cap);
		free(c->rx);
	}
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Send all of iov, resuming after partial writes; never raise SIGPIPE. */
static int send_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n };
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EPIPE ? -ECONNRESET : -errno;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= w;
		}
	}
	return 0;
}

int vici_send(struct vici_conn *c, unsigned int type, const char *name,
	      const void *msg, size_t len)
{
	uint8_t hdr[6];
	struct iovec iov[3];
	size_t nlen = 0, total;
	int n = 0;

	if (c->fd < 0)
		return -ENOTCONN;
	if (type > VICI_EVENT || (vici_packet_is_named(type) != (name != NULL)))
		return -EINVAL;
	if (name) {
		nlen = strlen(name);
		if (nlen > 255)
			return -EINVAL;
	}
	if (len && !msg)
		return -EINVAL;
	total = 1 + (name ? 1 + nlen : 0);
	if (len > VICI_MAX_SEGMENT - total)
		return -EMSGSIZE;
	total += len;
	hdr[0] = total >> 24;
	hdr[1] = total >> 16;
	hdr[2] = total >> 8;
	hdr[3] = total;
	hdr[4] = type;
	hdr[5] = nlen;
	iov[n++] = (struct iovec){ hdr, name ? 6 : 5 };
	if (nlen)
		iov[n++] = (struct iovec){ (void *)name, nlen };
	if (len)
		iov[n++] = (struct iovec){ (void *)msg, len };
	return send_all(c->fd, iov, n);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read exactly len bytes before the deadline (< 0: none). */
static int read_full(int fd, void *buf, size_t len, int64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t r;

		if (deadline >= 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			int64_t left = deadline - now_ms();
			int pr;

			if (left <= 0)
				return -ETIMEDOUT;
			pr = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr < 0)
				return -errno;
			if (pr == 0)
				return -ETIMEDOUT;
		}
		r = read(fd, p, len);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ECONNRESET;
		p += r;
		len -= r;
	}
	return 0;
}

int vici_recv(struct vici_conn *c, struct vici_packet *pkt)
{
	int64_t deadline = c->timeout_ms > 0 ? now_ms() + c->timeout_ms : -1;
	uint8_t hdr[4];
	size_t len;
	int ret;

	if (c->fd < 0)
		return -ENOTCONN;
	ret = read_full(c->fd, hdr, 4, deadline);
	if (ret)
		return ret;
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (len == 0 || len > VICI_MAX_SEGMENT)
		return -EBADMSG;	/* the stream is out of sync now */
	if (c->rx)
		explicit_bzero(c->rx, c->rx_len);
	if (len > c->rx_cap) {
		uint8_t *n = malloc(len);

		if (!n)
			return -ENOMEM;
		if (c->rx) {
			explicit_bzero(c->rx, c->rx_cap);
			free(c->rx);
		}
		c->rx = n;
		c->rx_cap = len;
	}
	c->rx_len = 0;
	ret = read_full(c->fd, c->rx, len, deadline);
	if (ret)
		return ret;
	c->rx_len = len;
	return vici_packet_parse(c->rx, len, pkt);
}

/* Wait for a packet that is not an event; events go to on_event. */
static int recv_reply(struct vici_conn *c, struct vici_packet *pkt,
		      int (*on_event)(const struct vici_packet *ev, void *arg), void *arg)
{
	int ret;

	for (;;) {
		ret = vici_recv(c, pkt);
		if (ret)
			return ret;
		if (pkt->type != VICI_EVENT)
			return 0;
		if (on_event) {
			ret = on_event(pkt, arg);
			if (ret < 0)
				return ret;
		}
	}
}

int vici_request(struct vici_conn *c, const char *cmd, const struct vici_builder *req,
		 struct vici_packet *resp,
		 int (*on_event)(const struct vici_packet *ev, void *arg), void *arg)
{
	int ret;

	if (!cmd)
		return -EINVAL;
	if (req) {
		ret = vici_builder_finish(req);
		if (ret)
			return ret;
	}
	ret = vici_send(c, VICI_CMD_REQUEST, cmd, req ? req->buf : NULL, req ? req->len : 0);
	if (ret)
		return ret;
	ret = recv_reply(c, resp, on_event, arg);
	if (ret)
		return ret;
	if (resp->type == VICI_CMD_UNKNOWN)
		return -EOPNOTSUPP;
	if (resp->type != VICI_CMD_RESPONSE)
		return -EPROTO;
	return vici_message_validate(resp->msg, resp->msg_len);
}

static int event_ctl(struct vici_conn *c, unsigned int type, const char *event)
{
	struct vici_packet pkt;
	int ret;

	if (!event)
		return -EINVAL;
	ret = vici_send(c, type, event, NULL, 0);
	if (ret)
		return ret;
	ret = recv_reply(c, &pkt, NULL, NULL);
	if (ret)
		return ret;
	if (pkt.type == VICI_EVENT_UNKNOWN)
		return -ENOENT;
	if (pkt.type != VICI_EVENT_CONFIRM)
		return -EPROTO;
	return 0;
}

int vici_register(struct vici_conn *c, const char *event)
{
	return event_ctl(c, VICI_EVENT_REGISTER, event);
}

int vici_unregister(struct vici_conn *c, const char *event)
{
	return event_ctl(c, VICI_EVENT_UNREGISTER, event);
}

struct stream_filter {
	const char *event;
	int (*fn)(const struct vici_packet *ev, void *arg);
	void *arg;
	int err;	/* first error of fn or of an event's message */
};

/*
 * Errors are remembered, not returned: returning would leave the rest of the
 * stream and the response unread and the connection out of step.
 */
static int stream_event(const struct vici_packet *ev, void *arg)
{
	struct stream_filter *f = arg;
	int ret;

	if (f->err || strcmp(ev->name, f->event))
		return 0;
	if (vici_message_validate(ev->msg, ev->msg_len)) {
		f->err = -EBADMSG;
		return 0;
	}
	ret = f->fn ? f->fn(ev, f->arg) : 0;
	if (ret < 0)
		f->err = ret;
	return 0;
}

int vici_request_stream(struct vici_conn *c, const char *cmd, const struct vici_builder *req,
			const char *event,
			int (*on_event)(const struct vici_packet *ev, void *arg), void *arg,
			struct vici_packet *resp)
{
	struct stream_filter f = { event, on_event, arg, 0 };
	int ret, uret;

	ret = vici_register(c, event);
	if (ret)
		return ret;
	ret = vici_request(c, cmd, req, resp, stream_event, &f);
	if (ret == -ETIMEDOUT || ret == -ECONNRESET || ret == -EBADMSG)
		return ret;	/* the connection is unusable, do not talk on */
	if (ret) {
		/* Not a transport error: keep the stream in sync by unregistering. */
		vici_unregister(c, event);
		return ret;
	}
	/*
	 * Unregistering receives a packet and would overwrite *resp's buffer, so
	 * keep a copy of the response message across it.
	 */
	{
		uint8_t *copy = malloc(resp->msg_len ? resp->msg_len : 1);
		size_t n = resp->msg_len;

		if (!copy)
			return -ENOMEM;
		memcpy(copy, resp->msg, n);
		uret = vici_unregister(c, event);
		if (!uret) {
			if (n > c->rx_cap) {
				explicit_bzero(copy, n);
				free(copy);
				return -EPROTO;
			}
			memcpy(c->rx, copy, n);
			c->rx_len = n;
			resp->type = VICI_CMD_RESPONSE;
			resp->name[0] = 0;
			resp->msg = c->rx;
			resp->msg_len = n;
		}
		explicit_bzero(copy, n);
		free(copy);
	}
	return f.err ? f.err : uret;
}

int vici_check_success(const struct vici_packet *resp, char *errbuf, size_t errlen)
{
	char val[8];
	int ret;

	if (errbuf && errlen)
		errbuf[0] = 0;
	ret = vici_find_str(resp->msg, resp->msg_len, "success", val, sizeof(val));
	if (ret == -EBADMSG)
		return ret;
	if (ret == 0 && strcmp(val, "yes") == 0)
		return 0;
	if (errbuf && errlen) {
		ret = vici_find_str(resp->msg, resp->msg_len, "errmsg", errbuf, errlen);
		if (ret == -ENAMETOOLONG) {
			/* Truncate a long errmsg rather than lose it. */
			const uint8_t *v;
			size_t vlen;

			if (!vici_find(resp->msg, resp->msg_len, "errmsg", &v, &vlen)) {
				size_t n = errlen - 1;

				memcpy(errbuf, v, n);
				errbuf[n] = 0;
			}
		} else if (ret) {
			snprintf(errbuf, errlen, "%s", "charon reported failure without errmsg");
		}
		/* The text is the peer's: keep control characters off terminals. */
		for (char *q = errbuf; *q; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q == 0x7f)
				*q = '?';
	}
	return -EREMOTEIO;
}
