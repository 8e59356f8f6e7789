/* test_proto_scram.c - cmocka tests for proto/scram.c: SCRAM-SHA-256 (RFC 5802/7677), Dovecot's stored keys, CRAM-MD5 (RFC 2195). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proto/sasl.h"
#include "proto/scram.h"

/* RFC 7677 section 3. */
#define RFC_CFIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SFIRST                                                                   \
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==," \
	"i=4096"
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CFINAL                                                                   \
	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"                   \
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* `doveadm pw -s SCRAM-SHA-256 -p pencil` (Dovecot 2.3.19.1), without "{SCRAM-SHA-256}". */
#define DOVECOT_PENCIL                                                       \
	"4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=," \
	"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI="

static struct scram_server x;	/* 3 KiB: not on the stack of every test */
static char out[128];

static int first(const char *msg)
{
	return scram_client_first(&x, (const uint8_t *)msg, strlen(msg));
}

static int final(const char *msg)
{
	return scram_client_final(&x, (const uint8_t *)msg, strlen(msg), out, sizeof out);
}

static void keys_equal(const struct scram_keys *a, const struct scram_keys *b)
{
	assert_int_equal(a->iter, b->iter);
	assert_int_equal(a->salt_len, b->salt_len);
	assert_memory_equal(a->salt, b->salt, a->salt_len);
	assert_memory_equal(a->stored_key, b->stored_key, 32);
	assert_memory_equal(a->server_key, b->server_key, 32);
}

static void rfc_keys(struct scram_keys *k)
{
	uint8_t salt[16];
	struct slice s = SLICE_LIT("W22ZaJ0SNY7soEsUEjb6gQ==");

	assert_int_equal(sasl_b64_decode(s, salt, sizeof salt), 16);
	assert_int_equal(scram_derive("pencil", 6, salt, 16, 4096, k), 0);
}

/* The RFC's exchange up to the server-first-message. */
static void rfc_start(void)
{
	struct scram_keys k;

	rfc_keys(&k);
	assert_int_equal(first(RFC_CFIRST), SCRAM_OK);
	assert_int_equal(scram_server_first(&x, &k, RFC_SNONCE), SCRAM_OK);
}

/*
 * The client's side, for exchanges the RFC has no example of: the
 * client-final-message for password pw, with c= the base64 of gs2 and
 * extra (",x=..." or "") before the proof.
 */
static void client_final(const char *pw, const char *gs2, const char *nonce, const char *extra,
			 char *msg, size_t cap)
{
	uint8_t salted[32], ck[32], sk[32], sig[32], proof[32];
	char am[4096], c64[256], p64[64], wp[1024];
	unsigned len;
	size_t n;

	assert_int_equal(PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), x.keys.salt,
					   (int)x.keys.salt_len, (int)x.keys.iter, EVP_sha256(),
					   32, salted), 1);
	assert_non_null(HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, ck,
			     &len));
	assert_int_equal(EVP_Digest(ck, 32, sk, &len, EVP_sha256(), NULL), 1);
	assert_true(sasl_b64_encode((const uint8_t *)gs2, strlen(gs2), c64, sizeof c64) > 0);
	snprintf(wp, sizeof wp, "c=%s,r=%s%s", c64, nonce, extra);
	n = (size_t)snprintf(am, sizeof am, "%s,%s,%s", x.client_first_bare, x.server_first, wp);
	assert_non_null(HMAC(EVP_sha256(), sk, 32, (const uint8_t *)am, n, sig, &len));
	for (int i = 0; i < 32; i++)
		proof[i] = ck[i] ^ sig[i];
	assert_true(sasl_b64_encode(proof, 32, p64, sizeof p64) > 0);
	snprintf(msg, cap, "%s,p=%s", wp, p64);
}

static void test_rfc7677_exchange(void **state)
{
	(void)state;
	rfc_start();
	assert_string_equal(x.user, "user");
	assert_string_equal(x.gs2_header, "n,,");
	assert_int_equal(x.gs2_len, 3);
	assert_string_equal(x.client_first_bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
	assert_int_equal(x.cfb_len, strlen("n=user,r=rOprNGfwEbeRWgbNEkqO"));
	assert_string_equal(x.server_first, RFC_SFIRST);
	assert_int_equal(x.sf_len, strlen(RFC_SFIRST));
	assert_string_equal(x.nonce, RFC_NONCE);
	assert_int_equal(final(RFC_CFINAL), SCRAM_OK);
	assert_string_equal(out, RFC_SFINAL);
	/* over: a replay of the same message on the same state fails */
	assert_string_equal(x.user, "user");
	assert_int_equal(final(RFC_CFINAL), SCRAM_ERR_SYNTAX);
	assert_string_equal(out, "");
	assert_int_equal(scram_server_first(&x, &x.keys, RFC_SNONCE), SCRAM_ERR_SYNTAX);
}

static void test_tampered_proof(void **state)
{
	char msg[256];

	(void)state;
	/* every octet of the proof flipped in turn (base64 stays valid) */
	for (size_t i = strlen(RFC_CFINAL) - 44; i < strlen(RFC_CFINAL) - 1; i += 7) {
		rfc_start();
		snprintf(msg, sizeof msg, "%s", RFC_CFINAL);
		msg[i] = msg[i] == 'A' ? 'B' : 'A';
		assert_int_equal(final(msg), SCRAM_ERR_PROOF);
		assert_string_equal(out, "");
	}
	/* the RFC's proof with a wrong password's keys */
	{
		struct scram_keys k;
		uint8_t salt[16];

		assert_int_equal(sasl_b64_decode(SLICE_LIT("W22ZaJ0SNY7soEsUEjb6gQ=="), salt, 16),
				 16);
		assert_int_equal(scram_derive("pencim", 6, salt, 16, 4096, &k), 0);
		assert_int_equal(first(RFC_CFIRST), SCRAM_OK);
		assert_int_equal(scram_server_first(&x, &k, RFC_SNONCE), SCRAM_OK);
		assert_int_equal(final(RFC_CFINAL), SCRAM_ERR_PROOF);
	}
	/* the right password, a good proof, but through fake keys */
	{
		struct scram_keys k;
		uint8_t secret[32] = { 1, 2, 3 };

		scram_fake_keys(secret, "user", &k);
		assert_int_equal(first(RFC_CFIRST), SCRAM_OK);
		assert_int_equal(scram_server_first(&x, &k, RFC_SNONCE), SCRAM_OK);
		client_final("pencil", "n,,", RFC_NONCE, "", msg, sizeof msg);
		assert_int_equal(final(msg), SCRAM_ERR_PROOF);
	}
}

static void test_wrong_nonce(void **state)
{
	char msg[512];

	(void)state;
	/* a correct proof over a different nonce */
	rfc_start();
	client_final("pencil", "n,,", "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1", "",
		     msg, sizeof msg);
	assert_int_equal(final(msg), SCRAM_ERR_PROOF);
	/* only the client's half */
	rfc_start();
	client_final("pencil", "n,,", "rOprNGfwEbeRWgbNEkqO", "", msg, sizeof msg);
	assert_int_equal(final(msg), SCRAM_ERR_PROOF);
	/* a longer one */
	rfc_start();
	client_final("pencil", "n,,", RFC_NONCE "x", "", msg, sizeof msg);
	assert_int_equal(final(msg), SCRAM_ERR_PROOF);
	/* and the client helper agrees with the RFC when it is right */
	rfc_start();
	client_final("pencil", "n,,", RFC_NONCE, "", msg, sizeof msg);
	assert_string_equal(msg, RFC_CFINAL);
	assert_int_equal(final(msg), SCRAM_OK);
	assert_string_equal(out, RFC_SFINAL);
}

static void test_channel_binding(void **state)
{
	char msg[512];

	(void)state;
	assert_int_equal(first("p=tls-unique,,n=user,r=abc"), SCRAM_ERR_CB);
	assert_int_equal(first("p=tls-exporter,a=user,n=user,r=abc"), SCRAM_ERR_CB);
	assert_int_equal(first("p="), SCRAM_ERR_CB);
	assert_string_equal(x.user, "");
	/* refused: no server-first can follow */
	assert_int_equal(scram_server_first(&x, &x.keys, "abc"), SCRAM_ERR_SYNTAX);

	/* "y": the client could bind but thinks we cannot: fine, and c= must say y */
	assert_int_equal(first("y,,n=user,r=rOprNGfwEbeRWgbNEkqO"), SCRAM_OK);
	{
		struct scram_keys k;

		rfc_keys(&k);
		assert_int_equal(scram_server_first(&x, &k, RFC_SNONCE), SCRAM_OK);
	}
	client_final("pencil", "y,,", RFC_NONCE, "", msg, sizeof msg);
	assert_true(strncmp(msg, "c=eSws,", 7) == 0);
	assert_int_equal(final(msg), SCRAM_OK);

	/* c= that is not the gs2 header seen */
	rfc_start();
	client_final("pencil", "y,,", RFC_NONCE, "", msg, sizeof msg);
	assert_int_equal(final(msg), SCRAM_ERR_CB);
	rfc_start();
	assert_int_equal(final("c=biwsAAAA,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
			 SCRAM_ERR_CB);
	rfc_start();
	assert_int_equal(final("c=cD10bHMtdW5pcXVlLCw=,r=" RFC_NONCE
			       ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
			 SCRAM_ERR_CB);
}

static void test_authzid(void **state)
{
	struct scram_keys k;
	char msg[512];

	(void)state;
	assert_int_equal(first("n,a=admin,n=user,r=abc"), SCRAM_ERR_AUTHZID);
	assert_string_equal(x.user, "user");	/* kept for the log */
	assert_int_equal(scram_server_first(&x, &x.keys, "abc"), SCRAM_ERR_SYNTAX);
	assert_int_equal(first("n,a=use,n=user,r=abc"), SCRAM_ERR_AUTHZID);
	assert_int_equal(first("n,a=userx,n=user,r=abc"), SCRAM_ERR_AUTHZID);
	assert_int_equal(first("n,a=a=2Cb,n=a=3Db,r=abc"), SCRAM_ERR_AUTHZID);
	assert_int_equal(first("n,a=a=2Cb,n=a=2Cb,r=abc"), SCRAM_OK);
	assert_int_equal(first("n,a=,n=user,r=abc"), SCRAM_ERR_SYNTAX);
	assert_int_equal(first("n,a=us=er,n=user,r=abc"), SCRAM_ERR_SYNTAX);

	/* the same user (any ASCII case): a whole exchange, c= carries the authzid */
	rfc_keys(&k);
	assert_int_equal(first("n,a=USER,n=user,r=rOprNGfwEbeRWgbNEkqO"), SCRAM_OK);
	assert_string_equal(x.gs2_header, "n,a=USER,");
	assert_string_equal(x.client_first_bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
	assert_int_equal(scram_server_first(&x, &k, RFC_SNONCE), SCRAM_OK);
	client_final("pencil", "n,a=USER,", RFC_NONCE, "", msg, sizeof msg);
	assert_int_equal(final(msg), SCRAM_OK);
	/* c= of "n,," for a message that had an authzid */
	assert_int_equal(first("n,a=user,n=user,r=rOprNGfwEbeRWgbNEkqO"), SCRAM_OK);
	assert_int_equal(scram_server_first(&x, &k, RFC_SNONCE), SCRAM_OK);
	client_final("pencil", "n,,", RFC_NONCE, "", msg, sizeof msg);
	assert_int_equal(final(msg), SCRAM_ERR_CB);

	/* an authzid too long for gs2_header[64], though equal */
	{
		char name[80], m[256];

		memset(name, 'a', 60);
		name[60] = '\0';
		snprintf(m, sizeof m, "n,a=%s,n=%s,r=abc", name, name);
		assert_int_equal(first(m), SCRAM_ERR_SIZE);
		snprintf(m, sizeof m, "n,,n=%s,r=abc", name);
		assert_int_equal(first(m), SCRAM_OK);
	}
}

static void test_saslname(void **state)
{
	char m[1200], name[400];

	(void)state;
	assert_int_equal(first("n,,n=a=2Cb=3Dc,r=x"), SCRAM_OK);
	assert_string_equal(x.user, "a,b=c");
	assert_int_equal(first("n,,n==3D=2C,r=x"), SCRAM_OK);
	assert_string_equal(x.user, "=,");
	assert_int_equal(first("n,,n=alice@example.com,r=x"), SCRAM_OK);
	assert_string_equal(x.user, "alice@example.com");
	assert_int_equal(first("n,,n=J\xc3\xa9r\xc3\xb4me \xf0\x9f\x90\xa6,r=x"), SCRAM_OK);
	assert_string_equal(x.user, "J\xc3\xa9r\xc3\xb4me \xf0\x9f\x90\xa6");

	static const char *const bad[] = {
		"n,,n=a=2cb,r=x",	 /* escapes are upper case */
		"n,,n=a=3db,r=x",
		"n,,n=a=,r=x",		 /* '=' alone */
		"n,,n=a=2,r=x",
		"n,,n=a=41b,r=x",	 /* no other escapes */
		"n,,n==,r=x",
		"n,,n=,r=x",		 /* empty */
		"n,,n=\xff,r=x",	 /* not UTF-8 */
		"n,,n=\xc0\x80,r=x",	 /* overlong */
		"n,,n=\xe0\x80\xaf,r=x", /* overlong */
		"n,,n=\xed\xa0\x80,r=x", /* surrogate */
		"n,,n=\xf4\x90\x80\x80,r=x", /* above U+10FFFF */
		"n,,n=\xc3,r=x",	 /* cut short */
		"n,,n=a\x01,r=x",	 /* control characters */
		"n,,n=a\x7f,r=x",
		"n,,n=a\tb,r=x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(first(bad[i]), SCRAM_ERR_SYNTAX);
		assert_string_equal(x.user, "");
	}
	/* a NUL inside */
	assert_int_equal(scram_client_first(&x, (const uint8_t *)"n,,n=a\0b,r=x", 12),
			 SCRAM_ERR_SYNTAX);

	/* 320 octets decoded is the most, escapes count once */
	memset(name, 'a', 320);
	name[320] = '\0';
	snprintf(m, sizeof m, "n,,n=%s,r=x", name);
	assert_int_equal(first(m), SCRAM_OK);
	assert_int_equal(strlen(x.user), 320);
	snprintf(m, sizeof m, "n,,n=%s=2C,r=x", name + 1);
	assert_int_equal(first(m), SCRAM_OK);
	assert_int_equal(x.user[319], ',');
	snprintf(m, sizeof m, "n,,n=%sa,r=x", name);
	assert_int_equal(first(m), SCRAM_ERR_SIZE);
	snprintf(m, sizeof m, "n,,n=%s=3D,r=x", name);
	assert_int_equal(first(m), SCRAM_ERR_SIZE);
	/* a 4-octet character that would pass 320 */
	snprintf(m, sizeof m, "n,,n=%s\xf0\x9f\x90\xa6,r=x", name + 3);
	assert_int_equal(first(m), SCRAM_ERR_SIZE);
}

static void test_client_first_malformed(void **state)
{
	char m[2048], nonce[200];

	(void)state;
	static const char *const bad[] = {
		"",
		"n",
		"n,",
		"n,,",
		"n,,n=",
		"n,,n=user",
		"n,,n=user,",
		"n,,n=user,r=",
		"n,,n=user,r",
		"n,,n=user,s=abc",
		"n,,r=abc,n=user",
		"n,,r=abc",
		"x,,n=user,r=abc",
		"N,,n=user,r=abc",
		"nn,,n=user,r=abc",
		"n,,,n=user,r=abc",
		"n,b=user,n=user,r=abc",
		"n,a=user",
		"n,a=user,",
		",,n=user,r=abc",
		"n,,N=user,r=abc",
		"n,,n=user,R=abc",
		"n,,n=user,r=a b",
		"n,,n=user,r=a\x7f",
		"n,,n=user,r=a\x80",
		"n,,n=user,r=abc,",
		"n,,n=user,r=abc,,",
		"n,,n=user,r=abc,xy",
		"n,,n=user,r=abc,x=",
		"n,,n=user,r=abc,1=a",
		"n,,n=user,r=abc,=a",
		"n,,n=user,r=abc,xx=a",
		"n,,n=user,r=abc,x=\xff",
		" n,,n=user,r=abc",
		"n,,n=user,r=abc\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = first(bad[i]);

		if (rc != SCRAM_ERR_SYNTAX)
			fail_msg("\"%s\": %d", bad[i], rc);
		assert_int_equal(x.cfb_len, 0);
	}
	assert_int_equal(scram_client_first(&x, NULL, 0), SCRAM_ERR_SYNTAX);
	assert_int_equal(first("n,,m=ext,n=user,r=abc"), SCRAM_ERR_EXT);
	assert_int_equal(first("y,a=user,m=x,n=user,r=abc"), SCRAM_ERR_EXT);

	/* extensions after the nonce are fine and part of the bare message */
	assert_int_equal(first("n,,n=user,r=abc,x=yz,Q=a=b=c"), SCRAM_OK);
	assert_string_equal(x.client_first_bare, "n=user,r=abc,x=yz,Q=a=b=c");

	/* nonce: 1..128 printable octets */
	memset(nonce, '~', 128);
	nonce[128] = '\0';
	snprintf(m, sizeof m, "n,,n=user,r=%s", nonce);
	assert_int_equal(first(m), SCRAM_OK);
	assert_string_equal(x.nonce, nonce);
	snprintf(m, sizeof m, "n,,n=user,r=%s!", nonce);
	assert_int_equal(first(m), SCRAM_ERR_SYNTAX);
	assert_int_equal(first("n,,n=user,r=!"), SCRAM_OK);

	/* the bare message must fit SCRAM_MSG_MAX - 1 */
	{
		size_t pre = strlen("n,,n=user,r=abc,x=");

		memset(m, 0, sizeof m);
		snprintf(m, sizeof m, "n,,n=user,r=abc,x=");
		memset(m + pre, 'v', SCRAM_MSG_MAX - 1 - (pre - 3));
		assert_int_equal(strlen(m) - 3, SCRAM_MSG_MAX - 1);
		assert_int_equal(first(m), SCRAM_OK);
		assert_int_equal(x.cfb_len, SCRAM_MSG_MAX - 1);
		m[strlen(m)] = 'v';
		assert_int_equal(first(m), SCRAM_ERR_SIZE);
		assert_int_equal(x.cfb_len, 0);
	}
}

static void test_server_first(void **state)
{
	struct scram_keys k;
	char nonce[200];

	(void)state;
	rfc_keys(&k);
	memset(&x, 0, sizeof x);
	assert_int_equal(scram_server_first(&x, &k, RFC_SNONCE), SCRAM_ERR_SYNTAX);
	assert_int_equal(first(RFC_CFIRST), SCRAM_OK);
	assert_int_equal(scram_server_first(&x, &k, ""), SCRAM_ERR_SYNTAX);
	assert_int_equal(scram_server_first(&x, &k, "a,b"), SCRAM_ERR_SYNTAX);
	assert_int_equal(scram_server_first(&x, &k, "a b"), SCRAM_ERR_SYNTAX);
	assert_int_equal(scram_server_first(&x, &k, NULL), SCRAM_ERR_SYNTAX);
	memset(nonce, 'n', 129);
	nonce[129] = '\0';
	assert_int_equal(scram_server_first(&x, &k, nonce), SCRAM_ERR_SYNTAX);
	{
		struct scram_keys bad = k;

		bad.salt_len = 0;
		assert_int_equal(scram_server_first(&x, &bad, "abc"), SCRAM_ERR_SYNTAX);
		bad.salt_len = 65;
		assert_int_equal(scram_server_first(&x, &bad, "abc"), SCRAM_ERR_SYNTAX);
	}
	/* failures changed nothing */
	assert_int_equal(x.sf_len, 0);
	assert_string_equal(x.nonce, "rOprNGfwEbeRWgbNEkqO");
	nonce[128] = '\0';
	assert_int_equal(scram_server_first(&x, &k, nonce), SCRAM_OK);
	assert_int_equal(strlen(x.nonce), 20 + 128);
	assert_int_equal(scram_server_first(&x, &k, "abc"), SCRAM_ERR_SYNTAX);	/* twice */

	/* the longest: 128 + 128 nonce, 64-octet salt, 8-digit iter */
	memset(nonce, 'c', 128);
	nonce[128] = '\0';
	{
		char m[300];

		snprintf(m, sizeof m, "n,,n=u,r=%s", nonce);
		assert_int_equal(first(m), SCRAM_OK);
	}
	k.salt_len = 64;
	k.iter = 10000000;
	memset(nonce, 's', 128);
	assert_int_equal(scram_server_first(&x, &k, nonce), SCRAM_OK);
	assert_int_equal(x.sf_len, 2 + 256 + 3 + 88 + 3 + 8);
}

static void test_client_final_malformed(void **state)
{
	char m[2048], p64[64];
	uint8_t zeros[32] = { 0 };

	(void)state;
	static const char *const bad[] = {
		"",
		"c=biws",
		"c=biws,r=" RFC_NONCE,
		"c=biws,r=" RFC_NONCE ",p=",
		"c=biws,r=" RFC_NONCE ",p",
		"c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",  /* no pad */
		"c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7And=",  /* cut */
		"c=biws,r=" RFC_NONCE ",p=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", /* 31 */
		"c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=AAAA",
		"c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVR=", /* bits */
		"c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7And Q=",
		"c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,r=" RFC_NONCE,
		"r=" RFC_NONCE ",c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		",c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biw,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=a b,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=" RFC_NONCE ",,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=" RFC_NONCE ",xy,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=" RFC_NONCE ",p=AAAA,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=" RFC_NONCE ",r=x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=" RFC_NONCE ",c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"C=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=" RFC_NONCE ",P=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		RFC_CFINAL ",",
		RFC_CFINAL "\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc;

		rfc_start();
		strcpy(out, "junk");
		rc = final(bad[i]);
		if (rc != SCRAM_ERR_SYNTAX)
			fail_msg("\"%s\": %d", bad[i], rc);
		assert_string_equal(out, "");
		/* whatever happened, the exchange is over */
		assert_int_equal(final(RFC_CFINAL), SCRAM_ERR_SYNTAX);
	}
	/* NUL inside */
	rfc_start();
	snprintf(m, sizeof m, "%s", RFC_CFINAL);
	m[8] = '\0';
	assert_int_equal(scram_client_final(&x, (const uint8_t *)m, strlen(RFC_CFINAL), out,
					    sizeof out), SCRAM_ERR_SYNTAX);
	/* before any server-first */
	memset(&x, 0, sizeof x);
	assert_int_equal(final(RFC_CFINAL), SCRAM_ERR_SYNTAX);
	assert_int_equal(first(RFC_CFIRST), SCRAM_OK);
	assert_int_equal(final(RFC_CFINAL), SCRAM_ERR_SYNTAX);
	/* out too small: refused before anything */
	rfc_start();
	assert_int_equal(scram_client_final(&x, (const uint8_t *)RFC_CFINAL, strlen(RFC_CFINAL),
					    out, SCRAM_FINAL_MAX - 1), SCRAM_ERR_SIZE);
	rfc_start();
	assert_int_equal(scram_client_final(&x, (const uint8_t *)RFC_CFINAL, strlen(RFC_CFINAL),
					    out, SCRAM_FINAL_MAX), SCRAM_OK);
	assert_int_equal(strlen(out), SCRAM_FINAL_MAX - 1);
	/* too long */
	rfc_start();
	memset(m, 0, sizeof m);
	snprintf(m, sizeof m, "c=biws,r=%s,x=", RFC_NONCE);
	memset(m + strlen(m), 'v', SCRAM_MSG_MAX);
	strcat(m, ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	assert_int_equal(final(m), SCRAM_ERR_SIZE);
	/* an all-zero proof is just wrong */
	rfc_start();
	assert_true(sasl_b64_encode(zeros, 32, p64, sizeof p64) > 0);
	snprintf(m, sizeof m, "c=biws,r=%s,p=%s", RFC_NONCE, p64);
	assert_int_equal(final(m), SCRAM_ERR_PROOF);
}

static void test_client_final_extensions(void **state)
{
	char m[1100];

	(void)state;
	/* an extension before the proof is part of the AuthMessage, and ignored */
	rfc_start();
	client_final("pencil", "n,,", RFC_NONCE, ",x=ext=value", m, sizeof m);
	assert_int_equal(final(m), SCRAM_OK);
	assert_int_equal(strncmp(out, "v=", 2), 0);
	assert_int_equal(strlen(out), 46);
	/* the same message with the extension removed: the proof no longer matches */
	rfc_start();
	client_final("pencil", "n,,", RFC_NONCE, ",x=ext=value", m, sizeof m);
	{
		char *ext = strstr(m, ",x=ext=value");

		memmove(ext, ext + 12, strlen(ext + 12) + 1);
	}
	assert_int_equal(final(m), SCRAM_ERR_PROOF);
}

static void test_keys_parse_format(void **state)
{
	char text[SCRAM_KEYS_TEXT_MAX], longest[400];
	struct scram_keys k, k2, d;

	(void)state;
	/* Dovecot's line, parsed and written back byte for byte */
	assert_int_equal(scram_keys_parse(DOVECOT_PENCIL, strlen(DOVECOT_PENCIL), &k), 0);
	assert_int_equal(k.iter, 4096);
	assert_int_equal(k.salt_len, 16);
	assert_int_equal(scram_keys_format(&k, text, sizeof text), strlen(DOVECOT_PENCIL));
	assert_string_equal(text, DOVECOT_PENCIL);
	/* and it is pencil's */
	assert_int_equal(scram_derive("pencil", 6, k.salt, k.salt_len, k.iter, &d), 0);
	assert_memory_equal(d.stored_key, k.stored_key, 32);
	assert_memory_equal(d.server_key, k.server_key, 32);
	assert_int_equal(scram_derive("pencil ", 7, k.salt, k.salt_len, k.iter, &d), 0);
	assert_memory_not_equal(d.stored_key, k.stored_key, 32);
	/* not NUL-terminated: len counts */
	assert_int_equal(scram_keys_parse(DOVECOT_PENCIL "junk", strlen(DOVECOT_PENCIL), &k2), 0);
	keys_equal(&k, &k2);

	/* round trip of derived keys, the longest form too */
	rfc_keys(&k);
	assert_int_equal(scram_keys_format(&k, text, sizeof text), 4 + 1 + 24 + 1 + 44 + 1 + 44);
	assert_int_equal(scram_keys_parse(text, strlen(text), &k2), 0);
	keys_equal(&k, &k2);
	assert_string_equal(text, "4096,W22ZaJ0SNY7soEsUEjb6gQ==,"
			    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,"
			    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
	memset(k.salt, 0xfe, 64);
	k.salt_len = 64;
	k.iter = 10000000;
	assert_int_equal(scram_keys_format(&k, text, sizeof text), SCRAM_KEYS_TEXT_MAX - 1);
	assert_int_equal(scram_keys_format(&k, text, SCRAM_KEYS_TEXT_MAX - 1), 0);
	assert_string_equal(text, "");
	assert_int_equal(scram_keys_format(&k, longest, sizeof longest), SCRAM_KEYS_TEXT_MAX - 1);
	assert_int_equal(scram_keys_parse(longest, strlen(longest), &k2), 0);
	keys_equal(&k, &k2);
	k.salt_len = 65;
	assert_int_equal(scram_keys_format(&k, text, sizeof text), 0);

	static const char *const bad[] = {
		"",
		"4096",
		"4096,waQ33rseKJLNYmMtsYQ7Tw==",
		"4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=",
		"4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,",
		DOVECOT_PENCIL ",",
		DOVECOT_PENCIL ",x",
		"," DOVECOT_PENCIL,
		"4095,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",
		"10000001,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",
		"999999999,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",
		"+4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",
		" 4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",
		",waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",
		"4096,waQ33rseKJLNYmMtsYQ7,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",	/* 15-octet salt */
		"4096,waQ33rseKJLNYmMtsYQ7Tw,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",	/* no padding */
		"4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUU=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",	/* 31-octet key */
		"4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=AAAA",	/* 35 */
		"4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzJ=",	/* non-zero spare bits */
		"4096,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI= ",
		"4096, waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=,"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",
		"4096;waQ33rseKJLNYmMtsYQ7Tw==;hI2xnerb5jArS43IPnktxyR9qL1GpY+lpPSFtEQNUUY=;"
		"Gg43znpnd+uhZs3gEsi/lW3sQvtT9SfuLrssjSSjJzI=",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&k, 0xaa, sizeof k);
		if (scram_keys_parse(bad[i], strlen(bad[i]), &k) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(k.salt_len, 0);	/* cleared */
	}
	/* NUL inside */
	{
		static const char nul[] = "40\0006,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnk"
					  "txyR9qL1GpY+lpPSFtEQNUUY=,Gg43znpnd+uhZs3gEsi/lW3sQ"
					  "vtT9SfuLrssjSSjJzI=";

		assert_int_equal(scram_keys_parse(nul, sizeof nul - 1, &k), -1);
	}
	/* the extremes that are fine */
	{
		static const char big[] = "10000000,waQ33rseKJLNYmMtsYQ7Tw==,hI2xnerb5jArS43IPnk"
					  "txyR9qL1GpY+lpPSFtEQNUUY=,Gg43znpnd+uhZs3gEsi/lW3sQ"
					  "vtT9SfuLrssjSSjJzI=";

		assert_int_equal(scram_keys_parse(big, strlen(big), &k), 0);
		assert_int_equal(k.iter, 10000000);
	}
}

static void test_derive_args(void **state)
{
	struct scram_keys k;
	uint8_t salt[65] = { 0 };

	(void)state;
	assert_int_equal(scram_derive("pw", 2, salt, 0, 4096, &k), -1);
	assert_int_equal(scram_derive("pw", 2, salt, 65, 4096, &k), -1);
	assert_int_equal(scram_derive("pw", 2, salt, 16, 0, &k), -1);
	assert_int_equal(scram_derive(NULL, 2, salt, 16, 4096, &k), -1);
	assert_int_equal(scram_derive("", 0, salt, 16, 1, &k), 0);
	assert_int_equal(scram_derive("pw", 2, salt, 64, 1, &k), 0);
	assert_int_equal(k.salt_len, 64);
	assert_int_equal(k.iter, 1);
	/* a NUL in the password counts (plen, not strlen) */
	{
		struct scram_keys k2;

		assert_int_equal(scram_derive("pw\0x", 4, salt, 16, 1, &k), 0);
		assert_int_equal(scram_derive("pw\0y", 4, salt, 16, 1, &k2), 0);
		assert_memory_not_equal(k.stored_key, k2.stored_key, 32);
	}
}

static void test_fake_keys(void **state)
{
	uint8_t s1[32], s2[32];
	struct scram_keys a, b;

	(void)state;
	memset(s1, 0x11, sizeof s1);
	memset(s2, 0x22, sizeof s2);
	scram_fake_keys(s1, "ghost@example.com", &a);
	assert_int_equal(a.iter, 4096);
	assert_int_equal(a.salt_len, 16);	/* like a real account's */
	scram_fake_keys(s1, "Ghost@EXAMPLE.com", &b);
	assert_memory_equal(&a, &b, sizeof a);
	scram_fake_keys(s1, "ghost@example.org", &b);
	assert_memory_not_equal(a.salt, b.salt, 16);
	assert_memory_not_equal(a.stored_key, b.stored_key, 32);
	scram_fake_keys(s2, "ghost@example.com", &b);
	assert_memory_not_equal(a.salt, b.salt, 16);
	assert_memory_not_equal(a.stored_key, a.server_key, 32);
	/* usable in an exchange; never matches */
	assert_int_equal(first("n,,n=ghost@example.com,r=abc"), SCRAM_OK);
	scram_fake_keys(s1, x.user, &a);
	assert_int_equal(scram_server_first(&x, &a, "def"), SCRAM_OK);
	assert_int_equal(strncmp(x.server_first, "r=abcdef,s=", 11), 0);
	assert_non_null(strstr(x.server_first, ",i=4096"));
	{
		char m[256];

		client_final("", "n,,", "abcdef", "", m, sizeof m);
		assert_int_equal(final(m), SCRAM_ERR_PROOF);
	}
}

static void test_cram_md5_rfc2195(void **state)
{
	static const char chal[] = "<1896.697170952@postoffice.reston.mci.net>";
	static const char secret[] = "tanstaaftanstaaf";
	char user[64];

#define CRAM(resp, u, cap)                                                                  \
	cram_md5_verify(chal, strlen(chal), (const uint8_t *)(resp), strlen(resp), secret,  \
			strlen(secret), (u), (cap))

	(void)state;
	assert_int_equal(CRAM("tim b913a602c7eda7a495b4e6e7334d3890", user, sizeof user), 0);
	assert_string_equal(user, "tim");
	assert_int_equal(CRAM("tim B913A602C7EDA7A495B4E6E7334D3890", user, sizeof user), 0);
	/* wrong digest, wrong secret, wrong challenge: -1 with the user */
	assert_int_equal(CRAM("tim b913a602c7eda7a495b4e6e7334d3891", user, sizeof user), -1);
	assert_string_equal(user, "tim");
	assert_int_equal(CRAM("tom b913a602c7eda7a495b4e6e7334d3890", user, sizeof user), 0);
	assert_int_equal(cram_md5_verify(chal, strlen(chal) - 1,
					 (const uint8_t *)"tim b913a602c7eda7a495b4e6e7334d3890",
					 36, secret, strlen(secret), user, sizeof user), -1);
	assert_int_equal(cram_md5_verify(chal, strlen(chal),
					 (const uint8_t *)"tim b913a602c7eda7a495b4e6e7334d3890",
					 36, secret, strlen(secret) - 1, user, sizeof user), -1);
	/* the user is everything before the last space */
	assert_int_equal(CRAM("tim smith b913a602c7eda7a495b4e6e7334d3890", user, sizeof user),
			 0);
	assert_string_equal(user, "tim smith");
	/* the user must fit */
	assert_int_equal(CRAM("tim b913a602c7eda7a495b4e6e7334d3890", user, 4), 0);
	assert_int_equal(CRAM("tim b913a602c7eda7a495b4e6e7334d3890", user, 3), -2);
	assert_string_equal(user, "");

	static const char *const bad[] = {
		"",
		"tim",
		"timb913a602c7eda7a495b4e6e7334d3890",
		" b913a602c7eda7a495b4e6e7334d3890",
		"b913a602c7eda7a495b4e6e7334d3890",
		"tim b913a602c7eda7a495b4e6e7334d389",
		"tim b913a602c7eda7a495b4e6e7334d38900",
		"tim  913a602c7eda7a495b4e6e7334d3890",
		"tim g913a602c7eda7a495b4e6e7334d3890",
		"tim b913a602c7eda7a495b4e6e7334d389 ",
		"tim b913a602c7eda7a495b4e6e7334d3890 ",
		"tim\tb913a602c7eda7a495b4e6e7334d3890",
		"t\x01m b913a602c7eda7a495b4e6e7334d3890",
		"tim\r b913a602c7eda7a495b4e6e7334d3890",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		strcpy(user, "junk");
		if (CRAM(bad[i], user, sizeof user) != -2)
			fail_msg("\"%s\" not malformed", bad[i]);
		assert_string_equal(user, "");
	}
	assert_int_equal(cram_md5_verify(chal, strlen(chal),
					 (const uint8_t *)"t\0m b913a602c7eda7a495b4e6e7334d3890",
					 36, secret, strlen(secret), user, sizeof user), -2);
	/* 320 octets of user at most, however large user_out is */
	{
		char resp[400], big[400];

		memset(resp, 'u', 320);
		snprintf(resp + 320, sizeof resp - 320, " b913a602c7eda7a495b4e6e7334d3890");
		assert_int_equal(cram_md5_verify(chal, strlen(chal), (const uint8_t *)resp,
						 strlen(resp), secret, strlen(secret), big, sizeof big),
				 0);	/* the digest does not cover the user */
		assert_int_equal(strlen(big), 320);
		memset(resp, 'u', 321);
		snprintf(resp + 321, sizeof resp - 321, " b913a602c7eda7a495b4e6e7334d3890");
		assert_int_equal(cram_md5_verify(chal, strlen(chal), (const uint8_t *)resp,
						 strlen(resp), secret, strlen(secret), big, sizeof big),
				 -2);
	}
	/* an empty secret is a secret like another */
	assert_int_equal(cram_md5_verify(chal, strlen(chal),
					 (const uint8_t *)"tim b913a602c7eda7a495b4e6e7334d3890",
					 36, "", 0, user, sizeof user), -1);
#undef CRAM
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7677_exchange),
		cmocka_unit_test(test_tampered_proof),
		cmocka_unit_test(test_wrong_nonce),
		cmocka_unit_test(test_channel_binding),
		cmocka_unit_test(test_authzid),
		cmocka_unit_test(test_saslname),
		cmocka_unit_test(test_client_first_malformed),
		cmocka_unit_test(test_server_first),
		cmocka_unit_test(test_client_final_malformed),
		cmocka_unit_test(test_client_final_extensions),
		cmocka_unit_test(test_keys_parse_format),
		cmocka_unit_test(test_derive_args),
		cmocka_unit_test(test_fake_keys),
		cmocka_unit_test(test_cram_md5_rfc2195),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
