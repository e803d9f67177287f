// SPDX-License-Identifier: GPL-2.0
/*
 * Loaded pipeline definitions survive a restart of the QPM: each accepted
 * document is kept as RUN_DIR/pipelines/NAME.xml (written atomically) and
 * loaded again at start-up, together with how the pipeline last ended (see
 * qpm_pipeline_restore), so a hibernated pipeline can be resumed by a new QPM.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qpm.h"

static void dir_of(char *buf, size_t len)
{
	snprintf(buf, len, "%s/pipelines", qpm.run_dir);
}

int qpm_persist_save(const char *name, const char *xml, size_t len)
{
	char dir[PATH_MAX], path[PATH_MAX + 80], tmp[PATH_MAX + 96];
	int fd;

	dir_of(dir, sizeof(dir));
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s.xml", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.xml.tmp", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, xml, len) != (ssize_t)len || fsync(fd)) {
		close(fd);
		unlink(tmp);
		return -EIO;
	}
	close(fd);
	if (rename(tmp, path)) {
		unlink(tmp);
		return -errno;
	}
	return 0;
}

void qpm_persist_remove(const char *name)
{
	char dir[PATH_MAX], path[PATH_MAX + 80];

	dir_of(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s.xml", dir, name);
	unlink(path);
}

void qpm_persist_load_all(void)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;

	dir_of(dir, sizeof(dir));
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 300];
		struct qkd_buf err = { 0 };
		struct qpm_pipeline *pl, **pp;
		size_t l = strlen(e->d_name);
		char *buf;
		long n;
		FILE *f;

		if (e->d_name[0] == '.' || l < 5 || strcmp(e->d_name + l - 4, ".xml"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		buf = n > 0 && n <= (long)QKD_COAP_MAX_BODY ? malloc((size_t)n) : NULL;
		if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
			qpm_log(QPM_WARN, "%s: cannot read, skipped", path);
			free(buf);
			fclose(f);
			continue;
		}
		fclose(f);
		/* Checked again: the schema or the module directories may have changed. */
		pl = qpm_pipeline_load(buf, (size_t)n, path, &err);
		free(buf);
		if (!pl) {
			qpm_log(QPM_WARN, "kept definition no longer loads:\n%s",
				err.s ? err.s : "");
			qkd_buf_free(&err);
			continue;
		}
		if (qpm_pipeline_find(pl->name)) {
			qpm_pipeline_free(pl);
			continue;
		}
		qpm_pipeline_restore(pl);
		for (pp = &qpm.pipelines; *pp; pp = &(*pp)->next)
			;
		*pp = pl;
		qpm_log(QPM_INFO, "pipeline %s reloaded from %s (%s)", pl->name, path,
			qpm_state_name(pl->state));
	}
	closedir(d);
}
