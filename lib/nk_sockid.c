// SPDX-License-Identifier: GPL-2.0
/*
 * Socket-id tables: ids 1..max, cyclic allocation, reservation before
 * publication, reference-taking lookups.  See nk_sockid.h for the states
 * of an id and the locking rules: every function takes the table's
 * xa_lock itself, and none is called with it held.
 *
 * An allocating xarray does the work: a reserved id holds XA_ZERO_ENTRY,
 * which xa_load() and the walks report as no entry and which
 * xa_alloc_cyclic() and xa_insert() treat as taken.
 */
#include <linux/bug.h>
#include <linux/errno.h>

#include "nk_sockid.h"

void nk_sockid_init(struct nk_sockid_table *t, u32 max,
		    void (*hold)(void *entry))
{
	xa_init_flags(&t->xa, XA_FLAGS_ALLOC1);
	t->max = max;
	t->next = 1;
	t->hold = hold;
}

void nk_sockid_destroy(struct nk_sockid_table *t)
{
	xa_destroy(&t->xa);
}

bool nk_sockid_valid(const struct nk_sockid_table *t, u64 id)
{
	return id && id <= t->max;
}

int nk_sockid_alloc(struct nk_sockid_table *t, void *entry, u32 *id,
		    gfp_t gfp)
{
	int err;

	/* 1 means it wrapped around: not the caller's business. */
	err = xa_alloc_cyclic(&t->xa, id, entry, XA_LIMIT(1, t->max), &t->next,
			      gfp);
	return err < 0 ? err : 0;
}

int nk_sockid_alloc_on(struct nk_sockid_table *t, void *entry, u32 *id,
		       u32 n, u32 r, gfp_t gfp)
{
	u64 cand, tries;
	int err = -EBUSY;

	if (n <= 1)
		return nk_sockid_alloc(t, entry, id, gfp);
	xa_lock(&t->xa);
	cand = t->next;
	for (tries = 0; tries <= t->max / n + 1; tries++) {
		/* The first id from @cand on that is @r modulo @n. */
		cand += (r + n - cand % n) % n;
		if (cand > t->max) {
			cand = r ?: n;
			if (cand > t->max)
				break;
		}
		*id = cand;
		err = __xa_insert(&t->xa, cand, entry, gfp);
		if (err != -EBUSY)
			break;
		cand += n;
	}
	if (!err)
		t->next = cand < t->max ? cand + 1 : 1;
	xa_unlock(&t->xa);
	return err;
}

int nk_sockid_reserve(struct nk_sockid_table *t, u64 id, gfp_t gfp)
{
	int err;

	if (!nk_sockid_valid(t, id))
		return -EINVAL;
	/* A NULL entry reserves the index; -EBUSY when it is taken. */
	err = xa_insert(&t->xa, id, NULL, gfp);
	return err == -EBUSY ? -EEXIST : err;
}

void nk_sockid_publish(struct nk_sockid_table *t, u32 id, void *entry)
{
	XA_STATE(xas, &t->xa, id);

	xas_lock(&xas);
	/* The reserved slot exists: storing into it allocates nothing. */
	if (!WARN_ON_ONCE(!xa_is_zero(xas_load(&xas))))
		xas_store(&xas, entry);
	xas_unlock(&xas);
}

void nk_sockid_retire(struct nk_sockid_table *t, u32 id)
{
	XA_STATE(xas, &t->xa, id);
	void *curr;

	xas_lock(&xas);
	curr = xas_load(&xas);
	if (curr && !xa_is_zero(curr))
		xas_store(&xas, XA_ZERO_ENTRY);
	xas_unlock(&xas);
}

void nk_sockid_release(struct nk_sockid_table *t, u32 id)
{
	xa_release(&t->xa, id);
}

void *nk_sockid_remove(struct nk_sockid_table *t, u32 id)
{
	return xa_erase(&t->xa, id);
}

void *nk_sockid_get(struct nk_sockid_table *t, u32 id)
{
	void *entry;

	xa_lock(&t->xa);
	entry = xa_load(&t->xa, id);
	if (entry)
		t->hold(entry);
	xa_unlock(&t->xa);
	return entry;
}

void *nk_sockid_find(struct nk_sockid_table *t, unsigned long *id)
{
	return xa_find(&t->xa, id, t->max, XA_PRESENT);
}
