/* dkim.c - `tern dkim keygen|check`: make a DKIM key and its TXT record; check what the DNS publishes. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "../dns/dns.h"
#include "../lib/buf.h"
#include "../mailauth/dkim.h"
#include "cli.h"

#define DEFAULT_KEY_DIR "/etc/tern/dkim"
#define KEY_FILE_MAX 8192	/* as ternd reads it (conf.h CONF_DKIM_PEM_MAX) */
#define TXT_STRING_MAX 255	/* octets of one TXT character-string (RFC 1035 3.3) */
#define CHECK_TIMEOUT_MS 2000
#define CHECK_TRIES 2

#define USAGE                                                                          \
	"usage: tern dkim keygen DOMAIN --selector S [--ed25519] [--bits N] [-d DIR]\n" \
	"       tern dkim check DOMAIN --selector S [-d DIR] [--dns-server ADDR[:PORT]]\n" \
	"       DIR: where the keys are (default " DEFAULT_KEY_DIR "), one per\n"    \
	"       DOMAIN.S.key; the record goes to S._domainkey.DOMAIN\n"

struct args {
	const char *domain;
	const char *selector;
	const char *dir;
	const char *dns_server;
	bool ed25519;
	unsigned bits;
};

/* LDH labels separated by dots: what a domain and a selector may be here. */
static bool ldh_name(const char *s)
{
	size_t label = 0, n = strlen(s);

	if (n == 0 || n > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || s[i - 1] == '-' || s[i - label] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-') ||
		    ++label > 63)
			return false;
	}
	return true;
}

/* argv[0] is "keygen" or "check"; 0, or -1 after a message. */
static int parse_args(int argc, char **argv, struct args *a, bool keygen)
{
	char *end;

	*a = (struct args){ .dir = DEFAULT_KEY_DIR };
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		bool has = i + 1 < argc;

		if (strcmp(o, "--selector") == 0 && has) {
			a->selector = argv[++i];
		} else if ((strcmp(o, "-d") == 0 || strcmp(o, "--dir") == 0) && has) {
			a->dir = argv[++i];
		} else if (keygen && strcmp(o, "--ed25519") == 0) {
			a->ed25519 = true;
		} else if (keygen && strcmp(o, "--bits") == 0 && has) {
			unsigned long b = strtoul(argv[++i], &end, 10);

			if (*end != '\0' || b < DKIM_RSA_MIN_BITS || b > 4096) {
				fprintf(stderr, "tern dkim: --bits must be %d to 4096 (2048 is the usual size)\n",
					DKIM_RSA_MIN_BITS);
				return -1;
			}
			a->bits = (unsigned)b;
		} else if (!keygen && strcmp(o, "--dns-server") == 0 && has) {
			a->dns_server = argv[++i];
		} else if (o[0] == '-' || a->domain != NULL) {
			fprintf(stderr, "tern dkim: unexpected argument '%s'\n", o);
			return -1;
		} else {
			a->domain = o;
		}
	}
	if (a->domain == NULL || a->selector == NULL) {
		fprintf(stderr, "tern dkim: give a DOMAIN and --selector S\n");
		return -1;
	}
	if (!ldh_name(a->domain) || !ldh_name(a->selector)) {
		fprintf(stderr, "tern dkim: '%s' is not a valid %s (letters, digits, '-' and '.')\n",
			ldh_name(a->domain) ? a->selector : a->domain,
			ldh_name(a->domain) ? "selector" : "domain");
		return -1;
	}
	if (a->ed25519 && a->bits != 0) {
		fprintf(stderr, "tern dkim: --bits is for RSA keys, not with --ed25519\n");
		return -1;
	}
	return 0;
}

static void key_path(const struct args *a, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s.%s.key", a->dir, a->domain, a->selector);
}

/* The zone file line: the record value split into strings of 255 octets. */
static void print_record(FILE *out, const struct args *a, const struct buf *rec)
{
	fprintf(out, "%s._domainkey.%s. IN TXT (", a->selector, a->domain);
	for (size_t i = 0; i < rec->len; i += TXT_STRING_MAX) {
		size_t n = rec->len - i < TXT_STRING_MAX ? rec->len - i : TXT_STRING_MAX;

		fprintf(out, " \"%.*s\"", (int)n, (const char *)rec->data + i);
	}
	fputs(" )\n", out);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int keygen(int argc, char **argv)
{
	struct args a;
	struct dkim_key *k;
	struct buf pem, rec;
	char path[4096], err[256];
	int fd, rc = 1;

	if (parse_args(argc, argv, &a, true) < 0) {
		fputs(USAGE, stderr);
		return 2;
	}
	key_path(&a, path, sizeof path);
	if (mkdir(a.dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "tern dkim: cannot create %s: %s\n", a.dir, strerror(errno));
		return 1;
	}
	k = dkim_key_generate(a.ed25519 ? DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256, a.bits, err,
			      sizeof err);
	if (k == NULL) {
		fprintf(stderr, "tern dkim: cannot make a key: %s\n", err);
		return 1;
	}
	buf_init(&pem, KEY_FILE_MAX);
	buf_init(&rec, DKIM_KEYREC_MAX);
	if (dkim_key_pem(k, &pem) < 0 || dkim_key_record(k, &rec) < 0) {
		fprintf(stderr, "tern dkim: cannot write the key out (out of memory?)\n");
		goto out;
	}
	/* O_EXCL: a key that is published must never be replaced by accident. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			fprintf(stderr, "tern dkim: %s exists: not overwritten (choose another selector, or remove it first)\n",
				path);
		else
			fprintf(stderr, "tern dkim: cannot create %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || write_all(fd, pem.data, pem.len) < 0 || fsync(fd) < 0) {
		fprintf(stderr, "tern dkim: cannot write %s: %s\n", path, strerror(errno));
		close(fd);
		unlink(path);
		goto out;
	}
	close(fd);
	printf("Wrote %s (%s, %u bits, mode 0600).\n\n", path,
	       a.ed25519 ? "Ed25519" : "RSA", dkim_key_bits(k));
	printf("Publish this TXT record in the DNS zone of %s:\n\n", a.domain);
	print_record(stdout, &a, &rec);
	printf("\nThen sign with it: add to ternd.conf\n\n    dkim_sign %s %s %s\n\n"
	       "and check the record with: tern dkim check %s --selector %s%s%s\n",
	       a.domain, a.selector, path, a.domain, a.selector,
	       strcmp(a.dir, DEFAULT_KEY_DIR) != 0 ? " -d " : "",
	       strcmp(a.dir, DEFAULT_KEY_DIR) != 0 ? a.dir : "");
	rc = 0;
out:
	explicit_bzero(pem.data, pem.len);
	buf_free(&pem);
	buf_free(&rec);
	dkim_key_free(k);
	return rc;
}

/* The answer of the one TXT lookup, copied out of the callback. */
struct lookup {
	bool done;
	enum dns_status status;
	char error[128];
	size_t n;
	struct buf txt[DNS_MAX_RECORDS];
};

static void on_txt(void *arg, const struct dns_txt_result *r)
{
	struct lookup *l = arg;

	l->done = true;
	l->status = r->status;
	snprintf(l->error, sizeof l->error, "%s", r->error);
	for (size_t i = 0; r->status == DNS_OK && i < r->n && i < DNS_MAX_RECORDS; i++) {
		buf_init(&l->txt[i], DKIM_KEYREC_MAX * 4);
		if (buf_append(&l->txt[i], r->txt[i].text, r->txt[i].len) == 0)
			l->n = i + 1;
	}
}

/* Read the key file (as ternd would) into its record value. */
static int record_of_file(const char *path, struct buf *rec)
{
	uint8_t data[KEY_FILE_MAX];
	struct dkim_key *k;
	char err[256];
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "tern dkim: cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (len < sizeof data && ((n = read(fd, data + len, sizeof data - len)) > 0 ||
				     (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	close(fd);
	k = dkim_key_load(data, len, err, sizeof err);
	explicit_bzero(data, sizeof data);
	if (k == NULL) {
		fprintf(stderr, "tern dkim: %s: %s\n", path, err);
		return -1;
	}
	n = dkim_key_record(k, rec);
	dkim_key_free(k);
	if (n < 0) {
		fprintf(stderr, "tern dkim: out of memory\n");
		return -1;
	}
	return 0;
}

static int check(int argc, char **argv)
{
	static struct lookup l;
	struct args a;
	struct dkim_keyrec want, got;
	struct buf rec;
	struct dns *d;
	uv_loop_t loop;
	char path[4096], name[DNS_NAME_MAX + 2], err[256], note[128];
	bool published = false, match = false;
	int rc = 1;

	if (parse_args(argc, argv, &a, false) < 0) {
		fputs(USAGE, stderr);
		return 2;
	}
	key_path(&a, path, sizeof path);
	buf_init(&rec, DKIM_KEYREC_MAX);
	if (record_of_file(path, &rec) < 0) {
		buf_free(&rec);
		return 1;
	}
	if (dkim_keyrec_parse(rec.data, rec.len, &want, note, sizeof note) != DKIM_R_OK) {
		fprintf(stderr, "tern dkim: the key's own record does not parse: %s\n", note);
		buf_free(&rec);
		return 1;
	}
	if ((size_t)snprintf(name, sizeof name, "%s._domainkey.%s", a.selector, a.domain) > DNS_NAME_MAX) {
		fprintf(stderr, "tern dkim: %s._domainkey.%s is too long a name\n", a.selector, a.domain);
		buf_free(&rec);
		return 2;
	}
	memset(&l, 0, sizeof l);
	uv_loop_init(&loop);
	d = dns_new(&loop, a.dns_server ? a.dns_server : "", CHECK_TIMEOUT_MS, CHECK_TRIES, err, sizeof err);
	if (d == NULL) {
		fprintf(stderr, "tern dkim: DNS: %s\n", err);
		uv_loop_close(&loop);
		buf_free(&rec);
		return 1;
	}
	if (dns_txt(d, name, on_txt, &l) < 0) {
		l.done = true;
		l.status = DNS_TEMPFAIL;
		snprintf(l.error, sizeof l.error, "out of memory");
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	dns_free(d, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);

	if (l.status == DNS_TEMPFAIL) {
		printf("%s: lookup failed: %s; try again\n", name, l.error[0] ? l.error : "no answer");
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		if (dkim_keyrec_parse(l.txt[i].data, l.txt[i].len, &got, note, sizeof note) != DKIM_R_OK)
			continue;	/* not a DKIM key record */
		published = true;
		if (got.ktype == want.ktype && got.p_len == want.p_len &&
		    memcmp(got.p, want.p, want.p_len) == 0)
			match = true;
	}
	if (match) {
		printf("%s: published and matches %s\n", name, path);
		rc = 0;
	} else if (published) {
		printf("%s: published but does not match: republish it as\n\n", name);
		print_record(stdout, &a, &rec);
		printf("\n(or sign with the key that is published)\n");
	} else {
		printf("%s: not published: add this TXT record in the zone of %s\n\n", name, a.domain);
		print_record(stdout, &a, &rec);
	}
out:
	for (size_t i = 0; i < l.n; i++)
		buf_free(&l.txt[i]);
	buf_free(&rec);
	return rc;
}

int cli_dkim(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return keygen(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return check(argc - 1, argv + 1);
	fputs(USAGE, stderr);
	return 2;
}
