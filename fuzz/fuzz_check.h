/* fuzz_check.h - CHECK(cond): a fuzz target's invariant; abort with the condition's text. */
#ifndef TERN_FUZZ_CHECK_H
#define TERN_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                         \
			abort();                                             \
		}                                                            \
	} while (0)

#endif
