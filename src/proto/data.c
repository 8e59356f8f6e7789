/* data.c - the DATA reader (only CR LF "." CR LF ends a message) and the dot-stuffing writer. */
#include "data.h"

#include <string.h>

/*
 * Reader states. "Line start" means right after a real CR LF (or the DATA
 * command's own CR LF, hence the initial state): only there does a "."
 * count, both for the terminator and for dot-unstuffing (RFC 5321 4.5.2).
 * A bare LF or bare CR never leads to a line start, whatever the policy,
 * so "\n.\n", "\n.\r\n", "\r.\r\n" are plain content (CVE-2023-51764).
 */
enum {
	ST_BOL = 0,	/* at a line start */
	ST_DOT,		/* line start, then "."; the dot is never output */
	ST_DOT_CR,	/* line start, ".", CR: LF now ends the message */
	ST_MID,		/* inside a line (also after a bare LF or bare CR) */
	ST_CR,		/* inside a line, CR seen, not yet output */
};

void data_reader_init(struct data_reader *r, uint64_t max_size,
		      enum data_bare_policy policy)
{
	memset(r, 0, sizeof *r);
	r->state = ST_BOL;
	r->max_size = max_size;
	r->policy = policy;
}

bool data_reader_ok(const struct data_reader *r)
{
	if (r->oversize || r->out_full)
		return false;
	/* long_line is not a refusal here: the session decides. */
	if (r->policy != DATA_BARE_NORMALIZE && (r->bare_lf || r->bare_cr))
		return false;
	return true;
}

/*
 * Account for n content octets and append them to out unless output has
 * stopped. Output is always a prefix of the content: it is cut at exactly
 * max_size octets (RFC 1870: the rest is still read, never stored) or at
 * what out can hold, so the result does not depend on how the input was
 * split into calls.
 */
static void emit(struct data_reader *r, struct buf *out, const uint8_t *p,
		 size_t n)
{
	bool was_ok = data_reader_ok(r);
	uint64_t before = r->size;
	size_t take = n, room;

	if (__builtin_add_overflow(r->size, (uint64_t)n, &r->size))
		r->size = UINT64_MAX;
	if (r->size > r->max_size)
		r->oversize = true;
	if (!was_ok)
		return;
	/* was_ok means oversize was clear, so before <= max_size. */
	if (r->oversize && r->max_size - before < take)
		take = (size_t)(r->max_size - before);
	room = out->max > out->len ? out->max - out->len : 0;
	if (take > room) {
		take = room;
		r->out_full = true;
	}
	if (take > 0 && buf_append(out, p, take) < 0)
		r->out_full = true;	/* ENOMEM: same consequence */
}

/* Ordinary octets of the current line. */
static void text(struct data_reader *r, struct buf *out, const uint8_t *p,
		 size_t n)
{
	/*
	 * RFC 5321 4.5.3.1.6: at most 1000 octets per line including CR LF,
	 * not counting a stuffing dot (which never reaches here). Every line
	 * ends in a CR LF (or a bare end written as one), so more than 998
	 * octets of text already means too long. line_len is capped so it
	 * cannot wrap.
	 */
	if (n > DATA_LINE_MAX - r->line_len)
		r->line_len = DATA_LINE_MAX;
	else
		r->line_len += n;
	if (r->line_len > DATA_LINE_MAX - 2)
		r->long_line = true;
	emit(r, out, p, n);
}

/* A real CR LF: written as is, and the next octet is at a line start. */
static void crlf(struct data_reader *r, struct buf *out)
{
	r->line_len = 0;
	emit(r, out, (const uint8_t *)"\r\n", 2);
}

/*
 * A bare CR or bare LF. Flag it first so that with DATA_BARE_REJECT the
 * output stops before it (the octet is only counted); with
 * DATA_BARE_NORMALIZE it is written as CR LF. Either way the stored line
 * ends here (line_len restarts), but the caller does not enter ST_BOL: a
 * following "." is neither a terminator nor a stuffing dot.
 */
static void bare(struct data_reader *r, struct buf *out, uint8_t c)
{
	if (c == '\n')
		r->bare_lf = true;
	else
		r->bare_cr = true;
	r->line_len = 0;
	if (r->policy == DATA_BARE_NORMALIZE)
		emit(r, out, (const uint8_t *)"\r\n", 2);
	else
		emit(r, out, &c, 1);
}

size_t data_reader_feed(struct data_reader *r, const uint8_t *in, size_t len,
			struct buf *out)
{
	size_t i = 0, nlf = 0, j;
	bool nlf_known = false;
	const uint8_t *q;

	if (r->done)
		return 0;
	while (i < len) {
		uint8_t c = in[i];

		switch (r->state) {
		case ST_BOL:
			if (c == '.') {
				r->state = ST_DOT;
				i++;
			} else {
				r->state = ST_MID;
			}
			break;
		case ST_DOT:
			/*
			 * RFC 5321 4.5.2: a line starting with "." has that
			 * dot removed. Anything but CR after it is ordinary
			 * line content, reprocessed in ST_MID (a bare LF
			 * there is flagged as such: ".\n" is not an end).
			 */
			if (c == '\r') {
				r->state = ST_DOT_CR;
				i++;
			} else {
				r->state = ST_MID;
			}
			break;
		case ST_DOT_CR:
			if (c == '\n') {
				/* CR LF "." CR LF: RFC 5321 4.1.1.4. */
				r->done = true;
				return i + 1;
			}
			/*
			 * ".\r" then not LF: the line did start with ".", so
			 * that dot is a stuffing dot and is dropped (RFC 5321
			 * 4.5.2 applies to every line starting with a period);
			 * the CR is then a bare CR. The byte after it is
			 * reprocessed inside the line (not a line start).
			 */
			bare(r, out, '\r');
			r->state = ST_MID;
			break;
		case ST_CR:
			if (c == '\n') {
				crlf(r, out);
				r->state = ST_BOL;
				i++;
			} else {
				bare(r, out, '\r');
				r->state = ST_MID;	/* reprocess c */
			}
			break;
		case ST_MID:
		default:
			if (c == '\r') {
				r->state = ST_CR;
				i++;
				break;
			}
			if (c == '\n') {
				bare(r, out, '\n');	/* LF not after CR */
				i++;
				break;
			}
			/*
			 * A run of ordinary octets up to the next CR or LF.
			 * The next LF is remembered for the whole call and
			 * the CR search never goes past it, so every octet is
			 * scanned O(1) times: the call stays O(len).
			 */
			if (!nlf_known || nlf < i) {
				q = memchr(in + i, '\n', len - i);
				nlf = q != NULL ? (size_t)(q - in) : len;
				nlf_known = true;
			}
			q = memchr(in + i, '\r', nlf - i);
			j = q != NULL ? (size_t)(q - in) : nlf;
			text(r, out, in + i, j - i);
			i = j;
			break;
		}
	}
	return len;
}

int data_write_stuffed(struct buf *out, const uint8_t *msg, size_t len)
{
	size_t start = out->len, i = 0, nlf = 0, j;
	bool bol = true, nlf_known = false;
	const uint8_t *q;

	while (i < len) {
		uint8_t c = msg[i];

		/*
		 * RFC 5321 4.5.2: a line starting with "." gets one more.
		 * A bare CR or LF is written as CR LF, so the octet after it
		 * starts a line on the wire and is stuffed too.
		 */
		if (bol && c == '.' && buf_append(out, ".", 1) < 0)
			goto fail;
		bol = false;
		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < len && msg[i + 1] == '\n')
				i++;
			i++;
			if (buf_append(out, "\r\n", 2) < 0)
				goto fail;
			bol = true;
			continue;
		}
		/* Run of ordinary octets, scanned as in data_reader_feed. */
		if (!nlf_known || nlf < i) {
			q = memchr(msg + i, '\n', len - i);
			nlf = q != NULL ? (size_t)(q - msg) : len;
			nlf_known = true;
		}
		q = memchr(msg + i, '\r', nlf - i);
		j = q != NULL ? (size_t)(q - msg) : nlf;
		if (buf_append(out, msg + i, j - i) < 0)
			goto fail;
		i = j;
	}
	/* The last line gets its CR LF; an empty message stays empty. */
	if (!bol && buf_append(out, "\r\n", 2) < 0)
		goto fail;
	if (buf_append(out, ".\r\n", 3) < 0)
		goto fail;
	return 0;
fail:
	out->len = start;	/* buf convention: unchanged on failure */
	return -1;
}
