/* test_deliver_maildir.c - no address can name a folder outside its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/maildir.h"

static void expect(const char *tmpl, const char *local, const char *domain, const char *want)
{
	char out[1024];

	assert_int_equal(maildir_path(tmpl, local, domain, out, sizeof out), 0);
	assert_string_equal(out, want);
}

static void test_plain(void **state)
{
	(void)state;
	expect("/m/%d/%u", "alice", "example.com", "/m/example.com/alice");
	expect("/m/%d/%u", "Alice.Smith+tag", "Example.COM", "/m/example.com/alice.smith+tag");
	expect("/m/all", "alice", "example.com", "/m/all");
	expect("/m/100%%/%u", "bob", "x", "/m/100%/bob");
}

static void test_traversal_escaped(void **state)
{
	(void)state;
	expect("/m/%d/%u", "..", "x", "/m/x/%2E.");
	expect("/m/%d/%u", "../../etc", "x", "/m/x/%2E.%2F..%2Fetc");
	expect("/m/%d/%u", ".hidden", "x", "/m/x/%2Ehidden");
	expect("/m/%d/%u", "a/b", "x", "/m/x/a%2Fb");
	expect("/m/%d/%u", "a b\"c", "x", "/m/x/a%20b%22c");
	expect("/m/%d/%u", "x", "..", "/m/%2E./x");
}

static void test_utf8_and_control_escaped(void **state)
{
	(void)state;
	expect("/m/%u", "\xc3\xa9t\xc3\xa9", "x", "/m/%C3%A9t%C3%A9");
	expect("/m/%u", "a\tb", "x", "/m/a%09b");
}

static void test_too_long(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(maildir_path("/m/%d/%u", "averyveryverylongname", "x", out, sizeof out), -1);
}

/* Quarantine (smtp/msgauth.h): one Maildir++ level, never a way out. */
static void test_subfolder(void **state)
{
	char path[64] = "/m/example.org/alice";
	char tiny[24] = "/m/example.org/alice";

	(void)state;
	assert_int_equal(maildir_subfolder(path, sizeof path, (struct slice){ NULL, 0 }), 0);
	assert_string_equal(path, "/m/example.org/alice");
	assert_int_equal(maildir_subfolder(path, sizeof path, SLICE_LIT("Junk")), 0);
	assert_string_equal(path, "/m/example.org/alice/.Junk");
	assert_int_equal(maildir_subfolder(path, sizeof path, SLICE_LIT("../x")), -1);
	assert_int_equal(maildir_subfolder(path, sizeof path, SLICE_LIT("a/b")), -1);
	assert_int_equal(maildir_subfolder(path, sizeof path, SLICE_LIT("a.b")), -1);
	assert_int_equal(maildir_subfolder(tiny, sizeof tiny, SLICE_LIT("Junk")), -1);	/* does not fit */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subfolder),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_traversal_escaped),
		cmocka_unit_test(test_utf8_and_control_escaped),
		cmocka_unit_test(test_too_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
