// SPDX-License-Identifier: GPL-2.0
/*
 * qpm: the QKD Protocol Manager daemon. Loads pipeline definitions, starts
 * and supervises their modules and serves the CoAP admin interface.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libxml/parser.h>
#include "qpm.h"

#ifndef QKD_BINDIR
#define QKD_BINDIR "/usr/local/bin"
#endif
#ifndef QKD_DATADIR
#define QKD_DATADIR "/usr/local/share/qkdpipe"
#endif

struct qpm qpm;
static int log_level = QPM_INFO;

static void usage(FILE *f)
{
	fprintf(f,
"NAME\n"
"    qpm - QKD Protocol Manager: runs and supervises qkdpipe pipelines\n"
"\n"
"SYNOPSIS\n"
"    qpm [--listen [coaps://]ADDR[:PORT]]... [--psk-file FILE] [--load FILE.xml]... [--start]\n"
"        [--run-dir DIR] [--module-dir DIR]... [--schema FILE] [--log-level LEVEL]\n"
"\n"
"DESCRIPTION\n"
"    qpm loads pipeline definitions (XML, validated against pipeline.xsd), starts\n"
"    the modules of a pipeline (Alice's and/or Bob's side, with their instance\n"
"    counts, peer addresses, key pools and parameters), connects neighbouring\n"
"    stages with pipes and supervises the processes. Each module serves CoAP on\n"
"    an ephemeral loopback port and registers with qpm. A module that dies makes\n"
"    qpm restart the pipeline with exponential back-off (every module resumes\n"
"    from its state file, key ids are never reused); a module that exits with\n"
"    a usage error or never registers is reported and its pipeline stopped.\n"
"\n"
"    Administration is CoAP (RFC 7252) on UDP port 5683 of the loopback\n"
"    interface: use qpmctl(1) or any CoAP client, for example\n"
"        coap-client-notls -m post -t 41 -f link.xml coap://127.0.0.1/pipelines\n"
"        coap-client-notls -m put -e start coap://127.0.0.1/pipelines/link/state\n"
"        coap-client-notls coap://127.0.0.1/modules\n"
"    Documentation/control-plane.md lists every resource.\n"
"\n"
"OPTIONS\n"
"    -l, --listen [coap://|coaps://]ADDR[:PORT]\n"
"        Serve the admin interface there (repeatable; default 127.0.0.1:5683,\n"
"        IPv6 as [ADDR]:PORT). A non-loopback address, or coaps://, is served\n"
"        only over DTLS-PSK (default port 5684) and needs --psk-file. Modules\n"
"        register over the first plain loopback endpoint (127.0.0.1:5683 is\n"
"        added when none is given).\n"
"    -k, --psk-file FILE\n"
"        Pre-shared key for DTLS: first line the identity, second line the key\n"
"        (the same strings coap-client takes with -u and -k). The file must not\n"
"        be readable by group or others.\n"
"    -L, --load FILE\n"
"        Load a pipeline definition at start-up (repeatable). Errors name the\n"
"        file and line; qpm then exits with status 2.\n"
"    -s, --start\n"
"        Start the pipelines given with --load right away.\n"
"    -r, --run-dir DIR\n"
"        Where module logs and state files go, one directory per pipeline\n"
"        (default $XDG_RUNTIME_DIR/qpm or /tmp/qpm-UID). A pipeline's\n"
"        state-dir attribute overrides it.\n"
"    -m, --module-dir DIR\n"
"        Look for module executables (qkd-*) there (repeatable). Default: the\n"
"        directory qpm itself lives in, then " QKD_BINDIR ".\n"
"    -x, --schema FILE\n"
"        The pipeline schema (default: qpm/pipeline.xsd of the source tree qpm\n"
"        was built in if present, else " QKD_DATADIR "/pipeline.xsd).\n"
"    -v, --log-level LEVEL\n"
"        error, warning, info (default) or debug. Logs go to stderr.\n"
"    -h, --help     Show this help and exit.\n"
"    -V, --version  Show the version and exit.\n"
"\n"
"SIGNALS\n"
"    SIGTERM, SIGINT: every module gets SIGTERM (it finishes its frame and saves\n"
"    its state), qpm waits up to 5 s, then exits.\n"
"\n"
"EXIT STATUS\n"
"    0 after a signal, 1 on a runtime error, 2 on a usage or configuration error.\n"
"\n"
"SEE ALSO\n"
"    qpmctl(1), coap-client(1), Documentation/control-plane.md\n");
}

uint64_t qpm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void qpm_log(int level, const char *fmt, ...)
{
	static const char *const lv[] = { "error", "warning", "info", "debug" };
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%02d:%02d:%02d.%03ld qpm %s: ", tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, lv[level & 3]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* libcoap writes debug output to stdout by default; keep everything on stderr. */
static void coap_log_stderr(coap_log_t level, const char *msg)
{
	fprintf(stderr, "libcoap: %s", msg);
}

static void on_signal(int sig)
{
	qpm.quit = sig;
}

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent,
				   const coap_pdu_t *recv, const coap_mid_t mid)
{
	qpm_stats_response(s, recv);
	return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t r,
		    const coap_mid_t mid)
{
	qpm_session_gone(s);
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static char psk_identity[128];
static uint8_t psk_key[128];
static size_t psk_key_len;

static int read_psk(const char *path)
{
	struct stat st;
	char line[256];
	FILE *f = fopen(path, "re");
	int r = -1;

	if (!f) {
		fprintf(stderr, "qpm: --psk-file %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) || (st.st_mode & 077)) {
		fprintf(stderr, "qpm: --psk-file %s: readable by group or others; chmod 600 it\n",
			path);
		goto out;
	}
	if (!fgets(psk_identity, sizeof(psk_identity), f) || !fgets(line, sizeof(line), f)) {
		fprintf(stderr, "qpm: --psk-file %s: want two lines, identity and key\n", path);
		goto out;
	}
	psk_identity[strcspn(psk_identity, "\r\n")] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	psk_key_len = strlen(line);
	if (!psk_identity[0] || psk_key_len < 16 || psk_key_len > sizeof(psk_key)) {
		fprintf(stderr, "qpm: --psk-file %s: identity must not be empty and the key "
			"16 to 128 characters\n", path);
		goto out;
	}
	memcpy(psk_key, line, psk_key_len);
	r = 0;
out:
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return r;
}

/* Refuse identities other than ours: the key is only for that identity. */
static const coap_bin_const_t *check_identity(coap_bin_const_t *id, coap_session_t *s,
					      void *arg)
{
	static coap_bin_const_t key;

	if (!id || id->length != strlen(psk_identity) ||
	    memcmp(id->s, psk_identity, id->length)) {
		qpm_log(QPM_WARN, "DTLS client with an unknown PSK identity refused");
		return NULL;
	}
	key.s = psk_key;
	key.length = psk_key_len;
	return &key;
}

static int add_endpoint(const char *spec, bool *have_loopback)
{
	char host[128], port[16];
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai;
	coap_address_t a;
	bool lo, dtls;

	const char *hp = spec;
	bool force_dtls = false;

	/* coaps:// asks for DTLS even on loopback; coap:// is the default. */
	if (!strncmp(spec, "coaps://", 8)) {
		force_dtls = true;
		hp = spec + 8;
	} else if (!strncmp(spec, "coap://", 7)) {
		hp = spec + 7;
	}
	if (qkd_split_hostport(hp, "5683", host, sizeof(host), port, sizeof(port))) {
		fprintf(stderr, "qpm: --listen %s: want [coap://|coaps://]ADDR[:PORT]\n", spec);
		return -1;
	}
	if (getaddrinfo(host, NULL, &hints, &ai) || !ai) {
		fprintf(stderr, "qpm: --listen %s: cannot resolve %s\n", spec, host);
		return -1;
	}
	lo = is_loopback(ai->ai_addr);
	/* Remote administration only ever over DTLS-PSK. */
	dtls = !lo || force_dtls;
	/* A plain "ADDR" without port on a DTLS endpoint means the coaps port. */
	if (dtls && !strchr(hp[0] == '[' ? strchr(hp, ']') : hp, ':'))
		strcpy(port, "5684");
	coap_address_init(&a);
	memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
	a.size = ai->ai_addrlen;
	if (ai->ai_family == AF_INET)
		a.addr.sin.sin_port = htons((uint16_t)atoi(port));
	else
		a.addr.sin6.sin6_port = htons((uint16_t)atoi(port));
	freeaddrinfo(ai);
	if (dtls) {
		coap_dtls_spsk_t sp = { .version = COAP_DTLS_SPSK_SETUP_VERSION };

		if (!psk_key_len) {
			fprintf(stderr, "qpm: --listen %s: %s needs DTLS-PSK; give --psk-file\n",
				spec, lo ? "coaps" : "an address other than loopback");
			return -1;
		}
		if (!coap_dtls_is_supported()) {
			fprintf(stderr, "qpm: this libcoap has no DTLS support\n");
			return -1;
		}
		sp.validate_id_call_back = check_identity;
		sp.psk_info.key.s = psk_key;
		sp.psk_info.key.length = psk_key_len;
		if (!coap_context_set_psk2(qpm.ctx, &sp)) {
			fprintf(stderr, "qpm: cannot set up DTLS-PSK\n");
			return -1;
		}
	}
	if (!coap_new_endpoint(qpm.ctx, &a, dtls ? COAP_PROTO_DTLS : COAP_PROTO_UDP)) {
		fprintf(stderr, "qpm: cannot listen on %s port %s (%s)\n", host, port,
			dtls ? "DTLS" : "UDP");
		return -1;
	}
	qpm_log(QPM_INFO, "admin interface on %s port %s (%s)", host, port,
		dtls ? "DTLS-PSK" : "UDP, loopback");
	if (lo && !dtls && !*have_loopback) {
		*have_loopback = true;
		snprintf(qpm.host, sizeof(qpm.host), "%s%s%s", strchr(host, ':') ? "[" : "", host,
			 strchr(host, ':') ? "]" : "");
		qpm.port = (uint16_t)atoi(port);
	}
	return 0;
}

static char *exe_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	char *slash;

	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return strdup(buf);
}

static char *default_schema(void)
{
	char buf[PATH_MAX];
	char *d = exe_dir();

	/* Build tree: build/bin/qpm -> qpm/pipeline.xsd two levels up. */
	if (d) {
		snprintf(buf, sizeof(buf), "%s/../../qpm/pipeline.xsd", d);
		free(d);
		if (!access(buf, R_OK))
			return strdup(buf);
	}
	return strdup(QKD_DATADIR "/pipeline.xsd");
}

static int load_file(const char *path)
{
	struct qkd_buf err = { 0 };
	struct qpm_pipeline *pl, **pp;
	char *buf;
	long n;
	FILE *f = fopen(path, "re");

	if (!f) {
		fprintf(stderr, "qpm: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	if (n < 0 || n > (long)QKD_COAP_MAX_BODY) {
		fprintf(stderr, "qpm: %s: not a file of at most %u bytes\n", path,
			QKD_COAP_MAX_BODY);
		fclose(f);
		return -1;
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "qpm: %s: read error\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	pl = qpm_pipeline_load(buf, (size_t)n, path, &err);
	if (!pl) {
		fprintf(stderr, "%s", err.s ? err.s : "invalid pipeline\n");
		qkd_buf_free(&err);
		free(buf);
		return -1;
	}
	for (pp = &qpm.pipelines; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, pl->name)) {
			struct qpm_pipeline *old = *pp;

			/* --load wins over the kept copy of the same pipeline. */
			if (old->starts == 0 && strstr(old->source, "/pipelines/")) {
				*pp = old->next;
				qpm_pipeline_free(old);
				break;
			}
			fprintf(stderr, "qpm: %s: pipeline %s loaded twice\n", path, pl->name);
			qpm_pipeline_free(pl);
			free(buf);
			return -1;
		}
	for (pp = &qpm.pipelines; *pp; pp = &(*pp)->next)
		;
	*pp = pl;
	qpm_pipeline_restore(pl);
	if (qpm_persist_save(pl->name, buf, (size_t)n))
		qpm_log(QPM_WARN, "pipeline %s: cannot keep its definition", pl->name);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "psk-file", required_argument, NULL, 'k' },
		{ "load", required_argument, NULL, 'L' },
		{ "start", no_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "module-dir", required_argument, NULL, 'm' },
		{ "schema", required_argument, NULL, 'x' },
		{ "log-level", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen[8], *loads[32];
	unsigned n_listen = 0, n_loads = 0;
	bool start = false, have_lo = false;
	const char *psk = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	char buf[PATH_MAX];
	int c;

	while ((c = getopt_long(argc, argv, "l:k:L:sr:m:x:v:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (n_listen == 8) {
				fprintf(stderr, "qpm: at most 8 --listen\n");
				return 2;
			}
			listen[n_listen++] = optarg;
			break;
		case 'k': psk = optarg; break;
		case 'L':
			if (n_loads == 32) {
				fprintf(stderr, "qpm: at most 32 --load\n");
				return 2;
			}
			loads[n_loads++] = optarg;
			break;
		case 's': start = true; break;
		case 'r': qpm.run_dir = strdup(optarg); break;
		case 'm':
			if (qpm.n_module_dirs < 6)
				qpm.module_dirs[qpm.n_module_dirs++] = strdup(optarg);
			break;
		case 'x': qpm.schema = strdup(optarg); break;
		case 'v':
			if (!strcmp(optarg, "error")) log_level = QPM_ERR;
			else if (!strcmp(optarg, "warning")) log_level = QPM_WARN;
			else if (!strcmp(optarg, "info")) log_level = QPM_INFO;
			else if (!strcmp(optarg, "debug")) log_level = QPM_DEBUG;
			else {
				fprintf(stderr, "qpm: --log-level: error, warning, info or debug\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("qpm (qkdpipe) 1\n"); return 0;
		default:
			fprintf(stderr, "Try 'qpm --help' for more information.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qpm: unexpected argument '%s'\nTry 'qpm --help'.\n", argv[optind]);
		return 2;
	}
	qpm.start_ms = qpm_now_ms();
	if (!qpm.schema)
		qpm.schema = default_schema();
	{
		char *d = exe_dir();

		if (d)
			qpm.module_dirs[qpm.n_module_dirs++] = d;
		qpm.module_dirs[qpm.n_module_dirs++] = strdup(QKD_BINDIR);
	}
	if (!qpm.run_dir) {
		const char *x = getenv("XDG_RUNTIME_DIR");

		if (x && *x)
			snprintf(buf, sizeof(buf), "%s/qpm", x);
		else
			snprintf(buf, sizeof(buf), "/tmp/qpm-%u", (unsigned)getuid());
		qpm.run_dir = strdup(buf);
	}
	if (mkdir(qpm.run_dir, 0700) && errno != EEXIST) {
		fprintf(stderr, "qpm: cannot create run directory %s: %s\n", qpm.run_dir,
			strerror(errno));
		return 2;
	}
	if (psk && read_psk(psk))
		return 2;
	xmlInitParser();
	qpm_persist_load_all();
	for (unsigned i = 0; i < n_loads; i++)
		if (load_file(loads[i]))
			return 2;

	qkd_coap_startup();
	coap_set_log_handler(coap_log_stderr);
	if (log_level >= QPM_DEBUG)
		coap_set_log_level(LOG_WARNING);
	qpm.ctx = coap_new_context(NULL);
	if (!qpm.ctx) {
		fprintf(stderr, "qpm: cannot create the CoAP context\n");
		return 1;
	}
	coap_context_set_block_mode(qpm.ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
	coap_register_response_handler(qpm.ctx, on_response);
	coap_register_nack_handler(qpm.ctx, on_nack);
	if (!n_listen)
		listen[n_listen++] = "127.0.0.1:5683";
	for (unsigned i = 0; i < n_listen; i++)
		if (add_endpoint(listen[i], &have_lo))
			return 2;
	if (!have_lo && add_endpoint("127.0.0.1:5683", &have_lo))
		return 2;
	if (qpm_admin_init(qpm.ctx)) {
		fprintf(stderr, "qpm: out of memory\n");
		return 1;
	}

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	qpm_log(QPM_INFO, "modules register at %s:%u; run directory %s", qpm.host, qpm.port,
		qpm.run_dir);
	if (start)
		for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next) {
			char err[256];

			if (qpm_pipeline_start(pl, err, sizeof(err)))
				qpm_log(QPM_ERR, "%s", err);
		}
	while (!qpm.quit) {
		coap_io_process(qpm.ctx, 100);
		qpm_tick();
	}
	qpm_log(QPM_INFO, "shutting down (signal %d)", qpm.quit);
	qpm_shutdown();
	coap_free_context(qpm.ctx);
	coap_cleanup();
	explicit_bzero(psk_key, sizeof(psk_key));
	while (qpm.pipelines) {
		struct qpm_pipeline *pl = qpm.pipelines;

		qpm.pipelines = pl->next;
		qpm_pipeline_free(pl);
	}
	xmlCleanupParser();
	return 0;
}
