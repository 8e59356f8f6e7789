/*
 * msgauth.h - SPF, DKIM and DMARC for one transaction received on an mx
 * listener, and the Authentication-Results field that reports them.
 *
 * SYNOPSIS
 *	at MAIL FROM:	if (msgauth_applies(s)) t->ma = msgauth_new(s);
 *			if (msgauth_mail_wait(t->ma, on_mail))	 SPF may refuse MAIL:
 *				wait; later on_mail(s, refusal or NULL)
 *	inside DATA:	msgauth_write(t->ma, &t->msg, p, n);	 instead of spool_msg_write
 *	end of DATA:	msgauth_finish(t->ma, &t->msg, on_verdict);	 later on_verdict(s, &verdict)
 *	RSET, session end: msgauth_free(t->ma);
 *
 * DESCRIPTION
 *	Who is checked: sessions on an mx listener (port 25) whose client is
 *	neither authenticated nor in trusted_networks or mail_auth_ignore
 *	(loopback by default: this host's own programs), when mail_auth is on.
 *	Submission is the sender's own server: it is not judged by SPF.
 *
 *	SPF (RFC 7208) starts at MAIL FROM, for the MAIL FROM identity and
 *	for the HELO identity (2.3, 2.4; a null sender is checked once, as
 *	postmaster@HELO). It runs while the client sends RCPT and DATA,
 *	unless its result can refuse MAIL FROM (spf_reject fail, or
 *	mail_auth_tempfail defer): then MAIL waits for it and is answered
 *	550 5.7.23 (fail, RFC 7372 3.2) or 451 4.7.24 (temperror).
 *
 *	DKIM (RFC 6376): the message is fed to the verifier as it streams to
 *	the spool, so a large body needs no second pass. At the end of DATA
 *	every signature's key is asked for, all at once.
 *
 *	The header section goes through proto/hdr_stream on its way to the
 *	spool: every Authentication-Results field claiming authserv_id is
 *	dropped (RFC 8601 5: a reader must be able to trust that id), and the
 *	From fields are kept for DMARC's author domain (RFC 7489 6.6.1).
 *
 *	DMARC (RFC 7489) runs when SPF and DKIM are known. The verdict:
 *	  reject      p=reject failed and dmarc_reject on: 550 5.7.1 naming the
 *	              domain and what failed; also, with dmarc_reject on, a
 *	              message without exactly one author domain (no From
 *	              field, several, mailboxes of several domains, one that
 *	              cannot be read: RFC 7489 6.6.1, RFC 5322 3.6)
 *	  defer       mail_auth_tempfail defer and DMARC is temperror: 451 4.7.0
 *	  quarantine  p=quarantine failed (or, with dmarc_reject off, p=reject
 *	              failed or there is no single author domain):
 *	              accepted with X-Tern-Quarantine, and into
 *	              quarantine_folder for Maildir delivery
 *	  accept      the rest; the results are in the Authentication-Results
 *	              field either way
 *	The Authentication-Results field (and X-Tern-Quarantine) go into the
 *	queue file as a PREPEND record (spool/qfile.h): every delivery puts
 *	them in front of the message.
 *
 *	Time: each wait (SPF at MAIL or at the end of DATA; DKIM keys and
 *	DMARC records after DATA) lasts at most mail_auth_timeout; what has
 *	no answer by then is temperror.
 *
 *	Aggregate report data (RFC 7489 7.2): for each message whose From
 *	domain publishes DMARC, accepted or rejected, one JSON line in
 *	DATA_DIR/dmarc/records.jsonl (mailauth/dmarc.h, dmarc_report_line).
 *	Each worker holds the file open with O_APPEND: rotate it by renaming
 *	it and reloading ternd (SIGHUP starts new workers, which reopen it).
 *
 * CALLBACKS
 *	on_mail and on_verdict run once, later, from the loop; the caller
 *	holds a session reference while it waits. msgauth_free must not be
 *	called while a wait is pending. The session may have been closed in
 *	the meantime (state SESS_CLOSING).
 */
#ifndef TERN_MSGAUTH_H
#define TERN_MSGAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"
#include "../proto/smtp_cmd.h"
#include "../spool/spool.h"

struct session;
struct msgauth;

enum msgauth_action {
	MSGAUTH_ACCEPT = 0,
	MSGAUTH_QUARANTINE,
	MSGAUTH_REJECT,		/* 5xx: reply holds it */
	MSGAUTH_DEFER,		/* 4xx: reply holds it */
};

struct msgauth_verdict {
	enum msgauth_action action;
	int code;			/* REJECT, DEFER: the reply */
	const char *enh;
	char text[420];
	const struct buf *prepend;	/* ACCEPT, QUARANTINE: fields for the PREPEND record */
	const char *folder;		/* QUARANTINE: Maildir folder, or NULL */
	char summary[160];		/* "spf=pass dkim=pass dmarc=pass" for the log line */
};

bool msgauth_applies(const struct session *s);
/* NULL when memory runs out: MAIL then gets 451, never goes unchecked. */
struct msgauth *msgauth_new(struct session *s);
/* True when MAIL FROM must wait for SPF: on_mail(s, refusal) follows with
 * NULL (250) or the reply that refuses it. False: answer MAIL now. */
bool msgauth_mail_wait(struct msgauth *ma,
		       void (*on_mail)(struct session *s, const struct smtp_reply *refusal));
/* Message octets as stored (CR LF lines); the kept ones go to m. */
void msgauth_write(struct msgauth *ma, struct spool_msg *m, const uint8_t *p, size_t n);
/* The whole message was written: the last held header octets go to m;
 * finish every check, then on_verdict. */
void msgauth_finish(struct msgauth *ma, struct spool_msg *m,
		    void (*on_verdict)(struct session *s, const struct msgauth_verdict *v));
/* The aggregate report line, once the outcome is final: after an accepted
 * message is durable, or when it is rejected. */
void msgauth_record(struct msgauth *ma);
void msgauth_free(struct msgauth *ma);

#endif
