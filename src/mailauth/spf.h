/*
 * spf.h - SPF (RFC 7208): check_host() as a state machine that asks for DNS
 * through an interface, and the pure parsers it is built on.
 *
 * SYNOPSIS
 *	struct spf_request req = { .identity = SPF_MAILFROM, .helo = "mx.example.net",
 *				   .sender = "alice@example.org", .receiver = "mx.tern.example" };
 *	memcpy(&req.ip, &client, sizeof client);	the client's address
 *	struct spf *s = spf_new(&provider, &req, on_spf, ctx);
 *	spf_start(s);		later, exactly once: on_spf(ctx, &result)
 *	...
 *	spf_free(s);		in on_spf or at any time before it (cancels)
 *
 *	A DNS provider is four functions; each hands back its answer, at once
 *	or later, through the spf_answer_* function of its kind:
 *	    static int txt(void *ctx, const char *name, struct spf_query *q)
 *	    { return dns_txt(ctx, name, spf_answer_txt, q); }	(dns.h, as is)
 *
 * DESCRIPTION
 *	Identity (RFC 7208 2.3, 2.4). SPF_MAILFROM checks the domain of
 *	sender; a null reverse-path (sender "") is checked as
 *	"postmaster@<helo>", so the HELO domain. SPF_HELO checks helo with
 *	<sender> "postmaster@<helo>". A sender without a local part
 *	("@example.org") gets "postmaster" (4.3); one without '@' is taken as a
 *	domain. The local part is everything before the last '@'.
 *
 *	Initial processing (4.3): a domain that is not a multi-label name of
 *	labels of 1-63 visible ASCII octets, at most 253 octets (one trailing
 *	dot ignored), whose last label is not all digits and that holds no
 *	'[' or ']' (an address literal), gives "none" without a query.
 *
 *	Record selection (4.5): TXT records only; those beginning with
 *	"v=spf1" (any case) followed by a space or the end. None: "none"; two
 *	or more: "permerror". The whole record is syntax-checked before any
 *	term is evaluated (4.6): any error anywhere is "permerror", as are a
 *	second redirect= or exp= (6) and a record longer than SPF_RECORD_MAX.
 *
 *	Evaluation (4.6-6): terms left to right, the first match gives its
 *	qualifier's result; no match and no redirect= gives "neutral". all,
 *	include, a, mx, ptr, ip4, ip6, exists, redirect=, exp= and unknown
 *	modifiers (checked for macro syntax, then ignored) as in RFC 7208 5
 *	and 6. include: pass matches; fail, softfail and neutral do not match;
 *	temperror is temperror; permerror and none are permerror (5.2).
 *	redirect= (6.1) is followed only when no mechanism matched; its "none"
 *	(or a malformed target) is "permerror". Any temperror or permerror,
 *	at any depth, ends the whole evaluation with that result.
 *
 *	Addresses: an IPv4-mapped IPv6 client (::ffff:a.b.c.d) is an IPv4
 *	client everywhere: ip4 matches it, ip6 never does, a and mx ask A,
 *	%{i} %{c} %{v} are the IPv4 forms (5, 5.6). a, mx and the ptr
 *	validation ask only the client's family (A or AAAA); exists always
 *	asks A (5.7).
 *
 *	ptr (5.5) is evaluated as the RFC says, and result.ptr_used records
 *	that the discouraged mechanism (or the %{p} macro) was used, for the
 *	log. The first SPF_PTR_NAMES_MAX PTR names are kept, the rest ignored
 *	(4.6.4); each is validated by one A/AAAA query; a DNS error on the PTR
 *	query makes ptr not match (%{p} is then "unknown"), one on a
 *	validation query skips that name. %{p} prefers <domain> itself, then a
 *	subdomain of it, then the first validated name (7.3). The validated
 *	names are computed once per evaluation.
 *
 *	Limits (4.6.4): the include, a, mx, ptr and exists mechanisms and the
 *	redirect modifier count as DNS lookups when evaluated, across includes
 *	and redirects; the 11th is "permerror" before it is asked. The initial
 *	TXT query, the %{p} queries and the exp= query do not count. An mx
 *	whose MX answer has more than SPF_MX_NAMES_MAX records is "permerror".
 *	A void lookup (NXDOMAIN or no records) counts against SPF_VOID_MAX
 *	when it is the address query of a or exists, the MX query of mx or the
 *	PTR query of ptr (not the address queries of mx hosts or of the ptr
 *	validation); the third is "permerror". An exp= lookup never counts. A target name that cannot be asked (a label over 63 octets or
 *	empty, after dropping left labels to fit 253 octets, 7.3) does not
 *	match for a, mx, ptr and exists (the suite's preferred reading of
 *	4.3/4.8, which leave it undefined) and is "permerror" for include and
 *	redirect; nothing is asked and nothing counted as void.
 *
 *	DNS errors (5): a DNS_TEMPFAIL answer ends the evaluation with
 *	"temperror", except on the ptr paths above and for exp=. NXDOMAIN and
 *	NODATA are an empty answer. DNS_BADNAME (a name the resolver will not
 *	ask, such as one with a space made by %_) is an empty answer that is
 *	not counted as void. A provider function that returns -1 is a
 *	DNS_TEMPFAIL answer. A truncated answer (more than DNS_MAX_RECORDS) is
 *	used as it is.
 *
 *	Explanation (6.2): only for "fail", from the exp= of the record that
 *	gave the result (after redirects; never one of an included record):
 *	its domain-spec expanded, one TXT query, exactly one record, expanded
 *	as an explain-string with c, r and t allowed. Anything else (DNS error,
 *	no record, two records, a macro error, non-ASCII) falls back to
 *	req.default_exp, itself a macro string. Octets outside printable ASCII
 *	become '?', and the text is cut at SPF_EXPLANATION_MAX octets, so it is
 *	safe in an SMTP reply.
 *
 *	Macros (7): s l o d i p h c r t v, upper case URL-escaped (every
 *	octet outside ALPHA DIGIT "-._~" as %XX), transformers (digits: that
 *	many right-hand parts, after r: reversal) and delimiters ".-+,/_="
 *	(default "."), parts joined with "."; %% %_ %- are "%", " ", "%20". In
 *	domain-specs only s l o d i p h v; c r t only in explanation text.
 *	%{i} of an IPv6 client is 32 lower-case nibbles joined by dots (the
 *	RFC 7208 7.4 example); %{c} is RFC 5952 text; %{r} is req.receiver or
 *	"unknown"; %{t} is req.now or time(NULL). A domain-spec's expansion is
 *	cut from the left to 253 octets by whole labels, one trailing dot is
 *	dropped (7.3).
 *
 *	Time: the evaluator has no timer. RFC 7208 4.6.4 asks for a limit of
 *	at least 20 s on the whole check; the caller keeps it (a uv timer) and
 *	on expiry calls spf_free() and takes "temperror".
 *
 * THE DNS PROVIDER
 *	Each function of struct spf_dns asks one question and returns 0, or
 *	returns -1 without answering (it could not ask). After returning 0 it
 *	must answer exactly once, through the spf_answer_* of its kind with the
 *	query it was given: from inside the call (an in-memory zone in tests)
 *	or later (the event loop). It must answer even after spf_free(): the
 *	query is then dropped and freed. The signatures of spf_answer_txt,
 *	spf_answer_addr and spf_answer_mx are dns_txt_cb, dns_addr_cb and
 *	dns_mx_cb, so dns.c answers directly. Results mean what dns.h says:
 *	MX hosts in order of preference; null_mx (RFC 7505) means no host; TXT
 *	records with their strings concatenated; addresses of the family
 *	asked. ptr asks the reverse name of ip (in-addr.arpa / ip6.arpa) and
 *	answers with spf_answer_ptr(): the PTR target names (a trailing dot is
 *	dropped). The strings passed to a provider function are valid only
 *	during the call; results are copied before spf_answer_* returns. A
 *	provider function must not call spf_free().
 *
 *	Plugging dns.c in (smtp/msgauth.c does): dns_txt, dns_mx and
 *	dns_addr_loose answer directly (dns_addr_loose, not dns_addr: SPF's
 *	names such as _spf.example.com or %{i}-made ones are not LDH), and
 *	dns_ptr through a three-line adapter to spf_answer_ptr. dns_mx skips
 *	non-LDH exchanges and merges duplicate hosts, so the 10-MX limit
 *	counts distinct usable hosts rather than records.
 *
 * CALLBACKS
 *	done runs exactly once per spf_start(), unless spf_free() ran first:
 *	from inside spf_start() when every answer came at once, otherwise from
 *	the spf_answer_* call that completed the check. The result is valid
 *	until spf_free(). done may call spf_free(s). At most SPF_BATCH_MAX
 *	queries are outstanding at once (the address lookups of one mx or ptr
 *	are asked together and used in the order of the names, so the result
 *	is the one a sequential evaluation gives).
 *
 * DIAGNOSTICS
 *	spf_new() returns NULL with errno EINVAL for a bad request (family not
 *	AF_INET/AF_INET6, a string over SPF_INPUT_MAX octets or holding a
 *	control character, a default_exp that is not a valid explain-string)
 *	and ENOMEM. result.problem says in words why the result is permerror
 *	or temperror (the record's domain and the term, escaped), for the log
 *	and the Received-SPF / Authentication-Results comment. The parsers
 *	return -1 with words in err.
 */
#ifndef TERN_SPF_H
#define TERN_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "../dns/dns.h"
#include "../lib/buf.h"

#define SPF_LOOKUP_MAX 10	/* DNS-querying terms per check (RFC 7208 4.6.4) */
#define SPF_VOID_MAX 2		/* void lookups per check (4.6.4) */
#define SPF_MX_NAMES_MAX 10	/* more MX records: permerror (4.6.4) */
#define SPF_PTR_NAMES_MAX 10	/* PTR names used; the rest ignored (4.6.4) */
#define SPF_BATCH_MAX 10	/* queries outstanding at once */
#define SPF_NAME_MAX 253	/* a domain name in text, without trailing dot */
#define SPF_RECORD_MAX 65535	/* a longer TXT record is permerror */
#define SPF_INPUT_MAX 512	/* helo, sender, receiver, default_exp */
#define SPF_EXPAND_MAX 4096	/* one macro expansion; longer: see spf_macro_expand */
#define SPF_EXPLANATION_MAX 255
#define SPF_MECHANISM_MAX 127
#define SPF_PROBLEM_MAX 191

enum spf_result_code {
	SPF_NONE = 0,	/* no record, or no valid domain to check */
	SPF_NEUTRAL,	/* "?" or no mechanism matched */
	SPF_PASS,	/* "+" */
	SPF_FAIL,	/* "-": explanation is set */
	SPF_SOFTFAIL,	/* "~" */
	SPF_TEMPERROR,	/* a DNS error: try again later */
	SPF_PERMERROR,	/* the published records are broken or over a limit */
};
/* "none" "neutral" "pass" "fail" "softfail" "temperror" "permerror" */
const char *spf_result_name(enum spf_result_code c);

enum spf_identity {
	SPF_MAILFROM = 0,	/* RFC 7208 2.4; null sender: postmaster@helo */
	SPF_HELO,		/* RFC 7208 2.3 */
};

struct spf_request {
	struct sockaddr_storage ip;	/* the client: AF_INET or AF_INET6 */
	enum spf_identity identity;
	const char *helo;		/* HELO/EHLO argument; NULL is "" */
	const char *sender;		/* MAIL FROM mailbox without <>; "" or NULL: null sender */
	const char *receiver;		/* %{r}: this host's name; NULL: "unknown" */
	const char *default_exp;	/* explain-string used for fail without exp=; NULL: "" */
	time_t now;			/* %{t}; 0: time(NULL) */
};

struct spf_result {
	enum spf_result_code code;
	char domain[SPF_NAME_MAX + 1];	/* the domain checked first (sender's or HELO) */
	char mechanism[SPF_MECHANISM_MAX + 1]; /* the directive that matched, as published
					   (escaped); "default" when none did; else "" */
	char explanation[SPF_EXPLANATION_MAX + 1]; /* fail only: printable ASCII */
	char problem[SPF_PROBLEM_MAX + 1];	/* temperror/permerror: why */
	unsigned lookups;		/* DNS-querying terms evaluated */
	unsigned void_lookups;
	bool ptr_used;			/* ptr or %{p} was evaluated (RFC 7208 5.5: discouraged) */
};

struct spf_query;

struct spf_dns {
	/* TXT records of name. */
	int (*txt)(void *ctx, const char *name, struct spf_query *q);
	/* A (AF_INET) or AAAA (AF_INET6) records of name. */
	int (*addr)(void *ctx, const char *name, int family, struct spf_query *q);
	/* MX records of name. */
	int (*mx)(void *ctx, const char *name, struct spf_query *q);
	/* PTR records of the reverse name of ip (AF_INET or AF_INET6, port 0). */
	int (*ptr)(void *ctx, const struct sockaddr_storage *ip, struct spf_query *q);
	void *ctx;
};

/* query is the struct spf_query * the provider was given. */
void spf_answer_txt(void *query, const struct dns_txt_result *r);
void spf_answer_addr(void *query, const struct dns_addr_result *r);
void spf_answer_mx(void *query, const struct dns_mx_result *r);
void spf_answer_ptr(void *query, enum dns_status status, const char *const *names, size_t n);

struct spf;

/* dns and req are copied; done(arg, result) reports the result. */
struct spf *spf_new(const struct spf_dns *dns, const struct spf_request *req,
		    void (*done)(void *arg, const struct spf_result *r), void *arg);
/* Begins the check; called once. See CALLBACKS. */
void spf_start(struct spf *s);
/* Cancels a check under way (done will not run) and frees s; NULL is a no-op. */
void spf_free(struct spf *s);

/* ------------------------------------------------------------------ */
/* The pure parts, for the evaluator, the unit tests and the fuzzer.   */

enum spf_term_kind {
	SPF_T_ALL = 0,
	SPF_T_INCLUDE,
	SPF_T_A,
	SPF_T_MX,
	SPF_T_PTR,
	SPF_T_IP4,
	SPF_T_IP6,
	SPF_T_EXISTS,
	SPF_T_REDIRECT,		/* modifiers from here */
	SPF_T_EXP,
	SPF_T_UNKNOWN,		/* unknown-modifier: name "=" macro-string, ignored */
};

struct spf_term {
	enum spf_term_kind kind;
	enum spf_result_code qualifier; /* mechanisms: PASS (+, default), FAIL (-), SOFTFAIL (~), NEUTRAL (?) */
	struct slice text;	/* the whole term */
	struct slice name;	/* the mechanism or modifier name as written */
	struct slice domain;	/* domain-spec (redirect, exp, and mechanisms that have one;
				   len 0: none, use <domain>); unknown modifier: its value */
	unsigned cidr4;		/* a, mx, ip4: 0..32 (default 32) */
	unsigned cidr6;		/* a, mx, ip6: 0..128 (default 128) */
	uint8_t net[16];	/* ip4: 4 octets, ip6: 16 octets, network order */
};

struct spf_record {
	unsigned nterms;	/* terms after the version */
	unsigned ndns;		/* of which include a mx ptr exists redirect */
	bool has_all, has_ptr, has_redirect, has_exp;
	struct spf_term redirect, exp;	/* valid when has_* */
};

/* True when rec is an SPF record: "v=spf1" (any case) then SP or end (4.5). */
bool spf_is_record(const uint8_t *rec, size_t len);
/*
 * The whole record checked against RFC 7208 12 (ABNF) and 6 (redirect and
 * exp at most once each), without DNS: 0, or -1 with words in err. Slices
 * in out point into rec.
 */
int spf_record_parse(const uint8_t *rec, size_t len, struct spf_record *out,
		     char *err, size_t errlen);
/*
 * The next term of rec from *pos (0: the start of the record, whose version
 * is checked and skipped): 1 with *t filled and *pos advanced, 0 at the
 * end, -1 on a syntax error with words in err.
 */
int spf_term_next(const uint8_t *rec, size_t len, size_t *pos, struct spf_term *t,
		  char *err, size_t errlen);

enum spf_macro_mode {
	SPF_MACRO_DOMAIN = 0,	/* domain-spec: letters s l o d i p h v, no space */
	SPF_MACRO_EXP,		/* explain-string: every letter, spaces allowed */
	SPF_MACRO_MODIFIER,	/* unknown-modifier value: every letter, no space */
};

struct spf_macro_env {
	const char *sender;	/* s: local@domain */
	const char *local;	/* l */
	const char *sender_domain; /* o */
	const char *domain;	/* d: the current domain */
	const char *helo;	/* h */
	const char *ptr;	/* p: the validated name, NULL: "unknown" */
	const char *receiver;	/* r: NULL: "unknown" */
	int family;		/* AF_INET or AF_INET6 (after unmapping) */
	uint8_t ip[16];		/* 4 or 16 octets */
	time_t now;		/* t */
};

/* 0 when p[0..len) is a valid macro-string (or explain-string) of mode, else -1. */
int spf_macro_check(const uint8_t *p, size_t len, enum spf_macro_mode mode);
/* True when p[0..len) holds %{p} (or %{P}): expanding it needs PTR lookups. */
bool spf_macro_uses_ptr(const uint8_t *p, size_t len);
/*
 * Expands p[0..len) into out (NUL-terminated, *outlen octets): 0; -1 on a
 * syntax error; -2 when the result (or one macro's value) would not fit
 * in cap (or SPF_EXPAND_MAX). Pure: every value comes from env.
 */
int spf_macro_expand(const struct spf_macro_env *env, const uint8_t *p, size_t len,
		     enum spf_macro_mode mode, char *out, size_t cap, size_t *outlen);
/*
 * An expanded domain-spec made ready to ask (7.3): one trailing dot
 * dropped, then whole labels dropped from the left while it is longer than
 * SPF_NAME_MAX. 0 when every label is 1-63 octets, else -1 (not askable).
 * name is changed in place.
 */
int spf_target_name(char *name);
/* The 4.3 test for the domain check_host() starts from (see DESCRIPTION). */
bool spf_domain_valid(const char *domain);

#endif
