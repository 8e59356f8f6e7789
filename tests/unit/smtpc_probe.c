/*
 * smtpc_probe.c - deliver one message with the SMTP/LMTP client (src/deliver/smtp_client.c)
 * from the command line; for tests/integration/test_smtp_client.py and for people.
 *
 *   smtpc_probe HOST PORT [--tls none|may|encrypt|verify|implicit] [--tls-name NAME]
 *               [--ca PEMFILE] [--min-tls 1.2] [--lmtp] [--auth USER PASS]
 *               [--helo NAME] [--from ADDR] [--to ADDR]... [--file MSG] [--count N]
 *               [--smtputf8] [--binary] [--size N] [--envid X] [--ret full|hdrs]
 *               [--notify LIST] [--orcpt X] [--auth-param ID] [--timeout MS]
 *
 * HOST is a name or address (resolved here, blocking: this is a driver), or
 * unix:/path with PORT ignored. The message is --file (sent as it is, BODY=8BITMIME
 * when it holds 8-bit octets) or a small built-in one; --count sends it N
 * times over the one connection. Prints one JSON object per line: "ready",
 * one "rcpt" per recipient per message, "done" per message, "closed".
 * Exit status: 0 when every recipient of every message was accepted, 1 when
 * not, 2 for a usage or setup error.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "deliver/smtp_client.h"
#include "lib/tls_client.h"

#define MAX_RCPTS 64

static struct smtpc_rcpt rcpts[MAX_RCPTS];
static struct smtpc_msg msg;
static struct iovec iov;
static int count = 1, sent, failures;

static void json_str(const char *key, const char *v, const char *sep)
{
	printf("\"%s\":\"", key);
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	printf("\"%s", sep);
}

static void json_result(const struct smtpc_result *r)
{
	printf("\"ok\":%s,\"stage\":\"%s\",\"code\":%d,", r->ok ? "true" : "false",
	       smtpc_stage_name(r->stage), r->code);
	json_str("enh", r->enh, ",");
	json_str("text", r->text, ",");
	printf("\"temporary\":%s,\"reusable\":%s,", r->temporary ? "true" : "false",
	       r->reusable ? "true" : "false");
	json_str("peer", r->peer, ",");
	json_str("tls_version", r->tls_version, ",");
	json_str("tls_cipher", r->tls_cipher, ",");
	printf("\"tls_verified\":%s,", r->tls_verified ? "true" : "false");
	json_str("tls_verify_error", r->tls_verify_error, ",");
	printf("\"tls_failed_may\":%s,\"esmtp\":%s,", r->tls_failed_may ? "true" : "false",
	       r->esmtp ? "true" : "false");
	json_str("auth_mech", r->auth_mech, ",");
	printf("\"bare_lf\":%s,", r->bare_lf ? "true" : "false");
	printf("\"ext\":{\"pipelining\":%s,\"size\":%s,\"size_limit\":%llu,\"8bitmime\":%s,"
	       "\"smtputf8\":%s,\"dsn\":%s,\"starttls\":%s,\"chunking\":%s,\"binarymime\":%s,"
	       "\"enhancedstatuscodes\":%s,\"auth\":%u}",
	       r->ext.pipelining ? "true" : "false", r->ext.has_size ? "true" : "false",
	       (unsigned long long)r->ext.size, r->ext.eightbitmime ? "true" : "false",
	       r->ext.smtputf8 ? "true" : "false", r->ext.dsn ? "true" : "false",
	       r->ext.starttls ? "true" : "false", r->ext.chunking ? "true" : "false",
	       r->ext.binarymime ? "true" : "false", r->ext.enhancedstatuscodes ? "true" : "false",
	       r->ext.auth);
}

static void on_ready(struct smtpc *c, const struct smtpc_result *r, void *arg)
{
	(void)arg;
	printf("{\"event\":\"ready\",");
	json_result(r);
	printf("}\n");
	fflush(stdout);
	if (!r->ok) {
		failures++;
		smtpc_quit(c);
		return;
	}
	sent++;
	if (smtpc_send(c, &msg) < 0) {
		printf("{\"event\":\"error\",\"text\":\"smtpc_send refused the message\"}\n");
		failures++;
		smtpc_quit(c);
	}
}

static void on_done(struct smtpc *c, struct smtpc_msg *m, const struct smtpc_result *r, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct smtpc_rcpt *rc = &m->rcpts[i];

		printf("{\"event\":\"rcpt\",\"msg\":%d,", sent);
		json_str("rcpt", rc->addr, ",");
		printf("\"code\":%d,", rc->code);
		json_str("enh", rc->enh, ",");
		json_str("text", rc->text, ",");
		printf("\"temporary\":%s}\n", rc->temporary ? "true" : "false");
		if (rc->code / 100 != 2)
			failures++;
	}
	printf("{\"event\":\"done\",\"msg\":%d,", sent);
	json_result(r);
	printf("}\n");
	fflush(stdout);
	if (r->reusable && sent < count) {
		sent++;
		if (smtpc_send(c, m) == 0)
			return;
		failures++;
	} else if (sent < count) {
		failures += count - sent;
	}
	smtpc_quit(c);
}

static void on_closed(void *arg)
{
	(void)arg;
	printf("{\"event\":\"closed\"}\n");
	fflush(stdout);
}

static int usage(void)
{
	fprintf(stderr,
		"usage: smtpc_probe HOST PORT [--tls none|may|encrypt|verify|implicit] "
		"[--tls-name NAME] [--ca PEM] [--min-tls V] [--lmtp] [--auth USER PASS] "
		"[--helo NAME] [--from A] [--to B]... [--file MSG] [--count N] [--smtputf8] "
		"[--binary] [--size N] [--envid X] [--ret full|hdrs] [--notify LIST] "
		"[--orcpt X] [--auth-param ID] [--timeout MS]\n");
	return 2;
}

static int read_file(const char *path, struct iovec *v)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t n = 0, cap = 0;

	if (f == NULL)
		return -1;
	for (;;) {
		size_t k;

		if (cap - n < 65536) {
			char *q = realloc(p, cap + 65536);

			if (q == NULL)
				break;
			p = q;
			cap += 65536;
		}
		k = fread(p + n, 1, cap - n, f);
		n += k;
		if (k == 0)
			break;
	}
	fclose(f);
	v->iov_base = p;
	v->iov_len = n;
	return p != NULL ? 0 : -1;
}

static unsigned notify_bits(const char *s)
{
	unsigned bits = 0;

	if (strcasestr(s, "never"))
		bits |= DSN_NOTIFY_NEVER;
	if (strcasestr(s, "success"))
		bits |= DSN_NOTIFY_SUCCESS;
	if (strcasestr(s, "failure"))
		bits |= DSN_NOTIFY_FAILURE;
	if (strcasestr(s, "delay"))
		bits |= DSN_NOTIFY_DELAY;
	return bits;
}

static int resolve(const char *host, const char *port, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;

	if (strncmp(host, "unix:", 5) == 0) {
		struct sockaddr_un *u = (struct sockaddr_un *)ss;

		if (strlen(host + 5) >= sizeof u->sun_path)
			return -1;
		memset(u, 0, sizeof *u);
		u->sun_family = AF_UNIX;
		memcpy(u->sun_path, host + 5, strlen(host + 5) + 1);
		return 0;
	}
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

int main(int argc, char **argv)
{
	static char builtin[1024];
	const char *from = "probe@localhost", *file = NULL, *ca = NULL, *min_tls = "1.2";
	const char *notify = NULL, *orcpt = NULL;
	struct smtpc_opts o;
	struct sockaddr_storage ss;
	SSL_CTX *ctx = NULL;
	uv_loop_t loop;
	struct smtpc *c;
	unsigned timeout = 0;
	size_t nto = 0;
	char err[256];

	if (argc < 3)
		return usage();
	smtpc_opts_init(&o);
	o.helo_name = "smtpc-probe.localhost";
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--lmtp") == 0) {
			o.lmtp = true;
			continue;
		}
		if (strcmp(a, "--smtputf8") == 0) {
			msg.smtputf8 = true;
			continue;
		}
		if (strcmp(a, "--binary") == 0) {
			msg.body = BODY_BINARYMIME;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(a, "--tls") == 0) {
			if (strcmp(v, "none") == 0)
				o.tls = SMTPC_TLS_NONE;
			else if (strcmp(v, "may") == 0)
				o.tls = SMTPC_TLS_MAY;
			else if (strcmp(v, "encrypt") == 0)
				o.tls = SMTPC_TLS_ENCRYPT;
			else if (strcmp(v, "verify") == 0)
				o.tls = SMTPC_TLS_VERIFY;
			else if (strcmp(v, "implicit") == 0)
				o.tls = SMTPC_TLS_IMPLICIT;
			else
				return usage();
		} else if (strcmp(a, "--tls-name") == 0) {
			o.tls_name = v;
		} else if (strcmp(a, "--verify-implicit") == 0) {
			o.tls_verify_implicit = strcmp(v, "yes") == 0;
		} else if (strcmp(a, "--ca") == 0) {
			ca = v;
		} else if (strcmp(a, "--min-tls") == 0) {
			min_tls = v;
		} else if (strcmp(a, "--auth") == 0) {
			if (i + 1 >= argc)
				return usage();
			o.auth_user = v;
			o.auth_pass = argv[++i];
		} else if (strcmp(a, "--helo") == 0) {
			o.helo_name = v;
		} else if (strcmp(a, "--from") == 0) {
			from = v;
		} else if (strcmp(a, "--to") == 0) {
			if (nto == MAX_RCPTS)
				return usage();
			rcpts[nto++].addr = v;
		} else if (strcmp(a, "--file") == 0) {
			file = v;
		} else if (strcmp(a, "--count") == 0) {
			count = atoi(v);
		} else if (strcmp(a, "--size") == 0) {
			msg.size = strtoull(v, NULL, 10);
		} else if (strcmp(a, "--envid") == 0) {
			msg.envid = v;
		} else if (strcmp(a, "--ret") == 0) {
			msg.ret = strcasecmp(v, "full") == 0 ? DSN_RET_FULL : DSN_RET_HDRS;
		} else if (strcmp(a, "--notify") == 0) {
			notify = v;
		} else if (strcmp(a, "--orcpt") == 0) {
			orcpt = v;
		} else if (strcmp(a, "--auth-param") == 0) {
			msg.auth_param = v;
		} else if (strcmp(a, "--timeout") == 0) {
			timeout = (unsigned)strtoul(v, NULL, 10);
		} else {
			return usage();
		}
	}
	if (nto == 0)
		rcpts[nto++].addr = "postmaster@localhost";
	if (count < 1)
		return usage();
	for (size_t i = 0; i < nto; i++) {
		rcpts[i].notify = notify ? notify_bits(notify) : 0;
		rcpts[i].orcpt = orcpt;
	}
	if (timeout) {
		o.connect_timeout_ms = o.greeting_timeout_ms = o.helo_timeout_ms = timeout;
		o.mail_timeout_ms = o.rcpt_timeout_ms = o.data_timeout_ms = timeout;
		o.block_timeout_ms = o.dot_timeout_ms = timeout;
	}
	if (file != NULL) {
		if (read_file(file, &iov) < 0) {
			fprintf(stderr, "smtpc_probe: cannot read %s\n", file);
			return 2;
		}
		if (msg.body != BODY_BINARYMIME)
			for (size_t i = 0; i < iov.iov_len; i++)
				if (((unsigned char *)iov.iov_base)[i] >= 0x80) {
					msg.body = BODY_8BITMIME;
					break;
				}
	} else {
		int n = snprintf(builtin, sizeof builtin,
				 "From: <%s>\r\nTo: <%s>\r\nSubject: smtpc_probe\r\n"
				 "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
				 "Message-ID: <probe@smtpc-probe.localhost>\r\n\r\n"
				 "Hello from smtpc_probe.\r\n.A line that starts with a dot.\r\n",
				 from, rcpts[0].addr);

		iov.iov_base = builtin;
		iov.iov_len = n > 0 && (size_t)n < sizeof builtin ? (size_t)n : 0;
	}
	msg.mail_from = from;
	msg.rcpts = rcpts;
	msg.nrcpts = nto;
	msg.data = &iov;
	msg.ndata = 1;
	if (resolve(argv[1], argv[2], &ss) < 0) {
		fprintf(stderr, "smtpc_probe: cannot resolve %s port %s\n", argv[1], argv[2]);
		return 2;
	}
	if (o.tls != SMTPC_TLS_NONE) {
		if ((ctx = tls_client_ctx(min_tls, err, sizeof err)) == NULL) {
			fprintf(stderr, "smtpc_probe: %s\n", err);
			return 2;
		}
		if (ca != NULL && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
			fprintf(stderr, "smtpc_probe: cannot load %s\n", ca);
			SSL_CTX_free(ctx);
			return 2;
		}
		o.tls_ctx = ctx;
	}
	uv_loop_init(&loop);
	c = smtpc_connect(&loop, (struct sockaddr *)&ss, &o,
			  &(struct smtpc_callbacks){ on_ready, on_done, on_closed }, NULL, err,
			  sizeof err);
	if (c == NULL) {
		fprintf(stderr, "smtpc_probe: %s\n", err);
		SSL_CTX_free(ctx);
		return 2;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	SSL_CTX_free(ctx);
	if (file != NULL)
		free(iov.iov_base);
	return failures == 0 ? 0 : 1;
}
