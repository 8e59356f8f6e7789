/* test_lib_buf.c - cmocka tests of the bounded byte buffer and slices (src/lib/buf.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"

static void buf_eq(const struct buf *b, const char *p, size_t n)
{
	assert_int_equal(b->len, n);
	assert_true(b->len <= b->cap);
	assert_true(b->cap <= b->max);
	if (n > 0)
		assert_memory_equal(b->data, p, n);
}

static void test_init_empty(void **state)
{
	struct buf b;
	struct slice s;

	(void)state;
	buf_init(&b, 100);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.max, 100);
	s = buf_slice(&b);
	assert_int_equal(s.len, 0);
	assert_int_equal(buf_append(&b, NULL, 0), 0);	/* no-op */
	assert_null(b.data);
	buf_free(&b);
	buf_free(&b);	/* idempotent */
}

static void test_append_grows(void **state)
{
	struct buf b;
	char chunk[100];

	(void)state;
	memset(chunk, 'q', sizeof chunk);
	buf_init(&b, 1 << 20);
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf_append(&b, chunk, sizeof chunk), 0);
	assert_int_equal(b.len, 10000);
	assert_true(b.cap >= 10000 && b.cap <= b.max);
	for (size_t i = 0; i < b.len; i++)
		assert_int_equal(b.data[i], 'q');
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

/* The hard cap: never grows past max; a refused append changes nothing. */
static void test_max_enforced(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 10);
	assert_int_equal(buf_append(&b, "0123456", 7), 0);
	assert_int_equal(buf_append(&b, "789A", 4), -1);
	buf_eq(&b, "0123456", 7);
	assert_int_equal(buf_append(&b, "789", 3), 0);	/* exactly max */
	buf_eq(&b, "0123456789", 10);
	assert_int_equal(b.cap, 10);	/* capped, not the 256 start */
	assert_int_equal(buf_append(&b, "x", 1), -1);
	assert_int_equal(buf_reserve(&b, 1), -1);
	assert_int_equal(buf_reserve(&b, 0), 0);
	buf_eq(&b, "0123456789", 10);
	buf_free(&b);
}

static void test_max_zero(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, "x", 1), -1);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_int_equal(buf_reserve(&b, 0), 0);
	assert_int_equal(buf_printf(&b, "%s", ""), 0);	/* nothing to add */
	assert_int_equal(buf_printf(&b, "x"), -1);
	buf_eq(&b, "", 0);
	buf_free(&b);
}

/* Checked arithmetic: len + extra must not wrap around to a small size. */
static void test_reserve_overflow(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, SIZE_MAX);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	assert_int_equal(buf_reserve(&b, SIZE_MAX), -1);
	assert_int_equal(buf_reserve(&b, SIZE_MAX - 1), -1);
	assert_int_equal(buf_reserve(&b, SIZE_MAX - 2), -1);
	assert_int_equal(buf_reserve(&b, SIZE_MAX - 3), -1);	/* need == max, cannot double */
	buf_eq(&b, "abc", 3);
	assert_int_equal(buf_append(&b, "d", 1), 0);
	buf_eq(&b, "abcd", 4);
	buf_free(&b);
}

static void test_size_helpers(void **state)
{
	size_t r;

	(void)state;
	assert_true(size_add(1, 2, &r) && r == 3);
	assert_false(size_add(SIZE_MAX, 1, &r));
	assert_true(size_add(SIZE_MAX - 1, 1, &r) && r == SIZE_MAX);
	assert_true(size_mul(6, 7, &r) && r == 42);
	assert_false(size_mul(SIZE_MAX / 2 + 1, 2, &r));
	assert_true(size_mul(0, SIZE_MAX, &r) && r == 0);
}

static void test_consume(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(buf_append(&b, "HELO a\r\nQUIT\r\n", 14), 0);
	buf_consume(&b, 0);
	buf_eq(&b, "HELO a\r\nQUIT\r\n", 14);
	buf_consume(&b, 8);
	buf_eq(&b, "QUIT\r\n", 6);
	buf_consume(&b, 6);	/* exactly all */
	buf_eq(&b, "", 0);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	buf_consume(&b, 1000);	/* more than held */
	buf_eq(&b, "", 0);
	buf_consume(&b, 1);	/* on empty */
	buf_eq(&b, "", 0);
	/* Room freed by consume can be used again up to max. */
	for (int i = 0; i < 10; i++) {
		char x[64];

		memset(x, 'a' + i, sizeof x);
		assert_int_equal(buf_append(&b, x, sizeof x), 0);
		assert_int_equal(buf_append(&b, "!", 1), -1);
		buf_consume(&b, 63);
		buf_eq(&b, x, 1);
		buf_consume(&b, 1);
	}
	buf_free(&b);
}

static void test_reset_shrink(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(buf_append(&b, "hello", 5), 0);
	buf_reset(&b);
	buf_eq(&b, "", 0);
	assert_non_null(b.data);	/* memory kept */
	buf_shrink(&b, 1024);	/* cap 256 <= keep: kept */
	assert_non_null(b.data);
	assert_int_equal(buf_append(&b, "x", 1), 0);
	buf_shrink(&b, 0);	/* not empty: kept */
	assert_non_null(b.data);
	buf_reset(&b);
	buf_shrink(&b, 0);	/* empty and larger than keep: freed */
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(buf_append(&b, "again", 5), 0);
	buf_eq(&b, "again", 5);
	buf_free(&b);
}

static void test_printf(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1024);
	assert_int_equal(buf_printf(&b, "%d %s", 250, "OK"), 0);
	buf_eq(&b, "250 OK", 6);	/* the NUL is not counted */
	assert_int_equal(buf_printf(&b, "\r\n%03u-%.*s", 5u, 2, "abc"), 0);
	buf_eq(&b, "250 OK\r\n005-ab", 14);
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	buf_eq(&b, "250 OK\r\n005-ab", 14);
	buf_free(&b);
}

static void test_printf_grows(void **state)
{
	struct buf b;
	char big[2000];

	(void)state;
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	buf_init(&b, 1 << 16);
	assert_int_equal(buf_append(&b, "<", 1), 0);
	assert_int_equal(buf_printf(&b, "%s>", big), 0);
	assert_int_equal(b.len, 2001);
	assert_int_equal(b.data[0], '<');
	assert_int_equal(b.data[1999], 'z');
	assert_int_equal(b.data[2000], '>');
	buf_free(&b);
}

static void test_printf_max(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "ab", 2), 0);
	/* Would pass max: refused, buffer unchanged. */
	assert_int_equal(buf_printf(&b, "%s", "1234567"), -1);
	buf_eq(&b, "ab", 2);
	/*
	 * Exactly fills max: the text fits, only vsnprintf's NUL would not;
	 * the NUL is not part of the buffer, so this must succeed.
	 */
	assert_int_equal(buf_printf(&b, "%d", 123456), 0);
	buf_eq(&b, "ab123456", 8);
	assert_int_equal(buf_printf(&b, "%c", 'x'), -1);
	buf_eq(&b, "ab123456", 8);
	buf_free(&b);

	/* The same at a cap that needs the buffer to grow first. */
	buf_init(&b, 300);
	assert_int_equal(buf_append(&b, "x", 1), 0);
	assert_int_equal(buf_printf(&b, "%0299d", 7), 0);
	assert_int_equal(b.len, 300);
	assert_int_equal(b.data[299], '7');
	buf_free(&b);
}

static int vprintf_wrap(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int vprintf_wrap(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

static void test_vprintf(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 32);
	assert_int_equal(vprintf_wrap(&b, "%s=%lu", "size", 10240ul), 0);
	buf_eq(&b, "size=10240", 10);
	buf_free(&b);
}

static void test_binary_safe(void **state)
{
	struct buf b;
	static const uint8_t bin[] = { 0, 1, 0, 0xff, '\r', '\n', 0 };
	struct slice s;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(buf_append(&b, bin, sizeof bin), 0);
	s = buf_slice(&b);
	assert_ptr_equal(s.p, b.data);
	assert_int_equal(s.len, sizeof bin);
	assert_memory_equal(s.p, bin, sizeof bin);
	assert_int_equal(buf_append_slice(&b, SLICE_LIT("\0z")), 0);
	assert_int_equal(b.len, sizeof bin + 2);
	assert_int_equal(b.data[sizeof bin], 0);
	assert_int_equal(b.data[sizeof bin + 1], 'z');
	buf_free(&b);
}

static void test_slice_lit_from_str(void **state)
{
	struct slice a = SLICE_LIT("EHLO"), b = slice_from_str("EHLO"),
		     e = slice_from_str("");

	(void)state;
	assert_int_equal(a.len, 4);
	assert_int_equal(b.len, 4);
	assert_memory_equal(a.p, b.p, 4);
	assert_int_equal(e.len, 0);
	assert_int_equal(SLICE_LIT("a\0b").len, 3);
}

static void test_slice_eq_nocase(void **state)
{
	(void)state;
	assert_true(slice_eq_nocase(SLICE_LIT("QUIT"), "quit"));
	assert_true(slice_eq_nocase(SLICE_LIT("qUiT"), "QuIt"));
	assert_false(slice_eq_nocase(SLICE_LIT("QUITS"), "quit"));
	assert_false(slice_eq_nocase(SLICE_LIT("QUI"), "quit"));
	assert_true(slice_eq_nocase(SLICE_LIT(""), ""));
	assert_false(slice_eq_nocase(SLICE_LIT("QU\0T"), "qu"));
	/* Only ASCII folds; 8-bit octets compare as themselves. */
	assert_false(slice_eq_nocase(SLICE_LIT("\xc9"), "\xe9"));
	assert_true(slice_eq_nocase(SLICE_LIT("\xc9"), "\xc9"));
}

static void test_slice_startswith(void **state)
{
	(void)state;
	assert_true(slice_startswith_nocase(SLICE_LIT("MAIL FROM:<a@b>"),
					    "mail from:"));
	assert_true(slice_startswith_nocase(SLICE_LIT("x"), ""));
	assert_true(slice_startswith_nocase(SLICE_LIT(""), ""));
	assert_false(slice_startswith_nocase(SLICE_LIT("MAI"), "mail"));
	assert_false(slice_startswith_nocase(SLICE_LIT("RCPT TO:"), "mail"));
	/* Bounded by the slice, not by a NUL after it. */
	assert_false(slice_startswith_nocase(
		(struct slice){ (const uint8_t *)"HELLO", 2 }, "HEL"));
}

static void test_slice_trim(void **state)
{
	struct slice s;

	(void)state;
	s = slice_trim(SLICE_LIT(" \t a b \t "));
	assert_int_equal(s.len, 3);
	assert_memory_equal(s.p, "a b", 3);
	s = slice_trim(SLICE_LIT("   "));
	assert_int_equal(s.len, 0);
	s = slice_trim(SLICE_LIT(""));
	assert_int_equal(s.len, 0);
	s = slice_trim(SLICE_LIT("x"));
	assert_int_equal(s.len, 1);
	/* Only SP and HTAB: CR LF are not whitespace here. */
	s = slice_trim(SLICE_LIT(" x\r\n"));
	assert_int_equal(s.len, 3);
}

static void test_slice_to_cstr(void **state)
{
	char out[8];

	(void)state;
	memset(out, 'Z', sizeof out);
	assert_int_equal(slice_to_cstr(SLICE_LIT("abc"), out, sizeof out), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(slice_to_cstr(SLICE_LIT("1234567"), out, sizeof out),
			 0);	/* 7 + NUL fits 8 */
	assert_string_equal(out, "1234567");
	memset(out, 'Z', sizeof out);
	assert_int_equal(slice_to_cstr(SLICE_LIT("12345678"), out, sizeof out),
			 -1);
	assert_int_equal(out[0], 'Z');	/* untouched on failure */
	assert_int_equal(slice_to_cstr(SLICE_LIT("a\0b"), out, sizeof out), -1);
	assert_int_equal(slice_to_cstr(SLICE_LIT(""), out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(slice_to_cstr(SLICE_LIT(""), out, 0), -1);
	assert_int_equal(slice_to_cstr((struct slice){ NULL, 0 }, out, 1), 0);
	assert_string_equal(out, "");
}

static void test_str_copy_printable(void **state)
{
	char out[8];

	(void)state;
	str_copy_printable(out, sizeof out, "a\r\nb\x7f\xc3\xa9", 7);
	assert_string_equal(out, "a??b???");
	str_copy_printable(out, sizeof out, "0123456789", 10);	/* cut to fit */
	assert_string_equal(out, "0123456");
	str_copy_printable(out, 1, "abc", 3);
	assert_string_equal(out, "");
	str_copy_printable(out, sizeof out, "x\0y", 3);	/* a NUL is content too */
	assert_string_equal(out, "x?y");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_empty),
		cmocka_unit_test(test_append_grows),
		cmocka_unit_test(test_max_enforced),
		cmocka_unit_test(test_max_zero),
		cmocka_unit_test(test_reserve_overflow),
		cmocka_unit_test(test_size_helpers),
		cmocka_unit_test(test_consume),
		cmocka_unit_test(test_reset_shrink),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_printf_grows),
		cmocka_unit_test(test_printf_max),
		cmocka_unit_test(test_vprintf),
		cmocka_unit_test(test_binary_safe),
		cmocka_unit_test(test_slice_lit_from_str),
		cmocka_unit_test(test_slice_eq_nocase),
		cmocka_unit_test(test_slice_startswith),
		cmocka_unit_test(test_slice_trim),
		cmocka_unit_test(test_slice_to_cstr),
		cmocka_unit_test(test_str_copy_printable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
