/*
 * driver_text.h - what the test drivers that read commands on stdin
 * (spf_suite.c, dmarc_tool.c) share: hex arguments, names as DNS compares
 * them, and dying with the driver's name. Define DRIVER_NAME before
 * including it. Everything is static inline: each driver uses a part.
 */
#ifndef TERN_DRIVER_TEXT_H
#define TERN_DRIVER_TEXT_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline _Noreturn void die(const char *msg)
{
	fprintf(stderr, "%s: %s\n", DRIVER_NAME, msg);
	exit(2);
}

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

/* n hex digits (or "-", nothing) to octets, NUL-terminated; *len the count. */
static inline char *unhex_n(const char *h, size_t n, size_t *len)
{
	char *out;

	if (n == 1 && h[0] == '-')
		n = 0;
	if (n % 2 != 0)
		die("odd hex");
	out = xmalloc(n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v = 0;
		char two[3] = { h[2 * i], h[2 * i + 1], '\0' };

		if (!isxdigit((unsigned char)two[0]) || !isxdigit((unsigned char)two[1]) ||
		    sscanf(two, "%2x", &v) != 1)
			die("bad hex");
		out[i] = (char)v;
	}
	out[n / 2] = '\0';
	if (len != NULL)
		*len = n / 2;
	return out;
}

static inline char *unhex(const char *h, size_t *len)
{
	return unhex_n(h, strlen(h), len);
}

/* s in hex, "-" when empty. */
static inline void print_hex(const char *s)
{
	if (*s == '\0')
		fputs("-", stdout);
	for (; *s != '\0'; s++)
		printf("%02x", (unsigned char)*s);
}

/* A name as DNS compares it: lower case, no trailing dot (malloc'd). */
static inline char *canon(const char *name)
{
	size_t n = strlen(name);
	char *c = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++)
		c[i] = (char)tolower((unsigned char)name[i]);
	if (n > 0 && c[n - 1] == '.')
		n--;
	c[n] = '\0';
	return c;
}

#endif
