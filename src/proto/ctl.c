/* ctl.c - the control socket's line protocol; see ctl.h. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "../spool/qfile.h"
#include "ctl.h"

_Static_assert(CTL_QID_MAX == QID_MAX, "ctl.h CTL_QID_MAX must equal QID_MAX");
_Static_assert(CTL_LINE_MAX >= 16 + CTL_ARG_MAX, "a request with the longest ARG must fit");

static const struct {
	enum ctl_verb verb;
	const char *name;
	const char *done;	/* the words after "OK n message(s) " */
} verbs[] = {
	{ CTL_FLUSH, "FLUSH", "scheduled for delivery" },
	{ CTL_DELETE, "DELETE", "deleted" },
	{ CTL_HOLD, "HOLD", "held" },
	{ CTL_RELEASE, "RELEASE", "released" },
	{ CTL_ETRN, "ETRN", "scheduled for delivery" },
};

#define NVERBS (sizeof verbs / sizeof verbs[0])

static bool printable(uint8_t ch)
{
	return ch >= 0x21 && ch <= 0x7e;
}

static uint8_t lower(uint8_t ch)
{
	return ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch + ('a' - 'A')) : ch;
}

static bool eq_nocase(const uint8_t *p, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n && lit[i] != '\0'; i++)
		if (lower(p[i]) != lower((uint8_t)lit[i]))
			return false;
	return i == n && lit[i] == '\0';
}

const char *ctl_verb_name(enum ctl_verb verb)
{
	for (size_t i = 0; i < NVERBS; i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return NULL;
}

bool ctl_qid_valid(const uint8_t *p, size_t n)
{
	if (n == 0 || n > CTL_QID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'Z')))
			return false;
	return true;
}

static bool is_ldh(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-';
}

int ctl_domain_norm(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t label = 0;

	if (n == 0 || n > CTL_DOMAIN_MAX || cap <= n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = p[i];

		if (ch == '.') {
			/* a label ends: not empty, not ending in '-' */
			if (label == 0 || p[i - 1] == '-')
				return -1;
			label = 0;
		} else if (is_ldh(ch)) {
			if (label == 0 && ch == '-')
				return -1;
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
		out[i] = (char)lower(ch);
	}
	/* the last label: no trailing dot, not ending in '-' */
	if (label == 0 || p[n - 1] == '-')
		return -1;
	out[n] = '\0';
	return (int)n;
}

int ctl_parse_request(const uint8_t *line, size_t len, struct ctl_req *out,
		      const char **why)
{
	const uint8_t *sp;
	size_t vlen, alen;
	const uint8_t *arg;

	out->verb = CTL_NONE;
	out->arg[0] = '\0';
	*why = NULL;
	if (len == 0) {
		*why = "empty request";
		return -1;
	}
	if (len >= CTL_LINE_MAX) {
		*why = "line too long";
		return -1;
	}
	/* Printable ASCII and at most one SP, neither first nor last. */
	sp = memchr(line, ' ', len);
	for (size_t i = 0; i < len; i++) {
		if (line + i == sp)
			continue;
		if (!printable(line[i])) {
			*why = "malformed request";
			return -1;
		}
	}
	if (sp != NULL && (sp == line || sp == line + len - 1)) {
		*why = "malformed request";
		return -1;
	}
	vlen = sp != NULL ? (size_t)(sp - line) : len;
	arg = sp != NULL ? sp + 1 : line + len;
	alen = sp != NULL ? len - vlen - 1 : 0;

	for (size_t i = 0; i < NVERBS; i++)
		if (eq_nocase(line, vlen, verbs[i].name))
			out->verb = verbs[i].verb;
	if (out->verb == CTL_NONE) {
		*why = "unknown command";
		return -1;
	}

	if (alen == 0) {
		if (out->verb == CTL_FLUSH)
			return 0;
		*why = "missing argument";
		return -1;
	}
	if (arg[0] == '@') {
		if (out->verb != CTL_FLUSH && out->verb != CTL_ETRN) {
			*why = "bad queue id";
			return -1;
		}
		out->arg[0] = '@';
		if (ctl_domain_norm(arg + 1, alen - 1, out->arg + 1, sizeof out->arg - 1) < 0) {
			out->arg[0] = '\0';
			*why = "bad domain";
			return -1;
		}
		return 0;
	}
	if (out->verb == CTL_ETRN) {
		*why = "bad domain";
		return -1;
	}
	if (!ctl_qid_valid(arg, alen)) {
		*why = "bad queue id";
		return -1;
	}
	memcpy(out->arg, arg, alen);
	out->arg[alen] = '\0';
	return 0;
}

int ctl_format_ok(char *out, size_t cap, enum ctl_verb verb, int n)
{
	const char *done = NULL;
	int w;

	for (size_t i = 0; i < NVERBS; i++)
		if (verbs[i].verb == verb)
			done = verbs[i].done;
	if (done == NULL || n < 0 || cap < CTL_LINE_MAX + 1)
		return -1;
	w = snprintf(out, cap, "OK %d message%s %s\n", n, n == 1 ? "" : "s", done);
	return w > 0 && (size_t)w < CTL_LINE_MAX + 1 ? w : -1;
}

int ctl_format_err(char *out, size_t cap, const char *words)
{
	size_t n = 0;

	if (cap < CTL_LINE_MAX + 1)
		return -1;
	if (words == NULL || words[0] == '\0')
		words = "failed";
	memcpy(out, "ERR ", 4);
	n = 4;
	/* room for the LF */
	for (const char *w = words; *w != '\0' && n < CTL_LINE_MAX - 1; w++) {
		uint8_t ch = (uint8_t)*w;

		out[n++] = (char)(ch == ' ' || printable(ch) ? ch : '?');
	}
	out[n++] = '\n';
	out[n] = '\0';
	return (int)n;
}

int ctl_parse_reply(const uint8_t *line, size_t len, struct ctl_reply *out)
{
	size_t i;

	out->ok = false;
	out->n = 0;
	out->words = (struct slice){ line, 0 };
	if (len >= CTL_LINE_MAX)
		return -1;
	for (i = 0; i < len; i++)
		if (line[i] != ' ' && !printable(line[i]))
			return -1;
	if (len > 4 && memcmp(line, "ERR ", 4) == 0) {
		out->words = (struct slice){ line + 4, len - 4 };
		return 0;
	}
	if (len < 4 || memcmp(line, "OK ", 3) != 0)
		return -1;
	{
		long long v = 0;
		size_t d = 0;

		for (i = 3; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
			if (++d > 10)
				return -1;
			v = v * 10 + (line[i] - '0');
		}
		if (d == 0 || v > INT_MAX)
			return -1;
		if (i < len) {
			if (line[i] != ' ' || i + 1 == len)
				return -1;
			out->words = (struct slice){ line + i + 1, len - i - 1 };
		} else {
			out->words = (struct slice){ line + len, 0 };
		}
		out->ok = true;
		out->n = (int)v;
	}
	return 0;
}
