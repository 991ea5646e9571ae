/* SPDX-License-Identifier: MIT */
/* GET /metrics in the Prometheus text exposition format 0.0.4. */
#ifndef SBXD_METRICS_H
#define SBXD_METRICS_H

#include "sbxd/buf.h"

struct sbxd;

/* Append every metric to out; 0 or -ENOMEM. */
int metrics_format(struct sbxd *d, struct buf *out);

#endif
