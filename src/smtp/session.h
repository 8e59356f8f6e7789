/*
 * session.h - one inbound SMTP session: the ESMTP state machine (RFC 5321)
 * over a libuv stream, run inside a worker process.
 *
 * SYNOPSIS
 *	worker side:	session_accept(w, listener, server_stream);
 *	command files:	cmd_helo.c cmd_mail.c cmd_rcpt.c cmd_data.c cmd_misc.c
 *			implement the rows of the command table (session.c).
 *
 * DESCRIPTION
 *	Bytes from the connection land in `in`; session_process() takes
 *	complete command lines (at most 512 octets with CR LF, RFC 5321
 *	4.5.3.1.4) or, inside DATA/BDAT, message bytes, until the input is used
 *	up or the session must wait (a spool commit in flight). Replies are
 *	collected in `out` and sent when the input is drained, so a pipelined
 *	group (RFC 2920) gets its replies in one write.
 *
 *	The connection is a filter point: conn_input() and conn_send() are the
 *	only places that touch the socket, so TLS can be put between the
 *	socket and the session without the command code knowing (STARTTLS then
 *	resets `in`, the HELO and the transaction: RFC 3207 4.2).
 *
 *	States: GREETING (greet pause: any input is an early talker), COMMAND,
 *	DATA, BDAT, WAIT (spool commit in flight: input is held), CLOSING.
 *	The transaction (MAIL, RCPTs, message) is a separate struct reset by
 *	RSET, HELO/EHLO, a finished message and any refusal of DATA.
 *
 *	A session is freed only when its socket, its timer and any commit in
 *	flight have all finished: session_close() marks and starts the closes,
 *	session_unref() frees at the last reference (never inside a callback
 *	that still uses it).
 */
#ifndef TERN_SESSION_H
#define TERN_SESSION_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../conf/conf.h"
#include "../daemon/users.h"
#include "../lib/buf.h"
#include "../proto/data.h"
#include "../proto/smtp_cmd.h"
#include "../spool/spool.h"
#include "authlimit.h"
#include "connlimit.h"

#define SMTP_CMD_LINE_MAX 512
#define SMTP_AUTH_LINE_MAX 12288	/* RFC 4954 4: AUTH lines may be this long */
#define SESSION_IN_MAX (64 * 1024)
#define SESSION_OUT_MAX (64 * 1024)
#define SESSION_SPOOL_CHUNK (64 * 1024)

/* Shared by every session of a worker process. */
struct worker {
	uv_loop_t *loop;
	const struct conf *conf;
	const struct users *users;
	struct connlimit *connlimit;
	struct authlimit *authlimit;
	SSL_CTX *tls;			/* NULL: no TLS (STARTTLS answers 454) */
	unsigned auth_mechs;		/* AUTH_MECH_* usable here (auth_setup) */
	unsigned auth_inflight;		/* password checks on the thread pool */
	uint8_t auth_secret[32];	/* same in every worker: SCRAM fake salts */
	struct spool spool;
	struct dns *dns;		/* SPF, DKIM, DMARC lookups; NULL: mail_auth off */
	const struct dmarc_psl *psl;	/* NULL: DMARC not evaluated (logged at start) */
	int dmarc_fd;			/* DATA_DIR/dmarc/records.jsonl, or -1 */
	struct dkim_key_cache *dkim_cache; /* senders' parsed DKIM keys, or NULL */
	unsigned index;
	unsigned nsessions;
	uint64_t next_session;
	bool stopping;			/* SIGTERM: 421 to every session */
	bool draining;			/* SIGUSR1 (reload): no new sessions; exit when idle */
	void (*on_idle)(struct worker *w); /* stopping or draining, no session left */
	struct session *sessions;	/* every open session, for shutdown */
};

enum session_state {
	SESS_GREETING,
	SESS_COMMAND,
	SESS_DATA,
	SESS_BDAT,
	SESS_WAIT,
	SESS_AUTH,		/* reading an AUTH response line (RFC 4954 4) */
	SESS_PAUSE,		/* a reply held back on purpose (session_reply_later) */
	SESS_CLOSING,
};

enum auth_step {
	AUTH_STEP_PLAIN,	/* waiting for the PLAIN message */
	AUTH_STEP_LOGIN_USER,	/* LOGIN: waiting for the user name */
	AUTH_STEP_LOGIN_PASS,	/* LOGIN: waiting for the password */
	AUTH_STEP_SCRAM_FIRST,	/* SCRAM-SHA-256: client-first-message */
	AUTH_STEP_SCRAM_FINAL,	/* SCRAM-SHA-256: client-final-message */
	AUTH_STEP_SCRAM_ACK,	/* SCRAM-SHA-256: empty response to server-final */
	AUTH_STEP_CRAM,		/* CRAM-MD5: "user digest" */
};

struct auth_exchange;	/* cmd_auth.c: state of a multi-step mechanism */
struct msgauth;		/* msgauth.h: SPF, DKIM, DMARC of the transaction */
struct dns;
struct dmarc_psl;
struct dkim_key_cache;

struct rcpt {
	struct mailbox mb;
	struct rcpt_params params;
};

struct transaction {
	bool active;			/* MAIL accepted */
	struct mailbox from;
	struct mail_params mp;
	char submitter[ADDR_PATH_MAX + 8]; /* RFC 4954 5: "" unauthenticated, "<>" unknown */
	struct rcpt *rcpts;		/* malloc'd, nrcpts used */
	unsigned nrcpts;
	unsigned rcpt_attempts;		/* RCPT commands, accepted or not */
	struct msgauth *ma;		/* mx listeners: the checks, or NULL */
	char auth_summary[168];		/* " spf=... dkim=... dmarc=..." for the log, or "" */
	/* message in progress */
	bool spooling;			/* spool file open */
	struct spool_msg msg;
	struct data_reader dr;
	struct buf dbuf;		/* DATA output waiting for the spool */
	bool bdat_started;
	bool bdat_last;
	bool bdat_refused;		/* chunk is read and dropped */
	uint64_t bdat_left;
	uint64_t bdat_size;
	const struct smtp_reply *bdat_refusal;
};

struct session {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct worker *w;
	struct session *next, *prev;	/* w->sessions */
	const struct listener_conf *lc;
	char id[17];
	char client_ip[INET6_ADDRSTRLEN];
	uint16_t client_port;
	struct sockaddr_storage peer;
	bool counted;			/* holds a connlimit slot */

	enum session_state state;
	struct buf in;
	struct buf out;
	uv_write_t wreq;
	struct buf wbuf;		/* bytes in the write in flight */
	bool writing;
	bool reading;

	/* TLS: OpenSSL on memory BIOs between the socket and in/out. */
	SSL *ssl;			/* NULL until STARTTLS or implicit TLS */
	BIO *net_in;			/* socket bytes for OpenSSL (owned by ssl) */
	BIO *net_out;			/* OpenSSL's bytes for the socket (owned by ssl) */
	struct buf tlsout;		/* encrypted bytes waiting for the socket */
	bool tls_handshaking;
	bool tls_broken;		/* a fatal TLS error: no close_notify */
	bool tls_implicit;		/* submissions: banner after the handshake */
	char tls_version[16];		/* "TLSv1.3" once established */
	char tls_cipher[64];
	bool skip_line;			/* discarding an over-long command line */

	bool helo_done;
	bool esmtp;
	char helo[256];			/* printable ASCII only */

	/* AUTH (cmd_auth.c) */
	char auth_user[USERS_NAME_MAX + 1];	/* "" until 235 */
	enum auth_step auth_step;
	char auth_login_user[USERS_NAME_MAX + 1]; /* LOGIN's first answer */
	struct auth_exchange *ax;	/* SCRAM, CRAM-MD5: malloc'd for one exchange */

	struct transaction tx;

	const struct smtp_reply *paused_reply; /* sent when SESS_PAUSE ends */

	unsigned errors;
	unsigned messages;
	unsigned refs;
	uint64_t started_ms;
	uint64_t bytes_in;
};

/* Worker side. */
void session_accept(struct worker *w, const struct listener_conf *lc,
		    uv_stream_t *server);
/* SIGTERM: 421 and close every session but those whose message is being
 * made durable; they get their answer, then 421. */
void session_shutdown_all(struct worker *w);

/* Used by the command files. */
void session_reply(struct session *s, const struct smtp_reply *r);
/* Reply lines written as given (EHLO's multi-line list). */
void session_send_raw(struct session *s, const char *text);
void session_replyf(struct session *s, int code, const char *enh,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Count a protocol error; after max_errors, 421 and close. */
void session_error(struct session *s, const struct smtp_reply *r);
void session_close(struct session *s, const char *reason);
void session_flush(struct session *s);
/* Send r after ms, reading no command meanwhile (a tarpit for failed
 * logins): input waits in the buffer, the session is SESS_PAUSE. */
void session_reply_later(struct session *s, const struct smtp_reply *r, uint32_t ms);
/* Idle or data timeout from now, capped by what is left of session_timeout. */
void session_restart_timer(struct session *s);
void session_process(struct session *s);
void session_tx_reset(struct session *s);
void session_ref(struct session *s);
void session_unref(struct session *s);
/* Escaped key=value pairs for the log line of an event. */
void session_log(struct session *s, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* AUTH may be taken here: inside TLS, or in plaintext from loopback when
 * the listener says plaintext_auth loopback (DESIGN.md invariant 5). */
bool session_auth_secure(const struct session *s);
/* The client's address is in the list "ADDR[/LEN] ..." (etrn_allow,
 * trusted_networks); an IPv4-mapped IPv6 address counts as IPv4. */
bool session_peer_in(const struct session *s, const char *networks);
/* The address the client connected to, for logs and Dovecot's lip=. */
void session_local_ip(struct session *s, char *out, size_t cap);

/* STARTTLS (RFC 3207 4.2): forget everything said in plaintext, drop any
 * input already buffered, and start the handshake on the next bytes. */
void session_start_tls(struct session *s);
static inline bool session_tls(const struct session *s)
{
	return s->ssl != NULL && !s->tls_handshaking;
}

/* The command handlers (one row each in session.c's table). */
void cmd_helo(struct session *s, const struct smtp_cmd *c);
void cmd_ehlo(struct session *s, const struct smtp_cmd *c);
void cmd_mail(struct session *s, const struct smtp_cmd *c);
void cmd_rcpt(struct session *s, const struct smtp_cmd *c);
void cmd_data(struct session *s, const struct smtp_cmd *c);
void cmd_bdat(struct session *s, const struct smtp_cmd *c);
void cmd_rset(struct session *s, const struct smtp_cmd *c);
void cmd_noop(struct session *s, const struct smtp_cmd *c);
void cmd_quit(struct session *s, const struct smtp_cmd *c);
void cmd_vrfy(struct session *s, const struct smtp_cmd *c);
void cmd_expn(struct session *s, const struct smtp_cmd *c);
void cmd_help(struct session *s, const struct smtp_cmd *c);
void cmd_starttls(struct session *s, const struct smtp_cmd *c);
void cmd_auth(struct session *s, const struct smtp_cmd *c);
void cmd_etrn(struct session *s, const struct smtp_cmd *c);

/* A line read while state is SESS_AUTH (cmd_auth.c). */
void auth_response(struct session *s, const uint8_t *line, size_t len);
/* Whether the EHLO reply offers AUTH here and now. */
bool auth_offered(const struct session *s);
/* The EHLO keyword line for AUTH ("250-AUTH PLAIN LOGIN\r\n") into out. */
void auth_ehlo_line(const struct session *s, char *out, size_t cap);
/* A worker's usable mechanisms: the configured ones that every account
 * (or the Dovecot backend) can use. */
unsigned auth_setup(const struct conf *c, const struct users *u);
/* End a multi-step exchange (session end, or done). */
void auth_exchange_free(struct session *s);

/* DATA and BDAT bytes (cmd_data.c), called by session_process. */
size_t data_input(struct session *s, const uint8_t *p, size_t n);
size_t bdat_input(struct session *s, const uint8_t *p, size_t n);

#endif
