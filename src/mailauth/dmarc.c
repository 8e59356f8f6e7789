/*
 * dmarc.c - DMARC (RFC 7489): record parser, Organizational Domain via
 * libpsl, author domain parser, alignment and policy discovery over an
 * asynchronous DNS provider, and the aggregate-report line; see dmarc.h.
 *
 * Discovery asks at most two questions, one after the other (6.6.3). As in
 * spf.c, an answer only fills the slot; run() steps the state machine
 * until it waits for an answer or is finished, so an answer given from
 * inside the provider call, and a done() that frees the evaluation, are
 * both safe.
 */
#include "dmarc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpsl.h>

#include "../lib/log.h"

#define PSL_DAFSA "/usr/share/publicsuffix/public_suffix_list.dafsa"
#define PSL_DAT "/usr/share/publicsuffix/public_suffix_list.dat"
#define DKIM_IN_MAX 256		/* signatures a request may carry */

const char *dmarc_result_name(enum dmarc_result_code c)
{
	switch (c) {
	case DMARC_NONE: return "none";
	case DMARC_PASS: return "pass";
	case DMARC_FAIL: return "fail";
	case DMARC_TEMPERROR: return "temperror";
	case DMARC_PERMERROR: return "permerror";
	}
	return "?";
}

const char *dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_POLICY_NONE: return "none";
	case DMARC_POLICY_QUARANTINE: return "quarantine";
	case DMARC_POLICY_REJECT: return "reject";
	}
	return "?";
}

/* ------------------------------------------------------------------ */
/* small helpers */

static char lc(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static bool is_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(uint8_t c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* s equals the lower-case literal lit, ignoring case. */
static bool eq_nocase(struct slice s, const char *lit)
{
	return slice_eq_nocase(s, lit);
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	str_copy_printable(err, errlen, tmp, strlen(tmp));
}

/* Appends words to a bounded, NUL-terminated note (never overflows). */
static void note_add(char *note, size_t cap, const char *what)
{
	size_t n = strlen(note);

	if (n + 3 >= cap)
		return;
	snprintf(note + n, cap - n, "%s%s", n > 0 ? "; " : "", what);
}

/*
 * Normalizes a domain for comparison and lookup: one trailing dot
 * dropped, ASCII lower-cased, into out (cap). -1 when empty or too long.
 */
static int norm_domain(const char *in, char *out, size_t cap)
{
	size_t n = strlen(in);

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > DMARC_DOMAIN_MAX || n >= cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = lc(in[i]);
	out[n] = '\0';
	return 0;
}

/* A name DMARC can ask about: labels of 1-63 printable ASCII (no space), <= 253 octets. */
static bool dns_name_ok(const char *d)
{
	size_t n = strlen(d), label = 0;

	if (n == 0 || n > DMARC_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || d[i] == '.') {
			if (label == 0 || label > 63)
				return false;
			label = 0;
		} else if ((unsigned char)d[i] <= 0x20 || (unsigned char)d[i] >= 0x7f) {
			return false;
		} else {
			label++;
		}
	}
	return true;
}

static bool has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Length of the valid UTF-8 sequence at p[0..len), or 0 (RFC 3629 4). */
static size_t utf8_seq(const uint8_t *p, size_t len)
{
	uint8_t c = p[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1fu;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0fu;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07u;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;	/* overlong, beyond Unicode, or a surrogate */
	return n;
}

/* ------------------------------------------------------------------ */
/* the record (RFC 7489 6.3, 6.4) */

static bool keyword_policy(struct slice v, enum dmarc_policy *p)
{
	if (eq_nocase(v, "none"))
		*p = DMARC_POLICY_NONE;
	else if (eq_nocase(v, "quarantine"))
		*p = DMARC_POLICY_QUARANTINE;
	else if (eq_nocase(v, "reject"))
		*p = DMARC_POLICY_REJECT;
	else
		return false;
	return true;
}

static bool keyword_align(struct slice v, enum dmarc_align *a)
{
	if (eq_nocase(v, "r"))
		*a = DMARC_ALIGN_RELAXED;
	else if (eq_nocase(v, "s"))
		*a = DMARC_ALIGN_STRICT;
	else
		return false;
	return true;
}

/* 1*DIGIT with a value <= max. */
static bool decimal(struct slice v, unsigned long max, unsigned long *out)
{
	unsigned long n = 0;

	if (v.len == 0)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		if (!is_digit(v.p[i]))
			return false;
		n = n * 10 + (unsigned long)(v.p[i] - '0');
		if (n > max)
			return false;	/* also keeps n from wrapping */
	}
	*out = n;
	return true;
}

/* URI characters of RFC 3986 2 (unreserved, reserved, '%' HEXDIG HEXDIG). */
static bool uri_chars(struct slice s)
{
	static const char extra[] = "-._~:/?#[]@!$&'()*+,;=";

	for (size_t i = 0; i < s.len; i++) {
		uint8_t c = s.p[i];

		if (is_alpha(c) || is_digit(c) || (c != 0 && strchr(extra, c) != NULL))
			continue;
		if (c == '%' && i + 2 < s.len && is_hex(s.p[i + 1]) && is_hex(s.p[i + 2])) {
			i += 2;
			continue;
		}
		return false;
	}
	return true;
}

/*
 * One dmarc-uri (6.4): URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ].
 * The URI is scheme ":" followed by URI characters (RFC 3986 3.1).
 */
static bool dmarc_uri_ok(struct slice u)
{
	size_t colon, i;

	/* an optional size limit after the last '!' (6.4 dmarc-uri) */
	for (i = u.len; i > 0; i--) {
		if (u.p[i - 1] == '!')
			break;
	}
	if (i > 0) {
		size_t j = i, digits = 0;

		while (j < u.len && is_digit(u.p[j])) {
			j++;
			digits++;
		}
		if (j < u.len && strchr("kmgtKMGT", u.p[j]) != NULL && u.p[j] != 0)
			j++;
		if (digits > 0 && j == u.len)
			u.len = i - 1;	/* the suffix is a size: drop it */
	}
	if (u.len == 0 || !is_alpha(u.p[0]))
		return false;
	for (colon = 1; colon < u.len && u.p[colon] != ':'; colon++) {
		uint8_t c = u.p[colon];

		if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.')
			return false;	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	}
	if (colon >= u.len - 1)
		return false;		/* no ':' or nothing after it */
	return uri_chars((struct slice){ u.p + colon + 1, u.len - colon - 1 });
}

/* A comma-separated dmarc-uri list (6.4 dmarc-auri): the number of valid URIs, -1 if any is bad. */
static int uri_list(struct slice v, unsigned *valid)
{
	size_t start = 0;
	int bad = 0;

	*valid = 0;
	for (size_t i = 0; i <= v.len; i++) {
		if (i < v.len && v.p[i] != ',')
			continue;
		/* *WSP "," *WSP between URIs */
		if (dmarc_uri_ok(slice_trim((struct slice){ v.p + start, i - start })))
			(*valid)++;
		else
			bad = -1;
		start = i + 1;
	}
	return bad;
}

/* Keywords joined by ':' with optional WSP; each in set (NULL: Keyword, RFC 5321 Ldh-str). */
static bool colon_list(struct slice v, const char *const *set)
{
	size_t start = 0;

	if (v.len == 0)
		return false;
	for (size_t i = 0; i <= v.len; i++) {
		struct slice k;
		bool ok = false;

		if (i < v.len && v.p[i] != ':')
			continue;
		k = slice_trim((struct slice){ v.p + start, i - start });
		start = i + 1;
		if (k.len == 0)
			return false;
		if (set != NULL) {
			for (size_t j = 0; set[j] != NULL && !ok; j++)
				ok = eq_nocase(k, set[j]);
		} else {
			ok = is_alpha(k.p[0]);
			for (size_t j = 1; j < k.len && ok; j++)
				ok = is_alpha(k.p[j]) || is_digit(k.p[j]) || k.p[j] == '-';
		}
		if (!ok)
			return false;
	}
	return true;
}

/* Printable ASCII and WSP only. */
static bool printable(struct slice v)
{
	for (size_t i = 0; i < v.len; i++)
		if ((v.p[i] < 0x20 && v.p[i] != '\t') || v.p[i] >= 0x7f)
			return false;
	return true;
}

/* tag-name = ALPHA *ALNUMPUNC (RFC 6376 3.2, which 6.3 adopts) */
static bool tag_name_ok(struct slice n)
{
	if (n.len == 0 || !is_alpha(n.p[0]))
		return false;
	for (size_t i = 1; i < n.len; i++)
		if (!is_alpha(n.p[i]) && !is_digit(n.p[i]) && n.p[i] != '_')
			return false;
	return true;
}

/* The next tag-spec of txt from *pos: false at the end. */
static bool next_spec(const uint8_t *txt, size_t len, size_t *pos, struct slice *spec)
{
	size_t s = *pos, e;

	if (s > len)
		return false;
	for (e = s; e < len && txt[e] != ';'; e++)
		;
	*spec = slice_trim((struct slice){ txt + s, e - s });
	*pos = e + 1;	/* past ';', or len + 1 at the end */
	return true;
}

static void split_tag(struct slice spec, struct slice *name, struct slice *value, bool *has_eq)
{
	const uint8_t *eq = spec.len > 0 ? memchr(spec.p, '=', spec.len) : NULL;

	*has_eq = eq != NULL;
	if (eq == NULL) {
		*name = spec;
		*value = (struct slice){ spec.p + spec.len, 0 };
		return;
	}
	*name = slice_trim((struct slice){ spec.p, (size_t)(eq - spec.p) });
	*value = slice_trim((struct slice){ eq + 1, spec.len - (size_t)(eq - spec.p) - 1 });
}

static void warn_tag(struct dmarc_record *out, struct slice name, const char *why)
{
	char w[64];
	char n[17];

	str_copy_printable(n, sizeof n, (const char *)name.p, name.len);
	snprintf(w, sizeof w, "%s= %s", n, why);
	note_add(out->warnings, sizeof out->warnings, w);
}

enum {
	TAG_P = 1u << 0, TAG_SP = 1u << 1, TAG_ADKIM = 1u << 2, TAG_ASPF = 1u << 3,
	TAG_PCT = 1u << 4, TAG_RI = 1u << 5, TAG_RUA = 1u << 6, TAG_RUF = 1u << 7,
	TAG_FO = 1u << 8, TAG_RF = 1u << 9, TAG_V = 1u << 10,
};

int dmarc_record_parse(const uint8_t *txt, size_t len, struct dmarc_record *out,
		       char *err, size_t errlen)
{
	static const char *const fo_set[] = { "0", "1", "d", "s", NULL };
	struct slice spec, name, value;
	size_t pos = 0;
	unsigned seen = 0, rua_valid = 0;
	bool has_eq, p_ok = false, sp_bad = false;
	char pv[24] = "", spv[24] = "";

	memset(out, 0, sizeof *out);
	out->p = out->sp = DMARC_POLICY_NONE;
	out->adkim = out->aspf = DMARC_ALIGN_RELAXED;
	out->pct = 100;				/* 6.3 pct default */
	out->ri = DMARC_RI_DEFAULT;		/* 6.3 ri default */
	memcpy(out->fo, "0", 2);		/* 6.3 fo default */
	memcpy(out->rf, "afrf", 5);		/* 6.3 rf default */
	seterr(err, errlen, "ok");

	/* 6.3 v=: the first tag, exactly "DMARC1", else not a DMARC record */
	if (txt == NULL || !next_spec(txt, len, &pos, &spec))
		return 0;
	split_tag(spec, &name, &value, &has_eq);
	if (!has_eq || !eq_nocase(name, "v") || value.len != 6 || memcmp(value.p, "DMARC1", 6) != 0)
		return 0;
	if (len > DMARC_RECORD_MAX) {
		seterr(err, errlen, "DMARC record longer than %d octets", DMARC_RECORD_MAX);
		return -1;
	}

	while (next_spec(txt, len, &pos, &spec)) {
		unsigned bit;
		unsigned long n;

		if (spec.len == 0)
			continue;	/* ";;" or a trailing ";": tolerated */
		split_tag(spec, &name, &value, &has_eq);
		if (!has_eq || !tag_name_ok(name)) {
			note_add(out->warnings, sizeof out->warnings, "bad tag-spec ignored");
			continue;
		}
		if (eq_nocase(name, "p")) bit = TAG_P;
		else if (eq_nocase(name, "sp")) bit = TAG_SP;
		else if (eq_nocase(name, "adkim")) bit = TAG_ADKIM;
		else if (eq_nocase(name, "aspf")) bit = TAG_ASPF;
		else if (eq_nocase(name, "pct")) bit = TAG_PCT;
		else if (eq_nocase(name, "ri")) bit = TAG_RI;
		else if (eq_nocase(name, "rua")) bit = TAG_RUA;
		else if (eq_nocase(name, "ruf")) bit = TAG_RUF;
		else if (eq_nocase(name, "fo")) bit = TAG_FO;
		else if (eq_nocase(name, "rf")) bit = TAG_RF;
		else if (eq_nocase(name, "v")) bit = TAG_V;
		else
			continue;	/* 6.3: unknown tags MUST be ignored */
		if (seen & bit) {
			warn_tag(out, name, "repeated, ignored");
			continue;	/* the first one counts */
		}
		seen |= bit;
		switch (bit) {
		case TAG_P:
			p_ok = keyword_policy(value, &out->p);
			str_copy_printable(pv, sizeof pv, (const char *)value.p, value.len);
			break;
		case TAG_SP:
			if (keyword_policy(value, &out->sp)) {
				out->sp_given = true;
			} else {
				sp_bad = true;	/* 6.6.3 step 6: like a bad p */
				str_copy_printable(spv, sizeof spv, (const char *)value.p, value.len);
			}
			break;
		case TAG_ADKIM:
			if (!keyword_align(value, &out->adkim))
				warn_tag(out, name, "bad value, default r");
			break;
		case TAG_ASPF:
			if (!keyword_align(value, &out->aspf))
				warn_tag(out, name, "bad value, default r");
			break;
		case TAG_PCT:
			/* 6.4 dmarc-percent = "pct" *WSP "=" *WSP 1*3DIGIT, 0..100 (6.3) */
			if (value.len <= 3 && decimal(value, 100, &n))
				out->pct = (unsigned)n;
			else
				warn_tag(out, name, "bad value, default 100");
			break;
		case TAG_RI:
			/* 6.4 dmarc-ainterval = 1*DIGIT, a 32-bit unsigned integer (6.3) */
			if (decimal(value, 4294967295ul, &n))
				out->ri = n;
			else
				warn_tag(out, name, "bad value, default 86400");
			break;
		case TAG_RUA:
		case TAG_RUF: {
			unsigned valid = 0;
			char *dst = bit == TAG_RUA ? out->rua : out->ruf;
			int rc = uri_list(value, &valid);

			if (valid == 0 || value.len > DMARC_URIS_MAX || !printable(value)) {
				warn_tag(out, name, valid == 0 ? "no valid URI, ignored" :
					 value.len > DMARC_URIS_MAX ? "too long, ignored" :
					 "not printable ASCII, ignored");
				break;	/* kept only as safe text: it goes to logs and reports */
			}
			if (rc != 0)
				warn_tag(out, name, "holds a bad URI");
			for (size_t i = 0; i < value.len; i++)	/* WSP around commas: HTAB as SP */
				dst[i] = value.p[i] == '\t' ? ' ' : (char)value.p[i];
			dst[value.len] = '\0';
			if (bit == TAG_RUA)
				rua_valid = valid;
			break;
		}
		case TAG_FO:
		case TAG_RF: {
			char *dst = bit == TAG_FO ? out->fo : out->rf;

			/* 6.4 dmarc-fo: ( "0" / "1" / "d" / "s" ) *( ":" ... ); dmarc-rfmt: Keyword *(":" Keyword) */
			if (value.len > DMARC_TAGVAL_MAX ||
			    !colon_list(value, bit == TAG_FO ? fo_set : NULL)) {
				warn_tag(out, name, "bad value, default kept");
				break;
			}
			memcpy(dst, value.p, value.len);
			dst[value.len] = '\0';
			break;
		}
		default:	/* TAG_V again after the first tag */
			warn_tag(out, name, "not first, ignored");
			break;
		}
	}

	if (!p_ok || sp_bad) {
		/* 6.6.3 step 6: a bad or missing p, or a bad sp */
		if (rua_valid > 0) {
			out->p = out->sp = DMARC_POLICY_NONE;	/* 6.6.3 6.1: act as p=none */
			out->sp_given = false;
			out->p_forced = true;
			return 1;
		}
		if (!(seen & TAG_P))
			seterr(err, errlen, "no p= tag and no valid rua=");
		else if (!p_ok)
			seterr(err, errlen, "bad p= value \"%s\" and no valid rua=", pv);
		else
			seterr(err, errlen, "bad sp= value \"%s\" and no valid rua=", spv);
		return -1;	/* 6.6.3 6.2: no DMARC processing */
	}
	if (!out->sp_given)
		out->sp = out->p;	/* 6.3 sp: "If absent, the policy specified by the p tag" */
	return 1;
}

/* ------------------------------------------------------------------ */
/* the Organizational Domain (RFC 7489 3.2) */

struct dmarc_psl {
	psl_ctx_t *ctx;
};

struct dmarc_psl *dmarc_psl_load(const char *path, char *err, size_t errlen)
{
	struct dmarc_psl *p;
	const char *file = path;

	if (file == NULL)
		file = access(PSL_DAFSA, R_OK) == 0 ? PSL_DAFSA : PSL_DAT;
	if (access(file, R_OK) != 0) {
		seterr(err, errlen, "public suffix list %s: %s", file, strerror(errno));
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (p == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	p->ctx = psl_load_file(file);
	if (p->ctx == NULL || psl_suffix_count(p->ctx) == 0) {	/* -1: a DAFSA, count unknown */
		psl_free(p->ctx);
		free(p);
		seterr(err, errlen, "public suffix list %s: not a list libpsl can read", file);
		return NULL;
	}
	return p;
}

void dmarc_psl_free(struct dmarc_psl *psl)
{
	if (psl == NULL)
		return;
	psl_free(psl->ctx);
	free(psl);
}

int dmarc_org_domain(const struct dmarc_psl *psl, const char *domain, char *out, size_t cap)
{
	char name[DMARC_DOMAIN_MAX + 1];
	char *lower = NULL;
	const char *reg;
	size_t n, label = 0;
	int rc = -1;

	if (psl == NULL || domain == NULL || out == NULL || cap == 0)
		return -1;
	out[0] = '\0';
	if (norm_domain(domain, name, sizeof name) != 0)
		return -1;
	n = strlen(name);
	for (size_t i = 0; i <= n; i++) {	/* no empty label (a leading dot, "..") */
		if (i == n || name[i] == '.') {
			if (label == 0 || label > 63)
				return -1;
			label = 0;
		} else if ((unsigned char)name[i] <= 0x20 || name[i] == 0x7f) {
			return -1;
		} else {
			label++;
		}
	}
	if (has_8bit(name)) {
		/* U-labels: libpsl wants UTF-8 lower case (its psl_registrable_domain contract) */
		if (psl_str_to_utf8lower(name, "utf-8", NULL, &lower) != PSL_SUCCESS || lower == NULL)
			return -1;
	}
	reg = psl_registrable_domain(psl->ctx, lower != NULL ? lower : name);
	if (reg != NULL && strlen(reg) < cap) {
		memcpy(out, reg, strlen(reg) + 1);
		rc = 0;
	}
	psl_free_string(lower);
	return rc;
}

/* The org domain of d, or d itself when it has none (a public suffix). */
static void org_or_self(const struct dmarc_psl *psl, const char *d, char *out, size_t cap)
{
	if (dmarc_org_domain(psl, d, out, cap) != 0)
		snprintf(out, cap, "%s", d);
}

bool dmarc_aligned(const struct dmarc_psl *psl, const char *a, const char *b,
		   enum dmarc_align mode)
{
	char na[DMARC_DOMAIN_MAX + 1], nb[DMARC_DOMAIN_MAX + 1];
	char oa[DMARC_DOMAIN_MAX + 1], ob[DMARC_DOMAIN_MAX + 1];

	if (a == NULL || b == NULL || norm_domain(a, na, sizeof na) != 0 ||
	    norm_domain(b, nb, sizeof nb) != 0)
		return false;
	if (strcmp(na, nb) == 0)
		return true;		/* 3.1.1/3.1.2: identical aligns in both modes */
	if (mode == DMARC_ALIGN_STRICT || psl == NULL)
		return false;
	org_or_self(psl, na, oa, sizeof oa);
	org_or_self(psl, nb, ob, sizeof ob);
	return strcmp(oa, ob) == 0;	/* 3.1: relaxed = same Organizational Domain */
}

/* ------------------------------------------------------------------ */
/* the author domain (RFC 7489 6.6.1; RFC 5322 3.2-3.4, 4.4) */

enum tok { T_END = 0, T_ATOM, T_QSTR, T_DLIT, T_SPECIAL, T_ERR };

struct lex {
	const uint8_t *p;
	size_t len, pos;
	enum tok kind;		/* the current token */
	uint8_t c;		/* T_SPECIAL: which */
	size_t start, tlen;	/* T_ATOM: its octets */
	const char *err;	/* T_ERR: why */
};

/* atext (RFC 5322 3.2.3), and UTF-8 octets (RFC 6532 3.2) */
static bool is_atext(uint8_t c)
{
	return is_alpha(c) || is_digit(c) || c >= 0x80 ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Skips CFWS (3.2.2): WSP, CR, LF (folding, raw as given), nested comments. */
static bool skip_cfws(struct lex *l)
{
	while (l->pos < l->len) {
		uint8_t c = l->p[l->pos];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			l->pos++;
		} else if (c == '(') {
			size_t depth = 1;

			l->pos++;
			while (depth > 0) {
				if (l->pos >= l->len) {
					l->err = "unterminated comment";
					return false;
				}
				c = l->p[l->pos++];
				if (c == '\0') {
					l->err = "NUL in a comment";
					return false;
				}
				if (c == '\\') {		/* quoted-pair (3.2.1) */
					if (l->pos >= l->len) {
						l->err = "unterminated comment";
						return false;
					}
					l->pos++;
				} else if (c == '(') {
					depth++;		/* comments nest (3.2.2) */
				} else if (c == ')') {
					depth--;
				}
			}
		} else {
			break;
		}
	}
	return true;
}

/* quoted-string (3.2.4) or domain-literal (3.4.1) from l->pos at the opener. */
static bool quoted(struct lex *l, uint8_t close)
{
	l->pos++;
	for (;;) {
		uint8_t c;

		if (l->pos >= l->len) {
			l->err = close == '"' ? "unterminated quoted string" : "unterminated domain literal";
			return false;
		}
		c = l->p[l->pos++];
		if (c == '\0') {
			l->err = "NUL in a quoted string";
			return false;
		}
		if (c == close)
			return true;
		if (c == '\\') {	/* quoted-pair; obs-dtext allows it in literals */
			if (l->pos >= l->len) {
				l->err = "unterminated quoted string";
				return false;
			}
			l->pos++;
		} else if (close == ']' && c == '[') {
			l->err = "'[' inside a domain literal";
			return false;
		}
	}
}

static void next(struct lex *l)
{
	uint8_t c;

	if (l->kind == T_ERR)
		return;
	if (!skip_cfws(l)) {
		l->kind = T_ERR;
		return;
	}
	if (l->pos >= l->len) {
		l->kind = T_END;
		return;
	}
	c = l->p[l->pos];
	l->start = l->pos;
	if (c == '"' || c == '[') {
		l->kind = c == '"' ? T_QSTR : T_DLIT;
		if (!quoted(l, c == '"' ? '"' : ']'))
			l->kind = T_ERR;
		l->tlen = l->pos - l->start;
		return;
	}
	if (strchr("<>@,;:.", c) != NULL && c != 0) {	/* specials that shape an address (3.2.3) */
		l->kind = T_SPECIAL;
		l->c = c;
		l->pos++;
		return;
	}
	if (is_atext(c)) {
		while (l->pos < l->len && is_atext(l->p[l->pos]))
			l->pos++;
		l->kind = T_ATOM;
		l->tlen = l->pos - l->start;
		return;
	}
	l->kind = T_ERR;
	l->err = c == ')' ? "unbalanced ')'" : c == '\\' ? "'\\' outside quotes" :
		 c == ']' ? "unbalanced ']'" : "a character not allowed in an address";
}

static bool is_sp(const struct lex *l, uint8_t c)
{
	return l->kind == T_SPECIAL && l->c == c;
}

static bool is_word(const struct lex *l)
{
	return l->kind == T_ATOM || l->kind == T_QSTR;
}

struct author {
	char domain[DMARC_DOMAIN_MAX + 1];
	bool have;
	unsigned mailboxes;
	char *err;
	size_t errlen;
};

static int lex_fail(struct lex *l, struct author *a, const char *what)
{
	if (l->kind == T_ERR)
		seterr(a->err, a->errlen, "unparseable From: %s", l->err);
	else
		seterr(a->err, a->errlen, "unparseable From: %s", what);
	return -1;
}

/* dot-atom or obs-domain: atoms joined by '.', one trailing dot allowed; into a->... */
static int domain_part(struct lex *l, struct author *a)
{
	char d[DMARC_DOMAIN_MAX + 2];
	size_t n = 0;
	bool utf8 = false;

	if (l->kind == T_DLIT) {
		seterr(a->err, a->errlen, "author domain is a domain literal");
		return -1;
	}
	if (l->kind != T_ATOM)
		return lex_fail(l, a, "no domain after '@'");
	for (;;) {
		if (n + l->tlen > DMARC_DOMAIN_MAX) {
			seterr(a->err, a->errlen, "author domain longer than %d octets", DMARC_DOMAIN_MAX);
			return -1;
		}
		for (size_t i = 0; i < l->tlen; i++) {
			uint8_t c = l->p[l->start + i];

			/* a DNS name: letters, digits, '-', '_' (and UTF-8, RFC 6532) */
			if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_' && c < 0x80) {
				seterr(a->err, a->errlen, "author domain holds '%c'", (char)c);
				return -1;
			}
			utf8 |= c >= 0x80;
			d[n++] = lc((char)c);
		}
		if (l->tlen > 63) {
			seterr(a->err, a->errlen, "author domain has a label over 63 octets");
			return -1;
		}
		next(l);
		if (!is_sp(l, '.'))
			break;
		next(l);
		if (l->kind != T_ATOM)
			break;		/* one trailing dot: dropped */
		d[n++] = '.';
	}
	d[n] = '\0';
	if (utf8) {
		for (size_t i = 0; i < n;) {
			size_t k = utf8_seq((const uint8_t *)d + i, n - i);

			if (k == 0) {
				seterr(a->err, a->errlen, "author domain is not valid UTF-8");
				return -1;
			}
			i += k;
		}
	}
	if (a->have && strcmp(a->domain, d) != 0) {
		char x[64], y[64];

		str_copy_printable(x, sizeof x, a->domain, strlen(a->domain));
		str_copy_printable(y, sizeof y, d, n);
		seterr(a->err, a->errlen, "From has mailboxes of different domains (%s, %s)", x, y);
		return -1;	/* 6.6.1: never evaluate only one of them */
	}
	memcpy(a->domain, d, n + 1);
	a->have = true;
	a->mailboxes++;
	return 0;
}

/* addr-spec (3.4.1): local-part "@" domain; obs-local-part's dots and CFWS tolerated. */
static int addr_spec(struct lex *l, struct author *a)
{
	size_t words = 0;

	while (is_word(l) || is_sp(l, '.')) {
		words += is_word(l);
		next(l);
	}
	if (words == 0)
		return lex_fail(l, a, "no local part");
	if (!is_sp(l, '@'))
		return lex_fail(l, a, "mailbox without '@'");
	next(l);
	return domain_part(l, a);
}

/* angle-addr (3.4) from '<': [obs-route] addr-spec ">" */
static int angle_addr(struct lex *l, struct author *a)
{
	next(l);	/* past '<' */
	if (is_sp(l, '>'))
		return lex_fail(l, a, "empty angle address <>");
	if (is_sp(l, '@')) {	/* obs-route (4.4): "@a,@b:" ignored */
		while (l->kind == T_ATOM || l->kind == T_DLIT || is_sp(l, '@') || is_sp(l, ',') ||
		       is_sp(l, '.'))
			next(l);
		if (!is_sp(l, ':'))
			return lex_fail(l, a, "bad route in angle address");
		next(l);
	}
	if (addr_spec(l, a) != 0)
		return -1;
	if (!is_sp(l, '>'))
		return lex_fail(l, a, "angle address not closed by '>'");
	next(l);
	return 0;
}

/* address (3.4): mailbox, or group when allowed; the words first decide which. */
static int address(struct lex *l, struct author *a, bool in_group)
{
	struct lex save = *l;
	size_t words = 0;

	/* display-name = phrase; obs-phrase allows '.' (4.1) */
	while (is_word(l) || (words > 0 && is_sp(l, '.'))) {
		words += is_word(l);
		next(l);
	}
	if (is_sp(l, '<'))
		return angle_addr(l, a);
	if (is_sp(l, ':') && words > 0) {
		if (in_group)
			return lex_fail(l, a, "group inside a group");
		next(l);
		/* group-list = mailbox-list / CFWS / obs-group-list (3.4, 4.4) */
		while (!is_sp(l, ';')) {
			if (is_sp(l, ',')) {
				next(l);
				continue;
			}
			if (l->kind == T_END || l->kind == T_ERR)
				return lex_fail(l, a, "group not closed by ';'");
			if (address(l, a, true) != 0)
				return -1;
			if (l->kind == T_END)
				return lex_fail(l, a, "group not closed by ';'");
			if (!is_sp(l, ',') && !is_sp(l, ';'))
				return lex_fail(l, a, "text after a mailbox in a group");
		}
		next(l);
		return 0;
	}
	*l = save;	/* not a name-addr or group: an addr-spec */
	return addr_spec(l, a);
}

int dmarc_author_domain(const struct slice *values, size_t nvalues,
			char out[DMARC_DOMAIN_MAX + 1], char *err, size_t errlen)
{
	struct author a = { .err = err, .errlen = errlen };
	struct lex l;

	out[0] = '\0';
	if (nvalues == 0 || values == NULL) {
		seterr(err, errlen, "no From field");
		return -1;
	}
	if (nvalues > 1) {
		seterr(err, errlen, "%zu From fields (RFC 5322 3.6 allows one)", nvalues);
		return -1;	/* 6.6.1: multiple From fields, typically rejected */
	}
	if (values[0].len > DMARC_FROM_MAX) {
		seterr(err, errlen, "From field longer than %d octets", DMARC_FROM_MAX);
		return -1;
	}
	memset(&l, 0, sizeof l);
	l.p = values[0].p;
	l.len = values[0].p != NULL ? values[0].len : 0;
	next(&l);
	/* mailbox-list / obs-mbox-list (3.4, 4.4): empty elements allowed; groups too */
	while (l.kind != T_END) {
		if (is_sp(&l, ',')) {
			next(&l);
			continue;
		}
		if (l.kind == T_ERR)
			return lex_fail(&l, &a, "");
		if (address(&l, &a, false) != 0)
			return -1;
		if (l.kind != T_END && !is_sp(&l, ','))
			return lex_fail(&l, &a, "text after a mailbox");
	}
	if (!a.have) {
		seterr(err, errlen, "From holds no mailbox (empty group or empty field)");
		return -1;	/* 6.6.1: no author domain to evaluate */
	}
	memcpy(out, a.domain, strlen(a.domain) + 1);
	seterr(err, errlen, "ok");
	return 0;
}

/* ------------------------------------------------------------------ */
/* evaluation (6.6.2-6.6.4) */

static void problemf(struct dmarc_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void problemf(struct dmarc_result *res, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	str_copy_printable(res->problem, sizeof res->problem, tmp, strlen(tmp));
}

static enum dmarc_policy lower_policy(enum dmarc_policy p)
{
	/* 6.6.4 / 6.3 pct: reject -> quarantine -> none */
	return p == DMARC_POLICY_REJECT ? DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
}

void dmarc_evaluate(const struct dmarc_psl *psl, const struct dmarc_request *req,
		    const struct dmarc_record *rec, const char *record_domain,
		    struct dmarc_result *res)
{
	const char *from = res->from_domain;
	bool spf_temp = false, dkim_temp = false;
	size_t dkim_fail = 0;

	res->dkim_index = -1;
	res->spf_aligned = res->dkim_aligned = false;
	res->sampled_out = false;
	res->disposition = DMARC_POLICY_NONE;
	if (rec == NULL) {
		res->have_record = false;
		res->code = DMARC_NONE;
		return;
	}
	res->have_record = true;
	res->rec = *rec;
	snprintf(res->record_domain, sizeof res->record_domain, "%s", record_domain);
	/* 6.3 sp: the record of the Organizational Domain, for a from domain below it */
	res->subdomain_policy = strcmp(res->record_domain, from) != 0;
	res->policy = res->subdomain_policy ? rec->sp : rec->p;

	/* 3.1.2: SPF-authenticated identifier, aligned under aspf, with a pass */
	if (req->spf_domain != NULL && req->spf_domain[0] != '\0' &&
	    dmarc_aligned(psl, req->spf_domain, from, rec->aspf)) {
		if (req->spf == SPF_PASS)
			res->spf_aligned = true;
		else if (req->spf == SPF_TEMPERROR)
			spf_temp = true;
	}
	/* 3.1.1: a DKIM signature passing with an aligned d= under adkim */
	for (size_t i = 0; i < req->ndkim; i++) {
		const struct dmarc_dkim_in *k = &req->dkim[i];

		if (k->domain == NULL || !dmarc_aligned(psl, k->domain, from, rec->adkim))
			continue;
		if (k->result == DKIM_PASS && !res->dkim_aligned) {
			res->dkim_aligned = true;
			res->dkim_index = (int)i;
		} else if (k->result == DKIM_TEMPERROR) {
			dkim_temp = true;
		} else if (k->result != DKIM_PASS) {
			dkim_fail++;
		}
	}
	/* 6.6.2 step 6 / 4.2: pass when either aligned identifier passed */
	if (res->spf_aligned || res->dkim_aligned) {
		res->code = DMARC_PASS;
		res->problem[0] = '\0';
		return;
	}
	if (spf_temp || dkim_temp) {
		/* our choice (dmarc.h): a retry may pass, so do not apply the policy now */
		res->code = DMARC_TEMPERROR;
		problemf(res, "temporary error on an aligned identifier (%s%s%s) for %s",
			 spf_temp ? "SPF" : "", spf_temp && dkim_temp ? ", " : "",
			 dkim_temp ? "DKIM" : "", from);
		return;
	}
	res->code = DMARC_FAIL;
	/* 6.6.4 / 6.3 pct: sampled in when sample < pct, else the next lower policy */
	if (req->sample < rec->pct || res->policy == DMARC_POLICY_NONE) {
		res->disposition = res->policy;
	} else {
		res->disposition = lower_policy(res->policy);
		res->sampled_out = true;
	}
	problemf(res, "no aligned pass for %s: SPF %s%s%s%s, %zu DKIM signature(s), %zu aligned failing",
		 from, spf_result_name(req->spf),
		 req->spf_domain != NULL && req->spf_domain[0] != '\0' ? " for " : "",
		 req->spf_domain != NULL ? req->spf_domain : "",
		 res->spf_aligned ? "" :
		 (req->spf_domain != NULL && req->spf_domain[0] != '\0' &&
		  dmarc_aligned(psl, req->spf_domain, from, rec->aspf)) ? " (aligned)" : " (not aligned)",
		 req->ndkim, dkim_fail);
}

/* ------------------------------------------------------------------ */
/* discovery (6.6.3) over the provider */

enum state {
	ST_ASK_FROM,	/* ask _dmarc.<from> */
	ST_GOT_FROM,	/* its answer is in the slot */
	ST_ASK_ORG,	/* ask _dmarc.<org> */
	ST_GOT_ORG,
};

struct dmarc_query {
	struct dmarc *d;	/* NULL once dmarc_free ran: the answer is dropped */
};

struct dmarc {
	struct dmarc_dns dns;
	const struct dmarc_psl *psl;
	void (*done)(void *arg, const struct dmarc_result *r);
	void *arg;

	/* the request, copied */
	struct dmarc_request req;
	char spf_domain[DMARC_INPUT_MAX + 1];
	struct dmarc_dkim_in *dkim;
	char *strings;		/* owns the dkim domain/selector copies */

	enum state state;
	bool started, running, finished, reported;
	struct dmarc_query *out;	/* the question outstanding, or NULL */

	/* the slot: the last answer */
	enum dns_status status;
	char error[128];
	char asked[DMARC_DOMAIN_MAX + 1];	/* the domain whose _dmarc was asked */
	unsigned nrec;				/* DMARC records in it (rc != 0) */
	int rec_rc;				/* of the first one */
	struct dmarc_record rec;
	char rec_err[96];

	struct dmarc_result result;
};

static void finish(struct dmarc *d, enum dmarc_result_code code)
{
	d->result.code = code;
	d->finished = true;
}

static struct dmarc *take(struct dmarc_query *q)
{
	struct dmarc *d = q->d;

	if (d == NULL) {
		free(q);
		return NULL;
	}
	if (d->out != q)
		tern_bug("dmarc: answer for a query not outstanding");
	d->out = NULL;
	return d;
}

static void run(struct dmarc *d);

static void fill_slot(struct dmarc *d, const struct dns_txt_result *r)
{
	d->status = r->status;
	d->nrec = 0;
	d->rec_rc = 0;
	d->error[0] = '\0';
	if (r->status != DNS_OK) {
		snprintf(d->error, sizeof d->error, "%.16s%s%.100s", dns_status_name(r->status),
			 r->error[0] != '\0' ? ", " : "", r->error);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct dmarc_record rec;
		char err[96];
		int rc = dmarc_record_parse((const uint8_t *)r->txt[i].text, r->txt[i].len,
					    &rec, err, sizeof err);

		if (rc == 0)
			continue;	/* 6.6.3 step 2: not a DMARC record */
		if (++d->nrec == 1) {
			d->rec_rc = rc;
			d->rec = rec;
			memcpy(d->rec_err, err, sizeof err);
		}
	}
}

void dmarc_answer_txt(void *query, const struct dns_txt_result *r)
{
	struct dmarc_query *q = query;
	struct dmarc *d = take(q);

	if (d == NULL)
		return;
	fill_slot(d, r);
	free(q);
	run(d);	/* a no-op while inside the provider call: step() goes on */
}

static void ask(struct dmarc *d, const char *domain)
{
	char name[DMARC_DOMAIN_MAX + 8];
	struct dmarc_query *q;

	snprintf(d->asked, sizeof d->asked, "%s", domain);
	d->status = DNS_BADNAME;
	d->nrec = 0;
	snprintf(d->error, sizeof d->error, "badname");
	if (strlen(domain) + 7 > DMARC_DOMAIN_MAX)
		return;		/* _dmarc.<domain> cannot be asked: no record there */
	snprintf(name, sizeof name, "_dmarc.%s", domain);
	q = malloc(sizeof *q);
	d->status = DNS_TEMPFAIL;
	if (q == NULL) {
		snprintf(d->error, sizeof d->error, "out of memory");
		return;
	}
	q->d = d;
	d->out = q;
	if (d->dns.txt == NULL || d->dns.txt(d->dns.ctx, name, q) != 0) {
		if (d->out != q)
			tern_bug("dmarc: a DNS provider answered and returned -1");
		d->out = NULL;
		free(q);
		snprintf(d->error, sizeof d->error, "could not ask");
	}
}

/* The answer in the slot for the domain asked; last: no fallback after it. */
static void got(struct dmarc *d, bool last)
{
	if (d->status == DNS_TEMPFAIL) {
		/* 6.6.3: a transient error is not "no record" */
		problemf(&d->result, "DNS error for _dmarc.%s: %s", d->asked, d->error);
		finish(d, DMARC_TEMPERROR);
		return;
	}
	if (d->nrec > 1) {
		/* 6.6.3 step 4: several records: discovery ends, no DMARC processing */
		problemf(&d->result, "%u DMARC records at _dmarc.%s", d->nrec, d->asked);
		finish(d, DMARC_NONE);
		return;
	}
	if (d->nrec == 1) {
		if (d->rec_rc < 0) {
			/* 6.6.3 step 6.2 and 11.2: unusable record -> permerror, no policy */
			snprintf(d->result.record_domain, sizeof d->result.record_domain, "%s", d->asked);
			problemf(&d->result, "unusable DMARC record at _dmarc.%s: %s", d->asked,
				 d->rec_err);
			finish(d, DMARC_PERMERROR);
			return;
		}
		dmarc_evaluate(d->psl, &d->req, &d->rec, d->asked, &d->result);
		d->finished = true;
		return;
	}
	if (!last) {
		d->state = ST_ASK_ORG;	/* 6.6.3 step 3: try the Organizational Domain */
		return;
	}
	problemf(&d->result, "no DMARC record for %s", d->result.from_domain);
	finish(d, DMARC_NONE);
}

static void step(struct dmarc *d)
{
	switch (d->state) {
	case ST_ASK_FROM:
		d->state = ST_GOT_FROM;
		ask(d, d->result.from_domain);
		break;
	case ST_GOT_FROM:
		got(d, strcmp(d->result.org_domain, d->result.from_domain) == 0);
		break;
	case ST_ASK_ORG:
		d->state = ST_GOT_ORG;
		ask(d, d->result.org_domain);
		break;
	case ST_GOT_ORG:
		got(d, true);
		break;
	}
}

static void run(struct dmarc *d)
{
	if (d->running || d->reported || !d->started)
		return;
	d->running = true;
	while (!d->finished && d->out == NULL)
		step(d);
	d->running = false;
	if (d->finished) {
		d->reported = true;
		d->done(d->arg, &d->result);	/* may free d */
	}
}

static bool input_ok(const char *p)
{
	size_t n;

	if (p == NULL)
		return true;
	n = strnlen(p, DMARC_INPUT_MAX + 1);
	if (n > DMARC_INPUT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return true;
}

struct dmarc *dmarc_new(const struct dmarc_dns *dns, const struct dmarc_psl *psl,
			const struct dmarc_request *req,
			void (*done)(void *arg, const struct dmarc_result *r), void *arg)
{
	struct dmarc *d;
	size_t total = 0;
	char *s;

	if (dns == NULL || psl == NULL || req == NULL || done == NULL ||
	    req->from_domain == NULL || !input_ok(req->from_domain) ||
	    !input_ok(req->spf_domain) || req->sample > 99 || req->ndkim > DKIM_IN_MAX ||
	    (req->ndkim > 0 && req->dkim == NULL)) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < req->ndkim; i++) {
		const char *dom = req->dkim[i].domain, *sel = req->dkim[i].selector;

		if (!input_ok(dom) || !input_ok(sel)) {
			errno = EINVAL;
			return NULL;
		}
		total += (dom != NULL ? strlen(dom) : 0) + (sel != NULL ? strlen(sel) : 0) + 2;
	}
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->dns = *dns;
	d->psl = psl;
	d->done = done;
	d->arg = arg;
	d->req = *req;
	snprintf(d->spf_domain, sizeof d->spf_domain, "%s",
		 req->spf_domain != NULL ? req->spf_domain : "");
	d->req.spf_domain = d->spf_domain;
	d->req.from_domain = NULL;	/* lives in result.from_domain once started */
	d->req.dkim = NULL;
	if (req->ndkim > 0) {
		d->dkim = calloc(req->ndkim, sizeof *d->dkim);
		d->strings = malloc(total);
		if (d->dkim == NULL || d->strings == NULL) {
			dmarc_free(d);
			errno = ENOMEM;
			return NULL;
		}
		s = d->strings;
		for (size_t i = 0; i < req->ndkim; i++) {
			const char *dom = req->dkim[i].domain != NULL ? req->dkim[i].domain : "";
			const char *sel = req->dkim[i].selector != NULL ? req->dkim[i].selector : "";

			d->dkim[i].result = req->dkim[i].result;
			d->dkim[i].domain = s;
			s += strlen(dom) + 1;
			memcpy((char *)d->dkim[i].domain, dom, strlen(dom) + 1);
			d->dkim[i].selector = s;
			s += strlen(sel) + 1;
			memcpy((char *)d->dkim[i].selector, sel, strlen(sel) + 1);
		}
		d->req.dkim = d->dkim;
	}
	d->result.dkim_index = -1;
	/* the from domain, normalized, is kept in the result */
	if (norm_domain(req->from_domain, d->result.from_domain, sizeof d->result.from_domain) != 0)
		d->result.from_domain[0] = '\0';
	d->req.from_domain = d->result.from_domain;
	return d;
}

void dmarc_start(struct dmarc *d)
{
	struct dmarc_result *res = &d->result;

	if (d->started)
		tern_bug("dmarc: dmarc_start called twice");
	d->started = true;
	if (res->from_domain[0] == '\0' || !dns_name_ok(res->from_domain) ||
	    has_8bit(res->from_domain)) {
		/* 11.2 none: "no aligned identifier could be extracted" */
		problemf(res, "from domain is not a DNS name that can be asked%s",
			 has_8bit(res->from_domain) ? " (UTF-8: not converted to A-labels)" : "");
		finish(d, DMARC_NONE);
		run(d);
		return;
	}
	/* 3.2; a public suffix stands for itself (dmarc.h) */
	org_or_self(d->psl, res->from_domain, res->org_domain, sizeof res->org_domain);
	d->state = ST_ASK_FROM;
	run(d);
}

void dmarc_free(struct dmarc *d)
{
	if (d == NULL)
		return;
	if (d->out != NULL)
		d->out->d = NULL;	/* the provider's answer frees it */
	free(d->dkim);
	free(d->strings);
	free(d);
}

/* ------------------------------------------------------------------ */
/* the report line (7.2, appendix C) */

struct jout {
	struct buf b;
	bool bad;		/* an append failed: the line is dropped */
};

static void put(struct jout *j, const void *p, size_t n)
{
	if (buf_append(&j->b, p, n) != 0)
		j->bad = true;
}

static void putf(struct jout *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct jout *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&j->b, fmt, ap) != 0)
		j->bad = true;
	va_end(ap);
}

static void puts_lit(struct jout *j, const char *s)
{
	put(j, s, strlen(s));
}

/* A JSON string (RFC 8259 7); invalid UTF-8 octets become U+FFFD. */
static void json_str(struct jout *j, const char *s)
{
	const uint8_t *p = (const uint8_t *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p);

	put(j, "\"", 1);
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t k;

		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };

			put(j, e, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			putf(j, "\\u%04x", c);
			i++;
		} else if (c < 0x80) {
			put(j, &p[i], 1);
			i++;
		} else if ((k = utf8_seq(p + i, n - i)) > 0) {
			put(j, p + i, k);
			i += k;
		} else {
			puts_lit(j, "\\ufffd");
			i++;
		}
	}
	put(j, "\"", 1);
}

static const char *align_name(enum dmarc_align a)
{
	return a == DMARC_ALIGN_STRICT ? "s" : "r";
}

int dmarc_report_line(struct buf *out, time_t when, const char *source_ip,
		      const char *envelope_from, const struct dmarc_request *req,
		      const struct dmarc_result *res)
{
	struct jout j = { .bad = false };
	int rc = -1;

	buf_init(&j.b, 1u << 20);
	putf(&j, "{\"time\":%lld,\"source_ip\":", (long long)when);
	json_str(&j, source_ip);
	puts_lit(&j, ",\"header_from\":");
	json_str(&j, res->from_domain);
	puts_lit(&j, ",\"envelope_from\":");
	json_str(&j, envelope_from);
	putf(&j, ",\"dmarc\":\"%s\",\"spf\":{\"domain\":", dmarc_result_name(res->code));
	json_str(&j, req->spf_domain);
	putf(&j, ",\"result\":\"%s\"},\"dkim\":[", spf_result_name(req->spf));
	for (size_t i = 0; i < req->ndkim; i++) {
		puts_lit(&j, i > 0 ? ",{\"domain\":" : "{\"domain\":");
		json_str(&j, req->dkim[i].domain);
		puts_lit(&j, ",\"selector\":");
		json_str(&j, req->dkim[i].selector);
		putf(&j, ",\"result\":\"%s\"}", dkim_result_name(req->dkim[i].result));
	}
	puts_lit(&j, "],\"policy_published\":");
	if (res->have_record) {
		const struct dmarc_record *r = &res->rec;

		puts_lit(&j, "{\"domain\":");
		json_str(&j, res->record_domain);
		putf(&j, ",\"adkim\":\"%s\",\"aspf\":\"%s\",\"p\":\"%s\",\"sp\":\"%s\",\"pct\":%u,\"fo\":",
		     align_name(r->adkim), align_name(r->aspf), dmarc_policy_name(r->p),
		     dmarc_policy_name(r->sp), r->pct);
		json_str(&j, r->fo);
		puts_lit(&j, ",\"rua\":");
		json_str(&j, r->rua);
		puts_lit(&j, "}");
	} else {
		puts_lit(&j, "null");
	}
	/* appendix C: policy_evaluated dkim/spf are the DMARC-aligned results */
	putf(&j, ",\"policy_evaluated\":{\"disposition\":\"%s\",\"dkim\":\"%s\",\"spf\":\"%s\"}",
	     dmarc_policy_name(res->disposition), res->dkim_aligned ? "pass" : "fail",
	     res->spf_aligned ? "pass" : "fail");
	if (res->sampled_out)
		puts_lit(&j, ",\"reason\":\"sampled_out\"");	/* appendix C PolicyOverrideType */
	puts_lit(&j, "}\n");
	if (!j.bad)
		rc = buf_append(out, j.b.data, j.b.len);	/* all or nothing */
	buf_free(&j.b);
	return rc;
}
