/*
 * sasl.h - the bytes of SMTP AUTH (RFC 4954): base64 and the PLAIN message.
 *
 * SYNOPSIS
 *	n = sasl_b64_decode(line, out, sizeof out);	 -1: not valid base64
 *	sasl_b64_encode(p, n, text, sizeof text);
 *	sasl_plain_parse(msg, n, &authzid, &authcid, &passwd);
 *
 * DESCRIPTION
 *	sasl_b64_decode: RFC 4648 section 4 alphabet, strict: the length is a
 *	multiple of 4, '=' only as one or two final padding characters, no
 *	whitespace, no other characters, and the unused bits of the last
 *	quantum are zero. "=" alone is the empty response (RFC 4954 4).
 *	Returns the decoded length, or -1 (also when it would not fit in cap).
 *
 *	sasl_b64_encode: writes the encoding NUL-terminated; returns its
 *	length, or 0 when cap is too small (cap must hold 4*ceil(n/3)+1).
 *
 *	sasl_plain_parse: RFC 4616 2: [authzid] NUL authcid NUL passwd, exactly
 *	two NULs; authcid and passwd non-empty; each part at most 255 octets;
 *	returns 0 with slices into msg, or -1.
 *
 *	No allocation, no I/O; inputs need no NUL termination.
 */
#ifndef TERN_SASL_H
#define TERN_SASL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/buf.h"

#define SASL_PART_MAX 255

ssize_t sasl_b64_decode(struct slice in, uint8_t *out, size_t cap);
size_t sasl_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);
int sasl_plain_parse(const uint8_t *msg, size_t n, struct slice *authzid,
		     struct slice *authcid, struct slice *passwd);

#endif
