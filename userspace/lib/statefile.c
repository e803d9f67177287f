// SPDX-License-Identifier: GPL-2.0
/*
 * Hibernation state files (API in qkd/statefile.h).
 *
 * Layout, one record per line, so an operator can read it with cat:
 *
 *	# qkdpipe module state
 *	qkd-state-version=1
 *	module=qkd-sim
 *	role=alice
 *	<key>=<value>            (any number, in insertion order)
 *	crc32=<8 hex digits>     (CRC-32/IEEE over every byte before this line)
 *
 * Saving writes a temporary file in the same directory, fsyncs it, renames it
 * over the target and fsyncs the directory, so a crash leaves either the old
 * or the new state, never a mixture. Loading checks the trailer first, so a
 * truncated or edited file is refused before any value is believed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qkd/statefile.h"

#define STATE_VERSION 1
#define STATE_MAX_SIZE (16u << 20)

struct qkd_state_rec {
	char *key, *value;
};

struct qkd_state {
	char *module, *role;
	struct qkd_state_rec *rec;
	size_t n, cap;
};

static uint32_t crc32_ieee(const void *data, size_t len)
{
	static uint32_t table[256];
	static int ready;
	const uint8_t *p = data;
	uint32_t c = 0xffffffffu;

	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t v = i;

			for (int k = 0; k < 8; k++)
				v = (v & 1) ? 0xedb88320u ^ (v >> 1) : v >> 1;
			table[i] = v;
		}
		__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	}
	while (len--)
		c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

/* Keys are identifiers; values are one line of text. */
static int valid_key(const char *k)
{
	if (!k || !*k || strlen(k) > 128)
		return 0;
	for (; *k; k++)
		if (!(*k == '-' || *k == '_' || *k == '.' || (*k >= '0' && *k <= '9') ||
		      (*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z')))
			return 0;
	return 1;
}

static int valid_value(const char *v)
{
	return v && !strchr(v, '\n') && !strchr(v, '\r') && strlen(v) < 65536;
}

struct qkd_state *qkd_state_new(const char *module, const char *role)
{
	struct qkd_state *s;

	if (!valid_key(module) || !valid_key(role)) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->module = strdup(module);
	s->role = strdup(role);
	if (!s->module || !s->role) {
		qkd_state_free(s);
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

static struct qkd_state_rec *find(const struct qkd_state *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->rec[i].key, key))
			return &s->rec[i];
	return NULL;
}

int qkd_state_set(struct qkd_state *s, const char *key, const char *value)
{
	struct qkd_state_rec *r;
	char *v;

	if (!s || !valid_key(key) || !valid_value(value))
		return -EINVAL;
	/* The header keys are owned by the format. */
	if (!strcmp(key, "qkd-state-version") || !strcmp(key, "module") ||
	    !strcmp(key, "role") || !strcmp(key, "crc32"))
		return -EINVAL;
	v = strdup(value);
	if (!v)
		return -ENOMEM;
	r = find(s, key);
	if (r) {
		free(r->value);
		r->value = v;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct qkd_state_rec *nr = realloc(s->rec, cap * sizeof(*nr));

		if (!nr) {
			free(v);
			return -ENOMEM;
		}
		s->rec = nr;
		s->cap = cap;
	}
	s->rec[s->n].key = strdup(key);
	if (!s->rec[s->n].key) {
		free(v);
		return -ENOMEM;
	}
	s->rec[s->n++].value = v;
	return 0;
}

int qkd_state_set_u64(struct qkd_state *s, const char *key, uint64_t value)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, value);
	return qkd_state_set(s, key, buf);
}

const char *qkd_state_get(const struct qkd_state *s, const char *key)
{
	struct qkd_state_rec *r = s ? find(s, key) : NULL;

	return r ? r->value : NULL;
}

int qkd_state_get_u64(const struct qkd_state *s, const char *key, uint64_t *value)
{
	const char *v = qkd_state_get(s, key);
	char *end;
	unsigned long long x;

	if (!v)
		return -ENOENT;
	if (!*v || *v == '-')
		return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*value = x;
	return 0;
}

void qkd_state_free(struct qkd_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->rec[i].key);
		free(s->rec[i].value);
	}
	free(s->rec);
	free(s->module);
	free(s->role);
	free(s);
}

/* Render everything but the trailer into a malloc'd buffer. */
static char *render(const struct qkd_state *s, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);

	if (!f)
		return NULL;
	fprintf(f, "# qkdpipe module state\nqkd-state-version=%d\nmodule=%s\nrole=%s\n",
		STATE_VERSION, s->module, s->role);
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "%s=%s\n", s->rec[i].key, s->rec[i].value);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	*len = sz;
	return buf;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int qkd_state_save(const struct qkd_state *s, const char *path)
{
	char *body, *tmp = NULL, *dcopy = NULL, trailer[32];
	size_t len;
	int fd = -1, dfd, ret;

	if (!s || !path || !*path)
		return -EINVAL;
	body = render(s, &len);
	if (!body)
		return -ENOMEM;
	snprintf(trailer, sizeof(trailer), "crc32=%08x\n", crc32_ieee(body, len));

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		tmp = NULL;
		ret = -ENOMEM;
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		free(tmp);
		tmp = NULL;
		goto out;
	}
	ret = write_all(fd, body, len);
	if (!ret)
		ret = write_all(fd, trailer, strlen(trailer));
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	fd = -1;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret) {
		unlink(tmp);
		goto out;
	}
	/* Make the rename itself durable. */
	dcopy = strdup(path);
	if (dcopy) {
		dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
out:
	free(dcopy);
	free(tmp);
	free(body);
	return ret;
}

static char *read_file(const char *path, size_t *len, const char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fd < 0) {
		*err = errno == ENOENT ? "no such file" : "cannot open file";
		return NULL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > STATE_MAX_SIZE) {
		*err = "not a regular file of at most 16 MiB";
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		*err = "out of memory";
		close(fd);
		return NULL;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = 0;
	*len = got;
	return buf;
}

struct qkd_state *qkd_state_load(const char *path, const char *module, const char *role,
				 const char **err)
{
	const char *dummy;
	struct qkd_state *s = NULL;
	char *buf, *line, *next, *end, *tr;
	size_t len;
	unsigned long crc;
	int lineno = 0, have_version = 0, have_module = 0, have_role = 0;

	if (!err)
		err = &dummy;
	buf = read_file(path, &len, err);
	if (!buf)
		return NULL;
	if (strlen(buf) != len) {
		*err = "file contains NUL bytes";
		goto fail;
	}
	/* Trailer: the last line, "crc32=xxxxxxxx\n". */
	if (len < 16 || buf[len - 1] != '\n') {
		*err = "truncated (no checksum trailer)";
		goto fail;
	}
	buf[len - 1] = 0;
	tr = strrchr(buf, '\n');
	tr = tr ? tr + 1 : buf;
	if (strncmp(tr, "crc32=", 6) || strlen(tr) != 14) {
		*err = "truncated (no checksum trailer)";
		goto fail;
	}
	crc = strtoul(tr + 6, &end, 16);
	if (*end) {
		*err = "malformed checksum trailer";
		goto fail;
	}
	if ((uint32_t)crc != crc32_ieee(buf, (size_t)(tr - buf))) {
		*err = "checksum mismatch (file corrupted or edited)";
		goto fail;
	}
	*tr = 0;

	s = calloc(1, sizeof(*s));
	if (!s) {
		*err = "out of memory";
		goto fail;
	}
	for (line = buf; *line; line = next) {
		char *eq;

		next = strchr(line, '\n');
		if (!next) {
			*err = "malformed line";
			goto fail;
		}
		*next++ = 0;
		lineno++;
		if (line[0] == '#' || line[0] == 0)
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			*err = "line without '='";
			goto fail;
		}
		*eq = 0;
		if (!strcmp(line, "qkd-state-version")) {
			if (strcmp(eq + 1, "1")) {
				*err = "unsupported state file version";
				goto fail;
			}
			have_version = 1;
		} else if (!strcmp(line, "module")) {
			if (module && strcmp(eq + 1, module)) {
				*err = "state file belongs to another module";
				goto fail;
			}
			free(s->module);
			s->module = strdup(eq + 1);
			have_module = 1;
		} else if (!strcmp(line, "role")) {
			if (role && strcmp(eq + 1, role)) {
				*err = "state file belongs to the other role";
				goto fail;
			}
			free(s->role);
			s->role = strdup(eq + 1);
			have_role = 1;
		} else if (qkd_state_set(s, line, eq + 1)) {
			*err = "invalid record";
			goto fail;
		}
	}
	if (!have_version || !have_module || !have_role || !s->module || !s->role) {
		*err = "missing header (qkd-state-version, module, role)";
		goto fail;
	}
	free(buf);
	return s;
fail:
	qkd_state_free(s);
	free(buf);
	return NULL;
}
