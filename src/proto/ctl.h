/*
 * ctl.h - the control socket's line protocol (pure parser and formatters).
 *
 * SYNOPSIS
 *	struct ctl_req r;
 *	const char *why;
 *	if (ctl_parse_request(line, len, &r, &why) < 0)	 line without its LF
 *		ctl_format_err(out, sizeof out, why);
 *	else
 *		ctl_format_ok(out, sizeof out, r.verb, n);
 *
 *	struct ctl_reply rep;
 *	ctl_parse_reply(line, len, &rep);		 the client's side
 *
 * DESCRIPTION
 *	One request line, one reply line, then the server closes (spool/control.h
 *	is the server and the client). No I/O and no allocation here.
 *
 *	Request, at most CTL_LINE_MAX octets with its LF:
 *
 *	    VERB [SP ARG] LF
 *
 *	  FLUSH			every message in the queue: try it now
 *	  FLUSH qid		that message
 *	  FLUSH @domain		the messages with a recipient in domain
 *	  DELETE qid		remove the message (no bounce)
 *	  HOLD qid		move it to spool/hold/: not delivered until RELEASE
 *	  RELEASE qid		back to spool/queue/, delivered at once
 *	  ETRN @domain		RFC 1985, asked by an SMTP worker for its client;
 *				the same as FLUSH @domain (the worker turns the
 *				client's "ETRN example.com" into "@example.com";
 *				RFC 1985's "#queue" form is not supported)
 *
 *	VERB is matched ASCII case-insensitively. There is no SHOW or LIST:
 *	`tern queue list|show` read the spool files directly.
 *
 *	qid: the spool's queue id syntax, 1..QID_MAX characters [0-9A-Z]
 *	(spool.h; upper case only, exactly as the files are named).
 *	@domain: '@' then LDH labels of 1..63 octets separated by single dots,
 *	no label starting or ending with '-', 255 octets at most, no trailing
 *	dot, no address literal; stored lower-cased in req.arg.
 *
 *	Exactly one SP between VERB and ARG; any other SP, HTAB, CR, NUL or
 *	octet outside printable ASCII makes the request malformed. Whether the
 *	server saw a LF within CTL_LINE_MAX octets is the caller's check.
 *
 *	Reply, one line, at most CTL_LINE_MAX octets with its LF:
 *
 *	    "OK" SP n SP words LF	n: decimal count of messages affected (>= 0)
 *	    "ERR" SP words LF		words: printable ASCII, never empty
 *
 *	ctl_format_ok writes the words for each verb, so that the line minus
 *	"OK " reads as a sentence:
 *	    FLUSH, ETRN		"OK 3 messages scheduled for delivery"
 *	    DELETE		"OK 1 message deleted"
 *	    HOLD		"OK 1 message held"
 *	    RELEASE		"OK 0 messages released"
 *	ctl_format_err writes "ERR " and the words with every octet outside
 *	printable ASCII replaced by '?', cut to fit the line; empty words
 *	become "failed".
 *
 *	ctl_parse_reply accepts "OK" SP 1*10DIGIT [SP words] (n <= INT_MAX)
 *	and "ERR" SP words, words printable ASCII; the line without its LF.
 *
 * DIAGNOSTICS
 *	ctl_parse_request returns -1 and points *why at static words for an
 *	"ERR" reply: "empty request", "malformed request", "unknown command",
 *	"missing argument", "bad queue id", "bad domain", "line too long".
 *	The formatters return the line length (LF included, NUL not), or -1
 *	when cap < CTL_LINE_MAX + 1 (ctl_format_ok also for an unknown verb
 *	or n < 0).
 */
#ifndef TERN_CTL_H
#define TERN_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

#define CTL_LINE_MAX 512	/* request or reply, LF included */
#define CTL_QID_MAX 32		/* = QID_MAX (spool/qfile.h), checked in ctl.c */
#define CTL_DOMAIN_MAX 255
#define CTL_ARG_MAX (1 + CTL_DOMAIN_MAX)	/* "@" domain */

enum ctl_verb {
	CTL_NONE = 0,
	CTL_FLUSH,
	CTL_DELETE,
	CTL_HOLD,
	CTL_RELEASE,
	CTL_ETRN,
};

struct ctl_req {
	enum ctl_verb verb;
	char arg[CTL_ARG_MAX + 1];	/* "" (FLUSH only), a qid, or "@domain" */
};

struct ctl_reply {
	bool ok;
	int n;			/* OK: messages affected; ERR: 0 */
	struct slice words;	/* into the caller's line; may be empty after OK */
};

int ctl_parse_request(const uint8_t *line, size_t len, struct ctl_req *out,
		      const char **why);
int ctl_format_ok(char *out, size_t cap, enum ctl_verb verb, int n);
int ctl_format_err(char *out, size_t cap, const char *words);
int ctl_parse_reply(const uint8_t *line, size_t len, struct ctl_reply *out);

/* The wire name, upper case ("FLUSH"), or NULL for CTL_NONE / unknown. */
const char *ctl_verb_name(enum ctl_verb verb);
/* True if p[0..n) is a queue id as the spool names its files. */
bool ctl_qid_valid(const uint8_t *p, size_t n);
/* Check an LDH domain (without '@') and write it lower-cased and
 * NUL-terminated to out: its length, or -1 if invalid or cap too small. */
int ctl_domain_norm(const uint8_t *p, size_t n, char *out, size_t cap);

#endif
