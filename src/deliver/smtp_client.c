/* smtp_client.c - the SMTP/LMTP client state machine on libuv; see smtp_client.h. */
#include "smtp_client.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <openssl/err.h>

#include "../lib/buf.h"
#include "../lib/tls_client.h"
#include "../proto/sasl.h"

#define OUT_MAX ((size_t)16 << 20)	/* commands of a pipelined group, or a block of data */
#define BODY_CHUNK ((size_t)65536)	/* the message is encoded this much at a time */
#define READ_SIZE 16384

enum state {
	ST_CONNECTING,
	ST_TLS_IMPLICIT,	/* handshake before the greeting */
	ST_GREETING,
	ST_EHLO,		/* EHLO or LHLO */
	ST_HELO,
	ST_STARTTLS,
	ST_TLS_HANDSHAKE,
	ST_AUTH,
	ST_READY,		/* idle: smtpc_send() may start a transaction */
	ST_RSET,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,		/* the reply to DATA is due */
	ST_BODY,		/* writing the message */
	ST_DOT,			/* the reply(s) to the end of the message are due */
	ST_QUIT,
	ST_DEAD,		/* the connection is closed or closing */
};

enum pending { PEND_NONE, PEND_READY, PEND_DONE };

/* How something ended: the server's reply (code != 0) or our words. */
struct outcome {
	enum smtpc_stage stage;
	int code;
	char enh[SMTP_ENH_MAX];
	char text[SMTP_REPLY_TEXT_MAX];
	bool temporary;
};

struct smtpc {
	uv_loop_t *loop;
	union {
		uv_handle_t h;
		uv_stream_t s;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} io;
	uv_connect_t creq;
	uv_timer_t timer;		/* the stage's timeout */
	uv_timer_t defer;		/* callbacks run from here, never inside a call */
	uv_write_t wreq;
	int refs;			/* open handles + the caller's until smtpc_quit */
	bool io_open;
	bool quitting;

	struct smtpc_callbacks cb;
	void *arg;
	char helo[SMTPC_NAME_MAX + 1];
	char tls_name[SMTPC_NAME_MAX + 1];
	char user[SMTPC_NAME_MAX + 1];
	char pass[SMTPC_NAME_MAX + 1];
	bool lmtp;
	enum smtpc_tls tls;
	bool verify_implicit;
	SSL_CTX *ctx;			/* a reference of our own */
	void (*trace)(void *arg, char dir, const char *line, size_t len);
	void *trace_arg;
	bool in_body;			/* out holds message bytes: not traced */
	char tline[SMTP_REPLY_LINE_MAX];	/* a received line being traced */
	size_t tlen;
	unsigned t_connect, t_greeting, t_helo, t_mail, t_rcpt, t_data, t_block, t_dot;

	enum state state;
	const char *doing;		/* "waiting for the greeting": for a timeout */
	unsigned doing_ms;
	bool auth_login;
	unsigned auth_step;
	bool secret;			/* out holds credentials: wipe once encrypted */
	bool out_err;
	bool was_ready;
	bool dead_told;			/* a callback said the connection is unusable */
	bool need_rset;

	SSL *ssl;
	BIO *net_in, *net_out;		/* owned by ssl */
	bool handshaking;
	struct buf out;			/* plaintext to send */
	struct buf tlsout;		/* TLS records to send */
	struct buf wbuf;		/* the bytes uv_write has */
	bool writing;
	uint8_t rbuf[READ_SIZE];
	struct smtp_reply_parser rp;
	struct smtp_ehlo ehlo;		/* the EHLO reply being read */

	struct smtpc_result facts;	/* peer, TLS, extensions, AUTH */
	struct outcome conn;		/* how the connection became ready, or failed */
	enum pending pending;

	struct {
		struct smtpc_msg *m;
		size_t *sent;		/* indexes of the recipients given to RCPT */
		size_t nsent;
		size_t replied;		/* RCPT replies (then LMTP replies) read */
		size_t accepted;
		bool pipelined;
		bool bdat;
		bool decided;		/* o is the end already (MAIL or every RCPT failed) */
		size_t iov, off;	/* where the message is being read */
		bool bol, cr;		/* dot-stuffing state */
		bool utf8;		/* the message needs SMTPUTF8 (RFC 6531 3.5) */
		bool eight;		/* BODY=8BITMIME and it has 8-bit octets */
		struct outcome o;
	} tx;
};

static void on_timeout(uv_timer_t *t);
static void flush(struct smtpc *c);
static uint64_t data_size(const struct smtpc_msg *m);
static void start_tls(struct smtpc *c, bool verify);

const char *smtpc_stage_name(enum smtpc_stage s)
{
	static const char *const names[] = { "connect", "greeting", "ehlo", "tls", "auth",
					     "mail", "rcpt", "data", "dot" };

	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

const char *smtpc_tls_name(enum smtpc_tls t)
{
	static const char *const names[] = { "none", "may", "encrypt", "verify", "implicit" };

	return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

void smtpc_opts_init(struct smtpc_opts *o)
{
	memset(o, 0, sizeof *o);
	o->connect_timeout_ms = 30 * 1000;
	o->greeting_timeout_ms = 5 * 60 * 1000;
	o->helo_timeout_ms = 5 * 60 * 1000;
	o->mail_timeout_ms = 5 * 60 * 1000;
	o->rcpt_timeout_ms = 5 * 60 * 1000;
	o->data_timeout_ms = 2 * 60 * 1000;
	o->block_timeout_ms = 3 * 60 * 1000;
	o->dot_timeout_ms = 10 * 60 * 1000;
}

static unsigned ms_or(unsigned v, unsigned def)
{
	return v != 0 ? v : def;
}

static enum smtpc_stage stage_of(enum state s)
{
	switch (s) {
	case ST_CONNECTING:
		return SMTPC_STAGE_CONNECT;
	case ST_GREETING:
		return SMTPC_STAGE_GREETING;
	case ST_EHLO:
	case ST_HELO:
		return SMTPC_STAGE_EHLO;
	case ST_TLS_IMPLICIT:
	case ST_STARTTLS:
	case ST_TLS_HANDSHAKE:
		return SMTPC_STAGE_TLS;
	case ST_AUTH:
		return SMTPC_STAGE_AUTH;
	case ST_RCPT:
		return SMTPC_STAGE_RCPT;
	case ST_DATA:
	case ST_BODY:
		return SMTPC_STAGE_DATA;
	case ST_DOT:
	case ST_QUIT:
		return SMTPC_STAGE_DOT;
	default:
		return SMTPC_STAGE_MAIL;
	}
}

/* ---- outcomes ---------------------------------------------------------- */

static void outcome_local(struct outcome *o, enum smtpc_stage st, const char *enh, bool temp,
			  const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void outcome_local(struct outcome *o, enum smtpc_stage st, const char *enh, bool temp,
			  const char *fmt, va_list ap)
{
	char raw[SMTP_REPLY_TEXT_MAX];
	int n = vsnprintf(raw, sizeof raw, fmt, ap);

	o->stage = st;
	o->code = 0;
	snprintf(o->enh, sizeof o->enh, "%s", enh);
	/* Our words may quote the peer (an OpenSSL reason, an address). */
	smtp_reply_escape((const uint8_t *)raw, n < 0 ? 0 : strnlen(raw, sizeof raw), o->text,
			  sizeof o->text);
	o->temporary = temp;
}

static void set_local(struct outcome *o, enum smtpc_stage st, const char *enh, bool temp,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void set_local(struct outcome *o, enum smtpc_stage st, const char *enh, bool temp,
		      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	outcome_local(o, st, enh, temp, fmt, ap);
	va_end(ap);
}

static void outcome_reply(struct outcome *o, const struct smtp_reply_parser *p,
			  enum smtpc_stage st, bool force_temp)
{
	o->stage = st;
	o->code = p->code;
	memcpy(o->enh, p->enh, sizeof o->enh);
	memcpy(o->text, p->text, sizeof o->text);
	o->temporary = force_temp || p->code / 100 == 4;
}

static void rcpt_set(struct smtpc_rcpt *r, const struct outcome *o)
{
	r->code = o->code;
	memcpy(r->enh, o->enh, sizeof r->enh);
	memcpy(r->text, o->text, sizeof r->text);
	r->temporary = o->temporary;
	r->done = true;
}

static void result_of(const struct smtpc *c, const struct outcome *o, struct smtpc_result *r)
{
	*r = c->facts;
	r->stage = o->stage;
	r->code = o->code;
	memcpy(r->enh, o->enh, sizeof r->enh);
	memcpy(r->text, o->text, sizeof r->text);
	r->temporary = o->temporary;
}

/* ---- life -------------------------------------------------------------- */

static void release(struct smtpc *c)
{
	void (*closed)(void *);
	void *arg;

	if (--c->refs > 0)
		return;
	closed = c->cb.closed;
	arg = c->arg;
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	free(c->tx.sent);
	buf_free(&c->out);
	buf_free(&c->tlsout);
	buf_free(&c->wbuf);
	explicit_bzero(c, sizeof *c);	/* the credentials */
	free(c);
	if (closed != NULL)
		closed(arg);
}

static void on_closed(uv_handle_t *h)
{
	release(h->data);
}

/* Stop talking; after smtpc_quit, also the timer goes. */
static void close_io(struct smtpc *c)
{
	uv_timer_stop(&c->timer);
	if (c->io_open) {
		c->io_open = false;
		uv_read_stop(&c->io.s);
		uv_close(&c->io.h, on_closed);
	}
	if (c->quitting && !uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void on_defer(uv_timer_t *t)
{
	struct smtpc *c = t->data;
	enum pending p = c->pending;
	struct smtpc_result r;

	c->pending = PEND_NONE;
	if (c->quitting)
		return;
	if (p == PEND_READY) {
		result_of(c, &c->conn, &r);
		r.ok = c->was_ready && c->state != ST_DEAD;
		c->dead_told = !r.ok;
		c->cb.ready(c, &r, c->arg);
	} else if (p == PEND_DONE) {
		struct smtpc_msg *m = c->tx.m;
		size_t ok = 0;

		for (size_t i = 0; i < m->nrcpts; i++)
			ok += m->rcpts[i].code / 100 == 2;
		result_of(c, &c->tx.o, &r);
		r.ok = ok > 0;
		r.reusable = c->state == ST_READY;
		c->dead_told = !r.reusable;
		c->tx.m = NULL;
		c->cb.done(c, m, &r, c->arg);
	}
}

static void schedule(struct smtpc *c, enum pending p)
{
	c->pending = p;
	uv_timer_start(&c->defer, on_defer, 0, 0);
}

static void arm(struct smtpc *c, unsigned ms, const char *doing)
{
	c->doing = doing;
	c->doing_ms = ms;
	uv_timer_start(&c->timer, on_timeout, ms, 0);
}

/* The transaction is over: every recipient without a result gets o. */
static void tx_end(struct smtpc *c, const struct outcome *o)
{
	struct smtpc_msg *m = c->tx.m;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (!m->rcpts[i].done)
			rcpt_set(&m->rcpts[i], o);
	if (o != &c->tx.o)
		c->tx.o = *o;
	free(c->tx.sent);
	c->tx.sent = NULL;
	if (c->state != ST_DEAD) {
		c->state = ST_READY;
		uv_timer_stop(&c->timer);
	}
	schedule(c, PEND_DONE);
}

/* The connection is over: tell whoever waits for it. c->conn says why. */
static void broken(struct smtpc *c)
{
	enum state was = c->state;

	if (was == ST_DEAD)
		return;
	c->state = ST_DEAD;
	close_io(c);
	if (c->quitting)
		return;
	if (!c->was_ready)
		schedule(c, PEND_READY);
	else if (c->tx.m != NULL && c->pending == PEND_NONE && was != ST_READY)
		tx_end(c, &c->conn);
}

static void fail_at(struct smtpc *c, enum smtpc_stage st, const char *enh, bool temp,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void fail_at(struct smtpc *c, enum smtpc_stage st, const char *enh, bool temp,
		    const char *fmt, ...)
{
	va_list ap;

	if (c->state == ST_DEAD)
		return;
	va_start(ap, fmt);
	outcome_local(&c->conn, st, enh, temp, fmt, ap);
	va_end(ap);
	broken(c);
}

/* The reply just read ends the connection (force_temp: whatever its code). */
static void fail_reply(struct smtpc *c, bool force_temp)
{
	if (c->state == ST_DEAD)
		return;
	/* A 2xx or 3xx that ends the connection is not a refusal. */
	outcome_reply(&c->conn, &c->rp, stage_of(c->state), force_temp || c->rp.code / 100 < 4);
	broken(c);
}

static void on_timeout(uv_timer_t *t)
{
	struct smtpc *c = t->data;
	unsigned ms = c->doing_ms;

	if (c->state == ST_QUIT) {
		close_io(c);
		return;
	}
	if (ms % 1000 == 0)
		fail_at(c, stage_of(c->state), "4.4.2", true, "timeout after %u s %s", ms / 1000,
			c->doing);
	else
		fail_at(c, stage_of(c->state), "4.4.2", true, "timeout after %u ms %s", ms, c->doing);
}

static void ready_ok(struct smtpc *c, enum smtpc_stage st)
{
	outcome_reply(&c->conn, &c->rp, st, false);
	c->state = ST_READY;
	c->was_ready = true;
	uv_timer_stop(&c->timer);
	schedule(c, PEND_READY);
}

/* ---- output ------------------------------------------------------------ */

static const char *ossl_why(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : "connection closed";
}

static void put(struct smtpc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct smtpc *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&c->out, fmt, ap) < 0)
		c->out_err = true;
	va_end(ap);
}

static void put_raw(struct smtpc *c, const void *p, size_t n)
{
	if (buf_append(&c->out, p, n) < 0)
		c->out_err = true;
}

static void on_write(uv_write_t *req, int status);

/* OpenSSL's records into tlsout. */
static int tls_drain(struct smtpc *c)
{
	uint8_t tmp[16384];
	int n;

	while ((n = BIO_read(c->net_out, tmp, sizeof tmp)) > 0)
		if (buf_append(&c->tlsout, tmp, (size_t)n) < 0)
			return -1;
	return 0;
}

/* Plaintext into records; the memory BIO takes everything at once. */
static int tls_encrypt(struct smtpc *c)
{
	size_t off = 0;

	while (off < c->out.len) {
		size_t n = c->out.len - off;
		int w = SSL_write(c->ssl, c->out.data + off, n > INT_MAX ? INT_MAX : (int)n);

		if (w <= 0)
			return -1;
		off += (size_t)w;
		/* Records leave as they are made: tlsout never holds two copies. */
		if (tls_drain(c) < 0)
			return -1;
	}
	if (c->secret) {
		explicit_bzero(c->out.data, c->out.cap);
		c->secret = false;
	}
	buf_reset(&c->out);
	return tls_drain(c);
}

/* Lines of p (CR LF or LF ended) to the trace. Sent bytes are whole
 * lines; a partial last line of received bytes waits in tline. */
static void trace_bytes(struct smtpc *c, char dir, const uint8_t *p, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (dir == '>') {
			size_t len = i > start && p[i - 1] == '\r' ? i - 1 - start : i - start;

			c->trace(c->trace_arg, dir, (const char *)p + start, len);
		} else {
			size_t take = i - start < sizeof c->tline - c->tlen ? i - start : sizeof c->tline - c->tlen;
			size_t len;

			memcpy(c->tline + c->tlen, p + start, take);
			c->tlen += take;
			len = c->tlen > 0 && c->tline[c->tlen - 1] == '\r' ? c->tlen - 1 : c->tlen;
			c->trace(c->trace_arg, dir, c->tline, len);
			c->tlen = 0;
		}
		start = i + 1;
	}
	if (dir == '<' && start < n) {
		size_t take = n - start < sizeof c->tline - c->tlen ? n - start : sizeof c->tline - c->tlen;

		memcpy(c->tline + c->tlen, p + start, take);
		c->tlen += take;
	}
}

/* What out holds is about to leave: the trace sees it once. */
static void trace_out(struct smtpc *c)
{
	if (c->trace == NULL || c->out.len == 0)
		return;
	if (c->in_body) {
		/* The message and its end went in this buffer; commands next. */
		if (c->state != ST_BODY) {
			c->trace(c->trace_arg, '>', ".", 1);
			c->in_body = false;
		}
		return;
	}
	trace_bytes(c, '>', c->out.data, c->out.len);
}

static void flush(struct smtpc *c)
{
	struct buf *wire = &c->out;
	struct buf tmp;
	uv_buf_t b;

	if (!c->io_open)
		return;
	if (c->out_err) {
		fail_at(c, stage_of(c->state), "4.3.0", true,
			"cannot hold the commands to send (out of memory)");
		return;
	}
	if (c->ssl != NULL) {
		if (!c->handshaking)
			trace_out(c);
		if ((c->handshaking ? tls_drain(c) : tls_encrypt(c)) < 0) {
			fail_at(c, stage_of(c->state), "4.7.5", true, "TLS write failed: %s",
				ossl_why());
			ERR_clear_error();
			return;
		}
		wire = &c->tlsout;
	}
	if (c->writing || wire->len == 0)
		return;
	if (c->ssl == NULL)
		trace_out(c);
	tmp = c->wbuf;
	c->wbuf = *wire;
	*wire = tmp;
	buf_reset(wire);
	b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
	c->wreq.data = c;
	if (uv_write(&c->wreq, &c->io.s, &b, 1, on_write) < 0) {
		buf_reset(&c->wbuf);
		fail_at(c, stage_of(c->state), "4.4.2", true, "lost connection with %s while sending",
			c->facts.peer);
		return;
	}
	c->writing = true;
}

/* ---- the message ------------------------------------------------------- */

/* Dot-stuffed, CR LF only (see the header); state carried across calls. */
static void stuff(struct smtpc *c, const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t ch = p[i];
		size_t j;

		if (c->tx.cr) {
			/* A CR, bare or not, ends the line: CR LF goes out. */
			c->tx.cr = false;
			put_raw(c, "\r\n", 2);
			c->tx.bol = true;
			if (ch == '\n') {
				i++;
				continue;
			}
		}
		if (ch == '\r') {
			c->tx.cr = true;
			i++;
			continue;
		}
		if (ch == '\n') {
			put_raw(c, "\r\n", 2);
			c->tx.bol = true;
			i++;
			continue;
		}
		if (c->tx.bol && ch == '.')
			put_raw(c, ".", 1);
		c->tx.bol = false;
		for (j = i; j < n && p[j] != '\r' && p[j] != '\n'; j++)
			;
		put_raw(c, p + i, j - i);
		i = j;
	}
}

/* Encode the next part of the message into out, and the end when it comes. */
static void pump(struct smtpc *c)
{
	struct smtpc_msg *m = c->tx.m;

	if (c->trace != NULL && !c->in_body && c->tx.iov == 0 && c->tx.off == 0) {
		char line[64];
		int n = snprintf(line, sizeof line, "[message: %llu octets]",
				 (unsigned long long)data_size(m));

		trace_out(c);	/* the commands before it, if still here */
		c->trace(c->trace_arg, '>', line, (size_t)n);
		c->in_body = true;
	}
	while (c->out.len < BODY_CHUNK && c->tx.iov < m->ndata && !c->out_err) {
		const struct iovec *v = &m->data[c->tx.iov];
		size_t n = v->iov_len - c->tx.off;

		if (n > BODY_CHUNK)
			n = BODY_CHUNK;
		if (c->tx.bdat)
			put_raw(c, (const uint8_t *)v->iov_base + c->tx.off, n);
		else
			stuff(c, (const uint8_t *)v->iov_base + c->tx.off, n);
		c->tx.off += n;
		if (c->tx.off == v->iov_len) {
			c->tx.iov++;
			c->tx.off = 0;
		}
	}
	if (c->tx.iov < m->ndata) {
		arm(c, c->t_block, "sending the message");
	} else {
		if (!c->tx.bdat) {
			if (c->tx.cr || !c->tx.bol)
				put_raw(c, "\r\n", 2);
			put_raw(c, ".\r\n", 3);
		}
		c->state = ST_DOT;
		c->tx.replied = 0;	/* LMTP: now counting the replies to the dot */
		arm(c, c->t_dot, c->tx.bdat ? "waiting for the reply to BDAT" :
					    "waiting for the reply to the end of the message");
	}
	flush(c);
}

static void on_write(uv_write_t *req, int status)
{
	struct smtpc *c = req->data;

	c->writing = false;
	buf_reset(&c->wbuf);
	buf_shrink(&c->wbuf, 0);
	if (!c->io_open)
		return;
	if (status < 0) {
		fail_at(c, stage_of(c->state), "4.4.2", true, "lost connection with %s while sending (%s)",
			c->facts.peer, uv_strerror(status));
		return;
	}
	if (c->state == ST_BODY)
		pump(c);
	else
		flush(c);
}

/* ---- commands ---------------------------------------------------------- */

static bool addr_ok(const char *a)
{
	if (a == NULL)
		return false;
	for (; *a; a++)
		if ((unsigned char)*a < 0x20 || *a == 0x7f)
			return false;
	return true;
}

/* RFC 3461 4: xtext of raw octets. */
static void put_xtext(struct smtpc *c, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch >= 33 && ch <= 126 && ch != '+' && ch != '=')
			put_raw(c, s, 1);
		else
			put(c, "+%02X", ch);
	}
}

static bool xtext_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && smtp_xtext_valid(slice_from_str(s));
}

/* ORCPT: addr-type ";" xtext (RFC 3461 4.2). */
static bool orcpt_ok(const char *s)
{
	const char *semi = s != NULL ? strchr(s, ';') : NULL;

	if (semi == NULL || semi == s || !xtext_ok(semi + 1))
		return false;
	for (const char *p = s; p < semi; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
	return true;
}

/* Any octet of s from 0x80 up. */
static bool non_ascii(const char *s)
{
	for (; s != NULL && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* RFC 6531 3.5: an internationalized message has non-ASCII in its
 * envelope or its header block (the body may be 8BITMIME without it). */
static bool needs_utf8(const struct smtpc_msg *m)
{
	uint32_t window = 0;

	if (non_ascii(m->mail_from))
		return true;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (non_ascii(m->rcpts[i].addr))
			return true;
	for (size_t v = 0; v < m->ndata; v++) {
		const uint8_t *p = m->data[v].iov_base;

		for (size_t k = 0; k < m->data[v].iov_len; k++) {
			if (p[k] >= 0x80)
				return true;
			window = window << 8 | p[k];
			if (window == 0x0d0a0d0a || (window & 0xffff) == 0x0a0a)
				return false;	/* the end of the header block */
		}
	}
	return false;
}

static bool has_8bit(const struct smtpc_msg *m)
{
	for (size_t v = 0; v < m->ndata; v++) {
		const uint8_t *p = m->data[v].iov_base;

		for (size_t k = 0; k < m->data[v].iov_len; k++)
			if (p[k] >= 0x80)
				return true;
	}
	return false;
}

static uint64_t data_size(const struct smtpc_msg *m)
{
	uint64_t n = 0;

	for (size_t i = 0; i < m->ndata; i++)
		n += m->data[i].iov_len;
	return n;
}

static void put_mail(struct smtpc *c)
{
	const struct smtpc_msg *m = c->tx.m;
	const struct smtp_ehlo *e = &c->facts.ext;

	put(c, "MAIL FROM:<%s>", m->mail_from);
	if (e->has_size)
		put(c, " SIZE=%llu", (unsigned long long)(m->size ? m->size : data_size(m)));
	if (m->body == BODY_8BITMIME && e->eightbitmime)
		put(c, " BODY=8BITMIME");
	else if (m->body == BODY_BINARYMIME)
		put(c, " BODY=BINARYMIME");
	if (m->smtputf8 && e->smtputf8)
		put(c, " SMTPUTF8");
	if (e->dsn && m->ret != DSN_RET_UNSPECIFIED)
		put(c, " RET=%s", m->ret == DSN_RET_FULL ? "FULL" : "HDRS");
	if (e->dsn && xtext_ok(m->envid))
		put(c, " ENVID=%s", m->envid);
	if (e->auth != 0 && m->auth_param != NULL && m->auth_param[0] != '\0') {
		put(c, " AUTH=");
		if (strcmp(m->auth_param, "<>") == 0)
			put(c, "<>");
		else
			put_xtext(c, m->auth_param);
	}
	put(c, "\r\n");
}

static void put_rcpt(struct smtpc *c, const struct smtpc_rcpt *r)
{
	static const struct {
		unsigned bit;
		const char *name;
	} notify[] = {
		{ DSN_NOTIFY_SUCCESS, "SUCCESS" },
		{ DSN_NOTIFY_FAILURE, "FAILURE" },
		{ DSN_NOTIFY_DELAY, "DELAY" },
	};

	put(c, "RCPT TO:<%s>", r->addr);
	if (c->facts.ext.dsn && r->notify != 0) {
		if (r->notify & DSN_NOTIFY_NEVER) {
			put(c, " NOTIFY=NEVER");
		} else {
			const char *sep = " NOTIFY=";

			for (size_t i = 0; i < sizeof notify / sizeof notify[0]; i++)
				if (r->notify & notify[i].bit) {
					put(c, "%s%s", sep, notify[i].name);
					sep = ",";
				}
		}
	}
	if (c->facts.ext.dsn && orcpt_ok(r->orcpt))
		put(c, " ORCPT=%s", r->orcpt);
	put(c, "\r\n");
}

static void send_helo(struct smtpc *c, const char *verb, enum state st)
{
	put(c, "%s %s\r\n", verb, c->helo);
	c->state = st;
	arm(c, c->t_helo, st == ST_HELO ? "waiting for the reply to HELO" :
			  c->lmtp ? "waiting for the reply to LHLO" : "waiting for the reply to EHLO");
	flush(c);
}

/* Credentials, only inside TLS (RFC 4954 4, DESIGN.md invariant 5). */
static void auth_start(struct smtpc *c)
{
	unsigned mechs = c->facts.ext.auth;
	uint8_t msg[2 * SMTPC_NAME_MAX + 2];
	char b64[sizeof msg * 4 / 3 + 8];
	size_t un, pn;

	if (c->user[0] == '\0' || (c->ssl != NULL && mechs == 0)) {
		ready_ok(c, SMTPC_STAGE_EHLO);
		return;
	}
	if (c->ssl == NULL) {
		fail_at(c, SMTPC_STAGE_AUTH, "4.7.4", true,
			"not sending credentials to %s: the connection is not encrypted", c->facts.peer);
		return;
	}
	if (!(mechs & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
		fail_at(c, SMTPC_STAGE_AUTH, "4.7.0", true,
			"%s offers no AUTH mechanism tern uses (PLAIN, LOGIN)", c->facts.peer);
		return;
	}
	c->auth_login = !(mechs & SMTP_AUTH_PLAIN);
	c->auth_step = 0;
	if (c->auth_login) {
		put(c, "AUTH LOGIN\r\n");
	} else {
		/* RFC 4616: [authzid] NUL authcid NUL passwd, the initial response. */
		un = strlen(c->user);
		pn = strlen(c->pass);
		msg[0] = '\0';
		memcpy(msg + 1, c->user, un);
		msg[1 + un] = '\0';
		memcpy(msg + 2 + un, c->pass, pn);
		sasl_b64_encode(msg, 2 + un + pn, b64, sizeof b64);
		put(c, "AUTH PLAIN %s\r\n", b64);
		explicit_bzero(msg, sizeof msg);
		explicit_bzero(b64, sizeof b64);
	}
	c->secret = true;
	c->state = ST_AUTH;
	arm(c, c->t_helo, "waiting for the reply to AUTH");
	flush(c);
}

static void auth_reply(struct smtpc *c)
{
	char b64[SMTPC_NAME_MAX * 4 / 3 + 8];
	const char *part;

	if (c->rp.code == 235) {
		snprintf(c->facts.auth_mech, sizeof c->facts.auth_mech, "%s",
			 c->auth_login ? "LOGIN" : "PLAIN");
		ready_ok(c, SMTPC_STAGE_AUTH);
		return;
	}
	if (c->rp.code != 334 || !c->auth_login || c->auth_step >= 2) {
		fail_reply(c, true);
		return;
	}
	part = c->auth_step++ == 0 ? c->user : c->pass;
	sasl_b64_encode((const uint8_t *)part, strlen(part), b64, sizeof b64);
	put(c, "%s\r\n", b64);
	explicit_bzero(b64, sizeof b64);
	c->secret = true;
	arm(c, c->t_helo, "waiting for the reply to AUTH");
	flush(c);
}

/* EHLO or HELO accepted: STARTTLS, AUTH or ready. */
static void after_helo(struct smtpc *c)
{
	bool want = c->tls == SMTPC_TLS_MAY || c->tls == SMTPC_TLS_ENCRYPT ||
		    c->tls == SMTPC_TLS_VERIFY;

	if (c->ssl == NULL && want && c->facts.ext.starttls) {
		put(c, "STARTTLS\r\n");
		c->state = ST_STARTTLS;
		arm(c, c->t_helo, "waiting for the reply to STARTTLS");
		flush(c);
	} else if (c->ssl == NULL && want && c->tls != SMTPC_TLS_MAY) {
		fail_at(c, SMTPC_STAGE_TLS, "4.7.4", true,
			"TLS is required, but %s does not offer STARTTLS", c->facts.peer);
	} else {
		auth_start(c);
	}
}

/* ---- TLS --------------------------------------------------------------- */

static void tls_failed(struct smtpc *c, const char *what)
{
	long v = c->ssl != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;
	bool verifying = c->tls == SMTPC_TLS_VERIFY ||
			 (c->tls == SMTPC_TLS_IMPLICIT && c->verify_implicit);

	if (v != X509_V_OK)
		snprintf(c->facts.tls_verify_error, sizeof c->facts.tls_verify_error, "%s",
			 X509_verify_cert_error_string(v));
	c->facts.tls_failed_may = c->tls == SMTPC_TLS_MAY;
	fail_at(c, SMTPC_STAGE_TLS, "4.7.5", true, "%s with %s failed: %s", what, c->facts.peer,
		verifying && v != X509_V_OK ? c->facts.tls_verify_error : ossl_why());
	ERR_clear_error();
}

static void tls_up(struct smtpc *c)
{
	bool must = c->tls == SMTPC_TLS_VERIFY || (c->tls == SMTPC_TLS_IMPLICIT && c->verify_implicit);

	c->handshaking = false;
	snprintf(c->facts.tls_version, sizeof c->facts.tls_version, "%s", SSL_get_version(c->ssl));
	snprintf(c->facts.tls_cipher, sizeof c->facts.tls_cipher, "%s", SSL_get_cipher_name(c->ssl));
	c->facts.tls_verified = tls_client_verified(c->ssl, c->facts.tls_verify_error,
						    sizeof c->facts.tls_verify_error);
	if (must && !c->facts.tls_verified) {
		fail_at(c, SMTPC_STAGE_TLS, "4.7.5", true, "the certificate of %s is not verified: %s",
			c->facts.peer, c->facts.tls_verify_error);
		return;
	}
	smtp_reply_init(&c->rp, NULL);
	if (c->state == ST_TLS_IMPLICIT) {
		c->state = ST_GREETING;
		arm(c, c->t_greeting, "waiting for the greeting");
		flush(c);
		return;
	}
	/* RFC 3207 4.2: forget what was learnt in plaintext; ask again. */
	memset(&c->facts.ext, 0, sizeof c->facts.ext);
	c->facts.esmtp = false;
	send_helo(c, c->lmtp ? "LHLO" : "EHLO", ST_EHLO);
	smtp_reply_init(&c->rp, &c->ehlo);
}

static void handshake(struct smtpc *c)
{
	int r = SSL_do_handshake(c->ssl);

	if (r == 1)
		tls_up(c);
	else if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
		flush(c);
	else
		tls_failed(c, "TLS handshake");
}

static void start_tls(struct smtpc *c, bool verify)
{
	char err[256] = "cannot set up TLS (out of memory)";

	c->ssl = tls_client_new(c->ctx, c->tls_name, verify, err, sizeof err);
	c->net_in = BIO_new(BIO_s_mem());
	c->net_out = BIO_new(BIO_s_mem());
	if (c->ssl == NULL || c->net_in == NULL || c->net_out == NULL) {
		BIO_free(c->net_in);
		BIO_free(c->net_out);
		c->net_in = c->net_out = NULL;
		SSL_free(c->ssl);
		c->ssl = NULL;
		fail_at(c, SMTPC_STAGE_TLS, "4.7.5", true, "%s", err);
		return;
	}
	BIO_set_mem_eof_return(c->net_in, -1);
	SSL_set_bio(c->ssl, c->net_in, c->net_out);
	c->handshaking = true;
	if (c->state != ST_TLS_IMPLICIT)
		c->state = ST_TLS_HANDSHAKE;
	arm(c, c->t_helo, "waiting for the TLS handshake");
	handshake(c);
}

/* ---- replies ----------------------------------------------------------- */

static void mail_reply(struct smtpc *c)
{
	struct smtpc_msg *m = c->tx.m;

	if (c->rp.code / 100 != 2) {
		outcome_reply(&c->tx.o, &c->rp, SMTPC_STAGE_MAIL, false);
		c->tx.decided = true;
		c->need_rset = true;
		for (size_t i = 0; i < m->nrcpts; i++)
			if (!m->rcpts[i].done)
				rcpt_set(&m->rcpts[i], &c->tx.o);
		if (!c->tx.pipelined) {
			tx_end(c, &c->tx.o);
			return;
		}
		/* The RCPT and DATA replies are still to come: read past them. */
	}
	c->state = ST_RCPT;
	arm(c, c->t_rcpt, "waiting for the reply to RCPT TO");
	if (!c->tx.pipelined) {
		put_rcpt(c, &m->rcpts[c->tx.sent[0]]);
		flush(c);
	}
}

static void rcpt_reply(struct smtpc *c)
{
	struct smtpc_msg *m = c->tx.m;
	struct smtpc_rcpt *r = &m->rcpts[c->tx.sent[c->tx.replied++]];

	if (!c->tx.decided && c->rp.code / 100 == 2) {
		r->code = c->rp.code;	/* accepted; its result comes later */
		c->tx.accepted++;
	} else if (!c->tx.decided) {
		outcome_reply(&c->tx.o, &c->rp, SMTPC_STAGE_RCPT, false);
		rcpt_set(r, &c->tx.o);
	}
	if (c->tx.replied < c->tx.nsent) {
		arm(c, c->t_rcpt, "waiting for the reply to RCPT TO");
		if (!c->tx.pipelined) {
			put_rcpt(c, &m->rcpts[c->tx.sent[c->tx.replied]]);
			flush(c);
		}
		return;
	}
	if (c->tx.accepted == 0)
		c->tx.decided = true;
	if (c->tx.pipelined && !c->tx.bdat) {
		c->state = ST_DATA;
		arm(c, c->t_data, "waiting for the reply to DATA");
	} else if (c->tx.decided) {
		c->need_rset = true;
		tx_end(c, &c->tx.o);
	} else if (c->tx.bdat) {
		put(c, "BDAT %llu LAST\r\n", (unsigned long long)data_size(m));
		c->state = ST_BODY;
		pump(c);
	} else {
		put(c, "DATA\r\n");
		c->state = ST_DATA;
		arm(c, c->t_data, "waiting for the reply to DATA");
		flush(c);
	}
}

static void data_reply(struct smtpc *c)
{
	struct outcome o;

	if (c->tx.decided) {
		c->need_rset = true;
		if (c->rp.code == 354) {
			/* A server that wants a message nobody is to get (RFC
			 * 2920 3.1): hang up rather than send one. */
			set_local(&c->conn, SMTPC_STAGE_DATA, "4.5.0", true,
				  "%s answered 354 to DATA without a recipient; connection closed",
				  c->facts.peer);
			c->state = ST_DEAD;
			close_io(c);
		}
		tx_end(c, &c->tx.o);
		return;
	}
	if (c->rp.code != 354) {
		outcome_reply(&o, &c->rp, SMTPC_STAGE_DATA, false);
		c->need_rset = true;
		tx_end(c, &o);
		return;
	}
	c->state = ST_BODY;
	pump(c);
}

static void dot_reply(struct smtpc *c)
{
	struct smtpc_msg *m = c->tx.m;
	struct outcome o;

	outcome_reply(&o, &c->rp, SMTPC_STAGE_DOT, false);
	if (c->lmtp) {
		/* RFC 2033 4.2: one reply per accepted recipient, in order. */
		while (c->tx.replied < c->tx.nsent && m->rcpts[c->tx.sent[c->tx.replied]].done)
			c->tx.replied++;
		if (c->tx.replied < c->tx.nsent)
			rcpt_set(&m->rcpts[c->tx.sent[c->tx.replied++]], &o);
		while (c->tx.replied < c->tx.nsent && m->rcpts[c->tx.sent[c->tx.replied]].done)
			c->tx.replied++;
		if (c->tx.replied < c->tx.nsent) {
			arm(c, c->t_dot, "waiting for the reply to the end of the message");
			return;
		}
	}
	tx_end(c, &o);
}

static void on_reply(struct smtpc *c)
{
	int cls = c->rp.code / 100;

	if (c->rp.bare_lf)
		c->facts.bare_lf = true;
	if (c->rp.code == 421 && c->state != ST_QUIT) {
		/* RFC 5321 3.8: the server is closing the channel. */
		fail_reply(c, false);
		return;
	}
	switch (c->state) {
	case ST_GREETING:
		if (c->rp.code == 220)
			send_helo(c, c->lmtp ? "LHLO" : "EHLO", ST_EHLO);
		else
			fail_reply(c, false);
		break;
	case ST_EHLO:
		if (cls == 2) {
			c->facts.ext = c->ehlo;
			c->facts.esmtp = true;
			after_helo(c);
		} else if (cls == 5 && !c->lmtp) {
			send_helo(c, "HELO", ST_HELO);
		} else {
			fail_reply(c, false);
		}
		break;
	case ST_HELO:
		if (cls == 2) {
			memset(&c->facts.ext, 0, sizeof c->facts.ext);
			c->facts.esmtp = false;
			after_helo(c);
		} else {
			fail_reply(c, false);
		}
		break;
	case ST_STARTTLS:
		if (c->rp.code == 220)
			start_tls(c, c->tls == SMTPC_TLS_VERIFY);
		else if (c->tls == SMTPC_TLS_MAY)
			auth_start(c);
		else
			fail_reply(c, true);
		break;
	case ST_AUTH:
		auth_reply(c);
		break;
	case ST_RSET:
		if (cls != 2) {
			fail_reply(c, false);
			break;
		}
		c->need_rset = false;
		c->state = ST_MAIL;
		arm(c, c->t_mail, "waiting for the reply to MAIL FROM");
		if (!c->tx.pipelined) {
			put_mail(c);
			flush(c);
		}
		break;
	case ST_MAIL:
		mail_reply(c);
		break;
	case ST_RCPT:
		rcpt_reply(c);
		break;
	case ST_DATA:
		data_reply(c);
		break;
	case ST_BODY:
		/* The server spoke before the end of the message: it is over,
		 * and what we would still send must not be read as commands. */
		fail_reply(c, false);
		break;
	case ST_DOT:
		dot_reply(c);
		break;
	case ST_QUIT:
		close_io(c);
		break;
	default:
		/* Idle (a 421 before closing, say): the connection is done. */
		fail_reply(c, false);
		break;
	}
}

/* Plaintext from the server. */
static void input(struct smtpc *c, const uint8_t *p, size_t n)
{
	SSL *ssl = c->ssl;

	/* After the 220 to STARTTLS the rest of this plaintext is dropped:
	 * the loop ends when c->ssl changes (RFC 3207 4.2). */
	while (n > 0 && c->io_open && c->ssl == ssl) {
		size_t used = smtp_reply_feed(&c->rp, p, n);

		if (c->trace != NULL)
			trace_bytes(c, '<', p, used);
		p += used;
		n -= used;
		if (c->rp.status == SMTP_REPLY_ERROR) {
			if (c->state == ST_QUIT)
				close_io(c);
			else
				fail_at(c, stage_of(c->state), "4.5.0", true, "protocol error: %s",
					c->rp.error);
			return;
		}
		if (c->rp.status != SMTP_REPLY_DONE)
			continue;
		on_reply(c);
		smtp_reply_init(&c->rp, c->state == ST_EHLO ? &c->ehlo : NULL);
	}
}

static void lost(struct smtpc *c, ssize_t err)
{
	if (c->state == ST_QUIT) {
		close_io(c);
		return;
	}
	if (c->handshaking) {
		tls_failed(c, "TLS handshake");
		return;
	}
	if (c->state == ST_READY) {
		fail_at(c, SMTPC_STAGE_MAIL, "4.4.2", true, "%s closed the connection while idle",
			c->facts.peer);
		return;
	}
	fail_at(c, stage_of(c->state), "4.4.2", true, "lost connection with %s (%s) %s",
		c->facts.peer, err == UV_EOF ? "closed by the server" : uv_strerror((int)err),
		c->doing);
}

static void read_tls(struct smtpc *c)
{
	uint8_t plain[READ_SIZE];
	SSL *ssl = c->ssl;

	while (c->io_open && c->ssl == ssl) {
		int k = SSL_read(ssl, plain, sizeof plain);
		int e;

		if (k > 0) {
			input(c, plain, (size_t)k);
			continue;
		}
		e = SSL_get_error(ssl, k);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_ZERO_RETURN)
			lost(c, UV_EOF);
		else
			tls_failed(c, "TLS read");
		return;
	}
	flush(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct smtpc *c = h->data;

	(void)suggested;
	*b = uv_buf_init((char *)c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct smtpc *c = s->data;

	(void)b;
	if (n == 0 || !c->io_open)
		return;
	if (n < 0) {
		lost(c, n);
		return;
	}
	if (c->ssl == NULL) {
		input(c, c->rbuf, (size_t)n);
		return;
	}
	if (BIO_write(c->net_in, c->rbuf, (int)n) != (int)n) {
		tls_failed(c, "TLS read");
		return;
	}
	if (c->handshaking) {
		handshake(c);
		if (c->handshaking)
			return;
	}
	read_tls(c);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct smtpc *c = req->data;

	if (status == UV_ECANCELED || !c->io_open)
		return;
	if (status < 0) {
		fail_at(c, SMTPC_STAGE_CONNECT, "4.4.1", true, "connect to %s: %s", c->facts.peer,
			uv_strerror(status));
		return;
	}
	if (c->io.h.type == UV_TCP)
		uv_tcp_nodelay(&c->io.tcp, 1);
	if (uv_read_start(&c->io.s, on_alloc, on_read) < 0) {
		fail_at(c, SMTPC_STAGE_CONNECT, "4.4.1", true, "connect to %s: cannot read",
			c->facts.peer);
		return;
	}
	if (c->tls == SMTPC_TLS_IMPLICIT) {
		c->state = ST_TLS_IMPLICIT;
		start_tls(c, c->verify_implicit);
		return;
	}
	c->state = ST_GREETING;
	arm(c, c->t_greeting, "waiting for the greeting");
}

/* ---- the API ----------------------------------------------------------- */

static void peer_name(struct smtpc *c, const struct sockaddr *a)
{
	char ip[INET6_ADDRSTRLEN] = "";

	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)a;

		uv_ip4_name(s, ip, sizeof ip);
		snprintf(c->facts.peer, sizeof c->facts.peer, "%s:%u", ip, ntohs(s->sin_port));
	} else if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;

		uv_ip6_name(s, ip, sizeof ip);
		snprintf(c->facts.peer, sizeof c->facts.peer, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else {
		const struct sockaddr_un *s = (const struct sockaddr_un *)a;
		size_t n = strnlen(s->sun_path, sizeof s->sun_path);

		/* "unix:" and as much of the path as fits. */
		if (n > sizeof c->facts.peer - 6)
			n = sizeof c->facts.peer - 6;
		memcpy(c->facts.peer, "unix:", 5);
		memcpy(c->facts.peer + 5, s->sun_path, n);
		c->facts.peer[5 + n] = '\0';
	}
}

static int copy_name(char *dst, const char *src, const char *def)
{
	if (src == NULL)
		src = def;
	if (strlen(src) > SMTPC_NAME_MAX || !addr_ok(src))
		return -1;
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

struct smtpc *smtpc_connect(uv_loop_t *loop, const struct sockaddr *addr,
			    const struct smtpc_opts *o, const struct smtpc_callbacks *cb,
			    void *arg, char *err, size_t errlen)
{
	struct smtpc *c = NULL;
	const char *why = "out of memory";
	int r;

	if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6 &&
	    addr->sa_family != AF_UNIX) {
		why = "address family not supported";
		goto bad;
	}
	if (o->tls != SMTPC_TLS_NONE && o->tls_ctx == NULL) {
		why = "a TLS policy needs a TLS context";
		goto bad;
	}
	if (cb == NULL || cb->ready == NULL || cb->done == NULL) {
		why = "ready and done callbacks are needed";
		goto bad;
	}
	if ((c = calloc(1, sizeof *c)) == NULL)
		goto bad;
	if (copy_name(c->helo, o->helo_name, "localhost") < 0 ||
	    copy_name(c->tls_name, o->tls_name, "") < 0 ||
	    copy_name(c->user, o->auth_user, "") < 0 || copy_name(c->pass, o->auth_pass, "") < 0) {
		why = "a name or credential is too long or holds a control character";
		goto bad;
	}
	c->loop = loop;
	c->cb = *cb;
	c->arg = arg;
	c->lmtp = o->lmtp;
	c->trace = o->trace;
	c->trace_arg = o->trace_arg;
	c->tls = o->tls;
	c->verify_implicit = o->tls_verify_implicit;
	if (o->tls != SMTPC_TLS_NONE) {
		SSL_CTX_up_ref(o->tls_ctx);
		c->ctx = o->tls_ctx;
	}
	c->t_connect = ms_or(o->connect_timeout_ms, 30 * 1000);
	c->t_greeting = ms_or(o->greeting_timeout_ms, 5 * 60 * 1000);
	c->t_helo = ms_or(o->helo_timeout_ms, 5 * 60 * 1000);
	c->t_mail = ms_or(o->mail_timeout_ms, 5 * 60 * 1000);
	c->t_rcpt = ms_or(o->rcpt_timeout_ms, 5 * 60 * 1000);
	c->t_data = ms_or(o->data_timeout_ms, 2 * 60 * 1000);
	c->t_block = ms_or(o->block_timeout_ms, 3 * 60 * 1000);
	c->t_dot = ms_or(o->dot_timeout_ms, 10 * 60 * 1000);
	buf_init(&c->out, OUT_MAX);
	buf_init(&c->tlsout, OUT_MAX * 2);
	buf_init(&c->wbuf, OUT_MAX * 2);
	peer_name(c, addr);
	smtp_reply_init(&c->rp, NULL);
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->defer);
	c->timer.data = c->defer.data = c;
	c->refs = 3; /* the two timers and the caller */
	if (addr->sa_family == AF_UNIX)
		r = uv_pipe_init(loop, &c->io.pipe, 0);
	else
		r = uv_tcp_init_ex(loop, &c->io.tcp, addr->sa_family);
	c->io.h.data = c;
	c->creq.data = c;
	c->state = ST_CONNECTING;
	if (r == 0) {
		c->refs++;
		c->io_open = true;
		arm(c, c->t_connect, "waiting for the connection");
		if (addr->sa_family == AF_UNIX)
			uv_pipe_connect(&c->creq, &c->io.pipe,
					((const struct sockaddr_un *)addr)->sun_path, on_connect);
		else
			r = uv_tcp_connect(&c->creq, &c->io.tcp, addr, on_connect);
	}
	if (r < 0)
		fail_at(c, SMTPC_STAGE_CONNECT, "4.4.1", true, "connect to %s: %s", c->facts.peer,
			uv_strerror(r));
	return c;
bad:
	if (c != NULL)
		explicit_bzero(c, sizeof *c);
	free(c);
	snprintf(err, errlen, "%s", why);
	return NULL;
}

/* The first commands of a transaction: all of them when pipelining (RFC 2920). */
static void tx_start(struct smtpc *c)
{
	struct smtpc_msg *m = c->tx.m;

	c->tx.pipelined = c->facts.ext.pipelining;
	c->tx.bdat = m->body == BODY_BINARYMIME;
	if (c->need_rset) {
		put(c, "RSET\r\n");
		c->state = ST_RSET;
		arm(c, c->t_helo, "waiting for the reply to RSET");
	} else {
		c->state = ST_MAIL;
		arm(c, c->t_mail, "waiting for the reply to MAIL FROM");
	}
	if (!c->need_rset || c->tx.pipelined)
		put_mail(c);
	if (c->tx.pipelined) {
		for (size_t i = 0; i < c->tx.nsent; i++)
			put_rcpt(c, &m->rcpts[c->tx.sent[i]]);
		/* BDAT waits for the RCPT replies: the message goes only to someone. */
		if (!c->tx.bdat)
			put(c, "DATA\r\n");
	}
	flush(c);
}

int smtpc_send(struct smtpc *c, struct smtpc_msg *m)
{
	const struct smtp_ehlo *e;
	uint64_t size;

	if (c == NULL || m == NULL || m->nrcpts == 0 || c->quitting || !c->was_ready ||
	    c->dead_told || c->tx.m != NULL || c->pending != PEND_NONE)
		return -1;
	free(c->tx.sent);
	memset(&c->tx, 0, sizeof c->tx);
	if ((c->tx.sent = calloc(m->nrcpts, sizeof *c->tx.sent)) == NULL)
		return -1;
	c->tx.m = m;
	c->tx.bol = true;
	e = &c->facts.ext;
	size = m->size ? m->size : data_size(m);
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct smtpc_rcpt *r = &m->rcpts[i];

		r->code = 0;
		r->enh[0] = r->text[0] = '\0';
		r->temporary = false;
		r->done = false;
	}
	if (c->state == ST_DEAD) {
		tx_end(c, &c->conn);
		return 0;
	}
	/* RFC 6531 3.5 and RFC 6152 3 are about what the message holds, not
	 * what the client declared: an ASCII message flagged SMTPUTF8, or a
	 * 7-bit one flagged 8BITMIME, goes to any server without the flag. */
	c->tx.utf8 = m->smtputf8 && needs_utf8(m);
	c->tx.eight = m->body == BODY_8BITMIME && has_8bit(m);
	/* Checks before MAIL: each ends the transaction with our words. */
	if (!addr_ok(m->mail_from)) {
		set_local(&c->tx.o, SMTPC_STAGE_MAIL, "5.1.7", false,
			  "the sender address holds a control character");
	} else if (c->tx.utf8 && !e->smtputf8) {
		set_local(&c->tx.o, SMTPC_STAGE_MAIL, "5.6.7", false,
			  "%s does not support SMTPUTF8, which the message needs (RFC 6531 3.5)",
			  c->facts.peer);
	} else if (c->tx.eight && !e->eightbitmime) {
		set_local(&c->tx.o, SMTPC_STAGE_MAIL, "5.6.3", false,
			  "Conversion required but not supported: %s does not support 8BITMIME "
			  "and the message has 8-bit data (RFC 6152 3)", c->facts.peer);
	} else if (m->body == BODY_BINARYMIME && !(e->binarymime && e->chunking)) {
		set_local(&c->tx.o, SMTPC_STAGE_MAIL, "5.6.3", false,
			  "Conversion required but not supported: %s does not support BINARYMIME "
			  "with CHUNKING (RFC 3030)", c->facts.peer);
	} else if (e->has_size && e->size > 0 && size > e->size) {
		set_local(&c->tx.o, SMTPC_STAGE_MAIL, "5.3.4", false,
			  "message size %llu exceeds the limit of %s (SIZE %llu)",
			  (unsigned long long)size, c->facts.peer, (unsigned long long)e->size);
	} else {
		for (size_t i = 0; i < m->nrcpts; i++) {
			if (addr_ok(m->rcpts[i].addr) && m->rcpts[i].addr[0] != '\0') {
				c->tx.sent[c->tx.nsent++] = i;
				continue;
			}
			set_local(&c->tx.o, SMTPC_STAGE_RCPT, "5.1.3", false,
				  "the recipient address is empty or holds a control character");
			rcpt_set(&m->rcpts[i], &c->tx.o);
		}
	}
	if (c->tx.nsent == 0) {
		tx_end(c, &c->tx.o);
		return 0;
	}
	tx_start(c);
	return 0;
}

void smtpc_quit(struct smtpc *c)
{
	if (c == NULL || c->quitting)
		return;
	c->quitting = true;
	uv_timer_stop(&c->defer);
	uv_close((uv_handle_t *)&c->defer, on_closed);
	if (c->state == ST_READY && c->io_open) {
		put(c, "QUIT\r\n");
		c->state = ST_QUIT;
		arm(c, c->t_helo, "waiting for the reply to QUIT");
		flush(c);
	} else {
		close_io(c);
	}
	release(c);
}
