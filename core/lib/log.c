/*
 * log.c - logging (log.h). Each call formats one line into a stack buffer
 * and hands it to the destination in one write(2) (stderr) or one
 * syslog(3) call, so lines from several threads or processes sharing the
 * fd never interleave. Lines are capped (MA_LOG_LINE_MAX) and control
 * characters replaced, so client-supplied text cannot forge log lines.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "core-private.h"

/* Longer lines are cut and end in "..." - enough for a session summary. */
#define MA_LOG_LINE_MAX 2048

static const char *const log_level_names[] = {
	"debug", "info", "notice", "warning", "error",
};

static _Atomic int log_level = MA_LOG_INFO;
static _Atomic int log_to_syslog;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_ident[64] = "mailaccess";

int ma_log_level_parse(const char *name)
{
	if (name == NULL)
		return -1;
	for (unsigned i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (strcasecmp(name, log_level_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

int ma_log_init(const char *ident, const char *dest, enum ma_log_level level)
{
	int syslog_dest;
	if (dest == NULL || strcmp(dest, "stderr") == 0)
		syslog_dest = 0;
	else if (strcmp(dest, "syslog") == 0)
		syslog_dest = 1;
	else
		return -1;

	pthread_mutex_lock(&log_lock);
	if (ident != NULL && *ident != '\0')
		snprintf(log_ident, sizeof(log_ident), "%s", ident);
	if (atomic_load(&log_to_syslog))
		closelog();
	if (syslog_dest)
		/* openlog keeps the pointer: log_ident is static. */
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	atomic_store(&log_to_syslog, syslog_dest);
	pthread_mutex_unlock(&log_lock);
	ma_log_set_level(level);
	return 0;
}

void ma_log_set_level(enum ma_log_level level)
{
	if ((int)level < MA_LOG_DEBUG)
		level = MA_LOG_DEBUG;
	if (level > MA_LOG_ERROR)
		level = MA_LOG_ERROR;
	atomic_store(&log_level, (int)level);
}

int ma_log_enabled(enum ma_log_level level)
{
	return (int)level >= atomic_load(&log_level);
}

static int log_syslog_prio(enum ma_log_level level)
{
	switch (level) {
	case MA_LOG_DEBUG: return LOG_DEBUG;
	case MA_LOG_INFO: return LOG_INFO;
	case MA_LOG_NOTICE: return LOG_NOTICE;
	case MA_LOG_WARNING: return LOG_WARNING;
	default: return LOG_ERR;
	}
}

/* Redeclared with format(printf, N, 0) so clang's -Wformat-nonliteral
 * knows fmt is the caller's checked format. */
void ma_vlog(enum ma_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

void ma_vlog(enum ma_log_level level, const char *fmt, va_list ap)
{
	if (!ma_log_enabled(level))
		return;
	if ((int)level < MA_LOG_DEBUG || level > MA_LOG_ERROR)
		level = MA_LOG_ERROR;

	int saved_errno = errno;	/* callers may log then test errno */
	char line[MA_LOG_LINE_MAX + 2];
	size_t pos = 0;
	int syslog_dest = atomic_load(&log_to_syslog);
	if (!syslog_dest) {
		/* The lock only guards log_ident against a concurrent
		 * ma_log_init() (reload); the write itself needs none. */
		pthread_mutex_lock(&log_lock);
		int n = snprintf(line, sizeof(line), "%s: %s: ", log_ident,
				 log_level_names[level]);
		pthread_mutex_unlock(&log_lock);
		pos = n > 0 ? (size_t)n : 0;
		if (pos >= MA_LOG_LINE_MAX)
			pos = 0;
	}
	size_t body = pos;
	errno = saved_errno;	/* for %m */
	int n = vsnprintf(line + pos, MA_LOG_LINE_MAX - pos, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= MA_LOG_LINE_MAX - pos) {
		pos = MA_LOG_LINE_MAX - 1;
		memcpy(line + pos - 3, "...", 3);
	} else {
		pos += (size_t)n;
	}
	/* One event, one line: no embedded newlines or control bytes. */
	for (size_t i = body; i < pos; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			line[i] = '?';
	}
	if (syslog_dest) {
		line[pos] = '\0';
		syslog(log_syslog_prio(level), "%s", line);
	} else {
		line[pos++] = '\n';
		ssize_t w = write(STDERR_FILENO, line, pos);
		(void)w;	/* nowhere to report a failed log write */
	}
	errno = saved_errno;
}

void ma_log(enum ma_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ma_vlog(level, fmt, ap);
	va_end(ap);
}
