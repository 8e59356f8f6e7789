"""Outbound delivery (issue 4) through the real ternd: MX lookup against a
test DNS server on loopback (fake_dns.py, never the machine's resolver),
delivery to fake MXs on 127.x.y.z:25 (fake_mx.py), retries, bounces (parsed
with dsn_check.py), TLS policy, smarthost port fallback, restarts."""

import itertools
import os
import random
import signal
import time

import pytest

import tern_harness as th
from dsn_check import parse_dsn, parse_report
from fake_dns import FakeDNS
from fake_mx import FakeMX, refused_port
from tern_harness import SMTPClient, check, sasl_plain

ALICE, ALICE_PW = "alice@localhost", "pw-Alice-outbound"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="fake MXs bind port 25: needs root")

_net = itertools.count(random.randrange(1, 200))


def mx_addr():
    """A loopback address of our own for one fake MX (concurrent runs and
    other tests use others)."""
    n = next(_net) % 250 + 1
    return f"127.{90 + os.getpid() % 60}.{n}.{random.randrange(2, 250)}"


@pytest.fixture
def dns():
    d = FakeDNS().start()
    yield d
    d.stop()


@pytest.fixture
def mxs():
    started = []

    def make(**kw):
        kw.setdefault("host", mx_addr())
        kw.setdefault("port", 25)
        m = FakeMX(**kw).start()
        started.append(m)
        return m
    yield make
    for m in started:
        m.stop()


def start_ternd(factory, dns, **kw):
    base = factory.base()
    users = th.write_users(base / "users", {ALICE: ALICE_PW})
    cfg = dict(dns_server=dns.addr, dns_timeout="300ms", queue_retry="1s",
               queue_retry_max="1s", smtp_connect_timeout="2s", smtp_command_timeout="5s",
               users=str(users), auth_failure_delay=0)
    cfg.update(kw)
    return factory.start(base=base, listeners=["mx", "submissions"], **cfg)


def submit(t, rcpts, body=b"Subject: out\r\n\r\nhello out there\r\n", sender=ALICE, params=""):
    with th.smtps_client(t.port_for("submissions")) as c:
        c.ehlo()
        c.expect("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW), 235)
        qid = c.send_message(sender, rcpts, body, params=params)
        c.expect("QUIT", 221)
    return qid


def deliveries(t, **match):
    out = []
    for ln in th.log_events(t.log(), "delivery"):
        if all(f"{k}={v}" in ln or f'{k}="{v}"' in ln for k, v in match.items()):
            out.append(ln)
    return out


def wait_delivery(t, timeout=20, **match):
    return th.wait_until(lambda: deliveries(t, **match), timeout=timeout)[-1]


def zone(dns, domain, mx_list):
    """mx_list: [(pref, FakeMX or ip string)]"""
    for i, (pref, target) in enumerate(mx_list):
        host = f"mx{i + 1}.{domain}"
        dns.add(domain, "MX", (pref, host))
        dns.add(host, "A", target.host if hasattr(target, "host") else target)


def test_delivery_with_starttls_logged_with_reply_and_tls(ternd_factory, dns, mxs):
    mx = mxs(starttls=True, hostname="mx1.remote.example")
    zone(dns, "remote.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns)
    qid = submit(t, ["bob@remote.example", "carol@remote.example"])
    msgs = mx.wait_messages(1, timeout=20)
    assert sorted(msgs[0]["rcpt_tos"]) == ["bob@remote.example", "carol@remote.example"]
    assert msgs[0]["mail_from"] == ALICE
    assert msgs[0]["tls"] and msgs[0]["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert b"hello out there" in msgs[0]["data"]
    line = wait_delivery(t, qid=qid, to="bob@remote.example", status="sent")
    assert f"relay=\"mx1.remote.example[{mx.host}]:25\"" in line
    assert "tls=\"TLSv1." in line or "tls=TLSv1." in line
    assert "detail=\"250" in line
    assert "delay=" in line
    assert mx.sessions == 1          # both recipients in one transaction
    assert th.wait_queue_empty(t.data_dir)
    assert ("remote.example", "MX") in dns.queries


def test_plaintext_mx_delivery_says_plaintext(ternd_factory, dns, mxs):
    mx = mxs(starttls=False)
    zone(dns, "plain.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns)
    submit(t, ["bob@plain.example"])
    mx.wait_messages(1, timeout=20)
    line = wait_delivery(t, to="bob@plain.example", status="sent")
    assert "tls=\"plaintext\"" in line


def test_mx_preference_and_fallback_to_next_mx(ternd_factory, dns, mxs):
    dead = mx_addr()                     # nothing listens there: refused
    good = mxs()
    zone(dns, "pref.example", [(10, dead), (20, good)])
    t = start_ternd(ternd_factory, dns)
    submit(t, ["bob@pref.example"])
    good.wait_messages(1, timeout=20)
    line = wait_delivery(t, to="bob@pref.example", status="sent")
    assert f"[{good.host}]:25" in line


def test_no_mx_falls_back_to_a_record(ternd_factory, dns, mxs):
    mx = mxs()
    dns.add("amx.example", "A", mx.host)
    t = start_ternd(ternd_factory, dns)
    submit(t, ["bob@amx.example"])
    mx.wait_messages(1, timeout=20)
    assert f"amx.example[{mx.host}]:25" in wait_delivery(t, to="bob@amx.example", status="sent")


def bounces(t, user="alice"):
    return th.read_mail(t.data_dir, "localhost", user)


def wait_bounce(t, timeout=20):
    assert th.wait_until(lambda: bounces(t), timeout=timeout)
    return bounces(t)[-1]


def test_null_mx_bounces_at_once(ternd_factory, dns):
    dns.null_mx("nullmx.example")
    t = start_ternd(ternd_factory, dns)
    submit(t, ["bob@nullmx.example"])
    raw = wait_bounce(t)
    (r,) = parse_dsn(raw.split(b"\n", 1)[1] if raw.startswith(b"Return-Path") else raw)
    assert r["action"] == "failed" and r["status"] == "5.1.10"
    assert r["final_recipient"] == "bob@nullmx.example"
    assert not dns.asked("nullmx.example", "A")      # never the implicit MX


def test_4xx_then_success_after_retry(ternd_factory, dns, mxs):
    mx = mxs(script={"RCPT": [(451, "4.3.0 try again later"), None]})
    zone(dns, "later.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns)
    qid = submit(t, ["bob@later.example"])
    wait_delivery(t, qid=qid, status="deferred")
    mx.wait_messages(1, timeout=20)
    wait_delivery(t, qid=qid, status="sent")
    assert th.wait_queue_empty(t.data_dir)
    assert not bounces(t)


def test_5xx_bounces_with_the_remote_reply(ternd_factory, dns, mxs):
    mx = mxs(rcpt_replies={"nouser@hard.example": (550, "5.1.1 no such user here")})
    zone(dns, "hard.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns)
    submit(t, ["nouser@hard.example", "bob@hard.example"])
    mx.wait_messages(1, timeout=20)
    raw = wait_bounce(t)
    rep = parse_report(raw)
    assert rep["to"].endswith(f"<{ALICE}>") or ALICE in rep["to"]
    (r,) = parse_dsn(raw)
    assert r["action"] == "failed" and r["status"] == "5.1.1"
    assert r["final_recipient"] == "nouser@hard.example"
    assert "550 5.1.1 no such user here" in r["diagnostic"]
    assert r["remote_mta"] and "mx1.hard.example" in r["remote_mta"]
    # the bounce itself has the null sender
    assert raw.startswith(b"Return-Path: <>")
    assert th.wait_queue_empty(t.data_dir)


def test_expiry_bounces_the_deferred_recipient(ternd_factory, dns, mxs):
    mx = mxs(script={"RCPT": (450, "4.2.1 mailbox busy")})
    zone(dns, "busy.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns, queue_lifetime="3s")
    submit(t, ["bob@busy.example"])
    raw = wait_bounce(t, timeout=30)
    (r,) = parse_dsn(raw)
    assert r["action"] == "failed" and r["status"] == "4.4.7"
    assert "mailbox busy" in (r["diagnostic"] or "") + r["human"]
    assert deliveries(t, to="bob@busy.example", status="expired")


def test_encrypt_policy_refuses_plaintext_mx(ternd_factory, dns, mxs):
    mx = mxs(starttls=False)
    zone(dns, "strict.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns, smtp_tls_policy="strict.example encrypt")
    submit(t, ["bob@strict.example"])
    line = wait_delivery(t, to="bob@strict.example", status="deferred")
    assert "5.7" in line or "TLS" in line or "STARTTLS" in line
    time.sleep(1.5)
    assert mx.messages == []


def test_8bit_body_to_server_without_8bitmime_bounces(ternd_factory, dns, mxs):
    mx = mxs(eightbitmime=False)
    zone(dns, "seven.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns)
    submit(t, ["bob@seven.example"], body="Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu\r\n".encode(),
           params=" BODY=8BITMIME")
    raw = wait_bounce(t)
    (r,) = parse_dsn(raw)
    assert r["status"] == "5.6.3"
    assert mx.messages == []


def test_dns_servfail_defers_and_nxdomain_bounces(ternd_factory, dns):
    dns.set_rcode("broken.example", "SERVFAIL")
    t = start_ternd(ternd_factory, dns)
    submit(t, ["bob@broken.example", "bob@nowhere.example"])
    wait_delivery(t, to="bob@broken.example", status="deferred")
    raw = wait_bounce(t)
    (r,) = parse_dsn(raw)
    assert r["final_recipient"] == "bob@nowhere.example" and r["status"] == "5.1.2"


def test_smarthost_with_auth_falls_back_to_next_port(ternd_factory, dns, mxs):
    """587 refused, the next port (2525 here, a STARTTLS fake with AUTH)
    takes it; the log names the port that worked."""
    relay = mxs(host="127.0.0.1", port=0, starttls=True, auth={"app": "relay-secret"},
                hostname="smtp.provider.test")
    closed = refused_port("127.0.0.1")
    base = ternd_factory.base()
    pw = base / "relay.pw"
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"relay-secret\n")
    os.close(fd)
    dns.add("smtp.provider.test", "A", "127.0.0.1")
    t = start_ternd(ternd_factory, dns,
                    relay=f"smarthost smtp.provider.test auth app {pw} "
                          f"fallback {closed}/starttls,{relay.port}/starttls")
    submit(t, ["bob@anywhere.example"])
    msgs = relay.wait_messages(1, timeout=20)
    assert msgs[0]["auth_user"] == "app"
    assert msgs[0]["tls"]
    line = wait_delivery(t, to="bob@anywhere.example", status="sent")
    assert f"smtp.provider.test[127.0.0.1]:{relay.port}" in line


def test_kill9_during_deliveries_loses_nothing(ternd_factory, dns, mxs):
    mx = mxs(script={"DOT": ("DELAY", 0.3, None)})
    zone(dns, "slow.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns)
    rcpts = [f"u{i}@slow.example" for i in range(12)]
    for r in rcpts:
        submit(t, [r])
    time.sleep(0.5)
    t.kill9()
    t.killed = True
    # every process of the old tree must be gone (it holds the data_dir lock)
    import fcntl

    def lock_free():
        with open(t.data_dir / "ternd.pid", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(f, fcntl.LOCK_UN)
            return True
    assert th.wait_until(lock_free, timeout=10)
    t2 = th.Ternd(t.base, t.config, name="restarted")
    ternd_factory.servers.append(t2)
    t2.killed = False
    t2.start()
    assert th.wait_until(lambda: {r for m in mx.messages for r in m["rcpt_tos"]} >= set(rcpts), timeout=40)
    assert th.wait_queue_empty(t2.data_dir, timeout=20)


def test_etrn_starts_a_queue_run_only_for_allowed_clients(ternd_factory, dns, mxs):
    """RFC 1985: a deferred message waits for its (long) retry time until an
    allowed client says ETRN."""
    mx = mxs(script={"RCPT": [(451, "4.3.0 not now"), None]})
    zone(dns, "etrn.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns, queue_retry="10m", queue_retry_max="10m",
                    etrn_allow="127.0.0.1/32 ::1")
    qid = submit(t, ["bob@etrn.example"])
    wait_delivery(t, qid=qid, status="deferred")
    time.sleep(1)
    assert mx.messages == []
    with SMTPClient(t.port) as c:
        c.ehlo()
        check(c.cmd("ETRN"), 501, "5.5.4")
        check(c.cmd("ETRN etrn.example"), 250, "2.0.0")
    mx.wait_messages(1, timeout=15)
    wait_delivery(t, qid=qid, status="sent")


def test_etrn_refused_for_other_clients(ternd_factory, dns):
    t = start_ternd(ternd_factory, dns, etrn_allow="192.0.2.0/24")
    with SMTPClient(t.port) as c:
        c.ehlo()
        check(c.cmd("ETRN etrn.example"), 502, "5.7.0")


def test_delay_warning_sent_once(ternd_factory, dns, mxs):
    mx = mxs(script={"RCPT": (450, "4.2.1 mailbox busy")})
    zone(dns, "slowpoke.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns, delay_warning="1s")
    submit(t, ["bob@slowpoke.example"])
    raw = wait_bounce(t, timeout=20)
    (r,) = parse_dsn(raw)
    assert r["action"] == "delayed" and r["status"].startswith("4.")
    assert r["will_retry_until"]
    time.sleep(4)                                  # more attempts, no more warnings
    assert len(bounces(t)) == 1
    assert len(th.log_events(t.log(), "dsn")) == 1


def test_notify_never_means_no_bounce(ternd_factory, dns, mxs):
    mx = mxs(rcpt_replies={"@never.example": (550, "5.1.1 no")})
    zone(dns, "never.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns)
    with th.smtps_client(t.port_for("submissions")) as c:
        c.ehlo()
        c.expect("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW), 235)
        c.expect(f"MAIL FROM:<{ALICE}>", 250)
        c.expect("RCPT TO:<bob@never.example> NOTIFY=NEVER", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        check(c.reply(), 250)
    wait_delivery(t, to="bob@never.example", status="bounced")
    assert th.wait_queue_empty(t.data_dir)
    time.sleep(0.5)
    assert bounces(t) == []


def test_ret_full_returns_the_whole_message(ternd_factory, dns, mxs):
    mx = mxs(rcpt_replies={"@full.example": (550, "5.1.1 no")})
    zone(dns, "full.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns)
    submit(t, ["bob@full.example"], body=b"Subject: whole\r\n\r\nthe body comes back\r\n",
           params=" RET=FULL ENVID=abc123")
    raw = wait_bounce(t)
    rep = parse_report(raw)
    assert rep["envid"] == "abc123"
    (r,) = parse_dsn(raw)
    assert r["original_type"] == "message/rfc822"
    assert b"the body comes back" in raw


def test_second_message_reuses_the_connection(ternd_factory, dns, mxs):
    mx = mxs()
    zone(dns, "reuse.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns)
    submit(t, ["a@reuse.example"])
    mx.wait_messages(1, timeout=20)
    submit(t, ["b@reuse.example"])               # within the idle time (2 s)
    mx.wait_messages(2, timeout=20)
    assert mx.sessions == 1


def test_destination_concurrency_limit(ternd_factory, dns, mxs):
    mx = mxs(script={"DOT": ("DELAY", 0.2, None)})
    zone(dns, "one.example", [(10, mx)])
    t = start_ternd(ternd_factory, dns, smtp_destination_concurrency=1)
    for i in range(4):
        submit(t, [f"u{i}@one.example"])
    mx.wait_messages(4, timeout=30)
    assert mx.sessions == 1                       # one connection, one message after another


def test_a_hanging_destination_does_not_hold_up_others(ternd_factory, dns, mxs):
    from fake_mx import SilentPort
    silent = SilentPort(host=mx_addr(), port=25).start()
    try:
        dns.add("hang.example", "A", silent.host)
        fast = mxs()
        zone(dns, "fast.example", [(10, fast)])
        t = start_ternd(ternd_factory, dns, smtp_command_timeout="30s")
        submit(t, ["bob@hang.example"])
        time.sleep(0.3)
        t0 = time.monotonic()
        submit(t, ["bob@fast.example"])
        fast.wait_messages(1, timeout=10)
        assert time.monotonic() - t0 < 5
        # and the inbound side answers at once meanwhile
        with SMTPClient(t.port) as c:
            c.ehlo()
    finally:
        silent.stop()


def test_trusted_network_relays_through_transport_without_auth(ternd_factory, dns, mxs):
    gw = mxs(host="127.0.0.1", port=0)
    t = start_ternd(ternd_factory, dns, trusted_networks="127.0.0.0/8",
                    transport=f"corp.example [127.0.0.1]:{gw.port}")
    with SMTPClient(t.port) as c:
        c.ehlo()
        c.send_message("app@localhost", ["x@corp.example"], b"Subject: app\r\n\r\nhi\r\n")
    gw.wait_messages(1, timeout=20)
    line = wait_delivery(t, to="x@corp.example", status="sent")
    assert f"[127.0.0.1]:{gw.port}" in line
    assert not dns.asked("corp.example", "MX")


def test_untrusted_client_still_cannot_relay(ternd_factory, dns):
    t = start_ternd(ternd_factory, dns, trusted_networks="192.0.2.0/24")
    with SMTPClient(t.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<app@localhost>", 250)
        check(c.cmd("RCPT TO:<x@corp.example>"), 554, "5.7.1")


@pytest.mark.parametrize("working", ["465", "2525"])
def test_smarthost_fallback_587_to_465_to_2525(ternd_factory, dns, mxs, working):
    """The default order: 587 (STARTTLS) refused -> 465 (TLS from the first
    byte) -> 2525 (STARTTLS). The smarthost on 465 is a second ternd
    (implicit TLS + AUTH); on 2525 a STARTTLS fake with AUTH."""
    closed587 = refused_port("127.0.0.1")
    base = ternd_factory.base()
    pw = base / "relay.pw"
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"relay-Secret-2\n")
    os.close(fd)
    if working == "465":
        sbase = ternd_factory.base()
        susers = th.write_users(sbase / "users", {ALICE: "relay-Secret-2",
                                                  "bob@anywhere.example": "unused-Pw-9"})
        smart = ternd_factory.start(base=sbase, name="smarthost", users=str(susers),
                                    listeners=["mx", "submissions"],
                                    domains="localhost anywhere.example")
        p465, p2525 = smart.port_for("submissions"), refused_port("127.0.0.1")
    else:
        fake = mxs(host="127.0.0.1", port=0, starttls=True, auth={ALICE: "relay-Secret-2"})
        p465, p2525 = refused_port("127.0.0.1"), fake.port
    dns.add("smtp.provider.test", "A", "127.0.0.1")
    t = start_ternd(ternd_factory, dns,
                    relay=f"smarthost smtp.provider.test auth {ALICE} {pw} "
                          f"fallback {closed587}/starttls,{p465}/tls,{p2525}/starttls")
    submit(t, ["bob@anywhere.example"])
    if working == "465":
        mail = th.wait_mail(smart.data_dir, "anywhere.example", "bob", timeout=20)
        assert mail and b"ESMTPSA" in mail[0]
        port = p465
    else:
        fake.wait_messages(1, timeout=20)
        assert fake.messages[0]["auth_user"] == ALICE
        port = p2525
    line = wait_delivery(t, to="bob@anywhere.example", status="sent")
    assert f"smtp.provider.test[127.0.0.1]:{port}" in line
