/*
 * fuzz_spf.c - libFuzzer target for mailauth/spf: the first octet picks
 *
 *	0  the record parser (spf_record_parse, spf_term_next) on the rest
 *	1  the macro expander (spf_macro_check, spf_macro_expand,
 *	   spf_target_name) on the rest, in the mode the second octet picks
 *	2  check_host() over a zone made from the rest: the lines are the TXT
 *	   records, and every other answer follows from a hash of the name
 *	   asked; run with answers at once and answered later, which must agree
 *
 * and checks the invariants of spf.h on what comes out.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/spf.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(struct slice s, const uint8_t *p, size_t len)
{
	return s.len == 0 || (s.p >= p && s.p + s.len <= p + len);
}

static void fuzz_record(const uint8_t *p, size_t len)
{
	struct spf_record r;
	struct spf_term t;
	char err[128];
	size_t pos = 0, prev = 0;
	unsigned n = 0;
	int rc = spf_record_parse(p, len, &r, err, sizeof err);

	CHECK(rc == 0 || rc == -1);
	if (rc != 0) {
		CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
		for (size_t i = 0; err[i] != '\0'; i++)
			CHECK(err[i] >= 0x20 && err[i] < 0x7f);
		return;
	}
	CHECK(spf_is_record(p, len));
	while ((rc = spf_term_next(p, len, &pos, &t, err, sizeof err)) == 1) {
		n++;
		CHECK(pos > prev && pos <= len);
		prev = pos;
		CHECK(inside(t.text, p, len) && inside(t.name, p, len) && inside(t.domain, p, len));
		CHECK(t.text.len > 0 && memchr(t.text.p, ' ', t.text.len) == NULL);
		CHECK(t.kind <= SPF_T_UNKNOWN);
		CHECK(t.cidr4 <= 32 && t.cidr6 <= 128);
		for (size_t i = 0; i < t.text.len; i++)
			CHECK(t.text.p[i] > 0x20 && t.text.p[i] < 0x7f);	/* visible ASCII only */
		if (t.kind < SPF_T_REDIRECT)
			CHECK(t.qualifier == SPF_PASS || t.qualifier == SPF_FAIL ||
			      t.qualifier == SPF_SOFTFAIL || t.qualifier == SPF_NEUTRAL);
		if (t.kind == SPF_T_INCLUDE || t.kind == SPF_T_EXISTS || t.kind == SPF_T_REDIRECT ||
		    t.kind == SPF_T_EXP)
			CHECK(t.domain.len > 0);
		if (t.domain.len > 0 && t.kind != SPF_T_UNKNOWN)
			CHECK(spf_macro_check(t.domain.p, t.domain.len, SPF_MACRO_DOMAIN) == 0);
	}
	CHECK(rc == 0 && n == r.nterms && pos == len);
	CHECK(r.ndns <= r.nterms);
}

static void fuzz_macro(const uint8_t *p, size_t len, unsigned sel)
{
	enum spf_macro_mode mode = (enum spf_macro_mode)(sel % 3);
	struct spf_macro_env env = {
		.sender = "Strong-Bad+tag@Email.Example.com", .local = "Strong-Bad+tag",
		.sender_domain = "Email.Example.com", .domain = "sub.example.org",
		.helo = (sel & 4) ? "JUMPIN' JUPITER" : "mx.example.net",
		.ptr = (sel & 8) ? NULL : "mx.example.net", .receiver = "rcv.example",
		.family = (sel & 16) ? AF_INET6 : AF_INET, .now = 1700000000,
	};
	size_t caps[] = { 1, 16, 300, SPF_EXPAND_MAX };
	char *out = malloc(SPF_EXPAND_MAX);
	size_t n = 0;
	int check = spf_macro_check(p, len, mode);

	CHECK(out != NULL);
	memset(env.ip, 0xa5, sizeof env.ip);
	for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
		int rc = spf_macro_expand(&env, p, len, mode, out, caps[c], &n);

		CHECK(rc == 0 || rc == -1 || rc == -2);
		CHECK((rc == -1) == (check != 0));
		CHECK(memchr(out, '\0', caps[c]) != NULL);
		if (rc != 0)
			continue;
		CHECK(n < caps[c] && strlen(out) == n);
		if (mode != SPF_MACRO_EXP)
			CHECK(memchr(out, '\0', n) == NULL);
		if (c + 1 == sizeof caps / sizeof caps[0]) {
			int t = spf_target_name(out);
			size_t l = strlen(out), label = 0;

			CHECK(t == 0 || t == -1);
			if (t == 0) {
				CHECK(l > 0 && l <= SPF_NAME_MAX && out[l - 1] != '.');
				for (size_t i = 0; i <= l; i++) {
					if (i == l || out[i] == '.') {
						CHECK(label >= 1 && label <= 63);
						label = 0;
					} else {
						label++;
					}
				}
			}
		}
	}
	if (check == 0 && mode == SPF_MACRO_DOMAIN)
		CHECK(spf_macro_check(p, len, SPF_MACRO_EXP) == 0);
	free(out);
}

/* ------------------------------------------------------------------ */
/* check_host() over a zone derived from the input */

struct zone {
	const uint8_t *rec[8];
	size_t len[8];
	size_t n;
	unsigned seed;
};

struct question {
	int kind;
	char name[SPF_EXPAND_MAX];
	int family;
	struct spf_query *q;
};

struct provider {
	const struct zone *z;
	bool defer;
	struct question *queue;
	size_t n, cap;
	unsigned asked;
};

static unsigned hash(const char *s, unsigned seed)
{
	unsigned h = 2166136261u ^ seed;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)(*s | 0x20)) * 16777619u;
	return h;
}

static enum dns_status status_of(unsigned h)
{
	switch (h % 7) {
	case 0: return DNS_NXDOMAIN;
	case 1: return DNS_NODATA;
	case 2: return (h >> 8) % 3 == 0 ? DNS_TEMPFAIL : DNS_OK;
	case 3: return (h >> 8) % 5 == 0 ? DNS_BADNAME : DNS_OK;
	default: return DNS_OK;
	}
}

static void answer(const struct provider *p, const struct question *qu)
{
	const struct zone *z = p->z;
	unsigned h = hash(qu->name, z->seed);
	enum dns_status st = status_of(h);

	if (qu->kind == 'T') {
		struct dns_txt txt[3];
		struct dns_txt_result r = { .status = st };

		r.txt = txt;
		if (st == DNS_OK && z->n > 0) {
			size_t k = strcmp(qu->name, "example.com") == 0 ? 0 : (h >> 4) % z->n;

			r.n = (h >> 12) % 11 == 0 ? 2 : 1;
			for (size_t i = 0; i < r.n; i++) {
				size_t j = (k + i) % z->n;

				txt[i].text = (char *)z->rec[j];
				txt[i].len = z->len[j];
			}
		} else if (st == DNS_OK) {
			r.status = DNS_NODATA;
		}
		spf_answer_txt(qu->q, &r);
	} else if (qu->kind == 'A') {
		struct sockaddr_storage a[3];
		struct dns_addr_result r = { .status = st, .addr = a };

		if (st == DNS_OK) {
			r.n = 1 + (h >> 4) % 3;
			for (size_t i = 0; i < r.n; i++) {
				memset(&a[i], 0, sizeof a[i]);
				a[i].ss_family = (sa_family_t)qu->family;
				if (qu->family == AF_INET)
					inet_pton(AF_INET, (h >> (8 + i)) & 1 ? "192.0.2.1" : "198.51.100.7",
						  &((struct sockaddr_in *)&a[i])->sin_addr);
				else
					inet_pton(AF_INET6, (h >> (8 + i)) & 1 ? "2001:db8::1" : "2001:db8:1::7",
						  &((struct sockaddr_in6 *)&a[i])->sin6_addr);
			}
		}
		spf_answer_addr(qu->q, &r);
	} else if (qu->kind == 'M') {
		struct dns_mx mx[13];
		struct dns_mx_result r = { .status = st, .mx = mx };

		if (st == DNS_OK) {
			r.n = (h >> 4) % 13;
			r.null_mx = r.n == 0;
			for (size_t i = 0; i < r.n; i++) {
				mx[i].pref = (uint16_t)i;
				snprintf(mx[i].host, sizeof mx[i].host, "mx%zu.%s", i,
					 (h >> 9) & 1 ? "example.com" : "example.net");
			}
		}
		spf_answer_mx(qu->q, &r);
	} else {
		static const char *const names[] = {
			"mx0.example.com", "host.example.com.", "example.com", "x.example.net",
			"a.b.example.com", "", ".", "mx1.example.net", "h.example.org", "e.example.com",
			"mx2.example.com", "z.example.com",
		};
		size_t n = st == DNS_OK ? (h >> 4) % 13 : 0;

		spf_answer_ptr(qu->q, st, names, n);
	}
}

static int put_question(struct provider *p, int kind, const char *name, int family,
			struct spf_query *q)
{
	struct question qu = { .kind = kind, .family = family, .q = q };

	p->asked++;
	if (p->asked % 97 == 96)
		return -1;	/* now and then, the provider cannot ask */
	snprintf(qu.name, sizeof qu.name, "%s", name);
	if (!p->defer) {
		answer(p, &qu);
		return 0;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->queue = realloc(p->queue, p->cap * sizeof *p->queue);
		CHECK(p->queue != NULL);
	}
	p->queue[p->n++] = qu;
	return 0;
}

static int p_txt(void *ctx, const char *name, struct spf_query *q)
{
	CHECK(name != NULL && strlen(name) <= SPF_NAME_MAX);
	return put_question(ctx, 'T', name, 0, q);
}

static int p_addr(void *ctx, const char *name, int family, struct spf_query *q)
{
	CHECK(family == AF_INET || family == AF_INET6);
	CHECK(strlen(name) <= SPF_NAME_MAX);
	return put_question(ctx, 'A', name, family, q);
}

static int p_mx(void *ctx, const char *name, struct spf_query *q)
{
	CHECK(strlen(name) <= SPF_NAME_MAX);
	return put_question(ctx, 'M', name, 0, q);
}

static int p_ptr(void *ctx, const struct sockaddr_storage *ip, struct spf_query *q)
{
	CHECK(ip->ss_family == AF_INET || ip->ss_family == AF_INET6);
	return put_question(ctx, 'P', "ptr", 0, q);
}

struct outcome {
	int calls;
	struct spf_result r;
};

static void on_done(void *arg, const struct spf_result *r)
{
	struct outcome *o = arg;

	o->calls++;
	o->r = *r;
}

static void check_result(const struct spf_result *r)
{
	CHECK(r->code <= SPF_PERMERROR);
	CHECK(r->lookups <= SPF_LOOKUP_MAX);
	CHECK(r->void_lookups <= SPF_VOID_MAX + 1);
	CHECK(strlen(r->explanation) <= SPF_EXPLANATION_MAX);
	for (const char *c = r->explanation; *c != '\0'; c++)
		CHECK(*c >= 0x20 && *c < 0x7f);
	for (const char *c = r->problem; *c != '\0'; c++)
		CHECK(*c >= 0x20 && *c < 0x7f);
	if (r->code != SPF_FAIL)
		CHECK(r->explanation[0] == '\0');
	if (r->code == SPF_PERMERROR || r->code == SPF_TEMPERROR)
		CHECK(r->problem[0] != '\0' && r->mechanism[0] == '\0');
	if (r->code == SPF_PASS || r->code == SPF_FAIL || r->code == SPF_SOFTFAIL)
		CHECK(r->mechanism[0] != '\0');
}

static void run(const struct zone *z, const struct spf_request *req, bool defer, struct outcome *o)
{
	struct provider p = { .z = z, .defer = defer };
	struct spf_dns dns = { p_txt, p_addr, p_mx, p_ptr, &p };
	struct spf *s = spf_new(&dns, req, on_done, o);

	CHECK(s != NULL);
	spf_start(s);
	while (p.n > 0 && o->calls == 0) {
		struct question qu = p.queue[--p.n];

		answer(&p, &qu);
	}
	CHECK(o->calls == 1 && p.n == 0);
	spf_free(s);
	free(p.queue);
}

static void fuzz_check_host(const uint8_t *p, size_t len, unsigned sel)
{
	struct zone z = { .seed = sel };
	struct spf_request req = {
		.helo = "mx.example.net", .sender = (sel & 1) ? "" : "user@example.com",
		.receiver = "rcv.example", .default_exp = "no %{i} for %{d}", .now = 1,
	};
	struct outcome a = { 0 }, b = { 0 };
	size_t start = 0;

	if (sel & 1)
		req.helo = "example.com";
	if (sel & 2) {
		req.ip.ss_family = AF_INET6;
		inet_pton(AF_INET6, (sel & 4) ? "2001:db8::1" : "::ffff:192.0.2.1",
			  &((struct sockaddr_in6 *)&req.ip)->sin6_addr);
	} else {
		req.ip.ss_family = AF_INET;
		inet_pton(AF_INET, "192.0.2.1", &((struct sockaddr_in *)&req.ip)->sin_addr);
	}
	for (size_t i = 0; i <= len && z.n < 8; i++) {
		if (i == len || p[i] == '\n') {
			z.rec[z.n] = p + start;
			z.len[z.n] = i - start;
			z.n++;
			start = i + 1;
		}
	}
	run(&z, &req, false, &a);
	run(&z, &req, true, &b);
	check_result(&a.r);
	CHECK(a.r.code == b.r.code);
	CHECK(strcmp(a.r.explanation, b.r.explanation) == 0);
	CHECK(strcmp(a.r.mechanism, b.r.mechanism) == 0);
	CHECK(a.r.lookups == b.r.lookups && a.r.void_lookups == b.r.void_lookups);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_record(data + 1, size - 1);
		break;
	case 1:
		fuzz_macro(data + 2, size - 2, data[1]);
		break;
	default:
		fuzz_check_host(data + 2, size - 2, data[1]);
		break;
	}
	return 0;
}
