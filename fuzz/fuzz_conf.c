/* fuzz_conf.c - libFuzzer target: conf_load_mem then conf_finish (root and not) over any bytes, checking the struct's invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated string inside its array. */
static void check_str(const char *s, size_t cap)
{
	if (memchr(s, '\0', cap) == NULL)
		abort();
}

static void check_domain(const char *d)
{
	check_str(d, CONF_NAME_MAX);
	if (d[0] == '\0' || strlen(d) > 253)
		abort();
	for (; *d != '\0'; d++)
		if (!((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') || *d == '-' || *d == '.'))
			abort();
}

/* What a successful load and finish promise. */
static void check(const struct conf *c, bool is_root)
{
	size_t i, j;

	check_str(c->source, sizeof c->source);
	check_domain(c->hostname);
	if (c->ndomains == 0 || c->ndomains > CONF_MAX_DOMAINS)
		abort();
	for (i = 0; i < c->ndomains; i++) {
		check_domain(c->domains[i]);
		if (!conf_is_local_domain(c, c->domains[i]))
			abort();
		for (j = 0; j < i; j++)
			if (strcmp(c->domains[i], c->domains[j]) == 0)
				abort();
	}
	check_str(c->data_dir, sizeof c->data_dir);
	check_str(c->user, sizeof c->user);
	check_str(c->users_file, sizeof c->users_file);
	check_str(c->maildir, sizeof c->maildir);
	check_str(c->log_level, sizeof c->log_level);
	if (c->data_dir[0] == '\0' || c->user[0] == '\0' || c->maildir[0] == '\0')
		abort();
	for (const char *p = strchr(c->maildir, '%'); p != NULL; p = strchr(p + 2, '%'))
		if (p[1] != 'd' && p[1] != 'u' && p[1] != '%')
			abort();
	if (c->workers > 64 || c->max_message_size < 1024 || c->max_recipients == 0 ||
	    c->idle_timeout == 0 || c->queue_lifetime == 0)
		abort();
	if (c->bare_newline != DATA_BARE_REJECT && c->bare_newline != DATA_BARE_NORMALIZE)
		abort();
	if (c->nlisteners == 0 || c->nlisteners > CONF_MAX_LISTENERS)
		abort();
	for (i = 0; i < c->nlisteners; i++) {
		const struct listener_conf *l = &c->listeners[i];

		check_str(l->addr, sizeof l->addr);
		if (l->port == 0 || (!is_root && l->port < 1024) || l->greet_pause_ms > 30000)
			abort();
		if (strcmp(conf_role_name(l->role), "unknown") == 0)
			abort();
		for (j = 0; j < i; j++)
			if (l->port == c->listeners[j].port &&
			    strcmp(l->addr, c->listeners[j].addr) == 0)
				abort();
	}
}

/* Finish a copy of c as root or not; on success check it. */
static void finish(const struct conf *c, bool is_root)
{
	static struct conf f;
	char err[512];

	f = *c;
	if (conf_finish(&f, is_root, err, sizeof err) == 0)
		check(&f, is_root);
	else if (strncmp(err, "fuzz.conf", 9) != 0)
		abort();
	conf_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf c;
	char err[512];

	conf_defaults(&c);
	if (conf_load_mem(&c, "fuzz.conf", (const char *)data, size, err, sizeof err) < 0) {
		check_str(err, sizeof err);
		if (strncmp(err, "fuzz.conf:", 10) != 0)
			abort();
	} else {
		finish(&c, false);
		finish(&c, true);
	}
	conf_free(&c);
	return 0;
}
