/* SPDX-License-Identifier: MIT */
/*
 * Leveled logging to stderr, one line per call:
 * "<monotonic seconds.ms> <level> [sandbox=<id>] <message> key=value ...".
 */
#ifndef SBXD_LOG_H
#define SBXD_LOG_H

enum log_level {
	LOG_LEVEL_ERR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

extern enum log_level log_max_level;

void log_write(enum log_level level, const char *sandbox_id,
	       const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Parse "err", "warn", "info" or "debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *text, enum log_level *level);
const char *log_level_name(enum log_level level);

/* The level is checked before the arguments are formatted. */
#define log_at(level, id, fmt, ...)                                      \
	do {                                                             \
		if ((level) <= log_max_level)                            \
			log_write((level), (id), fmt, ##__VA_ARGS__);    \
	} while (0)

#define log_err(fmt, ...) log_at(LOG_LEVEL_ERR, NULL, fmt, ##__VA_ARGS__)
#define log_warn(fmt, ...) log_at(LOG_LEVEL_WARN, NULL, fmt, ##__VA_ARGS__)
#define log_info(fmt, ...) log_at(LOG_LEVEL_INFO, NULL, fmt, ##__VA_ARGS__)
#define log_debug(fmt, ...)                                              \
	log_at(LOG_LEVEL_DEBUG, NULL, fmt " src=%s:%d:%s", ##__VA_ARGS__, \
	       __FILE__, __LINE__, __func__)

/* The same, with the sandbox id in the line. */
#define sb_err(id, fmt, ...) log_at(LOG_LEVEL_ERR, id, fmt, ##__VA_ARGS__)
#define sb_warn(id, fmt, ...) log_at(LOG_LEVEL_WARN, id, fmt, ##__VA_ARGS__)
#define sb_info(id, fmt, ...) log_at(LOG_LEVEL_INFO, id, fmt, ##__VA_ARGS__)
#define sb_debug(id, fmt, ...)                                           \
	log_at(LOG_LEVEL_DEBUG, id, fmt " src=%s:%d:%s", ##__VA_ARGS__,   \
	       __FILE__, __LINE__, __func__)

#endif
