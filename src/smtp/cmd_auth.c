/* cmd_auth.c - AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN, inside TLS, checked on the thread pool. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/log.h"
#include "../proto/sasl.h"
#include "session.h"

static const struct smtp_reply r_not_here = { 502, "5.5.1", "AUTH is not offered on this port" };
static const struct smtp_reply r_needs_tls = {
	530, "5.7.0", "Must issue a STARTTLS command first: AUTH is never taken in plaintext"
};
static const struct smtp_reply r_no_users = {
	502, "5.5.1", "AUTH is not available: no users are configured (setting 'users')"
};
static const struct smtp_reply r_needs_ehlo = { 503, "5.5.1", "Send EHLO first" };
static const struct smtp_reply r_again = { 503, "5.5.1", "Already authenticated" };
static const struct smtp_reply r_in_tx = {
	503, "5.5.1", "AUTH is not allowed during a mail transaction: send RSET first"
};
static const struct smtp_reply r_mech = {
	504, "5.5.4", "Unrecognized authentication mechanism: use PLAIN or LOGIN"
};
static const struct smtp_reply r_cancelled = { 501, "5.0.0", "Authentication cancelled" };
static const struct smtp_reply r_b64 = { 501, "5.5.2", "Cannot decode the response: it must be base64" };
static const struct smtp_reply r_plain = {
	501, "5.5.2", "Malformed PLAIN response: expected [authzid] NUL user NUL password"
};
static const struct smtp_reply r_ok = { 235, "2.7.0", "Authentication successful" };
static const struct smtp_reply r_bad = { 535, "5.7.8", "Authentication credentials invalid" };
static const struct smtp_reply r_locked = {
	421, "4.7.0", "Too many failed logins from your address: try again later"
};
static const struct smtp_reply r_temp = {
	454, "4.7.0", "Temporary authentication failure: try again later"
};

#define AUTH_DELAY_STEPS 5

/* A password check in flight: owns copies of the credentials. */
struct auth_job {
	uv_work_t work;
	struct session *s;
	const struct users *users;
	char mech[8];
	char user[USERS_NAME_MAX + 1];
	char pass[SASL_PART_MAX + 1];
	size_t pass_len;
	enum users_verdict verdict;
};

bool auth_offered(const struct session *s)
{
	return s->lc->auth != LISTEN_AUTH_NONE && session_auth_secure(s) && s->w->users->loaded &&
	       s->auth_user[0] == '\0';
}

static void log_auth(struct session *s, const char *mech, const char *user, const char *result)
{
	struct buf b;

	if (!log_enabled(LOG_INFO))
		return;
	buf_init(&b, 1024);
	buf_printf(&b, "event=auth session=%s mechanism=%s result=%s", s->id, mech, result);
	log_kv_escaped(&b, "user", user, strlen(user));
	log_kv_escaped(&b, "client", s->client_ip, strlen(s->client_ip));
	log_buf(LOG_INFO, &b);
	buf_free(&b);
}

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

/*
 * A 535, counted per session (max_errors) and across workers per address
 * and account (authlimit.h): at the limit the address is locked, this
 * login gets 421 and the connection ends (DESIGN.md invariant 2).
 */
static void failed(struct session *s, const char *user)
{
	const struct conf *cf = s->w->conf;
	struct authlimit_conf c = { cf->auth_max_failures, cf->auth_failure_window, cf->auth_lockout };
	struct authlimit_result r = authlimit_fail(s->w->authlimit, &s->peer, user, &c, now_s());
	unsigned n = r.addr_failures > r.user_failures ? r.addr_failures : r.user_failures;
	uint32_t delay_ms;

	if (r.locked || r.user_failures >= s->w->conf->auth_max_failures || r.untracked)
		log_event(LOG_WARN, "event=auth-limit session=%s client=%s address_failures=%u "
			  "account_failures=%u locked=%s%s", s->id, s->client_ip, r.addr_failures,
			  r.user_failures, r.locked ? "yes" : "no", r.untracked ? " untracked=yes" : "");
	if (r.locked) {
		session_reply(s, &r_bad);
		session_reply(s, &r_locked);
		session_close(s, "auth-locked");
		return;
	}
	if (++s->errors >= s->w->conf->max_errors) {
		session_reply(s, &r_bad);
		session_replyf(s, 421, "4.7.0", "Too many errors in this session, closing connection");
		session_close(s, "too-many-errors");
		return;
	}
	/* Each further failure in the window waits longer for its 535 (one
	 * auth_failure_delay more each time, at most AUTH_DELAY_STEPS of them):
	 * guessing slows down well before the lockout. */
	delay_ms = n > 1 ? (n - 1 < AUTH_DELAY_STEPS ? n - 1 : AUTH_DELAY_STEPS) * cf->auth_failure_delay_ms : 0;
	if (delay_ms == 0) {
		session_reply(s, &r_bad);
		return;
	}
	log_event(LOG_INFO, "event=auth-delay session=%s client=%s failures=%u delay_ms=%u",
		  s->id, s->client_ip, n, delay_ms);
	session_reply_later(s, &r_bad, delay_ms);
}

/* Thread pool: crypt(3) is slow by design, never on the loop. */
static void verify_work(uv_work_t *w)
{
	struct auth_job *j = w->data;

	j->verdict = users_verify(j->users, j->user, j->pass, j->pass_len);
}

static void verify_done(uv_work_t *w, int status)
{
	struct auth_job *j = w->data;
	struct session *s = j->s;
	enum users_verdict v = status == 0 ? j->verdict : USERS_ERROR;

	explicit_bzero(j->pass, sizeof j->pass);
	if (s->state != SESS_CLOSING) {
		s->state = SESS_COMMAND;
		log_auth(s, j->mech, j->user, v == USERS_OK ? "ok" : v == USERS_ERROR ? "error" : "failed");
		if (v == USERS_OK) {
			memcpy(s->auth_user, j->user, sizeof s->auth_user);
			session_reply(s, &r_ok);
		} else if (v == USERS_ERROR) {
			session_reply(s, &r_temp);
		} else {
			failed(s, j->user);
		}
		if (s->state != SESS_CLOSING) {
			session_restart_timer(s);
			session_process(s);
		}
	}
	free(j);
	session_unref(s);
}

static void verify(struct session *s, const char *mech, const uint8_t *user, size_t ulen,
		   const uint8_t *pass, size_t plen)
{
	struct auth_job *j = calloc(1, sizeof *j);

	if (j == NULL || ulen > USERS_NAME_MAX || plen > SASL_PART_MAX) {
		const struct smtp_reply *r = j == NULL ? &r_temp : &r_bad;

		free(j);
		s->state = SESS_COMMAND;
		session_error(s, r);
		return;
	}
	j->s = s;
	j->users = s->w->users;
	memcpy(j->mech, mech, strlen(mech) + 1);
	for (size_t i = 0; i < ulen; i++)
		j->user[i] = (char)tolower(user[i]);
	memcpy(j->pass, pass, plen);
	j->pass_len = plen;
	j->work.data = j;
	s->state = SESS_WAIT;
	session_ref(s);
	/* The answer must come from the loop, never from inside this call:
	 * the AUTH line is not consumed yet (see spool_msg_commit). */
	if (uv_queue_work(s->w->loop, &j->work, verify_work, verify_done) != 0)
		tern_bug("event=bug what=\"uv_queue_work refused a valid request\"");
}

/* RFC 4616: authzid must be empty or the user itself (no proxy logins). */
static void plain(struct session *s, const uint8_t *msg, size_t n)
{
	struct slice authzid, authcid, passwd;

	s->state = SESS_COMMAND;
	if (sasl_plain_parse(msg, n, &authzid, &authcid, &passwd) < 0) {
		session_error(s, &r_plain);
		return;
	}
	if (authzid.len > 0 && (authzid.len != authcid.len ||
				strncasecmp((const char *)authzid.p, (const char *)authcid.p, authcid.len) != 0)) {
		char user[USERS_NAME_MAX + 1];

		slice_to_cstr(authcid.len <= USERS_NAME_MAX ? authcid : (struct slice){ authcid.p, 0 },
			      user, sizeof user);
		log_auth(s, "PLAIN", user, "failed-authzid");
		failed(s, user);
		return;
	}
	verify(s, "PLAIN", authcid.p, authcid.len, passwd.p, passwd.len);
}

void auth_response(struct session *s, const uint8_t *line, size_t len)
{
	uint8_t buf[SMTP_AUTH_LINE_MAX];
	ssize_t n;

	if (len == 1 && line[0] == '*') {
		s->state = SESS_COMMAND;
		session_error(s, &r_cancelled);
		return;
	}
	if ((n = sasl_b64_decode((struct slice){ line, len }, buf, sizeof buf)) < 0) {
		s->state = SESS_COMMAND;
		session_error(s, &r_b64);
		return;
	}
	switch (s->auth_step) {
	case AUTH_STEP_PLAIN:
		plain(s, buf, (size_t)n);
		break;
	case AUTH_STEP_LOGIN_USER:
		if (n == 0 || n > USERS_NAME_MAX || memchr(buf, '\0', (size_t)n) != NULL) {
			s->state = SESS_COMMAND;
			session_error(s, &r_bad);
			break;
		}
		memcpy(s->auth_login_user, buf, (size_t)n);
		s->auth_login_user[n] = '\0';
		s->auth_step = AUTH_STEP_LOGIN_PASS;
		session_send_raw(s, "334 UGFzc3dvcmQ6\r\n"); /* "Password:" */
		break;
	case AUTH_STEP_LOGIN_PASS:
		verify(s, "LOGIN", (const uint8_t *)s->auth_login_user, strlen(s->auth_login_user),
		       buf, (size_t)n);
		break;
	}
	explicit_bzero(buf, sizeof buf);
}

void cmd_auth(struct session *s, const struct smtp_cmd *c)
{
	const uint8_t *sp = memchr(c->arg.p, ' ', c->arg.len);
	struct slice mech = { c->arg.p, sp ? (size_t)(sp - c->arg.p) : c->arg.len };
	struct slice ir = sp ? (struct slice){ sp + 1, c->arg.len - mech.len - 1 } : (struct slice){ NULL, 0 };

	/* The payload is a credential: never logged, never echoed. */
	if (s->lc->auth == LISTEN_AUTH_NONE) {
		session_error(s, &r_not_here);
		return;
	}
	if (!session_auth_secure(s)) {
		session_error(s, &r_needs_tls);
		return;
	}
	if (!s->w->users->loaded) {
		session_error(s, &r_no_users);
		return;
	}
	if (!s->helo_done || !s->esmtp) {
		session_error(s, &r_needs_ehlo);
		return;
	}
	if (s->auth_user[0] != '\0') {
		session_error(s, &r_again);
		return;
	}
	if (s->tx.active) {
		session_error(s, &r_in_tx);
		return;
	}
	if (authlimit_locked(s->w->authlimit, &s->peer, now_s()) > 0) {
		session_log(s, "auth-refused", "reason=address-locked client=%s", s->client_ip);
		session_reply(s, &r_locked);
		session_close(s, "auth-locked");
		return;
	}
	s->state = SESS_AUTH;
	if (slice_eq_nocase(mech, "PLAIN")) {
		s->auth_step = AUTH_STEP_PLAIN;
		if (ir.len > 0)
			auth_response(s, ir.p, ir.len);
		else
			session_send_raw(s, "334 \r\n"); /* RFC 4954 4: empty challenge */
	} else if (slice_eq_nocase(mech, "LOGIN")) {
		s->auth_step = AUTH_STEP_LOGIN_USER;
		if (ir.len > 0)
			auth_response(s, ir.p, ir.len);
		else
			session_send_raw(s, "334 VXNlcm5hbWU6\r\n"); /* "Username:" */
	} else {
		s->state = SESS_COMMAND;
		session_error(s, &r_mech);
	}
}
