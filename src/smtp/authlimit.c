/* authlimit.c - failed-login counts per address and per account in shared memory; see authlimit.h. */
#include "authlimit.h"

#include <string.h>

#include "../lib/shm.h"
#include "connlimit.h"

#define SLOTS 4096
#define PROBE 32
#define KEEP 64		/* failure times kept per key: the largest usable max */

struct slot {
	uint8_t key[17];	/* kind ('A' address, 'U' user) + 16 octets */
	uint64_t last;		/* newest failure; 0: free */
	uint64_t locked_until;
	uint64_t times[KEEP];	/* ring of failure times */
	unsigned head;
};

struct authlimit {
	pthread_mutex_t lock;
	struct slot slots[SLOTS];
};

struct authlimit *authlimit_create(void)
{
	struct authlimit *al = shm_alloc(sizeof *al);

	if (al != NULL)
		shm_mutex_init(&al->lock);
	return al;
}

static void lock(struct authlimit *al)
{
	shm_mutex_lock(&al->lock);
}

/* Counted by the same address rule as connections (connlimit.h). */
static void addr_key(const struct sockaddr_storage *ss, uint8_t key[17])
{
	key[0] = 'A';
	client_key(ss, key + 1);
}

/* Two FNV-1a hashes of the name: 16 octets, collisions out of reach. */
static void user_key(const char *user, uint8_t key[17])
{
	uint64_t h1 = 14695981039346656037ull, h2 = 1099511628211ull * 31;

	for (const char *p = user; *p; p++) {
		h1 = (h1 ^ (uint8_t)*p) * 1099511628211ull;
		h2 = (h2 ^ (uint8_t)*p) * 0x100000001b3ull + 7;
	}
	key[0] = 'U';
	memcpy(key + 1, &h1, 8);
	memcpy(key + 9, &h2, 8);
}

static uint32_t slot_hash(const uint8_t key[17])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	return h;
}

/* The slot of key; with create, a free or stale one in its window. */
static struct slot *find(struct authlimit *al, const uint8_t key[17], bool create,
			 uint64_t stale_before)
{
	uint32_t h = slot_hash(key);
	struct slot *spare = NULL;

	for (uint32_t i = 0; i < PROBE; i++) {
		struct slot *s = &al->slots[(h + i) % SLOTS];
		bool idle = s->last < stale_before && s->locked_until <= stale_before;

		if (s->last != 0 && memcmp(s->key, key, 17) == 0)
			return s;
		if (spare == NULL && (s->last == 0 || idle))
			spare = s;
	}
	if (!create || spare == NULL)
		return NULL;
	memset(spare, 0, sizeof *spare);
	memcpy(spare->key, key, 17);
	return spare;
}

/* Record a failure at now; the count within the window, this one included. */
static unsigned record(struct slot *s, uint64_t now, uint32_t window)
{
	unsigned n = 0;

	s->times[s->head] = now;
	s->head = (s->head + 1) % KEEP;
	s->last = now;
	for (unsigned i = 0; i < KEEP; i++)
		if (s->times[i] != 0 && s->times[i] + window > now)
			n++;
	return n;
}

uint32_t authlimit_locked(struct authlimit *al, const struct sockaddr_storage *ss, uint64_t now)
{
	uint8_t key[17];
	struct slot *s;
	uint32_t left = 0;

	addr_key(ss, key);
	lock(al);
	if ((s = find(al, key, false, 0)) != NULL && s->locked_until > now)
		left = (uint32_t)(s->locked_until - now);
	pthread_mutex_unlock(&al->lock);
	return left;
}

struct authlimit_result authlimit_fail(struct authlimit *al, const struct sockaddr_storage *ss,
				       const char *user, const struct authlimit_conf *c,
				       uint64_t now)
{
	struct authlimit_result r = { 0, 0, false, false };
	uint64_t stale = now > c->window + c->lockout ? now - c->window - c->lockout : 0;
	uint8_t key[17];
	struct slot *s;

	lock(al);
	addr_key(ss, key);
	if ((s = find(al, key, true, stale)) == NULL) {
		r.untracked = true;
	} else {
		r.addr_failures = record(s, now, c->window);
		if (r.addr_failures >= c->max) {
			s->locked_until = now + c->lockout;
			r.locked = true;
		}
	}
	user_key(user, key);
	if ((s = find(al, key, true, stale)) != NULL)
		r.user_failures = record(s, now, c->window);
	pthread_mutex_unlock(&al->lock);
	return r;
}
