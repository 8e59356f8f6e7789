/* probe.c - helpers shared by `tern send` and `tern doctor` (probe.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

int probe_parse_port(const char *spec, struct probe_port *p)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(spec, &end, 10);
	if (errno != 0 || end == spec || n == 0 || n > 65535)
		return -1;
	p->port = (unsigned)n;
	if (*end == '\0') {
		p->mode = n == 465 ? SMTPC_TLS_IMPLICIT : n == 25 ? SMTPC_TLS_MAY : SMTPC_TLS_ENCRYPT;
		return 0;
	}
	if (*end != ':')
		return -1;
	end++;
	if (strcasecmp(end, "starttls") == 0)
		p->mode = SMTPC_TLS_ENCRYPT;
	else if (strcasecmp(end, "implicit") == 0 || strcasecmp(end, "tls") == 0 ||
		 strcasecmp(end, "ssl") == 0)
		p->mode = SMTPC_TLS_IMPLICIT;
	else if (strcasecmp(end, "may") == 0)
		p->mode = SMTPC_TLS_MAY;
	else if (strcasecmp(end, "none") == 0)
		p->mode = SMTPC_TLS_NONE;
	else
		return -1;
	return 0;
}

const char *probe_mode_words(enum smtpc_tls mode)
{
	switch (mode) {
	case SMTPC_TLS_NONE:
		return "no TLS";
	case SMTPC_TLS_MAY:
		return "STARTTLS if offered";
	case SMTPC_TLS_IMPLICIT:
		return "implicit TLS";
	default:
		return "STARTTLS";
	}
}

const char *probe_mode_key(enum smtpc_tls mode)
{
	switch (mode) {
	case SMTPC_TLS_NONE:
		return "none";
	case SMTPC_TLS_MAY:
		return "may";
	case SMTPC_TLS_IMPLICIT:
		return "implicit";
	default:
		return "starttls";
	}
}

int probe_resolve(const char *host, unsigned port, struct sockaddr_storage *ss, char *err,
		  size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char serv[16];
	int e;

	snprintf(serv, sizeof serv, "%u", port);
	if ((e = getaddrinfo(host, serv, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(e));
		return -1;
	}
	memset(ss, 0, sizeof *ss);
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

int probe_read_file(const char *path, char **data, size_t *len, size_t max)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t n = 0, cap = 0;
	int e = 0;

	if (f == NULL)
		return -1;
	for (;;) {
		size_t k;

		if (cap - n < 65536) {
			char *q = realloc(p, cap + 65536 + 1);

			if (q == NULL) {
				e = ENOMEM;
				break;
			}
			p = q;
			cap += 65536;
		}
		k = fread(p + n, 1, cap - n, f);
		n += k;
		if (n > max) {
			e = EFBIG;
			break;
		}
		if (k == 0) {
			if (ferror(f))
				e = EIO;
			break;
		}
	}
	fclose(f);
	if (e != 0 || p == NULL) {
		free(p);
		errno = e != 0 ? e : ENOMEM;
		return -1;
	}
	p[n] = '\0';
	*data = p;
	*len = n;
	return 0;
}

void probe_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

int probe_read_password(const char *path, char *out, size_t cap)
{
	char *data;
	size_t len, n = 0;

	if (probe_read_file(path, &data, &len, 4096) < 0)
		return -1;
	while (n < len && data[n] != '\n' && data[n] != '\r')
		n++;
	if (n >= cap || n == 0) {
		probe_wipe(data, len);
		free(data);
		errno = n == 0 ? EINVAL : ENAMETOOLONG;
		return -1;
	}
	memcpy(out, data, n);
	out[n] = '\0';
	probe_wipe(data, len);
	free(data);
	return 0;
}

void probe_set_timeouts(struct smtpc_opts *o, unsigned ms)
{
	o->connect_timeout_ms = o->greeting_timeout_ms = o->helo_timeout_ms = ms;
	o->mail_timeout_ms = o->rcpt_timeout_ms = o->data_timeout_ms = ms;
	o->block_timeout_ms = o->dot_timeout_ms = ms;
}

/* "10", "10s", "2.5", "500ms": milliseconds, 1 ms to 1 hour. */
int probe_parse_timeout(const char *s, unsigned *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s)
		return -1;
	if (strcmp(end, "ms") == 0)
		v /= 1000.0;
	else if (*end != '\0' && strcmp(end, "s") != 0)
		return -1;
	if (!(v >= 0.001 && v <= 3600.0))
		return -1;
	*ms = (unsigned)(v * 1000.0 + 0.5);
	return 0;
}

static bool has(const char *text, const char *word)
{
	return strcasestr(text, word) != NULL;
}

const char *probe_auth_words(int code, const char *enh, const char *text)
{
	if (code == 0 && has(text, "not encrypted"))
		return "TLS required first: the connection is not encrypted, so no password was sent";
	if (code == 0 && has(text, "no AUTH mechanism"))
		return "mechanism not offered: the server offers neither PLAIN nor LOGIN";
	if (code == 535 || strcmp(enh, "5.7.8") == 0)
		return "wrong credentials: the server refused the user name or the password";
	if (code == 530 || code == 538 || strcmp(enh, "5.7.11") == 0 ||
	    (code / 100 == 5 && has(text, "TLS")))
		return "TLS required first: the server wants STARTTLS (or implicit TLS) before AUTH";
	if (code == 504 || strcmp(enh, "5.5.4") == 0 || code == 534 || strcmp(enh, "5.7.9") == 0)
		return "mechanism not offered: the server does not take this AUTH mechanism";
	if (code == 421 || code == 454 || code / 100 == 4 || has(text, "too many") ||
	    has(text, "locked") || has(text, "rate"))
		return "account locked by rate limits, or a temporary server problem: wait, "
		       "then try again (too many failed logins lock an account or address)";
	if (code == 0)
		return "no reply to AUTH: the connection failed during the login";
	return "refused: see the server's reply";
}

void probe_queue_id(const char *text, char *out, size_t cap)
{
	const char *p = strcasestr(text, "queued as ");
	size_t n = 0;

	if (p != NULL) {
		p += strlen("queued as ");
	} else {
		p = strrchr(text, ' ');
		p = p != NULL ? p + 1 : text;
	}
	while (p[n] != '\0' && p[n] != ' ' && p[n] != ')' && n + 1 < cap)
		n++;
	memcpy(out, p, n);
	out[n] = '\0';
}

static void add(char *out, size_t cap, const char *word)
{
	size_t n = strlen(out);

	snprintf(out + n, cap - n, "%s%s", n > 0 ? " " : "", word);
}

void probe_auth_names(unsigned bits, char *out, size_t cap)
{
	out[0] = '\0';
	if (bits & SMTP_AUTH_PLAIN)
		add(out, cap, "PLAIN");
	if (bits & SMTP_AUTH_LOGIN)
		add(out, cap, "LOGIN");
	if (bits & SMTP_AUTH_CRAM_MD5)
		add(out, cap, "CRAM-MD5");
	if (bits & SMTP_AUTH_SCRAM_SHA_256)
		add(out, cap, "SCRAM-SHA-256");
	if (bits & SMTP_AUTH_XOAUTH2)
		add(out, cap, "XOAUTH2");
	if (bits & SMTP_AUTH_OTHER)
		add(out, cap, "(other)");
}

void probe_ext_names(const struct smtp_ehlo *e, bool esmtp, char *out, size_t cap)
{
	char auth[128], w[160];

	out[0] = '\0';
	if (!esmtp)
		return;
	if (e->pipelining)
		add(out, cap, "PIPELINING");
	if (e->has_size) {
		snprintf(w, sizeof w, "SIZE %llu", (unsigned long long)e->size);
		add(out, cap, e->size ? w : "SIZE");
	}
	if (e->eightbitmime)
		add(out, cap, "8BITMIME");
	if (e->smtputf8)
		add(out, cap, "SMTPUTF8");
	if (e->dsn)
		add(out, cap, "DSN");
	if (e->starttls)
		add(out, cap, "STARTTLS");
	if (e->chunking)
		add(out, cap, "CHUNKING");
	if (e->binarymime)
		add(out, cap, "BINARYMIME");
	if (e->enhancedstatuscodes)
		add(out, cap, "ENHANCEDSTATUSCODES");
	if (e->auth) {
		probe_auth_names(e->auth, auth, sizeof auth);
		snprintf(w, sizeof w, "AUTH %s", auth);
		add(out, cap, w);
	}
}

/* ---- the raw line-based conversation ------------------------------------ */

static unsigned long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

/* Milliseconds left before the deadline (and before now + wait_ms). */
static int left_ms(const struct probe_line *l, unsigned wait_ms)
{
	unsigned long long now = mono_ms(), end = l->deadline;

	if (now + wait_ms < end)
		end = now + wait_ms;
	return end > now ? (int)(end - now) : 0;
}

static int wait_fd(struct probe_line *l, short events, unsigned wait_ms)
{
	for (;;) {
		struct pollfd pf = { .fd = l->fd, .events = events };
		int ms = left_ms(l, wait_ms), n;

		if (ms == 0)
			return PROBE_LINE_TIMEOUT;
		n = poll(&pf, 1, ms);
		if (n > 0)
			return 0;
		if (n == 0)
			return PROBE_LINE_TIMEOUT;
		if (errno != EINTR)
			return PROBE_LINE_ERROR;
	}
}

int probe_line_open(struct probe_line *l, const struct sockaddr_storage *ss,
		    unsigned timeout_ms, char *err, size_t errlen)
{
	socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						 : sizeof(struct sockaddr_in);
	int e = 0, r;
	socklen_t el = sizeof e;

	memset(l, 0, sizeof *l);
	l->deadline = mono_ms() + timeout_ms;
	l->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(l->fd, (const struct sockaddr *)ss, sl) < 0) {
		if (errno != EINPROGRESS) {
			snprintf(err, errlen, "connect: %s", strerror(errno));
			goto fail;
		}
		if ((r = wait_fd(l, POLLOUT, timeout_ms)) < 0) {
			snprintf(err, errlen, "connect: %s",
				 r == PROBE_LINE_TIMEOUT ? "timed out" : strerror(errno));
			goto fail;
		}
		if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0) {
			snprintf(err, errlen, "connect: %s", strerror(e != 0 ? e : errno));
			goto fail;
		}
	}
	return 0;
fail:
	close(l->fd);
	l->fd = -1;
	return -1;
}

int probe_line_send(struct probe_line *l, const void *data, size_t n)
{
	const char *p = data;

	while (n > 0) {
		ssize_t k = send(l->fd, p, n, MSG_NOSIGNAL);
		int r;

		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_fd(l, POLLOUT, ~0u)) < 0)
				return r;
			continue;
		}
		return k < 0 && (errno == EPIPE || errno == ECONNRESET) ? PROBE_LINE_CLOSED
									: PROBE_LINE_ERROR;
	}
	return 0;
}

/* A complete reply at the start of buf: its length, 0 when incomplete, -1
 * when a line is not a reply line (RFC 5321 4.2). */
static long parse_reply(const char *buf, size_t len, int *code, char *text, size_t cap)
{
	size_t pos = 0;

	for (;;) {
		const char *line = buf + pos, *lf = memchr(line, '\n', len - pos);
		size_t n, k = 0;

		if (lf == NULL)
			return len - pos > 1000 ? -1 : 0;
		n = (size_t)(lf - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' || (n > 3 && line[3] != ' ' && line[3] != '-'))
			return -1;
		pos = (size_t)(lf - buf) + 1;
		if (n > 3 && line[3] == '-')
			continue;
		*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		for (size_t i = 4; i < n && k + 1 < cap; i++)
			text[k++] = line[i] >= 0x20 && line[i] < 0x7f ? line[i] : '?';
		if (cap > 0)
			text[k] = '\0';
		return (long)pos;
	}
}

int probe_line_reply(struct probe_line *l, unsigned wait_ms, int *code, char *text,
		     size_t cap)
{
	for (;;) {
		long used = parse_reply(l->buf, l->len, code, text, cap);
		ssize_t k;
		int r;

		if (used < 0)
			return PROBE_LINE_ERROR;
		if (used > 0) {
			memmove(l->buf, l->buf + used, l->len - (size_t)used);
			l->len -= (size_t)used;
			return 0;
		}
		if (l->len == sizeof l->buf)
			return PROBE_LINE_ERROR;
		if ((r = wait_fd(l, POLLIN, wait_ms)) < 0)
			return r;
		k = recv(l->fd, l->buf + l->len, sizeof l->buf - l->len, 0);
		if (k == 0)
			return PROBE_LINE_CLOSED;
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return errno == ECONNRESET ? PROBE_LINE_CLOSED : PROBE_LINE_ERROR;
		}
		l->len += (size_t)k;
	}
}

void probe_line_close(struct probe_line *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}
