/*
 * conf.h - ternd's configuration: the typed struct, its safe built-in
 * defaults, and the parser of ternd.conf.
 *
 * SYNOPSIS
 *	struct conf c;
 *	char err[512];
 *	conf_defaults(&c);
 *	if (conf_load_file(&c, "/etc/tern/ternd.conf", err, sizeof err) < 0)
 *		fatal("%s", err);	 err is "FILE:LINE: what is wrong"
 *	conf_finish(&c, is_root, err, sizeof err);	 fill derived values
 *	...
 *	conf_free(&c);
 *
 * DESCRIPTION
 *	The file is line-oriented: "keyword value..." with '#' comments
 *	(outside double quotes) and blank lines ignored; values are separated
 *	by spaces or tabs. Every keyword and its meaning is one row in
 *	knobs.def, which is also what `ternd --help-config` prints and what
 *	docs/ternd.conf.md lists. Sizes take K, M, G suffixes (powers of 1024);
 *	durations take s, m, h, d suffixes (no suffix: seconds).
 *
 *	conf_defaults() gives a configuration that is safe with no file at all
 *	(DESIGN.md: localhost and the hostname as local domains, data in ./var,
 *	the four listeners). A file replaces the default listeners as soon as
 *	it has one `listen` line; `domains` likewise replaces the defaults.
 *
 *	conf_finish() derives what the file left unset (hostname from
 *	gethostname(), the maildir template from data_dir, unprivileged ports
 *	for the default listeners when not root) and checks what only makes
 *	sense as a whole (at least one listener; no two listeners on one
 *	address and port). It also reads each dkim_sign key file: the file
 *	must not be readable by group or others and must hold a key
 *	dkim_key_load() takes; its text is kept in the struct.
 *
 * DIAGNOSTICS
 *	conf_load_file and conf_finish return -1 with "FILE:LINE: message" (or
 *	"FILE: message") in err; the struct is then unspecified and must only
 *	be freed. Nothing is printed.
 */
#ifndef TERN_CONF_H
#define TERN_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../proto/data.h"

#define CONF_MAX_LISTENERS 32
#define CONF_MAX_DOMAINS 64
#define CONF_NAME_MAX 256
#define CONF_PATH_MAX 1024
#define CONF_FOLDER_MAX 64
#define CONF_MAX_SNI 16

/* What a port is for (DESIGN.md, "The four ports"). */
enum listener_role {
	ROLE_MX = 0,		/* 25: other servers, local domains only */
	ROLE_SUBMISSION,	/* 587: STARTTLS then AUTH */
	ROLE_SUBMISSIONS,	/* 465: implicit TLS */
	ROLE_SUBMISSION_ALT,	/* 2525: as 587 */
};

/* A listener's TLS policy (RFC 3207, RFC 8314). */
enum listener_tls {
	LISTEN_TLS_NONE = 0,	/* STARTTLS not offered */
	LISTEN_TLS_OPTIONAL,	/* STARTTLS offered; plaintext mail accepted */
	LISTEN_TLS_REQUIRED,	/* STARTTLS before MAIL and AUTH (530 5.7.0) */
	LISTEN_TLS_IMPLICIT,	/* TLS from the first byte */
};

/* SASL mechanisms (auth_mechanisms). */
enum {
	AUTH_MECH_PLAIN = 1 << 0,
	AUTH_MECH_LOGIN = 1 << 1,
	AUTH_MECH_SCRAM_SHA256 = 1 << 2,
	AUTH_MECH_CRAM_MD5 = 1 << 3,
};

/* A listener's AUTH policy (RFC 4954). */
enum listener_auth {
	LISTEN_AUTH_NONE = 0,	/* not offered (502) */
	LISTEN_AUTH_OPTIONAL,	/* offered inside TLS; mail for local domains without it */
	LISTEN_AUTH_REQUIRED,	/* MAIL before AUTH gets 530 5.7.0 */
};

struct listener_conf {
	char addr[64];		/* "" for all addresses (0.0.0.0 and ::) */
	uint16_t port;
	enum listener_role role;
	enum listener_tls tls;	/* defaults from the role (DESIGN.md table) */
	enum listener_auth auth;
	bool plaintext_auth_loopback; /* AUTH without TLS from 127.0.0.0/8 and ::1 */
	bool is_default;	/* from conf_defaults(): may be remapped */
	uint32_t greet_pause_ms; /* wait before the banner; input before it is refused */
	unsigned line;		/* line of its listen statement in source; 0 for a default */
};

/* Outbound TLS (RFC 3207 as a client): what a destination must offer. */
enum smtp_tls_level {
	SMTP_TLS_MAY = 0,	/* STARTTLS when offered; plaintext otherwise, logged */
	SMTP_TLS_ENCRYPT,	/* STARTTLS required, any certificate */
	SMTP_TLS_VERIFY,	/* STARTTLS required, certificate valid for the MX name */
};

#define CONF_MAX_TLS_POLICIES 64
#define CONF_MAX_RELAY_PORTS 8

struct tls_policy_conf {
	char domain[CONF_NAME_MAX];	/* lower case */
	enum smtp_tls_level level;
};

/* How the smarthost is spoken to on one port. */
enum relay_mode { RELAY_STARTTLS = 0, RELAY_TLS, RELAY_PLAIN };

struct relay_port {
	uint16_t port;
	enum relay_mode mode;
};

/* `relay smarthost ...`: all mail for other domains goes there. */
struct relay_conf {
	char host[CONF_NAME_MAX];	/* "": deliver to each domain's MX */
	struct relay_port ports[CONF_MAX_RELAY_PORTS]; /* tried in order */
	size_t nports;
	char auth_user[CONF_NAME_MAX];	/* "": no AUTH */
	char auth_file[CONF_PATH_MAX];	/* the password, first line; mode 0600 */
};

#define CONF_MAX_TRANSPORTS 64

/* `transport DOMAIN HOST:PORT`: a fixed next hop instead of the MX. */
struct transport_conf {
	char domain[CONF_NAME_MAX];	/* lower case */
	char host[CONF_NAME_MAX];	/* a name, or an address in brackets */
	uint16_t port;
};

#define CONF_MAX_DKIM 16
#define CONF_DKIM_PEM_MAX 8192		/* an RSA 4096 PEM is about 3.3 KiB */
#define CONF_SELECTOR_MAX 64

/*
 * `dkim_sign DOMAIN SELECTOR KEYFILE`: sign authenticated users' mail from
 * DOMAIN. conf_finish() reads the key file (as root, before any fork) and
 * keeps its PEM text here, so the unprivileged queue process, which gets
 * a copy of struct conf, never opens the root-owned file.
 */
struct dkim_sign_conf {
	char domain[CONF_NAME_MAX];	/* lower case */
	char selector[CONF_SELECTOR_MAX]; /* lower case */
	char keyfile[CONF_PATH_MAX];
	unsigned line;
	char pem[CONF_DKIM_PEM_MAX];	/* the file's text, filled by conf_finish */
	size_t pem_len;
};

/* Local delivery: a Maildir template, or LMTP (RFC 2033). */
enum deliver_method { DELIVER_MAILDIR = 0, DELIVER_LMTP };

/* An extra certificate, chosen when the client's SNI names one of its names. */
struct tls_sni_conf {
	char cert[CONF_PATH_MAX];
	char key[CONF_PATH_MAX];
	unsigned line;
};

struct conf {
	char source[CONF_PATH_MAX]; /* file name, or "(built-in defaults)" */

	char hostname[CONF_NAME_MAX];
	char domains[CONF_MAX_DOMAINS][CONF_NAME_MAX]; /* lower case */
	size_t ndomains;
	bool domains_set;

	char data_dir[CONF_PATH_MAX];
	char user[64];		/* unprivileged user the workers run as */
	unsigned workers;	/* 0: one per core */

	struct listener_conf listeners[CONF_MAX_LISTENERS];
	size_t nlisteners;
	bool listeners_set;

	char users_file[CONF_PATH_MAX]; /* "" : every local part is accepted */
	char maildir[CONF_PATH_MAX];	/* template: %d domain, %u local part */
	enum deliver_method deliver;
	char lmtp[CONF_PATH_MAX];	/* "unix:/path" or "HOST:PORT" for DELIVER_LMTP */

	uint64_t max_message_size;	/* SIZE; 552 5.3.4 past it */
	unsigned max_recipients;	/* per message; 452 4.5.3 past it */
	unsigned max_errors;		/* per session; then 421 and close */
	unsigned max_connections;	/* in total */
	unsigned max_connections_per_ip;
	uint32_t idle_timeout;		/* seconds, between commands */
	uint32_t data_timeout;		/* seconds, between reads inside DATA */
	uint32_t session_timeout;	/* seconds, whole session */
	enum data_bare_policy bare_newline;
	uint32_t queue_retry;		/* seconds between local delivery retries */
	uint32_t queue_lifetime;	/* seconds before a message is given up */
	uint32_t queue_retry_max;	/* seconds: the backoff stops growing here */
	uint32_t delay_warning;		/* seconds; 0: no delay DSN */
	char dns_server[CONF_PATH_MAX];	/* "": /etc/resolv.conf */
	uint32_t dns_timeout_ms;
	enum smtp_tls_level smtp_tls;	/* for destinations without a policy */
	struct tls_policy_conf tls_policies[CONF_MAX_TLS_POLICIES];
	size_t ntls_policies;
	struct relay_conf relay;
	uint32_t smtp_connect_timeout;	/* seconds */
	uint32_t smtp_command_timeout;	/* seconds: caps RFC 5321 4.5.3.2's */
	unsigned smtp_destination_concurrency;
	struct dkim_sign_conf dkim_sign[CONF_MAX_DKIM];
	size_t ndkim_sign;
	char etrn_allow[CONF_PATH_MAX];	/* client addresses that may ETRN, "" none */
	char trusted_networks[CONF_PATH_MAX]; /* may relay without AUTH, "" none */
	struct transport_conf transports[CONF_MAX_TRANSPORTS];
	size_t ntransports;
	unsigned auth_mechs;		/* AUTH_MECH_* bits (auth_mechanisms) */
	char auth_dovecot[CONF_PATH_MAX]; /* "": the users file checks logins */
	unsigned auth_max_failures;	/* per address, in the window; then locked */
	uint32_t auth_failure_window;	/* seconds */
	uint32_t auth_lockout;		/* seconds */
	uint32_t auth_failure_delay_ms;	/* tarpit step for repeated 535s */
	char tls_cert[CONF_PATH_MAX];	/* "": self-signed in DATA_DIR/tls */
	char tls_key[CONF_PATH_MAX];
	struct tls_sni_conf tls_sni[CONF_MAX_SNI];
	size_t ntls_sni;
	char tls_min_version[8];	/* "1.2" or "1.3" */
	char log_level[16];		/* debug, info, warn */

	/* SPF, DKIM and DMARC on mx listeners (smtp/msgauth.h) */
	unsigned mail_auth;		/* 0 off, 1 on */
	char mail_auth_ignore[CONF_PATH_MAX]; /* clients not checked: "ADDR[/LEN] ..." */
	char authserv_id[CONF_NAME_MAX]; /* RFC 8601 2.5; "" until conf_finish: hostname */
	unsigned spf_reject;		/* 0 off, 1: SPF fail refused at MAIL FROM */
	unsigned dmarc_reject;		/* 0: p=reject quarantines, 1: refused after DATA */
	char quarantine_folder[CONF_FOLDER_MAX + 1]; /* "none": the inbox */
	unsigned mail_auth_tempfail;	/* 0 accept (marked temperror), 1 defer (451) */
	uint32_t mail_auth_timeout;	/* seconds, all the checks of one message */
	char public_suffix_list[CONF_PATH_MAX];
};

void conf_defaults(struct conf *c);
int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen);
/* The same parser over bytes in memory, `name` used in messages (tests, fuzzing). */
int conf_load_mem(struct conf *c, const char *name, const char *text, size_t len,
		  char *err, size_t errlen);
int conf_finish(struct conf *c, bool is_root, char *err, size_t errlen);
/* Wipes the DKIM keys' text; c owns no memory and stays usable (a process
 * that does not sign, or has loaded its keys, calls it). */
void conf_free(struct conf *c);

const char *conf_role_name(enum listener_role r);
const char *conf_tls_name(enum listener_tls t);
const char *conf_auth_name(enum listener_auth a);
bool conf_is_local_domain(const struct conf *c, const char *domain);
/* A Maildir folder name tern writes: 1-CONF_FOLDER_MAX letters, digits, '-'
 * or '_' (no dots, no slashes: one Maildir++ level inside the inbox). */
bool conf_folder_valid(const char *name, size_t len);

/* Print every keyword with its default and documentation line. */
void conf_print_knobs(FILE *out);

#endif
