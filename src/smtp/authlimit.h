/*
 * authlimit.h - failed logins, counted across every worker (brute-force defence).
 *
 * SYNOPSIS
 *	struct authlimit *al = authlimit_create();	 parent, before fork
 *	wait = authlimit_locked(al, &addr, now);	 before AUTH: seconds left, or 0
 *	r = authlimit_fail(al, &addr, user, &lim, now);	 after a 535
 *
 * DESCRIPTION
 *	Failures are remembered per client address (IPv6 per /64, as in
 *	connlimit.h) and per account name, each with the times of its last
 *	failures. When an address reaches `max` failures within `window`
 *	seconds it is locked for `lockout` seconds: AUTH from it gets 421 and
 *	the connection ends (DESIGN.md invariant 2: AUTH attempts have a
 *	limit). An account over the limit is reported (the caller logs it), but
 *	not locked: locking accounts would let anyone lock anyone out.
 *	A success does not clear the count: a guesser who finds one password
 *	keeps its record. Shared memory behind a process-shared robust mutex;
 *	a full table fails open (counts nothing) and says so in the result.
 */
#ifndef TERN_AUTHLIMIT_H
#define TERN_AUTHLIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct authlimit;

struct authlimit_conf {
	unsigned max;		/* failures before the lock */
	uint32_t window;	/* seconds */
	uint32_t lockout;	/* seconds */
};

struct authlimit_result {
	unsigned addr_failures;	/* within the window, this one included */
	unsigned user_failures;
	bool locked;		/* the address is locked now */
	bool untracked;		/* table full: nothing counted */
};

struct authlimit *authlimit_create(void);
uint32_t authlimit_locked(struct authlimit *al, const struct sockaddr_storage *ss, uint64_t now);
struct authlimit_result authlimit_fail(struct authlimit *al, const struct sockaddr_storage *ss,
				       const char *user, const struct authlimit_conf *c,
				       uint64_t now);

#endif
