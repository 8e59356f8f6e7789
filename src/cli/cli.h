/*
 * cli.h - the subcommands of `tern`, one file each.
 *
 *	cli_queue(argc, argv): "queue list|show ID|flush [ID|@domain]|delete ID|
 *	hold ID|release ID [-d DIR]"; argv[0] is "queue" (cli/queue.c).
 *	cli_user(argc, argv): "user add|passwd|del NAME [-f FILE]", "user list
 *	[-f FILE]"; argv[0] is "user". The password comes from stdin only.
 *	cli_send(argc, argv): "send --server HOST --from A --to B ..."; argv[0]
 *	is "send" (cli/send.c).
 *	cli_doctor(argc, argv): "doctor HOST [--port P[:MODE]]... ..."; argv[0]
 *	is "doctor" (cli/doctor.c; docs/doctor.md).
 *	cli_dkim(argc, argv): "dkim keygen DOMAIN --selector S ...", "dkim
 *	check DOMAIN --selector S ..."; argv[0] is "dkim" (cli/dkim.c). check
 *	exits 0 only when the published record holds the key file's key.
 *	Returns the process exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef TERN_CLI_H
#define TERN_CLI_H

int cli_queue(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_send(int argc, char **argv);
int cli_doctor(int argc, char **argv);
int cli_dkim(int argc, char **argv);

#endif
