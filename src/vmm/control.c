/* SPDX-License-Identifier: MIT */
/* The SOCK_SEQPACKET control channel from sbxd, and signal handling. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vmm/snapshot.h"
#include "vmm/vmm.h"

/* One packet in or out. Static buffers are safe: sbx-vmm has one thread. */
static uint8_t rx_buf[SBX_MSG_MAX];
static uint8_t tx_buf[SBX_MSG_MAX];

static void control_lost(struct vmm *vmm, int err)
{
	vmm->control_closed = true;
	vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0,
		"control channel closed (%s); sbxd is gone, ending the VM",
		err ? strerror(err) : "end of file");
}

void ctl_send(struct vmm *vmm, uint32_t type, uint64_t seq, int64_t arg,
	      const void *payload, uint32_t len)
{
	struct sbx_msg msg = { .type = type, .len = len, .seq = seq,
			       .arg = arg };
	ssize_t n;

	if (vmm->cfg->control_fd < 0 || vmm->control_closed)
		return;
	if (len > SBX_MSG_PAYLOAD_MAX)
		len = msg.len = SBX_MSG_PAYLOAD_MAX;
	memcpy(tx_buf, &msg, sizeof(msg));
	if (len)
		memcpy(tx_buf + sizeof(msg), payload, len);
	do {
		n = send(vmm->cfg->control_fd, tx_buf, sizeof(msg) + len,
			 MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		vmm_log(vmm, "failed to send control message type %" PRIu32
			": %s", type, strerror(errno));
		if (errno == EPIPE || errno == ECONNRESET)
			control_lost(vmm, errno);
	}
}

static void queue_exec(struct vmm *vmm, const struct sbx_msg *msg,
		       const char *text)
{
	static const char full[] = "exec queue full; retry later";
	struct vmm_exec *e;

	if (vmm->queue_len >= VMM_EXEC_QUEUE_MAX) {
		vmm_log(vmm, "rejected exec seq %" PRIu64 ": %u already queued",
			msg->seq, vmm->queue_len);
		ctl_send(vmm, SBX_MSG_EXEC_RESULT, msg->seq, -1, full,
			 sizeof(full) - 1);
		return;
	}
	e = malloc(sizeof(*e) + msg->len + 1);
	if (!e) {
		vmm_log(vmm, "failed to queue exec seq %" PRIu64
			": out of memory", msg->seq);
		ctl_send(vmm, SBX_MSG_EXEC_RESULT, msg->seq, -1, full,
			 sizeof(full) - 1);
		return;
	}
	e->next = NULL;
	e->seq = msg->seq;
	e->len = msg->len;
	memcpy(e->text, text, msg->len);
	e->text[msg->len] = '\0';
	/* NOTE: msg->arg (timeout_ms) is not enforced here. sbxd owns exec
	 * timeouts because a running command cannot be interrupted. */
	if (vmm->queue_tail)
		vmm->queue_tail->next = e;
	else
		vmm->queue_head = e;
	vmm->queue_tail = e;
	vmm->queue_len++;
}

static void handle_pause(struct vmm *vmm, const struct sbx_msg *msg)
{
	bool changed = vmm_pause(vmm);

	if (changed)
		vmm_log(vmm, "paused");
	ctl_send(vmm, SBX_MSG_PAUSED, msg->seq, changed ? 0 : 1, NULL, 0);
}

static void handle_resume(struct vmm *vmm, const struct sbx_msg *msg)
{
	bool changed = vmm_resume(vmm);

	if (changed)
		vmm_log(vmm, "resumed");
	ctl_send(vmm, SBX_MSG_RESUMED, msg->seq, changed ? 0 : 1, NULL, 0);
}

static void snapshot_done(struct vmm *vmm, uint64_t seq, int ret,
			  const char *text)
{
	ctl_send(vmm, SBX_MSG_SNAPSHOT_DONE, seq, ret, text,
		 (uint32_t)strlen(text) + 1);
}

/* Check the path in a SNAPSHOT payload. Returns 0 or -errno with `err`. */
static int check_snapshot_path(const char *payload, uint32_t len, char *err,
			       size_t err_size)
{
	if (len == 0 || payload[len - 1] != '\0' ||
	    strlen(payload) != len - 1) {
		snprintf(err, err_size,
			 "invalid SNAPSHOT payload of %" PRIu32
			 " bytes: expected one NUL-terminated path",
			 len);
		return -EINVAL;
	}
	if (len > PATH_MAX) {
		snprintf(err, err_size,
			 "snapshot path of %" PRIu32
			 " bytes is longer than PATH_MAX (%d)",
			 len - 1, PATH_MAX);
		return -ENAMETOOLONG;
	}
	if (payload[0] != '/') {
		snprintf(err, err_size,
			 "snapshot path '%.*s' is not absolute; send an absolute path",
			 PATH_MAX, payload);
		return -EINVAL;
	}
	return 0;
}

/*
 * SNAPSHOT: pause if running (and send PAUSED), write the snapshot, send
 * SNAPSHOT_DONE. The VM stays paused either way.
 */
static void handle_snapshot(struct vmm *vmm, const struct sbx_msg *msg,
			    const char *payload)
{
	char err[2 * PATH_MAX + 256]; /* messages name the path and its .tmp */
	uint64_t start;
	int ret;

	ret = check_snapshot_path(payload, msg->len, err, sizeof(err));
	if (ret) {
		vmm_log(vmm, "rejected SNAPSHOT: %s", err);
		snapshot_done(vmm, msg->seq, ret, err);
		return;
	}
	if (vmm->ended || !vmm->vm.run) {
		snprintf(err, sizeof(err),
			 "no snapshot of %.*s: the VM is not running", PATH_MAX,
			 payload);
		snapshot_done(vmm, msg->seq, -ESRCH, err);
		return;
	}
	if (vmm_pause(vmm)) {
		vmm_log(vmm, "paused for a snapshot");
		ctl_send(vmm, SBX_MSG_PAUSED, msg->seq, 0, NULL, 0);
	}
	start = vmm_now_ns();
	ret = snap_write(vmm, payload, err, sizeof(err));
	if (ret) {
		vmm_log(vmm, "%s; the VM stays paused", err);
		snapshot_done(vmm, msg->seq, ret, err);
		return;
	}
	vmm_log(vmm, "snapshot written to %s in %.2f ms", payload,
		(double)(vmm_now_ns() - start) / 1e6);
	snapshot_done(vmm, msg->seq, 0, payload);
}

/* Check and act on one received packet of `n` bytes. */
static void handle_packet(struct vmm *vmm, size_t n, bool truncated)
{
	struct sbx_msg msg;

	if (truncated) {
		vmm_log(vmm, "ignored a control packet over %zu bytes",
			(size_t)SBX_MSG_MAX);
		return;
	}
	if (n < sizeof(msg)) {
		vmm_log(vmm, "ignored a short control packet: %zu bytes, "
			"header is %zu", n, sizeof(msg));
		return;
	}
	memcpy(&msg, rx_buf, sizeof(msg));
	if (msg.len != n - sizeof(msg)) {
		vmm_log(vmm, "ignored control message type %" PRIu32
			": len field %" PRIu32 " but %zu payload bytes",
			msg.type, msg.len, n - sizeof(msg));
		return;
	}
	switch (msg.type) {
	case SBX_MSG_EXEC:
		queue_exec(vmm, &msg, (const char *)rx_buf + sizeof(msg));
		break;
	case SBX_MSG_STOP:
		vmm->stop_pending = true;
		break;
	case SBX_MSG_PAUSE:
		handle_pause(vmm, &msg);
		break;
	case SBX_MSG_RESUME:
		handle_resume(vmm, &msg);
		break;
	case SBX_MSG_SNAPSHOT:
		handle_snapshot(vmm, &msg, (const char *)rx_buf + sizeof(msg));
		break;
	default:
		vmm_log(vmm, "ignored control message of unknown type %" PRIu32,
			msg.type);
		break;
	}
}

/* Read every packet that is waiting, without blocking. */
static void drain_control(struct vmm *vmm)
{
	struct iovec iov = { .iov_base = rx_buf, .iov_len = sizeof(rx_buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	while (!vmm->control_closed) {
		mh.msg_flags = 0;
		n = recvmsg(vmm->cfg->control_fd, &mh, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			control_lost(vmm, errno);
			return;
		}
		if (n == 0) {
			control_lost(vmm, 0);
			return;
		}
		handle_packet(vmm, (size_t)n, mh.msg_flags & MSG_TRUNC);
	}
}

void ctl_poll(struct vmm *vmm, int64_t timeout_ns)
{
	struct pollfd pfd = { .fd = vmm->cfg->control_fd, .events = POLLIN };
	struct timespec ts, *tsp = NULL;
	nfds_t nfds = pfd.fd >= 0 && !vmm->control_closed ? 1 : 0;
	int ret;

	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	/* SIGINT, SIGTERM and SIGIO are blocked except here and inside
	 * KVM_RUN, so a signal cannot slip in between the check and the
	 * wait. */
	ret = ppoll(nfds ? &pfd : NULL, nfds, tsp, &vmm->run_mask);
	/* SIGIO from the channel may interrupt ppoll() before it reports
	 * POLLIN, so read after an interruption too. */
	if (nfds && (ret > 0 || (ret < 0 && errno == EINTR)))
		drain_control(vmm);
	if (vmm_signalled) {
		vmm_signalled = 0;
		vmm_log(vmm, "received a stop signal; asking the guest to stop");
		vmm->stop_pending = true;
	}
}

int ctl_enable_kick(struct vmm *vmm)
{
	struct f_owner_ex owner = { .type = F_OWNER_TID, .pid = gettid() };
	int fd = vmm->cfg->control_fd;
	int flags;

	if (fd < 0)
		return 0;
	if (fcntl(fd, F_SETOWN_EX, &owner))
		return -errno;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	if (fcntl(fd, F_SETFL, flags | O_ASYNC))
		return -errno;
	return 0;
}

void ctl_free_queue(struct vmm *vmm)
{
	struct vmm_exec *e = vmm->queue_head, *next;

	for (; e; e = next) {
		next = e->next;
		free(e);
	}
	vmm->queue_head = vmm->queue_tail = NULL;
	vmm->queue_len = 0;
	free(vmm->running);
	vmm->running = NULL;
}
