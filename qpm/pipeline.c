// SPDX-License-Identifier: GPL-2.0
/*
 * Pipeline definitions: XML parsed with libxml2 (no network, no external
 * entities), validated against pipeline.xsd, then checked for what a schema
 * cannot express. Every message names the source and the line.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>
#include "qpm.h"

static xmlSchemaPtr schema;

struct errsink {
	struct qkd_buf *b;
	const char *source;
	unsigned n;
};

static void xml_error(void *arg, xmlErrorPtr e)
{
	struct errsink *s = arg;
	size_t l;

	if (!e || s->n >= 20)
		return;
	s->n++;
	l = e->message ? strlen(e->message) : 0;
	while (l && e->message[l - 1] == '\n')
		l--;
	qkd_buf_printf(s->b, "%s:%d: %.*s\n", s->source, e->line, (int)l,
		       e->message ? e->message : "error");
}

static void sem_error(struct errsink *s, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void sem_error(struct errsink *s, int line, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->n++;
	qkd_buf_printf(s->b, "%s:%d: %s\n", s->source, line, msg);
}

static int load_schema(struct errsink *s)
{
	xmlSchemaParserCtxtPtr pc;

	if (schema)
		return 0;
	pc = xmlSchemaNewParserCtxt(qpm.schema);
	if (!pc) {
		qkd_buf_printf(s->b, "%s: cannot read the pipeline schema\n", qpm.schema);
		return -1;
	}
	xmlSchemaSetParserStructuredErrors(pc, xml_error, s);
	schema = xmlSchemaParse(pc);
	xmlSchemaFreeParserCtxt(pc);
	if (!schema) {
		qkd_buf_printf(s->b, "%s: the pipeline schema does not load\n", qpm.schema);
		return -1;
	}
	return 0;
}

static char *attr(xmlNodePtr n, const char *name)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
	char *c;

	if (!v)
		return NULL;
	c = strdup((const char *)v);
	xmlFree(v);
	return c;
}

static unsigned attr_uint(xmlNodePtr n, const char *name, unsigned def)
{
	char *v = attr(n, name);
	unsigned r = def;

	if (v)
		r = (unsigned)strtoul(v, NULL, 10); /* the schema checked the range */
	free(v);
	return r;
}

static bool attr_bool(xmlNodePtr n, const char *name)
{
	char *v = attr(n, name);
	bool r = v && (!strcmp(v, "true") || !strcmp(v, "1"));

	free(v);
	return r;
}

static bool is(xmlNodePtr n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

/* Find exec in the module directories; a malloc'd path or NULL. */
static char *resolve_exec(const char *exec)
{
	for (unsigned i = 0; i < qpm.n_module_dirs; i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", qpm.module_dirs[i], exec);
		if (!access(path, X_OK))
			return strdup(path);
	}
	return NULL;
}

static void free_moddef(struct qpm_moddef *d)
{
	free(d->name);
	free(d->exec);
	free(d->path);
	free(d->config);
	free(d->epoch_param);
	free(d->peer_addr);
	for (unsigned i = 0; i < d->n_params; i++) {
		free(d->params[i].name);
		free(d->params[i].value);
	}
	free(d->params);
}

void qpm_pipeline_free(struct qpm_pipeline *pl)
{
	if (!pl)
		return;
	for (int s = 0; s < 2; s++) {
		for (unsigned i = 0; i < pl->sides[s].n_mods; i++)
			free_moddef(&pl->sides[s].mods[i]);
		free(pl->sides[s].keypool);
		free(pl->sides[s].input);
		free(pl->sides[s].output);
	}
	for (unsigned i = 0; i < pl->n_procs; i++)
		free(pl->procs[i].stats);
	free(pl->procs);
	free(pl->source);
	free(pl->log_level);
	free(pl->state_dir);
	free(pl);
}

static int parse_module(struct errsink *s, xmlNodePtr n, struct qpm_moddef *d)
{
	d->line = (int)xmlGetLineNo(n);
	d->exec = attr(n, "exec");
	d->name = attr(n, "name");
	if (!d->name && d->exec)
		d->name = strdup(d->exec + (strncmp(d->exec, "qkd-", 4) ? 0 : 4));
	d->instances = attr_uint(n, "instances", 1);
	d->peer = attr_bool(n, "peer");
	d->config = attr(n, "config");
	d->epoch_param = attr(n, "epoch-param");
	if (!d->exec || !d->name)
		return -ENOMEM;
	d->path = resolve_exec(d->exec);
	if (!d->path) {
		struct qkd_buf dirs = { 0 };

		for (unsigned i = 0; i < qpm.n_module_dirs; i++)
			qkd_buf_printf(&dirs, "%s%s", i ? ", " : "", qpm.module_dirs[i]);
		sem_error(s, d->line, "unknown module '%s' (no such executable in %s)", d->exec,
			  dirs.s ? dirs.s : "no module directory");
		qkd_buf_free(&dirs);
	}
	for (xmlNodePtr c = n->children; c; c = c->next) {
		if (is(c, "peer")) {
			d->peer = true;
			d->peer_addr = attr(c, "address");
			d->peer_port = attr_uint(c, "port", 0);
		} else if (is(c, "param")) {
			struct qpm_param *p;

			p = realloc(d->params, (d->n_params + 1) * sizeof(*p));
			if (!p)
				return -ENOMEM;
			d->params = p;
			p[d->n_params].name = attr(c, "name");
			p[d->n_params].value = attr(c, "value");
			for (unsigned i = 0; i < d->n_params; i++)
				if (!strcmp(p[i].name, p[d->n_params].name))
					sem_error(s, (int)xmlGetLineNo(c),
						  "parameter '%s' given twice for module '%s'",
						  p[i].name, d->name);
			d->n_params++;
		}
	}
	return 0;
}

static int parse_side(struct errsink *s, xmlNodePtr n, struct qpm_pipeline *pl)
{
	char *role = attr(n, "role");
	int r = role && !strcmp(role, "bob") ? QKD_BOB : QKD_ALICE;
	struct qpm_side *sd = &pl->sides[r];
	xmlNodePtr out = NULL;

	free(role);
	if (sd->present) {
		sem_error(s, (int)xmlGetLineNo(n), "side '%s' defined twice", qpm_role_name(r));
		return 0;
	}
	sd->present = true;
	sd->role = (enum qkd_role)r;
	sd->line = (int)xmlGetLineNo(n);
	sd->keypool = attr(n, "keypool");
	for (xmlNodePtr c = n->children; c; c = c->next) {
		if (is(c, "input")) {
			sd->input = attr(c, "file");
		} else if (is(c, "output")) {
			sd->output = attr(c, "file");
			out = c;
		} else if (is(c, "module")) {
			struct qpm_moddef *d = &sd->mods[sd->n_mods];

			if (sd->n_mods == QPM_MAX_MODULES)
				return -E2BIG; /* the schema allows no more */
			sd->n_mods++;
			if (parse_module(s, c, d))
				return -ENOMEM;
			for (unsigned i = 0; i + 1 < sd->n_mods; i++)
				if (!strcmp(sd->mods[i].name, d->name))
					sem_error(s, d->line,
						  "module name '%s' used twice on side %s (give one a "
						  "name=\"...\")", d->name, qpm_role_name(r));
		}
	}
	/* Neighbouring stages: 1 -> N fans out, N -> 1 merges, N -> N pairs. */
	for (unsigned i = 0; i + 1 < sd->n_mods; i++) {
		unsigned a = sd->mods[i].instances, b = sd->mods[i + 1].instances;

		if (a != b && a != 1 && b != 1)
			sem_error(s, sd->mods[i + 1].line,
				  "module '%s' has %u instances after '%s' with %u: neighbours need "
				  "equal counts or one side with a single instance",
				  sd->mods[i + 1].name, b, sd->mods[i].name, a);
	}
	if (sd->input && sd->n_mods && sd->mods[0].instances != 1)
		sem_error(s, sd->mods[0].line, "an <input> file needs a single first instance");
	if (out && sd->n_mods && sd->mods[sd->n_mods - 1].instances != 1)
		sem_error(s, (int)xmlGetLineNo(out),
			  "an <output> file needs a single last instance (frames would interleave)");
	return 0;
}

static void check_peers(struct errsink *s, struct qpm_pipeline *pl)
{
	bool both = pl->sides[0].present && pl->sides[1].present;

	for (int r = 0; r < 2; r++) {
		struct qpm_side *sd = &pl->sides[r], *o = &pl->sides[!r];

		if (!sd->present)
			continue;
		for (unsigned i = 0; i < sd->n_mods; i++) {
			struct qpm_moddef *d = &sd->mods[i];
			struct qpm_moddef *m = NULL;

			if (!d->peer)
				continue;
			if (!sd->keypool)
				sem_error(s, d->line,
					  "module '%s' has a peer channel but side %s has no "
					  "keypool=\"...\"", d->name, qpm_role_name(r));
			if (!both) {
				if (!d->peer_port)
					sem_error(s, d->line,
						  "module '%s': with only one side defined the peer "
						  "needs <peer address=\"...\" port=\"...\"/>", d->name);
				continue;
			}
			for (unsigned k = 0; k < o->n_mods; k++)
				if (!strcmp(o->mods[k].name, d->name))
					m = &o->mods[k];
			if (!m || !m->peer)
				sem_error(s, d->line,
					  "module '%s' has a peer channel but side %s has no module "
					  "of that name with one", d->name, qpm_role_name(!r));
			else if (m->instances != d->instances)
				sem_error(s, d->line,
					  "module '%s' has %u instances here and %u on side %s",
					  d->name, d->instances, m->instances, qpm_role_name(!r));
		}
	}
}

struct qpm_pipeline *qpm_pipeline_load(const char *xml, size_t len, const char *source,
				       struct qkd_buf *err)
{
	struct errsink s = { .b = err, .source = source ? source : "pipeline" };
	struct qpm_pipeline *pl = NULL;
	xmlParserCtxtPtr pc;
	xmlSchemaValidCtxtPtr vc;
	xmlDocPtr doc;
	xmlNodePtr root;
	char *v;

	if (len > QKD_COAP_MAX_BODY) {
		qkd_buf_printf(err, "%s: document too large (%zu bytes, at most %u)\n", s.source,
			       len, QKD_COAP_MAX_BODY);
		return NULL;
	}
	if (load_schema(&s))
		return NULL;
	pc = xmlNewParserCtxt();
	if (!pc)
		return NULL;
	xmlSetStructuredErrorFunc(&s, xml_error);
	/* NONET: no fetching; no NOENT/DTDLOAD: external entities stay unresolved. */
	doc = xmlCtxtReadMemory(pc, xml, (int)len, s.source, NULL,
				XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_NOERROR);
	xmlFreeParserCtxt(pc);
	if (!doc) {
		if (!s.n)
			qkd_buf_printf(err, "%s:1: not a well-formed XML document\n", s.source);
		goto out;
	}
	vc = xmlSchemaNewValidCtxt(schema);
	if (!vc)
		goto out;
	xmlSchemaSetValidStructuredErrors(vc, xml_error, &s);
	if (xmlSchemaValidateDoc(vc, doc)) {
		if (!s.n)
			qkd_buf_printf(err, "%s:1: does not match the pipeline schema\n", s.source);
		xmlSchemaFreeValidCtxt(vc);
		goto out;
	}
	xmlSchemaFreeValidCtxt(vc);

	pl = calloc(1, sizeof(*pl));
	if (!pl)
		goto out;
	root = xmlDocGetRootElement(doc);
	v = attr(root, "name");
	snprintf(pl->name, sizeof(pl->name), "%s", v ? v : "");
	free(v);
	pl->source = strdup(s.source);
	pl->register_timeout_ms = attr_uint(root, "register-timeout-ms", 5000);
	pl->stop_timeout_ms = attr_uint(root, "stop-timeout-ms", 10000);
	pl->max_restarts = attr_uint(root, "max-restarts", 5);
	pl->backoff_ms = attr_uint(root, "restart-backoff-ms", 250);
	pl->log_level = attr(root, "log-level");
	pl->state_dir = attr(root, "state-dir");
	for (xmlNodePtr c = root->children; c; c = c->next)
		if (is(c, "side") && parse_side(&s, c, pl)) {
			qkd_buf_printf(err, "%s: out of memory\n", s.source);
			s.n++;
			break;
		}
	check_peers(&s, pl);
	if (s.n) {
		qpm_pipeline_free(pl);
		pl = NULL;
	}
out:
	xmlSetStructuredErrorFunc(NULL, NULL);
	if (doc)
		xmlFreeDoc(doc);
	return pl;
}

struct qpm_pipeline *qpm_pipeline_find(const char *name)
{
	for (struct qpm_pipeline *pl = qpm.pipelines; pl; pl = pl->next)
		if (!strcmp(pl->name, name))
			return pl;
	return NULL;
}

const char *qpm_state_name(enum qpm_pl_state s)
{
	static const char *const n[] = {
		[PL_LOADED] = "loaded", [PL_STARTING] = "starting", [PL_RUNNING] = "running",
		[PL_RESTARTING] = "restarting", [PL_STOPPING] = "stopping",
		[PL_STOPPED] = "stopped", [PL_HIBERNATING] = "hibernating",
		[PL_HIBERNATED] = "hibernated", [PL_COMPLETED] = "completed",
		[PL_FAILED] = "failed",
	};

	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "unknown";
}

const char *qpm_role_name(int side)
{
	return side == QKD_BOB ? "bob" : "alice";
}
