/* fuzz_scram.c - libFuzzer target for proto/scram.c: a SCRAM-SHA-256 exchange, stored keys, CRAM-MD5. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proto/sasl.h"
#include "proto/scram.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The input is up to four parts separated by NUL (which no message may
 * hold): client-first-message, server nonce, client-final-message, CRAM-MD5
 * response. The whole input is also tried as a stored-keys string.
 */
#define PARTS 4

/* The account every exchange runs against: "pencil", RFC 7677's salt. */
static struct scram_keys keys;
static uint8_t salted[32], client_key[32];

static void init(void)
{
	static int done;
	static const uint8_t salt[16] = { 0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
					  0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81 };
	unsigned len;

	if (done)
		return;
	done = 1;
	CHECK(scram_derive("pencil", 6, salt, sizeof salt, 4096, &keys) == 0);
	CHECK(PKCS5_PBKDF2_HMAC("pencil", 6, salt, sizeof salt, 4096, EVP_sha256(), 32, salted) ==
	      1);
	CHECK(HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, client_key,
		   &len) != NULL);
}

/* What an honest client sends as its final message after x's server-first. */
static size_t honest_final(const struct scram_server *x, char *msg, size_t cap)
{
	static char am[3 * SCRAM_MSG_MAX + 512];
	char c64[128], wp[SCRAM_MSG_MAX], p64[64];
	uint8_t sig[32], proof[32];
	unsigned len;
	size_t n;
	int w;

	CHECK(sasl_b64_encode((const uint8_t *)x->gs2_header, x->gs2_len, c64, sizeof c64) > 0);
	w = snprintf(wp, sizeof wp, "c=%s,r=%s", c64, x->nonce);
	CHECK(w > 0 && (size_t)w < sizeof wp);
	n = (size_t)snprintf(am, sizeof am, "%s,%s,%s", x->client_first_bare, x->server_first, wp);
	CHECK(n < sizeof am);
	CHECK(HMAC(EVP_sha256(), keys.stored_key, 32, (const uint8_t *)am, n, sig, &len) != NULL);
	for (int i = 0; i < 32; i++)
		proof[i] = client_key[i] ^ sig[i];
	CHECK(sasl_b64_encode(proof, 32, p64, sizeof p64) == 44);
	w = snprintf(msg, cap, "%s,p=%s", wp, p64);
	CHECK(w > 0 && (size_t)w < cap);
	return (size_t)w;
}

static void check_exchange(const uint8_t *cf, size_t cflen, const char *snonce,
			   const uint8_t *fin, size_t finlen)
{
	static struct scram_server x, y;
	static char honest[2 * SCRAM_MSG_MAX];
	char out[SCRAM_FINAL_MAX + 8];
	size_t hlen;
	int rc;

	rc = scram_client_first(&x, cf, cflen);
	CHECK(rc <= SCRAM_OK && rc >= SCRAM_ERR_INTERNAL);
	if (rc != SCRAM_OK) {
		CHECK(x.cfb_len == 0 && x.gs2_len == 0 && x.nonce[0] == '\0');
		CHECK(rc == SCRAM_ERR_AUTHZID || x.user[0] == '\0');
		CHECK(scram_server_first(&x, &keys, "abc") == SCRAM_ERR_SYNTAX);
		return;
	}
	/* the message is gs2 header + bare, both copied exactly */
	CHECK(x.gs2_len > 0 && x.gs2_len < sizeof x.gs2_header && x.cfb_len > 0 &&
	      x.cfb_len < SCRAM_MSG_MAX);
	CHECK(x.gs2_len + x.cfb_len == cflen);
	CHECK(memcmp(x.gs2_header, cf, x.gs2_len) == 0 && x.gs2_header[x.gs2_len] == '\0');
	CHECK(memcmp(x.client_first_bare, cf + x.gs2_len, x.cfb_len) == 0);
	CHECK(x.client_first_bare[x.cfb_len] == '\0');
	CHECK(x.user[0] != '\0' && strlen(x.user) <= 320);
	CHECK(strlen(x.nonce) >= 1 && strlen(x.nonce) <= SCRAM_NONCE_MAX);
	CHECK(strchr(x.nonce, ',') == NULL);

	rc = scram_server_first(&x, &keys, snonce);
	CHECK(rc == SCRAM_OK || rc == SCRAM_ERR_SYNTAX);
	if (rc != SCRAM_OK) {
		CHECK(x.sf_len == 0);
		rc = scram_server_first(&x, &keys, "srv");
		CHECK(rc == SCRAM_OK);
	}
	CHECK(x.sf_len == strlen(x.server_first) && x.sf_len < SCRAM_MSG_MAX);
	CHECK(strncmp(x.server_first, "r=", 2) == 0);
	CHECK(strncmp(x.server_first + 2, x.nonce, strlen(x.nonce)) == 0);
	y = x;

	/* an honest client always gets in, and gets the server's signature */
	hlen = honest_final(&x, honest, sizeof honest);
	rc = scram_client_final(&x, (const uint8_t *)honest, hlen, out, sizeof out);
	CHECK(rc == SCRAM_OK);
	CHECK(strncmp(out, "v=", 2) == 0 && strlen(out) == SCRAM_FINAL_MAX - 1);
	CHECK(scram_client_final(&x, (const uint8_t *)honest, hlen, out, sizeof out) ==
	      SCRAM_ERR_SYNTAX);
	CHECK(out[0] == '\0');

	/* the fuzzer's final message: only the honest one can get in */
	rc = scram_client_final(&y, fin, finlen, out, sizeof out);
	CHECK(rc <= SCRAM_OK && rc >= SCRAM_ERR_INTERNAL && rc != SCRAM_ERR_INTERNAL);
	if (rc == SCRAM_OK) {
		CHECK(finlen == hlen && memcmp(fin, honest, hlen) == 0);
		CHECK(strncmp(out, "v=", 2) == 0);
	} else {
		CHECK(out[0] == '\0');
	}
	CHECK(y.sf_len == 0);

	/* fake keys for the same name: deterministic, shaped like real ones */
	{
		static const uint8_t secret[32] = { 7 };
		struct scram_keys a, b;

		scram_fake_keys(secret, x.user, &a);
		scram_fake_keys(secret, x.user, &b);
		CHECK(memcmp(&a, &b, sizeof a) == 0);
		CHECK(a.iter == SCRAM_ITER_DEFAULT && a.salt_len == SCRAM_SALT_DEFAULT);
	}
}

static void check_keys(const uint8_t *data, size_t size)
{
	char text[SCRAM_KEYS_TEXT_MAX];
	struct scram_keys k, k2;
	size_t n;

	if (scram_keys_parse((const char *)data, size, &k) != 0) {
		CHECK(k.salt_len == 0 && k.iter == 0);
		return;
	}
	CHECK(k.iter >= SCRAM_ITER_MIN && k.iter <= SCRAM_ITER_MAX);
	CHECK(k.salt_len >= SCRAM_SALT_MIN && k.salt_len <= SCRAM_SALT_MAX);
	n = scram_keys_format(&k, text, sizeof text);
	CHECK(n > 0 && n == strlen(text) && n <= size);
	CHECK(scram_keys_parse(text, n, &k2) == 0);
	CHECK(k2.iter == k.iter && k2.salt_len == k.salt_len &&
	      memcmp(k2.salt, k.salt, k.salt_len) == 0 &&
	      memcmp(k2.stored_key, k.stored_key, 32) == 0 &&
	      memcmp(k2.server_key, k.server_key, 32) == 0);
	CHECK(scram_keys_format(&k, text, n) == 0);	/* one short */
}

static void check_cram(const uint8_t *resp, size_t n)
{
	static const char chal[] = "<1896.697170952@postoffice.reston.mci.net>";
	char user[400];
	size_t ucap = n > 0 ? resp[0] % sizeof user : 0;
	int rc;

	rc = cram_md5_verify(chal, sizeof chal - 1, resp, n, "tanstaaftanstaaf", 16, user,
			     sizeof user);
	CHECK(rc == 0 || rc == -1 || rc == -2);
	if (rc == -2) {
		CHECK(user[0] == '\0');
	} else {
		size_t ulen = strlen(user);

		CHECK(ulen >= 1 && ulen <= 320 && ulen + 33 == n);
		CHECK(memcmp(user, resp, ulen) == 0 && resp[ulen] == ' ');
	}
	if (ucap > 0) {
		int rc2 = cram_md5_verify(chal, sizeof chal - 1, resp, n, "tanstaaftanstaaf", 16,
					  user, ucap);

		CHECK(rc2 == rc || (rc2 == -2 && n >= 33 && n - 33 >= ucap));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *part[PARTS] = { NULL };
	size_t len[PARTS] = { 0 }, np = 0, start = 0;	/* np: parts found */
	uint8_t *copy;
	char *snonce;

	init();
	copy = malloc(size ? size : 1);	/* exactly sized: ASan sees any over-read */
	CHECK(copy != NULL);
	if (size)
		memcpy(copy, data, size);
	check_keys(copy, size);

	for (; np < PARTS && start <= size; np++) {
		const uint8_t *nul;

		part[np] = copy + start;
		nul = np < PARTS - 1 ? memchr(copy + start, '\0', size - start) : NULL;
		if (nul == NULL) {	/* the last part takes the rest */
			len[np] = size - start;
			np++;
			break;
		}
		len[np] = (size_t)(nul - part[np]);
		start += len[np] + 1;
	}
	snonce = malloc(len[1] + 1);
	CHECK(snonce != NULL);
	if (len[1])
		memcpy(snonce, part[1], len[1]);
	snonce[len[1]] = '\0';

	check_exchange(part[0] ? part[0] : copy, len[0], snonce, part[2] ? part[2] : copy,
		       len[2]);
	check_cram(part[3] ? part[3] : copy, len[3]);
	free(snonce);
	free(copy);
	return 0;
}
