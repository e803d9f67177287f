// SPDX-License-Identifier: GPL-2.0
/*
 * Cascade over the authenticated peer channel: the message link for the
 * drivers, and the agreement on the session's shuffle seed.
 */
#include <errno.h>
#include <string.h>

#include "qkd/cascade.h"
#include "qkd/module.h"
#include "qkd/peer.h"

static int peer_send(void *ctx, uint64_t key_id, uint16_t type, const uint8_t *buf, size_t len)
{
	return qkd_send(ctx, key_id, type, buf, len);
}

static int peer_recv(void *ctx, uint64_t *key_id, uint16_t *type, const uint8_t **buf,
		     size_t *len)
{
	struct qkd_msg m;
	int r = qkd_recv(ctx, &m);

	if (r != 1)
		return r;
	*key_id = m.key_id;
	*type = m.type;
	*buf = m.data;
	*len = m.len;
	return 1;
}

static void peer_forget(void *ctx, uint64_t key_id)
{
	qkd_peer_auth_forget(ctx, key_id);
}

void cascade_link_peer(struct cascade_link *l, struct qkd_peer *p)
{
	l->ctx = p;
	l->send = peer_send;
	l->recv = peer_recv;
	l->forget = peer_forget;
}

int cascade_peer_agree_seed(struct qkd_peer *p, bool bob, uint32_t *batch,
			    uint8_t seed[CASCADE_SEED_LEN])
{
	uint8_t mine[CASCADE_SEED_LEN + 4], theirs[CASCADE_SEED_LEN + 4];
	size_t want = bob ? CASCADE_SEED_LEN : CASCADE_SEED_LEN + 4;
	struct qkd_msg m;
	int r;

	qkd_random(mine, CASCADE_SEED_LEN);
	if (bob)
		memcpy(mine + CASCADE_SEED_LEN, batch, 4);
	r = qkd_send(p, CASCADE_SEED_KEY_ID, CASCADE_MSG_NONCE, mine,
		     bob ? CASCADE_SEED_LEN + 4 : CASCADE_SEED_LEN);
	if (r)
		return r;
	r = qkd_recv_expect(p, CASCADE_SEED_KEY_ID, CASCADE_MSG_NONCE, &m);
	if (r < 0)
		return r;
	if (r == 0)
		return -EPIPE;
	if (m.len != want)
		return -EPROTO;
	memcpy(theirs, m.data, want);
	/* The seed is only used once both nonces are known to be authentic. */
	r = qkd_peer_auth_verify(p, CASCADE_SEED_KEY_ID);
	explicit_bzero(mine + CASCADE_SEED_LEN, 4);
	if (r)
		return r;
	if (bob) {
		cascade_seed_combine(theirs, mine, seed);
	} else {
		memcpy(batch, theirs + CASCADE_SEED_LEN, 4);
		if (!*batch || *batch > 1u << 20)
			return -EPROTO;
		cascade_seed_combine(mine, theirs, seed);
	}
	return 0;
}
