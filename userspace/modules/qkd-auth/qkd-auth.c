// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-auth: the last distillation stage. It closes the deferred
 * authentication of every key block (the Wegman-Carter accumulators that the
 * earlier stages folded into the frame, plus its own transcript) with one
 * exchange of one-time-padded tags, and refills the authentication key pool
 * from the authenticated keys (key recycling). The protocol and why it is
 * sound: Documentation/authentication.md, sections 4 and 5.
 *
 * Per frame k, in key-id order on both sides:
 *   A->B INFO(k)   bit count, auth_stages, recycling share r (chosen by Alice)
 *   B->A READY(k)  whether Bob's frame matches
 *   END/END        fold qkd-auth's own transcript into the accumulators
 *   FV1..FV3       padded tags over both accumulators (48 bytes of pad)
 *   B->A ACK(k)    Bob's verdict and his pool's size after appending the share
 * Bob appends before he acknowledges and Alice after, so every pool offset
 * Alice can hand out exists at Bob's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/keypool.h"
#include "qkd/module.h"

enum { MSG_INFO = 1, MSG_READY = 2, MSG_ACK = 3 };

static int64_t p_pool_target;
static double p_recycle_max;

static struct qkd_param params[] = {
	{ "pool-target", QKD_PARAM_INT, "1048576",
	  "Recycle key into the authentication pool while it holds fewer unspent bytes than "
	  "this (Alice decides; Bob follows)",
	  true, &p_pool_target, 0, 1e12 },
	{ "recycle-max", QKD_PARAM_DOUBLE, "0.01",
	  "Largest fraction of one authenticated key block taken for the pool",
	  true, &p_recycle_max, 0, 0.5 },
	{ NULL },
};

static const struct qkd_module_desc desc = {
	.name = "qkd-auth",
	.stage = "auth",
	.summary = "close the authentication of every key block and recycle key",
	.description =
		"Reads AMPLIFIED frames and writes AUTHENTICATED ones. Earlier stages run "
		"with defer-auth and fold the Wegman-Carter digests of their peer messages "
		"(both directions) into each frame's accumulators; qkd-auth adds its own "
		"messages and then Alice and Bob exchange one-time-padded tags over both "
		"accumulators (48 bytes of pad from the key pool per frame). A frame becomes "
		"AUTHENTICATED only when every tag verifies on both sides and Bob confirms; "
		"otherwise it is written as ABORTED with reason auth on both sides and "
		"counted in the auth-failure statistics.\n\n"
		"Key recycling: while the pool holds fewer than pool-target unspent bytes, "
		"Alice takes the last r bytes of each authenticated key (r at most recycle-max "
		"of the block, and no more than the pool lacks) and both sides append them to "
		"their pools, Bob first, in key-id order; those bytes are removed from the key "
		"written downstream. So a pipeline runs indefinitely after one pre-shared "
		"secret. With parallel instances only instance 0 recycles, so that each pool "
		"has a single appender. At exit qkd-auth logs how much distilled key it recycled and how much "
		"pool key the pipeline consumed while it ran, as fractions of the distilled "
		"key.\n\n"
		"Setting up: 'qkd-auth --init-pool POOL SECRET' makes the key pool POOL (and "
		"its spent record POOL.spent) from the pre-shared secret in the file SECRET; "
		"run it on both sides with the same secret, then destroy the secret file. "
		"It refuses to overwrite an existing pool, since that could hand out used key "
		"again.",
	.needs = QKD_NEEDS_INPUT | QKD_NEEDS_OUTPUT | QKD_NEEDS_PEER,
	.params = params,
	.examples =
		"Bob's and Alice's last stage behind qkd-pa --defer-auth:\n"
		"    qkd-auth --role bob --listen 127.0.0.1:7006 --keypool bob.pool \\\n"
		"      < bob.amplified > bob.final &\n"
		"    qkd-auth --role alice --peer 127.0.0.1:7006 --keypool alice.pool \\\n"
		"      < alice.amplified > alice.final",
};

struct totals {
	uint64_t distilled;	/* bytes of authenticated key before recycling */
	uint64_t recycled;	/* bytes appended to the pool */
	uint64_t spent0;	/* pool spent bytes when we started */
};

static void put_le32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const uint8_t *b)
{
	return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

/* Alice: bytes of this block to recycle. */
static uint32_t choose_share(struct qkd_module *m, const struct qkd_frame *f)
{
	uint64_t avail = 0, want, cap;
	int64_t target;
	double frac;

	/*
	 * One appender per pool: with parallel instances the appends of
	 * different processes could interleave differently on the two sides,
	 * and the pools would no longer match. Instance 0 recycles for all.
	 */
	if (m->instance != 0)
		return 0;
	pthread_mutex_lock(&m->lock);
	target = p_pool_target;
	frac = p_recycle_max;
	pthread_mutex_unlock(&m->lock);
	if (qkd_keypool_stat(m->pool, &avail, NULL, NULL))
		return 0;
	if (avail >= (uint64_t)target)
		return 0;
	want = (uint64_t)target - avail;
	cap = (uint64_t)((double)(f->bit_count / 8) * frac);
	if (want > cap)
		want = cap;
	return (uint32_t)(want > (1u << 20) ? (1u << 20) : want);
}

/* Move the last r bytes' worth of key bits out of f into out. */
static void take_share(struct qkd_frame *f, uint8_t *out, uint32_t r)
{
	uint64_t n = f->bit_count, start = n - (uint64_t)r * 8;

	memset(out, 0, r);
	for (uint64_t i = 0; i < (uint64_t)r * 8; i++) {
		out[i / 8] |= (uint8_t)(qkd_bit_get(f->payload, start + i) << (i % 8));
		qkd_bit_set(f->payload, start + i, 0);
	}
	f->bit_count = start;
	/* bytes beyond the shorter payload were cleared bit by bit above */
	f->payload_len = qkd_bits_to_bytes(start);
}

/*
 * An authenticated block's share (share non-NULL, r bytes) leaves f and joins
 * the pool; *total: the pool's size after, for the sides to compare. 0 or <0.
 */
static int recycle(struct qkd_module *m, struct qkd_frame *f, uint8_t *share, uint32_t r,
		   uint64_t *total)
{
	int x;

	if (share && r) {
		take_share(f, share, r);
		x = qkd_keypool_append(m->pool, share, r);
		if (x) {
			qkd_log(m, QKD_LOG_ERR, "key pool append: %s", strerror(-x));
			return x;
		}
	}
	return qkd_keypool_stat(m->pool, NULL, total, NULL) ? -EIO : 0;
}

/*
 * Close frame f. 1 = authenticated (f updated: share removed), 0 = abort with
 * *why, <0 fatal.
 */
static int close_frame(struct qkd_module *m, struct qkd_frame *f, struct totals *t,
		       enum qkd_abort_reason *why)
{
	uint8_t info[16], b[9], *share = NULL;
	uint64_t total = 0, total_bob;
	struct qkd_msg msg;
	bool match = true, ok;
	uint32_t r;
	int x;

	*why = QKD_ABORT_PEER;
	if (m->role == QKD_ALICE) {
		r = choose_share(m, f);
		put_le64(info, f->bit_count);
		put_le32(info + 8, f->auth_stages);
		put_le32(info + 12, r);
		x = qkd_module_peer_send(m, f->key_id, MSG_INFO, info, sizeof(info));
		if (x <= 0)
			return x;
		x = qkd_module_peer_reply(m, f->key_id, MSG_READY, &msg);
		if (x <= 0)
			return x;
		if (msg.len != 1 || msg.data[0] != 1) {
			qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": Bob's frame does not match "
				"(length, stages or share); frame dropped", f->key_id);
			qkd_peer_auth_forget(m->peer, f->key_id);
			return 0;
		}
	} else {
		x = qkd_module_peer_request(m, f->key_id, MSG_INFO, &msg);
		if (x <= 0)
			return x;
		if (msg.len != sizeof(info)) {
			match = false;
			r = 0;
		} else {
			r = le32(msg.data + 12);
			match = le64(msg.data) == f->bit_count && le32(msg.data + 8) == f->auth_stages &&
				(uint64_t)r * 8 <= f->bit_count / 2 && (!r || m->instance == 0);
		}
		if (!match)
			qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": Alice's frame does not match "
				"ours (length, stages or share); frame dropped", f->key_id);
		b[0] = match;
		x = qkd_module_peer_send(m, f->key_id, MSG_READY, b, 1);
		if (x <= 0)
			return x;
		if (!match) {
			qkd_peer_auth_forget(m->peer, f->key_id);
			return 0;
		}
	}

	/* our own messages join the accumulators; then one padded closing */
	x = qkd_peer_auth_defer(m->peer, f->key_id, f);
	if (x < 0) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": %s", f->key_id, qkd_peer_error(m->peer));
		return x;
	}
	x = qkd_peer_auth_verify_frame(m->peer, f);
	if (x < 0 && x != -EBADMSG) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": %s", f->key_id, qkd_peer_error(m->peer));
		return x;
	}
	ok = x == 0;
	if (!ok)
		qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": authentication failed (%s); no key "
			"from this block", f->key_id, qkd_peer_error(m->peer));

	if (ok && r) {
		share = malloc(r);
		if (!share) {
			qkd_log(m, QKD_LOG_ERR, "out of memory");
			return -ENOMEM;
		}
	}
	if (m->role == QKD_BOB) {
		x = recycle(m, f, ok ? share : NULL, r, &total);
		if (x)
			goto fatal;
		b[0] = ok;
		put_le64(b + 1, total);
		x = qkd_module_peer_send(m, f->key_id, MSG_ACK, b, sizeof(b));
		qkd_peer_auth_forget(m->peer, f->key_id);
		if (x < 0)
			goto fatal;
	} else {
		x = qkd_module_peer_reply(m, f->key_id, MSG_ACK, &msg);
		qkd_peer_auth_forget(m->peer, f->key_id);
		if (x < 0)
			goto fatal;
		if (x == 0 || msg.len != sizeof(b)) {
			qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": no verdict from Bob; the key "
				"pools may now differ", f->key_id);
			x = -EPROTO;
			goto fatal;
		}
		total_bob = le64(msg.data + 1);
		if (ok && !msg.data[0])
			qkd_log(m, QKD_LOG_WARN, "key %" PRIu64 ": Bob rejected the block; no key "
				"from it", f->key_id);
		ok = ok && msg.data[0];
		x = recycle(m, f, ok ? share : NULL, r, &total);
		if (x)
			goto fatal;
		if (total != total_bob) {
			qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": key pools out of sync (ours %"
				PRIu64 " bytes, Bob's %" PRIu64 "); stopping", f->key_id, total,
				total_bob);
			x = -EPROTO;
			goto fatal;
		}
	}
	if (share) {
		explicit_bzero(share, r);
		free(share);
	}
	if (!ok) {
		*why = QKD_ABORT_AUTH;
		return 0;
	}
	t->distilled += f->bit_count / 8 + r;
	t->recycled += r;
	return 1;

fatal:
	if (share) {
		explicit_bzero(share, r);
		free(share);
	}
	return x < 0 ? x : -EIO;
}

static void report(struct qkd_module *m, const struct totals *t)
{
	uint64_t spent = 0, avail = 0;

	if (qkd_keypool_stat(m->pool, &avail, NULL, &spent))
		return;
	spent -= t->spent0 < spent ? t->spent0 : spent;
	qkd_log(m, QKD_LOG_INFO,
		"key consumption: %" PRIu64 " bytes distilled, %" PRIu64 " recycled into the "
		"pool (%.3f%% of the distilled key), %" PRIu64 " pool bytes spent meanwhile "
		"(%.3f%%), %" PRIu64 " unspent pool bytes left",
		t->distilled, t->recycled,
		t->distilled ? 100.0 * (double)t->recycled / (double)t->distilled : 0.0, spent,
		t->distilled ? 100.0 * (double)spent / (double)t->distilled : 0.0, avail);
}

/* qkd-auth --init-pool POOL SECRET */
static int init_pool(const char *pool, const char *secret_path)
{
	FILE *f = fopen(secret_path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int rc;

	if (!f) {
		fprintf(stderr, "qkd-auth: cannot open secret '%s': %m\n", secret_path);
		return 1;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			uint8_t *nb = malloc(cap ? cap * 2 : 1 << 16);

			if (!nb) {
				fprintf(stderr, "qkd-auth: out of memory\n");
				rc = 1;
				goto out;
			}
			if (buf) {
				memcpy(nb, buf, len);
				explicit_bzero(buf, cap);
				free(buf);
			}
			buf = nb;
			cap = cap ? cap * 2 : 1 << 16;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f) || len < 64) {
		fprintf(stderr, "qkd-auth: secret '%s' %s\n", secret_path,
			ferror(f) ? "could not be read" : "is shorter than 64 bytes");
		rc = 1;
		goto out;
	}
	rc = qkd_keypool_create(pool, buf, len);
	if (rc)
		fprintf(stderr, "qkd-auth: cannot create key pool '%s': %s\n", pool,
			rc == -EEXIST ? "it exists already (never overwrite a pool: used key "
			"would become available again)" : strerror(-rc));
	else
		fprintf(stderr, "qkd-auth: key pool '%s' holds %zu bytes of pre-shared key\n",
			pool, len);
	rc = rc ? 1 : 0;
out:
	if (buf) {
		explicit_bzero(buf, cap);
		free(buf);
	}
	fclose(f);
	return rc;
}

int main(int argc, char **argv)
{
	struct qkd_module m;
	struct qkd_frame *f = NULL;
	struct totals t = { 0, 0, 0 };
	int r;

	if (argc >= 2 && !strcmp(argv[1], "--init-pool")) {
		if (argc != 4) {
			fprintf(stderr, "usage: qkd-auth --init-pool POOL SECRET\n");
			return 2;
		}
		return init_pool(argv[2], argv[3]);
	}
	if (qkd_module_init(&m, &desc, argc, argv))
		return 2;
	qkd_keypool_stat(m.pool, NULL, NULL, &t.spent0);
	while ((r = qkd_module_read(&m, &f)) > 0) {
		enum qkd_abort_reason why;

		if (f->state != QKD_STATE_AMPLIFIED) {
			qkd_log(&m, QKD_LOG_ERR, "key %" PRIu64 ": input frame is %s, not amplified; "
				"is qkd-auth in the right place?", f->key_id,
				qkd_frame_state_name(f->state));
			qkd_module_fail(&m);
			break;
		}
		r = close_frame(&m, f, &t, &why);
		if (r > 0) {
			f->state = QKD_STATE_AUTHENTICATED;
			r = qkd_module_write(&m, f);
		} else if (r == 0) {
			r = qkd_module_abort_frame(&m, f, why);
		} else {
			qkd_module_abort_frame(&m, f, QKD_ABORT_PEER);
			qkd_module_fail(&m);
			break;
		}
		if (r < 0)
			break;
	}
	if (r < 0)
		qkd_module_fail(&m);
	report(&m, &t);
	return qkd_module_finish(&m);
}
