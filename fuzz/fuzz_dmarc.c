/*
 * fuzz_dmarc.c - libFuzzer target for mailauth/dmarc: the first octet picks
 *
 *	0  the record parser (dmarc_record_parse) on the rest
 *	1  the author domain parser (dmarc_author_domain) on the rest, split
 *	   into From field bodies at each 0xfe octet (at most 4 fields)
 *	2  discovery and evaluation: the first line of the rest is the from
 *	   domain, the second the SPF domain, the others the TXT records of
 *	   the zone (which name gets which, and DNS errors, follow from a hash
 *	   of the name asked); the second octet picks SPF/DKIM results and
 *	   the sample; run with answers at once and later, which must agree,
 *	   then the report line
 *
 * and checks the invariants of dmarc.h on what comes out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dmarc_psl *psl;

static void check_text(const char *s, size_t cap)
{
	CHECK(memchr(s, '\0', cap) != NULL);
	for (; *s != '\0'; s++)
		CHECK(*s >= 0x20 && *s < 0x7f);
}

static void fuzz_record(const uint8_t *p, size_t len)
{
	struct dmarc_record r, again;
	char err[128], err2[128];
	int rc = dmarc_record_parse(p, len, &r, err, sizeof err);

	CHECK(rc == -1 || rc == 0 || rc == 1);
	CHECK(dmarc_record_parse(p, len, &again, err2, sizeof err2) == rc);	/* pure */
	check_text(err, sizeof err);
	if (rc == -1)
		CHECK(strcmp(err, "ok") != 0 && err[0] != '\0');
	if (rc != 1)
		return;
	CHECK(memcmp(&r, &again, sizeof r) == 0);
	CHECK(len >= 8 && len <= DMARC_RECORD_MAX);
	CHECK(r.p <= DMARC_POLICY_REJECT && r.sp <= DMARC_POLICY_REJECT);
	CHECK(r.adkim <= DMARC_ALIGN_STRICT && r.aspf <= DMARC_ALIGN_STRICT);
	CHECK(r.pct <= 100);
	CHECK(r.ri <= 4294967295ul);
	if (!r.sp_given)
		CHECK(r.sp == r.p);
	if (r.p_forced)
		CHECK(r.p == DMARC_POLICY_NONE && r.sp == DMARC_POLICY_NONE && r.rua[0] != '\0');
	check_text(r.rua, sizeof r.rua);
	check_text(r.ruf, sizeof r.ruf);
	check_text(r.fo, sizeof r.fo);
	check_text(r.rf, sizeof r.rf);
	check_text(r.warnings, sizeof r.warnings);
	CHECK(r.fo[0] != '\0' && r.rf[0] != '\0');
}

static void check_domain(const char *d)
{
	size_t n = strlen(d), label = 0;

	CHECK(n > 0 && n <= DMARC_DOMAIN_MAX && d[n - 1] != '.');
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)d[i];

		if (i == n || c == '.') {
			CHECK(label >= 1 && label <= 63);
			label = 0;
			continue;
		}
		label++;
		CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c >= 0x80);
	}
}

static void fuzz_author(const uint8_t *p, size_t len)
{
	struct slice v[4];
	size_t n = 0, start = 0;
	char out[DMARC_DOMAIN_MAX + 1], err[128];
	int rc;

	for (size_t i = 0; i <= len && n < 4; i++) {
		if (i == len || p[i] == 0xfe) {
			v[n].p = p + start;
			v[n].len = i - start;
			n++;
			start = i + 1;
		}
	}
	memset(out, 'x', sizeof out);
	rc = dmarc_author_domain(v, n, out, err, sizeof err);
	CHECK(rc == 0 || rc == -1);
	check_text(err, sizeof err);
	if (rc != 0) {
		CHECK(out[0] == '\0' && err[0] != '\0');
		return;
	}
	CHECK(n == 1);
	check_domain(out);
	CHECK(dmarc_aligned(psl, out, out, DMARC_ALIGN_STRICT));
	{
		char org[DMARC_DOMAIN_MAX + 1];

		bool ascii = true;

		for (const char *c = out; *c != '\0'; c++)
			ascii &= (unsigned char)*c < 0x80;
		/* (U-labels are lower-cased by libpsl too: compare only ASCII names) */
		if (ascii && dmarc_org_domain(psl, out, org, sizeof org) == 0) {
			size_t a = strlen(out), b = strlen(org);

			/* the org domain is the name itself or a suffix of it at a label */
			CHECK(b <= a && strcmp(out + a - b, org) == 0 && (a == b || out[a - b - 1] == '.'));
			CHECK(dmarc_aligned(psl, out, org, DMARC_ALIGN_RELAXED));
		}
	}
}

/* ------------------------------------------------------------------ */
/* discovery over a zone made from the input */

struct zone {
	const uint8_t *rec[8];
	size_t len[8];
	size_t n;
	unsigned seed;
};

struct provider {
	const struct zone *z;
	bool defer;
	char name[8][DMARC_DOMAIN_MAX + 1];
	struct dmarc_query *q[8];
	size_t n, asked;
};

static unsigned hash(const char *s, unsigned seed)
{
	unsigned h = 2166136261u ^ seed;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)(*s | 0x20)) * 16777619u;
	return h;
}

static void answer(const struct provider *p, const char *name, struct dmarc_query *q)
{
	const struct zone *z = p->z;
	unsigned h = hash(name, z->seed);
	struct dns_txt txt[3];
	struct dns_txt_result r = { .txt = txt };

	switch (h % 6) {
	case 0: r.status = DNS_NXDOMAIN; break;
	case 1: r.status = DNS_NODATA; break;
	case 2: r.status = (h >> 8) % 4 == 0 ? DNS_TEMPFAIL : DNS_OK; break;
	case 3: r.status = (h >> 8) % 5 == 0 ? DNS_BADNAME : DNS_OK; break;
	default: r.status = DNS_OK; break;
	}
	if (r.status == DNS_OK && z->n > 0) {
		size_t k = (h >> 4) % z->n;

		r.n = (h >> 12) % 7 == 0 ? 2 : 1;
		for (size_t i = 0; i < r.n; i++) {
			size_t j = (k + i) % z->n;

			txt[i].text = (char *)z->rec[j];
			txt[i].len = z->len[j];
		}
	} else if (r.status == DNS_OK) {
		r.status = DNS_NODATA;
	}
	dmarc_answer_txt(q, &r);
}

static int p_txt(void *ctx, const char *name, struct dmarc_query *q)
{
	struct provider *p = ctx;

	CHECK(strncmp(name, "_dmarc.", 7) == 0 && strlen(name) <= DMARC_DOMAIN_MAX);
	CHECK(p->n == 0);	/* one question at a time */
	p->asked++;
	CHECK(p->asked <= 2);	/* from domain, then org domain */
	if (p->asked == 2 && (p->z->seed & 64))
		return -1;	/* now and then the provider cannot ask */
	if (!p->defer) {
		answer(p, name, q);
		return 0;
	}
	snprintf(p->name[p->n], sizeof p->name[p->n], "%s", name);
	p->q[p->n++] = q;
	return 0;
}

struct outcome {
	int calls;
	struct dmarc_result r;
};

static void on_done(void *arg, const struct dmarc_result *r)
{
	struct outcome *o = arg;

	o->calls++;
	o->r = *r;
}

static void run(const struct zone *z, const struct dmarc_request *req, bool defer,
		struct outcome *o)
{
	struct provider p = { .z = z, .defer = defer };
	struct dmarc_dns dns = { p_txt, &p };
	struct dmarc *d = dmarc_new(&dns, psl, req, on_done, o);

	CHECK(d != NULL);
	dmarc_start(d);
	while (p.n > 0 && o->calls == 0) {
		p.n--;
		answer(&p, p.name[p.n], p.q[p.n]);
	}
	CHECK(o->calls == 1 && p.n == 0);
	dmarc_free(d);
}

static void check_result(const struct dmarc_request *req, const struct dmarc_result *r)
{
	CHECK(r->code <= DMARC_PERMERROR);
	check_text(r->problem, sizeof r->problem);
	if (r->code != DMARC_FAIL)
		CHECK(r->disposition == DMARC_POLICY_NONE && !r->sampled_out);
	if (r->code == DMARC_PASS)
		CHECK(r->spf_aligned || r->dkim_aligned);
	else
		CHECK(!r->spf_aligned && !r->dkim_aligned && r->dkim_index == -1);
	if (r->code == DMARC_PASS || r->code == DMARC_FAIL)
		CHECK(r->have_record);
	if (r->code == DMARC_NONE || r->code == DMARC_PERMERROR)
		CHECK(!r->have_record);
	if (r->dkim_index >= 0) {
		CHECK((size_t)r->dkim_index < req->ndkim);
		CHECK(req->dkim[r->dkim_index].result == DKIM_PASS);
	}
	if (r->spf_aligned)
		CHECK(req->spf == SPF_PASS);
	if (r->sampled_out)
		CHECK(req->sample >= r->rec.pct && r->policy != DMARC_POLICY_NONE &&
		      r->disposition == (r->policy == DMARC_POLICY_REJECT ? DMARC_POLICY_QUARANTINE
									  : DMARC_POLICY_NONE));
	else if (r->code == DMARC_FAIL)
		CHECK(r->disposition == r->policy);
	if (r->have_record) {
		CHECK(r->record_domain[0] != '\0');
		CHECK(r->policy == (r->subdomain_policy ? r->rec.sp : r->rec.p));
	}
}

static void fuzz_evaluate(const uint8_t *p, size_t len, unsigned sel)
{
	static const enum spf_result_code spfs[] = { SPF_PASS, SPF_FAIL, SPF_TEMPERROR, SPF_NONE };
	static const enum dkim_result dkims[] = { DKIM_PASS, DKIM_FAIL, DKIM_TEMPERROR, DKIM_PERMERROR };
	struct zone z = { .seed = sel };
	char lines[2][DMARC_INPUT_MAX + 1] = { "", "" };
	size_t start = 0, line = 0;
	struct dmarc_dkim_in sigs[3];
	struct dmarc_request req = { .spf = spfs[sel & 3], .sample = (sel * 7) % 100 };
	struct outcome a = { 0 }, b = { 0 };
	struct buf rep;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '\n')
			continue;
		if (line < 2) {
			size_t n = i - start;

			if (n > DMARC_INPUT_MAX)
				n = DMARC_INPUT_MAX;
			for (size_t k = 0; k < n; k++)	/* request strings hold no controls (dmarc_new) */
				lines[line][k] = p[start + k] < 0x20 || p[start + k] == 0x7f ? '?' : (char)p[start + k];
			lines[line][n] = '\0';
		} else if (z.n < 8) {
			z.rec[z.n] = p + start;
			z.len[z.n] = i - start;
			z.n++;
		}
		line++;
		start = i + 1;
	}
	sigs[0] = (struct dmarc_dkim_in){ lines[0], "s1", dkims[(sel >> 2) & 3] };
	sigs[1] = (struct dmarc_dkim_in){ lines[1], "s2", dkims[(sel >> 4) & 3] };
	sigs[2] = (struct dmarc_dkim_in){ "sub.example.com", "s3", DKIM_PASS };
	req.from_domain = lines[0];
	req.spf_domain = lines[1];
	req.dkim = sigs;
	req.ndkim = (sel >> 6) & 3;
	run(&z, &req, false, &a);
	run(&z, &req, true, &b);
	check_result(&req, &a.r);
	CHECK(a.r.code == b.r.code && a.r.policy == b.r.policy &&
	      a.r.disposition == b.r.disposition && a.r.dkim_index == b.r.dkim_index &&
	      strcmp(a.r.problem, b.r.problem) == 0);
	buf_init(&rep, 1 << 20);
	CHECK(dmarc_report_line(&rep, 1, "192.0.2.1", lines[1], &req, &a.r) == 0);
	CHECK(rep.len > 0 && rep.data[rep.len - 1] == '\n');
	CHECK(memchr(rep.data, '\n', rep.len - 1) == NULL);
	for (size_t i = 0; i < rep.len; i++)
		CHECK(rep.data[i] >= 0x20 || rep.data[i] == '\n');
	buf_free(&rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (psl == NULL) {
		char err[128];

		psl = dmarc_psl_load(NULL, err, sizeof err);
		if (psl == NULL) {
			fprintf(stderr, "fuzz_dmarc: %s\n", err);
			abort();
		}
	}
	if (size < 2)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_record(data + 1, size - 1);
		break;
	case 1:
		fuzz_author(data + 1, size - 1);
		break;
	default:
		fuzz_evaluate(data + 2, size - 2, data[1]);
		break;
	}
	return 0;
}
