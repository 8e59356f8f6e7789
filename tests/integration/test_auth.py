"""SMTP AUTH in ternd (RFC 4954): PLAIN (RFC 4616) and LOGIN, offered only
inside TLS on submission, submission-alt and submissions; the users file;
sender ownership after AUTH; errors, logs and real clients (smtplib, swaks)."""

import os
import re
import smtplib
import stat
import subprocess
import time

import pytest

import tern_harness as th
from tern_harness import SMTPClient, check, b64, sasl_plain

ALICE, ALICE_PW = "alice@localhost", "secret"
BOB, BOB_PW = "bob@example.test", "hunter2-Bob"
WRONG_PW = "Wr0ng-Passw0rd-zq"
GHOST = "ghost@localhost"            # not in the users file
GHOST_PW = "gh0st-Passw0rd-xk"
PW200 = "L" + "0ng-pw200-" * 19 + "abcdefghi"          # 200 octets
PW255 = "M" + "ax-pw255-x" * 25 + "abcd"                # 255 octets (RFC 4616 2)
LONG200 = "long200@localhost"
LONG255 = "l" * 57 + "ong-255@localhost"               # 64-octet local part
RCPTS = ["carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
         "oscar", "peggy", "trent"]

AUTH_ROLES = ["submission", "submission-alt", "submissions"]
STARTTLS_SUBMIT = ["submission", "submission-alt"]
LISTENERS = ["mx", "submission", "submission-alt", "submissions"]

# every password (and base64 form) sent to a server: none may be logged
SECRETS = set()


def note(*secrets):
    for s in secrets:
        SECRETS.add(s)
    return secrets[0] if secrets else None


def plain(authcid, pw, authzid=""):
    blob = sasl_plain(authcid, pw, authzid)
    note(pw, blob, b64(pw))
    return blob


def users_map():
    u = {ALICE: ALICE_PW, BOB: BOB_PW, LONG200: PW200, LONG255: PW255}
    for r in RCPTS:
        u[f"{r}@localhost"] = f"pw-{r}-unused"
    return u


# ----------------------------------------------------------------------------
# servers

def start_with_users(factory, name, listeners=LISTENERS, **kw):
    # These servers test the protocol with many deliberate failures from
    # 127.0.0.1: a window of 1 s keeps the address lockout (tested on its
    # own below) out of their way.
    kw.setdefault("auth_max_failures", 64)
    kw.setdefault("auth_failure_window", "1s")
    kw.setdefault("auth_failure_delay", 0)
    base = factory.base()
    users = th.write_users(base / "users", users_map())
    return factory.start(base=base, listeners=listeners, users=str(users), name=name, **kw)


@pytest.fixture(scope="module")
def srv(module_factory):
    """mx first: the harness waits for a plaintext 220 on the first listener."""
    return start_with_users(module_factory, "auth")


@pytest.fixture(scope="module")
def err_srv(module_factory):
    return start_with_users(module_factory, "errors", max_errors=3)


# ----------------------------------------------------------------------------
# helpers

def starttls(c):
    c.expect("STARTTLS", 220, "2.0.0")
    th.tls_wrap(c)


def tls_client(srv, role, ehlo=True):
    """A client inside TLS on role (STARTTLS or implicit), EHLO done unless
    ehlo is False."""
    if role == "submissions":
        c = th.smtps_client(srv.port_for(role))
    else:
        c = SMTPClient(srv.port_for(role))
        try:
            c.ehlo()
            starttls(c)
        except BaseException:
            c.close()
            raise
    if ehlo:
        c.ehlo()
    return c


def authed(srv, role="submission", user=ALICE, pw=ALICE_PW):
    c = tls_client(srv, role)
    try:
        c.expect("AUTH PLAIN " + plain(user, pw), 235, "2.7.0")
    except BaseException:
        c.close()
        raise
    return c


def auth_line(reply):
    return [t for t in reply.texts[1:] if t.split() and t.split()[0].upper() == "AUTH"]


def has_auth(reply):
    kws = th.ehlo_keywords(reply)
    return "AUTH" in kws or any(k.startswith("AUTH=") for k in kws)


def wait_log(t, pred, offset=0, timeout=5.0):
    return th.wait_until(lambda: [ln for ln in th.log_events(t.log()[offset:], "auth")
                                  if pred(ln)], timeout=timeout)


def submit_and_check(srv, rcpt_user, subject, send):
    """send(msg) submits msg from ALICE to rcpt_user@localhost; then the
    message must be in that Maildir with 'with ESMTPSA'."""
    msg = th.message(subject, sender=ALICE, to=f"{rcpt_user}@localhost")
    send(msg)
    mails = th.wait_mail(srv.data_dir, "localhost", rcpt_user)
    mine = [m for m in mails if m.endswith(msg)]
    assert len(mine) == 1, (rcpt_user, mails)
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", mine[0])
    rec = re.search(rb"^Received: [^\r\n]*", unfolded, re.M)
    assert rec, mine[0][:500]
    assert re.search(rb"\bwith ESMTPSA\b", rec.group(0)), rec.group(0)
    return mine[0]


# ----------------------------------------------------------------------------
# EHLO advertisement

@pytest.mark.parametrize("role", AUTH_ROLES)
def test_ehlo_offers_auth_inside_tls(srv, role):
    with tls_client(srv, role, ehlo=False) as c:
        r = c.ehlo()
        assert auth_line(r) == ["AUTH PLAIN LOGIN"], r.raw


@pytest.mark.parametrize("role", STARTTLS_SUBMIT)
def test_ehlo_no_auth_before_tls(srv, role):
    with SMTPClient(srv.port_for(role)) as c:
        r = c.ehlo()
        assert not has_auth(r), r.raw
        assert "STARTTLS" in th.ehlo_keywords(r), r.raw


def test_mx_never_offers_auth(srv):
    with SMTPClient(srv.port_for("mx")) as c:
        r = c.ehlo()
        assert not has_auth(r), r.raw
        starttls(c)
        r = c.ehlo()
        assert not has_auth(r), r.raw


# ----------------------------------------------------------------------------
# AUTH where it is not allowed

@pytest.mark.parametrize("role", STARTTLS_SUBMIT)
def test_auth_before_tls_530(srv, role):
    with SMTPClient(srv.port_for(role)) as c:
        c.ehlo()
        r = c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 530, "5.7.0")
        assert "Must issue a STARTTLS command first" in r.text, r.raw
        r = c.expect("AUTH LOGIN", 530, "5.7.0")
        c.expect("NOOP", 250)


def test_mx_auth_502(srv):
    with SMTPClient(srv.port_for("mx")) as c:
        c.ehlo()
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 502, "5.5.1")
        starttls(c)
        c.ehlo()
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 502, "5.5.1")
        c.expect("AUTH LOGIN", 502, "5.5.1")
        c.expect("NOOP", 250)


@pytest.mark.parametrize("role", AUTH_ROLES)
def test_auth_before_ehlo_inside_tls_503(srv, role):
    with tls_client(srv, role, ehlo=False) as c:
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 503, "5.5.1")
        c.ehlo()
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 235, "2.7.0")


@pytest.mark.parametrize("mech", ["CRAM-MD5", "FOO", "CRAM-MD5 Zm9v"])
def test_unknown_mechanism_504(srv, mech):
    with tls_client(srv, "submission") as c:
        c.expect(f"AUTH {mech}", 504, "5.5.4")
        c.expect("NOOP", 250)
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 235, "2.7.0")


# ----------------------------------------------------------------------------
# PLAIN

@pytest.mark.parametrize("role", AUTH_ROLES)
def test_plain_initial_response_ok(srv, role):
    with tls_client(srv, role) as c:
        r = c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 235, "2.7.0")
        c.expect("QUIT", 221)


def test_plain_mechanism_name_case_insensitive(srv):
    with tls_client(srv, "submission") as c:
        c.expect("auth plain " + plain(ALICE, ALICE_PW), 235, "2.7.0")


@pytest.mark.parametrize("user,pw", [(ALICE, WRONG_PW), (GHOST, GHOST_PW),
                                     (ALICE, ALICE_PW.upper())],
                         ids=["wrong-password", "unknown-user", "password-case"])
def test_plain_failure_535(srv, user, pw):
    with tls_client(srv, "submission") as c:
        r = c.expect("AUTH PLAIN " + plain(user, pw), 535, "5.7.8")
        # still not authenticated
        c.expect(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")
        # a later correct AUTH works
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 235, "2.7.0")


def test_plain_unknown_user_same_reply_as_wrong_password(srv):
    with tls_client(srv, "submission") as c:
        r1 = c.expect("AUTH PLAIN " + plain(ALICE, WRONG_PW), 535, "5.7.8")
        r2 = c.expect("AUTH PLAIN " + plain(GHOST, GHOST_PW), 535, "5.7.8")
        assert r1.raw == r2.raw, (r1.raw, r2.raw)


def test_plain_authzid_other_user_refused(srv):
    with tls_client(srv, "submission") as c:
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW, authzid=BOB), 535, "5.7.8")
        c.expect(f"MAIL FROM:<{BOB}>", 530, "5.7.0")
        c.expect(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")


def test_plain_authzid_equal_authcid_ok(srv):
    with tls_client(srv, "submission") as c:
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW, authzid=ALICE), 235, "2.7.0")
        c.expect(f"MAIL FROM:<{ALICE}>", 250, "2.1.0")


def test_plain_without_initial_response(srv):
    with tls_client(srv, "submission") as c:
        r = c.cmd("AUTH PLAIN")
        assert r.raw == b"334 \r\n", r.raw
        c.expect(plain(ALICE, ALICE_PW), 235, "2.7.0")
        c.expect(f"MAIL FROM:<{ALICE}>", 250, "2.1.0")


def test_plain_without_initial_response_wrong(srv):
    with tls_client(srv, "submission") as c:
        r = c.cmd("AUTH PLAIN")
        assert r.raw == b"334 \r\n", r.raw
        c.expect(plain(ALICE, WRONG_PW), 535, "5.7.8")
        c.expect("NOOP", 250)


def expect_long(c, line, code, enh):
    """c.expect for long lines, with a short description on failure."""
    r = c.cmd(line)
    return check(r, code, enh, what=f"{line[:40]}... ({len(line)} octets)")


def test_plain_long_initial_response_200(srv):
    assert len(PW200) == 200
    with tls_client(srv, "submission") as c:
        expect_long(c, "AUTH PLAIN " + plain(LONG200, PW200), 235, "2.7.0")
        c.expect(f"MAIL FROM:<{LONG200}>", 250, "2.1.0")


def test_plain_initial_response_over_512(srv):
    """authzid = authcid (74 octets) and a 255-octet password: an AUTH line
    longer than 512 octets (RFC 4954 4 allows up to 12288)."""
    assert len(PW255) == 255 and len(LONG255.split("@")[0]) == 64
    line = "AUTH PLAIN " + plain(LONG255, PW255, authzid=LONG255)
    assert 512 < len(line) + 2 <= 12288, len(line)
    with tls_client(srv, "submission") as c:
        expect_long(c, line, 235, "2.7.0")
        c.expect(f"MAIL FROM:<{LONG255}>", 250, "2.1.0")


def test_plain_over_512_wrong_password(srv):
    line = "AUTH PLAIN " + plain(LONG255, PW255[:-1] + "Z", authzid=LONG255)
    assert len(line) + 2 > 512
    with tls_client(srv, "submission") as c:
        expect_long(c, line, 535, "5.7.8")
        c.expect("NOOP", 250)


def test_plain_continuation_over_512(srv):
    with tls_client(srv, "submission") as c:
        r = c.cmd("AUTH PLAIN")
        assert r.raw == b"334 \r\n", r.raw
        expect_long(c, plain(LONG255, PW255, authzid=LONG255), 235, "2.7.0")


# ----------------------------------------------------------------------------
# LOGIN

def test_login_ok(srv):
    note(ALICE_PW, b64(ALICE_PW))
    with tls_client(srv, "submission") as c:
        r = c.cmd("AUTH LOGIN")
        assert r.raw == b"334 VXNlcm5hbWU6\r\n", r.raw
        r = c.cmd(b64(ALICE))
        assert r.raw == b"334 UGFzc3dvcmQ6\r\n", r.raw
        c.expect(b64(ALICE_PW), 235, "2.7.0")
        c.expect(f"MAIL FROM:<{ALICE}>", 250, "2.1.0")


@pytest.mark.parametrize("user,pw", [(ALICE, WRONG_PW), (GHOST, GHOST_PW)],
                         ids=["wrong-password", "unknown-user"])
def test_login_failure_535(srv, user, pw):
    note(pw, b64(pw))
    with tls_client(srv, "submission") as c:
        r = c.cmd("AUTH LOGIN")
        assert r.raw == b"334 VXNlcm5hbWU6\r\n", r.raw
        r = c.cmd(b64(user))
        assert r.raw == b"334 UGFzc3dvcmQ6\r\n", r.raw
        c.expect(b64(pw), 535, "5.7.8")
        c.expect(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")


@pytest.mark.parametrize("role", AUTH_ROLES)
def test_login_initial_response(srv, role):
    note(BOB_PW, b64(BOB_PW))
    with tls_client(srv, role) as c:
        r = c.cmd("AUTH LOGIN " + b64(BOB))
        assert r.raw == b"334 UGFzc3dvcmQ6\r\n", r.raw
        c.expect(b64(BOB_PW), 235, "2.7.0")
        c.expect(f"MAIL FROM:<{BOB}>", 250, "2.1.0")


# ----------------------------------------------------------------------------
# cancel and malformed responses

@pytest.mark.parametrize("steps", [["AUTH PLAIN"], ["AUTH LOGIN"],
                                   ["AUTH LOGIN", "username"]],
                         ids=["plain", "login-user", "login-password"])
def test_cancel_with_star(srv, steps):
    with tls_client(srv, "submission") as c:
        for s in steps:
            r = c.cmd(b64(ALICE) if s == "username" else s)
            assert r.code == 334, r.raw
        c.expect("*", 501, "5.0.0")
        c.expect("NOOP", 250)
        c.expect(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 235, "2.7.0")


@pytest.mark.parametrize("how", ["initial", "continuation", "login-user", "login-initial"])
def test_invalid_base64_501(srv, how):
    bad = "!!not*base64$$"
    with tls_client(srv, "submission") as c:
        if how == "initial":
            c.expect(f"AUTH PLAIN {bad}", 501, "5.5.2")
        elif how == "continuation":
            assert c.cmd("AUTH PLAIN").code == 334
            c.expect(bad, 501, "5.5.2")
        elif how == "login-user":
            assert c.cmd("AUTH LOGIN").code == 334
            c.expect(bad, 501, "5.5.2")
        else:
            c.expect(f"AUTH LOGIN {bad}", 501, "5.5.2")
        c.expect("NOOP", 250)
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 235, "2.7.0")


@pytest.mark.parametrize("msg", [b"alice", b"alice@localhost\0secret", b"",
                                 b"\0alice@localhost\0", b"\0\0secret"],
                         ids=["no-nul", "one-nul", "empty", "empty-password", "empty-user"])
def test_plain_unparsable_501(srv, msg):
    """RFC 4616 2: authcid and passwd are 1*SAFE."""
    with tls_client(srv, "submission") as c:
        if msg:
            c.expect("AUTH PLAIN " + b64(msg), 501, "5.5.2")
        else:
            # "=" is the empty initial response (RFC 4954 section 4)
            c.expect("AUTH PLAIN =", 501, "5.5.2")
        c.expect("NOOP", 250)


# ----------------------------------------------------------------------------
# state

def test_second_auth_503(srv):
    with authed(srv) as c:
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 503, "5.5.1")
        c.expect("AUTH LOGIN", 503, "5.5.1")
        c.expect(f"MAIL FROM:<{ALICE}>", 250, "2.1.0")


def test_auth_inside_transaction_503(srv):
    with authed(srv) as c:
        c.expect(f"MAIL FROM:<{ALICE}>", 250, "2.1.0")
        c.expect("AUTH PLAIN " + plain(BOB, BOB_PW), 503, "5.5.1")
        c.expect("RCPT TO:<carol@localhost>", 250, "2.1.5")


def test_auth_survives_rset(srv):
    with authed(srv) as c:
        c.expect(f"MAIL FROM:<{ALICE}>", 250, "2.1.0")
        c.expect("RSET", 250)
        c.expect(f"MAIL FROM:<{ALICE}>", 250, "2.1.0")


@pytest.mark.parametrize("role", AUTH_ROLES)
def test_mail_without_auth_530(srv, role):
    with tls_client(srv, role) as c:
        r = c.expect(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")
        assert "Authentication required" in r.text, r.raw


# ----------------------------------------------------------------------------
# after AUTH: sender ownership, recipients, delivery

def test_sender_must_be_own_address(srv):
    with authed(srv) as c:
        r = c.expect(f"MAIL FROM:<{BOB}>", 553, "5.7.1")
        assert "Sender address not owned by user" in r.text, r.raw
        c.expect("MAIL FROM:<>", 553, "5.7.1")
        c.expect(f"MAIL FROM:<{ALICE}>", 250, "2.1.0")


def test_senders_field_lets_a_user_send_for_a_domain(ternd_factory):
    """Issue 3 item 5: a domain (or an address) the users file allows."""
    base = ternd_factory.base()
    users = base / "users"
    fd = os.open(users, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (f"boss@localhost:{th.crypt_hash('pw-Boss-1')}::::::"
                  "senders=@example.test,sales@localhost\n").encode())
    os.close(fd)
    t = ternd_factory.start(base=base, listeners=["mx", "submissions"], users=str(users))
    with th.smtps_client(t.port_for("submissions")) as c:
        c.ehlo()
        c.expect("AUTH PLAIN " + plain("boss@localhost", "pw-Boss-1"), 235)
        for sender in ("boss@localhost", "anyone@example.test", "sales@localhost"):
            c.expect(f"MAIL FROM:<{sender}>", 250, "2.1.0")
            c.expect("RSET", 250)
        c.expect("MAIL FROM:<alice@localhost>", 553, "5.7.1")
        c.expect("MAIL FROM:<x@sub.example.test>", 553, "5.7.1")


def test_authenticated_user_may_send_to_other_domains(srv):
    """DESIGN.md: submission may send anywhere once logged in (the same
    recipient without a login is 554 5.7.1: test_relay.py)."""
    with authed(srv) as c:
        c.expect(f"MAIL FROM:<{ALICE}>", 250, "2.1.0")
        c.expect("RCPT TO:<x@remote.example>", 250, "2.1.5")
        c.expect("RCPT TO:<carol@localhost>", 250, "2.1.5")
        # but never to an unknown local user, nor by a routing trick
        c.expect("RCPT TO:<nobody-here@localhost>", 550, "5.1.1")
        c.expect("RCPT TO:<\"x@elsewhere.example\"@localhost>", 550, "5.7.1")
        c.expect("RSET", 250)
    assert "result=ok-relay" in srv.log()


@pytest.mark.parametrize("role,rcpt", [("submission", "dave"), ("submission-alt", "erin"),
                                       ("submissions", "frank")])
def test_authenticated_delivery(srv, role, rcpt):
    msg = th.message(f"auth delivery {role}", sender=ALICE, to=f"{rcpt}@localhost")
    with authed(srv, role) as c:
        qid = c.send_message(ALICE, [f"{rcpt}@localhost"], msg)
        c.expect("QUIT", 221)
    mails = th.wait_mail(srv.data_dir, "localhost", rcpt)
    assert len(mails) == 1, mails
    th.check_delivered(mails[0], ALICE, msg, qid=qid, proto="ESMTPSA")


# ----------------------------------------------------------------------------
# real clients

@pytest.mark.parametrize("role,rcpt", [("submission", "grace"), ("submission-alt", "heidi")])
def test_smtplib_starttls_login(srv, role, rcpt):
    def send(msg):
        s = smtplib.SMTP("127.0.0.1", srv.port_for(role), local_hostname="client.example",
                         timeout=10)
        try:
            s.ehlo()
            assert not s.has_extn("auth"), "AUTH offered before TLS"
            code, resp = s.starttls(context=th.tls_context_noverify())
            assert code == 220, resp
            s.ehlo()
            assert s.has_extn("auth")
            assert set(s.esmtp_features["auth"].upper().split()) == {"PLAIN", "LOGIN"}
            code, resp = s.login(ALICE, ALICE_PW)
            assert code == 235, (code, resp)
            assert s.sendmail(ALICE, [f"{rcpt}@localhost"], msg) == {}
            s.quit()
        finally:
            s.close()
    note(ALICE_PW, b64(ALICE_PW), sasl_plain(ALICE, ALICE_PW))
    submit_and_check(srv, rcpt, f"smtplib {role}", send)


def test_smtplib_login_mechanism(srv):
    """smtplib's AUTH LOGIN sends the user name as initial response."""
    note(ALICE_PW, b64(ALICE_PW))
    s = smtplib.SMTP("127.0.0.1", srv.port_for("submission"), local_hostname="client.example",
                     timeout=10)
    try:
        s.ehlo()
        s.starttls(context=th.tls_context_noverify())
        s.ehlo()
        s.user, s.password = ALICE, ALICE_PW
        code, resp = s.auth("LOGIN", s.auth_login)
        assert code == 235, (code, resp)
        code, resp = s.mail(ALICE)
        assert code == 250, (code, resp)
        s.quit()
    finally:
        s.close()


def test_smtplib_bad_password(srv):
    note(WRONG_PW, b64(WRONG_PW), sasl_plain(ALICE, WRONG_PW))
    s = smtplib.SMTP("127.0.0.1", srv.port_for("submission"), local_hostname="client.example",
                     timeout=10)
    try:
        s.ehlo()
        s.starttls(context=th.tls_context_noverify())
        s.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            s.login(ALICE, WRONG_PW)
        assert ei.value.smtp_code == 535, ei.value
        s.quit()
    finally:
        s.close()


def test_smtp_ssl_login(srv):
    def send(msg):
        s = smtplib.SMTP_SSL("127.0.0.1", srv.port_for("submissions"),
                             local_hostname="client.example", timeout=10,
                             context=th.tls_context_noverify())
        try:
            s.ehlo()
            assert s.has_extn("auth")
            code, resp = s.login(ALICE, ALICE_PW)
            assert code == 235, (code, resp)
            assert s.sendmail(ALICE, [f"ivan@localhost"], msg) == {}
            s.quit()
        finally:
            s.close()
    note(ALICE_PW, b64(ALICE_PW), sasl_plain(ALICE, ALICE_PW))
    submit_and_check(srv, "ivan", "smtplib SMTP_SSL", send)


@pytest.mark.parametrize("role,tlsflag,mech,rcpt", [
    ("submission", "--tls", "PLAIN", "judy"),
    ("submission", "--tls", "LOGIN", "mallory"),
    ("submissions", "--tls-on-connect", "PLAIN", "oscar"),
])
def test_swaks_auth(srv, role, tlsflag, mech, rcpt):
    note(ALICE_PW, b64(ALICE_PW), sasl_plain(ALICE, ALICE_PW))
    p = subprocess.run(
        [th.SWAKS, "--server", "127.0.0.1", "--port", str(srv.port_for(role)), tlsflag,
         "--auth", mech, "--auth-user", ALICE, "--auth-password", ALICE_PW,
         "--helo", "client.example", "--from", ALICE, "--to", f"{rcpt}@localhost",
         "--header", f"Subject: swaks auth {mech} {role}", "--timeout", "15"],
        capture_output=True, timeout=25, stdin=subprocess.DEVNULL)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, (out[-3000:], p.stderr.decode(errors="replace")[-2000:])
    assert re.search(r"<~\s+235 ", out), out[-3000:]
    mails = th.wait_mail(srv.data_dir, "localhost", rcpt)
    assert len(mails) == 1, mails
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", mails[0])
    rec = re.search(rb"^Received: [^\r\n]*", unfolded, re.M)
    assert rec and re.search(rb"\bwith ESMTPSA\b", rec.group(0)), mails[0][:500]


# ----------------------------------------------------------------------------
# errors count; the log

def test_wrong_passwords_count_as_errors(err_srv):
    with tls_client(err_srv, "submission") as c:
        for i in range(3):
            c.expect("AUTH PLAIN " + plain(ALICE, f"{WRONG_PW}{i}"), 535, "5.7.8")
        r = c.reply(timeout=3)
        check(r, 421, "4.7.0", what="after the third 535")
        assert c.at_eof(3), "connection not closed after 421"


def test_max_errors_login_mechanism(err_srv):
    with tls_client(err_srv, "submission") as c:
        for i in range(3):
            assert c.cmd("AUTH LOGIN " + b64(ALICE)).code == 334
            note(f"{WRONG_PW}L{i}", b64(f"{WRONG_PW}L{i}"))
            c.expect(b64(f"{WRONG_PW}L{i}"), 535, "5.7.8")
        r = c.reply(timeout=3)
        check(r, 421, "4.7.0", what="after the third 535")
        assert c.at_eof(3), "connection not closed after 421"


def test_log_auth_events(srv):
    off = len(srv.log())
    with authed(srv) as c:
        c.expect("QUIT", 221)
    with tls_client(srv, "submission") as c:
        c.expect("AUTH PLAIN " + plain(BOB, WRONG_PW), 535, "5.7.8")
    ok = wait_log(srv, lambda ln: "result=ok" in ln and ALICE in ln, off)
    assert ok, srv.log()[off:][-3000:]
    bad = wait_log(srv, lambda ln: "result=failed" in ln and BOB in ln, off)
    assert bad, srv.log()[off:][-3000:]


def test_log_never_holds_passwords(srv, err_srv):
    """Runs last: every password and base64 form sent by this file."""
    # make sure at least these went through this server
    with tls_client(srv, "submission") as c:
        c.expect("AUTH PLAIN " + plain(ALICE, WRONG_PW), 535, "5.7.8")
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 235, "2.7.0")
    wait_log(srv, lambda ln: "result=ok" in ln, 0)
    time.sleep(0.3)
    assert SECRETS
    for t in (srv, err_srv):
        text = t.log()
        leaked = sorted(s for s in SECRETS if len(s) >= 4 and s in text)
        assert not leaked, f"{t.name}: passwords in the log: {[s[:40] for s in leaked]}"


# ----------------------------------------------------------------------------
# users file

@pytest.mark.parametrize("mode", [0o644, 0o640], ids=["0644", "0640"])
def test_users_file_readable_by_others_refused(ternd_factory, mode):
    base = ternd_factory.base()
    users = th.write_users(base / "users", {ALICE: ALICE_PW}, mode=mode)
    t = ternd_factory.start(base=base, listeners=["mx", "submission"], users=str(users),
                            wait=False)
    try:
        rc = t.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ternd started with a users file of mode {oct(mode)}; "
                             f"stderr:\n{t.log()[-3000:]}")
    t.stopped = True
    err = t.log()
    assert rc == 1, f"exit status {rc}; stderr:\n{err[-3000:]}"
    assert str(users) in err, err[-3000:]
    assert re.search(r"readable by group or others", err), err[-3000:]


def tern_user_available():
    if not os.path.exists(th.TERN):
        return False
    p = subprocess.run([th.TERN, "help"], capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    text = (p.stdout + p.stderr).decode(errors="replace")
    return re.search(r"^\s*user\b", text, re.M) is not None


def test_tern_user_add_then_login(ternd_factory):
    if not tern_user_available():
        pytest.skip(f"`tern user` is not implemented yet in {th.TERN}")
    base = ternd_factory.base()
    users = base / "users"
    pw = "Yes-crypt-pw-42"
    note(pw, b64(pw), sasl_plain("peggy@localhost", pw))
    p = subprocess.run([th.TERN, "user", "add", "peggy@localhost", "-f", str(users)],
                       input=(pw + "\n").encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert pw.encode() not in p.stdout + p.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600, oct(users.stat().st_mode)
    lines = [ln for ln in users.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 1, lines
    name, _, h = lines[0].partition(":")
    assert name == "peggy@localhost", lines
    assert h.startswith("$y$"), f"not a yescrypt hash: {h!r}"
    assert pw not in h
    t = ternd_factory.start(base=base, listeners=["mx", "submission"], users=str(users))
    with tls_client(t, "submission") as c:
        c.expect("AUTH PLAIN " + plain("peggy@localhost", pw + "x"), 535, "5.7.8")
        c.expect("AUTH PLAIN " + plain("peggy@localhost", pw), 235, "2.7.0")
        c.expect("MAIL FROM:<peggy@localhost>", 250, "2.1.0")
    assert pw not in t.log()


# ----------------------------------------------------------------------------
# brute-force defence (DESIGN.md invariant 2: AUTH attempts have a limit)

def test_address_locked_after_failures_across_connections(ternd_factory):
    t = start_with_users(ternd_factory, "lockout", listeners=["mx", "submission"],
                         auth_max_failures=3, auth_failure_window="60s",
                         auth_lockout="3s", max_errors=20)
    # two failures on one connection, the third on another: counted per address
    with tls_client(t, "submission") as c:
        c.expect("AUTH PLAIN " + plain(ALICE, WRONG_PW), 535, "5.7.8")
        c.expect("AUTH PLAIN " + plain(ALICE, WRONG_PW), 535, "5.7.8")
    with tls_client(t, "submission") as c:
        c.expect("AUTH PLAIN " + plain(ALICE, WRONG_PW), 535, "5.7.8")
        check(c.reply(timeout=5), 421, "4.7.0")
        assert c.at_eof(3)
    # locked: even the right password is refused, at the AUTH command
    with tls_client(t, "submission") as c:
        r = c.cmd("AUTH PLAIN " + plain(ALICE, ALICE_PW))
        check(r, 421, "4.7.0")
        assert c.at_eof(3)
    assert "event=auth-limit" in t.log() and "locked=yes" in t.log()
    # the lock lifts after auth_lockout
    time.sleep(3.5)
    with tls_client(t, "submission") as c:
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 235, "2.7.0")


def test_overlong_auth_response_ends_the_exchange(srv):
    """A response line over 12288 octets (RFC 4954 4) is refused, and what
    follows is read as commands again, not as another response."""
    with tls_client(srv, "submission") as c:
        r = c.cmd("AUTH PLAIN")
        assert r.raw == b"334 \r\n", r.raw
        c.send(b"A" * 13000 + b"\r\n")
        check(c.reply(), 500, "5.5.2")
        c.expect("NOOP", 250, "2.0.0")
        c.expect("AUTH PLAIN " + plain(ALICE, ALICE_PW), 235, "2.7.0")
