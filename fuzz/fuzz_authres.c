/*
 * fuzz_authres.c - libFuzzer target for mailauth/authres: the first octet picks
 *
 *	0  the reader on the rest as a field body: authres_parse,
 *	   authres_servid and authres_field_is_ours must agree, what is read
 *	   must keep the limits and classes of authres.h, and writing what was
 *	   read (authres_begin/add/end) then reading it again gives it back,
 *	   with the writer's '?' for octets outside printable ASCII;
 *	   authres_field_is_named on the field made of the body
 *	1  the writer on the rest split at NUL octets into its arguments:
 *	   lines CR LF, under 998 octets, printable; when the names are
 *	   keywords, the reader gets back every argument (cut, '?'-ed)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailauth/authres.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OURS "mx.example.net"

static bool is_keyword(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > AUTHRES_KEYWORD_MAX || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* "ptype.property", both keywords */
static bool is_prop_name(const char *s)
{
	char t[2 * AUTHRES_KEYWORD_MAX + 2];
	const char *dot = strchr(s, '.');

	if (dot == NULL || strlen(s) >= sizeof t)
		return false;
	memcpy(t, s, (size_t)(dot - s));
	t[dot - s] = '\0';
	return is_keyword(t) && is_keyword(dot + 1);
}

/* What the writer makes of an argument: '?' for non-printables, cut to max. */
static void writer_view(const char *s, size_t max, char *out)
{
	size_t n = 0;

	for (; s[n] != '\0' && n < max; n++)
		out[n] = ((unsigned char)s[n] >= 0x20 && (unsigned char)s[n] < 0x7f) ? s[n] : '?';
	out[n] = '\0';
}

static void no_crlf(const char *s)
{
	CHECK(strchr(s, '\r') == NULL && strchr(s, '\n') == NULL);
}

/* Lines end in CR LF, each under 998 octets; only printable ASCII and HTAB. */
static void check_written(const struct buf *b)
{
	size_t start = 0;

	CHECK(b->len >= 2 && b->data[b->len - 2] == '\r' && b->data[b->len - 1] == '\n');
	for (size_t i = 0; i < b->len; i++) {
		uint8_t c = b->data[i];

		if (c == '\r') {
			CHECK(i + 1 < b->len && b->data[i + 1] == '\n');
			CHECK(i - start < 998);	/* RFC 5322 2.1.1 */
			start = i + 2;
			CHECK(start == b->len || b->data[start] == '\t');
			i++;
			continue;
		}
		CHECK((c >= 0x20 && c < 0x7f) || c == '\t');
	}
}

static const char *body_of(const struct buf *b)
{
	return memchr(b->data, ':', b->len);
}

static void check_parsed(const struct authres_parsed *p)
{
	size_t props = 0;

	CHECK(strlen(p->servid) <= AUTHRES_ID_MAX);
	no_crlf(p->servid);
	CHECK(p->nresinfo <= AUTHRES_RESINFO_MAX && p->nprops <= AUTHRES_PROPS_MAX);
	CHECK(!p->none || p->nresinfo == 0);
	for (size_t i = 0; i < p->nresinfo; i++) {
		const struct authres_resinfo *r = &p->resinfo[i];

		CHECK(is_keyword(r->method) && is_keyword(r->result));
		CHECK(r->prop0 == props);
		CHECK(r->has_reason || r->reason[0] == '\0');
		CHECK(strlen(r->reason) <= AUTHRES_VALUE_MAX);
		no_crlf(r->reason);
		props += r->nprops;
	}
	CHECK(props == p->nprops);
	for (size_t k = 0; k < p->nprops; k++) {
		CHECK(is_prop_name(p->props[k].name));
		CHECK(strlen(p->props[k].value) <= AUTHRES_VALUE_MAX);
		no_crlf(p->props[k].value);
	}
}

/* Write p with the writer, read it back: the same, as the writer sees it. */
static void rewrite(const struct authres_parsed *p, struct authres_parsed *q)
{
	static char t[AUTHRES_VALUE_MAX + 1];
	char err[128];
	struct buf b;

	buf_init(&b, 1 << 20);
	CHECK(authres_begin(&b, p->servid) == 0);
	for (size_t i = 0; i < p->nresinfo; i++) {
		const struct authres_resinfo *r = &p->resinfo[i];
		struct authres_prop props[AUTHRES_PROPS_MAX];

		for (size_t k = 0; k < r->nprops; k++) {
			props[k].name = p->props[r->prop0 + k].name;
			props[k].value = p->props[r->prop0 + k].value;
		}
		CHECK(authres_add(&b, r->method, r->result, r->has_reason ? r->reason : NULL,
				  i % 2 ? "a (comment)" : NULL, props, r->nprops) == 0);
	}
	CHECK(authres_end(&b) == 0);
	check_written(&b);
	CHECK(authres_parse((const uint8_t *)body_of(&b) + 1,
			    b.len - (size_t)(body_of(&b) + 1 - (const char *)b.data), q, err,
			    sizeof err) == 0);
	writer_view(p->servid, AUTHRES_ID_MAX, t);
	CHECK(strcmp(q->servid, t) == 0);
	CHECK(q->none == (p->nresinfo == 0));
	CHECK(q->nresinfo == p->nresinfo && q->nprops == p->nprops);
	for (size_t i = 0; i < p->nresinfo; i++) {
		const struct authres_resinfo *r = &p->resinfo[i], *s = &q->resinfo[i];

		CHECK(strcmp(r->method, s->method) == 0 && strcmp(r->result, s->result) == 0);
		CHECK(r->has_reason == s->has_reason);
		writer_view(r->reason, AUTHRES_ARG_MAX, t);
		CHECK(strcmp(s->reason, t) == 0);
		CHECK(r->nprops == s->nprops && s->nignored == 0);
	}
	for (size_t k = 0; k < p->nprops; k++) {
		CHECK(strcmp(p->props[k].name, q->props[k].name) == 0);
		writer_view(p->props[k].value, AUTHRES_ARG_MAX, t);
		CHECK(strcmp(q->props[k].value, t) == 0);
	}
	if (q->servid[0] != '\0')
		CHECK(authres_field_is_ours(b.data, b.len, q->servid));
	buf_free(&b);
}

static void fuzz_reader(const uint8_t *p, size_t len)
{
	static struct authres_parsed parsed, again;
	char err[128], id[AUTHRES_ID_MAX + 1];
	int rc = authres_parse(p, len, &parsed, err, sizeof err);
	int rs = authres_servid(p, len, id, sizeof id);
	struct buf f;
	bool ours;

	CHECK(rc == 0 || rc == -1);
	CHECK(rs == 0 || rs == -1);
	if (rs != 0)
		CHECK(id[0] == '\0');
	/* a field of this body */
	buf_init(&f, len + 64);
	CHECK(buf_append(&f, "authentication-RESULTS :", 24) == 0);
	CHECK(buf_append(&f, p, len) == 0);
	ours = authres_field_is_ours(f.data, f.len, OURS);
	CHECK(authres_field_is_named(f.data, f.len) && !authres_field_is_named(f.data, 23));
	if (rs == 0) {
		/* authres.h: the same id ignoring case and one root dot */
		size_t n = strlen(id);

		n -= n > 1 && id[n - 1] == '.';
		CHECK(ours == (n == strlen(OURS) && strncasecmp(id, OURS, n) == 0));
	} else {
		bool found = false;

		for (size_t i = 0; i + strlen(OURS) <= len && !found; i++)
			found = strncasecmp((const char *)p + i, OURS, strlen(OURS)) == 0;
		CHECK(ours == found);
	}
	/* the same, cut anywhere: never outside the input */
	CHECK(!authres_field_is_ours(f.data, 10, OURS));
	buf_free(&f);
	if (rc != 0) {
		CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
		for (size_t i = 0; err[i] != '\0'; i++)
			CHECK(err[i] >= 0x20 && err[i] < 0x7f);
		return;
	}
	CHECK(rs == 0 && strcmp(id, parsed.servid) == 0);
	check_parsed(&parsed);
	rewrite(&parsed, &again);
}

/* The rest split at NULs: servid, then per resinfo method, result, reason, comment, name, value. */
static void fuzz_writer(const uint8_t *p, size_t len)
{
	static struct authres_parsed q;
	static char t[AUTHRES_ARG_MAX + 1];
	char *copy = malloc(len + 1), *args[64];
	size_t nargs = 0;
	struct authres_prop props[AUTHRES_PROPS_MAX];
	char err[128];
	struct buf b;
	size_t nres = 0;
	bool keywords = true;

	CHECK(copy != NULL);
	memcpy(copy, p, len);
	copy[len] = '\0';
	args[nargs++] = copy;
	for (size_t i = 0; i < len && nargs < 64; i++)
		if (copy[i] == '\0')
			args[nargs++] = copy + i + 1;
	buf_init(&b, 1 << 20);
	CHECK(authres_begin(&b, args[0]) == 0);
	for (size_t a = 1; a + 5 < nargs && nres < AUTHRES_RESINFO_MAX; a += 6, nres++) {
		props[0].name = args[a + 4];
		props[0].value = args[a + 5];
		props[1].name = "header.b";	/* the same value once more, as another property */
		props[1].value = args[a + 5];
		CHECK(authres_add(&b, args[a], args[a + 1], args[a + 2][0] ? args[a + 2] : NULL,
				  args[a + 3][0] ? args[a + 3] : NULL, props, 2) == 0);
		keywords = keywords && is_keyword(args[a]) && is_keyword(args[a + 1]) &&
			   is_prop_name(args[a + 4]);
	}
	CHECK(authres_end(&b) == 0);
	check_written(&b);
	if (keywords) {
		const char *body = body_of(&b) + 1;

		CHECK(authres_parse((const uint8_t *)body,
				    b.len - (size_t)(body - (const char *)b.data), &q, err,
				    sizeof err) == 0);
		writer_view(args[0], AUTHRES_ID_MAX, t);
		CHECK(strcmp(q.servid, t) == 0);
		CHECK(q.nresinfo == nres && q.none == (nres == 0));
		for (size_t i = 0, a = 1; i < nres; i++, a += 6) {
			CHECK(strcmp(q.resinfo[i].method, args[a]) == 0);
			CHECK(q.resinfo[i].has_reason == (args[a + 2][0] != '\0'));
			writer_view(args[a + 2], AUTHRES_ARG_MAX, t);
			CHECK(strcmp(q.resinfo[i].reason, t) == 0);
			CHECK(q.resinfo[i].nprops == 2);
			writer_view(args[a + 5], AUTHRES_ARG_MAX, t);
			CHECK(strcmp(q.props[2 * i].value, t) == 0);
			CHECK(strcmp(q.props[2 * i + 1].value, t) == 0);
		}
	}
	buf_free(&b);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_reader(data + 1, size - 1);
	else
		fuzz_writer(data + 1, size - 1);
	return 0;
}
