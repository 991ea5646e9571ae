/* SPDX-License-Identifier: MIT */
/* Snapshot files of one sbx-vmm VM: layout, writing and restoring. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmm/crc32c.h"
#include "vmm/snapshot.h"
#include "vmm/vmm.h"

#define MIB (1024 * 1024)
#define MEM_SIZE_MIN (4ull * MIB)
#define MEM_SIZE_MAX (4096ull * MIB) /* the page tables map 4 GiB */

/* The structs are the on-disk records: a layout change needs a new
 * SNAP_VERSION. These sizes are those of format version 1. */
_Static_assert(sizeof(struct snap_header) == 168, "snap_header layout");
_Static_assert(sizeof(struct snap_vmm_state) == 104, "snap_vmm_state layout");
_Static_assert(sizeof(struct snap_exec) == 16, "snap_exec layout");
_Static_assert(sizeof(struct vm_cpu_state) == 5400, "vm_cpu_state layout");

static uint64_t align_up(uint64_t value, uint64_t alignment)
{
	return (value + alignment - 1) / alignment * alignment;
}

__attribute__((format(printf, 3, 4))) static void
fail(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

/* ---- writing ---------------------------------------------------------- */

static size_t exec_record_size(uint32_t len)
{
	return sizeof(struct snap_exec) + align_up(len, 8);
}

static size_t vmm_section_size(const struct vmm *vmm)
{
	size_t size = sizeof(struct snap_vmm_state);

	for (const struct vmm_exec *e = vmm->queue_head; e; e = e->next)
		size += exec_record_size(e->len);
	return size;
}

static void fill_vmm_state(const struct vmm *vmm, uint8_t *out)
{
	struct snap_vmm_state st = { 0 };
	const struct vmm_config *cfg = vmm->cfg;
	uint8_t *p = out + sizeof(st);

	st.flags = (vmm->ready ? SNAP_VMM_READY : 0) |
		   (vmm->stop_pending ? SNAP_VMM_STOP_PENDING : 0) |
		   (vmm->stop_delivered ? SNAP_VMM_STOP_DELIVERED : 0) |
		   (vmm->console_capped ? SNAP_VMM_CONSOLE_CAPPED : 0) |
		   (cfg->ignore_stop ? SNAP_VMM_IGNORE_STOP : 0) |
		   (cfg->cpl0 ? SNAP_VMM_CPL0 : 0) |
		   (vmm->hc.active ? SNAP_VMM_HC_ACTIVE : 0) |
		   (vmm->hc.deadline_set ? SNAP_VMM_HC_DEADLINE : 0) |
		   (vmm->running ? SNAP_VMM_RUNNING : 0);
	st.boot_delay_ms = cfg->boot_delay_ms;
	st.guest_clock_ns = vmm_guest_ns(vmm);
	st.console_bytes = vmm->console_bytes;
	if (vmm->hc.active) {
		st.hc_gpa = vmm->hc.gpa;
		st.hc_request = vmm->hc.request;
		st.hc_deadline_ns = vmm->hc.deadline_ns;
	}
	st.running_seq = vmm->running ? vmm->running->seq : 0;
	st.queue_len = vmm->queue_len;
	memcpy(out, &st, sizeof(st));

	for (const struct vmm_exec *e = vmm->queue_head; e; e = e->next) {
		struct snap_exec rec = { .seq = e->seq, .len = e->len };

		memcpy(p, &rec, sizeof(rec));
		memcpy(p + sizeof(rec), e->text, e->len);
		p += exec_record_size(e->len); /* padding is already zero */
	}
}

/*
 * Build header, vCPU and VMM sections in one zeroed buffer of
 * hdr->ram_offset bytes. The checksums are filled in later.
 */
static uint8_t *build_meta(const struct vmm *vmm,
			   const struct vm_cpu_state *cpu,
			   struct snap_header *hdr)
{
	struct timespec now;
	uint8_t *meta;

	memset(hdr, 0, sizeof(*hdr));
	memcpy(hdr->magic, SNAP_MAGIC, SNAP_MAGIC_SIZE);
	hdr->version = SNAP_VERSION;
	hdr->header_size = sizeof(*hdr);
	hdr->page_size = SNAP_PAGE_SIZE;
	clock_gettime(CLOCK_REALTIME, &now);
	hdr->created_ns = (uint64_t)now.tv_sec * 1000000000 +
			  (uint64_t)now.tv_nsec;
	hdr->mem_size = vmm->vm.mem_size;
	snprintf(hdr->sandbox_id, sizeof(hdr->sandbox_id), "%s",
		 vmm->cfg->id);
	hdr->vcpu_offset = align_up(sizeof(*hdr), 8);
	hdr->vcpu_size = sizeof(*cpu);
	hdr->vmm_offset = align_up(hdr->vcpu_offset + hdr->vcpu_size, 8);
	hdr->vmm_size = vmm_section_size(vmm);
	hdr->ram_offset = align_up(hdr->vmm_offset + hdr->vmm_size,
				   SNAP_PAGE_SIZE);
	hdr->ram_size = vmm->vm.mem_size;
	hdr->file_size = hdr->ram_offset + hdr->ram_size;

	meta = calloc(1, hdr->ram_offset);
	if (!meta)
		return NULL;
	memcpy(meta + hdr->vcpu_offset, cpu, sizeof(*cpu));
	fill_vmm_state(vmm, meta + hdr->vmm_offset);
	return meta;
}

static int pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static bool page_is_zero(const uint8_t *page)
{
	uint64_t acc = 0, word;

	for (size_t i = 0; i < SNAP_PAGE_SIZE; i += sizeof(word)) {
		memcpy(&word, page + i, sizeof(word));
		acc |= word;
	}
	return acc == 0;
}

static void mark_pages(uint8_t *bitmap, uint64_t from, uint64_t to)
{
	for (uint64_t page = from / SNAP_PAGE_SIZE;
	     page < (to + SNAP_PAGE_SIZE - 1) / SNAP_PAGE_SIZE; page++)
		bitmap[page / 8] |= (uint8_t)(1u << (page % 8));
}

static bool page_marked(const uint8_t *bitmap, uint64_t page)
{
	return bitmap[page / 8] & (1u << (page % 8));
}

/*
 * Mark the pages of [offset, offset + size) of `fd` that lseek(SEEK_DATA)
 * reports as data. A file system without hole support reports all data.
 */
static int mark_file_data(int fd, uint64_t offset, uint64_t size,
			  uint8_t *bitmap)
{
	uint64_t pos = 0, data, hole;
	off_t found;

	while (pos < size) {
		found = lseek(fd, (off_t)(offset + pos), SEEK_DATA);
		if (found < 0 && errno == ENXIO)
			return 0; /* only a hole up to the end */
		if (found < 0)
			return -errno;
		data = (uint64_t)found - offset;
		if (data >= size)
			return 0;
		found = lseek(fd, (off_t)found, SEEK_HOLE);
		if (found < 0)
			return -errno;
		hole = (uint64_t)found - offset;
		if (hole > size)
			hole = size;
		mark_pages(bitmap, data, hole);
		pos = hole;
	}
	return 0;
}

#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)

/*
 * Mark the pages of `mem` that this process has mapped or swapped, per
 * /proc/self/pagemap. In a private file mapping, every page the guest
 * wrote is one of them.
 */
static int mark_mapped(const uint8_t *mem, uint64_t size, int pagemap_fd,
		       uint8_t *bitmap)
{
	uint64_t entries[512];
	uint64_t pages = size / SNAP_PAGE_SIZE;
	uint64_t first = (uint64_t)(uintptr_t)mem / SNAP_PAGE_SIZE;
	int fd = pagemap_fd, ret = 0;

	if (fd < 0)
		fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (uint64_t page = 0; page < pages; page += 512) {
		uint64_t count = pages - page < 512 ? pages - page : 512;

		ret = pread_all(fd, entries, count * sizeof(entries[0]),
				(first + page) * sizeof(entries[0]));
		if (ret)
			break;
		for (uint64_t i = 0; i < count; i++)
			if (entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))
				mark_pages(bitmap, (page + i) * SNAP_PAGE_SIZE,
					   (page + i + 1) * SNAP_PAGE_SIZE);
	}
	if (fd != pagemap_fd)
		close(fd);
	return ret;
}

/*
 * Return a bitmap of the RAM pages that may hold non-zero bytes. The
 * others are never read: reading an unallocated memfd page allocates it,
 * and reading a hole of a restored VM's file fills the page cache.
 */
static uint8_t *find_data_pages(const struct vm *vm, int pagemap_fd, int *err)
{
	uint64_t pages = vm->mem_size / SNAP_PAGE_SIZE;
	uint8_t *bitmap = calloc(1, (pages + 7) / 8);

	*err = 0;
	if (!bitmap) {
		*err = -ENOMEM;
		return NULL;
	}
	/* A memfd page is data once allocated, even when swapped out. */
	*err = mark_file_data(vm->mem_fd, vm->mem_offset, vm->mem_size,
			      bitmap);
	if (!*err && vm->mem_private)
		*err = mark_mapped(vm->mem, vm->mem_size, pagemap_fd, bitmap);
	if (*err) {
		free(bitmap);
		return NULL;
	}
	return bitmap;
}

/*
 * Write the non-zero pages of RAM, each run with one pwrite, and return
 * the RAM checksum in *crc. Zero pages become holes, which read back as
 * zeros: an idle 16 MiB sbx-agent has about 70 KiB of non-zero pages.
 */
static int write_ram(int fd, const struct vm *vm, int pagemap_fd,
		     uint64_t offset, uint32_t *crc)
{
	const uint8_t *mem = vm->mem;
	uint64_t size = vm->mem_size, run_start = 0, page;
	bool in_data = false;
	uint8_t *candidates;
	int ret;

	candidates = find_data_pages(vm, pagemap_fd, &ret);
	if (!candidates)
		return ret;
	*crc = 0;
	for (page = 0; page <= size; page += SNAP_PAGE_SIZE) {
		bool data = page < size &&
			    page_marked(candidates, page / SNAP_PAGE_SIZE) &&
			    !page_is_zero(mem + page);

		if (page < size && data == in_data)
			continue;
		/* A run of equal pages ends at `page`. */
		if (in_data) {
			ret = pwrite_all(fd, mem + run_start, page - run_start,
					 offset + run_start);
			if (ret)
				break;
			*crc = crc32c(*crc, mem + run_start, page - run_start);
		} else {
			*crc = crc32c_zeros(*crc, page - run_start);
		}
		run_start = page;
		in_data = data;
	}
	free(candidates);
	return ret;
}

/*
 * Target of a snapshot: its directory, open, and the names of the
 * file and of its temporary file in it. Working relative to the directory
 * fd lets a confined VMM write into the --snapshot-dir that it opened
 * before it gave up root, without searching the directories above it.
 */
struct snap_target {
	int dir_fd;
	bool dir_owned;			/* opened for this snapshot: close */
	const char *name;		/* last component of the path */
	char tmp_name[NAME_MAX + 1];	/* NAME.tmp.PID */
	char tmp_path[PATH_MAX];	/* PATH.tmp.PID, for messages */
};

/* True when `dir` (`len` bytes, no trailing '/') is the --snapshot-dir. */
static bool is_snapshot_dir(const struct vmm *vmm, const char *dir,
			    size_t len)
{
	const char *own = vmm->cfg->snapshot_dir;
	size_t own_len;

	if (vmm->snapshot_dir_fd < 0 || !own)
		return false;
	own_len = strlen(own);
	while (own_len > 1 && own[own_len - 1] == '/')
		own_len--;
	return own_len == len && !memcmp(own, dir, len);
}

/* Extra advice for a failure with `ret`, for the end of a message. */
static const char *access_hint(const struct vmm *vmm, int ret)
{
	if (ret != -EACCES || !vmm->cfg->confine)
		return "";
	return "; a confined sbx-vmm writes only where its user may: name a "
	       "file in the --snapshot-dir that it was started with";
}

static int open_target(const struct vmm *vmm, const char *path,
		       struct snap_target *t, char *err, size_t err_size)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	size_t dir_len;
	int pid = (int)getpid();
	int ret;

	t->dir_fd = -1;
	t->dir_owned = false;
	t->name = slash ? slash + 1 : path;
	if (!*t->name) {
		fail(err, err_size, "failed to snapshot to %s: the path ends "
		     "with '/'; name a file", path);
		return -EISDIR;
	}
	if (snprintf(t->tmp_path, sizeof(t->tmp_path), "%s.tmp.%d", path,
		     pid) >= (int)sizeof(t->tmp_path) ||
	    snprintf(t->tmp_name, sizeof(t->tmp_name), "%s.tmp.%d", t->name,
		     pid) >= (int)sizeof(t->tmp_name)) {
		fail(err, err_size,
		     "failed to snapshot to %s: the path is too long", path);
		return -ENAMETOOLONG;
	}

	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	dir_len = strlen(dir);
	if (is_snapshot_dir(vmm, dir, dir_len)) {
		t->dir_fd = vmm->snapshot_dir_fd;
		return 0;
	}
	t->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dir_fd < 0) {
		ret = -errno;
		fail(err, err_size, "failed to snapshot to %s: cannot open its "
		     "directory %s: %s%s", path, dir, strerror(-ret),
		     access_hint(vmm, ret));
		return ret;
	}
	t->dir_owned = true;
	return 0;
}

static void close_target(struct snap_target *t)
{
	if (t->dir_owned && t->dir_fd >= 0)
		close(t->dir_fd);
	t->dir_fd = -1;
}

/* Write meta and RAM to the open temporary file and flush it to disk. */
static int write_file(int fd, uint8_t *meta, struct snap_header *hdr,
		      const struct vmm *vmm, const char **step)
{
	int ret;

	*step = "write the RAM section of";
	ret = write_ram(fd, &vmm->vm, vmm->pagemap_fd, hdr->ram_offset,
			&hdr->ram_crc);
	if (ret)
		return ret;
	*step = "set the size of";
	if (ftruncate(fd, (off_t)hdr->file_size))
		return -errno;

	hdr->meta_crc = 0;
	memcpy(meta, hdr, sizeof(*hdr));
	hdr->meta_crc = crc32c(0, meta, hdr->ram_offset);
	memcpy(meta, hdr, sizeof(*hdr));
	*step = "write the header of";
	ret = pwrite_all(fd, meta, hdr->ram_offset, 0);
	if (ret)
		return ret;
	*step = "flush (fsync)";
	if (fsync(fd))
		return -errno;
	return 0;
}

/*
 * Write the temporary file in t's directory, then rename it over the
 * final name. Unlinks the temporary file on failure.
 */
static int write_and_rename(struct vmm *vmm, const char *path,
			    struct snap_target *t, uint8_t *meta,
			    struct snap_header *hdr, char *err,
			    size_t err_size)
{
	const char *step = "";
	int fd, ret;

	fd = openat(t->dir_fd, t->tmp_name,
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		ret = -errno;
		fail(err, err_size, "failed to snapshot: cannot create %s: %s%s",
		     t->tmp_path, strerror(errno), access_hint(vmm, ret));
		return ret;
	}
	ret = write_file(fd, meta, hdr, vmm, &step);
	if (ret) {
		fail(err, err_size, "failed to snapshot: failed to %s %s: %s",
		     step, t->tmp_path, strerror(-ret));
		goto err_unlink;
	}
	if (close(fd)) {
		fd = -1;
		ret = -errno;
		fail(err, err_size, "failed to snapshot: failed to close %s: %s",
		     t->tmp_path, strerror(errno));
		goto err_unlink;
	}
	fd = -1;
	if (renameat(t->dir_fd, t->tmp_name, t->dir_fd, t->name)) {
		ret = -errno;
		fail(err, err_size,
		     "failed to snapshot: failed to rename %s to %s: %s",
		     t->tmp_path, path, strerror(errno));
		goto err_unlink;
	}
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlinkat(t->dir_fd, t->tmp_name, 0);
	return ret;
}

int snap_write(struct vmm *vmm, const char *path, char *err,
	       size_t err_size)
{
	struct snap_target target;
	struct vm_cpu_state cpu;
	struct snap_header hdr;
	const char *step = "";
	uint8_t *meta;
	int ret;

	/* The guest may be inside a port-I/O exit, which KVM finishes only in
	 * the next KVM_RUN. The registers are not final until then. */
	ret = vm_complete_io(&vmm->vm);
	if (!ret)
		ret = vm_get_cpu_state(&vmm->vm, &cpu, &step);
	else
		step = "complete the vCPU's port I/O (KVM_RUN, immediate_exit)";
	if (ret) {
		fail(err, err_size, "failed to snapshot to %s: failed to %s: %s",
		     path, step, strerror(-ret));
		return ret;
	}
	ret = open_target(vmm, path, &target, err, err_size);
	if (ret)
		return ret;
	meta = build_meta(vmm, &cpu, &hdr);
	if (!meta) {
		fail(err, err_size,
		     "failed to snapshot to %s: out of memory for %" PRIu64
		     " bytes of state", path, hdr.ram_offset);
		ret = -ENOMEM;
		goto out_close;
	}
	ret = write_and_rename(vmm, path, &target, meta, &hdr, err,
			       err_size);
	free(meta);
	if (ret)
		goto out_close;
	/* fsync the directory, so the rename is durable. */
	if (fsync(target.dir_fd)) {
		ret = -errno;
		fail(err, err_size,
		     "snapshot %s is complete but its directory could not be "
		     "flushed (fsync): %s; a crash may lose it",
		     path, strerror(errno));
	}
out_close:
	close_target(&target);
	return ret;
}

int snap_prepare(struct vmm *vmm, char *err, size_t err_size)
{
	if (!vmm->vm.mem_private || vmm->pagemap_fd >= 0)
		return 0;
	vmm->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (vmm->pagemap_fd < 0) {
		int ret = -errno;

		fail(err, err_size, "failed to open /proc/self/pagemap, which "
		     "snapshots of a restored VM read: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/* ---- reading ---------------------------------------------------------- */

/* Print up to 8 magic bytes readably: printable ASCII or \xNN. */
static void format_magic(const uint8_t *magic, size_t len, char *out,
			 size_t out_size)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < len && used + 5 < out_size; i++) {
		if (magic[i] >= 0x20 && magic[i] < 0x7f && magic[i] != '\\')
			used += (size_t)snprintf(out + used, out_size - used,
						 "%c", magic[i]);
		else
			used += (size_t)snprintf(out + used, out_size - used,
						 "\\x%02x", magic[i]);
	}
}

/*
 * Check magic, version, sizes and the RAM offset: what must be valid before
 * the state checksum can be computed.
 */
static int check_identity(const struct snap_header *hdr, uint64_t file_size,
			  char *err, size_t err_size)
{
	char magic[48];

	if (memcmp(hdr->magic, SNAP_MAGIC, SNAP_MAGIC_SIZE)) {
		format_magic((const uint8_t *)hdr->magic, SNAP_MAGIC_SIZE,
			     magic, sizeof(magic));
		fail(err, err_size,
		     "not an sbx-vmm snapshot: bad magic \"%s\", expected \"%s\"",
		     magic, SNAP_MAGIC);
		return -EINVAL;
	}
	if (hdr->version > SNAP_VERSION) {
		fail(err, err_size,
		     "format version %" PRIu32 " is newer than this sbx-vmm "
		     "reads (up to version %d); restore it with a newer sbx-vmm",
		     hdr->version, SNAP_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (hdr->version == 0 || hdr->header_size != sizeof(*hdr) ||
	    hdr->page_size != SNAP_PAGE_SIZE) {
		fail(err, err_size,
		     "invalid header: version %" PRIu32 ", header size %" PRIu32
		     ", page size %" PRIu32 "; expected version %d, %zu, %d",
		     hdr->version, hdr->header_size, hdr->page_size,
		     SNAP_VERSION, sizeof(*hdr), SNAP_PAGE_SIZE);
		return -EINVAL;
	}
	if (hdr->file_size > file_size) {
		fail(err, err_size,
		     "truncated: the file has %" PRIu64 " bytes but its header "
		     "says %" PRIu64 "; take a new snapshot",
		     file_size, hdr->file_size);
		return -EINVAL;
	}
	if (hdr->file_size < file_size) {
		fail(err, err_size,
		     "invalid: the file has %" PRIu64 " bytes but its header "
		     "says %" PRIu64 "; data was appended to it",
		     file_size, hdr->file_size);
		return -EINVAL;
	}
	if (hdr->ram_offset < sizeof(*hdr) || hdr->ram_offset > SNAP_META_MAX ||
	    hdr->ram_offset > hdr->file_size) {
		fail(err, err_size,
		     "invalid header: RAM offset %" PRIu64 " is outside %zu to "
		     "%u bytes or past the end of the file",
		     hdr->ram_offset, sizeof(*hdr), SNAP_META_MAX);
		return -EINVAL;
	}
	return 0;
}

static bool section_ok(uint64_t offset, uint64_t size, uint64_t start,
		       uint64_t end)
{
	return offset >= start && offset % 8 == 0 && offset <= end &&
	       size <= end - offset;
}

/* Check the section layout, after the state checksum has matched. */
static int check_layout(const struct snap_header *hdr, char *err,
			size_t err_size)
{
	const char *problem = NULL;

	if (hdr->flags)
		problem = "unknown header flags are set";
	else if (hdr->mem_size < MEM_SIZE_MIN || hdr->mem_size > MEM_SIZE_MAX ||
		 hdr->mem_size % SNAP_PAGE_SIZE)
		problem = "memory size is outside 4 MiB to 4 GiB or not a "
			  "multiple of 4 KiB";
	else if (hdr->ram_size != hdr->mem_size ||
		 hdr->ram_offset % SNAP_PAGE_SIZE ||
		 hdr->ram_offset + hdr->ram_size != hdr->file_size)
		problem = "the RAM section is not page-aligned, not the memory "
			  "size, or not at the end of the file";
	else if (hdr->vcpu_size != sizeof(struct vm_cpu_state) ||
		 !section_ok(hdr->vcpu_offset, hdr->vcpu_size,
			     sizeof(*hdr), hdr->ram_offset))
		problem = "the vCPU section has the wrong size or position";
	else if (hdr->vmm_size < sizeof(struct snap_vmm_state) ||
		 !section_ok(hdr->vmm_offset, hdr->vmm_size,
			     hdr->vcpu_offset + hdr->vcpu_size,
			     hdr->ram_offset))
		problem = "the VMM section has the wrong size or position";
	else if (!memchr(hdr->sandbox_id, '\0', sizeof(hdr->sandbox_id)))
		problem = "the sandbox id is not NUL-terminated";
	if (!problem)
		return 0;
	fail(err, err_size, "invalid layout: %s", problem);
	return -EINVAL;
}

/* Check the VMM section: flags, pending hypercall and exec records. */
static int check_vmm_state(const struct snap_file *snap, char *err,
			   size_t err_size)
{
	const struct snap_header *hdr = snap->header;
	const struct snap_vmm_state *st = snap->state;
	const uint8_t *p = (const uint8_t *)st + sizeof(*st);
	const uint8_t *end = (const uint8_t *)st + hdr->vmm_size;
	struct snap_exec rec;

	if (st->flags & ~SNAP_VMM_FLAGS_KNOWN) {
		fail(err, err_size, "invalid VMM state: unknown flags 0x%" PRIx32,
		     st->flags & ~SNAP_VMM_FLAGS_KNOWN);
		return -EINVAL;
	}
	if ((st->flags & SNAP_VMM_HC_ACTIVE) &&
	    !hc_range_ok(hdr->mem_size, st->hc_gpa,
			 sizeof(struct sbx_hypercall))) {
		fail(err, err_size,
		     "invalid VMM state: hypercall request at GPA 0x%" PRIx64
		     " is outside RAM", st->hc_gpa);
		return -EINVAL;
	}
	if (snap->cpu->msr_count > VM_MSR_MAX) {
		fail(err, err_size, "invalid vCPU state: %" PRIu32 " MSRs, at "
		     "most %d", snap->cpu->msr_count, VM_MSR_MAX);
		return -EINVAL;
	}
	if (st->queue_len > VMM_EXEC_QUEUE_MAX) {
		fail(err, err_size, "invalid VMM state: %" PRIu32
		     " queued execs, at most %d", st->queue_len,
		     VMM_EXEC_QUEUE_MAX);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < st->queue_len; i++) {
		if ((size_t)(end - p) < sizeof(rec))
			goto short_queue;
		memcpy(&rec, p, sizeof(rec));
		if (rec.len > SBX_MSG_PAYLOAD_MAX ||
		    (size_t)(end - p) < exec_record_size(rec.len))
			goto short_queue;
		p += exec_record_size(rec.len);
	}
	return 0;

short_queue:
	fail(err, err_size, "invalid VMM state: the exec queue does not fit "
	     "its %" PRIu64 "-byte section", hdr->vmm_size);
	return -EINVAL;
}

/*
 * Open `path` and return its fd, with its size in *size, or a negative
 * errno for anything but a regular, non-empty file.
 */
static int open_regular(const char *path, uint64_t *size, char *err,
			size_t err_size)
{
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		fail(err, err_size, "cannot open: %s", strerror(errno));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		fail(err, err_size, "cannot stat: %s", strerror(errno));
		goto err_close;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		fail(err, err_size, "is a directory, not a snapshot file");
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		fail(err, err_size, "not a regular file");
		goto err_close;
	}
	if (st.st_size == 0) {
		ret = -EINVAL;
		fail(err, err_size, "the file is empty (0 bytes), not a snapshot");
		goto err_close;
	}
	*size = (uint64_t)st.st_size;
	return fd;

err_close:
	close(fd);
	return ret;
}

int snap_open(struct snap_file *snap, const char *path, char *err,
	      size_t err_size)
{
	struct snap_header hdr = { 0 };
	uint32_t stored, computed;
	uint64_t size = 0;
	int ret;

	*snap = (struct snap_file){ .fd = -1 };
	snap->fd = open_regular(path, &size, err, err_size);
	if (snap->fd < 0)
		return snap->fd;

	ret = pread_all(snap->fd, &hdr,
			size < sizeof(hdr) ? size : sizeof(hdr), 0);
	if (ret) {
		fail(err, err_size, "cannot read the header: %s", strerror(-ret));
		goto err_close;
	}
	if (size < SNAP_MAGIC_SIZE ||
	    !memcmp(hdr.magic, SNAP_MAGIC, SNAP_MAGIC_SIZE)) {
		if (size < sizeof(hdr)) {
			fail(err, err_size,
			     "truncated: the file has %" PRIu64 " bytes, less "
			     "than the %zu-byte header", size, sizeof(hdr));
			ret = -EINVAL;
			goto err_close;
		}
	}
	ret = check_identity(&hdr, size, err, err_size);
	if (ret)
		goto err_close;

	snap->meta = malloc(hdr.ram_offset);
	if (!snap->meta) {
		ret = -ENOMEM;
		fail(err, err_size, "out of memory for %" PRIu64 " bytes of state",
		     hdr.ram_offset);
		goto err_close;
	}
	ret = pread_all(snap->fd, snap->meta, hdr.ram_offset, 0);
	if (ret) {
		fail(err, err_size, "cannot read the state: %s", strerror(-ret));
		goto err_free;
	}
	stored = hdr.meta_crc;
	memset(snap->meta + offsetof(struct snap_header, meta_crc), 0,
	       sizeof(hdr.meta_crc));
	computed = crc32c(0, snap->meta, hdr.ram_offset);
	if (computed != stored) {
		fail(err, err_size,
		     "checksum mismatch in the header and state sections "
		     "(stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
		     "): the file is corrupt",
		     stored, computed);
		ret = -EBADMSG;
		goto err_free;
	}
	memcpy(snap->meta + offsetof(struct snap_header, meta_crc), &stored,
	       sizeof(stored));

	ret = check_layout(&hdr, err, err_size);
	if (ret)
		goto err_free;
	snap->header = (const struct snap_header *)snap->meta;
	snap->cpu = (const struct vm_cpu_state *)(snap->meta + hdr.vcpu_offset);
	snap->state =
		(const struct snap_vmm_state *)(snap->meta + hdr.vmm_offset);
	ret = check_vmm_state(snap, err, err_size);
	if (ret)
		goto err_free;
	return 0;

err_free:
	free(snap->meta);
	snap->meta = NULL;
err_close:
	close(snap->fd);
	snap->fd = -1;
	return ret;
}

/*
 * Compute the RAM checksum into *crc, reading only the data extents that
 * lseek(SEEK_DATA) finds. Holes are zeros, so their CRC is computed
 * without reading them. A file system without hole support reports one
 * data extent, and all of it is read.
 */
static int crc_ram_extents(int fd, uint64_t ram_offset, const uint8_t *mem,
			   uint64_t size, uint32_t *crc)
{
	uint64_t pos = 0, data, hole;
	off_t found;

	*crc = 0;
	while (pos < size) {
		found = lseek(fd, (off_t)(ram_offset + pos), SEEK_DATA);
		if (found < 0 && errno != ENXIO)
			return -errno;
		/* ENXIO: no data after pos, only a hole up to the end. */
		data = found < 0 ? size : (uint64_t)found - ram_offset;
		if (data > size)
			data = size;
		*crc = crc32c_zeros(*crc, data - pos);
		if (data == size)
			break;
		found = lseek(fd, (off_t)(ram_offset + data), SEEK_HOLE);
		if (found < 0)
			return -errno;
		hole = (uint64_t)found - ram_offset;
		if (hole > size)
			hole = size;
		*crc = crc32c(*crc, mem + data, hole - data);
		pos = hole;
	}
	return 0;
}

int snap_check_ram(const struct snap_file *snap, const uint8_t *mem,
		   char *err, size_t err_size)
{
	uint32_t computed;
	int ret;

	ret = crc_ram_extents(snap->fd, snap->header->ram_offset, mem,
			      snap->header->ram_size, &computed);
	if (ret) {
		fail(err, err_size, "cannot find the data extents of the RAM "
		     "section (lseek): %s", strerror(-ret));
		return ret;
	}
	if (computed == snap->header->ram_crc)
		return 0;
	fail(err, err_size,
	     "RAM checksum mismatch (stored 0x%08" PRIx32 ", computed 0x%08"
	     PRIx32 "): the file is corrupt",
	     snap->header->ram_crc, computed);
	return -EBADMSG;
}

/* Rebuild the exec queue and the running exec. */
static int load_queue(struct vmm *vmm, const struct snap_file *snap)
{
	const struct snap_vmm_state *st = snap->state;
	const uint8_t *p = (const uint8_t *)st + sizeof(*st);
	struct snap_exec rec;
	struct vmm_exec *e;

	if (st->flags & SNAP_VMM_RUNNING) {
		vmm->running = calloc(1, sizeof(*vmm->running) + 1);
		if (!vmm->running)
			return -ENOMEM;
		vmm->running->seq = st->running_seq;
	}
	for (uint32_t i = 0; i < st->queue_len; i++) {
		memcpy(&rec, p, sizeof(rec));
		e = malloc(sizeof(*e) + rec.len + 1);
		if (!e)
			return -ENOMEM; /* the caller frees the queue */
		e->next = NULL;
		e->seq = rec.seq;
		e->len = rec.len;
		memcpy(e->text, p + sizeof(rec), rec.len);
		e->text[rec.len] = '\0';
		if (vmm->queue_tail)
			vmm->queue_tail->next = e;
		else
			vmm->queue_head = e;
		vmm->queue_tail = e;
		vmm->queue_len++;
		p += exec_record_size(rec.len);
	}
	return 0;
}

int snap_load(struct vmm *vmm, const struct snap_file *snap, char *err,
	      size_t err_size)
{
	const struct snap_vmm_state *st = snap->state;
	const char *step = "";
	int ret;

	ret = vm_set_cpu_state(&vmm->vm, snap->cpu, &step);
	if (ret) {
		fail(err, err_size, "failed to %s: %s", step, strerror(-ret));
		return ret;
	}

	vmm->ready = st->flags & SNAP_VMM_READY;
	vmm->stop_pending = st->flags & SNAP_VMM_STOP_PENDING;
	vmm->stop_delivered = st->flags & SNAP_VMM_STOP_DELIVERED;
	vmm->console_capped = st->flags & SNAP_VMM_CONSOLE_CAPPED;
	vmm->console_bytes = st->console_bytes;
	vmm->clock_offset_ns = (int64_t)(st->guest_clock_ns - vmm_now_ns());
	vmm->hc = (struct vmm_hypercall){
		.active = st->flags & SNAP_VMM_HC_ACTIVE,
		.gpa = st->hc_gpa,
		.request = st->hc_request,
		.deadline_set = st->flags & SNAP_VMM_HC_DEADLINE,
		.deadline_ns = st->hc_deadline_ns,
	};
	if (vmm->cfg->control_fd < 0) {
		/* Standalone mode runs only its own command. */
		if (st->queue_len || (st->flags & SNAP_VMM_RUNNING))
			vmm_log(vmm, "dropped %" PRIu32 " queued and %d running "
				"exec requests of the snapshot: standalone "
				"mode has no one to answer",
				st->queue_len, !!(st->flags & SNAP_VMM_RUNNING));
		return 0;
	}
	ret = load_queue(vmm, snap);
	if (ret) {
		ctl_free_queue(vmm);
		fail(err, err_size, "out of memory for the exec queue");
		return ret;
	}
	return 0;
}

void snap_close(struct snap_file *snap)
{
	free(snap->meta);
	snap->meta = NULL;
	snap->header = NULL;
	snap->cpu = NULL;
	snap->state = NULL;
	if (snap->fd >= 0)
		close(snap->fd);
	snap->fd = -1;
}
