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

int cascade_peer_agree_seed(struct qkd_peer *p, bool bob, uint8_t seed[CASCADE_SEED_LEN])
{
	uint8_t mine[CASCADE_SEED_LEN], theirs[CASCADE_SEED_LEN];
	struct qkd_msg m;
	int r;

	qkd_random(mine, sizeof(mine));
	r = qkd_send(p, CASCADE_SEED_KEY_ID, CASCADE_MSG_NONCE, mine, sizeof(mine));
	if (r)
		return r;
	r = qkd_recv_expect(p, CASCADE_SEED_KEY_ID, CASCADE_MSG_NONCE, &m);
	if (r < 0)
		return r;
	if (r == 0)
		return -EPIPE;
	if (m.len != CASCADE_SEED_LEN)
		return -EPROTO;
	memcpy(theirs, m.data, sizeof(theirs));
	/* The seed is only used once both nonces are known to be authentic. */
	r = qkd_peer_auth_verify(p, CASCADE_SEED_KEY_ID);
	if (r)
		return r;
	if (bob)
		cascade_seed_combine(theirs, mine, seed);
	else
		cascade_seed_combine(mine, theirs, seed);
	return 0;
}
