/*
 * dirsync.h - group commit of directory entries.
 *
 * SYNOPSIS
 *	struct dirsync ds;
 *	dirsync_init(&ds, loop);
 *	dirsync_request(&ds, &req, "/var/tern/spool/queue", cb, arg);
 *
 * DESCRIPTION
 *	A rename into a directory is durable only once that directory is
 *	fsynced. An fsync costs milliseconds, so requests are grouped: while
 *	one round of fsyncs runs on libuv's thread pool, new requests wait,
 *	and the next round covers all of them with one fsync per distinct
 *	directory (DESIGN.md, "Performance model": one flush covers every
 *	message written meanwhile). A request made after a rename is answered
 *	only by a round that started after the request, so the rename is
 *	always covered.
 *
 *	The caller owns `req` and must keep it alive until cb runs; cb runs on
 *	the loop thread with 0 or an errno value.
 */
#ifndef TERN_DIRSYNC_H
#define TERN_DIRSYNC_H

#include <uv.h>

#define DIRSYNC_PATH_MAX 1024

struct dirsync_req {
	struct dirsync_req *next;
	char path[DIRSYNC_PATH_MAX];
	int err;
	void (*cb)(void *arg, int err);
	void *arg;
};

struct dirsync {
	uv_loop_t *loop;
	uv_work_t work;
	struct dirsync_req *waiting;	/* next round */
	struct dirsync_req *running;	/* this round */
	unsigned rounds;
};

void dirsync_init(struct dirsync *ds, uv_loop_t *loop);
void dirsync_request(struct dirsync *ds, struct dirsync_req *req,
		     const char *path, void (*cb)(void *arg, int err), void *arg);
/* True while a round runs or requests wait. */
int dirsync_busy(const struct dirsync *ds);
/* fsync one directory now (blocking: thread pool only); 0 or an errno. */
int dir_fsync(const char *path);

#endif
