/* cmd_misc.c - RSET NOOP QUIT VRFY EXPN HELP, and the verbs later issues fill in. */
#include <string.h>

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
static const struct smtp_reply r_etrn = { 502, "5.5.1", "ETRN is not available" };

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


void cmd_etrn(struct session *s, const struct smtp_cmd *c)
{
	(void)c;
	session_reply(s, &r_etrn);
}
