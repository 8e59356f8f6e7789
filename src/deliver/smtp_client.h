/*
 * smtp_client.h - the SMTP and LMTP client: one connection to one address,
 * one or more mail transactions on it, on a libuv loop, never blocking.
 *
 * SYNOPSIS
 *	struct smtpc_opts o;
 *	smtpc_opts_init(&o);			 RFC 5321 4.5.3.2 timeouts
 *	o.helo_name = "mx.example.com"; o.tls = SMTPC_TLS_MAY; o.tls_ctx = ctx;
 *	c = smtpc_connect(loop, (struct sockaddr *)&sin, &o, &cbs, arg, err, sizeof err);
 *	   later cbs.ready(c, &r, arg):	 r.ok ? smtpc_send(c, &msg) : smtpc_quit(c)
 *	   later cbs.done(c, &msg, &r, arg):	 each msg.rcpts[i] has its result;
 *					 r.reusable ? smtpc_send(c, &next) : smtpc_quit(c)
 *	smtpc_quit(c);
 *	   later cbs.closed(arg):		 c is gone
 *
 * DESCRIPTION
 *	Connection and transaction are apart: smtpc_connect() opens the
 *	connection and makes it ready (greeting, EHLO, STARTTLS, EHLO again,
 *	AUTH); smtpc_send() runs one mail transaction on a ready connection
 *	(RSET when the last one failed, MAIL, RCPT..., DATA, the message, the
 *	final dot); smtpc_quit() ends it (QUIT when the connection is idle and
 *	well, else it just closes). The caller picks the address (MX order,
 *	smarthost, LMTP socket) and decides what a failure means; this module
 *	says what happened, at which stage, temporary or not.
 *
 *	Callbacks are always called from the loop, never from inside
 *	smtpc_connect(), smtpc_send() or smtpc_quit(). The c passed is valid
 *	until closed() is called; a callback may call smtpc_send() or
 *	smtpc_quit() on it. Contract, for every c that smtpc_connect() returns:
 *	  - exactly one ready(): r.ok true (the connection is ready for
 *	    smtpc_send) or false (r says what failed; only smtpc_quit() is left);
 *	  - for each smtpc_send() that returned 0, exactly one done(),
 *	    unless smtpc_quit() was called first;
 *	  - after smtpc_quit() (which the caller must call exactly once, also
 *	    after a failure), no ready() or done() any more, then exactly one
 *	    closed(), after which c is freed. A transaction still running when
 *	    smtpc_quit() is called is abandoned: the connection is closed
 *	    without the final dot, so the server delivers nothing of it.
 *	The caller keeps the opts' tls_ctx, the msg and everything it points
 *	to alive and unchanged until done(); opts strings are copied.
 *
 *	addr: AF_INET or AF_INET6 (TCP) or AF_UNIX (a stream socket such as
 *	Dovecot's lmtp socket, given as struct sockaddr_un).
 *
 * PROTOCOL (RFC 5321, and each extension only when the server offers it)
 *	Greeting: 220 goes on; anything else fails at SMTPC_STAGE_GREETING
 *	(a 554 is permanent: this host does not take mail from us; whether to
 *	try the next MX is the caller's choice, Postfix's
 *	smtp_skip_5xx_greeting does).
 *	EHLO (LHLO with lmtp, RFC 2033 4.1); a 5xx to EHLO falls back to HELO,
 *	and then no extension is used (RFC 5321 3.2); a failed LHLO or HELO
 *	fails the connection at SMTPC_STAGE_EHLO.
 *	TLS (RFC 3207), by opts.tls:
 *	  SMTPC_TLS_NONE	never.
 *	  SMTPC_TLS_MAY		STARTTLS when offered; not offered, or refused
 *				with a reply: plaintext. A failed handshake fails
 *				the connection with tls_failed_may set: the caller
 *				may retry this host with SMTPC_TLS_NONE (the
 *				connection is spoilt; Postfix does the same).
 *	  SMTPC_TLS_ENCRYPT	STARTTLS required, any certificate (RFC 7435).
 *	  SMTPC_TLS_VERIFY	required, and the certificate must chain to the
 *				system CAs and name tls_name.
 *	  SMTPC_TLS_IMPLICIT	TLS from the first byte (port 465, RFC 8314),
 *				verified only with tls_verify_implicit.
 *	TLS that is required but not offered, refused, or failing fails at
 *	SMTPC_STAGE_TLS, temporary (a policy mismatch is retried, not
 *	bounced). After the 220 to STARTTLS every byte the server sent after
 *	it in plaintext is thrown away before the handshake (the client side
 *	of CVE-2011-0411: an injected "250 ..." can never pass as a reply
 *	inside TLS), then EHLO again and only its extensions count. The TLS
 *	facts (version, cipher, verified or why not) are in every result.
 *	AUTH (RFC 4954) when auth_user is set: only inside TLS; on a plaintext
 *	connection it fails at SMTPC_STAGE_AUTH (temporary) and no credential
 *	is sent. PLAIN with an initial response, or LOGIN when PLAIN is not
 *	offered; a server offering neither fails it; a server offering no
 *	AUTH at all is used without (auth_mech stays ""). A refused AUTH is
 *	temporary whatever its code (like Postfix's smtp_sasl_auth_soft_bounce:
 *	a wrong password is the operator's to fix, not a reason to bounce).
 *	Credentials are copied at smtpc_connect() and wiped when c is freed;
 *	the buffers that held them are wiped after use.
 *
 *	Transaction (smtpc_send):
 *	  Checked before MAIL, permanent, nothing sent (code 0, our enh; the
 *	  connection stays usable): a message larger than the server's SIZE
 *	  (5.3.4, RFC 1870); BODY=8BITMIME to a server without 8BITMIME (5.6.3
 *	  "Conversion required but not supported": RFC 6152 3 lets us convert
 *	  to 7 bit or bounce, and tern bounces, as conversion would break DKIM
 *	  signatures and needs a MIME rewriter); BODY=BINARYMIME to a server
 *	  without BINARYMIME and CHUNKING (5.6.3 too); SMTPUTF8 to a server
 *	  without SMTPUTF8 (5.6.7, RFC 6531 3.5); a sender address with a
 *	  control octet (5.1.7); a recipient address that is empty or has one
 *	  fails that recipient alone (5.1.3).
 *	  MAIL FROM:<mail_from> with SIZE=size (RFC 1870; size 0: the sum of
 *	  data), BODY=8BITMIME or BINARYMIME, SMTPUTF8, RET= and ENVID= (RFC
 *	  3461: only with DSN offered), AUTH=auth_param xtext-encoded by us
 *	  (RFC 4954 5: only when the server offers AUTH; "<>" is sent as is).
 *	  RCPT TO:<addr> with NOTIFY= and ORCPT= (DSN offered only).
 *	  envid and orcpt are xtext already (as received, RFC 3461 4); one
 *	  that is not valid xtext is left out rather than sent.
 *	  PIPELINING (RFC 2920) offered: MAIL, every RCPT and DATA go in one
 *	  write (with RSET in front when the last transaction failed) and
 *	  the replies are matched in order; otherwise one command at a time,
 *	  stopping at a failed MAIL or when no RCPT was accepted.
 *	  DATA: the message follows 354 as given in data[] (CR LF lines, not
 *	  dot-stuffed): a bare LF or bare CR becomes CR LF, a line starting
 *	  with '.' gets another '.', a missing final CR LF is added, then
 *	  ".\r\n" (so the next hop can never see an ambiguous end of data,
 *	  SMTP smuggling). BINARYMIME goes as one "BDAT n LAST" chunk, bytes
 *	  unchanged (RFC 3030), after the RCPT replies.
 *	  Results: SMTP: a recipient refused at RCPT has that reply; the
 *	  others get the reply to the final dot (or to DATA if that failed).
 *	  LMTP (RFC 2033 4.2): one reply per accepted recipient after the dot,
 *	  in RCPT order. A failed MAIL gives every recipient its reply.
 *	Timeouts (opts, in ms; 0 takes the default): connect 30 s; RFC 5321
 *	4.5.3.2: greeting 5 min, MAIL 5 min, RCPT 5 min, DATA 2 min, each
 *	block of data written 3 min, the reply to the final dot 10 min; EHLO,
 *	HELO, LHLO, STARTTLS and its handshake, AUTH, RSET and QUIT take
 *	helo_timeout_ms (5 min, Postfix's smtp_helo_timeout).
 *	Any reply line that breaks RFC 5321 4.2 (proto/smtp_reply.h) ends the
 *	connection: 4.5.0 "protocol error", temporary. A reply the server
 *	sends while we send the message ends the transaction with it (and the
 *	connection: the rest of the message would be read as commands).
 *
 * RESULTS
 *	struct smtpc_result, in ready() and done():
 *	  ok		ready: the connection can take a message. done: at least
 *			one recipient was accepted at the end (each recipient's
 *			own result says which).
 *	  stage, code, enh, text, temporary: for a failure, where it
 *			happened and why; for success, the last reply (ready:
 *			the EHLO's or AUTH's; done: the dot's, for LMTP the last
 *			recipient's). code 0: no reply from the server
 *			(connect failure, lost connection, timeout, a check of
 *			ours): enh and text are ours then, e.g. 4.4.1 "connect to
 *			192.0.2.1:25: connection refused", 4.4.2 "timeout after
 *			300 s waiting for the reply to MAIL FROM", 5.3.4 "message
 *			size 2000 exceeds the limit of 192.0.2.1:25 (SIZE 1000)".
 *			With a code, text is the server's (escaped, capped, see
 *			smtp_reply.h) and temporary is the code's first digit 4
 *			(but a refused AUTH or required TLS is always temporary).
 *	  reusable	done() only: the connection may take smtpc_send() again.
 *	  peer		"192.0.2.1:25", "[2001:db8::1]:25" or "unix:/path".
 *	  tls_*		"" / false in plaintext; tls_verify_error says why a
 *			certificate did not verify, also when no verification
 *			was required (for the log).
 *	  tls_failed_may	see SMTPC_TLS_MAY.
 *	  esmtp, ext	EHLO was accepted, and what the server offered (after
 *			TLS, the second EHLO's); auth_mech "PLAIN", "LOGIN" or "".
 *	  bare_lf	some reply line ended in a bare LF (for the log).
 *	struct smtpc_rcpt after done(): done true, code/enh/text/temporary as
 *	for the result (code 0 with our words when no reply speaks for it:
 *	the connection broke, a check refused the message).
 *
 * DIAGNOSTICS
 *	smtpc_connect() returns NULL only for an impossible request (an
 *	address family it cannot use, a TLS policy without tls_ctx, a name or
 *	credential longer than SMTPC_NAME_MAX or holding a control octet) or
 *	when memory runs out, with the reason in err; nothing is called back
 *	then. Everything that goes wrong on the network comes in ready().
 *	smtpc_send() returns -1 when c is not ready for a message (before
 *	ready(), after a failure or a non-reusable done(), while a transaction
 *	runs, after smtpc_quit()), when msg has no recipient (a bug of the
 *	caller), or when memory runs out; nothing is called back for it. A
 *	connection that died while idle after a reusable done() is not a -1:
 *	that message's done() says so (temporary, 4.4.2).
 */
#ifndef TERN_SMTP_CLIENT_H
#define TERN_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "../proto/smtp_cmd.h"
#include "../proto/smtp_reply.h"

#define SMTPC_NAME_MAX 255	/* helo_name, tls_name, auth_user, auth_pass */

enum smtpc_tls {
	SMTPC_TLS_NONE = 0,
	SMTPC_TLS_MAY,
	SMTPC_TLS_ENCRYPT,
	SMTPC_TLS_VERIFY,
	SMTPC_TLS_IMPLICIT,
};

enum smtpc_stage {
	SMTPC_STAGE_CONNECT = 0,
	SMTPC_STAGE_GREETING,
	SMTPC_STAGE_EHLO,	/* EHLO, HELO or LHLO */
	SMTPC_STAGE_TLS,	/* STARTTLS, or the handshake (also implicit TLS) */
	SMTPC_STAGE_AUTH,
	SMTPC_STAGE_MAIL,	/* also RSET before it, and the checks before MAIL */
	SMTPC_STAGE_RCPT,
	SMTPC_STAGE_DATA,	/* DATA or BDAT, and sending the message */
	SMTPC_STAGE_DOT,	/* the reply(s) after the message */
};

struct smtpc_opts {
	const char *helo_name;		/* EHLO/HELO/LHLO argument; NULL: "localhost" */
	bool lmtp;			/* RFC 2033 */
	enum smtpc_tls tls;
	bool tls_verify_implicit;	/* SMTPC_TLS_IMPLICIT: verify the certificate */
	const char *tls_name;		/* SNI and the name to verify; NULL: none */
	SSL_CTX *tls_ctx;		/* lib/tls_client.h; needed unless SMTPC_TLS_NONE */
	const char *auth_user;		/* NULL: no AUTH */
	const char *auth_pass;
	/* Timeouts in milliseconds; 0: the default in brackets. */
	unsigned connect_timeout_ms;	/* [30 s] */
	unsigned greeting_timeout_ms;	/* [5 min] */
	unsigned helo_timeout_ms;	/* [5 min] EHLO, STARTTLS, handshake, AUTH, RSET, QUIT */
	unsigned mail_timeout_ms;	/* [5 min] */
	unsigned rcpt_timeout_ms;	/* [5 min] */
	unsigned data_timeout_ms;	/* [2 min] the reply to DATA */
	unsigned block_timeout_ms;	/* [3 min] each write of the message */
	unsigned dot_timeout_ms;	/* [10 min] the reply(s) to the final dot */
	/* A copy of the dialogue (tern send -v): each command line sent
	 * (dir '>') and each reply line received ('<'), without CR LF, after
	 * TLS is removed; the message itself is one line "[message: N octets]"
	 * and its end ".". AUTH lines hold credentials: the caller masks them.
	 * NULL: no copy. */
	void (*trace)(void *arg, char dir, const char *line, size_t len);
	void *trace_arg;
};

struct smtpc_rcpt {
	const char *addr;		/* without <>, as it goes on the wire */
	unsigned notify;		/* enum dsn_notify bits; 0: none */
	const char *orcpt;		/* "rfc822;xtext"; NULL or "": none */
	/* results, set by the client */
	int code;
	char enh[SMTP_ENH_MAX];
	char text[SMTP_REPLY_TEXT_MAX];
	bool temporary;
	bool done;
};

struct smtpc_msg {
	const char *mail_from;		/* "" = the null sender <> */
	const char *envid;		/* xtext; NULL or "": none */
	enum dsn_ret ret;		/* DSN_RET_UNSPECIFIED: none */
	bool smtputf8;
	enum smtp_body body;		/* BODY_UNSPECIFIED and BODY_7BIT send no BODY= */
	uint64_t size;			/* for SIZE=; 0: the sum of data[] */
	const char *auth_param;		/* AUTH= identity, raw (we xtext it); NULL: none */
	struct smtpc_rcpt *rcpts;
	size_t nrcpts;
	const struct iovec *data;	/* the message: CR LF lines, not dot-stuffed */
	size_t ndata;
};

struct smtpc_result {
	bool ok;
	enum smtpc_stage stage;
	int code;
	char enh[SMTP_ENH_MAX];
	char text[SMTP_REPLY_TEXT_MAX];
	bool temporary;
	bool reusable;
	char peer[64];
	char tls_version[16];
	char tls_cipher[64];
	bool tls_verified;
	char tls_verify_error[128];
	bool tls_failed_may;
	bool esmtp;
	struct smtp_ehlo ext;
	char auth_mech[16];
	bool bare_lf;
};

struct smtpc;

struct smtpc_callbacks {
	void (*ready)(struct smtpc *c, const struct smtpc_result *r, void *arg);
	void (*done)(struct smtpc *c, struct smtpc_msg *m, const struct smtpc_result *r, void *arg);
	void (*closed)(void *arg);	/* may be NULL */
};

void smtpc_opts_init(struct smtpc_opts *o);
struct smtpc *smtpc_connect(uv_loop_t *loop, const struct sockaddr *addr,
			    const struct smtpc_opts *o, const struct smtpc_callbacks *cb,
			    void *arg, char *err, size_t errlen);
int smtpc_send(struct smtpc *c, struct smtpc_msg *m);
void smtpc_quit(struct smtpc *c);

const char *smtpc_stage_name(enum smtpc_stage s);	/* "connect", "greeting", ... */
const char *smtpc_tls_name(enum smtpc_tls t);		/* "none", "may", ... */

#endif
