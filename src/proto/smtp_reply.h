/*
 * smtp_reply.h - replies of an SMTP or LMTP server, read by our client (pure parser).
 *
 * SYNOPSIS
 *	struct smtp_reply_parser p;
 *	struct smtp_ehlo ext;
 *
 *	smtp_reply_init(&p, NULL);		 or &ext for the EHLO/LHLO reply
 *	while (len > 0) {
 *		used = smtp_reply_feed(&p, in, len);
 *		in += used; len -= used;
 *		if (p.status == SMTP_REPLY_DONE) { use p.code p.enh p.text; smtp_reply_init(&p, NULL); }
 *		if (p.status == SMTP_REPLY_ERROR) { close the connection: p.error says why }
 *	}
 *
 * DESCRIPTION
 *	Bytes go in as they come from the network, split anywhere. A reply is
 *	zero or more "ddd-text" lines and one "ddd SP text" or "ddd" line, all
 *	with the same code (RFC 5321 4.2, 4.2.1): the first digit 2-5, the
 *	second 0-5, the third 0-9. smtp_reply_feed() stops right after the
 *	line that completes a reply and returns how many octets it used: the
 *	octets after it belong to the next reply (pipelining, RFC 2920) or,
 *	after a 220 to STARTTLS, must be thrown away (RFC 3207 4.2: the
 *	mirror image of CVE-2011-0411). Feeding a parser that is DONE or
 *	ERROR uses nothing.
 *
 *	Lines end in CR LF. A bare LF also ends a line (servers that send one
 *	exist, and an LF cannot be smuggled into anything here); bare_lf
 *	records it for the log. A CR that is not just before the LF stays in
 *	the text (escaped). Limits: a line may hold SMTP_REPLY_LINE_MAX octets
 *	with its line end, a reply SMTP_REPLY_LINES_MAX lines; past either the
 *	reply is an ERROR and the connection must be closed: the rest of the
 *	stream cannot be trusted to be in step.
 *
 *	ERROR also for: a line shorter than three digits or starting with
 *	something else, a code out of range, a fourth octet that is neither
 *	SP nor '-' ("250x"), a continuation whose code differs from the first
 *	line's. `error` is a static sentence naming what was wrong.
 *
 *	Results (valid when DONE):
 *	  code	the three digits as a number.
 *	  enh	the RFC 3463 enhanced status code when the first line's text
 *		starts with one (RFC 2034): class "." subject "." detail, class
 *		2, 4 or 5 and equal to the code's first digit, subject and
 *		detail 1 to 3 digits, then SP or the end of the line; else "".
 *		A code whose class does not match (a "250 5.1.1 ...") is not
 *		taken: enh stays "" and the text keeps it.
 *	  text	the text of every line, the enhanced code taken away where it
 *		equals enh (servers repeat it on each line), joined with " / ",
 *		escaped for logs and files: octets outside 0x20-0x7e and the
 *		backslash become "\xHH", so no CR, LF, NUL or quote-breaking
 *		byte survives; capped at SMTP_REPLY_TEXT_MAX - 1 octets, ending
 *		in "..." when cut (never inside an escape). Always NUL-terminated.
 *	  nlines, bare_lf.
 *	The greeting and a HELO reply are ordinary replies.
 *
 *	EHLO and LHLO: pass an smtp_ehlo to smtp_reply_init(); every line after
 *	the first (which names the server) goes through smtp_ehlo_line() as it
 *	completes, whatever the code (the caller looks at code first: a 5xx
 *	means "no EHLO", and the struct should then be ignored).
 *	smtp_ehlo_line() reads one keyword line: the keyword up to SP or '='
 *	is matched case-insensitively; unknown keywords are ignored.
 *	  PIPELINING 8BITMIME SMTPUTF8 DSN STARTTLS CHUNKING BINARYMIME
 *	  ENHANCEDSTATUSCODES		flags
 *	  SIZE [n]			has_size; size = n, 0 when absent, 0 or
 *					not a number that fits (RFC 1870: 0 is
 *					"no fixed maximum")
 *	  AUTH mech ...  and  AUTH=mech ...	(the second is what old servers
 *					send) auth |= SMTP_AUTH_* for the
 *					mechanisms known here, case-insensitive
 *
 *	No I/O, no allocation; nothing needs NUL termination.
 *
 * DIAGNOSTICS
 *	SMTP_REPLY_ERROR with `error`; nothing else can fail.
 */
#ifndef TERN_SMTP_REPLY_H
#define TERN_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX 2048	/* octets of one line, CR LF included */
#define SMTP_REPLY_LINES_MAX 100	/* lines of one reply */
#define SMTP_REPLY_TEXT_MAX 512		/* text[], NUL included */
#define SMTP_ENH_MAX 12			/* "5.123.123" and a NUL fit */

enum smtp_reply_status {
	SMTP_REPLY_MORE = 0,	/* feed more bytes */
	SMTP_REPLY_DONE,	/* a whole reply: code, enh, text */
	SMTP_REPLY_ERROR,	/* malformed or over a limit: close */
};

enum smtp_auth_mech {
	SMTP_AUTH_PLAIN = 1 << 0,
	SMTP_AUTH_LOGIN = 1 << 1,
	SMTP_AUTH_CRAM_MD5 = 1 << 2,
	SMTP_AUTH_SCRAM_SHA_256 = 1 << 3,
	SMTP_AUTH_XOAUTH2 = 1 << 4,
	SMTP_AUTH_OTHER = 1 << 15,	/* some mechanism not listed here */
};

/* What a server offers in its EHLO (or LHLO) reply. */
struct smtp_ehlo {
	bool pipelining;		/* RFC 2920 */
	bool has_size;			/* RFC 1870 */
	uint64_t size;			/* 0: no fixed maximum */
	bool eightbitmime;		/* RFC 6152 */
	bool smtputf8;			/* RFC 6531 */
	bool dsn;			/* RFC 3461 */
	bool starttls;			/* RFC 3207 */
	bool chunking;			/* RFC 3030 */
	bool binarymime;		/* RFC 3030 */
	bool enhancedstatuscodes;	/* RFC 2034 */
	unsigned auth;			/* enum smtp_auth_mech bits; 0: no AUTH */
};

struct smtp_reply_parser {
	enum smtp_reply_status status;
	int code;
	char enh[SMTP_ENH_MAX];
	char text[SMTP_REPLY_TEXT_MAX];
	unsigned nlines;
	bool bare_lf;
	const char *error;		/* static; set with SMTP_REPLY_ERROR */

	/* private */
	struct smtp_ehlo *ehlo;
	size_t text_len;
	bool text_cut;
	size_t line_len;
	uint8_t line[SMTP_REPLY_LINE_MAX];
};

void smtp_reply_init(struct smtp_reply_parser *p, struct smtp_ehlo *ehlo);
size_t smtp_reply_feed(struct smtp_reply_parser *p, const uint8_t *in, size_t len);

void smtp_ehlo_init(struct smtp_ehlo *e);
/* One line of an EHLO reply, its "250-" or "250 " already taken away. */
void smtp_ehlo_line(struct smtp_ehlo *e, const uint8_t *line, size_t len);

/*
 * Escape p for a log or a file as `text` is (see above) into out (cap >=
 * 4), NUL-terminated, cut with "..." when it does not fit; returns the
 * length written. For callers that hold other untrusted text the same way.
 */
size_t smtp_reply_escape(const uint8_t *p, size_t len, char *out, size_t cap);

#endif
