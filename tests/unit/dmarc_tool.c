/*
 * dmarc_tool.c - runs DMARC evaluations against a DNS zone held in memory,
 * for tests/integration/test_dmarc_cases.py (tests/data/dmarc/cases.yml).
 *
 * Input on stdin, one command a line; <hex> is the octets in hex, "-" is
 * empty:
 *	zone					forget the zone
 *	rr <name hex> <TYPE> <value hex>	add a record; TYPE is TXT, A, MX (any
 *						value) or TIMEOUT (the name answers
 *						DNS_TEMPFAIL)
 *	check <id> <from> <spf result> <spf domain hex> <dkim> <sample>
 *	    from: "D<hex>" the from domain as given, or "H<n>:<hex>,<hex>..."
 *	    the bodies of n From fields, run through dmarc_author_domain first
 *	    ("H0:" is no From field); dkim: "-" or "<d hex>/<s hex>/<result>"
 *	    joined by ','; result words as dkim_result_name / spf_result_name.
 *
 * For each check one line:
 *	<id> <result> <policy> <disposition> <flags> <dkim index>
 *	     <from hex> <org hex> <record domain hex> <problem hex> <ok|MISMATCH:...>
 * where flags are four 0/1 digits: have_record spf_aligned dkim_aligned
 * sampled_out. When dmarc_author_domain fails the result is "author-error"
 * and problem is its words. The report line (dmarc_report_line) is made
 * for every check and must be one JSON line; with "report" as the last
 * word of a check it is printed after the result line as "report <json>".
 *
 * Zone rules: a name's TXT records in order; a TIMEOUT entry makes every
 * TXT question for the name DNS_TEMPFAIL; a missing name is NXDOMAIN; a
 * name with records but no TXT is NODATA.
 *
 * Every check runs several ways and must give the same result each time:
 * the provider answering from inside each call; answering later; and, for
 * each k, answering k questions and then calling dmarc_free() with one
 * outstanding (whose answer must then be dropped without harm: ASan and
 * LSan watch).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRIVER_NAME "dmarc_tool"
#include "driver_text.h"
#include "mailauth/dmarc.h"

struct rr {
	char *name;		/* lower case, no trailing dot */
	char type[8];
	char *value;
	size_t len;
};

static struct rr *zone;
static size_t nzone, capzone;
static struct dmarc_psl *psl;

static void zone_clear(void)
{
	for (size_t i = 0; i < nzone; i++) {
		free(zone[i].name);
		free(zone[i].value);
	}
	nzone = 0;
}

static void zone_add(const char *namehex, const char *type, const char *valuehex)
{
	char *name = unhex(namehex, NULL);

	if (strcmp(type, "TXT") != 0 && strcmp(type, "A") != 0 && strcmp(type, "MX") != 0 &&
	    strcmp(type, "TIMEOUT") != 0)
		die("unknown type");
	if (nzone == capzone) {
		capzone = capzone ? capzone * 2 : 64;
		zone = realloc(zone, capzone * sizeof *zone);
		if (zone == NULL)
			die("out of memory");
	}
	zone[nzone].name = canon(name);
	free(name);
	snprintf(zone[nzone].type, sizeof zone[nzone].type, "%s", type);
	zone[nzone].value = unhex(valuehex, &zone[nzone].len);
	nzone++;
}

/* ------------------------------------------------------------------ */
/* the provider: at once, or queued */

static void answer(const char *asked, struct dmarc_query *q)
{
	char *name = canon(asked);
	struct dns_txt txt[DNS_MAX_RECORDS];
	struct dns_txt_result r = { .status = DNS_NXDOMAIN, .txt = txt };
	bool seen = false;

	for (size_t i = 0; i < nzone; i++) {
		if (strcmp(zone[i].name, name) != 0)
			continue;
		seen = true;
		if (strcmp(zone[i].type, "TIMEOUT") == 0) {
			r.status = DNS_TEMPFAIL;
			r.n = 0;
			snprintf(r.error, sizeof r.error, "timeout");
			break;
		}
		if (strcmp(zone[i].type, "TXT") == 0 && r.n < DNS_MAX_RECORDS) {
			txt[r.n].text = zone[i].value;
			txt[r.n].len = zone[i].len;
			r.n++;
		}
	}
	if (r.status != DNS_TEMPFAIL)
		r.status = r.n > 0 ? DNS_OK : seen ? DNS_NODATA : DNS_NXDOMAIN;
	free(name);
	dmarc_answer_txt(q, &r);
}

struct question {
	char *name;
	struct dmarc_query *q;
};

struct provider {
	bool defer;
	struct question queue[8];
	size_t n, asked;
};

static int p_txt(void *ctx, const char *name, struct dmarc_query *q)
{
	struct provider *p = ctx;

	p->asked++;
	if (strncmp(name, "_dmarc.", 7) != 0 || strlen(name) > DMARC_DOMAIN_MAX)
		die("asked a name that is not _dmarc.<domain> of at most 253 octets");
	if (!p->defer) {
		answer(name, q);
		return 0;
	}
	if (p->n == 8)
		die("too many questions outstanding");
	p->queue[p->n].name = xmalloc(strlen(name) + 1);
	memcpy(p->queue[p->n].name, name, strlen(name) + 1);
	p->queue[p->n].q = q;
	p->n++;
	return 0;
}

static bool pump(struct provider *p)
{
	struct question qu;

	if (p->n == 0)
		return false;
	qu = p->queue[--p->n];
	answer(qu.name, qu.q);
	free(qu.name);
	return true;
}

struct outcome {
	bool done;
	int calls;
	struct dmarc_result r;
};

static void on_done(void *arg, const struct dmarc_result *r)
{
	struct outcome *o = arg;

	o->calls++;
	o->done = true;
	o->r = *r;
}

/* mode 0: at once; 1: later; 2: later, dmarc_free() after cut answers. */
static size_t run_check(const struct dmarc_request *req, int mode, size_t cut, struct outcome *o)
{
	struct provider p = { .defer = mode != 0 };
	struct dmarc_dns dns = { p_txt, &p };
	struct dmarc *d;
	size_t answered = 0;

	memset(o, 0, sizeof *o);
	d = dmarc_new(&dns, psl, req, on_done, o);
	if (d == NULL)
		die("dmarc_new failed");
	dmarc_start(d);
	while (!o->done) {
		if (mode == 2 && answered == cut)
			break;
		if (!pump(&p))
			die("the evaluation waits for nothing");
		answered++;
	}
	dmarc_free(d);
	while (pump(&p))	/* late answers to a freed evaluation */
		;
	if (o->calls > 1)
		die("done ran twice");
	return p.asked;
}

static bool same(const struct dmarc_result *a, const struct dmarc_result *b)
{
	return a->code == b->code && a->policy == b->policy && a->disposition == b->disposition &&
	       a->have_record == b->have_record && a->sampled_out == b->sampled_out &&
	       a->spf_aligned == b->spf_aligned && a->dkim_aligned == b->dkim_aligned &&
	       a->dkim_index == b->dkim_index && strcmp(a->problem, b->problem) == 0 &&
	       strcmp(a->record_domain, b->record_domain) == 0 &&
	       strcmp(a->org_domain, b->org_domain) == 0;
}

static enum spf_result_code spf_code(const char *w)
{
	for (int c = SPF_NONE; c <= SPF_PERMERROR; c++)
		if (strcmp(w, spf_result_name((enum spf_result_code)c)) == 0)
			return (enum spf_result_code)c;
	die("bad SPF result");
	return SPF_NONE;
}

static enum dkim_result dkim_code(const char *w)
{
	for (int c = DKIM_PASS; c <= DKIM_PERMERROR; c++)
		if (strcmp(w, dkim_result_name((enum dkim_result)c)) == 0)
			return (enum dkim_result)c;
	die("bad DKIM result");
	return DKIM_PASS;
}

#define SIGS_MAX 16

static void check(const char *id, const char *from, const char *spf, const char *spfhex,
		  const char *dkim, const char *samp, bool want_report)
{
	struct dmarc_dkim_in sigs[SIGS_MAX];
	char *owned[2 * SIGS_MAX];
	size_t nsigs = 0, nowned = 0;
	char author[DMARC_DOMAIN_MAX + 1], err[128];
	char *spf_domain = unhex(spfhex, NULL);
	char *from_domain = NULL;
	struct dmarc_request req = { .spf = spf_code(spf), .spf_domain = spf_domain };
	struct outcome first, other;
	const char *verdict = "ok";
	char *end;
	size_t asked;
	struct buf rep;

	req.sample = (unsigned)strtoul(samp, &end, 10);
	if (*end != '\0')
		die("bad sample");
	if (strcmp(dkim, "-") != 0) {
		const char *p = dkim;

		while (*p != '\0') {
			const char *s1 = strchr(p, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
			const char *e = s2 ? strchr(s2 + 1, ',') : NULL;
			char word[16];

			if (s2 == NULL || nsigs == SIGS_MAX)
				die("bad dkim");
			if (e == NULL)
				e = s2 + strlen(s2);
			snprintf(word, sizeof word, "%.*s", (int)(e - s2 - 1), s2 + 1);
			owned[nowned++] = unhex_n(p, (size_t)(s1 - p), NULL);
			owned[nowned++] = unhex_n(s1 + 1, (size_t)(s2 - s1 - 1), NULL);
			sigs[nsigs].domain = owned[nowned - 2];
			sigs[nsigs].selector = owned[nowned - 1];
			sigs[nsigs].result = dkim_code(word);
			nsigs++;
			p = *e == ',' ? e + 1 : e;
		}
	}
	req.dkim = sigs;
	req.ndkim = nsigs;

	if (from[0] == 'D') {
		from_domain = unhex(from + 1, NULL);
	} else if (from[0] == 'H') {
		struct slice v[8];
		char *bodies[8];
		size_t n = strtoul(from + 1, &end, 10);
		const char *p = end + 1;

		if (*end != ':' || n > 8)
			die("bad header list");
		for (size_t i = 0; i < n; i++) {
			const char *c = strchr(p, ',');
			size_t l = c ? (size_t)(c - p) : strlen(p);
			size_t blen;

			bodies[i] = unhex_n(p, l, &blen);
			v[i] = (struct slice){ (const uint8_t *)bodies[i], blen };
			p += l + (c != NULL);
		}
		if (dmarc_author_domain(v, n, author, err, sizeof err) != 0) {
			printf("%s author-error - - 0000 -1 - - - ", id);
			print_hex(err);
			printf(" ok\n");
			fflush(stdout);
			for (size_t i = 0; i < n; i++)
				free(bodies[i]);
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			free(bodies[i]);
		from_domain = xmalloc(strlen(author) + 1);
		memcpy(from_domain, author, strlen(author) + 1);
	} else {
		die("bad from");
	}
	req.from_domain = from_domain;

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
	buf_init(&rep, 1 << 20);
	if (dmarc_report_line(&rep, 1700000000, "192.0.2.1", "sender@example.net", &req, &first.r) != 0 ||
	    rep.len == 0 || rep.data[rep.len - 1] != '\n' ||
	    memchr(rep.data, '\n', rep.len - 1) != NULL)
		verdict = "MISMATCH:report";
	printf("%s %s %s %s %d%d%d%d %d ", id, dmarc_result_name(first.r.code),
	       first.r.have_record ? dmarc_policy_name(first.r.policy) : "-",
	       dmarc_policy_name(first.r.disposition), first.r.have_record, first.r.spf_aligned,
	       first.r.dkim_aligned, first.r.sampled_out, first.r.dkim_index);
	print_hex(first.r.from_domain);
	putchar(' ');
	print_hex(first.r.org_domain);
	putchar(' ');
	print_hex(first.r.record_domain);
	putchar(' ');
	print_hex(first.r.problem);
	printf(" %s\n", verdict);
	if (want_report)
		printf("report %.*s", (int)rep.len, (const char *)rep.data);
	fflush(stdout);
	buf_free(&rep);
out:
	for (size_t i = 0; i < nowned; i++)
		free(owned[i]);
	free(spf_domain);
	free(from_domain);
}

int main(int argc, char **argv)
{
	static char line[1 << 18];
	char err[128];

	psl = dmarc_psl_load(argc > 1 ? argv[1] : NULL, err, sizeof err);
	if (psl == NULL)
		die(err);
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *f[10];
		int n = 0;

		line[strcspn(line, "\n")] = '\0';
		for (char *tok = strtok(line, " "); tok != NULL && n < 10; tok = strtok(NULL, " "))
			f[n++] = tok;
		if (n == 0)
			continue;
		if (strcmp(f[0], "zone") == 0 && n == 1)
			zone_clear();
		else if (strcmp(f[0], "rr") == 0 && n == 4)
			zone_add(f[1], f[2], f[3]);
		else if (strcmp(f[0], "check") == 0 && (n == 7 || (n == 8 && strcmp(f[7], "report") == 0)))
			check(f[1], f[2], f[3], f[4], f[5], f[6], n == 8);
		else
			die("bad command");
	}
	zone_clear();
	free(zone);
	dmarc_psl_free(psl);
	return 0;
}
