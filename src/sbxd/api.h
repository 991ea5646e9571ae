/* SPDX-License-Identifier: MIT */
/* HTTP routes of the sbxd API and decoding of their JSON bodies. */
#ifndef SBXD_API_H
#define SBXD_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sbxd/http.h"
#include "sbxd/sandbox.h"
#include "sbxd/snapctl.h"

struct sbxd;
struct conn;

struct exec_params {
	char *command;		/* malloc'd */
	uint64_t timeout_ms;	/* 0: no timeout */
};

/* Route one complete request; responds now or arranges a later response. */
void api_handle(struct sbxd *d, struct conn *c, struct http_request *req);

/*
 * Decoders of request bodies. Each returns 0 or -EINVAL with a message
 * naming the field in err. default_guest fills params->guest when the
 * body has none. api_decode_create also reads the guest's ELF program
 * headers and rejects a memory_mib too small for them.
 */
int api_decode_create(const char *body, size_t len, const char *default_guest,
		      struct sandbox_params *params, char *err, size_t errlen);
int api_decode_exec(const char *body, size_t len, struct exec_params *params,
		    char *err, size_t errlen);
int api_decode_grace(const char *body, size_t len, uint64_t default_ms,
		     uint64_t *grace_ms, char *err, size_t errlen);
/* {"path": absolute path or null, "overwrite": bool}; both optional. */
int api_decode_snapshot(const char *body, size_t len,
			struct snapshot_params *params, char *err,
			size_t errlen);
/* A body that must be empty or an object without fields. */
int api_decode_empty(const char *body, size_t len, char *err, size_t errlen);

/* Send {"error":{"code":...,"message":...}}. */
void api_error(struct sbxd *d, struct conn *c, int status, const char *code,
	       const char *extra_headers, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* A JSON string of len bytes; invalid UTF-8 becomes U+FFFD. */
json_t *api_json_bytes(const char *data, size_t len);
/* Send a JSON value and release the reference. */
void api_json(struct sbxd *d, struct conn *c, int status, json_t *value);

#endif
