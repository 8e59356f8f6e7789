/*
 * daemon.h - ternd's processes: the parent, the workers, the queue runner.
 *
 * DESCRIPTION
 *	parent_run() (parent.c) is everything after the configuration is
 *	read: it takes the data directory lock, creates and recovers the
 *	spool, binds every listener once per worker (SO_REUSEPORT, so the
 *	kernel spreads connections), forks one worker per core and one queue
 *	process, and restarts any that dies. SIGHUP reloads: a new generation
 *	of workers on the same sockets with the new configuration, users and
 *	certificates, while the old generation finishes its sessions. It parses no network input and
 *	keeps root (for reload, later) while every child drops to the
 *	unprivileged user (privdrop.c) before it touches a socket.
 *
 *	worker_main() (worker.c) runs the SMTP sessions of its own sockets on
 *	its own libuv loop; queue_main() runs the queue runner (spool/sched.h).
 *	Both return only to exit.
 */
#ifndef TERN_DAEMON_H
#define TERN_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "../conf/conf.h"
#include "../smtp/authlimit.h"
#include "../smtp/connlimit.h"
#include "users.h"

struct listen_sock {
	int fd;
	const struct listener_conf *lc;
	char name[80];		/* "0.0.0.0:25" for messages */
};

struct dmarc_psl;

struct daemon {
	struct conf conf;
	const char *conf_file;		/* -f, read again on SIGHUP; NULL: built-in defaults */
	const char *data_override;	/* -d */
	char user_asked[64];		/* `user` as configured, before any fallback */
	unsigned generation;		/* reloads so far */
	struct users users;
	struct connlimit *connlimit;
	struct authlimit *authlimit;
	SSL_CTX *tls;			/* made before fork: every child shares keys and tickets */
	uint8_t auth_secret[32];	/* DATA_DIR/auth.secret: SCRAM's made-up salts stay stable */
	char relay_pass[256];		/* relay ... auth USER FILE: FILE's first line */
	struct dmarc_psl *psl;		/* public_suffix_list, loaded before fork; NULL: no DMARC */
	unsigned nworkers;
	struct listen_sock *socks;	/* nworkers rows of nsocks */
	size_t nsocks;
	pid_t *worker_pids;
	pid_t queue_pid;
	bool drop;			/* started as root: children drop to uid/gid */
	uid_t uid;
	gid_t gid;
};

int parent_run(struct daemon *d);
/* slot: this worker's row in connlimit and its byte in queue ids and
 * session ids, unique among the workers running at one time. */
_Noreturn void worker_main(struct daemon *d, unsigned index, unsigned slot);
_Noreturn void queue_main(struct daemon *d);
/* In a child: enter data_dir (paths become relative to it), become the
 * unprivileged user, or exit. */
void privdrop(struct daemon *d, const char *proc);

#endif
