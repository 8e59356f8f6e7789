/*
 * doctor.c - `tern doctor HOST`: why mail does or does not go through a
 * server. Probes the ports (25, 465, 587, 2525, or --port P[:MODE]...) in
 * parallel on one libuv loop, each connection bounded by --timeout
 * (default 10 s), then a second round on what the first found: TLS
 * 1.0/1.1 still accepted, and with credentials a real login (and with
 * --from/--to a test message) on the recommended port; TLS 1.0/1.1 only
 * also where TLS 1.2+ failed (a server that speaks nothing newer). With
 * --checks relay,smuggling a third round of raw conversations (probe_line)
 * on every port that greets in plaintext: RCPT to a foreign domain without
 * a login, then RSET (open relay?); a DATA whose only end is a bare LF dot,
 * never ended with CR LF . CR LF (SMTP smuggling?). Prints a report and
 * a verdict, or with --json one object (docs/doctor.md).
 *
 * Per port, in the first round, at once:
 *	a banner grab	plain TCP: connect, read the greeting, close (time to
 *			connect, time to banner, the banner's first line);
 *	plaintext	the SMTP client without TLS: EHLO's extensions before
 *			TLS (STARTTLS offered? AUTH offered in plaintext?);
 *	STARTTLS	the SMTP client with STARTTLS required;
 *	implicit TLS	the SMTP client with TLS from the first byte.
 * The certificate facts come from an OpenSSL info callback on a context of
 * the probe's own (the SMTP client does not hand out its SSL).
 *
 * Exit status: 0 when a submission port (not 25) works with TLS, a
 * certificate that verifies and names the host, AUTH offered inside TLS
 * and (when given) the credentials accepted (and the test message taken),
 * and no --checks finding (open relay, smuggling exposure); 1 otherwise; 2
 * for a usage error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>
#include <uv.h>

#include "../lib/tls_client.h"
#include "cli.h"
#include "probe.h"

#define USAGE                                                                         \
	"usage: tern doctor HOST [--port P[:MODE]]... [--user U --password-file F]\n"    \
	"                   [--from A --to B] [--tls-name NAME] [--ca PEM]\n"            \
	"                   [--checks relay,smuggling] [--relay-to ADDR]\n"             \
	"                   [--timeout SECONDS] [--json]\n"                              \
	"       MODE (what your client is set to): starttls, implicit, may, none\n"     \
	"       --checks relay: RCPT to a foreign domain without a login (open relay?)\n" \
	"       --checks smuggling: a bare LF dot in DATA (needs --to; SMTP smuggling)\n"

#define CHECK_RELAY 1u
#define CHECK_SMUGGLING 2u
#define DEFAULT_CHECK_FROM "tern-doctor@example.org"
#define DEFAULT_RELAY_TO "tern-doctor-relay-check@example.net"
#define SMUGGLE_WAIT_MS 2000

#define FILTERED_WORDS                                                              \
	"no answer: the port is probably filtered by a firewall or your ISP; 25 is "  \
	"blocked by most residential and cloud networks"

struct cert_info {
	bool have;
	int chain_len;
	char subject[256], issuer[256], not_after[64];
	long days_left;
	bool name_matches;
};

struct sub {
	struct doctor *d;
	struct smtpc_result r;
	bool have;
	SSL_CTX *ctx;
	struct cert_info cert;
	const char *name;
	/* login round */
	struct smtpc_msg *msg;
	bool sent;
	struct smtpc_result done;
};

enum pstatus { P_PENDING, P_OPEN, P_REFUSED, P_TIMEOUT, P_ERROR };

/* The result of one raw check (open relay, SMTP smuggling) on one port. */
enum cres { C_NONE, C_GOOD, C_BAD, C_UNSURE, C_SKIPPED };

struct check {
	enum cres res;
	char reply[320];	/* the deciding reply, "NNN text", or "" */
	char words[1024];
};

struct port {
	struct probe_port want;
	struct sockaddr_storage ss;
	/* banner grab */
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t creq;
	bool closing, connected, silent;
	uint64_t t0;
	enum pstatus status;
	double connect_ms, banner_ms;
	char rbuf[1024];
	size_t rlen;
	char banner[512];
	int banner_code;
	char neterr[160];
	struct sub plain, starttls, implicit, legacy;
	/* analysis */
	enum smtpc_tls actual;	/* ENCRYPT (STARTTLS), IMPLICIT, NONE; MAY: unknown */
	const struct sub *tls;	/* the probe with the TLS facts, or NULL */
	char mismatch[256];
	bool auth_plaintext, works, legacy_tried, old_tls_only;
	enum smtpc_tls legacy_mode;
	char why_not[256];
	/* --checks */
	struct check relay, smuggle;
};

struct doctor {
	const char *host, *user, *pwfile, *from, *to, *tls_name, *ca, *relay_to;
	unsigned checks;	/* CHECK_RELAY | CHECK_SMUGGLING */
	char password[SMTPC_NAME_MAX + 1];
	unsigned timeout_ms;
	bool json;
	struct port ports[PROBE_MAX_PORTS];
	size_t nports;
	uv_loop_t loop;
	struct sub login;
	struct port *best;
	bool login_tried, login_ok, msg_tried, msg_ok;
	char login_why[1200], msg_qid[128];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- certificate facts --------------------------------------------------- */

static void name_of(X509_NAME *n, char *out, size_t cap)
{
	BIO *b = BIO_new(BIO_s_mem());
	int len;

	out[0] = '\0';
	if (b == NULL)
		return;
	X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
	len = BIO_read(b, out, (int)cap - 1);
	out[len > 0 ? len : 0] = '\0';
	BIO_free(b);
}

static void info_cb(const SSL *ssl, int where, int ret)
{
	struct sub *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	X509 *x;
	STACK_OF(X509) *chain;
	int days = 0, secs = 0;
	struct tm tm;

	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_DONE) || s == NULL || s->cert.have)
		return;
	if ((x = SSL_get0_peer_certificate(ssl)) == NULL)
		return;
	s->cert.have = true;
	chain = SSL_get_peer_cert_chain(ssl);
	s->cert.chain_len = chain != NULL ? sk_X509_num(chain) : 1;
	name_of(X509_get_subject_name(x), s->cert.subject, sizeof s->cert.subject);
	name_of(X509_get_issuer_name(x), s->cert.issuer, sizeof s->cert.issuer);
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) == 1)
		s->cert.days_left = days == 0 && secs < 0 ? -1 : days;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		strftime(s->cert.not_after, sizeof s->cert.not_after, "%Y-%m-%d %H:%M:%S UTC",
			 &tm);
	if (s->name != NULL)
		s->cert.name_matches = X509_check_host(x, s->name, 0, 0, NULL) == 1 ||
				       X509_check_ip_asc(x, s->name, 0) == 1;
}

/* ---- the SMTP client probes ---------------------------------------------- */

static void sub_ready(struct smtpc *c, const struct smtpc_result *r, void *arg)
{
	struct sub *s = arg;

	s->r = *r;
	s->have = true;
	if (r->ok && s->msg != NULL && smtpc_send(c, s->msg) == 0)
		return;
	smtpc_quit(c);
}

static void sub_done(struct smtpc *c, struct smtpc_msg *m, const struct smtpc_result *r, void *arg)
{
	struct sub *s = arg;

	(void)m;
	s->done = *r;
	s->sent = true;
	smtpc_quit(c);
}

static int sub_start(struct doctor *d, struct port *p, struct sub *s, enum smtpc_tls mode,
		     const char *min_tls, bool legacy_only, bool login)
{
	struct smtpc_opts o;
	char err[256];

	s->d = d;
	s->name = d->tls_name != NULL ? d->tls_name : d->host;
	if (mode != SMTPC_TLS_NONE) {
		if ((s->ctx = tls_client_ctx(min_tls, err, sizeof err)) == NULL) {
			fprintf(stderr, "tern doctor: %s\n", err);
			return -1;
		}
		if (legacy_only)
			SSL_CTX_set_max_proto_version(s->ctx, TLS1_1_VERSION);
		if (d->ca != NULL && SSL_CTX_load_verify_locations(s->ctx, d->ca, NULL) != 1) {
			fprintf(stderr, "tern doctor: cannot load the CA file %s\n", d->ca);
			return -1;
		}
		SSL_CTX_set_app_data(s->ctx, s);
		SSL_CTX_set_info_callback(s->ctx, info_cb);
	}
	smtpc_opts_init(&o);
	probe_set_timeouts(&o, d->timeout_ms);
	o.helo_name = "tern-doctor.localhost";
	o.tls = mode;
	o.tls_ctx = s->ctx;
	o.tls_name = s->name;
	if (login) {
		o.auth_user = d->user;
		o.auth_pass = d->password;
	}
	if (smtpc_connect(&d->loop, (struct sockaddr *)&p->ss, &o,
			  &(struct smtpc_callbacks){ sub_ready, sub_done, NULL }, s, err,
			  sizeof err) == NULL) {
		fprintf(stderr, "tern doctor: %s\n", err);
		return -1;
	}
	return 0;
}

/* ---- the banner grab ------------------------------------------------------ */

static void bg_closed(uv_handle_t *h)
{
	(void)h;
}

static void bg_finish(struct port *p)
{
	if (p->closing)
		return;
	p->closing = true;
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->tcp, bg_closed);
	uv_close((uv_handle_t *)&p->timer, bg_closed);
}

static void bg_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct port *p = h->data;

	(void)hint;
	*b = uv_buf_init(p->rbuf + p->rlen, (unsigned)(sizeof p->rbuf - 1 - p->rlen));
}

static void bg_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct port *p = st->data;
	char *line, *lf;

	(void)b;
	if (n < 0) {
		snprintf(p->neterr, sizeof p->neterr,
			 "the server closed the connection without a greeting");
		bg_finish(p);
		return;
	}
	p->rlen += (size_t)n;
	p->rbuf[p->rlen] = '\0';
	for (line = p->rbuf; (lf = strchr(line, '\n')) != NULL; line = lf + 1) {
		if (lf - line >= 3 && (lf - line == 3 || line[3] == ' ' || line[3] == '\r')) {
			size_t k = 0;

			p->banner_code = atoi(line);
			p->banner_ms = (double)(now_ms() - p->t0);
			for (const char *q = p->rbuf; q < lf && k + 1 < sizeof p->banner; q++)
				if (*q == '\n')
					p->banner[k++] = '|';
				else if (*q >= 0x20 && *q < 0x7f)
					p->banner[k++] = *q;
			p->banner[k] = '\0';
			bg_finish(p);
			return;
		}
	}
	if (p->rlen >= sizeof p->rbuf - 1) {
		snprintf(p->neterr, sizeof p->neterr, "the greeting is too long");
		bg_finish(p);
	}
}

static void bg_connected(uv_connect_t *req, int status)
{
	struct port *p = req->data;

	if (p->closing)
		return;
	if (status < 0) {
		p->status = status == UV_ECONNREFUSED ? P_REFUSED
			    : status == UV_ETIMEDOUT  ? P_TIMEOUT
						      : P_ERROR;
		snprintf(p->neterr, sizeof p->neterr, "%s", uv_strerror(status));
		bg_finish(p);
		return;
	}
	p->connected = true;
	p->status = P_OPEN;
	p->connect_ms = (double)(now_ms() - p->t0);
	uv_read_start((uv_stream_t *)&p->tcp, bg_alloc, bg_read);
}

static void bg_timeout(uv_timer_t *t)
{
	struct port *p = t->data;

	if (!p->connected)
		p->status = P_TIMEOUT;
	else
		p->silent = true;
	bg_finish(p);
}

static void bg_start(struct doctor *d, struct port *p)
{
	int e;

	uv_tcp_init(&d->loop, &p->tcp);
	uv_timer_init(&d->loop, &p->timer);
	p->tcp.data = p->timer.data = p->creq.data = p;
	p->t0 = now_ms();
	uv_timer_start(&p->timer, bg_timeout, d->timeout_ms, 0);
	if ((e = uv_tcp_connect(&p->creq, &p->tcp, (struct sockaddr *)&p->ss, bg_connected)) < 0) {
		p->status = e == UV_ECONNREFUSED ? P_REFUSED : P_ERROR;
		snprintf(p->neterr, sizeof p->neterr, "%s", uv_strerror(e));
		bg_finish(p);
	}
}

/* ---- analysis ------------------------------------------------------------- */

static int rank(const struct port *p, size_t i)
{
	switch (p->want.port) {
	case 587:
		return 0;
	case 465:
		return 1;
	case 2525:
		return 2;
	case 25:
		return 1000;
	default:
		return 10 + (int)i;
	}
}

static bool cert_ok(const struct sub *s)
{
	return s->r.tls_verified && s->cert.name_matches && s->cert.days_left >= 0;
}

static void judge(struct port *p);

static void analyse(struct doctor *d, struct port *p)
{
	if (p->status == P_OPEN && p->silent && p->implicit.have && p->implicit.r.ok) {
		p->actual = SMTPC_TLS_IMPLICIT;
		p->tls = &p->implicit;
	} else if (p->status == P_OPEN && p->implicit.have && p->implicit.r.ok) {
		p->actual = SMTPC_TLS_IMPLICIT;	/* TLS, and a banner grab that raced */
		p->tls = &p->implicit;
	} else if (p->status == P_OPEN && p->banner_code != 0) {
		p->actual = p->plain.have && p->plain.r.ext.starttls ? SMTPC_TLS_ENCRYPT
								     : SMTPC_TLS_NONE;
		if (p->starttls.have && p->starttls.r.tls_version[0])
			p->tls = &p->starttls;
	} else {
		p->actual = SMTPC_TLS_MAY;	/* unknown */
		if (p->status == P_OPEN && p->silent)
			p->status = P_TIMEOUT;
	}
	judge(p);
	(void)d;
}

/* After round 2: a port where TLS 1.2+ failed but TLS 1.0/1.1 worked. */
static void old_tls_only(struct port *p, enum smtpc_tls mode)
{
	if (p->tls != NULL || !p->legacy.have || p->legacy.r.tls_version[0] == '\0')
		return;
	p->old_tls_only = true;
	p->tls = &p->legacy;
	p->status = P_OPEN;
	p->actual = mode;
	judge(p);
}

static void judge(struct port *p)
{
	p->mismatch[0] = '\0';
	if (p->actual == SMTPC_TLS_IMPLICIT && p->want.mode != SMTPC_TLS_IMPLICIT)
		snprintf(p->mismatch, sizeof p->mismatch,
			 "port %u expects TLS from the first byte: configure implicit TLS / SSL, "
			 "not STARTTLS", p->want.port);
	else if (p->actual == SMTPC_TLS_ENCRYPT && p->want.mode == SMTPC_TLS_IMPLICIT)
		snprintf(p->mismatch, sizeof p->mismatch,
			 "port %u starts in plaintext and offers STARTTLS: configure STARTTLS, "
			 "not implicit TLS / SSL", p->want.port);
	p->auth_plaintext = p->actual != SMTPC_TLS_IMPLICIT && p->plain.have &&
			    p->plain.r.esmtp && p->plain.r.ext.auth != 0;
	p->works = false;
	if (p->want.port == 25)
		snprintf(p->why_not, sizeof p->why_not, "port 25 is for mail between servers");
	else if (p->status != P_OPEN)
		snprintf(p->why_not, sizeof p->why_not, "not reachable");
	else if (p->tls == NULL)
		snprintf(p->why_not, sizeof p->why_not, "no TLS");
	else if (p->old_tls_only)
		snprintf(p->why_not, sizeof p->why_not,
			 "the server accepts only an old TLS version (%s): outdated, RFC 8996",
			 p->tls->r.tls_version);
	else if (!cert_ok(p->tls))
		snprintf(p->why_not, sizeof p->why_not, "the certificate does not verify: %s",
			 p->tls->cert.days_left < 0 ? "certificate has expired"
			 : !p->tls->cert.name_matches ? "hostname mismatch"
						      : p->tls->r.tls_verify_error);
	else if (p->tls->r.ext.auth == 0)
		snprintf(p->why_not, sizeof p->why_not, "no AUTH offered inside TLS");
	else
		p->works = true;
}

/* ---- --checks: the open relay and SMTP smuggling checks -------------------- */

/*
 * Raw conversations (probe_line_*), one port after the other, each bounded
 * by --timeout as a whole (the smuggling check waits SMUGGLE_WAIT_MS more
 * for a reply to the bare LF dot). Run on every open port that greets in
 * plaintext (not implicit TLS), without STARTTLS and without a login: what
 * anyone on the Internet can do.
 */

static void cset(struct check *c, enum cres res, int code, const char *text, const char *fmt,
		 ...) __attribute__((format(printf, 5, 6)));

static void cset(struct check *c, enum cres res, int code, const char *text, const char *fmt, ...)
{
	va_list ap;

	c->res = res;
	if (code != 0)
		snprintf(c->reply, sizeof c->reply, "%d %s", code, text);
	else
		c->reply[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(c->words, sizeof c->words, fmt, ap);
	va_end(ap);
}

static const char *line_err(int r)
{
	return r == PROBE_LINE_TIMEOUT ? "no reply in time"
	       : r == PROBE_LINE_CLOSED ? "the server closed the connection"
					: "a socket error or a reply that is not SMTP";
}

/* Send a command (CR LF added), read its reply. */
static int say(struct probe_line *l, const char *cmd, int *code, char *text, size_t cap)
{
	char line[1100];
	int r;

	snprintf(line, sizeof line, "%s\r\n", cmd);
	if ((r = probe_line_send(l, line, strlen(line))) < 0)
		return r;
	return probe_line_reply(l, ~0u, code, text, cap);
}

/* Connect, greeting, EHLO (HELO after a refused EHLO), MAIL FROM. 0 with
 * *code the reply to MAIL; -1 with c set (inconclusive) when it did not
 * get that far. */
static int begin(struct doctor *d, struct port *p, struct probe_line *l, struct check *c,
		 enum cres fail, const char *from, int *code, char *text, size_t cap)
{
	char err[256], cmd[600];
	int r;

	if (probe_line_open(l, &p->ss, d->timeout_ms, err, sizeof err) < 0) {
		cset(c, fail, 0, "", "%s: %s", fail == C_SKIPPED ? "not tested" : "inconclusive",
		     err);
		return -1;
	}
	if ((r = probe_line_reply(l, ~0u, code, text, cap)) < 0 || *code != 220) {
		cset(c, fail, r < 0 ? 0 : *code, text, "%s: no 220 greeting (%s)",
		     fail == C_SKIPPED ? "not tested" : "inconclusive",
		     r < 0 ? line_err(r) : "see the reply");
		return -1;
	}
	if ((r = say(l, "EHLO tern-doctor.localhost", code, text, cap)) == 0 && *code / 100 == 5)
		r = say(l, "HELO tern-doctor.localhost", code, text, cap);
	if (r < 0 || *code / 100 != 2) {
		cset(c, fail, r < 0 ? 0 : *code, text, "%s: EHLO/HELO failed (%s)",
		     fail == C_SKIPPED ? "not tested" : "inconclusive",
		     r < 0 ? line_err(r) : "see the reply");
		return -1;
	}
	snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>", from);
	if ((r = say(l, cmd, code, text, cap)) < 0) {
		cset(c, fail, 0, "", "%s: no reply to MAIL FROM (%s)",
		     fail == C_SKIPPED ? "not tested" : "inconclusive", line_err(r));
		return -1;
	}
	return 0;
}

static void end_politely(struct probe_line *l)
{
	char text[512];
	int code;

	if (say(l, "RSET", &code, text, sizeof text) == 0)
		say(l, "QUIT", &code, text, sizeof text);
	probe_line_close(l);
}

static void check_relay(struct doctor *d, struct port *p)
{
	struct check *c = &p->relay;
	const char *from = d->from != NULL ? d->from : DEFAULT_CHECK_FROM;
	const char *to = d->relay_to != NULL ? d->relay_to : DEFAULT_RELAY_TO;
	struct probe_line l;
	char text[512], cmd[600];
	int code, r;

	if (begin(d, p, &l, c, C_UNSURE, from, &code, text, sizeof text) < 0) {
		probe_line_close(&l);
		return;
	}
	if (code / 100 == 5) {
		cset(c, C_GOOD, code, text,
		     "refused (good): MAIL FROM:<%s> is refused without a login, so nothing can "
		     "be relayed", from);
		end_politely(&l);
		return;
	}
	if (code / 100 != 2) {
		cset(c, C_UNSURE, code, text, "inconclusive: temporary reply to MAIL FROM:<%s>",
		     from);
		end_politely(&l);
		return;
	}
	snprintf(cmd, sizeof cmd, "RCPT TO:<%s>", to);
	if ((r = say(&l, cmd, &code, text, sizeof text)) < 0)
		cset(c, C_UNSURE, 0, "", "inconclusive: no reply to RCPT TO:<%s> (%s)", to,
		     line_err(r));
	else if (code / 100 == 2)
		cset(c, C_BAD, code, text,
		     "OPEN RELAY: the server accepted RCPT TO:<%s>, a domain that is not its "
		     "own, from a client that did not log in: anyone can send spam through it "
		     "and it will be blocklisted; relay only for authenticated clients and your "
		     "own networks (nothing was sent: RSET after RCPT, never DATA)", to);
	else if (code / 100 == 5)
		cset(c, C_GOOD, code, text,
		     "refused (good): relaying to <%s> without a login is refused", to);
	else
		cset(c, C_UNSURE, code, text,
		     "inconclusive: temporary reply to RCPT TO:<%s> (greylisting or a "
		     "temporary problem): try again later", to);
	end_politely(&l);
}

static bool names_bare_lf(const char *text)
{
	return strstr(text, "5.6.") == text || strcasestr(text, "bare") != NULL ||
	       strcasestr(text, " LF") != NULL || strcasestr(text, "CR LF") != NULL ||
	       strcasestr(text, "CRLF") != NULL || strcasestr(text, "line end") != NULL ||
	       strcasestr(text, "newline") != NULL;
}

static void check_smuggling(struct doctor *d, struct port *p)
{
	struct check *c = &p->smuggle;
	const char *from = d->from != NULL ? d->from : DEFAULT_CHECK_FROM;
	struct probe_line l;
	char text[512], cmd[600], body[1024], date[64];
	int code, r;
	time_t now = time(NULL);
	struct tm tm;

	if (d->to == NULL) {
		cset(c, C_SKIPPED, 0, "",
		     "not tested: needs --from/--to (a recipient this server accepts)");
		return;
	}
	if (begin(d, p, &l, c, C_SKIPPED, from, &code, text, sizeof text) < 0) {
		probe_line_close(&l);
		return;
	}
	if (code / 100 != 2) {
		cset(c, C_SKIPPED, code, text, "not tested: MAIL FROM:<%s> refused on this port",
		     from);
		end_politely(&l);
		return;
	}
	snprintf(cmd, sizeof cmd, "RCPT TO:<%s>", d->to);
	if ((r = say(&l, cmd, &code, text, sizeof text)) < 0 || code / 100 != 2) {
		cset(c, C_SKIPPED, r < 0 ? 0 : code, text,
		     "not tested: RCPT TO:<%s> not accepted on this port without a login (%s)",
		     d->to, r < 0 ? line_err(r) : "see the reply");
		end_politely(&l);
		return;
	}
	if ((r = say(&l, "DATA", &code, text, sizeof text)) < 0 || code != 354) {
		cset(c, C_SKIPPED, r < 0 ? 0 : code, text, "not tested: DATA refused (%s)",
		     r < 0 ? line_err(r) : "see the reply");
		end_politely(&l);
		return;
	}
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	snprintf(body, sizeof body,
		 "From: <%s>\r\nTo: <%s>\r\nSubject: tern doctor smuggling check\r\n"
		 "Date: %s\r\nMessage-ID: <smuggling.%lld@tern-doctor.localhost>\r\n\r\nx\n.\n",
		 from, d->to, date, (long long)now);
	if ((r = probe_line_send(&l, body, strlen(body))) < 0) {
		cset(c, C_UNSURE, 0, "", "inconclusive: sending the message failed (%s)",
		     line_err(r));
		probe_line_close(&l);
		return;
	}
	l.deadline = now_ms() + SMUGGLE_WAIT_MS;
	r = probe_line_reply(&l, SMUGGLE_WAIT_MS, &code, text, sizeof text);
	if (r == PROBE_LINE_TIMEOUT)
		cset(c, C_GOOD, 0, "",
		     "not exposed (good): no reply within %.0f s to a bare LF dot (LF . LF): "
		     "the server still reads the message; only CR LF . CR LF ends DATA",
		     SMUGGLE_WAIT_MS / 1000.0);
	else if (r == PROBE_LINE_CLOSED)
		cset(c, C_GOOD, 0, "",
		     "not exposed (good): the server closed the connection at the bare LF dot");
	else if (r < 0)
		cset(c, C_UNSURE, 0, "", "inconclusive: %s", line_err(r));
	else if (code / 100 == 2)
		cset(c, C_BAD, code, text,
		     "EXPOSED to SMTP smuggling: the server took a bare LF dot (LF . LF) as the "
		     "end of DATA and accepted the message (CVE-2023-51764, CVE-2023-51765, "
		     "CVE-2023-51766): commands smuggled after it would be read as a second, "
		     "forged message; accept only CR LF . CR LF (Postfix: smtpd_forbid_bare_"
		     "newline = normalize; tern: bare_newline reject or normalize)");
	else if (names_bare_lf(text))
		cset(c, C_GOOD, code, text,
		     "not exposed (good): the server refused the bare LF line end");
	else if (code == 421)
		cset(c, C_UNSURE, code, text,
		     "inconclusive: the server closed the session during DATA");
	else
		cset(c, C_BAD, code, text,
		     "EXPOSED to SMTP smuggling (probably): the server answered before the real "
		     "end of data, so it took the bare LF dot (LF . LF) as the end of DATA "
		     "(CVE-2023-51764, CVE-2023-51765, CVE-2023-51766)");
	/* never CR LF . CR LF: an unterminated DATA is never delivered */
	probe_line_close(&l);
}

static void run_checks(struct doctor *d)
{
	for (size_t i = 0; i < d->nports; i++) {
		struct port *p = &d->ports[i];

		if (p->status != P_OPEN || p->banner_code != 220 || p->actual == SMTPC_TLS_IMPLICIT)
			continue;
		if (d->checks & CHECK_RELAY)
			check_relay(d, p);
		if (d->checks & CHECK_SMUGGLING)
			check_smuggling(d, p);
	}
}

static const char *cres_key(enum cres r)
{
	return r == C_GOOD ? "good" : r == C_BAD ? "bad" : r == C_UNSURE ? "inconclusive"
						 : "not_tested";
}

/* ---- output --------------------------------------------------------------- */

static void jstr(const char *s)
{
	putchar('"');
	for (; s != NULL && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void jkey(const char *k, const char *v, bool comma)
{
	jstr(k);
	putchar(':');
	if (v == NULL)
		printf("null");
	else
		jstr(v);
	if (comma)
		putchar(',');
}

static const char *status_key(enum pstatus s)
{
	return s == P_OPEN ? "open" : s == P_REFUSED ? "refused" : s == P_TIMEOUT ? "timeout" : "error";
}

static const char *status_words(const struct port *p, char *buf, size_t cap)
{
	switch (p->status) {
	case P_OPEN:
		return "open";
	case P_REFUSED:
		return "refused: nothing listens there (the server does not offer this port), or "
		       "a firewall rejects the connection";
	case P_TIMEOUT:
		snprintf(buf, cap, "%s%s", p->connected ? "connected, but no greeting and no "
							  "TLS in time; "
							: "",
			 FILTERED_WORDS);
		return buf;
	default:
		snprintf(buf, cap, "error: %s", p->neterr);
		return buf;
	}
}

static const char *actual_key(enum smtpc_tls t)
{
	return t == SMTPC_TLS_IMPLICIT ? "implicit" : t == SMTPC_TLS_ENCRYPT ? "starttls"
						  : t == SMTPC_TLS_NONE	      ? "none"
									      : "unknown";
}

static void settings(const struct doctor *d, const struct port *p)
{
	bool imp = p->actual == SMTPC_TLS_IMPLICIT;
	const char *u = d->user != NULL ? d->user : "you@example.com";

	printf("\nSettings to paste:\n");
	printf("  Python smtplib:\n");
	if (imp)
		printf("    s = smtplib.SMTP_SSL(\"%s\", %u)\n", d->host, p->want.port);
	else
		printf("    s = smtplib.SMTP(\"%s\", %u); s.starttls()\n", d->host, p->want.port);
	printf("    s.login(\"%s\", password)\n", u);
	printf("  Nodemailer:\n    nodemailer.createTransport({ host: \"%s\", port: %u, "
	       "secure: %s, %sauth: { user: \"%s\", pass } })\n",
	       d->host, p->want.port, imp ? "true" : "false", imp ? "" : "requireTLS: true, ", u);
	printf("  PHPMailer:\n    $mail->Host = '%s'; $mail->Port = %u; $mail->SMTPAuth = true;\n"
	       "    $mail->SMTPSecure = PHPMailer::%s; $mail->Username = '%s';\n",
	       d->host, p->want.port, imp ? "ENCRYPTION_SMTPS" : "ENCRYPTION_STARTTLS", u);
	printf("  Postfix relayhost (main.cf):\n    relayhost = [%s]:%u\n", d->host, p->want.port);
	if (imp)
		printf("    smtp_tls_wrappermode = yes\n    smtp_tls_security_level = encrypt\n");
	else
		printf("    smtp_tls_security_level = encrypt\n");
	printf("    smtp_sasl_auth_enable = yes\n"
	       "    smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd\n"
	       "    smtp_sasl_security_options = noanonymous\n");
}

static void verdict_text(const struct doctor *d, char *out, size_t cap)
{
	const struct port *b = d->best;

	if (b == NULL) {
		snprintf(out, cap, "no submission port works with TLS%s",
			 d->user != NULL ? " and these credentials" : "");
		return;
	}
	if (d->login_tried && !d->login_ok) {
		snprintf(out, cap, "port %u with %s works, but the login failed: %s", b->want.port,
			 probe_mode_words(b->actual), d->login_why);
		return;
	}
	if (d->msg_tried && !d->msg_ok) {
		snprintf(out, cap, "port %u with %s works, but the test message was refused: %s",
			 b->want.port, probe_mode_words(b->actual), d->login_why);
		return;
	}
	snprintf(out, cap, "use port %u with %s%s", b->want.port, probe_mode_words(b->actual),
		 b->want.port == 587	? " (the first choice for mail submission)"
		 : b->want.port == 465	? " (implicit TLS, RFC 8314; 587 does not work here)"
		 : b->want.port == 2525 ? " (587 and 465 do not work here: probably blocked)"
					: "");
}

static void print_port_text(const struct doctor *d, const struct port *p)
{
	char buf[512], ext[512], mechs[128];

	(void)d;
	printf("port %u (your client: %s): %s\n", p->want.port, probe_mode_words(p->want.mode),
	       status_words(p, buf, sizeof buf));
	if (p->status != P_OPEN)
		return;
	printf("  connected in %.0f ms", p->connect_ms);
	if (p->banner_code != 0)
		printf("; banner after %.0f ms: %s\n", p->banner_ms, p->banner);
	else
		printf("; no banner: the server waits for the client to speak first\n");
	if (p->actual == SMTPC_TLS_IMPLICIT)
		printf("  TLS on connect (implicit TLS / SSL)\n");
	else if (p->actual == SMTPC_TLS_ENCRYPT)
		printf("  plaintext SMTP, STARTTLS offered\n");
	else if (p->actual == SMTPC_TLS_NONE)
		printf("  plaintext SMTP, STARTTLS NOT offered: no encryption on this port\n");
	if (p->mismatch[0])
		printf("  MISMATCH: %s\n", p->mismatch);
	if (p->plain.have && p->plain.r.esmtp && p->actual != SMTPC_TLS_IMPLICIT) {
		probe_ext_names(&p->plain.r.ext, true, ext, sizeof ext);
		printf("  EHLO before TLS: %s\n", ext[0] ? ext : "(no extensions)");
	}
	if (p->auth_plaintext) {
		probe_auth_names(p->plain.r.ext.auth, mechs, sizeof mechs);
		printf("  RISK: AUTH (%s) offered before TLS: a client may send the password in "
		       "clear text\n", mechs);
	}
	if (p->old_tls_only)
		printf("  OLD TLS ONLY: the server accepts only an old TLS version (%s; TLS 1.2 "
		       "and 1.3 refused): FLAGGED: outdated, RFC 8996; clients that require "
		       "TLS 1.2 cannot connect\n", p->tls->r.tls_version);
	if (p->tls != NULL) {
		const struct sub *s = p->tls;

		printf("  TLS: %s, %s%s\n", s->r.tls_version, s->r.tls_cipher,
		       strcmp(s->r.tls_version, "TLSv1") == 0 ||
				       strcmp(s->r.tls_version, "TLSv1.1") == 0
			       ? " (OUTDATED)"
			       : "");
		if (p->legacy_tried)
			printf("  TLS 1.0/1.1: %s\n",
			       p->legacy.have && p->legacy.r.tls_version[0]
				       ? "still accepted (FLAGGED: outdated, RFC 8996; disable them)"
				       : "refused (good)");
		if (s->cert.have) {
			printf("  certificate: %s, issued by %s, chain of %d\n", s->cert.subject,
			       s->cert.issuer, s->cert.chain_len);
			printf("  verifies against the CA store: %s%s%s\n",
			       s->r.tls_verified ? "yes" : "NO", s->r.tls_verified ? "" : ": ",
			       s->r.tls_verify_error);
			printf("  name matches %s: %s\n", s->name, s->cert.name_matches ? "yes" : "NO");
			if (s->cert.days_left < 0)
				printf("  EXPIRED %ld days ago (%s): certificate has expired\n",
				       -s->cert.days_left, s->cert.not_after);
			else
				printf("  expires in %ld days (%s)%s\n", s->cert.days_left,
				       s->cert.not_after, s->cert.days_left < 14 ? " (SOON)" : "");
		}
		probe_ext_names(&s->r.ext, s->r.esmtp, ext, sizeof ext);
		printf("  EHLO after TLS: %s\n", ext[0] ? ext : "(no extensions)");
		probe_auth_names(s->r.ext.auth, mechs, sizeof mechs);
		printf("  AUTH inside TLS: %s\n", mechs[0] ? mechs : "none offered");
	}
	printf("  submission: %s%s\n", p->works ? "works" : "does not work: ",
	       p->works ? "" : p->why_not);
	if (p->relay.res != C_NONE)
		printf("  open relay check: %s%s%s%s\n", p->relay.words,
		       p->relay.reply[0] ? " (reply: " : "", p->relay.reply,
		       p->relay.reply[0] ? ")" : "");
	if (p->smuggle.res != C_NONE)
		printf("  SMTP smuggling check: %s%s%s%s\n", p->smuggle.words,
		       p->smuggle.reply[0] ? " (reply: " : "", p->smuggle.reply,
		       p->smuggle.reply[0] ? ")" : "");
}

static void json_checks(const struct doctor *d, unsigned which)
{
	bool first = true;

	if (!(d->checks & which)) {
		printf("null");
		return;
	}
	printf("[");
	for (size_t i = 0; i < d->nports; i++) {
		const struct port *p = &d->ports[i];
		const struct check *c = which == CHECK_RELAY ? &p->relay : &p->smuggle;

		if (c->res == C_NONE)
			continue;
		printf("%s{\"port\":%u,", first ? "" : ",", p->want.port);
		jkey("result", cres_key(c->res), true);
		jkey("reply", c->reply[0] ? c->reply : NULL, true);
		jkey("words", c->words, false);
		printf("}");
		first = false;
	}
	printf("]");
}

static void json_sub_tls(const struct sub *s, const struct port *p)
{
	char ext[512], mechs[128];

	printf("\"tls\":{");
	jkey("version", s->r.tls_version, true);
	jkey("cipher", s->r.tls_cipher, true);
	printf("\"verified\":%s,", s->r.tls_verified ? "true" : "false");
	jkey("verify_error", s->r.tls_verify_error, true);
	printf("\"legacy_tls_accepted\":%s,",
	       !p->legacy_tried ? "null" : p->legacy.have && p->legacy.r.tls_version[0] ? "true"
															      : "false");
	printf("\"certificate\":");
	if (s->cert.have) {
		printf("{");
		jkey("subject", s->cert.subject, true);
		jkey("issuer", s->cert.issuer, true);
		printf("\"chain_length\":%d,", s->cert.chain_len);
		jkey("name", s->name, true);
		printf("\"name_matches\":%s,", s->cert.name_matches ? "true" : "false");
		jkey("not_after", s->cert.not_after, true);
		printf("\"days_left\":%ld,\"expired\":%s}", s->cert.days_left,
		       s->cert.days_left < 0 ? "true" : "false");
	} else {
		printf("null");
	}
	probe_ext_names(&s->r.ext, s->r.esmtp, ext, sizeof ext);
	printf(",");
	jkey("ehlo_after_tls", ext, true);
	probe_auth_names(s->r.ext.auth, mechs, sizeof mechs);
	jkey("auth_after_tls", mechs, false);
	printf("}");
}

static void print_json(const struct doctor *d, bool ok, const char *verdict)
{
	char buf[512], ext[512], mechs[128];

	printf("{\"schema\":1,");
	jkey("host", d->host, true);
	printf("\"timeout_ms\":%u,\"ports\":[", d->timeout_ms);
	for (size_t i = 0; i < d->nports; i++) {
		const struct port *p = &d->ports[i];

		printf("%s{\"port\":%u,", i ? "," : "", p->want.port);
		jkey("expected", probe_mode_key(p->want.mode), true);
		jkey("status", status_key(p->status), true);
		jkey("status_words", status_words(p, buf, sizeof buf), true);
		if (p->status == P_OPEN)
			printf("\"connect_ms\":%.0f,", p->connect_ms);
		else
			printf("\"connect_ms\":null,");
		if (p->banner_code != 0)
			printf("\"banner_ms\":%.0f,", p->banner_ms);
		else
			printf("\"banner_ms\":null,");
		jkey("banner", p->banner_code ? p->banner : NULL, true);
		jkey("tls_mode", actual_key(p->actual), true);
		printf("\"starttls_offered\":%s,",
		       p->plain.have && p->plain.r.ext.starttls ? "true" : "false");
		jkey("mismatch", p->mismatch[0] ? p->mismatch : NULL, true);
		probe_ext_names(&p->plain.r.ext, p->plain.have && p->plain.r.esmtp, ext, sizeof ext);
		jkey("ehlo_before_tls", p->actual == SMTPC_TLS_IMPLICIT ? NULL : ext, true);
		probe_auth_names(p->plain.have ? p->plain.r.ext.auth : 0, mechs, sizeof mechs);
		jkey("auth_before_tls", p->actual == SMTPC_TLS_IMPLICIT ? NULL : mechs, true);
		printf("\"auth_plaintext_risk\":%s,", p->auth_plaintext ? "true" : "false");
		printf("\"old_tls_only\":%s,", p->old_tls_only ? "true" : "false");
		if (p->tls != NULL)
			json_sub_tls(p->tls, p);
		else
			printf("\"tls\":null");
		printf(",\"works\":%s,", p->works ? "true" : "false");
		jkey("why_not", p->works ? NULL : p->why_not, false);
		printf("}");
	}
	printf("],\"login\":");
	if (d->login_tried) {
		printf("{\"port\":%u,\"ok\":%s,\"code\":%d,", d->best->want.port,
		       d->login_ok ? "true" : "false", d->login.r.code);
		jkey("mechanism", d->login.r.auth_mech, true);
		jkey("reply", d->login.r.text, true);
		jkey("diagnosis", d->login_ok ? NULL : d->login_why, false);
		printf("}");
	} else {
		printf("null");
	}
	printf(",\"test_message\":");
	if (d->msg_tried) {
		printf("{\"ok\":%s,\"code\":%d,", d->msg_ok ? "true" : "false", d->login.done.code);
		jkey("reply", d->login.done.text, true);
		jkey("queue_id", d->msg_ok ? d->msg_qid : NULL, false);
		printf("}");
	} else {
		printf("null");
	}
	printf(",\"checks\":");
	if (d->checks == 0) {
		printf("null");
	} else {
		printf("{\"relay\":");
		json_checks(d, CHECK_RELAY);
		printf(",\"smuggling\":");
		json_checks(d, CHECK_SMUGGLING);
		printf("}");
	}
	printf(",\"verdict\":{\"port\":");
	if (d->best != NULL)
		printf("%u,", d->best->want.port);
	else
		printf("null,");
	jkey("tls_mode", d->best != NULL ? actual_key(d->best->actual) : NULL, true);
	jkey("text", verdict, false);
	printf("},\"ok\":%s}\n", ok ? "true" : "false");
}

/* ---- main ----------------------------------------------------------------- */

static int parse_args(int argc, char **argv, struct doctor *d)
{
	d->timeout_ms = PROBE_DEFAULT_TIMEOUT_MS;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--json") == 0) {
			d->json = true;
			continue;
		}
		if (o[0] != '-') {
			if (d->host != NULL)
				return -1;
			d->host = o;
			continue;
		}
		if (v == NULL)
			return -1;
		i++;
		if (strcmp(o, "--port") == 0) {
			if (d->nports == PROBE_MAX_PORTS ||
			    probe_parse_port(v, &d->ports[d->nports++].want) < 0)
				return -1;
		} else if (strcmp(o, "--user") == 0) {
			d->user = v;
		} else if (strcmp(o, "--password-file") == 0) {
			d->pwfile = v;
		} else if (strcmp(o, "--from") == 0) {
			d->from = v;
		} else if (strcmp(o, "--to") == 0) {
			d->to = v;
		} else if (strcmp(o, "--tls-name") == 0) {
			d->tls_name = v;
		} else if (strcmp(o, "--ca") == 0) {
			d->ca = v;
		} else if (strcmp(o, "--relay-to") == 0) {
			if (strchr(v, '@') == NULL || strpbrk(v, "<>\r\n \t") != NULL)
				return -1;
			d->relay_to = v;
		} else if (strcmp(o, "--checks") == 0) {
			char list[128], *save = NULL;

			if (strlen(v) >= sizeof list)
				return -1;
			strcpy(list, v);
			for (char *w = strtok_r(list, ",", &save); w != NULL;
			     w = strtok_r(NULL, ",", &save)) {
				if (strcmp(w, "relay") == 0)
					d->checks |= CHECK_RELAY;
				else if (strcmp(w, "smuggling") == 0)
					d->checks |= CHECK_SMUGGLING;
				else if (strcmp(w, "all") == 0)
					d->checks |= CHECK_RELAY | CHECK_SMUGGLING;
				else
					return -1;
			}
			if (d->checks == 0)
				return -1;
		} else if (strcmp(o, "--timeout") == 0) {
			if (probe_parse_timeout(v, &d->timeout_ms) < 0)
				return -1;
		} else {
			return -1;
		}
	}
	if (d->host == NULL || (d->user == NULL) != (d->pwfile == NULL) ||
	    (d->from == NULL) != (d->to == NULL))
		return -1;
	/* addresses go into raw command lines: no CR, LF, angle brackets */
	if ((d->from != NULL && strpbrk(d->from, "<>\r\n") != NULL) ||
	    (d->to != NULL && strpbrk(d->to, "<>\r\n") != NULL))
		return -1;
	if (d->nports == 0) {
		static const unsigned def[] = { 25, 465, 587, 2525 };

		for (size_t i = 0; i < 4; i++)
			probe_parse_port(def[i] == 465 ? "465" : def[i] == 25 ? "25:starttls"
								  : def[i] == 587 ? "587"
										  : "2525",
					 &d->ports[d->nports++].want);
	}
	return 0;
}

static void free_subs(struct doctor *d)
{
	for (size_t i = 0; i < d->nports; i++) {
		struct port *p = &d->ports[i];

		SSL_CTX_free(p->starttls.ctx);
		SSL_CTX_free(p->implicit.ctx);
		SSL_CTX_free(p->legacy.ctx);
	}
	SSL_CTX_free(d->login.ctx);
}

int cli_doctor(int argc, char **argv)
{
	static struct doctor d;
	struct smtpc_rcpt rcpt = { 0 };
	struct smtpc_msg msg = { 0 };
	struct iovec iov;
	char err[256], verdict[1600], body[1024], date[64];
	bool ok;
	int best_rank = 1 << 30;

	memset(&d, 0, sizeof d);
	if (parse_args(argc, argv, &d) < 0) {
		fputs(USAGE, stderr);
		return 2;
	}
	if (d.pwfile != NULL &&
	    probe_read_password(d.pwfile, d.password, sizeof d.password) < 0) {
		fprintf(stderr, "tern doctor: cannot read a password from %s: %s\n", d.pwfile,
			strerror(errno));
		return 2;
	}
	for (size_t i = 0; i < d.nports; i++)
		if (probe_resolve(d.host, d.ports[i].want.port, &d.ports[i].ss, err, sizeof err) < 0) {
			fprintf(stderr, "tern doctor: %s\n", err);
			return 1;
		}
	uv_loop_init(&d.loop);
	/* round 1: everything at once */
	for (size_t i = 0; i < d.nports; i++) {
		struct port *p = &d.ports[i];

		bg_start(&d, p);
		if (sub_start(&d, p, &p->plain, SMTPC_TLS_NONE, "1.2", false, false) < 0 ||
		    sub_start(&d, p, &p->starttls, SMTPC_TLS_ENCRYPT, "1.2", false, false) < 0 ||
		    sub_start(&d, p, &p->implicit, SMTPC_TLS_IMPLICIT, "1.2", false, false) < 0)
			goto fail;
	}
	uv_run(&d.loop, UV_RUN_DEFAULT);
	for (size_t i = 0; i < d.nports; i++) {
		struct port *p = &d.ports[i];

		analyse(&d, p);
		if (p->works && rank(p, i) < best_rank) {
			best_rank = rank(p, i);
			d.best = p;
		}
	}
	/* round 2: old TLS versions; the login and the test message */
	for (size_t i = 0; i < d.nports; i++) {
		struct port *p = &d.ports[i];

		enum smtpc_tls mode;

		if (p->tls != NULL)
			mode = p->actual;
		else if (p->status == P_TIMEOUT && p->connected)
			mode = SMTPC_TLS_IMPLICIT;	/* silent: TLS 1.0/1.1 only? */
		else if (p->status == P_OPEN && p->actual == SMTPC_TLS_ENCRYPT)
			mode = SMTPC_TLS_ENCRYPT;	/* STARTTLS offered, TLS 1.2+ failed */
		else
			continue;
		p->legacy_mode = mode;
		p->legacy_tried = true;
		if (sub_start(&d, p, &p->legacy, mode, "1.0", true, false) < 0)
			goto fail;
	}
	if (d.best != NULL && d.user != NULL) {
		d.login_tried = true;
		if (d.from != NULL) {
			time_t now = time(NULL);
			struct tm tm;

			localtime_r(&now, &tm);
			strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
			snprintf(body, sizeof body,
				 "From: <%s>\r\nTo: <%s>\r\nSubject: tern doctor test message\r\n"
				 "Date: %s\r\nMessage-ID: <doctor.%lld@tern-doctor.localhost>\r\n"
				 "MIME-Version: 1.0\r\n\r\nThis is a test message sent by tern "
				 "doctor.\r\n",
				 d.from, d.to, date, (long long)now);
			rcpt.addr = d.to;
			iov.iov_base = body;
			iov.iov_len = strlen(body);
			msg.mail_from = d.from;
			msg.rcpts = &rcpt;
			msg.nrcpts = 1;
			msg.data = &iov;
			msg.ndata = 1;
			d.login.msg = &msg;
		}
		if (sub_start(&d, d.best, &d.login, d.best->actual, "1.2", false, true) < 0)
			goto fail;
	}
	uv_run(&d.loop, UV_RUN_DEFAULT);
	for (size_t i = 0; i < d.nports; i++)
		if (d.ports[i].legacy_tried)
			old_tls_only(&d.ports[i], d.ports[i].legacy_mode);
	/* round 3: the raw checks, one port after the other */
	run_checks(&d);
	if (d.login_tried) {
		const struct smtpc_result *r = &d.login.r;

		d.login_ok = d.login.have && r->ok && r->auth_mech[0] != '\0';
		if (!d.login_ok)
			snprintf(d.login_why, sizeof d.login_why, "%s (reply: %d %s %s)",
				 d.login.have && r->ok ? "the server offers no AUTH"
				 : r->stage == SMTPC_STAGE_AUTH
					 ? probe_auth_words(r->code, r->enh, r->text)
					 : "the connection failed before the login",
				 r->code, r->enh, r->text);
		if (d.login_ok && d.from != NULL) {
			d.msg_tried = true;
			d.msg_ok = d.login.sent && d.login.done.ok && rcpt.code / 100 == 2;
			if (d.msg_ok)
				probe_queue_id(d.login.done.text, d.msg_qid, sizeof d.msg_qid);
			else
				snprintf(d.login_why, sizeof d.login_why, "%d %s %s",
					 rcpt.code ? rcpt.code : d.login.done.code,
					 rcpt.code ? rcpt.enh : d.login.done.enh,
					 rcpt.code ? rcpt.text : d.login.done.text);
		}
	}
	ok = d.best != NULL && (!d.login_tried || d.login_ok) && (!d.msg_tried || d.msg_ok);
	for (size_t i = 0; i < d.nports; i++)
		if (d.ports[i].relay.res == C_BAD || d.ports[i].smuggle.res == C_BAD)
			ok = false;
	verdict_text(&d, verdict, sizeof verdict);
	for (size_t i = 0; i < d.nports; i++) {
		size_t n = strlen(verdict);

		if (d.ports[i].relay.res == C_BAD)
			snprintf(verdict + n, sizeof verdict - n,
				 "; SERIOUS: port %u is an OPEN RELAY", d.ports[i].want.port);
		n = strlen(verdict);
		if (d.ports[i].smuggle.res == C_BAD)
			snprintf(verdict + n, sizeof verdict - n,
				 "; SERIOUS: port %u is EXPOSED to SMTP smuggling (bare LF dot)",
				 d.ports[i].want.port);
	}
	if (d.json) {
		print_json(&d, ok, verdict);
	} else {
		printf("tern doctor: %s (timeout %.1f s per probe)\n\n", d.host,
		       d.timeout_ms / 1000.0);
		for (size_t i = 0; i < d.nports; i++)
			print_port_text(&d, &d.ports[i]);
		if (d.login_tried) {
			printf("\nlogin as %s on port %u: %s%s\n", d.user, d.best->want.port,
			       d.login_ok ? "ok, " : "FAILED: ",
			       d.login_ok ? d.login.r.auth_mech : d.login_why);
		}
		if (d.msg_tried) {
			if (d.msg_ok)
				printf("test message to %s: accepted, queue id %s (%d %s)\n", d.to,
				       d.msg_qid, d.login.done.code, d.login.done.text);
			else
				printf("test message to %s: REFUSED: %s\n", d.to, d.login_why);
		}
		printf("\nVERDICT: %s\n", verdict);
		if (d.best == NULL)
			printf("  (order of preference: 587 with STARTTLS; 465 with implicit TLS; "
			       "2525 when 587 is blocked; 25 only between servers)\n");
		if (ok)
			settings(&d, d.best);
	}
	free_subs(&d);
	uv_loop_close(&d.loop);
	probe_wipe(d.password, sizeof d.password);
	return ok ? 0 : 1;
fail:
	uv_run(&d.loop, UV_RUN_DEFAULT);
	free_subs(&d);
	uv_loop_close(&d.loop);
	probe_wipe(d.password, sizeof d.password);
	return 1;
}
