/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The part of KUnit that selftests/kunit/nk_msg_test.c uses, on cmocka, so
 * that the same test file checks lib/nk_msg.c as user space builds it (the
 * engine, libvufront) as well as under UML (selftests/kunit/run.sh).
 *
 * Each KUnit case is one cmocka test; a parameterised case runs every
 * parameter in it and names the failing ones.  EXPECT failures are
 * reported and the case goes on, as in KUnit; ASSERT failures end it.
 */
#ifndef _NK_USER_KUNIT_TEST_H
#define _NK_USER_KUNIT_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../nk_kcompat.h"

/* Constant expressions, as the kernel's, for the tests' static tables. */
#if __BYTE_ORDER == __LITTLE_ENDIAN
#undef htons
#undef htonl
#define htons(x)		((uint16_t)__builtin_bswap16(x))
#define htonl(x)		((uint32_t)__builtin_bswap32(x))
#endif

/* The kernel's one-argument form. */
#undef static_assert
#define static_assert(e, ...)	_Static_assert(e, #e)
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

/* The kernel's strscpy(): the copied length, or -E2BIG if truncated. */
static inline ssize_t strscpy(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size);

	if (!size)
		return -E2BIG;
	if (n == size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return -E2BIG;
	}
	memcpy(dst, src, n + 1);
	return n;
}

#define KUNIT_PARAM_DESC_SIZE	128

struct kunit {
	const void *param_value;
	const char *param_desc;
	bool failed;
};

struct kunit_case {
	void (*run_case)(struct kunit *test);
	const char *name;
	const void *(*generate_params)(const void *prev, char *desc);
};

struct kunit_suite {
	const char *name;
	struct kunit_case *test_cases;
};

#define KUNIT_CASE(f)			{ .run_case = f, .name = #f }
#define KUNIT_CASE_PARAM(f, gen)	{ .run_case = f, .name = #f, .generate_params = gen }

#define KUNIT_ARRAY_PARAM(name, array, get_desc)					\
	static const void *name##_gen_params(const void *prev, char *desc)		\
	{										\
		typeof(&(array)[0]) __next = prev ? (typeof(__next))prev + 1 : (array);	\
		void (*__get_desc)(typeof(__next), char *) = get_desc;			\
											\
		if (__next - (array) < (long)ARRAY_SIZE(array)) {			\
			if (__get_desc)							\
				__get_desc(__next, desc);				\
			return __next;							\
		}									\
		return NULL;								\
	}

static inline void nk_kunit_fail(struct kunit *test, int line, const char *fmt, ...)
{
	va_list ap;

	test->failed = true;
	printf("# line %d%s%s: ", line, test->param_desc ? ", " : "",
	       test->param_desc ? test->param_desc : "");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

#define KUNIT_FAIL(test, fmt, ...) nk_kunit_fail(test, __LINE__, fmt, ##__VA_ARGS__)
#define KUNIT_EXPECT_TRUE_MSG(test, cond, fmt, ...)					\
	do {										\
		if (!(cond))								\
			KUNIT_FAIL(test, "expected " #cond " " fmt, ##__VA_ARGS__);	\
	} while (0)
#define KUNIT_EXPECT_TRUE(test, cond)	KUNIT_EXPECT_TRUE_MSG(test, cond, "")
#define KUNIT_EXPECT_FALSE_MSG(test, cond, fmt, ...) \
	KUNIT_EXPECT_TRUE_MSG(test, !(cond), fmt, ##__VA_ARGS__)
#define KUNIT_EXPECT_FALSE(test, cond)	KUNIT_EXPECT_FALSE_MSG(test, cond, "")
#define NK_KUNIT_BINARY(test, a, op, b, fmt, ...)					\
	do {										\
		__typeof__(a) _a = (a);							\
		__typeof__(b) _b = (b);							\
											\
		if (!(_a op _b))							\
			KUNIT_FAIL(test, #a " " #op " " #b ": %lld, %lld " fmt,	\
				   (long long)_a, (long long)_b, ##__VA_ARGS__);	\
	} while (0)
#define KUNIT_EXPECT_EQ_MSG(test, a, b, fmt, ...) \
	NK_KUNIT_BINARY(test, a, ==, b, fmt, ##__VA_ARGS__)
#define KUNIT_EXPECT_EQ(test, a, b)	NK_KUNIT_BINARY(test, a, ==, b, "")
#define KUNIT_EXPECT_GE(test, a, b)	NK_KUNIT_BINARY(test, a, >=, b, "")
#define KUNIT_EXPECT_STREQ_MSG(test, a, b, fmt, ...)					\
	do {										\
		if (strcmp(a, b))							\
			KUNIT_FAIL(test, "\"%s\" != \"%s\" " fmt, a, b, ##__VA_ARGS__);	\
	} while (0)
#define KUNIT_EXPECT_STREQ(test, a, b)	KUNIT_EXPECT_STREQ_MSG(test, a, b, "")
#define KUNIT_ASSERT_EQ(test, a, b)							\
	do {										\
		NK_KUNIT_BINARY(test, a, ==, b, "");					\
		if ((test)->failed)							\
			fail();								\
	} while (0)
#define KUNIT_ASSERT_TRUE(test, cond)							\
	do {										\
		KUNIT_EXPECT_TRUE(test, cond);						\
		if ((test)->failed)							\
			fail();								\
	} while (0)
#define KUNIT_ASSERT_NOT_ERR_OR_NULL(test, p)						\
	do {										\
		if (!(p)) {								\
			KUNIT_FAIL(test, #p " is NULL");				\
			fail();								\
		}									\
	} while (0)
#define kunit_info(test, fmt, ...)	printf("# " fmt, ##__VA_ARGS__)

#define MODULE_DESCRIPTION(s)
#define MODULE_LICENSE(s)

/* One KUnit case, every parameter of it. */
static inline void nk_kunit_run(void **state)
{
	const struct kunit_case *c = *state;
	char desc[KUNIT_PARAM_DESC_SIZE];
	struct kunit test = { 0 };
	bool failed = false;

	if (!c->generate_params) {
		c->run_case(&test);
		failed = test.failed;
	}
	for (test.param_value = c->generate_params ? c->generate_params(NULL, desc) : NULL;
	     test.param_value; test.param_value = c->generate_params(test.param_value, desc)) {
		test.param_desc = desc;
		test.failed = false;
		c->run_case(&test);
		failed |= test.failed;
	}
	if (failed)
		fail_msg("%s failed", c->name);
}

/* The suites kunit_test_suites() names, NULL-terminated. */
extern struct kunit_suite *const nk_kunit_suite_list[];

int main(void)
{
	struct kunit_suite *const *suite;
	int ret = 0;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	for (suite = nk_kunit_suite_list; *suite; suite++) {
		struct kunit_case *c;
		struct CMUnitTest *t;
		size_t k = 0, nc = 0;

		for (c = (*suite)->test_cases; c->run_case; c++)
			nc++;
		t = calloc(nc, sizeof(*t));
		if (!t)
			return 1;
		for (c = (*suite)->test_cases; c->run_case; c++)
			t[k++] = (struct CMUnitTest){ c->name, nk_kunit_run, NULL, NULL, c };
		ret += _cmocka_run_group_tests((*suite)->name, t, nc, NULL, NULL);
		free(t);
	}
	return ret;
}

#define kunit_test_suites(...) \
	struct kunit_suite *const nk_kunit_suite_list[] = { __VA_ARGS__, NULL }

#endif /* _NK_USER_KUNIT_TEST_H */
