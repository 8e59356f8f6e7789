/* cmd_mail.c - MAIL FROM: opens a transaction (RFC 5321 4.1.1.2). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../lib/log.h"
#include "msgauth.h"
#include "session.h"

static const struct smtp_reply r_nested = { 503, "5.5.1", "Nested MAIL command: send RSET first" };
static const struct smtp_reply r_tls_required = {
	530, "5.7.0", "Must issue a STARTTLS command first: this port needs TLS before mail"
};
static const struct smtp_reply r_auth_required = {
	530, "5.7.0", "Authentication required: this is a submission port; log in first"
};
static const struct smtp_reply r_not_owned = {
	553, "5.7.1", "Sender address not owned by user: send as the address you log in with"
};
static const struct smtp_reply r_ok = { 250, "2.1.0", "Ok" };

/*
 * An authenticated user sends only as itself: "alice@example.com" owns
 * that address; a bare "alice" owns alice@ every local domain; and the
 * addresses and @domains of its senders= field in the users file. The null
 * sender is nobody's (bounces come from the server, not from clients).
 */
static bool owns(const struct session *s, const struct mailbox *from)
{
	char addr[ADDR_PATH_MAX + 8];
	const char *at;

	if (from->is_null)
		return false;
	addr_format(from, addr, sizeof addr);
	if (strcasecmp(addr, s->auth_user) == 0 ||
	    users_may_send_as(users_find(s->w->users, s->auth_user), addr))
		return true;
	at = strchr(s->auth_user, '@');
	return at == NULL && strcasecmp(from->local, s->auth_user) == 0 &&
	       conf_is_local_domain(s->w->conf, from->domain);
}

/*
 * RFC 4954 5: AUTH= names the message's original submitter. It is believed
 * only from an authenticated client and only for an address that client
 * owns; anything else counts as AUTH=<> (submitter unknown). Without the
 * parameter an authenticated client is itself the submitter. An
 * unauthenticated client's AUTH= is ignored, as the RFC requires.
 */
static void set_submitter(struct session *s, struct transaction *t)
{
	char decoded[SMTP_AUTHPARAM_MAX + 3];
	struct mailbox mb;
	size_t used;
	ssize_t n;

	t->submitter[0] = '\0';
	if (s->auth_user[0] == '\0')
		return;
	if (t->mp.auth[0] == '\0') {
		addr_format(&t->from, t->submitter, sizeof t->submitter);
		return;
	}
	memcpy(t->submitter, "<>", 3);
	if (strcmp(t->mp.auth, "<>") == 0)
		return;
	decoded[0] = '<';
	n = smtp_xtext_decode((struct slice){ (const uint8_t *)t->mp.auth, strlen(t->mp.auth) },
			      decoded + 1, sizeof decoded - 2);
	if (n <= 0)
		return;
	decoded[n + 1] = '>';
	if (addr_parse_path((const uint8_t *)decoded, (size_t)n + 2,
			    t->mp.smtputf8 ? ADDR_UTF8_OK : 0, &mb, &used) == ADDR_OK &&
	    used == (size_t)n + 2 && owns(s, &mb))
		addr_format(&mb, t->submitter, sizeof t->submitter);
}

/* MAIL FROM is accepted: the transaction begins. */
static void mail_accept(struct session *s)
{
	struct transaction *t = &s->tx;
	char addr[ADDR_PATH_MAX + 8];
	struct buf b;

	t->active = true;
	if (log_enabled(LOG_INFO)) {
		addr_format(&t->from, addr, sizeof addr);
		buf_init(&b, 2048);
		buf_printf(&b, "event=mail session=%s", s->id);
		log_kv_escaped(&b, "from", addr, strlen(addr));
		if (s->auth_user[0] != '\0') {
			log_kv_escaped(&b, "auth", s->auth_user, strlen(s->auth_user));
			log_kv_escaped(&b, "submitter", t->submitter, strlen(t->submitter));
		}
		if (t->mp.has_size)
			buf_printf(&b, " size=%llu", (unsigned long long)t->mp.size);
		buf_printf(&b, " body=%s smtputf8=%s", t->mp.body == BODY_8BITMIME ? "8bitmime" :
			   t->mp.body == BODY_BINARYMIME ? "binarymime" : "7bit",
			   t->mp.smtputf8 ? "yes" : "no");
		log_buf(LOG_INFO, &b);
		buf_free(&b);
	}
	session_reply(s, &r_ok);
}

/* SPF answered for a MAIL FROM that waited (msgauth_mail_wait). */
static void on_spf_answer(struct session *s, const struct smtp_reply *refusal)
{
	if (s->state != SESS_CLOSING) {
		s->state = SESS_COMMAND;
		if (refusal != NULL) {
			session_log(s, "mail-refused", "reason=spf code=%d enh=%s", refusal->code, refusal->enh);
			session_reply(s, refusal);
			session_tx_reset(s);
		} else {
			mail_accept(s);
		}
		session_restart_timer(s);
		session_process(s);
	}
	session_unref(s);
}

void cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	const struct smtp_reply *rep;
	struct transaction *t = &s->tx;

	if (t->active) {
		session_error(s, &r_nested);
		return;
	}
	/* DESIGN.md, the four ports: submission needs TLS, then AUTH, before MAIL. */
	if (s->lc->tls == LISTEN_TLS_REQUIRED && !session_tls(s)) {
		session_error(s, &r_tls_required);
		return;
	}
	if (s->lc->auth == LISTEN_AUTH_REQUIRED && s->auth_user[0] == '\0') {
		session_error(s, &r_auth_required);
		return;
	}
	if (smtp_parse_mail(c->arg, SMTP_PARAM_SMTPUTF8 | SMTP_PARAM_DSN, &t->from, &t->mp, &rep) < 0) {
		session_error(s, rep);
		return;
	}
	if (s->auth_user[0] != '\0' && !owns(s, &t->from)) {
		session_error(s, &r_not_owned);
		return;
	}
	/* RFC 1870 6.1: a declared size over the limit is refused at once. */
	if (t->mp.has_size && t->mp.size > s->w->conf->max_message_size) {
		session_replyf(s, 552, "5.3.4", "Message size exceeds fixed limit of %llu octets",
			       (unsigned long long)s->w->conf->max_message_size);
		return;
	}
	set_submitter(s, t);
	if (msgauth_applies(s)) {
		t->ma = msgauth_new(s);
		if (t->ma == NULL) {
			/* Never unchecked: that would pass a forgery the checks refuse. */
			session_replyf(s, 451, "4.3.0", "Out of memory; try again later");
			return;
		}
		if (msgauth_mail_wait(t->ma, on_spf_answer)) {
			/* SPF may refuse MAIL (spf_reject, mail_auth_tempfail):
			 * what the client pipelined waits in the buffer. */
			s->state = SESS_WAIT;
			session_ref(s);
			return;
		}
	}
	mail_accept(s);
}
