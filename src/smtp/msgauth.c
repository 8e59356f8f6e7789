/* msgauth.c - SPF, DKIM and DMARC for one inbound transaction; see msgauth.h. */
#include "msgauth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../mailauth/authres.h"
#include "../mailauth/dkim.h"
#include "../mailauth/dmarc.h"
#include "../mailauth/spf.h"
#include "../proto/hdr_stream.h"
#include "session.h"

#define FIELD_MAX (16 * 1024)	/* a header field held whole for the checks */
#define FROM_KEPT 2		/* From fields kept: one is right, two is wrong */
#define DMARC_PROBLEM_TEXT (sizeof ((struct dmarc_result *)0)->problem + 8)

enum { ID_MAIL = 0, ID_HELO = 1 };

enum phase {
	PH_IDLE,		/* SPF may run in the background */
	PH_MAIL,		/* MAIL FROM waits for SPF */
	PH_SPF,			/* end of DATA: waiting for SPF */
	PH_DKIM,		/* waiting for DKIM keys */
	PH_DMARC,		/* waiting for DMARC records */
	PH_DONE,
};

/* One DKIM key lookup; outlives the msgauth when cancelled (ma NULL). */
struct keyq {
	struct msgauth *ma;
	size_t i;
};

struct msgauth {
	struct session *s;
	uv_timer_t timer;		/* mail_auth_timeout of the current wait */
	uv_timer_t kick;		/* answers a wait whose result is known */
	unsigned open_handles;		/* freed when both are closed */
	enum phase phase;
	bool expired;			/* the current wait ran out of time */
	bool busy;			/* inside advance(): answers given at once wait for it */

	struct spf *spf[2];		/* running checks, NULL when done or not run */
	bool spf_run[2];
	struct spf_result spf_res[2];
	void (*on_mail)(struct session *s, const struct smtp_reply *refusal);

	struct dkim_verify *dv;		/* NULL: out of memory, no DKIM */
	struct hdr_stream hs;
	bool hs_on;
	struct buf keep;		/* header octets on their way to the spool */
	struct buf from;		/* the bodies of the first FROM_KEPT From fields */
	size_t from_off[FROM_KEPT], from_len[FROM_KEPT];
	unsigned nfrom;
	bool from_partial;		/* a From field over FIELD_MAX */
	bool no_author;			/* not exactly one author domain (RFC 7489 6.6.1) */
	unsigned forged;		/* Authentication-Results fields removed */
	bool nomem;			/* DKIM could not be checked: defer, never judge blind */

	struct keyq *keyq[DKIM_MAX_SIGS];
	const char *dkim_error;		/* the whole message could not be verified */
	enum dkim_result dkim_error_res;

	struct dmarc *dm;
	bool dmarc_ran;
	struct dmarc_request dreq;
	struct dmarc_dkim_in din[DKIM_MAX_SIGS];
	struct dmarc_result dres;
	char author[DMARC_DOMAIN_MAX + 1];
	char author_problem[128];
	char sender_domain[ADDR_DOMAIN_MAX + 1];

	void (*on_verdict)(struct session *s, const struct msgauth_verdict *v);
	struct buf prepend;
	struct msgauth_verdict v;
};

static const struct smtp_reply r_spf_temp = {
	451, "4.7.24", "Temporary DNS error checking SPF for the sender's domain; try again later"
};

static void advance(struct msgauth *ma);
static void step(struct msgauth *ma);

/* ---- DNS providers: the worker's resolver on the loop ------------------- */

static int spf_txt(void *ctx, const char *name, struct spf_query *q)
{
	return dns_txt(ctx, name, spf_answer_txt, q);
}

/* SPF names may hold '_' and more (RFC 7208 7): the looser name rule. */
static int spf_addr(void *ctx, const char *name, int family, struct spf_query *q)
{
	return dns_addr_loose(ctx, name, family, spf_answer_addr, q);
}

static int spf_mx(void *ctx, const char *name, struct spf_query *q)
{
	return dns_mx(ctx, name, spf_answer_mx, q);
}

static void spf_ptr_answer(void *q, const struct dns_ptr_result *r)
{
	spf_answer_ptr(q, r->status, (const char *const *)r->names, r->n);
}

static int spf_ptr(void *ctx, const struct sockaddr_storage *ip, struct spf_query *q)
{
	return dns_ptr(ctx, ip, spf_ptr_answer, q);
}

static int dmarc_txt(void *ctx, const char *name, struct dmarc_query *q)
{
	return dns_txt(ctx, name, dmarc_answer_txt, q);
}

/* ---- who, and the timer ------------------------------------------------ */

bool msgauth_applies(const struct session *s)
{
	return s->lc->role == ROLE_MX && s->w->conf->mail_auth && s->w->dns != NULL &&
	       s->auth_user[0] == '\0' && !session_peer_in(s, s->w->conf->trusted_networks) &&
	       !session_peer_in(s, s->w->conf->mail_auth_ignore);
}

static void spf_cancel(struct msgauth *ma, int k, const char *why)
{
	if (ma->spf[k] == NULL)
		return;
	spf_free(ma->spf[k]);
	ma->spf[k] = NULL;
	ma->spf_res[k].code = SPF_TEMPERROR;
	snprintf(ma->spf_res[k].problem, sizeof ma->spf_res[k].problem, "%s", why);
}

static void dkim_cancel(struct msgauth *ma)
{
	for (size_t i = 0; i < DKIM_MAX_SIGS; i++) {
		if (ma->keyq[i] == NULL)
			continue;
		ma->keyq[i]->ma = NULL;	/* its answer frees it */
		ma->keyq[i] = NULL;
		dkim_key_answer(ma->dv, i, DKIM_KEY_TEMPFAIL, NULL, 0);
	}
}

static void on_timeout(uv_timer_t *t)
{
	struct msgauth *ma = t->data;
	static const char why[] = "no DNS answer within mail_auth_timeout";

	ma->expired = true;
	spf_cancel(ma, ID_MAIL, why);
	spf_cancel(ma, ID_HELO, why);
	if (ma->phase == PH_DKIM)
		dkim_cancel(ma);
	if (ma->phase == PH_DMARC && ma->dm != NULL) {
		dmarc_free(ma->dm);
		ma->dm = NULL;
		memset(&ma->dres, 0, sizeof ma->dres);
		ma->dres.code = DMARC_TEMPERROR;
		ma->dres.dkim_index = -1;
		snprintf(ma->dres.problem, sizeof ma->dres.problem, "%s", why);
	}
	advance(ma);
}

static void on_kick(uv_timer_t *t)
{
	advance(t->data);
}

static void timer_restart(struct msgauth *ma)
{
	ma->expired = false;
	uv_timer_start(&ma->timer, on_timeout, (uint64_t)ma->s->w->conf->mail_auth_timeout * 1000, 0);
}

/* ---- SPF at MAIL FROM ----------------------------------------------------- */

static void on_spf(struct msgauth *ma, int k, const struct spf_result *r)
{
	ma->spf_res[k] = *r;
	spf_free(ma->spf[k]);
	ma->spf[k] = NULL;
	advance(ma);
}

static void on_spf_mail(void *arg, const struct spf_result *r)
{
	on_spf(arg, ID_MAIL, r);
}

static void on_spf_helo(void *arg, const struct spf_result *r)
{
	on_spf(arg, ID_HELO, r);
}

static void spf_begin(struct msgauth *ma, int k, const char *sender)
{
	struct session *s = ma->s;
	struct spf_dns dns = { spf_txt, spf_addr, spf_mx, spf_ptr, s->w->dns };
	struct spf_request req = {
		.identity = k == ID_MAIL ? SPF_MAILFROM : SPF_HELO,
		.helo = s->helo, .sender = sender, .receiver = s->w->conf->hostname,
	};

	memcpy(&req.ip, &s->peer, sizeof req.ip);
	ma->spf_run[k] = true;
	ma->spf_res[k].code = SPF_TEMPERROR;
	ma->spf[k] = spf_new(&dns, &req, k == ID_MAIL ? on_spf_mail : on_spf_helo, ma);
	if (ma->spf[k] == NULL) {
		snprintf(ma->spf_res[k].problem, sizeof ma->spf_res[k].problem, "out of memory");
		return;
	}
	spf_start(ma->spf[k]);	/* may finish at once */
}

static bool hdr_field(void *arg, const uint8_t *field, size_t len, bool partial);

struct msgauth *msgauth_new(struct session *s)
{
	struct msgauth *ma = calloc(1, sizeof *ma);
	const struct mailbox *from = &s->tx.from;
	char sender[ADDR_PATH_MAX + 8];

	if (ma == NULL)
		return NULL;
	ma->s = s;
	uv_timer_init(s->w->loop, &ma->timer);
	uv_timer_init(s->w->loop, &ma->kick);
	ma->timer.data = ma->kick.data = ma;
	ma->open_handles = 2;
	buf_init(&ma->keep, SIZE_MAX);
	buf_init(&ma->from, SIZE_MAX);
	buf_init(&ma->prepend, SIZE_MAX);
	ma->dres.dkim_index = -1;
	timer_restart(ma);
	/* RFC 7208 2.4: a null reverse-path is checked as postmaster@HELO, and
	 * that is the HELO check (2.3): run it once. */
	if (from->is_null) {
		spf_begin(ma, ID_MAIL, "");
	} else {
		addr_format(from, sender, sizeof sender);
		snprintf(ma->sender_domain, sizeof ma->sender_domain, "%s", from->domain);
		spf_begin(ma, ID_MAIL, sender);
		spf_begin(ma, ID_HELO, "");
	}
	return ma;
}

/* The reply SPF gives MAIL FROM, or NULL for 250. */
static const struct smtp_reply *mail_refusal(struct msgauth *ma, struct smtp_reply *out,
					     char *text, size_t cap)
{
	const struct conf *c = ma->s->w->conf;
	const struct spf_result *r = &ma->spf_res[ID_MAIL];

	if (r->code == SPF_FAIL && c->spf_reject) {
		/* RFC 7372 3.2: X.7.23 SPF validation failed. */
		snprintf(text, cap, "SPF check failed: %.120s does not allow %s to send its mail%s%.180s",
			 r->domain, ma->s->client_ip, r->explanation[0] ? ": " : "", r->explanation);
		*out = (struct smtp_reply){ 550, "5.7.23", text };
		return out;
	}
	if (r->code == SPF_TEMPERROR && c->mail_auth_tempfail)
		return &r_spf_temp;
	return NULL;
}

bool msgauth_mail_wait(struct msgauth *ma,
		       void (*on_mail)(struct session *s, const struct smtp_reply *refusal))
{
	const struct conf *c = ma->s->w->conf;

	if (!c->spf_reject && !c->mail_auth_tempfail)
		return false;	/* nothing SPF says can refuse MAIL */
	ma->on_mail = on_mail;
	ma->phase = PH_MAIL;
	if (ma->spf[ID_MAIL] == NULL)	/* known already: answer from the loop all the same */
		uv_timer_start(&ma->kick, on_kick, 0, 0);
	return true;
}

/* ---- DATA --------------------------------------------------------------- */

/* The field's name is `name` (RFC 5322 2.2: name, optional WSP, colon). */
static bool field_named(const uint8_t *f, size_t len, const char *name, size_t *body)
{
	size_t n = strlen(name), i = n;

	if (len <= n || strncasecmp((const char *)f, name, n) != 0)
		return false;
	while (i < len && (f[i] == ' ' || f[i] == '\t'))
		i++;
	if (i >= len || f[i] != ':')
		return false;
	*body = i + 1;
	return true;
}

static bool hdr_field(void *arg, const uint8_t *field, size_t len, bool partial)
{
	struct msgauth *ma = arg;
	size_t body;

	if (authres_field_is_named(field, len)) {
		/* RFC 8601 5: a field claiming our id came from outside. One cut
		 * short cannot be judged (the id may hide past the cut): it goes
		 * too, as section 5 allows for any such field. */
		if (partial || authres_field_is_ours(field, len, ma->s->w->conf->authserv_id)) {
			ma->forged++;
			return false;
		}
		return true;
	}
	if (field_named(field, len, "From", &body)) {
		if (ma->nfrom < FROM_KEPT) {
			ma->from_off[ma->nfrom] = ma->from.len;
			ma->from_len[ma->nfrom] = len - body;
			if (buf_append(&ma->from, field + body, len - body) < 0)
				partial = true;	/* unread, so no author domain */
		}
		ma->nfrom++;
		ma->from_partial |= partial;
	}
	return true;
}

static void data_begin(struct msgauth *ma)
{
	struct dkim_verify_opts o = { .cache = ma->s->w->dkim_cache };

	ma->hs_on = true;
	hdr_stream_init(&ma->hs, FIELD_MAX, hdr_field, ma);
	ma->dv = dkim_verify_begin(&o);
	ma->nomem = ma->dv == NULL;
}

void msgauth_write(struct msgauth *ma, struct spool_msg *m, const uint8_t *p, size_t n)
{
	if (!ma->hs_on)
		data_begin(ma);
	if (ma->dv != NULL && dkim_verify_feed(ma->dv, p, n) < 0) {
		dkim_verify_free(ma->dv);
		ma->dv = NULL;
		ma->nomem = true;
	}
	if (hdr_stream_in_body(&ma->hs)) {
		spool_msg_write(m, p, n);
		return;
	}
	buf_reset(&ma->keep);
	if (hdr_stream_feed(&ma->hs, p, n, &ma->keep) < 0) {
		m->err = m->err ? m->err : ENOMEM;	/* 452: never a message with a hole */
		return;
	}
	spool_msg_write(m, ma->keep.data, ma->keep.len);
}

/* ---- DKIM ------------------------------------------------------------------ */

/* Signatures with a result: none when the message could not be verified. */
static size_t nsigs(const struct msgauth *ma)
{
	return ma->dv != NULL && ma->dkim_error == NULL ? dkim_verify_count(ma->dv) : 0;
}

static void on_key(void *arg, const struct dns_txt_result *r)
{
	struct keyq *q = arg;
	struct msgauth *ma = q->ma;
	struct slice txt[DNS_MAX_RECORDS];
	enum dkim_key_status st;
	size_t i = q->i, n = 0;

	free(q);
	if (ma == NULL)
		return;		/* cancelled */
	ma->keyq[i] = NULL;
	if (r->status == DNS_OK) {
		st = DKIM_KEY_FOUND;
		for (n = 0; n < r->n && n < DNS_MAX_RECORDS; n++)
			txt[n] = (struct slice){ (const uint8_t *)r->txt[n].text, r->txt[n].len };
	} else {
		/* dkim.h: NXDOMAIN, NODATA and a bad name are "no key". */
		st = r->status == DNS_TEMPFAIL ? DKIM_KEY_TEMPFAIL : DKIM_KEY_NONE;
	}
	if (dkim_key_answer(ma->dv, i, st, txt, n) == 0)
		advance(ma);
}

static void dkim_lookup(void *ctx, size_t i, const char *name)
{
	struct msgauth *ma = ctx;
	struct keyq *q;

	if (ma->expired || i >= DKIM_MAX_SIGS || (q = malloc(sizeof *q)) == NULL) {
		dkim_key_answer(ma->dv, i, DKIM_KEY_TEMPFAIL, NULL, 0);
		return;
	}
	*q = (struct keyq){ ma, i };
	ma->keyq[i] = q;
	if (dns_txt(ma->s->w->dns, name, on_key, q) < 0) {
		ma->keyq[i] = NULL;
		free(q);
		dkim_key_answer(ma->dv, i, DKIM_KEY_TEMPFAIL, NULL, 0);
	}
}

/* ---- DMARC ----------------------------------------------------------------- */

static void on_dmarc(void *arg, const struct dmarc_result *r)
{
	struct msgauth *ma = arg;

	ma->dres = *r;
	dmarc_free(ma->dm);
	ma->dm = NULL;
	advance(ma);
}

/* RFC 7489 6.6.1: the author domain, from exactly one From field. */
static bool author_domain(struct msgauth *ma)
{
	struct slice v[FROM_KEPT];

	if (ma->nfrom != 1) {
		snprintf(ma->author_problem, sizeof ma->author_problem,
			 ma->nfrom == 0 ? "the message has no From: field" :
			 "the message has %u From: fields", ma->nfrom);
		return false;
	}
	if (ma->from_partial) {
		snprintf(ma->author_problem, sizeof ma->author_problem, "the From: field is too long");
		return false;
	}
	v[0] = (struct slice){ ma->from.data + ma->from_off[0], ma->from_len[0] };
	/* dmarc.h: the words are printable ASCII, fit for a reply and a field. */
	return dmarc_author_domain(v, 1, ma->author, ma->author_problem,
				   sizeof ma->author_problem) == 0;
}

static void dmarc_begin(struct msgauth *ma)
{
	struct worker *w = ma->s->w;
	struct dmarc_dns dns = { dmarc_txt, w->dns };
	struct dmarc_request *q = &ma->dreq;
	const struct spf_result *spf = &ma->spf_res[ID_MAIL];
	size_t n = nsigs(ma);

	ma->dmarc_ran = true;
	ma->dres.code = DMARC_PERMERROR;
	if (!author_domain(ma)) {
		ma->no_author = true;
		snprintf(ma->dres.problem, sizeof ma->dres.problem, "%s", ma->author_problem);
		return;
	}
	if (w->psl == NULL) {
		ma->dres.code = DMARC_NONE;
		snprintf(ma->dres.problem, sizeof ma->dres.problem, "no public suffix list");
		return;
	}
	/* RFC 7489 4.1 and RFC 7208 2.4: DMARC's SPF identity is the MAIL FROM
	 * domain, or the HELO domain for a null sender (which spf.c checked). */
	q->from_domain = ma->author;
	q->spf_domain = ma->sender_domain[0] ? ma->sender_domain : spf->domain;
	q->spf = spf->code;
	for (size_t i = 0; i < n && i < DKIM_MAX_SIGS; i++) {
		const struct dkim_sig_result *r = dkim_verify_result(ma->dv, i);

		ma->din[i] = (struct dmarc_dkim_in){ r->d, r->s, r->result };
	}
	q->dkim = ma->din;
	q->ndkim = n < DKIM_MAX_SIGS ? n : DKIM_MAX_SIGS;
	q->sample = arc4random_uniform(100);	/* RFC 7489 6.6.4: pct */
	if (ma->expired) {
		ma->dres.code = DMARC_TEMPERROR;
		snprintf(ma->dres.problem, sizeof ma->dres.problem, "no DNS answer within mail_auth_timeout");
		return;
	}
	ma->dm = dmarc_new(&dns, w->psl, q, on_dmarc, ma);
	if (ma->dm == NULL) {
		ma->dres.code = DMARC_TEMPERROR;
		snprintf(ma->dres.problem, sizeof ma->dres.problem, "out of memory");
		return;
	}
	dmarc_start(ma->dm);	/* may finish at once */
}

/* ---- the verdict -------------------------------------------------------------- */

static int add_spf(struct msgauth *ma, struct buf *b, int k)
{
	const struct spf_result *r = &ma->spf_res[k];
	const struct session *s = ma->s;
	char sender[ADDR_PATH_MAX + 8], comment[SPF_MECHANISM_MAX + SPF_PROBLEM_MAX + 64];
	struct authres_prop p;

	if (!ma->spf_run[k])
		return 0;
	if (k == ID_MAIL && !s->tx.from.is_null) {
		addr_format(&s->tx.from, sender, sizeof sender);
		p = (struct authres_prop){ "smtp.mailfrom", sender };
	} else {
		p = (struct authres_prop){ "smtp.helo", s->helo[0] ? s->helo : "unknown" };
	}
	comment[0] = '\0';
	if (r->code == SPF_TEMPERROR || r->code == SPF_PERMERROR)
		snprintf(comment, sizeof comment, "%s", r->problem);
	else if (r->mechanism[0] != '\0')
		snprintf(comment, sizeof comment, "%s: %s %s %s", r->domain,
			 r->code == SPF_PASS ? "designates" : "does not designate", s->client_ip,
			 strcmp(r->mechanism, "default") == 0 ? "(no mechanism matched)" : r->mechanism);
	return authres_add(b, "spf", spf_result_name(r->code), NULL, comment[0] ? comment : NULL, &p, 1);
}

static int add_dkim(struct msgauth *ma, struct buf *b)
{
	size_t n = nsigs(ma);

	if (ma->dkim_error != NULL)
		return authres_add(b, "dkim", dkim_result_name(ma->dkim_error_res), ma->dkim_error,
				   NULL, NULL, 0);
	if (n == 0)
		return authres_add(b, "dkim", "none", NULL, NULL, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		const struct dkim_sig_result *r = dkim_verify_result(ma->dv, i);
		struct authres_prop p[4];
		size_t np = 0;
		char comment[96] = "";

		if (r->d[0] != '\0')
			p[np++] = (struct authres_prop){ "header.d", r->d };
		if (r->s[0] != '\0')
			p[np++] = (struct authres_prop){ "header.s", r->s };
		if (r->a[0] != '\0')
			p[np++] = (struct authres_prop){ "header.a", r->a };
		if (r->b_prefix[0] != '\0')	/* RFC 6008: tells signatures apart */
			p[np++] = (struct authres_prop){ "header.b", r->b_prefix };
		/* RFC 6376 8.2: content after l= is not vouched for. */
		if (r->l_used && r->unsigned_octets > 0)
			snprintf(comment, sizeof comment, "l= used: %llu octets of the body are not signed",
				 (unsigned long long)r->unsigned_octets);
		else if (r->testing)
			snprintf(comment, sizeof comment, "the key is in test mode (t=y)");
		if (authres_add(b, "dkim", dkim_result_name(r->result),
				r->result == DKIM_PASS ? NULL : r->note, comment[0] ? comment : NULL, p, np) < 0)
			return -1;
	}
	return 0;
}

static int add_dmarc(struct msgauth *ma, struct buf *b)
{
	const struct dmarc_result *r = &ma->dres;
	struct authres_prop p = { "header.from", ma->author };
	char comment[DMARC_PROBLEM_TEXT] = "";

	if (r->have_record)
		snprintf(comment, sizeof comment, "p=%s sp=%s dis=%s%s", dmarc_policy_name(r->rec.p),
			 dmarc_policy_name(r->rec.sp), dmarc_policy_name(r->disposition),
			 r->sampled_out ? " pct" : "");
	else if (r->code != DMARC_PASS && r->problem[0] != '\0')
		snprintf(comment, sizeof comment, "%s", r->problem);
	return authres_add(b, "dmarc", dmarc_result_name(r->code), NULL, comment[0] ? comment : NULL,
			   &p, ma->author[0] ? 1 : 0);
}

/* "SPF fail for evil.example; DKIM: no signature" - the reject words. */
static void failing_checks(struct msgauth *ma, char *out, size_t cap)
{
	const struct spf_result *spf = &ma->spf_res[ID_MAIL];
	size_t n = nsigs(ma);
	int o;

	o = snprintf(out, cap, "SPF %s for %s%s", spf_result_name(spf->code),
		     ma->dreq.spf_domain ? ma->dreq.spf_domain : "",
		     spf->code == SPF_PASS ? " (not aligned)" : "");
	if (o < 0 || (size_t)o >= cap)
		return;
	if (n == 0) {
		snprintf(out + o, cap - (size_t)o, ", no DKIM signature");
		return;
	}
	for (size_t i = 0; i < n && (size_t)o < cap; i++) {
		const struct dkim_sig_result *r = dkim_verify_result(ma->dv, i);
		int k = snprintf(out + o, cap - (size_t)o, ", DKIM %s for d=%s%s%s%s",
				 dkim_result_name(r->result), r->d[0] ? r->d : "?",
				 r->result == DKIM_PASS ? " (not aligned)" : " (",
				 r->result == DKIM_PASS ? "" : r->note,
				 r->result == DKIM_PASS ? "" : ")");
		if (k < 0)
			return;
		o += k;
	}
}

static void summarize(struct msgauth *ma)
{
	const char *dkim = "none";
	size_t n = nsigs(ma);

	if (ma->dkim_error != NULL)
		dkim = dkim_result_name(ma->dkim_error_res);
	for (size_t i = 0; i < n; i++) {
		enum dkim_result r = dkim_verify_result(ma->dv, i)->result;

		if (i == 0 || r == DKIM_PASS)
			dkim = dkim_result_name(r);
		if (r == DKIM_PASS)
			break;
	}
	snprintf(ma->v.summary, sizeof ma->v.summary, "spf=%s dkim=%s dmarc=%s",
		 spf_result_name(ma->spf_res[ID_MAIL].code), dkim, dmarc_result_name(ma->dres.code));
}

static void log_checks(struct msgauth *ma)
{
	struct session *s = ma->s;
	size_t n = nsigs(ma);
	static const char *const actions[] = { "accept", "quarantine", "reject", "defer" };
	struct buf b;

	if (!log_enabled(LOG_INFO))
		return;
	buf_init(&b, 4096);
	buf_printf(&b, "event=mailauth session=%s qid=%s action=%s spf=%s", s->id, s->tx.msg.qid,
		   actions[ma->v.action], spf_result_name(ma->spf_res[ID_MAIL].code));
	log_kv_escaped(&b, "spf_domain", ma->spf_res[ID_MAIL].domain, strlen(ma->spf_res[ID_MAIL].domain));
	if (ma->spf_run[ID_HELO])
		buf_printf(&b, " helo_spf=%s", spf_result_name(ma->spf_res[ID_HELO].code));
	for (size_t i = 0; i < n; i++) {
		const struct dkim_sig_result *r = dkim_verify_result(ma->dv, i);

		buf_printf(&b, " dkim%zu=%s", i, dkim_result_name(r->result));
		log_kv_escaped(&b, "d", r->d, strlen(r->d));
		log_kv_escaped(&b, "s", r->s, strlen(r->s));
		if (r->result != DKIM_PASS)
			log_kv_escaped(&b, "why", r->note, strlen(r->note));
	}
	if (n == 0)
		buf_printf(&b, " dkim=%s", ma->dkim_error ? dkim_result_name(ma->dkim_error_res) : "none");
	buf_printf(&b, " dmarc=%s", dmarc_result_name(ma->dres.code));
	log_kv_escaped(&b, "from_domain", ma->author, strlen(ma->author));
	if (ma->dres.have_record)
		buf_printf(&b, " policy=%s disposition=%s%s", dmarc_policy_name(ma->dres.policy),
			   dmarc_policy_name(ma->dres.disposition), ma->dres.sampled_out ? " sampled_out=yes" : "");
	if (ma->dres.problem[0] != '\0')
		log_kv_escaped(&b, "dmarc_problem", ma->dres.problem, strlen(ma->dres.problem));
	if (ma->forged > 0)
		buf_printf(&b, " removed_authres=%u", ma->forged);
	log_buf(LOG_INFO, &b);
	buf_free(&b);
}

static void decide(struct msgauth *ma)
{
	const struct conf *c = ma->s->w->conf;
	const struct dmarc_result *r = &ma->dres;
	struct msgauth_verdict *v = &ma->v;
	char why[300];

	v->action = MSGAUTH_ACCEPT;
	if (ma->nomem) {
		/* A signature unchecked could turn a DMARC pass into a reject. */
		v->action = MSGAUTH_DEFER;
		v->code = 451;
		v->enh = "4.3.0";
		snprintf(v->text, sizeof v->text, "Out of memory checking DKIM; try again later");
	} else if (ma->no_author && c->dmarc_reject) {
		/* RFC 7489 6.6.1: without exactly one author domain there is no
		 * policy to apply, and a reader would still show some From: one
		 * that could be forged. RFC 5322 3.6 asks for exactly one field. */
		v->action = MSGAUTH_REJECT;
		v->code = 550;
		v->enh = "5.7.1";
		snprintf(v->text, sizeof v->text,
			 "Message refused: %s; DMARC needs exactly one author domain (RFC 7489 6.6.1)",
			 ma->author_problem);
	} else if (r->code == DMARC_FAIL && r->disposition == DMARC_POLICY_REJECT && c->dmarc_reject) {
		failing_checks(ma, why, sizeof why);
		v->action = MSGAUTH_REJECT;
		v->code = 550;
		v->enh = "5.7.1";
		snprintf(v->text, sizeof v->text,
			 "Message rejected: %.120s publishes a DMARC policy of reject and this message fails it (%.180s)",
			 ma->author, why);
	} else if (r->code == DMARC_TEMPERROR && c->mail_auth_tempfail) {
		v->action = MSGAUTH_DEFER;
		v->code = 451;
		v->enh = "4.7.0";
		snprintf(v->text, sizeof v->text, "Temporary error checking DMARC for %.120s (%.180s); try again later",
			 ma->author, r->problem);
	} else if ((r->code == DMARC_FAIL && r->disposition != DMARC_POLICY_NONE) || ma->no_author) {
		v->action = MSGAUTH_QUARANTINE;	/* quarantine, or reject not enforced */
	}
	summarize(ma);
	if (v->action == MSGAUTH_REJECT || v->action == MSGAUTH_DEFER)
		return;
	if (authres_begin(&ma->prepend, c->authserv_id) < 0 || add_spf(ma, &ma->prepend, ID_MAIL) < 0 ||
	    add_spf(ma, &ma->prepend, ID_HELO) < 0 || add_dkim(ma, &ma->prepend) < 0 ||
	    add_dmarc(ma, &ma->prepend) < 0 || authres_end(&ma->prepend) < 0) {
		/* Never a message with half a field: the sender tries again. */
		v->action = MSGAUTH_DEFER;
		v->code = 451;
		v->enh = "4.3.0";
		snprintf(v->text, sizeof v->text, "Out of memory; try again later");
		return;
	}
	if (v->action == MSGAUTH_QUARANTINE && ma->no_author) {
		buf_printf(&ma->prepend, "X-Tern-Quarantine: no single author domain (%s)\r\n",
			   ma->author_problem);
	} else if (v->action == MSGAUTH_QUARANTINE) {
		failing_checks(ma, why, sizeof why);
		buf_printf(&ma->prepend, "X-Tern-Quarantine: DMARC policy %s of %s (%s)\r\n",
			   dmarc_policy_name(r->disposition), ma->author, why);
	}
	if (v->action == MSGAUTH_QUARANTINE)
		v->folder = strcmp(c->quarantine_folder, "none") != 0 ? c->quarantine_folder : NULL;
	v->prepend = &ma->prepend;
}

/* ---- the state machine ---------------------------------------------------- */

static void mail_answer(struct msgauth *ma)
{
	struct smtp_reply rep;
	char text[400];
	const struct smtp_reply *refusal = mail_refusal(ma, &rep, text, sizeof text);

	ma->phase = PH_IDLE;
	ma->on_mail(ma->s, refusal);
}

static void dkim_begin(struct msgauth *ma)
{
	int left;

	ma->phase = PH_DKIM;
	if (ma->dv == NULL)
		return;
	left = dkim_verify_end(ma->dv, dkim_lookup, ma);
	if (left < 0)
		ma->dkim_error = dkim_verify_error(ma->dv, &ma->dkim_error_res);
}

static bool dkim_waiting(const struct msgauth *ma)
{
	return ma->dv != NULL && ma->dkim_error == NULL && dkim_verify_pending(ma->dv) > 0;
}

/* Move on as far as the answers allow; runs from loop callbacks. A check
 * that finishes inside its own start (every answer at hand) calls back
 * into here: busy makes that a no-op, and the caller below goes on. */
static void advance(struct msgauth *ma)
{
	if (ma->busy)
		return;
	ma->busy = true;
	step(ma);
	ma->busy = false;
}

static void step(struct msgauth *ma)
{
	switch (ma->phase) {
	case PH_IDLE:
	case PH_DONE:
		return;
	case PH_MAIL:
		if (ma->spf[ID_MAIL] == NULL)
			mail_answer(ma);
		return;
	case PH_SPF:
		if (ma->spf[ID_MAIL] != NULL || ma->spf[ID_HELO] != NULL)
			return;
		dkim_begin(ma);
		/* fall through */
	case PH_DKIM:
		if (dkim_waiting(ma))
			return;
		ma->phase = PH_DMARC;
		dmarc_begin(ma);
		/* fall through */
	case PH_DMARC:
		if (ma->dm != NULL)
			return;
		ma->phase = PH_DONE;
		uv_timer_stop(&ma->timer);
		decide(ma);
		log_checks(ma);
		ma->on_verdict(ma->s, &ma->v);
		return;
	}
}

void msgauth_finish(struct msgauth *ma, struct spool_msg *m,
		    void (*on_verdict)(struct session *s, const struct msgauth_verdict *v))
{
	if (!ma->hs_on)
		data_begin(ma);	/* an empty message */
	buf_reset(&ma->keep);
	if (hdr_stream_end(&ma->hs, &ma->keep) < 0)
		m->err = m->err ? m->err : ENOMEM;
	else
		spool_msg_write(m, ma->keep.data, ma->keep.len);
	ma->on_verdict = on_verdict;
	ma->phase = PH_SPF;
	/* A fresh time budget for the keys and records; SPF still running
	 * shares it. Answered from the loop even when nothing is asked. */
	timer_restart(ma);
	uv_timer_start(&ma->kick, on_kick, 0, 0);
}

void msgauth_record(struct msgauth *ma)
{
	struct worker *w = ma->s->w;
	char sender[ADDR_PATH_MAX + 8];
	struct buf b;

	if (w->dmarc_fd < 0 || !ma->dmarc_ran || !ma->dres.have_record)
		return;
	addr_format(&ma->s->tx.from, sender, sizeof sender);
	buf_init(&b, 16384);
	dmarc_report_line(&b, time(NULL), ma->s->client_ip, sender, &ma->dreq, &ma->dres);
	/* O_APPEND and one write per line: lines from several workers do not
	 * interleave; the page cache takes it without waiting for the disk. */
	if (b.len > 0 && write(w->dmarc_fd, b.data, b.len) != (ssize_t)b.len)
		log_event(LOG_WARN, "event=dmarc-record-error error=\"short write\"");
	buf_free(&b);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct msgauth *ma = h->data;

	if (--ma->open_handles == 0)
		free(ma);
}

void msgauth_free(struct msgauth *ma)
{
	if (ma == NULL)
		return;
	spf_free(ma->spf[ID_MAIL]);
	spf_free(ma->spf[ID_HELO]);
	for (size_t i = 0; i < DKIM_MAX_SIGS; i++)
		if (ma->keyq[i] != NULL)
			ma->keyq[i]->ma = NULL;
	dmarc_free(ma->dm);
	dkim_verify_free(ma->dv);
	if (ma->hs_on)
		hdr_stream_free(&ma->hs);
	buf_free(&ma->keep);
	buf_free(&ma->from);
	buf_free(&ma->prepend);
	uv_close((uv_handle_t *)&ma->timer, on_timer_closed);
	uv_close((uv_handle_t *)&ma->kick, on_timer_closed);
}
