// SPDX-License-Identifier: GPL-2.0
/*
 * Authentication key pool (see qkd/keypool.h).
 *
 * On disk a pool is two files:
 *   PATH        the key bytes; pool offset o is file offset o. Only grows
 *               (qkd_keypool_append); spent bytes are overwritten with zeros
 *               and, where the file system can, the blocks are punched out.
 *   PATH.spent  the record of spent ranges: a 16-byte header ("QKDSPNT1",
 *               8 reserved bytes) then records of two little-endian u64,
 *               [start, end), appended and fdatasync'ed BEFORE the key bytes
 *               are handed out, so that a crash can never make a pool forget
 *               that a key was used. A torn trailing record (crash during the
 *               write, i.e. before the key was returned) is cut off on open.
 *               It is compacted now and then by writing the merged ranges to
 *               a new file and renaming it over the old one.
 *
 * Every operation holds flock(LOCK_EX) on PATH (and a mutex for threads of
 * one process) and first reads the records other processes appended since
 * its last look, so several modules can share one pool.
 *
 * A missing spent record is an error, not an empty one: starting over with
 * an empty record would hand out used key again.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qkd/keypool.h"
#include "mac-impl.h"

#define LOG_MAGIC "QKDSPNT1"
#define LOG_HDR 16
#define LOG_REC 16
#define COMPACT_SLACK 4096 /* records beyond the merged set before compacting */

struct range {
	uint64_t start, end;
};

struct qkd_keypool {
	int fd;		  /* key bytes */
	int log_fd;	  /* spent record */
	char *log_path;
	ino_t log_ino;
	uint64_t log_pos; /* bytes of the record already merged */
	uint64_t log_recs;
	struct range *r;  /* merged, sorted, disjoint, non-adjacent */
	size_t n, cap;
	uint64_t spent;	  /* sum of range lengths */
	pthread_mutex_t mu;
};

/* ---- the merged range set ------------------------------------------- */

static int range_add(struct qkd_keypool *kp, uint64_t s, uint64_t e)
{
	size_t i = 0, j;

	if (s >= e)
		return 0;
	/* first range whose end reaches s */
	while (i < kp->n && kp->r[i].end < s)
		i++;
	j = i;
	/* absorb every range overlapping or touching [s, e) */
	while (j < kp->n && kp->r[j].start <= e) {
		if (kp->r[j].start < s)
			s = kp->r[j].start;
		if (kp->r[j].end > e)
			e = kp->r[j].end;
		kp->spent -= kp->r[j].end - kp->r[j].start;
		j++;
	}
	if (i == j) {
		if (kp->n == kp->cap) {
			size_t cap = kp->cap ? kp->cap * 2 : 16;
			struct range *nr = realloc(kp->r, cap * sizeof(*nr));

			if (!nr)
				return -ENOMEM;
			kp->r = nr;
			kp->cap = cap;
		}
		memmove(kp->r + i + 1, kp->r + i, (kp->n - i) * sizeof(*kp->r));
		kp->n++;
	} else if (j > i + 1) {
		memmove(kp->r + i + 1, kp->r + j, (kp->n - j) * sizeof(*kp->r));
		kp->n -= j - i - 1;
	}
	kp->r[i].start = s;
	kp->r[i].end = e;
	kp->spent += e - s;
	return 0;
}

static bool range_overlaps(const struct qkd_keypool *kp, uint64_t s, uint64_t e)
{
	for (size_t i = 0; i < kp->n && kp->r[i].start < e; i++)
		if (kp->r[i].end > s)
			return true;
	return false;
}

/* ---- the spent record ------------------------------------------------ */

static int read_full(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
	return 0;
}

static int log_open(struct qkd_keypool *kp)
{
	uint8_t hdr[LOG_HDR];
	struct stat st;
	int fd, rc;

	fd = open(kp->log_path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size < LOG_HDR) {
		close(fd);
		return -EBADMSG;
	}
	rc = read_full(fd, hdr, LOG_HDR, 0);
	if (rc || memcmp(hdr, LOG_MAGIC, 8)) {
		close(fd);
		return rc ? rc : -EBADMSG;
	}
	if (kp->log_fd >= 0)
		close(kp->log_fd);
	kp->log_fd = fd;
	kp->log_ino = st.st_ino;
	kp->log_pos = LOG_HDR;
	kp->log_recs = 0;
	kp->n = 0;
	kp->spent = 0;
	return 0;
}

/* Merge the records appended since our last look (caller holds the lock). */
static int refresh(struct qkd_keypool *kp)
{
	struct stat st;
	uint8_t buf[LOG_REC * 256];
	int rc;

	/* compacted by another process: the path names a new file */
	if (stat(kp->log_path, &st) < 0)
		return -errno;
	if (st.st_ino != kp->log_ino) {
		rc = log_open(kp);
		if (rc)
			return rc;
	}
	if (fstat(kp->log_fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < kp->log_pos)
		return -EBADMSG;
	/* a torn trailing record: the take that wrote it never returned key */
	if ((st.st_size - LOG_HDR) % LOG_REC) {
		st.st_size -= (st.st_size - LOG_HDR) % LOG_REC;
		if (ftruncate(kp->log_fd, st.st_size) < 0)
			return -errno;
	}
	while (kp->log_pos < (uint64_t)st.st_size) {
		size_t len = (uint64_t)st.st_size - kp->log_pos;

		if (len > sizeof(buf))
			len = sizeof(buf);
		rc = read_full(kp->log_fd, buf, len, (off_t)kp->log_pos);
		if (rc)
			return rc;
		for (size_t i = 0; i < len; i += LOG_REC) {
			uint64_t s = qkd_le64(buf + i), e = qkd_le64(buf + i + 8);

			if (s > e)
				return -EBADMSG;
			rc = range_add(kp, s, e);
			if (rc)
				return rc;
			kp->log_recs++;
		}
		kp->log_pos += len;
	}
	return 0;
}

/* Rewrite the record as the merged ranges; atomic through rename. */
static int compact(struct qkd_keypool *kp)
{
	size_t plen = strlen(kp->log_path) + 8;
	char *tmp = malloc(plen);
	uint8_t rec[LOG_REC], hdr[LOG_HDR] = LOG_MAGIC;
	int fd, rc = 0;

	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, plen, "%s.new", kp->log_path);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = write_full(fd, hdr, LOG_HDR, -1);
	for (size_t i = 0; !rc && i < kp->n; i++) {
		qkd_put_le64(rec, kp->r[i].start);
		qkd_put_le64(rec + 8, kp->r[i].end);
		rc = write_full(fd, rec, LOG_REC, -1);
	}
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, kp->log_path) < 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		goto out;
	}
	rc = log_open(kp);
	if (!rc)
		rc = refresh(kp);
out:
	free(tmp);
	return rc;
}

/* Record [s, e) as spent, durably, before anyone sees the key. */
static int mark_spent(struct qkd_keypool *kp, uint64_t s, uint64_t e)
{
	uint8_t rec[LOG_REC];
	int rc;

	qkd_put_le64(rec, s);
	qkd_put_le64(rec + 8, e);
	rc = write_full(kp->log_fd, rec, LOG_REC, -1);
	if (!rc && fdatasync(kp->log_fd) < 0)
		rc = -errno;
	if (rc)
		return rc;
	kp->log_pos += LOG_REC;
	kp->log_recs++;
	rc = range_add(kp, s, e);
	if (rc)
		return rc;
	if (kp->log_recs > kp->n + COMPACT_SLACK)
		compact(kp); /* best effort: the long record is still correct */
	return 0;
}

/* Overwrite spent key bytes with zeros and free the blocks if possible. */
static void wipe(struct qkd_keypool *kp, uint64_t off, uint64_t len)
{
	static const uint8_t zero[4096];

	while (len) {
		size_t n = len > sizeof(zero) ? sizeof(zero) : len;

		if (write_full(kp->fd, zero, n, (off_t)off))
			break;
		off += n;
		len -= n;
	}
}

static void wipe_punch(struct qkd_keypool *kp, uint64_t off, uint64_t len)
{
	wipe(kp, off, len);
	/* zeros are written first: a punched block's old contents may linger
	 * on the device, overwritten ones do not (modulo the device's own
	 * remapping, which is outside our reach) */
	fallocate(kp->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
}

/* ---- locking ------------------------------------------------------------ */

static int lock(struct qkd_keypool *kp)
{
	int rc;

	pthread_mutex_lock(&kp->mu);
	while (flock(kp->fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			rc = -errno;
			pthread_mutex_unlock(&kp->mu);
			return rc;
		}
	}
	rc = refresh(kp);
	if (rc) {
		flock(kp->fd, LOCK_UN);
		pthread_mutex_unlock(&kp->mu);
	}
	return rc;
}

static void unlock(struct qkd_keypool *kp)
{
	flock(kp->fd, LOCK_UN);
	pthread_mutex_unlock(&kp->mu);
}

static int total_bytes(struct qkd_keypool *kp, uint64_t *total)
{
	struct stat st;

	if (fstat(kp->fd, &st) < 0)
		return -errno;
	*total = (uint64_t)st.st_size;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

/* ---- API --------------------------------------------------------------- */

int qkd_keypool_create(const char *path, const void *key, size_t len)
{
	size_t plen = strlen(path) + 7;
	char *log_path = malloc(plen);
	uint8_t hdr[LOG_HDR] = LOG_MAGIC;
	int fd = -1, lfd = -1, rc = 0;

	if (!log_path)
		return -ENOMEM;
	snprintf(log_path, plen, "%s.spent", path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	lfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (lfd < 0) {
		rc = -errno;
		unlink(path);
		goto out;
	}
	rc = write_full(fd, key, len, 0);
	if (!rc)
		rc = write_full(lfd, hdr, LOG_HDR, 0);
	if (!rc && (fsync(fd) < 0 || fsync(lfd) < 0))
		rc = -errno;
	if (rc) {
		unlink(path);
		unlink(log_path);
	}
out:
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	free(log_path);
	return rc;
}

struct qkd_keypool *qkd_keypool_open(const char *path)
{
	struct qkd_keypool *kp = calloc(1, sizeof(*kp));
	size_t plen = strlen(path) + 7;
	int rc;

	if (!kp) {
		errno = ENOMEM;
		return NULL;
	}
	kp->fd = kp->log_fd = -1;
	pthread_mutex_init(&kp->mu, NULL);
	kp->log_path = malloc(plen);
	if (!kp->log_path) {
		rc = -ENOMEM;
		goto fail;
	}
	snprintf(kp->log_path, plen, "%s.spent", path);
	kp->fd = open(path, O_RDWR | O_CLOEXEC);
	if (kp->fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = log_open(kp);
	if (rc)
		goto fail;
	rc = lock(kp);
	if (rc)
		goto fail;
	/* finish wiping whatever a crash may have left between record and wipe */
	for (size_t i = 0; i < kp->n; i++)
		fallocate(kp->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)kp->r[i].start, (off_t)(kp->r[i].end - kp->r[i].start));
	unlock(kp);
	return kp;
fail:
	qkd_keypool_close(kp);
	errno = -rc;
	return NULL;
}

void qkd_keypool_close(struct qkd_keypool *kp)
{
	if (!kp)
		return;
	if (kp->fd >= 0) {
		fdatasync(kp->fd); /* the wipes */
		close(kp->fd);
	}
	if (kp->log_fd >= 0)
		close(kp->log_fd);
	pthread_mutex_destroy(&kp->mu);
	free(kp->r);
	free(kp->log_path);
	free(kp);
}

/* Hand out [off, off + len): read, record as spent, wipe. Lock held. */
static int take_range(struct qkd_keypool *kp, uint64_t off, size_t len, void *out)
{
	int rc = read_full(kp->fd, out, len, (off_t)off);

	if (rc)
		return rc;
	/* a wiped (or never-written) range is never key: 16 zero bytes from a
	 * good source have probability 2^-128 */
	if (len >= 16 && all_zero(out, len)) {
		explicit_bzero(out, len);
		return -EKEYREJECTED;
	}
	rc = mark_spent(kp, off, off + len);
	if (rc) {
		explicit_bzero(out, len);
		return rc;
	}
	wipe_punch(kp, off, len);
	return 0;
}

int qkd_keypool_take(struct qkd_keypool *kp, size_t len, void *out, uint64_t *offset)
{
	uint64_t total, pos = 0;
	int rc;

	if (!len)
		return -EINVAL;
	rc = lock(kp);
	if (rc)
		return rc;
	rc = total_bytes(kp, &total);
	if (rc)
		goto out;
	/* lowest gap between spent ranges that holds len bytes */
	for (size_t i = 0; i <= kp->n; i++) {
		uint64_t end = i < kp->n ? kp->r[i].start : total;

		if (end > total)
			end = total;
		if (end >= pos && end - pos >= len)
			break;
		if (i == kp->n) {
			rc = -ENOSPC;
			goto out;
		}
		pos = kp->r[i].end;
	}
	rc = take_range(kp, pos, len, out);
	if (!rc)
		*offset = pos;
out:
	unlock(kp);
	return rc;
}

int qkd_keypool_take_at(struct qkd_keypool *kp, uint64_t offset, size_t len, void *out)
{
	uint64_t total;
	int rc;

	if (!len || offset + len < offset)
		return -EINVAL;
	rc = lock(kp);
	if (rc)
		return rc;
	rc = total_bytes(kp, &total);
	if (rc)
		goto out;
	if (offset + len > total)
		rc = -ENODATA; /* not (yet) in this pool */
	else if (range_overlaps(kp, offset, offset + len))
		rc = -EKEYREJECTED;
	else
		rc = take_range(kp, offset, len, out);
out:
	unlock(kp);
	return rc;
}

int qkd_keypool_append(struct qkd_keypool *kp, const void *key, size_t len)
{
	uint64_t total;
	int rc;

	if (!len)
		return 0;
	rc = lock(kp);
	if (rc)
		return rc;
	rc = total_bytes(kp, &total);
	/*
	 * No fdatasync here (it costs a journal commit per append): other
	 * processes see the bytes at once through the page cache, and a crash
	 * that loses appended bytes cannot make key be reused, since spent
	 * ranges are durable and bytes re-appended at spent offsets are never
	 * handed out; the pools of the two sides may then differ, which qkd-auth
	 * detects. close() syncs.
	 */
	if (!rc)
		rc = write_full(kp->fd, key, len, (off_t)total);
	if (rc) /* a partial append must not become key: cut it off */
		if (ftruncate(kp->fd, (off_t)total) < 0)
			rc = -errno;
	unlock(kp);
	return rc;
}

int qkd_keypool_stat(struct qkd_keypool *kp, uint64_t *available, uint64_t *total,
		     uint64_t *spent)
{
	uint64_t t, s = 0;
	int rc = lock(kp);

	if (rc)
		return rc;
	rc = total_bytes(kp, &t);
	if (!rc) {
		/* ranges are only ever recorded inside the pool, but be exact */
		for (size_t i = 0; i < kp->n; i++)
			if (kp->r[i].start < t)
				s += (kp->r[i].end < t ? kp->r[i].end : t) - kp->r[i].start;
		if (available)
			*available = t - s;
		if (total)
			*total = t;
		if (spent)
			*spent = s;
	}
	unlock(kp);
	return rc;
}
