/* smtp_reply.c - server replies and EHLO keywords for the client side; see smtp_reply.h. */
#include "smtp_reply.h"

#include <ctype.h>
#include <string.h>

static const char hexdig[] = "0123456789ABCDEF";

void smtp_reply_init(struct smtp_reply_parser *p, struct smtp_ehlo *ehlo)
{
	p->status = SMTP_REPLY_MORE;
	p->code = 0;
	p->enh[0] = '\0';
	p->text[0] = '\0';
	p->nlines = 0;
	p->bare_lf = false;
	p->error = NULL;
	p->ehlo = ehlo;
	p->text_len = 0;
	p->text_cut = false;
	p->line_len = 0;
	if (ehlo != NULL)
		smtp_ehlo_init(ehlo);
}

/* ---- escaping ---------------------------------------------------------- */

static bool plain_octet(uint8_t c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

/*
 * Cut out[] back to at most `keep` octets, on a boundary between escaped
 * units: a '\' in the text always starts a four-octet "\xHH".
 */
static size_t cut_units(const char *out, size_t len, size_t keep)
{
	if (len <= keep)
		return len;
	for (size_t j = keep >= 3 ? keep - 3 : 0; j < keep; j++)
		if (out[j] == '\\')
			return j;
	return keep;
}

/*
 * Append p to out (holding *len octets, capacity cap with the NUL),
 * escaped; on overflow cut to a unit boundary, add "..." and set *cut.
 */
static void escape_append(char *out, size_t cap, size_t *len, bool *cut, const uint8_t *p,
			  size_t n)
{
	size_t o = *len;

	if (*cut)
		return;
	for (size_t i = 0; i < n; i++) {
		size_t need = plain_octet(p[i]) ? 1 : 4;

		if (o + need > cap - 1) {
			o = cut_units(out, o, cap - 4);
			memcpy(out + o, "...", 3);
			o += 3;
			*cut = true;
			break;
		}
		if (need == 1) {
			out[o++] = (char)p[i];
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hexdig[p[i] >> 4];
			out[o++] = hexdig[p[i] & 15];
		}
	}
	out[o] = '\0';
	*len = o;
}

size_t smtp_reply_escape(const uint8_t *p, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	bool cut = false;

	if (cap < 4) {
		if (cap > 0)
			out[0] = '\0';
		return 0;
	}
	out[0] = '\0';
	escape_append(out, cap, &n, &cut, p, len);
	return n;
}

/* ---- EHLO keywords ----------------------------------------------------- */

void smtp_ehlo_init(struct smtp_ehlo *e)
{
	memset(e, 0, sizeof *e);
}

static bool word_is(const uint8_t *p, size_t n, const char *lit)
{
	size_t m = strlen(lit);

	if (n != m)
		return false;
	for (size_t i = 0; i < n; i++)
		if (toupper(p[i]) != lit[i])
			return false;
	return true;
}

static unsigned auth_mech(const uint8_t *p, size_t n)
{
	static const struct {
		const char *name;
		unsigned bit;
	} mechs[] = {
		{ "PLAIN", SMTP_AUTH_PLAIN },
		{ "LOGIN", SMTP_AUTH_LOGIN },
		{ "CRAM-MD5", SMTP_AUTH_CRAM_MD5 },
		{ "SCRAM-SHA-256", SMTP_AUTH_SCRAM_SHA_256 },
		{ "XOAUTH2", SMTP_AUTH_XOAUTH2 },
	};

	for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++)
		if (word_is(p, n, mechs[i].name))
			return mechs[i].bit;
	return SMTP_AUTH_OTHER;
}

/* SIZE's argument: 1*20DIGIT fitting uint64_t, else 0 ("no fixed maximum"). */
static uint64_t size_param(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' || __builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(p[i] - '0'), &v))
			return 0;
	}
	return v;
}

void smtp_ehlo_line(struct smtp_ehlo *e, const uint8_t *line, size_t len)
{
	size_t k = 0, i;

	while (k < len && line[k] != ' ' && line[k] != '=')
		k++;
	i = k < len ? k + 1 : k;
	/* The parameters, without surrounding spaces. */
	while (i < len && line[i] == ' ')
		i++;
	while (len > i && line[len - 1] == ' ')
		len--;

	if (word_is(line, k, "PIPELINING"))
		e->pipelining = true;
	else if (word_is(line, k, "8BITMIME"))
		e->eightbitmime = true;
	else if (word_is(line, k, "SMTPUTF8"))
		e->smtputf8 = true;
	else if (word_is(line, k, "DSN"))
		e->dsn = true;
	else if (word_is(line, k, "STARTTLS"))
		e->starttls = true;
	else if (word_is(line, k, "CHUNKING"))
		e->chunking = true;
	else if (word_is(line, k, "BINARYMIME"))
		e->binarymime = true;
	else if (word_is(line, k, "ENHANCEDSTATUSCODES"))
		e->enhancedstatuscodes = true;
	else if (word_is(line, k, "SIZE")) {
		e->has_size = true;
		e->size = size_param(line + i, len - i);
	} else if (word_is(line, k, "AUTH")) {
		while (i < len) {
			size_t j = i;

			while (j < len && line[j] != ' ')
				j++;
			e->auth |= auth_mech(line + i, j - i);
			while (j < len && line[j] == ' ')
				j++;
			i = j;
		}
	}
}

/* ---- replies ----------------------------------------------------------- */

static bool digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* 1 to 3 digits at p[*i]; advances *i. */
static bool digits13(const uint8_t *p, size_t n, size_t *i)
{
	size_t start = *i;

	while (*i < n && *i - start < 4 && digit(p[*i]))
		(*i)++;
	return *i - start >= 1 && *i - start <= 3;
}

/*
 * RFC 3463 / RFC 2034: the enhanced code at the start of text, its class
 * equal to the reply's first digit. Returns its length (0: none).
 */
static size_t enh_code(const uint8_t *t, size_t n, int cls)
{
	size_t i;

	if (n < 5 || t[0] != (uint8_t)('0' + cls) || (cls != 2 && cls != 4 && cls != 5) ||
	    t[1] != '.')
		return 0;
	i = 2;
	if (!digits13(t, n, &i) || i >= n || t[i] != '.')
		return 0;
	i++;
	if (!digits13(t, n, &i))
		return 0;
	if (i < n && t[i] != ' ')
		return 0;
	return i;
}

static void fail(struct smtp_reply_parser *p, const char *why)
{
	p->status = SMTP_REPLY_ERROR;
	p->error = why;
}

/* One line without its line end. */
static void take_line(struct smtp_reply_parser *p, const uint8_t *l, size_t n)
{
	const uint8_t *t;
	size_t tn, e;
	int code;
	bool last;

	if (n < 3 || !digit(l[0]) || !digit(l[1]) || !digit(l[2])) {
		fail(p, "a reply line does not start with a three-digit code");
		return;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (l[0] < '2' || l[0] > '5' || l[1] > '5') {
		fail(p, "the reply code is out of range (RFC 5321 4.2)");
		return;
	}
	if (n > 3 && l[3] != ' ' && l[3] != '-') {
		fail(p, "the reply code is not followed by a space or a hyphen");
		return;
	}
	if (p->nlines > 0 && code != p->code) {
		fail(p, "a line of a multi-line reply has a different code (RFC 5321 4.2.1)");
		return;
	}
	if (p->nlines == SMTP_REPLY_LINES_MAX) {
		fail(p, "too many lines in one reply");
		return;
	}
	last = n == 3 || l[3] == ' ';
	t = n > 4 ? l + 4 : l + n;
	tn = n > 4 ? n - 4 : 0;
	p->code = code;
	if (p->ehlo != NULL && p->nlines > 0)
		smtp_ehlo_line(p->ehlo, t, tn);
	if (p->nlines == 0 && (e = enh_code(t, tn, code / 100)) > 0) {
		memcpy(p->enh, t, e);
		p->enh[e] = '\0';
	}
	/* The enhanced code is a field of its own, not text (every line). */
	e = strlen(p->enh);
	if (e > 0 && tn >= e && memcmp(t, p->enh, e) == 0 && (tn == e || t[e] == ' ')) {
		t += e;
		tn -= e;
		while (tn > 0 && t[0] == ' ') {
			t++;
			tn--;
		}
	}
	if (p->nlines > 0)
		escape_append(p->text, sizeof p->text, &p->text_len, &p->text_cut,
			      (const uint8_t *)" / ", 3);
	escape_append(p->text, sizeof p->text, &p->text_len, &p->text_cut, t, tn);
	p->nlines++;
	if (last)
		p->status = SMTP_REPLY_DONE;
}

size_t smtp_reply_feed(struct smtp_reply_parser *p, const uint8_t *in, size_t len)
{
	size_t used = 0;

	while (used < len && p->status == SMTP_REPLY_MORE) {
		const uint8_t *lf = memchr(in + used, '\n', len - used);
		size_t chunk = lf != NULL ? (size_t)(lf - (in + used)) : len - used;
		size_t n;

		/* The line with its LF must fit in SMTP_REPLY_LINE_MAX. */
		if (chunk > SMTP_REPLY_LINE_MAX - 1 - p->line_len) {
			fail(p, "a reply line is longer than 2048 octets");
			return used + chunk;
		}
		memcpy(p->line + p->line_len, in + used, chunk);
		p->line_len += chunk;
		used += chunk;
		if (lf == NULL)
			break;
		used++; /* the LF */
		n = p->line_len;
		if (n > 0 && p->line[n - 1] == '\r')
			n--;
		else
			p->bare_lf = true;
		p->line_len = 0;
		take_line(p, p->line, n);
	}
	return used;
}
