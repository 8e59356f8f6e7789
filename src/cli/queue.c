/*
 * queue.c - `tern queue ...`: what waits in the spool, and what to do with it.
 *
 *	list, show	read the spool files directly (DATA_DIR/spool/queue and
 *			spool/hold); needs read access to them (root, or the
 *			daemon user)
 *	flush, delete, hold, release
 *			one request to the queue process over DATA_DIR/control.sock
 *			(spool/control.h, proto/ctl.h)
 *
 * Everything printed from a queue file (addresses, header lines, QID.st)
 * came from a client: octets outside printable ASCII are shown as \xHH, so
 * a message cannot write escape sequences to the operator's terminal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../proto/ctl.h"
#include "../proto/smtp_cmd.h"
#include "../spool/control.h"
#include "../spool/qfile.h"
#include "../spool/spool.h"
#include "cli.h"

#define QUEUE_REQUEST_TIMEOUT_MS 10000
#define SHOW_HEADER_LINES 50
#define SHOW_HEADER_BYTES (64 * 1024)
#define SHOW_STATE_BYTES (64 * 1024)

#define USAGE                                                                      \
	"usage: tern queue list [-d DIR]\n"                                        \
	"       tern queue show ID [-d DIR]\n"                                     \
	"       tern queue flush [ID|@domain] [-d DIR]\n"                          \
	"       tern queue delete|hold|release ID [-d DIR]\n"

/* The whole file into b (at most b->max octets: EFBIG beyond). */
static int read_all(const char *path, struct buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int e = 0;

	if (fd < 0)
		return -1;
	for (;;) {
		size_t room = b->max - b->len, chunk = room < 65536 ? room : 65536;
		ssize_t n;

		if (chunk == 0) {
			e = EFBIG;
			break;
		}
		if (buf_reserve(b, chunk) < 0) {
			e = ENOMEM;
			break;
		}
		n = read(fd, b->data + b->len, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			break;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
	}
	close(fd);
	if (e != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

/* Write p[0..n) with octets outside printable ASCII (TAB allowed) as \xHH. */
static void put_safe(FILE *f, const void *p, size_t n)
{
	const uint8_t *s = p;

	for (size_t i = 0; i < n; i++) {
		if ((s[i] >= 0x20 && s[i] < 0x7f) || s[i] == '\t')
			fputc(s[i], f);
		else
			fprintf(f, "\\x%02X", s[i]);
	}
}

static void put_slice(FILE *f, struct slice s)
{
	put_safe(f, s.p, s.len);
}

/* ---- list ------------------------------------------------------------ */

/* List the messages of one spool folder; -1 if the folder cannot be read
 * (a missing hold/ is fine: nothing was ever held). */
static int list_dir(const char *data_dir, const char *sub, bool held, unsigned *count)
{
	char dir[4096], path[4400];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof dir, "%s/spool/%s", data_dir, sub);
	if ((d = opendir(dir)) == NULL) {
		if (held && errno == ENOENT)
			return 0;
		fprintf(stderr, "tern: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		struct qenv env;
		struct buf b;

		if (de->d_name[0] == '.' || strchr(de->d_name, '.') != NULL)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		buf_init(&b, SIZE_MAX);
		if (read_all(path, &b) == 0 && qfile_parse(b.data, b.len, &env) == 0) {
			long age = (long)(time(NULL) - (time_t)env.arrival);

			printf("%-20s %7lds %10llu  <", de->d_name, age < 0 ? 0 : age,
			       (unsigned long long)env.msg_size);
			put_slice(stdout, env.sender);
			printf("> ->");
			for (size_t i = 0; i < env.nrcpts; i++) {
				printf(" <");
				put_slice(stdout, env.rcpts[i].addr);
				printf(">");
			}
			printf("%s\n", held ? " (held)" : "");
			qfile_env_free(&env);
			(*count)++;
		}
		buf_free(&b);
	}
	closedir(d);
	return 0;
}

static int queue_list(const char *data_dir)
{
	unsigned count = 0;

	printf("%-20s %8s %10s  %s\n", "QUEUE ID", "AGE", "SIZE", "SENDER -> RECIPIENTS");
	if (list_dir(data_dir, "queue", false, &count) < 0)
		return 1;
	if (list_dir(data_dir, "hold", true, &count) < 0)
		return 1;
	printf("%u message%s in the queue\n", count, count == 1 ? "" : "s");
	return 0;
}

/* ---- show ------------------------------------------------------------ */

struct hdr_grab {
	struct buf b;
	bool done;
};

/* Collect the message's first octets until the header ends (an empty
 * line) or SHOW_HEADER_BYTES. */
static int grab_chunk(void *arg, const uint8_t *p, size_t n)
{
	struct hdr_grab *g = arg;
	size_t room = SHOW_HEADER_BYTES - g->b.len;

	if (n > room)
		n = room;
	if (buf_append(&g->b, p, n) < 0)
		return 1;
	if (g->b.len >= SHOW_HEADER_BYTES)
		return 1;
	for (size_t i = 0; i + 1 < g->b.len; i++)
		if (g->b.data[i] == '\n' &&
		    (g->b.data[i + 1] == '\n' ||
		     (g->b.data[i + 1] == '\r' && i + 2 < g->b.len && g->b.data[i + 2] == '\n')))
			return 1;
	return 0;
}

static void show_headers(const struct buf *file, const struct qenv *env)
{
	struct hdr_grab g;
	size_t pos = 0;
	unsigned lines = 0;

	buf_init(&g.b, SHOW_HEADER_BYTES);
	g.done = false;
	qfile_each_chunk(file->data, file->len, env, grab_chunk, &g);
	printf("headers:\n");
	while (pos < g.b.len) {
		const uint8_t *lf = memchr(g.b.data + pos, '\n', g.b.len - pos);
		size_t end = lf != NULL ? (size_t)(lf - g.b.data) : g.b.len;
		size_t len = end - pos;

		if (len > 0 && g.b.data[pos + len - 1] == '\r')
			len--;
		if (len == 0)
			break; /* the end of the header */
		if (lines == SHOW_HEADER_LINES) {
			printf("  ... (more header lines not shown)\n");
			break;
		}
		printf("  ");
		put_safe(stdout, g.b.data + pos, len);
		printf("\n");
		lines++;
		pos = end + 1;
	}
	buf_free(&g.b);
}

static void show_state(const char *path)
{
	struct buf b;
	size_t pos = 0;

	buf_init(&b, SHOW_STATE_BYTES);
	if (read_all(path, &b) < 0) {
		if (errno != ENOENT)
			printf("state: (%s: %s)\n", path, strerror(errno));
		buf_free(&b);
		return;
	}
	printf("state: (%s)\n", path);
	while (pos < b.len) {
		const uint8_t *lf = memchr(b.data + pos, '\n', b.len - pos);
		size_t end = lf != NULL ? (size_t)(lf - b.data) : b.len;

		printf("  ");
		put_safe(stdout, b.data + pos, end - pos);
		printf("\n");
		pos = end + 1;
	}
	buf_free(&b);
}

static void show_notify(unsigned notify)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ DSN_NOTIFY_NEVER, "NEVER" },
		{ DSN_NOTIFY_SUCCESS, "SUCCESS" },
		{ DSN_NOTIFY_FAILURE, "FAILURE" },
		{ DSN_NOTIFY_DELAY, "DELAY" },
	};
	const char *sep = " notify=";

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (notify & names[i].bit) {
			printf("%s%s", sep, names[i].name);
			sep = ",";
		}
}

static void show_field(const char *label, struct slice s)
{
	if (s.len == 0)
		return;
	printf("%-11s ", label);
	put_slice(stdout, s);
	printf("\n");
}

static int queue_show(const char *data_dir, const char *qid)
{
	static const char *const subs[] = { "queue", "hold" };
	char path[4400], stpath[4410];
	struct stat st;
	struct qenv env;
	struct buf b;
	const char *sub = NULL;
	struct tm tm;
	time_t at;
	char when[64];
	long age;

	for (size_t i = 0; i < 2 && sub == NULL; i++) {
		snprintf(path, sizeof path, "%s/spool/%s/%s", data_dir, subs[i], qid);
		if (stat(path, &st) == 0)
			sub = subs[i];
		else if (errno != ENOENT) {
			fprintf(stderr, "tern: %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	if (sub == NULL) {
		fprintf(stderr, "tern: no message %s in %s/spool/queue or %s/spool/hold\n", qid,
			data_dir, data_dir);
		return 1;
	}
	buf_init(&b, SIZE_MAX);
	if (read_all(path, &b) < 0) {
		fprintf(stderr, "tern: %s: %s\n", path, strerror(errno));
		buf_free(&b);
		return 1;
	}
	if (qfile_parse(b.data, b.len, &env) < 0) {
		fprintf(stderr, "tern: %s: %s%s\n", path, env.error != NULL ? env.error : "cannot parse",
			(st.st_mode & SPOOL_MODE_COMPLETE) != SPOOL_MODE_COMPLETE
				? " (still being received)" : "");
		buf_free(&b);
		return 1;
	}

	at = (time_t)env.arrival;
	age = (long)(time(NULL) - at);
	if (gmtime_r(&at, &tm) == NULL || strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(when, sizeof when, "%llu", (unsigned long long)env.arrival);
	printf("%-11s %s\n", "queue id:", qid);
	printf("%-11s %s\n", "status:", strcmp(sub, "hold") == 0 ? "held" : "queued");
	printf("%-11s %s\n", "file:", path);
	printf("%-11s %s (%lds ago)\n", "arrival:", when, age < 0 ? 0 : age);
	printf("%-11s %llu octets\n", "size:", (unsigned long long)env.msg_size);
	printf("%-11s <", "sender:");
	put_slice(stdout, env.sender);
	printf(">\n");
	show_field("client:", env.client);
	show_field("auth:", env.auth);
	show_field("envid:", env.envid);
	show_field("ret:", env.ret);
	show_field("body:", env.body);
	if (env.smtputf8)
		printf("%-11s yes\n", "smtputf8:");
	printf("recipients: %zu\n", env.nrcpts);
	for (size_t i = 0; i < env.nrcpts; i++) {
		printf("  %zu <", i);
		put_slice(stdout, env.rcpts[i].addr);
		printf(">");
		show_notify(env.rcpts[i].notify);
		if (env.rcpts[i].orcpt.len > 0) {
			printf(" orcpt=");
			put_slice(stdout, env.rcpts[i].orcpt);
		}
		printf("\n");
	}
	snprintf(stpath, sizeof stpath, "%s.st", path);
	show_state(stpath);
	show_headers(&b, &env);
	qfile_env_free(&env);
	buf_free(&b);
	return 0;
}

/* ---- flush, delete, hold, release ------------------------------------ */

static int queue_control(const char *data_dir, const char *cmd, enum ctl_verb verb,
			 const char *arg, const char *typed)
{
	char line[CTL_LINE_MAX], reply[CTL_LINE_MAX], sock[4200];
	const char *connect_path = sock;
	struct ctl_req req;
	struct ctl_reply rep;
	const char *why;
	int n;

	n = snprintf(line, sizeof line, "%s%s%s", ctl_verb_name(verb), arg[0] ? " " : "", arg);
	if (n < 0 || (size_t)n >= sizeof line ||
	    ctl_parse_request((const uint8_t *)line, (size_t)n, &req, &why) < 0) {
		fprintf(stderr, "tern: queue %s: %s '", cmd,
			n > 0 && (size_t)n < sizeof line ? why : "line too long");
		put_safe(stderr, typed, strlen(typed));
		fprintf(stderr, "' (ID: 1 to %d characters 0-9 A-Z; @domain: a domain name)\n%s",
			QID_MAX, USAGE);
		return 2;
	}
	/* what goes on the wire is the parsed form: "@Example.COM" -> "@example.com" */
	snprintf(line, sizeof line, "%s%s%s", ctl_verb_name(req.verb), req.arg[0] ? " " : "",
		 req.arg);
	snprintf(sock, sizeof sock, "%s/%s", data_dir, CONTROL_SOCK_NAME);
	/* sun_path holds 107 octets: reach a socket deeper down from inside DIR */
	if (strlen(sock) >= 108) {
		if (chdir(data_dir) < 0) {
			fprintf(stderr, "tern: %s: %s\n", data_dir, strerror(errno));
			return 1;
		}
		connect_path = CONTROL_SOCK_NAME;
	}
	if (control_request(connect_path, line, reply, sizeof reply, QUEUE_REQUEST_TIMEOUT_MS) < 0) {
		int e = errno;

		fprintf(stderr, "tern: cannot reach ternd's queue process at %s: %s", sock, reply);
		if (e == EACCES || e == EPERM)
			fprintf(stderr, " (run as root or as a member of the tern group)");
		else if (e == ENOENT || e == ECONNREFUSED)
			fprintf(stderr, " (is ternd running with data_dir %s?)", data_dir);
		fprintf(stderr, "\n");
		return 1;
	}
	if (ctl_parse_reply((const uint8_t *)reply, strlen(reply), &rep) < 0) {
		fprintf(stderr, "tern: unexpected reply from ternd's queue process at %s: \"", sock);
		put_safe(stderr, reply, strlen(reply));
		fprintf(stderr, "\"\n");
		return 1;
	}
	if (!rep.ok) {
		bool denied = rep.words.len == 17 && memcmp(rep.words.p, "permission denied", 17) == 0;

		fprintf(stderr, "tern: ternd's queue process refused: %.*s%s\n", (int)rep.words.len,
			(const char *)rep.words.p,
			denied ? " (run as root, as ternd's user, or with the tern group as primary group)" : "");
		return 1;
	}
	printf("%s\n", reply + 3); /* "OK " */
	return 0;
}

/* ---- arguments ------------------------------------------------------- */

int cli_queue(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum ctl_verb verb;
		int nargs_min, nargs_max;
	} cmds[] = {
		{ "list", CTL_NONE, 0, 0 },
		{ "show", CTL_NONE, 1, 1 },
		{ "flush", CTL_FLUSH, 0, 1 },
		{ "delete", CTL_DELETE, 1, 1 },
		{ "hold", CTL_HOLD, 1, 1 },
		{ "release", CTL_RELEASE, 1, 1 },
	};
	const char *data_dir = "./var";
	const char *typed = "";
	char arg[CTL_ARG_MAX + 1] = "";
	int nargs = 0, which = -1;

	if (argc >= 2)
		for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
			if (strcmp(argv[1], cmds[i].name) == 0)
				which = (int)i;
	if (which < 0) {
		fprintf(stderr, USAGE);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if ((strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--data") == 0) && i + 1 < argc) {
			data_dir = argv[++i];
		} else if (argv[i][0] != '-' && nargs < cmds[which].nargs_max &&
			   strlen(argv[i]) < sizeof arg) {
			snprintf(arg, sizeof arg, "%s", argv[i]);
			typed = argv[i];
			nargs++;
		} else {
			fprintf(stderr, USAGE);
			return 2;
		}
	}
	if (nargs < cmds[which].nargs_min) {
		fprintf(stderr, USAGE);
		return 2;
	}
	/* Queue ids are upper case on disk; accept them typed in lower case. */
	if (arg[0] != '@')
		for (char *p = arg; *p != '\0'; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - ('a' - 'A'));

	if (strcmp(cmds[which].name, "list") == 0)
		return queue_list(data_dir);
	if (strcmp(cmds[which].name, "show") == 0) {
		if (!ctl_qid_valid((const uint8_t *)arg, strlen(arg))) {
			fprintf(stderr, "tern: queue show: bad queue id '");
			put_safe(stderr, typed, strlen(typed));
			fprintf(stderr, "' (1 to %d characters 0-9 A-Z)\n%s", QID_MAX, USAGE);
			return 2;
		}
		return queue_show(data_dir, arg);
	}
	return queue_control(data_dir, cmds[which].name, cmds[which].verb, arg, typed);
}
