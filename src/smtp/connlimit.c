/* connlimit.c - per-address connection counts in shared memory; see connlimit.h. */
#include "connlimit.h"

#include "../lib/shm.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define SLOTS 8192
#define PROBE 32

struct slot {
	uint8_t key[16];
	uint32_t count[CONNLIMIT_MAX_WORKERS];
};

struct connlimit {
	pthread_mutex_t lock;
	unsigned nworkers;
	uint32_t total[CONNLIMIT_MAX_WORKERS];
	struct slot slots[SLOTS];
};

struct connlimit *connlimit_create(unsigned nworkers)
{
	struct connlimit *cl = shm_alloc(sizeof *cl);

	if (cl == NULL)
		return NULL;
	cl->nworkers = nworkers > CONNLIMIT_MAX_WORKERS ? CONNLIMIT_MAX_WORKERS : nworkers;
	shm_mutex_init(&cl->lock);
	return cl;
}

static void lock(struct connlimit *cl)
{
	shm_mutex_lock(&cl->lock);
}

void client_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		key[15] = 4;
	} else if (ss->ss_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		if (memcmp(a, mapped, 12) == 0) {
			memcpy(key, a + 12, 4);
			key[15] = 4;
		} else {
			memcpy(key, a, 8); /* the /64 */
			key[15] = 6;
		}
	}
}

static uint32_t slot_sum(const struct connlimit *cl, const struct slot *s)
{
	uint32_t n = 0;

	for (unsigned w = 0; w < cl->nworkers; w++)
		n += s->count[w];
	return n;
}

static uint32_t hash_key(const uint8_t key[16])
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h;
}

/* The slot holding key, or else a free slot in its probe window, or NULL. */
static struct slot *find(struct connlimit *cl, const uint8_t key[16], int create)
{
	uint32_t h = hash_key(key);
	struct slot *free_slot = NULL;

	for (uint32_t i = 0; i < PROBE; i++) {
		struct slot *s = &cl->slots[(h + i) % SLOTS];

		if (slot_sum(cl, s) == 0) {
			if (free_slot == NULL)
				free_slot = s;
			continue;
		}
		if (memcmp(s->key, key, 16) == 0)
			return s;
	}
	if (create && free_slot != NULL)
		memcpy(free_slot->key, key, 16);
	return create ? free_slot : NULL;
}

enum connlimit_result connlimit_acquire(struct connlimit *cl, unsigned worker,
					const struct sockaddr_storage *ss,
					unsigned max_total, unsigned max_per_ip)
{
	enum connlimit_result r = CONNLIMIT_OK;
	uint8_t key[16];
	uint32_t total = 0;
	struct slot *s;

	client_key(ss, key);
	lock(cl);
	for (unsigned w = 0; w < cl->nworkers; w++)
		total += cl->total[w];
	if (total >= max_total) {
		r = CONNLIMIT_TOTAL;
	} else if ((s = find(cl, key, 1)) == NULL) {
		r = CONNLIMIT_UNTRACKED;
		cl->total[worker]++;
	} else if (slot_sum(cl, s) >= max_per_ip) {
		r = CONNLIMIT_PER_IP;
	} else {
		s->count[worker]++;
		cl->total[worker]++;
	}
	pthread_mutex_unlock(&cl->lock);
	return r;
}

void connlimit_release(struct connlimit *cl, unsigned worker,
		       const struct sockaddr_storage *ss)
{
	uint8_t key[16];
	struct slot *s;

	client_key(ss, key);
	lock(cl);
	if (cl->total[worker] > 0)
		cl->total[worker]--;
	if ((s = find(cl, key, 0)) != NULL && s->count[worker] > 0)
		s->count[worker]--;
	pthread_mutex_unlock(&cl->lock);
}

void connlimit_reset_worker(struct connlimit *cl, unsigned worker)
{
	lock(cl);
	cl->total[worker] = 0;
	for (size_t i = 0; i < SLOTS; i++)
		cl->slots[i].count[worker] = 0;
	pthread_mutex_unlock(&cl->lock);
}
