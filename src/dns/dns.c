/*
 * dns.c - c-ares on the libuv loop: a poll per socket, one timer, callbacks
 * from an idle handle, and a TTL cache of raw answers; see dns.h.
 */
#include "dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { Q_MX, Q_ADDR, Q_TXT, Q_PTR };
enum { T_A = 1, T_PTR = 12, T_MX = 15, T_TXT = 16, T_AAAA = 28, C_IN = 1 };

#define EDNS_PAYLOAD 1232	/* DNS flag day 2020: no IP fragmentation */
#define SERVERS_MAX 8
#define TIMEOUT_MS_MAX 600000
#define TRIES_MAX 16
#define CACHE_BUCKETS 8192	/* a power of two, twice DNS_CACHE_MAX */
#define CACHE_SWEEP_MS 60000	/* expired entries are swept at most this often */
#define KEY_MAX (DNS_NAME_MAX + 1)

/* A socket c-ares asked us to watch; poll.data points here. */
struct dns_sock {
	uv_poll_t poll;
	struct dns *d;
	ares_socket_t fd;
	struct dns_sock *next;
};

struct dns_query;

/* One question on the wire: MX and TXT have one, AF_UNSPEC has AAAA and A. */
struct dns_sub {
	struct dns_query *q;
	int type;
	unsigned tries;		/* tries started */
	union {
		struct dns_mx_result mx;
		struct dns_addr_result addr;
		struct dns_txt_result txt;
		struct dns_ptr_result ptr;
	} r;
};

struct dns_query {
	struct dns_query *next;	/* in d->done once every sub has its result */
	struct dns *d;
	int kind;
	union {
		dns_mx_cb mx;
		dns_addr_cb addr;
		dns_txt_cb txt;
		dns_ptr_cb ptr;
	} cb;
	void *arg;
	unsigned nsub;
	unsigned pending;	/* subs still waiting for c-ares */
	struct dns_sub sub[2];
	char name[DNS_NAME_MAX + 2];
	char key[KEY_MAX];	/* name lower-cased without the trailing dot: the cache's */
};

/*
 * One cached answer: data holds the key (NUL-terminated) then the raw
 * response. On the hash chain of its bucket and on the LRU list.
 */
struct centry {
	struct centry *hnext;
	struct centry *newer, *older;
	uint64_t expires;	/* uv_now() ms */
	size_t bytes;		/* what it counts against max_bytes */
	size_t wlen;
	uint32_t hash;
	uint16_t type;
	char data[];
};

struct dns_cache {
	struct centry **bucket;	/* CACHE_BUCKETS chains; NULL once dns_free ran */
	struct centry *newest, *oldest;
	size_t n, bytes, max_n, max_bytes;
	uint32_t seed;		/* random: names come from strangers (PTR, SPF macros) */
	uint64_t next_sweep;
};

struct dns {
	uv_loop_t *loop;
	ares_channel channel;	/* NULL once dns_free ran */
	uv_timer_t timer;	/* set from ares_timeout(); data = d */
	uv_idle_t kick;		/* runs the callbacks of done; data = d */
	struct dns_sock *socks;
	struct dns_query *done, **done_tail;
	unsigned timeout_ms, tries;
	unsigned handles;	/* libuv handles not yet closed */
	bool closing, draining, kick_closed;
	void (*on_closed)(void *arg);
	void *closed_arg;
	struct dns_cache cache;
	struct dns_stats stats;
};

/* ---- handles and the end of a struct dns ---- */

static void dns_handle_gone(struct dns *d)
{
	void (*cb)(void *) = d->on_closed;
	void *arg = d->closed_arg;

	if (--d->handles > 0)
		return;
	free(d);
	ares_library_cleanup();
	if (cb != NULL)
		cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
	dns_handle_gone(h->data);
}

static void on_sock_closed(uv_handle_t *h)
{
	struct dns_sock *s = h->data;
	struct dns *d = s->d;

	free(s);
	dns_handle_gone(d);
}

/* The idle handle closes last, once no callback is left to run. */
static void maybe_close(struct dns *d)
{
	if (!d->closing || d->draining || d->done != NULL || d->kick_closed)
		return;
	d->kick_closed = true;
	uv_close((uv_handle_t *)&d->kick, on_handle_closed);
}

/* ---- c-ares driven by the loop ---- */

static void on_timer(uv_timer_t *t);

/* The timer follows c-ares's next deadline, rounded up so it never fires early. */
static void timer_arm(struct dns *d)
{
	struct timeval tv, *next;
	uint64_t ms;

	if (d->channel == NULL)
		return;
	next = ares_timeout(d->channel, NULL, &tv);
	if (next == NULL) {
		uv_timer_stop(&d->timer);
		return;
	}
	ms = (uint64_t)next->tv_sec * 1000 + ((uint64_t)next->tv_usec + 999) / 1000;
	uv_update_time(d->loop);	/* the cached loop time may be stale here */
	uv_timer_start(&d->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct dns *d = t->data;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	timer_arm(d);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct dns_sock *s = p->data;
	struct dns *d = s->d;
	ares_socket_t fd = s->fd;

	/* On an error let c-ares read and write, so that it sees the error. */
	ares_process_fd(d->channel,
			status < 0 || (events & (UV_READABLE | UV_DISCONNECT)) ? fd : ARES_SOCKET_BAD,
			status < 0 || (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
	timer_arm(d);	/* s may be closing now; d is alive */
}

/*
 * ARES_OPT_SOCK_STATE_CB: c-ares opened, changed or is about to close a
 * socket. A socket we fail to watch is never read: its queries time out.
 */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp = &d->socks, *s;

	while ((s = *pp) != NULL && s->fd != fd)
		pp = &s->next;
	if (!readable && !writable) {
		/* before c-ares closes fd: libuv must stop polling it first */
		if (s != NULL) {
			*pp = s->next;
			uv_close((uv_handle_t *)&s->poll, on_sock_closed);
		}
		return;
	}
	if (s == NULL) {
		s = calloc(1, sizeof *s);
		if (s == NULL || uv_poll_init_socket(d->loop, &s->poll, fd) != 0) {
			free(s);
			return;
		}
		s->d = d;
		s->fd = fd;
		s->poll.data = s;
		s->next = d->socks;
		d->socks = s;
		d->handles++;
	}
	uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
		      on_poll);
}

/* ---- results ---- */

static void sub_fail(struct dns_sub *s, enum dns_status st, const char *why)
{
	struct dns_query *q = s->q;
	char *error;

	switch (q->kind) {
	case Q_MX:
		dns_mx_result_free(&s->r.mx);
		memset(&s->r.mx, 0, sizeof s->r.mx);
		s->r.mx.status = st;
		error = s->r.mx.error;
		break;
	case Q_TXT:
		dns_txt_result_free(&s->r.txt);
		memset(&s->r.txt, 0, sizeof s->r.txt);
		s->r.txt.status = st;
		error = s->r.txt.error;
		break;
	case Q_PTR:
		dns_ptr_result_free(&s->r.ptr);
		memset(&s->r.ptr, 0, sizeof s->r.ptr);
		s->r.ptr.status = st;
		error = s->r.ptr.error;
		break;
	default:
		dns_addr_result_free(&s->r.addr);
		memset(&s->r.addr, 0, sizeof s->r.addr);
		s->r.addr.status = st;
		error = s->r.addr.error;
		break;
	}
	snprintf(error, 128, "%s", why);
}

/* A response into the sub's result; where its status and TTL are. */
static void sub_parse(struct dns_sub *s, const uint8_t *wire, size_t len,
		      enum dns_status **st, uint32_t **ttl)
{
	switch (s->q->kind) {
	case Q_MX:
		dns_parse_mx(wire, len, &s->r.mx);
		*st = &s->r.mx.status;
		*ttl = &s->r.mx.ttl;
		break;
	case Q_TXT:
		dns_parse_txt(wire, len, &s->r.txt);
		*st = &s->r.txt.status;
		*ttl = &s->r.txt.ttl;
		break;
	case Q_PTR:
		dns_parse_ptr(wire, len, &s->r.ptr);
		*st = &s->r.ptr.status;
		*ttl = &s->r.ptr.ttl;
		break;
	default:
		dns_parse_addr(wire, len, s->type == T_AAAA ? AF_INET6 : AF_INET, &s->r.addr);
		*st = &s->r.addr.status;
		*ttl = &s->r.addr.ttl;
		break;
	}
}

static void cache_put(struct dns *d, uint16_t type, const char *key, const uint8_t *wire,
		      size_t wlen, enum dns_status st, uint32_t ttl);

/*
 * The answer's own rcode and records decide whenever there is an answer
 * (ARES_FLAG_NOCHECKRESP hands over SERVFAIL and REFUSED answers too);
 * c-ares's status only when there is none.
 */
static void sub_result(struct dns_sub *s, int status, const unsigned char *abuf, int alen)
{
	struct dns *d = s->q->d;
	enum dns_status *st;
	uint32_t *ttl;
	char why[128];

	if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) {
		sub_fail(s, DNS_TEMPFAIL, "cancelled");
		return;
	}
	if (abuf != NULL && alen > 0) {
		sub_parse(s, abuf, (size_t)alen, &st, &ttl);
		cache_put(d, (uint16_t)s->type, s->q->key, abuf, (size_t)alen, *st, *ttl);
		return;
	}
	switch (status) {
	case ARES_ENOTFOUND:
		sub_fail(s, DNS_NXDOMAIN, "the name does not exist (NXDOMAIN)");
		break;
	case ARES_ENODATA:
		sub_fail(s, DNS_NODATA, "no record of this type");
		break;
	case ARES_EBADNAME:
		sub_fail(s, DNS_BADNAME, "not a valid domain name");
		break;
	case ARES_ETIMEOUT:
		snprintf(why, sizeof why, "no answer from the DNS server (%u tries of %u ms)",
			 s->tries, d->timeout_ms);
		sub_fail(s, DNS_TEMPFAIL, why);
		break;
	default:
		snprintf(why, sizeof why, "DNS lookup failed: %s", ares_strerror(status));
		sub_fail(s, DNS_TEMPFAIL, why);
		break;
	}
}

static void on_kick(uv_idle_t *h);

static void done_push(struct dns *d, struct dns_query *q)
{
	q->next = NULL;
	*d->done_tail = q;
	d->done_tail = &q->next;
	uv_idle_start(&d->kick, on_kick);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

static void sub_send(struct dns_sub *s)
{
	struct dns_query *q = s->q;

	s->tries++;
	ares_query(q->d->channel, q->name, C_IN, s->type, on_answer, s);
}

/*
 * c-ares is told tries = 1 and the tries are made here: c-ares 1.18
 * doubles the timeout on each round through the servers, which would make
 * "timeout_ms per try" false. Only a try without any answer is repeated.
 */
static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_sub *s = arg;
	struct dns_query *q = s->q;
	struct dns *d = q->d;

	(void)timeouts;
	if (status == ARES_ETIMEOUT && !d->closing && s->tries < d->tries) {
		sub_send(s);
		return;
	}
	sub_result(s, status, abuf, alen);
	if (--q->pending == 0)
		done_push(d, q);
}

/* AF_UNSPEC: AAAA first, then A; the status rules are in dns.h. */
static void addr_merge(const struct dns_addr_result *six, const struct dns_addr_result *four,
		       struct dns_addr_result *out)
{
	const struct dns_addr_result *both[2] = { six, four };

	memset(out, 0, sizeof *out);
	out->truncated = six->truncated || four->truncated;
	out->ttl = six->ttl < four->ttl ? six->ttl : four->ttl;
	if (six->n + four->n > 0) {
		out->addr = calloc(six->n + four->n, sizeof *out->addr);
		if (out->addr == NULL) {
			out->status = DNS_TEMPFAIL;
			snprintf(out->error, sizeof out->error, "out of memory");
			return;
		}
		for (size_t i = 0; i < 2; i++)
			for (size_t k = 0; k < both[i]->n; k++)
				out->addr[out->n++] = both[i]->addr[k];
		out->status = DNS_OK;
		return;
	}
	if (six->status == DNS_BADNAME || four->status == DNS_BADNAME)
		out->status = DNS_BADNAME;
	else if (six->status == DNS_TEMPFAIL || four->status == DNS_TEMPFAIL)
		out->status = DNS_TEMPFAIL;
	else if (six->status == DNS_NXDOMAIN && four->status == DNS_NXDOMAIN)
		out->status = DNS_NXDOMAIN;
	else
		out->status = DNS_NODATA;
	if (strcmp(six->error, four->error) == 0)
		snprintf(out->error, sizeof out->error, "%s", six->error);
	else
		snprintf(out->error, sizeof out->error, "AAAA: %.55s; A: %.55s", six->error,
			 four->error);
}

static void query_deliver(struct dns *d, struct dns_query *q)
{
	struct dns_addr_result merged;

	if (d->closing)
		for (unsigned i = 0; i < q->nsub; i++)
			sub_fail(&q->sub[i], DNS_TEMPFAIL, "cancelled");
	switch (q->kind) {
	case Q_MX:
		q->cb.mx(q->arg, &q->sub[0].r.mx);
		dns_mx_result_free(&q->sub[0].r.mx);
		break;
	case Q_TXT:
		q->cb.txt(q->arg, &q->sub[0].r.txt);
		dns_txt_result_free(&q->sub[0].r.txt);
		break;
	case Q_PTR:
		q->cb.ptr(q->arg, &q->sub[0].r.ptr);
		dns_ptr_result_free(&q->sub[0].r.ptr);
		break;
	default:
		if (q->nsub == 1) {
			q->cb.addr(q->arg, &q->sub[0].r.addr);
		} else {
			addr_merge(&q->sub[0].r.addr, &q->sub[1].r.addr, &merged);
			q->cb.addr(q->arg, &merged);
			dns_addr_result_free(&merged);
			dns_addr_result_free(&q->sub[1].r.addr);
		}
		dns_addr_result_free(&q->sub[0].r.addr);
		break;
	}
	free(q);
}

/*
 * Every callback runs from here, never from inside c-ares or a dns_*
 * call. One batch per loop iteration: lookups that callbacks start and
 * that fail at once wait for the next iteration, so I/O is never starved.
 */
static void on_kick(uv_idle_t *h)
{
	struct dns *d = h->data;
	struct dns_query *q = d->done;

	d->done = NULL;
	d->done_tail = &d->done;
	d->draining = true;
	while (q != NULL) {
		struct dns_query *next = q->next;

		query_deliver(d, q);
		q = next;
	}
	d->draining = false;
	if (d->done == NULL)
		uv_idle_stop(&d->kick);
	maybe_close(d);
}

/* ---- the cache ---- */

/* FNV-1a from a random basis, then a final mix: a stranger cannot aim names at one chain. */
static uint32_t cache_hash(const struct dns_cache *c, uint16_t type, const char *key)
{
	uint32_t h = c->seed ^ 2166136261u;

	h = (h ^ (type >> 8)) * 16777619u;
	h = (h ^ (type & 0xFF)) * 16777619u;
	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return h;
}

static void lru_unlink(struct dns_cache *c, struct centry *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void lru_push(struct dns_cache *c, struct centry *e)
{
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest != NULL)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
}

static void cache_drop(struct dns_cache *c, struct centry *e)
{
	struct centry **pp = &c->bucket[e->hash & (CACHE_BUCKETS - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->n--;
	c->bytes -= e->bytes;
	free(e);
}

/* Least recently used first, until both bounds hold. */
static void cache_trim(struct dns_cache *c)
{
	while (c->oldest != NULL && (c->n > c->max_n || c->bytes > c->max_bytes))
		cache_drop(c, c->oldest);
}

static void cache_sweep(struct dns_cache *c, uint64_t now)
{
	struct centry *e = c->oldest;

	while (e != NULL) {
		struct centry *newer = e->newer;

		if (e->expires <= now)
			cache_drop(c, e);
		e = newer;
	}
	c->next_sweep = now + CACHE_SWEEP_MS;
}

/* The live entry for (type, key), now the most recently used; an expired one is dropped. */
static struct centry *cache_get(struct dns_cache *c, uint16_t type, const char *key,
				uint64_t now)
{
	uint32_t h;
	struct centry *e;

	if (c->bucket == NULL || c->n == 0)
		return NULL;
	h = cache_hash(c, type, key);
	for (e = c->bucket[h & (CACHE_BUCKETS - 1)]; e != NULL; e = e->hnext)
		if (e->hash == h && e->type == type && strcmp(e->data, key) == 0)
			break;
	if (e == NULL)
		return NULL;
	if (e->expires <= now) {
		cache_drop(c, e);
		return NULL;
	}
	lru_unlink(c, e);
	lru_push(c, e);
	return e;
}

/*
 * Keep an answer the parser understood, for its TTL under our caps
 * (dns.h, Cache): positive answers per RFC 1035 3.2.1, NXDOMAIN and NODATA
 * only with the SOA-derived TTL of RFC 2308 5, which the parser reports
 * as 0 when there is no SOA. A TEMPFAIL is the resolver's state of the
 * moment, not an answer about the name: never kept.
 */
static void cache_put(struct dns *d, uint16_t type, const char *key, const uint8_t *wire,
		      size_t wlen, enum dns_status st, uint32_t ttl)
{
	struct dns_cache *c = &d->cache;
	size_t klen = strlen(key), bytes = sizeof(struct centry) + klen + 1 + wlen;
	uint64_t now = uv_now(d->loop);
	struct centry *e;

	if (d->closing || c->bucket == NULL || c->max_n == 0 || ttl == 0 ||
	    bytes > c->max_bytes)
		return;
	if (st == DNS_OK) {
		if (ttl > DNS_CACHE_TTL_MAX)
			ttl = DNS_CACHE_TTL_MAX;
	} else if (st == DNS_NXDOMAIN || st == DNS_NODATA) {
		if (ttl > DNS_CACHE_NEG_TTL_MAX)
			ttl = DNS_CACHE_NEG_TTL_MAX;
	} else {
		return;
	}
	if (now >= c->next_sweep)
		cache_sweep(c, now);
	/* two identical lookups in flight: the later answer replaces the earlier */
	if ((e = cache_get(c, type, key, now)) != NULL)
		cache_drop(c, e);
	if ((e = malloc(bytes)) == NULL)
		return;
	e->expires = now + (uint64_t)ttl * 1000;
	e->bytes = bytes;
	e->wlen = wlen;
	e->type = type;
	e->hash = cache_hash(c, type, key);
	memcpy(e->data, key, klen + 1);
	memcpy(e->data + klen + 1, wire, wlen);
	e->hnext = c->bucket[e->hash & (CACHE_BUCKETS - 1)];
	c->bucket[e->hash & (CACHE_BUCKETS - 1)] = e;
	lru_push(c, e);
	c->n++;
	c->bytes += bytes;
	cache_trim(c);
}

/* A hit parses the kept answer into the sub; ttl becomes the seconds left. */
static bool cache_answer(struct dns *d, struct dns_sub *s, uint64_t now)
{
	struct centry *e = cache_get(&d->cache, (uint16_t)s->type, s->q->key, now);
	enum dns_status *st;
	uint32_t *ttl;

	if (e == NULL)
		return false;
	sub_parse(s, (const uint8_t *)e->data + strlen(e->data) + 1, e->wlen, &st, &ttl);
	*ttl = (uint32_t)((e->expires - now) / 1000);
	return true;
}

static void cache_flush(struct dns_cache *c)
{
	while (c->oldest != NULL)
		cache_drop(c, c->oldest);
}

void dns_set_cache(struct dns *d, size_t max_entries, size_t max_bytes)
{
	if (d == NULL || d->closing)
		return;
	if (max_entries > DNS_CACHE_MAX)
		max_entries = DNS_CACHE_MAX;
	if (max_entries == 0 || max_bytes == 0)
		max_entries = max_bytes = 0;
	d->cache.max_n = max_entries;
	d->cache.max_bytes = max_bytes;
	cache_trim(&d->cache);
}

void dns_get_stats(const struct dns *d, struct dns_stats *st)
{
	*st = d->stats;
}

/* ---- lookups ---- */

/*
 * The cache's key for a name: lower-cased, because names are equal
 * whatever the case of their ASCII letters (RFC 4343 3), and without the
 * trailing dot, which only says the name is absolute. key holds KEY_MAX.
 */
static void key_of(const char *name, char *key)
{
	size_t i = 0;

	for (; i < KEY_MAX - 1 && name[i] != '\0'; i++)
		key[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] + 32) : name[i];
	if (i > 0 && key[i - 1] == '.')
		i--;
	key[i] = '\0';
}

static struct dns_query *query_new(struct dns *d, int kind, const char *name, void *arg)
{
	struct dns_query *q;

	if (d->closing || (q = calloc(1, sizeof *q)) == NULL)
		return NULL;
	q->d = d;
	q->kind = kind;
	q->arg = arg;
	q->nsub = 1;
	q->sub[0].q = q;
	q->sub[1].q = q;
	/* a longer name is invalid and never sent, nor cached */
	snprintf(q->name, sizeof q->name, "%s", name);
	key_of(q->name, q->key);
	return q;
}

static int query_start(struct dns *d, struct dns_query *q, bool valid)
{
	bool hit[2] = { false, false };
	unsigned miss = 0;
	uint64_t now;

	if (!valid) {
		for (unsigned i = 0; i < q->nsub; i++)
			sub_fail(&q->sub[i], DNS_BADNAME, "not a valid domain name");
		done_push(d, q);
		return 0;
	}
	/* a hit is parsed now but, like any answer, delivered from the loop */
	now = uv_now(d->loop);
	for (unsigned i = 0; i < q->nsub; i++) {
		d->stats.queries++;
		hit[i] = cache_answer(d, &q->sub[i], now);
		if (hit[i])
			d->stats.cache_hits++;
		else
			miss++;
	}
	if (miss == 0) {
		done_push(d, q);
		return 0;
	}
	/* c-ares may answer from inside ares_query(): on_answer only queues */
	q->pending = miss;
	for (unsigned i = 0; i < q->nsub; i++)
		if (!hit[i])
			sub_send(&q->sub[i]);
	timer_arm(d);
	return 0;
}

int dns_mx(struct dns *d, const char *domain, dns_mx_cb cb, void *arg)
{
	struct dns_query *q = query_new(d, Q_MX, domain, arg);

	if (q == NULL)
		return -1;
	q->cb.mx = cb;
	q->sub[0].type = T_MX;
	return query_start(d, q, dns_hostname_valid(domain));
}

static int addr_start(struct dns *d, const char *host, bool name_ok, int family,
		      dns_addr_cb cb, void *arg)
{
	struct dns_query *q = query_new(d, Q_ADDR, host, arg);

	if (q == NULL)
		return -1;
	q->cb.addr = cb;
	q->sub[0].type = family == AF_INET ? T_A : T_AAAA;
	if (family == AF_UNSPEC) {
		q->nsub = 2;
		q->sub[1].type = T_A;
	}
	return query_start(d, q, name_ok &&
				 (family == AF_INET || family == AF_INET6 || family == AF_UNSPEC));
}

int dns_addr(struct dns *d, const char *host, int family, dns_addr_cb cb, void *arg)
{
	return addr_start(d, host, dns_hostname_valid(host), family, cb, arg);
}

int dns_addr_loose(struct dns *d, const char *name, int family, dns_addr_cb cb, void *arg)
{
	return addr_start(d, name, dns_name_loose_valid(name), family, cb, arg);
}

int dns_txt(struct dns *d, const char *name, dns_txt_cb cb, void *arg)
{
	struct dns_query *q = query_new(d, Q_TXT, name, arg);

	if (q == NULL)
		return -1;
	q->cb.txt = cb;
	q->sub[0].type = T_TXT;
	return query_start(d, q, dns_name_loose_valid(name));
}

int dns_ptr(struct dns *d, const struct sockaddr_storage *ip, dns_ptr_cb cb, void *arg)
{
	char name[DNS_PTR_NAME_MAX];
	bool ok = dns_ptr_name(ip, name, sizeof name) == 0;
	struct dns_query *q = query_new(d, Q_PTR, ok ? name : "", arg);

	if (q == NULL)
		return -1;
	q->cb.ptr = cb;
	q->sub[0].type = T_PTR;
	return query_start(d, q, ok);
}

/* ---- a struct dns ---- */

/* One server: "[v6]:port", "[v6]", "v6", "v4:port" or "v4"; port 1-65535, 53 if none. */
static int server_parse(const char *s, size_t len, struct ares_addr_port_node *n)
{
	char item[64], *host = item, *port = NULL, *end;
	unsigned long p = 53;

	memset(n, 0, sizeof *n);
	if (len == 0 || len >= sizeof item)
		return -1;
	memcpy(item, s, len);
	item[len] = '\0';
	if (item[0] == '[') {
		char *close = strchr(item, ']');

		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			return -1;
		if (close[1] == ':')
			port = close + 2;
		*close = '\0';
		host = item + 1;
		n->family = AF_INET6;
	} else if (strchr(item, ':') != strrchr(item, ':')) {
		n->family = AF_INET6;	/* bare: no port */
	} else {
		port = strchr(item, ':');
		if (port != NULL)
			*port++ = '\0';
		n->family = AF_INET;
	}
	if (inet_pton(n->family, host,
		      n->family == AF_INET ? (void *)&n->addr.addr4 : (void *)&n->addr.addr6) != 1)
		return -1;
	if (port != NULL) {
		if (*port < '0' || *port > '9')
			return -1;
		p = strtoul(port, &end, 10);
		if (*end != '\0' || p < 1 || p > 65535)
			return -1;
	}
	n->udp_port = (int)p;
	n->tcp_port = (int)p;
	return 0;
}

/*
 * Our own parser rather than ares_set_servers_ports_csv(): c-ares 1.18
 * takes "1.2.3.4:99999" (the port wraps) and "" (no server at all).
 */
static int servers_parse(const char *servers, struct ares_addr_port_node *nodes,
			 size_t *n, char *why, size_t whylen)
{
	const char *s = servers != NULL ? servers : "";

	*n = 0;
	while (*s != '\0') {
		size_t len = strcspn(s, ",");

		if (*n == SERVERS_MAX || server_parse(s, len, &nodes[*n]) != 0)
			goto bad;
		if (*n > 0)
			nodes[*n - 1].next = &nodes[*n];
		(*n)++;
		s += len;
		if (*s == ',' && *++s == '\0')
			goto bad;
	}
	return 0;
bad:
	snprintf(why, whylen, "bad DNS server list at \"%.40s\" (at most %d, each an IP address "
		 "with an optional port)", s, SERVERS_MAX);
	return -1;
}

struct dns *dns_new(uv_loop_t *loop, const char *servers, unsigned timeout_ms,
		    unsigned tries, char *err, size_t errlen)
{
	struct ares_addr_port_node nodes[SERVERS_MAX];
	struct ares_options o;
	struct dns *d = NULL;
	size_t n = 0;
	int r = ARES_SUCCESS, lib = -1;
	char why[128] = "out of memory";

	if (timeout_ms < 1 || timeout_ms > TIMEOUT_MS_MAX || tries < 1 || tries > TRIES_MAX) {
		snprintf(why, sizeof why, "DNS timeout must be 1-%d ms and tries 1-%d",
			 TIMEOUT_MS_MAX, TRIES_MAX);
		goto fail;
	}
	if (servers_parse(servers, nodes, &n, why, sizeof why) != 0 ||
	    (d = calloc(1, sizeof *d)) == NULL ||
	    (d->cache.bucket = calloc(CACHE_BUCKETS, sizeof *d->cache.bucket)) == NULL)
		goto fail;
	d->cache.max_n = DNS_CACHE_MAX;
	d->cache.max_bytes = DNS_CACHE_BYTES;
	d->cache.seed = arc4random();
	if ((lib = r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		goto fail;
	memset(&o, 0, sizeof o);
	/*
	 * NOCHECKRESP: without it c-ares 1.18 resends a SERVFAIL or REFUSED
	 * question to every server `tries` times and then reports
	 * ARES_ECONNREFUSED with no answer; with it the answer comes to us.
	 * NOSEARCH, NOALIASES: ares_query() uses neither; they say the intent.
	 * EDNS: on a FORMERR answer c-ares asks once more without EDNS and
	 * turns EDNS off for the rest of the channel's life.
	 */
	o.flags = ARES_FLAG_NOCHECKRESP | ARES_FLAG_EDNS | ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	o.timeout = (int)timeout_ms;
	o.tries = 1;		/* the tries are ours: see on_answer() */
	o.ednspsz = EDNS_PAYLOAD;
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = d;
	r = ares_init_options(&d->channel, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS |
				ARES_OPT_TRIES | ARES_OPT_EDNSPSZ | ARES_OPT_SOCK_STATE_CB);
	if (r != ARES_SUCCESS) {
		d->channel = NULL;
		goto fail;
	}
	if (n > 0 && (r = ares_set_servers_ports(d->channel, nodes)) != ARES_SUCCESS)
		goto fail;
	d->loop = loop;
	d->timeout_ms = timeout_ms;
	d->tries = tries;
	d->done_tail = &d->done;
	uv_timer_init(loop, &d->timer);
	uv_idle_init(loop, &d->kick);
	d->timer.data = d;
	d->kick.data = d;
	d->handles = 2;
	return d;
fail:
	if (r != ARES_SUCCESS)
		snprintf(why, sizeof why, "c-ares: %s", ares_strerror(r));
	snprintf(err, errlen, "%s", why);
	if (d != NULL && d->channel != NULL)
		ares_destroy(d->channel);
	if (lib == ARES_SUCCESS)
		ares_library_cleanup();
	if (d != NULL)
		free(d->cache.bucket);
	free(d);
	return NULL;
}

void dns_free(struct dns *d, void (*on_closed)(void *arg), void *arg)
{
	if (d == NULL)
		return;
	d->closing = true;
	d->on_closed = on_closed;
	d->closed_arg = arg;
	/* every query in flight comes back to on_answer with ARES_EDESTRUCTION */
	ares_destroy(d->channel);
	d->channel = NULL;
	cache_flush(&d->cache);
	free(d->cache.bucket);
	d->cache.bucket = NULL;
	while (d->socks != NULL) {
		struct dns_sock *s = d->socks;

		d->socks = s->next;
		uv_close((uv_handle_t *)&s->poll, on_sock_closed);
	}
	uv_close((uv_handle_t *)&d->timer, on_handle_closed);
	maybe_close(d);
}
