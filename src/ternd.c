/* ternd.c - main() of the daemon: arguments, configuration, then the parent. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/daemon.h"
#include "lib/log.h"

#define TERN_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ternd [-f FILE] [-d DIR] [-w N] [-n]\n"
		"\n"
		"tern's mail server: SMTP on the four ports (25 mx with STARTTLS, 587 and\n"
		"2525 submission with STARTTLS then AUTH, 465 submissions with implicit\n"
		"TLS), a durable spool, Maildir or LMTP delivery, and delivery of users'\n"
		"mail to other domains (MX or smarthost) with retries and bounces. Without\n"
		"tls_cert a self-signed certificate is made in DATA_DIR/tls on first start;\n"
		"AUTH needs `users` or `auth_dovecot`.\n"
		"\n"
		"  -f, --config FILE   read FILE (default: none, the built-in defaults:\n"
		"                      data in ./var, local domains localhost and this host,\n"
		"                      the four ports, or ports + 10000 when not root)\n"
		"  -d, --data DIR      keep spool and mail under DIR (overrides data_dir)\n"
		"  -w, --workers N     worker processes (default: one per core)\n"
		"  -n, --check         check the configuration and exit: 0 when good, else\n"
		"                      1 with FILE:LINE: what is wrong\n"
		"      --help-config   list every configuration keyword with its default\n"
		"  -V, --version       print the version\n"
		"  -h, --help          this text\n"
		"\n"
		"Runs in the foreground; logs go to standard error as one logfmt line per\n"
		"event. SIGTERM or Ctrl-C stops it. SIGHUP reloads the configuration, the\n"
		"users file and the certificates without dropping open connections (a bad\n"
		"file is logged and changes nothing). See README.md and docs/ternd.conf.md.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'f' },
		{ "data", required_argument, NULL, 'd' },
		{ "workers", required_argument, NULL, 'w' },
		{ "check", no_argument, NULL, 'n' },
		{ "help-config", no_argument, NULL, 'K' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct daemon d;
	const char *file = NULL, *data = NULL;
	char err[2048];
	bool check = false;
	long workers = 0;
	enum log_level lvl;
	int c;

	while ((c = getopt_long(argc, argv, "f:d:w:nVh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'd': data = optarg; break;
		case 'w':
			workers = strtol(optarg, NULL, 10);
			if (workers < 1 || workers > 64) {
				fprintf(stderr, "ternd: --workers takes 1 to 64\n");
				return 2;
			}
			break;
		case 'n': check = true; break;
		case 'K': conf_print_knobs(stdout); return 0;
		case 'V': printf("ternd %s\n", TERN_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ternd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	conf_defaults(&d.conf);
	if (file != NULL && conf_load_file(&d.conf, file, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (data != NULL)
		snprintf(d.conf.data_dir, sizeof d.conf.data_dir, "%s", data);
	if (conf_finish(&d.conf, geteuid() == 0, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (check) {
		printf("%s: configuration ok\n", file ? file : "(built-in defaults)");
		return 0;
	}
	d.conf_file = file;
	d.data_override = data;
	if (log_level_parse(d.conf.log_level, &lvl) < 0)
		lvl = LOG_INFO;
	log_init("parent", -1, lvl);
	d.nworkers = workers > 0 ? (unsigned)workers : d.conf.workers;
	if (d.nworkers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		d.nworkers = n > 0 ? (unsigned)n : 1;
	}
	if (d.nworkers > CONNLIMIT_MAX_WORKERS / 2)
		d.nworkers = CONNLIMIT_MAX_WORKERS / 2;
	return parent_run(&d);
}
