/* cmd_misc.c - RSET NOOP QUIT VRFY EXPN HELP STARTTLS, and ETRN (RFC 1985). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "../proto/ctl.h"
#include "../spool/control.h"
#include "session.h"

static const struct smtp_reply r_ok = { 250, "2.0.0", "Ok" };
static const struct smtp_reply r_bye = { 221, "2.0.0", "Bye" };
static const struct smtp_reply r_rset_syntax = { 501, "5.5.4", "Syntax: RSET (no arguments)" };
static const struct smtp_reply r_quit_syntax = { 501, "5.5.4", "Syntax: QUIT (no arguments)" };
/* RFC 5321 3.5.3: 252 when we will not say whether a user exists. */
static const struct smtp_reply r_vrfy = {
	252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery"
};
static const struct smtp_reply r_vrfy_syntax = { 501, "5.5.4", "Syntax: VRFY address" };
static const struct smtp_reply r_expn = { 502, "5.5.1", "EXPN is not available: mailing lists are not disclosed" };
static const struct smtp_reply r_help_topic = { 504, "5.5.4", "HELP topic not known; send HELP for the list of commands" };
static const struct smtp_reply r_no_tls = { 454, "4.7.0", "TLS not available due to temporary reason" };
static const struct smtp_reply r_tls_ready = { 220, "2.0.0", "Ready to start TLS" };
static const struct smtp_reply r_tls_active = { 503, "5.5.1", "TLS already active" };
static const struct smtp_reply r_tls_not_here = { 502, "5.5.1", "STARTTLS is not offered on this port" };
static const struct smtp_reply r_starttls_syntax = { 501, "5.5.4", "Syntax: STARTTLS (no arguments)" };
static const struct smtp_reply r_etrn_denied = {
	502, "5.7.0", "ETRN is not allowed from your address (setting etrn_allow)"
};
static const struct smtp_reply r_etrn_syntax = {
	501, "5.5.4", "Syntax: ETRN domain (RFC 1985)"
};

void cmd_rset(struct session *s, const struct smtp_cmd *c)
{
	if (c->arg.len > 0) {
		session_error(s, &r_rset_syntax);
		return;
	}
	session_tx_reset(s);
	session_reply(s, &r_ok);
}

void cmd_noop(struct session *s, const struct smtp_cmd *c)
{
	(void)c; /* RFC 5321 4.1.1.9: an argument is allowed and ignored. */
	session_reply(s, &r_ok);
}

void cmd_quit(struct session *s, const struct smtp_cmd *c)
{
	if (c->arg.len > 0) {
		session_error(s, &r_quit_syntax);
		return;
	}
	session_reply(s, &r_bye);
	session_close(s, "quit");
}

void cmd_vrfy(struct session *s, const struct smtp_cmd *c)
{
	if (c->arg.len == 0) {
		session_error(s, &r_vrfy_syntax);
		return;
	}
	session_reply(s, &r_vrfy);
}

void cmd_expn(struct session *s, const struct smtp_cmd *c)
{
	(void)c;
	session_reply(s, &r_expn);
}

static const struct {
	const char *topic;
	const char *text;
} help_topics[] = {
	{ "HELO", "HELO <hostname>" },
	{ "EHLO", "EHLO <hostname>" },
	{ "MAIL", "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8] [RET=FULL|HDRS] [ENVID=id]" },
	{ "RCPT", "RCPT TO:<address> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=rfc822;address]" },
	{ "DATA", "DATA, then the message, ending with a line holding only \".\"" },
	{ "BDAT", "BDAT <octets> [LAST], then exactly that many octets" },
	{ "RSET", "RSET: abort the current transaction" },
	{ "NOOP", "NOOP: do nothing" },
	{ "QUIT", "QUIT: close the session" },
	{ "VRFY", "VRFY <address>: always 252, users are not disclosed" },
	{ "HELP", "HELP [command]" },
};

void cmd_help(struct session *s, const struct smtp_cmd *c)
{
	if (c->arg.len == 0) {
		session_replyf(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP "
			       "QUIT VRFY HELP; see RFC 5321");
		return;
	}
	for (size_t i = 0; i < sizeof help_topics / sizeof help_topics[0]; i++)
		if (slice_eq_nocase(c->arg, help_topics[i].topic)) {
			session_replyf(s, 214, "2.0.0", "%s", help_topics[i].text);
			return;
		}
	session_reply(s, &r_help_topic);
}

/* RFC 3207: 220, then the handshake on the next bytes; see session_start_tls. */
void cmd_starttls(struct session *s, const struct smtp_cmd *c)
{
	if (c->arg.len > 0) {
		session_error(s, &r_starttls_syntax);
		return;
	}
	if (s->ssl != NULL) {
		session_error(s, &r_tls_active);
		return;
	}
	if (s->lc->tls == LISTEN_TLS_NONE) {
		session_error(s, &r_tls_not_here);
		return;
	}
	if (s->w->tls == NULL) {
		session_reply(s, &r_no_tls);
		return;
	}
	session_reply(s, &r_tls_ready);
	/* The 220 goes out in plaintext, before the filter changes. */
	session_flush(s);
	session_start_tls(s);
}


/* The queue process is asked over its control socket, from the thread pool. */
struct etrn_job {
	uv_work_t work;
	struct session *s;
	char domain[CTL_DOMAIN_MAX + 1];
	char reply[CTL_LINE_MAX + 1];
	int rc;
};

static void etrn_work(uv_work_t *w)
{
	struct etrn_job *j = w->data;
	char line[CTL_LINE_MAX];

	snprintf(line, sizeof line, "ETRN @%s", j->domain);
	j->rc = control_request(CONTROL_SOCK_NAME, line, j->reply, sizeof j->reply, 5000);
}

static void etrn_done(uv_work_t *w, int status)
{
	struct etrn_job *j = w->data;
	struct session *s = j->s;
	struct ctl_reply r;

	if (s->state != SESS_CLOSING) {
		s->state = SESS_COMMAND;
		/* RFC 1985 5: 250 started, 251 nothing waiting, 458 cannot. */
		if (status != 0 || j->rc != 0 ||
		    ctl_parse_reply((const uint8_t *)j->reply, strlen(j->reply), &r) < 0 || !r.ok)
			session_replyf(s, 458, "4.3.0", "Unable to queue messages for node %s", j->domain);
		else if (r.n == 0)
			session_replyf(s, 251, "2.0.0", "OK, no messages waiting for node %s", j->domain);
		else
			session_replyf(s, 250, "2.0.0", "Queuing for node %s started", j->domain);
		session_log(s, "etrn", "domain=%s result=\"%s\"", j->domain, j->rc == 0 ? j->reply : "no queue process");
		session_restart_timer(s);
		session_process(s);
	}
	free(j);
	session_unref(s);
}

void cmd_etrn(struct session *s, const struct smtp_cmd *c)
{
	struct slice arg = c->arg;
	struct etrn_job *j;

	if (!session_peer_in(s, s->w->conf->etrn_allow)) {
		session_error(s, &r_etrn_denied);
		return;
	}
	if (arg.len > 0 && arg.p[0] == '@') {
		arg.p++;
		arg.len--;
	}
	if ((j = calloc(1, sizeof *j)) == NULL) {
		session_replyf(s, 458, "4.3.0", "Unable to queue messages now");
		return;
	}
	if (ctl_domain_norm(arg.p, arg.len, j->domain, sizeof j->domain) < 0) {
		free(j);
		session_error(s, &r_etrn_syntax);
		return;
	}
	j->s = s;
	j->work.data = j;
	s->state = SESS_WAIT;
	session_ref(s);
	if (uv_queue_work(s->w->loop, &j->work, etrn_work, etrn_done) != 0)
		tern_bug("event=bug what=\"uv_queue_work refused a valid request\"");
}
