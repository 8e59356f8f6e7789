/*
 * hdr_stream.h - the header section of a message, field by field, as it
 * streams past: drop some fields, see others, pass the body through.
 *
 * SYNOPSIS
 *	struct hdr_stream h;
 *	hdr_stream_init(&h, 64 * 1024, keep_field, ctx);
 *	while (...)	 chunks split anywhere
 *		if (hdr_stream_feed(&h, chunk, n, &out) < 0) ... memory
 *	hdr_stream_end(&h, &out);
 *	hdr_stream_free(&h);
 *
 * DESCRIPTION
 *	Input is a message as stored (dot-unstuffed, lines ending in CR LF):
 *	the header fields, the empty line, the body. Output, appended to out,
 *	is the same octets less the fields fn(arg, ...) returned false for.
 *
 *	Lines. A line ends at LF (after CR or not). The header ends at the
 *	first line that is empty: CR LF alone (or LF alone); that line and
 *	everything after it pass through unchanged, with no callback, each
 *	chunk appended to out as it comes. hdr_stream_in_body() is true from
 *	then on.
 *
 *	Fields. A field starts at a line that does not begin with SP or HTAB,
 *	and takes the lines after it that do (RFC 5322 2.2.3); it ends where
 *	the next line begins with anything else, or at hdr_stream_end. So the
 *	callback for a field runs when the first octet after it arrives. fn
 *	gets the whole field, name to final CR LF, and says keep (true) or drop
 *	(false). A field longer than field_max octets is cut: fn gets its
 *	first field_max octets with partial set, as soon as octet field_max + 1
 *	arrives, and its answer holds for the rest of the field, which streams
 *	through (or is dropped) as it comes without another call: fn cannot
 *	see the rest, so a filter drops cut fields it would need to read whole
 *	(mailauth/authres.h: every cut Authentication-Results field). A NULL
 *	fn keeps everything.
 *
 *	Malformed headers. A line that is not a field's first line by RFC 5322
 *	(no colon, a colon first, non-printable octets in the name, SP or HTAB
 *	at the very start of the message, a lone CR at its start) is a field
 *	like any other here: fn gets it, with the continuation lines after it,
 *	and the header goes on to the empty line. This is deliberate: Dovecot's
 *	header parser (lib-mail message-header-parser.c) reads a line without
 *	a colon as a field named by the whole line and goes on reading header
 *	fields, so ending the header there instead would let a forged
 *	Authentication-Results below it reach the mailbox as a header field,
 *	unchecked. Likewise LF alone ends a line here, as it does there
 *	(mailauth/dkim.h takes a bare LF as content instead; the two never
 *	meet, since the SMTP layer refuses bare LF in DATA). fn
 *	must therefore expect fields without a colon (authres_field_is_ours
 *	and a From check simply do not match them). A message with no empty
 *	line is all header (its last field complete at hdr_stream_end).
 *
 *	Guarantees, whatever the input and however it is split into chunks:
 *	fn is called with the same fields in the same order; out receives the
 *	same octets; with every field kept, out equals the input; with every
 *	field dropped, out is the input from the empty line on (empty when
 *	there is none). Memory held by a stream: field_max octets at most
 *	(field_max 0 counts as 1). fn must not feed the same stream.
 *
 * DIAGNOSTICS
 *	hdr_stream_feed and hdr_stream_end return -1 when out (or the stream's
 *	own buffer) cannot grow; the stream is then dead (every later call
 *	returns -1) and out holds an unspecified prefix of the output: the
 *	caller abandons the message.
 */
#ifndef TERN_HDR_STREAM_H
#define TERN_HDR_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

/*
 * Keep the field (true) or drop it (false). field: the whole field (name,
 * colon, body, folded lines, final CR LF), or when partial is true only
 * its first field_max octets (see DESCRIPTION).
 */
typedef bool (*hdr_field_fn)(void *arg, const uint8_t *field, size_t len, bool partial);

struct hdr_stream {
	hdr_field_fn fn;
	void *arg;
	size_t field_max;	/* longest field given whole to fn */
	struct buf hold;	/* the current field while it fits in field_max */
	int state;		/* hdr_stream.c: HS_* */
	bool open;		/* a field is under way (held, or streaming) */
	bool streaming;		/* it passed field_max: fn has answered */
	bool keep;		/* streaming: that answer */
	bool dead;		/* out could not grow */
};

void hdr_stream_init(struct hdr_stream *h, size_t field_max, hdr_field_fn fn, void *arg);
/* Feed n octets; what is kept is appended to out. 0, or -1 (see DIAGNOSTICS). */
int hdr_stream_feed(struct hdr_stream *h, const uint8_t *p, size_t n, struct buf *out);
/* End of message: the field under way is complete. 0, or -1. Feed no more after it. */
int hdr_stream_end(struct hdr_stream *h, struct buf *out);
/* True once the empty line that ends the header has been seen. */
bool hdr_stream_in_body(const struct hdr_stream *h);
void hdr_stream_free(struct hdr_stream *h);

#endif
