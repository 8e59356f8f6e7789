/*
 * spool.h - the durable queue: accept a message, make it safe, hand it on.
 *
 * SYNOPSIS
 *	spool_init(&sp, loop, data_dir, worker_index);
 *	spool_msg_open(&sp, &m, envelope);	 tmp/QID, envelope records written
 *	spool_msg_write(&m, p, n);		 message bytes, as MSG records
 *	spool_msg_trailer(&m, QR_PREPEND, p, n); what was learnt at the end
 *	spool_msg_commit(&m, cb, arg);		 END, mark complete, fsync file and dir;
 *						 cb always runs later, from the loop
 *	spool_msg_abort(&m);			 drop an unfinished message
 *
 * DESCRIPTION
 *	Layout under DATA_DIR/spool: queue/ holds messages, corrupt/ holds
 *	files that failed to parse at start (kept for the operator, never
 *	deleted). A message file is created in queue/ with mode 0600 when
 *	DATA or BDAT begins; the commit writes its END record and sets the
 *	owner-execute bit (mode 0700, SPOOL_MODE_COMPLETE: Postfix's way of
 *	saying "complete"), then fsyncs the file and, at the same time, the
 *	queue/ directory in a group round (lib/dirsync.h). Only when both are
 *	done does cb run with 0: that is the moment the session may say 250
 *	(DESIGN.md invariant 1). docs/spool.md has the state diagram.
 *
 *	Records collect in memory (at most SPOOL_PENDING_MAX) and go to the
 *	page cache with writev(2) on the loop thread (they do not wait for the
 *	disk); a small message is one write. Every fsync runs on the thread
 *	pool. The first write error (ENOSPC, EIO...) is kept in m->err; later
 *	writes do nothing and the commit answers with that error, so the
 *	session can say 452 4.3.1 and nothing else is touched.
 *
 *	Queue ids are 20 characters [0-9A-Z]: 13 hex digits of microseconds
 *	since the epoch, the worker index (2) and a per-worker counter (5), so
 *	they sort by arrival and never collide between workers.
 *
 *	spool_recover() runs once at start, before any worker: it removes
 *	files never marked complete (never acknowledged) and moves complete
 *	files that do not parse to corrupt/.
 */
#ifndef TERN_SPOOL_H
#define TERN_SPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../lib/buf.h"
#include "../lib/dirsync.h"
#include "qfile.h"

#define SPOOL_MODE_WRITING 0600
#define SPOOL_MODE_COMPLETE 0700
#define SPOOL_PENDING_MAX (64 * 1024)

struct spool {
	uv_loop_t *loop;
	char queue_dir[DIRSYNC_PATH_MAX];
	unsigned worker;
	uint32_t counter;
	uint64_t last_usec;
	struct dirsync ds;
	unsigned pending;	/* commits in flight */
};

struct spool_msg {
	struct spool *sp;
	int fd;
	int err;		/* first errno, 0 if none */
	int fsync_err;		/* set by the thread pool */
	bool write_failed;	/* read by the thread pool: skip the fsync */
	int parts;		/* commit halves still running */
	struct buf pending;	/* records not yet written */
	char qid[QID_MAX + 1];
	uint64_t msg_size;
	uv_work_t work;
	struct dirsync_req dreq;
	void (*cb)(void *arg, int err);
	void *arg;
};

int spool_init(struct spool *sp, uv_loop_t *loop, const char *data_dir,
	       unsigned worker);
/* The directories under DATA_DIR that the children write ("" is DATA_DIR). */
#define SPOOL_NDIRS 7
extern const char *const spool_data_dirs[SPOOL_NDIRS];
/* Create them (the parent, before dropping privileges). */
int spool_make_dirs(const char *data_dir, char *err, size_t errlen);
int spool_recover(const char *data_dir);

void spool_new_qid(struct spool *sp, char out[QID_MAX + 1]);
/* env holds the envelope records (qfile_put...) without magic or ID. */
int spool_msg_open(struct spool *sp, struct spool_msg *m, const struct buf *env);
void spool_msg_write(struct spool_msg *m, const void *p, size_t n);
/* A record that follows the message (QR_PREPEND, QR_FOLDER; qfile.h), before
 * the commit; n == 0 writes nothing. */
void spool_msg_trailer(struct spool_msg *m, enum qrec_type t, const void *p, size_t n);
void spool_msg_commit(struct spool_msg *m, void (*cb)(void *arg, int err), void *arg);
void spool_msg_abort(struct spool_msg *m);

#endif
