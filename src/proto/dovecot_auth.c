/* dovecot_auth.c - Dovecot auth-client protocol 1.x: server line parser, request builder, tab escaping; see dovecot_auth.h. */
#include "dovecot_auth.h"

#include <stdio.h>
#include <string.h>

#include "sasl.h"

#define ESC 0x01 /* Dovecot's tab-escaping character */

/* The TAB-separated fields of one line, left to right. */
struct fields {
	const uint8_t *p, *end;
	bool done;
};

static bool next_field(struct fields *f, struct slice *out)
{
	const uint8_t *tab;

	if (f->done)
		return false;
	tab = memchr(f->p, '\t', (size_t)(f->end - f->p));
	if (tab == NULL) {
		*out = (struct slice){ f->p, (size_t)(f->end - f->p) };
		f->done = true;
	} else {
		*out = (struct slice){ f->p, (size_t)(tab - f->p) };
		f->p = tab + 1;
	}
	return true;
}

static bool slice_is(struct slice s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* "name=": the value after it, when s starts so. */
static bool param_value(struct slice s, const char *name, struct slice *value)
{
	size_t n = strlen(name);

	if (s.len <= n || memcmp(s.p, name, n) != 0 || s.p[n] != '=')
		return false;
	*value = (struct slice){ s.p + n + 1, s.len - n - 1 };
	return true;
}

/* Decimal, 1 to 10 digits, no sign, at most UINT32_MAX. */
static int parse_u32(struct slice s, uint32_t *out)
{
	uint64_t v = 0;

	if (s.len == 0 || s.len > 10)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* RFC 4422 3.1: sasl-mech = 1*20mech-char, mech-char = A-Z / DIGIT / "-" / "_". */
static bool mech_name_ok(struct slice s)
{
	if (s.len == 0 || s.len > DOVECOT_MECH_NAME_MAX)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		uint8_t c = s.p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static bool b64_chars_ok(struct slice s)
{
	for (size_t i = 0; i < s.len; i++) {
		uint8_t c = s.p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '='))
			return false;
	}
	return true;
}

static bool is_control(uint8_t c)
{
	return c < 0x20 || c == 0x7f;
}

/* The octet \001 x stands for. */
static uint8_t unescaped(uint8_t x)
{
	switch (x) {
	case '0':
		return '\0';
	case '1':
		return ESC;
	case 't':
		return '\t';
	case 'r':
		return '\r';
	case 'n':
		return '\n';
	default:
		return x; /* Dovecot: anything else stands for itself */
	}
}

ssize_t dovecot_tab_unescape(struct slice in, char *out, size_t cap)
{
	size_t o = 0;

	if (out == NULL || cap == 0)
		return -1;
	for (size_t i = 0; i < in.len; i++) {
		uint8_t c = in.p[i];

		if (c == ESC) {
			if (++i == in.len)
				return -1; /* a lone \001 at the end */
			c = unescaped(in.p[i]);
		}
		if (cap - o < 2)
			return -1; /* c and the NUL */
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (ssize_t)o;
}

/*
 * For text that is only logged: unescape into out (cap > 0), cutting it at
 * cap - 1 octets, every control character (NUL included) made '?'. -1 only
 * for broken escaping.
 */
static int unescape_for_log(struct slice in, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < in.len; i++) {
		uint8_t c = in.p[i];

		if (c == ESC) {
			if (++i == in.len)
				return -1;
			c = unescaped(in.p[i]);
		}
		if (o + 1 < cap)
			out[o++] = is_control(c) ? '?' : (char)c;
	}
	out[o] = '\0';
	return 0;
}

ssize_t dovecot_tab_escape(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	if (out == NULL || cap == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		char e = c == ESC ? '1' : c == '\t' ? 't' : c == '\r' ? 'r' : c == '\n' ? 'n' : 0;

		if (c == '\0')
			return -1; /* Dovecot 2.3 cannot carry it */
		if (cap - o < (e ? 3u : 2u))
			return -1;
		if (e) {
			out[o++] = ESC;
			out[o++] = e;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return (ssize_t)o;
}

/* OK: user= is who logged in, so it must be exactly right. */
static int ok_params(struct fields *f, struct dovecot_line *out)
{
	struct slice fld, v;
	ssize_t n;

	while (next_field(f, &fld)) {
		if (!param_value(fld, "user", &v))
			continue;
		if (out->has_user)
			return -1; /* two identities */
		n = dovecot_tab_unescape(v, out->user, sizeof out->user);
		if (n <= 0)
			return -1;
		for (ssize_t i = 0; i < n; i++)
			if (is_control((uint8_t)out->user[i]))
				return -1;
		out->has_user = true;
	}
	return 0;
}

/*
 * A FAIL field that is only logged: unescaped into dst unless *seen (the
 * first of each counts); broken escaping is refused either way.
 */
static int log_field(struct slice v, char *dst, size_t cap, bool *seen)
{
	char none[1];

	if (unescape_for_log(v, *seen ? none : dst, *seen ? sizeof none : cap) < 0)
		return -1;
	*seen = true;
	return 0;
}

/* FAIL: only temp and authz change what the client does; the rest is logged. */
static int fail_params(struct fields *f, struct dovecot_line *out)
{
	struct slice fld, v;
	bool has_code = false;

	while (next_field(f, &fld)) {
		if (slice_is(fld, "temp")) {
			out->temp = true;
		} else if (slice_is(fld, "authz")) {
			out->authz = true;
		} else if (param_value(fld, "user", &v)) {
			if (log_field(v, out->user, sizeof out->user, &out->has_user) < 0)
				return -1;
		} else if (param_value(fld, "reason", &v)) {
			if (log_field(v, out->reason, sizeof out->reason, &out->has_reason) < 0)
				return -1;
		} else if (param_value(fld, "code", &v)) {
			if (log_field(v, out->code, sizeof out->code, &has_code) < 0)
				return -1;
			if (slice_is(v, "temp_fail"))
				out->temp = true;
			else if (slice_is(v, "authz_fail"))
				out->authz = true;
		}
	}
	return 0;
}

int dovecot_parse_line(const uint8_t *p, size_t len, struct dovecot_line *out)
{
	struct fields f;
	struct slice cmd, a, b, fld;
	uint32_t v1, v2;

	memset(out, 0, sizeof *out);
	if (p == NULL || len == 0 || len > DOVECOT_LINE_MAX)
		return -1;
	f = (struct fields){ p, p + len, false };
	if (memchr(p, '\0', len) != NULL || memchr(p, '\n', len) != NULL ||
	    memchr(p, '\r', len) != NULL)
		return -1;
	next_field(&f, &cmd);

	if (slice_is(cmd, "VERSION")) {
		if (!next_field(&f, &a) || !next_field(&f, &b) || parse_u32(a, &v1) < 0 ||
		    parse_u32(b, &v2) < 0)
			return -1;
		out->type = DOVECOT_LINE_VERSION;
		out->major = v1;
		out->minor = v2;
	} else if (slice_is(cmd, "MECH")) {
		if (!next_field(&f, &a) || !mech_name_ok(a))
			return -1;
		out->type = DOVECOT_LINE_MECH;
		out->arg = a;
		while (next_field(&f, &fld)) {
			if (slice_is(fld, "private"))
				out->mech_private = true;
			else if (slice_is(fld, "plaintext"))
				out->mech_plaintext = true;
		}
	} else if (slice_is(cmd, "SPID") || slice_is(cmd, "CUID") || slice_is(cmd, "COOKIE")) {
		if (!next_field(&f, &a) || a.len == 0)
			return -1;
		out->type = cmd.p[0] == 'S' ? DOVECOT_LINE_SPID :
			    cmd.p[1] == 'U' ? DOVECOT_LINE_CUID : DOVECOT_LINE_COOKIE;
		out->arg = a;
	} else if (slice_is(cmd, "DONE")) {
		out->type = DOVECOT_LINE_DONE;
	} else if (slice_is(cmd, "OK") || slice_is(cmd, "FAIL") || slice_is(cmd, "CONT")) {
		if (!next_field(&f, &a) || parse_u32(a, &out->id) < 0)
			return -1;
		if (cmd.p[0] == 'O') {
			out->type = DOVECOT_LINE_OK;
			return ok_params(&f, out);
		}
		if (cmd.p[0] == 'F') {
			out->type = DOVECOT_LINE_FAIL;
			return fail_params(&f, out);
		}
		if (!next_field(&f, &b) || !b64_chars_ok(b))
			return -1;
		out->type = DOVECOT_LINE_CONT;
		out->arg = b;
	} else {
		out->type = DOVECOT_LINE_UNKNOWN;
	}
	return 0;
}

ssize_t dovecot_build_handshake(char *out, size_t cap, unsigned long pid)
{
	int n;

	if (out == NULL || cap == 0 || pid == 0)
		return -1;
	n = snprintf(out, cap, "VERSION\t1\t1\nCPID\t%lu\n", pid);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

/* A line being written into a bounded array. */
struct line_out {
	char *p;
	size_t cap; /* the NUL included */
	size_t len;
	bool bad;
};

static void put(struct line_out *w, const char *s)
{
	size_t n = strlen(s);

	if (w->bad || w->cap - w->len <= n) {
		w->bad = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
	w->p[w->len] = '\0';
}

/* "\t" name "=" value, the value tab-escaped; no LF in it. */
static void put_param(struct line_out *w, const char *name, const char *value)
{
	ssize_t n;

	put(w, "\t");
	put(w, name);
	put(w, "=");
	if (w->bad || strchr(value, '\n') != NULL) {
		w->bad = true;
		return;
	}
	n = dovecot_tab_escape((const uint8_t *)value, strlen(value), w->p + w->len, w->cap - w->len);
	if (n < 0)
		w->bad = true;
	else
		w->len += (size_t)n;
}

static bool credential_ok(const uint8_t *p, size_t n, size_t max)
{
	return p != NULL && n >= 1 && n <= max && memchr(p, '\0', n) == NULL;
}

ssize_t dovecot_build_auth(const struct dovecot_auth_request *r, char *out, size_t cap)
{
	uint8_t msg[1 + DOVECOT_USER_MAX + 1 + DOVECOT_PASS_MAX];
	struct line_out w = { out, cap < DOVECOT_REQUEST_MAX + 1 ? cap : DOVECOT_REQUEST_MAX + 1, 0, false };
	char id[16];
	size_t mlen, n;

	if (out == NULL || cap == 0)
		return -1;
	if (r->id == 0 || r->service == NULL || r->service[0] == '\0' ||
	    !credential_ok(r->user, r->user_len, DOVECOT_USER_MAX) ||
	    !credential_ok(r->password, r->password_len, DOVECOT_PASS_MAX)) {
		explicit_bzero(out, cap);
		return -1;
	}
	out[0] = '\0';

	snprintf(id, sizeof id, "%lu", (unsigned long)r->id);
	put(&w, "AUTH\t");
	put(&w, id);
	put(&w, "\tPLAIN");
	put_param(&w, "service", r->service);
	put(&w, "\tnologin");
	if (r->local_ip != NULL && r->local_ip[0] != '\0')
		put_param(&w, "lip", r->local_ip);
	if (r->remote_ip != NULL && r->remote_ip[0] != '\0')
		put_param(&w, "rip", r->remote_ip);
	if (r->secured)
		put(&w, "\tsecured");
	put(&w, "\tresp=");

	/* RFC 4616: authzid (empty) NUL authcid NUL passwd */
	msg[0] = '\0';
	memcpy(msg + 1, r->user, r->user_len);
	msg[1 + r->user_len] = '\0';
	memcpy(msg + 2 + r->user_len, r->password, r->password_len);
	mlen = 2 + r->user_len + r->password_len;
	n = w.bad ? 0 : sasl_b64_encode(msg, mlen, w.p + w.len, w.cap - w.len);
	explicit_bzero(msg, sizeof msg);
	if (n == 0)
		w.bad = true;
	else
		w.len += n;
	put(&w, "\n");
	if (w.bad) {
		explicit_bzero(out, cap);
		return -1;
	}
	return (ssize_t)w.len;
}
