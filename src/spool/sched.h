/*
 * sched.h - the queue runner: the one owner of delivery attempts.
 *
 * SYNOPSIS
 *	sched_start(&q, loop, conf);	 in the queue process
 *	sched_stop(&q, on_stopped);
 *
 * DESCRIPTION
 *	Watches DATA_DIR/spool/queue (inotify for attribute changes, and a full
 *	scan at start and every minute as a safety net), and delivers every
 *	message there that is marked complete (spool.h). New messages are
 *	gathered for SCHED_GATHER_MS so that messages arriving together are
 *	delivered together and share their fsyncs. A delivery attempt reads the queue file, delivers each
 *	recipient not yet done to its Maildir on the thread pool, then:
 *	  all done:        fsync the Maildir new/ folders (grouped across
 *	                   messages), then remove the queue file;
 *	  some temporary:  record the recipients done in QID.st (atomic
 *	                   replace), retry after queue_retry;
 *	  expired:         past queue_lifetime, give up and log it.
 *	Every attempt and outcome is one log line with the queue id. At most
 *	SCHED_MAX_INFLIGHT attempts run at once. Bounces (RFC 3464) belong to
 *	the outbound issue; until then a permanent failure is logged.
 */
#ifndef TERN_SCHED_H
#define TERN_SCHED_H

#include <stdbool.h>
#include <uv.h>

#include "../conf/conf.h"
#include "../deliver/remote.h"
#include "../lib/dirsync.h"
#include "control.h"

#define SCHED_MAX_INFLIGHT 32
#define SCHED_BUCKETS 4096
#define SCHED_GATHER_MS 50

struct qent;

struct dkim_key;

struct sched {
	uv_loop_t *loop;
	const struct conf *conf;
	char queue_dir[DIRSYNC_PATH_MAX];
	uv_poll_t watch;	/* on an inotify descriptor: IN_ATTRIB only */
	int inotify_fd;
	uv_timer_t tick;
	uv_timer_t gather;
	uv_fs_t scan;
	bool scanning;
	bool started;		/* the first scan is done */
	uint64_t last_scan_ms;
	struct dirsync ds;
	struct qent *buckets[SCHED_BUCKETS];
	struct qent *runq, *runq_tail;
	unsigned inflight;
	unsigned nentries;
	bool stopping;
	void (*on_stopped)(struct sched *q);
	struct remote *remote;	/* NULL: no DNS resolver; remote mail waits */
	struct dkim_key *dkim_keys[CONF_MAX_DKIM]; /* conf->dkim_sign's, loaded once; NULL: unusable */
	struct control control;	/* DATA_DIR/control.sock */
	bool control_on;
};

int sched_start(struct sched *q, uv_loop_t *loop, const struct conf *conf, const char *relay_pass);
void sched_stop(struct sched *q, void (*on_stopped)(struct sched *q));

#endif
