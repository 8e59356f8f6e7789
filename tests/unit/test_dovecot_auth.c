/* test_dovecot_auth.c - cmocka tests for proto/dovecot_auth.c: Dovecot auth-client lines, tab escaping, the AUTH request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/dovecot_auth.h"
#include "proto/sasl.h"

static int parse(const char *s, struct dovecot_line *l)
{
	return dovecot_parse_line((const uint8_t *)s, strlen(s), l);
}

static void assert_slice_str(struct slice s, const char *want)
{
	assert_int_equal(s.len, strlen(want));
	assert_memory_equal(s.p, want, s.len);
}

/* ------------------------------------------------------------------ */
/* what Dovecot 2.3.19 sends (recorded from the real server) */

static void test_real_handshake(void **state)
{
	static const char *lines[] = {
		"VERSION\t1\t2",
		"MECH\tPLAIN\tplaintext",
		"MECH\tLOGIN\tplaintext",
		"SPID\t25747",
		"CUID\t1",
		"COOKIE\t245fa0d387096a658533053c95d826f8",
		"DONE",
	};
	static const enum dovecot_line_type types[] = {
		DOVECOT_LINE_VERSION, DOVECOT_LINE_MECH, DOVECOT_LINE_MECH, DOVECOT_LINE_SPID,
		DOVECOT_LINE_CUID, DOVECOT_LINE_COOKIE, DOVECOT_LINE_DONE,
	};
	struct dovecot_line l;

	(void)state;
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		assert_int_equal(parse(lines[i], &l), 0);
		assert_int_equal(l.type, types[i]);
	}
	assert_int_equal(parse(lines[0], &l), 0);
	assert_int_equal(l.major, 1);
	assert_int_equal(l.minor, 2);
	assert_int_equal(parse(lines[1], &l), 0);
	assert_slice_str(l.arg, "PLAIN");
	assert_true(l.mech_plaintext);
	assert_false(l.mech_private);
	assert_int_equal(parse(lines[3], &l), 0);
	assert_slice_str(l.arg, "25747");
	assert_int_equal(parse(lines[5], &l), 0);
	assert_slice_str(l.arg, "245fa0d387096a658533053c95d826f8");
}

static void test_real_answers(void **state)
{
	struct dovecot_line l;

	(void)state;
	assert_int_equal(parse("OK\t1\tuser=alice@localhost", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_OK);
	assert_int_equal(l.id, 1);
	assert_true(l.has_user);
	assert_string_equal(l.user, "alice@localhost");

	/* auth_username_format = %Lu: the canonical name, and the one given */
	assert_int_equal(parse("OK\t1\tuser=alice@localhost\toriginal_user=ALICE@localhost", &l), 0);
	assert_string_equal(l.user, "alice@localhost");

	assert_int_equal(parse("FAIL\t1\tuser=alice@localhost", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_FAIL);
	assert_int_equal(l.id, 1);
	assert_false(l.temp);
	assert_false(l.authz);
	assert_false(l.has_reason);
	assert_string_equal(l.code, "");

	/* Dovecot 2.3: a passdb's internal failure is code=temp_fail, not "temp" */
	assert_int_equal(parse("FAIL\t1\tuser=tempuser@localhost\tcode=temp_fail", &l), 0);
	assert_true(l.temp);
	assert_string_equal(l.code, "temp_fail");
	assert_string_equal(l.user, "tempuser@localhost");

	/* a user name with TAB, \001, CR, LF, as Dovecot escapes it */
	assert_int_equal(parse("FAIL\t1\tuser=a\0011b\001rc\001nd\\e@localhost\t"
			       "original_user=a\0011b\001rc\001nd\\e@localhost", &l), 0);
	assert_string_equal(l.user, "a?b?c?d\\e@localhost");
}

/* ------------------------------------------------------------------ */
/* VERSION, MECH, SPID, CUID, COOKIE, DONE */

static void test_version(void **state)
{
	struct dovecot_line l;

	(void)state;
	assert_int_equal(parse("VERSION\t1\t1", &l), 0);
	assert_int_equal(l.major, 1);
	assert_int_equal(l.minor, 1);
	assert_int_equal(parse("VERSION\t2\t0\tfuture", &l), 0); /* extra fields ignored */
	assert_int_equal(l.major, 2);
	assert_int_equal(parse("VERSION\t4294967295\t0", &l), 0);
	assert_int_equal(l.major, 4294967295u);

	assert_int_equal(parse("VERSION", &l), -1);
	assert_int_equal(parse("VERSION\t1", &l), -1);
	assert_int_equal(parse("VERSION\t1\t", &l), -1);
	assert_int_equal(parse("VERSION\t\t1", &l), -1);
	assert_int_equal(parse("VERSION\t1\tx", &l), -1);
	assert_int_equal(parse("VERSION\t-1\t2", &l), -1);
	assert_int_equal(parse("VERSION\t+1\t2", &l), -1);
	assert_int_equal(parse("VERSION\t1 \t2", &l), -1);
	assert_int_equal(parse("VERSION\t4294967296\t0", &l), -1);
	assert_int_equal(parse("VERSION\t12345678901\t0", &l), -1);
}

static void test_mech(void **state)
{
	struct dovecot_line l;

	(void)state;
	assert_int_equal(parse("MECH\tAPOP\tprivate", &l), 0);
	assert_true(l.mech_private);
	assert_int_equal(parse("MECH\tSCRAM-SHA-256-PLUS\tmutual-auth\tdictionary", &l), 0);
	assert_slice_str(l.arg, "SCRAM-SHA-256-PLUS");
	assert_false(l.mech_private);
	assert_false(l.mech_plaintext);
	assert_int_equal(parse("MECH\tANONYMOUS", &l), 0);
	assert_int_equal(parse("MECH\tX_2345678901234567890", &l), -1); /* 21 */
	assert_int_equal(parse("MECH\tX2345678901234567890", &l), 0);	/* 20 */

	assert_int_equal(parse("MECH", &l), -1);
	assert_int_equal(parse("MECH\t", &l), -1);
	assert_int_equal(parse("MECH\tplain", &l), -1);
	assert_int_equal(parse("MECH\tPL AIN", &l), -1);
	assert_int_equal(parse("MECH\tPL\001tAIN", &l), -1);
	assert_int_equal(parse("MECH\t\tPLAIN", &l), -1);
}

static void test_ids_and_done(void **state)
{
	struct dovecot_line l;

	(void)state;
	assert_int_equal(parse("SPID\t1", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_SPID);
	assert_int_equal(parse("CUID\tx", &l), 0); /* not a number: unused, not checked */
	assert_int_equal(l.type, DOVECOT_LINE_CUID);
	assert_int_equal(parse("COOKIE\tabc\tmore", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_COOKIE);
	assert_slice_str(l.arg, "abc");
	assert_int_equal(parse("SPID", &l), -1);
	assert_int_equal(parse("SPID\t", &l), -1);
	assert_int_equal(parse("CUID", &l), -1);
	assert_int_equal(parse("COOKIE\t", &l), -1);
	assert_int_equal(parse("DONE", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_DONE);
	assert_int_equal(parse("DONE\tsomething", &l), 0);
}

static void test_unknown_commands(void **state)
{
	struct dovecot_line l;

	(void)state;
	/* ignored by the protocol's own rule; names are case-sensitive */
	assert_int_equal(parse("NOTFOUND\t1", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_UNKNOWN);
	assert_int_equal(parse("ok\t1\tuser=x", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_UNKNOWN);
	assert_int_equal(parse("OKAY\t1", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_UNKNOWN);
	assert_int_equal(parse("DONE2", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_UNKNOWN);
	assert_int_equal(parse("\tOK\t1", &l), 0);
	assert_int_equal(l.type, DOVECOT_LINE_UNKNOWN);
}

/* ------------------------------------------------------------------ */
/* OK */

static void test_ok(void **state)
{
	struct dovecot_line l;

	(void)state;
	assert_int_equal(parse("OK\t7", &l), 0);
	assert_int_equal(l.id, 7);
	assert_false(l.has_user);
	assert_int_equal(parse("OK\t4294967295\tuser=x", &l), 0);
	assert_int_equal(l.id, 4294967295u);
	assert_int_equal(parse("OK\t1\tnologin\tuser=bob\tauth_user=B", &l), 0);
	assert_string_equal(l.user, "bob");
	assert_int_equal(parse("OK\t1\tusername=x", &l), 0); /* not user= */
	assert_false(l.has_user);
	assert_int_equal(parse("OK\t1\t\tuser=bob\t", &l), 0); /* empty fields */
	assert_string_equal(l.user, "bob");
	/* an escape that stands for itself, and UTF-8 */
	assert_int_equal(parse("OK\t1\tuser=b\001ob\xc3\xa9", &l), 0);
	assert_string_equal(l.user, "bob\xc3\xa9");

	/* the id */
	assert_int_equal(parse("OK", &l), -1);
	assert_int_equal(parse("OK\t", &l), -1);
	assert_int_equal(parse("OK\tx", &l), -1);
	assert_int_equal(parse("OK\t-1", &l), -1);
	assert_int_equal(parse("OK\t1x", &l), -1);
	assert_int_equal(parse("OK\t4294967296", &l), -1);
	assert_int_equal(parse("OK\t\t1", &l), -1);
}

static void test_ok_user_is_exact(void **state)
{
	char line[2 * DOVECOT_USER_MAX + 64];
	struct dovecot_line l;

	(void)state;
	assert_int_equal(parse("OK\t1\tuser=", &l), -1);
	assert_int_equal(parse("OK\t1\tuser=a\tuser=b", &l), -1);
	assert_int_equal(parse("OK\t1\tuser=a\tuser=a", &l), -1);
	/* control characters, escaped */
	assert_int_equal(parse("OK\t1\tuser=a\001tb", &l), -1);
	assert_int_equal(parse("OK\t1\tuser=a\001nb", &l), -1);
	assert_int_equal(parse("OK\t1\tuser=a\001rb", &l), -1);
	assert_int_equal(parse("OK\t1\tuser=a\0011b", &l), -1);
	assert_int_equal(parse("OK\t1\tuser=a\0010b", &l), -1); /* 2.4's NUL */
	assert_int_equal(parse("OK\t1\tuser=a\x7f", &l), -1);
	assert_int_equal(parse("OK\t1\tuser=a\x1b", &l), -1);
	/* broken escaping */
	assert_int_equal(parse("OK\t1\tuser=a\001", &l), -1);

	/* DOVECOT_USER_MAX octets fit, one more does not */
	memset(line, 0, sizeof line);
	strcpy(line, "OK\t1\tuser=");
	memset(line + strlen(line), 'u', DOVECOT_USER_MAX);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(strlen(l.user), DOVECOT_USER_MAX);
	strcat(line, "u");
	assert_int_equal(parse(line, &l), -1);
	/* counted after unescaping: 320 escaped pairs are 320 octets */
	memset(line, 0, sizeof line);
	strcpy(line, "OK\t1\tuser=");
	for (size_t i = 0; i < DOVECOT_USER_MAX; i++)
		strcat(line, "\001x");
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(strlen(l.user), DOVECOT_USER_MAX);
}

/* ------------------------------------------------------------------ */
/* FAIL */

static void test_fail(void **state)
{
	struct dovecot_line l;

	(void)state;
	assert_int_equal(parse("FAIL\t3", &l), 0);
	assert_int_equal(l.id, 3);
	assert_false(l.has_user);
	assert_int_equal(parse("FAIL\t1\ttemp", &l), 0); /* protocol 1.1 */
	assert_true(l.temp);
	assert_int_equal(parse("FAIL\t1\tauthz", &l), 0);
	assert_true(l.authz);
	assert_false(l.temp);
	assert_int_equal(parse("FAIL\t1\tcode=authz_fail", &l), 0);
	assert_true(l.authz);
	assert_int_equal(parse("FAIL\t1\tcode=user_disabled", &l), 0);
	assert_false(l.temp);
	assert_string_equal(l.code, "user_disabled");
	assert_int_equal(parse("FAIL\t1\tcode=temp_failx", &l), 0);
	assert_false(l.temp);
	assert_int_equal(parse("FAIL\t1\tcode=temp_fai", &l), 0);
	assert_false(l.temp);
	assert_int_equal(parse("FAIL\t1\ttemporary", &l), 0);
	assert_false(l.temp);
	assert_int_equal(parse("FAIL\t1\tcode=invalid_base64\treason=Invalid base64 data in "
			       "initial response", &l), 0);
	assert_true(l.has_reason);
	assert_string_equal(l.reason, "Invalid base64 data in initial response");
	assert_string_equal(l.code, "invalid_base64");
	/* the first of each counts; a later temp still counts */
	assert_int_equal(parse("FAIL\t1\treason=one\treason=two\tcode=a\tcode=temp_fail", &l), 0);
	assert_string_equal(l.reason, "one");
	assert_string_equal(l.code, "a");
	assert_true(l.temp);

	assert_int_equal(parse("FAIL", &l), -1);
	assert_int_equal(parse("FAIL\tx", &l), -1);
	assert_int_equal(parse("FAIL\t1\treason=x\001", &l), -1);
	assert_int_equal(parse("FAIL\t1\tuser=x\001", &l), -1);
	assert_int_equal(parse("FAIL\t1\tcode=x\001", &l), -1);
	/* a repeated field is checked too, though only the first is kept */
	assert_int_equal(parse("FAIL\t1\treason=a\treason=b\001", &l), -1);
	assert_int_equal(parse("FAIL\t1\tuser=a\tuser=\001", &l), -1);
	assert_int_equal(parse("FAIL\t1\tcode=a\tcode=b\001", &l), -1);
}

static void test_fail_text_is_for_the_log(void **state)
{
	char line[DOVECOT_REASON_MAX * 3];
	struct dovecot_line l;

	(void)state;
	assert_int_equal(parse("FAIL\t1\treason=bad\001tthing\001nhere\0010", &l), 0);
	assert_string_equal(l.reason, "bad?thing?here?");
	assert_int_equal(parse("FAIL\t1\tuser=a\001tb\x7f", &l), 0);
	assert_string_equal(l.user, "a?b?");
	assert_int_equal(parse("FAIL\t1\treason=", &l), 0);
	assert_true(l.has_reason);
	assert_string_equal(l.reason, "");

	memset(line, 0, sizeof line);
	strcpy(line, "FAIL\t1\treason=");
	memset(line + strlen(line), 'r', DOVECOT_REASON_MAX + 50);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(strlen(l.reason), DOVECOT_REASON_MAX);

	memset(line, 0, sizeof line);
	strcpy(line, "FAIL\t1\tcode=");
	memset(line + strlen(line), 'c', DOVECOT_CODE_MAX + 5);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(strlen(l.code), DOVECOT_CODE_MAX);

	memset(line, 0, sizeof line);
	strcpy(line, "FAIL\t1\tuser=");
	memset(line + strlen(line), 'u', DOVECOT_USER_MAX + 9);
	assert_int_equal(parse(line, &l), 0);
	assert_int_equal(strlen(l.user), DOVECOT_USER_MAX);
}

/* ------------------------------------------------------------------ */
/* CONT */

static void test_cont(void **state)
{
	struct dovecot_line l;

	(void)state;
	assert_int_equal(parse("CONT\t1\t", &l), 0); /* PLAIN without resp: empty challenge */
	assert_int_equal(l.type, DOVECOT_LINE_CONT);
	assert_int_equal(l.arg.len, 0);
	assert_int_equal(parse("CONT\t9\tVXNlcm5hbWU6", &l), 0);
	assert_int_equal(l.id, 9);
	assert_slice_str(l.arg, "VXNlcm5hbWU6");
	assert_int_equal(parse("CONT\t9\tab+/=\tlater", &l), 0);
	assert_slice_str(l.arg, "ab+/=");

	assert_int_equal(parse("CONT", &l), -1);
	assert_int_equal(parse("CONT\t1", &l), -1);
	assert_int_equal(parse("CONT\tx\tAAAA", &l), -1);
	assert_int_equal(parse("CONT\t1\tAA AA", &l), -1);
	assert_int_equal(parse("CONT\t1\tAA$A", &l), -1);
	assert_int_equal(parse("CONT\t1\tAA\001tA", &l), -1);
}

/* ------------------------------------------------------------------ */
/* malformed lines of every class */

static void test_malformed_bytes(void **state)
{
	static const struct {
		const char *p;
		size_t n;
	} bad[] = {
		{ "", 0 },
		{ "OK\t1\0", 5 },
		{ "\0", 1 },
		{ "OK\t1\tuser=a\0b", 13 },
		{ "DONE\r", 5 },
		{ "OK\t1\tuser=a\rb", 13 },
		{ "DONE\n", 5 },
		{ "OK\t1\nOK\t2", 9 },
		{ "\n", 1 },
	};
	struct dovecot_line l;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(dovecot_parse_line((const uint8_t *)bad[i].p, bad[i].n, &l), -1);
	assert_int_equal(dovecot_parse_line(NULL, 0, &l), -1);
	assert_int_equal(dovecot_parse_line(NULL, 4, &l), -1);
}

static void test_oversize_line(void **state)
{
	uint8_t *p = malloc(DOVECOT_LINE_MAX + 2);
	struct dovecot_line l;

	(void)state;
	assert_non_null(p);
	memcpy(p, "COOKIE\t", 7);
	memset(p + 7, 'f', DOVECOT_LINE_MAX + 2 - 7);
	assert_int_equal(dovecot_parse_line(p, DOVECOT_LINE_MAX, &l), 0);
	assert_int_equal(l.arg.len, DOVECOT_LINE_MAX - 7);
	assert_int_equal(dovecot_parse_line(p, DOVECOT_LINE_MAX + 1, &l), -1);
	/* a FAIL whose reason is huge still parses, the reason cut */
	memcpy(p, "FAIL\t1\treason=", 14);
	assert_int_equal(dovecot_parse_line(p, DOVECOT_LINE_MAX, &l), 0);
	assert_int_equal(strlen(l.reason), DOVECOT_REASON_MAX);
	assert_int_equal(dovecot_parse_line(p, DOVECOT_LINE_MAX + 1, &l), -1);
	free(p);
}

/* ------------------------------------------------------------------ */
/* tab escaping */

static void test_escape_table(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"a\tb", 3, out, sizeof out), 4);
	assert_memory_equal(out, "a\001tb", 5);
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"\001\t\r\n\\x", 6, out, sizeof out), 10);
	assert_memory_equal(out, "\0011\001t\001r\001n\\x", 11);
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"", 0, out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"a\0b", 3, out, sizeof out), -1);
	/* cap counts the NUL; an escape needs both octets */
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"abc", 3, out, 4), 3);
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"abc", 3, out, 3), -1);
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"a\t", 2, out, 4), 3);
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"a\t", 2, out, 3), -1);
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"a", 1, out, 0), -1);
	assert_int_equal(dovecot_tab_escape((const uint8_t *)"a", 1, NULL, 8), -1);
}

static struct slice sl(const char *s)
{
	return (struct slice){ (const uint8_t *)s, strlen(s) };
}

static void test_unescape_table(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(dovecot_tab_unescape(sl("\0011\001t\001r\001n"), out, sizeof out), 4);
	assert_memory_equal(out, "\001\t\r\n", 5);
	/* 2.4's \001 0 is NUL; anything else stands for itself (2.3: 'l' too) */
	assert_int_equal(dovecot_tab_unescape(sl("a\0010b"), out, sizeof out), 3);
	assert_memory_equal(out, "a\0b", 4);
	assert_int_equal(dovecot_tab_unescape(sl("\0012\001l\001\001"), out, sizeof out), 3);
	assert_memory_equal(out, "2l\001", 4);
	assert_int_equal(dovecot_tab_unescape(sl("plain"), out, sizeof out), 5);
	assert_string_equal(out, "plain");
	assert_int_equal(dovecot_tab_unescape(sl(""), out, sizeof out), 0);
	assert_int_equal(dovecot_tab_unescape((struct slice){ NULL, 0 }, out, sizeof out), 0);
	/* a lone \001 at the end */
	assert_int_equal(dovecot_tab_unescape(sl("ab\001"), out, sizeof out), -1);
	assert_int_equal(dovecot_tab_unescape(sl("\001"), out, sizeof out), -1);
	/* cap */
	assert_int_equal(dovecot_tab_unescape(sl("a\001tb"), out, 4), 3);
	assert_int_equal(dovecot_tab_unescape(sl("a\001tb"), out, 3), -1);
	assert_int_equal(dovecot_tab_unescape(sl(""), out, 0), -1);
}

static void test_escape_round_trip_all_octets(void **state)
{
	uint8_t raw[255];
	char esc[2 * sizeof raw + 1], back[sizeof raw + 1];
	ssize_t n;

	(void)state;
	for (size_t i = 0; i < sizeof raw; i++)
		raw[i] = (uint8_t)(i + 1); /* every octet but NUL */
	n = dovecot_tab_escape(raw, sizeof raw, esc, sizeof esc);
	assert_int_equal(n, sizeof raw + 4);
	assert_null(memchr(esc, '\t', (size_t)n));
	assert_null(memchr(esc, '\n', (size_t)n));
	assert_null(memchr(esc, '\r', (size_t)n));
	assert_int_equal(dovecot_tab_unescape((struct slice){ (const uint8_t *)esc, (size_t)n }, back,
					      sizeof back),
			 sizeof raw);
	assert_memory_equal(back, raw, sizeof raw);
}

/* ------------------------------------------------------------------ */
/* the client handshake and the AUTH request */

static void test_build_handshake(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(dovecot_build_handshake(out, sizeof out, 4242), 22);
	assert_string_equal(out, "VERSION\t1\t1\nCPID\t4242\n");
	assert_int_equal(dovecot_build_handshake(out, 23, 4242), 22);
	assert_int_equal(dovecot_build_handshake(out, 22, 4242), -1);
	assert_int_equal(dovecot_build_handshake(out, sizeof out, 0), -1); /* Dovecot: "PID 0" is a BUG */
	assert_int_equal(dovecot_build_handshake(NULL, 8, 1), -1);
}

static struct dovecot_auth_request req(const char *user, const char *pass)
{
	return (struct dovecot_auth_request){
		.id = 1,
		.service = "smtp",
		.local_ip = "192.0.2.1",
		.remote_ip = "198.51.100.7",
		.secured = true,
		.user = (const uint8_t *)user,
		.user_len = strlen(user),
		.password = (const uint8_t *)pass,
		.password_len = strlen(pass),
	};
}

/* base64 of "\0alice@localhost\0secret" */
#define RESP_ALICE "AGFsaWNlQGxvY2FsaG9zdABzZWNyZXQ="

static void test_build_auth_postfix_shape(void **state)
{
	static const char want[] = "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\t"
				   "rip=198.51.100.7\tsecured\tresp=" RESP_ALICE "\n";
	struct dovecot_auth_request r = req("alice@localhost", "secret");
	char out[512];
	uint8_t plain[64];
	const char *resp;
	ssize_t n;

	(void)state;
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), (ssize_t)strlen(want));
	assert_string_equal(out, want);

	/* resp= decodes to the PLAIN message, and is the last field */
	resp = strstr(out, "\tresp=") + 6;
	n = sasl_b64_decode((struct slice){ (const uint8_t *)resp, strlen(resp) - 1 }, plain,
			    sizeof plain);
	assert_int_equal(n, 1 + 15 + 1 + 6);
	assert_memory_equal(plain, "\0alice@localhost\0secret", (size_t)n);

	r.secured = false;
	r.local_ip = NULL;
	r.remote_ip = "";
	r.id = 4294967295u;
	assert_true(dovecot_build_auth(&r, out, sizeof out) > 0);
	assert_string_equal(out, "AUTH\t4294967295\tPLAIN\tservice=smtp\tnologin\tresp=" RESP_ALICE "\n");
	r.remote_ip = "2001:db8::1";
	assert_true(dovecot_build_auth(&r, out, sizeof out) > 0);
	assert_string_equal(out, "AUTH\t4294967295\tPLAIN\tservice=smtp\tnologin\trip=2001:db8::1\t"
				 "resp=" RESP_ALICE "\n");
}

static void test_build_auth_escapes_values(void **state)
{
	struct dovecot_auth_request r = req("alice@localhost", "secret");
	char out[512];

	(void)state;
	r.service = "sm\ttp";
	r.local_ip = "a\001b";
	r.remote_ip = "c\rd";
	assert_true(dovecot_build_auth(&r, out, sizeof out) > 0);
	assert_string_equal(out, "AUTH\t1\tPLAIN\tservice=sm\001ttp\tnologin\tlip=a\0011b\trip=c\001rd\t"
				 "secured\tresp=" RESP_ALICE "\n");
	/* TAB, LF, CR in the credentials are inside base64: nothing to escape */
	r = req("a\tb\nc", "p\tq\r\n");
	assert_true(dovecot_build_auth(&r, out, sizeof out) > 0);
	assert_int_equal(strchr(out, '\n') - out, (ptrdiff_t)strlen(out) - 1);
}

static void test_build_auth_refusals(void **state)
{
	struct dovecot_auth_request r;
	char out[512], big[DOVECOT_REQUEST_MAX + 16], pass[DOVECOT_PASS_MAX + 2], user[DOVECOT_USER_MAX + 2];

	(void)state;
	r = req("alice@localhost", "secret");
	r.local_ip = "192.0.2.1\n";
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	r = req("alice@localhost", "secret");
	r.remote_ip = "\n";
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	r = req("alice@localhost", "secret");
	r.service = "sm\ntp";
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	r.service = "";
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	r.service = NULL;
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	r = req("alice@localhost", "secret");
	r.id = 0;
	memset(out, 'X', sizeof out);
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	for (size_t i = 0; i < sizeof out; i++)
		assert_int_equal(out[i], 0); /* a refusal leaves nothing behind */

	/* credentials: non-empty, no NUL, bounded */
	r = req("", "secret");
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	r = req("alice", "");
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	r = req("alice", "secret");
	r.user_len = 6; /* the NUL after "alice" */
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	r = req("alice", "secret");
	r.password = (const uint8_t *)"sec\0ret";
	r.password_len = 7;
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);
	r.password = NULL;
	r.password_len = 3;
	assert_int_equal(dovecot_build_auth(&r, out, sizeof out), -1);

	memset(pass, 'p', sizeof pass);
	pass[DOVECOT_PASS_MAX] = '\0';
	r = req("alice", pass);
	assert_true(dovecot_build_auth(&r, big, sizeof big) > 0);
	pass[DOVECOT_PASS_MAX] = 'p';
	pass[DOVECOT_PASS_MAX + 1] = '\0';
	r = req("alice", pass);
	assert_int_equal(dovecot_build_auth(&r, big, sizeof big), -1);

	memset(user, 'u', sizeof user);
	user[DOVECOT_USER_MAX] = '\0';
	r = req(user, "secret");
	assert_true(dovecot_build_auth(&r, big, sizeof big) > 0);
	user[DOVECOT_USER_MAX] = 'u';
	user[DOVECOT_USER_MAX + 1] = '\0';
	r = req(user, "secret");
	assert_int_equal(dovecot_build_auth(&r, big, sizeof big), -1);

	/* a line over DOVECOT_REQUEST_MAX, however large the buffer */
	memset(big, 'a', sizeof big);
	big[DOVECOT_REQUEST_MAX - 20] = '\0';
	r = req("alice", "secret");
	r.local_ip = big;
	{
		char *huge = malloc(2 * DOVECOT_REQUEST_MAX);

		assert_non_null(huge);
		assert_int_equal(dovecot_build_auth(&r, huge, 2 * DOVECOT_REQUEST_MAX), -1);
		free(huge);
	}
}

static void test_build_auth_cap_and_wipe(void **state)
{
	struct dovecot_auth_request r = req("alice@localhost", "secret");
	char out[512], zero[512];
	ssize_t n;

	(void)state;
	n = dovecot_build_auth(&r, out, sizeof out);
	assert_true(n > 0);
	/* exactly enough (the NUL counted), then one short at every cut */
	assert_int_equal(dovecot_build_auth(&r, out, (size_t)n + 1), n);
	memset(zero, 0, sizeof zero);
	for (size_t cap = 1; cap <= (size_t)n; cap++) {
		memset(out, 'X', sizeof out);
		assert_int_equal(dovecot_build_auth(&r, out, cap), -1);
		/* refused: nothing of the request, above all no resp=, is left */
		assert_memory_equal(out, zero, cap);
	}
	assert_int_equal(dovecot_build_auth(&r, out, 0), -1);
	assert_int_equal(dovecot_build_auth(&r, NULL, 64), -1);
}

/* What the builder writes, the parser's own rules read back as one line. */
static void test_request_is_one_line(void **state)
{
	struct dovecot_auth_request r = req("a\001b", "\n\n\n");
	char out[512];
	ssize_t n;

	(void)state;
	r.local_ip = "x\ty";
	n = dovecot_build_auth(&r, out, sizeof out);
	assert_true(n > 0);
	assert_int_equal(out[n - 1], '\n');
	assert_null(memchr(out, '\n', (size_t)n - 1));
	assert_null(memchr(out, '\r', (size_t)n));
	assert_null(memchr(out, '\0', (size_t)n));
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_handshake),
		cmocka_unit_test(test_real_answers),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_mech),
		cmocka_unit_test(test_ids_and_done),
		cmocka_unit_test(test_unknown_commands),
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_ok_user_is_exact),
		cmocka_unit_test(test_fail),
		cmocka_unit_test(test_fail_text_is_for_the_log),
		cmocka_unit_test(test_cont),
		cmocka_unit_test(test_malformed_bytes),
		cmocka_unit_test(test_oversize_line),
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_unescape_table),
		cmocka_unit_test(test_escape_round_trip_all_octets),
		cmocka_unit_test(test_build_handshake),
		cmocka_unit_test(test_build_auth_postfix_shape),
		cmocka_unit_test(test_build_auth_escapes_values),
		cmocka_unit_test(test_build_auth_refusals),
		cmocka_unit_test(test_build_auth_cap_and_wipe),
		cmocka_unit_test(test_request_is_one_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
