/* worker.c - a worker process: SMTP sessions on its own event loop; and the queue process. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../dns/dns.h"
#include "../lib/log.h"
#include "../lib/tls.h"
#include "../mailauth/dkim.h"
#include "../smtp/session.h"
#include "../spool/sched.h"
#include "daemon.h"

#define STOP_GRACE_MS 3000
#define DKIM_KEY_CACHE_SIZE 256	/* senders' keys kept decoded, per worker */

struct listen_handle {
	uv_tcp_t tcp;
	struct worker *w;
	const struct listener_conf *lc;
};

static struct worker the_worker;
static struct listen_handle *handles;
static size_t nhandles;
static uv_signal_t sig_term, sig_int, sig_drain;
static uv_timer_t grace;

static void on_connection(uv_stream_t *server, int status)
{
	struct listen_handle *h = server->data;

	if (status < 0) {
		log_event(LOG_WARN, "event=accept-error error=%s", uv_strerror(status));
		return;
	}
	session_accept(h->w, h->lc, server);
}

static void stop_now(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void on_idle(struct worker *w)
{
	if (w->spool.pending == 0)
		uv_stop(w->loop);
}

/* SIGTERM: stop accepting; 421 to every session but those with a commit
 * in flight, which get their answer first (STOP_GRACE_MS at most); a
 * message never answered is not lost, it was never acknowledged. */
static void on_stop_signal(uv_signal_t *s, int sig)
{
	(void)sig;
	the_worker.stopping = true;
	for (size_t i = 0; i < nhandles; i++)
		uv_close((uv_handle_t *)&handles[i].tcp, NULL);
	uv_signal_stop(&sig_term);
	uv_signal_stop(&sig_int);
	uv_timer_start(&grace, stop_now, STOP_GRACE_MS, 0);
	session_shutdown_all(&the_worker);
	if (the_worker.nsessions == 0)
		uv_stop(s->loop);
}

/* SIGUSR1 (a reload): stop accepting and leave when the last session
 * ends; the sessions themselves go on untouched. The sockets stay open in
 * the parent and the new worker, which accepts what waits in them. */
static void on_drain_signal(uv_signal_t *s, int sig)
{
	(void)sig;
	log_event(LOG_INFO, "event=worker-drain sessions=%u", the_worker.nsessions);
	the_worker.draining = true;
	for (size_t i = 0; i < nhandles; i++)
		uv_close((uv_handle_t *)&handles[i].tcp, NULL);
	nhandles = 0;
	uv_signal_stop(&sig_drain);
	if (the_worker.nsessions == 0)
		uv_stop(s->loop);
}

static void setup_loop(uv_loop_t *loop)
{
	/* fsyncs run on the thread pool: enough threads that the disk sees
	 * many at once (it groups them), a small stack each. */
	setenv("UV_THREADPOOL_SIZE", "32", 0);
	signal(SIGPIPE, SIG_IGN);
	uv_signal_init(loop, &sig_term);
	uv_signal_init(loop, &sig_int);
	uv_signal_init(loop, &sig_drain);
	uv_timer_init(loop, &grace);
}

static bool has_mx_listener(const struct conf *c)
{
	for (size_t i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].role == ROLE_MX)
			return true;
	return false;
}

/*
 * What the port 25 checks need (smtp/msgauth.h): a resolver on this loop,
 * the Public Suffix List (the parent's, loaded before fork), the aggregate
 * report file. Without a resolver the checks are off (said here).
 */
static void mailauth_setup(struct worker *w, const struct conf *c, struct dmarc_psl *psl)
{
	char err[256], path[CONF_PATH_MAX + 32];

	w->dmarc_fd = -1;
	if (!c->mail_auth || !has_mx_listener(c))
		return;
	w->dns = dns_new(w->loop, c->dns_server, c->dns_timeout_ms, 2, err, sizeof err);
	if (w->dns == NULL) {
		log_event(LOG_WARN, "event=mailauth-off error=\"%s\" hint=\"check dns_server\"", err);
		return;
	}
	w->psl = psl;
	w->dkim_cache = dkim_key_cache_new(DKIM_KEY_CACHE_SIZE);	/* NULL: decoded each time */
	snprintf(path, sizeof path, "%s/dmarc/records.jsonl", c->data_dir);
	w->dmarc_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (w->dmarc_fd < 0)
		log_event(LOG_WARN, "event=dmarc-records-off path=%s error=\"%s\"", path, strerror(errno));
}

void worker_main(struct daemon *d, unsigned index, unsigned slot)
{
	uv_loop_t *loop = uv_default_loop();
	struct listen_sock *mine = d->socks + (size_t)index * d->nsocks;

	log_init("worker", (int)index, LOG_INFO);
	explicit_bzero(d->relay_pass, sizeof d->relay_pass); /* the queue's, not ours */
	conf_free(&d->conf);	/* wipes the DKIM keys' text: the queue signs, not us */
	privdrop(d, "worker");
	setup_loop(loop);
	the_worker.loop = loop;
	the_worker.conf = &d->conf;
	the_worker.users = &d->users;
	the_worker.connlimit = d->connlimit;
	the_worker.authlimit = d->authlimit;
	the_worker.tls = d->tls;
	the_worker.auth_mechs = auth_setup(&d->conf, &d->users);
	memcpy(the_worker.auth_secret, d->auth_secret, sizeof the_worker.auth_secret);
	the_worker.index = slot;
	the_worker.on_idle = on_idle;
	if (spool_init(&the_worker.spool, loop, d->conf.data_dir, slot) < 0)
		fatal("event=spool-init-failed dir=%s", d->conf.data_dir);
	mailauth_setup(&the_worker, &d->conf, d->psl);
	handles = calloc(d->nsocks, sizeof *handles);
	if (handles == NULL)
		fatal("event=out-of-memory");
	for (size_t i = 0; i < d->nsocks; i++) {
		struct listen_handle *h = &handles[nhandles];
		int r;

		uv_tcp_init(loop, &h->tcp);
		h->w = &the_worker;
		h->lc = mine[i].lc;
		h->tcp.data = h;
		if ((r = uv_tcp_open(&h->tcp, mine[i].fd)) != 0 ||
		    (r = uv_listen((uv_stream_t *)&h->tcp, 1024, on_connection)) != 0)
			fatal("event=listen-failed addr=%s error=\"%s\"", mine[i].name, uv_strerror(r));
		nhandles++;
	}
	uv_signal_start(&sig_term, on_stop_signal, SIGTERM);
	uv_signal_start(&sig_int, on_stop_signal, SIGINT);
	uv_signal_start(&sig_drain, on_drain_signal, SIGUSR1);
	log_event(LOG_INFO, "event=worker-start pid=%ld uid=%ld sockets=%zu generation=%u", (long)getpid(),
		  (long)getuid(), nhandles, d->generation);
	uv_run(loop, UV_RUN_DEFAULT);
	log_event(LOG_INFO, "event=worker-stop sessions_left=%u", the_worker.nsessions);
	_exit(0);
}

/* ---- the queue process ------------------------------------------------ */

static struct sched the_sched;

static void on_sched_stopped(struct sched *q)
{
	uv_stop(q->loop);
}

static void on_queue_stop_signal(uv_signal_t *s, int sig)
{
	(void)s;
	(void)sig;
	uv_signal_stop(&sig_term);
	uv_signal_stop(&sig_int);
	uv_timer_start(&grace, stop_now, STOP_GRACE_MS, 0);
	sched_stop(&the_sched, on_sched_stopped);
}

void queue_main(struct daemon *d)
{
	uv_loop_t *loop = uv_default_loop();

	log_init("queue", -1, LOG_INFO);
	privdrop(d, "queue");
	setup_loop(loop);
	tls_server_free(d->tls); /* the queue process speaks no TLS (yet) */
	d->tls = NULL;
	for (unsigned i = 0; i < d->nworkers; i++)
		for (size_t k = 0; k < d->nsocks; k++)
			close(d->socks[i * d->nsocks + k].fd);
	if (sched_start(&the_sched, loop, &d->conf, d->relay_pass) < 0)
		fatal("event=queue-start-failed dir=%s", d->conf.data_dir);
	conf_free(&d->conf);	/* the DKIM keys are loaded: wipe their text */
	uv_signal_start(&sig_term, on_queue_stop_signal, SIGTERM);
	uv_signal_start(&sig_int, on_queue_stop_signal, SIGINT);
	log_event(LOG_INFO, "event=queue-start pid=%ld uid=%ld", (long)getpid(), (long)getuid());
	uv_run(loop, UV_RUN_DEFAULT);
	log_event(LOG_INFO, "event=queue-stop");
	_exit(0);
}
