/*
 * send.c - `tern send`: build one message and submit it, trying the
 * submission ports and TLS modes in the order mail clients should.
 *
 *	Order without --port: 587 STARTTLS, 465 implicit TLS, 2525 STARTTLS,
 *	25 STARTTLS if offered. --port P[:MODE] (repeatable) gives the order
 *	instead (probe.h). The next port is tried when one cannot be used:
 *	refused, timed out, no greeting, EHLO or TLS failing, or no way to
 *	log in (a plaintext connection, no mechanism tern has). Once a
 *	server has answered AUTH or the transaction, its answer is final: a
 *	wrong password is wrong on every port (and more tries lock accounts).
 *
 *	The message: From, To, Subject (RFC 2047 when not ASCII), Date,
 *	Message-ID, MIME-Version; a text body (7bit, or base64 UTF-8 when it
 *	holds 8-bit octets or long lines); with --attach, multipart/mixed with
 *	each file in base64 (RFC 2045, 2046, 2183).
 *
 *	-v: the whole dialogue, from the SMTP client's trace (smtp_client.h):
 *	"->" each line sent, "<-" each line received, after TLS is removed;
 *	the message as one line with its size. Credentials never show: an
 *	AUTH line keeps its mechanism and the user, and every answer to a 334
 *	challenge is masked. Lines "*" are facts: each port tried and why it
 *	failed, the TLS version, cipher and certificate.
 *
 *	Exit status: 0 when every recipient was accepted (250 to the dot),
 *	1 otherwise (the reply on stderr), 2 for a usage error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <uv.h>

#include "../lib/tls_client.h"
#include "cli.h"
#include "probe.h"

#define SEND_MAX_RCPTS 32
#define SEND_MAX_ATTACH 16
#define SEND_MAX_FILE (64u * 1024 * 1024)

#define USAGE                                                                          \
	"usage: tern send --server HOST [--port P[:MODE]]... --from A --to B [--to C]...\n" \
	"                 [--subject S] [--body FILE] [--attach FILE]...\n"                 \
	"                 [--auth USER --password-file F] [--tls-name NAME] [--ca PEM]\n"   \
	"                 [--helo NAME] [--timeout SECONDS] [-v]\n"                         \
	"       MODE: starttls, implicit, may, none\n"

struct out {
	char *p;
	size_t len, cap;
	bool oom;
};

static void out_add(struct out *o, const void *p, size_t n)
{
	if (o->oom)
		return;
	if (o->cap - o->len < n + 1) {
		size_t cap = (o->cap + n + 1) * 2;
		char *q = realloc(o->p, cap);

		if (q == NULL) {
			o->oom = true;
			return;
		}
		o->p = q;
		o->cap = cap;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void out_fmt(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_fmt(struct out *o, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		out_add(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 in lines of 76 characters, each ended by CR LF (RFC 2045 6.8). */
static void out_base64(struct out *o, const unsigned char *p, size_t n, bool lines)
{
	char line[80];
	size_t k = 0;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		line[k++] = B64[(v >> 18) & 63];
		line[k++] = B64[(v >> 12) & 63];
		line[k++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
		line[k++] = i + 2 < n ? B64[v & 63] : '=';
		if (lines && k == 76) {
			out_add(o, line, k);
			out_str(o, "\r\n");
			k = 0;
		}
	}
	if (k > 0) {
		out_add(o, line, k);
		if (lines)
			out_str(o, "\r\n");
	}
}

static bool is_7bit_text(const char *p, size_t n)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x80 || c == 0)
			return false;
		col = c == '\n' ? 0 : col + 1;
		if (col > 900)
			return false;
	}
	return true;
}

/* A header value: as is when printable ASCII, else one RFC 2047 B word. */
static void out_header_text(struct out *o, const char *s)
{
	bool plain = true;

	for (const char *q = s; *q; q++)
		if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
			plain = false;
	if (plain && strlen(s) < 900) {
		out_str(o, s);
		return;
	}
	out_str(o, "=?UTF-8?B?");
	out_base64(o, (const unsigned char *)s, strlen(s) < 600 ? strlen(s) : 600, false);
	out_str(o, "?=");
}

static void random_hex(char *out, size_t bytes)
{
	unsigned char r[32];

	if (bytes > sizeof r)
		bytes = sizeof r;
	if (RAND_bytes(r, (int)bytes) != 1)
		for (size_t i = 0; i < bytes; i++)
			r[i] = (unsigned char)(rand() & 0xff);
	for (size_t i = 0; i < bytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static const char *mime_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} t[] = {
		{ ".txt", "text/plain" },	{ ".pdf", "application/pdf" },
		{ ".png", "image/png" },	{ ".jpg", "image/jpeg" },
		{ ".jpeg", "image/jpeg" },	{ ".gif", "image/gif" },
		{ ".zip", "application/zip" },	{ ".csv", "text/csv" },
		{ ".html", "text/html" },	{ ".json", "application/json" },
	};
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		size_t k = strlen(t[i].ext);

		if (n > k && strcasecmp(name + n - k, t[i].ext) == 0)
			return t[i].type;
	}
	return "application/octet-stream";
}

static void out_text_part(struct out *o, const char *body, size_t n)
{
	if (is_7bit_text(body, n)) {
		out_str(o, "Content-Type: text/plain; charset=us-ascii\r\n"
			   "Content-Transfer-Encoding: 7bit\r\n\r\n");
		out_add(o, body, n);
		if (n > 0 && body[n - 1] != '\n')
			out_str(o, "\r\n");
	} else {
		out_str(o, "Content-Type: text/plain; charset=utf-8\r\n"
			   "Content-Transfer-Encoding: base64\r\n\r\n");
		out_base64(o, (const unsigned char *)body, n, true);
	}
}

struct send_args {
	const char *server, *from, *subject, *body_file, *user, *password_file;
	const char *tls_name, *ca, *helo;
	const char *to[SEND_MAX_RCPTS];
	size_t nto;
	const char *attach[SEND_MAX_ATTACH];
	size_t nattach;
	struct probe_port ports[PROBE_MAX_PORTS];
	size_t nports;
	unsigned timeout_ms;
	bool verbose;
};

static int build_message(const struct send_args *a, struct out *o)
{
	char *body = NULL, boundary[64], rnd[33], date[64];
	const char *at = strrchr(a->from, '@');
	size_t blen = 0;
	time_t now = time(NULL);
	struct tm tm;

	if (a->body_file != NULL) {
		if (probe_read_file(a->body_file, &body, &blen, SEND_MAX_FILE) < 0) {
			fprintf(stderr, "tern send: cannot read %s: %s\n", a->body_file,
				strerror(errno));
			return -1;
		}
	} else {
		body = strdup("This is a test message sent by tern send.\n");
		if (body == NULL)
			return -1;
		blen = strlen(body);
	}
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	random_hex(rnd, 16);
	out_fmt(o, "From: <%s>\r\n", a->from);
	for (size_t i = 0; i < a->nto; i++)
		out_fmt(o, "%s<%s>%s", i == 0 ? "To: " : " ", a->to[i],
			i + 1 < a->nto ? ",\r\n" : "\r\n");
	out_str(o, "Subject: ");
	out_header_text(o, a->subject != NULL ? a->subject : "Test message from tern send");
	out_fmt(o, "\r\nDate: %s\r\n", date);
	out_fmt(o, "Message-ID: <%lld.%s@%s>\r\n", (long long)now, rnd,
		at != NULL && at[1] != '\0' ? at + 1 : "localhost");
	out_str(o, "MIME-Version: 1.0\r\n");
	if (a->nattach == 0) {
		out_text_part(o, body, blen);
		free(body);
		return o->oom ? -1 : 0;
	}
	random_hex(rnd, 12);
	snprintf(boundary, sizeof boundary, "=_tern_%s", rnd);
	out_fmt(o, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary);
	out_str(o, "This is a message in MIME format.\r\n");
	out_fmt(o, "\r\n--%s\r\n", boundary);
	out_text_part(o, body, blen);
	free(body);
	for (size_t i = 0; i < a->nattach; i++) {
		const char *name = strrchr(a->attach[i], '/');
		char *data;
		size_t n;

		name = name != NULL ? name + 1 : a->attach[i];
		if (probe_read_file(a->attach[i], &data, &n, SEND_MAX_FILE) < 0) {
			fprintf(stderr, "tern send: cannot read %s: %s\n", a->attach[i],
				strerror(errno));
			return -1;
		}
		out_fmt(o, "\r\n--%s\r\n", boundary);
		out_fmt(o, "Content-Type: %s; name=\"", mime_type(name));
		out_header_text(o, name);
		out_str(o, "\"\r\nContent-Disposition: attachment; filename=\"");
		out_header_text(o, name);
		out_str(o, "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
		out_base64(o, (const unsigned char *)data, n, true);
		free(data);
	}
	out_fmt(o, "\r\n--%s--\r\n", boundary);
	return o->oom ? -1 : 0;
}

/* ---- one attempt ------------------------------------------------------- */

enum outcome { OUT_NEXT, OUT_SENT, OUT_REFUSED };

struct attempt {
	const struct send_args *a;
	struct smtpc_msg *msg;
	enum outcome outcome;
	char why[600];
	bool closed;
	bool challenged;	/* the last line received was a 334: the next sent is a secret */
};

static void vsay(const struct attempt *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void vsay(const struct attempt *t, const char *fmt, ...)
{
	va_list ap;

	if (!t->a->verbose)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* Replies are in the trace; what no server said is a fact of ours. */
static void say_reply(const struct attempt *t, int code, const char *enh, const char *text)
{
	if (code == 0)
		vsay(t, "*  (no reply: %s%s%s)\n", enh, enh[0] ? " " : "", text);
}

/* The client's trace (smtp_client.h), credentials masked. */
static void on_trace(void *arg, char dir, const char *line, size_t len)
{
	struct attempt *t = arg;

	if (dir == '<') {
		t->challenged = len >= 3 && memcmp(line, "334", 3) == 0;
		vsay(t, "<- %.*s\n", (int)len, line);
		return;
	}
	if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		size_t mech = strcspn(line + 5, " ");

		vsay(t, "-> AUTH %.*s ******** (user %s, password masked)\n", (int)mech, line + 5,
		     t->a->user ? t->a->user : "?");
	} else if (t->challenged) {
		vsay(t, "-> ******** (masked)\n");
	} else {
		vsay(t, "-> %.*s\n", (int)len, line);
	}
	t->challenged = false;
}

static void say_facts(const struct attempt *t, const struct smtpc_result *r)
{
	char ext[512];

	if (r->tls_version[0])
		vsay(t, "*  TLS: %s, %s; certificate %s%s%s\n", r->tls_version, r->tls_cipher,
		     r->tls_verified ? "verified" : "not verified",
		     r->tls_verified ? "" : ": ", r->tls_verify_error);
	if (r->esmtp) {
		probe_ext_names(&r->ext, true, ext, sizeof ext);
		vsay(t, "*  EHLO accepted%s; extensions: %s\n",
		     r->tls_version[0] ? " (again, inside TLS)" : "", ext[0] ? ext : "(none)");
	}
}

static void on_ready(struct smtpc *c, const struct smtpc_result *r, void *arg)
{
	struct attempt *t = arg;

	if (r->stage > SMTPC_STAGE_CONNECT || r->ok)
		vsay(t, "*  connected to %s\n", r->peer);
	say_facts(t, r);
	if (r->ok && t->a->user != NULL && r->auth_mech[0] == '\0')
		vsay(t, "*  the server offers no AUTH: sending without logging in\n");
	if (!r->ok) {
		if (r->stage == SMTPC_STAGE_AUTH) {
			say_reply(t, r->code, r->enh, r->text);
			snprintf(t->why, sizeof t->why, "login failed: %s (%d %s %s)",
				 probe_auth_words(r->code, r->enh, r->text), r->code, r->enh,
				 r->text);
			t->outcome = r->code != 0 ? OUT_REFUSED : OUT_NEXT;
		} else {
			say_reply(t, r->code, r->enh, r->text);
			snprintf(t->why, sizeof t->why, "%s failed: %s%s%s",
				 smtpc_stage_name(r->stage), r->enh, r->enh[0] ? " " : "", r->text);
			if (r->code != 0) {
				size_t n = strlen(t->why);

				snprintf(t->why + n, sizeof t->why - n, " (reply %d)", r->code);
			}
			t->outcome = OUT_NEXT;
		}
		smtpc_quit(c);
		return;
	}
	if (smtpc_send(c, t->msg) < 0) {
		snprintf(t->why, sizeof t->why, "the SMTP client refused the message");
		t->outcome = OUT_REFUSED;
		smtpc_quit(c);
	}
}

static void on_done(struct smtpc *c, struct smtpc_msg *m, const struct smtpc_result *r, void *arg)
{
	struct attempt *t = arg;
	bool all = true;

	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct smtpc_rcpt *rc = &m->rcpts[i];

		if (rc->code / 100 != 2) {
			all = false;
			vsay(t, "*  recipient <%s> refused:\n", rc->addr);
			say_reply(t, rc->code, rc->enh, rc->text);
		}
	}
	if (r->ok || r->code != 0)
		say_reply(t, r->code, r->enh, r->text);
	if (all && r->ok && r->code / 100 == 2) {
		t->outcome = OUT_SENT;
		snprintf(t->why, sizeof t->why, "%d %s %s", r->code, r->enh, r->text);
	} else {
		t->outcome = OUT_REFUSED;
		snprintf(t->why, sizeof t->why, "%s: %d %s %s", smtpc_stage_name(r->stage),
			 r->code, r->enh, r->text);
		for (size_t i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].code / 100 != 2 &&
			    (r->ok || r->stage == SMTPC_STAGE_RCPT)) {
				snprintf(t->why, sizeof t->why, "recipient <%s> refused: %d %s %s",
					 m->rcpts[i].addr, m->rcpts[i].code, m->rcpts[i].enh,
					 m->rcpts[i].text);
				break;
			}
	}
	smtpc_quit(c);
}

static void on_closed(void *arg)
{
	struct attempt *t = arg;

	t->closed = true;
}

static int parse_args(int argc, char **argv, struct send_args *a)
{
	a->timeout_ms = PROBE_DEFAULT_TIMEOUT_MS;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "-v") == 0 || strcmp(o, "--verbose") == 0) {
			a->verbose = true;
			continue;
		}
		if (v == NULL)
			return -1;
		i++;
		if (strcmp(o, "--server") == 0)
			a->server = v;
		else if (strcmp(o, "--port") == 0) {
			if (a->nports == PROBE_MAX_PORTS ||
			    probe_parse_port(v, &a->ports[a->nports++]) < 0)
				return -1;
		} else if (strcmp(o, "--from") == 0)
			a->from = v;
		else if (strcmp(o, "--to") == 0) {
			if (a->nto == SEND_MAX_RCPTS)
				return -1;
			a->to[a->nto++] = v;
		} else if (strcmp(o, "--subject") == 0)
			a->subject = v;
		else if (strcmp(o, "--body") == 0)
			a->body_file = v;
		else if (strcmp(o, "--attach") == 0) {
			if (a->nattach == SEND_MAX_ATTACH)
				return -1;
			a->attach[a->nattach++] = v;
		} else if (strcmp(o, "--auth") == 0 || strcmp(o, "--user") == 0)
			a->user = v;
		else if (strcmp(o, "--password-file") == 0)
			a->password_file = v;
		else if (strcmp(o, "--tls-name") == 0)
			a->tls_name = v;
		else if (strcmp(o, "--ca") == 0)
			a->ca = v;
		else if (strcmp(o, "--helo") == 0)
			a->helo = v;
		else if (strcmp(o, "--timeout") == 0) {
			if (probe_parse_timeout(v, &a->timeout_ms) < 0)
				return -1;
		} else
			return -1;
	}
	if (a->server == NULL || a->from == NULL || a->nto == 0 ||
	    (a->user == NULL) != (a->password_file == NULL))
		return -1;
	if (a->nports == 0) {
		static const struct probe_port order[] = {
			{ 587, SMTPC_TLS_ENCRYPT },
			{ 465, SMTPC_TLS_IMPLICIT },
			{ 2525, SMTPC_TLS_ENCRYPT },
			{ 25, SMTPC_TLS_MAY },
		};

		memcpy(a->ports, order, sizeof order);
		a->nports = sizeof order / sizeof order[0];
	}
	return 0;
}

int cli_send(int argc, char **argv)
{
	struct send_args a = { 0 };
	struct smtpc_rcpt rcpts[SEND_MAX_RCPTS];
	struct smtpc_msg msg = { 0 };
	struct out o = { 0 };
	struct iovec iov;
	char password[SMTPC_NAME_MAX + 1] = "", err[256];
	SSL_CTX *ctx;
	int status = 1;
	struct attempt t = { 0 };

	if (parse_args(argc, argv, &a) < 0) {
		fputs(USAGE, stderr);
		return 2;
	}
	if (a.password_file != NULL && probe_read_password(a.password_file, password,
							    sizeof password) < 0) {
		fprintf(stderr, "tern send: cannot read a password from %s: %s\n",
			a.password_file, strerror(errno));
		return 2;
	}
	if (build_message(&a, &o) < 0) {
		free(o.p);
		probe_wipe(password, sizeof password);
		return 1;
	}
	if ((ctx = tls_client_ctx("1.2", err, sizeof err)) == NULL ||
	    (a.ca != NULL && SSL_CTX_load_verify_locations(ctx, a.ca, NULL) != 1)) {
		fprintf(stderr, "tern send: TLS setup: %s\n",
			ctx == NULL ? err : "cannot load the --ca file");
		SSL_CTX_free(ctx);
		free(o.p);
		probe_wipe(password, sizeof password);
		return 2;
	}
	memset(rcpts, 0, sizeof rcpts);
	for (size_t i = 0; i < a.nto; i++)
		rcpts[i].addr = a.to[i];
	iov.iov_base = o.p;
	iov.iov_len = o.len;
	msg.mail_from = a.from;
	msg.rcpts = rcpts;
	msg.nrcpts = a.nto;
	msg.data = &iov;
	msg.ndata = 1;
	if (!is_7bit_text(o.p, o.len))
		msg.body = BODY_8BITMIME;

	for (size_t i = 0; i < a.nports; i++) {
		struct smtpc_opts so;
		struct sockaddr_storage ss;
		uv_loop_t loop;
		struct smtpc *c;

		memset(&t, 0, sizeof t);
		t.a = &a;
		t.msg = &msg;
		t.outcome = OUT_NEXT;
		for (size_t k = 0; k < a.nto; k++) {
			rcpts[k].code = 0;
			rcpts[k].done = false;
			rcpts[k].enh[0] = rcpts[k].text[0] = '\0';
		}
		vsay(&t, "*  trying %s port %u with %s (timeout %.1f s)\n", a.server,
		     a.ports[i].port, probe_mode_words(a.ports[i].mode), a.timeout_ms / 1000.0);
		if (probe_resolve(a.server, a.ports[i].port, &ss, err, sizeof err) < 0) {
			fprintf(stderr, "tern send: %s\n", err);
			break;
		}
		smtpc_opts_init(&so);
		probe_set_timeouts(&so, a.timeout_ms);
		so.helo_name = a.helo != NULL ? a.helo : "localhost";
		so.tls = a.ports[i].mode;
		so.tls_name = a.tls_name != NULL ? a.tls_name : a.server;
		so.tls_ctx = ctx;
		so.auth_user = a.user;
		so.auth_pass = a.user != NULL ? password : NULL;
		if (a.verbose) {
			so.trace = on_trace;
			so.trace_arg = &t;
		}
		uv_loop_init(&loop);
		c = smtpc_connect(&loop, (struct sockaddr *)&ss, &so,
				  &(struct smtpc_callbacks){ on_ready, on_done, on_closed }, &t,
				  err, sizeof err);
		if (c == NULL) {
			fprintf(stderr, "tern send: %s\n", err);
			uv_loop_close(&loop);
			break;
		}
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		if (t.outcome == OUT_SENT) {
			char qid[128];

			probe_queue_id(t.why, qid, sizeof qid);
			printf("sent: port %u (%s): %s\n", a.ports[i].port,
			       probe_mode_words(a.ports[i].mode), t.why);
			printf("queue id: %s\n", qid);
			status = 0;
			break;
		}
		fprintf(stderr, "tern send: port %u (%s): %s\n", a.ports[i].port,
			probe_mode_words(a.ports[i].mode), t.why);
		if (t.outcome == OUT_REFUSED)
			break;
	}
	if (status != 0 && t.outcome == OUT_NEXT)
		fprintf(stderr, "tern send: not sent: no port could be used\n");
	else if (status != 0)
		fprintf(stderr, "tern send: not sent\n");
	probe_wipe(password, sizeof password);
	SSL_CTX_free(ctx);
	free(o.p);
	return status;
}
