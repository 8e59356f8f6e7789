/* maildir.c - deliver one message into one Maildir; see maildir.h. */
#include "maildir.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../conf/conf.h"
#include "../lib/dirsync.h"

static int put_safe(char *out, size_t cap, size_t *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)tolower((unsigned char)s[i]);
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '+' || c == '=' || c == '-' || (c == '.' && i > 0);

		if (*o + 4 >= cap)
			return -1;
		if (ok) {
			out[(*o)++] = (char)c;
		} else {
			out[(*o)++] = '%';
			out[(*o)++] = hex[c >> 4];
			out[(*o)++] = hex[c & 15];
		}
	}
	return 0;
}

int maildir_path(const char *tmpl, const char *local, const char *domain,
		 char *out, size_t cap)
{
	size_t o = 0;

	for (const char *p = tmpl; *p != '\0'; p++) {
		if (*p == '%' && (p[1] == 'u' || p[1] == 'd')) {
			if (put_safe(out, cap, &o, p[1] == 'u' ? local : domain) < 0)
				return -1;
			p++;
			continue;
		}
		if (*p == '%' && p[1] == '%')
			p++;
		if (o + 1 >= cap)
			return -1;
		out[o++] = *p;
	}
	out[o] = '\0';
	return 0;
}

int maildir_subfolder(char *path, size_t cap, struct slice folder)
{
	size_t o = strlen(path);

	if (folder.len == 0)
		return 0;
	/* Maildir++: a subfolder is a Maildir named "." + name inside the
	 * inbox; Dovecot and Courier list it as that folder. */
	if (!conf_folder_valid((const char *)folder.p, folder.len) || o + 2 + folder.len >= cap)
		return -1;
	path[o++] = '/';
	path[o++] = '.';
	memcpy(path + o, folder.p, folder.len);
	path[o + folder.len] = '\0';
	return 0;
}

/* mkdir -p, then fsync each parent whose entries changed. */
static int make_dirs(const char *path)
{
	char p[1024];
	size_t len = strlen(path);

	if (len >= sizeof p)
		return -1;
	memcpy(p, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char saved = p[i];
		p[i] = '\0';
		if (mkdir(p, 0700) == 0) {
			char *slash = strrchr(p, '/');
			if (slash != NULL && slash != p) {
				*slash = '\0';
				dir_fsync(p);
				*slash = '/';
			}
		} else if (errno != EEXIST) {
			return -1;
		}
		p[i] = saved;
	}
	return 0;
}

/* Called when tmp/ could not be opened: make whatever is missing. */
static int ensure_maildir(const char *md)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	char p[1100];

	if (make_dirs(md) < 0)
		return -1;
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/%s", md, sub[i]);
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	return dir_fsync(md) == 0 ? 0 : -1;
}

/* Pieces of the file collected for one writev (a small message is one call). */
#define WRITER_IOV 64

struct writer {
	int fd;
	int err;
	int n;
	struct iovec iov[WRITER_IOV];
};

static int writer_flush(struct writer *w)
{
	struct iovec *v = w->iov;
	int n = w->n;

	w->n = 0;
	while (n > 0) {
		ssize_t r = writev(w->fd, v, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			w->err = errno;
			return -1;
		}
		while (n > 0 && (size_t)r >= v->iov_len) {
			r -= (ssize_t)v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (char *)v->iov_base + r;
			v->iov_len -= (size_t)r;
		}
	}
	return 0;
}

static int write_chunk(void *arg, const uint8_t *p, size_t n)
{
	struct writer *w = arg;

	if (w->n == WRITER_IOV && writer_flush(w) < 0)
		return -1;
	w->iov[w->n++] = (struct iovec){ (void *)p, n };
	return 0;
}

/* The Maildir host part: '/' and ':' are written as \057 and \072. */
static void host_part(const char *h, char *out, size_t cap)
{
	size_t o = 0;

	for (; *h != '\0' && o + 5 < cap; h++) {
		if (*h == '/' || *h == ':')
			o += (size_t)snprintf(out + o, cap - o, "\\%03o", (unsigned char)*h);
		else
			out[o++] = *h;
	}
	out[o] = '\0';
}

/*
 * Was this message already delivered here? new/NAME, or, when asked,
 * cur/NAME or cur/NAME:2,FLAGS (a reader moved it): the name is the same
 * on every attempt, so a retry after a crash between our rename and the
 * removal from the queue does not deliver it twice.
 */
static bool already_there(const char *maildir, const char *name, bool check_cur)
{
	char p[1400];
	struct dirent *de;
	size_t n = strlen(name);
	bool found = false;
	DIR *d;

	snprintf(p, sizeof p, "%s/new/%s", maildir, name);
	if (access(p, F_OK) == 0)
		return true;
	if (!check_cur)
		return false;
	snprintf(p, sizeof p, "%s/cur", maildir);
	if ((d = opendir(p)) == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL)
		found = strncmp(de->d_name, name, n) == 0 &&
			(de->d_name[n] == '\0' || de->d_name[n] == ':');
	closedir(d);
	return found;
}

int maildir_deliver(const char *maildir, const struct maildir_msg *m,
		    char *new_dir, size_t new_dir_cap, bool *permanent,
		    char *err, size_t errlen)
{
	char name[512], host[256], tmp[1400], dst[1400];
	struct writer w = { .fd = -1 };
	char rp[600]; /* "Return-Path: <" + a 256-octet path (RFC 5321 4.5.3.1.3) */
	int n;

	*permanent = false;
	if (snprintf(new_dir, new_dir_cap, "%s/new", maildir) >= (int)new_dir_cap) {
		*permanent = true;
		snprintf(err, errlen, "maildir path too long");
		return ENAMETOOLONG;
	}
	n = snprintf(rp, sizeof rp, "Return-Path: <%.*s>\r\n", (int)m->sender.len,
		     (const char *)m->sender.p);
	if (n < 0 || (size_t)n >= sizeof rp)
		n = 0;
	host_part(m->hostname, host, sizeof host);
	/* time.unique.host (the Maildir convention) with the arrival time and
	 * the queue id and recipient as the unique part; S= is the file size
	 * (Maildir++, which Dovecot trusts). */
	snprintf(name, sizeof name, "%llu.%s.%s,S=%llu", (unsigned long long)m->env->arrival,
		 m->unique, host, (unsigned long long)m->env->msg_size + (unsigned long long)n);
	if (m->maybe_there && already_there(maildir, name, m->check_cur))
		return 0;
	snprintf(tmp, sizeof tmp, "%s/tmp/%s", maildir, name);
	snprintf(dst, sizeof dst, "%s/new/%s", maildir, name);
	/* O_TRUNC, not O_EXCL: a leftover of our own crashed attempt is ours. */
	w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w.fd < 0 && errno == ENOENT) {
		/* A first message for this folder. A file where a folder should
		 * be is the operator's to move: a temporary failure. */
		if (ensure_maildir(maildir) < 0) {
			int e = errno;
			*permanent = e == ENAMETOOLONG;
			snprintf(err, errlen, "cannot create maildir %s: %s", maildir, strerror(e));
			return e;
		}
		w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	if (w.fd < 0) {
		w.err = errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(w.err));
		return w.err;
	}
	if (write_chunk(&w, (const uint8_t *)rp, (size_t)n) == 0 &&
	    qfile_each_chunk(m->qdata, m->qlen, m->env, write_chunk, &w) == 0 &&
	    writer_flush(&w) == 0 && fsync(w.fd) < 0)
		w.err = errno;
	if (close(w.fd) < 0 && w.err == 0)
		w.err = errno;
	if (w.err == 0 && rename(tmp, dst) < 0)
		w.err = errno;
	if (w.err != 0) {
		unlink(tmp);
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(w.err));
	}
	return w.err;
}
