/* sched.c - the queue runner: watch the queue, deliver, retry, expire; see sched.h. */
#include "sched.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../deliver/maildir.h"
#include "../lib/log.h"
#include "../proto/addr.h"
#include "qfile.h"
#include "spool.h"

#define SCAN_EVERY_MS 60000
#define TICK_MS 1000

enum qstate { Q_WAITING, Q_RUNNABLE, Q_RUNNING, Q_SYNCING };

struct qent {
	struct qent *hnext;
	struct qent *rnext;
	struct sched *q;
	char qid[QID_MAX + 1];
	enum qstate state;
	uint64_t next_try_ms;
	unsigned attempts;
	bool recovered;		/* found by the scan at start: maybe delivered before */
	bool has_state;		/* we wrote QID.st (a partial delivery) */
	uv_work_t work;
	/* results of the attempt, written by the thread pool */
	bool gone;		/* nothing left to do with this file */
	unsigned temp;		/* recipients to retry */
	bool need_sync;		/* sync_dir must be fsynced before removal */
	char sync_dir[DIRSYNC_PATH_MAX];
	struct dirsync_req dreq;
};

static uint32_t qid_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % SCHED_BUCKETS;
}

static struct qent *find(struct sched *q, const char *qid)
{
	for (struct qent *e = q->buckets[qid_hash(qid)]; e != NULL; e = e->hnext)
		if (strcmp(e->qid, qid) == 0)
			return e;
	return NULL;
}

static void forget(struct sched *q, struct qent *e)
{
	struct qent **pp = &q->buckets[qid_hash(e->qid)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	q->nentries--;
	free(e);
}

static void make_runnable(struct sched *q, struct qent *e)
{
	e->state = Q_RUNNABLE;
	e->rnext = NULL;
	if (q->runq_tail != NULL)
		q->runq_tail->rnext = e;
	else
		q->runq = e;
	q->runq_tail = e;
}

static void pump(struct sched *q);

static bool valid_qid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > QID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'A' && name[i] <= 'Z')))
			return false;
	return true;
}

static struct qent *add_if_new(struct sched *q, const char *name)
{
	struct qent *e;
	uint32_t h;

	if (q->stopping || !valid_qid(name) || find(q, name) != NULL)
		return NULL;
	if ((e = calloc(1, sizeof *e)) == NULL)
		return NULL;
	e->q = q;
	snprintf(e->qid, sizeof e->qid, "%s", name);
	e->work.data = e;
	h = qid_hash(name);
	e->hnext = q->buckets[h];
	q->buckets[h] = e;
	q->nentries++;
	make_runnable(q, e);
	return e;
}

/* ---- one attempt, on the thread pool -------------------------------- */

/* A session marks its file complete when the message is all there
 * (spool.h); until then it is not work. */
static bool mode_complete(mode_t mode)
{
	return (mode & SPOOL_MODE_COMPLETE) == SPOOL_MODE_COMPLETE;
}

static bool file_complete(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && mode_complete(st.st_mode);
}

/* The whole queue file; EAGAIN while it is not marked complete yet. */
static int read_file(const char *path, struct buf *b)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return errno;
	if (fstat(fd, &st) < 0)
		err = errno;
	else if (!mode_complete(st.st_mode))
		err = EAGAIN;
	else if (buf_reserve(b, (size_t)st.st_size) < 0)
		err = ENOMEM;
	while (err == 0 && b->len < (size_t)st.st_size) {
		ssize_t n = read(fd, b->data + b->len, (size_t)st.st_size - b->len);

		if (n <= 0) {
			err = n == 0 ? EIO : errno;
			break;
		}
		b->len += (size_t)n;
	}
	close(fd);
	return err;
}

/* QID.st: the indexes of recipients already done, one per line. */
static void read_done(const char *path, unsigned char *done, size_t n)
{
	FILE *f = fopen(path, "re");
	unsigned long i;

	if (f == NULL)
		return;
	while (fscanf(f, "%lu", &i) == 1)
		if (i < n)
			done[i] = 1;
	fclose(f);
}

static int write_done(const char *dir, const char *qid, const unsigned char *done, size_t n)
{
	char tmp[DIRSYNC_PATH_MAX + 64], dst[DIRSYNC_PATH_MAX + 64];
	FILE *f;
	int err = 0;

	snprintf(tmp, sizeof tmp, "%s/%s.st.tmp", dir, qid);
	snprintf(dst, sizeof dst, "%s/%s.st", dir, qid);
	if ((f = fopen(tmp, "we")) == NULL)
		return errno;
	for (size_t i = 0; i < n; i++)
		if (done[i])
			fprintf(f, "%zu\n", i);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		err = errno;
	if (fclose(f) != 0 && err == 0)
		err = errno;
	if (err == 0 && rename(tmp, dst) < 0)
		err = errno;
	if (err == 0)
		err = dir_fsync(dir);
	return err;
}

static void log_outcome(const struct qent *e, const struct qenv *env, size_t i,
			const char *status, const char *relay, const char *detail)
{
	enum log_level lvl = status[0] == 's' ? LOG_INFO : LOG_WARN;
	struct buf b;
	long delay = (long)(time(NULL) - (time_t)env->arrival);

	if (!log_enabled(lvl))
		return;
	buf_init(&b, 4096);
	buf_printf(&b, "event=delivery qid=%s", e->qid);
	log_kv_escaped(&b, "from", env->sender.p, env->sender.len);
	log_kv_escaped(&b, "to", env->rcpts[i].addr.p, env->rcpts[i].addr.len);
	buf_printf(&b, " relay=%s status=%s attempt=%u delay=%lds", relay, status,
		   e->attempts, delay < 0 ? 0 : delay);
	log_kv_escaped(&b, "detail", detail, strlen(detail));
	log_buf(lvl, &b);
	buf_free(&b);
}

/* Deliver recipient i; 1 delivered, 0 to retry, -1 failed for good. */
static int deliver_one(struct qent *e, const struct buf *file, const struct qenv *env,
		       size_t i, char *dir, size_t dircap)
{
	const struct conf *cf = e->q->conf;
	struct qrcpt *r = &env->rcpts[i];
	char local[ADDR_PATH_MAX + 1], domain[ADDR_DOMAIN_MAX + 1], path[DIRSYNC_PATH_MAX];
	char err[DIRSYNC_PATH_MAX + 256];
	char unique[QID_MAX + 32];
	/* Only a message that was here before a restart, or whose earlier
	 * attempt may have got this far, can already be in the Maildir. */
	struct maildir_msg m = { env->sender, file->data, file->len, env, cf->hostname, unique,
				 e->recovered || e->attempts > 1, e->recovered };
	const uint8_t *at = NULL;
	bool permanent;

	for (size_t k = 0; k < r->addr.len; k++)
		if (r->addr.p[k] == '@')
			at = r->addr.p + k;
	if (at == NULL || (size_t)(at - r->addr.p) > ADDR_PATH_MAX ||
	    r->addr.len - (size_t)(at - r->addr.p) - 1 > ADDR_DOMAIN_MAX) {
		log_outcome(e, env, i, "failed", "maildir", "recipient has no domain");
		return -1;
	}
	snprintf(local, sizeof local, "%.*s", (int)(at - r->addr.p), (const char *)r->addr.p);
	snprintf(domain, sizeof domain, "%.*s", (int)(r->addr.len - (size_t)(at - r->addr.p) - 1),
		 (const char *)at + 1);
	snprintf(unique, sizeof unique, "Q%sR%zu", e->qid, i);
	if (maildir_path(cf->maildir, local, domain, path, sizeof path) < 0) {
		log_outcome(e, env, i, "failed", "maildir", "maildir path too long");
		return -1;
	}
	if (maildir_deliver(path, &m, dir, dircap, &permanent, err, sizeof err) != 0) {
		log_outcome(e, env, i, permanent ? "failed" : "deferred", "maildir", err);
		return permanent ? -1 : 0;
	}
	log_outcome(e, env, i, "sent", "maildir", path);
	return 1;
}

static void attempt_work(uv_work_t *w)
{
	struct qent *e = w->data;
	struct sched *q = e->q;
	char path[DIRSYNC_PATH_MAX + 64], dir[DIRSYNC_PATH_MAX];
	unsigned char *done = NULL;
	struct qenv env;
	struct buf file;
	bool expired, changed = false;
	int err;

	e->gone = false;
	e->temp = 0;
	e->need_sync = false;
	e->sync_dir[0] = '\0';
	buf_init(&file, SIZE_MAX);
	snprintf(path, sizeof path, "%s/%s", q->queue_dir, e->qid);
	if ((err = read_file(path, &file)) != 0 || qfile_parse(file.data, file.len, &env) < 0) {
		/* Gone: delivered or deleted meanwhile. Not complete: still
		 * being received; its completion mark raises another event. */
		bool gone = err == ENOENT || err == EAGAIN;

		if (!gone)
			log_event(LOG_WARN, "event=queue-file-bad qid=%s error=\"%s\"", e->qid,
				  err ? strerror(err) : env.error);
		e->gone = gone;
		e->temp = !gone;
		buf_free(&file);
		return;
	}
	done = calloc(env.nrcpts, 1);
	snprintf(path, sizeof path, "%s/%s.st", q->queue_dir, e->qid);
	/* A state file exists only after a partial delivery (ours, or one
	 * before a restart): only then is it worth a lookup. */
	if (done != NULL && (e->recovered || e->has_state))
		read_done(path, done, env.nrcpts);
	expired = (uint64_t)time(NULL) > env.arrival + q->conf->queue_lifetime;
	for (size_t i = 0; done != NULL && i < env.nrcpts; i++) {
		int r;

		if (done[i])
			continue;
		if (expired) {
			log_outcome(e, &env, i, "expired", "none", "queue lifetime exceeded");
			done[i] = 1;
			continue;
		}
		r = deliver_one(e, &file, &env, i, dir, sizeof dir);
		if (r == 0) {
			e->temp++;
			continue;
		}
		done[i] = 1;
		changed = true;
		if (r < 0)
			continue;
		/* One folder is synced later with other messages; another now. */
		if (e->sync_dir[0] == '\0')
			snprintf(e->sync_dir, sizeof e->sync_dir, "%s", dir);
		else if (strcmp(e->sync_dir, dir) != 0)
			dir_fsync(dir);
	}
	if (done == NULL) {
		e->temp = 1;
	} else if (e->temp > 0 && changed) {
		/* Partial: make the delivered ones durable, then remember them. */
		if (e->sync_dir[0] != '\0')
			dir_fsync(e->sync_dir);
		if ((err = write_done(q->queue_dir, e->qid, done, env.nrcpts)) != 0)
			log_event(LOG_WARN, "event=queue-state-error qid=%s error=\"%s\"", e->qid,
				  strerror(err));
		else
			e->has_state = true;
	}
	e->need_sync = e->temp == 0 && e->sync_dir[0] != '\0';
	free(done);
	qfile_env_free(&env);
	buf_free(&file);
}

static void remove_message(struct qent *e)
{
	char path[DIRSYNC_PATH_MAX + 64];

	snprintf(path, sizeof path, "%s/%s", e->q->queue_dir, e->qid);
	unlink(path);
	if (e->recovered || e->has_state) {
		snprintf(path, sizeof path, "%s/%s.st", e->q->queue_dir, e->qid);
		unlink(path);
	}
	log_event(LOG_INFO, "event=removed qid=%s", e->qid);
}

static void finish(struct sched *q, struct qent *e)
{
	q->inflight--;
	forget(q, e);
	pump(q);
}

static void on_synced(void *arg, int err)
{
	struct qent *e = arg;
	struct sched *q = e->q;

	if (err != 0) {
		/* Not provably durable in the Maildir: keep it and try again. */
		log_event(LOG_WARN, "event=maildir-sync-error qid=%s error=\"%s\"", e->qid,
			  strerror(err));
		q->inflight--;
		e->state = Q_WAITING;
		e->next_try_ms = uv_now(q->loop) + (uint64_t)q->conf->queue_retry * 1000;
		pump(q);
		return;
	}
	remove_message(e);
	finish(q, e);
}

static void attempt_done(uv_work_t *w, int status)
{
	struct qent *e = w->data;
	struct sched *q = e->q;

	if (status != 0)
		e->temp = 1;
	if (e->gone) {
		finish(q, e);
	} else if (e->temp > 0) {
		q->inflight--;
		e->state = Q_WAITING;
		e->next_try_ms = uv_now(q->loop) + (uint64_t)q->conf->queue_retry * 1000;
		pump(q);
	} else if (e->need_sync) {
		e->state = Q_SYNCING;
		dirsync_request(&q->ds, &e->dreq, e->sync_dir, on_synced, e);
	} else {
		remove_message(e);
		finish(q, e);
	}
}

static void maybe_stopped(struct sched *q)
{
	if (q->stopping && q->inflight == 0 && q->on_stopped != NULL) {
		void (*cb)(struct sched *) = q->on_stopped;

		q->on_stopped = NULL;
		cb(q);
	}
}

static void pump(struct sched *q)
{
	while (!q->stopping && q->runq != NULL && q->inflight < SCHED_MAX_INFLIGHT) {
		struct qent *e = q->runq;

		q->runq = e->rnext;
		if (q->runq == NULL)
			q->runq_tail = NULL;
		e->state = Q_RUNNING;
		e->attempts++;
		q->inflight++;
		if (uv_queue_work(q->loop, &e->work, attempt_work, attempt_done) != 0) {
			q->inflight--;
			e->state = Q_WAITING;
			e->next_try_ms = uv_now(q->loop) + (uint64_t)q->conf->queue_retry * 1000;
		}
	}
	maybe_stopped(q);
}

/* ---- finding work ---------------------------------------------------- */

static void on_gathered(uv_timer_t *t)
{
	pump(t->data);
}

/*
 * New messages wait SCHED_GATHER_MS before their attempt starts, so that
 * the attempts of messages that arrive together run together: their
 * Maildir fsyncs then share journal commits and their new/ folder one
 * grouped fsync, instead of one commit each in a row.
 */
static void gather(struct sched *q)
{
	if (!uv_is_active((uv_handle_t *)&q->gather))
		uv_timer_start(&q->gather, on_gathered, SCHED_GATHER_MS, 0);
}

static void on_scan(uv_fs_t *req)
{
	struct sched *q = req->data;
	uv_dirent_t de;

	if (req->result >= 0)
		while (uv_fs_scandir_next(req, &de) != UV_EOF) {
			struct qent *e = add_if_new(q, de.name);

			/* What the first scan finds was here before this process:
			 * it may have been delivered just before a crash. */
			if (e != NULL && !q->started)
				e->recovered = true;
		}
	q->started = true;
	uv_fs_req_cleanup(req);
	q->scanning = false;
	pump(q);
}

static void scan(struct sched *q)
{
	if (q->scanning || q->stopping)
		return;
	q->scanning = true;
	q->last_scan_ms = uv_now(q->loop);
	q->scan.data = q;
	if (uv_fs_scandir(q->loop, &q->scan, q->queue_dir, 0, on_scan) != 0)
		q->scanning = false;
}

/*
 * inotify, asked for IN_ATTRIB only: a session's chmod that marks its file
 * complete (spool.h) is the one event a message raises here, instead of
 * one per write, creation and removal as with a full watch.
 */
static void on_inotify(uv_poll_t *h, int status, int events)
{
	struct sched *q = h->data;
	char evbuf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	char path[DIRSYNC_PATH_MAX + 64];
	bool added = false;
	ssize_t n;

	(void)events;
	if (status < 0)
		return;
	while ((n = read(q->inotify_fd, evbuf, sizeof evbuf)) > 0) {
		for (char *p = evbuf; p < evbuf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				scan(q);
				continue;
			}
			if (ev->len == 0 || !valid_qid(ev->name) || find(q, ev->name) != NULL)
				continue;
			snprintf(path, sizeof path, "%s/%s", q->queue_dir, ev->name);
			if (file_complete(path)) {
				add_if_new(q, ev->name);
				added = true;
			}
		}
	}
	if (added)
		gather(q);
}

static int watch_queue(struct sched *q)
{
	q->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (q->inotify_fd < 0)
		return -1;
	if (inotify_add_watch(q->inotify_fd, q->queue_dir, IN_ATTRIB | IN_MOVED_TO) < 0 ||
	    uv_poll_init(q->loop, &q->watch, q->inotify_fd) != 0) {
		close(q->inotify_fd);
		q->inotify_fd = -1;
		return -1;
	}
	q->watch.data = q;
	return uv_poll_start(&q->watch, UV_READABLE, on_inotify);
}

static void on_tick(uv_timer_t *t)
{
	struct sched *q = t->data;
	uint64_t now = uv_now(q->loop);

	for (size_t b = 0; b < SCHED_BUCKETS; b++)
		for (struct qent *e = q->buckets[b]; e != NULL; e = e->hnext)
			if (e->state == Q_WAITING && e->next_try_ms <= now)
				make_runnable(q, e);
	if (now - q->last_scan_ms >= SCAN_EVERY_MS)
		scan(q);
	pump(q);
}

int sched_start(struct sched *q, uv_loop_t *loop, const struct conf *conf)
{
	memset(q, 0, sizeof *q);
	q->loop = loop;
	q->conf = conf;
	dirsync_init(&q->ds, loop);
	if (snprintf(q->queue_dir, sizeof q->queue_dir, "%s/spool/queue", conf->data_dir) >=
	    (int)sizeof q->queue_dir)
		return -1;
	if (watch_queue(q) != 0)
		log_event(LOG_WARN, "event=queue-watch-failed dir=%s fallback=scan-every-%ds",
			  q->queue_dir, SCAN_EVERY_MS / 1000);
	uv_timer_init(loop, &q->tick);
	q->tick.data = q;
	uv_timer_init(loop, &q->gather);
	q->gather.data = q;
	uv_timer_start(&q->tick, on_tick, TICK_MS, TICK_MS);
	scan(q);
	return 0;
}

void sched_stop(struct sched *q, void (*on_stopped)(struct sched *q))
{
	q->stopping = true;
	q->on_stopped = on_stopped;
	if (q->inotify_fd >= 0)
		uv_poll_stop(&q->watch);
	uv_timer_stop(&q->tick);
	uv_timer_stop(&q->gather);
	maybe_stopped(q);
}
