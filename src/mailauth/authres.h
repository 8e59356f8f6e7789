/*
 * authres.h - the Authentication-Results header field (RFC 8601): write
 * one, and read one back.
 *
 * SYNOPSIS
 *	Write (the SMTP server, one field per message received on port 25):
 *	struct authres_prop p[] = { { "smtp.mailfrom", "example.org" } };
 *	authres_begin(&b, "mx.example.net");
 *	authres_add(&b, "spf", "pass", NULL, NULL, p, 1);
 *	authres_add(&b, "dkim", "fail", "bad signature", NULL, ...);
 *	authres_end(&b);		 the field, CR LF included, is at the end of b
 *
 *	Read:
 *	authres_servid(body, len, id, sizeof id);	 just the authserv-id
 *	authres_field_is_ours(field, len, "mx.example.net"); forged verdicts
 *	authres_field_is_named(field, len);		 any A-R field (cut ones)
 *	authres_parse(body, len, parsed, err, sizeof err); everything
 *
 * DESCRIPTION
 *	Writing. authres_begin writes "Authentication-Results: <servid>",
 *	the id as a token (RFC 2045) when it is one, else as a quoted-string.
 *	Each authres_add writes ";" CR LF HTAB and one resinfo (RFC 8601 2.2):
 *
 *		method=result [reason="..."] [(comment)] [ptype.property=value ...]
 *
 *	each element after method=result on the same line when the line stays
 *	within 78 octets (RFC 5322 2.1.1 SHOULD), else folded onto a line of
 *	its own (CR LF HTAB). A property value that is a valid RFC 8601 pvalue
 *	in its unquoted forms, a token or [local-part] "@" domain-name (RFC
 *	6376 3.5: at least two labels; local-part a dot-atom), is written bare,
 *	anything else (empty, spaces, ':' in an IPv6 address, '/' in a DKIM
 *	b= prefix, ...) as a quoted-string. reason is always a quoted-string.
 *	Quoted-strings escape \ and " as quoted-pairs, a comment escapes ( )
 *	and \. In every argument an octet outside printable ASCII (0x20-0x7e)
 *	is written as '?', and only the first AUTHRES_ARG_MAX octets are used
 *	(AUTHRES_ID_MAX for servid): so no line can reach 998 octets (RFC
 *	5322 2.1.1 MUST) however long the arguments. method, result and property names ("ptype.property")
 *	are the caller's constants and must be RFC 8601 Keywords (letters,
 *	digits, '-'); they are written as given (after the '?' rule). A NULL
 *	reason or comment is left out; a NULL value is written as "".
 *	authres_end writes "; none" (RFC 8601 2.2, no-result) when nothing was
 *	added, then CR LF. Interoperability: python authres 1.2 (used by
 *	several milters) reads a quoted value only as the last property of its
 *	resinfo, and no quoted authserv-id; so pass the property most likely
 *	to need quotes (header.b, policy.iprev) last, and give a servid that
 *	is a host name.
 *
 *	The field must be the tail of b while it is built: begin, adds, end,
 *	with nothing else written to b in between (authres_end tells "nothing
 *	added" from the last line of b, and authres_add measures the current
 *	line there).
 *
 *	Reading follows the RFC 8601 2.2 grammar with CFWS (comments, nested,
 *	with quoted-pairs, and folding) per RFC 5322 3.2.2, over a length-given
 *	body that need not be NUL-terminated and is never read outside
 *	[body, body + len). Outside quoted-strings CR and LF count as white
 *	space (so a body with its folding and final CR LF reads as is); inside
 *	one, CR LF is unfolded and a lone CR or LF is an error. A body holding
 *	a NUL octet is an error. Keywords (method, result, ptype, property) are
 *	ldh-str (RFC 5321); compare them case-insensitively (RFC 8601 2.2).
 *	Choices where readers differ, made deliberately:
 *	 -  A bare property value (or reason) is any run of octets other than
 *	    white space, controls, ';' '(' ')' '"' and '\' (octets above 0x7f
 *	    included, RFC 8616). The grammar's pvalue is narrower, but real
 *	    fields (and the authres doctests) write DKIM header.b values
 *	    ("Qgi/FoC0") and IPv6 policy.iprev values unquoted; the run still
 *	    ends where the grammar says the next element begins.
 *	 -  A local-part written as a quoted-string ("a b"@example.com) is kept
 *	    as written, quotes included: unquoting would change the address.
 *	    Any other quoted value is stored unquoted.
 *	 -  "name=value" after method=result whose name has no "ptype." (the
 *	    x-tls example of the authres doctests) is skipped and counted in
 *	    nignored, as is a reason= after a property or a second reason=.
 *	 -  Anything else outside the grammar is an error: an empty resinfo
 *	    (";;", or ";" at the end, as some MTAs write), a method without
 *	    "=" result, "; none" after results, an unbalanced comment.
 *	authres_servid reads only as far as the authserv-id and what must come
 *	next (CFWS then end, ";" or a version number), so it also works on the
 *	first octets of a long field (see proto/hdr_stream.h); the id is a
 *	token or a quoted-string, strictly.
 *
 *	authres_field_is_ours decides what a border MTA must remove (RFC 8601
 *	5): a field named Authentication-Results (any case, WSP allowed before
 *	the colon) whose authserv-id equals servid ignoring ASCII case and one
 *	trailing root dot ("mx.example.net." is the same host); and,
 *	when the id cannot be read at all, one whose body holds servid anywhere
 *	(ignoring case), so nothing a reader might take for our own verdict
 *	passes. An empty servid claims nothing. A field cut short (the first
 *	field_max octets that proto/hdr_stream.h gives with partial set)
 *	cannot be judged this way: the cut may fall inside the id or before
 *	it (a long comment first), and the rest of the field then streams on
 *	unseen. So a caller drops every cut field that authres_field_is_named
 *	(RFC 8601 5 lets a border MTA remove any A-R field), and asks
 *	authres_field_is_ours only about whole ones.
 *
 * DIAGNOSTICS
 *	The writers return -1 when b cannot grow (its max, or memory); b then
 *	ends in a partial field, which the caller discards by setting b->len
 *	back to what it was before authres_begin. authres_servid returns -1
 *	when there is no readable id, or it does not fit in cap. authres_parse
 *	returns -1 with words in err (printable ASCII, NUL-terminated) on a
 *	syntax error or when a limit below is passed; out is then partly
 *	filled and not to be used.
 */
#ifndef TERN_AUTHRES_H
#define TERN_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

#define AUTHRES_ARG_MAX 320	/* octets of one writer argument used: 64 "@" 255 */
#define AUTHRES_LINE_SOFT 78	/* the writer folds before passing this (RFC 5322 2.1.1) */
#define AUTHRES_ID_MAX 255	/* authserv-id, unquoted */
#define AUTHRES_KEYWORD_MAX 63	/* method, result, ptype, property */
#define AUTHRES_VALUE_MAX 320	/* reason, property value (unquoted) */
#define AUTHRES_RESINFO_MAX 16	/* resinfos in one field */
#define AUTHRES_PROPS_MAX 32	/* properties in one field, all resinfos */

struct authres_prop {
	const char *name;	/* "ptype.property", e.g. "smtp.mailfrom" */
	const char *value;	/* NULL: "" */
};

/* "Authentication-Results: <servid>" into b. */
int authres_begin(struct buf *b, const char *servid);
/* ";" CR LF HTAB "<method>=<result>[ reason=...][ (comment)][ props]"; see DESCRIPTION. */
int authres_add(struct buf *b, const char *method, const char *result, const char *reason,
		const char *comment, const struct authres_prop *props, size_t nprops);
/* "; none" when nothing was added, then CR LF. */
int authres_end(struct buf *b);

/* A property as read: name is "ptype.property" as written, CFWS around the dot removed. */
struct authres_pprop {
	char name[2 * AUTHRES_KEYWORD_MAX + 2];
	char value[AUTHRES_VALUE_MAX + 1];	/* unquoted (but see DESCRIPTION) */
};

struct authres_resinfo {
	char method[AUTHRES_KEYWORD_MAX + 1];
	unsigned method_version;	/* "dkim/1": 1; 0 when none is written */
	char result[AUTHRES_KEYWORD_MAX + 1];
	bool has_reason;
	char reason[AUTHRES_VALUE_MAX + 1];	/* unquoted */
	size_t prop0, nprops;		/* its properties: props[prop0 .. prop0 + nprops) */
	unsigned nignored;		/* name=value without a ptype, and extra reason=, skipped */
};

/* About 23 KiB: allocate it, or keep it off small stacks. */
struct authres_parsed {
	char servid[AUTHRES_ID_MAX + 1];	/* unquoted */
	unsigned version;		/* authres-version; 0 when none is written (means 1) */
	bool none;			/* "; none": no method was applied */
	size_t nresinfo;
	struct authres_resinfo resinfo[AUTHRES_RESINFO_MAX];
	size_t nprops;
	struct authres_pprop props[AUTHRES_PROPS_MAX];
};

/* The authserv-id of a field body (what follows the colon): 0 with it in out, or -1. */
int authres_servid(const uint8_t *body, size_t len, char *out, size_t cap);
/* A whole field, name to body (with or without its final CR LF); see DESCRIPTION. */
bool authres_field_is_ours(const uint8_t *field, size_t len, const char *servid);
/* True when the field (whole or cut) is named Authentication-Results (any case, WSP before ':'). */
bool authres_field_is_named(const uint8_t *field, size_t len);
/* The whole body: 0, or -1 with words in err. */
int authres_parse(const uint8_t *body, size_t len, struct authres_parsed *out, char *err,
		  size_t errlen);

#endif
