/* SPDX-License-Identifier: MIT */
/*
 * sbx-hostile-vmm: a stand-in for an sbx-vmm that its guest has taken
 * over, for sbxd's --vmm. With "--args hostile-control" it reports READY
 * and then sends HOSTILE_PACKETS malformed or unexpected control messages
 * as fast as sbxd reads them, then waits for SIGKILL. With any other
 * arguments it executes the real sbx-vmm, so that the same sbxd also runs
 * normal sandboxes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sbxd/vmm_proto.h"

#define HOSTILE_ARGS "hostile-control"
#define HOSTILE_PACKETS 10000

static uint8_t packet[SBX_MSG_MAX];

/* Send the first `size` bytes of `packet` as one packet. */
static int send_bytes(size_t size)
{
	ssize_t n;

	do {
		n = send(SBX_CTL_FD, packet, size, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

/* Send a header claiming `len` payload bytes with `sent` bytes after it. */
static int send_packet(uint32_t type, uint64_t seq, uint32_t len,
		       size_t sent)
{
	struct sbx_msg msg = { .type = type, .len = len, .seq = seq };

	memcpy(packet, &msg, sizeof(msg));
	return send_bytes(sizeof(msg) + sent);
}

/* One malformed or unexpected message; `i` picks which. */
static int send_garbage(uint64_t i)
{
	switch (i % 8) {
	case 0: /* shorter than a header */
		return send_bytes(3);
	case 1: /* a len that does not match the packet */
		return send_packet(SBX_MSG_EXEC_RESULT, i, 100, 0);
	case 2:
		return send_packet(12345, i, 0, 0);
	case 3: /* a result for an exec that sbxd never sent */
		return send_packet(SBX_MSG_EXEC_RESULT, 1000000 + i, 1, 1);
	case 4: /* EXITED with a short payload */
		return send_packet(SBX_MSG_EXITED, 0, 10, 10);
	case 5: /* the largest LOG line, without a newline */
		return send_packet(SBX_MSG_LOG, 0, SBX_MSG_PAYLOAD_MAX,
				   SBX_MSG_PAYLOAD_MAX);
	case 6:
		return send_packet(SBX_MSG_READY, 0, 0, 0);
	default: /* replies to requests that were never made */
		return send_packet(SBX_MSG_SNAPSHOT_DONE + (uint32_t)(i % 3),
				   i, 0, 0);
	}
}

static int run_hostile(void)
{
	memset(packet + sizeof(struct sbx_msg), 'L', SBX_MSG_PAYLOAD_MAX);
	if (send_packet(SBX_MSG_READY, 0, 0, 0))
		return 71;
	for (uint64_t i = 0; i < HOSTILE_PACKETS; i++) {
		int ret = send_garbage(i);

		if (ret) {
			fprintf(stderr, "sbx-hostile-vmm: send failed after %llu "
				"packets: %s\n", (unsigned long long)i,
				strerror(-ret));
			return 71;
		}
	}
	fprintf(stderr, "sbx-hostile-vmm: sent %d packets\n", HOSTILE_PACKETS);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--args") &&
		    !strcmp(argv[i + 1], HOSTILE_ARGS))
			return run_hostile();
	execv(SBX_BIN_DIR "/sbx-vmm", argv);
	fprintf(stderr, "sbx-hostile-vmm: failed to execute %s: %s\n",
		SBX_BIN_DIR "/sbx-vmm", strerror(errno));
	return 127;
}
