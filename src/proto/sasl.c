/* sasl.c - strict RFC 4648 base64 and the RFC 4616 PLAIN message for SMTP AUTH. */
#include "sasl.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const char b64_alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * Decode table: the sextet value plus one for the 64 alphabet characters,
 * zero for every other octet (including '=', handled apart).
 */
static const uint8_t b64_value[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
	['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
	['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
	['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
	['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
	['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
	['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
	['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
	['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
	['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
	['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

/* The sextet of ch, or -1 when ch is not in the alphabet. */
static int sextet(uint8_t ch)
{
	return (int)b64_value[ch] - 1;
}

ssize_t sasl_b64_decode(struct slice in, uint8_t *out, size_t cap)
{
	size_t pad, quanta, outlen, o, i;

	if (in.p == NULL || in.len == 0)
		return -1;
	/* RFC 4954 4: a lone "=" is the empty initial response. */
	if (in.len == 1)
		return in.p[0] == '=' ? 0 : -1;
	if (in.len % 4 != 0)
		return -1;

	pad = 0;
	if (in.p[in.len - 1] == '=') {
		pad = 1;
		if (in.p[in.len - 2] == '=')
			pad = 2;
	}
	quanta = in.len / 4;
	outlen = quanta * 3 - pad;
	if (outlen > cap || outlen > (size_t)SSIZE_MAX)
		return -1;

	o = 0;
	for (i = 0; i < in.len; i += 4) {
		bool last = i + 4 == in.len;
		size_t real = last ? 4 - pad : 4; /* non-padding characters */
		int v[4] = { 0, 0, 0, 0 };
		uint32_t q;

		for (size_t k = 0; k < real; k++) {
			v[k] = sextet(in.p[i + k]);
			if (v[k] < 0)
				return -1; /* '=' inside, whitespace, other bytes */
		}
		q = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		    (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if (real == 2 && (v[1] & 0x0f) != 0)
			return -1; /* non-zero unused bits (RFC 4648 3.5) */
		if (real == 3 && (v[2] & 0x03) != 0)
			return -1;
		if (cap - o < real - 1)
			return -1; /* cannot happen: outlen <= cap */
		out[o++] = (uint8_t)(q >> 16);
		if (real >= 3)
			out[o++] = (uint8_t)(q >> 8);
		if (real == 4)
			out[o++] = (uint8_t)q;
	}
	return (ssize_t)o;
}

size_t sasl_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	size_t need, o, i;

	/* need = 4 * ceil(n / 3) + 1, checked */
	if (!size_mul(n / 3 + (n % 3 != 0), 4, &need) || !size_add(need, 1, &need))
		return 0;
	if (out == NULL || cap < need)
		return 0;

	o = 0;
	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t q = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     (uint32_t)in[i + 2];
		out[o++] = b64_alphabet[q >> 18 & 0x3f];
		out[o++] = b64_alphabet[q >> 12 & 0x3f];
		out[o++] = b64_alphabet[q >> 6 & 0x3f];
		out[o++] = b64_alphabet[q & 0x3f];
	}
	if (n - i == 1) {
		uint32_t q = (uint32_t)in[i] << 16;
		out[o++] = b64_alphabet[q >> 18 & 0x3f];
		out[o++] = b64_alphabet[q >> 12 & 0x3f];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		uint32_t q = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64_alphabet[q >> 18 & 0x3f];
		out[o++] = b64_alphabet[q >> 12 & 0x3f];
		out[o++] = b64_alphabet[q >> 6 & 0x3f];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

int sasl_plain_parse(const uint8_t *msg, size_t n, struct slice *authzid,
		     struct slice *authcid, struct slice *passwd)
{
	const uint8_t *nul1, *nul2;
	size_t zlen, clen, plen;

	if (msg == NULL || n == 0)
		return -1;
	nul1 = memchr(msg, '\0', n);
	if (nul1 == NULL)
		return -1;
	zlen = (size_t)(nul1 - msg);
	nul2 = memchr(nul1 + 1, '\0', n - zlen - 1);
	if (nul2 == NULL)
		return -1;
	clen = (size_t)(nul2 - (nul1 + 1));
	plen = n - zlen - 1 - clen - 1;
	if (memchr(nul2 + 1, '\0', plen) != NULL)
		return -1; /* a third NUL */
	if (clen == 0 || plen == 0)
		return -1;
	if (zlen > SASL_PART_MAX || clen > SASL_PART_MAX || plen > SASL_PART_MAX)
		return -1;

	if (authzid != NULL)
		*authzid = (struct slice){ msg, zlen };
	if (authcid != NULL)
		*authcid = (struct slice){ nul1 + 1, clen };
	if (passwd != NULL)
		*passwd = (struct slice){ nul2 + 1, plen };
	return 0;
}
