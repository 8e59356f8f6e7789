/* user.c - `tern user add|passwd|del|list`: edit the users file; passwords only from stdin. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "../daemon/users.h"
#include "cli.h"

#define DEFAULT_USERS_FILE "/etc/tern/users"
#define PASSWORD_MAX 1024

static struct termios saved_tio;
static volatile sig_atomic_t echo_off;

/* Put the terminal's echo back before dying of a signal met at the prompt. */
static void restore_and_die(int sig)
{
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * One line from stdin into pw (without "\n" or "\r\n"), read byte by byte
 * so that no stdio buffer keeps a copy. 0, or -1 with a message printed.
 */
static int read_line(char *pw, size_t size)
{
	size_t n = 0;
	bool got = false;

	for (;;) {
		char c;
		ssize_t r = read(STDIN_FILENO, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "tern: reading the password: %s\n", strerror(errno));
			return -1;
		}
		if (r == 0) {
			if (!got) {
				fprintf(stderr, "tern: no password on standard input\n");
				return -1;
			}
			break;
		}
		got = true;
		if (c == '\n')
			break;
		if (c == '\0') {
			fprintf(stderr, "tern: the password contains a NUL byte\n");
			return -1;
		}
		if (n + 1 >= size) {
			fprintf(stderr, "tern: password too long (at most %d bytes)\n",
				PASSWORD_MAX - 1);
			return -1;
		}
		pw[n++] = c;
	}
	if (n > 0 && pw[n - 1] == '\r')
		n--;
	pw[n] = '\0';
	return 0;
}

/* Prompt on stderr with echo off; the terminal is always restored. */
static int prompt(const char *text, char *pw, size_t size)
{
	struct termios t;
	struct sigaction sa, old[4];
	static const int sigs[4] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	int rc;

	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0) {
		fprintf(stderr, "tern: terminal: %s\n", strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = restore_and_die;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, &old[i]);
	t = saved_tio;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	fputs(text, stderr);
	fflush(stderr);
	echo_off = 1;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0) {
		echo_off = 0;
		fprintf(stderr, "\ntern: terminal: %s\n", strerror(errno));
		rc = -1;
	} else {
		rc = read_line(pw, size);
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
		echo_off = 0;
		fputc('\n', stderr);
	}
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &old[i], NULL);
	return rc;
}

/* The new password: typed twice on a terminal, else one line of stdin. */
static int get_password(char *pw, size_t size)
{
	if (isatty(STDIN_FILENO)) {
		char again[PASSWORD_MAX];
		int ok;

		if (prompt("Password: ", pw, size) < 0)
			return -1;
		if (prompt("Again: ", again, sizeof again) < 0) {
			explicit_bzero(again, sizeof again);
			return -1;
		}
		ok = strcmp(pw, again) == 0;
		explicit_bzero(again, sizeof again);
		if (!ok) {
			fprintf(stderr, "tern: the passwords do not match\n");
			return -1;
		}
	} else if (read_line(pw, size) < 0) {
		return -1;
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "tern: empty password refused\n");
		return -1;
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: tern user add NAME [--scheme SCHEME] [-f FILE]\n"
		"       tern user passwd NAME [--scheme SCHEME] [-f FILE]\n"
		"       tern user del NAME [-f FILE]\n"
		"       tern user list [-f FILE]\n"
		"The password is read from standard input (typed twice on a terminal).\n"
		"FILE defaults to " DEFAULT_USERS_FILE ".\n"
		"SCHEME is how the password is stored:\n"
		"  yescrypt       (default for add) AUTH PLAIN and LOGIN\n"
		"  sha512-crypt   the same, for files shared with older systems\n"
		"  scram-sha-256  AUTH SCRAM-SHA-256 as well as PLAIN and LOGIN; Dovecot's\n"
		"                 {SCRAM-SHA-256} form\n"
		"  plain          needed for CRAM-MD5: stores the password itself (a\n"
		"                 password-equivalent), as {PLAIN}\n"
		"passwd keeps the account's scheme unless --scheme is given.\n");
	return 2;
}

static const struct {
	const char *name;
	enum users_scheme scheme;
} schemes[] = {
	{ "yescrypt", USERS_YESCRYPT },
	{ "sha512-crypt", USERS_SHA512 },
	{ "scram-sha-256", USERS_SCRAM_SHA256 },
	{ "plain", USERS_PLAIN },
};

static int parse_scheme(const char *name, enum users_scheme *out)
{
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		if (strcasecmp(name, schemes[i].name) == 0) {
			*out = schemes[i].scheme;
			return 0;
		}
	}
	fprintf(stderr,
		"tern: unknown scheme '%s': use yescrypt, sha512-crypt, scram-sha-256 or plain\n",
		name);
	return -1;
}

/*
 * For passwd without --scheme: the scheme the account has now, so that a
 * new password does not take away SCRAM or CRAM-MD5; yescrypt when the
 * file cannot be loaded (said, unless it is missing: then
 * users_set_password says so).
 */
static enum users_scheme current_scheme(const char *path, const char *name)
{
	enum users_scheme sc = USERS_YESCRYPT;
	const struct user *usr;
	struct users u;
	char err[512];

	if (users_load(&u, path, err, sizeof err) < 0) {
		if (access(path, F_OK) == 0)
			fprintf(stderr, "tern: note: %s; the new password is stored with yescrypt "
				"(--scheme chooses)\n", err);
		return sc;
	}
	if ((usr = users_find(&u, name)) != NULL) {
		if (strcmp(usr->scheme, "SCRAM-SHA-256") == 0)
			sc = USERS_SCRAM_SHA256;
		else if (strcmp(usr->scheme, "PLAIN") == 0 || strcmp(usr->scheme, "CLEAR") == 0 ||
			 strcmp(usr->scheme, "CLEARTEXT") == 0)
			sc = USERS_PLAIN;
		else if (strncmp(usr->hash, "$6$", 3) == 0)
			sc = USERS_SHA512;
	}
	users_free(&u);
	return sc;
}

static int list(const char *path)
{
	struct users u;
	char err[512];

	if (users_load(&u, path, err, sizeof err) < 0) {
		fprintf(stderr, "tern: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < u.n; i++)
		printf("%s\n", u.v[i].name);
	users_free(&u);
	return fflush(stdout) == 0 ? 0 : 1;
}

int cli_user(int argc, char **argv)
{
	const char *path = DEFAULT_USERS_FILE, *name = NULL, *cmd;
	enum users_scheme scheme = USERS_YESCRYPT;
	bool scheme_given = false;
	char err[1024], pw[PASSWORD_MAX];
	int rc;

	if (argc < 2)
		return usage();
	cmd = argv[1];
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--file") == 0) {
			if (++i >= argc)
				return usage();
			path = argv[i];
		} else if (strcmp(argv[i], "--scheme") == 0) {
			if (++i >= argc)
				return usage();
			if (parse_scheme(argv[i], &scheme) < 0)
				return 2;
			scheme_given = true;
		} else if (argv[i][0] == '-' || name != NULL) {
			return usage();
		} else {
			name = argv[i];
		}
	}
	if (scheme_given && strcmp(cmd, "add") != 0 && strcmp(cmd, "passwd") != 0)
		return usage();
	if (strcmp(cmd, "list") == 0)
		return name != NULL ? usage() : list(path);
	if (name == NULL)
		return usage();
	if (strcmp(cmd, "del") == 0) {
		if (users_del(path, name, err, sizeof err) < 0) {
			fprintf(stderr, "tern: %s\n", err);
			return 1;
		}
		printf("deleted %s\n", name);
		return 0;
	}
	if (strcmp(cmd, "add") != 0 && strcmp(cmd, "passwd") != 0)
		return usage();
	if (get_password(pw, sizeof pw) < 0) {
		explicit_bzero(pw, sizeof pw);
		return 1;
	}
	if (strcmp(cmd, "add") == 0) {
		rc = users_add(path, name, pw, scheme, err, sizeof err);
	} else {
		if (!scheme_given)
			scheme = current_scheme(path, name);
		rc = users_set_password(path, name, pw, scheme, err, sizeof err);
	}
	explicit_bzero(pw, sizeof pw);
	if (rc < 0) {
		fprintf(stderr, "tern: %s\n", err);
		return 1;
	}
	if (strcmp(cmd, "add") == 0)
		printf("added %s\n", name);
	else
		printf("password changed for %s\n", name);
	if (scheme == USERS_PLAIN)
		fprintf(stderr, "tern: note: stored as {PLAIN}: %s holds this password in the "
			"clear; keep it mode 600\n", path);
	return 0;
}
