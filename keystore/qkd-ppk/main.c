// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-ppk: feed QKD keys from the kernel key store into strongSwan's charon
 * as RFC 8784 post-quantum preshared keys (PPKs), over VICI.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "charon.h"
#include "keyring.h"

static const char usage[] =
"NAME\n"
"    qkd-ppk - QKD keys into strongSwan as RFC 8784 post-quantum preshared keys\n"
"\n"
"SYNOPSIS\n"
"    qkd-ppk [OPTIONS] load LINK [KEY-ID]\n"
"    qkd-ppk [OPTIONS] list [--all]\n"
"    qkd-ppk [OPTIONS] unload PPK-ID...\n"
"    qkd-ppk [OPTIONS] keys LINK\n"
"    qkd-ppk [OPTIONS] sas [CONNECTION]\n"
"    qkd-ppk [OPTIONS] version\n"
"    qkd-ppk -h | --help\n"
"\n"
"DESCRIPTION\n"
"    qkd-ppk hands keys of the QKD kernel key store (qkd_keystore.ko) to\n"
"    strongSwan's IKE daemon charon as PPKs (RFC 8784), speaking charon's VICI\n"
"    protocol on its unix socket. An IKEv2 connection with 'ppk_id' and\n"
"    'ppk_required = yes' in swanctl.conf then mixes the QKD key into its keys.\n"
"\n"
"    The PPK id of key KEY-ID of link LINK is \"PREFIX:LINK:KEY-ID\" (prefix \"qkd\"\n"
"    unless --prefix), e.g. \"qkd:alice-bob:42\". Both peers store the same key\n"
"    under the same id, so both derive the same PPK id and PPK. The PPK id is\n"
"    the secret's owner identity in charon and, unless --untagged, its VICI\n"
"    unique id, by which it is listed and unloaded.\n"
"\n"
"    Keys are read from the keyring: type \"qkd\", description \"LINK:KEY-ID\", in\n"
"    the link's keyring \"qkd:LINK\", which the key store names for the caller's\n"
"    network namespace (run qkd-ppk in the namespace of the store, e.g. with\n"
"    'ip netns exec'). Reading a key consumes it in the store.\n"
"\n"
"COMMANDS\n"
"    load LINK [KEY-ID]\n"
"        Take key KEY-ID of LINK, or without KEY-ID the lowest available id, load\n"
"        it into charon as a PPK and print its PPK id on standard output (for\n"
"        'ppk_id' in swanctl.conf). charon is asked first; the key is only taken\n"
"        when charon answers. The key is then loaded into charon and nowhere\n"
"        else; if charon refuses it, it is lost, and qkd-ppk says so. Both peers\n"
"        must load the same KEY-ID: name it unless nothing else consumes keys of\n"
"        the link on one side only.\n"
"    list [--all]\n"
"        Print the unique ids of the shared secrets charon holds from VICI\n"
"        (get-shared), only those starting with \"PREFIX:\" unless --all.\n"
"    unload PPK-ID...\n"
"        Remove PPKs from charon (unload-shared), e.g. once the IKE_SAs that used\n"
"        them are up: a PPK only matters when an IKE_SA is created.\n"
"    keys LINK\n"
"        Print the key ids LINK holds in the store, one per line (no key bytes).\n"
"    sas [CONNECTION]\n"
"        Print charon's IKE_SAs (list-sas), of CONNECTION only if given, one per\n"
"        line: 'NAME #ID STATE LOCAL-ID...REMOTE-ID ppk=yes|no', where ppk=yes\n"
"        says that a PPK was mixed into the SA's keys.\n"
"    version\n"
"        Print charon's name and version: a check that the socket answers.\n"
"\n"
"OPTIONS\n"
"    -s, --socket PATH\n"
"        charon's VICI socket (charon.plugins.vici.socket). Default:\n"
"        $QKD_PPK_SOCKET if set, else " VICI_DEFAULT_SOCKET ".\n"
"    -t, --timeout MS\n"
"        Give up when charon has not answered within MS milliseconds (1-3600000,\n"
"        default 10000).\n"
"    -p, --prefix STR\n"
"        PPK id prefix, non-empty, without ':' (default \"qkd\").\n"
"    --untagged\n"
"        Load without a VICI unique id. 'swanctl --load-creds' (and --load-all)\n"
"        unloads every tagged secret missing from its files, PPKs too; an\n"
"        untagged PPK survives it but cannot be listed or unloaded one by one\n"
"        (only clear-creds removes it). Alternatively run swanctl first.\n"
"    --key-type TYPE\n"
"        Key type of the keys (default \"" PPK_DEFAULT_KEY_TYPE "\"). Keys of types that\n"
"        a read does not consume (such as \"user\") are invalidated after charon\n"
"        accepted them.\n"
"    --keyring SERIAL\n"
"        Use this keyring instead of asking the key store for the link's one.\n"
"    --keyring-desc TEMPLATE\n"
"        Description of a link's keyring, searched for with request_key(2) when\n"
"        the key store module is not loaded (default \"" PPK_DEFAULT_KEYRING_DESC "\").\n"
"    --key-desc TEMPLATE\n"
"        Description of a key (default \"" PPK_DEFAULT_KEY_DESC "\"). In templates %l\n"
"        stands for the link, %k for the key id (decimal), %% for '%'.\n"
"    -v, --verbose\n"
"        Report each step on standard error (never key bytes).\n"
"    -h, --help\n"
"        Show this text.\n"
"\n"
"SECURITY\n"
"    Key bytes are never printed or logged. The buffers that hold them are\n"
"    locked in memory where the limits allow and wiped after use; the process\n"
"    is not dumpable. charon keeps a PPK in memory until it is unloaded.\n"
"    Reading a link's keys needs the link's uid or gid; talking to charon needs\n"
"    access to its socket (root by default).\n"
"\n"
"ENVIRONMENT\n"
"    QKD_PPK_SOCKET   default for --socket\n"
"\n"
"EXIT STATUS\n"
"    0 success; 1 usage error; 2 charon unreachable, refused the request or sent\n"
"    a malformed reply; 3 no such link or key, or not permitted to read it;\n"
"    4 other errors.\n"
"\n"
"EXAMPLES\n"
"    qkd-ppk load alice-bob 42      # on both peers -> qkd:alice-bob:42\n"
"    ip netns exec alice qkd-ppk -s /var/lib/qkd/alice.vici load ab\n"
"    qkd-ppk sas qkd                # qkd #1 ESTABLISHED alice...bob ppk=yes\n"
"    qkd-ppk unload qkd:alice-bob:42\n"
"\n"
"SEE ALSO\n"
"    qkdctl(8), swanctl(8), swanctl.conf(5), strongswan.conf(5), RFC 8784,\n"
"    Documentation/strongswan.md\n";

enum { EX_OK = 0, EX_USAGE = 1, EX_CHARON = 2, EX_NOKEY = 3, EX_OTHER = 4 };

struct opts {
	const char *socket;
	int timeout_ms;
	const char *prefix;
	bool untagged;
	bool verbose;
	bool all;
	struct ppk_store st;
};

static uint8_t keybuf[PPK_KEY_MAX];

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

/* The key store's rule for link names; it also keeps PPK ids unambiguous. */
static bool link_name_ok(const char *link)
{
	size_t n = strlen(link);

	if (n < 1 || n > 31 || strspn(link, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					 "0123456789._-") != n) {
		fprintf(stderr, "qkd-ppk: bad link name '%s' (1-31 of A-Z a-z 0-9 . _ -)\n", link);
		return false;
	}
	return true;
}

static int open_charon(const struct opts *o, struct vici_conn *c)
{
	int ret = vici_connect(c, o->socket, o->timeout_ms);

	if (!ret)
		return 0;
	switch (ret) {
	case -ENOENT:
		fprintf(stderr, "qkd-ppk: charon's VICI socket %s does not exist: is charon running "
			"with the vici plugin, and is this its socket (--socket)?\n", o->socket);
		break;
	case -ECONNREFUSED:
		fprintf(stderr, "qkd-ppk: nobody listens on %s: charon is not running "
			"(stale socket)\n", o->socket);
		break;
	default:
		fprintf(stderr, "qkd-ppk: cannot connect to %s: %s\n", o->socket, strerror(-ret));
	}
	return EX_CHARON;
}

static int charon_error(const char *what, int ret, const char *msg)
{
	if (ret == -EREMOTEIO)
		fprintf(stderr, "qkd-ppk: charon refused %s: %s\n", what, msg);
	else if (ret == -EOPNOTSUPP)
		fprintf(stderr, "qkd-ppk: charon does not know the command %s (too old?)\n", what);
	else if (ret == -ETIMEDOUT)
		fprintf(stderr, "qkd-ppk: charon did not answer %s in time\n", what);
	else if (ret == -EBADMSG || ret == -EPROTO)
		fprintf(stderr, "qkd-ppk: malformed VICI reply to %s\n", what);
	else
		fprintf(stderr, "qkd-ppk: %s failed: %s\n", what, strerror(-ret));
	return EX_CHARON;
}

static int key_error(const char *link, bool any, uint64_t id, int ret)
{
	switch (ret) {
	case -ENOENT:
		if (any)
			fprintf(stderr, "qkd-ppk: link %s has no key available\n", link);
		else
			fprintf(stderr, "qkd-ppk: link %s has no key %" PRIu64 "\n", link, id);
		return EX_NOKEY;
	case -EACCES:
	case -EPERM:
		fprintf(stderr, "qkd-ppk: not allowed to read the keys of link %s "
			"(keyring permissions)\n", link);
		return EX_NOKEY;
	case -EMSGSIZE:
		fprintf(stderr, "qkd-ppk: the key is larger than %d bytes\n", PPK_KEY_MAX);
		return EX_OTHER;
	default:
		fprintf(stderr, "qkd-ppk: cannot take a key of link %s: %s\n", link, strerror(-ret));
		return EX_OTHER;
	}
}

static int link_error(const char *link, int ret)
{
	if (ret == -ENOENT) {
		fprintf(stderr, "qkd-ppk: no link %s in the key store of this network namespace\n",
			link);
		return EX_NOKEY;
	}
	return key_error(link, true, 0, ret);
}

static int cmd_load(const struct opts *o, int argc, char **argv)
{
	struct vici_conn c;
	struct ppk_key key;
	struct ppk_store st;
	char ppk_id[256], err[256], ver[160];
	const char *link;
	uint64_t id = 0;
	bool any = true;
	int len, ret, ex;

	if (argc < 1 || argc > 2) {
		fputs("qkd-ppk: load takes LINK and an optional KEY-ID\n", stderr);
		return EX_USAGE;
	}
	link = argv[0];
	if (!link_name_ok(link))
		return EX_USAGE;
	if (argc == 2) {
		if (parse_u64(argv[1], &id)) {
			fprintf(stderr, "qkd-ppk: bad key id '%s'\n", argv[1]);
			return EX_USAGE;
		}
		any = false;
	}
	/* Charon first: a key is consumed by reading it, so do not read it for nobody. */
	ex = open_charon(o, &c);
	if (ex)
		return ex;
	ret = charon_version(&c, ver, sizeof(ver));
	if (ret) {
		ex = charon_error("version", ret, "");
		goto out;
	}
	if (o->verbose)
		fprintf(stderr, "qkd-ppk: connected to %s on %s\n", ver, o->socket);

	/* Find the link first so "no such link" and "no such key" differ. */
	st = o->st;
	st.keyring = ppk_find_keyring(&o->st, link);
	if (st.keyring < 0) {
		ex = link_error(link, st.keyring);
		goto out;
	}
	len = ppk_take_key(&st, link, any, id, &key, keybuf);
	if (len < 0) {
		ex = key_error(link, any, id, len);
		goto out;
	}
	if (snprintf(ppk_id, sizeof(ppk_id), "%s:%s:%" PRIu64, o->prefix, link,
		     key.key_id) >= (int)sizeof(ppk_id)) {
		fputs("qkd-ppk: PPK id too long\n", stderr);
		ex = EX_USAGE;
		goto out_wipe;
	}
	ret = charon_load_ppk(&c, ppk_id, keybuf, len, !o->untagged, err, sizeof(err));
	if (ret) {
		ex = charon_error("load-shared", ret, err);
		fprintf(stderr, "qkd-ppk: key %" PRIu64 " of link %s was taken from the store "
			"and is lost\n", key.key_id, link);
		goto out_wipe;
	}
	ppk_retire_key(&key);
	if (o->verbose)
		fprintf(stderr, "qkd-ppk: loaded key %" PRIu64 " of link %s (%d bytes) as PPK %s%s\n",
			key.key_id, link, len, ppk_id, o->untagged ? " (untagged)" : "");
	printf("%s\n", ppk_id);
	ex = fflush(stdout) ? EX_OTHER : EX_OK;
out_wipe:
	explicit_bzero(keybuf, sizeof(keybuf));
out:
	vici_close(&c);
	return ex;
}

static int print_id(const char *id, void *arg)
{
	const struct opts *o = arg;
	size_t n = strlen(o->prefix);

	if (o->all || (!strncmp(id, o->prefix, n) && id[n] == ':'))
		printf("%s\n", id);
	return 0;
}

static int cmd_list(struct opts *o, int argc, char **argv)
{
	struct vici_conn c;
	int ret, ex;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--all")) {
			fprintf(stderr, "qkd-ppk: list: unexpected '%s'\n", argv[i]);
			return EX_USAGE;
		}
		o->all = true;
	}
	ex = open_charon(o, &c);
	if (ex)
		return ex;
	ret = charon_list_shared(&c, print_id, o);
	ex = ret < 0 ? charon_error("get-shared", ret, "") : EX_OK;
	vici_close(&c);
	return ex;
}

static int cmd_unload(const struct opts *o, int argc, char **argv)
{
	struct vici_conn c;
	char err[256];
	int ret, ex;

	if (argc < 1) {
		fputs("qkd-ppk: unload needs at least one PPK id\n", stderr);
		return EX_USAGE;
	}
	ex = open_charon(o, &c);
	if (ex)
		return ex;
	for (int i = 0; i < argc && !ex; i++) {
		ret = charon_unload_shared(&c, argv[i], err, sizeof(err));
		if (ret)
			ex = charon_error("unload-shared", ret, err);
		else if (o->verbose)
			fprintf(stderr, "qkd-ppk: unloaded %s\n", argv[i]);
	}
	vici_close(&c);
	return ex;
}

static int cmd_keys(const struct opts *o, int argc, char **argv)
{
	struct ppk_key *keys;
	int n;

	if (argc != 1) {
		fputs("qkd-ppk: keys takes one LINK\n", stderr);
		return EX_USAGE;
	}
	if (!link_name_ok(argv[0]))
		return EX_USAGE;
	n = ppk_list_keys(&o->st, argv[0], &keys);
	if (n < 0)
		return link_error(argv[0], n);
	for (int i = 0; i < n; i++)
		printf("%" PRIu64 "\n", keys[i].key_id);
	free(keys);
	return EX_OK;
}

static int print_sa(const struct charon_ike_sa *sa, void *arg)
{
	printf("%s #%s %s %s...%s ppk=%s\n", sa->name, sa->uniqueid, sa->state, sa->local_id,
	       sa->remote_id, sa->ppk ? "yes" : "no");
	return 0;
}

static int cmd_sas(const struct opts *o, int argc, char **argv)
{
	struct vici_conn c;
	int ret, ex;

	if (argc > 1) {
		fputs("qkd-ppk: sas takes at most one connection name\n", stderr);
		return EX_USAGE;
	}
	ex = open_charon(o, &c);
	if (ex)
		return ex;
	ret = charon_list_ike_sas(&c, argc ? argv[0] : NULL, print_sa, NULL);
	ex = ret < 0 ? charon_error("list-sas", ret, "") : EX_OK;
	vici_close(&c);
	return ex;
}

static int cmd_version(const struct opts *o, int argc, char **argv)
{
	struct vici_conn c;
	char ver[160];
	int ret, ex;

	if (argc) {
		fputs("qkd-ppk: version takes no argument\n", stderr);
		return EX_USAGE;
	}
	ex = open_charon(o, &c);
	if (ex)
		return ex;
	ret = charon_version(&c, ver, sizeof(ver));
	if (ret)
		ex = charon_error("version", ret, "");
	else
		printf("%s\n", ver);
	vici_close(&c);
	return ex;
}

int main(int argc, char **argv)
{
	enum { OPT_UNTAGGED = 256, OPT_KEY_TYPE, OPT_KEYRING, OPT_KEYRING_DESC, OPT_KEY_DESC };
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "untagged", no_argument, NULL, OPT_UNTAGGED },
		{ "key-type", required_argument, NULL, OPT_KEY_TYPE },
		{ "keyring", required_argument, NULL, OPT_KEYRING },
		{ "keyring-desc", required_argument, NULL, OPT_KEYRING_DESC },
		{ "key-desc", required_argument, NULL, OPT_KEY_DESC },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = {
		.socket = getenv("QKD_PPK_SOCKET") ? getenv("QKD_PPK_SOCKET") : VICI_DEFAULT_SOCKET,
		.timeout_ms = 10000,
		.prefix = "qkd",
		.st = {
			.key_type = PPK_DEFAULT_KEY_TYPE,
			.keyring_desc = PPK_DEFAULT_KEYRING_DESC,
			.key_desc = PPK_DEFAULT_KEY_DESC,
		},
	};
	const char *cmd;
	uint64_t v;
	int c;

	/* No core dump or ptrace by others may see the key buffer. */
	prctl(PR_SET_DUMPABLE, 0);
	mlock(keybuf, sizeof(keybuf));

	/* "+": options stop at the command, so "list --all" reaches cmd_list. */
	while ((c = getopt_long(argc, argv, "+s:t:p:vh", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.socket = optarg;
			break;
		case 't':
			if (parse_u64(optarg, &v) || v == 0 || v > 3600000) {
				fprintf(stderr, "qkd-ppk: bad timeout '%s' (1..3600000 ms)\n", optarg);
				return EX_USAGE;
			}
			o.timeout_ms = (int)v;
			break;
		case 'p':
			if (!*optarg || strchr(optarg, ':')) {
				fputs("qkd-ppk: the prefix must be non-empty and without ':'\n", stderr);
				return EX_USAGE;
			}
			o.prefix = optarg;
			break;
		case OPT_UNTAGGED:
			o.untagged = true;
			break;
		case OPT_KEY_TYPE:
			o.st.key_type = optarg;
			break;
		case OPT_KEYRING:
			if (parse_u64(optarg, &v) || v == 0 || v > INT32_MAX) {
				fprintf(stderr, "qkd-ppk: bad keyring serial '%s'\n", optarg);
				return EX_USAGE;
			}
			o.st.keyring = (key_serial_t)v;
			break;
		case OPT_KEYRING_DESC:
			o.st.keyring_desc = optarg;
			break;
		case OPT_KEY_DESC:
			if (!strstr(optarg, "%k")) {
				fputs("qkd-ppk: --key-desc needs %k (the key id)\n", stderr);
				return EX_USAGE;
			}
			o.st.key_desc = optarg;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return EX_OK;
		default:
			fputs("Try 'qkd-ppk --help'.\n", stderr);
			return EX_USAGE;
		}
	}
	if (optind >= argc) {
		fputs("qkd-ppk: missing command (load, list, unload, keys, sas, version); "
		      "try 'qkd-ppk --help'\n", stderr);
		return EX_USAGE;
	}
	cmd = argv[optind++];
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "load"))
		return cmd_load(&o, argc, argv);
	if (!strcmp(cmd, "list"))
		return cmd_list(&o, argc, argv);
	if (!strcmp(cmd, "unload"))
		return cmd_unload(&o, argc, argv);
	if (!strcmp(cmd, "keys"))
		return cmd_keys(&o, argc, argv);
	if (!strcmp(cmd, "sas"))
		return cmd_sas(&o, argc, argv);
	if (!strcmp(cmd, "version"))
		return cmd_version(&o, argc, argv);
	fprintf(stderr, "qkd-ppk: unknown command '%s'; try 'qkd-ppk --help'\n", cmd);
	return EX_USAGE;
}
