/*
 * shm.h - memory shared by the parent and its children, with a lock.
 *
 * SYNOPSIS
 *	struct table *t = shm_alloc(sizeof *t);	 before fork; zeroed
 *	shm_mutex_init(&t->lock);
 *	shm_mutex_lock(&t->lock); ... pthread_mutex_unlock(&t->lock);
 *
 * DESCRIPTION
 *	An anonymous shared mapping made before fork is the same memory in
 *	every child. The mutex is process-shared and robust: a child killed
 *	while holding it does not wedge the others (the next locker makes it
 *	consistent again; the table it guards holds only counters, which a
 *	half-done update cannot make unsafe).
 */
#ifndef TERN_SHM_H
#define TERN_SHM_H

#include <pthread.h>
#include <stddef.h>

void *shm_alloc(size_t size);
void shm_mutex_init(pthread_mutex_t *m);
void shm_mutex_lock(pthread_mutex_t *m);

#endif
