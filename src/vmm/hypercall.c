/* SPDX-License-Identifier: MIT */
/* Validation and execution of the guest's port-I/O hypercalls. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbx/guest.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

#define MIB (1024 * 1024)

bool hc_range_ok(uint64_t mem_size, uint64_t gpa, uint64_t len)
{
	return gpa <= mem_size && len <= mem_size - gpa;
}

/* Check a buffer named by a hypercall, and end the VM if it leaves RAM. */
static bool check_buffer(struct vmm *vmm, const char *op, uint64_t gpa,
			 uint64_t len)
{
	if (hc_range_ok(vmm->vm.mem_size, gpa, len))
		return true;
	vmm_end(vmm, SBX_EXIT_BAD_HYPERCALL, -1, gpa,
		"%s buffer at GPA 0x%" PRIx64 ", 0x%" PRIx64
		" bytes, is outside guest RAM (%" PRIu64 " MiB)",
		op, gpa, len, vmm->vm.mem_size / MIB);
	return false;
}

static void write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		/* The console is gone. The guest must not notice. */
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static int64_t hc_write(struct vmm *vmm, const struct sbx_hypercall *hc)
{
	uint64_t fd = hc->arg[0], gpa = hc->arg[1], len = hc->arg[2];
	uint64_t room = VMM_CONSOLE_MAX - vmm->console_bytes;
	static const char note[] =
		"\n[sbx-vmm: guest console output capped at 1 MiB; "
		"dropping the rest]\n";

	if (fd != 1 && fd != 2)
		return -EBADF;
	if (!check_buffer(vmm, "WRITE", gpa, len))
		return 0;
	if (len > room) {
		write_all((int)fd, vmm->vm.mem + gpa, room);
		vmm->console_bytes += room;
		if (!vmm->console_capped) {
			vmm->console_capped = true;
			write_all(2, (const uint8_t *)note, sizeof(note) - 1);
		}
	} else {
		write_all((int)fd, vmm->vm.mem + gpa, len);
		vmm->console_bytes += len;
	}
	return (int64_t)len;
}

/* Copy command text into the guest buffer as WAIT_COMMAND defines it. */
static int64_t give_text(struct vmm *vmm, uint64_t gpa, uint64_t cap,
			 const char *text, size_t len)
{
	size_t n = len < cap ? len : cap;

	memcpy(vmm->vm.mem + gpa, text, n);
	if (n < cap)
		vmm->vm.mem[gpa + n] = '\0';
	return (int64_t)n;
}

/* Control mode: send exit code -1 for an exec the guest dropped without
 * a REPLY. */
static void fail_running(struct vmm *vmm)
{
	static const char msg[] =
		"guest asked for the next command without replying";

	if (!vmm->running)
		return;
	ctl_send(vmm, SBX_MSG_EXEC_RESULT, vmm->running->seq, -1, msg,
		 sizeof(msg) - 1);
	free(vmm->running);
	vmm->running = NULL;
}

/*
 * Standalone --snapshot-to: save the VM, which waits in WAIT_COMMAND, and
 * end it. The restored VM continues in that WAIT_COMMAND.
 */
static void snapshot_and_end(struct vmm *vmm)
{
	const char *path = vmm->cfg->snapshot_to;
	char err[512];
	int ret;

	vmm_pause(vmm);
	ret = snap_write(vmm, path, err, sizeof(err));
	if (ret) {
		vmm_end(vmm, SBX_EXIT_VMM_ERROR, -1, 0, "%s", err);
		return;
	}
	vmm_log(vmm, "snapshot written to %s", path);
	vmm_end(vmm, SBX_EXIT_STOPPED,
		vmm->command_replied ? vmm->command_code : 0, 0,
		"snapshot written to %s; VM ended", path);
}

/*
 * Pick what the guest gets next. Returns false to keep waiting. Standalone
 * mode gives the one command, then a stop, then ends the VM if the guest
 * ignored the stop. With --snapshot-to it saves the VM instead of the
 * stop.
 */
static bool next_command(struct vmm *vmm, const char **text, size_t *len,
			 bool *stop)
{
	const struct vmm_config *cfg = vmm->cfg;

	*stop = false;
	if (vmm->stop_pending) {
		vmm->stop_pending = false;
		*stop = true;
		return true;
	}
	if (cfg->control_fd >= 0) {
		struct vmm_exec *e = vmm->queue_head;

		if (!e)
			return false;
		vmm->queue_head = e->next;
		if (!vmm->queue_head)
			vmm->queue_tail = NULL;
		vmm->queue_len--;
		vmm->running = e;
		*text = e->text;
		*len = e->len;
		return true;
	}
	if (!cfg->command) {
		if (cfg->snapshot_to)
			snapshot_and_end(vmm);
		return false;
	}
	if (!vmm->command_delivered) {
		vmm->command_delivered = true;
		*text = cfg->command;
		*len = strlen(cfg->command);
		return true;
	}
	if (cfg->snapshot_to) {
		snapshot_and_end(vmm);
		return false;
	}
	if (vmm->stop_delivered) {
		vmm_end(vmm, SBX_EXIT_STOPPED, vmm->command_code, 0,
			"guest ignored the stop request; ended it");
		return false;
	}
	vmm->stop_pending = true;
	return next_command(vmm, text, len, stop);
}

static int64_t hc_wait_command(struct vmm *vmm, struct sbx_hypercall *hc)
{
	uint64_t gpa = hc->arg[0], cap = hc->arg[1];
	const char *text = NULL;
	size_t len = 0;
	bool stop;

	if (!check_buffer(vmm, "WAIT_COMMAND", gpa, cap))
		return 0;
	fail_running(vmm);
	if (vmm->cfg->control_fd < 0 && vmm->command_delivered &&
	    !vmm->command_replied) {
		vmm->command_replied = true;
		vmm->command_code = -1;
	}

	/* While paused, commands stay queued. */
	while (!vmm->ended) {
		if (!vmm->paused && next_command(vmm, &text, &len, &stop))
			break;
		if (!vmm->ended)
			ctl_poll(vmm, -1);
	}
	if (vmm->ended)
		return 0;
	if (stop) {
		vmm->stop_delivered = true;
		hc->flags = SBX_CMD_STOP;
		return 0;
	}
	hc->flags = SBX_CMD_EXEC;
	return give_text(vmm, gpa, cap, text, len);
}

static int64_t hc_reply(struct vmm *vmm, const struct sbx_hypercall *hc)
{
	int32_t code = (int32_t)hc->arg[0];
	uint64_t gpa = hc->arg[1], len = hc->arg[2];
	const uint8_t *out;

	if (!check_buffer(vmm, "REPLY", gpa, len))
		return 0;
	out = vmm->vm.mem + gpa;
	if (len > SBX_MSG_PAYLOAD_MAX)
		len = SBX_MSG_PAYLOAD_MAX;

	if (vmm->cfg->control_fd >= 0) {
		if (!vmm->running)
			return -ENOENT;
		ctl_send(vmm, SBX_MSG_EXEC_RESULT, vmm->running->seq, code,
			 out, (uint32_t)len);
		free(vmm->running);
		vmm->running = NULL;
		return 0;
	}
	if (!vmm->command_delivered || vmm->command_replied)
		return -ENOENT;
	vmm->command_replied = true;
	vmm->command_code = code;
	write_all(1, out, len);
	if (len == 0 || out[len - 1] != '\n')
		write_all(1, (const uint8_t *)"\n", 1);
	return 0;
}

/*
 * The deadline is kept on the guest clock in vmm->hc, so time spent paused
 * does not count and a restored VM sleeps only for what was left.
 */
static int64_t hc_sleep(struct vmm *vmm, const struct sbx_hypercall *hc)
{
	struct vmm_hypercall *pending = &vmm->hc;
	uint64_t now;

	if (!pending->deadline_set) {
		now = vmm_guest_ns(vmm);
		pending->deadline_ns = now + hc->arg[0];
		if (pending->deadline_ns < now)
			pending->deadline_ns = UINT64_MAX;
		pending->deadline_set = true;
	}
	while (!vmm->ended) {
		if (vmm->paused) {
			ctl_poll(vmm, -1);
			continue;
		}
		if (vmm->stop_pending)
			return 1;
		now = vmm_guest_ns(vmm);
		if (now >= pending->deadline_ns)
			return 0;
		ctl_poll(vmm, pending->deadline_ns - now > INT64_MAX ?
				      INT64_MAX :
				      (int64_t)(pending->deadline_ns - now));
	}
	return 0;
}

static int64_t hc_ready(struct vmm *vmm)
{
	if (vmm->ready)
		return -EALREADY;
	vmm->ready = true;
	if (vmm->cfg->control_fd >= 0)
		ctl_send(vmm, SBX_MSG_READY, 0,
			 (int64_t)(vmm_now_ns() - vmm->start_ns), NULL, 0);
	return 0;
}

static void hc_exit(struct vmm *vmm, const struct sbx_hypercall *hc)
{
	int32_t code = (int32_t)hc->arg[0];

	vmm_end(vmm, vmm->stop_delivered ? SBX_EXIT_STOPPED : SBX_EXIT_GUEST,
		code, 0, "guest exited with code %" PRId32, code);
}

void hc_dispatch(struct vmm *vmm, uint64_t gpa)
{
	if (!hc_range_ok(vmm->vm.mem_size, gpa, sizeof(struct sbx_hypercall))) {
		vmm_end(vmm, SBX_EXIT_BAD_HYPERCALL, -1, gpa,
			"hypercall request at GPA 0x%" PRIx64
			" is outside guest RAM (%" PRIu64 " MiB)",
			gpa, vmm->vm.mem_size / MIB);
		return;
	}
	/* Work on a copy: the request lives in guest-writable memory. */
	vmm->hc = (struct vmm_hypercall){ .active = true, .gpa = gpa };
	memcpy(&vmm->hc.request, vmm->vm.mem + gpa, sizeof(vmm->hc.request));
	hc_execute(vmm);
}

void hc_execute(struct vmm *vmm)
{
	struct sbx_hypercall *hc = &vmm->hc.request;
	uint64_t gpa = vmm->hc.gpa;
	int64_t ret = 0;

	/* Notice control messages and signals even while the guest runs.
	 * After a PAUSE, the request waits for RESUME. */
	ctl_poll(vmm, 0);
	vmm_wait_resumed(vmm);
	if (vmm->ended)
		return;

	switch (hc->op) {
	case SBX_HC_READY:
		ret = hc_ready(vmm);
		break;
	case SBX_HC_WRITE:
		ret = hc_write(vmm, hc);
		break;
	case SBX_HC_WAIT_COMMAND:
		hc->flags = 0;
		ret = hc_wait_command(vmm, hc);
		memcpy(vmm->vm.mem + gpa +
			       offsetof(struct sbx_hypercall, flags),
		       &hc->flags, sizeof(hc->flags));
		break;
	case SBX_HC_REPLY:
		ret = hc_reply(vmm, hc);
		break;
	case SBX_HC_CLOCK_NS:
		ret = (int64_t)vmm_guest_ns(vmm);
		break;
	case SBX_HC_SLEEP_NS:
		ret = hc_sleep(vmm, hc);
		break;
	case SBX_HC_EXIT:
		hc_exit(vmm, hc);
		return;
	default:
		vmm_end(vmm, SBX_EXIT_BAD_HYPERCALL, -1, gpa,
			"unknown hypercall op %" PRIu32
			" (request at GPA 0x%" PRIx64 ")",
			hc->op, gpa);
		return;
	}
	if (vmm->ended)
		return;
	memcpy(vmm->vm.mem + gpa + offsetof(struct sbx_hypercall, ret), &ret,
	       sizeof(ret));
	vmm->hc.active = false;
}
