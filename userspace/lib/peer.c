// SPDX-License-Identifier: GPL-2.0
/*
 * The peer channel (see qkd/peer.h and Documentation/peer-protocol.md):
 * TCP set-up, handshake, message framing, receive queues. The authentication
 * of what goes over it lives in peer-auth.c.
 *
 * Every fatal channel failure (peer gone, stalled, garbage, oversized
 * message, handshake mismatch) is recorded once with a human-readable reason,
 * the socket is shut down so that the other side learns about it at once,
 * and every later call fails with the same errno: a broken channel yields no
 * further messages and so no key.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "qkd/keypool.h"
#include "peer-impl.h"
#include "mac-impl.h"

#define HELLO_MAGIC "QKDPEER1"
#define PEER_DIRECT_MIN 16384 /* bodies larger than this bypass the receive buffer */
#define MAX_NAME 255

static __thread char open_err[256];

const char *qkd_peer_open_error(void)
{
	return open_err[0] ? open_err : "no error";
}

const char *qkd_peer_error(const struct qkd_peer *p)
{
	if (!p)
		return qkd_peer_open_error();
	return p->err[0] ? p->err : "no error";
}

int qkd_peer_fd(const struct qkd_peer *p)
{
	return p->fd;
}

/* Record a non-fatal reason (e.g. a block that failed authentication). */
void peer_note(struct qkd_peer *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
}

/* Record a fatal channel failure; returns -err for convenience. */
int peer_fail(struct qkd_peer *p, int err, const char *fmt, ...)
{
	va_list ap;

	if (p->dead)
		return -p->dead;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	p->dead = err;
	if (p->fd >= 0)
		shutdown(p->fd, SHUT_RDWR);
	return -err;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd for at most ms; 0 ready, -ETIMEDOUT, -errno. */
static int wait_fd(int fd, short events, int ms)
{
	int64_t end = now_ms() + ms;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int64_t left = end - now_ms();
		int n;

		if (left < 0)
			left = 0;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* ---- sending ---------------------------------------------------------- */

static int send_all(struct qkd_peer *p, struct iovec *iov, int cnt)
{
	while (cnt) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t n = sendmsg(p->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			int rc;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return peer_fail(p, errno == ECONNRESET ? ECONNRESET : EPIPE,
						 "peer closed the connection (send: %s)",
						 strerror(errno));
			rc = wait_fd(p->fd, POLLOUT, p->timeout_ms);
			if (rc == -ETIMEDOUT)
				return peer_fail(p, ETIMEDOUT,
						 "peer stalled: not reading for %d ms", p->timeout_ms);
			if (rc)
				return peer_fail(p, -rc, "poll: %s", strerror(-rc));
			continue;
		}
		while (cnt && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int peer_send_raw(struct qkd_peer *p, uint8_t kind, uint8_t ctx, uint16_t type,
		  uint64_t key_id, const void *buf, size_t len, struct peer_dir *absorb)
{
	uint8_t hdr[PEER_HDR_LEN];
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)buf, .iov_len = len },
	};

	if (p->dead)
		return -p->dead;
	peer_put_le32(hdr, (uint32_t)len);
	peer_put_le16(hdr + 4, type);
	hdr[6] = kind;
	hdr[7] = ctx;
	qkd_put_le64(hdr + 8, key_id);
	if (absorb) {
		qkd_polyhash_update(&absorb->h, hdr, sizeof(hdr));
		qkd_polyhash_update(&absorb->h, buf, len);
	}
	return send_all(p, iov, len ? 2 : 1);
}

int qkd_send(struct qkd_peer *p, uint64_t key_id, uint16_t type, const void *buf, size_t len)
{
	struct peer_dir *d;
	uint8_t ctx;
	int rc;

	if (p->dead)
		return -p->dead;
	if (len > QKD_PEER_MAX_MSG) {
		peer_note(p, "message of %zu bytes exceeds the limit of %u", len,
			  QKD_PEER_MAX_MSG);
		return -EMSGSIZE;
	}
	if (len && !buf)
		return -EINVAL;
	d = peer_auth_out_dir(p, key_id, &ctx, &rc);
	if (!d)
		return rc;
	return peer_send_raw(p, PEER_KIND_DATA, ctx, type, key_id, buf, len, d);
}

/* ---- receiving -------------------------------------------------------- */

/*
 * Make n bytes available at rbuf + rpos. 0 ok, 1 clean end of stream (only
 * when boundary and nothing of a next message arrived), <0 fatal.
 */
static int rx_need(struct qkd_peer *p, size_t n, bool boundary)
{
	if (p->rpos == p->rlen)
		p->rpos = p->rlen = 0;
	while (p->rlen - p->rpos < n) {
		ssize_t got;

		if (p->rpos && p->rcap - p->rpos < n) {
			memmove(p->rbuf, p->rbuf + p->rpos, p->rlen - p->rpos);
			p->rlen -= p->rpos;
			p->rpos = 0;
		}
		if (p->rcap < n) {
			size_t cap = p->rcap;
			uint8_t *nb;

			while (cap < n)
				cap *= 2;
			nb = realloc(p->rbuf, cap);
			if (!nb)
				return peer_fail(p, ENOMEM, "out of memory for a %zu-byte message", n);
			p->rbuf = nb;
			p->rcap = cap;
		}
		got = recv(p->fd, p->rbuf + p->rlen, p->rcap - p->rlen, MSG_DONTWAIT);
		if (got > 0) {
			p->rlen += (size_t)got;
			continue;
		}
		if (got == 0) {
			if (boundary && p->rlen == p->rpos)
				return 1;
			return peer_fail(p, ECONNRESET,
					 "peer closed the connection in the middle of a message");
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int rc = wait_fd(p->fd, POLLIN, p->timeout_ms);

			if (rc == -ETIMEDOUT)
				return peer_fail(p, ETIMEDOUT,
						 "peer stalled: nothing received for %d ms",
						 p->timeout_ms);
			if (rc)
				return peer_fail(p, -rc, "poll: %s", strerror(-rc));
			continue;
		}
		return peer_fail(p, errno, "receive from peer: %s", strerror(errno));
	}
	return 0;
}

/* Read exactly n bytes straight into dst (large bodies skip the buffer). */
static int rx_direct(struct qkd_peer *p, uint8_t *dst, size_t n)
{
	while (n) {
		ssize_t got = recv(p->fd, dst, n, MSG_DONTWAIT);

		if (got > 0) {
			dst += got;
			n -= (size_t)got;
			continue;
		}
		if (got == 0)
			return peer_fail(p, ECONNRESET,
					 "peer closed the connection in the middle of a message");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int rc = wait_fd(p->fd, POLLIN, p->timeout_ms);

			if (rc == -ETIMEDOUT)
				return peer_fail(p, ETIMEDOUT,
						 "peer stalled: nothing received for %d ms",
						 p->timeout_ms);
			if (rc)
				return peer_fail(p, -rc, "poll: %s", strerror(-rc));
			continue;
		}
		return peer_fail(p, errno, "receive from peer: %s", strerror(errno));
	}
	return 0;
}

static struct peer_msg *msg_new(uint64_t key_id, uint16_t type, uint8_t kind,
				const uint8_t *data, uint32_t len)
{
	struct peer_msg *m = malloc(sizeof(*m) + len + 1);

	if (!m)
		return NULL;
	m->key_id = key_id;
	m->type = type;
	m->kind = kind;
	m->len = len;
	m->next = NULL;
	if (data)
		memcpy(m->data, data, len);
	m->data[len] = 0;
	return m;
}

static void msg_free(struct peer_msg *m)
{
	if (!m)
		return;
	explicit_bzero(m->data, m->len);
	free(m);
}

#define PUMP_EOF 1
#define PUMP_DATA 2

/*
 * Receive one message from the socket. Data messages are absorbed into their
 * transcript and returned in *data; control messages are handled (contexts)
 * or stashed for a waiter. 0 control, PUMP_DATA, PUMP_EOF, <0 fatal.
 */
static int pump(struct qkd_peer *p, struct peer_msg **data)
{
	const uint8_t *hdr, *body;
	uint32_t len;
	uint16_t type;
	uint8_t kind, ctx;
	uint64_t key_id;
	int rc;

	*data = NULL;
	if (p->dead)
		return -p->dead;
	rc = rx_need(p, PEER_HDR_LEN, true);
	if (rc)
		return rc;
	hdr = p->rbuf + p->rpos;
	len = peer_le32(hdr);
	type = peer_le16(hdr + 4);
	kind = hdr[6];
	ctx = hdr[7];
	key_id = qkd_le64(hdr + 8);
	if (kind != PEER_KIND_DATA && kind != PEER_KIND_CTRL)
		return peer_fail(p, EBADMSG,
				 "garbage from peer: bad message kind 0x%02x (not a qkdpipe peer, "
				 "or the stream is corrupt)", kind);
	if (len > QKD_PEER_MAX_MSG)
		return peer_fail(p, EMSGSIZE, "peer sent an oversized message (%u bytes, limit %u)",
				 len, QKD_PEER_MAX_MSG);
	if (kind == PEER_KIND_DATA && len > PEER_DIRECT_MIN) {
		/* a large body goes straight into its message: no buffer moves */
		uint8_t h[PEER_HDR_LEN];
		size_t have = p->rlen - p->rpos - PEER_HDR_LEN;
		struct peer_msg *m = msg_new(key_id, type, kind, NULL, len);

		if (!m)
			return peer_fail(p, ENOMEM, "out of memory for a %u-byte message", len);
		memcpy(h, hdr, PEER_HDR_LEN);
		if (have > len)
			have = len;
		memcpy(m->data, hdr + PEER_HDR_LEN, have);
		p->rpos += PEER_HDR_LEN + have;
		if (p->rpos == p->rlen)
			p->rpos = p->rlen = 0;
		rc = rx_direct(p, m->data + have, len - have);
		if (!rc)
			rc = peer_auth_on_data(p, ctx, key_id, h, m->data, len);
		if (rc) {
			msg_free(m);
			return rc;
		}
		*data = m;
		return PUMP_DATA;
	}
	rc = rx_need(p, PEER_HDR_LEN + (size_t)len, false);
	if (rc)
		return rc < 0 ? rc : peer_fail(p, ECONNRESET, "peer closed mid-message");
	hdr = p->rbuf + p->rpos; /* rx_need may have moved the buffer */
	body = hdr + PEER_HDR_LEN;
	if (kind == PEER_KIND_DATA) {
		rc = peer_auth_on_data(p, ctx, key_id, hdr, body, len);
		if (rc)
			return rc;
		*data = msg_new(key_id, type, kind, body, len);
		p->rpos += PEER_HDR_LEN + (size_t)len;
		if (!*data)
			return peer_fail(p, ENOMEM, "out of memory");
		return PUMP_DATA;
	} else {
		bool consumed = false;

		/* control messages have no context; only closings name a key id */
		if (ctx || (key_id && (type == CT_HELLO || type == CT_CTX || type == CT_CTX_ACK)) ||
		    (type == CT_HELLO && p->open_done))
			return peer_fail(p, EBADMSG, "garbage from peer: malformed control message "
					 "(type %u)", type);
		rc = peer_auth_on_ctrl(p, type, key_id, body, len, &consumed);
		if (rc)
			return rc;
		if (!consumed) {
			struct peer_msg *m;

			if (type < CT_HELLO || type > CT_FORGET)
				return peer_fail(p, EBADMSG,
						 "garbage from peer: unknown control message %u", type);
			/* a closing for a block we abandoned: nobody will wait for it */
			if (peer_ring_has(p->forgotten, p->n_forgotten, key_id) && type != CT_HELLO) {
				p->rpos += PEER_HDR_LEN + (size_t)len;
				return 0;
			}
			if (p->queued_bytes + len > PEER_MAX_QUEUED)
				return peer_fail(p, ENOBUFS, "peer floods us with unread messages");
			m = msg_new(key_id, type, kind, body, len);
			if (!m)
				return peer_fail(p, ENOMEM, "out of memory");
			m->next = p->cq;
			p->cq = m;
			p->queued_bytes += len;
		}
		p->rpos += PEER_HDR_LEN + (size_t)len;
		return 0;
	}
}

/* Pump one message, queueing data for qkd_recv; end of stream is fatal here. */
static int pump_queue(struct qkd_peer *p, const char *waiting_for)
{
	struct peer_msg *m;
	int rc = pump(p, &m);

	if (rc == PUMP_EOF)
		return peer_fail(p, EPIPE, "peer closed the connection while we waited for %s",
				 waiting_for);
	if (rc == PUMP_DATA) {
		if (p->queued_bytes + m->len > PEER_MAX_QUEUED) {
			msg_free(m);
			return peer_fail(p, ENOBUFS, "peer floods us with unread messages");
		}
		p->queued_bytes += m->len;
		if (p->dq_tail)
			p->dq_tail->next = m;
		else
			p->dq_head = m;
		p->dq_tail = m;
		return 0;
	}
	return rc;
}

static const char *ctrl_name(uint16_t type)
{
	static const char *const names[] = {
		[CT_HELLO] = "the handshake", [CT_CTX] = "a new context",
		[CT_CTX_ACK] = "a context acknowledgement", [CT_V1] = "Alice's tag",
		[CT_V2] = "Bob's tag", [CT_V3] = "Alice's second tag",
		[CT_END] = "the end of the block's messages", [CT_FV1] = "Alice's frame tag",
		[CT_FV2] = "Bob's frame tag", [CT_FV3] = "Alice's second frame tag",
		[CT_FORGET] = "an abandoned block",
	};

	return type < sizeof(names) / sizeof(names[0]) && names[type] ? names[type] : "?";
}

struct peer_msg *peer_wait_ctrl(struct qkd_peer *p, uint16_t type, uint64_t key_id, int *rc)
{
	for (;;) {
		struct peer_msg **pp;

		if (peer_ring_has(p->abandoned, p->n_abandoned, key_id)) {
			peer_note(p, "key id %llu: the peer abandoned this block (waiting for %s)",
				  (unsigned long long)key_id, ctrl_name(type));
			*rc = -EBADMSG;
			return NULL;
		}

		for (pp = &p->cq; *pp; pp = &(*pp)->next) {
			struct peer_msg *m = *pp;

			if (m->type == type && m->key_id == key_id) {
				*pp = m->next;
				p->queued_bytes -= m->len;
				m->next = NULL;
				*rc = 0;
				return m;
			}
		}
		*rc = pump_queue(p, ctrl_name(type));
		if (*rc)
			return NULL;
	}
}

int peer_pump_once(struct qkd_peer *p, const char *waiting_for)
{
	return pump_queue(p, waiting_for);
}

int peer_pump_ready(struct qkd_peer *p)
{
	for (;;) {
		int rc;

		if (p->dead)
			return -p->dead;
		if (p->rlen - p->rpos < PEER_HDR_LEN && wait_fd(p->fd, POLLIN, 0))
			return 0;
		rc = pump_queue(p, "the rest of a message");
		if (rc)
			return rc;
	}
}

void peer_purge_ctrl(struct qkd_peer *p, uint64_t key_id)
{
	struct peer_msg **pp = &p->cq;

	while (*pp) {
		struct peer_msg *m = *pp;

		if (m->key_id == key_id && m->type >= CT_V1 && m->type <= CT_FORGET) {
			*pp = m->next;
			p->queued_bytes -= m->len;
			msg_free(m);
		} else {
			pp = &m->next;
		}
	}
}

/* Has the peer finished sending (or abandoned) key_id? */
static bool peer_done_with(const struct qkd_peer *p, uint64_t key_id)
{
	if (peer_ring_has(p->abandoned, p->n_abandoned, key_id))
		return true;
	for (const struct peer_msg *m = p->cq; m; m = m->next)
		if (m->key_id == key_id &&
		    (m->type == CT_END || m->type == CT_V1 || m->type == CT_V2 ||
		     m->type == CT_FV1 || m->type == CT_FV2))
			return true;
	return false;
}

/* qkd_recv; with for_key, fail instead of waiting once the peer is done with it. */
static int recv_msg(struct qkd_peer *p, struct qkd_msg *m, const uint64_t *for_key)
{
	struct peer_msg *msg;
	int rc;

	msg_free(p->cur);
	p->cur = NULL;
	if (p->dq_head) {
		msg = p->dq_head;
		p->dq_head = msg->next;
		if (!p->dq_head)
			p->dq_tail = NULL;
		p->queued_bytes -= msg->len;
	} else {
		if (p->dead)
			return -p->dead;
		do {
			if (for_key && peer_done_with(p, *for_key)) {
				peer_note(p, "key id %llu: the peer has finished this block while we "
					  "still expect a message of it", (unsigned long long)*for_key);
				return -EPROTO;
			}
			rc = pump(p, &msg);
			if (rc == PUMP_EOF) {
				peer_fail(p, EPIPE, "peer closed the connection");
				return 0;
			}
			if (rc < 0)
				return rc;
		} while (rc != PUMP_DATA);
	}
	p->cur = msg;
	m->key_id = msg->key_id;
	m->type = msg->type;
	m->len = msg->len;
	m->data = msg->data;
	return 1;
}

int qkd_recv(struct qkd_peer *p, struct qkd_msg *m)
{
	return recv_msg(p, m, NULL);
}

int qkd_recv_for(struct qkd_peer *p, uint64_t key_id, struct qkd_msg *m)
{
	return recv_msg(p, m, &key_id);
}

int qkd_recv_expect(struct qkd_peer *p, uint64_t key_id, uint16_t type, struct qkd_msg *m)
{
	int rc = recv_msg(p, m, &key_id);

	if (rc == 0) {
		peer_note(p, "peer closed the connection; expected message type %u for key id %llu",
			  type, (unsigned long long)key_id);
		return -EPIPE;
	}
	if (rc < 0)
		return rc;
	if (m->key_id != key_id || m->type != type) {
		peer_note(p, "protocol error: expected message type %u for key id %llu, "
			  "got type %u for key id %llu", type, (unsigned long long)key_id,
			  m->type, (unsigned long long)m->key_id);
		return -EPROTO;
	}
	return 1;
}

/* ---- set-up ----------------------------------------------------------- */

static const char *role_name(unsigned r)
{
	return r == QKD_ALICE ? "alice" : r == QKD_BOB ? "bob" : "invalid";
}

static int set_socket_opts(int fd)
{
	int one = 1;

	/* small protocol messages must not wait for Nagle + delayed ACK */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int do_listen(const struct qkd_peer_config *cfg, const char *addr, int timeout_ms)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res, *ai;
	int lfd = -1, fd, one = 1, rc;

	rc = getaddrinfo(addr, cfg->port, &hints, &res);
	if (rc) {
		snprintf(open_err, sizeof(open_err), "cannot resolve %s port %s: %s", addr,
			 cfg->port, gai_strerror(rc));
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		lfd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (lfd < 0)
			continue;
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(lfd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(lfd, 4) == 0)
			break;
		rc = errno;
		close(lfd);
		lfd = -1;
		errno = rc;
	}
	freeaddrinfo(res);
	if (lfd < 0) {
		rc = errno;
		snprintf(open_err, sizeof(open_err), "cannot listen on [%s]:%s: %s", addr,
			 cfg->port, strerror(rc));
		return -rc;
	}
	rc = wait_fd(lfd, POLLIN, timeout_ms);
	if (rc) {
		snprintf(open_err, sizeof(open_err), "no peer connected to [%s]:%s within %d ms",
			 addr, cfg->port, timeout_ms);
		close(lfd);
		return rc;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	rc = errno;
	close(lfd);
	if (fd < 0) {
		snprintf(open_err, sizeof(open_err), "accept: %s", strerror(rc));
		return -rc;
	}
	return fd;
}

static int do_connect(const struct qkd_peer_config *cfg, const char *addr, int timeout_ms)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	int64_t end = now_ms() + timeout_ms;
	int last = ECONNREFUSED;

	for (;;) {
		struct addrinfo *res, *ai;
		int rc = getaddrinfo(addr, cfg->port, &hints, &res);

		if (rc) {
			snprintf(open_err, sizeof(open_err), "cannot resolve %s port %s: %s", addr,
				 cfg->port, gai_strerror(rc));
			return -EINVAL;
		}
		for (ai = res; ai; ai = ai->ai_next) {
			int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
					ai->ai_protocol);
			int64_t left = end - now_ms();

			if (fd < 0)
				continue;
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
			    (errno == EINPROGRESS &&
			     wait_fd(fd, POLLOUT, left > 0 ? (int)left : 0) == 0)) {
				socklen_t sl = sizeof(last);

				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &last, &sl) == 0 && last == 0) {
					freeaddrinfo(res);
					return fd;
				}
			} else {
				last = errno == EINPROGRESS ? ETIMEDOUT : errno;
			}
			close(fd);
		}
		freeaddrinfo(res);
		if (now_ms() >= end)
			break;
		/* Bob may not be listening yet: retry until the timeout */
		usleep(20000);
	}
	snprintf(open_err, sizeof(open_err), "cannot connect to [%s]:%s within %d ms: %s", addr,
		 cfg->port, timeout_ms, strerror(last));
	return -ETIMEDOUT;
}

static int send_hello(struct qkd_peer *p)
{
	size_t pl = strlen(p->pipeline), sl = strlen(p->stage);
	uint8_t b[8 + 2 + 2 + 4 + 2 + MAX_NAME + 2 + MAX_NAME];
	size_t n = 0;

	memcpy(b, HELLO_MAGIC, 8);
	n = 8;
	peer_put_le16(b + n, QKD_PEER_PROTO_VERSION);
	n += 2;
	b[n++] = (uint8_t)p->role;
	b[n++] = 0;
	peer_put_le32(b + n, p->instance);
	n += 4;
	peer_put_le16(b + n, (uint16_t)pl);
	n += 2;
	memcpy(b + n, p->pipeline, pl);
	n += pl;
	peer_put_le16(b + n, (uint16_t)sl);
	n += 2;
	memcpy(b + n, p->stage, sl);
	n += sl;
	return peer_send_raw(p, PEER_KIND_CTRL, 0, CT_HELLO, 0, b, n, NULL);
}

static int check_hello(struct qkd_peer *p, const uint8_t *b, size_t len)
{
	char pipeline[MAX_NAME + 1], stage[MAX_NAME + 1];
	unsigned version, role, instance;
	size_t n = 0, pl, sl;

	if (len < 12 || memcmp(b, HELLO_MAGIC, 8))
		return peer_fail(p, EPROTO, "handshake failed: the peer is not a qkdpipe peer");
	version = peer_le16(b + 8);
	if (version != QKD_PEER_PROTO_VERSION)
		return peer_fail(p, EPROTO,
				 "handshake failed: protocol version mismatch (we speak %u, "
				 "the peer speaks %u)", QKD_PEER_PROTO_VERSION, version);
	n = 10;
	if (len < n + 2 + 4 + 2)
		return peer_fail(p, EPROTO, "handshake failed: truncated hello");
	role = b[n];
	if (b[n + 1])
		return peer_fail(p, EPROTO, "handshake failed: malformed hello (reserved byte)");
	n += 2;
	instance = peer_le32(b + n);
	n += 4;
	pl = peer_le16(b + n);
	n += 2;
	if (pl > MAX_NAME || len < n + pl + 2)
		return peer_fail(p, EPROTO, "handshake failed: malformed hello");
	memcpy(pipeline, b + n, pl);
	pipeline[pl] = 0;
	n += pl;
	sl = peer_le16(b + n);
	n += 2;
	if (sl > MAX_NAME || len != n + sl)
		return peer_fail(p, EPROTO, "handshake failed: malformed hello");
	memcpy(stage, b + n, sl);
	stage[sl] = 0;
	if (strcmp(pipeline, p->pipeline))
		return peer_fail(p, EPROTO,
				 "handshake failed: pipeline mismatch (ours '%s', the peer's '%s')",
				 p->pipeline, pipeline);
	if (strcmp(stage, p->stage))
		return peer_fail(p, EPROTO,
				 "handshake failed: stage mismatch (ours '%s', the peer's '%s')",
				 p->stage, stage);
	if (instance != p->instance)
		return peer_fail(p, EPROTO,
				 "handshake failed: instance mismatch (ours %u, the peer's %u)",
				 p->instance, instance);
	if (role == p->role || role > QKD_BOB)
		return peer_fail(p, EPROTO,
				 "handshake failed: roles are not complementary (both sides are %s)",
				 role_name(role));
	return 0;
}

static bool cfg_valid(const struct qkd_peer_config *cfg)
{
	if (!cfg || !cfg->pool || !cfg->port || !cfg->pipeline || !cfg->stage ||
	    (cfg->role != QKD_ALICE && cfg->role != QKD_BOB)) {
		snprintf(open_err, sizeof(open_err),
			 "peer configuration needs a role, pipeline, stage, port and key pool");
		return false;
	}
	if (strlen(cfg->pipeline) > MAX_NAME || strlen(cfg->stage) > MAX_NAME) {
		snprintf(open_err, sizeof(open_err), "pipeline or stage name longer than %d",
			 MAX_NAME);
		return false;
	}
	return true;
}

/* Handshake and first context over a connected stream socket (owned). */
struct qkd_peer *peer_open_fd(int fd, const struct qkd_peer_config *cfg)
{
	struct qkd_peer *p;
	struct peer_msg *m;
	int rc;

	p = calloc(1, sizeof(*p));
	if (p) {
		p->fd = -1;
		p->rcap = 65536;
		p->rbuf = malloc(p->rcap);
		p->pipeline = strdup(cfg->pipeline);
		p->stage = strdup(cfg->stage);
	}
	if (!p || !p->rbuf || !p->pipeline || !p->stage) {
		snprintf(open_err, sizeof(open_err), "out of memory");
		close(fd);
		qkd_peer_close(p);
		errno = ENOMEM;
		return NULL;
	}
	p->fd = fd;
	p->role = cfg->role;
	p->instance = cfg->instance;
	p->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
	p->pool = cfg->pool;
	set_socket_opts(fd);

	rc = send_hello(p);
	if (!rc) {
		m = peer_wait_ctrl(p, CT_HELLO, 0, &rc);
		if (m) {
			rc = check_hello(p, m->data, m->len);
			msg_free(m);
		}
	}
	p->open_done = true;
	if (!rc)
		rc = peer_auth_start(p);
	if (rc) {
		snprintf(open_err, sizeof(open_err), "%s", p->err);
		qkd_peer_close(p);
		errno = -rc;
		return NULL;
	}
	return p;
}

struct qkd_peer *qkd_peer_open(const struct qkd_peer_config *cfg)
{
	const char *addr;
	int fd, timeout_ms;

	open_err[0] = 0;
	if (!cfg_valid(cfg)) {
		errno = EINVAL;
		return NULL;
	}
	timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
	addr = cfg->address && *cfg->address ? cfg->address : "127.0.0.1";
	fd = cfg->listen ? do_listen(cfg, addr, timeout_ms) : do_connect(cfg, addr, timeout_ms);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	return peer_open_fd(fd, cfg);
}

void qkd_peer_close(struct qkd_peer *p)
{
	struct peer_msg *m;

	if (!p)
		return;
	if (p->fd >= 0)
		close(p->fd);
	msg_free(p->cur);
	while ((m = p->dq_head)) {
		p->dq_head = m->next;
		msg_free(m);
	}
	while ((m = p->cq)) {
		p->cq = m->next;
		msg_free(m);
	}
	peer_auth_free(p);
	if (p->rbuf) {
		explicit_bzero(p->rbuf, p->rcap);
		free(p->rbuf);
	}
	free(p->pipeline);
	free(p->stage);
	free(p);
}
