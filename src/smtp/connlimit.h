/*
 * connlimit.h - connection counts shared by every worker process.
 *
 * SYNOPSIS
 *	struct connlimit *cl = connlimit_create(nworkers);	 parent, before fork
 *	r = connlimit_acquire(cl, worker, &addr, max_total, max_per_ip);
 *	connlimit_release(cl, worker, &addr);
 *	connlimit_reset_worker(cl, worker);	 parent, when a worker died
 *
 * DESCRIPTION
 *	The kernel spreads connections over the workers, so a per-address
 *	limit must be counted across processes: the table lives in shared
 *	memory made before fork, behind a process-shared mutex. Counts are
 *	kept per worker so that a worker that dies takes its counts with it.
 *	IPv6 clients are counted per /64, the smallest block one subscriber
 *	usually holds. When the table is full the connection is allowed and
 *	the caller logs it (failing open on a bookkeeping limit, not on the
 *	configured one). This is the interface a shared store (Redis) can take
 *	over later.
 */
#ifndef TERN_CONNLIMIT_H
#define TERN_CONNLIMIT_H

#include <stdint.h>
#include <sys/socket.h>

#define CONNLIMIT_MAX_WORKERS 128 /* two rows per worker: see parent.c worker_slot */

enum connlimit_result {
	CONNLIMIT_OK = 0,
	CONNLIMIT_TOTAL,	/* max_connections reached */
	CONNLIMIT_PER_IP,	/* max_connections_per_ip reached */
	CONNLIMIT_UNTRACKED,	/* table full: allowed, not counted */
};

struct connlimit;

struct connlimit *connlimit_create(unsigned nworkers);
enum connlimit_result connlimit_acquire(struct connlimit *cl, unsigned worker,
					const struct sockaddr_storage *ss,
					unsigned max_total, unsigned max_per_ip);
void connlimit_release(struct connlimit *cl, unsigned worker,
		       const struct sockaddr_storage *ss);
void connlimit_reset_worker(struct connlimit *cl, unsigned worker);
/* The 16 octets a client is counted by: its IPv4 address (also when
 * IPv4-mapped), or its IPv6 /64; the last octet says which (4 or 6). */
void client_key(const struct sockaddr_storage *ss, uint8_t key[16]);

#endif
