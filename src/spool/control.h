/*
 * control.h - the queue process's control socket: `tern queue flush|delete|
 * hold|release` and ETRN (RFC 1985) from the SMTP workers.
 *
 * SYNOPSIS
 *	server, in the queue process, on its loop:
 *	static struct control ctl;
 *	control_start(&ctl, loop, "control.sock", &ops, sched);
 *	control_stop(&ctl, on_stopped);
 *
 *	client, anywhere (blocking; never on an event loop thread):
 *	char reply[CTL_LINE_MAX];
 *	control_request("/var/lib/tern/control.sock", "HOLD 0123ABC", reply,
 *			sizeof reply, 10000);
 *
 * DESCRIPTION
 *	The queue process owns the socket DATA_DIR/control.sock
 *	(CONTROL_SOCK_NAME). It runs chdir'ed into data_dir as the
 *	unprivileged user, so it can bind the relative path "control.sock",
 *	which also keeps clear of sun_path's 107-octet limit that a deep
 *	absolute data_dir would pass (control_start: -ENAMETOOLONG). Who may
 *	use it, twice over:
 *	  - the file: mode 0660 (set with chmod after bind and before listen,
 *	    so the socket never accepts while more open; under the children's
 *	    umask 077 it is 0700 until then), owner and group the queue
 *	    process's uid and gid (the daemon user's group, e.g. tern);
 *	  - the peer: its SO_PEERCRED uid must be 0 or the queue process's own
 *	    uid (which is also what the SMTP workers run as), or its primary
 *	    gid the queue process's (the tern group); anyone else who gets
 *	    through the file mode (a supplementary member of the group) gets
 *	    "ERR permission denied" and a log line.
 *	A stale socket left by a crash is unlinked before bind; anything else
 *	at the path (a file, a directory) is not touched and control_start
 *	fails. control_stop unlinks the path only if it is still the socket
 *	this control bound (same device and inode).
 *
 *	Each connection: read one request line (proto/ctl.h) of at most
 *	CTL_LINE_MAX octets within timeout_ms (CONTROL_TIMEOUT_MS), call the
 *	matching op, write one reply line, close. Bytes after the LF are
 *	ignored. At most CONTROL_MAX_CLIENTS connections at once; one more is
 *	answered "ERR busy" and closed. Errors without a request:
 *	"ERR line too long", "ERR timeout", "ERR incomplete request" (EOF
 *	before the LF), "ERR permission denied", and the parser's words.
 *
 *	The ops are the scheduler's (spool/sched.c). They run on the loop
 *	thread, synchronously, and must not block: each returns the number
 *	of messages affected (>= 0), or -1 with a short reason in err (for
 *	example "no such message"; sent to the client after "ERR ", so
 *	printable ASCII without a line break, anything else becomes '?').
 *	A NULL op answers "ERR not supported".
 *	  FLUSH, FLUSH qid, FLUSH @domain -> flush(arg, "" | qid | "@domain")
 *	  ETRN @domain                    -> flush(arg, "@domain")
 *	  DELETE qid / HOLD qid / RELEASE qid -> delete_msg / hold / release
 *	Whether "@example.com" also covers subdomains is the scheduler's
 *	choice (RFC 1985 says it does).
 *
 *	Every request is one log line:
 *	  event=control cmd=flush arg=@example.com peer_uid=0 peer_pid=4242
 *	      result=ok n=3
 *	  event=control cmd=hold arg=0123ABC peer_uid=0 peer_pid=4242
 *	      result=error reason="no such message"
 *	  event=control-refused peer_uid=1000 peer_pid=77 (and reason=... for
 *	      malformed or timed-out requests; the request bytes are never
 *	      logged unless they parsed).
 *
 *	control_request: connect to sock_path, send line (the request without
 *	its LF; at most CTL_LINE_MAX - 1 octets, no LF inside), read the reply
 *	line, all against one deadline of timeout_ms (poll(2) on a
 *	non-blocking socket; a full listen backlog is retried until then).
 *	Thread-safe: SMTP workers call it from the libuv thread pool for ETRN.
 *	Returns 0 with the reply line, without its LF, in reply (cut to cap);
 *	it did not check the reply's syntax (ctl_parse_reply does).
 *
 * DIAGNOSTICS
 *	control_start returns 0, or a negative errno value (-EADDRINUSE,
 *	-EACCES, -ENAMETOOLONG, -EEXIST for a non-socket at path...; for
 *	uv_strerror() or strerror(-rc)); no socket file is left then, and
 *	at most the listener handle is closing on the loop (keep c alive until
 *	the loop has run once).
 *	control_request returns -1 with errno set and words in reply: for a
 *	failed connect, strerror's words ("Permission denied", "No such file
 *	or directory", "Connection refused"); after connecting, ETIMEDOUT
 *	"timed out waiting for the reply", ECONNRESET "connection closed
 *	before the reply", EPROTO "reply too long"; EINVAL for a line that
 *	cannot be sent, ENAMETOOLONG for a path that does not fit sun_path.
 */
#ifndef TERN_CONTROL_H
#define TERN_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "../proto/ctl.h"

#define CONTROL_MAX_CLIENTS 16
#define CONTROL_TIMEOUT_MS 5000
#define CONTROL_SOCK_MODE 0660
#define CONTROL_SOCK_NAME "control.sock"	/* in data_dir */

struct control_ops {
	/* each returns the number of messages affected (>= 0) or -1 with err filled */
	int (*flush)(void *arg, const char *qid_or_domain /* "" all, "@domain", or a qid */,
		     char *err, size_t errlen);
	int (*delete_msg)(void *arg, const char *qid, char *err, size_t errlen);
	int (*hold)(void *arg, const char *qid, char *err, size_t errlen);
	int (*release)(void *arg, const char *qid, char *err, size_t errlen);
};

struct control_client;

struct control {
	uv_loop_t *loop;
	uv_pipe_t listener;
	const struct control_ops *ops;
	void *arg;
	char path[108];			/* as bound (sun_path) */
	dev_t dev;			/* of the socket file we bound */
	ino_t ino;
	unsigned timeout_ms;		/* CONTROL_TIMEOUT_MS; tests may lower it after start */
	struct control_client *clients;	/* connections being served; owned here */
	unsigned nclients;		/* counted against CONTROL_MAX_CLIENTS */
	unsigned open;			/* listener + clients not yet freed */
	bool accept_pending;		/* a connection waits for memory to accept it */
	bool stopping;
	void (*on_stopped)(struct control *c);
};

int control_start(struct control *c, uv_loop_t *loop, const char *path,
		  const struct control_ops *ops, void *arg);
/* Stop listening, drop every connection, unlink the socket; done (may be
 * NULL) runs from the loop once every handle is closed. Only after a
 * successful control_start. */
void control_stop(struct control *c, void (*done)(struct control *c));

int control_request(const char *sock_path, const char *line, char *reply, size_t cap,
		    unsigned timeout_ms);

#endif
