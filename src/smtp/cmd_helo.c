/* cmd_helo.c - HELO and EHLO: who the client says it is, and what we offer. */
#include <stdio.h>
#include <string.h>

#include "session.h"

static const struct smtp_reply r_helo_syntax = { 501, "5.5.4", "Syntax: HELO hostname" };
static const struct smtp_reply r_ehlo_syntax = { 501, "5.5.4", "Syntax: EHLO hostname" };
static const struct smtp_reply r_helo_bad = {
	501, "5.5.2", "Invalid HELO/EHLO argument: use your fully qualified host name or an address literal"
};

/* RFC 5321 4.1.1.1 wants a domain or an address literal. We accept the
 * characters those can hold (and '_', common in real host names), nothing
 * that could change the meaning of a header or a log line. */
static bool helo_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
	       c == ':' || c == '[' || c == ']';
}

static int take_helo(struct session *s, const struct smtp_cmd *c,
		     const struct smtp_reply *syntax)
{
	if (c->arg.len == 0) {
		session_error(s, syntax);
		return -1;
	}
	for (size_t i = 0; i < c->arg.len; i++)
		if (!helo_char(c->arg.p[i])) {
			session_error(s, &r_helo_bad);
			return -1;
		}
	if (slice_to_cstr(c->arg, s->helo, sizeof s->helo) < 0) {
		session_error(s, &r_helo_bad);
		return -1;
	}
	/* RFC 5321 4.1.4: HELO/EHLO resets the transaction like RSET. */
	session_tx_reset(s);
	s->helo_done = true;
	return 0;
}

void cmd_helo(struct session *s, const struct smtp_cmd *c)
{
	if (take_helo(s, c, &r_helo_syntax) < 0)
		return;
	s->esmtp = false;
	session_log(s, "helo", "helo=\"%s\" esmtp=no", s->helo);
	session_replyf(s, 250, NULL, "%s", s->w->conf->hostname);
}

void cmd_ehlo(struct session *s, const struct smtp_cmd *c)
{
	const struct conf *cf = s->w->conf;
	char line[CONF_NAME_MAX + INET6_ADDRSTRLEN + 32];

	if (take_helo(s, c, &r_ehlo_syntax) < 0)
		return;
	s->esmtp = true;
	session_log(s, "helo", "helo=\"%s\" esmtp=yes", s->helo);
	/* The extensions this session can use (RFC 5321 4.1.1.1 multi-line). */
	snprintf(line, sizeof line, "250-%s Hello [%s]\r\n", cf->hostname, s->client_ip);
	session_send_raw(s, line);
	session_send_raw(s, "250-PIPELINING\r\n");
	snprintf(line, sizeof line, "250-SIZE %llu\r\n", (unsigned long long)cf->max_message_size);
	session_send_raw(s, line);
	/* RFC 3207: STARTTLS only before TLS; AUTH only inside TLS and only
	 * where the listener takes it (DESIGN.md invariant 5). */
	if (s->w->tls != NULL && s->ssl == NULL && s->lc->tls != LISTEN_TLS_NONE)
		session_send_raw(s, "250-STARTTLS\r\n");
	if (auth_offered(s)) {
		auth_ehlo_line(s, line, sizeof line);
		session_send_raw(s, line);
	}
	/* RFC 1985 4: only where someone may use it. */
	if (cf->etrn_allow[0] != '\0')
		session_send_raw(s, "250-ETRN\r\n");
	session_send_raw(s, "250-8BITMIME\r\n"
			    "250-ENHANCEDSTATUSCODES\r\n"
			    "250-SMTPUTF8\r\n"
			    "250-DSN\r\n"
			    "250 CHUNKING\r\n");
}
