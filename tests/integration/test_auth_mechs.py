"""AUTH SCRAM-SHA-256 (RFC 5802, RFC 7677) and CRAM-MD5 (RFC 2195) through
the real ternd, with a SCRAM client written here from the RFC (no shared
code with the server); which mechanisms EHLO offers for which users file."""

import base64
import hashlib
import hmac
import os
import subprocess

import pytest

import tern_harness as th
from tern_harness import check, sasl_plain

ALICE, ALICE_PW = "alice@localhost", "pencil-Alice-1"
BOB, BOB_PW = "bob@localhost", "pencil-Bob-2"


def b64(b):
    return base64.b64encode(b).decode()


def unb64(s):
    return base64.b64decode(s)


def tern_user_add(path, name, pw, scheme):
    r = subprocess.run([th.TERN, "user", "add", name, "--scheme", scheme, "-f", str(path)],
                       input=pw + "\n", capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


class Scram:
    """RFC 5802 client side, SHA-256."""

    def __init__(self, user, pw, nonce="rOprNGfwEbeRWgbNEkqO", gs2="n,,"):
        self.user, self.pw, self.cnonce, self.gs2 = user, pw, nonce, gs2
        self.bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={nonce}"

    def first(self):
        return (self.gs2 + self.bare).encode()

    def final(self, server_first):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        self.attrs = attrs
        assert attrs["r"].startswith(self.cnonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.pw.encode(), unb64(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client_key).digest()
        without_proof = f"c={b64(self.gs2.encode())},r={attrs['r']}"
        auth_msg = f"{self.bare},{server_first},{without_proof}".encode()
        sig = hmac.new(stored, auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.expected_v = "v=" + b64(hmac.new(server_key, auth_msg, "sha256").digest())
        return f"{without_proof},p={b64(proof)}".encode()


def scram_login(c, user, pw, ir=False):
    """Returns the final reply; asserts the server's signature on success."""
    sc = Scram(user, pw)
    if ir:
        r = c.cmd("AUTH SCRAM-SHA-256 " + b64(sc.first()))
    else:
        r = c.cmd("AUTH SCRAM-SHA-256")
        assert r.raw == b"334 \r\n", r.raw
        r = c.cmd(b64(sc.first()))
    check(r, 334)
    server_first = unb64(r.texts[0]).decode()
    r = c.cmd(b64(sc.final(server_first)))
    if r.code == 334:
        assert unb64(r.texts[0]).decode() == sc.expected_v, "server signature does not verify"
        r = c.cmd("")
    return r, sc


def tls_client(t, role="submissions"):
    c = th.smtps_client(t.port_for(role))
    c.ehlo()
    return c


def auth_words(reply):
    for line in reply.texts[1:]:
        if line.upper().startswith("AUTH "):
            return line.split()[1:]
    return []


@pytest.fixture(scope="module")
def scram_srv(module_factory):
    base = module_factory.base()
    users = base / "users"
    tern_user_add(users, ALICE, ALICE_PW, "scram-sha-256")
    tern_user_add(users, BOB, BOB_PW, "scram-sha-256")
    return module_factory.start(base=base, name="scram", users=str(users),
                                listeners=["mx", "submissions", "submission"],
                                auth_failure_delay=0, auth_max_failures=64,
                                auth_failure_window="1s")


def test_scram_offered_when_every_account_has_scram_keys(scram_srv):
    with tls_client(scram_srv) as c:
        assert auth_words(c.ehlo()) == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]


@pytest.mark.parametrize("ir", [False, True])
def test_scram_login_then_send_as_self(scram_srv, ir):
    with tls_client(scram_srv) as c:
        r, _ = scram_login(c, ALICE, ALICE_PW, ir=ir)
        check(r, 235, "2.7.0")
        c.expect(f"MAIL FROM:<{ALICE}>", 250)
        check(c.cmd(f"RCPT TO:<{BOB}>"), 250)
    assert "mechanism=SCRAM-SHA-256 backend=file result=ok" in scram_srv.log()
    assert ALICE_PW not in scram_srv.log()


def test_scram_on_starttls_port(scram_srv):
    c = th.SMTPClient(scram_srv.port_for("submission"))
    with c:
        c.ehlo()
        c.expect("STARTTLS", 220)
        th.tls_wrap(c)
        c.ehlo()
        r, _ = scram_login(c, BOB, BOB_PW)
        check(r, 235, "2.7.0")


def test_scram_wrong_password_is_535(scram_srv):
    with tls_client(scram_srv) as c:
        r, _ = scram_login(c, ALICE, "not-" + ALICE_PW)
        check(r, 535, "5.7.8")
        # the session goes on; a right login still works
        r, _ = scram_login(c, ALICE, ALICE_PW)
        check(r, 235, "2.7.0")


def test_scram_unknown_user_looks_like_a_real_one(scram_srv):
    """RFC 7677 5: the challenge must not tell whether the name exists: the
    made-up salt is stable across connections (and workers), iterations as
    a real account's."""
    salts = set()
    for _ in range(4):
        with tls_client(scram_srv) as c:
            r, sc = scram_login(c, "ghost@localhost", "whatever")
            check(r, 535, "5.7.8")
            salts.add(sc.attrs["s"])
            assert sc.attrs["i"] == "4096"
            assert len(unb64(sc.attrs["s"])) == 16
    assert len(salts) == 1


def test_scram_channel_binding_refused(scram_srv):
    with tls_client(scram_srv) as c:
        sc = Scram(ALICE, ALICE_PW, gs2="p=tls-unique,,")
        check(c.cmd("AUTH SCRAM-SHA-256 " + b64(sc.first())), 501, "5.5.2")
        c.expect("NOOP", 250)


def test_scram_cancel_and_garbage(scram_srv):
    with tls_client(scram_srv) as c:
        check(c.cmd("AUTH SCRAM-SHA-256"), 334)
        check(c.cmd("*"), 501, "5.0.0")
        check(c.cmd("AUTH SCRAM-SHA-256 " + b64(b"x,,n=alice")), 501, "5.5.2")
        r = c.cmd("AUTH SCRAM-SHA-256 " + b64(Scram(ALICE, ALICE_PW).first()))
        check(r, 334)
        # well-formed, but another nonce: a failed login, not a syntax error
        check(c.cmd(b64(b"c=biws,r=wrongnonce,p=" + b64(bytes(32)).encode())), 535, "5.7.8")
        # a proof of the wrong length is malformed
        r = c.cmd("AUTH SCRAM-SHA-256 " + b64(Scram(ALICE, ALICE_PW).first()))
        check(c.cmd(b64(b"c=biws,r=" + r.texts[0].encode() + b",p=AAAA")), 501, "5.5.2")
        c.expect("NOOP", 250)


def test_plain_works_for_scram_stored_account(scram_srv):
    with tls_client(scram_srv) as c:
        c.expect("AUTH PLAIN " + sasl_plain(BOB, BOB_PW), 235, "2.7.0")


def test_mixed_users_file_does_not_offer_scram(ternd_factory):
    base = ternd_factory.base()
    users = base / "users"
    tern_user_add(users, ALICE, ALICE_PW, "scram-sha-256")
    tern_user_add(users, BOB, BOB_PW, "yescrypt")
    t = ternd_factory.start(base=base, users=str(users), listeners=["mx", "submissions"])
    with tls_client(t) as c:
        assert auth_words(c.ehlo()) == ["PLAIN", "LOGIN"]
        check(c.cmd("AUTH SCRAM-SHA-256"), 504, "5.5.4")
        # bob (yescrypt) logs in with PLAIN; alice (SCRAM keys) too
        c.expect("AUTH PLAIN " + sasl_plain(BOB, BOB_PW), 235)


def cram_response(user, pw, challenge):
    digest = hmac.new(pw.encode(), challenge, "md5").hexdigest()
    return b64(f"{user} {digest}".encode())


@pytest.fixture(scope="module")
def cram_srv(module_factory):
    base = module_factory.base()
    users = base / "users"
    tern_user_add(users, ALICE, ALICE_PW, "plain")
    tern_user_add(users, BOB, BOB_PW, "plain")
    return module_factory.start(base=base, name="cram", users=str(users),
                                listeners=["mx", "submissions"],
                                auth_mechanisms="PLAIN LOGIN CRAM-MD5",
                                auth_failure_delay=0)


def test_cram_md5_off_by_default(ternd_factory):
    base = ternd_factory.base()
    users = base / "users"
    tern_user_add(users, ALICE, ALICE_PW, "plain")
    t = ternd_factory.start(base=base, users=str(users), listeners=["mx", "submissions"])
    with tls_client(t) as c:
        assert "CRAM-MD5" not in auth_words(c.ehlo())
        check(c.cmd("AUTH CRAM-MD5"), 504, "5.5.4")


def test_cram_md5_login(cram_srv):
    with tls_client(cram_srv) as c:
        assert auth_words(c.ehlo()) == ["PLAIN", "LOGIN", "CRAM-MD5"]
        r = check(c.cmd("AUTH CRAM-MD5"), 334)
        chal = unb64(r.texts[0])
        assert chal.startswith(b"<") and chal.endswith(b"@" + th.HOSTNAME.encode() + b">")
        c.expect(cram_response(ALICE, ALICE_PW, chal), 235, "2.7.0")
        c.expect(f"MAIL FROM:<{ALICE}>", 250)


def test_cram_md5_wrong_and_malformed(cram_srv):
    with tls_client(cram_srv) as c:
        chal = unb64(check(c.cmd("AUTH CRAM-MD5"), 334).texts[0])
        check(c.cmd(cram_response(ALICE, "wrong", chal)), 535, "5.7.8")
        chal2 = unb64(check(c.cmd("AUTH CRAM-MD5"), 334).texts[0])
        assert chal2 != chal, "a challenge must never repeat"
        check(c.cmd(b64(b"alice-without-digest")), 501, "5.5.2")
        check(c.cmd("AUTH CRAM-MD5 " + b64(b"x")), 501, "5.5.2")
        chal3 = unb64(check(c.cmd("AUTH CRAM-MD5"), 334).texts[0])
        check(c.cmd(cram_response("ghost@localhost", "x", chal3)), 535, "5.7.8")


def test_swaks_cram_md5(cram_srv):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{cram_srv.port_for('submissions')}",
                        "--tls-on-connect", "--auth", "CRAM-MD5", "--auth-user", ALICE,
                        "--auth-password", ALICE_PW, "--from", ALICE, "--to", BOB,
                        "--quit-after", "AUTH"], capture_output=True, text=True, timeout=30)
    if "Digest::MD5" in r.stdout + r.stderr or "Digest::HMAC" in r.stdout + r.stderr:
        pytest.skip("swaks lacks its optional Perl module for CRAM-MD5")
    assert "235 2.7.0" in r.stdout, r.stdout + r.stderr
