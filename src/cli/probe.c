/* probe.c - helpers shared by `tern send` and `tern doctor` (probe.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "probe.h"

int probe_parse_port(const char *spec, struct probe_port *p)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(spec, &end, 10);
	if (errno != 0 || end == spec || n == 0 || n > 65535)
		return -1;
	p->port = (unsigned)n;
	if (*end == '\0') {
		p->mode = n == 465 ? SMTPC_TLS_IMPLICIT : n == 25 ? SMTPC_TLS_MAY : SMTPC_TLS_ENCRYPT;
		return 0;
	}
	if (*end != ':')
		return -1;
	end++;
	if (strcasecmp(end, "starttls") == 0)
		p->mode = SMTPC_TLS_ENCRYPT;
	else if (strcasecmp(end, "implicit") == 0 || strcasecmp(end, "tls") == 0 ||
		 strcasecmp(end, "ssl") == 0)
		p->mode = SMTPC_TLS_IMPLICIT;
	else if (strcasecmp(end, "may") == 0)
		p->mode = SMTPC_TLS_MAY;
	else if (strcasecmp(end, "none") == 0)
		p->mode = SMTPC_TLS_NONE;
	else
		return -1;
	return 0;
}

const char *probe_mode_words(enum smtpc_tls mode)
{
	switch (mode) {
	case SMTPC_TLS_NONE:
		return "no TLS";
	case SMTPC_TLS_MAY:
		return "STARTTLS if offered";
	case SMTPC_TLS_IMPLICIT:
		return "implicit TLS";
	default:
		return "STARTTLS";
	}
}

const char *probe_mode_key(enum smtpc_tls mode)
{
	switch (mode) {
	case SMTPC_TLS_NONE:
		return "none";
	case SMTPC_TLS_MAY:
		return "may";
	case SMTPC_TLS_IMPLICIT:
		return "implicit";
	default:
		return "starttls";
	}
}

int probe_resolve(const char *host, unsigned port, struct sockaddr_storage *ss, char *err,
		  size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char serv[16];
	int e;

	snprintf(serv, sizeof serv, "%u", port);
	if ((e = getaddrinfo(host, serv, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(e));
		return -1;
	}
	memset(ss, 0, sizeof *ss);
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

int probe_read_file(const char *path, char **data, size_t *len, size_t max)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t n = 0, cap = 0;
	int e = 0;

	if (f == NULL)
		return -1;
	for (;;) {
		size_t k;

		if (cap - n < 65536) {
			char *q = realloc(p, cap + 65536 + 1);

			if (q == NULL) {
				e = ENOMEM;
				break;
			}
			p = q;
			cap += 65536;
		}
		k = fread(p + n, 1, cap - n, f);
		n += k;
		if (n > max) {
			e = EFBIG;
			break;
		}
		if (k == 0) {
			if (ferror(f))
				e = EIO;
			break;
		}
	}
	fclose(f);
	if (e != 0 || p == NULL) {
		free(p);
		errno = e != 0 ? e : ENOMEM;
		return -1;
	}
	p[n] = '\0';
	*data = p;
	*len = n;
	return 0;
}

void probe_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

int probe_read_password(const char *path, char *out, size_t cap)
{
	char *data;
	size_t len, n = 0;

	if (probe_read_file(path, &data, &len, 4096) < 0)
		return -1;
	while (n < len && data[n] != '\n' && data[n] != '\r')
		n++;
	if (n >= cap || n == 0) {
		probe_wipe(data, len);
		free(data);
		errno = n == 0 ? EINVAL : ENAMETOOLONG;
		return -1;
	}
	memcpy(out, data, n);
	out[n] = '\0';
	probe_wipe(data, len);
	free(data);
	return 0;
}

void probe_set_timeouts(struct smtpc_opts *o, unsigned ms)
{
	o->connect_timeout_ms = o->greeting_timeout_ms = o->helo_timeout_ms = ms;
	o->mail_timeout_ms = o->rcpt_timeout_ms = o->data_timeout_ms = ms;
	o->block_timeout_ms = o->dot_timeout_ms = ms;
}

/* "10", "10s", "2.5", "500ms": milliseconds, 1 ms to 1 hour. */
int probe_parse_timeout(const char *s, unsigned *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s)
		return -1;
	if (strcmp(end, "ms") == 0)
		v /= 1000.0;
	else if (*end != '\0' && strcmp(end, "s") != 0)
		return -1;
	if (!(v >= 0.001 && v <= 3600.0))
		return -1;
	*ms = (unsigned)(v * 1000.0 + 0.5);
	return 0;
}

static bool has(const char *text, const char *word)
{
	return strcasestr(text, word) != NULL;
}

const char *probe_auth_words(int code, const char *enh, const char *text)
{
	if (code == 0 && has(text, "not encrypted"))
		return "TLS required first: the connection is not encrypted, so no password was sent";
	if (code == 0 && has(text, "no AUTH mechanism"))
		return "mechanism not offered: the server offers neither PLAIN nor LOGIN";
	if (code == 535 || strcmp(enh, "5.7.8") == 0)
		return "wrong credentials: the server refused the user name or the password";
	if (code == 530 || code == 538 || strcmp(enh, "5.7.11") == 0 ||
	    (code / 100 == 5 && has(text, "TLS")))
		return "TLS required first: the server wants STARTTLS (or implicit TLS) before AUTH";
	if (code == 504 || strcmp(enh, "5.5.4") == 0 || code == 534 || strcmp(enh, "5.7.9") == 0)
		return "mechanism not offered: the server does not take this AUTH mechanism";
	if (code == 421 || code == 454 || code / 100 == 4 || has(text, "too many") ||
	    has(text, "locked") || has(text, "rate"))
		return "account locked by rate limits, or a temporary server problem: wait, "
		       "then try again (too many failed logins lock an account or address)";
	if (code == 0)
		return "no reply to AUTH: the connection failed during the login";
	return "refused: see the server's reply";
}

void probe_queue_id(const char *text, char *out, size_t cap)
{
	const char *p = strcasestr(text, "queued as ");
	size_t n = 0;

	if (p != NULL) {
		p += strlen("queued as ");
	} else {
		p = strrchr(text, ' ');
		p = p != NULL ? p + 1 : text;
	}
	while (p[n] != '\0' && p[n] != ' ' && p[n] != ')' && n + 1 < cap)
		n++;
	memcpy(out, p, n);
	out[n] = '\0';
}

static void add(char *out, size_t cap, const char *word)
{
	size_t n = strlen(out);

	snprintf(out + n, cap - n, "%s%s", n > 0 ? " " : "", word);
}

void probe_auth_names(unsigned bits, char *out, size_t cap)
{
	out[0] = '\0';
	if (bits & SMTP_AUTH_PLAIN)
		add(out, cap, "PLAIN");
	if (bits & SMTP_AUTH_LOGIN)
		add(out, cap, "LOGIN");
	if (bits & SMTP_AUTH_CRAM_MD5)
		add(out, cap, "CRAM-MD5");
	if (bits & SMTP_AUTH_SCRAM_SHA_256)
		add(out, cap, "SCRAM-SHA-256");
	if (bits & SMTP_AUTH_XOAUTH2)
		add(out, cap, "XOAUTH2");
	if (bits & SMTP_AUTH_OTHER)
		add(out, cap, "(other)");
}

void probe_ext_names(const struct smtp_ehlo *e, bool esmtp, char *out, size_t cap)
{
	char auth[128], w[160];

	out[0] = '\0';
	if (!esmtp)
		return;
	if (e->pipelining)
		add(out, cap, "PIPELINING");
	if (e->has_size) {
		snprintf(w, sizeof w, "SIZE %llu", (unsigned long long)e->size);
		add(out, cap, e->size ? w : "SIZE");
	}
	if (e->eightbitmime)
		add(out, cap, "8BITMIME");
	if (e->smtputf8)
		add(out, cap, "SMTPUTF8");
	if (e->dsn)
		add(out, cap, "DSN");
	if (e->starttls)
		add(out, cap, "STARTTLS");
	if (e->chunking)
		add(out, cap, "CHUNKING");
	if (e->binarymime)
		add(out, cap, "BINARYMIME");
	if (e->enhancedstatuscodes)
		add(out, cap, "ENHANCEDSTATUSCODES");
	if (e->auth) {
		probe_auth_names(e->auth, auth, sizeof auth);
		snprintf(w, sizeof w, "AUTH %s", auth);
		add(out, cap, w);
	}
}
