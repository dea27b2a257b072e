// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite for lib/nk_sockid.c: the socket-id tables of NetKernel's
 * guest module (ids it allocates itself, 1..INT_MAX, cyclically) and NSM
 * module (ids the host engine chooses, 1..U32_MAX).
 *
 *   netkernel_sockid  id range and id 0, cyclic allocation (no early reuse,
 *                     wraparound at small limits, at INT_MAX and at
 *                     U32_MAX), reservation (duplicates refused, invisible
 *                     until published), retire and release (the guest's
 *                     unanswered CLOSE), removal, the reference-taking
 *                     lookup, walks (order, reserved ids skipped, removal
 *                     during a walk, resumed walks), many ids
 *
 * Expected values come from the rules in lib/nk_sockid.h and
 * Documentation/netkernel/protocol.rst ("0 is never a socket id"), not from
 * the code under test.  Each case gets a fresh table (max 1000 unless the
 * case sets another) whose entries are struct obj counting the references
 * nk_sockid_get() took.
 *
 * The code under test is compiled into this object, as the modules do it.
 * Run with selftests/kunit/run.sh.
 */
#include <kunit/test.h>
#include <linux/kernel.h>
#include <linux/limits.h>
#include <linux/slab.h>

#include "../../lib/nk_sockid.c"

#define DEFAULT_MAX	1000U
#define MANY		4096U

struct obj {
	u32 id;
	int refs;
};

static void obj_hold(void *entry)
{
	struct obj *o = entry;

	o->refs++;
}

static int sockid_test_init(struct kunit *test)
{
	struct nk_sockid_table *t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);

	if (!t)
		return -ENOMEM;
	nk_sockid_init(t, DEFAULT_MAX, obj_hold);
	test->priv = t;
	return 0;
}

static void sockid_test_exit(struct kunit *test)
{
	nk_sockid_destroy(test->priv);
}

/* The case's table, emptied and set up again with @max. */
static struct nk_sockid_table *table_with_max(struct kunit *test, u32 max)
{
	struct nk_sockid_table *t = test->priv;

	nk_sockid_destroy(t);
	nk_sockid_init(t, max, obj_hold);
	return t;
}

static struct obj *objs(struct kunit *test, unsigned int n)
{
	struct obj *o = kunit_kcalloc(test, n, sizeof(*o), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, o);
	return o;
}

/* Allocate an id for @o and expect it to be @want. */
static void expect_alloc(struct kunit *test, struct nk_sockid_table *t,
			 struct obj *o, u32 want)
{
	int err = nk_sockid_alloc(t, o, &o->id, GFP_KERNEL);

	KUNIT_EXPECT_EQ_MSG(test, err, 0, "allocation expected to give %u", want);
	if (!err)
		KUNIT_EXPECT_EQ(test, o->id, want);
}

/* Ids a walk visits, in order, into @ids (at most @n); the count. */
static unsigned int walk_ids(struct nk_sockid_table *t, u32 *ids,
			     unsigned int n)
{
	unsigned long id;
	unsigned int i = 0;
	struct obj *o;

	nk_sockid_for_each(t, id, o) {
		if (i < n)
			ids[i] = id;
		i++;
	}
	return i;
}

/* Whether @id is taken (reserved or published): reserving it is refused. */
static bool id_taken(struct kunit *test, struct nk_sockid_table *t, u32 id)
{
	int err = nk_sockid_reserve(t, id, GFP_KERNEL);

	if (err == -EEXIST)
		return true;
	KUNIT_EXPECT_EQ(test, err, 0);
	nk_sockid_release(t, id);
	return false;
}

/* ====================================================================== */
/* Range                                                                  */
/* ====================================================================== */

/* 0 is never an id; 1..max are; nothing beyond max, 64-bit values too. */
static void sockid_valid_range(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;

	KUNIT_EXPECT_FALSE(test, nk_sockid_valid(t, 0));
	KUNIT_EXPECT_TRUE(test, nk_sockid_valid(t, 1));
	KUNIT_EXPECT_TRUE(test, nk_sockid_valid(t, DEFAULT_MAX));
	KUNIT_EXPECT_FALSE(test, nk_sockid_valid(t, DEFAULT_MAX + 1));

	t = table_with_max(test, U32_MAX);
	KUNIT_EXPECT_FALSE(test, nk_sockid_valid(t, 0));
	KUNIT_EXPECT_TRUE(test, nk_sockid_valid(t, U32_MAX));
	KUNIT_EXPECT_FALSE(test, nk_sockid_valid(t, (u64)U32_MAX + 1));
	KUNIT_EXPECT_FALSE(test, nk_sockid_valid(t, 1ULL << 32 | 5));
	KUNIT_EXPECT_FALSE(test, nk_sockid_valid(t, U64_MAX));
}

/* An empty table: no lookup, walk or find sees anything. */
static void sockid_empty_table(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	unsigned long id = 0;
	u32 ids[1];

	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 0));
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 1));
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, U32_MAX));
	KUNIT_EXPECT_NULL(test, nk_sockid_find(t, &id));
	KUNIT_EXPECT_EQ(test, walk_ids(t, ids, 1), 0U);
	KUNIT_EXPECT_NULL(test, nk_sockid_remove(t, 1));
}

/* ====================================================================== */
/* Cyclic allocation                                                      */
/* ====================================================================== */

/* The first ids are 1, 2, 3: never 0. */
static void sockid_alloc_starts_at_1(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 3);

	expect_alloc(test, t, &o[0], 1);
	expect_alloc(test, t, &o[1], 2);
	expect_alloc(test, t, &o[2], 3);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, 2), (void *)&o[1]);
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 0));
}

/* A freed id is not handed out again before the others had their turn. */
static void sockid_alloc_no_early_reuse(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 5);

	expect_alloc(test, t, &o[0], 1);
	expect_alloc(test, t, &o[1], 2);
	expect_alloc(test, t, &o[2], 3);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_remove(t, 2), (void *)&o[1]);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_remove(t, 3), (void *)&o[2]);
	expect_alloc(test, t, &o[3], 4);
	expect_alloc(test, t, &o[4], 5);
}

/*
 * max 5: after 5 the allocator wraps to the lowest free id, then goes on
 * from there (not back to 1 when 1 is free again), and says -EBUSY when
 * every id is taken.
 */
static void sockid_alloc_wraps_at_small_max(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, 5);
	struct obj *o = objs(test, 10);
	u32 ids[5];
	int i;

	for (i = 0; i < 5; i++)
		expect_alloc(test, t, &o[i], i + 1);
	KUNIT_EXPECT_EQ(test, nk_sockid_alloc(t, &o[9], &o[9].id, GFP_KERNEL),
			-EBUSY);

	nk_sockid_remove(t, 1);
	nk_sockid_remove(t, 2);
	nk_sockid_remove(t, 4);
	expect_alloc(test, t, &o[5], 1);	/* wrapped */
	nk_sockid_remove(t, 1);
	nk_sockid_remove(t, 5);
	expect_alloc(test, t, &o[6], 2);	/* on from 1, not back to it */
	expect_alloc(test, t, &o[7], 4);
	expect_alloc(test, t, &o[8], 5);
	expect_alloc(test, t, &o[0], 1);	/* wrapped again */
	KUNIT_EXPECT_EQ(test, nk_sockid_alloc(t, &o[9], &o[9].id, GFP_KERNEL),
			-EBUSY);
	KUNIT_EXPECT_EQ(test, walk_ids(t, ids, 5), 5U);
}

/* max 1: the only id is 1, again and again. */
static void sockid_alloc_max_1(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, 1);
	struct obj *o = objs(test, 2);
	int i;

	for (i = 0; i < 3; i++) {
		expect_alloc(test, t, &o[0], 1);
		KUNIT_EXPECT_EQ(test,
				nk_sockid_alloc(t, &o[1], &o[1].id, GFP_KERNEL),
				-EBUSY);
		KUNIT_EXPECT_PTR_EQ(test, nk_sockid_remove(t, 1), (void *)&o[0]);
	}
}

/* Reserved ids (reserved, or retired) are skipped like published ones. */
static void sockid_alloc_skips_reserved(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, 4);
	struct obj *o = objs(test, 4);

	expect_alloc(test, t, &o[0], 1);
	expect_alloc(test, t, &o[1], 2);
	nk_sockid_retire(t, 1);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 3, GFP_KERNEL), 0);
	expect_alloc(test, t, &o[2], 4);
	KUNIT_EXPECT_EQ(test, nk_sockid_alloc(t, &o[3], &o[3].id, GFP_KERNEL),
			-EBUSY);
	nk_sockid_release(t, 1);
	expect_alloc(test, t, &o[3], 1);
}

/* The guest's limit: INT_MAX - 1, INT_MAX, then back to 1. */
static void sockid_alloc_wraps_at_int_max(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, INT_MAX);
	struct obj *o = objs(test, 4);

	expect_alloc(test, t, &o[0], 1);
	/* Skip two billion allocations: the cursor is the table's state. */
	t->next = INT_MAX - 1;
	expect_alloc(test, t, &o[1], INT_MAX - 1);
	expect_alloc(test, t, &o[2], INT_MAX);
	expect_alloc(test, t, &o[3], 2);	/* 1 is taken, 0 never */
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, INT_MAX), (void *)&o[2]);
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, (u32)INT_MAX + 1));
}

/* At U32_MAX the cursor itself wraps to 0; 0 is still never handed out. */
static void sockid_alloc_wraps_at_u32_max(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, U32_MAX);
	struct obj *o = objs(test, 3);
	u32 ids[3];

	t->next = U32_MAX;
	expect_alloc(test, t, &o[0], U32_MAX);
	expect_alloc(test, t, &o[1], 1);
	expect_alloc(test, t, &o[2], 2);
	KUNIT_ASSERT_EQ(test, walk_ids(t, ids, 3), 3U);
	KUNIT_EXPECT_EQ(test, ids[0], 1U);
	KUNIT_EXPECT_EQ(test, ids[1], 2U);
	KUNIT_EXPECT_EQ(test, ids[2], U32_MAX);
}

/*
 * nk_sockid_alloc_on(): ids of one residue (a queue pair), cyclically
 * among them; a modulus of 1 is nk_sockid_alloc().
 */
static void sockid_alloc_on_residue(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, 10);
	struct obj *o = objs(test, 8);
	static const u32 want[] = { 1, 4, 7, 10 };
	int i;

	for (i = 0; i < 4; i++) {
		KUNIT_ASSERT_EQ(test, nk_sockid_alloc_on(t, &o[i], &o[i].id, 3, 1,
							  GFP_KERNEL), 0);
		KUNIT_EXPECT_EQ(test, o[i].id, want[i]);
	}
	KUNIT_EXPECT_EQ(test, nk_sockid_alloc_on(t, &o[4], &o[4].id, 3, 1, GFP_KERNEL),
			-EBUSY);
	/* Residue 0: 3, 6, 9, whatever the other residue took. */
	KUNIT_ASSERT_EQ(test, nk_sockid_alloc_on(t, &o[4], &o[4].id, 3, 0, GFP_KERNEL), 0);
	KUNIT_EXPECT_EQ(test, o[4].id, 3U);
	/* A freed one comes back once the others had their turn: wrapped. */
	nk_sockid_remove(t, 4);
	KUNIT_ASSERT_EQ(test, nk_sockid_alloc_on(t, &o[5], &o[5].id, 3, 1, GFP_KERNEL), 0);
	KUNIT_EXPECT_EQ(test, o[5].id, 4U);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, 4), (void *)&o[5]);
	/* Modulus 1: any id, the lowest free after the last. */
	KUNIT_ASSERT_EQ(test, nk_sockid_alloc_on(t, &o[6], &o[6].id, 1, 0, GFP_KERNEL), 0);
	KUNIT_EXPECT_EQ(test, o[6].id, 5U);
}

/* Near U32_MAX the next id of a residue wraps to the first, not past 0. */
static void sockid_alloc_on_wraps_at_u32_max(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, U32_MAX);
	struct obj *o = objs(test, 2);

	t->next = U32_MAX - 1;
	KUNIT_ASSERT_EQ(test, nk_sockid_alloc_on(t, &o[0], &o[0].id, 2, 1, GFP_KERNEL), 0);
	KUNIT_EXPECT_EQ(test, o[0].id, U32_MAX);
	KUNIT_ASSERT_EQ(test, nk_sockid_alloc_on(t, &o[1], &o[1].id, 2, 1, GFP_KERNEL), 0);
	KUNIT_EXPECT_EQ(test, o[1].id, 1U);
}

/* ====================================================================== */
/* Ids chosen by the peer: reserve, publish                               */
/* ====================================================================== */

/* 0 and ids beyond max are refused with -EINVAL, and take nothing. */
static void sockid_reserve_refuses_out_of_range(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	u32 ids[1];

	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 0, GFP_KERNEL), -EINVAL);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, DEFAULT_MAX + 1, GFP_KERNEL),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 1ULL << 32 | 1, GFP_KERNEL),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, DEFAULT_MAX, GFP_KERNEL), 0);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 1, GFP_KERNEL), 0);

	t = table_with_max(test, U32_MAX);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 0, GFP_KERNEL), -EINVAL);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, (u64)U32_MAX + 1,
						GFP_KERNEL), -EINVAL);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 1ULL << 32 | 1, GFP_KERNEL),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, U32_MAX, GFP_KERNEL), 0);
	/* 2^32 + 1 was not truncated to 1 */
	KUNIT_EXPECT_FALSE(test, id_taken(test, t, 1));
	KUNIT_EXPECT_EQ(test, walk_ids(t, ids, 1), 0U);
}

/* An id reserved, published, allocated or retired is refused: -EEXIST. */
static void sockid_reserve_refuses_duplicates(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 2);

	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 7, GFP_KERNEL), 0);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 7, GFP_KERNEL), -EEXIST);
	nk_sockid_publish(t, 7, &o[0]);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 7, GFP_KERNEL), -EEXIST);
	nk_sockid_retire(t, 7);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 7, GFP_KERNEL), -EEXIST);
	nk_sockid_release(t, 7);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 7, GFP_KERNEL), 0);
	KUNIT_EXPECT_NULL(test, nk_sockid_remove(t, 7));
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 7, GFP_KERNEL), 0);

	expect_alloc(test, t, &o[1], 1);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 1, GFP_KERNEL), -EEXIST);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, 1), (void *)&o[1]);
}

/* Reserved and not published: invisible to lookups, walks and find. */
static void sockid_reserved_invisible(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 3);
	unsigned long id;
	u32 ids[4];

	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 3, GFP_KERNEL), 0);
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 3));
	id = 0;
	KUNIT_EXPECT_NULL(test, nk_sockid_find(t, &id));
	KUNIT_EXPECT_EQ(test, walk_ids(t, ids, 4), 0U);

	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 2, GFP_KERNEL), 0);
	nk_sockid_publish(t, 2, &o[0]);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 4, GFP_KERNEL), 0);
	nk_sockid_publish(t, 4, &o[1]);
	KUNIT_ASSERT_EQ(test, walk_ids(t, ids, 4), 2U);
	KUNIT_EXPECT_EQ(test, ids[0], 2U);
	KUNIT_EXPECT_EQ(test, ids[1], 4U);
	id = 3;
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_find(t, &id), (void *)&o[1]);
	KUNIT_EXPECT_EQ(test, id, 4UL);
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 3));
	KUNIT_EXPECT_EQ(test, o[0].refs + o[1].refs, 0);

	/* published, it is seen */
	nk_sockid_publish(t, 3, &o[2]);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, 3), (void *)&o[2]);
	KUNIT_EXPECT_EQ(test, o[2].refs, 1);
	KUNIT_EXPECT_EQ(test, walk_ids(t, ids, 4), 3U);
}

/* The NSM's top id, U32_MAX: reserved, published, looked up, walked. */
static void sockid_reserve_at_u32_max(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, U32_MAX);
	struct obj *o = objs(test, 2);
	u32 ids[3];

	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, U32_MAX, GFP_KERNEL), 0);
	nk_sockid_publish(t, U32_MAX, &o[0]);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 1, GFP_KERNEL), 0);
	nk_sockid_publish(t, 1, &o[1]);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, U32_MAX), (void *)&o[0]);
	KUNIT_ASSERT_EQ(test, walk_ids(t, ids, 3), 2U);
	KUNIT_EXPECT_EQ(test, ids[0], 1U);
	KUNIT_EXPECT_EQ(test, ids[1], U32_MAX);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_remove(t, U32_MAX), (void *)&o[0]);
}

/* ====================================================================== */
/* Retire, release, remove                                                */
/* ====================================================================== */

/*
 * The guest's CLOSE: retired, the socket is gone from lookups and walks
 * but its id is neither allocated nor reservable until released.
 */
static void sockid_retire_keeps_id(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, 3);
	struct obj *o = objs(test, 4);
	u32 ids[3];

	expect_alloc(test, t, &o[0], 1);
	expect_alloc(test, t, &o[1], 2);
	nk_sockid_retire(t, 1);
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 1));
	KUNIT_EXPECT_EQ(test, o[0].refs, 0);
	KUNIT_ASSERT_EQ(test, walk_ids(t, ids, 3), 1U);
	KUNIT_EXPECT_EQ(test, ids[0], 2U);
	KUNIT_EXPECT_TRUE(test, id_taken(test, t, 1));

	expect_alloc(test, t, &o[2], 3);
	KUNIT_EXPECT_EQ(test, nk_sockid_alloc(t, &o[3], &o[3].id, GFP_KERNEL),
			-EBUSY);

	/* retiring twice, or a free id, changes nothing */
	nk_sockid_retire(t, 1);
	KUNIT_EXPECT_TRUE(test, id_taken(test, t, 1));

	/* the late answer */
	nk_sockid_release(t, 1);
	KUNIT_EXPECT_FALSE(test, id_taken(test, t, 1));
	expect_alloc(test, t, &o[3], 1);

	t = table_with_max(test, DEFAULT_MAX);
	nk_sockid_retire(t, 9);
	KUNIT_EXPECT_FALSE(test, id_taken(test, t, 9));
}

/* A retired id can be published again (the reservation holds it). */
static void sockid_retire_then_publish(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 2);

	expect_alloc(test, t, &o[0], 1);
	nk_sockid_retire(t, 1);
	nk_sockid_publish(t, 1, &o[1]);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, 1), (void *)&o[1]);
	KUNIT_EXPECT_EQ(test, o[0].refs, 0);
	KUNIT_EXPECT_EQ(test, o[1].refs, 1);
}

/* Release frees only a reserved id: a published or free one is untouched. */
static void sockid_release_only_reserved(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 1);

	expect_alloc(test, t, &o[0], 1);
	nk_sockid_release(t, 1);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, 1), (void *)&o[0]);
	KUNIT_EXPECT_TRUE(test, id_taken(test, t, 1));

	nk_sockid_release(t, 5);
	KUNIT_EXPECT_FALSE(test, id_taken(test, t, 5));
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 5));
}

/* Remove frees whatever the state, and returns the published entry. */
static void sockid_remove_any_state(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 2);

	expect_alloc(test, t, &o[0], 1);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_remove(t, 1), (void *)&o[0]);
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 1));
	KUNIT_EXPECT_FALSE(test, id_taken(test, t, 1));
	KUNIT_EXPECT_NULL(test, nk_sockid_remove(t, 1));

	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 8, GFP_KERNEL), 0);
	KUNIT_EXPECT_NULL(test, nk_sockid_remove(t, 8));
	KUNIT_EXPECT_FALSE(test, id_taken(test, t, 8));

	expect_alloc(test, t, &o[1], 2);
	nk_sockid_retire(t, 2);
	KUNIT_EXPECT_NULL(test, nk_sockid_remove(t, 2));
	KUNIT_EXPECT_FALSE(test, id_taken(test, t, 2));
	KUNIT_EXPECT_TRUE(test, xa_empty(&t->xa));
}

/* ====================================================================== */
/* Lookup and walks                                                       */
/* ====================================================================== */

/* Each hit takes one reference with the hold function; a miss takes none. */
static void sockid_get_takes_reference(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 2);

	expect_alloc(test, t, &o[0], 1);
	expect_alloc(test, t, &o[1], 2);
	KUNIT_EXPECT_EQ(test, o[0].refs, 0);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, 1), (void *)&o[0]);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, 1), (void *)&o[0]);
	KUNIT_EXPECT_EQ(test, o[0].refs, 2);
	KUNIT_EXPECT_EQ(test, o[1].refs, 0);
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 3));
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 0));
	nk_sockid_remove(t, 1);
	KUNIT_EXPECT_NULL(test, nk_sockid_get(t, 1));
	KUNIT_EXPECT_EQ(test, o[0].refs, 2);
}

/*
 * Removing entries during a walk (the current one and one ahead, as the
 * NSM's teardown does): the walk visits every other entry once, in order.
 */
static void sockid_walk_remove_during_walk(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 10), *cur;
	unsigned int n = 0;
	unsigned long id;
	u32 seen[10];
	int i;

	for (i = 0; i < 10; i++)
		expect_alloc(test, t, &o[i], i + 1);
	nk_sockid_for_each(t, id, cur) {
		KUNIT_ASSERT_LT(test, n, 10U);
		KUNIT_EXPECT_EQ(test, cur->id, (u32)id);
		seen[n++] = id;
		KUNIT_EXPECT_PTR_EQ(test, nk_sockid_remove(t, id), (void *)cur);
		if (id == 4)
			nk_sockid_remove(t, 7);
	}
	KUNIT_ASSERT_EQ(test, n, 9U);
	for (i = 0; i < 9; i++)
		KUNIT_EXPECT_EQ(test, seen[i], i < 6 ? i + 1U : i + 2U);
	KUNIT_EXPECT_TRUE(test, xa_empty(&t->xa));
}

/* A walk under the table lock, as the guest's device removal does. */
static void sockid_walk_locked(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 3), *cur;
	unsigned int n = 0;
	unsigned long id;

	expect_alloc(test, t, &o[0], 1);
	expect_alloc(test, t, &o[1], 2);
	expect_alloc(test, t, &o[2], 3);
	nk_sockid_retire(t, 2);
	nk_sockid_lock(t);
	nk_sockid_for_each(t, id, cur)
		n += cur->id;
	nk_sockid_unlock(t);
	KUNIT_EXPECT_EQ(test, n, 4U);
}

/* Resumed walks (seq_file): find from an id, past the end, between ids. */
static void sockid_find_resumes(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 3);
	unsigned long id;

	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 10, GFP_KERNEL), 0);
	nk_sockid_publish(t, 10, &o[0]);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 20, GFP_KERNEL), 0);
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, DEFAULT_MAX, GFP_KERNEL), 0);
	nk_sockid_publish(t, DEFAULT_MAX, &o[2]);

	id = 0;
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_find(t, &id), (void *)&o[0]);
	KUNIT_EXPECT_EQ(test, id, 10UL);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_find(t, &id), (void *)&o[0]);
	KUNIT_EXPECT_EQ(test, id, 10UL);
	id = 11;
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_find(t, &id), (void *)&o[2]);
	KUNIT_EXPECT_EQ(test, id, (unsigned long)DEFAULT_MAX);
	id = DEFAULT_MAX + 1;
	KUNIT_EXPECT_NULL(test, nk_sockid_find(t, &id));
	id = ULONG_MAX;
	KUNIT_EXPECT_NULL(test, nk_sockid_find(t, &id));
	KUNIT_EXPECT_EQ(test, o[0].refs + o[2].refs, 0);
}

/*
 * Many ids: 4096 allocated in a table of 4096 (all distinct, 1..4096),
 * the odd ones removed, every even one still found, walks see 2048, the
 * odd ones come back through reservation, and allocation wraps into the
 * holes left by a second removal.  Each loop stops at its first failure.
 */
static void sockid_many_ids(struct kunit *test)
{
	struct nk_sockid_table *t = table_with_max(test, MANY);
	struct obj *o = objs(test, MANY + 1), *cur;
	unsigned long id, last = 0;
	unsigned int i, n = 0;
	int err;

	for (i = 0; i < MANY; i++) {
		err = nk_sockid_alloc(t, &o[i], &o[i].id, GFP_KERNEL);
		if (err || o[i].id != i + 1) {
			KUNIT_FAIL(test, "allocation %u: %d, id %u", i, err,
				   o[i].id);
			return;
		}
	}
	KUNIT_EXPECT_EQ(test, nk_sockid_alloc(t, &o[MANY], &o[MANY].id,
					      GFP_KERNEL), -EBUSY);
	for (i = 1; i <= MANY; i += 2) {
		if (nk_sockid_remove(t, i) != &o[i - 1]) {
			KUNIT_FAIL(test, "id %u removed the wrong entry", i);
			return;
		}
	}
	for (i = 1; i <= MANY; i++) {
		if (nk_sockid_get(t, i) != (i % 2 ? NULL : &o[i - 1])) {
			KUNIT_FAIL(test, "lookup of id %u", i);
			return;
		}
	}
	nk_sockid_for_each(t, id, cur) {
		if (id <= last || id % 2 || cur != &o[id - 1]) {
			KUNIT_FAIL(test, "walk gave id %lu after %lu", id, last);
			return;
		}
		last = id;
		n++;
	}
	KUNIT_EXPECT_EQ(test, n, MANY / 2);

	for (i = 1; i <= MANY; i++) {
		err = nk_sockid_reserve(t, i, GFP_KERNEL);
		if (err != (i % 2 ? 0 : -EEXIST)) {
			KUNIT_FAIL(test, "reservation of id %u: %d", i, err);
			return;
		}
	}
	for (i = 1; i <= MANY; i += 2)
		nk_sockid_publish(t, i, &o[i - 1]);
	KUNIT_EXPECT_EQ(test, walk_ids(t, NULL, 0), MANY);

	/* free 100, 200, ..., 4000: the allocator wraps into them in order */
	for (i = 100; i <= MANY; i += 100)
		nk_sockid_remove(t, i);
	for (i = 100; i <= MANY; i += 100)
		expect_alloc(test, t, &o[i - 1], i);
	for (i = 1; i <= MANY; i++)
		nk_sockid_remove(t, i);
	KUNIT_EXPECT_TRUE(test, xa_empty(&t->xa));
}

/* Destroy drops reservations; the table can be used again afterwards. */
static void sockid_destroy_drops_reservations(struct kunit *test)
{
	struct nk_sockid_table *t = test->priv;
	struct obj *o = objs(test, 1);
	int i;

	for (i = 1; i <= 100; i++)
		KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, i * 7, GFP_KERNEL), 0);
	nk_sockid_destroy(t);
	KUNIT_EXPECT_TRUE(test, xa_empty(&t->xa));
	KUNIT_EXPECT_EQ(test, nk_sockid_reserve(t, 7, GFP_KERNEL), 0);
	nk_sockid_publish(t, 7, &o[0]);
	KUNIT_EXPECT_PTR_EQ(test, nk_sockid_get(t, 7), (void *)&o[0]);
}

static struct kunit_case netkernel_sockid_cases[] = {
	KUNIT_CASE(sockid_valid_range),
	KUNIT_CASE(sockid_empty_table),
	KUNIT_CASE(sockid_alloc_starts_at_1),
	KUNIT_CASE(sockid_alloc_no_early_reuse),
	KUNIT_CASE(sockid_alloc_wraps_at_small_max),
	KUNIT_CASE(sockid_alloc_max_1),
	KUNIT_CASE(sockid_alloc_skips_reserved),
	KUNIT_CASE(sockid_alloc_wraps_at_int_max),
	KUNIT_CASE(sockid_alloc_wraps_at_u32_max),
	KUNIT_CASE(sockid_alloc_on_residue),
	KUNIT_CASE(sockid_alloc_on_wraps_at_u32_max),
	KUNIT_CASE(sockid_reserve_refuses_out_of_range),
	KUNIT_CASE(sockid_reserve_refuses_duplicates),
	KUNIT_CASE(sockid_reserved_invisible),
	KUNIT_CASE(sockid_reserve_at_u32_max),
	KUNIT_CASE(sockid_retire_keeps_id),
	KUNIT_CASE(sockid_retire_then_publish),
	KUNIT_CASE(sockid_release_only_reserved),
	KUNIT_CASE(sockid_remove_any_state),
	KUNIT_CASE(sockid_get_takes_reference),
	KUNIT_CASE(sockid_walk_remove_during_walk),
	KUNIT_CASE(sockid_walk_locked),
	KUNIT_CASE(sockid_find_resumes),
	KUNIT_CASE(sockid_many_ids),
	KUNIT_CASE(sockid_destroy_drops_reservations),
	{}
};

static struct kunit_suite netkernel_sockid_suite = {
	.name = "netkernel_sockid",
	.init = sockid_test_init,
	.exit = sockid_test_exit,
	.test_cases = netkernel_sockid_cases,
};

kunit_test_suites(&netkernel_sockid_suite);

MODULE_DESCRIPTION("KUnit tests for NetKernel's socket-id tables");
MODULE_LICENSE("GPL");
