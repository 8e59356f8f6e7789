/* qfile.c - queue file records: writer and strict reader; see qfile.h. */
#include "qfile.h"

#include <stdlib.h>
#include <string.h>

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int qfile_begin(struct buf *b)
{
	return buf_append(b, QFILE_MAGIC, QFILE_MAGIC_LEN);
}

int qfile_put(struct buf *b, enum qrec_type t, const void *p, size_t n)
{
	uint8_t hdr[QFILE_REC_HDR];

	if (n > UINT32_MAX)
		return -1;
	hdr[0] = (uint8_t)t;
	put_be32(hdr + 1, (uint32_t)n);
	if (buf_reserve(b, QFILE_REC_HDR + n) < 0)
		return -1;
	(void)buf_append(b, hdr, sizeof hdr);
	(void)buf_append(b, p, n);
	return 0;
}

int qfile_put_rcpt(struct buf *b, const char *addr, size_t addr_len,
		   const char *orcpt, size_t orcpt_len, unsigned notify)
{
	uint8_t v[3 + 0xffff];
	size_t n = 3 + orcpt_len + addr_len;

	if (orcpt_len > 0xffff || n > sizeof v)
		return -1;
	v[0] = (uint8_t)notify;
	v[1] = (uint8_t)(orcpt_len >> 8);
	v[2] = (uint8_t)orcpt_len;
	memcpy(v + 3, orcpt, orcpt_len);
	memcpy(v + 3 + orcpt_len, addr, addr_len);
	return qfile_put(b, QR_RCPT, v, n);
}

int qfile_put_end(struct buf *b, uint64_t msg_size)
{
	uint8_t v[8];

	for (int i = 0; i < 8; i++)
		v[i] = (uint8_t)(msg_size >> (56 - 8 * i));
	return qfile_put(b, QR_END, v, sizeof v);
}

static int add_rcpt(struct qenv *env, const uint8_t *v, size_t n)
{
	struct qrcpt *r;
	size_t olen;

	if (n < 3)
		return -1;
	olen = (size_t)v[1] << 8 | v[2];
	if (olen > n - 3 || n - 3 - olen == 0 || env->nrcpts >= QFILE_MAX_RCPTS)
		return -1;
	r = realloc(env->rcpts, (env->nrcpts + 1) * sizeof *r);
	if (r == NULL)
		return -1;
	env->rcpts = r;
	r[env->nrcpts].notify = v[0];
	r[env->nrcpts].orcpt = (struct slice){ v + 3, olen };
	r[env->nrcpts].addr = (struct slice){ v + 3 + olen, n - 3 - olen };
	env->nrcpts++;
	return 0;
}

int qfile_parse(const uint8_t *data, size_t len, struct qenv *env)
{
	size_t off = QFILE_MAGIC_LEN;
	uint64_t msg = 0;
	bool end = false;

	memset(env, 0, sizeof *env);
	env->error = "bad magic";
	if (len < QFILE_MAGIC_LEN || memcmp(data, QFILE_MAGIC, QFILE_MAGIC_LEN) != 0)
		goto fail;
	while (off < len) {
		const uint8_t *v;
		uint32_t n;

		env->error = "truncated record";
		if (end || len - off < QFILE_REC_HDR)
			goto fail;
		n = get_be32(data + off + 1);
		if (n > len - off - QFILE_REC_HDR)
			goto fail;
		v = data + off + QFILE_REC_HDR;
		env->error = "bad record";
		switch (data[off]) {
		case QR_ID: env->id = (struct slice){ v, n }; break;
		case QR_SENDER: env->sender = (struct slice){ v, n }; break;
		case QR_ENVID: env->envid = (struct slice){ v, n }; break;
		case QR_RET: env->ret = (struct slice){ v, n }; break;
		case QR_BODY: env->body = (struct slice){ v, n }; break;
		case QR_CLIENT: env->client = (struct slice){ v, n }; break;
		case QR_AUTH: env->auth = (struct slice){ v, n }; break;
		case QR_PREPEND: env->prepend = (struct slice){ v, n }; break;
		case QR_FOLDER: env->folder = (struct slice){ v, n }; break;
		case QR_SMTPUTF8: env->smtputf8 = true; break;
		case QR_TIME:
			for (uint32_t i = 0; i < n; i++) {
				if (v[i] < '0' || v[i] > '9' || i >= 19)
					goto fail;
				env->arrival = env->arrival * 10 + (uint64_t)(v[i] - '0');
			}
			break;
		case QR_RCPT:
			if (add_rcpt(env, v, n) < 0)
				goto fail;
			break;
		case QR_MSG:
			if (env->first_msg == 0)
				env->first_msg = off;
			msg += n;
			break;
		case QR_END:
			if (n != 8)
				goto fail;
			for (int i = 0; i < 8; i++)
				env->msg_size = env->msg_size << 8 | v[i];
			end = true;
			break;
		default:
			env->error = "unknown record type";
			goto fail;
		}
		off += QFILE_REC_HDR + n;
	}
	env->error = "no END record (incomplete file)";
	if (!end)
		goto fail;
	env->error = "message size does not match END record";
	if (msg != env->msg_size)
		goto fail;
	env->error = "no queue id or no recipient";
	if (env->id.len == 0 || env->id.len > QID_MAX || env->nrcpts == 0)
		goto fail;
	env->msg_size += env->prepend.len;
	env->error = NULL;
	return 0;
fail:
	free(env->rcpts);
	env->rcpts = NULL;
	env->nrcpts = 0;
	return -1;
}

void qfile_env_free(struct qenv *env)
{
	free(env->rcpts);
	env->rcpts = NULL;
	env->nrcpts = 0;
}

int qfile_each_chunk(const uint8_t *data, size_t len, const struct qenv *env,
		     int (*fn)(void *arg, const uint8_t *p, size_t n), void *arg)
{
	size_t off = env->first_msg;
	int r;

	if (env->prepend.len > 0 && (r = fn(arg, env->prepend.p, env->prepend.len)) != 0)
		return r;
	if (off == 0)
		return 0;
	/* The file was validated by qfile_parse: every header is in bounds. */
	while (off + QFILE_REC_HDR <= len) {
		uint32_t n = get_be32(data + off + 1);

		if (data[off] == QR_MSG && (r = fn(arg, data + off + QFILE_REC_HDR, n)) != 0)
			return r;
		off += QFILE_REC_HDR + n;
	}
	return 0;
}
