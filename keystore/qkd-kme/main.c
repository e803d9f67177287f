// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-kme: an ETSI GS QKD 014 V1.1.1 key-management entity on qkd_keystore.ko.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "server.h"

static const char usage[] =
"Usage: qkd-kme [-c FILE] [-v] [--check]\n"
"\n"
"Serve QKD keys from the kernel key store (qkd_keystore.ko) to SAEs over the\n"
"ETSI GS QKD 014 V1.1.1 REST API, HTTPS with mutual TLS:\n"
"  GET       /api/v1/keys/{slave_SAE_ID}/status\n"
"  GET|POST  /api/v1/keys/{slave_SAE_ID}/enc_keys   (on the master SAE's KME)\n"
"  GET|POST  /api/v1/keys/{master_SAE_ID}/dec_keys  (on the slave SAE's KME)\n"
"The caller's SAE ID is read from its client certificate (CN, or a DNS or URI\n"
"subjectAltName), never from the URL: an SAE gets only keys of its own pair.\n"
"enc_keys consumes keys from the pair's link on the master side; dec_keys on\n"
"the slave side returns the same bytes for the same key_ID, once. The key_ID\n"
"is derived from (link, key id, size), so the two KMEs never talk.\n"
"\n"
"Options:\n"
"  -c, --config FILE  configuration (default /etc/qkd-kme/qkd-kme.conf)\n"
"  -v, --verbose      log every request (method, path, SAE, status; never keys)\n"
"      --check        check the configuration, certificates and key source, exit\n"
"  -h, --help         this text\n"
"\n"
"Configuration: one \"keyword value\" per line, # comments:\n"
"  kme_id ID                 this KME (source_KME_ID)                 [required]\n"
"  listen ADDR:PORT          address to serve on  [127.0.0.1:8443; [::]:443 for v6]\n"
"  cert FILE, key FILE       this KME's certificate and key (PEM)     [required]\n"
"  ca FILE                   CA of the SAE certificates (PEM)\n"
"  verify_client yes|no      verify SAE certificates against ca [yes]; \"no\" is\n"
"                            refused unless listen is a loopback address\n"
"  sae_identity cn|san-dns|san-uri   where the SAE ID is in the certificate [cn]\n"
"  source netlink|file:PATH  the kernel store [netlink]; or a file of\n"
"                            \"LINK KEY_ID HEX\" lines (tests, bench, labs)\n"
"  pair LINK MASTER_SAE SLAVE_SAE PEER_KME master|slave [KEY_BITS]\n"
"                            one SAE pair on one link of the store; \"master\": this\n"
"                            KME serves enc_keys to MASTER_SAE, \"slave\": dec_keys\n"
"                            to SLAVE_SAE; KEY_BITS: stored key size [256]\n"
"  max_key_per_request N [128], min_key_size BITS [8], max_key_size BITS [32768]\n"
"  threads N [2], connection_timeout SECONDS [10], connection_limit N [256]\n"
"\n"
"Errors are ETSI Error objects {\"message\", \"details\"}: 400 bad request (malformed\n"
"JSON, unknown SAE ID, number or size out of range, unknown key_ID, unsupported\n"
"extension_mandatory or additional_slave_SAE_IDs), 401 the certificate's SAE may\n"
"not use that pair, 503 the store has too few keys or is unreachable.\n"
"Key material is never logged and is wiped once the response is sent.\n"
"See Documentation/etsi-014.md.\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "check", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *path = "/etc/qkd-kme/qkd-kme.conf";
	struct kme_config cfg;
	struct kme_server *srv = NULL;
	struct kme_ctx ctx = { .cfg = &cfg };
	int verbose = 0, check = 0, o, sig;
	char err[512];
	sigset_t set;

	while ((o = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			path = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'C':
			check = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs("qkd-kme: see qkd-kme --help\n", stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fputs("qkd-kme: unexpected argument; see qkd-kme --help\n", stderr);
		return 2;
	}
	kme_config_defaults(&cfg);
	if (kme_config_load(&cfg, path, err, sizeof(err)) ||
	    kme_config_check(&cfg, err, sizeof(err))) {
		fprintf(stderr, "qkd-kme: %s\n", err);
		return 1;
	}
	if (!strcmp(cfg.source, "netlink") ? keysrc_netlink_open(&ctx.src, err, sizeof(err)) :
	    keysrc_file_open(&ctx.src, cfg.source + 5, err, sizeof(err))) {
		fprintf(stderr, "qkd-kme: %s\n", err);
		return 1;
	}
	/* Block the stop signals before MHD starts its threads: they inherit it. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (kme_server_start(&srv, &ctx, verbose, err, sizeof(err))) {
		fprintf(stderr, "qkd-kme: %s\n", err);
		keysrc_close(ctx.src);
		return 1;
	}
	if (check) {
		printf("qkd-kme: %s: configuration, certificates and key source are usable\n", path);
	} else {
		fprintf(stderr, "qkd-kme: %s serving %zu SAE pair(s) on https://%s%s%s:%u/ "
			"(client certificates %s)\n", cfg.kme_id, cfg.npairs,
			strchr(cfg.listen_addr, ':') ? "[" : "", cfg.listen_addr,
			strchr(cfg.listen_addr, ':') ? "]" : "", cfg.port,
			cfg.verify_client ? "verified" : "NOT verified");
		sigwait(&set, &sig);
	}
	kme_server_stop(srv);
	keysrc_close(ctx.src);
	return 0;
}
