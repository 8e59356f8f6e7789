/*
 * maildir.h - local delivery into a Maildir (tmp/ -> fsync -> new/).
 *
 * SYNOPSIS
 *	maildir_path(tmpl, "alice", "example.com", path, sizeof path);
 *	r = maildir_deliver(path, &msg, new_dir, sizeof new_dir, err, sizeof err);
 *
 * DESCRIPTION
 *	maildir_subfolder(path, sizeof path, env.folder);	 quarantine: .Junk
 *	maildir_path expands %d (domain), %u (local part) and %% in the
 *	`deliver maildir` template. Both parts are lower-cased and every
 *	octet outside [a-z0-9._+=-] is written as %XX, and a leading '.' too,
 *	so no address can name a path outside its own folder ("..", "/").
 *
 *	maildir_deliver writes "Return-Path: <sender>" (RFC 5321 4.4: added
 *	at final delivery) and the stored message to tmp/ under the name
 *	ARRIVAL.UNIQUE.HOST,S=SIZE (the Maildir convention, with the queue id
 *	and recipient index as the unique part), fsyncs it and renames it into
 *	new/. The name is the same on every attempt: with maybe_there, when
 *	new/ (or, with check_cur, cur/) already holds it, the message was
 *	delivered before a crash and nothing is written again. The folder and
 *	its tmp/ new/ cur/ are created when the first open finds them missing. It creates the folder and its
 *	tmp/ new/ cur/ when missing. The caller must fsync new_dir (the rename)
 *	before it forgets the message; with several messages that is one
 *	grouped fsync (lib/dirsync.h). It blocks: run it on the thread pool.
 *
 * DIAGNOSTICS
 *	Returns 0, or an errno value with words in err; *permanent is set when
 *	a retry cannot help (the path is too long). A file where a folder
 *	should be is temporary: the operator can move it.
 */
#ifndef TERN_MAILDIR_H
#define TERN_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"
#include "../spool/qfile.h"

struct maildir_msg {
	struct slice sender;
	const uint8_t *qdata;		/* the queue file */
	size_t qlen;
	const struct qenv *env;
	const char *hostname;
	const char *unique;		/* same on every attempt: "QqidRn" */
	bool maybe_there;		/* look for an earlier delivery in new/ */
	bool check_cur;			/* and in cur/ (after a restart) */
};

int maildir_path(const char *tmpl, const char *local, const char *domain,
		 char *out, size_t cap);
/* Append the Maildir++ subfolder "/.<folder>" to path (nothing when folder
 * is empty); -1 when the name is not valid (conf_folder_valid) or the
 * result does not fit. */
int maildir_subfolder(char *path, size_t cap, struct slice folder);
int maildir_deliver(const char *maildir, const struct maildir_msg *m,
		    char *new_dir, size_t new_dir_cap, bool *permanent,
		    char *err, size_t errlen);

#endif
