/*
 * log.h - logging. Destination is stderr (default) or syslog; one line per
 * call, prefixed with the level. Session lines carry the session id
 * ("sid=...") so a client-visible error id can be found in the log.
 * Thread-safe (each call writes one line with a single write(2)).
 */
#ifndef MAILACCESS_LOG_H
#define MAILACCESS_LOG_H

#include <stdarg.h>

enum ma_log_level {
	MA_LOG_DEBUG = 0,
	MA_LOG_INFO,
	MA_LOG_NOTICE,
	MA_LOG_WARNING,
	MA_LOG_ERROR,
};

/* dest: "stderr" or "syslog"; ident is the program name. Returns -1 on an
 * unknown dest. May be called again (reload). */
int ma_log_init(const char *ident, const char *dest, enum ma_log_level level);
/* "debug" | "info" | "notice" | "warning" | "error"; -1 if unknown. */
int ma_log_level_parse(const char *name);
void ma_log_set_level(enum ma_log_level level);
int ma_log_enabled(enum ma_log_level level);

void ma_log(enum ma_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ma_vlog(enum ma_log_level level, const char *fmt, va_list ap);

#define ma_debug(...) ma_log(MA_LOG_DEBUG, __VA_ARGS__)
#define ma_info(...) ma_log(MA_LOG_INFO, __VA_ARGS__)
#define ma_notice(...) ma_log(MA_LOG_NOTICE, __VA_ARGS__)
#define ma_warning(...) ma_log(MA_LOG_WARNING, __VA_ARGS__)
#define ma_error(...) ma_log(MA_LOG_ERROR, __VA_ARGS__)

#endif
