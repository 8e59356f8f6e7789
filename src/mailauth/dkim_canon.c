/* dkim_canon.c - DKIM canonicalization (RFC 6376 3.4): header fields, and the streaming body canonicalizer. */
#include "dkim.h"

#include <string.h>

#include <openssl/evp.h>

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/*
 * RFC 6376 3.4.1: simple is the field unchanged. 3.4.2 relaxed: name in
 * lower case without the WSP before the colon; value unfolded (every CR LF
 * inside a field is followed by WSP, so all of them go), runs of WSP as one
 * SP, WSP at both ends removed; then ":" value CR LF. Bare CR and LF are
 * content. A field without a colon is all name (it is never selected by h=,
 * but the relaxed form is still well defined).
 */
int dkim_canon_header(enum dkim_canon c, const uint8_t *field, size_t n, struct buf *out)
{
	const uint8_t *colon, *v, *end;
	size_t namelen;
	bool pending = false, any = false;

	if (c == DKIM_CANON_SIMPLE)
		return buf_append(out, field, n);

	end = field + n;
	if (n >= 2 && end[-2] == '\r' && end[-1] == '\n')
		end -= 2;	/* the field's own CR LF; added back below */
	colon = memchr(field, ':', (size_t)(end - field));
	namelen = colon ? (size_t)(colon - field) : (size_t)(end - field);
	while (namelen > 0 && is_wsp(field[namelen - 1]))
		namelen--;
	if (buf_reserve(out, namelen + (size_t)(end - field) + 3) < 0)
		return -1;
	for (size_t i = 0; i < namelen; i++) {
		uint8_t ch = field[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (uint8_t)(ch - 'A' + 'a');
		out->data[out->len++] = ch;
	}
	out->data[out->len++] = ':';
	for (v = colon ? colon + 1 : end; v < end; v++) {
		if (*v == '\r' && v + 1 < end && v[1] == '\n') {
			v++;	/* unfold: the CR LF of a continuation line */
			continue;
		}
		if (is_wsp(*v)) {
			pending = true;
			continue;
		}
		if (pending && any)
			out->data[out->len++] = ' ';
		pending = false;
		any = true;
		out->data[out->len++] = *v;
	}
	out->data[out->len++] = '\r';
	out->data[out->len++] = '\n';
	return 0;
}

/*
 * The body canonicalizers as byte state machines, so that a body split
 * anywhere gives the same output as the body in one piece. What is held
 * back, in order: `crlfs` CR LFs (line ends that may turn out to be
 * trailing empty lines), then (relaxed) one pending SP for a run of WSP,
 * then a CR that may start a CR LF. The next octet decides: LF completes
 * the CR LF (relaxed: the WSP before it is dropped, RFC 6376 3.4.4 a);
 * anything else flushes what is held, in that order.
 *
 * simple (3.4.3): trailing CR LFs removed, then exactly one CR LF added
 * (an empty body becomes CR LF). relaxed (3.4.4): the same, except that a
 * body consisting only of line ends (or nothing) is empty (RFC 6376
 * erratum 1384 as implemented everywhere).
 */
static const uint8_t CRLFS[64] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
				 "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";

static void out(struct dkim_bodycanon *bc, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	bc->out += n;
	bc->sink(bc->arg, p, n);
}

static void flush(struct dkim_bodycanon *bc)
{
	while (bc->crlfs > 0) {
		uint64_t k = bc->crlfs > sizeof CRLFS / 2 ? sizeof CRLFS / 2 : bc->crlfs;
		out(bc, CRLFS, (size_t)k * 2);
		bc->crlfs -= k;
	}
	if (bc->wsp) {
		out(bc, (const uint8_t *)" ", 1);
		bc->wsp = false;
		bc->seen = true;
	}
	if (bc->cr) {
		out(bc, (const uint8_t *)"\r", 1);
		bc->cr = false;
		bc->seen = true;
	}
}

void dkim_bodycanon_init(struct dkim_bodycanon *bc, enum dkim_canon c, dkim_sink_fn sink,
			 void *arg)
{
	memset(bc, 0, sizeof *bc);
	bc->canon = c;
	bc->sink = sink;
	bc->arg = arg;
}

static void feed_simple(struct dkim_bodycanon *bc, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;

	while (p < end) {
		if (bc->cr) {
			if (*p == '\n') {
				bc->cr = false;
				bc->crlfs++;
				p++;
				continue;
			}
			flush(bc);	/* a bare CR: content */
		}
		if (*p == '\r') {
			bc->cr = true;
			p++;
			continue;
		}
		/* a run of content up to the next CR */
		const uint8_t *cr = memchr(p, '\r', (size_t)(end - p));
		const uint8_t *stop = cr ? cr : end;
		flush(bc);
		out(bc, p, (size_t)(stop - p));
		p = stop;
	}
}

static void feed_relaxed(struct dkim_bodycanon *bc, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;

	while (p < end) {
		uint8_t ch = *p;

		if (bc->cr) {
			if (ch == '\n') {
				bc->cr = false;
				bc->wsp = false;	/* WSP at the end of a line goes */
				bc->crlfs++;
				p++;
				continue;
			}
			flush(bc);	/* a bare CR: content */
		}
		if (ch == '\r') {
			bc->cr = true;
			p++;
			continue;
		}
		if (is_wsp(ch)) {
			bc->wsp = true;
			p++;
			continue;
		}
		/* a run of content without WSP or CR */
		const uint8_t *q = p;
		while (q < end && *q != '\r' && !is_wsp(*q))
			q++;
		flush(bc);
		out(bc, p, (size_t)(q - p));
		bc->seen = true;
		p = q;
	}
}

void dkim_bodycanon_feed(struct dkim_bodycanon *bc, const uint8_t *p, size_t n)
{
	if (bc->canon == DKIM_CANON_SIMPLE)
		feed_simple(bc, p, n);
	else
		feed_relaxed(bc, p, n);
}

void dkim_bodycanon_end(struct dkim_bodycanon *bc)
{
	if (bc->cr)
		flush(bc);	/* a final bare CR is content */
	if (bc->canon == DKIM_CANON_SIMPLE) {
		bc->crlfs = 0;
		out(bc, CRLFS, 2);
		return;
	}
	/*
	 * WSP at the end of a last line without CR LF is at the end of a line
	 * too: dropped (RFC 6376 3.4.4 a, as Mail::DKIM does; dkimpy keeps it).
	 * This keeps the canonical form a fixed point.
	 */
	bc->wsp = false;
	bc->crlfs = 0;
	if (bc->seen)
		out(bc, CRLFS, 2);
}

struct limited_md {
	EVP_MD_CTX *md;
	bool has_l;
	uint64_t l;
	uint64_t done;
	bool failed;
};

static void md_sink(void *arg, const uint8_t *p, size_t n)
{
	struct limited_md *lm = arg;

	if (lm->has_l) {
		if (lm->done >= lm->l)
			return;
		if ((uint64_t)n > lm->l - lm->done)
			n = (size_t)(lm->l - lm->done);
	}
	lm->done += n;
	if (EVP_DigestUpdate(lm->md, p, n) != 1)
		lm->failed = true;
}

int dkim_body_hash(enum dkim_canon c, const uint8_t *body, size_t n, bool has_l,
		   uint64_t l, uint8_t hash[32])
{
	struct limited_md lm = { .has_l = has_l, .l = l };
	struct dkim_bodycanon bc;
	unsigned len = 0;
	int rc = -1;

	lm.md = EVP_MD_CTX_new();
	if (lm.md == NULL || EVP_DigestInit_ex(lm.md, EVP_sha256(), NULL) != 1)
		goto out;
	dkim_bodycanon_init(&bc, c, md_sink, &lm);
	dkim_bodycanon_feed(&bc, body, n);
	dkim_bodycanon_end(&bc);
	if (!lm.failed && EVP_DigestFinal_ex(lm.md, hash, &len) == 1 && len == 32)
		rc = 0;
out:
	EVP_MD_CTX_free(lm.md);
	return rc;
}
