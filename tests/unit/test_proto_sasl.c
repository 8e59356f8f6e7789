/* test_proto_sasl.c - cmocka tests for proto/sasl.c: strict base64 (RFC 4648) and PLAIN (RFC 4616). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/sasl.h"

static struct slice sl(const char *s)
{
	return (struct slice){ (const uint8_t *)s, strlen(s) };
}

/* RFC 4648 section 10 test vectors. */
static const struct {
	const char *raw;
	const char *b64;
} vectors[] = {
	{ "", "" },	       { "f", "Zg==" },	      { "fo", "Zm8=" },
	{ "foo", "Zm9v" },     { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};
#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void test_rfc4648_encode(void **state)
{
	char text[32];

	(void)state;
	for (size_t i = 0; i < NVECTORS; i++) {
		size_t n = strlen(vectors[i].raw);
		memset(text, 'Z', sizeof(text));
		assert_int_equal(sasl_b64_encode((const uint8_t *)vectors[i].raw, n,
						 text, sizeof(text)),
				 strlen(vectors[i].b64));
		assert_string_equal(text, vectors[i].b64);
	}
}

static void test_rfc4648_decode(void **state)
{
	uint8_t out[32];

	(void)state;
	for (size_t i = 1; i < NVECTORS; i++) { /* "" is not valid input */
		size_t n = strlen(vectors[i].raw);
		assert_int_equal(sasl_b64_decode(sl(vectors[i].b64), out, sizeof(out)),
				 (ssize_t)n);
		assert_memory_equal(out, vectors[i].raw, n);
		/* an exactly sized buffer is enough */
		assert_int_equal(sasl_b64_decode(sl(vectors[i].b64), out, n), (ssize_t)n);
	}
}

static void test_decode_empty_response(void **state)
{
	uint8_t out[4];

	(void)state;
	assert_int_equal(sasl_b64_decode(sl("="), out, sizeof(out)), 0);
	assert_int_equal(sasl_b64_decode(sl("="), NULL, 0), 0);
	assert_int_equal(sasl_b64_decode(sl(""), out, sizeof(out)), -1);
	assert_int_equal(sasl_b64_decode((struct slice){ NULL, 0 }, out, sizeof(out)),
			 -1);
}

static void test_decode_all_octets(void **state)
{
	uint8_t raw[256], back[256];
	char text[400];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)i;
	for (size_t len = 0; len <= sizeof(raw); len++) {
		n = sasl_b64_encode(raw, len, text, sizeof(text));
		assert_int_equal(n, (len + 2) / 3 * 4);
		assert_int_equal(strlen(text), n);
		if (len == 0)
			continue;
		assert_int_equal(sasl_b64_decode((struct slice){ (const uint8_t *)text, n },
						 back, sizeof(back)),
				 (ssize_t)len);
		assert_memory_equal(back, raw, len);
	}
}

/* Invalid base64, each with the reason. */
static const struct {
	const char *name;
	const char *in;
} bad[] = {
	{ "length_1", "Z" },
	{ "length_2", "Zg" },
	{ "length_3", "Zm9" },
	{ "length_5", "Zm9vY" },
	{ "unpadded", "Zm8" },
	{ "bad_char_dash", "Zm-v" },
	{ "bad_char_underscore", "Zm_v" },
	{ "bad_char_dot", "Zm9." },
	{ "bad_char_high", "Zm9\xc3" },
	{ "nul_inside", "Zm\0v" },
	{ "space_inside", "Zm9v Zm9v" },
	{ "space_end", "Zm9v " },
	{ "crlf_end", "Zm9v\r\n" },
	{ "tab", "Zm\t9v" },
	{ "leading_space", " Zm9v" },
	{ "newline_inside", "Zm9v\nYmFy" },
	{ "pad_three", "Z===" },
	{ "pad_four", "====" },
	{ "pad_only_two", "==" },
	{ "pad_middle", "Zg==Zm9v" },
	{ "pad_in_third_only", "Zm=v" },
	{ "pad_first", "=m9v" },
	{ "pad_then_char", "Zg=A" },
	{ "pad_extra_quantum", "Zm9v====" },
	{ "trailing_bits_2pad", "Zh==" },
	{ "trailing_bits_2pad_b", "Zv==" },
	{ "trailing_bits_1pad", "Zm9=" },
	{ "trailing_bits_1pad_b", "Zm+=" },
};
#define NBAD (sizeof(bad) / sizeof(bad[0]))

static void test_decode_invalid(void **state)
{
	uint8_t out[32];

	(void)state;
	for (size_t i = 0; i < NBAD; i++) {
		struct slice in = sl(bad[i].in);
		if (strcmp(bad[i].name, "nul_inside") == 0)
			in.len = 4;
		memset(out, 0xAA, sizeof(out));
		if (sasl_b64_decode(in, out, sizeof(out)) != -1)
			fail_msg("case %s: decoded", bad[i].name);
	}
}

static void test_decode_zero_trailing_bits_ok(void **state)
{
	uint8_t out[4];

	(void)state;
	assert_int_equal(sasl_b64_decode(sl("Zg=="), out, sizeof(out)), 1);
	assert_int_equal(out[0], 'f');
	assert_int_equal(sasl_b64_decode(sl("Zm8="), out, sizeof(out)), 2);
	assert_memory_equal(out, "fo", 2);
	assert_int_equal(sasl_b64_decode(sl("AA=="), out, sizeof(out)), 1);
	assert_int_equal(out[0], 0);
	assert_int_equal(sasl_b64_decode(sl("//8="), out, sizeof(out)), 2);
	assert_int_equal(out[0], 0xff);
	assert_int_equal(out[1], 0xff);
}

static void test_decode_cap_too_small(void **state)
{
	uint8_t out[8];

	(void)state;
	for (size_t cap = 0; cap < 6; cap++) {
		memset(out, 0xAA, sizeof(out));
		assert_int_equal(sasl_b64_decode(sl("Zm9vYmFy"), out, cap), -1);
		for (size_t i = cap; i < sizeof(out); i++)
			assert_int_equal(out[i], 0xAA); /* nothing past cap */
	}
	assert_int_equal(sasl_b64_decode(sl("Zm9vYmE="), out, 4), -1);
	assert_int_equal(sasl_b64_decode(sl("Zm9vYmE="), out, 5), 5);
	assert_int_equal(sasl_b64_decode(sl("Zg=="), out, 0), -1);
	assert_int_equal(sasl_b64_decode(sl("Zg=="), out, 1), 1);
}

static void test_encode_cap(void **state)
{
	char text[16];

	(void)state;
	/* "foobar" needs 8 + 1 */
	memset(text, 'Q', sizeof(text));
	assert_int_equal(sasl_b64_encode((const uint8_t *)"foobar", 6, text, 8), 0);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(text[i], 'Q');
	assert_int_equal(sasl_b64_encode((const uint8_t *)"foobar", 6, text, 9), 8);
	assert_string_equal(text, "Zm9vYmFy");
	/* "f" needs 4 + 1 */
	assert_int_equal(sasl_b64_encode((const uint8_t *)"f", 1, text, 4), 0);
	assert_int_equal(sasl_b64_encode((const uint8_t *)"f", 1, text, 5), 4);
	/* empty input: "" needs one byte */
	assert_int_equal(sasl_b64_encode((const uint8_t *)"", 0, text, 0), 0);
	text[0] = 'Q';
	assert_int_equal(sasl_b64_encode((const uint8_t *)"", 0, text, 1), 0);
	assert_int_equal(text[0], '\0');
	/* size arithmetic overflow */
	assert_int_equal(sasl_b64_encode((const uint8_t *)"x", SIZE_MAX, text,
					 sizeof(text)),
			 0);
}

/* PLAIN */

static void assert_slice(struct slice s, const char *want, size_t n)
{
	assert_int_equal(s.len, n);
	if (n > 0)
		assert_memory_equal(s.p, want, n);
}

#define PLAIN(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static void test_plain_no_authzid(void **state)
{
	static const char msg[] = "\0alice\0secret";
	struct slice z, c, p;

	(void)state;
	assert_int_equal(sasl_plain_parse(PLAIN(msg), &z, &c, &p), 0);
	assert_int_equal(z.len, 0);
	assert_ptr_equal(z.p, msg);
	assert_slice(c, "alice", 5);
	assert_ptr_equal(c.p, (const uint8_t *)msg + 1);
	assert_slice(p, "secret", 6);
	assert_ptr_equal(p.p, (const uint8_t *)msg + 7);
}

static void test_plain_with_authzid(void **state)
{
	struct slice z, c, p;

	(void)state;
	assert_int_equal(sasl_plain_parse(PLAIN("admin\0alice\0secret"), &z, &c, &p), 0);
	assert_slice(z, "admin", 5);
	assert_slice(c, "alice", 5);
	assert_slice(p, "secret", 6);
	/* one-octet parts are enough */
	assert_int_equal(sasl_plain_parse(PLAIN("\0a\0b"), &z, &c, &p), 0);
	assert_slice(c, "a", 1);
	assert_slice(p, "b", 1);
	/* octets other than NUL are opaque (UTF-8, controls) */
	assert_int_equal(sasl_plain_parse(PLAIN("\0\xc3\xa9\x01\0p w\r\n"), &z, &c, &p),
			 0);
	assert_slice(c, "\xc3\xa9\x01", 3);
	assert_slice(p, "p w\r\n", 5);
}

static void test_plain_invalid(void **state)
{
	static const struct {
		const char *name;
		const char *msg;
		size_t len;
	} cases[] = {
		{ "empty", "", 0 },
		{ "no_nul", "alicesecret", 11 },
		{ "one_nul", "alice\0secret", 12 },
		{ "one_nul_leading", "\0alicesecret", 12 },
		{ "three_nuls", "\0alice\0sec\0ret", 14 },
		{ "three_nuls_trailing", "\0alice\0secret\0", 14 },
		{ "authzid_three_nuls", "admin\0alice\0secret\0", 19 },
		{ "empty_authcid", "\0\0secret", 8 },
		{ "empty_authcid_with_authzid", "admin\0\0secret", 13 },
		{ "empty_passwd", "\0alice\0", 7 },
		{ "all_empty", "\0\0", 2 },
		{ "only_nul", "\0", 1 },
	};
	struct slice z, c, p;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (sasl_plain_parse((const uint8_t *)cases[i].msg, cases[i].len, &z, &c,
				     &p) != -1)
			fail_msg("case %s: accepted", cases[i].name);
	assert_int_equal(sasl_plain_parse(NULL, 0, &z, &c, &p), -1);
}

/* Build z NUL c NUL p with parts of the given lengths into msg. */
static size_t build(uint8_t *msg, size_t zl, size_t cl, size_t pl)
{
	size_t n = 0;

	memset(msg + n, 'z', zl);
	n += zl;
	msg[n++] = 0;
	memset(msg + n, 'c', cl);
	n += cl;
	msg[n++] = 0;
	memset(msg + n, 'p', pl);
	n += pl;
	return n;
}

static void test_plain_part_limits(void **state)
{
	uint8_t msg[3 * 256 + 2];
	struct slice z, c, p;
	size_t n;

	(void)state;
	n = build(msg, 255, 255, 255);
	assert_int_equal(sasl_plain_parse(msg, n, &z, &c, &p), 0);
	assert_int_equal(z.len, 255);
	assert_int_equal(c.len, 255);
	assert_int_equal(p.len, 255);
	assert_ptr_equal(p.p + p.len, msg + n);

	n = build(msg, 256, 1, 1);
	assert_int_equal(sasl_plain_parse(msg, n, &z, &c, &p), -1);
	n = build(msg, 0, 256, 1);
	assert_int_equal(sasl_plain_parse(msg, n, &z, &c, &p), -1);
	n = build(msg, 0, 1, 256);
	assert_int_equal(sasl_plain_parse(msg, n, &z, &c, &p), -1);
	n = build(msg, 256, 256, 256);
	assert_int_equal(sasl_plain_parse(msg, n, &z, &c, &p), -1);
}

/* The decoded AUTH PLAIN line of RFC 4616 4 / RFC 4954 examples. */
static void test_plain_via_base64(void **state)
{
	uint8_t out[64];
	struct slice z, c, p;
	ssize_t n;

	(void)state;
	n = sasl_b64_decode(sl("AGFsaWNlAHNlY3JldA=="), out, sizeof(out));
	assert_int_equal(n, 13);
	assert_int_equal(sasl_plain_parse(out, (size_t)n, &z, &c, &p), 0);
	assert_int_equal(z.len, 0);
	assert_slice(c, "alice", 5);
	assert_slice(p, "secret", 6);
	n = sasl_b64_decode(sl("dGVzdAB0ZXN0AHRlc3RwYXNz"), out, sizeof(out));
	assert_int_equal(n, 18);
	assert_int_equal(sasl_plain_parse(out, (size_t)n, &z, &c, &p), 0);
	assert_slice(z, "test", 4);
	assert_slice(c, "test", 4);
	assert_slice(p, "testpass", 8);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_encode),
		cmocka_unit_test(test_rfc4648_decode),
		cmocka_unit_test(test_decode_empty_response),
		cmocka_unit_test(test_decode_all_octets),
		cmocka_unit_test(test_decode_invalid),
		cmocka_unit_test(test_decode_zero_trailing_bits_ok),
		cmocka_unit_test(test_decode_cap_too_small),
		cmocka_unit_test(test_encode_cap),
		cmocka_unit_test(test_plain_no_authzid),
		cmocka_unit_test(test_plain_with_authzid),
		cmocka_unit_test(test_plain_invalid),
		cmocka_unit_test(test_plain_part_limits),
		cmocka_unit_test(test_plain_via_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
