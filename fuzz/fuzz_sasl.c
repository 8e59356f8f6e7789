/* fuzz_sasl.c - libFuzzer target for proto/sasl.c: base64 round-trips, canonical decode, PLAIN slices. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sasl.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ROUND_MAX 4096 /* bound on the encode/decode round-trip input */
#define GUARD 16
#define GUARD_BYTE 0xA5

/* decode(encode(x)) == x, with an exactly sized encode buffer. */
static void check_round_trip(const uint8_t *data, size_t size)
{
	size_t need = (size + 2) / 3 * 4, n;
	char *text;
	uint8_t *back;

	text = malloc(need + 1);
	CHECK(text != NULL);
	CHECK(sasl_b64_encode(data, size, text, need) == 0); /* one short */
	n = sasl_b64_encode(data, size, text, need + 1);
	CHECK(n == need);
	CHECK(text[n] == '\0');
	for (size_t i = 0; i < n; i++)
		CHECK(memchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			     "0123456789+/=",
			     text[i], 65) != NULL);
	if (size == 0) {
		free(text);
		return;
	}

	back = malloc(size);
	CHECK(back != NULL);
	CHECK(sasl_b64_decode((struct slice){ (const uint8_t *)text, n }, back, size) ==
	      (ssize_t)size);
	CHECK(memcmp(back, data, size) == 0);
	CHECK(sasl_b64_decode((struct slice){ (const uint8_t *)text, n }, back,
			      size - 1) == -1);
	free(back);
	free(text);
}

/* PLAIN: slices lie inside msg, hold no NUL, and rebuild msg exactly. */
static void check_plain(const uint8_t *msg, size_t n)
{
	struct slice z, c, p;

	if (sasl_plain_parse(msg, n, &z, &c, &p) != 0)
		return;
	CHECK(n >= 4);
	CHECK(z.p == msg);
	CHECK(c.len >= 1 && p.len >= 1);
	CHECK(z.len <= SASL_PART_MAX && c.len <= SASL_PART_MAX &&
	      p.len <= SASL_PART_MAX);
	CHECK(c.p == msg + z.len + 1 && p.p == c.p + c.len + 1);
	CHECK(p.p + p.len == msg + n);
	CHECK(msg[z.len] == '\0' && msg[z.len + 1 + c.len] == '\0');
	CHECK(z.len == 0 || memchr(z.p, '\0', z.len) == NULL);
	CHECK(memchr(c.p, '\0', c.len) == NULL);
	CHECK(memchr(p.p, '\0', p.len) == NULL);
}

/*
 * Decode arbitrary input into a guarded buffer with a cap from the first
 * byte and with an ample cap; any success is the canonical encoding.
 */
static void check_decode(const uint8_t *data, size_t size)
{
	size_t ample = size / 4 * 3 + 1, small;
	uint8_t *out;
	ssize_t r, r2;
	char *text;

	small = size > 0 ? data[0] % 64 : 0;
	out = malloc(ample + small + GUARD);
	CHECK(out != NULL);

	memset(out, GUARD_BYTE, ample + GUARD);
	r = sasl_b64_decode((struct slice){ data, size }, out, ample);
	for (size_t i = ample; i < ample + GUARD; i++)
		CHECK(out[i] == GUARD_BYTE);
	CHECK(r >= -1 && r < (ssize_t)ample);

	/* heap copy of exactly the input so ASan sees any over-read */
	uint8_t *in = malloc(size ? size : 1);
	CHECK(in != NULL);
	if (size)
		memcpy(in, data, size);

	uint8_t *out2 = out + ample; /* reuse the tail for the small cap */
	memset(out2, GUARD_BYTE, small + GUARD);
	r2 = sasl_b64_decode((struct slice){ in, size }, out2, small);
	for (size_t i = small; i < small + GUARD; i++)
		CHECK(out2[i] == GUARD_BYTE);
	if (r >= 0 && (size_t)r <= small) {
		CHECK(r2 == r);
		CHECK(r == 0 || memcmp(out, out2, (size_t)r) == 0);
	} else {
		CHECK(r2 == -1);
	}

	if (r >= 0) {
		if (size == 1) {
			CHECK(data[0] == '=' && r == 0); /* the empty response */
		} else {
			CHECK(size % 4 == 0 && r > 0);
			text = malloc(size + 1);
			CHECK(text != NULL);
			CHECK(sasl_b64_encode(out, (size_t)r, text, size + 1) == size);
			CHECK(memcmp(text, data, size) == 0); /* canonical form */
			free(text);
		}
		check_plain(out, (size_t)r);
	}
	free(in);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	check_decode(data, size);

	copy = malloc(size ? size : 1);
	CHECK(copy != NULL);
	if (size)
		memcpy(copy, data, size);
	check_plain(copy, size);
	check_round_trip(copy, size < ROUND_MAX ? size : ROUND_MAX);
	free(copy);
	return 0;
}
