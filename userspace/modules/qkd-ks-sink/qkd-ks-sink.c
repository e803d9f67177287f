// SPDX-License-Identifier: GPL-2.0
/*
 * qkd-ks-sink: the last pipeline stage. Pushes every final (AUTHENTICATED) key
 * block into the kernel key store under its key id, over generic netlink.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qkd/module.h"
#include "../../../keystore/lib/qksc.h"

static char *p_link;
static bool p_create;
static int64_t p_key_bytes;
static int64_t p_retry_ms;

static struct qkd_param params[] = {
	{ "link", QKD_PARAM_STRING, "",
	  "Key store link to push into (required; 1-31 of [A-Za-z0-9._-])", false, &p_link, 0, 0 },
	{ "create", QKD_PARAM_BOOL, "false",
	  "Create the link (module defaults for its limits) if it does not exist", false,
	  &p_create, 0, 0 },
	{ "key-bytes", QKD_PARAM_INT, "0",
	  "0: one key per block under the block's key id (a block must then fit in 4096 "
	  "bytes); N: cut each block into keys of N bytes with ids key_id * 65536 + i",
	  false, &p_key_bytes, 0, QKD_KEY_MAX_BYTES },
	{ "retry-ms", QKD_PARAM_INT, "100",
	  "While the link is full, retry a push every this many milliseconds", true,
	  &p_retry_ms, 1, 60000 },
	{ NULL },
};

static const struct qkd_module_desc desc = {
	.name = "qkd-ks-sink",
	.stage = "ks-sink",
	.summary = "push final keys into the kernel key store (qkd_keystore.ko)",
	.description =
		"Reads AUTHENTICATED frames, the pipeline's final keys, and pushes each one "
		"into the kernel key store on the given link, in the network namespace the "
		"sink runs in, through the \"qkd_keystore\" generic-netlink family (needs "
		"CAP_NET_ADMIN). Both peers run a sink; since their blocks carry the same key "
		"ids, both kernels end up holding the same key under the same id.\n\n"
		"A key is the block's first floor(bit_count / 8) bytes (trailing bits that do "
		"not fill a byte are dropped, identically on both sides). With key-bytes 0 the "
		"whole block is one key under the frame's key id; with key-bytes N the block is "
		"cut into floor(len / N) keys of N bytes, key i getting id key_id * 65536 + i "
		"(the rest, shorter than N, is wiped). Aborted frames carry no key and are "
		"skipped. While the link is full (its key or byte limit), the sink waits and "
		"retries, which back-pressures the pipeline; any other refusal by the kernel "
		"(for example a key id stored already) stops the sink with an error. The sink "
		"wipes every key from its memory after the push. Consumers then take the keys "
		"through the keyring, the key pump or netlink (Documentation/keystore.md).",
	/* Aborted frames come to us (there is no output to forward them to). */
	.needs = QKD_NEEDS_INPUT | QKD_SEES_ABORTED,
	.params = params,
	.examples =
		"Last stage of Alice's pipeline, 256-bit keys:\n"
		"    qkd-auth ... | qkd-ks-sink --link alice-bob --create --key-bytes 32\n\n"
		"Then, for example:\n"
		"    qkdctl link show alice-bob\n"
		"    keyctl search $(cat /sys/module/qkd_keystore/parameters/keyring) qkd "
		"alice-bob:65536",
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Push one key, waiting while the link is full. 0, or -errno (logged). */
static int push_one(struct qkd_module *m, struct qksc *c, uint64_t id, const uint8_t *k,
		    size_t len)
{
	bool said = false;
	int err;

	for (;;) {
		err = qksc_key_push(c, p_link, id, k, len);
		if (err != -ENOSPC && err != -EDQUOT)
			break;
		if (!said) {
			qkd_log(m, QKD_LOG_INFO, "link %s is full (%s); waiting", p_link,
				qksc_error(c));
			said = true;
		}
		if (qkd_module_stopping(m))
			return err;
		sleep_ms(p_retry_ms);
	}
	if (err)
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": push to link %s refused: %s", id,
			p_link, qksc_error(c));
	return err;
}

static int sink_frame(struct qkd_module *m, struct qksc *c, struct qkd_frame *f)
{
	size_t len = (size_t)(f->bit_count / 8), n, i;
	int err = 0;

	if (len > f->payload_len)
		len = f->payload_len;
	if (!p_key_bytes) {
		if (len == 0 || len > QKD_KEY_MAX_BYTES) {
			qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": %zu bytes do not make one key "
				"(1-%d); use key-bytes", f->key_id, len, QKD_KEY_MAX_BYTES);
			return -EMSGSIZE;
		}
		return push_one(m, c, f->key_id, f->payload, len);
	}
	n = len / (size_t)p_key_bytes;
	if (f->key_id >= (1ULL << 48) || n > 65536) {
		qkd_log(m, QKD_LOG_ERR, "key %" PRIu64 ": id above 2^48 or more than 65536 keys "
			"per block; cannot number the keys", f->key_id);
		return -ERANGE;
	}
	for (i = 0; i < n && !err; i++)
		err = push_one(m, c, f->key_id * 65536 + i, f->payload + i * (size_t)p_key_bytes,
			       (size_t)p_key_bytes);
	return err;
}

int main(int argc, char **argv)
{
	struct qkd_module m;
	struct qkd_frame *f = NULL;
	struct qksc *c = NULL;
	struct qksc_link_info li;
	int r, err;

	if (qkd_module_init(&m, &desc, argc, argv))
		return 2;
	if (!p_link || !*p_link) {
		qkd_log(&m, QKD_LOG_ERR, "no link given: use --link NAME");
		qkd_module_fail(&m);
		return qkd_module_finish(&m);
	}
	err = qksc_open(&c);
	if (!err) {
		err = qksc_link_get(c, p_link, &li);
		if (err == -ENOENT && p_create) {
			struct qksc_link_cfg cfg = { .name = p_link, .low_watermark = -1,
						     .uid = -1, .gid = -1 };

			err = qksc_link_add(c, &cfg);
			if (err == -EEXIST)
				err = 0;
		}
	}
	if (err) {
		qkd_log(&m, QKD_LOG_ERR, "key store link %s: %s", p_link,
			c ? qksc_error(c) : strerror(-err));
		qksc_close(c);
		qkd_module_fail(&m);
		return qkd_module_finish(&m);
	}
	while ((r = qkd_module_read(&m, &f)) > 0) {
		if (f->state == QKD_STATE_ABORTED)
			continue;
		if (f->state != QKD_STATE_AUTHENTICATED) {
			qkd_log(&m, QKD_LOG_ERR, "key %" PRIu64 ": input frame is %s, not "
				"authenticated; is qkd-ks-sink behind qkd-auth?", f->key_id,
				qkd_frame_state_name(f->state));
			qkd_module_fail(&m);
			break;
		}
		err = sink_frame(&m, c, f);
		/* The runtime wipes the frame when it frees it; don't keep key bits here. */
		explicit_bzero(f->payload, f->payload_len);
		if (err) {
			qkd_module_fail(&m);
			break;
		}
	}
	if (r < 0)
		qkd_module_fail(&m);
	qksc_close(c);
	return qkd_module_finish(&m);
}
