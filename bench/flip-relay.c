// SPDX-License-Identifier: GPL-2.0
/*
 * flip-relay: the man in the middle of bench/bench-peer-flip.sh. Accepts one
 * connection (Alice's, of one stage) on 127.0.0.1:LISTEN, connects to Bob's
 * stage on 127.0.0.1:TARGET and relays both directions. In direction DIR
 * (0: Alice to Bob, 1: Bob to Alice) it either flips the lowest bit of the
 * byte at stream offset OFF (counted from the first byte of that direction,
 * handshake included) or, with --cut, closes both connections when that byte
 * would be sent (a network flap). It parses the peer framing from the
 * original bytes (Documentation/peer-protocol.md: le32 body length, le16
 * type, u8 kind, u8 ctx, le64 key id) so that it can say where the byte was;
 * the receiver's view of the boundaries may differ after the flip.
 *
 * Usage: flip-relay LISTEN TARGET DIR OFF [--cut]
 * Prints one line: "hit FIELD" (a header field) or
 * "hit body+N kind K type T key ID" or "miss TOTAL0 TOTAL1"
 * (the bytes seen each way) and exits 0 when it flipped or cut, 3 when the
 * stream ended before OFF, 4 on a socket failure.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct track {
	uint8_t hdr[16];
	uint64_t pos;		/* in the current message */
	uint64_t total;		/* of the current message, once its header is in */
	uint64_t seen;		/* bytes of this direction so far */
};

static const char *field(uint64_t pos)
{
	if (pos < 4)
		return "length";
	if (pos < 6)
		return "type";
	if (pos < 7)
		return "kind";
	if (pos < 8)
		return "ctx";
	if (pos < 16)
		return "key-id";
	return "body";
}

static uint64_t le(const uint8_t *b, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/*
 * Relays b[0..n) of one direction; returns how many bytes to send (all, or up
 * to the cut), and sets *hit when the chosen byte was in this chunk.
 */
static size_t relay(struct track *t, bool chosen, uint64_t off, bool cut, uint8_t *b, size_t n,
		    bool *hit)
{
	for (size_t i = 0; i < n; i++, t->seen++) {
		if (chosen && t->seen == off) {
			*hit = true;
			if (t->pos < 16)
				printf("hit %s\n", field(t->pos));
			else
				printf("hit body+%llu kind 0x%02x type %u key %llu\n",
				       (unsigned long long)(t->pos - 16), t->hdr[6],
				       (unsigned int)le(t->hdr + 4, 2),
				       (unsigned long long)le(t->hdr + 8, 8));
			fflush(stdout);
			if (cut)
				return i;
			b[i] ^= 1;
		}
		if (t->pos < 16)
			t->hdr[t->pos] = b[i] ^ (chosen && t->seen == off);
		t->pos++;
		if (t->pos == 16)
			t->total = 16 + le(t->hdr, 4);
		if (t->pos >= 16 && t->pos == t->total)
			t->pos = 0;
	}
	return n;
}

static int connect_port(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)port) };

	for (int i = 0; i < 1500; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a)))
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(20000);
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static uint8_t buf[1 << 16];
	struct track t[2] = { 0 };
	struct pollfd p[2];
	bool open_[2] = { true, true }, hit = false, cut;
	int lfd, fd[2], dir, one = 1;
	uint64_t off;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: flip-relay LISTEN TARGET DIR OFF [--cut]\n");
		return 2;
	}
	dir = atoi(argv[3]);
	off = strtoull(argv[4], NULL, 10);
	cut = argc == 6 && !strcmp(argv[5], "--cut");
	a.sin_port = htons((uint16_t)atoi(argv[1]));
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1)) {
		perror("flip-relay: listen");
		return 4;
	}
	p[0].fd = lfd;
	p[0].events = POLLIN;
	if (poll(p, 1, 60000) != 1)
		return 4;
	fd[0] = accept(lfd, NULL, NULL);
	close(lfd);
	fd[1] = fd[0] < 0 ? -1 : connect_port(atoi(argv[2]));
	if (fd[1] < 0) {
		perror("flip-relay: connect");
		return 4;
	}
	for (int d = 0; d < 2; d++) {
		p[d].fd = fd[d];
		p[d].events = POLLIN;
	}
	while ((open_[0] || open_[1]) && poll(p, 2, 120000) > 0) {
		for (int d = 0; d < 2; d++) {
			size_t len, off_w = 0;
			ssize_t n;

			if (!open_[d] || !(p[d].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(fd[d], buf, sizeof(buf));
			if (n <= 0) {
				/* pass the end on, keep relaying the other way */
				open_[d] = false;
				p[d].fd = -1;
				shutdown(fd[!d], SHUT_WR);
				continue;
			}
			len = relay(&t[d], d == dir, off, cut, buf, (size_t)n, &hit);
			while (off_w < len) {
				ssize_t w = send(fd[!d], buf + off_w, len - off_w, MSG_NOSIGNAL);

				if (w <= 0)
					break;
				off_w += (size_t)w;
			}
			if (off_w < len || (hit && cut)) {
				open_[0] = open_[1] = false;
				break;
			}
		}
	}
	close(fd[0]);
	close(fd[1]);
	if (!hit)
		printf("miss %llu %llu\n", (unsigned long long)t[0].seen,
		       (unsigned long long)t[1].seen);
	return hit ? 0 : 3;
}
