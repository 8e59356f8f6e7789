/*
 * test_dns.c - cmocka tests for dns/: the wire parsers on hand-built
 * responses, then struct dns on a libuv loop against a fake DNS server on
 * the same loop (a uv_udp_t, and a uv_tcp_t for answers too big for UDP)
 * on 127.0.0.1 with canned answers chosen by the first label of the name:
 *
 *	mx	two MX records		nx	NXDOMAIN
 *	servfail  SERVFAIL		refused	REFUSED
 *	drop	never answers		both	AAAA ::1 and A 127.0.0.2
 *	v4only	A 127.0.0.3, no AAAA	halftemp  AAAA SERVFAIL, A no data
 *	txt	TXT "v=spf1 " "-all"	big	a 3000-octet TXT: UDP says TC, TCP answers
 *	nxsoa	NXDOMAIN with an SOA	nodatasoa  no record, with an SOA
 *	9.0.0.127.in-addr.arpa	PTR Host.Example.ORG, _spf.example.net
 *	1.0...0.ip6.arpa (::1)	PTR localhost
 *
 * Records and SOA have the TTL fake.ttl (300 unless a test says), the
 * SOA's MINIMUM is fake.soa_min.
 *
 * With TERN_DNS_PROBE set it is instead the probe that
 * tests/integration/test_dns.py runs against tests/integration/fake_dns.py
 * (see probe() below).
 *
 * With DNS_TEST_SEED_DIR set, some responses built here are also written
 * there: the seed corpus of fuzz/fuzz_dns.c (fuzz/corpus/fuzz_dns).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "dns/dns.h"
#include "lib/buf.h"

/* ------------------------------------------------------------------ */
/* a DNS message builder (RFC 1035 4.1) */

enum { T_A = 1, T_CNAME = 5, T_SOA = 6, T_PTR = 12, T_MX = 15, T_TXT = 16, T_AAAA = 28 };

struct pkt {
	uint8_t b[16384];
	size_t len;
};

static void put8(struct pkt *p, unsigned v)
{
	assert_true(p->len < sizeof p->b);
	p->b[p->len++] = (uint8_t)v;
}

static void put16(struct pkt *p, unsigned v)
{
	put8(p, v >> 8);
	put8(p, v & 0xff);
}

static void put32(struct pkt *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p, v & 0xffff);
}

static void set16(struct pkt *p, size_t at, unsigned v)
{
	p->b[at] = (uint8_t)(v >> 8);
	p->b[at + 1] = (uint8_t)v;
}

/* "a.b.c" uncompressed; "" or "." is the root. */
static void put_name(struct pkt *p, const char *name)
{
	while (*name != '\0' && strcmp(name, ".") != 0) {
		size_t l = strcspn(name, ".");

		put8(p, (unsigned)l);
		for (size_t i = 0; i < l; i++)
			put8(p, (uint8_t)name[i]);
		name += l;
		if (*name == '.')
			name++;
	}
	put8(p, 0);
}

static void put_ptr(struct pkt *p, size_t off)
{
	put16(p, 0xC000 | (unsigned)off);
}

/* Header with QR set and the counts; then one question. */
static void start(struct pkt *p, unsigned rcode, const char *qname, unsigned qtype,
		  unsigned ancount)
{
	p->len = 0;
	put16(p, 0x1234);
	put16(p, 0x8180 | rcode);
	put16(p, 1);
	put16(p, ancount);
	put16(p, 0);
	put16(p, 0);
	put_name(p, qname);
	put16(p, qtype);
	put16(p, 1);
}

#define QNAME_OFF 12 /* a pointer to the question's name */

/* The TTL of the records added next. */
static uint32_t rr_ttl = 300;

/* Record header, owner a pointer to `owner` (or a name when ownername); returns where RDLENGTH goes. */
static size_t rr_owned(struct pkt *p, size_t owner, const char *ownername, unsigned type)
{
	size_t at;

	if (ownername != NULL)
		put_name(p, ownername);
	else
		put_ptr(p, owner);
	put16(p, type);
	put16(p, 1);
	put32(p, rr_ttl);
	at = p->len;
	put16(p, 0);
	return at;
}

/* ... owned by the question's name. */
static size_t rr(struct pkt *p, unsigned type)
{
	return rr_owned(p, QNAME_OFF, NULL, type);
}

/* "a{63}.a{63}...": labels of 63 octets, then a last label of `last` octets. */
static void long_name(char *out, int labels, int last)
{
	char *o = out;

	for (int i = 0; i < labels; i++) {
		memset(o, 'a', 63);
		o[63] = '.';
		o += 64;
	}
	memset(o, 'b', (size_t)last);
	o[last] = '\0';
}

static void rr_end(struct pkt *p, size_t at)
{
	set16(p, at, (unsigned)(p->len - at - 2));
}

static void add_mx(struct pkt *p, unsigned pref, const char *host)
{
	size_t at = rr(p, T_MX);

	put16(p, pref);
	put_name(p, host);
	rr_end(p, at);
}

/* Strings separated by '|' become separate character-strings. */
static void add_txt(struct pkt *p, const char *strings)
{
	size_t at = rr(p, T_TXT);

	for (;;) {
		size_t l = strcspn(strings, "|");

		put8(p, (unsigned)l);
		for (size_t i = 0; i < l; i++)
			put8(p, (uint8_t)strings[i]);
		if (strings[l] == '\0')
			break;
		strings += l + 1;
	}
	rr_end(p, at);
}

static void add_a(struct pkt *p, const char *ip)
{
	size_t at = rr(p, T_A);
	uint8_t a[4];

	assert_int_equal(inet_pton(AF_INET, ip, a), 1);
	for (int i = 0; i < 4; i++)
		put8(p, a[i]);
	rr_end(p, at);
}

static void add_aaaa(struct pkt *p, const char *ip)
{
	size_t at = rr(p, T_AAAA);
	uint8_t a[16];

	assert_int_equal(inet_pton(AF_INET6, ip, a), 1);
	for (int i = 0; i < 16; i++)
		put8(p, a[i]);
	rr_end(p, at);
}

static void add_ptr(struct pkt *p, const char *target)
{
	size_t at = rr(p, T_PTR);

	put_name(p, target);
	rr_end(p, at);
}

/*
 * An SOA in the authority section (RFC 2308 3), after every answer: the
 * record's TTL is rr_ttl, MINIMUM is minimum. Sets NSCOUNT to 1.
 */
static void add_soa(struct pkt *p, const char *zone, uint32_t minimum)
{
	size_t at = rr_owned(p, 0, zone, T_SOA);

	put_name(p, "ns.example.org");
	put_name(p, "hostmaster.example.org");
	put32(p, 2024010101);	/* serial */
	put32(p, 3600);		/* refresh */
	put32(p, 600);		/* retry */
	put32(p, 86400);	/* expire */
	put32(p, minimum);
	rr_end(p, at);
	set16(p, 8, 1);
}

/* Seeds for fuzz/fuzz_dns.c, which gives each input to every parser. */
static void seed(const char *name, const struct pkt *p)
{
	const char *dir = getenv("DNS_TEST_SEED_DIR");
	char path[512];
	FILE *f;

	if (dir == NULL)
		return;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	fwrite(p->b, 1, p->len, f);
	fclose(f);
}

static int parse_mx(const struct pkt *p, struct dns_mx_result *r)
{
	return dns_parse_mx(p->b, p->len, r);
}

static int parse_txt(const struct pkt *p, struct dns_txt_result *r)
{
	return dns_parse_txt(p->b, p->len, r);
}

/* ------------------------------------------------------------------ */
/* MX */

static void test_mx_sorted(void **state)
{
	struct pkt p;
	struct dns_mx_result r;

	(void)state;
	start(&p, 0, "example.org", T_MX, 3);
	add_mx(&p, 30, "MX3.Example.org.");
	add_mx(&p, 10, "mx1.example.org");
	add_mx(&p, 20, "mx2.example.net");
	seed("mx_sorted", &p);
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_false(r.null_mx);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.mx[0].pref, 10);
	assert_string_equal(r.mx[0].host, "mx1.example.org");
	assert_int_equal(r.mx[1].pref, 20);
	assert_string_equal(r.mx[1].host, "mx2.example.net");
	assert_int_equal(r.mx[2].pref, 30);
	assert_string_equal(r.mx[2].host, "mx3.example.org"); /* lower case, no dot */
	dns_mx_result_free(&r);
}

/* What a resolver sends back to c-ares: an OPT record (RFC 6891) in the additional section. */
static void test_mx_with_opt(void **state)
{
	struct pkt p;
	struct dns_mx_result r;

	(void)state;
	start(&p, 0, "example.org", T_MX, 1);
	add_mx(&p, 10, "mx.example.org");
	set16(&p, 10, 1);
	put8(&p, 0);		/* root owner */
	put16(&p, 41);		/* OPT */
	put16(&p, 1232);	/* payload size */
	put32(&p, 0);
	put16(&p, 0);
	seed("mx_opt", &p);
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
	dns_mx_result_free(&r);
}

/* RFC 5321 5.1: both hosts of equal preference, in both orders over many tries. */
static void test_mx_equal_prefs_random(void **state)
{
	struct pkt p;
	struct dns_mx_result r;
	int a_first = 0, b_first = 0;

	(void)state;
	start(&p, 0, "example.org", T_MX, 3);
	add_mx(&p, 10, "a.example.org");
	add_mx(&p, 10, "b.example.org");
	add_mx(&p, 5, "first.example.org");
	seed("mx_equal", &p);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(parse_mx(&p, &r), 0);
		assert_int_equal(r.n, 3);
		assert_string_equal(r.mx[0].host, "first.example.org");
		assert_int_equal(r.mx[1].pref, 10);
		assert_int_equal(r.mx[2].pref, 10);
		if (strcmp(r.mx[1].host, "a.example.org") == 0) {
			assert_string_equal(r.mx[2].host, "b.example.org");
			a_first++;
		} else {
			assert_string_equal(r.mx[1].host, "b.example.org");
			assert_string_equal(r.mx[2].host, "a.example.org");
			b_first++;
		}
		dns_mx_result_free(&r);
	}
	assert_true(a_first > 0 && b_first > 0);
}

static void test_null_mx(void **state)
{
	struct pkt p;
	struct dns_mx_result r;

	(void)state;
	start(&p, 0, "nomail.example", T_MX, 1);
	add_mx(&p, 0, ".");
	seed("mx_null", &p);
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_true(r.null_mx);
	assert_int_equal(r.n, 0);
	dns_mx_result_free(&r);

	/* "." with another preference is no null MX, and no host either */
	start(&p, 0, "nomail.example", T_MX, 1);
	add_mx(&p, 10, ".");
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_false(r.null_mx);
	assert_non_null(strstr(r.error, "no usable MX"));
	dns_mx_result_free(&r);
}

/*
 * RFC 7505 3: "A domain that advertises a null MX MUST NOT advertise any
 * other MX RR", and "." is not a valid host name: with other MX present
 * the "." is skipped like a bad host and the others are used.
 */
static void test_null_mx_with_others(void **state)
{
	struct pkt p;
	struct dns_mx_result r;

	(void)state;
	start(&p, 0, "mixed.example", T_MX, 2);
	add_mx(&p, 0, ".");
	add_mx(&p, 10, "mx.mixed.example");
	seed("mx_null_mixed", &p);
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_false(r.null_mx);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.mx[0].host, "mx.mixed.example");
	dns_mx_result_free(&r);

	/* two null MX are not "exactly one" */
	start(&p, 0, "mixed.example", T_MX, 2);
	add_mx(&p, 0, ".");
	add_mx(&p, 0, ".");
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_false(r.null_mx);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	dns_mx_result_free(&r);
}

static void test_mx_bad_hosts_skipped(void **state)
{
	struct pkt p;
	struct dns_mx_result r;

	(void)state;
	start(&p, 0, "example.org", T_MX, 7);
	add_mx(&p, 10, "under_score.example.org");
	add_mx(&p, 10, "192.0.2.1");	/* an IP address is not a host name */
	add_mx(&p, 10, "-lead.example.org");
	add_mx(&p, 10, "trail-.example.org");
	add_mx(&p, 10, "sp ace.example.org");
	add_mx(&p, 40, "good.example.org");
	add_mx(&p, 50, "xn--bcher-kva.example"); /* an A-label is LDH */
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.mx[0].host, "good.example.org");
	assert_string_equal(r.mx[1].host, "xn--bcher-kva.example");
	dns_mx_result_free(&r);

	/* a label holding a '.' octet must not pass as two labels */
	start(&p, 0, "example.org", T_MX, 1);
	{
		size_t at = rr(&p, T_MX);

		put16(&p, 10);
		put8(&p, 7);
		for (const char *s = "a.b.org"; *s; s++)
			put8(&p, (uint8_t)*s);
		put8(&p, 0);
		rr_end(&p, at);
	}
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_int_equal(r.n, 0);
	dns_mx_result_free(&r);
}

static void test_mx_duplicate_host_kept_once(void **state)
{
	struct pkt p;
	struct dns_mx_result r;

	(void)state;
	start(&p, 0, "example.org", T_MX, 3);
	add_mx(&p, 20, "mx.example.org");
	add_mx(&p, 10, "MX.example.org");
	add_mx(&p, 30, "other.example.org");
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.mx[0].pref, 10);
	assert_string_equal(r.mx[0].host, "mx.example.org");
	dns_mx_result_free(&r);
}

static void test_mx_rcodes(void **state)
{
	static const struct {
		unsigned rcode;
		enum dns_status want;
		const char *words;
	} cases[] = {
		{ 3, DNS_NXDOMAIN, "NXDOMAIN" }, { 2, DNS_TEMPFAIL, "SERVFAIL" },
		{ 5, DNS_TEMPFAIL, "REFUSED" },	 { 1, DNS_TEMPFAIL, "FORMERR" },
		{ 4, DNS_TEMPFAIL, "NOTIMP" },	 { 9, DNS_TEMPFAIL, "code 9" },
	};
	struct pkt p;
	struct dns_mx_result r;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		start(&p, cases[i].rcode, "example.org", T_MX, 0);
		if (cases[i].rcode == 3)
			seed("mx_nxdomain", &p);
		assert_int_equal(parse_mx(&p, &r), 0);
		assert_int_equal(r.status, cases[i].want);
		assert_non_null(strstr(r.error, cases[i].words));
		dns_mx_result_free(&r);
	}
	start(&p, 0, "example.org", T_MX, 0);
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_NODATA);
	dns_mx_result_free(&r);

	/* TC: c-ares asks again over TCP; the parser says tempfail */
	start(&p, 0, "example.org", T_MX, 0);
	set16(&p, 2, 0x8380);
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	dns_mx_result_free(&r);
}

/* The recursive server follows CNAMEs; records count only along the chain. */
static void test_mx_cname_chain(void **state)
{
	struct pkt p;
	struct dns_mx_result r;
	size_t at, real, b;

	(void)state;
	/* the MX before the CNAME that leads to it: order does not matter */
	start(&p, 0, "alias.example.org", T_MX, 3);
	real = p.len;
	at = rr_owned(&p, 0, "real.example.net", T_MX);
	put16(&p, 10);
	put_ptr(&p, real); /* an MX host that is itself a CNAME target is tolerated */
	rr_end(&p, at);
	at = rr(&p, T_CNAME);
	put_ptr(&p, real);
	rr_end(&p, at);
	/* an MX of a name off the chain is ignored */
	at = rr_owned(&p, 0, "evil.example", T_MX);
	put16(&p, 1);
	put_name(&p, "mx.evil.example");
	rr_end(&p, at);
	seed("mx_cname", &p);
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.mx[0].host, "real.example.net");
	dns_mx_result_free(&r);

	/* only a CNAME: its target has no MX */
	start(&p, 0, "alias.example.org", T_MX, 1);
	at = rr(&p, T_CNAME);
	put_name(&p, "real.example.net");
	rr_end(&p, at);
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_NODATA);
	dns_mx_result_free(&r);

	/* a CNAME loop a -> b -> a ends */
	start(&p, 0, "a.example", T_MX, 2);
	at = rr(&p, T_CNAME);
	b = p.len;
	put_name(&p, "b.example");
	rr_end(&p, at);
	at = rr_owned(&p, b, NULL, T_CNAME);
	put_ptr(&p, QNAME_OFF);
	rr_end(&p, at);
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_NODATA);
	dns_mx_result_free(&r);
}

/* Every strict prefix of a good response is refused, never over-read. */
static void test_truncated_packets(void **state)
{
	struct pkt p;
	struct dns_mx_result r;
	struct dns_txt_result t;

	(void)state;
	start(&p, 0, "example.org", T_MX, 2);
	add_mx(&p, 10, "mx1.example.org");
	add_mx(&p, 20, "mx2.example.org");
	for (size_t n = 0; n < p.len; n++) {
		uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any over-read */

		assert_non_null(copy);
		memcpy(copy, p.b, n);
		assert_int_equal(dns_parse_mx(copy, n, &r), -1);
		assert_int_equal(r.status, DNS_TEMPFAIL);
		assert_int_equal(r.n, 0);
		assert_non_null(strstr(r.error, "malformed"));
		dns_mx_result_free(&r);
		free(copy);
	}
	start(&p, 0, "example.org", T_TXT, 1);
	add_txt(&p, "v=spf1 |-all");
	for (size_t n = 0; n < p.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);

		assert_non_null(copy);
		memcpy(copy, p.b, n);
		assert_int_equal(dns_parse_txt(copy, n, &t), -1);
		assert_int_equal(t.status, DNS_TEMPFAIL);
		dns_txt_result_free(&t);
		free(copy);
	}
}

static void test_compression_pointers(void **state)
{
	struct pkt p;
	struct dns_mx_result r;
	size_t self;

	(void)state;
	/* an owner name that points at itself */
	start(&p, 0, "example.org", T_MX, 1);
	self = p.len;
	put_ptr(&p, self);
	put16(&p, T_MX);
	put16(&p, 1);
	put32(&p, 300);
	put16(&p, 3);
	put16(&p, 10);
	put8(&p, 0);
	seed("mx_ptr_self", &p);
	assert_int_equal(parse_mx(&p, &r), -1);
	assert_non_null(strstr(r.error, "malformed"));
	dns_mx_result_free(&r);

	/* two pointers at each other, in the exchange */
	start(&p, 0, "example.org", T_MX, 1);
	{
		size_t at = rr(&p, T_MX), a;

		put16(&p, 10);
		a = p.len;
		put_ptr(&p, a + 2);
		put_ptr(&p, a);
		rr_end(&p, at);
	}
	seed("mx_ptr_pair", &p);
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);

	/* a label then a pointer back to that label: a loop that grows the name */
	start(&p, 0, "example.org", T_MX, 1);
	{
		size_t at = rr(&p, T_MX), a;

		put16(&p, 10);
		a = p.len;
		put8(&p, 1);
		put8(&p, 'x');
		put_ptr(&p, a);
		rr_end(&p, at);
	}
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);

	/* past the end, and into the header */
	start(&p, 0, "example.org", T_MX, 1);
	{
		size_t at = rr(&p, T_MX);

		put16(&p, 10);
		put_ptr(&p, 0x3FFF);
		rr_end(&p, at);
	}
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);
	start(&p, 0, "example.org", T_MX, 1);
	{
		size_t at = rr(&p, T_MX);

		put16(&p, 10);
		put_ptr(&p, 2);
		rr_end(&p, at);
	}
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);

	/* the 0x40 and 0x80 label types */
	start(&p, 0, "example.org", T_MX, 1);
	{
		size_t at = rr(&p, T_MX);

		put16(&p, 10);
		put8(&p, 0x41);
		put8(&p, 0);
		rr_end(&p, at);
	}
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);
}

static void test_malformed(void **state)
{
	struct pkt p;
	struct dns_mx_result r;

	(void)state;
	/* more answers announced than present */
	start(&p, 0, "example.org", T_MX, 0xFFFF);
	add_mx(&p, 10, "mx.example.org");
	seed("mx_count_big", &p);
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);

	/* two questions */
	start(&p, 0, "example.org", T_MX, 0);
	set16(&p, 4, 2);
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);

	/* a query, not a response */
	start(&p, 0, "example.org", T_MX, 0);
	set16(&p, 2, 0x0100);
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);

	/* the answer to another question type */
	start(&p, 0, "example.org", T_A, 1);
	add_a(&p, "192.0.2.1");
	assert_int_equal(parse_mx(&p, &r), -1);
	assert_non_null(strstr(r.error, "question type"));
	dns_mx_result_free(&r);

	/* RDLENGTH past the end; MX exchange shorter or longer than RDATA */
	start(&p, 0, "example.org", T_MX, 1);
	add_mx(&p, 10, "mx.example.org");
	set16(&p, p.len - 16 - 2 - 2, 200);
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);
	start(&p, 0, "example.org", T_MX, 1);
	{
		size_t at = rr(&p, T_MX);

		put16(&p, 10);
		put_name(&p, "mx.example.org");
		put8(&p, 0); /* one octet too many */
		rr_end(&p, at);
	}
	assert_int_equal(parse_mx(&p, &r), -1);
	dns_mx_result_free(&r);

	/* another class is skipped, not an error */
	start(&p, 0, "example.org", T_MX, 1);
	add_mx(&p, 10, "mx.example.org");
	set16(&p, QNAME_OFF + 13 + 4 + 2 + 2, 3);	/* CLASS of the record: CH */
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_NODATA);
	dns_mx_result_free(&r);

	/* a question name of 256 octets in wire form: 4 * 64 + 2 + 1 */
	{
		char big[300];

		long_name(big, 4, 1);
		start(&p, 0, big, T_MX, 0);
		assert_int_equal(parse_mx(&p, &r), -1);
		dns_mx_result_free(&r);
		long_name(big, 3, 61); /* 253 octets of text: 255 in wire form */
		start(&p, 0, big, T_MX, 0);
		assert_int_equal(parse_mx(&p, &r), 0);
		assert_int_equal(r.status, DNS_NODATA);
		dns_mx_result_free(&r);
	}
}

static void test_mx_cap(void **state)
{
	struct pkt p;
	struct dns_mx_result r;
	char host[64];

	(void)state;
	start(&p, 0, "example.org", T_MX, 100);
	for (unsigned i = 0; i < 100; i++) {
		snprintf(host, sizeof host, "mx%u.example.org", i);
		add_mx(&p, 1000 - i, host);	/* the best come last */
	}
	assert_int_equal(parse_mx(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, DNS_MAX_RECORDS);
	assert_true(r.truncated);
	assert_int_equal(r.mx[0].pref, 901);
	assert_int_equal(r.mx[DNS_MAX_RECORDS - 1].pref, 901 + DNS_MAX_RECORDS - 1);
	dns_mx_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* TXT and A/AAAA */

static void test_txt(void **state)
{
	struct pkt p;
	struct dns_txt_result r;

	(void)state;
	start(&p, 0, "example.org", T_TXT, 3);
	add_txt(&p, "v=spf1 |include:_spf.example.net| -all");
	add_txt(&p, "");
	add_txt(&p, "google-site-verification=abc");
	seed("txt_three", &p);
	assert_int_equal(parse_txt(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.txt[0].len, strlen("v=spf1 include:_spf.example.net -all"));
	assert_string_equal(r.txt[0].text, "v=spf1 include:_spf.example.net -all");
	assert_int_equal(r.txt[1].len, 0);
	assert_string_equal(r.txt[1].text, "");
	assert_string_equal(r.txt[2].text, "google-site-verification=abc");
	dns_txt_result_free(&r);

	/* a NUL inside is kept, len says so */
	start(&p, 0, "example.org", T_TXT, 1);
	{
		size_t at = rr(&p, T_TXT);

		put8(&p, 3);
		put8(&p, 'a');
		put8(&p, 0);
		put8(&p, 'b');
		rr_end(&p, at);
	}
	assert_int_equal(parse_txt(&p, &r), 0);
	assert_int_equal(r.txt[0].len, 3);
	assert_memory_equal(r.txt[0].text, "a\0b", 4);
	dns_txt_result_free(&r);

	/* a string running past RDLENGTH; an empty RDATA */
	start(&p, 0, "example.org", T_TXT, 1);
	{
		size_t at = rr(&p, T_TXT);

		put8(&p, 10);
		put8(&p, 'a');
		rr_end(&p, at);
		put8(&p, 'b'); /* bytes after, so only RDLENGTH can stop it */
		put8(&p, 'c');
	}
	seed("txt_overrun", &p);
	assert_int_equal(parse_txt(&p, &r), -1);
	assert_int_equal(r.n, 0);
	dns_txt_result_free(&r);
	start(&p, 0, "example.org", T_TXT, 2);
	add_txt(&p, "first");
	{
		size_t at = rr(&p, T_TXT);

		rr_end(&p, at);
	}
	assert_int_equal(parse_txt(&p, &r), -1);
	assert_int_equal(r.n, 0);	/* never a partial set */
	dns_txt_result_free(&r);

	start(&p, 3, "_dmarc.example.org", T_TXT, 0);
	assert_int_equal(parse_txt(&p, &r), 0);
	assert_int_equal(r.status, DNS_NXDOMAIN);
	dns_txt_result_free(&r);
	start(&p, 0, "_dmarc.example.org", T_TXT, 0);
	assert_int_equal(parse_txt(&p, &r), 0);
	assert_int_equal(r.status, DNS_NODATA);
	dns_txt_result_free(&r);
}

static void test_txt_cap_and_long(void **state)
{
	struct pkt p;
	struct dns_txt_result r;
	char s[300];

	(void)state;
	start(&p, 0, "example.org", T_TXT, 70);
	for (int i = 0; i < 70; i++) {
		snprintf(s, sizeof s, "record %d", i);
		add_txt(&p, s);
	}
	assert_int_equal(parse_txt(&p, &r), 0);
	assert_int_equal(r.n, DNS_MAX_RECORDS);
	assert_true(r.truncated);
	dns_txt_result_free(&r);

	/* a DKIM key of four 255-octet strings */
	memset(s, 'k', 255);
	s[255] = '|';
	memcpy(s + 256, "end", 4);
	start(&p, 0, "sel._domainkey.example.org", T_TXT, 1);
	{
		char all[1100];

		snprintf(all, sizeof all, "%.255s|%.255s|%.255s|%s", s, s, s, s);
		add_txt(&p, all);
	}
	seed("txt_dkim", &p);
	assert_int_equal(parse_txt(&p, &r), 0);
	assert_int_equal(r.txt[0].len, 4 * 255 + 3);
	dns_txt_result_free(&r);
}

static void test_addr(void **state)
{
	struct pkt p;
	struct dns_addr_result r;
	char buf[INET6_ADDRSTRLEN];

	(void)state;
	start(&p, 0, "mx.example.org", T_A, 2);
	add_a(&p, "192.0.2.1");
	add_a(&p, "192.0.2.2");
	seed("a_two", &p);
	assert_int_equal(dns_parse_addr(p.b, p.len, AF_INET, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.addr[1].ss_family, AF_INET);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&r.addr[1])->sin_addr, buf, sizeof buf);
	assert_string_equal(buf, "192.0.2.2");
	assert_int_equal(((struct sockaddr_in *)&r.addr[1])->sin_port, 0);
	dns_addr_result_free(&r);

	/* the A answer is not an AAAA answer */
	assert_int_equal(dns_parse_addr(p.b, p.len, AF_INET6, &r), -1);
	dns_addr_result_free(&r);

	start(&p, 0, "mx.example.org", T_AAAA, 1);
	add_aaaa(&p, "2001:db8::25");
	seed("aaaa_one", &p);
	assert_int_equal(dns_parse_addr(p.b, p.len, AF_INET6, &r), 0);
	assert_int_equal(r.n, 1);
	inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&r.addr[0])->sin6_addr, buf, sizeof buf);
	assert_string_equal(buf, "2001:db8::25");
	dns_addr_result_free(&r);

	/* an A record of 5 octets */
	start(&p, 0, "mx.example.org", T_A, 1);
	{
		size_t at = rr(&p, T_A);

		put32(&p, 0xC0000201);
		put8(&p, 0);
		rr_end(&p, at);
	}
	assert_int_equal(dns_parse_addr(p.b, p.len, AF_INET, &r), -1);
	dns_addr_result_free(&r);
}

static void test_hostname_valid(void **state)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ "example.org", true },
		{ "example.org.", true },
		{ "EXAMPLE.org", true },
		{ "localhost", true },
		{ "a-b.c0.example", true },
		{ "xn--bcher-kva.example", true },
		{ "3com.com", true },
		{ "", false },
		{ ".", false },
		{ "example.org..", false },
		{ ".example.org", false },
		{ "a..b", false },
		{ "-a.example", false },
		{ "a-.example", false },
		{ "under_score.example", false },
		{ "sp ace.example", false },
		{ "192.0.2.1", false },
		{ "[192.0.2.1]", false },
		{ "[IPv6:2001:db8::1]", false },
		{ "2001:db8::1", false },
		{ "example.123", false },
		{ "b\xc3\xbc" "cher.example", false },
	};
	char name[300];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (dns_hostname_valid(cases[i].name) != cases[i].ok)
			fail_msg("dns_hostname_valid(\"%s\") != %d", cases[i].name, cases[i].ok);
	}
	/* a label of 64 octets */
	long_name(name, 0, 64);
	assert_false(dns_hostname_valid(name));
	long_name(name, 0, 63);
	assert_true(dns_hostname_valid(name));
	/* 253 octets pass, with or without the trailing dot; 254 do not */
	long_name(name, 3, 61);
	assert_int_equal(strlen(name), 253);
	assert_true(dns_hostname_valid(name));
	strcat(name, ".");
	assert_true(dns_hostname_valid(name));
	name[253] = 'b';
	assert_false(dns_hostname_valid(name));
}

static void test_status_names(void **state)
{
	(void)state;
	assert_string_equal(dns_status_name(DNS_OK), "ok");
	assert_string_equal(dns_status_name(DNS_NXDOMAIN), "nxdomain");
	assert_string_equal(dns_status_name(DNS_NODATA), "nodata");
	assert_string_equal(dns_status_name(DNS_TEMPFAIL), "tempfail");
	assert_string_equal(dns_status_name(DNS_BADNAME), "badname");
}

/* ------------------------------------------------------------------ */
/* PTR, reverse names, TTLs, loose names */

static int parse_ptr(const struct pkt *p, struct dns_ptr_result *r)
{
	return dns_parse_ptr(p->b, p->len, r);
}

#define REV4 "9.0.0.127.in-addr.arpa"

static void test_ptr(void **state)
{
	struct pkt p;
	struct dns_ptr_result r;

	(void)state;
	start(&p, 0, REV4, T_PTR, 4);
	add_ptr(&p, "Host.Example.ORG.");
	add_ptr(&p, "_spf.example.net");	/* not LDH, still a name SPF can look up */
	add_ptr(&p, "host.example.org");	/* the first again: kept once */
	add_ptr(&p, "mail.example.org");
	seed("ptr_four", &p);
	assert_int_equal(parse_ptr(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_false(r.truncated);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.names[0], "host.example.org");	/* lower case, no dot */
	assert_string_equal(r.names[1], "_spf.example.net");
	assert_string_equal(r.names[2], "mail.example.org");
	assert_int_equal(r.ttl, 300);
	dns_ptr_result_free(&r);
	assert_null(r.names);
	assert_int_equal(r.n, 0);

	/* unusable targets are skipped: the root, a space, a '.' or a control octet inside a label */
	start(&p, 0, REV4, T_PTR, 5);
	add_ptr(&p, ".");
	add_ptr(&p, "sp ace.example.org");
	{
		static const char *inside[] = { "a.b", "a\001b", "a\\b" };

		for (size_t i = 0; i < 3; i++) {
			size_t at = rr(&p, T_PTR), l = strlen(inside[i]);

			put8(&p, (unsigned)l);
			for (size_t k = 0; k < l; k++)
				put8(&p, (uint8_t)inside[i][k]);
			put_name(&p, "example.org");
			rr_end(&p, at);
		}
	}
	seed("ptr_unusable", &p);
	assert_int_equal(parse_ptr(&p, &r), 0);
	assert_int_equal(r.status, DNS_NODATA);
	assert_int_equal(r.n, 0);
	assert_non_null(strstr(r.error, "no usable PTR name (5 skipped)"));
	dns_ptr_result_free(&r);

	/* the PTR answer is not an MX answer, nor the other way round */
	start(&p, 0, REV4, T_PTR, 1);
	add_ptr(&p, "host.example.org");
	{
		struct dns_mx_result m;

		assert_int_equal(parse_mx(&p, &m), -1);
		dns_mx_result_free(&m);
	}
	start(&p, 0, "example.org", T_MX, 1);
	add_mx(&p, 10, "mx.example.org");
	assert_int_equal(parse_ptr(&p, &r), -1);
	assert_non_null(strstr(r.error, "question type"));
	dns_ptr_result_free(&r);

	start(&p, 3, REV4, T_PTR, 0);
	assert_int_equal(parse_ptr(&p, &r), 0);
	assert_int_equal(r.status, DNS_NXDOMAIN);
	dns_ptr_result_free(&r);
	start(&p, 0, REV4, T_PTR, 0);
	assert_int_equal(parse_ptr(&p, &r), 0);
	assert_int_equal(r.status, DNS_NODATA);
	assert_string_equal(r.error, "no PTR record");
	dns_ptr_result_free(&r);
	start(&p, 2, REV4, T_PTR, 0);
	assert_int_equal(parse_ptr(&p, &r), 0);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	dns_ptr_result_free(&r);
}

/* RFC 2317 classless delegation: the PTR sits at the target of a CNAME. */
static void test_ptr_cname(void **state)
{
	struct pkt p;
	struct dns_ptr_result r;
	size_t at, target;

	(void)state;
	start(&p, 0, REV4, T_PTR, 3);
	rr_ttl = 600;
	at = rr(&p, T_CNAME);
	target = p.len;
	put_name(&p, "9.0/25.0.0.127.in-addr.arpa");
	rr_end(&p, at);
	rr_ttl = 120;
	at = rr_owned(&p, target, NULL, T_PTR);
	put_name(&p, "host.example.org");
	rr_end(&p, at);
	rr_ttl = 5;
	/* a PTR of a name off the chain is ignored */
	at = rr_owned(&p, 0, "1.0.0.127.in-addr.arpa", T_PTR);
	put_name(&p, "evil.example");
	rr_end(&p, at);
	rr_ttl = 300;
	seed("ptr_cname", &p);
	assert_int_equal(parse_ptr(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.names[0], "host.example.org");
	assert_int_equal(r.ttl, 120);	/* the smaller of the CNAME's and the PTR's */
	dns_ptr_result_free(&r);
}

/* One bad PTR refuses the whole answer, never a partial set. */
static void test_ptr_malformed(void **state)
{
	struct pkt p;
	struct dns_ptr_result r;

	(void)state;
	/* PTRDNAME shorter than RDATA */
	start(&p, 0, REV4, T_PTR, 2);
	add_ptr(&p, "good.example.org");
	{
		size_t at = rr(&p, T_PTR);

		put_name(&p, "host.example.org");
		put8(&p, 0);
		rr_end(&p, at);
	}
	assert_int_equal(parse_ptr(&p, &r), -1);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_int_equal(r.n, 0);
	assert_null(r.names);
	assert_non_null(strstr(r.error, "bad PTR record"));
	dns_ptr_result_free(&r);

	/* PTRDNAME running past RDATA; empty RDATA */
	start(&p, 0, REV4, T_PTR, 1);
	{
		size_t at = rr(&p, T_PTR);

		put8(&p, 4);
		put8(&p, 'h');
		rr_end(&p, at);
		put_name(&p, "ost.example.org");
	}
	assert_int_equal(parse_ptr(&p, &r), -1);
	dns_ptr_result_free(&r);
	start(&p, 0, REV4, T_PTR, 1);
	rr_end(&p, rr(&p, T_PTR));
	assert_int_equal(parse_ptr(&p, &r), -1);
	dns_ptr_result_free(&r);

	/* a compression loop in PTRDNAME */
	start(&p, 0, REV4, T_PTR, 1);
	{
		size_t at = rr(&p, T_PTR), a = p.len;

		put8(&p, 1);
		put8(&p, 'x');
		put_ptr(&p, a);
		rr_end(&p, at);
	}
	seed("ptr_loop", &p);
	assert_int_equal(parse_ptr(&p, &r), -1);
	dns_ptr_result_free(&r);

	/* TC: c-ares asks again over TCP; the parser says tempfail */
	start(&p, 0, REV4, T_PTR, 1);
	add_ptr(&p, "host.example.org");
	set16(&p, 2, 0x8380);
	assert_int_equal(parse_ptr(&p, &r), 0);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_int_equal(r.n, 0);
	dns_ptr_result_free(&r);

	/* every strict prefix is refused, never over-read */
	start(&p, 0, REV4, T_PTR, 2);
	add_ptr(&p, "host.example.org");
	add_ptr(&p, "mail.example.org");
	for (size_t n = 0; n < p.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);

		assert_non_null(copy);
		memcpy(copy, p.b, n);
		assert_int_equal(dns_parse_ptr(copy, n, &r), -1);
		assert_int_equal(r.status, DNS_TEMPFAIL);
		assert_int_equal(r.n, 0);
		assert_non_null(strstr(r.error, "malformed"));
		dns_ptr_result_free(&r);
		free(copy);
	}
}

static void test_ptr_cap(void **state)
{
	struct pkt p;
	struct dns_ptr_result r;
	char host[64];

	(void)state;
	start(&p, 0, REV4, T_PTR, 70);
	for (unsigned i = 0; i < 70; i++) {
		snprintf(host, sizeof host, "h%u.example.org", i);
		add_ptr(&p, host);
	}
	assert_int_equal(parse_ptr(&p, &r), 0);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, DNS_MAX_RECORDS);
	assert_true(r.truncated);
	assert_string_equal(r.names[0], "h0.example.org");	/* the first ones, in order */
	assert_string_equal(r.names[DNS_MAX_RECORDS - 1], "h63.example.org");
	dns_ptr_result_free(&r);
}

static void ss4(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof *ss);
	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static void ss6(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	sin6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
}

/* RFC 1035 3.5 and RFC 3596 2.5 (whose example address this is). */
static void test_ptr_name(void **state)
{
	struct sockaddr_storage ss;
	char name[DNS_PTR_NAME_MAX], big[300];

	(void)state;
	ss4(&ss, "192.0.2.1");
	assert_int_equal(dns_ptr_name(&ss, name, sizeof name), 0);
	assert_string_equal(name, "1.2.0.192.in-addr.arpa");
	ss4(&ss, "255.255.255.255");
	assert_int_equal(dns_ptr_name(&ss, name, sizeof name), 0);
	assert_string_equal(name, "255.255.255.255.in-addr.arpa");

	ss6(&ss, "4321:0:1:2:3:4:567:89ab");
	assert_int_equal(dns_ptr_name(&ss, name, sizeof name), 0);
	assert_string_equal(name, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa");
	assert_int_equal(strlen(name), DNS_PTR_NAME_MAX - 1);
	ss6(&ss, "2001:DB8::FE");
	assert_int_equal(dns_ptr_name(&ss, big, sizeof big), 0);
	assert_string_equal(big, "e.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");

	/* IPv4-mapped: the IPv4 host's name */
	ss6(&ss, "::ffff:192.0.2.1");
	assert_int_equal(dns_ptr_name(&ss, name, sizeof name), 0);
	assert_string_equal(name, "1.2.0.192.in-addr.arpa");
	/* IPv4-compatible (deprecated) and NAT64 are plain IPv6 */
	ss6(&ss, "::192.0.2.1");
	assert_int_equal(dns_ptr_name(&ss, name, sizeof name), 0);
	assert_non_null(strstr(name, ".ip6.arpa"));

	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	assert_int_equal(dns_ptr_name(&ss, name, sizeof name), -1);
	ss4(&ss, "192.0.2.1");
	assert_int_equal(dns_ptr_name(&ss, name, DNS_PTR_NAME_MAX - 1), -1);
	assert_int_equal(dns_ptr_name(NULL, name, sizeof name), -1);
}

/* RFC 1035 3.2.1 and RFC 2308 5: what each answer may be kept for. */
static void test_ttl(void **state)
{
	struct pkt p;
	struct dns_txt_result t;
	struct dns_mx_result m;
	struct dns_addr_result a;
	size_t at;

	(void)state;
	/* the smallest of the records used: the TXT set and the CNAME */
	start(&p, 0, "alias.example.org", T_TXT, 4);
	rr_ttl = 900;
	at = rr(&p, T_CNAME);
	put_name(&p, "real.example.org");
	rr_end(&p, at);
	rr_ttl = 700;
	at = rr_owned(&p, 0, "real.example.org", T_TXT);
	put8(&p, 1);
	put8(&p, 'a');
	rr_end(&p, at);
	rr_ttl = 800;
	at = rr_owned(&p, 0, "real.example.org", T_TXT);
	put8(&p, 1);
	put8(&p, 'b');
	rr_end(&p, at);
	rr_ttl = 3;	/* off the chain: not used, not counted */
	at = rr_owned(&p, 0, "other.example.org", T_TXT);
	put8(&p, 1);
	put8(&p, 'c');
	rr_end(&p, at);
	assert_int_equal(parse_txt(&p, &t), 0);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.ttl, 700);
	dns_txt_result_free(&t);

	/* RFC 2181 8: a TTL with the top bit set is zero */
	rr_ttl = 0x80000000u;
	start(&p, 0, "example.org", T_MX, 1);
	add_mx(&p, 10, "mx.example.org");
	assert_int_equal(parse_mx(&p, &m), 0);
	assert_int_equal(m.status, DNS_OK);
	assert_int_equal(m.ttl, 0);
	dns_mx_result_free(&m);
	rr_ttl = 0x7FFFFFFFu;
	start(&p, 0, "example.org", T_MX, 1);
	add_mx(&p, 10, "mx.example.org");
	assert_int_equal(parse_mx(&p, &m), 0);
	assert_int_equal(m.ttl, 0x7FFFFFFFu);	/* the cache caps it, not the parser */
	dns_mx_result_free(&m);

	/* NXDOMAIN: the smaller of the SOA's TTL and MINIMUM */
	rr_ttl = 3600;
	start(&p, 3, "nowhere.example.org", T_A, 0);
	add_soa(&p, "example.org", 60);
	seed("a_nxdomain_soa", &p);
	assert_int_equal(dns_parse_addr(p.b, p.len, AF_INET, &a), 0);
	assert_int_equal(a.status, DNS_NXDOMAIN);
	assert_int_equal(a.ttl, 60);
	dns_addr_result_free(&a);
	rr_ttl = 30;
	start(&p, 3, "nowhere.example.org", T_A, 0);
	add_soa(&p, "example.org", 60);
	assert_int_equal(dns_parse_addr(p.b, p.len, AF_INET, &a), 0);
	assert_int_equal(a.ttl, 30);
	dns_addr_result_free(&a);

	/* NODATA after a CNAME: the CNAME bounds it too */
	start(&p, 0, "alias.example.org", T_TXT, 1);
	rr_ttl = 10;
	at = rr(&p, T_CNAME);
	put_name(&p, "real.example.org");
	rr_end(&p, at);
	rr_ttl = 300;
	add_soa(&p, "example.org", 120);
	seed("txt_nodata_soa", &p);
	assert_int_equal(parse_txt(&p, &t), 0);
	assert_int_equal(t.status, DNS_NODATA);
	assert_int_equal(t.ttl, 10);
	dns_txt_result_free(&t);

	/* without an SOA, or with a broken one: 0, and the answer still stands */
	start(&p, 0, "example.org", T_TXT, 0);
	assert_int_equal(parse_txt(&p, &t), 0);
	assert_int_equal(t.status, DNS_NODATA);
	assert_int_equal(t.ttl, 0);
	dns_txt_result_free(&t);
	start(&p, 3, "example.org", T_TXT, 0);
	add_soa(&p, "example.org", 120);
	p.b[p.len - 21] = 0xC0;	/* RNAME's root label made a pointer past the end */
	assert_int_equal(parse_txt(&p, &t), 0);
	assert_int_equal(t.status, DNS_NXDOMAIN);
	assert_int_equal(t.ttl, 0);
	dns_txt_result_free(&t);
	start(&p, 3, "example.org", T_TXT, 0);
	add_soa(&p, "example.org", 120);
	set16(&p, 8, 2);	/* a second authority record that is not there */
	p.len -= 1;		/* and the SOA one octet short */
	assert_int_equal(parse_txt(&p, &t), 0);
	assert_int_equal(t.status, DNS_NXDOMAIN);
	assert_int_equal(t.ttl, 0);
	dns_txt_result_free(&t);
	/* an NS before the SOA in the authority section is passed over */
	start(&p, 3, "example.org", T_TXT, 0);
	at = rr_owned(&p, 0, "example.org", 2);
	put_name(&p, "ns.example.org");
	rr_end(&p, at);
	add_soa(&p, "example.org", 45);
	set16(&p, 8, 2);
	assert_int_equal(parse_txt(&p, &t), 0);
	assert_int_equal(t.ttl, 45);
	dns_txt_result_free(&t);

	/* an SOA on a positive answer changes nothing; SERVFAIL is never kept */
	start(&p, 0, "example.org", T_TXT, 1);
	add_txt(&p, "x");
	add_soa(&p, "example.org", 5);
	assert_int_equal(parse_txt(&p, &t), 0);
	assert_int_equal(t.ttl, 300);
	dns_txt_result_free(&t);
	start(&p, 2, "example.org", T_TXT, 0);
	add_soa(&p, "example.org", 5);
	assert_int_equal(parse_txt(&p, &t), 0);
	assert_int_equal(t.status, DNS_TEMPFAIL);
	assert_int_equal(t.ttl, 0);
	dns_txt_result_free(&t);
	rr_ttl = 300;
}

static void test_name_loose_valid(void **state)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ "example.org", true },
		{ "_spf.example.org", true },
		{ "_spf.example.org.", true },
		{ "192.0.2.1", true },			/* asked as a name, as SPF does */
		{ "1.2.0.192.in-addr._spf.example.com", true },
		{ "a+b=c!.example", true },
		{ "[192.0.2.1]", true },
		{ "", false },
		{ ".", false },
		{ "a..b", false },
		{ ".a", false },
		{ "a b.example", false },
		{ "tab\t.example", false },
		{ "back\\slash.example", false },
		{ "b\xc3\xbc" "cher.example", false },
	};
	char name[300];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (dns_name_loose_valid(cases[i].name) != cases[i].ok)
			fail_msg("dns_name_loose_valid(\"%s\") != %d", cases[i].name, cases[i].ok);
	long_name(name, 0, 64);
	assert_false(dns_name_loose_valid(name));
	long_name(name, 3, 61);
	assert_true(dns_name_loose_valid(name));
	name[0] = '_';
	assert_true(dns_name_loose_valid(name));
	strcat(name, "b");
	assert_false(dns_name_loose_valid(name));
}

/* ------------------------------------------------------------------ */
/* a fake DNS server on the test's loop */

#define FAKE_CONNS 4

struct fake {
	uv_udp_t udp;
	uv_udp_t hole;		/* bound and never read: a server that never answers */
	uv_tcp_t tcp;
	uv_tcp_t conn[FAKE_CONNS];
	uint8_t cbuf[FAKE_CONNS][1024];
	size_t clen[FAKE_CONNS];
	size_t nconn;
	int port, hole_port;
	unsigned queries;	/* questions received, UDP and TCP */
	unsigned tcp_queries;
	unsigned edns;		/* questions with an additional record (OPT) */
	uint32_t ttl;		/* of every record sent */
	uint32_t soa_min;	/* MINIMUM of the SOA of nxsoa and nodatasoa */
};

#define REV6_LOOPBACK "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"

/* The reply to one query, or false to stay silent. */
static bool fake_answer(struct fake *f, const uint8_t *q, size_t qlen, bool tcp, struct pkt *out)
{
	char name[256] = "", first[64] = "";
	size_t off = 12, o = 0;
	unsigned qtype, rcode = 0;

	if (qlen < 12)
		return false;
	while (off < qlen && q[off] != 0 && o + q[off] + 2 < sizeof name) {
		if (o > 0)
			name[o++] = '.';
		memcpy(name + o, q + off + 1, q[off]);
		o += q[off];
		off += 1 + (size_t)q[off];
	}
	name[o] = '\0';
	if (off + 5 > qlen)
		return false;
	qtype = (unsigned)(q[off + 1] << 8 | q[off + 2]);
	f->queries++;
	f->tcp_queries += tcp;
	f->edns += (q[10] << 8 | q[11]) > 0;
	snprintf(first, sizeof first, "%.*s", (int)strcspn(name, "."), name);

	if (strcmp(first, "drop") == 0)
		return false;
	rr_ttl = f->ttl;
	if (strcmp(first, "nx") == 0 || strcmp(first, "nxsoa") == 0)
		rcode = 3;
	else if (strcmp(first, "servfail") == 0 ||
		 (strcmp(first, "halftemp") == 0 && qtype == T_AAAA))
		rcode = 2;
	else if (strcmp(first, "refused") == 0)
		rcode = 5;
	start(out, rcode, name, qtype, 0);
	set16(out, 0, (unsigned)(q[0] << 8 | q[1]));
	if (strcmp(first, "nxsoa") == 0 || strcmp(first, "nodatasoa") == 0) {
		add_soa(out, "example.org", f->soa_min);
		rr_ttl = 300;
		return true;
	}
	if (rcode != 0) {
		rr_ttl = 300;
		return true;
	}
	if (strcmp(first, "mx") == 0 && qtype == T_MX) {
		char host[300];

		snprintf(host, sizeof host, "mx2.%s", name);
		add_mx(out, 20, host);
		snprintf(host, sizeof host, "mx1.%s", name);
		add_mx(out, 10, host);
	} else if ((strcmp(first, "both") == 0 || strcmp(first, "v4only") == 0) && qtype == T_A) {
		add_a(out, first[0] == 'b' ? "127.0.0.2" : "127.0.0.3");
	} else if (strcmp(first, "both") == 0 && qtype == T_AAAA) {
		add_aaaa(out, "::1");
	} else if (strcmp(first, "txt") == 0 && qtype == T_TXT) {
		add_txt(out, "v=spf1 |-all");
	} else if (strcmp(name, REV4) == 0 && qtype == T_PTR) {
		add_ptr(out, "Host.Example.ORG.");
		add_ptr(out, "_spf.example.net");
	} else if (strcmp(name, REV6_LOOPBACK) == 0 && qtype == T_PTR) {
		add_ptr(out, "localhost");
	} else if (strcmp(first, "big") == 0 && qtype == T_TXT) {
		if (!tcp) {
			set16(out, 2, 0x8380);	/* TC: ask again over TCP (RFC 1035 4.2.1) */
			return true;
		}
		char s[12 * 251];

		for (int i = 0; i < 12; i++) {
			memset(s + i * 251, 'a' + i, 250);
			s[i * 251 + 250] = i < 11 ? '|' : '\0';
		}
		add_txt(out, s);
	}
	rr_ttl = 300;
	set16(out, 6, 0);
	for (size_t at = off + 5, n = 0; at < out->len; n++) {
		/* count the records added: owner ptr, type, class, ttl, rdlength, rdata */
		at += 2 + 8;
		at += 2 + (size_t)(out->b[at] << 8 | out->b[at + 1]);
		set16(out, 6, (unsigned)(n + 1));
	}
	return true;
}

static uint8_t fake_mem[65536];

static void fake_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
	(void)h;
	(void)size;
	*b = uv_buf_init((char *)fake_mem, sizeof fake_mem);
}

static void fake_udp_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
			  unsigned flags)
{
	struct fake *f = u->data;
	struct pkt out;
	uv_buf_t ob;

	(void)flags;
	if (n <= 0 || from == NULL || !fake_answer(f, (const uint8_t *)b->base, (size_t)n, false, &out))
		return;
	ob = uv_buf_init((char *)out.b, (unsigned)out.len);
	assert_int_equal(uv_udp_try_send(u, &ob, 1, from), (int)out.len);
}

static void fake_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct fake *f = s->data;
	size_t i = (size_t)((uv_tcp_t *)s - f->conn);

	if (n < 0) {
		uv_close((uv_handle_t *)s, NULL);
		return;
	}
	assert_true(f->clen[i] + (size_t)n <= sizeof f->cbuf[i]);
	memcpy(f->cbuf[i] + f->clen[i], b->base, (size_t)n);
	f->clen[i] += (size_t)n;
	while (f->clen[i] >= 2) {
		size_t qlen = (size_t)(f->cbuf[i][0] << 8 | f->cbuf[i][1]);
		struct pkt out;
		uint8_t len[2];
		uv_buf_t bufs[2];

		if (f->clen[i] < 2 + qlen)
			break;
		if (fake_answer(f, f->cbuf[i] + 2, qlen, true, &out)) {
			len[0] = (uint8_t)(out.len >> 8);
			len[1] = (uint8_t)out.len;
			bufs[0] = uv_buf_init((char *)len, 2);
			bufs[1] = uv_buf_init((char *)out.b, (unsigned)out.len);
			assert_int_equal(uv_try_write(s, bufs, 2), (int)(2 + out.len));
		}
		memmove(f->cbuf[i], f->cbuf[i] + 2 + qlen, f->clen[i] - 2 - qlen);
		f->clen[i] -= 2 + qlen;
	}
}

static void fake_tcp_accept(uv_stream_t *server, int status)
{
	struct fake *f = server->data;
	uv_tcp_t *c;

	assert_int_equal(status, 0);
	assert_true(f->nconn < FAKE_CONNS);
	c = &f->conn[f->nconn];
	f->clen[f->nconn++] = 0;
	uv_tcp_init(server->loop, c);
	c->data = f;
	assert_int_equal(uv_accept(server, (uv_stream_t *)c), 0);
	uv_read_start((uv_stream_t *)c, fake_alloc, fake_tcp_read);
}

static int bound_port(uv_handle_t *h)
{
	struct sockaddr_in sin;
	int len = sizeof sin;

	if (h->type == UV_UDP)
		assert_int_equal(uv_udp_getsockname((uv_udp_t *)h, (struct sockaddr *)&sin, &len), 0);
	else
		assert_int_equal(uv_tcp_getsockname((uv_tcp_t *)h, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void fake_start(uv_loop_t *loop, struct fake *f)
{
	struct sockaddr_in any;

	int ufd = -1, tfd = -1;

	memset(f, 0, sizeof *f);
	f->ttl = 300;
	f->soa_min = 300;
	uv_ip4_addr("127.0.0.1", 0, &any);
	uv_udp_init(loop, &f->udp);
	uv_udp_init(loop, &f->hole);
	uv_tcp_init(loop, &f->tcp);
	f->udp.data = f->tcp.data = f;
	/* UDP and TCP on one port: a random UDP port may be taken for TCP by
	 * another test running at the same time, so try until both bind. */
	for (int tries = 0; tries < 50 && tfd < 0; tries++) {
		struct sockaddr_in sin = any;
		socklen_t sl = sizeof sin;

		ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		assert_true(ufd >= 0);
		assert_int_equal(bind(ufd, (struct sockaddr *)&sin, sizeof sin), 0);
		assert_int_equal(getsockname(ufd, (struct sockaddr *)&sin, &sl), 0);
		tfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(tfd >= 0);
		if (bind(tfd, (struct sockaddr *)&sin, sizeof sin) < 0) {
			close(tfd);
			close(ufd);
			tfd = -1;
		}
	}
	assert_true(tfd >= 0);
	assert_int_equal(uv_udp_open(&f->udp, ufd), 0);
	assert_int_equal(uv_tcp_open(&f->tcp, tfd), 0);
	assert_int_equal(uv_udp_bind(&f->hole, (struct sockaddr *)&any, 0), 0);
	f->port = bound_port((uv_handle_t *)&f->udp);
	f->hole_port = bound_port((uv_handle_t *)&f->hole);
	assert_int_equal(uv_listen((uv_stream_t *)&f->tcp, 8, fake_tcp_accept), 0);
	assert_int_equal(uv_udp_recv_start(&f->udp, fake_alloc, fake_udp_recv), 0);
}

static void close_if_open(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void fake_stop(struct fake *f)
{
	close_if_open((uv_handle_t *)&f->udp);
	close_if_open((uv_handle_t *)&f->hole);
	close_if_open((uv_handle_t *)&f->tcp);
	for (size_t i = 0; i < f->nconn; i++)
		close_if_open((uv_handle_t *)&f->conn[i]);
}

/* ------------------------------------------------------------------ */
/* struct dns on the loop */

struct got {
	bool done;
	enum dns_status status;
	char error[128];
	size_t n;
	bool null_mx;
	uint16_t pref[4];
	char host[4][256];
	int family[4];
	char addr[4][INET6_ADDRSTRLEN];
	size_t len[4];
	char text[4][3100];
	uint64_t ms;		/* from the call to the callback */
	uint32_t ttl;
};

static struct {
	uv_loop_t loop;
	struct fake fake;
	uv_timer_t guard, action;
	bool guard_fired;
	struct dns *d;
	bool in_call;		/* inside a dns_* call or dns_free: no callback may run */
	int calls;
	int calls_at_close;	/* callbacks run when on_closed ran; -1 until then */
	uint64_t t0;
	struct got got[8];
	void (*then)(struct got *g);	/* run inside the next callback */
} C;

static void guard_cb(uv_timer_t *t)
{
	(void)t;
	C.guard_fired = true;
}

static int loop_setup(void **state)
{
	(void)state;
	memset(&C, 0, sizeof C);
	C.calls_at_close = -1;
	rr_ttl = 300;
	assert_int_equal(uv_loop_init(&C.loop), 0);
	fake_start(&C.loop, &C.fake);
	uv_timer_init(&C.loop, &C.guard);
	uv_timer_init(&C.loop, &C.action);
	return 0;
}

static void on_closed(void *arg)
{
	assert_ptr_equal(arg, &C);
	C.calls_at_close = C.calls;
}

static void run_until(int calls)
{
	C.guard_fired = false;
	uv_timer_start(&C.guard, guard_cb, 5000, 0);
	while (C.calls < calls && !C.guard_fired)
		uv_run(&C.loop, UV_RUN_ONCE);
	uv_timer_stop(&C.guard);
	assert_int_equal(C.calls, calls);
}

static void dns_close(void)
{
	if (C.d != NULL) {
		C.in_call = true;
		dns_free(C.d, on_closed, &C);
		C.in_call = false;
		C.d = NULL;
	}
	C.guard_fired = false;
	uv_timer_start(&C.guard, guard_cb, 5000, 0);
	while (C.calls_at_close < 0 && !C.guard_fired)
		uv_run(&C.loop, UV_RUN_ONCE);
	uv_timer_stop(&C.guard);
	assert_true(C.calls_at_close >= 0);
}

static int loop_teardown(void **state)
{
	(void)state;
	if (C.d != NULL || C.calls_at_close < 0)
		dns_close();
	fake_stop(&C.fake);
	uv_close((uv_handle_t *)&C.guard, NULL);
	uv_close((uv_handle_t *)&C.action, NULL);
	uv_run(&C.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&C.loop), 0);	/* every handle was closed */
	return 0;
}

static void dns_up(const char *servers, unsigned timeout_ms, unsigned tries)
{
	char err[256] = "", buf[128];

	if (servers == NULL) {
		snprintf(buf, sizeof buf, "127.0.0.1:%d", C.fake.port);
		servers = buf;
	}
	C.d = dns_new(&C.loop, servers, timeout_ms, tries, err, sizeof err);
	if (C.d == NULL)
		fail_msg("dns_new: %s", err);
}

static void got_common(struct got *g, enum dns_status st, const char *error, size_t n)
{
	if (C.in_call)
		fail_msg("a callback ran from inside a dns_* call");
	assert_false(g->done);
	g->done = true;
	g->status = st;
	snprintf(g->error, sizeof g->error, "%s", error);
	g->n = n;
	g->ms = (uv_hrtime() / 1000000) - C.t0;
	C.calls++;
}

static void then_run(struct got *g)
{
	void (*then)(struct got *) = C.then;

	C.then = NULL;
	if (then != NULL)
		then(g);
}

static void mx_cb(void *arg, const struct dns_mx_result *r)
{
	struct got *g = arg;

	got_common(g, r->status, r->error, r->n);
	g->null_mx = r->null_mx;
	g->ttl = r->ttl;
	for (size_t i = 0; i < r->n && i < 4; i++) {
		g->pref[i] = r->mx[i].pref;
		snprintf(g->host[i], sizeof g->host[i], "%s", r->mx[i].host);
	}
	then_run(g);
}

static void addr_cb(void *arg, const struct dns_addr_result *r)
{
	struct got *g = arg;

	got_common(g, r->status, r->error, r->n);
	g->ttl = r->ttl;
	for (size_t i = 0; i < r->n && i < 4; i++) {
		const struct sockaddr_storage *ss = &r->addr[i];

		g->family[i] = ss->ss_family;
		if (ss->ss_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, g->addr[i],
				  sizeof g->addr[i]);
		else
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, g->addr[i],
				  sizeof g->addr[i]);
	}
	then_run(g);
}

static void txt_cb(void *arg, const struct dns_txt_result *r)
{
	struct got *g = arg;

	got_common(g, r->status, r->error, r->n);
	g->ttl = r->ttl;
	for (size_t i = 0; i < r->n && i < 4; i++) {
		g->len[i] = r->txt[i].len;
		snprintf(g->text[i], sizeof g->text[i], "%s", r->txt[i].text);
	}
	then_run(g);
}

static void ptr_cb(void *arg, const struct dns_ptr_result *r)
{
	struct got *g = arg;

	got_common(g, r->status, r->error, r->n);
	g->ttl = r->ttl;
	for (size_t i = 0; i < r->n && i < 4; i++)
		snprintf(g->host[i], sizeof g->host[i], "%s", r->names[i]);
	then_run(g);
}

#define CALL(expr)                                 \
	do {                                       \
		C.in_call = true;                  \
		assert_int_equal((expr), 0);       \
		C.in_call = false;                 \
	} while (0)

static void now_t0(void)
{
	C.t0 = uv_hrtime() / 1000000;
}

static void test_loop_mx(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 2);
	now_t0();
	CALL(dns_mx(C.d, "mx.example.org", mx_cb, &C.got[0]));
	CALL(dns_mx(C.d, "nx.example.org.", mx_cb, &C.got[1]));
	run_until(2);
	assert_int_equal(C.got[0].status, DNS_OK);
	assert_int_equal(C.got[0].n, 2);
	assert_int_equal(C.got[0].pref[0], 10);
	assert_string_equal(C.got[0].host[0], "mx1.mx.example.org");
	assert_string_equal(C.got[0].host[1], "mx2.mx.example.org");
	assert_int_equal(C.got[1].status, DNS_NXDOMAIN);
	assert_int_equal(C.fake.queries, 2);
	assert_int_equal(C.fake.edns, 2);	/* EDNS0 on every query */
}

/* SERVFAIL and REFUSED: one question, DNS_TEMPFAIL at once, no retry. */
static void test_loop_servfail(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 3);
	now_t0();
	CALL(dns_mx(C.d, "servfail.example.org", mx_cb, &C.got[0]));
	CALL(dns_txt(C.d, "refused.example.org", txt_cb, &C.got[1]));
	run_until(2);
	assert_int_equal(C.got[0].status, DNS_TEMPFAIL);
	assert_non_null(strstr(C.got[0].error, "SERVFAIL"));
	assert_int_equal(C.got[1].status, DNS_TEMPFAIL);
	assert_non_null(strstr(C.got[1].error, "REFUSED"));
	assert_int_equal(C.fake.queries, 2);
	assert_true(C.got[0].ms < 500);
}

/* No answer: timeout_ms per try, tries in all, then DNS_TEMPFAIL. */
static void test_loop_timeout(void **state)
{
	(void)state;
	dns_up(NULL, 200, 2);
	now_t0();
	CALL(dns_mx(C.d, "drop.example.org", mx_cb, &C.got[0]));
	run_until(1);
	assert_int_equal(C.got[0].status, DNS_TEMPFAIL);
	assert_non_null(strstr(C.got[0].error, "2 tries of 200 ms"));
	assert_int_equal(C.fake.queries, 2);
	/* 400 ms: c-ares's own tries would double the second wait (600 ms) */
	if (C.got[0].ms < 390 || C.got[0].ms >= 580)
		fail_msg("timed out after %llu ms, want about 400", (unsigned long long)C.got[0].ms);
}

static void test_loop_addr_merge(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	CALL(dns_addr(C.d, "both.example.org", AF_UNSPEC, addr_cb, &C.got[0]));
	CALL(dns_addr(C.d, "v4only.example.org", AF_UNSPEC, addr_cb, &C.got[1]));
	CALL(dns_addr(C.d, "nx.example.org", AF_UNSPEC, addr_cb, &C.got[2]));
	CALL(dns_addr(C.d, "halftemp.example.org", AF_UNSPEC, addr_cb, &C.got[3]));
	CALL(dns_addr(C.d, "both.example.org", AF_INET, addr_cb, &C.got[4]));
	CALL(dns_addr(C.d, "both.example.org", AF_INET6, addr_cb, &C.got[5]));
	CALL(dns_addr(C.d, "txt.example.org", AF_UNSPEC, addr_cb, &C.got[6]));
	run_until(7);
	assert_int_equal(C.got[0].status, DNS_OK);
	assert_int_equal(C.got[0].n, 2);
	assert_int_equal(C.got[0].family[0], AF_INET6);	/* AAAA first */
	assert_string_equal(C.got[0].addr[0], "::1");
	assert_int_equal(C.got[0].family[1], AF_INET);
	assert_string_equal(C.got[0].addr[1], "127.0.0.2");
	assert_int_equal(C.got[1].status, DNS_OK);
	assert_int_equal(C.got[1].n, 1);
	assert_string_equal(C.got[1].addr[0], "127.0.0.3");
	assert_int_equal(C.got[2].status, DNS_NXDOMAIN);
	assert_int_equal(C.got[3].status, DNS_TEMPFAIL);	/* AAAA SERVFAIL, A nodata */
	assert_non_null(strstr(C.got[3].error, "SERVFAIL"));
	assert_int_equal(C.got[4].n, 1);
	assert_int_equal(C.got[4].family[0], AF_INET);
	assert_int_equal(C.got[5].n, 1);
	assert_int_equal(C.got[5].family[0], AF_INET6);
	assert_int_equal(C.got[6].status, DNS_NODATA);
	assert_int_equal(C.fake.queries, 12);
}

/* A TXT answer too big for UDP comes with TC; c-ares asks again over TCP. */
static void test_loop_txt_and_tcp(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	CALL(dns_txt(C.d, "txt.example.org", txt_cb, &C.got[0]));
	CALL(dns_txt(C.d, "big.example.org", txt_cb, &C.got[1]));
	CALL(dns_txt(C.d, "nx._domainkey.example.org", txt_cb, &C.got[2]));
	run_until(3);
	assert_int_equal(C.got[0].status, DNS_OK);
	assert_string_equal(C.got[0].text[0], "v=spf1 -all");
	assert_int_equal(C.got[1].status, DNS_OK);
	assert_int_equal(C.got[1].len[0], 12 * 250);
	assert_int_equal(C.got[1].text[0][0], 'a');
	assert_int_equal(C.got[1].text[0][12 * 250 - 1], 'l');
	assert_int_equal(C.fake.tcp_queries, 1);
	assert_int_equal(C.got[2].status, DNS_NXDOMAIN);
}

/* Bad names: DNS_BADNAME from the loop, and nothing asked. */
static void test_loop_badname(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	CALL(dns_mx(C.d, "[192.0.2.1]", mx_cb, &C.got[0]));
	CALL(dns_mx(C.d, "192.0.2.1", mx_cb, &C.got[1]));
	CALL(dns_addr(C.d, "2001:db8::1", AF_UNSPEC, addr_cb, &C.got[2]));
	CALL(dns_txt(C.d, "a b.example", txt_cb, &C.got[3]));
	CALL(dns_mx(C.d, "", mx_cb, &C.got[4]));
	CALL(dns_addr(C.d, "ok.example", 12345, addr_cb, &C.got[5]));
	CALL(dns_txt(C.d, "back\\slash.example", txt_cb, &C.got[6]));
	run_until(7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(C.got[i].status, DNS_BADNAME);
	assert_int_equal(C.fake.queries, 0);
}

static void do_free(uv_timer_t *t)
{
	(void)t;
	C.in_call = true;
	dns_free(C.d, on_closed, &C);
	C.in_call = false;
	C.d = NULL;
}

/* dns_free cancels what is in flight: callbacks run later, then on_closed. */
static void test_loop_cancel(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 3);
	CALL(dns_mx(C.d, "drop.example.org", mx_cb, &C.got[0]));
	CALL(dns_addr(C.d, "drop.example.org", AF_UNSPEC, addr_cb, &C.got[1]));
	CALL(dns_txt(C.d, "drop.example.org", txt_cb, &C.got[2]));
	uv_timer_start(&C.action, do_free, 50, 0);
	run_until(3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(C.got[i].status, DNS_TEMPFAIL);
		assert_string_equal(C.got[i].error, "cancelled");
	}
	dns_close();
	assert_int_equal(C.calls_at_close, 3);	/* on_closed after every callback */
}

/* Freed before the loop ran at all, answered but not yet delivered, or unsent. */
static void test_loop_cancel_at_once(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	CALL(dns_mx(C.d, "mx.example.org", mx_cb, &C.got[0]));
	CALL(dns_mx(C.d, "[bad]", mx_cb, &C.got[1]));
	C.in_call = true;
	dns_free(C.d, on_closed, &C);
	C.in_call = false;
	C.d = NULL;
	assert_int_equal(C.calls, 0);
	dns_close();
	assert_int_equal(C.calls_at_close, 2);
	assert_string_equal(C.got[0].error, "cancelled");
	assert_string_equal(C.got[1].error, "cancelled");
	dns_free(NULL, NULL, NULL);
}

static void free_in_callback(struct got *g)
{
	(void)g;
	dns_free(C.d, on_closed, &C);
	C.d = NULL;
}

static void lookup_in_callback(struct got *g)
{
	(void)g;
	C.in_call = true;
	assert_int_equal(dns_mx(C.d, "mx.example.net", mx_cb, &C.got[2]), 0);
	C.in_call = false;
}

static void test_loop_from_callbacks(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	/* a callback starts a lookup */
	C.then = lookup_in_callback;
	CALL(dns_mx(C.d, "nx.example.org", mx_cb, &C.got[0]));
	run_until(1);
	run_until(2);
	assert_int_equal(C.got[2].status, DNS_OK);
	/* a callback frees: the one in flight is cancelled; -1 after that */
	C.then = free_in_callback;
	CALL(dns_mx(C.d, "mx.example.org", mx_cb, &C.got[3]));
	CALL(dns_mx(C.d, "drop.example.org", mx_cb, &C.got[4]));
	run_until(3);
	run_until(4);
	assert_int_equal(C.got[3].status, DNS_OK);
	assert_string_equal(C.got[4].error, "cancelled");
	dns_close();
	assert_int_equal(C.calls_at_close, 4);
}

/* A try asks each server in turn: the first never answers, the second does. */
static void test_loop_failover(void **state)
{
	char servers[128];

	(void)state;
	snprintf(servers, sizeof servers, "127.0.0.1:%d,[::ffff:127.0.0.1]:%d", C.fake.hole_port,
		 C.fake.port);
	dns_up(servers, 200, 1);
	now_t0();
	CALL(dns_mx(C.d, "mx.example.org", mx_cb, &C.got[0]));
	run_until(1);
	assert_int_equal(C.got[0].status, DNS_OK);
	assert_true(C.got[0].ms >= 190);
}

/* Nobody on the port (ICMP unreachable), and a server c-ares cannot send to at all. */
static void test_loop_unreachable(void **state)
{
	uv_udp_t u;
	char servers[64];
	int port;
	struct sockaddr_in any;

	(void)state;
	uv_ip4_addr("127.0.0.1", 0, &any);
	uv_udp_init(&C.loop, &u);
	assert_int_equal(uv_udp_bind(&u, (struct sockaddr *)&any, 0), 0);
	port = bound_port((uv_handle_t *)&u);
	uv_close((uv_handle_t *)&u, NULL);
	uv_run(&C.loop, UV_RUN_NOWAIT);
	snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
	dns_up(servers, 1000, 2);
	now_t0();
	CALL(dns_mx(C.d, "mx.example.org", mx_cb, &C.got[0]));
	run_until(1);
	assert_int_equal(C.got[0].status, DNS_TEMPFAIL);
	assert_true(C.got[0].ms < 900);
	dns_close();

	/* connect() to the broadcast address fails: c-ares calls back from inside ares_query() */
	C.calls_at_close = -1;
	dns_up("255.255.255.255:53", 1000, 1);
	CALL(dns_mx(C.d, "mx.example.org", mx_cb, &C.got[1]));
	run_until(2);
	assert_int_equal(C.got[1].status, DNS_TEMPFAIL);
}

static void test_dns_new(void **state)
{
	static const char *bad[] = {
		"foo", "1.2.3.4:99999", "1.2.3.4:0", "1.2.3.4:", "1.2.3.4:53x", "1.2.3.4,",
		",1.2.3.4", "1.2.3.4,,5.6.7.8", "1.2.3.4 ", "[::1", "[::1]53", "[1.2.3.4]:53",
		"example.org", "1,2,3,4,5,6,7,8,9",
	};
	char err[256];
	struct dns *d;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (dns_new(&C.loop, bad[i], 1000, 1, err, sizeof err) != NULL)
			fail_msg("dns_new accepted \"%s\"", bad[i]);
		assert_non_null(strstr(err, "DNS server"));
	}
	assert_null(dns_new(&C.loop, "", 0, 1, err, sizeof err));
	assert_null(dns_new(&C.loop, "", 1000, 0, err, sizeof err));
	assert_null(dns_new(&C.loop, "", 1000, 17, err, sizeof err));

	d = dns_new(&C.loop, "127.0.0.1:5353,[::1]:53,::1,192.0.2.1", 1000, 1, err, sizeof err);
	assert_non_null(d);
	dns_free(d, NULL, NULL);
	C.d = dns_new(&C.loop, "", 1000, 1, err, sizeof err); /* /etc/resolv.conf */
	assert_non_null(C.d);
	dns_close();
}

/* ------------------------------------------------------------------ */
/* PTR, loose names and the cache on the loop */

static void got_reset(void)
{
	memset(C.got, 0, sizeof C.got);
	C.calls = 0;
}

/* Runs the loop for ms, whatever else happens. */
static void wait_ms(uint64_t ms)
{
	C.guard_fired = false;
	uv_timer_start(&C.guard, guard_cb, ms, 0);
	while (!C.guard_fired)
		uv_run(&C.loop, UV_RUN_ONCE);
}

static void stats_are(uint64_t queries, uint64_t hits)
{
	struct dns_stats st;

	dns_get_stats(C.d, &st);
	if (st.queries != queries || st.cache_hits != hits)
		fail_msg("stats: %llu queries, %llu hits; want %llu, %llu",
			 (unsigned long long)st.queries, (unsigned long long)st.cache_hits,
			 (unsigned long long)queries, (unsigned long long)hits);
}

/* One A lookup on its own, to the end; its status. */
static enum dns_status ask_a(const char *name)
{
	got_reset();
	CALL(dns_addr(C.d, name, AF_INET, addr_cb, &C.got[0]));
	run_until(1);
	return C.got[0].status;
}

static void test_loop_ptr(void **state)
{
	struct sockaddr_storage a4, m4, six, other;

	(void)state;
	ss4(&a4, "127.0.0.9");
	ss6(&m4, "::ffff:127.0.0.9");
	ss6(&six, "::1");
	memset(&other, 0, sizeof other);
	other.ss_family = AF_UNIX;
	dns_up(NULL, 1000, 1);
	CALL(dns_ptr(C.d, &a4, ptr_cb, &C.got[0]));
	CALL(dns_ptr(C.d, &six, ptr_cb, &C.got[1]));
	CALL(dns_ptr(C.d, &other, ptr_cb, &C.got[2]));
	CALL(dns_ptr(C.d, NULL, ptr_cb, &C.got[3]));
	run_until(4);
	assert_int_equal(C.got[0].status, DNS_OK);
	assert_int_equal(C.got[0].n, 2);
	assert_string_equal(C.got[0].host[0], "host.example.org");
	assert_string_equal(C.got[0].host[1], "_spf.example.net");
	assert_int_equal(C.got[1].status, DNS_OK);
	assert_int_equal(C.got[1].n, 1);
	assert_string_equal(C.got[1].host[0], "localhost");
	assert_int_equal(C.got[2].status, DNS_BADNAME);
	assert_int_equal(C.got[3].status, DNS_BADNAME);
	assert_int_equal(C.fake.queries, 2);
	/* the mapped address is the IPv4 one: the same name, from the cache */
	CALL(dns_ptr(C.d, &m4, ptr_cb, &C.got[4]));
	assert_int_equal(C.calls, 4);
	run_until(5);
	assert_int_equal(C.got[4].status, DNS_OK);
	assert_string_equal(C.got[4].host[0], "host.example.org");
	assert_int_equal(C.fake.queries, 2);
	stats_are(3, 1);
}

/* SPF's a:/exists: targets: dns_addr_loose takes them, dns_addr does not. */
static void test_loop_addr_loose(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	CALL(dns_addr_loose(C.d, "both._spf.example.org", AF_INET, addr_cb, &C.got[0]));
	CALL(dns_addr(C.d, "both._spf.example.org", AF_INET, addr_cb, &C.got[1]));
	CALL(dns_addr_loose(C.d, "both.1.2.0.192.in-addr._spf.example.com.", AF_UNSPEC, addr_cb,
			    &C.got[2]));
	CALL(dns_addr_loose(C.d, "a b.example", AF_INET, addr_cb, &C.got[3]));
	CALL(dns_addr_loose(C.d, "both.example.org", 12345, addr_cb, &C.got[4]));
	CALL(dns_addr_loose(C.d, "back\\slash.example", AF_INET, addr_cb, &C.got[5]));
	CALL(dns_addr_loose(C.d, "a..b", AF_INET6, addr_cb, &C.got[6]));
	CALL(dns_addr_loose(C.d, "nx.x_y.example", AF_INET6, addr_cb, &C.got[7]));
	run_until(8);
	assert_int_equal(C.got[0].status, DNS_OK);
	assert_string_equal(C.got[0].addr[0], "127.0.0.2");
	assert_int_equal(C.got[1].status, DNS_BADNAME);
	assert_int_equal(C.got[2].status, DNS_OK);
	assert_int_equal(C.got[2].n, 2);
	assert_string_equal(C.got[2].addr[0], "::1");
	for (int i = 3; i < 7; i++)
		assert_int_equal(C.got[i].status, DNS_BADNAME);
	assert_int_equal(C.got[7].status, DNS_NXDOMAIN);
	assert_int_equal(C.fake.queries, 4);
	stats_are(4, 0);	/* bad names are not counted */
}

/* A second identical lookup comes from the cache, still from the loop. */
static void test_loop_cache_hit(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	CALL(dns_mx(C.d, "mx.example.org", mx_cb, &C.got[0]));
	run_until(1);
	assert_int_equal(C.got[0].ttl, 300);
	CALL(dns_mx(C.d, "MX.Example.ORG.", mx_cb, &C.got[1]));	/* the same key */
	assert_int_equal(C.calls, 1);	/* not from inside the call */
	run_until(2);
	assert_int_equal(C.got[1].status, DNS_OK);
	assert_int_equal(C.got[1].n, 2);
	assert_string_equal(C.got[1].host[0], "mx1.mx.example.org");
	assert_true(C.got[1].ttl >= 299 && C.got[1].ttl <= 300);
	assert_int_equal(C.fake.queries, 1);
	stats_are(2, 1);

	/* AF_UNSPEC keeps two entries, which single-family lookups use alone */
	CALL(dns_addr(C.d, "both.example.org", AF_UNSPEC, addr_cb, &C.got[2]));
	run_until(3);
	assert_int_equal(C.fake.queries, 3);
	CALL(dns_addr(C.d, "both.example.org", AF_INET, addr_cb, &C.got[3]));
	CALL(dns_addr_loose(C.d, "both.example.org", AF_INET6, addr_cb, &C.got[4]));
	CALL(dns_addr(C.d, "both.example.org", AF_UNSPEC, addr_cb, &C.got[5]));
	assert_int_equal(C.calls, 3);
	run_until(6);
	assert_int_equal(C.fake.queries, 3);
	assert_string_equal(C.got[3].addr[0], "127.0.0.2");
	assert_string_equal(C.got[4].addr[0], "::1");
	assert_int_equal(C.got[5].n, 2);
	assert_string_equal(C.got[5].addr[0], "::1");	/* AAAA first, as from the wire */
	assert_string_equal(C.got[5].addr[1], "127.0.0.2");
	/* one half kept, the other asked: AAAA NODATA without an SOA is not kept */
	CALL(dns_addr(C.d, "v4only.example.org", AF_INET, addr_cb, &C.got[6]));
	run_until(7);
	CALL(dns_addr(C.d, "v4only.example.org", AF_UNSPEC, addr_cb, &C.got[7]));
	run_until(8);
	assert_int_equal(C.got[7].status, DNS_OK);
	assert_int_equal(C.got[7].n, 1);
	assert_string_equal(C.got[7].addr[0], "127.0.0.3");
	assert_int_equal(C.fake.queries, 5);
	stats_are(11, 6);

	/* TXT, and a hit whose callback starts the same lookup again */
	got_reset();
	CALL(dns_txt(C.d, "txt.example.org", txt_cb, &C.got[0]));
	run_until(1);
	C.then = lookup_in_callback;	/* asks mx.example.net */
	CALL(dns_txt(C.d, "txt.example.org", txt_cb, &C.got[1]));
	run_until(3);
	assert_string_equal(C.got[1].text[0], "v=spf1 -all");
	assert_int_equal(C.fake.queries, 7);
}

/* Kept for the TTL, by the loop's clock; TTL 0 is not kept at all. */
static void test_loop_cache_expiry(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	C.fake.ttl = 1;
	CALL(dns_txt(C.d, "txt.example.org", txt_cb, &C.got[0]));
	run_until(1);
	assert_int_equal(C.got[0].ttl, 1);
	CALL(dns_txt(C.d, "txt.example.org", txt_cb, &C.got[1]));
	run_until(2);
	assert_int_equal(C.got[1].status, DNS_OK);
	assert_int_equal(C.fake.queries, 1);
	wait_ms(1100);
	CALL(dns_txt(C.d, "txt.example.org", txt_cb, &C.got[2]));
	run_until(3);
	assert_int_equal(C.got[2].status, DNS_OK);
	assert_int_equal(C.fake.queries, 2);

	C.fake.ttl = 0;
	CALL(dns_mx(C.d, "mx.example.org", mx_cb, &C.got[3]));
	run_until(4);
	CALL(dns_mx(C.d, "mx.example.org", mx_cb, &C.got[4]));
	run_until(5);
	assert_int_equal(C.got[4].status, DNS_OK);
	assert_int_equal(C.fake.queries, 4);
	stats_are(5, 1);
}

/* NXDOMAIN and NODATA kept for the SOA's negative TTL (RFC 2308 5), not without one. */
static void test_loop_cache_negative(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	C.fake.soa_min = 1;	/* the SOA's TTL stays 300: MINIMUM decides */
	CALL(dns_mx(C.d, "nxsoa.example.org", mx_cb, &C.got[0]));
	CALL(dns_txt(C.d, "nodatasoa.example.org", txt_cb, &C.got[1]));
	CALL(dns_mx(C.d, "nx.example.org", mx_cb, &C.got[2]));
	run_until(3);
	assert_int_equal(C.got[0].status, DNS_NXDOMAIN);
	assert_int_equal(C.got[0].ttl, 1);
	assert_int_equal(C.got[1].status, DNS_NODATA);
	assert_int_equal(C.got[2].status, DNS_NXDOMAIN);
	assert_int_equal(C.got[2].ttl, 0);
	assert_int_equal(C.fake.queries, 3);
	CALL(dns_mx(C.d, "nxsoa.example.org", mx_cb, &C.got[3]));
	CALL(dns_txt(C.d, "nodatasoa.example.org", txt_cb, &C.got[4]));
	CALL(dns_mx(C.d, "nx.example.org", mx_cb, &C.got[5]));
	run_until(6);
	assert_int_equal(C.got[3].status, DNS_NXDOMAIN);
	assert_non_null(strstr(C.got[3].error, "NXDOMAIN"));
	assert_int_equal(C.got[4].status, DNS_NODATA);
	assert_int_equal(C.got[5].status, DNS_NXDOMAIN);
	assert_int_equal(C.fake.queries, 4);	/* only nx, which had no SOA */
	/* an NXDOMAIN kept for MX says nothing about TXT */
	CALL(dns_txt(C.d, "nxsoa.example.org", txt_cb, &C.got[6]));
	run_until(7);
	assert_int_equal(C.fake.queries, 5);
	wait_ms(1100);
	CALL(dns_mx(C.d, "nxsoa.example.org", mx_cb, &C.got[7]));
	run_until(8);
	assert_int_equal(C.got[7].status, DNS_NXDOMAIN);
	assert_int_equal(C.fake.queries, 6);
	stats_are(8, 2);
}

/* SERVFAIL, REFUSED, timeouts and bad names are never kept. */
static void test_loop_cache_no_tempfail(void **state)
{
	(void)state;
	dns_up(NULL, 100, 1);
	for (int round = 0; round < 2; round++) {
		CALL(dns_mx(C.d, "servfail.example.org", mx_cb, &C.got[round * 4]));
		CALL(dns_txt(C.d, "refused.example.org", txt_cb, &C.got[round * 4 + 1]));
		CALL(dns_addr(C.d, "halftemp.example.org", AF_UNSPEC, addr_cb, &C.got[round * 4 + 2]));
		CALL(dns_txt(C.d, "drop.example.org", txt_cb, &C.got[round * 4 + 3]));
		run_until(round * 4 + 4);
		for (int i = 0; i < 4; i++)
			assert_int_equal(C.got[round * 4 + i].status, DNS_TEMPFAIL);
	}
	assert_int_equal(C.fake.queries, 10);
	stats_are(10, 0);
}

/* At most max entries and max bytes, the least recently used going first. */
static void test_loop_cache_lru(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	dns_set_cache(C.d, 3, DNS_CACHE_BYTES);
	assert_int_equal(ask_a("both.1.example"), DNS_OK);
	assert_int_equal(ask_a("both.2.example"), DNS_OK);
	assert_int_equal(ask_a("both.3.example"), DNS_OK);	/* oldest first: 1 2 3 */
	assert_int_equal(C.fake.queries, 3);
	ask_a("both.1.example");	/* hit: 2 3 1 */
	assert_int_equal(C.fake.queries, 3);
	ask_a("both.4.example");	/* 2 goes: 3 1 4 */
	ask_a("both.2.example");	/* miss, 3 goes: 1 4 2 */
	assert_int_equal(C.fake.queries, 5);
	ask_a("both.1.example");	/* hit: 4 2 1 */
	ask_a("both.4.example");	/* hit: 2 1 4 */
	assert_int_equal(C.fake.queries, 5);
	ask_a("both.3.example");	/* miss, 2 goes: 1 4 3 */
	assert_int_equal(C.fake.queries, 6);
	stats_are(9, 3);

	/* lowering the bound drops the oldest at once */
	dns_set_cache(C.d, 1, DNS_CACHE_BYTES);
	ask_a("both.3.example");
	assert_int_equal(C.fake.queries, 6);
	ask_a("both.4.example");
	assert_int_equal(C.fake.queries, 7);

	/*
	 * The byte bound: an entry here is about 120 octets (bookkeeping,
	 * "both.N.example", a 48-octet answer), so 200 hold one.
	 */
	dns_set_cache(C.d, 10, 200);
	ask_a("both.1.example");
	ask_a("both.2.example");
	assert_int_equal(C.fake.queries, 9);
	ask_a("both.2.example");
	assert_int_equal(C.fake.queries, 9);
	ask_a("both.1.example");
	assert_int_equal(C.fake.queries, 10);
	/* an answer bigger than the whole bound is not kept */
	dns_set_cache(C.d, 10, 50);
	ask_a("both.1.example");
	ask_a("both.1.example");
	assert_int_equal(C.fake.queries, 12);

	/* off: every lookup is asked, and nothing was kept meanwhile */
	dns_set_cache(C.d, 0, DNS_CACHE_BYTES);
	ask_a("both.5.example");
	ask_a("both.5.example");
	assert_int_equal(C.fake.queries, 14);
	dns_set_cache(C.d, DNS_CACHE_MAX + 100, DNS_CACHE_BYTES);	/* capped, and on again */
	ask_a("both.5.example");
	ask_a("both.5.example");
	assert_int_equal(C.fake.queries, 15);
}

/* Kept answers are freed with the struct dns; a hit not yet delivered is cancelled. */
static void test_loop_cache_freed(void **state)
{
	(void)state;
	dns_up(NULL, 1000, 1);
	for (int i = 0; i < 8; i++) {
		char name[64];

		snprintf(name, sizeof name, "both.%d.example", i);
		CALL(dns_addr(C.d, name, AF_UNSPEC, addr_cb, &C.got[i]));
	}
	run_until(8);
	got_reset();
	CALL(dns_addr(C.d, "both.1.example", AF_UNSPEC, addr_cb, &C.got[0]));
	stats_are(18, 2);
	dns_close();	/* ASan's leak check sees any entry left behind */
	assert_int_equal(C.calls_at_close, 1);
	assert_int_equal(C.got[0].status, DNS_TEMPFAIL);
	assert_string_equal(C.got[0].error, "cancelled");
}

/* ------------------------------------------------------------------ */
/*
 * Probe mode, for tests/integration/test_dns.py: with TERN_DNS_PROBE set to
 * a space-separated list of lookups "mx:NAME", "txt:NAME", "a:NAME",
 * "aaaa:NAME", "addr:NAME" (AF_UNSPEC), "loose:NAME" (dns_addr_loose,
 * AF_UNSPEC), "ptr:IP" (an IPv4 or IPv6 address), all are started at once
 * on one struct dns (TERN_DNS_SERVERS, TERN_DNS_TIMEOUT_MS default 1000,
 * TERN_DNS_TRIES default 2) and one JSON line per lookup is printed, in the
 * order given: {"q","name","status","error","ms","n","truncated","ttl", and
 * "mx" [[pref,host]...] + "null_mx", or "addr" [text...], or "txt" [text...],
 * or "ptr" [name...]}.
 * A callback run from inside a dns_* call makes the probe exit 3.
 */

struct probe_q {
	const char *kind, *name;
	struct buf line;
	bool done;
	uint64_t t0;
};

static struct {
	struct dns *d;
	struct probe_q *q;
	size_t n, done;
	bool in_call;
} P;

static void json_str(struct buf *b, const char *s, size_t len)
{
	buf_append(b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			buf_printf(b, "\\u%04x", c);
		else
			buf_append(b, &s[i], 1);
	}
	buf_append(b, "\"", 1);
}

static void probe_head(struct probe_q *q, enum dns_status st, const char *error, size_t n,
		       bool truncated, uint32_t ttl)
{
	if (P.in_call)
		exit(3);
	q->done = true;
	buf_printf(&q->line, "{\"q\":\"%s\",\"name\":", q->kind);
	json_str(&q->line, q->name, strlen(q->name));
	buf_printf(&q->line, ",\"status\":\"%s\",\"error\":", dns_status_name(st));
	json_str(&q->line, error, strlen(error));
	buf_printf(&q->line, ",\"ms\":%llu,\"n\":%zu,\"truncated\":%s,\"ttl\":%lu",
		   (unsigned long long)(uv_hrtime() / 1000000 - q->t0), n,
		   truncated ? "true" : "false", (unsigned long)ttl);
}

static void probe_tail(struct probe_q *q)
{
	buf_append(&q->line, "}\n", 2);
	if (++P.done == P.n)
		dns_free(P.d, NULL, NULL);
}

static void probe_mx(void *arg, const struct dns_mx_result *r)
{
	struct probe_q *q = arg;

	probe_head(q, r->status, r->error, r->n, r->truncated, r->ttl);
	buf_printf(&q->line, ",\"null_mx\":%s,\"mx\":[", r->null_mx ? "true" : "false");
	for (size_t i = 0; i < r->n; i++) {
		buf_printf(&q->line, "%s[%u,", i ? "," : "", r->mx[i].pref);
		json_str(&q->line, r->mx[i].host, strlen(r->mx[i].host));
		buf_append(&q->line, "]", 1);
	}
	buf_append(&q->line, "]", 1);
	probe_tail(q);
}

static void probe_addr(void *arg, const struct dns_addr_result *r)
{
	struct probe_q *q = arg;
	char text[INET6_ADDRSTRLEN];

	probe_head(q, r->status, r->error, r->n, r->truncated, r->ttl);
	buf_printf(&q->line, ",\"addr\":[");
	for (size_t i = 0; i < r->n; i++) {
		const struct sockaddr_storage *ss = &r->addr[i];

		if (ss->ss_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, text,
				  sizeof text);
		else
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, text,
				  sizeof text);
		buf_printf(&q->line, "%s\"%s\"", i ? "," : "", text);
	}
	buf_append(&q->line, "]", 1);
	probe_tail(q);
}

static void probe_txt(void *arg, const struct dns_txt_result *r)
{
	struct probe_q *q = arg;

	probe_head(q, r->status, r->error, r->n, r->truncated, r->ttl);
	buf_printf(&q->line, ",\"txt\":[");
	for (size_t i = 0; i < r->n; i++) {
		if (i > 0)
			buf_append(&q->line, ",", 1);
		json_str(&q->line, r->txt[i].text, r->txt[i].len);
	}
	buf_append(&q->line, "]", 1);
	probe_tail(q);
}

static void probe_ptr(void *arg, const struct dns_ptr_result *r)
{
	struct probe_q *q = arg;

	probe_head(q, r->status, r->error, r->n, r->truncated, r->ttl);
	buf_printf(&q->line, ",\"ptr\":[");
	for (size_t i = 0; i < r->n; i++) {
		if (i > 0)
			buf_append(&q->line, ",", 1);
		json_str(&q->line, r->names[i], strlen(r->names[i]));
	}
	buf_append(&q->line, "]", 1);
	probe_tail(q);
}

/* "ptr:IP": an address that does not parse is asked as AF_UNSPEC, i.e. DNS_BADNAME. */
static int probe_ptr_start(struct probe_q *q)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, q->name, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, q->name, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	return dns_ptr(P.d, &ss, probe_ptr, q);
}

static int probe(const char *spec)
{
	const char *servers = getenv("TERN_DNS_SERVERS");
	const char *t = getenv("TERN_DNS_TIMEOUT_MS"), *tr = getenv("TERN_DNS_TRIES");
	char *copy = strdup(spec), *save = NULL, err[256];
	uv_loop_t loop;
	int rc = 2;

	P.q = calloc(strlen(spec) / 2 + 1, sizeof *P.q);
	if (copy == NULL || P.q == NULL || uv_loop_init(&loop) != 0) {
		free(copy);
		free(P.q);
		return 2;
	}
	for (char *w = strtok_r(copy, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
		char *colon = strchr(w, ':');

		P.q[P.n].kind = w;
		P.q[P.n].name = colon != NULL ? colon + 1 : "";
		if (colon != NULL)
			*colon = '\0';
		buf_init(&P.q[P.n].line, 1 << 20);
		P.n++;
	}
	P.d = dns_new(&loop, servers ? servers : "", t ? (unsigned)atoi(t) : 1000,
		      tr ? (unsigned)atoi(tr) : 2, err, sizeof err);
	if (P.d == NULL) {
		fprintf(stderr, "probe: dns_new: %s\n", err);
		goto out;
	}
	rc = 0;
	for (size_t i = 0; i < P.n && rc == 0; i++) {
		struct probe_q *q = &P.q[i];

		q->t0 = uv_hrtime() / 1000000;
		P.in_call = true;
		if (strcmp(q->kind, "mx") == 0)
			rc = dns_mx(P.d, q->name, probe_mx, q);
		else if (strcmp(q->kind, "txt") == 0)
			rc = dns_txt(P.d, q->name, probe_txt, q);
		else if (strcmp(q->kind, "a") == 0)
			rc = dns_addr(P.d, q->name, AF_INET, probe_addr, q);
		else if (strcmp(q->kind, "aaaa") == 0)
			rc = dns_addr(P.d, q->name, AF_INET6, probe_addr, q);
		else if (strcmp(q->kind, "addr") == 0)
			rc = dns_addr(P.d, q->name, AF_UNSPEC, probe_addr, q);
		else if (strcmp(q->kind, "loose") == 0)
			rc = dns_addr_loose(P.d, q->name, AF_UNSPEC, probe_addr, q);
		else if (strcmp(q->kind, "ptr") == 0)
			rc = probe_ptr_start(q);
		else
			rc = -1;
		P.in_call = false;
		if (rc != 0)
			fprintf(stderr, "probe: cannot start \"%s:%s\"\n", q->kind, q->name);
	}
	if (rc != 0 || P.n == 0)
		dns_free(P.d, NULL, NULL);	/* the rest are cancelled */
	uv_run(&loop, UV_RUN_DEFAULT);
	for (size_t i = 0; i < P.n && rc == 0; i++) {
		if (!P.q[i].done)
			rc = 2;
		fwrite(P.q[i].line.data, 1, P.q[i].line.len, stdout);
	}
	rc = rc != 0 ? 2 : 0;
out:
	for (size_t i = 0; i < P.n; i++)
		buf_free(&P.q[i].line);
	if (uv_loop_close(&loop) != 0)
		rc = 2;
	free(P.q);
	free(copy);
	return rc;
}

int main(void)
{
	const char *spec = getenv("TERN_DNS_PROBE");

	if (spec != NULL)
		return probe(spec);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx_sorted),
		cmocka_unit_test(test_mx_with_opt),
		cmocka_unit_test(test_mx_equal_prefs_random),
		cmocka_unit_test(test_null_mx),
		cmocka_unit_test(test_null_mx_with_others),
		cmocka_unit_test(test_mx_bad_hosts_skipped),
		cmocka_unit_test(test_mx_duplicate_host_kept_once),
		cmocka_unit_test(test_mx_rcodes),
		cmocka_unit_test(test_mx_cname_chain),
		cmocka_unit_test(test_truncated_packets),
		cmocka_unit_test(test_compression_pointers),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_mx_cap),
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_txt_cap_and_long),
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_hostname_valid),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_ptr),
		cmocka_unit_test(test_ptr_cname),
		cmocka_unit_test(test_ptr_malformed),
		cmocka_unit_test(test_ptr_cap),
		cmocka_unit_test(test_ptr_name),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_name_loose_valid),
		cmocka_unit_test_setup_teardown(test_loop_mx, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_servfail, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_timeout, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_addr_merge, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_txt_and_tcp, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_badname, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_cancel, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_cancel_at_once, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_from_callbacks, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_failover, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_unreachable, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_dns_new, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_ptr, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_addr_loose, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_cache_hit, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_cache_expiry, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_cache_negative, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_cache_no_tempfail, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_cache_lru, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_loop_cache_freed, loop_setup, loop_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
