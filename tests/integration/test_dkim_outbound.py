"""DKIM signing of outbound mail (issue 5) through the real ternd, and
`tern dkim keygen|check`: keys and records made by tern, signatures checked
with dkimpy against the record tern printed. DNS is fake_dns.py on loopback,
the next hops are fake_mx.py (as in test_outbound.py)."""

import itertools
import os
import random
import re
import subprocess

import pytest

import tern_harness as th
from fake_dns import FakeDNS
from fake_mx import FakeMX
from tern_harness import SMTPClient, sasl_plain

dkim = pytest.importorskip("dkim")

ALICE, ALICE_PW = "alice@example.org", "pw-Alice-dkim"
LOCAL, LOCAL_PW = "carol@localhost", "pw-Carol-dkim"

_net = itertools.count(random.randrange(1, 200))


def mx_addr():
    n = next(_net) % 250 + 1
    return f"127.{150 + os.getpid() % 60}.{n}.{random.randrange(2, 250)}"


@pytest.fixture
def dns():
    d = FakeDNS().start()
    yield d
    d.stop()


@pytest.fixture
def mxs():
    if os.geteuid() != 0:
        pytest.skip("fake MXs bind port 25: needs root")
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


def tern(*args):
    return subprocess.run([th.TERN, *args], capture_output=True, timeout=60)


def keygen(keydir, domain, selector, *extra):
    p = tern("dkim", "keygen", domain, "--selector", selector, "-d", str(keydir), *extra)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


def record_of(out, domain, selector):
    """The TXT value from keygen's zone-file line, strings joined."""
    line = [ln for ln in out.splitlines() if ln.startswith(f"{selector}._domainkey.{domain}. IN TXT (")]
    assert len(line) == 1, out
    parts = re.findall(r'"([^"]*)"', line[0])
    assert parts and all(len(p) <= 255 for p in parts)
    return "".join(parts)


def publish(dns, domain, selector, value):
    dns.set(f"{selector}._domainkey.{domain}", "TXT", [[value[i:i + 255] for i in range(0, len(value), 255)]])


# ----------------------------------------------------------------------------
# tern dkim keygen / check

def test_keygen_writes_0600_key_and_prints_record(tmp_path):
    out = keygen(tmp_path, "example.org", "s1")
    key = tmp_path / "example.org.s1.key"
    assert (key.stat().st_mode & 0o777) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    rec = record_of(out, "example.org", "s1")
    assert rec.startswith("v=DKIM1; k=rsa; p=")
    assert len(rec) > 300                       # 2048 bits: split into two strings
    assert f"dkim_sign example.org s1 {key}" in out
    ed = keygen(tmp_path, "example.org", "e1", "--ed25519")
    assert record_of(ed, "example.org", "e1").startswith("v=DKIM1; k=ed25519; p=")


def test_keygen_refuses_to_overwrite(tmp_path):
    keygen(tmp_path, "example.org", "s1", "--ed25519")
    key = tmp_path / "example.org.s1.key"
    before = key.read_bytes()
    p = tern("dkim", "keygen", "example.org", "--selector", "s1", "-d", str(tmp_path))
    assert p.returncode == 1
    assert b"exists: not overwritten" in p.stderr
    assert key.read_bytes() == before


def test_keygen_usage_errors(tmp_path):
    assert tern("dkim", "keygen", "example.org", "-d", str(tmp_path)).returncode == 2
    assert tern("dkim", "keygen", "bad_domain", "--selector", "s", "-d", str(tmp_path)).returncode == 2
    assert tern("dkim", "keygen", "example.org", "--selector", "s", "--bits", "512").returncode == 2


def test_check_matches_mismatch_not_published(tmp_path, dns):
    out = keygen(tmp_path, "example.org", "s1")
    other = keygen(tmp_path / "other", "example.org", "s1")
    args = ["dkim", "check", "example.org", "--selector", "s1", "-d", str(tmp_path), "--dns-server", dns.addr]

    p = tern(*args)
    assert p.returncode == 1, p.stdout
    assert b"not published: add" in p.stdout
    assert b"s1._domainkey.example.org. IN TXT (" in p.stdout

    publish(dns, "example.org", "s1", record_of(other, "example.org", "s1"))
    p = tern(*args)
    assert p.returncode == 1, p.stdout
    assert b"published but does not match: republish" in p.stdout
    assert record_of(p.stdout.decode(), "example.org", "s1") == record_of(out, "example.org", "s1")

    publish(dns, "example.org", "s1", record_of(out, "example.org", "s1"))
    p = tern(*args)
    assert p.returncode == 0, p.stdout
    assert b"published and matches" in p.stdout


# ----------------------------------------------------------------------------
# signing in ternd

def start_ternd(factory, dns, keys, **kw):
    base = factory.base()
    users = th.write_users(base / "users", {ALICE: ALICE_PW, LOCAL: LOCAL_PW})
    cfg = dict(dns_server=dns.addr, dns_timeout="300ms", queue_retry="1s",
               queue_retry_max="1s", smtp_connect_timeout="2s", smtp_command_timeout="5s",
               users=str(users), auth_failure_delay=0,
               dkim_sign=[f"{d} {s} {f}" for d, s, f in keys])
    cfg.update(kw)
    return factory.start(base=base, listeners=["mx", "submissions"], **cfg)


def zone(dns, domain, mx):
    dns.add(domain, "MX", (10, f"mx1.{domain}"))
    dns.add(f"mx1.{domain}", "A", mx.host)


def submit(t, rcpts, body, sender=ALICE, pw=ALICE_PW):
    with th.smtps_client(t.port_for("submissions")) as c:
        c.ehlo()
        c.expect("AUTH PLAIN " + sasl_plain(sender, pw), 235)
        qid = c.send_message(sender, rcpts, body)
        c.expect("QUIT", 221)
    return qid


def message(frm="Alice <alice@example.org>"):
    return (f"From: {frm}\r\nTo: bob@remote.example\r\nSubject: signed?\r\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <dkim-it@example.org>\r\n\r\n"
            "hello, remote\r\n.leading dot\r\n").encode()


def dkim_events(t, qid):
    return [ln for ln in th.log_events(t.log(), "dkim") if f"qid={qid}" in ln]


def verify_all(data, records):
    """Verify every DKIM-Signature of data against records {name: value}."""
    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return records.get(n.rstrip(".").lower(), "").encode()
    d = dkim.DKIM(data)
    n = len(re.findall(rb"(?im)^DKIM-Signature:", data.split(b"\r\n\r\n", 1)[0]))
    results = [d.verify(idx=i, dnsfunc=dnsfunc) for i in range(n)]
    return n, results


def test_authenticated_mail_is_rsa_signed(ternd_factory, dns, mxs, tmp_path):
    out = keygen(tmp_path, "example.org", "s2024")
    mx = mxs(hostname="mx1.remote.example")
    zone(dns, "remote.example", mx)
    t = start_ternd(ternd_factory, dns, [("example.org", "s2024", tmp_path / "example.org.s2024.key")])
    qid = submit(t, ["bob@remote.example"], message())
    data = mx.wait_messages(1, timeout=20)[0]["data"]
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;")
    rec = record_of(out, "example.org", "s2024")
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: rec.encode())
    ev = th.wait_until(lambda: dkim_events(t, qid), timeout=10)
    assert "dkim=signed d=example.org s=s2024" in ev[0]


def test_dual_rsa_and_ed25519_both_verify(ternd_factory, dns, mxs, tmp_path):
    rsa = record_of(keygen(tmp_path, "example.org", "rsa1"), "example.org", "rsa1")
    ed = record_of(keygen(tmp_path, "example.org", "ed1", "--ed25519"), "example.org", "ed1")
    mx = mxs(hostname="mx1.remote.example")
    zone(dns, "remote.example", mx)
    t = start_ternd(ternd_factory, dns, [
        ("example.org", "rsa1", tmp_path / "example.org.rsa1.key"),
        ("example.org", "ed1", tmp_path / "example.org.ed1.key"),
        ("other.example", "x", tmp_path / "example.org.rsa1.key")])
    qid = submit(t, ["bob@remote.example"], message('"Alice, <the> sender" <Alice@Example.ORG>'))
    data = mx.wait_messages(1, timeout=20)[0]["data"]
    n, results = verify_all(data, {"rsa1._domainkey.example.org": rsa,
                                   "ed1._domainkey.example.org": ed})
    assert n == 2 and results == [True, True]
    assert b"a=ed25519-sha256" in data and b"a=rsa-sha256" in data
    assert b"d=other.example" not in data
    ev = th.wait_until(lambda: len(dkim_events(t, qid)) == 2 and dkim_events(t, qid), timeout=10)
    assert any("s=rsa1" in e for e in ev) and any("s=ed1" in e for e in ev)


def test_from_domain_without_key_is_not_signed(ternd_factory, dns, mxs, tmp_path):
    keygen(tmp_path, "example.org", "s1", "--ed25519")
    mx = mxs(hostname="mx1.remote.example")
    zone(dns, "remote.example", mx)
    t = start_ternd(ternd_factory, dns, [("example.org", "s1", tmp_path / "example.org.s1.key")])
    qid = submit(t, ["bob@remote.example"], message("someone@elsewhere.example"))
    data = mx.wait_messages(1, timeout=20)[0]["data"]
    assert b"DKIM-Signature" not in data
    ev = th.wait_until(lambda: dkim_events(t, qid), timeout=10)
    assert "dkim=none" in ev[0]


def test_trusted_network_relay_is_not_signed(ternd_factory, dns, mxs, tmp_path):
    keygen(tmp_path, "example.org", "s1", "--ed25519")
    gw = mxs(host="127.0.0.1", port=0)
    t = start_ternd(ternd_factory, dns, [("example.org", "s1", tmp_path / "example.org.s1.key")],
                    trusted_networks="127.0.0.0/8",
                    transport=f"corp.example [127.0.0.1]:{gw.port}")
    with SMTPClient(t.port) as c:
        c.ehlo()
        c.send_message("app@example.org", ["x@corp.example"], message())
    data = gw.wait_messages(1, timeout=20)[0]["data"]
    assert b"DKIM-Signature" not in data
    ev = th.wait_until(lambda: [e for e in th.log_events(t.log(), "dkim") if "dkim=none" in e], timeout=10)
    assert "not from an authenticated client" in ev[0]


def test_local_delivery_is_not_signed(ternd_factory, dns, tmp_path):
    keygen(tmp_path, "localhost", "s1", "--ed25519")
    t = start_ternd(ternd_factory, dns, [("localhost", "s1", tmp_path / "localhost.s1.key")])
    submit(t, [LOCAL], message(LOCAL), sender=LOCAL, pw=LOCAL_PW)
    mail = th.wait_mail(t.data_dir, "localhost", "carol")
    assert mail and all(b"DKIM-Signature" not in m for m in mail)


def test_from_domain_other_than_the_senders_is_not_signed(ternd_factory, dns, mxs, tmp_path):
    """A user owns its envelope sender, not what it writes in From: a
    signature for another domain this server signs for would let it pass
    DMARC as that domain."""
    keygen(tmp_path, "localhost", "s1", "--ed25519")
    mx = mxs()
    zone(dns, "remote.example", mx)
    t = start_ternd(ternd_factory, dns, [("localhost", "s1", tmp_path / "localhost.s1.key")])
    qid = submit(t, ["bob@remote.example"], message("boss@localhost"))   # sender alice@example.org
    msgs = mx.wait_messages(1, timeout=20)
    assert msgs and b"DKIM-Signature" not in msgs[0]["data"]
    ev = th.wait_until(lambda: [ln for ln in th.log_events(t.log(), "dkim") if qid in ln])
    assert ev and "dkim=none" in ev[0] and "is not the sender" in ev[0]


def test_key_readable_by_others_refused(ternd_factory, dns, tmp_path):
    keygen(tmp_path, "example.org", "s1", "--ed25519")
    key = tmp_path / "example.org.s1.key"
    os.chmod(key, 0o644)
    t = ternd_factory.start(wait=False, dns_server=dns.addr, dkim_sign=f"example.org s1 {key}")
    try:
        rc = t.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ternd started with a 0644 key; stderr:\n{t.log()[-3000:]}")
    t.stopped = True
    assert rc != 0
    assert f"key file {key} is readable by group or others" in t.log()
