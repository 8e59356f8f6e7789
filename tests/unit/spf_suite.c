/*
 * spf_suite.c - runs SPF checks against a DNS zone held in memory, for
 * tests/integration/test_spf_suite.py (the RFC 7208 / RFC 4408 YAML suites).
 *
 * Input on stdin, one command a line; <hex> is the octets in hex, "-" is
 * empty:
 *	zone					forget the zone
 *	rr <name hex> <TYPE> <value hex>	add a record; TYPE is TXT A AAAA MX
 *						PTR CNAME SPF or TIMEOUT; MX value is
 *						"<pref> <exchange>"
 *	check <id> <ip> <helo hex> <sender hex> <receiver hex>
 *
 * For each check one line: <id> <result> <explanation hex> <mechanism hex>
 * <problem hex> <lookups> <void lookups> <ok|MISMATCH:...>.
 *
 * The zone follows the rules of pyspf's test driver (../shared/testdata/spf/
 * SOURCE.md): a name's records are walked in order; a TIMEOUT entry met
 * before any record of the asked type is a timeout (DNS_TEMPFAIL), met after
 * one ends the answer; a missing name is NXDOMAIN; a name without records
 * of the type is NODATA, unless it has a CNAME, which is followed (a loop
 * is a DNS error); a label over 63 octets is a DNS error. Exactly one MX
 * of preference 0 to "" or "." is a null MX.
 *
 * Every check runs several ways and must give the same result each time:
 * the provider answering from inside each call; answering later, the
 * newest question first; and, for each k, answering k questions later and
 * then calling spf_free() with questions outstanding (whose answers must
 * then be dropped without harm: ASan and LSan watch).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRIVER_NAME "spf_suite"
#include "driver_text.h"
#include "mailauth/spf.h"

enum { T_TXT, T_A, T_AAAA, T_MX, T_PTR, T_CNAME, T_SPF, T_TIMEOUT };

struct rr {
	char *name;		/* lower case, no trailing dot */
	int type;
	char *value;		/* NUL-terminated; len octets */
	size_t len;
};

static struct rr *zone;
static size_t nzone, capzone;

static void zone_clear(void)
{
	for (size_t i = 0; i < nzone; i++) {
		free(zone[i].name);
		free(zone[i].value);
	}
	nzone = 0;
}

static int type_of(const char *t)
{
	static const char *names[] = { "TXT", "A", "AAAA", "MX", "PTR", "CNAME", "SPF", "TIMEOUT" };

	for (int i = 0; i < 8; i++)
		if (strcmp(t, names[i]) == 0)
			return i;
	die("unknown type");
	return -1;
}

static void zone_add(const char *namehex, const char *type, const char *valuehex)
{
	char *name = unhex(namehex, NULL);

	if (nzone == capzone) {
		capzone = capzone ? capzone * 2 : 64;
		zone = realloc(zone, capzone * sizeof *zone);
		if (zone == NULL)
			die("out of memory");
	}
	zone[nzone].name = canon(name);
	free(name);
	zone[nzone].type = type_of(type);
	zone[nzone].value = unhex(valuehex, &zone[nzone].len);
	nzone++;
}

/* ------------------------------------------------------------------ */
/* lookups */

struct answer {
	enum dns_status status;
	const struct rr *rr[DNS_MAX_RECORDS];
	size_t n;
	char error[128];
};

static void lookup(const char *asked, int type, struct answer *a, int depth)
{
	char *name = canon(asked);
	const char *cname = NULL;
	bool seen_name = false, seen_type = false;
	size_t label = 0;

	memset(a, 0, sizeof *a);
	for (const char *p = name;; p++) {
		if (*p == '.' || *p == '\0') {
			if (label > 63 || (label == 0 && *name != '\0')) {
				a->status = DNS_TEMPFAIL;
				snprintf(a->error, sizeof a->error, "bad label");
				free(name);
				return;
			}
			label = 0;
			if (*p == '\0')
				break;
		} else {
			label++;
		}
	}
	for (size_t i = 0; i < nzone; i++) {
		const struct rr *r = &zone[i];

		if (strcmp(r->name, name) != 0)
			continue;
		seen_name = true;
		if (r->type == T_TIMEOUT) {
			if (!seen_type) {
				a->status = DNS_TEMPFAIL;
				snprintf(a->error, sizeof a->error, "timeout");
				a->n = 0;
				free(name);
				return;
			}
			break;
		}
		if (r->type == type) {
			seen_type = true;
			if (a->n < DNS_MAX_RECORDS)
				a->rr[a->n++] = r;
		} else if (r->type == T_CNAME && cname == NULL) {
			cname = r->value;
		}
	}
	if (a->n > 0) {
		a->status = DNS_OK;
	} else if (cname != NULL) {
		if (depth >= 10) {
			a->status = DNS_TEMPFAIL;
			snprintf(a->error, sizeof a->error, "CNAME loop");
		} else {
			lookup(cname, type, a, depth + 1);
		}
	} else {
		a->status = seen_name ? DNS_NODATA : DNS_NXDOMAIN;
	}
	free(name);
}

static void reverse_name(const struct sockaddr_storage *ip, char *out, size_t cap)
{
	size_t o = 0;

	if (ip->ss_family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)ip)->sin_addr;

		snprintf(out, cap, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
		return;
	}
	const uint8_t *b = ((const struct sockaddr_in6 *)ip)->sin6_addr.s6_addr;

	for (int i = 15; i >= 0; i--) {
		o += (size_t)snprintf(out + o, cap - o, "%x.%x.", b[i] & 15, b[i] >> 4);
	}
	snprintf(out + o, cap - o, "ip6.arpa");
}

/* Builds the answer to one question and gives it to the evaluator. */
struct question {
	int kind;		/* T_TXT, T_A (with family), T_MX, T_PTR */
	char *name;
	int family;
	struct sockaddr_storage ip;
	struct spf_query *q;
};

static void answer(const struct question *qu)
{
	struct answer a;

	switch (qu->kind) {
	case T_TXT: {
		struct dns_txt txt[DNS_MAX_RECORDS];
		struct dns_txt_result r = { 0 };

		lookup(qu->name, T_TXT, &a, 0);
		r.status = a.status;
		r.n = a.n;
		r.txt = txt;
		for (size_t i = 0; i < a.n; i++) {
			txt[i].text = a.rr[i]->value;
			txt[i].len = a.rr[i]->len;
		}
		memcpy(r.error, a.error, sizeof r.error);
		spf_answer_txt(qu->q, &r);
		return;
	}
	case T_A: {
		struct sockaddr_storage addr[DNS_MAX_RECORDS];
		struct dns_addr_result r = { 0 };

		lookup(qu->name, qu->family == AF_INET ? T_A : T_AAAA, &a, 0);
		r.status = a.status;
		r.addr = addr;
		for (size_t i = 0; i < a.n; i++) {
			memset(&addr[r.n], 0, sizeof addr[r.n]);
			if (qu->family == AF_INET) {
				struct sockaddr_in *v4 = (struct sockaddr_in *)&addr[r.n];

				v4->sin_family = AF_INET;
				if (inet_pton(AF_INET, a.rr[i]->value, &v4->sin_addr) != 1)
					die("bad A in zone");
			} else {
				struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr[r.n];

				v6->sin6_family = AF_INET6;
				if (inet_pton(AF_INET6, a.rr[i]->value, &v6->sin6_addr) != 1)
					die("bad AAAA in zone");
			}
			r.n++;
		}
		memcpy(r.error, a.error, sizeof r.error);
		spf_answer_addr(qu->q, &r);
		return;
	}
	case T_MX: {
		struct dns_mx mx[DNS_MAX_RECORDS];
		struct dns_mx_result r = { 0 };

		lookup(qu->name, T_MX, &a, 0);
		r.status = a.status;
		r.mx = mx;
		for (size_t i = 0; i < a.n; i++) {
			unsigned pref;
			int off = 0;

			if (sscanf(a.rr[i]->value, "%u %n", &pref, &off) != 1)
				die("bad MX in zone");
			mx[r.n].pref = (uint16_t)pref;
			snprintf(mx[r.n].host, sizeof mx[r.n].host, "%s", a.rr[i]->value + off);
			r.n++;
		}
		if (r.n == 1 && mx[0].pref == 0 &&
		    (mx[0].host[0] == '\0' || strcmp(mx[0].host, ".") == 0)) {
			r.null_mx = true;	/* RFC 7505, as dns.c says it */
			r.n = 0;
		}
		memcpy(r.error, a.error, sizeof r.error);
		spf_answer_mx(qu->q, &r);
		return;
	}
	case T_PTR: {
		char rev[128];
		const char *names[DNS_MAX_RECORDS];

		reverse_name(&qu->ip, rev, sizeof rev);
		lookup(rev, T_PTR, &a, 0);
		for (size_t i = 0; i < a.n; i++)
			names[i] = a.rr[i]->value;
		spf_answer_ptr(qu->q, a.status, names, a.n);
		return;
	}
	default:
		die("bad question");
	}
}

/* ------------------------------------------------------------------ */
/* the provider: at once, or queued */

struct provider {
	bool defer;
	struct question *queue;
	size_t n, cap;
	size_t asked;
};

static int put_question(struct provider *p, int kind, const char *name, int family,
			const struct sockaddr_storage *ip, struct spf_query *q)
{
	struct question qu = { kind, NULL, family, { 0 }, q };

	p->asked++;
	if (name != NULL) {
		qu.name = xmalloc(strlen(name) + 1);
		memcpy(qu.name, name, strlen(name) + 1);
	}
	if (ip != NULL)
		qu.ip = *ip;
	if (!p->defer) {
		answer(&qu);
		free(qu.name);
		return 0;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->queue = realloc(p->queue, p->cap * sizeof *p->queue);
		if (p->queue == NULL)
			die("out of memory");
	}
	p->queue[p->n++] = qu;
	return 0;
}

static int p_txt(void *ctx, const char *name, struct spf_query *q)
{
	return put_question(ctx, T_TXT, name, 0, NULL, q);
}

static int p_addr(void *ctx, const char *name, int family, struct spf_query *q)
{
	return put_question(ctx, T_A, name, family, NULL, q);
}

static int p_mx(void *ctx, const char *name, struct spf_query *q)
{
	return put_question(ctx, T_MX, name, 0, NULL, q);
}

static int p_ptr(void *ctx, const struct sockaddr_storage *ip, struct spf_query *q)
{
	return put_question(ctx, T_PTR, NULL, 0, ip, q);
}

/* Answers the newest question; false when none is waiting. */
static bool pump(struct provider *p)
{
	struct question qu;

	if (p->n == 0)
		return false;
	qu = p->queue[--p->n];
	answer(&qu);
	free(qu.name);
	return true;
}

struct outcome {
	bool done;
	int calls;
	struct spf_result r;
};

static void on_done(void *arg, const struct spf_result *r)
{
	struct outcome *o = arg;

	o->calls++;
	o->done = true;
	o->r = *r;
}

/*
 * One check. mode 0: at once; 1: later, newest first; 2: later, and
 * spf_free() after cut answers. Returns the number of questions asked.
 */
static size_t run_check(const struct spf_request *req, int mode, size_t cut, struct outcome *o)
{
	struct provider p = { .defer = mode != 0 };
	struct spf_dns dns = { p_txt, p_addr, p_mx, p_ptr, &p };
	struct spf *s;
	size_t answered = 0;

	memset(o, 0, sizeof *o);
	s = spf_new(&dns, req, on_done, o);
	if (s == NULL)
		die("spf_new failed");
	spf_start(s);
	while (!o->done) {
		if (mode == 2 && answered == cut)
			break;
		if (!pump(&p))
			die("the check waits for nothing");
		answered++;
	}
	spf_free(s);
	while (pump(&p))	/* late answers to a freed check */
		;
	if (o->calls > 1)
		die("done ran twice");
	free(p.queue);
	return p.asked;
}

static bool same(const struct spf_result *a, const struct spf_result *b)
{
	return a->code == b->code && strcmp(a->explanation, b->explanation) == 0 &&
	       strcmp(a->mechanism, b->mechanism) == 0 && strcmp(a->problem, b->problem) == 0 &&
	       a->lookups == b->lookups && a->void_lookups == b->void_lookups;
}

static void check(char *id, const char *iphex, const char *helohex, const char *senderhex,
		  const char *receiverhex)
{
	char *ip = unhex(iphex, NULL);
	char *helo = unhex(helohex, NULL);
	char *sender = unhex(senderhex, NULL);
	char *receiver = unhex(receiverhex, NULL);
	struct spf_request req = {
		.identity = SPF_MAILFROM, .helo = helo, .sender = sender,
		.receiver = receiver[0] != '\0' ? receiver : NULL,
		.default_exp = "DEFAULT", .now = 1700000000,
	};
	struct outcome first, other;
	const char *verdict = "ok";
	size_t asked;

	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&req.ip)->sin_addr) == 1)
		req.ip.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&req.ip)->sin6_addr) == 1)
		req.ip.ss_family = AF_INET6;
	else
		die("bad client address");

	run_check(&req, 0, 0, &first);
	if (!first.done)
		die("no result at once");
	asked = run_check(&req, 1, 0, &other);
	if (!other.done || !same(&first.r, &other.r))
		verdict = "MISMATCH:deferred";
	for (size_t cut = 0; cut < asked; cut++) {
		run_check(&req, 2, cut, &other);
		if (other.done)
			verdict = "MISMATCH:cancel";
	}
	printf("%s %s ", id, spf_result_name(first.r.code));
	print_hex(first.r.explanation);
	putchar(' ');
	print_hex(first.r.mechanism);
	putchar(' ');
	print_hex(first.r.problem);
	printf(" %u %u %s\n", first.r.lookups, first.r.void_lookups, verdict);
	fflush(stdout);
	free(ip);
	free(helo);
	free(sender);
	free(receiver);
}

int main(void)
{
	char line[1 << 16];

	while (fgets(line, sizeof line, stdin) != NULL) {
		char *f[8];
		int n = 0;

		line[strcspn(line, "\n")] = '\0';
		for (char *tok = strtok(line, " "); tok != NULL && n < 8; tok = strtok(NULL, " "))
			f[n++] = tok;
		if (n == 0)
			continue;
		if (strcmp(f[0], "zone") == 0 && n == 1)
			zone_clear();
		else if (strcmp(f[0], "rr") == 0 && n == 4)
			zone_add(f[1], f[2], f[3]);
		else if (strcmp(f[0], "check") == 0 && n == 6)
			check(f[1], f[2], f[3], f[4], f[5]);
		else
			die("bad command");
	}
	zone_clear();
	free(zone);
	return 0;
}
