/* cmd_rcpt.c - RCPT TO: the relay rule and local users, on every recipient. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/log.h"
#include "session.h"

static const struct smtp_reply r_need_mail = { 503, "5.5.1", "Send MAIL first" };
static const struct smtp_reply r_too_many = {
	452, "4.5.3", "Too many recipients for one message: send the rest in another"
};
static const struct smtp_reply r_routing = {
	550, "5.7.1", "Address routing forms (%, !, or @ in the local part) are not accepted here"
};
static const struct smtp_reply r_relay = {
	554, "5.7.1", "Relay access denied: this server takes mail only for its own domains; "
		      "to send elsewhere, authenticate on a submission port"
};
static const struct smtp_reply r_literal = {
	554, "5.7.1", "Relay access denied: address literals are not local here"
};
static const struct smtp_reply r_no_user = {
	550, "5.1.1", "Recipient address rejected: no such user here"
};
static const struct smtp_reply r_ok = { 250, "2.1.5", "Ok" };

/*
 * DESIGN.md invariant 4: without authentication, only our own domains;
 * an authenticated user, or a client in trusted_networks, may send
 * anywhere (*remote is set). Checked on the
 * decoded address, so no quoting, source route, percent hack or bang path
 * can name another destination.
 */
static const struct smtp_reply *relay_check(struct session *s, struct mailbox *mb, bool *remote)
{
	const struct conf *cf = s->w->conf;

	if (mb->is_postmaster) {
		/* RFC 5321 4.5.1: "<postmaster>" is this server's postmaster. */
		snprintf(mb->domain, sizeof mb->domain, "%s", cf->domains[0]);
		mb->domain_len = strlen(mb->domain);
		mb->is_postmaster = false;
		return NULL;
	}
	if (mb->has_percent || mb->has_bang || mb->has_at_in_local)
		return &r_routing;
	if (mb->domain_literal)
		return &r_literal;
	*remote = !conf_is_local_domain(cf, mb->domain);
	if (*remote && s->auth_user[0] == '\0' && !session_peer_in(s, cf->trusted_networks))
		return &r_relay;
	return NULL;
}

void cmd_rcpt(struct session *s, const struct smtp_cmd *c)
{
	const struct smtp_reply *rep;
	struct transaction *t = &s->tx;
	unsigned flags = SMTP_PARAM_DSN;
	struct rcpt r;
	bool remote = false;
	char addr[ADDR_PATH_MAX + 8];
	struct buf b;

	if (!t->active) {
		session_error(s, &r_need_mail);
		return;
	}
	t->rcpt_attempts++;
	/* RFC 5321 4.5.3.1.8: 452 and the client sends the rest later. */
	if (t->nrcpts >= s->w->conf->max_recipients) {
		session_reply(s, &r_too_many);
		return;
	}
	if (t->mp.smtputf8)
		flags |= SMTP_PARAM_SMTPUTF8;
	memset(&r, 0, sizeof r);
	if (smtp_parse_rcpt(c->arg, flags, &r.mb, &r.params, &rep) < 0) {
		session_error(s, rep);
		return;
	}
	if ((rep = relay_check(s, &r.mb, &remote)) == NULL && !remote && s->w->users->loaded &&
	    strcasecmp(r.mb.local, "postmaster") != 0 &&
	    !users_exists(s->w->users, r.mb.local, r.mb.domain)) {
		rep = &r_no_user;
	}
	if (log_enabled(LOG_INFO)) {
		buf_init(&b, 2048);
		addr_format(&r.mb, addr, sizeof addr);
		buf_printf(&b, "event=rcpt session=%s result=%s", s->id,
			   rep == NULL ? (remote ? "ok-relay" : "ok") :
			   rep == &r_no_user ? "unknown-user" : "relay-denied");
		log_kv_escaped(&b, "to", addr, strlen(addr));
		log_buf(LOG_INFO, &b);
		buf_free(&b);
	}
	if (rep != NULL) {
		session_error(s, rep);
		return;
	}
	struct rcpt *grown = realloc(t->rcpts, (t->nrcpts + 1) * sizeof *grown);
	if (grown == NULL) {
		session_replyf(s, 452, "4.3.1", "Insufficient system resources, try again later");
		return;
	}
	t->rcpts = grown;
	t->rcpts[t->nrcpts++] = r;
	session_reply(s, &r_ok);
}
