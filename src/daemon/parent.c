/* parent.c - the privileged parent: lock, spool, sockets, children, supervision. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "../lib/log.h"
#include "../lib/tls.h"
#include "../mailauth/dmarc.h"
#include "../spool/spool.h"
#include "daemon.h"

#define RESTART_BACKOFF_MS 1000
#define STOP_WAIT_MS 5000

static int lock_data_dir(const struct conf *c)
{
	char path[CONF_PATH_MAX + 32];
	char pid[32];
	int fd;

	snprintf(path, sizeof path, "%s/ternd.pid", c->data_dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		fatal("event=start-failed error=\"%s: %s\"", path, strerror(errno));
	/* Two ternd on one spool would deliver every message twice. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		fatal("event=start-failed error=\"%s is locked: another ternd uses data_dir %s\"",
		      path, c->data_dir);
	snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, pid, strlen(pid)) < 0)
		log_event(LOG_WARN, "event=pidfile-write-failed path=%s", path);
	return fd;
}

static void resolve_user(struct daemon *d)
{
	struct passwd *pw;

	d->drop = geteuid() == 0;
	if (!d->drop)
		return;
	pw = getpwnam(d->conf.user);
	if (pw == NULL && strcmp(d->conf.user, "tern") == 0) {
		log_event(LOG_WARN, "event=user-missing user=tern fallback=nobody hint=\"useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin tern\"");
		pw = getpwnam("nobody");
		if (pw != NULL)
			snprintf(d->conf.user, sizeof d->conf.user, "nobody");
	}
	if (pw == NULL)
		fatal("event=start-failed error=\"user %s does not exist (setting 'user' in %s)\"",
		      d->conf.user, d->conf.source);
	if (pw->pw_uid == 0)
		fatal("event=start-failed error=\"user %s is root: pick an unprivileged user\"",
		      d->conf.user);
	d->uid = pw->pw_uid;
	d->gid = pw->pw_gid;
}

/* The children write the spool and the Maildirs as the unprivileged user. */
static void own_data_dir(const struct daemon *d)
{
	char p[CONF_PATH_MAX + 32];

	if (!d->drop)
		return;
	for (size_t i = 0; i < SPOOL_NDIRS; i++) {
		snprintf(p, sizeof p, "%s/%s", d->conf.data_dir, spool_data_dirs[i]);
		if (chown(p, d->uid, d->gid) < 0)
			fatal("event=start-failed error=\"chown %s: %s\"", p, strerror(errno));
	}
}

static int make_socket(const struct sockaddr_storage *ss, socklen_t len, bool reuseport,
		       int *err)
{
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		*err = errno;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 1024) < 0) {
		*err = errno;
		close(fd);
		return -1;
	}
	return fd;
}

static socklen_t fill_addr(struct sockaddr_storage *ss, int family, const char *addr,
			   uint16_t port)
{
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		if (addr[0] != '\0' && inet_pton(AF_INET, addr, &a->sin_addr) != 1)
			return 0;
		return sizeof *a;
	}
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(port);
	if (addr[0] != '\0' && inet_pton(AF_INET6, addr, &a->sin6_addr) != 1)
		return 0;
	return sizeof *a;
}

struct bind_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	const struct listener_conf *lc;
	char name[80];
};

static void addr_name(char *out, size_t cap, int fam, const struct listener_conf *lc)
{
	const char *a = lc->addr[0] != '\0' ? lc->addr : fam == AF_INET ? "0.0.0.0" : "::";

	snprintf(out, cap, fam == AF_INET6 ? "[%s]:%u" : "%s:%u", a, lc->port);
}

/* Whether the parent already holds a socket on this address (a reload). */
static bool held(const struct listen_sock *old, size_t nold, const char *name)
{
	for (size_t k = 0; k < nold; k++)
		if (old[k].fd >= 0 && strcmp(old[k].name, name) == 0)
			return true;
	return false;
}

/* Pass 1: every address to listen on, each checked with a plain bind
 * (no SO_REUSEPORT) so that a port another program or another ternd holds
 * is an error at start, never a silent share. An address the parent holds
 * already (old, on reload) is not probed: it is ours. -1 with err. */
static ssize_t plan_listeners(const struct conf *c, const struct listen_sock *old, size_t nold,
			      struct bind_addr **out, char *err, size_t errlen)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	struct bind_addr *v = NULL, *nv;
	size_t n = 0;

	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct listener_conf *lc = &c->listeners[i];
		bool any = lc->addr[0] == '\0';

		for (int f = 0; f < 2; f++) {
			struct bind_addr b = { .lc = lc };
			int e = 0, probe;

			if (!any && (strchr(lc->addr, ':') != NULL) != (fams[f] == AF_INET6))
				continue;
			addr_name(b.name, sizeof b.name, fams[f], lc);
			if ((b.len = fill_addr(&b.ss, fams[f], lc->addr, lc->port)) == 0) {
				snprintf(err, errlen, "bad listen address %s", b.name);
				goto fail;
			}
			if (!held(old, nold, b.name)) {
				if ((probe = make_socket(&b.ss, b.len, false, &e)) < 0) {
					if (any && fams[f] == AF_INET6 &&
					    (e == EAFNOSUPPORT || e == EADDRNOTAVAIL)) {
						log_event(LOG_WARN, "event=ipv6-unavailable port=%u", lc->port);
						continue;
					}
					snprintf(err, errlen, "cannot listen on %s (%s): %s%s", b.name,
						 conf_role_name(lc->role), strerror(e),
						 e == EADDRINUSE ? "; another server holds the port (ss -ltnp)" :
						 e == EACCES ? "; ports below 1024 need root" : "");
					goto fail;
				}
				close(probe);
			}
			if ((nv = realloc(v, (n + 1) * sizeof *v)) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			v = nv;
			v[n++] = b;
		}
	}
	if (n == 0) {
		snprintf(err, errlen, "no listener could be opened");
		goto fail;
	}
	*out = v;
	return (ssize_t)n;
fail:
	free(v);
	return -1;
}

/*
 * Pass 2: one socket per worker per address, all with SO_REUSEPORT, so
 * the kernel spreads connections over the workers. On reload a socket the
 * parent holds for the same worker and address is kept: connections
 * waiting in its backlog are accepted by the new worker, none is dropped.
 * Returns 0 with d->socks replaced (old ones not kept are closed), or -1
 * with err and d->socks untouched.
 */
static int bind_listeners(struct daemon *d, char *err, size_t errlen)
{
	struct listen_sock *old = d->socks, *socks;
	size_t nold = d->nsocks, i;
	struct bind_addr *v;
	ssize_t n = plan_listeners(&d->conf, old, old ? nold * d->nworkers : 0, &v, err, errlen);

	if (n < 0)
		return -1;
	if ((socks = calloc(d->nworkers * (size_t)n, sizeof *socks)) == NULL) {
		free(v);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < d->nworkers * (size_t)n; i++)
		socks[i].fd = -1;
	for (unsigned w = 0; w < d->nworkers; w++)
		for (ssize_t k = 0; k < n; k++) {
			struct listen_sock *ls = &socks[(size_t)w * (size_t)n + (size_t)k];
			int e = 0;

			ls->lc = v[k].lc;
			snprintf(ls->name, sizeof ls->name, "%s", v[k].name);
			for (size_t j = 0; old != NULL && j < nold && ls->fd < 0; j++)
				if (old[w * nold + j].fd >= 0 && strcmp(old[w * nold + j].name, ls->name) == 0)
					ls->fd = old[w * nold + j].fd;
			if (ls->fd < 0 && (ls->fd = make_socket(&v[k].ss, v[k].len, true, &e)) < 0) {
				snprintf(err, errlen, "cannot listen on %s: %s", v[k].name, strerror(e));
				goto fail;
			}
		}
	free(v);
	/* Success: close what the new set does not keep. */
	for (i = 0; old != NULL && i < d->nworkers * nold; i++) {
		bool kept = false;

		for (size_t j = 0; j < d->nworkers * (size_t)n && !kept; j++)
			kept = socks[j].fd == old[i].fd;
		if (!kept)
			close(old[i].fd);
	}
	free(old);
	d->socks = socks;
	d->nsocks = (size_t)n;
	return 0;
fail:
	for (i = 0; i < d->nworkers * (size_t)n; i++) {
		bool borrowed = false;

		for (size_t j = 0; old != NULL && j < d->nworkers * nold && !borrowed; j++)
			borrowed = old[j].fd == socks[i].fd;
		if (socks[i].fd >= 0 && !borrowed)
			close(socks[i].fd);
	}
	free(socks);
	free(v);
	return -1;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * 32 random bytes kept in DATA_DIR/auth.secret (0600): SCRAM answers an
 * unknown name with a salt derived from it, the same in every worker and
 * after a restart, so the salt does not tell which names exist.
 */
static void load_auth_secret(struct daemon *d)
{
	char path[CONF_PATH_MAX + 32];
	ssize_t n = 0;
	int fd;

	snprintf(path, sizeof path, "%s/auth.secret", d->conf.data_dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, d->auth_secret, sizeof d->auth_secret);
		close(fd);
	}
	if (n == (ssize_t)sizeof d->auth_secret)
		return;
	if (RAND_bytes(d->auth_secret, sizeof d->auth_secret) != 1)
		fatal("event=start-failed error=\"no random bytes for %s\"", path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, d->auth_secret, sizeof d->auth_secret) != (ssize_t)sizeof d->auth_secret ||
	    fsync(fd) < 0)
		log_event(LOG_WARN, "event=auth-secret-write-failed path=%s error=\"%s\"", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/*
 * The smarthost password, read as root before any child exists (the
 * queue process could not read a root-owned 0600 file after its privilege
 * drop). Like a TLS key, a file others can read is refused. -1 with err.
 */
static int load_relay_pass(const struct conf *c, char *out, size_t cap, char *err, size_t errlen)
{
	const char *path = c->relay.auth_file;
	struct stat st;
	FILE *f;

	out[0] = '\0';
	if (c->relay.auth_user[0] == '\0')
		return 0;
	if ((f = fopen(path, "re")) == NULL || fstat(fileno(f), &st) < 0) {
		snprintf(err, errlen, "relay password file %s: %s", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	if (st.st_mode & 077) {
		fclose(f);
		snprintf(err, errlen, "%.400s is readable by group or others (chmod 600 %.400s)", path, path);
		return -1;
	}
	if (fgets(out, (int)cap, f) == NULL)
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	if (out[0] == '\0') {
		snprintf(err, errlen, "relay password file %s is empty", path);
		return -1;
	}
	return 0;
}

/* A Dovecot socket that is not there yet is not fatal (Dovecot may start
 * later; each login says 454 meanwhile), but it is worth a line. */
static void check_dovecot(const struct conf *c)
{
	struct stat st;

	if (c->auth_dovecot[0] != '\0' && (stat(c->auth_dovecot, &st) < 0 || !S_ISSOCK(st.st_mode)))
		log_event(LOG_WARN, "event=auth-dovecot-missing socket=%s hint=\"logins get 454 until Dovecot listens there\"",
			  c->auth_dovecot);
}

/* Children: index 0..nworkers-1 are workers, nworkers is the queue. */
struct child {
	pid_t pid;
	uint64_t started_ms;
	uint64_t restart_at_ms;	/* 0: not waiting for a restart */
	bool replaced;		/* stopped by a reload: its exit is expected */
};

/* Workers of an earlier configuration, finishing their sessions. */
struct drainer {
	pid_t pid;
	unsigned slot;
};

static struct child *children;
static struct drainer *drainers;	/* nworkers at most: one generation */
static size_t ndrainers;
static sigset_t parent_sigs;

/* The connlimit row and queue-id byte of worker idx in this generation:
 * two generations run side by side while one drains, never on one row. */
static unsigned worker_slot(const struct daemon *d, unsigned idx)
{
	return idx + (d->generation & 1) * d->nworkers;
}

static pid_t spawn(struct daemon *d, unsigned idx)
{
	pid_t pid = fork();

	if (pid < 0) {
		log_event(LOG_ERROR, "event=fork-failed error=\"%s\"", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGHUP, SIG_IGN);
		if (idx < d->nworkers)
			worker_main(d, idx, worker_slot(d, idx));
		queue_main(d);
	}
	children[idx].pid = pid;
	children[idx].started_ms = mono_ms();
	children[idx].restart_at_ms = 0;
	children[idx].replaced = false;
	return pid;
}

static const char *child_name(const struct daemon *d, unsigned idx, char *buf, size_t cap)
{
	if (idx < d->nworkers)
		snprintf(buf, cap, "worker/%u", idx);
	else
		snprintf(buf, cap, "queue");
	return buf;
}

static void log_exit(const char *name, pid_t pid, int status, enum log_level lvl, const char *action)
{
	if (WIFSIGNALED(status))
		log_event(lvl, "event=child-exit child=%s pid=%ld signal=%d%s", name, (long)pid,
			  WTERMSIG(status), action);
	else
		log_event(lvl, "event=child-exit child=%s pid=%ld status=%d%s", name, (long)pid,
			  WEXITSTATUS(status), action);
}

/* A draining worker ended: its connection counts go with it. */
static bool reap_drainer(struct daemon *d, pid_t pid, int status)
{
	for (size_t k = 0; k < ndrainers; k++) {
		if (drainers[k].pid != pid)
			continue;
		log_exit("worker/draining", pid, status, LOG_INFO, " reason=reload");
		connlimit_reset_worker(d->connlimit, drainers[k].slot);
		drainers[k] = drainers[--ndrainers];
		return true;
	}
	return false;
}

/* Collect dead children; schedule their restart (at once, or after a
 * pause if they died right after starting, so a crash loop cannot spin;
 * at once and quietly for a queue process a reload stopped). */
static void reap(struct daemon *d, bool stopping)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (reap_drainer(d, pid, status))
			continue;
		for (unsigned i = 0; i <= d->nworkers; i++) {
			char name[32];
			bool expected = stopping || children[i].replaced;

			if (children[i].pid != pid)
				continue;
			children[i].pid = 0;
			log_exit(child_name(d, i, name, sizeof name), pid, status,
				 expected ? LOG_INFO : LOG_ERROR,
				 stopping ? "" : children[i].replaced ? " action=restart reason=reload"
								      : " action=restart");
			if (i < d->nworkers)
				connlimit_reset_worker(d->connlimit, worker_slot(d, i));
			if (!stopping) {
				bool quick = !children[i].replaced &&
					     mono_ms() - children[i].started_ms < RESTART_BACKOFF_MS;
				children[i].restart_at_ms = mono_ms() + (quick ? RESTART_BACKOFF_MS : 1);
			}
		}
	}
}

static void restart_due(struct daemon *d)
{
	for (unsigned i = 0; i <= d->nworkers; i++)
		if (children[i].pid == 0 && children[i].restart_at_ms != 0 &&
		    children[i].restart_at_ms <= mono_ms())
			spawn(d, i);
}

static int live_children(const struct daemon *d)
{
	int n = (int)ndrainers;

	for (unsigned i = 0; i <= d->nworkers; i++)
		n += children[i].pid > 0;
	return n;
}

/* SIGTERM to the drainers (and, when all, to every child), then wait up to
 * STOP_WAIT_MS; SIGKILL what is left. */
static void stop_children(struct daemon *d, bool all)
{
	uint64_t deadline = mono_ms() + STOP_WAIT_MS;

	for (size_t k = 0; k < ndrainers; k++)
		kill(drainers[k].pid, SIGTERM);
	for (unsigned i = 0; all && i <= d->nworkers; i++)
		if (children[i].pid > 0)
			kill(children[i].pid, SIGTERM);
	while ((all ? live_children(d) > 0 : ndrainers > 0) && mono_ms() < deadline) {
		struct timespec ts = { 0, 100 * 1000000 };

		sigtimedwait(&parent_sigs, NULL, &ts);
		reap(d, all);
	}
	for (size_t k = 0; k < ndrainers; k++) {
		log_event(LOG_WARN, "event=child-kill pid=%ld", (long)drainers[k].pid);
		kill(drainers[k].pid, SIGKILL);
	}
	for (unsigned i = 0; all && i <= d->nworkers; i++)
		if (children[i].pid > 0) {
			log_event(LOG_WARN, "event=child-kill pid=%ld", (long)children[i].pid);
			kill(children[i].pid, SIGKILL);
		}
	while (ndrainers > 0 && waitpid(drainers[0].pid, NULL, 0) >= 0)
		reap_drainer(d, drainers[0].pid, 0);
	reap(d, all);
}

/* The configuration a reload would switch to: -1 with err when it is bad. */
static int load_new(const struct daemon *d, struct conf *nc, struct users *nu, SSL_CTX **nt,
		    char *pass, size_t passcap, char *err, size_t errlen)
{
	conf_defaults(nc);
	if (d->conf_file != NULL && conf_load_file(nc, d->conf_file, err, errlen) < 0)
		return -1;
	if (d->data_override != NULL)
		snprintf(nc->data_dir, sizeof nc->data_dir, "%s", d->data_override);
	if (conf_finish(nc, geteuid() == 0, err, errlen) < 0)
		return -1;
	/* The spool and the account the children run as stay until a restart. */
	if (strcmp(nc->data_dir, d->conf.data_dir) != 0 || strcmp(nc->user, d->user_asked) != 0)
		log_event(LOG_WARN, "event=reload-ignored what=\"data_dir and user\" "
			  "hint=\"restart ternd to change them\"");
	memcpy(nc->data_dir, d->conf.data_dir, sizeof nc->data_dir);
	memcpy(nc->user, d->conf.user, sizeof nc->user);
	memset(nu, 0, sizeof *nu);
	if (nc->users_file[0] != '\0' && users_load(nu, nc->users_file, err, errlen) < 0)
		return -1;
	check_dovecot(nc);
	if (load_relay_pass(nc, pass, passcap, err, errlen) < 0) {
		users_free(nu);
		return -1;
	}
	if ((*nt = tls_server_ctx(nc, d->tls, err, errlen)) == NULL) {
		users_free(nu);
		return -1;
	}
	return 0;
}

/* DMARC's Public Suffix List, once for every worker (mail_auth on, an mx
 * listener); without it DMARC is off, said here once. */
static void load_psl(struct daemon *d)
{
	char err[CONF_PATH_MAX + 128];
	bool mx = false;

	dmarc_psl_free(d->psl);
	d->psl = NULL;
	for (size_t i = 0; i < d->conf.nlisteners; i++)
		mx |= d->conf.listeners[i].role == ROLE_MX;
	if (!d->conf.mail_auth || !mx)
		return;
	d->psl = dmarc_psl_load(d->conf.public_suffix_list, err, sizeof err);
	if (d->psl == NULL)
		log_event(LOG_WARN, "event=dmarc-off error=\"%s\" hint=\"apt-get install publicsuffix, or set public_suffix_list\"",
			  err);
}

/*
 * SIGHUP: read the configuration, users and certificates again; if all of
 * it is good, start a new generation of workers with it on the same
 * sockets, and let the old workers finish their sessions (SIGUSR1: they
 * stop accepting, serve what they have, and exit when idle). The queue
 * process is stopped and started again (two would deliver twice). A bad
 * file changes nothing: the old configuration keeps running, and the log
 * says why.
 */
static void reload(struct daemon *d)
{
	static struct conf nc, oc;
	char err[CONF_PATH_MAX + 256];
	struct users nu;
	SSL_CTX *nt;
	char pass[sizeof d->relay_pass];

	log_event(LOG_INFO, "event=reload-start config=\"%s\"", d->conf_file ? d->conf_file : "(built-in defaults)");
	if (load_new(d, &nc, &nu, &nt, pass, sizeof pass, err, sizeof err) < 0) {
		explicit_bzero(pass, sizeof pass);
		log_event(LOG_ERROR, "event=reload-failed error=\"%s\" action=\"kept the running configuration\"", err);
		return;
	}
	/* One generation drains at a time (connlimit rows, queue-id bytes). */
	if (ndrainers > 0) {
		log_event(LOG_WARN, "event=reload-cut-drain workers=%zu reason=\"a newer reload\"", ndrainers);
		stop_children(d, false);
	}
	oc = d->conf;
	d->conf = nc;
	if (bind_listeners(d, err, sizeof err) < 0) {
		d->conf = oc;
		users_free(&nu);
		tls_server_free(nt);
		explicit_bzero(pass, sizeof pass);
		log_event(LOG_ERROR, "event=reload-failed error=\"%s\" action=\"kept the running configuration\"", err);
		return;
	}
	users_free(&d->users);
	d->users = nu;
	memcpy(d->relay_pass, pass, sizeof d->relay_pass);
	explicit_bzero(pass, sizeof pass);
	tls_server_free(d->tls);
	d->tls = nt;
	load_psl(d);
	d->generation++;
	for (unsigned i = 0; i < d->nworkers; i++) {
		if (children[i].pid > 0) {
			drainers[ndrainers++] = (struct drainer){ children[i].pid,
								  i + ((d->generation - 1) & 1) * d->nworkers };
			kill(children[i].pid, SIGUSR1);
		}
		children[i].pid = 0;
		spawn(d, i);
	}
	if (children[d->nworkers].pid > 0) {
		children[d->nworkers].replaced = true;
		kill(children[d->nworkers].pid, SIGTERM);
	}
	log_event(LOG_INFO, "event=reload generation=%u workers=%u listeners=%zu draining=%zu config=\"%s\"",
		  d->generation, d->nworkers, d->nsocks, ndrainers, d->conf.source);
}

static void print_ready(const struct daemon *d)
{
	const struct conf *c = &d->conf;
	const struct listener_conf *mx = NULL;

	printf("ternd is running: %u worker%s, data in %s\n", d->nworkers,
	       d->nworkers == 1 ? "" : "s", c->data_dir);
	for (size_t k = 0; k < d->nsocks; k++) {
		const struct listener_conf *lc = d->socks[k].lc;

		if (lc->role == ROLE_MX && mx == NULL)
			mx = lc;
		printf("  %-15s %-22s tls %s, auth %s%s\n", conf_role_name(lc->role), d->socks[k].name,
		       conf_tls_name(lc->tls), conf_auth_name(lc->auth),
		       lc->plaintext_auth_loopback ? " (plaintext AUTH from loopback)" : "");
	}
	printf("  local domains:");
	for (size_t i = 0; i < c->ndomains; i++)
		printf(" %s", c->domains[i]);
	printf("\n  mail is delivered to %s\n", c->deliver == DELIVER_LMTP ? c->lmtp : c->maildir);
	if (c->relay.host[0] != '\0')
		printf("  mail for other domains goes through %s\n", c->relay.host);
	if (mx != NULL)
		printf("Send a first message:\n  swaks --server %s:%u --from you@example.com --to postmaster@%s\n",
		       mx->addr[0] && strchr(mx->addr, ':') == NULL ? mx->addr : "127.0.0.1",
		       mx->port, c->domains[0]);
	printf("Logs are on standard error, one line per event. Stop with Ctrl-C.\n");
	fflush(stdout);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	/* Every connection is a descriptor: take what the system allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int parent_run(struct daemon *d)
{
	char err[CONF_PATH_MAX + 128];
	int lockfd;

	raise_fd_limit();
	if (spool_make_dirs(d->conf.data_dir, err, sizeof err) < 0)
		fatal("event=start-failed error=\"%s\"", err);
	lockfd = lock_data_dir(&d->conf);
	snprintf(d->user_asked, sizeof d->user_asked, "%s", d->conf.user);
	resolve_user(d);
	own_data_dir(d);
	if (spool_recover(d->conf.data_dir) < 0)
		fatal("event=start-failed error=\"cannot read spool in %s\"", d->conf.data_dir);
	if (d->conf.users_file[0] != '\0' &&
	    users_load(&d->users, d->conf.users_file, err, sizeof err) < 0)
		fatal("event=start-failed error=\"%s\"", err);
	load_auth_secret(d);
	check_dovecot(&d->conf);
	if (load_relay_pass(&d->conf, d->relay_pass, sizeof d->relay_pass, err, sizeof err) < 0)
		fatal("event=start-failed error=\"%s\"", err);
	if ((d->tls = tls_server_ctx(&d->conf, NULL, err, sizeof err)) == NULL)
		fatal("event=start-failed error=\"%s\"", err);
	load_psl(d);
	if ((d->authlimit = authlimit_create()) == NULL)
		fatal("event=start-failed error=\"cannot map shared memory\"");
	/* Two rows per worker: a draining generation and the new one. */
	if ((d->connlimit = connlimit_create(2 * d->nworkers)) == NULL)
		fatal("event=start-failed error=\"cannot map shared memory\"");
	if (bind_listeners(d, err, sizeof err) < 0)
		fatal("event=start-failed error=\"%s\"", err);

	/* Block the signals the parent waits for before any child exists. */
	sigemptyset(&parent_sigs);
	sigaddset(&parent_sigs, SIGCHLD);
	sigaddset(&parent_sigs, SIGTERM);
	sigaddset(&parent_sigs, SIGINT);
	sigaddset(&parent_sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &parent_sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((children = calloc(d->nworkers + 1, sizeof *children)) == NULL ||
	    (drainers = calloc(d->nworkers, sizeof *drainers)) == NULL)
		fatal("event=out-of-memory");
	for (unsigned i = 0; i <= d->nworkers; i++)
		if (spawn(d, i) < 0)
			fatal("event=start-failed error=\"cannot start child processes\"");
	log_event(LOG_INFO, "event=start pid=%ld workers=%u listeners=%zu config=\"%s\" user=%s",
		  (long)getpid(), d->nworkers, d->nsocks, d->conf.source,
		  d->drop ? d->conf.user : "(not root: no privilege drop)");
	print_ready(d);

	for (;;) {
		struct timespec ts = { 0, 200 * 1000000 };
		int sig = sigtimedwait(&parent_sigs, NULL, &ts);

		if (sig == SIGTERM || sig == SIGINT) {
			log_event(LOG_INFO, "event=stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
			stop_children(d, true);
			log_event(LOG_INFO, "event=stopped");
			close(lockfd);
			return 0;
		}
		if (sig == SIGHUP)
			reload(d);
		reap(d, false);
		restart_due(d);
	}
}
