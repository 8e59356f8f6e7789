/* queue.c - `tern queue list`: what waits in the spool, read straight from the files. */
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
#include "../spool/qfile.h"
#include "cli.h"

static int read_all(const char *path, struct buf *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	while (buf_reserve(b, 65536) == 0 && (n = read(fd, b->data + b->len, 65536)) > 0)
		b->len += (size_t)n;
	close(fd);
	return 0;
}

static int queue_list(const char *data_dir)
{
	char dir[4096], path[4400];
	struct dirent *de;
	unsigned count = 0;
	DIR *d;

	snprintf(dir, sizeof dir, "%s/spool/queue", data_dir);
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "tern: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	printf("%-20s %8s %10s  %s\n", "QUEUE ID", "AGE", "SIZE", "SENDER -> RECIPIENTS");
	while ((de = readdir(d)) != NULL) {
		struct qenv env;
		struct buf b;

		if (de->d_name[0] == '.' || strchr(de->d_name, '.') != NULL)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		buf_init(&b, SIZE_MAX);
		if (read_all(path, &b) == 0 && qfile_parse(b.data, b.len, &env) == 0) {
			long age = (long)(time(NULL) - (time_t)env.arrival);

			printf("%-20s %7lds %10llu  <%.*s> ->", de->d_name, age < 0 ? 0 : age,
			       (unsigned long long)env.msg_size, (int)env.sender.len,
			       (const char *)env.sender.p);
			for (size_t i = 0; i < env.nrcpts; i++)
				printf(" <%.*s>", (int)env.rcpts[i].addr.len,
				       (const char *)env.rcpts[i].addr.p);
			printf("\n");
			qfile_env_free(&env);
			count++;
		}
		buf_free(&b);
	}
	closedir(d);
	printf("%u message%s in the queue\n", count, count == 1 ? "" : "s");
	return 0;
}

int cli_queue(int argc, char **argv)
{
	const char *data_dir = "./var";

	if (argc < 2 || strcmp(argv[1], "list") != 0) {
		fprintf(stderr, "usage: tern queue list [-d DIR]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if ((strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--data") == 0) && i + 1 < argc)
			data_dir = argv[++i];
		else {
			fprintf(stderr, "usage: tern queue list [-d DIR]\n");
			return 2;
		}
	}
	return queue_list(data_dir);
}
