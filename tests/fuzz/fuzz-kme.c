// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for qkd-kme's ETSI 014 request handler (keystore/qkd-kme/api.c):
 * the JSON request parser, the query arguments, the routes and the key
 * container writer, on a key source in memory (8 keys of link "ab").
 *
 * Input: one selector byte (method, route, caller SAE, master or slave side,
 * whether the rest is the path), then the body (or the GET arguments,
 * "number&size&key_ID"). Each input is handled twice on the same source;
 * every response must be a JSON object with an ETSI status code, a 200 must
 * hold well-formed key_IDs of link "ab" with 32-byte keys at most, and no
 * key_ID may be handed out twice across the two answers.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../keystore/qkd-kme/api.h"
#include "../../keystore/qkd-kme/keyid.h"

static const char keys[] =
	"ab 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
	"ab 2 0102030405060708091011121314151617181920212223242526272829303132\n"
	"ab 3 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"
	"ab 4 a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n"
	"ab 5 c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf\n"
	"ab 6 e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\n"
	"ab 7 1011121314151617181920212223242526272829303132333435363738394041\n"
	"ab 8 5051525354555657585960616263646566676869707172737475767778798081\n";

static const char *const saes[] = { "SAE_A", "SAE_B", "SAE_C", NULL };
static const char *const routes[] = { "status", "enc_keys", "dec_keys", "x" };

static void check(const struct kme_resp *rs, char seen[][KME_UUID_LEN + 1], size_t *nseen)
{
	json_t *j, *a, *k;
	size_t i;

	if (rs->status != 200 && rs->status != 400 && rs->status != 401 && rs->status != 404 &&
	    rs->status != 405 && rs->status != 503)
		abort();
	j = json_loadb(rs->body, rs->len, 0, NULL);
	if (!json_is_object(j))
		abort();
	if (rs->status != 200 && !json_is_string(json_object_get(j, "message")))
		abort();
	a = json_object_get(j, "keys");
	if (rs->has_keys && !json_is_array(a))
		abort();
	json_array_foreach(a, i, k) {
		const char *id = json_string_value(json_object_get(k, "key_ID"));
		const char *key = json_string_value(json_object_get(k, "key"));
		uint64_t kid;
		size_t len;

		if (!id || !key || kme_keyid_parse("ab", id, &kid, &len) || len > 32 ||
		    strlen(key) != (len + 2) / 3 * 4)
			abort();
		for (size_t s = 0; s < *nseen; s++)
			if (!strcmp(seen[s], id))
				abort();	/* the same key handed out twice */
		if (*nseen < 16)
			strcpy(seen[(*nseen)++], id);
	}
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kme_config cfg[2];
	static int ready;
	char seen[16][KME_UUID_LEN + 1], path[256], args[3][128];
	size_t nseen = 0;
	struct keysrc *src;
	struct kme_req rq = { 0 };
	struct kme_resp rs;
	uint8_t sel;

	if (!ready) {
		static const char m[] = "kme_id KME_A\npair ab SAE_A SAE_B KME_B master\n"
					"max_key_per_request 4\n";
		static const char s[] = "kme_id KME_B\npair ab SAE_A SAE_B KME_A slave\n"
					"max_key_per_request 4\n";
		char err[128];

		kme_config_defaults(&cfg[0]);
		kme_config_defaults(&cfg[1]);
		if (kme_config_parse(&cfg[0], m, sizeof(m) - 1, err, sizeof(err)) ||
		    kme_config_parse(&cfg[1], s, sizeof(s) - 1, err, sizeof(err)))
			abort();
		ready = 1;
	}
	if (!size)
		return 0;
	sel = data[0];
	data++;
	size--;
	if (keysrc_mem_open(&src, keys, sizeof(keys) - 1))
		abort();
	struct kme_ctx ctx = { .cfg = &cfg[(sel >> 5) & 1], .src = src };

	rq.method = sel & 1 ? "POST" : "GET";
	rq.sae = saes[(sel >> 3) & 3];
	if (sel & 0x40) {
		size_t n = size < sizeof(path) - 1 ? size : sizeof(path) - 1;

		memcpy(path, data, n);
		path[n] = 0;
	} else {
		snprintf(path, sizeof(path), "/api/v1/keys/%s/%s",
			 (sel >> 1) & 3 ? ((sel >> 1) & 3) == 2 ? "SAE_A" : "SAE_B" : "SAE_B",
			 routes[(sel >> 1) & 3]);
	}
	rq.path = path;
	rq.body = (const char *)data;
	rq.body_len = size;
	if (!(sel & 1)) {
		const char *p = (const char *)data, *end = p + size;

		for (int i = 0; i < 3; i++) {
			const char *amp = memchr(p, '&', end - p);
			size_t n = (amp ? amp : end) - p;

			n = n < sizeof(args[i]) - 1 ? n : sizeof(args[i]) - 1;
			memcpy(args[i], p, n);
			args[i][n] = 0;
			p = amp ? amp + 1 : end;
		}
		rq.number = *args[0] ? args[0] : NULL;
		rq.size = *args[1] ? args[1] : NULL;
		rq.key_id = *args[2] ? args[2] : NULL;
	}
	for (int round = 0; round < 2; round++) {
		kme_handle(&ctx, &rq, &rs);
		check(&rs, seen, &nseen);
		kme_resp_free(&rs);
	}
	keysrc_close(src);
	return 0;
}
