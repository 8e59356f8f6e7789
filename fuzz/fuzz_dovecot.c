/* fuzz_dovecot.c - libFuzzer target for proto/dovecot_auth.c: server lines, tab-escaping round trips, the AUTH request. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/dovecot_auth.h"
#include "proto/sasl.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GUARD 16
#define GUARD_BYTE 0xA5
#define SEP 0x02 /* separates the request's fields in the input */

static bool inside(struct slice s, const uint8_t *p, size_t n)
{
	return s.len == 0 || (s.p >= p && s.p + s.len <= p + n);
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool starts(const uint8_t *p, size_t n, const char *lit)
{
	size_t k = strlen(lit);

	return n >= k && memcmp(p, lit, k) == 0;
}

/* One server line: whatever parses obeys the contract in dovecot_auth.h. */
static void check_line(const uint8_t *p, size_t n)
{
	struct dovecot_line l;
	int r = dovecot_parse_line(p, n, &l);

	CHECK(r == 0 || r == -1);
	if (r < 0)
		return;
	CHECK(n >= 1 && n <= DOVECOT_LINE_MAX);
	CHECK(memchr(p, '\0', n) == NULL && memchr(p, '\n', n) == NULL && memchr(p, '\r', n) == NULL);
	CHECK(inside(l.arg, p, n));
	CHECK(strnlen(l.user, sizeof l.user) < sizeof l.user);
	CHECK(strnlen(l.reason, sizeof l.reason) < sizeof l.reason);
	CHECK(strnlen(l.code, sizeof l.code) < sizeof l.code);
	switch (l.type) {
	case DOVECOT_LINE_VERSION:
		CHECK(starts(p, n, "VERSION\t"));
		break;
	case DOVECOT_LINE_MECH:
		CHECK(starts(p, n, "MECH\t"));
		CHECK(l.arg.len >= 1 && l.arg.len <= DOVECOT_MECH_NAME_MAX);
		CHECK(l.arg.p == p + 5);
		for (size_t i = 0; i < l.arg.len; i++)
			CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", l.arg.p[i]) != NULL);
		break;
	case DOVECOT_LINE_SPID:
	case DOVECOT_LINE_CUID:
	case DOVECOT_LINE_COOKIE:
		CHECK(l.arg.len >= 1);
		CHECK(memchr(l.arg.p, '\t', l.arg.len) == NULL);
		break;
	case DOVECOT_LINE_DONE:
		CHECK(starts(p, n, "DONE"));
		break;
	case DOVECOT_LINE_OK:
		CHECK(starts(p, n, "OK\t"));
		if (l.has_user) { /* the identity: exact, printable, bounded */
			CHECK(strlen(l.user) >= 1 && strlen(l.user) <= DOVECOT_USER_MAX);
			CHECK(!has_control(l.user));
		} else {
			CHECK(l.user[0] == '\0');
		}
		CHECK(!l.temp && !l.has_reason);
		break;
	case DOVECOT_LINE_FAIL:
		CHECK(starts(p, n, "FAIL\t"));
		CHECK(!has_control(l.user) && !has_control(l.reason) && !has_control(l.code));
		break;
	case DOVECOT_LINE_CONT:
		CHECK(starts(p, n, "CONT\t"));
		for (size_t i = 0; i < l.arg.len; i++)
			CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
				     l.arg.p[i]) != NULL);
		break;
	case DOVECOT_LINE_UNKNOWN:
		break;
	default:
		CHECK(!"unknown type");
	}
}

/* escape then unescape is the identity; unescape stays in bounds. */
static void check_escape(const uint8_t *p, size_t n)
{
	size_t cap = 2 * n + 1;
	char *esc = malloc(cap + GUARD), *back = malloc(n + 1 + GUARD);
	ssize_t e, u;

	CHECK(esc != NULL && back != NULL);
	memset(esc, GUARD_BYTE, cap + GUARD);
	e = dovecot_tab_escape(p, n, esc, cap);
	for (size_t i = cap; i < cap + GUARD; i++)
		CHECK((uint8_t)esc[i] == GUARD_BYTE);
	if (memchr(p, '\0', n) != NULL) {
		CHECK(e == -1);
	} else {
		CHECK(e >= (ssize_t)n && e <= (ssize_t)(2 * n));
		CHECK(esc[e] == '\0');
		CHECK(memchr(esc, '\t', (size_t)e) == NULL && memchr(esc, '\n', (size_t)e) == NULL &&
		      memchr(esc, '\r', (size_t)e) == NULL);
		u = dovecot_tab_unescape((struct slice){ (const uint8_t *)esc, (size_t)e }, back, n + 1);
		CHECK(u == (ssize_t)n);
		CHECK(n == 0 || memcmp(back, p, n) == 0);
		CHECK(dovecot_tab_escape(p, n, esc, (size_t)e + 1) == e);
		CHECK(dovecot_tab_escape(p, n, esc, (size_t)e) == -1);
	}

	/* unescape of anything: never longer than the input, never past cap */
	memset(back, GUARD_BYTE, n + 1 + GUARD);
	u = dovecot_tab_unescape((struct slice){ p, n }, back, n + 1);
	for (size_t i = n + 1; i < n + 1 + GUARD; i++)
		CHECK((uint8_t)back[i] == GUARD_BYTE);
	CHECK(u >= -1 && u <= (ssize_t)n);
	if (u >= 0)
		CHECK(back[u] == '\0');
	else
		CHECK(n > 0 && p[n - 1] == 0x01); /* only a lone \001 at the end */
	free(esc);
	free(back);
}

/* The n-th SEP-separated part of the input, as a slice. */
static struct slice part(const uint8_t *p, size_t n, int k)
{
	size_t start = 0;

	for (int i = 0; i < k; i++) {
		const uint8_t *s = memchr(p + start, SEP, n - start);

		if (s == NULL)
			return (struct slice){ NULL, 0 };
		start = (size_t)(s - p) + 1;
	}
	{
		const uint8_t *s = memchr(p + start, SEP, n - start);
		size_t end = s ? (size_t)(s - p) : n;

		return (struct slice){ p + start, end - start };
	}
}

/* A C string of s cut at its first NUL (what a caller could pass). */
static char *cstr(struct slice s)
{
	char *c = malloc(s.len + 1);
	size_t k = 0;

	CHECK(c != NULL);
	while (k < s.len && s.p[k] != '\0') {
		c[k] = (char)s.p[k];
		k++;
	}
	c[k] = '\0';
	return c;
}

/* The value of name= in a TAB-separated line, unescaped into out (cap). */
static void field_value(const char *line, const char *name, char *out, size_t cap, bool *found)
{
	char key[16];
	const char *f;

	snprintf(key, sizeof key, "\t%s=", name);
	f = strstr(line, key);
	*found = f != NULL;
	if (f == NULL)
		return;
	f += strlen(key);
	CHECK(dovecot_tab_unescape((struct slice){ (const uint8_t *)f, strcspn(f, "\t\n") }, out, cap) >= 0);
}

/* The request: refused exactly when a field is refusable, else one line that reads back. */
static void check_build(const uint8_t *p, size_t n)
{
	struct slice user = part(p, n, 3), pass = part(p, n, 4);
	char *service = cstr(part(p, n, 0)), *lip = cstr(part(p, n, 1)), *rip = cstr(part(p, n, 2));
	struct dovecot_auth_request r = {
		.id = 1,
		.service = service,
		.local_ip = lip,
		.remote_ip = rip,
		.secured = (n & 1) != 0,
		.user = user.p,
		.user_len = user.len,
		.password = pass.p,
		.password_len = pass.len,
	};
	size_t cap = DOVECOT_REQUEST_MAX + 1;
	char *out = malloc(cap + GUARD), *val = malloc(cap);
	uint8_t *plain = malloc(cap);
	bool refusable, found;
	ssize_t b;

	CHECK(out != NULL && val != NULL && plain != NULL);
	refusable = service[0] == '\0' || strchr(service, '\n') || strchr(lip, '\n') ||
		    strchr(rip, '\n') || user.len == 0 || user.len > DOVECOT_USER_MAX ||
		    memchr(user.p, '\0', user.len) || pass.len == 0 || pass.len > DOVECOT_PASS_MAX ||
		    memchr(pass.p, '\0', pass.len); /* len 0 ends it before memchr */
	memset(out, GUARD_BYTE, cap + GUARD);
	b = dovecot_build_auth(&r, out, cap);
	for (size_t i = cap; i < cap + GUARD; i++)
		CHECK((uint8_t)out[i] == GUARD_BYTE);
	if (refusable)
		CHECK(b == -1);
	if (b < 0) {
		for (size_t i = 0; i < cap; i++)
			CHECK(out[i] == 0); /* wiped */
	} else {
		const char *resp;
		ssize_t m;

		CHECK(b <= DOVECOT_REQUEST_MAX && out[b] == '\0' && out[b - 1] == '\n');
		CHECK(memchr(out, '\n', (size_t)b - 1) == NULL && memchr(out, '\r', (size_t)b) == NULL);
		CHECK(strncmp(out, "AUTH\t1\tPLAIN\tservice=", strlen("AUTH\t1\tPLAIN\tservice=")) == 0);
		field_value(out, "service", val, cap, &found);
		CHECK(found && strcmp(val, service) == 0);
		field_value(out, "lip", val, cap, &found);
		CHECK(found == (lip[0] != '\0') && (!found || strcmp(val, lip) == 0));
		field_value(out, "rip", val, cap, &found);
		CHECK(found == (rip[0] != '\0') && (!found || strcmp(val, rip) == 0));
		CHECK((strstr(out, "\tsecured\t") != NULL) == r.secured);
		resp = strstr(out, "\tresp=");
		CHECK(resp != NULL);
		resp += 6;
		CHECK(strchr(resp, '\t') == NULL); /* the last field */
		m = sasl_b64_decode((struct slice){ (const uint8_t *)resp, strlen(resp) - 1 }, plain, cap);
		CHECK(m == (ssize_t)(2 + user.len + pass.len));
		CHECK(plain[0] == '\0' && memcmp(plain + 1, user.p, user.len) == 0);
		CHECK(plain[1 + user.len] == '\0');
		CHECK(memcmp(plain + 2 + user.len, pass.p, pass.len) == 0);
	}
	free(out);
	free(val);
	free(plain);
	free(service);
	free(lip);
	free(rip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	size_t start = 0;

	CHECK(copy != NULL);
	if (size)
		memcpy(copy, data, size);
	check_line(copy, size);
	/* line by line, as the client splits what it reads */
	while (start < size) {
		const uint8_t *lf = memchr(copy + start, '\n', size - start);
		size_t end = lf ? (size_t)(lf - copy) : size;
		uint8_t *line = malloc(end - start ? end - start : 1);

		CHECK(line != NULL);
		memcpy(line, copy + start, end - start);
		check_line(line, end - start);
		free(line);
		start = end + 1;
	}
	check_escape(copy, size);
	check_build(copy, size);
	free(copy);
	return 0;
}
