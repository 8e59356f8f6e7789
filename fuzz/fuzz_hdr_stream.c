/*
 * fuzz_hdr_stream.c - libFuzzer target for proto/hdr_stream.
 *
 * Input: byte 0 picks field_max, bytes 1-2 seed the chunk sizes, the rest
 * is the message. Checked, for the invariants of hdr_stream.h:
 *  - keep-all: the output is the input, fed in random chunks;
 *  - drop-all: the output is the input from the first empty line on (a
 *    line, at offset 0 or after an LF, that is CR LF or LF alone), or
 *    nothing when there is none: the body is never touched;
 *  - a policy that drops on a hash of the field: whole, in random chunks
 *    and one octet at a time give the same callbacks and the same output;
 *  - every callback: 0 < len <= field_max, partial only at field_max; the
 *    stream's buffer never grows past field_max.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/hdr_stream.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX ((size_t)1 << 24)

enum policy { KEEP_ALL, DROP_ALL, DROP_HASH };

struct rec {
	enum policy policy;
	size_t field_max;
	struct buf log;		/* per call: len, partial, the octets */
};

static bool on_field(void *arg, const uint8_t *f, size_t len, bool partial)
{
	struct rec *r = arg;
	uint32_t h = 2166136261u;
	uint64_t l = len;
	uint8_t pf = partial;

	CHECK(len > 0 && len <= r->field_max);
	CHECK(!partial || len == r->field_max);
	CHECK(buf_append(&r->log, &l, sizeof l) == 0);
	CHECK(buf_append(&r->log, &pf, 1) == 0);
	CHECK(buf_append(&r->log, f, len) == 0);
	if (r->policy != DROP_HASH)
		return r->policy == KEEP_ALL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ f[i]) * 16777619u;
	return (h >> 9) & 1u;
}

/* Feed p in chunks: sizes from seed (0: whole, UINT32_MAX: one octet at a time). */
static void run(const uint8_t *p, size_t len, size_t field_max, enum policy pol, uint32_t seed,
		struct buf *out, struct rec *r)
{
	struct hdr_stream h;
	size_t i = 0;

	r->policy = pol;
	r->field_max = field_max ? field_max : 1;
	buf_init(&r->log, OUT_MAX);
	buf_init(out, OUT_MAX);
	hdr_stream_init(&h, field_max, on_field, r);
	while (i < len) {
		size_t n;

		if (seed == 0) {
			n = len - i;
		} else if (seed == UINT32_MAX) {
			n = 1;
		} else {
			seed = seed * 1103515245u + 12345u;
			n = (seed >> 16) % 17;	/* empty chunks too */
			if ((seed >> 8) % 5 == 0)
				n = (seed >> 4) % 300;
			if (n > len - i)
				n = len - i;
		}
		CHECK(hdr_stream_feed(&h, p + i, n, out) == 0);
		CHECK(h.hold.cap <= r->field_max);
		i += n;
	}
	CHECK(hdr_stream_end(&h, out) == 0);
	hdr_stream_free(&h);
}

static bool same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void done(struct buf *out, struct rec *r)
{
	buf_free(out);
	buf_free(&r->log);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[] = { 0, 1, 2, 3, 5, 8, 16, 31, 64, 100, 257, 1000, 4096 };
	struct buf o1, o2, o3;
	struct rec r1, r2, r3;
	const uint8_t *p;
	size_t len, fm, empty;
	uint32_t seed;

	if (size < 3)
		return 0;
	fm = maxes[data[0] % (sizeof maxes / sizeof maxes[0])];
	seed = (uint32_t)data[1] << 8 | data[2] | 1u;
	p = data + 3;
	len = size - 3;

	/* the first empty line, by hdr_stream.h's words */
	empty = len;
	for (size_t i = 0; i < len; i = (size_t)((const uint8_t *)memchr(p + i, '\n', len - i) - p) + 1) {
		if (p[i] == '\n' || (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')) {
			empty = i;
			break;
		}
		if (memchr(p + i, '\n', len - i) == NULL)
			break;
	}

	run(p, len, fm, KEEP_ALL, seed, &o1, &r1);
	CHECK(o1.len == len && (len == 0 || memcmp(o1.data, p, len) == 0));
	done(&o1, &r1);

	run(p, len, fm, DROP_ALL, seed, &o1, &r1);
	CHECK(o1.len == len - empty && (o1.len == 0 || memcmp(o1.data, p + empty, o1.len) == 0));
	done(&o1, &r1);

	run(p, len, fm, DROP_HASH, 0, &o1, &r1);
	run(p, len, fm, DROP_HASH, seed, &o2, &r2);
	CHECK(same(&o1, &o2) && same(&r1.log, &r2.log));
	if (len <= 1024) {
		run(p, len, fm, DROP_HASH, UINT32_MAX, &o3, &r3);
		CHECK(same(&o1, &o3) && same(&r1.log, &r3.log));
		done(&o3, &r3);
	}
	done(&o1, &r1);
	done(&o2, &r2);
	return 0;
}
