// SPDX-License-Identifier: GPL-2.0
/*
 * nsm_kernel.ko: a NetKernel network stack module (NSM) built on the
 * kernel's own TCP/IP stack.  It binds the nk device in the NSM role and
 * serves the guests' socket requests, which the host engine forwards with
 * socket ids translated, with kernel sockets; what happens on those sockets
 * goes back to the guests as events.
 *
 * The files, each calling only into the ones after it:
 *   nsm_main.c  the module and the device: attach, detach, ops->rx and
 *               ops->tx_space, the shards' request work, debugfs
 *   nsm_ops.c   the requests, validated and served; the guests' accounting
 *   nsm_sock.c  the kernel sockets: callbacks, ev_work, guest data waiting
 *               for send space, references, release and draining
 *   nsm_out.c   outgoing messages, tx_work, ev_work's throttle
 *   nsm_tenant.c  the network namespace of each guest's sockets
 *
 * Implementation notes:
 *
 * - Requests are served without blocking: every kernel socket call is
 *   non-blocking (O_NONBLOCK, MSG_DONTWAIT).  ACCEPT answers -EAGAIN when no
 *   connection waits, CONNECT -EINPROGRESS; the guest waits for the events.
 *
 * - Shards: every CPU serves.  The device has one struct nsm_shard per CPU
 *   online at attach (at most module parameter shards, when set: on a host
 *   whose vCPUs share few cores, handing a message to another vCPU can cost
 *   more than it gains), whose two works are queued on that CPU (nsm_wq is
 *   a per-CPU workqueue): rq_work serves requests, ev_work events.  A socket
 *   id belongs to shard id % nshards (nsm_shard_of()), for its whole life.
 *   ops->rx (nsm_rx(), in the transport's eventq work) only queues each
 *   message on the shard of the socket id in its header, so one socket's
 *   requests are served in eventq order, one at a time, while other
 *   sockets' are served on the other CPUs.  Within a shard each guest has
 *   its own queue (struct nsm_gq), and the guests with requests waiting
 *   take turns (nsm_rq_next(), see "Weights"), so a guest's request never
 *   waits behind another guest's backlog, only behind its turn.  A
 *   message's guest is its socket's, looked up when it is queued; a
 *   SOCKET's is the guest named in it, and until a shard has served it
 *   its id is in nsm_dev.opening, so the requests the guest pipelines
 *   behind it (NK_FEAT_PIPE) join the same queue.  What has no guest
 *   (socket 0, an id neither open nor opening) waits in the shard's other
 *   queue, which takes turns too.  A socket's messages therefore all wait
 *   in one queue (a CLOSE's socket leaves the table only when the CLOSE is
 *   served, so what follows it finds the socket, or finds it gone once
 *   nothing of it waits any more).  The rules for what is not one
 *   socket's: SOCKET goes to the shard of the id it creates; ACCEPT to its
 *   listener's, and the new socket (another shard's, maybe) is locked
 *   before it is published and until its reply is queued and its
 *   callbacks set, so a request for it that another shard takes (none
 *   should come before the reply) waits; INFO (socket 0) goes to shard 0
 *   and takes each socket's lock in turn; the engine's events and late
 *   replies go with their socket id and change nothing.  Nothing global
 *   is serialised: the socket table has its own spinlock (lib/nk_sockid.c,
 *   a reservation is one step), a guest's accounting is created once
 *   (xa_insert()) and its counters checked and charged in one atomic step,
 *   tenant lookups are RCU (nsm_tenant.c), counters are atomic.
 *   The queued messages are bounded: a bulk message the transport lends
 *   (nk_rx_skb(), one filling at least half its eventq buffer) is kept in
 *   its buffer, any other copied, and nsm_rx() waits while the shards hold
 *   rx_queue_max bytes (module parameter; a lent buffer counts its
 *   truesize), which stops the eventq, as serving in place did.  The
 *   shards never wait for the eventq, so the wait ends.
 *
 * - INFO, the engine's own request (nkctl ss), is answered by shard 0:
 *   for each NSM socket id asked, a struct nk_sock_info with the
 *   kernel socket's state, addresses, queues and tcp_info (nsm_op_info()),
 *   each socket's lock held while it is read; -EBADF in the record for an
 *   id that is not open.  NK_FEAT_INFO in HELLO says the module answers it.
 *
 * - Nothing is sent to the transport directly: replies and events wait on
 *   nsm_dev.outq, the one queue of every shard (a spinlock held for a list
 *   operation), for tx_work, which never sleeps for requestq space (see
 *   nsm_out.c); the transport puts each on its socket's queue pair.  A
 *   reply or event about a socket is queued with nsm_sock.lock held, so
 *   the guest sees them in the order they happened.
 *
 * - Queue pairs: the transport has one per CPU, and the engine gives a
 *   socket an id on the pair of the guest's pair number, so with as many
 *   shards as pairs a socket's requests arrive on the pair whose eventq
 *   work runs on its shard's CPU (id % nshards, id % pairs).
 *
 * - Socket callbacks (data_ready, write_space, state_change, error_report)
 *   only queue the socket on its shard's ready list and kick the shard's
 *   ev_work, on the shard's CPU, then call the callback they replaced.
 *   ev_work takes its shard's sockets in turn, gives each a byte budget
 *   (module parameter sock_budget) and puts it back at the tail when the
 *   budget ran out, so one busy or stalled socket never delays the others
 *   of its shard, and the other shards run on their own CPUs.  There is no
 *   thread per socket and no polling.
 *
 * - Memory is bounded by credits in both directions.  World to guest: data
 *   is read from a kernel socket only as far as the guest's credit allows
 *   (nsm_sock.tx); the rest stays in the socket's receive queue, so TCP's
 *   window closes.  A datagram larger than the guest's whole credit (its
 *   buf_alloc: a guest may announce less than the largest datagram) can
 *   never go: it is dropped and counted (dgram_drops), as UDP drops what
 *   its receive buffer cannot take, and the datagrams after it go on.
 *   Guest to world: each socket announces buf_alloc (module
 *   parameter) and keeps what the kernel socket did not take on its txq;
 *   fwd_cnt advances as the kernel takes bytes.  ev_work also stops reading
 *   while more than out_limit bytes wait for the requestq.
 *
 * - Source addresses.  SOCKET carries the guest's source addresses.  BIND
 *   to the wildcard or to one of them, and the implicit bind before
 *   CONNECT, LISTEN or an unbound datagram SEND, bind the kernel socket to
 *   the guest's address, so guests are told apart on the wire.  A guest
 *   address that is not configured on the NSM is not used: the socket is
 *   refused: BIND, LISTEN and CONNECT answer -EADDRNOTAVAIL, as Linux
 *   does for an address the host does not have.  So does a wildcard BIND
 *   when the guest has no address of the family the socket can use (an
 *   IPV6_V6ONLY socket of a guest without IPv6), and a CONNECT or
 *   datagram SEND to a family the guest has no address of answers
 *   -ENETUNREACH.  Never the wildcard instead: it would be the NSM's own
 *   addresses and every other guest's, so the socket would hear their
 *   traffic.  source_unavailable counts these, with a rate-limited log.
 *   BIND to any other address answers -EADDRNOTAVAIL.  A guest that bound
 *   to the wildcard sees the wildcard in GETSOCKNAME until it connects.
 *   A datagram socket's implicit bind is to the wildcard, as in UDP.
 *   A stream socket's implicit bind before CONNECT is to the address
 *   only (IP_BIND_ADDRESS_NO_PORT): connect() picks the port, unique for
 *   the four-tuple, as for an unbound socket in Linux.  A port bound
 *   first would be held against every destination for as long as its
 *   TIME_WAIT lasts.
 *   A dual-stack AF_INET6 socket bound to the wildcard is bound to the
 *   guest's IPv4 address; when the guest also has an IPv6 address here, a
 *   second kernel socket (nsm_sock.sock6, IPV6_V6ONLY, same port) serves
 *   IPv6, so it is reachable over both as in Linux: a stream socket gets
 *   it at LISTEN (ACCEPT takes from both), a datagram socket at bind
 *   (datagrams are read from both, IPv6 destinations are sent from it,
 *   and a CONNECT to an IPv6 peer connects it; a connected one's other
 *   socket then drops what it hears, as connected UDP filters).  The
 *   second socket takes the options the guest set before it was made,
 *   and options set later go to both (the first socket's answer counts).
 *
 * - Destinations.  CONNECT and datagram SEND to a loopback or unspecified
 *   address answer -ENETUNREACH, to an address of the NSM itself (which
 *   includes other guests' addresses configured here) -EADDRNOTAVAIL, so a
 *   guest reaches neither the NSM's services nor another tenant's.  But
 *   the engine may mark a CONNECT or SEND NK_F_PEER (NK_FEAT_PEER): its
 *   destination is the address of guest a3, one the sender may reach
 *   (the engine's policy, hostengine.rst "Guests through their NSM"); it
 *   goes through the NSM's own stack (its loopback) when that guest's
 *   sockets live in the sender's namespace (nsm_tenant_is()), else it is
 *   refused as above.  So do
 *   link-local destinations, -ENETUNREACH: 169.254.0.0/16 and IPv6
 *   addresses that need a scope id (fe80::/10, link- and interface-local
 *   multicast), whatever scope id the guest gave: those links are the
 *   NSM's, not the guest's (a scope id on other addresses is ignored, as
 *   Linux does).  An IPv4 broadcast destination (255.255.255.255, the
 *   NSM's subnet broadcasts: inet_addr_type() RTN_BROADCAST) answers
 *   -EACCES, what Linux answers without SO_BROADCAST: the NSM's own UDP
 *   services would hear it.  SO_BROADCAST is still accepted (and read
 *   back), it just never lets a broadcast through.  dest_refused counts
 *   all of these.  Datagram sockets are created with multicast loopback
 *   off.
 *
 * - Ancillary data.  A datagram socket the engine marked NK_SOCK_ANC (its
 *   guest agreed NK_FEAT_ANC) has the options that ask for control
 *   messages or an error queue applied, not only kept (nsm_ops.c).  Its
 *   datagrams are read with a control buffer and sent with the control
 *   messages in a struct nk_anc (nsm_sock.c); its error queue is read
 *   first (MSG_ERRQUEUE), each entry an EV_DATA of its own with the
 *   error in the nk_anc, within the guest's credit like data, so an error
 *   queue never holds more than the kernel socket lets it.
 *
 * - Options.  A guest's options (the levels it forwards) are applied with
 *   the credentials of a process that has no capability (nsm_ops.c,
 *   nsm_guest_cred), whatever the NSM's: the kernel answers them as it
 *   answers an unprivileged native process.  Those that name an
 *   interface reach the kernel socket only to say "none" (or the guest's
 *   own address), multicast groups never do, and those that would act
 *   outside the guest's tenancy are refused
 *   (Documentation/netkernel/sockopts.rst).
 * - Urgent data.  A stream socket the engine marked NK_SOCK_URG (its guest
 *   agreed NK_FEAT_URG; an accepted one its listener's) keeps SO_OOBINLINE
 *   on its kernel socket whatever the guest sets, so the urgent byte stays
 *   in the stream and tcp_inq() counts the bytes after it.  ev_work takes
 *   the byte when tcp_urg() has it (urg_data TCP_URG_VALID, set to
 *   TCP_URG_READ as recv(MSG_OOB) does) and sends EV_URG with the byte's
 *   stream sequence number once the bytes before it are sent and before
 *   the EV_DATA that carries it (a native reader woken by urgent data has
 *   the bytes before the mark to read); the guest
 *   skips it or not (nsm_sock.c, nk_af.c).  Other sockets keep the
 *   guest's SO_OOBINLINE; without it, at a mark whose byte has arrived,
 *   ev_work reads on and tcp_recvmsg() skips the byte, as for a native
 *   reader (nsm_stream_inq()): the stream never stops at the mark.
 *
 * - Owners.  Each guest's kernel sockets belong to a uid of their own,
 *   1000000000 + the guest's endpoint id (socket inode and sk_uid; guest
 *   ids from 2^24 up are refused), so SO_REUSEPORT, which only groups
 *   sockets of one uid, never joins two guests' sockets or a guest's and
 *   the NSM's own (root's).  It shows in /proc/net/tcp and in uid routing
 *   rules of the NSM.
 *
 * - Tenants.  A guest's kernel sockets are made in the network namespace
 *   the NSM's operator gave it through /proc/net/nsm_tenants, else in the
 *   NSM's (netns_pid); each socket holds a reference to its namespace
 *   (nsm_tenant.c).
 *
 * - CLOSE frees the id at once.  A stream socket whose txq still holds
 *   guest data keeps draining it (nsm_dev.draining) and is released when it
 *   is empty or fails, or reset when drain_timeout (module parameter,
 *   seconds) passes first (drain_timeouts), as TCP gives up on an orphan
 *   whose peer keeps a zero window.  Once released, what TCP still holds
 *   is an ordinary orphan, bounded by tcp_max_orphans, tcp_orphan_retries
 *   and tcp_mem.  SO_LINGER with a zero timeout gives an abortive
 *   close (RST); with a non-zero timeout the close is the ordinary graceful
 *   one, since nobody in the NSM may wait for it: the guest's close() is
 *   where lingering can block.
 *
 * - Limits, per guest (struct nsm_guest; debugfs "guests" shows them).  A
 *   guest has at most guest_max_socks kernel sockets, draining ones
 *   included: SOCKET and ACCEPT beyond answer -ENFILE, the "too many open
 *   files in the system" of the guest's share of the NSM (the connection
 *   stays queued, as when accept() fails so); guest_sock_limit counts them,
 *   and each guest's sock_limit in "guests".  The host engine has its own
 *   per-guest max_sockets (-EMFILE, the guest's own limit): this one holds
 *   even if the host does not.  The txqs are charged through the credit
 *   that bounds them: a socket's buf_alloc is the most guest data its txq
 *   can hold, and a guest's sockets announce at most guest_txq_max in all;
 *   a socket created beyond gets what is left, at least one message
 *   (max_payload, which a datagram needs), counted in credit_cut.  So one
 *   guest's txqs hold at most guest_txq_max plus max_payload per socket (by
 *   default 64 MiB + 1024 * 64 KiB).  At most guest_max_draining of a
 *   guest's closed sockets drain; a CLOSE beyond resets the connection
 *   (drain_aborts), as Linux resets orphans beyond tcp_max_orphans.  A
 *   connect, fill, close loop therefore holds a bounded number of sockets
 *   and bytes on the NSM.
 *
 * - Weights.  This module's CPU is where guests sharing it contend, so
 *   each guest's share of it follows its weight (hostengine.rst,
 *   "Sharing an NSM"), which the engine gives in SOCKET a3 bits 16..25
 *   (NK_FEAT_WEIGHT; 1..NK_WEIGHT_MAX, else -EINVAL; nk_sock_weight()).
 *   struct nsm_guest keeps the latest SOCKET's (1 until one says), so a
 *   changed weight counts from the guest's next socket.  Three places
 *   use it:
 *   - a guest's request queue serves up to weight requests in a row
 *     before the next queue's turn, so guests with requests waiting get
 *     them served in the ratio of their weights, and a guest with few (a
 *     request-response client) finds the others' turns ahead of its
 *     request, not their backlogs;
 *   - ev_work reads sock_budget * weight bytes from a socket before it
 *     turns to the next, so guests whose sockets all have data get the
 *     reading in that ratio;
 *   - a new socket announces buf_alloc * weight of credit (at most
 *     NK_CREDIT_MAX, then cut to guest_txq_max as above), since a
 *     stream's share of its guest's turns is what its credit lets it
 *     have in flight;
 *   - a lighter guest's streams get receive buffers for their share
 *     while a heavier guest's streams compete (see "Receive buffers").
 *   The engine, for its part, lets each guest have only its weight's share
 *   of the messages waiting in this module's eventq.  Weight 1 keeps the
 *   module parameters' values.
 *
 * - Receive buffers.  World to guest, ev_work's reading by weight is not
 *   where the streams contend: softirq takes every stream's segments before
 *   any work runs, and a world peer sends as much as its stream's receive
 *   buffer (autotuned up to tcp_rmem[2]) lets it have queued and in flight.
 *   Whenever a heavier stream's queue runs dry for a moment, ev_work reads
 *   the lighter stream's deep queue, its window opens, and its peer's
 *   segments take the CPU the heavier stream's would have had: at 1:3 the
 *   heavier guest got 1.8 times the lighter one's throughput, whatever the
 *   turns.  So while ev_work cuts short (more to read than its turn) the
 *   streams of a guest heavier than a stream's, that stream's receive
 *   buffer follows its share: once per period (NSM_SHARED_TIME) it shrinks
 *   by an eighth when ev_work read more than 1.05 times its weight's share
 *   of the last period's reading (among the streams read then), and grows
 *   by a seventh, up to the buffer it had, below 0.95 times
 *   (nsm_rcvbuf_share(); debugfs stats rcvbuf_cuts counts the shrinking,
 *   debugfs sockets shows each buffer).  The heaviest guest's streams keep
 *   their buffers, and a stream gets its buffer back as soon as no heavier
 *   stream competes; a shard that serves equal weights changes nothing.
 *   TCP does not drop what it already let in for a smaller buffer (short of
 *   its memory pressure): tcp_clamp_window() raises the buffer to what is
 *   queued as segments come, and the window stays closed until the queue is
 *   below it.  A buffer the guest set (SO_RCVBUF) is left alone, and the
 *   guest's application does not see the change (the guest answers
 *   SO_RCVBUF itself).  Module parameter rcvbuf_share (default on) turns it
 *   off.  Shares are per shard: guests whose streams are served on
 *   different CPUs do not compete here.
 *
 * - Slices.  The turns above order what waits in one work; but the works
 *   of a CPU (rq_work, ev_work, tx_work, the transport's eventq work) wait
 *   for each other first come first served, each running its batch, and
 *   a request crosses all four.  Behind another guest's flood of small
 *   requests, the request of a guest with one in flight waits longest for
 *   the eventq work, which cannot run while rq_work serves a batch of the
 *   flood's (64 requests, over a millisecond).  With rq_slice_us set
 *   (module parameter, default 0: off), a shard that served two guests'
 *   requests within NSM_SHARED_TIME (20 ms) ends rq_work's run after that
 *   long while only one guest's requests wait and some guest is light
 *   (nsm_dev.light: it used under a quarter of its share, see "Sparse
 *   guests"), so the eventq work can bring the light guest's in
 *   (nsm_rq_slice_over(); debugfs stats rq_slices counts such runs).
 *   Only then: sliced whenever two guests shared a CPU, the lighter of
 *   two streams had its requests served sooner too, and guest to world at
 *   1:3 shared 0.86 of the weights instead of 0.93 (performance.rst,
 *   "Sharing one NSM").  It is off by default because a bulk guest beside
 *   a light one pays for it (15% of its throughput in the lab).  A CPU
 *   that serves one guest never slices: there is nobody to let in, and
 *   slices of every work cost a single guest's bulk transfers 12 to 16%
 *   when they were tried.
 *
 * - Sparse guests.  Turns and slices order what waits in one work, but a
 *   guest with one request in flight beside another's flood still waits
 *   for each of the saturated CPU's works in turn.  So a guest that uses
 *   little of the NSM gets its work done on high-priority works (nsm_hiwq,
 *   WQ_HIGHPRI: nice -20 kworkers, which the CPU's normal ones yield to),
 *   a lane of its own in each place its work waits: its requests
 *   (rq_hi_work, with per-guest turns as in rq_work), its sockets
 *   (ev_hi_work) and its replies and events (tx_hi_work).  Every work
 *   counts the CPU time it spends for each guest (nsm_guest_used()); a
 *   guest that used less than a quarter of its weight's share of their
 *   time in two periods of NSM_SHARED_TIME in a row, each with the works
 *   keeping the CPUs busy a quarter of it or more, is light, its work
 *   sparse, for the next period, and the others are not; it stays so
 *   while it uses less than its whole share in each such period (debugfs
 *   stats light_ends counts the ends), because the time a work
 *   measures includes whatever ran meanwhile: softirqs (the flood's
 *   packets), interrupts, the host's own preemption of the vCPU (a
 *   sparse guest's work runs at once, and was charged 0.4 to 0.8 of its
 *   share so, which put it out of the lane every third period).
 *   While the works are not that busy, no guest is (nsm_use_period();
 *   debugfs guests shows the flag and the requests each guest had served
 *   in the lane, stats sparse_requests the total).  A flood, a bulk
 *   stream at its share, or a guest alone is never sparse on a busy NSM,
 *   so the lane cannot be taken to get more than a share.  One guest's
 *   work stays in order across the lanes: its requests take the lane
 *   only while its other queue on the shard is idle, and that queue waits
 *   while the lane holds requests of the guest; its messages take
 *   tx_hi_work's queue only while none of its messages is in tx_work's,
 *   and the other way round; a socket is on one ready list at a time, and
 *   its lock orders the works that look at it.  Replies without a socket
 *   (an unknown id, a closed socket's CLOSE) go through tx_work.  The
 *   transport's eventq work, which every guest's messages share in
 *   order, runs at normal priority unless module parameter eventq_hipri
 *   (default off) is set: then on the high-priority pool for each period
 *   in which some guest is light (nk_dev_set_rx_hipri(); debugfs stats
 *   eventq_hi_periods).  It takes a flooded light guest's p50 from about
 *   5 to 1.5 times its alone figure, but costs a bulk guest beside a
 *   light one about 40% of its throughput: every kick of the bulk guest's
 *   SENDs preempts its own rq_work (performance.rst).
 *   Module parameter sparse_lanes (default on) turns the lanes off.
 *
 * - The device going away (ops->detach: remove, a lost session's restart,
 *   module unload) stops every shard (the requests still queued are
 *   dropped, rq_work and ev_work cancelled and never queued again), restores
 *   every socket's callbacks, releases every kernel socket, frees what
 *   waits for the requestq, flushes tx_work and frees the struct nsm_dev.
 *   The transport has already marked the device dead (tx_work's nk_send()
 *   returns -ENODEV at once, ops->tx_space() is not called any more) and
 *   stopped ops->rx, so nothing else uses the nsm_dev.
 *
 * Locking (each lock's rules at the top of the file that owns it):
 *   nsm_shard.rq_lock (spin)    a shard's request queues (struct nsm_gq)
 *                               in both lanes, their turns, rq_stop and
 *                               whether the shard is shared (here); held
 *                               for a list operation, never with another
 *                               lock
 *   nsm_dev.use_lock (spin)     ends a period of the guests' use; only
 *                               tried (nsm_use_period()), never waited on
 *   nsm_shard.ev_period_lock (spin)  the event works' periods (nsm_sock.c)
 *   nsm_dev.opening (spin)      its xa_lock, inside the xarray calls only
 *   socket table (spin)         lib/nk_sockid.c's xa_lock, held only inside
 *                               its calls, and by the debugfs socket list
 *                               to take a reference (nsm_sock_hold())
 *   nsm_sock.lock (mutex)       one socket's state, its txq and credits, and
 *                               every call on its kernel socket
 *   sk->sk_callback_lock (rw)   sk_user_data and the callbacks
 *   nsm_shard.ready_lock (spin, _bh)  a shard's ready list (nsm_sock.c)
 *   nsm_dev.drain_lock (spin)   the draining list and drain_work's timer
 *                               (nsm_sock.c)
 *   nsm_guest counters (atomic) grow by a check-and-add in one step
 *                               (cmpxchg), shrink under the socket's lock
 *   nsm_dev.out_lock (spin)     the outgoing queue (nsm_out.c)
 *   nsm_tenant_lock (mutex)     the tenant table's changes (nsm_tenant.c);
 *                               SOCKET's lookup is RCU and takes nothing
 * Order: nsm_sock.lock (a listener's before its new socket's) -> lock_sock
 * -> sk_callback_lock -> ready_lock; drain_lock and out_lock nest inside
 * nsm_sock.lock and take nothing.  No lock of the device is held while a
 * request is served: shards run at once, each holding one socket's lock
 * (two for ACCEPT).  drain_work takes a reference under drain_lock, drops
 * it, then takes the socket's lock and checks the socket is still
 * draining.  Socket callbacks run in softirq context and take only
 * sk_callback_lock (read) and ready_lock.  No lock is held across
 * nk_send(); nsm_rx() sleeps (rx_queue_max) with none held.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/nsproxy.h>
#include <linux/sched/clock.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "../include/netkernel/nk_version.h"
#include "nsm.h"

static int netns_pid;
module_param(netns_pid, int, 0444);
MODULE_PARM_DESC(netns_pid,
		 "Serve sockets in the network namespace of this process (default 0: the initial namespace)");

static unsigned int rx_queue_max = 4 << 20;
module_param(rx_queue_max, uint, 0644);
MODULE_PARM_DESC(rx_queue_max,
		 "Bytes of requests waiting for the shards at which the eventq is not read (default 4 MiB)");

static unsigned int shards;
module_param(shards, uint, 0444);
MODULE_PARM_DESC(shards,
		 "CPUs that serve requests and events, each a shard of the sockets (default 0: every CPU online at attach)");

static unsigned int rq_slice_us;
module_param(rq_slice_us, uint, 0644);
MODULE_PARM_DESC(rq_slice_us,
		 "Microseconds rq_work serves while one guest's requests wait on a CPU that two guests share and a guest is light, before the CPU's other work has a turn (default 0: no limit)");

static bool sparse_lanes = true;
module_param(sparse_lanes, bool, 0644);
MODULE_PARM_DESC(sparse_lanes,
		 "Serve the work of guests that use less than a quarter of their weight's share of a busy NSM on high-priority works (default on)");

static bool eventq_hipri;
module_param(eventq_hipri, bool, 0644);
MODULE_PARM_DESC(eventq_hipri,
		 "Serve the eventq on high-priority works while a guest is light, from the next period (default off)");

static struct dentry *nsm_debugfs_root;

/* Requests a shard serves before it requeues its work. */
#define NSM_RQ_BATCH	64

/*
 * One request waiting for its shard: the eventq buffer itself (@skb, lent
 * by nk_rx_skb()) or a copy of the message in @copy.
 */
struct nsm_rxmsg {
	struct list_head node;		/* in @q->reqs */
	struct nsm_gq *q;		/* its guest's queue, or the shard's other */
	bool opening;			/* a SOCKET whose id is in nsm_dev.opening */
	struct sk_buff *skb;
	const struct nk_hdr *hdr;	/* the header; the payload follows it */
	u32 size;			/* charged to nsm_dev.rx_queued */
	struct nk_hdr copy[];
};

/* ------------------------------------------------------------------ */
/* debugfs                                                             */
/* ------------------------------------------------------------------ */

static const char * const nsm_stat_names[NSM_S_NR] = {
	[NSM_S_REQUESTS]	= "requests",
	[NSM_S_REPLIES]		= "replies",
	[NSM_S_ERROR_REPLIES]	= "error_replies",
	[NSM_S_INVALID]		= "invalid",
	[NSM_S_EVENTS]		= "events",
	[NSM_S_BYTES_FROM_GUESTS] = "bytes_from_guests",
	[NSM_S_BYTES_TO_GUESTS]	= "bytes_to_guests",
	[NSM_S_DGRAM_DROPS]	= "dgram_drops",
	[NSM_S_SOCKETS_OPENED]	= "sockets_opened",
	[NSM_S_SOCKETS_CLOSED]	= "sockets_closed",
	[NSM_S_XMIT_FAILED]	= "xmit_failed",
	[NSM_S_THROTTLED]	= "throttled",
	[NSM_S_ENGINE_ERRORS]	= "engine_errors",
	[NSM_S_SRC_UNAVAIL]	= "source_unavailable",
	[NSM_S_DEST_REFUSED]	= "dest_refused",
	[NSM_S_SOCK_LIMIT]	= "guest_sock_limit",
	[NSM_S_CREDIT_CUT]	= "credit_cut",
	[NSM_S_DRAIN_ABORTS]	= "drain_aborts",
	[NSM_S_DRAIN_TIMEOUTS]	= "drain_timeouts",
	[NSM_S_TX_RING_FULL]	= "tx_ring_full",
	[NSM_S_RQ_SLICES]	= "rq_slices",
	[NSM_S_RCVBUF_CUTS]	= "rcvbuf_cuts",
	[NSM_S_SPARSE]		= "sparse_requests",
	[NSM_S_LIGHT_ENDS]	= "light_ends",
	[NSM_S_EVQ_HI_PERIODS]	= "eventq_hi_periods",
};

static int nsm_stats_show(struct seq_file *m, void *v)
{
	struct nsm_dev *nsm = m->private;
	int i;

	for (i = 0; i < NSM_S_NR; i++)
		seq_printf(m, "%s %lld\n", nsm_stat_names[i],
			   atomic64_read(&nsm->stats[i]));
	seq_printf(m, "sockets %d\n", atomic_read(&nsm->nsocks));
	seq_printf(m, "out_bytes %zu\n", READ_ONCE(nsm->out_bytes));
	seq_printf(m, "rx_queued %d\n", atomic_read(&nsm->rx_queued));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nsm_stats);

static int nsm_shards_show(struct seq_file *m, void *v)
{
	struct nsm_dev *nsm = m->private;
	struct nsm_shard *sh;
	unsigned int i;

	seq_puts(m, "shard cpu requests processed\n");
	for (i = 0; i < nsm->nshards; i++) {
		sh = &nsm->shards[i];
		seq_printf(m, "%u %d %lld %lld\n", i, sh->cpu,
			   (long long)atomic64_read(&sh->requests),
			   (long long)atomic64_read(&sh->processed));
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nsm_shards);

static int nsm_guests_show(struct seq_file *m, void *v)
{
	struct nsm_dev *nsm = m->private;
	struct nsm_guest *g;
	unsigned long id;

	seq_puts(m, "guest uid sockets draining credit sock_limit weight sparse sparse_requests\n");
	xa_for_each(&nsm->guests, id, g)
		seq_printf(m, "%u %u %d %d %ld %lld %u %d %lld\n", g->id,
			   from_kuid_munged(&init_user_ns, g->uid),
			   atomic_read(&g->socks), atomic_read(&g->draining),
			   atomic_long_read(&g->credit),
			   (long long)atomic64_read(&g->sock_limit),
			   READ_ONCE(g->weight), READ_ONCE(g->sparse),
			   (long long)atomic64_read(&g->sparse_reqs));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nsm_guests);

static int nsm_sockets_show(struct seq_file *m, void *v)
{
	struct nsm_dev *nsm = m->private;
	struct nsm_sock *ns;
	unsigned long id = 0;

	seq_puts(m, "id guest family type state bytes_in bytes_out txq rx_buf_alloc rx_fwd_cnt tx_cnt peer_buf_alloc peer_fwd_cnt rcvbuf\n");
	/* Each socket referenced under the table lock, then read locked. */
	for (;;) {
		nk_sockid_lock(&nsm->socks);
		ns = nk_sockid_find(&nsm->socks, &id);
		if (ns)
			nsm_sock_hold(ns);
		nk_sockid_unlock(&nsm->socks);
		if (!ns)
			break;
		mutex_lock(&ns->lock);
		seq_printf(m, "%u %u %d %d %u %llu %llu %u %u %u %u %u %u %d\n",
			   ns->id, ns->guest, ns->family, ns->type,
			   ns->sock ? ns->sock->sk->sk_state : 0,
			   ns->bytes_in, ns->bytes_out, ns->txq_bytes,
			   ns->rx.buf_alloc, ns->rx.fwd_cnt, ns->tx.tx_cnt,
			   ns->tx.peer_buf_alloc, ns->tx.peer_fwd_cnt,
			   ns->sock ? READ_ONCE(ns->sock->sk->sk_rcvbuf) : 0);
		mutex_unlock(&ns->lock);
		nsm_sock_put(ns);
		if (id >= U32_MAX)
			break;
		id++;
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nsm_sockets);

/* ------------------------------------------------------------------ */
/* Shards                                                              */
/* ------------------------------------------------------------------ */

static void nsm_rxmsg_free(struct nsm_dev *nsm, struct nsm_rxmsg *m)
{
	atomic_sub(m->size, &nsm->rx_queued);
	/* Pairs with wait_event_idle() in nsm_rx(). */
	if (wq_has_sleeper(&nsm->rx_wait))
		wake_up(&nsm->rx_wait);
	consume_skb(m->skb);
	kvfree(m);
}

/*
 * The message being dispatched, kept for a shard: a bulk one (SEND) in
 * its own eventq buffer when the transport lends it, else copied.
 */
static struct nsm_rxmsg *nsm_rxmsg_new(struct nk_dev *nd,
				       const struct nk_hdr *hdr)
{
	u32 len = sizeof(*hdr) + le32_to_cpu(hdr->len);
	struct sk_buff *skb = nk_rx_skb(nd, hdr, hdr, len);
	struct nsm_rxmsg *m;

	if (skb) {
		m = kmalloc(sizeof(*m), GFP_KERNEL);
		if (!m) {
			kfree_skb(skb);
			return NULL;
		}
		m->skb = skb;
		m->hdr = hdr;
		m->size = sizeof(*m) + skb->truesize;
		return m;
	}
	m = kvmalloc(sizeof(*m) + len, GFP_KERNEL);
	if (!m)
		return NULL;
	memcpy(m->copy, hdr, len);
	m->skb = NULL;
	m->hdr = m->copy;
	m->size = sizeof(*m) + len;
	return m;
}

/* Queue @m on @sh, its guest's queue taking a turn if it had none (rq_lock held). */
static void nsm_rq_add(struct nsm_shard *sh, struct nsm_rxmsg *m)
{
	struct nsm_gq *q = m->q;

	lockdep_assert_held(&sh->rq_lock);
	if (list_empty(&q->reqs)) {
		q->served = 0;
		list_add_tail(&q->node, q->hi ? &sh->active_hi : &sh->active);
	}
	list_add_tail(&m->node, &q->reqs);
}

/* Whether @q's guest has requests in @sh's sparse lane (rq_lock held). */
static bool nsm_gq_hi_busy(struct nsm_shard *sh, struct nsm_gq *q)
{
	struct nsm_gq *hq;

	if (!q->g)
		return false;
	hq = nsm_gq_of(sh->nsm, q->g, sh, true);
	return !list_empty(&hq->reqs) || hq->busy;
}

/*
 * The next request @sh serves (rq_lock held): the queues with requests
 * take turns, each serving up to its guest's weight in a row (the other
 * queue one), so a guest's request waits for at most the weights of the
 * others' queues, however many requests they hold.
 */
static struct nsm_rxmsg *nsm_rq_next(struct nsm_shard *sh, bool hi)
{
	struct list_head *active = hi ? &sh->active_hi : &sh->active;
	struct nsm_rxmsg *m;
	struct nsm_gq *q;

	lockdep_assert_held(&sh->rq_lock);
	if (sh->rq_stop)
		return NULL;
	/* A queue waits while its guest's sparse lane has requests. */
	list_for_each_entry(q, active, node)
		if (hi || !nsm_gq_hi_busy(sh, q))
			goto found;
	return NULL;
found:
	m = list_first_entry(&q->reqs, struct nsm_rxmsg, node);
	list_del(&m->node);
	q->busy = true;
	if (q->g && q->g->id != sh->last_guest) {
		sh->last_guest = q->g->id;
		sh->shared_until = jiffies + NSM_SHARED_TIME;
	}
	if (list_empty(&q->reqs)) {
		list_del_init(&q->node);
	} else if (++q->served >= (q->g ? READ_ONCE(q->g->weight) : 1)) {
		q->served = 0;
		list_move_tail(&q->node, active);
	}
	return m;
}

/*
 * Whether rq_work, running since @start (local_clock()), ends its run
 * here to let its CPU's other work in (rq_lock held): see "Slices".
 */
static bool nsm_rq_slice_over(const struct nsm_shard *sh, bool hi,
			       u64 start)
{
	u64 us = READ_ONCE(rq_slice_us);

	lockdep_assert_held(&sh->rq_lock);
	return us && list_is_singular(hi ? &sh->active_hi : &sh->active) &&
	       time_before(jiffies, sh->shared_until) &&
	       READ_ONCE(sh->nsm->light) &&
	       local_clock() - start > us * NSEC_PER_USEC;
}

/*
 * End the guests' period of use once it is NSM_SHARED_TIME old (one CPU
 * at a time; the others go on).  A guest that used less than a quarter
 * of its weight's share of the works' time, in this period and the one
 * before, while the works kept the NSM's CPUs busy a quarter of each or
 * more, is sparse for the next period, and stays so while it uses less
 * than its share; the others are not (a guest alone has its whole share).
 * While the works are not busy, nobody waits for long and no guest is.
 */
static void nsm_use_period(struct nsm_dev *nsm)
{
	unsigned long now = jiffies;
	struct nsm_guest *g;
	unsigned long id;
	u64 total = 0, len;
	u32 wsum = 0;
	bool busy, evq_hi, light = false;

	if (time_before(now, READ_ONCE(nsm->use_start) + NSM_SHARED_TIME) ||
	    !spin_trylock(&nsm->use_lock))
		return;
	if (time_before(now, nsm->use_start + NSM_SHARED_TIME))
		goto out;
	len = jiffies_to_nsecs(now - nsm->use_start);
	WRITE_ONCE(nsm->use_start, now);
	xa_for_each(&nsm->guests, id, g) {
		g->use_last = atomic64_xchg(&g->use_ns, 0);
		total += g->use_last;
		if (g->use_last)
			wsum += READ_ONCE(g->weight);
	}
	busy = total * 4 >= len * nsm->nshards;
	xa_for_each(&nsm->guests, id, g) {
		u64 share = total * READ_ONCE(g->weight);

		if (busy && g->use_last * wsum * 4 < share) {
			g->under = min(g->under + 1, 2);
		} else if (g->under < 2 || !busy ||
			   g->use_last * wsum >= share) {
			if (g->under == 2)
				nsm_count(nsm, NSM_S_LIGHT_ENDS, 1);
			g->under = 0;
		}
		light |= g->under == 2;
		WRITE_ONCE(g->sparse, g->under == 2 && READ_ONCE(sparse_lanes));
	}
	WRITE_ONCE(nsm->light, light);
	evq_hi = light && READ_ONCE(eventq_hipri);
	nk_dev_set_rx_hipri(nsm->nd, evq_hi);
	if (evq_hi)
		nsm_count(nsm, NSM_S_EVQ_HI_PERIODS, 1);
out:
	spin_unlock(&nsm->use_lock);
}

/**
 * nsm_guest_used() - count CPU time spent for a guest
 * @nsm: the device
 * @g: the guest, or NULL (nobody's)
 * @ns: nanoseconds
 *
 * Called by the works after each request and socket they served.
 */
void nsm_guest_used(struct nsm_dev *nsm, struct nsm_guest *g, u64 ns)
{
	if (g)
		atomic64_add(ns, &g->use_ns);
	nsm_use_period(nsm);
}

/* Serve @m, charging its guest for the time (see "Sparse guests"). */
static void nsm_rq_serve(struct nsm_shard *sh, struct nsm_rxmsg *m)
{
	struct nsm_dev *nsm = sh->nsm;
	u64 t0 = local_clock();

	nsm_request(nsm, m->hdr, m->hdr + 1);
	if (m->opening) {
		/* Pairs with smp_rmb() in nsm_rx_guest(). */
		smp_wmb();
		xa_cmpxchg(&nsm->opening, le32_to_cpu(m->hdr->sock),
			   m->q->g, NULL, 0);
	}
	nsm_guest_used(nsm, m->q->g, local_clock() - t0);
	atomic64_inc(&sh->requests);
}

/* Have @sh's request work of one lane run. */
static void nsm_rq_queue(struct nsm_shard *sh, bool hi)
{
	if (hi)
		queue_work_on(sh->cpu, nsm_hiwq, &sh->rq_hi_work);
	else
		queue_work_on(sh->cpu, nsm_wq, &sh->rq_work);
}

/*
 * Serve @sh's requests in one lane, by turns, NSM_RQ_BATCH at most; a
 * sparse lane's queue that runs empty lets its guest's other queue go on.
 */
static void nsm_rq_run(struct nsm_shard *sh, bool hi)
{
	struct nsm_dev *nsm = sh->nsm;
	u64 start = local_clock();
	struct nsm_rxmsg *m;
	struct nsm_gq *q;
	unsigned int n;
	bool resume;

	for (n = 0; n < NSM_RQ_BATCH; n++) {
		spin_lock(&sh->rq_lock);
		if (n && nsm_rq_slice_over(sh, hi, start)) {
			spin_unlock(&sh->rq_lock);
			nsm_count(nsm, NSM_S_RQ_SLICES, 1);
			break;
		}
		m = nsm_rq_next(sh, hi);
		spin_unlock(&sh->rq_lock);
		if (!m)
			return;
		q = m->q;
		nsm_rq_serve(sh, m);
		if (hi) {
			nsm_count(nsm, NSM_S_SPARSE, 1);
			atomic64_inc(&q->g->sparse_reqs);
		}
		spin_lock(&sh->rq_lock);
		q->busy = false;
		resume = hi && list_empty(&q->reqs) &&
			 !list_empty(&nsm_gq_of(nsm, q->g, sh, false)->reqs);
		spin_unlock(&sh->rq_lock);
		if (resume)
			nsm_rq_queue(sh, false);
		nsm_rxmsg_free(nsm, m);
		cond_resched();
	}
	nsm_rq_queue(sh, hi);
}

static void nsm_rq_work(struct work_struct *work)
{
	nsm_rq_run(container_of(work, struct nsm_shard, rq_work), false);
}

static void nsm_rq_hi_work(struct work_struct *work)
{
	nsm_rq_run(container_of(work, struct nsm_shard, rq_hi_work), true);
}

/*
 * The queue of @g on @sh for its next request (rq_lock held): the sparse
 * lane's while @g is sparse and its other queue is idle, or while its
 * requests are in the sparse lane already and it is still sparse; else
 * the other, which waits for the sparse lane's.  Either way @g's requests
 * are served in order.
 */
static struct nsm_gq *nsm_rq_lane(struct nsm_shard *sh, struct nsm_guest *g)
{
	struct nsm_gq *lo = nsm_gq_of(sh->nsm, g, sh, false);
	struct nsm_gq *hi = nsm_gq_of(sh->nsm, g, sh, true);

	lockdep_assert_held(&sh->rq_lock);
	if (!READ_ONCE(g->sparse))
		return lo;
	if (!list_empty(&hi->reqs) || hi->busy ||
	    (list_empty(&lo->reqs) && !lo->busy))
		return hi;
	return lo;
}

/*
 * One shard per online CPU (at most module parameter shards), each with
 * its works bound to that CPU.
 */
static int nsm_shards_init(struct nsm_dev *nsm)
{
	struct nsm_shard *sh;
	unsigned int i = 0;
	int cpu;

	nsm->nshards = max(num_online_cpus(), 1U);
	if (shards)
		nsm->nshards = min(nsm->nshards, shards);
	nsm->shards = kcalloc(nsm->nshards, sizeof(*sh), GFP_KERNEL);
	if (!nsm->shards)
		return -ENOMEM;
	for_each_online_cpu(cpu) {
		if (i == nsm->nshards)
			break;
		nsm->shards[i++].cpu = cpu;
	}
	/* A CPU that went offline meanwhile: its works run elsewhere. */
	for (; i < nsm->nshards; i++)
		nsm->shards[i].cpu = raw_smp_processor_id();
	for (i = 0; i < nsm->nshards; i++) {
		sh = &nsm->shards[i];
		sh->nsm = nsm;
		spin_lock_init(&sh->rq_lock);
		INIT_LIST_HEAD(&sh->active);
		INIT_LIST_HEAD(&sh->other.reqs);
		INIT_LIST_HEAD(&sh->other.node);
		sh->shared_until = jiffies;
		INIT_WORK(&sh->rq_work, nsm_rq_work);
		INIT_LIST_HEAD(&sh->active_hi);
		INIT_WORK(&sh->rq_hi_work, nsm_rq_hi_work);
		spin_lock_init(&sh->ready_lock);
		INIT_LIST_HEAD(&sh->ready);
		INIT_WORK(&sh->ev_work, nsm_ev_work);
		INIT_LIST_HEAD(&sh->ready_hi);
		INIT_WORK(&sh->ev_hi_work, nsm_ev_hi_work);
		spin_lock_init(&sh->ev_period_lock);
		atomic64_set(&sh->requests, 0);
		atomic64_set(&sh->processed, 0);
	}
	return 0;
}

/*
 * Stop every shard: the requests still waiting are dropped (the device is
 * gone), and no socket is queued for events any more.  ops->rx has
 * stopped, so nothing is added to the request lists.
 */
static void nsm_shards_stop(struct nsm_dev *nsm)
{
	struct nsm_rxmsg *m, *mtmp;
	struct nsm_sock *ns, *tmp;
	struct nsm_shard *sh;
	struct nsm_gq *q;
	LIST_HEAD(reqs);
	LIST_HEAD(list);
	unsigned int i;

	for (i = 0; i < nsm->nshards; i++) {
		sh = &nsm->shards[i];
		spin_lock(&sh->rq_lock);
		sh->rq_stop = true;
		list_splice_init(&sh->active_hi, &sh->active);
		while ((q = list_first_entry_or_null(&sh->active,
						     struct nsm_gq, node))) {
			list_splice_tail_init(&q->reqs, &reqs);
			list_del_init(&q->node);
		}
		spin_unlock(&sh->rq_lock);
		cancel_work_sync(&sh->rq_work);
		cancel_work_sync(&sh->rq_hi_work);
	}
	list_for_each_entry_safe(m, mtmp, &reqs, node) {
		list_del(&m->node);
		nsm_rxmsg_free(nsm, m);
	}

	for (i = 0; i < nsm->nshards; i++) {
		sh = &nsm->shards[i];
		spin_lock_bh(&sh->ready_lock);
		sh->ev_stop = true;
		spin_unlock_bh(&sh->ready_lock);
		cancel_work_sync(&sh->ev_work);
		cancel_work_sync(&sh->ev_hi_work);
		spin_lock_bh(&sh->ready_lock);
		list_splice_init(&sh->ready, &list);
		list_splice_init(&sh->ready_hi, &list);
		spin_unlock_bh(&sh->ready_lock);
	}
	list_for_each_entry_safe(ns, tmp, &list, ready_node) {
		list_del_init(&ns->ready_node);
		ns->queued = false;
		nsm_sock_put(ns);
	}
}

/* ------------------------------------------------------------------ */
/* The device                                                          */
/* ------------------------------------------------------------------ */

static int nsm_attach(struct nk_dev *nd)
{
	struct nsm_dev *nsm;
	struct net *net;
	int i;

	net = netns_pid ? get_net_ns_by_pid(netns_pid) : get_net(&init_net);
	if (IS_ERR(net)) {
		dev_err(nk_dev_device(nd), "no network namespace for pid %d: %ld\n",
			netns_pid, PTR_ERR(net));
		return PTR_ERR(net);
	}
	nsm = kzalloc(sizeof(*nsm), GFP_KERNEL);
	if (!nsm) {
		put_net(net);
		return -ENOMEM;
	}

	nsm->net = net;
	nsm->max_payload = nk_dev_max_payload(nd);
	if (nsm_shards_init(nsm)) {
		kfree(nsm);
		put_net(net);
		return -ENOMEM;
	}
	nk_sockid_init(&nsm->socks, U32_MAX, nsm_sock_hold);
	xa_init(&nsm->guests);
	xa_init(&nsm->opening);
	atomic_set(&nsm->rx_queued, 0);
	init_waitqueue_head(&nsm->rx_wait);
	spin_lock_init(&nsm->drain_lock);
	INIT_LIST_HEAD(&nsm->draining);
	INIT_DELAYED_WORK(&nsm->drain_work, nsm_drain_work);
	spin_lock_init(&nsm->out_lock);
	INIT_LIST_HEAD(&nsm->outq);
	INIT_LIST_HEAD(&nsm->outq_hi);
	INIT_WORK(&nsm->tx_work, nsm_tx_work);
	INIT_WORK(&nsm->tx_hi_work, nsm_tx_hi_work);
	spin_lock_init(&nsm->use_lock);
	nsm->use_start = jiffies;
	for (i = 0; i < NSM_S_NR; i++)
		atomic64_set(&nsm->stats[i], 0);
	nk_dev_hold(nd);
	nsm->nd = nd;

	nsm->debugfs = debugfs_create_dir(nk_dev_name(nd), nsm_debugfs_root);
	debugfs_create_file("stats", 0444, nsm->debugfs, nsm, &nsm_stats_fops);
	debugfs_create_file("sockets", 0400, nsm->debugfs, nsm,
			    &nsm_sockets_fops);
	debugfs_create_file("guests", 0444, nsm->debugfs, nsm,
			    &nsm_guests_fops);
	debugfs_create_file("shards", 0444, nsm->debugfs, nsm,
			    &nsm_shards_fops);

	nk_dev_set_priv(nd, nsm);

	dev_info(nk_dev_device(nd),
		 "serving guest sockets in network namespace %u on %u CPUs\n",
		 net->ns.inum, nsm->nshards);
	return 0;
}

/*
 * The transport has marked the device dead and stopped ops->rx: no request
 * comes any more, and nk_send() fails at once, so tx_work can be flushed.
 */
static void nsm_detach(struct nk_dev *nd)
{
	struct nsm_dev *nsm = nk_dev_priv(nd);
	struct nsm_sock *ns, *tmp;
	struct nsm_out *out, *otmp;
	struct nsm_guest *g;
	LIST_HEAD(list);
	unsigned long id;

	debugfs_remove_recursive(nsm->debugfs);

	/* No request is served and no socket is queued after this. */
	nsm_shards_stop(nsm);

	/* Requests are stopped: nothing else changes the table now. */
	nk_sockid_for_each(&nsm->socks, id, ns) {
		nk_sockid_remove(&nsm->socks, id);
		mutex_lock(&ns->lock);
		nsm_sock_release(ns);
		mutex_unlock(&ns->lock);
		nsm_sock_put(ns);
	}
	nk_sockid_destroy(&nsm->socks);

	/* Only CLOSE, stopped, adds to the list; drain_work requeues itself. */
	cancel_delayed_work_sync(&nsm->drain_work);
	spin_lock(&nsm->drain_lock);
	list_splice_init(&nsm->draining, &list);
	spin_unlock(&nsm->drain_lock);
	list_for_each_entry_safe(ns, tmp, &list, drain_node) {
		refcount_inc(&ns->ref);
		mutex_lock(&ns->lock);
		nsm_sock_drained(ns, false);
		mutex_unlock(&ns->lock);
		nsm_sock_put(ns);
	}
	/* The SOCKETs still opening were dropped with the shards' requests. */
	xa_destroy(&nsm->opening);

	spin_lock(&nsm->out_lock);
	nsm->out_dead = true;
	list_splice_tail_init(&nsm->outq_hi, &nsm->outq);
	list_for_each_entry_safe(out, otmp, &nsm->outq, node) {
		list_del(&out->node);
		nsm_out_free(out);
	}
	nsm->out_bytes = 0;
	spin_unlock(&nsm->out_lock);

	/* Nothing queues tx_work now, and nk_send() returns -ENODEV at once. */
	flush_work(&nsm->tx_work);
	flush_work(&nsm->tx_hi_work);
	/* The messages in flight there counted in their guests. */
	xa_for_each(&nsm->guests, id, g)
		kfree(g);
	xa_destroy(&nsm->guests);

	put_net(nsm->net);
	nk_dev_set_priv(nd, NULL);
	nk_dev_put(nsm->nd);
	kfree(nsm->shards);
	kfree(nsm);
}

/*
 * The guest whose queue @hdr waits in (see "Shards" above), or NULL for
 * the shard's other queue.  A SOCKET's is the guest its a3 names, and its
 * id is marked opening (@opening set) until a shard has served it, so
 * that the requests pipelined behind it (NK_FEAT_PIPE) follow it; any
 * other request's is its socket's, opening or open.  A SOCKET whose mark
 * cannot be stored goes to the other queue, and so do the requests
 * behind it, which find neither mark nor socket: they stay in order.
 */
static struct nsm_guest *nsm_rx_guest(struct nsm_dev *nsm,
				      const struct nk_hdr *hdr, bool *opening)
{
	u32 id = le32_to_cpu(hdr->sock);
	struct nsm_guest *g;
	struct nsm_sock *ns;

	*opening = false;
	if (!id)
		return NULL;
	if (le16_to_cpu(hdr->op) == NK_OP_SOCKET &&
	    !(le16_to_cpu(hdr->flags) & NK_F_REPLY)) {
		g = nsm_guest_get(nsm,
				  upper_32_bits(le64_to_cpu(hdr->arg[3])));
		if (IS_ERR(g) ||
		    xa_is_err(xa_store(&nsm->opening, id, g, GFP_KERNEL)))
			return NULL;
		*opening = true;
		return g;
	}
	g = xa_load(&nsm->opening, id);
	if (g)
		return g;
	/*
	 * Pairs with smp_wmb() in nsm_rq_work(): a SOCKET's socket is
	 * published before its mark is erased.
	 */
	smp_rmb();
	ns = nk_sockid_get(&nsm->socks, id);
	if (!ns)
		return NULL;
	g = ns->g;
	nsm_sock_put(ns);
	return g;
}

/*
 * A message from the engine, already checked by the transport: queued for
 * the shard of its socket id, in its guest's queue.  Waits while the
 * shards hold rx_queue_max bytes (they never wait for the eventq), so the
 * engine's sends stop at a full eventq.
 */
static void nsm_rx(struct nk_dev *nd, const struct nk_hdr *hdr,
		   const void *payload)
{
	struct nsm_dev *nsm = nk_dev_priv(nd);
	u16 op = le16_to_cpu(hdr->op);
	struct nsm_shard *sh;
	struct nsm_rxmsg *m;
	struct nsm_guest *g;
	bool hi;

	wait_event_idle(nsm->rx_wait, atomic_read(&nsm->rx_queued) <
				      (int)min_t(unsigned int,
						 READ_ONCE(rx_queue_max),
						 INT_MAX));
	m = nsm_rxmsg_new(nd, hdr);
	if (!m) {
		pr_warn_ratelimited("socket %u: no memory to queue %s\n",
				    le32_to_cpu(hdr->sock), nk_op_name(op));
		if (!(le16_to_cpu(hdr->flags) & NK_F_REPLY) &&
		    op <= NK_OP_MAX_REQUEST)
			nsm_msg(nsm, NULL, le32_to_cpu(hdr->sock), op,
				NK_F_REPLY, le64_to_cpu(hdr->req_id), -ENOMEM,
				0, NULL, 0);
		return;
	}
	atomic_add(m->size, &nsm->rx_queued);
	sh = nsm_shard_of(nsm, le32_to_cpu(hdr->sock));
	g = nsm_rx_guest(nsm, hdr, &m->opening);
	spin_lock(&sh->rq_lock);
	m->q = g ? nsm_rq_lane(sh, g) : &sh->other;
	hi = m->q->hi;
	nsm_rq_add(sh, m);
	spin_unlock(&sh->rq_lock);
	nsm_rq_queue(sh, hi);
}

/* The requestq has room again: tx_work goes on (tx_lock held: no sleep). */
static void nsm_tx_space(struct nk_dev *nd)
{
	struct nsm_dev *nsm = nk_dev_priv(nd);

	if (nsm) {
		queue_work(nsm_wq, &nsm->tx_work);
		queue_work(nsm_hiwq, &nsm->tx_hi_work);
	}
}

static const struct nk_transport_ops nsm_ops = {
	.name = "nsm_kernel",
	.role = NK_ROLE_NSM,
	.features = NK_FEAT_INET6 | NK_FEAT_DGRAM | NK_FEAT_INFO | NK_FEAT_ANC |
		    NK_FEAT_WEIGHT | NK_FEAT_URG | NK_FEAT_PEER,
	.attach = nsm_attach,
	.detach = nsm_detach,
	.rx = nsm_rx,
	.tx_space = nsm_tx_space,
};

/* ------------------------------------------------------------------ */
/* Module                                                              */
/* ------------------------------------------------------------------ */

static int __init nsm_init(void)
{
	int err;

	nsm_wq = alloc_workqueue("nsm_kernel", 0, 0);
	if (!nsm_wq)
		return -ENOMEM;
	nsm_hiwq = alloc_workqueue("nsm_kernel_hi", WQ_HIGHPRI, 0);
	if (!nsm_hiwq) {
		destroy_workqueue(nsm_wq);
		return -ENOMEM;
	}
	nsm_debugfs_root = debugfs_create_dir("nsm_kernel", NULL);
	err = nsm_opts_init();
	if (err)
		goto err_opts;
	err = nsm_tenant_init();
	if (err)
		goto err_tenant;
	err = nk_transport_register(&nsm_ops);
	if (err)
		goto err_transport;
	return 0;

err_transport:
	nsm_tenant_exit();
err_tenant:
	nsm_opts_exit();
err_opts:
	debugfs_remove_recursive(nsm_debugfs_root);
	destroy_workqueue(nsm_hiwq);
	destroy_workqueue(nsm_wq);
	return err;
}

static void __exit nsm_exit(void)
{
	nk_transport_unregister();
	nsm_tenant_exit();
	nsm_opts_exit();
	debugfs_remove_recursive(nsm_debugfs_root);
	destroy_workqueue(nsm_hiwq);
	destroy_workqueue(nsm_wq);
}

module_init(nsm_init);
module_exit(nsm_exit);

MODULE_AUTHOR("NetKernel project");
MODULE_DESCRIPTION("NetKernel network stack module: guest sockets served by the kernel's TCP/IP stack");
MODULE_LICENSE("GPL");
MODULE_VERSION(NK_VERSION);
