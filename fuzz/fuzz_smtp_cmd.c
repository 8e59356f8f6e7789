/* fuzz_smtp_cmd.c - libFuzzer target for proto/smtp_cmd.c: command line, MAIL/RCPT/BDAT, xtext. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_cmd.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(struct slice s, const uint8_t *p, size_t len)
{
	return s.len == 0 || (s.p >= p && s.len <= len && s.p - p <= (ptrdiff_t)(len - s.len));
}

static void check_reply(const struct smtp_reply *rep)
{
	CHECK(rep != NULL);
	CHECK(rep->code == 501 || rep->code == 553 || rep->code == 555);
	CHECK(rep->enh != NULL && rep->enh[0] == '5' && rep->enh[1] == '.');
	CHECK(rep->text != NULL && rep->text[0] != '\0');
	for (const char *t = rep->text; *t; t++)
		CHECK(*t >= 0x20 && *t < 0x7f); /* a reply line never holds CR/LF */
}

static void check_mailbox(const struct mailbox *mb)
{
	CHECK(mb->local_len <= ADDR_LOCAL_MAX && mb->local[mb->local_len] == '\0');
	CHECK(mb->domain_len <= ADDR_DOMAIN_MAX && mb->domain[mb->domain_len] == '\0');
	CHECK(strlen(mb->local) == mb->local_len && strlen(mb->domain) == mb->domain_len);
	if (!mb->is_null && !mb->is_postmaster)
		CHECK(mb->local_len > 0 && mb->domain_len > 0);
}

static void check_field(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	CHECK(n <= max);
	CHECK(smtp_xtext_valid((struct slice){ (const uint8_t *)s, n }) ||
	      strchr(s, ';') != NULL); /* ORCPT: addr-type ";" xtext */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_cmd cmd;
	struct mailbox mb;
	struct mail_params mp;
	struct rcpt_params rp;
	const struct smtp_reply *rep;
	uint64_t bsize;
	bool last;
	unsigned flags;
	int rc;

	if (size < 1)
		return 0;
	/* First byte: the SMTP_PARAM_* flags; the rest: one command line. */
	flags = data[0] & (SMTP_PARAM_BINARYMIME | SMTP_PARAM_SMTPUTF8 | SMTP_PARAM_DSN);
	data++;
	size--;

	smtp_cmd_parse(data, size, &cmd);
	CHECK(cmd.verb >= SMTP_UNKNOWN && cmd.verb <= SMTP_HTTP);
	CHECK(inside(cmd.verb_text, data, size));
	CHECK(inside(cmd.arg, data, size));
	CHECK(cmd.verb_text.len <= size);
	CHECK(memchr(cmd.verb_text.p, ' ', cmd.verb_text.len) == NULL || cmd.verb_text.len == 0);
	if (cmd.arg.len > 0) {
		uint8_t end = cmd.arg.p[cmd.arg.len - 1];
		CHECK(end != ' ' && end != '\t');
		CHECK(cmd.arg.p == cmd.verb_text.p + cmd.verb_text.len + 1);
	}
	if (cmd.verb != SMTP_UNKNOWN && cmd.verb != SMTP_HTTP)
		CHECK(cmd.verb_text.len >= 4 && cmd.verb_text.len <= 8);

	/* Every argument parser sees every line, whatever its verb. */
	rep = NULL;
	rc = smtp_parse_mail(cmd.arg, flags, &mb, &mp, &rep);
	CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		CHECK(rep == NULL);
		check_mailbox(&mb);
		CHECK(!mb.is_postmaster);
		if (mb.utf8)
			CHECK(mp.smtputf8);
		if (mp.smtputf8)
			CHECK(flags & SMTP_PARAM_SMTPUTF8);
		if (mp.body == BODY_BINARYMIME)
			CHECK(flags & SMTP_PARAM_BINARYMIME);
		if (mp.ret != DSN_RET_UNSPECIFIED || mp.envid[0] != '\0')
			CHECK(flags & SMTP_PARAM_DSN);
		check_field(mp.envid, SMTP_ENVID_MAX);
		check_field(mp.auth, SMTP_AUTHPARAM_MAX);
		if (mp.has_auth)
			CHECK(mp.auth[0] != '\0');
		if (mp.auth[0] != '\0' && strcmp(mp.auth, "<>") != 0) {
			char dec[SMTP_AUTHPARAM_MAX + 1];
			ssize_t dn = smtp_xtext_decode((struct slice){ (const uint8_t *)mp.auth,
								       strlen(mp.auth) }, dec, sizeof dec);
			CHECK(dn >= -1 && dn <= (ssize_t)strlen(mp.auth));
			if (dn >= 0)
				CHECK(strlen(dec) == (size_t)dn);
		}
	} else {
		check_reply(rep);
	}

	rep = NULL;
	rc = smtp_parse_rcpt(cmd.arg, flags, &mb, &rp, &rep);
	CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		CHECK(rep == NULL);
		check_mailbox(&mb);
		CHECK(!mb.is_null);
		if (mb.utf8)
			CHECK(flags & SMTP_PARAM_SMTPUTF8);
		if (rp.notify != 0 || rp.orcpt[0] != '\0')
			CHECK(flags & SMTP_PARAM_DSN);
		CHECK((rp.notify & ~0xfu) == 0);
		if (rp.notify & DSN_NOTIFY_NEVER)
			CHECK(rp.notify == DSN_NOTIFY_NEVER);
		check_field(rp.orcpt, SMTP_ORCPT_MAX);
	} else {
		check_reply(rep);
	}

	rep = NULL;
	rc = smtp_parse_bdat(cmd.arg, &bsize, &last, &rep);
	CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		CHECK(rep == NULL);
		CHECK(cmd.arg.len > 0 && cmd.arg.p[0] >= '0' && cmd.arg.p[0] <= '9');
	} else {
		check_reply(rep);
		CHECK(rep->code == 501);
	}

	(void)smtp_xtext_valid((struct slice){ data, size });
	return 0;
}
