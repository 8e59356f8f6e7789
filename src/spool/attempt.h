/*
 * attempt.h - one delivery attempt of one queued message, every recipient.
 *
 * SYNOPSIS
 *	attempt_start(&ctx, qid, &prev, on_outcome, arg);
 *	   later, from the loop: on_outcome(arg, &outcome)
 *
 * DESCRIPTION
 *	Three phases, so that nothing blocks the loop (DESIGN.md invariant 6):
 *	  1. thread pool: read the queue file and its state file QID.st;
 *	     deliver the local recipients to their Maildirs (deliver/maildir.h);
 *	     past queue_lifetime, give every pending recipient up instead.
 *	  2. loop: the other recipients, grouped by domain, go to the remote
 *	     agent (deliver/remote.h): each domain's MX, the smarthost, or the
 *	     LMTP server for local recipients with `deliver lmtp`.
 *	  3. thread pool: the results. Delivered and failed recipients are
 *	     done; failures (5xx, null MX, expiry) become one bounce to the
 *	     sender (spool/dsn.h, queued with spool/inject.h) unless the sender
 *	     is null or NOTIFY says otherwise (RFC 3461); the first time a
 *	     message is older than delay_warning, one delay DSN; the state file
 *	     records what is done, each deferred recipient's last reply, the
 *	     attempt count and whether the warning went (fsynced, renamed).
 *	One log line per recipient and attempt: event=delivery qid= from= to=
 *	relay= tls= status=sent|deferred|bounced|expired attempt= delay=
 *	detail= (the reply), the event stream of DESIGN.md.
 *
 *	A crash between a remote 250 and the state file write delivers that
 *	recipient again on restart: the one window DESIGN.md allows.
 *
 * QID.st, one fact per line (old files with bare numbers still read):
 *	N			recipient N is done
 *	A n			n attempts so far (the backoff survives restarts)
 *	W			the delay warning was sent
 *	T N ENH TEXT		recipient N's last temporary failure
 */
#ifndef TERN_ATTEMPT_H
#define TERN_ATTEMPT_H

#include <stdbool.h>
#include <uv.h>

#include "../conf/conf.h"
#include "../deliver/remote.h"
#include "../lib/dirsync.h"

struct dkim_key;

struct attempt_ctx {
	uv_loop_t *loop;
	const struct conf *conf;
	const char *queue_dir;
	struct remote *remote;
	struct dkim_key *const *dkim_keys; /* parallel to conf->dkim_sign; NULL entries unusable */
};

/* What the scheduler knows of a message between attempts. */
struct attempt_prev {
	unsigned attempts;	/* in this process */
	bool recovered;		/* found at start: may have been delivered before a crash */
	bool has_state;		/* a QID.st exists */
};

struct attempt_outcome {
	bool gone;		/* the file is gone or not complete: forget it */
	unsigned temp;		/* recipients still to do */
	unsigned attempts;	/* attempts so far, persisted ones included */
	bool has_state;
	bool need_sync;		/* fsync sync_dir (Maildir new/) before removal */
	char sync_dir[DIRSYNC_PATH_MAX];
};

int attempt_start(const struct attempt_ctx *ctx, const char *qid, const struct attempt_prev *prev,
		  void (*done)(void *arg, const struct attempt_outcome *o), void *arg);

#endif
