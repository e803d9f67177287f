/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VICI, strongSwan's control protocol (the "Versatile IKE Control Interface"
 * spoken by charon's vici plugin and by swanctl), implemented from its
 * published wire format because Debian ships no header for libvici.
 *
 * Three layers:
 *  - transport: byte sequences over a stream socket, each prefixed with a
 *    32-bit big-endian length (at most VICI_MAX_SEGMENT bytes);
 *  - packet: one type byte, for named types an 8-bit length and the name,
 *    then a message;
 *  - message: a flat sequence of elements forming a tree of sections,
 *    key/values and (non-nested) lists of items.
 *
 * The builder keeps its buffer wiped on growth and free, because requests
 * such as load-shared carry key material. The parser never trusts its input:
 * every length is bounds-checked and the structure (balanced sections, lists
 * only in sections, items only in lists, depth limit) is enforced, so a
 * broken or hostile daemon gives -EBADMSG, never a crash.
 *
 * All functions return 0 (or a count) on success and a negative errno.
 */
#ifndef QKD_VICI_H
#define QKD_VICI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* charon's limit for one transport segment (length field excluded). */
#define VICI_MAX_SEGMENT	(512 * 1024)
/* Deepest section nesting we accept; charon's own messages use < 8. */
#define VICI_MAX_DEPTH		32
/* Default socket of a stock charon. */
#define VICI_DEFAULT_SOCKET	"/var/run/charon.vici"

enum vici_packet_type {
	VICI_CMD_REQUEST	= 0,	/* named */
	VICI_CMD_RESPONSE	= 1,
	VICI_CMD_UNKNOWN	= 2,
	VICI_EVENT_REGISTER	= 3,	/* named */
	VICI_EVENT_UNREGISTER	= 4,	/* named */
	VICI_EVENT_CONFIRM	= 5,
	VICI_EVENT_UNKNOWN	= 6,
	VICI_EVENT		= 7,	/* named */
};

enum vici_element_type {
	VICI_END		= 0,	/* parser only: end of message */
	VICI_SECTION_START	= 1,
	VICI_SECTION_END	= 2,
	VICI_KEY_VALUE		= 3,
	VICI_LIST_START		= 4,
	VICI_LIST_ITEM		= 5,
	VICI_LIST_END		= 6,
};

/* True for packet types that carry a name after the type byte. */
static inline bool vici_packet_is_named(unsigned int type)
{
	return type == VICI_CMD_REQUEST || type == VICI_EVENT_REGISTER ||
	       type == VICI_EVENT_UNREGISTER || type == VICI_EVENT;
}

const char *vici_packet_type_name(unsigned int type);

/* ---- message builder ---------------------------------------------------- */

struct vici_builder {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int depth;		/* open sections */
	bool in_list;
	int err;		/* first error; later calls are no-ops */
};

void vici_builder_init(struct vici_builder *b);
/* Wipes and frees the buffer; the builder may be reused after init. */
void vici_builder_free(struct vici_builder *b);

/*
 * Each call appends one element. Errors (-EINVAL for a name longer than 255
 * bytes or an element where the structure forbids it, -EMSGSIZE for a value
 * over 65535 bytes or a message over the segment limit, -ENOMEM) are sticky:
 * they are returned by this call and by vici_builder_finish().
 */
int vici_begin_section(struct vici_builder *b, const char *name);
int vici_end_section(struct vici_builder *b);
int vici_add_kv(struct vici_builder *b, const char *name, const void *value, size_t len);
int vici_add_kv_str(struct vici_builder *b, const char *name, const char *value);
int vici_begin_list(struct vici_builder *b, const char *name);
int vici_add_item(struct vici_builder *b, const void *value, size_t len);
int vici_add_item_str(struct vici_builder *b, const char *value);
int vici_end_list(struct vici_builder *b);
/* 0 if the message is complete and balanced, else the first error. */
int vici_builder_finish(const struct vici_builder *b);

/* ---- message parser ----------------------------------------------------- */

struct vici_element {
	enum vici_element_type type;
	const char *name;	/* not NUL-terminated; NULL for unnamed types */
	size_t name_len;
	const uint8_t *value;	/* KEY_VALUE and LIST_ITEM only */
	size_t value_len;
	int depth;		/* section depth the element lives in (root 0) */
};

struct vici_parser {
	const uint8_t *msg;
	size_t len;
	size_t off;
	int depth;
	bool in_list;
	bool done;
};

void vici_parser_init(struct vici_parser *p, const void *msg, size_t len);
/*
 * Next element: 1 and *el filled, 0 at the (well-formed) end of the message
 * (el->type == VICI_END), -EBADMSG for truncated or malformed input.
 */
int vici_parser_next(struct vici_parser *p, struct vici_element *el);
/* Walk the whole message: 0 if well-formed, else -EBADMSG. */
int vici_message_validate(const void *msg, size_t len);

/* Does the element's name equal the NUL-terminated string? */
bool vici_name_is(const struct vici_element *el, const char *name);

/*
 * Look up a key/value by path: section names and the key joined with '.',
 * e.g. "success" or "uptime.since". Fills value and vlen (pointing into msg).
 * 0, -ENOENT if absent, -EBADMSG if the message is malformed.
 */
int vici_find(const void *msg, size_t len, const char *path,
	      const uint8_t **value, size_t *vlen);
/*
 * Copy a value found by path into out as a NUL-terminated string. -ENOENT,
 * -EBADMSG, -ENAMETOOLONG if it does not fit, -EILSEQ if it holds a NUL.
 */
int vici_find_str(const void *msg, size_t len, const char *path, char *out, size_t outlen);

/*
 * Call fn for each item of the list at path (e.g. "keys"). Returns the
 * number of items, -ENOENT if there is no such list, -EBADMSG, or the first
 * negative value returned by fn (which stops the walk).
 */
int vici_list_foreach(const void *msg, size_t len, const char *path,
		      int (*fn)(const uint8_t *item, size_t len, void *arg), void *arg);

/*
 * Print a message as swanctl-like text, for diagnostics. Values that are not
 * printable text are shown as their length only, never as bytes.
 */
int vici_message_print(FILE *out, const void *msg, size_t len);

/* ---- packets ------------------------------------------------------------- */

struct vici_packet {
	uint8_t type;
	char name[256];		/* NUL-terminated; empty for unnamed types */
	const uint8_t *msg;	/* points into the parsed buffer */
	size_t msg_len;
};

/* Decode one transport payload (length prefix already removed). */
int vici_packet_parse(const void *buf, size_t len, struct vici_packet *pkt);

/* ---- connection ---------------------------------------------------------- */

struct vici_conn {
	int fd;
	int timeout_ms;		/* per receive; <= 0 waits forever */
	uint8_t *rx;		/* last received segment, wiped on reuse */
	size_t rx_len;
	size_t rx_cap;
};

/*
 * Connect to charon's unix socket. -ENOENT if the socket does not exist,
 * -ECONNREFUSED if nobody listens on it, other -errno.
 */
int vici_connect(struct vici_conn *c, const char *path, int timeout_ms);
void vici_close(struct vici_conn *c);

/* Send one packet; name may be NULL for unnamed types, msg NULL for none. */
int vici_send(struct vici_conn *c, unsigned int type, const char *name,
	      const void *msg, size_t len);
/*
 * Receive one packet into c's buffer; pkt points into it until the next
 * receive. -ETIMEDOUT, -ECONNRESET (peer closed), -EBADMSG (bad framing).
 */
int vici_recv(struct vici_conn *c, struct vici_packet *pkt);

/*
 * Issue a command and wait for its response. Events that arrive meanwhile go
 * to on_event (or are dropped when it is NULL); a negative return from it
 * aborts the wait (the connection is then out of step: close it). The
 * response stays valid in
 * *resp until the next receive on c. -EOPNOTSUPP if charon does not know
 * the command, -EPROTO on an unexpected packet type.
 */
int vici_request(struct vici_conn *c, const char *cmd, const struct vici_builder *req,
		 struct vici_packet *resp,
		 int (*on_event)(const struct vici_packet *ev, void *arg), void *arg);

/* Register/unregister for a named event. -ENOENT if charon has no such event. */
int vici_register(struct vici_conn *c, const char *event);
int vici_unregister(struct vici_conn *c, const char *event);

/*
 * A streaming command (list-sas, list-conns, ...): register for event,
 * request cmd, hand each event to on_event, unregister. *resp as above.
 * Should on_event fail (or an event's message be malformed), later events
 * are not passed on but still read, so the connection stays in step, and
 * that error is returned.
 */
int vici_request_stream(struct vici_conn *c, const char *cmd, const struct vici_builder *req,
			const char *event,
			int (*on_event)(const struct vici_packet *ev, void *arg), void *arg,
			struct vici_packet *resp);

/*
 * Interpret a command's { success = yes|no, errmsg = ... } reply: 0 if
 * success is "yes"; otherwise -EREMOTEIO with charon's errmsg (or a generic
 * text) copied into errbuf. -EBADMSG if the reply is malformed.
 */
int vici_check_success(const struct vici_packet *resp, char *errbuf, size_t errlen);

#endif
