/* test_proto_smtp_cmd.c - cmocka tables of named cases for proto/smtp_cmd.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/smtp_cmd.h"

static struct slice sl(const char *s, size_t len)
{
	return (struct slice){ (const uint8_t *)s, len ? len : strlen(s) };
}

static bool slice_is(struct slice s, const char *want)
{
	return s.len == strlen(want) && (s.len == 0 || memcmp(s.p, want, s.len) == 0);
}

/* ---- smtp_cmd_parse --------------------------------------------------- */

struct cmd_case {
	const char *name;
	const char *line;
	size_t len; /* 0: strlen */
	enum smtp_verb verb;
	const char *verb_text;
	const char *arg;
};

static const struct cmd_case cmd_cases[] = {
	{ "cmd_ehlo", "EHLO mail.example", 0, SMTP_EHLO, "EHLO", "mail.example" },
	{ "cmd_lowercase", "ehlo x", 0, SMTP_EHLO, "ehlo", "x" },
	{ "cmd_mixed_case", "StartTls", 0, SMTP_STARTTLS, "StartTls", "" },
	{ "cmd_no_arg", "QUIT", 0, SMTP_QUIT, "QUIT", "" },
	{ "cmd_trailing_spaces", "QUIT  \t ", 0, SMTP_QUIT, "QUIT", "" },
	{ "cmd_single_space_taken", "NOOP  a b  ", 0, SMTP_NOOP, "NOOP", " a b" },
	{ "cmd_mail_keeps_from", "MAIL FROM:<a@b.example> SIZE=1", 0, SMTP_MAIL, "MAIL",
	  "FROM:<a@b.example> SIZE=1" },
	{ "cmd_rcpt_keeps_to", "RCPT TO:<a@b.example>", 0, SMTP_RCPT, "RCPT",
	  "TO:<a@b.example>" },
	{ "cmd_bdat", "BDAT 100 LAST", 0, SMTP_BDAT, "BDAT", "100 LAST" },
	{ "cmd_auth", "AUTH PLAIN AGZvbwBiYXI=", 0, SMTP_AUTH, "AUTH", "PLAIN AGZvbwBiYXI=" },
	{ "cmd_http_get", "GET / HTTP/1.1", 0, SMTP_HTTP, "GET", "/ HTTP/1.1" },
	{ "cmd_http_post", "POST /submit HTTP/1.1", 0, SMTP_HTTP, "POST", "/submit HTTP/1.1" },
	{ "cmd_http_connect", "CONNECT mx.example:25 HTTP/1.1", 0, SMTP_HTTP, "CONNECT",
	  "mx.example:25 HTTP/1.1" },
	{ "cmd_http_options", "options * HTTP/1.1", 0, SMTP_HTTP, "options", "* HTTP/1.1" },
	{ "cmd_http_host", "Host: mx.example", 0, SMTP_HTTP, "Host:", "mx.example" },
	{ "cmd_http_host_nospace", "host:mx.example", 0, SMTP_HTTP, "host:mx.example", "" },
	{ "cmd_http_user_agent", "User-Agent: curl/8", 0, SMTP_HTTP, "User-Agent:", "curl/8" },
	{ "cmd_empty", "", 0, SMTP_UNKNOWN, "", "" },
	{ "cmd_spaces_only", "   ", 0, SMTP_UNKNOWN, "", "" },
	{ "cmd_leading_space", " HELO x", 0, SMTP_UNKNOWN, "", "HELO x" },
	{ "cmd_unknown", "XYZZY plugh", 0, SMTP_UNKNOWN, "XYZZY", "plugh" },
	{ "cmd_prefix_of_verb", "MAI FROM:<a@b>", 0, SMTP_UNKNOWN, "MAI", "FROM:<a@b>" },
	{ "cmd_verb_plus_char", "MAILX FROM:<a@b>", 0, SMTP_UNKNOWN, "MAILX", "FROM:<a@b>" },
	{ "cmd_digit_in_verb", "MAIL1 x", 0, SMTP_UNKNOWN, "MAIL1", "x" },
	{ "cmd_verb_17_chars", "AAAAAAAAAAAAAAAAA", 0, SMTP_UNKNOWN, "AAAAAAAAAAAAAAAAA", "" },
	{ "cmd_nul_in_verb", "MA\0IL FROM:<a@b>", 16, SMTP_UNKNOWN, NULL, "FROM:<a@b>" },
	{ "cmd_tab_not_separator", "HELO\tfoo", 0, SMTP_UNKNOWN, "HELO\tfoo", "" },
	{ "cmd_colon_verb", "MAIL:FROM", 0, SMTP_UNKNOWN, "MAIL:FROM", "" },
	{ "cmd_8bit_verb", "H\xc3\x89LO x", 0, SMTP_UNKNOWN, "H\xc3\x89LO", "x" },
};

static void run_cmd_case(void **state)
{
	const struct cmd_case *c = *state;
	size_t len = c->len ? c->len : strlen(c->line);
	struct smtp_cmd cmd;

	smtp_cmd_parse((const uint8_t *)c->line, len, &cmd);
	assert_int_equal(cmd.verb, c->verb);
	if (c->verb_text != NULL)
		assert_true(slice_is(cmd.verb_text, c->verb_text));
	assert_true(slice_is(cmd.arg, c->arg));
	assert_true(cmd.arg.len == 0 ||
		    (cmd.arg.p >= (const uint8_t *)c->line &&
		     cmd.arg.p + cmd.arg.len <= (const uint8_t *)c->line + len));
}

static void test_cmd_every_verb(void **state)
{
	static const struct {
		const char *s;
		enum smtp_verb v;
	} all[] = {
		{ "HELO", SMTP_HELO }, { "EHLO", SMTP_EHLO }, { "MAIL", SMTP_MAIL },
		{ "RCPT", SMTP_RCPT }, { "DATA", SMTP_DATA }, { "BDAT", SMTP_BDAT },
		{ "RSET", SMTP_RSET }, { "NOOP", SMTP_NOOP }, { "QUIT", SMTP_QUIT },
		{ "VRFY", SMTP_VRFY }, { "EXPN", SMTP_EXPN }, { "HELP", SMTP_HELP },
		{ "STARTTLS", SMTP_STARTTLS }, { "AUTH", SMTP_AUTH },
		{ "ETRN", SMTP_ETRN }, { "HEAD", SMTP_HTTP }, { "PUT", SMTP_HTTP },
		{ "DELETE", SMTP_HTTP },
	};
	struct smtp_cmd cmd;

	(void)state;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		smtp_cmd_parse((const uint8_t *)all[i].s, strlen(all[i].s), &cmd);
		assert_int_equal(cmd.verb, all[i].v);
	}
	smtp_cmd_parse(NULL, 0, &cmd);
	assert_int_equal(cmd.verb, SMTP_UNKNOWN);
	assert_int_equal(cmd.arg.len, 0);
}

/* ---- smtp_parse_mail / smtp_parse_rcpt -------------------------------- */

enum { MAIL, RCPT };

struct env_case {
	const char *name;
	int cmd; /* MAIL or RCPT */
	const char *arg;
	size_t len; /* 0: strlen */
	unsigned flags; /* SMTP_PARAM_* */
	uint16_t code;	/* 0: success */
	const char *enh;
	/* On success (NULL / -1 / 0: not checked): */
	const char *mailbox; /* addr_format of the path */
	int64_t size;	     /* -1: no SIZE */
	enum smtp_body body;
	int smtputf8;	     /* -1 not checked */
	enum dsn_ret ret;
	const char *envid;
	const char *auth;
	unsigned notify;
	const char *orcpt;
};

static const unsigned DSN = SMTP_PARAM_DSN;
static const unsigned UTF8 = SMTP_PARAM_SMTPUTF8;
static const unsigned BIN = SMTP_PARAM_BINARYMIME;

#define OKM(n, a, fl, mb) { n, MAIL, a, 0, fl, 0, NULL, mb, -1, 0, -1, 0, NULL, NULL, 0, NULL }
#define OKR(n, a, fl, mb) { n, RCPT, a, 0, fl, 0, NULL, mb, -1, 0, -1, 0, NULL, NULL, 0, NULL }
#define BADM(n, a, fl, c, e) { n, MAIL, a, 0, fl, c, e, NULL, -1, 0, -1, 0, NULL, NULL, 0, NULL }
#define BADML(n, a, l, fl, c, e) { n, MAIL, a, l, fl, c, e, NULL, -1, 0, -1, 0, NULL, NULL, 0, NULL }
#define BADR(n, a, fl, c, e) { n, RCPT, a, 0, fl, c, e, NULL, -1, 0, -1, 0, NULL, NULL, 0, NULL }

#define E20 "18446744073709551615"

static const struct env_case env_cases[] = {
	/* MAIL: the path */
	OKM("mail_simple", "FROM:<a@b.example>", 0, "a@b.example"),
	OKM("mail_lowercase_from", "from:<a@B.Example>", 0, "a@b.example"),
	OKM("mail_space_after_colon", "FROM:  <a@b.example>", 0, "a@b.example"),
	OKM("mail_null_path", "FROM:<>", 0, ""),
	OKM("mail_trailing_spaces", "FROM:<a@b.example>   ", 0, "a@b.example"),
	OKM("mail_source_route", "FROM:<@r.example:a@b.example>", 0, "a@b.example"),
	BADM("mail_no_from", "<a@b.example>", 0, 501, "5.5.4"),
	BADM("mail_from_without_colon", "FROM <a@b.example>", 0, 501, "5.5.4"),
	BADM("mail_space_before_from", " FROM:<a@b.example>", 0, 501, "5.5.4"),
	BADM("mail_empty", "", 0, 501, "5.5.4"),
	BADM("mail_bare_address", "FROM:a@b.example", 0, 501, "5.1.7"),
	BADM("mail_no_path", "FROM:", 0, 501, "5.1.7"),
	BADM("mail_bad_domain", "FROM:<a@-b.example>", 0, 501, "5.1.7"),
	BADM("mail_postmaster_bare", "FROM:<postmaster>", 0, 501, "5.1.7"),
	BADM("mail_cve_2020_7247", "FROM:<;sleep 66;>", 0, 501, "5.1.7"),
	BADM("mail_junk_after_path", "FROM:<a@b.example>x", 0, 501, "5.5.4"),
	BADM("mail_param_glued_to_path", "FROM:<a@b.example>SIZE=1", 0, 501, "5.5.4"),
	BADM("mail_tab_separator", "FROM:<a@b.example>\tSIZE=1", 0, 501, "5.5.4"),
	BADML("mail_nul_in_path", "FROM:<a\0@b.example>", 19, 0, 501, "5.1.7"),
	BADM("mail_crlf_injection", "FROM:<a@b.example>\r\nRCPT TO:<c@d>", 0, 501, "5.5.4"),

	/* MAIL: SIZE (RFC 1870) */
	{ "mail_size_body", MAIL, "FROM:<a@b.example> SIZE=1000 BODY=8BITMIME", 0, 0, 0,
	  NULL, "a@b.example", 1000, BODY_8BITMIME, 0, 0, "", NULL, 0, NULL },
	{ "mail_size_zero", MAIL, "FROM:<a@b.example> SIZE=0", 0, 0, 0, NULL, NULL, 0, 0,
	  -1, 0, NULL, NULL, 0, NULL },
	{ "mail_size_max", MAIL, "FROM:<a@b.example> SIZE=" E20, 0, 0, 0, NULL, NULL,
	  -2 /* UINT64_MAX, checked below */, 0, -1, 0, NULL, NULL, 0, NULL },
	{ "mail_params_many_spaces_lowercase", MAIL,
	  "FROM:<a@b.example>   size=42   body=7bit", 0, 0, 0, NULL, NULL, 42, BODY_7BIT,
	  -1, 0, NULL, NULL, 0, NULL },
	BADM("mail_size_overflow", "FROM:<a@b.example> SIZE=18446744073709551616", 0, 501,
	     "5.5.4"),
	BADM("mail_size_21_digits", "FROM:<a@b.example> SIZE=000000000000000000001", 0, 501,
	     "5.5.4"),
	BADM("mail_size_not_digits", "FROM:<a@b.example> SIZE=12k", 0, 501, "5.5.4"),
	BADM("mail_size_negative", "FROM:<a@b.example> SIZE=-1", 0, 501, "5.5.4"),
	BADM("mail_size_no_value", "FROM:<a@b.example> SIZE", 0, 501, "5.5.4"),
	BADM("mail_size_empty_value", "FROM:<a@b.example> SIZE=", 0, 501, "5.5.4"),
	BADM("mail_size_twice", "FROM:<a@b.example> SIZE=1 SIZE=2", 0, 501, "5.5.4"),
	BADML("mail_size_nul", "FROM:<a@b.example> SIZE=1\0", 26, 0, 501, "5.5.4"),

	/* MAIL: BODY (RFC 6152, RFC 3030) */
	BADM("mail_body_binarymime_not_offered", "FROM:<a@b.example> BODY=BINARYMIME", 0,
	     555, "5.5.4"),
	{ "mail_body_binarymime_offered", MAIL, "FROM:<a@b.example> BODY=BINARYMIME", 0,
	  BIN, 0, NULL, NULL, -1, BODY_BINARYMIME, -1, 0, NULL, NULL, 0, NULL },
	BADM("mail_body_unknown", "FROM:<a@b.example> BODY=9BIT", 0, 501, "5.5.4"),
	BADM("mail_body_no_value", "FROM:<a@b.example> BODY", 0, 501, "5.5.4"),

	/* MAIL: SMTPUTF8 (RFC 6531) */
	BADM("mail_smtputf8_not_offered", "FROM:<a@b.example> SMTPUTF8", 0, 555, "5.5.4"),
	{ "mail_smtputf8_ascii_path", MAIL, "FROM:<a@b.example> SMTPUTF8", 0, UTF8, 0, NULL,
	  "a@b.example", -1, 0, 1, 0, NULL, NULL, 0, NULL },
	{ "mail_smtputf8_utf8_path", MAIL, "FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.example> SMTPUTF8",
	  0, UTF8, 0, NULL, "j\xc3\xb6rg@b\xc3\xbc" "cher.example", -1, 0, 1, 0, NULL, NULL, 0,
	  NULL },
	BADM("mail_utf8_path_without_param", "FROM:<j\xc3\xb6rg@b.example>", UTF8, 553,
	     "5.6.7"),
	BADM("mail_utf8_path_not_offered", "FROM:<j\xc3\xb6rg@b.example> SMTPUTF8", 0, 553,
	     "5.6.7"),
	BADM("mail_utf8_path_bad_utf8", "FROM:<j\xc0\xafrg@b.example> SMTPUTF8", UTF8,
	     501, "5.1.7"),
	BADM("mail_smtputf8_value", "FROM:<a@b.example> SMTPUTF8=yes", UTF8, 501, "5.5.4"),
	BADM("mail_smtputf8_twice", "FROM:<a@b.example> SMTPUTF8 smtputf8", UTF8, 501,
	     "5.5.4"),

	/* MAIL: DSN (RFC 3461) */
	BADM("mail_ret_not_offered", "FROM:<a@b.example> RET=HDRS", 0, 555, "5.5.4"),
	BADM("mail_envid_not_offered", "FROM:<a@b.example> ENVID=x", 0, 555, "5.5.4"),
	{ "mail_ret_envid", MAIL, "FROM:<a@b.example> RET=hdrs ENVID=QQ+2B314", 0, DSN, 0,
	  NULL, NULL, -1, 0, -1, DSN_RET_HDRS, "QQ+2B314", NULL, 0, NULL },
	{ "mail_ret_full", MAIL, "FROM:<> RET=FULL", 0, DSN, 0, NULL, "", -1, 0, -1,
	  DSN_RET_FULL, "", NULL, 0, NULL },
	BADM("mail_ret_bad", "FROM:<a@b.example> RET=ALL", DSN, 501, "5.5.4"),
	BADM("mail_envid_lowercase_hex", "FROM:<a@b.example> ENVID=a+2b", DSN, 501, "5.5.4"),
	BADM("mail_envid_short_hex", "FROM:<a@b.example> ENVID=a+2", DSN, 501, "5.5.4"),
	BADM("mail_envid_8bit", "FROM:<a@b.example> ENVID=\xc3\xa9", DSN, 501, "5.5.4"),
	BADM("mail_envid_101",
	     "FROM:<a@b.example> ENVID=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", DSN, 501, "5.5.4"),
	{ "mail_envid_100", MAIL,
	  "FROM:<a@b.example> ENVID=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	  0, DSN, 0, NULL, NULL, -1, 0, -1, 0,
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	  NULL, 0, NULL },

	/* MAIL: AUTH (RFC 4954 5) */
	{ "mail_auth_empty", MAIL, "FROM:<a@b.example> AUTH=<>", 0, 0, 0, NULL, NULL, -1, 0,
	  -1, 0, NULL, "<>", 0, NULL },
	{ "mail_auth_xtext", MAIL, "FROM:<a@b.example> AUTH=e+3Dmc2@example.com", 0, 0, 0,
	  NULL, NULL, -1, 0, -1, 0, NULL, "e+3Dmc2@example.com", 0, NULL },
	BADM("mail_auth_no_value", "FROM:<a@b.example> AUTH", 0, 501, "5.5.4"),
	BADM("mail_auth_bad_xtext", "FROM:<a@b.example> AUTH=a+zz", 0, 501, "5.5.4"),

	/* MAIL: parameter syntax */
	BADM("mail_unknown_param", "FROM:<a@b.example> FOO=bar", 0, 555, "5.5.4"),
	BADM("mail_unknown_param_no_value", "FROM:<a@b.example> XFOO", 0, 555, "5.5.4"),
	BADM("mail_rcpt_param_in_mail", "FROM:<a@b.example> NOTIFY=NEVER", DSN, 555, "5.5.4"),
	BADM("mail_param_empty_keyword", "FROM:<a@b.example> =x", 0, 501, "5.5.4"),
	BADM("mail_param_keyword_hyphen_first", "FROM:<a@b.example> -X", 0, 501, "5.5.4"),
	BADM("mail_param_double_equals", "FROM:<a@b.example> AUTH=a=b", 0, 501, "5.5.4"),
	BADM("mail_param_control_char", "FROM:<a@b.example> SIZE=1\x01", 0, 501, "5.5.4"),

	/* RCPT */
	OKR("rcpt_simple", "TO:<a@b.example>", 0, "a@b.example"),
	OKR("rcpt_lowercase_to", "to: <A@B.EXAMPLE>", 0, "A@b.example"),
	OKR("rcpt_postmaster_bare", "TO:<Postmaster>", 0, "postmaster"),
	OKR("rcpt_postmaster_domain", "TO:<Postmaster@Example.COM>", 0,
	    "Postmaster@example.com"),
	OKR("rcpt_quoted_at", "TO:<\"a@c.example\"@b.example>", 0, "\"a@c.example\"@b.example"),
	BADR("rcpt_null_refused", "TO:<>", 0, 501, "5.1.3"),
	BADR("rcpt_no_to", "<a@b.example>", 0, 501, "5.5.4"),
	BADR("rcpt_from_instead", "FROM:<a@b.example>", 0, 501, "5.5.4"),
	BADR("rcpt_bad_path", "TO:<a@b..example>", 0, 501, "5.1.3"),
	BADR("rcpt_no_domain", "TO:<user>", 0, 501, "5.1.3"),
	BADR("rcpt_junk_after_path", "TO:<a@b.example>x", 0, 501, "5.5.4"),
	BADR("rcpt_utf8_without_smtputf8", "TO:<j\xc3\xb6rg@b.example>", 0, 553, "5.6.7"),
	OKR("rcpt_utf8_with_smtputf8", "TO:<j\xc3\xb6rg@b.example>", UTF8,
	    "j\xc3\xb6rg@b.example"),
	BADR("rcpt_mail_param_in_rcpt", "TO:<a@b.example> SIZE=10", 0, 555, "5.5.4"),
	BADR("rcpt_notify_not_offered", "TO:<a@b.example> NOTIFY=NEVER", 0, 555, "5.5.4"),
	BADR("rcpt_orcpt_not_offered", "TO:<a@b.example> ORCPT=rfc822;a@b.example", 0, 555,
	     "5.5.4"),
	{ "rcpt_notify_list", RCPT, "TO:<a@b.example> NOTIFY=success,DELAY", 0, DSN, 0, NULL,
	  NULL, -1, 0, -1, 0, NULL, NULL, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY, "" },
	{ "rcpt_notify_never", RCPT, "TO:<a@b.example> NOTIFY=NEVER", 0, DSN, 0, NULL, NULL,
	  -1, 0, -1, 0, NULL, NULL, DSN_NOTIFY_NEVER, NULL },
	BADR("rcpt_notify_never_plus", "TO:<a@b.example> NOTIFY=NEVER,SUCCESS", DSN, 501,
	     "5.5.4"),
	BADR("rcpt_notify_repeated", "TO:<a@b.example> NOTIFY=SUCCESS,SUCCESS", DSN, 501,
	     "5.5.4"),
	BADR("rcpt_notify_empty_item", "TO:<a@b.example> NOTIFY=SUCCESS,,DELAY", DSN, 501,
	     "5.5.4"),
	BADR("rcpt_notify_trailing_comma", "TO:<a@b.example> NOTIFY=FAILURE,", DSN, 501,
	     "5.5.4"),
	BADR("rcpt_notify_unknown", "TO:<a@b.example> NOTIFY=ALWAYS", DSN, 501, "5.5.4"),
	BADR("rcpt_notify_twice", "TO:<a@b.example> NOTIFY=DELAY NOTIFY=DELAY", DSN, 501,
	     "5.5.4"),
	{ "rcpt_orcpt", RCPT, "TO:<a@b.example> ORCPT=rfc822;a+2Bx@b.example NOTIFY=FAILURE",
	  0, DSN, 0, NULL, "a@b.example", -1, 0, -1, 0, NULL, NULL, DSN_NOTIFY_FAILURE,
	  "rfc822;a+2Bx@b.example" },
	BADR("rcpt_orcpt_no_semicolon", "TO:<a@b.example> ORCPT=rfc822", DSN, 501, "5.5.4"),
	BADR("rcpt_orcpt_empty_type", "TO:<a@b.example> ORCPT=;a@b", DSN, 501, "5.5.4"),
	BADR("rcpt_orcpt_empty_address", "TO:<a@b.example> ORCPT=rfc822;", DSN, 501,
	     "5.5.4"),
	BADR("rcpt_orcpt_bad_xtext", "TO:<a@b.example> ORCPT=rfc822;a+4", DSN, 501, "5.5.4"),
	BADR("rcpt_orcpt_bad_type", "TO:<a@b.example> ORCPT=rfc(822);a", DSN, 501, "5.5.4"),
};

static void run_env_case(void **state)
{
	const struct env_case *c = *state;
	struct slice arg = sl(c->arg, c->len);
	const struct smtp_reply *rep = (const struct smtp_reply *)1;
	struct mailbox mb;
	struct mail_params mp;
	struct rcpt_params rp;
	int rc;

	if (c->cmd == MAIL)
		rc = smtp_parse_mail(arg, c->flags, &mb, &mp, &rep);
	else
		rc = smtp_parse_rcpt(arg, c->flags, &mb, &rp, &rep);

	if (c->code != 0) {
		if (rc != -1)
			fail_msg("%s: accepted, want %u %s", c->name, c->code, c->enh);
		assert_non_null(rep);
		if (rep->code != c->code || strcmp(rep->enh, c->enh) != 0)
			fail_msg("%s: got %u %s %s, want %u %s", c->name, rep->code,
				 rep->enh, rep->text, c->code, c->enh);
		assert_true(strlen(rep->text) > 0);
		return;
	}
	if (rc != 0)
		fail_msg("%s: refused with %u %s %s", c->name, rep->code, rep->enh,
			 rep->text);
	assert_null(rep);
	if (c->mailbox != NULL) {
		char out[600];
		addr_format(&mb, out, sizeof(out));
		assert_string_equal(out, c->mailbox);
	}
	if (c->cmd == MAIL) {
		if (c->size == -2) {
			assert_true(mp.has_size);
			assert_true(mp.size == UINT64_MAX);
		} else if (c->size >= 0) {
			assert_true(mp.has_size);
			assert_int_equal(mp.size, (uint64_t)c->size);
		}
		if (c->body != BODY_UNSPECIFIED)
			assert_int_equal(mp.body, c->body);
		if (c->smtputf8 >= 0)
			assert_int_equal(mp.smtputf8, c->smtputf8);
		if (mp.smtputf8)
			assert_true(c->flags & SMTP_PARAM_SMTPUTF8);
		if (mb.utf8)
			assert_true(mp.smtputf8);
		if (c->ret != DSN_RET_UNSPECIFIED)
			assert_int_equal(mp.ret, c->ret);
		if (c->envid != NULL)
			assert_string_equal(mp.envid, c->envid);
		if (c->auth != NULL) {
			assert_true(mp.has_auth);
			assert_string_equal(mp.auth, c->auth);
		}
	} else {
		assert_false(mb.is_null);
		if (c->notify != 0)
			assert_int_equal(rp.notify, c->notify);
		if (c->orcpt != NULL)
			assert_string_equal(rp.orcpt, c->orcpt);
	}
}

#define X13 "xxxxxxxxxxxxx"
#define X65 X13 X13 X13 X13 X13

/* The words of the 501 5.1.7 / 5.1.3 replies end with addr_strerror(). */
static void test_addr_reply_words(void **state)
{
	static const char *const bad[] = {
		"<a b@c>", "<" X65 "@c>",
		"<user>", "<a@-c>", "<.a@c>", "<>",
	};
	static const enum addr_err errs[] = {
		ADDR_ESYNTAX, ADDR_ETOOLONG, ADDR_ENODOMAIN, ADDR_EDOMAIN, ADDR_ELOCAL, ADDR_ENULL,
	};
	char arg[128];
	struct mailbox mb;
	struct rcpt_params rp;
	const struct smtp_reply *rep;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = snprintf(arg, sizeof(arg), "TO:%s", bad[i]);
		assert_true(n > 0 && (size_t)n < sizeof(arg));
		assert_int_equal(smtp_parse_rcpt(sl(arg, (size_t)n), 0, &mb, &rp, &rep), -1);
		const char *want = addr_strerror(errs[i]);
		size_t tl = strlen(rep->text), wl = strlen(want);
		assert_true(tl > wl);
		assert_string_equal(rep->text + tl - wl, want);
		assert_string_equal(rep->enh, "5.1.3");
	}
}

/* ---- smtp_parse_bdat -------------------------------------------------- */

struct bdat_case {
	const char *name;
	const char *arg;
	int rc;
	uint64_t size;
	bool last;
};

static const struct bdat_case bdat_cases[] = {
	{ "bdat_size", "100", 0, 100, false },
	{ "bdat_last", "100 LAST", 0, 100, true },
	{ "bdat_zero_last_lowercase", "0 last", 0, 0, true },
	{ "bdat_extra_spaces", "7  LAST  ", 0, 7, true },
	{ "bdat_trailing_space", "7 ", 0, 7, false },
	{ "bdat_max", E20, 0, UINT64_MAX, false },
	{ "bdat_overflow", "18446744073709551616", -1, 0, false },
	{ "bdat_21_digits", "000000000000000000001", -1, 0, false },
	{ "bdat_empty", "", -1, 0, false },
	{ "bdat_not_number", "abc", -1, 0, false },
	{ "bdat_negative", "-1", -1, 0, false },
	{ "bdat_leading_space", " 100", -1, 0, false },
	{ "bdat_glued_last", "100LAST", -1, 0, false },
	{ "bdat_lastx", "100 LASTX", -1, 0, false },
	{ "bdat_two_markers", "100 LAST LAST", -1, 0, false },
	{ "bdat_tab", "100\tLAST", -1, 0, false },
};

static void run_bdat_case(void **state)
{
	const struct bdat_case *c = *state;
	const struct smtp_reply *rep = NULL;
	uint64_t size = 99;
	bool last = false;
	int rc = smtp_parse_bdat(sl(c->arg, strlen(c->arg)), &size, &last, &rep);

	assert_int_equal(rc, c->rc);
	if (rc == 0) {
		assert_null(rep);
		assert_true(size == c->size);
		assert_int_equal(last, c->last);
	} else {
		assert_non_null(rep);
		assert_int_equal(rep->code, 501);
		assert_string_equal(rep->enh, "5.5.4");
	}
}

/* ---- smtp_xtext_valid (RFC 3461 4) ------------------------------------ */

struct xtext_case {
	const char *name;
	const char *s;
	bool valid;
};

static const struct xtext_case xtext_cases[] = {
	{ "xtext_empty", "", true },
	{ "xtext_plain", "abc.def@example", true },
	{ "xtext_hex", "a+2Bb+3D+7E", true },
	{ "xtext_all_xchars", "!\"#$%&'()*,-./0123456789:;<>?@AZ[\\]^_`az{|}~", true },
	{ "xtext_lower_hex", "a+2b", false },
	{ "xtext_plus_at_end", "a+", false },
	{ "xtext_plus_one_hex", "a+2", false },
	{ "xtext_plus_nonhex", "+GG", false },
	{ "xtext_equals", "a=b", false },
	{ "xtext_space", "a b", false },
	{ "xtext_del", "a\x7f", false },
	{ "xtext_8bit", "\xc3\xa9", false },
};

static void run_xtext_case(void **state)
{
	const struct xtext_case *c = *state;

	assert_int_equal(smtp_xtext_valid(sl(c->s, strlen(c->s))), c->valid);
}

/* smtp_xtext_decode: RFC 3461 4 hexchars decoded; invalid, NUL and overflow refused. */
static void test_xtext_decode(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(smtp_xtext_decode(sl("a+2Bb+3Dc@x", 11), out, sizeof out), 7);
	assert_string_equal(out, "a+b=c@x");
	assert_int_equal(smtp_xtext_decode(sl("", 0), out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(smtp_xtext_decode(sl("a+2b", 4), out, sizeof out), -1);
	assert_int_equal(smtp_xtext_decode(sl("a+00b", 5), out, sizeof out), -1);
	assert_int_equal(smtp_xtext_decode(sl("a=b", 3), out, sizeof out), -1);
	assert_int_equal(smtp_xtext_decode(sl("0123456789abcdef", 16), out, sizeof out), -1);
	assert_int_equal(smtp_xtext_decode(sl("0123456789abcde", 15), out, sizeof out), 15);
	assert_int_equal(smtp_xtext_decode(sl("+41+42", 6), out, 3), 2);
	assert_string_equal(out, "AB");
	assert_int_equal(smtp_xtext_decode(sl("+41+42", 6), out, 2), -1);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

int main(void)
{
	static struct CMUnitTest tests[N(cmd_cases) + N(env_cases) + N(bdat_cases) +
				       N(xtext_cases) + 3];
	size_t n = 0;

	for (size_t i = 0; i < N(cmd_cases); i++)
		tests[n++] = (struct CMUnitTest){ cmd_cases[i].name, run_cmd_case, NULL,
						   NULL, (void *)&cmd_cases[i] };
	for (size_t i = 0; i < N(env_cases); i++)
		tests[n++] = (struct CMUnitTest){ env_cases[i].name, run_env_case, NULL,
						   NULL, (void *)&env_cases[i] };
	for (size_t i = 0; i < N(bdat_cases); i++)
		tests[n++] = (struct CMUnitTest){ bdat_cases[i].name, run_bdat_case, NULL,
						   NULL, (void *)&bdat_cases[i] };
	for (size_t i = 0; i < N(xtext_cases); i++)
		tests[n++] = (struct CMUnitTest){ xtext_cases[i].name, run_xtext_case, NULL,
						   NULL, (void *)&xtext_cases[i] };
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_cmd_every_verb);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_addr_reply_words);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_xtext_decode);
	assert_int_equal(n, N(tests));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
