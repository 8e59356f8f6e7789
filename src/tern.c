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
		"                        recipients still to deliver\n"
		"  version               print the version\n"
		"  help                  this text\n"
		"\n"
		"Coming with later work: user management, queue control (flush, hold,\n"
		"delete), DKIM keys, doctor (why mail does not go through), send.\n");
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
	fprintf(stderr, "tern: unknown command '%s' (try: tern help)\n", argv[1]);
	return 2;
}
