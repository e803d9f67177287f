// SPDX-License-Identifier: GPL-2.0
/*
 * Module runtime: --help and --version, generated from the module's
 * description and parameter table so they can never drift from the code.
 * The layout follows a man page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS,
 * PARAMETERS, CONFIGURATION FILE, SIGNALS, EXIT STATUS, EXAMPLES, SEE ALSO.
 */
#include <stdio.h>
#include <string.h>

#include "module-internal.h"

#ifndef QKD_VERSION
#define QKD_VERSION "0.1"
#endif

#define WIDTH 79

/*
 * Print text wrapped at WIDTH with the given indent. Blank lines separate
 * paragraphs; lines starting with a space or tab are kept as they are
 * (tables, command examples).
 */
static void wrap(FILE *f, const char *text, int indent)
{
	const char *p = text;
	int col = 0;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (len == 0) {
			if (col)
				fputc('\n', f);
			fputc('\n', f);
			col = 0;
		} else if (*p == ' ' || *p == '\t') {
			if (col)
				fputc('\n', f);
			fprintf(f, "%*s%.*s\n", indent, "", (int)len, p);
			col = 0;
		} else {
			const char *w = p, *end = p + len;

			while (w < end) {
				const char *we = w;
				int wl;

				while (we < end && *we != ' ')
					we++;
				wl = (int)(we - w);
				if (col == 0) {
					fprintf(f, "%*s", indent, "");
					col = indent;
				} else if (col + 1 + wl > WIDTH) {
					fprintf(f, "\n%*s", indent, "");
					col = indent;
				} else {
					fputc(' ', f);
					col++;
				}
				fwrite(w, 1, (size_t)wl, f);
				col += wl;
				w = we;
				while (w < end && *w == ' ')
					w++;
			}
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	if (col)
		fputc('\n', f);
}

static void heading(FILE *f, const char *h)
{
	fprintf(f, "\n%s\n", h);
}

static void print_opt(FILE *f, const char *name, const char *meta, const char *help)
{
	fprintf(f, "       --%s%s%s\n", name, meta ? " " : "", meta ? meta : "");
	wrap(f, help, 11);
}

static const char *type_word(enum qkd_param_type t)
{
	switch (t) {
	case QKD_PARAM_INT: return "INTEGER";
	case QKD_PARAM_DOUBLE: return "NUMBER";
	case QKD_PARAM_BOOL: return "BOOL";
	default: return "TEXT";
	}
}

/* Integers print as integers, other numbers in their shortest form. */
static void fmt_bound(const struct qkd_param *p, double v, char *buf, size_t len)
{
	if (p->type == QKD_PARAM_INT)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%g", v);
}

void qkd_module_print_help(const struct qkd_module_desc *d, FILE *f)
{
	unsigned needs = d->needs;
	char buf[512];

	fprintf(f, "NAME\n       %s - %s\n", d->name, d->summary ? d->summary : "");

	heading(f, "SYNOPSIS");
	snprintf(buf, sizeof(buf), "%s%s%s%s [--config FILE] [--NAME VALUE]... [OPTIONS]", d->name,
		 (needs & QKD_NEEDS_PEER) ? " --role alice|bob" : " [--role alice|bob]",
		 (needs & QKD_NEEDS_PEER) ?
			 " {--peer HOST:PORT | --listen HOST:PORT} --keypool PATH" : "",
		 (needs & QKD_NEEDS_INPUT) && (needs & QKD_NEEDS_OUTPUT) ?
			 " [--in SRC]... [--out DST]..." :
		 (needs & QKD_NEEDS_INPUT) ? " [--in SRC]..." :
		 (needs & QKD_NEEDS_OUTPUT) ? " [--out DST]..." : "");
	wrap(f, buf, 7);
	fprintf(f, "       %s --help | --version\n", d->name);

	heading(f, "DESCRIPTION");
	if (d->description)
		wrap(f, d->description, 7);
	fputc('\n', f);
	wrap(f, "This program is one stage of a qkdpipe post-processing pipeline. Frames (key "
		"blocks with their metadata) arrive on its input and leave on its output, "
		"normally pipes between neighbouring stages; Alice and Bob each run the same "
		"chain of stages, and stage N of Alice talks only to stage N of Bob over the "
		"authenticated peer channel.", 7);

	heading(f, "OPTIONS");
	for (const struct qkd_common_opt *o = qkd_common_opts; o->name; o++)
		if (!o->needs || (o->needs & needs))
			print_opt(f, o->name, o->meta, o->help);

	heading(f, "PARAMETERS");
	wrap(f, "Set with --NAME VALUE, --NAME=VALUE, --set NAME=VALUE or a NAME = VALUE line "
		"in the config file. Numbers accept a % suffix (11% = 0.11). Parameters marked "
		"live can also be changed while running through the CoAP interface "
		"(PUT /params/NAME) and take effect from the next frame.", 7);
	if (!d->params || !d->params->name)
		wrap(f, "This module has no parameters.", 7);
	for (const struct qkd_param *p = d->params; p && p->name; p++) {
		int n = snprintf(buf, sizeof(buf), "%s. Default: %s", p->help ? p->help : "",
				 p->def ? p->def : "(none)");

		if ((p->min != 0 || p->max != 0) && n > 0 && (size_t)n < sizeof(buf)) {
			char lo[40], hi[40];

			fmt_bound(p, p->min, lo, sizeof(lo));
			fmt_bound(p, p->max, hi, sizeof(hi));
			if (p->max >= 9e18)
				n += snprintf(buf + n, sizeof(buf) - (size_t)n, "; at least %s", lo);
			else
				n += snprintf(buf + n, sizeof(buf) - (size_t)n, "; range %s to %s",
					      lo, hi);
		}
		if (p->live && n > 0 && (size_t)n < sizeof(buf))
			snprintf(buf + n, sizeof(buf) - (size_t)n, "; live");
		fputc('\n', f);
		print_opt(f, p->name, type_word(p->type), buf);
	}

	heading(f, "CONFIGURATION FILE");
	wrap(f, "--config FILE reads one NAME = VALUE per line; NAME is any option above "
		"without its leading dashes (except config, set, help and version) or any "
		"parameter. Blank lines and lines starting with # or ; are ignored, blanks "
		"around the name and value are dropped, and a value may be put in double "
		"quotes. in and out lines add a stream each. The command line overrides the "
		"file; --in/--out on the command line replace the file's streams. Errors are "
		"reported as FILE:LINE: reason.", 7);
	fputc('\n', f);
	wrap(f, "    # qkd-sift, Bob side\n    role = bob\n    listen = 127.0.0.1:7001\n"
		"    keypool = /var/lib/qkdpipe/bob.pool\n    log-level = debug", 7);

	heading(f, "SIGNALS");
	wrap(f, "SIGTERM or SIGINT: stop accepting input, finish and write the frame in hand "
		"(and any frame already taken from an input), flush the outputs, save the state "
		"file and exit 0. No frame the module has accepted is lost. A source module "
		"stops producing.", 7);

	heading(f, "EXIT STATUS");
	wrap(f, "0 on a clean end (end of input or a termination request), 1 on a runtime "
		"failure (stream, peer or key pool error), 2 on a usage or set-up error.", 7);

	if (d->examples) {
		heading(f, "EXAMPLES");
		wrap(f, d->examples, 7);
	}

	heading(f, "SEE ALSO");
	wrap(f, "Documentation/modules.md (running modules, common options, the config file), "
		"Documentation/frame-format.md (frame layout).", 7);
}

void qkd_module_print_version(const struct qkd_module_desc *d, FILE *f)
{
	fprintf(f, "%s (qkdpipe) %s\n", d->name, QKD_VERSION);
}
