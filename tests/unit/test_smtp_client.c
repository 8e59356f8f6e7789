/*
 * test_smtp_client.c - cmocka tests of the SMTP/LMTP client (src/deliver/smtp_client.c)
 * against a scripted fake server on 127.0.0.1, in the same libuv loop.
 *
 * The fake server answers each command line (and each message) with the
 * next step of its script, records what it received (transcript: "C: line",
 * "D: n" for a message of n octets, "T: tls" when TLS starts) and every
 * plaintext read as it came (to see what was pipelined in one write). It
 * speaks TLS with a self-signed certificate made here (EC P-256), over
 * memory BIOs like the real server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "deliver/smtp_client.h"
#include "lib/buf.h"
#include "lib/tls_client.h"
#include "proto/data.h"

/* ---- the fake server ------------------------------------------------- */

#define F_HANG 1	/* send nothing, ever again */
#define F_CLOSE 2	/* close after this reply */
#define F_NOTLS 4	/* a 220 to STARTTLS without TLS after it */
#define F_CLOSE_LATER 8	/* close 100 ms after this reply */

struct step {
	const char *reply;
	unsigned flags;
};

#define MAX_CHUNKS 64

struct fake {
	uv_loop_t *loop;
	uv_tcp_t srv;
	uv_tcp_t conn;
	bool conn_open;
	int port;
	const struct step *steps;
	size_t nsteps, next;
	struct buf line;
	enum { M_CMD, M_DATA, M_BDAT } mode;
	uint64_t bdat_left;
	struct buf data;	/* the last message as it came on the wire */
	struct buf log;		/* the transcript */
	char *chunks[MAX_CHUNKS];
	size_t nchunks;
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *bin, *bout;
	bool handshaking;
	bool hung;
	bool implicit;		/* TLS from the first byte; greet inside it */
	bool close_after;
	uv_timer_t later;
	unsigned writes;
	uint8_t rbuf[65536];
};

static EVP_PKEY *g_key;
static X509 *g_cert;

struct fwrite_req {
	uv_write_t req;
	struct fake *f;
	char data[];
};

static void fake_conn_closed(uv_handle_t *h)
{
	(void)h;
}

static void fake_close_conn(struct fake *f)
{
	if (f->conn_open) {
		f->conn_open = false;
		uv_close((uv_handle_t *)&f->conn, fake_conn_closed);
	}
}

static void fake_on_write(uv_write_t *req, int status)
{
	struct fwrite_req *w = (struct fwrite_req *)req;
	struct fake *f = w->f;

	(void)status;
	free(w);
	if (--f->writes == 0 && f->close_after)
		fake_close_conn(f);
}

static void fake_raw_write(struct fake *f, const void *p, size_t n)
{
	struct fwrite_req *w;
	uv_buf_t b;

	if (!f->conn_open || n == 0)
		return;
	w = malloc(sizeof *w + n);
	assert_non_null(w);
	memcpy(w->data, p, n);
	w->f = f;
	b = uv_buf_init(w->data, (unsigned)n);
	assert_int_equal(uv_write(&w->req, (uv_stream_t *)&f->conn, &b, 1, fake_on_write), 0);
	f->writes++;
}

static void fake_tls_drain(struct fake *f)
{
	char tmp[16384];
	int n;

	while ((n = BIO_read(f->bout, tmp, sizeof tmp)) > 0)
		fake_raw_write(f, tmp, (size_t)n);
}

static void fake_write(struct fake *f, const char *s)
{
	if (f->ssl != NULL && !f->handshaking) {
		assert_true(SSL_write(f->ssl, s, (int)strlen(s)) == (int)strlen(s));
		fake_tls_drain(f);
	} else {
		fake_raw_write(f, s, strlen(s));
	}
}

static void fake_start_tls(struct fake *f)
{
	f->ssl = SSL_new(f->ctx);
	f->bin = BIO_new(BIO_s_mem());
	f->bout = BIO_new(BIO_s_mem());
	assert_non_null(f->ssl);
	BIO_set_mem_eof_return(f->bin, -1);
	SSL_set_bio(f->ssl, f->bin, f->bout);
	SSL_set_accept_state(f->ssl);
	f->handshaking = true;
	buf_printf(&f->log, "T: tls\n");
}

static void fake_later(uv_timer_t *t)
{
	fake_close_conn(t->data);
}

/* The next step answers `line` (NULL: the end of a message). */
static void fake_respond(struct fake *f, const char *line)
{
	const struct step *s;

	if (f->hung)
		return;
	if (f->next >= f->nsteps) {
		fake_write(f, "500 5.5.0 the script has ended\r\n");
		return;
	}
	s = &f->steps[f->next++];
	if (s->flags & F_HANG) {
		f->hung = true;
		return;
	}
	fake_write(f, s->reply);
	if (strncmp(s->reply, "354", 3) == 0) {
		f->mode = M_DATA;
		buf_reset(&f->data);
	}
	if (s->flags & F_CLOSE_LATER)
		uv_timer_start(&f->later, fake_later, 100, 0);
	if (s->flags & F_CLOSE) {
		f->close_after = true;
		if (f->writes == 0)
			fake_close_conn(f);
		return;
	}
	if (line != NULL && strcmp(line, "STARTTLS") == 0 && strncmp(s->reply, "220", 3) == 0 &&
	    !(s->flags & F_NOTLS))
		fake_start_tls(f);
}

static bool data_ended(const struct buf *d)
{
	return (d->len == 3 && memcmp(d->data, ".\r\n", 3) == 0) ||
	       (d->len >= 5 && memcmp(d->data + d->len - 5, "\r\n.\r\n", 5) == 0);
}

static void fake_line(struct fake *f)
{
	char line[4096];
	size_t n = f->line.len;
	unsigned long long bn;

	if (n > 0 && f->line.data[n - 1] == '\n')
		n--;
	if (n > 0 && f->line.data[n - 1] == '\r')
		n--;
	assert_true(n < sizeof line);
	memcpy(line, f->line.data, n);
	line[n] = '\0';
	buf_reset(&f->line);
	buf_printf(&f->log, "C: %s\n", line);
	if (sscanf(line, "BDAT %llu", &bn) == 1) {
		f->mode = M_BDAT;
		f->bdat_left = bn;
		buf_reset(&f->data);
		if (bn == 0) {
			f->mode = M_CMD;
			fake_respond(f, NULL);
		}
		return;
	}
	fake_respond(f, line);
}

/* Plaintext from the client. */
static void fake_plain(struct fake *f, const uint8_t *p, size_t n)
{
	SSL *ssl = f->ssl;

	if (f->nchunks < MAX_CHUNKS) {
		char *c = malloc(n + 1);

		assert_non_null(c);
		memcpy(c, p, n);
		c[n] = '\0';
		f->chunks[f->nchunks++] = c;
	}
	for (size_t i = 0; i < n && f->conn_open && f->ssl == ssl; i++) {
		if (f->mode == M_DATA) {
			buf_append(&f->data, p + i, 1);
			if (data_ended(&f->data)) {
				f->mode = M_CMD;
				buf_printf(&f->log, "D: %zu\n", f->data.len);
				fake_respond(f, NULL);
			}
		} else if (f->mode == M_BDAT) {
			buf_append(&f->data, p + i, 1);
			if (--f->bdat_left == 0) {
				f->mode = M_CMD;
				buf_printf(&f->log, "D: %zu\n", f->data.len);
				fake_respond(f, NULL);
			}
		} else {
			buf_append(&f->line, p + i, 1);
			if (p[i] == '\n')
				fake_line(f);
		}
	}
}

static void fake_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b)
{
	struct fake *f = h->data;

	(void)sug;
	*b = uv_buf_init((char *)f->rbuf, sizeof f->rbuf);
}

static void fake_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct fake *f = s->data;
	uint8_t plain[16384];
	int k;

	(void)b;
	if (n < 0) {
		fake_close_conn(f);
		return;
	}
	if (n == 0)
		return;
	if (f->ssl == NULL) {
		fake_plain(f, f->rbuf, (size_t)n);
		return;
	}
	BIO_write(f->bin, f->rbuf, (int)n);
	if (f->handshaking) {
		int r = SSL_do_handshake(f->ssl);

		fake_tls_drain(f);
		if (r != 1) {
			if (SSL_get_error(f->ssl, r) != SSL_ERROR_WANT_READ)
				fake_close_conn(f);
			return;
		}
		f->handshaking = false;
		if (f->implicit)
			fake_respond(f, "");	/* the greeting, inside TLS */
	}
	while ((k = SSL_read(f->ssl, plain, sizeof plain)) > 0)
		fake_plain(f, plain, (size_t)k);
	fake_tls_drain(f);
}

static void fake_accept(uv_stream_t *srv, int status)
{
	struct fake *f = srv->data;

	assert_int_equal(status, 0);
	assert_false(f->conn_open);
	uv_tcp_init(f->loop, &f->conn);
	f->conn.data = f;
	assert_int_equal(uv_accept(srv, (uv_stream_t *)&f->conn), 0);
	f->conn_open = true;
	uv_read_start((uv_stream_t *)&f->conn, fake_alloc, fake_read);
	if (f->implicit)
		fake_start_tls(f);
	else
		fake_respond(f, "");	/* the greeting */
}

static void fake_start(struct fake *f, uv_loop_t *loop, const struct step *steps, size_t n)
{
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof ss;

	memset(f, 0, sizeof *f);
	f->loop = loop;
	f->steps = steps;
	f->nsteps = n;
	buf_init(&f->line, 1 << 20);
	buf_init(&f->data, 1 << 26);
	buf_init(&f->log, 1 << 20);
	f->ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(f->ctx);
	assert_int_equal(SSL_CTX_use_certificate(f->ctx, g_cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(f->ctx, g_key), 1);
	uv_tcp_init(loop, &f->srv);
	f->srv.data = f;
	uv_timer_init(loop, &f->later);
	f->later.data = f;
	uv_ip4_addr("127.0.0.1", 0, &a);
	assert_int_equal(uv_tcp_bind(&f->srv, (struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&f->srv, 8, fake_accept), 0);
	uv_tcp_getsockname(&f->srv, (struct sockaddr *)&ss, &len);
	f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void fake_free(struct fake *f)
{
	for (size_t i = 0; i < f->nchunks; i++)
		free(f->chunks[i]);
	SSL_free(f->ssl);
	SSL_CTX_free(f->ctx);
	buf_free(&f->line);
	buf_free(&f->data);
	buf_free(&f->log);
}

/* The transcript as a C string. */
static const char *fake_log(struct fake *f)
{
	buf_append(&f->log, "", 1);
	f->log.len--;
	return (const char *)f->log.data;
}

/* The read that held `what`, or NULL. */
static const char *fake_chunk_with(const struct fake *f, const char *what)
{
	for (size_t i = 0; i < f->nchunks; i++)
		if (strstr(f->chunks[i], what) != NULL)
			return f->chunks[i];
	return NULL;
}

/* ---- the client side ------------------------------------------------- */

static bool in_call;	/* inside an smtpc_* call: no callback may run now */

struct drive {
	struct smtpc_msg *msgs[4];
	size_t nmsgs, sent;
	struct smtpc_result ready;
	struct smtpc_result done[4];
	size_t ndone;
	bool got_ready;
	bool closed;
	bool quit_in_ready;	/* quit at ready even when ok */
	bool send_later;	/* at ready, wait 300 ms before sending */
	uv_timer_t later;
	struct smtpc *c;
};

static void d_send(struct smtpc *c, struct drive *d)
{
	int r;

	in_call = true;
	r = smtpc_send(c, d->msgs[d->sent++]);
	in_call = false;
	assert_int_equal(r, 0);
}

static void d_quit(struct smtpc *c)
{
	in_call = true;
	smtpc_quit(c);
	in_call = false;
}

static void d_later(uv_timer_t *t)
{
	struct drive *d = t->data;

	d_send(d->c, d);
	uv_close((uv_handle_t *)t, NULL);
}

static void d_ready(struct smtpc *c, const struct smtpc_result *r, void *arg)
{
	struct drive *d = arg;

	assert_false(in_call);
	assert_false(d->got_ready);
	d->got_ready = true;
	d->ready = *r;
	if (r->ok && d->send_later) {
		d->c = c;
		uv_timer_start(&d->later, d_later, 300, 0);
		return;
	}
	if (r->ok && d->sent < d->nmsgs && !d->quit_in_ready)
		d_send(c, d);
	else
		d_quit(c);
}

static void d_done(struct smtpc *c, struct smtpc_msg *m, const struct smtpc_result *r, void *arg)
{
	struct drive *d = arg;

	assert_false(in_call);
	assert_true(d->ndone < 4);
	assert_ptr_equal(m, d->msgs[d->ndone]);
	for (size_t i = 0; i < m->nrcpts; i++)
		assert_true(m->rcpts[i].done);
	d->done[d->ndone++] = *r;
	if (r->reusable && d->sent < d->nmsgs)
		d_send(c, d);
	else
		d_quit(c);
}

static void d_closed(void *arg)
{
	struct drive *d = arg;

	assert_false(in_call);
	d->closed = true;
}

static const struct smtpc_callbacks cbs = { d_ready, d_done, d_closed };

static bool watchdog_fired;

static void on_watchdog(uv_timer_t *t)
{
	watchdog_fired = true;
	uv_stop(t->loop);
}

static void noop_close(uv_handle_t *h)
{
	(void)h;
}

/* Connect to port, run until the client is closed, stop the fake. */
static void run_client(uv_loop_t *loop, struct fake *f, int port, struct smtpc_opts *o,
		       struct drive *d)
{
	struct sockaddr_in a;
	uv_timer_t dog;
	struct smtpc *c;
	char err[256];

	uv_timer_init(loop, &dog);
	uv_timer_start(&dog, on_watchdog, 10000, 0);
	watchdog_fired = false;
	uv_ip4_addr("127.0.0.1", port, &a);
	in_call = true;
	c = smtpc_connect(loop, (struct sockaddr *)&a, o, &cbs, d, err, sizeof err);
	in_call = false;
	assert_non_null(c);
	while (!d->closed && !watchdog_fired)
		uv_run(loop, UV_RUN_ONCE);
	assert_false(watchdog_fired);
	uv_close((uv_handle_t *)&dog, noop_close);
	if (f != NULL) {
		fake_close_conn(f);
		uv_close((uv_handle_t *)&f->srv, noop_close);
		uv_close((uv_handle_t *)&f->later, noop_close);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- fixtures -------------------------------------------------------- */

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int group_setup(void **state)
{
	(void)state;
	g_key = EVP_EC_gen("P-256");
	g_cert = X509_new();
	if (g_key == NULL || g_cert == NULL)
		return -1;
	ASN1_INTEGER_set(X509_get_serialNumber(g_cert), 1);
	X509_set_version(g_cert, 2);
	X509_gmtime_adj(X509_getm_notBefore(g_cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(g_cert), 3600);
	X509_set_pubkey(g_cert, g_key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(g_cert), "CN", MBSTRING_ASC,
				   (const unsigned char *)"mx.test.example", -1, -1, 0);
	X509_set_issuer_name(g_cert, X509_get_subject_name(g_cert));
	if (add_ext(g_cert, NID_subject_alt_name, "DNS:mx.test.example,IP:127.0.0.1") < 0 ||
	    add_ext(g_cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    X509_sign(g_cert, g_key, EVP_sha256()) == 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	X509_free(g_cert);
	EVP_PKEY_free(g_key);
	return 0;
}

/* A client context: the system CAs, and (trusted) our test certificate. */
static SSL_CTX *client_ctx(bool trust_test_cert)
{
	char err[256];
	SSL_CTX *ctx = tls_client_ctx("1.2", err, sizeof err);

	assert_non_null(ctx);
	if (trust_test_cert)
		assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), g_cert), 1);
	return ctx;
}

static const char msg_text[] = "From: a@x.test\r\nSubject: t\r\n\r\nhello\r\n";

struct onemsg {
	struct smtpc_rcpt rcpts[4];
	struct iovec iov[4];
	struct smtpc_msg m;
};

static void onemsg_init(struct onemsg *o, const char *from, const char *r0, const char *r1,
			const char *r2)
{
	const char *r[3] = { r0, r1, r2 };

	memset(o, 0, sizeof *o);
	for (int i = 0; i < 3 && r[i] != NULL; i++) {
		o->rcpts[i].addr = r[i];
		o->m.nrcpts++;
	}
	o->iov[0].iov_base = (void *)msg_text;
	o->iov[0].iov_len = sizeof msg_text - 1;
	o->m.mail_from = from;
	o->m.rcpts = o->rcpts;
	o->m.data = o->iov;
	o->m.ndata = 1;
}

static void test_opts(struct smtpc_opts *o)
{
	smtpc_opts_init(o);
	o->helo_name = "client.test";
	/* Short enough that a broken test ends well before the watchdog. */
	o->connect_timeout_ms = o->greeting_timeout_ms = o->helo_timeout_ms = 3000;
	o->mail_timeout_ms = o->rcpt_timeout_ms = o->data_timeout_ms = 3000;
	o->block_timeout_ms = o->dot_timeout_ms = 3000;
}

#define NSTEPS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- tests ----------------------------------------------------------- */

static void test_pipelining(void **state)
{
	static const struct step steps[] = {
		{ "220 fake ESMTP\r\n", 0 },
		{ "250-fake\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n", 0 },
		{ "250 2.1.0 ok\r\n", 0 },
		{ "250 2.1.5 ok\r\n", 0 },
		{ "250 2.1.5 ok\r\n", 0 },
		{ "354 go ahead\r\n", 0 },
		{ "250 2.0.0 queued as ABC\r\n", 0 },
		{ "221 2.0.0 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;
	const char *chunk;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", "c@y.test", NULL);
	m.m.body = BODY_8BITMIME;
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);

	assert_true(d.ready.ok);
	assert_true(d.ready.esmtp);
	assert_true(d.ready.ext.pipelining);
	assert_true(strncmp(d.ready.peer, "127.0.0.1:", 10) == 0);
	assert_int_equal(d.ndone, 1);
	assert_true(d.done[0].ok);
	assert_int_equal(d.done[0].stage, SMTPC_STAGE_DOT);
	assert_int_equal(d.done[0].code, 250);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(m.rcpts[i].code, 250);
		assert_string_equal(m.rcpts[i].enh, "2.0.0");
		assert_string_equal(m.rcpts[i].text, "queued as ABC");
		assert_false(m.rcpts[i].temporary);
	}
	assert_string_equal(fake_log(&f),
			    "C: EHLO client.test\n"
			    "C: MAIL FROM:<a@x.test> BODY=8BITMIME\n"
			    "C: RCPT TO:<b@y.test>\n"
			    "C: RCPT TO:<c@y.test>\n"
			    "C: DATA\n"
			    "D: 40\n"
			    "C: QUIT\n");
	/* RFC 2920: MAIL, both RCPTs and DATA in one write. */
	chunk = fake_chunk_with(&f, "MAIL FROM");
	assert_non_null(chunk);
	assert_string_equal(chunk, "MAIL FROM:<a@x.test> BODY=8BITMIME\r\nRCPT TO:<b@y.test>\r\n"
				   "RCPT TO:<c@y.test>\r\nDATA\r\n");
	fake_free(&f);
}

static void test_no_pipelining(void **state)
{
	static const struct step steps[] = {
		{ "220 fake ESMTP\r\n", 0 },
		{ "250-fake\r\n250 8BITMIME\r\n", 0 },
		{ "250 2.1.0 ok\r\n", 0 },
		{ "250 2.1.5 ok\r\n", 0 },
		{ "250 2.1.5 ok\r\n", 0 },
		{ "354 go ahead\r\n", 0 },
		{ "250 2.0.0 queued\r\n", 0 },
		{ "221 2.0.0 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "", "b@y.test", "c@y.test", NULL);
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);

	assert_true(d.done[0].ok);
	assert_int_equal(m.rcpts[1].code, 250);
	/* One command per read: each waited for its reply. */
	assert_string_equal(fake_chunk_with(&f, "MAIL FROM"), "MAIL FROM:<>\r\n");
	assert_string_equal(fake_chunk_with(&f, "RCPT TO:<b"), "RCPT TO:<b@y.test>\r\n");
	assert_string_equal(fake_chunk_with(&f, "RCPT TO:<c"), "RCPT TO:<c@y.test>\r\n");
	assert_string_equal(fake_chunk_with(&f, "DATA"), "DATA\r\n");
	fake_free(&f);
}

static void test_helo_fallback(void **state)
{
	static const struct step steps[] = {
		{ "220 old server\r\n", 0 },
		{ "502 5.5.2 what is EHLO\r\n", 0 },
		{ "250 old\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
	m.m.envid = "ENV1";
	m.m.ret = DSN_RET_FULL;
	m.rcpts[0].notify = DSN_NOTIFY_FAILURE;
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);

	assert_true(d.ready.ok);
	assert_false(d.ready.esmtp);
	assert_true(d.done[0].ok);
	/* No extension without EHLO: no parameters at all. */
	assert_string_equal(fake_log(&f),
			    "C: EHLO client.test\n"
			    "C: HELO client.test\n"
			    "C: MAIL FROM:<a@x.test>\n"
			    "C: RCPT TO:<b@y.test>\n"
			    "C: DATA\n"
			    "D: 40\n"
			    "C: QUIT\n");
	fake_free(&f);
}

static void test_rcpt_550(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ "250 2.1.0 ok\r\n", 0 },
		{ "250 2.1.5 ok\r\n", 0 },
		{ "550-5.1.1 no such\r\n550 5.1.1 user\r\n", 0 },
		{ "250 2.1.5 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 2.0.0 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", "nobody@y.test", "c@y.test");
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);

	assert_true(d.done[0].ok);
	assert_int_equal(m.rcpts[0].code, 250);
	assert_int_equal(m.rcpts[1].code, 550);
	assert_string_equal(m.rcpts[1].enh, "5.1.1");
	assert_string_equal(m.rcpts[1].text, "no such / user");
	assert_false(m.rcpts[1].temporary);
	assert_int_equal(m.rcpts[2].code, 250);
	assert_string_equal(m.rcpts[2].text, "ok");
	fake_free(&f);
}

/* Every RCPT refused; the next message on the same connection starts with RSET. */
static void test_all_rcpts_refused_then_reuse(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ "250 2.1.0 ok\r\n", 0 },
		{ "550 5.1.1 no\r\n", 0 },
		{ "451 4.2.0 later\r\n", 0 },
		{ "554 5.5.1 no valid recipients\r\n", 0 },
		{ "250 2.0.0 reset\r\n", 0 },
		{ "250 2.1.0 ok\r\n", 0 },
		{ "250 2.1.5 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 2.0.0 second\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m1, m2;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m1, "a@x.test", "b@y.test", "c@y.test", NULL);
	onemsg_init(&m2, "a@x.test", "d@y.test", NULL, NULL);
	d.msgs[0] = &m1.m;
	d.msgs[1] = &m2.m;
	d.nmsgs = 2;
	run_client(&loop, &f, f.port, &o, &d);

	assert_int_equal(d.ndone, 2);
	assert_false(d.done[0].ok);
	assert_true(d.done[0].reusable);
	assert_int_equal(d.done[0].stage, SMTPC_STAGE_RCPT);
	assert_int_equal(m1.rcpts[0].code, 550);
	assert_false(m1.rcpts[0].temporary);
	assert_int_equal(m1.rcpts[1].code, 451);
	assert_true(m1.rcpts[1].temporary);
	assert_true(d.done[1].ok);
	assert_int_equal(m2.rcpts[0].code, 250);
	assert_string_equal(m2.rcpts[0].text, "second");
	assert_string_equal(fake_log(&f),
			    "C: EHLO client.test\n"
			    "C: MAIL FROM:<a@x.test>\n"
			    "C: RCPT TO:<b@y.test>\n"
			    "C: RCPT TO:<c@y.test>\n"
			    "C: DATA\n"
			    "C: RSET\n"
			    "C: MAIL FROM:<a@x.test>\n"
			    "C: RCPT TO:<d@y.test>\n"
			    "C: DATA\n"
			    "D: 40\n"
			    "C: QUIT\n");
	fake_free(&f);
}

static void test_mail_4xx(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250 fake\r\n", 0 },
		{ "451 4.3.0 try again later\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", "c@y.test", NULL);
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);

	assert_false(d.done[0].ok);
	assert_true(d.done[0].reusable);
	assert_int_equal(d.done[0].stage, SMTPC_STAGE_MAIL);
	assert_true(d.done[0].temporary);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(m.rcpts[i].code, 451);
		assert_string_equal(m.rcpts[i].enh, "4.3.0");
		assert_true(m.rcpts[i].temporary);
	}
	assert_string_equal(fake_log(&f), "C: EHLO client.test\nC: MAIL FROM:<a@x.test>\nC: QUIT\n");
	fake_free(&f);
}

/* Dot-stuffing and CR LF on the wire, whatever the iovec boundaries. */
static void test_dot_stuffing(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	static const char *parts[] = {
		".starts with a dot\r\n",
		"bare lf\nnext\r",
		"\n.split CR LF then a dot\r\n.",
		"\r\nbare cr\rx\r\n..two dots\r\n",
		".\r\n",	/* a line of one dot inside the message */
		"no final line end",
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;
	struct iovec iov[6];
	struct buf whole, want;

	(void)state;
	buf_init(&whole, 1 << 16);
	buf_init(&want, 1 << 16);
	for (size_t i = 0; i < 6; i++) {
		iov[i].iov_base = (void *)parts[i];
		iov[i].iov_len = strlen(parts[i]);
		buf_append(&whole, parts[i], strlen(parts[i]));
	}
	/* The server's writer is the reference: the same bytes must go out. */
	assert_int_equal(data_write_stuffed(&want, whole.data, whole.len), 0);
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
	m.m.data = iov;
	m.m.ndata = 6;
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);

	assert_true(d.done[0].ok);
	assert_int_equal(f.data.len, want.len);
	assert_memory_equal(f.data.data, want.data, want.len);
	assert_memory_equal(f.data.data, "..starts with a dot\r\nbare lf\r\nnext\r\n"
			    "..split CR LF then a dot\r\n..\r\nbare cr\r\nx\r\n...two dots\r\n"
			    "..\r\nno final line end\r\n.\r\n", want.len);
	buf_free(&whole);
	buf_free(&want);
	fake_free(&f);
}

/* An empty message is just the dot. */
static void test_empty_message(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250 fake\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
	m.m.ndata = 0;
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);
	assert_true(d.done[0].ok);
	assert_int_equal(f.data.len, 3);
	assert_memory_equal(f.data.data, ".\r\n", 3);
	fake_free(&f);
}

/* SIZE: refused before MAIL when too big; SIZE= sent otherwise. */
static void test_size(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 SIZE 100\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	static char big[200];
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m1, m2;

	(void)state;
	memset(big, 'x', sizeof big);
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m1, "a@x.test", "b@y.test", "c@y.test", NULL);
	m1.iov[0].iov_base = big;
	m1.iov[0].iov_len = sizeof big;
	onemsg_init(&m2, "a@x.test", "b@y.test", NULL, NULL);
	d.msgs[0] = &m1.m;
	d.msgs[1] = &m2.m;
	d.nmsgs = 2;
	run_client(&loop, &f, f.port, &o, &d);

	assert_int_equal(d.ready.ext.size, 100);
	assert_false(d.done[0].ok);
	assert_true(d.done[0].reusable);
	assert_int_equal(d.done[0].code, 0);
	assert_string_equal(d.done[0].enh, "5.3.4");
	assert_false(d.done[0].temporary);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(m1.rcpts[i].code, 0);
		assert_string_equal(m1.rcpts[i].enh, "5.3.4");
		assert_false(m1.rcpts[i].temporary);
		assert_non_null(strstr(m1.rcpts[i].text, "message size 200 exceeds"));
	}
	assert_true(d.done[1].ok);
	assert_string_equal(fake_log(&f),
			    "C: EHLO client.test\n"
			    "C: MAIL FROM:<a@x.test> SIZE=37\n"
			    "C: RCPT TO:<b@y.test>\n"
			    "C: DATA\n"
			    "D: 40\n"
			    "C: QUIT\n");
	fake_free(&f);
}

/* 8-bit to a server without 8BITMIME, SMTPUTF8 without SMTPUTF8: bounced, not sent. */
static void test_8bit_and_utf8_refused(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m1, m2;
	static const char eight[] = "Subject: caf\xc3\xa9\r\n\r\nd\xc3\xa9j\xc3\xa0\r\n";

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	/* Refused only for what the message holds: 8-bit octets, and a
	 * non-ASCII envelope (RFC 6152 3, RFC 6531 3.5). */
	onemsg_init(&m1, "a@x.test", "b@y.test", NULL, NULL);
	m1.m.body = BODY_8BITMIME;
	m1.iov[0].iov_base = (void *)eight;
	m1.iov[0].iov_len = sizeof eight - 1;
	onemsg_init(&m2, "\xc3\xa4@x.test", "b@y.test", NULL, NULL);
	m2.m.smtputf8 = true;
	d.msgs[0] = &m1.m;
	d.msgs[1] = &m2.m;
	d.nmsgs = 2;
	run_client(&loop, &f, f.port, &o, &d);

	assert_false(d.done[0].ok);
	assert_string_equal(m1.rcpts[0].enh, "5.6.3");
	assert_false(m1.rcpts[0].temporary);
	assert_non_null(strstr(m1.rcpts[0].text, "Conversion required but not supported"));
	assert_false(d.done[1].ok);
	assert_string_equal(m2.rcpts[0].enh, "5.6.7");
	assert_false(m2.rcpts[0].temporary);
	assert_string_equal(fake_log(&f), "C: EHLO client.test\nC: QUIT\n");
	fake_free(&f);
}

/* Flags without the content: an ASCII message marked SMTPUTF8 and a 7-bit
 * one marked 8BITMIME go to a server offering neither, without the flags. */
static void test_flags_without_content_go_through(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m1;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m1, "a@x.test", "b@y.test", NULL, NULL);
	m1.m.body = BODY_8BITMIME;
	m1.m.smtputf8 = true;
	d.msgs[0] = &m1.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);
	assert_true(d.done[0].ok);
	assert_int_equal(m1.rcpts[0].code, 250);
	assert_non_null(strstr(fake_log(&f), "C: MAIL FROM:<a@x.test>\n"));
	fake_free(&f);
}

/* DSN and AUTH= parameters, xtext, and addresses that cannot go on the wire. */
static void test_params(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250-DSN\r\n250-SMTPUTF8\r\n250-AUTH PLAIN\r\n250 PIPELINING\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", "evil@y.test>\r\nRSET", "c@y.test");
	m.m.ret = DSN_RET_HDRS;
	m.m.envid = "abc+2Bd";
	m.m.smtputf8 = true;
	m.m.auth_param = "alice smith+x=y@x.test";
	m.rcpts[0].notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY;
	m.rcpts[0].orcpt = "rfc822;b@y.test";
	m.rcpts[2].notify = DSN_NOTIFY_NEVER;
	m.rcpts[2].orcpt = "rfc822;bad xtext";
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);

	assert_true(d.done[0].ok);
	assert_int_equal(m.rcpts[1].code, 0);
	assert_string_equal(m.rcpts[1].enh, "5.1.3");
	assert_false(m.rcpts[1].temporary);
	assert_string_equal(fake_log(&f),
			    "C: EHLO client.test\n"
			    "C: MAIL FROM:<a@x.test> SMTPUTF8 RET=HDRS ENVID=abc+2Bd "
			    "AUTH=alice+20smith+2Bx+3Dy@x.test\n"
			    "C: RCPT TO:<b@y.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b@y.test\n"
			    "C: RCPT TO:<c@y.test> NOTIFY=NEVER\n"
			    "C: DATA\n"
			    "D: 40\n"
			    "C: QUIT\n");
	fake_free(&f);
}

/*
 * STARTTLS: the server's "250 injected" sent in the same write as its 220
 * must be thrown away, never read as the reply to the EHLO inside TLS.
 */
static void test_starttls_injection(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250-STARTTLS\r\n250 PIPELINING\r\n", 0 },
		{ "220 go\r\n250 injected\r\n", 0 },
		{ "250-fake in TLS\r\n250 SIZE 12345\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	o.tls = SMTPC_TLS_ENCRYPT;
	o.tls_ctx = client_ctx(false);
	o.tls_name = "mx.test.example";
	onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);
	SSL_CTX_free(o.tls_ctx);

	assert_true(d.ready.ok);
	assert_true(d.ready.tls_version[0] != '\0');
	assert_true(d.ready.tls_cipher[0] != '\0');
	assert_false(d.ready.tls_verified);
	assert_string_equal(d.ready.tls_verify_error, "self-signed certificate");
	/* Only the EHLO inside TLS counts. */
	assert_true(d.ready.ext.has_size);
	assert_int_equal(d.ready.ext.size, 12345);
	assert_false(d.ready.ext.pipelining);
	assert_false(d.ready.ext.starttls);
	assert_true(d.done[0].ok);
	assert_string_equal(d.done[0].tls_version, d.ready.tls_version);
	assert_string_equal(fake_log(&f),
			    "C: EHLO client.test\n"
			    "C: STARTTLS\n"
			    "T: tls\n"
			    "C: EHLO client.test\n"
			    "C: MAIL FROM:<a@x.test> SIZE=37\n"
			    "C: RCPT TO:<b@y.test>\n"
			    "C: DATA\n"
			    "D: 40\n"
			    "C: QUIT\n");
	fake_free(&f);
}

static void test_tls_verify(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 STARTTLS\r\n", 0 },
		{ "220 go\r\n", 0 },
		{ "250 fake\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	const char *names[] = { "mx.test.example", "other.test.example", "127.0.0.1" };
	const bool good[] = { true, false, true };

	(void)state;
	for (int i = 0; i < 3; i++) {
		uv_loop_t loop;
		struct fake f;
		struct smtpc_opts o;
		struct drive d = { 0 };

		uv_loop_init(&loop);
		fake_start(&f, &loop, steps, NSTEPS(steps));
		test_opts(&o);
		o.tls = SMTPC_TLS_VERIFY;
		o.tls_ctx = client_ctx(true);
		o.tls_name = names[i];
		run_client(&loop, &f, f.port, &o, &d);
		SSL_CTX_free(o.tls_ctx);
		if (good[i]) {
			assert_true(d.ready.ok);
			assert_true(d.ready.tls_verified);
			assert_string_equal(d.ready.tls_verify_error, "");
		} else {
			assert_false(d.ready.ok);
			assert_int_equal(d.ready.stage, SMTPC_STAGE_TLS);
			assert_true(d.ready.temporary);
			assert_false(d.ready.tls_failed_may);
			assert_string_equal(d.ready.tls_verify_error, "hostname mismatch");
			assert_non_null(strstr(d.ready.text, "hostname mismatch"));
		}
		fake_free(&f);
	}
}

/* MAY: a handshake that fails says so, for a plaintext retry. */
static void test_tls_may_failure(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 STARTTLS\r\n", 0 },
		{ "220 go\r\n", F_NOTLS | F_CLOSE },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	o.tls = SMTPC_TLS_MAY;
	o.tls_ctx = client_ctx(false);
	run_client(&loop, &f, f.port, &o, &d);
	SSL_CTX_free(o.tls_ctx);
	assert_false(d.ready.ok);
	assert_int_equal(d.ready.stage, SMTPC_STAGE_TLS);
	assert_true(d.ready.temporary);
	assert_true(d.ready.tls_failed_may);
	fake_free(&f);
}

/* Required TLS without STARTTLS; MAY without it goes on in plaintext. */
static void test_tls_not_offered(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250 fake\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};

	(void)state;
	for (int may = 0; may < 2; may++) {
		uv_loop_t loop;
		struct fake f;
		struct smtpc_opts o;
		struct drive d = { 0 };

		uv_loop_init(&loop);
		fake_start(&f, &loop, steps, NSTEPS(steps));
		test_opts(&o);
		o.tls = may ? SMTPC_TLS_MAY : SMTPC_TLS_ENCRYPT;
		o.tls_ctx = client_ctx(false);
		run_client(&loop, &f, f.port, &o, &d);
		SSL_CTX_free(o.tls_ctx);
		if (may) {
			assert_true(d.ready.ok);
			assert_string_equal(d.ready.tls_version, "");
			assert_string_equal(fake_log(&f), "C: EHLO client.test\nC: QUIT\n");
		} else {
			assert_false(d.ready.ok);
			assert_int_equal(d.ready.stage, SMTPC_STAGE_TLS);
			assert_string_equal(d.ready.enh, "4.7.4");
			assert_true(d.ready.temporary);
			assert_false(d.ready.tls_failed_may);
		}
		fake_free(&f);
	}
}

static void test_implicit_tls(void **state)
{
	static const struct step steps[] = {
		{ "220 fake in TLS\r\n", 0 },
		{ "250-fake\r\n250 AUTH PLAIN\r\n", 0 },
		{ "235 2.7.0 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	f.implicit = true;
	test_opts(&o);
	o.tls = SMTPC_TLS_IMPLICIT;
	o.tls_verify_implicit = true;
	o.tls_name = "mx.test.example";
	o.tls_ctx = client_ctx(true);
	o.auth_user = "alice";
	o.auth_pass = "secret";
	run_client(&loop, &f, f.port, &o, &d);
	SSL_CTX_free(o.tls_ctx);
	assert_true(d.ready.ok);
	assert_true(d.ready.tls_verified);
	assert_string_equal(d.ready.auth_mech, "PLAIN");
	assert_string_equal(fake_log(&f),
			    "T: tls\n"
			    "C: EHLO client.test\n"
			    "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\n"
			    "C: QUIT\n");
	fake_free(&f);
}

static void test_auth_plain_after_tls(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n", 0 },
		{ "220 go\r\n", 0 },
		{ "250-fake\r\n250 AUTH PLAIN LOGIN\r\n", 0 },
		{ "235 2.7.0 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	o.tls = SMTPC_TLS_MAY;
	o.tls_ctx = client_ctx(false);
	o.auth_user = "alice";
	o.auth_pass = "secret";
	onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
	m.m.auth_param = "alice@x.test";
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);
	SSL_CTX_free(o.tls_ctx);

	assert_true(d.ready.ok);
	assert_string_equal(d.ready.auth_mech, "PLAIN");
	assert_int_equal(d.ready.stage, SMTPC_STAGE_AUTH);
	assert_true(d.done[0].ok);
	/* No credential before TLS; PLAIN with its initial response inside. */
	assert_string_equal(fake_log(&f),
			    "C: EHLO client.test\n"
			    "C: STARTTLS\n"
			    "T: tls\n"
			    "C: EHLO client.test\n"
			    "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\n"
			    "C: MAIL FROM:<a@x.test> AUTH=alice@x.test\n"
			    "C: RCPT TO:<b@y.test>\n"
			    "C: DATA\n"
			    "D: 40\n"
			    "C: QUIT\n");
	fake_free(&f);
}

static void test_auth_login(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 STARTTLS\r\n", 0 },
		{ "220 go\r\n", 0 },
		{ "250-fake\r\n250 AUTH LOGIN CRAM-MD5\r\n", 0 },
		{ "334 VXNlcm5hbWU6\r\n", 0 },
		{ "334 UGFzc3dvcmQ6\r\n", 0 },
		{ "235 2.7.0 ok\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	o.tls = SMTPC_TLS_ENCRYPT;
	o.tls_ctx = client_ctx(false);
	o.auth_user = "alice";
	o.auth_pass = "secret";
	run_client(&loop, &f, f.port, &o, &d);
	SSL_CTX_free(o.tls_ctx);

	assert_true(d.ready.ok);
	assert_string_equal(d.ready.auth_mech, "LOGIN");
	assert_string_equal(fake_log(&f),
			    "C: EHLO client.test\n"
			    "C: STARTTLS\n"
			    "T: tls\n"
			    "C: EHLO client.test\n"
			    "C: AUTH LOGIN\n"
			    "C: YWxpY2U=\n"
			    "C: c2VjcmV0\n"
			    "C: QUIT\n");
	fake_free(&f);
}

/* Credentials never go over plaintext; a refused AUTH is temporary. */
static void test_auth_refused(void **state)
{
	static const struct step plain[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 AUTH PLAIN LOGIN\r\n", 0 },
	};
	static const struct step wrong[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250 STARTTLS\r\n", 0 },
		{ "220 go\r\n", 0 },
		{ "250-fake\r\n250 AUTH PLAIN\r\n", 0 },
		{ "535 5.7.8 bad credentials\r\n", 0 },
	};

	(void)state;
	for (int i = 0; i < 2; i++) {
		uv_loop_t loop;
		struct fake f;
		struct smtpc_opts o;
		struct drive d = { 0 };

		uv_loop_init(&loop);
		fake_start(&f, &loop, i ? wrong : plain, i ? NSTEPS(wrong) : NSTEPS(plain));
		test_opts(&o);
		o.tls = SMTPC_TLS_MAY;
		o.tls_ctx = client_ctx(false);
		o.auth_user = "alice";
		o.auth_pass = "secret";
		run_client(&loop, &f, f.port, &o, &d);
		SSL_CTX_free(o.tls_ctx);
		assert_false(d.ready.ok);
		assert_int_equal(d.ready.stage, SMTPC_STAGE_AUTH);
		assert_true(d.ready.temporary);
		if (i == 0) {
			assert_int_equal(d.ready.code, 0);
			assert_string_equal(fake_log(&f), "C: EHLO client.test\n");
		} else {
			assert_int_equal(d.ready.code, 535);
			assert_string_equal(d.ready.enh, "5.7.8");
		}
		fake_free(&f);
	}
}

static void test_lmtp(void **state)
{
	static const struct step steps[] = {
		{ "220 fake LMTP\r\n", 0 },
		{ "250-fake\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n", 0 },
		{ "250 2.1.0 ok\r\n", 0 },
		{ "250 2.1.5 ok\r\n", 0 },
		{ "550 5.1.1 unknown\r\n", 0 },
		{ "250 2.1.5 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 2.0.0 <a> saved\r\n452 4.2.2 <c> over quota\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	o.lmtp = true;
	onemsg_init(&m, "a@x.test", "a@y.test", "b@y.test", "c@y.test");
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);

	assert_true(d.done[0].ok);
	assert_true(d.done[0].reusable);
	assert_int_equal(m.rcpts[0].code, 250);
	assert_string_equal(m.rcpts[0].text, "<a> saved");
	assert_int_equal(m.rcpts[1].code, 550);
	assert_int_equal(m.rcpts[2].code, 452);
	assert_string_equal(m.rcpts[2].enh, "4.2.2");
	assert_true(m.rcpts[2].temporary);
	assert_true(strncmp(fake_log(&f), "C: LHLO client.test\n", 20) == 0);
	fake_free(&f);
}

/* LMTP: the connection breaks after the first of two replies. */
static void test_lmtp_broken_after_dot(void **state)
{
	static const struct step steps[] = {
		{ "220 fake LMTP\r\n", 0 },
		{ "250 fake\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 2.0.0 first saved\r\n", F_CLOSE },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	o.lmtp = true;
	onemsg_init(&m, "a@x.test", "a@y.test", "b@y.test", NULL);
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);

	assert_true(d.done[0].ok);
	assert_false(d.done[0].reusable);
	assert_int_equal(m.rcpts[0].code, 250);
	assert_int_equal(m.rcpts[1].code, 0);
	assert_true(m.rcpts[1].temporary);
	assert_string_equal(m.rcpts[1].enh, "4.4.2");
	fake_free(&f);
}

static void test_timeout(void **state)
{
	static const struct step greet_hang[] = { { "", F_HANG } };
	static const struct step dot_hang[] = {
		{ "220 fake\r\n", 0 },
		{ "250 fake\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "", F_HANG },
	};

	(void)state;
	for (int i = 0; i < 2; i++) {
		uv_loop_t loop;
		struct fake f;
		struct smtpc_opts o;
		struct drive d = { 0 };
		struct onemsg m;

		uv_loop_init(&loop);
		fake_start(&f, &loop, i ? dot_hang : greet_hang, i ? NSTEPS(dot_hang) : 1);
		test_opts(&o);
		o.greeting_timeout_ms = 150;
		o.dot_timeout_ms = 200;
		onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
		d.msgs[0] = &m.m;
		d.nmsgs = 1;
		run_client(&loop, &f, f.port, &o, &d);
		if (i == 0) {
			assert_false(d.ready.ok);
			assert_int_equal(d.ready.stage, SMTPC_STAGE_GREETING);
			assert_true(d.ready.temporary);
			assert_string_equal(d.ready.enh, "4.4.2");
			assert_string_equal(d.ready.text,
					    "timeout after 150 ms waiting for the greeting");
		} else {
			assert_false(d.done[0].ok);
			assert_false(d.done[0].reusable);
			assert_int_equal(d.done[0].stage, SMTPC_STAGE_DOT);
			assert_true(m.rcpts[0].temporary);
			assert_string_equal(m.rcpts[0].text, "timeout after 200 ms waiting for the "
							     "reply to the end of the message");
		}
		fake_free(&f);
	}
}

static void test_greeting_554_and_bad_reply(void **state)
{
	static const struct step refuse[] = { { "554 5.7.1 go away\r\n", 0 } };
	static const struct step bad[] = { { "220-a\r\n230 b\r\n", 0 } };

	(void)state;
	for (int i = 0; i < 2; i++) {
		uv_loop_t loop;
		struct fake f;
		struct smtpc_opts o;
		struct drive d = { 0 };

		uv_loop_init(&loop);
		fake_start(&f, &loop, i ? bad : refuse, 1);
		test_opts(&o);
		run_client(&loop, &f, f.port, &o, &d);
		assert_false(d.ready.ok);
		assert_int_equal(d.ready.stage, SMTPC_STAGE_GREETING);
		if (i == 0) {
			assert_int_equal(d.ready.code, 554);
			assert_false(d.ready.temporary);
			assert_string_equal(d.ready.text, "go away");
		} else {
			assert_int_equal(d.ready.code, 0);
			assert_true(d.ready.temporary);
			assert_string_equal(d.ready.enh, "4.5.0");
		}
		fake_free(&f);
	}
}

/* 421 in the middle of a transaction: temporary for all, not reusable. */
static void test_421_midway(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250 fake\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "421 4.3.2 shutting down\r\n", F_CLOSE },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", "c@y.test", NULL);
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);
	assert_false(d.done[0].ok);
	assert_false(d.done[0].reusable);
	assert_int_equal(d.done[0].stage, SMTPC_STAGE_RCPT);
	/* RFC 5321 3.8: 421 closes the channel; every recipient gets it. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(m.rcpts[i].code, 421);
		assert_string_equal(m.rcpts[i].text, "shutting down");
		assert_true(m.rcpts[i].temporary);
	}
	assert_string_equal(fake_log(&f), "C: EHLO client.test\nC: MAIL FROM:<a@x.test>\n"
					  "C: RCPT TO:<b@y.test>\n");
	fake_free(&f);
}

static void test_connect_refused(void **state)
{
	uv_loop_t loop;
	struct smtpc_opts o;
	struct drive d = { 0 };
	uv_tcp_t probe;
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof ss, port;

	(void)state;
	/* A port that was just free: nobody listens on it. */
	uv_loop_init(&loop);
	uv_tcp_init(&loop, &probe);
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_bind(&probe, (struct sockaddr *)&a, 0);
	uv_tcp_getsockname(&probe, (struct sockaddr *)&ss, &len);
	port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_close((uv_handle_t *)&probe, noop_close);
	uv_run(&loop, UV_RUN_DEFAULT);
	test_opts(&o);
	run_client(&loop, NULL, port, &o, &d);
	assert_false(d.ready.ok);
	assert_int_equal(d.ready.stage, SMTPC_STAGE_CONNECT);
	assert_string_equal(d.ready.enh, "4.4.1");
	assert_true(d.ready.temporary);
	assert_non_null(strstr(d.ready.text, "connection refused"));
}

static void test_binarymime_bdat(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 BINARYMIME\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 2.0.0 chunk taken\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	static const char bin[] = "a\0b\r\n.\n\r\xff";
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
	m.m.body = BODY_BINARYMIME;
	m.iov[0].iov_base = (void *)bin;
	m.iov[0].iov_len = sizeof bin - 1;
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);
	assert_true(d.done[0].ok);
	assert_string_equal(m.rcpts[0].text, "chunk taken");
	assert_int_equal(f.data.len, sizeof bin - 1);
	assert_memory_equal(f.data.data, bin, sizeof bin - 1);
	assert_string_equal(fake_log(&f),
			    "C: EHLO client.test\n"
			    "C: MAIL FROM:<a@x.test> BODY=BINARYMIME\n"
			    "C: RCPT TO:<b@y.test>\n"
			    "C: BDAT 9 LAST\n"
			    "D: 9\n"
			    "C: QUIT\n");
	fake_free(&f);
}

/* The server hangs up while the connection is idle: the next message learns it. */
static void test_died_idle(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250 fake\r\n", F_CLOSE_LATER },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;

	(void)state;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	d.send_later = true;
	uv_timer_init(&loop, &d.later);
	d.later.data = &d;
	run_client(&loop, &f, f.port, &o, &d);
	assert_true(d.ready.ok);
	assert_int_equal(d.ndone, 1);
	assert_false(d.done[0].ok);
	assert_false(d.done[0].reusable);
	assert_true(m.rcpts[0].temporary);
	assert_string_equal(m.rcpts[0].enh, "4.4.2");
	assert_non_null(strstr(m.rcpts[0].text, "closed the connection while idle"));
	fake_free(&f);
}

/* A message of many blocks through TLS: flow control, stuffing across blocks. */
static void test_large_message_tls(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250-fake\r\n250-STARTTLS\r\n250 PIPELINING\r\n", 0 },
		{ "220 go\r\n", 0 },
		{ "250-fake\r\n250 PIPELINING\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "250 ok\r\n", 0 },
		{ "354 go\r\n", 0 },
		{ "250 2.0.0 all of it\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct onemsg m;
	struct buf msg, want;
	struct iovec iov[3];

	(void)state;
	buf_init(&msg, 1 << 24);
	buf_init(&want, 1 << 24);
	for (int i = 0; i < 40000; i++)
		buf_printf(&msg, i % 7 == 0 ? ".line %d with a dot\r\n" :
			   i % 11 == 0 ? "line %d bare lf\n" : "line %d of the message body\r\n", i);
	assert_int_equal(data_write_stuffed(&want, msg.data, msg.len), 0);
	/* Three uneven parts. */
	iov[0].iov_base = msg.data;
	iov[0].iov_len = 1;
	iov[1].iov_base = msg.data + 1;
	iov[1].iov_len = 200001;
	iov[2].iov_base = msg.data + 200002;
	iov[2].iov_len = msg.len - 200002;
	uv_loop_init(&loop);
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	o.tls = SMTPC_TLS_MAY;
	o.tls_ctx = client_ctx(false);
	onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
	m.m.data = iov;
	m.m.ndata = 3;
	d.msgs[0] = &m.m;
	d.nmsgs = 1;
	run_client(&loop, &f, f.port, &o, &d);
	SSL_CTX_free(o.tls_ctx);
	assert_true(d.done[0].ok);
	assert_string_equal(m.rcpts[0].text, "all of it");
	assert_int_equal(f.data.len, want.len);
	assert_memory_equal(f.data.data, want.data, want.len);
	buf_free(&msg);
	buf_free(&want);
	fake_free(&f);
}

static void test_api_misuse(void **state)
{
	static const struct step steps[] = {
		{ "220 fake\r\n", 0 },
		{ "250 fake\r\n", 0 },
		{ "221 bye\r\n", 0 },
	};
	uv_loop_t loop;
	struct fake f;
	struct smtpc_opts o;
	struct drive d = { 0 };
	struct sockaddr_in a;
	struct smtpc *c;
	struct onemsg m;
	char err[128];

	(void)state;
	uv_loop_init(&loop);
	test_opts(&o);
	/* TLS without a context: refused at once, nothing called back. */
	o.tls = SMTPC_TLS_MAY;
	uv_ip4_addr("127.0.0.1", 25, &a);
	assert_null(smtpc_connect(&loop, (struct sockaddr *)&a, &o, &cbs, &d, err, sizeof err));
	assert_non_null(strstr(err, "TLS context"));
	o.tls = SMTPC_TLS_NONE;
	o.helo_name = "bad\r\nname";
	assert_null(smtpc_connect(&loop, (struct sockaddr *)&a, &o, &cbs, &d, err, sizeof err));
	/* Before ready: smtpc_send refuses. */
	fake_start(&f, &loop, steps, NSTEPS(steps));
	test_opts(&o);
	uv_ip4_addr("127.0.0.1", f.port, &a);
	onemsg_init(&m, "a@x.test", "b@y.test", NULL, NULL);
	d.quit_in_ready = true;
	c = smtpc_connect(&loop, (struct sockaddr *)&a, &o, &cbs, &d, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(smtpc_send(c, &m.m), -1);
	while (!d.closed)
		uv_run(&loop, UV_RUN_ONCE);
	assert_true(d.ready.ok);
	assert_int_equal(d.ndone, 0);
	fake_close_conn(&f);
	uv_close((uv_handle_t *)&f.srv, noop_close);
	uv_close((uv_handle_t *)&f.later, noop_close);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	fake_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelining),
		cmocka_unit_test(test_no_pipelining),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_rcpt_550),
		cmocka_unit_test(test_all_rcpts_refused_then_reuse),
		cmocka_unit_test(test_mail_4xx),
		cmocka_unit_test(test_dot_stuffing),
		cmocka_unit_test(test_empty_message),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_8bit_and_utf8_refused),
		cmocka_unit_test(test_flags_without_content_go_through),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_starttls_injection),
		cmocka_unit_test(test_tls_verify),
		cmocka_unit_test(test_tls_may_failure),
		cmocka_unit_test(test_tls_not_offered),
		cmocka_unit_test(test_implicit_tls),
		cmocka_unit_test(test_auth_plain_after_tls),
		cmocka_unit_test(test_auth_login),
		cmocka_unit_test(test_auth_refused),
		cmocka_unit_test(test_lmtp),
		cmocka_unit_test(test_lmtp_broken_after_dot),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_greeting_554_and_bad_reply),
		cmocka_unit_test(test_421_midway),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_binarymime_bdat),
		cmocka_unit_test(test_died_idle),
		cmocka_unit_test(test_large_message_tls),
		cmocka_unit_test(test_api_misuse),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
