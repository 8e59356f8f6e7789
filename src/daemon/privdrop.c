/* privdrop.c - a child gives up root for good before it handles any input. */
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/log.h"
#include "daemon.h"

void privdrop(const struct daemon *d, const char *proc)
{
	/* Die with the parent: no orphan keeps serving a stale config. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	umask(077);
	if (!d->drop)
		return;
	if (setgroups(0, NULL) < 0 || setresgid(d->gid, d->gid, d->gid) < 0 ||
	    setresuid(d->uid, d->uid, d->uid) < 0)
		fatal("event=privdrop-failed proc=%s user=%s", proc, d->conf.user);
	/* Verify it cannot be undone. */
	if (setuid(0) == 0 || seteuid(0) == 0)
		fatal("event=privdrop-failed proc=%s reason=\"root regained\"", proc);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}
