/*
 * dkim_tool.c - mailauth/dkim from the command line, for tests/integration/test_dkim_interop.py.
 *
 *   dkim_tool sign [-t NOW] [-C CHUNK] (-k KEYFILE -d DOMAIN -s SELECTOR [-i AUID]
 *                  [-x EXPIRE] [-H name:name...])... MSGFILE
 *       prints the DKIM-Signature fields followed by the message
 *   dkim_tool verify [-t NOW] [-C CHUNK] [-K KEYSFILE] MSGFILE
 *       prints one line per signature:
 *       sig=N result=R reason="..." d=D s=S a=A b=PREFIX l_used=0|1
 *       unsigned=N testing=0|1 bits=N note="..."
 *       or "none", or "error result=R note=..."
 *   dkim_tool keygen rsa|ed25519 [BITS] PEMFILE   writes the key, prints its TXT record
 *   dkim_tool record KEYFILE                      prints the TXT record of a private key
 *   dkim_tool canon header|body simple|relaxed FILE   the canonical form, raw
 *   dkim_tool bodyhash simple|relaxed FILE        base64 SHA-256 of the canonical body
 *
 * KEYSFILE: one record per line, "<name> <TXT value>" (the first run of
 * blanks separates them, no trailing dot); a name may repeat (several TXT
 * records). Value NXDOMAIN: no such name; ~~text~~: a DNS failure
 * (temperror); "" : an empty TXT record. Lines starting with '#' or ';'
 * are comments. This is the FAKE_DNS.dat format of Mail::DKIM's corpus and
 * the key-record header of stalwart's files.
 *
 * CHUNK: the message is fed in pieces of that many octets (default 4096);
 * 0 means pseudo-random sizes of 1..64, seeded from the message length.
 * Exit status: 0 when the operation ran (whatever the DKIM results), 1 on
 * an error, 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailauth/dkim.h"
#include "proto/sasl.h"

static size_t chunk = 4096;

_Noreturn static void usage(void)
{
	fprintf(stderr, "usage: dkim_tool sign|verify|keygen|record|canon|bodyhash ... "
			"(see tests/unit/dkim_tool.c)\n");
	exit(2);
}

static int read_file(const char *path, struct buf *b)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	uint8_t tmp[65536];
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "dkim_tool: %s: %s\n", path, strerror(errno));
		return -1;
	}
	buf_init(b, SIZE_MAX);
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		if (buf_append(b, tmp, n) < 0)
			return -1;
	if (f != stdin)
		fclose(f);
	return 0;
}

static uint64_t rng;
static size_t next_chunk(void)
{
	if (chunk)
		return chunk;
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return 1 + (size_t)((rng >> 33) % 64);
}

/* ---- key records from a file ---- */

struct rec {
	char *name;
	char *value;		/* NULL: NXDOMAIN; "~~": DNS failure */
};
static struct rec *recs;
static size_t nrecs;
static struct buf keys_text;	/* the records point into it */

static int load_keys(const char *path)
{
	struct buf b;
	char *p, *end;

	if (keys_text.data != NULL || read_file(path, &b) < 0)
		return -1;
	buf_append(&b, "\n", 1);
	p = (char *)b.data;
	end = p + b.len;
	while (p < end) {
		char *eol = memchr(p, '\n', (size_t)(end - p));
		char *sp, *v;
		*eol = '\0';
		if (eol > p && eol[-1] == '\r')
			eol[-1] = '\0';
		if (*p == '\0' || *p == '#' || *p == ';') {
			p = eol + 1;
			continue;
		}
		sp = p + strcspn(p, " \t");
		v = sp + strspn(sp, " \t");
		*sp = '\0';
		recs = realloc(recs, (nrecs + 1) * sizeof *recs);
		if (recs == NULL)
			return -1;
		for (char *c = p; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		recs[nrecs].name = p;
		if (strcmp(v, "NXDOMAIN") == 0)
			recs[nrecs].value = NULL;
		else if (strncmp(v, "~~", 2) == 0)
			recs[nrecs].value = (char *)"~~";
		else if (strcmp(v, "\"\"") == 0)
			recs[nrecs].value = (char *)"";
		else
			recs[nrecs].value = v;
		nrecs++;
		p = eol + 1;
	}
	keys_text = b;
	return 0;
}

static void lookup(void *ctx, size_t i, const char *name)
{
	struct dkim_verify *v = ctx;
	struct slice txt[16];
	size_t n = 0;
	bool known = false;

	for (size_t k = 0; k < nrecs; k++) {
		if (strcmp(recs[k].name, name) != 0)
			continue;
		known = true;
		if (recs[k].value == NULL)
			continue;
		if (strcmp(recs[k].value, "~~") == 0) {
			dkim_key_answer(v, i, DKIM_KEY_TEMPFAIL, NULL, 0);
			return;
		}
		if (n < 16)
			txt[n++] = slice_from_str(recs[k].value);
	}
	if (!known || n == 0)
		dkim_key_answer(v, i, DKIM_KEY_NONE, NULL, 0);
	else
		dkim_key_answer(v, i, DKIM_KEY_FOUND, txt, n);
}

/* Printable words only: the note never holds message bytes, but be safe. */
static void print_quoted(const char *s)
{
	putchar('"');
	for (; *s; s++)
		putchar(*s == '"' || *s < 0x20 || *s > 0x7e ? '?' : *s);
	putchar('"');
}

static int cmd_verify(int argc, char **argv)
{
	struct dkim_verify_opts o = { 0 };
	struct dkim_verify *v;
	struct buf msg;
	int c, r;

	while ((c = getopt(argc, argv, "t:C:K:")) != -1) {
		switch (c) {
		case 't': o.now = (time_t)strtoll(optarg, NULL, 10); break;
		case 'C': chunk = (size_t)strtoul(optarg, NULL, 10); break;
		case 'K': if (load_keys(optarg) < 0) return 1; break;
		default: usage();
		}
	}
	if (optind + 1 != argc)
		usage();
	if (read_file(argv[optind], &msg) < 0)
		return 1;
	rng = msg.len;
	v = dkim_verify_begin(&o);
	if (v == NULL)
		return 1;
	for (size_t off = 0; off < msg.len;) {
		size_t n = next_chunk();
		if (n > msg.len - off)
			n = msg.len - off;
		if (dkim_verify_feed(v, msg.data + off, n) < 0)
			break;
		off += n;
	}
	r = dkim_verify_end(v, lookup, v);
	if (r < 0) {
		enum dkim_result res = DKIM_PERMERROR;
		const char *why = dkim_verify_error(v, &res);
		printf("error result=%s note=", dkim_result_name(res));
		print_quoted(why);
		putchar('\n');
	} else if (r > 0) {
		fprintf(stderr, "dkim_tool: %d lookups unanswered\n", r);
		return 1;
	} else if (dkim_verify_count(v) == 0) {
		printf("none\n");
	}
	for (size_t i = 0; r >= 0 && i < dkim_verify_count(v); i++) {
		const struct dkim_sig_result *s = dkim_verify_result(v, i);
		printf("sig=%zu result=%s reason=", i, dkim_result_name(s->result));
		print_quoted(dkim_reason_text(s->reason));
		printf(" d=%s s=%s a=%s b=%s l_used=%d unsigned=%llu testing=%d bits=%u note=",
		       s->d[0] ? s->d : "-", s->s[0] ? s->s : "-", s->a[0] ? s->a : "-",
		       s->b_prefix[0] ? s->b_prefix : "-", s->l_used,
		       (unsigned long long)s->unsigned_octets, s->testing, s->key_bits);
		print_quoted(s->note);
		putchar('\n');
	}
	if (dkim_verify_skipped(v))
		printf("skipped=%zu\n", dkim_verify_skipped(v));
	dkim_verify_free(v);
	buf_free(&msg);
	buf_free(&keys_text);
	free(recs);
	return 0;
}

static struct dkim_key *load_key(const char *path)
{
	struct buf b;
	char err[160];
	struct dkim_key *k;

	if (read_file(path, &b) < 0)
		return NULL;
	k = dkim_key_load(b.data, b.len, err, sizeof err);
	if (k == NULL)
		fprintf(stderr, "dkim_tool: %s: %s\n", path, err);
	buf_free(&b);
	return k;
}

#define MAXREQ 4
#define MAXNAMES 64

static int cmd_sign(int argc, char **argv)
{
	struct dkim_sign_req req[MAXREQ];
	char *names[MAXREQ][MAXNAMES + 1];
	size_t n = 0;
	time_t now = 0;
	struct buf msg, out;
	struct dkim_sign *s;
	char err[160];
	int c, rc;

	memset(req, 0, sizeof req);
	buf_init(&out, SIZE_MAX);
	while ((c = getopt(argc, argv, "t:C:k:d:s:i:x:H:")) != -1) {
		struct dkim_sign_req *q = n ? &req[n - 1] : NULL;
		switch (c) {
		case 't': now = (time_t)strtoll(optarg, NULL, 10); break;
		case 'C': chunk = (size_t)strtoul(optarg, NULL, 10); break;
		case 'k':
			if (n == MAXREQ)
				usage();
			req[n].key = load_key(optarg);
			if (req[n].key == NULL)
				return 1;
			n++;
			break;
		case 'd': if (!q) usage(); q->domain = optarg; break;
		case 's': if (!q) usage(); q->selector = optarg; break;
		case 'i': if (!q) usage(); q->auid = optarg; break;
		case 'x': if (!q) usage(); q->expire = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'H': {
			size_t k = 0;
			if (!q)
				usage();
			for (char *t = strtok(optarg, ":"); t && k < MAXNAMES; t = strtok(NULL, ":"))
				names[n - 1][k++] = t;
			names[n - 1][k] = NULL;
			q->headers = (const char *const *)names[n - 1];
			break;
		}
		default: usage();
		}
	}
	if (n == 0 || optind + 1 != argc)
		usage();
	if (read_file(argv[optind], &msg) < 0)
		return 1;
	rng = msg.len;
	s = dkim_sign_begin(req, n, now, err, sizeof err);
	if (s == NULL) {
		fprintf(stderr, "dkim_tool: %s\n", err);
		rc = 1;
		goto out;
	}
	for (size_t off = 0; off < msg.len;) {
		size_t k = next_chunk();
		if (k > msg.len - off)
			k = msg.len - off;
		if (dkim_sign_feed(s, msg.data + off, k) < 0)
			break;
		off += k;
	}
	if (dkim_sign_end(s, &out, err, sizeof err) < 0) {
		fprintf(stderr, "dkim_tool: %s\n", err);
		rc = 1;
		goto out;
	}
	if (out.len)
		fwrite(out.data, 1, out.len, stdout);
	if (msg.len)
		fwrite(msg.data, 1, msg.len, stdout);
	rc = 0;
out:
	dkim_sign_free(s);
	for (size_t i = 0; i < n; i++)
		dkim_key_free((struct dkim_key *)req[i].key);
	buf_free(&out);
	buf_free(&msg);
	return rc;
}

static int cmd_keygen(int argc, char **argv)
{
	enum dkim_alg alg;
	unsigned bits = 0;
	struct dkim_key *k;
	struct buf pem, rec;
	char err[160];
	FILE *f;

	if (argc < 3 || argc > 4)
		usage();
	if (strcmp(argv[1], "rsa") == 0)
		alg = DKIM_ALG_RSA_SHA256;
	else if (strcmp(argv[1], "ed25519") == 0)
		alg = DKIM_ALG_ED25519_SHA256;
	else
		usage();
	if (argc == 4)
		bits = (unsigned)strtoul(argv[2], NULL, 10);
	k = dkim_key_generate(alg, bits, err, sizeof err);
	if (k == NULL) {
		fprintf(stderr, "dkim_tool: %s\n", err);
		return 1;
	}
	buf_init(&pem, SIZE_MAX);
	buf_init(&rec, SIZE_MAX);
	if (dkim_key_pem(k, &pem) < 0 || dkim_key_record(k, &rec) < 0)
		return 1;
	f = fopen(argv[argc - 1], "wb");
	if (f == NULL || fwrite(pem.data, 1, pem.len, f) != pem.len || fclose(f) != 0) {
		fprintf(stderr, "dkim_tool: %s: %s\n", argv[argc - 1], strerror(errno));
		return 1;
	}
	printf("%.*s\n", (int)rec.len, (const char *)rec.data);
	buf_free(&pem);
	buf_free(&rec);
	dkim_key_free(k);
	return 0;
}

static int cmd_record(int argc, char **argv)
{
	struct dkim_key *k;
	struct buf rec;

	if (argc != 2)
		usage();
	k = load_key(argv[1]);
	if (k == NULL)
		return 1;
	buf_init(&rec, SIZE_MAX);
	if (dkim_key_record(k, &rec) < 0)
		return 1;
	printf("%.*s\n", (int)rec.len, (const char *)rec.data);
	buf_free(&rec);
	dkim_key_free(k);
	return 0;
}

static void sink(void *arg, const uint8_t *p, size_t n)
{
	buf_append(arg, p, n);
}

static enum dkim_canon canon_arg(const char *s)
{
	if (strcmp(s, "simple") == 0)
		return DKIM_CANON_SIMPLE;
	if (strcmp(s, "relaxed") == 0)
		return DKIM_CANON_RELAXED;
	usage();
}

/* canon header: the file holds complete header fields (each with its CR LF) */
static int cmd_canon(int argc, char **argv)
{
	struct buf in, out;
	enum dkim_canon c;

	if (argc != 4)
		usage();
	c = canon_arg(argv[2]);
	if (read_file(argv[3], &in) < 0)
		return 1;
	buf_init(&out, SIZE_MAX);
	if (strcmp(argv[1], "body") == 0) {
		struct dkim_bodycanon bc;
		dkim_bodycanon_init(&bc, c, sink, &out);
		dkim_bodycanon_feed(&bc, in.data, in.len);
		dkim_bodycanon_end(&bc);
	} else if (strcmp(argv[1], "header") == 0) {
		size_t i = 0;
		while (i < in.len) {	/* fields end at CR LF not followed by WSP */
			size_t j = i;
			for (;;) {
				uint8_t *lf = memchr(in.data + j, '\n', in.len - j);
				j = lf ? (size_t)(lf - in.data) + 1 : in.len;
				if (j >= in.len || (in.data[j] != ' ' && in.data[j] != '\t'))
					break;
			}
			dkim_canon_header(c, in.data + i, j - i, &out);
			i = j;
		}
	} else {
		usage();
	}
	if (out.len)
		fwrite(out.data, 1, out.len, stdout);
	buf_free(&in);
	buf_free(&out);
	return 0;
}

static int cmd_bodyhash(int argc, char **argv)
{
	struct buf in;
	uint8_t h[32];
	char t[48];

	if (argc != 3)
		usage();
	if (read_file(argv[2], &in) < 0)
		return 1;
	if (dkim_body_hash(canon_arg(argv[1]), in.data, in.len, false, 0, h) < 0)
		return 1;
	sasl_b64_encode(h, 32, t, sizeof t);
	printf("%s\n", t);
	buf_free(&in);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	argc--;
	argv++;
	if (strcmp(argv[0], "sign") == 0)
		return cmd_sign(argc, argv);
	if (strcmp(argv[0], "verify") == 0)
		return cmd_verify(argc, argv);
	if (strcmp(argv[0], "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (strcmp(argv[0], "record") == 0)
		return cmd_record(argc, argv);
	if (strcmp(argv[0], "canon") == 0)
		return cmd_canon(argc, argv);
	if (strcmp(argv[0], "bodyhash") == 0)
		return cmd_bodyhash(argc, argv);
	usage();
}
