/*
 * spf.c - check_host() (RFC 7208 4-6) as a state machine over an
 * asynchronous DNS provider; see spf.h.
 *
 * One step() at a time advances the evaluation until it has asked
 * questions; the answers land in slots, and when the last one is in, run()
 * steps again. A frame is one check_host(): the top one for the checked
 * domain, one more per include: under way; redirect= replaces the frame.
 */
#include "spf.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"

#define FRAMES_MAX (SPF_LOOKUP_MAX + 2)	/* every include costs a lookup */

enum qkind { Q_TXT, Q_ADDR, Q_MX, Q_PTR };

/* What the answer in a slot is for. */
enum purpose {
	P_RECORD,	/* TXT: the SPF record of the top frame's domain */
	P_EXP,		/* TXT: the exp= text */
	P_MATCH,	/* A/AAAA: match the client with s->cidr (a, mx hosts) */
	P_EXISTS,	/* A: any address */
	P_VALIDATE,	/* A/AAAA: the client's exact address (ptr validation) */
	P_MX,		/* MX */
	P_PTR,		/* PTR */
};

enum state {
	ST_FETCH,	/* ask the top frame's TXT */
	ST_RECORD,	/* TXT answered */
	ST_TERMS,	/* evaluate the next term */
	ST_MECH,	/* the DNS mechanism in frame->cur, counted, not yet asked */
	ST_A,		/* a: answered */
	ST_EXISTS,	/* exists: answered */
	ST_MX,		/* mx: MX answered */
	ST_MXADDR,	/* mx: host addresses answered */
	ST_REDIRECT,	/* redirect=, counted, not yet expanded */
	ST_PTRQ,	/* ask PTR, then go back to s->resume */
	ST_PTRANS,	/* PTR answered */
	ST_PTRVAL,	/* validation answered */
	ST_EXP,		/* fail: expand exp= and ask it */
	ST_EXPANS,	/* exp= TXT answered */
	ST_EXPTEXT,	/* expand the explanation in s->txt */
	ST_DEFEXP,	/* expand the default explanation */
};

struct spf_query {
	struct spf *s;		/* NULL once spf_free ran: the answer is dropped */
	enum qkind kind;
	enum purpose purpose;
	unsigned slot;
};

struct slot {
	enum dns_status status;
	bool match;
	char error[128];
};

struct frame {
	char domain[SPF_NAME_MAX + 1];	/* <domain>, no trailing dot */
	char *rec;			/* the record (owned), rec_len octets */
	size_t rec_len;
	struct spf_record info;		/* slices into rec */
	size_t pos;			/* the next term */
	struct spf_term cur;		/* the term under evaluation */
	bool include;			/* check_host() of an include: */
	bool redirected;		/* reached by redirect=: none is permerror */
};

struct spf {
	struct spf_dns dns;
	void (*done)(void *arg, const struct spf_result *r);
	void *arg;

	/* the request, normalised */
	int family;
	uint8_t ip[16];
	struct sockaddr_storage sa;	/* the unmapped address, for ptr */
	char *sender, *local, *sender_domain, *helo, *receiver, *default_exp;
	time_t now;
	enum spf_identity identity;

	/* evaluation */
	enum state state, resume;
	struct frame frame[FRAMES_MAX];
	unsigned depth;
	unsigned lookups, voids;
	bool started, running, finished, reported;
	unsigned cidr;			/* for P_MATCH */

	struct spf_query *out[SPF_BATCH_MAX];
	unsigned pending;
	struct slot slot[SPF_BATCH_MAX];
	unsigned nslots;

	/* copies of answers */
	char *txt;			/* P_RECORD: the one SPF record; P_EXP: the one record */
	size_t txt_len;
	unsigned ntxt;			/* P_RECORD: SPF records seen; P_EXP: records seen */
	char mx[SPF_MX_NAMES_MAX][SPF_NAME_MAX + 1];
	size_t nmx;			/* MX records in the answer (may exceed the array) */
	bool null_mx;

	/* the validated names of the client (5.5), computed once */
	bool ptr_done;
	enum dns_status ptr_status;
	char ptr[SPF_PTR_NAMES_MAX][SPF_NAME_MAX + 1];
	bool ptr_valid[SPF_PTR_NAMES_MAX];
	unsigned nptr;

	char target[SPF_NAME_MAX + 1];	/* the name the current term asks */
	struct spf_result result;
};

const char *spf_result_name(enum spf_result_code c)
{
	switch (c) {
	case SPF_NONE: return "none";
	case SPF_NEUTRAL: return "neutral";
	case SPF_PASS: return "pass";
	case SPF_FAIL: return "fail";
	case SPF_SOFTFAIL: return "softfail";
	case SPF_TEMPERROR: return "temperror";
	case SPF_PERMERROR: return "permerror";
	}
	return "?";
}

/* ------------------------------------------------------------------ */
/* small helpers */

static bool ieq(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a + 32) : *a;
		char y = (*b >= 'A' && *b <= 'Z') ? (char)(*b + 32) : *b;

		if (x != y)
			return false;
	}
	return *a == *b;
}

/* name equals domain or ends with "." domain, ignoring case. */
static bool in_domain(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);

	if (n < d)
		return false;
	if (n > d && name[n - d - 1] != '.')
		return false;
	return ieq(name + n - d, domain);
}

static bool ip_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* The client's address in a, when a is of the client's family, within bits. */
static bool addr_match(const struct spf *s, const struct sockaddr_storage *a, unsigned bits)
{
	if (s->family == AF_INET && a->ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;

		return ip_match(s->ip, (const uint8_t *)&v4->sin_addr, bits);
	}
	if (s->family == AF_INET6 && a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;

		return ip_match(s->ip, v6->sin6_addr.s6_addr, bits);
	}
	return false;
}

static struct frame *top(struct spf *s)
{
	return &s->frame[s->depth - 1];
}

static void frame_clear(struct frame *f)
{
	free(f->rec);
	memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------ */
/* ending */

static void finish(struct spf *s)
{
	s->finished = true;
}

static void problem(struct spf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct spf *s, const char *fmt, ...)
{
	char buf[SPF_PROBLEM_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	str_copy_printable(s->result.problem, sizeof s->result.problem, buf, strlen(buf));
}

/* temperror or permerror: the whole check ends (RFC 7208 4.6, 5, 5.2). */
static void fail_with(struct spf *s, enum spf_result_code code)
{
	s->result.code = code;
	s->result.mechanism[0] = '\0';
	finish(s);
}

static void term_text(const struct spf_term *t, char *out, size_t cap)
{
	str_copy_printable(out, cap, (const char *)t->text.p, t->text.len);
}

static void permerror_term(struct spf *s, const char *what)
{
	char t[64];

	term_text(&top(s)->cur, t, sizeof t);
	problem(s, "%s: %s (in the record of %s)", t, what, top(s)->domain);
	fail_with(s, SPF_PERMERROR);
}

static void temperror_slot(struct spf *s, const char *what, const char *name, unsigned i)
{
	problem(s, "DNS error for %s %s: %s", what, name, s->slot[i].error);
	fail_with(s, SPF_TEMPERROR);
}

/* The frame's check_host() gives code (after a match, or neutral by default). */
static void frame_result(struct spf *s, enum spf_result_code code, const struct spf_term *matched)
{
	struct frame *f = top(s);

	if (!f->include) {
		s->result.code = code;
		if (matched != NULL)
			term_text(matched, s->result.mechanism, sizeof s->result.mechanism);
		else
			memcpy(s->result.mechanism, "default", sizeof "default");
		if (code == SPF_FAIL)
			s->state = ST_EXP;
		else
			finish(s);
		return;
	}
	/* the include: in the parent (5.2) */
	frame_clear(f);
	s->depth--;
	f = top(s);
	if (code == SPF_PASS)
		frame_result(s, f->cur.qualifier, &f->cur);
	else
		s->state = ST_TERMS;	/* fail, softfail, neutral: no match */
}

static void matched(struct spf *s)
{
	struct frame *f = top(s);

	frame_result(s, f->cur.qualifier, &f->cur);
}

static void no_match(struct spf *s)
{
	s->state = ST_TERMS;
}

/* A void lookup (4.6.4): false when it was one too many (permerror set). */
static bool count_void(struct spf *s)
{
	if (++s->voids > SPF_VOID_MAX) {
		permerror_term(s, "more than 2 void lookups");
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* asking */

static void run(struct spf *s);

static void ask(struct spf *s, enum qkind kind, enum purpose purpose, unsigned slot,
		const char *name)
{
	struct spf_query *q = malloc(sizeof *q);
	struct slot *sl = &s->slot[slot];
	int rc = -1;

	memset(sl, 0, sizeof *sl);
	sl->status = DNS_TEMPFAIL;
	if (q == NULL) {
		snprintf(sl->error, sizeof sl->error, "out of memory");
		return;
	}
	q->s = s;
	q->kind = kind;
	q->purpose = purpose;
	q->slot = slot;
	s->out[slot] = q;
	s->pending++;
	switch (kind) {
	case Q_TXT:
		rc = s->dns.txt != NULL ? s->dns.txt(s->dns.ctx, name, q) : -1;
		break;
	case Q_ADDR:
		rc = s->dns.addr != NULL
			? s->dns.addr(s->dns.ctx, name, purpose == P_EXISTS ? AF_INET : s->family, q)
			: -1;
		break;
	case Q_MX:
		rc = s->dns.mx != NULL ? s->dns.mx(s->dns.ctx, name, q) : -1;
		break;
	case Q_PTR:
		rc = s->dns.ptr != NULL ? s->dns.ptr(s->dns.ctx, &s->sa, q) : -1;
		break;
	}
	if (rc != 0) {
		/* not asked: nothing will answer q */
		if (s->out[slot] != q)
			tern_bug("spf: a DNS provider answered and returned -1");
		s->out[slot] = NULL;
		s->pending--;
		free(q);
		snprintf(sl->error, sizeof sl->error, "could not ask");
	}
}

/* Takes q out of its evaluation: the evaluation to update, or NULL if it is gone. */
static struct spf *take(struct spf_query *q, enum qkind kind)
{
	struct spf *s = q->s;

	if (q->kind != kind)
		tern_bug("spf: answer of kind %d for a query of kind %d", (int)kind, (int)q->kind);
	if (s == NULL) {
		free(q);
		return NULL;
	}
	if (q->slot >= SPF_BATCH_MAX || s->out[q->slot] != q)
		tern_bug("spf: answer for a query not outstanding");
	s->out[q->slot] = NULL;
	s->pending--;
	return s;
}

static void answered(struct spf *s, struct spf_query *q)
{
	free(q);
	if (s->pending == 0)
		run(s);
}

static void set_status(struct slot *sl, enum dns_status st, const char *error)
{
	sl->status = st;
	if (st != DNS_OK)
		snprintf(sl->error, sizeof sl->error, "%.16s%s%.100s", dns_status_name(st),
			 error != NULL && error[0] != '\0' ? ", " : "",
			 error != NULL ? error : "");
}

void spf_answer_txt(void *query, const struct dns_txt_result *r)
{
	struct spf_query *q = query;
	struct spf *s = take(q, Q_TXT);
	struct slot *sl;

	if (s == NULL)
		return;
	sl = &s->slot[q->slot];
	set_status(sl, r->status, r->error);
	free(s->txt);
	s->txt = NULL;
	s->ntxt = 0;
	if (r->status == DNS_OK) {
		for (size_t i = 0; i < r->n; i++) {
			const struct dns_txt *t = &r->txt[i];

			if (q->purpose == P_RECORD && !spf_is_record((const uint8_t *)t->text, t->len))
				continue;
			if (++s->ntxt > 1)
				continue;
			s->txt = malloc(t->len + 1);
			if (s->txt == NULL) {
				set_status(sl, DNS_TEMPFAIL, "out of memory");
				break;
			}
			if (t->len > 0)
				memcpy(s->txt, t->text, t->len);
			s->txt[t->len] = '\0';
			s->txt_len = t->len;
		}
	}
	answered(s, q);
}

void spf_answer_addr(void *query, const struct dns_addr_result *r)
{
	struct spf_query *q = query;
	struct spf *s = take(q, Q_ADDR);
	struct slot *sl;

	if (s == NULL)
		return;
	sl = &s->slot[q->slot];
	set_status(sl, r->status, r->error);
	sl->match = false;
	if (r->status == DNS_OK) {
		if (r->n == 0)
			set_status(sl, DNS_NODATA, "no addresses");
		for (size_t i = 0; i < r->n && !sl->match; i++) {
			switch (q->purpose) {
			case P_EXISTS:
				sl->match = true;
				break;
			case P_MATCH:
				sl->match = addr_match(s, &r->addr[i], s->cidr);
				break;
			default:
				sl->match = addr_match(s, &r->addr[i], s->family == AF_INET ? 32 : 128);
				break;
			}
		}
	}
	answered(s, q);
}

/* A name from an answer into out: without a trailing dot; false if unusable. */
static bool copy_name(char out[SPF_NAME_MAX + 1], const char *name)
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > SPF_NAME_MAX) {
		out[0] = '\0';
		return false;
	}
	memcpy(out, name, n);
	out[n] = '\0';
	return true;
}

void spf_answer_mx(void *query, const struct dns_mx_result *r)
{
	struct spf_query *q = query;
	struct spf *s = take(q, Q_MX);

	if (s == NULL)
		return;
	set_status(&s->slot[q->slot], r->status, r->error);
	s->nmx = 0;
	s->null_mx = false;
	if (r->status == DNS_OK) {
		s->null_mx = r->null_mx;
		s->nmx = r->null_mx ? 0 : r->n;
		for (size_t i = 0; i < s->nmx && i < SPF_MX_NAMES_MAX; i++)
			copy_name(s->mx[i], r->mx[i].host);
	}
	answered(s, q);
}

void spf_answer_ptr(void *query, enum dns_status status, const char *const *names, size_t n)
{
	struct spf_query *q = query;
	struct spf *s = take(q, Q_PTR);

	if (s == NULL)
		return;
	set_status(&s->slot[q->slot], status, NULL);
	s->nptr = 0;
	if (status == DNS_OK) {
		/* 4.6.4: the names past the first 10 are ignored */
		for (size_t i = 0; i < n && s->nptr < SPF_PTR_NAMES_MAX; i++) {
			if (copy_name(s->ptr[s->nptr], names[i]))
				s->nptr++;
		}
	}
	answered(s, q);
}

/* ------------------------------------------------------------------ */
/* macros */

/* %{p}: <domain> itself, a subdomain of it, any validated name, "unknown" (7.3). */
static const char *ptr_value(const struct spf *s, const char *domain)
{
	const char *any = NULL, *sub = NULL;

	for (unsigned i = 0; i < s->nptr; i++) {
		if (!s->ptr_valid[i])
			continue;
		if (ieq(s->ptr[i], domain))
			return s->ptr[i];
		if (sub == NULL && in_domain(s->ptr[i], domain))
			sub = s->ptr[i];
		if (any == NULL)
			any = s->ptr[i];
	}
	return sub != NULL ? sub : any;
}

/*
 * Expands p[0..len) for the frame f into out. 1: it needs the validated
 * names first (the caller goes to ST_PTRQ and comes back); 0: done; -1: a
 * syntax error or too long.
 */
static int expand(struct spf *s, const struct frame *f, struct slice p, enum spf_macro_mode mode,
		  char *out, size_t cap)
{
	struct spf_macro_env env = {
		.sender = s->sender, .local = s->local, .sender_domain = s->sender_domain,
		.domain = f->domain, .helo = s->helo, .receiver = s->receiver,
		.family = s->family, .now = s->now,
	};
	size_t n;

	if (spf_macro_uses_ptr(p.p, p.len)) {
		if (!s->ptr_done)
			return 1;
		env.ptr = ptr_value(s, f->domain);
	}
	memcpy(env.ip, s->ip, sizeof env.ip);
	return spf_macro_expand(&env, p.p, p.len, mode, out, cap, &n) == 0 ? 0 : -1;
}

/* Validated names first, then come back to this state. */
static void need_ptr(struct spf *s)
{
	s->resume = s->state;
	s->state = ST_PTRQ;
}

/*
 * The target name of the current term (its domain-spec expanded, or
 * <domain>) into s->target. 1: wait for %{p}; 0: ready; -1: not askable.
 */
static int target(struct spf *s, const struct slice *spec)
{
	struct frame *f = top(s);
	char name[SPF_EXPAND_MAX];
	int rc;

	if (spec->len == 0) {
		memcpy(s->target, f->domain, strlen(f->domain) + 1);
		return 0;
	}
	rc = expand(s, f, *spec, SPF_MACRO_DOMAIN, name, sizeof name);
	if (rc == 1) {
		need_ptr(s);
		return 1;
	}
	if (rc != 0 || spf_target_name(name) != 0)
		return -1;
	memcpy(s->target, name, strlen(name) + 1);	/* at most SPF_NAME_MAX octets now */
	return 0;
}

/* ------------------------------------------------------------------ */
/* the steps */

static void push_frame(struct spf *s, const char *domain, bool include)
{
	struct frame *f;

	if (s->depth >= FRAMES_MAX)
		tern_bug("spf: include depth %u past the lookup limit", s->depth);
	f = &s->frame[s->depth++];
	memset(f, 0, sizeof *f);
	memcpy(f->domain, domain, strlen(domain) + 1);
	f->include = include;
	s->state = ST_FETCH;
}

static void st_record(struct spf *s)
{
	struct frame *f = top(s);
	struct slot *sl = &s->slot[0];
	char err[128];

	if (sl->status == DNS_TEMPFAIL) {
		problem(s, "DNS error for TXT %s: %s", f->domain, sl->error);
		fail_with(s, SPF_TEMPERROR);
		return;
	}
	if (sl->status != DNS_OK || s->ntxt == 0) {
		if (s->depth == 1 && !f->redirected) {
			s->result.code = SPF_NONE;
			finish(s);
			return;
		}
		problem(s, "no SPF record at %s (%s)", f->domain,
			f->redirected ? "redirect" : "include");
		fail_with(s, SPF_PERMERROR);
		return;
	}
	if (s->ntxt > 1) {
		problem(s, "%u SPF records at %s", s->ntxt, f->domain);
		fail_with(s, SPF_PERMERROR);
		return;
	}
	f->rec = s->txt;
	f->rec_len = s->txt_len;
	s->txt = NULL;
	if (spf_record_parse((const uint8_t *)f->rec, f->rec_len, &f->info, err, sizeof err) != 0) {
		problem(s, "%s (in the record of %s)", err, f->domain);
		fail_with(s, SPF_PERMERROR);
		return;
	}
	f->pos = 0;
	s->state = ST_TERMS;
}

static bool ip_term_match(const struct spf *s, const struct spf_term *t)
{
	if (t->kind == SPF_T_IP4)
		return s->family == AF_INET && ip_match(s->ip, t->net, t->cidr4);
	return s->family == AF_INET6 && ip_match(s->ip, t->net, t->cidr6);
}

static void st_terms(struct spf *s)
{
	struct frame *f = top(s);
	char err[128];
	int rc;

	rc = spf_term_next((const uint8_t *)f->rec, f->rec_len, &f->pos, &f->cur, err, sizeof err);
	if (rc < 0)
		tern_bug("spf: a checked record failed to parse: %s", err);
	if (rc == 0) {
		if (!f->info.has_redirect) {
			frame_result(s, SPF_NEUTRAL, NULL);
			return;
		}
		f->cur = f->info.redirect;
		if (s->lookups++ == SPF_LOOKUP_MAX) {
			s->lookups--;
			permerror_term(s, "more than 10 DNS lookups");
			return;
		}
		s->state = ST_REDIRECT;
		return;
	}
	switch (f->cur.kind) {
	case SPF_T_ALL:
		matched(s);
		return;
	case SPF_T_IP4:
	case SPF_T_IP6:
		if (ip_term_match(s, &f->cur))
			matched(s);
		return;
	case SPF_T_INCLUDE:
	case SPF_T_A:
	case SPF_T_MX:
	case SPF_T_PTR:
	case SPF_T_EXISTS:
		if (s->lookups++ == SPF_LOOKUP_MAX) {
			s->lookups--;
			permerror_term(s, "more than 10 DNS lookups");
			return;
		}
		s->state = ST_MECH;
		return;
	default:
		return;		/* modifiers: redirect at the end, exp on fail, others ignored */
	}
}

static void st_mech(struct spf *s)
{
	struct frame *f = top(s);
	const struct spf_term *t = &f->cur;
	int rc = target(s, &t->domain);

	if (rc == 1)
		return;
	if (rc < 0) {
		if (t->kind == SPF_T_INCLUDE)
			permerror_term(s, "the target name is not a domain");
		else
			no_match(s);	/* a name that cannot exist does not match */
		return;
	}
	switch (t->kind) {
	case SPF_T_INCLUDE:
		if (!spf_domain_valid(s->target)) {
			permerror_term(s, "the target name is not a domain");
			return;
		}
		push_frame(s, s->target, true);
		return;
	case SPF_T_A:
		s->cidr = s->family == AF_INET ? t->cidr4 : t->cidr6;
		s->state = ST_A;
		ask(s, Q_ADDR, P_MATCH, 0, s->target);
		return;
	case SPF_T_EXISTS:
		s->state = ST_EXISTS;
		ask(s, Q_ADDR, P_EXISTS, 0, s->target);
		return;
	case SPF_T_MX:
		s->cidr = s->family == AF_INET ? t->cidr4 : t->cidr6;
		s->state = ST_MX;
		ask(s, Q_MX, P_MX, 0, s->target);
		return;
	case SPF_T_PTR:
		s->result.ptr_used = true;
		if (!s->ptr_done) {
			need_ptr(s);
			return;
		}
		if (s->ptr_status == DNS_NXDOMAIN || s->ptr_status == DNS_NODATA) {
			if (!count_void(s))
				return;
		}
		for (unsigned i = 0; i < s->nptr; i++) {
			if (s->ptr_valid[i] && in_domain(s->ptr[i], s->target)) {
				matched(s);
				return;
			}
		}
		no_match(s);
		return;
	default:
		tern_bug("spf: st_mech on term kind %d", (int)t->kind);
	}
}

/* After an A/AAAA or MX answer for a, exists, mx: errors and void lookups. */
static bool first_answer_ok(struct spf *s, const char *what)
{
	struct slot *sl = &s->slot[0];

	switch (sl->status) {
	case DNS_OK:
		return true;
	case DNS_TEMPFAIL:
		temperror_slot(s, what, s->target, 0);
		return false;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		if (count_void(s))
			no_match(s);
		return false;
	default:	/* DNS_BADNAME: nothing was asked */
		no_match(s);
		return false;
	}
}

static void st_addr(struct spf *s)
{
	if (!first_answer_ok(s, s->state == ST_EXISTS || s->family == AF_INET ? "A" : "AAAA"))
		return;
	if (s->slot[0].match)
		matched(s);
	else
		no_match(s);
}

static void st_mx(struct spf *s)
{
	if (!first_answer_ok(s, "MX"))
		return;
	if (s->nmx > SPF_MX_NAMES_MAX) {
		char what[64];

		snprintf(what, sizeof what, "%zu MX records, more than 10", s->nmx);
		permerror_term(s, what);
		return;
	}
	if (s->nmx == 0) {	/* null MX (RFC 7505): no host, and no implicit MX (5.4) */
		no_match(s);
		return;
	}
	s->state = ST_MXADDR;
	s->nslots = (unsigned)s->nmx;
	for (unsigned i = 0; i < s->nslots; i++) {
		if (s->mx[i][0] == '\0') {
			memset(&s->slot[i], 0, sizeof s->slot[i]);
			s->slot[i].status = DNS_BADNAME;
			continue;
		}
		ask(s, Q_ADDR, P_MATCH, i, s->mx[i]);
	}
}

static void st_mxaddr(struct spf *s)
{
	/* in the order of the hosts, as asking one by one would see them */
	for (unsigned i = 0; i < s->nslots; i++) {
		if (s->slot[i].status == DNS_TEMPFAIL) {
			temperror_slot(s, s->family == AF_INET ? "A" : "AAAA", s->mx[i], i);
			return;
		}
		if (s->slot[i].match) {
			matched(s);
			return;
		}
	}
	no_match(s);
}

static void st_redirect(struct spf *s)
{
	struct frame *f = top(s);
	int rc = target(s, &f->info.redirect.domain);
	bool include = f->include;

	if (rc == 1)
		return;
	if (rc < 0 || !spf_domain_valid(s->target)) {
		permerror_term(s, "the target name is not a domain");
		return;
	}
	/* 6.1: check_host() on the target replaces this one; its exp= is the one used */
	frame_clear(f);
	s->depth--;
	push_frame(s, s->target, include);
	top(s)->redirected = true;
}

static void st_ptrq(struct spf *s)
{
	s->result.ptr_used = true;
	s->state = ST_PTRANS;
	ask(s, Q_PTR, P_PTR, 0, NULL);
}

static void ptr_ready(struct spf *s)
{
	s->ptr_done = true;
	s->state = s->resume;
}

static void st_ptrans(struct spf *s)
{
	s->ptr_status = s->slot[0].status;
	if (s->ptr_status != DNS_OK || s->nptr == 0) {
		s->nptr = 0;	/* a DNS error: ptr does not match, %{p} is "unknown" (5.5) */
		ptr_ready(s);
		return;
	}
	s->state = ST_PTRVAL;
	s->nslots = s->nptr;
	for (unsigned i = 0; i < s->nslots; i++)
		ask(s, Q_ADDR, P_VALIDATE, i, s->ptr[i]);
}

static void st_ptrval(struct spf *s)
{
	/* an error on a validation query skips that name (5.5) */
	for (unsigned i = 0; i < s->nptr; i++)
		s->ptr_valid[i] = s->slot[i].status == DNS_OK && s->slot[i].match;
	ptr_ready(s);
}

/* The explanation (6.2) from the macro string p, or -1. 1: wait for %{p}. */
static int explain(struct spf *s, struct slice p)
{
	char text[SPF_EXPAND_MAX];
	int rc = expand(s, top(s), p, SPF_MACRO_EXP, text, sizeof text);

	if (rc == 1) {
		need_ptr(s);
		return 1;
	}
	if (rc != 0)
		return -1;
	str_copy_printable(s->result.explanation, sizeof s->result.explanation, text, strlen(text));
	finish(s);
	return 0;
}

static void st_exp(struct spf *s)
{
	struct frame *f = top(s);
	int rc;

	if (!f->info.has_exp) {
		s->state = ST_DEFEXP;
		return;
	}
	rc = target(s, &f->info.exp.domain);
	if (rc == 1)
		return;
	if (rc < 0) {
		s->state = ST_DEFEXP;
		return;
	}
	s->state = ST_EXPANS;
	ask(s, Q_TXT, P_EXP, 0, s->target);	/* counts as no lookup, void or not (4.6.4) */
}

static void st_expans(struct spf *s)
{
	s->state = (s->slot[0].status == DNS_OK && s->ntxt == 1) ? ST_EXPTEXT : ST_DEFEXP;
}

static void st_exptext(struct spf *s)
{
	if (explain(s, (struct slice){ (const uint8_t *)s->txt, s->txt_len }) < 0)
		s->state = ST_DEFEXP;
}

static void st_defexp(struct spf *s)
{
	const char *d = s->default_exp != NULL ? s->default_exp : "";

	if (explain(s, (struct slice){ (const uint8_t *)d, strlen(d) }) < 0) {
		s->result.explanation[0] = '\0';	/* checked in spf_new: cannot happen */
		finish(s);
	}
}

static void step(struct spf *s)
{
	switch (s->state) {
	case ST_FETCH:
		s->state = ST_RECORD;
		ask(s, Q_TXT, P_RECORD, 0, top(s)->domain);
		break;
	case ST_RECORD: st_record(s); break;
	case ST_TERMS: st_terms(s); break;
	case ST_MECH: st_mech(s); break;
	case ST_A:
	case ST_EXISTS: st_addr(s); break;
	case ST_MX: st_mx(s); break;
	case ST_MXADDR: st_mxaddr(s); break;
	case ST_REDIRECT: st_redirect(s); break;
	case ST_PTRQ: st_ptrq(s); break;
	case ST_PTRANS: st_ptrans(s); break;
	case ST_PTRVAL: st_ptrval(s); break;
	case ST_EXP: st_exp(s); break;
	case ST_EXPANS: st_expans(s); break;
	case ST_EXPTEXT: st_exptext(s); break;
	case ST_DEFEXP: st_defexp(s); break;
	}
}

/*
 * Steps until the check waits for answers or is finished. An answer that
 * comes from inside a provider call finds running set and only fills its
 * slot; this loop goes on. done is the last thing done with s.
 */
static void run(struct spf *s)
{
	if (s->running || s->reported)
		return;
	s->running = true;
	while (!s->finished && s->pending == 0)
		step(s);
	s->running = false;
	if (s->finished) {
		s->reported = true;
		s->result.lookups = s->lookups;
		s->result.void_lookups = s->voids;
		s->done(s->arg, &s->result);	/* may free s */
	}
}

/* ------------------------------------------------------------------ */
/* life cycle */

static bool input_ok(const char *p)
{
	size_t n = strnlen(p, SPF_INPUT_MAX + 1);

	if (n > SPF_INPUT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return true;
}

static char *dup_cat(const char *a, const char *b, size_t blen)
{
	size_t alen = strlen(a);
	char *r = malloc(alen + blen + 1);

	if (r != NULL) {
		memcpy(r, a, alen);
		memcpy(r + alen, b, blen);
		r[alen + blen] = '\0';
	}
	return r;
}

struct spf *spf_new(const struct spf_dns *dns, const struct spf_request *req,
		    void (*done)(void *arg, const struct spf_result *r), void *arg)
{
	const char *helo = req->helo != NULL ? req->helo : "";
	const char *sender = req->sender != NULL ? req->sender : "";
	const char *at;
	struct spf *s;

	if (!input_ok(helo) || !input_ok(sender) ||
	    (req->receiver != NULL && !input_ok(req->receiver)) ||
	    (req->default_exp != NULL &&
	     (!input_ok(req->default_exp) ||
	      spf_macro_check((const uint8_t *)req->default_exp, strlen(req->default_exp),
			      SPF_MACRO_EXP) != 0)) ||
	    done == NULL) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->dns = *dns;
	s->done = done;
	s->arg = arg;
	s->identity = req->identity;
	s->now = req->now != 0 ? req->now : time(NULL);

	if (req->ip.ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)&req->ip;

		s->family = AF_INET;
		memcpy(s->ip, &v4->sin_addr, 4);
	} else if (req->ip.ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&req->ip;

		if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {	/* 5: it is an IPv4 client */
			s->family = AF_INET;
			memcpy(s->ip, v6->sin6_addr.s6_addr + 12, 4);
		} else {
			s->family = AF_INET6;
			memcpy(s->ip, v6->sin6_addr.s6_addr, 16);
		}
	} else {
		free(s);
		errno = EINVAL;
		return NULL;
	}
	if (s->family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&s->sa;

		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, s->ip, 4);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->sa;

		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, s->ip, 16);
	}

	/* <sender>: the null sender and HELO are postmaster@helo (2.3, 2.4) */
	if (req->identity == SPF_HELO || sender[0] == '\0')
		s->sender = dup_cat("postmaster@", helo, strlen(helo));
	else if ((at = strrchr(sender, '@')) == NULL)
		s->sender = dup_cat("postmaster@", sender, strlen(sender));
	else if (at == sender)	/* no local part (4.3) */
		s->sender = dup_cat("postmaster", sender, strlen(sender));
	else
		s->sender = strdup(sender);
	s->helo = strdup(helo);
	s->receiver = req->receiver != NULL ? strdup(req->receiver) : NULL;
	s->default_exp = req->default_exp != NULL ? strdup(req->default_exp) : NULL;
	if (s->sender == NULL || s->helo == NULL ||
	    (req->receiver != NULL && s->receiver == NULL) ||
	    (req->default_exp != NULL && s->default_exp == NULL)) {
		spf_free(s);
		errno = ENOMEM;
		return NULL;
	}
	at = strrchr(s->sender, '@');
	s->local = strndup(s->sender, (size_t)(at - s->sender));
	s->sender_domain = strdup(at + 1);
	if (s->local == NULL || s->sender_domain == NULL) {
		spf_free(s);
		errno = ENOMEM;
		return NULL;
	}
	return s;
}

void spf_start(struct spf *s)
{
	const char *domain = s->sender_domain;
	size_t n = strlen(domain);

	if (s->started)
		tern_bug("spf: spf_start called twice");
	s->started = true;
	if (n > 0 && domain[n - 1] == '.')
		n--;
	str_copy_printable(s->result.domain, sizeof s->result.domain, domain, n);
	if (!spf_domain_valid(domain)) {	/* 4.3: none, without asking */
		s->result.code = SPF_NONE;
		finish(s);
		run(s);		/* reports */
		return;
	}
	push_frame(s, s->result.domain, false);
	run(s);
}

void spf_free(struct spf *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < SPF_BATCH_MAX; i++) {
		if (s->out[i] != NULL)
			s->out[i]->s = NULL;	/* the provider's answer frees it */
	}
	for (unsigned i = 0; i < FRAMES_MAX; i++)
		free(s->frame[i].rec);
	free(s->txt);
	free(s->sender);
	free(s->local);
	free(s->sender_domain);
	free(s->helo);
	free(s->receiver);
	free(s->default_exp);
	free(s);
}
