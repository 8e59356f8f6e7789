/* buf.c - bounded growable byte buffer; see buf.h for the contract. */
#include "buf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

int buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	uint8_t *p;

	if (!size_add(b->len, extra, &need) || need > b->max)
		return -1;
	if (need <= b->cap)
		return 0;
	/* Grow geometrically from a small start, but never past max. */
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		if (!size_mul(cap, 2, &cap))
			return -1;
	if (cap > b->max)
		cap = b->max;
	p = realloc(b->data, cap);
	if (p == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int buf_append_slice(struct buf *b, struct slice s)
{
	return buf_append(b, s.p, s.len);
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || buf_reserve(b, (size_t)n) < 0)
		return -1;
	if (n == 0)
		return 0;
	/*
	 * vsnprintf also writes a NUL, not counted in len. When the text
	 * exactly reaches max there is no room for it: format into a scratch
	 * copy rather than refuse text that fits.
	 */
	if (buf_reserve(b, (size_t)n + 1) == 0) {
		vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	} else {
		char *tmp = malloc((size_t)n + 1);

		if (tmp == NULL)
			return -1;
		vsnprintf(tmp, (size_t)n + 1, fmt, ap);
		memcpy(b->data + b->len, tmp, (size_t)n);
		free(tmp);
	}
	b->len += (size_t)n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
}

void buf_shrink(struct buf *b, size_t keep)
{
	if (b->len == 0 && b->cap > keep) {
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

struct slice buf_slice(const struct buf *b)
{
	return (struct slice){ b->data, b->len };
}

struct slice slice_from_str(const char *s)
{
	return (struct slice){ (const uint8_t *)s, strlen(s) };
}

bool slice_eq_nocase(struct slice a, const char *lit)
{
	size_t n = strlen(lit);

	return a.len == n && slice_startswith_nocase(a, lit);
}

bool slice_startswith_nocase(struct slice a, const char *lit)
{
	size_t n = strlen(lit);

	if (a.len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (tolower(a.p[i]) != tolower((unsigned char)lit[i]))
			return false;
	return true;
}

struct slice slice_trim(struct slice s)
{
	while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.len--;
	}
	while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
		s.len--;
	return s;
}

int slice_to_cstr(struct slice s, char *out, size_t cap)
{
	if (s.len >= cap || (s.len > 0 && memchr(s.p, '\0', s.len) != NULL))
		return -1;
	if (s.len > 0)
		memcpy(out, s.p, s.len);
	out[s.len] = '\0';
	return 0;
}

void str_copy_printable(char *out, size_t cap, const char *p, size_t len)
{
	size_t n = len < cap - 1 ? len : cap - 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[n] = '\0';
}
