/*
 * test_control.c - cmocka tests for spool/control.c: the control socket
 * served on a libuv loop (this thread) with fake scheduler ops, and clients
 * (control_request, or raw sockets misbehaving on purpose) on a second
 * thread. The client thread only records what it saw; the assertions run on
 * the main thread after it is joined.
 *
 * The peer-credential refusal needs a second uid: those checks run only as
 * root (a forked child drops to nobody), and are skipped otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "spool/control.h"

#define MAX_REPLIES 24
#define NOBODY 65534

struct fix;
typedef void (*client_fn)(struct fix *f);

struct fix {
	char dir[64];
	char path[128];
	uv_loop_t loop;
	struct control ctl;
	struct control_ops ops;
	uv_async_t done;
	bool stopped;
	client_fn client;
	/* what the fake ops saw (loop thread) */
	int calls;
	char op[16];
	char arg[300];
	int ret;		/* what the ops return */
	const char *err;	/* their err words when ret < 0 */
	/* what the client saw (client thread) */
	int nreplies;
	int rc[MAX_REPLIES];
	int err_no[MAX_REPLIES];
	char reply[MAX_REPLIES][CTL_LINE_MAX + 1];
	long ms[MAX_REPLIES];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_sun(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);

	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (n < sizeof sa->sun_path)
		memcpy(sa->sun_path, path, n);
}

/* ---- fake ops --------------------------------------------------------- */

static int fake(struct fix *f, const char *op, const char *arg, char *err, size_t errlen)
{
	f->calls++;
	snprintf(f->op, sizeof f->op, "%s", op);
	snprintf(f->arg, sizeof f->arg, "%s", arg);
	if (f->ret < 0 && f->err != NULL)
		snprintf(err, errlen, "%s", f->err);
	return f->ret;
}

static int op_flush(void *arg, const char *a, char *err, size_t errlen)
{
	return fake(arg, "flush", a, err, errlen);
}

static int op_delete(void *arg, const char *a, char *err, size_t errlen)
{
	return fake(arg, "delete", a, err, errlen);
}

static int op_hold(void *arg, const char *a, char *err, size_t errlen)
{
	return fake(arg, "hold", a, err, errlen);
}

static int op_release(void *arg, const char *a, char *err, size_t errlen)
{
	return fake(arg, "release", a, err, errlen);
}

/* ---- fixture ---------------------------------------------------------- */

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof *f);

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/tern-ctl-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	chmod(f->dir, 0755);
	snprintf(f->path, sizeof f->path, "%s/control.sock", f->dir);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	f->ops = (struct control_ops){ op_flush, op_delete, op_hold, op_release };
	f->ret = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle closed */
	free(f);
	return 0;
}

static void on_stopped(struct control *c)
{
	struct fix *f = (struct fix *)((char *)c - offsetof(struct fix, ctl));

	f->stopped = true;
}

static void on_client_done(uv_async_t *a)
{
	struct fix *f = a->data;

	control_stop(&f->ctl, on_stopped);
	uv_close((uv_handle_t *)a, NULL);
}

static void *client_thread(void *arg)
{
	struct fix *f = arg;

	f->client(f);
	uv_async_send(&f->done);
	return NULL;
}

static void start(struct fix *f)
{
	assert_int_equal(control_start(&f->ctl, &f->loop, f->path, &f->ops, f), 0);
}

/* Serve until the client function returns, then stop and drain the loop. */
static void serve(struct fix *f, client_fn fn)
{
	pthread_t t;

	f->client = fn;
	f->done.data = f;
	assert_int_equal(uv_async_init(&f->loop, &f->done, on_client_done), 0);
	assert_int_equal(pthread_create(&t, NULL, client_thread, f), 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	pthread_join(t, NULL);
	assert_true(f->stopped);
	assert_int_equal(access(f->path, F_OK), -1); /* control_stop unlinked it */
}

/* One control_request, recorded. */
static void req(struct fix *f, const char *line)
{
	int i = f->nreplies++;
	uint64_t t0 = now_ms();

	f->rc[i] = control_request(f->path, line, f->reply[i], sizeof f->reply[i], 5000);
	f->err_no[i] = f->rc[i] < 0 ? errno : 0;
	f->ms[i] = (long)(now_ms() - t0);
}

/* A raw connection: connect, send n octets of p (maybe none), optionally
 * shut the write side, read one reply line (or until EOF). */
static int raw_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	set_sun(&sa, path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void raw_read_reply(struct fix *f, int fd)
{
	int i = f->nreplies++;
	size_t got = 0;
	uint64_t t0 = now_ms();
	struct timeval tv = { 10, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	f->rc[i] = -1;
	while (got < CTL_LINE_MAX) {
		ssize_t r = recv(fd, f->reply[i] + got, CTL_LINE_MAX - got, 0);

		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(f->reply[i], '\n', got) != NULL) {
			f->rc[i] = 0;
			break;
		}
	}
	f->reply[i][got] = '\0';
	f->ms[i] = (long)(now_ms() - t0);
}

static void raw(struct fix *f, const char *p, size_t n, bool shut)
{
	int fd = raw_connect(f->path);

	if (fd < 0) {
		f->rc[f->nreplies++] = -2;
		return;
	}
	if (n > 0)
		send(fd, p, n, MSG_NOSIGNAL);
	if (shut)
		shutdown(fd, SHUT_WR);
	raw_read_reply(f, fd);
	close(fd);
}

/* ---- requests through control_request ---------------------------------- */

static void c_flush_all(struct fix *f)
{
	req(f, "FLUSH");
}

static void test_flush_all(void **state)
{
	struct fix *f = *state;

	f->ret = 3;
	start(f);
	serve(f, c_flush_all);
	assert_int_equal(f->rc[0], 0);
	assert_string_equal(f->reply[0], "OK 3 messages scheduled for delivery");
	assert_int_equal(f->calls, 1);
	assert_string_equal(f->op, "flush");
	assert_string_equal(f->arg, "");
}

static void c_flush_domain(struct fix *f)
{
	req(f, "flush @Example.COM");
}

static void test_flush_domain_lowered(void **state)
{
	struct fix *f = *state;

	f->ret = 1;
	start(f);
	serve(f, c_flush_domain);
	assert_string_equal(f->reply[0], "OK 1 message scheduled for delivery");
	assert_string_equal(f->op, "flush");
	assert_string_equal(f->arg, "@example.com");
}

static void c_etrn(struct fix *f)
{
	req(f, "ETRN @example.org");
}

/* ETRN (RFC 1985) from a worker is flush("@domain"). */
static void test_etrn_is_flush_domain(void **state)
{
	struct fix *f = *state;

	f->ret = 2;
	start(f);
	serve(f, c_etrn);
	assert_string_equal(f->reply[0], "OK 2 messages scheduled for delivery");
	assert_string_equal(f->op, "flush");
	assert_string_equal(f->arg, "@example.org");
}

static void c_delete(struct fix *f)
{
	req(f, "DELETE 19A2B3C4D5E6F0100002");
}

static void c_hold(struct fix *f)
{
	req(f, "HOLD 19A2B3C4D5E6F0100002");
}

static void c_release(struct fix *f)
{
	req(f, "RELEASE 19A2B3C4D5E6F0100002");
}

static void test_delete_hold_release(void **state)
{
	static const struct {
		client_fn fn;
		const char *op, *reply;
	} cases[] = {
		{ c_delete, "delete", "OK 1 message deleted" },
		{ c_hold, "hold", "OK 1 message held" },
		{ c_release, "release", "OK 1 message released" },
	};
	struct fix *f = *state;

	f->ret = 1;
	for (size_t i = 0; i < 3; i++) {
		start(f);
		f->stopped = false;
		f->nreplies = 0;
		serve(f, cases[i].fn);
		assert_int_equal(f->rc[0], 0);
		assert_string_equal(f->reply[0], cases[i].reply);
		assert_string_equal(f->op, cases[i].op);
		assert_string_equal(f->arg, "19A2B3C4D5E6F0100002");
	}
	assert_int_equal(f->calls, 3);
}

/* An op's failure goes back as ERR with its words, made one safe line;
 * and it is logged with the command and the peer. */
static void test_op_error_and_log(void **state)
{
	struct fix *f = *state;
	char logpath[160], text[4096];
	int saved = dup(STDERR_FILENO), lfd;
	ssize_t n;

	snprintf(logpath, sizeof logpath, "%s/log", f->dir);
	lfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(lfd >= 0 && saved >= 0);
	f->ret = -1;
	f->err = "no such\r\nmessage";
	dup2(lfd, STDERR_FILENO);
	start(f);
	serve(f, c_hold);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(f->rc[0], 0);
	assert_string_equal(f->reply[0], "ERR no such??message");
	n = pread(lfd, text, sizeof text - 1, 0);
	close(lfd);
	unlink(logpath);
	assert_true(n > 0);
	text[n] = '\0';
	assert_non_null(strstr(text, "event=control-listen path="));
	assert_non_null(strstr(text, "event=control cmd=hold arg=19A2B3C4D5E6F0100002 peer_uid="));
	assert_non_null(strstr(text, " result=error reason=\"no such\\x0d\\x0amessage\""));
	if (geteuid() == 0)
		assert_non_null(strstr(text, "peer_uid=0 "));
}

static void test_op_missing(void **state)
{
	struct fix *f = *state;

	f->ops.release = NULL;
	start(f);
	serve(f, c_release);
	assert_string_equal(f->reply[0], "ERR not supported");
	assert_int_equal(f->calls, 0);
}

static void c_bad_requests(struct fix *f)
{
	req(f, "BOGUS");
	req(f, "HOLD abc/../x");
	req(f, "ETRN example.org");
	req(f, "FLUSH  ABC");
}

static void test_bad_requests(void **state)
{
	struct fix *f = *state;

	start(f);
	serve(f, c_bad_requests);
	assert_string_equal(f->reply[0], "ERR unknown command");
	assert_string_equal(f->reply[1], "ERR bad queue id");
	assert_string_equal(f->reply[2], "ERR bad domain");
	assert_string_equal(f->reply[3], "ERR malformed request");
	assert_int_equal(f->calls, 0);
}

/* ---- misbehaving clients ----------------------------------------------- */

static void c_long_lines(struct fix *f)
{
	char line[1200];

	memset(line, 'A', sizeof line);
	memcpy(line, "HOLD ", 5);
	raw(f, line, 600, false);		/* no LF in 512 octets */
	line[511] = '\n';
	raw(f, line, 512, false);		/* 511 + LF: the longest line; bad id */
	line[511] = 'A';
	line[512] = '\n';
	raw(f, line, 513, false);		/* 512 + LF: one too many */
}

static void test_line_too_long(void **state)
{
	struct fix *f = *state;

	start(f);
	serve(f, c_long_lines);
	assert_string_equal(f->reply[0], "ERR line too long\n");
	assert_string_equal(f->reply[1], "ERR bad queue id\n");
	assert_string_equal(f->reply[2], "ERR line too long\n");
	assert_int_equal(f->calls, 0);
}

static void c_eof_early(struct fix *f)
{
	raw(f, "FLUSH", 5, true);
}

static void test_eof_before_lf(void **state)
{
	struct fix *f = *state;

	start(f);
	serve(f, c_eof_early);
	assert_string_equal(f->reply[0], "ERR incomplete request\n");
	assert_int_equal(f->calls, 0);
}

static void c_silent(struct fix *f)
{
	raw(f, "FLU", 3, false);
}

static void test_server_timeout(void **state)
{
	struct fix *f = *state;

	start(f);
	f->ctl.timeout_ms = 300;
	serve(f, c_silent);
	assert_string_equal(f->reply[0], "ERR timeout\n");
	assert_true(f->ms[0] >= 250 && f->ms[0] < 3000);
	assert_int_equal(f->calls, 0);
}

/* Bytes after the LF are not a second request. */
static void c_two_lines(struct fix *f)
{
	raw(f, "FLUSH\nDELETE ABC\n", 17, false);
}

static void test_one_request_per_connection(void **state)
{
	struct fix *f = *state;

	f->ret = 0;
	start(f);
	serve(f, c_two_lines);
	assert_string_equal(f->reply[0], "OK 0 messages scheduled for delivery\n");
	assert_int_equal(f->calls, 1);
	assert_string_equal(f->op, "flush");
}

static void c_busy(struct fix *f)
{
	int fds[CONTROL_MAX_CLIENTS];
	uint64_t deadline;

	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		fds[i] = raw_connect(f->path);
	req(f, "FLUSH"); /* the 17th */
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* once the server has noticed, there is room again */
	deadline = now_ms() + 5000;
	do {
		f->nreplies = 1;
		req(f, "FLUSH");
	} while (strncmp(f->reply[1], "OK", 2) != 0 && now_ms() < deadline &&
		 poll(NULL, 0, 20) == 0);
}

static void test_at_most_16_clients(void **state)
{
	struct fix *f = *state;

	f->ret = 5;
	start(f);
	serve(f, c_busy);
	assert_int_equal(f->rc[0], 0);
	assert_string_equal(f->reply[0], "ERR busy");
	assert_string_equal(f->reply[1], "OK 5 messages scheduled for delivery");
}

/* ---- the socket file ---------------------------------------------------- */

static void c_nothing(struct fix *f)
{
	(void)f;
}

static void test_socket_mode_0660(void **state)
{
	struct fix *f = *state;
	mode_t old = umask(0);
	struct stat st;

	start(f);
	umask(old);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_gid, getegid());
	serve(f, c_nothing);
}

static void test_stale_socket_replaced(void **state)
{
	struct fix *f = *state;
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	set_sun(&sa, f->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd); /* what a crash leaves */
	start(f);
	serve(f, c_flush_all);
	assert_string_equal(f->reply[0], "OK 0 messages scheduled for delivery");
}

static void test_not_a_socket_kept(void **state)
{
	struct fix *f = *state;
	struct stat st;
	int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(control_start(&f->ctl, &f->loop, f->path, &f->ops, f), -EEXIST);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, 1);
	unlink(f->path);
	/* and a path that does not fit sun_path */
	assert_int_equal(control_start(&f->ctl, &f->loop,
				       "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/c.sock",
				       &f->ops, f),
			 -ENAMETOOLONG);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* control_stop removes only the socket it bound. */
static void c_replace_path(struct fix *f)
{
	int fd;

	unlink(f->path);
	fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

static void test_stop_keeps_someone_elses_file(void **state)
{
	struct fix *f = *state;
	pthread_t t;

	start(f);
	f->client = c_replace_path;
	f->done.data = f;
	uv_async_init(&f->loop, &f->done, on_client_done);
	pthread_create(&t, NULL, client_thread, f);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	pthread_join(t, NULL);
	assert_true(f->stopped);
	assert_int_equal(access(f->path, F_OK), 0);
}

/* ---- control_request against no server, a mute one, bad input ---------- */

static void test_request_no_socket(void **state)
{
	struct fix *f = *state;
	char reply[CTL_LINE_MAX];

	assert_int_equal(control_request(f->path, "FLUSH", reply, sizeof reply, 1000), -1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(reply, "No such file or directory");
}

static void test_request_refused(void **state)
{
	struct fix *f = *state;
	struct sockaddr_un sa;
	char reply[CTL_LINE_MAX];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	set_sun(&sa, f->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	assert_int_equal(control_request(f->path, "FLUSH", reply, sizeof reply, 1000), -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_string_equal(reply, "Connection refused");
}

/* A server that accepts (the kernel queues the connection) and never answers. */
static void test_request_timeout(void **state)
{
	struct fix *f = *state;
	struct sockaddr_un sa;
	char reply[CTL_LINE_MAX];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	uint64_t t0;
	long ms;

	set_sun(&sa, f->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 4), 0);
	t0 = now_ms();
	assert_int_equal(control_request(f->path, "FLUSH", reply, sizeof reply, 300), -1);
	ms = (long)(now_ms() - t0);
	assert_int_equal(errno, ETIMEDOUT);
	assert_string_equal(reply, "timed out waiting for the reply");
	assert_true(ms >= 290 && ms < 3000);
	close(fd);
}

/* A server that closes without a reply, or answers too much. */
static void *close_server(void *arg)
{
	int lfd = *(int *)arg, c;
	char junk[CTL_LINE_MAX + 100];

	memset(junk, 'x', sizeof junk);
	if ((c = accept(lfd, NULL, NULL)) >= 0)
		close(c);
	if ((c = accept(lfd, NULL, NULL)) >= 0) {
		send(c, junk, sizeof junk, MSG_NOSIGNAL);
		close(c);
	}
	return NULL;
}

static void test_request_bad_server(void **state)
{
	struct fix *f = *state;
	struct sockaddr_un sa;
	char reply[CTL_LINE_MAX];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	pthread_t t;

	set_sun(&sa, f->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 4), 0);
	pthread_create(&t, NULL, close_server, &fd);
	assert_int_equal(control_request(f->path, "FLUSH", reply, sizeof reply, 3000), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_string_equal(reply, "connection closed before the reply");
	assert_int_equal(control_request(f->path, "FLUSH", reply, sizeof reply, 3000), -1);
	assert_int_equal(errno, EPROTO);
	assert_string_equal(reply, "reply too long");
	pthread_join(t, NULL);
	close(fd);
}

static void test_request_bad_input(void **state)
{
	struct fix *f = *state;
	char reply[CTL_LINE_MAX], line[CTL_LINE_MAX + 1];

	(void)f;
	assert_int_equal(control_request(f->path, "FLUSH\nHOLD X", reply, sizeof reply, 100), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(control_request(f->path, "", reply, sizeof reply, 100), -1);
	assert_int_equal(errno, EINVAL);
	memset(line, 'A', CTL_LINE_MAX);
	line[CTL_LINE_MAX] = '\0';
	assert_int_equal(control_request(f->path, line, reply, sizeof reply, 100), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(control_request("", "FLUSH", reply, sizeof reply, 100), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	/* a small reply buffer: cut, still NUL-terminated */
	assert_int_equal(control_request(f->path, "FLUSH", reply, 5, 100), -1);
	assert_int_equal(strlen(reply), 4);
}

/* ---- who may use it (root only: a child becomes nobody) ------------------ */

/* In a forked child: become nobody, ask, write "rc errno reply" to wfd. */
static void as_nobody(const char *path, int wfd)
{
	char reply[CTL_LINE_MAX], out[CTL_LINE_MAX + 32];
	gid_t g = NOBODY;
	int rc, n;

	if (setgroups(1, &g) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) < 0)
		_exit(3);
	rc = control_request(path, "FLUSH", reply, sizeof reply, 3000);
	n = snprintf(out, sizeof out, "%d %d %s", rc, rc < 0 ? errno : 0, reply);
	if (write(wfd, out, (size_t)n) != n)
		_exit(4);
	_exit(0);
}

static void c_nobody(struct fix *f)
{
	int p[2], status, i = f->nreplies++;
	ssize_t n;
	pid_t pid;

	if (pipe(p) < 0)
		return;
	if ((pid = fork()) == 0) {
		close(p[0]);
		as_nobody(f->path, p[1]);
	}
	close(p[1]);
	n = read(p[0], f->reply[i], sizeof f->reply[i] - 1);
	f->reply[i][n > 0 ? n : 0] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
}

static void c_nobody_twice(struct fix *f)
{
	c_nobody(f);		/* mode 0660: the file keeps nobody out */
	chmod(f->path, 0666);
	c_nobody(f);		/* through the file: SO_PEERCRED refuses */
}

static void test_peer_refused(void **state)
{
	struct fix *f = *state;
	char want[64];

	if (geteuid() != 0)
		skip();
	chmod(f->dir, 0755);
	start(f);
	serve(f, c_nobody_twice);
	snprintf(want, sizeof want, "-1 %d Permission denied", EACCES);
	assert_string_equal(f->reply[0], want);
	assert_string_equal(f->reply[1], "0 0 ERR permission denied");
	assert_int_equal(f->calls, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_flush_all),
		T(test_flush_domain_lowered),
		T(test_etrn_is_flush_domain),
		T(test_delete_hold_release),
		T(test_op_error_and_log),
		T(test_op_missing),
		T(test_bad_requests),
		T(test_line_too_long),
		T(test_eof_before_lf),
		T(test_server_timeout),
		T(test_one_request_per_connection),
		T(test_at_most_16_clients),
		T(test_socket_mode_0660),
		T(test_stale_socket_replaced),
		T(test_not_a_socket_kept),
		T(test_stop_keeps_someone_elses_file),
		T(test_request_no_socket),
		T(test_request_refused),
		T(test_request_timeout),
		T(test_request_bad_server),
		T(test_request_bad_input),
		T(test_peer_refused),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
