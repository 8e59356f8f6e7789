/* session.c - SMTP session I/O, the command table and the session's life; see session.h. */
#include "session.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "../lib/log.h"
#include "../lib/tls.h"
#include "msgauth.h"

/*
 * The command table: preconditions as data. `needs_helo` commands get
 * 503 before HELO/EHLO (RFC 5321 4.1.4 lets servers require it for
 * MAIL; we also do for RCPT and DATA, which need MAIL anyway).
 */
struct cmd_row {
	enum smtp_verb verb;
	void (*fn)(struct session *, const struct smtp_cmd *);
	bool needs_helo;
};

static const struct cmd_row cmd_table[] = {
	{ SMTP_HELO, cmd_helo, false },
	{ SMTP_EHLO, cmd_ehlo, false },
	{ SMTP_MAIL, cmd_mail, true },
	{ SMTP_RCPT, cmd_rcpt, true },
	{ SMTP_DATA, cmd_data, true },
	{ SMTP_BDAT, cmd_bdat, false }, /* its chunk is always consumed (RFC 3030 2) */
	{ SMTP_RSET, cmd_rset, false },
	{ SMTP_NOOP, cmd_noop, false },
	{ SMTP_QUIT, cmd_quit, false },
	{ SMTP_VRFY, cmd_vrfy, false },
	{ SMTP_EXPN, cmd_expn, false },
	{ SMTP_HELP, cmd_help, false },
	{ SMTP_STARTTLS, cmd_starttls, false },
	{ SMTP_AUTH, cmd_auth, false },
	{ SMTP_ETRN, cmd_etrn, false },
};

static const struct smtp_reply r_unknown = { 500, "5.5.1", "Command unrecognized" };
static const struct smtp_reply r_toolong = {
	500, "5.5.2", "Line too long: commands are limited to 512 octets (RFC 5321 4.5.3.1.4)"
};
static const struct smtp_reply r_need_helo = { 503, "5.5.1", "Send EHLO or HELO first" };
static const struct smtp_reply r_too_many_errors = {
	421, "4.7.0", "Too many errors in this session, closing connection"
};
static const struct smtp_reply r_idle = { 421, "4.4.2", "Idle timeout, closing connection" };
static const struct smtp_reply r_data_timeout = {
	421, "4.4.2", "Timeout while waiting for message data, closing connection"
};
static const struct smtp_reply r_session_timeout = {
	421, "4.4.2", "Session too long, closing connection"
};
static const struct smtp_reply r_early = {
	554, "5.5.0", "Protocol error: the client talked before the greeting (RFC 5321 4.3.1)"
};
static const struct smtp_reply r_http = {
	554, "5.5.0", "This is an SMTP server; HTTP is not spoken here"
};
static const struct smtp_reply r_nul = {
	500, "5.5.2", "Command line contains a NUL octet"
};
static const struct smtp_reply r_shutdown = {
	421, "4.3.2", "Server shutting down, try again later"
};

static void set_reading(struct session *s, bool on);
static void process_input(struct session *s);

static uint64_t now_ms(struct session *s)
{
	return uv_now(s->w->loop);
}

static uint64_t session_left_ms(struct session *s)
{
	uint64_t limit = (uint64_t)s->w->conf->session_timeout * 1000;
	uint64_t used = now_ms(s) - s->started_ms;

	return used >= limit ? 0 : limit - used;
}

void session_ref(struct session *s)
{
	s->refs++;
}

void session_unref(struct session *s)
{
	if (--s->refs > 0)
		return;
	SSL_free(s->ssl); /* and its two BIOs */
	auth_exchange_free(s);
	buf_free(&s->tlsout);
	buf_free(&s->in);
	buf_free(&s->out);
	buf_free(&s->wbuf);
	free(s->tx.rcpts);
	msgauth_free(s->tx.ma);
	buf_free(&s->tx.dbuf);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		s->w->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->w->nsessions--;
	if ((s->w->stopping || s->w->draining) && s->w->nsessions == 0 && s->w->on_idle != NULL)
		s->w->on_idle(s->w);
	free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
	session_unref(h->data);
}

/* The peer is this machine: 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104. */
static bool peer_is_loopback(const struct session *s)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&s->peer;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&s->peer;

	if (s->peer.ss_family == AF_INET)
		return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
	if (s->peer.ss_family != AF_INET6)
		return false;
	if (IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && a6->sin6_addr.s6_addr[12] == 127;
}

/* Whether addr (v4 or v6, 4 or 16 octets) is inside "ADDR[/LEN]". */
static bool in_net(const char *spec, int fam, const uint8_t *addr)
{
	char a[64];
	uint8_t net[16];
	const char *slash = strchr(spec, '/');
	size_t n = slash ? (size_t)(slash - spec) : strlen(spec);
	unsigned len = fam == AF_INET ? 32 : 128, bits;

	if (n >= sizeof a)
		return false;
	memcpy(a, spec, n);
	a[n] = '\0';
	if (inet_pton(fam, a, net) != 1)
		return false;
	bits = slash ? (unsigned)atoi(slash + 1) : len;
	for (unsigned i = 0; i < bits && i < len; i++)
		if (((net[i / 8] ^ addr[i / 8]) >> (7 - i % 8)) & 1)
			return false;
	return true;
}

bool session_peer_in(const struct session *s, const char *networks)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&s->peer;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&s->peer;
	char list[CONF_PATH_MAX], *save = NULL, *w;
	int fam = s->peer.ss_family;
	const uint8_t *addr;

	if (fam == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
		fam = AF_INET;
		addr = a6->sin6_addr.s6_addr + 12;
	} else {
		addr = fam == AF_INET ? (const uint8_t *)&a4->sin_addr : a6->sin6_addr.s6_addr;
	}
	snprintf(list, sizeof list, "%s", networks);
	for (w = strtok_r(list, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save))
		if ((strchr(w, ':') != NULL) == (fam == AF_INET6) && in_net(w, fam, addr))
			return true;
	return false;
}

void session_local_ip(struct session *s, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;

	out[0] = '\0';
	if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)&ss, out, cap);
	else if (ss.ss_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)&ss, out, cap);
}

bool session_auth_secure(const struct session *s)
{
	return session_tls(s) || (s->lc->plaintext_auth_loopback && peer_is_loopback(s));
}

void session_log(struct session *s, const char *event, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	if (!log_enabled(LOG_INFO))
		return;
	buf_init(&b, 4096);
	(void)buf_printf(&b, "event=%s session=%s", event, s->id);
	if (fmt != NULL && fmt[0] != '\0') {
		(void)buf_append(&b, " ", 1);
		va_start(ap, fmt);
		(void)buf_vprintf(&b, fmt, ap);
		va_end(ap);
	}
	log_buf(LOG_INFO, &b);
	buf_free(&b);
}

/* ---- output ---------------------------------------------------------- */

static void conn_send(struct session *s, const uint8_t *p, size_t n)
{
	if (uv_is_closing((uv_handle_t *)&s->tcp))
		return;
	/* A client that never reads its replies cannot grow this past the
	 * cap: session_process stops taking input while out is full. */
	if (buf_append(&s->out, p, n) < 0)
		session_close(s, "output-overflow");
}

void session_send_raw(struct session *s, const char *text)
{
	conn_send(s, (const uint8_t *)text, strlen(text));
}

void session_reply(struct session *s, const struct smtp_reply *r)
{
	session_replyf(s, r->code, r->enh, "%s", r->text);
}

void session_replyf(struct session *s, int code, const char *enh,
		    const char *fmt, ...)
{
	char text[512];
	char line[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	/* RFC 2034: enhanced codes on every 2xx/4xx/5xx after the greeting. */
	if (enh != NULL)
		n = snprintf(line, sizeof line, "%d %s %s\r\n", code, enh, text);
	else
		n = snprintf(line, sizeof line, "%d %s\r\n", code, text);
	if (n > 0)
		conn_send(s, (const uint8_t *)line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	if (code >= 400 && log_enabled(LOG_INFO)) {
		struct buf b;

		buf_init(&b, 1024);
		(void)buf_printf(&b, "event=reply session=%s code=%d enh=%s", s->id, code,
				 enh ? enh : "-");
		log_kv_escaped(&b, "text", text, strlen(text));
		log_buf(LOG_INFO, &b);
		buf_free(&b);
	}
}

void session_error(struct session *s, const struct smtp_reply *r)
{
	session_reply(s, r);
	if (++s->errors >= s->w->conf->max_errors) {
		session_reply(s, &r_too_many_errors);
		session_close(s, "too-many-errors");
	}
}

static void on_write(uv_write_t *req, int status)
{
	struct session *s = req->data;

	s->writing = false;
	buf_reset(&s->wbuf);
	buf_shrink(&s->wbuf, 0);
	if (status < 0 && s->state != SESS_CLOSING)
		session_close(s, "write-error");
	if (s->state == SESS_CLOSING) {
		if (!uv_is_closing((uv_handle_t *)&s->tcp))
			uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
	} else {
		session_flush(s);
		session_process(s);
	}
	session_unref(s);
}

/* OpenSSL's output (records, alerts, tickets) to tlsout, for the socket. */
static int tls_drain(struct session *s)
{
	char tmp[16384];
	int n;

	while ((n = BIO_read(s->net_out, tmp, sizeof tmp)) > 0)
		if (buf_append(&s->tlsout, tmp, (size_t)n) < 0)
			return -1;
	return 0;
}

/* The session's plaintext replies become records. A memory BIO never
 * pushes back, so SSL_write takes everything at once. */
static int tls_encrypt(struct session *s)
{
	while (s->out.len > 0) {
		int n = SSL_write(s->ssl, s->out.data,
				  s->out.len > SESSION_OUT_MAX ? SESSION_OUT_MAX : (int)s->out.len);

		if (n <= 0)
			return -1;
		buf_consume(&s->out, (size_t)n);
	}
	return tls_drain(s);
}

void session_flush(struct session *s)
{
	struct buf *wire = &s->out;
	struct buf tmp;
	uv_buf_t b;
	size_t max;
	int n;

	if (s->ssl != NULL) {
		/* Nothing may go out in plaintext once TLS has begun: during
		 * the handshake a reply (a timeout's 421) is dropped. */
		if (s->tls_handshaking)
			buf_reset(&s->out);
		if ((s->tls_handshaking ? tls_drain(s) : tls_encrypt(s)) < 0) {
			buf_reset(&s->out);
			buf_reset(&s->tlsout);
			if (s->state != SESS_CLOSING)
				session_close(s, "tls-write-error");
			return;
		}
		wire = &s->tlsout;
	}
	if (s->writing || wire->len == 0)
		return;
	if (uv_is_closing((uv_handle_t *)&s->tcp))
		return;
	b = uv_buf_init((char *)wire->data, (unsigned)wire->len);
	n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
	if (n > 0)
		buf_consume(wire, (size_t)n);
	else if (n < 0 && n != UV_EAGAIN) {
		buf_reset(wire);
		if (s->state != SESS_CLOSING)
			session_close(s, "write-error");
		return;
	}
	if (wire->len == 0) {
		buf_shrink(wire, 0);
		return;
	}
	/* The rest goes out asynchronously; `wire` keeps collecting meanwhile. */
	max = wire->max;
	tmp = s->wbuf;
	s->wbuf = *wire;
	*wire = tmp;
	buf_reset(wire);
	wire->max = max;
	b = uv_buf_init((char *)s->wbuf.data, (unsigned)s->wbuf.len);
	s->wreq.data = s;
	if (uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_write) == 0) {
		s->writing = true;
		session_ref(s);
	} else {
		buf_reset(&s->wbuf);
		if (s->state != SESS_CLOSING)
			session_close(s, "write-error");
	}
}

/* ---- closing --------------------------------------------------------- */

void session_close(struct session *s, const char *reason)
{
	if (s->state == SESS_CLOSING)
		return;
	s->state = SESS_CLOSING;
	session_log(s, "disconnect", "reason=%s messages=%u errors=%u bytes_in=%llu duration_ms=%llu",
		    reason, s->messages, s->errors, (unsigned long long)s->bytes_in,
		    (unsigned long long)(now_ms(s) - s->started_ms));
	if (s->tx.spooling && s->tx.msg.cb == NULL) {
		/* Unfinished message: never acknowledged, so it goes away. */
		spool_msg_abort(&s->tx.msg);
		s->tx.spooling = false;
	}
	if (s->counted) {
		connlimit_release(s->w->connlimit, s->w->index, &s->peer);
		s->counted = false;
	}
	uv_read_stop((uv_stream_t *)&s->tcp);
	s->reading = false;
	if (!uv_is_closing((uv_handle_t *)&s->timer))
		uv_close((uv_handle_t *)&s->timer, on_handle_closed);
	/* RFC 8446 6.1: the last reply, then close_notify, then the FIN (a
	 * client like openssl s_client reports a bare FIN as a truncation
	 * attack). Never after a fatal TLS error. */
	if (session_tls(s) && !s->tls_broken && tls_encrypt(s) == 0) {
		SSL_shutdown(s->ssl);
		tls_drain(s);
	}
	/* Send what is queued (the 421 or 221), then close the socket. */
	session_flush(s);
	if (!s->writing && !uv_is_closing((uv_handle_t *)&s->tcp))
		uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

/* ---- timers ---------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
	struct session *s = t->data;

	switch (s->state) {
	case SESS_GREETING:
		session_replyf(s, 220, NULL, "%s ESMTP tern", s->w->conf->hostname);
		s->state = SESS_COMMAND;
		session_flush(s);
		session_restart_timer(s);
		return;
	case SESS_WAIT:
		/* The spool is working for this session; the clock restarts after. */
		return;
	case SESS_PAUSE:
		s->state = SESS_COMMAND;
		session_reply(s, s->paused_reply);
		s->paused_reply = NULL;
		session_restart_timer(s);
		session_process(s);
		return;
	default:
		break;
	}
	if (session_left_ms(s) == 0) {
		session_reply(s, &r_session_timeout);
		session_close(s, "session-timeout");
	} else if (s->state == SESS_DATA || s->state == SESS_BDAT) {
		session_reply(s, &r_data_timeout);
		session_close(s, "data-timeout");
	} else {
		session_reply(s, &r_idle);
		session_close(s, "idle-timeout");
	}
}

/* The idle or data timeout, but never past the end of session_timeout:
 * a client that trickles one byte per read still meets the session limit. */
void session_restart_timer(struct session *s)
{
	uint64_t ms = (uint64_t)((s->state == SESS_DATA || s->state == SESS_BDAT) ?
				 s->w->conf->data_timeout : s->w->conf->idle_timeout) * 1000;
	uint64_t left = session_left_ms(s);

	if (s->state != SESS_GREETING && s->state != SESS_CLOSING && s->state != SESS_PAUSE)
		uv_timer_start(&s->timer, on_timer, left < ms ? left : ms, 0);
}

void session_reply_later(struct session *s, const struct smtp_reply *r, uint32_t ms)
{
	uint64_t left = session_left_ms(s);

	s->state = SESS_PAUSE;
	s->paused_reply = r;
	uv_timer_start(&s->timer, on_timer, left < ms ? left : ms, 0);
}

/* ---- input ----------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct session *s = h->data;
	/* Small reads for commands, larger inside a message; an idle session
	 * holds no input buffer at all (see session_process). */
	size_t want = (s->state == SESS_DATA || s->state == SESS_BDAT) ? 32768 : 4096;
	size_t room = SESSION_IN_MAX - s->in.len;

	(void)suggested;
	if (want > room)
		want = room;
	if (want == 0 || buf_reserve(&s->in, want) < 0) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	*b = uv_buf_init((char *)s->in.data + s->in.len, (unsigned)want);
}

static void tls_fail(struct session *s, const char *stage)
{
	struct buf b;

	buf_init(&b, 1024);
	s->tls_broken = true;
	buf_printf(&b, "event=tls-error session=%s stage=%s", s->id, stage);
	log_kv_escaped(&b, "reason", tls_error_reason(), strlen(tls_error_reason()));
	log_buf(LOG_WARN, &b);
	buf_free(&b);
	ERR_clear_error();
	session_close(s, "tls-error");
}

static void tls_established(struct session *s)
{
	s->tls_handshaking = false;
	snprintf(s->tls_version, sizeof s->tls_version, "%s", SSL_get_version(s->ssl));
	snprintf(s->tls_cipher, sizeof s->tls_cipher, "%s", SSL_get_cipher_name(s->ssl));
	session_log(s, "tls", "version=%s cipher=%s resumed=%s", s->tls_version, s->tls_cipher,
		    SSL_session_reused(s->ssl) ? "yes" : "no");
	/* RFC 8314 3.3: on an implicit-TLS port the greeting comes inside TLS. */
	if (s->tls_implicit)
		session_replyf(s, 220, NULL, "%s ESMTP tern", s->w->conf->hostname);
}

/* Plaintext from OpenSSL into `in`, as much as `in` can take; what does
 * not fit stays in OpenSSL and is read when `in` drains (session_process),
 * not only when the socket has news: a poller never sees those bytes. */
static int tls_read(struct session *s)
{
	for (;;) {
		size_t room = SESSION_IN_MAX - s->in.len;
		int n, e;

		if (room < SMTP_CMD_LINE_MAX)
			return 0;
		if (room > 16384)
			room = 16384;
		if (buf_reserve(&s->in, room) < 0)
			return 0;
		n = SSL_read(s->ssl, s->in.data + s->in.len, (int)room);
		if (n > 0) {
			s->in.len += (size_t)n;
			continue;
		}
		e = SSL_get_error(s->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			return 0;
		/* After TLS ends the connection is over: never plaintext again
		 * on this socket (the Exim CVE-2026-45185 lesson). */
		if (e == SSL_ERROR_ZERO_RETURN)
			session_close(s, "tls-closed");
		else
			tls_fail(s, "read");
		return -1;
	}
}

/* Socket bytes through OpenSSL: the handshake first, then records. */
static int tls_input(struct session *s, size_t n)
{
	if (BIO_write(s->net_in, s->in.data + s->in.len, (int)n) != (int)n) {
		tls_fail(s, "buffer");
		return -1;
	}
	if (s->tls_handshaking) {
		int r = SSL_do_handshake(s->ssl);

		if (r != 1) {
			if (SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_READ) {
				session_flush(s);
				return -1;
			}
			tls_fail(s, "handshake");
			return -1;
		}
		tls_established(s);
	}
	return tls_read(s);
}

/* The filter point: what the socket gave, in plaintext, into `in`. */
static void conn_input(struct session *s, size_t n)
{
	s->bytes_in += n;
	if (s->ssl != NULL) {
		/* The bytes landed past in.len; OpenSSL takes them from there. */
		session_restart_timer(s);
		if (tls_input(s, n) == 0)
			session_process(s);
		return;
	}
	s->in.len += n;
	if (s->state == SESS_GREETING) {
		/* Input before the banner: a client that does not wait for the
		 * greeting is not following RFC 5321 4.3.1 (an early talker). */
		session_reply(s, &r_early);
		session_close(s, "early-talker");
		return;
	}
	session_restart_timer(s);
	session_process(s);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct session *s = st->data;

	(void)b;
	if (n > 0) {
		conn_input(s, (size_t)n);
	} else if (n < 0) {
		session_close(s, n == UV_EOF ? "client-closed" : uv_err_name((int)n));
	}
}

static void set_reading(struct session *s, bool on)
{
	if (s->state == SESS_CLOSING || on == s->reading)
		return;
	if (on)
		s->reading = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0;
	else if (uv_read_stop((uv_stream_t *)&s->tcp) == 0)
		s->reading = false;
}

static void run_command(struct session *s, const uint8_t *line, size_t len)
{
	struct smtp_cmd c;

	if (s->state == SESS_AUTH) {
		auth_response(s, line, len);
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		session_error(s, &r_nul);
		return;
	}
	smtp_cmd_parse(line, len, &c);
	if (c.verb == SMTP_HTTP) {
		session_reply(s, &r_http);
		session_close(s, "http-request");
		return;
	}
	if (session_left_ms(s) == 0) {
		session_reply(s, &r_session_timeout);
		session_close(s, "session-timeout");
		return;
	}
	for (size_t i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++) {
		if (cmd_table[i].verb != c.verb)
			continue;
		if (cmd_table[i].needs_helo && !s->helo_done) {
			session_error(s, &r_need_helo);
			return;
		}
		cmd_table[i].fn(s, &c);
		return;
	}
	session_error(s, &r_unknown);
}

/* RFC 5321 4.5.3.1.4: 512 octets with CR LF; RFC 4954 4 allows AUTH
 * lines (the command with its initial response, and responses) 12288. */
static size_t line_limit(const struct session *s)
{
	if (s->state == SESS_AUTH ||
	    slice_startswith_nocase((struct slice){ s->in.data, s->in.len }, "AUTH "))
		return SMTP_AUTH_LINE_MAX;
	return SMTP_CMD_LINE_MAX;
}

/* One command line from `in`, if a whole one is there. */
static bool take_command(struct session *s)
{
	uint8_t *lf = memchr(s->in.data, '\n', s->in.len);
	size_t len;

	if (lf == NULL) {
		/* Past the limit, drop bytes until the line ends and refuse
		 * it then. */
		if (s->in.len > line_limit(s)) {
			s->skip_line = true;
			buf_reset(&s->in);
		}
		return false;
	}
	len = (size_t)(lf - s->in.data) + 1;
	if (s->skip_line || len > line_limit(s)) {
		s->skip_line = false;
		buf_consume(&s->in, len);
		/* An over-long AUTH response ends the exchange (RFC 4954 4). */
		if (s->state == SESS_AUTH)
			s->state = SESS_COMMAND;
		session_error(s, &r_toolong);
		return true;
	}
	/* The line without CR LF; a bare LF ending a command is tolerated
	 * (RFC 5321 4.1.1 wants CR LF, but it cannot smuggle anything here). */
	size_t n = len - 1;
	if (n > 0 && s->in.data[n - 1] == '\r')
		n--;
	run_command(s, s->in.data, n);
	buf_consume(&s->in, len);
	return true;
}

/* Whether OpenSSL holds input the session could take now. */
static bool tls_pending(struct session *s)
{
	return session_tls(s) && s->in.len < SESSION_IN_MAX / 2 &&
	       (SSL_pending(s->ssl) > 0 || BIO_ctrl_pending(s->net_in) > 0);
}

void session_process(struct session *s)
{
	session_ref(s);
	for (;;) {
		size_t before = s->in.len;

		if (s->state == SESS_CLOSING || s->state == SESS_WAIT || s->state == SESS_PAUSE ||
		    !tls_pending(s))
			break;
		if (tls_read(s) < 0 || s->in.len == before)
			break;
		process_input(s);
	}
	process_input(s);
	if (s->state != SESS_CLOSING) {
		session_flush(s);
		/* Keep reading unless the input buffer is full of work we
		 * cannot do yet (commit in flight, or replies not drained). */
		set_reading(s, s->in.len < SESSION_IN_MAX - SMTP_CMD_LINE_MAX);
		if (s->in.len == 0)
			buf_shrink(&s->in, 0);
	}
	session_unref(s);
}

static void process_input(struct session *s)
{
	while (s->state != SESS_CLOSING && s->state != SESS_WAIT && s->state != SESS_PAUSE &&
	       s->state != SESS_GREETING && s->in.len > 0 &&
	       s->out.len < SESSION_OUT_MAX / 2) {
		size_t used;

		if (s->state == SESS_DATA) {
			used = data_input(s, s->in.data, s->in.len);
			buf_consume(&s->in, used);
		} else if (s->state == SESS_BDAT) {
			used = bdat_input(s, s->in.data, s->in.len);
			buf_consume(&s->in, used);
		} else if (!take_command(s)) {
			break;
		}
	}
}

/* ---- accept ---------------------------------------------------------- */

static const struct smtp_reply r_busy = {
	421, "4.7.0", "Server busy: too many connections, try again later"
};
static const struct smtp_reply r_busy_ip = {
	421, "4.7.0", "Too many connections from your address, try again later"
};

static void peer_name(struct session *s)
{
	int len = sizeof s->peer;

	memset(&s->peer, 0, sizeof s->peer);
	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&s->peer, &len) != 0) {
		snprintf(s->client_ip, sizeof s->client_ip, "unknown");
		return;
	}
	if (s->peer.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&s->peer;
		uv_ip4_name(a, s->client_ip, sizeof s->client_ip);
		s->client_port = ntohs(a->sin_port);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->peer;
		uv_ip6_name(a, s->client_ip, sizeof s->client_ip);
		s->client_port = ntohs(a->sin6_port);
	}
}

void session_accept(struct worker *w, const struct listener_conf *lc,
		    uv_stream_t *server)
{
	struct session *s = calloc(1, sizeof *s);
	enum connlimit_result lim;

	if (s == NULL)
		return;
	s->w = w;
	s->lc = lc;
	w->nsessions++;
	s->next = w->sessions;
	if (w->sessions != NULL)
		w->sessions->prev = s;
	w->sessions = s;
	s->started_ms = uv_now(w->loop);
	snprintf(s->id, sizeof s->id, "%02x%06llx%08llx", w->index & 0xff,
		 (unsigned long long)(uv_now(w->loop) / 1000) & 0xffffff,
		 (unsigned long long)(w->next_session++ & 0xffffffff));
	buf_init(&s->in, SESSION_IN_MAX);
	buf_init(&s->out, SESSION_OUT_MAX);
	buf_init(&s->wbuf, SESSION_OUT_MAX);
	buf_init(&s->tlsout, SESSION_OUT_MAX * 2);
	buf_init(&s->tx.dbuf, SESSION_SPOOL_CHUNK * 2);
	uv_tcp_init(w->loop, &s->tcp);
	uv_timer_init(w->loop, &s->timer);
	s->tcp.data = s;
	s->timer.data = s;
	s->refs = 2; /* the socket and the timer */
	if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
		s->state = SESS_CLOSING;
		uv_close((uv_handle_t *)&s->timer, on_handle_closed);
		uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
		return;
	}
	uv_tcp_nodelay(&s->tcp, 1);
	peer_name(s);
	session_log(s, "connect", "client=%s port=%u listener=%s local_port=%u",
		    s->client_ip, s->client_port, conf_role_name(lc->role), lc->port);
	if (w->stopping) {
		session_reply(s, &r_shutdown);
		session_close(s, "shutting-down");
		return;
	}
	lim = connlimit_acquire(w->connlimit, w->index, &s->peer,
				w->conf->max_connections, w->conf->max_connections_per_ip);
	if (lim == CONNLIMIT_TOTAL || lim == CONNLIMIT_PER_IP) {
		session_reply(s, lim == CONNLIMIT_TOTAL ? &r_busy : &r_busy_ip);
		session_close(s, lim == CONNLIMIT_TOTAL ? "max-connections" : "max-connections-per-ip");
		return;
	}
	s->counted = lim == CONNLIMIT_OK;
	if (lim == CONNLIMIT_UNTRACKED)
		log_event(LOG_WARN, "event=connlimit-table-full session=%s client=%s", s->id, s->client_ip);
	set_reading(s, true);
	if (lc->tls == LISTEN_TLS_IMPLICIT) {
		/* RFC 8314 3.3: TLS from the first byte; nothing is ever said
		 * in plaintext on this port. */
		s->state = SESS_COMMAND;
		s->tls_implicit = true;
		if (w->tls == NULL) {
			session_close(s, "no-tls-context");
			return;
		}
		session_start_tls(s);
		session_restart_timer(s);
		return;
	}
	if (lc->greet_pause_ms > 0) {
		s->state = SESS_GREETING;
		uv_timer_start(&s->timer, on_timer, lc->greet_pause_ms, 0);
		return;
	}
	s->state = SESS_GREETING;
	on_timer(&s->timer);
}

void session_tx_reset(struct session *s)
{
	struct transaction *t = &s->tx;

	if (t->spooling)
		spool_msg_abort(&t->msg);
	msgauth_free(t->ma);
	free(t->rcpts);
	buf_free(&t->dbuf);
	memset(t, 0, sizeof *t);
	buf_init(&t->dbuf, SESSION_SPOOL_CHUNK * 2);
}

void session_shutdown_all(struct worker *w)
{
	struct session *s = w->sessions;

	while (s != NULL) {
		struct session *next = s->next;

		if (s->state != SESS_WAIT && s->state != SESS_CLOSING) {
			session_reply(s, &r_shutdown);
			session_close(s, "shutting-down");
		}
		s = next;
	}
}

void session_start_tls(struct session *s)
{
	/* RFC 3207 4.2 and CVE-2011-0411: whatever the client sent after
	 * STARTTLS in plaintext is discarded, never read inside TLS; the
	 * session starts over (the client must EHLO again). */
	buf_reset(&s->in);
	s->skip_line = false;
	s->helo_done = false;
	s->esmtp = false;
	s->helo[0] = '\0';
	s->auth_user[0] = '\0';
	session_tx_reset(s);
	s->ssl = SSL_new(s->w->tls);
	s->net_in = BIO_new(BIO_s_mem());
	s->net_out = BIO_new(BIO_s_mem());
	if (s->ssl == NULL || s->net_in == NULL || s->net_out == NULL) {
		BIO_free(s->net_in);
		BIO_free(s->net_out);
		s->net_in = s->net_out = NULL;
		tls_fail(s, "setup");
		return;
	}
	/* An empty input BIO means "wait for more", not end of stream. */
	BIO_set_mem_eof_return(s->net_in, -1);
	SSL_set_bio(s->ssl, s->net_in, s->net_out);
	SSL_set_accept_state(s->ssl);
	s->tls_handshaking = true;
}
