/* smtp_cmd.c - SMTP command-line tokenizer and MAIL/RCPT/BDAT argument parsers. */
#include "smtp_cmd.h"

#include <string.h>

/* ---- replies ---------------------------------------------------------- */

static const struct smtp_reply rep_mail_syntax = {
	501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]"
};
static const struct smtp_reply rep_rcpt_syntax = {
	501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]"
};
static const struct smtp_reply rep_bdat_syntax = {
	501, "5.5.4", "Syntax: BDAT chunk-size [LAST]"
};
static const struct smtp_reply rep_param_syntax = {
	501, "5.5.4",
	"Malformed parameter: write KEYWORD or KEYWORD=VALUE, separated by spaces"
};
static const struct smtp_reply rep_param_dup = {
	501, "5.5.4", "Duplicate parameter: give each parameter once"
};
static const struct smtp_reply rep_param_unknown = {
	555, "5.5.4", "Unsupported parameter"
};
static const struct smtp_reply rep_dsn_unsupported = {
	555, "5.5.4", "DSN parameters (RET, ENVID, NOTIFY, ORCPT) are not supported here"
};
static const struct smtp_reply rep_smtputf8_unsupported = {
	555, "5.5.4", "SMTPUTF8 is not supported here"
};
static const struct smtp_reply rep_binarymime_unsupported = {
	555, "5.5.4", "BODY=BINARYMIME is not supported here; use 7BIT or 8BITMIME"
};
static const struct smtp_reply rep_size = {
	501, "5.5.4", "SIZE must be a number of octets (at most 20 digits)"
};
static const struct smtp_reply rep_body = {
	501, "5.5.4", "BODY must be 7BIT, 8BITMIME or BINARYMIME"
};
static const struct smtp_reply rep_smtputf8_value = {
	501, "5.5.4", "SMTPUTF8 takes no value"
};
static const struct smtp_reply rep_ret = {
	501, "5.5.4", "RET must be FULL or HDRS"
};
static const struct smtp_reply rep_envid = {
	501, "5.5.4", "ENVID must be xtext of 1 to 100 characters"
};
static const struct smtp_reply rep_auth = {
	501, "5.5.4", "AUTH= must be <> or xtext of at most 500 characters"
};
static const struct smtp_reply rep_notify = {
	501, "5.5.4",
	"NOTIFY must be NEVER, or a list of SUCCESS, FAILURE, DELAY each at most once"
};
static const struct smtp_reply rep_orcpt = {
	501, "5.5.4", "ORCPT must be addr-type;xtext of at most 500 characters"
};
static const struct smtp_reply rep_mail_utf8 = {
	553, "5.6.7", "Non-ASCII sender address needs the SMTPUTF8 parameter"
};
static const struct smtp_reply rep_rcpt_utf8 = {
	553, "5.6.7", "Non-ASCII recipient address needs SMTPUTF8 in MAIL FROM"
};

/*
 * One reply per addr_err for each path; the words after the colon are
 * addr_strerror()'s (the unit tests check that they stay the same).
 */
#define ADDR_REPLIES(enh, what)                                               \
	{                                                                     \
		[ADDR_OK] = { 501, enh, what ": unknown error" },             \
		[ADDR_ESYNTAX] = { 501, enh,                                  \
				   what ": expected <local-part@domain> with " \
					"no spaces or stray characters" },    \
		[ADDR_ETOOLONG] = { 501, enh,                                 \
				    what ": address too long (local part 64, " \
					 "domain 255, path 256 octets at "    \
					 "most)" },                           \
		[ADDR_ENODOMAIN] = { 501, enh, what ": address has no @domain" }, \
		[ADDR_EDOMAIN] = { 501, enh,                                  \
				   what ": malformed domain or address "       \
					"literal" },                          \
		[ADDR_ELOCAL] = { 501, enh, what ": malformed local part" },  \
		[ADDR_E8BIT] = { 501, enh,                                    \
				 what ": non-ASCII address needs SMTPUTF8 "    \
				      "and valid UTF-8" },                    \
		[ADDR_ENULL] = { 501, enh,                                    \
				 what ": null address <> not allowed here" }, \
	}

static const struct smtp_reply rep_mail_addr[] =
	ADDR_REPLIES("5.1.7", "Bad sender address syntax");
static const struct smtp_reply rep_rcpt_addr[] =
	ADDR_REPLIES("5.1.3", "Bad recipient address syntax");

static const struct smtp_reply *addr_reply(const struct smtp_reply *table,
					   enum addr_err e)
{
	if ((unsigned)e > ADDR_ENULL)
		e = ADDR_OK;
	return &table[e];
}

static int fail(const struct smtp_reply **rep, const struct smtp_reply *r)
{
	*rep = r;
	return -1;
}

/* ---- small helpers ---------------------------------------------------- */

static bool is_alpha(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(uint8_t ch)
{
	return ch >= '0' && ch <= '9';
}

static struct slice slice_skip(struct slice s, size_t n)
{
	return (struct slice){ s.p + n, s.len - n };
}

/* 1*20DIGIT that fits in uint64_t (RFC 1870 3, RFC 3030 2). */
static bool parse_u64(struct slice s, uint64_t *v)
{
	uint64_t x = 0;

	if (s.len < 1 || s.len > 20)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		if (!is_digit(s.p[i]))
			return false;
		if (__builtin_mul_overflow(x, 10, &x) ||
		    __builtin_add_overflow(x, (uint64_t)(s.p[i] - '0'), &x))
			return false;
	}
	*v = x;
	return true;
}

/* ---- the command line ------------------------------------------------- */

static const struct {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{ "HELO", SMTP_HELO },	   { "EHLO", SMTP_EHLO },
	{ "MAIL", SMTP_MAIL },	   { "RCPT", SMTP_RCPT },
	{ "DATA", SMTP_DATA },	   { "BDAT", SMTP_BDAT },
	{ "RSET", SMTP_RSET },	   { "NOOP", SMTP_NOOP },
	{ "QUIT", SMTP_QUIT },	   { "VRFY", SMTP_VRFY },
	{ "EXPN", SMTP_EXPN },	   { "HELP", SMTP_HELP },
	{ "STARTTLS", SMTP_STARTTLS }, { "AUTH", SMTP_AUTH },
	{ "ETRN", SMTP_ETRN },
};

/* HTTP request methods: a browser or proxy talking to an SMTP port
 * (cross-protocol attacks, ALPACA). */
static const char *const http_verbs[] = {
	"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE",
};

#define VERB_MAX 16

void smtp_cmd_parse(const uint8_t *line, size_t len, struct smtp_cmd *out)
{
	struct slice l = { line, len };
	size_t i = 0;

	/* Trailing spaces and tabs mean nothing (and "QUIT \t" is QUIT). */
	while (l.len > 0 && (l.p[l.len - 1] == ' ' || l.p[l.len - 1] == '\t'))
		l.len--;
	while (i < l.len && l.p[i] != ' ')
		i++;
	out->verb = SMTP_UNKNOWN;
	out->verb_text = (struct slice){ l.p, i };
	if (i < l.len)
		out->arg = slice_skip(l, i + 1); /* after the single SP */
	else
		out->arg = (struct slice){ l.p, 0 };

	if (slice_startswith_nocase(l, "host:") ||
	    slice_startswith_nocase(l, "user-agent:")) {
		out->verb = SMTP_HTTP;
		return;
	}
	for (size_t k = 0; k < sizeof(http_verbs) / sizeof(http_verbs[0]); k++) {
		if (slice_eq_nocase(out->verb_text, http_verbs[k])) {
			out->verb = SMTP_HTTP;
			return;
		}
	}

	/* Verbs are short and alphabetic (RFC 5321 4.1.1); anything else is
	 * unknown without looking further. */
	if (i == 0 || i > VERB_MAX)
		return;
	for (size_t k = 0; k < i; k++)
		if (!is_alpha(l.p[k]))
			return;
	for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++) {
		if (slice_eq_nocase(out->verb_text, verbs[k].name)) {
			out->verb = verbs[k].verb;
			return;
		}
	}
}

/* ---- ESMTP parameters ------------------------------------------------- */

struct param {
	struct slice key;
	struct slice val;
	bool has_val;
};

/*
 * The next esmtp-param (RFC 5321 4.1.2):
 *   esmtp-param   = esmtp-keyword ["=" esmtp-value]
 *   esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 *   esmtp-value   = 1*(%d33-60 / %d62-126)  (=/ UTF8-non-ascii, RFC 6531 3.3)
 * after one or more SP. Returns 1 with *pa filled, 0 at the end, -1 if the
 * parameter is malformed. *rest advances past what was read.
 */
static int next_param(struct slice *rest, struct param *pa)
{
	size_t i = 0, n;

	while (i < rest->len && rest->p[i] == ' ')
		i++;
	if (i == rest->len) {
		*rest = slice_skip(*rest, i);
		return 0;
	}
	n = i;
	while (n < rest->len && rest->p[n] != ' ')
		n++;
	struct slice tok = { rest->p + i, n - i };
	*rest = slice_skip(*rest, n);

	size_t k = 0;
	while (k < tok.len && tok.p[k] != '=')
		k++;
	pa->key = (struct slice){ tok.p, k };
	pa->has_val = k < tok.len;
	pa->val = pa->has_val ? slice_skip(tok, k + 1)
			      : (struct slice){ tok.p + k, 0 };

	if (pa->key.len == 0 || !(is_alpha(pa->key.p[0]) || is_digit(pa->key.p[0])))
		return -1;
	for (size_t j = 1; j < pa->key.len; j++) {
		uint8_t ch = pa->key.p[j];
		if (!(is_alpha(ch) || is_digit(ch) || ch == '-'))
			return -1;
	}
	if (pa->has_val && pa->val.len == 0)
		return -1;
	for (size_t j = 0; j < pa->val.len; j++) {
		uint8_t ch = pa->val.p[j];
		if (ch < 33 || ch == '=' || ch == 127)
			return -1;
	}
	return 1;
}

bool smtp_xtext_valid(struct slice s)
{
	for (size_t i = 0; i < s.len; i++) {
		uint8_t ch = s.p[i];

		if (ch == '+') {
			/* hexchar = "+" 2(%x30-39 / %x41-46): upper case only */
			if (s.len - i < 3)
				return false;
			for (size_t j = 1; j <= 2; j++) {
				uint8_t h = s.p[i + j];
				if (!is_digit(h) && !(h >= 'A' && h <= 'F'))
					return false;
			}
			i += 2;
		} else if (ch < 33 || ch > 126 || ch == '=') {
			return false; /* xchar: "!".."~" except "+" and "=" */
		}
	}
	return true;
}

static uint8_t hexval(uint8_t h)
{
	return (uint8_t)(is_digit(h) ? h - '0' : h - 'A' + 10);
}

ssize_t smtp_xtext_decode(struct slice s, char *out, size_t cap)
{
	size_t n = 0;

	if (!smtp_xtext_valid(s))
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		uint8_t ch = s.p[i];

		if (ch == '+') {
			ch = (uint8_t)(hexval(s.p[i + 1]) << 4 | hexval(s.p[i + 2]));
			i += 2;
		}
		/* A NUL would cut the C string short: never a valid address. */
		if (ch == '\0' || n + 1 >= cap)
			return -1;
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return (ssize_t)n;
}

/* Copy a checked value into a NUL-terminated field of size cap. */
static void copy_value(char *dst, size_t cap, struct slice v)
{
	/* callers checked v.len < cap */
	if (v.len >= cap)
		return;
	memcpy(dst, v.p, v.len);
	dst[v.len] = '\0';
}

/* After the path: nothing, or SP-separated parameters. Returns the
 * parameters, or false if something other than SP follows the '>'. */
static bool params_after_path(struct slice arg, size_t used, struct slice *rest)
{
	*rest = slice_skip(arg, used);
	return rest->len == 0 || rest->p[0] == ' ';
}

enum {
	PM_SIZE = 1 << 0,
	PM_BODY = 1 << 1,
	PM_SMTPUTF8 = 1 << 2,
	PM_RET = 1 << 3,
	PM_ENVID = 1 << 4,
	PM_AUTH = 1 << 5,
	PR_NOTIFY = 1 << 6,
	PR_ORCPT = 1 << 7,
};

/* Which known keyword, 0 if unknown. */
static unsigned param_bit(struct slice key, bool mail)
{
	static const struct {
		const char *name;
		unsigned bit;
		bool mail;
	} known[] = {
		{ "SIZE", PM_SIZE, true },     { "BODY", PM_BODY, true },
		{ "SMTPUTF8", PM_SMTPUTF8, true }, { "RET", PM_RET, true },
		{ "ENVID", PM_ENVID, true },   { "AUTH", PM_AUTH, true },
		{ "NOTIFY", PR_NOTIFY, false }, { "ORCPT", PR_ORCPT, false },
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i].mail == mail && slice_eq_nocase(key, known[i].name))
			return known[i].bit;
	return 0;
}

/* One MAIL parameter whose keyword is known and not seen before. */
static const struct smtp_reply *mail_param(const struct param *pa,
					   unsigned bit, unsigned flags,
					   struct mail_params *mp)
{
	switch (bit) {
	case PM_SIZE: /* RFC 1870 3: SIZE=1*20DIGIT; 0 means unknown */
		if (!pa->has_val || !parse_u64(pa->val, &mp->size))
			return &rep_size;
		mp->has_size = true;
		return NULL;
	case PM_BODY: /* RFC 6152 2, RFC 3030 3 */
		if (!pa->has_val)
			return &rep_body;
		if (slice_eq_nocase(pa->val, "7BIT"))
			mp->body = BODY_7BIT;
		else if (slice_eq_nocase(pa->val, "8BITMIME"))
			mp->body = BODY_8BITMIME;
		else if (slice_eq_nocase(pa->val, "BINARYMIME")) {
			if (!(flags & SMTP_PARAM_BINARYMIME))
				return &rep_binarymime_unsupported;
			mp->body = BODY_BINARYMIME;
		} else
			return &rep_body;
		return NULL;
	case PM_SMTPUTF8: /* RFC 6531 3.4: no value */
		if (!(flags & SMTP_PARAM_SMTPUTF8))
			return &rep_smtputf8_unsupported;
		if (pa->has_val)
			return &rep_smtputf8_value;
		mp->smtputf8 = true;
		return NULL;
	case PM_RET: /* RFC 3461 4.3 */
		if (!(flags & SMTP_PARAM_DSN))
			return &rep_dsn_unsupported;
		if (!pa->has_val)
			return &rep_ret;
		if (slice_eq_nocase(pa->val, "FULL"))
			mp->ret = DSN_RET_FULL;
		else if (slice_eq_nocase(pa->val, "HDRS"))
			mp->ret = DSN_RET_HDRS;
		else
			return &rep_ret;
		return NULL;
	case PM_ENVID: /* RFC 3461 4.4: xtext, at most 100 characters */
		if (!(flags & SMTP_PARAM_DSN))
			return &rep_dsn_unsupported;
		if (!pa->has_val || pa->val.len > SMTP_ENVID_MAX ||
		    !smtp_xtext_valid(pa->val))
			return &rep_envid;
		copy_value(mp->envid, sizeof(mp->envid), pa->val);
		return NULL;
	case PM_AUTH: /* RFC 4954 5: AUTH=xtext, "<>" for unknown */
		if (!pa->has_val || pa->val.len > SMTP_AUTHPARAM_MAX ||
		    !smtp_xtext_valid(pa->val))
			return &rep_auth;
		copy_value(mp->auth, sizeof(mp->auth), pa->val);
		mp->has_auth = true;
		return NULL;
	}
	return &rep_param_unknown;
}

/* NOTIFY="NEVER" / 1#("SUCCESS" / "FAILURE" / "DELAY") (RFC 3461 4.1). */
static bool parse_notify(struct slice v, unsigned *out)
{
	unsigned bits = 0;
	size_t i = 0;

	for (;;) {
		size_t j = i;
		unsigned b;

		while (j < v.len && v.p[j] != ',')
			j++;
		struct slice item = { v.p + i, j - i };
		if (slice_eq_nocase(item, "NEVER"))
			b = DSN_NOTIFY_NEVER;
		else if (slice_eq_nocase(item, "SUCCESS"))
			b = DSN_NOTIFY_SUCCESS;
		else if (slice_eq_nocase(item, "FAILURE"))
			b = DSN_NOTIFY_FAILURE;
		else if (slice_eq_nocase(item, "DELAY"))
			b = DSN_NOTIFY_DELAY;
		else
			return false; /* unknown or empty item */
		if (bits & b)
			return false;
		bits |= b;
		if (j == v.len)
			break;
		i = j + 1;
	}
	/* "NEVER" ... MUST NOT be combined with any other keyword. */
	if ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER)
		return false;
	*out = bits;
	return true;
}

/* atext, RFC 5322 3.2.3. */
static bool is_atext(uint8_t ch)
{
	if (is_alpha(ch) || is_digit(ch))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

/* ORCPT=addr-type ";" xtext, addr-type an RFC 5322 atom (RFC 3461 4.2). */
static bool orcpt_valid(struct slice v)
{
	size_t semi = 0;

	if (v.len > SMTP_ORCPT_MAX)
		return false;
	while (semi < v.len && v.p[semi] != ';')
		semi++;
	if (semi == 0 || semi == v.len || semi + 1 == v.len)
		return false; /* empty addr-type, no ';', empty address */
	for (size_t i = 0; i < semi; i++) {
		if (!is_atext(v.p[i]))
			return false;
	}
	return smtp_xtext_valid(slice_skip(v, semi + 1));
}

/* One RCPT parameter whose keyword is known and not seen before. */
static const struct smtp_reply *rcpt_param(const struct param *pa,
					   unsigned bit, unsigned flags,
					   struct rcpt_params *rp)
{
	if (!(flags & SMTP_PARAM_DSN))
		return &rep_dsn_unsupported;
	switch (bit) {
	case PR_NOTIFY:
		if (!pa->has_val || !parse_notify(pa->val, &rp->notify))
			return &rep_notify;
		return NULL;
	case PR_ORCPT:
		if (!pa->has_val || !orcpt_valid(pa->val))
			return &rep_orcpt;
		copy_value(rp->orcpt, sizeof(rp->orcpt), pa->val);
		return NULL;
	}
	return &rep_param_unknown;
}

/* Run the parameters in `rest` through mail_param or rcpt_param. */
static const struct smtp_reply *parse_params(struct slice rest, bool mail,
					     unsigned flags,
					     struct mail_params *mp,
					     struct rcpt_params *rp)
{
	struct param pa;
	unsigned seen = 0;
	int r;

	while ((r = next_param(&rest, &pa)) > 0) {
		unsigned bit = param_bit(pa.key, mail);
		const struct smtp_reply *e;

		if (bit == 0)
			return &rep_param_unknown; /* RFC 5321 4.1.1.11 */
		if (seen & bit)
			return &rep_param_dup;
		seen |= bit;
		e = mail ? mail_param(&pa, bit, flags, mp)
			 : rcpt_param(&pa, bit, flags, rp);
		if (e != NULL)
			return e;
	}
	return r < 0 ? &rep_param_syntax : NULL;
}

/* ---- MAIL, RCPT, BDAT ------------------------------------------------- */

int smtp_parse_mail(struct slice arg, unsigned flags, struct mailbox *from,
		    struct mail_params *mp, const struct smtp_reply **rep)
{
	struct slice rest;
	size_t used;
	bool need_utf8 = false;
	enum addr_err e;
	const struct smtp_reply *r;

	memset(mp, 0, sizeof(*mp));
	memset(from, 0, sizeof(*from));
	*rep = NULL;
	if (!slice_startswith_nocase(arg, "FROM:"))
		return fail(rep, &rep_mail_syntax);
	arg = slice_skip(arg, 5);

	/*
	 * Whether the path may carry UTF-8 depends on a parameter that comes
	 * after it (RFC 6531 3.4). Parse it as ASCII first; if it is not,
	 * parse it again allowing UTF-8 and accept that only once the
	 * parameters have shown SMTPUTF8.
	 */
	e = addr_parse_path(arg.p, arg.len, ADDR_NULL_OK, from, &used);
	if (e == ADDR_E8BIT) {
		if (!(flags & SMTP_PARAM_SMTPUTF8))
			return fail(rep, &rep_mail_utf8); /* RFC 6531 3.5 */
		e = addr_parse_path(arg.p, arg.len, ADDR_NULL_OK | ADDR_UTF8_OK,
				    from, &used);
		need_utf8 = true;
	}
	if (e != ADDR_OK)
		return fail(rep, addr_reply(rep_mail_addr, e));
	if (!params_after_path(arg, used, &rest))
		return fail(rep, &rep_mail_syntax);
	r = parse_params(rest, true, flags, mp, NULL);
	if (r != NULL)
		return fail(rep, r);
	if (need_utf8 && !mp->smtputf8)
		return fail(rep, &rep_mail_utf8);
	return 0;
}

int smtp_parse_rcpt(struct slice arg, unsigned flags, struct mailbox *to,
		    struct rcpt_params *rp, const struct smtp_reply **rep)
{
	struct slice rest;
	size_t used;
	unsigned aflags = ADDR_POSTMASTER_OK;
	enum addr_err e;
	const struct smtp_reply *r;

	memset(rp, 0, sizeof(*rp));
	memset(to, 0, sizeof(*to));
	*rep = NULL;
	if (!slice_startswith_nocase(arg, "TO:"))
		return fail(rep, &rep_rcpt_syntax);
	arg = slice_skip(arg, 3);

	/* The session passes SMTP_PARAM_SMTPUTF8 for RCPT only when this
	 * transaction's MAIL had SMTPUTF8 (RFC 6531 3.4). */
	if (flags & SMTP_PARAM_SMTPUTF8)
		aflags |= ADDR_UTF8_OK;
	e = addr_parse_path(arg.p, arg.len, aflags, to, &used);
	if (e == ADDR_E8BIT && !(flags & SMTP_PARAM_SMTPUTF8))
		return fail(rep, &rep_rcpt_utf8); /* RFC 6531 3.5 */
	if (e != ADDR_OK)
		return fail(rep, addr_reply(rep_rcpt_addr, e));
	if (!params_after_path(arg, used, &rest))
		return fail(rep, &rep_rcpt_syntax);
	r = parse_params(rest, false, flags, NULL, rp);
	if (r != NULL)
		return fail(rep, r);
	return 0;
}

int smtp_parse_bdat(struct slice arg, uint64_t *size, bool *last,
		    const struct smtp_reply **rep)
{
	size_t i = 0;
	uint64_t n;

	*rep = NULL;
	*size = 0;
	*last = false;
	while (i < arg.len && is_digit(arg.p[i]))
		i++;
	if (!parse_u64((struct slice){ arg.p, i }, &n))
		return fail(rep, &rep_bdat_syntax);
	struct slice rest = slice_skip(arg, i);
	while (rest.len > 0 && rest.p[rest.len - 1] == ' ')
		rest.len--;
	if (rest.len > 0) {
		/* SP end-marker (RFC 3030 2); extra spaces tolerated */
		size_t sp = 0;
		while (sp < rest.len && rest.p[sp] == ' ')
			sp++;
		if (sp == 0 || !slice_eq_nocase(slice_skip(rest, sp), "LAST"))
			return fail(rep, &rep_bdat_syntax);
		*last = true;
	}
	*size = n;
	return 0;
}
