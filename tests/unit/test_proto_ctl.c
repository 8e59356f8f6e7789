/* test_proto_ctl.c - cmocka tables of named cases for proto/ctl.c (the control socket's lines). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/ctl.h"
#include "spool/qfile.h"

/* ---- ctl_parse_request ------------------------------------------------ */

struct req_case {
	const char *name;
	const char *line;
	size_t len;		/* 0: strlen */
	enum ctl_verb verb;	/* CTL_NONE: refused */
	const char *arg;	/* on success */
	const char *why;	/* on failure */
};

#define OK(n, l, v, a) { n, l, 0, v, a, NULL }
#define BAD(n, l, w) { n, l, 0, CTL_NONE, "", w }
#define BADN(n, l, len, w) { n, l, len, CTL_NONE, "", w }

static const struct req_case req_cases[] = {
	OK("req_flush_all", "FLUSH", CTL_FLUSH, ""),
	OK("req_flush_qid", "FLUSH 0123456789ABCDEF0100001", CTL_FLUSH, "0123456789ABCDEF0100001"),
	OK("req_flush_domain", "FLUSH @example.com", CTL_FLUSH, "@example.com"),
	OK("req_flush_domain_lowered", "FLUSH @Mail.EXAMPLE.Com", CTL_FLUSH, "@mail.example.com"),
	OK("req_flush_lowercase_verb", "flush", CTL_FLUSH, ""),
	OK("req_flush_mixed_verb", "FlUsH @a.b", CTL_FLUSH, "@a.b"),
	OK("req_delete", "DELETE 19A2B3C4D5E6F0100002", CTL_DELETE, "19A2B3C4D5E6F0100002"),
	OK("req_hold", "HOLD ABC", CTL_HOLD, "ABC"),
	OK("req_release", "release 1", CTL_RELEASE, "1"),
	OK("req_etrn", "ETRN @example.org", CTL_ETRN, "@example.org"),
	OK("req_etrn_lowered", "ETRN @EXAMPLE.org", CTL_ETRN, "@example.org"),
	OK("req_qid_max", "HOLD 0123456789ABCDEFGHIJKLMNOPQRSTUV", CTL_HOLD,
	   "0123456789ABCDEFGHIJKLMNOPQRSTUV"),
	OK("req_domain_single_label", "FLUSH @localhost", CTL_FLUSH, "@localhost"),
	OK("req_domain_digits_hyphen", "FLUSH @1-2.x-y.z9", CTL_FLUSH, "@1-2.x-y.z9"),
	OK("req_label_63",
	   "FLUSH @aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b", CTL_FLUSH,
	   "@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b"),

	BAD("req_empty", "", "empty request"),
	BAD("req_unknown", "LIST", "unknown command"),
	BAD("req_show_not_here", "SHOW ABC", "unknown command"),
	BAD("req_prefix", "FLUS", "unknown command"),
	BAD("req_longer_verb", "FLUSHX", "unknown command"),
	BAD("req_delete_missing", "DELETE", "missing argument"),
	BAD("req_hold_missing", "HOLD", "missing argument"),
	BAD("req_release_missing", "RELEASE", "missing argument"),
	BAD("req_etrn_missing", "ETRN", "missing argument"),
	BAD("req_etrn_qid", "ETRN ABC", "bad domain"),
	BAD("req_etrn_no_at", "ETRN example.com", "bad domain"),
	BAD("req_delete_domain", "DELETE @example.com", "bad queue id"),
	BAD("req_hold_domain", "HOLD @example.com", "bad queue id"),
	BAD("req_qid_lowercase", "HOLD abc", "bad queue id"),
	BAD("req_qid_too_long", "HOLD 0123456789ABCDEFGHIJKLMNOPQRSTUVW", "bad queue id"),
	BAD("req_qid_slash", "DELETE ../../etc", "bad queue id"),
	BAD("req_qid_dot", "DELETE ABC.st", "bad queue id"),
	BAD("req_domain_empty", "FLUSH @", "bad domain"),
	BAD("req_domain_trailing_dot", "FLUSH @example.com.", "bad domain"),
	BAD("req_domain_leading_dot", "FLUSH @.example.com", "bad domain"),
	BAD("req_domain_double_dot", "FLUSH @a..b", "bad domain"),
	BAD("req_domain_leading_hyphen", "FLUSH @-a.b", "bad domain"),
	BAD("req_domain_trailing_hyphen", "FLUSH @a-.b", "bad domain"),
	BAD("req_domain_last_hyphen", "FLUSH @a.b-", "bad domain"),
	BAD("req_domain_literal", "FLUSH @[127.0.0.1]", "bad domain"),
	BAD("req_domain_underscore", "FLUSH @a_b.c", "bad domain"),
	BAD("req_domain_double_at", "FLUSH @@a.b", "bad domain"),
	BAD("req_domain_utf8", "FLUSH @\xc3\xa9.fr", "malformed request"),
	BAD("req_label_64",
	    "FLUSH @aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b",
	    "bad domain"),
	BAD("req_two_spaces", "FLUSH  ABC", "malformed request"),
	BAD("req_trailing_space", "FLUSH ", "malformed request"),
	BAD("req_trailing_space_arg", "HOLD ABC ", "malformed request"),
	BAD("req_leading_space", " FLUSH", "malformed request"),
	BAD("req_two_args", "HOLD ABC DEF", "malformed request"),
	BAD("req_tab", "HOLD\tABC", "malformed request"),
	BAD("req_cr", "FLUSH\r", "malformed request"),
	BAD("req_lf_inside", "FLUSH\nHOLD A", "malformed request"),
	BADN("req_nul", "HOLD A\0B", 8, "malformed request"),
	BAD("req_del", "HOLD A\x7f", "malformed request"),
};

static void run_req_case(void **state)
{
	const struct req_case *c = *state;
	size_t len = c->len ? c->len : strlen(c->line);
	struct ctl_req r;
	const char *why = "unset";
	int rc = ctl_parse_request((const uint8_t *)c->line, len, &r, &why);

	if (c->verb != CTL_NONE) {
		assert_int_equal(rc, 0);
		assert_null(why);
		assert_int_equal(r.verb, c->verb);
		assert_string_equal(r.arg, c->arg);
	} else {
		assert_int_equal(rc, -1);
		assert_non_null(why);
		assert_string_equal(why, c->why);
		assert_string_equal(r.arg, "");
	}
}

/* Lengths at the edge: a domain of 255 octets fits, 256 does not; a line
 * of CTL_LINE_MAX octets (no room for the LF) is too long. */
static void test_req_lengths(void **state)
{
	char line[1024];
	struct ctl_req r;
	const char *why;
	size_t n;

	(void)state;
	/* 63 + 1 + 63 + 1 + 63 + 1 + 63 = 255 */
	n = (size_t)snprintf(line, sizeof line, "FLUSH @%063d.%063d.%063d.%063d", 1, 2, 3, 4);
	assert_int_equal(n, 7 + 255);
	assert_int_equal(ctl_parse_request((const uint8_t *)line, n, &r, &why), 0);
	assert_string_equal(r.arg, line + 6);
	n = (size_t)snprintf(line, sizeof line, "FLUSH @%063d.%063d.%063d.%063d.a", 1, 2, 3, 4);
	assert_int_equal(ctl_parse_request((const uint8_t *)line, n, &r, &why), -1);
	assert_string_equal(why, "bad domain");

	memset(line, 'A', sizeof line);
	memcpy(line, "HOLD ", 5);
	assert_int_equal(ctl_parse_request((const uint8_t *)line, CTL_LINE_MAX, &r, &why), -1);
	assert_string_equal(why, "line too long");
	assert_int_equal(ctl_parse_request((const uint8_t *)line, CTL_LINE_MAX - 1, &r, &why), -1);
	assert_string_equal(why, "bad queue id");
}

/* The parser reads only len octets: no NUL needed, nothing past the end. */
static void test_req_not_nul_terminated(void **state)
{
	const char raw[] = "HOLD ABCDEFxxxx";
	struct ctl_req r;
	const char *why;

	(void)state;
	assert_int_equal(ctl_parse_request((const uint8_t *)raw, 8, &r, &why), 0);
	assert_string_equal(r.arg, "ABC");
}

/* ---- ctl_qid_valid, ctl_domain_norm ----------------------------------- */

static void test_qid_valid(void **state)
{
	(void)state;
	assert_int_equal(CTL_QID_MAX, QID_MAX);
	assert_true(ctl_qid_valid((const uint8_t *)"0", 1));
	assert_true(ctl_qid_valid((const uint8_t *)"19A2B3C4D5E6F0100002", 20));
	assert_false(ctl_qid_valid((const uint8_t *)"", 0));
	assert_false(ctl_qid_valid((const uint8_t *)"abc", 3));
	assert_false(ctl_qid_valid((const uint8_t *)"AB-C", 4));
	assert_false(ctl_qid_valid((const uint8_t *)"0123456789ABCDEFGHIJKLMNOPQRSTUVW", 33));
}

static void test_domain_norm(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(ctl_domain_norm((const uint8_t *)"A.Bc", 4, out, sizeof out), 4);
	assert_string_equal(out, "a.bc");
	/* cap must hold the NUL */
	assert_int_equal(ctl_domain_norm((const uint8_t *)"abcd", 4, out, 4), -1);
	assert_int_equal(ctl_domain_norm((const uint8_t *)"abcd", 4, out, 5), 4);
	assert_int_equal(ctl_domain_norm((const uint8_t *)"", 0, out, sizeof out), -1);
	assert_int_equal(ctl_domain_norm((const uint8_t *)"a.", 2, out, sizeof out), -1);
}

/* ---- formatters --------------------------------------------------------- */

static void test_format_ok(void **state)
{
	char out[CTL_LINE_MAX + 1];

	(void)state;
	assert_int_equal(ctl_format_ok(out, sizeof out, CTL_FLUSH, 3), 37);
	assert_string_equal(out, "OK 3 messages scheduled for delivery\n");
	ctl_format_ok(out, sizeof out, CTL_ETRN, 1);
	assert_string_equal(out, "OK 1 message scheduled for delivery\n");
	ctl_format_ok(out, sizeof out, CTL_DELETE, 1);
	assert_string_equal(out, "OK 1 message deleted\n");
	ctl_format_ok(out, sizeof out, CTL_HOLD, 1);
	assert_string_equal(out, "OK 1 message held\n");
	ctl_format_ok(out, sizeof out, CTL_RELEASE, 0);
	assert_string_equal(out, "OK 0 messages released\n");
	assert_int_equal(ctl_format_ok(out, sizeof out, CTL_NONE, 1), -1);
	assert_int_equal(ctl_format_ok(out, sizeof out, CTL_HOLD, -1), -1);
	assert_int_equal(ctl_format_ok(out, CTL_LINE_MAX, CTL_HOLD, 1), -1);
}

static void test_format_err(void **state)
{
	char out[CTL_LINE_MAX + 1], big[2000];
	int n;

	(void)state;
	assert_int_equal(ctl_format_err(out, sizeof out, "no such message"), 20);
	assert_string_equal(out, "ERR no such message\n");
	ctl_format_err(out, sizeof out, "");
	assert_string_equal(out, "ERR failed\n");
	ctl_format_err(out, sizeof out, NULL);
	assert_string_equal(out, "ERR failed\n");
	/* a line break or escape in an op's words cannot make a second line */
	ctl_format_err(out, sizeof out, "bad\r\nOK 9 x\x1b[2J\xff");
	assert_string_equal(out, "ERR bad??OK 9 x?[2J?\n");
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	n = ctl_format_err(out, sizeof out, big);
	assert_int_equal(n, CTL_LINE_MAX);
	assert_int_equal(strlen(out), CTL_LINE_MAX);
	assert_int_equal(out[CTL_LINE_MAX - 1], '\n');
	assert_int_equal(ctl_format_err(out, CTL_LINE_MAX, "x"), -1);
}

static void test_verb_name(void **state)
{
	(void)state;
	assert_string_equal(ctl_verb_name(CTL_FLUSH), "FLUSH");
	assert_string_equal(ctl_verb_name(CTL_DELETE), "DELETE");
	assert_string_equal(ctl_verb_name(CTL_HOLD), "HOLD");
	assert_string_equal(ctl_verb_name(CTL_RELEASE), "RELEASE");
	assert_string_equal(ctl_verb_name(CTL_ETRN), "ETRN");
	assert_null(ctl_verb_name(CTL_NONE));
}

/* ---- ctl_parse_reply ---------------------------------------------------- */

struct reply_case {
	const char *name;
	const char *line;
	int rc;
	bool ok;
	int n;
	const char *words;
};

static const struct reply_case reply_cases[] = {
	{ "reply_ok", "OK 3 messages scheduled for delivery", 0, true, 3,
	  "messages scheduled for delivery" },
	{ "reply_ok_no_words", "OK 0", 0, true, 0, "" },
	{ "reply_ok_int_max", "OK 2147483647 x", 0, true, 2147483647, "x" },
	{ "reply_err", "ERR no such message", 0, false, 0, "no such message" },
	{ "reply_ok_over_int_max", "OK 2147483648 x", -1, false, 0, "" },
	{ "reply_ok_11_digits", "OK 00000000001 x", -1, false, 0, "" },
	{ "reply_ok_no_n", "OK x", -1, false, 0, "" },
	{ "reply_ok_alone", "OK", -1, false, 0, "" },
	{ "reply_ok_trailing_space", "OK 1 ", -1, false, 0, "" },
	{ "reply_ok_minus", "OK -1 x", -1, false, 0, "" },
	{ "reply_ok_n_letter", "OK 1x", -1, false, 0, "" },
	{ "reply_err_alone", "ERR", -1, false, 0, "" },
	{ "reply_err_space_only", "ERR ", -1, false, 0, "" },
	{ "reply_lowercase", "ok 1 x", -1, false, 0, "" },
	{ "reply_cr", "OK 1 x\r", -1, false, 0, "" },
	{ "reply_other", "250 ok", -1, false, 0, "" },
};

static void run_reply_case(void **state)
{
	const struct reply_case *c = *state;
	struct ctl_reply r;
	int rc = ctl_parse_reply((const uint8_t *)c->line, strlen(c->line), &r);

	assert_int_equal(rc, c->rc);
	if (rc == 0) {
		assert_int_equal(r.ok, c->ok);
		assert_int_equal(r.n, c->n);
		assert_int_equal(r.words.len, strlen(c->words));
		assert_memory_equal(r.words.p, c->words, r.words.len);
	}
}

/* What the formatters write, the reply parser reads back. */
static void test_format_parse_round_trip(void **state)
{
	static const enum ctl_verb vs[] = { CTL_FLUSH, CTL_DELETE, CTL_HOLD, CTL_RELEASE, CTL_ETRN };
	char out[CTL_LINE_MAX + 1];
	struct ctl_reply r;
	int n;

	(void)state;
	for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
		n = ctl_format_ok(out, sizeof out, vs[i], 42);
		assert_true(n > 0);
		assert_int_equal(ctl_parse_reply((const uint8_t *)out, (size_t)n - 1, &r), 0);
		assert_true(r.ok);
		assert_int_equal(r.n, 42);
	}
	n = ctl_format_err(out, sizeof out, "a\nb");
	assert_int_equal(ctl_parse_reply((const uint8_t *)out, (size_t)n - 1, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.words.len, 3);
	assert_memory_equal(r.words.p, "a?b", 3);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

int main(void)
{
	static struct CMUnitTest tests[N(req_cases) + N(reply_cases) + 8];
	size_t n = 0;

	for (size_t i = 0; i < N(req_cases); i++)
		tests[n++] = (struct CMUnitTest){ req_cases[i].name, run_req_case, NULL, NULL,
						   (void *)&req_cases[i] };
	for (size_t i = 0; i < N(reply_cases); i++)
		tests[n++] = (struct CMUnitTest){ reply_cases[i].name, run_reply_case, NULL, NULL,
						   (void *)&reply_cases[i] };
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_req_lengths);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_req_not_nul_terminated);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_qid_valid);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_domain_norm);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_format_ok);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_format_err);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_verb_name);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_format_parse_round_trip);
	assert_int_equal(n, N(tests));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
