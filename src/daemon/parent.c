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

#include "../lib/log.h"
#include "../lib/tls.h"
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
	static const char *const dirs[] = { "", "spool", "spool/queue", "spool/corrupt", "mail" };
	char p[CONF_PATH_MAX + 32];

	if (!d->drop)
		return;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", d->conf.data_dir, dirs[i]);
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

/* Pass 1: every address to listen on, each checked with a plain bind
 * (no SO_REUSEPORT) so that a port another program or another ternd holds
 * is an error at start, never a silent share. */
static size_t plan_listeners(struct daemon *d, struct bind_addr **out)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	struct bind_addr *v = NULL;
	size_t n = 0;

	for (size_t i = 0; i < d->conf.nlisteners; i++) {
		const struct listener_conf *lc = &d->conf.listeners[i];
		bool any = lc->addr[0] == '\0';

		for (int f = 0; f < 2; f++) {
			struct bind_addr b = { .lc = lc };
			int err = 0, probe;

			if (!any && (strchr(lc->addr, ':') != NULL) != (fams[f] == AF_INET6))
				continue;
			addr_name(b.name, sizeof b.name, fams[f], lc);
			if ((b.len = fill_addr(&b.ss, fams[f], lc->addr, lc->port)) == 0)
				fatal("event=start-failed error=\"bad listen address %s\"", b.name);
			if ((probe = make_socket(&b.ss, b.len, false, &err)) < 0) {
				if (any && fams[f] == AF_INET6 &&
				    (err == EAFNOSUPPORT || err == EADDRNOTAVAIL)) {
					log_event(LOG_WARN, "event=ipv6-unavailable port=%u", lc->port);
					continue;
				}
				fatal("event=start-failed error=\"cannot listen on %s (%s): %s%s\"",
				      b.name, conf_role_name(lc->role), strerror(err),
				      err == EADDRINUSE ? "; another server holds the port (ss -ltnp)" :
				      err == EACCES ? "; ports below 1024 need root" : "");
			}
			close(probe);
			if ((v = realloc(v, (n + 1) * sizeof *v)) == NULL)
				fatal("event=out-of-memory");
			v[n++] = b;
		}
	}
	if (n == 0)
		fatal("event=start-failed error=\"no listener could be opened\"");
	*out = v;
	return n;
}

/* Pass 2: one socket per worker per address, all with SO_REUSEPORT, so
 * the kernel spreads connections over the workers. */
static void bind_listeners(struct daemon *d)
{
	struct bind_addr *v;
	size_t n = plan_listeners(d, &v);

	d->nsocks = n;
	if ((d->socks = calloc(d->nworkers * n, sizeof *d->socks)) == NULL)
		fatal("event=out-of-memory");
	for (unsigned w = 0; w < d->nworkers; w++)
		for (size_t k = 0; k < n; k++) {
			struct listen_sock *ls = &d->socks[(size_t)w * n + k];
			int err = 0;

			ls->lc = v[k].lc;
			snprintf(ls->name, sizeof ls->name, "%s", v[k].name);
			if ((ls->fd = make_socket(&v[k].ss, v[k].len, true, &err)) < 0)
				fatal("event=start-failed error=\"cannot listen on %s: %s\"",
				      v[k].name, strerror(err));
		}
	free(v);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Children: index 0..nworkers-1 are workers, nworkers is the queue. */
struct child {
	pid_t pid;
	uint64_t started_ms;
	uint64_t restart_at_ms;	/* 0: not waiting for a restart */
};

static struct child *children;
static sigset_t parent_sigs;

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
			worker_main(d, idx);
		queue_main(d);
	}
	children[idx].pid = pid;
	children[idx].started_ms = mono_ms();
	children[idx].restart_at_ms = 0;
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

/* Collect dead children; schedule their restart (at once, or after a
 * pause if they died right after starting, so a crash loop cannot spin). */
static void reap(struct daemon *d, bool stopping)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i <= d->nworkers; i++) {
			char name[32];

			if (children[i].pid != pid)
				continue;
			children[i].pid = 0;
			if (WIFSIGNALED(status))
				log_event(stopping ? LOG_INFO : LOG_ERROR,
					  "event=child-exit child=%s pid=%ld signal=%d%s",
					  child_name(d, i, name, sizeof name), (long)pid,
					  WTERMSIG(status), stopping ? "" : " action=restart");
			else
				log_event(stopping ? LOG_INFO : LOG_ERROR,
					  "event=child-exit child=%s pid=%ld status=%d%s",
					  child_name(d, i, name, sizeof name), (long)pid,
					  WEXITSTATUS(status), stopping ? "" : " action=restart");
			if (i < d->nworkers)
				connlimit_reset_worker(d->connlimit, i);
			if (!stopping) {
				bool quick = mono_ms() - children[i].started_ms < RESTART_BACKOFF_MS;
				children[i].restart_at_ms = mono_ms() + (quick ? RESTART_BACKOFF_MS : 0);
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
	int n = 0;

	for (unsigned i = 0; i <= d->nworkers; i++)
		n += children[i].pid > 0;
	return n;
}

static void stop_all(struct daemon *d)
{
	uint64_t deadline = mono_ms() + STOP_WAIT_MS;

	for (unsigned i = 0; i <= d->nworkers; i++)
		if (children[i].pid > 0)
			kill(children[i].pid, SIGTERM);
	while (live_children(d) > 0 && mono_ms() < deadline) {
		struct timespec ts = { 0, 100 * 1000000 };

		sigtimedwait(&parent_sigs, NULL, &ts);
		reap(d, true);
	}
	for (unsigned i = 0; i <= d->nworkers; i++)
		if (children[i].pid > 0) {
			log_event(LOG_WARN, "event=child-kill pid=%ld", (long)children[i].pid);
			kill(children[i].pid, SIGKILL);
		}
	reap(d, true);
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
		printf("  %-15s %-22s %s\n", conf_role_name(lc->role), d->socks[k].name,
		       lc->role == ROLE_SUBMISSIONS ? "(implicit TLS; AUTH not yet available)" :
		       lc->role == ROLE_MX ? "(mail for local domains; STARTTLS offered)" :
		       "(STARTTLS required; AUTH not yet available)");
	}
	printf("  local domains:");
	for (size_t i = 0; i < c->ndomains; i++)
		printf(" %s", c->domains[i]);
	printf("\n  mail is delivered to %s\n", c->maildir);
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
	resolve_user(d);
	own_data_dir(d);
	if (spool_recover(d->conf.data_dir) < 0)
		fatal("event=start-failed error=\"cannot read spool in %s\"", d->conf.data_dir);
	if (d->conf.users_file[0] != '\0' &&
	    users_load(&d->users, d->conf.users_file, err, sizeof err) < 0)
		fatal("event=start-failed error=\"%s\"", err);
	if ((d->tls = tls_server_ctx(&d->conf, err, sizeof err)) == NULL)
		fatal("event=start-failed error=\"%s\"", err);
	if ((d->authlimit = authlimit_create()) == NULL)
		fatal("event=start-failed error=\"cannot map shared memory\"");
	if ((d->connlimit = connlimit_create(d->nworkers)) == NULL)
		fatal("event=start-failed error=\"cannot map shared memory\"");
	bind_listeners(d);

	/* Block the signals the parent waits for before any child exists. */
	sigemptyset(&parent_sigs);
	sigaddset(&parent_sigs, SIGCHLD);
	sigaddset(&parent_sigs, SIGTERM);
	sigaddset(&parent_sigs, SIGINT);
	sigaddset(&parent_sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &parent_sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((children = calloc(d->nworkers + 1, sizeof *children)) == NULL)
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
			stop_all(d);
			log_event(LOG_INFO, "event=stopped");
			close(lockfd);
			return 0;
		}
		if (sig == SIGHUP)
			log_event(LOG_WARN, "event=reload-unsupported hint=\"restart ternd to apply a new configuration\"");
		reap(d, false);
		restart_due(d);
	}
}
