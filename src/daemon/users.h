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
 *	ignored; fields after the second ':' are ignored. A name is an address
 *	(alice@example.com) or a bare local part (alice), which then exists in
 *	every local domain. Names compare case-insensitively. A "{SCHEME}"
 *	prefix on the hash (Dovecot's) is skipped; the rest is a crypt(3)
 *	string: yescrypt ($y$), bcrypt ($2b$), SHA-512-crypt ($6$) all work.
 *	The file must not be readable by group or others: users_load refuses
 *	it and says so (the hashes are secrets).
 *
 *	users_verify checks a password with crypt(3). It is slow by design
 *	(yescrypt costs milliseconds): call it on the thread pool, never on
 *	an event loop. It compares in constant time, and for an unknown name
 *	it still spends one hash, so timing does not tell names apart.
 *
 *	users_add/users_set_password/users_del change the file: the new
 *	contents are written to FILE.tmp (mode 0600), fsynced, renamed over
 *	FILE. Passwords are hashed with yescrypt and a fresh salt.
 *
 * DIAGNOSTICS
 *	users_load returns -1 with "FILE:LINE: message" or "FILE: message".
 *	The editing functions return -1 with a sentence in err.
 */
#ifndef TERN_USERS_H
#define TERN_USERS_H

#include <stdbool.h>
#include <stddef.h>

#define USERS_NAME_MAX 320

struct user {
	char *name;	/* lower case */
	char *hash;	/* crypt(3) string, "{SCHEME}" prefix removed */
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

int users_load(struct users *u, const char *path, char *err, size_t errlen);
bool users_exists(const struct users *u, const char *local, const char *domain);
/* The account named exactly `name` (any case), or NULL. */
const struct user *users_find(const struct users *u, const char *name);
enum users_verdict users_verify(const struct users *u, const char *name,
				const char *password, size_t password_len);
void users_free(struct users *u);

/* Editing the file (for `tern user`). */
int users_add(const char *path, const char *name, const char *password,
	      char *err, size_t errlen);
int users_set_password(const char *path, const char *name, const char *password,
		       char *err, size_t errlen);
int users_del(const char *path, const char *name, char *err, size_t errlen);

#endif
