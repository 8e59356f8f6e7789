/* fuzz_addr.c - libFuzzer target for proto/addr.c: parse, check invariants, round-trip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/addr.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t n, bool ascii_only)
{
	CHECK(s[n] == '\0');
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = (uint8_t)s[i];
		CHECK(ch >= 0x20 && ch != 0x7f); /* no control characters, no NUL */
		if (ascii_only)
			CHECK(ch < 0x80);
	}
}

static void check_mailbox(const struct mailbox *mb, unsigned flags)
{
	CHECK(mb->local_len <= ADDR_LOCAL_MAX);
	CHECK(mb->domain_len <= ADDR_DOMAIN_MAX);
	check_text(mb->local, mb->local_len, !(flags & ADDR_UTF8_OK));
	check_text(mb->domain, mb->domain_len, !(flags & ADDR_UTF8_OK));
	if (mb->utf8)
		CHECK(flags & ADDR_UTF8_OK);
	for (size_t i = 0; i < mb->domain_len; i++)
		CHECK(!(mb->domain[i] >= 'A' && mb->domain[i] <= 'Z'));
	if (mb->is_null) {
		CHECK(flags & ADDR_NULL_OK);
		CHECK(mb->local_len == 0 && mb->domain_len == 0);
		CHECK(!mb->is_postmaster);
		return;
	}
	CHECK(mb->local_len > 0);
	if (mb->is_postmaster) {
		CHECK(flags & ADDR_POSTMASTER_OK);
		CHECK(mb->domain_len == 0);
		CHECK(strcasecmp(mb->local, "postmaster") == 0);
		return;
	}
	CHECK(mb->domain_len > 0); /* CVE-2020-7247: no success without a domain */
	CHECK(mb->domain[0] != '.' && mb->domain[mb->domain_len - 1] != '.');
	if (mb->domain_literal)
		CHECK(mb->domain[0] == '[' && mb->domain[mb->domain_len - 1] == ']');
	else
		CHECK(memchr(mb->domain, '[', mb->domain_len) == NULL);
	CHECK(mb->has_percent == (memchr(mb->local, '%', mb->local_len) != NULL));
	CHECK(mb->has_bang == (memchr(mb->local, '!', mb->local_len) != NULL));
	CHECK(mb->has_at_in_local == (memchr(mb->local, '@', mb->local_len) != NULL));
	if (mb->has_at_in_local)
		CHECK(mb->local_quoted);
}

static bool same_mailbox(const struct mailbox *a, const struct mailbox *b)
{
	if (a->local_len != b->local_len || a->domain_len != b->domain_len)
		return false;
	if (a->is_postmaster ? strcasecmp(a->local, b->local) != 0
			     : memcmp(a->local, b->local, a->local_len) != 0)
		return false;
	return memcmp(a->domain, b->domain, a->domain_len) == 0 &&
	       a->is_null == b->is_null && a->is_postmaster == b->is_postmaster &&
	       a->domain_literal == b->domain_literal && a->utf8 == b->utf8 &&
	       a->has_percent == b->has_percent && a->has_bang == b->has_bang &&
	       a->has_at_in_local == b->has_at_in_local;
}

static void check_round_trip(const struct mailbox *mb, unsigned flags)
{
	char text[ADDR_PATH_MAX + 8], path[ADDR_PATH_MAX + 8], small[8];
	struct mailbox again;
	size_t used, n, m;

	n = addr_format(mb, text, sizeof(text));
	CHECK(n + 2 <= ADDR_PATH_MAX); /* formatted form is never longer */
	CHECK(strlen(text) == n);
	for (size_t cap = 0; cap <= sizeof(small); cap++) {
		memset(small, 'Z', sizeof(small));
		CHECK(addr_format(mb, small, cap) == n);
		if (cap > 0) {
			size_t w = n < cap ? n : cap - 1;
			CHECK(small[w] == '\0');
			CHECK(memcmp(small, text, w) == 0);
		}
		if (cap < sizeof(small))
			CHECK(small[cap] == 'Z'); /* nothing past cap */
	}
	path[0] = '<';
	memcpy(path + 1, text, n);
	path[n + 1] = '>';
	m = n + 2;
	/* heap copy of exactly m bytes so ASan sees any over-read */
	uint8_t *heap = malloc(m);
	CHECK(heap != NULL);
	memcpy(heap, path, m);
	CHECK(addr_parse_path(heap, m, flags, &again, &used) == ADDR_OK);
	CHECK(used == m);
	CHECK(same_mailbox(mb, &again));
	free(heap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailbox mb, wider;
	size_t used, used2;
	unsigned flags;
	enum addr_err e, e2;

	if (size < 1)
		return 0;
	/* First byte: the flags; the rest: the text after "FROM:"/"TO:". */
	flags = data[0] & (ADDR_NULL_OK | ADDR_POSTMASTER_OK | ADDR_UTF8_OK);
	data++;
	size--;

	e = addr_parse_path(data, size, flags, &mb, &used);
	CHECK(e >= ADDR_OK && e <= ADDR_ENULL);
	CHECK(addr_strerror(e) != NULL);
	if (e != ADDR_OK)
		return 0;

	CHECK(used >= 2 && used <= size);
	CHECK(data[used - 1] == '>');
	size_t lt = 0;
	while (data[lt] == ' ')
		lt++;
	CHECK(data[lt] == '<');
	CHECK(used - lt <= ADDR_PATH_MAX);
	check_mailbox(&mb, flags);
	check_round_trip(&mb, flags);

	/* Allowing more never refuses what was accepted, nor changes it. */
	unsigned all = ADDR_NULL_OK | ADDR_POSTMASTER_OK | ADDR_UTF8_OK;
	e2 = addr_parse_path(data, size, all, &wider, &used2);
	CHECK(e2 == ADDR_OK && used2 == used && same_mailbox(&mb, &wider));
	return 0;
}
