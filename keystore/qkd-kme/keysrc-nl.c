// SPDX-License-Identifier: GPL-2.0
/*
 * Key source: the kernel store, through the qksc generic-netlink client.
 * libnl sockets are not thread-safe; MHD may run handlers on several
 * threads, so one socket is shared under a mutex (a fetch is one round trip).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keysrc.h"
#include "../lib/qksc.h"

struct keysrc_nl {
	struct keysrc base;
	struct qksc *c;
	pthread_mutex_t lock;
};

static int nl_count(struct keysrc *s, const char *link, uint32_t *avail, uint32_t *max)
{
	struct keysrc_nl *n = (struct keysrc_nl *)s;
	struct qksc_link_info li;
	int ret;

	pthread_mutex_lock(&n->lock);
	ret = qksc_link_get(n->c, link, &li);
	pthread_mutex_unlock(&n->lock);
	if (ret)
		return ret;
	*avail = li.keys_avail;
	*max = li.max_keys;
	return 0;
}

static int nl_fetch(struct keysrc *s, const char *link, const uint64_t *id,
		    uint64_t *id_out, uint8_t *buf, size_t *len)
{
	struct keysrc_nl *n = (struct keysrc_nl *)s;
	int ret;

	pthread_mutex_lock(&n->lock);
	ret = qksc_key_fetch(n->c, link, id, id_out, buf, KME_KEY_MAX, len);
	pthread_mutex_unlock(&n->lock);
	return ret;
}

struct find {
	uint64_t id;
	int found;
};

static int nl_find(uint64_t id, uint32_t len, int state, void *arg)
{
	struct find *f = arg;

	if (id == f->id && state == QKD_KEY_AVAILABLE)
		f->found = 1;
	return 0;
}

static int nl_exists(struct keysrc *s, const char *link, uint64_t id)
{
	struct keysrc_nl *n = (struct keysrc_nl *)s;
	struct find f = { .id = id };
	int ret;

	pthread_mutex_lock(&n->lock);
	ret = qksc_key_list(n->c, link, nl_find, &f);
	pthread_mutex_unlock(&n->lock);
	return ret ? ret : f.found;
}

static void nl_close(struct keysrc *s)
{
	struct keysrc_nl *n = (struct keysrc_nl *)s;

	qksc_close(n->c);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

static const struct keysrc_ops nl_ops = {
	.count = nl_count,
	.fetch = nl_fetch,
	.exists = nl_exists,
	.close = nl_close,
};

int keysrc_netlink_open(struct keysrc **out, char *err, size_t errlen)
{
	struct keysrc_nl *n = calloc(1, sizeof(*n));
	int ret;

	if (!n)
		return -ENOMEM;
	ret = qksc_open(&n->c);
	if (ret) {
		snprintf(err, errlen, "key store: %s", n->c ? qksc_error(n->c) : strerror(-ret));
		qksc_close(n->c);
		free(n);
		return ret;
	}
	pthread_mutex_init(&n->lock, NULL);
	n->base.ops = &nl_ops;
	*out = &n->base;
	return 0;
}
