/* fuzz_ctl.c - libFuzzer target for proto/ctl.c: control requests, replies, formatters. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ctl.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const whys[] = {
	"empty request", "malformed request", "unknown command", "missing argument",
	"bad queue id", "bad domain", "line too long",
};

static bool known_why(const char *why)
{
	for (size_t i = 0; i < sizeof whys / sizeof whys[0]; i++)
		if (strcmp(why, whys[i]) == 0)
			return true;
	return false;
}

static void check_line(const char *line, int n)
{
	CHECK(n > 0 && n <= CTL_LINE_MAX);
	CHECK((size_t)n == strlen(line));
	CHECK(line[n - 1] == '\n');
	for (int i = 0; i < n - 1; i++)
		CHECK(line[i] >= 0x20 && line[i] < 0x7f);
}

static void check_request(const uint8_t *data, size_t size)
{
	struct ctl_req r, again;
	const char *why = NULL;
	char line[CTL_LINE_MAX + 1];
	size_t alen;
	int rc = ctl_parse_request(data, size, &r, &why);
	int n;

	CHECK(rc == 0 || rc == -1);
	alen = strnlen(r.arg, sizeof r.arg);
	CHECK(alen < sizeof r.arg);
	if (rc < 0) {
		CHECK(why != NULL && known_why(why));
		CHECK(r.arg[0] == '\0');
		return;
	}
	CHECK(why == NULL);
	CHECK(size < CTL_LINE_MAX);
	CHECK(r.verb >= CTL_FLUSH && r.verb <= CTL_ETRN);
	CHECK(ctl_verb_name(r.verb) != NULL);
	if (alen == 0) {
		CHECK(r.verb == CTL_FLUSH);
	} else if (r.arg[0] == '@') {
		char dom[CTL_ARG_MAX + 1];

		CHECK(r.verb == CTL_FLUSH || r.verb == CTL_ETRN);
		CHECK(ctl_domain_norm((const uint8_t *)r.arg + 1, alen - 1, dom, sizeof dom) ==
		      (int)(alen - 1));
		CHECK(strcmp(dom, r.arg + 1) == 0); /* already lower case */
		for (size_t i = 1; i < alen; i++)
			CHECK(!(r.arg[i] >= 'A' && r.arg[i] <= 'Z'));
	} else {
		CHECK(r.verb != CTL_ETRN);
		CHECK(ctl_qid_valid((const uint8_t *)r.arg, alen));
	}
	/* The canonical form parses to the same request. */
	n = snprintf(line, sizeof line, "%s%s%s", ctl_verb_name(r.verb), alen ? " " : "", r.arg);
	CHECK(n > 0 && (size_t)n <= size);
	CHECK(ctl_parse_request((const uint8_t *)line, (size_t)n, &again, &why) == 0);
	CHECK(again.verb == r.verb && strcmp(again.arg, r.arg) == 0);
}

static void check_reply(const uint8_t *data, size_t size)
{
	struct ctl_reply rep;
	int rc = ctl_parse_reply(data, size, &rep);

	CHECK(rc == 0 || rc == -1);
	if (rc < 0)
		return;
	CHECK(size < CTL_LINE_MAX);
	CHECK(rep.words.len <= size);
	CHECK(rep.words.p >= data && rep.words.p + rep.words.len <= data + size);
	if (rep.ok)
		CHECK(rep.n >= 0 && size >= 4 && memcmp(data, "OK ", 3) == 0);
	else
		CHECK(rep.n == 0 && rep.words.len > 0 && memcmp(data, "ERR ", 4) == 0);
	for (size_t i = 0; i < rep.words.len; i++)
		CHECK(rep.words.p[i] >= 0x20 && rep.words.p[i] < 0x7f);
}

static void check_formatters(const uint8_t *data, size_t size)
{
	char words[1024], line[CTL_LINE_MAX + 1];
	struct ctl_reply rep;
	size_t wn = size < sizeof words - 1 ? size : sizeof words - 1;
	int n;

	/* Any words (cut at a NUL, as a C string would be) make one safe ERR line. */
	memcpy(words, data, wn);
	words[wn] = '\0';
	n = ctl_format_err(line, sizeof line, words);
	check_line(line, n);
	CHECK(ctl_parse_reply((const uint8_t *)line, (size_t)n - 1, &rep) == 0);
	CHECK(!rep.ok && rep.words.len > 0);

	if (size >= 5) {
		enum ctl_verb v = (enum ctl_verb)(data[0] % 7);	/* 0 and 6: not verbs */
		int count = (int)((uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 |
				  (uint32_t)data[3] << 8 | data[4]);

		n = ctl_format_ok(line, sizeof line, v, count);
		if (v < CTL_FLUSH || v > CTL_ETRN || count < 0) {
			CHECK(n == -1);
		} else {
			check_line(line, n);
			CHECK(ctl_parse_reply((const uint8_t *)line, (size_t)n - 1, &rep) == 0);
			CHECK(rep.ok && rep.n == count);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	/* An exact-size copy, so ASan catches a read past len. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	check_request(copy, size);
	check_reply(copy, size);
	check_formatters(copy, size);
	free(copy);
	return 0;
}
