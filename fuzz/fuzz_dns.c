/*
 * fuzz_dns.c - libFuzzer target for dns/dns_parse.c: the input is one DNS
 * response, given to the MX, TXT, A, AAAA and PTR parsers in turn.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(enum dns_status st, const char *error, size_t n, int rc)
{
	CHECK(rc == 0 || rc == -1);
	/* a parser never says badname */
	CHECK(st == DNS_OK || st == DNS_NXDOMAIN || st == DNS_NODATA || st == DNS_TEMPFAIL);
	CHECK(memchr(error, '\0', 128) != NULL);
	if (rc == -1)
		CHECK(st == DNS_TEMPFAIL && n == 0 && error[0] != '\0');
	if (st != DNS_OK)
		CHECK(n == 0 && error[0] != '\0');
	CHECK(n <= DNS_MAX_RECORDS);
}

/* A TTL is 31 bits (RFC 2181 8); only an answer that may be cached has one. */
static void check_ttl(enum dns_status st, uint32_t ttl)
{
	CHECK(ttl <= 0x7FFFFFFFu);
	if (st != DNS_OK && st != DNS_NXDOMAIN && st != DNS_NODATA)
		CHECK(ttl == 0);
}

static void check_mx(const uint8_t *data, size_t size)
{
	struct dns_mx_result r;
	int rc = dns_parse_mx(data, size, &r);

	check_error(r.status, r.error, r.n, rc);
	check_ttl(r.status, r.ttl);
	if (r.null_mx)
		CHECK(r.status == DNS_OK && r.n == 0);
	if (r.status == DNS_OK)
		CHECK(r.n > 0 || r.null_mx);
	for (size_t i = 0; i < r.n; i++) {
		size_t len = strnlen(r.mx[i].host, sizeof r.mx[i].host);

		CHECK(len > 0 && len < sizeof r.mx[i].host);
		CHECK(dns_hostname_valid(r.mx[i].host));
		CHECK(r.mx[i].host[len - 1] != '.');
		for (size_t k = 0; k < len; k++)
			CHECK(r.mx[i].host[k] < 'A' || r.mx[i].host[k] > 'Z');
		if (i > 0)
			CHECK(r.mx[i - 1].pref <= r.mx[i].pref);
		for (size_t k = 0; k < i; k++)
			CHECK(strcmp(r.mx[k].host, r.mx[i].host) != 0);
	}
	dns_mx_result_free(&r);
	CHECK(r.mx == NULL && r.n == 0);
}

static void check_txt(const uint8_t *data, size_t size)
{
	struct dns_txt_result r;
	int rc = dns_parse_txt(data, size, &r);

	check_error(r.status, r.error, r.n, rc);
	check_ttl(r.status, r.ttl);
	for (size_t i = 0; i < r.n; i++) {
		CHECK(r.txt[i].len < size);
		CHECK(r.txt[i].text[r.txt[i].len] == '\0');
	}
	dns_txt_result_free(&r);
}

static void check_addr(const uint8_t *data, size_t size, int family)
{
	struct dns_addr_result r;
	int rc = dns_parse_addr(data, size, family, &r);

	check_error(r.status, r.error, r.n, rc);
	check_ttl(r.status, r.ttl);
	for (size_t i = 0; i < r.n; i++)
		CHECK(r.addr[i].ss_family == family);
	dns_addr_result_free(&r);
}

static void check_ptr(const uint8_t *data, size_t size)
{
	struct dns_ptr_result r;
	int rc = dns_parse_ptr(data, size, &r);

	check_error(r.status, r.error, r.n, rc);
	check_ttl(r.status, r.ttl);
	if (r.n > 0)
		CHECK(r.status == DNS_OK && r.names != NULL);
	for (size_t i = 0; i < r.n; i++) {
		size_t len = strlen(r.names[i]);

		/* what dns_addr_loose would take, so SPF can look each one up */
		CHECK(len > 0 && len <= DNS_NAME_MAX);
		CHECK(dns_name_loose_valid(r.names[i]));
		CHECK(r.names[i][len - 1] != '.');
		for (size_t k = 0; k < len; k++)
			CHECK(r.names[i][k] < 'A' || r.names[i][k] > 'Z');
		for (size_t k = 0; k < i; k++)
			CHECK(strcmp(r.names[k], r.names[i]) != 0);
	}
	dns_ptr_result_free(&r);
	CHECK(r.names == NULL && r.n == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_mx(data, size);
	check_txt(data, size);
	check_addr(data, size, AF_INET);
	check_addr(data, size, AF_INET6);
	check_ptr(data, size);
	return 0;
}
