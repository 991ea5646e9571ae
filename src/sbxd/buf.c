// SPDX-License-Identifier: MIT
/* Growable byte buffer. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/buf.h"

static int buf_reserve(struct buf *buf, size_t extra)
{
	size_t want = buf->len + extra + 1;
	size_t cap = buf->cap ? buf->cap : 256;
	char *data;

	if (want <= buf->cap)
		return 0;
	while (cap < want)
		cap *= 2;
	data = realloc(buf->data, cap);
	if (!data)
		return -ENOMEM;
	buf->data = data;
	buf->cap = cap;
	return 0;
}

int buf_append(struct buf *buf, const void *data, size_t len)
{
	int ret = buf_reserve(buf, len);

	if (ret)
		return ret;
	if (len)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return 0;
}

int buf_printf(struct buf *buf, const char *fmt, ...)
{
	va_list ap;
	int n;
	int ret;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	ret = buf_reserve(buf, (size_t)n);
	if (ret)
		return ret;
	va_start(ap, fmt);
	vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf->len += (size_t)n;
	return 0;
}

void buf_reset(struct buf *buf)
{
	buf->len = 0;
	if (buf->data)
		buf->data[0] = '\0';
}

void buf_free(struct buf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}
