/*
 * dsn_sample.c - write one DSN (spool/dsn.h) to standard output for the
 * scenario named on the command line; tests/integration/test_dsn_format.py
 * parses them with Python's email package.
 *
 *	dsn_sample failed|delayed|mixed|full|success|utf8|nullmx|big|noblank|list
 *
 * Exit 0, 1 when dsn_build refuses, 2 for an unknown scenario.
 */
#include <stdio.h>
#include <string.h>

#include "spool/dsn.h"

#define NOW 1772445600		/* Mon, 02 Mar 2026 10:00:00 +0000 */
#define HOUR 3600
#define DAY 86400

static const char msg_ascii[] =
	"Received: from client.example.org ([192.0.2.10])\r\n"
	"\tby mx.example.org (tern) with ESMTPS id Q4F3A2B1C; Mon, 02 Mar 2026 09:59:58 +0000\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: Bob <bob@remote.example>\r\n"
	"Subject: Lunch on Friday?\r\n"
	"Date: Mon, 02 Mar 2026 09:59:57 +0000\r\n"
	"Message-ID: <lunch.42@example.org>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"Hi Bob,\r\n"
	"\r\n"
	"are you free for lunch on Friday?\r\n"
	"\r\n"
	"Alice\r\n";

static const char msg_utf8[] =
	"From: =?utf-8?q?J=C3=BCrgen?= <j\xc3\xbcrgen@example.org>\r\n"
	"To: <\xe7\x94\xa8\xe6\x88\xb7@remote.example>\r\n"
	"Subject: Gr\xc3\xbc\xc3\x9f""e\r\n"
	"Message-ID: <utf8.7@example.org>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\n"
	"Sch\xc3\xb6ne Gr\xc3\xbc\xc3\x9f""e\r\n";

static const char msg_noblank[] =
	"From: alice@example.org\r\n"
	"To: bob@remote.example\r\n"
	"Subject: headers only, no body\r\n";

static struct dsn_report base(void)
{
	struct dsn_report r = {
		.reporting_mta = "mx.example.org",
		.qid = "Q4F3A2B1C",
		.sender = "alice@example.org",
		.arrival = NOW - 2,
		.msg = (const uint8_t *)msg_ascii,
		.msg_len = sizeof msg_ascii - 1,
		.max_full = 10 * 1024 * 1024,
		.now = NOW,
		.boundary_seed = "dsn-sample-boundary",
	};
	return r;
}

static struct dsn_rcpt failed_bob(void)
{
	struct dsn_rcpt rc = {
		.addr = "bob@remote.example",
		.orcpt = "rfc822;bob@remote.example",
		.action = DSN_FAILED,
		.status = "5.1.1",
		.remote_mta = "mx1.remote.example",
		.diagnostic = "550 5.1.1 <bob@remote.example>: Recipient address rejected: "
			      "User unknown in virtual mailbox table",
		.last_attempt = NOW - 1,
	};
	return rc;
}

static struct dsn_rcpt delayed_carol(void)
{
	struct dsn_rcpt rc = {
		.addr = "carol@slow.example",
		.action = DSN_DELAYED,
		.status = "4.4.1",
		.reason = "No mail server for slow.example answered (connection timed out)",
		.last_attempt = NOW - 60,
		.will_retry_until = NOW + 5 * DAY - HOUR,
	};
	return rc;
}

static int emit(const struct dsn_report *r)
{
	struct buf out;
	int rc = 1;

	buf_init(&out, 64 * 1024 * 1024);
	if (dsn_build(r, &out) == 0 && fwrite(out.data, 1, out.len, stdout) == out.len)
		rc = 0;
	else
		fprintf(stderr, "dsn_sample: dsn_build refused the scenario\n");
	buf_free(&out);
	return rc;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "failed", "delayed", "mixed", "full", "success",
					      "utf8", "nullmx", "big", "noblank" };
	struct dsn_report r = base();
	struct dsn_rcpt rcpts[3];
	const char *s = argc > 1 ? argv[1] : "";

	if (strcmp(s, "list") == 0) {
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			printf("%s\n", names[i]);
		return 0;
	}
	r.rcpts = rcpts;
	r.n = 1;
	if (strcmp(s, "failed") == 0) {
		r.envid = "QQ+2B314";
		rcpts[0] = failed_bob();
	} else if (strcmp(s, "delayed") == 0) {
		rcpts[0] = delayed_carol();
	} else if (strcmp(s, "mixed") == 0) {
		rcpts[0] = failed_bob();
		rcpts[1] = delayed_carol();
		rcpts[2] = (struct dsn_rcpt){
			.addr = "dave@example.net",
			.action = DSN_DELIVERED,
			.status = "2.0.0",
			.remote_mta = "mx.example.net",
			.diagnostic = "250 2.0.0 Ok: queued as 7D1E",
			.last_attempt = NOW - 1,
		};
		r.n = 3;
	} else if (strcmp(s, "full") == 0) {
		r.ret_full = true;
		rcpts[0] = failed_bob();
	} else if (strcmp(s, "success") == 0) {
		rcpts[0] = (struct dsn_rcpt){
			.addr = "dave@example.net",
			.orcpt = "rfc822;Dave+2Bsales@example.net",
			.action = DSN_RELAYED,
			.status = "2.0.0",
			.remote_mta = "mx.example.net",
			.diagnostic = "250 2.0.0 Ok: queued as 7D1E",
			.last_attempt = NOW - 1,
		};
	} else if (strcmp(s, "utf8") == 0) {
		r.smtputf8 = true;
		r.ret_full = true;
		r.sender = "j\xc3\xbcrgen@example.org";
		r.msg = (const uint8_t *)msg_utf8;
		r.msg_len = sizeof msg_utf8 - 1;
		rcpts[0] = (struct dsn_rcpt){
			.addr = "\xe7\x94\xa8\xe6\x88\xb7@remote.example",
			.orcpt = "utf-8;\\x{7528}\\x{6237}@remote.example",
			.action = DSN_FAILED,
			.status = "5.1.1",
			.remote_mta = "mx1.remote.example",
			.diagnostic = "550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7: no such user",
			.last_attempt = NOW - 1,
		};
	} else if (strcmp(s, "nullmx") == 0) {
		rcpts[0] = (struct dsn_rcpt){
			.addr = "erin@nullmx.example",
			.action = DSN_FAILED,
			.status = "5.1.10",
			.reason = "Domain nullmx.example has no mail server (null MX, RFC 7505)",
		};
	} else if (strcmp(s, "big") == 0) {
		r.ret_full = true;
		r.max_full = 64;
		rcpts[0] = failed_bob();
	} else if (strcmp(s, "noblank") == 0) {
		r.ret_full = false;
		r.msg = (const uint8_t *)msg_noblank;
		r.msg_len = sizeof msg_noblank - 1;
		rcpts[0] = failed_bob();
	} else {
		fprintf(stderr, "usage: dsn_sample failed|delayed|mixed|full|success|utf8|"
				"nullmx|big|noblank|list\n");
		return 2;
	}
	return emit(&r);
}
