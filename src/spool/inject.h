/*
 * inject.h - a message made by tern itself (a bounce, a delay notice) put
 * into the queue from the queue process.
 *
 * SYNOPSIS
 *	struct inject_msg m = { .sender = "", .rcpt = "alice@example.org",
 *				.body = BODY_7BIT, .data = bytes, .len = n };
 *	if (spool_inject(queue_dir, &m, qid, err, sizeof err) < 0) retry later;
 *
 * DESCRIPTION
 *	Writes a complete queue file (qfile.h) the way the SMTP side does,
 *	only blocking (call it on the thread pool): QID created with O_EXCL
 *	mode 0600, records written, fsync, then the completion mark (mode
 *	0700) and an fsync of the queue directory. The queue runner's own
 *	watch then picks it up like any other message. The queue id has the
 *	byte 0xFF where a worker's slot goes, so it can never collide with an
 *	id a worker makes.
 *
 *	A bounce has the null sender (RFC 5321 4.5.5: so that it is never
 *	bounced itself) and NOTIFY=NEVER on its recipient (RFC 3461 5.2.1).
 *
 * DIAGNOSTICS
 *	-1 with a sentence in err; a half-written file is removed.
 */
#ifndef TERN_INJECT_H
#define TERN_INJECT_H

#include <stddef.h>
#include <stdint.h>

#include "../proto/smtp_cmd.h"
#include "qfile.h"

struct inject_msg {
	const char *sender;	/* "" for the null sender */
	const char *rcpt;
	unsigned notify;	/* DSN_NOTIFY_* of the recipient */
	enum smtp_body body;	/* BODY_7BIT or BODY_8BITMIME */
	bool smtputf8;
	const uint8_t *data;	/* the whole message, CR LF lines */
	size_t len;
};

int spool_inject(const char *queue_dir, const struct inject_msg *m, char qid[QID_MAX + 1],
		 char *err, size_t errlen);

#endif
