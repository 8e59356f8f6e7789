/* cmd_mail.c - MAIL FROM: opens a transaction (RFC 5321 4.1.1.2). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../lib/log.h"
#include "session.h"

static const struct smtp_reply r_nested = { 503, "5.5.1", "Nested MAIL command: send RSET first" };
static const struct smtp_reply r_tls_required = {
	530, "5.7.0", "Must issue a STARTTLS command first: this submission port needs TLS, then AUTH"
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
 * that address; a bare "alice" owns alice@ every local domain. The null
 * sender is nobody's (bounces come from the server, not from clients).
 */
static bool owns(const struct session *s, const struct mailbox *from)
{
	char addr[ADDR_PATH_MAX + 8];
	const char *at;

	if (from->is_null)
		return false;
	addr_format(from, addr, sizeof addr);
	if (strcasecmp(addr, s->auth_user) == 0)
		return true;
	at = strchr(s->auth_user, '@');
	return at == NULL && strcasecmp(from->local, s->auth_user) == 0 &&
	       conf_is_local_domain(s->w->conf, from->domain);
}

void cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	const struct smtp_reply *rep;
	struct transaction *t = &s->tx;
	char addr[ADDR_PATH_MAX + 8];
	struct buf b;

	if (t->active) {
		session_error(s, &r_nested);
		return;
	}
	/* DESIGN.md, the four ports: submission needs TLS, then AUTH, before MAIL. */
	if (session_is_submission(s) && s->auth_user[0] == '\0') {
		session_error(s, session_tls(s) ? &r_auth_required : &r_tls_required);
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
	t->active = true;
	if (log_enabled(LOG_INFO)) {
		addr_format(&t->from, addr, sizeof addr);
		buf_init(&b, 2048);
		buf_printf(&b, "event=mail session=%s", s->id);
		log_kv_escaped(&b, "from", addr, strlen(addr));
		if (s->auth_user[0] != '\0')
			log_kv_escaped(&b, "auth", s->auth_user, strlen(s->auth_user));
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
