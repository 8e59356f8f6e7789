/*
 * cli.h - the subcommands of `tern`, one file each.
 *
 *	cli_queue(argc, argv): "queue list [-d DIR]"; argv[0] is "queue".
 *	Returns the process exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef TERN_CLI_H
#define TERN_CLI_H

int cli_queue(int argc, char **argv);

#endif
