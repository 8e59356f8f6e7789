/*
 * scram.h - the server side of SASL SCRAM-SHA-256 (RFC 5802, RFC 7677) and
 * CRAM-MD5 (RFC 2195), and SCRAM keys in Dovecot's stored form.
 *
 * SYNOPSIS
 *	struct scram_server x;
 *	scram_client_first(&x, msg, n);		 the client's first message
 *	(look up x.user: users_scram_keys(), else scram_fake_keys())
 *	scram_server_first(&x, &keys, snonce);	 send x.server_first
 *	scram_client_final(&x, msg, n, out, cap); send out ("v=...") on SCRAM_OK
 *
 *	scram_derive(pw, plen, salt, slen, iter, &keys);	 slow: thread pool
 *	scram_keys_parse(text, len, &keys);  scram_keys_format(&keys, out, cap);
 *	cram_md5_verify(chal, clen, resp, rlen, secret, slen, user, ucap);
 *
 * DESCRIPTION
 *	Messages are the decoded SASL payloads (the caller does base64);
 *	they need no NUL termination and a NUL inside is a syntax error.
 *	x holds everything one exchange needs; there is no allocation and no
 *	I/O here (OpenSSL allocates inside its HMAC/digest calls).
 *
 *	scram_client_first: RFC 5802 7. It starts the exchange (x is
 *	cleared). The gs2 header is "n,," or "y,," (we offer no -PLUS, so
 *	"y" is fine), optionally with "a=AUTHZID" which must equal the user
 *	(ASCII case-insensitively, as for PLAIN): a different one is
 *	SCRAM_ERR_AUTHZID. "p=..." is SCRAM_ERR_CB; a leading "m=" is
 *	SCRAM_ERR_EXT. The user ("n=") is a saslname: UTF-8, "=2C" is ','
 *	and "=3D" is '=', any other '=' is an error; no control characters;
 *	1..320 octets decoded, NUL-terminated into x->user. The client nonce
 *	is 1..SCRAM_NONCE_MAX printable ASCII octets except ','. Extensions
 *	after the nonce are checked for syntax (ALPHA "=" value) and
 *	ignored. The client-first-message-bare must fit SCRAM_MSG_MAX - 1
 *	octets and the gs2 header 63 (so an authzid of more than ~58 octets
 *	is SCRAM_ERR_SIZE).
 *
 *	scram_server_first: after a successful scram_client_first only.
 *	keys (copied into x) are the account's, or scram_fake_keys for an
 *	unknown name; server_nonce is 1..SCRAM_NONCE_MAX printable ASCII
 *	octets without ',' (e.g. base64 of 18 random bytes: the caller makes
 *	it). Writes "r=CNONCE SNONCE,s=B64SALT,i=ITER" NUL-terminated into
 *	x->server_first (sf_len octets).
 *
 *	scram_client_final: "c=B64,r=NONCE[,ext...],p=B64PROOF", the proof
 *	last. c must decode to exactly the gs2 header of the first message
 *	(else SCRAM_ERR_CB, "channel-bindings-dont-match"); r must be
 *	x->nonce and the proof must verify (else SCRAM_ERR_PROOF: count it
 *	as a failed login); anything malformed, or a message longer than
 *	SCRAM_MSG_MAX - 1, is SCRAM_ERR_SYNTAX / SCRAM_ERR_SIZE. The proof
 *	is checked as RFC 5802 3 says, comparing SHA-256(ClientKey) with
 *	StoredKey by CRYPTO_memcmp. On SCRAM_OK out (cap >= SCRAM_FINAL_MAX)
 *	holds "v=B64(ServerSignature)" NUL-terminated; on any error out is
 *	"". Whatever the result, the exchange is over: the keys in x are
 *	wiped and a second call is SCRAM_ERR_SYNTAX; x->user stays.
 *
 *	scram_derive: SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt,
 *	iter), ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey =
 *	SHA-256(ClientKey), ServerKey = HMAC(SaltedPassword, "Server Key").
 *	The password is used as given, without SASLprep (as Dovecot does):
 *	for ASCII passwords that is the same thing. Slow by design (iter
 *	rounds): thread pool or CLI only. salt 1..64 octets, iter >= 1.
 *
 *	scram_keys_parse/scram_keys_format: Dovecot's {SCRAM-SHA-256} value
 *	without the "{SCRAM-SHA-256}" (the caller strips/adds it):
 *	"ITER,B64SALT,B64STOREDKEY,B64SERVERKEY", e.g.
 *	4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2x...UUY=,Gg43...JzI=
 *	with padded RFC 4648 base64 (parsed strictly), ITER decimal in
 *	SCRAM_ITER_MIN..SCRAM_ITER_MAX, a salt of 16..64 octets, keys of 32.
 *	parse returns 0 or -1; format returns the length written
 *	(NUL-terminated) or 0 when it does not fit cap.
 *
 *	scram_fake_keys: for an unknown name, keys that look like a real
 *	account's made by scram_derive's callers (16-octet salt, iter
 *	SCRAM_ITER_DEFAULT) and are the same every time for the same name
 *	(ASCII case-folded), so that the server-first-message does not tell
 *	whether the name exists (RFC 5802 9, RFC 7677 4). They come from
 *	HMAC-SHA-256(secret, name); the secret must be the same in every
 *	worker and survive restarts (e.g. kept in a file), or two challenges
 *	for the same unknown name would show different salts. No proof
 *	matches them.
 *
 *	cram_md5_verify: RFC 2195: resp is "USER SP DIGEST", DIGEST 32 hex
 *	digits (either case) of HMAC-MD5(secret, challenge); the user is all
 *	before the last space (1..320 octets, no NUL or control characters).
 *	Compares in constant time. Returns 0 (match), -1 (wrong digest),
 *	-2 (malformed, or the user does not fit ucap), -3 (OpenSSL failed,
 *	e.g. MD5 disabled by a FIPS configuration: temporary). The user is
 *	written NUL-terminated into user_out on 0 and -1, "" otherwise. For
 *	an unknown user call it with a random secret, so the time is the same.
 *
 * DIAGNOSTICS
 *	enum scram_err; SCRAM_ERR_INTERNAL means OpenSSL failed (out of
 *	memory): a temporary failure, never a login.
 */
#ifndef TERN_SCRAM_H
#define TERN_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_NONCE_MAX 128
#define SCRAM_MSG_MAX 1024
#define SCRAM_KEY_LEN 32	/* SHA-256 */
#define SCRAM_SALT_MAX 64
#define SCRAM_SALT_MIN 16	/* for stored keys (scram_keys_parse) */
#define SCRAM_SALT_DEFAULT 16	/* Dovecot's, and scram_fake_keys' */
#define SCRAM_ITER_MIN 4096	/* RFC 7677 4: at least 4096 */
#define SCRAM_ITER_MAX 10000000
#define SCRAM_ITER_DEFAULT 4096	/* Dovecot's; scram_fake_keys uses it too */
/* "v=" + base64 of 32 octets + NUL */
#define SCRAM_FINAL_MAX 47
/* The longest scram_keys_format output: "10000000," + 3 base64 fields + NUL. */
#define SCRAM_KEYS_TEXT_MAX (9 + 88 + 1 + 44 + 1 + 44 + 1)

enum scram_err {
	SCRAM_OK = 0,
	SCRAM_ERR_SYNTAX = -1,
	SCRAM_ERR_CB = -2,
	SCRAM_ERR_EXT = -3,
	SCRAM_ERR_AUTHZID = -4,
	SCRAM_ERR_PROOF = -5,
	SCRAM_ERR_SIZE = -6,
	SCRAM_ERR_INTERNAL = -7,
};

struct scram_keys {
	unsigned iter;
	uint8_t salt[SCRAM_SALT_MAX];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* One exchange. */
struct scram_server {
	char user[321];		/* authcid, saslname-decoded, NUL-terminated */
	char client_first_bare[SCRAM_MSG_MAX];
	size_t cfb_len;
	char server_first[SCRAM_MSG_MAX];
	size_t sf_len;
	char nonce[2 * SCRAM_NONCE_MAX + 1];	/* client nonce + server nonce */
	char gs2_header[64];
	size_t gs2_len;
	struct scram_keys keys;
};

int scram_client_first(struct scram_server *x, const uint8_t *msg, size_t n);
int scram_server_first(struct scram_server *x, const struct scram_keys *keys,
		       const char *server_nonce);
int scram_client_final(struct scram_server *x, const uint8_t *msg, size_t n, char *out,
		       size_t cap);

int scram_derive(const char *password, size_t plen, const uint8_t *salt, size_t salt_len,
		 unsigned iter, struct scram_keys *out);
int scram_keys_parse(const char *text, size_t len, struct scram_keys *out);
size_t scram_keys_format(const struct scram_keys *k, char *out, size_t cap);
void scram_fake_keys(const uint8_t secret[32], const char *user, struct scram_keys *out);

int cram_md5_verify(const char *challenge, size_t clen, const uint8_t *resp, size_t rlen,
		    const char *secret, size_t slen, char *user_out, size_t ucap);

#endif
