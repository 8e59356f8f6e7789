/*
 * users.h - the users file: who exists here.
 *
 * SYNOPSIS
 *	struct users u;
 *	if (users_load(&u, "/etc/tern/users", err, sizeof err) < 0) fatal(...);
 *	users_exists(&u, "alice", "example.com");
 *	users_free(&u);
 *
 * DESCRIPTION
 *	One account per line, "name:{SCHEME}hash" or "name:hash" (crypt(3)),
 *	the shape of Dovecot's passwd-file; '#' comments and blank lines are
 *	ignored; of the fields after the second ':' only the extra field
 *	"senders=a@x,@y" (the 8th, Dovecot's extra_fields) is read: the
 *	addresses and domains the account may send as besides its own. A name is an address
 *	(alice@example.com) or a bare local part (alice), which then exists in
 *	every local domain. Names compare case-insensitively. The "{SCHEME}"
 *	prefix (Dovecot's, any case) is kept upper-cased in user.scheme ("" when
 *	there is none) and user.hash is what follows it:
 *	  SCRAM-SHA-256		 Dovecot's "ITER,SALT,STOREDKEY,SERVERKEY"
 *				 (scram.h); users_load refuses a line whose
 *				 value does not parse, unless locked
 *	  PLAIN, CLEAR, CLEARTEXT the password itself (a password-equivalent)
 *	  anything else, or none a crypt(3) string: yescrypt ($y$), bcrypt
 *				 ($2b$), SHA-512-crypt ($6$) all work
 *	A hash that is empty or, except for the plain schemes, starts with '!'
 *	or '*' is locked: it never matches (lock a plain one with "!" before
 *	the '{'). The file must not be readable by group or others: users_load
 *	refuses it and says so (the hashes are secrets).
 *
 *	users_verify checks a password. It is slow by design (yescrypt costs
 *	milliseconds): call it on the thread pool, never on an event loop.
 *	Whatever the account, it spends one crypt(3) (the account's, else a
 *	yescrypt dummy) and one SCRAM derivation (the account's, else one with
 *	SCRAM_ITER_DEFAULT rounds), and compares the SHA-256 digests of the
 *	password and of a plain account's password. So an unknown name, a
 *	locked account, a plain one, a SCRAM one with the default rounds and
 *	a yescrypt one at the default cost all take the same time; other
 *	crypt methods and costs differ by what they cost (SHA-512-crypt is
 *	faster than the yescrypt dummy, more SCRAM rounds slower). All
 *	comparisons are constant-time.
 *
 *	users_scram_keys and users_cram_secret give what SCRAM-SHA-256 and
 *	CRAM-MD5 need; users_all_scram/users_all_cram say whether every
 *	(unlocked) account can do them, so the server knows what to offer.
 *
 *	users_add/users_set_password/users_del change the file: the new
 *	contents are written to FILE.tmp (mode 0600), fsynced, renamed over
 *	FILE. The password is stored as the scheme says: USERS_YESCRYPT and
 *	USERS_SHA512 as a bare crypt(3) string with a fresh salt,
 *	USERS_SCRAM_SHA256 as "{SCRAM-SHA-256}..." with 16 random octets of
 *	salt and SCRAM_ITER_DEFAULT rounds (byte for byte what
 *	`doveadm pw -s SCRAM-SHA-256` writes), USERS_PLAIN as "{PLAIN}password"
 *	(refused when the password holds ':', CR or LF, which the file cannot
 *	carry).
 *
 * DIAGNOSTICS
 *	users_load returns -1 with "FILE:LINE: message" or "FILE: message".
 *	The editing functions return -1 with a sentence in err.
 */
#ifndef TERN_USERS_H
#define TERN_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include "../proto/scram.h"

#define USERS_NAME_MAX 320

struct user {
	char *name;	/* lower case */
	char *hash;	/* what follows the "{SCHEME}" prefix */
	char *senders;	/* extra field senders=a@x,@y (lower case), or NULL */
	char scheme[24];	/* upper case, without the braces; "" when none */
};

struct users {
	struct user *v;	/* sorted by name */
	size_t n;
	bool loaded;
};

enum users_verdict {
	USERS_OK = 0,
	USERS_BAD_PASSWORD,	/* wrong password, or no such user */
	USERS_ERROR,		/* crypt failed: temporary, never a login */
};

/* How users_add/users_set_password store a password. */
enum users_scheme {
	USERS_YESCRYPT = 0,	/* the default */
	USERS_SHA512,		/* SHA-512-crypt, $6$ */
	USERS_SCRAM_SHA256,	/* {SCRAM-SHA-256}: AUTH SCRAM-SHA-256, PLAIN, LOGIN */
	USERS_PLAIN,		/* {PLAIN}: a password-equivalent; for CRAM-MD5 */
};

int users_load(struct users *u, const char *path, char *err, size_t errlen);
bool users_exists(const struct users *u, const char *local, const char *domain);
/* The account named exactly `name` (any case), or NULL. */
const struct user *users_find(const struct users *u, const char *name);
enum users_verdict users_verify(const struct users *u, const char *name,
				const char *password, size_t password_len);
void users_free(struct users *u);

/* The account's SCRAM keys: 0 when stored as {SCRAM-SHA-256}, -1 otherwise (other schemes cannot do SCRAM). */
int users_scram_keys(const struct user *u, struct scram_keys *out);
/* The account's password-equivalent secret for CRAM-MD5: only {PLAIN}/{CLEAR}; 0 or -1. */
int users_cram_secret(const struct user *u, const char **secret, size_t *len);
/*
 * True when every account that can log in can do SCRAM-SHA-256 (resp.
 * CRAM-MD5). Only then may the server advertise the mechanism: clients
 * pick the strongest one offered, and an account stored as crypt(3) could
 * never log in with it.
 */
bool users_all_scram(const struct users *u);
bool users_all_cram(const struct users *u);

/* The account may send as addr besides its own address: addr, or its
 * @domain, is in the account's senders= field (RFC 5321 has no opinion;
 * DESIGN.md: users cannot spoof each other unless the operator says so). */
bool users_may_send_as(const struct user *u, const char *addr);

/* Editing the file (for `tern user`). */
int users_add(const char *path, const char *name, const char *password,
	      enum users_scheme scheme, char *err, size_t errlen);
int users_set_password(const char *path, const char *name, const char *password,
		       enum users_scheme scheme, char *err, size_t errlen);
int users_del(const char *path, const char *name, char *err, size_t errlen);

#endif
