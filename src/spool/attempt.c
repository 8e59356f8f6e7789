/* attempt.c - one delivery attempt: local, remote, results, bounces; see attempt.h. */
#include "attempt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../deliver/maildir.h"
#include "../lib/log.h"
#include "../mailauth/dkim.h"
#include "../proto/addr.h"
#include "dsn.h"
#include "inject.h"
#include "qfile.h"
#include "spool.h"

#define STATE_LINE_MAX 1024
#define FROM_VALUE_MAX 2048	/* octets of an unfolded From: value looked at */

enum rstatus {
	R_PENDING = 0,	/* for the remote agent this time */
	R_DONE,		/* done in an earlier attempt */
	R_SENT,
	R_FAILED,	/* permanent: bounce */
	R_DEFERRED,	/* temporary: next attempt */
	R_EXPIRED,	/* past queue_lifetime: bounce */
};

struct rstate {
	enum rstatus st;
	bool local;		/* a local domain */
	int code;
	char enh[12];
	char text[SMTP_REPLY_TEXT_MAX];
	char relay[320];
	char tls[96];
	char host[256];		/* the MX that answered, for Remote-MTA */
	char *addr;		/* NUL-terminated copy */
	char *orcpt;
};

struct attempt {
	struct attempt_ctx ctx;
	char qid[QID_MAX + 1];
	struct attempt_prev prev;
	void (*done)(void *arg, const struct attempt_outcome *o);
	void *arg;
	uv_work_t work;
	struct buf file;
	struct qenv env;
	bool parsed;
	bool broken;		/* out of memory in phase 1: try the whole message later */
	char sender[ADDR_PATH_MAX + 8];
	char envid[128];
	char auth[ADDR_PATH_MAX + 8];
	struct rstate *rs;
	size_t n;
	bool warned;
	bool changed;		/* some recipient finished in this attempt */
	time_t now;
	struct iovec *iov;
	size_t niov;
	struct buf dkim;	/* DKIM-Signature fields for remote jobs, or empty */
	struct iovec *siov;	/* dkim then iov: the signed message */
	struct remote_job *jobs;
	size_t njobs, jobs_left;
	struct smtpc_rcpt *srcpts;
	size_t *sidx;		/* srcpts[k] is recipient sidx[k] */
	struct attempt_outcome out;
};

/* ---- files --------------------------------------------------------------- */

/* The whole queue file; EAGAIN while it is not marked complete yet. */
static int read_file(const char *path, struct buf *b)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return errno;
	if (fstat(fd, &st) < 0)
		err = errno;
	else if ((st.st_mode & SPOOL_MODE_COMPLETE) != SPOOL_MODE_COMPLETE)
		err = EAGAIN;
	else if (buf_reserve(b, (size_t)st.st_size) < 0)
		err = ENOMEM;
	while (err == 0 && b->len < (size_t)st.st_size) {
		ssize_t n = read(fd, b->data + b->len, (size_t)st.st_size - b->len);

		if (n <= 0) {
			err = n == 0 ? EIO : errno;
			break;
		}
		b->len += (size_t)n;
	}
	close(fd);
	return err;
}

static void read_state(struct attempt *a, unsigned *attempts)
{
	char path[DIRSYNC_PATH_MAX + 64], line[STATE_LINE_MAX];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s.st", a->ctx.queue_dir, a->qid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long i;
		char enh[12];
		int off = 0;

		line[strcspn(line, "\n")] = '\0';
		if (isdigit((unsigned char)line[0])) {
			i = strtoul(line, NULL, 10);
			if (i < a->n)
				a->rs[i].st = R_DONE;
		} else if (line[0] == 'A') {
			*attempts = (unsigned)strtoul(line + 1, NULL, 10);
		} else if (line[0] == 'W') {
			a->warned = true;
		} else if (sscanf(line, "T %lu %11s %n", &i, enh, &off) == 2 && off > 0 && i < a->n) {
			snprintf(a->rs[i].enh, sizeof a->rs[i].enh, "%s", enh);
			snprintf(a->rs[i].text, sizeof a->rs[i].text, "%s", line + off);
		}
	}
	fclose(f);
}

/* Replace QID.st atomically: write, fsync, rename, fsync the folder. */
static int write_state(struct attempt *a)
{
	char tmp[DIRSYNC_PATH_MAX + 64], dst[DIRSYNC_PATH_MAX + 64];
	FILE *f;
	int err = 0;

	snprintf(tmp, sizeof tmp, "%s/%s.st.tmp", a->ctx.queue_dir, a->qid);
	snprintf(dst, sizeof dst, "%s/%s.st", a->ctx.queue_dir, a->qid);
	if ((f = fopen(tmp, "we")) == NULL)
		return errno;
	fprintf(f, "A %u\n", a->out.attempts);
	if (a->warned)
		fprintf(f, "W\n");
	for (size_t i = 0; i < a->n; i++) {
		const struct rstate *r = &a->rs[i];

		if (r->st == R_DONE || r->st == R_SENT || r->st == R_FAILED || r->st == R_EXPIRED)
			fprintf(f, "%zu\n", i);
		else if (r->enh[0] != '\0')
			fprintf(f, "T %zu %s %s\n", i, r->enh, r->text);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		err = errno;
	if (fclose(f) != 0 && err == 0)
		err = errno;
	if (err == 0 && rename(tmp, dst) < 0)
		err = errno;
	if (err == 0)
		err = dir_fsync(a->ctx.queue_dir);
	return err;
}

/* ---- logging -------------------------------------------------------------- */

static const char *status_word(enum rstatus st)
{
	switch (st) {
	case R_SENT: return "sent";
	case R_FAILED: return "bounced";
	case R_EXPIRED: return "expired";
	default: return "deferred";
	}
}

static void log_outcome(const struct attempt *a, const struct rstate *r)
{
	enum log_level lvl = r->st == R_SENT ? LOG_INFO : LOG_WARN;
	long delay = (long)(a->now - (time_t)a->env.arrival);
	char detail[SMTP_REPLY_TEXT_MAX + 32];
	struct buf b;

	if (!log_enabled(lvl))
		return;
	if (r->code != 0)
		snprintf(detail, sizeof detail, "%d %s", r->code, r->text);
	else
		snprintf(detail, sizeof detail, "%s", r->text);
	buf_init(&b, 4096);
	buf_printf(&b, "event=delivery qid=%s", a->qid);
	log_kv_escaped(&b, "from", a->sender, strlen(a->sender));
	log_kv_escaped(&b, "to", r->addr, strlen(r->addr));
	log_kv_escaped(&b, "relay", r->relay[0] ? r->relay : "none", strlen(r->relay[0] ? r->relay : "none"));
	if (r->tls[0] != '\0')
		log_kv_escaped(&b, "tls", r->tls, strlen(r->tls));
	buf_printf(&b, " status=%s", status_word(r->st));
	if (r->enh[0] != '\0')
		buf_printf(&b, " dsn=%s", r->enh);
	buf_printf(&b, " attempt=%u delay=%lds", a->out.attempts, delay < 0 ? 0 : delay);
	log_kv_escaped(&b, "detail", detail, strlen(detail));
	log_buf(lvl, &b);
	buf_free(&b);
}

/* ---- phase 1: read, local Maildirs (thread pool) ------------------------- */

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* Maildir delivery of recipient i; sets r->st. */
static void deliver_maildir(struct attempt *a, size_t i, char *dir, size_t dircap)
{
	const struct conf *cf = a->ctx.conf;
	struct rstate *r = &a->rs[i];
	const char *at = strrchr(r->addr, '@');
	char local[ADDR_PATH_MAX + 1], path[DIRSYNC_PATH_MAX], unique[QID_MAX + 32];
	struct maildir_msg m = { a->env.sender, a->file.data, a->file.len, &a->env, cf->hostname, unique,
				 a->prev.recovered || a->out.attempts > 1, a->prev.recovered };
	bool permanent = false;

	snprintf(r->relay, sizeof r->relay, "maildir");
	snprintf(unique, sizeof unique, "Q%sR%zu", a->qid, i);
	if (at == NULL || (size_t)(at - r->addr) > ADDR_PATH_MAX) {
		r->st = R_FAILED;
		snprintf(r->enh, sizeof r->enh, "5.1.3");
		snprintf(r->text, sizeof r->text, "recipient has no domain");
		return;
	}
	snprintf(local, sizeof local, "%.*s", (int)(at - r->addr), r->addr);
	if (maildir_path(cf->maildir, local, at + 1, path, sizeof path) < 0 ||
	    maildir_subfolder(path, sizeof path, a->env.folder) < 0) {
		r->st = R_FAILED;
		snprintf(r->enh, sizeof r->enh, "5.3.5");
		snprintf(r->text, sizeof r->text, "maildir path too long");
		return;
	}
	if (maildir_deliver(path, &m, dir, dircap, &permanent, r->text, sizeof r->text) != 0) {
		r->st = permanent ? R_FAILED : R_DEFERRED;
		snprintf(r->enh, sizeof r->enh, permanent ? "5.3.0" : "4.3.0");
		return;
	}
	r->st = R_SENT;
	snprintf(r->enh, sizeof r->enh, "2.0.0");
	snprintf(r->text, sizeof r->text, "%.500s", path);
}

static char *slice_dup(struct slice s)
{
	char *p = malloc(s.len + 1);

	if (p != NULL) {
		memcpy(p, s.p, s.len);
		p[s.len] = '\0';
	}
	return p;
}

/* ---- DKIM signing (phase 1, thread pool) ---------------------------------- */

struct head {
	struct buf b;
	bool done;
};

/* Collect the header block: stop at the empty line (or when it is too big). */
static int head_chunk(void *arg, const uint8_t *p, size_t n)
{
	struct head *h = arg;
	size_t from = h->b.len > 3 ? h->b.len - 3 : 0;

	if (buf_append(&h->b, p, n) < 0)
		return 1;
	if ((h->b.len >= 2 && memcmp(h->b.data, "\r\n", 2) == 0) ||
	    memmem(h->b.data + from, h->b.len - from, "\r\n\r\n", 4) != NULL)
		h->done = true;
	return h->done ? 1 : 0;
}

/*
 * The domain of the first mailbox in the From: field of the header block
 * h (RFC 5322 3.6.2), lower case, in out; false when there is none or it
 * is not a plain LDH domain (a domain literal, an encoded word).
 */
static bool from_domain(const uint8_t *h, size_t n, char *out, size_t cap)
{
	char v[FROM_VALUE_MAX + 1], addr[FROM_VALUE_MAX + 1];
	size_t i = 0, k = 0, a = 0, depth = 0;
	bool quoted = false, angle = false, found = false;
	const char *at, *d;

	/* Find "From:" at the start of a line; unfold its value into v. */
	for (size_t ls = 0; ls < n && !found;) {
		const uint8_t *nl = memchr(h + ls, '\n', n - ls);
		size_t le = nl ? (size_t)(nl - h) + 1 : n;

		if (le - ls >= 2 && h[ls] == '\r' && h[ls + 1] == '\n')
			break;	/* the end of the header block */
		if (le - ls > 4 && strncasecmp((const char *)h + ls, "from", 4) == 0) {
			i = ls + 4;
			while (i < le && (h[i] == ' ' || h[i] == '\t'))
				i++;
			if (i < le && h[i] == ':') {
				found = true;
				i++;
				break;
			}
		}
		ls = le;
	}
	if (!found)
		return false;
	for (; i < n && k < FROM_VALUE_MAX; i++) {
		if (h[i] == '\r' || h[i] == '\n') {
			if (h[i] == '\n' && (i + 1 >= n || (h[i + 1] != ' ' && h[i + 1] != '\t')))
				break;
			continue;
		}
		v[k++] = (char)h[i];
	}
	v[k] = '\0';
	/* The first <addr-spec> outside quotes and comments, else the
	 * addr-spec itself (comments dropped) up to a ',' ending the mailbox. */
	for (i = 0; i < k; i++) {
		char ch = v[i];

		if (quoted) {
			if (ch == '\\' && i + 1 < k)
				i++;
			else if (ch == '"')
				quoted = false;
			if (!angle)
				continue;
		} else if (depth > 0) {
			if (ch == '\\' && i + 1 < k)
				i++;
			else if (ch == '(')
				depth++;
			else if (ch == ')')
				depth--;
			continue;
		} else if (ch == '"') {
			quoted = true;
		} else if (ch == '(') {
			depth = 1;
			continue;
		} else if (ch == '<' && !angle) {
			angle = true;
			a = 0;
			continue;
		} else if (ch == '>' && angle) {
			break;
		} else if (ch == ',' && !angle) {
			break;
		}
		addr[a++] = ch;
	}
	addr[a] = '\0';
	if ((at = strrchr(addr, '@')) == NULL)
		return false;
	d = at + 1;
	while (*d == ' ' || *d == '\t')
		d++;
	for (k = 0; d[k] != '\0' && d[k] != ' ' && d[k] != '\t' && d[k] != '>'; k++)
		if (!isalnum((unsigned char)d[k]) && d[k] != '-' && d[k] != '.')
			return false;
	if (k == 0 || k >= cap)
		return false;
	for (i = 0; i < k; i++)
		out[i] = (char)tolower((unsigned char)d[i]);
	out[k] = '\0';
	if (out[k - 1] == '.')
		out[k - 1] = '\0';
	return out[0] != '\0';
}

static int sign_chunk(void *arg, const uint8_t *p, size_t n)
{
	return dkim_sign_feed(arg, p, n) < 0 ? -1 : 0;
}

/*
 * Sign a message that goes to another domain (not Maildir, not LMTP) with
 * the dkim_sign keys of its From: domain, into a->dkim. Only mail from an
 * authenticated client is signed: a signature says the domain vouches for
 * the message, and the domain owner grants that to its own users, not to
 * whatever a trusted network relays. A failure leaves the message
 * unsigned, with a warning: better than a lost message.
 */
static void dkim_sign_message(struct attempt *a)
{
	const struct conf *cf = a->ctx.conf;
	struct dkim_sign_req reqs[CONF_MAX_DKIM];
	const char *algs[CONF_MAX_DKIM];
	struct dkim_sign *s = NULL;
	struct head h = { .done = false };
	char dom[CONF_NAME_MAX], e[256];
	const char *why = NULL;
	size_t nk = 0, i;
	bool remote = false;

	for (i = 0; i < a->n && !remote; i++)
		remote = a->rs[i].st == R_PENDING && !a->rs[i].local;
	if (!remote || cf->ndkim_sign == 0 || a->ctx.remote == NULL)
		return;
	if (a->auth[0] == '\0') {
		log_event(LOG_INFO, "event=dkim qid=%s dkim=none reason=\"not from an authenticated client\"",
			  a->qid);
		return;
	}
	buf_init(&h.b, DKIM_HEADER_MAX);
	qfile_each_chunk(a->file.data, a->file.len, &a->env, head_chunk, &h);
	if (!from_domain(h.b.data, h.b.len, dom, sizeof dom))
		snprintf(dom, sizeof dom, "%s", domain_of(a->sender));
	buf_free(&h.b);
	/* The user owns the envelope sender (checked at MAIL, cmd_mail.c), not
	 * what it writes in From:. A signature for another From: domain would
	 * let one user pass DMARC as any domain this server signs for. */
	if (strcasecmp(dom, domain_of(a->sender)) != 0) {
		log_event(LOG_WARN, "event=dkim qid=%s dkim=none reason=\"From: domain %s is not the sender's (%s)\"",
			  a->qid, dom, domain_of(a->sender));
		return;
	}
	for (i = 0; i < cf->ndkim_sign; i++) {
		const struct dkim_sign_conf *d = &cf->dkim_sign[i];

		const struct dkim_key *k = a->ctx.dkim_keys[i];

		if (strcasecmp(d->domain, dom) != 0)
			continue;
		if (k == NULL) {	/* said once at start: event=dkim-key-error */
			log_event(LOG_WARN, "event=dkim qid=%s dkim=none d=%s s=%s error=\"key unusable\"", a->qid,
				  d->domain, d->selector);
			continue;
		}
		reqs[nk] = (struct dkim_sign_req){ .key = k, .domain = d->domain, .selector = d->selector };
		algs[nk] = dkim_alg_name(dkim_key_alg(k));
		nk++;
	}
	if (nk == 0) {
		struct buf b;

		buf_init(&b, 1024);
		buf_printf(&b, "event=dkim qid=%s dkim=none reason=\"no dkim_sign key for the From domain\"",
			   a->qid);
		log_kv_escaped(&b, "domain", dom, strlen(dom));
		log_buf(LOG_INFO, &b);
		buf_free(&b);
		return;
	}
	if ((s = dkim_sign_begin(reqs, nk, 0, e, sizeof e)) == NULL)
		why = e[0] ? e : "cannot start";
	else if (qfile_each_chunk(a->file.data, a->file.len, &a->env, sign_chunk, s) != 0)
		why = "out of memory";
	else if (dkim_sign_end(s, &a->dkim, e, sizeof e) < 0)
		why = e;
	dkim_sign_free(s);
	if (why != NULL) {
		buf_reset(&a->dkim);
		log_event(LOG_WARN, "event=dkim qid=%s dkim=none d=%s error=\"signing failed: %s\" hint=\"sent unsigned\"",
			  a->qid, dom, why);
		return;
	}
	for (i = 0; i < nk; i++)
		log_event(LOG_INFO, "event=dkim qid=%s dkim=signed d=%s s=%s a=%s", a->qid, reqs[i].domain,
			  reqs[i].selector, algs[i]);
}

static void phase1_work(uv_work_t *w)
{
	struct attempt *a = w->data;
	const struct conf *cf = a->ctx.conf;
	char path[DIRSYNC_PATH_MAX + 64], dir[DIRSYNC_PATH_MAX];
	unsigned persisted = 0;
	int err;

	a->now = time(NULL);
	snprintf(path, sizeof path, "%s/%s", a->ctx.queue_dir, a->qid);
	if ((err = read_file(path, &a->file)) != 0 || qfile_parse(a->file.data, a->file.len, &a->env) < 0) {
		/* Gone: delivered or deleted meanwhile. Not complete: still
		 * being received; its completion mark raises another event. */
		bool gone = err == ENOENT || err == EAGAIN;

		if (!gone)
			log_event(LOG_WARN, "event=queue-file-bad qid=%s error=\"%s\"", a->qid,
				  err ? strerror(err) : a->env.error);
		a->out.gone = gone;
		a->out.temp = !gone;
		return;
	}
	a->parsed = true;
	a->n = a->env.nrcpts;
	snprintf(a->sender, sizeof a->sender, "%.*s", (int)a->env.sender.len, (const char *)a->env.sender.p);
	snprintf(a->envid, sizeof a->envid, "%.*s", (int)a->env.envid.len, (const char *)a->env.envid.p);
	snprintf(a->auth, sizeof a->auth, "%.*s", (int)a->env.auth.len, (const char *)a->env.auth.p);
	if ((a->rs = calloc(a->n, sizeof *a->rs)) == NULL) {
		a->broken = true;
		return;
	}
	for (size_t i = 0; i < a->n; i++) {
		a->rs[i].addr = slice_dup(a->env.rcpts[i].addr);
		a->rs[i].orcpt = slice_dup(a->env.rcpts[i].orcpt);
		if (a->rs[i].addr == NULL || a->rs[i].orcpt == NULL) {
			a->broken = true;
			return;
		}
		a->rs[i].local = conf_is_local_domain(cf, domain_of(a->rs[i].addr));
	}
	/* A state file exists only after a partial delivery (ours, or one
	 * before a restart): only then is it worth a lookup. */
	if (a->prev.recovered || a->prev.has_state)
		read_state(a, &persisted);
	a->out.attempts = persisted + 1 > a->prev.attempts ? persisted + 1 : a->prev.attempts;
	for (size_t i = 0; i < a->n; i++) {
		struct rstate *r = &a->rs[i];

		if (r->st == R_DONE)
			continue;
		if (a->now > (time_t)(a->env.arrival + cf->queue_lifetime)) {
			/* RFC 3463 4.4.7: delivery time expired; the last
			 * failure's words stay for the bounce. */
			r->st = R_EXPIRED;
			snprintf(r->enh, sizeof r->enh, "4.4.7");
			if (r->text[0] == '\0')
				snprintf(r->text, sizeof r->text, "not delivered within the queue lifetime");
			continue;
		}
		if (!r->local || cf->deliver == DELIVER_LMTP)
			continue;	/* R_PENDING: phase 2 */
		deliver_maildir(a, i, dir, sizeof dir);
		if (r->st != R_SENT)
			continue;
		/* One folder is synced later with other messages; another now. */
		if (a->out.sync_dir[0] == '\0')
			snprintf(a->out.sync_dir, sizeof a->out.sync_dir, "%s", dir);
		else if (strcmp(a->out.sync_dir, dir) != 0)
			dir_fsync(dir);
	}
	dkim_sign_message(a);
}

/* ---- phase 2: remote and LMTP (loop) ------------------------------------- */

static void phase3_work(uv_work_t *w);
static void phase3_done(uv_work_t *w, int status);

static int add_iov(void *arg, const uint8_t *p, size_t n)
{
	struct attempt *a = arg;
	struct iovec *v = realloc(a->iov, (a->niov + 1) * sizeof *v);

	if (v == NULL)
		return -1;
	a->iov = v;
	a->iov[a->niov++] = (struct iovec){ (void *)p, n };
	return 0;
}

static void start_phase3(struct attempt *a)
{
	if (uv_queue_work(a->ctx.loop, &a->work, phase3_work, phase3_done) != 0)
		tern_bug("event=bug what=\"uv_queue_work refused a valid request\"");
}

static void on_job_done(struct remote_job *j)
{
	struct attempt *a = j->arg;

	for (size_t k = 0; k < j->msg.nrcpts; k++) {
		const struct smtpc_rcpt *sr = &j->msg.rcpts[k];
		struct rstate *r = &a->rs[a->sidx[sr - a->srcpts]];

		r->code = sr->code;
		snprintf(r->enh, sizeof r->enh, "%s", sr->enh[0] ? sr->enh : sr->code / 100 == 2 ? "2.0.0" :
			 sr->temporary ? "4.0.0" : "5.0.0");
		/* The reply as the server wrote it: "550 5.1.1 words" in logs and DSNs. */
		if (sr->code != 0 && sr->enh[0] != '\0')
			snprintf(r->text, sizeof r->text, "%s %.*s", sr->enh,
				 (int)(sizeof r->text - sizeof sr->enh - 2), sr->text);
		else
			snprintf(r->text, sizeof r->text, "%s", sr->text);
		snprintf(r->relay, sizeof r->relay, "%s", j->relay);
		snprintf(r->tls, sizeof r->tls, "%s", j->tls);
		snprintf(r->host, sizeof r->host, "%.*s", (int)strcspn(j->relay, "["), j->relay);
		r->st = sr->code / 100 == 2 ? R_SENT : sr->temporary ? R_DEFERRED : R_FAILED;
	}
	if (j->note[0] != '\0')
		log_event(LOG_WARN, "event=delivery-note qid=%s domain=%s note=\"%s\"", a->qid, j->domain,
			  j->note);
	if (--a->jobs_left == 0)
		start_phase3(a);
}

static void job_init(struct attempt *a, struct remote_job *j, const char *dom, bool lmtp)
{
	j->qid = a->qid;
	j->domain = dom;
	j->lmtp = lmtp;
	j->msg.mail_from = a->sender;
	j->msg.envid = a->envid;
	j->msg.ret = a->env.ret.len == 4 && memcmp(a->env.ret.p, "FULL", 4) == 0 ? DSN_RET_FULL :
		     a->env.ret.len == 4 ? DSN_RET_HDRS : DSN_RET_UNSPECIFIED;
	j->msg.smtputf8 = a->env.smtputf8;
	j->msg.body = a->env.body.len == 8 ? BODY_8BITMIME :
		      a->env.body.len == 10 ? BODY_BINARYMIME : BODY_7BIT;
	j->msg.size = a->env.msg_size;
	j->msg.auth_param = a->auth[0] ? a->auth : NULL;
	j->msg.data = a->iov;
	j->msg.ndata = a->niov;
	if (!lmtp && a->siov != NULL) {
		/* Another domain's MX, a transport or the smarthost: signed. */
		j->msg.data = a->siov;
		j->msg.ndata = a->niov + 1;
		j->msg.size += a->dkim.len;
	}
	j->done = on_job_done;
	j->arg = a;
}

/* Where a recipient goes: its domain, or "" for every local one (LMTP). */
static const char *destination(const struct rstate *r)
{
	return r->local ? "" : domain_of(r->addr);
}

static int by_destination(const void *x, const void *y, void *arg)
{
	const struct rstate *rs = arg;
	size_t i = *(const size_t *)x, k = *(const size_t *)y;
	int c = strcasecmp(destination(&rs[i]), destination(&rs[k]));

	return c != 0 ? c : (i > k) - (i < k);
}

/* Recipients of one domain (or every LMTP one) into one job, each job's
 * recipients one block of srcpts (RFC 5321 3.3: one transaction for all
 * the recipients a host takes). */
static void make_jobs(struct attempt *a)
{
	size_t npend = 0, k = 0;

	for (size_t i = 0; i < a->n; i++)
		npend += a->rs[i].st == R_PENDING;
	if (npend == 0 || qfile_each_chunk(a->file.data, a->file.len, &a->env, add_iov, a) != 0 ||
	    (a->srcpts = calloc(npend, sizeof *a->srcpts)) == NULL ||
	    (a->sidx = calloc(npend, sizeof *a->sidx)) == NULL ||
	    (a->jobs = calloc(npend, sizeof *a->jobs)) == NULL)
		return;
	if (a->dkim.len > 0 && (a->siov = malloc((a->niov + 1) * sizeof *a->siov)) != NULL) {
		a->siov[0] = (struct iovec){ a->dkim.data, a->dkim.len };
		memcpy(a->siov + 1, a->iov, a->niov * sizeof *a->iov);
	} else if (a->dkim.len > 0) {
		log_event(LOG_WARN, "event=dkim qid=%s dkim=none error=\"out of memory\" hint=\"sent unsigned\"",
			  a->qid);
	}
	/* Sorted by destination (RCPT order kept within one): one pass makes
	 * the jobs, whatever the number of recipients and domains. */
	for (size_t i = 0; i < a->n; i++)
		if (a->rs[i].st == R_PENDING)
			a->sidx[k++] = i;
	qsort_r(a->sidx, npend, sizeof *a->sidx, by_destination, a->rs);
	for (k = 0; k < npend; k++) {
		size_t i = a->sidx[k];
		const struct rstate *r = &a->rs[i];
		struct remote_job *j = a->njobs > 0 ? &a->jobs[a->njobs - 1] : NULL;

		if (j == NULL || strcasecmp(j->domain, destination(r)) != 0) {
			j = &a->jobs[a->njobs++];
			job_init(a, j, destination(r), r->local);
			j->msg.rcpts = &a->srcpts[k];
		}
		a->srcpts[k].addr = r->addr;
		a->srcpts[k].notify = a->env.rcpts[i].notify;
		a->srcpts[k].orcpt = r->orcpt;
		j->msg.nrcpts++;
	}
}

static void phase1_done(uv_work_t *w, int status)
{
	struct attempt *a = w->data;

	if (status != 0 || !a->parsed || a->broken || a->out.gone || a->out.temp) {
		if (status != 0)
			a->broken = true;
		start_phase3(a);
		return;
	}
	if (a->ctx.remote != NULL)
		make_jobs(a);
	a->jobs_left = a->njobs;
	if (a->njobs == 0) {
		/* Nothing remote, or no memory for it (those stay pending:
		 * deferred by phase 3). */
		start_phase3(a);
		return;
	}
	for (size_t q = 0; q < a->njobs; q++)
		if (remote_deliver(a->ctx.remote, &a->jobs[q]) < 0) {
			for (size_t k = 0; k < a->jobs[q].msg.nrcpts; k++) {
				struct smtpc_rcpt *sr = &a->jobs[q].msg.rcpts[k];

				sr->done = true;
				sr->temporary = true;
				snprintf(sr->enh, sizeof sr->enh, "4.3.0");
				snprintf(sr->text, sizeof sr->text, "out of memory");
			}
			on_job_done(&a->jobs[q]);
		}
}

/* ---- phase 3: results, bounces, state (thread pool) ---------------------- */

struct whole {
	struct buf b;
};

static int append_chunk(void *arg, const uint8_t *p, size_t n)
{
	return buf_append(&((struct whole *)arg)->b, p, n);
}

/* One DSN for the recipients in `which` (action): queued, or -1. */
static int send_dsn(struct attempt *a, enum dsn_action action, const bool *which)
{
	const struct conf *cf = a->ctx.conf;
	struct dsn_rcpt *dr = calloc(a->n, sizeof *dr);
	char (*diag)[SMTP_REPLY_TEXT_MAX + 8] = calloc(a->n, sizeof *diag);
	struct whole orig;
	struct buf out;
	struct inject_msg m;
	char qid[QID_MAX + 1], err[512];
	size_t n = 0;
	int rc = -1;

	buf_init(&orig.b, SIZE_MAX);
	buf_init(&out, SIZE_MAX);
	if (dr == NULL || diag == NULL ||
	    qfile_each_chunk(a->file.data, a->file.len, &a->env, append_chunk, &orig) != 0)
		goto out;
	for (size_t i = 0; i < a->n; i++) {
		const struct rstate *r = &a->rs[i];

		if (!which[i])
			continue;
		dr[n].addr = r->addr;
		dr[n].orcpt = r->orcpt[0] ? r->orcpt : NULL;
		dr[n].action = action;
		snprintf(dr[n].status, sizeof dr[n].status, "%s", r->enh[0] ? r->enh : "5.0.0");
		if (r->code != 0) {
			/* The remote's own words: Remote-MTA and Diagnostic-Code. */
			snprintf(diag[n], sizeof diag[n], "%d %s", r->code, r->text);
			dr[n].diagnostic = diag[n];
			dr[n].remote_mta = r->host[0] ? r->host : NULL;
		} else {
			dr[n].reason = r->text[0] ? r->text : NULL;
		}
		dr[n].last_attempt = a->now;
		if (action == DSN_DELAYED)
			dr[n].will_retry_until = (int64_t)(a->env.arrival + cf->queue_lifetime);
		n++;
	}
	{
		struct dsn_report rep = {
			.reporting_mta = cf->hostname, .qid = a->qid,
			.envid = a->envid[0] ? a->envid : NULL, .sender = a->sender,
			.arrival = (int64_t)a->env.arrival,
			.ret_full = a->env.ret.len == 4 && memcmp(a->env.ret.p, "FULL", 4) == 0,
			.smtputf8 = a->env.smtputf8, .msg = orig.b.data, .msg_len = orig.b.len,
			.rcpts = dr, .n = n, .now = a->now,
		};

		if (dsn_build(&rep, &out) < 0) {
			log_event(LOG_ERROR, "event=dsn-failed qid=%s error=\"the report could not be built\"",
				  a->qid);
			goto out;
		}
	}
	/* dsn.h: an 8-bit original returned whole makes the report 8bit. */
	m = (struct inject_msg){ "", a->sender, DSN_NOTIFY_NEVER,
				 memmem(out.data, out.len, "Content-Transfer-Encoding: 8bit", 31) ?
				 BODY_8BITMIME : BODY_7BIT, a->env.smtputf8, out.data, out.len };
	if ((rc = spool_inject(a->ctx.queue_dir, &m, qid, err, sizeof err)) < 0)
		log_event(LOG_ERROR, "event=dsn-failed qid=%s error=\"%s\"", a->qid, err);
	else
		log_event(LOG_INFO, "event=dsn qid=%s dsn_qid=%s action=%s recipients=%zu to=\"%s\"", a->qid,
			  qid, action == DSN_FAILED ? "failed" : "delayed", n, a->sender);
out:
	buf_free(&orig.b);
	buf_free(&out);
	free(dr);
	free(diag);
	return rc;
}

static void phase3_work(uv_work_t *w)
{
	struct attempt *a = w->data;
	const struct conf *cf = a->ctx.conf;
	bool *bounce, *delay, any_bounce = false, any_delay = false;
	int err;

	if (!a->parsed)
		return;
	if (a->broken) {
		a->out.temp = 1;
		return;
	}
	if ((bounce = calloc(a->n, sizeof *bounce)) == NULL || (delay = calloc(a->n, sizeof *delay)) == NULL) {
		free(bounce);
		a->out.temp = 1;
		return;
	}
	a->out.temp = 0;
	for (size_t i = 0; i < a->n; i++) {
		struct rstate *r = &a->rs[i];
		unsigned notify = a->env.rcpts[i].notify;

		if (r->st == R_DONE)
			continue;
		if (r->st == R_PENDING) {
			/* Phase 2 could not run it (no resolver, no memory): next time. */
			r->st = R_DEFERRED;
			snprintf(r->enh, sizeof r->enh, "4.3.0");
			snprintf(r->text, sizeof r->text, a->ctx.remote == NULL ?
				 "outbound delivery unavailable (see event=outbound-unavailable)" :
				 "not attempted: out of memory");
		}
		log_outcome(a, r);
		if (r->st == R_DEFERRED) {
			a->out.temp++;
			delay[i] = a->sender[0] != '\0' && dsn_wanted(notify, DSN_DELAYED);
			any_delay |= delay[i];
			continue;
		}
		a->changed = true;
		if (r->st == R_FAILED || r->st == R_EXPIRED) {
			/* RFC 5321 4.5.5: never a bounce to the null sender. */
			bounce[i] = a->sender[0] != '\0' && dsn_wanted(notify, DSN_FAILED);
			any_bounce |= bounce[i];
		}
	}
	if (any_bounce && send_dsn(a, DSN_FAILED, bounce) < 0) {
		/* Not told yet: these stay to do, and are tried again. */
		for (size_t i = 0; i < a->n; i++)
			if (bounce[i]) {
				a->rs[i].st = R_DEFERRED;
				a->out.temp++;
			}
	}
	if (any_delay && !a->warned && cf->delay_warning > 0 &&
	    a->now - (time_t)a->env.arrival >= (time_t)cf->delay_warning && send_dsn(a, DSN_DELAYED, delay) == 0)
		a->warned = true;
	free(bounce);
	free(delay);
	if (a->out.temp > 0) {
		/* Partial or deferred: make the delivered ones durable, then remember. */
		if (a->out.sync_dir[0] != '\0')
			dir_fsync(a->out.sync_dir);
		if ((err = write_state(a)) != 0)
			log_event(LOG_WARN, "event=queue-state-error qid=%s error=\"%s\"", a->qid, strerror(err));
		else
			a->out.has_state = true;
	}
	a->out.need_sync = a->out.temp == 0 && a->out.sync_dir[0] != '\0';
}

static void attempt_free(struct attempt *a)
{
	for (size_t i = 0; a->rs != NULL && i < a->n; i++) {
		free(a->rs[i].addr);
		free(a->rs[i].orcpt);
	}
	free(a->rs);
	free(a->iov);
	free(a->siov);
	buf_free(&a->dkim);
	free(a->jobs);
	free(a->srcpts);
	free(a->sidx);
	if (a->parsed)
		qfile_env_free(&a->env);
	buf_free(&a->file);
	free(a);
}

static void phase3_done(uv_work_t *w, int status)
{
	struct attempt *a = w->data;

	if (status != 0 && a->out.temp == 0 && !a->out.gone)
		a->out.temp = 1;
	if (a->out.attempts == 0)
		a->out.attempts = a->prev.attempts;
	if (!a->out.has_state)
		a->out.has_state = a->prev.has_state;
	a->done(a->arg, &a->out);
	attempt_free(a);
}

int attempt_start(const struct attempt_ctx *ctx, const char *qid, const struct attempt_prev *prev,
		  void (*done)(void *arg, const struct attempt_outcome *o), void *arg)
{
	struct attempt *a = calloc(1, sizeof *a);

	if (a == NULL)
		return -1;
	a->ctx = *ctx;
	snprintf(a->qid, sizeof a->qid, "%s", qid);
	a->prev = *prev;
	a->done = done;
	a->arg = arg;
	a->work.data = a;
	buf_init(&a->file, SIZE_MAX);
	buf_init(&a->dkim, SIZE_MAX);
	if (uv_queue_work(ctx->loop, &a->work, phase1_work, phase1_done) != 0) {
		buf_free(&a->file);
		free(a);
		return -1;
	}
	return 0;
}
