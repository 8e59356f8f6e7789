/* addr.c - the RFC 5321 path parser (MAIL FROM / RCPT TO) and its formatter. */
#include "addr.h"

#include <arpa/inet.h>
#include <string.h>

#include "../lib/buf.h"

/*
 * The parse cursor. `end` is the parse limit: the input length, or the
 * '<' plus ADDR_PATH_MAX octets when the input is longer (RFC 5321
 * 4.5.3.1.3), so no loop can run past either. `cut` says which: running
 * out of input inside a cut window means the path is too long, otherwise
 * it is unterminated.
 */
struct cur {
	const uint8_t *p;
	size_t pos;
	size_t end;
	bool cut;
	unsigned flags;
};

static enum addr_err out_of_input(const struct cur *c)
{
	return c->cut ? ADDR_ETOOLONG : ADDR_ESYNTAX;
}

/*
 * The error for a byte that is not allowed where it stands: non-ASCII is
 * an 8-bit problem (RFC 6531 3.5), control characters and spaces are stray
 * characters, anything else is the caller's context error.
 */
static enum addr_err bad_byte(uint8_t ch, enum addr_err dflt)
{
	if (ch >= 0x80)
		return ADDR_E8BIT;
	if (ch <= 0x20 || ch == 0x7f)
		return ADDR_ESYNTAX;
	return dflt;
}

static bool is_alpha(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(uint8_t ch)
{
	return ch >= '0' && ch <= '9';
}

/* atext, RFC 5322 3.2.3 (used by RFC 5321 4.1.2 Atom). */
static bool is_atext(uint8_t ch)
{
	if (is_alpha(ch) || is_digit(ch))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

static uint8_t lower(uint8_t ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (uint8_t)(ch - 'A' + 'a') : ch;
}

/*
 * Length of the well-formed UTF-8 sequence at p[0..n) (RFC 3629 4), or 0.
 * Refuses overlong forms, surrogates (U+D800..U+DFFF), code points above
 * U+10FFFF and, since a control character is never accepted, the C1
 * controls U+0080..U+009F.
 */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t c0 = p[0], lo = 0x80, hi = 0xbf;
	size_t more;

	if (c0 >= 0xc2 && c0 <= 0xdf)
		more = 1;
	else if (c0 == 0xe0) {
		more = 2;
		lo = 0xa0; /* no overlong 3-octet forms */
	} else if ((c0 >= 0xe1 && c0 <= 0xec) || c0 == 0xee || c0 == 0xef)
		more = 2;
	else if (c0 == 0xed) {
		more = 2;
		hi = 0x9f; /* no surrogates */
	} else if (c0 == 0xf0) {
		more = 3;
		lo = 0x90; /* no overlong 4-octet forms */
	} else if (c0 >= 0xf1 && c0 <= 0xf3)
		more = 3;
	else if (c0 == 0xf4) {
		more = 3;
		hi = 0x8f; /* nothing above U+10FFFF */
	} else
		return 0;
	if (n <= more)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i <= more; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	if (c0 == 0xc2 && p[1] < 0xa0)
		return 0; /* C1 control */
	return more + 1;
}

/*
 * A Domain (RFC 5321 4.1.2: sub-domain *("." sub-domain)), each label
 * Let-dig [Ldh-str] of 1..63 octets (RFC 1035 2.3.4), U-labels allowed with
 * ADDR_UTF8_OK (RFC 6531 3.3). Ends at `stop1` or `stop2`, which are left
 * unconsumed. Writes the lower-cased domain to out[0..ADDR_DOMAIN_MAX].
 */
static enum addr_err parse_domain(struct cur *c, uint8_t stop1, uint8_t stop2,
				  char *out, size_t *outlen, bool *utf8)
{
	size_t n = 0, label = 0;
	uint8_t prev = 0;

	for (;;) {
		if (c->pos >= c->end)
			return out_of_input(c);
		uint8_t ch = c->p[c->pos];
		size_t k = 1;

		if (ch == '.' || ch == stop1 || ch == stop2) {
			/* Empty label: leading dot, "..", trailing dot, or
			 * no domain at all. */
			if (label == 0 || prev == '-')
				return ADDR_EDOMAIN;
			if (ch != '.')
				break;
			label = 0;
		} else if (is_alpha(ch) || is_digit(ch)) {
			label++;
		} else if (ch == '-') {
			if (label == 0)
				return ADDR_EDOMAIN;
			label++;
		} else if (ch >= 0x80 && (c->flags & ADDR_UTF8_OK)) {
			k = utf8_seq(c->p + c->pos, c->end - c->pos);
			if (k == 0)
				return ADDR_E8BIT;
			label += k;
			*utf8 = true;
		} else {
			return bad_byte(ch, ADDR_EDOMAIN);
		}
		if (label > 63)
			return ADDR_EDOMAIN;
		if (n + k > ADDR_DOMAIN_MAX)
			return ADDR_ETOOLONG;
		for (size_t i = 0; i < k; i++)
			out[n++] = (char)lower(c->p[c->pos + i]);
		prev = ch;
		c->pos += k;
	}
	out[n] = '\0';
	*outlen = n;
	return ADDR_OK;
}

/*
 * An address literal (RFC 5321 4.1.3): "[" IPv4 "]" or "[IPv6:" IPv6 "]",
 * each checked with inet_pton. General-address-literal (a standardized
 * tag other than IPv6) is refused: no such tag is registered. Stored with
 * its brackets, lower-cased.
 */
static enum addr_err parse_literal(struct cur *c, char *out, size_t *outlen)
{
	char text[64];
	size_t n = 0;
	int af = AF_INET;
	const char *addr = text;

	c->pos++; /* '[' */
	for (;;) {
		if (c->pos >= c->end)
			return out_of_input(c);
		uint8_t ch = c->p[c->pos];

		if (ch == ']')
			break;
		/* dcontent is %d33-90 / %d94-126: no '[', '\', ']' */
		if (ch <= 0x20 || ch >= 0x7f || ch == '[' || ch == '\\')
			return bad_byte(ch, ADDR_EDOMAIN);
		if (n + 1 >= sizeof(text))
			return ADDR_EDOMAIN; /* longer than any IP literal */
		text[n++] = (char)lower(ch);
		c->pos++;
	}
	c->pos++; /* ']' */
	text[n] = '\0';
	if (slice_startswith_nocase((struct slice){ (const uint8_t *)text, n },
				    "ipv6:")) {
		af = AF_INET6;
		addr = text + 5;
	}
	uint8_t bin[16];
	if (inet_pton(af, addr, bin) != 1)
		return ADDR_EDOMAIN;
	/* n <= 62, so "[" text "]" fits in ADDR_DOMAIN_MAX. */
	out[0] = '[';
	memcpy(out + 1, text, n);
	out[n + 1] = ']';
	out[n + 2] = '\0';
	*outlen = n + 2;
	return ADDR_OK;
}

/* Dot-string (RFC 5321 4.1.2): Atom *("." Atom); UTF-8 atext with
 * ADDR_UTF8_OK (RFC 6531 3.3). Ends before '@' or '>'. */
static enum addr_err parse_dot_string(struct cur *c, struct mailbox *mb)
{
	size_t n = 0, atom = 0;

	for (;;) {
		if (c->pos >= c->end)
			return out_of_input(c);
		uint8_t ch = c->p[c->pos];
		size_t k = 1;

		if (ch == '@' || ch == '>') {
			if (atom == 0)
				return ADDR_ELOCAL; /* empty, or ends in '.' */
			break;
		} else if (ch == '.') {
			if (atom == 0)
				return ADDR_ELOCAL; /* leading '.' or ".." */
			atom = 0;
		} else if (is_atext(ch)) {
			atom++;
		} else if (ch >= 0x80 && (c->flags & ADDR_UTF8_OK)) {
			k = utf8_seq(c->p + c->pos, c->end - c->pos);
			if (k == 0)
				return ADDR_E8BIT;
			atom += k;
			mb->utf8 = true;
		} else {
			return bad_byte(ch, ADDR_ELOCAL);
		}
		if (n + k > ADDR_LOCAL_MAX)
			return ADDR_ETOOLONG; /* RFC 5321 4.5.3.1.1 */
		memcpy(mb->local + n, c->p + c->pos, k);
		n += k;
		c->pos += k;
	}
	mb->local[n] = '\0';
	mb->local_len = n;
	return ADDR_OK;
}

/*
 * Quoted-string (RFC 5321 4.1.2): DQUOTE *(qtextSMTP / quoted-pairSMTP)
 * DQUOTE, qtextSMTP = %d32-33 / %d35-91 / %d93-126 (plus UTF-8 with
 * ADDR_UTF8_OK, RFC 6531 3.3), quoted-pairSMTP = "\" %d32-126. Stores the
 * decoded content. An empty quoted string is refused: it names no one.
 */
static enum addr_err parse_quoted(struct cur *c, struct mailbox *mb)
{
	size_t n = 0;

	c->pos++; /* opening DQUOTE */
	for (;;) {
		if (c->pos >= c->end)
			return out_of_input(c);
		uint8_t ch = c->p[c->pos];
		size_t k = 1;
		const uint8_t *src = c->p + c->pos;

		if (ch == '"') {
			c->pos++;
			break;
		} else if (ch == '\\') {
			if (c->end - c->pos < 2)
				return out_of_input(c);
			uint8_t q = c->p[c->pos + 1];
			if (q < 32 || q > 126)
				return ADDR_ESYNTAX;
			src++;
			c->pos++; /* the backslash; the pair's char below */
		} else if (ch >= 32 && ch <= 126) {
			/* qtextSMTP: '"' and '\' were handled above */
		} else if (ch >= 0x80 && (c->flags & ADDR_UTF8_OK)) {
			k = utf8_seq(src, c->end - c->pos);
			if (k == 0)
				return ADDR_E8BIT;
			mb->utf8 = true;
		} else {
			return bad_byte(ch, ADDR_ESYNTAX);
		}
		if (n + k > ADDR_LOCAL_MAX)
			return ADDR_ETOOLONG; /* decoded, RFC 5321 4.5.3.1.1 */
		memcpy(mb->local + n, src, k);
		n += k;
		c->pos += k;
	}
	if (n == 0)
		return ADDR_ELOCAL;
	mb->local[n] = '\0';
	mb->local_len = n;
	mb->local_quoted = true;
	return ADDR_OK;
}

/*
 * A-d-l ":" (RFC 5321 4.1.2): "@" Domain *( "," "@" Domain ) ":". Each
 * domain is validated like any other, then thrown away (RFC 5321 C:
 * source routes are to be ignored).
 */
static enum addr_err skip_source_route(struct cur *c)
{
	char scratch[ADDR_DOMAIN_MAX + 1];
	size_t n;
	bool utf8 = false;

	for (;;) {
		if (c->pos >= c->end)
			return out_of_input(c);
		if (c->p[c->pos] != '@')
			return bad_byte(c->p[c->pos], ADDR_ESYNTAX);
		c->pos++;
		enum addr_err e = parse_domain(c, ',', ':', scratch, &n, &utf8);
		if (e != ADDR_OK)
			return e;
		/* parse_domain stopped at ',' or ':' */
		if (c->p[c->pos++] == ':')
			return ADDR_OK;
	}
}

enum addr_err addr_parse_path(const uint8_t *p, size_t len, unsigned flags,
			      struct mailbox *out, size_t *used)
{
	struct cur c = { .p = p, .pos = 0, .end = len, .flags = flags };
	enum addr_err e;

	memset(out, 0, sizeof(*out));
	*used = 0;

	/* Spaces the caller left after "FROM:" / "TO:". */
	while (c.pos < len && p[c.pos] == ' ')
		c.pos++;
	if (c.pos >= len || p[c.pos] != '<')
		return ADDR_ESYNTAX; /* a bare address is refused */
	if (len - c.pos > ADDR_PATH_MAX) {
		c.end = c.pos + ADDR_PATH_MAX; /* '<' through '>' inclusive */
		c.cut = true;
	}
	c.pos++;
	if (c.pos >= c.end)
		return out_of_input(&c);

	/* "<>": the null reverse-path (RFC 5321 4.5.5). */
	if (p[c.pos] == '>') {
		if (!(flags & ADDR_NULL_OK))
			return ADDR_ENULL;
		out->is_null = true;
		*used = c.pos + 1;
		return ADDR_OK;
	}

	if (p[c.pos] == '@') {
		e = skip_source_route(&c);
		if (e != ADDR_OK)
			return e;
		out->had_source_route = true;
		if (c.pos >= c.end)
			return out_of_input(&c);
	}

	if (p[c.pos] == '"')
		e = parse_quoted(&c, out);
	else
		e = parse_dot_string(&c, out);
	if (e != ADDR_OK)
		return e;

	if (c.pos >= c.end)
		return out_of_input(&c);
	if (p[c.pos] == '>') {
		/* No domain: only the bare "<Postmaster>" of RFC 5321 4.5.1,
		 * unquoted, without a source route. */
		if (!(flags & ADDR_POSTMASTER_OK) || out->local_quoted ||
		    out->had_source_route ||
		    !slice_eq_nocase((struct slice){ (const uint8_t *)out->local,
						     out->local_len },
				     "postmaster"))
			return ADDR_ENODOMAIN;
		out->is_postmaster = true;
		*used = c.pos + 1;
		return ADDR_OK;
	}
	if (p[c.pos] != '@')
		return bad_byte(p[c.pos], ADDR_ESYNTAX);
	c.pos++;
	if (c.pos >= c.end)
		return out_of_input(&c);

	if (p[c.pos] == '[') {
		e = parse_literal(&c, out->domain, &out->domain_len);
		out->domain_literal = true;
	} else {
		e = parse_domain(&c, '>', '>', out->domain, &out->domain_len,
				 &out->utf8);
	}
	if (e != ADDR_OK)
		return e;
	if (c.pos >= c.end)
		return out_of_input(&c);
	if (p[c.pos] != '>')
		return bad_byte(p[c.pos], ADDR_EDOMAIN); /* after a literal */
	c.pos++;

	/* Relay hints from the decoded local part (DESIGN.md invariant 4). */
	out->has_percent = memchr(out->local, '%', out->local_len) != NULL;
	out->has_bang = memchr(out->local, '!', out->local_len) != NULL;
	out->has_at_in_local = memchr(out->local, '@', out->local_len) != NULL;
	*used = c.pos;
	return ADDR_OK;
}

/* True if s[0..n) can be written as a Dot-string (RFC 5321 4.1.2); octets
 * >= 0x80 count as atext (RFC 6531 3.3). */
static bool is_dot_string(const char *s, size_t n)
{
	bool after_dot = true;

	for (size_t i = 0; i < n; i++) {
		uint8_t ch = (uint8_t)s[i];

		if (ch == '.') {
			if (after_dot)
				return false;
			after_dot = true;
		} else if (is_atext(ch) || ch >= 0x80) {
			after_dot = false;
		} else {
			return false;
		}
	}
	return !after_dot;
}

struct wr {
	char *o;
	size_t cap;
	size_t n;
};

static void put(struct wr *w, char ch)
{
	if (w->n + 1 < w->cap)
		w->o[w->n] = ch;
	w->n++;
}

static void put_str(struct wr *w, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put(w, s[i]);
}

size_t addr_format(const struct mailbox *mb, char *out, size_t cap)
{
	struct wr w = { out, cap, 0 };

	if (mb->is_null) {
		/* nothing: "<>" */
	} else if (mb->is_postmaster) {
		put_str(&w, "postmaster", 10);
	} else {
		if (is_dot_string(mb->local, mb->local_len)) {
			put_str(&w, mb->local, mb->local_len);
		} else {
			put(&w, '"');
			for (size_t i = 0; i < mb->local_len; i++) {
				/* quoted-pairSMTP for the two that need it */
				if (mb->local[i] == '"' || mb->local[i] == '\\')
					put(&w, '\\');
				put(&w, mb->local[i]);
			}
			put(&w, '"');
		}
		put(&w, '@');
		put_str(&w, mb->domain, mb->domain_len);
	}
	if (cap > 0)
		out[w.n < cap ? w.n : cap - 1] = '\0';
	return w.n;
}

const char *addr_strerror(enum addr_err e)
{
	switch (e) {
	case ADDR_OK:
		return "no error";
	case ADDR_ESYNTAX:
		return "expected <local-part@domain> with no spaces or stray characters";
	case ADDR_ETOOLONG:
		return "address too long (local part 64, domain 255, path 256 octets at most)";
	case ADDR_ENODOMAIN:
		return "address has no @domain";
	case ADDR_EDOMAIN:
		return "malformed domain or address literal";
	case ADDR_ELOCAL:
		return "malformed local part";
	case ADDR_E8BIT:
		return "non-ASCII address needs SMTPUTF8 and valid UTF-8";
	case ADDR_ENULL:
		return "null address <> not allowed here";
	}
	return "unknown address error";
}
