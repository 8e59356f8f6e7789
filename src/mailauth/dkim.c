/* dkim.c - DKIM signatures (RFC 6376, RFC 8463, RFC 8301): tag lists, key records, verify, sign. */
#include "dkim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "../proto/sasl.h"

/* ---- small helpers ---- */

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static bool is_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : c;
}

static bool slice_is(struct slice s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && memcmp(s.p, lit, n) == 0;
}

static bool slice_is_nocase(struct slice s, const char *lit)
{
	size_t n = strlen(lit);
	if (s.len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s.p[i]) != lower((uint8_t)lit[i]))
			return false;
	return true;
}

static bool slices_eq_nocase(struct slice a, struct slice b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++)
		if (lower(a.p[i]) != lower(b.p[i]))
			return false;
	return true;
}

__attribute__((format(printf, 3, 4)))
static void say(char *dst, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (dst == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(dst, cap, fmt, ap);
	va_end(ap);
}

/* OpenSSL keeps errors in a per-thread queue that TLS code reads: never leave any. */
static void ossl_clear(void)
{
	ERR_clear_error();
}

const char *dkim_result_name(enum dkim_result r)
{
	switch (r) {
	case DKIM_PASS: return "pass";
	case DKIM_FAIL: return "fail";
	case DKIM_NEUTRAL: return "neutral";
	case DKIM_TEMPERROR: return "temperror";
	case DKIM_PERMERROR: return "permerror";
	}
	return "permerror";
}

const char *dkim_reason_text(enum dkim_reason r)
{
	switch (r) {
	case DKIM_R_OK: return "ok";
	case DKIM_R_BODY_HASH: return "body hash mismatch";
	case DKIM_R_SIGNATURE: return "signature mismatch";
	case DKIM_R_EXPIRED: return "signature expired";
	case DKIM_R_KEY_REVOKED: return "key revoked";
	case DKIM_R_KEY_TOO_SHORT: return "key too short";
	case DKIM_R_FUTURE: return "timestamp in the future";
	case DKIM_R_DNS: return "key lookup failed";
	case DKIM_R_INTERNAL: return "internal error";
	case DKIM_R_SYNTAX: return "signature syntax error";
	case DKIM_R_UNSUPPORTED: return "unsupported";
	case DKIM_R_SHA1: return "sha1 not accepted";
	case DKIM_R_NO_KEY: return "no key";
	case DKIM_R_KEY_SYNTAX: return "key syntax error";
	case DKIM_R_KEY_UNUSABLE: return "key unusable";
	}
	return "unknown";
}

const char *dkim_alg_name(enum dkim_alg a)
{
	switch (a) {
	case DKIM_ALG_RSA_SHA256: return "rsa-sha256";
	case DKIM_ALG_ED25519_SHA256: return "ed25519-sha256";
	case DKIM_ALG_NONE: break;
	}
	return "";
}

/* ---- tag lists (RFC 6376 3.2) ---- */

/* FWS = [*WSP CRLF] 1*WSP: skip a run of WSP and CR LF WSP. */
static size_t skip_fws(const uint8_t *p, size_t n, size_t i)
{
	for (;;) {
		if (i < n && is_wsp(p[i]))
			i++;
		else if (i + 2 < n && p[i] == '\r' && p[i + 1] == '\n' && is_wsp(p[i + 2]))
			i += 3;
		else
			return i;
	}
}

int dkim_tags_parse(const uint8_t *p, size_t n, struct dkim_tag *tags, size_t max,
		    size_t *ntags, char *err, size_t errlen)
{
	size_t i = 0, k = 0;

	*ntags = 0;
	for (;;) {
		size_t ns, vs, ve, raw_start;
		struct slice name;

		i = skip_fws(p, n, i);
		if (i >= n)
			break;
		if (p[i] == ';') {	/* an empty tag-spec: tolerated */
			i++;
			continue;
		}
		ns = i;
		if (!is_alpha(p[i])) {
			say(err, errlen, "bad tag name");
			return -1;
		}
		while (i < n && (is_alpha(p[i]) || is_digit(p[i]) || p[i] == '_'))
			i++;
		name = (struct slice){ p + ns, i - ns };
		i = skip_fws(p, n, i);
		if (i >= n || p[i] != '=') {
			say(err, errlen, "tag without '='");
			return -1;
		}
		raw_start = ++i;
		i = skip_fws(p, n, i);
		vs = ve = i;
		while (i < n && p[i] != ';') {
			size_t j = skip_fws(p, n, i);
			if (j > i) {
				i = j;
				continue;
			}
			/* VALCHAR %x21-3A / %x3C-7E, and UTF-8 (RFC 8616) */
			if (p[i] < 0x21 || p[i] == 0x7f) {
				say(err, errlen, "bad character in tag value");
				return -1;
			}
			ve = ++i;
		}
		if (k == max) {
			say(err, errlen, "too many tags");
			return -1;
		}
		for (size_t t = 0; t < k; t++) {
			if (tags[t].name.len == name.len &&
			    memcmp(tags[t].name.p, name.p, name.len) == 0) {
				say(err, errlen, "duplicate tag");
				return -1;
			}
		}
		tags[k].name = name;
		tags[k].value = (struct slice){ p + vs, ve - vs };
		tags[k].raw_start = raw_start;
		tags[k].raw_end = i;
		k++;
		if (i < n)
			i++;	/* the ';' */
	}
	*ntags = k;
	return 0;
}

static const struct dkim_tag *tag_get(const struct dkim_tag *tags, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (slice_is(tags[i].name, name))	/* tag names are case-sensitive (3.2) */
			return &tags[i];
	return NULL;
}

/*
 * base64 with FWS inside (RFC 6376 2.10: base64string), decoded strictly
 * (sasl_b64_decode: padding and trailing bits). Returns the length or -1.
 */
static long b64_fws(struct slice v, uint8_t *out, size_t cap)
{
	char tmp[((DKIM_P_MAX + 2) / 3) * 4 + 4];
	size_t m = 0;
	ssize_t r;

	for (size_t i = 0; i < v.len; i++) {
		uint8_t c = v.p[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (m == sizeof tmp)
			return -1;
		tmp[m++] = (char)c;
	}
	if (m == 0)
		return 0;
	if (m == 1 && tmp[0] == '=')
		return -1;
	r = sasl_b64_decode((struct slice){ (const uint8_t *)tmp, m }, out, cap);
	return r;
}

/* Decimal of at most maxdigits digits; false if not all digits or too long. */
static bool parse_uint(struct slice v, size_t maxdigits, bool saturate, uint64_t *out)
{
	uint64_t x = 0;

	if (v.len == 0 || v.len > maxdigits)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		if (!is_digit(v.p[i]))
			return false;
		if (x > (UINT64_MAX - 9) / 10) {
			if (!saturate)
				return false;
			x = UINT64_MAX;
			continue;
		}
		x = x * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = x;
	return true;
}

/*
 * Dot-separated labels of 1..63 octets, 253 at most, copied in lower case:
 * an LDH domain (RFC 5321 sub-domain, no '-' at either end of a label),
 * or with selector a DKIM selector, lenient about '_' and '-' placement
 * as deployed selectors are. Nothing of a bad value is ever reported.
 */
static bool labels_ok(struct slice v, char *out, size_t cap, bool selector)
{
	char tmp[254];
	size_t label = 0;

	out[0] = '\0';
	if (v.len == 0 || v.len > 253 || v.len >= cap || v.len >= sizeof tmp)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		uint8_t c = v.p[i];
		bool edge_dash = !selector && c == '-' && (label == 0 || i + 1 == v.len);

		if (c == '.') {
			if (label == 0 || (!selector && v.p[i - 1] == '-'))
				return false;
			label = 0;
		} else if ((is_alpha(c) || is_digit(c) || c == '-' || (selector && c == '_')) &&
			   !edge_dash) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
		tmp[i] = (char)lower(c);
	}
	if (label == 0)
		return false;
	memcpy(out, tmp, v.len);
	out[v.len] = '\0';
	return true;
}

static bool domain_ok(struct slice v, char *out, size_t cap)
{
	return labels_ok(v, out, cap, false);
}

static bool selector_ok(struct slice v, char *out, size_t cap)
{
	return labels_ok(v, out, cap, true);
}

/* dom is sub or below it (both lower case). */
static bool domain_within(const char *dom, const char *d)
{
	size_t a = strlen(dom), b = strlen(d);

	if (a == b)
		return memcmp(dom, d, a) == 0;
	return a > b && dom[a - b - 1] == '.' && memcmp(dom + a - b, d, b) == 0;
}

static int hexval(uint8_t c)
{
	if (is_digit(c))
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* i= is dkim-quoted-printable (RFC 6376 2.11): FWS dropped, =XX decoded. */
static bool auid_decode(struct slice v, char *out, size_t cap)
{
	size_t m = 0;

	for (size_t i = 0; i < v.len; i++) {
		uint8_t c = v.p[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			int hi, lo;
			if (i + 2 >= v.len)
				return false;
			hi = hexval(v.p[i + 1]);
			lo = hexval(v.p[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (uint8_t)(hi * 16 + lo);
			i += 2;
		}
		if (c < 0x21 || c >= 0x7f)	/* printable ASCII only after decoding */
			return false;
		if (m + 1 >= cap)
			return false;
		out[m++] = (char)c;
	}
	out[m] = '\0';
	return true;
}

static void copy_token(struct slice v, char *out, size_t cap)
{
	size_t m = 0;

	for (size_t i = 0; i < v.len && m + 1 < cap; i++) {
		uint8_t c = v.p[i];
		if (!(is_alpha(c) || is_digit(c) || c == '-'))
			break;
		out[m++] = (char)lower(c);
	}
	out[m] = '\0';
}

static void copy_bprefix(struct slice v, char *out)
{
	size_t m = 0;

	for (size_t i = 0; i < v.len && m < DKIM_BPREFIX; i++) {
		uint8_t c = v.p[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (!(is_alpha(c) || is_digit(c) || c == '+' || c == '/' || c == '='))
			break;
		out[m++] = (char)c;
	}
	out[m] = '\0';
}

/* A colon-separated list (h=, q=, key h= s= t=): calls fn for each element, FWS trimmed. */
static int list_each(struct slice v, int (*fn)(void *arg, struct slice item), void *arg)
{
	size_t i = 0;

	for (;;) {
		size_t s = i, e;
		while (i < v.len && v.p[i] != ':')
			i++;
		e = i;
		while (s < e && (v.p[s] == ' ' || v.p[s] == '\t' || v.p[s] == '\r' || v.p[s] == '\n'))
			s++;
		while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t' || v.p[e - 1] == '\r' ||
				 v.p[e - 1] == '\n'))
			e--;
		if (fn(arg, (struct slice){ v.p + s, e - s }) < 0)
			return -1;
		if (i >= v.len)
			return 0;
		i++;
	}
}

struct hlist {
	struct dkim_sigtags *st;
	bool from;
	bool bad;
	bool too_many;
};

static int h_item(void *arg, struct slice item)
{
	struct hlist *hl = arg;

	if (item.len == 0) {
		hl->bad = true;
		return -1;
	}
	for (size_t i = 0; i < item.len; i++) {
		/* ftext: printable except ':' (':' cannot occur here) */
		if (item.p[i] < 0x21 || item.p[i] > 0x7e) {
			hl->bad = true;
			return -1;
		}
	}
	if (hl->st->nh == DKIM_H_MAX) {
		hl->too_many = true;
		return -1;
	}
	hl->st->h[hl->st->nh++] = item;
	if (slice_is_nocase(item, "from"))
		hl->from = true;
	return 0;
}

static int q_item(void *arg, struct slice item)
{
	if (slice_is_nocase(item, "dns/txt"))
		*(bool *)arg = true;
	return 0;
}

enum dkim_reason dkim_sig_parse(const uint8_t *value, size_t n, struct dkim_sigtags *st,
				char *note, size_t notelen)
{
	struct dkim_tag tags[DKIM_TAGS_MAX];
	const struct dkim_tag *t;
	size_t nt;
	char err[64];
	long r;

	memset(st, 0, sizeof *st);
	st->hcanon = st->bcanon = DKIM_CANON_SIMPLE;
	if (n > DKIM_SIG_FIELD_MAX) {
		say(note, notelen, "signature field too long");
		return DKIM_R_SYNTAX;
	}
	if (dkim_tags_parse(value, n, tags, DKIM_TAGS_MAX, &nt, err, sizeof err) < 0) {
		say(note, notelen, "signature: %s", err);
		return DKIM_R_SYNTAX;
	}

	/* What the report shows, taken first, leniently. */
	if ((t = tag_get(tags, nt, "d")) != NULL)
		domain_ok(t->value, st->d, sizeof st->d);
	if ((t = tag_get(tags, nt, "s")) != NULL)
		selector_ok(t->value, st->s, sizeof st->s);
	if ((t = tag_get(tags, nt, "a")) != NULL)
		copy_token(t->value, st->a, sizeof st->a);
	if ((t = tag_get(tags, nt, "b")) != NULL)
		copy_bprefix(t->value, st->b_prefix);

	if ((t = tag_get(tags, nt, "v")) == NULL) {
		say(note, notelen, "missing v=");
		return DKIM_R_SYNTAX;
	}
	if (!slice_is(t->value, "1")) {
		say(note, notelen, "v= is not 1");
		return DKIM_R_UNSUPPORTED;
	}

	if ((t = tag_get(tags, nt, "a")) == NULL) {
		say(note, notelen, "missing a=");
		return DKIM_R_SYNTAX;
	}
	if (slice_is_nocase(t->value, "rsa-sha256")) {
		st->alg = DKIM_ALG_RSA_SHA256;
	} else if (slice_is_nocase(t->value, "ed25519-sha256")) {
		st->alg = DKIM_ALG_ED25519_SHA256;
	} else if (slice_is_nocase(t->value, "rsa-sha1")) {
		say(note, notelen, "rsa-sha1 not accepted (RFC 8301)");
		return DKIM_R_SHA1;
	} else {
		say(note, notelen, "unsupported algorithm");
		return DKIM_R_UNSUPPORTED;
	}

	if ((t = tag_get(tags, nt, "b")) == NULL) {
		say(note, notelen, "missing b=");
		return DKIM_R_SYNTAX;
	}
	r = b64_fws(t->value, st->b, sizeof st->b);
	if (r <= 0) {
		say(note, notelen, "b= is not base64");
		return DKIM_R_SYNTAX;
	}
	st->b_len = (size_t)r;
	st->b_raw_start = t->raw_start;
	st->b_raw_end = t->raw_end;

	if ((t = tag_get(tags, nt, "bh")) == NULL) {
		say(note, notelen, "missing bh=");
		return DKIM_R_SYNTAX;
	}
	r = b64_fws(t->value, st->bh, sizeof st->bh);
	if (r <= 0) {
		say(note, notelen, "bh= is not base64");
		return DKIM_R_SYNTAX;
	}
	st->bh_len = (size_t)r;

	if ((t = tag_get(tags, nt, "c")) != NULL) {
		struct slice c = t->value, hc = c, bc = { NULL, 0 };
		const uint8_t *slash = memchr(c.p, '/', c.len);
		if (slash != NULL) {
			hc.len = (size_t)(slash - c.p);
			bc = (struct slice){ slash + 1, c.len - hc.len - 1 };
		}
		if (slice_is_nocase(hc, "relaxed"))
			st->hcanon = DKIM_CANON_RELAXED;
		else if (!slice_is_nocase(hc, "simple"))
			goto bad_c;
		if (slash != NULL) {
			if (slice_is_nocase(bc, "relaxed"))
				st->bcanon = DKIM_CANON_RELAXED;
			else if (!slice_is_nocase(bc, "simple"))
				goto bad_c;
		}
	}

	if ((t = tag_get(tags, nt, "d")) == NULL) {
		say(note, notelen, "missing d=");
		return DKIM_R_SYNTAX;
	}
	if (!domain_ok(t->value, st->d, sizeof st->d)) {
		say(note, notelen, "d= is not a domain name");
		return DKIM_R_SYNTAX;
	}

	if ((t = tag_get(tags, nt, "h")) == NULL) {
		say(note, notelen, "missing h=");
		return DKIM_R_SYNTAX;
	} else {
		struct hlist hl = { .st = st };
		list_each(t->value, h_item, &hl);
		if (hl.bad) {
			say(note, notelen, "h= has an empty or bad name");
			return DKIM_R_SYNTAX;
		}
		if (hl.too_many) {
			say(note, notelen, "h= lists too many names");
			return DKIM_R_SYNTAX;
		}
		if (!hl.from) {
			say(note, notelen, "From is not signed");
			return DKIM_R_SYNTAX;
		}
	}

	if ((t = tag_get(tags, nt, "i")) != NULL) {
		const char *at;
		if (!auid_decode(t->value, st->auid, sizeof st->auid) ||
		    (at = strrchr(st->auid, '@')) == NULL) {
			st->auid[0] = '\0';
			say(note, notelen, "i= is not an identity");
			return DKIM_R_SYNTAX;
		}
		for (char *c = (char *)at + 1; *c; c++)
			*c = (char)lower((uint8_t)*c);
		if (!domain_within(at + 1, st->d)) {
			say(note, notelen, "i= is not within d=");
			return DKIM_R_SYNTAX;
		}
	} else {
		say(st->auid, sizeof st->auid, "@%s", st->d);
	}

	if ((t = tag_get(tags, nt, "l")) != NULL) {
		if (!parse_uint(t->value, 76, true, &st->l)) {
			say(note, notelen, "l= is not a number");
			return DKIM_R_SYNTAX;
		}
		st->has_l = true;
	}

	if ((t = tag_get(tags, nt, "q")) != NULL) {
		bool dns = false;
		list_each(t->value, q_item, &dns);
		if (!dns) {
			say(note, notelen, "q= lacks dns/txt");
			return DKIM_R_UNSUPPORTED;
		}
	}

	if ((t = tag_get(tags, nt, "s")) == NULL) {
		say(note, notelen, "missing s=");
		return DKIM_R_SYNTAX;
	}
	if (!selector_ok(t->value, st->s, sizeof st->s)) {
		say(note, notelen, "s= is not a selector");
		return DKIM_R_SYNTAX;
	}
	if (strlen(st->s) + strlen("._domainkey.") + strlen(st->d) > 253) {
		say(note, notelen, "s= and d= make too long a name");
		return DKIM_R_SYNTAX;
	}

	if ((t = tag_get(tags, nt, "t")) != NULL) {
		if (!parse_uint(t->value, 19, false, &st->t)) {
			say(note, notelen, "t= is not a number");
			return DKIM_R_SYNTAX;
		}
		st->has_t = true;
	}
	if ((t = tag_get(tags, nt, "x")) != NULL) {
		if (!parse_uint(t->value, 19, false, &st->x)) {
			say(note, notelen, "x= is not a number");
			return DKIM_R_SYNTAX;
		}
		st->has_x = true;
		if (st->has_t && st->x < st->t) {
			say(note, notelen, "x= is before t=");
			return DKIM_R_SYNTAX;
		}
	}
	return DKIM_R_OK;

bad_c:
	say(note, notelen, "unsupported canonicalization");
	return DKIM_R_UNSUPPORTED;
}

/* ---- key records (RFC 6376 3.6.1) ---- */

struct keyflags {
	bool sha256, email, y, s;
};

static int kh_item(void *arg, struct slice item)
{
	if (slice_is_nocase(item, "sha256"))
		((struct keyflags *)arg)->sha256 = true;
	return 0;
}

static int ks_item(void *arg, struct slice item)
{
	if (slice_is(item, "*") || slice_is_nocase(item, "email"))
		((struct keyflags *)arg)->email = true;
	return 0;
}

static int kt_item(void *arg, struct slice item)
{
	if (slice_is_nocase(item, "y"))
		((struct keyflags *)arg)->y = true;
	else if (slice_is_nocase(item, "s"))
		((struct keyflags *)arg)->s = true;
	return 0;	/* unknown flags are ignored */
}

enum dkim_reason dkim_keyrec_parse(const uint8_t *rec, size_t n, struct dkim_keyrec *out,
				   char *note, size_t notelen)
{
	struct dkim_tag tags[DKIM_TAGS_MAX];
	struct keyflags kf = { 0 };
	const struct dkim_tag *t;
	char err[64];
	size_t nt;
	long r;

	memset(out, 0, sizeof *out);
	out->ktype = DKIM_ALG_RSA_SHA256;
	out->h_sha256 = out->s_email = true;
	if (n > DKIM_KEYREC_MAX) {
		say(note, notelen, "key record too long");
		return DKIM_R_KEY_SYNTAX;
	}
	if (dkim_tags_parse(rec, n, tags, DKIM_TAGS_MAX, &nt, err, sizeof err) < 0) {
		say(note, notelen, "key record: %s", err);
		return DKIM_R_KEY_SYNTAX;
	}
	if ((t = tag_get(tags, nt, "v")) != NULL) {
		if (t != &tags[0]) {
			say(note, notelen, "key v= is not first");
			return DKIM_R_KEY_SYNTAX;
		}
		if (!slice_is(t->value, "DKIM1")) {
			say(note, notelen, "key v= is not DKIM1");
			return DKIM_R_KEY_SYNTAX;
		}
	}
	if ((t = tag_get(tags, nt, "k")) != NULL) {
		if (slice_is_nocase(t->value, "rsa")) {
			out->ktype = DKIM_ALG_RSA_SHA256;
		} else if (slice_is_nocase(t->value, "ed25519")) {
			out->ktype = DKIM_ALG_ED25519_SHA256;
		} else {
			say(note, notelen, "unknown key type k=");
			return DKIM_R_KEY_SYNTAX;
		}
	}
	if ((t = tag_get(tags, nt, "h")) != NULL) {
		list_each(t->value, kh_item, &kf);
		out->h_sha256 = kf.sha256;
	}
	if ((t = tag_get(tags, nt, "s")) != NULL) {
		list_each(t->value, ks_item, &kf);
		out->s_email = kf.email;
	}
	if ((t = tag_get(tags, nt, "t")) != NULL) {
		list_each(t->value, kt_item, &kf);
		out->t_testing = kf.y;
		out->t_strict = kf.s;
	}
	if ((t = tag_get(tags, nt, "p")) == NULL) {
		say(note, notelen, "key record without p=");
		return DKIM_R_KEY_SYNTAX;
	}
	r = b64_fws(t->value, out->p, sizeof out->p);
	if (r < 0) {
		say(note, notelen, "key p= is not base64");
		return DKIM_R_KEY_SYNTAX;
	}
	out->p_len = (size_t)r;
	out->revoked = r == 0;
	return DKIM_R_OK;
}

/* The key of rec as an EVP_PKEY of its k= type, or NULL with the reason. */
static EVP_PKEY *keyrec_pkey(const struct dkim_keyrec *rec, unsigned *bits,
			     enum dkim_reason *why, char *note, size_t notelen)
{
	EVP_PKEY *pk = NULL;

	*bits = 0;
	if (rec->revoked) {
		*why = DKIM_R_KEY_REVOKED;
		say(note, notelen, "key revoked (empty p=)");
		return NULL;
	}
	if (rec->ktype == DKIM_ALG_ED25519_SHA256) {
		if (rec->p_len != 32) {
			*why = DKIM_R_KEY_SYNTAX;
			say(note, notelen, "ed25519 key is not 32 octets");
			return NULL;
		}
		pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, rec->p, 32);
		if (pk == NULL) {
			ossl_clear();
			*why = DKIM_R_KEY_SYNTAX;
			say(note, notelen, "bad ed25519 key");
			return NULL;
		}
		*bits = 256;
		*why = DKIM_R_OK;
		return pk;
	}

	/* RSA: SubjectPublicKeyInfo (RFC 6376 3.6.1), else a bare RSAPublicKey. */
	const unsigned char *q = rec->p;
	pk = d2i_PUBKEY(NULL, &q, (long)rec->p_len);
	if (pk != NULL && (q != rec->p + rec->p_len || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA)) {
		EVP_PKEY_free(pk);
		pk = NULL;
		ossl_clear();
		*why = DKIM_R_KEY_SYNTAX;
		say(note, notelen, "p= is not an RSA public key");
		return NULL;
	}
	if (pk == NULL) {
		ossl_clear();
		q = rec->p;
		pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)rec->p_len);
		if (pk != NULL && q != rec->p + rec->p_len) {
			EVP_PKEY_free(pk);
			pk = NULL;
		}
	}
	if (pk == NULL) {
		ossl_clear();
		*why = DKIM_R_KEY_SYNTAX;
		say(note, notelen, "p= is not an RSA public key");
		return NULL;
	}
	*bits = (unsigned)EVP_PKEY_get_bits(pk);
	if (*bits < DKIM_RSA_MIN_BITS) {
		EVP_PKEY_free(pk);
		*why = DKIM_R_KEY_TOO_SHORT;
		say(note, notelen, "RSA key of %u bits is too short (RFC 8301)", *bits);
		return NULL;
	}
	if (*bits > DKIM_RSA_MAX_BITS) {
		EVP_PKEY_free(pk);
		*why = DKIM_R_KEY_UNUSABLE;
		say(note, notelen, "RSA key of %u bits is too large", *bits);
		return NULL;
	}
	*why = DKIM_R_OK;
	return pk;
}

enum dkim_reason dkim_keyrec_check(const struct dkim_keyrec *rec, unsigned *bits, char *note,
				   size_t notelen)
{
	enum dkim_reason why;
	EVP_PKEY *pk = keyrec_pkey(rec, bits, &why, note, notelen);

	EVP_PKEY_free(pk);
	return why;
}

/* ---- the header block ---- */

enum { HS_BOL = 0, HS_MID, HS_CR, HS_BOL_CR };

struct hcollect {
	struct buf hdr;
	int st;
	bool done;
	bool too_big;
	bool nomem;
};

struct field {
	size_t off, len;	/* the field with its CR LF */
	size_t colon;		/* offset of ':' in the field, or len when none */
	size_t namelen;		/* name without WSP before the colon */
};

static void hc_init(struct hcollect *hc, size_t max)
{
	memset(hc, 0, sizeof *hc);
	buf_init(&hc->hdr, max + 2);	/* + the empty line's CR LF, removed at the end */
}

/*
 * Take header octets from p; returns how many were taken (all of them
 * unless the empty line ending the header block is among them).
 */
static size_t hc_feed(struct hcollect *hc, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && !hc->done; i++) {
		uint8_t c = p[i];
		switch (hc->st) {
		case HS_BOL:
			hc->st = c == '\r' ? HS_BOL_CR : HS_MID;
			break;
		case HS_BOL_CR:
			if (c == '\n')
				hc->done = true;
			else
				hc->st = c == '\r' ? HS_CR : HS_MID;
			break;
		case HS_MID:
			if (c == '\r')
				hc->st = HS_CR;
			break;
		case HS_CR:
			hc->st = c == '\n' ? HS_BOL : c == '\r' ? HS_CR : HS_MID;
			break;
		}
	}
	if (!hc->too_big && !hc->nomem) {
		if (hc->hdr.len + i > hc->hdr.max) {
			hc->too_big = true;
			buf_free(&hc->hdr);
		} else if (buf_append(&hc->hdr, p, i) < 0) {
			hc->nomem = true;
			buf_free(&hc->hdr);
		}
	}
	if (hc->done && !hc->too_big && !hc->nomem)
		hc->hdr.len -= 2;	/* the empty line */
	return i;
}

/* At the end of a message without an empty line: the header is all there was. */
static void hc_finish(struct hcollect *hc)
{
	if (hc->done || hc->too_big || hc->nomem)
		return;
	hc->done = true;
	if (hc->hdr.len > 0 && !(hc->hdr.len >= 2 && hc->hdr.data[hc->hdr.len - 2] == '\r' &&
				 hc->hdr.data[hc->hdr.len - 1] == '\n')) {
		if (hc->hdr.len + 2 > hc->hdr.max)
			hc->too_big = true;
		else if (buf_append(&hc->hdr, "\r\n", 2) < 0)
			hc->nomem = true;
	}
}

/* Split a header block (ending in CR LF, or empty) into fields. -1 ENOMEM, -2 too many. */
static int split_fields(const uint8_t *h, size_t n, struct field **out, size_t *nf)
{
	struct field *f = NULL;
	size_t cap = 0, k = 0, i = 0;

	*out = NULL;
	*nf = 0;
	while (i < n) {
		size_t start = i, end = n;
		for (;;) {
			const uint8_t *lf = memchr(h + i, '\n', n - i);
			if (lf == NULL) {
				end = n;
				break;
			}
			size_t j = (size_t)(lf - h);
			i = j + 1;
			if (j == 0 || h[j - 1] != '\r')
				continue;	/* a bare LF is content */
			if (i < n && is_wsp(h[i]))
				continue;	/* folded */
			end = i;
			break;
		}
		i = end;
		if (k == DKIM_FIELDS_MAX) {
			free(f);
			return -2;
		}
		if (k == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct field *nf2 = realloc(f, ncap * sizeof *f);
			if (nf2 == NULL) {
				free(f);
				return -1;
			}
			f = nf2;
			cap = ncap;
		}
		const uint8_t *colon = memchr(h + start, ':', end - start);
		f[k].off = start;
		f[k].len = end - start;
		f[k].colon = colon ? (size_t)(colon - (h + start)) : end - start;
		f[k].namelen = f[k].colon;
		while (f[k].namelen > 0 && is_wsp(h[start + f[k].namelen - 1]))
			f[k].namelen--;
		k++;
	}
	*out = f;
	*nf = k;
	return 0;
}

static struct slice field_name(const uint8_t *h, const struct field *f)
{
	return (struct slice){ h + f->off, f->namelen };
}

/*
 * RFC 6376 3.7 and 5.4.2: the fields named in h=, each name taking the
 * last not yet used field of that name (bottom up), a name with none left
 * contributing nothing; then the signature field itself (sig, CR LF
 * included, b= blanked) canonicalized, without its final CR LF. self is
 * the index of the signature's own field, never selected (SIZE_MAX: none).
 */
static int hash_headers(const uint8_t *h, const struct field *f, size_t nf, size_t self,
			enum dkim_canon hc, const struct slice *names, size_t nn,
			const uint8_t *sig, size_t siglen, uint8_t out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool *used = calloc(nf ? nf : 1, sizeof *used);
	struct buf scratch;
	unsigned len = 0;
	int rc = -1;

	buf_init(&scratch, SIZE_MAX);
	if (md == NULL || used == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	if (self < nf)
		used[self] = true;
	for (size_t k = 0; k < nn; k++) {
		for (size_t j = nf; j-- > 0;) {
			if (used[j] || f[j].colon == f[j].len ||
			    !slices_eq_nocase(field_name(h, &f[j]), names[k]))
				continue;
			used[j] = true;
			buf_reset(&scratch);
			if (dkim_canon_header(hc, h + f[j].off, f[j].len, &scratch) < 0 ||
			    EVP_DigestUpdate(md, scratch.data, scratch.len) != 1)
				goto out;
			break;
		}
	}
	buf_reset(&scratch);
	if (dkim_canon_header(hc, sig, siglen, &scratch) < 0 || scratch.len < 2)
		goto out;
	if (EVP_DigestUpdate(md, scratch.data, scratch.len - 2) != 1 ||
	    EVP_DigestFinal_ex(md, out, &len) != 1 || len != 32)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		ossl_clear();
	buf_free(&scratch);
	free(used);
	EVP_MD_CTX_free(md);
	return rc;
}

/* ---- body hashers ---- */

struct hasher {
	enum dkim_canon canon;
	bool has_l;
	uint64_t l;
	EVP_MD_CTX *md;
	uint64_t hashed;
	bool failed;
	struct dkim_bodycanon bc;
	uint8_t hash[32];
};

static void hasher_sink(void *arg, const uint8_t *p, size_t n)
{
	struct hasher *hs = arg;

	if (hs->has_l) {
		if (hs->hashed >= hs->l)
			return;
		if ((uint64_t)n > hs->l - hs->hashed)
			n = (size_t)(hs->l - hs->hashed);
	}
	hs->hashed += n;
	if (EVP_DigestUpdate(hs->md, p, n) != 1)
		hs->failed = true;
}

static int hasher_init(struct hasher *hs, enum dkim_canon c, bool has_l, uint64_t l)
{
	memset(hs, 0, sizeof *hs);
	hs->canon = c;
	hs->has_l = has_l;
	hs->l = l;
	hs->md = EVP_MD_CTX_new();
	if (hs->md == NULL || EVP_DigestInit_ex(hs->md, EVP_sha256(), NULL) != 1) {
		ossl_clear();
		EVP_MD_CTX_free(hs->md);
		hs->md = NULL;
		return -1;
	}
	dkim_bodycanon_init(&hs->bc, c, hasher_sink, hs);
	return 0;
}

static int hasher_end(struct hasher *hs)
{
	unsigned len = 0;

	dkim_bodycanon_end(&hs->bc);
	if (hs->failed || EVP_DigestFinal_ex(hs->md, hs->hash, &len) != 1 || len != 32) {
		ossl_clear();
		return -1;
	}
	return 0;
}

/* ---- verification ---- */

struct vsig {
	struct dkim_sig_result r;
	struct dkim_sigtags st;
	size_t field;
	int hasher;		/* -1: none */
	bool bh_ok;
	uint8_t hhash[32];
};

struct dkim_verify {
	time_t now;
	uint32_t skew;
	struct dkim_key_cache *cache;
	struct hcollect hc;
	bool ended;
	bool body;		/* the header block is done; octets are body */
	bool nomem;
	const char *error;
	enum dkim_result error_res;
	struct field *fields;
	size_t nfields;
	size_t nsig;
	size_t skipped;
	size_t pending;
	struct vsig *sig;	/* DKIM_MAX_SIGS, allocated at the first signature: most
				   mail has one or none, and each is ~7 KiB */
	size_t nhasher;
	struct hasher hasher[DKIM_MAX_SIGS];
};

struct dkim_verify *dkim_verify_begin(const struct dkim_verify_opts *opts)
{
	struct dkim_verify *v = calloc(1, sizeof *v);

	if (v == NULL)
		return NULL;
	v->now = opts && opts->now ? opts->now : time(NULL);
	v->skew = opts && opts->skew ? opts->skew : DKIM_SKEW;
	v->cache = opts ? opts->cache : NULL;
	hc_init(&v->hc, opts && opts->header_max ? opts->header_max : DKIM_HEADER_MAX);
	return v;
}

static void set_result(struct vsig *s, enum dkim_result res, enum dkim_reason why,
		       const char *note)
{
	s->r.result = res;
	s->r.reason = why;
	s->r.pending = false;
	say(s->r.note, sizeof s->r.note, "%s", note && *note ? note : dkim_reason_text(why));
}

static int attach_hasher(struct dkim_verify *v, struct vsig *s)
{
	for (size_t i = 0; i < v->nhasher; i++) {
		struct hasher *hs = &v->hasher[i];
		if (hs->canon == s->st.bcanon && hs->has_l == s->st.has_l &&
		    (!hs->has_l || hs->l == s->st.l)) {
			s->hasher = (int)i;
			return 0;
		}
	}
	if (hasher_init(&v->hasher[v->nhasher], s->st.bcanon, s->st.has_l, s->st.l) < 0)
		return -1;
	s->hasher = (int)v->nhasher++;
	return 0;
}

/* The header block is complete: find and check the signatures, set up body hashes. */
static void header_done(struct dkim_verify *v)
{
	const uint8_t *h;
	int rc;

	v->body = true;
	if (v->hc.too_big || v->hc.nomem)
		return;
	h = v->hc.hdr.data;
	rc = split_fields(h, v->hc.hdr.len, &v->fields, &v->nfields);
	if (rc == -2) {
		v->hc.too_big = true;
		return;
	}
	if (rc < 0) {
		v->nomem = true;
		return;
	}
	for (size_t k = 0; k < v->nfields; k++) {
		const struct field *f = &v->fields[k];
		struct vsig *s;
		enum dkim_reason why;
		size_t vlen;
		char note[128] = "";

		if (f->colon == f->len || !slice_is_nocase(field_name(h, f), "dkim-signature"))
			continue;
		if (v->nsig == DKIM_MAX_SIGS) {
			v->skipped++;
			continue;
		}
		if (v->sig == NULL && (v->sig = calloc(DKIM_MAX_SIGS, sizeof *v->sig)) == NULL) {
			v->nomem = true;
			return;
		}
		s = &v->sig[v->nsig++];
		memset(s, 0, sizeof *s);
		s->field = k;
		s->hasher = -1;
		vlen = f->len - f->colon - 1 - 2;	/* without the CR LF */
		why = dkim_sig_parse(h + f->off + f->colon + 1, vlen, &s->st, note, sizeof note);
		memcpy(s->r.d, s->st.d, sizeof s->r.d);
		memcpy(s->r.s, s->st.s, sizeof s->r.s);
		memcpy(s->r.auid, s->st.auid, sizeof s->r.auid);
		memcpy(s->r.a, s->st.a, sizeof s->r.a);
		memcpy(s->r.b_prefix, s->st.b_prefix, sizeof s->r.b_prefix);
		s->r.l_used = s->st.has_l;
		s->r.l = s->st.l;
		s->r.t = s->st.t;
		s->r.x = s->st.x;
		if (why != DKIM_R_OK) {
			set_result(s, DKIM_PERMERROR, why, note);
			continue;
		}
		if (s->st.has_t && s->st.t > (uint64_t)v->now + v->skew) {
			set_result(s, DKIM_NEUTRAL, DKIM_R_FUTURE, NULL);
			continue;
		}
		if (s->st.has_x && s->st.x + v->skew < (uint64_t)v->now) {
			set_result(s, DKIM_FAIL, DKIM_R_EXPIRED, NULL);
			continue;
		}
		if (attach_hasher(v, s) < 0) {
			v->nomem = true;
			return;
		}
		/* until the key's answer */
		s->r.pending = true;
		s->r.result = DKIM_TEMPERROR;
		s->r.reason = DKIM_R_DNS;
		say(s->r.note, sizeof s->r.note, "key not answered");
	}
}

int dkim_verify_feed(struct dkim_verify *v, const uint8_t *p, size_t n)
{
	if (v->ended)
		return 0;
	if (!v->body) {
		size_t used = hc_feed(&v->hc, p, n);
		if (v->hc.done)
			header_done(v);
		p += used;
		n -= used;
	}
	if (n > 0 && v->body && !v->nomem) {
		for (size_t i = 0; i < v->nhasher; i++)
			dkim_bodycanon_feed(&v->hasher[i].bc, p, n);
	}
	return v->nomem || v->hc.nomem ? -1 : 0;
}

static void verify_fail(struct dkim_verify *v, enum dkim_result res, const char *why)
{
	v->error = why;
	v->error_res = res;
}

int dkim_verify_end(struct dkim_verify *v, dkim_lookup_fn lookup, void *ctx)
{
	const uint8_t *h;
	struct buf blank;

	if (v->ended)
		return v->error ? -1 : (int)v->pending;
	v->ended = true;
	if (!v->body) {
		hc_finish(&v->hc);
		header_done(v);
	}
	if (v->hc.too_big) {
		verify_fail(v, DKIM_PERMERROR, "header too large");
		goto fail;
	}
	if (v->nomem || v->hc.nomem) {
		verify_fail(v, DKIM_TEMPERROR, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < v->nhasher; i++) {
		if (hasher_end(&v->hasher[i]) < 0) {
			verify_fail(v, DKIM_TEMPERROR, "hash failed");
			goto fail;
		}
	}

	h = v->hc.hdr.data;
	buf_init(&blank, SIZE_MAX);
	for (size_t i = 0; i < v->nsig; i++) {
		struct vsig *s = &v->sig[i];
		const struct field *f;
		const struct hasher *hs;
		size_t vo;

		if (!s->r.pending)
			continue;
		hs = &v->hasher[s->hasher];
		s->r.body_octets = hs->bc.out;
		if (s->st.has_l && s->st.l > hs->bc.out) {
			s->bh_ok = false;
		} else {
			s->bh_ok = s->st.bh_len == 32 && memcmp(s->st.bh, hs->hash, 32) == 0;
			if (s->st.has_l)
				s->r.unsigned_octets = hs->bc.out - s->st.l;
		}
		/* the signature field with the b= value (and its FWS) taken out */
		f = &v->fields[s->field];
		vo = f->off + f->colon + 1;
		buf_reset(&blank);
		if (buf_append(&blank, h + f->off, vo - f->off + s->st.b_raw_start) < 0 ||
		    buf_append(&blank, h + vo + s->st.b_raw_end,
			       f->off + f->len - (vo + s->st.b_raw_end)) < 0 ||
		    hash_headers(h, v->fields, v->nfields, s->field, s->st.hcanon, s->st.h,
				 s->st.nh, blank.data, blank.len, s->hhash) < 0) {
			set_result(s, DKIM_TEMPERROR, DKIM_R_INTERNAL, "out of memory");
			continue;
		}
		s->st.nh = 0;	/* the names pointed into the header block, freed below */
		say(s->r.query, sizeof s->r.query, "%s._domainkey.%s", s->st.s, s->st.d);
		v->pending++;
	}
	buf_free(&blank);
	buf_free(&v->hc.hdr);
	free(v->fields);
	v->fields = NULL;
	v->nfields = 0;
	for (size_t i = 0; i < v->nhasher; i++) {
		EVP_MD_CTX_free(v->hasher[i].md);
		v->hasher[i].md = NULL;
	}

	for (size_t i = 0; i < v->nsig; i++) {
		if (v->sig[i].r.pending && v->sig[i].r.query[0] != '\0' && lookup != NULL)
			lookup(ctx, i, v->sig[i].r.query);
	}
	return (int)v->pending;

fail:
	v->nsig = 0;	/* no per-signature result when the message could not be evaluated */
	buf_free(&v->hc.hdr);
	free(v->fields);
	v->fields = NULL;
	for (size_t i = 0; i < v->nhasher; i++) {
		EVP_MD_CTX_free(v->hasher[i].md);
		v->hasher[i].md = NULL;
	}
	return -1;
}

/* ---- parsed keys ---- */

struct kc_entry {
	uint8_t *p;		/* p= decoded; NULL: a free slot */
	size_t len;
	enum dkim_alg type;
	EVP_PKEY *pk;		/* the cache's reference */
	unsigned bits;
	uint64_t used;
};

struct dkim_key_cache {
	struct kc_entry *e;
	size_t max;
	uint64_t tick, decoded, reused;
};

struct dkim_key_cache *dkim_key_cache_new(size_t max)
{
	struct dkim_key_cache *c = calloc(1, sizeof *c);

	if (c == NULL || max == 0 || (c->e = calloc(max, sizeof *c->e)) == NULL) {
		free(c);
		return NULL;
	}
	c->max = max;
	return c;
}

void dkim_key_cache_free(struct dkim_key_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->max; i++) {
		free(c->e[i].p);
		EVP_PKEY_free(c->e[i].pk);
	}
	free(c->e);
	free(c);
}

void dkim_key_cache_stats(const struct dkim_key_cache *c, uint64_t *decoded, uint64_t *reused)
{
	*decoded = c->decoded;
	*reused = c->reused;
}

/* keyrec_pkey through the cache: a reference of the caller's either way. */
static EVP_PKEY *cached_pkey(struct dkim_key_cache *c, const struct dkim_keyrec *rec,
			     unsigned *bits, enum dkim_reason *why, char *note, size_t notelen)
{
	struct kc_entry *slot = NULL;
	EVP_PKEY *pk;

	if (c == NULL || rec->revoked)
		return keyrec_pkey(rec, bits, why, note, notelen);
	c->tick++;
	for (size_t i = 0; i < c->max; i++) {
		struct kc_entry *e = &c->e[i];

		if (e->p != NULL && e->type == rec->ktype && e->len == rec->p_len &&
		    memcmp(e->p, rec->p, e->len) == 0 && EVP_PKEY_up_ref(e->pk) == 1) {
			e->used = c->tick;
			c->reused++;
			*bits = e->bits;
			*why = DKIM_R_OK;
			return e->pk;
		}
		if (slot == NULL || e->p == NULL || (slot->p != NULL && e->used < slot->used))
			slot = e;	/* a free slot, else the least recently used */
	}
	c->decoded++;
	pk = keyrec_pkey(rec, bits, why, note, notelen);
	if (pk == NULL || EVP_PKEY_up_ref(pk) != 1)
		return pk;
	free(slot->p);
	EVP_PKEY_free(slot->pk);
	*slot = (struct kc_entry){ malloc(rec->p_len), rec->p_len, rec->ktype, pk, *bits, c->tick };
	if (slot->p == NULL) {
		EVP_PKEY_free(slot->pk);	/* not kept: the caller's reference stays */
		slot->pk = NULL;
	} else {
		memcpy(slot->p, rec->p, rec->p_len);
	}
	return pk;
}

static void check_with_key(struct vsig *s, const struct dkim_keyrec *kr, struct dkim_key_cache *cache)
{
	enum dkim_reason why;
	char note[128] = "";
	EVP_PKEY *pk;
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	int ok = 0;

	s->r.testing = kr->t_testing;
	if (kr->ktype != s->st.alg) {
		set_result(s, DKIM_PERMERROR, DKIM_R_KEY_UNUSABLE, "key type k= does not match a=");
		return;
	}
	if (!kr->h_sha256) {
		set_result(s, DKIM_PERMERROR, DKIM_R_KEY_UNUSABLE, "key h= does not allow sha256");
		return;
	}
	if (!kr->s_email) {
		set_result(s, DKIM_PERMERROR, DKIM_R_KEY_UNUSABLE, "key s= is not for email");
		return;
	}
	if (kr->t_strict) {
		const char *at = strrchr(s->st.auid, '@');
		if (at == NULL || strcmp(at + 1, s->st.d) != 0) {
			set_result(s, DKIM_PERMERROR, DKIM_R_KEY_UNUSABLE,
				   "key t=s: i= domain must be d=");
			return;
		}
	}
	pk = cached_pkey(cache, kr, &s->r.key_bits, &why, note, sizeof note);
	if (pk == NULL) {
		set_result(s, why == DKIM_R_KEY_REVOKED || why == DKIM_R_KEY_TOO_SHORT ? DKIM_FAIL
										      : DKIM_PERMERROR,
			   why, note);
		return;
	}
	if (!s->bh_ok) {
		EVP_PKEY_free(pk);
		set_result(s, DKIM_FAIL, DKIM_R_BODY_HASH,
			   s->st.has_l && s->st.l > s->r.body_octets ? "l= beyond the body"
								     : "body hash mismatch");
		return;
	}
	if (s->st.alg == DKIM_ALG_RSA_SHA256) {
		pc = EVP_PKEY_CTX_new(pk, NULL);
		ok = pc != NULL && EVP_PKEY_verify_init(pc) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		     EVP_PKEY_verify(pc, s->st.b, s->st.b_len, s->hhash, 32) == 1;
	} else {
		/* RFC 8463 3: PureEdDSA over the SHA-256 hash of the header data */
		mc = EVP_MD_CTX_new();
		ok = mc != NULL && EVP_DigestVerifyInit(mc, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestVerify(mc, s->st.b, s->st.b_len, s->hhash, 32) == 1;
	}
	ossl_clear();
	EVP_PKEY_CTX_free(pc);
	EVP_MD_CTX_free(mc);
	EVP_PKEY_free(pk);
	if (ok)
		set_result(s, DKIM_PASS, DKIM_R_OK, "");
	else
		set_result(s, DKIM_FAIL, DKIM_R_SIGNATURE, NULL);
}

size_t dkim_key_answer(struct dkim_verify *v, size_t i, enum dkim_key_status st,
		       const struct slice *txt, size_t ntxt)
{
	struct vsig *s;
	struct dkim_keyrec *kr;
	char note[128] = "";
	bool found = false;

	if (i >= v->nsig || !v->sig[i].r.pending || v->sig[i].r.query[0] == '\0')
		return v->pending;
	s = &v->sig[i];
	s->r.pending = false;
	v->pending--;
	if (st == DKIM_KEY_TEMPFAIL) {
		set_result(s, DKIM_TEMPERROR, DKIM_R_DNS, "key lookup failed temporarily");
		return v->pending;
	}
	if (st != DKIM_KEY_FOUND || ntxt == 0) {
		set_result(s, DKIM_PERMERROR, DKIM_R_NO_KEY, "no key record");
		return v->pending;
	}
	kr = malloc(sizeof *kr);
	if (kr == NULL) {
		set_result(s, DKIM_TEMPERROR, DKIM_R_INTERNAL, "out of memory");
		return v->pending;
	}
	for (size_t k = 0; k < ntxt && !found; k++) {
		char n2[128] = "";
		if (dkim_keyrec_parse(txt[k].p, txt[k].len, kr, n2, sizeof n2) == DKIM_R_OK)
			found = true;
		else if (note[0] == '\0')
			memcpy(note, n2, sizeof note);
	}
	if (!found)
		set_result(s, DKIM_PERMERROR, DKIM_R_KEY_SYNTAX, note);
	else
		check_with_key(s, kr, v->cache);
	free(kr);
	return v->pending;
}

size_t dkim_verify_count(const struct dkim_verify *v)
{
	return v->nsig;
}

size_t dkim_verify_skipped(const struct dkim_verify *v)
{
	return v->skipped;
}

size_t dkim_verify_pending(const struct dkim_verify *v)
{
	return v->pending;
}

const struct dkim_sig_result *dkim_verify_result(const struct dkim_verify *v, size_t i)
{
	return i < v->nsig ? &v->sig[i].r : NULL;
}

const char *dkim_verify_error(const struct dkim_verify *v, enum dkim_result *res)
{
	if (v->error && res)
		*res = v->error_res;
	return v->error;
}

void dkim_verify_free(struct dkim_verify *v)
{
	if (v == NULL)
		return;
	buf_free(&v->hc.hdr);
	free(v->fields);
	free(v->sig);
	for (size_t i = 0; i < v->nhasher; i++)
		EVP_MD_CTX_free(v->hasher[i].md);
	free(v);
}

/* ---- keys ---- */

struct dkim_key {
	EVP_PKEY *pk;
	enum dkim_alg alg;
	unsigned bits;
};

static int no_password(char *buf, int size, int rw, void *u)
{
	(void)buf;
	(void)size;
	(void)rw;
	(void)u;
	return 0;	/* never prompt: an encrypted key is refused */
}

static struct dkim_key *key_wrap(EVP_PKEY *pk, char *err, size_t errlen)
{
	struct dkim_key *k;
	int id = EVP_PKEY_get_base_id(pk);

	if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
		say(err, errlen, "not an RSA or Ed25519 key");
		EVP_PKEY_free(pk);
		return NULL;
	}
	if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(pk) < DKIM_RSA_MIN_BITS) {
		say(err, errlen, "RSA key of %d bits is too short (RFC 8301: at least %d)",
		    EVP_PKEY_get_bits(pk), DKIM_RSA_MIN_BITS);
		EVP_PKEY_free(pk);
		return NULL;
	}
	k = calloc(1, sizeof *k);
	if (k == NULL) {
		say(err, errlen, "out of memory");
		EVP_PKEY_free(pk);
		return NULL;
	}
	k->pk = pk;
	k->alg = id == EVP_PKEY_RSA ? DKIM_ALG_RSA_SHA256 : DKIM_ALG_ED25519_SHA256;
	k->bits = (unsigned)EVP_PKEY_get_bits(pk);
	return k;
}

struct dkim_key *dkim_key_load(const uint8_t *p, size_t n, char *err, size_t errlen)
{
	EVP_PKEY *pk = NULL;

	if (n > 65536) {
		say(err, errlen, "key file too large");
		return NULL;
	}
	if (memmem(p, n, "-----BEGIN", 10) != NULL) {
		BIO *bio = BIO_new_mem_buf(p, (int)n);
		if (bio != NULL)
			pk = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
		BIO_free(bio);
		ossl_clear();
		if (pk == NULL) {
			say(err, errlen, "not a readable PEM private key (encrypted keys are refused)");
			return NULL;
		}
		return key_wrap(pk, err, errlen);
	}
	/* a bare base64 Ed25519 seed (RFC 8463 A.1, dkimpy key files) */
	uint8_t seed[64];
	long r = b64_fws((struct slice){ p, n }, seed, sizeof seed);
	if (r != 32) {
		say(err, errlen, "neither PEM nor a base64 Ed25519 seed of 32 octets");
		return NULL;
	}
	pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	OPENSSL_cleanse(seed, sizeof seed);
	if (pk == NULL) {
		ossl_clear();
		say(err, errlen, "bad Ed25519 seed");
		return NULL;
	}
	return key_wrap(pk, err, errlen);
}

struct dkim_key *dkim_key_generate(enum dkim_alg alg, unsigned bits, char *err, size_t errlen)
{
	EVP_PKEY *pk = NULL;

	if (alg == DKIM_ALG_RSA_SHA256) {
		if (bits == 0)
			bits = DKIM_RSA_DEFAULT_BITS;
		if (bits < DKIM_RSA_MIN_BITS || bits > DKIM_RSA_MAX_BITS) {
			say(err, errlen, "RSA bits must be %d..%d", DKIM_RSA_MIN_BITS,
			    DKIM_RSA_MAX_BITS);
			return NULL;
		}
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	} else if (alg == DKIM_ALG_ED25519_SHA256) {
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	} else {
		say(err, errlen, "unknown algorithm");
		return NULL;
	}
	if (pk == NULL) {
		ossl_clear();
		say(err, errlen, "key generation failed");
		return NULL;
	}
	return key_wrap(pk, err, errlen);
}

void dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pk);
	free(k);
}

enum dkim_alg dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

unsigned dkim_key_bits(const struct dkim_key *k)
{
	return k->bits;
}

int dkim_key_pem(const struct dkim_key *k, struct buf *out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int rc = -1;

	if (bio != NULL && PEM_write_bio_PrivateKey(bio, k->pk, NULL, NULL, 0, NULL, NULL) == 1) {
		n = BIO_get_mem_data(bio, &data);
		if (n > 0 && buf_append(out, data, (size_t)n) == 0)
			rc = 0;
	}
	ossl_clear();
	BIO_free(bio);
	return rc;
}

static int append_b64(struct buf *out, const uint8_t *p, size_t n)
{
	size_t need = (n + 2) / 3 * 4 + 1;

	if (buf_reserve(out, need) < 0)
		return -1;
	out->len += sasl_b64_encode(p, n, (char *)out->data + out->len, need);
	return 0;
}

int dkim_key_record(const struct dkim_key *k, struct buf *out)
{
	uint8_t raw[DKIM_P_MAX];
	size_t n = sizeof raw;
	int rc = -1;

	if (k->alg == DKIM_ALG_ED25519_SHA256) {
		if (EVP_PKEY_get_raw_public_key(k->pk, raw, &n) == 1 && n == 32 &&
		    buf_printf(out, "v=DKIM1; k=ed25519; p=") == 0 && append_b64(out, raw, n) == 0)
			rc = 0;
	} else {
		unsigned char *der = NULL;
		int len = i2d_PUBKEY(k->pk, &der);
		if (len > 0 && buf_printf(out, "v=DKIM1; k=rsa; p=") == 0 &&
		    append_b64(out, der, (size_t)len) == 0)
			rc = 0;
		OPENSSL_free(der);
	}
	ossl_clear();
	return rc;
}

/* ---- signing ---- */

const char *const dkim_sign_default_headers[] = {
	"From", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "Content-ID", "Content-Description",
	"Sender", "Resent-Date", "Resent-From", "Resent-Sender", "Resent-To",
	"Resent-Cc", "Resent-Message-ID", "List-Id", "List-Help",
	"List-Unsubscribe", "List-Unsubscribe-Post", "List-Subscribe",
	"List-Post", "List-Owner", "List-Archive", "Autocrypt", "OpenPGP",
	NULL,
};

#define SIGN_NAMES_MAX 64

struct sreq {
	const struct dkim_key *key;
	char d[254];
	char s[254];
	char auid[DKIM_AUID_MAX + 1];
	uint32_t expire;
	size_t nnames;
	char names[SIGN_NAMES_MAX][80];	/* lower case, distinct */
};

struct dkim_sign {
	time_t now;
	struct hcollect hc;
	bool body;
	bool ended;
	struct hasher hs;
	size_t nreq;
	struct sreq req[];
};

static bool name_ok(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len >= 80)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((uint8_t)n[i] < 0x21 || (uint8_t)n[i] > 0x7e || n[i] == ':')
			return false;
	return true;
}

static bool auid_ok(const char *a, const char *d)
{
	const char *at = strrchr(a, '@');
	char dom[254];

	if (at == NULL || strlen(a) > DKIM_AUID_MAX)
		return false;
	for (const char *c = a; *c; c++)
		if ((uint8_t)*c < 0x21 || (uint8_t)*c > 0x7e || *c == ';' || *c == '=')
			return false;
	if (!domain_ok(slice_from_str(at + 1), dom, sizeof dom))
		return false;
	return domain_within(dom, d);
}

struct dkim_sign *dkim_sign_begin(const struct dkim_sign_req *reqs, size_t n, time_t now,
				  char *err, size_t errlen)
{
	struct dkim_sign *s;

	if (n == 0 || n > DKIM_MAX_SIGS) {
		say(err, errlen, "1 to %d signatures", DKIM_MAX_SIGS);
		return NULL;
	}
	s = calloc(1, sizeof *s + n * sizeof s->req[0]);
	if (s == NULL) {
		say(err, errlen, "out of memory");
		return NULL;
	}
	s->now = now ? now : time(NULL);
	s->nreq = n;
	for (size_t i = 0; i < n; i++) {
		const struct dkim_sign_req *r = &reqs[i];
		struct sreq *q = &s->req[i];
		const char *const *names = r->headers ? r->headers : dkim_sign_default_headers;

		if (r->key == NULL || r->domain == NULL || r->selector == NULL) {
			say(err, errlen, "signature %zu: key, domain and selector are required", i);
			goto fail;
		}
		q->key = r->key;
		q->expire = r->expire;
		if (!domain_ok(slice_from_str(r->domain), q->d, sizeof q->d)) {
			say(err, errlen, "signature %zu: d= is not a domain name", i);
			goto fail;
		}
		if (!selector_ok(slice_from_str(r->selector), q->s, sizeof q->s) ||
		    strlen(q->s) + strlen("._domainkey.") + strlen(q->d) > 253) {
			say(err, errlen, "signature %zu: bad selector", i);
			goto fail;
		}
		if (r->auid != NULL) {
			if (!auid_ok(r->auid, q->d)) {
				say(err, errlen, "signature %zu: i= must be [local]@domain within d=",
				    i);
				goto fail;
			}
			say(q->auid, sizeof q->auid, "%s", r->auid);
		}
		bool from = false;
		for (size_t k = 0; names[k] != NULL; k++) {
			bool dup = false;
			if (!name_ok(names[k])) {
				say(err, errlen, "signature %zu: bad header name", i);
				goto fail;
			}
			for (size_t j = 0; j < q->nnames; j++)
				if (strcasecmp(q->names[j], names[k]) == 0)
					dup = true;
			if (dup)
				continue;
			if (q->nnames == SIGN_NAMES_MAX) {
				say(err, errlen, "signature %zu: too many header names", i);
				goto fail;
			}
			char *dst = q->names[q->nnames++];
			for (size_t c = 0; names[k][c]; c++)
				dst[c] = (char)lower((uint8_t)names[k][c]);
			dst[strlen(names[k])] = '\0';
			if (strcmp(dst, "from") == 0)
				from = true;
		}
		if (!from) {
			say(err, errlen, "signature %zu: From must be signed (RFC 6376 5.4)", i);
			goto fail;
		}
	}
	hc_init(&s->hc, DKIM_HEADER_MAX);
	if (hasher_init(&s->hs, DKIM_CANON_RELAXED, false, 0) < 0) {
		say(err, errlen, "out of memory");
		buf_free(&s->hc.hdr);
		goto fail;
	}
	return s;
fail:
	free(s);
	return NULL;
}

int dkim_sign_feed(struct dkim_sign *s, const uint8_t *p, size_t n)
{
	if (s->ended)
		return 0;
	if (!s->body) {
		size_t used = hc_feed(&s->hc, p, n);
		if (s->hc.done)
			s->body = true;
		p += used;
		n -= used;
	}
	if (n > 0 && s->body)
		dkim_bodycanon_feed(&s->hs.bc, p, n);
	return s->hc.nomem || s->hs.failed ? -1 : 0;
}

/* Folding at DKIM_FOLD_COLUMNS, continuation lines start with a TAB (8 columns). */
struct fold {
	struct buf *b;
	size_t col;
	bool fail;
};

static void fold_raw(struct fold *f, const char *p, size_t n)
{
	if (!f->fail && buf_append(f->b, p, n) < 0)
		f->fail = true;
	f->col += n;
}

static void fold_break(struct fold *f)
{
	fold_raw(f, "\r\n\t", 3);
	f->col = 8;
}

/* A token after a space, or at the start of a new line when it does not fit. */
static void fold_token(struct fold *f, const char *p, size_t n)
{
	if (f->col + 1 + n > DKIM_FOLD_COLUMNS)
		fold_break(f);
	else
		fold_raw(f, " ", 1);
	fold_raw(f, p, n);
}

/* A formatted token (tmp is scratch). */
__attribute__((format(printf, 3, 4)))
static void fold_tokf(struct fold *f, struct buf *tmp, const char *fmt, ...)
{
	va_list ap;
	int r;

	buf_reset(tmp);
	va_start(ap, fmt);
	r = buf_vprintf(tmp, fmt, ap);
	va_end(ap);
	if (r < 0) {
		f->fail = true;
		return;
	}
	fold_token(f, (const char *)tmp->data, tmp->len);
}

/* Text that may be broken anywhere (FWS allowed at every point: base64). */
static void fold_flow(struct fold *f, const char *p, size_t n)
{
	while (n > 0) {
		size_t room = f->col < DKIM_FOLD_COLUMNS ? DKIM_FOLD_COLUMNS - f->col : 0;
		if (room == 0) {
			fold_break(f);
			continue;
		}
		size_t k = n < room ? n : room;
		fold_raw(f, p, k);
		p += k;
		n -= k;
	}
}

static int sign_one(struct dkim_sign *s, const struct sreq *q, const struct field *fields,
		    size_t nf, const char *bh, struct buf *out, char *err, size_t errlen)
{
	const uint8_t *h = s->hc.hdr.data;
	struct slice hn[DKIM_H_MAX];
	size_t nh = 0, start = out->len;
	struct buf tmp;
	struct fold f = { .b = out };
	uint8_t hhash[32], sig[DKIM_B_MAX];
	size_t siglen = sizeof sig;
	char *b64 = NULL;
	int rc = -1;

	buf_init(&tmp, SIZE_MAX);

	/* h=: each name once per field present, From once more */
	for (size_t k = 0; k < q->nnames; k++) {
		struct slice name = slice_from_str(q->names[k]);
		size_t count = 0;
		for (size_t j = 0; j < nf; j++)
			if (fields[j].colon != fields[j].len &&
			    slices_eq_nocase(field_name(h, &fields[j]), name))
				count++;
		if (strcmp(q->names[k], "from") == 0) {
			if (count == 0) {
				say(err, errlen, "the message has no From field");
				goto out;
			}
			count++;
		}
		for (size_t c = 0; c < count; c++) {
			if (nh == DKIM_H_MAX) {
				say(err, errlen, "too many header fields to sign");
				goto out;
			}
			hn[nh++] = name;
		}
	}

	fold_raw(&f, "DKIM-Signature:", 15);
	fold_token(&f, "v=1;", 4);
	fold_tokf(&f, &tmp, "a=%s;", dkim_alg_name(q->key->alg));
	fold_token(&f, "c=relaxed/relaxed;", 18);
	fold_tokf(&f, &tmp, "d=%s;", q->d);
	fold_tokf(&f, &tmp, "s=%s;", q->s);
	fold_tokf(&f, &tmp, "t=%lld;", (long long)s->now);
	if (q->expire)
		fold_tokf(&f, &tmp, "x=%lld;", (long long)s->now + (long long)q->expire);
	if (q->auid[0])
		fold_tokf(&f, &tmp, "i=%s;", q->auid);
	/* h=: broken after a ':' when it does not fit */
	for (size_t k = 0; k < nh; k++) {
		const char *sep = k + 1 == nh ? ";" : ":";
		if (k == 0) {
			fold_tokf(&f, &tmp, "h=%.*s%s", (int)hn[k].len, (const char *)hn[k].p, sep);
			continue;
		}
		if (f.col + hn[k].len + 1 > DKIM_FOLD_COLUMNS)
			fold_break(&f);
		fold_raw(&f, (const char *)hn[k].p, hn[k].len);
		fold_raw(&f, sep, 1);
	}
	fold_tokf(&f, &tmp, "bh=%s;", bh);
	fold_token(&f, "b=", 2);
	if (f.fail)
		goto nomem;

	/* hash: the selected fields, then this field with b= empty */
	buf_reset(&tmp);
	if (buf_append(&tmp, out->data + start, out->len - start) < 0 ||
	    buf_append(&tmp, "\r\n", 2) < 0)
		goto nomem;
	if (hash_headers(h, fields, nf, SIZE_MAX, DKIM_CANON_RELAXED, hn, nh, tmp.data, tmp.len,
			 hhash) < 0)
		goto nomem;

	if (q->key->alg == DKIM_ALG_RSA_SHA256) {
		EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(q->key->pk, NULL);
		int ok = pc != NULL && EVP_PKEY_sign_init(pc) == 1 &&
			 EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
			 EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
			 EVP_PKEY_sign(pc, sig, &siglen, hhash, 32) == 1;
		EVP_PKEY_CTX_free(pc);
		if (!ok)
			goto crypto;
	} else {
		EVP_MD_CTX *mc = EVP_MD_CTX_new();
		int ok = mc != NULL && EVP_DigestSignInit(mc, NULL, NULL, NULL, q->key->pk) == 1 &&
			 EVP_DigestSign(mc, sig, &siglen, hhash, 32) == 1;
		EVP_MD_CTX_free(mc);
		if (!ok)
			goto crypto;
	}
	b64 = malloc((siglen + 2) / 3 * 4 + 1);
	if (b64 == NULL)
		goto nomem;
	size_t blen = sasl_b64_encode(sig, siglen, b64, (siglen + 2) / 3 * 4 + 1);
	fold_flow(&f, b64, blen);
	fold_raw(&f, "\r\n", 2);
	if (f.fail)
		goto nomem;
	rc = 0;
	goto out;
crypto:
	ossl_clear();
	say(err, errlen, "signing failed");
	goto out;
nomem:
	say(err, errlen, "out of memory");
out:
	if (rc < 0)
		out->len = start;
	free(b64);
	buf_free(&tmp);
	return rc;
}

int dkim_sign_end(struct dkim_sign *s, struct buf *out, char *err, size_t errlen)
{
	struct field *fields = NULL;
	size_t nf = 0, start = out->len;
	char bh[48];
	int rc = -1, r;

	if (s->ended) {
		say(err, errlen, "dkim_sign_end called twice");
		return -1;
	}
	s->ended = true;
	if (!s->body)
		hc_finish(&s->hc);
	if (s->hc.too_big) {
		say(err, errlen, "header too large");
		return -1;
	}
	if (s->hc.nomem || hasher_end(&s->hs) < 0) {
		say(err, errlen, "out of memory");
		return -1;
	}
	if (s->hc.hdr.len > 0 && is_wsp(s->hc.hdr.data[0])) {
		/* a field put in front would swallow it as its own continuation */
		say(err, errlen, "the message starts with a folded line");
		return -1;
	}
	sasl_b64_encode(s->hs.hash, 32, bh, sizeof bh);
	r = split_fields(s->hc.hdr.data, s->hc.hdr.len, &fields, &nf);
	if (r < 0) {
		say(err, errlen, r == -2 ? "too many header fields" : "out of memory");
		return -1;
	}
	for (size_t i = 0; i < s->nreq; i++)
		if (sign_one(s, &s->req[i], fields, nf, bh, out, err, errlen) < 0)
			goto out;
	rc = 0;
out:
	if (rc < 0)
		out->len = start;
	free(fields);
	return rc;
}

void dkim_sign_free(struct dkim_sign *s)
{
	if (s == NULL)
		return;
	buf_free(&s->hc.hdr);
	EVP_MD_CTX_free(s->hs.md);
	free(s);
}
