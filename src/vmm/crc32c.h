/* SPDX-License-Identifier: MIT */
/* CRC-32C (Castagnoli), the checksum of sbx-vmm snapshot files. */
#ifndef SBX_VMM_CRC32C_H
#define SBX_VMM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extend `crc` (0 for a new checksum) over `len` bytes at `buf`. The result
 * is the standard CRC-32C as used by iSCSI and ext4: crc32c(0, "123456789",
 * 9) == 0xe3069283. Uses the SSE4.2 crc32 instruction when the CPU has it.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * Return crc32c() over `len` zero bytes without reading any: the cost grows
 * with log2(len), about 1.5 us for 4 GiB on an AMD EPYC host.
 */
uint32_t crc32c_zeros(uint32_t crc, size_t len);

/*
 * The same CRC from a byte-wise lookup table, for CPUs without SSE4.2 and
 * for tests. About 50 times slower than crc32c() on an SSE4.2 CPU.
 */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
