"""Listener policy as data (issue 3, item 3): `listen ... tls MODE auth MODE
[plaintext_auth loopback]` overrides the role's defaults, and the session
obeys the policy it was given; AUTH= on MAIL (RFC 4954 5); the tarpit of
delayed 535 replies before the lockout."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

import tern_harness as th
from tern_harness import SMTPClient, check, sasl_plain

ALICE, ALICE_PW = "alice@localhost", "secret-Alice-1"
WRONG = "not-the-password"


def users(factory):
    base = factory.base()
    return base, str(th.write_users(base / "users", {ALICE: ALICE_PW}))


def kws(reply):
    return th.ehlo_keywords(reply)


def starttls(c):
    c.expect("STARTTLS", 220, "2.0.0")
    th.tls_wrap(c)


def send_local(c, sender="someone@remote.example", rcpt=ALICE):
    c.expect(f"MAIL FROM:<{sender}>", 250, "2.1.0")
    c.expect(f"RCPT TO:<{rcpt}>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: policy\r\n\r\nhello\r\n.\r\n")
    return check(c.reply(), 250, "2.0.0")


@pytest.fixture(scope="module")
def srv(module_factory):
    base, ufile = users(module_factory)
    return module_factory.start(
        base=base, name="policy", users=ufile, auth_failure_delay=0,
        listeners=["mx auth optional",
                   "submission tls optional auth optional",
                   "mx tls none",
                   "submission tls none plaintext_auth loopback",
                   "mx tls implicit"])


def port(srv, i):
    return srv.listeners()[i][0]


def test_mx_with_auth_optional_offers_auth_only_inside_tls(srv):
    with SMTPClient(port(srv, 0)) as c:
        k = kws(c.ehlo())
        assert "STARTTLS" in k and "AUTH" not in k
        check(c.cmd("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW)), 530, "5.7.0")
        starttls(c)
        k = kws(c.ehlo())
        assert "AUTH" in k and "STARTTLS" not in k
        c.expect("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW), 235, "2.7.0")
        # an authenticated user on port 25 is still bound to its own address
        check(c.cmd("MAIL FROM:<mallory@localhost>"), 553, "5.7.1")
        send_local(c, sender=ALICE)


def test_mx_with_auth_optional_still_takes_plain_mail_for_local_domains(srv):
    with SMTPClient(port(srv, 0)) as c:
        c.ehlo()
        send_local(c)
        # and stays no open relay without a login
        c.expect("MAIL FROM:<x@remote.example>", 250)
        check(c.cmd("RCPT TO:<y@elsewhere.example>"), 554, "5.7.1")


def test_submission_with_tls_and_auth_optional_takes_plaintext_mail(srv):
    with SMTPClient(port(srv, 1)) as c:
        k = kws(c.ehlo())
        assert "STARTTLS" in k and "AUTH" not in k
        send_local(c)


def test_tls_none_offers_no_starttls_and_refuses_it(srv):
    with SMTPClient(port(srv, 2)) as c:
        k = kws(c.ehlo())
        assert "STARTTLS" not in k and "AUTH" not in k
        check(c.cmd("STARTTLS"), 502, "5.5.1")
        # the session goes on in plaintext
        send_local(c)


def test_plaintext_auth_loopback_allows_auth_without_tls_from_loopback(srv):
    with SMTPClient(port(srv, 3)) as c:
        k = kws(c.ehlo())
        assert "AUTH" in k and "STARTTLS" not in k
        check(c.cmd("MAIL FROM:<%s>" % ALICE), 530, "5.7.0")
        c.expect("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW), 235, "2.7.0")
        send_local(c, sender=ALICE)
    assert "plaintext AUTH from loopback" in srv.out_path.read_text()


def test_tls_implicit_on_an_mx_listener(srv):
    p = port(srv, 4)
    with th.smtps_client(p) as c:
        check(c.banner, 220)
        k = kws(c.ehlo())
        assert "STARTTLS" not in k and "AUTH" not in k
        send_local(c)
    # a plaintext client hears nothing
    with SMTPClient(p, banner=False) as c:
        assert c.nothing_pending(0.5)


def test_policy_printed_at_start(srv):
    out = srv.out_path.read_text()
    assert "tls optional, auth optional" in out
    assert "tls none, auth none" in out
    assert "tls implicit, auth none" in out


@pytest.mark.parametrize("line,words", [
    ("submission tls none",
     "auth required with tls none: no client could ever log in"),
    ("mx tls sometimes", "unknown tls mode 'sometimes'"),
    ("mx auth maybe", "unknown auth mode 'maybe'"),
])
def test_impossible_policy_refused_at_start_with_file_and_line(ternd_factory, line, words):
    t = ternd_factory.start(listeners=["mx", line], wait=False)
    assert t.proc.wait(timeout=10) != 0
    t.killed = True
    err = t.log()
    assert words in err
    assert f"{t.conf_path}:" in err and ": listen: " in err


# ----------------------------------------------------------------------------
# plaintext AUTH from an address that is not loopback: refused even with
# plaintext_auth loopback. Needs an address that is not 127/8 or ::1, which
# a private network namespace gives without touching the machine's network.

NETNS_SCRIPT = textwrap.dedent(r"""
    import os, socket, subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    import tern_harness as th
    base = sys.argv[2]
    # an address that is not 127/8 on the namespace's own lo (no dummy
    # interface module needed): traffic to it still never leaves the host
    for cmd in (["ip", "link", "set", "lo", "up"],
                ["ip", "addr", "add", "10.203.0.1/32", "dev", "lo"]):
        subprocess.run(cmd, check=True, timeout=10)
    users = th.write_users(os.path.join(base, "users"), {"alice@localhost": "pw-Alice-2"})
    cfg = th.default_config(base, ["127.0.0.1:2500 mx",
                                   "10.203.0.1:2587 submission tls none plaintext_auth loopback"],
                            users=str(users))
    t = th.Ternd(base, cfg)
    t.start()
    try:
        c = th.SMTPClient(2587, host="10.203.0.1", source="10.203.0.1")
        k = th.ehlo_keywords(c.ehlo())
        r = c.cmd("AUTH PLAIN " + th.sasl_plain("alice@localhost", "pw-Alice-2"))
        print("RESULT", "AUTH" in k, r.code, r.enh, flush=True)
        c.close()
    finally:
        t.stop()
""")


def test_plaintext_auth_loopback_refuses_other_addresses(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for a private network namespace")
    base = th.make_base()
    try:
        os.chmod(base, 0o755)
        r = subprocess.run(["unshare", "-n", sys.executable, "-c", NETNS_SCRIPT,
                            os.path.dirname(__file__), str(base)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        # from 10.203.0.1: AUTH not offered, and refused when tried
        assert "RESULT False 530 5.7.0" in r.stdout, r.stdout + r.stderr
    finally:
        th.rmtree(base)


# ----------------------------------------------------------------------------
# AUTH= on MAIL (RFC 4954 5)

def authed(srv):
    c = th.smtps_client(srv.port_for("submissions"))
    c.ehlo()
    c.expect("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW), 235, "2.7.0")
    return c


@pytest.fixture(scope="module")
def sub(module_factory):
    base, ufile = users(module_factory)
    return module_factory.start(base=base, name="authparam", users=ufile,
                                listeners=["mx", "submissions"])


def mail_events(t, offset):
    return th.log_events(t.log()[offset:], "mail")


@pytest.mark.parametrize("param,submitter", [
    ("", "alice@localhost"),                      # none: the user itself
    (" AUTH=<>", "<>"),                           # originator unknown
    (" AUTH=alice@localhost", "alice@localhost"),  # an address it owns
    (" AUTH=alice+2Bx@localhost", "<>"),          # xtext decoded, not owned
    (" AUTH=mallory@localhost", "<>"),            # another user's: not believed
])
def test_auth_param_believed_only_for_an_owned_address(sub, param, submitter):
    off = len(sub.log())
    with authed(sub) as c:
        c.expect(f"MAIL FROM:<{ALICE}>{param}", 250, "2.1.0")
        c.expect("RSET", 250)
    ev = th.wait_until(lambda: mail_events(sub, off))
    assert f'submitter={submitter}' in ev[-1] or f'submitter="{submitter}"' in ev[-1], ev


def test_auth_param_from_unauthenticated_client_is_ignored(sub):
    off = len(sub.log())
    with SMTPClient(sub.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<x@remote.example> AUTH=alice@localhost", 250, "2.1.0")
        c.expect("RSET", 250)
    ev = th.wait_until(lambda: mail_events(sub, off))
    assert "submitter" not in ev[-1] and "auth=" not in ev[-1]


def test_auth_param_malformed_is_refused(sub):
    with authed(sub) as c:
        check(c.cmd(f"MAIL FROM:<{ALICE}> AUTH=a=b"), 501, "5.5.4")


# ----------------------------------------------------------------------------
# the tarpit: repeated failures wait longer for their 535, then the lockout

def test_failed_logins_are_delayed_more_each_time_then_locked(ternd_factory):
    base, ufile = users(ternd_factory)
    t = ternd_factory.start(base=base, users=ufile, listeners=["mx", "submissions"],
                            auth_failure_delay="400ms", auth_max_failures=4,
                            auth_failure_window="60s", auth_lockout="60s", max_errors=20)
    times = []
    with th.smtps_client(t.port_for("submissions")) as c:
        c.ehlo()
        for i in range(3):
            start = time.monotonic()
            # NOOP in the same write: it must not be answered before the 535
            c.send(("AUTH PLAIN " + sasl_plain(ALICE, WRONG) + "\r\nNOOP\r\n").encode())
            check(c.reply(timeout=10), 535, "5.7.8")
            times.append(time.monotonic() - start)
            check(c.reply(timeout=10), 250, "2.0.0")
        c.send(("AUTH PLAIN " + sasl_plain(ALICE, WRONG) + "\r\n").encode())
        check(c.reply(timeout=10), 535, "5.7.8")
        check(c.reply(timeout=10), 421, "4.7.0")
        assert c.at_eof(3)
    assert times[0] < 0.35, times
    assert 0.4 <= times[1] < 2.0, times
    assert 0.8 <= times[2] < 3.0, times
    delays = th.log_events(t.log(), "auth-delay")
    assert len(delays) == 2 and "delay_ms=400" in delays[0] and "delay_ms=800" in delays[1]
    # locked: the right password is refused too
    with th.smtps_client(t.port_for("submissions")) as c:
        c.ehlo()
        check(c.cmd("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW)), 421, "4.7.0")
