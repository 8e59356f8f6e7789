/*
 * cli.h - the subcommands of `tern`, one file each.
 *
 *	cli_queue(argc, argv): "queue list|show ID|flush [ID|@domain]|delete ID|
 *	hold ID|release ID [-d DIR]"; argv[0] is "queue" (cli/queue.c).
 *	cli_user(argc, argv): "user add|passwd|del NAME [-f FILE]", "user list
 *	[-f FILE]"; argv[0] is "user". The password comes from stdin only.
 *	Returns the process exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef TERN_CLI_H
#define TERN_CLI_H

int cli_queue(int argc, char **argv);
int cli_user(int argc, char **argv);

#endif
