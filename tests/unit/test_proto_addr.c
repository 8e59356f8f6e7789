/* test_proto_addr.c - cmocka table of named cases for proto/addr.c (RFC 5321 paths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "proto/addr.h"

/* Expected mailbox flags, compared all at once. */
enum {
	F_NULL = 1 << 0,
	F_PM = 1 << 1,
	F_QUOTED = 1 << 2,
	F_LIT = 1 << 3,
	F_UTF8 = 1 << 4,
	F_ROUTE = 1 << 5,
	F_PCT = 1 << 6,
	F_BANG = 1 << 7,
	F_AT = 1 << 8,
};

struct addr_case {
	const char *name;
	const char *in;
	size_t len;	     /* 0: strlen(in); set it for embedded NULs */
	unsigned flags;	     /* ADDR_* */
	enum addr_err want;
	const char *local;   /* expected on ADDR_OK */
	const char *domain;  /* expected on ADDR_OK */
	unsigned mbflags;    /* F_* expected on ADDR_OK */
	size_t used;	     /* 0: the whole input */
};

/* Strings of a given length for the limits. */
#define X10 "xxxxxxxxxx"
#define L63 X10 X10 X10 X10 X10 X10 "xxx"
#define L64 L63 "x"
#define D63 "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
/* 63 + 1 + 63 + 1 + 61 = 189; "<" 64 "@" 189 ">" = 256 octets */
#define D189 D63 "." D63 "." "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

static const unsigned UTF = ADDR_UTF8_OK;
static const unsigned PM = ADDR_POSTMASTER_OK;
static const unsigned NUL_OK = ADDR_NULL_OK;

static const struct addr_case cases[] = {
	/* plain mailboxes */
	{ "simple", "<user@example.com>", 0, 0, ADDR_OK, "user", "example.com", 0, 0 },
	{ "domain_lowercased_local_kept", "<User.Name@EXAMPLE.Com>", 0, 0, ADDR_OK,
	  "User.Name", "example.com", 0, 0 },
	{ "leading_spaces_counted_in_used", "  <a@b.example>", 0, 0, ADDR_OK, "a",
	  "b.example", 0, 0 },
	{ "atext_specials", "<!#$&'*+-/=?^_`{|}~@x.example>", 0, 0, ADDR_OK,
	  "!#$&'*+-/=?^_`{|}~", "x.example", F_BANG, 0 },
	{ "numeric_domain", "<a@123>", 0, 0, ADDR_OK, "a", "123", 0, 0 },
	{ "inner_hyphens", "<a@x--y.example>", 0, 0, ADDR_OK, "a", "x--y.example", 0, 0 },
	{ "trailing_garbage_left_to_caller", "<a@b.example>x", 0, 0, ADDR_OK, "a",
	  "b.example", 0, 13 },
	{ "params_follow", "<a@b.example> SIZE=10", 0, 0, ADDR_OK, "a", "b.example", 0, 13 },

	/* null path */
	{ "null_allowed", "<>", 0, NUL_OK, ADDR_OK, "", "", F_NULL, 0 },
	{ "null_refused", "<>", 0, PM, ADDR_ENULL, NULL, NULL, 0, 0 },
	{ "null_with_params", "<> BODY=8BITMIME", 0, NUL_OK, ADDR_OK, "", "", F_NULL, 2 },
	{ "null_with_space_inside", "< >", 0, NUL_OK, ADDR_ESYNTAX, NULL, NULL, 0, 0 },

	/* postmaster, RFC 5321 4.5.1 */
	{ "postmaster_bare", "<postmaster>", 0, PM, ADDR_OK, "postmaster", "", F_PM, 0 },
	{ "postmaster_any_case", "<PostMaster>", 0, PM, ADDR_OK, "PostMaster", "", F_PM, 0 },
	{ "postmaster_bare_without_flag", "<postmaster>", 0, NUL_OK, ADDR_ENODOMAIN,
	  NULL, NULL, 0, 0 },
	{ "postmaster_with_domain_is_ordinary", "<postmaster@localhost>", 0, PM,
	  ADDR_OK, "postmaster", "localhost", 0, 0 },
	{ "postmaster_with_domain_no_flag", "<Postmaster@LocalHost>", 0, 0, ADDR_OK,
	  "Postmaster", "localhost", 0, 0 },
	{ "postmaster_quoted_refused", "<\"postmaster\">", 0, PM, ADDR_ENODOMAIN,
	  NULL, NULL, 0, 0 },
	{ "postmaster_routed_refused", "<@a.example:postmaster>", 0, PM,
	  ADDR_ENODOMAIN, NULL, NULL, 0, 0 },
	{ "postmasters_refused", "<postmasters>", 0, PM, ADDR_ENODOMAIN, NULL, NULL, 0, 0 },
	{ "no_domain", "<user>", 0, PM, ADDR_ENODOMAIN, NULL, NULL, 0, 0 },

	/* source routes, RFC 5321 4.1.2 and appendix C */
	{ "source_route_stripped", "<@a.example,@b.example:user@c.example>", 0, 0,
	  ADDR_OK, "user", "c.example", F_ROUTE, 0 },
	{ "source_route_one_hop", "<@A.example:user@C.example>", 0, 0, ADDR_OK,
	  "user", "c.example", F_ROUTE, 0 },
	{ "source_route_empty_domain", "<@:a@b>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "source_route_no_mailbox", "<@a.example:>", 0, 0, ADDR_ELOCAL, NULL, NULL, 0, 0 },
	{ "source_route_missing_at", "<@a.example,b.example:u@c.example>", 0, 0,
	  ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "source_route_literal_refused", "<@[1.2.3.4]:u@c.example>", 0, 0,
	  ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "source_route_unterminated", "<@a.example,@b.example", 0, 0, ADDR_ESYNTAX,
	  NULL, NULL, 0, 0 },
	{ "at_only", "<@>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },

	/* quoted local parts */
	{ "quoted_pair_dquote", "<\"a\\\"b\"@x.example>", 0, 0, ADDR_OK, "a\"b",
	  "x.example", F_QUOTED, 0 },
	{ "quoted_space", "<\"john doe\"@example.com>", 0, 0, ADDR_OK, "john doe",
	  "example.com", F_QUOTED, 0 },
	{ "quoted_at_is_relay_hint", "<\"a@b\"@example.com>", 0, 0, ADDR_OK, "a@b",
	  "example.com", F_QUOTED | F_AT, 0 },
	{ "quoted_gt_inside", "<\"a>b\"@x.example>", 0, 0, ADDR_OK, "a>b", "x.example",
	  F_QUOTED, 0 },
	{ "quoted_needless_pair", "<\"\\a\\b\"@x.example>", 0, 0, ADDR_OK, "ab",
	  "x.example", F_QUOTED, 0 },
	{ "quoted_percent_and_bang", "<\"a%b!c\"@x.example>", 0, 0, ADDR_OK, "a%b!c",
	  "x.example", F_QUOTED | F_PCT | F_BANG, 0 },
	{ "quoted_unterminated", "<\"abc@x.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "quoted_backslash_at_end", "<\"abc\\", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "quoted_empty", "<\"\"@x.example>", 0, 0, ADDR_ELOCAL, NULL, NULL, 0, 0 },
	{ "quoted_control", "<\"a\x01" "b\"@x.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "quoted_pair_control", "<\"a\\\x01\"@x.example>", 0, 0, ADDR_ESYNTAX, NULL,
	  NULL, 0, 0 },
	{ "quoted_tab", "<\"a\tb\"@x.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "quoted_nul", "<\"a\0b\"@x.example>", 17, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "quoted_then_atom", "<\"a\"b@x.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "quoted_then_dot_atom", "<\"a\".b@x.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "quoted_decoded_64_ok", "<\"" L63 "\\\"\"@x.example>", 0, 0, ADDR_OK,
	  L63 "\"", "x.example", F_QUOTED, 0 },
	{ "quoted_decoded_65_too_long", "<\"" L64 "y\"@x.example>", 0, 0,
	  ADDR_ETOOLONG, NULL, NULL, 0, 0 },

	/* Dot-string local parts */
	{ "local_leading_dot", "<.a@x.example>", 0, 0, ADDR_ELOCAL, NULL, NULL, 0, 0 },
	{ "local_trailing_dot", "<a.@x.example>", 0, 0, ADDR_ELOCAL, NULL, NULL, 0, 0 },
	{ "local_double_dot", "<a..b@x.example>", 0, 0, ADDR_ELOCAL, NULL, NULL, 0, 0 },
	{ "local_64_ok", "<" L64 "@x.example>", 0, 0, ADDR_OK, L64, "x.example", 0, 0 },
	{ "local_65_too_long", "<" L64 "y@x.example>", 0, 0, ADDR_ETOOLONG, NULL,
	  NULL, 0, 0 },
	{ "local_specials_refused", "<a(b)@x.example>", 0, 0, ADDR_ELOCAL, NULL, NULL, 0, 0 },
	{ "percent_hack", "<a%b.example@relay.example>", 0, 0, ADDR_OK, "a%b.example",
	  "relay.example", F_PCT, 0 },
	{ "bang_path", "<b.example!a@relay.example>", 0, 0, ADDR_OK, "b.example!a",
	  "relay.example", F_BANG, 0 },
	/* CVE-2020-7247: the local part is validated even when the domain is
	 * missing or empty. */
	{ "cve_2020_7247_no_domain", "<;sleep 66;>", 0, PM | NUL_OK, ADDR_ELOCAL,
	  NULL, NULL, 0, 0 },
	{ "cve_2020_7247_empty_domain", "<a;b@>", 0, PM | NUL_OK, ADDR_ELOCAL,
	  NULL, NULL, 0, 0 },
	{ "cve_2020_7247_valid_local_empty_domain", "<root@>", 0, PM | NUL_OK,
	  ADDR_EDOMAIN, NULL, NULL, 0, 0 },

	/* brackets and stray bytes */
	{ "empty_input", "", 0, NUL_OK, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "spaces_only", "   ", 0, NUL_OK, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "lone_lt", "<", 0, NUL_OK, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "bare_address_refused", "user@example.com", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "unterminated", "<a@b.example", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "space_after_lt", "< a@b.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "space_in_local", "<a b@x.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "space_before_gt", "<a@b.example >", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "tab_before_lt", "\t<a@b.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "nul_in_local", "<a\0b@x.example>", 15, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "nul_in_domain", "<a@x\0.example>", 14, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "del_in_local", "<a\x7f@x.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "cr_in_domain", "<a@x\r.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "lf_in_local", "<a\nRCPT@x.example>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "two_ats", "<a@b@c.example>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "nested_brackets", "<<a@b.example>>", 0, 0, ADDR_ELOCAL, NULL, NULL, 0, 0 },

	/* domains */
	{ "label_leading_hyphen", "<a@-x.example>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "label_trailing_hyphen", "<a@x-.example>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "domain_trailing_dot", "<a@example.com.>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "domain_leading_dot", "<a@.example.com>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "domain_double_dot", "<a@ex..com>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "domain_empty", "<a@>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "domain_underscore", "<a@x_y.example>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "label_63_ok", "<a@" D63 ".example>", 0, 0, ADDR_OK, "a", D63 ".example", 0, 0 },
	{ "label_64_refused", "<a@" D63 "d.example>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "path_256_ok", "<" L64 "@" D189 ">", 0, 0, ADDR_OK, L64, D189, 0, 0 },
	{ "path_257_too_long", "<" L64 "@" D189 "d>", 0, 0, ADDR_ETOOLONG, NULL, NULL, 0, 0 },
	{ "path_257_cut_before_gt", "<" L64 "@" D189 "d> SIZE=1", 0, 0, ADDR_ETOOLONG,
	  NULL, NULL, 0, 0 },
	{ "long_route_too_long",
	  "<@" D63 ",@" D63 ",@" D63 ",@" D63 ":a@b.example>", 0, 0, ADDR_ETOOLONG,
	  NULL, NULL, 0, 0 },

	/* address literals, RFC 5321 4.1.3 */
	{ "ipv4_literal", "<a@[192.0.2.1]>", 0, 0, ADDR_OK, "a", "[192.0.2.1]", F_LIT, 0 },
	{ "ipv6_literal", "<a@[IPv6:2001:DB8::1]>", 0, 0, ADDR_OK, "a",
	  "[ipv6:2001:db8::1]", F_LIT, 0 },
	{ "ipv6_mapped", "<a@[IPv6:::ffff:192.0.2.1]>", 0, 0, ADDR_OK, "a",
	  "[ipv6:::ffff:192.0.2.1]", F_LIT, 0 },
	{ "ipv4_octet_256", "<a@[192.0.2.256]>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "ipv4_leading_zero", "<a@[192.0.2.01]>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "ipv4_short", "<a@[127.1]>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "ipv6_without_tag", "<a@[2001:db8::1]>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "ipv6_zone_refused", "<a@[IPv6:fe80::1%eth0]>", 0, 0, ADDR_EDOMAIN, NULL,
	  NULL, 0, 0 },
	{ "general_literal_refused", "<a@[x-tag:foo]>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "literal_junk_after", "<a@[192.0.2.1]x>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "literal_unterminated", "<a@[192.0.2.1>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "literal_space", "<a@[192.0.2.1 ]>", 0, 0, ADDR_ESYNTAX, NULL, NULL, 0, 0 },
	{ "literal_empty", "<a@[]>", 0, 0, ADDR_EDOMAIN, NULL, NULL, 0, 0 },
	{ "literal_too_long",
	  "<a@[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]>", 0, 0,
	  ADDR_EDOMAIN, NULL, NULL, 0, 0 },

	/* UTF-8, RFC 6531 */
	{ "utf8_local_without_flag", "<j\xc3\xb6rg@x.example>", 0, 0, ADDR_E8BIT,
	  NULL, NULL, 0, 0 },
	{ "utf8_local_with_flag", "<j\xc3\xb6rg@x.example>", 0, UTF, ADDR_OK,
	  "j\xc3\xb6rg", "x.example", F_UTF8, 0 },
	{ "utf8_domain_with_flag", "<a@B\xc3\xbc" "cher.Example>", 0, UTF, ADDR_OK, "a",
	  "b\xc3\xbc" "cher.example", F_UTF8, 0 },
	{ "utf8_domain_without_flag", "<a@b\xc3\xbc" "cher.example>", 0, 0, ADDR_E8BIT,
	  NULL, NULL, 0, 0 },
	{ "utf8_quoted_with_flag", "<\"j\xc3\xb6 rg\"@x.example>", 0, UTF, ADDR_OK,
	  "j\xc3\xb6 rg", "x.example", F_UTF8 | F_QUOTED, 0 },
	{ "utf8_4byte", "<\xf0\x9f\x98\x80@x.example>", 0, UTF, ADDR_OK,
	  "\xf0\x9f\x98\x80", "x.example", F_UTF8, 0 },
	{ "utf8_overlong_slash", "<\xc0\xaf@x.example>", 0, UTF, ADDR_E8BIT, NULL, NULL, 0, 0 },
	{ "utf8_overlong_3byte", "<\xe0\x80\xaf@x.example>", 0, UTF, ADDR_E8BIT, NULL,
	  NULL, 0, 0 },
	{ "utf8_surrogate", "<\xed\xa0\x80@x.example>", 0, UTF, ADDR_E8BIT, NULL, NULL, 0, 0 },
	{ "utf8_above_max", "<\xf4\x90\x80\x80@x.example>", 0, UTF, ADDR_E8BIT, NULL,
	  NULL, 0, 0 },
	{ "utf8_truncated", "<a\xc3@x.example>", 0, UTF, ADDR_E8BIT, NULL, NULL, 0, 0 },
	{ "utf8_lone_continuation", "<a\x80@x.example>", 0, UTF, ADDR_E8BIT, NULL, NULL, 0, 0 },
	{ "utf8_c1_control", "<a\xc2\x85@x.example>", 0, UTF, ADDR_E8BIT, NULL, NULL, 0, 0 },
	{ "utf8_in_literal", "<a@[\xc3\xb6]>", 0, UTF, ADDR_E8BIT, NULL, NULL, 0, 0 },
	{ "latin1_with_flag", "<j\xf6rg@x.example>", 0, UTF, ADDR_E8BIT, NULL, NULL, 0, 0 },
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static unsigned mb_flags(const struct mailbox *mb)
{
	return (mb->is_null ? F_NULL : 0) | (mb->is_postmaster ? F_PM : 0) |
	       (mb->local_quoted ? F_QUOTED : 0) | (mb->domain_literal ? F_LIT : 0) |
	       (mb->utf8 ? F_UTF8 : 0) | (mb->had_source_route ? F_ROUTE : 0) |
	       (mb->has_percent ? F_PCT : 0) | (mb->has_bang ? F_BANG : 0) |
	       (mb->has_at_in_local ? F_AT : 0);
}

/* Format the mailbox, parse "<" it ">" again: the same mailbox comes back. */
static void check_round_trip(const struct mailbox *mb, unsigned flags)
{
	char text[600], path[604];
	struct mailbox again;
	size_t used, n;

	n = addr_format(mb, text, sizeof(text));
	assert_true(n < sizeof(text));
	assert_int_equal(strlen(text), n);
	int m = snprintf(path, sizeof(path), "<%s>", text);
	assert_true(m > 0 && (size_t)m < sizeof(path));
	assert_int_equal(addr_parse_path((const uint8_t *)path, (size_t)m, flags,
					 &again, &used),
			 ADDR_OK);
	assert_int_equal(used, (size_t)m);
	assert_int_equal(again.local_len, mb->local_len);
	if (mb->is_postmaster)
		assert_int_equal(strcasecmp(again.local, mb->local), 0);
	else
		assert_memory_equal(again.local, mb->local, mb->local_len);
	assert_int_equal(again.domain_len, mb->domain_len);
	assert_memory_equal(again.domain, mb->domain, mb->domain_len);
	/* formatting drops the route and needless quotes, nothing else */
	assert_int_equal(mb_flags(&again) & ~(unsigned)(F_ROUTE | F_QUOTED),
			 mb_flags(mb) & ~(unsigned)(F_ROUTE | F_QUOTED));
}

static void run_case(void **state)
{
	const struct addr_case *c = *state;
	size_t len = c->len ? c->len : strlen(c->in);
	struct mailbox mb;
	size_t used = 12345;
	enum addr_err e;

	e = addr_parse_path((const uint8_t *)c->in, len, c->flags, &mb, &used);
	if (e != c->want)
		fail_msg("%s: got %d (%s), want %d (%s)", c->name, e,
			 addr_strerror(e), c->want, addr_strerror(c->want));
	if (e != ADDR_OK)
		return;
	assert_int_equal(used, c->used ? c->used : len);
	assert_string_equal(mb.local, c->local);
	assert_int_equal(mb.local_len, strlen(c->local));
	assert_string_equal(mb.domain, c->domain);
	assert_int_equal(mb.domain_len, strlen(c->domain));
	assert_int_equal(mb_flags(&mb), c->mbflags);
	check_round_trip(&mb, c->flags);
}

/* ---- addr_format and addr_strerror ------------------------------------ */

static void parse_ok(const char *in, unsigned flags, struct mailbox *mb)
{
	size_t used;

	assert_int_equal(addr_parse_path((const uint8_t *)in, strlen(in), flags, mb,
					 &used),
			 ADDR_OK);
}

static void test_format_requotes(void **state)
{
	struct mailbox mb;
	char out[128];

	(void)state;
	parse_ok("<\"john doe\"@Example.com>", 0, &mb);
	assert_int_equal(addr_format(&mb, out, sizeof(out)), 22);
	assert_string_equal(out, "\"john doe\"@example.com");
	parse_ok("<\"a\\\"b\\\\c\"@x.example>", 0, &mb);
	addr_format(&mb, out, sizeof(out));
	assert_string_equal(out, "\"a\\\"b\\\\c\"@x.example");
	parse_ok("<\"plain\"@x.example>", 0, &mb);
	addr_format(&mb, out, sizeof(out));
	assert_string_equal(out, "plain@x.example");
	parse_ok("<\".a\"@x.example>", 0, &mb);
	addr_format(&mb, out, sizeof(out));
	assert_string_equal(out, "\".a\"@x.example");
}

static void test_format_null_and_postmaster(void **state)
{
	struct mailbox mb;
	char out[32];

	(void)state;
	parse_ok("<>", ADDR_NULL_OK, &mb);
	assert_int_equal(addr_format(&mb, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	parse_ok("<POSTMASTER>", ADDR_POSTMASTER_OK, &mb);
	assert_int_equal(addr_format(&mb, out, sizeof(out)), 10);
	assert_string_equal(out, "postmaster");
}

static void test_format_truncates(void **state)
{
	struct mailbox mb;
	char out[8];

	(void)state;
	parse_ok("<user@example.com>", 0, &mb);
	memset(out, 'Z', sizeof(out));
	assert_int_equal(addr_format(&mb, out, 5), 16);
	assert_string_equal(out, "user");
	assert_int_equal(out[5], 'Z');
	memset(out, 'Z', sizeof(out));
	assert_int_equal(addr_format(&mb, out, 0), 16);
	assert_int_equal(out[0], 'Z');
	assert_int_equal(addr_format(&mb, NULL, 0), 16);
	assert_int_equal(addr_format(&mb, out, 1), 16);
	assert_string_equal(out, "");
}

static void test_strerror_never_null(void **state)
{
	(void)state;
	for (int e = ADDR_OK; e <= ADDR_ENULL + 5; e++) {
		const char *s = addr_strerror((enum addr_err)e);
		assert_non_null(s);
		assert_true(strlen(s) > 0);
	}
}

/* A bounded input: the parser never reads past len, even when the byte
 * after it would complete the path. */
static void test_never_reads_past_len(void **state)
{
	static const char in[] = "<a@b.example>";
	struct mailbox mb;
	size_t used;

	(void)state;
	for (size_t len = 0; len < sizeof(in) - 1; len++)
		assert_int_not_equal(addr_parse_path((const uint8_t *)in, len, 0,
						     &mb, &used),
				     ADDR_OK);
	assert_int_equal(addr_parse_path(NULL, 0, ADDR_NULL_OK, &mb, &used),
			 ADDR_ESYNTAX);
}

int main(void)
{
	static struct CMUnitTest tests[NCASES + 5];
	size_t n = 0;

	for (size_t i = 0; i < NCASES; i++)
		tests[n++] = (struct CMUnitTest){ cases[i].name, run_case, NULL, NULL,
						   (void *)&cases[i] };
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_format_requotes);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_format_null_and_postmaster);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_format_truncates);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_strerror_never_null);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_never_reads_past_len);
	assert_int_equal(n, sizeof(tests) / sizeof(tests[0]));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
