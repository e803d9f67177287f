// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the receiving side of the peer channel. Bob's end of
 * a socketpair gets a valid hello and context announcement from a fake Alice,
 * then the fuzzer's bytes, then end of stream. Bob receives every message,
 * closes blocks now and then (immediately, deferred, or a frame's
 * accumulators, as the message type says) and must end with a clean error or
 * end of stream: never a crash, an out-of-bounds access or a leak. A fresh
 * key pool in /dev/shm per input keeps the take_at of the context fresh.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qkd/frame.h"
#include "qkd/keypool.h"
#include "qkd/peer.h"
#include "../../userspace/lib/peer-impl.h"

static char pool_path[64];

static size_t put_msg(uint8_t *b, uint8_t kind, uint16_t type, uint64_t key, const void *body,
		      uint32_t len)
{
	peer_put_le32(b, len);
	peer_put_le16(b + 4, type);
	b[6] = kind;
	b[7] = 0;
	for (int i = 0; i < 8; i++)
		b[8 + i] = (uint8_t)(key >> (8 * i));
	memcpy(b + 16, body, len);
	return 16 + len;
}

/* A hello from Alice of pipeline "f", stage "s", instance 0, and context 1 at offset 0. */
static size_t prologue(uint8_t *b)
{
	uint8_t h[32], c[12] = { 1 };
	size_t n = 0;

	memcpy(h, "QKDPEER1", 8);
	peer_put_le16(h + 8, QKD_PEER_PROTO_VERSION);
	h[10] = QKD_ALICE;
	h[11] = 0;
	peer_put_le32(h + 12, 0);
	peer_put_le16(h + 16, 1);
	h[18] = 'f';
	peer_put_le16(h + 19, 1);
	h[21] = 's';
	n += put_msg(b + n, PEER_KIND_CTRL, CT_HELLO, 0, h, 22);
	n += put_msg(b + n, PEER_KIND_CTRL, CT_CTX, 0, c, sizeof(c));
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t secret[4096];
	struct qkd_peer_config cfg = {
		.role = QKD_BOB, .pipeline = "f", .stage = "s", .port = "0",
		.timeout_ms = 20,
	};
	struct qkd_keypool *kp;
	struct qkd_frame fr;
	struct qkd_peer *p;
	struct qkd_msg m;
	uint8_t pro[128];
	int sv[2], big = 1 << 20, n = 0;

	if (size > 65536)
		return 0;
	if (!pool_path[0]) {
		signal(SIGPIPE, SIG_IGN);
		snprintf(pool_path, sizeof(pool_path), "/dev/shm/qkd-fuzz-peer.%d", getpid());
		for (size_t i = 0; i < sizeof(secret); i++)
			secret[i] = (uint8_t)(i * 131 + 7) | 1;
	}
	unlink(pool_path);
	{
		char spent[80];

		snprintf(spent, sizeof(spent), "%s.spent", pool_path);
		unlink(spent);
	}
	if (qkd_keypool_create(pool_path, secret, sizeof(secret)))
		return 0;
	kp = qkd_keypool_open(pool_path);
	if (!kp || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		abort();
	cfg.pool = kp;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (write(sv[0], pro, prologue(pro)) < 0 || (size && write(sv[0], data, size) < 0))
		abort();
	shutdown(sv[0], SHUT_WR);
	p = peer_open_fd(sv[1], &cfg);
	if (p) {
		memset(&fr, 0, sizeof(fr));
		while (n++ < 1000 && qkd_recv(p, &m) == 1) {
			switch (m.type % 4) {
			case 1:
				qkd_peer_auth_verify(p, m.key_id);
				break;
			case 2:
				fr.key_id = m.key_id;
				if (!qkd_peer_auth_defer(p, m.key_id, &fr))
					qkd_peer_auth_verify_frame(p, &fr);
				break;
			case 3:
				qkd_peer_new_context(p);
				break;
			}
		}
		qkd_peer_close(p);
	}
	close(sv[0]);
	qkd_keypool_close(kp);
	return 0;
}
