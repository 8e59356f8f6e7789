/* test_daemon_users.c - cmocka tests of the users file: load, verify, edit (src/daemon/users.c). */
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
#include <crypt.h>

#include "daemon/users.h"

static char dir[64];
static char path[128];
static char err[512];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/tern-users-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/users", dir);
	return 0;
}

static int teardown(void **state)
{
	char tmp[160];

	(void)state;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void write_file(const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static char *read_text(void)
{
	static char text[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(text, 1, sizeof text - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static mode_t file_mode(void)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* A fresh hash of pw with the given setting prefix ("$y$" or a full "$6$salt$"). */
static void make_hash(const char *pw, const char *setting, char *out, size_t outlen)
{
	struct crypt_data *cd = calloc(1, sizeof *cd);
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *h;

	assert_non_null(cd);
	if (strcmp(setting, "$y$") == 0) {
		assert_non_null(crypt_gensalt_rn("$y$", 0, NULL, 0, salt, (int)sizeof salt));
		setting = salt;
	}
	h = crypt_rn(pw, setting, cd, (int)sizeof *cd);
	assert_non_null(h);
	assert_true(h[0] != '*');
	snprintf(out, outlen, "%s", h);
	free(cd);
}

static void test_load_exists_find(void **state)
{
	char h[256], text[1024];
	struct users u;
	const struct user *usr;

	(void)state;
	make_hash("secret", "$y$", h, sizeof h);
	snprintf(text, sizeof text,
		 "# users\n"
		 "\n"
		 "Alice@Example.com:%s:1000:1000::/home/alice\n"
		 "bob:%s\n"
		 "carol@example.org:%s\r\n",
		 h, h, h);
	write_file(text, 0600);
	assert_int_equal(users_load(&u, path, err, sizeof err), 0);
	assert_true(u.loaded);
	assert_int_equal(u.n, 3);
	for (size_t i = 1; i < u.n; i++)
		assert_true(strcmp(u.v[i - 1].name, u.v[i].name) < 0);

	assert_true(users_exists(&u, "alice", "example.com"));
	assert_true(users_exists(&u, "ALICE", "EXAMPLE.COM"));
	assert_false(users_exists(&u, "alice", "example.org"));
	assert_true(users_exists(&u, "bob", "example.com"));	/* bare: every domain */
	assert_true(users_exists(&u, "Bob", "anything.test"));
	assert_true(users_exists(&u, "carol", "example.org"));
	assert_false(users_exists(&u, "carol", "example.com"));
	assert_false(users_exists(&u, "dave", "example.com"));

	usr = users_find(&u, "ALICE@example.COM");
	assert_non_null(usr);
	assert_string_equal(usr->name, "alice@example.com");
	assert_string_equal(usr->hash, h);	/* extra fields cut off */
	usr = users_find(&u, "carol@example.org");
	assert_non_null(usr);
	assert_string_equal(usr->hash, h);	/* CR stripped */
	assert_null(users_find(&u, "alice"));
	assert_null(users_find(&u, ""));
	users_free(&u);
	assert_int_equal(u.n, 0);
}

static void test_verify(void **state)
{
	char h[256], text[1024];
	struct users u;

	(void)state;
	make_hash("correct horse", "$y$", h, sizeof h);
	snprintf(text, sizeof text, "alice@example.com:%s\nlocked:!%s\n", h, h);
	write_file(text, 0600);
	assert_int_equal(users_load(&u, path, err, sizeof err), 0);
	assert_int_equal(users_verify(&u, "alice@example.com", "correct horse", 13), USERS_OK);
	assert_int_equal(users_verify(&u, "Alice@Example.com", "correct horse", 13), USERS_OK);
	assert_int_equal(users_verify(&u, "alice@example.com", "correct horsf", 13),
			 USERS_BAD_PASSWORD);
	assert_int_equal(users_verify(&u, "alice@example.com", "correct hors", 12),
			 USERS_BAD_PASSWORD);
	assert_int_equal(users_verify(&u, "alice@example.com", "", 0), USERS_BAD_PASSWORD);
	/* a NUL inside must not cut the password short */
	assert_int_equal(users_verify(&u, "alice@example.com", "correct horse\0x", 15),
			 USERS_BAD_PASSWORD);
	assert_int_equal(users_verify(&u, "nobody@example.com", "correct horse", 13),
			 USERS_BAD_PASSWORD);
	assert_int_equal(users_verify(&u, "locked", "correct horse", 13), USERS_BAD_PASSWORD);
	users_free(&u);
}

static void test_scheme_prefix_and_sha512(void **state)
{
	char y[256], s6[256], text[1024];
	struct users u;

	(void)state;
	make_hash("pw-one", "$y$", y, sizeof y);
	make_hash("pw-two", "$6$saltsalt$", s6, sizeof s6);
	assert_true(strncmp(s6, "$6$saltsalt$", 12) == 0);
	snprintf(text, sizeof text, "one:{CRYPT}%s\ntwo:{SHA512-CRYPT}%s\n", y, s6);
	write_file(text, 0600);
	assert_int_equal(users_load(&u, path, err, sizeof err), 0);
	assert_string_equal(users_find(&u, "one")->hash, y);
	assert_string_equal(users_find(&u, "two")->hash, s6);
	assert_int_equal(users_verify(&u, "one", "pw-one", 6), USERS_OK);
	assert_int_equal(users_verify(&u, "two", "pw-two", 6), USERS_OK);
	assert_int_equal(users_verify(&u, "two", "pw-one", 6), USERS_BAD_PASSWORD);
	users_free(&u);
}

static void test_mode_refused(void **state)
{
	char want[512];
	struct users u;

	(void)state;
	write_file("alice:x\n", 0644);
	assert_int_equal(users_load(&u, path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s is readable by group or others (chmod 600 %s)", path,
		 path);
	assert_string_equal(err, want);
	assert_false(u.loaded);
	chmod(path, 0640);
	assert_int_equal(users_load(&u, path, err, sizeof err), -1);
	chmod(path, 0400);
	assert_int_equal(users_load(&u, path, err, sizeof err), 0);
	users_free(&u);
}

static void test_duplicate(void **state)
{
	char want[512];
	struct users u;

	(void)state;
	write_file("# c\nalice:x\nbob:y\n\nALICE:z\nbob:w\n", 0600);
	assert_int_equal(users_load(&u, path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:5: name given twice (first on line 2)", path);
	assert_string_equal(err, want);

	write_file("alice:x\nbad line\n", 0600);
	assert_int_equal(users_load(&u, path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: expected name:password-hash", path);
	assert_string_equal(err, want);
}

static void test_edit_round_trip(void **state)
{
	struct users u;
	const char *text;

	(void)state;
	/* add creates the file */
	assert_int_equal(users_add(path, "Alice@Example.com", "first pw", err, sizeof err), 0);
	assert_int_equal(file_mode(), 0600);
	text = read_text();
	assert_true(strncmp(text, "alice@example.com:$y$", 21) == 0);

	/* comments and other lines are kept byte for byte */
	{
		char buf[4096];

		snprintf(buf, sizeof buf, "# the users\n%sbob:{CRYPT}$6$x$y:extra\n", text);
		write_file(buf, 0600);
	}
	assert_int_equal(users_add(path, "carol", "carol pw", err, sizeof err), 0);
	assert_int_equal(file_mode(), 0600);
	assert_int_equal(users_add(path, "ALICE@example.com", "x", err, sizeof err), -1);
	assert_string_equal(err, "user alice@example.com exists; use tern user passwd");
	assert_int_equal(users_add(path, "bad name", "x", err, sizeof err), -1);
	assert_int_equal(users_add(path, "bad:name", "x", err, sizeof err), -1);
	assert_int_equal(users_add(path, "dave", "", err, sizeof err), -1);

	assert_int_equal(users_load(&u, path, err, sizeof err), 0);
	assert_int_equal(u.n, 3);
	assert_int_equal(users_verify(&u, "alice@example.com", "first pw", 8), USERS_OK);
	assert_int_equal(users_verify(&u, "carol", "carol pw", 8), USERS_OK);
	users_free(&u);

	/* passwd */
	assert_int_equal(users_set_password(path, "alice@EXAMPLE.com", "second pw", err,
					    sizeof err), 0);
	assert_int_equal(file_mode(), 0600);
	assert_int_equal(users_set_password(path, "nobody", "x", err, sizeof err), -1);
	assert_int_equal(users_load(&u, path, err, sizeof err), 0);
	assert_int_equal(users_verify(&u, "alice@example.com", "first pw", 8),
			 USERS_BAD_PASSWORD);
	assert_int_equal(users_verify(&u, "alice@example.com", "second pw", 9), USERS_OK);
	users_free(&u);

	/* del */
	assert_int_equal(users_del(path, "CAROL", err, sizeof err), 0);
	assert_int_equal(file_mode(), 0600);
	assert_int_equal(users_del(path, "carol", err, sizeof err), -1);
	text = read_text();
	assert_true(strncmp(text, "# the users\nalice@example.com:$y$", 33) == 0);
	assert_non_null(strstr(text, "\nbob:{CRYPT}$6$x$y:extra\n"));
	assert_null(strstr(text, "carol"));
	assert_int_equal(users_load(&u, path, err, sizeof err), 0);
	assert_int_equal(u.n, 2);
	assert_int_equal(users_verify(&u, "alice@example.com", "second pw", 9), USERS_OK);
	users_free(&u);

	/* passwd/del need the file */
	unlink(path);
	assert_int_equal(users_del(path, "bob", err, sizeof err), -1);
	assert_int_equal(users_set_password(path, "bob", "x", err, sizeof err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load_exists_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scheme_prefix_and_sha512, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_round_trip, setup, teardown),
	};

	umask(022);	/* the edits must give 0600 whatever the umask */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
