/* tls.c - server TLS context, key checks, the self-signed certificate; see tls.h. */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define SELFSIGNED_DAYS 825

/* For TLS 1.2: ECDHE key exchange, AEAD ciphers only (DESIGN.md). */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

const char *tls_error_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "unknown";
}

static int fail(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "%s %s: %s", what, path, tls_error_reason());
	ERR_clear_error();
	return -1;
}

static int key_private(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s is readable by group or others (chmod 600 %s)", path, path);
		return -1;
	}
	return 0;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
		 : PEM_write_X509(f, cert);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		ok = 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* A certificate for hostname, signed by its own key. */
static int make_selfsigned(const char *hostname, const char *cert_path, const char *key_path,
			   char *err, size_t errlen)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	X509 *x = X509_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char san[CONF_NAME_MAX + 8];
	int r = -1;

	snprintf(san, sizeof san, "DNS:%s", hostname);
	if (key == NULL || x == NULL || RAND_bytes(serial, sizeof serial) != 1)
		goto out;
	serial[0] &= 0x7f; /* a positive serial (RFC 5280 4.1.2.2) */
	if ((bn = BN_bin2bn(serial, sizeof serial, NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    !X509_set_version(x, 2) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 60L * 60 * 24 * SELFSIGNED_DAYS) == NULL ||
	    !X509_set_pubkey(x, key) ||
	    !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
					(const unsigned char *)hostname, -1, -1, 0) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(x)) ||
	    add_ext(x, NID_subject_alt_name, san) < 0 ||
	    add_ext(x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
	    X509_sign(x, key, EVP_sha256()) == 0)
		goto out;
	if (write_pem(key_path, 0600, key, NULL) < 0 || write_pem(cert_path, 0644, NULL, x) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", key_path, strerror(errno));
		r = -2;
		goto out;
	}
	r = 0;
out:
	if (r == -1)
		snprintf(err, errlen, "cannot make a self-signed certificate: %s", tls_error_reason());
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(key);
	return r < 0 ? -1 : 0;
}

void tls_fingerprint(SSL_CTX *ctx, char *out, size_t cap)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	X509 *x = SSL_CTX_get0_certificate(ctx);
	size_t o;

	o = (size_t)snprintf(out, cap, "sha256:");
	if (x == NULL || !X509_digest(x, EVP_sha256(), md, &n))
		n = 0;
	for (unsigned i = 0; i < n && o + 4 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, i ? ":%02X" : "%02X", md[i]);
}

/* One context: the policy of tls.h with this certificate chain and key. */
static SSL_CTX *load_ctx(const struct conf *c, const char *cert, const char *key,
			 char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (key_private(key, err, errlen) < 0)
		return NULL;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		fail(err, errlen, "cannot create a TLS context for", cert);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, strcmp(c->tls_min_version, "1.3") == 0 ?
					     TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* One TLS 1.3 ticket, not OpenSSL's two: an SMTP client reconnects
	 * one connection at a time, and each ticket costs the handshake about
	 * an eighth of its CPU (measured: docs/benchmarks.md). */
	SSL_CTX_set_num_tickets(ctx, 1);
	if (!SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		fail(err, errlen, "cannot load certificate", cert);
		goto bad;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		fail(err, errlen, "cannot load key (or it does not match the certificate)", key);
		goto bad;
	}
	return ctx;
bad:
	SSL_CTX_free(ctx);
	return NULL;
}

/* The extra certificates, found by the name the client asks for (RFC 6066 3). */
struct sni_entry {
	char name[CONF_NAME_MAX];	/* lower case; "*.example.com" matches one label */
	SSL_CTX *ctx;
};

struct sni_table {
	SSL_CTX *ctx[CONF_MAX_SNI];
	size_t nctx;
	struct sni_entry *v;
	size_t n, cap;
};

static int sni_add(struct sni_table *t, const char *name, size_t len, SSL_CTX *ctx)
{
	struct sni_entry *e;

	if (len == 0 || len >= CONF_NAME_MAX || memchr(name, '\0', len) != NULL)
		return 0; /* not a name anyone can ask for */
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct sni_entry *v = realloc(t->v, cap * sizeof *v);

		if (v == NULL)
			return -1;
		t->v = v;
		t->cap = cap;
	}
	e = &t->v[t->n++];
	for (size_t i = 0; i < len; i++)
		e->name[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	e->name[len] = '\0';
	e->ctx = ctx;
	return 0;
}

/* The names a certificate is for: its DNS subjectAltNames (RFC 6125 6.4.4:
 * the CN only when there are none). */
static int sni_names(struct sni_table *t, SSL_CTX *ctx)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	size_t before = t->n;
	int r = 0;

	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && r == 0; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

		if (g->type == GEN_DNS)
			r = sni_add(t, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
				    (size_t)ASN1_STRING_length(g->d.dNSName), ctx);
	}
	GENERAL_NAMES_free(sans);
	if (r == 0 && t->n == before) {
		char cn[CONF_NAME_MAX];
		int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
						  sizeof cn);

		if (n > 0)
			r = sni_add(t, cn, (size_t)n, ctx);
	}
	return r;
}

static bool name_matches(const char *pattern, const char *name)
{
	const char *dot;

	if (strcasecmp(pattern, name) == 0)
		return true;
	/* "*.example.com" stands for exactly one more label. */
	if (pattern[0] != '*' || pattern[1] != '.' || (dot = strchr(name, '.')) == NULL || dot == name)
		return false;
	return strcasecmp(pattern + 1, dot) == 0;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
	const struct sni_table *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	if (name == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (size_t i = 0; i < t->n; i++)
		if (name_matches(t->v[i].name, name)) {
			SSL_set_SSL_CTX(ssl, t->v[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	/* Unknown name: the default certificate, as every MTA does. */
	return SSL_TLSEXT_ERR_OK;
}

static int sni_index = -1;

static void sni_free(struct sni_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nctx; i++)
		SSL_CTX_free(t->ctx[i]);
	free(t->v);
	free(t);
}

void tls_server_free(SSL_CTX *ctx)
{
	if (ctx == NULL)
		return;
	if (sni_index >= 0)
		sni_free(SSL_CTX_get_ex_data(ctx, sni_index));
	SSL_CTX_free(ctx);
}

static int load_sni(const struct conf *c, SSL_CTX *ctx, char *err, size_t errlen)
{
	struct sni_table *t;
	char fp[128];
	size_t i;

	if (c->ntls_sni == 0)
		return 0;
	if (sni_index < 0)
		sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (sni_index < 0 || (t = calloc(1, sizeof *t)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < c->ntls_sni; i++) {
		const struct tls_sni_conf *sc = &c->tls_sni[i];
		size_t before = t->n;

		if ((t->ctx[t->nctx] = load_ctx(c, sc->cert, sc->key, err, errlen)) == NULL)
			goto bad;
		t->nctx++;
		if (sni_names(t, t->ctx[t->nctx - 1]) < 0) {
			snprintf(err, errlen, "out of memory");
			goto bad;
		}
		if (t->n == before) {
			snprintf(err, errlen, "%s: the certificate names no host (no DNS subjectAltName or CN)",
				 sc->cert);
			goto bad;
		}
		tls_fingerprint(t->ctx[t->nctx - 1], fp, sizeof fp);
		for (size_t k = before; k < t->n; k++)
			log_event(LOG_INFO, "event=tls-sni-cert name=%s cert=%s fingerprint=%s",
				  t->v[k].name, sc->cert, fp);
	}
	SSL_CTX_set_ex_data(ctx, sni_index, t);
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, t);
	return 0;
bad:
	sni_free(t);
	return -1;
}

SSL_CTX *tls_server_ctx(const struct conf *c, SSL_CTX *old, char *err, size_t errlen)
{
	char dir[CONF_PATH_MAX + 8], cert[CONF_PATH_MAX + 32], key[CONF_PATH_MAX + 32];
	unsigned char tickets[80];
	char fp[128];
	SSL_CTX *ctx = NULL;
	bool made = false;

	if (c->tls_cert[0] != '\0') {
		snprintf(cert, sizeof cert, "%s", c->tls_cert);
		snprintf(key, sizeof key, "%s", c->tls_key);
	} else {
		snprintf(dir, sizeof dir, "%s/tls", c->data_dir);
		snprintf(cert, sizeof cert, "%s/cert.pem", dir);
		snprintf(key, sizeof key, "%s/key.pem", dir);
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
			return NULL;
		}
		if (access(cert, F_OK) != 0 || access(key, F_OK) != 0) {
			if (make_selfsigned(c->hostname, cert, key, err, errlen) < 0)
				return NULL;
			made = true;
		}
	}
	if ((ctx = load_ctx(c, cert, key, err, errlen)) == NULL)
		return NULL;
	if (load_sni(c, ctx, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* A reload keeps the ticket keys: clients resume across it. */
	if (old != NULL && SSL_CTX_get_tlsext_ticket_keys(old, tickets, sizeof tickets) == 1)
		SSL_CTX_set_tlsext_ticket_keys(ctx, tickets, sizeof tickets);
	OPENSSL_cleanse(tickets, sizeof tickets);
	tls_fingerprint(ctx, fp, sizeof fp);
	log_event(LOG_INFO, "event=%s cert=%s fingerprint=%s min_version=%s",
		  made ? "tls-selfsigned" : "tls-cert", cert, fp, c->tls_min_version);
	if (made)
		log_event(LOG_INFO, "event=tls-cert cert=%s fingerprint=%s min_version=%s", cert,
			  fp, c->tls_min_version);
	return ctx;
}
