/* tls_client.c - the outgoing TLS context and per-connection checks; see tls_client.h. */
#include "tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

/* TLS 1.2: forward secrecy and AEAD only (the server's policy, DESIGN.md). */
#define CLIENT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
/* An operator's 1.0/1.1 policy: what such peers can speak, still with forward secrecy. */
#define CLIENT_CIPHERS_OLD CLIENT_CIPHERS ":ECDHE+AES:DHE+AES:!aNULL:!eNULL:@SECLEVEL=0"

static const char *ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "unknown reason";
}

SSL_CTX *tls_client_ctx(const char *min_version, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	int v;

	if (min_version == NULL || min_version[0] == '\0' || strcmp(min_version, "1.2") == 0)
		v = TLS1_2_VERSION;
	else if (strcmp(min_version, "1.3") == 0)
		v = TLS1_3_VERSION;
	else if (strcmp(min_version, "1.1") == 0)
		v = TLS1_1_VERSION;
	else if (strcmp(min_version, "1.0") == 0)
		v = TLS1_VERSION;
	else {
		snprintf(err, errlen, "TLS minimum version \"%s\": use 1.0, 1.1, 1.2 or 1.3",
			 min_version);
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto bad;
	if (!SSL_CTX_set_min_proto_version(ctx, v) ||
	    !SSL_CTX_set_cipher_list(ctx, v < TLS1_2_VERSION ? CLIENT_CIPHERS_OLD : CLIENT_CIPHERS) ||
	    SSL_CTX_set_default_verify_paths(ctx) != 1)
		goto bad;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
bad:
	snprintf(err, errlen, "cannot create the TLS client context: %s", ossl_reason());
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

static bool is_ip_literal(const char *name)
{
	unsigned char a[16];

	return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

SSL *tls_client_new(SSL_CTX *ctx, const char *name, bool verify, char *err, size_t errlen)
{
	bool named = name != NULL && name[0] != '\0';
	SSL *ssl = NULL;
	int ok = 1;

	if (verify && !named) {
		snprintf(err, errlen, "TLS verification needs a host name to check");
		return NULL;
	}
	if ((ssl = SSL_new(ctx)) == NULL)
		goto bad;
	if (named && is_ip_literal(name)) {
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
	} else if (named) {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = SSL_set1_host(ssl, name) && SSL_set_tlsext_host_name(ssl, name);
	}
	if (!ok)
		goto bad;
	/* Without verify the checks still run; the result is read afterwards. */
	SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	SSL_set_connect_state(ssl);
	return ssl;
bad:
	snprintf(err, errlen, "cannot set up TLS for %s: %s", named ? name : "the peer",
		 ossl_reason());
	ERR_clear_error();
	SSL_free(ssl);
	return NULL;
}

/* Whether tls_client_new() gave the connection a name to check. */
static bool has_reference(const SSL *ssl)
{
	X509_VERIFY_PARAM *vp = SSL_get0_param((SSL *)ssl);
	char *ip;
	bool named;

	if (X509_VERIFY_PARAM_get0_host(vp, 0) != NULL)
		return true;
	ip = X509_VERIFY_PARAM_get1_ip_asc(vp);
	named = ip != NULL;
	OPENSSL_free(ip);
	return named;
}

bool tls_client_verified(const SSL *ssl, char *why, size_t cap)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	long r = SSL_get_verify_result(ssl);

	if (peer == NULL)
		snprintf(why, cap, "no peer certificate");
	else if (r != X509_V_OK)
		snprintf(why, cap, "%s", X509_verify_cert_error_string(r));
	else if (!has_reference(ssl))
		snprintf(why, cap, "no name to check the certificate against");
	else {
		if (cap > 0)
			why[0] = '\0';
		return true;
	}
	return false;
}
