/*
 * log.h - one logfmt line per event.
 *
 * SYNOPSIS
 *	log_init("worker", 1, LOG_INFO);
 *	log_event(LOG_INFO, "event=connect session=%s client=%s", id, ip);
 *	log_kv_escaped(&b, "helo", bytes, len);	 untrusted text, quoted and escaped
 *	tern_bug("impossible state %d", s);	 abort: an invariant broke (our bug)
 *	fatal("cannot bind %s: %s", a, e);	 exit 1: environment or configuration
 *
 * DESCRIPTION
 *	Lines go to standard error as `ts=... level=... proc=... key=value ...`.
 *	Anything that came from the network is written through log_kv_escaped(),
 *	which quotes the value and escapes '"', '\\' and every byte outside
 *	printable ASCII as \xHH, and caps it at 200 octets, so a client can never
 *	forge a log line or a field. Credentials are never passed to the log.
 *	Each line is written with one write(2), so lines of concurrent
 *	processes do not interleave.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(const char *proc, int index, enum log_level min);
void log_set_level(enum log_level min);
/* False when lines of lvl are dropped: callers skip building them. */
bool log_enabled(enum log_level lvl);
int log_level_parse(const char *s, enum log_level *out);
void log_event(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append ` key="escaped value"` to b. */
void log_kv_escaped(struct buf *b, const char *key, const void *p, size_t len);
/* Write b (without a trailing newline) as one line at lvl. */
void log_buf(enum log_level lvl, const struct buf *b);

_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void tern_bug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
