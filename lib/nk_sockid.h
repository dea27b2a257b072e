/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Socket-id tables shared by af_netkernel.ko and nsm_kernel.ko.
 *
 * A table maps the socket ids of one side of an nk link to the module's
 * socket objects.  Ids run from 1 to the table's max (0 is never a socket
 * id, see protocol.rst).  An id is in one of three states:
 *
 *   free       not in the table
 *   reserved   taken, without an entry: lookups and walks do not see it,
 *              and no allocation or reservation hands it out
 *   published  taken, with an entry: lookups and walks see it
 *
 * and moves between them only through these functions:
 *
 *   nk_sockid_alloc()    free -> published, the id chosen here, cyclically
 *                        (the guest names its own sockets);
 *                        nk_sockid_alloc_on() one of a given residue (the
 *                        queue pair of the CPU that makes the socket)
 *   nk_sockid_reserve()  free -> reserved, the id chosen by the peer (the
 *                        NSM gets its ids from the host engine); 0, an id
 *                        beyond max and an id taken are refused
 *   nk_sockid_publish()  reserved -> published
 *   nk_sockid_retire()   published -> reserved: the entry is gone but the
 *                        id is not reused until nk_sockid_release()
 *   nk_sockid_release()  reserved -> free; a published id is left alone
 *   nk_sockid_remove()   reserved or published -> free
 *
 * Cyclic allocation: nk_sockid_alloc() takes the lowest free id after the
 * one it allocated last, and wraps around to 1 after max.  An id that was
 * freed is therefore not handed out again before every other id had its
 * turn, so a late message about a closed socket does not reach a new one.
 *
 * References: the table does not own its entries.  An entry must stay
 * alive while it is published and the table lock is held (its owner
 * removes or retires it before dropping the reference the table stands
 * for).  nk_sockid_get() calls the table's hold function under the lock,
 * so the entry it returns stays alive after the lock is dropped, until the
 * caller puts that reference.
 *
 * Locking: every table has one spinlock (its xarray's xa_lock).  Each
 * function here takes it itself and has dropped it on return, so none may
 * be called with it held.  nk_sockid_lock() and nk_sockid_unlock() hold it
 * across a walk (nk_sockid_for_each(), nk_sockid_find()) that needs the
 * entries alive; the hold function is called under it too, so it must not
 * sleep.  A walk without the lock sees every entry published for the whole
 * walk exactly once, may remove entries (the current one included), and
 * needs the caller to keep the entries alive by other means (a lock that
 * serialises the table's changes).  Process context; the functions with a
 * gfp argument may sleep when it allows.
 */
#ifndef _NK_SOCKID_H
#define _NK_SOCKID_H

#include <linux/types.h>
#include <linux/xarray.h>

/**
 * struct nk_sockid_table - socket id -> entry
 * @xa: the ids (an allocating xarray: reserved ids hold XA_ZERO_ENTRY)
 * @max: largest id
 * @next: the id nk_sockid_alloc() tries first (under xa_lock)
 * @hold: takes a reference to an entry, for nk_sockid_get()
 */
struct nk_sockid_table {
	struct xarray xa;
	u32 max;
	u32 next;
	void (*hold)(void *entry);
};

/**
 * nk_sockid_init() - set up an empty table
 * @t: the table
 * @max: largest id, at least 1
 * @hold: takes a reference to an entry; called under the table lock
 */
void nk_sockid_init(struct nk_sockid_table *t, u32 max,
		    void (*hold)(void *entry));

/**
 * nk_sockid_destroy() - free the table's memory
 * @t: the table; reserved ids are dropped, published entries are not
 *     touched (their owners must have removed them)
 */
void nk_sockid_destroy(struct nk_sockid_table *t);

/**
 * nk_sockid_valid() - whether @id is in the table's range
 * @t: the table
 * @id: an id as it came from the wire (a0 of ACCEPT is 64 bits)
 *
 * Return: true for 1..max.
 */
bool nk_sockid_valid(const struct nk_sockid_table *t, u64 id);

/**
 * nk_sockid_alloc() - publish @entry under a fresh id
 * @t: the table
 * @entry: the entry, not NULL
 * @id: the id, written before the entry is visible
 * @gfp: allocation flags
 *
 * Return: 0, -EBUSY when every id is taken, or -ENOMEM.
 */
int nk_sockid_alloc(struct nk_sockid_table *t, void *entry, u32 *id,
		    gfp_t gfp);

/**
 * nk_sockid_alloc_on() - nk_sockid_alloc(), of an id that is @r modulo @n
 * @t: the table
 * @entry: the entry, not NULL
 * @id: the id, written before the entry is visible
 * @n: the modulus (a queue pair count); 0 or 1: any id
 * @r: the residue, below @n (a queue pair)
 * @gfp: allocation flags
 *
 * The lowest free such id after the one allocated last, wrapping around.
 *
 * Return: 0, -EBUSY when every such id is taken, or -ENOMEM.
 */
int nk_sockid_alloc_on(struct nk_sockid_table *t, void *entry, u32 *id,
		       u32 n, u32 r, gfp_t gfp);

/**
 * nk_sockid_reserve() - take an id chosen by the peer, without an entry
 * @t: the table
 * @id: the id
 * @gfp: allocation flags
 *
 * Return: 0, -EINVAL for an id out of range (0 included), -EEXIST for an
 * id already reserved or published, or -ENOMEM.
 */
int nk_sockid_reserve(struct nk_sockid_table *t, u64 id, gfp_t gfp);

/**
 * nk_sockid_publish() - give a reserved id its entry
 * @t: the table
 * @id: an id reserved by nk_sockid_reserve() or nk_sockid_retire()
 * @entry: the entry, not NULL
 *
 * Never fails and never allocates: the reservation holds the memory.
 */
void nk_sockid_publish(struct nk_sockid_table *t, u32 id, void *entry);

/**
 * nk_sockid_retire() - hide a published entry, keeping its id taken
 * @t: the table
 * @id: the id; nothing happens unless it is published
 */
void nk_sockid_retire(struct nk_sockid_table *t, u32 id);

/**
 * nk_sockid_release() - free a reserved id
 * @t: the table
 * @id: the id; nothing happens unless it is reserved
 */
void nk_sockid_release(struct nk_sockid_table *t, u32 id);

/**
 * nk_sockid_remove() - free an id, whatever its state
 * @t: the table
 * @id: the id
 *
 * Return: the entry that was published under @id, or NULL.
 */
void *nk_sockid_remove(struct nk_sockid_table *t, u32 id);

/**
 * nk_sockid_get() - look an id up and take a reference to its entry
 * @t: the table
 * @id: the id
 *
 * Return: the entry, referenced with the table's hold function, or NULL
 * when @id is not published.
 */
void *nk_sockid_get(struct nk_sockid_table *t, u32 id);

/**
 * nk_sockid_find() - the first published entry at or after an id
 * @t: the table
 * @id: where to start; set to the entry's id when one is found
 *
 * For walks that stop and resume (seq_file); see the locking rules above.
 *
 * Return: the entry, or NULL when there is none.
 */
void *nk_sockid_find(struct nk_sockid_table *t, unsigned long *id);

/**
 * nk_sockid_for_each() - walk the published entries in id order
 * @t: the table
 * @id: unsigned long, the current entry's id
 * @entry: the current entry
 *
 * See the locking rules above.
 */
#define nk_sockid_for_each(t, id, entry) xa_for_each(&(t)->xa, id, entry)

static inline void nk_sockid_lock(struct nk_sockid_table *t)
{
	xa_lock(&t->xa);
}

static inline void nk_sockid_unlock(struct nk_sockid_table *t)
{
	xa_unlock(&t->xa);
}

#endif /* _NK_SOCKID_H */
