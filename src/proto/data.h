/*
 * data.h - the DATA reader: where a message ends, and nothing else ends it.
 *
 * SYNOPSIS
 *	struct data_reader r;
 *	data_reader_init(&r, max_size, DATA_BARE_REJECT);
 *	while (...) {
 *		used = data_reader_feed(&r, in, len, &out);
 *		if (r.done) break;	 bytes after `used` are the next command
 *	}
 *
 * DESCRIPTION
 *	A byte state machine over the text after "354" (RFC 5321 4.1.1.4):
 *	the message ends only at CR LF "." CR LF, where the first CR LF is the
 *	one that ended the DATA command (so a message of just ".\r\n" is empty).
 *	Nothing else ends it: "\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r" followed
 *	by anything but LF are content (the SMTP smuggling family,
 *	CVE-2023-51764). A line starting with "." has that dot removed
 *	(RFC 5321 4.5.2). Output is the message content with CR LF line ends,
 *	the final line's CR LF included, the terminating ".\r\n" excluded.
 *
 *	A bare LF (LF not after CR) or bare CR (CR not before LF) anywhere in
 *	the content sets bare_lf / bare_cr. With DATA_BARE_REJECT (default) the
 *	message is to be refused: output stops, reading continues to the real
 *	end. With DATA_BARE_NORMALIZE each bare LF or bare CR is written as
 *	CR LF, but it still never counts as a line start for the terminator
 *	or for dot-unstuffing: only a real CR LF does.
 *
 *	A line longer than 1000 octets including its CR LF (RFC 5321
 *	4.5.3.1.6) sets long_line. Content beyond max_size octets sets
 *	oversize and stops the output (RFC 1870: the rest is still read to the
 *	real end, so it is never parsed as commands). `size` counts content
 *	octets seen, stored or not.
 *
 *	`used` may be less than len only when done is set: the bytes after the
 *	terminator belong to the next pipelined command (RFC 2920). The reader
 *	keeps its state across calls, so the input may be split anywhere.
 *	If `out` cannot grow (its own max), out_full is set and output stops;
 *	the caller is expected to drain `out` (to the spool) between calls so
 *	that never happens.
 *
 * NOTES (choices where the text above leaves room; data.c implements them)
 *	A line starting ".\r" not followed by LF, or ".\n", is a line starting
 *	with "." (after a real CR LF): the dot is removed, then the CR or LF
 *	is bare. When output stops it is cut, so `out` always holds a prefix
 *	of the content however the input was split: at exactly max_size
 *	octets, at out->max, or (DATA_BARE_REJECT) just before the first bare
 *	octet. max_size is literal (0 allows only an empty message; pass
 *	UINT64_MAX for no limit). `size` counts octets as stored: a bare CR
 *	or LF counts 2 under DATA_BARE_NORMALIZE, 1 otherwise. For long_line
 *	a bare CR or LF ends the stored line too, and the removed dot is not
 *	counted. long_line alone does not make data_reader_ok() false; the
 *	bare flags do only under DATA_BARE_REJECT. Feeding after done
 *	returns 0. data_write_stuffed also stuffs a "." right after a bare CR
 *	or LF (it starts a line on the wire), and on failure (-1) leaves out
 *	as it was.
 */
#ifndef TERN_DATA_H
#define TERN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"

#define DATA_LINE_MAX 1000

enum data_bare_policy {
	DATA_BARE_REJECT = 0,
	DATA_BARE_NORMALIZE,
};

struct data_reader {
	int state;		/* private */
	size_t line_len;	/* private: octets of the current line */
	uint64_t size;
	uint64_t max_size;
	enum data_bare_policy policy;
	bool done;
	bool bare_lf;
	bool bare_cr;
	bool long_line;
	bool oversize;
	bool out_full;
};

void data_reader_init(struct data_reader *r, uint64_t max_size,
		      enum data_bare_policy policy);
size_t data_reader_feed(struct data_reader *r, const uint8_t *in, size_t len,
			struct buf *out);
/* True when the content collected so far may be kept (no refusal flag). */
bool data_reader_ok(const struct data_reader *r);

/*
 * The writer side: append msg (CR LF lines, as stored) to out as DATA text,
 * dot-stuffed, any bare LF or CR turned into CR LF, a final CR LF added if
 * missing, then ".\r\n". For the SMTP and LMTP clients.
 */
int data_write_stuffed(struct buf *out, const uint8_t *msg, size_t len);

#endif
