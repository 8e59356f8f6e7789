/*
 * test_proto_hdr_stream.c - cmocka tests of the streaming header filter
 * (src/proto/hdr_stream.c): fixed cases, then every input checked against
 * a whole-message model of hdr_stream.h, fed whole, split at every
 * position, split at every pair of positions, and one octet at a time,
 * for many field_max values: the callbacks and the output must be the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/hdr_stream.h"

#define OUT_MAX ((size_t)1 << 24)

/* ------------------------------------------------------------------ */
/* callbacks that record what they were given */

enum policy {
	KEEP_ALL,
	DROP_ALL,
	DROP_HASH,	/* drop on a hash of the octets and the partial flag */
	DROP_AR,	/* drop fields whose name is Authentication-Results */
};

struct rec {
	enum policy policy;
	struct buf log;		/* per call: len (8 octets), partial, the octets */
	unsigned calls;
	size_t field_max;	/* checked: len <= field_max, partial => len == field_max */
};

static bool decide(enum policy pol, const uint8_t *f, size_t len, bool partial)
{
	uint32_t h = 2166136261u;

	switch (pol) {
	case KEEP_ALL:
		return true;
	case DROP_ALL:
		return false;
	case DROP_AR:
		return !(len >= 23 && strncasecmp((const char *)f, "Authentication-Results:", 23) == 0);
	default:
		for (size_t i = 0; i < len; i++)
			h = (h ^ f[i]) * 16777619u;
		return ((h >> 7) ^ (partial ? 1u : 0u)) & 1u;
	}
}

static bool on_field(void *arg, const uint8_t *f, size_t len, bool partial)
{
	struct rec *r = arg;
	uint64_t l = len;
	uint8_t pf = partial;

	assert_true(len <= r->field_max);
	if (partial)
		assert_int_equal(len, r->field_max);
	assert_true(len > 0);
	r->calls++;
	assert_int_equal(buf_append(&r->log, &l, sizeof l), 0);
	assert_int_equal(buf_append(&r->log, &pf, 1), 0);
	assert_int_equal(buf_append(&r->log, f, len), 0);
	return decide(r->policy, f, len, partial);
}

static void rec_init(struct rec *r, enum policy pol, size_t field_max)
{
	memset(r, 0, sizeof *r);
	r->policy = pol;
	r->field_max = field_max ? field_max : 1;
	buf_init(&r->log, OUT_MAX);
}

/* ------------------------------------------------------------------ */
/* the model: the whole message at once, read straight from hdr_stream.h */

struct result {
	struct buf out;
	struct rec rec;
	bool in_body;
};

static size_t line_end(const uint8_t *p, size_t len, size_t i)
{
	const uint8_t *lf = memchr(p + i, '\n', len - i);

	return lf != NULL ? (size_t)(lf - p) + 1 : len;
}

static void model_field(struct result *res, const uint8_t *p, size_t start, size_t end,
			size_t field_max)
{
	size_t len = end - start, fm = field_max ? field_max : 1;
	bool partial = len > fm;
	bool keep = on_field(&res->rec, p + start, partial ? fm : len, partial);

	if (keep)
		assert_int_equal(buf_append(&res->out, p + start, len), 0);
}

static void model(const uint8_t *p, size_t len, size_t field_max, enum policy pol,
		  struct result *res)
{
	size_t i = 0, start = 0;
	bool open = false;

	buf_init(&res->out, OUT_MAX);
	rec_init(&res->rec, pol, field_max);
	res->in_body = false;
	while (i < len) {
		if (open && (p[i] == ' ' || p[i] == '\t')) {	/* continuation */
			i = line_end(p, len, i);
			continue;
		}
		if (open)
			model_field(res, p, start, i, field_max);
		open = false;
		if (p[i] == '\n' || (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')) {
			/* the empty line: it and the body pass */
			assert_int_equal(buf_append(&res->out, p + i, len - i), 0);
			res->in_body = true;
			return;
		}
		start = i;
		open = true;
		i = line_end(p, len, i);
	}
	if (open)
		model_field(res, p, start, len, field_max);
}

/* ------------------------------------------------------------------ */
/* the stream, fed in the chunks cuts[] says */

static void run(const uint8_t *p, size_t len, size_t field_max, enum policy pol,
		const size_t *cuts, size_t ncuts, struct result *res)
{
	struct hdr_stream h;
	size_t prev = 0;

	buf_init(&res->out, OUT_MAX);
	rec_init(&res->rec, pol, field_max);
	hdr_stream_init(&h, field_max, on_field, &res->rec);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t at = k < ncuts ? cuts[k] : len;

		assert_true(at >= prev && at <= len);
		assert_int_equal(hdr_stream_feed(&h, p + prev, at - prev, &res->out), 0);
		prev = at;
	}
	res->in_body = hdr_stream_in_body(&h);
	assert_int_equal(hdr_stream_end(&h, &res->out), 0);
	assert_true(h.hold.cap <= (field_max ? field_max : 1));	/* memory bounded by field_max */
	hdr_stream_free(&h);
}

static void result_free(struct result *r)
{
	buf_free(&r->out);
	buf_free(&r->rec.log);
}

static void same(const struct result *a, const struct result *b, const char *what, size_t x,
		 size_t y)
{
	if (a->out.len != b->out.len || (a->out.len > 0 &&
					  memcmp(a->out.data, b->out.data, a->out.len) != 0))
		fail_msg("%s (%zu, %zu): output differs", what, x, y);
	if (a->rec.log.len != b->rec.log.len || (a->rec.log.len > 0 &&
	    memcmp(a->rec.log.data, b->rec.log.data, a->rec.log.len) != 0))
		fail_msg("%s (%zu, %zu): callbacks differ", what, x, y);
	if (a->in_body != b->in_body)
		fail_msg("%s (%zu, %zu): in_body differs", what, x, y);
}

/* Every way of feeding p must agree with the model. */
static void check_all_splits(const uint8_t *p, size_t len, size_t field_max, enum policy pol,
			     bool pairs)
{
	struct result want, got;
	size_t cuts[2];

	model(p, len, field_max, pol, &want);
	run(p, len, field_max, pol, NULL, 0, &got);
	same(&want, &got, "whole", 0, 0);
	result_free(&got);
	for (size_t i = 0; i <= len; i++) {
		cuts[0] = i;
		run(p, len, field_max, pol, cuts, 1, &got);
		same(&want, &got, "one cut", i, 0);
		result_free(&got);
	}
	for (size_t i = 0; pairs && i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			cuts[0] = i;
			cuts[1] = j;
			run(p, len, field_max, pol, cuts, 2, &got);
			same(&want, &got, "two cuts", i, j);
			result_free(&got);
		}
	}
	{
		size_t *all = malloc((len + 1) * sizeof *all);

		assert_non_null(all);
		for (size_t i = 0; i < len; i++)
			all[i] = i + 1;
		run(p, len, field_max, pol, all, len, &got);
		same(&want, &got, "octet by octet", 0, 0);
		result_free(&got);
		free(all);
	}
	/* the policy-free invariants of hdr_stream.h */
	if (pol == KEEP_ALL)
		assert_true(want.out.len == len && (len == 0 || memcmp(want.out.data, p, len) == 0));
	result_free(&want);
}

/* ------------------------------------------------------------------ */
/* inputs */

#define S(s) { (const uint8_t *)(s), sizeof(s) - 1 }

static const struct slice inputs[] = {
	S(""),
	S("\r\n"),
	S("\r\nbody\r\n"),
	S("\n"),
	S("Subject: hi\r\n\r\nbody\r\n"),
	S("From: a@example.com\r\nTo: b@example.com\r\n\r\nline 1\r\n\r\nFrom: x\r\n"),
	S("Subject: folded\r\n line two\r\n\tline three\r\nX: y\r\n\r\n"),
	S("Authentication-Results: mx.example.net; spf=pass\r\n\tsmtp.mailfrom=a@b.c\r\n"
	  "authentication-results : other; none\r\nX: 1\r\n\r\nAuthentication-Results: mx\r\n"),
	S("Subject: no empty line\r\nX: y\r\n"),
	S("Subject: no final CRLF"),
	S("Subject: ends in folding\r\n "),
	S("Subject: x\r\nno colon here\r\n continued\r\nAuthentication-Results: mx; none\r\n\r\nb"),
	S(" starts with space\r\nX: y\r\n\r\n"),
	S("\tstarts with tab\r\n\r\n"),
	S(":empty name\r\n\r\n"),
	S("X: y\r\n\rlone CR at line start\r\n\r\n"),
	S("X: y\r\n\r\r\n\r\n"),
	S("X: y\r\n\r"),
	S("\r"),
	S("\rX"),
	S("X: bare LF\nY: z\n\nbody\n"),
	S("X: bare CR\rY: z\r\n\r\n"),
	S("X: y\r\n\n body after LF-only empty line\r\n"),
	S("X: \x00nul\x00\r\n\r\n\x00"),
	S("Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n"
	  "Short: s\r\n\r\nbody"),
	S("A:\r\n \r\n \r\n\r\n"),
	S("A:1\r\nB:2\r\nC:3\r\nD:4\r\nE:5\r\n\r\n\r\n\r\n"),
};

static const size_t field_maxes[] = { 0, 1, 2, 3, 4, 5, 7, 8, 13, 16, 25, 40, 64, 4096 };

static void test_model_all_splits(void **state)
{
	static const enum policy pols[] = { KEEP_ALL, DROP_ALL, DROP_HASH, DROP_AR };

	(void)state;
	for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
		for (size_t f = 0; f < sizeof field_maxes / sizeof field_maxes[0]; f++) {
			for (size_t q = 0; q < sizeof pols / sizeof pols[0]; q++) {
				/* every pair of cuts is quadratic: the short inputs only */
				bool pairs = inputs[k].len <= 64 && (f % 3 == 0 || q == 2);

				check_all_splits(inputs[k].p, inputs[k].len, field_maxes[f], pols[q],
						 pairs);
			}
		}
	}
}

/* Random messages from a small alphabet that hits every state, random cuts. */
static void test_model_random(void **state)
{
	static const char *const pieces[] = {
		"\r\n", "\r", "\n", " ", "\t", ":", "X", "Authentication-Results: mx; none",
		"From", "ab", "\r\n ", "\r\n\r\n",
	};
	uint32_t seed = 12345;

	(void)state;
	for (int round = 0; round < 3000; round++) {
		uint8_t msg[256];
		size_t len = 0, cuts[8], ncuts;
		struct result want, got;
		size_t fm;
		enum policy pol;

		while (len < 200) {
			const char *s;
			size_t n;

			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 9 == 0)
				break;
			s = pieces[(seed >> 8) % (sizeof pieces / sizeof pieces[0])];
			n = strlen(s);
			memcpy(msg + len, s, n);
			len += n;
		}
		seed = seed * 1103515245u + 12345u;
		fm = (seed >> 8) % 50;
		pol = (enum policy)((seed >> 20) % 4);
		ncuts = (seed >> 4) % 8;
		for (size_t k = 0; k < ncuts; k++) {
			seed = seed * 1103515245u + 12345u;
			cuts[k] = len ? (seed >> 8) % (len + 1) : 0;
		}
		/* sorted, so the chunks are in order */
		for (size_t a = 0; a < ncuts; a++)
			for (size_t b = a + 1; b < ncuts; b++)
				if (cuts[b] < cuts[a]) {
					size_t t = cuts[a];

					cuts[a] = cuts[b];
					cuts[b] = t;
				}
		model(msg, len, fm, pol, &want);
		run(msg, len, fm, pol, cuts, ncuts, &got);
		same(&want, &got, "random", (size_t)round, fm);
		result_free(&want);
		result_free(&got);
	}
}

/* ------------------------------------------------------------------ */
/* fixed cases: what fn sees, and what comes out */

struct seen {
	char fields[16][128];
	bool partial[16];
	size_t n;
	const char *drop_prefix;	/* fields starting with it are dropped */
};

static bool see(void *arg, const uint8_t *f, size_t len, bool partial)
{
	struct seen *s = arg;

	assert_true(s->n < 16 && len < 128);
	memcpy(s->fields[s->n], f, len);
	s->fields[s->n][len] = '\0';
	s->partial[s->n] = partial;
	s->n++;
	return s->drop_prefix == NULL || strncmp((const char *)f, s->drop_prefix,
						 strlen(s->drop_prefix)) != 0;
}

static void feed_str(struct hdr_stream *h, const char *s, struct buf *out)
{
	assert_int_equal(hdr_stream_feed(h, (const uint8_t *)s, strlen(s), out), 0);
}

static void assert_out(const struct buf *out, const char *want)
{
	assert_int_equal(out->len, strlen(want));
	assert_memory_equal(out->data, want, out->len);
}

static void test_drop_forged(void **state)
{
	struct seen s = { .drop_prefix = "Authentication-Results:" };
	struct hdr_stream h;
	struct buf out;

	(void)state;
	buf_init(&out, OUT_MAX);
	hdr_stream_init(&h, 4096, see, &s);
	feed_str(&h, "Received: from x\r\n\tby y\r\nAuthentication-Results: mx; spf=pass\r\n"
		     " smtp.mailfrom=a@b.example\r\nFrom: <a@b.example>\r\n\r\n", &out);
	assert_true(hdr_stream_in_body(&h));
	feed_str(&h, "Authentication-Results: in the body stays\r\n", &out);
	assert_int_equal(hdr_stream_end(&h, &out), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.fields[0], "Received: from x\r\n\tby y\r\n");
	assert_string_equal(s.fields[1],
			    "Authentication-Results: mx; spf=pass\r\n smtp.mailfrom=a@b.example\r\n");
	assert_string_equal(s.fields[2], "From: <a@b.example>\r\n");
	assert_out(&out, "Received: from x\r\n\tby y\r\nFrom: <a@b.example>\r\n\r\n"
			 "Authentication-Results: in the body stays\r\n");
	hdr_stream_free(&h);
	buf_free(&out);
}

/* The field is not complete until the next line's first octet says so. */
static void test_callback_timing(void **state)
{
	struct seen s = { 0 };
	struct hdr_stream h;
	struct buf out;

	(void)state;
	buf_init(&out, OUT_MAX);
	hdr_stream_init(&h, 4096, see, &s);
	feed_str(&h, "Subject: a\r\n", &out);
	assert_int_equal(s.n, 0);
	assert_int_equal(out.len, 0);
	feed_str(&h, " b\r\n", &out);
	assert_int_equal(s.n, 0);
	feed_str(&h, "T", &out);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.fields[0], "Subject: a\r\n b\r\n");
	assert_out(&out, "Subject: a\r\n b\r\n");
	feed_str(&h, "o: x\r\n\r", &out);
	assert_int_equal(s.n, 2);	/* CR cannot start a continuation */
	assert_false(hdr_stream_in_body(&h));
	feed_str(&h, "\n", &out);
	assert_true(hdr_stream_in_body(&h));
	assert_int_equal(hdr_stream_end(&h, &out), 0);
	assert_int_equal(s.n, 2);
	assert_out(&out, "Subject: a\r\n b\r\nTo: x\r\n\r\n");
	hdr_stream_free(&h);
	buf_free(&out);
}

static void test_partial(void **state)
{
	struct seen s = { .drop_prefix = "X-Long" };
	struct hdr_stream h;
	struct buf out;

	(void)state;
	buf_init(&out, OUT_MAX);
	hdr_stream_init(&h, 10, see, &s);
	feed_str(&h, "X-Long: 0123456789\r\n more\r\nX-Ok: 12\r\nX-Ok2: 123\r\n\r\nbody", &out);
	assert_int_equal(hdr_stream_end(&h, &out), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.fields[0], "X-Long: 01");
	assert_true(s.partial[0]);
	assert_string_equal(s.fields[1], "X-Ok: 12\r\n");	/* exactly field_max: whole */
	assert_false(s.partial[1]);
	assert_string_equal(s.fields[2], "X-Ok2: 123");
	assert_true(s.partial[2]);
	assert_out(&out, "X-Ok: 12\r\nX-Ok2: 123\r\n\r\nbody");
	hdr_stream_free(&h);
	buf_free(&out);
}

/* No colon: still a field, and the header goes on (see hdr_stream.h). */
static void test_malformed_lines(void **state)
{
	struct seen s = { .drop_prefix = "Authentication-Results:" };
	struct hdr_stream h;
	struct buf out;

	(void)state;
	buf_init(&out, OUT_MAX);
	hdr_stream_init(&h, 4096, see, &s);
	feed_str(&h, " lead\r\nnot a field\r\n cont\r\nAuthentication-Results: mx; none\r\n\r\n", &out);
	assert_int_equal(hdr_stream_end(&h, &out), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.fields[0], " lead\r\n");
	assert_string_equal(s.fields[1], "not a field\r\n cont\r\n");
	assert_out(&out, " lead\r\nnot a field\r\n cont\r\n\r\n");
	hdr_stream_free(&h);
	buf_free(&out);
}

/* No empty line: the last field is complete at the end, and in_body stays false. */
static void test_no_body(void **state)
{
	struct seen s = { 0 };
	struct hdr_stream h;
	struct buf out;

	(void)state;
	buf_init(&out, OUT_MAX);
	hdr_stream_init(&h, 4096, see, &s);
	feed_str(&h, "A: 1\r\nB: 2", &out);
	assert_int_equal(s.n, 1);
	assert_int_equal(hdr_stream_end(&h, &out), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.fields[1], "B: 2");
	assert_false(hdr_stream_in_body(&h));
	assert_int_equal(hdr_stream_end(&h, &out), 0);	/* twice: nothing more */
	assert_int_equal(s.n, 2);
	assert_out(&out, "A: 1\r\nB: 2");
	hdr_stream_free(&h);

	s.n = 0;
	out.len = 0;
	hdr_stream_init(&h, 4096, NULL, NULL);	/* NULL fn keeps everything */
	feed_str(&h, "A: 1\r\n\r\nx", &out);
	assert_int_equal(hdr_stream_end(&h, &out), 0);
	assert_out(&out, "A: 1\r\n\r\nx");
	hdr_stream_free(&h);
	buf_free(&out);
}

/* The body goes to out in one append per chunk, untouched, however big. */
static void test_big_body(void **state)
{
	struct hdr_stream h;
	struct buf out;
	size_t n = 1 << 20;
	uint8_t *body = malloc(n);

	(void)state;
	assert_non_null(body);
	for (size_t i = 0; i < n; i++)
		body[i] = (uint8_t)(i * 7);
	buf_init(&out, OUT_MAX);
	hdr_stream_init(&h, 64, NULL, NULL);
	feed_str(&h, "A: 1\r\n\r\n", &out);
	assert_int_equal(hdr_stream_feed(&h, body, n, &out), 0);
	assert_int_equal(hdr_stream_end(&h, &out), 0);
	assert_int_equal(out.len, 8 + n);
	assert_memory_equal(out.data + 8, body, n);
	hdr_stream_free(&h);
	buf_free(&out);
	free(body);
}

/* A huge field streams through in bounded memory. */
static void test_huge_field(void **state)
{
	struct seen s = { .drop_prefix = "X-Drop" };
	struct hdr_stream h;
	struct buf out;
	char line[1000];

	(void)state;
	memset(line, 'a', sizeof line - 3);
	memcpy(line + sizeof line - 3, "\r\n", 3);
	line[0] = ' ';
	buf_init(&out, OUT_MAX);
	hdr_stream_init(&h, 100, see, &s);
	feed_str(&h, "X-Drop: x\r\n", &out);
	for (int i = 0; i < 1000; i++)
		feed_str(&h, line, &out);
	feed_str(&h, "X-Keep: y\r\n", &out);
	for (int i = 0; i < 1000; i++)
		feed_str(&h, line, &out);
	feed_str(&h, "\r\n", &out);
	assert_int_equal(hdr_stream_end(&h, &out), 0);
	assert_int_equal(s.n, 2);
	assert_true(s.partial[0] && s.partial[1]);
	assert_int_equal(out.len, 11 + 1000 * (sizeof line - 1) + 2);
	assert_memory_equal(out.data, "X-Keep: y\r\n", 11);
	assert_true(h.hold.cap <= 100);
	hdr_stream_free(&h);
	buf_free(&out);
}

/* out cannot grow: -1, and the stream stays dead. */
static void test_out_full(void **state)
{
	struct hdr_stream h;
	struct buf out;

	(void)state;
	buf_init(&out, 10);
	hdr_stream_init(&h, 64, NULL, NULL);
	feed_str(&h, "A: 1\r\nB: 2\r\n", &out);	/* B is held: no output for it yet */
	assert_int_equal(hdr_stream_feed(&h, (const uint8_t *)"C", 1, &out), -1);
	assert_int_equal(hdr_stream_feed(&h, (const uint8_t *)"x", 1, &out), -1);
	assert_int_equal(hdr_stream_end(&h, &out), -1);
	hdr_stream_free(&h);
	buf_free(&out);

	buf_init(&out, 10);
	hdr_stream_init(&h, 64, NULL, NULL);
	feed_str(&h, "\r\n12345678", &out);
	assert_int_equal(hdr_stream_feed(&h, (const uint8_t *)"9", 1, &out), -1);
	hdr_stream_free(&h);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drop_forged),
		cmocka_unit_test(test_callback_timing),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_malformed_lines),
		cmocka_unit_test(test_no_body),
		cmocka_unit_test(test_big_body),
		cmocka_unit_test(test_huge_field),
		cmocka_unit_test(test_out_full),
		cmocka_unit_test(test_model_all_splits),
		cmocka_unit_test(test_model_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
