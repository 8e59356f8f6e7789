/*
 * tls_client.h - TLS for our outgoing connections (the SMTP and LMTP client).
 *
 * SYNOPSIS
 *	SSL_CTX *ctx = tls_client_ctx("1.2", err, sizeof err);	 once; NULL: err says why
 *	SSL *ssl = tls_client_new(ctx, "mx.example.org", verify, err, sizeof err);
 *	... attach BIOs, SSL_do_handshake() ...
 *	ok = tls_client_verified(ssl, why, sizeof why);
 *	SSL_CTX_free(ctx);
 *
 * DESCRIPTION
 *	tls_client_ctx(): one context for every outgoing connection. Trust
 *	anchors are the system's CA store (SSL_CTX_set_default_verify_paths:
 *	/etc/ssl/certs on Debian). min_version is "1.2" (also for NULL or ""),
 *	"1.3", or, lowered by an operator's policy for old peers, "1.1" or
 *	"1.0"; anything else is refused. Ciphers: for TLS 1.2 ECDHE or DHE key
 *	exchange with AEAD ciphers only (TLS 1.3's suites are all AEAD). A
 *	policy of 1.0 or 1.1 also allows ECDHE/DHE with AES-CBC and drops
 *	OpenSSL's security level to 0, without which OpenSSL 3 refuses those
 *	versions (their handshake signs with SHA-1). No compression, no
 *	renegotiation.
 *
 *	tls_client_new(): a client-side SSL for one connection. name is the
 *	host the certificate is checked against and, when it is a DNS name,
 *	the SNI sent (RFC 6066 3; an IP literal is checked against the
 *	certificate's IP addresses and not sent as SNI). With verify the
 *	handshake fails unless the chain leads to a trusted CA and the
 *	certificate names `name` (SSL_VERIFY_PEER + SSL_set1_host, no partial
 *	wildcards: RFC 6125 6.4.3); verify needs a name. Without verify the
 *	same checks run but do not stop the handshake, so the result is still
 *	known for the log. The caller attaches BIOs and drives the handshake;
 *	SSL_free() releases it.
 *
 *	tls_client_verified(): after the handshake (or after it failed): true
 *	when the peer's certificate verified and names `name`; otherwise
 *	false with the reason in why ("certificate has expired", "hostname
 *	mismatch", "self-signed certificate", "no peer certificate", "no name
 *	to check the certificate against"). why is "" when true.
 *
 * DIAGNOSTICS
 *	NULL with a sentence in err (the OpenSSL reason when it has one).
 */
#ifndef TERN_TLS_CLIENT_H
#define TERN_TLS_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

SSL_CTX *tls_client_ctx(const char *min_version, char *err, size_t errlen);
SSL *tls_client_new(SSL_CTX *ctx, const char *name, bool verify, char *err, size_t errlen);
bool tls_client_verified(const SSL *ssl, char *why, size_t cap);

#endif
