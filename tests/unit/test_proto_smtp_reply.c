/* test_proto_smtp_reply.c - cmocka tests of the reply parser and EHLO keywords (src/proto/smtp_reply.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/smtp_reply.h"

/* Feed the whole of s (length n) at once; returns the octets used. */
static size_t feed(struct smtp_reply_parser *p, const char *s, size_t n)
{
	return smtp_reply_feed(p, (const uint8_t *)s, n);
}

#define FEED(p, lit) feed((p), (lit), sizeof(lit) - 1)

/* One octet at a time: the result must not depend on the split. */
static size_t feed_bytewise(struct smtp_reply_parser *p, const char *s, size_t n)
{
	size_t used = 0;

	for (size_t i = 0; i < n && p->status == SMTP_REPLY_MORE; i++)
		used += smtp_reply_feed(p, (const uint8_t *)s + i, 1);
	return used;
}

struct rcase {
	const char *name;
	const char *in;
	size_t len;
	enum smtp_reply_status status;
	int code;
	const char *enh;
	const char *text;
	size_t used;		/* (size_t)-1: all */
	unsigned nlines;
	bool bare_lf;
};

#define ALL ((size_t)-1)
#define OK(name, in, code, enh, text, used, nlines) \
	{ name, in, sizeof(in) - 1, SMTP_REPLY_DONE, code, enh, text, used, nlines, false }
#define ERR(name, in) { name, in, sizeof(in) - 1, SMTP_REPLY_ERROR, 0, "", "", ALL, 0, false }
#define MORE(name, in) { name, in, sizeof(in) - 1, SMTP_REPLY_MORE, 0, "", "", ALL, 0, false }

static const struct rcase cases[] = {
	OK("one line", "250 OK\r\n", 250, "", "OK", ALL, 1),
	OK("code alone", "250\r\n", 250, "", "", ALL, 1),
	OK("greeting", "220 mx.example.org ESMTP\r\n", 220, "", "mx.example.org ESMTP", ALL, 1),
	OK("multi-line", "250-a\r\n250-b\r\n250 c\r\n", 250, "", "a / b / c", ALL, 3),
	OK("empty continuation", "250-\r\n250 x\r\n", 250, "", " / x", ALL, 2),
	OK("stops after the reply", "250 a\r\n354 go\r\n", 250, "", "a", 7, 1),
	OK("pipelined replies", "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n", 250, "2.1.0", "ok",
	   14, 1),
	OK("enhanced code", "550 5.1.1 No such user\r\n", 550, "5.1.1", "No such user", ALL, 1),
	OK("enhanced code alone", "250 2.0.0\r\n", 250, "2.0.0", "", ALL, 1),
	OK("enhanced code each line", "550-5.7.1 Blocked\r\n550-5.7.1 see\r\n550 5.7.1 the site\r\n",
	   550, "5.7.1", "Blocked / see / the site", ALL, 3),
	OK("enhanced code three digits", "452 4.5.123 x\r\n", 452, "4.5.123", "x", ALL, 1),
	OK("enhanced class mismatch", "250 5.1.1 odd\r\n", 250, "", "5.1.1 odd", ALL, 1),
	OK("enhanced not on first line", "250-hello\r\n250 2.0.0 ok\r\n", 250, "",
	   "hello / 2.0.0 ok", ALL, 2),
	OK("enhanced 4 digits", "550 5.1234.1 x\r\n", 550, "", "5.1234.1 x", ALL, 1),
	OK("enhanced glued", "550 5.1.1x\r\n", 550, "", "5.1.1x", ALL, 1),
	OK("enhanced no detail", "550 5.1 x\r\n", 550, "", "5.1 x", ALL, 1),
	OK("enhanced class 3", "354 3.0.0 go\r\n", 354, "", "3.0.0 go", ALL, 1),
	OK("other enhanced code on a later line kept", "550-5.1.1 a\r\n550 5.2.2 b\r\n", 550,
	   "5.1.1", "a / 5.2.2 b", ALL, 2),
	OK("escapes", "250 a\x01" "b\\c\x7f\xff\r\n", 250, "", "a\\x01b\\x5Cc\\x7F\\xFF", ALL, 1),
	OK("bare CR inside", "250 a\rb\r\n", 250, "", "a\\x0Db", ALL, 1),
	OK("NUL inside", "250 a\0b\r\n", 250, "", "a\\x00b", ALL, 1),
	OK("tab inside", "250 a\tb\r\n", 250, "", "a\\x09b", ALL, 1),
	ERR("mismatched codes", "250-a\r\n251 b\r\n"),
	ERR("missing space", "250x\r\n"),
	ERR("short line", "25\r\n"),
	ERR("empty line", "\r\n"),
	ERR("letters", "abc def\r\n"),
	ERR("first digit 1", "199 x\r\n"),
	ERR("first digit 6", "650 x\r\n"),
	ERR("second digit 6", "260 x\r\n"),
	ERR("continuation then garbage", "250-a\r\nfoo\r\n"),
	MORE("no line end yet", "250 ok"),
	MORE("continuation only", "250-a\r\n250-b\r\n"),
	MORE("nothing", ""),
};

static void check_case(const struct rcase *c, bool bytewise)
{
	struct smtp_reply_parser p;
	size_t used;

	smtp_reply_init(&p, NULL);
	used = bytewise ? feed_bytewise(&p, c->in, c->len) : feed(&p, c->in, c->len);
	if (p.status != c->status)
		fail_msg("%s: status %d, want %d (%s)", c->name, p.status, c->status,
			 p.error ? p.error : "");
	if (c->status == SMTP_REPLY_ERROR) {
		assert_non_null(p.error);
		return;
	}
	if (c->status != SMTP_REPLY_DONE)
		return;
	assert_int_equal(p.code, c->code);
	if (strcmp(p.enh, c->enh) != 0)
		fail_msg("%s: enh \"%s\", want \"%s\"", c->name, p.enh, c->enh);
	if (strcmp(p.text, c->text) != 0)
		fail_msg("%s: text \"%s\", want \"%s\"", c->name, p.text, c->text);
	assert_int_equal(used, c->used == ALL ? c->len : c->used);
	assert_int_equal(p.nlines, c->nlines);
	assert_false(p.bare_lf);
}

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		check_case(&cases[i], false);
		check_case(&cases[i], true);
	}
}

static void test_next_reply_after_reinit(void **state)
{
	static const char in[] = "250 2.1.0 a\r\n550 5.1.1 b\r\n354 go\r\n";
	const char *p = in;
	size_t left = sizeof in - 1, used;
	struct smtp_reply_parser r;
	int codes[3];

	(void)state;
	for (int i = 0; i < 3; i++) {
		smtp_reply_init(&r, NULL);
		used = feed(&r, p, left);
		assert_int_equal(r.status, SMTP_REPLY_DONE);
		codes[i] = r.code;
		p += used;
		left -= used;
	}
	assert_int_equal(left, 0);
	assert_int_equal(codes[0], 250);
	assert_int_equal(codes[1], 550);
	assert_int_equal(codes[2], 354);
	/* A finished parser takes nothing more. */
	assert_int_equal(FEED(&r, "250 x\r\n"), 0);
	assert_int_equal(r.code, 354);
}

static void test_bare_lf(void **state)
{
	struct smtp_reply_parser p;

	(void)state;
	smtp_reply_init(&p, NULL);
	FEED(&p, "250-a\n250 b\r\n");
	assert_int_equal(p.status, SMTP_REPLY_DONE);
	assert_true(p.bare_lf);
	assert_string_equal(p.text, "a / b");

	smtp_reply_init(&p, NULL);
	FEED(&p, "250 b\r\n");
	assert_false(p.bare_lf);
}

static void test_line_limit(void **state)
{
	char line[SMTP_REPLY_LINE_MAX + 8];
	struct smtp_reply_parser p;

	(void)state;
	/* 2046 octets and CR LF: exactly the limit. */
	memset(line, 'x', sizeof line);
	memcpy(line, "250 ", 4);
	memcpy(line + SMTP_REPLY_LINE_MAX - 2, "\r\n", 2);
	smtp_reply_init(&p, NULL);
	feed(&p, line, SMTP_REPLY_LINE_MAX);
	assert_int_equal(p.status, SMTP_REPLY_DONE);
	assert_true(strlen(p.text) < SMTP_REPLY_TEXT_MAX);
	/* One more octet: refused, also when it comes in pieces. */
	memcpy(line + SMTP_REPLY_LINE_MAX - 2, "x\r\n", 3);
	smtp_reply_init(&p, NULL);
	feed(&p, line, SMTP_REPLY_LINE_MAX + 1);
	assert_int_equal(p.status, SMTP_REPLY_ERROR);
	smtp_reply_init(&p, NULL);
	feed_bytewise(&p, line, SMTP_REPLY_LINE_MAX + 1);
	assert_int_equal(p.status, SMTP_REPLY_ERROR);
	/* With a bare LF the line may hold one octet more. */
	memcpy(line + SMTP_REPLY_LINE_MAX - 1, "\n", 1);
	smtp_reply_init(&p, NULL);
	feed(&p, line, SMTP_REPLY_LINE_MAX);
	assert_int_equal(p.status, SMTP_REPLY_DONE);
	/* A line that never ends is refused once past the limit. */
	memset(line, 'y', sizeof line);
	memcpy(line, "250 ", 4);
	smtp_reply_init(&p, NULL);
	feed(&p, line, sizeof line);
	assert_int_equal(p.status, SMTP_REPLY_ERROR);
}

static void test_lines_limit(void **state)
{
	struct smtp_reply_parser p;

	(void)state;
	smtp_reply_init(&p, NULL);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		FEED(&p, "250-x\r\n");
	assert_int_equal(p.status, SMTP_REPLY_MORE);
	FEED(&p, "250 last\r\n");
	assert_int_equal(p.status, SMTP_REPLY_DONE);
	assert_int_equal(p.nlines, SMTP_REPLY_LINES_MAX);

	smtp_reply_init(&p, NULL);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		FEED(&p, "250-x\r\n");
	assert_int_equal(p.status, SMTP_REPLY_MORE);
	FEED(&p, "250 one too many\r\n");
	assert_int_equal(p.status, SMTP_REPLY_ERROR);
}

static void test_text_cap(void **state)
{
	struct smtp_reply_parser p;
	size_t n;

	(void)state;
	/* Many lines: joined, then cut with "...". */
	smtp_reply_init(&p, NULL);
	for (int i = 0; i < 60; i++)
		FEED(&p, "550-5.7.1 0123456789abcdef\r\n");
	FEED(&p, "550 5.7.1 end\r\n");
	assert_int_equal(p.status, SMTP_REPLY_DONE);
	n = strlen(p.text);
	assert_true(n <= SMTP_REPLY_TEXT_MAX - 1);
	assert_true(n >= SMTP_REPLY_TEXT_MAX - 8);
	assert_string_equal(p.text + n - 3, "...");
	assert_memory_equal(p.text, "0123456789abcdef / 0123", 23);

	/* Escapes are never cut in the middle. */
	for (int pre = 0; pre < 4; pre++) {
		char line[1200];
		size_t k = 0;

		k += (size_t)snprintf(line, sizeof line, "250 ");
		for (int i = 0; i < pre; i++)
			line[k++] = 'a';
		for (int i = 0; i < 300; i++)
			line[k++] = '\x01';
		line[k++] = '\r';
		line[k++] = '\n';
		smtp_reply_init(&p, NULL);
		feed(&p, line, k);
		assert_int_equal(p.status, SMTP_REPLY_DONE);
		n = strlen(p.text);
		assert_true(n <= SMTP_REPLY_TEXT_MAX - 1);
		assert_string_equal(p.text + n - 3, "...");
		/* Before "...": a's, then whole "\x01" units. */
		assert_int_equal((n - 3 - (size_t)pre) % 4, 0);
		for (size_t i = (size_t)pre; i + 3 < n; i += 4)
			assert_memory_equal(p.text + i, "\\x01", 4);
	}
}

static void test_escape_helper(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(smtp_reply_escape((const uint8_t *)"ab\ncd", 5, out, sizeof out), 8);
	assert_string_equal(out, "ab\\x0Acd");
	/* Cut: 15 octets of room. */
	smtp_reply_escape((const uint8_t *)"0123456789abcdefghij", 20, out, sizeof out);
	assert_string_equal(out, "0123456789ab...");
	smtp_reply_escape((const uint8_t *)"\x01\x01\x01\x01\x01", 5, out, sizeof out);
	assert_string_equal(out, "\\x01\\x01\\x01...");
	assert_int_equal(smtp_reply_escape((const uint8_t *)"x", 1, out, 2), 0);
}

static void test_ehlo(void **state)
{
	static const char in[] =
		"250-mx.example.org Hello PIPELINING SIZE 1\r\n"
		"250-pipelining\r\n"
		"250-SIZE 10240000\r\n"
		"250-8BITMIME\r\n"
		"250-SMTPUTF8\r\n"
		"250-DSN\r\n"
		"250-STARTTLS\r\n"
		"250-AUTH PLAIN login\r\n"
		"250-AUTH=CRAM-MD5\r\n"
		"250-CHUNKING\r\n"
		"250-BINARYMIME\r\n"
		"250-XFOO bar\r\n"
		"250 ENHANCEDSTATUSCODES\r\n";
	struct smtp_reply_parser p;
	struct smtp_ehlo e;

	(void)state;
	smtp_reply_init(&p, &e);
	FEED(&p, in);
	assert_int_equal(p.status, SMTP_REPLY_DONE);
	assert_int_equal(p.code, 250);
	assert_true(e.pipelining);
	assert_true(e.has_size);
	assert_int_equal(e.size, 10240000);
	assert_true(e.eightbitmime && e.smtputf8 && e.dsn && e.starttls && e.chunking &&
		    e.binarymime && e.enhancedstatuscodes);
	assert_int_equal(e.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5);
	assert_true(strstr(p.text, "mx.example.org Hello PIPELINING SIZE 1 / pipelining / SIZE 10240000") == p.text);
}

static void test_ehlo_minimal(void **state)
{
	struct smtp_reply_parser p;
	struct smtp_ehlo e;

	(void)state;
	/* The first line names the server, never a keyword. */
	smtp_reply_init(&p, &e);
	FEED(&p, "250 PIPELINING\r\n");
	assert_int_equal(p.status, SMTP_REPLY_DONE);
	assert_false(e.pipelining);
	assert_int_equal(e.auth, 0);

	smtp_reply_init(&p, &e);
	FEED(&p, "250-x\r\n250-SIZE\r\n250 AUTH GSSAPI\r\n");
	assert_true(e.has_size);
	assert_int_equal(e.size, 0);
	assert_int_equal(e.auth, SMTP_AUTH_OTHER);

	/* Init clears what an earlier reply said. */
	smtp_reply_init(&p, &e);
	assert_false(e.has_size);
}

static void test_ehlo_line(void **state)
{
	struct smtp_ehlo e;

	(void)state;
	smtp_ehlo_init(&e);
	smtp_ehlo_line(&e, (const uint8_t *)"SIZE 99999999999999999999999", 28);
	assert_true(e.has_size);
	assert_int_equal(e.size, 0);
	smtp_ehlo_line(&e, (const uint8_t *)"SIZE 18446744073709551615", 25);
	assert_int_equal(e.size, UINT64_MAX);
	smtp_ehlo_line(&e, (const uint8_t *)"SIZE 18446744073709551616", 25);
	assert_int_equal(e.size, 0);
	smtp_ehlo_line(&e, (const uint8_t *)"SIZE 12x", 8);
	assert_int_equal(e.size, 0);
	smtp_ehlo_line(&e, (const uint8_t *)"SIZE   2048  ", 13);
	assert_int_equal(e.size, 2048);
	smtp_ehlo_line(&e, (const uint8_t *)"AUTH  SCRAM-SHA-256   XOAUTH2 ", 30);
	assert_int_equal(e.auth, SMTP_AUTH_SCRAM_SHA_256 | SMTP_AUTH_XOAUTH2);
	smtp_ehlo_line(&e, (const uint8_t *)"STARTTLSX", 9);
	assert_false(e.starttls);
	smtp_ehlo_line(&e, (const uint8_t *)"", 0);
	smtp_ehlo_line(&e, (const uint8_t *)"STARTTLS", 8);
	assert_true(e.starttls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_next_reply_after_reinit),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_lines_limit),
		cmocka_unit_test(test_text_cap),
		cmocka_unit_test(test_escape_helper),
		cmocka_unit_test(test_ehlo),
		cmocka_unit_test(test_ehlo_minimal),
		cmocka_unit_test(test_ehlo_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
