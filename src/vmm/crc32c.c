/* SPDX-License-Identifier: MIT */
/* CRC-32C with the SSE4.2 instruction, and a table-driven fallback. */
#include <nmmintrin.h>
#include <stdbool.h>
#include <string.h>

#include "vmm/crc32c.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78u

/*
 * The crc32 instruction has a latency of 3 cycles and a throughput of 1,
 * so three independent streams over three thirds of a buffer run about
 * three times faster than one. The thirds are then joined by shifting the
 * first two CRCs over the bytes that follow them (crc_shift()).
 */
#define STREAM_MIN 4096 /* below this, one stream is fast enough */

static uint32_t table[256];
static bool table_built;

static void build_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (c & 1 ? CRC32C_POLY_REFLECTED : 0);
		table[i] = c;
	}
	table_built = true;
}

/* Update the raw register (no pre- or post-inversion) byte by byte. */
static uint32_t update_soft(uint32_t c, const uint8_t *p, size_t len)
{
	if (!table_built)
		build_table();
	while (len--)
		c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

/*
 * Multiply two polynomials modulo the CRC-32C polynomial, in the reflected
 * bit order that the register uses (bit 31 is x^0).
 */
static uint32_t gf2_multiply(uint32_t a, uint32_t b)
{
	uint32_t product = 0;

	for (int i = 0; i < 32; i++) {
		if (a & 0x80000000u)
			product ^= b;
		a <<= 1;
		b = (b >> 1) ^ (b & 1 ? CRC32C_POLY_REFLECTED : 0);
	}
	return product;
}

/* Compute x^(8 * len) modulo the polynomial by repeated squaring. */
static uint32_t x_pow_8n(size_t len)
{
	uint32_t result = 0x80000000u; /* x^0 */
	uint32_t square = 0x00800000u; /* x^8: one byte */

	while (len) {
		if (len & 1)
			result = gf2_multiply(result, square);
		square = gf2_multiply(square, square);
		len >>= 1;
	}
	return result;
}

/* Return the register value `c` after `len` more zero bytes. */
static uint32_t crc_shift(uint32_t c, size_t len)
{
	/* One cached power: repeated calls tend to use one length. */
	static size_t cached_len;
	static uint32_t cached_pow = 0x80000000u;

	if (len != cached_len) {
		cached_pow = x_pow_8n(len);
		cached_len = len;
	}
	return gf2_multiply(cached_pow, c);
}

__attribute__((target("sse4.2"))) static uint32_t
update_hw_one(uint32_t c, const uint8_t *p, size_t len)
{
	uint64_t c64 = c;
	uint64_t word;

	for (; len >= 8; len -= 8, p += 8) {
		memcpy(&word, p, sizeof(word));
		c64 = _mm_crc32_u64(c64, word);
	}
	c = (uint32_t)c64;
	while (len--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}

__attribute__((target("sse4.2"))) static uint32_t
update_hw(uint32_t c, const uint8_t *p, size_t len)
{
	uint64_t a = c, b = 0, d = 0, wa, wb, wd;
	size_t third = len / 3 / 8 * 8;
	const uint8_t *pb = p + third, *pd = p + 2 * third;

	if (len < STREAM_MIN)
		return update_hw_one(c, p, len);
	for (size_t i = 0; i < third; i += 8) {
		memcpy(&wa, p + i, sizeof(wa));
		memcpy(&wb, pb + i, sizeof(wb));
		memcpy(&wd, pd + i, sizeof(wd));
		a = _mm_crc32_u64(a, wa);
		b = _mm_crc32_u64(b, wb);
		d = _mm_crc32_u64(d, wd);
	}
	/* Registers started at 0 for the second and third streams, so the
	 * CRC's linearity lets the three be joined with shifts and XOR. */
	c = crc_shift((uint32_t)a, third) ^ (uint32_t)b;
	c = crc_shift(c, third) ^ (uint32_t)d;
	return update_hw_one(c, pd + third, len - 3 * third);
}

uint32_t crc32c_zeros(uint32_t crc, size_t len)
{
	return ~crc_shift(~crc, len);
}

uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	return ~update_soft(~crc, buf, len);
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	static int has_sse42 = -1;
	uint32_t c = ~crc;

	if (has_sse42 < 0)
		has_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	if (has_sse42)
		c = update_hw(c, buf, len);
	else
		c = update_soft(c, buf, len);
	return ~c;
}
