/* hdr_stream.c - header fields of a streaming message, one callback each; see hdr_stream.h. */
#include "hdr_stream.h"

#include <string.h>

enum {
	HS_BOL = 0,	/* at the start of a line: a continuation, a new field, or the empty line */
	HS_BOL_CR,	/* a line began with CR: the empty line if LF follows */
	HS_LINE,	/* inside a line of the current field */
	HS_BODY,	/* the empty line was seen: everything passes */
	HS_END,		/* hdr_stream_end ran */
};

void hdr_stream_init(struct hdr_stream *h, size_t field_max, hdr_field_fn fn, void *arg)
{
	memset(h, 0, sizeof *h);
	h->fn = fn;
	h->arg = arg;
	h->field_max = field_max > 0 ? field_max : 1;	/* room for the CR of HS_BOL_CR */
	buf_init(&h->hold, h->field_max);
	h->state = HS_BOL;
}

static bool ask(struct hdr_stream *h, bool partial)
{
	return h->fn == NULL || h->fn(h->arg, h->hold.data, h->hold.len, partial);
}

/* Octets of the current field: held while they fit, else fn is asked and they stream. */
static int field_octets(struct hdr_stream *h, const uint8_t *p, size_t n, struct buf *out)
{
	if (!h->streaming) {
		size_t room = h->field_max - h->hold.len;

		if (n <= room)
			return buf_append(&h->hold, p, n);
		/* octet field_max + 1 is here: fn decides on the first field_max */
		if (buf_append(&h->hold, p, room) < 0)
			return -1;
		p += room;
		n -= room;
		h->keep = ask(h, true);
		h->streaming = true;
		if (h->keep && buf_append(out, h->hold.data, h->hold.len) < 0)
			return -1;
		buf_reset(&h->hold);
	}
	return h->keep ? buf_append(out, p, n) : 0;
}

/* The current field ended (the next line does not continue it). */
static int field_done(struct hdr_stream *h, struct buf *out)
{
	int rc = 0;

	if (!h->open)
		return 0;
	if (!h->streaming && ask(h, false))
		rc = buf_append(out, h->hold.data, h->hold.len);
	buf_reset(&h->hold);
	h->open = false;
	h->streaming = false;
	return rc;
}

int hdr_stream_feed(struct hdr_stream *h, const uint8_t *p, size_t n, struct buf *out)
{
	size_t i = 0;

	if (h->dead)
		return -1;
	while (i < n) {
		uint8_t c = p[i];

		switch (h->state) {
		case HS_BOL:
			if (h->open && (c == ' ' || c == '\t')) {
				/* a folded line: the field goes on (RFC 5322 2.2.3) */
				h->state = HS_LINE;
				break;	/* the octet is taken by HS_LINE */
			}
			if (field_done(h, out) < 0)
				goto dead;
			if (c == '\n') {	/* the empty line, LF alone (see hdr_stream.h) */
				if (buf_append(out, p + i, 1) < 0)
					goto dead;
				i++;
				h->state = HS_BODY;
				break;
			}
			h->open = true;	/* a new field, whatever its first octet */
			if (c == '\r') {
				if (field_octets(h, p + i, 1, out) < 0)
					goto dead;
				i++;
				h->state = HS_BOL_CR;
				break;
			}
			h->state = HS_LINE;
			break;
		case HS_BOL_CR:
			if (c == '\n') {
				/* CR LF alone: the header ends (RFC 5322 2.1); the held CR is that line's */
				buf_reset(&h->hold);
				h->open = false;
				if (buf_append(out, "\r\n", 2) < 0)
					goto dead;
				i++;
				h->state = HS_BODY;
				break;
			}
			h->state = HS_LINE;	/* a line starting with a lone CR: a field (see hdr_stream.h) */
			break;
		case HS_LINE: {
			/* up to and including the LF that ends the line, or the whole rest */
			const uint8_t *lf = memchr(p + i, '\n', n - i);
			size_t run = lf != NULL ? (size_t)(lf - (p + i)) + 1 : n - i;

			if (field_octets(h, p + i, run, out) < 0)
				goto dead;
			i += run;
			if (lf != NULL)
				h->state = HS_BOL;
			break;
		}
		default:	/* HS_BODY, HS_END: unchanged */
			if (buf_append(out, p + i, n - i) < 0)
				goto dead;
			i = n;
			break;
		}
	}
	return 0;
dead:
	h->dead = true;
	return -1;
}

int hdr_stream_end(struct hdr_stream *h, struct buf *out)
{
	if (h->dead)
		return -1;
	if (h->state != HS_BODY && h->state != HS_END) {
		/* a header never ended by an empty line: its last field is complete */
		if (field_done(h, out) < 0) {
			h->dead = true;
			return -1;
		}
	}
	if (h->state != HS_BODY)
		h->state = HS_END;
	return 0;
}

bool hdr_stream_in_body(const struct hdr_stream *h)
{
	return h->state == HS_BODY;
}

void hdr_stream_free(struct hdr_stream *h)
{
	buf_free(&h->hold);
}
