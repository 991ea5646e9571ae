// SPDX-License-Identifier: MIT
/* Reads a guest ELF's program headers to size the guest RAM it needs. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "sbx/guest.h"
#include "sbxd/guest.h"

/* More program headers than a static guest has; sbx-vmm judges the rest. */
#define GUEST_PHDR_MAX 64
#define MIB (1024ull * 1024)

static int read_exact(int fd, void *data, size_t len, off_t offset)
{
	ssize_t n = pread(fd, data, len, offset);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -ENOEXEC;
}

static int check_header(const Elf64_Ehdr *eh)
{
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > GUEST_PHDR_MAX)
		return -ENOEXEC;
	return 0;
}

int guest_read_layout(const char *path, struct guest_layout *out)
{
	Elf64_Phdr phdrs[GUEST_PHDR_MAX];
	uint64_t end = 0;
	uint64_t need;
	Elf64_Ehdr eh;
	int fd;
	int ret;

	/* NOTE: this open and the reads below run on the loop thread. They
	 * are a few kilobytes, usually from the page cache, but a guest on a
	 * slow network file system stalls every client meanwhile. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	ret = read_exact(fd, &eh, sizeof(eh), 0);
	if (ret)
		goto out_close;
	ret = check_header(&eh);
	if (ret)
		goto out_close;
	ret = read_exact(fd, phdrs, eh.e_phnum * sizeof(phdrs[0]),
			 (off_t)eh.e_phoff);
	if (ret)
		goto out_close;

	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *ph = &phdrs[i];

		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		if (ph->p_vaddr + ph->p_memsz < ph->p_vaddr) {
			ret = -ENOEXEC;
			goto out_close;
		}
		if (ph->p_vaddr + ph->p_memsz > end)
			end = ph->p_vaddr + ph->p_memsz;
	}
	need = end + SBX_STACK_SIZE;
	if (end == 0 || need / MIB >= UINT32_MAX) {
		ret = -ENOEXEC;
		goto out_close;
	}
	out->load_end = end;
	out->min_memory_mib = (unsigned int)((need + MIB - 1) / MIB);

out_close:
	close(fd);
	return ret;
}
