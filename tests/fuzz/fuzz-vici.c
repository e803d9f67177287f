// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the VICI decoder, i.e. everything qkd-ppk does with
 * bytes that come from charon's socket: packet parsing, message validation,
 * path lookups, list walks, the diagnostic printer. Beyond "no crash", it
 * checks one property: a message the parser accepts re-encodes through the
 * builder into exactly the same bytes (decoder and encoder agree).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkd/vici.h"

static int count_item(const uint8_t *item, size_t len, void *arg)
{
	size_t *sum = arg;

	*sum += len;
	return 0;
}

/* Rebuild an accepted message element by element and compare the bytes. */
static void check_reencode(const uint8_t *msg, size_t len)
{
	struct vici_parser p;
	struct vici_element el;
	struct vici_builder b;
	char name[256];
	int ret;

	vici_builder_init(&b);
	vici_parser_init(&p, msg, len);
	while ((ret = vici_parser_next(&p, &el)) > 0) {
		if (el.name) {
			/* The builder takes C strings: skip names holding a NUL. */
			if (memchr(el.name, 0, el.name_len))
				goto out;
			memcpy(name, el.name, el.name_len);
			name[el.name_len] = 0;
		}
		switch (el.type) {
		case VICI_SECTION_START:
			ret = vici_begin_section(&b, name);
			break;
		case VICI_SECTION_END:
			ret = vici_end_section(&b);
			break;
		case VICI_KEY_VALUE:
			ret = vici_add_kv(&b, name, el.value, el.value_len);
			break;
		case VICI_LIST_START:
			ret = vici_begin_list(&b, name);
			break;
		case VICI_LIST_ITEM:
			ret = vici_add_item(&b, el.value, el.value_len);
			break;
		case VICI_LIST_END:
			ret = vici_end_list(&b);
			break;
		default:
			abort();
		}
		/* Only the message size limit may differ (the fuzzer's input can
		 * exceed what fits one segment). */
		if (ret)
			goto out;
	}
	if (ret < 0)
		abort();	/* validated before, so the walk cannot fail now */
	if (vici_builder_finish(&b) || b.len != len || (len && memcmp(b.buf, msg, len)))
		abort();
out:
	vici_builder_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *null;
	struct vici_packet pkt;
	const uint8_t *v;
	size_t vlen, sum = 0;
	char buf[64];

	if (!null)
		null = fopen("/dev/null", "w");

	/* As a transport payload, then its message. */
	if (vici_packet_parse(data, size, &pkt) == 0 &&
	    vici_message_validate(pkt.msg, pkt.msg_len) == 0) {
		vici_check_success(&pkt, buf, sizeof(buf));
		vici_find(pkt.msg, pkt.msg_len, "a.b", &v, &vlen);
	}

	/* As a bare message. */
	if (vici_message_validate(data, size) == 0) {
		check_reencode(data, size);
		vici_find_str(data, size, "success", buf, sizeof(buf));
		vici_find_str(data, size, "a.b.c", buf, sizeof(buf));
		vici_list_foreach(data, size, "keys", count_item, &sum);
		vici_list_foreach(data, size, "a.keys", count_item, &sum);
		if (null)
			vici_message_print(null, data, size);
	} else {
		/* Lookups in a rejected message must reject it too. */
		if (vici_find(data, size, "a", &v, &vlen) == 0)
			abort();
		if (vici_list_foreach(data, size, "a", NULL, NULL) >= 0)
			abort();
	}
	return 0;
}
