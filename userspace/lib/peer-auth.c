// SPDX-License-Identifier: GPL-2.0
/*
 * Authentication of the peer channel (see Documentation/authentication.md).
 *
 * Contexts: a context is a hash key taken from the key pool. Alice takes it
 * and announces its pool offset (CT_CTX); Bob takes the same bytes with
 * take_at, which refuses spent ones. The context id is offset + 1, the same
 * on both sides. A context's hash key may hash many blocks (the polynomial
 * hash is epsilon-almost-XOR-universal, so reusing the hash key is safe as
 * long as every tag is padded with fresh key); the pads come from the pool at
 * every closing.
 *
 * Transcripts: per key id and per direction (Alice->Bob, Bob->Alice), a
 * running polynomial hash of every message (16-byte header and body) in the
 * order it was sent. A direction is bound to a context by its first message:
 * the sender uses its current context and names it in the header's ctx byte;
 * the receiver binds to the named context. Because each direction is bound by
 * its own sender, a context switch can never make the two sides hash one
 * direction under different keys (short of an attacker, whom the tags catch).
 *
 * Closing (qkd_peer_auth_verify), three messages, three fresh 16-byte pads
 * that Alice takes from the pool and Bob takes at her offsets (in 4 KiB
 * chunks, see pads_take):
 *   V1  A->B  offset, tag1 = D(A->B) ^ pad1
 *   V2  B->A  tag2 = D(B->A) ^ pad2 if tag1 verified, else random
 *   V3  A->B  tag3 = D(B->A) ^ pad3 if tag2 verified, else random
 * Each side accepts only if every tag it received verified, so a change to
 * any message of the block in either direction (or to V1 or V2) fails both
 * sides; a change to V3 fails Bob.
 *
 * Deferring (qkd_peer_auth_defer): both sides send CT_END after their last
 * message of the block and wait for the other's, so both transcripts are
 * complete; then each direction's digest is folded into the frame:
 * acc[d] = (acc[d] ^ D_d) * k_d, with k_d the hash key of the direction's
 * context. qkd-auth closes the accumulators with the same three-message
 * exchange over acc (CT_FV1..3).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/keypool.h"
#include "qkd/module.h"
#include "peer-impl.h"
#include "mac-impl.h"

/* ---- contexts ------------------------------------------------------------ */

static struct peer_ctx *ctx_find(struct qkd_peer *p, uint8_t seq8)
{
	for (struct peer_ctx *c = p->ctxs; c; c = c->next)
		if ((uint8_t)c->seq == seq8)
			return c;
	return NULL;
}

/* Oldest live context's seq: seqs travel mod 256, so live ones must span less. */
static uint32_t ctx_oldest(const struct qkd_peer *p)
{
	uint32_t min = p->ctx_seq;

	for (const struct peer_ctx *c = p->ctxs; c; c = c->next)
		if (c->seq < min)
			min = c->seq;
	return min;
}

/*
 * Finalize contexts nobody can name any more: not current, no transcript
 * direction bound to them, and (on Alice) older than the newest one Bob
 * acknowledged, since until then Bob may still bind a new direction to them.
 */
static void ctx_gc(struct qkd_peer *p)
{
	struct peer_ctx **pp = &p->ctxs;

	while (*pp) {
		struct peer_ctx *c = *pp;

		if (c != p->cur_ctx && !c->refs &&
		    (p->role == QKD_BOB || c->seq < p->ctx_acked)) {
			*pp = c->next;
			explicit_bzero(c, sizeof(*c));
			free(c);
		} else {
			pp = &c->next;
		}
	}
}

static int ctx_install(struct qkd_peer *p, uint32_t seq, uint64_t offset,
		       const uint8_t key[QKD_MAC_KEY_LEN])
{
	struct peer_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->seq = seq;
	c->id = offset + 1;
	memcpy(c->key, key, QKD_MAC_KEY_LEN);
	c->next = p->ctxs;
	p->ctxs = c;
	p->cur_ctx = c;
	p->ctx_seq = seq;
	ctx_gc(p);
	return 0;
}

/* Alice: a fresh hash key from the pool, announced to Bob. */
static int ctx_create(struct qkd_peer *p)
{
	uint8_t key[QKD_MAC_KEY_LEN], msg[12];
	uint64_t off;
	int rc;

	/* Bob's acks let old contexts go: take those that arrived, and wait for
	 * the outstanding ones if the span is otherwise too wide */
	rc = peer_pump_ready(p);
	while (!rc && p->ctx_seq + 1 - ctx_oldest(p) >= PEER_MAX_CTX && p->ctx_acked < p->ctx_seq)
		rc = peer_pump_once(p, "context acknowledgements");
	if (rc)
		return rc;
	if (p->ctx_seq + 1 - ctx_oldest(p) >= PEER_MAX_CTX) {
		peer_note(p, "a transcript still uses context %u, %d contexts ago; close or "
			  "forget it before opening more", ctx_oldest(p), PEER_MAX_CTX);
		return -EBUSY;
	}
	rc = qkd_keypool_take(p->pool, sizeof(key), key, &off);
	if (rc) {
		peer_note(p, "authentication key pool: cannot take a hash key: %s", strerror(-rc));
		return rc;
	}
	peer_put_le32(msg, p->ctx_seq + 1);
	qkd_put_le64(msg + 4, off);
	rc = peer_send_raw(p, PEER_KIND_CTRL, 0, CT_CTX, 0, msg, sizeof(msg), NULL);
	if (!rc && ctx_install(p, p->ctx_seq + 1, off, key))
		rc = peer_fail(p, ENOMEM, "out of memory"); /* Bob switched, we cannot */
	explicit_bzero(key, sizeof(key));
	return rc < 0 ? rc : 0;
}

int peer_auth_start(struct qkd_peer *p)
{
	int rc;

	if (p->role == QKD_ALICE) {
		rc = ctx_create(p);
		if (rc && !p->dead)
			return peer_fail(p, -rc, "%s", p->err);
		return rc;
	}
	while (p->ctx_seq < 1) {
		rc = peer_pump_once(p, "the first authentication context");
		if (rc)
			return rc;
	}
	p->ctx_claimed = 1;
	return 0;
}

int64_t qkd_peer_new_context(struct qkd_peer *p)
{
	int rc;

	if (p->dead)
		return -p->dead;
	if (p->role == QKD_ALICE) {
		rc = ctx_create(p);
		return rc ? rc : (int64_t)p->cur_ctx->id;
	}
	/* Bob: contexts are Alice's; wait for the one matching this call */
	p->ctx_claimed++;
	while (p->ctx_seq < p->ctx_claimed) {
		rc = peer_pump_once(p, "a new authentication context");
		if (rc)
			return rc;
	}
	for (struct peer_ctx *c = p->ctxs; c; c = c->next)
		if (c->seq == p->ctx_claimed)
			return (int64_t)c->id;
	return (int64_t)p->cur_ctx->id;
}

/* ---- transcripts ----------------------------------------------------------- */

static struct transcript **t_slot(struct qkd_peer *p, uint64_t key_id)
{
	struct transcript **pp = &p->tt[key_id % PEER_TBUCKETS];

	while (*pp && (*pp)->key_id != key_id)
		pp = &(*pp)->next;
	return pp;
}

static struct transcript *t_get(struct qkd_peer *p, uint64_t key_id, int *rc)
{
	struct transcript **pp = t_slot(p, key_id), *t;

	if (*pp)
		return *pp;
	if (p->n_transcripts >= PEER_MAX_TRANSCRIPTS) {
		*rc = peer_fail(p, ENOBUFS, "more than %u key ids with open transcripts",
				PEER_MAX_TRANSCRIPTS);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		*rc = peer_fail(p, ENOMEM, "out of memory");
		return NULL;
	}
	t->key_id = key_id;
	*pp = t;
	p->n_transcripts++;
	return t;
}

static void bind_dir(struct peer_dir *d, struct peer_ctx *c)
{
	d->ctx = c;
	c->refs++;
	qkd_polyhash_init(&d->h, c->key);
}

static void t_drop(struct qkd_peer *p, uint64_t key_id)
{
	struct transcript **pp = t_slot(p, key_id), *t = *pp;

	if (!t)
		return;
	*pp = t->next;
	p->n_transcripts--;
	for (int i = 0; i < 2; i++)
		if (t->d[i].ctx)
			t->d[i].ctx->refs--;
	explicit_bzero(t, sizeof(*t));
	free(t);
	ctx_gc(p);
}

static inline int dir_out(const struct qkd_peer *p)
{
	return p->role == QKD_ALICE ? 0 : 1;
}

struct peer_dir *peer_auth_out_dir(struct qkd_peer *p, uint64_t key_id, uint8_t *ctx, int *rc)
{
	struct transcript *t = t_get(p, key_id, rc);
	struct peer_dir *d;

	if (!t)
		return NULL;
	d = &t->d[dir_out(p)];
	if (!d->ctx)
		bind_dir(d, p->cur_ctx);
	*ctx = (uint8_t)d->ctx->seq;
	return d;
}

int peer_auth_on_data(struct qkd_peer *p, uint8_t ctx, uint64_t key_id, const uint8_t *hdr,
		      const uint8_t *body, size_t len)
{
	int rc = 0;
	struct transcript *t = t_get(p, key_id, &rc);
	struct peer_dir *d;

	if (!t)
		return rc;
	d = &t->d[1 - dir_out(p)];
	if (!d->ctx) {
		struct peer_ctx *c = ctx_find(p, ctx);

		if (!c)
			return peer_fail(p, EBADMSG,
					 "message for key id %llu names unknown authentication "
					 "context %u", (unsigned long long)key_id, ctx);
		bind_dir(d, c);
	}
	/* a later message naming another context is absorbed as it is: the
	 * byte is part of the header, so the digests will differ */
	qkd_polyhash_update(&d->h, hdr, PEER_HDR_LEN);
	qkd_polyhash_update(&d->h, body, len);
	return 0;
}

int peer_auth_on_ctrl(struct qkd_peer *p, uint16_t type, uint64_t key_id, const uint8_t *body,
		      size_t len, bool *consumed)
{
	*consumed = false;
	if (type == CT_CTX) {
		uint8_t key[QKD_MAC_KEY_LEN], ack[4];
		uint32_t seq;
		uint64_t off;
		int rc;

		*consumed = true;
		if (p->role != QKD_BOB || len != 12)
			return peer_fail(p, EBADMSG, "garbage from peer: malformed context message");
		seq = peer_le32(body);
		off = qkd_le64(body + 4);
		if (seq != p->ctx_seq + 1)
			return peer_fail(p, EBADMSG,
					 "peer's new context %u is out of sequence (expected %u)",
					 seq, p->ctx_seq + 1);
		rc = qkd_keypool_take_at(p->pool, off, sizeof(key), key);
		if (rc)
			return peer_fail(p, -rc,
					 "peer's new context names key pool offset %llu that we "
					 "refuse: %s", (unsigned long long)off,
					 rc == -EKEYREJECTED ? "already spent" : strerror(-rc));
		rc = ctx_install(p, seq, off, key);
		explicit_bzero(key, sizeof(key));
		if (rc)
			return peer_fail(p, ENOMEM, "out of memory");
		peer_put_le32(ack, seq);
		return peer_send_raw(p, PEER_KIND_CTRL, 0, CT_CTX_ACK, 0, ack, sizeof(ack), NULL);
	}
	if (type == CT_FORGET) {
		*consumed = true;
		if (len)
			return peer_fail(p, EBADMSG, "garbage from peer: malformed abandon message");
		peer_ring_add(p->abandoned, &p->n_abandoned, key_id);
		return 0;
	}
	if (type == CT_CTX_ACK) {
		uint32_t seq;

		*consumed = true;
		if (p->role != QKD_ALICE || len != 4)
			return peer_fail(p, EBADMSG, "garbage from peer: malformed context ack");
		seq = peer_le32(body);
		/* acks come in order, one per context we announced */
		if (seq != p->ctx_acked + 1 || seq > p->ctx_seq)
			return peer_fail(p, EBADMSG, "garbage from peer: context ack %u out of "
					 "sequence", seq);
		p->ctx_acked = seq;
		ctx_gc(p);
	}
	return 0;
}

/* ---- one-time pads --------------------------------------------------------- */

static void chunk_drop(struct pad_chunk *c)
{
	if (c->key) {
		explicit_bzero(c->key, c->len);
		free(c->key);
	}
	memset(c, 0, sizeof(*c));
}

/* Alice: 48 fresh bytes; where they lie goes to *coff, *clen, *rel. */
static int pads_take(struct qkd_peer *p, uint8_t out[PEER_PAD_BYTES], uint64_t *coff,
		     uint32_t *clen, uint32_t *rel)
{
	struct pad_chunk *c = &p->pc[0];
	int rc;

	if (!c->key || c->len - c->used < PEER_PAD_BYTES) {
		uint32_t len = p->pc_next ? p->pc_next : PEER_PAD_FIRST;

		p->pc_next = len * 2 > PEER_PAD_LAST ? PEER_PAD_LAST : len * 2;
		chunk_drop(c);
		c->key = malloc(len);
		if (!c->key)
			return -ENOMEM;
		rc = qkd_keypool_take(p->pool, len, c->key, &c->off);
		if (rc == -ENOSPC) {
			/* a nearly empty pool: one closing's worth at a time */
			len = PEER_PAD_BYTES;
			rc = qkd_keypool_take(p->pool, len, c->key, &c->off);
		}
		if (rc) {
			free(c->key);
			c->key = NULL;
			return rc;
		}
		c->len = len;
		c->used = 0;
	}
	memcpy(out, c->key + c->used, PEER_PAD_BYTES);
	explicit_bzero(c->key + c->used, PEER_PAD_BYTES);
	*coff = c->off;
	*clen = c->len;
	*rel = c->used;
	c->used += PEER_PAD_BYTES;
	return 0;
}

/*
 * A chunk length pads_take can produce: PEER_PAD_FIRST doubled up to
 * PEER_PAD_LAST, or one closing's worth from a nearly empty pool. The length
 * is not covered by the tag (only the pads it selects are), so Bob accepts
 * nothing else: any two of these lengths differ in at least two bits, so a
 * single flipped bit fails the block instead of making Bob record a chunk of
 * another size as spent.
 */
_Static_assert(PEER_PAD_LAST <= PEER_PAD_CHUNK, "Bob's spent map covers every chunk");

static bool pad_chunk_len_valid(uint32_t clen)
{
	if (clen == PEER_PAD_BYTES)
		return true;
	for (uint32_t len = PEER_PAD_FIRST; len <= PEER_PAD_LAST; len *= 2)
		if (clen == len)
			return true;
	return false;
}

/* Bob: the 48 bytes Alice named; never the same unit twice. */
static int pads_take_at(struct qkd_peer *p, uint64_t coff, uint32_t clen, uint32_t rel,
			uint8_t out[PEER_PAD_BYTES])
{
	struct pad_chunk *c = NULL;
	int rc;

	if (!pad_chunk_len_valid(clen) || rel % 16 || rel > clen - PEER_PAD_BYTES)
		return -EINVAL;
	for (int i = 0; i < PEER_PAD_CACHED; i++)
		if (p->pc[i].key && p->pc[i].off == coff && p->pc[i].len == clen)
			c = &p->pc[i];
	if (!c) {
		/* a new chunk: replace the least recently used one */
		c = &p->pc[0];
		for (int i = 1; i < PEER_PAD_CACHED; i++)
			if (!p->pc[i].key || (c->key && p->pc[i].stamp < c->stamp))
				c = &p->pc[i];
		chunk_drop(c);
		c->key = malloc(clen);
		if (!c->key)
			return -ENOMEM;
		rc = qkd_keypool_take_at(p->pool, coff, clen, c->key);
		if (rc) {
			free(c->key);
			c->key = NULL;
			return rc;
		}
		c->off = coff;
		c->len = clen;
	}
	for (uint32_t u = rel / 16; u < (rel + PEER_PAD_BYTES) / 16; u++)
		if (c->map[u / 64] & (1ull << (u % 64)))
			return -EKEYREJECTED;
	for (uint32_t u = rel / 16; u < (rel + PEER_PAD_BYTES) / 16; u++)
		c->map[u / 64] |= 1ull << (u % 64);
	memcpy(out, c->key + rel, PEER_PAD_BYTES);
	explicit_bzero(c->key + rel, PEER_PAD_BYTES);
	c->stamp = ++p->pc_clock;
	return 0;
}

/* ---- closing ----------------------------------------------------------------- */

/*
 * Digest of one direction of t. An empty direction (no message) is bound to
 * the context its sender names in the closing message (seq8), or to our
 * current one if we are the sender. false if that context is unknown.
 */
static bool dir_digest(struct qkd_peer *p, struct transcript *t, int dir, int seq8,
		       uint8_t out[16], struct peer_ctx **ctx)
{
	struct peer_dir *d = &t->d[dir];

	if (!d->ctx) {
		struct peer_ctx *c = seq8 < 0 ? p->cur_ctx : ctx_find(p, (uint8_t)seq8);

		if (!c) {
			qkd_random(out, 16);
			*ctx = NULL;
			return false;
		}
		bind_dir(d, c);
	}
	qkd_polyhash_final(&d->h, out);
	*ctx = d->ctx;
	/* the sender names the context of its direction; it must be the one
	 * its first message named */
	return seq8 < 0 || (uint8_t)seq8 == (uint8_t)d->ctx->seq;
}

static int send_ctrl(struct qkd_peer *p, uint16_t type, uint64_t key_id, const void *b,
		     size_t n)
{
	return peer_send_raw(p, PEER_KIND_CTRL, 0, type, key_id, b, n, NULL);
}

static struct peer_msg *expect_ctrl(struct qkd_peer *p, uint16_t type, uint64_t key_id,
				    size_t len, int *rc)
{
	struct peer_msg *m = peer_wait_ctrl(p, type, key_id, rc);

	if (m && m->len != len) {
		free(m);
		*rc = peer_fail(p, EBADMSG, "garbage from peer: malformed closing message");
		return NULL;
	}
	return m;
}

static void xor16(uint8_t *out, const uint8_t *a, const uint8_t *b)
{
	for (int i = 0; i < 16; i++)
		out[i] = a[i] ^ b[i];
}

/*
 * The three-message exchange. With t, the digests are the transcript's and
 * t is consumed; without, they are fixed[] (a frame's accumulators).
 */
static int close_exchange(struct qkd_peer *p, uint64_t key_id, struct transcript *t,
			  const uint8_t fixed[2][16], bool frame)
{
	uint16_t ty1 = frame ? CT_FV1 : CT_V1, ty2 = frame ? CT_FV2 : CT_V2,
		 ty3 = frame ? CT_FV3 : CT_V3;
	uint8_t pads[PEER_PAD_BYTES], d0[16], d1[16], want[16], b[PEER_V1_LEN];
	uint32_t clen, rel;
	struct peer_ctx *c;
	struct peer_msg *m = NULL;
	bool ok = true;
	uint64_t off;
	int rc;

	if (p->role == QKD_ALICE) {
		rc = pads_take(p, pads, &off, &clen, &rel);
		if (rc) {
			/* Bob is waiting for V1: without pads the channel cannot go on */
			rc = peer_fail(p, -rc, "authentication key pool: cannot take %d bytes of "
				       "one-time pad: %s", PEER_PAD_BYTES, strerror(-rc));
			goto out;
		}
		if (t)
			dir_digest(p, t, 0, -1, d0, &c);
		else
			memcpy(d0, fixed[0], 16);
		qkd_put_le64(b, off);
		peer_put_le32(b + 8, clen);
		peer_put_le32(b + 12, rel);
		b[16] = t ? (uint8_t)t->d[0].ctx->seq : 0;
		xor16(b + 17, d0, pads);
		rc = send_ctrl(p, ty1, key_id, b, PEER_V1_LEN);
		if (rc)
			goto out;
		m = expect_ctrl(p, ty2, key_id, 17, &rc);
		if (!m)
			goto out;
		if (t) {
			ok = dir_digest(p, t, 1, m->data[0], d1, &c);
		} else {
			memcpy(d1, fixed[1], 16);
			ok = m->data[0] == 0; /* no context byte in frame closings */
		}
		xor16(want, d1, pads + 16);
		ok &= !qkd_mac_verify(want, m->data + 1);
		if (ok)
			xor16(b, d1, pads + 32);
		else
			qkd_random(b, 16);
		rc = send_ctrl(p, ty3, key_id, b, 16);
		if (rc)
			goto out;
		if (!ok)
			peer_note(p, "authentication failed for key id %llu: Bob's tag does not "
				  "verify (a message of this block was changed in transit)",
				  (unsigned long long)key_id);
	} else {
		bool pads_ok;

		m = expect_ctrl(p, ty1, key_id, PEER_V1_LEN, &rc);
		if (!m)
			goto out;
		off = qkd_le64(m->data);
		clen = peer_le32(m->data + 8);
		rel = peer_le32(m->data + 12);
		rc = pads_take_at(p, off, clen, rel, pads);
		pads_ok = !rc;
		if (!pads_ok) {
			peer_note(p, "authentication failed for key id %llu: Alice's pad at offset "
				  "%llu+%u refused by our key pool: %s", (unsigned long long)key_id,
				  (unsigned long long)off, rel,
				  rc == -EKEYREJECTED ? "already spent" : strerror(-rc));
			qkd_random(pads, sizeof(pads));
			ok = false;
		}
		if (t) {
			ok &= dir_digest(p, t, 0, m->data[16], d0, &c);
		} else {
			memcpy(d0, fixed[0], 16);
			ok &= m->data[16] == 0;
		}
		xor16(want, d0, pads);
		ok &= !qkd_mac_verify(want, m->data + 17);
		free(m);
		m = NULL;
		if (t)
			dir_digest(p, t, 1, -1, d1, &c);
		else
			memcpy(d1, fixed[1], 16);
		b[0] = t ? (uint8_t)t->d[1].ctx->seq : 0;
		if (ok)
			xor16(b + 1, d1, pads + 16);
		else
			qkd_random(b + 1, 16);
		rc = send_ctrl(p, ty2, key_id, b, 17);
		if (rc)
			goto out;
		m = expect_ctrl(p, ty3, key_id, 16, &rc);
		if (!m)
			goto out;
		xor16(want, d1, pads + 32);
		if (qkd_mac_verify(want, m->data)) {
			if (ok)
				peer_note(p, "authentication failed for key id %llu: Alice's tag "
					  "over our messages does not verify",
					  (unsigned long long)key_id);
			ok = false;
		} else if (!ok && pads_ok) {
			peer_note(p, "authentication failed for key id %llu: Alice's tag does not "
				  "verify (a message of this block was changed in transit)",
				  (unsigned long long)key_id);
		}
	}
	rc = ok ? 0 : -EBADMSG;
out:
	explicit_bzero(pads, sizeof(pads));
	explicit_bzero(d0, sizeof(d0));
	explicit_bzero(d1, sizeof(d1));
	explicit_bzero(want, sizeof(want));
	explicit_bzero(b, sizeof(b));
	free(m);
	if (t)
		t_drop(p, key_id);
	return rc;
}

int qkd_peer_auth_verify(struct qkd_peer *p, uint64_t key_id)
{
	int rc = 0;
	struct transcript *t;

	if (p->dead)
		return -p->dead;
	t = t_get(p, key_id, &rc);
	if (!t)
		return rc;
	return close_exchange(p, key_id, t, NULL, false);
}

int qkd_peer_auth_verify_frame(struct qkd_peer *p, const struct qkd_frame *f)
{
	if (p->dead)
		return -p->dead;
	return close_exchange(p, f->key_id, NULL, (const uint8_t(*)[16])f->auth_acc, true);
}

int qkd_peer_auth_defer(struct qkd_peer *p, uint64_t key_id, struct qkd_frame *f)
{
	uint8_t b[1], dg[2][16], x[16];
	struct peer_ctx *c[2];
	struct peer_msg *m;
	struct transcript *t;
	bool ok;
	int rc = 0;

	if (p->dead)
		return -p->dead;
	t = t_get(p, key_id, &rc);
	if (!t)
		return rc;
	/* our direction is complete: say so, and wait until theirs is */
	if (!t->d[dir_out(p)].ctx)
		bind_dir(&t->d[dir_out(p)], p->cur_ctx);
	b[0] = (uint8_t)t->d[dir_out(p)].ctx->seq;
	rc = send_ctrl(p, CT_END, key_id, b, 1);
	if (rc)
		return rc;
	m = expect_ctrl(p, CT_END, key_id, 1, &rc);
	if (!m) {
		t_drop(p, key_id);
		return rc;
	}
	dir_digest(p, t, dir_out(p), -1, dg[dir_out(p)], &c[dir_out(p)]);
	ok = dir_digest(p, t, 1 - dir_out(p), m->data[0], dg[1 - dir_out(p)],
			&c[1 - dir_out(p)]);
	free(m);
	for (int d = 0; d < 2; d++) {
		if (c[d] && (ok || d == dir_out(p))) {
			xor16(x, f->auth_acc[d], dg[d]);
			qkd_gf128_mul(f->auth_acc[d], x, c[d]->key);
		} else {
			/* unknown or misnamed context: poison the accumulator so
			 * that qkd-auth fails the block on both sides */
			qkd_random(f->auth_acc[d], 16);
		}
	}
	if (!ok)
		peer_note(p, "key id %llu: peer named an unknown or wrong context; the block "
			  "will fail authentication", (unsigned long long)key_id);
	f->auth_stages++;
	f->auth_ctx = c[0] ? c[0]->id : 0;
	explicit_bzero(dg, sizeof(dg));
	explicit_bzero(x, sizeof(x));
	t_drop(p, key_id);
	return 0;
}

void qkd_peer_auth_forget(struct qkd_peer *p, uint64_t key_id)
{
	t_drop(p, key_id);
	/* closings the peer sent for it will never be waited for; tell the peer,
	 * so that a closing it is waiting in fails now instead of timing out */
	peer_purge_ctrl(p, key_id);
	if (!peer_ring_has(p->forgotten, p->n_forgotten, key_id)) {
		peer_ring_add(p->forgotten, &p->n_forgotten, key_id);
		if (!p->dead)
			peer_send_raw(p, PEER_KIND_CTRL, 0, CT_FORGET, key_id, NULL, 0, NULL);
	}
}

void peer_auth_free(struct qkd_peer *p)
{
	for (int i = 0; i < PEER_TBUCKETS; i++) {
		while (p->tt[i]) {
			struct transcript *t = p->tt[i];

			p->tt[i] = t->next;
			explicit_bzero(t, sizeof(*t));
			free(t);
		}
	}
	for (int i = 0; i < PEER_PAD_CACHED; i++)
		chunk_drop(&p->pc[i]);
	while (p->ctxs) {
		struct peer_ctx *c = p->ctxs;

		p->ctxs = c->next;
		explicit_bzero(c, sizeof(*c));
		free(c);
	}
}
