/*
 * buf.h - the one growable byte buffer, and borrowed slices.
 *
 * SYNOPSIS
 *	struct buf b;
 *	buf_init(&b, max);		hard cap: the buffer never grows past max
 *	buf_append(&b, p, n);		-1 when it would pass max (or on ENOMEM)
 *	buf_consume(&b, n);		drop n bytes from the front
 *	buf_free(&b);
 *
 * DESCRIPTION
 *	Every byte that comes from the network or a file is held in a buf or
 *	viewed through a slice; nothing relies on NUL termination. A slice
 *	borrows: it is valid only while the buf it points into is unchanged.
 *	Size arithmetic is checked (size_add, size_mul).
 *
 * DIAGNOSTICS
 *	Functions that can fail return -1 and leave the buffer as it was.
 */
#ifndef TERN_BUF_H
#define TERN_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct slice {
	const uint8_t *p;
	size_t len;
};

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max;
};

#define SLICE_LIT(s) ((struct slice){ (const uint8_t *)(s), sizeof(s) - 1 })

void buf_init(struct buf *b, size_t max);
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_slice(struct buf *b, struct slice s);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Give memory back when the buffer is empty and larger than keep. */
void buf_shrink(struct buf *b, size_t keep);
void buf_free(struct buf *b);
struct slice buf_slice(const struct buf *b);

/* A NUL-terminated copy of p[0..len) into out (cap > 0), cut to fit,
 * every octet outside printable ASCII as '?': text from the network made
 * fit for a reply, a header field or a log line. */
void str_copy_printable(char *out, size_t cap, const char *p, size_t len);

/* Slices. */
struct slice slice_from_str(const char *s);
bool slice_eq_nocase(struct slice a, const char *lit);
bool slice_startswith_nocase(struct slice a, const char *lit);
struct slice slice_trim(struct slice s);
/* Copy into a NUL-terminated array; -1 if it does not fit or holds a NUL. */
int slice_to_cstr(struct slice s, char *out, size_t cap);

/* Checked size arithmetic: false on overflow. */
static inline bool size_add(size_t a, size_t b, size_t *r)
{
	return !__builtin_add_overflow(a, b, r);
}
static inline bool size_mul(size_t a, size_t b, size_t *r)
{
	return !__builtin_mul_overflow(a, b, r);
}

#endif
