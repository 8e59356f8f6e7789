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
 *	every local domain. Names compare case-insensitively. This module only
 *	answers "does this recipient exist"; passwords are the AUTH issue's.
 *
 * DIAGNOSTICS
 *	users_load returns -1 with "FILE:LINE: message" or "FILE: cannot read".
 */
#ifndef TERN_USERS_H
#define TERN_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct users {
	char **names;	/* sorted, lower case */
	size_t n;
	bool loaded;
};

int users_load(struct users *u, const char *path, char *err, size_t errlen);
bool users_exists(const struct users *u, const char *local, const char *domain);
void users_free(struct users *u);

#endif
