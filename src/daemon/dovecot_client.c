/* dovecot_client.c - one blocking login check against Dovecot's auth-client socket; see dovecot_client.h. */
#include "dovecot_client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../proto/dovecot_auth.h"

_Static_assert(DOVECOT_USER_MAX == USERS_NAME_MAX, "a Dovecot user name is a tern user name");

#define REQUEST_ID 1		/* one request per connection; Dovecot refuses 0 */
#define MAX_LINES 256		/* lines read per connection, known or not */
#define CONNECT_RETRY_MS 10	/* backlog full (EAGAIN): try again this often */

/* One connection; on the heap (the read buffer is 16 KiB), wiped before free. */
struct conn {
	int fd;
	uint64_t deadline; /* CLOCK_MONOTONIC, ms */
	unsigned timeout_ms;
	uint8_t in[DOVECOT_LINE_MAX + 1]; /* a line and its LF */
	size_t in_len;
	size_t consumed; /* the line handed out last, LF included */
	unsigned lines;
	char out[DOVECOT_REQUEST_MAX + 1];
	struct dovecot_line line;
	char *err;
	size_t errlen;
};

static void say(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int remaining_ms(const struct conn *c)
{
	uint64_t now = now_ms();

	if (now >= c->deadline)
		return 0;
	return c->deadline - now > INT32_MAX ? INT32_MAX : (int)(c->deadline - now);
}

/* Thread-safe strerror (the GNU strerror_r, _GNU_SOURCE). */
static const char *errstr(int e, char *b, size_t n)
{
	return strerror_r(e, b, n);
}

/* 0 when fd is ready for events before the deadline; -1 (err set) otherwise. */
static int wait_fd(struct conn *c, short events, const char *what)
{
	for (;;) {
		struct pollfd p = { c->fd, events, 0 };
		int ms = remaining_ms(c), r;
		char eb[128];

		if (ms == 0) {
			say(c, "timeout (%u ms) %s", c->timeout_ms, what);
			return -1;
		}
		r = poll(&p, 1, ms);
		if (r > 0)
			return 0; /* ready, or an error/hangup the next call reports */
		if (r == 0)
			continue; /* the deadline check above ends it */
		if (errno != EINTR) {
			say(c, "poll: %s", errstr(errno, eb, sizeof eb));
			return -1;
		}
	}
}

static int conn_connect(struct conn *c, const char *path)
{
	struct sockaddr_un sa;
	size_t n = strlen(path);
	char eb[128];

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof sa.sun_path) {
		say(c, "dovecot auth socket path is empty or too long (%zu octets)", n);
		return -1;
	}
	memcpy(sa.sun_path, path, n);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		say(c, "socket: %s", errstr(errno, eb, sizeof eb));
		return -1;
	}
	for (;;) {
		int e = 0;
		socklen_t elen = sizeof e;

		if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/* AF_UNIX: the listen backlog is full. Dovecot is busy or
			 * stuck; try again until the deadline. */
			int ms = remaining_ms(c);

			if (ms == 0) {
				say(c, "timeout (%u ms) connecting to %s: backlog full", c->timeout_ms,
				    path);
				return -1;
			}
			poll(NULL, 0, ms < CONNECT_RETRY_MS ? ms : CONNECT_RETRY_MS);
			continue;
		}
		if (errno != EINPROGRESS) {
			say(c, "connect %s: %s", path, errstr(errno, eb, sizeof eb));
			return -1;
		}
		if (wait_fd(c, POLLOUT, "connecting to dovecot") < 0)
			return -1;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
			e = errno;
		if (e != 0) {
			say(c, "connect %s: %s", path, errstr(e, eb, sizeof eb));
			return -1;
		}
		return 0;
	}
}

static int send_all(struct conn *c, const char *p, size_t n, const char *what)
{
	char eb[128];

	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c, POLLOUT, what) < 0)
				return -1;
			continue;
		}
		say(c, "%s: %s", what, w < 0 ? errstr(errno, eb, sizeof eb) : "nothing written");
		return -1;
	}
	return 0;
}

/*
 * The next line (LF removed) into *line, valid until the next call:
 * 1, or 0 at end of file, or -1 (err set) on timeout, error, a line over
 * DOVECOT_LINE_MAX or too many lines.
 */
static int read_line(struct conn *c, struct slice *line, const char *what)
{
	char eb[128];

	if (c->consumed > 0) {
		memmove(c->in, c->in + c->consumed, c->in_len - c->consumed);
		c->in_len -= c->consumed;
		c->consumed = 0;
	}
	for (;;) {
		uint8_t *lf = memchr(c->in, '\n', c->in_len);
		ssize_t r;

		if (lf != NULL) {
			if (++c->lines > MAX_LINES) {
				say(c, "more than %d lines from dovecot %s", MAX_LINES, what);
				return -1;
			}
			*line = (struct slice){ c->in, (size_t)(lf - c->in) };
			c->consumed = (size_t)(lf - c->in) + 1;
			return 1;
		}
		if (c->in_len == sizeof c->in) {
			say(c, "a line from dovecot longer than %d octets %s", DOVECOT_LINE_MAX, what);
			return -1;
		}
		r = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
		if (r > 0) {
			c->in_len += (size_t)r;
		} else if (r == 0) {
			return 0;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (wait_fd(c, POLLIN, what) < 0)
				return -1;
		} else if (errno != EINTR) {
			say(c, "read %s: %s", what, errstr(errno, eb, sizeof eb));
			return -1;
		}
	}
}

/* Read the server's handshake up to DONE; 0 when it offers PLAIN. */
static int handshake(struct conn *c)
{
	static const char what[] = "waiting for dovecot's handshake";
	bool version = false, plain = false, mech = false;
	struct slice l;
	int r;

	while ((r = read_line(c, &l, what)) == 1) {
		if (dovecot_parse_line(l.p, l.len, &c->line) < 0) {
			say(c, "malformed line in dovecot's handshake");
			return -1;
		}
		if (!version && c->line.type != DOVECOT_LINE_VERSION) {
			say(c, "not a dovecot auth socket: the first line is not VERSION");
			return -1;
		}
		switch (c->line.type) {
		case DOVECOT_LINE_VERSION:
			if (version) {
				say(c, "dovecot sent VERSION twice");
				return -1;
			}
			if (c->line.major != 1) {
				say(c, "dovecot auth protocol version %u.%u, tern speaks 1.x",
				    c->line.major, c->line.minor);
				return -1;
			}
			version = true;
			break;
		case DOVECOT_LINE_MECH:
			mech = true;
			if (slice_eq_nocase(c->line.arg, "PLAIN") && !c->line.mech_private)
				plain = true;
			break;
		case DOVECOT_LINE_SPID:
			/* auth-master and auth-userdb send VERSION and SPID only
			 * and then wait: without this we would wait for DONE
			 * until the deadline. */
			if (!mech) {
				say(c, "not an auth-client socket (no MECH before SPID: "
				       "auth-master or auth-userdb?)");
				return -1;
			}
			break;
		case DOVECOT_LINE_CUID:
		case DOVECOT_LINE_COOKIE:
		case DOVECOT_LINE_UNKNOWN:
			break;
		case DOVECOT_LINE_DONE:
			if (!plain) {
				say(c, "dovecot does not offer PLAIN (see its auth_mechanisms)");
				return -1;
			}
			return 0;
		case DOVECOT_LINE_OK:
		case DOVECOT_LINE_FAIL:
		case DOVECOT_LINE_CONT:
			say(c, "dovecot answered before the handshake was done");
			return -1;
		}
	}
	if (r == 0)
		say(c, "dovecot closed the connection during the handshake");
	return -1;
}

/* Read the answer to our request. */
static enum users_verdict answer(struct conn *c, const char *user, char *canon, size_t canon_cap)
{
	static const char what[] = "waiting for dovecot's answer";
	struct dovecot_line *d = &c->line;
	struct slice l;
	const char *name;
	int r;

	while ((r = read_line(c, &l, what)) == 1) {
		if (dovecot_parse_line(l.p, l.len, d) < 0) {
			say(c, "malformed answer from dovecot");
			return USERS_ERROR;
		}
		if (d->type == DOVECOT_LINE_UNKNOWN)
			continue;
		if (d->type != DOVECOT_LINE_OK && d->type != DOVECOT_LINE_FAIL &&
		    d->type != DOVECOT_LINE_CONT) {
			say(c, "handshake line from dovecot after DONE");
			return USERS_ERROR;
		}
		if (d->id != REQUEST_ID) {
			say(c, "dovecot answered request %lu, not %d", (unsigned long)d->id, REQUEST_ID);
			return USERS_ERROR;
		}
		if (d->type == DOVECOT_LINE_CONT) {
			say(c, "dovecot asked for more (CONT) after a complete PLAIN response");
			return USERS_ERROR;
		}
		if (d->type == DOVECOT_LINE_FAIL) {
			bool temp = d->temp;

			say(c, "%s%s%s%s%s%s", temp ? "temporary failure in dovecot" : "refused by dovecot",
			    d->code[0] ? " code=" : "", d->code, d->has_reason ? " reason=\"" : "",
			    d->reason, d->has_reason ? "\"" : "");
			return temp ? USERS_ERROR : USERS_BAD_PASSWORD;
		}
		name = d->has_user ? d->user : user;
		if (strlen(name) >= canon_cap) {
			say(c, "the user name dovecot returned is longer than %zu octets", canon_cap - 1);
			return USERS_ERROR;
		}
		memcpy(canon, name, strlen(name) + 1);
		if (c->errlen > 0)
			c->err[0] = '\0';
		return USERS_OK;
	}
	if (r == 0)
		say(c, "dovecot closed the connection before answering");
	return USERS_ERROR;
}

static enum users_verdict check(struct conn *c, const char *socket_path, const char *user,
				const char *password, size_t password_len, const char *client_ip,
				const char *local_ip, bool secured, char *canon, size_t canon_cap)
{
	struct dovecot_auth_request req = {
		.id = REQUEST_ID,
		.service = "smtp",
		.local_ip = local_ip,
		.remote_ip = client_ip,
		.secured = secured,
		.user = (const uint8_t *)user,
		.user_len = strlen(user),
		.password = (const uint8_t *)password,
		.password_len = password_len,
	};
	ssize_t n;
	int r;

	if (conn_connect(c, socket_path) < 0)
		return USERS_ERROR;
	n = dovecot_build_handshake(c->out, sizeof c->out, (unsigned long)gettid());
	if (n < 0) {
		say(c, "cannot build the handshake");
		return USERS_ERROR;
	}
	r = send_all(c, c->out, (size_t)n, "sending the handshake to dovecot");
	if (r < 0 || handshake(c) < 0)
		return USERS_ERROR;
	n = dovecot_build_auth(&req, c->out, sizeof c->out);
	if (n < 0) {
		say(c, "the client or local address cannot be sent to dovecot");
		return USERS_ERROR;
	}
	r = send_all(c, c->out, (size_t)n, "sending the request to dovecot");
	explicit_bzero(c->out, sizeof c->out);
	if (r < 0)
		return USERS_ERROR;
	return answer(c, user, canon, canon_cap);
}

enum users_verdict dovecot_auth_check(const char *socket_path, const char *user,
				      const char *password, size_t password_len,
				      const char *client_ip, const char *local_ip, bool secured,
				      unsigned timeout_ms, char *canon, size_t canon_cap, char *err,
				      size_t errlen)
{
	struct conn *c;
	enum users_verdict v;
	size_t ulen;

	if (errlen > 0)
		err[0] = '\0';
	if (canon == NULL || canon_cap == 0) {
		if (errlen > 0)
			snprintf(err, errlen, "no room for the user name");
		return USERS_ERROR;
	}
	canon[0] = '\0';
	/* What PLAIN cannot carry no account can have: refused here. */
	ulen = user == NULL ? 0 : strnlen(user, DOVECOT_USER_MAX + 1);
	if (ulen == 0 || ulen > DOVECOT_USER_MAX || password == NULL || password_len == 0 ||
	    password_len > DOVECOT_PASS_MAX || memchr(password, '\0', password_len) != NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "user name or password not representable in PLAIN");
		return USERS_BAD_PASSWORD;
	}
	if (socket_path == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "no dovecot auth socket configured");
		return USERS_ERROR;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "out of memory");
		return USERS_ERROR;
	}
	c->fd = -1;
	c->timeout_ms = timeout_ms;
	c->deadline = now_ms() + timeout_ms;
	c->err = err;
	c->errlen = errlen;
	v = check(c, socket_path, user, password, password_len, client_ip, local_ip, secured, canon,
		  canon_cap);
	if (v != USERS_OK)
		canon[0] = '\0';
	if (c->fd >= 0)
		close(c->fd);
	explicit_bzero(c, sizeof *c);
	free(c);
	return v;
}
