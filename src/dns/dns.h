/*
 * dns.h - asynchronous MX, A/AAAA and TXT lookups on c-ares and the libuv loop.
 *
 * SYNOPSIS
 *	struct dns *d = dns_new(loop, "", 2000, 3, err, sizeof err);
 *	dns_mx(d, "example.org", on_mx, ctx);		later: on_mx(ctx, &result)
 *	dns_addr(d, "mx1.example.org", AF_UNSPEC, on_addr, ctx);
 *	dns_txt(d, "_dmarc.example.org", on_txt, ctx);
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
 *	Callbacks: each dns_mx/dns_addr/dns_txt that returns 0 calls its
 *	callback exactly once, always from the loop, never from inside the
 *	call, in the order the answers arrive. The result is valid only during
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
 *	Names asked: dns_mx and dns_addr take host names (dns_hostname_valid):
 *	a domain literal "[192.0.2.1]" or an IP address is DNS_BADNAME. dns_txt
 *	takes any name of printable ASCII without spaces or backslashes, labels
 *	of 1-63 octets, because SPF macros and DKIM selectors produce names
 *	with '_' and more (RFC 7208 7). One trailing dot is allowed.
 *
 * DIAGNOSTICS
 *	dns_new() returns NULL with words in err. dns_mx/dns_addr/dns_txt
 *	return -1 without calling back only when memory runs out or after
 *	dns_free(). The parsers return 0 when the packet was understood (out
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
};
struct dns_addr_result {
	enum dns_status status;
	bool truncated;
	size_t n;
	struct sockaddr_storage *addr; /* port 0; for AF_UNSPEC the AAAA ones first */
	char error[128];
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
};

typedef void (*dns_mx_cb)(void *arg, const struct dns_mx_result *r);
typedef void (*dns_addr_cb)(void *arg, const struct dns_addr_result *r);
typedef void (*dns_txt_cb)(void *arg, const struct dns_txt_result *r);

/*
 * Each returns 0 and calls cb exactly once, always later from the loop
 * (never from inside the call), or -1 without calling it (out of memory,
 * or after dns_free). The result is valid only during the callback.
 */
int dns_mx(struct dns *d, const char *domain, dns_mx_cb cb, void *arg);
/* family: AF_INET (A), AF_INET6 (AAAA) or AF_UNSPEC (both, merged: see DESCRIPTION). */
int dns_addr(struct dns *d, const char *host, int family, dns_addr_cb cb, void *arg);
int dns_txt(struct dns *d, const char *name, dns_txt_cb cb, void *arg);

/*
 * Pure parsers used by the above, exposed for unit tests and fuzzing: a raw
 * DNS response (wire format, RFC 1035 4.1) to a result. They never read
 * outside wire[0..len), validate every record they use, and accept only a
 * response (QR set, opcode QUERY) with one question of the right type and
 * class IN. family for dns_parse_addr is AF_INET or AF_INET6.
 */
int dns_parse_mx(const uint8_t *wire, size_t len, struct dns_mx_result *out);
int dns_parse_addr(const uint8_t *wire, size_t len, int family,
		   struct dns_addr_result *out);
int dns_parse_txt(const uint8_t *wire, size_t len, struct dns_txt_result *out);
void dns_mx_result_free(struct dns_mx_result *r);
void dns_addr_result_free(struct dns_addr_result *r);
void dns_txt_result_free(struct dns_txt_result *r);

/*
 * A host name as MX and A/AAAA lookups take it: LDH labels (letters,
 * digits, '-' not first or last; RFC 952, RFC 1123 2.1) of 1-63 octets,
 * at most DNS_NAME_MAX octets without one optional trailing dot, and a
 * last label that is not all digits (RFC 3696 2), so that neither an IP
 * address nor a domain literal passes.
 */
bool dns_hostname_valid(const char *name);

#endif
