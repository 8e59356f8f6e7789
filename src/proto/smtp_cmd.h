/*
 * smtp_cmd.h - SMTP command lines and their ESMTP parameters (pure parsers).
 *
 * SYNOPSIS
 *	struct smtp_cmd c;
 *	smtp_cmd_parse(line, len, &c);		 line without its CR LF
 *	smtp_parse_mail(c.arg, flags, &mb, &mp, &rep);
 *	smtp_parse_rcpt(c.arg, flags, &mb, &rp, &rep);
 *	smtp_parse_bdat(c.arg, &size, &last, &rep);
 *
 * DESCRIPTION
 *	No I/O, no allocation; results are slices into the caller's line or
 *	fixed-size fields. The session (smtp/) decides what is allowed when;
 *	these functions only say what the client wrote and whether it is
 *	well-formed.
 *
 *	smtp_cmd_parse: the verb is the text up to the first space (or the end),
 *	matched case-insensitively (RFC 5321 2.4); `arg` is what follows that
 *	single space, with trailing spaces removed. "MAIL FROM:" and "RCPT TO:"
 *	keep the "FROM:"/"TO:" in arg. HTTP verbs (GET, POST, HEAD, PUT,
 *	CONNECT, OPTIONS, DELETE, and a line starting "Host:" or "User-Agent:")
 *	give SMTP_HTTP so the session can close cross-protocol attacks at once.
 *
 *	smtp_parse_mail / smtp_parse_rcpt: "FROM:" / "TO:" case-insensitive,
 *	optional spaces after the colon (tolerated, as common clients send
 *	them), the path via addr_parse_path(), then SP-separated parameters
 *	"KEYWORD[=VALUE]" (RFC 5321 4.1.2 esmtp-param). Keywords are
 *	case-insensitive. A parameter given twice is refused. Values:
 *	  MAIL: SIZE=1*20DIGIT (RFC 1870), BODY=7BIT|8BITMIME (RFC 6152;
 *	        BINARYMIME only with SMTP_PARAM_BINARYMIME), SMTPUTF8 without a
 *	        value (RFC 6531; lets the path carry UTF-8), RET=FULL|HDRS and
 *	        ENVID=xtext of at most 100 octets (RFC 3461 4.3, 4.4), AUTH=xtext
 *	        or "<>" (RFC 4954 5; kept as given, at most 500 octets).
 *	  RCPT: NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY
 *	        (RFC 3461 4.1; NEVER alone), ORCPT=addr-type;xtext (RFC 3461
 *	        4.2; addr-type an atom, at most 500 octets in all).
 *	xtext is checked per RFC 3461 4: chars 33..126 except '+' and '=',
 *	and "+XX" with two upper-case hex digits.
 *
 *	On failure the functions return -1 and point *rep at a static reply
 *	(code, enhanced status, words): 501 5.5.4 for malformed arguments or
 *	parameter values, 501 5.1.7 for a bad sender path, 501 5.1.3 for a
 *	bad recipient path, 555 5.5.4 for an unknown or unsupported parameter
 *	(RFC 5321 4.1.1.11), 553 5.6.7 for a non-ASCII address without
 *	SMTPUTF8 (RFC 6531 3.5), 552 5.3.4 is NOT decided here (the session
 *	compares SIZE with its limit).
 *
 *	smtp_parse_bdat: "BDAT" SP chunk-size [SP "LAST"] (RFC 3030 2), size
 *	1*20DIGIT that fits in uint64_t; LAST case-insensitive.
 *
 *	Details the text above leaves open, as implemented: smtp_cmd_parse
 *	trims trailing SP/HTAB from the whole line before splitting, so
 *	"QUIT 	" is QUIT; only one SP after the verb is taken, so
 *	"MAIL  FROM:" gives arg " FROM:" and a 501. A non-ASCII path when
 *	SMTPUTF8 is not offered (or, for MAIL, not given) is 553 5.6.7; with
 *	SMTPUTF8 but invalid UTF-8 it is 501 5.1.7/5.1.3. The path must be
 *	followed by SP or the end ("<a@b>x" is 501 5.5.4). A value-less
 *	KEYWORD= is malformed (501). NOTIFY may not repeat an item; ORCPT
 *	needs a non-empty xtext after ';'. AUTH= is not gated by a flag (the
 *	session decides). BDAT tolerates extra spaces around LAST; BDAT 0 is
 *	valid. On success *rep is set to NULL.
 */
#ifndef TERN_SMTP_CMD_H
#define TERN_SMTP_CMD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/buf.h"
#include "addr.h"

enum smtp_verb {
	SMTP_UNKNOWN = 0,
	SMTP_HELO,
	SMTP_EHLO,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_BDAT,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
	SMTP_VRFY,
	SMTP_EXPN,
	SMTP_HELP,
	SMTP_STARTTLS,
	SMTP_AUTH,
	SMTP_ETRN,
	SMTP_HTTP,
};

struct smtp_cmd {
	enum smtp_verb verb;
	struct slice verb_text; /* as the client wrote it */
	struct slice arg;	/* after the first space; empty if none */
};

/* A reply the server sends: code, RFC 3463 enhanced status, words. */
struct smtp_reply {
	uint16_t code;
	const char *enh;
	const char *text;
};

enum smtp_body {
	BODY_UNSPECIFIED = 0,
	BODY_7BIT,
	BODY_8BITMIME,
	BODY_BINARYMIME,
};

enum dsn_ret {
	DSN_RET_UNSPECIFIED = 0,
	DSN_RET_FULL,
	DSN_RET_HDRS,
};

enum dsn_notify {
	DSN_NOTIFY_NEVER = 1 << 0,
	DSN_NOTIFY_SUCCESS = 1 << 1,
	DSN_NOTIFY_FAILURE = 1 << 2,
	DSN_NOTIFY_DELAY = 1 << 3,
};

#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500
#define SMTP_AUTHPARAM_MAX 500

enum smtp_param_flags {
	SMTP_PARAM_BINARYMIME = 1 << 0, /* BODY=BINARYMIME allowed (CHUNKING) */
	SMTP_PARAM_SMTPUTF8 = 1 << 1,	/* SMTPUTF8 offered in EHLO */
	SMTP_PARAM_DSN = 1 << 2,	/* DSN offered: RET ENVID NOTIFY ORCPT */
};

struct mail_params {
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum dsn_ret ret;
	char envid[SMTP_ENVID_MAX + 1]; /* xtext as given; "" if absent */
	bool has_auth;
	char auth[SMTP_AUTHPARAM_MAX + 1]; /* xtext or "<>", as given */
};

struct rcpt_params {
	unsigned notify; /* enum dsn_notify bits; 0 if absent */
	char orcpt[SMTP_ORCPT_MAX + 1]; /* "addr-type;xtext" as given; "" if absent */
};

void smtp_cmd_parse(const uint8_t *line, size_t len, struct smtp_cmd *out);

int smtp_parse_mail(struct slice arg, unsigned flags, struct mailbox *from,
		    struct mail_params *mp, const struct smtp_reply **rep);
int smtp_parse_rcpt(struct slice arg, unsigned flags, struct mailbox *to,
		    struct rcpt_params *rp, const struct smtp_reply **rep);
int smtp_parse_bdat(struct slice arg, uint64_t *size, bool *last,
		    const struct smtp_reply **rep);

/* RFC 3461 4: true if s is valid xtext. */
bool smtp_xtext_valid(struct slice s);
/* Valid xtext decoded ("+2B" -> '+') NUL-terminated into out: its length,
 * or -1 when s is not xtext, decodes to a NUL, or does not fit in cap. */
ssize_t smtp_xtext_decode(struct slice s, char *out, size_t cap);

#endif
