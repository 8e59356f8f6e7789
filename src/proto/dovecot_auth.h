/*
 * dovecot_auth.h - the bytes of Dovecot's authentication protocol, client
 * side (the "auth-client" socket, protocol 1.x): server lines in, request
 * lines out.
 *
 * SYNOPSIS
 *	struct dovecot_line l;
 *	if (dovecot_parse_line(p, len, &l) < 0)	 a malformed line (LF excluded)
 *	n = dovecot_build_handshake(out, cap, pid);	 "VERSION\t1\t1\nCPID\t<pid>\n"
 *	n = dovecot_build_auth(&req, out, cap);	 "AUTH\t<id>\tPLAIN\t...\n"
 *	n = dovecot_tab_escape(p, len, out, cap);
 *	n = dovecot_tab_unescape(slice, out, cap);
 *
 * DESCRIPTION
 *	The protocol (Dovecot's doc/auth-protocol.txt and "Design/Auth
 *	Protocol"; checked against Dovecot 2.3.19) is one command per line,
 *	ended by LF; fields are separated by TAB. Values are "tab-escaped" with
 *	\001 as the escape character: \001 1 is \001, \001 t is TAB, \001 r is
 *	CR, \001 n is LF (what Dovecot 2.3's str_append_tabescaped writes);
 *	Dovecot 2.4 adds \001 0 for NUL, which is read here as NUL too; any
 *	other character after \001 stands for itself (as in Dovecot). A line
 *	that ends in a lone \001 is malformed.
 *
 *	A client session (one per connection):
 *	  C: VERSION 1 1, CPID <pid>
 *	  S: VERSION 1 <minor>, MECH <name> [params]..., SPID, CUID, COOKIE, DONE
 *	  C: AUTH <id> PLAIN service=smtp nologin lip=.. rip=.. [secured] resp=<b64>
 *	  S: OK <id> [user=..]  |  FAIL <id> [user=..] [reason=..] [code=..] [temp]
 *	     |  CONT <id> <b64>
 *
 *	dovecot_parse_line reads one server line (without its LF) into *out.
 *	Command names are case-sensitive, as in Dovecot. Returns 0 when the
 *	line is well formed: type says which command, DOVECOT_LINE_UNKNOWN for
 *	one this client does not know (the protocol says to ignore those).
 *	Returns -1 for a malformed line: empty; holding NUL, CR or LF; longer
 *	than DOVECOT_LINE_MAX; VERSION without two decimal numbers; MECH
 *	without a name that is 1-20 of [A-Z0-9_-] (RFC 4422 3.1); SPID, CUID or
 *	COOKIE without a value; OK, FAIL or CONT without a decimal 32-bit id;
 *	CONT without its data field, or data outside the base64 alphabet; on
 *	OK, a user= that is empty, repeated, longer than DOVECOT_USER_MAX once
 *	unescaped, or that holds a control character (< 0x20, 0x7f, NUL from
 *	\001 0) once unescaped: it names who logged in, so it is exact or the
 *	line is refused; on FAIL, a user=, reason= or code= whose escaping is
 *	broken. Unknown parameters are ignored.
 *	FAIL's temp is set by the "temp" flag (protocol 1.1) and by
 *	"code=temp_fail", which is what Dovecot 2.2.25 and later send instead
 *	(checked against 2.3.19); authz likewise by "authz" and
 *	"code=authz_fail". Everything else in a FAIL is only for the log:
 *	user=, reason= and code= are unescaped, cut at DOVECOT_USER_MAX,
 *	DOVECOT_REASON_MAX and DOVECOT_CODE_MAX octets, every control character
 *	turned into '?'; the first of each counts. Slices in *out point into
 *	the input; user, reason and code are copies, NUL-terminated.
 *
 *	dovecot_build_handshake writes the client handshake for pid (> 0).
 *	dovecot_build_auth writes one AUTH request for PLAIN with the
 *	parameters Postfix's xsasl_dovecot_server.c sends: service=, nologin,
 *	lip=, rip= (each left out when NULL or ""), secured (when set), then
 *	resp= last (the protocol says nothing may follow it): base64 of
 *	NUL user NUL password (RFC 4616, empty authzid). service, lip and rip
 *	are tab-escaped; they must not hold LF. The user must be 1 to
 *	DOVECOT_USER_MAX octets and the password 1 to DOVECOT_PASS_MAX, neither
 *	holding NUL. Both return the length written (NUL-terminated, the NUL
 *	not counted), or -1 when a field is refused or the line would not fit
 *	in cap or in DOVECOT_REQUEST_MAX. The AUTH line carries the password:
 *	the caller wipes out (explicit_bzero) after use; on -1 all cap
 *	octets of out are wiped here, and every internal copy of the password
 *	is wiped either way.
 *
 *	dovecot_tab_escape writes p[0..n) escaped and NUL-terminated; returns
 *	the length, or -1 when it does not fit in cap. dovecot_tab_unescape
 *	writes the unescaped value NUL-terminated (it may itself hold a NUL,
 *	from \001 0); returns the length, or -1 when it does not fit in cap or
 *	ends in a lone \001.
 *
 *	No allocation, no I/O; inputs need no NUL termination.
 *
 * DIAGNOSTICS
 *	-1 only; the line classes above are the reasons.
 */
#ifndef TERN_DOVECOT_AUTH_H
#define TERN_DOVECOT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/buf.h"

/* Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH (2.3): the longest server line read. */
#define DOVECOT_LINE_MAX 16384
/* The longest request built: protocol 1.1 says lines fit in 8192 octets. */
#define DOVECOT_REQUEST_MAX 8192
#define DOVECOT_USER_MAX 320	/* = USERS_NAME_MAX (users.h) */
#define DOVECOT_PASS_MAX 1024
#define DOVECOT_REASON_MAX 200
#define DOVECOT_CODE_MAX 32
#define DOVECOT_MECH_NAME_MAX 20	/* RFC 4422 3.1 */

enum dovecot_line_type {
	DOVECOT_LINE_UNKNOWN = 0,	/* a command this client does not know */
	DOVECOT_LINE_VERSION,
	DOVECOT_LINE_MECH,
	DOVECOT_LINE_SPID,
	DOVECOT_LINE_CUID,
	DOVECOT_LINE_COOKIE,
	DOVECOT_LINE_DONE,
	DOVECOT_LINE_OK,
	DOVECOT_LINE_FAIL,
	DOVECOT_LINE_CONT,
};

struct dovecot_line {
	enum dovecot_line_type type;
	unsigned major, minor;		/* VERSION */
	struct slice arg;		/* MECH name; SPID, CUID, COOKIE value (raw);
					   CONT base64 data (may be empty) */
	bool mech_private;		/* MECH "private": not to be offered */
	bool mech_plaintext;		/* MECH "plaintext" */
	uint32_t id;			/* OK, FAIL, CONT */
	bool has_user;			/* OK, FAIL: user= given */
	char user[DOVECOT_USER_MAX + 1];	/* unescaped, no control characters */
	bool has_reason;		/* FAIL: reason= given */
	char reason[DOVECOT_REASON_MAX + 1];	/* unescaped, truncated, printable */
	char code[DOVECOT_CODE_MAX + 1];	/* FAIL code= ("" without), as reason */
	bool temp;			/* FAIL: temporary (temp, code=temp_fail) */
	bool authz;			/* FAIL: "authz" flag or code=authz_fail */
};

struct dovecot_auth_request {
	uint32_t id;			/* > 0: Dovecot refuses id 0 */
	const char *service;		/* "smtp" */
	const char *local_ip;		/* lip=, left out when NULL or "" */
	const char *remote_ip;		/* rip=, left out when NULL or "" */
	bool secured;			/* TLS (or otherwise protected) to the client */
	const uint8_t *user;		/* the authentication identity */
	size_t user_len;
	const uint8_t *password;
	size_t password_len;
};

int dovecot_parse_line(const uint8_t *p, size_t len, struct dovecot_line *out);
ssize_t dovecot_build_handshake(char *out, size_t cap, unsigned long pid);
ssize_t dovecot_build_auth(const struct dovecot_auth_request *r, char *out, size_t cap);
ssize_t dovecot_tab_escape(const uint8_t *p, size_t n, char *out, size_t cap);
ssize_t dovecot_tab_unescape(struct slice in, char *out, size_t cap);

#endif
