// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-kme configuration file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

void kme_config_defaults(struct kme_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen_addr, sizeof(c->listen_addr), "127.0.0.1");
	c->port = 8443;
	c->verify_client = 1;
	c->ident = KME_IDENT_CN;
	snprintf(c->source, sizeof(c->source), "netlink");
	c->max_key_per_request = 128;
	c->min_key_bits = 8;
	c->max_key_bits = 4096 * 8;
	c->threads = 2;
	c->conn_timeout = 10;
	c->conn_limit = 256;
}

static int id_ok(const char *s)
{
	if (!*s || strlen(s) >= KME_ID_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-:@", *s)))
			return 0;
	return 1;
}

static int num(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *e;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &e, 10);
	if (errno || e == s || *e || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int copy(char *dst, size_t n, const char *s)
{
	if (strlen(s) >= n)
		return -1;
	strcpy(dst, s);
	return 0;
}

/* "ADDR:PORT", "[V6]:PORT" or "PORT" */
static int parse_listen(struct kme_config *c, const char *s)
{
	const char *colon = strrchr(s, ':');
	uint32_t port;
	size_t alen;

	if (!colon)
		return num(s, 1, 65535, &port) ? -1 : (c->port = port, 0);
	if (num(colon + 1, 1, 65535, &port))
		return -1;
	alen = colon - s;
	if (*s == '[') {
		if (alen < 3 || s[alen - 1] != ']')
			return -1;
		s++;
		alen -= 2;
	}
	if (!alen || alen >= sizeof(c->listen_addr))
		return -1;
	memcpy(c->listen_addr, s, alen);
	c->listen_addr[alen] = 0;
	c->port = port;
	return 0;
}

static int pair_line(struct kme_config *c, char **w, int n)
{
	struct kme_pair *p;

	/* pair LINK MASTER_SAE SLAVE_SAE PEER_KME master|slave [KEY_BITS] */
	if ((n != 6 && n != 7) || c->npairs == KME_PAIRS_MAX)
		return -1;
	p = &c->pairs[c->npairs];
	memset(p, 0, sizeof(*p));
	if (copy(p->link, sizeof(p->link), w[1]) || !id_ok(w[2]) || !id_ok(w[3]) ||
	    !id_ok(w[4]) || !strcmp(w[2], w[3]))
		return -1;
	strcpy(p->master, w[2]);
	strcpy(p->slave, w[3]);
	strcpy(p->peer_kme, w[4]);
	if (!strcmp(w[5], "master"))
		p->master_side = 1;
	else if (strcmp(w[5], "slave"))
		return -1;
	p->key_bits = 256;
	if (n == 7 && num(w[6], 8, 4096 * 8, &p->key_bits))
		return -1;
	if (p->key_bits % 8)
		return -1;
	for (size_t i = 0; i < c->npairs; i++)
		if (!strcmp(c->pairs[i].link, p->link) ||
		    (!strcmp(c->pairs[i].master, p->master) &&
		     !strcmp(c->pairs[i].slave, p->slave)))
			return -1;	/* one link per pair, one pair per link */
	c->npairs++;
	return 0;
}

static int line(struct kme_config *c, char *s)
{
	char *w[8], *save = NULL, *t;
	int n = 0;

	for (t = strtok_r(s, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
		if (*t == '#')
			break;
		if (n == 8)
			return -1;
		w[n++] = t;
	}
	if (!n)
		return 0;
	if (!strcmp(w[0], "pair"))
		return pair_line(c, w, n);
	if (n != 2)
		return -1;
	if (!strcmp(w[0], "kme_id"))
		return id_ok(w[1]) ? copy(c->kme_id, sizeof(c->kme_id), w[1]) : -1;
	if (!strcmp(w[0], "listen"))
		return parse_listen(c, w[1]);
	if (!strcmp(w[0], "cert"))
		return copy(c->cert, sizeof(c->cert), w[1]);
	if (!strcmp(w[0], "key"))
		return copy(c->key, sizeof(c->key), w[1]);
	if (!strcmp(w[0], "ca"))
		return copy(c->ca, sizeof(c->ca), w[1]);
	if (!strcmp(w[0], "source"))
		return strcmp(w[1], "netlink") && strncmp(w[1], "file:", 5) ? -1 :
			copy(c->source, sizeof(c->source), w[1]);
	if (!strcmp(w[0], "verify_client")) {
		if (strcmp(w[1], "yes") && strcmp(w[1], "no"))
			return -1;
		c->verify_client = !strcmp(w[1], "yes");
		return 0;
	}
	if (!strcmp(w[0], "sae_identity")) {
		if (!strcmp(w[1], "cn"))
			c->ident = KME_IDENT_CN;
		else if (!strcmp(w[1], "san-dns"))
			c->ident = KME_IDENT_SAN_DNS;
		else if (!strcmp(w[1], "san-uri"))
			c->ident = KME_IDENT_SAN_URI;
		else
			return -1;
		return 0;
	}
	if (!strcmp(w[0], "max_key_per_request"))
		return num(w[1], 1, 1024, &c->max_key_per_request);
	if (!strcmp(w[0], "min_key_size"))
		return num(w[1], 8, 4096 * 8, &c->min_key_bits);
	if (!strcmp(w[0], "max_key_size"))
		return num(w[1], 8, 4096 * 8, &c->max_key_bits);
	if (!strcmp(w[0], "threads"))
		return num(w[1], 1, 64, &c->threads);
	if (!strcmp(w[0], "connection_timeout"))
		return num(w[1], 1, 3600, &c->conn_timeout);
	if (!strcmp(w[0], "connection_limit"))
		return num(w[1], 1, 65536, &c->conn_limit);
	return -1;
}

int kme_config_parse(struct kme_config *c, const char *text, size_t len,
		     char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	char buf[1024];
	int ln = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t l = (nl ? nl : end) - p;

		ln++;
		if (l >= sizeof(buf) || memchr(p, 0, l)) {
			snprintf(err, errlen, "line %d: too long or not text", ln);
			return -1;
		}
		memcpy(buf, p, l);
		buf[l] = 0;
		if (line(c, buf)) {
			snprintf(err, errlen, "line %d: invalid (see qkd-kme --help)", ln);
			return -1;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

int kme_config_load(struct kme_config *c, const char *path, char *err, size_t errlen)
{
	char text[65536], e[160];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	n = fread(text, 1, sizeof(text), f);
	fclose(f);
	if (n == sizeof(text)) {
		snprintf(err, errlen, "%s: larger than 64 KiB", path);
		return -1;
	}
	if (kme_config_parse(c, text, n, e, sizeof(e))) {
		snprintf(err, errlen, "%s: %s", path, e);
		return -1;
	}
	return 0;
}

int kme_listen_is_loopback(const struct kme_config *c)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, c->listen_addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, c->listen_addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

int kme_config_check(const struct kme_config *c, char *err, size_t errlen)
{
	if (!*c->kme_id)
		return snprintf(err, errlen, "no kme_id"), -1;
	if (!c->npairs)
		return snprintf(err, errlen, "no pair: nothing to serve"), -1;
	if (!*c->cert || !*c->key)
		return snprintf(err, errlen, "cert and key are required (HTTPS only)"), -1;
	if (c->verify_client && !*c->ca)
		return snprintf(err, errlen, "verify_client yes needs ca (the SAEs' CA)"), -1;
	if (!c->verify_client && !kme_listen_is_loopback(c))
		return snprintf(err, errlen,
				"refusing to listen on %s without client-certificate verification: "
				"keys would go to anyone who can connect (verify_client yes, or a "
				"loopback address)", c->listen_addr), -1;
	if (c->min_key_bits > c->max_key_bits || c->min_key_bits % 8 || c->max_key_bits % 8)
		return snprintf(err, errlen, "min_key_size/max_key_size: multiples of 8, min <= max"), -1;
	return 0;
}

const struct kme_pair *kme_pair_find(const struct kme_config *c, const char *master,
				     const char *slave)
{
	for (size_t i = 0; i < c->npairs; i++)
		if (!strcmp(c->pairs[i].master, master) && !strcmp(c->pairs[i].slave, slave))
			return &c->pairs[i];
	return NULL;
}
