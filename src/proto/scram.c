/* scram.c - SCRAM-SHA-256 server (RFC 5802, RFC 7677), Dovecot's stored keys, CRAM-MD5 (RFC 2195); see scram.h. */
#include "scram.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sasl.h"

#define USER_MAX 320	/* octets, decoded */

/* ---- small parsers over [p, end) ---- */

/* The end of the attribute that starts at p: the next ',' or end. */
static const uint8_t *field_end(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *c = memchr(p, ',', (size_t)(end - p));

	return c != NULL ? c : end;
}

/* Does [p, end) start with the two octets "k="? */
static bool starts_attr(const uint8_t *p, const uint8_t *end, char k)
{
	return end - p >= 2 && p[0] == (uint8_t)k && p[1] == '=';
}

/*
 * The length of the well-formed UTF-8 character at p (RFC 3629: no
 * overlong forms, no surrogates, at most U+10FFFF), or 0.
 */
static size_t utf8_char(const uint8_t *p, size_t n)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/*
 * RFC 5802 5.1 saslname into out (NUL-terminated): "=2C" is ',', "=3D"
 * is '=', any other '=' is an error; UTF-8; and, stricter than the RFC,
 * no control characters (the name is logged and looked up). 0, -1 when
 * malformed or empty, -2 when longer than USER_MAX decoded octets.
 */
static int saslname_decode(const uint8_t *p, size_t n, char out[USER_MAX + 1])
{
	size_t o = 0, i = 0, k;

	if (n == 0)
		return -1;
	while (i < n) {
		if (p[i] == '=') {
			if (n - i < 3 || !((p[i + 1] == '2' && p[i + 2] == 'C') ||
					   (p[i + 1] == '3' && p[i + 2] == 'D')))
				return -1;
			if (o == USER_MAX)
				return -2;
			out[o++] = p[i + 1] == '2' ? ',' : '=';
			i += 3;
			continue;
		}
		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == ',')
			return -1;
		if ((k = utf8_char(p + i, n - i)) == 0)
			return -1;
		if (USER_MAX - o < k)
			return -2;
		memcpy(out + o, p + i, k);
		o += k;
		i += k;
	}
	out[o] = '\0';
	return 0;
}

/* A nonce octet: printable ASCII except ',' (RFC 5802 7). */
static bool nonce_char(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e && c != ',';
}

static bool valid_nonce(const uint8_t *p, size_t n)
{
	if (n == 0 || n > SCRAM_NONCE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!nonce_char(p[i]))
			return false;
	return true;
}

/*
 * One extension at p: attr-val = ALPHA "=" 1*value-char, a value-char
 * being any UTF-8 character but NUL and ','. Returns the octet after it,
 * or NULL. The attribute letter goes to *attr.
 */
static const uint8_t *attr_val(const uint8_t *p, const uint8_t *end, uint8_t *attr)
{
	const uint8_t *f = field_end(p, end);
	size_t k;

	if (f - p < 3 || p[1] != '=' ||
	    !((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z')))
		return NULL;
	*attr = p[0];
	for (const uint8_t *q = p + 2; q < f; q += k)
		if (*q == '\0' || (k = utf8_char(q, (size_t)(f - q))) == 0)
			return NULL;
	return f;
}

/* ---- client-first-message ---- */

static int parse_client_first(struct scram_server *x, const uint8_t *msg, size_t n)
{
	const uint8_t *p = msg, *end = msg + n, *f, *bare, *cn;
	char authzid[USER_MAX + 1];
	bool has_az = false, az_long = false;
	size_t gs2_len, bare_len, cn_len;
	int r;

	if (msg == NULL || n == 0 || memchr(msg, '\0', n) != NULL)
		return SCRAM_ERR_SYNTAX;
	/* gs2-header = gs2-cbind-flag "," [ authzid ] "," */
	if (starts_attr(p, end, 'p'))
		return SCRAM_ERR_CB;	/* we offer no SCRAM-SHA-256-PLUS */
	if (p[0] != 'n' && p[0] != 'y')
		return SCRAM_ERR_SYNTAX;
	p++;
	if (p == end || *p != ',')
		return SCRAM_ERR_SYNTAX;
	p++;
	if (p < end && *p != ',') {
		if (!starts_attr(p, end, 'a'))
			return SCRAM_ERR_SYNTAX;
		p += 2;
		f = field_end(p, end);
		r = saslname_decode(p, (size_t)(f - p), authzid);
		if (r == -1)
			return SCRAM_ERR_SYNTAX;
		az_long = r == -2;	/* cannot be the user: an authzid error below */
		has_az = true;
		p = f;
	}
	if (p == end || *p != ',')
		return SCRAM_ERR_SYNTAX;
	p++;
	gs2_len = (size_t)(p - msg);

	/* client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions] */
	bare = p;
	if (starts_attr(p, end, 'm'))
		return SCRAM_ERR_EXT;
	if (!starts_attr(p, end, 'n'))
		return SCRAM_ERR_SYNTAX;
	p += 2;
	f = field_end(p, end);
	r = saslname_decode(p, (size_t)(f - p), x->user);
	if (r < 0) {
		x->user[0] = '\0';
		return r == -2 ? SCRAM_ERR_SIZE : SCRAM_ERR_SYNTAX;
	}
	p = f;
	if (p == end || *p != ',' || !starts_attr(p + 1, end, 'r'))
		goto syntax;
	cn = p + 3;
	f = field_end(cn, end);
	cn_len = (size_t)(f - cn);
	if (!valid_nonce(cn, cn_len))
		goto syntax;
	p = f;
	while (p < end) {
		uint8_t attr;

		if (*p != ',' || (p = attr_val(p + 1, end, &attr)) == NULL)
			goto syntax;
	}
	bare_len = (size_t)(end - bare);

	if (has_az && (az_long || strcasecmp(authzid, x->user) != 0))
		return SCRAM_ERR_AUTHZID;	/* x->user is kept for the log */
	if (gs2_len >= sizeof x->gs2_header || bare_len >= sizeof x->client_first_bare)
		goto size;
	memcpy(x->gs2_header, msg, gs2_len);
	x->gs2_header[gs2_len] = '\0';
	x->gs2_len = gs2_len;
	memcpy(x->client_first_bare, bare, bare_len);
	x->client_first_bare[bare_len] = '\0';
	x->cfb_len = bare_len;
	memcpy(x->nonce, cn, cn_len);
	x->nonce[cn_len] = '\0';
	return SCRAM_OK;
syntax:
	x->user[0] = '\0';
	return SCRAM_ERR_SYNTAX;
size:
	x->user[0] = '\0';
	return SCRAM_ERR_SIZE;
}

int scram_client_first(struct scram_server *x, const uint8_t *msg, size_t n)
{
	int rc;

	explicit_bzero(x, sizeof *x);
	rc = parse_client_first(x, msg, n);
	if (rc != SCRAM_OK) {
		char user[sizeof x->user];

		/* Nothing but the user (for the log, on an authzid error) survives. */
		memcpy(user, x->user, sizeof user);
		explicit_bzero(x, sizeof *x);
		if (rc == SCRAM_ERR_AUTHZID)
			memcpy(x->user, user, sizeof user);
	}
	return rc;
}

/* ---- server-first-message ---- */

int scram_server_first(struct scram_server *x, const struct scram_keys *keys,
		       const char *server_nonce)
{
	char salt64[(SCRAM_SALT_MAX + 2) / 3 * 4 + 1];
	size_t cn_len, sn_len;
	int w;

	if (x->cfb_len == 0 || x->sf_len != 0 || keys == NULL || server_nonce == NULL)
		return SCRAM_ERR_SYNTAX;
	sn_len = strnlen(server_nonce, SCRAM_NONCE_MAX + 1);
	if (!valid_nonce((const uint8_t *)server_nonce, sn_len))
		return SCRAM_ERR_SYNTAX;
	if (keys->iter == 0 || keys->salt_len == 0 || keys->salt_len > SCRAM_SALT_MAX)
		return SCRAM_ERR_SYNTAX;
	if (sasl_b64_encode(keys->salt, keys->salt_len, salt64, sizeof salt64) == 0)
		return SCRAM_ERR_SIZE;
	cn_len = strnlen(x->nonce, SCRAM_NONCE_MAX + 1);
	if (cn_len == 0 || cn_len > SCRAM_NONCE_MAX)
		return SCRAM_ERR_SYNTAX;
	w = snprintf(x->server_first, sizeof x->server_first, "r=%.*s%s,s=%s,i=%u",
		     (int)cn_len, x->nonce, server_nonce, salt64, keys->iter);
	if (w < 0 || (size_t)w >= sizeof x->server_first) {
		x->server_first[0] = '\0';
		return SCRAM_ERR_SIZE;
	}
	memcpy(x->nonce + cn_len, server_nonce, sn_len);
	x->nonce[cn_len + sn_len] = '\0';
	x->keys = *keys;
	x->sf_len = (size_t)w;
	return SCRAM_OK;
}

/* ---- client-final-message ---- */

static int check_client_final(struct scram_server *x, const uint8_t *msg, size_t n, char *out,
			      size_t cap)
{
	/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
	uint8_t am[3 * SCRAM_MSG_MAX], cb[SCRAM_MSG_MAX], proof[SCRAM_KEY_LEN];
	uint8_t sig[EVP_MAX_MD_SIZE], key[SCRAM_KEY_LEN], h[EVP_MAX_MD_SIZE];
	const uint8_t *p, *end, *f, *last;
	size_t wp_len, am_len, nonce_len = strlen(x->nonce);
	unsigned sig_len = 0, h_len = 0;
	bool cb_ok, nonce_ok, ok;
	ssize_t d;
	int rc = SCRAM_ERR_PROOF;

	if (out == NULL || cap < SCRAM_FINAL_MAX)
		return SCRAM_ERR_SIZE;
	if (msg == NULL || n == 0 || memchr(msg, '\0', n) != NULL)
		return SCRAM_ERR_SYNTAX;
	if (n >= SCRAM_MSG_MAX)
		return SCRAM_ERR_SIZE;
	end = msg + n;

	/* The proof is the last attribute. */
	for (last = end; last > msg && last[-1] != ','; last--)
		;
	if (last == msg || !starts_attr(last, end, 'p'))
		return SCRAM_ERR_SYNTAX;
	d = sasl_b64_decode((struct slice){ last + 2, (size_t)(end - last - 2) }, proof,
			    sizeof proof);
	if (d != SCRAM_KEY_LEN)
		return SCRAM_ERR_SYNTAX;
	wp_len = (size_t)(last - 1 - msg);
	end = msg + wp_len;

	/* channel-binding "," nonce ["," extensions] */
	p = msg;
	if (!starts_attr(p, end, 'c'))
		return SCRAM_ERR_SYNTAX;
	f = field_end(p + 2, end);
	d = sasl_b64_decode((struct slice){ p + 2, (size_t)(f - p - 2) }, cb, sizeof cb);
	if (d < 0)
		return SCRAM_ERR_SYNTAX;
	cb_ok = (size_t)d == x->gs2_len && memcmp(cb, x->gs2_header, x->gs2_len) == 0;
	p = f;
	if (p == end || *p != ',' || !starts_attr(p + 1, end, 'r'))
		return SCRAM_ERR_SYNTAX;
	p += 3;
	f = field_end(p, end);
	if (f == p || (size_t)(f - p) > 2 * SCRAM_NONCE_MAX)
		return SCRAM_ERR_SYNTAX;
	for (const uint8_t *q = p; q < f; q++)
		if (!nonce_char(*q))
			return SCRAM_ERR_SYNTAX;
	nonce_ok = (size_t)(f - p) == nonce_len && memcmp(p, x->nonce, nonce_len) == 0;
	p = f;
	while (p < end) {
		uint8_t attr;

		if (*p != ',' || (p = attr_val(p + 1, end, &attr)) == NULL)
			return SCRAM_ERR_SYNTAX;
		if (attr == 'p' || attr == 'c' || attr == 'r')
			return SCRAM_ERR_SYNTAX;	/* given twice */
	}
	if (!cb_ok)
		return SCRAM_ERR_CB;

	am_len = 0;
	memcpy(am, x->client_first_bare, x->cfb_len);
	am_len += x->cfb_len;
	am[am_len++] = ',';
	memcpy(am + am_len, x->server_first, x->sf_len);
	am_len += x->sf_len;
	am[am_len++] = ',';
	memcpy(am + am_len, msg, wp_len);
	am_len += wp_len;

	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) == StoredKey? */
	if (HMAC(EVP_sha256(), x->keys.stored_key, SCRAM_KEY_LEN, am, am_len, sig, &sig_len) ==
		    NULL || sig_len != SCRAM_KEY_LEN) {
		rc = SCRAM_ERR_INTERNAL;
		goto done;
	}
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	if (EVP_Digest(key, SCRAM_KEY_LEN, h, &h_len, EVP_sha256(), NULL) != 1 ||
	    h_len != SCRAM_KEY_LEN) {
		rc = SCRAM_ERR_INTERNAL;
		goto done;
	}
	ok = CRYPTO_memcmp(h, x->keys.stored_key, SCRAM_KEY_LEN) == 0;
	if (!ok || !nonce_ok)
		goto done;

	/* ServerSignature = HMAC(ServerKey, AuthMessage) */
	if (HMAC(EVP_sha256(), x->keys.server_key, SCRAM_KEY_LEN, am, am_len, sig, &sig_len) ==
		    NULL || sig_len != SCRAM_KEY_LEN) {
		rc = SCRAM_ERR_INTERNAL;
		goto done;
	}
	out[0] = 'v';
	out[1] = '=';
	if (sasl_b64_encode(sig, SCRAM_KEY_LEN, out + 2, cap - 2) == 0) {
		out[0] = '\0';
		rc = SCRAM_ERR_SIZE;
		goto done;
	}
	rc = SCRAM_OK;
done:
	explicit_bzero(sig, sizeof sig);
	explicit_bzero(key, sizeof key);
	explicit_bzero(h, sizeof h);
	explicit_bzero(proof, sizeof proof);
	return rc;
}

int scram_client_final(struct scram_server *x, const uint8_t *msg, size_t n, char *out,
		       size_t cap)
{
	int rc;

	if (out != NULL && cap > 0)
		out[0] = '\0';
	if (x->sf_len == 0)
		return SCRAM_ERR_SYNTAX;	/* no server-first yet, or already over */
	rc = check_client_final(x, msg, n, out, cap);
	if (rc != SCRAM_OK && out != NULL && cap > 0)
		out[0] = '\0';
	explicit_bzero(&x->keys, sizeof x->keys);
	x->sf_len = 0;
	return rc;
}

/* ---- keys ---- */

int scram_derive(const char *password, size_t plen, const uint8_t *salt, size_t salt_len,
		 unsigned iter, struct scram_keys *out)
{
	uint8_t salted[SCRAM_KEY_LEN], ck[EVP_MAX_MD_SIZE];
	unsigned len = 0, slen = 0, hlen = 0;
	struct scram_keys k;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (salt == NULL || salt_len == 0 || salt_len > SCRAM_SALT_MAX || iter == 0 ||
	    iter > INT_MAX || plen > INT_MAX || (password == NULL && plen > 0))
		return -1;
	memset(&k, 0, sizeof k);
	k.iter = iter;
	memcpy(k.salt, salt, salt_len);
	k.salt_len = salt_len;
	if (PKCS5_PBKDF2_HMAC(plen > 0 ? password : "", (int)plen, salt, (int)salt_len,
			      (int)iter, EVP_sha256(), SCRAM_KEY_LEN, salted) != 1)
		goto done;
	if (HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const uint8_t *)"Client Key", 10, ck,
		 &len) == NULL || len != SCRAM_KEY_LEN)
		goto done;
	if (EVP_Digest(ck, SCRAM_KEY_LEN, k.stored_key, &hlen, EVP_sha256(), NULL) != 1 ||
	    hlen != SCRAM_KEY_LEN)
		goto done;
	if (HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const uint8_t *)"Server Key", 10,
		 k.server_key, &slen) == NULL || slen != SCRAM_KEY_LEN)
		goto done;
	*out = k;
	rc = 0;
done:
	explicit_bzero(salted, sizeof salted);
	explicit_bzero(ck, sizeof ck);
	explicit_bzero(&k, sizeof k);
	return rc;
}

int scram_keys_parse(const char *text, size_t len, struct scram_keys *out)
{
	const uint8_t *p = (const uint8_t *)text, *end = p + len, *f[4], *fe[4];
	struct scram_keys k;
	unsigned long iter = 0;
	ssize_t d;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (text == NULL || len == 0)
		return -1;
	/* exactly four fields */
	for (int i = 0; i < 4; i++) {
		f[i] = p;
		fe[i] = field_end(p, end);
		if ((fe[i] == end) != (i == 3))
			return -1;
		p = fe[i] + 1;
	}
	if (fe[0] == f[0] || fe[0] - f[0] > 8)
		return -1;
	for (p = f[0]; p < fe[0]; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		iter = iter * 10 + (unsigned long)(*p - '0');
	}
	if (iter < SCRAM_ITER_MIN || iter > SCRAM_ITER_MAX)
		return -1;
	memset(&k, 0, sizeof k);
	k.iter = (unsigned)iter;
	d = sasl_b64_decode((struct slice){ f[1], (size_t)(fe[1] - f[1]) }, k.salt, sizeof k.salt);
	if (d < SCRAM_SALT_MIN)
		goto done;
	k.salt_len = (size_t)d;
	if (sasl_b64_decode((struct slice){ f[2], (size_t)(fe[2] - f[2]) }, k.stored_key,
			    sizeof k.stored_key) != SCRAM_KEY_LEN ||
	    sasl_b64_decode((struct slice){ f[3], (size_t)(fe[3] - f[3]) }, k.server_key,
			    sizeof k.server_key) != SCRAM_KEY_LEN)
		goto done;
	*out = k;
	rc = 0;
done:
	explicit_bzero(&k, sizeof k);
	return rc;
}

size_t scram_keys_format(const struct scram_keys *k, char *out, size_t cap)
{
	char salt[(SCRAM_SALT_MAX + 2) / 3 * 4 + 1], st[45], sv[45];
	int w;

	if (out == NULL || cap == 0)
		return 0;
	out[0] = '\0';
	if (k->salt_len == 0 || k->salt_len > SCRAM_SALT_MAX ||
	    sasl_b64_encode(k->salt, k->salt_len, salt, sizeof salt) == 0 ||
	    sasl_b64_encode(k->stored_key, SCRAM_KEY_LEN, st, sizeof st) == 0 ||
	    sasl_b64_encode(k->server_key, SCRAM_KEY_LEN, sv, sizeof sv) == 0)
		return 0;
	w = snprintf(out, cap, "%u,%s,%s,%s", k->iter, salt, st, sv);
	explicit_bzero(st, sizeof st);
	explicit_bzero(sv, sizeof sv);
	if (w < 0 || (size_t)w >= cap) {
		explicit_bzero(out, cap);
		return 0;
	}
	return (size_t)w;
}

/* HMAC-SHA-256(secret, tag || user) into 32 octets; the user is ASCII-lowercased. */
static void fake_mac(const uint8_t secret[32], char tag, const char *user, uint8_t out[32])
{
	uint8_t m[1 + USER_MAX];
	size_t n = strnlen(user, USER_MAX);
	unsigned len = 0;

	m[0] = (uint8_t)tag;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)user[i];

		m[1 + i] = c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
	}
	if (HMAC(EVP_sha256(), secret, 32, m, 1 + n, out, &len) == NULL || len != 32) {
		/* Out of memory only: still the same for every name, still no match. */
		for (size_t i = 0; i < 32; i++)
			out[i] = secret[i] ^ (uint8_t)tag;
	}
}

void scram_fake_keys(const uint8_t secret[32], const char *user, struct scram_keys *out)
{
	uint8_t salt[32];

	memset(out, 0, sizeof *out);
	out->iter = SCRAM_ITER_DEFAULT;
	fake_mac(secret, 's', user, salt);
	memcpy(out->salt, salt, SCRAM_SALT_DEFAULT);
	out->salt_len = SCRAM_SALT_DEFAULT;
	fake_mac(secret, 'k', user, out->stored_key);
	fake_mac(secret, 'v', user, out->server_key);
	explicit_bzero(salt, sizeof salt);
}

/* ---- CRAM-MD5 ---- */

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cram_md5_verify(const char *challenge, size_t clen, const uint8_t *resp, size_t rlen,
		    const char *secret, size_t slen, char *user_out, size_t ucap)
{
	uint8_t want[16], mac[EVP_MAX_MD_SIZE];
	unsigned mlen = 0;
	size_t ulen;
	int rc;

	if (user_out != NULL && ucap > 0)
		user_out[0] = '\0';
	/* "USER SP DIGEST": the digest is the last 32 octets */
	if (resp == NULL || user_out == NULL || rlen < 1 + 1 + 32 || resp[rlen - 33] != ' ')
		return -2;
	ulen = rlen - 33;
	if (ulen > USER_MAX || ulen >= ucap)
		return -2;
	for (size_t i = 0; i < ulen; i++)
		if (resp[i] < 0x20 || resp[i] == 0x7f)
			return -2;
	for (size_t i = 0; i < 16; i++) {
		int hi = hexval(resp[rlen - 32 + 2 * i]), lo = hexval(resp[rlen - 31 + 2 * i]);

		if (hi < 0 || lo < 0)
			return -2;
		want[i] = (uint8_t)(hi << 4 | lo);
	}
	if (slen > INT_MAX || (secret == NULL && slen > 0) || (challenge == NULL && clen > 0))
		return -2;
	if (HMAC(EVP_md5(), slen > 0 ? secret : "", (int)slen,
		 clen > 0 ? (const uint8_t *)challenge : (const uint8_t *)"", clen, mac,
		 &mlen) == NULL || mlen != 16) {
		rc = -3;
		goto done;
	}
	memcpy(user_out, resp, ulen);
	user_out[ulen] = '\0';
	rc = CRYPTO_memcmp(mac, want, 16) == 0 ? 0 : -1;
done:
	explicit_bzero(mac, sizeof mac);
	return rc;
}
