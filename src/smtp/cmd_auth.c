/*
 * cmd_auth.c - AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN checked on the
 * thread pool (crypt(3) or Dovecot's auth socket); SCRAM-SHA-256 (RFC 7677)
 * and CRAM-MD5 (RFC 2195) checked on the loop (a few HMACs). Only inside
 * TLS, and only the mechanisms every account can use.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "../daemon/dovecot_client.h"
#include "../lib/log.h"
#include "../proto/sasl.h"
#include "../proto/scram.h"
#include "session.h"

/* Dovecot holds a FAIL back 2 s, and its per-address penalty adds up to
 * 15 s more: a shorter wait would turn a wrong password into a 454. */
#define DOVECOT_TIMEOUT_MS 20000
/* Checks in flight per worker: each holds a thread-pool thread (shared
 * with the spool's fsyncs) for seconds when Dovecot delays a failure. */
#define AUTH_INFLIGHT_MAX 8

static const struct smtp_reply r_not_here = { 502, "5.5.1", "AUTH is not offered on this port" };
static const struct smtp_reply r_needs_tls = {
	530, "5.7.0", "Must issue a STARTTLS command first: AUTH is never taken in plaintext"
};
static const struct smtp_reply r_no_users = {
	502, "5.5.1", "AUTH is not available: no users are configured (setting 'users' or 'auth_dovecot')"
};
static const struct smtp_reply r_needs_ehlo = { 503, "5.5.1", "Send EHLO first" };
static const struct smtp_reply r_again = { 503, "5.5.1", "Already authenticated" };
static const struct smtp_reply r_in_tx = {
	503, "5.5.1", "AUTH is not allowed during a mail transaction: send RSET first"
};
static const struct smtp_reply r_mech = {
	504, "5.5.4", "Unrecognized authentication mechanism: use one that EHLO lists after AUTH"
};
static const struct smtp_reply r_scram = {
	501, "5.5.2", "Malformed SCRAM message (RFC 5802)"
};
static const struct smtp_reply r_scram_cb = {
	501, "5.5.2", "Channel binding is not supported: use SCRAM-SHA-256 without -PLUS (gs2 flag n or y)"
};
static const struct smtp_reply r_cram = {
	501, "5.5.2", "Malformed CRAM-MD5 response: expected user SP 32 hex digits"
};
static const struct smtp_reply r_no_ir = {
	501, "5.5.2", "CRAM-MD5 takes no initial response"
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

/* The state of a multi-step exchange. */
struct auth_exchange {
	struct scram_server scram;
	bool fake;			/* no such account (or no usable secret) */
	char challenge[CONF_NAME_MAX + 48]; /* CRAM-MD5: <random.time@hostname> */
};

/* A password check in flight: owns copies of the credentials. */
struct auth_job {
	uv_work_t work;
	struct session *s;
	const struct users *users;
	const char *dovecot;		/* socket, or NULL for the users file */
	char client_ip[INET6_ADDRSTRLEN];
	char local_ip[INET6_ADDRSTRLEN];
	char canon[USERS_NAME_MAX + 1];	/* the name Dovecot knows the user by */
	char error[256];
	char mech[16];
	char user[USERS_NAME_MAX + 1];
	char pass[SASL_PART_MAX + 1];
	size_t pass_len;
	enum users_verdict verdict;
};

static const struct {
	const char *name;
	unsigned bit;
} mech_names[] = {
	{ "PLAIN", AUTH_MECH_PLAIN },
	{ "LOGIN", AUTH_MECH_LOGIN },
	{ "SCRAM-SHA-256", AUTH_MECH_SCRAM_SHA256 },
	{ "CRAM-MD5", AUTH_MECH_CRAM_MD5 },
};

unsigned auth_setup(const struct conf *c, const struct users *u)
{
	unsigned m = c->auth_mechs;

	if (c->auth_dovecot[0] != '\0')
		return m & (AUTH_MECH_PLAIN | AUTH_MECH_LOGIN);
	if (!u->loaded)
		return 0;
	if (!users_all_scram(u))
		m &= ~(unsigned)AUTH_MECH_SCRAM_SHA256;
	if (!users_all_cram(u))
		m &= ~(unsigned)AUTH_MECH_CRAM_MD5;
	return m;
}

bool auth_offered(const struct session *s)
{
	return s->lc->auth != LISTEN_AUTH_NONE && session_auth_secure(s) && s->w->auth_mechs != 0 &&
	       s->auth_user[0] == '\0';
}

void auth_ehlo_line(const struct session *s, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "250-AUTH");

	for (size_t i = 0; i < sizeof mech_names / sizeof mech_names[0] && n < cap; i++)
		if (s->w->auth_mechs & mech_names[i].bit)
			n += (size_t)snprintf(out + n, cap - n, " %s", mech_names[i].name);
	if (n < cap)
		snprintf(out + n, cap - n, "\r\n");
}

void auth_exchange_free(struct session *s)
{
	if (s->ax == NULL)
		return;
	explicit_bzero(s->ax, sizeof *s->ax);
	free(s->ax);
	s->ax = NULL;
}

static const char *backend(const struct session *s)
{
	return s->w->conf->auth_dovecot[0] != '\0' ? "dovecot" : "file";
}

static void log_auth(struct session *s, const char *mech, const char *user, const char *result)
{
	struct buf b;

	if (!log_enabled(LOG_INFO))
		return;
	buf_init(&b, 1024);
	buf_printf(&b, "event=auth session=%s mechanism=%s backend=%s result=%s", s->id, mech,
		   backend(s), result);
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

	if (j->dovecot != NULL)
		j->verdict = dovecot_auth_check(j->dovecot, j->user, j->pass, j->pass_len, j->client_ip,
						j->local_ip, true, DOVECOT_TIMEOUT_MS, j->canon,
						sizeof j->canon, j->error, sizeof j->error);
	else
		j->verdict = users_verify(j->users, j->user, j->pass, j->pass_len);
}

static void verify_done(uv_work_t *w, int status)
{
	struct auth_job *j = w->data;
	struct session *s = j->s;
	enum users_verdict v = status == 0 ? j->verdict : USERS_ERROR;

	explicit_bzero(j->pass, sizeof j->pass);
	s->w->auth_inflight--;
	if (s->state != SESS_CLOSING) {
		s->state = SESS_COMMAND;
		log_auth(s, j->mech, j->user, v == USERS_OK ? "ok" : v == USERS_ERROR ? "error" : "failed");
		if (v == USERS_ERROR && j->error[0] != '\0')
			session_log(s, "auth-backend-error", "backend=%s error=\"%s\"", backend(s), j->error);
		if (v == USERS_OK) {
			/* Dovecot may know the user by another name (user=). */
			if (j->dovecot != NULL && j->canon[0] != '\0')
				memcpy(s->auth_user, j->canon, sizeof s->auth_user);
			else
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
	struct auth_job *j = s->w->auth_inflight < AUTH_INFLIGHT_MAX ? calloc(1, sizeof *j) : NULL;

	if (j == NULL || ulen > USERS_NAME_MAX || plen > SASL_PART_MAX) {
		const struct smtp_reply *r = j == NULL ? &r_temp : &r_bad;

		free(j);
		s->state = SESS_COMMAND;
		session_error(s, r);
		return;
	}
	j->s = s;
	j->users = s->w->users;
	j->dovecot = s->w->conf->auth_dovecot[0] != '\0' ? s->w->conf->auth_dovecot : NULL;
	memcpy(j->client_ip, s->client_ip, sizeof j->client_ip);
	session_local_ip(s, j->local_ip, sizeof j->local_ip);
	memcpy(j->mech, mech, strlen(mech) + 1);
	for (size_t i = 0; i < ulen; i++)
		j->user[i] = (char)tolower(user[i]);
	memcpy(j->pass, pass, plen);
	j->pass_len = plen;
	j->work.data = j;
	s->state = SESS_WAIT;
	s->w->auth_inflight++;
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

/* A 334 challenge carrying data, base64-encoded (RFC 4954 4). */
static void challenge(struct session *s, const void *data, size_t n)
{
	char line[4 + 4 * ((SCRAM_MSG_MAX + 2) / 3) + 3];
	size_t k = sasl_b64_encode(data, n, line + 4, sizeof line - 6);

	memcpy(line, "334 ", 4);
	memcpy(line + 4 + k, "\r\n", 3);
	session_send_raw(s, line);
}

/* The exchange ended without a login: 535 counted (a wrong proof), or a
 * syntax error. */
static void exchange_failed(struct session *s, const char *mech, const struct smtp_reply *syntax)
{
	char user[USERS_NAME_MAX + 1];

	snprintf(user, sizeof user, "%s", s->ax != NULL ? s->ax->scram.user : "");
	auth_exchange_free(s);
	s->state = SESS_COMMAND;
	if (syntax != NULL) {
		session_error(s, syntax);
		return;
	}
	log_auth(s, mech, user, "failed");
	failed(s, user);
}

/* RFC 5802 5: client-first -> server-first with the account's salt and
 * iterations, or made-up ones for an unknown name (RFC 7677 5). */
static void scram_first(struct session *s, const uint8_t *msg, size_t n)
{
	struct auth_exchange *ax = s->ax;
	const struct user *u;
	struct scram_keys keys;
	uint8_t rnd[18];
	char nonce[32];
	int r = scram_client_first(&ax->scram, msg, n);

	if (r == SCRAM_ERR_AUTHZID) {
		exchange_failed(s, "SCRAM-SHA-256", NULL);
		return;
	}
	if (r != SCRAM_OK) {
		exchange_failed(s, "SCRAM-SHA-256", r == SCRAM_ERR_CB ? &r_scram_cb : &r_scram);
		return;
	}
	for (char *p = ax->scram.user; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	u = users_find(s->w->users, ax->scram.user);
	ax->fake = u == NULL || users_scram_keys(u, &keys) < 0;
	if (ax->fake)
		scram_fake_keys(s->w->auth_secret, ax->scram.user, &keys);
	if (RAND_bytes(rnd, sizeof rnd) != 1 ||
	    sasl_b64_encode(rnd, sizeof rnd, nonce, sizeof nonce) == 0 ||
	    scram_server_first(&ax->scram, &keys, nonce) != SCRAM_OK) {
		explicit_bzero(&keys, sizeof keys);
		auth_exchange_free(s);
		s->state = SESS_COMMAND;
		session_error(s, &r_temp);
		return;
	}
	explicit_bzero(&keys, sizeof keys);
	s->auth_step = AUTH_STEP_SCRAM_FINAL;
	challenge(s, ax->scram.server_first, ax->scram.sf_len);
}

/* RFC 5802 5: client-final with the proof -> server-final "v=...", which
 * RFC 4954 4 sends as one more 334 that the client answers empty. */
static void scram_final(struct session *s, const uint8_t *msg, size_t n)
{
	char out[SCRAM_FINAL_MAX];
	int r = scram_client_final(&s->ax->scram, msg, n, out, sizeof out);

	if ((r == SCRAM_OK && s->ax->fake) || r == SCRAM_ERR_PROOF) {
		exchange_failed(s, "SCRAM-SHA-256", NULL);
		return;
	}
	if (r != SCRAM_OK) {
		exchange_failed(s, "SCRAM-SHA-256", r == SCRAM_ERR_CB ? &r_scram_cb : &r_scram);
		return;
	}
	s->auth_step = AUTH_STEP_SCRAM_ACK;
	challenge(s, out, strlen(out));
}

static void scram_ack(struct session *s, size_t n)
{
	char user[USERS_NAME_MAX + 1];

	if (n != 0) {
		exchange_failed(s, "SCRAM-SHA-256", &r_scram);
		return;
	}
	snprintf(user, sizeof user, "%s", s->ax->scram.user);
	auth_exchange_free(s);
	s->state = SESS_COMMAND;
	log_auth(s, "SCRAM-SHA-256", user, "ok");
	memcpy(s->auth_user, user, sizeof s->auth_user);
	session_reply(s, &r_ok);
}

/* RFC 2195 2: "user SP hex(HMAC-MD5(secret, challenge))". The digest does
 * not cover the name, so the name is read first, then its secret used. */
static void cram(struct session *s, const uint8_t *msg, size_t n)
{
	struct auth_exchange *ax = s->ax;
	const char *secret = "\x01no account\x01";
	size_t slen = strlen(secret);
	const struct user *u;
	int r;

	r = cram_md5_verify(ax->challenge, strlen(ax->challenge), msg, n, "", 0,
			    ax->scram.user, sizeof ax->scram.user);
	if (r == -2 || r == -3) {
		exchange_failed(s, "CRAM-MD5", r == -2 ? &r_cram : &r_temp);
		return;
	}
	for (char *p = ax->scram.user; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	u = users_find(s->w->users, ax->scram.user);
	ax->fake = u == NULL || users_cram_secret(u, &secret, &slen) < 0;
	r = cram_md5_verify(ax->challenge, strlen(ax->challenge), msg, n, secret, slen,
			    ax->scram.user, sizeof ax->scram.user);
	if (r != 0 || ax->fake) {
		exchange_failed(s, "CRAM-MD5", r == -3 ? &r_temp : NULL);
		return;
	}
	log_auth(s, "CRAM-MD5", ax->scram.user, "ok");
	memcpy(s->auth_user, ax->scram.user, sizeof s->auth_user);
	auth_exchange_free(s);
	s->state = SESS_COMMAND;
	session_reply(s, &r_ok);
}

void auth_response(struct session *s, const uint8_t *line, size_t len)
{
	uint8_t buf[SMTP_AUTH_LINE_MAX];
	ssize_t n;

	if (len == 1 && line[0] == '*') {
		auth_exchange_free(s);
		s->state = SESS_COMMAND;
		session_error(s, &r_cancelled);
		return;
	}
	/* An empty line is the empty response (base64 of nothing): SCRAM's
	 * answer to the server-final message; "=" means the same. */
	n = len == 0 ? 0 : sasl_b64_decode((struct slice){ line, len }, buf, sizeof buf);
	if (n < 0) {
		auth_exchange_free(s);
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
	case AUTH_STEP_SCRAM_FIRST:
		scram_first(s, buf, (size_t)n);
		break;
	case AUTH_STEP_SCRAM_FINAL:
		scram_final(s, buf, (size_t)n);
		break;
	case AUTH_STEP_SCRAM_ACK:
		scram_ack(s, (size_t)n);
		break;
	case AUTH_STEP_CRAM:
		cram(s, buf, (size_t)n);
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
	if (s->w->auth_mechs == 0) {
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
	if (slice_eq_nocase(mech, "PLAIN") && (s->w->auth_mechs & AUTH_MECH_PLAIN)) {
		s->auth_step = AUTH_STEP_PLAIN;
		if (ir.len > 0)
			auth_response(s, ir.p, ir.len);
		else
			session_send_raw(s, "334 \r\n"); /* RFC 4954 4: empty challenge */
	} else if (slice_eq_nocase(mech, "LOGIN") && (s->w->auth_mechs & AUTH_MECH_LOGIN)) {
		s->auth_step = AUTH_STEP_LOGIN_USER;
		if (ir.len > 0)
			auth_response(s, ir.p, ir.len);
		else
			session_send_raw(s, "334 VXNlcm5hbWU6\r\n"); /* "Username:" */
	} else if (slice_eq_nocase(mech, "SCRAM-SHA-256") && (s->w->auth_mechs & AUTH_MECH_SCRAM_SHA256) &&
		   (s->ax = calloc(1, sizeof *s->ax)) != NULL) {
		s->auth_step = AUTH_STEP_SCRAM_FIRST;
		if (ir.len > 0)
			auth_response(s, ir.p, ir.len);
		else
			session_send_raw(s, "334 \r\n");
	} else if (slice_eq_nocase(mech, "CRAM-MD5") && (s->w->auth_mechs & AUTH_MECH_CRAM_MD5) &&
		   (s->ax = calloc(1, sizeof *s->ax)) != NULL) {
		uint64_t rnd = 0;

		if (ir.len > 0) {
			auth_exchange_free(s);
			s->state = SESS_COMMAND;
			session_error(s, &r_no_ir);
			return;
		}
		/* RFC 2195 2: a unique, msg-id-like challenge. */
		RAND_bytes((unsigned char *)&rnd, sizeof rnd);
		snprintf(s->ax->challenge, sizeof s->ax->challenge, "<%llu.%lld@%s>",
			 (unsigned long long)rnd, (long long)time(NULL), s->w->conf->hostname);
		s->auth_step = AUTH_STEP_CRAM;
		challenge(s, s->ax->challenge, strlen(s->ax->challenge));
	} else {
		s->state = SESS_COMMAND;
		session_error(s, &r_mech);
	}
}
