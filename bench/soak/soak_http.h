/* SPDX-License-Identifier: MIT */
/* Keep-alive HTTP/1.1 client over sbxd's unix socket for sbx-soak. */
#ifndef SBX_SOAK_HTTP_H
#define SBX_SOAK_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

/* Largest response body kept; a longer one fails the request with -EFBIG. */
#define SOAK_BODY_MAX (4u << 20)

struct soak_resp {
	int status;
	char *body;		/* NUL-terminated, "" when empty; free() it */
	size_t body_len;
	bool keep_alive;	/* false when the server closes after it */
};

struct soak_conn {
	const char *sock_path;
	int timeout_ms;		/* whole request: send plus response */
	int fd;			/* -1 while disconnected */
};

void soak_conn_init(struct soak_conn *c, const char *sock_path,
		    int timeout_ms);
void soak_conn_close(struct soak_conn *c);
/*
 * Shut down the sending side, wait up to the connection's timeout for the
 * server to close its end, then close. Once the server's close shows as
 * EOF here, its descriptor is gone, so a count of the server's fds taken
 * afterwards no longer includes this connection. Returns 0, -ETIMEDOUT,
 * -EPROTO when the server sent bytes, or -errno.
 */
int soak_conn_finish(struct soak_conn *c);

/*
 * Send one request with an optional JSON body and read the response,
 * connecting first when needed. The connection is closed afterwards when
 * the server does not keep it alive, or on any error. Returns 0, or
 * -errno: -ETIMEDOUT, -ECONNRESET when the server closed it before a
 * full response, -EPROTO for a malformed response, -EFBIG, -ENOMEM, or
 * an error from socket(), connect() or send(). Call soak_resp_free()
 * after either.
 */
int soak_request(struct soak_conn *c, const char *method, const char *path,
		 const char *body, struct soak_resp *resp);

void soak_resp_free(struct soak_resp *resp);

#endif
