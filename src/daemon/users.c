/* users.c - the users file: load, look up, verify passwords, edit; see users.h. */
#include "users.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../lib/buf.h"
#include "../proto/scram.h"

#define USERS_LINE_MAX 4096
#define USERS_NAME_MAX 320
#define USERS_FILE_MAX (64u << 20)	/* a users file larger than this is a mistake */

/*
 * Hashed for an unknown name, so that a failed login costs the same time
 * whether or not the name exists. A yescrypt hash at the default cost
 * (the cost users_add uses) of a phrase nobody is given.
 */
static const char dummy_hash[] =
	"$y$j9T$Hc29tDKank3GXUAPM9des.$bGh1TsnIQmQnZY1PyqbLKyycOJdYUEZeEQ/WKuRKDr1";

/* Salt of the SCRAM derivation spent for accounts that are not SCRAM ones. */
static const uint8_t dummy_salt[SCRAM_SALT_DEFAULT] = {
	0x74, 0x65, 0x72, 0x6e, 0x2d, 0x64, 0x75, 0x6d,
	0x6d, 0x79, 0x2d, 0x73, 0x61, 0x6c, 0x74, 0x21,
};

#define SCHEME_SCRAM "SCRAM-SHA-256"

/* What users_verify does with a hash. */
enum kind { K_NONE, K_CRYPT, K_SCRAM, K_PLAIN };

/* One account while loading: the line number is kept for diagnostics. */
struct entry {
	char *name;
	char *hash;
	char *senders;
	char scheme[24];
	unsigned line;
};

/*
 * Dovecot's passwd-file has user:password:uid:gid:gecos:home:shell:extra,
 * extra being space-separated key=value fields. tern reads one of them:
 * senders=LIST, the addresses (or @domain) the user may send as besides its
 * own. Returns the list (malloc'd, lower case), NULL when absent, or sets
 * *bad when a field is malformed.
 */
static char *extra_senders(char *rest, bool *bad)
{
	char *f = rest;

	*bad = false;
	for (int i = 0; i < 5 && f != NULL; i++) {
		f = strchr(f, ':');
		if (f != NULL)
			f++;
	}
	if (f == NULL)
		return NULL;
	for (char *save = NULL, *w = strtok_r(f, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
		if (strncmp(w, "senders=", 8) != 0)
			continue;
		w += 8;
		for (char *p = w; *p; p++) {
			if (*p == ':' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) {
				*bad = true;
				return NULL;
			}
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p + 32);
		}
		return *w ? strdup(w) : NULL;
	}
	return NULL;
}

static int cmp_users(const void *a, const void *b)
{
	return strcmp(((const struct user *)a)->name, ((const struct user *)b)->name);
}

/* By name, then by line, so that duplicates sit next to each other in file order. */
static int cmp_entries(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return (x->line > y->line) - (x->line < y->line);
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/*
 * Split Dovecot's "{SCHEME}" prefix off h: the scheme upper-cased into
 * scheme ("" when none), returns what follows; NULL when the name does
 * not fit.
 */
static const char *split_scheme(const char *h, char scheme[24])
{
	const char *end;
	size_t len;

	scheme[0] = '\0';
	if (h[0] != '{' || (end = strchr(h, '}')) == NULL)
		return h;
	len = (size_t)(end - h - 1);
	if (len >= 24)
		return NULL;
	for (size_t i = 0; i < len; i++)
		scheme[i] = (char)toupper((unsigned char)h[1 + i]);
	scheme[len] = '\0';
	return end + 1;
}

static bool is_plain(const char *scheme)
{
	return strcmp(scheme, "PLAIN") == 0 || strcmp(scheme, "CLEAR") == 0 ||
	       strcmp(scheme, "CLEARTEXT") == 0;
}

/* Empty, or "!..." / "*..." for a hashed scheme: never matches. */
static bool is_locked(const char *scheme, const char *hash)
{
	return hash[0] == '\0' || (!is_plain(scheme) && (hash[0] == '!' || hash[0] == '*'));
}

static enum kind kind_of(const struct user *usr)
{
	if (usr == NULL || is_locked(usr->scheme, usr->hash))
		return K_NONE;
	if (strcmp(usr->scheme, SCHEME_SCRAM) == 0)
		return K_SCRAM;
	if (is_plain(usr->scheme))
		return K_PLAIN;
	return K_CRYPT;
}

int users_load(struct users *u, const char *path, char *err, size_t errlen)
{
	char line[USERS_LINE_MAX + 2];
	struct entry *e = NULL;
	size_t n = 0, cap = 0;
	unsigned lineno = 0;
	struct stat st;
	FILE *f;

	memset(u, 0, sizeof *u);
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) < 0) {
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		goto fail;
	}
	/* The hashes are secrets: any group/other bit (even x or w) is refused. */
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s is readable by group or others (chmod 600 %s)", path, path);
		goto fail;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		size_t len = strlen(line);
		char *colon, *hash, *hend, *senders, scheme[24];
		struct entry *grown;

		lineno++;
		if (len > USERS_LINE_MAX) {
			snprintf(err, errlen, "%s:%u: line too long", path, lineno);
			goto fail;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		colon = strchr(line, ':');
		if (colon == NULL || colon == line || (size_t)(colon - line) > USERS_NAME_MAX) {
			snprintf(err, errlen, "%s:%u: expected name:password-hash", path, lineno);
			goto fail;
		}
		*colon = '\0';
		lower(line);
		hash = colon + 1;
		senders = NULL;
		if ((hend = strchr(hash, ':')) != NULL) {
			bool bad;

			*hend = '\0';
			senders = extra_senders(hend + 1, &bad);
			if (bad) {
				snprintf(err, errlen, "%s:%u: senders= takes addresses and @domains separated by commas",
					 path, lineno);
				goto fail;
			}
		}
		if ((hash = (char *)split_scheme(hash, scheme)) == NULL) {
			snprintf(err, errlen, "%s:%u: password scheme name too long", path, lineno);
			goto fail;
		}
		/* Said now, not at the first login: a SCRAM value tern cannot use. */
		if (strcmp(scheme, SCHEME_SCRAM) == 0 && !is_locked(scheme, hash)) {
			struct scram_keys k;
			int bad = scram_keys_parse(hash, strlen(hash), &k) < 0;

			explicit_bzero(&k, sizeof k);
			if (bad) {
				snprintf(err, errlen,
					 "%s:%u: {SCRAM-SHA-256} value is not ITER,SALT,STOREDKEY,"
					 "SERVERKEY (ITER %d..%d, a salt of %d..%d octets)",
					 path, lineno, SCRAM_ITER_MIN, SCRAM_ITER_MAX, SCRAM_SALT_MIN,
					 SCRAM_SALT_MAX);
				goto fail;
			}
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((grown = realloc(e, cap * sizeof *grown)) == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			e = grown;
		}
		e[n].name = strdup(line);
		e[n].hash = strdup(hash);
		e[n].senders = senders;
		memcpy(e[n].scheme, scheme, sizeof e[n].scheme);
		e[n].line = lineno;
		n++;
		if (e[n - 1].name == NULL || e[n - 1].hash == NULL) {
			snprintf(err, errlen, "%s: out of memory", path);
			goto fail;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(f);
	f = NULL;
	if (n > 0)
		qsort(e, n, sizeof *e, cmp_entries);
	/* Report the duplicate that comes first in the file. */
	{
		size_t dup = 0;

		for (size_t i = 1; i < n; i++)
			if (strcmp(e[i - 1].name, e[i].name) == 0 &&
			    (dup == 0 || e[i].line < e[dup].line))
				dup = i;
		if (dup != 0) {
			snprintf(err, errlen, "%s:%u: name given twice (first on line %u)", path,
				 e[dup].line, e[dup - 1].line);
			goto fail;
		}
	}
	if (n > 0 && (u->v = calloc(n, sizeof *u->v)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		u->v[i].name = e[i].name;
		u->v[i].hash = e[i].hash;
		u->v[i].senders = e[i].senders;
		memcpy(u->v[i].scheme, e[i].scheme, sizeof u->v[i].scheme);
	}
	u->n = n;
	free(e);
	u->loaded = true;
	return 0;
fail:
	if (f != NULL)
		fclose(f);
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].senders);
		if (e[i].hash != NULL)
			explicit_bzero(e[i].hash, strlen(e[i].hash));
		free(e[i].hash);
	}
	free(e);
	memset(u, 0, sizeof *u);
	return -1;
}

static bool has(const struct users *u, const char *name)
{
	struct user key = { .name = (char *)name, .hash = NULL };

	return u->n > 0 && bsearch(&key, u->v, u->n, sizeof *u->v, cmp_users) != NULL;
}

bool users_exists(const struct users *u, const char *local, const char *domain)
{
	char name[USERS_NAME_MAX * 2];

	snprintf(name, sizeof name, "%s", local);
	lower(name);
	if (has(u, name))
		return true;
	snprintf(name, sizeof name, "%s@%s", local, domain);
	lower(name);
	return has(u, name);
}

const struct user *users_find(const struct users *u, const char *name)
{
	char key_name[USERS_NAME_MAX + 1];
	struct user key = { .name = key_name, .hash = NULL };
	size_t len = strlen(name);

	if (len == 0 || len > USERS_NAME_MAX || u->n == 0)
		return NULL;
	memcpy(key_name, name, len + 1);
	lower(key_name);
	return bsearch(&key, u->v, u->n, sizeof *u->v, cmp_users);
}

/* SHA-256 of p; -1 when OpenSSL fails. */
static int sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 0;

	return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

/*
 * Every call spends one crypt(3), one SCRAM derivation and two SHA-256,
 * whichever of them decides (users.h): the time tells nothing about
 * whether the name exists or which scheme it has.
 */
enum users_verdict users_verify(const struct users *u, const char *name,
				const char *password, size_t password_len)
{
	const struct user *usr = users_find(u, name);
	enum kind kind = kind_of(usr);
	const char *setting = kind == K_CRYPT ? usr->hash : dummy_hash;
	const char *plain = kind == K_PLAIN ? usr->hash : "";
	struct scram_keys want, got;
	uint8_t d1[32], d2[32];
	bool match = false, failed = false;
	struct crypt_data *cd;
	char *phrase;
	const char *out;

	/* crypt(3) takes a C string: a NUL inside could only cut the password short. */
	if (memchr(password, '\0', password_len) != NULL)
		return USERS_BAD_PASSWORD;
	/* ~32 KiB: too much for a thread-pool stack. */
	if ((cd = calloc(1, sizeof *cd)) == NULL)
		return USERS_ERROR;
	if ((phrase = malloc(password_len + 1)) == NULL) {
		free(cd);
		return USERS_ERROR;
	}
	memcpy(phrase, password, password_len);
	phrase[password_len] = '\0';

	/* crypt(3): the account's, or the dummy. */
	out = crypt_rn(phrase, setting, cd, (int)sizeof *cd);
	if (out == NULL || out[0] == '*') {
		failed = true;
	} else if (kind == K_CRYPT) {
		size_t olen = strlen(out), hlen = strlen(usr->hash);

		match = olen == hlen && CRYPTO_memcmp(out, usr->hash, hlen) == 0;
	}

	/* SCRAM: the account's salt and rounds, or the dummy's. */
	memset(&want, 0, sizeof want);
	if (kind == K_SCRAM) {
		if (scram_keys_parse(usr->hash, strlen(usr->hash), &want) < 0)
			failed = true;	/* users_load checked it: cannot happen */
	}
	if (want.salt_len == 0) {
		memcpy(want.salt, dummy_salt, sizeof dummy_salt);
		want.salt_len = sizeof dummy_salt;
		want.iter = SCRAM_ITER_DEFAULT;
	}
	if (scram_derive(phrase, password_len, want.salt, want.salt_len, want.iter, &got) < 0)
		failed = true;
	else if (kind == K_SCRAM)
		match = CRYPTO_memcmp(got.stored_key, want.stored_key, SCRAM_KEY_LEN) == 0;

	/* Plain: digests, so that neither the length nor the content leaks. */
	if (sha256(phrase, password_len, d1) < 0 || sha256(plain, strlen(plain), d2) < 0)
		failed = true;
	else if (kind == K_PLAIN)
		match = CRYPTO_memcmp(d1, d2, sizeof d1) == 0;

	explicit_bzero(&want, sizeof want);
	explicit_bzero(&got, sizeof got);
	explicit_bzero(d1, sizeof d1);
	explicit_bzero(d2, sizeof d2);
	explicit_bzero(phrase, password_len);
	explicit_bzero(cd, sizeof *cd);
	free(phrase);
	free(cd);
	if (failed)
		return USERS_ERROR;
	return match ? USERS_OK : USERS_BAD_PASSWORD;
}

int users_scram_keys(const struct user *u, struct scram_keys *out)
{
	if (kind_of(u) != K_SCRAM) {
		memset(out, 0, sizeof *out);
		return -1;
	}
	return scram_keys_parse(u->hash, strlen(u->hash), out);
}

int users_cram_secret(const struct user *u, const char **secret, size_t *len)
{
	if (kind_of(u) != K_PLAIN)
		return -1;
	*secret = u->hash;
	*len = strlen(u->hash);
	return 0;
}

/* Every account that can log in at all is of kind k (and there is one). */
static bool all_of(const struct users *u, enum kind k)
{
	size_t usable = 0;

	for (size_t i = 0; i < u->n; i++) {
		enum kind ki = kind_of(&u->v[i]);

		if (ki == K_NONE)
			continue;
		if (ki != k)
			return false;
		usable++;
	}
	return usable > 0;
}

bool users_all_scram(const struct users *u)
{
	return all_of(u, K_SCRAM);
}

bool users_all_cram(const struct users *u)
{
	return all_of(u, K_PLAIN);
}

bool users_may_send_as(const struct user *u, const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t alen = strlen(addr);

	if (u == NULL || u->senders == NULL)
		return false;
	for (const char *p = u->senders; *p;) {
		size_t n = strcspn(p, ",");

		if ((n == alen && strncasecmp(p, addr, n) == 0) ||
		    (p[0] == '@' && at != NULL && n == strlen(at) && strncasecmp(p, at, n) == 0))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

void users_free(struct users *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].senders);
		free(u->v[i].name);
		explicit_bzero(u->v[i].hash, strlen(u->v[i].hash));
		free(u->v[i].hash);
	}
	free(u->v);
	memset(u, 0, sizeof *u);
}

/* ---- editing ---- */

/* 1..320 octets of printable ASCII, without ':' (field separator), space or '#'. */
static int valid_name(const char *name, char *err, size_t errlen)
{
	size_t len = strlen(name);

	if (len == 0 || len > USERS_NAME_MAX) {
		snprintf(err, errlen, "a user name has 1 to %d characters", USERS_NAME_MAX);
		return -1;
	}
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f || c == ':' || c == '#') {
			snprintf(err, errlen,
				 "invalid user name: printable ASCII only, without ':', spaces or '#'");
			return -1;
		}
	}
	return 0;
}

/* A fresh crypt(3) hash of password with the method prefix ("$y$", "$6$"). */
static char *crypt_password(const char *password, const char *prefix, char *err,
			    size_t errlen)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *out;
	char *h = NULL;

	if (crypt_gensalt_rn(prefix, 0, NULL, 0, salt, (int)sizeof salt) == NULL) {
		snprintf(err, errlen, "cannot make a salt: %s", strerror(errno));
		return NULL;
	}
	if ((cd = calloc(1, sizeof *cd)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	out = crypt_rn(password, salt, cd, (int)sizeof *cd);
	if (out == NULL || out[0] == '*')
		snprintf(err, errlen, "cannot hash the password: %s", strerror(errno));
	else if ((h = strdup(out)) == NULL)
		snprintf(err, errlen, "out of memory");
	explicit_bzero(cd, sizeof *cd);
	free(cd);
	return h;
}

/* "{SCRAM-SHA-256}ITER,SALT,STOREDKEY,SERVERKEY" with a fresh salt, as doveadm pw makes it. */
static char *scram_password(const char *password, char *err, size_t errlen)
{
	char text[sizeof "{" SCHEME_SCRAM "}" + SCRAM_KEYS_TEXT_MAX];
	uint8_t salt[SCRAM_SALT_DEFAULT];
	struct scram_keys k;
	size_t pre = strlen("{" SCHEME_SCRAM "}");
	char *h = NULL;

	if (RAND_bytes(salt, sizeof salt) != 1) {
		snprintf(err, errlen, "cannot make a salt: no random bytes from OpenSSL");
		return NULL;
	}
	if (scram_derive(password, strlen(password), salt, sizeof salt, SCRAM_ITER_DEFAULT,
			 &k) < 0) {
		snprintf(err, errlen, "cannot derive the SCRAM keys (OpenSSL failed)");
		return NULL;
	}
	memcpy(text, "{" SCHEME_SCRAM "}", pre);
	if (scram_keys_format(&k, text + pre, sizeof text - pre) == 0)
		snprintf(err, errlen, "cannot format the SCRAM keys");
	else if ((h = strdup(text)) == NULL)
		snprintf(err, errlen, "out of memory");
	explicit_bzero(&k, sizeof k);
	explicit_bzero(text, sizeof text);
	return h;
}

/* The password as the file stores it in scheme, malloc'd; NULL with err set. */
static char *hash_password(const char *password, enum users_scheme scheme, char *err,
			   size_t errlen)
{
	char *h;
	size_t n;

	if (password[0] == '\0') {
		snprintf(err, errlen, "empty password refused");
		return NULL;
	}
	switch (scheme) {
	case USERS_YESCRYPT:
		return crypt_password(password, "$y$", err, errlen);
	case USERS_SHA512:
		return crypt_password(password, "$6$", err, errlen);
	case USERS_SCRAM_SHA256:
		return scram_password(password, err, errlen);
	case USERS_PLAIN:
		/* The file is lines of ':'-separated fields: these cannot be carried. */
		if (strpbrk(password, ":\r\n") != NULL) {
			snprintf(err, errlen,
				 "a plain password cannot contain ':', CR or LF (the users file "
				 "separates fields with ':'); choose another password or scheme");
			return NULL;
		}
		n = strlen(password);
		if ((h = malloc(sizeof "{PLAIN}" + n)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		memcpy(h, "{PLAIN}", 7);
		memcpy(h + 7, password, n + 1);
		return h;
	}
	snprintf(err, errlen, "unknown password scheme");
	return NULL;
}

/* The whole file into b; 1 if it does not exist, -1 on error. */
static int read_file(const char *path, struct buf *b, struct stat *st, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0) {
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	for (;;) {
		if (buf_reserve(b, 65536) < 0) {
			snprintf(err, errlen, "%s: too large or out of memory", path);
			close(fd);
			return -1;
		}
		r = read(fd, b->data + b->len, b->cap - b->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
	}
	close(fd);
	return 0;
}

/* Does this line (length len, no newline) name `name` (lower case)? */
static bool line_names(const char *line, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	const char *colon;

	if (len == 0 || line[0] == '#')
		return false;
	colon = memchr(line, ':', len);
	if (colon == NULL)
		return false;
	return (size_t)(colon - line) == nlen && strncasecmp(line, name, nlen) == 0;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd, rc;

	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * Replace path with the contents of b: FILE.tmp (0600, same owner as the
 * old file when there was one), fsync, rename, fsync the directory.
 */
static int replace_file(const char *path, const struct buf *b, const struct stat *old,
			char *err, size_t errlen)
{
	char tmp[4200];
	int fd;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	/* A stale FILE.tmp is left by a crash; O_EXCL then never follows a planted link. */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "%s: cannot remove: %s", tmp, strerror(errno));
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) < 0) {
		snprintf(err, errlen, "%s: chmod: %s", tmp, strerror(errno));
		goto fail;
	}
	/* Keep the owner, e.g. a file root edits for a daemon that reads it as its user. */
	if (old != NULL && (old->st_uid != geteuid() || old->st_gid != getegid()) &&
	    fchown(fd, old->st_uid, old->st_gid) < 0) {
		snprintf(err, errlen, "%s: chown: %s", tmp, strerror(errno));
		goto fail;
	}
	if (write_all(fd, b->data, b->len) < 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	if (fsync_dir_of(path) < 0) {
		snprintf(err, errlen, "%s: cannot sync its directory: %s", path, strerror(errno));
		return -1;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

enum edit_op { EDIT_ADD, EDIT_PASSWD, EDIT_DEL };

/*
 * Copy the file line by line into a new buffer, changing only the lines
 * of `name`; everything else (comments, other users, unknown fields) is
 * kept byte for byte.
 */
static int edit(const char *path, enum edit_op op, const char *name_in, const char *password,
		enum users_scheme scheme, char *err, size_t errlen)
{
	char name[USERS_NAME_MAX + 1];
	struct buf in, out;
	struct stat st;
	char *hash = NULL;
	bool found = false;
	int rc = -1, r;

	if (valid_name(name_in, err, errlen) < 0)
		return -1;
	snprintf(name, sizeof name, "%s", name_in);
	lower(name);
	buf_init(&in, USERS_FILE_MAX);
	buf_init(&out, USERS_FILE_MAX + 2 * USERS_LINE_MAX);
	if ((r = read_file(path, &in, &st, err, errlen)) < 0)
		goto done;
	if (r == 1 && op != EDIT_ADD) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(ENOENT));
		goto done;
	}
	if (op != EDIT_DEL && (hash = hash_password(password, scheme, err, errlen)) == NULL)
		goto done;
	for (size_t pos = 0; pos < in.len;) {
		const char *line = (const char *)in.data + pos;
		const char *nl = memchr(line, '\n', in.len - pos);
		size_t len = nl ? (size_t)(nl - line) : in.len - pos;	/* without '\n' */
		size_t full = nl ? len + 1 : len;
		size_t clen = len > 0 && line[len - 1] == '\r' ? len - 1 : len;

		pos += full;
		if (!line_names(line, clen, name)) {
			if (buf_append(&out, line, full) < 0)
				goto nomem;
			continue;
		}
		found = true;
		if (op == EDIT_ADD) {
			snprintf(err, errlen, "user %s exists; use tern user passwd", name);
			goto done;
		}
		if (op == EDIT_DEL)
			continue;
		/* passwd: name as written, the new hash, then any further fields. */
		{
			const char *colon = memchr(line, ':', clen);
			const char *rest = memchr(colon + 1, ':', clen - (size_t)(colon + 1 - line));
			size_t restlen = rest ? clen - (size_t)(rest - line) : 0;

			if (buf_append(&out, line, (size_t)(colon + 1 - line)) < 0 ||
			    buf_append(&out, hash, strlen(hash)) < 0 ||
			    buf_append(&out, rest, restlen) < 0 ||
			    buf_append(&out, line + clen, full - clen) < 0)
				goto nomem;
		}
	}
	if (!found && op != EDIT_ADD) {
		snprintf(err, errlen, "no user %s in %s", name, path);
		goto done;
	}
	if (op == EDIT_ADD) {
		if (out.len > 0 && out.data[out.len - 1] != '\n' && buf_append(&out, "\n", 1) < 0)
			goto nomem;
		if (buf_printf(&out, "%s:%s\n", name, hash) < 0)
			goto nomem;
	}
	rc = replace_file(path, &out, r == 0 ? &st : NULL, err, errlen);
	goto done;
nomem:
	snprintf(err, errlen, "%s: out of memory", path);
done:
	if (hash != NULL) {
		explicit_bzero(hash, strlen(hash));
		free(hash);
	}
	if (in.data != NULL)
		explicit_bzero(in.data, in.cap);
	if (out.data != NULL)
		explicit_bzero(out.data, out.cap);
	buf_free(&in);
	buf_free(&out);
	return rc;
}

int users_add(const char *path, const char *name, const char *password,
	      enum users_scheme scheme, char *err, size_t errlen)
{
	return edit(path, EDIT_ADD, name, password, scheme, err, errlen);
}

int users_set_password(const char *path, const char *name, const char *password,
		       enum users_scheme scheme, char *err, size_t errlen)
{
	return edit(path, EDIT_PASSWD, name, password, scheme, err, errlen);
}

int users_del(const char *path, const char *name, char *err, size_t errlen)
{
	return edit(path, EDIT_DEL, name, NULL, USERS_YESCRYPT, err, errlen);
}
