/*
 * test_dovecot_client.c - cmocka tests for daemon/dovecot_client.c against a
 * scripted fake Dovecot on a UNIX socket (a thread), and, when
 * TERN_DOVECOT_SOCKET is set, one check against a real Dovecot (the probe
 * that tests/integration/test_dovecot.py runs):
 *
 *	TERN_DOVECOT_SOCKET	the auth-client socket
 *	TERN_DOVECOT_USER	the user name
 *	TERN_DOVECOT_PASSWORD	the password
 *	TERN_DOVECOT_EXPECT	ok | bad | error
 *	TERN_DOVECOT_CANON	the canonical name expected on ok (optional)
 *	TERN_DOVECOT_ERR	a substring expected in err (optional)
 *	TERN_DOVECOT_SECURED	0 to leave "secured" out (default 1)
 *	TERN_DOVECOT_TIMEOUT_MS	default 10000
 *	TERN_DOVECOT_CLIENT_IP, TERN_DOVECOT_LOCAL_IP	default 127.0.0.1
 *
 * The probe prints one line "verdict=... canon=... ms=... err=..." (never
 * the password).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/dovecot_client.h"
#include "proto/dovecot_auth.h"

#define HANDSHAKE                                                                          \
	"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t25747\nCUID\t1\n" \
	"COOKIE\t245fa0d387096a658533053c95d826f8\nDONE\n"
#define PW "s3cret-Pw"
/* base64 of "\0alice@localhost\0s3cret-Pw" */
#define RESP "AGFsaWNlQGxvY2FsaG9zdABzM2NyZXQtUHc="
#define STEP_MS 5000 /* the fake server's bound on each wait */

/* ------------------------------------------------------------------ */
/* a scripted fake Dovecot: one connection */

struct fake {
	/* the script */
	const char *greeting;	/* sent on accept (NULL: nothing) */
	size_t greeting_len;	/* 0: strlen(greeting) */
	bool trickle;		/* greeting and reply one octet per write */
	const char *reply;	/* sent after the client's AUTH line (NULL: nothing) */
	bool close_early;	/* close right after the greeting */
	bool close_after_reply;	/* close right after the reply */
	bool no_accept;		/* listen, never accept */
	/* state */
	char dir[64];
	char path[128];
	int lfd;
	pthread_t thread;
	char got[16384]; /* what the client sent */
	size_t got_len;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void send_text(int fd, const char *p, size_t n, bool trickle)
{
	while (n > 0) {
		ssize_t w = send(fd, p, trickle ? 1 : n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
		if (trickle)
			poll(NULL, 0, 1);
	}
}

/* Read into f->got until it holds `lines` LFs, EOF, or STEP_MS. */
static void read_lines(struct fake *f, int fd, int lines)
{
	uint64_t end = now_ms() + STEP_MS;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int n = 0;
		ssize_t r;

		for (size_t i = 0; i < f->got_len; i++)
			n += f->got[i] == '\n';
		if (n >= lines || f->got_len == sizeof f->got || now_ms() >= end)
			return;
		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			continue;
		r = recv(fd, f->got + f->got_len, sizeof f->got - f->got_len, 0);
		if (r <= 0)
			return;
		f->got_len += (size_t)r;
	}
}

static void *fake_run(void *arg)
{
	struct fake *f = arg;
	struct pollfd p = { f->lfd, POLLIN, 0 };
	int fd;

	if (f->no_accept || poll(&p, 1, STEP_MS) <= 0)
		return NULL;
	fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	if (f->greeting != NULL)
		send_text(fd, f->greeting, f->greeting_len ? f->greeting_len : strlen(f->greeting),
			  f->trickle);
	if (f->close_early) {
		read_lines(f, fd, 2); /* VERSION, CPID */
	} else {
		read_lines(f, fd, 3); /* VERSION, CPID, AUTH */
		if (f->reply != NULL)
			send_text(fd, f->reply, strlen(f->reply), f->trickle);
		if (!f->close_after_reply)
			read_lines(f, fd, 1000); /* until the client closes */
	}
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f)
{
	struct sockaddr_un sa;

	strcpy(f->dir, "/tmp/tern-dcunit-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/auth-client", f->dir);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, f->path);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->thread, NULL);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
}

struct result {
	enum users_verdict v;
	char canon[USERS_NAME_MAX + 1];
	char err[256];
	uint64_t ms;
};

static struct result check_as(struct fake *f, const char *user, const char *pw, unsigned timeout_ms)
{
	struct result r;
	uint64_t t0;

	memset(&r, 0, sizeof r);
	t0 = now_ms();
	r.v = dovecot_auth_check(f->path, user, pw, strlen(pw), "198.51.100.7", "192.0.2.1", true,
				 timeout_ms, r.canon, sizeof r.canon, r.err, sizeof r.err);
	r.ms = now_ms() - t0;
	assert_null(strstr(r.err, pw)); /* never the password */
	return r;
}

/* Run the script, check as alice with PW. */
static struct result run(struct fake *f, unsigned timeout_ms)
{
	struct result r;

	fake_start(f);
	r = check_as(f, "alice@localhost", PW, timeout_ms);
	fake_stop(f);
	return r;
}

static bool sent_auth(const struct fake *f)
{
	return memmem(f->got, f->got_len, "AUTH\t", 5) != NULL;
}

#define assert_err_has(r, s)                                                  \
	do {                                                                  \
		if (strstr((r).err, (s)) == NULL)                             \
			fail_msg("err \"%s\" lacks \"%s\"", (r).err, (s));    \
	} while (0)

/* ------------------------------------------------------------------ */
/* answers */

static void test_ok_exact_bytes(void **state)
{
	struct fake f = { .greeting = HANDSHAKE, .reply = "OK\t1\tuser=alice@localhost\n" };
	char want[512];
	struct result r;

	(void)state;
	r = run(&f, 5000);
	assert_int_equal(r.v, USERS_OK);
	assert_string_equal(r.canon, "alice@localhost");
	assert_string_equal(r.err, "");
	snprintf(want, sizeof want,
		 "VERSION\t1\t1\nCPID\t%d\nAUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\t"
		 "rip=198.51.100.7\tsecured\tresp=" RESP "\n",
		 (int)gettid());
	assert_int_equal(f.got_len, strlen(want));
	assert_memory_equal(f.got, want, f.got_len);
}

static void test_ok_canonical_name(void **state)
{
	struct fake f = { .greeting = HANDSHAKE,
			  .reply = "OK\t1\tuser=alice@example.test\toriginal_user=alice@localhost\n" };
	struct result r;

	(void)state;
	r = run(&f, 5000);
	assert_int_equal(r.v, USERS_OK);
	assert_string_equal(r.canon, "alice@example.test");
}

static void test_ok_without_user_keeps_the_name(void **state)
{
	struct fake f = { .greeting = HANDSHAKE, .reply = "OK\t1\n" };
	struct result r;

	(void)state;
	r = run(&f, 5000);
	assert_int_equal(r.v, USERS_OK);
	assert_string_equal(r.canon, "alice@localhost");
}

static void test_ok_trickled_and_unknown_lines(void **state)
{
	struct fake f = { .greeting = "VERSION\t1\t3\nHELLO\tthere\nMECH\tPLAIN\nSPID\t1\nDONE\n",
			  .reply = "NOTICE\tx\nOK\t1\tuser=alice@localhost\n",
			  .trickle = true };
	struct result r;

	(void)state;
	r = run(&f, 5000);
	assert_int_equal(r.v, USERS_OK);
}

static void test_fail_is_bad_password(void **state)
{
	struct fake f = { .greeting = HANDSHAKE, .reply = "FAIL\t1\tuser=alice@localhost\n" };
	struct result r;

	(void)state;
	r = run(&f, 5000);
	assert_int_equal(r.v, USERS_BAD_PASSWORD);
	assert_string_equal(r.canon, "");
	assert_err_has(r, "refused by dovecot");
}

static void test_fail_reason_and_code_in_err(void **state)
{
	struct fake f = { .greeting = HANDSHAKE,
			  .reply = "FAIL\t1\tcode=user_disabled\treason=Account\001tlocked\n" };
	struct result r;

	(void)state;
	r = run(&f, 5000);
	assert_int_equal(r.v, USERS_BAD_PASSWORD);
	assert_err_has(r, "code=user_disabled");
	assert_err_has(r, "reason=\"Account?locked\"");
}

static void test_fail_with_odd_user_is_still_bad_password(void **state)
{
	struct fake f = { .greeting = HANDSHAKE, .reply = "FAIL\t1\tuser=a\001tb\001nc\n" };
	struct result r;

	(void)state;
	r = run(&f, 5000);
	assert_int_equal(r.v, USERS_BAD_PASSWORD);
}

static void test_fail_temp_is_error(void **state)
{
	static const char *replies[] = {
		"FAIL\t1\tuser=alice@localhost\tcode=temp_fail\n", /* Dovecot 2.3 */
		"FAIL\t1\ttemp\n",				    /* protocol 1.1 */
	};

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct fake f = { .greeting = HANDSHAKE, .reply = replies[i] };
		struct result r = run(&f, 5000);

		assert_int_equal(r.v, USERS_ERROR);
		assert_err_has(r, "temporary failure");
	}
}

/* ------------------------------------------------------------------ */
/* protocol errors: USERS_ERROR, never a login */

struct proto_case {
	const char *greeting;
	const char *reply;
	const char *err;
	bool auth_sent;
	bool close_after_reply;
};

static void test_protocol_errors(void **state)
{
	static const struct proto_case cases[] = {
		{ "VERSION\t2\t0\nMECH\tPLAIN\nDONE\n", NULL, "version 2.0", false, false },
		{ "220 mail.example ESMTP\n", NULL, "not a dovecot auth socket", false, false },
		{ "MECH\tPLAIN\nVERSION\t1\t2\nDONE\n", NULL, "first line is not VERSION", false, false },
		{ "VERSION\t1\t2\nVERSION\t1\t2\nMECH\tPLAIN\nDONE\n", NULL, "VERSION twice", false, false },
		{ "VERSION\t1\t2\nMECH\tLOGIN\tplaintext\nMECH\tCRAM-MD5\nDONE\n", NULL,
		  "does not offer PLAIN", false, false },
		{ "VERSION\t1\t2\nMECH\tPLAIN\tprivate\nDONE\n", NULL, "does not offer PLAIN", false, false },
		{ "VERSION\t1\t2\nMECH\tPLAIN\nOK\t1\nDONE\n", NULL, "before the handshake", false, false },
		{ "VERSION\t1\t2\nMECH\tPLAIN\nVERSION\t1\nDONE\n", NULL, "malformed line", false, false },
		{ "VERSION\t1\t2\nMECH\tPLAIN\nDONE\r\n", NULL, "malformed line", false, false },
		{ HANDSHAKE, "OK\tone\n", "malformed answer", true, false },
		{ HANDSHAKE, "OK\t1\tuser=a\001tb\n", "malformed answer", true, false },
		{ HANDSHAKE, "OK\t1\tuser=a\tuser=b\n", "malformed answer", true, false },
		{ HANDSHAKE, "OK\t2\tuser=alice@localhost\n", "request 2, not 1", true, false },
		{ HANDSHAKE, "CONT\t1\t\n", "CONT", true, false },
		{ HANDSHAKE, "MECH\tPLAIN\n", "after DONE", true, false },
		{ HANDSHAKE, "OK\t1\tuser=alice", "closed the connection before answering", true, true },
		{ HANDSHAKE, "", "closed the connection before answering", true, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fake f = { .greeting = cases[i].greeting,
				  .reply = cases[i].reply,
				  .close_after_reply = cases[i].close_after_reply };
		struct result r = run(&f, 5000);

		if (r.v != USERS_ERROR || strstr(r.err, cases[i].err) == NULL ||
		    sent_auth(&f) != cases[i].auth_sent)
			fail_msg("case %zu: verdict %d err \"%s\" auth sent %d", i, r.v, r.err,
				 sent_auth(&f));
		assert_string_equal(r.canon, "");
	}
}

/* auth-master and auth-userdb: VERSION, SPID, then silence. Not a timeout. */
static void test_master_socket_detected_at_once(void **state)
{
	struct fake f = { .greeting = "VERSION\t1\t2\nSPID\t123\n" };
	struct result r;

	(void)state;
	r = run(&f, 3000);
	assert_int_equal(r.v, USERS_ERROR);
	assert_err_has(r, "not an auth-client socket");
	assert_true(r.ms < 1000);
	assert_false(sent_auth(&f));
}

static void test_closed_during_handshake(void **state)
{
	struct fake f = { .greeting = "VERSION\t1\t2\nMECH\tPLAIN\n", .close_early = true };
	struct result r;

	(void)state;
	r = run(&f, 3000);
	assert_int_equal(r.v, USERS_ERROR);
	assert_err_has(r, "during the handshake");
}

static void test_overlong_line(void **state)
{
	char *big = malloc(DOVECOT_LINE_MAX + 100);
	struct fake f = { 0 };
	struct result r;

	(void)state;
	assert_non_null(big);
	strcpy(big, "VERSION\t1\t2\nCOOKIE\t");
	memset(big + strlen(big), 'f', DOVECOT_LINE_MAX + 99 - strlen(big));
	big[DOVECOT_LINE_MAX + 99] = '\0';
	f.greeting = big;
	r = run(&f, 3000);
	assert_int_equal(r.v, USERS_ERROR);
	assert_err_has(r, "longer than 16384");
	free(big);
}

/* A line of exactly DOVECOT_LINE_MAX octets is read. */
static void test_longest_line(void **state)
{
	size_t n = strlen("VERSION\t1\t2\nCOOKIE\t");
	char *big = malloc(n + DOVECOT_LINE_MAX + 64);
	struct fake f = { .reply = "OK\t1\n" };
	struct result r;

	(void)state;
	assert_non_null(big);
	strcpy(big, "VERSION\t1\t2\nCOOKIE\t");
	memset(big + n, 'f', DOVECOT_LINE_MAX - strlen("COOKIE\t"));
	strcpy(big + n + DOVECOT_LINE_MAX - strlen("COOKIE\t"), "\nMECH\tPLAIN\nDONE\n");
	f.greeting = big;
	r = run(&f, 3000);
	assert_int_equal(r.v, USERS_OK);
	free(big);
}

static void test_too_many_lines(void **state)
{
	char *many = malloc(300 * 12 + 64);
	struct fake f = { 0 };
	struct result r;

	(void)state;
	assert_non_null(many);
	strcpy(many, "VERSION\t1\t2\n");
	for (int i = 0; i < 300; i++)
		strcat(many, "MECH\tPLAIN\n");
	strcat(many, "DONE\n");
	f.greeting = many;
	r = run(&f, 3000);
	assert_int_equal(r.v, USERS_ERROR);
	assert_err_has(r, "more than 256 lines");
	free(many);
}

/* ------------------------------------------------------------------ */
/* time */

static void test_timeout_waiting_for_answer(void **state)
{
	struct fake f = { .greeting = HANDSHAKE };
	struct result r;

	(void)state;
	r = run(&f, 300);
	assert_int_equal(r.v, USERS_ERROR);
	assert_err_has(r, "timeout (300 ms) waiting for dovecot's answer");
	assert_true(r.ms >= 300 && r.ms < 1300);
	assert_true(sent_auth(&f));
}

static void test_timeout_waiting_for_handshake(void **state)
{
	struct fake f = { .greeting = "VERSION\t1\t2\n" };
	struct result r;

	(void)state;
	r = run(&f, 250);
	assert_int_equal(r.v, USERS_ERROR);
	assert_err_has(r, "timeout (250 ms) waiting for dovecot's handshake");
	assert_true(r.ms >= 250 && r.ms < 1250);
}

/* A listener that never accepts: connect succeeds (backlog), then silence. */
static void test_timeout_not_accepted(void **state)
{
	struct fake f = { .no_accept = true };
	struct result r;

	(void)state;
	r = run(&f, 200);
	assert_int_equal(r.v, USERS_ERROR);
	assert_err_has(r, "timeout");
	assert_true(r.ms < 1200);
}

/* ------------------------------------------------------------------ */
/* the socket */

static void test_socket_missing(void **state)
{
	char canon[8], err[256];

	(void)state;
	assert_int_equal(dovecot_auth_check("/nonexistent/tern/auth-client", "alice", PW, strlen(PW),
					    NULL, NULL, true, 1000, canon, sizeof canon, err,
					    sizeof err),
			 USERS_ERROR);
	assert_non_null(strstr(err, "connect /nonexistent/tern/auth-client: No such file"));
}

static void test_socket_refused(void **state)
{
	char dir[] = "/tmp/tern-dcunit-XXXXXX", path[128], canon[8], err[256];
	struct sockaddr_un sa;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/auth-client", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd); /* the file stays, nobody listens: what a stopped Dovecot leaves */
	assert_int_equal(dovecot_auth_check(path, "alice", PW, strlen(PW), NULL, NULL, true, 1000,
					    canon, sizeof canon, err, sizeof err),
			 USERS_ERROR);
	assert_non_null(strstr(err, "Connection refused"));
	unlink(path);
	rmdir(dir);
}

static void test_socket_path_too_long(void **state)
{
	char path[200], canon[8], err[256];

	(void)state;
	memset(path, 'p', sizeof path);
	path[0] = '/';
	path[sizeof path - 1] = '\0';
	assert_int_equal(dovecot_auth_check(path, "alice", PW, strlen(PW), NULL, NULL, true, 1000,
					    canon, sizeof canon, err, sizeof err),
			 USERS_ERROR);
	assert_non_null(strstr(err, "too long"));
	assert_int_equal(dovecot_auth_check("", "alice", PW, strlen(PW), NULL, NULL, true, 1000, canon,
					    sizeof canon, err, sizeof err),
			 USERS_ERROR);
	assert_int_equal(dovecot_auth_check(NULL, "alice", PW, strlen(PW), NULL, NULL, true, 1000,
					    canon, sizeof canon, err, 0),
			 USERS_ERROR);
}

/* ------------------------------------------------------------------ */
/* arguments */

static void test_unrepresentable_credentials(void **state)
{
	char canon[8], err[256], big[DOVECOT_PASS_MAX + 2], user[DOVECOT_USER_MAX + 2];
	const char *sock = "/nonexistent/tern/auth-client"; /* never reached */

	(void)state;
	assert_int_equal(dovecot_auth_check(sock, "alice", "", 0, NULL, NULL, true, 1000, canon,
					    sizeof canon, err, sizeof err),
			 USERS_BAD_PASSWORD);
	assert_non_null(strstr(err, "not representable"));
	assert_int_equal(dovecot_auth_check(sock, "alice", "a\0b", 3, NULL, NULL, true, 1000, canon,
					    sizeof canon, err, sizeof err),
			 USERS_BAD_PASSWORD);
	assert_int_equal(dovecot_auth_check(sock, "", PW, strlen(PW), NULL, NULL, true, 1000, canon,
					    sizeof canon, err, sizeof err),
			 USERS_BAD_PASSWORD);
	assert_int_equal(dovecot_auth_check(sock, NULL, PW, strlen(PW), NULL, NULL, true, 1000, canon,
					    sizeof canon, err, sizeof err),
			 USERS_BAD_PASSWORD);
	assert_int_equal(dovecot_auth_check(sock, "alice", NULL, 4, NULL, NULL, true, 1000, canon,
					    sizeof canon, err, sizeof err),
			 USERS_BAD_PASSWORD);
	memset(big, 'p', sizeof big);
	assert_int_equal(dovecot_auth_check(sock, "alice", big, DOVECOT_PASS_MAX + 1, NULL, NULL, true,
					    1000, canon, sizeof canon, err, sizeof err),
			 USERS_BAD_PASSWORD);
	memset(user, 'u', sizeof user);
	user[DOVECOT_USER_MAX + 1] = '\0';
	assert_int_equal(dovecot_auth_check(sock, user, PW, strlen(PW), NULL, NULL, true, 1000, canon,
					    sizeof canon, err, sizeof err),
			 USERS_BAD_PASSWORD);
	/* the longest ones are sent (and so fail here on the socket) */
	user[DOVECOT_USER_MAX] = '\0';
	assert_int_equal(dovecot_auth_check(sock, user, big, DOVECOT_PASS_MAX, NULL, NULL, true, 1000,
					    canon, sizeof canon, err, sizeof err),
			 USERS_ERROR);
	assert_int_equal(dovecot_auth_check(sock, "alice", PW, strlen(PW), NULL, NULL, true, 1000,
					    canon, 0, err, sizeof err),
			 USERS_ERROR);
}

static void test_bad_addresses_not_sent(void **state)
{
	struct fake f = { .greeting = HANDSHAKE, .reply = "OK\t1\n" };
	char canon[64], err[256];

	(void)state;
	fake_start(&f);
	assert_int_equal(dovecot_auth_check(f.path, "alice@localhost", PW, strlen(PW), "1.2.3.4\nAUTH",
					    NULL, true, 2000, canon, sizeof canon, err, sizeof err),
			 USERS_ERROR);
	fake_stop(&f);
	assert_false(sent_auth(&f));
	assert_non_null(strstr(err, "cannot be sent"));
}

static void test_escaped_addresses_and_no_secured(void **state)
{
	struct fake f = { .greeting = HANDSHAKE, .reply = "OK\t1\n" };
	char canon[64], err[256];
	const char *auth;

	(void)state;
	fake_start(&f);
	assert_int_equal(dovecot_auth_check(f.path, "alice@localhost", PW, strlen(PW), "a\tb", "",
					    false, 2000, canon, sizeof canon, err, sizeof err),
			 USERS_OK);
	fake_stop(&f);
	auth = memmem(f.got, f.got_len, "AUTH\t", 5);
	assert_non_null(auth);
	assert_string_equal(auth, "AUTH\t1\tPLAIN\tservice=smtp\tnologin\trip=a\001tb\tresp=" RESP "\n");
}

static void test_canon_too_small(void **state)
{
	struct fake f = { .greeting = HANDSHAKE, .reply = "OK\t1\tuser=alice@localhost\n" };
	char canon[15], err[256];

	(void)state;
	fake_start(&f);
	assert_int_equal(dovecot_auth_check(f.path, "alice@localhost", PW, strlen(PW), NULL, NULL, true,
					    2000, canon, sizeof canon, err, sizeof err),
			 USERS_ERROR);
	fake_stop(&f);
	assert_string_equal(canon, "");
	assert_non_null(strstr(err, "longer than 14"));
}

/* ------------------------------------------------------------------ */
/* the probe: one check against a real Dovecot */

static const char *env(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v != NULL ? v : dflt;
}

static void test_real_dovecot(void **state)
{
	const char *sock = getenv("TERN_DOVECOT_SOCKET");
	const char *user = env("TERN_DOVECOT_USER", "");
	const char *pw = env("TERN_DOVECOT_PASSWORD", "");
	const char *expect = env("TERN_DOVECOT_EXPECT", "ok");
	const char *want_canon = getenv("TERN_DOVECOT_CANON");
	const char *want_err = getenv("TERN_DOVECOT_ERR");
	bool secured = strcmp(env("TERN_DOVECOT_SECURED", "1"), "0") != 0;
	unsigned timeout = (unsigned)strtoul(env("TERN_DOVECOT_TIMEOUT_MS", "10000"), NULL, 10);
	char canon[USERS_NAME_MAX + 1], err[256];
	enum users_verdict v, want;
	uint64_t t0;

	(void)state;
	want = strcmp(expect, "ok") == 0    ? USERS_OK :
	       strcmp(expect, "bad") == 0   ? USERS_BAD_PASSWORD :
					      USERS_ERROR;
	t0 = now_ms();
	v = dovecot_auth_check(sock, user, pw, strlen(pw), env("TERN_DOVECOT_CLIENT_IP", "127.0.0.1"),
			       env("TERN_DOVECOT_LOCAL_IP", "127.0.0.1"), secured, timeout, canon,
			       sizeof canon, err, sizeof err);
	printf("verdict=%s canon=\"%s\" ms=%llu err=\"%s\"\n",
	       v == USERS_OK ? "ok" : v == USERS_BAD_PASSWORD ? "bad" : "error", canon,
	       (unsigned long long)(now_ms() - t0), err);
	fflush(stdout);
	if (pw[0] != '\0')
		assert_null(strstr(err, pw));
	assert_int_equal(v, want);
	if (want_canon != NULL)
		assert_string_equal(canon, want_canon);
	if (want_err != NULL && strstr(err, want_err) == NULL)
		fail_msg("err \"%s\" lacks \"%s\"", err, want_err);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok_exact_bytes),
		cmocka_unit_test(test_ok_canonical_name),
		cmocka_unit_test(test_ok_without_user_keeps_the_name),
		cmocka_unit_test(test_ok_trickled_and_unknown_lines),
		cmocka_unit_test(test_fail_is_bad_password),
		cmocka_unit_test(test_fail_reason_and_code_in_err),
		cmocka_unit_test(test_fail_with_odd_user_is_still_bad_password),
		cmocka_unit_test(test_fail_temp_is_error),
		cmocka_unit_test(test_protocol_errors),
		cmocka_unit_test(test_master_socket_detected_at_once),
		cmocka_unit_test(test_closed_during_handshake),
		cmocka_unit_test(test_overlong_line),
		cmocka_unit_test(test_longest_line),
		cmocka_unit_test(test_too_many_lines),
		cmocka_unit_test(test_timeout_waiting_for_answer),
		cmocka_unit_test(test_timeout_waiting_for_handshake),
		cmocka_unit_test(test_timeout_not_accepted),
		cmocka_unit_test(test_socket_missing),
		cmocka_unit_test(test_socket_refused),
		cmocka_unit_test(test_socket_path_too_long),
		cmocka_unit_test(test_unrepresentable_credentials),
		cmocka_unit_test(test_bad_addresses_not_sent),
		cmocka_unit_test(test_escaped_addresses_and_no_secured),
		cmocka_unit_test(test_canon_too_small),
	};
	static const struct CMUnitTest probe[] = {
		cmocka_unit_test(test_real_dovecot),
	};

	if (getenv("TERN_DOVECOT_SOCKET") != NULL)
		return cmocka_run_group_tests_name("dovecot_probe", probe, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
