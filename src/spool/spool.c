/* spool.c - writing messages into the durable queue; see spool.h. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../lib/log.h"

static int join(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s/%s", a, b);

	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* dmarc/: aggregate report data (smtp/msgauth.h). */
const char *const spool_data_dirs[SPOOL_NDIRS] = {
	"", "spool", "spool/queue", "spool/hold", "spool/corrupt", "mail", "dmarc"
};

int spool_make_dirs(const char *data_dir, char *err, size_t errlen)
{
	char p[DIRSYNC_PATH_MAX];

	for (size_t i = 0; i < SPOOL_NDIRS; i++) {
		if (join(p, sizeof p, data_dir, spool_data_dirs[i]) < 0) {
			snprintf(err, errlen, "%s: path too long", data_dir);
			return -1;
		}
		if (mkdir(p, 0750) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: cannot create: %s", p, strerror(errno));
			return -1;
		}
	}
	return 0;
}

int spool_init(struct spool *sp, uv_loop_t *loop, const char *data_dir,
	       unsigned worker)
{
	memset(sp, 0, sizeof *sp);
	sp->loop = loop;
	sp->worker = worker;
	dirsync_init(&sp->ds, loop);
	if (join(sp->queue_dir, sizeof sp->queue_dir, data_dir, "spool/queue") < 0)
		return -1;
	return 0;
}

void spool_new_qid(struct spool *sp, char out[QID_MAX + 1])
{
	struct timeval tv;
	uint64_t usec;

	gettimeofday(&tv, NULL);
	usec = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	/* Never go backwards within a worker, even if the clock does. */
	if (usec <= sp->last_usec)
		usec = sp->last_usec + 1;
	sp->last_usec = usec;
	snprintf(out, QID_MAX + 1, "%013" PRIX64 "%02X%05" PRIX32, usec,
		 sp->worker & 0xff, sp->counter++ & 0xfffff);
}

static void note_err(struct spool_msg *m, int e)
{
	if (m->err == 0)
		m->err = e ? e : EIO;
}

static void write_all(struct spool_msg *m, const struct iovec *iov, int n)
{
	struct iovec v[2];

	if (m->err != 0)
		return;
	memcpy(v, iov, (size_t)n * sizeof *iov);
	while (n > 0) {
		ssize_t w = writev(m->fd, v, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			note_err(m, errno);
			return;
		}
		while (n > 0 && (size_t)w >= v[0].iov_len) {
			w -= (ssize_t)v[0].iov_len;
			v[0] = v[1];
			n--;
		}
		if (n > 0) {
			v[0].iov_base = (char *)v[0].iov_base + w;
			v[0].iov_len -= (size_t)w;
		}
	}
}

int spool_msg_open(struct spool *sp, struct spool_msg *m, const struct buf *env)
{
	char path[DIRSYNC_PATH_MAX + QID_MAX + 2];

	memset(m, 0, sizeof *m);
	m->sp = sp;
	buf_init(&m->pending, SPOOL_PENDING_MAX);
	spool_new_qid(sp, m->qid);
	snprintf(path, sizeof path, "%s/%s", sp->queue_dir, m->qid);
	m->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SPOOL_MODE_WRITING);
	if (m->fd < 0) {
		m->err = errno;
		return -1;
	}
	if (qfile_begin(&m->pending) < 0 || qfile_put(&m->pending, QR_ID, m->qid, strlen(m->qid)) < 0 ||
	    buf_append(&m->pending, env->data, env->len) < 0) {
		/* The envelope does not fit in memory: nothing stays behind. */
		spool_msg_abort(m);
		m->err = ENOMEM;
		return -1;
	}
	return 0;
}

/* Write what is pending, then p (if any), in one writev. */
static void flush(struct spool_msg *m, const void *p, size_t n)
{
	struct iovec iov[2] = { { m->pending.data, m->pending.len }, { (void *)p, n } };

	write_all(m, iov, n > 0 ? 2 : 1);
	buf_reset(&m->pending);
}

/*
 * Records collect in `pending` and reach the file in one writev when
 * SPOOL_PENDING_MAX would be passed, or at the commit: a small message
 * costs one write(2). Callers pass chunks far below 4 GiB.
 */
/* One record into the pending bytes; flush them when the buffer is full. */
static void put_record(struct spool_msg *m, enum qrec_type t, const void *p, size_t n)
{
	uint8_t h[QFILE_REC_HDR] = { (uint8_t)t, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
				     (uint8_t)(n >> 8), (uint8_t)n };

	if (buf_append(&m->pending, h, sizeof h) < 0) {
		flush(m, NULL, 0);
		if (buf_append(&m->pending, h, sizeof h) < 0)
			note_err(m, ENOMEM);
	}
	if (buf_append(&m->pending, p, n) < 0)
		flush(m, p, n);
}

void spool_msg_write(struct spool_msg *m, const void *p, size_t n)
{
	if (n == 0)
		return;
	m->msg_size += n;
	put_record(m, QR_MSG, p, n);
}

void spool_msg_trailer(struct spool_msg *m, enum qrec_type t, const void *p, size_t n)
{
	if (n > 0)
		put_record(m, t, p, n);
}

static void msg_path(const struct spool_msg *m, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", m->sp->queue_dir, m->qid);
}

/* Both halves of the commit end here; the second one answers. */
static void commit_part_done(struct spool_msg *m, int err)
{
	char path[DIRSYNC_PATH_MAX + QID_MAX + 2];

	if (err != 0)
		note_err(m, err);
	if (--m->parts > 0)
		return;
	m->sp->pending--;
	if (m->err != 0) {
		msg_path(m, path, sizeof path);
		unlink(path);
	}
	m->cb(m->arg, m->err);
}

/* Thread pool: make the file's contents durable. */
static void fsync_work(uv_work_t *w)
{
	struct spool_msg *m = w->data;

	if (!m->write_failed && fsync(m->fd) < 0)
		m->fsync_err = errno;
	if (close(m->fd) < 0 && m->fsync_err == 0)
		m->fsync_err = errno;
	m->fd = -1;
}

static void fsync_after(uv_work_t *w, int status)
{
	struct spool_msg *m = w->data;

	commit_part_done(m, status != 0 ? EIO : m->fsync_err);
}

static void dir_synced(void *arg, int err)
{
	commit_part_done(arg, err);
}

/*
 * The file was created in queue/ when the message began, so its directory
 * entry exists: the file fsync and the directory fsync can run at the
 * same time, and the 250 waits for both (one journal commit of latency
 * instead of two in a row). The owner-execute bit, set before either,
 * marks the file complete for the queue runner and for recovery.
 */
void spool_msg_commit(struct spool_msg *m, void (*cb)(void *arg, int err), void *arg)
{
	uint8_t end[QFILE_REC_HDR + 8];

	for (int i = 0; i < 8; i++)
		end[QFILE_REC_HDR + i] = (uint8_t)(m->msg_size >> (56 - 8 * i));
	end[0] = QR_END;
	end[1] = end[2] = end[3] = 0;
	end[4] = 8;
	flush(m, end, sizeof end);
	buf_free(&m->pending);
	if (m->err == 0 && fchmod(m->fd, SPOOL_MODE_COMPLETE) < 0)
		note_err(m, errno);
	m->cb = cb;
	m->arg = arg;
	m->work.data = m;
	m->sp->pending++;
	/* Even a commit that already failed answers from the loop, never
	 * from inside this call: the caller is in the middle of its input
	 * and must not be re-entered (its DATA bytes are not consumed yet). */
	m->write_failed = m->err != 0;
	m->parts = m->write_failed ? 1 : 2;
	if (uv_queue_work(m->sp->loop, &m->work, fsync_work, fsync_after) != 0)
		tern_bug("event=bug what=\"uv_queue_work refused a valid request\"");
	if (!m->write_failed)
		dirsync_request(&m->sp->ds, &m->dreq, m->sp->queue_dir, dir_synced, m);
}

void spool_msg_abort(struct spool_msg *m)
{
	char path[DIRSYNC_PATH_MAX + QID_MAX + 2];

	buf_free(&m->pending);
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	msg_path(m, path, sizeof path);
	unlink(path);
}

static int move_corrupt(const char *data_dir, const char *name)
{
	char from[DIRSYNC_PATH_MAX + 300], to[DIRSYNC_PATH_MAX + 300];

	snprintf(from, sizeof from, "%s/spool/queue/%s", data_dir, name);
	snprintf(to, sizeof to, "%s/spool/corrupt/%s", data_dir, name);
	return rename(from, to);
}

int spool_recover(const char *data_dir)
{
	char path[DIRSYNC_PATH_MAX + 300];
	struct dirent *de;
	unsigned removed = 0, corrupt = 0, queued = 0;
	DIR *d;

	snprintf(path, sizeof path, "%s/spool/queue", data_dir);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		struct qenv env;
		struct stat st;
		struct buf b;
		int fd, ok;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/spool/queue/%s", data_dir, de->d_name);
		/* Leftovers of an interrupted state update, and files never
		 * marked complete: neither was ever acknowledged. */
		if (strstr(de->d_name, ".tmp") != NULL ||
		    (strchr(de->d_name, '.') == NULL && stat(path, &st) == 0 &&
		     (st.st_mode & SPOOL_MODE_COMPLETE) != SPOOL_MODE_COMPLETE)) {
			if (unlink(path) == 0)
				removed++;
			continue;
		}
		if (strchr(de->d_name, '.') != NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		buf_init(&b, SIZE_MAX);
		ok = 0;
		for (;;) {
			ssize_t n;

			if (buf_reserve(&b, 65536) < 0)
				break;
			n = read(fd, b.data + b.len, 65536);
			if (n <= 0) {
				ok = n == 0;
				break;
			}
			b.len += (size_t)n;
		}
		close(fd);
		if (ok && qfile_parse(b.data, b.len, &env) == 0) {
			qfile_env_free(&env);
			queued++;
		} else {
			/* Marked complete yet unreadable: it may have been
			 * acknowledged, so it is kept for the operator. */
			log_event(LOG_WARN, "event=spool-corrupt file=%s reason=\"%s\" action=moved-to-corrupt",
				  de->d_name, ok ? env.error : "unreadable");
			if (move_corrupt(data_dir, de->d_name) == 0)
				corrupt++;
		}
		buf_free(&b);
	}
	closedir(d);
	log_event(LOG_INFO, "event=spool-recover removed_incomplete=%u corrupt=%u queued=%u",
		  removed, corrupt, queued);
	return 0;
}
