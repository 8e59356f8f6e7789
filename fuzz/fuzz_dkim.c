/*
 * fuzz_dkim.c - libFuzzer target for mailauth/dkim*.c: tag lists, DKIM-Signature
 * values, key records, canonicalization (streaming == one shot), the verifier
 * on the input as a message, and sign-then-verify of the input (must pass).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dkim.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW ((time_t)1700000000)

static const char ED_SEED[] = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
static const char ED_REC[] = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char RSA_REC[] =
	"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5q"
	"hdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4h"
	"stT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

static bool printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

static void check_tags(const uint8_t *p, size_t n)
{
	struct dkim_tag t[DKIM_TAGS_MAX];
	size_t nt;
	char err[64];

	if (dkim_tags_parse(p, n, t, DKIM_TAGS_MAX, &nt, err, sizeof err) < 0) {
		CHECK(printable(err));
		return;
	}
	CHECK(nt <= DKIM_TAGS_MAX);
	for (size_t i = 0; i < nt; i++) {
		CHECK(t[i].name.len > 0 && t[i].name.p >= p && t[i].name.p + t[i].name.len <= p + n);
		CHECK(t[i].raw_start <= t[i].raw_end && t[i].raw_end <= n);
		CHECK(t[i].value.p >= p + t[i].raw_start || t[i].value.len == 0);
		CHECK(t[i].value.p + t[i].value.len <= p + t[i].raw_end);
		if (t[i].value.len) {
			uint8_t a = t[i].value.p[0], z = t[i].value.p[t[i].value.len - 1];
			CHECK(a != ' ' && a != '\t' && z != ' ' && z != '\t' && z != '\n');
			CHECK(memchr(t[i].value.p, ';', t[i].value.len) == NULL);
		}
		CHECK(t[i].raw_end == n || p[t[i].raw_end] == ';');
		for (size_t j = 0; j < i; j++)
			CHECK(t[j].name.len != t[i].name.len ||
			      memcmp(t[j].name.p, t[i].name.p, t[i].name.len) != 0);
	}
}

static void check_sig(const uint8_t *p, size_t n)
{
	static struct dkim_sigtags st;
	char note[128] = "";
	enum dkim_reason r = dkim_sig_parse(p, n, &st, note, sizeof note);

	CHECK(printable(note) && printable(st.d) && printable(st.s) && printable(st.a) &&
	      printable(st.b_prefix) && printable(st.auid));
	if (r != DKIM_R_OK) {
		CHECK(note[0] != '\0');
		return;
	}
	CHECK(st.alg == DKIM_ALG_RSA_SHA256 || st.alg == DKIM_ALG_ED25519_SHA256);
	CHECK(st.d[0] && st.s[0] && strchr(st.auid, '@') != NULL);
	CHECK(st.nh >= 1 && st.nh <= DKIM_H_MAX);
	CHECK(st.b_len > 0 && st.b_len <= DKIM_B_MAX && st.bh_len > 0);
	CHECK(st.b_raw_start <= st.b_raw_end && st.b_raw_end <= n);
	CHECK(!st.has_x || !st.has_t || st.x >= st.t);
	CHECK(strlen(st.s) + strlen(st.d) + 12 <= 253);
}

static void check_keyrec(const uint8_t *p, size_t n)
{
	static struct dkim_keyrec kr;
	char note[128] = "";
	unsigned bits = 0;

	if (dkim_keyrec_parse(p, n, &kr, note, sizeof note) != DKIM_R_OK) {
		CHECK(note[0] != '\0' && printable(note));
		return;
	}
	CHECK(kr.p_len <= DKIM_P_MAX);
	CHECK(kr.revoked == (kr.p_len == 0));
	enum dkim_reason r = dkim_keyrec_check(&kr, &bits, note, sizeof note);
	CHECK(r == DKIM_R_OK || r == DKIM_R_KEY_REVOKED || r == DKIM_R_KEY_SYNTAX ||
	      r == DKIM_R_KEY_TOO_SHORT || r == DKIM_R_KEY_UNUSABLE);
	if (r == DKIM_R_OK)
		CHECK(bits == 256 || (bits >= DKIM_RSA_MIN_BITS && bits <= DKIM_RSA_MAX_BITS));
}

static void sink(void *arg, const uint8_t *p, size_t n)
{
	CHECK(buf_append(arg, p, n) == 0);
}

static void check_canon(const uint8_t *p, size_t n)
{
	struct buf one, parts;

	buf_init(&one, SIZE_MAX);
	buf_init(&parts, SIZE_MAX);
	for (int c = 0; c < 2; c++) {
		struct dkim_bodycanon bc;
		size_t off = 0, step = n ? 1 + p[0] % 13 : 1;

		buf_reset(&one);
		buf_reset(&parts);
		dkim_bodycanon_init(&bc, (enum dkim_canon)c, sink, &one);
		dkim_bodycanon_feed(&bc, p, n);
		dkim_bodycanon_end(&bc);
		CHECK(bc.out == one.len && one.len <= n + 2);
		dkim_bodycanon_init(&bc, (enum dkim_canon)c, sink, &parts);
		while (off < n) {
			size_t k = step > n - off ? n - off : step;
			dkim_bodycanon_feed(&bc, p + off, k);
			off += k;
			step = 1 + (step * 7 + 3) % 17;
		}
		dkim_bodycanon_end(&bc);
		CHECK(one.len == parts.len && (one.len == 0 || memcmp(one.data, parts.data, one.len) == 0));
		/* canonical output is a fixed point */
		if (one.len) {
			buf_reset(&parts);
			dkim_bodycanon_init(&bc, (enum dkim_canon)c, sink, &parts);
			dkim_bodycanon_feed(&bc, one.data, one.len);
			dkim_bodycanon_end(&bc);
			CHECK(parts.len == one.len && memcmp(parts.data, one.data, one.len) == 0);
		}

		buf_reset(&one);
		CHECK(dkim_canon_header((enum dkim_canon)c, p, n, &one) == 0);
		CHECK(one.len <= n + 3);
	}
	buf_free(&one);
	buf_free(&parts);
}

struct answer_ctx {
	struct dkim_verify *v;
	int mode;
};

static void lookup(void *ctx, size_t i, const char *name)
{
	struct answer_ctx *a = ctx;
	struct slice recs[2] = { slice_from_str(RSA_REC), slice_from_str(ED_REC) };

	CHECK(name[0] != '\0' && strlen(name) <= 253 && strstr(name, "._domainkey.") != NULL);
	switch ((a->mode + (int)i) % 4) {
	case 0: dkim_key_answer(a->v, i, DKIM_KEY_FOUND, &recs[0], 1); break;
	case 1: dkim_key_answer(a->v, i, DKIM_KEY_FOUND, &recs[1], 1); break;
	case 2: dkim_key_answer(a->v, i, DKIM_KEY_TEMPFAIL, NULL, 0); break;
	default: break;	/* answered after dkim_verify_end */
	}
}

static void check_results(struct dkim_verify *v)
{
	for (size_t i = 0; i < dkim_verify_count(v); i++) {
		const struct dkim_sig_result *r = dkim_verify_result(v, i);
		CHECK(!r->pending);
		CHECK(printable(r->note) && printable(r->d) && printable(r->s) && printable(r->a));
		CHECK(r->result <= DKIM_PERMERROR);
		CHECK(!r->l_used || r->unsigned_octets <= r->body_octets);
	}
}

static struct dkim_verify *verify(const uint8_t *p, size_t n, size_t cut, int mode)
{
	struct dkim_verify_opts o = { .now = NOW };
	struct dkim_verify *v = dkim_verify_begin(&o);
	struct answer_ctx a = { v, mode };
	int left;

	CHECK(v != NULL);
	CHECK(dkim_verify_feed(v, p, cut) == 0);
	CHECK(dkim_verify_feed(v, p + cut, n - cut) == 0);
	left = dkim_verify_end(v, lookup, &a);
	CHECK(left >= 0);
	for (size_t i = 0; i < dkim_verify_count(v); i++)
		if (dkim_verify_result(v, i)->pending)
			dkim_key_answer(v, i, DKIM_KEY_NONE, NULL, 0);
	CHECK(dkim_verify_pending(v) == 0);
	check_results(v);
	return v;
}

static struct dkim_key *ed_key(void)
{
	static struct dkim_key *k;
	char err[128];

	if (k == NULL)
		k = dkim_key_load((const uint8_t *)ED_SEED, strlen(ED_SEED), err, sizeof err);
	CHECK(k != NULL);
	return k;
}

/* Whatever tern signs, tern verifies. */
static void check_sign_verify(const uint8_t *p, size_t n)
{
	struct dkim_sign_req req = { .key = ed_key(), .domain = "example.org", .selector = "fz" };
	struct dkim_sign *s = dkim_sign_begin(&req, 1, NOW, NULL, 0);
	struct buf out;
	char err[128];
	size_t half = n / 2;

	CHECK(s != NULL);
	CHECK(dkim_sign_feed(s, p, half) == 0);
	CHECK(dkim_sign_feed(s, p + half, n - half) == 0);
	buf_init(&out, SIZE_MAX);
	if (dkim_sign_end(s, &out, err, sizeof err) == 0) {
		CHECK(out.len > 0 && buf_append(&out, p, n) == 0);
		struct dkim_verify_opts o = { .now = NOW };
		struct dkim_verify *v = dkim_verify_begin(&o);
		struct slice rec = slice_from_str(ED_REC);
		CHECK(dkim_verify_feed(v, out.data, out.len) == 0);
		CHECK(dkim_verify_end(v, NULL, NULL) >= 1);
		CHECK(dkim_key_answer(v, 0, DKIM_KEY_FOUND, &rec, 1) == dkim_verify_pending(v));
		const struct dkim_sig_result *r = dkim_verify_result(v, 0);
		if (r->result != DKIM_PASS) {
			fprintf(stderr, "sign-then-verify: %s %s\n", dkim_result_name(r->result), r->note);
			CHECK(r->result == DKIM_PASS);
		}
		dkim_verify_free(v);
	} else {
		CHECK(printable(err));
	}
	dkim_sign_free(s);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);	/* exact size: ASan sees over-reads */

	CHECK(copy != NULL);
	if (size)
		memcpy(copy, data, size);
	check_tags(copy, size);
	check_sig(copy, size);
	check_keyrec(copy, size);
	check_canon(copy, size);
	struct dkim_verify *v = verify(copy, size, size ? copy[size - 1] % (size + 1) : 0,
				       size ? copy[0] & 3 : 0);
	dkim_verify_free(v);
	check_sign_verify(copy, size);
	free(copy);
	return 0;
}
