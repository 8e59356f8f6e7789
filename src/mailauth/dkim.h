/*
 * dkim.h - DKIM (RFC 6376) signing and verification: rsa-sha256 and
 * ed25519-sha256 (RFC 8463), streaming over the message.
 *
 * SYNOPSIS
 *	Verify (any number of signatures, one pass over the message):
 *	struct dkim_verify *v = dkim_verify_begin(NULL);	 defaults
 *	dkim_verify_feed(v, chunk, n);			 ... as chunks arrive
 *	n = dkim_verify_end(v, lookup, ctx);		 lookup(ctx, i, name) per key
 *	...	 later, from the loop (or from inside lookup itself):
 *	left = dkim_key_answer(v, i, DKIM_KEY_FOUND, txt, ntxt);
 *	when left == 0: for (i < dkim_verify_count(v)) r = dkim_verify_result(v, i);
 *	dkim_verify_free(v);
 *
 *	Sign (one or more signatures, one pass):
 *	struct dkim_key *k = dkim_key_load(pem, len, err, sizeof err);
 *	struct dkim_sign_req req = { .key = k, .domain = "example.org",
 *				     .selector = "s2026" };
 *	struct dkim_sign *s = dkim_sign_begin(&req, 1, 0, err, sizeof err);
 *	dkim_sign_feed(s, chunk, n);			 ... the whole message
 *	dkim_sign_end(s, &fields, err, sizeof err);	 DKIM-Signature fields
 *	dkim_sign_free(s);				 to prepend to the message
 *
 * DESCRIPTION
 *	Input. The message is fed as stored in the spool: header fields,
 *	the empty line, the body, lines ending in CR LF, in chunks split
 *	anywhere. The header block (up to opts->header_max octets, default
 *	DKIM_HEADER_MAX) is kept until dkim_verify_end/dkim_sign_end; the
 *	body is never kept: every body hash is updated as chunks arrive, so
 *	a large body needs no second pass. A header block that never ends
 *	(no empty line) is the whole message, with an empty body. Bare CR
 *	and bare LF are content, exactly as RFC 6376 3.4 canonicalizes them
 *	(only CR LF ends a line); a caller holding LF-only text converts it
 *	first.
 *
 *	Canonicalization (RFC 6376 3.4), "simple" and "relaxed" for header
 *	and body. One case the RFC leaves to reading: relaxed drops the
 *	white space at the end of a last body line that has no CR LF, like
 *	any line's (as Mail::DKIM does; dkimpy keeps it; a message from SMTP
 *	always ends in CR LF, so it never arises there). Canonical output is
 *	a fixed point of its canonicalization.
 *
 *	Verification, per DKIM-Signature field, top to bottom, at most
 *	DKIM_MAX_SIGS of them (later ones get no result and no lookup;
 *	dkim_verify_skipped() counts them):
 *	 1. the tag list is parsed (RFC 6376 3.2: duplicate tags, bad tag
 *	    names, values outside printable text are a syntax error; empty
 *	    tag-specs such as ";;" or a trailing "; " are tolerated) and
 *	    validated (3.5, 6.1.1): v=1 required; a= rsa-sha256 or
 *	    ed25519-sha256 (rsa-sha1 is permerror "sha1 not accepted",
 *	    RFC 8301 3.1); b=, bh= base64 with FWS; c= simple|relaxed
 *	    [/simple|relaxed]; d= an LDH domain (U-labels are refused);
 *	    s= labels of letters, digits, '-' and '_'; h= must list From;
 *	    i= is dkim-quoted-printable, decoded, and its domain must be d=
 *	    or below; q= must list dns/txt; l=, t=, x= decimal; x >= t;
 *	    unknown tags are ignored. Any failure: permerror, no lookup.
 *	 2. t= more than skew seconds in the future: neutral "timestamp in
 *	    the future" (RFC 6376 3.5 lets verifiers ignore it), no lookup.
 *	    x= more than skew seconds in the past: fail "signature
 *	    expired", no lookup.
 *	 3. the header hash is computed at dkim_verify_end (the header block
 *	    is then freed) and the key "<s>._domainkey.<d>" is asked for.
 *	 4. the key record (RFC 6376 3.6.1) is parsed: v=DKIM1 if present
 *	    and first; k= rsa (default) or ed25519 matching a=; h= (if
 *	    present) lists sha256; s= lists * or email; t=y marks testing
 *	    (the result is kept, `testing` is set: RFC 6376 says to treat
 *	    it like unsigned mail, which is the caller's policy); t=s makes
 *	    i='s domain equal d= exactly; unknown tags ignored; g= (RFC 4871,
 *	    obsolete) ignored. p= empty: fail "key revoked". p= is
 *	    SubjectPublicKeyInfo (or a bare PKCS#1 RSAPublicKey, as
 *	    dkimpy and others accept) for RSA, the raw 32 octets for
 *	    Ed25519 (RFC 8463 4). RSA under DKIM_RSA_MIN_BITS: fail "key
 *	    too short" (RFC 8301 3.2); over DKIM_RSA_MAX_BITS: permerror.
 *	    Several TXT records: the first that parses as a DKIM key record
 *	    is used (RFC 6376 6.1.2 step 4 leaves the choice open).
 *	 5. body hash compared (fail "body hash mismatch"), then the
 *	    signature (fail "signature mismatch"), else pass.
 *	l=: the body is hashed up to l octets of canonical body; the
 *	result says l_used and how many canonical octets were left unsigned
 *	(unsigned_octets > 0 means content was appended after signing: a
 *	risk the caller may report or refuse). l= larger than the canonical
 *	body: fail "body hash mismatch" ("l= beyond the body").
 *
 *	Results (RFC 8601 2.7.1 words, dkim_result_name):
 *	  DKIM_PASS       verified
 *	  DKIM_FAIL       body hash mismatch, signature mismatch, key
 *	                  revoked, key too short, signature expired
 *	  DKIM_NEUTRAL    t= in the future
 *	  DKIM_TEMPERROR  the key lookup failed temporarily (DNS), or
 *	                  memory / the crypto library failed
 *	  DKIM_PERMERROR  syntax or unsupported values in the signature or
 *	                  the key record, sha1, no key record, key unusable
 *	                  for this signature (k=, h=, s=, t=s)
 *	reason (enum dkim_reason) classifies it; note[] holds words for
 *	the log and the Authentication-Results reason= (printable ASCII,
 *	never raw message bytes).
 *
 *	Key lookups. dkim_verify_end() calls lookup(ctx, i, name) once for
 *	each signature that needs a key, in index order; name is the TXT
 *	owner "<s>._domainkey.<d>" (lower case, no trailing dot, at most
 *	DNS_NAME_MAX octets), valid during the call. The caller answers each
 *	exactly once with dkim_key_answer(), either from inside lookup (a
 *	table in tests) or later (dns_txt on the loop). Mapping from
 *	dns_txt: DNS_OK -> DKIM_KEY_FOUND with the records' texts;
 *	DNS_NXDOMAIN, DNS_NODATA, DNS_BADNAME -> DKIM_KEY_NONE (permerror
 *	"no key"); DNS_TEMPFAIL -> DKIM_KEY_TEMPFAIL (temperror). The
 *	records are only read during the call. dkim_verify_end returns the
 *	number of answers still awaited after all lookup calls (0: every
 *	result is final now); dkim_key_answer returns the number still
 *	awaited after it. An answer for an index that is not awaited is
 *	ignored. dkim_verify_free() may be called with answers outstanding:
 *	the caller must then make sure its own callbacks no longer call
 *	dkim_key_answer on the freed verifier.
 *
 *	Signing: relaxed/relaxed, sha256, never l=, one body hash shared by
 *	every request. Each request gives a key (RSA of at least
 *	DKIM_RSA_MIN_BITS, 2048 by dkim_key_generate's default, or Ed25519),
 *	d=, s=, optionally i= and x= (expire seconds after t=), and the
 *	header names to sign (NULL: dkim_sign_default_headers). Each name
 *	is listed once per field present, From once more than present
 *	(oversigned: a From added later breaks the signature); a message
 *	without From is refused (RFC 6376 5.4), and so is one whose first
 *	line starts with white space (the field put in front would take it
 *	as its own continuation). Fields are produced in
 *	request order, "DKIM-Signature: v=1; a=; c=relaxed/relaxed; d=;
 *	s=; t=; [x=;] [i=;] h=; bh=; b=" folded with CR LF TAB so that no
 *	line passes DKIM_FOLD_COLUMNS (a TAB counted as 8 columns; only a
 *	single d=, s= or i= longer than a line cannot be broken), each
 *	ending in CR LF; the caller puts them in front of the message.
 *	Signatures are deterministic (RSASSA-PKCS1-v1_5, Ed25519): the same
 *	message, time and key give the same field.
 *
 *	Keys: dkim_key_load() takes PEM (PKCS#1 "RSA PRIVATE KEY", PKCS#8
 *	"PRIVATE KEY" for RSA or Ed25519) or a bare base64 Ed25519 seed of
 *	32 octets (the form of RFC 8463 A.1 and dkimpy's key files).
 *	dkim_key_record() writes the TXT record to publish.
 *
 * LIMITS
 *	DKIM_HEADER_MAX octets of header block, DKIM_FIELDS_MAX header
 *	fields (either exceeded: dkim_verify_end returns -1, permerror
 *	"header too large"); DKIM_MAX_SIGS signatures evaluated;
 *	DKIM_SIG_FIELD_MAX octets per DKIM-Signature field, DKIM_TAGS_MAX
 *	tags, DKIM_H_MAX names in h=, b= at most DKIM_B_MAX octets; key
 *	records of DKIM_KEYREC_MAX octets, p= at most DKIM_P_MAX octets.
 *
 * DIAGNOSTICS
 *	dkim_verify_begin/dkim_sign_begin/dkim_key_load return NULL on
 *	bad arguments or out of memory (with words in err where given).
 *	dkim_verify_feed/dkim_sign_feed return -1 only when memory runs
 *	out (the verifier then gives -1 at dkim_verify_end). dkim_verify_end
 *	returns -1 when the message cannot be evaluated at all (then
 *	dkim_verify_count() is 0); dkim_verify_error() says why and which
 *	result to report (permerror "header too large", temperror "out of
 *	memory").
 *	Nothing here logs; nothing here does I/O.
 */
#ifndef TERN_DKIM_H
#define TERN_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../lib/buf.h"

#define DKIM_HEADER_MAX (1024 * 1024)	/* default header block cap, octets */
#define DKIM_FIELDS_MAX 10000		/* header fields in one message */
#define DKIM_MAX_SIGS 10		/* DKIM-Signature fields evaluated */
#define DKIM_SIG_FIELD_MAX 65536	/* octets of one DKIM-Signature field */
#define DKIM_TAGS_MAX 64		/* tags in one tag-list */
#define DKIM_H_MAX 256			/* names in h= */
#define DKIM_B_MAX 1024			/* b= octets: RSA up to 8192 bits */
#define DKIM_P_MAX 2048			/* p= octets after base64 */
#define DKIM_KEYREC_MAX 8192		/* octets of one key record */
#define DKIM_RSA_MIN_BITS 1024		/* RFC 8301 3.2 */
#define DKIM_RSA_MAX_BITS 8192
#define DKIM_RSA_DEFAULT_BITS 2048
#define DKIM_SKEW 3600			/* default clock skew for t= and x=, seconds */
#define DKIM_AUID_MAX 320		/* i= after decoding */
#define DKIM_BPREFIX 16			/* characters of b= kept for header.b (RFC 6008) */
#define DKIM_FOLD_COLUMNS 78

enum dkim_alg {
	DKIM_ALG_NONE = 0,
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,
};

enum dkim_canon {
	DKIM_CANON_SIMPLE = 0,
	DKIM_CANON_RELAXED,
};

enum dkim_result {
	DKIM_PASS = 0,
	DKIM_FAIL,
	DKIM_NEUTRAL,
	DKIM_TEMPERROR,
	DKIM_PERMERROR,
};

enum dkim_reason {
	DKIM_R_OK = 0,		/* pass */
	DKIM_R_BODY_HASH,	/* fail: body hash mismatch (or l= beyond the body) */
	DKIM_R_SIGNATURE,	/* fail: signature mismatch */
	DKIM_R_EXPIRED,		/* fail: x= is past */
	DKIM_R_KEY_REVOKED,	/* fail: key record with empty p= */
	DKIM_R_KEY_TOO_SHORT,	/* fail: RSA key under DKIM_RSA_MIN_BITS */
	DKIM_R_FUTURE,		/* neutral: t= in the future */
	DKIM_R_DNS,		/* temperror: key lookup failed temporarily */
	DKIM_R_INTERNAL,	/* temperror: out of memory, crypto library error */
	DKIM_R_SYNTAX,		/* permerror: signature syntax, missing or bad tag */
	DKIM_R_UNSUPPORTED,	/* permerror: v=, a=, c= or q= not supported */
	DKIM_R_SHA1,		/* permerror: rsa-sha1 not accepted (RFC 8301) */
	DKIM_R_NO_KEY,		/* permerror: no key record */
	DKIM_R_KEY_SYNTAX,	/* permerror: key record or key data invalid */
	DKIM_R_KEY_UNUSABLE,	/* permerror: key not for this signature (k= h= s= t=s) */
};

/* "pass" "fail" "neutral" "temperror" "permerror" */
const char *dkim_result_name(enum dkim_result r);
/* Short words for a reason, e.g. "body hash mismatch". */
const char *dkim_reason_text(enum dkim_reason r);
/* "rsa-sha256" "ed25519-sha256"; "" for DKIM_ALG_NONE */
const char *dkim_alg_name(enum dkim_alg a);

/* ---- verification ---- */

struct dkim_key_cache;

struct dkim_verify_opts {
	time_t now;		/* verification time; 0: time(NULL) at begin */
	uint32_t skew;		/* t=/x= tolerance, seconds; 0: DKIM_SKEW */
	size_t header_max;	/* header block cap; 0: DKIM_HEADER_MAX */
	struct dkim_key_cache *cache; /* parsed keys to reuse; NULL: none */
};

/*
 * Parsed public keys by their k= type and p= octets: decoding an RSA key
 * costs five verifications, and the same few senders' keys come back
 * (their TXT records are cached by the DNS layer). At most max entries,
 * the least recently used dropped; a key is used the same whether it came
 * from here or was decoded again. One thread only; it must outlive the
 * verifiers that use it.
 */
struct dkim_key_cache *dkim_key_cache_new(size_t max);
void dkim_key_cache_free(struct dkim_key_cache *c);
/* Keys decoded so far and keys reused (for tests). */
void dkim_key_cache_stats(const struct dkim_key_cache *c, uint64_t *decoded, uint64_t *reused);

struct dkim_sig_result {
	enum dkim_result result;
	enum dkim_reason reason;
	bool pending;			/* key answer awaited; result not final */
	char note[128];			/* words for the log / A-R reason= */
	/* From the signature, as far as it could be parsed ("" if not). */
	char d[254];			/* lower case */
	char s[254];
	char auid[DKIM_AUID_MAX + 1];	/* i= decoded, or "@d" */
	char a[24];			/* "rsa-sha256", ... as named in a= (lower case) */
	char b_prefix[DKIM_BPREFIX + 1];/* first characters of b= (header.b) */
	char query[256];		/* "<s>._domainkey.<d>" asked, "" if none */
	bool l_used;			/* l= present: only a prefix is signed */
	uint64_t l;
	uint64_t body_octets;		/* canonical body length seen */
	uint64_t unsigned_octets;	/* canonical octets past l (appended content) */
	bool testing;			/* key record t=y */
	unsigned key_bits;		/* RSA modulus bits, 256 for Ed25519, 0 unknown */
	uint64_t t, x;			/* 0 when absent */
};

enum dkim_key_status {
	DKIM_KEY_FOUND = 0,	/* TXT records given */
	DKIM_KEY_NONE,		/* NXDOMAIN / NODATA: permerror "no key" */
	DKIM_KEY_TEMPFAIL,	/* temperror */
};

struct dkim_verify;
typedef void (*dkim_lookup_fn)(void *ctx, size_t i, const char *name);

struct dkim_verify *dkim_verify_begin(const struct dkim_verify_opts *opts);
int dkim_verify_feed(struct dkim_verify *v, const uint8_t *p, size_t n);
/* >= 0: answers still awaited; -1: see dkim_verify_error. Call once. */
int dkim_verify_end(struct dkim_verify *v, dkim_lookup_fn lookup, void *ctx);
/* txt[0..ntxt): the TXT records (each one's strings concatenated). */
size_t dkim_key_answer(struct dkim_verify *v, size_t i, enum dkim_key_status st,
		       const struct slice *txt, size_t ntxt);
size_t dkim_verify_count(const struct dkim_verify *v);
/* DKIM-Signature fields past DKIM_MAX_SIGS: not evaluated, no result. */
size_t dkim_verify_skipped(const struct dkim_verify *v);
size_t dkim_verify_pending(const struct dkim_verify *v);
const struct dkim_sig_result *dkim_verify_result(const struct dkim_verify *v, size_t i);
/* NULL if dkim_verify_end succeeded; else words, and *res the result to report. */
const char *dkim_verify_error(const struct dkim_verify *v, enum dkim_result *res);
void dkim_verify_free(struct dkim_verify *v);

/* ---- keys and signing ---- */

struct dkim_key;

struct dkim_key *dkim_key_load(const uint8_t *p, size_t n, char *err, size_t errlen);
/* DKIM_ALG_RSA_SHA256 with bits (0: 2048), or DKIM_ALG_ED25519_SHA256. */
struct dkim_key *dkim_key_generate(enum dkim_alg alg, unsigned bits, char *err,
				   size_t errlen);
void dkim_key_free(struct dkim_key *k);
enum dkim_alg dkim_key_alg(const struct dkim_key *k);
unsigned dkim_key_bits(const struct dkim_key *k);
/* Append the private key as PKCS#8 PEM. */
int dkim_key_pem(const struct dkim_key *k, struct buf *out);
/* Append the TXT record value: "v=DKIM1; k=rsa; p=<base64>". */
int dkim_key_record(const struct dkim_key *k, struct buf *out);

struct dkim_sign_req {
	const struct dkim_key *key;
	const char *domain;		/* d=, an LDH domain */
	const char *selector;		/* s= */
	const char *auid;		/* i=, NULL for none; its domain must be d= or below */
	const char *const *headers;	/* NULL-terminated names; NULL: the default set */
	uint32_t expire;		/* x= = t= + expire; 0: no x= */
};

/* The default names to sign, NULL-terminated (From first). */
extern const char *const dkim_sign_default_headers[];

struct dkim_sign;
/* now 0: time(NULL). Copies what it needs from reqs; keys must outlive s. */
struct dkim_sign *dkim_sign_begin(const struct dkim_sign_req *reqs, size_t n,
				  time_t now, char *err, size_t errlen);
int dkim_sign_feed(struct dkim_sign *s, const uint8_t *p, size_t n);
/* Append the DKIM-Signature fields to out; -1 with words in err. Call once. */
int dkim_sign_end(struct dkim_sign *s, struct buf *out, char *err, size_t errlen);
void dkim_sign_free(struct dkim_sign *s);

/* ---- the pieces, exposed for unit tests and fuzzing ---- */

/* One tag of a tag-list (RFC 6376 3.2); slices into the parsed text. */
struct dkim_tag {
	struct slice name;
	struct slice value;	/* without surrounding FWS */
	size_t raw_start;	/* offset just after '=' */
	size_t raw_end;		/* offset of the ';' ending it, or of the end */
};
/* 0, or -1 with words in err. */
int dkim_tags_parse(const uint8_t *p, size_t n, struct dkim_tag *tags, size_t max,
		    size_t *ntags, char *err, size_t errlen);

/* A DKIM-Signature value (the text after the colon), parsed and checked. */
struct dkim_sigtags {
	enum dkim_alg alg;
	enum dkim_canon hcanon, bcanon;
	char a[24];
	char d[254];
	char s[254];
	char auid[DKIM_AUID_MAX + 1];
	uint8_t b[DKIM_B_MAX];
	size_t b_len;
	char b_prefix[DKIM_BPREFIX + 1];
	uint8_t bh[64];
	size_t bh_len;
	bool has_l, has_t, has_x;
	uint64_t l, t, x;
	size_t nh;
	struct slice h[DKIM_H_MAX];	/* names in h=, into the parsed text */
	size_t b_raw_start, b_raw_end;	/* b= value span to blank for hashing */
};
/*
 * DKIM_R_OK, or DKIM_R_SYNTAX / DKIM_R_UNSUPPORTED / DKIM_R_SHA1 with words
 * in note. Fields parsed before the problem are filled in (d, s, a, b_prefix
 * as far as they go), for the result's report.
 */
enum dkim_reason dkim_sig_parse(const uint8_t *value, size_t n, struct dkim_sigtags *out,
				char *note, size_t notelen);

/* A key record (RFC 6376 3.6.1). */
struct dkim_keyrec {
	enum dkim_alg ktype;		/* from k=: RSA or Ed25519 (hash part is sha256) */
	bool h_sha256;			/* h= absent or lists sha256 */
	bool s_email;			/* s= absent or lists * or email */
	bool t_testing, t_strict;	/* t=y, t=s */
	bool revoked;			/* p= empty */
	uint8_t p[DKIM_P_MAX];
	size_t p_len;
};
/* DKIM_R_OK or DKIM_R_KEY_SYNTAX with words in note. Key data is not decoded here. */
enum dkim_reason dkim_keyrec_parse(const uint8_t *rec, size_t n, struct dkim_keyrec *out,
				   char *note, size_t notelen);
/*
 * The public key data of rec as a key of its k= type: DKIM_R_OK,
 * _KEY_REVOKED (empty p=), _KEY_SYNTAX, _KEY_TOO_SHORT, _KEY_UNUSABLE
 * (RSA over DKIM_RSA_MAX_BITS); *bits as found.
 */
enum dkim_reason dkim_keyrec_check(const struct dkim_keyrec *rec, unsigned *bits,
				   char *note, size_t notelen);

/* Canonicalization, dkim_canon.c. */
/* One complete header field (name ":" value, CR LF included) to out. */
int dkim_canon_header(enum dkim_canon c, const uint8_t *field, size_t n, struct buf *out);

typedef void (*dkim_sink_fn)(void *arg, const uint8_t *p, size_t n);
struct dkim_bodycanon {
	enum dkim_canon canon;		/* the rest is private */
	uint64_t crlfs;			/* pending empty-line CR LFs */
	bool cr;			/* a CR not yet known to start CR LF */
	bool wsp;			/* relaxed: a pending run of WSP */
	bool seen;			/* relaxed: something besides CR LF was output */
	uint64_t out;			/* canonical octets produced */
	dkim_sink_fn sink;
	void *arg;
};
void dkim_bodycanon_init(struct dkim_bodycanon *bc, enum dkim_canon c, dkim_sink_fn sink,
			 void *arg);
void dkim_bodycanon_feed(struct dkim_bodycanon *bc, const uint8_t *p, size_t n);
void dkim_bodycanon_end(struct dkim_bodycanon *bc);
/* One-shot: the SHA-256 of the canonical body (optionally its first l octets). */
int dkim_body_hash(enum dkim_canon c, const uint8_t *body, size_t n, bool has_l,
		   uint64_t l, uint8_t out[32]);

#endif
