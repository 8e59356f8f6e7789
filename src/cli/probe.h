/*
 * probe.h - what `tern send` and `tern doctor` share: ports and TLS modes,
 * name resolution, files and passwords, and the words for SMTP replies.
 *
 *	A port spec is "P" or "P:MODE", MODE one of starttls (STARTTLS
 *	required), implicit (TLS from the first byte, RFC 8314), may (STARTTLS
 *	if offered) or none. Without a MODE: implicit for 465, starttls for the
 *	other ports, may for 25 (server to server).
 *
 *	probe_resolve(): getaddrinfo(), blocking (a command-line tool, before
 *	the loop runs); the first address. probe_read_file(): a whole file
 *	(at most max octets), malloc'ed. probe_read_password(): the first line
 *	of a file, without its line end. probe_auth_words(): the likely cause
 *	of a failed AUTH, from the reply code, enhanced code and text.
 *	probe_queue_id(): the queue id in a 250 reply to the final dot
 *	("queued as X", else the last word).
 *
 *	probe_line_*(): a raw, blocking, line-based SMTP conversation for the
 *	checks the SMTP client cannot make (it always runs a whole mail
 *	transaction): stop after RCPT (the open relay check), or send a DATA
 *	that is never ended (the SMTP smuggling check). Plaintext TCP only.
 *	Every call is bounded by one deadline for the whole conversation,
 *	set at probe_line_open(); probe_line_reply() may wait less (wait_ms).
 *	probe_line_reply() returns 0 with a reply (code; text: the last
 *	line after the code, printable ASCII only), PROBE_LINE_TIMEOUT when
 *	nothing complete came in time, PROBE_LINE_CLOSED when the server
 *	closed the connection, PROBE_LINE_ERROR on a socket error or a line
 *	that is not an SMTP reply.
 */
#ifndef TERN_CLI_PROBE_H
#define TERN_CLI_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "../deliver/smtp_client.h"

#define PROBE_MAX_PORTS 16
#define PROBE_DEFAULT_TIMEOUT_MS 10000

struct probe_port {
	unsigned port;
	enum smtpc_tls mode;	/* SMTPC_TLS_ENCRYPT, _IMPLICIT, _MAY or _NONE */
};

int probe_parse_port(const char *spec, struct probe_port *p);
const char *probe_mode_words(enum smtpc_tls mode);	/* "STARTTLS", "implicit TLS", ... */
const char *probe_mode_key(enum smtpc_tls mode);	/* "starttls", "implicit", ... */
int probe_resolve(const char *host, unsigned port, struct sockaddr_storage *ss,
		  char *err, size_t errlen);
int probe_read_file(const char *path, char **data, size_t *len, size_t max);
int probe_read_password(const char *path, char *out, size_t cap);
void probe_set_timeouts(struct smtpc_opts *o, unsigned ms);
int probe_parse_timeout(const char *s, unsigned *ms);
const char *probe_auth_words(int code, const char *enh, const char *text);
void probe_queue_id(const char *text, char *out, size_t cap);
void probe_auth_names(unsigned bits, char *out, size_t cap);
void probe_ext_names(const struct smtp_ehlo *e, bool esmtp, char *out, size_t cap);
void probe_wipe(void *p, size_t n);

#define PROBE_LINE_TIMEOUT (-2)
#define PROBE_LINE_CLOSED (-3)
#define PROBE_LINE_ERROR (-1)

struct probe_line {
	int fd;
	unsigned long long deadline;	/* CLOCK_MONOTONIC, ms */
	char buf[8192];
	size_t len;
};

int probe_line_open(struct probe_line *l, const struct sockaddr_storage *ss,
		    unsigned timeout_ms, char *err, size_t errlen);
int probe_line_send(struct probe_line *l, const void *data, size_t n);
int probe_line_reply(struct probe_line *l, unsigned wait_ms, int *code, char *text,
		     size_t cap);
void probe_line_close(struct probe_line *l);

#endif
