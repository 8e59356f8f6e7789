/* test_dsn.c - delivery status notifications: content, RET, ENVID/ORCPT, injection, line lengths, NOTIFY. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/smtp_cmd.h"
#include "spool/dsn.h"

#define NOW 1772445600 /* Mon, 02 Mar 2026 10:00:00 +0000 */
#define DAY 86400

static const char msg[] =
	"From: Alice <alice@example.org>\r\n"
	"To: Bob <bob@remote.example>\r\n"
	"Subject: Lunch on Friday?\r\n"
	"Message-ID: <lunch.42@example.org>\r\n"
	"\r\n"
	"BODY-MARKER are you free for lunch?\r\n";

static struct dsn_rcpt bob(void)
{
	struct dsn_rcpt rc = {
		.addr = "bob@remote.example",
		.action = DSN_FAILED,
		.status = "5.1.1",
		.remote_mta = "mx1.remote.example",
		.diagnostic = "550 5.1.1 no such user",
		.last_attempt = NOW - 1,
	};
	return rc;
}

static struct dsn_rcpt carol(void)
{
	struct dsn_rcpt rc = {
		.addr = "carol@slow.example",
		.action = DSN_DELAYED,
		.status = "4.4.1",
		.reason = "No mail server for slow.example answered",
		.last_attempt = NOW - 60,
		.will_retry_until = NOW + 5 * DAY - 3600,
	};
	return rc;
}

static struct dsn_rcpt dave(enum dsn_action a)
{
	struct dsn_rcpt rc = {
		.addr = "dave@example.net",
		.action = a,
		.status = "2.0.0",
		.remote_mta = "mx.example.net",
		.diagnostic = "250 2.0.0 Ok: queued as 7D1E",
	};
	return rc;
}

static struct dsn_report report(const struct dsn_rcpt *rcpts, size_t n)
{
	struct dsn_report r = {
		.reporting_mta = "mx.example.org",
		.qid = "Q1",
		.sender = "alice@example.org",
		.arrival = NOW - 2,
		.msg = (const uint8_t *)msg,
		.msg_len = sizeof msg - 1,
		.max_full = 1 << 20,
		.rcpts = rcpts,
		.n = n,
		.now = NOW,
		.boundary_seed = "test-boundary",
	};
	return r;
}

/* Every line ends in CR LF, no bare CR or LF, none over 998 octets. */
static void assert_lines_ok(const uint8_t *p, size_t n)
{
	size_t col = 0;

	assert_true(n >= 2);
	assert_memory_equal(p + n - 2, "\r\n", 2);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r') {
			assert_true(i + 1 < n && p[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		assert_int_not_equal(p[i], '\n');
		assert_int_not_equal(p[i], '\0');
		col++;
		if (col > 998)
			fail_msg("line over 998 octets at offset %zu", i);
	}
}

/* dsn_build into a fresh buffer, checked, as a NUL-terminated string; NULL if refused. */
static char *build(const struct dsn_report *r)
{
	struct buf b;
	char *s;

	buf_init(&b, 64 << 20);
	if (dsn_build(r, &b) < 0) {
		assert_int_equal(b.len, 0);
		buf_free(&b);
		return NULL;
	}
	assert_lines_ok(b.data, b.len);
	s = malloc(b.len + 1);
	assert_non_null(s);
	memcpy(s, b.data, b.len);
	s[b.len] = '\0';
	buf_free(&b);
	return s;
}

static void assert_has(const char *s, const char *needle)
{
	if (strstr(s, needle) == NULL) {
		fprintf(stderr, "%s\n", s);
		fail_msg("missing \"%s\" in the message above", needle);
	}
}

static void assert_lacks(const char *s, const char *needle)
{
	if (strstr(s, needle) != NULL) {
		fprintf(stderr, "%s\n", s);
		fail_msg("unexpected \"%s\" in the message above", needle);
	}
}

/* Human text is wrapped: look for words with every line break (and the
 * indentation after it) read as one space. */
static void assert_says(const char *s, const char *words)
{
	size_t n = strlen(s), o = 0;
	char *flat = malloc(n + 1);

	assert_non_null(flat);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && s[i + 1] == '\n') {
			i++;
			while (s[i + 1] == ' ')
				i++;
			flat[o++] = ' ';
			continue;
		}
		flat[o++] = s[i];
	}
	flat[o] = '\0';
	if (strstr(flat, words) == NULL) {
		fprintf(stderr, "%s\n", s);
		free(flat);
		fail_msg("the text above does not say \"%s\"", words);
	}
	free(flat);
}

static void test_failed_with_remote_reply(void **state)
{
	struct dsn_rcpt rc = bob();
	struct dsn_report r = report(&rc, 1);
	char *s;

	(void)state;
	s = build(&r);
	assert_non_null(s);
	/* RFC 5322 / 3834 / 6522 headers */
	assert_true(strncmp(s, "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n", 39) == 0);
	assert_has(s, "\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n");
	assert_has(s, "\r\nTo: <alice@example.org>\r\n");
	assert_has(s, "\r\nSubject: Undelivered Mail Returned to Sender\r\n");
	assert_has(s, "\r\nMessage-ID: <Q1.dsn.1772445600@mx.example.org>\r\n");
	assert_has(s, "\r\nIn-Reply-To: <lunch.42@example.org>\r\n");
	assert_has(s, "\r\nAuto-Submitted: auto-replied\r\n");
	assert_has(s, "\r\nMIME-Version: 1.0\r\n");
	assert_has(s, "\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n"
		      "\tboundary=\"test-boundary\"\r\n");
	assert_has(s, "\r\nContent-Transfer-Encoding: 7bit\r\n");
	/* part 1: what happened, the reply quoted, what to do */
	assert_has(s, "\r\n--test-boundary\r\nContent-Description: Notification\r\n"
		      "Content-Type: text/plain; charset=us-ascii\r\n");
	assert_has(s, "<bob@remote.example>: delivery failed\r\n");
	assert_has(s, "The mail server for remote.example (mx1.remote.example) said:\r\n"
		      "        550 5.1.1 no such user\r\n");
	assert_says(s, "What to do: the address does not exist at remote.example. Check it "
		       "for typing mistakes, or ask the recipient for their current address.");
	/* part 2 */
	assert_has(s, "Content-Type: message/delivery-status\r\n");
	assert_has(s, "\r\n\r\nReporting-MTA: dns; mx.example.org\r\n"
		      "Arrival-Date: Mon, 02 Mar 2026 09:59:58 +0000\r\n");
	assert_has(s, "\r\n\r\nFinal-Recipient: rfc822; bob@remote.example\r\n"
		      "Action: failed\r\nStatus: 5.1.1\r\n"
		      "Remote-MTA: dns; mx1.remote.example\r\n"
		      "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
		      "Last-Attempt-Date: Mon, 02 Mar 2026 09:59:59 +0000\r\n");
	assert_lacks(s, "Will-Retry-Until");
	assert_lacks(s, "Original-Recipient");
	assert_lacks(s, "Original-Envelope-Id");
	/* part 3: headers only by default (RFC 3461 4.3) */
	assert_has(s, "Content-Type: text/rfc822-headers\r\n");
	assert_has(s, "Content-Transfer-Encoding: 7bit\r\n\r\nFrom: Alice <alice@example.org>\r\n");
	assert_has(s, "Message-ID: <lunch.42@example.org>\r\n\r\n--test-boundary--\r\n");
	assert_lacks(s, "BODY-MARKER");
	free(s);
}

static void test_subject_from_worst_action(void **state)
{
	struct dsn_rcpt rcpts[3] = { dave(DSN_DELIVERED), carol(), bob() };
	struct dsn_report r;
	char *s;

	(void)state;
	r = report(rcpts, 3); /* delivered + delayed + failed */
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Subject: Undelivered Mail Returned to Sender\r\n");
	/* one report, every recipient in it, each in its own block */
	assert_has(s, "\r\n\r\nFinal-Recipient: rfc822; dave@example.net\r\nAction: delivered\r\n");
	assert_has(s, "\r\n\r\nFinal-Recipient: rfc822; carol@slow.example\r\nAction: delayed\r\n");
	assert_has(s, "\r\n\r\nFinal-Recipient: rfc822; bob@remote.example\r\nAction: failed\r\n");
	/* the human part: failed first, then delayed, then the rest */
	assert_true(strstr(s, "<bob@remote.example>: delivery failed") <
		    strstr(s, "<carol@slow.example>: not delivered yet"));
	assert_true(strstr(s, "<carol@slow.example>: not delivered yet") <
		    strstr(s, "<dave@example.net>: delivered"));
	free(s);

	r = report(rcpts, 2); /* delivered + delayed */
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Subject: Delayed Mail (still being retried)\r\n");
	free(s);

	r = report(rcpts, 1);
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Subject: Successful Mail Delivery Report\r\n");
	assert_has(s, "Action: delivered\r\nStatus: 2.0.0\r\n");
	free(s);

	rcpts[0] = dave(DSN_RELAYED);
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Subject: Successful Mail Delivery Report\r\n");
	assert_has(s, "Action: relayed\r\n");
	assert_says(s, "No further report will come for this recipient.");
	free(s);

	rcpts[0] = dave(DSN_EXPANDED);
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Action: expanded\r\n");
	free(s);
}

static void test_delay_says_how_long(void **state)
{
	struct dsn_rcpt rc = carol();
	struct dsn_report r = report(&rc, 1);
	char *s;

	(void)state;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Subject: Delayed Mail (still being retried)\r\n");
	assert_says(s, "The mail system will keep trying until Sat, 07 Mar 2026 "
		       "09:00:00 +0000 (for another 4 days and 23 hours).");
	assert_says(s, "You do not need to send it again");
	assert_has(s, "No mail server for slow.example answered");
	assert_has(s, "Action: delayed\r\nStatus: 4.4.1\r\n");
	assert_has(s, "Last-Attempt-Date: Mon, 02 Mar 2026 09:59:00 +0000\r\n"
		      "Will-Retry-Until: Sat, 07 Mar 2026 09:00:00 +0000\r\n");
	free(s);

	/* RET=FULL is for failure reports: a delay warning returns headers */
	r.ret_full = true;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Content-Type: text/rfc822-headers\r\n");
	assert_lacks(s, "BODY-MARKER");
	free(s);
}

static void test_ret_full_and_hdrs(void **state)
{
	static const char longline[] = "Subject: x\r\n\r\n";
	struct dsn_rcpt rc = bob();
	struct dsn_report r = report(&rc, 1);
	char *s, *big;

	(void)state;
	r.ret_full = true;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Content-Description: Returned message\r\nContent-Type: message/rfc822\r\n"
		      "Content-Transfer-Encoding: 7bit\r\n\r\nFrom: Alice");
	/* the whole message, its last CR LF kept before the delimiter's own */
	assert_has(s, "BODY-MARKER are you free for lunch?\r\n\r\n--test-boundary--\r\n");
	assert_says(s, "Your message is attached after the delivery report.");
	free(s);

	r.ret_full = false;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Content-Type: text/rfc822-headers\r\n");
	assert_says(s, "The headers of your message are attached");
	assert_lacks(s, "BODY-MARKER");
	free(s);

	/* over max_full: headers only, and the text says why */
	r.ret_full = true;
	r.max_full = 100;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Content-Type: text/rfc822-headers\r\n");
	assert_says(s, "Your message was larger than 100 octets, so only its headers are attached");
	assert_has(s, "Subject: Lunch on Friday?\r\n"); /* headers fit in 100 */
	assert_lacks(s, "BODY-MARKER");
	free(s);

	/* a line the report cannot carry (over 998 octets): headers only */
	big = malloc(sizeof longline + 2000 + 2);
	assert_non_null(big);
	memcpy(big, longline, sizeof longline - 1);
	memset(big + sizeof longline - 1, 'x', 2000);
	memcpy(big + sizeof longline - 1 + 2000, "\r\n", 2);
	r.msg = (const uint8_t *)big;
	r.msg_len = sizeof longline - 1 + 2002;
	r.max_full = 0; /* the default */
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Content-Type: text/rfc822-headers\r\n");
	assert_says(s, "cannot carry unchanged");
	free(s);

	/* bare LF in the body: the same */
	memcpy(big + sizeof longline - 1, "a\nb\r\n", 5);
	r.msg_len = sizeof longline - 1 + 5;
	s = build(&r);
	assert_non_null(s);
	assert_says(s, "cannot carry unchanged");
	free(s);
	free(big);
}

static void test_8bit_original_is_declared(void **state)
{
	static const char m8[] = "Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9f" "e\r\n";
	struct dsn_rcpt rc = bob();
	struct dsn_report r = report(&rc, 1);
	char *s;

	(void)state;
	r.ret_full = true;
	r.msg = (const uint8_t *)m8;
	r.msg_len = sizeof m8 - 1;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "report-type=delivery-status");
	assert_has(s, "\tboundary=\"test-boundary\"\r\nContent-Transfer-Encoding: 8bit\r\n");
	assert_has(s, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n");
	free(s);
}

static void test_headers_without_empty_line(void **state)
{
	static const char m[] = "From: a@example.org\r\nSubject: only headers\r\nX-Last: yes\r\n";
	static const char unterminated[] = "From: a@example.org\r\nSubject: no CRLF";
	struct dsn_rcpt rc = bob();
	struct dsn_report r = report(&rc, 1);
	char *s;

	(void)state;
	r.msg = (const uint8_t *)m;
	r.msg_len = sizeof m - 1;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "text/rfc822-headers\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
		      "From: a@example.org\r\nSubject: only headers\r\nX-Last: yes\r\n\r\n--");
	free(s);

	/* capped at max_full, at a line end */
	r.max_full = 30;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "\r\n\r\nFrom: a@example.org\r\n\r\n--test-boundary--");
	assert_lacks(s, "only headers");
	assert_says(s, "Those headers were cut at 30 octets.");
	free(s);

	r.max_full = 0;
	r.msg = (const uint8_t *)unterminated;
	r.msg_len = sizeof unterminated - 1;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Subject: no CRLF\r\n\r\n--test-boundary--");
	free(s);

	/* no message at all */
	r.msg = NULL;
	r.msg_len = 0;
	s = build(&r);
	assert_non_null(s);
	assert_lacks(s, "In-Reply-To");
	free(s);
}

static void test_envid_and_orcpt(void **state)
{
	struct dsn_rcpt rc = bob();
	struct dsn_report r = report(&rc, 1);
	char *s;

	(void)state;
	r.envid = "QQ+2B314";
	rc.orcpt = "rfc822;Bob+2Bsales@remote.example";
	s = build(&r);
	assert_non_null(s);
	/* RFC 3464 2.2: Original-Envelope-Id comes first; xtext decoded */
	assert_has(s, "\r\n\r\nOriginal-Envelope-Id: QQ+314\r\nReporting-MTA: dns; mx.example.org\r\n");
	assert_has(s, "\r\n\r\nOriginal-Recipient: rfc822; Bob+sales@remote.example\r\n"
		      "Final-Recipient: rfc822; bob@remote.example\r\n");
	assert_has(s, "Envelope ID: QQ+314");
	free(s);

	/* absent: no fields */
	r.envid = NULL;
	rc.orcpt = NULL;
	s = build(&r);
	assert_non_null(s);
	assert_lacks(s, "Original-Envelope-Id");
	assert_lacks(s, "Original-Recipient");
	free(s);

	/* an xtext that decodes to CR LF stays encoded: no field can be forged */
	rc.orcpt = "rfc822;a+0D+0AAction:+20delivered@x";
	r.envid = "e+0D+0AStatus:+202.0.0";
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Original-Recipient: rfc822; a+0D+0AAction:+20delivered@x\r\n");
	assert_has(s, "Original-Envelope-Id: e+0D+0AStatus:+202.0.0\r\n");
	assert_lacks(s, "Action: delivered");
	free(s);

	/* malformed: refused */
	rc.orcpt = "rfc822";
	assert_null(build(&r));
	rc.orcpt = "rfc822;a=b@x";
	assert_null(build(&r));
	rc.orcpt = ";a@x";
	assert_null(build(&r));
	rc.orcpt = "rfc 822;a@x";
	assert_null(build(&r));
	rc.orcpt = "rfc822;a+2b@x"; /* hexchar is upper case */
	assert_null(build(&r));
	rc.orcpt = NULL;
	r.envid = "a b";
	assert_null(build(&r));
	r.envid = "";
	assert_null(build(&r));
}

static void test_crlf_injection_refused(void **state)
{
	static const char *const bad[] = {
		"550 5.1.1 no\r\nAction: delivered",
		"550 5.1.1 no\nStatus: 2.0.0",
		"550 5.1.1 no\rX",
		"\r\n",
	};
	struct dsn_rcpt rc = bob();
	struct dsn_report r = report(&rc, 1);
	struct buf b;
	char *s;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rc = bob();
		rc.diagnostic = bad[i];
		assert_null(build(&r));
		rc = bob();
		rc.reason = bad[i];
		assert_null(build(&r));
	}
	/* the output buffer is left as it was */
	rc = bob();
	rc.diagnostic = bad[0];
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_append(&b, "keep", 4), 0);
	assert_int_equal(dsn_build(&r, &b), -1);
	assert_int_equal(b.len, 4);
	buf_free(&b);

	/* every other field too */
	rc = bob();
	rc.addr = "bob@remote.example\r\nX: y";
	assert_null(build(&r));
	rc = bob();
	rc.remote_mta = "mx1\r\nX: y";
	assert_null(build(&r));
	rc = bob();
	rc.remote_mta = "mx1 remote";
	assert_null(build(&r));
	rc = bob();
	r.sender = "alice@example.org\r\nBcc: x@y";
	assert_null(build(&r));
	r = report(&rc, 1);
	r.reporting_mta = "mx\r\n.example";
	assert_null(build(&r));
	r = report(&rc, 1);
	r.qid = "Q1\r\n";
	assert_null(build(&r));
	r = report(&rc, 1);
	r.boundary_seed = "b\r\n";
	assert_null(build(&r));

	/* other control characters are shown as '?', TAB as a space */
	r = report(&rc, 1);
	rc.diagnostic = "550\t5.1.1 bell\a here";
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Diagnostic-Code: smtp; 550 5.1.1 bell? here\r\n");
	free(s);
}

static void test_line_lengths(void **state)
{
	char diag[3000], words[3000], addr[DSN_ADDR_MAX + 1], hdr[4000];
	struct dsn_rcpt rc = bob();
	struct dsn_report r = report(&rc, 1);
	size_t n;
	char *s;

	(void)state;
	/* one unbroken 2999-octet reply: cut at 998, folded, no line over 998 */
	memset(diag, 'x', sizeof diag - 1);
	diag[sizeof diag - 1] = '\0';
	rc.diagnostic = diag;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Diagnostic-Code: smtp;\r\n xxxx");
	free(s);

	/* a long reply of words: folded at spaces */
	for (n = 0; n + 6 < sizeof words; n += 6)
		memcpy(words + n, "word5 ", 6);
	words[n] = '\0';
	rc.diagnostic = words;
	rc.reason = words;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Diagnostic-Code: smtp; word5 word5");
	assert_has(s, "\r\n word5 word5");
	free(s);

	/* the longest address, as recipient and sender */
	memset(addr, 'a', sizeof addr - 1);
	addr[sizeof addr - 1] = '\0';
	addr[DSN_ADDR_MAX - 12] = '@';
	rc = bob();
	rc.addr = addr;
	r.sender = addr;
	s = build(&r);
	assert_non_null(s);
	free(s);
	addr[0] = '\0';
	r.sender = "alice@example.org";

	/* an over-long header line in the original is folded */
	memcpy(hdr, "X-Long: ", 8);
	memset(hdr + 8, 'y', sizeof hdr - 8 - 5);
	memcpy(hdr + sizeof hdr - 5, "\r\n\r\n", 5);
	rc = bob();
	r.msg = (const uint8_t *)hdr;
	r.msg_len = sizeof hdr - 1;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "X-Long: yyyy");
	assert_has(s, "\r\n yyyy");
	free(s);

	/* UTF-8 over-long reply with smtputf8: cut between characters */
	for (n = 0; n + 3 < sizeof diag; n += 3)
		memcpy(diag + n, "\xe7\x94\xa8", 3);
	diag[n] = '\0';
	r = report(&rc, 1);
	r.smtputf8 = true;
	rc.diagnostic = diag;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Diagnostic-Code: smtp;\r\n \xe7\x94\xa8");
	free(s);
}

static void test_deterministic(void **state)
{
	static const char with_seed[] = "Subject: x\r\n\r\n--test-boundary\r\n";
	struct dsn_rcpt rcpts[2] = { bob(), carol() };
	struct dsn_report r = report(rcpts, 2);
	char *a, *b;

	(void)state;
	a = build(&r);
	b = build(&r);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a, b);
	free(b);
	r.now = NOW + 1;
	b = build(&r);
	assert_non_null(b);
	assert_has(b, "Date: Mon, 02 Mar 2026 10:00:01 +0000\r\n");
	assert_string_not_equal(a, b);
	free(a);
	free(b);

	/* the seed occurs in the original: another boundary is taken */
	r = report(rcpts, 1);
	r.ret_full = true;
	r.msg = (const uint8_t *)with_seed;
	r.msg_len = sizeof with_seed - 1;
	a = build(&r);
	assert_non_null(a);
	assert_has(a, "boundary=\"test-boundary.1\"\r\n");
	assert_has(a, "\r\n--test-boundary.1--\r\n");
	free(a);

	/* no seed: a random boundary made from the queue id */
	r = report(rcpts, 1);
	r.boundary_seed = NULL;
	a = build(&r);
	b = build(&r);
	assert_non_null(a);
	assert_non_null(b);
	assert_has(a, "boundary=\"=_Q1.");
	assert_string_not_equal(a, b);
	free(a);
	free(b);
}

static void test_smtputf8(void **state)
{
	static const char m8[] = "Subject: Gr\xc3\xbc\xc3\x9f" "e\r\nFrom: j\xc3\xbcrgen@example.org\r\n"
				 "\r\nbody\r\n";
	struct dsn_rcpt rc = bob();
	struct dsn_report r = report(&rc, 1);
	char *s;

	(void)state;
	rc.addr = "\xe7\x94\xa8\xe6\x88\xb7@remote.example";
	rc.orcpt = "utf-8;\\x{7528}\\x{6237}@remote.example";
	r.sender = "j\xc3\xbcrgen@example.org";
	r.smtputf8 = true;
	r.msg = (const uint8_t *)m8;
	r.msg_len = sizeof m8 - 1;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "To: <j\xc3\xbcrgen@example.org>\r\n");
	assert_has(s, "report-type=global-delivery-status;");
	assert_has(s, "Content-Type: text/plain; charset=utf-8\r\n");
	assert_has(s, "Content-Type: message/global-delivery-status\r\n");
	assert_has(s, "Original-Recipient: utf-8; \xe7\x94\xa8\xe6\x88\xb7@remote.example\r\n");
	assert_has(s, "Final-Recipient: utf-8; \xe7\x94\xa8\xe6\x88\xb7@remote.example\r\n");
	assert_has(s, "Content-Type: message/global-headers\r\nContent-Transfer-Encoding: 8bit\r\n");
	assert_has(s, "\tboundary=\"test-boundary\"\r\nContent-Transfer-Encoding: 8bit\r\n");
	free(s);

	r.ret_full = true;
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Content-Type: message/global\r\n");
	free(s);

	/* an ASCII recipient keeps rfc822 */
	rc = bob();
	s = build(&r);
	assert_non_null(s);
	assert_has(s, "Final-Recipient: rfc822; bob@remote.example\r\n");
	free(s);

	/* non-ASCII without SMTPUTF8, or invalid UTF-8 with it: refused */
	r.smtputf8 = false;
	assert_null(build(&r));
	r.smtputf8 = true;
	r.sender = "bad\xc3@example.org";
	assert_null(build(&r));
	r.sender = "alice@example.org";
	rc.addr = "\xed\xa0\x80@example.org"; /* a surrogate */
	assert_null(build(&r));
}

static void test_malformed_input_refused(void **state)
{
	struct dsn_rcpt rc = bob();
	struct dsn_report r = report(&rc, 1);
	struct buf b;

	(void)state;
	assert_int_equal(dsn_build(NULL, NULL), -1);
	r.sender = ""; /* the null reverse-path never gets a DSN */
	assert_null(build(&r));
	r = report(&rc, 1);
	r.n = 0;
	assert_null(build(&r));
	r = report(NULL, 1);
	assert_null(build(&r));
	r = report(&rc, 1);
	r.reporting_mta = NULL;
	assert_null(build(&r));
	r = report(&rc, 1);
	r.msg = NULL;
	assert_null(build(&r));
	r = report(&rc, 1);
	r.arrival = -1;
	assert_null(build(&r));
	r = report(&rc, 1);
	r.now = 253402300800LL; /* year 10000 */
	assert_null(build(&r));
	r = report(&rc, 1);
	r.boundary_seed = "bad\"seed";
	assert_null(build(&r));

	static const struct {
		enum dsn_action a;
		const char *status;
		bool ok;
	} st[] = {
		{ DSN_FAILED, "5.1.1", true },	  { DSN_FAILED, "4.4.7", true },
		{ DSN_FAILED, "2.0.0", false },	  { DSN_DELAYED, "4.4.1", true },
		{ DSN_DELAYED, "5.1.1", false },  { DSN_DELIVERED, "2.0.0", true },
		{ DSN_DELIVERED, "5.0.0", false }, { DSN_RELAYED, "2.1.5", true },
		{ DSN_EXPANDED, "2.0.0", true },  { DSN_FAILED, "5.1.10", true },
		{ DSN_FAILED, "5.123.456", true }, { DSN_FAILED, "5.1", false },
		{ DSN_FAILED, "5.1.1.", false },  { DSN_FAILED, "6.0.0", false },
		{ DSN_FAILED, "55.1.1", false },  { DSN_FAILED, "5.1234.1", false },
		{ DSN_FAILED, "", false },	  { DSN_FAILED, "5..1", false },
	};
	for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
		char *s;

		rc = bob();
		rc.action = st[i].a;
		snprintf(rc.status, sizeof rc.status, "%s", st[i].status);
		r = report(&rc, 1);
		s = build(&r);
		if ((s != NULL) != st[i].ok)
			fail_msg("status %s for action %d: %s", st[i].status, st[i].a,
				 s ? "accepted" : "refused");
		free(s);
	}
	rc = bob();
	memset(rc.status, '5', sizeof rc.status); /* no NUL */
	assert_null(build(&r));
	rc = bob();
	rc.action = (enum dsn_action)7;
	assert_null(build(&r));

	/* the output cap: refused, out unchanged */
	rc = bob();
	buf_init(&b, 200);
	assert_int_equal(dsn_build(&r, &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void test_advice_by_status(void **state)
{
	static const struct {
		const char *status, *words;
	} cases[] = {
		{ "5.1.2", "Check the part of the address after the @" },
		{ "5.1.10", "null MX" },
		{ "5.2.2", "mailbox is full" },
		{ "5.3.4", "too large" },
		{ "5.7.1", "by policy" },
		{ "4.4.7", "kept trying for" },
		{ "5.6.7", "non-ASCII" },
		{ "5.9.9", "forward this report to your mail administrator" },
	};
	struct dsn_rcpt rc;
	struct dsn_report r = report(&rc, 1);

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *s;

		rc = bob();
		rc.diagnostic = NULL;
		snprintf(rc.status, sizeof rc.status, "%s", cases[i].status);
		s = build(&r);
		assert_non_null(s);
		assert_says(s, cases[i].words);
		assert_has(s, "    Status ");
		free(s);
	}
}

/* RFC 3461 4.1 / 5.2: which outcomes get a DSN, for every NOTIFY value. */
static void test_dsn_wanted_table(void **state)
{
	enum { N = DSN_NOTIFY_NEVER, S = DSN_NOTIFY_SUCCESS, F = DSN_NOTIFY_FAILURE,
	       D = DSN_NOTIFY_DELAY };
	/*                      failed delayed delivered relayed expanded */
	static const struct {
		unsigned notify;
		bool want[5];
	} table[] = {
		{ 0, { 1, 1, 0, 0, 0 } },	/* absent: failure, and delay */
		{ N, { 0, 0, 0, 0, 0 } },
		{ S, { 0, 0, 1, 1, 1 } },
		{ F, { 1, 0, 0, 0, 0 } },
		{ D, { 0, 1, 0, 0, 0 } },
		{ S | F, { 1, 0, 1, 1, 1 } },
		{ S | D, { 0, 1, 1, 1, 1 } },
		{ F | D, { 1, 1, 0, 0, 0 } },
		{ S | F | D, { 1, 1, 1, 1, 1 } },
		/* NEVER with anything (the parser refuses it): still never */
		{ N | S, { 0, 0, 0, 0, 0 } },
		{ N | F, { 0, 0, 0, 0, 0 } },
		{ N | D, { 0, 0, 0, 0, 0 } },
		{ N | S | F, { 0, 0, 0, 0, 0 } },
		{ N | S | D, { 0, 0, 0, 0, 0 } },
		{ N | F | D, { 0, 0, 0, 0, 0 } },
		{ N | S | F | D, { 0, 0, 0, 0, 0 } },
	};

	(void)state;
	assert_int_equal(sizeof table / sizeof table[0], 16);
	for (size_t i = 0; i < 16; i++)
		for (int a = DSN_FAILED; a <= DSN_EXPANDED; a++)
			if (dsn_wanted(table[i].notify, (enum dsn_action)a) != table[i].want[a])
				fail_msg("notify 0x%x action %d: want %d", table[i].notify, a,
					 table[i].want[a]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed_with_remote_reply),
		cmocka_unit_test(test_subject_from_worst_action),
		cmocka_unit_test(test_delay_says_how_long),
		cmocka_unit_test(test_ret_full_and_hdrs),
		cmocka_unit_test(test_8bit_original_is_declared),
		cmocka_unit_test(test_headers_without_empty_line),
		cmocka_unit_test(test_envid_and_orcpt),
		cmocka_unit_test(test_crlf_injection_refused),
		cmocka_unit_test(test_line_lengths),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_malformed_input_refused),
		cmocka_unit_test(test_advice_by_status),
		cmocka_unit_test(test_dsn_wanted_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
