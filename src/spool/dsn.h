/*
 * dsn.h - delivery status notifications: bounces, delay warnings, success
 *	   reports (pure: no I/O).
 *
 * SYNOPSIS
 *	if (dsn_wanted(rcpt.notify, DSN_FAILED)) ... collect it in rcpts[]
 *	struct dsn_report r = { .reporting_mta = host, .qid = id, ... };
 *	dsn_build(&r, &out);		the whole message, appended to out
 *
 * DESCRIPTION
 *	dsn_build writes one RFC 5322 message, CRLF lines of at most 998
 *	octets, that the caller queues from the null reverse-path to
 *	r->sender:
 *
 *	  Date, From: Mail Delivery System <MAILER-DAEMON@reporting_mta>,
 *	  To: <sender>, Subject (from the worst action present: failed >
 *	  delayed > delivered/relayed/expanded), Message-ID
 *	  <qid.dsn.now@reporting_mta>, In-Reply-To and References when the
 *	  original has a usable Message-ID, Auto-Submitted: auto-replied
 *	  (RFC 3834 5), MIME-Version, Content-Type: multipart/report;
 *	  report-type=delivery-status (RFC 6522), Content-Transfer-Encoding.
 *
 *	  part 1  text/plain: per recipient what happened, the remote's reply
 *	          quoted (or r->reason, or the status in words), and what the
 *	          sender can do about it; for delays until when tern keeps
 *	          trying. Lines are wrapped at 76 columns.
 *	  part 2  message/delivery-status (RFC 3464): per-message fields
 *	          Original-Envelope-Id (with envid), Reporting-MTA, Arrival-Date
 *	          (arrival > 0), X-Tern-Queue-ID; then per recipient
 *	          Original-Recipient (with orcpt), Final-Recipient, Action,
 *	          Status, Remote-MTA, Diagnostic-Code: smtp; ..., Last-Attempt-
 *	          Date (last_attempt > 0), Will-Retry-Until (delayed, > 0).
 *	  part 3  the original: message/rfc822 when ret_full, some recipient
 *	          failed (RFC 3461 4.3: RET applies to failure reports), the
 *	          message is at most max_full octets and every line of it is
 *	          CRLF-terminated, NUL-free and at most 998 octets; otherwise
 *	          text/rfc822-headers: the lines before the first empty line
 *	          (the whole message if it has none), at most max_full octets
 *	          cut at a line end, bare CR/LF made CRLF, NUL dropped, lines
 *	          over 998 octets folded. The human part says which and why.
 *
 *	With r->smtputf8 (RFC 6533) the types are multipart/report;
 *	report-type=global-delivery-status, message/global-delivery-status,
 *	message/global or message/global-headers, the text is charset=utf-8,
 *	and a non-ASCII recipient is "Final-Recipient: utf-8; addr".
 *
 *	ORCPT and ENVID are xtext (RFC 3461 4): they are shown decoded
 *	("rfc822;a+2Bb@x" -> "Original-Recipient: rfc822; a+b@x") when the
 *	decoded text is printable (ASCII, or UTF-8 with smtputf8; for
 *	addr-type utf-8 also "\x{HHHH}" with smtputf8), else as given.
 *
 *	The output is 7bit unless smtputf8, or unless the returned original
 *	holds 8-bit octets (an 8BITMIME message): then the top-level
 *	Content-Transfer-Encoding (and part 3's) is 8bit and the report must be
 *	sent with BODY=8BITMIME. The boundary never occurs in any part: it is
 *	boundary_seed, with ".N" appended until it is absent from the content,
 *	or, without a seed, "=_QID.RANDOMHEX", drawn again until it is absent.
 *
 *	max_full 0 means DSN_MAX_FULL_DEFAULT. Times are epoch seconds, shown
 *	in UTC as RFC 5322 dates.
 *
 *	dsn_wanted: RFC 3461 4.1 / 5.2: NOTIFY=NEVER (alone or not) never;
 *	NOTIFY absent (0): failure, and delay (tern's choice); otherwise
 *	SUCCESS covers delivered, relayed and expanded, FAILURE failed, DELAY
 *	delayed.
 *
 * DIAGNOSTICS
 *	dsn_build returns 0, or -1 with out as it was: malformed input (CR, LF
 *	or another control character in a field, a missing or empty required
 *	field, the null sender - which never gets a DSN, RFC 5321 6.1 -, a
 *	non-ASCII address without smtputf8 or invalid UTF-8 with it, a
 *	status that is not RFC 3463 "c.s.d" or does not fit the action
 *	(delayed 4, failed 4 or 5, the others 2), malformed ORCPT/ENVID
 *	xtext, a time before 1970 or after 9999, over-long fields), or out's
 *	cap or memory ran out.
 */
#ifndef TERN_DSN_H
#define TERN_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

#define DSN_MAX_FULL_DEFAULT (10u * 1024 * 1024)
#define DSN_ADDR_MAX 512	 /* a path is at most 256 (RFC 5321 4.5.3.1.3) */
#define DSN_HOST_MAX 255
#define DSN_DIAG_MAX 998
#define DSN_REASON_MAX 2000
#define DSN_SEED_MAX 60

enum dsn_action { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED, DSN_RELAYED, DSN_EXPANDED };

struct dsn_rcpt {
	const char *addr;	   /* the recipient as given in RCPT TO (no <>) */
	const char *orcpt;	   /* RFC 3461 ORCPT "addr-type;xtext" or NULL */
	enum dsn_action action;
	char status[12];	   /* RFC 3463 "5.1.1" */
	const char *remote_mta;	   /* "mx1.remote.example" or NULL */
	const char *diagnostic;	   /* the remote's reply, one line, or NULL */
	const char *reason;	   /* words for the human part, or NULL */
	int64_t last_attempt;	   /* epoch seconds; 0: none */
	int64_t will_retry_until;  /* DSN_DELAYED: epoch seconds; 0: unknown */
};

struct dsn_report {
	const char *reporting_mta; /* our hostname */
	const char *qid;	   /* queue id of the original */
	const char *envid;	   /* RFC 3461 ENVID xtext or NULL */
	const char *sender;	   /* the original envelope sender: the DSN's To */
	int64_t arrival;	   /* epoch seconds; 0: unknown */
	bool ret_full;		   /* RET=FULL; else headers only (RFC 3461 4.3) */
	bool smtputf8;		   /* the original used SMTPUTF8 (RFC 6533) */
	const uint8_t *msg;	   /* the original as spooled (CRLF lines) */
	size_t msg_len;
	size_t max_full;	   /* return whole only up to this; 0: default */
	const struct dsn_rcpt *rcpts;
	size_t n;
	int64_t now;		   /* for Date: and Message-ID */
	const char *boundary_seed; /* deterministic boundary; NULL: random */
};

int dsn_build(const struct dsn_report *r, struct buf *out);
bool dsn_wanted(unsigned notify_flags, enum dsn_action action);

#endif
