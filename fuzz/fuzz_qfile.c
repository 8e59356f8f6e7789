/* fuzz_qfile.c - libFuzzer target: the queue file reader never reads out of bounds, and what it accepts is consistent. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "spool/qfile.h"

static int count(void *arg, const uint8_t *p, size_t n)
{
	(void)p;
	*(uint64_t *)arg += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct qenv env;
	uint64_t total = 0;

	if (qfile_parse(data, len, &env) != 0)
		return 0;
	assert(env.nrcpts > 0 && env.id.len > 0);
	for (size_t i = 0; i < env.nrcpts; i++) {
		assert(env.rcpts[i].addr.p >= data && env.rcpts[i].addr.p + env.rcpts[i].addr.len <= data + len);
		assert(env.rcpts[i].addr.len > 0);
	}
	qfile_each_chunk(data, len, &env, count, &total);
	assert(total == env.msg_size);
	qfile_env_free(&env);
	return 0;
}
