/*
 * remote.h - the delivery agent for mail that leaves this host: to each
 * domain's MX, to a smarthost, or over LMTP to a local store.
 *
 * SYNOPSIS
 *	struct remote *r = remote_new(loop, conf, err, sizeof err);	 queue process
 *	j->qid = ...; j->domain = "example.org"; j->msg = { rcpts of that domain };
 *	j->done = on_done; remote_deliver(r, j);	 later on_done(j): results in j->msg.rcpts
 *
 * DESCRIPTION
 *	One job is one message to the recipients of one destination. Routes:
 *	  lmtp		j->lmtp: conf `deliver lmtp` (a UNIX socket or
 *			host:port), LHLO, one reply per recipient (RFC 2033).
 *	  smarthost	conf `relay smarthost`: the relay host on each of its
 *			ports in order (587 STARTTLS, 465 TLS, 2525 STARTTLS
 *			by default), the next port when one is refused or
 *			times out; AUTH with the configured password.
 *	  MX		RFC 5321 5.1: the domain's MX hosts by preference; no
 *			MX record: the domain itself (its A/AAAA); a null MX
 *			(RFC 7505): bounced at once, 556 5.1.10; NXDOMAIN:
 *			bounced, 5.1.2; a DNS failure: deferred, 4.4.3.
 *	For each host every address is tried in turn (AAAA first) until one
 *	takes the transaction; a connection that fails before the transaction
 *	(refused, timeout, 4xx or 5xx greeting, a TLS policy not met) moves on
 *	to the next address and host. Once a transaction ran, its per-recipient
 *	replies are the results (a 4xx to RCPT waits for the next attempt, not
 *	for the next MX: the message would only arrive twice).
 *
 *	TLS (conf smtp_tls and smtp_tls_policy, by destination domain): may,
 *	encrypt, verify (the certificate must name the MX host, RFC 7672's
 *	weaker cousin without DANE). Under may, a handshake that fails is tried
 *	once more in plaintext on the same address, and j->note says so: never
 *	silently.
 *
 *	Concurrency: at most smtp_destination_concurrency connections (or
 *	lookups) per destination at once; more jobs wait in order. A
 *	connection whose transaction went well is handed to the next waiting
 *	job of the same destination, or kept idle for REMOTE_IDLE_MS for one
 *	that arrives (several messages to one MX on one connection).
 *
 *	Results: every j->msg.rcpts[i] is done when j->done runs: code,
 *	enh, text, temporary as struct smtpc_rcpt says; code 0 with our own
 *	words when no server spoke (DNS, no host reachable). j->relay names
 *	the host, address and port the transaction ran on ("none" if none),
 *	j->tls the TLS version and cipher or "plaintext".
 */
#ifndef TERN_REMOTE_H
#define TERN_REMOTE_H

#include <stdbool.h>
#include <uv.h>

#include "../conf/conf.h"
#include "smtp_client.h"

#define REMOTE_IDLE_MS 2000
#define REMOTE_MAX_HOSTS 10	/* MX hosts tried per job */
#define REMOTE_MAX_ADDRS 20	/* addresses tried per job, over all hosts */

struct remote;
struct remote_dest;
struct remote_conn;

struct remote_job {
	/* set by the caller */
	const char *qid;
	const char *domain;		/* destination domain, lower case */
	bool lmtp;			/* local delivery over LMTP */
	struct smtpc_msg msg;		/* results come back in msg.rcpts */
	void (*done)(struct remote_job *j);
	void *arg;
	/* results for the log */
	char relay[320];
	char tls[96];
	char note[192];
	/* private */
	struct remote *r;
	struct remote_dest *dest;
	struct remote_job *next;	/* in dest's wait queue */
	struct dns_mx *hosts;		/* targets: MX hosts, or the smarthost per port */
	uint16_t *ports;
	enum smtpc_tls *modes;
	size_t nhosts, host_i;
	struct sockaddr_storage *addrs;
	size_t naddrs, addr_i, tried;
	bool plain_retry;		/* retrying this address without STARTTLS */
	struct remote_conn *conn;
	char last_enh[12];
	char last_text[SMTP_REPLY_TEXT_MAX];
	bool last_temporary;
};

/* relay_pass: the smarthost password (read by the parent before the
 * privilege drop, daemon/parent.c), or NULL. */
struct remote *remote_new(uv_loop_t *loop, const struct conf *c, const char *relay_pass,
			  char *err, size_t errlen);
/* 0, or -1 (out of memory): then nothing is called back. */
int remote_deliver(struct remote *r, struct remote_job *j);

#endif
