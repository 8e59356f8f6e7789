/*
 * spf_macro.c - the pure half of SPF: the record grammar (RFC 7208 12),
 * macro strings (7) and domain names as SPF asks them; see spf.h.
 */
#include "spf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

static uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static bool is_delim(uint8_t c)
{
	return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

static bool eq_nocase(struct slice s, const char *lit)
{
	size_t n = strlen(lit);

	if (s.len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s.p[i]) != (uint8_t)lit[i])
			return false;
	return true;
}

/* Words for err: what, then the term quoted, escaped and cut. */
static void set_err(char *err, size_t errlen, const char *what, struct slice term)
{
	char esc[64];
	size_t o = 0, i;

	if (err == NULL || errlen == 0)
		return;
	for (i = 0; i < term.len && o + 4 < sizeof esc - 4; i++) {
		uint8_t c = term.p[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
			esc[o++] = (char)c;
		} else {
			snprintf(esc + o, sizeof esc - o, "\\x%02x", c);
			o += 4;
		}
	}
	if (i < term.len) {
		memcpy(esc + o, "...", 3);
		o += 3;
	}
	esc[o] = '\0';
	snprintf(err, errlen, "%s \"%s\"", what, esc);
}

/* ------------------------------------------------------------------ */
/* macros (RFC 7208 7.1) */

struct mexp {
	uint8_t letter;		/* lower case */
	bool upper;		/* URL-escape the value */
	bool reverse;
	unsigned digits;	/* 0: all parts */
	uint8_t delims[8];	/* NUL-terminated; empty: "." */
	char literal[4];	/* for %% %_ %-: the text, letter 0 */
};

static bool letter_ok(uint8_t l, enum spf_macro_mode mode)
{
	switch (l) {
	case 's': case 'l': case 'o': case 'd': case 'i': case 'p': case 'h': case 'v':
		return true;
	case 'c': case 'r': case 't':
		return mode != SPF_MACRO_DOMAIN;
	default:
		return false;
	}
}

/*
 * One macro-expand at p[0] == '%': the octets it takes, or 0 when it is
 * malformed.
 */
static size_t macro_scan(const uint8_t *p, size_t len, enum spf_macro_mode mode, struct mexp *m)
{
	size_t i;
	size_t nd = 0;

	memset(m, 0, sizeof *m);
	if (len < 2)
		return 0;
	switch (p[1]) {
	case '%':
		memcpy(m->literal, "%", 2);
		return 2;
	case '_':
		memcpy(m->literal, " ", 2);
		return 2;
	case '-':
		memcpy(m->literal, "%20", 4);
		return 2;
	case '{':
		break;
	default:
		return 0;
	}
	if (len < 4)
		return 0;
	m->letter = lower(p[2]);
	m->upper = p[2] >= 'A' && p[2] <= 'Z';
	if (!letter_ok(m->letter, mode))
		return 0;
	i = 3;
	if (i < len && is_digit(p[i])) {
		unsigned v = 0;

		while (i < len && is_digit(p[i])) {
			if (v < 1000)	/* saturates: more parts than any name has */
				v = v * 10 + (unsigned)(p[i] - '0');
			i++;
		}
		if (v == 0)	/* "If a DIGIT is specified, the value MUST be nonzero" */
			return 0;
		m->digits = v;
	}
	if (i < len && lower(p[i]) == 'r') {
		m->reverse = true;
		i++;
	}
	while (i < len && is_delim(p[i])) {
		if (memchr(m->delims, p[i], nd) == NULL && nd + 1 < sizeof m->delims)
			m->delims[nd++] = p[i];
		i++;
	}
	if (i >= len || p[i] != '}')
		return 0;
	return i + 1;
}

static bool literal_ok(uint8_t c, enum spf_macro_mode mode)
{
	/* macro-literal = %x21-24 / %x26-7E; explain-string adds SP */
	if (c == ' ')
		return mode == SPF_MACRO_EXP;
	return c >= 0x21 && c <= 0x7e && c != '%';
}

int spf_macro_check(const uint8_t *p, size_t len, enum spf_macro_mode mode)
{
	struct mexp m;

	for (size_t i = 0; i < len;) {
		if (p[i] == '%') {
			size_t n = macro_scan(p + i, len - i, mode, &m);

			if (n == 0)
				return -1;
			i += n;
		} else if (literal_ok(p[i], mode)) {
			i++;
		} else {
			return -1;
		}
	}
	return 0;
}

bool spf_macro_uses_ptr(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 2 < len; i++) {
		if (p[i] == '%' && p[i + 1] == '%') {
			i++;	/* "%%{p}" is a literal "%{p}" */
			continue;
		}
		if (p[i] == '%' && p[i + 1] == '{' && lower(p[i + 2]) == 'p')
			return true;
	}
	return false;
}

struct out {
	char *p;
	size_t cap;
	size_t len;
	bool over;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->over || n >= o->cap - o->len) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

static void put_escaped(struct out *o, const char *p, size_t n, bool url)
{
	static const char hex[] = "0123456789ABCDEF";

	if (!url) {
		put(o, p, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)p[i];

		if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			put(o, &c, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			put(o, e, 3);
		}
	}
}

/* The value of a macro letter, in buf (cap SPF_EXPAND_MAX); -2 when too long. */
static int macro_value(const struct spf_macro_env *env, uint8_t letter, char *buf, size_t cap)
{
	const char *v = NULL;
	char tmp[INET6_ADDRSTRLEN];

	switch (letter) {
	case 's': v = env->sender; break;
	case 'l': v = env->local; break;
	case 'o': v = env->sender_domain; break;
	case 'd': v = env->domain; break;
	case 'h': v = env->helo; break;
	case 'p': v = env->ptr != NULL ? env->ptr : "unknown"; break;
	case 'r': v = env->receiver != NULL ? env->receiver : "unknown"; break;
	case 'v': v = env->family == AF_INET6 ? "ip6" : "in-addr"; break;
	case 't':
		snprintf(buf, cap, "%lld", (long long)env->now);
		return 0;
	case 'c':
	case 'i':
		if (env->family == AF_INET6 && letter == 'i') {
			static const char hex[] = "0123456789abcdef";
			size_t o = 0;

			for (int k = 0; k < 16; k++) {
				buf[o++] = hex[env->ip[k] >> 4];
				buf[o++] = '.';
				buf[o++] = hex[env->ip[k] & 15];
				buf[o++] = k == 15 ? '\0' : '.';
			}
			return 0;
		}
		if (inet_ntop(env->family == AF_INET6 ? AF_INET6 : AF_INET, env->ip, tmp,
			      sizeof tmp) == NULL)
			tmp[0] = '\0';
		v = tmp;
		break;
	default:
		return -1;
	}
	if (v == NULL)
		v = "";
	if (strlen(v) >= cap)
		return -2;
	memcpy(buf, v, strlen(v) + 1);
	return 0;
}

/* Split on delims, reverse, keep the right-hand digits parts, join with '.' (7.3). */
static void transform(struct out *o, const char *v, const struct mexp *m)
{
	enum { PARTS_MAX = SPF_EXPAND_MAX + 1 };
	static const uint8_t dot[] = ".";
	const uint8_t *delims = m->delims[0] != '\0' ? m->delims : dot;
	uint16_t start[PARTS_MAX], end[PARTS_MAX];	/* len < SPF_EXPAND_MAX */
	size_t n = 0, len = strlen(v), from, to;
	char piece[SPF_EXPAND_MAX];
	struct out po = { piece, sizeof piece, 0, false };

	start[0] = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || strchr((const char *)delims, v[i]) != NULL) {
			end[n] = (uint16_t)i;
			n++;
			if (i < len && n < PARTS_MAX)
				start[n] = (uint16_t)(i + 1);
			if (n >= PARTS_MAX)	/* cannot happen: len < SPF_EXPAND_MAX */
				break;
		}
	}
	from = 0;
	to = n;
	if (m->digits > 0 && m->digits < n) {
		if (m->reverse)
			to = m->digits;		/* reversed: the first parts are the right-hand ones */
		else
			from = n - m->digits;
	}
	for (size_t k = from; k < to; k++) {
		size_t idx = m->reverse ? (from + to - 1 - k) : k;

		if (k > from)
			put(&po, ".", 1);
		put(&po, v + start[idx], end[idx] - start[idx]);
	}
	if (po.over) {
		o->over = true;
		return;
	}
	put_escaped(o, piece, po.len, m->upper);
}

int spf_macro_expand(const struct spf_macro_env *env, const uint8_t *p, size_t len,
		     enum spf_macro_mode mode, char *out, size_t cap, size_t *outlen)
{
	struct out o = { out, cap, 0, false };
	char val[SPF_EXPAND_MAX];
	struct mexp m;

	if (cap == 0)
		return -2;
	out[0] = '\0';
	*outlen = 0;
	if (spf_macro_check(p, len, mode) != 0)
		return -1;
	for (size_t i = 0; i < len && !o.over;) {
		size_t n;
		int rc;

		if (p[i] != '%') {
			size_t k = i;

			while (k < len && p[k] != '%')
				k++;
			put(&o, p + i, k - i);
			i = k;
			continue;
		}
		n = macro_scan(p + i, len - i, mode, &m);
		i += n;
		if (m.letter == 0) {
			put(&o, m.literal, strlen(m.literal));
			continue;
		}
		rc = macro_value(env, m.letter, val, sizeof val);
		if (rc != 0)
			return rc;
		transform(&o, val, &m);
	}
	if (o.over) {
		out[0] = '\0';
		return -2;
	}
	out[o.len] = '\0';
	*outlen = o.len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* names */

int spf_target_name(char *name)
{
	size_t len = strlen(name);
	size_t label = 0;

	if (len > 0 && name[len - 1] == '.')
		name[--len] = '\0';
	while (len > SPF_NAME_MAX) {
		char *dot = memchr(name, '.', len);

		if (dot == NULL)
			return -1;
		len -= (size_t)(dot - name) + 1;
		memmove(name, dot + 1, len + 1);
	}
	if (len == 0)
		return -1;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || name[i] == '.') {
			if (label == 0 || label > 63)
				return -1;
			label = 0;
		} else {
			label++;
		}
	}
	return 0;
}

bool spf_domain_valid(const char *domain)
{
	size_t len = strlen(domain);
	size_t label = 0, labels = 0;
	bool digits_only = true;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > SPF_NAME_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		uint8_t c = i < len ? (uint8_t)domain[i] : '.';

		if (c == '.') {
			if (label == 0 || label > 63)
				return false;
			labels++;
			if (i < len) {
				label = 0;
				digits_only = true;
			}
			continue;
		}
		if (c <= 0x20 || c >= 0x7f || c == '[' || c == ']')
			return false;
		if (!is_digit(c))
			digits_only = false;
		label++;
	}
	return labels >= 2 && !digits_only;
}

/* ------------------------------------------------------------------ */
/* the record grammar (RFC 7208 12) */

bool spf_is_record(const uint8_t *rec, size_t len)
{
	static const char v[] = "v=spf1";

	if (len < 6)
		return false;
	for (size_t i = 0; i < 6; i++)
		if (lower(rec[i]) != (uint8_t)v[i])
			return false;
	return len == 6 || rec[6] == ' ';
}

/*
 * toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
 */
static bool toplabel_ok(const uint8_t *p, size_t n)
{
	bool alpha = false, dash = false;

	if (n == 0 || !is_alnum(p[0]) || !is_alnum(p[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '-')
			dash = true;
		else if (is_alpha(p[i]))
			alpha = true;
		else if (!is_digit(p[i]))
			return false;
	}
	return alpha || dash;
}

/* domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand */
static bool domain_spec_ok(struct slice d)
{
	size_t lit = 0;		/* start of the literal run at the end */
	bool ends_macro = false;
	struct mexp m;
	size_t e;

	if (d.len == 0 || spf_macro_check(d.p, d.len, SPF_MACRO_DOMAIN) != 0)
		return false;
	for (size_t i = 0; i < d.len;) {
		if (d.p[i] == '%') {
			i += macro_scan(d.p + i, d.len - i, SPF_MACRO_DOMAIN, &m);
			lit = i;
			ends_macro = true;
		} else {
			i++;
			ends_macro = false;
		}
	}
	if (ends_macro)
		return true;
	e = d.len;
	if (e > lit && d.p[e - 1] == '.')
		e--;
	for (size_t k = e; k > lit; k--) {
		if (d.p[k - 1] == '.')
			return toplabel_ok(d.p + k, e - k);
	}
	return false;
}

/* "0" / %x31-39 *DIGIT, at most max: the value, or -1. */
static int cidr_value(const uint8_t *p, size_t n, unsigned max)
{
	unsigned v = 0;

	if (n == 0 || n > 3 || (n > 1 && p[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	return v <= max ? (int)v : -1;
}

/* dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ], the whole of p[0..n). */
static int dual_cidr(const uint8_t *p, size_t n, struct spf_term *t)
{
	size_t i = 0;
	int v;

	if (n >= 1 && p[0] == '/' && !(n >= 2 && p[1] == '/')) {
		size_t k = 1;

		while (k < n && p[k] != '/')
			k++;
		if ((v = cidr_value(p + 1, k - 1, 32)) < 0)
			return -1;
		t->cidr4 = (unsigned)v;
		i = k;
	}
	if (i < n) {
		if (n - i < 3 || p[i] != '/' || p[i + 1] != '/')
			return -1;
		if ((v = cidr_value(p + i + 2, n - i - 2, 128)) < 0)
			return -1;
		t->cidr6 = (unsigned)v;
	}
	return 0;
}

/*
 * The argument of a or mx after ':': domain-spec [ dual-cidr-length ]. The
 * CIDR part is taken from the end: "//" 1*DIGIT, then "/" 1*DIGIT.
 */
static size_t digits_before(struct slice s, size_t end)
{
	while (end > 0 && is_digit(s.p[end - 1]))
		end--;
	return end;
}

static int domain_and_cidr(struct slice arg, struct spf_term *t)
{
	size_t end = arg.len, k;
	int v;

	k = digits_before(arg, end);
	if (k < end && k >= 2 && arg.p[k - 1] == '/' && arg.p[k - 2] == '/') {
		if ((v = cidr_value(arg.p + k, end - k, 128)) < 0)
			return -1;
		t->cidr6 = (unsigned)v;
		end = k - 2;
	}
	k = digits_before(arg, end);
	if (k < end && k >= 1 && arg.p[k - 1] == '/') {
		if ((v = cidr_value(arg.p + k, end - k, 32)) < 0)
			return -1;
		t->cidr4 = (unsigned)v;
		end = k - 1;
	}
	t->domain = (struct slice){ arg.p, end };
	return domain_spec_ok(t->domain) ? 0 : -1;
}

/* ip4-network = qnum "." qnum "." qnum "." qnum, no leading zeros */
static int ip4_parse(const uint8_t *p, size_t n, uint8_t out[4])
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t s = i;
		unsigned v = 0;

		while (i < n && is_digit(p[i]) && i - s < 3) {
			v = v * 10 + (unsigned)(p[i] - '0');
			i++;
		}
		if (i == s || v > 255 || (i - s > 1 && p[s] == '0'))
			return -1;
		out[part] = (uint8_t)v;
		if (part < 3) {
			if (i >= n || p[i] != '.')
				return -1;
			i++;
		}
	}
	return i == n ? 0 : -1;
}

static int ip6_parse(const uint8_t *p, size_t n, uint8_t out[16])
{
	char tmp[INET6_ADDRSTRLEN + 1];

	if (n == 0 || n >= sizeof tmp)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!(is_alnum(p[i]) || p[i] == ':' || p[i] == '.'))
			return -1;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET6, tmp, out) == 1 ? 0 : -1;
}

/* ip4 / ip6: ":" network [ "/" cidr ] */
static int ip_arg(struct slice rest, bool v6, struct spf_term *t)
{
	size_t k = 1;
	int v;

	if (rest.len < 2 || rest.p[0] != ':')
		return -1;
	while (k < rest.len && rest.p[k] != '/')
		k++;
	if (v6 ? ip6_parse(rest.p + 1, k - 1, t->net) : ip4_parse(rest.p + 1, k - 1, t->net))
		return -1;
	if (k < rest.len) {
		if ((v = cidr_value(rest.p + k + 1, rest.len - k - 1, v6 ? 128 : 32)) < 0)
			return -1;
		if (v6)
			t->cidr6 = (unsigned)v;
		else
			t->cidr4 = (unsigned)v;
	}
	return 0;
}

static const struct {
	const char *name;
	enum spf_term_kind kind;
} mechanisms[] = {
	{ "all", SPF_T_ALL }, { "include", SPF_T_INCLUDE }, { "a", SPF_T_A },
	{ "mx", SPF_T_MX }, { "ptr", SPF_T_PTR }, { "ip4", SPF_T_IP4 },
	{ "ip6", SPF_T_IP6 }, { "exists", SPF_T_EXISTS },
};

static int parse_term(struct slice text, struct spf_term *t, char *err, size_t errlen)
{
	const uint8_t *p = text.p;
	size_t n = text.len, i = 0, k;
	struct slice name, rest;
	bool found = false;

	memset(t, 0, sizeof *t);
	t->text = text;
	t->cidr4 = 32;
	t->cidr6 = 128;

	/* modifier: name "=" with name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
	if (is_alpha(p[0])) {
		k = 1;
		while (k < n && (is_alnum(p[k]) || p[k] == '-' || p[k] == '_' || p[k] == '.'))
			k++;
		if (k < n && p[k] == '=') {
			t->name = (struct slice){ p, k };
			t->domain = (struct slice){ p + k + 1, n - k - 1 };
			if (eq_nocase(t->name, "redirect") || eq_nocase(t->name, "exp")) {
				t->kind = eq_nocase(t->name, "exp") ? SPF_T_EXP : SPF_T_REDIRECT;
				if (!domain_spec_ok(t->domain)) {
					set_err(err, errlen, "bad domain-spec in", text);
					return -1;
				}
			} else {
				t->kind = SPF_T_UNKNOWN;
				if (spf_macro_check(t->domain.p, t->domain.len, SPF_MACRO_MODIFIER)) {
					set_err(err, errlen, "bad macro-string in modifier", text);
					return -1;
				}
			}
			return 0;
		}
	}

	/* directive = [ qualifier ] mechanism */
	t->qualifier = SPF_PASS;
	switch (p[0]) {
	case '+': t->qualifier = SPF_PASS; i = 1; break;
	case '-': t->qualifier = SPF_FAIL; i = 1; break;
	case '~': t->qualifier = SPF_SOFTFAIL; i = 1; break;
	case '?': t->qualifier = SPF_NEUTRAL; i = 1; break;
	default: break;
	}
	k = i;
	while (k < n && is_alnum(p[k]))
		k++;
	name = (struct slice){ p + i, k - i };
	rest = (struct slice){ p + k, n - k };
	t->name = name;
	for (size_t m = 0; m < sizeof mechanisms / sizeof mechanisms[0]; m++) {
		if (eq_nocase(name, mechanisms[m].name)) {
			t->kind = mechanisms[m].kind;
			found = true;
			break;
		}
	}
	if (!found) {
		set_err(err, errlen, "unknown mechanism", text);
		return -1;
	}
	switch (t->kind) {
	case SPF_T_ALL:
		if (rest.len == 0)
			return 0;
		break;
	case SPF_T_INCLUDE:
	case SPF_T_EXISTS:
		if (rest.len >= 1 && rest.p[0] == ':') {
			t->domain = (struct slice){ rest.p + 1, rest.len - 1 };
			if (domain_spec_ok(t->domain))
				return 0;
		}
		break;
	case SPF_T_PTR:
		if (rest.len == 0)
			return 0;
		if (rest.p[0] == ':') {
			t->domain = (struct slice){ rest.p + 1, rest.len - 1 };
			if (domain_spec_ok(t->domain))
				return 0;
		}
		break;
	case SPF_T_A:
	case SPF_T_MX:
		if (rest.len == 0)
			return 0;
		if (rest.p[0] == '/' && dual_cidr(rest.p, rest.len, t) == 0)
			return 0;
		if (rest.p[0] == ':' &&
		    domain_and_cidr((struct slice){ rest.p + 1, rest.len - 1 }, t) == 0)
			return 0;
		break;
	case SPF_T_IP4:
	case SPF_T_IP6:
		if (ip_arg(rest, t->kind == SPF_T_IP6, t) == 0)
			return 0;
		break;
	default:
		break;
	}
	set_err(err, errlen, "syntax error in", text);
	return -1;
}

int spf_term_next(const uint8_t *rec, size_t len, size_t *pos, struct spf_term *t,
		  char *err, size_t errlen)
{
	size_t i = *pos, e;

	if (i == 0) {
		if (!spf_is_record(rec, len)) {
			set_err(err, errlen, "not an SPF record:", (struct slice){ rec, len < 8 ? len : 8 });
			return -1;
		}
		i = 6;
	}
	while (i < len && rec[i] == ' ')
		i++;
	if (i >= len) {
		*pos = len;
		return 0;
	}
	e = i;
	while (e < len && rec[e] != ' ')
		e++;
	if (parse_term((struct slice){ rec + i, e - i }, t, err, errlen) != 0)
		return -1;
	*pos = e;
	return 1;
}

int spf_record_parse(const uint8_t *rec, size_t len, struct spf_record *out,
		     char *err, size_t errlen)
{
	struct spf_term t;
	size_t pos = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if (len > SPF_RECORD_MAX) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "record longer than %u octets", SPF_RECORD_MAX);
		return -1;
	}
	while ((rc = spf_term_next(rec, len, &pos, &t, err, errlen)) == 1) {
		out->nterms++;
		switch (t.kind) {
		case SPF_T_ALL:
			out->has_all = true;
			break;
		case SPF_T_PTR:
			out->has_ptr = true;
			out->ndns++;
			break;
		case SPF_T_INCLUDE:
		case SPF_T_A:
		case SPF_T_MX:
		case SPF_T_EXISTS:
			out->ndns++;
			break;
		case SPF_T_REDIRECT:
			if (out->has_redirect) {
				set_err(err, errlen, "second redirect modifier", t.text);
				return -1;
			}
			out->has_redirect = true;
			out->redirect = t;
			out->ndns++;
			break;
		case SPF_T_EXP:
			if (out->has_exp) {
				set_err(err, errlen, "second exp modifier", t.text);
				return -1;
			}
			out->has_exp = true;
			out->exp = t;
			break;
		default:
			break;
		}
	}
	return rc;
}
