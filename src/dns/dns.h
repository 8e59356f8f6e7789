/*
 * dns.h - asynchronous MX, A/AAAA, TXT and PTR lookups on c-ares and the
 * libuv loop, with a TTL cache.
 *
 * SYNOPSIS
 *	struct dns *d = dns_new(loop, "", 2000, 3, err, sizeof err);
 *	dns_mx(d, "example.org", on_mx, ctx);		later: on_mx(ctx, &result)
 *	dns_addr(d, "mx1.example.org", AF_UNSPEC, on_addr, ctx);
 *	dns_addr_loose(d, "_spf.example.org", AF_INET, on_addr, ctx);
 *	dns_txt(d, "_dmarc.example.org", on_txt, ctx);
 *	dns_ptr(d, &client_addr, on_ptr, ctx);
 *	dns_get_stats(d, &st);
 *	dns_free(d, on_closed, arg);
 *
 * DESCRIPTION
 *	The loop never blocks (DESIGN.md invariant 6): c-ares's sockets are
 *	watched with one uv_poll_t each, announced by c-ares through
 *	ARES_OPT_SOCK_STATE_CB, and one uv_timer_t set from ares_timeout()
 *	drives c-ares's retransmissions and timeouts.
 *
 *	Servers: "" means the servers of /etc/resolv.conf, read once by
 *	dns_new() (a change needs a new struct dns). Otherwise a
 *	comma-separated list of IPv4 or IPv6 addresses, each with an optional
 *	port: "127.0.0.1:5353,[::1]:53,::1". Names are asked as they are
 *	(absolute; no search list, no /etc/hosts), over UDP with EDNS0 (payload
 *	1232, the DNS flag day 2020 size) and over TCP when an answer is
 *	truncated. Run a local validating resolver: the answers are trusted as
 *	given, and a loopback resolver cannot be spoofed from the network.
 *
 *	Timing: a try asks each server in turn, waiting timeout_ms for each;
 *	a try that ends with no answer is repeated, tries times in all. With
 *	one server, a dead resolver gives DNS_TEMPFAIL after timeout_ms * tries.
 *	A SERVFAIL or REFUSED answer is final (DNS_TEMPFAIL at once): the
 *	resolver has done its own retrying, and the queue retries the message.
 *
 *	Callbacks: each dns_mx/dns_addr/dns_addr_loose/dns_txt/dns_ptr that
 *	returns 0 calls its callback exactly once, always from the loop, never
 *	from inside the call (not even for an answer from the cache), in the
 *	order the answers arrive. The result is valid only during
 *	the callback. A callback may start new lookups and may call dns_free().
 *
 *	Results. status is one of:
 *	  DNS_OK        records found (for MX: n >= 1, or null_mx)
 *	  DNS_NXDOMAIN  the name does not exist: permanent (RFC 5321 5.1)
 *	  DNS_NODATA    the name exists without a record of the type; for MX
 *	                the caller falls back to the implicit MX (RFC 5321 5.1)
 *	  DNS_TEMPFAIL  SERVFAIL, REFUSED, timeout, network error, malformed
 *	                answer, out of memory, cancelled: try later
 *	  DNS_BADNAME   the name is not a valid domain name; nothing was asked
 *	and error[] holds words for the log when status is not DNS_OK.
 *
 *	Records: the recursive server follows CNAMEs; a record counts when its
 *	owner is the asked name or the target of a CNAME in the answer that
 *	leads from it (RFC 1034 3.6.2). Records of another class are skipped.
 *	At most DNS_MAX_RECORDS are kept per answer, for MX those of lowest
 *	preference, and truncated says that some were dropped.
 *	A response that breaks the wire format anywhere in its header,
 *	question or answer section (a name overrunning the packet, a
 *	compression pointer loop, an RDATA not matching its RDLENGTH or type,
 *	counts larger than the packet) is refused whole: DNS_TEMPFAIL, never a
 *	partial set, because a partial TXT set could change an SPF or DMARC
 *	result.
 *
 *	MX (RFC 5321 5.1, RFC 7505): hosts are LDH names (dns_hostname_valid),
 *	lower-cased, without the trailing dot. An MX whose exchange is not
 *	one (an IP address, "_x", "a..b") is skipped; if every MX was skipped
 *	the status is DNS_TEMPFAIL ("no usable MX host"), never an implicit MX.
 *	A host listed twice is kept once, with the lower preference. null_mx
 *	is set when the answer is exactly one MX, with preference 0 and
 *	exchange "." (RFC 7505 3); status is then DNS_OK with n == 0: the
 *	domain accepts no mail, so bounce at once and never fall back to
 *	A/AAAA. A "." next to other MX records is not a null MX: RFC 7505 3
 *	forbids the mix ("A domain that advertises a null MX MUST NOT
 *	advertise any other MX RR") and says "." is not a valid host name, so
 *	it is skipped like any other bad host and the other MX are used.
 *	mx[] is sorted by preference; equal preferences are in random order
 *	(RFC 5321 5.1: "randomize them to spread the load").
 *
 *	A/AAAA: addresses as sockaddr_in/sockaddr_in6 with port 0. For
 *	AF_UNSPEC both are asked at once and merged, AAAA first: DNS_OK if
 *	either has an address, else DNS_TEMPFAIL if either failed so, else
 *	DNS_NXDOMAIN if both say so, else DNS_NODATA.
 *
 *	TXT: each record's character-strings concatenated without separator
 *	(RFC 7208 3.3, RFC 6376 3.6.2.2), NUL-terminated for convenience; len
 *	is authoritative because a record may hold a NUL.
 *
 *	PTR (RFC 1035 3.5, RFC 3596 2.5): dns_ptr asks the reverse name of an
 *	AF_INET or AF_INET6 address (d.c.b.a.in-addr.arpa, or 32 nibbles then
 *	ip6.arpa); an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is asked as
 *	the IPv4 address it carries. names[] are the targets, lower-cased,
 *	without the trailing dot, each listed once, in the order of the
 *	answer. A target is kept when it would pass dns_addr_loose (labels of
 *	printable ASCII without space or backslash): SPF checks each with an
 *	address lookup (RFC 7208 5.5) and so validates it. Others (the root,
 *	a label holding '.', a space or a control octet) are skipped; when
 *	every PTR was skipped the status is DNS_NODATA ("no usable PTR
 *	name"): the owner of the address wrote those records, so they must
 *	not turn into a temporary error on demand.
 *
 *	Names asked: dns_mx and dns_addr take host names (dns_hostname_valid):
 *	a domain literal "[192.0.2.1]" or an IP address is DNS_BADNAME.
 *	dns_txt and dns_addr_loose take any name of printable ASCII without
 *	spaces or backslashes, labels of 1-63 octets, because SPF macros and
 *	DKIM selectors produce names with '_' and more (RFC 7208 7): SPF's
 *	a:_spf.example.com and exists:%{i}._spf.example.com go through
 *	dns_addr_loose. Outbound delivery keeps dns_addr's LDH rule. One
 *	trailing dot is allowed.
 *
 *	Cache: answers are kept in the struct dns and reused while their TTL
 *	lasts, keyed by (question type, lower-cased name without the trailing
 *	dot); dns_addr and dns_addr_loose share entries, and each half of an
 *	AF_UNSPEC lookup is its own entry. The raw response is kept and
 *	parsed again on each hit, so a hit gives what a fresh answer gives
 *	(MX of equal preference are shuffled again) and ttl says the seconds
 *	left. Kept: DNS_OK for the smallest TTL of the records used (the
 *	CNAMEs of the chain and the records of the type; RFC 1035 3.2.1,
 *	RFC 2181 5.2), at most DNS_CACHE_TTL_MAX; DNS_NXDOMAIN and DNS_NODATA
 *	for the negative TTL of RFC 2308 5 (the smaller of the TTL and the
 *	MINIMUM of the SOA in the authority section), at most
 *	DNS_CACHE_NEG_TTL_MAX, and not at all without an SOA. Never kept:
 *	DNS_TEMPFAIL (SERVFAIL, timeouts, malformed or truncated answers, "no
 *	usable MX host"), DNS_BADNAME, a TTL of 0. At most DNS_CACHE_MAX
 *	entries and DNS_CACHE_BYTES octets (dns_set_cache() lowers both or
 *	turns the cache off); past either the least recently used entry goes.
 *	An expired entry is dropped when met, and all of them at most once a
 *	minute when an answer is stored. Time is the loop's (uv_now()).
 *	Lookups in flight are not merged: two identical lookups started
 *	before the first answer both go to the resolver.
 *
 * DIAGNOSTICS
 *	dns_new() returns NULL with words in err. dns_mx/dns_addr/
 *	dns_addr_loose/dns_txt/dns_ptr return -1 without calling back only
 *	when memory runs out or after dns_free(). The parsers return 0 when the packet was understood (out
 *	says what it said) and -1 when it is malformed or memory ran out (out
 *	is then DNS_TEMPFAIL with words); out is freeable either way.
 */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#define DNS_MAX_RECORDS 64
#define DNS_NAME_MAX 253 /* text octets without the trailing dot (RFC 1035 2.3.4) */
#define DNS_PTR_NAME_MAX 73 /* "f.e.d. ... .0.ip6.arpa": 32 * 2 + 8 octets, and the NUL */

#define DNS_CACHE_MAX 4096		/* entries, by default and at most */
#define DNS_CACHE_BYTES (4u << 20)	/* octets of entries (answers, keys, bookkeeping) */
#define DNS_CACHE_TTL_MAX 3600		/* seconds a positive answer is kept at most */
#define DNS_CACHE_NEG_TTL_MAX 900	/* seconds NXDOMAIN/NODATA is kept at most (RFC 2308 5) */

struct dns;

/* servers: see DESCRIPTION; timeout_ms (1..600000) per try and server, tries (1..16). */
struct dns *dns_new(uv_loop_t *loop, const char *servers, unsigned timeout_ms,
		    unsigned tries, char *err, size_t errlen);
/*
 * Cancels every lookup whose callback has not run yet: those callbacks run
 * with DNS_TEMPFAIL "cancelled", from the loop, after dns_free returns.
 * Then d is freed once its handles are closed and on_closed(arg) runs
 * (on_closed may be NULL). d must not be used after the call; dns_free(NULL)
 * does nothing.
 */
void dns_free(struct dns *d, void (*on_closed)(void *arg), void *arg);

/*
 * The cache's bounds: max_entries (at most DNS_CACHE_MAX) and max_bytes;
 * entries past them go at once, least recently used first. 0 for either
 * turns the cache off and empties it. dns_new() starts with DNS_CACHE_MAX
 * and DNS_CACHE_BYTES.
 */
void dns_set_cache(struct dns *d, size_t max_entries, size_t max_bytes);

struct dns_stats {
	uint64_t queries;	/* questions looked up (AF_UNSPEC: two); DNS_BADNAME not counted */
	uint64_t cache_hits;	/* of those, answered from the cache */
};
void dns_get_stats(const struct dns *d, struct dns_stats *st);

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,	/* the name does not exist: permanent (RFC 5321 5.1: bounce) */
	DNS_NODATA,	/* the name exists, no record of this type */
	DNS_TEMPFAIL,	/* SERVFAIL, REFUSED, timeout, network error, cancelled: try later */
	DNS_BADNAME,	/* not a valid domain name (checked before any query) */
};
/* "ok" "nxdomain" "nodata" "tempfail" "badname" */
const char *dns_status_name(enum dns_status s);

struct dns_mx {
	uint16_t pref;
	char host[256];		/* LDH, lower case, no trailing dot */
};
struct dns_mx_result {
	enum dns_status status;
	bool null_mx;		/* RFC 7505: exactly one MX "." with pref 0 */
	bool truncated;		/* more than DNS_MAX_RECORDS usable: the rest dropped */
	size_t n;
	struct dns_mx *mx;	/* sorted by pref; equal prefs in random order (RFC 5321 5.1) */
	char error[128];	/* words for the log when not OK */
	uint32_t ttl;		/* seconds the answer may be reused, 0: not at all (see Cache) */
};
struct dns_addr_result {
	enum dns_status status;
	bool truncated;
	size_t n;
	struct sockaddr_storage *addr; /* port 0; for AF_UNSPEC the AAAA ones first */
	char error[128];
	uint32_t ttl;		/* AF_UNSPEC: the smaller of the two halves' */
};
struct dns_txt {
	char *text;		/* the strings of one record concatenated (RFC 7208 3.3), NUL-terminated */
	size_t len;
};
struct dns_txt_result {
	enum dns_status status;
	bool truncated;
	size_t n;
	struct dns_txt *txt;
	char error[128];
	uint32_t ttl;
};
struct dns_ptr_result {
	enum dns_status status;
	bool truncated;
	size_t n;
	char **names;		/* PTR targets: lower case, no trailing dot, each once */
	char error[128];
	uint32_t ttl;
};

typedef void (*dns_mx_cb)(void *arg, const struct dns_mx_result *r);
typedef void (*dns_addr_cb)(void *arg, const struct dns_addr_result *r);
typedef void (*dns_txt_cb)(void *arg, const struct dns_txt_result *r);
typedef void (*dns_ptr_cb)(void *arg, const struct dns_ptr_result *r);

/*
 * Each returns 0 and calls cb exactly once, always later from the loop
 * (never from inside the call), or -1 without calling it (out of memory,
 * or after dns_free). The result is valid only during the callback.
 */
int dns_mx(struct dns *d, const char *domain, dns_mx_cb cb, void *arg);
/* family: AF_INET (A), AF_INET6 (AAAA) or AF_UNSPEC (both, merged: see DESCRIPTION). */
int dns_addr(struct dns *d, const char *host, int family, dns_addr_cb cb, void *arg);
/* dns_addr with dns_txt's name rule, for SPF's a: and exists: targets (RFC 7208 5.3, 5.7). */
int dns_addr_loose(struct dns *d, const char *name, int family, dns_addr_cb cb, void *arg);
int dns_txt(struct dns *d, const char *name, dns_txt_cb cb, void *arg);
/* ip: AF_INET, AF_INET6 (IPv4-mapped asked as IPv4); another family is DNS_BADNAME. */
int dns_ptr(struct dns *d, const struct sockaddr_storage *ip, dns_ptr_cb cb, void *arg);

/*
 * Pure parsers used by the above, exposed for unit tests and fuzzing: a raw
 * DNS response (wire format, RFC 1035 4.1) to a result. They never read
 * outside wire[0..len), validate every record they use, and accept only a
 * response (QR set, opcode QUERY) with one question of the right type and
 * class IN. family for dns_parse_addr is AF_INET or AF_INET6. ttl is
 * what the cache keeps the answer for before its caps: for DNS_OK the
 * smallest TTL of the records used, for NXDOMAIN/NODATA the negative TTL
 * of RFC 2308 5 (0 without an SOA), otherwise 0; a TTL with the top bit
 * set counts as 0 (RFC 2181 8). The authority section is read only for
 * that SOA: a fault there leaves ttl 0 and refuses nothing.
 */
int dns_parse_mx(const uint8_t *wire, size_t len, struct dns_mx_result *out);
int dns_parse_addr(const uint8_t *wire, size_t len, int family,
		   struct dns_addr_result *out);
int dns_parse_txt(const uint8_t *wire, size_t len, struct dns_txt_result *out);
int dns_parse_ptr(const uint8_t *wire, size_t len, struct dns_ptr_result *out);
void dns_mx_result_free(struct dns_mx_result *r);
void dns_addr_result_free(struct dns_addr_result *r);
void dns_txt_result_free(struct dns_txt_result *r);
void dns_ptr_result_free(struct dns_ptr_result *r);

/*
 * The reverse name dns_ptr asks for ip, lower case, no trailing dot, into
 * out (at least DNS_PTR_NAME_MAX octets): "2.1.0.192.in-addr.arpa" for
 * 192.0.1.2, "b.a.9.8. ... .8.b.d.0.1.0.0.2.ip6.arpa" for 2001:db8::89ab.
 * -1 for another family or a short out.
 */
int dns_ptr_name(const struct sockaddr_storage *ip, char *out, size_t outlen);

/*
 * A name as dns_txt, dns_addr_loose and PTR targets take it: printable
 * ASCII without space or backslash, labels of 1-63 octets, at most
 * DNS_NAME_MAX octets without one optional trailing dot.
 */
bool dns_name_loose_valid(const char *name);

/*
 * A host name as MX and A/AAAA lookups take it: LDH labels (letters,
 * digits, '-' not first or last; RFC 952, RFC 1123 2.1) of 1-63 octets,
 * at most DNS_NAME_MAX octets without one optional trailing dot, and a
 * last label that is not all digits (RFC 3696 2), so that neither an IP
 * address nor a domain literal passes.
 */
bool dns_hostname_valid(const char *name);

#endif
