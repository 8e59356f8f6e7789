/* tern.c - main() of the operator's tool: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define TERN_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tern COMMAND [ARGS]\n"
		"\n"
		"The operator's tool for the tern mail server.\n"
		"\n"
		"Commands:\n"
		"  queue list [-d DIR]   list the messages waiting in the spool of DIR\n"
		"                        (default ./var): queue id, age, size, sender,\n"
		"                        recipients; held messages are marked (held)\n"
		"  queue show ID [-d DIR]\n"
		"                        one message: envelope, arrival, size,\n"
		"                        recipients, delivery state, first header lines\n"
		"  queue flush [ID|@domain] [-d DIR]\n"
		"                        try delivery now: every message, message ID,\n"
		"                        or the messages for a domain (as ETRN does)\n"
		"  queue delete ID [-d DIR]    remove a message (no bounce is sent)\n"
		"  queue hold ID [-d DIR]      keep a message from delivery (spool/hold/)\n"
		"  queue release ID [-d DIR]   deliver a held message again\n"
		"                        flush, delete, hold and release ask ternd's\n"
		"                        queue process over DIR/control.sock: run them\n"
		"                        as root (or as ternd's unprivileged user)\n"
		"  user add NAME [--scheme S] [-f FILE]\n"
		"                        add an account; the password is read from\n"
		"                        stdin (typed twice, unechoed, on a terminal)\n"
		"  user passwd NAME [--scheme S] [-f FILE]\n"
		"                        change an account's password (same input);\n"
		"                        keeps the account's scheme unless --scheme\n"
		"  user del NAME [-f FILE]     remove an account\n"
		"  user list [-f FILE]   print the account names, one a line\n"
		"                        FILE: the users file (default /etc/tern/users);\n"
		"                        NAME: alice@example.com, or alice for every\n"
		"                        local domain;\n"
		"                        S: how the password is stored: yescrypt\n"
		"                        (default) or sha512-crypt allow AUTH PLAIN and\n"
		"                        LOGIN; scram-sha-256 allows AUTH SCRAM-SHA-256\n"
		"                        and PLAIN/LOGIN; plain is needed for CRAM-MD5\n"
		"                        and stores a password-equivalent\n"
		"  send --server HOST --from A --to B [--to C]... [--subject S]\n"
		"       [--body FILE] [--attach FILE]... [--auth USER --password-file F]\n"
		"       [--port P[:MODE]]... [--timeout SECONDS] [-v]\n"
		"                        send one message (MIME, attachments in base64),\n"
		"                        trying 587 STARTTLS, 465 implicit TLS, 2525\n"
		"                        STARTTLS, then 25; -v shows the dialogue\n"
		"                        (the password masked); exit 0 on 250\n"
		"  doctor HOST [--port P[:MODE]]... [--user U --password-file F]\n"
		"       [--from A --to B] [--timeout SECONDS] [--json]\n"
		"                        probe a mail server's ports 25, 465, 587 and\n"
		"                        2525 (in parallel): reachability, banner, TLS\n"
		"                        mode, certificate, AUTH, login; then a verdict\n"
		"                        and settings to paste (docs/doctor.md); exit 0\n"
		"                        when a submission port works with TLS\n"
		"                        MODE: starttls, implicit, may or none\n"
		"  dkim keygen DOMAIN --selector S [--ed25519] [--bits N] [-d DIR]\n"
		"                        make a DKIM key in DIR/DOMAIN.S.key (mode 0600,\n"
		"                        never overwritten; DIR default /etc/tern/dkim;\n"
		"                        RSA 2048 unless --ed25519) and print the TXT\n"
		"                        record to publish and the dkim_sign line\n"
		"  dkim check DOMAIN --selector S [-d DIR] [--dns-server ADDR[:PORT]]\n"
		"                        look up S._domainkey.DOMAIN and say whether it\n"
		"                        holds the key of DIR/DOMAIN.S.key; exit 0 when\n"
		"                        it does\n"
		"  version               print the version\n"
		"  help                  this text\n"
		);
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("tern %s\n", TERN_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "queue") == 0)
		return cli_queue(argc - 1, argv + 1);
	if (strcmp(argv[1], "user") == 0)
		return cli_user(argc - 1, argv + 1);
	if (strcmp(argv[1], "send") == 0)
		return cli_send(argc - 1, argv + 1);
	if (strcmp(argv[1], "doctor") == 0)
		return cli_doctor(argc - 1, argv + 1);
	if (strcmp(argv[1], "dkim") == 0)
		return cli_dkim(argc - 1, argv + 1);
	fprintf(stderr, "tern: unknown command '%s' (try: tern help)\n", argv[1]);
	return 2;
}
