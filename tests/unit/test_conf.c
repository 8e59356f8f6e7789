/* test_conf.c - cmocka tests of conf.c: defaults, every keyword, every error message with its line, the knob table against the docs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "mailauth/dkim.h"

#define ERRLEN 512
#define DOCS "docs/ternd.conf.md"
#define SAMPLE "contrib/ternd.conf.sample"

/* The knob table as the tests see it: kinds as text. */
struct tknob {
	const char *name, *kind;
	size_t off, size;
	const char *syntax, *min, *max, *dflt, *doc;
};
#define KNOB(name, kind, field, syntax, min, max, dflt, doc)                  \
	{ #name, #kind, offsetof(struct conf, field),                         \
	  sizeof(((struct conf *)0)->field), syntax, min, max, dflt, doc },
static const struct tknob tknobs[] = {
#include "conf/knobs.def"
};
#undef KNOB
#define NTKNOBS (sizeof tknobs / sizeof tknobs[0])

static struct conf c;	/* static: the struct is large */
static char err[ERRLEN];

static int load_n(const char *text, size_t len)
{
	conf_defaults(&c);
	err[0] = '\0';
	return conf_load_mem(&c, "ternd.conf", text, len, err, sizeof err);
}

static int load(const char *text)
{
	return load_n(text, strlen(text));
}

/* Load text and finish it; 0 or -1 with err set. */
static int load_finish(const char *text, bool is_root)
{
	if (load(text) < 0)
		return -1;
	return conf_finish(&c, is_root, err, sizeof err);
}

static void expect_ok(const char *text)
{
	if (load(text) != 0)
		fail_msg("unexpected error for \"%s\": %s", text, err);
}

static uint64_t field_uint(const struct tknob *k)
{
	uint32_t v32;
	uint64_t v64;

	if (k->size == sizeof v64) {
		memcpy(&v64, (const char *)&c + k->off, sizeof v64);
		return v64;
	}
	memcpy(&v32, (const char *)&c + k->off, sizeof v32);
	return v32;
}

/* The tests' own reading of a number in knobs.def. */
static uint64_t tval(const char *s)
{
	char *end;
	uint64_t v;

	if (strcmp(s, "auto") == 0)
		return 0;
	v = strtoull(s, &end, 10);
	switch (*end) {
	case 'K': return v << 10;
	case 'M': return v << 20;
	case 'G': return v << 30;
	case 'm': return v * 60;
	case 'h': return v * 3600;
	case 'd': return v * 86400;
	default: return v;	/* "" or "s" */
	}
}

static bool is_numeric(const struct tknob *k)
{
	return strcmp(k->kind, "K_UINT") == 0 || strcmp(k->kind, "K_AUTO") == 0 ||
	       strcmp(k->kind, "K_SIZE") == 0 || strcmp(k->kind, "K_SECS") == 0 ||
	       strcmp(k->kind, "K_MSECS") == 0;
}

/* A knobs.def number as stored: K_MSECS fields hold milliseconds. */
static uint64_t tstored(const struct tknob *k, const char *s)
{
	size_t n = strlen(s);

	if (strcmp(k->kind, "K_MSECS") != 0)
		return tval(s);
	if (n > 2 && strcmp(s + n - 2, "ms") == 0)
		return strtoull(s, NULL, 10);
	return tval(s) * 1000;
}

/* ---- defaults and conf_finish ---- */

static void test_defaults(void **state)
{
	(void)state;
	conf_defaults(&c);
	assert_string_equal(c.source, "(built-in defaults)");
	assert_string_equal(c.hostname, "");
	assert_int_equal(c.ndomains, 1);
	assert_string_equal(c.domains[0], "localhost");
	assert_false(c.domains_set);
	assert_string_equal(c.data_dir, "./var");
	assert_string_equal(c.user, "tern");
	assert_int_equal(c.workers, 0);
	assert_string_equal(c.users_file, "");
	assert_string_equal(c.maildir, "");
	assert_int_equal(c.max_message_size, 25 * 1024 * 1024);
	assert_int_equal(c.max_recipients, 100);
	assert_int_equal(c.max_errors, 10);
	assert_int_equal(c.max_connections, 1000);
	assert_int_equal(c.max_connections_per_ip, 50);
	assert_int_equal(c.idle_timeout, 300);
	assert_int_equal(c.data_timeout, 300);
	assert_int_equal(c.session_timeout, 3600);
	assert_int_equal(c.bare_newline, DATA_BARE_REJECT);
	assert_int_equal(c.queue_retry, 300);
	assert_int_equal(c.queue_lifetime, 5 * 86400);
	assert_string_equal(c.log_level, "info");
}

static void test_default_listeners(void **state)
{
	static const struct { uint16_t port; enum listener_role role; } want[] = {
		{ 25, ROLE_MX }, { 587, ROLE_SUBMISSION },
		{ 465, ROLE_SUBMISSIONS }, { 2525, ROLE_SUBMISSION_ALT },
	};
	size_t i;

	(void)state;
	conf_defaults(&c);
	assert_int_equal(c.nlisteners, 4);
	assert_false(c.listeners_set);
	for (i = 0; i < 4; i++) {
		assert_string_equal(c.listeners[i].addr, "");
		assert_int_equal(c.listeners[i].port, want[i].port);
		assert_int_equal(c.listeners[i].role, want[i].role);
		assert_true(c.listeners[i].is_default);
		assert_int_equal(c.listeners[i].greet_pause_ms, 0);
		assert_int_equal(c.listeners[i].line, 0);
	}
}

static void test_finish_not_root_remaps(void **state)
{
	(void)state;
	conf_defaults(&c);
	assert_int_equal(conf_finish(&c, false, err, sizeof err), 0);
	assert_int_equal(c.listeners[0].port, 10025);
	assert_int_equal(c.listeners[1].port, 10587);
	assert_int_equal(c.listeners[2].port, 10465);
	assert_int_equal(c.listeners[3].port, 2525);
}

static void test_finish_root_keeps_ports(void **state)
{
	(void)state;
	conf_defaults(&c);
	assert_int_equal(conf_finish(&c, true, err, sizeof err), 0);
	assert_int_equal(c.listeners[0].port, 25);
	assert_int_equal(c.listeners[1].port, 587);
	assert_int_equal(c.listeners[2].port, 465);
	assert_int_equal(c.listeners[3].port, 2525);
}

static void test_finish_derived(void **state)
{
	char h[256];
	size_t i;

	(void)state;
	assert_int_equal(gethostname(h, sizeof h), 0);
	for (i = 0; h[i] != '\0'; i++)
		if (h[i] >= 'A' && h[i] <= 'Z')
			h[i] = (char)(h[i] - 'A' + 'a');
	conf_defaults(&c);
	assert_int_equal(conf_finish(&c, false, err, sizeof err), 0);
	assert_string_equal(c.hostname, h);
	assert_true(conf_is_local_domain(&c, "localhost"));
	assert_true(conf_is_local_domain(&c, h));
	assert_int_equal(c.ndomains, strcmp(h, "localhost") == 0 ? 1 : 2);
	assert_string_equal(c.maildir, "./var/mail/%d/%u");

	/* The file's hostname is used, and is a local domain by default. */
	assert_int_equal(load_finish("hostname MX.Example.ORG\n", true), 0);
	assert_string_equal(c.hostname, "mx.example.org");
	assert_int_equal(c.ndomains, 2);
	assert_true(conf_is_local_domain(&c, "mx.example.org"));

	/* ... but not when domains replaces the default. */
	assert_int_equal(load_finish("hostname mx.example.org\ndomains example.org\n", true), 0);
	assert_int_equal(c.ndomains, 1);
	assert_false(conf_is_local_domain(&c, "mx.example.org"));
	assert_false(conf_is_local_domain(&c, "localhost"));
}

static void test_finish_maildir_from_data_dir(void **state)
{
	(void)state;
	assert_int_equal(load_finish("data_dir /srv/100%tern//\n", true), 0);
	assert_string_equal(c.maildir, "/srv/100%%tern/mail/%d/%u");
	assert_int_equal(load_finish("data_dir /srv\ndeliver maildir /home/%u/Maildir\n", true), 0);
	assert_string_equal(c.maildir, "/home/%u/Maildir");
}

/* ---- the values ---- */

static void test_empty_and_comments(void **state)
{
	(void)state;
	expect_ok("");
	expect_ok("\n\n   \n\t\n# only a comment\n   # indented\n");
	assert_int_equal(c.nlisteners, 4);
	assert_false(c.listeners_set);
	expect_ok("\xef\xbb\xbfhostname a.example\r\n");	/* BOM, CRLF */
	assert_string_equal(c.hostname, "a.example");
	expect_ok("hostname\tb.example\t# the name\ndata_dir \"/srv/my mail #1\"   # quoted\n"
		  "users \"/etc/tern/users\"");
	assert_string_equal(c.hostname, "b.example");
	assert_string_equal(c.data_dir, "/srv/my mail #1");
	assert_string_equal(c.users_file, "/etc/tern/users");
	expect_ok("hostname c.example#comment right after\n");
	assert_string_equal(c.hostname, "c.example");
	assert_string_equal(c.source, "ternd.conf");
}

static void test_all_keywords(void **state)
{
	(void)state;
	expect_ok("hostname mail.example.com\n"
		  "domains example.com example.org\n"
		  "data_dir /var/lib/tern\n"
		  "user _tern\n"
		  "workers 4\n"
		  "listen 2525 mx\n"
		  "users /etc/tern/users\n"
		  "deliver maildir /var/mail/%d/%u\n"
		  "max_message_size 50M\n"
		  "max_recipients 1000\n"
		  "max_errors 3\n"
		  "max_connections 200\n"
		  "max_connections_per_ip 5\n"
		  "idle_timeout 5m\n"
		  "data_timeout 10m\n"
		  "session_timeout 2h\n"
		  "bare_newline normalize\n"
		  "queue_retry 15m\n"
		  "queue_lifetime 3d\n"
		  "log_level debug\n");
	assert_string_equal(c.hostname, "mail.example.com");
	assert_int_equal(c.ndomains, 2);
	assert_string_equal(c.domains[1], "example.org");
	assert_string_equal(c.data_dir, "/var/lib/tern");
	assert_string_equal(c.user, "_tern");
	assert_int_equal(c.workers, 4);
	assert_int_equal(c.nlisteners, 1);
	assert_string_equal(c.users_file, "/etc/tern/users");
	assert_string_equal(c.maildir, "/var/mail/%d/%u");
	assert_int_equal(c.max_message_size, 50 * 1024 * 1024);
	assert_int_equal(c.max_recipients, 1000);
	assert_int_equal(c.max_errors, 3);
	assert_int_equal(c.max_connections, 200);
	assert_int_equal(c.max_connections_per_ip, 5);
	assert_int_equal(c.idle_timeout, 300);
	assert_int_equal(c.data_timeout, 600);
	assert_int_equal(c.session_timeout, 7200);
	assert_int_equal(c.bare_newline, DATA_BARE_NORMALIZE);
	assert_int_equal(c.queue_retry, 900);
	assert_int_equal(c.queue_lifetime, 3 * 86400);
	assert_string_equal(c.log_level, "debug");
	expect_ok("workers auto\nbare_newline reject\nlog_level warn\n");
	assert_int_equal(c.workers, 0);
	assert_int_equal(c.bare_newline, DATA_BARE_REJECT);
	assert_string_equal(c.log_level, "warn");
}

static void test_sizes(void **state)
{
	static const struct { const char *text; uint64_t v; } cases[] = {
		{ "1024", 1024 }, { "1K", 1024 }, { "1k", 1024 }, { "10M", 10 << 20 },
		{ "2G", 2ULL << 30 }, { "0002048", 2048 }, { "1048576", 1 << 20 },
	};
	char line[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(line, sizeof line, "max_message_size %s\n", cases[i].text);
		expect_ok(line);
		assert_int_equal(c.max_message_size, cases[i].v);
	}
}

static void test_durations(void **state)
{
	static const struct { const char *text; uint32_t v; } cases[] = {
		{ "45", 45 }, { "45s", 45 }, { "2m", 120 }, { "3h", 10800 },
		{ "1d", 86400 }, { "1D", 86400 }, { "90M", 5400 },
	};
	char line[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(line, sizeof line, "idle_timeout %s\n", cases[i].text);
		expect_ok(line);
		assert_int_equal(c.idle_timeout, cases[i].v);
	}
	expect_ok("queue_lifetime 60d\n");
	assert_int_equal(c.queue_lifetime, 60 * 86400);
}

static void test_domains(void **state)
{
	(void)state;
	expect_ok("domains Example.COM\tb.example\n# more\ndomains c.example xn--bcher-kva.example\n");
	assert_true(c.domains_set);
	assert_int_equal(c.ndomains, 4);
	assert_string_equal(c.domains[0], "example.com");
	assert_string_equal(c.domains[3], "xn--bcher-kva.example");
	assert_false(conf_is_local_domain(&c, "localhost"));
	assert_true(conf_is_local_domain(&c, "EXAMPLE.com"));
	assert_false(conf_is_local_domain(&c, "example.co"));
	assert_false(conf_is_local_domain(&c, NULL));
	expect_ok("domains localhost a-b.example 123.example example.123abc\n");
	assert_int_equal(c.ndomains, 4);
}

static void test_listen_forms(void **state)
{
	(void)state;
	expect_ok("listen 2525 mx\n"
		  "listen 127.0.0.1:2587 submission\n"
		  "listen [::1]:2465 submissions greet_pause 2s\n"
		  "listen [0:0::0:1]:2526 submission-alt greet_pause 500ms\n"
		  "listen 3000 mx greet_pause 0\n");
	assert_true(c.listeners_set);
	assert_int_equal(c.nlisteners, 5);
	assert_string_equal(c.listeners[0].addr, "");
	assert_int_equal(c.listeners[0].port, 2525);
	assert_int_equal(c.listeners[0].role, ROLE_MX);
	assert_false(c.listeners[0].is_default);
	assert_int_equal(c.listeners[0].line, 1);
	assert_string_equal(c.listeners[1].addr, "127.0.0.1");
	assert_int_equal(c.listeners[1].role, ROLE_SUBMISSION);
	assert_string_equal(c.listeners[2].addr, "::1");
	assert_int_equal(c.listeners[2].greet_pause_ms, 2000);
	assert_int_equal(c.listeners[2].line, 3);
	assert_string_equal(c.listeners[3].addr, "::1");	/* normalized */
	assert_int_equal(c.listeners[3].role, ROLE_SUBMISSION_ALT);
	assert_int_equal(c.listeners[3].greet_pause_ms, 500);
	assert_int_equal(c.listeners[4].greet_pause_ms, 0);
	expect_ok("listen 2525 mx greet_pause 30\n");
	assert_int_equal(c.listeners[0].greet_pause_ms, 30000);

	/* A second file adds to the first file's listeners. */
	assert_int_equal(conf_load_mem(&c, "b.conf", "listen 2526 mx\n", 15, err, sizeof err), 0);
	assert_int_equal(c.nlisteners, 2);
	assert_string_equal(c.source, "b.conf");
}

/* DESIGN.md's table: the role sets TLS and AUTH; options override each. */
static void test_listen_policy(void **state)
{
	static const struct { const char *text, *msg; } bad[] = {
		{ "listen 2525 mx tls sometimes\n",
		  "ternd.conf:1: listen: unknown tls mode 'sometimes' (one of: none, optional, required, implicit)" },
		{ "listen 2525 mx auth maybe\n",
		  "ternd.conf:1: listen: unknown auth mode 'maybe' (one of: none, optional, required)" },
		{ "listen 2525 mx tls none tls optional\n",
		  "ternd.conf:1: listen: option 'tls' given twice" },
		{ "listen 2525 mx plaintext_auth always\n",
		  "ternd.conf:1: listen: unknown plaintext_auth value 'always' (one of: loopback)" },
		{ "listen 2587 submission tls none\n",
		  "ternd.conf:1: listen: auth required with tls none: no client could ever log in "
		  "(use tls optional or required, or plaintext_auth loopback for a local-only port)" },
		{ "listen 2525 mx tls\n",
		  "ternd.conf:1: listen: missing value (usage: listen [ADDR:]PORT ROLE [tls none|optional|required|implicit] "
		  "[auth none|optional|required] [plaintext_auth loopback] [greet_pause DURATION])" },
	};

	(void)state;
	conf_defaults(&c);
	assert_int_equal(c.listeners[0].tls, LISTEN_TLS_OPTIONAL);
	assert_int_equal(c.listeners[0].auth, LISTEN_AUTH_NONE);
	assert_int_equal(c.listeners[1].tls, LISTEN_TLS_REQUIRED);
	assert_int_equal(c.listeners[1].auth, LISTEN_AUTH_REQUIRED);
	assert_int_equal(c.listeners[2].tls, LISTEN_TLS_IMPLICIT);
	assert_int_equal(c.listeners[2].auth, LISTEN_AUTH_REQUIRED);
	assert_int_equal(c.listeners[3].tls, LISTEN_TLS_REQUIRED);
	assert_int_equal(c.listeners[3].auth, LISTEN_AUTH_REQUIRED);
	expect_ok("listen 2525 mx auth optional\n"
		  "listen 2587 submission tls optional auth optional greet_pause 1s\n"
		  "listen 127.0.0.1:2588 submission tls none plaintext_auth loopback\n"
		  "listen 2465 mx tls implicit\n"
		  "listen 2526 submission-alt\n");
	assert_int_equal(c.listeners[0].tls, LISTEN_TLS_OPTIONAL);
	assert_int_equal(c.listeners[0].auth, LISTEN_AUTH_OPTIONAL);
	assert_int_equal(c.listeners[1].tls, LISTEN_TLS_OPTIONAL);
	assert_int_equal(c.listeners[1].auth, LISTEN_AUTH_OPTIONAL);
	assert_int_equal(c.listeners[1].greet_pause_ms, 1000);
	assert_int_equal(c.listeners[2].tls, LISTEN_TLS_NONE);
	assert_true(c.listeners[2].plaintext_auth_loopback);
	assert_false(c.listeners[1].plaintext_auth_loopback);
	assert_int_equal(c.listeners[3].tls, LISTEN_TLS_IMPLICIT);
	assert_int_equal(c.listeners[3].auth, LISTEN_AUTH_NONE);
	assert_int_equal(c.listeners[4].tls, LISTEN_TLS_REQUIRED);
	assert_string_equal(conf_tls_name(LISTEN_TLS_IMPLICIT), "implicit");
	assert_string_equal(conf_auth_name(LISTEN_AUTH_OPTIONAL), "optional");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		conf_defaults(&c);
		assert_int_equal(conf_load_mem(&c, "ternd.conf", bad[i].text, strlen(bad[i].text),
					       err, sizeof err), -1);
		assert_string_equal(err, bad[i].msg);
	}
}

static void test_auth_mechanisms(void **state)
{
	(void)state;
	conf_defaults(&c);
	assert_int_equal(c.auth_mechs, AUTH_MECH_PLAIN | AUTH_MECH_LOGIN | AUTH_MECH_SCRAM_SHA256);
	expect_ok("auth_mechanisms plain cram-md5\n");
	assert_int_equal(c.auth_mechs, AUTH_MECH_PLAIN | AUTH_MECH_CRAM_MD5);
	expect_ok("auth_mechanisms SCRAM-SHA-256   # strongest only\n");
	assert_int_equal(c.auth_mechs, AUTH_MECH_SCRAM_SHA256);
	conf_defaults(&c);
	assert_int_equal(load("\nauth_mechanisms PLAIN DIGEST-MD5\n"), -1);
	assert_string_equal(err, "ternd.conf:2: auth_mechanisms: unknown mechanism 'DIGEST-MD5' "
				 "(one of: PLAIN, LOGIN, SCRAM-SHA-256, CRAM-MD5)");
	assert_int_equal(load("auth_mechanisms\n"), -1);
	assert_int_equal(load("auth_mechanisms PLAIN\nauth_mechanisms LOGIN\n"), -1);
}

/* Outbound: smarthost port order, TLS policies, LMTP, ETRN clients. */
static void test_outbound_knobs(void **state)
{
	static const struct { const char *text, *msg; } bad[] = {
		{ "relay mx.example\n", "ternd.conf:1: relay: unknown relay kind 'mx.example' (one of: smarthost)" },
		{ "relay smarthost smtp.example port 0\n", "ternd.conf:1: relay: port '0' is not 1 to 65535" },
		{ "relay smarthost smtp.example tls\n", "ternd.conf:1: relay: tls without port: give the port it applies to" },
		{ "relay smarthost smtp.example fallback 465\n",
		  "ternd.conf:1: relay: fallback '465': write PORT/MODE, e.g. 465/tls" },
		{ "relay smarthost smtp.example fallback 465/ssl\n",
		  "ternd.conf:1: relay: unknown mode 'ssl' (one of: starttls, tls, plain)" },
		{ "smtp_tls_policy bank.example strict\n",
		  "ternd.conf:1: smtp_tls_policy: unknown level 'strict' (one of: may, encrypt, verify)" },
		{ "smtp_tls_policy a.example verify\nsmtp_tls_policy A.example may\n",
		  "ternd.conf:2: smtp_tls_policy: a policy for 'a.example' is given twice" },
		{ "deliver lmtp run/lmtp\n",
		  "ternd.conf:1: deliver: LMTP address 'run/lmtp' is neither unix:/PATH nor HOST:PORT" },
		{ "deliver lmtp unix:run/lmtp\n",
		  "ternd.conf:1: deliver: LMTP socket 'unix:run/lmtp' must be an absolute path (unix:/run/dovecot/lmtp)" },
		{ "deliver lmtp 127.0.0.1:99999\n",
		  "ternd.conf:1: deliver: LMTP address '127.0.0.1:99999': the port must be 1 to 65535" },
		{ "transport corp.example 10.0.0.5\n",
		  "ternd.conf:1: transport: '10.0.0.5': write HOST:PORT or [ADDRESS]:PORT" },
		{ "transport corp.example [10.0.0.5]:0\n",
		  "ternd.conf:1: transport: '[10.0.0.5]:0': the port must be 1 to 65535" },
		{ "transport a.example h.example:25\ntransport a.example i.example:25\n",
		  "ternd.conf:2: transport: a transport for 'a.example' is given twice" },
		{ "etrn_allow 10.0.0.0/33\n", "ternd.conf:1: etrn_allow: '10.0.0.0/33': the prefix length is out of range" },
		{ "etrn_allow backup.example\n", "ternd.conf:1: etrn_allow: 'backup.example' is not an IP address or network" },
		{ "quarantine_folder ../Junk\n", "ternd.conf:1: quarantine_folder: '../Junk' is not a folder name: use 1-64 letters, digits, '-' or '_', or none" },
		{ "mail_auth_ignore none 127.0.0.1\n", "ternd.conf:1: mail_auth_ignore: too many values at '127.0.0.1' (usage: mail_auth_ignore ADDR[/LEN] [ADDR[/LEN]...] | none)" },
		{ "spf_reject softfail\n", "ternd.conf:1: spf_reject: unknown value 'softfail' (one of: off, fail)" },
	};

	(void)state;
	conf_defaults(&c);
	assert_string_equal(c.relay.host, "");
	assert_int_equal(c.smtp_tls, SMTP_TLS_MAY);
	assert_int_equal(c.deliver, DELIVER_MAILDIR);
	expect_ok("relay smarthost SMTP.Provider.example auth app /etc/tern/relay.pw\n");
	assert_string_equal(c.relay.host, "smtp.provider.example");
	assert_int_equal(c.relay.nports, 3);
	assert_int_equal(c.relay.ports[0].port, 587);
	assert_int_equal(c.relay.ports[0].mode, RELAY_STARTTLS);
	assert_int_equal(c.relay.ports[1].port, 465);
	assert_int_equal(c.relay.ports[1].mode, RELAY_TLS);
	assert_int_equal(c.relay.ports[2].port, 2525);
	assert_string_equal(c.relay.auth_user, "app");
	assert_string_equal(c.relay.auth_file, "/etc/tern/relay.pw");
	expect_ok("relay smarthost smtp.provider.example port 465\n");
	assert_int_equal(c.relay.nports, 3);
	assert_int_equal(c.relay.ports[0].port, 465);
	assert_int_equal(c.relay.ports[0].mode, RELAY_TLS);
	assert_int_equal(c.relay.ports[1].port, 587);
	assert_int_equal(c.relay.ports[2].port, 2525);
	expect_ok("relay smarthost smtp.provider.example port 2525 starttls fallback 25/plain,2525/starttls\n");
	assert_int_equal(c.relay.nports, 2);
	assert_int_equal(c.relay.ports[0].port, 2525);
	assert_int_equal(c.relay.ports[1].port, 25);
	assert_int_equal(c.relay.ports[1].mode, RELAY_PLAIN);
	expect_ok("smtp_tls encrypt\nsmtp_tls_policy Bank.example verify\nsmtp_tls_policy old.example may\n");
	assert_int_equal(c.smtp_tls, SMTP_TLS_ENCRYPT);
	assert_int_equal(c.ntls_policies, 2);
	assert_string_equal(c.tls_policies[0].domain, "bank.example");
	assert_int_equal(c.tls_policies[0].level, SMTP_TLS_VERIFY);
	expect_ok("deliver lmtp unix:/run/dovecot/lmtp\n");
	assert_int_equal(c.deliver, DELIVER_LMTP);
	assert_string_equal(c.lmtp, "unix:/run/dovecot/lmtp");
	expect_ok("deliver lmtp 127.0.0.1:24\n");
	assert_string_equal(c.lmtp, "127.0.0.1:24");
	expect_ok("etrn_allow 192.0.2.7 2001:db8::/32 10.0.0.0/8\n");
	assert_string_equal(c.etrn_allow, "192.0.2.7 2001:db8::/32 10.0.0.0/8");
	expect_ok("transport corp.example [10.0.0.5]:25\ntransport Bench.Test relay.example:2525\n"
		  "trusted_networks 127.0.0.0/8 ::1\n");
	assert_int_equal(c.ntransports, 2);
	assert_string_equal(c.transports[0].host, "[10.0.0.5]");
	assert_int_equal(c.transports[0].port, 25);
	assert_string_equal(c.transports[1].domain, "bench.test");
	assert_string_equal(c.transports[1].host, "relay.example");
	assert_string_equal(c.trusted_networks, "127.0.0.0/8 ::1");
	assert_string_equal(c.mail_auth_ignore, "127.0.0.0/8 ::1");	/* the default */
	expect_ok("mail_auth_ignore none\nquarantine_folder Spam\nauthserv_id MX.Example.NET\n");
	assert_string_equal(c.mail_auth_ignore, "");
	assert_string_equal(c.quarantine_folder, "Spam");
	assert_string_equal(c.authserv_id, "mx.example.net");
	expect_ok("dns_server 127.0.0.1:5353\ndns_timeout 250ms\n");
	assert_string_equal(c.dns_server, "127.0.0.1:5353");
	assert_int_equal(c.dns_timeout_ms, 250);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		conf_defaults(&c);
		assert_int_equal(conf_load_mem(&c, "ternd.conf", bad[i].text, strlen(bad[i].text),
					       err, sizeof err), -1);
		if (strcmp(err, bad[i].msg) != 0)
			fail_msg("case %zu:\n got  %s\n want %s", i, err, bad[i].msg);
	}
}

static void test_listen_replaces_defaults(void **state)
{
	(void)state;
	expect_ok("max_errors 5\n");
	assert_int_equal(c.nlisteners, 4);
	assert_int_equal(load_finish("listen 127.0.0.1:10025 mx\n", false), 0);
	assert_int_equal(c.nlisteners, 1);
	assert_int_equal(c.listeners[0].port, 10025);
}

static void test_listen_privileged(void **state)
{
	(void)state;
	assert_int_equal(load_finish("# mine\nlisten 2525 mx\nlisten 25 mx\n", false), -1);
	assert_string_equal(err, "ternd.conf:3: port 25 needs root (or CAP_NET_BIND_SERVICE)");
	assert_int_equal(load_finish("listen 2525 mx\nlisten 25 mx\n", true), 0);
	assert_int_equal(c.listeners[1].port, 25);	/* not remapped: from the file */
	assert_int_equal(load_finish("listen 1024 mx\n", false), 0);
}

static void test_listen_overlap(void **state)
{
	static const struct { const char *text, *msg; } cases[] = {
		{ "listen 2525 mx\nlisten 2525 submission\n",
		  "ternd.conf:2: listen: port 2525 (all addresses) overlaps port 2525 (all addresses) on line 1" },
		{ "listen 2525 mx\n\nlisten 127.0.0.1:2525 submission\n",
		  "ternd.conf:3: listen: 127.0.0.1:2525 overlaps port 2525 (all addresses) on line 1" },
		{ "listen [::1]:2525 mx\nlisten [0::1]:2525 mx\n",
		  "ternd.conf:2: listen: [::1]:2525 overlaps [::1]:2525 on line 1" },
		{ "listen 0.0.0.0:2525 mx\nlisten 127.0.0.1:2525 mx\n",
		  "ternd.conf:2: listen: 127.0.0.1:2525 overlaps 0.0.0.0:2525 on line 1" },
		{ "listen [::]:2525 mx\nlisten [::1]:2525 mx\n",
		  "ternd.conf:2: listen: [::1]:2525 overlaps [::]:2525 on line 1" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(load_finish(cases[i].text, true), -1);
		assert_string_equal(err, cases[i].msg);
	}
	/* Different ports, or different families on one port, are fine. */
	assert_int_equal(load_finish("listen 127.0.0.1:2525 mx\nlisten 127.0.0.2:2525 mx\n"
				     "listen 0.0.0.0:2526 mx\nlisten [::1]:2526 mx\n"
				     "listen 2527 mx\n", true), 0);
}

static void test_limits_counts(void **state)
{
	char text[64 * 24 + 64];
	size_t i, n = 0;

	(void)state;
	for (i = 0; i < CONF_MAX_LISTENERS; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "listen %zu mx\n", 3000 + i);
	expect_ok(text);
	assert_int_equal(c.nlisteners, CONF_MAX_LISTENERS);
	snprintf(text + n, sizeof text - n, "listen 4000 mx\n");
	assert_int_equal(load(text), -1);
	assert_string_equal(err, "ternd.conf:33: listen: more than 32 listeners");

	n = (size_t)snprintf(text, sizeof text, "domains");
	for (i = 0; i < CONF_MAX_DOMAINS; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, " d%zu.example", i);
	expect_ok(text);
	assert_int_equal(c.ndomains, CONF_MAX_DOMAINS);
	snprintf(text + n, sizeof text - n, "\ndomains one.more\n");
	assert_int_equal(load(text), -1);
	assert_string_equal(err, "ternd.conf:2: domains: more than 64 domains");
}

/* ---- error messages, each with its line ---- */

static void test_errors(void **state)
{
	static const struct { const char *text, *msg; } cases[] = {
		{ "max_recipent 5\n",
		  "ternd.conf:1: unknown keyword 'max_recipent' (did you mean 'max_recipients'?)" },
		{ "\n# x\n\nHostname a.example\n",
		  "ternd.conf:4: unknown keyword 'Hostname' (did you mean 'hostname'?)" },
		{ "frobnicate yes\n", "ternd.conf:1: unknown keyword 'frobnicate'" },
		{ "tls cert /x\n", "ternd.conf:1: unknown keyword 'tls'" },
		{ "max_errors 3\nlisten 25 smtp\n",
		  "ternd.conf:2: listen: unknown role 'smtp' (one of: mx, submission, submissions, submission-alt)" },
		{ "max_message_size 10X\n",
		  "ternd.conf:1: max_message_size: '10X' is not a size (use a number with K, M or G)" },
		{ "max_message_size -1\n",
		  "ternd.conf:1: max_message_size: '-1' is not a size (use a number with K, M or G)" },
		{ "max_message_size 1.5M\n",
		  "ternd.conf:1: max_message_size: '1.5M' is not a size (use a number with K, M or G)" },
		{ "max_message_size 1023\n",
		  "ternd.conf:1: max_message_size: '1023' is out of range (1K to 2G)" },
		{ "max_message_size 3G\n",
		  "ternd.conf:1: max_message_size: '3G' is out of range (1K to 2G)" },
		{ "max_message_size 99999999999999999999\n",
		  "ternd.conf:1: max_message_size: '99999999999999999999' is out of range (1K to 2G)" },
		{ "max_message_size 17179869184G\n",
		  "ternd.conf:1: max_message_size: '17179869184G' is out of range (1K to 2G)" },
		{ "hostname\n", "ternd.conf:1: hostname: missing value (usage: hostname NAME)" },
		{ "hostname # none\n", "ternd.conf:1: hostname: missing value (usage: hostname NAME)" },
		{ "hostname a.example b.example\n",
		  "ternd.conf:1: hostname: too many values at 'b.example' (usage: hostname NAME)" },
		{ "hostname a.example\n\nhostname b.example\n",
		  "ternd.conf:3: hostname: given twice (first on line 1)" },
		{ "hostname a_b.example\n",
		  "ternd.conf:1: hostname: 'a_b.example' is not a valid host name: it has a character other than letters, digits, '-' and '.'" },
		{ "max_recipients 0\n",
		  "ternd.conf:1: max_recipients: '0' is out of range (1 to 100000)" },
		{ "max_recipients 100001\n",
		  "ternd.conf:1: max_recipients: '100001' is out of range (1 to 100000)" },
		{ "max_recipients many\n", "ternd.conf:1: max_recipients: 'many' is not a number" },
		{ "max_recipients 10 20\n",
		  "ternd.conf:1: max_recipients: too many values at '20' (usage: max_recipients N)" },
		{ "max_errors 5\nmax_errors 6\n", "ternd.conf:2: max_errors: given twice (first on line 1)" },
		{ "workers 65\n", "ternd.conf:1: workers: '65' is out of range (1 to 64, or auto)" },
		{ "workers 0\n", "ternd.conf:1: workers: '0' is out of range (1 to 64, or auto)" },
		{ "workers lots\n", "ternd.conf:1: workers: 'lots' is not a number or 'auto'" },
		{ "idle_timeout 5x\n",
		  "ternd.conf:1: idle_timeout: '5x' is not a duration (use a number with s, m, h or d)" },
		{ "idle_timeout 0\n", "ternd.conf:1: idle_timeout: '0' is out of range (1s to 1d)" },
		{ "queue_lifetime 61d\n", "ternd.conf:1: queue_lifetime: '61d' is out of range (1s to 60d)" },
		{ "session_timeout 999999999999999999999d\n",
		  "ternd.conf:1: session_timeout: '999999999999999999999d' is out of range (1s to 7d)" },
		{ "bare_newline maybe\n",
		  "ternd.conf:1: bare_newline: unknown value 'maybe' (one of: reject, normalize)" },
		{ "log_level trace\n",
		  "ternd.conf:1: log_level: unknown value 'trace' (one of: debug, info, warn)" },
		{ "log_level info\nlog_level warn\n", "ternd.conf:2: log_level: given twice (first on line 1)" },
		{ "data_dir \"\"\n", "ternd.conf:1: data_dir: empty value (usage: data_dir DIR)" },
		{ "user abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234\n",
		  "ternd.conf:1: user: value longer than 63 bytes" },
		{ "domains\n", "ternd.conf:1: domains: missing value (usage: domains DOMAIN [DOMAIN...])" },
		{ "domains ex_ample.com\n",
		  "ternd.conf:1: domains: 'ex_ample.com' is not a valid domain: it has a character other than letters, digits, '-' and '.'" },
		{ "domains a.example, b.example\n",
		  "ternd.conf:1: domains: 'a.example,' is not a valid domain: it contains ',' (separate domains with spaces)" },
		{ "domains example.com.\n",
		  "ternd.conf:1: domains: 'example.com.' is not a valid domain: it has an empty label (two dots in a row, or a dot at either end)" },
		{ "domains a..example\n",
		  "ternd.conf:1: domains: 'a..example' is not a valid domain: it has an empty label (two dots in a row, or a dot at either end)" },
		{ "domains 192.0.2.1\n",
		  "ternd.conf:1: domains: '192.0.2.1' is not a valid domain: it looks like an IP address; a domain is wanted" },
		{ "domains -a.example\n",
		  "ternd.conf:1: domains: '-a.example' is not a valid domain: it has a label that starts or ends with '-'" },
		{ "domains a-.example\n",
		  "ternd.conf:1: domains: 'a-.example' is not a valid domain: it has a label that starts or ends with '-'" },
		{ "domains b\xc3\xbc" "cher.example\n",
		  "ternd.conf:1: domains: 'b\xc3\xbc" "cher.example' is not a valid domain: it is not ASCII (write an international name in its xn-- form)" },
		{ "domains aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example\n",
		  "ternd.conf:1: domains: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is not a valid domain: it has a label longer than 63 characters" },
		{ "domains a.example\ndomains b.example A.EXAMPLE\n",
		  "ternd.conf:2: domains: 'A.EXAMPLE' is listed twice" },
		{ "listen\n",
		  "ternd.conf:1: listen: missing value (usage: listen [ADDR:]PORT ROLE [tls none|optional|required|implicit] [auth none|optional|required] [plaintext_auth loopback] [greet_pause DURATION])" },
		{ "listen 2525\n",
		  "ternd.conf:1: listen: missing value (usage: listen [ADDR:]PORT ROLE [tls none|optional|required|implicit] [auth none|optional|required] [plaintext_auth loopback] [greet_pause DURATION])" },
		{ "listen 1.2.3:25 mx\n",
		  "ternd.conf:1: listen: '1.2.3' is not an IPv4 address (no address means all addresses)" },
		{ "listen localhost:25 mx\n",
		  "ternd.conf:1: listen: 'localhost' is not an IPv4 address (no address means all addresses)" },
		{ "listen ::1:25 mx\n",
		  "ternd.conf:1: listen: '::1:25': put an IPv6 address in brackets, as in [::1]:25" },
		{ "listen [::1 mx\n",
		  "ternd.conf:1: listen: '[::1': write an IPv6 address and port as [ADDR]:PORT" },
		{ "listen [::1]25 mx\n",
		  "ternd.conf:1: listen: '[::1]25': write an IPv6 address and port as [ADDR]:PORT" },
		{ "listen [nope]:25 mx\n",
		  "ternd.conf:1: listen: 'nope' is not an IPv6 address (no address means all addresses)" },
		{ "listen 0 mx\n", "ternd.conf:1: listen: '0' is not a port (1 to 65535)" },
		{ "listen 65536 mx\n", "ternd.conf:1: listen: '65536' is not a port (1 to 65535)" },
		{ "listen 127.0.0.1: mx\n", "ternd.conf:1: listen: '' is not a port (1 to 65535)" },
		{ "listen smtp mx\n", "ternd.conf:1: listen: 'smtp' is not a port (1 to 65535)" },
		{ "listen 2525 mx greet_pause 31s\n",
		  "ternd.conf:1: listen: greet_pause: '31s' is out of range (0 to 30s)" },
		{ "listen 2525 mx greet_pause soon\n",
		  "ternd.conf:1: listen: greet_pause: 'soon' is not a duration (use a number with ms, s or m)" },
		{ "listen 2525 mx greet_pause\n",
		  "ternd.conf:1: listen: missing value (usage: listen [ADDR:]PORT ROLE [tls none|optional|required|implicit] [auth none|optional|required] [plaintext_auth loopback] [greet_pause DURATION])" },
		{ "listen 2525 mx starttls\n",
		  "ternd.conf:1: listen: unknown option 'starttls' (usage: listen [ADDR:]PORT ROLE [tls none|optional|required|implicit] [auth none|optional|required] [plaintext_auth loopback] [greet_pause DURATION])" },
		{ "listen 2525 mx greet_pause 1s 2s\n",
		  "ternd.conf:1: listen: unknown option '2s' (usage: listen [ADDR:]PORT ROLE [tls none|optional|required|implicit] [auth none|optional|required] [plaintext_auth loopback] [greet_pause DURATION])" },
		{ "deliver mbox /var/mail\n",
		  "ternd.conf:1: deliver: unknown method 'mbox' (one of: maildir, lmtp)" },
		{ "deliver maildir\n", "ternd.conf:1: deliver: missing value (usage: deliver maildir TEMPLATE | lmtp unix:PATH | lmtp HOST:PORT)" },
		{ "deliver maildir \"\"\n", "ternd.conf:1: deliver: empty template (usage: deliver maildir TEMPLATE | lmtp unix:PATH | lmtp HOST:PORT)" },
		{ "deliver maildir /var/%x/%u\n",
		  "ternd.conf:1: deliver: '%x' in '/var/%x/%u' is not an escape (use %d domain, %u local part, %% a percent sign)" },
		{ "deliver maildir /var/%%/%\xc3\xa9\n",
		  "ternd.conf:1: deliver: '%\xc3\xa9' in '/var/%%/%\xc3\xa9' is not an escape (use %d domain, %u local part, %% a percent sign)" },
		{ "deliver maildir /var/%d%\n",
		  "ternd.conf:1: deliver: '%' in '/var/%d%' is not an escape (use %d domain, %u local part, %% a percent sign)" },
		{ "deliver maildir /a\ndeliver maildir /b\n", "ternd.conf:2: deliver: given twice (first on line 1)" },
		{ "deliver maildir /a /b\n",
		  "ternd.conf:1: deliver: too many values at '/b' (usage: deliver maildir TEMPLATE | lmtp unix:PATH | lmtp HOST:PORT)" },
		{ "hostname \"a.example\n", "ternd.conf:1: hostname: missing closing '\"'" },
		{ "hostname \"a.example\"x\n",
		  "ternd.conf:1: hostname: text right after a closing '\"' (put a space between values)" },
		{ "hostname a\"b\"\n",
		  "ternd.conf:1: hostname: stray '\"' in the middle of a value (quotes go around a whole value)" },
		{ "\"unclosed\n", "ternd.conf:1: missing closing '\"'" },
		{ "max_errors 3\nhostname a.example\x01\n", "ternd.conf:2: control character 0x01 at column 19" },
		{ "hostname a.example\r\rx\n", "ternd.conf:1: control character 0x0d at column 19" },
		{ "# \xff\n", "ternd.conf:1: not valid UTF-8 at column 3" },
		{ "\n\ndata_dir /a\xc0\xaf\n", "ternd.conf:3: not valid UTF-8 at column 12" },
		{ "data_dir /\xed\xa0\x80\n", "ternd.conf:1: not valid UTF-8 at column 11" },
		{ "data_dir /\xf4\x90\x80\x80\n", "ternd.conf:1: not valid UTF-8 at column 11" },
		{ "data_dir /\xe2\x82\n", "ternd.conf:1: not valid UTF-8 at column 11" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (load(cases[i].text) != -1)
			fail_msg("case %zu was accepted: %s", i, cases[i].text);
		if (strcmp(err, cases[i].msg) != 0)
			fail_msg("case %zu:\n got  %s\n want %s", i, err, cases[i].msg);
	}
}

static void test_nul_byte(void **state)
{
	static const char text[] = "max_errors 3\nho\0stname x\n";

	(void)state;
	assert_int_equal(load_n(text, sizeof text - 1), -1);
	assert_string_equal(err, "ternd.conf:2: NUL byte at column 3");
}

static void test_long_lines(void **state)
{
	static char text[5000 + 20];
	size_t n;

	(void)state;
	/* 4096 bytes is the longest line, with or without CR LF. */
	n = (size_t)snprintf(text, sizeof text, "\n#");
	memset(text + n, 'x', 4095);
	memcpy(text + n + 4095, "\r\nworkers 2\n", 13);
	expect_ok(text);
	assert_int_equal(c.workers, 2);

	n = (size_t)snprintf(text, sizeof text, "\n\n#");
	memset(text + n, 'x', 4096);
	memcpy(text + n + 4096, "\nworkers 2\n", 12);
	assert_int_equal(load(text), -1);
	assert_string_equal(err, "ternd.conf:3: line longer than 4096 bytes");

	/* The same without a final newline. */
	text[n + 4096] = '\0';
	assert_int_equal(load(text), -1);
	assert_string_equal(err, "ternd.conf:3: line longer than 4096 bytes");
}

static void test_small_err_buffer(void **state)
{
	char small[16];

	(void)state;
	conf_defaults(&c);
	assert_int_equal(conf_load_mem(&c, "ternd.conf", "max_recipent 5", 14, small, sizeof small), -1);
	assert_string_equal(small, "ternd.conf:1: u");
	assert_int_equal(conf_load_mem(&c, "ternd.conf", "max_recipent 5", 14, NULL, 0), -1);
}

/* ---- files ---- */

static void test_missing_file(void **state)
{
	(void)state;
	conf_defaults(&c);
	assert_int_equal(conf_load_file(&c, "/nonexistent/ternd.conf", err, sizeof err), -1);
	assert_string_equal(err, "/nonexistent/ternd.conf: cannot read: No such file or directory");
	assert_int_equal(conf_load_file(&c, "/", err, sizeof err), -1);
	assert_string_equal(err, "/: cannot read: Is a directory");
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/test_conf_XXXXXX", want[128];
	static const char text[] = "hostname f.example\nmax_errors 2\nmax_errors 3\n";
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, 32), 32);
	conf_defaults(&c);
	assert_int_equal(conf_load_file(&c, path, err, sizeof err), 0);
	assert_string_equal(c.source, path);
	assert_string_equal(c.hostname, "f.example");
	assert_int_equal(c.max_errors, 2);
	assert_int_equal(write(fd, text + 32, sizeof text - 33), (ssize_t)(sizeof text - 33));
	conf_defaults(&c);
	assert_int_equal(conf_load_file(&c, path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:3: max_errors: given twice (first on line 2)", path);
	assert_string_equal(err, want);
	close(fd);
	unlink(path);
}

static void test_sample_config(void **state)
{
	(void)state;
	conf_defaults(&c);
	if (conf_load_file(&c, SAMPLE, err, sizeof err) < 0)
		fail_msg("%s", err);
	if (conf_finish(&c, true, err, sizeof err) < 0)
		fail_msg("%s", err);
	assert_true(c.nlisteners >= 4);
	conf_free(&c);
}

/* ---- the knob table, --help-config and the docs ---- */

static void test_role_names(void **state)
{
	char line[64];
	int r;

	(void)state;
	for (r = ROLE_MX; r <= ROLE_SUBMISSION_ALT; r++) {
		snprintf(line, sizeof line, "listen 2525 %s\n", conf_role_name((enum listener_role)r));
		expect_ok(line);
		assert_int_equal(c.listeners[0].role, r);
	}
	assert_string_equal(conf_role_name(ROLE_MX), "mx");
	assert_string_equal(conf_role_name(ROLE_SUBMISSION_ALT), "submission-alt");
	assert_string_equal(conf_role_name((enum listener_role)99), "unknown");
}

/* Every default parses to itself, and min and max are accepted and stored
 * exactly while one past them is refused. */
static void test_knob_bounds(void **state)
{
	const struct tknob *k;
	char line[128];

	(void)state;
	for (k = tknobs; k < tknobs + NTKNOBS; k++) {
		if (!is_numeric(k))
			continue;
		const char *unit = strcmp(k->kind, "K_MSECS") == 0 ? "ms" : "";

		conf_defaults(&c);
		assert_int_equal(field_uint(k), tstored(k, k->dflt));
		assert_non_null(k->min);
		snprintf(line, sizeof line, "%s %s\n", k->name, k->min);
		expect_ok(line);
		assert_int_equal(field_uint(k), tstored(k, k->min));
		snprintf(line, sizeof line, "%s %s\n", k->name, k->max);
		expect_ok(line);
		assert_int_equal(field_uint(k), tstored(k, k->max));
		snprintf(line, sizeof line, "%s %llu%s\n", k->name,
			 (unsigned long long)tstored(k, k->max) + 1, unit);
		assert_int_equal(load(line), -1);
		snprintf(line, sizeof line, "%s %llu%s\n", k->name,
			 (unsigned long long)tstored(k, k->min) - 1, unit);
		assert_int_equal(load(line), -1);
	}
	for (k = tknobs; k < tknobs + NTKNOBS; k++)
		if (strcmp(k->kind, "K_STR") == 0 || strcmp(k->kind, "K_WORD") == 0) {
			conf_defaults(&c);
			assert_string_equal((const char *)&c + k->off, k->dflt);
		}
}

static void test_print_knobs(void **state)
{
	char *out = NULL, head[128];
	size_t len = 0, i;
	FILE *f;

	(void)state;
	f = open_memstream(&out, &len);
	assert_non_null(f);
	conf_print_knobs(f);
	fclose(f);
	for (i = 0; i < NTKNOBS; i++) {
		snprintf(head, sizeof head, "%s%s %s\n", i ? "\n" : "", tknobs[i].name, tknobs[i].syntax);
		if (strstr(out, head) == NULL)
			fail_msg("no \"%s\" in --help-config", tknobs[i].name);
	}
	assert_non_null(strstr(out, "    default: 25M; range: 1K to 2G\n"));
	free(out);
}

/* docs/ternd.conf.md has a "### `name ...`" section for every knob saying
 * "Default: `dflt`" ("none" for an empty default). */
static void test_docs_cover_knobs(void **state)
{
	static char doc[1 << 16];
	char head[128], want[256];
	const char *sec, *nextsec;
	size_t n, i;
	FILE *f;

	(void)state;
	f = fopen(DOCS, "r");
	if (f == NULL)
		fail_msg("cannot open %s (run the tests from the top directory)", DOCS);
	n = fread(doc, 1, sizeof doc - 1, f);
	fclose(f);
	assert_true(n < sizeof doc - 1);
	doc[n] = '\0';
	for (i = 0; i < NTKNOBS; i++) {
		snprintf(head, sizeof head, "\n### `%s %s`\n", tknobs[i].name, tknobs[i].syntax);
		sec = strstr(doc, head);
		if (sec == NULL)
			fail_msg("%s: no section \"%s\"", DOCS, head + 1);
		nextsec = strstr(sec + 1, "\n### ");
		snprintf(want, sizeof want, "Default: `%s`",
			 tknobs[i].dflt[0] ? tknobs[i].dflt : "none");
		sec = strstr(sec, want);
		if (sec == NULL || (nextsec != NULL && sec > nextsec))
			fail_msg("%s: section %s does not say \"%s\"", DOCS, tknobs[i].name, want);
	}
}

/* Write a fresh key's PEM (or text) to a temporary file of this mode. */
static void write_key(char *path, size_t cap, const char *text, enum dkim_alg alg, mode_t mode)
{
	struct buf b;
	struct dkim_key *k;
	char e[256];
	int fd;

	snprintf(path, cap, "/tmp/test_conf_dkim_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	buf_init(&b, 1 << 20);
	if (text != NULL) {
		assert_int_equal(buf_append(&b, text, strlen(text)), 0);
	} else {
		k = dkim_key_generate(alg, alg == DKIM_ALG_RSA_SHA256 ? 1024 : 0, e, sizeof e);
		assert_non_null(k);
		assert_int_equal(dkim_key_pem(k, &b), 0);
		dkim_key_free(k);
	}
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	buf_free(&b);
}

static void test_dkim_sign(void **state)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "dkim_sign example.org s1\n",
		  "ternd.conf:1: dkim_sign: missing value (usage: dkim_sign DOMAIN SELECTOR KEYFILE)" },
		{ "dkim_sign example.org s1 /k extra\n", "ternd.conf:1: dkim_sign: " },
		{ "dkim_sign exa_mple.org s1 /k\n",
		  "ternd.conf:1: dkim_sign: 'exa_mple.org' is not a valid domain" },
		{ "dkim_sign example.org s_1 /k\n", "ternd.conf:1: dkim_sign: selector 's_1' is not valid" },
		{ "dkim_sign example.org s1 /k\ndkim_sign Example.ORG S1 /j\n",
		  "ternd.conf:2: dkim_sign: selector 's1' of 'example.org' is given twice (first on line 1)" },
	};
	char text[4096], rsa[64], ed[64], open_[64], junk[64];
	size_t i, n = 0;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(load(bad[i].text), -1);
		if (strncmp(err, bad[i].want, strlen(bad[i].want)) != 0)
			fail_msg("for \"%s\": got \"%s\", want \"%s...\"", bad[i].text, err, bad[i].want);
	}
	for (i = 0; i <= CONF_MAX_DKIM; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "dkim_sign example.org s%zu /k\n", i);
	assert_int_equal(load(text), -1);
	assert_string_equal(err, "ternd.conf:17: dkim_sign: more than 16 keys");

	write_key(rsa, sizeof rsa, NULL, DKIM_ALG_RSA_SHA256, 0600);
	write_key(ed, sizeof ed, NULL, DKIM_ALG_ED25519_SHA256, 0400);
	write_key(open_, sizeof open_, NULL, DKIM_ALG_ED25519_SHA256, 0644);
	write_key(junk, sizeof junk, "not a key\n", DKIM_ALG_NONE, 0600);

	/* Two keys of one domain: both kept, in order, with their text. */
	snprintf(text, sizeof text, "dkim_sign Example.ORG RSA2024 %s\ndkim_sign example.org ed2024 %s\n",
		 rsa, ed);
	if (load_finish(text, false) != 0)
		fail_msg("%s", err);
	assert_int_equal(c.ndkim_sign, 2);
	assert_string_equal(c.dkim_sign[0].domain, "example.org");
	assert_string_equal(c.dkim_sign[0].selector, "rsa2024");
	assert_string_equal(c.dkim_sign[0].keyfile, rsa);
	assert_int_equal(c.dkim_sign[0].line, 1);
	assert_int_equal(c.dkim_sign[1].line, 2);
	assert_true(c.dkim_sign[0].pem_len > 0 && c.dkim_sign[1].pem_len > 0);
	assert_non_null(strstr(c.dkim_sign[0].pem, "-----BEGIN PRIVATE KEY-----"));
	conf_free(&c);
	assert_int_equal(c.dkim_sign[0].pem[0], '\0');

	/* Readable by others, missing, not a key: refused, naming the file. */
	snprintf(text, sizeof text, "dkim_sign example.org a %s\ndkim_sign example.org b %s\n", rsa, open_);
	assert_int_equal(load_finish(text, false), -1);
	n = (size_t)snprintf(text, sizeof text, "ternd.conf:2: dkim_sign: key file %s is readable by group or others (chmod 600 %s)",
			     open_, open_);
	assert_string_equal(err, text);
	snprintf(text, sizeof text, "dkim_sign example.org a %s.missing\n", rsa);
	assert_int_equal(load_finish(text, false), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	assert_non_null(strstr(err, rsa));
	snprintf(text, sizeof text, "dkim_sign example.org a %s\n", junk);
	assert_int_equal(load_finish(text, false), -1);
	assert_non_null(strstr(err, junk));
	assert_int_equal(strncmp(err, "ternd.conf:1: dkim_sign: key file ", 34), 0);
	unlink(rsa);
	unlink(ed);
	unlink(open_);
	unlink(junk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_default_listeners),
		cmocka_unit_test(test_finish_not_root_remaps),
		cmocka_unit_test(test_finish_root_keeps_ports),
		cmocka_unit_test(test_finish_derived),
		cmocka_unit_test(test_finish_maildir_from_data_dir),
		cmocka_unit_test(test_empty_and_comments),
		cmocka_unit_test(test_all_keywords),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_listen_forms),
		cmocka_unit_test(test_listen_policy),
		cmocka_unit_test(test_auth_mechanisms),
		cmocka_unit_test(test_outbound_knobs),
		cmocka_unit_test(test_listen_replaces_defaults),
		cmocka_unit_test(test_listen_privileged),
		cmocka_unit_test(test_listen_overlap),
		cmocka_unit_test(test_limits_counts),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_small_err_buffer),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_sample_config),
		cmocka_unit_test(test_role_names),
		cmocka_unit_test(test_knob_bounds),
		cmocka_unit_test(test_print_knobs),
		cmocka_unit_test(test_docs_cover_knobs),
		cmocka_unit_test(test_dkim_sign),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
