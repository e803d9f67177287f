// SPDX-License-Identifier: GPL-2.0
/*
 * qkdctl: administer the qkd_keystore kernel key store over generic netlink.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/qksc.h"

static const char usage_text[] =
"NAME\n"
"    qkdctl - administer the QKD kernel key store (qkd_keystore.ko)\n"
"\n"
"SYNOPSIS\n"
"    qkdctl link add NAME [max-keys N] [max-bytes N] [low-watermark N] [uid N] [gid N]\n"
"    qkdctl link del NAME\n"
"    qkdctl link show [NAME]\n"
"    qkdctl key push LINK [FILE]\n"
"    qkdctl key fetch LINK [ID]\n"
"    qkdctl key list LINK\n"
"    qkdctl stats\n"
"    qkdctl monitor [count N]\n"
"    qkdctl xfrm bind LINK src ADDR dst ADDR spi-base N reqid N [OPTIONS]\n"
"    qkdctl xfrm unbind LINK ID\n"
"    qkdctl xfrm show LINK\n"
"    qkdctl -h | --help\n"
"\n"
"DESCRIPTION\n"
"    qkdctl talks to the \"qkd_keystore\" generic-netlink family of the qkd_keystore\n"
"    kernel module. The store is per network namespace: every command acts on the\n"
"    namespace qkdctl runs in (use 'ip netns exec NS qkdctl ...'). Keys are grouped\n"
"    by link, a named peer relation; both peers store the same key under the same\n"
"    64-bit key id. Every key is handed out exactly once, by whichever consumer asks\n"
"    first: 'key fetch', a keyring read (keyctl) or the key pump /dev/qkd_pump.\n"
"    Commands that change the store or return key bytes need CAP_NET_ADMIN.\n"
"\n"
"COMMANDS\n"
"    link add NAME [OPTIONS]\n"
"        Create a link. NAME is 1-31 characters of [A-Za-z0-9._-]. Options:\n"
"        max-keys N (keys stored at most, 1..1048576), max-bytes N (key bytes\n"
"        stored at most), low-watermark N (send a low-watermark event when fewer\n"
"        than N keys are available, 0 never), uid N (owner of the link's keyring\n"
"        keys: may find and read them), gid N (group that may as well). Defaults\n"
"        come from the module parameters (modinfo qkd_keystore).\n"
"    link del NAME\n"
"        Remove a link; its keys are wiped.\n"
"    link show [NAME]\n"
"        Show one link or all: limits, available and reserved keys, stored bytes,\n"
"        keyring serial number and counters.\n"
"    key push LINK [FILE]\n"
"        Push keys read from FILE (or standard input, also when FILE is '-'): one key\n"
"        per line, 'ID HEX' with a decimal key id and 1-4096 bytes in hexadecimal.\n"
"        Empty lines and lines starting with '#' are skipped. Stops at the first\n"
"        refused key and reports it.\n"
"    key fetch LINK [ID]\n"
"        Take key ID (or the lowest available one) out of the store and print it as\n"
"        'ID HEX'. The key is consumed: nobody else gets it.\n"
"    key list LINK\n"
"        List stored key ids, lengths and states (available, reserved); no bytes.\n"
"    stats\n"
"        Namespace-wide counters: links, keys pushed, delivered, wiped, bytes.\n"
"    monitor [count N]\n"
"        Print events (new key, low watermark, link added/removed) as they come,\n"
"        one per line; stop after N events when given.\n"
"    xfrm bind LINK src ADDR dst ADDR spi-base N reqid N [OPTIONS]\n"
"        Key ESP SAs (rfc4106(gcm(aes)), 256-bit keys) from the link inside the\n"
"        kernel: key material never reaches userspace. src is this side, dst the\n"
"        peer; run the mirror command on the peer with the same spi-base and\n"
"        reqid. Each generation takes the link's lowest available key of at least\n"
"        72 bytes (one 36-byte key+salt per direction; the side with the lower\n"
"        address sends with the first half); the SPI of key id k is\n"
"        spi-base + (k & 0xffff). Both peers walk through the same key ids with no\n"
"        signalling. Policies are yours: 'ip xfrm policy ... tmpl proto esp reqid N\n"
"        mode transport'. Options: mode transport|tunnel (default transport),\n"
"        icv 64|96|128 (default 128), bytes N, packets N, seconds N (rekey budget\n"
"        of the outbound SA; the hard limit is twice that), grace N (seconds an\n"
"        old inbound SA stays once the peer uses a newer one, default 5), key-id N\n"
"        (first key id to use). Prints the binding id.\n"
"    xfrm unbind LINK ID\n"
"        Remove a binding: its SAs are deleted and their keys wiped.\n"
"    xfrm show LINK\n"
"        Bindings of the link: template, current key id and SPI, next key id,\n"
"        generations, what the outbound SA has carried and its age, last error,\n"
"        and what is left of the rekey budget ('rekey-in').\n"
"\n"
"EXIT STATUS\n"
"    0 success, 1 the kernel refused or the module is not loaded, 2 usage error.\n"
"\n"
"EXAMPLES\n"
"    qkdctl link add alice-bob max-keys 4096 low-watermark 64 gid 120\n"
"    printf '1 00112233445566778899aabbccddeeff\\n' | qkdctl key push alice-bob\n"
"    keyctl search $(qkdctl link show alice-bob | sed -n 's/.*keyring \\([0-9]*\\).*/\\1/p') \\\n"
"        qkd alice-bob:1\n"
"    qkdctl key fetch alice-bob\n"
"\n"
"SEE ALSO\n"
"    keyctl(1), Documentation/keystore.md\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "qkdctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'qkdctl --help'.\n");
	return 2;
}

static int kerr(struct qksc *c, const char *what, int err)
{
	const char *msg = qksc_error(c);

	if (msg && *msg && strcmp(msg, strerror(-err)))
		fprintf(stderr, "qkdctl: %s: %s (%s)\n", what, msg, strerror(-err));
	else
		fprintf(stderr, "qkdctl: %s: %s\n", what, strerror(-err));
	return 1;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int cmd_link_add(struct qksc *c, int argc, char **argv)
{
	struct qksc_link_cfg cfg = { .low_watermark = -1, .uid = -1, .gid = -1 };
	uint64_t v;
	int i, err;

	if (argc < 1)
		return usage_error("link add: missing %s", "NAME");
	cfg.name = argv[0];
	for (i = 1; i < argc; i += 2) {
		if (i + 1 >= argc || parse_u64(argv[i + 1], UINT64_MAX, &v))
			return usage_error("link add: option %s needs a number", argv[i]);
		if (!strcmp(argv[i], "max-keys") && v <= UINT32_MAX && v)
			cfg.max_keys = (uint32_t)v;
		else if (!strcmp(argv[i], "max-bytes") && v)
			cfg.max_bytes = v;
		else if (!strcmp(argv[i], "low-watermark") && v <= UINT32_MAX)
			cfg.low_watermark = (int64_t)v;
		else if (!strcmp(argv[i], "uid") && v < UINT32_MAX)
			cfg.uid = (int64_t)v;
		else if (!strcmp(argv[i], "gid") && v < UINT32_MAX)
			cfg.gid = (int64_t)v;
		else
			return usage_error("link add: bad option or value '%s'", argv[i]);
	}
	err = qksc_link_add(c, &cfg);
	return err ? kerr(c, "link add", err) : 0;
}

static void print_link(const struct qksc_link_info *li)
{
	printf("%s: keys %u reserved %u bytes %" PRIu64 " max-keys %u max-bytes %" PRIu64
	       " low-watermark %u uid %u", li->name, li->keys_avail, li->keys_reserved,
	       li->bytes_stored, li->max_keys, li->max_bytes, li->low_watermark, li->uid);
	if (li->gid >= 0)
		printf(" gid %" PRId64, li->gid);
	printf(" keyring %d\n    pushed %" PRIu64 " delivered %" PRIu64 " wiped %" PRIu64
	       " bytes-pushed %" PRIu64 " bytes-delivered %" PRIu64 "\n",
	       li->keyring, li->stats.pushed, li->stats.delivered, li->stats.wiped,
	       li->stats.bytes_pushed, li->stats.bytes_delivered);
}

static int print_link_cb(const struct qksc_link_info *li, void *arg)
{
	print_link(li);
	return 0;
}

static int cmd_link(struct qksc *c, int argc, char **argv)
{
	struct qksc_link_info li;
	int err;

	if (argc < 1)
		return usage_error("link: missing %s", "add, del or show");
	if (!strcmp(argv[0], "add"))
		return cmd_link_add(c, argc - 1, argv + 1);
	if (!strcmp(argv[0], "del")) {
		if (argc != 2)
			return usage_error("link del: give exactly one %s", "NAME");
		err = qksc_link_del(c, argv[1]);
		return err ? kerr(c, "link del", err) : 0;
	}
	if (!strcmp(argv[0], "show")) {
		if (argc > 2)
			return usage_error("link show: at most one %s", "NAME");
		if (argc == 2) {
			err = qksc_link_get(c, argv[1], &li);
			if (!err)
				print_link(&li);
		} else {
			err = qksc_link_dump(c, print_link_cb, NULL);
		}
		return err ? kerr(c, "link show", err) : 0;
	}
	return usage_error("link: unknown subcommand '%s'", argv[0]);
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* "ID HEX" -> id, bytes. Returns the byte count or -1. */
static long parse_key_line(char *line, uint64_t *id, unsigned char *key)
{
	char *p = line, *idstr, *hex;
	size_t n = 0;
	int hi, lo;

	while (*p == ' ' || *p == '\t')
		p++;
	idstr = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (!*p)
		return -1;
	*p++ = 0;
	if (parse_u64(idstr, UINT64_MAX, id))
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	hex = p;
	while (hex[0] && hex[0] != '\n' && hex[0] != '\r' && hex[0] != ' ') {
		hi = hexval((unsigned char)hex[0]);
		lo = hex[1] ? hexval((unsigned char)hex[1]) : -1;
		if (hi < 0 || lo < 0 || n >= QKD_KEY_MAX_BYTES)
			return -1;
		key[n++] = (unsigned char)(hi << 4 | lo);
		hex += 2;
	}
	return n ? (long)n : -1;
}

static int cmd_key_push(struct qksc *c, const char *link, const char *path)
{
	static char iobuf[1 << 16];
	unsigned char key[QKD_KEY_MAX_BYTES];
	char *line = NULL, what[96];
	size_t cap = 0;
	unsigned long lineno = 0, pushed = 0;
	uint64_t id;
	long n;
	int err = 0, rc = 0;
	FILE *f = stdin;

	if (path && strcmp(path, "-")) {
		f = fopen(path, "r");
		if (!f) {
			fprintf(stderr, "qkdctl: key push: %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	/* Our own stdio buffer, so the hex text can be wiped afterwards. */
	setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
	while (getline(&line, &cap, f) > 0) {
		lineno++;
		if (line[0] == '#' || line[strspn(line, " \t\r\n")] == 0)
			continue;
		n = parse_key_line(line, &id, key);
		if (n < 0) {
			fprintf(stderr, "qkdctl: key push: line %lu: expected 'ID HEX' with a "
				"decimal id and 1-4096 bytes of hex\n", lineno);
			rc = 2;
			break;
		}
		err = qksc_key_push(c, link, id, key, (size_t)n);
		explicit_bzero(key, sizeof(key));
		if (err) {
			snprintf(what, sizeof(what), "key push %s %" PRIu64, link, id);
			rc = kerr(c, what, err);
			break;
		}
		pushed++;
	}
	if (line) {
		explicit_bzero(line, cap);
		free(line);
	}
	if (f != stdin)
		fclose(f);
	else
		setvbuf(f, NULL, _IONBF, 0);
	explicit_bzero(iobuf, sizeof(iobuf));
	if (!rc && !pushed) {
		fprintf(stderr, "qkdctl: key push: no key in the input\n");
		rc = 2;
	}
	return rc;
}

static int cmd_key_fetch(struct qksc *c, const char *link, const char *idstr)
{
	unsigned char key[QKD_KEY_MAX_BYTES];
	uint64_t id, got;
	size_t len, i;
	int err;

	if (idstr && parse_u64(idstr, UINT64_MAX, &id))
		return usage_error("key fetch: bad key id '%s'", idstr);
	err = qksc_key_fetch(c, link, idstr ? &id : NULL, &got, key, sizeof(key), &len);
	if (err)
		return kerr(c, "key fetch", err);
	printf("%" PRIu64 " ", got);
	for (i = 0; i < len; i++)
		printf("%02x", key[i]);
	printf("\n");
	fflush(stdout);
	explicit_bzero(key, sizeof(key));
	return 0;
}

static const char *state_name(int s)
{
	switch (s) {
	case QKD_KEY_AVAILABLE: return "available";
	case QKD_KEY_RESERVED: return "reserved";
	case QKD_KEY_CONSUMED: return "consumed";
	default: return "unknown";
	}
}

static int print_key_cb(uint64_t id, uint32_t len, int state, void *arg)
{
	printf("%" PRIu64 " %u %s\n", id, len, state_name(state));
	return 0;
}

static int cmd_key(struct qksc *c, int argc, char **argv)
{
	int err;

	if (argc < 2)
		return usage_error("key: need a subcommand and a %s", "LINK");
	if (!strcmp(argv[0], "push")) {
		if (argc > 3)
			return usage_error("key push: at most one %s", "FILE");
		return cmd_key_push(c, argv[1], argc == 3 ? argv[2] : NULL);
	}
	if (!strcmp(argv[0], "fetch")) {
		if (argc > 3)
			return usage_error("key fetch: at most one %s", "ID");
		return cmd_key_fetch(c, argv[1], argc == 3 ? argv[2] : NULL);
	}
	if (!strcmp(argv[0], "list")) {
		if (argc != 2)
			return usage_error("key list: give exactly one %s", "LINK");
		err = qksc_key_list(c, argv[1], print_key_cb, NULL);
		return err ? kerr(c, "key list", err) : 0;
	}
	return usage_error("key: unknown subcommand '%s'", argv[0]);
}

static int print_xfrm(const struct qksc_xfrm_info *x, void *arg)
{
	printf("%u: src %s dst %s mode %s spi-base %#x reqid %u icv %u bytes %" PRIu64
	       " packets %" PRIu64 " seconds %" PRIu64 " grace %u\n", x->id, x->src, x->dst,
	       x->tunnel ? "tunnel" : "transport", x->spi_base, x->reqid, x->icv_bits,
	       x->life_bytes, x->life_packets, x->life_seconds, x->grace);
	if (x->has_key)
		printf("    key-id %" PRIu64 " spi %#x", x->key_id, x->spi);
	else
		printf("    no key installed");
	if (x->has_next)
		printf(" next-key-id %" PRIu64, x->next_key_id);
	printf(" generations %" PRIu64 " used-bytes %" PRIu64 " used-packets %" PRIu64
	       " age %" PRIu64 "s", x->generations, x->used_bytes, x->used_packets, x->age);
	if (x->error)
		printf(" error %s", strerror(-x->error));
	printf("\n");
	/* What is left of the rekey budget of the current outbound SA. */
	if (x->has_key && (x->life_bytes || x->life_packets || x->life_seconds)) {
		printf("    rekey-in");
		if (x->life_bytes)
			printf(" bytes %" PRIu64, x->life_bytes > x->used_bytes ?
			       x->life_bytes - x->used_bytes : 0);
		if (x->life_packets)
			printf(" packets %" PRIu64, x->life_packets > x->used_packets ?
			       x->life_packets - x->used_packets : 0);
		if (x->life_seconds)
			printf(" seconds %" PRIu64, x->life_seconds > x->age ?
			       x->life_seconds - x->age : 0);
		printf("\n");
	}
	return 0;
}

static int cmd_xfrm(struct qksc *c, int argc, char **argv)
{
	struct qksc_xfrm_cfg cfg = { .grace = -1, .first_key_id = -1 };
	uint64_t v;
	uint32_t id;
	int i, err;

	if (argc < 2)
		return usage_error("xfrm: need a subcommand and a %s", "LINK");
	if (!strcmp(argv[0], "show")) {
		if (argc != 2)
			return usage_error("xfrm show: give exactly one %s", "LINK");
		err = qksc_xfrm_dump(c, argv[1], print_xfrm, NULL);
		return err ? kerr(c, "xfrm show", err) : 0;
	}
	if (!strcmp(argv[0], "unbind")) {
		if (argc != 3 || parse_u64(argv[2], UINT32_MAX, &v))
			return usage_error("xfrm unbind: give a LINK and a binding %s", "ID");
		err = qksc_xfrm_unbind(c, argv[1], (uint32_t)v);
		return err ? kerr(c, "xfrm unbind", err) : 0;
	}
	if (strcmp(argv[0], "bind"))
		return usage_error("xfrm: unknown subcommand '%s'", argv[0]);
	cfg.link = argv[1];
	for (i = 2; i < argc; i += 2) {
		const char *k = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val)
			return usage_error("xfrm bind: option %s needs a value", k);
		if (!strcmp(k, "src")) {
			cfg.src = val;
			continue;
		}
		if (!strcmp(k, "dst")) {
			cfg.dst = val;
			continue;
		}
		if (!strcmp(k, "mode")) {
			if (strcmp(val, "transport") && strcmp(val, "tunnel"))
				return usage_error("xfrm bind: mode is transport or tunnel, not '%s'",
						   val);
			cfg.tunnel = !strcmp(val, "tunnel");
			continue;
		}
		if (parse_u64(val, UINT64_MAX, &v))
			return usage_error("xfrm bind: option %s needs a number", k);
		if (!strcmp(k, "spi-base") && v <= UINT32_MAX)
			cfg.spi_base = (uint32_t)v;
		else if (!strcmp(k, "reqid") && v <= UINT32_MAX)
			cfg.reqid = (uint32_t)v;
		else if (!strcmp(k, "icv") && v <= 128)
			cfg.icv_bits = (uint32_t)v;
		else if (!strcmp(k, "bytes"))
			cfg.life_bytes = v;
		else if (!strcmp(k, "packets"))
			cfg.life_packets = v;
		else if (!strcmp(k, "seconds"))
			cfg.life_seconds = v;
		else if (!strcmp(k, "grace") && v <= 3600)
			cfg.grace = (int64_t)v;
		else if (!strcmp(k, "key-id") && v < INT64_MAX)
			cfg.first_key_id = (int64_t)v;
		else
			return usage_error("xfrm bind: bad option or value '%s'", k);
	}
	if (!cfg.src || !cfg.dst || !cfg.spi_base)
		return usage_error("xfrm bind: src, dst and spi-base are %s", "required");
	err = qksc_xfrm_bind(c, &cfg, &id);
	if (err)
		return kerr(c, "xfrm bind", err);
	printf("%u\n", id);
	return 0;
}

static int cmd_stats(struct qksc *c)
{
	struct qksc_stats st;
	uint32_t links;
	int err = qksc_stats_get(c, &st, &links);

	if (err)
		return kerr(c, "stats", err);
	printf("links %u\npushed %" PRIu64 "\ndelivered %" PRIu64 "\nwiped %" PRIu64
	       "\nbytes-pushed %" PRIu64 "\nbytes-delivered %" PRIu64 "\n",
	       links, st.pushed, st.delivered, st.wiped, st.bytes_pushed,
	       st.bytes_delivered);
	return 0;
}

static int print_event(const struct qksc_event *ev, void *arg)
{
	uint64_t *left = arg;

	switch (ev->cmd) {
	case QKD_CMD_EVENT_NEW_KEY:
		printf("new-key %s %" PRIu64 " len %u available %u\n", ev->link,
		       ev->key_id, ev->key_len, ev->keys_avail);
		break;
	case QKD_CMD_EVENT_LOW_WATERMARK:
		printf("low-watermark %s available %u watermark %u\n", ev->link,
		       ev->keys_avail, ev->low_watermark);
		break;
	case QKD_CMD_EVENT_LINK:
		printf("link-%s %s\n", ev->link_added ? "added" : "removed", ev->link);
		break;
	default:
		printf("event %d %s\n", ev->cmd, ev->link);
		break;
	}
	fflush(stdout);
	return *left && --*left == 0;
}

static int cmd_monitor(struct qksc *c, int argc, char **argv)
{
	uint64_t count = 0;
	int err;

	if (argc == 2 && !strcmp(argv[0], "count")) {
		if (parse_u64(argv[1], UINT64_MAX, &count) || !count)
			return usage_error("monitor: bad count '%s'", argv[1]);
	} else if (argc) {
		return usage_error("monitor: unexpected '%s'", argv[0]);
	}
	err = qksc_monitor(c, print_event, &count);
	return err ? kerr(c, "monitor", err) : 0;
}

int main(int argc, char **argv)
{
	struct qksc *c;
	int err, rc;

	if (argc < 2)
		return usage_error("missing %s", "command");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(argv[1], "link") && strcmp(argv[1], "key") && strcmp(argv[1], "xfrm") &&
	    strcmp(argv[1], "stats") && strcmp(argv[1], "monitor"))
		return usage_error("unknown command '%s'", argv[1]);
	signal(SIGPIPE, SIG_IGN);
	err = qksc_open(&c);
	if (err) {
		fprintf(stderr, "qkdctl: %s\n", c ? qksc_error(c) : strerror(-err));
		qksc_close(c);
		return 1;
	}
	if (!strcmp(argv[1], "link"))
		rc = cmd_link(c, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "key"))
		rc = cmd_key(c, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "xfrm"))
		rc = cmd_xfrm(c, argc - 2, argv + 2);
	else if (!strcmp(argv[1], "stats"))
		rc = argc == 2 ? cmd_stats(c) : usage_error("stats: unexpected '%s'", argv[2]);
	else
		rc = cmd_monitor(c, argc - 2, argv + 2);
	qksc_close(c);
	return rc;
}
