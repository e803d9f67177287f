// SPDX-License-Identifier: GPL-2.0
/*
 * qkd_random(): the one source of secret randomness in libqkd. It reads the
 * kernel's CSPRNG through getrandom(2) (blocking until the pool is
 * initialised), retries short reads and EINTR, and aborts the process if the
 * kernel refuses: continuing with predictable "random" bits would silently
 * break the security of everything downstream (sampling, key pool offsets).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "qkd/module.h"

void qkd_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		/* getrandom returns at most 32 MiB - 1 per call; loop covers it. */
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "qkd_random: getrandom failed: %m; aborting\n");
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
}
