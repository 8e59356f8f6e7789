/*
 * test_spf.c - cmocka tests for mailauth/spf: the record grammar, the
 * macro expander (every example of RFC 7208 7.4), the names, and
 * check_host() over a small zone in memory: the lookup, void, MX and PTR
 * limits, IPv6 and IPv4-mapped clients, DNS errors, explanations, and the
 * asynchronous contract (late answers, cancellation, done freeing).
 *
 * The RFC 7208 test suite itself runs from tests/integration/test_spf_suite.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/spf.h"

/* ------------------------------------------------------------------ */
/* the record grammar */

static int parse(const char *rec, struct spf_record *r)
{
	char err[128];

	return spf_record_parse((const uint8_t *)rec, strlen(rec), r, err, sizeof err);
}

static void test_record_valid(void **state)
{
	static const char *ok[] = {
		"v=spf1",
		"v=spf1 ",
		"V=SpF1 -ALL",
		"v=spf1  a  -all ",
		"v=spf1 +all ?all ~all -all",
		"v=spf1 a mx ptr a:example.com mx:example.com ptr:example.com",
		"v=spf1 include:_spf.example.com exists:%{ir}.%{l1r+-}._spf.%{d}",
		"v=spf1 a:foo:bar/baz.example.com",		/* ':' and '/' are macro-literals */
		"v=spf1 a:foo.example.xn--zckzah",		/* a dash in the top label */
		"v=spf1 a:foo.1-2",				/* toplabel "1-2" */
		"v=spf1 a:example.com. -all",			/* trailing dot */
		"v=spf1 ip4:0.0.0.0/0 ip4:255.255.255.255/32 ip4:192.0.2.1",
		"v=spf1 ip6:::1 ip6:2001:db8::/32 ip6:::ffff:1.2.3.4 ip6:::/0 ip6:1:2:3:4:5:6:7:8/128",
		"v=spf1 redirect=_spf.example.com",
		"v=spf1 -all exp=explain._spf.%{d}",
		"v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all",	/* unknown modifier */
		"v=spf1 default=+ foo=%{c}%{r}%{t}",		/* every letter in an unknown modifier */
		"v=spf1 a:%{d}%%.%_%-.example.com",
		"v=spf1 exists:%{d}",				/* domain-end is a macro */
		"v=spf1 exists:%{d}%%",				/* "%%" is a macro-expand too */
		"v=spf1 exists:%{l2r+-,/_=}.example.com",	/* every delimiter */
		"v=spf1 exists:%{L999999999999R}.example.com",	/* big transformers saturate */
		"v=spf1 a/24 a//64 a/24//64 a//0 mx/0 mx:example.com/32//128",
		"v=spf1 a:%{d}}.example.com",			/* '}' is a macro-literal */
	};
	struct spf_record r;

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		if (parse(ok[i], &r) != 0)
			fail_msg("refused: %s", ok[i]);
	}
}

static void test_record_invalid(void **state)
{
	static const char *bad[] = {
		"v=spf10",				/* not a record */
		"v=spf1 -all.", "v=spf1 -all:foobar", "v=spf1 -all/8", "v=spf1 all -all moo",
		"v=spf1 a/33", "v=spf1 a//129", "v=spf1 a/24/64", "v=spf1 a/032", "v=spf1 a/",
		"v=spf1 a//", "v=spf1 mx//33//", "v=spf1 a:", "v=spf1 mx: -all",
		"v=spf1 a:museum", "v=spf1 a:museum.", "v=spf1 a:abc.123", "v=spf1 a:111.222.33.44",
		"v=spf1 a:example.-com", "v=spf1 a:example.com-", "v=spf1 a:example.com:8080",
		"v=spf1 a:foo-bar", "v=spf1 a:%{d}.", "v=spf1 a:example.com/24/",
		"v=spf1 include", "v=spf1 include:", "v=spf1 include:example.com/24",
		"v=spf1 exists", "v=spf1 exists:", "v=spf1 exists:mail.example.com/24",
		"v=spf1 ptr/0", "v=spf1 ptr:", "v=spf1 ptr:example.com/24",
		"v=spf1 ip4", "v=spf1 ip4:", "v=spf1 ip4:1.2.3", "v=spf1 ip4:1.2.3.4/33",
		"v=spf1 ip4:1.2.3.4/032", "v=spf1 ip4:01.2.3.4", "v=spf1 ip4:256.1.1.1",
		"v=spf1 ip4:1.2.3.4:8080", "v=spf1 ip4:1.2.3.4//32", "v=spf1 ip4:1.2.3.4/",
		"v=spf1 ip4:::1", "v=spf1 ip6", "v=spf1 ip6:1.2.3.4", "v=spf1 ip6::CAFE::BABE",
		"v=spf1 ip6:::1.1.1.1/129", "v=spf1 ip6:::1//33", "v=spf1 ip6:::1%eth0",
		"v=spf1 redirect=", "v=spf1 redirect:example.com", "v=spf1 redirect=-all",
		"v=spf1 exp=", "v=spf1 exp=-all", "v=spf1 exp=%{r}.example.com",
		"v=spf1 redirect=a.example.com redirect=b.example.com",
		"v=spf1 exp=a.example.com -all exp=b.example.com",
		"v=spf1 moo.cow/far_out=man:dog/cat", "v=spf1 moo.cow:far_out=man:dog/cat",
		"v=spf1 1up=foo", "v=spf1 =all", "v=spf1 foo=%abc", "v=spf1 foo=bar%",
		"v=spf1 -", "v=spf1 +-all", "v=spf1 prt", "v=spf1 a:%{a}.example.com",
		"v=spf1 a:%{d0}.example.com", "v=spf1 a:%{d.example.com",
		"v=spf1 exists:%(ir).sbl.example.com", "v=spf1 exists:foo%.sbl.example.com",
		"v=spf1 a:%{c}.example.com", "v=spf1 a:%{t}.example.com",
		"v=spf1 a:ctrl.example.com\rptr -all", "v=spf1 ip4:192.0.2.5\n include:x.example.com",
		"v=spf1 a:\xef\xbb\xbfgarbage.example.net -all", "v=spf1 \200a -all",
		"v=spf1 -all\t",
	};
	struct spf_record r;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse(bad[i], &r) == 0)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void test_record_nul_and_length(void **state)
{
	static const char rec[] = "v=spf1 a:foo.example.com\0 -all";
	struct spf_record r;
	char err[128];
	size_t big = SPF_RECORD_MAX + 1;
	uint8_t *b = malloc(big);

	(void)state;
	assert_int_equal(spf_record_parse((const uint8_t *)rec, sizeof rec - 1, &r, err, sizeof err), -1);
	assert_non_null(strstr(err, "\\x00"));	/* the error shows the octet escaped */
	assert_non_null(b);
	memset(b, ' ', big);
	memcpy(b, "v=spf1", 6);
	assert_int_equal(spf_record_parse(b, big, &r, err, sizeof err), -1);
	assert_int_equal(spf_record_parse(b, big - 1, &r, err, sizeof err), 0);
	free(b);
}

static void test_record_terms(void **state)
{
	static const char rec[] =
		"v=spf1 ~a:Example.COM/24//64 -mx//48 ?ptr ip4:192.0.2.0/24 ip6:2001:DB8::/33 "
		"+include:_spf.example.net exists:%{i}.x.example.org redirect=r.example.com "
		"exp=e.example.com x-y=z";
	struct spf_term t;
	struct spf_record r;
	size_t pos = 0;
	char err[128];
	uint8_t v6[16];

	(void)state;
	assert_int_equal(parse(rec, &r), 0);
	assert_int_equal(r.nterms, 10);
	assert_int_equal(r.ndns, 6);
	assert_true(r.has_ptr && r.has_redirect && r.has_exp && !r.has_all);
	assert_int_equal(r.redirect.domain.len, strlen("r.example.com"));

	assert_int_equal(spf_term_next((const uint8_t *)rec, strlen(rec), &pos, &t, err, sizeof err), 1);
	assert_int_equal(t.kind, SPF_T_A);
	assert_int_equal(t.qualifier, SPF_SOFTFAIL);
	assert_int_equal(t.cidr4, 24);
	assert_int_equal(t.cidr6, 64);
	assert_int_equal(t.domain.len, 11);
	assert_memory_equal(t.domain.p, "Example.COM", 11);

	assert_int_equal(spf_term_next((const uint8_t *)rec, strlen(rec), &pos, &t, err, sizeof err), 1);
	assert_int_equal(t.kind, SPF_T_MX);
	assert_int_equal(t.qualifier, SPF_FAIL);
	assert_int_equal(t.cidr4, 32);
	assert_int_equal(t.cidr6, 48);
	assert_int_equal(t.domain.len, 0);

	assert_int_equal(spf_term_next((const uint8_t *)rec, strlen(rec), &pos, &t, err, sizeof err), 1);
	assert_int_equal(t.kind, SPF_T_PTR);
	assert_int_equal(t.qualifier, SPF_NEUTRAL);

	assert_int_equal(spf_term_next((const uint8_t *)rec, strlen(rec), &pos, &t, err, sizeof err), 1);
	assert_int_equal(t.kind, SPF_T_IP4);
	assert_int_equal(t.qualifier, SPF_PASS);
	assert_int_equal(t.cidr4, 24);
	assert_memory_equal(t.net, "\xc0\x00\x02\x00", 4);

	assert_int_equal(spf_term_next((const uint8_t *)rec, strlen(rec), &pos, &t, err, sizeof err), 1);
	assert_int_equal(t.kind, SPF_T_IP6);
	assert_int_equal(t.cidr6, 33);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::", v6), 1);
	assert_memory_equal(t.net, v6, 16);

	for (int i = 0; i < 5; i++)
		assert_int_equal(spf_term_next((const uint8_t *)rec, strlen(rec), &pos, &t, err, sizeof err), 1);
	assert_int_equal(t.kind, SPF_T_UNKNOWN);
	assert_memory_equal(t.name.p, "x-y", 3);
	assert_memory_equal(t.domain.p, "z", 1);
	assert_int_equal(spf_term_next((const uint8_t *)rec, strlen(rec), &pos, &t, err, sizeof err), 0);
	assert_int_equal(spf_term_next((const uint8_t *)rec, strlen(rec), &pos, &t, err, sizeof err), 0);
}

static void test_is_record(void **state)
{
	(void)state;
	assert_true(spf_is_record((const uint8_t *)"v=spf1", 6));
	assert_true(spf_is_record((const uint8_t *)"V=SPF1 -all", 11));
	assert_false(spf_is_record((const uint8_t *)"v=spf10", 7));
	assert_false(spf_is_record((const uint8_t *)"v=spf1\t-all", 11));
	assert_false(spf_is_record((const uint8_t *)"v=spf", 5));
	assert_false(spf_is_record((const uint8_t *)" v=spf1", 7));
	assert_false(spf_is_record((const uint8_t *)"", 0));
}

/* ------------------------------------------------------------------ */
/* macros: RFC 7208 7.4 */

static struct spf_macro_env rfc_env(int family)
{
	struct spf_macro_env e = {
		.sender = "strong-bad@email.example.com", .local = "strong-bad",
		.sender_domain = "email.example.com", .domain = "email.example.com",
		.helo = "mx.example.org", .ptr = "mx.example.org", .receiver = "mx.example.net",
		.family = family, .now = 1234567890,
	};

	if (family == AF_INET)
		assert_int_equal(inet_pton(AF_INET, "192.0.2.3", e.ip), 1);
	else
		assert_int_equal(inet_pton(AF_INET6, "2001:db8::cb01", e.ip), 1);
	return e;
}

static void expect_expand(const struct spf_macro_env *env, enum spf_macro_mode mode,
			  const char *in, const char *want)
{
	char out[SPF_EXPAND_MAX];
	size_t n = 0;
	int rc = spf_macro_expand(env, (const uint8_t *)in, strlen(in), mode, out, sizeof out, &n);

	if (rc != 0)
		fail_msg("%s: rc %d", in, rc);
	if (strcmp(out, want) != 0 || n != strlen(want))
		fail_msg("%s: got \"%s\", want \"%s\"", in, out, want);
}

static void test_macro_rfc7208_7_4(void **state)
{
	static const struct {
		const char *in, *want;
	} v4[] = {
		{ "%{s}", "strong-bad@email.example.com" },
		{ "%{o}", "email.example.com" },
		{ "%{d}", "email.example.com" },
		{ "%{d4}", "email.example.com" },
		{ "%{d3}", "email.example.com" },
		{ "%{d2}", "example.com" },
		{ "%{d1}", "com" },
		{ "%{dr}", "com.example.email" },
		{ "%{d2r}", "example.email" },
		{ "%{l}", "strong-bad" },
		{ "%{l-}", "strong.bad" },
		{ "%{lr}", "strong-bad" },
		{ "%{lr-}", "bad.strong" },
		{ "%{l1r-}", "strong" },
		{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com" },
		{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com" },
		{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
		{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com" },
		{ "%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net" },
	};
	struct spf_macro_env e4 = rfc_env(AF_INET), e6 = rfc_env(AF_INET6);

	(void)state;
	for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++)
		expect_expand(&e4, SPF_MACRO_DOMAIN, v4[i].in, v4[i].want);
	expect_expand(&e6, SPF_MACRO_DOMAIN, "%{ir}.%{v}._spf.%{d2}",
		      "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

static void test_macro_more(void **state)
{
	struct spf_macro_env e4 = rfc_env(AF_INET), e6 = rfc_env(AF_INET6);
	struct spf_macro_env up = e4;
	char out[64];
	size_t n;

	(void)state;
	/* the others of 7.3 */
	expect_expand(&e4, SPF_MACRO_DOMAIN, "%{i}", "192.0.2.3");
	expect_expand(&e4, SPF_MACRO_DOMAIN, "%{h}", "mx.example.org");
	expect_expand(&e4, SPF_MACRO_DOMAIN, "%{p}", "mx.example.org");
	expect_expand(&e6, SPF_MACRO_DOMAIN, "%{i}",
		      "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1");
	expect_expand(&e6, SPF_MACRO_DOMAIN, "%{v}", "ip6");
	expect_expand(&e4, SPF_MACRO_EXP, "%{c} %{r} %{t}", "192.0.2.3 mx.example.net 1234567890");
	expect_expand(&e6, SPF_MACRO_EXP, "%{c}", "2001:db8::cb01");
	expect_expand(&e6, SPF_MACRO_EXP, "%{C}", "2001%3Adb8%3A%3Acb01");
	/* %% %_ %- */
	expect_expand(&e4, SPF_MACRO_DOMAIN, "a%%b%_c%-d", "a%b c%20d");
	/* upper case: URL-escaped after the transformers (the suite's upper-macro) */
	up.local = "~jack&jill=up-a_b3.c";
	expect_expand(&up, SPF_MACRO_EXP, "http://example.com/why.html?l=%{L}",
		      "http://example.com/why.html?l=~jack%26jill%3Dup-a_b3.c");
	expect_expand(&up, SPF_MACRO_DOMAIN, "%{L2r=}", "up-a_b3.c.~jack%26jill");
	/* multiple delimiters, more digits than parts, R in capitals */
	up.local = "foo-bar+zip+quux";
	expect_expand(&up, SPF_MACRO_DOMAIN, "%{l2r+-}", "bar.foo");
	expect_expand(&up, SPF_MACRO_DOMAIN, "%{l99}", "foo-bar+zip+quux");
	expect_expand(&up, SPF_MACRO_DOMAIN, "%{l1R+}", "foo-bar");
	/* empty parts are kept */
	up.local = "a..b";
	expect_expand(&up, SPF_MACRO_DOMAIN, "%{lr}", "b..a");
	/* p unknown */
	up.ptr = NULL;
	expect_expand(&up, SPF_MACRO_DOMAIN, "%{p}", "unknown");
	/* explanation text: spaces and every letter */
	expect_expand(&e4, SPF_MACRO_EXP, "See http://%{d}/why?s=%{S}&i=%{I}",
		      "See http://email.example.com/why?s=strong-bad%40email.example.com&i=192.0.2.3");

	/* syntax */
	assert_int_equal(spf_macro_check((const uint8_t *)"%{c}", 4, SPF_MACRO_DOMAIN), -1);
	assert_int_equal(spf_macro_check((const uint8_t *)"%{c}", 4, SPF_MACRO_EXP), 0);
	assert_int_equal(spf_macro_check((const uint8_t *)"a b", 3, SPF_MACRO_DOMAIN), -1);
	assert_int_equal(spf_macro_check((const uint8_t *)"a b", 3, SPF_MACRO_EXP), 0);
	assert_int_equal(spf_macro_check((const uint8_t *)"The %{x}-files.", 15, SPF_MACRO_EXP), -1);
	assert_int_equal(spf_macro_check((const uint8_t *)"%", 1, SPF_MACRO_EXP), -1);
	assert_int_equal(spf_macro_check((const uint8_t *)"\xef" "x", 2, SPF_MACRO_EXP), -1);
	assert_int_equal(spf_macro_expand(&e4, (const uint8_t *)"%{x}", 4, SPF_MACRO_EXP, out,
					  sizeof out, &n), -1);
	/* too long for out */
	assert_int_equal(spf_macro_expand(&e4, (const uint8_t *)"%{s}%{s}%{s}", 12, SPF_MACRO_DOMAIN,
					  out, sizeof out, &n), -2);
	assert_string_equal(out, "");

	assert_true(spf_macro_uses_ptr((const uint8_t *)"x.%{p}.y", 8));
	assert_true(spf_macro_uses_ptr((const uint8_t *)"%{P2}", 5));
	assert_false(spf_macro_uses_ptr((const uint8_t *)"%%{p}", 5));
	assert_false(spf_macro_uses_ptr((const uint8_t *)"%{d}p", 5));
}

/* ------------------------------------------------------------------ */
/* names */

static void test_target_name(void **state)
{
	char name[600];
	char want[300];

	(void)state;
	snprintf(name, sizeof name, "example.com.");
	assert_int_equal(spf_target_name(name), 0);
	assert_string_equal(name, "example.com");
	snprintf(name, sizeof name, "a..example.com");
	assert_int_equal(spf_target_name(name), -1);
	snprintf(name, sizeof name, ".");
	assert_int_equal(spf_target_name(name), -1);
	snprintf(name, sizeof name, "%s.example.com",
		 "a123456789012345678901234567890123456789012345678901234567890123");
	assert_int_equal(spf_target_name(name), -1);	/* a 64-octet label */
	/* 7.3: cut from the left by whole labels to 253 (the suite's domain-name-truncation) */
	snprintf(name, sizeof name, "foobar.");
	want[0] = '\0';
	for (int i = 0; i < 8; i++)
		strcat(want, "somewhat.long.exp.example.com.");
	strcat(want, "example.com");
	strcat(name, want);
	assert_int_equal(strlen(name), 258);
	assert_int_equal(spf_target_name(name), 0);
	assert_string_equal(name, want);
	assert_int_equal(strlen(name), 251);
}

static void test_domain_valid(void **state)
{
	(void)state;
	assert_true(spf_domain_valid("example.com"));
	assert_true(spf_domain_valid("example.com."));
	assert_true(spf_domain_valid("_spf.example.com"));
	assert_true(spf_domain_valid("a12345678901234567890123456789012345678901234567890123456789012.example.com"));
	assert_false(spf_domain_valid("a123456789012345678901234567890123456789012345678901234567890123.example.com"));
	assert_false(spf_domain_valid("A...example.com"));
	assert_false(spf_domain_valid("A2345678"));
	assert_false(spf_domain_valid("[1.2.3.5]"));
	assert_false(spf_domain_valid("1.2.3.5"));
	assert_false(spf_domain_valid(""));
	assert_false(spf_domain_valid("."));
	assert_false(spf_domain_valid("exa mple.com"));
}

/* ------------------------------------------------------------------ */
/* check_host() over a zone in memory */

struct rr {
	const char *name, *type, *value;	/* MX value: "pref host"; type "TEMPFAIL": every type */
};

static const struct rr *zone;
static size_t nzone;

struct pending {
	int kind;		/* 'T' 'A' 'M' 'P' */
	char name[300];
	int family;
	struct spf_query *q;
};

struct provider {
	bool defer;
	bool refuse;		/* return -1 */
	struct pending queue[64];
	size_t n;
	unsigned asked;
};

static bool ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

static void answer(const struct pending *p)
{
	const char *type = p->kind == 'T' ? "TXT" : p->kind == 'M' ? "MX" : p->kind == 'P' ? "PTR"
			 : p->family == AF_INET ? "A" : "AAAA";
	const char *vals[DNS_MAX_RECORDS];
	size_t n = 0;
	bool exists = false;
	enum dns_status st;

	for (size_t i = 0; i < nzone; i++) {
		if (!ieq(zone[i].name, p->name))
			continue;
		exists = true;
		if (strcmp(zone[i].type, "TEMPFAIL") == 0) {
			n = 0;
			exists = false;
			break;
		}
		if (strcmp(zone[i].type, type) == 0 && n < DNS_MAX_RECORDS)
			vals[n++] = zone[i].value;
	}
	st = n > 0 ? DNS_OK : exists ? DNS_NODATA : DNS_NXDOMAIN;
	for (size_t i = 0; i < nzone; i++)
		if (ieq(zone[i].name, p->name) && strcmp(zone[i].type, "TEMPFAIL") == 0)
			st = DNS_TEMPFAIL;

	if (p->kind == 'T') {
		struct dns_txt txt[DNS_MAX_RECORDS];
		struct dns_txt_result r = { .status = st, .n = n, .txt = txt };

		for (size_t i = 0; i < n; i++)
			txt[i] = (struct dns_txt){ (char *)vals[i], strlen(vals[i]) };
		spf_answer_txt(p->q, &r);
	} else if (p->kind == 'A') {
		struct sockaddr_storage a[DNS_MAX_RECORDS];
		struct dns_addr_result r = { .status = st, .n = n, .addr = a };

		for (size_t i = 0; i < n; i++) {
			memset(&a[i], 0, sizeof a[i]);
			a[i].ss_family = (sa_family_t)p->family;
			if (p->family == AF_INET)
				assert_int_equal(inet_pton(AF_INET, vals[i],
							   &((struct sockaddr_in *)&a[i])->sin_addr), 1);
			else
				assert_int_equal(inet_pton(AF_INET6, vals[i],
							   &((struct sockaddr_in6 *)&a[i])->sin6_addr), 1);
		}
		spf_answer_addr(p->q, &r);
	} else if (p->kind == 'M') {
		struct dns_mx mx[DNS_MAX_RECORDS];
		struct dns_mx_result r = { .status = st, .n = n, .mx = mx };

		for (size_t i = 0; i < n; i++) {
			unsigned pref;

			assert_int_equal(sscanf(vals[i], "%u %255s", &pref, mx[i].host), 2);
			mx[i].pref = (uint16_t)pref;
		}
		spf_answer_mx(p->q, &r);
	} else {
		spf_answer_ptr(p->q, st, vals, n);
	}
}

static int ask(struct provider *pv, int kind, const char *name, int family, struct spf_query *q)
{
	struct pending p = { kind, "", family, q };

	pv->asked++;
	if (pv->refuse)
		return -1;
	snprintf(p.name, sizeof p.name, "%s", name);
	if (!pv->defer) {
		answer(&p);
		return 0;
	}
	assert_true(pv->n < 64);
	pv->queue[pv->n++] = p;
	return 0;
}

static int p_txt(void *ctx, const char *name, struct spf_query *q)
{
	return ask(ctx, 'T', name, 0, q);
}

static int p_addr(void *ctx, const char *name, int family, struct spf_query *q)
{
	return ask(ctx, 'A', name, family, q);
}

static int p_mx(void *ctx, const char *name, struct spf_query *q)
{
	return ask(ctx, 'M', name, 0, q);
}

static int p_ptr(void *ctx, const struct sockaddr_storage *ip, struct spf_query *q)
{
	char name[128];
	const uint8_t *b;

	if (ip->ss_family == AF_INET) {
		b = (const uint8_t *)&((const struct sockaddr_in *)ip)->sin_addr;
		snprintf(name, sizeof name, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
	} else {
		size_t o = 0;

		b = ((const struct sockaddr_in6 *)ip)->sin6_addr.s6_addr;
		for (int i = 15; i >= 0; i--)
			o += (size_t)snprintf(name + o, sizeof name - o, "%x.%x.", b[i] & 15, b[i] >> 4);
		snprintf(name + o, sizeof name - o, "ip6.arpa");
	}
	return ask(ctx, 'P', name, 0, q);
}

struct outcome {
	int calls;
	struct spf_result r;
	struct spf *free_me;	/* done frees it */
};

static void on_done(void *arg, const struct spf_result *r)
{
	struct outcome *o = arg;

	o->calls++;
	o->r = *r;
	if (o->free_me != NULL)
		spf_free(o->free_me);
}

static struct spf_request request(const char *ip, const char *sender, const char *helo)
{
	struct spf_request req = { .helo = helo, .sender = sender, .default_exp = "DEFAULT",
				   .receiver = "mx.tern.test", .now = 1 };

	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&req.ip)->sin_addr) == 1)
		req.ip.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&req.ip)->sin6_addr) == 1)
		req.ip.ss_family = AF_INET6;
	else
		fail_msg("bad ip %s", ip);
	return req;
}

/* Runs a check with answers at once and, again, answered later newest first. */
static struct spf_result check_req(const struct rr *z, size_t nz, const struct spf_request *req)
{
	struct provider now = { 0 }, later = { .defer = true };
	struct spf_dns dns = { p_txt, p_addr, p_mx, p_ptr, &now };
	struct outcome o1 = { 0 }, o2 = { 0 };
	struct spf *s;

	zone = z;
	nzone = nz;
	s = spf_new(&dns, req, on_done, &o1);
	assert_non_null(s);
	spf_start(s);
	assert_int_equal(o1.calls, 1);
	spf_free(s);

	dns.ctx = &later;
	s = spf_new(&dns, req, on_done, &o2);
	assert_non_null(s);
	o2.free_me = s;		/* done frees the check */
	spf_start(s);
	while (later.n > 0) {
		struct pending p = later.queue[--later.n];

		assert_int_equal(o2.calls, 0);
		answer(&p);
	}
	assert_int_equal(o2.calls, 1);
	assert_int_equal(o1.r.code, o2.r.code);
	assert_string_equal(o1.r.explanation, o2.r.explanation);
	assert_string_equal(o1.r.mechanism, o2.r.mechanism);
	assert_string_equal(o1.r.problem, o2.r.problem);
	assert_int_equal(o1.r.lookups, o2.r.lookups);
	return o1.r;
}

#define CHECK(z, ip, sender) check_one(z, sizeof z / sizeof z[0], ip, sender)

static struct spf_result check_one(const struct rr *z, size_t nz, const char *ip, const char *sender)
{
	struct spf_request req = request(ip, sender, "helo.example.net");

	return check_req(z, nz, &req);
}

static void test_check_basic(void **state)
{
	static const struct rr z[] = {
		{ "example.com", "TXT", "v=spf1 a mx -all exp=why.%{d}" },
		{ "example.com", "TXT", "google-site-verification=abc" },
		{ "example.com", "A", "192.0.2.10" },
		{ "example.com", "MX", "10 mx.example.com" },
		{ "mx.example.com", "A", "192.0.2.20" },
		{ "why.example.com", "TXT", "%{i} may not send for %{d} (%{s}) to %{r}" },
		{ "inc.example.com", "TXT", "v=spf1 include:example.com ~all" },
	};
	struct spf_result r;

	(void)state;
	r = CHECK(z, "192.0.2.10", "a@example.com");
	assert_int_equal(r.code, SPF_PASS);
	assert_string_equal(r.mechanism, "a");
	assert_string_equal(r.domain, "example.com");
	assert_int_equal(r.lookups, 1);
	r = CHECK(z, "192.0.2.20", "a@example.com");
	assert_int_equal(r.code, SPF_PASS);
	assert_string_equal(r.mechanism, "mx");
	assert_int_equal(r.lookups, 2);
	r = CHECK(z, "192.0.2.30", "a@example.com");
	assert_int_equal(r.code, SPF_FAIL);
	assert_string_equal(r.mechanism, "-all");
	assert_string_equal(r.explanation,
			    "192.0.2.30 may not send for example.com (a@example.com) to mx.tern.test");
	assert_false(r.ptr_used);
	/* include: pass matches, fail does not; the included exp= is never used */
	r = CHECK(z, "192.0.2.10", "a@inc.example.com");
	assert_int_equal(r.code, SPF_PASS);
	assert_string_equal(r.mechanism, "include:example.com");
	r = CHECK(z, "192.0.2.30", "a@inc.example.com");
	assert_int_equal(r.code, SPF_SOFTFAIL);
	assert_string_equal(r.explanation, "");
	/* no record */
	r = CHECK(z, "192.0.2.30", "a@mx.example.com");
	assert_int_equal(r.code, SPF_NONE);
	r = CHECK(z, "192.0.2.30", "a@nowhere.example.com");
	assert_int_equal(r.code, SPF_NONE);
	assert_string_equal(r.mechanism, "");
}

static void test_check_identities(void **state)
{
	static const struct rr z[] = {
		{ "helo.example.net", "TXT", "v=spf1 -all exp=e.example.net" },
		{ "e.example.net", "TXT", "%{l}@%{o} %{h}" },
		{ "example.org", "TXT", "v=spf1 -all exp=e.example.net" },
	};
	struct spf_request req = request("192.0.2.1", "", "helo.example.net");
	struct spf_result r;

	(void)state;
	/* null sender: postmaster@helo (2.4) */
	r = check_req(z, 3, &req);
	assert_int_equal(r.code, SPF_FAIL);
	assert_string_equal(r.domain, "helo.example.net");
	assert_string_equal(r.explanation, "postmaster@helo.example.net helo.example.net");
	/* HELO identity (2.3), whatever the sender */
	req.sender = "x@example.org";
	req.identity = SPF_HELO;
	r = check_req(z, 3, &req);
	assert_string_equal(r.domain, "helo.example.net");
	assert_string_equal(r.explanation, "postmaster@helo.example.net helo.example.net");
	/* no local part: postmaster (4.3) */
	req.identity = SPF_MAILFROM;
	req.sender = "@example.org";
	r = check_req(z, 3, &req);
	assert_string_equal(r.explanation, "postmaster@example.org helo.example.net");
	/* the local part is what is before the last '@' */
	req.sender = "\"a@b\"@example.org";
	r = check_req(z, 3, &req);
	assert_string_equal(r.explanation, "\"a@b\"@example.org helo.example.net");
	/* not a domain to check: none without a query */
	req.sender = "";
	req.helo = "[192.0.2.1]";
	r = check_req(z, 3, &req);
	assert_int_equal(r.code, SPF_NONE);
	req.helo = NULL;
	r = check_req(z, 3, &req);
	assert_int_equal(r.code, SPF_NONE);
	assert_string_equal(r.domain, "");
}

static void test_check_limits(void **state)
{
	static const struct rr z[] = {
		/* 10 lookups, then ip4: pass */
		{ "ten.example.com", "TXT",
		  "v=spf1 a mx a mx a mx include:one.example.com a:x.example.com a a ip4:192.0.2.1 -all" },
		{ "one.example.com", "TXT", "v=spf1 -all" },
		{ "x.example.com", "A", "127.0.0.2" },
		{ "ten.example.com", "A", "192.0.2.99" },
		{ "ten.example.com", "MX", "0 x.example.com" },
		/* the 11th is permerror before it is asked */
		{ "eleven.example.com", "TXT",
		  "v=spf1 a a a a a a a a a a a ip4:192.0.2.1 -all" },
		{ "eleven.example.com", "A", "192.0.2.99" },
		/* counted across include and redirect */
		{ "r1.example.com", "TXT", "v=spf1 a include:r2.example.com redirect=r3.example.com" },
		{ "r1.example.com", "A", "192.0.2.99" },
		{ "r2.example.com", "TXT", "v=spf1 a a a a a" },
		{ "r2.example.com", "A", "192.0.2.99" },
		{ "r3.example.com", "TXT", "v=spf1 a a a ip4:192.0.2.1" },
		{ "r3.example.com", "A", "192.0.2.99" },
		/* two void lookups are fine, the third is permerror */
		{ "void2.example.com", "TXT", "v=spf1 a:n1.example.com exists:n2.example.com ?all" },
		{ "void3.example.com", "TXT",
		  "v=spf1 a:n1.example.com exists:n2.example.com mx:n3.example.com ?all" },
		{ "n3.example.com", "A", "192.0.2.1" },		/* exists, but no MX: void */
		/* exp= lookups are not void lookups */
		{ "voidexp.example.com", "TXT",
		  "v=spf1 a:n1.example.com a:n2.example.com -all exp=n4.example.com" },
	};
	struct spf_result r;

	(void)state;
	r = CHECK(z, "192.0.2.1", "a@ten.example.com");
	assert_int_equal(r.code, SPF_PASS);
	assert_int_equal(r.lookups, 10);
	r = CHECK(z, "192.0.2.1", "a@eleven.example.com");
	assert_int_equal(r.code, SPF_PERMERROR);
	assert_int_equal(r.lookups, 10);
	assert_non_null(strstr(r.problem, "more than 10 DNS lookups"));
	r = CHECK(z, "192.0.2.1", "a@r1.example.com");	/* 1 + 1 + 5 + 1 (redirect) + 3 = 11 */
	assert_int_equal(r.code, SPF_PERMERROR);
	r = CHECK(z, "192.0.2.1", "a@void2.example.com");
	assert_int_equal(r.code, SPF_NEUTRAL);
	assert_int_equal(r.void_lookups, 2);
	r = CHECK(z, "192.0.2.1", "a@void3.example.com");
	assert_int_equal(r.code, SPF_PERMERROR);
	assert_non_null(strstr(r.problem, "void"));
	r = CHECK(z, "192.0.2.1", "a@voidexp.example.com");
	assert_int_equal(r.code, SPF_FAIL);
	assert_string_equal(r.explanation, "DEFAULT");
	assert_int_equal(r.void_lookups, 2);
}

static void test_check_mx_ptr_limits(void **state)
{
	static const struct rr z[] = {
		{ "mx10.example.com", "TXT", "v=spf1 mx -all" },
		{ "mx10.example.com", "MX", "0 h0.example.com" }, { "mx10.example.com", "MX", "1 h1.example.com" },
		{ "mx10.example.com", "MX", "2 h2.example.com" }, { "mx10.example.com", "MX", "3 h3.example.com" },
		{ "mx10.example.com", "MX", "4 h4.example.com" }, { "mx10.example.com", "MX", "5 h5.example.com" },
		{ "mx10.example.com", "MX", "6 h6.example.com" }, { "mx10.example.com", "MX", "7 h7.example.com" },
		{ "mx10.example.com", "MX", "8 h8.example.com" }, { "mx10.example.com", "MX", "9 h9.example.com" },
		{ "h9.example.com", "A", "192.0.2.9" },
		{ "mx11.example.com", "TXT", "v=spf1 mx -all" },
		{ "mx11.example.com", "MX", "0 h0.example.com" }, { "mx11.example.com", "MX", "1 h1.example.com" },
		{ "mx11.example.com", "MX", "2 h2.example.com" }, { "mx11.example.com", "MX", "3 h3.example.com" },
		{ "mx11.example.com", "MX", "4 h4.example.com" }, { "mx11.example.com", "MX", "5 h5.example.com" },
		{ "mx11.example.com", "MX", "6 h6.example.com" }, { "mx11.example.com", "MX", "7 h7.example.com" },
		{ "mx11.example.com", "MX", "8 h8.example.com" }, { "mx11.example.com", "MX", "9 h9.example.com" },
		{ "mx11.example.com", "MX", "10 h10.example.com" },
		/* 11 PTR names: the 11th is ignored (4.6.4) */
		{ "ptr.example.com", "TXT", "v=spf1 ptr -all" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "p1.example.org" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "p2.example.org" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "p3.example.org" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "p4.example.org" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "p5.example.org" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "p6.example.org" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "p7.example.org" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "p8.example.org" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "p9.example.org" },
		{ "9.2.0.192.in-addr.arpa", "PTR", "h9.example.com." },	/* 10th: validates */
		{ "9.2.0.192.in-addr.arpa", "PTR", "mx.ptr.example.com" },
		{ "mx.ptr.example.com", "A", "192.0.2.9" },
		{ "ptr2.example.com", "TXT", "v=spf1 ptr:example.com -all" },
		{ "ptr3.example.com", "TXT", "v=spf1 -ptr:%{p} +all" },
	};
	struct spf_result r;

	(void)state;
	r = CHECK(z, "192.0.2.9", "a@mx10.example.com");
	assert_int_equal(r.code, SPF_PASS);
	assert_string_equal(r.mechanism, "mx");
	r = CHECK(z, "192.0.2.9", "a@mx11.example.com");
	assert_int_equal(r.code, SPF_PERMERROR);
	assert_non_null(strstr(r.problem, "11 MX"));
	r = CHECK(z, "192.0.2.9", "a@ptr.example.com");
	assert_int_equal(r.code, SPF_FAIL);	/* mx.ptr.example.com is the 11th */
	assert_true(r.ptr_used);
	r = CHECK(z, "192.0.2.9", "a@ptr2.example.com");
	assert_int_equal(r.code, SPF_PASS);	/* h9.example.com, validated */
	r = CHECK(z, "192.0.2.9", "a@ptr3.example.com");
	assert_int_equal(r.code, SPF_FAIL);	/* %{p} = h9.example.com */
	assert_string_equal(r.mechanism, "-ptr:%{p}");
}

static void test_check_ipv6(void **state)
{
	static const struct rr z[] = {
		{ "v6.example.com", "TXT", "v=spf1 ip6:2001:db8::/32 ip6:2001:db9:8000::/33 -all" },
		{ "v6all.example.com", "TXT", "v=spf1 ip6:::/0 -all" },
		{ "v6a.example.com", "TXT", "v=spf1 a//64 a:v4.example.com/24 -all" },
		{ "v6a.example.com", "AAAA", "2001:db8:1:2::1" },
		{ "v6a.example.com", "A", "192.0.2.1" },
		{ "v4.example.com", "A", "198.51.100.1" },
		{ "v4.example.com", "AAAA", "::ffff:198.51.100.1" },
		{ "mapped.example.com", "TXT", "v=spf1 ip6:::ffff:0:0/96 ip4:198.51.100.0/24 -all" },
		{ "ex6.example.com", "TXT", "v=spf1 exists:%{ir}.%{v}.x.example.com -all" },
		{ "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.x.example.com", "A",
		  "127.0.0.2" },
	};
	struct spf_result r;

	(void)state;
	assert_int_equal(CHECK(z, "2001:db8:ffff::1", "a@v6.example.com").code, SPF_PASS);
	assert_int_equal(CHECK(z, "2001:db7:ffff::1", "a@v6.example.com").code, SPF_FAIL);
	assert_int_equal(CHECK(z, "2001:db9:8000::1", "a@v6.example.com").code, SPF_PASS);
	assert_int_equal(CHECK(z, "2001:db9:7fff::1", "a@v6.example.com").code, SPF_FAIL);
	assert_int_equal(CHECK(z, "::1", "a@v6all.example.com").code, SPF_PASS);
	assert_int_equal(CHECK(z, "192.0.2.1", "a@v6all.example.com").code, SPF_FAIL);
	/* a//64 asks AAAA for an IPv6 client and compares 64 bits */
	r = CHECK(z, "2001:db8:1:2:ffff::9", "a@v6a.example.com");
	assert_int_equal(r.code, SPF_PASS);
	assert_int_equal(CHECK(z, "2001:db8:1:3::1", "a@v6a.example.com").code, SPF_FAIL);
	/* the IPv4 cidr is for A only */
	assert_int_equal(CHECK(z, "198.51.100.77", "a@v6a.example.com").code, SPF_PASS);
	/* an IPv4-mapped client is IPv4: ip4 matches, ip6 never, AAAA never asked */
	r = CHECK(z, "::ffff:198.51.100.7", "a@mapped.example.com");
	assert_int_equal(r.code, SPF_PASS);
	assert_string_equal(r.mechanism, "ip4:198.51.100.0/24");
	assert_int_equal(CHECK(z, "::ffff:192.0.2.1", "a@v6a.example.com").code, SPF_PASS);
	/* %{ir} and %{v} for IPv6 */
	assert_int_equal(CHECK(z, "2001:db8::1", "a@ex6.example.com").code, SPF_PASS);
}

static void test_check_temperror(void **state)
{
	static const struct rr z[] = {
		{ "t.example.com", "TEMPFAIL", "" },
		{ "a.example.com", "TXT", "v=spf1 a:t.example.com -all" },
		{ "mx.example.com", "TXT", "v=spf1 mx:m.example.com -all" },
		{ "m.example.com", "MX", "0 ok.example.com" },
		{ "m.example.com", "MX", "1 t.example.com" },
		{ "ok.example.com", "A", "192.0.2.1" },
		{ "inc.example.com", "TXT", "v=spf1 include:t.example.com -all" },
		{ "ex.example.com", "TXT", "v=spf1 exists:t.example.com -all" },
		{ "ptr.example.com", "TXT", "v=spf1 ptr -all" },
		{ "1.2.0.192.in-addr.arpa", "TEMPFAIL", "" },
		{ "exp.example.com", "TXT", "v=spf1 -all exp=t.example.com" },
		{ "red.example.com", "TXT", "v=spf1 redirect=t.example.com" },
	};
	struct spf_result r;

	(void)state;
	r = CHECK(z, "192.0.2.1", "a@t.example.com");
	assert_int_equal(r.code, SPF_TEMPERROR);
	assert_non_null(strstr(r.problem, "TXT t.example.com"));
	assert_int_equal(CHECK(z, "192.0.2.1", "a@a.example.com").code, SPF_TEMPERROR);
	/* the first host matches before the second fails, as asking in turn would */
	assert_int_equal(CHECK(z, "192.0.2.1", "a@mx.example.com").code, SPF_PASS);
	assert_int_equal(CHECK(z, "192.0.2.2", "a@mx.example.com").code, SPF_TEMPERROR);
	assert_int_equal(CHECK(z, "192.0.2.1", "a@inc.example.com").code, SPF_TEMPERROR);
	assert_int_equal(CHECK(z, "192.0.2.1", "a@ex.example.com").code, SPF_TEMPERROR);
	assert_int_equal(CHECK(z, "192.0.2.1", "a@red.example.com").code, SPF_TEMPERROR);
	/* 5.5: a DNS error on PTR is no match */
	assert_int_equal(CHECK(z, "192.0.2.1", "a@ptr.example.com").code, SPF_FAIL);
	/* 6.2: a DNS error on exp= is the default explanation */
	r = CHECK(z, "192.0.2.1", "a@exp.example.com");
	assert_int_equal(r.code, SPF_FAIL);
	assert_string_equal(r.explanation, "DEFAULT");
}

static void test_provider_refuses(void **state)
{
	static const struct rr z[] = { { "example.com", "TXT", "v=spf1 +all" } };
	struct provider pv = { .refuse = true };
	struct spf_dns dns = { p_txt, p_addr, p_mx, p_ptr, &pv };
	struct spf_request req = request("192.0.2.1", "a@example.com", "h.example.com");
	struct outcome o = { 0 };
	struct spf *s;

	(void)state;
	zone = z;
	nzone = 1;
	s = spf_new(&dns, &req, on_done, &o);
	assert_non_null(s);
	spf_start(s);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.r.code, SPF_TEMPERROR);
	assert_non_null(strstr(o.r.problem, "could not ask"));
	spf_free(s);

	/* a provider without ptr: ptr never matches, %{p} is "unknown" */
	{
		static const struct rr z2[] = {
			{ "example.com", "TXT", "v=spf1 ptr -all exp=e.example.com" },
			{ "e.example.com", "TXT", "from %{p}" },
		};
		struct provider ok = { 0 };
		struct spf_dns noptr = { p_txt, p_addr, p_mx, NULL, &ok };

		zone = z2;
		nzone = 2;
		memset(&o, 0, sizeof o);
		s = spf_new(&noptr, &req, on_done, &o);
		spf_start(s);
		assert_int_equal(o.r.code, SPF_FAIL);
		assert_string_equal(o.r.explanation, "from unknown");
		spf_free(s);
	}
}

static void test_cancel(void **state)
{
	static const struct rr z[] = {
		{ "example.com", "TXT", "v=spf1 mx ptr -all" },
		{ "example.com", "MX", "0 a.example.com" },
		{ "example.com", "MX", "0 b.example.com" },
		{ "example.com", "MX", "0 c.example.com" },
	};
	struct spf_request req = request("192.0.2.1", "a@example.com", "h.example.com");

	(void)state;
	zone = z;
	nzone = 4;
	/* free after each number of answers; late answers are dropped (ASan watches) */
	for (unsigned cut = 0; cut < 8; cut++) {
		struct provider pv = { .defer = true };
		struct spf_dns dns = { p_txt, p_addr, p_mx, p_ptr, &pv };
		struct outcome o = { 0 };
		struct spf *s = spf_new(&dns, &req, on_done, &o);
		unsigned answered = 0;

		spf_start(s);
		while (pv.n > 0 && answered < cut && o.calls == 0) {
			struct pending p = pv.queue[--pv.n];

			answer(&p);
			answered++;
		}
		spf_free(s);
		while (pv.n > 0) {
			struct pending p = pv.queue[--pv.n];

			answer(&p);
		}
		assert_true(o.calls <= 1);
	}
	spf_free(NULL);
}

static void test_new_rejects(void **state)
{
	struct provider pv = { 0 };
	struct spf_dns dns = { p_txt, p_addr, p_mx, p_ptr, &pv };
	struct spf_request req = request("192.0.2.1", "a@example.com", "h.example.com");
	struct outcome o = { 0 };
	char big[SPF_INPUT_MAX + 2];

	(void)state;
	req.default_exp = "%{x}";
	errno = 0;
	assert_null(spf_new(&dns, &req, on_done, &o));
	assert_int_equal(errno, EINVAL);
	req.default_exp = NULL;
	req.helo = "a\r\nb";
	assert_null(spf_new(&dns, &req, on_done, &o));
	req.helo = "h.example.com";
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	req.sender = big;
	assert_null(spf_new(&dns, &req, on_done, &o));
	req.sender = "a@example.com";
	req.ip.ss_family = AF_UNIX;
	assert_null(spf_new(&dns, &req, on_done, &o));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(o.calls, 0);
	assert_string_equal(spf_result_name(SPF_SOFTFAIL), "softfail");
	assert_string_equal(spf_result_name(SPF_PERMERROR), "permerror");
}

static void test_explanation_safe(void **state)
{
	static const struct rr z[] = {
		{ "example.com", "TXT", "v=spf1 -all exp=e.example.com" },
		{ "e.example.com", "TXT", "%{l} is not welcome" },
		{ "two.example.com", "TXT", "v=spf1 -all exp=e2.example.com" },
		{ "e2.example.com", "TXT", "one" },
		{ "e2.example.com", "TXT", "two" },
		{ "long.example.com", "TXT", "v=spf1 -all exp=e3.example.com" },
		{ "e3.example.com", "TXT", "%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}%{s}" },
	};
	struct spf_request req = request("192.0.2.1", "caf\xc3\xa9@example.com", "h.example.com");
	struct spf_result r;

	(void)state;
	r = check_req(z, sizeof z / sizeof z[0], &req);
	assert_string_equal(r.explanation, "caf?? is not welcome");	/* printable ASCII only */
	req.sender = "a@two.example.com";
	req.default_exp = "%{d} does not allow %{i}";
	r = check_req(z, sizeof z / sizeof z[0], &req);
	assert_string_equal(r.explanation, "two.example.com does not allow 192.0.2.1");
	req.sender = "a@long.example.com";
	r = check_req(z, sizeof z / sizeof z[0], &req);
	assert_int_equal(strlen(r.explanation), SPF_EXPLANATION_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_valid),
		cmocka_unit_test(test_record_invalid),
		cmocka_unit_test(test_record_nul_and_length),
		cmocka_unit_test(test_record_terms),
		cmocka_unit_test(test_is_record),
		cmocka_unit_test(test_macro_rfc7208_7_4),
		cmocka_unit_test(test_macro_more),
		cmocka_unit_test(test_target_name),
		cmocka_unit_test(test_domain_valid),
		cmocka_unit_test(test_check_basic),
		cmocka_unit_test(test_check_identities),
		cmocka_unit_test(test_check_limits),
		cmocka_unit_test(test_check_mx_ptr_limits),
		cmocka_unit_test(test_check_ipv6),
		cmocka_unit_test(test_check_temperror),
		cmocka_unit_test(test_provider_refuses),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_new_rejects),
		cmocka_unit_test(test_explanation_safe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
