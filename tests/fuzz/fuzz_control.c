// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for sbx-vmm's control channel decoder. The input is a
 * list of packets, each a 16-bit little-endian length and that many bytes.
 * The length 0xffff means a packet one byte over SBX_MSG_MAX, made of up
 * to the next 24 bytes and zeros. Empty packets are skipped. The harness sends the packets on a
 * real SOCK_SEQPACKET socketpair and lets ctl_poll() receive and handle
 * them, as sbx-vmm does between guest exits.
 *
 * The VM has no vCPU (vm.run is NULL), so SNAPSHOT is answered without
 * writing a file. A small model of the protocol predicts every reply and
 * the queue, pause and stop state; any difference is a finding.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz_util.h"
#include "sbxd/vmm_proto.h"
#include "vmm/vmm.h"

#define OVERSIZED_MARK 0xffffu
#define PACKET_MAX 4096 /* packets per input */

struct expected_reply {
	uint32_t type;
	uint64_t seq;
	int64_t arg;
};

/* What the VMM state must be after the packets, per the protocol. */
struct model {
	struct expected_reply replies[PACKET_MAX];
	unsigned int nreplies;
	unsigned int next_reply;	/* first reply not yet received */
	unsigned int queue_len;
	bool paused;
	bool stop_pending;
};

static int sbxd_fd = -1;	/* the harness's end, sbxd's side */
static struct vmm_config vmm_cfg = { .id = "fuzz", .control_fd = -1 };
static struct vmm vmm;
static struct model model;
static uint8_t packet[SBX_MSG_MAX + 1];
static uint8_t reply[SBX_MSG_MAX + 1];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fds[2];

	fuzz_util_init();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0, fds) < 0)
		fuzz_fail("socketpair failed: %s", strerror(errno));
	sbxd_fd = fds[0];
	vmm_cfg.control_fd = fds[1];
	return 0;
}

static void expect(uint32_t type, uint64_t seq, int64_t arg)
{
	FUZZ_CHECK(model.nreplies < PACKET_MAX, "too many expected replies");
	model.replies[model.nreplies++] =
		(struct expected_reply){ .type = type, .seq = seq, .arg = arg };
}

static int64_t snapshot_errno(const uint8_t *payload, uint32_t len)
{
	if (len == 0 || payload[len - 1] != '\0' ||
	    strlen((const char *)payload) != len - 1)
		return -EINVAL;
	if (len > PATH_MAX)
		return -ENAMETOOLONG;
	if (payload[0] != '/')
		return -EINVAL;
	return -ESRCH; /* no vCPU: "the VM is not running" */
}

/* Predict the VMM's replies to one packet of n bytes. */
static void model_packet(const uint8_t *p, size_t n, bool oversized)
{
	struct sbx_msg msg;

	if (oversized || n < sizeof(msg))
		return;
	memcpy(&msg, p, sizeof(msg));
	if (msg.len != n - sizeof(msg))
		return;
	switch (msg.type) {
	case SBX_MSG_EXEC:
		if (model.queue_len < VMM_EXEC_QUEUE_MAX)
			model.queue_len++;
		else
			expect(SBX_MSG_EXEC_RESULT, msg.seq, -1);
		break;
	case SBX_MSG_STOP:
		model.stop_pending = true;
		break;
	case SBX_MSG_PAUSE:
		expect(SBX_MSG_PAUSED, msg.seq, model.paused ? 1 : 0);
		model.paused = true;
		break;
	case SBX_MSG_RESUME:
		expect(SBX_MSG_RESUMED, msg.seq, model.paused ? 0 : 1);
		model.paused = false;
		break;
	case SBX_MSG_SNAPSHOT:
		expect(SBX_MSG_SNAPSHOT_DONE, msg.seq,
		       snapshot_errno(p + sizeof(msg), msg.len));
		break;
	default:
		break;
	}
}

static void check_reply(const uint8_t *p, size_t n)
{
	const struct expected_reply *want;
	struct sbx_msg msg;

	FUZZ_CHECK(n >= sizeof(msg), "reply of %zu bytes", n);
	memcpy(&msg, p, sizeof(msg));
	FUZZ_CHECK(msg.len == n - sizeof(msg),
		   "reply len field %" PRIu32 " but %zu payload bytes",
		   msg.len, n - sizeof(msg));
	FUZZ_CHECK(model.next_reply < model.nreplies,
		   "unexpected reply type %" PRIu32 " seq %" PRIu64, msg.type,
		   msg.seq);
	want = &model.replies[model.next_reply++];
	FUZZ_CHECK(msg.type == want->type && msg.seq == want->seq &&
			   msg.arg == want->arg,
		   "reply type %" PRIu32 " seq %" PRIu64 " arg %" PRId64
		   ", expected type %" PRIu32 " seq %" PRIu64 " arg %" PRId64,
		   msg.type, msg.seq, msg.arg, want->type, want->seq,
		   want->arg);
	if (msg.type == SBX_MSG_SNAPSHOT_DONE)
		FUZZ_CHECK(msg.len > 0 && p[n - 1] == '\0' &&
				   strlen((const char *)p + sizeof(msg)) ==
					   msg.len - 1,
			   "SNAPSHOT_DONE text is not one NUL-terminated "
			   "string");
	if (msg.type == SBX_MSG_PAUSED || msg.type == SBX_MSG_RESUMED)
		FUZZ_CHECK(msg.len == 0, "reply type %" PRIu32
			   " with %" PRIu32 " payload bytes", msg.type,
			   msg.len);
}

/* Let the VMM handle what is queued, then read and check its replies. */
static void poll_vmm(void)
{
	ssize_t n;

	ctl_poll(&vmm, 0);
	for (;;) {
		n = recv(sbxd_fd, reply, sizeof(reply), MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		FUZZ_CHECK(n > 0, "reading replies failed: %s",
			   n < 0 ? strerror(errno) : "end of file");
		FUZZ_CHECK((size_t)n <= SBX_MSG_MAX, "reply of %zd bytes", n);
		check_reply(reply, (size_t)n);
	}
}

static void send_packet(const uint8_t *p, size_t n)
{
	for (;;) {
		if (send(sbxd_fd, p, n, MSG_NOSIGNAL) >= 0)
			return;
		if (errno == EINTR)
			continue;
		/* The socket buffer is full: let the VMM read first. */
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			poll_vmm();
			continue;
		}
		fuzz_fail("send of a %zu-byte packet failed: %s", n,
			  strerror(errno));
	}
}

static void check_state(void)
{
	unsigned int count = 0;

	FUZZ_CHECK(model.next_reply == model.nreplies,
		   "%u replies expected, %u received", model.nreplies,
		   model.next_reply);
	for (const struct vmm_exec *e = vmm.queue_head; e; e = e->next) {
		FUZZ_CHECK(e->text[e->len] == '\0', "exec text unterminated");
		FUZZ_CHECK(e->next || e == vmm.queue_tail,
			   "queue tail is not the last entry");
		count++;
	}
	FUZZ_CHECK(count == vmm.queue_len && count == model.queue_len,
		   "%u execs queued, queue_len %u, expected %u", count,
		   vmm.queue_len, model.queue_len);
	FUZZ_CHECK(vmm.paused == model.paused, "paused %d, expected %d",
		   vmm.paused, model.paused);
	FUZZ_CHECK(vmm.stop_pending == model.stop_pending,
		   "stop_pending %d, expected %d", vmm.stop_pending,
		   model.stop_pending);
	FUZZ_CHECK(!vmm.ended && !vmm.control_closed,
		   "the VMM ended: %s", vmm.exit.message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	unsigned int count = 0;

	memset(&vmm, 0, sizeof(vmm));
	memset(&model, 0, sizeof(model));
	vmm.cfg = &vmm_cfg;
	/* ppoll() runs with the mask the harness already has. */
	sigprocmask(SIG_SETMASK, NULL, &vmm.run_mask);

	while (off + 2 <= size && count < PACKET_MAX) {
		size_t len = data[off] | (size_t)data[off + 1] << 8;
		bool oversized = len == OVERSIZED_MARK;
		size_t take;

		off += 2;
		take = oversized ? sizeof(struct sbx_msg) : len;
		if (take > size - off)
			take = size - off;
		memcpy(packet, data + off, take);
		off += take;
		len = oversized ? SBX_MSG_MAX + 1 : take;
		if (oversized)
			memset(packet + take, 0, len - take);
		/*
		 * recvmsg() returns 0 for an empty packet as at end of file,
		 * so the VMM would end; sbxd never sends one.
		 */
		if (len == 0)
			continue;
		model_packet(packet, len, oversized);
		send_packet(packet, len);
		count++;
	}
	poll_vmm();
	check_state();
	ctl_free_queue(&vmm);
	return 0;
}
