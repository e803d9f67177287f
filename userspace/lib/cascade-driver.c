// SPDX-License-Identifier: GPL-2.0
/*
 * Cascade drivers: many frames in flight over one message link.
 *
 * Bob keeps up to 'window' frames active. Every answer that arrives is
 * consumed at once and the frame's next request goes out immediately, so the
 * link always carries about 'window' requests or answers: Alice and Bob work
 * at the same time on different frames, and the link's latency is paid once
 * per round of a frame, not once per round of every frame. Frames finish in
 * any order; they are handed back in the order they started.
 *
 * Every frame's protocol ends with Bob's DONE or ABORT segment, also when
 * Alice refused something (she then answers with an empty segment and waits
 * for the ABORT), so both sides always agree on how each frame ended.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cascade-internal.h"

struct order {
	struct cascade_job *head, *tail;
};

static void order_add(struct order *o, struct cascade_job *j)
{
	j->next_done = NULL;
	j->finished = false;
	if (o->tail)
		o->tail->next_done = j;
	else
		o->head = j;
	o->tail = j;
}

/*
 * Hand back the finished jobs at the head, in start order, once they include
 * 'batch' joined jobs (or all of them when force). Both sides evaluate this
 * after every message, so they hand back the same jobs at the same point.
 */
static int order_retire(struct order *o, int (*done)(void *, struct cascade_job *), void *arg,
			unsigned *queued, unsigned batch, bool force)
{
	unsigned joined = 0;

	for (struct cascade_job *j = o->head; j && j->finished; j = j->next_done)
		joined += j->joined;
	if (!force && joined < batch)
		return 0;
	while (o->head && o->head->finished) {
		struct cascade_job *j = o->head;

		o->head = j->next_done;
		if (!o->head)
			o->tail = NULL;
		(*queued)--;
		if (done(arg, j))
			return -ECANCELED;
	}
	return 0;
}

struct active {
	struct cascade_job **v;
	size_t len, cap;
};

static int active_add(struct active *a, struct cascade_job *j)
{
	if (a->len == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct cascade_job **v = realloc(a->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->len++] = j;
	return 0;
}

static struct cascade_job *active_find(struct active *a, uint64_t key_id, size_t *idx)
{
	for (size_t i = 0; i < a->len; i++) {
		if (a->v[i]->key_id == key_id) {
			*idx = i;
			return a->v[i];
		}
	}
	return NULL;
}

static void active_del(struct active *a, size_t i)
{
	a->v[i] = a->v[--a->len];
}

static void bob_finish(struct cascade_job *j, int status)
{
	struct cascade_bob *b = j->state;

	if (b) {
		cascade_bob_result(b, &j->result);
		cascade_bob_free(b);
	}
	j->state = NULL;
	j->status = status;
	j->finished = true;
}

int cascade_bob_drive(struct cascade_session *s, const struct cascade_config *cfg,
		      const struct cascade_link *l, unsigned window, unsigned batch,
		      struct cascade_job *(*next)(void *arg),
		      int (*done)(void *arg, struct cascade_job *j), void *arg)
{
	static const uint8_t abort_seg[1] = { CASCADE_OP_ABORT };
	struct active act = { 0 };
	struct order ord = { 0 };
	unsigned queued = 0;
	bool more = true;
	int ret = 0;

	if (!window)
		window = 1;
	if (!batch)
		batch = 1;
	for (;;) {
		const uint8_t *seg, *in;
		size_t len, inlen, idx;
		struct cascade_job *j;
		uint64_t key_id;
		uint16_t type;
		int r;

		while (more && act.len < window && queued < 4 * window) {
			j = next(arg);
			if (!j) {
				more = false;
				break;
			}
			order_add(&ord, j);
			queued++;
			memset(&j->result, 0, sizeof(j->result));
			j->joined = false;
			if (j->skip) {
				j->state = NULL;
				j->status = 0;
				j->finished = true;
				continue;
			}
			j->state = cascade_bob_new(s, cfg, j->key, j->n, j->qber);
			if (!j->state) {
				/* Alice only learns of the frame to abort it. */
				ret = l->send(l->ctx, j->key_id, CASCADE_MSG_SEGMENT, abort_seg, 1);
				bob_finish(j, -errno);
				if (ret)
					goto fail;
				continue;
			}
			r = cascade_bob_request(j->state, &seg, &len);
			if (r != 1) {
				bob_finish(j, r < 0 ? r : -EPROTO);
				continue;
			}
			ret = active_add(&act, j);
			if (!ret)
				ret = l->send(l->ctx, j->key_id, CASCADE_MSG_SEGMENT, seg, len);
			if (ret)
				goto fail;
		}
		if (!act.len && !more)
			break;
		ret = order_retire(&ord, done, arg, &queued, batch, false);
		if (ret)
			goto fail;
		if (!act.len)
			continue;
		r = l->recv(l->ctx, &key_id, &type, &in, &inlen);
		if (r <= 0) {
			ret = r ? r : -EPIPE;
			goto fail;
		}
		j = active_find(&act, key_id, &idx);
		if (type != CASCADE_MSG_SEGMENT || !j) {
			ret = -EPROTO;
			goto fail;
		}
		if (inlen && !j->joined)
			j->joined = true; /* Alice answered START: she has the frame */
		r = cascade_bob_reply(j->state, in, inlen);
		if (r) {
			/* Refused by Alice, or a malformed answer: end it on both sides. */
			active_del(&act, idx);
			bob_finish(j, r == -EBADMSG ? -ECANCELED : r);
			ret = l->send(l->ctx, j->key_id, CASCADE_MSG_SEGMENT, abort_seg, 1);
			if (ret)
				goto fail;
			continue;
		}
		r = cascade_bob_request(j->state, &seg, &len);
		if (r == 1 || r == 2) {
			ret = l->send(l->ctx, j->key_id, CASCADE_MSG_SEGMENT, seg, len);
			if (ret)
				goto fail;
		}
		if (r != 1) {
			struct cascade_result res;

			cascade_bob_result(j->state, &res);
			active_del(&act, idx);
			bob_finish(j, r == 2 && res.ok ? 0 : (r < 0 ? r : -ECANCELED));
		}
	}
	/* END first: Alice hands back her last batch when it arrives. */
	ret = l->send(l->ctx, 0, CASCADE_MSG_END, NULL, 0);
	if (!ret)
		ret = order_retire(&ord, done, arg, &queued, batch, true);
	free(act.v);
	return ret;
fail:
	for (size_t i = 0; i < act.len; i++)
		bob_finish(act.v[i], -EPIPE);
	for (struct cascade_job *j = ord.head; j; j = j->next_done)
		if (!j->finished)
			bob_finish(j, -EPIPE);
	order_retire(&ord, done, arg, &queued, batch, true);
	free(act.v);
	return ret;
}

static void alice_finish(struct cascade_job *j, int status)
{
	struct cascade_alice *a = j->state;

	if (a) {
		cascade_alice_result(a, &j->result);
		cascade_alice_free(a);
	}
	j->state = NULL;
	if (!j->status || status != -ECANCELED)
		j->status = status;
	j->finished = true;
}

int cascade_alice_serve(struct cascade_session *s, const struct cascade_link *l, unsigned batch,
			struct cascade_job *(*find)(void *arg, uint64_t key_id),
			int (*done)(void *arg, struct cascade_job *j), void *arg)
{
	struct active act = { 0 };
	struct order ord = { 0 };
	unsigned queued = 0;
	int ret = 0;

	for (;;) {
		const uint8_t *in, *out;
		size_t inlen, outlen, idx;
		struct cascade_job *j;
		uint64_t key_id;
		uint16_t type;
		int r;

		r = l->recv(l->ctx, &key_id, &type, &in, &inlen);
		if (r < 0) {
			ret = r;
			goto fail;
		}
		if (r == 0) {
			ret = act.len ? -EPIPE : 0;
			goto fail;
		}
		if (type == CASCADE_MSG_END)
			break;
		if (type != CASCADE_MSG_SEGMENT) {
			ret = -EPROTO;
			goto fail;
		}
		j = active_find(&act, key_id, &idx);
		if (!j) {
			if (inlen >= 1 && in[0] == CASCADE_OP_ABORT) {
				/* A frame Alice never had: nothing to close on either side. */
				if (l->forget)
					l->forget(l->ctx, key_id);
				continue;
			}
			j = inlen >= 1 && in[0] == CASCADE_OP_START ? find(arg, key_id) : NULL;
			if (!j) {
				ret = l->send(l->ctx, key_id, CASCADE_MSG_SEGMENT, NULL, 0);
				if (ret)
					goto fail;
				continue;
			}
			memset(&j->result, 0, sizeof(j->result));
			j->status = 0;
			j->key_id = key_id;
			j->joined = true;
			order_add(&ord, j);
			queued++;
			j->state = cascade_alice_new(s, j->key, j->n);
			if (!j->state || active_add(&act, j)) {
				if (j->state)
					cascade_alice_free(j->state);
				j->state = NULL;
				j->status = -ENOMEM;
				j->finished = true;
				ret = -ENOMEM;
				goto fail;
			}
			idx = act.len - 1;
		}
		r = cascade_alice_handle(j->state, in, inlen, &out, &outlen);
		if (r == 1) {
			ret = l->send(l->ctx, key_id, CASCADE_MSG_SEGMENT, out, outlen);
		} else if (r == 0 || r == -ECANCELED) {
			active_del(&act, idx);
			alice_finish(j, r);
		} else {
			/* Refuse; Bob answers with ABORT, which ends the frame. */
			j->status = r;
			ret = l->send(l->ctx, key_id, CASCADE_MSG_SEGMENT, NULL, 0);
		}
		if (ret)
			goto fail;
		ret = order_retire(&ord, done, arg, &queued, batch ? batch : 1, false);
		if (ret)
			goto fail;
	}
	if (act.len)
		ret = -EPROTO; /* END with frames still open */
fail:
	for (size_t i = 0; i < act.len; i++)
		alice_finish(act.v[i], -EPIPE);
	order_retire(&ord, done, arg, &queued, 1, true);
	free(act.v);
	return ret;
}
