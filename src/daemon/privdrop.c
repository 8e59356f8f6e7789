/* privdrop.c - a child gives up root for good before it handles any input. */
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/log.h"
#include "daemon.h"

/*
 * The child works inside the data directory with relative paths: entered
 * as root, it stays reachable after the drop even when a parent folder is
 * not searchable by the unprivileged user (a clone under /root, mode 0700).
 * A maildir template under data_dir becomes relative too.
 */
static void enter_data_dir(struct daemon *d, const char *proc)
{
	char prefix[CONF_PATH_MAX * 2 + 2];
	size_t n = 0, plen;
	struct conf *c = &d->conf;

	if (chdir(c->data_dir) < 0)
		fatal("event=start-failed proc=%s error=\"cannot enter data_dir %s\"", proc, c->data_dir);
	/* The template doubles any '%' of data_dir (conf.c default_maildir). */
	for (size_t i = 0; c->data_dir[i] != '\0' && n + 3 < sizeof prefix; i++) {
		if (c->data_dir[i] == '%')
			prefix[n++] = '%';
		prefix[n++] = c->data_dir[i];
	}
	while (n > 1 && prefix[n - 1] == '/')
		n--;
	prefix[n++] = '/';
	prefix[n] = '\0';
	plen = strlen(prefix);
	if (strncmp(c->maildir, prefix, plen) == 0)
		memmove(c->maildir, c->maildir + plen, strlen(c->maildir + plen) + 1);
	snprintf(c->data_dir, sizeof c->data_dir, ".");
}

void privdrop(struct daemon *d, const char *proc)
{
	/* Die with the parent: no orphan keeps serving a stale config. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	umask(077);
	enter_data_dir(d, proc);
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
