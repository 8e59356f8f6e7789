/* log.c - logfmt lines on standard error; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
#define LOG_VALUE_MAX 200

static char log_proc[32] = "ternd";
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *proc, int index, enum log_level min)
{
	if (index >= 0)
		snprintf(log_proc, sizeof log_proc, "%s/%d", proc, index);
	else
		snprintf(log_proc, sizeof log_proc, "%s", proc);
	log_min = min;
}

void log_set_level(enum log_level min)
{
	log_min = min;
}

bool log_enabled(enum log_level lvl)
{
	return lvl >= log_min;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

static void log_write(enum log_level lvl, const char *msg, size_t len)
{
	char line[LOG_LINE_MAX + 128];
	struct timeval tv;
	struct tm tm;
	int n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	if (len > LOG_LINE_MAX)
		len = LOG_LINE_MAX;
	n = snprintf(line, sizeof line,
		     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s proc=%s ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000,
		     level_names[lvl], log_proc);
	if (n < 0)
		return;
	memcpy(line + n, msg, len);
	line[n + len] = '\n';
	/* One write per line: lines of concurrent processes stay whole. */
	if (write(STDERR_FILENO, line, (size_t)n + len + 1) < 0)
		return;
}

__attribute__((format(printf, 2, 0)))
static void log_vevent(enum log_level lvl, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	int n;

	if (lvl < log_min)
		return;
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (n < 0)
		return;
	log_write(lvl, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

void log_event(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vevent(lvl, fmt, ap);
	va_end(ap);
}

void log_kv_escaped(struct buf *b, const char *key, const void *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *s = p;
	char out[LOG_VALUE_MAX * 4 + 8];
	size_t o = 0;
	size_t n = len > LOG_VALUE_MAX ? LOG_VALUE_MAX : len;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (n < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	(void)buf_printf(b, " %s=\"%.*s\"", key, (int)o, out);
}

void log_buf(enum log_level lvl, const struct buf *b)
{
	if (lvl < log_min)
		return;
	log_write(lvl, (const char *)b->data, b->len);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vevent(LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

void tern_bug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vevent(LOG_ERROR, fmt, ap);
	va_end(ap);
	abort();
}
