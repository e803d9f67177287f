// SPDX-License-Identifier: GPL-2.0
/*
 * Module runtime, in process: typed parameters from defaults, config file and
 * command line with the documented precedence; every kind of usage error
 * refused with a message that says what and where; --help and --version;
 * several inputs merged into key-id order, several outputs by key id mod N,
 * aborted frames passed through; statistics; hibernation state saved at a
 * clean exit and restored (a corrupted state file refused).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "qkd/frame.h"
#include "qkd/module.h"
#include "qkd/statefile.h"
#include "qkd/stream.h"

static int64_t p_count;
static double p_ratio;
static bool p_flag;
static char *p_label;

static struct qkd_param params[] = {
	{ "count", QKD_PARAM_INT, "7", "A count", false, &p_count, 1, 100 },
	{ "ratio", QKD_PARAM_DOUBLE, "0.25", "A ratio", true, &p_ratio, 0, 1 },
	{ "flag", QKD_PARAM_BOOL, "false", "A flag", false, &p_flag, 0, 0 },
	{ "label", QKD_PARAM_STRING, "none", "A label", false, &p_label, 0, 0 },
	{ NULL },
};

static const struct qkd_module_desc plain = {
	.name = "qkd-unit", .stage = "unit", .summary = "runtime unit test",
	.description = "Exercises the runtime.", .needs = 0, .params = params,
	.examples = "    qkd-unit --count 3",
};

static const struct qkd_module_desc streams = {
	.name = "qkd-unit", .stage = "unit", .summary = "runtime unit test",
	.description = "Exercises the runtime.", .needs = QKD_NEEDS_INPUT | QKD_NEEDS_OUTPUT,
	.params = params,
};

/* Run qkd_module_init with stderr captured into err[]. */
static int init_capture(struct qkd_module *m, const struct qkd_module_desc *d, char *err,
			size_t errlen, int argc, char **argv)
{
	char path[] = "/tmp/qkd-unit-err.XXXXXX";
	int fd = mkstemp(path), saved = dup(2), r;
	ssize_t n;

	unlink(path);
	fflush(stderr);
	dup2(fd, 2);
	r = qkd_module_init(m, d, argc, argv);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, err, errlen - 1, 0);
	err[n > 0 ? n : 0] = 0;
	close(fd);
	return r;
}

#define ARGV(...) ((char *[]){ "qkd-unit", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "qkd-unit", __VA_ARGS__ }) / sizeof(char *)))
#define INIT(m, d, err, ...) init_capture(m, d, err, sizeof(err), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static char *write_config(const char *text)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/qkd-unit-conf.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

TEST(defaults_config_and_command_line_precedence)
{
	struct qkd_module m;
	char err[4096];
	char *conf = write_config("# comment\n\n  count = 50  \nratio=0.5\n"
				  "label = \"  spaced  \"\n; another comment\nrole = bob\n");

	ASSERT_EQ(0, INIT(&m, &plain, err, "--log-level", "error")) TH_LOG("%s", err);
	ASSERT_EQ(7, p_count);
	ASSERT_EQ(0.25, p_ratio);
	ASSERT_EQ(false, p_flag);
	ASSERT_STREQ("none", p_label);
	ASSERT_EQ((int)QKD_ALICE, (int)m.role);
	ASSERT_STREQ("default", m.pipeline);
	ASSERT_EQ(0u, m.instance);
	ASSERT_EQ(1u, m.instances);
	ASSERT_EQ((int)QKD_MOD_READY, (int)m.state);
	ASSERT_EQ(0, qkd_module_finish(&m));

	/* Config file over defaults, command line over config file. */
	ASSERT_EQ(0, INIT(&m, &plain, err, "--config", conf, "--count", "60", "--flag",
			  "--instance", "2/3", "--pipeline", "p1")) TH_LOG("%s", err);
	ASSERT_EQ(60, p_count);
	ASSERT_EQ(0.5, p_ratio);
	ASSERT_EQ(true, p_flag);
	ASSERT_STREQ("  spaced  ", p_label);
	ASSERT_EQ((int)QKD_BOB, (int)m.role);
	ASSERT_STREQ("p1", m.pipeline);
	ASSERT_EQ(2u, m.instance);
	ASSERT_EQ(3u, m.instances);
	ASSERT_EQ(0, qkd_module_finish(&m));
	unlink(conf);
}

TEST(value_forms)
{
	struct qkd_module m;
	char err[4096];

	ASSERT_EQ(0, INIT(&m, &plain, err, "--count=0x10", "--set", "ratio=11%", "--flag", "off",
			  "--label=x=y")) TH_LOG("%s", err);
	ASSERT_EQ(16, p_count);
	ASSERT_EQ(0.11, p_ratio);
	ASSERT_EQ(false, p_flag);
	ASSERT_STREQ("x=y", p_label);
	ASSERT_EQ(0, qkd_module_finish(&m));
	/* Underscores and dashes are the same in names; bare boolean before another option. */
	ASSERT_EQ(0, INIT(&m, &plain, err, "--flag", "--log_level", "debug", "--role", "BOB"))
		TH_LOG("%s", err);
	ASSERT_EQ(true, p_flag);
	ASSERT_EQ(QKD_LOG_DEBUG, m.log_level);
	ASSERT_EQ((int)QKD_BOB, (int)m.role);
	ASSERT_EQ(0, qkd_module_finish(&m));
}

struct bad_case {
	char *argv[6];
	const char *msg;
};

TEST(usage_errors_are_clear)
{
	static const struct bad_case cases[] = {
		{ { "--bogus" }, "unknown option '--bogus'" },
		{ { "--count" }, "option '--count' needs a value (an integer)" },
		{ { "--count", "abc" }, "parameter 'count' 'abc' is not an integer" },
		{ { "--count", "12x" }, "is not an integer" },
		{ { "--count", "1000" }, "1000 is out of range [1, 100]" },
		{ { "--count", "0" }, "0 is out of range" },
		{ { "--ratio", "nan" }, "'nan' is not a number" },
		{ { "--ratio", "1.5" }, "out of range" },
		{ { "--flag", "maybe" }, "'maybe' is not true or false" },
		{ { "--role", "carol" }, "'carol' is neither alice nor bob" },
		{ { "--instance", "2/2" }, "is not I/N" },
		{ { "--instance", "1" }, "is not I/N" },
		{ { "--instance", "-1/2" }, "is not I/N" },
		{ { "--set", "count" }, "wants NAME=VALUE" },
		{ { "--set", "nope=1" }, "unknown parameter 'nope'" },
		{ { "stray" }, "unexpected argument 'stray'" },
		{ { "--log-level", "loud" }, "not one of error, warning, info, debug" },
		{ { "--config", "/nonexistent/x.conf" }, "cannot read config file" },
		{ { "--peer", "h:1" }, "unknown option '--peer'" },	/* no peer channel */
		{ { "--in", "x" }, "unknown option '--in'" },		/* no input */
		{ { "--version=2" }, "takes no value" },
	};
	static const struct bad_case stream_cases[] = {
		{ { "--in", "-", "--in", "-" }, "--in - given twice" },
		{ { "--out", "fd:1", "--out", "fd:1" }, "--out fd:1 given twice" },
		{ { "--in", "fd:999" }, "cannot open input 'fd:999': descriptor is not open" },
		{ { "--in", "/nonexistent/in" }, "cannot open input '/nonexistent/in'" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct qkd_module m;
		char *argv[8] = { "qkd-unit" }, err[4096];
		int argc = 1;

		for (int j = 0; cases[i].argv[j]; j++)
			argv[argc++] = cases[i].argv[j];
		argv[argc] = NULL;
		ASSERT_EQ(-1, init_capture(&m, &plain, err, sizeof(err), argc, argv))
			TH_LOG("case %zu accepted", i);
		EXPECT_NE(NULL, strstr(err, cases[i].msg))
			TH_LOG("case %zu: want '%s' in '%s'", i, cases[i].msg, err);
		EXPECT_NE(NULL, strstr(err, "qkd-unit"));
	}
	for (size_t i = 0; i < sizeof(stream_cases) / sizeof(stream_cases[0]); i++) {
		struct qkd_module m;
		char *argv[8] = { "qkd-unit" }, err[4096];
		int argc = 1;

		for (int j = 0; stream_cases[i].argv[j]; j++)
			argv[argc++] = stream_cases[i].argv[j];
		argv[argc] = NULL;
		ASSERT_EQ(-1, init_capture(&m, &streams, err, sizeof(err), argc, argv))
			TH_LOG("stream case %zu accepted", i);
		EXPECT_NE(NULL, strstr(err, stream_cases[i].msg))
			TH_LOG("stream case %zu: want '%s' in '%s'", i, stream_cases[i].msg, err);
	}
}

TEST(config_file_errors_name_file_and_line)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{ "count = 5\n\ncount = abc\n", ":3: parameter 'count' 'abc' is not an integer" },
		{ "# c\ngarbage line\n", ":2: expected 'name = value', got 'garbage line'" },
		{ "nosuch = 1\n", ":1: unknown option or parameter 'nosuch'" },
		{ "config = other\n", ":1: 'config' is not allowed in a config file" },
		{ " = 5\n", ":1: missing name before '='" },
		{ "role = carol\n", "'carol' is neither alice nor bob" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct qkd_module m;
		char err[4096], want[256];
		char *conf = write_config(cases[i].text);

		ASSERT_EQ(-1, INIT(&m, &plain, err, "--config", conf));
		snprintf(want, sizeof(want), "%s", cases[i].msg);
		EXPECT_NE(NULL, strstr(err, want)) TH_LOG("case %zu: want '%s' in '%s'", i, want, err);
		if (cases[i].msg[0] == ':')
			EXPECT_NE(NULL, strstr(err, conf)) TH_LOG("file name missing: %s", err);
		unlink(conf);
	}
}

/* Run --help or --version in a child; returns its stdout. */
static char *run_child(const char *opt, int *status)
{
	static char out[65536];
	int fds[2];
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(fds))
		abort();
	pid = fork();
	if (pid == 0) {
		struct qkd_module m;

		dup2(fds[1], 1);
		qkd_module_init(&m, &plain, 2, (char *[]){ "qkd-unit", (char *)opt, NULL });
		_exit(99); /* init must have exited itself */
	}
	close(fds[1]);
	while ((n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = 0;
	close(fds[0]);
	waitpid(pid, status, 0);
	return out;
}

TEST(help_and_version)
{
	static const char *const sections[] = { "NAME\n", "SYNOPSIS\n", "DESCRIPTION\n",
		"OPTIONS\n", "PARAMETERS\n", "CONFIGURATION FILE\n", "SIGNALS\n", "EXIT STATUS\n",
		"EXAMPLES\n", "SEE ALSO\n" };
	int status;
	char *out = run_child("--help", &status);

	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		EXPECT_NE(NULL, strstr(out, sections[i])) TH_LOG("no %s", sections[i]);
	}
	EXPECT_NE(NULL, strstr(out, "qkd-unit - runtime unit test"));
	for (struct qkd_param *p = params; p->name; p++) {
		char opt[64];

		snprintf(opt, sizeof(opt), "--%s ", p->name);
		EXPECT_NE(NULL, strstr(out, opt)) TH_LOG("parameter %s missing", p->name);
	}
	EXPECT_NE(NULL, strstr(out, "range 1 to 100"));
	EXPECT_NE(NULL, strstr(out, "live"));
	EXPECT_NE(NULL, strstr(out, "qkd-unit --count 3"));
	/* No peer channel and no streams: their options are not offered. */
	EXPECT_EQ(NULL, strstr(out, "--peer"));
	EXPECT_EQ(NULL, strstr(out, "--in "));
	/* Lines fit a terminal. */
	for (char *l = out; *l;) {
		char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);

		EXPECT_LE(len, 80u) TH_LOG("long line: %.*s", (int)len, l);
		l += len + (e != NULL);
	}
	out = run_child("--version", &status);
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_EQ(0, strncmp(out, "qkd-unit (qkdpipe) ", 19));
}

static void write_frame(struct qkd_stream *s, uint64_t key, uint8_t state)
{
	struct qkd_frame *f = qkd_frame_new(16);

	f->key_id = key;
	f->state = state;
	f->qber_ppm = QKD_QBER_UNKNOWN;
	if (state == QKD_STATE_ABORTED) {
		f->abort_reason = QKD_ABORT_QBER;
	} else {
		f->bit_count = 64;
		f->payload_len = 8;
		memset(f->payload, (int)key, 8);
	}
	if (qkd_write_frame(s, f))
		abort();
	qkd_frame_free(f);
}

TEST(inputs_merge_outputs_split_aborted_pass_through)
{
	struct qkd_module m;
	struct qkd_stream *w[3];
	int in[3][2], out[2][2];
	char fds[5][16], err[4096], state[] = "/tmp/qkd-unit-state.XXXXXX";
	struct qkd_frame *f = NULL;
	uint64_t expect = 0, v;
	struct qkd_state *s;
	const char *e = NULL;
	FILE *fp;
	int r, sfd = mkstemp(state);

	close(sfd);
	unlink(state); /* absent: nothing to load; written at the end */
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, pipe(in[i]));
		w[i] = qkd_stream_open(in[i][1], QKD_STREAM_WRITE | QKD_STREAM_FALLBACK);
		snprintf(fds[i], sizeof(fds[i]), "fd:%d", in[i][0]);
	}
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, pipe(out[i]));
		snprintf(fds[3 + i], sizeof(fds[3 + i]), "fd:%d", out[i][1]);
	}
	/* Key id k on input k mod 3, each input sorted; key 4 arrives aborted. */
	for (uint64_t k = 0; k < 12; k++)
		write_frame(w[k % 3], k, k == 4 ? QKD_STATE_ABORTED : QKD_STATE_SIFTED);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(0, qkd_stream_close(w[i]));

	ASSERT_EQ(0, INIT(&m, &streams, err, "--in", fds[0], "--in", fds[1], "--in", fds[2],
			  "--out", fds[3], "--out", fds[4], "--state-file", state,
			  "--log-level", "error")) TH_LOG("%s", err);
	ASSERT_EQ(3u, m.n_in);
	ASSERT_EQ(2u, m.n_out);
	while ((r = qkd_module_read(&m, &f)) > 0) {
		if (expect == 4)
			expect++; /* passed through by the runtime */
		ASSERT_EQ(expect, f->key_id);
		ASSERT_EQ(QKD_STATE_SIFTED, f->state);
		if (f->key_id == 7) {
			ASSERT_EQ(0, qkd_module_abort_frame(&m, f, QKD_ABORT_EC));
		} else {
			ASSERT_EQ(0, qkd_module_write(&m, f));
		}
		expect++;
	}
	ASSERT_EQ(0, r);
	ASSERT_EQ(12u, expect);
	ASSERT_EQ(12u, m.stats.frames_in);
	ASSERT_EQ(12u, m.stats.frames_out);
	ASSERT_EQ(1u, m.stats.frames_aborted);
	ASSERT_EQ(11u * 64, m.stats.bits_in);
	ASSERT_EQ(10u * 64, m.stats.bits_out);
	qkd_module_count_disclosed(&m, 17);
	ASSERT_EQ(0, qkd_module_finish(&m));
	f = NULL; /* the runtime's frame, freed by finish */

	/* Output k mod 2, in order, aborted ones included. */
	for (int i = 0; i < 2; i++) {
		struct qkd_stream *rd = qkd_stream_open(out[i][0], QKD_STREAM_READ |
							 QKD_STREAM_FALLBACK);
		uint64_t k = (uint64_t)i;

		while ((r = qkd_read_frame(rd, &f)) > 0) {
			ASSERT_EQ(k, f->key_id);
			if (k == 4 || k == 7) {
				ASSERT_EQ(QKD_STATE_ABORTED, f->state);
				ASSERT_EQ(k == 4 ? QKD_ABORT_QBER : QKD_ABORT_EC, f->abort_reason);
			} else {
				ASSERT_EQ(QKD_STATE_SIFTED, f->state);
				ASSERT_EQ((uint8_t)k, f->payload[0]);
			}
			k += 2;
		}
		ASSERT_EQ(0, r);
		ASSERT_EQ((uint64_t)(12 + i), k);
		qkd_stream_close(rd);
	}
	qkd_frame_free(f);

	/* The state file holds the counters and brings them back. */
	s = qkd_state_load(state, "qkd-unit", "alice", &e);
	ASSERT_NE(NULL, s) TH_LOG("%s", e);
	ASSERT_EQ(0, qkd_state_get_u64(s, "frames-in", &v));
	ASSERT_EQ(12u, v);
	ASSERT_EQ(0, qkd_state_get_u64(s, "disclosed-bits", &v));
	ASSERT_EQ(17u, v);
	qkd_state_free(s);
	ASSERT_EQ(0, INIT(&m, &plain, err, "--state-file", state, "--log-level", "error"))
		TH_LOG("%s", err);
	ASSERT_NE(NULL, qkd_module_saved_state(&m));
	ASSERT_EQ(12u, m.stats.frames_in);
	ASSERT_EQ(17u, m.stats.disclosed_bits);
	ASSERT_EQ(0, qkd_module_finish(&m));

	/* A damaged state file is refused, with the reason. */
	fp = fopen(state, "r+");
	ASSERT_NE(NULL, fp);
	fseek(fp, 40, SEEK_SET);
	fputc('#', fp);
	fclose(fp);
	ASSERT_EQ(-1, INIT(&m, &plain, err, "--state-file", state));
	EXPECT_NE(NULL, strstr(err, "checksum mismatch")) TH_LOG("%s", err);
	unlink(state);
}

/* "in"/"out" lines of a config file add streams; --in on the command line replaces them. */
TEST(config_streams_and_command_line_replacement)
{
	struct qkd_module m;
	int p1[2], p2[2], p3[2];
	char text[256], fd3[16], err[4096], *conf;

	ASSERT_EQ(0, pipe(p1));
	ASSERT_EQ(0, pipe(p2));
	ASSERT_EQ(0, pipe(p3));
	snprintf(text, sizeof(text), "in = fd:%d\nin = fd:%d\nout = fd:%d\nlog-level = error\n",
		 p1[0], p2[0], p3[1]);
	conf = write_config(text);
	ASSERT_EQ(0, INIT(&m, &streams, err, "--config", conf)) TH_LOG("%s", err);
	ASSERT_EQ(2u, m.n_in);
	ASSERT_EQ(1u, m.n_out);
	ASSERT_EQ(0, qkd_module_finish(&m)); /* closes p1[0], p2[0], p3[1] */

	ASSERT_EQ(0, pipe(p1));
	ASSERT_EQ(0, pipe(p2));
	ASSERT_EQ(0, pipe(p3));
	snprintf(text, sizeof(text), "in = fd:%d\nin = fd:%d\nout = fd:%d\nlog-level = error\n",
		 p1[0], p2[0], p3[1]);
	unlink(conf);
	conf = write_config(text);
	snprintf(fd3, sizeof(fd3), "fd:%d", p3[0]);
	/* fd:p3[0] is a read end: only the command line's input is used. */
	ASSERT_EQ(0, INIT(&m, &streams, err, "--config", conf, "--in", fd3)) TH_LOG("%s", err);
	ASSERT_EQ(1u, m.n_in);
	ASSERT_EQ(1u, m.n_out);
	ASSERT_EQ(0, qkd_module_finish(&m));
	/* The config file's inputs were never opened: still ours to close. */
	ASSERT_EQ(0, close(p1[0]));
	ASSERT_EQ(0, close(p2[0]));
	unlink(conf);
}

struct later {
	struct qkd_module *m;
	int delay_ms;
	int action;		/* 0: SIGTERM to the process, 1: resume (state running) */
};

static void *do_later(void *arg)
{
	struct later *l = arg;

	usleep((useconds_t)l->delay_ms * 1000);
	if (l->action == 0) {
		kill(getpid(), SIGTERM);
	} else {
		pthread_mutex_lock(&l->m->lock);
		l->m->state = QKD_MOD_RUNNING;
		pthread_mutex_unlock(&l->m->lock);
	}
	return NULL;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * A module blocked waiting for its next input frame returns 0 promptly on
 * SIGTERM, over io_uring and over the fallback; and a paused module does not
 * take a frame that is waiting until it is resumed.
 */
TEST(blocked_read_ends_on_sigterm_and_pause_holds_frames)
{
	for (int transport = 0; transport < 2; transport++) {
		struct qkd_module m;
		struct qkd_frame *f = NULL;
		struct later l;
		struct timespec t0;
		pthread_t th;
		int in[2], out[2];
		char fin[16], fout[16], err[4096];

		setenv("QKD_TRANSPORT", transport ? "fallback" : "uring", 1);
		ASSERT_EQ(0, pipe(in));
		ASSERT_EQ(0, pipe(out));
		snprintf(fin, sizeof(fin), "fd:%d", in[0]);
		snprintf(fout, sizeof(fout), "fd:%d", out[1]);
		ASSERT_EQ(0, INIT(&m, &streams, err, "--in", fin, "--out", fout,
				  "--log-level", "error")) TH_LOG("%s", err);

		/* Paused with a frame waiting: nothing is read until resumed. */
		{
			struct qkd_stream *w = qkd_stream_open(in[1], QKD_STREAM_WRITE |
							       QKD_STREAM_FALLBACK);

			write_frame(w, 1, QKD_STATE_SIFTED);
			ASSERT_EQ(0, qkd_stream_flush(w));
			/* keep the writer open: no EOF */
			in[1] = dup(in[1]);
			qkd_stream_close(w);
		}
		m.state = QKD_MOD_PAUSED;
		l = (struct later){ &m, 300, 1 };
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ASSERT_EQ(0, pthread_create(&th, NULL, do_later, &l));
		ASSERT_EQ(1, qkd_module_read(&m, &f));
		ASSERT_GE(ms_since(&t0), 280);
		ASSERT_EQ(1u, f->key_id);
		pthread_join(th, NULL);

		/* Now blocked on an empty pipe: SIGTERM ends the wait. */
		l = (struct later){ &m, 200, 0 };
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ASSERT_EQ(0, pthread_create(&th, NULL, do_later, &l));
		ASSERT_EQ(0, qkd_module_read(&m, &f));
		ASSERT_LT(ms_since(&t0), 2000);
		ASSERT_TRUE(qkd_module_stopping(&m));
		pthread_join(th, NULL);
		ASSERT_EQ(0, qkd_module_finish(&m));
		close(in[1]);
		close(out[0]);
	}
}

TEST(stopping_and_state_names)
{
	struct qkd_module m;
	char err[1024];

	ASSERT_EQ(0, INIT(&m, &plain, err, "--log-level", "error"));
	ASSERT_FALSE(qkd_module_stopping(&m));
	/* SIGTERM goes to the runtime's signal thread, not the default action. */
	ASSERT_EQ(0, kill(getpid(), SIGTERM));
	for (int i = 0; i < 200 && !qkd_module_stopping(&m); i++)
		usleep(5000);
	ASSERT_TRUE(qkd_module_stopping(&m));
	ASSERT_EQ((int)QKD_MOD_TERMINATING, (int)m.state);
	ASSERT_STREQ("terminating", qkd_module_state_name(m.state));
	ASSERT_STREQ("paused", qkd_module_state_name(QKD_MOD_PAUSED));
	ASSERT_EQ(0, qkd_module_finish(&m));
}

TEST_HARNESS_MAIN
