/*
 * tls.h - the server's TLS context (OpenSSL 3), made once in the parent.
 *
 * SYNOPSIS
 *	SSL_CTX *ctx = tls_server_ctx(&c, NULL, err, sizeof err);	 NULL: err says why
 *	tls_fingerprint(ctx, fp, sizeof fp);			 "sha256:AB:CD:..."
 *
 * DESCRIPTION
 *	tls_server_ctx() loads tls_cert and tls_key, or, when tls_cert is
 *	empty, the self-signed pair in DATA_DIR/tls/ (cert.pem, key.pem),
 *	making it on first start: RSA 2048, SHA-256, CN and subjectAltName
 *	the hostname, valid 825 days (the CA/Browser limit for leaf
 *	certificates), logged with its fingerprint. A key file readable by
 *	group or others is refused (the OpenSMTPD check_file_secrecy rule).
 *
 *	Policy (DESIGN.md): TLS 1.2 minimum (tls_min_version may raise it to
 *	1.3), 1.3 preferred; for 1.2 only ECDHE key exchange with AEAD
 *	ciphers; the server's cipher order; no renegotiation, no compression.
 *	Session tickets stay on: the ticket keys are made with the context, in
 *	the parent, so every worker can resume every worker's sessions; a
 *	reload passes the old context and its ticket keys carry over.
 *
 *	SNI (RFC 6066 3): each `tls_sni CERT KEY` is a further context; the
 *	names it answers for are its certificate's DNS subjectAltNames (the
 *	CN when it has none), "*.example.com" matching one label. A client
 *	naming none of them, or sending no SNI, gets the default certificate.
 *
 * DIAGNOSTICS
 *	NULL with a sentence naming the file and the OpenSSL reason in err.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "../conf/conf.h"

/* old: the context this one replaces on reload (its ticket keys are kept), or NULL. */
SSL_CTX *tls_server_ctx(const struct conf *c, SSL_CTX *old, char *err, size_t errlen);
/* Free a context made by tls_server_ctx, with its SNI certificates. */
void tls_server_free(SSL_CTX *ctx);
void tls_fingerprint(SSL_CTX *ctx, char *out, size_t cap);
/* The newest OpenSSL error reason, for a log line. */
const char *tls_error_reason(void);

#endif
