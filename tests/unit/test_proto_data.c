/* test_proto_data.c - cmocka tests of the DATA reader and writer (src/proto/data.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "proto/data.h"

#define OUT_MAX ((size_t)1 << 24)

enum {
	F_LF = 1,	/* bare_lf */
	F_CR = 2,	/* bare_cr */
	F_LONG = 4,	/* long_line */
	F_OVER = 8,	/* oversize */
	F_FULL = 16,	/* out_full */
};

#define NOLIMIT UINT64_MAX
#define ALL ((size_t)-1)	/* `used` expected: the whole input */

struct dcase {
	const char *name;
	const char *in;
	size_t in_len;
	enum data_bare_policy policy;
	uint64_t max;
	const char *out;	/* expected output */
	size_t out_len;
	int done;
	size_t used;		/* ALL: in_len */
	int flags;
	uint64_t size;
};

/* String literals may hold NULs, so lengths come from sizeof. */
#define C(name, in, pol, max, out, done, used, flags, size)                  \
	{ name, in, sizeof(in) - 1, pol, max, out, sizeof(out) - 1, done,    \
	  used, flags, size }
#define R DATA_BARE_REJECT
#define N DATA_BARE_NORMALIZE

static const struct dcase cases[] = {
	/* The DATA command's own CR LF is the first line end (4.1.1.4). */
	C("empty message", ".\r\n", R, NOLIMIT, "", 1, 3, 0, 0),
	C("one line", "hello\r\n.\r\n", R, NOLIMIT, "hello\r\n", 1, ALL, 0, 7),
	C("two lines", "a\r\nb\r\n.\r\n", R, NOLIMIT, "a\r\nb\r\n", 1, ALL,
	  0, 6),
	C("one empty line", "\r\n.\r\n", R, NOLIMIT, "\r\n", 1, ALL, 0, 2),
	/* RFC 5321 4.5.2 dot-unstuffing, at line start only. */
	C("stuffed dot line first", "..\r\n.\r\n", R, NOLIMIT, ".\r\n", 1,
	  ALL, 0, 3),
	C("stuffed dot text", "x\r\n..foo\r\n.\r\n", R, NOLIMIT,
	  "x\r\n.foo\r\n", 1, ALL, 0, 9),
	C("lone dot removed", ".foo\r\n.\r\n", R, NOLIMIT, "foo\r\n", 1,
	  ALL, 0, 5),
	C("dot mid-line kept", "a.b.\r\n.\r\n", R, NOLIMIT, "a.b.\r\n", 1,
	  ALL, 0, 6),
	C("three dots", "...\r\n.\r\n", R, NOLIMIT, "..\r\n", 1, ALL, 0, 4),
	/* RFC 2920: what follows the terminator is the next command. */
	C("pipelined command", "a\r\n.\r\nQUIT\r\n", R, NOLIMIT, "a\r\n", 1,
	  6, 0, 3),
	C("pipelined after empty", ".\r\nRSET\r\n", R, NOLIMIT, "", 1, 3, 0,
	  0),
	/* Not (yet) an end. */
	C("no terminator", "abc\r\n", R, NOLIMIT, "abc\r\n", 0, ALL, 0, 5),
	C("half terminator", "abc\r\n.\r", R, NOLIMIT, "abc\r\n", 0, ALL, 0,
	  5),
	C("dot only", "abc\r\n.", R, NOLIMIT, "abc\r\n", 0, ALL, 0, 5),
	C("pending CR", "abc\r", R, NOLIMIT, "abc", 0, ALL, 0, 3),
	C("nothing", "", R, NOLIMIT, "", 0, ALL, 0, 0),
	/* The smuggling family (CVE-2023-51764): none of these ends DATA. */
	C("LF.LF", "a\n.\nMAIL FROM:<x@y>\r\n", R, NOLIMIT, "a", 0, ALL,
	  F_LF, 21),
	C("LF.LF then end", "a\n.\nX\r\n.\r\n", R, NOLIMIT, "a", 1, ALL,
	  F_LF, 7),
	C("LF.CRLF", "a\n.\r\nX\r\n.\r\n", R, NOLIMIT, "a", 1, ALL, F_LF,
	  8),
	C("CR.CRLF", "a\r.\r\nX\r\n.\r\n", R, NOLIMIT, "a", 1, ALL, F_CR,
	  8),
	C("CRLF.LF", "a\r\n.\nX\r\n.\r\n", R, NOLIMIT, "a\r\n", 1, ALL,
	  F_LF, 7),
	C("CRLF.CR then X", "a\r\n.\rX\r\n.\r\n", R, NOLIMIT, "a\r\n", 1,
	  ALL, F_CR, 7),
	C("CRLF.x", "a\r\n.x\r\n.\r\n", R, NOLIMIT, "a\r\nx\r\n", 1, ALL, 0,
	  6),
	C("CRLF.CRCRLF", "a\r\n.\r\r\n.\r\n", R, NOLIMIT, "a\r\n", 1, ALL,
	  F_CR, 6),
	C("first line LF.LF", "\n.\n", R, NOLIMIT, "", 0, ALL, F_LF, 3),
	C("first line .LF", ".\n", R, NOLIMIT, "", 0, ALL, F_LF, 1),
	C("CR CR LF", "a\r\r\n.\r\n", R, NOLIMIT, "a", 1, ALL, F_CR, 4),
	C("LF CR LF", "a\n\r\n.\r\n", R, NOLIMIT, "a", 1, ALL, F_LF, 4),
	/* Normalize: bare ends become CR LF, but are never line starts. */
	C("norm bare LF", "a\nb\r\n.\r\n", N, NOLIMIT, "a\r\nb\r\n", 1, ALL,
	  F_LF, 6),
	C("norm LF.LF", "a\n.\nb\r\n.\r\n", N, NOLIMIT, "a\r\n.\r\nb\r\n", 1,
	  ALL, F_LF, 9),
	C("norm LF.CRLF", "\n.\r\n.\r\n", N, NOLIMIT, "\r\n.\r\n", 1, ALL,
	  F_LF, 5),
	C("norm LF..", "a\n..\r\n.\r\n", N, NOLIMIT, "a\r\n..\r\n", 1, ALL,
	  F_LF, 7),
	C("norm CR.CRLF", "a\r.\r\n.\r\n", N, NOLIMIT, "a\r\n.\r\n", 1, ALL,
	  F_CR, 6),
	C("norm CRLF.CR X", "a\r\n.\rX\r\n.\r\n", N, NOLIMIT,
	  "a\r\n\r\nX\r\n", 1, ALL, F_CR, 8),
	C("norm CRLF.CRCRLF", "a\r\n.\r\r\n.\r\n", N, NOLIMIT,
	  "a\r\n\r\n\r\n", 1, ALL, F_CR, 7),
	C("norm CRLF.LF", "a\r\n.\nb\r\n.\r\n", N, NOLIMIT,
	  "a\r\n\r\nb\r\n", 1, ALL, F_LF, 8),
	C("norm CR CR LF", "a\r\r\n.\r\n", N, NOLIMIT, "a\r\n\r\n", 1, ALL,
	  F_CR, 5),
	C("norm trailing CR", "a\r", N, NOLIMIT, "a", 0, ALL, 0, 1),
	C("norm both", "a\rb\nc\r\n.\r\n", N, NOLIMIT, "a\r\nb\r\nc\r\n", 1,
	  ALL, F_LF | F_CR, 9),
	/* Size cap (RFC 1870): output cut at max_size, read to the end. */
	C("oversize", "abcdef\r\n.\r\nNOOP\r\n", R, 4, "abcd", 1, 11, F_OVER,
	  8),
	C("exactly max", "abcdef\r\n.\r\n", R, 8, "abcdef\r\n", 1, ALL, 0, 8),
	C("one over max", "abcdef\r\n.\r\n", R, 7, "abcdef\r", 1, ALL, F_OVER,
	  8),
	C("max 0 empty", ".\r\n", R, 0, "", 1, ALL, 0, 0),
	C("max 0 content", "a\r\n.\r\n", R, 0, "", 1, ALL, F_OVER, 3),
	C("oversize smuggle", "aaaa\r\nb\n.\nc\r\n.\r\n", R, 3, "aaa", 1,
	  ALL, F_OVER | F_LF, 13),
	C("norm oversize", "a\nb\r\n.\r\n", N, 2, "a\r", 1, ALL,
	  F_LF | F_OVER, 6),
	/* Binary octets pass through. */
	C("NUL and 8bit", "a\0b\xff\r\n.\r\n", R, NOLIMIT, "a\0b\xff\r\n", 1,
	  ALL, 0, 6),
};

static void buf_eq(const struct buf *b, const char *p, size_t n)
{
	assert_int_equal(b->len, n);
	if (n > 0)
		assert_memory_equal(b->data, p, n);
}

static int flags_of(const struct data_reader *r)
{
	return (r->bare_lf ? F_LF : 0) | (r->bare_cr ? F_CR : 0) |
	       (r->long_line ? F_LONG : 0) | (r->oversize ? F_OVER : 0) |
	       (r->out_full ? F_FULL : 0);
}

/* Feed in chunks of the given sizes (cycled); stop at done. */
static size_t feed_split(struct data_reader *r, const uint8_t *in, size_t len,
			 struct buf *out, const size_t *chunks, size_t nchunks)
{
	size_t off = 0, k = 0;

	while (off < len && !r->done) {
		size_t n = chunks[k++ % nchunks], used;

		if (n > len - off)
			n = len - off;
		used = data_reader_feed(r, in + off, n, out);
		assert_true(used <= n);
		if (!r->done)
			assert_int_equal(used, n);
		off += used;
	}
	return off;
}

static void check_case(const struct dcase *c, const size_t *chunks,
		       size_t nchunks, bool verbose)
{
	struct data_reader r;
	struct buf out;
	size_t used, want_used = c->used == ALL ? c->in_len : c->used;

	if (verbose)
		print_message("case: %s\n", c->name);
	data_reader_init(&r, c->max, c->policy);
	buf_init(&out, OUT_MAX);
	if (chunks == NULL)
		used = data_reader_feed(&r, (const uint8_t *)c->in, c->in_len,
					&out);
	else
		used = feed_split(&r, (const uint8_t *)c->in, c->in_len, &out,
				  chunks, nchunks);
	assert_int_equal(used, want_used);
	assert_int_equal(r.done, c->done);
	assert_int_equal(flags_of(&r), c->flags);
	assert_int_equal(r.size, c->size);
	buf_eq(&out, c->out, c->out_len);
	assert_int_equal(data_reader_ok(&r),
			 !(c->flags & (F_OVER | F_FULL)) &&
				 (c->policy == N || !(c->flags & (F_LF | F_CR))));
	buf_free(&out);
}

static void test_table_whole(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_case(&cases[i], NULL, 0, true);
}

static void test_table_bytewise(void **state)
{
	static const size_t one[] = { 1 };

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_case(&cases[i], one, 1, false);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

static void test_table_random_splits(void **state)
{
	size_t chunks[16];

	(void)state;
	for (int round = 0; round < 200; round++) {
		for (size_t k = 0; k < 16; k++)
			chunks[k] = rnd() % 5;	/* 0-byte feeds included */
		chunks[rnd() % 16] = 1 + rnd() % 4;	/* progress */
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
			check_case(&cases[i], chunks, 16, false);
	}
}

/* Random messages over a small alphabet that hits every transition. */
static size_t random_stream(uint8_t *p, size_t cap)
{
	static const char alpha[] = "\r\n.\r\n.ab\r\n\0";
	size_t n = rnd() % cap;

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)alpha[rnd() % (sizeof alpha - 1)];
	return n;
}

static void test_random_streams_split(void **state)
{
	uint8_t in[256];
	struct buf o1, o2;
	struct data_reader r1, r2;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t len = random_stream(in, sizeof in), u1, u2 = 0;
		enum data_bare_policy pol = rnd() & 1 ? N : R;
		uint64_t max = rnd() & 2 ? NOLIMIT : rnd() % 64;

		data_reader_init(&r1, max, pol);
		data_reader_init(&r2, max, pol);
		buf_init(&o1, OUT_MAX);
		buf_init(&o2, OUT_MAX);
		u1 = data_reader_feed(&r1, in, len, &o1);
		while (u2 < len && !r2.done) {
			size_t n = rnd() % 8;

			if (n > len - u2)
				n = len - u2;
			u2 += data_reader_feed(&r2, in + u2, n, &o2);
		}
		assert_int_equal(u1, u2);
		assert_int_equal(r1.done, r2.done);
		assert_int_equal(flags_of(&r1), flags_of(&r2));
		assert_int_equal(r1.size, r2.size);
		buf_eq(&o2, (const char *)o1.data, o1.len);
		assert_true(o1.len <= max);
		buf_free(&o1);
		buf_free(&o2);
	}
}

static void test_feed_after_done(void **state)
{
	struct data_reader r;
	struct buf out;

	(void)state;
	data_reader_init(&r, NOLIMIT, R);
	buf_init(&out, OUT_MAX);
	assert_int_equal(data_reader_feed(&r, (const uint8_t *)"x\r\n.\r\n", 6,
					  &out), 6);
	assert_true(r.done);
	assert_int_equal(data_reader_feed(&r, (const uint8_t *)"y\r\n", 3, &out),
			 0);
	buf_eq(&out, "x\r\n", 3);
	buf_free(&out);
}

static void test_out_full(void **state)
{
	struct data_reader r;
	struct buf out;
	static const char in[] = "abcdef\r\n.\r\n";

	(void)state;
	data_reader_init(&r, NOLIMIT, R);
	buf_init(&out, 3);
	assert_int_equal(data_reader_feed(&r, (const uint8_t *)in,
					  sizeof in - 1, &out),
			 sizeof in - 1);
	assert_true(r.done);
	assert_true(r.out_full);
	assert_false(data_reader_ok(&r));
	assert_int_equal(r.size, 8);
	buf_eq(&out, "abc", 3);	/* a prefix, never a hole */
	buf_free(&out);
}

/* The caller drains out between calls, as the session does. */
static void test_drain_between_calls(void **state)
{
	struct data_reader r;
	struct buf out, all;
	static const char in[] = "line one\r\n..two\r\nthree\r\n.\r\nQUIT\r\n";
	size_t off = 0;

	(void)state;
	data_reader_init(&r, NOLIMIT, R);
	buf_init(&out, 4);
	buf_init(&all, OUT_MAX);
	while (!r.done) {
		off += data_reader_feed(&r, (const uint8_t *)in + off, 3, &out);
		assert_int_equal(buf_append(&all, out.data, out.len), 0);
		buf_reset(&out);
	}
	assert_false(r.out_full);
	assert_int_equal(off, sizeof in - 1 - 6);
	buf_eq(&all, "line one\r\n.two\r\nthree\r\n", 23);
	buf_free(&out);
	buf_free(&all);
}

static void long_line_case(size_t text, bool lead_dot, bool want_long)
{
	struct data_reader r;
	struct buf out, in;

	buf_init(&in, OUT_MAX);
	buf_init(&out, OUT_MAX);
	if (lead_dot)
		assert_int_equal(buf_append(&in, ".", 1), 0);
	for (size_t i = 0; i < text; i++)
		assert_int_equal(buf_append(&in, "x", 1), 0);
	assert_int_equal(buf_append(&in, "\r\nshort\r\n.\r\n", 12), 0);
	data_reader_init(&r, NOLIMIT, R);
	assert_int_equal(data_reader_feed(&r, in.data, in.len, &out), in.len);
	assert_true(r.done);
	assert_int_equal(r.long_line, want_long);
	assert_true(data_reader_ok(&r));	/* the session decides */
	assert_int_equal(out.len, text + 2 + 7);	/* still stored */
	buf_free(&in);
	buf_free(&out);
}

/* RFC 5321 4.5.3.1.6: 1000 octets including CR LF, stuffing dot not counted. */
static void test_long_line(void **state)
{
	(void)state;
	long_line_case(998, false, false);
	long_line_case(999, false, true);
	long_line_case(5000, false, true);
	long_line_case(998, true, false);	/* 1001 on the wire */
	long_line_case(999, true, true);
}

static void test_long_line_last_and_split(void **state)
{
	struct data_reader r;
	struct buf out;
	uint8_t in[1100];

	(void)state;
	memset(in, 'y', sizeof in);
	data_reader_init(&r, NOLIMIT, R);
	buf_init(&out, OUT_MAX);
	/* 999 octets across two calls, then the line end. */
	data_reader_feed(&r, in, 500, &out);
	assert_false(r.long_line);
	data_reader_feed(&r, in, 499, &out);
	assert_true(r.long_line);
	data_reader_feed(&r, (const uint8_t *)"\r\n.\r\n", 5, &out);
	assert_true(r.done);
	buf_free(&out);
}

/* A stored line ends at a normalized bare end too. */
static void test_long_line_bare_ends(void **state)
{
	struct data_reader r;
	struct buf out, in;

	(void)state;
	buf_init(&in, OUT_MAX);
	buf_init(&out, OUT_MAX);
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < 600; i++)
			assert_int_equal(buf_append(&in, "z", 1), 0);
		assert_int_equal(buf_append(&in, k == 0 ? "\n" : "\r", 1), 0);
	}
	assert_int_equal(buf_append(&in, "\r\n.\r\n", 5), 0);
	data_reader_init(&r, NOLIMIT, N);
	assert_int_equal(data_reader_feed(&r, in.data, in.len, &out), in.len);
	assert_true(r.done);
	assert_false(r.long_line);
	assert_true(r.bare_lf && r.bare_cr);
	buf_free(&in);
	buf_free(&out);
}

static void test_size_saturates(void **state)
{
	struct data_reader r;
	struct buf out;

	(void)state;
	data_reader_init(&r, NOLIMIT, R);
	r.size = UINT64_MAX - 1;
	buf_init(&out, OUT_MAX);
	data_reader_feed(&r, (const uint8_t *)"abcd", 4, &out);
	assert_int_equal(r.size, UINT64_MAX);
	buf_free(&out);
}

/* O(n): pathological inputs for a naive rescan must stay fast. */
static void test_linear_time(void **state)
{
	size_t n = (size_t)4 << 20;
	uint8_t *in = malloc(n);
	struct data_reader r;
	struct buf out;
	clock_t t0;

	(void)state;
	assert_non_null(in);
	for (int pat = 0; pat < 3; pat++) {
		for (size_t i = 0; i < n; i++)
			in[i] = pat == 0   ? (i % 2 ? '\r' : 'a')
				: pat == 1 ? (i % 2 ? '\n' : 'a')
					   : (i % 64 == 63 ? '\r' : 'b');
		data_reader_init(&r, 1024, N);
		buf_init(&out, OUT_MAX);
		t0 = clock();
		assert_int_equal(data_reader_feed(&r, in, n, &out), n);
		assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 5.0);
		assert_true(r.oversize);
		assert_int_equal(out.len, 1024);
		buf_free(&out);
	}
	free(in);
}

struct wcase {
	const char *in;
	size_t in_len;
	const char *out;
	size_t out_len;
};

#define W(in, out) { in, sizeof(in) - 1, out, sizeof(out) - 1 }

static const struct wcase wcases[] = {
	W("", ".\r\n"),
	W("a", "a\r\n.\r\n"),
	W("a\r\n", "a\r\n.\r\n"),
	W("\r\n", "\r\n.\r\n"),
	W(".", "..\r\n.\r\n"),
	W(".\r\n", "..\r\n.\r\n"),
	W(".a\r\n..b\r\n", "..a\r\n...b\r\n.\r\n"),
	W("a.b\r\n", "a.b\r\n.\r\n"),
	W("a\n.b", "a\r\n..b\r\n.\r\n"),
	W("a\r.b\r", "a\r\n..b\r\n.\r\n"),
	W("a\r\r\n", "a\r\n\r\n.\r\n"),
	W("a\n\n", "a\r\n\r\n.\r\n"),
	W("\n.\n", "\r\n..\r\n.\r\n"),
	W("x\r\n.\r\nMAIL FROM:<a@b>\r\n",
	  "x\r\n..\r\nMAIL FROM:<a@b>\r\n.\r\n"),
	W("a\0b", "a\0b\r\n.\r\n"),
};

static void test_writer_table(void **state)
{
	struct buf out;

	(void)state;
	for (size_t i = 0; i < sizeof wcases / sizeof wcases[0]; i++) {
		buf_init(&out, OUT_MAX);
		assert_int_equal(buf_append(&out, "PRE", 3), 0);
		assert_int_equal(data_write_stuffed(&out,
						    (const uint8_t *)wcases[i].in,
						    wcases[i].in_len),
				 0);
		assert_int_equal(out.len, 3 + wcases[i].out_len);
		assert_memory_equal(out.data, "PRE", 3);
		assert_memory_equal(out.data + 3, wcases[i].out,
				    wcases[i].out_len);
		buf_free(&out);
	}
}

static void test_writer_failure_leaves_buf(void **state)
{
	struct buf out;
	static const char msg[] = ".hello\r\nworld\r\n";

	(void)state;
	/* Output is 17 octets + ".\r\n": every cap below fails cleanly. */
	for (size_t max = 2; max < 2 + 19; max++) {
		buf_init(&out, max);
		assert_int_equal(buf_append(&out, "AB", 2), 0);
		assert_int_equal(data_write_stuffed(&out, (const uint8_t *)msg,
						    sizeof msg - 1),
				 -1);
		buf_eq(&out, "AB", 2);
		buf_free(&out);
	}
	buf_init(&out, 2 + 19);
	assert_int_equal(buf_append(&out, "AB", 2), 0);
	assert_int_equal(data_write_stuffed(&out, (const uint8_t *)msg,
					    sizeof msg - 1),
			 0);
	buf_eq(&out, "AB..hello\r\nworld\r\n.\r\n", 21);
	buf_free(&out);
}

/* Content of CR LF lines, dots and NULs likely; possibly empty. */
static size_t random_crlf_content(uint8_t *p, size_t cap)
{
	static const char alpha[] = "..aZ \0\t\x80";
	size_t n = 0, lines = rnd() % 8;

	for (size_t l = 0; l < lines; l++) {
		size_t w = rnd() % 12;

		if (n + w + 2 > cap)
			break;
		for (size_t i = 0; i < w; i++)
			p[n++] = (uint8_t)alpha[rnd() % (sizeof alpha - 1)];
		p[n++] = '\r';
		p[n++] = '\n';
	}
	return n;
}

/* Property: reader(writer(C)) == C, done, every byte consumed. */
static void test_round_trip(void **state)
{
	uint8_t c[256];
	struct buf wire, out;
	struct data_reader r;
	size_t one = 1;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t n = random_crlf_content(c, sizeof c);

		buf_init(&wire, OUT_MAX);
		buf_init(&out, OUT_MAX);
		assert_int_equal(data_write_stuffed(&wire, c, n), 0);
		data_reader_init(&r, NOLIMIT, round & 1 ? N : R);
		if (round % 3 == 0)
			assert_int_equal(feed_split(&r, wire.data, wire.len, &out,
						    &one, 1),
					 wire.len);
		else
			assert_int_equal(data_reader_feed(&r, wire.data,
							  wire.len, &out),
					 wire.len);
		assert_true(r.done);
		assert_true(data_reader_ok(&r));
		assert_false(r.bare_lf || r.bare_cr);
		assert_int_equal(r.size, n);
		buf_eq(&out, (const char *)c, n);
		buf_free(&wire);
		buf_free(&out);
	}
}

/* Arbitrary bytes through the writer come back normalized, never early. */
static void test_round_trip_arbitrary(void **state)
{
	uint8_t c[256];
	struct buf wire, out, again;
	struct data_reader r;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t n = random_stream(c, sizeof c);

		buf_init(&wire, OUT_MAX);
		buf_init(&out, OUT_MAX);
		buf_init(&again, OUT_MAX);
		assert_int_equal(data_write_stuffed(&wire, c, n), 0);
		data_reader_init(&r, NOLIMIT, R);
		assert_int_equal(data_reader_feed(&r, wire.data, wire.len, &out),
				 wire.len);
		assert_true(r.done);
		assert_true(data_reader_ok(&r));
		/* The writer is idempotent on its own normalized output. */
		assert_int_equal(data_write_stuffed(&again, out.data, out.len),
				 0);
		buf_eq(&again, (const char *)wire.data, wire.len);
		buf_free(&wire);
		buf_free(&out);
		buf_free(&again);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_whole),
		cmocka_unit_test(test_table_bytewise),
		cmocka_unit_test(test_table_random_splits),
		cmocka_unit_test(test_random_streams_split),
		cmocka_unit_test(test_feed_after_done),
		cmocka_unit_test(test_out_full),
		cmocka_unit_test(test_drain_between_calls),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_long_line_last_and_split),
		cmocka_unit_test(test_long_line_bare_ends),
		cmocka_unit_test(test_size_saturates),
		cmocka_unit_test(test_linear_time),
		cmocka_unit_test(test_writer_table),
		cmocka_unit_test(test_writer_failure_leaves_buf),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_round_trip_arbitrary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
