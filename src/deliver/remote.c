/* remote.c - MX, smarthost and LMTP delivery with per-destination limits; see remote.h. */
#include "remote.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "../dns/dns.h"
#include "../lib/log.h"
#include "../lib/tls_client.h"

#define DEST_BUCKETS 256

/* One destination: a domain, the smarthost, or the LMTP server. */
struct remote_dest {
	struct remote_dest *next;
	char key[CONF_NAME_MAX + 8];
	unsigned active;		/* jobs running + idle connections */
	struct remote_job *wait_head, *wait_tail;
	struct remote_conn *idle;	/* connections ready for another message */
};

/* A connection, which may outlive the job that opened it. */
struct remote_conn {
	struct remote *r;
	struct remote_dest *dest;
	struct smtpc *c;
	struct remote_job *job;		/* NULL while idle */
	struct remote_conn *idle_next;
	uv_timer_t timer;		/* idle expiry */
	bool timer_open;
	char relay[320];
	char tls[96];
};

struct remote {
	uv_loop_t *loop;
	const struct conf *conf;
	struct dns *dns;
	SSL_CTX *tls;
	char relay_pass[256];
	struct remote_dest *buckets[DEST_BUCKETS];
};

static void next_addr(struct remote_job *j);
static void next_host(struct remote_job *j);
static void start(struct remote_job *j);

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static struct remote_dest *dest_get(struct remote *r, const char *key)
{
	struct remote_dest **b = &r->buckets[hash(key) % DEST_BUCKETS], *d;

	for (d = *b; d != NULL; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	if ((d = calloc(1, sizeof *d)) == NULL)
		return NULL;
	snprintf(d->key, sizeof d->key, "%s", key);
	d->next = *b;
	*b = d;
	return d;
}

struct remote *remote_new(uv_loop_t *loop, const struct conf *c, const char *relay_pass,
			  char *err, size_t errlen)
{
	struct remote *r = calloc(1, sizeof *r);

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->loop = loop;
	r->conf = c;
	snprintf(r->relay_pass, sizeof r->relay_pass, "%s", relay_pass ? relay_pass : "");
	if ((r->dns = dns_new(loop, c->dns_server, c->dns_timeout_ms, 2, err, errlen)) == NULL ||
	    (r->tls = tls_client_ctx("1.2", err, errlen)) == NULL) {
		explicit_bzero(r->relay_pass, sizeof r->relay_pass);
		dns_free(r->dns, NULL, NULL);
		SSL_CTX_free(r->tls);
		free(r);
		return NULL;
	}
	return r;
}

static void conn_closed(void *arg);

static void on_conn_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void conn_closed(void *arg)
{
	struct remote_conn *k = arg;

	if (k->timer_open) {
		uv_close((uv_handle_t *)&k->timer, on_conn_timer_closed);
		return;
	}
	free(k);
}

/* ---- results ----------------------------------------------------------- */

/* Every recipient without a result gets this one. */
static void fill(struct remote_job *j, bool temporary, const char *enh, const char *text)
{
	for (size_t i = 0; i < j->msg.nrcpts; i++) {
		struct smtpc_rcpt *rc = &j->msg.rcpts[i];

		if (rc->done)
			continue;
		rc->done = true;
		rc->code = 0;
		rc->temporary = temporary;
		snprintf(rc->enh, sizeof rc->enh, "%s", enh);
		snprintf(rc->text, sizeof rc->text, "%s", text);
	}
}

static void release_slot(struct remote_dest *d);

/* The job is over: results are in; the slot goes to the next in line. */
static void finish(struct remote_job *j, bool keep_slot)
{
	struct remote_dest *d = j->dest;

	free(j->hosts);
	free(j->ports);
	free(j->modes);
	free(j->addrs);
	j->hosts = NULL;
	j->ports = NULL;
	j->modes = NULL;
	j->addrs = NULL;
	j->conn = NULL;
	if (!keep_slot)
		release_slot(d);
	j->done(j);
}

static void fail_all(struct remote_job *j, bool temporary, const char *enh, const char *text)
{
	fill(j, temporary, enh, text);
	snprintf(j->relay, sizeof j->relay, "none");
	finish(j, false);
}

static void release_slot(struct remote_dest *d)
{
	struct remote_job *w = d->wait_head;

	if (w == NULL) {
		d->active--;
		return;
	}
	/* The slot passes straight to the next job in line. */
	d->wait_head = w->next;
	if (d->wait_head == NULL)
		d->wait_tail = NULL;
	start(w);
}

/* ---- connections ------------------------------------------------------- */

static void on_ready(struct smtpc *c, const struct smtpc_result *res, void *arg);
static void on_done(struct smtpc *c, struct smtpc_msg *m, const struct smtpc_result *res, void *arg);

static const struct smtpc_callbacks callbacks = { on_ready, on_done, conn_closed };

static enum smtpc_tls policy_for(const struct remote *r, const char *domain)
{
	const struct conf *c = r->conf;
	enum smtp_tls_level lvl = c->smtp_tls;

	for (size_t i = 0; i < c->ntls_policies; i++)
		if (strcasecmp(c->tls_policies[i].domain, domain) == 0)
			lvl = c->tls_policies[i].level;
	return lvl == SMTP_TLS_VERIFY ? SMTPC_TLS_VERIFY :
	       lvl == SMTP_TLS_ENCRYPT ? SMTPC_TLS_ENCRYPT : SMTPC_TLS_MAY;
}

/* "host[ip]:port", Postfix's relay= form. */
static void relay_text(const char *host, const struct sockaddr_storage *ss, uint16_t port, char *out,
		       size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof ip);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof ip);
	snprintf(out, cap, "%.250s[%s]:%u", host, ip, port);
}

static void remember(struct remote_job *j, const struct smtpc_result *res)
{
	snprintf(j->last_enh, sizeof j->last_enh, "%s", res->enh[0] ? res->enh : "4.4.1");
	if (res->code != 0)
		snprintf(j->last_text, sizeof j->last_text, "%.200s said: %d %.280s",
			 j->hosts[j->host_i].host, res->code, res->text);
	else
		snprintf(j->last_text, sizeof j->last_text, "%.200s: %.280s", j->hosts[j->host_i].host,
			 res->text);
	j->last_temporary = res->temporary;
}

/* Open a connection to the current address of the current host. */
static void connect_addr(struct remote_job *j)
{
	const struct conf *c = j->r->conf;
	struct sockaddr_storage ss = j->addrs[j->addr_i];
	uint16_t port = j->ports[j->host_i];
	struct remote_conn *k = calloc(1, sizeof *k);
	struct smtpc_opts o;
	char err[256];

	if (k == NULL) {
		fail_all(j, true, "4.3.0", "out of memory");
		return;
	}
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	else if (ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	smtpc_opts_init(&o);
	o.helo_name = c->hostname;
	o.lmtp = j->lmtp;
	o.tls = j->plain_retry ? SMTPC_TLS_NONE : j->modes[j->host_i];
	o.tls_name = j->hosts[j->host_i].host;
	o.tls_ctx = j->r->tls;
	if (!j->lmtp && c->relay.host[0] != '\0' && c->relay.auth_user[0] != '\0') {
		o.auth_user = c->relay.auth_user;
		o.auth_pass = j->r->relay_pass;
	}
	o.connect_timeout_ms = c->smtp_connect_timeout * 1000;
	/* RFC 5321 4.5.3.2's timeouts, capped by smtp_command_timeout. */
	{
		unsigned cap = c->smtp_command_timeout * 1000;
		unsigned *t[] = { &o.greeting_timeout_ms, &o.helo_timeout_ms, &o.mail_timeout_ms,
				  &o.rcpt_timeout_ms, &o.data_timeout_ms, &o.block_timeout_ms,
				  &o.dot_timeout_ms };

		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
			if (*t[i] == 0 || *t[i] > cap)
				*t[i] = cap;
	}
	k->r = j->r;
	k->dest = j->dest;
	k->job = j;
	j->conn = k;
	j->tried++;
	if (ss.ss_family == AF_UNIX)
		snprintf(k->relay, sizeof k->relay, "lmtp[unix:%s]", ((struct sockaddr_un *)&ss)->sun_path);
	else
		relay_text(j->hosts[j->host_i].host, &ss, port, k->relay, sizeof k->relay);
	if ((k->c = smtpc_connect(j->r->loop, (struct sockaddr *)&ss, &o, &callbacks, k, err,
				  sizeof err)) == NULL) {
		free(k);
		j->conn = NULL;
		snprintf(j->last_enh, sizeof j->last_enh, "4.4.1");
		snprintf(j->last_text, sizeof j->last_text, "%s", err);
		j->last_temporary = true;
		j->addr_i++;
		next_addr(j);
	}
}

static void on_ready(struct smtpc *c, const struct smtpc_result *res, void *arg)
{
	struct remote_conn *k = arg;
	struct remote_job *j = k->job;

	if (!res->ok) {
		remember(j, res);
		j->conn = NULL;
		smtpc_quit(c);
		if (res->tls_failed_may && !j->plain_retry) {
			/* RFC 7435: opportunistic TLS falls back, and says so. */
			j->plain_retry = true;
			snprintf(j->note, sizeof j->note, "STARTTLS with %.80s failed (%.60s): retried in plaintext",
				 k->relay, res->text);
			log_event(LOG_WARN, "event=tls-fallback qid=%s relay=%s reason=\"%s\"", j->qid,
				  k->relay, res->text);
			connect_addr(j);
			return;
		}
		j->plain_retry = false;
		j->addr_i++;
		next_addr(j);
		return;
	}
	snprintf(k->tls, sizeof k->tls, "%s%s%s%s", res->tls_version[0] ? res->tls_version : "plaintext",
		 res->tls_version[0] ? " " : "", res->tls_cipher,
		 res->tls_version[0] && res->tls_verified ? " verified" : "");
	if (smtpc_send(c, &j->msg) < 0) {
		j->conn = NULL;
		smtpc_quit(c);
		fail_all(j, true, "4.3.0", "internal error: the connection refused the message");
	}
}

static void park(struct remote_conn *k);

static void on_done(struct smtpc *c, struct smtpc_msg *m, const struct smtpc_result *res, void *arg)
{
	struct remote_conn *k = arg;
	struct remote_job *j = k->job;
	struct remote_dest *d = k->dest;

	(void)m;
	snprintf(j->relay, sizeof j->relay, "%s", k->relay);
	snprintf(j->tls, sizeof j->tls, "%s", k->tls);
	/* Anything without its own reply gets the transaction's. */
	fill(j, res->temporary, res->enh[0] ? res->enh : "4.4.2", res->text);
	k->job = NULL;
	if (!res->reusable) {
		smtpc_quit(c);
		finish(j, false);
		return;
	}
	/* The slot stays with the connection: to the next job in line, or idle. */
	if (d->wait_head != NULL) {
		struct remote_job *w = d->wait_head;

		d->wait_head = w->next;
		if (d->wait_head == NULL)
			d->wait_tail = NULL;
		finish(j, true);
		w->conn = k;
		k->job = w;
		if (smtpc_send(c, &w->msg) < 0) {
			k->job = NULL;
			smtpc_quit(c);
			w->conn = NULL;
			start(w);
		}
		return;
	}
	park(k);
	finish(j, true);
}

static void on_idle_expired(uv_timer_t *t)
{
	struct remote_conn *k = t->data;
	struct remote_dest *d = k->dest;
	struct remote_conn **p;

	for (p = &d->idle; *p != NULL && *p != k; p = &(*p)->idle_next)
		;
	if (*p == k)
		*p = k->idle_next;
	smtpc_quit(k->c);
	release_slot(d);
}

static void park(struct remote_conn *k)
{
	if (!k->timer_open) {
		uv_timer_init(k->r->loop, &k->timer);
		k->timer.data = k;
		k->timer_open = true;
	}
	k->idle_next = k->dest->idle;
	k->dest->idle = k;
	uv_timer_start(&k->timer, on_idle_expired, REMOTE_IDLE_MS, 0);
}

/* ---- routing ----------------------------------------------------------- */

static void next_addr(struct remote_job *j)
{
	if (j->addr_i < j->naddrs && j->tried < REMOTE_MAX_ADDRS) {
		connect_addr(j);
		return;
	}
	j->host_i++;
	next_host(j);
}

static void on_addr(void *arg, const struct dns_addr_result *res)
{
	struct remote_job *j = arg;

	free(j->addrs);
	j->addrs = NULL;
	j->naddrs = j->addr_i = 0;
	if (res->status != DNS_OK || res->n == 0) {
		snprintf(j->last_enh, sizeof j->last_enh, "4.4.3");
		snprintf(j->last_text, sizeof j->last_text, "no address for %s: %s",
			 j->hosts[j->host_i].host, res->error[0] ? res->error : dns_status_name(res->status));
		j->last_temporary = true;
		j->host_i++;
		next_host(j);
		return;
	}
	if ((j->addrs = calloc(res->n, sizeof *j->addrs)) == NULL) {
		fail_all(j, true, "4.3.0", "out of memory");
		return;
	}
	memcpy(j->addrs, res->addr, res->n * sizeof *j->addrs);
	j->naddrs = res->n;
	next_addr(j);
}

/* A host written as an address literal ("[192.0.2.1]", "[IPv6:...]") or a
 * bare IP needs no lookup. */
static bool literal(const char *host, struct sockaddr_storage *ss)
{
	char buf[CONF_NAME_MAX];
	size_t n = strlen(host);
	const char *p = host;

	memset(ss, 0, sizeof *ss);
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		p = host + 1;
		n -= 2;
		if (n > 5 && strncasecmp(p, "IPv6:", 5) == 0) {
			p += 5;
			n -= 5;
		}
	}
	if (n >= sizeof buf)
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return true;
	}
	return false;
}

static void next_host(struct remote_job *j)
{
	struct sockaddr_storage ss;

	j->plain_retry = false;
	if (j->host_i >= j->nhosts || j->host_i >= REMOTE_MAX_HOSTS || j->tried >= REMOTE_MAX_ADDRS) {
		/* Nobody took it: the last failure speaks for all. */
		fail_all(j, j->last_temporary, j->last_enh[0] ? j->last_enh : "4.4.1",
			 j->last_text[0] ? j->last_text : "no host could be reached");
		return;
	}
	if (literal(j->hosts[j->host_i].host, &ss)) {
		free(j->addrs);
		if ((j->addrs = malloc(sizeof *j->addrs)) == NULL) {
			fail_all(j, true, "4.3.0", "out of memory");
			return;
		}
		j->addrs[0] = ss;
		j->naddrs = 1;
		j->addr_i = 0;
		next_addr(j);
		return;
	}
	if (dns_addr(j->r->dns, j->hosts[j->host_i].host, AF_UNSPEC, on_addr, j) < 0)
		fail_all(j, true, "4.3.0", "out of memory");
}

static int targets(struct remote_job *j, size_t n)
{
	j->hosts = calloc(n, sizeof *j->hosts);
	j->ports = calloc(n, sizeof *j->ports);
	j->modes = calloc(n, sizeof *j->modes);
	j->nhosts = n;
	j->host_i = 0;
	return j->hosts && j->ports && j->modes ? 0 : -1;
}

static void on_mx(void *arg, const struct dns_mx_result *res)
{
	struct remote_job *j = arg;
	enum smtpc_tls mode = policy_for(j->r, j->domain);
	char text[SMTP_REPLY_TEXT_MAX];

	switch (res->status) {
	case DNS_OK:
		if (res->null_mx) {
			/* RFC 7505 3: the domain takes no mail; never try its A. */
			snprintf(text, sizeof text, "Domain %s does not accept mail (null MX, RFC 7505)", j->domain);
			fail_all(j, false, "5.1.10", text);
			return;
		}
		if (targets(j, res->n) < 0)
			break;
		for (size_t i = 0; i < res->n; i++) {
			j->hosts[i] = res->mx[i];
			j->ports[i] = 25;
			j->modes[i] = mode;
		}
		next_host(j);
		return;
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX, the domain itself is the implicit MX. */
		if (targets(j, 1) < 0)
			break;
		snprintf(j->hosts[0].host, sizeof j->hosts[0].host, "%s", j->domain);
		j->ports[0] = 25;
		j->modes[0] = mode;
		next_host(j);
		return;
	case DNS_NXDOMAIN:
	case DNS_BADNAME:
		snprintf(text, sizeof text, "Domain %s does not exist (DNS: %s)", j->domain,
			 dns_status_name(res->status));
		fail_all(j, false, "5.1.2", text);
		return;
	case DNS_TEMPFAIL:
		snprintf(text, sizeof text, "DNS lookup of the MX of %s failed: %s", j->domain,
			 res->error[0] ? res->error : "temporary failure");
		fail_all(j, true, "4.4.3", text);
		return;
	}
	fail_all(j, true, "4.3.0", "out of memory");
}

static int lmtp_target(struct remote_job *j)
{
	const char *t = j->r->conf->lmtp;
	struct sockaddr_un *un;

	if (targets(j, 1) < 0 || (j->addrs = calloc(1, sizeof *j->addrs)) == NULL)
		return -1;
	j->naddrs = 1;
	j->addr_i = 0;
	j->modes[0] = SMTPC_TLS_NONE;	/* a local store: no TLS */
	if (strncmp(t, "unix:", 5) == 0) {
		un = (struct sockaddr_un *)&j->addrs[0];
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof un->sun_path, "%s", t + 5);
		snprintf(j->hosts[0].host, sizeof j->hosts[0].host, "lmtp");
		return 0;
	}
	/* HOST:PORT (conf.c checked the port). */
	{
		const char *colon = strrchr(t, ':');

		snprintf(j->hosts[0].host, sizeof j->hosts[0].host, "%.*s", (int)(colon - t), t);
		j->ports[0] = (uint16_t)atoi(colon + 1);
		free(j->addrs);
		j->addrs = NULL;
		j->naddrs = 0;
	}
	return 0;
}

/* The job has its slot: look up where it goes, then connect. */
static void start(struct remote_job *j)
{
	const struct relay_conf *rc = &j->r->conf->relay;
	struct remote_conn *k = j->dest->idle;

	if (k != NULL) {
		/* An idle connection of this destination: no lookup at all. */
		j->dest->idle = k->idle_next;
		uv_timer_stop(&k->timer);
		k->job = j;
		j->conn = k;
		if (smtpc_send(k->c, &j->msg) == 0)
			return;
		k->job = NULL;
		j->conn = NULL;
		smtpc_quit(k->c);
	}
	if (j->lmtp) {
		if (lmtp_target(j) < 0) {
			fail_all(j, true, "4.3.0", "out of memory");
			return;
		}
		if (j->naddrs == 1)
			connect_addr(j);
		else
			next_host(j);
		return;
	}
	for (size_t i = 0; i < j->r->conf->ntransports; i++) {
		const struct transport_conf *t = &j->r->conf->transports[i];

		if (strcasecmp(t->domain, j->domain) != 0)
			continue;
		/* A fixed next hop for this domain: no MX lookup. */
		if (targets(j, 1) < 0) {
			fail_all(j, true, "4.3.0", "out of memory");
			return;
		}
		snprintf(j->hosts[0].host, sizeof j->hosts[0].host, "%s", t->host);
		j->ports[0] = t->port;
		j->modes[0] = policy_for(j->r, j->domain);
		next_host(j);
		return;
	}
	if (rc->host[0] != '\0') {
		/* The smarthost, on each port in the configured order. */
		if (targets(j, rc->nports) < 0) {
			fail_all(j, true, "4.3.0", "out of memory");
			return;
		}
		for (size_t i = 0; i < rc->nports; i++) {
			snprintf(j->hosts[i].host, sizeof j->hosts[i].host, "%s", rc->host);
			j->ports[i] = rc->ports[i].port;
			j->modes[i] = rc->ports[i].mode == RELAY_TLS ? SMTPC_TLS_IMPLICIT :
				      rc->ports[i].mode == RELAY_PLAIN ? SMTPC_TLS_NONE :
				      policy_for(j->r, rc->host) == SMTPC_TLS_VERIFY ? SMTPC_TLS_VERIFY :
				      SMTPC_TLS_ENCRYPT;
		}
		next_host(j);
		return;
	}
	if (dns_mx(j->r->dns, j->domain, on_mx, j) < 0)
		fail_all(j, true, "4.3.0", "out of memory");
}

int remote_deliver(struct remote *r, struct remote_job *j)
{
	const char *key = j->lmtp ? "\001lmtp" : j->domain;

	/* The smarthost is one destination for every domain it carries,
	 * unless a transport sends this domain elsewhere. */
	if (!j->lmtp && r->conf->relay.host[0] != '\0') {
		bool own = false;

		for (size_t i = 0; i < r->conf->ntransports && !own; i++)
			own = strcasecmp(r->conf->transports[i].domain, j->domain) == 0;
		if (!own)
			key = "\001relay";
	}

	j->r = r;
	j->relay[0] = j->tls[0] = j->note[0] = '\0';
	j->last_enh[0] = j->last_text[0] = '\0';
	j->tried = 0;
	j->plain_retry = false;
	j->next = NULL;
	if ((j->dest = dest_get(r, key)) == NULL)
		return -1;
	if (j->dest->active >= r->conf->smtp_destination_concurrency && j->dest->idle == NULL) {
		if (j->dest->wait_tail != NULL)
			j->dest->wait_tail->next = j;
		else
			j->dest->wait_head = j;
		j->dest->wait_tail = j;
		return 0;
	}
	if (j->dest->idle == NULL)
		j->dest->active++;
	start(j);
	return 0;
}
