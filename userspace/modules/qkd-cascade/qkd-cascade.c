// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-cascade: Cascade error correction between Alice and Bob (algorithm in
 * qkd/cascade.h, Documentation/cascade.md). Bob drives, Alice answers parity
 * questions; many frames are in flight at once over the authenticated peer
 * channel. ESTIMATED frames in, CORRECTED frames out, in key-id order.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/cascade.h"
#include "qkd/module.h"
#include "qkd/stage.h"

static char *p_schedule;
static int64_t p_window, p_batch, p_max_rounds;
static bool p_defer;

static struct qkd_param params[] = {
	{ "schedule", QKD_PARAM_STRING, "tuned",
	  "Block-size schedule (Bob decides; Alice follows): original, yan, option7, option8 "
	  "or tuned, see DESCRIPTION", true, &p_schedule, 0, 0 },
	{ "window", QKD_PARAM_INT, "32",
	  "Frames in flight at once (Bob); more hides more channel latency and costs memory",
	  false, &p_window, 1, 1024 },
	{ "batch", QKD_PARAM_INT, "16",
	  "Finished frames whose authentication transcripts are closed together (Bob; Alice "
	  "learns it at session start)", false, &p_batch, 1, 1024 },
	{ "max-rounds", QKD_PARAM_INT, "5000",
	  "Round trips after which a frame is given up and aborted (reason ec)", true,
	  &p_max_rounds, 10, 1000000 },
	QKD_STAGE_PARAM_DEFER_AUTH(p_defer),
	{ NULL },
};

static char description[4096];

static struct qkd_module_desc desc = {
	.name = "qkd-cascade",
	.stage = "cascade",
	.summary = "Cascade error correction, many frames in flight",
	.description = description,
	.needs = QKD_NEEDS_INPUT | QKD_NEEDS_OUTPUT | QKD_NEEDS_PEER | QKD_SEES_ABORTED,
	.params = params,
	.examples =
		"Bob behind qkd-estimate, then Alice, with the Yan et al. schedule:\n"
		"    qkd-cascade --role bob --listen 127.0.0.1:7003 --keypool bob.pool \\\n"
		"      --schedule yan < bob.estimated > bob.corrected &\n"
		"    qkd-cascade --role alice --peer 127.0.0.1:7003 --keypool alice.pool \\\n"
		"      < alice.estimated > alice.corrected",
};

static void build_description(void)
{
	size_t off = 0;

	off += (size_t)snprintf(description + off, sizeof(description) - off,
		"Reads ESTIMATED frames (packed key bits with the QBER the estimation stage "
		"measured) and writes CORRECTED ones: Bob's key made equal to Alice's by the "
		"Cascade protocol. Bob drives: each round he asks Alice, in one message per "
		"frame, for the parities of every block and sub-block his binary searches need, "
		"for up to 'window' frames at once; Alice answers with packed parities. Every "
		"parity bit Alice sends is added to the frame's disclosed_bits and to this "
		"stage's disclosed-bit statistics; the frame's efficiency f = disclosed / "
		"(n h(e/n)), e the bits corrected, is the last-efficiency statistic.\n\n"
		"The first block size follows the frame's QBER. Schedules (parameter "
		"schedule):\n");
	for (int s = 0; s < CASCADE_N_SCHEDULES; s++)
		off += (size_t)snprintf(description + off, sizeof(description) - off,
					"  %-9s %s\n", cascade_schedule_name(s),
					cascade_schedule_help(s));
	snprintf(description + off, sizeof(description) - off,
		"\nShuffles come from a seed both sides make from fresh random nonces at the "
		"start of every session, exchanged and verified over the authenticated "
		"channel; permutations are cached for the session. A frame that reaches "
		"max-rounds, that the peer refuses or that arrives without a usable QBER is "
		"written as ABORTED with reason ec (peer when only one side has it) on both "
		"sides. Each frame's messages are authenticated: tags are verified per frame "
		"before it is written, or folded into the frame for qkd-auth with defer-auth. "
		"Cascade cannot tell a residual error; qkd-confirm does that next.");
}

struct job {
	struct cascade_job cj;
	struct qkd_frame *f;
	enum qkd_abort_reason why;	/* for frames aborted here */
	bool finished;			/* Alice: ready to be written */
	struct job *next;
};

struct ctx {
	struct qkd_module *m;
	struct cascade_config cfg;
	bool eof, failed;
	/* Alice: every frame read and not yet written, in order */
	struct job *head, *tail, *look;
};

static struct job *job_from(struct qkd_frame *in)
{
	struct job *j = calloc(1, sizeof(*j));
	struct qkd_frame *f;

	if (!j)
		return NULL;
	f = qkd_frame_new(in->payload_len ? in->payload_len : 8);
	if (!f) {
		free(j);
		return NULL;
	}
	/* The runtime reuses its frame: keep our own copy while in flight. */
	f->key_id = in->key_id;
	f->state = in->state;
	f->flags = in->flags;
	f->qber_ppm = in->qber_ppm;
	f->bit_count = in->bit_count;
	f->disclosed_bits = in->disclosed_bits;
	f->auth_ctx = in->auth_ctx;
	f->abort_reason = in->abort_reason;
	memcpy(f->auth_acc, in->auth_acc, sizeof(f->auth_acc));
	f->auth_stages = in->auth_stages;
	f->payload_len = in->payload_len;
	if (in->payload_len)
		memcpy(f->payload, in->payload, in->payload_len);
	j->f = f;
	j->cj.key_id = f->key_id;
	j->cj.key = f->payload;
	j->cj.n = f->bit_count;
	j->cj.user = j;
	return j;
}

static void job_free(struct job *j)
{
	qkd_frame_free(j->f);
	free(j);
}

/* Read the next frame; NULL at end of input (or error: c->failed). */
static struct job *read_job(struct ctx *c)
{
	struct qkd_frame *in = NULL;
	struct job *j;
	int r;

	if (c->eof)
		return NULL;
	r = qkd_module_read(c->m, &in);
	if (r <= 0) {
		c->eof = true;
		c->failed |= r < 0;
		return NULL;
	}
	if (in->state != QKD_STATE_ESTIMATED && in->state != QKD_STATE_ABORTED) {
		qkd_log(c->m, QKD_LOG_ERR, "key %" PRIu64 ": input frame is %s, not estimated; is "
			"qkd-cascade in the right place?", in->key_id, qkd_frame_state_name(in->state));
		c->eof = c->failed = true;
		return NULL;
	}
	j = job_from(in);
	if (!j) {
		qkd_log(c->m, QKD_LOG_ERR, "out of memory");
		c->eof = c->failed = true;
	}
	return j;
}

/*
 * Close the frame's transcript and write it. Frames that ran the protocol to
 * the end (status 0 on both sides) are authenticated; frames that ended in
 * ABORT are discarded on both sides, so their transcript is dropped.
 */
static int finish_frame(struct ctx *c, struct job *j)
{
	struct qkd_module *m = c->m;
	struct qkd_frame *f = j->f;
	const struct cascade_result *res = &j->cj.result;
	int r = 0;

	if (f->state == QKD_STATE_ABORTED)
		return qkd_module_write(m, f);
	if (j->why)
		return qkd_module_abort_frame(m, f, j->why);
	if (res->disclosed)
		qkd_module_count_disclosed(m, res->disclosed);
	if (j->cj.status || !j->cj.joined) {
		if (j->cj.status != -EPIPE)
			qkd_peer_auth_forget(m->peer, f->key_id);
		qkd_log(m, QKD_LOG_INFO, "key %" PRIu64 ": not corrected (%s)", f->key_id,
			!j->cj.joined ? "peer has no such frame" : strerror(-j->cj.status));
		return qkd_module_abort_frame(m, f, j->cj.status == -ECANCELED && j->cj.joined ?
							    QKD_ABORT_EC : QKD_ABORT_PEER);
	}
	r = qkd_stage_auth(m, f->key_id, p_defer, f);
	if (!r)
		return qkd_module_abort_frame(m, f, QKD_ABORT_AUTH);
	if (r < 0) {
		c->failed = true;
		qkd_module_abort_frame(m, f, QKD_ABORT_PEER);
		return r;
	}
	f->disclosed_bits += res->disclosed;
	f->state = QKD_STATE_CORRECTED;
	pthread_mutex_lock(&m->lock);
	m->stats.last_efficiency = res->efficiency;
	pthread_mutex_unlock(&m->lock);
	qkd_log(m, QKD_LOG_DEBUG, "key %" PRIu64 ": %" PRIu64 " bits, %" PRIu64 " corrected, %"
		PRIu64 " parities disclosed, f %.4f, %" PRIu64 " round trips", f->key_id, res->n,
		res->corrected, res->disclosed, res->efficiency, res->rounds);
	return qkd_module_write(m, f);
}

/* ---- Bob --------------------------------------------------------------- */

static struct cascade_job *bob_next(void *arg)
{
	struct ctx *c = arg;
	struct job *j = read_job(c);
	double q;

	if (!j)
		return NULL;
	if (j->f->state == QKD_STATE_ABORTED) {
		j->cj.skip = true;
		return &j->cj;
	}
	q = j->f->qber_ppm == QKD_QBER_UNKNOWN ? -1 : j->f->qber_ppm / 1e6;
	if (!(q >= 0 && q < 0.5) || j->f->bit_count == 0) {
		/* Alice sees Bob skip this key id and aborts hers (reason peer). */
		qkd_log(c->m, QKD_LOG_WARN, "key %" PRIu64 ": no usable QBER or empty; aborted",
			j->f->key_id);
		j->why = j->f->bit_count ? QKD_ABORT_EC : QKD_ABORT_TOO_SHORT;
		j->cj.skip = true;
		return &j->cj;
	}
	j->cj.qber = q;
	/* Live parameters take effect from this frame (the driver reads cfg now). */
	pthread_mutex_lock(&c->m->lock);
	{
		int sched = cascade_schedule_parse(p_schedule);

		if (sched >= 0)
			c->cfg.schedule = (enum cascade_schedule)sched;
		else
			qkd_log(c->m, QKD_LOG_WARN, "unknown schedule '%s'; keeping %s", p_schedule,
				cascade_schedule_name(c->cfg.schedule));
		c->cfg.max_rounds = (unsigned)p_max_rounds;
	}
	pthread_mutex_unlock(&c->m->lock);
	return &j->cj;
}

static int bob_done(void *arg, struct cascade_job *cj)
{
	struct ctx *c = arg;
	struct job *j = cj->user;
	int r = finish_frame(c, j);

	job_free(j);
	return r < 0 ? r : 0;
}

/* ---- Alice ------------------------------------------------------------- */

static void alice_flush(struct ctx *c)
{
	while (c->head && c->head->finished) {
		struct job *j = c->head;

		c->head = j->next;
		if (!c->head)
			c->tail = NULL;
		if (c->look == j)
			c->look = NULL;
		if (finish_frame(c, j) < 0)
			c->failed = true;
		job_free(j);
	}
}

static struct job *alice_peek(struct ctx *c)
{
	struct job *j;

	if (c->look)
		return c->look;
	j = read_job(c);
	if (!j)
		return NULL;
	if (c->tail)
		c->tail->next = j;
	else
		c->head = j;
	c->tail = j;
	c->look = j;
	return j;
}

/* The frame Bob starts: frames before it have no counterpart and are aborted. */
static struct cascade_job *alice_find(void *arg, uint64_t key_id)
{
	struct ctx *c = arg;
	struct job *j;

	while ((j = alice_peek(c)) && j->f->key_id < key_id) {
		if (j->f->state != QKD_STATE_ABORTED)
			j->why = QKD_ABORT_PEER;
		j->finished = true;
		c->look = j->next;
	}
	alice_flush(c);
	if (!j || j->f->key_id > key_id)
		return NULL;
	c->look = j->next;
	if (j->f->state == QKD_STATE_ABORTED || j->f->bit_count == 0) {
		j->why = j->f->state == QKD_STATE_ABORTED ? 0 : QKD_ABORT_TOO_SHORT;
		j->finished = true;
		alice_flush(c);
		return NULL;
	}
	return &j->cj;
}

static int alice_done(void *arg, struct cascade_job *cj)
{
	struct ctx *c = arg;
	struct job *j = cj->user;

	j->finished = true;
	alice_flush(c);
	return c->failed ? -EIO : 0;
}

int main(int argc, char **argv)
{
	struct qkd_module m;
	struct ctx c = { .m = &m };
	uint8_t seed[CASCADE_SEED_LEN];
	struct cascade_session *s;
	struct cascade_link link;
	uint32_t batch;
	int sched, r;

	build_description();
	/* A bad schedule is a usage error: say so before waiting for the peer. */
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;

		if (!strcmp(argv[i], "--schedule") && i + 1 < argc)
			v = argv[i + 1];
		else if (!strncmp(argv[i], "--schedule=", 11))
			v = argv[i] + 11;
		else if (!strcmp(argv[i], "--set") && i + 1 < argc &&
			 !strncmp(argv[i + 1], "schedule=", 9))
			v = argv[i + 1] + 9;
		if (v && cascade_schedule_parse(v) < 0) {
			fprintf(stderr, "qkd-cascade: unknown schedule '%s'; one of original, yan, "
				"option7, option8, tuned (see --help)\n", v);
			return 2;
		}
	}
	if (qkd_module_init(&m, &desc, argc, argv))
		return 2;
	sched = cascade_schedule_parse(p_schedule);
	if (sched < 0) {
		qkd_log(&m, QKD_LOG_ERR, "unknown schedule '%s' (see --help)", p_schedule);
		qkd_module_fail(&m);
		return qkd_module_finish(&m);
	}
	batch = (uint32_t)p_batch;
	r = cascade_peer_agree_seed(m.peer, m.role == QKD_BOB, &batch, seed);
	if (r) {
		qkd_log(&m, QKD_LOG_ERR, "agreeing on the shuffle seed: %s (%s)", strerror(-r),
			qkd_peer_error(m.peer));
		qkd_module_fail(&m);
		return qkd_module_finish(&m);
	}
	s = cascade_session_new(seed);
	explicit_bzero(seed, sizeof(seed));
	if (!s) {
		qkd_log(&m, QKD_LOG_ERR, "out of memory");
		qkd_module_fail(&m);
		return qkd_module_finish(&m);
	}
	cascade_link_peer(&link, m.peer);
	if (m.role == QKD_BOB) {
		pthread_mutex_lock(&m.lock);
		c.cfg.schedule = (enum cascade_schedule)sched;
		c.cfg.max_rounds = (unsigned)p_max_rounds;
		pthread_mutex_unlock(&m.lock);
		r = cascade_bob_drive(s, &c.cfg, &link, (unsigned)p_window, batch, bob_next,
				      bob_done, &c);
	} else {
		r = cascade_alice_serve(s, &link, batch, alice_find, alice_done, &c);
		/* Bob has ended: whatever Alice still has has no counterpart. */
		while (!r && !c.failed && alice_peek(&c)) {
			struct job *j = c.look;

			if (j->f->state != QKD_STATE_ABORTED)
				j->why = QKD_ABORT_PEER;
			j->finished = true;
			c.look = j->next;
			alice_flush(&c);
		}
		for (struct job *j = c.head; j; j = j->next)
			j->finished = true;
		alice_flush(&c);
	}
	if (r) {
		qkd_log(&m, QKD_LOG_ERR, "cascade: %s (%s)", strerror(-r), qkd_peer_error(m.peer));
		qkd_module_fail(&m);
	} else if (c.failed) {
		qkd_module_fail(&m);
	}
	cascade_session_free(s);
	return qkd_module_finish(&m);
}
