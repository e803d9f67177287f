// SPDX-License-Identifier: GPL-2.0
/*
 * qpmctl: the QPM's command-line client. Everything it does is a plain CoAP
 * request that coap-client could make as well; it adds a readable table.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <coap3/coap.h>
#include "qkd/service-util.h"

static char host[160] = "127.0.0.1", port[16] = "5683";
static struct qkd_coap_psk psk, *use_psk;
static char psk_id[128];
static uint8_t psk_key[128];
static int timeout_ms = 3000;

static void usage(FILE *f)
{
	fprintf(f,
"NAME\n"
"    qpmctl - administer a QKD Protocol Manager (qpm) over CoAP\n"
"\n"
"SYNOPSIS\n"
"    qpmctl [-s HOST[:PORT]] [-k PSKFILE] [-t MS] COMMAND [ARGS]\n"
"\n"
"DESCRIPTION\n"
"    Sends one CoAP request per command to qpm (default 127.0.0.1:5683) and\n"
"    prints the answer: JSON as it comes, or a table for status. Every command\n"
"    maps to a resource documented in Documentation/control-plane.md, so the\n"
"    same can be done with coap-client-notls.\n"
"\n"
"COMMANDS\n"
"    status [-w SECONDS]\n"
"        Table of pipelines and their module processes: pid, state, restarts,\n"
"        frames, key and bit rates (last second), QBER, disclosed bits. With\n"
"        -w it refreshes every SECONDS until interrupted.\n"
"    list                        Pipelines as JSON.\n"
"    load FILE.xml               Load (or replace a stopped) pipeline definition.\n"
"    start|stop|hibernate|resume PIPELINE\n"
"                                Change a pipeline's state. stop and hibernate\n"
"                                cut cleanly between frames; resume restarts a\n"
"                                hibernated pipeline from its state files.\n"
"    unload PIPELINE             Forget a stopped pipeline.\n"
"    show PIPELINE               One pipeline with its modules, as JSON.\n"
"    modules                     Every module process, as JSON.\n"
"    param MODULE [NAME [VALUE]] Module parameters through qpm: all, one, or set\n"
"                                one (live parameters only; from the next frame).\n"
"                                MODULE is PIPELINE/ROLE/NAME/INSTANCE.\n"
"    stats MODULE                The module's own statistics.\n"
"    wait PIPELINE STATE [SECONDS]\n"
"                                Wait until the pipeline is in STATE (default\n"
"                                30 s); exit 1 on timeout or when it failed.\n"
"\n"
"OPTIONS\n"
"    -s, --server HOST[:PORT]  qpm's address (IPv6 as [ADDR]:PORT).\n"
"    -k, --psk-file FILE       Use DTLS-PSK (coaps, default port 5684); FILE holds\n"
"                              the identity on the first line, the key on the second.\n"
"    -t, --timeout MS          Per-request timeout (default 3000).\n"
"    -h, --help                Show this help and exit.\n"
"\n"
"EXIT STATUS\n"
"    0 success, 1 error reported by qpm or no answer, 2 usage error.\n"
"\n"
"EXAMPLES\n"
"    qpmctl load qpm/examples/sim-sift-estimate.xml\n"
"    qpmctl start sim3 && qpmctl wait sim3 running\n"
"    qpmctl param sim3/alice/estimate/0 sample-ratio 0.2\n"
"    qpmctl status -w 1\n");
}

static int request(int method, const char *path, const void *body, size_t len, unsigned cf,
		   struct qkd_coap_reply *r)
{
	int ret = qkd_coap_request(host, port, method, path, body, len, cf, QKD_CF_NONE,
				   timeout_ms, use_psk, r);

	if (ret) {
		fprintf(stderr, "qpmctl: %s:%s: %s\n", host, port,
			ret == -ETIMEDOUT || ret == -ECONNREFUSED || ret == -EIO
			? "no answer (is qpm running there? with -k: is the key right?)"
			: strerror(-ret));
		return -1;
	}
	return 0;
}

/* Print the answer; 0 for 2.xx, 1 otherwise (with qpm's diagnostic). */
static int report(struct qkd_coap_reply *r, bool print_body)
{
	int ok = r->code / 100 == 2;

	if (!ok)
		fprintf(stderr, "qpmctl: %d.%02d %s\n", r->code / 100, r->code % 100,
			r->body ? r->body : "");
	else if (print_body && r->len)
		printf("%s\n", r->body);
	qkd_coap_reply_free(r);
	return ok ? 0 : 1;
}

static int simple(int method, const char *path, const char *body, unsigned cf, bool print)
{
	struct qkd_coap_reply r;

	if (request(method, path, body, body ? strlen(body) : 0, cf, &r))
		return 1;
	return report(&r, print);
}

static int cmd_load(const char *file)
{
	struct qkd_coap_reply r;
	char path[256], *buf;
	const char *base = strrchr(file, '/');
	long n;
	FILE *f = fopen(file, "re");
	int ret;

	if (!f) {
		fprintf(stderr, "qpmctl: %s: %s\n", file, strerror(errno));
		return 1;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	if (n <= 0 || n > (long)QKD_COAP_MAX_BODY) {
		fprintf(stderr, "qpmctl: %s: empty or larger than %u bytes\n", file,
			QKD_COAP_MAX_BODY);
		fclose(f);
		return 1;
	}
	buf = malloc((size_t)n);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "qpmctl: %s: read error\n", file);
		free(buf);
		fclose(f);
		return 1;
	}
	fclose(f);
	/* The file name travels along so qpm's messages can say FILE:LINE. */
	snprintf(path, sizeof(path), "pipelines?file=%s", base ? base + 1 : file);
	ret = request(COAP_REQUEST_POST, path, buf, (size_t)n, QKD_CF_XML, &r);
	free(buf);
	return ret ? 1 : report(&r, true);
}

static void fmt_rate(char *out, size_t len, struct qkd_json s, const char *key, double div)
{
	double v;

	if (qkd_json_get_num(s, key, &v))
		snprintf(out, len, "%.1f", v / div);
	else
		snprintf(out, len, "-");
}

static int print_status(void)
{
	struct qkd_coap_reply r;
	struct qkd_json pls, pl;

	if (request(COAP_REQUEST_GET, "pipelines", NULL, 0, QKD_CF_NONE, &r))
		return 1;
	if (r.code != 205 || qkd_json_parse(r.body, r.len, &pls))
		return report(&r, false) ? 1 : 1;
	if (!qkd_json_index(pls, 0, &pl))
		printf("no pipelines loaded\n");
	for (size_t i = 0; qkd_json_index(pls, i, &pl); i++) {
		struct qkd_coap_reply d;
		struct qkd_json det, mods, m;
		char name[80], state[24], err[300] = "", path[128];
		double restarts = 0;

		qkd_json_get_str(pl, "name", name, sizeof(name));
		qkd_json_get_str(pl, "state", state, sizeof(state));
		qkd_json_get_num(pl, "restarts", &restarts);
		qkd_json_get_str(pl, "error", err, sizeof(err));
		printf("%s%-20s %-12s restarts %-4.0f", i ? "\n" : "", name, state, restarts);
		for (int s = 0; s < 2; s++) {
			char key[32];
			double v;

			snprintf(key, sizeof(key), "%s_bits_per_s", s ? "bob" : "alice");
			if (qkd_json_get_num(pl, key, &v))
				printf(" %s %.1f kbit/s", s ? "bob" : "alice", v / 1000);
		}
		printf("%s%s\n", err[0] ? "  " : "", err);
		snprintf(path, sizeof(path), "pipelines/%s", name);
		if (request(COAP_REQUEST_GET, path, NULL, 0, QKD_CF_NONE, &d))
			continue;
		if (d.code == 205 && !qkd_json_parse(d.body, d.len, &det) &&
		    qkd_json_member(det, "modules", &mods) && qkd_json_index(mods, 0, &m)) {
			printf("  %-28s %7s %-11s %3s %9s %8s %9s %7s %10s\n", "MODULE", "PID",
			       "STATE", "RST", "FRAMES", "KEYS/S", "KBIT/S", "QBER%", "DISCLOSED");
			for (size_t k = 0; qkd_json_index(mods, k, &m); k++) {
				struct qkd_json st;
				char id[160], mst[24], keys[24] = "-", kbit[24] = "-",
				     qber[24] = "-", fr[24] = "-", disc[24] = "-";
				double pid = 0, rst = 0, v;

				qkd_json_get_str(m, "id", id, sizeof(id));
				qkd_json_get_str(m, "state", mst, sizeof(mst));
				qkd_json_get_num(m, "pid", &pid);
				qkd_json_get_num(m, "restarts", &rst);
				if (qkd_json_member(m, "stats", &st) && *st.p == '{') {
					fmt_rate(keys, sizeof(keys), st, "keys_per_s_recent", 1);
					fmt_rate(kbit, sizeof(kbit), st, "bits_per_s_recent", 1000);
					if (qkd_json_get_num(st, "qber", &v))
						snprintf(qber, sizeof(qber), "%.2f", v * 100);
					if (qkd_json_get_num(st, "frames_out", &v))
						snprintf(fr, sizeof(fr), "%.0f", v);
					if (qkd_json_get_num(st, "disclosed_bits", &v))
						snprintf(disc, sizeof(disc), "%.0f", v);
				}
				printf("  %-28s %7.0f %-11s %3.0f %9s %8s %9s %7s %10s\n",
				       id + strlen(name) + 1, pid, mst, rst, fr, keys, kbit, qber,
				       disc);
			}
		}
		qkd_coap_reply_free(&d);
	}
	qkd_coap_reply_free(&r);
	return 0;
}

static volatile sig_atomic_t stop;
static void on_int(int sig)
{
	stop = 1;
}

static int cmd_status(int argc, char **argv)
{
	double every = 0;
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "w:")) != -1) {
		if (c != 'w' || (every = atof(optarg)) <= 0) {
			fprintf(stderr, "qpmctl status [-w SECONDS]\n");
			return 2;
		}
	}
	if (every <= 0)
		return print_status();
	signal(SIGINT, on_int);
	while (!stop) {
		time_t t = time(NULL);

		/* Clear the screen and home the cursor, like watch(1). */
		printf("\033[H\033[2J%s", ctime(&t));
		fflush(stdout);
		print_status();
		fflush(stdout);
		usleep((useconds_t)(every * 1e6));
	}
	return 0;
}

static int cmd_wait(const char *name, const char *want, double secs)
{
	char path[128];
	struct timespec t0, t;

	snprintf(path, sizeof(path), "pipelines/%s/state", name);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct qkd_coap_reply r;
		struct qkd_json j;
		char st[32] = "";

		if (request(COAP_REQUEST_GET, path, NULL, 0, QKD_CF_NONE, &r))
			return 1;
		if (r.code != 205)
			return report(&r, false);
		if (!qkd_json_parse(r.body, r.len, &j))
			qkd_json_get_str(j, "state", st, sizeof(st));
		qkd_coap_reply_free(&r);
		if (!strcmp(st, want))
			return 0;
		if (!strcmp(st, "failed")) {
			fprintf(stderr, "qpmctl: pipeline %s failed\n", name);
			snprintf(path, sizeof(path), "pipelines/%s", name);
			simple(COAP_REQUEST_GET, path, NULL, QKD_CF_NONE, true);
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > secs) {
			fprintf(stderr, "qpmctl: pipeline %s is %s, not %s, after %.0f s\n", name,
				st, want, secs);
			return 1;
		}
		usleep(100000);
	}
}

static int read_psk(const char *file)
{
	FILE *f = fopen(file, "re");
	char line[256];

	if (!f || !fgets(psk_id, sizeof(psk_id), f) || !fgets(line, sizeof(line), f)) {
		fprintf(stderr, "qpmctl: %s: want two lines, identity and key\n", file);
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	psk_id[strcspn(psk_id, "\r\n")] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	psk.identity = psk_id;
	psk.key_len = strlen(line) < sizeof(psk_key) ? strlen(line) : sizeof(psk_key);
	memcpy(psk_key, line, psk.key_len);
	explicit_bzero(line, sizeof(line));
	psk.key = psk_key;
	use_psk = &psk;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "psk-file", required_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *pskfile = NULL, *cmd;
	char path[512];
	int c;

	while ((c = getopt_long(argc, argv, "+s:k:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': server = optarg; break;
		case 'k': pskfile = optarg; break;
		case 't': timeout_ms = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "Try 'qpmctl --help'.\n");
			return 2;
		}
	}
	if (pskfile && read_psk(pskfile))
		return 2;
	if (server && qkd_split_hostport(server, use_psk ? "5684" : "5683", host, sizeof(host),
					 port, sizeof(port))) {
		fprintf(stderr, "qpmctl: --server %s: want HOST[:PORT]\n", server);
		return 2;
	}
	if (!server && use_psk)
		strcpy(port, "5684");
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
#define NEED(n) do { if (argc != (n) + 1) { \
		fprintf(stderr, "qpmctl %s: wrong number of arguments; see --help\n", cmd); \
		return 2; } } while (0)
	if (!strcmp(cmd, "status"))
		return cmd_status(argc, argv);
	if (!strcmp(cmd, "list")) {
		NEED(0);
		return simple(COAP_REQUEST_GET, "pipelines", NULL, QKD_CF_NONE, true);
	}
	if (!strcmp(cmd, "modules")) {
		NEED(0);
		return simple(COAP_REQUEST_GET, "modules", NULL, QKD_CF_NONE, true);
	}
	if (!strcmp(cmd, "load")) {
		NEED(1);
		return cmd_load(argv[1]);
	}
	if (!strcmp(cmd, "start") || !strcmp(cmd, "stop") || !strcmp(cmd, "hibernate") ||
	    !strcmp(cmd, "resume")) {
		NEED(1);
		snprintf(path, sizeof(path), "pipelines/%s/state", argv[1]);
		return simple(COAP_REQUEST_PUT, path, cmd, QKD_CF_TEXT, false);
	}
	if (!strcmp(cmd, "unload") || !strcmp(cmd, "show")) {
		NEED(1);
		snprintf(path, sizeof(path), "pipelines/%s", argv[1]);
		return simple(cmd[0] == 'u' ? COAP_REQUEST_DELETE : COAP_REQUEST_GET, path, NULL,
			      QKD_CF_NONE, cmd[0] == 's');
	}
	if (!strcmp(cmd, "stats")) {
		NEED(1);
		snprintf(path, sizeof(path), "modules/%s/stats", argv[1]);
		return simple(COAP_REQUEST_GET, path, NULL, QKD_CF_NONE, true);
	}
	if (!strcmp(cmd, "param")) {
		if (argc < 2 || argc > 4) {
			fprintf(stderr, "qpmctl param MODULE [NAME [VALUE]]\n");
			return 2;
		}
		snprintf(path, sizeof(path), "modules/%s/params%s%s", argv[1], argc > 2 ? "/" : "",
			 argc > 2 ? argv[2] : "");
		if (argc == 4)
			return simple(COAP_REQUEST_PUT, path, argv[3], QKD_CF_TEXT, false);
		return simple(COAP_REQUEST_GET, path, NULL, QKD_CF_NONE, true);
	}
	if (!strcmp(cmd, "wait")) {
		if (argc != 3 && argc != 4) {
			fprintf(stderr, "qpmctl wait PIPELINE STATE [SECONDS]\n");
			return 2;
		}
		return cmd_wait(argv[1], argv[2], argc == 4 ? atof(argv[3]) : 30);
	}
	fprintf(stderr, "qpmctl: unknown command '%s'; see --help\n", cmd);
	return 2;
}
