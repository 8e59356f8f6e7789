/*
 * dovecot_client.h - check a login against Dovecot's auth server, the way
 * Postfix's smtpd_sasl_type=dovecot does.
 *
 * SYNOPSIS
 *	char canon[USERS_NAME_MAX + 1], err[256];
 *	v = dovecot_auth_check("/var/run/dovecot/auth-client", user, pw, pwlen,
 *			       client_ip, local_ip, true, 10000,
 *			       canon, sizeof canon, err, sizeof err);
 *
 * DESCRIPTION
 *	Connects to Dovecot's "auth-client" UNIX socket (the default one, or a
 *	listener the operator adds for tern:
 *	  service auth { unix_listener /var/spool/tern/dovecot-auth { mode = 0660
 *	      user = tern } }
 *	), exchanges the handshake (proto/dovecot_auth.h), checks that the
 *	server speaks major version 1 and offers PLAIN, sends one AUTH request
 *	for PLAIN with the credentials and reads the answer:
 *	  OK			USERS_OK; canon gets the user= Dovecot returns
 *				(its canonical name, e.g. after
 *				auth_username_format), else the name given
 *	  FAIL			USERS_BAD_PASSWORD (wrong password, unknown user,
 *				disabled account: Dovecot does not say which)
 *	  FAIL temp / code=temp_fail, anything else: socket missing or refused,
 *	  not an auth-client socket, timeout, a malformed or unexpected line,
 *	  PLAIN not offered, a user= that does not fit canon
 *				USERS_ERROR: a 454 4.7.0 to the client, never a login
 *	A user name or password that PLAIN cannot carry (empty, holding NUL,
 *	longer than DOVECOT_USER_MAX / DOVECOT_PASS_MAX) is USERS_BAD_PASSWORD
 *	without asking Dovecot: no account can have it.
 *
 *	It blocks, bounded by timeout_ms overall (connect, handshake and
 *	answer; poll(2) on a non-blocking socket against one deadline): call
 *	it on the thread pool, never on an event loop. Dovecot delays every
 *	FAIL by auth_failure_delay (2 s by default) and, per client address,
 *	by its auth penalty (up to 15 s more) unless that is disabled, so a
 *	timeout under about 20 s can turn a wrong password into USERS_ERROR.
 *
 *	One connection per login, closed after the answer. Why: a thread-pool
 *	call then owns everything it touches (no connection shared between
 *	threads, no lock, no reconnect logic, no request ids to match across
 *	logins); a Dovecot restart or a wedged connection costs one login, not
 *	every later one; and over a UNIX socket the handshake costs well under
 *	a millisecond, next to a password hash that costs more. The price is
 *	one accept and one short-lived client in Dovecot per login (counted
 *	against the auth service's client_limit), which logins, rare next to
 *	messages, can afford.
 *
 *	CPID is the calling thread's id (gettid), not the process id: the
 *	protocol wants a number unique among the server's live clients, and
 *	thread-pool threads may hold connections at the same time. Dovecot
 *	ignores it on auth-client listeners but refuses a duplicate on its
 *	"login" ones.
 *
 *	Passwords: the credentials exist in this module only in the AUTH line
 *	(base64) and in the builder's PLAIN message, both wiped
 *	(explicit_bzero) before return; every buffer used is wiped. Nothing is
 *	logged here; err never holds the password.
 *
 *	client_ip, local_ip: the SMTP client's and our address, sent as rip= and
 *	lip= (Dovecot's logs, penalties and allow_nets use them); NULL or ""
 *	leaves them out. secured: the client talks to us over TLS (sent as
 *	"secured"). canon_cap must be at least 1 (USERS_NAME_MAX + 1 is
 *	enough for any name). err (errlen may be 0) gets a short reason for
 *	the log, "" on USERS_OK.
 *
 * DIAGNOSTICS
 *	The verdict; err says why for anything but USERS_OK.
 */
#ifndef TERN_DOVECOT_CLIENT_H
#define TERN_DOVECOT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "users.h"

enum users_verdict dovecot_auth_check(const char *socket_path, const char *user,
				      const char *password, size_t password_len,
				      const char *client_ip, const char *local_ip, bool secured,
				      unsigned timeout_ms, char *canon, size_t canon_cap, char *err,
				      size_t errlen);

#endif
