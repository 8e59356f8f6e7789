/* dirsync.c - grouped directory fsyncs on the thread pool; see dirsync.h. */
#include "dirsync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void dirsync_start(struct dirsync *ds);

void dirsync_init(struct dirsync *ds, uv_loop_t *loop)
{
	memset(ds, 0, sizeof *ds);
	ds->loop = loop;
	ds->work.data = ds;
}

int dir_fsync(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return errno;
	if (fsync(fd) < 0)
		err = errno;
	close(fd);
	return err;
}

/* Thread pool: one fsync per distinct directory of the round. */
static void dirsync_work(uv_work_t *w)
{
	struct dirsync *ds = w->data;

	for (struct dirsync_req *r = ds->running; r != NULL; r = r->next) {
		struct dirsync_req *same = NULL;

		for (struct dirsync_req *p = ds->running; p != r; p = p->next)
			if (strcmp(p->path, r->path) == 0) {
				same = p;
				break;
			}
		r->err = same ? same->err : dir_fsync(r->path);
	}
}

static void dirsync_done(uv_work_t *w, int status)
{
	struct dirsync *ds = w->data;
	struct dirsync_req *r = ds->running;

	ds->running = NULL;
	ds->rounds++;
	if (ds->waiting != NULL)
		dirsync_start(ds);
	while (r != NULL) {
		struct dirsync_req *next = r->next;

		r->cb(r->arg, status != 0 ? EIO : r->err);
		r = next;
	}
}

static void dirsync_start(struct dirsync *ds)
{
	ds->running = ds->waiting;
	ds->waiting = NULL;
	if (uv_queue_work(ds->loop, &ds->work, dirsync_work, dirsync_done) != 0) {
		/* Cannot happen with a valid loop; answer every request with EIO. */
		for (struct dirsync_req *r = ds->running; r != NULL; r = r->next)
			r->err = EIO;
		dirsync_done(&ds->work, -1);
	}
}

void dirsync_request(struct dirsync *ds, struct dirsync_req *req,
		     const char *path, void (*cb)(void *arg, int err), void *arg)
{
	snprintf(req->path, sizeof req->path, "%s", path);
	req->cb = cb;
	req->arg = arg;
	req->err = 0;
	req->next = ds->waiting;
	ds->waiting = req;
	if (ds->running == NULL)
		dirsync_start(ds);
}

int dirsync_busy(const struct dirsync *ds)
{
	return ds->running != NULL || ds->waiting != NULL;
}
