/* cmd_data.c - DATA and BDAT: the message into the spool, and the 250 only once it is durable. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../lib/log.h"
#include "msgauth.h"
#include "session.h"

static const struct smtp_reply r_need_mail = { 503, "5.5.1", "Send MAIL first" };
static const struct smtp_reply r_need_rcpt = { 503, "5.5.1", "Send RCPT first" };
static const struct smtp_reply r_no_valid = { 554, "5.5.1", "No valid recipients" };
static const struct smtp_reply r_data_syntax = { 501, "5.5.4", "Syntax: DATA (no arguments)" };
static const struct smtp_reply r_data_after_bdat = {
	503, "5.5.1", "DATA cannot follow BDAT in one transaction (RFC 3030 3)"
};
static const struct smtp_reply r_storage = {
	452, "4.3.1", "Insufficient system storage: the message was not accepted, try again later"
};
static const struct smtp_reply r_bare_lf = {
	554, "5.6.0", "Message refused: bare LF or CR in the message; lines must end with CR LF "
		      "(RFC 5321 2.3.8)"
};
static const struct smtp_reply r_long_line = {
	554, "5.6.0", "Message refused: a line is longer than 1000 octets (RFC 5321 4.5.3.1.6)"
};

static void reply_too_big(struct session *s)
{
	session_replyf(s, 552, "5.3.4", "Message size exceeds fixed limit of %llu octets",
		       (unsigned long long)s->w->conf->max_message_size);
}

static const struct smtp_reply *data_precheck(struct session *s)
{
	if (!s->tx.active)
		return &r_need_mail;
	if (s->tx.nrcpts == 0)
		return s->tx.rcpt_attempts > 0 ? &r_no_valid : &r_need_rcpt;
	return NULL;
}

/* RFC 5321 4.4 trace header, the first bytes of the stored message. */
static void received_header(struct session *s, struct buf *b)
{
	struct transaction *t = &s->tx;
	char date[64], rcpt[ADDR_PATH_MAX + 8];
	time_t now = time(NULL);
	struct tm tm;
	const char *proto;

	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 3848 / RFC 6531 4.3 protocol names. */
	static const char *const protos[2][2][2] = {	/* [utf8][tls][auth] */
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};

	if (!s->esmtp)
		proto = "SMTP";
	else
		proto = protos[t->mp.smtputf8][session_tls(s)][s->auth_user[0] != '\0'];
	buf_printf(b, "Received: from %s (%s%s])", s->helo,
		   s->peer.ss_family == AF_INET6 ? "[IPv6:" : "[", s->client_ip);
	if (session_tls(s))
		buf_printf(b, "\r\n\t(using %s with cipher %s)", s->tls_version, s->tls_cipher);
	buf_printf(b, "\r\n\tby %s (tern) with %s id %s", s->w->conf->hostname, proto,
		   t->msg.qid);
	if (t->nrcpts == 1) {
		addr_format(&t->rcpts[0].mb, rcpt, sizeof rcpt);
		buf_printf(b, "\r\n\tfor <%s>", rcpt);
	}
	buf_printf(b, "; %s\r\n", date);
}

static void envelope(struct session *s, struct buf *b)
{
	struct transaction *t = &s->tx;
	char addr[ADDR_PATH_MAX + 8], num[32];
	int n;

	n = snprintf(num, sizeof num, "%lld", (long long)time(NULL));
	qfile_put(b, QR_TIME, num, (size_t)n);
	addr_format(&t->from, addr, sizeof addr);
	qfile_put(b, QR_SENDER, addr, strlen(addr));
	for (unsigned i = 0; i < t->nrcpts; i++) {
		addr_format(&t->rcpts[i].mb, addr, sizeof addr);
		qfile_put_rcpt(b, addr, strlen(addr), t->rcpts[i].params.orcpt,
			       strlen(t->rcpts[i].params.orcpt), t->rcpts[i].params.notify);
	}
	if (t->mp.envid[0] != '\0')
		qfile_put(b, QR_ENVID, t->mp.envid, strlen(t->mp.envid));
	if (t->mp.ret != DSN_RET_UNSPECIFIED)
		qfile_put(b, QR_RET, t->mp.ret == DSN_RET_FULL ? "FULL" : "HDRS", 4);
	if (t->mp.body == BODY_8BITMIME)
		qfile_put(b, QR_BODY, "8BITMIME", 8);
	else if (t->mp.body == BODY_BINARYMIME)
		qfile_put(b, QR_BODY, "BINARYMIME", 10);
	if (t->mp.smtputf8)
		qfile_put(b, QR_SMTPUTF8, "", 0);
	qfile_put(b, QR_CLIENT, s->client_ip, strlen(s->client_ip));
	if (t->submitter[0] != '\0')
		qfile_put(b, QR_AUTH, t->submitter, strlen(t->submitter));
}

/* Open the spool file with envelope and trace header; 452 on failure. */
static int open_message(struct session *s)
{
	struct transaction *t = &s->tx;
	struct buf env, hdr;
	int r;

	buf_init(&env, SIZE_MAX);
	envelope(s, &env);
	r = spool_msg_open(&s->w->spool, &t->msg, &env);
	buf_free(&env);
	if (r == 0) {
		t->spooling = true;
		buf_init(&hdr, 4096);
		received_header(s, &hdr);
		spool_msg_write(&t->msg, hdr.data, hdr.len);
		buf_free(&hdr);
		if (t->msg.err == 0)
			return 0;
	}
	log_event(LOG_WARN, "event=spool-error session=%s error=\"%s\"", s->id, strerror(t->msg.err));
	session_reply(s, &r_storage);
	session_tx_reset(s);
	return -1;
}

static void on_committed(void *arg, int err)
{
	struct session *s = arg;
	struct transaction *t = &s->tx;
	uint64_t size = t->msg.msg_size;

	t->spooling = false;
	if (err != 0) {
		log_event(LOG_WARN, "event=spool-error session=%s qid=%s error=\"%s\"", s->id,
			  t->msg.qid, strerror(err));
		if (s->state != SESS_CLOSING)
			session_reply(s, &r_storage);
	} else {
		log_event(LOG_INFO, "event=queued session=%s qid=%s size=%llu nrcpt=%u%s", s->id,
			  t->msg.qid, (unsigned long long)size, t->nrcpts, t->auth_summary);
		if (t->ma != NULL)
			msgauth_record(t->ma);
		s->messages++;
		if (s->state != SESS_CLOSING)
			session_replyf(s, 250, "2.0.0", "Ok: queued as %s", t->msg.qid);
	}
	if (s->state != SESS_CLOSING && s->w->stopping) {
		session_replyf(s, 421, "4.3.2", "Server shutting down, try again later");
		session_close(s, "shutting-down");
	}
	if (s->state != SESS_CLOSING) {
		session_tx_reset(s);
		s->state = SESS_COMMAND;
		session_restart_timer(s);
		session_process(s);
	}
	session_unref(s);
}

/* The whole message is in the file: make it durable, answer when it is. */
static void durable(struct session *s)
{
	struct transaction *t = &s->tx;

	if (t->msg.err != 0) {
		log_event(LOG_WARN, "event=spool-error session=%s qid=%s error=\"%s\"", s->id,
			  t->msg.qid, strerror(t->msg.err));
		session_reply(s, &r_storage);
		session_tx_reset(s);
		s->state = SESS_COMMAND;
		return;
	}
	s->state = SESS_WAIT;
	session_ref(s);
	spool_msg_commit(&t->msg, on_committed, s);
}

/* The checks are done (msgauth.h): refuse, or store what they found. */
static void on_verdict(struct session *s, const struct msgauth_verdict *v)
{
	struct transaction *t = &s->tx;

	if (s->state == SESS_CLOSING) {
		session_unref(s);	/* session_close dropped the unfinished message */
		return;
	}
	s->state = SESS_COMMAND;
	snprintf(t->auth_summary, sizeof t->auth_summary, " %s", v->summary);
	if (v->action == MSGAUTH_REJECT || v->action == MSGAUTH_DEFER) {
		session_log(s, "data-refused", "reason=mailauth code=%d enh=%s %s", v->code, v->enh, v->summary);
		if (v->action == MSGAUTH_REJECT)	/* RFC 7489 7.2: reports count rejections too */
			msgauth_record(t->ma);
		session_replyf(s, v->code, v->enh, "%s", v->text);
		session_tx_reset(s);
	} else {
		spool_msg_trailer(&t->msg, QR_PREPEND, v->prepend->data, v->prepend->len);
		if (v->folder != NULL)
			spool_msg_trailer(&t->msg, QR_FOLDER, v->folder, strlen(v->folder));
		durable(s);
	}
	if (s->state == SESS_COMMAND) {
		session_restart_timer(s);
		session_process(s);
	}
	session_unref(s);
}

static void commit(struct session *s)
{
	struct transaction *t = &s->tx;

	if (t->ma == NULL || t->msg.err != 0) {
		durable(s);
		return;
	}
	/* SPF, DKIM keys and DMARC records may still be on their way: the
	 * client waits for its answer, other sessions do not. */
	s->state = SESS_WAIT;
	session_ref(s);
	msgauth_finish(t->ma, &t->msg, on_verdict);
}

void cmd_data(struct session *s, const struct smtp_cmd *c)
{
	const struct smtp_reply *r = data_precheck(s);

	if (r == NULL && c->arg.len > 0)
		r = &r_data_syntax;
	if (r == NULL && s->tx.bdat_started)
		r = &r_data_after_bdat;
	if (r != NULL) {
		session_error(s, r);
		return;
	}
	if (open_message(s) < 0)
		return;
	data_reader_init(&s->tx.dr, s->w->conf->max_message_size, s->w->conf->bare_newline);
	s->state = SESS_DATA;
	session_replyf(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	/* The client waits for 354 before it sends the message (RFC 2920 3.1). */
	session_flush(s);
}

/* Message octets to the spool, through the checks when they run. */
static void to_spool(struct session *s, const uint8_t *p, size_t n)
{
	struct transaction *t = &s->tx;

	if (t->ma != NULL)
		msgauth_write(t->ma, &t->msg, p, n);
	else
		spool_msg_write(&t->msg, p, n);
}

static void drain_to_spool(struct session *s)
{
	struct transaction *t = &s->tx;

	to_spool(s, t->dbuf.data, t->dbuf.len);
	buf_reset(&t->dbuf);
}

size_t data_input(struct session *s, const uint8_t *p, size_t n)
{
	struct transaction *t = &s->tx;
	struct data_reader *dr = &t->dr;
	size_t used;

	/* At most a quarter chunk per call: even if every octet were a bare
	 * LF turned into CR LF, dbuf cannot overflow before it is drained. */
	if (n > SESSION_SPOOL_CHUNK / 4)
		n = SESSION_SPOOL_CHUNK / 4;
	used = data_reader_feed(dr, p, n, &t->dbuf);
	if (t->dbuf.len >= SESSION_SPOOL_CHUNK && data_reader_ok(dr))
		drain_to_spool(s);
	if (!dr->done)
		return used;

	s->state = SESS_COMMAND;
	if (dr->oversize || dr->long_line || !data_reader_ok(dr)) {
		if (dr->oversize)
			reply_too_big(s);
		else if (dr->long_line)
			session_reply(s, &r_long_line);
		else
			session_reply(s, &r_bare_lf);
		session_log(s, "data-refused", "oversize=%d bare_lf=%d bare_cr=%d long_line=%d size=%llu",
			    dr->oversize, dr->bare_lf, dr->bare_cr, dr->long_line,
			    (unsigned long long)dr->size);
		session_tx_reset(s);
		return used;
	}
	drain_to_spool(s);
	commit(s);
	return used;
}

/* ---- BDAT (RFC 3030) ------------------------------------------------- */

static const struct smtp_reply r_bdat_too_big = { 552, "5.3.4", "Message too big" };
static const struct smtp_reply r_bdat_syntax = {
	501, "5.5.4", "Syntax: BDAT chunk-size [LAST]"
};

void cmd_bdat(struct session *s, const struct smtp_cmd *c)
{
	struct transaction *t = &s->tx;
	const struct smtp_reply *r;
	uint64_t size;
	bool last;

	if (smtp_parse_bdat(c->arg, &size, &last, &r) < 0) {
		/* Without a size the chunk cannot be skipped: what follows is
		 * read as commands, and each will fail on its own. */
		session_error(s, r ? r : &r_bdat_syntax);
		return;
	}
	t->bdat_left = size;
	t->bdat_last = last;
	t->bdat_refusal = data_precheck(s);
	if (t->bdat_refusal == NULL && size > s->w->conf->max_message_size - t->bdat_size)
		t->bdat_refusal = &r_bdat_too_big;
	t->bdat_refused = t->bdat_refusal != NULL;
	if (!t->bdat_refused && !t->bdat_started) {
		if (open_message(s) < 0) {
			/* open_message answered 452 and reset the transaction;
			 * the chunk's octets must still be read and dropped. */
			t->bdat_left = size;
			t->bdat_refused = true;
		} else {
			t->bdat_started = true;
		}
	}
	if (!t->bdat_refused)
		t->bdat_size += size;
	s->state = SESS_BDAT;
	if (size == 0)
		bdat_input(s, NULL, 0);
}

/* RFC 3030 2: exactly chunk-size octets follow, with no dot handling. */
size_t bdat_input(struct session *s, const uint8_t *p, size_t n)
{
	struct transaction *t = &s->tx;
	size_t k = n < t->bdat_left ? n : (size_t)t->bdat_left;

	if (!t->bdat_refused && k > 0)
		to_spool(s, p, k);
	t->bdat_left -= k;
	if (t->bdat_left > 0)
		return k;

	s->state = SESS_COMMAND;
	if (t->bdat_refused) {
		const struct smtp_reply *r = t->bdat_refusal;

		if (r == &r_bdat_too_big)
			reply_too_big(s);
		else if (r != NULL)
			session_error(s, r);
		/* A refused chunk fails the whole transaction (RFC 3030 3). */
		session_tx_reset(s);
		return k;
	}
	if (t->bdat_last) {
		commit(s);
		return k;
	}
	session_replyf(s, 250, "2.0.0", "%llu octets received",
		       (unsigned long long)(t->bdat_size));
	return k;
}
