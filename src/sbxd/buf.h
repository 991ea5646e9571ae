/* SPDX-License-Identifier: MIT */
/* Growable byte buffer for requests, responses and JSON text. */
#ifndef SBXD_BUF_H
#define SBXD_BUF_H

#include <stddef.h>

struct buf {
	char *data;	/* NUL-terminated when len < cap */
	size_t len;
	size_t cap;
};

/* Both return 0 or -ENOMEM; the buffer keeps its old content on failure. */
int buf_append(struct buf *buf, const void *data, size_t len);
int buf_printf(struct buf *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *buf);
void buf_free(struct buf *buf);

#endif
