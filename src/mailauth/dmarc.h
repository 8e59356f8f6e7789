/*
 * dmarc.h - DMARC (RFC 7489): the author domain, the policy record, the
 * Organizational Domain, identifier alignment and policy discovery as a
 * state machine that asks for DNS through an interface, and the line an
 * aggregate report is made from.
 *
 * SYNOPSIS
 *	struct dmarc_psl *psl = dmarc_psl_load(NULL, err, sizeof err);	 once
 *
 *	char from[DMARC_DOMAIN_MAX + 1];
 *	if (dmarc_author_domain(from_bodies, nfrom, from, err, sizeof err) != 0)
 *		local policy: no author domain (RFC 7489 6.6.1)
 *	struct dmarc_request req = { .from_domain = from, .spf_domain = "example.org",
 *				     .spf = SPF_PASS, .dkim = sigs, .ndkim = n,
 *				     .sample = random % 100 };
 *	struct dmarc *d = dmarc_new(&provider, psl, &req, on_dmarc, ctx);
 *	dmarc_start(d);		later, exactly once: on_dmarc(ctx, &result)
 *	...
 *	dmarc_free(d);		in on_dmarc or at any time before it (cancels)
 *	dmarc_report_line(&out, now, "192.0.2.1", "bob@example.org", &req, &result);
 *
 *	The DNS provider is one function; it hands back its answer, at once
 *	or later, through dmarc_answer_txt():
 *	    static int txt(void *ctx, const char *name, struct dmarc_query *q)
 *	    { return dns_txt(ctx, name, dmarc_answer_txt, q); }	(dns.h, as is)
 *
 * DESCRIPTION
 *	Author domain (6.6.1; RFC 5322 3.6.2, 3.4, 4.4). dmarc_author_domain()
 *	takes the bodies of every From field of the message, in order (what
 *	follows "From:", folding CR LF included). It fails (-1, words in err)
 *	when there is no From field, more than one (RFC 5322 3.6 allows one;
 *	RFC 7489 6.6.1 lets the receiver reject), a body that does not parse
 *	as an address list, no mailbox at all (an empty group
 *	"undisclosed-recipients:;"), mailboxes whose domains differ (6.6.1:
 *	never evaluate only the first), a domain literal, a domain that is not
 *	labels of 1-63 letters, digits, '-', '_' or UTF-8 (at most
 *	DMARC_DOMAIN_MAX octets), or a body over DMARC_FROM_MAX octets. The
 *	parser knows comments (nested, with quoted-pairs), quoted strings
 *	(an '@' inside one is text), angle addresses with an obsolete route,
 *	display names with encoded words or dots (obs-phrase), CFWS between
 *	the words of a local part or domain (obs-local-part, obs-domain),
 *	empty list elements (obs-mbox-list) and groups (whose mailboxes
 *	count). A display name holding a bare '@' or '<' text, or anything
 *	after '>', is unparseable: such a From is ambiguous, so it is refused
 *	rather than guessed. The domain is lower-cased (ASCII) and one
 *	trailing dot is dropped. A domain holding UTF-8 (RFC 6532) is returned
 *	as written; the evaluator does not look it up (see below).
 *
 *	Record (6.3, 6.4). dmarc_record_parse() returns 0 when the text is
 *	not a DMARC record: its first tag is not "v" with the value exactly
 *	"DMARC1" (the ABNF's %x44.4d.41.52.43.31: the value is case
 *	sensitive, the tag name is not); such records are ignored in
 *	discovery (6.6.3 step 2). Otherwise the tags are split at ';' (empty
 *	tag-specs tolerated), names and values trimmed of WSP, names matched
 *	without case, keyword values (p sp adkim aspf fo rf) without case.
 *	Unknown tags are ignored (6.3). A repeated tag: the first counts, the
 *	others are ignored. A known tag whose value is bad is ignored and its
 *	default kept (6.3: "Syntax errors in the remainder of the record
 *	SHOULD be discarded in favor of default values"), and a note is
 *	added to rec.warnings. The exceptions are p and sp (6.6.3 step 6): if
 *	p is missing or bad, or sp is present and bad, a record whose rua
 *	holds at least one syntactically valid URI is used as p=none (sp=none,
 *	p_forced set; the other tags as published); otherwise the record is
 *	unusable: -1. p may come anywhere after v. Defaults: sp = p, adkim
 *	and aspf relaxed, pct 100, ri 86400, fo "0", rf "afrf". Values: pct an
 *	integer 0..100; ri a 32-bit unsigned decimal; fo ("0"|"1"|"d"|"s")
 *	joined by ':'; rf keywords joined by ':'; rua and ruf URIs (RFC 3986
 *	scheme ":" then URI characters, an optional "!" size suffix of digits
 *	and k/m/g/t) joined by ','. rua, ruf, fo and rf are kept trimmed as
 *	published when valid and at most DMARC_URIS_MAX / DMARC_TAGVAL_MAX
 *	octets (a longer one is a bad value); rua and ruf count as valid when
 *	at least one URI in them is (the others are noted in warnings: a
 *	report sender skips them) and they hold only printable ASCII (HTAB
 *	is kept as SP). A record over DMARC_RECORD_MAX octets is -1. The
 *	URIs are checked, not fetched or verified (7.1).
 *
 *	Organizational Domain (3.2) by libpsl and the list dmarc_psl_load()
 *	read: the public suffix plus one label (the "registrable domain"),
 *	lower case, trailing dot dropped. A name that is itself a public
 *	suffix, or is empty, has an empty label or is over DMARC_DOMAIN_MAX
 *	octets, has none (-1). Which list is installed matters: the tests pin
 *	Debian's publicsuffix 20230209.
 *
 *	Alignment (3.1). Strict: the two domains are equal, without case and
 *	trailing dot. Relaxed: their Organizational Domains are equal (a
 *	domain without one, a public suffix, stands for itself, so it aligns
 *	only with itself). SPF aligns when req.spf is SPF_PASS and
 *	req.spf_domain aligns under aspf (3.1.2); DKIM aligns when some
 *	signature whose result is DKIM_PASS has a d= that aligns under adkim
 *	(3.1.1); dkim_index is the first such signature.
 *
 *	Policy discovery (6.6.3). One TXT query at _dmarc.<from domain>;
 *	records that are not DMARC records (above) are dropped. If none is
 *	left and the Organizational Domain differs from the from domain, one
 *	TXT query at _dmarc.<org domain>, the same way. Then: no DMARC record
 *	(NXDOMAIN, NODATA, BADNAME, only other TXT records, or a name over 253
 *	octets that cannot be asked): "none". Two or more DMARC records at the
 *	name asked: discovery ends there, without falling back to the
 *	Organizational Domain (6.6.3 step 4): "none", with problem saying so.
 *	One DMARC record that parses (-1 above): "permerror", no policy and
 *	disposition none: 6.6.3 step 6 says to apply no DMARC processing, and
 *	RFC 7489 11.2 names a syntactically incorrect record permerror.
 *	DNS_TEMPFAIL (or a provider that returns -1) on either query:
 *	"temperror". The policy is sp when the record came from the
 *	Organizational Domain and the from domain is another (a subdomain),
 *	else p (6.3 sp=; sp defaults to p). A from domain that is not a DNS
 *	name (labels of 1-63 printable ASCII octets other than space, at most
 *	253) or holds UTF-8 gives "none" without a query; one that is itself
 *	a public suffix is its own Organizational Domain (no second query).
 *
 *	Result (6.6.2, 11.2). With a record: "pass" when SPF or DKIM aligns.
 *	Otherwise "temperror" when an identifier that would have aligned had
 *	a temporary error (SPF_TEMPERROR with an aligned spf_domain, or
 *	DKIM_TEMPERROR on an aligned d=): a retry may pass, so the policy is
 *	not applied now (a choice: RFC 7489 leaves it open; the caller
 *	usually answers 451). Otherwise "fail". Alignment flags are computed
 *	only when there is a record.
 *
 *	Disposition (6.6.4, 6.3 pct). NONE unless the result is "fail"; then
 *	the policy, when req.sample < pct (sample is 0..99, drawn by the
 *	caller); else the next lower one (reject -> quarantine, quarantine ->
 *	none) with sampled_out set. sampled_out is never set for p=none.
 *
 *	Report line: see dmarc_report_line().
 *
 *	Time: the evaluator has no timer; the caller keeps one and on expiry
 *	calls dmarc_free() and takes "temperror".
 *
 * THE DNS PROVIDER
 *	txt asks for the TXT records of name and returns 0, or returns -1
 *	without answering (it could not ask: temperror). After returning 0 it
 *	must answer exactly once with dmarc_answer_txt() and the query it was
 *	given: from inside the call or later. It must answer even after
 *	dmarc_free(): the query is then dropped and freed. Results mean what
 *	dns.h says (the strings of a record concatenated; len authoritative).
 *	name is valid only during the call; the answer is copied before
 *	dmarc_answer_txt returns. The provider must not call dmarc_free().
 *	At most one query is outstanding at a time.
 *
 * CALLBACKS
 *	done runs exactly once per dmarc_start(), unless dmarc_free() ran
 *	first: from inside dmarc_start() when the answers came at once,
 *	otherwise from the dmarc_answer_txt() that completed discovery. The
 *	result is valid until dmarc_free(); done may call dmarc_free(d).
 *
 * DIAGNOSTICS
 *	dmarc_new() returns NULL with errno EINVAL for a bad request (no psl,
 *	no done, a NULL from_domain, a string over DMARC_INPUT_MAX octets or
 *	holding a control character, sample over 99) and ENOMEM.
 *	dmarc_psl_load() returns NULL with words in err. result.problem says
 *	in words (printable ASCII) why the result is none, temperror or
 *	permerror, and for fail which identifiers did not align, for the log,
 *	the Authentication-Results comment and the reject reply. The parsers
 *	return -1 with printable words in err; they never read outside the
 *	input and allocate nothing.
 */
#ifndef TERN_DMARC_H
#define TERN_DMARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../dns/dns.h"
#include "../lib/buf.h"
#include "dkim.h"
#include "spf.h"

#define DMARC_DOMAIN_MAX 253	/* a domain in text, without trailing dot */
#define DMARC_RECORD_MAX 4096	/* a longer DMARC record is unusable (-1) */
#define DMARC_URIS_MAX 1023	/* rua= / ruf= value kept, octets */
#define DMARC_TAGVAL_MAX 63	/* fo= / rf= value kept, octets */
#define DMARC_FROM_MAX 16384	/* one From field body, octets */
#define DMARC_INPUT_MAX 512	/* request strings */
#define DMARC_PROBLEM_MAX 191
#define DMARC_RI_DEFAULT 86400u	/* ri= default, seconds (6.3) */

enum dmarc_result_code {
	DMARC_NONE = 0,		/* no policy record, or no usable from domain */
	DMARC_PASS,		/* an aligned identifier passed */
	DMARC_FAIL,		/* nothing aligned passed: the policy applies */
	DMARC_TEMPERROR,	/* DNS error in discovery, or an aligned identifier's temperror */
	DMARC_PERMERROR,	/* the one DMARC record is unusable (6.6.3 step 6) */
};
/* "none" "pass" "fail" "temperror" "permerror" (RFC 8601 2.7.x, RFC 7489 11.2) */
const char *dmarc_result_name(enum dmarc_result_code c);

enum dmarc_policy {
	DMARC_POLICY_NONE = 0,
	DMARC_POLICY_QUARANTINE,
	DMARC_POLICY_REJECT,
};
/* "none" "quarantine" "reject" */
const char *dmarc_policy_name(enum dmarc_policy p);

enum dmarc_align {
	DMARC_ALIGN_RELAXED = 0,	/* "r" */
	DMARC_ALIGN_STRICT,		/* "s" */
};

struct dmarc_record {
	enum dmarc_policy p;		/* requested policy (NONE when p_forced) */
	enum dmarc_policy sp;		/* subdomain policy: p when not given */
	bool sp_given;			/* sp= present and valid */
	bool p_forced;			/* p (or sp) bad or missing, used as p=none for rua (6.6.3) */
	enum dmarc_align adkim, aspf;	/* default relaxed */
	unsigned pct;			/* 0..100, default 100 */
	unsigned long ri;		/* report interval, seconds, default 86400 */
	char rua[DMARC_URIS_MAX + 1];	/* as published (trimmed), "" when absent or bad */
	char ruf[DMARC_URIS_MAX + 1];
	char fo[DMARC_TAGVAL_MAX + 1];	/* default "0" */
	char rf[DMARC_TAGVAL_MAX + 1];	/* default "afrf" */
	char warnings[128];		/* tags ignored for bad values, printable; "" none */
};

/*
 * 1 when txt[0..len) is a DMARC record and *out is filled; 0 when it is
 * not a DMARC record (ignored in discovery); -1 when it is one that cannot
 * be used, with words in err. See DESCRIPTION.
 */
int dmarc_record_parse(const uint8_t *txt, size_t len, struct dmarc_record *out,
		       char *err, size_t errlen);

/* ---- Organizational Domain (3.2) ---- */

struct dmarc_psl;
/* path NULL: /usr/share/publicsuffix/public_suffix_list.dafsa, else .dat. */
struct dmarc_psl *dmarc_psl_load(const char *path, char *err, size_t errlen);
void dmarc_psl_free(struct dmarc_psl *psl);
/* 0 with out = the Organizational Domain of domain; -1 (public suffix, invalid, no room). */
int dmarc_org_domain(const struct dmarc_psl *psl, const char *domain, char *out, size_t cap);
/* Identifier alignment (3.1) of a with b under mode; false when either is empty. */
bool dmarc_aligned(const struct dmarc_psl *psl, const char *a, const char *b,
		   enum dmarc_align mode);

/* ---- author domain (6.6.1) ---- */

/*
 * values[0..nvalues): the bodies of every From field, in order. 0 with out
 * = the one author domain; -1 with words in err. See DESCRIPTION.
 */
int dmarc_author_domain(const struct slice *values, size_t nvalues,
			char out[DMARC_DOMAIN_MAX + 1], char *err, size_t errlen);

/* ---- evaluation ---- */

struct dmarc_dkim_in {			/* one per DKIM-Signature verified */
	const char *domain;		/* d= */
	const char *selector;		/* s= (for the report) */
	enum dkim_result result;
};

struct dmarc_request {
	const char *from_domain;	/* from dmarc_author_domain */
	const char *spf_domain;		/* MAIL FROM domain, or HELO for a null sender; NULL/"" none */
	enum spf_result_code spf;
	const struct dmarc_dkim_in *dkim;
	size_t ndkim;
	unsigned sample;		/* 0..99 at random: inside pct when sample < pct */
};

struct dmarc_result {
	enum dmarc_result_code code;
	enum dmarc_policy policy;	/* p or sp that applied (have_record) */
	enum dmarc_policy disposition;	/* after pct; NONE unless fail */
	bool have_record;		/* a usable policy record was found */
	bool sampled_out;		/* fail, policy not none, sample >= pct */
	bool spf_aligned, dkim_aligned;
	bool subdomain_policy;		/* sp applied: record of the org domain, from is below it */
	int dkim_index;			/* the aligned passing signature, or -1 */
	struct dmarc_record rec;	/* valid when have_record */
	char from_domain[DMARC_DOMAIN_MAX + 1];	/* normalized: lower case, no trailing dot */
	char org_domain[DMARC_DOMAIN_MAX + 1];
	char record_domain[DMARC_DOMAIN_MAX + 1]; /* where the record was found ("" none) */
	char problem[DMARC_PROBLEM_MAX + 1];	/* words: see DIAGNOSTICS */
};

struct dmarc_query;

struct dmarc_dns {
	/* TXT records of name. */
	int (*txt)(void *ctx, const char *name, struct dmarc_query *q);
	void *ctx;
};

/* query is the struct dmarc_query * the provider was given (== dns_txt_cb). */
void dmarc_answer_txt(void *query, const struct dns_txt_result *r);

struct dmarc;

/* dns, psl (kept, not copied: must outlive d) and req (copied) ; done reports. */
struct dmarc *dmarc_new(const struct dmarc_dns *dns, const struct dmarc_psl *psl,
			const struct dmarc_request *req,
			void (*done)(void *arg, const struct dmarc_result *r), void *arg);
/* Begins discovery; called once. See CALLBACKS. */
void dmarc_start(struct dmarc *d);
/* Cancels an evaluation under way (done will not run) and frees d; NULL is a no-op. */
void dmarc_free(struct dmarc *d);

/*
 * The pure part of the evaluation, for tests: given the policy record (or
 * NULL: none) found at record_domain, fills res from req as dmarc_start
 * would (alignment, result, policy, disposition). res->from_domain and
 * org_domain must be set.
 */
void dmarc_evaluate(const struct dmarc_psl *psl, const struct dmarc_request *req,
		    const struct dmarc_record *rec, const char *record_domain,
		    struct dmarc_result *res);

/*
 * Appends one JSON object on one line, ending in "\n", with what an
 * aggregate report (7.2, appendix C) needs for this message:
 *   {"time":T,"source_ip":S,"header_from":D,"envelope_from":S,
 *    "dmarc":R,"spf":{"domain":D,"result":R},
 *    "dkim":[{"domain":D,"selector":S,"result":R},...],
 *    "policy_published":{"domain":D,"adkim":"r","aspf":"r","p":P,"sp":P,
 *                        "pct":N,"fo":S,"rua":S} or null without a record,
 *    "policy_evaluated":{"disposition":P,"dkim":"pass"|"fail","spf":"pass"|"fail"}
 *    [,"reason":"sampled_out"]}
 * dkim/spf in policy_evaluated are the aligned results. Strings are JSON
 * escaped; invalid UTF-8 becomes U+FFFD. NULL strings are "". 0, or -1
 * (out of room in out) with out as it was.
 */
int dmarc_report_line(struct buf *out, time_t when, const char *source_ip,
		      const char *envelope_from, const struct dmarc_request *req,
		      const struct dmarc_result *res);

#endif
