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

#include "../lib/log.h"
#include "../mailauth/dkim.h"
#include "attempt.h"
#include "control.h"
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
	bool held;		/* moved to spool/hold while its attempt ran */
	bool deleted;		/* deleted while its attempt ran */
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

/* After a temporary failure: queue_retry, doubled per attempt, at most
 * queue_retry_max (a few minutes at first, hours later). */
static uint64_t backoff_ms(const struct sched *q, unsigned attempts)
{
	uint64_t s = q->conf->queue_retry;

	for (unsigned i = 1; i < attempts && s < q->conf->queue_retry_max; i++)
		s *= 2;
	if (s > q->conf->queue_retry_max)
		s = q->conf->queue_retry_max;
	return s * 1000;
}

static void retry_later(struct sched *q, struct qent *e)
{
	q->inflight--;
	e->state = Q_WAITING;
	e->next_try_ms = uv_now(q->loop) + backoff_ms(q, e->attempts);
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
		retry_later(q, e);
		return;
	}
	remove_message(e);
	finish(q, e);
}

static void attempt_done(void *arg, const struct attempt_outcome *o)
{
	struct qent *e = arg;
	struct sched *q = e->q;

	e->attempts = o->attempts;
	e->has_state = o->has_state;
	if (o->gone || e->held || e->deleted) {
		/* Held or deleted meanwhile: the control command did the rest. */
		finish(q, e);
	} else if (o->temp > 0) {
		retry_later(q, e);
	} else if (o->need_sync) {
		e->state = Q_SYNCING;
		snprintf(e->sync_dir, sizeof e->sync_dir, "%s", o->sync_dir);
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
		struct attempt_ctx ctx = { q->loop, q->conf, q->queue_dir, q->remote, q->dkim_keys };
		struct attempt_prev prev;

		e->attempts++;
		prev = (struct attempt_prev){ e->attempts, e->recovered, e->has_state };
		q->inflight++;
		if (attempt_start(&ctx, e->qid, &prev, attempt_done, e) != 0)
			retry_later(q, e);
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

/* ---- control (spool/control.h): tern queue flush|delete|hold|release ---- */

static int move_files(const struct sched *q, const char *qid, const char *from, const char *to)
{
	static const char *const suffix[] = { "", ".st" };
	char a[DIRSYNC_PATH_MAX + 64], b[DIRSYNC_PATH_MAX + 64];

	for (size_t i = 0; i < 2; i++) {
		snprintf(a, sizeof a, "%s/spool/%s/%s%s", q->conf->data_dir, from, qid, suffix[i]);
		snprintf(b, sizeof b, "%s/spool/%s/%s%s", q->conf->data_dir, to, qid, suffix[i]);
		if (rename(a, b) < 0 && (i == 0 || errno != ENOENT))
			return -1;
	}
	snprintf(a, sizeof a, "%s/spool/%s", q->conf->data_dir, to);
	return dir_fsync(a) == 0 ? 0 : -1;
}

/*
 * "" every waiting message, a queue id that one, "@domain" (ETRN, RFC
 * 1985) every waiting message: the queue keeps no index by domain, and
 * trying the others early does no harm.
 */
static int ctl_flush(void *arg, const char *what, char *err, size_t errlen)
{
	struct sched *q = arg;
	int n = 0;

	for (size_t b = 0; b < SCHED_BUCKETS; b++)
		for (struct qent *e = q->buckets[b]; e != NULL; e = e->hnext)
			if (e->state == Q_WAITING && (what[0] == '\0' || what[0] == '@' ||
						       strcmp(what, e->qid) == 0)) {
				make_runnable(q, e);
				n++;
			}
	if (n == 0 && what[0] != '\0' && what[0] != '@' && find(q, what) == NULL) {
		snprintf(err, errlen, "no message %s in the queue", what);
		return -1;
	}
	log_event(LOG_INFO, "event=flush target=\"%s\" messages=%d", what[0] ? what : "all", n);
	pump(q);
	return n;
}

static int ctl_delete(void *arg, const char *qid, char *err, size_t errlen)
{
	struct sched *q = arg;
	struct qent *e = find(q, qid);
	static const char *const where[] = { "queue", "hold" };
	char path[DIRSYNC_PATH_MAX + 64];
	bool found = false;

	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/spool/%s/%s", q->conf->data_dir, where[i], qid);
		if (unlink(path) == 0)
			found = true;
		snprintf(path, sizeof path, "%s/spool/%s/%s.st", q->conf->data_dir, where[i], qid);
		unlink(path);
	}
	if (!found) {
		snprintf(err, errlen, "no message %s in the queue", qid);
		return -1;
	}
	if (e != NULL && e->state == Q_RUNNING)
		e->deleted = true;
	else if (e != NULL && e->state == Q_WAITING)
		forget(q, e);
	log_event(LOG_INFO, "event=deleted qid=%s", qid);
	return 1;
}

static int ctl_hold(void *arg, const char *qid, char *err, size_t errlen)
{
	struct sched *q = arg;
	struct qent *e = find(q, qid);

	if (e != NULL && e->state == Q_SYNCING) {
		snprintf(err, errlen, "message %s is being delivered right now", qid);
		return -1;
	}
	if (move_files(q, qid, "queue", "hold") < 0) {
		snprintf(err, errlen, "no message %s in the queue (%s)", qid, strerror(errno));
		return -1;
	}
	if (e != NULL && e->state == Q_RUNNING)
		e->held = true;
	else if (e != NULL && e->state == Q_WAITING)
		forget(q, e);
	log_event(LOG_INFO, "event=held qid=%s", qid);
	return 1;
}

static int ctl_release(void *arg, const char *qid, char *err, size_t errlen)
{
	struct sched *q = arg;

	if (move_files(q, qid, "hold", "queue") < 0) {
		snprintf(err, errlen, "no held message %s (%s)", qid, strerror(errno));
		return -1;
	}
	log_event(LOG_INFO, "event=released qid=%s", qid);
	/* The rename raises IN_MOVED_TO; adding it here too is harmless. */
	if (add_if_new(q, qid) != NULL)
		pump(q);
	return 1;
}

static const struct control_ops ctl_ops = { ctl_flush, ctl_delete, ctl_hold, ctl_release };

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

int sched_start(struct sched *q, uv_loop_t *loop, const struct conf *conf, const char *relay_pass)
{
	char err[512], path[CONF_PATH_MAX + 16];

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
	/* Parsing a PEM key costs more than the signature it makes (and takes
	 * OpenSSL's decoder locks): once here, not per message. */
	for (size_t i = 0; i < conf->ndkim_sign; i++) {
		const struct dkim_sign_conf *d = &conf->dkim_sign[i];

		q->dkim_keys[i] = dkim_key_load((const uint8_t *)d->pem, d->pem_len, err, sizeof err);
		if (q->dkim_keys[i] == NULL)
			log_event(LOG_ERROR, "event=dkim-key-error d=%s s=%s key=%s error=\"%s\" effect=\"mail from %s is sent unsigned\"",
				  d->domain, d->selector, d->keyfile, err, d->domain);
	}
	if ((q->remote = remote_new(loop, conf, relay_pass, err, sizeof err)) == NULL)
		log_event(LOG_ERROR, "event=outbound-unavailable error=\"%s\" "
			  "effect=\"mail for other domains waits in the queue\"", err);
	snprintf(path, sizeof path, "%s/control.sock", conf->data_dir);
	if (control_start(&q->control, loop, path, &ctl_ops, q) == 0)
		q->control_on = true;
	else
		log_event(LOG_WARN, "event=control-unavailable path=%s", path);
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
	if (q->control_on)
		control_stop(&q->control, NULL);
	q->control_on = false;
	maybe_stopped(q);
}
