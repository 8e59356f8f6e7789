/* test_spool_qfile.c - the queue file format: round trip, and every way a file can be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spool/qfile.h"

static void build(struct buf *b, int with_end, uint64_t end_size)
{
	buf_init(b, 1 << 20);
	assert_int_equal(qfile_begin(b), 0);
	assert_int_equal(qfile_put(b, QR_ID, "ABC123", 6), 0);
	assert_int_equal(qfile_put(b, QR_TIME, "1795389008", 10), 0);
	assert_int_equal(qfile_put(b, QR_SENDER, "a@b.example", 11), 0);
	assert_int_equal(qfile_put_rcpt(b, "x@localhost", 11, "rfc822;x@localhost", 18, 6), 0);
	assert_int_equal(qfile_put_rcpt(b, "y@localhost", 11, "", 0, 0), 0);
	assert_int_equal(qfile_put(b, QR_SMTPUTF8, "", 0), 0);
	assert_int_equal(qfile_put(b, QR_MSG, "Subject: x\r\n\r\n", 14), 0);
	assert_int_equal(qfile_put(b, QR_MSG, "body\r\n", 6), 0);
	if (with_end)
		assert_int_equal(qfile_put_end(b, end_size), 0);
}

static int collect(void *arg, const uint8_t *p, size_t n)
{
	return buf_append(arg, p, n);
}

static void test_round_trip(void **state)
{
	struct buf b, msg;
	struct qenv env;

	(void)state;
	build(&b, 1, 20);
	assert_int_equal(qfile_parse(b.data, b.len, &env), 0);
	assert_int_equal(env.id.len, 6);
	assert_memory_equal(env.id.p, "ABC123", 6);
	assert_int_equal(env.arrival, 1795389008ULL);
	assert_int_equal(env.nrcpts, 2);
	assert_memory_equal(env.rcpts[0].addr.p, "x@localhost", 11);
	assert_int_equal(env.rcpts[0].notify, 6);
	assert_memory_equal(env.rcpts[0].orcpt.p, "rfc822;x@localhost", 18);
	assert_int_equal(env.rcpts[1].orcpt.len, 0);
	assert_true(env.smtputf8);
	assert_int_equal(env.msg_size, 20);
	buf_init(&msg, 1024);
	assert_int_equal(qfile_each_chunk(b.data, b.len, &env, collect, &msg), 0);
	assert_int_equal(msg.len, 20);
	assert_memory_equal(msg.data, "Subject: x\r\n\r\nbody\r\n", 20);
	qfile_env_free(&env);
	buf_free(&msg);
	buf_free(&b);
}

/* PREPEND and FOLDER follow the MSG records: the prepended fields come
 * first to every reader, and msg_size counts them. */
static void test_prepend_and_folder(void **state)
{
	static const char ar[] = "Authentication-Results: mx.example; spf=pass\r\n";
	struct buf b, msg;
	struct qenv env;

	(void)state;
	build(&b, 0, 0);
	assert_int_equal(qfile_put(&b, QR_PREPEND, ar, sizeof ar - 1), 0);
	assert_int_equal(qfile_put(&b, QR_FOLDER, "Junk", 4), 0);
	assert_int_equal(qfile_put_end(&b, 20), 0);
	assert_int_equal(qfile_parse(b.data, b.len, &env), 0);
	assert_int_equal(env.msg_size, 20 + sizeof ar - 1);
	assert_int_equal(env.folder.len, 4);
	assert_memory_equal(env.folder.p, "Junk", 4);
	buf_init(&msg, 1024);
	assert_int_equal(qfile_each_chunk(b.data, b.len, &env, collect, &msg), 0);
	assert_int_equal(msg.len, env.msg_size);
	assert_memory_equal(msg.data, ar, sizeof ar - 1);
	assert_memory_equal(msg.data + sizeof ar - 1, "Subject: x\r\n\r\nbody\r\n", 20);
	qfile_env_free(&env);
	buf_free(&msg);
	buf_free(&b);
}

static void test_no_end_refused(void **state)
{
	struct buf b;
	struct qenv env;

	(void)state;
	build(&b, 0, 0);
	assert_int_equal(qfile_parse(b.data, b.len, &env), -1);
	assert_non_null(strstr(env.error, "END"));
	buf_free(&b);
}

static void test_size_mismatch_refused(void **state)
{
	struct buf b;
	struct qenv env;

	(void)state;
	build(&b, 1, 21);
	assert_int_equal(qfile_parse(b.data, b.len, &env), -1);
	buf_free(&b);
}

/* Every truncation of a good file is refused: no prefix is a message. */
static void test_every_truncation_refused(void **state)
{
	struct buf b;
	struct qenv env;

	(void)state;
	build(&b, 1, 20);
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(qfile_parse(b.data, n, &env), -1);
	buf_free(&b);
}

static void test_record_after_end_refused(void **state)
{
	struct buf b;
	struct qenv env;

	(void)state;
	build(&b, 1, 20);
	assert_int_equal(qfile_put(&b, QR_MSG, "x", 1), 0);
	assert_int_equal(qfile_parse(b.data, b.len, &env), -1);
	buf_free(&b);
}

static void test_unknown_type_refused(void **state)
{
	struct buf b;
	struct qenv env;

	(void)state;
	buf_init(&b, 4096);
	qfile_begin(&b);
	qfile_put(&b, QR_ID, "A", 1);
	qfile_put(&b, (enum qrec_type)'Z', "x", 1);
	qfile_put_rcpt(&b, "x@y", 3, "", 0, 0);
	qfile_put_end(&b, 0);
	assert_int_equal(qfile_parse(b.data, b.len, &env), -1);
	assert_non_null(strstr(env.error, "unknown"));
	buf_free(&b);
}

/* A message body that looks like records cannot create any: lengths rule. */
static void test_body_cannot_forge_records(void **state)
{
	static const uint8_t forged[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 'e', 'v', 'i', 'l', '@' };
	struct buf b;
	struct qenv env;

	(void)state;
	buf_init(&b, 4096);
	qfile_begin(&b);
	qfile_put(&b, QR_ID, "A", 1);
	qfile_put_rcpt(&b, "x@y", 3, "", 0, 0);
	qfile_put(&b, QR_MSG, forged, sizeof forged);
	qfile_put_end(&b, sizeof forged);
	assert_int_equal(qfile_parse(b.data, b.len, &env), 0);
	assert_int_equal(env.nrcpts, 1);
	qfile_env_free(&env);
	buf_free(&b);
}

static void test_bad_magic_and_rcpt(void **state)
{
	static const uint8_t bad_rcpt[] = { 5, 0, 9, 'x' }; /* orcpt length past the value */
	struct buf b;
	struct qenv env;

	(void)state;
	assert_int_equal(qfile_parse((const uint8_t *)"TERNQ2\n", 7, &env), -1);
	buf_init(&b, 4096);
	qfile_begin(&b);
	qfile_put(&b, QR_ID, "A", 1);
	qfile_put(&b, QR_RCPT, bad_rcpt, sizeof bad_rcpt);
	qfile_put_end(&b, 0);
	assert_int_equal(qfile_parse(b.data, b.len, &env), -1);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_prepend_and_folder),
		cmocka_unit_test(test_no_end_refused),
		cmocka_unit_test(test_size_mismatch_refused),
		cmocka_unit_test(test_every_truncation_refused),
		cmocka_unit_test(test_record_after_end_refused),
		cmocka_unit_test(test_unknown_type_refused),
		cmocka_unit_test(test_body_cannot_forge_records),
		cmocka_unit_test(test_bad_magic_and_rcpt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
