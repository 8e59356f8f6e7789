/* users.c - load the users file and look names up; see users.h. */
#include "users.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USERS_LINE_MAX 4096
#define USERS_NAME_MAX 320

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

int users_load(struct users *u, const char *path, char *err, size_t errlen)
{
	char line[USERS_LINE_MAX + 2];
	unsigned lineno = 0;
	size_t cap = 0;
	FILE *f;

	memset(u, 0, sizeof *u);
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		size_t len = strlen(line);
		char *colon, **grown;

		lineno++;
		if (len > USERS_LINE_MAX) {
			snprintf(err, errlen, "%s:%u: line too long", path, lineno);
			goto fail;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		colon = strchr(line, ':');
		if (colon == NULL || colon == line || (size_t)(colon - line) > USERS_NAME_MAX) {
			snprintf(err, errlen, "%s:%u: expected name:password-hash", path, lineno);
			goto fail;
		}
		*colon = '\0';
		lower(line);
		if (u->n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((grown = realloc(u->names, cap * sizeof *grown)) == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			u->names = grown;
		}
		if ((u->names[u->n] = strdup(line)) == NULL) {
			snprintf(err, errlen, "%s: out of memory", path);
			goto fail;
		}
		u->n++;
	}
	fclose(f);
	qsort(u->names, u->n, sizeof *u->names, cmp_names);
	u->loaded = true;
	return 0;
fail:
	fclose(f);
	users_free(u);
	return -1;
}

static bool has(const struct users *u, const char *name)
{
	return bsearch(&name, u->names, u->n, sizeof *u->names, cmp_names) != NULL;
}

bool users_exists(const struct users *u, const char *local, const char *domain)
{
	char name[USERS_NAME_MAX * 2];

	snprintf(name, sizeof name, "%s", local);
	lower(name);
	if (has(u, name))
		return true;
	snprintf(name, sizeof name, "%s@%s", local, domain);
	lower(name);
	return has(u, name);
}

void users_free(struct users *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->names[i]);
	free(u->names);
	memset(u, 0, sizeof *u);
}
