/* authres.c - Authentication-Results (RFC 8601) writer and reader; see authres.h. */
#include "authres.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char field_name[] = "Authentication-Results";

/* ------------------------------------------------------------------ */
/* character classes */

static bool is_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(uint8_t c)
{
	return is_alpha(c) || is_digit(c);
}

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* RFC 2045 5.1: token = 1*<any CHAR except SPACE, CTLs, or tspecials> */
static bool is_token_char(uint8_t c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* RFC 5322 3.2.3 atext */
static bool is_atext(uint8_t c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * What the reader takes as a bare value (see authres.h): no white space,
 * no controls, none of the octets that start the next element or a
 * quoted part. Octets above 0x7f are UTF-8 (RFC 8616).
 */
static bool is_bare(uint8_t c)
{
	return c > 0x20 && c != 0x7f && c != ';' && c != '(' && c != ')' && c != '"' && c != '\\';
}

static uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

/* ------------------------------------------------------------------ */
/* the writer */

/* One element of a resinfo, built before it is placed; big enough for the worst case. */
#define EL_MAX (4 * AUTHRES_ARG_MAX + 16)

struct el {
	char s[EL_MAX];
	size_t n;
};

static void el_putc(struct el *e, char c)
{
	if (e->n < sizeof e->s)	/* cannot fill up: EL_MAX covers name=quoted(value) */
		e->s[e->n++] = c;
}

static void el_puts(struct el *e, const char *s)
{
	for (; *s != '\0'; s++)
		el_putc(e, *s);
}

/* s, each octet outside 0x20-0x7e made '?', cut to AUTHRES_ARG_MAX octets. */
static size_t clean(const char *s, char out[AUTHRES_ARG_MAX + 1])
{
	size_t n = 0;

	if (s == NULL)
		s = "";
	for (; s[n] != '\0' && n < AUTHRES_ARG_MAX; n++) {
		unsigned char c = (unsigned char)s[n];

		out[n] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[n] = '\0';
	return n;
}

/* quoted-string (RFC 5322 3.2.4): \ and " as quoted-pairs. */
static void el_quoted(struct el *e, const char *s)
{
	el_putc(e, '"');
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			el_putc(e, '\\');
		el_putc(e, *s);
	}
	el_putc(e, '"');
}

static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_token_char((uint8_t)s[i]))
			return false;
	return true;
}

/* RFC 5322 3.2.3 dot-atom-text: atoms of atext joined by single dots. */
static bool is_dot_atom(const char *s, size_t n)
{
	size_t atom = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (atom == 0)
				return false;
			atom = 0;
		} else if (is_atext((uint8_t)s[i])) {
			atom++;
		} else {
			return false;
		}
	}
	return atom > 0;
}

/* RFC 6376 3.5 domain-name: sub-domain 1*("." sub-domain), sub-domain = let-dig [ldh-str]. */
static bool is_domain_name(const char *s, size_t n)
{
	size_t labels = 0, start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.') {
			if (!is_alnum((uint8_t)s[i]) && s[i] != '-')
				return false;
			continue;
		}
		/* a label is s[start, i): let-dig first and last, LDH between */
		if (i == start || !is_alnum((uint8_t)s[start]) || !is_alnum((uint8_t)s[i - 1]))
			return false;
		labels++;
		start = i + 1;
	}
	return labels >= 2;
}

/*
 * RFC 8601 2.2 pvalue without its quoted forms: value (a token) or
 * [ [ local-part ] "@" ] domain-name, local-part a dot-atom.
 */
static bool is_bare_pvalue(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);
	size_t local;

	if (at == NULL)
		return is_token(s, n);	/* a domain-name alone is a token too */
	local = (size_t)(at - s);
	return (local == 0 || is_dot_atom(s, local)) && is_domain_name(at + 1, n - local - 1);
}

/* Octets on the last line of b (after its last LF). */
static size_t line_len(const struct buf *b)
{
	size_t i = b->len;

	while (i > 0 && b->data[i - 1] != '\n')
		i--;
	return b->len - i;
}

/*
 * One element after method=result: on the current line after a space if
 * the line, with room for a following ';', stays within the soft limit;
 * else folded onto a line of its own (RFC 5322 2.2.3: CR LF before WSP).
 */
static int place(struct buf *b, const struct el *e)
{
	size_t need = line_len(b) + 1 + e->n + 1;

	if (need > AUTHRES_LINE_SOFT) {
		if (buf_append(b, "\r\n\t", 3) < 0)
			return -1;
	} else if (buf_append(b, " ", 1) < 0) {
		return -1;
	}
	return buf_append(b, e->s, e->n);
}

int authres_begin(struct buf *b, const char *servid)
{
	char id[AUTHRES_ARG_MAX + 1];
	size_t n = clean(servid, id);
	struct el e = { .n = 0 };

	if (n > AUTHRES_ID_MAX)	/* no longer than authres_servid reads */
		id[n = AUTHRES_ID_MAX] = '\0';

	el_puts(&e, field_name);
	el_puts(&e, ": ");
	if (is_token(id, n))	/* authserv-id = value = token / quoted-string (RFC 8601 2.2) */
		el_puts(&e, id);
	else
		el_quoted(&e, id);
	return buf_append(b, e.s, e.n);
}

int authres_add(struct buf *b, const char *method, const char *result, const char *reason,
		const char *comment, const struct authres_prop *props, size_t nprops)
{
	char t[AUTHRES_ARG_MAX + 1];
	struct el e = { .n = 0 };

	/* resinfo = [CFWS] ";" methodspec ...: each on its own line */
	el_puts(&e, ";\r\n\t");
	clean(method, t);
	el_puts(&e, t);
	el_putc(&e, '=');
	clean(result, t);
	el_puts(&e, t);
	if (buf_append(b, e.s, e.n) < 0)
		return -1;
	if (reason != NULL) {
		/* reasonspec = "reason" [CFWS] "=" [CFWS] value; always quoted here */
		e.n = 0;
		el_puts(&e, "reason=");
		clean(reason, t);
		el_quoted(&e, t);
		if (place(b, &e) < 0)
			return -1;
	}
	if (comment != NULL) {
		/* comment (RFC 5322 3.2.2): ( ) \ in ctext positions are quoted-pairs */
		e.n = 0;
		el_putc(&e, '(');
		clean(comment, t);
		for (const char *s = t; *s != '\0'; s++) {
			if (*s == '(' || *s == ')' || *s == '\\')
				el_putc(&e, '\\');
			el_putc(&e, *s);
		}
		el_putc(&e, ')');
		if (place(b, &e) < 0)
			return -1;
	}
	for (size_t i = 0; i < nprops; i++) {
		size_t n;

		e.n = 0;
		clean(props[i].name, t);
		el_puts(&e, t);
		el_putc(&e, '=');
		n = clean(props[i].value, t);
		if (is_bare_pvalue(t, n))
			el_puts(&e, t);
		else
			el_quoted(&e, t);
		if (place(b, &e) < 0)
			return -1;
	}
	return 0;
}

int authres_end(struct buf *b)
{
	size_t n = line_len(b);

	/*
	 * Every authres_add folds (";" CR LF HTAB), and nothing before it in
	 * this field holds an LF: the last line starts with HTAB exactly when
	 * something was added.
	 */
	bool added = n < b->len && n > 0 && b->data[b->len - n] == '\t';

	if (!added && buf_append(b, "; none", 6) < 0)	/* no-result (RFC 8601 2.2) */
		return -1;
	return buf_append(b, "\r\n", 2);
}

/* ------------------------------------------------------------------ */
/* the reader */

struct cur {
	const uint8_t *p;
	size_t len, i;
	const char *err;	/* what went wrong, at i */
};

static int fail(struct cur *c, const char *why)
{
	c->err = why;
	return -1;
}

static int peek(const struct cur *c)
{
	return c->i < c->len ? c->p[c->i] : -1;
}

/*
 * [CFWS] (RFC 5322 3.2.2): white space (CR and LF included, see authres.h)
 * and comments, which nest and hold quoted-pairs. 1 when something was
 * skipped, 0 when nothing, -1 when a comment is not closed.
 */
static int cfws(struct cur *c)
{
	size_t start = c->i, depth = 0;

	while (c->i < c->len) {
		uint8_t ch = c->p[c->i];

		if (depth == 0) {
			if (is_wsp(ch) || ch == '\r' || ch == '\n') {
				c->i++;
				continue;
			}
			if (ch != '(')
				break;
			depth = 1;
			c->i++;
			continue;
		}
		if (ch == '\\') {	/* quoted-pair: the next octet is text */
			if (c->i + 1 >= c->len)
				break;
			c->i += 2;
			continue;
		}
		if (ch == '(')
			depth++;
		else if (ch == ')')
			depth--;
		c->i++;
	}
	if (depth > 0)
		return fail(c, "comment not closed");
	return c->i > start;
}

/* Keyword = ldh-str (RFC 8601 2.2, RFC 5321 4.1.2): 1 read, 0 none there, -1 error. */
static int keyword(struct cur *c, char out[AUTHRES_KEYWORD_MAX + 1])
{
	size_t start = c->i, n;

	while (c->i < c->len && (is_alnum(c->p[c->i]) || c->p[c->i] == '-'))
		c->i++;
	n = c->i - start;
	if (n == 0)
		return 0;
	if (c->p[c->i - 1] == '-')	/* ldh-str ends in a let-dig */
		return fail(c, "keyword ends in '-'");
	if (n > AUTHRES_KEYWORD_MAX)
		return fail(c, "keyword too long");
	memcpy(out, c->p + start, n);
	out[n] = '\0';
	return 1;
}

/* quoted-string (RFC 5322 3.2.4) at c->i (on the DQUOTE), unquoted into out. */
static int quoted(struct cur *c, char *out, size_t cap)
{
	size_t n = 0;

	c->i++;
	for (;;) {
		uint8_t ch;

		if (c->i >= c->len)
			return fail(c, "quoted-string not closed");
		ch = c->p[c->i];
		if (ch == '"') {
			c->i++;
			break;
		}
		if (ch == '\\') {	/* quoted-pair (3.2.1) */
			if (c->i + 1 >= c->len)
				return fail(c, "quoted-string not closed");
			ch = c->p[c->i + 1];
			if (ch == '\r' || ch == '\n')
				return fail(c, "CR or LF quoted in a quoted-string");
			c->i += 2;
		} else if (ch == '\r' || ch == '\n') {
			/* FWS: CR LF before WSP unfolds to the WSP (3.2.2); nothing else */
			if (ch == '\r' && c->i + 2 < c->len && c->p[c->i + 1] == '\n' &&
			    is_wsp(c->p[c->i + 2])) {
				c->i += 2;
				continue;
			}
			return fail(c, "CR or LF in a quoted-string");
		} else {
			c->i++;
		}
		if (n + 1 >= cap)
			return fail(c, "quoted-string too long");
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return 0;
}

/* Copy p[start, end) into out. */
static int take(struct cur *c, size_t start, size_t end, char *out, size_t cap, const char *what)
{
	size_t n = end - start;

	if (n + 1 > cap)
		return fail(c, what);
	memcpy(out, c->p + start, n);
	out[n] = '\0';
	return 0;
}

/* pvalue (and reason's value), read as authres.h says. */
static int pvalue(struct cur *c, char out[AUTHRES_VALUE_MAX + 1])
{
	size_t start = c->i;

	if (peek(c) == '"') {
		if (quoted(c, out, AUTHRES_VALUE_MAX + 1) < 0)
			return -1;
		if (peek(c) != '@')
			return 0;
		/* [local-part] "@" domain-name, local-part quoted: kept as written */
		c->i++;
		while (c->i < c->len && is_bare(c->p[c->i]))
			c->i++;
		if (memchr(c->p + start, '\r', c->i - start) != NULL ||
		    memchr(c->p + start, '\n', c->i - start) != NULL)
			return fail(c, "folded local-part");
		return take(c, start, c->i, out, AUTHRES_VALUE_MAX + 1, "value too long");
	}
	while (c->i < c->len && is_bare(c->p[c->i]))
		c->i++;
	if (c->i == start)
		return fail(c, "expected a value");
	return take(c, start, c->i, out, AUTHRES_VALUE_MAX + 1, "value too long");
}

/* 1*DIGIT, at most 9 of them. */
static int number(struct cur *c, unsigned *out)
{
	size_t start = c->i;
	unsigned v = 0;

	while (c->i < c->len && is_digit(c->p[c->i])) {
		if (c->i - start == 9)
			return fail(c, "number too long");
		v = v * 10 + (unsigned)(c->p[c->i] - '0');
		c->i++;
	}
	if (c->i == start)
		return fail(c, "expected a number");
	*out = v;
	return 0;
}

/*
 * [CFWS] authserv-id [ CFWS authres-version ], then what must follow: the
 * end, or ";" (RFC 8601 2.2). authserv-id = value = token / quoted-string.
 */
static int head(struct cur *c, char *id, size_t cap, unsigned *version)
{
	int ws;

	*version = 0;
	if (memchr(c->p, '\0', c->len) != NULL)
		return fail(c, "NUL octet");
	if (cfws(c) < 0)
		return -1;
	if (peek(c) == '"') {
		if (quoted(c, id, cap) < 0)
			return -1;
	} else {
		size_t start = c->i;

		while (c->i < c->len && is_token_char(c->p[c->i]))
			c->i++;
		if (c->i == start)
			return fail(c, "expected an authserv-id");
		if (take(c, start, c->i, id, cap, "authserv-id too long") < 0)
			return -1;
	}
	if ((ws = cfws(c)) < 0)
		return -1;
	if (ws > 0 && c->i < c->len && is_digit(c->p[c->i])) {
		if (number(c, version) < 0 || cfws(c) < 0)	/* authres-version = 1*DIGIT [CFWS] */
			return -1;
	}
	if (c->i < c->len && c->p[c->i] != ';')
		return fail(c, "expected ';' after the authserv-id");
	return 0;
}

int authres_servid(const uint8_t *body, size_t len, char *out, size_t cap)
{
	struct cur c = { .p = body, .len = len };
	unsigned version;

	if (cap == 0)
		return -1;
	if (head(&c, out, cap, &version) < 0) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

/* The properties (and reason) after method=result, up to ";" or the end. */
static int resinfo_tail(struct cur *c, struct authres_parsed *out, struct authres_resinfo *r)
{
	char ptype[AUTHRES_KEYWORD_MAX + 1], prop[AUTHRES_KEYWORD_MAX + 1];
	char scratch[AUTHRES_VALUE_MAX + 1];

	for (;;) {
		int k;

		if (cfws(c) < 0)
			return -1;
		if (c->i >= c->len || c->p[c->i] == ';')
			return 0;
		if ((k = keyword(c, ptype)) <= 0)
			return k < 0 ? -1 : fail(c, "expected a property");
		if (cfws(c) < 0)
			return -1;
		if (peek(c) == '.') {
			/* propspec = ptype [CFWS] "." [CFWS] property [CFWS] "=" pvalue */
			struct authres_pprop *pp;

			c->i++;
			if (cfws(c) < 0)
				return -1;
			if ((k = keyword(c, prop)) <= 0)
				return k < 0 ? -1 : fail(c, "expected a property after '.'");
			if (cfws(c) < 0)
				return -1;
			if (peek(c) != '=')
				return fail(c, "expected '=' after a property");
			c->i++;
			if (cfws(c) < 0)
				return -1;
			if (out->nprops == AUTHRES_PROPS_MAX)
				return fail(c, "too many properties");
			pp = &out->props[out->nprops];
			if (pvalue(c, pp->value) < 0)
				return -1;
			snprintf(pp->name, sizeof pp->name, "%s.%s", ptype, prop);
			out->nprops++;
			r->nprops++;
		} else if (peek(c) == '=') {
			/* reasonspec (only before properties), else a name=value without ptype */
			bool reason = strcasecmp(ptype, "reason") == 0 && !r->has_reason &&
				      r->nprops == 0 && r->nignored == 0;

			c->i++;
			if (cfws(c) < 0)
				return -1;
			if (pvalue(c, reason ? r->reason : scratch) < 0)
				return -1;
			if (reason)
				r->has_reason = true;
			else
				r->nignored++;
		} else {
			return fail(c, "expected '.' or '=' after a keyword");
		}
	}
}

static int parse(struct cur *c, struct authres_parsed *out)
{
	if (head(c, out->servid, sizeof out->servid, &out->version) < 0)
		return -1;
	while (c->i < c->len) {
		/* resinfo = [CFWS] ";" methodspec [CFWS reasonspec] [CFWS 1*propspec] */
		struct authres_resinfo *r;
		char method[AUTHRES_KEYWORD_MAX + 1];
		int k;

		c->i++;	/* the ';' (head and resinfo_tail stop only there or at the end) */
		if (cfws(c) < 0)
			return -1;
		if ((k = keyword(c, method)) <= 0)
			return k < 0 ? -1 : fail(c, "expected a method after ';'");
		if (cfws(c) < 0)
			return -1;
		if (c->i == c->len && out->nresinfo == 0 && strcasecmp(method, "none") == 0) {
			out->none = true;	/* no-result = [CFWS] ";" [CFWS] "none" */
			return 0;
		}
		if (out->nresinfo == AUTHRES_RESINFO_MAX)
			return fail(c, "too many results");
		r = &out->resinfo[out->nresinfo];
		memcpy(r->method, method, sizeof r->method);
		if (peek(c) == '/') {
			/* method = Keyword [ [CFWS] "/" [CFWS] method-version ] */
			c->i++;
			if (cfws(c) < 0 || number(c, &r->method_version) < 0 || cfws(c) < 0)
				return -1;
		}
		if (peek(c) != '=')
			return fail(c, "expected '=' after the method");
		c->i++;
		if (cfws(c) < 0)
			return -1;
		if ((k = keyword(c, r->result)) <= 0)
			return k < 0 ? -1 : fail(c, "expected a result");
		r->prop0 = out->nprops;
		out->nresinfo++;
		if (resinfo_tail(c, out, r) < 0)
			return -1;
	}
	return 0;
}

int authres_parse(const uint8_t *body, size_t len, struct authres_parsed *out, char *err,
		  size_t errlen)
{
	struct cur c = { .p = body, .len = len };

	memset(out, 0, sizeof *out);
	if (parse(&c, out) == 0)
		return 0;
	if (errlen > 0)
		snprintf(err, errlen, "%s at octet %zu", c.err, c.i);
	return -1;
}

/* servid (NUL-terminated) anywhere in p[0, len), ignoring ASCII case. */
static bool contains_nocase(const uint8_t *p, size_t len, const char *servid)
{
	size_t n = strlen(servid);

	for (size_t i = 0; n <= len && i <= len - n; i++) {
		size_t k = 0;

		while (k < n && lower(p[i + k]) == lower((uint8_t)servid[k]))
			k++;
		if (k == n)
			return true;
	}
	return false;
}

/* Octets up to and including the colon of an Authentication-Results field, else 0. */
static size_t name_len(const uint8_t *field, size_t len)
{
	size_t n = sizeof field_name - 1, i;

	if (len < n)
		return 0;
	for (i = 0; i < n; i++)
		if (lower(field[i]) != lower((uint8_t)field_name[i]))
			return 0;
	while (i < len && is_wsp(field[i]))	/* obs-optional: WSP before the colon (RFC 5322 4.5) */
		i++;
	if (i == len || field[i] != ':')
		return 0;
	return i + 1;
}

bool authres_field_is_named(const uint8_t *field, size_t len)
{
	return name_len(field, len) > 0;
}

/* RFC 8601 5: ids compare ignoring case; a host name with its root dot
 * ("mx.example.") names the same host, and a reader would take it so. */
static bool same_id(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	na -= na > 1 && a[na - 1] == '.';
	nb -= nb > 1 && b[nb - 1] == '.';
	return na == nb && strncasecmp(a, b, na) == 0;
}

bool authres_field_is_ours(const uint8_t *field, size_t len, const char *servid)
{
	size_t i = name_len(field, len);
	char id[AUTHRES_ID_MAX + 1];

	if (servid == NULL || servid[0] == '\0' || i == 0)
		return false;
	if (authres_servid(field + i, len - i, id, sizeof id) == 0)
		return same_id(id, servid);
	/* unreadable: a reader might still take it for ours (RFC 8601 5, 7.1) */
	return contains_nocase(field + i, len - i, servid);
}
