/*
 * addr.h - the one parser of RFC 5321 paths (reverse-path and forward-path).
 *
 * SYNOPSIS
 *	struct mailbox mb;
 *	size_t used;
 *	enum addr_err e = addr_parse_path(p, len, ADDR_NULL_OK, &mb, &used);
 *
 * DESCRIPTION
 *	Input is the text after "MAIL FROM:" or "RCPT TO:" (optional spaces
 *	already skipped by the caller are allowed too): a '<', an optional
 *	source route "@a,@b:" (RFC 5321 4.1.2, tolerated and stripped, noted in
 *	had_source_route), a Mailbox, a '>'. `used` is the number of bytes
 *	consumed up to and including the '>'; the ESMTP parameters follow.
 *	A bare address without angle brackets is refused (ADDR_ESYNTAX).
 *
 *	Validation is straight-line: the function returns ADDR_OK only with a
 *	mailbox whose every part was checked; any other return leaves *out
 *	unspecified and must be refused by the caller.
 *
 *	Local part: Dot-string or Quoted-string (RFC 5321 4.1.2). `local` holds
 *	the decoded content (quotes removed, quoted-pairs resolved), at most
 *	64 octets (RFC 5321 4.5.3.1.1); local_quoted records that it was quoted.
 *	Domain: a sequence of LDH labels (each 1..63, total <= 255, no leading
 *	or trailing '-'), or an address literal "[1.2.3.4]" / "[IPv6:...]"
 *	validated with inet_pton. A trailing dot in a domain is refused.
 *	The domain is stored lower-cased (ASCII); the local part as given.
 *	The whole path is at most 256 octets (RFC 5321 4.5.3.1.3).
 *
 *	Non-ASCII (UTF-8) octets are accepted in local part and domain only
 *	with ADDR_UTF8_OK (the SMTPUTF8 parameter, RFC 6531) and only as valid
 *	UTF-8; `utf8` is then set. Control characters (< 0x20, 0x7f) are never
 *	accepted, quoted or not.
 *
 *	"<>" is accepted only with ADDR_NULL_OK and gives is_null. "<postmaster>"
 *	(no domain, any case) is accepted only with ADDR_POSTMASTER_OK and gives
 *	is_postmaster with an empty domain (RFC 5321 4.5.1).
 *
 *	Relay hints: has_percent, has_bang, has_at_in_local (a quoted '@')
 *	are set from the decoded local part so that the relay rule can refuse
 *	the percent hack, bang paths and quoted-@ routing on every RCPT.
 *
 *	Details the text above leaves open, as implemented: leading SP before
 *	'<' is skipped and counted in `used`; the 256 octets run from '<' to
 *	'>' inclusive. An empty quoted local part ("") is refused (ELOCAL).
 *	Only the unquoted "<postmaster>" without source route is the bare
 *	postmaster. Source-route domains must be Domains (no literals). An
 *	address literal is stored with its brackets, lower-cased like any
 *	domain ("[ipv6:2001:db8::1]"); a general-address-literal tag other
 *	than IPv6 is refused. The C1 controls U+0080..U+009F count as control
 *	characters. Label lengths are counted in octets, U-labels included.
 *
 * DIAGNOSTICS
 *	addr_strerror() gives words for a reply; it never returns NULL.
 */
#ifndef TERN_ADDR_H
#define TERN_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256

enum addr_flags {
	ADDR_NULL_OK = 1 << 0,
	ADDR_POSTMASTER_OK = 1 << 1,
	ADDR_UTF8_OK = 1 << 2,
};

enum addr_err {
	ADDR_OK = 0,
	ADDR_ESYNTAX,	   /* not <...>, stray characters, bad quoting */
	ADDR_ETOOLONG,	   /* path, local part or domain over its limit */
	ADDR_ENODOMAIN,	   /* mailbox without @domain (other than postmaster) */
	ADDR_EDOMAIN,	   /* malformed domain or address literal */
	ADDR_ELOCAL,	   /* malformed local part */
	ADDR_E8BIT,	   /* non-ASCII without ADDR_UTF8_OK, or bad UTF-8 */
	ADDR_ENULL,	   /* "<>" where it is not allowed */
};

struct mailbox {
	char local[ADDR_LOCAL_MAX + 1];
	size_t local_len;
	char domain[ADDR_DOMAIN_MAX + 1];
	size_t domain_len;
	bool is_null;
	bool is_postmaster;
	bool local_quoted;
	bool domain_literal;
	bool utf8;
	bool had_source_route;
	bool has_percent;
	bool has_bang;
	bool has_at_in_local;
};

enum addr_err addr_parse_path(const uint8_t *p, size_t len, unsigned flags,
			      struct mailbox *out, size_t *used);

/*
 * Write the mailbox as it goes in a path without the angle brackets:
 * local@domain, the local part re-quoted when it is not a valid Dot-string,
 * "" for the null path, "postmaster" for the bare postmaster. Always
 * NUL-terminates when cap > 0. Returns the length it needed (like snprintf);
 * the output was truncated when that is >= cap.
 */
size_t addr_format(const struct mailbox *mb, char *out, size_t cap);

const char *addr_strerror(enum addr_err e);

#endif
