/* inject.c - queue a message made by tern (bounces, delay notices); see inject.h. */
#include "inject.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/dirsync.h"
#include "spool.h"

#define INJECT_SLOT 0xFF	/* the queue id byte no worker uses */
#define CHUNK (64 * 1024)

static void new_qid(char out[QID_MAX + 1])
{
	static uint64_t last_usec;
	static uint32_t counter;
	struct timeval tv;
	uint64_t usec;

	/* Only the queue process injects, from one thread pool task at a
	 * time per message; the counter keeps ids apart within a microsecond. */
	gettimeofday(&tv, NULL);
	usec = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	if (usec <= last_usec)
		usec = last_usec + 1;
	last_usec = usec;
	snprintf(out, QID_MAX + 1, "%013" PRIX64 "%02X%05" PRIX32, usec, INJECT_SLOT,
		 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) & 0xfffff);
}

static int build(struct buf *b, const char *qid, const struct inject_msg *m)
{
	char num[32];
	int n = snprintf(num, sizeof num, "%lld", (long long)time(NULL));
	int r = qfile_begin(b) | qfile_put(b, QR_ID, qid, strlen(qid)) |
		qfile_put(b, QR_TIME, num, (size_t)n) |
		qfile_put(b, QR_SENDER, m->sender, strlen(m->sender)) |
		qfile_put_rcpt(b, m->rcpt, strlen(m->rcpt), "", 0, m->notify) |
		qfile_put(b, QR_CLIENT, "localhost", 9);

	if (m->body == BODY_8BITMIME)
		r |= qfile_put(b, QR_BODY, "8BITMIME", 8);
	if (m->smtputf8)
		r |= qfile_put(b, QR_SMTPUTF8, "", 0);
	for (size_t off = 0; off < m->len && r == 0; off += CHUNK)
		r |= qfile_put(b, QR_MSG, m->data + off, m->len - off < CHUNK ? m->len - off : CHUNK);
	return r | qfile_put_end(b, m->len);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int spool_inject(const char *queue_dir, const struct inject_msg *m, char qid[QID_MAX + 1],
		 char *err, size_t errlen)
{
	char path[DIRSYNC_PATH_MAX + QID_MAX + 2];
	struct buf b;
	int fd = -1, rc = -1;

	new_qid(qid);
	snprintf(path, sizeof path, "%s/%s", queue_dir, qid);
	buf_init(&b, SIZE_MAX);
	if (build(&b, qid, m) != 0) {
		snprintf(err, errlen, "cannot build a queue file (out of memory or a field too long)");
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SPOOL_MODE_WRITING);
	/* DESIGN.md: durable before it counts; complete only after the fsync. */
	if (fd < 0 || write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0 ||
	    fchmod(fd, SPOOL_MODE_COMPLETE) < 0 || fsync(fd) < 0 || dir_fsync(queue_dir) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			unlink(path);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	return rc;
}
