/* control.c - the queue process's control socket and its client; see control.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/log.h"
#include "control.h"

#define CONTROL_BACKLOG 32
#define CONNECT_RETRY_MS 20

struct control_client {
	struct control *c;
	struct control_client *prev, *next;
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_write_t wreq;
	int handles;		/* pipe and timer not yet closed */
	bool counted;		/* in c->nclients */
	bool replied;		/* the reply is written or being written */
	bool closing;
	long peer_uid, peer_pid;
	size_t in_len;
	char in[CTL_LINE_MAX];
	char out[CTL_LINE_MAX + 1];
};

/* ---- server --------------------------------------------------------- */

static void on_timer(uv_timer_t *t);
static void on_connection(uv_stream_t *server, int status);

static void stopped_check(struct control *c)
{
	if (c->stopping && c->open == 0 && c->on_stopped != NULL)
		c->on_stopped(c);
}

static void on_client_handle_closed(uv_handle_t *h)
{
	struct control_client *cl = h->data;
	struct control *c = cl->c;

	if (--cl->handles > 0)
		return;
	free(cl);
	c->open--;
	/* Memory again for the connection libuv holds for us (on_connection). */
	if (c->accept_pending && !c->stopping) {
		c->accept_pending = false;
		on_connection((uv_stream_t *)&c->listener, 0);
	}
	stopped_check(c);
}

static void client_close(struct control_client *cl)
{
	struct control *c = cl->c;

	if (cl->closing)
		return;
	cl->closing = true;
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	cl->prev = cl->next = NULL;
	if (cl->counted)
		c->nclients--;
	cl->counted = false;
	uv_close((uv_handle_t *)&cl->pipe, on_client_handle_closed);
	uv_close((uv_handle_t *)&cl->timer, on_client_handle_closed);
}

static void on_written(uv_write_t *req, int status)
{
	(void)status;
	client_close(req->data);
}

/* Send one reply line (with its LF) and close once it is written. */
static void client_reply(struct control_client *cl, const char *line, size_t n)
{
	uv_buf_t b;

	if (cl->replied || cl->closing)
		return;
	cl->replied = true;
	uv_read_stop((uv_stream_t *)&cl->pipe);
	if (n > sizeof cl->out - 1)
		n = sizeof cl->out - 1;
	memcpy(cl->out, line, n);
	cl->out[n] = '\0';
	b = uv_buf_init(cl->out, (unsigned)n);
	cl->wreq.data = cl;
	/* The timer, restarted, also bounds the write. */
	uv_timer_start(&cl->timer, on_timer, cl->c->timeout_ms, 0);
	if (uv_write(&cl->wreq, (uv_stream_t *)&cl->pipe, &b, 1, on_written) < 0)
		client_close(cl);
}

static void client_error(struct control_client *cl, const char *words)
{
	char line[CTL_LINE_MAX + 1];
	int n = ctl_format_err(line, sizeof line, words);

	if (n > 0)
		client_reply(cl, line, (size_t)n);
	else
		client_close(cl);
}

static void log_refused(const struct control_client *cl, const char *reason)
{
	log_event(LOG_WARN, "event=control-refused peer_uid=%ld peer_pid=%ld reason=\"%s\"",
		  cl->peer_uid, cl->peer_pid, reason);
}

static int dispatch(struct control *c, const struct ctl_req *r, char *err, size_t errlen)
{
	const struct control_ops *o = c->ops;
	int (*fn)(void *, const char *, char *, size_t) = NULL;

	switch (r->verb) {
	case CTL_FLUSH:
	case CTL_ETRN:
		fn = o->flush;
		break;
	case CTL_DELETE:
		fn = o->delete_msg;
		break;
	case CTL_HOLD:
		fn = o->hold;
		break;
	case CTL_RELEASE:
		fn = o->release;
		break;
	case CTL_NONE:
		break;
	}
	if (fn == NULL) {
		snprintf(err, errlen, "not supported");
		return -1;
	}
	return fn(c->arg, r->arg, err, errlen);
}

static void client_request(struct control_client *cl, size_t len)
{
	struct control *c = cl->c;
	struct ctl_req r;
	const char *why;
	char err[256];
	char line[CTL_LINE_MAX + 1];
	char name[16];
	struct buf lb;
	int n, w;

	if (ctl_parse_request((const uint8_t *)cl->in, len, &r, &why) < 0) {
		log_refused(cl, why);
		client_error(cl, why);
		return;
	}
	err[0] = '\0';
	n = dispatch(c, &r, err, sizeof err);
	snprintf(name, sizeof name, "%s", ctl_verb_name(r.verb));
	for (char *p = name; *p != '\0'; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + ('a' - 'A') : *p);

	buf_init(&lb, 1024);
	/* arg passed the parser: a queue id or "@" LDH domain, safe to log */
	buf_printf(&lb, "event=control cmd=%s arg=%s peer_uid=%ld peer_pid=%ld", name,
		   r.arg[0] != '\0' ? r.arg : "-", cl->peer_uid, cl->peer_pid);
	if (n >= 0) {
		buf_printf(&lb, " result=ok n=%d", n);
		w = ctl_format_ok(line, sizeof line, r.verb, n);
	} else {
		if (err[0] == '\0')
			snprintf(err, sizeof err, "failed");
		buf_printf(&lb, " result=error");
		log_kv_escaped(&lb, "reason", err, strnlen(err, sizeof err));
		w = ctl_format_err(line, sizeof line, err);
	}
	log_buf(n >= 0 ? LOG_INFO : LOG_WARN, &lb);
	buf_free(&lb);
	if (w > 0)
		client_reply(cl, line, (size_t)w);
	else
		client_close(cl);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct control_client *cl = h->data;

	(void)suggested;
	*b = uv_buf_init(cl->in + cl->in_len, (unsigned)(sizeof cl->in - cl->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct control_client *cl = s->data;
	const char *lf;

	(void)b;
	if (cl->replied || cl->closing)
		return;
	if (nread == UV_EOF) {
		log_refused(cl, "incomplete request");
		client_error(cl, "incomplete request");
		return;
	}
	if (nread < 0) {
		client_close(cl);
		return;
	}
	if (nread == 0)
		return;
	lf = memchr(cl->in + cl->in_len, '\n', (size_t)nread);
	cl->in_len += (size_t)nread;
	if (lf != NULL) {
		uv_read_stop(s);
		client_request(cl, (size_t)(lf - cl->in));
		return;
	}
	if (cl->in_len >= sizeof cl->in) {
		log_refused(cl, "line too long");
		client_error(cl, "line too long");
	}
}

static void on_timer(uv_timer_t *t)
{
	struct control_client *cl = t->data;

	if (!cl->replied) {
		log_refused(cl, "timeout");
		client_error(cl, "timeout");
	} else {
		client_close(cl); /* the reply could not be written in time */
	}
}

static bool peer_allowed(struct control_client *cl)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&cl->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred)
		return false;
	cl->peer_uid = (long)cred.uid;
	cl->peer_pid = (long)cred.pid;
	/* root, ternd's own user, or (primary group) the tern group: those the
	 * socket's 0660 mode lets in are meant to be here. */
	return cred.uid == 0 || cred.uid == geteuid() || cred.gid == getegid();
}

static void on_connection(uv_stream_t *server, int status)
{
	struct control *c = server->data;
	struct control_client *cl;

	if (status < 0) {
		log_event(LOG_WARN, "event=control-accept-failed error=\"%s\"", uv_strerror(status));
		return;
	}
	if (c->stopping)
		return;
	if ((cl = calloc(1, sizeof *cl)) == NULL) {
		/* libuv keeps the connection and stops polling until it is
		 * accepted: try again when a client's memory comes back. */
		if (c->open > 1)
			c->accept_pending = true;
		else
			log_event(LOG_ERROR, "event=control-accept-failed error=\"out of memory\"");
		return;
	}
	cl->c = c;
	cl->peer_uid = cl->peer_pid = -1;
	uv_pipe_init(c->loop, &cl->pipe, 0);
	uv_timer_init(c->loop, &cl->timer);
	cl->pipe.data = cl;
	cl->timer.data = cl;
	cl->handles = 2;
	c->open++;
	cl->next = c->clients;
	if (c->clients != NULL)
		c->clients->prev = cl;
	c->clients = cl;
	if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0) {
		client_close(cl);
		return;
	}
	uv_timer_start(&cl->timer, on_timer, c->timeout_ms, 0);
	if (!peer_allowed(cl)) {
		log_refused(cl, "permission denied");
		client_error(cl, "permission denied");
		return;
	}
	if (c->nclients >= CONTROL_MAX_CLIENTS) {
		log_refused(cl, "busy");
		client_error(cl, "busy");
		return;
	}
	cl->counted = true;
	c->nclients++;
	if (uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) < 0)
		client_close(cl);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct control *c = h->data;

	c->open--;
	stopped_check(c);
}

int control_start(struct control *c, uv_loop_t *loop, const char *path,
		  const struct control_ops *ops, void *arg)
{
	struct sockaddr_un sa;
	struct stat st;
	size_t n = strlen(path);
	int fd, rc, e;

	memset(c, 0, sizeof *c);
	c->loop = loop;
	c->ops = ops;
	c->arg = arg;
	c->timeout_ms = CONTROL_TIMEOUT_MS;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof sa.sun_path || n >= sizeof c->path)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n);
	memcpy(c->path, path, n + 1);

	/* A socket left by a crashed queue process goes; anything else stays. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	/* Before listen(): nobody can connect while the mode is being set. */
	if (chmod(path, CONTROL_SOCK_MODE) < 0 || chown(path, (uid_t)-1, getegid()) < 0 ||
	    stat(path, &st) < 0) {
		e = errno;
		unlink(path);
		close(fd);
		return -e;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;

	uv_pipe_init(loop, &c->listener, 0);
	c->listener.data = c;
	if ((rc = uv_pipe_open(&c->listener, fd)) < 0) {
		close(fd);
		unlink(path);
		uv_close((uv_handle_t *)&c->listener, NULL);
		return rc;
	}
	if ((rc = uv_listen((uv_stream_t *)&c->listener, CONTROL_BACKLOG, on_connection)) < 0) {
		unlink(path);
		uv_close((uv_handle_t *)&c->listener, NULL); /* closes fd */
		return rc;
	}
	c->open = 1;
	log_event(LOG_INFO, "event=control-listen path=%s mode=%04o", path, CONTROL_SOCK_MODE);
	return 0;
}

void control_stop(struct control *c, void (*done)(struct control *c))
{
	struct stat st;

	if (c->stopping)
		return;
	c->stopping = true;
	c->on_stopped = done;
	if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	while (c->clients != NULL)
		client_close(c->clients);
	uv_close((uv_handle_t *)&c->listener, on_listener_closed);
}

/* ---- client --------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = now_ms();

	if (now >= deadline)
		return 0;
	return deadline - now > INT32_MAX ? INT32_MAX : (int)(deadline - now);
}

/* Fail with errno e and words (strerror's when words is NULL). */
static int fail(int fd, int e, const char *words, char *reply, size_t cap)
{
	char eb[128];

	if (fd >= 0)
		close(fd);
	if (cap > 0)
		snprintf(reply, cap, "%s", words != NULL ? words : strerror_r(e, eb, sizeof eb));
	errno = e;
	return -1;
}

/* 0 when fd is ready before the deadline; -1 with errno (ETIMEDOUT) if not. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { fd, events, 0 };
		int ms = remaining_ms(deadline), r;

		if (ms == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&p, 1, ms);
		if (r > 0)
			return 0; /* ready, or an error/hangup the next call reports */
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

int control_request(const char *sock_path, const char *line, char *reply, size_t cap,
		    unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct sockaddr_un sa;
	char out[CTL_LINE_MAX + 1];
	char in[CTL_LINE_MAX];
	size_t n = strlen(sock_path), ln = strlen(line), sent = 0, got = 0;
	const char *lf = NULL;
	int fd;

	if (cap > 0)
		reply[0] = '\0';
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof sa.sun_path)
		return fail(-1, ENAMETOOLONG, NULL, reply, cap);
	if (ln == 0 || ln >= CTL_LINE_MAX || memchr(line, '\n', ln) != NULL)
		return fail(-1, EINVAL, "request empty, too long or holding a line feed", reply, cap);
	memcpy(sa.sun_path, sock_path, n);
	memcpy(out, line, ln);
	out[ln++] = '\n';

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return fail(-1, errno, NULL, reply, cap);
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/* AF_UNIX: the listen backlog is full; try again until the deadline */
			int ms = remaining_ms(deadline);

			if (ms == 0)
				return fail(fd, ETIMEDOUT, "timed out connecting (backlog full)",
					    reply, cap);
			poll(NULL, 0, ms < CONNECT_RETRY_MS ? ms : CONNECT_RETRY_MS);
			continue;
		}
		return fail(fd, errno, NULL, reply, cap);
	}

	while (sent < ln) {
		ssize_t w = send(fd, out + sent, ln - sent, MSG_NOSIGNAL);

		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (wait_fd(fd, POLLOUT, deadline) < 0)
				return fail(fd, errno, errno == ETIMEDOUT
					    ? "timed out sending the request" : NULL, reply, cap);
			continue;
		}
		/* The server may have answered and closed already (busy, refused):
		 * read what it said. */
		break;
	}

	while (lf == NULL) {
		ssize_t r;

		if (got == sizeof in)
			return fail(fd, EPROTO, "reply too long", reply, cap);
		r = recv(fd, in + got, sizeof in - got, 0);
		if (r > 0) {
			lf = memchr(in + got, '\n', (size_t)r);
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			return fail(fd, ECONNRESET, "connection closed before the reply", reply, cap);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			if (wait_fd(fd, POLLIN, deadline) < 0)
				return fail(fd, errno, errno == ETIMEDOUT
					    ? "timed out waiting for the reply" : NULL, reply, cap);
			continue;
		}
		if (errno == ECONNRESET || errno == EPIPE)
			return fail(fd, ECONNRESET, "connection closed before the reply", reply, cap);
		return fail(fd, errno, NULL, reply, cap);
	}
	close(fd);
	if (cap > 0) {
		size_t m = (size_t)(lf - in);

		if (m > cap - 1)
			m = cap - 1;
		memcpy(reply, in, m);
		reply[m] = '\0';
	}
	return 0;
}
