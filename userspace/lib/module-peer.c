// SPDX-License-Identifier: GPL-2.0
/*
 * Module runtime: key-id synchronisation of per-frame peer exchanges (API in
 * qkd/module.h). Both sides see frames in increasing key-id order, but either
 * side may lack some key ids (a frame dropped or aborted upstream on one side
 * only) or run out of frames first. The responder compares the key id of the
 * next request with its own frame's: an older request has no frame here and
 * is refused with QKD_MSG_ABORT, a newer one is kept for later and means this
 * frame has no counterpart. So both sides agree which frames go on, without
 * extra round trips in the common case. QKD_MSG_END marks a side's last frame.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "module-internal.h"
#include "peer-impl.h"

/*
 * Does the byte stream b[0..n) (what the channel has buffered followed by what
 * waits in the socket) hold the start of a data message? Control messages of
 * the authentication (tag exchanges, their closing) are skipped: they arrive
 * after an exchange and say nothing about the next frame.
 */
static bool data_ahead(const uint8_t *b, size_t n)
{
	size_t off = 0;

	while (n - off >= PEER_HDR_LEN) {
		if (b[off + 6] == PEER_KIND_DATA)
			return true;
		off += PEER_HDR_LEN + (size_t)peer_le32(b + off);
		if (off > n)
			return false; /* a control message still arriving */
	}
	return false;
}

/*
 * Wait until the peer has started its next message exchange, without the
 * channel's stall limit. The answering side of an exchange legitimately waits
 * as long as the other side's source takes to produce its next frame (a slow
 * or paused source, a pipeline being hibernated); --peer-timeout still bounds
 * every wait inside an exchange. Returns 1 when qkd_recv() has a data message
 * (or an end of stream, or an error) to work on, 0 when the module is asked
 * to stop first. It looks at the channel's buffers and peeks at the socket
 * (same library, peer-impl.h), consuming nothing.
 */
static int wait_for_peer(struct qkd_module *m)
{
	struct qkd_peer *p = m->peer;
	uint8_t *b = NULL;
	size_t cap = 0;
	long nap_ms = 2;
	bool flushed = false;
	int ret = 1;

	for (;;) {
		size_t have = p->rlen - p->rpos, need;
		ssize_t got;

		if (p->dead || p->dq_head)
			break;
		need = have + 65536;
		if (need > cap) {
			uint8_t *nb = realloc(b, need);

			if (!nb)
				break;
			b = nb;
			cap = need;
		}
		if (have)
			memcpy(b, p->rbuf + p->rpos, have);
		got = recv(p->fd, b + have, cap - have, MSG_PEEK | MSG_DONTWAIT);
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
				 errno != EINTR))
			break; /* closed or failed: qkd_recv reports it */
		if (data_ahead(b, have + (got > 0 ? (size_t)got : 0)))
			break;
		if (qkd_module_stopping(m)) {
			ret = 0;
			break;
		}
		if (!flushed) {
			/* A long wait may follow: hand on what we have written. */
			qkd_module_flush(m);
			flushed = true;
		}
		if (got > 0) {
			/*
			 * Only control bytes so far; poll() would return at
			 * once, so look again after a nap that grows to 100 ms.
			 */
			struct timespec ts = { 0, nap_ms * 1000 * 1000 };

			nanosleep(&ts, NULL);
			nap_ms = nap_ms < 50 ? nap_ms * 2 : 100;
		} else {
			struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

			poll(&pfd, 1, 100);
		}
	}
	free(b);
	return ret;
}

static int stash(struct qkd_module_priv *pv, const struct qkd_msg *msg)
{
	if (msg->len > pv->pending_cap) {
		uint8_t *n = malloc(msg->len);

		if (!n)
			return -ENOMEM;
		if (pv->pending_data)
			explicit_bzero(pv->pending_data, pv->pending_cap);
		free(pv->pending_data);
		pv->pending_data = n;
		pv->pending_cap = msg->len;
	}
	if (msg->len)
		memcpy(pv->pending_data, msg->data, msg->len);
	pv->pending = true;
	pv->pending_key = msg->key_id;
	pv->pending_type = msg->type;
	pv->pending_len = msg->len;
	return 0;
}

bool qkd_module_peer_ended(const struct qkd_module *m)
{
	return ((const struct qkd_module_priv *)m->priv)->peer_ended;
}

/* 1 = message (END handled), 0 = the peer has ended, <0 failure. */
static int recv_one(struct qkd_module *m, struct qkd_msg *msg)
{
	struct qkd_module_priv *pv = m->priv;
	int r;

	if (pv->peer_ended)
		return 0;
	r = qkd_recv(m->peer, msg);
	if (r == 0) {
		/* Closed without saying goodbye: the peer died or was killed. */
		qkd_log(m, QKD_LOG_ERR, "peer closed the channel without ending it");
		pv->failed = true;
		pv->peer_ended = true;
		return 0;
	}
	if (r < 0) {
		qkd_log(m, QKD_LOG_ERR, "peer channel: %s", qkd_peer_error(m->peer));
		return r;
	}
	if (msg->type == QKD_MSG_END) {
		qkd_log(m, QKD_LOG_INFO, "the peer has no more frames");
		pv->peer_ended = true;
		return 0;
	}
	return 1;
}

int qkd_module_peer_send(struct qkd_module *m, uint64_t key_id, uint16_t type, const void *buf,
			 size_t len)
{
	struct qkd_module_priv *pv = m->priv;
	int r;

	if (pv->peer_ended)
		return 0;
	r = qkd_send(m->peer, key_id, type, buf, len);
	if (r < 0) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": peer channel: %s", key_id,
			qkd_peer_error(m->peer));
		return r;
	}
	return 1;
}

int qkd_module_peer_abort(struct qkd_module *m, uint64_t key_id)
{
	struct qkd_module_priv *pv = m->priv;
	int r = qkd_module_peer_send(m, key_id, QKD_MSG_ABORT, NULL, 0);

	pv->refused_key = key_id;
	pv->refused_valid = true;

	qkd_peer_auth_forget(m->peer, key_id);
	return r < 0 ? r : 0;
}

int qkd_module_peer_request(struct qkd_module *m, uint64_t key_id, uint16_t type,
			    struct qkd_msg *msg)
{
	struct qkd_module_priv *pv = m->priv;

	for (;;) {
		int r;

		if (pv->pending) {
			if (pv->pending_key == key_id) {
				pv->pending = false;
				if (pv->pending_type == QKD_MSG_ABORT) {
					qkd_peer_auth_forget(m->peer, key_id);
					return 0;
				}
				if (pv->pending_type != type) {
					qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": peer sent message "
						"type %u, expected %u", key_id, pv->pending_type, type);
					return -EPROTO;
				}
				msg->key_id = key_id;
				msg->type = type;
				msg->len = (uint32_t)pv->pending_len;
				msg->data = pv->pending_data;
				return 1;
			}
			if (pv->pending_key > key_id) {
				/* The peer has no frame key_id; keep its request. */
				qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": the peer has no such frame",
					key_id);
				qkd_peer_auth_forget(m->peer, key_id);
				return 0;
			}
			/*
			 * A request for a frame we do not have, or the rest of an
			 * exchange we already refused: refuse once.
			 */
			pv->pending = false;
			if (pv->pending_type == QKD_MSG_ABORT ||
			    (pv->refused_valid && pv->refused_key == pv->pending_key)) {
				qkd_peer_auth_forget(m->peer, pv->pending_key);
			} else {
				qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": peer's frame has no "
					"counterpart here; refused", pv->pending_key);
				r = qkd_module_peer_abort(m, pv->pending_key);
				if (r < 0)
					return r;
			}
		}
		if (!pv->peer_ended && !wait_for_peer(m)) {
			qkd_log(m, QKD_LOG_INFO, "key %" PRIu64 ": stopping while the peer has not "
				"started this frame", key_id);
			qkd_peer_auth_forget(m->peer, key_id);
			return 0;
		}
		r = recv_one(m, msg);
		if (r <= 0) {
			if (r == 0)
				qkd_peer_auth_forget(m->peer, key_id);
			return r;
		}
		r = stash(pv, msg);
		if (r < 0)
			return r;
	}
}

int qkd_module_peer_reply(struct qkd_module *m, uint64_t key_id, uint16_t type,
			  struct qkd_msg *msg)
{
	int r;

	for (;;) {
		r = recv_one(m, msg);
		if (r <= 0) {
			if (r == 0)
				qkd_peer_auth_forget(m->peer, key_id);
			return r;
		}
		/*
		 * A second refusal of an earlier frame (the peer gave up on it
		 * while more of our messages for it were under way) is stale.
		 */
		if (msg->key_id < key_id && msg->type == QKD_MSG_ABORT) {
			qkd_peer_auth_forget(m->peer, msg->key_id);
			continue;
		}
		break;
	}
	if (msg->key_id != key_id) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": peer answered for key %" PRIu64, key_id,
			msg->key_id);
		return -EPROTO;
	}
	if (msg->type == QKD_MSG_ABORT) {
		qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": the peer gave up on this frame", key_id);
		qkd_peer_auth_forget(m->peer, key_id);
		return 0;
	}
	if (msg->type != type) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": peer sent message type %u, expected %u",
			key_id, msg->type, type);
		return -EPROTO;
	}
	return 1;
}

/*
 * End of the exchange: tell the peer, then, if we ran out of input (rather
 * than being stopped), refuse its remaining requests until it ends too, so
 * it can finish its own frames instead of finding the channel gone.
 */
void qkd_module_peer_finish(struct qkd_module *m)
{
	struct qkd_module_priv *pv = m->priv;
	struct qkd_msg msg;

	if (m->peer && !pv->failed) {
		if (pv->pending && pv->pending_type != QKD_MSG_ABORT &&
		    qkd_module_peer_abort(m, pv->pending_key) < 0)
			goto out;
		pv->pending = false;
		if (qkd_send(m->peer, 0, QKD_MSG_END, NULL, 0) < 0)
			goto out;
		while (pv->eof && !pv->peer_ended && wait_for_peer(m) && recv_one(m, &msg) > 0) {
			if (msg.type == QKD_MSG_ABORT ||
			    (pv->refused_valid && pv->refused_key == msg.key_id)) {
				qkd_peer_auth_forget(m->peer, msg.key_id);
				continue;
			}
			qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": peer's frame has no counterpart "
				"here; refused", msg.key_id);
			if (qkd_module_peer_abort(m, msg.key_id) < 0)
				break;
		}
	}
out:
	pv->pending = false;
	if (pv->pending_data)
		explicit_bzero(pv->pending_data, pv->pending_cap);
	free(pv->pending_data);
	pv->pending_data = NULL;
	pv->pending_cap = 0;
}
