/* fuzz_data.c - libFuzzer target for the DATA reader and writer (src/proto/data.c). */
/*
 * Input: byte 0 = options (bit 0 policy, bits 1-2 max_size kind, bits 3-5
 * out buffer cap kind), byte 1 = max_size parameter, bytes 2-3 = split
 * seeds, the rest = the text after "354". Checked against a line-based
 * reference model written independently of the state machine:
 *  - used <= len, used < len only when done;
 *  - done exactly when CR LF "." CR LF occurs in CR LF + input, and used
 *    ends that first occurrence (nothing else ends DATA: RFC 5321 4.1.1.4,
 *    CVE-2023-51764);
 *  - output, size and flags equal the model's; output <= max_size;
 *  - any split into calls (two, three, byte by byte) gives the same result;
 *  - a small out cap gives a prefix of the same output and out_full;
 *  - reader(data_write_stuffed(out)) == out, and the writer never lets a
 *    message end early whatever it is given.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n",         \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

#define BIG ((size_t)1 << 26)

struct result {
	size_t used;
	bool done, bare_lf, bare_cr, long_line, oversize, out_full;
	uint64_t size;
	struct buf out;
};

static void run(struct result *res, const uint8_t *in, size_t len,
		uint64_t max, enum data_bare_policy pol, size_t out_max,
		const size_t *cuts, size_t ncuts)
{
	struct data_reader r;
	size_t off = 0;

	data_reader_init(&r, max, pol);
	buf_init(&res->out, out_max);
	/* cuts: ascending split offsets; then one last call for the rest. */
	for (size_t k = 0; k <= ncuts && !r.done; k++) {
		size_t end = k < ncuts ? cuts[k] : len, used;

		if (end < off)
			end = off;
		used = data_reader_feed(&r, in + off, end - off, &res->out);
		CHECK(used <= end - off);
		CHECK(r.done || used == end - off);
		off += used;
	}
	/* A call after done consumes nothing. */
	if (r.done)
		CHECK(data_reader_feed(&r, (const uint8_t *)"x", 1, &res->out) ==
		      0);
	res->used = off;
	res->done = r.done;
	res->bare_lf = r.bare_lf;
	res->bare_cr = r.bare_cr;
	res->long_line = r.long_line;
	res->oversize = r.oversize;
	res->out_full = r.out_full;
	res->size = r.size;
	CHECK(res->out.len <= max);
	if (data_reader_ok(&r))
		CHECK(res->out.len == r.size);
	CHECK(data_reader_ok(&r) ==
	      (!r.oversize && !r.out_full &&
	       (pol == DATA_BARE_NORMALIZE || !(r.bare_lf || r.bare_cr))));
}

static void same(const struct result *a, const struct result *b)
{
	CHECK(a->used == b->used);
	CHECK(a->done == b->done);
	CHECK(a->bare_lf == b->bare_lf);
	CHECK(a->bare_cr == b->bare_cr);
	CHECK(a->long_line == b->long_line);
	CHECK(a->oversize == b->oversize);
	CHECK(a->out_full == b->out_full);
	CHECK(a->size == b->size);
	CHECK(a->out.len == b->out.len);
	CHECK(a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0);
}

/*
 * Index in CR LF + in of the first CR LF "." CR LF, or -1. The same index
 * is the length of the body in `in` (the CR LF before "." included).
 */
static long first_end(const uint8_t *in, size_t len)
{
	uint8_t *ext = malloc(len + 2);
	const uint8_t *p;
	long t;

	CHECK(ext != NULL);
	ext[0] = '\r';
	ext[1] = '\n';
	if (len > 0)
		memcpy(ext + 2, in, len);
	p = memmem(ext, len + 2, "\r\n.\r\n", 5);
	t = p != NULL ? (long)(p - ext) : -1;
	free(ext);
	return t;
}

/*
 * The reference model, by lines: the body is the input before the CR LF
 * "." CR LF; it is cut at every CR LF; a line starting with "." loses it
 * (RFC 5321 4.5.2); any CR or LF left inside a line is bare.
 */
struct model {
	struct buf content;	/* everything, as stored (normalized in N) */
	size_t first_bare;	/* offset in content, or SIZE_MAX */
	bool bare_lf, bare_cr, long_line;
};

static void model_run(struct model *m, const uint8_t *body, size_t len,
		      enum data_bare_policy pol)
{
	size_t i = 0;

	buf_init(&m->content, BIG);
	m->first_bare = SIZE_MAX;
	m->bare_lf = m->bare_cr = m->long_line = false;
	while (i < len) {
		const uint8_t *e = memmem(body + i, len - i, "\r\n", 2);
		size_t end = (size_t)(e - body), seg = 0;

		CHECK(e != NULL);	/* the body ends in CR LF */
		if (body[i] == '.')
			i++;
		for (; i < end; i++) {
			uint8_t c = body[i];

			if (c == '\r' || c == '\n') {
				if (c == '\r')
					m->bare_cr = true;
				else
					m->bare_lf = true;
				if (m->first_bare == SIZE_MAX)
					m->first_bare = m->content.len;
				if (pol == DATA_BARE_NORMALIZE)
					CHECK(buf_append(&m->content, "\r\n", 2) == 0);
				else
					CHECK(buf_append(&m->content, &c, 1) == 0);
				seg = 0;
				continue;
			}
			CHECK(buf_append(&m->content, &c, 1) == 0);
			if (++seg > DATA_LINE_MAX - 2)
				m->long_line = true;
		}
		CHECK(buf_append(&m->content, "\r\n", 2) == 0);
		i = end + 2;
	}
}

static void check_model(const struct result *res, const uint8_t *in,
			size_t len, uint64_t max, enum data_bare_policy pol)
{
	long t = first_end(in, len);
	struct model m;
	size_t want;

	CHECK(res->done == (t >= 0));
	if (t < 0)
		return;
	CHECK(res->used == (size_t)t + 3);
	model_run(&m, in, (size_t)t, pol);
	CHECK(res->size == m.content.len);
	CHECK(res->bare_lf == m.bare_lf);
	CHECK(res->bare_cr == m.bare_cr);
	CHECK(res->long_line == m.long_line);
	CHECK(res->oversize == (m.content.len > max));
	want = m.content.len;
	if (pol == DATA_BARE_REJECT && m.first_bare < want)
		want = m.first_bare;
	if (max < want)
		want = (size_t)max;
	if (!res->out_full) {
		CHECK(res->out.len == want);
		CHECK(want == 0 ||
		      memcmp(res->out.data, m.content.data, want) == 0);
	}
	buf_free(&m.content);
}

/* reader(writer(x)) with no limits; returns the reader's output. */
static void through_writer(struct result *res, const uint8_t *msg, size_t len)
{
	struct buf wire;

	buf_init(&wire, BIG);
	CHECK(data_write_stuffed(&wire, msg, len) == 0);
	CHECK(wire.len >= 3 &&
	      memcmp(wire.data + wire.len - 3, ".\r\n", 3) == 0);
	run(res, wire.data, wire.len, UINT64_MAX, DATA_BARE_REJECT, BIG, NULL, 0);
	/* Ends exactly at the writer's own terminator, never before. */
	CHECK(res->done);
	CHECK(res->used == wire.len);
	CHECK(!res->bare_lf && !res->bare_cr && !res->oversize);
	buf_free(&wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum data_bare_policy pol;
	uint64_t max;
	size_t out_max, len, cuts[3];
	const uint8_t *in;
	struct result whole, split, other;

	if (size < 4)
		return 0;
	pol = data[0] & 1 ? DATA_BARE_NORMALIZE : DATA_BARE_REJECT;
	switch ((data[0] >> 1) & 3) {
	case 0: max = UINT64_MAX; break;
	case 1: max = data[1]; break;
	case 2: max = (uint64_t)data[1] * 16; break;
	default: max = 0; break;
	}
	switch ((data[0] >> 3) & 7) {
	case 0: out_max = data[1] % 32; break;
	case 1: out_max = (size_t)data[1] * 4; break;
	default: out_max = BIG; break;
	}
	in = data + 4;
	len = size - 4;

	/* One call, with no output cap, against the model. */
	run(&whole, in, len, max, pol, BIG, NULL, 0);
	CHECK(!whole.out_full);
	check_model(&whole, in, len, max, pol);

	/* Two and three calls, split anywhere. */
	cuts[0] = len ? (data[2] | (size_t)data[3] << 8) % (len + 1) : 0;
	run(&split, in, len, max, pol, BIG, cuts, 1);
	same(&whole, &split);
	buf_free(&split.out);
	cuts[1] = cuts[0] + (len - cuts[0]) / 2;
	cuts[2] = cuts[1] + (cuts[1] - cuts[0]) / 3;
	if (cuts[2] > len)
		cuts[2] = len;
	run(&split, in, len, max, pol, BIG, cuts, 3);
	same(&whole, &split);
	buf_free(&split.out);

	/* Byte by byte, for inputs short enough to keep the fuzzer fast. */
	if (len <= 512) {
		struct data_reader r;
		size_t off = 0;

		data_reader_init(&r, max, pol);
		buf_init(&split.out, BIG);
		while (off < len && !r.done)
			off += data_reader_feed(&r, in + off, 1, &split.out);
		split.used = off;
		split.done = r.done;
		split.bare_lf = r.bare_lf;
		split.bare_cr = r.bare_cr;
		split.long_line = r.long_line;
		split.oversize = r.oversize;
		split.out_full = r.out_full;
		split.size = r.size;
		same(&whole, &split);
		buf_free(&split.out);
	}

	/* A small out cap: same flags, a prefix of the output, out_full. */
	if (out_max != BIG) {
		run(&split, in, len, max, pol, out_max, cuts, 1);
		CHECK(split.used == whole.used && split.done == whole.done);
		CHECK(split.size == whole.size);
		CHECK(split.bare_lf == whole.bare_lf &&
		      split.bare_cr == whole.bare_cr);
		CHECK(split.long_line == whole.long_line);
		CHECK(split.oversize == whole.oversize);
		CHECK(split.out_full == (whole.out.len > out_max));
		CHECK(split.out.len == (whole.out.len > out_max ? out_max
								 : whole.out.len));
		CHECK(split.out.len == 0 ||
		      memcmp(split.out.data, whole.out.data, split.out.len) == 0);
		buf_free(&split.out);
	}

	/* Round trip: what was kept goes out and comes back unchanged. */
	if (whole.done && !whole.oversize &&
	    (pol == DATA_BARE_NORMALIZE || !(whole.bare_lf || whole.bare_cr))) {
		/* Stored content is CR LF lines: no bare CR or LF left. */
		for (size_t i = 0; i < whole.out.len; i++) {
			if (whole.out.data[i] == '\r')
				CHECK(i + 1 < whole.out.len &&
				      whole.out.data[i + 1] == '\n');
			if (whole.out.data[i] == '\n')
				CHECK(i > 0 && whole.out.data[i - 1] == '\r');
		}
		CHECK(whole.out.len == 0 ||
		      whole.out.data[whole.out.len - 1] == '\n');
		through_writer(&other, whole.out.data, whole.out.len);
		CHECK(other.size == whole.out.len);
		CHECK(other.long_line == whole.long_line);
		CHECK(other.out.len == whole.out.len);
		CHECK(other.out.len == 0 ||
		      memcmp(other.out.data, whole.out.data, other.out.len) == 0);
		buf_free(&other.out);
	}

	/* The writer, given anything at all, yields one whole message. */
	through_writer(&other, in, len);
	{
		/* ... whose content is idempotent under the writer. */
		struct result again;

		through_writer(&again, other.out.data, other.out.len);
		CHECK(again.out.len == other.out.len);
		CHECK(again.out.len == 0 ||
		      memcmp(again.out.data, other.out.data, again.out.len) == 0);
		buf_free(&again.out);
	}
	buf_free(&other.out);
	buf_free(&whole.out);
	return 0;
}
