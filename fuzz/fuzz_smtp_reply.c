/*
 * fuzz_smtp_reply.c - libFuzzer target for proto/smtp_reply.c: server replies
 * fed whole and in pieces (the results must agree), EHLO keywords, escaping.
 *
 * Input: byte 0 bit 0: read the first reply as an EHLO reply; byte 1: the
 * piece size for the split run (1..256); the rest: bytes from a server.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_reply.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
	enum smtp_reply_status status;
	int code;
	char enh[SMTP_ENH_MAX];
	char text[SMTP_REPLY_TEXT_MAX];
	unsigned nlines;
	bool bare_lf;
	size_t used;
	struct smtp_ehlo ehlo;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* text: printable ASCII; a backslash only as "\xHH"; a cut ends in "...". */
static void check_text(const char *t)
{
	size_t n = strnlen(t, SMTP_REPLY_TEXT_MAX);

	CHECK(n < SMTP_REPLY_TEXT_MAX);
	for (size_t i = 0; i < n; i++) {
		CHECK(t[i] >= 0x20 && t[i] < 0x7f);
		if (t[i] == '\\') {
			CHECK(i + 3 < n);	/* never cut inside an escape */
			CHECK(t[i + 1] == 'x');
			CHECK(strchr("0123456789ABCDEF", t[i + 2]) && t[i + 2] != '\0');
			CHECK(strchr("0123456789ABCDEF", t[i + 3]) && t[i + 3] != '\0');
			i += 3;
		}
	}
}

static void check_enh(const char *e, int code)
{
	size_t n = strlen(e), dots = 0;

	if (n == 0)
		return;
	CHECK(n >= 5 && n <= 9);
	CHECK(e[0] - '0' == code / 100);
	CHECK(e[1] == '.');
	for (size_t i = 2; i < n; i++) {
		CHECK(is_digit(e[i]) || e[i] == '.');
		dots += e[i] == '.';
	}
	CHECK(dots == 1);
}

static void check_done(const struct smtp_reply_parser *p)
{
	CHECK(p->code >= 200 && p->code <= 559);
	CHECK(p->code / 10 % 10 <= 5);
	CHECK(p->nlines >= 1 && p->nlines <= SMTP_REPLY_LINES_MAX);
	check_enh(p->enh, p->code);
	check_text(p->text);
}

/* Parse one reply from data, in pieces of `piece` octets (0: all at once). */
static void parse_one(const uint8_t *data, size_t size, size_t piece, bool ehlo,
		      struct outcome *o)
{
	struct smtp_reply_parser p;
	size_t used = 0;

	memset(o, 0, sizeof *o);
	smtp_reply_init(&p, ehlo ? &o->ehlo : NULL);
	while (used < size && p.status == SMTP_REPLY_MORE) {
		size_t n = piece == 0 || size - used < piece ? size - used : piece;
		size_t u = smtp_reply_feed(&p, data + used, n);

		CHECK(u <= n);
		if (p.status == SMTP_REPLY_MORE)
			CHECK(u == n);
		used += u;
	}
	/* A finished parser takes nothing more. */
	if (p.status != SMTP_REPLY_MORE && used < size)
		CHECK(smtp_reply_feed(&p, data + used, size - used) == 0);
	if (p.status == SMTP_REPLY_DONE)
		check_done(&p);
	if (p.status == SMTP_REPLY_ERROR)
		CHECK(p.error != NULL && p.error[0] != '\0');
	o->status = p.status;
	o->code = p.code;
	memcpy(o->enh, p.enh, sizeof o->enh);
	memcpy(o->text, p.text, sizeof o->text);
	o->nlines = p.nlines;
	o->bare_lf = p.bare_lf;
	o->used = used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outcome whole, split;
	bool ehlo;
	size_t piece, off = 0;
	char esc[64];

	if (size < 2)
		return 0;
	ehlo = data[0] & 1;
	piece = (size_t)data[1] % 256 + 1;
	data += 2;
	size -= 2;

	/* Reply after reply, as a pipelining client reads them. */
	for (int k = 0; off < size && k < 64; k++) {
		parse_one(data + off, size - off, 0, ehlo && k == 0, &whole);
		parse_one(data + off, size - off, piece, ehlo && k == 0, &split);
		CHECK(whole.status == split.status);
		if (whole.status == SMTP_REPLY_DONE) {
			CHECK(whole.code == split.code);
			CHECK(strcmp(whole.enh, split.enh) == 0);
			CHECK(strcmp(whole.text, split.text) == 0);
			CHECK(whole.nlines == split.nlines);
			CHECK(whole.bare_lf == split.bare_lf);
			CHECK(whole.used == split.used);
			CHECK(memcmp(&whole.ehlo, &split.ehlo, sizeof whole.ehlo) == 0);
			CHECK(whole.used > 0 && data[off + whole.used - 1] == '\n');
			if (ehlo && k == 0)
				CHECK((whole.ehlo.auth & ~0x801fu) == 0);
		}
		if (whole.status != SMTP_REPLY_DONE)
			break;
		off += whole.used;
	}

	/* One EHLO keyword line, and the escaper with every small cap. */
	{
		struct smtp_ehlo e;

		smtp_ehlo_init(&e);
		smtp_ehlo_line(&e, data, size);
		if (!e.has_size)
			CHECK(e.size == 0);
	}
	for (size_t cap = 0; cap <= sizeof esc; cap += 7) {
		size_t n = smtp_reply_escape(data, size, esc, cap);

		if (cap == 0)
			continue;
		CHECK(n < cap);
		CHECK(strlen(esc) == n);
		if (cap >= 4)
			check_text(esc);
	}
	return 0;
}
