// SPDX-License-Identifier: GPL-2.0
/*
 * The module CoAP service context, exercised over real UDP on loopback:
 * state, statistics, parameters (live writes land in the variable, bounds and
 * types are enforced, fixed ones refuse), error codes with messages, Observe
 * notifications (through the unmodified coap-client-notls), registration with
 * a QPM endpoint, and a bounded run of random datagrams after which the
 * service still answers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <coap3/coap.h>
#include "qkd/module.h"
#include "qkd/service.h"
#include "qkd/service-util.h"
#include "kselftest_harness.h"

static int64_t p_block;
static double p_ratio;
static char *p_label;
static bool p_fixed;

static struct qkd_param params[] = {
	{ "block-bits", QKD_PARAM_INT, "4096", "bits per block", true, &p_block, 64, 1 << 20 },
	{ "ratio", QKD_PARAM_DOUBLE, "0.1", "sample ratio", true, &p_ratio, 0.0, 1.0 },
	{ "label", QKD_PARAM_STRING, "x", "a label", true, &p_label, 0, 0 },
	{ "fixed", QKD_PARAM_BOOL, "false", "not live", false, &p_fixed, 0, 0 },
	{ NULL },
};

static const struct qkd_module_desc desc = {
	.name = "qkd-test", .stage = "test", .summary = "test", .params = params,
};

static volatile sig_atomic_t got_term;
static void on_term(int sig)
{
	got_term = 1;
}

/*
 * A small strict CBOR reader for the checks: skips one item, -1 if the bytes
 * are not one well-formed item within len.
 */
static long cbor_item(const uint8_t *p, size_t len, size_t off, int depth)
{
	unsigned major, ai;
	uint64_t arg = 0;
	size_t n;

	if (off >= len || depth > 40)
		return -1;
	major = p[off] >> 5;
	ai = p[off] & 31;
	off++;
	if (ai < 24) {
		arg = ai;
	} else if (ai <= 27) {
		n = (size_t)1 << (ai - 24);
		if (off + n > len)
			return -1;
		for (size_t i = 0; i < n; i++)
			arg = arg << 8 | p[off + i];
		off += n;
	} else {
		return -1;
	}
	switch (major) {
	case 0: case 1: case 7:
		return (long)off;
	case 2: case 3:
		return off + arg <= len ? (long)(off + arg) : -1;
	case 4: case 5:
		for (uint64_t i = 0; i < arg * (major == 5 ? 2 : 1); i++) {
			long e = cbor_item(p, len, off, depth + 1);

			if (e < 0)
				return -1;
			off = (size_t)e;
		}
		return (long)off;
	default:
		return -1;
	}
}

/* Unsigned value of key in a top-level CBOR map; -1 if absent or malformed. */
static long cbor_map_uint(const uint8_t *p, size_t len, const char *key)
{
	size_t off = 1, kl = strlen(key);
	uint64_t n;

	if (cbor_item(p, len, 0, 0) != (long)len || (p[0] >> 5) != 5)
		return -1;
	n = p[0] & 31;
	if (n == 24) {
		n = p[1];
		off = 2;
	}
	for (uint64_t i = 0; i < n; i++) {
		long v = cbor_item(p, len, off, 0);
		bool hit = (p[off] >> 5) == 3 && (p[off] & 31) == kl &&
			   !memcmp(p + off + 1, key, kl);

		off = (size_t)v;
		if (hit) {
			unsigned ai = p[off] & 31;
			uint64_t a = 0;

			if (p[off] >> 5 != 0)
				return -1;
			if (ai < 24)
				return ai;
			for (unsigned k = 0; k < (1u << (ai - 24)); k++)
				a = a << 8 | p[off + 1 + k];
			return (long)a;
		}
		off = (size_t)cbor_item(p, len, off, 0);
	}
	return -1;
}

FIXTURE(svc) {
	struct qkd_module m;
	char port[16];
};

FIXTURE_SETUP(svc)
{
	memset(&self->m, 0, sizeof(self->m));
	self->m.desc = &desc;
	self->m.role = QKD_BOB;
	self->m.pipeline = "unit";
	self->m.instances = 1;
	self->m.log_level = QKD_LOG_ERR;
	self->m.state = QKD_MOD_READY;
	self->m.stats.last_qber = -1;
	pthread_mutex_init(&self->m.lock, NULL);
	p_block = 4096;
	p_ratio = 0.1;
	p_label = strdup("x");
	p_fixed = false;
	ASSERT_EQ(0, qkd_service_start(&self->m, NULL));
	ASSERT_GT(qkd_service_port(&self->m), 0);
	snprintf(self->port, sizeof(self->port), "%d", qkd_service_port(&self->m));
}

FIXTURE_TEARDOWN(svc)
{
	qkd_service_stop(&self->m);
	free(p_label);
	p_label = NULL;
}

static int req(const char *port, int method, const char *path, const char *body, unsigned cf,
	       unsigned accept, struct qkd_coap_reply *r)
{
	return qkd_coap_request("127.0.0.1", port, method, path, body, body ? strlen(body) : 0, cf,
				accept, 2000, NULL, r);
}

TEST_F(svc, state_and_stats)
{
	struct qkd_coap_reply r;
	struct qkd_json j;
	char s[32];
	double v;

	ASSERT_EQ(0, req(self->port, COAP_REQUEST_GET, "state", NULL, QKD_CF_NONE, QKD_CF_NONE, &r));
	EXPECT_EQ(205, r.code);
	EXPECT_EQ(QKD_CF_JSON, (int)r.content_format);
	ASSERT_EQ(0, qkd_json_parse(r.body, r.len, &j));
	ASSERT_TRUE(qkd_json_get_str(j, "state", s, sizeof(s)));
	EXPECT_STREQ("ready", s);
	qkd_coap_reply_free(&r);

	pthread_mutex_lock(&self->m.lock);
	self->m.state = QKD_MOD_RUNNING;
	self->m.stats.frames_out = 12;
	self->m.stats.frames_aborted = 2;
	self->m.stats.bits_out = 40000;
	self->m.stats.last_qber = 0.031;
	pthread_mutex_unlock(&self->m.lock);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_GET, "stats", NULL, QKD_CF_NONE, QKD_CF_NONE, &r));
	EXPECT_EQ(205, r.code);
	ASSERT_EQ(0, qkd_json_parse(r.body, r.len, &j));
	ASSERT_TRUE(qkd_json_get_num(j, "frames_out", &v));
	EXPECT_EQ(12, (int)v);
	ASSERT_TRUE(qkd_json_get_num(j, "keys", &v));
	EXPECT_EQ(10, (int)v);
	ASSERT_TRUE(qkd_json_get_num(j, "qber", &v));
	EXPECT_TRUE(v > 0.0309 && v < 0.0311);
	ASSERT_TRUE(qkd_json_get_str(j, "state", s, sizeof(s)));
	EXPECT_STREQ("running", s);
	ASSERT_TRUE(qkd_json_get_str(j, "role", s, sizeof(s)));
	EXPECT_STREQ("bob", s);
	qkd_coap_reply_free(&r);

	ASSERT_EQ(0, req(self->port, COAP_REQUEST_GET, "state", NULL, QKD_CF_NONE, QKD_CF_TEXT, &r));
	EXPECT_EQ(205, r.code);
	EXPECT_STREQ("running", r.body);
	qkd_coap_reply_free(&r);

	/* Content-format negotiation: CBOR on request, the same numbers in it. */
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_GET, "stats", NULL, QKD_CF_NONE, QKD_CF_CBOR, &r));
	EXPECT_EQ(205, r.code);
	EXPECT_EQ(QKD_CF_CBOR, (int)r.content_format);
	EXPECT_EQ(12, cbor_map_uint((const uint8_t *)r.body, r.len, "frames_out"));
	EXPECT_EQ(10, cbor_map_uint((const uint8_t *)r.body, r.len, "keys"));
	qkd_coap_reply_free(&r);
	/* Neither JSON, CBOR nor text: 4.06. */
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_GET, "stats", NULL, QKD_CF_NONE, QKD_CF_XML, &r));
	EXPECT_EQ(406, r.code);
	qkd_coap_reply_free(&r);
}

TEST_F(svc, pause_resume_terminate)
{
	struct qkd_coap_reply r;
	struct sigaction sa = { .sa_handler = on_term };

	self->m.state = QKD_MOD_RUNNING;
	self->m.stats.start_ns = 1;
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "state", "paused", QKD_CF_TEXT, QKD_CF_NONE,
			 &r));
	EXPECT_EQ(204, r.code);
	qkd_coap_reply_free(&r);
	EXPECT_EQ(QKD_MOD_PAUSED, (int)self->m.state);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "state", "\"running\"", QKD_CF_JSON,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(204, r.code);
	qkd_coap_reply_free(&r);
	EXPECT_EQ(QKD_MOD_RUNNING, (int)self->m.state);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "state", "exploded", QKD_CF_TEXT,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(400, r.code);
	EXPECT_NE(NULL, strstr(r.body, "one of"));
	qkd_coap_reply_free(&r);

	/* Termination goes through the runtime's SIGTERM path. */
	sigaction(SIGTERM, &sa, NULL);
	got_term = 0;
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "state", "hibernating", QKD_CF_TEXT,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(204, r.code);
	qkd_coap_reply_free(&r);
	for (int i = 0; i < 100 && !got_term; i++)
		usleep(10000);
	EXPECT_EQ(1, got_term);
	signal(SIGTERM, SIG_DFL);
}

TEST_F(svc, params)
{
	struct qkd_coap_reply r;
	struct qkd_json j, p;
	double v;
	char big[5000];

	ASSERT_EQ(0, req(self->port, COAP_REQUEST_GET, "params", NULL, QKD_CF_NONE, QKD_CF_NONE,
			 &r));
	EXPECT_EQ(205, r.code);
	ASSERT_EQ(0, qkd_json_parse(r.body, r.len, &j));
	ASSERT_TRUE(qkd_json_member(j, "block-bits", &p));
	ASSERT_TRUE(qkd_json_get_num(p, "value", &v));
	EXPECT_EQ(4096, (int)v);
	ASSERT_TRUE(qkd_json_get_num(p, "max", &v));
	EXPECT_EQ(1 << 20, (int)v);
	qkd_coap_reply_free(&r);

	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/block-bits", "8192\n", QKD_CF_TEXT,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(204, r.code);
	qkd_coap_reply_free(&r);
	EXPECT_EQ(8192, p_block);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/ratio", "{\"value\":0.25}",
			 QKD_CF_JSON, QKD_CF_NONE, &r));
	EXPECT_EQ(204, r.code);
	qkd_coap_reply_free(&r);
	EXPECT_TRUE(p_ratio == 0.25);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/label", "ground station 2",
			 QKD_CF_TEXT, QKD_CF_NONE, &r));
	EXPECT_EQ(204, r.code);
	qkd_coap_reply_free(&r);
	EXPECT_STREQ("ground station 2", p_label);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_GET, "params/label", NULL, QKD_CF_NONE,
			 QKD_CF_TEXT, &r));
	EXPECT_EQ(205, r.code);
	EXPECT_STREQ("ground station 2", r.body);
	qkd_coap_reply_free(&r);

	/* Refusals, each with a reason; the variable keeps its value. */
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/block-bits", "10", QKD_CF_TEXT,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(400, r.code);
	EXPECT_NE(NULL, strstr(r.body, "out of range"));
	qkd_coap_reply_free(&r);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/ratio", "0.3x", QKD_CF_TEXT,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(400, r.code);
	qkd_coap_reply_free(&r);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/ratio", "{\"value\":", QKD_CF_JSON,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(400, r.code);
	qkd_coap_reply_free(&r);
	EXPECT_EQ(8192, p_block);
	EXPECT_TRUE(p_ratio == 0.25);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/fixed", "true", QKD_CF_TEXT,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(403, r.code);
	qkd_coap_reply_free(&r);
	EXPECT_FALSE(p_fixed);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/nonesuch", "1", QKD_CF_TEXT,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(404, r.code);
	qkd_coap_reply_free(&r);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/ratio", "", QKD_CF_NONE,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(400, r.code);
	qkd_coap_reply_free(&r);
	/* Oversized body (block-wise upload) is refused. */
	memset(big, '7', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_PUT, "params/label", big, QKD_CF_TEXT,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(413, r.code);
	qkd_coap_reply_free(&r);
	/* GET/PUT only. */
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_POST, "params/ratio", "1", QKD_CF_TEXT,
			 QKD_CF_NONE, &r));
	EXPECT_EQ(405, r.code);
	qkd_coap_reply_free(&r);
	ASSERT_EQ(0, req(self->port, COAP_REQUEST_DELETE, "state", NULL, QKD_CF_NONE, QKD_CF_NONE,
			 &r));
	EXPECT_EQ(405, r.code);
	qkd_coap_reply_free(&r);
}

/* Observe /stats with the stock client; the counter we bump must show up. */
TEST_F(svc, observe_with_coap_client)
{
	char cmd[256], line[4096];
	FILE *f;
	int notes = 0, saw_new = 0;

	self->m.state = QKD_MOD_RUNNING;
	snprintf(cmd, sizeof(cmd),
		 "timeout 5 coap-client-notls -s 2 -B 3 coap://127.0.0.1:%s/stats 2>/dev/null",
		 self->port);
	f = popen(cmd, "r");
	ASSERT_NE(NULL, f);
	usleep(500000);
	pthread_mutex_lock(&self->m.lock);
	self->m.stats.frames_out = 777;
	pthread_mutex_unlock(&self->m.lock);
	qkd_service_stats_changed(&self->m);
	/* coap-client prints each notification's payload without a separator. */
	while (fgets(line, sizeof(line), f)) {
		for (char *p = line; (p = strstr(p, "\"frames_out\"")); p++)
			notes++;
		if (strstr(line, "\"frames_out\":777"))
			saw_new = 1;
	}
	pclose(f);
	EXPECT_GE(notes, 2);
	EXPECT_EQ(1, saw_new);
}

/* Random datagrams must not stop the service. Bounded: 3000 packets. */
TEST_F(svc, random_datagrams)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct qkd_coap_reply r;
	uint8_t pkt[1500];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int ret = -1;

	ASSERT_GE(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)atoi(self->port));
	for (int i = 0; i < 3000; i++) {
		uint16_t len;

		ASSERT_EQ((ssize_t)sizeof(pkt), getrandom(pkt, sizeof(pkt), 0));
		len = (uint16_t)(pkt[0] | pkt[1] << 8) % sizeof(pkt);
		/* Half of them look like CoAP (version 1) to get past the first check. */
		if (i & 1)
			pkt[0] = (uint8_t)(0x40 | (pkt[0] & 0x3f));
		sendto(fd, pkt, len, 0, (struct sockaddr *)&a, sizeof(a));
		if (i % 200 == 0)
			usleep(1000);
	}
	close(fd);
	/* The backlog may take a moment (sanitizer builds are slow); then it must answer. */
	for (int i = 0; i < 5; i++) {
		ret = req(self->port, COAP_REQUEST_GET, "state", NULL, QKD_CF_NONE, QKD_CF_NONE, &r);
		if (!ret)
			break;
	}
	ASSERT_EQ(0, ret);
	EXPECT_EQ(205, r.code);
	qkd_coap_reply_free(&r);
}

/* A minimal QPM endpoint that records one registration. */
static char reg_body[1024];
static volatile int reg_count;

static void reg_handler(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *rq,
			const coap_string_t *q, coap_pdu_t *resp)
{
	const uint8_t *d;
	size_t l = 0;

	if (coap_get_data(rq, &l, &d) && l < sizeof(reg_body)) {
		memcpy(reg_body, d, l);
		reg_body[l] = '\0';
	}
	reg_count++;
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CREATED);
}

TEST(registers_with_qpm)
{
	struct qkd_module m = { .desc = &desc, .role = QKD_ALICE, .pipeline = "p1",
				.instance = 1, .instances = 2, .log_level = QKD_LOG_ERR };
	coap_context_t *ctx;
	coap_address_t a;
	coap_endpoint_t *ep;
	coap_resource_t *res;
	struct qkd_json j;
	char qpm[64], s[32];
	double v;

	pthread_mutex_init(&m.lock, NULL);
	qkd_coap_startup();
	ctx = coap_new_context(NULL);
	ASSERT_NE(NULL, ctx);
	coap_address_init(&a);
	a.addr.sin.sin_family = AF_INET;
	a.addr.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.size = sizeof(a.addr.sin);
	ep = coap_new_endpoint(ctx, &a, COAP_PROTO_UDP);
	ASSERT_NE(NULL, ep);
	res = coap_resource_init(coap_make_str_const("register"), 0);
	coap_register_handler(res, COAP_REQUEST_POST, reg_handler);
	coap_add_resource(ctx, res);
	snprintf(qpm, sizeof(qpm), "127.0.0.1:%s", strrchr(coap_endpoint_str(ep), ':') + 1);
	*strchr(qpm, ' ') = '\0';

	reg_count = 0;
	ASSERT_EQ(0, qkd_service_start(&m, qpm));
	for (int i = 0; i < 40 && !qkd_service_registered(&m); i++)
		coap_io_process(ctx, 50);
	EXPECT_TRUE(qkd_service_registered(&m));
	EXPECT_GE(reg_count, 1);
	ASSERT_EQ(0, qkd_json_parse(reg_body, strlen(reg_body), &j));
	ASSERT_TRUE(qkd_json_get_num(j, "pid", &v));
	EXPECT_EQ(getpid(), (pid_t)v);
	ASSERT_TRUE(qkd_json_get_num(j, "port", &v));
	EXPECT_EQ(qkd_service_port(&m), (int)v);
	ASSERT_TRUE(qkd_json_get_num(j, "instance", &v));
	EXPECT_EQ(1, (int)v);
	ASSERT_TRUE(qkd_json_get_str(j, "pipeline", s, sizeof(s)));
	EXPECT_STREQ("p1", s);
	ASSERT_TRUE(qkd_json_get_str(j, "role", s, sizeof(s)));
	EXPECT_STREQ("alice", s);
	qkd_service_stop(&m);
	coap_free_context(ctx);
}

TEST(json_reader)
{
	static const char *bad[] = { "", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "\"\\x\"",
				     "01", "1.", "tru", "{\"a\":1}}", "\"abc", "[[[[[[[[[[[[[[[[[["
				     "[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]" };
	const char *good = " {\"a\": [1, 2.5e3, \"x\\\"y\"], \"b\": {\"c\": null}, \"d\": -0.5 } ";
	struct qkd_json j, a, e;
	char s[16];
	double v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *t = bad[i];

		EXPECT_NE(0, qkd_json_parse(t, strlen(t), &j)) {
			TH_LOG("accepted %s", t);
		}
	}
	ASSERT_EQ(0, qkd_json_parse(good, strlen(good), &j));
	ASSERT_TRUE(qkd_json_member(j, "a", &a));
	ASSERT_TRUE(qkd_json_index(a, 1, &e));
	ASSERT_TRUE(qkd_json_num(e, &v));
	EXPECT_TRUE(v == 2500);
	ASSERT_TRUE(qkd_json_index(a, 2, &e));
	ASSERT_TRUE(qkd_json_str(e, s, sizeof(s)));
	EXPECT_STREQ("x\"y", s);
	EXPECT_FALSE(qkd_json_index(a, 3, &e));
	ASSERT_TRUE(qkd_json_get_num(j, "d", &v));
	EXPECT_TRUE(v == -0.5);
	EXPECT_FALSE(qkd_json_member(j, "c", &e));
}

TEST_HARNESS_MAIN
