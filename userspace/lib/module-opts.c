// SPDX-License-Identifier: GPL-2.0
/*
 * Module runtime: command line, config file and typed parameters.
 *
 * Precedence, lowest first: parameter defaults, --config FILE, the command
 * line. --in/--out given on the command line replace those of the config
 * file instead of adding to them. Every error names where it came from
 * (option or FILE:LINE), what was wrong and what is accepted.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module-internal.h"

#define N_ (QKD_NEEDS_INPUT | QKD_NEEDS_OUTPUT | QKD_NEEDS_PEER)

const struct qkd_common_opt qkd_common_opts[] = {
	{ "role", OPT_ROLE, "alice|bob", 0,
	  "Which side of the link this process is. Alice connects to the peer, Bob listens. "
	  "Default: alice for modules without a peer channel, required otherwise." },
	{ "pipeline", OPT_PIPELINE, "NAME", 0,
	  "Name of the pipeline; both peers must use the same one (default: default)." },
	{ "instance", OPT_INSTANCE, "I/N", 0,
	  "This process is instance I of N parallel ones of the stage (default 0/1). Frame "
	  "key id k belongs to instance k mod N on both sides." },
	{ "in", OPT_IN, "PATH|fd:N|-", QKD_NEEDS_INPUT,
	  "Read frames from a file or FIFO, an inherited descriptor or stdin (default -). "
	  "Repeatable: several inputs are merged back into key-id order." },
	{ "out", OPT_OUT, "PATH|fd:N|-", QKD_NEEDS_OUTPUT,
	  "Write frames to a file or FIFO, an inherited descriptor or stdout (default -). "
	  "Repeatable: frame key id k goes to output k mod N." },
	{ "peer", OPT_PEER, "HOST:PORT", QKD_NEEDS_PEER,
	  "Connect the peer channel to this address (Alice's usual side). IPv6 as [ADDR]:PORT." },
	{ "listen", OPT_LISTEN, "HOST:PORT", QKD_NEEDS_PEER,
	  "Accept the peer channel on this address (Bob's usual side)." },
	{ "keypool", OPT_KEYPOOL, "PATH", QKD_NEEDS_PEER,
	  "Authentication key pool shared with the peer (required with a peer channel)." },
	{ "peer-timeout", OPT_PEER_TIMEOUT, "MS", QKD_NEEDS_PEER,
	  "Give up when connecting, the handshake or a peer message stalls this long "
	  "(default 30000)." },
	{ "config", OPT_CONFIG, "FILE", 0,
	  "Read options and parameters from FILE first (see CONFIGURATION FILE)." },
	{ "set", OPT_SET, "NAME=VALUE", 0, "Set a parameter (same as --NAME VALUE)." },
	{ "state-file", OPT_STATE_FILE, "PATH", 0,
	  "Hibernation state: loaded at start if PATH exists (a corrupted file is refused), "
	  "written atomically at a clean exit." },
	{ "qpm", OPT_QPM, "HOST:PORT", 0,
	  "Serve the CoAP control interface and register with the QKD Protocol Manager there." },
	{ "log-level", OPT_LOG_LEVEL, "LEVEL", 0,
	  "error, warning, info or debug (default info). Key material is never logged." },
	{ "help", OPT_HELP, NULL, 0, "Show this help and exit." },
	{ "version", OPT_VERSION, NULL, 0, "Show the version and exit." },
	{ NULL, 0, NULL, 0, NULL },
};

static const char *mname(const struct qkd_module *m)
{
	return m->desc && m->desc->name ? m->desc->name : "qkd-module";
}

static void usage_error(const struct qkd_module *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void usage_error(const struct qkd_module *m, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", mname(m));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", mname(m));
}

/* Names compare with '-' and '_' treated alike. */
static bool name_eq(const char *a, const char *b, size_t blen)
{
	size_t i;

	for (i = 0; i < blen && a[i]; i++) {
		char x = a[i] == '_' ? '-' : a[i], y = b[i] == '_' ? '-' : b[i];

		if (x != y)
			return false;
	}
	return i == blen && !a[i];
}

static const struct qkd_common_opt *find_common(const struct qkd_module *m, const char *name,
						size_t len)
{
	for (const struct qkd_common_opt *o = qkd_common_opts; o->name; o++) {
		if (!name_eq(o->name, name, len))
			continue;
		if (o->needs && !(o->needs & m->desc->needs))
			return NULL;
		return o;
	}
	return NULL;
}

static struct qkd_param *find_param(const struct qkd_module *m, const char *name, size_t len)
{
	for (struct qkd_param *p = m->desc->params; p && p->name; p++)
		if (name_eq(p->name, name, len))
			return p;
	return NULL;
}

struct qkd_param *qkd_param_find(const struct qkd_module *m, const char *name)
{
	return find_param(m, name, strlen(name));
}

static const char *type_name(enum qkd_param_type t)
{
	switch (t) {
	case QKD_PARAM_INT: return "an integer";
	case QKD_PARAM_DOUBLE: return "a number";
	case QKD_PARAM_BOOL: return "true or false";
	default: return "text";
	}
}

static bool bounded(const struct qkd_param *p)
{
	return p->min != 0 || p->max != 0;
}

int qkd_param_assign(struct qkd_module *m, struct qkd_param *p, const char *value, char *err,
		     size_t errlen)
{
	char *end;

	if (!value) {
		snprintf(err, errlen, "needs a value (%s)", type_name(p->type));
		return -EINVAL;
	}
	switch (p->type) {
	case QKD_PARAM_INT: {
		long long v;
		int base = (value[0] == '0' && (value[1] == 'x' || value[1] == 'X')) ? 16 : 10;

		errno = 0;
		v = strtoll(value, &end, base);
		if (!*value || *end || errno == ERANGE) {
			snprintf(err, errlen, "'%s' is not %s", value, type_name(p->type));
			return -EINVAL;
		}
		if (bounded(p) && ((double)v < p->min || (double)v > p->max)) {
			snprintf(err, errlen, "%s is out of range [%.0f, %.0f]", value, p->min, p->max);
			return -ERANGE;
		}
		pthread_mutex_lock(&m->lock);
		*(int64_t *)p->var = v;
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	case QKD_PARAM_DOUBLE: {
		double v;

		errno = 0;
		v = strtod(value, &end);
		/* "11%" means 0.11: QBERs and ratios read naturally either way. */
		if (end != value && *end == '%' && !end[1]) {
			v /= 100;
			end++;
		}
		if (!*value || *end || errno == ERANGE || !isfinite(v)) {
			snprintf(err, errlen, "'%s' is not %s", value, type_name(p->type));
			return -EINVAL;
		}
		if (bounded(p) && (v < p->min || v > p->max)) {
			snprintf(err, errlen, "%s is out of range [%g, %g]", value, p->min, p->max);
			return -ERANGE;
		}
		pthread_mutex_lock(&m->lock);
		*(double *)p->var = v;
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	case QKD_PARAM_BOOL: {
		static const char *const yes[] = { "1", "true", "yes", "on", NULL };
		static const char *const no[] = { "0", "false", "no", "off", NULL };
		int v = -1;

		for (int i = 0; yes[i]; i++) {
			if (!strcasecmp(value, yes[i]))
				v = 1;
			if (!strcasecmp(value, no[i]))
				v = 0;
		}
		if (v < 0) {
			snprintf(err, errlen, "'%s' is not %s", value, type_name(p->type));
			return -EINVAL;
		}
		pthread_mutex_lock(&m->lock);
		*(bool *)p->var = v;
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	case QKD_PARAM_STRING: {
		char *v = strdup(value), *old;

		if (!v) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		pthread_mutex_lock(&m->lock);
		old = *(char **)p->var;
		*(char **)p->var = v;
		pthread_mutex_unlock(&m->lock);
		free(old);
		return 0;
	}
	}
	snprintf(err, errlen, "has an unknown type");
	return -EINVAL;
}

static int set_str(char **dst, const char *v)
{
	char *c = strdup(v);

	if (!c)
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

/*
 * Apply one common option (not help/version/config). from_cli decides
 * whether --in/--out replace the config file's list. where is "option
 * '--x'" or "FILE:LINE" for messages.
 */
static int apply_common(struct qkd_module *m, const struct qkd_common_opt *o, const char *v,
			bool from_cli, const char *where)
{
	struct qkd_module_opts *op = &((struct qkd_module_priv *)m->priv)->opts;
	char **list;
	unsigned *n;
	bool *cli;

	switch (o->id) {
	case OPT_ROLE: return set_str(&op->role, v);
	case OPT_PIPELINE: return set_str(&op->pipeline, v);
	case OPT_INSTANCE: return set_str(&op->instance, v);
	case OPT_PEER: return set_str(&op->peer, v);
	case OPT_LISTEN: return set_str(&op->listen, v);
	case OPT_KEYPOOL: return set_str(&op->keypool, v);
	case OPT_PEER_TIMEOUT: return set_str(&op->peer_timeout, v);
	case OPT_STATE_FILE: return set_str(&op->state_file, v);
	case OPT_QPM: return set_str(&op->qpm, v);
	case OPT_LOG_LEVEL: return set_str(&op->log_level, v);
	case OPT_IN:
	case OPT_OUT:
		list = o->id == OPT_IN ? op->in : op->out;
		n = o->id == OPT_IN ? &op->n_in : &op->n_out;
		cli = o->id == OPT_IN ? &op->in_from_cli : &op->out_from_cli;
		if (from_cli && !*cli) {
			/* The command line replaces the config file's streams. */
			for (unsigned i = 0; i < *n; i++)
				free(list[i]);
			*n = 0;
			*cli = true;
		}
		if (*n == QKD_MAX_STREAMS) {
			usage_error(m, "%s: at most %d --%s streams", where, QKD_MAX_STREAMS,
				    o->name);
			return -E2BIG;
		}
		list[*n] = strdup(v);
		if (!list[*n])
			return -ENOMEM;
		(*n)++;
		return 0;
	default:
		usage_error(m, "%s: '%s' cannot be used here", where, o->name);
		return -EINVAL;
	}
}

static int apply_param(struct qkd_module *m, struct qkd_param *p, const char *v,
		       const char *where)
{
	char err[256];

	if (qkd_param_assign(m, p, v, err, sizeof(err))) {
		usage_error(m, "%s: parameter '%s' %s", where, p->name, err);
		return -EINVAL;
	}
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static int read_config(struct qkd_module *m, const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, where[4200];
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, ret = 0;

	if (!f) {
		usage_error(m, "cannot read config file '%s': %m", path);
		return -errno;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *key, *val, *eq;
		const struct qkd_common_opt *o;
		struct qkd_param *p;

		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if ((size_t)len != strlen(line)) {
			usage_error(m, "%s: line contains a NUL byte", where);
			ret = -EINVAL;
			break;
		}
		key = trim(line);
		if (!*key || *key == '#' || *key == ';')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			usage_error(m, "%s: expected 'name = value', got '%s'", where, key);
			ret = -EINVAL;
			break;
		}
		*eq = 0;
		key = trim(key);
		val = trim(eq + 1);
		/* Optional double quotes keep leading/trailing blanks. */
		if (val[0] == '"' && strlen(val) >= 2 && val[strlen(val) - 1] == '"') {
			val[strlen(val) - 1] = 0;
			val++;
		}
		if (!*key) {
			usage_error(m, "%s: missing name before '='", where);
			ret = -EINVAL;
			break;
		}
		o = find_common(m, key, strlen(key));
		if (o && (o->id == OPT_CONFIG || o->id == OPT_SET || o->id == OPT_HELP ||
			  o->id == OPT_VERSION)) {
			usage_error(m, "%s: '%s' is not allowed in a config file", where, key);
			ret = -EINVAL;
			break;
		}
		if (o) {
			ret = apply_common(m, o, val, false, where);
		} else if ((p = find_param(m, key, strlen(key)))) {
			ret = apply_param(m, p, val, where);
		} else {
			usage_error(m, "%s: unknown option or parameter '%s'", where, key);
			ret = -EINVAL;
		}
		if (ret)
			break;
	}
	free(line);
	fclose(f);
	return ret;
}

/*
 * Split "--name=value" / "--name value". Returns the name length; *val is
 * the inline value or NULL.
 */
static size_t split_arg(const char *arg, const char **val)
{
	const char *eq = strchr(arg, '=');

	*val = eq ? eq + 1 : NULL;
	return eq ? (size_t)(eq - arg) : strlen(arg);
}

int qkd_module_parse(struct qkd_module *m, int argc, char **argv)
{
	struct qkd_module_priv *pv = m->priv;
	const char *config = NULL;
	char where[300];
	int i;

	/* Pass 1: --help, --version and --config act before anything else. */
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		size_t len;
		const struct qkd_common_opt *o;

		if (!strcmp(a, "--"))
			break;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			qkd_module_print_help(m->desc, stdout);
			exit(0);
		}
		if (!strcmp(a, "--version")) {
			qkd_module_print_version(m->desc, stdout);
			exit(0);
		}
		if (strncmp(a, "--", 2))
			continue;
		len = split_arg(a + 2, &v);
		o = find_common(m, a + 2, len);
		if (o && o->id == OPT_CONFIG) {
			if (!v && i + 1 >= argc) {
				usage_error(m, "option '--config' needs a value (FILE)");
				return -EINVAL;
			}
			config = v ? v : argv[i + 1];
		}
		/* Skip the separate value of any option that takes one. */
		if (!v && ((o && o->meta) || (!o && find_param(m, a + 2, len))))
			i++;
	}

	/* Defaults. */
	for (struct qkd_param *p = m->desc->params; p && p->name; p++) {
		if (!p->var)
			continue;
		if (p->def && apply_param(m, p, p->def, "default")) {
			fprintf(stderr, "%s: bug: default of parameter '%s' is invalid\n", mname(m),
				p->name);
			return -EINVAL;
		}
		if (!p->def && p->type == QKD_PARAM_STRING)
			*(char **)p->var = NULL;
	}

	if (config) {
		if (set_str(&pv->opts.config, config) || read_config(m, config))
			return -EINVAL;
	}

	/* Pass 2: the command line. */
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		size_t len;
		const struct qkd_common_opt *o;
		struct qkd_param *p;

		if (!strcmp(a, "--")) {
			if (i + 1 < argc) {
				usage_error(m, "unexpected argument '%s'", argv[i + 1]);
				return -EINVAL;
			}
			break;
		}
		if (strncmp(a, "--", 2) || !a[2]) {
			usage_error(m, "unexpected argument '%s' (options start with --)", a);
			return -EINVAL;
		}
		len = split_arg(a + 2, &v);
		o = find_common(m, a + 2, len);
		p = o ? NULL : find_param(m, a + 2, len);
		if (!o && !p) {
			usage_error(m, "unknown option '%.*s'", (int)len + 2, a);
			return -EINVAL;
		}
		if (o && !o->meta) {
			if (v) {
				usage_error(m, "option '--%s' takes no value", o->name);
				return -EINVAL;
			}
			continue;
		}
		if (!v) {
			/* A bare boolean parameter means true. */
			if (p && p->type == QKD_PARAM_BOOL &&
			    (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
				v = "true";
			} else if (i + 1 >= argc) {
				usage_error(m, "option '--%s' needs a value (%s)",
					    o ? o->name : p->name, o ? o->meta : type_name(p->type));
				return -EINVAL;
			} else {
				v = argv[++i];
			}
		}
		snprintf(where, sizeof(where), "option '--%s'", o ? o->name : p->name);
		if (o && o->id == OPT_CONFIG)
			continue;
		if (o && o->id == OPT_SET) {
			const char *eq = strchr(v, '=');

			p = eq ? find_param(m, v, (size_t)(eq - v)) : NULL;
			if (!eq || eq == v) {
				usage_error(m, "option '--set' wants NAME=VALUE, got '%s'", v);
				return -EINVAL;
			}
			if (!p) {
				usage_error(m, "option '--set': unknown parameter '%.*s'",
					    (int)(eq - v), v);
				return -EINVAL;
			}
			if (apply_param(m, p, eq + 1, "option '--set'"))
				return -EINVAL;
			continue;
		}
		if (o ? apply_common(m, o, v, true, where) : apply_param(m, p, v, where))
			return -EINVAL;
	}
	return 0;
}

int qkd_split_addr(const char *spec, char **host, char **port)
{
	const char *colon, *h = spec;
	size_t hlen;

	*host = *port = NULL;
	if (!spec || !*spec)
		return -EINVAL;
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (!rb || rb[1] != ':' || !rb[2])
			return -EINVAL;
		h = spec + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon) {
			/* Just a port. */
			colon = spec - 1;
			hlen = 0;
		} else {
			if (strchr(spec, ':') != colon)
				return -EINVAL; /* bare IPv6 needs brackets */
			hlen = (size_t)(colon - spec);
		}
	}
	if (!colon[1])
		return -EINVAL;
	for (const char *c = colon + 1; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-')
			return -EINVAL;
	*host = hlen ? strndup(h, hlen) : NULL;
	*port = strdup(colon + 1);
	if (!*port || (hlen && !*host)) {
		free(*host);
		free(*port);
		*host = *port = NULL;
		return -ENOMEM;
	}
	return 0;
}

void qkd_module_free_opts(struct qkd_module *m)
{
	struct qkd_module_priv *pv = m->priv;
	struct qkd_module_opts *o;

	if (!pv)
		return;
	o = &pv->opts;
	for (unsigned i = 0; i < o->n_in; i++)
		free(o->in[i]);
	for (unsigned i = 0; i < o->n_out; i++)
		free(o->out[i]);
	free(o->role);
	free(o->pipeline);
	free(o->instance);
	free(o->peer);
	free(o->listen);
	free(o->keypool);
	free(o->state_file);
	free(o->qpm);
	free(o->log_level);
	free(o->peer_timeout);
	free(o->config);
	memset(o, 0, sizeof(*o));
}
