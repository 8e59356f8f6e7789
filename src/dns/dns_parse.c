/* dns_parse.c - DNS responses (RFC 1035 4.1 wire format) to MX, A/AAAA, TXT and PTR results; see dns.h. */
#include "dns.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 1035 3.2.2, 3.2.4; RFC 3596 2.1 (AAAA). */
enum { T_A = 1, T_CNAME = 5, T_SOA = 6, T_PTR = 12, T_MX = 15, T_TXT = 16, T_AAAA = 28, C_IN = 1 };
/* RFC 1035 4.1.1. */
enum { RC_NOERROR = 0, RC_FORMERR, RC_SERVFAIL, RC_NXDOMAIN, RC_NOTIMP, RC_REFUSED };

#define HDR_LEN 12
#define WIRE_NAME_MAX 255	/* octets of a name in wire form, root label included (RFC 1035 2.3.4) */
#define LABEL_MAX 63
#define PTR_HOPS_MAX 32		/* compression pointers followed in one name: ends any loop */
#define CHAIN_MAX 16		/* names of a CNAME chain followed from the question */
#define TTL_NONE UINT32_MAX	/* no record has bounded the TTL yet */

/* A name in uncompressed wire form, ASCII lower-cased, root label included. */
struct wname {
	uint8_t b[WIRE_NAME_MAX];
	size_t len;
};

struct msg {
	const uint8_t *p;
	size_t len;
};

/* One resource record; rdata is an offset into the message. */
struct rr {
	struct wname owner;
	uint16_t type, class;
	uint32_t ttl;		/* 0 when the top bit is set (RFC 2181 8) */
	size_t rdata, rdlen;
};

/* The names whose records count: the question's and its CNAME targets. */
struct chain {
	struct wname name[CHAIN_MAX];
	size_t n;
};

/* What the header and the question said. */
struct head {
	unsigned rcode;
	unsigned ancount, nscount;
	size_t an_off;		/* first answer */
	uint32_t ttl;		/* smallest TTL of the chain's CNAMEs, TTL_NONE if none */
	struct chain chain;
};

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* A TTL field: RFC 2181 8 says one with the top bit set is to be taken as zero. */
static uint32_t ttl32(const uint8_t *p)
{
	uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];

	return v > 0x7FFFFFFFu ? 0 : v;
}

static uint32_t ttl_min(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static void words(char *error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void words(char *error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(error, 128, fmt, ap);
	va_end(ap);
}

/*
 * Read the possibly compressed name at *off (RFC 1035 4.1.4) and move *off
 * past its bytes in place. Pointers may go anywhere past the header but at
 * most PTR_HOPS_MAX of them, so a loop ends; the name may not pass 255
 * octets; label types 0x40 and 0x80 (RFC 6891 5) are refused.
 */
static int name_read(const struct msg *m, size_t *off, struct wname *out)
{
	size_t pos = *off, end = 0;
	unsigned hops = 0;
	bool jumped = false;

	out->len = 0;
	for (;;) {
		uint8_t c;

		if (pos >= m->len)
			return -1;
		c = m->p[pos];
		if (c == 0)
			break;
		if ((c & 0xC0) == 0xC0) {
			if (m->len - pos < 2 || ++hops > PTR_HOPS_MAX)
				return -1;
			if (!jumped)
				end = pos + 2;
			jumped = true;
			pos = (size_t)(c & 0x3F) << 8 | m->p[pos + 1];
			if (pos < HDR_LEN)
				return -1;
			continue;
		}
		/* 1 + c label octets, and the root label still to come */
		if ((c & 0xC0) != 0 || m->len - pos - 1 < c ||
		    out->len + 1 + c + 1 > WIRE_NAME_MAX)
			return -1;
		out->b[out->len++] = c;
		for (size_t i = 0; i < c; i++) {
			uint8_t ch = m->p[pos + 1 + i];

			out->b[out->len++] = ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
		}
		pos += 1 + (size_t)c;
	}
	out->b[out->len++] = 0;
	*off = jumped ? end : pos + 1;
	return 0;
}

static bool wname_eq(const struct wname *a, const struct wname *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

/* The rules of dns_hostname_valid() on a wire name (labels cannot hold '.'). */
static bool wname_is_host(const struct wname *w)
{
	size_t i = 0, last = 0;
	bool digits = true;

	if (w->len < 2)
		return false;	/* the root: "." is no host (RFC 7505 3) */
	while (w->b[i] != 0) {
		size_t l = w->b[i];
		const uint8_t *s = w->b + i + 1;

		if (s[0] == '-' || s[l - 1] == '-')
			return false;
		for (size_t k = 0; k < l; k++)
			if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= '0' && s[k] <= '9') ||
			      s[k] == '-'))
				return false;
		last = i;
		i += 1 + l;
	}
	for (size_t k = 0; k < w->b[last]; k++)
		if (w->b[last + 1 + k] < '0' || w->b[last + 1 + k] > '9')
			digits = false;
	return !digits;
}

/* "mx1.example.org": labels joined by dots, no trailing dot; out holds 256. */
static void wname_text(const struct wname *w, char *out)
{
	size_t i = 0, o = 0;

	while (w->b[i] != 0) {
		size_t l = w->b[i];

		if (o > 0)
			out[o++] = '.';
		memcpy(out + o, w->b + i + 1, l);
		o += l;
		i += 1 + l;
	}
	out[o] = '\0';
}

/* The record at *off (RFC 1035 4.1.3); *off moves past it. */
static int rr_read(const struct msg *m, size_t *off, struct rr *rr)
{
	const uint8_t *p;

	if (name_read(m, off, &rr->owner) != 0 || m->len - *off < 10)
		return -1;
	p = m->p + *off;
	rr->type = be16(p);
	rr->class = be16(p + 2);
	rr->ttl = ttl32(p + 4);
	rr->rdlen = be16(p + 8);
	*off += 10;
	if (m->len - *off < rr->rdlen)
		return -1;
	rr->rdata = *off;
	*off += rr->rdlen;
	return 0;
}

static bool chain_has(const struct chain *c, const struct wname *w)
{
	for (size_t i = 0; i < c->n; i++)
		if (wname_eq(&c->name[i], w))
			return true;
	return false;
}

/*
 * Read every answer record once (any framing error refuses the response)
 * and add the target of each CNAME whose owner is already in the chain,
 * passing again until nothing is added: the answer's order does not matter
 * (RFC 1034 3.6.2). A longer chain than CHAIN_MAX is cut there.
 */
static int chain_follow(const struct msg *m, struct head *h)
{
	bool grew = true;

	for (unsigned pass = 0; grew && pass < CHAIN_MAX; pass++) {
		size_t off = h->an_off;

		grew = false;
		for (unsigned i = 0; i < h->ancount; i++) {
			struct rr rr;
			struct wname target;
			size_t t;

			if (rr_read(m, &off, &rr) != 0)
				return -1;
			if (rr.type != T_CNAME || rr.class != C_IN ||
			    !chain_has(&h->chain, &rr.owner))
				continue;
			t = rr.rdata;
			if (name_read(m, &t, &target) != 0 || t != rr.rdata + rr.rdlen)
				return -1;
			if (h->chain.n < CHAIN_MAX && !chain_has(&h->chain, &target)) {
				h->chain.name[h->chain.n++] = target;
				grew = true;
			}
		}
	}
	return 0;
}

/*
 * The smallest TTL of the CNAMEs that make the chain: a cached answer
 * must not outlive any alias it went through (RFC 2181 5.2, RFC 1034
 * 3.6.2). Framing was checked by chain_follow.
 */
static void chain_ttl(const struct msg *m, struct head *h)
{
	size_t off = h->an_off;

	h->ttl = TTL_NONE;
	for (unsigned i = 0; i < h->ancount; i++) {
		struct rr rr;

		if (rr_read(m, &off, &rr) != 0)
			return;
		if (rr.type == T_CNAME && rr.class == C_IN && chain_has(&h->chain, &rr.owner))
			h->ttl = ttl_min(h->ttl, rr.ttl);
	}
}

/*
 * The negative TTL of RFC 2308 5: the smaller of the SOA record's TTL
 * and its MINIMUM field, from the first SOA of class IN in the authority
 * section. 0 when there is none or anything on the way is malformed:
 * then the answer is used but not cached (RFC 2308 5: "Negative
 * responses without SOA records SHOULD NOT be cached").
 */
static uint32_t neg_ttl(const struct msg *m, const struct head *h)
{
	size_t off = h->an_off;
	struct rr rr;

	for (unsigned i = 0; i < h->ancount; i++)
		if (rr_read(m, &off, &rr) != 0)
			return 0;
	for (unsigned i = 0; i < h->nscount; i++) {
		struct wname x;
		size_t t;

		if (rr_read(m, &off, &rr) != 0)
			return 0;
		if (rr.type != T_SOA || rr.class != C_IN)
			continue;
		/* RFC 1035 3.3.13: MNAME, RNAME, then five 32-bit fields, MINIMUM last */
		t = rr.rdata;
		if (name_read(m, &t, &x) != 0 || name_read(m, &t, &x) != 0 ||
		    t + 20 != rr.rdata + rr.rdlen)
			return 0;
		return ttl_min(rr.ttl, ttl32(m->p + t + 16));
	}
	return 0;
}

/* out->ttl for a status (see dns.h); used is the records' smallest TTL. */
static uint32_t answer_ttl(const struct msg *m, const struct head *h, enum dns_status st,
			   uint32_t used)
{
	switch (st) {
	case DNS_OK:
		return used == TTL_NONE ? 0 : used;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		return ttl_min(neg_ttl(m, h), used);
	default:
		return 0;
	}
}

/*
 * Header and question (RFC 1035 4.1.1, 4.1.2). Returns -1 when malformed,
 * else 0 with *st: DNS_OK (read the answers), DNS_NXDOMAIN or DNS_TEMPFAIL.
 */
static int head_read(const struct msg *m, uint16_t qtype, struct head *h,
		     enum dns_status *st, char *error)
{
	uint16_t flags;
	size_t off = HDR_LEN;
	const char *why = "short header";

	if (m->len < HDR_LEN)
		goto bad;
	flags = be16(m->p + 2);
	h->rcode = flags & 0xF;
	h->ancount = be16(m->p + 6);
	h->nscount = be16(m->p + 8);
	h->ttl = TTL_NONE;
	why = "not a response to a query";
	if (!(flags & 0x8000) || ((flags >> 11) & 0xF) != 0)
		goto bad;
	*st = DNS_TEMPFAIL;
	switch (h->rcode) {
	case RC_NOERROR:
	case RC_NXDOMAIN:
		break;
	case RC_FORMERR:
		words(error, "the DNS server could not read the query (FORMERR)");
		return 0;
	case RC_SERVFAIL:
		words(error, "DNS server failure (SERVFAIL)");
		return 0;
	case RC_NOTIMP:
		words(error, "the DNS server does not do this query (NOTIMP)");
		return 0;
	case RC_REFUSED:
		words(error, "the DNS server refused the query (REFUSED)");
		return 0;
	default:
		words(error, "DNS response code %u", h->rcode);
		return 0;
	}
	if (flags & 0x0200) {
		/* c-ares asks again over TCP; a caller of the parser sees this */
		words(error, "truncated DNS response");
		return 0;
	}
	why = "not one question";
	if (be16(m->p + 4) != 1)
		goto bad;
	why = "bad question";
	h->chain.n = 1;
	if (name_read(m, &off, &h->chain.name[0]) != 0 || m->len - off < 4)
		goto bad;
	why = "answer to another question type";
	if (be16(m->p + off) != qtype || be16(m->p + off + 2) != C_IN)
		goto bad;
	h->an_off = off + 4;
	why = "bad answer section";
	if (h->rcode == RC_NXDOMAIN) {
		*st = DNS_NXDOMAIN;
		words(error, "the name does not exist (NXDOMAIN)");
		return 0;
	}
	if (chain_follow(m, h) != 0)
		goto bad;
	chain_ttl(m, h);
	*st = DNS_OK;
	return 0;
bad:
	*st = DNS_TEMPFAIL;
	words(error, "malformed DNS response (%s)", why);
	return -1;
}

/* The records of the chain with this type and class IN, one at a time. */
struct walk {
	const struct msg *m;
	const struct head *h;
	uint16_t type;
	size_t off;
	unsigned i;
};

/* 1 with *rr, 0 at the end; framing was checked by chain_follow. */
static int walk_next(struct walk *w, struct rr *rr)
{
	while (w->i < w->h->ancount) {
		w->i++;
		if (rr_read(w->m, &w->off, rr) != 0)
			return 0;
		if (rr->type == w->type && rr->class == C_IN &&
		    chain_has(&w->h->chain, &rr->owner))
			return 1;
	}
	return 0;
}

/* Make room for element n (n < DNS_MAX_RECORDS) in an array growing 4, 8, .. 64. */
static int grow(void *arrp, size_t *cap, size_t n, size_t elem)
{
	void **arr = arrp;
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 4;
	if (ncap > DNS_MAX_RECORDS)
		ncap = DNS_MAX_RECORDS;
	p = realloc(*arr, ncap * elem);
	if (p == NULL)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* Sort by preference, then shuffle each run of equal ones (RFC 5321 5.1). */
static void mx_order(struct dns_mx *mx, size_t n)
{
	struct dns_mx t;

	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && mx[j - 1].pref > mx[j].pref; j--) {
			t = mx[j];
			mx[j] = mx[j - 1];
			mx[j - 1] = t;
		}
	for (size_t a = 0, b; a < n; a = b) {
		for (b = a + 1; b < n && mx[b].pref == mx[a].pref; b++)
			;
		for (size_t k = b - a; k > 1; k--) {
			size_t r = arc4random_uniform((uint32_t)k);

			t = mx[a + k - 1];
			mx[a + k - 1] = mx[a + r];
			mx[a + r] = t;
		}
	}
}

/* Keep the record: a host listed twice keeps its lower preference; past the cap the worst goes. */
static int mx_add(struct dns_mx_result *out, size_t *cap, uint16_t pref, const char *host)
{
	size_t worst = 0;

	for (size_t i = 0; i < out->n; i++) {
		if (strcmp(out->mx[i].host, host) == 0) {
			if (pref < out->mx[i].pref)
				out->mx[i].pref = pref;
			return 0;
		}
		if (out->mx[i].pref > out->mx[worst].pref)
			worst = i;
	}
	if (out->n == DNS_MAX_RECORDS) {
		out->truncated = true;
		if (pref < out->mx[worst].pref) {
			out->mx[worst].pref = pref;
			snprintf(out->mx[worst].host, sizeof out->mx[worst].host, "%s", host);
		}
		return 0;
	}
	if (grow(&out->mx, cap, out->n, sizeof *out->mx) != 0)
		return -1;
	out->mx[out->n].pref = pref;
	snprintf(out->mx[out->n].host, sizeof out->mx[out->n].host, "%s", host);
	out->n++;
	return 0;
}

int dns_parse_mx(const uint8_t *wire, size_t len, struct dns_mx_result *out)
{
	struct msg m = { wire, len };
	struct head head, *h = &head;
	struct walk w = { &m, h, T_MX, 0, 0 };
	struct rr rr;
	size_t cap = 0, total = 0, dots = 0, bad = 0;
	uint16_t dot_pref = 0;
	uint32_t ttl;
	enum dns_status st;
	char host[256];

	memset(out, 0, sizeof *out);
	out->status = DNS_TEMPFAIL;
	if (head_read(&m, T_MX, h, &st, out->error) != 0)
		goto fail;
	if (st != DNS_OK) {
		out->status = st;
		out->ttl = answer_ttl(&m, h, st, TTL_NONE);
		return 0;
	}
	ttl = h->ttl;
	w.off = h->an_off;
	while (walk_next(&w, &rr)) {
		struct wname x;
		size_t t = rr.rdata + 2;

		ttl = ttl_min(ttl, rr.ttl);
		/* RFC 1035 3.3.9: PREFERENCE, then EXCHANGE filling the rest */
		if (rr.rdlen < 3 || name_read(&m, &t, &x) != 0 ||
		    t != rr.rdata + rr.rdlen) {
			words(out->error, "malformed DNS response (bad MX record)");
			goto fail;
		}
		total++;
		if (x.len == 1) {
			dots++;
			dot_pref = be16(wire + rr.rdata);
			continue;
		}
		if (!wname_is_host(&x)) {
			bad++;
			continue;
		}
		wname_text(&x, host);
		if (mx_add(out, &cap, be16(wire + rr.rdata), host) != 0) {
			words(out->error, "out of memory");
			goto fail;
		}
	}
	if (total == 1 && dots == 1 && dot_pref == 0) {
		out->null_mx = true;	/* RFC 7505 3 */
		out->status = DNS_OK;
	} else if (out->n > 0) {
		mx_order(out->mx, out->n);
		out->status = DNS_OK;
	} else if (total > 0) {
		words(out->error, "no usable MX host (%zu bad host names, %zu \".\")", bad, dots);
	} else {
		out->status = DNS_NODATA;
		words(out->error, "no MX record");
	}
	out->ttl = answer_ttl(&m, h, out->status, ttl);
	return 0;
fail:
	free(out->mx);
	out->mx = NULL;
	out->n = 0;
	out->null_mx = false;
	out->status = DNS_TEMPFAIL;
	return -1;
}

int dns_parse_addr(const uint8_t *wire, size_t len, int family, struct dns_addr_result *out)
{
	struct msg m = { wire, len };
	struct head head, *h = &head;
	uint16_t type = family == AF_INET6 ? T_AAAA : T_A;
	size_t want = family == AF_INET6 ? 16 : 4, cap = 0;
	struct walk w = { &m, h, type, 0, 0 };
	struct rr rr;
	uint32_t ttl;
	enum dns_status st;

	memset(out, 0, sizeof *out);
	out->status = DNS_TEMPFAIL;
	if (family != AF_INET && family != AF_INET6) {
		words(out->error, "bad address family");
		goto fail;
	}
	if (head_read(&m, type, h, &st, out->error) != 0)
		goto fail;
	if (st != DNS_OK) {
		out->status = st;
		out->ttl = answer_ttl(&m, h, st, TTL_NONE);
		return 0;
	}
	ttl = h->ttl;
	w.off = h->an_off;
	while (walk_next(&w, &rr)) {
		struct sockaddr_storage *ss;

		ttl = ttl_min(ttl, rr.ttl);
		if (rr.rdlen != want) {
			words(out->error, "malformed DNS response (bad %s record)",
			      type == T_A ? "A" : "AAAA");
			goto fail;
		}
		if (out->n == DNS_MAX_RECORDS) {
			out->truncated = true;
			continue;
		}
		if (grow(&out->addr, &cap, out->n, sizeof *out->addr) != 0) {
			words(out->error, "out of memory");
			goto fail;
		}
		ss = &out->addr[out->n++];
		memset(ss, 0, sizeof *ss);
		if (type == T_A) {
			struct sockaddr_in *sin = (struct sockaddr_in *)ss;

			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, wire + rr.rdata, 4);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, wire + rr.rdata, 16);
		}
	}
	out->status = out->n > 0 ? DNS_OK : DNS_NODATA;
	if (out->n == 0)
		words(out->error, "no %s record", type == T_A ? "A" : "AAAA");
	out->ttl = answer_ttl(&m, h, out->status, ttl);
	return 0;
fail:
	free(out->addr);
	out->addr = NULL;
	out->n = 0;
	out->status = DNS_TEMPFAIL;
	return -1;
}

int dns_parse_txt(const uint8_t *wire, size_t len, struct dns_txt_result *out)
{
	struct msg m = { wire, len };
	struct head head, *h = &head;
	struct walk w = { &m, h, T_TXT, 0, 0 };
	struct rr rr;
	size_t cap = 0;
	uint32_t ttl;
	enum dns_status st;

	memset(out, 0, sizeof *out);
	out->status = DNS_TEMPFAIL;
	if (head_read(&m, T_TXT, h, &st, out->error) != 0)
		goto fail;
	if (st != DNS_OK) {
		out->status = st;
		out->ttl = answer_ttl(&m, h, st, TTL_NONE);
		return 0;
	}
	ttl = h->ttl;
	w.off = h->an_off;
	while (walk_next(&w, &rr)) {
		const uint8_t *p = wire + rr.rdata;
		size_t total = 0, i = 0;
		char *text;

		ttl = ttl_min(ttl, rr.ttl);
		/* RFC 1035 3.3.14: one or more <character-string>s filling RDATA */
		while (i < rr.rdlen && rr.rdlen - i - 1 >= p[i]) {
			total += p[i];
			i += 1 + (size_t)p[i];
		}
		if (i != rr.rdlen || rr.rdlen == 0) {
			words(out->error, "malformed DNS response (bad TXT record)");
			goto fail;
		}
		if (out->n == DNS_MAX_RECORDS) {
			out->truncated = true;
			continue;
		}
		if (grow(&out->txt, &cap, out->n, sizeof *out->txt) != 0 ||
		    (text = malloc(total + 1)) == NULL) {
			words(out->error, "out of memory");
			goto fail;
		}
		out->txt[out->n].text = text;
		out->txt[out->n].len = total;
		out->n++;
		for (i = 0; i < rr.rdlen; i += 1 + (size_t)p[i]) {
			memcpy(text, p + i + 1, p[i]);
			text += p[i];
		}
		*text = '\0';
	}
	out->status = out->n > 0 ? DNS_OK : DNS_NODATA;
	if (out->n == 0)
		words(out->error, "no TXT record");
	out->ttl = answer_ttl(&m, h, out->status, ttl);
	return 0;
fail:
	dns_txt_result_free(out);
	out->status = DNS_TEMPFAIL;
	return -1;
}

/* What dns_name_loose_valid() asks, on a wire name: not the root, no '.' inside a label. */
static bool wname_is_loose(const struct wname *w)
{
	if (w->len < 2)
		return false;
	for (size_t i = 0; w->b[i] != 0; i += 1 + (size_t)w->b[i])
		for (size_t k = 1; k <= w->b[i]; k++) {
			uint8_t c = w->b[i + k];

			if (c <= 0x20 || c >= 0x7f || c == '.' || c == '\\')
				return false;
		}
	return true;
}

int dns_parse_ptr(const uint8_t *wire, size_t len, struct dns_ptr_result *out)
{
	struct msg m = { wire, len };
	struct head head, *h = &head;
	struct walk w = { &m, h, T_PTR, 0, 0 };
	struct rr rr;
	size_t cap = 0, total = 0;
	uint32_t ttl;
	enum dns_status st;
	char name[256];

	memset(out, 0, sizeof *out);
	out->status = DNS_TEMPFAIL;
	if (head_read(&m, T_PTR, h, &st, out->error) != 0)
		goto fail;
	if (st != DNS_OK) {
		out->status = st;
		out->ttl = answer_ttl(&m, h, st, TTL_NONE);
		return 0;
	}
	ttl = h->ttl;
	w.off = h->an_off;
	while (walk_next(&w, &rr)) {
		struct wname x;
		size_t t = rr.rdata;
		bool seen = false;

		/* RFC 1035 3.3.12: PTRDNAME filling RDATA */
		if (name_read(&m, &t, &x) != 0 || t != rr.rdata + rr.rdlen) {
			words(out->error, "malformed DNS response (bad PTR record)");
			goto fail;
		}
		ttl = ttl_min(ttl, rr.ttl);
		total++;
		if (!wname_is_loose(&x))
			continue;
		wname_text(&x, name);
		for (size_t i = 0; i < out->n && !seen; i++)
			seen = strcmp(out->names[i], name) == 0;
		if (seen)
			continue;
		if (out->n == DNS_MAX_RECORDS) {
			out->truncated = true;
			continue;
		}
		if (grow(&out->names, &cap, out->n, sizeof *out->names) != 0 ||
		    (out->names[out->n] = strdup(name)) == NULL) {
			words(out->error, "out of memory");
			goto fail;
		}
		out->n++;
	}
	out->status = out->n > 0 ? DNS_OK : DNS_NODATA;
	if (out->n == 0 && total > 0)
		words(out->error, "no usable PTR name (%zu skipped)", total);
	else if (out->n == 0)
		words(out->error, "no PTR record");
	out->ttl = answer_ttl(&m, h, out->status, ttl);
	return 0;
fail:
	dns_ptr_result_free(out);
	out->truncated = false;
	out->status = DNS_TEMPFAIL;
	return -1;
}

void dns_mx_result_free(struct dns_mx_result *r)
{
	free(r->mx);
	r->mx = NULL;
	r->n = 0;
}

void dns_addr_result_free(struct dns_addr_result *r)
{
	free(r->addr);
	r->addr = NULL;
	r->n = 0;
}

void dns_txt_result_free(struct dns_txt_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->txt[i].text);
	free(r->txt);
	r->txt = NULL;
	r->n = 0;
}

void dns_ptr_result_free(struct dns_ptr_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r->names);
	r->names = NULL;
	r->n = 0;
}

/*
 * RFC 1035 3.5: the four octets of an IPv4 address in reverse order under
 * in-addr.arpa. RFC 3596 2.5: the 32 nibbles of an IPv6 address, lowest
 * first, as hex digits under ip6.arpa. An IPv4-mapped address (RFC 4291
 * 2.5.5.2) is the IPv4 host's: its PTR lives under in-addr.arpa.
 */
int dns_ptr_name(const struct sockaddr_storage *ip, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *a;
	size_t o = 0;

	if (ip == NULL || out == NULL || outlen < DNS_PTR_NAME_MAX)
		return -1;
	if (ip->ss_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)ip)->sin_addr;
	} else if (ip->ss_family == AF_INET6) {
		const struct in6_addr *six = &((const struct sockaddr_in6 *)ip)->sin6_addr;

		a = six->s6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(six)) {
			for (int i = 15; i >= 0; i--) {
				out[o++] = hex[a[i] & 0xF];
				out[o++] = '.';
				out[o++] = hex[a[i] >> 4];
				out[o++] = '.';
			}
			memcpy(out + o, "ip6.arpa", sizeof "ip6.arpa");
			return 0;
		}
		a += 12;
	} else {
		return -1;
	}
	snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", (unsigned)a[3], (unsigned)a[2],
		 (unsigned)a[1], (unsigned)a[0]);
	return 0;
}

bool dns_name_loose_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (c <= 0x20 || c >= 0x7f || c == '\\' || ++label > LABEL_MAX) {
			/* no space or backslash: c-ares reads escapes in the name it is given */
			return false;
		}
	}
	return label > 0;
}

const char *dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NODATA:
		return "nodata";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_BADNAME:
		return "badname";
	}
	return "unknown";
}

bool dns_hostname_valid(const char *name)
{
	size_t len = strlen(name), start = 0;
	bool digits = false;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	while (start <= len) {
		size_t end = start;

		while (end < len && name[end] != '.')
			end++;
		if (end == start || end - start > LABEL_MAX || name[start] == '-' ||
		    name[end - 1] == '-')
			return false;
		digits = true;
		for (size_t k = start; k < end; k++) {
			char c = name[k];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-'))
				return false;
			if (c < '0' || c > '9')
				digits = false;
		}
		start = end + 1;
	}
	return !digits;	/* the last label: RFC 3696 2 */
}
