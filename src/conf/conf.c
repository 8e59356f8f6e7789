/* conf.c - ternd.conf: built-in defaults, the line parser driven by knobs.def, derived values and whole-file checks. */
#include "conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../mailauth/dkim.h"

#define LINE_MAX_BYTES 4096		/* longer lines are an error */
#define FILE_MAX_BYTES (1024 * 1024)	/* larger files are an error */
#define GREET_PAUSE_MAX_MS 30000
#define SHOW_MAX 60			/* bytes of a value quoted in a message */
#define NAME_SUGGEST_MAX 32		/* longest word a keyword is suggested for */

/* How a value is read; see knobs.def. The kinds from K_HOSTNAME on have
 * their defaults set in code, and their dflt column describes them. */
enum knob_kind {
	K_STR,
	K_FOLDER,
	K_WORD,
	K_ENUM,
	K_UINT,
	K_AUTO,
	K_SIZE,
	K_SECS,
	K_MSECS,
	K_HOSTNAME,
	K_DOMAINS,
	K_LISTEN,
	K_DELIVER,
	K_SNI,
	K_MECHS,
	K_TLSPOL,
	K_RELAY,
	K_ADDRS,
	K_TRANSPORT,
	K_DKIM,
};

struct knob {
	const char *name;
	enum knob_kind kind;
	size_t off;		/* of the field in struct conf */
	size_t size;		/* of the field */
	const char *syntax;
	const char *min, *max;
	const char *dflt;
	const char *doc;
};

#define KNOB(name, kind, field, syntax, min, max, dflt, doc)                  \
	{ #name, kind, offsetof(struct conf, field),                          \
	  sizeof(((struct conf *)0)->field), syntax, min, max, dflt, doc },
static const struct knob knobs[] = {
#include "knobs.def"
};
#undef KNOB
#define NKNOBS (sizeof knobs / sizeof knobs[0])

/* Numeric fields are stored through their size: 4 or 8 bytes. */
_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "unsigned is 32 bits");
_Static_assert(sizeof(enum data_bare_policy) == sizeof(uint32_t), "enum is 32 bits");

static const char *const role_names[] = {
	[ROLE_MX] = "mx",
	[ROLE_SUBMISSION] = "submission",
	[ROLE_SUBMISSIONS] = "submissions",
	[ROLE_SUBMISSION_ALT] = "submission-alt",
};
#define NROLES (sizeof role_names / sizeof role_names[0])

static const char *const tls_names[] = {
	[LISTEN_TLS_NONE] = "none",
	[LISTEN_TLS_OPTIONAL] = "optional",
	[LISTEN_TLS_REQUIRED] = "required",
	[LISTEN_TLS_IMPLICIT] = "implicit",
};
static const char *const auth_names[] = {
	[LISTEN_AUTH_NONE] = "none",
	[LISTEN_AUTH_OPTIONAL] = "optional",
	[LISTEN_AUTH_REQUIRED] = "required",
};

/* DESIGN.md, "The four ports": each role's TLS and AUTH by default. */
static const struct {
	enum listener_tls tls;
	enum listener_auth auth;
} role_policy[] = {
	[ROLE_MX] = { LISTEN_TLS_OPTIONAL, LISTEN_AUTH_NONE },
	[ROLE_SUBMISSION] = { LISTEN_TLS_REQUIRED, LISTEN_AUTH_REQUIRED },
	[ROLE_SUBMISSIONS] = { LISTEN_TLS_IMPLICIT, LISTEN_AUTH_REQUIRED },
	[ROLE_SUBMISSION_ALT] = { LISTEN_TLS_REQUIRED, LISTEN_AUTH_REQUIRED },
};

static const struct {
	uint16_t port;
	enum listener_role role;
} default_listeners[] = {
	{ 25, ROLE_MX },
	{ 587, ROLE_SUBMISSION },
	{ 465, ROLE_SUBMISSIONS },
	{ 2525, ROLE_SUBMISSION_ALT },
};

/* Number suffixes: "" is the multiplier without one. Matched ignoring case. */
struct unit {
	const char *suffix;
	uint64_t mult;
};
static const struct unit plain_units[] = { { "", 1 }, { NULL, 0 } };
static const struct unit size_units[] = {
	{ "", 1 }, { "K", 1ULL << 10 }, { "M", 1ULL << 20 }, { "G", 1ULL << 30 },
	{ NULL, 0 },
};
static const struct unit secs_units[] = {
	{ "", 1 }, { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 },
	{ NULL, 0 },
};
static const struct unit ms_units[] = {
	{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
	{ "h", 3600000 }, { "d", 86400000 }, { NULL, 0 },
};
enum { NUM_OK, NUM_BAD, NUM_BIG };

/* The state of one parse, and where its messages go. */
struct ctx {
	struct conf *c;
	const char *name;	/* file name in messages */
	unsigned line;		/* 0: the message names no line */
	const struct knob *k;	/* keyword being read: prefixes messages */
	char *p;		/* rest of the current line (a NUL-terminated copy) */
	char *err;
	size_t errlen;
	unsigned seen[NKNOBS];	/* line each keyword was first given on */
};

/* Quote a value from the file in a message, cut on a character boundary. */
#define SHOWFMT "'%.*s%s'"
#define SHOW(s) (int)show_len(s), (s), ((s)[show_len(s)] != '\0' ? "..." : "")

static size_t show_len(const char *s)
{
	size_t n = strnlen(s, SHOW_MAX + 1);

	if (n <= SHOW_MAX)
		return n;
	n = SHOW_MAX;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* Write "FILE:LINE: keyword: message" (or "FILE: message") to err; -1. */
__attribute__((format(printf, 2, 3)))
static int fail(struct ctx *x, const char *fmt, ...)
{
	va_list ap;
	size_t n = 0;
	int r;

	if (x->errlen == 0)
		return -1;
	if (x->line != 0)
		r = snprintf(x->err, x->errlen, "%s:%u: %s%s", x->name, x->line,
			     x->k ? x->k->name : "", x->k ? ": " : "");
	else
		r = snprintf(x->err, x->errlen, "%s: ", x->name);
	if (r > 0)
		n = (size_t)r < x->errlen ? (size_t)r : x->errlen - 1;
	va_start(ap, fmt);
	vsnprintf(x->err + n, x->errlen - n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if none:
 * no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A line may hold UTF-8 text and tabs: no NUL, no other control character. */
static int check_text(struct ctx *x, const unsigned char *s, size_t n)
{
	size_t i = 0, len;

	while (i < n) {
		if (s[i] == '\0')
			return fail(x, "NUL byte at column %zu", i + 1);
		if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return fail(x, "control character 0x%02x at column %zu", s[i], i + 1);
		len = utf8_seq(s + i, n - i);
		if (len == 0)
			return fail(x, "not valid UTF-8 at column %zu", i + 1);
		i += len;
	}
	return 0;
}

/*
 * The next value on the line, NUL-terminated in place: 1 with *tok set,
 * 0 at the end of the line or a '#' comment, -1 on a quoting error.
 * A value is a run of characters other than space, tab, '#' and '"', or
 * anything but '"' between double quotes.
 */
static int next(struct ctx *x, char **tok)
{
	char *p = x->p + strspn(x->p, " \t");
	char *q;

	if (*p == '\0' || *p == '#') {
		*p = '\0';
		x->p = p;
		return 0;
	}
	if (*p == '"') {
		q = strchr(p + 1, '"');
		if (q == NULL)
			return fail(x, "missing closing '\"'");
		*q++ = '\0';
		*tok = p + 1;
		if (*q != '\0' && *q != ' ' && *q != '\t' && *q != '#')
			return fail(x, "text right after a closing '\"' (put a space between values)");
	} else {
		*tok = p;
		q = p + strcspn(p, " \t#\"");
		if (*q == '"')
			return fail(x, "stray '\"' in the middle of a value (quotes go around a whole value)");
	}
	if (*q == ' ' || *q == '\t')
		*q++ = '\0';
	else
		*q = '\0';	/* '#' or the end */
	x->p = q;
	return 1;
}

/* The next value, which must be there: 0, or -1. */
static int need(struct ctx *x, char **tok)
{
	int r = next(x, tok);

	if (r == 0)
		return fail(x, "missing value (usage: %s %s)", x->k->name, x->k->syntax);
	return r < 0 ? -1 : 0;
}

/* Nothing more on the line: 0, or -1. */
static int end(struct ctx *x)
{
	char *tok;
	int r = next(x, &tok);

	if (r > 0)
		return fail(x, "too many values at " SHOWFMT " (usage: %s %s)", SHOW(tok),
			    x->k->name, x->k->syntax);
	return r;
}

/* Digits and an optional unit suffix into *out: NUM_OK, NUM_BAD or NUM_BIG. */
static int parse_num(const char *s, const struct unit *u, uint64_t *out)
{
	uint64_t v = 0;
	bool big = false;

	if (*s < '0' || *s > '9')
		return NUM_BAD;
	for (; *s >= '0' && *s <= '9'; s++)
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			big = true;
	for (; u->suffix != NULL; u++)
		if (strcasecmp(s, u->suffix) == 0)
			return big || __builtin_mul_overflow(v, u->mult, out) ? NUM_BIG : NUM_OK;
	return NUM_BAD;
}

/* Index of tok among the '|'-separated words of list, or -1. */
static int choice_index(const char *list, const char *tok)
{
	size_t n = strlen(tok), len;
	const char *bar;
	int i;

	for (i = 0;; i++, list = bar + 1) {
		bar = strchr(list, '|');
		len = bar ? (size_t)(bar - list) : strlen(list);
		if (len == n && memcmp(list, tok, n) == 0)
			return i;
		if (bar == NULL)
			return -1;
	}
}

/* "a|b|c" as "a, b, c" in out. */
static const char *one_of(const char *list, char *out, size_t cap)
{
	size_t n = 0;

	for (; *list != '\0' && n + 3 < cap; list++) {
		if (*list == '|') {
			out[n++] = ',';
			out[n++] = ' ';
		} else {
			out[n++] = *list;
		}
	}
	out[n] = '\0';
	return out;
}

static void lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* NULL if d is a valid domain name (RFC 1035 letters, digits, hyphens; no
 * trailing dot, not an IP address), else what is wrong, to follow "it". */
static const char *domain_problem(const char *d)
{
	size_t len = strlen(d), label = 0, labels = 1, i;
	bool digits = true;
	unsigned char ch;

	if (len == 0)
		return "is empty";
	if (len > 253)
		return "is longer than 253 characters";
	for (i = 0; i <= len; i++) {
		ch = (unsigned char)d[i];
		if (ch == '.' || ch == '\0') {
			if (label == 0)
				return "has an empty label (two dots in a row, or a dot at either end)";
			if (d[i - 1] == '-' || d[i - label] == '-')
				return "has a label that starts or ends with '-'";
			if (ch == '.') {
				labels++;
				label = 0;
				digits = true;
			}
			continue;
		}
		if (ch >= 0x80)
			return "is not ASCII (write an international name in its xn-- form)";
		if (ch == ',')
			return "contains ',' (separate domains with spaces)";
		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
		    !(ch >= '0' && ch <= '9') && ch != '-')
			return "has a character other than letters, digits, '-' and '.'";
		if (++label > 63)
			return "has a label longer than 63 characters";
		if (ch < '0' || ch > '9')
			digits = false;
	}
	if (labels > 1 && digits)
		return "looks like an IP address; a domain is wanted";
	return NULL;
}

/* Store v into the knob's 4- or 8-byte numeric field. */
static void store_uint(struct conf *c, const struct knob *k, uint64_t v)
{
	unsigned char *f = (unsigned char *)c + k->off;
	uint32_t v32 = (uint32_t)v;

	if (k->size == sizeof v)
		memcpy(f, &v, sizeof v);
	else
		memcpy(f, &v32, sizeof v32);
}

static int set_number(struct ctx *x, const char *tok)
{
	const struct knob *k = x->k;
	const struct unit *u = k->kind == K_SIZE ? size_units
			     : k->kind == K_SECS ? secs_units
			     : k->kind == K_MSECS ? ms_units : plain_units;
	const char *what = k->kind == K_SIZE ? "a size (use a number with K, M or G)"
			 : k->kind == K_SECS ? "a duration (use a number with s, m, h or d)"
			 : k->kind == K_MSECS ? "a duration (use a number with ms, s, m, h or d)"
			 : k->kind == K_AUTO ? "a number or 'auto'" : "a number";
	uint64_t v = 0, lo = 0, hi = 0;
	int r;

	if (k->kind == K_AUTO && strcmp(tok, "auto") == 0) {
		store_uint(x->c, k, 0);
		return 0;
	}
	r = parse_num(tok, u, &v);
	if (r == NUM_BAD)
		return fail(x, SHOWFMT " is not %s", SHOW(tok), what);
	/* The bounds are table text; test_conf checks that they parse. */
	parse_num(k->min, u, &lo);
	parse_num(k->max, u, &hi);
	if (r == NUM_BIG || v < lo || v > hi)
		return fail(x, SHOWFMT " is out of range (%s to %s%s)", SHOW(tok), k->min,
			    k->max, k->kind == K_AUTO ? ", or auto" : "");
	store_uint(x->c, k, v);
	return 0;
}

/* A one-value keyword (kinds before K_DOMAINS); tok may be changed. */
static int set_scalar(struct ctx *x, char *tok)
{
	const struct knob *k = x->k;
	char *field = (char *)x->c + k->off;
	const char *why;
	char list[128];
	size_t n = strlen(tok);
	int i;

	switch (k->kind) {
	case K_WORD:
	case K_ENUM:
		i = choice_index(k->syntax, tok);
		if (i < 0)
			return fail(x, "unknown value " SHOWFMT " (one of: %s)", SHOW(tok),
				    one_of(k->syntax, list, sizeof list));
		if (k->kind == K_ENUM) {
			store_uint(x->c, k, (uint64_t)i);
			return 0;
		}
		break;
	case K_HOSTNAME:
		why = domain_problem(tok);
		if (why != NULL)
			return fail(x, SHOWFMT " is not a valid host name: it %s", SHOW(tok), why);
		lower(tok);
		break;
	case K_STR:
		if (n == 0)
			return fail(x, "empty value (usage: %s %s)", k->name, k->syntax);
		break;
	case K_FOLDER:	/* becomes part of a path under each mailbox */
		if (strcmp(tok, "none") != 0 && !conf_folder_valid(tok, n))
			return fail(x, SHOWFMT " is not a folder name: use 1-%d letters, digits, '-' or '_', or none",
				    SHOW(tok), CONF_FOLDER_MAX);
		break;
	default:
		return set_number(x, tok);
	}
	if (n >= k->size)
		return fail(x, "value longer than %zu bytes", k->size - 1);
	memcpy(field, tok, n + 1);
	return 0;
}

static int set_domains(struct ctx *x)
{
	struct conf *c = x->c;
	const char *why;
	char *d;
	int r;

	if (!c->domains_set) {
		c->ndomains = 0;
		c->domains_set = true;
	}
	if (need(x, &d) < 0)
		return -1;
	do {
		why = domain_problem(d);
		if (why != NULL)
			return fail(x, SHOWFMT " is not a valid domain: it %s", SHOW(d), why);
		if (conf_is_local_domain(c, d))
			return fail(x, SHOWFMT " is listed twice", SHOW(d));
		if (c->ndomains == CONF_MAX_DOMAINS)
			return fail(x, "more than %d domains", CONF_MAX_DOMAINS);
		lower(d);
		memcpy(c->domains[c->ndomains++], d, strlen(d) + 1);
	} while ((r = next(x, &d)) > 0);
	return r;
}

/* "PORT", "IPV4:PORT" or "[IPV6]:PORT" into l (addr normalized). */
static int parse_addr_port(struct ctx *x, char *s, struct listener_conf *l)
{
	unsigned char bin[16];
	char *addr = NULL, *port = s, *colon;
	int af = AF_INET;
	uint64_t v;

	if (*s == '[') {
		colon = strchr(s, ']');
		if (colon == NULL || colon[1] != ':')
			return fail(x, SHOWFMT ": write an IPv6 address and port as [ADDR]:PORT",
				    SHOW(s));
		*colon = '\0';
		addr = s + 1;
		port = colon + 2;
		af = AF_INET6;
	} else if ((colon = strrchr(s, ':')) != NULL) {
		if (strchr(s, ':') != colon)
			return fail(x, SHOWFMT ": put an IPv6 address in brackets, as in [::1]:25",
				    SHOW(s));
		*colon = '\0';
		addr = s;
		port = colon + 1;
	}
	if (addr != NULL) {
		if (inet_pton(af, addr, bin) != 1)
			return fail(x, SHOWFMT " is not an %s address (no address means all addresses)",
				    SHOW(addr), af == AF_INET ? "IPv4" : "IPv6");
		inet_ntop(af, bin, l->addr, sizeof l->addr);
	}
	if (parse_num(port, plain_units, &v) != NUM_OK || v < 1 || v > 65535)
		return fail(x, SHOWFMT " is not a port (1 to 65535)", SHOW(port));
	l->port = (uint16_t)v;
	return 0;
}

/* One of `names` (n entries) into *out, or -1 with a message listing them. */
static int pick(struct ctx *x, const char *what, const char *tok, const char *const *names,
		size_t n, unsigned *out)
{
	char list[96];
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (strcmp(tok, names[i]) == 0) {
			*out = (unsigned)i;
			return 0;
		}
	list[0] = '\0';
	for (i = 0; i < n && k < sizeof list; i++)
		k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", names[i]);
	return fail(x, "unknown %s " SHOWFMT " (one of: %s)", what, SHOW(tok), list);
}

/* "greet_pause DURATION": up to 30 s, ms precision. */
static int listen_greet_pause(struct ctx *x, struct listener_conf *l)
{
	char *tok;
	uint64_t ms;
	int r;

	if (need(x, &tok) < 0)
		return -1;
	r = parse_num(tok, ms_units, &ms);
	if (r == NUM_BAD)
		return fail(x, "greet_pause: " SHOWFMT " is not a duration (use a number with ms, s or m)",
			    SHOW(tok));
	if (r == NUM_BIG || ms > GREET_PAUSE_MAX_MS)
		return fail(x, "greet_pause: " SHOWFMT " is out of range (0 to 30s)", SHOW(tok));
	l->greet_pause_ms = (uint32_t)ms;
	return 0;
}

/* The options after the role, each at most once; then the policy must make sense. */
static int listen_options(struct ctx *x, struct listener_conf *l)
{
	enum { O_PAUSE = 1, O_TLS = 2, O_AUTH = 4, O_PLAIN = 8 };
	unsigned seen = 0, opt, v;
	char *tok;
	int r;

	while ((r = next(x, &tok)) > 0) {
		if (strcmp(tok, "greet_pause") == 0)
			opt = O_PAUSE;
		else if (strcmp(tok, "tls") == 0)
			opt = O_TLS;
		else if (strcmp(tok, "auth") == 0)
			opt = O_AUTH;
		else if (strcmp(tok, "plaintext_auth") == 0)
			opt = O_PLAIN;
		else
			return fail(x, "unknown option " SHOWFMT " (usage: listen %s)", SHOW(tok),
				    x->k->syntax);
		if (seen & opt)
			return fail(x, "option " SHOWFMT " given twice", SHOW(tok));
		seen |= opt;
		if (opt == O_PAUSE) {
			if (listen_greet_pause(x, l) < 0)
				return -1;
			continue;
		}
		if (need(x, &tok) < 0)
			return -1;
		if (opt == O_TLS) {
			if (pick(x, "tls mode", tok, tls_names, 4, &v) < 0)
				return -1;
			l->tls = (enum listener_tls)v;
		} else if (opt == O_AUTH) {
			if (pick(x, "auth mode", tok, auth_names, 3, &v) < 0)
				return -1;
			l->auth = (enum listener_auth)v;
		} else {
			static const char *const loopback[] = { "loopback" };

			if (pick(x, "plaintext_auth value", tok, loopback, 1, &v) < 0)
				return -1;
			l->plaintext_auth_loopback = true;
		}
	}
	if (r < 0)
		return -1;
	/* DESIGN.md invariant: no AUTH over plaintext, except on loopback when asked. */
	if (l->auth == LISTEN_AUTH_REQUIRED && l->tls == LISTEN_TLS_NONE && !l->plaintext_auth_loopback)
		return fail(x, "auth required with tls none: no client could ever log in "
			       "(use tls optional or required, or plaintext_auth loopback for a local-only port)");
	return 0;
}

static int set_listen(struct ctx *x)
{
	struct conf *c = x->c;
	struct listener_conf l = { .line = x->line };
	char *tok;
	unsigned role;

	if (need(x, &tok) < 0 || parse_addr_port(x, tok, &l) < 0 || need(x, &tok) < 0 ||
	    pick(x, "role", tok, role_names, NROLES, &role) < 0)
		return -1;
	l.role = (enum listener_role)role;
	l.tls = role_policy[role].tls;
	l.auth = role_policy[role].auth;
	if (listen_options(x, &l) < 0)
		return -1;
	if (!c->listeners_set) {
		c->nlisteners = 0;
		c->listeners_set = true;
	}
	if (c->nlisteners == CONF_MAX_LISTENERS)
		return fail(x, "more than %d listeners", CONF_MAX_LISTENERS);
	c->listeners[c->nlisteners++] = l;
	return 0;
}

/* "lmtp unix:/path" or "lmtp HOST:PORT" (a numeric address or a name). */
static int set_lmtp(struct ctx *x, char *tok)
{
	struct conf *c = x->c;
	char *colon = strrchr(tok, ':');
	size_t n = strlen(tok);
	char *end;
	unsigned long port;

	if (strncmp(tok, "unix:", 5) == 0) {
		if (tok[5] != '/')
			return fail(x, "LMTP socket " SHOWFMT " must be an absolute path (unix:/run/dovecot/lmtp)",
				    SHOW(tok));
	} else {
		if (colon == NULL || colon == tok)
			return fail(x, "LMTP address " SHOWFMT " is neither unix:/PATH nor HOST:PORT", SHOW(tok));
		port = strtoul(colon + 1, &end, 10);
		if (*end != '\0' || colon[1] == '\0' || port == 0 || port > 65535)
			return fail(x, "LMTP address " SHOWFMT ": the port must be 1 to 65535", SHOW(tok));
	}
	if (n >= sizeof c->lmtp)
		return fail(x, "LMTP address longer than %zu bytes", sizeof c->lmtp - 1);
	memcpy(c->lmtp, tok, n + 1);
	c->deliver = DELIVER_LMTP;
	return 0;
}

static int set_deliver(struct ctx *x)
{
	struct conf *c = x->c;
	char *tok, *p;
	size_t n;

	if (need(x, &tok) < 0)
		return -1;
	if (strcmp(tok, "lmtp") == 0)
		return need(x, &tok) < 0 || end(x) < 0 ? -1 : set_lmtp(x, tok);
	if (strcmp(tok, "maildir") != 0)
		return fail(x, "unknown method " SHOWFMT " (one of: maildir, lmtp)", SHOW(tok));
	if (need(x, &tok) < 0 || end(x) < 0)
		return -1;
	if (*tok == '\0')
		return fail(x, "empty template (usage: deliver %s)", x->k->syntax);
	for (p = strchr(tok, '%'); p != NULL; p = strchr(p + 2, '%'))
		if (p[1] != 'd' && p[1] != 'u' && p[1] != '%') {
			n = p[1] ? 1 + utf8_seq((unsigned char *)p + 1, strlen(p + 1)) : 1;
			return fail(x, "'%.*s' in " SHOWFMT " is not an escape (use %%d domain, %%u local part, %%%% a percent sign)",
				    (int)n, p, SHOW(tok));
		}
	n = strlen(tok);
	if (n >= sizeof c->maildir)
		return fail(x, "template longer than %zu bytes", sizeof c->maildir - 1);
	memcpy(c->maildir, tok, n + 1);
	c->deliver = DELIVER_MAILDIR;
	return 0;
}

static const char *const tls_level_names[] = { "may", "encrypt", "verify" };

/* "smtp_tls_policy DOMAIN may|encrypt|verify": repeatable, one per domain. */
static int set_tls_policy(struct ctx *x)
{
	struct conf *c = x->c;
	struct tls_policy_conf *t;
	const char *why;
	char *dom, *lvl;
	unsigned v;

	if (need(x, &dom) < 0 || need(x, &lvl) < 0 || end(x) < 0)
		return -1;
	if ((why = domain_problem(dom)) != NULL)
		return fail(x, SHOWFMT " is not a valid domain: it %s", SHOW(dom), why);
	if (pick(x, "level", lvl, tls_level_names, 3, &v) < 0)
		return -1;
	lower(dom);
	for (size_t i = 0; i < c->ntls_policies; i++)
		if (strcmp(c->tls_policies[i].domain, dom) == 0)
			return fail(x, "a policy for " SHOWFMT " is given twice", SHOW(dom));
	if (c->ntls_policies == CONF_MAX_TLS_POLICIES)
		return fail(x, "more than %d policies", CONF_MAX_TLS_POLICIES);
	t = &c->tls_policies[c->ntls_policies++];
	snprintf(t->domain, sizeof t->domain, "%s", dom);
	t->level = (enum smtp_tls_level)v;
	return 0;
}

/* "transport DOMAIN HOST:PORT" (HOST a name or "[address]"); one per domain. */
static int set_transport(struct ctx *x)
{
	struct conf *c = x->c;
	struct transport_conf *t;
	char *dom, *hp, *colon, *endp;
	const char *why;
	unsigned long port;

	if (need(x, &dom) < 0 || need(x, &hp) < 0 || end(x) < 0)
		return -1;
	if ((why = domain_problem(dom)) != NULL)
		return fail(x, SHOWFMT " is not a valid domain: it %s", SHOW(dom), why);
	colon = strrchr(hp, ':');
	if (colon == NULL || colon == hp || (hp[0] == '[' && colon[-1] != ']'))
		return fail(x, SHOWFMT ": write HOST:PORT or [ADDRESS]:PORT", SHOW(hp));
	port = strtoul(colon + 1, &endp, 10);
	if (*endp != '\0' || colon[1] == '\0' || port == 0 || port > 65535)
		return fail(x, SHOWFMT ": the port must be 1 to 65535", SHOW(hp));
	*colon = '\0';
	if (hp[0] != '[' && (why = domain_problem(hp)) != NULL)
		return fail(x, SHOWFMT " is not a host name: it %s", SHOW(hp), why);
	lower(dom);
	for (size_t i = 0; i < c->ntransports; i++)
		if (strcmp(c->transports[i].domain, dom) == 0)
			return fail(x, "a transport for " SHOWFMT " is given twice", SHOW(dom));
	if (c->ntransports == CONF_MAX_TRANSPORTS)
		return fail(x, "more than %d transports", CONF_MAX_TRANSPORTS);
	t = &c->transports[c->ntransports++];
	snprintf(t->domain, sizeof t->domain, "%s", dom);
	snprintf(t->host, sizeof t->host, "%s", hp);
	lower(t->host);
	t->port = (uint16_t)port;
	return 0;
}

/* "dkim_sign DOMAIN SELECTOR KEYFILE": repeatable; the file is read by conf_finish. */
static int set_dkim(struct ctx *x)
{
	struct conf *c = x->c;
	struct dkim_sign_conf *d;
	char *dom, *sel, *file;
	const char *why;

	if (need(x, &dom) < 0 || need(x, &sel) < 0 || need(x, &file) < 0 || end(x) < 0)
		return -1;
	if ((why = domain_problem(dom)) != NULL)
		return fail(x, SHOWFMT " is not a valid domain: it %s", SHOW(dom), why);
	if ((why = domain_problem(sel)) != NULL)
		return fail(x, "selector " SHOWFMT " is not valid: it %s", SHOW(sel), why);
	if (strlen(sel) >= CONF_SELECTOR_MAX)
		return fail(x, "selector longer than %d characters", CONF_SELECTOR_MAX - 1);
	if (strlen(file) >= sizeof d->keyfile)
		return fail(x, "file name longer than %zu bytes", sizeof d->keyfile - 1);
	lower(dom);
	lower(sel);
	for (size_t i = 0; i < c->ndkim_sign; i++)
		if (strcmp(c->dkim_sign[i].domain, dom) == 0 && strcmp(c->dkim_sign[i].selector, sel) == 0)
			return fail(x, "selector " SHOWFMT " of " SHOWFMT " is given twice (first on line %u)",
				    SHOW(sel), SHOW(dom), c->dkim_sign[i].line);
	if (c->ndkim_sign == CONF_MAX_DKIM)
		return fail(x, "more than %d keys", CONF_MAX_DKIM);
	d = &c->dkim_sign[c->ndkim_sign++];
	memset(d, 0, sizeof *d);
	snprintf(d->domain, sizeof d->domain, "%s", dom);
	snprintf(d->selector, sizeof d->selector, "%s", sel);
	snprintf(d->keyfile, sizeof d->keyfile, "%s", file);
	d->line = x->line;
	return 0;
}

static const char *const relay_mode_names[] = { "starttls", "tls", "plain" };

/* "PORT/MODE,PORT/MODE...": the smarthost ports in the order to try. */
static int relay_ports(struct ctx *x, struct relay_conf *r, char *list)
{
	char *save = NULL, *item;
	unsigned v;

	r->nports = 0;
	for (item = strtok_r(list, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		char *slash = strchr(item, '/'), *endp;
		unsigned long port;

		if (slash == NULL)
			return fail(x, "fallback " SHOWFMT ": write PORT/MODE, e.g. 465/tls", SHOW(item));
		*slash = '\0';
		port = strtoul(item, &endp, 10);
		if (*endp != '\0' || port == 0 || port > 65535)
			return fail(x, "fallback port " SHOWFMT " is not 1 to 65535", SHOW(item));
		if (pick(x, "mode", slash + 1, relay_mode_names, 3, &v) < 0)
			return -1;
		if (r->nports == CONF_MAX_RELAY_PORTS)
			return fail(x, "more than %d fallback ports", CONF_MAX_RELAY_PORTS);
		r->ports[r->nports++] = (struct relay_port){ (uint16_t)port, (enum relay_mode)v };
	}
	return r->nports > 0 ? 0 : fail(x, "fallback: no ports given");
}

/*
 * "relay smarthost HOST [port N] [starttls|tls|plain] [auth USER FILE]
 * [fallback PORT/MODE,...]". Without port, the ports are tried in the
 * fallback order (default 587/starttls, 465/tls, 2525/starttls); with a
 * port, that one first, then the rest of the order.
 */
static int set_relay(struct ctx *x)
{
	static const struct relay_port dflt[] = {
		{ 587, RELAY_STARTTLS }, { 465, RELAY_TLS }, { 2525, RELAY_STARTTLS },
	};
	struct relay_conf *r = &x->c->relay;
	struct relay_port first = { 0, RELAY_STARTTLS };
	bool mode_set = false;
	const char *why;
	char *tok;
	unsigned v;
	int rc;

	memset(r, 0, sizeof *r);
	if (need(x, &tok) < 0)
		return -1;
	if (strcmp(tok, "smarthost") != 0)
		return fail(x, "unknown relay kind " SHOWFMT " (one of: smarthost)", SHOW(tok));
	if (need(x, &tok) < 0)
		return -1;
	if ((why = domain_problem(tok)) != NULL && tok[0] != '[')
		return fail(x, SHOWFMT " is not a host name: it %s", SHOW(tok), why);
	snprintf(r->host, sizeof r->host, "%s", tok);
	lower(r->host);
	memcpy(r->ports, dflt, sizeof dflt);
	r->nports = sizeof dflt / sizeof dflt[0];
	while ((rc = next(x, &tok)) > 0) {
		if (strcmp(tok, "port") == 0) {
			char *endp;
			unsigned long port;

			if (need(x, &tok) < 0)
				return -1;
			port = strtoul(tok, &endp, 10);
			if (*endp != '\0' || port == 0 || port > 65535)
				return fail(x, "port " SHOWFMT " is not 1 to 65535", SHOW(tok));
			first.port = (uint16_t)port;
		} else if (strcmp(tok, "starttls") == 0 || strcmp(tok, "tls") == 0 ||
			   strcmp(tok, "plain") == 0) {
			pick(x, "mode", tok, relay_mode_names, 3, &v);
			first.mode = (enum relay_mode)v;
			mode_set = true;
		} else if (strcmp(tok, "auth") == 0) {
			char *user, *file;

			if (need(x, &user) < 0 || need(x, &file) < 0)
				return -1;
			snprintf(r->auth_user, sizeof r->auth_user, "%s", user);
			snprintf(r->auth_file, sizeof r->auth_file, "%s", file);
		} else if (strcmp(tok, "fallback") == 0) {
			if (need(x, &tok) < 0 || relay_ports(x, r, tok) < 0)
				return -1;
		} else {
			return fail(x, "unknown option " SHOWFMT " (usage: relay %s)", SHOW(tok), x->k->syntax);
		}
	}
	if (rc < 0)
		return -1;
	if (first.port != 0) {
		/* The configured port first, then the order without it. */
		size_t k = 0;
		struct relay_port v2[CONF_MAX_RELAY_PORTS];

		if (!mode_set)
			first.mode = first.port == 465 ? RELAY_TLS : RELAY_STARTTLS;
		v2[k++] = first;
		for (size_t i = 0; i < r->nports && k < CONF_MAX_RELAY_PORTS; i++)
			if (r->ports[i].port != first.port)
				v2[k++] = r->ports[i];
		memcpy(r->ports, v2, k * sizeof *v2);
		r->nports = k;
	} else if (mode_set) {
		return fail(x, "%s without port: give the port it applies to", relay_mode_names[first.mode]);
	}
	return 0;
}

/* "ADDR[/LEN] ...": IPv4 or IPv6 addresses or networks, checked here. */
static int set_addrs(struct ctx *x)
{
	char *field = (char *)x->c + x->k->off, *tok;
	size_t used = 0;
	int r;

	field[0] = '\0';
	if (need(x, &tok) < 0)
		return -1;
	if (strcmp(tok, "none") == 0)	/* the empty list, e.g. to undo a default */
		return end(x);
	do {
		char addr[64], *slash;
		unsigned char bin[16];
		int fam;

		snprintf(addr, sizeof addr, "%s", tok);
		if ((slash = strchr(addr, '/')) != NULL)
			*slash = '\0';
		fam = strchr(addr, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(fam, addr, bin) != 1)
			return fail(x, SHOWFMT " is not an IP address or network", SHOW(tok));
		if (slash != NULL) {
			char *endp;
			unsigned long len = strtoul(slash + 1, &endp, 10);

			if (*endp != '\0' || slash[1] == '\0' || len > (fam == AF_INET ? 32u : 128u))
				return fail(x, SHOWFMT ": the prefix length is out of range", SHOW(tok));
		}
		if (used + strlen(tok) + 2 > x->k->size)
			return fail(x, "too many addresses");
		used += (size_t)snprintf(field + used, x->k->size - used, "%s%s", used ? " " : "", tok);
	} while ((r = next(x, &tok)) > 0);
	return r < 0 ? -1 : 0;
}

/* "auth_mechanisms MECH...": known names, any case, into AUTH_MECH_* bits. */
static int set_mechs(struct ctx *x)
{
	static const struct { const char *name; unsigned bit; } mechs[] = {
		{ "PLAIN", AUTH_MECH_PLAIN }, { "LOGIN", AUTH_MECH_LOGIN },
		{ "SCRAM-SHA-256", AUTH_MECH_SCRAM_SHA256 }, { "CRAM-MD5", AUTH_MECH_CRAM_MD5 },
	};
	unsigned bits = 0;
	char *w;
	size_t i;
	int r;

	if (need(x, &w) < 0)
		return -1;
	do {
		for (i = 0; i < sizeof mechs / sizeof mechs[0] && strcasecmp(w, mechs[i].name) != 0; i++)
			;
		if (i == sizeof mechs / sizeof mechs[0])
			return fail(x, "unknown mechanism " SHOWFMT
				       " (one of: PLAIN, LOGIN, SCRAM-SHA-256, CRAM-MD5)", SHOW(w));
		bits |= mechs[i].bit;
	} while ((r = next(x, &w)) > 0);
	if (r < 0)
		return -1;
	x->c->auth_mechs = bits;
	return 0;
}

/* "tls_sni CERT KEY": repeatable; the names come from the certificate. */
static int set_sni(struct ctx *x)
{
	struct conf *c = x->c;
	struct tls_sni_conf *t;
	char *cert, *key;

	if (need(x, &cert) < 0 || need(x, &key) < 0 || end(x) < 0)
		return -1;
	if (c->ntls_sni == CONF_MAX_SNI)
		return fail(x, "more than %d certificates", CONF_MAX_SNI);
	if (strlen(cert) >= sizeof t->cert || strlen(key) >= sizeof t->key)
		return fail(x, "file name longer than %zu bytes", sizeof t->cert - 1);
	t = &c->tls_sni[c->ntls_sni++];
	memcpy(t->cert, cert, strlen(cert) + 1);
	memcpy(t->key, key, strlen(key) + 1);
	t->line = x->line;
	return 0;
}

/* Optimal-string-alignment distance, ignoring case; both at most NAME_SUGGEST_MAX. */
static size_t distance(const char *a, const char *b)
{
	size_t d[NAME_SUGGEST_MAX + 1][NAME_SUGGEST_MAX + 1];
	size_t la = strlen(a), lb = strlen(b), i, j, v;

	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++)
		for (j = 1; j <= lb; j++) {
			v = d[i - 1][j - 1] + (strncasecmp(a + i - 1, b + j - 1, 1) != 0);
			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && strncasecmp(a + i - 1, b + j - 2, 1) == 0 &&
			    strncasecmp(a + i - 2, b + j - 1, 1) == 0 && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[la][lb];
}

/* The keyword w is closest to, if close enough to be a typo; else NULL. */
static const char *suggest(const char *w)
{
	size_t n = strlen(w), limit = n / 4, best_d = SIZE_MAX, i, d;
	const char *best = NULL;

	if (n > NAME_SUGGEST_MAX)
		return NULL;
	limit = limit < 1 ? 1 : limit > 3 ? 3 : limit;
	for (i = 0; i < NKNOBS; i++) {
		d = distance(w, knobs[i].name);
		if (d <= limit && d < best_d) {
			best_d = d;
			best = knobs[i].name;
		}
	}
	return best;
}

/* One line of s (n bytes, without its LF). */
static int parse_line(struct ctx *x, const char *s, size_t n)
{
	char text[LINE_MAX_BYTES + 1], *kw;
	const char *near;
	size_t i;
	int r;

	x->k = NULL;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n > LINE_MAX_BYTES)
		return fail(x, "line longer than %d bytes", LINE_MAX_BYTES);
	if (check_text(x, (const unsigned char *)s, n) < 0)
		return -1;
	memcpy(text, s, n);
	text[n] = '\0';
	x->p = text;
	r = next(x, &kw);
	if (r <= 0)
		return r;
	for (i = 0; i < NKNOBS && strcmp(kw, knobs[i].name) != 0; i++)
		;
	if (i == NKNOBS) {
		near = suggest(kw);
		return fail(x, "unknown keyword " SHOWFMT "%s%s%s", SHOW(kw),
			    near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
	}
	x->k = &knobs[i];
	switch (x->k->kind) {
	case K_DOMAINS:
		return set_domains(x);
	case K_LISTEN:
		return set_listen(x);
	case K_SNI:
		return set_sni(x);
	case K_TLSPOL:
		return set_tls_policy(x);
	case K_TRANSPORT:
		return set_transport(x);
	case K_DKIM:
		return set_dkim(x);
	default:
		break;
	}
	if (x->seen[i] != 0)
		return fail(x, "given twice (first on line %u)", x->seen[i]);
	x->seen[i] = x->line;
	if (x->k->kind == K_DELIVER)
		return set_deliver(x);
	if (x->k->kind == K_MECHS)
		return set_mechs(x);
	if (x->k->kind == K_RELAY)
		return set_relay(x);
	if (x->k->kind == K_ADDRS)
		return set_addrs(x);
	return need(x, &kw) < 0 || end(x) < 0 ? -1 : set_scalar(x, kw);
}

void conf_defaults(struct conf *c)
{
	struct ctx x = { .c = c, .name = "knobs.def" };
	char tok[64];
	size_t i;

	memset(c, 0, sizeof *c);
	snprintf(c->source, sizeof c->source, "%s", "(built-in defaults)");
	for (i = 0; i < NKNOBS; i++) {
		x.k = &knobs[i];
		if (x.k->kind >= K_HOSTNAME || x.k->dflt[0] == '\0')
			continue;
		snprintf(tok, sizeof tok, "%s", x.k->dflt);
		if (set_scalar(&x, tok) < 0)
			abort();	/* a bad default in knobs.def: test_conf catches it */
	}
	memcpy(c->domains[0], "localhost", sizeof "localhost");
	c->ndomains = 1;
	c->auth_mechs = AUTH_MECH_PLAIN | AUTH_MECH_LOGIN | AUTH_MECH_SCRAM_SHA256;
	snprintf(c->mail_auth_ignore, sizeof c->mail_auth_ignore, "127.0.0.0/8 ::1");
	for (i = 0; i < sizeof default_listeners / sizeof default_listeners[0]; i++)
		c->listeners[i] = (struct listener_conf){
			.port = default_listeners[i].port,
			.role = default_listeners[i].role,
			.tls = role_policy[default_listeners[i].role].tls,
			.auth = role_policy[default_listeners[i].role].auth,
			.is_default = true,
		};
	c->nlisteners = i;
}

int conf_load_mem(struct conf *c, const char *name, const char *text, size_t len,
		  char *err, size_t errlen)
{
	struct ctx x = { .c = c, .name = name, .err = err, .errlen = errlen };
	const char *nl;
	size_t pos = 0, n;

	if ((size_t)snprintf(c->source, sizeof c->source, "%s", name) >= sizeof c->source)
		return fail(&x, "file name longer than %zu bytes", sizeof c->source - 1);
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;	/* a byte order mark some editors write */
	while (pos < len) {
		x.line++;
		nl = memchr(text + pos, '\n', len - pos);
		n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (parse_line(&x, text + pos, n) < 0)
			return -1;
		pos += n + 1;
	}
	return 0;
}

int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct ctx x = { .c = c, .name = path, .err = err, .errlen = errlen };
	char chunk[4096];
	struct buf b;
	ssize_t n;
	int fd, e = 0, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(&x, "cannot read: %s", strerror(errno));
	buf_init(&b, FILE_MAX_BYTES);
	while ((n = read(fd, chunk, sizeof chunk)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			break;
		}
		if (buf_append(&b, chunk, (size_t)n) < 0) {
			e = (size_t)n > b.max - b.len ? EFBIG : ENOMEM;
			break;
		}
	}
	close(fd);
	if (e != 0)
		r = fail(&x, "cannot read: %s", strerror(e));
	else
		r = conf_load_mem(c, path, b.len ? (const char *)b.data : "", b.len, err, errlen);
	buf_free(&b);
	return r;
}

/* hostname from gethostname(), lower-cased and checked. */
static int system_hostname(struct ctx *x)
{
	char h[CONF_NAME_MAX];
	const char *why;

	if (gethostname(h, sizeof h) < 0)
		return fail(x, "cannot get the host name (%s); set hostname", strerror(errno));
	h[sizeof h - 1] = '\0';
	why = domain_problem(h);
	if (why != NULL)
		return fail(x, "the system host name " SHOWFMT " is not a valid domain (it %s); set hostname",
			    SHOW(h), why);
	lower(h);
	memcpy(x->c->hostname, h, strlen(h) + 1);
	return 0;
}

/* maildir = DATA_DIR/mail/%d/%u, with any '%' in data_dir doubled. */
static int default_maildir(struct ctx *x)
{
	static const char tail[] = "/mail/%d/%u";
	struct conf *c = x->c;
	size_t len = strlen(c->data_dir), n = 0, i;

	while (len > 1 && c->data_dir[len - 1] == '/')
		len--;
	for (i = 0; i < len && n + 2 < sizeof c->maildir; i++) {
		if (c->data_dir[i] == '%')
			c->maildir[n++] = '%';
		c->maildir[n++] = c->data_dir[i];
	}
	if (i < len || n + sizeof tail > sizeof c->maildir)
		return fail(x, "data_dir is too long for the default maildir; set deliver");
	memcpy(c->maildir + n, tail, sizeof tail);
	return 0;
}

/*
 * Read one dkim_sign key file into d->pem: like tls_key, a file others can
 * read is refused, and so is one that holds no usable key. Runs as root in
 * the parent before the fork (the queue process could not open it later).
 */
static int load_dkim_key(struct ctx *x, struct dkim_sign_conf *d)
{
	struct dkim_key *k;
	struct stat st;
	char why[256];
	ssize_t n;
	size_t len = 0;
	int fd;

	for (x->k = knobs; x->k->kind != K_DKIM; x->k++)
		;
	x->line = d->line;
	if ((fd = open(d->keyfile, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		fail(x, "key file %s: %s", d->keyfile, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		close(fd);
		return fail(x, "key file %s is readable by group or others (chmod 600 %s)", d->keyfile,
			    d->keyfile);
	}
	while (len < sizeof d->pem &&
	       ((n = read(fd, d->pem + len, sizeof d->pem - len)) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	close(fd);
	if (len == sizeof d->pem)
		return fail(x, "key file %s is larger than %zu bytes", d->keyfile, sizeof d->pem - 1);
	d->pem[len] = '\0';
	d->pem_len = len;
	if ((k = dkim_key_load((const uint8_t *)d->pem, len, why, sizeof why)) == NULL) {
		explicit_bzero(d->pem, sizeof d->pem);
		d->pem_len = 0;
		return fail(x, "key file %s: %s", d->keyfile, why);
	}
	dkim_key_free(k);
	return 0;
}

/* Whether two listeners would take the same address and port. */
static bool overlap(const struct listener_conf *a, const struct listener_conf *b)
{
	bool a6 = strchr(a->addr, ':') != NULL, b6 = strchr(b->addr, ':') != NULL;

	if (a->port != b->port)
		return false;
	return a->addr[0] == '\0' || b->addr[0] == '\0' || strcmp(a->addr, b->addr) == 0 ||
	       (a6 == b6 && (strcmp(a->addr, "0.0.0.0") == 0 || strcmp(a->addr, "::") == 0 ||
			     strcmp(b->addr, "0.0.0.0") == 0 || strcmp(b->addr, "::") == 0));
}

static const char *listener_text(const struct listener_conf *l, char *out, size_t cap)
{
	if (l->addr[0] == '\0')
		snprintf(out, cap, "port %u (all addresses)", (unsigned)l->port);
	else if (strchr(l->addr, ':') != NULL)
		snprintf(out, cap, "[%s]:%u", l->addr, (unsigned)l->port);
	else
		snprintf(out, cap, "%s:%u", l->addr, (unsigned)l->port);
	return out;
}

int conf_finish(struct conf *c, bool is_root, char *err, size_t errlen)
{
	struct ctx x = { .c = c, .name = c->source, .err = err, .errlen = errlen };
	struct listener_conf *l;
	char a[96], b[96];
	size_t i, j;

	if (c->hostname[0] == '\0' && system_hostname(&x) < 0)
		return -1;
	if (!c->domains_set && c->ndomains < CONF_MAX_DOMAINS &&
	    !conf_is_local_domain(c, c->hostname))
		memcpy(c->domains[c->ndomains++], c->hostname, strlen(c->hostname) + 1);
	if (c->maildir[0] == '\0' && default_maildir(&x) < 0)
		return -1;
	if (c->nlisteners == 0)
		return fail(&x, "no listener: nothing would accept mail");

	/* A certificate without its key (or the reverse) is half a setting. */
	if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0'))
		return fail(&x, c->tls_cert[0] ? "tls_cert is set but tls_key is not: give both, or neither for a self-signed certificate"
					       : "tls_key is set but tls_cert is not: give both, or neither for a self-signed certificate");
	for (i = 0; i < c->nlisteners; i++) {
		l = &c->listeners[i];
		x.line = l->line;
		if (l->is_default && !is_root && l->port < 1024)
			l->port = (uint16_t)(l->port + 10000);
		if (!is_root && l->port < 1024)
			return fail(&x, "port %u needs root (or CAP_NET_BIND_SERVICE)",
				    (unsigned)l->port);
		for (j = 0; j < i; j++)
			if (overlap(l, &c->listeners[j]))
				return fail(&x, "listen: %s overlaps %s on line %u",
					    listener_text(l, a, sizeof a),
					    listener_text(&c->listeners[j], b, sizeof b),
					    c->listeners[j].line);
	}
	for (i = 0; i < c->ndkim_sign; i++)
		if (load_dkim_key(&x, &c->dkim_sign[i]) < 0)
			return -1;
	if (c->authserv_id[0] == '\0')
		memcpy(c->authserv_id, c->hostname, strlen(c->hostname) + 1);
	return 0;
}

bool conf_folder_valid(const char *name, size_t len)
{
	if (len == 0 || len > CONF_FOLDER_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_')
			return false;
	return true;
}

/* The struct owns no memory; only the DKIM keys' text is wiped. */
void conf_free(struct conf *c)
{
	for (size_t i = 0; i < c->ndkim_sign && i < CONF_MAX_DKIM; i++)
		explicit_bzero(c->dkim_sign[i].pem, sizeof c->dkim_sign[i].pem);
}

const char *conf_role_name(enum listener_role r)
{
	return (size_t)r < NROLES ? role_names[r] : "unknown";
}

const char *conf_tls_name(enum listener_tls t)
{
	return (size_t)t < sizeof tls_names / sizeof tls_names[0] ? tls_names[t] : "unknown";
}

const char *conf_auth_name(enum listener_auth a)
{
	return (size_t)a < sizeof auth_names / sizeof auth_names[0] ? auth_names[a] : "unknown";
}

bool conf_is_local_domain(const struct conf *c, const char *domain)
{
	size_t i;

	if (domain == NULL)
		return false;
	for (i = 0; i < c->ndomains; i++)
		if (strcasecmp(c->domains[i], domain) == 0)
			return true;
	return false;
}

void conf_print_knobs(FILE *out)
{
	const struct knob *k;

	for (k = knobs; k < knobs + NKNOBS; k++) {
		fprintf(out, "%s %s\n    %s\n    default: %s", k->name, k->syntax, k->doc,
			k->dflt[0] ? k->dflt : "none");
		if (k->min != NULL)
			fprintf(out, "; range: %s to %s", k->min, k->max);
		fputs("\n\n", out);
	}
}
