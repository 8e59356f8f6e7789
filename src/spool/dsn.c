/*
 * dsn.c - delivery status notifications (RFC 3464, 3461, 6522, 3834,
 *	   6533); see dsn.h.
 *
 * The three parts are written into scratch buffers first, so that the
 * boundary can be chosen to occur in none of them, then assembled into
 * the caller's buffer. Every line written is CRLF-terminated and at most
 * 998 octets: header fields fold at spaces, text wraps at 76 columns, and
 * a word too long for either is cut (at a UTF-8 character boundary).
 */
#include "dsn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../proto/smtp_cmd.h"
#include "qfile.h"

#define LINE_OCTETS 998		/* RFC 5322 2.1.1 */
#define FOLD_AT 78		/* RFC 5322 2.1.1 SHOULD */
#define WRAP_AT 76
#define DATE_LEN 64
#define MSGID_MAX 250
#define TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z */
#define BOUNDARY_MAX 70		/* RFC 2046 5.1.1 */
#define ORCPT_SHOW_MAX (2 * SMTP_ORCPT_MAX + 8)

/* ------------------------------------------------------------------ */
/* output with a sticky error: after a failed append the rest are no-ops */

struct w {
	struct buf *b;
	bool fail;
};

static void w_put(struct w *w, const void *p, size_t n)
{
	if (!w->fail && buf_append(w->b, p, n) < 0)
		w->fail = true;
}

static void w_str(struct w *w, const char *s)
{
	w_put(w, s, strlen(s));
}

static void w_printf(struct w *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void w_printf(struct w *w, const char *fmt, ...)
{
	va_list ap;

	if (w->fail)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(w->b, fmt, ap) < 0)
		w->fail = true;
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* character classes */

/* Length of the valid UTF-8 character at p (1..4), 0 if it is not one. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
	uint32_t cp;
	size_t k;

	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		k = 1;
		cp = p[0] & 0x1F;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		k = 2;
		cp = p[0] & 0x0F;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		k = 3;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n <= k)
		return 0;
	for (size_t j = 1; j <= k; j++) {
		if ((p[j] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[j] & 0x3F);
	}
	if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return k + 1;
}

static bool utf8_valid(const uint8_t *p, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if ((k = utf8_seq(p + i, n - i)) == 0)
			return false;
	return true;
}

/* The largest cut <= want that does not split a UTF-8 character. */
static size_t utf8_cut(const uint8_t *p, size_t want)
{
	size_t cut = want;

	while (cut > 0 && (p[cut] & 0xC0) == 0x80)
		cut--;
	return cut > 0 ? cut : want;
}

static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((uint8_t)*s >= 0x80)
			return false;
	return true;
}

static bool has_8bit(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 0x80)
			return true;
	return false;
}

/*
 * A one-line field of 1..max octets: no control character (CR and LF
 * included), ASCII, or valid UTF-8 when utf8.
 */
static bool field_ok(const char *s, size_t max, bool utf8)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];

		if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
			return false;
	}
	return !utf8 || utf8_valid((const uint8_t *)s, n);
}

/* A bounded field of letters, digits and the octets in extra only. */
static bool token_ok(const char *s, size_t max, const char *extra)
{
	if (!field_ok(s, max, false))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s) != NULL))
			return false;
	return true;
}

static bool host_ok(const char *s)
{
	return token_ok(s, DSN_HOST_MAX, ".-_:[]");
}

static bool qid_ok(const char *s)
{
	return token_ok(s, QID_MAX, "._-");
}

static bool bchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("'()+_,-./:=?", c) != NULL;
}

static bool seed_ok(const char *s)
{
	size_t n = strnlen(s, DSN_SEED_MAX + 1);

	if (n == 0 || n > DSN_SEED_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!bchar(s[i]))
			return false;
	return true;
}

static bool time_ok(int64_t t)
{
	return t >= 0 && t <= TIME_MAX;
}

/*
 * Copy a one-line text for display into out (cap octets with the NUL):
 * -1 if it holds CR or LF. TAB becomes a space; other control characters,
 * and octets that are not ASCII (or, with utf8, not valid UTF-8) become
 * '?'; leading and trailing spaces go; the text is cut to fit at a
 * character boundary.
 */
static int clean_line(const char *s, bool utf8, char *out, size_t cap)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s), o = 0;

	if (memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL)
		return -1;
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < n;) {
		size_t k = 1;
		uint8_t c = p[i];

		if (c >= 0x80 && utf8 && (k = utf8_seq(p + i, n - i)) > 1) {
			if (o + k >= cap)
				break;
			memcpy(out + o, p + i, k);
			o += k;
			i += k;
			continue;
		}
		k = 1;
		if (o + 1 >= cap)
			break;
		if (c == '\t')
			c = ' ';
		else if (c < 0x20 || c == 0x7f || c >= 0x80)
			c = '?';
		out[o++] = (char)c;
		i++;
	}
	out[o] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* dates, durations, status codes */

static int fmt_date(int64_t t, char out[DATE_LEN])
{
	static const char wday[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (!time_ok(t) || gmtime_r(&tt, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11)
		return -1;
	snprintf(out, DATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d +0000", wday[tm.tm_wday],
		 tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
	return 0;
}

/* "4 days and 23 hours", "2 hours and 5 minutes", "10 minutes". */
static void fmt_duration(int64_t secs, char *out, size_t cap)
{
	long long d = secs / 86400, h = secs % 86400 / 3600, m = secs % 3600 / 60;

	if (secs < 60)
		m = 1;
	if (d > 0 && h > 0)
		snprintf(out, cap, "%lld day%s and %lld hour%s", d, d == 1 ? "" : "s", h,
			 h == 1 ? "" : "s");
	else if (d > 0)
		snprintf(out, cap, "%lld day%s", d, d == 1 ? "" : "s");
	else if (h > 0 && m > 0)
		snprintf(out, cap, "%lld hour%s and %lld minute%s", h, h == 1 ? "" : "s", m,
			 m == 1 ? "" : "s");
	else if (h > 0)
		snprintf(out, cap, "%lld hour%s", h, h == 1 ? "" : "s");
	else
		snprintf(out, cap, "%lld minute%s", m, m == 1 ? "" : "s");
}

struct status {
	int cls, subj, det;
};

/* RFC 3463: class "." subject "." detail, 1*3 digits each, in 12 octets. */
static bool parse_status(const char st[12], struct status *s)
{
	int v[3] = { 0, 0, 0 };
	size_t i = 0;

	if (memchr(st, '\0', 12) == NULL)
		return false;
	for (int f = 0; f < 3; f++) {
		size_t digits = 0;

		while (st[i] >= '0' && st[i] <= '9' && digits < 3) {
			v[f] = v[f] * 10 + (st[i++] - '0');
			digits++;
		}
		if (digits == 0 || (f == 0 && digits != 1))
			return false;
		if (st[i] != (f < 2 ? '.' : '\0'))
			return false;
		i++;
	}
	if (v[0] != 2 && v[0] != 4 && v[0] != 5)
		return false;
	s->cls = v[0];
	s->subj = v[1];
	s->det = v[2];
	return true;
}

static bool status_fits(const struct status *s, enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return s->cls == 5 || s->cls == 4;
	case DSN_DELAYED:
		return s->cls == 4;
	case DSN_DELIVERED:
	case DSN_RELAYED:
	case DSN_EXPANDED:
		return s->cls == 2;
	}
	return false;
}

/* RFC 3463 (and RFC 7505 for x.1.10) in words. */
static const char *status_words(const struct status *s)
{
	switch (s->subj * 1000 + s->det) {
	case 1001: return "bad destination mailbox address";
	case 1002: return "bad destination system address";
	case 1003: return "bad destination mailbox address syntax";
	case 1004: return "destination mailbox address ambiguous";
	case 1006: return "destination mailbox has moved";
	case 1007: return "bad sender's mailbox address syntax";
	case 1008: return "bad sender's system address";
	case 1010: return "recipient address has null MX";
	case 2001: return "mailbox disabled, not accepting messages";
	case 2002: return "mailbox full";
	case 2003: return "message length exceeds administrative limit";
	case 2004: return "mailing list expansion problem";
	case 3001: return "mail system full";
	case 3002: return "system not accepting network messages";
	case 3004: return "message too big for system";
	case 3005: return "system incorrectly configured";
	case 4001: return "no answer from host";
	case 4002: return "bad connection";
	case 4003: return "directory server failure";
	case 4004: return "unable to route";
	case 4006: return "routing loop detected";
	case 4007: return "delivery time expired";
	case 6007: return "non-ASCII addresses not permitted for that sender or recipient";
	case 7001: return "delivery not authorized, message refused";
	}
	switch (s->subj) {
	case 0: return s->cls == 2 ? "success" : "undefined status";
	case 1: return "address status";
	case 2: return "mailbox status";
	case 3: return "mail system status";
	case 4: return "network and routing status";
	case 5: return "mail delivery protocol status";
	case 6: return "message content or media status";
	case 7: return "security or policy status";
	}
	return "other status";
}

/* ------------------------------------------------------------------ */
/* header fields and wrapped text */

/*
 * "Name: value" CRLF, folded before a space when a line would pass 78
 * octets (unless the next word is longer than that and still fits), and a
 * word that would pass 998 cut with CRLF SP.
 */
static void w_field(struct w *w, const char *name, const char *value)
{
	const uint8_t *p = (const uint8_t *)value;
	size_t col = strlen(name) + 2;
	bool any = false;

	w_str(w, name);
	w_str(w, ": ");
	while (*p) {
		const uint8_t *e = p;
		size_t len;

		while (*e == ' ')
			e++;
		while (*e && *e != ' ')
			e++;
		len = (size_t)(e - p);
		/* fold where it helps: the word fits a fresh line, or not this one */
		if (any && *p == ' ' && col + len > FOLD_AT &&
		    (len <= FOLD_AT || col + len > LINE_OCTETS)) {
			w_str(w, "\r\n");
			col = 0;
		}
		while (col + len > LINE_OCTETS) {
			size_t room = utf8_cut(p, LINE_OCTETS - col);

			w_put(w, p, room);
			w_str(w, "\r\n ");
			p += room;
			len -= room;
			col = 1;
		}
		w_put(w, p, len);
		col += len;
		p = e;
		any = true;
	}
	w_str(w, "\r\n");
}

/*
 * Text as lines of at most 76 columns (a longer word alone on its line,
 * cut at 998 octets), the first line after ind1, the others after ind2.
 */
static void w_wrap(struct w *w, const char *ind1, const char *ind2, const char *text)
{
	const uint8_t *p = (const uint8_t *)text;
	size_t col = strlen(ind1);
	bool first = true;

	w_str(w, ind1);
	for (;;) {
		const uint8_t *e;
		size_t len;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (e = p; *e && *e != ' '; e++)
			;
		len = (size_t)(e - p);
		if (!first && col + 1 + len > WRAP_AT) {
			w_str(w, "\r\n");
			w_str(w, ind2);
			col = strlen(ind2);
			first = true;
		}
		if (!first) {
			w_str(w, " ");
			col++;
		}
		while (col + len > LINE_OCTETS) {
			size_t room = utf8_cut(p, LINE_OCTETS - col);

			w_put(w, p, room);
			w_str(w, "\r\n");
			w_str(w, ind2);
			col = strlen(ind2);
			p += room;
			len -= room;
		}
		w_put(w, p, len);
		col += len;
		p = e;
		first = false;
	}
	w_str(w, "\r\n");
}

/* Format a paragraph, then wrap it. */
static void w_para(struct w *w, const char *ind1, const char *ind2, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void w_para(struct w *w, const char *ind1, const char *ind2, const char *fmt, ...)
{
	struct buf s;
	va_list ap;
	int rc;

	if (w->fail)
		return;
	buf_init(&s, 64 * 1024);
	va_start(ap, fmt);
	rc = buf_vprintf(&s, fmt, ap);
	va_end(ap);
	if (rc < 0 || buf_append(&s, "", 1) < 0)
		w->fail = true;
	else
		w_wrap(w, ind1, ind2, (const char *)s.data);
	buf_free(&s);
}

/* ------------------------------------------------------------------ */
/* ORCPT and ENVID (xtext, RFC 3461 4) */

static bool is_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 6533 utf-8-addr-xtext: "\x{HHHH}" -> UTF-8; false if malformed. */
static bool unitext_decode(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	while (*s) {
		uint32_t cp = 0;
		size_t k = 0;

		if (!(s[0] == '\\' && s[1] == 'x' && s[2] == '{')) {
			if (o + 1 >= cap)
				return false;
			out[o++] = *s++;
			continue;
		}
		for (s += 3; k < 6 && hexdig(*s) >= 0; s++, k++)
			cp = cp << 4 | (uint32_t)hexdig(*s);
		if (k == 0 || *s != '}' || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xA0) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF || o + 5 >= cap)
			return false;
		s++;
		if (cp < 0x80) {
			out[o++] = (char)cp;
		} else if (cp < 0x800) {
			out[o++] = (char)(0xC0 | cp >> 6);
			out[o++] = (char)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			out[o++] = (char)(0xE0 | cp >> 12);
			out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		} else {
			out[o++] = (char)(0xF0 | cp >> 18);
			out[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
			out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	out[o] = '\0';
	return true;
}

/*
 * ORCPT "addr-type;xtext" as the Original-Recipient value "addr-type;
 * address": decoded when that is printable, else the xtext as given.
 */
static int orcpt_show(const char *orcpt, bool utf8, char *out, size_t cap)
{
	char dec[SMTP_ORCPT_MAX + 1], uni[2 * SMTP_ORCPT_MAX + 1];
	const char *semi, *x, *show;
	size_t tlen;

	if (!field_ok(orcpt, SMTP_ORCPT_MAX, false) || (semi = strchr(orcpt, ';')) == NULL)
		return -1;
	tlen = (size_t)(semi - orcpt);
	x = semi + 1;
	if (tlen == 0 || *x == '\0' || !smtp_xtext_valid(slice_from_str(x)))
		return -1;
	for (size_t i = 0; i < tlen; i++)
		if (!is_atext(orcpt[i]))
			return -1;
	show = x;
	if (smtp_xtext_decode(slice_from_str(x), dec, sizeof dec) > 0) {
		if (utf8 && tlen == 5 && strncasecmp(orcpt, "utf-8", 5) == 0 &&
		    unitext_decode(dec, uni, sizeof uni) && field_ok(uni, sizeof uni, true))
			show = uni;
		else if (field_ok(dec, sizeof dec, utf8))
			show = dec;
	}
	if ((size_t)snprintf(out, cap, "%.*s; %s", (int)tlen, orcpt, show) >= cap)
		return -1;
	return 0;
}

/* ENVID xtext, decoded when that is printable ASCII. */
static int envid_show(const char *envid, char *out, size_t cap)
{
	char dec[SMTP_ENVID_MAX + 1];

	if (!field_ok(envid, SMTP_ENVID_MAX, false) || !smtp_xtext_valid(slice_from_str(envid)))
		return -1;
	if (smtp_xtext_decode(slice_from_str(envid), dec, sizeof dec) > 0 &&
	    field_ok(dec, SMTP_ENVID_MAX, false))
		envid = dec;
	if ((size_t)snprintf(out, cap, "%s", envid) >= cap)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* the original message */

/* Octets before the first empty line (the line ends included); n if none. */
static size_t header_len(const uint8_t *m, size_t n)
{
	size_t i = 0;

	while (i < n) {
		const uint8_t *lf = memchr(m + i, '\n', n - i);
		size_t end, body;

		if (lf == NULL)
			return n;
		end = (size_t)(lf - m) + 1;
		body = end - 1 - i;
		if (body > 0 && m[i + body - 1] == '\r')
			body--;
		if (body == 0)
			return i;
		i = end;
	}
	return n;
}

/* CRLF lines only, no NUL, none over 998 octets (the last may lack CRLF). */
static bool clean_message(const uint8_t *m, size_t n)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		if (m[i] == '\r') {
			if (i + 1 >= n || m[i + 1] != '\n')
				return false;
			i++;
			col = 0;
			continue;
		}
		if (m[i] == '\n' || m[i] == '\0' || ++col > LINE_OCTETS)
			return false;
	}
	return true;
}

/*
 * Header lines as safe CRLF lines: LF (or CR LF) ends a line, a bare CR
 * becomes a space, NUL goes, a line over 998 octets is folded (CRLF SP).
 */
static void put_header_lines(struct w *w, const uint8_t *m, size_t n, bool utf8)
{
	size_t i = 0;

	while (i < n) {
		const uint8_t *lf = memchr(m + i, '\n', n - i);
		size_t end = lf ? (size_t)(lf - m) : n, col = 0;
		size_t stop = end;

		if (stop > i && m[stop - 1] == '\r')
			stop--;
		for (size_t j = i; j < stop; j++) {
			uint8_t c = m[j];

			if (c == '\0')
				continue;
			if (c == '\r')
				c = ' ';
			if (col >= LINE_OCTETS ||
			    (utf8 && col >= LINE_OCTETS - 3 && c >= 0xC0)) {
				w_str(w, "\r\n ");
				col = 1;
			}
			w_put(w, &c, 1);
			col++;
		}
		w_str(w, "\r\n");
		i = lf ? end + 1 : n;
	}
}

/* The first Message-ID of the header block, if it is a sane "<...>". */
static bool find_msgid(const uint8_t *h, size_t n, char *out, size_t cap)
{
	static const char key[] = "message-id:";
	size_t i = 0, o = 0;

	while (i < n) {
		const uint8_t *lf = memchr(h + i, '\n', n - i);
		size_t end = lf ? (size_t)(lf - h) + 1 : n;

		if (end - i >= sizeof key - 1 && strncasecmp((const char *)h + i, key,
							     sizeof key - 1) == 0) {
			/* the value, unfolded: this line and its continuations */
			size_t j = i + sizeof key - 1;
			bool gap = false;

			for (;;) {
				for (; j < end; j++) {
					uint8_t c = h[j];

					if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
						gap = o > 0;
						continue;
					}
					if (c < 0x21 || c >= 0x7f || o + 1 >= cap || gap)
						return false;
					out[o++] = (char)c;
				}
				if (end >= n || (h[end] != ' ' && h[end] != '\t'))
					break;
				lf = memchr(h + end, '\n', n - end);
				end = lf ? (size_t)(lf - h) + 1 : n;
			}
			out[o] = '\0';
			return o >= 3 && o <= MSGID_MAX && out[0] == '<' && out[o - 1] == '>' &&
			       strchr(out + 1, '<') == NULL && strchr(out, '>') == out + o - 1;
		}
		i = end;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* building */

enum orig_kind {
	ORIG_HEADERS,	/* headers asked for (or not a failure report) */
	ORIG_FULL,	/* the whole message */
	ORIG_TOO_BIG,	/* RET=FULL, but over max_full */
	ORIG_UNSAFE,	/* RET=FULL, but lines the report cannot carry */
};

struct ctx {
	const struct dsn_report *r;
	bool utf8;
	size_t count[DSN_EXPANDED + 1];
	size_t max_full;
	int64_t until_max;
	bool until_differ;
	enum orig_kind orig;
	bool hdr_cut;		/* the header block was cut at max_full */
	const uint8_t *part3;	/* what part 3 carries, before cleaning */
	size_t part3_len;
	bool has_envid, has_msgid;
	char envid[SMTP_ENVID_MAX + 1];
	char msgid[MSGID_MAX + 1];
	char date_now[DATE_LEN], date_arrival[DATE_LEN];
};

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

static const char *count_words(size_t n, char *tmp, size_t cap)
{
	if (n == 1)
		return "one recipient";
	snprintf(tmp, cap, "%zu recipients", n);
	return tmp;
}

static int validate(const struct dsn_report *r, struct ctx *c)
{
	c->utf8 = r->smtputf8;
	if (!host_ok(r->reporting_mta) || !qid_ok(r->qid) ||
	    !field_ok(r->sender, DSN_ADDR_MAX, c->utf8) || r->n == 0 || r->rcpts == NULL ||
	    (r->msg == NULL && r->msg_len > 0) || !time_ok(r->now) || !time_ok(r->arrival) ||
	    (r->boundary_seed != NULL && !seed_ok(r->boundary_seed)))
		return -1;
	if (r->envid != NULL) {
		if (envid_show(r->envid, c->envid, sizeof c->envid) < 0)
			return -1;
		c->has_envid = true;
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];
		char tmp[ORCPT_SHOW_MAX];
		struct status st;

		if ((unsigned)rc->action > DSN_EXPANDED || !field_ok(rc->addr, DSN_ADDR_MAX, c->utf8) ||
		    !parse_status(rc->status, &st) || !status_fits(&st, rc->action) ||
		    (rc->remote_mta != NULL && !host_ok(rc->remote_mta)) ||
		    (rc->orcpt != NULL && orcpt_show(rc->orcpt, c->utf8, tmp, sizeof tmp) < 0) ||
		    !time_ok(rc->last_attempt) || !time_ok(rc->will_retry_until))
			return -1;
		if ((rc->diagnostic != NULL && (strchr(rc->diagnostic, '\r') != NULL ||
						strchr(rc->diagnostic, '\n') != NULL)) ||
		    (rc->reason != NULL && (strchr(rc->reason, '\r') != NULL ||
					    strchr(rc->reason, '\n') != NULL)))
			return -1;
		c->count[rc->action]++;
		if (rc->action == DSN_DELAYED) {
			if (c->count[DSN_DELAYED] > 1 && rc->will_retry_until != c->until_max)
				c->until_differ = true;
			if (rc->will_retry_until > c->until_max)
				c->until_max = rc->will_retry_until;
		}
	}
	if (fmt_date(r->now, c->date_now) < 0 || fmt_date(r->arrival, c->date_arrival) < 0)
		return -1;
	return 0;
}

/* What part 3 carries: the whole message, or its (capped) header block. */
static void choose_original(struct ctx *c)
{
	const struct dsn_report *r = c->r;
	size_t hlen;

	c->orig = ORIG_HEADERS;
	if (r->ret_full && c->count[DSN_FAILED] > 0) {
		if (r->msg_len > c->max_full)
			c->orig = ORIG_TOO_BIG;
		else if (!clean_message(r->msg, r->msg_len))
			c->orig = ORIG_UNSAFE;
		else
			c->orig = ORIG_FULL;
	}
	if (c->orig == ORIG_FULL) {
		c->part3 = r->msg;
		c->part3_len = r->msg_len;
		return;
	}
	hlen = r->msg_len ? header_len(r->msg, r->msg_len) : 0;
	if (hlen > c->max_full) {
		/* cut at the last line end that fits, else mid-line */
		size_t cut = c->max_full;

		while (cut > 0 && r->msg[cut - 1] != '\n')
			cut--;
		hlen = cut > 0 ? cut : c->max_full;
		c->hdr_cut = true;
	}
	c->part3 = r->msg;
	c->part3_len = hlen;
}

static void human_advice(struct w *w, const struct ctx *c, const struct dsn_rcpt *rc,
			 const struct status *st)
{
	const char *dom = domain_of(rc->addr);
	const char *ind = "    ";
	char dur[64];

	if (dom == NULL)
		dom = "the recipient's domain";
	if (st->cls == 4) {
		if (c->r->arrival > 0 && c->r->now > c->r->arrival) {
			fmt_duration(c->r->now - c->r->arrival, dur, sizeof dur);
			w_para(w, ind, ind,
			       "What to do: the mail system kept trying for %s and has now given up. If the address is right, send the message again later; if that fails too, let the recipient know by other means that their mail server is not accepting mail.",
			       dur);
		} else {
			w_para(w, ind, ind,
			       "What to do: the mail system kept trying until its time limit and has now given up. If the address is right, send the message again later; if that fails too, let the recipient know by other means that their mail server is not accepting mail.");
		}
		return;
	}
	switch (st->subj * 1000 + st->det) {
	case 1001:
	case 1003:
	case 1004:
	case 1006:
		w_para(w, ind, ind,
		       "What to do: the address does not exist at %s. Check it for typing mistakes, or ask the recipient for their current address.",
		       dom);
		return;
	case 1002:
		w_para(w, ind, ind,
		       "What to do: %s does not exist or does not receive mail. Check the part of the address after the @.",
		       dom);
		return;
	case 1010:
		w_para(w, ind, ind,
		       "What to do: %s has declared that it accepts no mail at all (null MX, RFC 7505). Check the part of the address after the @, or reach the recipient another way.",
		       dom);
		return;
	case 1007:
	case 1008:
		w_para(w, ind, ind,
		       "What to do: your own address (the sender) was refused. Ask your mail administrator to check it.");
		return;
	case 2001:
		w_para(w, ind, ind,
		       "What to do: the recipient's mailbox is disabled. Reach them another way.");
		return;
	case 2002:
		w_para(w, ind, ind,
		       "What to do: the recipient's mailbox is full. Try again later, or reach them another way.");
		return;
	case 2003:
	case 3004:
		w_para(w, ind, ind,
		       "What to do: the message is too large for the recipient's mail system. Send it again without large attachments (share them as links instead).");
		return;
	case 4004:
		w_para(w, ind, ind,
		       "What to do: no mail server could be found for %s. Check the part of the address after the @.",
		       dom);
		return;
	case 6007:
		w_para(w, ind, ind,
		       "What to do: the address has non-ASCII characters, and a mail server on the way cannot handle them (SMTPUTF8). Use an all-ASCII address for this recipient if they have one.");
		return;
	}
	switch (st->subj) {
	case 3:
		w_para(w, ind, ind,
		       "What to do: the recipient's mail system has a problem. Try again later; if it keeps failing, let the recipient know by other means.");
		return;
	case 4:
		w_para(w, ind, ind,
		       "What to do: the recipient's mail server could not be reached. Check the part of the address after the @; if it is right, try again later.");
		return;
	case 6:
		w_para(w, ind, ind,
		       "What to do: the recipient's mail system could not accept the content of the message. Try sending it in a simpler form, for example plain text without attachments.");
		return;
	case 7:
		w_para(w, ind, ind,
		       "What to do: the recipient's mail system refused the message by policy (for example a spam filter, or a sender check such as SPF, DKIM or DMARC). This is usually not about the recipient's address: forward this report to your mail administrator, or reach the recipient another way.");
		return;
	}
	w_para(w, ind, ind,
	       "What to do: if you cannot tell why from the above, forward this report to your mail administrator.");
}

static void human_rcpt(struct w *w, const struct ctx *c, const struct dsn_rcpt *rc)
{
	static const char *const what[] = {
		[DSN_FAILED] = "delivery failed",
		[DSN_DELAYED] = "not delivered yet, still trying",
		[DSN_DELIVERED] = "delivered",
		[DSN_RELAYED] = "relayed to a mail system that sends no delivery reports",
		[DSN_EXPANDED] = "delivered to a list or alias, which passed it on",
	};
	const char *dom = domain_of(rc->addr);
	char diag[DSN_DIAG_MAX + 1], reason[DSN_REASON_MAX + 1], date[DATE_LEN], dur[64];
	struct status st = { 0, 0, 0 };

	(void)parse_status(rc->status, &st); /* checked in validate() */
	w_para(w, "", "    ", "<%s>: %s", rc->addr, what[rc->action]);
	if (rc->reason != NULL && clean_line(rc->reason, c->utf8, reason, sizeof reason) == 0 &&
	    reason[0] != '\0')
		w_para(w, "    ", "    ", "%s", reason);
	if (rc->diagnostic != NULL &&
	    clean_line(rc->diagnostic, c->utf8, diag, sizeof diag) == 0 && diag[0] != '\0') {
		if (dom != NULL && rc->remote_mta != NULL)
			w_para(w, "    ", "    ", "The mail server for %s (%s) said:", dom,
			       rc->remote_mta);
		else if (dom != NULL)
			w_para(w, "    ", "    ", "The mail server for %s said:", dom);
		else if (rc->remote_mta != NULL)
			w_para(w, "    ", "    ", "The mail server %s said:", rc->remote_mta);
		else
			w_para(w, "    ", "    ", "The receiving mail server said:");
		w_wrap(w, "        ", "        ", diag);
	} else if (rc->reason == NULL) {
		w_para(w, "    ", "    ", "Status %s: %s.", rc->status, status_words(&st));
	}
	if (rc->action == DSN_DELAYED && c->until_differ && rc->will_retry_until > 0 &&
	    fmt_date(rc->will_retry_until, date) == 0) {
		if (rc->will_retry_until > c->r->now) {
			fmt_duration(rc->will_retry_until - c->r->now, dur, sizeof dur);
			w_para(w, "    ", "    ",
			       "The mail system will keep trying until %s (for another %s).", date,
			       dur);
		} else {
			w_para(w, "    ", "    ", "The mail system will make a last attempt soon.");
		}
	}
	if (rc->action == DSN_FAILED)
		human_advice(w, c, rc, &st);
	else if (rc->action == DSN_RELAYED || rc->action == DSN_EXPANDED)
		w_para(w, "    ", "    ", "No further report will come for this recipient.");
	w_str(w, "\r\n");
}

static void human_group(struct w *w, const struct ctx *c, enum dsn_action lo,
			enum dsn_action hi)
{
	for (size_t i = 0; i < c->r->n; i++)
		if (c->r->rcpts[i].action >= lo && c->r->rcpts[i].action <= hi)
			human_rcpt(w, c, &c->r->rcpts[i]);
}

static void human_part(struct w *w, const struct ctx *c)
{
	const struct dsn_report *r = c->r;
	char cnt[48], date[DATE_LEN], dur[64], size[32];
	size_t ok = c->count[DSN_DELIVERED] + c->count[DSN_RELAYED] + c->count[DSN_EXPANDED];

	w_para(w, "", "", "This is the mail system at host %s.", r->reporting_mta);
	w_str(w, "\r\n");
	if (c->count[DSN_FAILED] > 0) {
		w_para(w, "", "",
		       "Your message could not be delivered to %s. The mail system has given up: %s will not get it unless you fix the problem described below and send the message again.",
		       count_words(c->count[DSN_FAILED], cnt, sizeof cnt),
		       c->count[DSN_FAILED] == 1 ? "that recipient" : "they");
		w_str(w, "\r\n");
		human_group(w, c, DSN_FAILED, DSN_FAILED);
	}
	if (c->count[DSN_DELAYED] > 0) {
		const char *who = count_words(c->count[DSN_DELAYED], cnt, sizeof cnt);

		if (c->until_max > r->now && fmt_date(c->until_max, date) == 0) {
			fmt_duration(c->until_max - r->now, dur, sizeof dur);
			w_para(w, "", "",
			       "Your message has not been delivered yet to %s, because of a temporary problem. The mail system will keep trying until %s (for another %s). You do not need to send it again: if it is still not delivered by then, you will get another report.",
			       who, date, dur);
		} else {
			w_para(w, "", "",
			       "Your message has not been delivered yet to %s, because of a temporary problem. The mail system will keep trying. You do not need to send it again: if it cannot be delivered in the end, you will get another report.",
			       who);
		}
		w_str(w, "\r\n");
		human_group(w, c, DSN_DELAYED, DSN_DELAYED);
	}
	if (ok > 0) {
		w_para(w, "", "",
		       "This is the delivery report you asked for: your message reached %s as described below.",
		       count_words(ok, cnt, sizeof cnt));
		w_str(w, "\r\n");
		human_group(w, c, DSN_DELIVERED, DSN_EXPANDED);
	}
	w_para(w, "", "", "About your message:");
	w_para(w, "    ", "    ", "Queue ID: %s", r->qid);
	w_para(w, "    ", "    ", "Sender: <%s>", r->sender);
	if (r->arrival > 0)
		w_para(w, "    ", "    ", "Received: %s", c->date_arrival);
	if (c->has_envid)
		w_para(w, "    ", "    ", "Envelope ID: %s", c->envid);
	w_str(w, "\r\n");
	snprintf(size, sizeof size, "%zu", c->max_full);
	switch (c->orig) {
	case ORIG_FULL:
		w_para(w, "", "", "Your message is attached after the delivery report.");
		break;
	case ORIG_TOO_BIG:
		w_para(w, "", "",
		       "Your message was larger than %s octets, so only its headers are attached after the delivery report, not the whole message.",
		       size);
		break;
	case ORIG_UNSAFE:
		w_para(w, "", "",
		       "Your message has lines this report cannot carry unchanged (longer than 998 octets, or not ending in CR LF), so only its headers are attached after the delivery report.");
		break;
	case ORIG_HEADERS:
		w_para(w, "", "",
		       "The headers of your message are attached after the delivery report.");
		break;
	}
	if (c->hdr_cut)
		w_para(w, "", "", "Those headers were cut at %s octets.", size);
}

static void status_part(struct w *w, const struct ctx *c)
{
	const struct dsn_report *r = c->r;
	char v[DSN_DIAG_MAX + 64], date[DATE_LEN];

	/* RFC 3464 2.2: per-message fields, in the order of the grammar */
	if (c->has_envid)
		w_field(w, "Original-Envelope-Id", c->envid);
	w_printf(w, "Reporting-MTA: dns; %s\r\n", r->reporting_mta);
	if (r->arrival > 0)
		w_printf(w, "Arrival-Date: %s\r\n", c->date_arrival);
	w_printf(w, "X-Tern-Queue-ID: %s\r\n", r->qid);
	for (size_t i = 0; i < r->n; i++) {
		static const char *const act[] = { "failed", "delayed", "delivered", "relayed",
						   "expanded" };
		const struct dsn_rcpt *rc = &r->rcpts[i];
		char orcpt[ORCPT_SHOW_MAX], diag[DSN_DIAG_MAX + 1];

		/* RFC 3464 2.3: per-recipient fields */
		w_str(w, "\r\n");
		if (rc->orcpt != NULL && orcpt_show(rc->orcpt, c->utf8, orcpt, sizeof orcpt) == 0)
			w_field(w, "Original-Recipient", orcpt);
		snprintf(v, sizeof v, "%s; %s", c->utf8 && !is_ascii(rc->addr) ? "utf-8" : "rfc822",
			 rc->addr);
		w_field(w, "Final-Recipient", v);
		w_printf(w, "Action: %s\r\n", act[rc->action]);
		w_printf(w, "Status: %s\r\n", rc->status);
		if (rc->remote_mta != NULL)
			w_printf(w, "Remote-MTA: dns; %s\r\n", rc->remote_mta);
		if (rc->diagnostic != NULL &&
		    clean_line(rc->diagnostic, c->utf8, diag, sizeof diag) == 0 && diag[0] != '\0') {
			snprintf(v, sizeof v, "smtp; %s", diag);
			w_field(w, "Diagnostic-Code", v);
		}
		if (rc->last_attempt > 0 && fmt_date(rc->last_attempt, date) == 0)
			w_printf(w, "Last-Attempt-Date: %s\r\n", date);
		if (rc->action == DSN_DELAYED && rc->will_retry_until > 0 &&
		    fmt_date(rc->will_retry_until, date) == 0)
			w_printf(w, "Will-Retry-Until: %s\r\n", date);
	}
}

static bool boundary_free(const char *b, struct buf *const parts[3])
{
	size_t n = strlen(b);

	for (int i = 0; i < 3; i++)
		if (parts[i]->len >= n && memmem(parts[i]->data, parts[i]->len, b, n) != NULL)
			return false;
	return true;
}

static int choose_boundary(const struct ctx *c, struct buf *const parts[3],
			   char out[BOUNDARY_MAX + 1])
{
	for (unsigned try = 0; try < 1000; try++) {
		if (c->r->boundary_seed != NULL) {
			if (try == 0)
				snprintf(out, BOUNDARY_MAX + 1, "%s", c->r->boundary_seed);
			else
				snprintf(out, BOUNDARY_MAX + 1, "%s.%u", c->r->boundary_seed, try);
		} else {
			uint64_t x = 0;

			if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x) {
				/* no entropy yet: the content check below still holds */
				x = (uint64_t)c->r->now * 0x9E3779B97F4A7C15ULL + try;
				for (const char *q = c->r->qid; *q; q++)
					x = (x ^ (uint8_t)*q) * 0x100000001B3ULL;
			}
			snprintf(out, BOUNDARY_MAX + 1, "=_%s.%016llx", c->r->qid,
				 (unsigned long long)x);
		}
		if (boundary_free(out, parts))
			return 0;
	}
	return -1;
}

static const char *subject(const struct ctx *c)
{
	if (c->count[DSN_FAILED] > 0)
		return "Undelivered Mail Returned to Sender";
	if (c->count[DSN_DELAYED] > 0)
		return "Delayed Mail (still being retried)";
	return "Successful Mail Delivery Report";
}

static void part_header(struct w *w, const char *b, const char *desc, const char *type,
			bool eight)
{
	w_printf(w, "--%s\r\n", b);
	w_printf(w, "Content-Description: %s\r\n", desc);
	w_printf(w, "Content-Type: %s\r\n", type);
	w_printf(w, "Content-Transfer-Encoding: %s\r\n\r\n", eight ? "8bit" : "7bit");
}

int dsn_build(const struct dsn_report *r, struct buf *out)
{
	struct ctx c;
	struct buf p1, p2, p3;
	struct buf *const parts[3] = { &p1, &p2, &p3 };
	struct w w1 = { &p1, false }, w2 = { &p2, false }, w3 = { &p3, false };
	struct w wo = { out, false };
	char boundary[BOUNDARY_MAX + 1];
	const char *t3;
	bool e1, e2, e3;
	size_t saved;
	int rc = -1;

	if (r == NULL || out == NULL)
		return -1;
	saved = out->len;
	memset(&c, 0, sizeof c);
	c.r = r;
	c.max_full = r->max_full ? r->max_full : DSN_MAX_FULL_DEFAULT;
	if (validate(r, &c) < 0)
		return -1;
	choose_original(&c);
	if (c.part3_len > 0 && c.orig != ORIG_FULL)
		c.has_msgid = find_msgid(c.part3, c.part3_len, c.msgid, sizeof c.msgid);
	else if (c.part3_len > 0)
		c.has_msgid = find_msgid(c.part3, header_len(c.part3, c.part3_len), c.msgid,
					 sizeof c.msgid);

	buf_init(&p1, out->max);
	buf_init(&p2, out->max);
	buf_init(&p3, out->max);
	human_part(&w1, &c);
	status_part(&w2, &c);
	if (c.orig == ORIG_FULL) {
		w_put(&w3, c.part3, c.part3_len);
		if (c.part3_len > 0 && c.part3[c.part3_len - 1] != '\n')
			w_str(&w3, "\r\n");
	} else {
		put_header_lines(&w3, c.part3, c.part3_len, c.utf8);
	}
	if (w1.fail || w2.fail || w3.fail || choose_boundary(&c, parts, boundary) < 0)
		goto done;
	e1 = has_8bit(p1.data, p1.len);
	e2 = has_8bit(p2.data, p2.len);
	e3 = has_8bit(p3.data, p3.len);

	w_printf(&wo, "Date: %s\r\n", c.date_now);
	w_printf(&wo, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", r->reporting_mta);
	w_printf(&wo, "To: <%s>\r\n", r->sender);
	w_printf(&wo, "Subject: %s\r\n", subject(&c));
	w_printf(&wo, "Message-ID: <%s.dsn.%lld@%s>\r\n", r->qid, (long long)r->now,
		 r->reporting_mta);
	if (c.has_msgid) {
		w_printf(&wo, "In-Reply-To: %s\r\n", c.msgid);
		w_printf(&wo, "References: %s\r\n", c.msgid);
	}
	w_str(&wo, "Auto-Submitted: auto-replied\r\n");
	w_str(&wo, "MIME-Version: 1.0\r\n");
	w_printf(&wo, "Content-Type: multipart/report; report-type=%s;\r\n\tboundary=\"%s\"\r\n",
		 c.utf8 ? "global-delivery-status" : "delivery-status", boundary);
	w_printf(&wo, "Content-Transfer-Encoding: %s\r\n\r\n", e1 || e2 || e3 ? "8bit" : "7bit");
	w_str(&wo, "This is a MIME-encapsulated message: a delivery status notification.\r\n\r\n");

	part_header(&wo, boundary, "Notification",
		    c.utf8 ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii", e1);
	w_put(&wo, p1.data, p1.len);

	part_header(&wo, boundary, "Delivery report",
		    c.utf8 ? "message/global-delivery-status" : "message/delivery-status", e2);
	w_put(&wo, p2.data, p2.len);

	if (c.orig == ORIG_FULL)
		t3 = c.utf8 ? "message/global" : "message/rfc822";
	else
		t3 = c.utf8 ? "message/global-headers" : "text/rfc822-headers";
	part_header(&wo, boundary,
		    c.orig == ORIG_FULL ? "Returned message" : "Returned message headers", t3, e3);
	w_put(&wo, p3.data, p3.len);
	/* the CRLF before a delimiter belongs to it: keep the last line's own */
	w_printf(&wo, "\r\n--%s--\r\n", boundary);
	if (!wo.fail)
		rc = 0;
done:
	if (rc < 0)
		out->len = saved;
	buf_free(&p1);
	buf_free(&p2);
	buf_free(&p3);
	return rc;
}

bool dsn_wanted(unsigned notify_flags, enum dsn_action action)
{
	if (notify_flags & DSN_NOTIFY_NEVER)
		return false;
	if (notify_flags == 0) /* RFC 3461 4.1: FAILURE, and DELAY at our option */
		return action == DSN_FAILED || action == DSN_DELAYED;
	switch (action) {
	case DSN_FAILED:
		return (notify_flags & DSN_NOTIFY_FAILURE) != 0;
	case DSN_DELAYED:
		return (notify_flags & DSN_NOTIFY_DELAY) != 0;
	case DSN_DELIVERED:
	case DSN_RELAYED:
	case DSN_EXPANDED:
		return (notify_flags & DSN_NOTIFY_SUCCESS) != 0;
	}
	return false;
}
