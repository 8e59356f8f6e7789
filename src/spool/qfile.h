/*
 * qfile.h - the queue file format: typed, length-prefixed records.
 *
 * SYNOPSIS
 *	writer:	qfile_begin(&b); qfile_put(&b, QR_SENDER, p, n); ...
 *		qfile_put_end(&b, message_octets);
 *	reader:	qfile_parse(data, len, &env) -> 0, or -1 with env.error
 *
 * DESCRIPTION
 *	A queue file is the magic "TERNQ1\n" then records of
 *	  type (1 octet) | length (4 octets, big-endian) | value (length octets)
 *	ending with exactly one END record whose value is the message size as
 *	8 octets big-endian. Because every value carries its own length, no
 *	byte a client sends can end a field or forge another record (the
 *	OpenSMTPD CVE-2020-8794 lesson); a file without END is incomplete and
 *	is never delivered.
 *
 *	Envelope records come first, then the message in MSG records (any
 *	number of chunks, concatenated in order). PREPEND and FOLDER may
 *	follow the MSG records, because what they say (the Authentication-
 *	Results of the checks that ran while the message streamed to disk)
 *	is known only at its end: PREPEND holds complete header fields that
 *	every reader of the message sees in front of it (qfile_each_chunk
 *	yields it first, and msg_size counts it); FOLDER names the Maildir
 *	folder a local delivery goes to. A recipient record holds
 *	notify bits (1 octet), the ORCPT length (2 octets) and value, then the
 *	address. Unknown record types are refused by the reader, so a newer
 *	format is never half-understood.
 */
#ifndef TERN_QFILE_H
#define TERN_QFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

#define QFILE_MAGIC "TERNQ1\n"
#define QFILE_MAGIC_LEN 7
#define QFILE_REC_HDR 5
#define QFILE_MAX_RCPTS 100000
#define QID_MAX 32

enum qrec_type {
	QR_ID = 'I',	    /* queue id */
	QR_TIME = 'T',	    /* arrival, seconds since the epoch, decimal */
	QR_SENDER = 'S',    /* reverse-path without <>, "" for the null path */
	QR_RCPT = 'R',	    /* notify | orcpt_len | orcpt | address */
	QR_ENVID = 'V',	    /* RFC 3461 ENVID, xtext */
	QR_RET = 'r',	    /* "FULL" or "HDRS" */
	QR_BODY = 'B',	    /* "7BIT" "8BITMIME" "BINARYMIME" */
	QR_SMTPUTF8 = 'U',  /* present when the transaction used SMTPUTF8 */
	QR_CLIENT = 'C',    /* client address, for logs and bounces */
	QR_AUTH = 'A',	    /* RFC 4954 5 submitter of an authenticated client, or "<>" */
	QR_MSG = 'M',	    /* a chunk of the message */
	QR_PREPEND = 'P',   /* header fields put in front of the message (after the MSG records) */
	QR_FOLDER = 'F',    /* Maildir folder chosen at acceptance (quarantine), e.g. "Junk" */
	QR_END = 'E',	    /* 8 octets: message size; must be last */
};

struct qrcpt {
	struct slice addr;
	struct slice orcpt;
	unsigned notify;
};

/* A parsed queue file; slices point into the caller's bytes. */
struct qenv {
	struct slice id;
	struct slice sender;
	struct slice envid;
	struct slice ret;
	struct slice body;
	struct slice client;
	struct slice auth;   /* empty: not submitted by an authenticated client */
	struct slice prepend; /* header fields in front of the message, or empty */
	struct slice folder; /* Maildir folder, or empty: the inbox */
	uint64_t arrival;
	bool smtputf8;
	struct qrcpt *rcpts; /* malloc'd by qfile_parse, free with qfile_env_free */
	size_t nrcpts;
	uint64_t msg_size;  /* the message as delivered: prepend and MSG records */
	size_t first_msg; /* offset of the first MSG record header */
	const char *error;
};

int qfile_begin(struct buf *b);
int qfile_put(struct buf *b, enum qrec_type t, const void *p, size_t n);
int qfile_put_rcpt(struct buf *b, const char *addr, size_t addr_len,
		   const char *orcpt, size_t orcpt_len, unsigned notify);
int qfile_put_end(struct buf *b, uint64_t msg_size);

int qfile_parse(const uint8_t *data, size_t len, struct qenv *env);
void qfile_env_free(struct qenv *env);

/*
 * Walk the message of a parsed file: the PREPEND record, then each MSG
 * record in order, calling fn for each.
 * Stops and returns fn's value when it is not 0.
 */
int qfile_each_chunk(const uint8_t *data, size_t len, const struct qenv *env,
		     int (*fn)(void *arg, const uint8_t *p, size_t n), void *arg);

#endif
