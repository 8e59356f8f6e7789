/*
 * test_dmarc.c - cmocka tests for mailauth/dmarc: the record parser (every
 * tag, bad values, case, white space, unknown tags, limits), the author
 * domain parser (including ../shared/testdata/messages/authored/from-*.eml),
 * the Organizational Domain against every case of
 * ../shared/testdata/dmarc/psl-tests/tests.txt, alignment, policy
 * selection and pct, discovery over a small zone in memory, the
 * asynchronous contract, and the report line.
 *
 * The PSL is Debian's publicsuffix package (pinned: 20230209.2326-1, the
 * version the psl-tests SOURCE.md checked); the vectors in tests.txt have
 * not changed since 2016 and hold for any later list.
 *
 * The YAML cases (tests/data/dmarc/cases.yml) run from
 * tests/integration/test_dmarc_cases.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc.h"

static struct dmarc_psl *psl;

static const char *testdata(void)
{
	const char *e = getenv("TERN_TESTDATA");

	return e != NULL ? e : "../shared/testdata";
}

/* ------------------------------------------------------------------ */
/* the record */

static int parse(const char *txt, struct dmarc_record *r, char *err)
{
	return dmarc_record_parse((const uint8_t *)txt, strlen(txt), r, err, 128);
}

static void test_record_full(void **state)
{
	struct dmarc_record r;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s; pct=30; "
			       "ri=3600; rua=mailto:agg@example.org; ruf=mailto:f@example.org!10m; "
			       "fo=1:d; rf=afrf", &r, err), 1);
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
	assert_int_equal(r.sp, DMARC_POLICY_QUARANTINE);
	assert_true(r.sp_given);
	assert_false(r.p_forced);
	assert_int_equal(r.adkim, DMARC_ALIGN_STRICT);
	assert_int_equal(r.aspf, DMARC_ALIGN_STRICT);
	assert_int_equal(r.pct, 30);
	assert_int_equal(r.ri, 3600);
	assert_string_equal(r.rua, "mailto:agg@example.org");
	assert_string_equal(r.ruf, "mailto:f@example.org!10m");
	assert_string_equal(r.fo, "1:d");
	assert_string_equal(r.rf, "afrf");
	assert_string_equal(r.warnings, "");
}

static void test_record_defaults(void **state)
{
	struct dmarc_record r;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=DMARC1; p=quarantine", &r, err), 1);
	assert_int_equal(r.p, DMARC_POLICY_QUARANTINE);
	assert_int_equal(r.sp, DMARC_POLICY_QUARANTINE);	/* sp defaults to p (6.3) */
	assert_false(r.sp_given);
	assert_int_equal(r.adkim, DMARC_ALIGN_RELAXED);
	assert_int_equal(r.aspf, DMARC_ALIGN_RELAXED);
	assert_int_equal(r.pct, 100);
	assert_int_equal(r.ri, 86400);
	assert_string_equal(r.fo, "0");
	assert_string_equal(r.rf, "afrf");
	assert_string_equal(r.rua, "");
	assert_string_equal(r.ruf, "");
}

static void test_record_case_and_space(void **state)
{
	struct dmarc_record r;
	char err[128];

	(void)state;
	/* tag names and keyword values without case; WSP around everything */
	assert_int_equal(parse("  V = DMARC1 ;\tP = REJECT ; SP=None;ADKIM=S;  AsPf = s ; PCT = 5 ;", &r, err), 1);
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
	assert_int_equal(r.sp, DMARC_POLICY_NONE);
	assert_int_equal(r.adkim, DMARC_ALIGN_STRICT);
	assert_int_equal(r.aspf, DMARC_ALIGN_STRICT);
	assert_int_equal(r.pct, 5);
	/* empty tag-specs and a trailing ';' are tolerated */
	assert_int_equal(parse("v=DMARC1;;; p=none;;", &r, err), 1);
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	/* the version value is case sensitive (6.4: %x44.4d.41.52.43.31) */
	assert_int_equal(parse("v=dmarc1; p=reject", &r, err), 0);
	assert_int_equal(parse("v=Dmarc1; p=reject", &r, err), 0);
}

static void test_record_not_dmarc(void **state)
{
	static const char *no[] = {
		"", " ", ";", "v=spf1 -all", "p=reject; v=DMARC1", "v=DMARC2; p=reject",
		"v=DMARC1 p=reject", "v=DMARC10; p=reject", "v=DMARC; p=reject", "v DMARC1; p=none",
		"vv=DMARC1; p=none", "; v=DMARC1; p=none", "v=\"DMARC1\"; p=none", "v=DMARC1x",
		"google-site-verification=abc",
	};
	struct dmarc_record r;
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		if (parse(no[i], &r, err) != 0)
			fail_msg("a DMARC record: %s", no[i]);
	}
	assert_int_equal(dmarc_record_parse(NULL, 0, &r, err, sizeof err), 0);
	/* a NUL after the version: the value is not DMARC1 */
	assert_int_equal(dmarc_record_parse((const uint8_t *)"v=DMARC1\0;p=none", 16, &r, err,
					    sizeof err), 0);
}

static void test_record_p(void **state)
{
	struct dmarc_record r;
	char err[128];

	(void)state;
	/* 6.6.3 step 6: no or bad p without rua: unusable */
	assert_int_equal(parse("v=DMARC1", &r, err), -1);
	assert_non_null(strstr(err, "no p="));
	assert_int_equal(parse("v=DMARC1;", &r, err), -1);
	assert_int_equal(parse("v=DMARC1; p=bogus", &r, err), -1);
	assert_non_null(strstr(err, "bogus"));
	assert_int_equal(parse("v=DMARC1; p=", &r, err), -1);
	assert_int_equal(parse("v=DMARC1; p=reject; sp=bogus", &r, err), -1);
	assert_non_null(strstr(err, "sp="));
	assert_int_equal(parse("v=DMARC1; p=reject; rua=nonsense", &r, err), 1);	/* p is fine */
	assert_int_equal(parse("v=DMARC1; p=bad; rua=nonsense", &r, err), -1);	/* no valid URI */
	/* ... with a valid rua: as p=none */
	assert_int_equal(parse("v=DMARC1; rua=mailto:a@example.org", &r, err), 1);
	assert_true(r.p_forced);
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_int_equal(r.sp, DMARC_POLICY_NONE);
	assert_int_equal(parse("v=DMARC1; p=rejectt; adkim=s; rua=mailto:a@example.org", &r, err), 1);
	assert_true(r.p_forced);
	assert_int_equal(r.adkim, DMARC_ALIGN_STRICT);	/* the rest as published */
	assert_int_equal(parse("v=DMARC1; p=reject; sp=x; rua=mailto:a@example.org", &r, err), 1);
	assert_true(r.p_forced);
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_false(r.sp_given);
	/* p anywhere after v */
	assert_int_equal(parse("v=DMARC1; pct=50; p=reject", &r, err), 1);
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
	/* repeated: the first counts */
	assert_int_equal(parse("v=DMARC1; p=none; p=reject", &r, err), 1);
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_non_null(strstr(r.warnings, "repeated"));
	assert_int_equal(parse("v=DMARC1; p=bad; p=reject", &r, err), -1);
	/* a second v= is ignored */
	assert_int_equal(parse("v=DMARC1; v=DMARC1; p=reject", &r, err), 1);
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
}

static void test_record_bad_values(void **state)
{
	static const struct {
		const char *txt;
		const char *warn;
	} cases[] = {
		{ "v=DMARC1; p=reject; adkim=x", "adkim=" },
		{ "v=DMARC1; p=reject; adkim=", "adkim=" },
		{ "v=DMARC1; p=reject; aspf=relaxed", "aspf=" },
		{ "v=DMARC1; p=reject; pct=101", "pct=" },
		{ "v=DMARC1; p=reject; pct=-1", "pct=" },
		{ "v=DMARC1; p=reject; pct=1000", "pct=" },
		{ "v=DMARC1; p=reject; pct=0100", "pct=" },	/* 1*3DIGIT */
		{ "v=DMARC1; p=reject; pct=50.5", "pct=" },
		{ "v=DMARC1; p=reject; pct=", "pct=" },
		{ "v=DMARC1; p=reject; ri=4294967296", "ri=" },
		{ "v=DMARC1; p=reject; ri=1h", "ri=" },
		{ "v=DMARC1; p=reject; rua=", "rua=" },
		{ "v=DMARC1; p=reject; rua=agg@example.org", "rua=" },
		{ "v=DMARC1; p=reject; rua=mailto:", "rua=" },
		{ "v=DMARC1; p=reject; ruf=:x", "ruf=" },
		{ "v=DMARC1; p=reject; rua=mailto:a b@example.org", "rua=" },
		{ "v=DMARC1; p=reject; fo=2", "fo=" },
		{ "v=DMARC1; p=reject; fo=0::1", "fo=" },
		{ "v=DMARC1; p=reject; fo=", "fo=" },
		{ "v=DMARC1; p=reject; rf=1x", "rf=" },
		{ "v=DMARC1; p=reject; rf=afrf:", "rf=" },
		{ "v=DMARC1; p=reject; 1x=y", "bad tag-spec" },
		{ "v=DMARC1; p=reject; novalue", "bad tag-spec" },
	};
	struct dmarc_record r;
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (parse(cases[i].txt, &r, err) != 1)
			fail_msg("not usable: %s (%s)", cases[i].txt, err);
		if (r.p != DMARC_POLICY_REJECT || r.pct != 100 || r.ri != 86400 ||
		    r.adkim != DMARC_ALIGN_RELAXED || r.aspf != DMARC_ALIGN_RELAXED ||
		    strcmp(r.fo, "0") != 0 || strcmp(r.rf, "afrf") != 0 || r.rua[0] != '\0' ||
		    r.ruf[0] != '\0')
			fail_msg("default not kept: %s", cases[i].txt);
		if (strstr(r.warnings, cases[i].warn) == NULL)
			fail_msg("no warning %s for %s: \"%s\"", cases[i].warn, cases[i].txt, r.warnings);
	}
}

static void test_record_values(void **state)
{
	struct dmarc_record r;
	char err[128];

	(void)state;
	assert_int_equal(parse("v=DMARC1; p=none; pct=0", &r, err), 1);
	assert_int_equal(r.pct, 0);
	assert_int_equal(parse("v=DMARC1; p=none; pct=100", &r, err), 1);
	assert_int_equal(r.pct, 100);
	assert_int_equal(parse("v=DMARC1; p=none; pct=007", &r, err), 1);
	assert_int_equal(r.pct, 7);
	assert_int_equal(parse("v=DMARC1; p=none; ri=4294967295", &r, err), 1);
	assert_int_equal(r.ri, 4294967295ul);
	assert_int_equal(parse("v=DMARC1; p=none; ri=0", &r, err), 1);
	assert_int_equal(r.ri, 0);
	/* URI lists: WSP around commas, size suffixes, one bad URI among good ones */
	assert_int_equal(parse("v=DMARC1; p=none; rua=mailto:a@example.org!10m , mailto:b@example.net!5", &r, err), 1);
	assert_string_equal(r.rua, "mailto:a@example.org!10m , mailto:b@example.net!5");
	assert_string_equal(r.warnings, "");
	assert_int_equal(parse("v=DMARC1; p=none; rua=https://example.org/r?a=%20b!2g", &r, err), 1);
	assert_string_equal(r.rua, "https://example.org/r?a=%20b!2g");
	assert_int_equal(parse("v=DMARC1; p=none; rua=mailto:a@example.org,bad", &r, err), 1);
	assert_string_equal(r.rua, "mailto:a@example.org,bad");
	assert_non_null(strstr(r.warnings, "bad URI"));
	assert_int_equal(parse("v=DMARC1; p=none; rua=mailto:a@example.org!x", &r, err), 1);	/* '!' is a URI character */
	assert_int_equal(parse("v=DMARC1; p=none; rua=mailto:a%2x@example.org", &r, err), 1);
	assert_string_equal(r.rua, "");
	assert_int_equal(parse("v=DMARC1; p=none; fo=0 : 1 : D : s; rf=afrf:iodef", &r, err), 1);
	assert_string_equal(r.fo, "0 : 1 : D : s");
	assert_string_equal(r.rf, "afrf:iodef");
	/* unknown tags, even with odd values, are ignored (6.3) */
	assert_int_equal(parse("v=DMARC1; p=reject; foo=bar; np=reject; t=y; psd=n", &r, err), 1);
	assert_string_equal(r.warnings, "");
}

static void test_record_limits(void **state)
{
	struct dmarc_record r;
	char err[128];
	char *big = malloc(DMARC_RECORD_MAX + 64);
	size_t n;

	(void)state;
	assert_non_null(big);
	/* a rua value over DMARC_URIS_MAX: ignored, so p stays */
	n = (size_t)snprintf(big, 64, "v=DMARC1; p=reject; rua=mailto:");
	memset(big + n, 'a', DMARC_URIS_MAX);
	memcpy(big + n + DMARC_URIS_MAX, "@example.org", 13);
	assert_int_equal(parse(big, &r, err), 1);
	assert_string_equal(r.rua, "");
	assert_non_null(strstr(r.warnings, "too long"));
	/* a record over DMARC_RECORD_MAX: unusable */
	n = (size_t)snprintf(big, 64, "v=DMARC1; p=reject; x=");
	memset(big + n, 'a', DMARC_RECORD_MAX);
	big[n + DMARC_RECORD_MAX] = '\0';
	assert_int_equal(parse(big, &r, err), -1);
	assert_non_null(strstr(err, "longer"));
	/* not a DMARC record at any length */
	big[0] = 'x';
	assert_int_equal(parse(big, &r, err), 0);
	/* many warnings: bounded */
	n = (size_t)snprintf(big, 64, "v=DMARC1; p=reject");
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(big + n, 16, ";1=%d", i);
	assert_int_equal(parse(big, &r, err), 1);
	assert_true(strlen(r.warnings) < sizeof r.warnings);
	free(big);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(dmarc_result_name(DMARC_NONE), "none");
	assert_string_equal(dmarc_result_name(DMARC_PASS), "pass");
	assert_string_equal(dmarc_result_name(DMARC_FAIL), "fail");
	assert_string_equal(dmarc_result_name(DMARC_TEMPERROR), "temperror");
	assert_string_equal(dmarc_result_name(DMARC_PERMERROR), "permerror");
	assert_string_equal(dmarc_policy_name(DMARC_POLICY_NONE), "none");
	assert_string_equal(dmarc_policy_name(DMARC_POLICY_QUARANTINE), "quarantine");
	assert_string_equal(dmarc_policy_name(DMARC_POLICY_REJECT), "reject");
}

/* ------------------------------------------------------------------ */
/* the author domain */

static int author1(const char *body, char *out, char *err)
{
	struct slice v = { (const uint8_t *)body, strlen(body) };

	return dmarc_author_domain(&v, 1, out, err, 128);
}

static void test_author_ok(void **state)
{
	static const struct {
		const char *body, *domain;
	} ok[] = {
		{ " alice@example.org", "example.org" },
		{ "alice@Example.ORG.", "example.org" },
		{ " Alice <alice@example.org>", "example.org" },
		{ " <alice@example.org>", "example.org" },
		{ " \"Alice Liddell\" <alice@example.org>", "example.org" },
		{ " \"alice@bank.example\" <mallory@evil.example>", "evil.example" },
		{ " \"a\\\"b@bank.example\" <m@evil.example>", "evil.example" },
		{ " (alice@bank.example) mallory@evil.example", "evil.example" },
		{ " mallory@evil.example (alice@bank.example)", "evil.example" },
		{ " (a (nested (comment) @x.example) here) <m@evil.example> (c)", "evil.example" },
		{ " =?utf-8?q?Al=C3=AFce?= <alice@example.org>", "example.org" },
		{ " =?utf-8?b?QWxpY2U=?= <alice@example.org>", "example.org" },
		{ " John Q. Public <jqp@example.org>", "example.org" },		/* obs-phrase */
		{ " Alice\r\n <alice@example.org>", "example.org" },		/* folded */
		{ " Alice <alice\r\n\t@ example . org >", "example.org" },	/* obs-domain CFWS */
		{ " Alice <@relay.example,@r2.example:alice@example.org>", "example.org" }, /* obs-route */
		{ " \"a.b\"@example.org", "example.org" },
		{ " a.b.c@example.org", "example.org" },
		{ " a . b @ example.org", "example.org" },			/* obs-local-part */
		{ " john..doe@example.org", "example.org" },
		{ " a@example.org, b@EXAMPLE.org", "example.org" },		/* same domain twice */
		{ " , a@example.org ,, ", "example.org" },			/* obs-mbox-list */
		{ " Friends: a@example.org, <b@example.org>;", "example.org" },	/* group */
		{ " Empty:; , c@example.org", "example.org" },
		{ " a@sub.example.org", "sub.example.org" },
		{ " a@_x.example.org", "_x.example.org" },
		{ " a@xn--bcher-kva.example", "xn--bcher-kva.example" },
		{ " a@b\xc3\xbc" "cher.example", "b\xc3\xbc" "cher.example" },	/* UTF-8 kept */
		{ " \xc3\x84lice <a@example.org>", "example.org" },		/* UTF-8 name (RFC 6532) */
		{ "a@example.org", "example.org" },
	};
	char out[DMARC_DOMAIN_MAX + 1], err[128];

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		if (author1(ok[i].body, out, err) != 0)
			fail_msg("refused: [%s]: %s", ok[i].body, err);
		if (strcmp(out, ok[i].domain) != 0)
			fail_msg("[%s]: got %s, want %s", ok[i].body, out, ok[i].domain);
	}
}

static void test_author_bad(void **state)
{
	static const struct {
		const char *body, *why;
	} bad[] = {
		{ "", "no mailbox" },
		{ "   \r\n ", "no mailbox" },
		{ " undisclosed-recipients:;", "no mailbox" },
		{ " a@x.example, b@y.example", "different domains" },
		{ " A <a@x.example>, B <b@sub.x.example>", "different domains" },
		{ " G: a@x.example;, b@y.example", "different domains" },
		{ " alice", "without '@'" },
		{ " alice@", "no domain" },
		{ " @example.org", "no local part" },
		{ " alice@[192.0.2.1]", "domain literal" },
		{ " <>", "empty angle" },
		{ " Alice <alice@example.org", "not closed" },
		{ " Alice <alice@example.org> trailing", "text after" },
		{ " alice@example.org bob", "text after" },
		{ " alice@bank.example <m@evil.example>", "" },	/* '@' in an unquoted name */
		{ " \"unterminated <a@example.org>", "unterminated quoted" },
		{ " (unterminated a@example.org", "unterminated comment" },
		{ " a) a@example.org", "unbalanced" },
		{ " a@exa mple.org", "text after" },
		{ " a@example..org", "" },
		{ " a@.example.org", "no domain" },
		{ " a@example.org..", "" },
		{ " a@exa!mple.org", "holds" },
		{ " a@exa\x01mple.org", "" },
		{ " a@b\xc3.example", "UTF-8" },
		{ " G: H: a@example.org;;", "group inside" },
		{ " G: a@example.org", "not closed" },
		{ " <a@example.org>>", "" },
		{ " a@example.org\\", "" },
		{ " Alice <@r.example alice@example.org>", "route" },
	};
	char out[DMARC_DOMAIN_MAX + 1], err[128];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (author1(bad[i].body, out, err) != -1)
			fail_msg("accepted: [%s] -> %s", bad[i].body, out);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("[%s]: error \"%s\" lacks \"%s\"", bad[i].body, err, bad[i].why);
		if (out[0] != '\0')
			fail_msg("[%s]: out set on failure", bad[i].body);
	}
}

static void test_author_limits(void **state)
{
	char out[DMARC_DOMAIN_MAX + 1], err[128];
	char *big = malloc(DMARC_FROM_MAX + 600);
	struct slice v[2];
	size_t n;

	(void)state;
	assert_non_null(big);
	assert_int_equal(dmarc_author_domain(NULL, 0, out, err, sizeof err), -1);
	assert_non_null(strstr(err, "no From"));
	v[0] = slice_from_str(" a@example.org");
	v[1] = slice_from_str(" a@example.org");
	assert_int_equal(dmarc_author_domain(v, 2, out, err, sizeof err), -1);
	assert_non_null(strstr(err, "2 From fields"));
	/* a label of 64 octets; a domain of 254 octets; 253 is fine */
	n = (size_t)snprintf(big, 16, "a@");
	memset(big + n, 'x', 64);
	memcpy(big + n + 64, ".example", 9);
	assert_int_equal(author1(big, out, err), -1);
	n = (size_t)snprintf(big, 16, "a@");
	for (int i = 0; i < 4; i++) {
		memset(big + n, 'x', 62);
		n += 62;
		big[n++] = '.';
	}
	memcpy(big + n, "exampl", 7);	/* 4*63 + 6 = 258 */
	assert_int_equal(author1(big, out, err), -1);
	assert_non_null(strstr(err, "longer"));
	memcpy(big + n, "e", 2);	/* 4*63 + 1 = 253 */
	assert_int_equal(author1(big, out, err), 0);
	assert_int_equal(strlen(out), 253);
	/* too long a body; deep comments are fine (no recursion) */
	memset(big, '(', DMARC_FROM_MAX + 1);
	v[0] = (struct slice){ (const uint8_t *)big, DMARC_FROM_MAX + 1 };
	assert_int_equal(dmarc_author_domain(v, 1, out, err, sizeof err), -1);
	assert_non_null(strstr(err, "longer"));
	memset(big, '(', 5000);
	memset(big + 5000, ')', 5000);
	memcpy(big + 10000, " a@example.org", 15);
	assert_int_equal(author1(big, out, err), 0);
	assert_string_equal(out, "example.org");
	/* the input is read through its length only: no NUL needed after it */
	memcpy(big, " a@example.orgXXXX", 18);
	v[0] = (struct slice){ (const uint8_t *)big, 14 };
	assert_int_equal(dmarc_author_domain(v, 1, out, err, sizeof err), 0);
	assert_string_equal(out, "example.org");
	/* a NUL inside is refused */
	v[0] = (struct slice){ (const uint8_t *)" a@exa\0mple.org", 15 };
	assert_int_equal(dmarc_author_domain(v, 1, out, err, sizeof err), -1);
	free(big);
}

/* The bodies of the From fields of a message file (header unfolded by the parser itself). */
static size_t from_fields(const char *path, char **buf, struct slice *v, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t len, n = 0, pos = 0;

	if (f == NULL)
		fail_msg("cannot open %s (set TERN_TESTDATA to ../shared/testdata)", path);
	*buf = malloc(1 << 16);
	assert_non_null(*buf);
	len = fread(*buf, 1, (1 << 16) - 1, f);
	fclose(f);
	(*buf)[len] = '\0';
	while (pos < len) {
		size_t end = pos;
		char *line = *buf + pos;

		if (len - pos >= 2 && line[0] == '\r' && line[1] == '\n')
			break;		/* the end of the header */
		/* a field runs to the CR LF not followed by WSP (RFC 5322 2.2.3) */
		for (;;) {
			char *crlf = strstr(*buf + end, "\r\n");

			if (crlf == NULL) {
				end = len;
				break;
			}
			end = (size_t)(crlf - *buf) + 2;
			if (end >= len || ((*buf)[end] != ' ' && (*buf)[end] != '\t'))
				break;
		}
		if (strncasecmp(line, "From:", 5) == 0 && n < cap) {
			v[n].p = (const uint8_t *)line + 5;
			v[n].len = end - pos - 5 - 2;	/* without the final CR LF */
			n++;
		}
		pos = end;
	}
	return n;
}

static void test_author_files(void **state)
{
	static const struct {
		const char *file, *domain, *why;
	} files[] = {
		{ "from-group-empty.eml", NULL, "no mailbox" },
		{ "from-missing.eml", NULL, "no From field" },
		{ "from-tricky-display-name.eml", "attacker.example", NULL },
		{ "from-two-header-fields.eml", NULL, "2 From fields" },
		{ "from-two-mailboxes.eml", NULL, "different domains" },
		{ "from-uppercase-trailing-dot.eml", "sender.example", NULL },
	};
	char out[DMARC_DOMAIN_MAX + 1], err[128], path[512];

	(void)state;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct slice v[4];
		char *buf;
		size_t n;
		int rc;

		snprintf(path, sizeof path, "%s/messages/authored/%s", testdata(), files[i].file);
		n = from_fields(path, &buf, v, 4);
		rc = dmarc_author_domain(v, n, out, err, sizeof err);
		if (files[i].domain != NULL) {
			if (rc != 0 || strcmp(out, files[i].domain) != 0)
				fail_msg("%s: rc %d, %s (%s)", files[i].file, rc, out, err);
		} else if (rc != -1 || strstr(err, files[i].why) == NULL) {
			fail_msg("%s: rc %d, err %s", files[i].file, rc, err);
		}
		free(buf);
	}
}

/* ------------------------------------------------------------------ */
/* the Organizational Domain */

static void test_psl_vectors(void **state)
{
	char path[512], line[512], out[DMARC_DOMAIN_MAX + 1];
	FILE *f;
	unsigned cases = 0;

	(void)state;
	snprintf(path, sizeof path, "%s/dmarc/psl-tests/tests.txt", testdata());
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot open %s (set TERN_TESTDATA to ../shared/testdata)", path);
	while (fgets(line, sizeof line, f) != NULL) {
		char in[256], want[256];
		int rc;

		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || strncmp(line, "//", 2) == 0)
			continue;	/* comments: the 4 "local" cases are commented out upstream */
		if (sscanf(line, "%255s %255s", in, want) != 2)
			fail_msg("bad line: %s", line);
		/* "null" as input stands for a null pointer */
		rc = dmarc_org_domain(psl, strcmp(in, "null") == 0 ? NULL : in, out, sizeof out);
		if (strcmp(want, "null") == 0) {
			if (rc != -1)
				fail_msg("%s: got %s, want none", in, out);
		} else if (rc != 0 || strcmp(out, want) != 0) {
			fail_msg("%s: got %s (rc %d), want %s", in, rc == 0 ? out : "none", rc, want);
		}
		cases++;
	}
	fclose(f);
	assert_int_equal(cases, 78);	/* every active case of the file */
}

static void test_org_domain_more(void **state)
{
	char out[DMARC_DOMAIN_MAX + 1];

	(void)state;
	assert_int_equal(dmarc_org_domain(psl, "Mail.Example.COM.", out, sizeof out), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(dmarc_org_domain(psl, "a.b.example.co.uk", out, sizeof out), 0);
	assert_string_equal(out, "example.co.uk");
	assert_int_equal(dmarc_org_domain(psl, "co.uk", out, sizeof out), -1);
	assert_int_equal(dmarc_org_domain(psl, "", out, sizeof out), -1);
	assert_int_equal(dmarc_org_domain(psl, ".", out, sizeof out), -1);
	assert_int_equal(dmarc_org_domain(psl, "a..example.com", out, sizeof out), -1);
	assert_int_equal(dmarc_org_domain(psl, "example.com..", out, sizeof out), -1);
	assert_int_equal(dmarc_org_domain(psl, "a b.example.com", out, sizeof out), -1);
	assert_int_equal(dmarc_org_domain(psl, "example.com", out, 5), -1);	/* no room */
	assert_int_equal(dmarc_org_domain(NULL, "example.com", out, sizeof out), -1);
	assert_int_equal(dmarc_org_domain(psl, "\xff\xfe.example.com", out, sizeof out) <= 0, 1);
}

static void test_psl_load(void **state)
{
	char err[128];
	struct dmarc_psl *p;

	(void)state;
	assert_null(dmarc_psl_load("/nonexistent/psl.dat", err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent/psl.dat"));
	p = dmarc_psl_load("/usr/share/publicsuffix/public_suffix_list.dat", err, sizeof err);
	assert_non_null(p);
	dmarc_psl_free(p);
	dmarc_psl_free(NULL);
}

/* ------------------------------------------------------------------ */
/* alignment (3.1) */

static void test_alignment(void **state)
{
	(void)state;
	/* strict: equal without case and trailing dot */
	assert_true(dmarc_aligned(psl, "example.com", "EXAMPLE.com.", DMARC_ALIGN_STRICT));
	assert_false(dmarc_aligned(psl, "mail.example.com", "example.com", DMARC_ALIGN_STRICT));
	/* relaxed: same Organizational Domain, in either direction */
	assert_true(dmarc_aligned(psl, "mail.example.com", "example.com", DMARC_ALIGN_RELAXED));
	assert_true(dmarc_aligned(psl, "example.com", "news.example.com", DMARC_ALIGN_RELAXED));
	assert_true(dmarc_aligned(psl, "a.example.com", "b.example.com", DMARC_ALIGN_RELAXED));
	assert_false(dmarc_aligned(psl, "example.net", "example.com", DMARC_ALIGN_RELAXED));
	assert_false(dmarc_aligned(psl, "example.co.uk", "other.co.uk", DMARC_ALIGN_RELAXED));
	assert_true(dmarc_aligned(psl, "x.example.co.uk", "example.co.uk", DMARC_ALIGN_RELAXED));
	/* a public suffix aligns only with itself */
	assert_false(dmarc_aligned(psl, "co.uk", "example.co.uk", DMARC_ALIGN_RELAXED));
	assert_false(dmarc_aligned(psl, "com", "example.com", DMARC_ALIGN_RELAXED));
	assert_true(dmarc_aligned(psl, "com", "COM", DMARC_ALIGN_RELAXED));
	/* wildcard rules: *.ck, !www.ck */
	assert_false(dmarc_aligned(psl, "a.test.ck", "b.test.ck", DMARC_ALIGN_RELAXED));
	assert_true(dmarc_aligned(psl, "a.b.test.ck", "b.test.ck", DMARC_ALIGN_RELAXED));
	assert_true(dmarc_aligned(psl, "www.www.ck", "www.ck", DMARC_ALIGN_RELAXED));
	/* empty or NULL never aligns */
	assert_false(dmarc_aligned(psl, "", "example.com", DMARC_ALIGN_RELAXED));
	assert_false(dmarc_aligned(psl, NULL, "example.com", DMARC_ALIGN_RELAXED));
	assert_false(dmarc_aligned(psl, ".", ".", DMARC_ALIGN_STRICT));
}

/* ------------------------------------------------------------------ */
/* evaluation without DNS: policy selection, pct, results */

static struct dmarc_result eval(const char *txt, const char *record_domain, const char *from,
				const char *spf_domain, enum spf_result_code spf,
				const struct dmarc_dkim_in *dkim, size_t ndkim, unsigned sample)
{
	struct dmarc_request req = { .from_domain = from, .spf_domain = spf_domain, .spf = spf,
				     .dkim = dkim, .ndkim = ndkim, .sample = sample };
	struct dmarc_record rec;
	struct dmarc_result res;
	char err[128];

	memset(&res, 0, sizeof res);
	snprintf(res.from_domain, sizeof res.from_domain, "%s", from);
	if (dmarc_org_domain(psl, from, res.org_domain, sizeof res.org_domain) != 0)
		snprintf(res.org_domain, sizeof res.org_domain, "%s", from);
	if (txt != NULL)
		assert_int_equal(dmarc_record_parse((const uint8_t *)txt, strlen(txt), &rec, err, sizeof err), 1);
	dmarc_evaluate(psl, &req, txt != NULL ? &rec : NULL, record_domain, &res);
	return res;
}

static void test_evaluate(void **state)
{
	const struct dmarc_dkim_in sigs[] = {
		{ "other.example", "s1", DKIM_PASS },
		{ "mail.example.com", "s2", DKIM_FAIL },
		{ "example.com", "s3", DKIM_PASS },
	};
	const struct dmarc_dkim_in temp[] = { { "example.com", "s", DKIM_TEMPERROR } };
	const struct dmarc_dkim_in sub[] = { { "mail.example.com", "s", DKIM_PASS } };
	struct dmarc_result r;

	(void)state;
	r = eval(NULL, "", "example.com", "example.com", SPF_PASS, NULL, 0, 0);
	assert_int_equal(r.code, DMARC_NONE);
	assert_false(r.have_record);
	assert_false(r.spf_aligned);
	/* SPF alone */
	r = eval("v=DMARC1; p=reject", "example.com", "example.com", "bounce.example.com", SPF_PASS, NULL, 0, 0);
	assert_int_equal(r.code, DMARC_PASS);
	assert_true(r.spf_aligned);
	assert_int_equal(r.disposition, DMARC_POLICY_NONE);
	r = eval("v=DMARC1; p=reject; aspf=s", "example.com", "example.com", "bounce.example.com", SPF_PASS, NULL, 0, 0);
	assert_int_equal(r.code, DMARC_FAIL);
	assert_int_equal(r.disposition, DMARC_POLICY_REJECT);
	assert_non_null(strstr(r.problem, "example.com"));
	r = eval("v=DMARC1; p=reject", "example.com", "example.com", "example.com", SPF_SOFTFAIL, NULL, 0, 0);
	assert_int_equal(r.code, DMARC_FAIL);
	r = eval("v=DMARC1; p=reject", "example.com", "example.com", "", SPF_PASS, NULL, 0, 0);
	assert_int_equal(r.code, DMARC_FAIL);
	/* DKIM: the first aligned passing signature */
	r = eval("v=DMARC1; p=reject", "example.com", "example.com", "x.example", SPF_PASS, sigs, 3, 0);
	assert_int_equal(r.code, DMARC_PASS);
	assert_true(r.dkim_aligned);
	assert_false(r.spf_aligned);
	assert_int_equal(r.dkim_index, 2);
	r = eval("v=DMARC1; p=reject; adkim=s", "example.com", "example.com", NULL, SPF_NONE, sub, 1, 0);
	assert_int_equal(r.code, DMARC_FAIL);
	assert_int_equal(r.dkim_index, -1);
	r = eval("v=DMARC1; p=reject", "example.com", "example.com", NULL, SPF_NONE, sub, 1, 0);
	assert_int_equal(r.code, DMARC_PASS);
	assert_int_equal(r.dkim_index, 0);
	/* temperror on an aligned identifier, nothing passed */
	r = eval("v=DMARC1; p=reject", "example.com", "example.com", "example.com", SPF_TEMPERROR, NULL, 0, 0);
	assert_int_equal(r.code, DMARC_TEMPERROR);
	assert_int_equal(r.disposition, DMARC_POLICY_NONE);
	r = eval("v=DMARC1; p=reject", "example.com", "example.com", "other.example", SPF_TEMPERROR, NULL, 0, 0);
	assert_int_equal(r.code, DMARC_FAIL);	/* not aligned: no matter */
	r = eval("v=DMARC1; p=reject", "example.com", "example.com", "", SPF_NONE, temp, 1, 0);
	assert_int_equal(r.code, DMARC_TEMPERROR);
	r = eval("v=DMARC1; p=reject", "example.com", "example.com", "example.com", SPF_PASS, temp, 1, 0);
	assert_int_equal(r.code, DMARC_PASS);	/* a pass wins */
	/* policy: sp for a subdomain when the record is the org domain's */
	r = eval("v=DMARC1; p=reject; sp=quarantine", "example.com", "a.example.com", "", SPF_NONE, NULL, 0, 0);
	assert_true(r.subdomain_policy);
	assert_int_equal(r.policy, DMARC_POLICY_QUARANTINE);
	assert_int_equal(r.disposition, DMARC_POLICY_QUARANTINE);
	r = eval("v=DMARC1; p=reject; sp=quarantine", "a.example.com", "a.example.com", "", SPF_NONE, NULL, 0, 0);
	assert_false(r.subdomain_policy);
	assert_int_equal(r.policy, DMARC_POLICY_REJECT);
	r = eval("v=DMARC1; p=quarantine", "example.com", "a.example.com", "", SPF_NONE, NULL, 0, 0);
	assert_int_equal(r.policy, DMARC_POLICY_QUARANTINE);	/* sp defaults to p */
	/* pct: sampled in when sample < pct, else one lower */
	r = eval("v=DMARC1; p=reject; pct=50", "example.com", "example.com", "", SPF_NONE, NULL, 0, 49);
	assert_int_equal(r.disposition, DMARC_POLICY_REJECT);
	assert_false(r.sampled_out);
	r = eval("v=DMARC1; p=reject; pct=50", "example.com", "example.com", "", SPF_NONE, NULL, 0, 50);
	assert_int_equal(r.disposition, DMARC_POLICY_QUARANTINE);
	assert_true(r.sampled_out);
	r = eval("v=DMARC1; p=quarantine; pct=0", "example.com", "example.com", "", SPF_NONE, NULL, 0, 0);
	assert_int_equal(r.disposition, DMARC_POLICY_NONE);
	assert_true(r.sampled_out);
	r = eval("v=DMARC1; p=none; pct=0", "example.com", "example.com", "", SPF_NONE, NULL, 0, 0);
	assert_int_equal(r.disposition, DMARC_POLICY_NONE);
	assert_false(r.sampled_out);
	r = eval("v=DMARC1; p=reject; pct=100", "example.com", "example.com", "", SPF_NONE, NULL, 0, 99);
	assert_int_equal(r.disposition, DMARC_POLICY_REJECT);
	r = eval("v=DMARC1; p=reject; pct=0", "example.com", "example.com", "example.com", SPF_PASS, NULL, 0, 99);
	assert_int_equal(r.code, DMARC_PASS);
	assert_false(r.sampled_out);
}

/* ------------------------------------------------------------------ */
/* discovery over a zone in memory */

struct zrec {
	const char *name;	/* the name asked */
	const char *txt;	/* NULL: the status below */
	enum dns_status status;
};

static const struct zrec *zone;
static size_t nzone;

struct prov {
	bool defer;
	struct dmarc_query *q[4];
	char names[4][300];
	size_t n, asked;
	bool fail;		/* txt returns -1 */
};

static void answer(const char *name, struct dmarc_query *q)
{
	struct dns_txt txt[8];
	struct dns_txt_result r = { .status = DNS_NXDOMAIN, .txt = txt };

	for (size_t i = 0; i < nzone; i++) {
		if (strcmp(zone[i].name, name) != 0)
			continue;
		if (zone[i].txt == NULL) {
			r.status = zone[i].status;
			snprintf(r.error, sizeof r.error, "from the zone");
			break;
		}
		r.status = DNS_OK;
		txt[r.n].text = (char *)zone[i].txt;
		txt[r.n].len = strlen(zone[i].txt);
		r.n++;
	}
	dmarc_answer_txt(q, &r);
}

static int p_txt(void *ctx, const char *name, struct dmarc_query *q)
{
	struct prov *p = ctx;

	assert_true(p->n < 4);
	p->asked++;
	if (p->fail)
		return -1;
	if (!p->defer) {
		answer(name, q);
		return 0;
	}
	snprintf(p->names[p->n], sizeof p->names[p->n], "%s", name);
	p->q[p->n++] = q;
	return 0;
}

static bool pump(struct prov *p)
{
	if (p->n == 0)
		return false;
	p->n--;
	answer(p->names[p->n], p->q[p->n]);
	return true;
}

struct outcome {
	int calls;
	struct dmarc_result r;
	struct dmarc *free_me;
};

static void on_done(void *arg, const struct dmarc_result *r)
{
	struct outcome *o = arg;

	o->calls++;
	o->r = *r;
	if (o->free_me != NULL)
		dmarc_free(o->free_me);	/* done may free */
}

static struct dmarc_result discover(const struct zrec *z, size_t nz, const char *from,
				    const char *spf_domain, enum spf_result_code spf,
				    size_t *asked)
{
	struct dmarc_request req = { .from_domain = from, .spf_domain = spf_domain, .spf = spf };
	struct outcome a = { 0 }, b = { 0 };
	struct prov pa = { .defer = false }, pb = { .defer = true };
	struct dmarc_dns da = { p_txt, &pa }, db = { p_txt, &pb };
	struct dmarc *d;

	zone = z;
	nzone = nz;
	d = dmarc_new(&da, psl, &req, on_done, &a);
	assert_non_null(d);
	dmarc_start(d);
	assert_int_equal(a.calls, 1);
	dmarc_free(d);
	/* later, and freeing from done */
	d = dmarc_new(&db, psl, &req, on_done, &b);
	assert_non_null(d);
	b.free_me = d;
	dmarc_start(d);
	while (b.calls == 0)
		assert_true(pump(&pb));
	assert_int_equal(b.calls, 1);
	assert_int_equal(pb.n, 0);
	assert_int_equal(a.r.code, b.r.code);
	assert_string_equal(a.r.problem, b.r.problem);
	assert_string_equal(a.r.record_domain, b.r.record_domain);
	if (asked != NULL)
		*asked = pa.asked;
	return a.r;
}

static void test_discovery(void **state)
{
	static const struct zrec z[] = {
		{ "_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine", DNS_OK },
		{ "_dmarc.example.com", "some other text", DNS_OK },
		{ "_dmarc.own.example.com", "v=DMARC1; p=none", DNS_OK },
		{ "_dmarc.two.example", "v=DMARC1; p=reject", DNS_OK },
		{ "_dmarc.two.example", "v=DMARC1; p=none", DNS_OK },
		{ "_dmarc.sub.two.example", "v=DMARC1; p=reject", DNS_OK },
		{ "_dmarc.temp.example", NULL, DNS_TEMPFAIL },
		{ "_dmarc.a.temp2.example", NULL, DNS_NODATA },
		{ "_dmarc.temp2.example", NULL, DNS_TEMPFAIL },
		{ "_dmarc.broken.example", "v=DMARC1; p=bogus", DNS_OK },
		{ "_dmarc.x.broken.example", "v=DMARC1; p=nothing", DNS_OK },
	};
	struct dmarc_result r;
	size_t asked;

	(void)state;
	r = discover(z, 11, "example.com", "example.com", SPF_PASS, &asked);
	assert_int_equal(r.code, DMARC_PASS);
	assert_int_equal(asked, 1);
	assert_string_equal(r.record_domain, "example.com");
	r = discover(z, 11, "Deep.Sub.Example.COM.", "", SPF_NONE, &asked);
	assert_int_equal(r.code, DMARC_FAIL);
	assert_int_equal(asked, 2);
	assert_string_equal(r.from_domain, "deep.sub.example.com");
	assert_string_equal(r.org_domain, "example.com");
	assert_string_equal(r.record_domain, "example.com");
	assert_int_equal(r.policy, DMARC_POLICY_QUARANTINE);
	r = discover(z, 11, "own.example.com", "", SPF_NONE, &asked);
	assert_int_equal(r.policy, DMARC_POLICY_NONE);
	assert_int_equal(asked, 1);
	/* several records: none, and no fallback (6.6.3 step 4) */
	r = discover(z, 11, "two.example", "", SPF_NONE, NULL);
	assert_int_equal(r.code, DMARC_NONE);
	assert_non_null(strstr(r.problem, "2 DMARC records"));
	r = discover(z, 11, "sub.two.example", "", SPF_NONE, &asked);
	assert_int_equal(r.code, DMARC_FAIL);
	assert_int_equal(asked, 1);
	r = discover(z, 11, "x.two.example", "", SPF_NONE, &asked);
	assert_int_equal(r.code, DMARC_NONE);
	assert_int_equal(asked, 2);
	/* no record anywhere */
	r = discover(z, 11, "nothing.example", "", SPF_NONE, &asked);
	assert_int_equal(r.code, DMARC_NONE);
	assert_false(r.have_record);
	assert_int_equal(asked, 1);
	/* temperror at either step */
	r = discover(z, 11, "temp.example", "", SPF_NONE, NULL);
	assert_int_equal(r.code, DMARC_TEMPERROR);
	r = discover(z, 11, "a.temp2.example", "", SPF_NONE, NULL);
	assert_int_equal(r.code, DMARC_TEMPERROR);
	assert_non_null(strstr(r.problem, "_dmarc.temp2.example"));
	/* unusable record: permerror; no fallback past it */
	r = discover(z, 11, "broken.example", "", SPF_NONE, NULL);
	assert_int_equal(r.code, DMARC_PERMERROR);
	assert_false(r.have_record);
	assert_int_equal(r.disposition, DMARC_POLICY_NONE);
	r = discover(z, 11, "x.broken.example", "", SPF_NONE, &asked);
	assert_int_equal(r.code, DMARC_PERMERROR);
	assert_int_equal(asked, 1);
	/* a from domain that cannot be asked: none without a query */
	r = discover(z, 11, "", "", SPF_NONE, &asked);
	assert_int_equal(r.code, DMARC_NONE);
	assert_int_equal(asked, 0);
	r = discover(z, 11, "a..example", "", SPF_NONE, &asked);
	assert_int_equal(asked, 0);
	r = discover(z, 11, "b\xc3\xbc" "cher.example", "", SPF_NONE, &asked);
	assert_int_equal(r.code, DMARC_NONE);
	assert_non_null(strstr(r.problem, "UTF-8"));
	assert_int_equal(asked, 0);
	/* a public suffix is its own org domain: one query */
	r = discover(z, 11, "co.uk", "", SPF_NONE, &asked);
	assert_int_equal(asked, 1);
	assert_string_equal(r.org_domain, "co.uk");
}

static void test_long_names(void **state)
{
	char from[DMARC_DOMAIN_MAX + 1];
	struct dmarc_result r;
	size_t asked;

	(void)state;
	/* 250 octets: _dmarc.<from> is too long to ask; the org domain is asked */
	memset(from, 'a', 250);
	for (int i = 63; i < 250; i += 64)
		from[i] = '.';
	memcpy(from + 242, ".example", 9);
	r = discover(NULL, 0, from, "", SPF_NONE, &asked);
	assert_int_equal(r.code, DMARC_NONE);
	assert_int_equal(asked, 1);
}

static void test_provider_fails(void **state)
{
	struct dmarc_request req = { .from_domain = "example.com" };
	struct prov p = { .fail = true };
	struct dmarc_dns dns = { p_txt, &p };
	struct outcome o = { 0 };
	struct dmarc *d = dmarc_new(&dns, psl, &req, on_done, &o);

	(void)state;
	dmarc_start(d);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.r.code, DMARC_TEMPERROR);
	assert_non_null(strstr(o.r.problem, "could not ask"));
	dmarc_free(d);
}

static void test_cancel(void **state)
{
	static const struct zrec z[] = {
		{ "_dmarc.example.com", "v=DMARC1; p=reject", DNS_OK },
	};
	struct dmarc_request req = { .from_domain = "a.example.com" };

	(void)state;
	zone = z;
	nzone = 1;
	for (size_t cut = 0; cut < 2; cut++) {
		struct prov p = { .defer = true };
		struct dmarc_dns dns = { p_txt, &p };
		struct outcome o = { 0 };
		struct dmarc *d = dmarc_new(&dns, psl, &req, on_done, &o);

		dmarc_start(d);
		for (size_t i = 0; i < cut; i++)
			assert_true(pump(&p));
		assert_int_equal(o.calls, 0);
		dmarc_free(d);
		while (pump(&p))	/* a late answer to a freed evaluation: dropped */
			;
		assert_int_equal(o.calls, 0);
	}
	dmarc_free(NULL);
}

static void test_new_rejects(void **state)
{
	struct prov p = { 0 };
	struct dmarc_dns dns = { p_txt, &p };
	struct dmarc_request req = { .from_domain = "example.com" };
	struct outcome o = { 0 };
	struct dmarc_dkim_in bad[] = { { "exa\nmple.com", "s", DKIM_PASS } };

	(void)state;
	errno = 0;
	assert_null(dmarc_new(&dns, NULL, &req, on_done, &o));
	assert_int_equal(errno, EINVAL);
	assert_null(dmarc_new(&dns, psl, &req, NULL, &o));
	req.sample = 100;
	assert_null(dmarc_new(&dns, psl, &req, on_done, &o));
	req.sample = 0;
	req.spf_domain = "a\rb";
	assert_null(dmarc_new(&dns, psl, &req, on_done, &o));
	req.spf_domain = NULL;
	req.dkim = bad;
	req.ndkim = 1;
	assert_null(dmarc_new(&dns, psl, &req, on_done, &o));
	req.dkim = NULL;
	assert_null(dmarc_new(&dns, psl, &req, on_done, &o));
	req.ndkim = 0;
	req.from_domain = NULL;
	assert_null(dmarc_new(&dns, psl, &req, on_done, &o));
}

static void test_request_copied(void **state)
{
	static const struct zrec z[] = {
		{ "_dmarc.example.com", "v=DMARC1; p=reject", DNS_OK },
	};
	char from[32] = "example.com", dom[32] = "example.com", spf[32] = "other.example";
	struct dmarc_dkim_in sig = { dom, "sel", DKIM_PASS };
	struct dmarc_request req = { .from_domain = from, .spf_domain = spf, .spf = SPF_PASS,
				     .dkim = &sig, .ndkim = 1 };
	struct prov p = { .defer = true };
	struct dmarc_dns dns = { p_txt, &p };
	struct outcome o = { 0 };
	struct dmarc *d;

	(void)state;
	zone = z;
	nzone = 1;
	d = dmarc_new(&dns, psl, &req, on_done, &o);
	dmarc_start(d);
	/* the caller's strings change before the answer: the copy counts */
	memset(from, 'x', 5);
	memset(dom, 'y', 5);
	sig.result = DKIM_FAIL;
	assert_true(pump(&p));
	assert_int_equal(o.r.code, DMARC_PASS);
	assert_true(o.r.dkim_aligned);
	assert_string_equal(o.r.from_domain, "example.com");
	dmarc_free(d);
}

/* ------------------------------------------------------------------ */
/* the report line */

static void test_report_line(void **state)
{
	const struct dmarc_dkim_in sigs[] = {
		{ "example.com", "s\"1", DKIM_PASS },
		{ "b\xc3\xbc" "cher.example", "s\xff", DKIM_FAIL },
	};
	struct dmarc_request req = { .from_domain = "example.com", .spf_domain = "bounce.example.com",
				     .spf = SPF_FAIL, .dkim = sigs, .ndkim = 2, .sample = 80 };
	struct dmarc_result res;
	struct dmarc_record rec;
	struct buf b;
	char err[128];
	const char *rec_txt = "v=DMARC1; p=reject; pct=50; rua=mailto:agg@example.com";

	(void)state;
	memset(&res, 0, sizeof res);
	snprintf(res.from_domain, sizeof res.from_domain, "example.com");
	snprintf(res.org_domain, sizeof res.org_domain, "example.com");
	assert_int_equal(dmarc_record_parse((const uint8_t *)rec_txt, strlen(rec_txt), &rec, err, sizeof err), 1);
	dmarc_evaluate(psl, &req, &rec, "example.com", &res);
	assert_int_equal(res.code, DMARC_PASS);
	buf_init(&b, 1 << 16);
	assert_int_equal(dmarc_report_line(&b, 1700000000, "192.0.2.1", "bob\n@example.com", &req, &res), 0);
	assert_non_null(b.data);
	assert_int_equal(b.data[b.len - 1], '\n');
	assert_null(memchr(b.data, '\n', b.len - 1));
	assert_int_equal(buf_append(&b, "", 1), 0);
	assert_string_equal((char *)b.data,
		"{\"time\":1700000000,\"source_ip\":\"192.0.2.1\",\"header_from\":\"example.com\","
		"\"envelope_from\":\"bob\\u000a@example.com\",\"dmarc\":\"pass\","
		"\"spf\":{\"domain\":\"bounce.example.com\",\"result\":\"fail\"},"
		"\"dkim\":[{\"domain\":\"example.com\",\"selector\":\"s\\\"1\",\"result\":\"pass\"},"
		"{\"domain\":\"b\xc3\xbc" "cher.example\",\"selector\":\"s\\ufffd\",\"result\":\"fail\"}],"
		"\"policy_published\":{\"domain\":\"example.com\",\"adkim\":\"r\",\"aspf\":\"r\","
		"\"p\":\"reject\",\"sp\":\"reject\",\"pct\":50,\"fo\":\"0\",\"rua\":\"mailto:agg@example.com\"},"
		"\"policy_evaluated\":{\"disposition\":\"none\",\"dkim\":\"pass\",\"spf\":\"fail\"}}\n");
	buf_reset(&b);
	/* sampled out, no DKIM */
	req.ndkim = 0;
	dmarc_evaluate(psl, &req, &rec, "example.com", &res);
	assert_int_equal(res.code, DMARC_FAIL);
	assert_true(res.sampled_out);
	assert_int_equal(dmarc_report_line(&b, 1, NULL, NULL, &req, &res), 0);
	assert_int_equal(buf_append(&b, "", 1), 0);
	assert_non_null(strstr((char *)b.data, "\"dkim\":[]"));
	assert_non_null(strstr((char *)b.data, "\"disposition\":\"quarantine\""));
	assert_non_null(strstr((char *)b.data, ",\"reason\":\"sampled_out\"}\n"));
	assert_non_null(strstr((char *)b.data, "\"source_ip\":\"\""));
	buf_reset(&b);
	/* no record: policy_published is null */
	dmarc_evaluate(psl, &req, NULL, "", &res);
	assert_int_equal(dmarc_report_line(&b, 1, "::1", "", &req, &res), 0);
	assert_int_equal(buf_append(&b, "", 1), 0);
	assert_non_null(strstr((char *)b.data, "\"policy_published\":null"));
	assert_non_null(strstr((char *)b.data, "\"dmarc\":\"none\""));
	buf_free(&b);
	/* out of room: out unchanged */
	buf_init(&b, 16);
	assert_int_equal(dmarc_report_line(&b, 1, "::1", "", &req, &res), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static int setup(void **state)
{
	char err[128];

	(void)state;
	psl = dmarc_psl_load(NULL, err, sizeof err);
	if (psl == NULL) {
		fprintf(stderr, "test_dmarc: %s (apt-get install publicsuffix)\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	dmarc_psl_free(psl);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_full),
		cmocka_unit_test(test_record_defaults),
		cmocka_unit_test(test_record_case_and_space),
		cmocka_unit_test(test_record_not_dmarc),
		cmocka_unit_test(test_record_p),
		cmocka_unit_test(test_record_bad_values),
		cmocka_unit_test(test_record_values),
		cmocka_unit_test(test_record_limits),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_author_ok),
		cmocka_unit_test(test_author_bad),
		cmocka_unit_test(test_author_limits),
		cmocka_unit_test(test_author_files),
		cmocka_unit_test(test_psl_vectors),
		cmocka_unit_test(test_org_domain_more),
		cmocka_unit_test(test_psl_load),
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_evaluate),
		cmocka_unit_test(test_discovery),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_provider_fails),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_new_rejects),
		cmocka_unit_test(test_request_copied),
		cmocka_unit_test(test_report_line),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
