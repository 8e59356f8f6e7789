"""Tests of the test doubles for outbound delivery: FakeDNS (fake_dns.py),
FakeMX, SilentPort and refused_port (fake_mx.py).

They need no ternd. Every server is started through the `serve` fixture,
which stops it at teardown and checks that stopping took less than 5 s;
every socket has a timeout.
"""

import os
import random
import re
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dnslib import QTYPE, RCODE, DNSRecord, EDNS0  # noqa: E402

from fake_dns import FakeDNS  # noqa: E402
from fake_mx import FakeMX, SilentPort, refused_port  # noqa: E402

DIG = "/usr/bin/dig"
T = 5.0                         # timeout of every client operation
LOCAL = "client.example"        # smtplib's EHLO name (never looked up)


@pytest.fixture
def serve(request):
    """serve(server) -> server, started; stopped (within 5 s) at teardown."""
    started = []

    def start(server):
        server.start()
        started.append(server)
        return server

    def finish():
        slow = []
        for s in reversed(started):
            t0 = time.monotonic()
            s.stop()
            took = time.monotonic() - t0
            if took >= 5.0:
                slow.append((s, took))
        assert not slow, f"servers slow to stop: {slow}"

    request.addfinalizer(finish)
    return start


# ----------------------------------------------------------------------------
# FakeDNS

@pytest.fixture
def dns(serve):
    d = serve(FakeDNS())
    d.add("remote.example", "MX", (10, "mx1.remote.example"))
    d.add("remote.example", "MX", (20, "mx2.remote.example"))
    d.add("mx1.remote.example", "A", "127.0.0.2")
    d.add("mx1.remote.example", "AAAA", "::1")
    d.add("mx2.remote.example", "A", "127.0.0.3")
    d.add("remote.example", "TXT", "v=spf1 -all")
    d.add("multi.example", "TXT", ["part one", "part two"])
    d.add("alias.example", "CNAME", "mx1.remote.example")
    d.null_mx("nullmx.example")
    d.set_rcode("broken.example", "SERVFAIL")
    d.set_rcode("refused.example", "REFUSED")
    return d


def ask(d, name, qtype, tcp=False, timeout=T, edns=None):
    q = DNSRecord.question(name, qtype)
    if edns:
        q.add_ar(EDNS0(udp_len=edns))
    return DNSRecord.parse(q.send("127.0.0.1", d.port, tcp=tcp, timeout=timeout))


def rdatas(reply, qtype=None):
    return [str(rr.rdata) for rr in reply.rr
            if qtype is None or rr.rtype == getattr(QTYPE, qtype)]


def dig(d, *args):
    p = subprocess.run([DIG, "@127.0.0.1", "-p", str(d.port), "+tries=1", "+time=2",
                        "+noall", "+answer", "+comments"] + list(args),
                       capture_output=True, text=True, timeout=15,
                       stdin=subprocess.DEVNULL)
    m = re.search(r"status: (\w+)", p.stdout)
    assert m, (p.stdout, p.stderr)
    answers = [ln.split(None, 4) for ln in p.stdout.splitlines()
               if ln and not ln.startswith(";")]
    return m.group(1), answers


def test_dns_addr_and_loopback_only():
    d = FakeDNS()
    assert d.addr == f"127.0.0.1:{d.port}"
    with pytest.raises(ValueError):
        FakeDNS(host="10.1.2.3")


@pytest.mark.skipif(not os.path.exists(DIG), reason="dig not installed")
@pytest.mark.parametrize("tcp", [False, True])
def test_dig(dns, tcp):
    extra = ["+tcp"] if tcp else []
    st, ans = dig(dns, "remote.example", "MX", *extra)
    assert st == "NOERROR"
    assert sorted(a[4] for a in ans) == ["10 mx1.remote.example.", "20 mx2.remote.example."]
    assert all(a[1] == "5" for a in ans)                    # small TTL
    st, ans = dig(dns, "MX1.Remote.EXAMPLE", "A", *extra)   # case-insensitive
    assert (st, [a[4] for a in ans]) == ("NOERROR", ["127.0.0.2"])
    st, ans = dig(dns, "mx1.remote.example", "AAAA", *extra)
    assert (st, [a[4] for a in ans]) == ("NOERROR", ["::1"])
    st, ans = dig(dns, "multi.example", "TXT", *extra)
    assert [a[4] for a in ans] == ['"part one" "part two"']
    assert dig(dns, "nowhere.example", "A", *extra) == ("NXDOMAIN", [])
    assert dig(dns, "broken.example", "MX", *extra) == ("SERVFAIL", [])
    assert dig(dns, "mx2.remote.example", "AAAA", *extra) == ("NOERROR", [])
    st, ans = dig(dns, "nullmx.example", "MX", *extra)
    assert (st, [a[4] for a in ans]) == ("NOERROR", ["0 ."])
    proto = "tcp" if tcp else "udp"
    assert ("remote.example", "MX") in dns.queries
    assert any(p == proto for _, _, p, _ in dns.query_log)


@pytest.mark.parametrize("tcp", [False, True])
def test_dnslib_answers(dns, tcp):
    r = ask(dns, "remote.example", "MX", tcp)
    assert r.header.rcode == RCODE.NOERROR and r.header.qr == 1
    mx = sorted((rr.rdata.preference, str(rr.rdata.label)) for rr in r.rr)
    assert mx == [(10, "mx1.remote.example."), (20, "mx2.remote.example.")]
    assert all(rr.ttl == 5 for rr in r.rr)

    r = ask(dns, "mx1.remote.example", "A", tcp)
    assert rdatas(r) == ["127.0.0.2"]
    r = ask(dns, "mx1.remote.example", "AAAA", tcp)
    assert rdatas(r) == ["::1"]
    r = ask(dns, "remote.example", "TXT", tcp)
    assert [rr.rdata.data for rr in r.rr] == [[b"v=spf1 -all"]]
    r = ask(dns, "multi.example", "TXT", tcp)
    assert [rr.rdata.data for rr in r.rr] == [[b"part one", b"part two"]]


def test_dns_negative_answers(dns):
    r = ask(dns, "nowhere.example", "MX")
    assert r.header.rcode == RCODE.NXDOMAIN and not r.rr
    assert r.auth and r.auth[0].rtype == QTYPE.SOA         # for negative caching
    r = ask(dns, "broken.example", "A")
    assert r.header.rcode == RCODE.SERVFAIL and not r.rr
    r = ask(dns, "refused.example", "MX")
    assert r.header.rcode == RCODE.REFUSED
    # NODATA: the name exists, without records of that type
    r = ask(dns, "mx2.remote.example", "AAAA")
    assert r.header.rcode == RCODE.NOERROR and not r.rr
    r = ask(dns, "mx1.remote.example", "MX")
    assert r.header.rcode == RCODE.NOERROR and not r.rr
    # an empty non-terminal exists too
    r = ask(dns, "example", "A")
    assert r.header.rcode == RCODE.NOERROR and not r.rr


def test_dns_null_mx_and_cname(dns):
    r = ask(dns, "nullmx.example", "MX")
    assert r.header.rcode == RCODE.NOERROR
    assert [(rr.rdata.preference, str(rr.rdata.label)) for rr in r.rr] == [(0, ".")]
    r = ask(dns, "alias.example", "A")
    assert [QTYPE[rr.rtype] for rr in r.rr] == ["CNAME", "A"]
    assert rdatas(r, "A") == ["127.0.0.2"]


def test_dns_rcode_per_type(dns):
    dns.set_rcode("mx1.remote.example", "SERVFAIL", qtype="AAAA")
    assert ask(dns, "mx1.remote.example", "AAAA").header.rcode == RCODE.SERVFAIL
    assert rdatas(ask(dns, "mx1.remote.example", "A")) == ["127.0.0.2"]
    dns.set_rcode("mx1.remote.example", None, qtype="AAAA")
    assert rdatas(ask(dns, "mx1.remote.example", "AAAA")) == ["::1"]


def test_dns_changes_while_running_and_query_log(dns):
    assert ask(dns, "new.example", "A").header.rcode == RCODE.NXDOMAIN
    dns.add("New.Example.", "A", "127.0.0.9")
    assert rdatas(ask(dns, "new.example", "A")) == ["127.0.0.9"]
    dns.set("new.example", "A", ["127.0.0.10", "127.0.0.11"])
    assert sorted(rdatas(ask(dns, "NEW.example", "A"))) == ["127.0.0.10", "127.0.0.11"]
    dns.remove("new.example")
    assert ask(dns, "new.example", "A").header.rcode == RCODE.NXDOMAIN
    assert dns.queries[-1] == ("new.example", "A")
    assert dns.asked("new.example", "A") == 4
    assert ("new.example", "AAAA") not in dns.queries
    dns.clear_queries()
    assert dns.queries == []
    assert rdatas(ask(dns, "mx2.remote.example", "A")) == ["127.0.0.3"]
    dns.clear()
    assert dns.queries == []
    assert ask(dns, "mx2.remote.example", "A").header.rcode == RCODE.NXDOMAIN


def test_dns_zone_from_data(serve):
    d = serve(FakeDNS(zone={
        "z.example": {"MX": [(5, "mx.z.example")], "TXT": [["a", "b"], "c"]},
        "mx.z.example": {"A": "127.0.0.5"},
    }, ttl=7))
    r = ask(d, "z.example", "TXT")
    assert sorted(rr.rdata.data for rr in r.rr) == [[b"a", b"b"], [b"c"]]
    assert all(rr.ttl == 7 for rr in r.rr)
    assert rdatas(ask(d, "mx.z.example", "A")) == ["127.0.0.5"]
    with pytest.raises(ValueError):
        d.add("x.example", "A", "not-an-address")
    with pytest.raises(ValueError):
        d.add("x.example", "SRV", "0 0 25 x")


def test_dns_delay_and_drop(dns):
    dns.set_delay("slow.example", 0.6)
    dns.add("slow.example", "A", "127.0.0.7")
    with pytest.raises(socket.timeout):
        ask(dns, "slow.example", "A", timeout=0.2)
    t0 = time.monotonic()
    r = ask(dns, "slow.example", "A", timeout=T)
    took = time.monotonic() - t0
    assert rdatas(r) == ["127.0.0.7"] and 0.5 <= took < 3, took
    # other names are not held up by a delayed one
    t0 = time.monotonic()
    assert rdatas(ask(dns, "mx1.remote.example", "A")) == ["127.0.0.2"]
    assert time.monotonic() - t0 < 0.5
    # delayed over TCP too
    t0 = time.monotonic()
    assert rdatas(ask(dns, "slow.example", "A", tcp=True)) == ["127.0.0.7"]
    assert time.monotonic() - t0 >= 0.5
    dns.set_drop("mx1.remote.example")
    with pytest.raises(socket.timeout):
        ask(dns, "mx1.remote.example", "A", timeout=0.3)
    assert dns.asked("mx1.remote.example", "A") == 2        # seen, not answered
    dns.set_drop("mx1.remote.example", drop=False)
    assert rdatas(ask(dns, "mx1.remote.example", "A")) == ["127.0.0.2"]


def test_dns_truncation_and_edns(dns):
    dns.set_truncate("remote.example")
    r = ask(dns, "remote.example", "MX")
    assert r.header.tc == 1 and not r.rr
    assert len(ask(dns, "remote.example", "MX", tcp=True).rr) == 2
    # an answer too big for 512 octets is truncated unless EDNS allows more
    for i in range(6):
        dns.add("big.example", "TXT", "x" * 200 + str(i))
    r = ask(dns, "big.example", "TXT")
    assert r.header.tc == 1 and not r.rr
    r = ask(dns, "big.example", "TXT", edns=4096)
    assert r.header.tc == 0 and len(r.rr) == 6
    assert len(ask(dns, "big.example", "TXT", tcp=True).rr) == 6


def test_dns_malformed_queries_are_ignored(dns):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(0.3)
    try:
        for junk in (b"", b"\x00", b"\xff" * 40,
                     # one question whose label claims 63 octets but has 3
                     b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc"):
            u.sendto(junk, ("127.0.0.1", dns.port))
        with pytest.raises(socket.timeout):
            u.recvfrom(4096)
    finally:
        u.close()
    # a response packet (QR=1) is no query either
    resp = DNSRecord.question("remote.example", "MX").reply().pack()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(0.3)
    try:
        u.sendto(resp, ("127.0.0.1", dns.port))
        with pytest.raises(socket.timeout):
            u.recvfrom(4096)
    finally:
        u.close()
    # TCP: junk frame, then a good query on the same connection
    c = socket.create_connection(("127.0.0.1", dns.port), timeout=T)
    try:
        c.sendall(struct.pack("!H", 5) + b"\x01\x02\x03\x04\x05")
        q = DNSRecord.question("mx2.remote.example", "A").pack()
        c.sendall(struct.pack("!H", len(q)) + q)
        n = struct.unpack("!H", c.recv(2))[0]
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            assert chunk
            data += chunk
        assert rdatas(DNSRecord.parse(data)) == ["127.0.0.3"]
    finally:
        c.close()
    assert dns.malformed == 6
    assert rdatas(ask(dns, "mx1.remote.example", "A")) == ["127.0.0.2"]


def test_dns_stop_is_bounded_with_clients_pending():
    d = FakeDNS().start()
    try:
        d.set_delay("slow.example", 30)
        c = socket.create_connection(("127.0.0.1", d.port), timeout=T)
        q = DNSRecord.question("slow.example", "A").pack()
        c.sendall(struct.pack("!H", len(q)) + q)
        assert d.wait_query("slow.example", "A", timeout=T)
    finally:
        t0 = time.monotonic()
        d.stop()
        assert time.monotonic() - t0 < 5
    c.settimeout(T)
    assert c.recv(10) == b""            # the server closed the connection
    c.close()
    with pytest.raises(OSError):
        DNSRecord.question("x.example", "A").send("127.0.0.1", d.port, tcp=True,
                                                  timeout=1)


# ----------------------------------------------------------------------------
# FakeMX

def noverify():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client(mx, **kw):
    # an explicit local_hostname: smtplib would otherwise look the machine's
    # name up through the resolver
    kw.setdefault("local_hostname", "client.example")
    return smtplib.SMTP(mx.host, mx.port, timeout=T, **kw)


def ehlo_keywords(s):
    code, text = s.ehlo("client.example")
    assert code == 250
    return [ln.split()[0].upper() for ln in text.decode().splitlines()[1:]]


MSG = (b"From: <a@local.example>\r\nTo: <b@remote.example>\r\nSubject: t\r\n\r\n"
       b"line one\r\n.starts with a dot\r\n..two dots\r\nlast\r\n")


def test_mx_loopback_only_and_refused_port():
    with pytest.raises(ValueError):
        FakeMX(host="192.0.2.1", port=0)
    with pytest.raises(ValueError):
        SilentPort(host="192.0.2.1")
    p = refused_port("127.0.0.2")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", p), timeout=T).close()


def test_mx_plain_delivery(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, hostname="mx1.remote.example"))
    assert mx.port > 0
    with client(mx) as s:
        kws = ehlo_keywords(s)
        assert "8BITMIME" in kws and "SMTPUTF8" in kws and "PIPELINING" in kws
        assert "STARTTLS" not in kws and "AUTH" not in kws and "DSN" not in kws
        assert "SIZE" not in kws
        refused = s.sendmail("a@local.example", ["b@remote.example", "C@Remote.Example"],
                             MSG, mail_options=["BODY=8BITMIME"])
        assert refused == {}
        s.quit()
    (m,) = mx.wait_messages(1, timeout=T)
    assert m["mail_from"] == "a@local.example"
    assert m["rcpt_tos"] == ["b@remote.example", "C@Remote.Example"]
    assert m["data"] == MSG                       # smtplib stuffed, the fake unstuffed
    assert m["mail_options"] == ["BODY=8BITMIME"]
    assert m["rcpt_options"] == [[], []]
    assert m["tls"] is None and m["auth_user"] is None
    assert m["helo"] == "client.example" and m["esmtp"] is True
    assert m["peer"][0] == "127.0.0.1"
    assert m["reply"][0] == 250 and m["queue_id"]
    assert mx.sessions == 1
    tr = mx.transcripts[0]
    assert tr[0] == "S: 220 mx1.remote.example ESMTP FakeMX"
    assert "C: MAIL FROM:<a@local.example> BODY=8BITMIME" in tr
    assert tr[-1] == "S: 221 Bye"


def test_mx_null_sender_and_pipelining(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    c = socket.create_connection((mx.host, mx.port), timeout=T)
    f = c.makefile("rb")
    try:
        assert f.readline().startswith(b"220 ")
        c.sendall(b"EHLO client.example\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        # one write: MAIL, two RCPTs, DATA (RFC 2920)
        c.sendall(b"MAIL FROM:<>\r\nRCPT TO:<x@remote.example>\r\n"
                  b"RCPT TO:<y@remote.example>\r\nDATA\r\n")
        replies = [f.readline() for _ in range(4)]
        assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"354"], replies
        c.sendall(b"Subject: bounce\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        assert f.readline().startswith(b"250 ")
        assert f.readline().startswith(b"221")
    finally:
        f.close()
        c.close()
    (m,) = mx.wait_messages(1, timeout=T)
    assert m["mail_from"] == "" and m["rcpt_tos"] == ["x@remote.example", "y@remote.example"]
    assert m["data"] == b"Subject: bounce\r\n\r\nbody\r\n"


def test_mx_starttls(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, starttls=True, hostname="mx1.remote.example"))
    assert mx.cert_path and os.path.exists(mx.cert_path)
    with client(mx) as s:
        assert "STARTTLS" in ehlo_keywords(s)
        # the certificate is for the MX's hostname: verify it for real
        ctx = ssl.create_default_context(cafile=mx.cert_path)
        s._host = "mx1.remote.example"        # smtplib's server_hostname for SNI/checks
        code, _ = s.starttls(context=ctx)
        assert code == 220
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert "STARTTLS" not in ehlo_keywords(s)
        s.sendmail("a@local.example", ["b@remote.example"], MSG)
        s.quit()
    (m,) = mx.wait_messages(1, timeout=T)
    assert m["tls"]["version"] in ("TLSv1.2", "TLSv1.3") and m["tls"]["cipher"]
    assert m["data"] == MSG


def test_mx_starttls_hostname_mismatch_is_detected(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, starttls=True, hostname="mx9.remote.example"))
    with client(mx) as s:
        s.ehlo("client.example")
        ctx = ssl.create_default_context(cafile=mx.cert_path)
        s._host = "other.example"
        with pytest.raises(ssl.SSLCertVerificationError):
            s.starttls(context=ctx)


def test_mx_tls_required(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, starttls=True, tls_required=True))
    with client(mx) as s:
        s.ehlo("client.example")
        code, _ = s.mail("a@local.example")
        assert code == 530
        s.starttls(context=noverify())
        s.ehlo("client.example")
        assert s.mail("a@local.example")[0] == 250
        s.quit()


def test_mx_auth_after_starttls(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, starttls=True,
                      auth={"alice": "secret"}, auth_required=True))
    with client(mx) as s:
        assert "AUTH" not in ehlo_keywords(s)
        assert s.docmd("AUTH", "PLAIN AGFsaWNlAHNlY3JldA==")[0] == 538
        assert s.mail("a@local.example")[0] == 530
        s.starttls(context=noverify())
        s.ehlo("client.example")
        assert s.has_extn("auth")
        assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice", "wrong")
        assert e.value.smtp_code == 535
        s.user, s.password = "alice", "secret"
        code, _ = s.auth("LOGIN", s.auth_login)
        assert code == 235
        s.sendmail("a@local.example", ["b@remote.example"], MSG)
        s.quit()
    (m,) = mx.wait_messages(1, timeout=T)
    assert m["auth_user"] == "alice" and m["tls"]
    # smtplib's login() tried PLAIN, then LOGIN, with the wrong password
    assert mx.auth_attempts == [("PLAIN", "alice", False), ("LOGIN", "alice", False),
                                ("LOGIN", "alice", True)]
    assert not any("secret" in ln for ln in mx.transcripts[0])


def test_mx_auth_plaintext(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, auth={"bob": "pw"}, auth_plaintext=True,
                      auth_mechanisms=["PLAIN"]))
    with client(mx) as s:
        s.ehlo("client.example")
        assert s.esmtp_features["auth"].split() == ["PLAIN"]
        assert s.login("bob", "pw")[0] == 235
        s.quit()


def test_mx_no_auth_configured(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, starttls=True))
    with client(mx) as s:
        s.ehlo("client.example")
        s.starttls(context=noverify())
        assert "AUTH" not in ehlo_keywords(s)
        assert s.docmd("AUTH", "PLAIN AGEAYg==")[0] == 502
        s.quit()


def test_mx_scripted_4xx_then_ok(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    mx.script = {"RCPT": [(450, "4.2.1 try later"), None],
                 "MAIL": [None, (451, "4.3.0 local problem")]}
    with client(mx) as s:
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("a@local.example", ["b@remote.example"], MSG)
        assert e.value.recipients["b@remote.example"] == (450, b"4.2.1 try later")
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("a@local.example", ["b@remote.example"], MSG)
        assert e.value.smtp_code == 451
        assert s.sendmail("a@local.example", ["b@remote.example"], MSG) == {}
        s.quit()
    assert len(mx.wait_messages(1, timeout=T)) == 1
    assert mx.script == {"RCPT": [], "MAIL": []}


def test_mx_scripted_data_and_dot(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    mx.script = {"DATA": [(554, "5.5.0 no data for you")],
                 "DOT": [(452, "4.3.1 disk full"), (250, "2.0.0 custom ok")]}
    with client(mx) as s:
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@local.example", ["b@remote.example"], MSG)
        assert e.value.smtp_code == 554
        s.rset()
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@local.example", ["b@remote.example"], MSG)
        assert e.value.smtp_code == 452
        assert s.sendmail("a@local.example", ["b@remote.example"], MSG) == {}
        s.quit()
    assert len(mx.rejected) == 1 and mx.rejected[0]["reply"] == (452, "4.3.1 disk full")
    (m,) = mx.messages
    assert m["reply"] == (250, "2.0.0 custom ok") and m["data"] == MSG


def test_mx_per_recipient_replies(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    mx.rcpt_replies = {"bad@remote.example": (550, "5.1.1 no such user"),
                       "later@remote.example": [(451, "4.7.1 greylisted")],
                       "@blocked.example": (554, "5.7.1 relay denied")}
    with client(mx) as s:
        s.ehlo("client.example")
        refused = s.sendmail("a@local.example",
                             ["good@remote.example", "BAD@remote.example",
                              "later@remote.example", "x@blocked.example"], MSG)
        assert refused == {"BAD@remote.example": (550, b"5.1.1 no such user"),
                           "later@remote.example": (451, b"4.7.1 greylisted"),
                           "x@blocked.example": (554, b"5.7.1 relay denied")}
        # the greylisting entry was consumed; the 550 stays
        refused = s.sendmail("a@local.example",
                             ["later@remote.example", "bad@remote.example"], MSG)
        assert refused == {"bad@remote.example": (550, b"5.1.1 no such user")}
        s.quit()
    msgs = mx.wait_messages(2, timeout=T)
    assert [m["rcpt_tos"] for m in msgs] == [["good@remote.example"],
                                            ["later@remote.example"]]


def test_mx_no_ehlo_helo_fallback(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, ehlo=False))
    with client(mx) as s:
        code, _ = s.ehlo()
        assert code == 502
        assert s.helo()[0] == 250
        assert s.sendmail("a@local.example", ["b@remote.example"], MSG) == {}
        s.quit()
    (m,) = mx.wait_messages(1, timeout=T)
    assert m["esmtp"] is False and m["helo"] == "client.example"
    # without EHLO, MAIL parameters are refused
    with client(mx) as s:
        s.helo("client.example")
        assert s.docmd("MAIL", "FROM:<a@local.example> BODY=8BITMIME")[0] == 501
        s.quit()


def test_mx_8bitmime_and_smtputf8_off(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, eightbitmime=False, smtputf8=False))
    with client(mx) as s:
        kws = ehlo_keywords(s)
        assert "8BITMIME" not in kws and "SMTPUTF8" not in kws
        code, text = s.mail("a@local.example", ["BODY=8BITMIME"])
        assert code == 555, text
        assert s.docmd("MAIL", "FROM:<a@local.example> SMTPUTF8")[0] == 501
        assert s.mail("a@local.example", ["BODY=7BIT"])[0] == 250
        s.rset()
        # 8-bit content is still stored as sent, for the test to inspect
        assert s.sendmail("a@local.example", ["b@remote.example"],
                          b"Subject: x\r\n\r\ncaf\xc3\xa9\r\n") == {}
        s.quit()
    (m,) = mx.wait_messages(1, timeout=T)
    assert m["data"] == b"Subject: x\r\n\r\ncaf\xc3\xa9\r\n"


def test_mx_smtputf8_on(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    with client(mx) as s:
        s.ehlo("client.example")
        s.command_encoding = "utf-8"
        assert s.mail("jos\u00e9@local.example")[0] == 553     # needs SMTPUTF8
        assert s.mail("jos\u00e9@local.example", ["SMTPUTF8"])[0] == 250
        assert s.rcpt("\u00fc@remote.example")[0] == 250
        s.rset()
        s.quit()


def test_mx_dsn_size_and_max_rcpts(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0, dsn=True, size=1000, max_rcpts=2))
    with client(mx) as s:
        kws = ehlo_keywords(s)
        assert "DSN" in kws and "SIZE" in kws
        assert s.esmtp_features["size"] == "1000"
        assert s.mail("a@local.example", ["SIZE=5000"])[0] == 552
        assert s.mail("a@local.example", ["RET=HDRS", "ENVID=Id+2Bx", "SIZE=200"])[0] == 250
        assert s.rcpt("b@remote.example", ["NOTIFY=SUCCESS,FAILURE",
                                           "ORCPT=rfc822;B@remote.example"])[0] == 250
        assert s.rcpt("c@remote.example")[0] == 250
        assert s.rcpt("d@remote.example")[0] == 452
        assert s.data(MSG)[0] == 250
        s.quit()
    (m,) = mx.wait_messages(1, timeout=T)
    assert m["mail_options"] == ["RET=HDRS", "ENVID=Id+2Bx", "SIZE=200"]
    assert m["rcpt_options"] == [["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;B@remote.example"], []]
    mx2 = serve(FakeMX(host="127.0.0.2", port=0))
    with client(mx2) as s:
        s.ehlo("client.example")
        assert s.mail("a@local.example", ["RET=FULL"])[0] == 555
        assert s.mail("a@local.example")[0] == 250
        assert s.rcpt("b@remote.example", ["NOTIFY=NEVER"])[0] == 555
        s.quit()


def test_mx_banner_554(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    mx.script = {"CONNECT": [(554, "5.3.2 no service for you"), None]}
    with pytest.raises(smtplib.SMTPConnectError) as e:
        client(mx)
    assert e.value.smtp_code == 554
    c = socket.create_connection((mx.host, mx.port), timeout=T)
    f = c.makefile("rb")
    try:
        assert f.readline().startswith(b"220 ")      # the script was consumed
    finally:
        f.close()
        c.close()
    # after a 554 banner: 503 to everything, QUIT works
    mx.script = {"CONNECT": [(554, "5.7.1 go away")]}
    c = socket.create_connection((mx.host, mx.port), timeout=T)
    f = c.makefile("rb")
    try:
        assert f.readline() == b"554 5.7.1 go away\r\n"
        c.sendall(b"EHLO client.example\r\n")
        assert f.readline().startswith(b"503 ")
        c.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221 ")
        assert f.readline() == b""
    finally:
        f.close()
        c.close()
    assert mx.sessions == 3


def test_mx_banner_421_and_drop(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    mx.script = {"CONNECT": [(421, "4.3.2 busy"), "DROP", (220, "custom banner")]}
    c = socket.create_connection((mx.host, mx.port), timeout=T)
    try:
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data == b"421 4.3.2 busy\r\n"
    finally:
        c.close()
    c = socket.create_connection((mx.host, mx.port), timeout=T)
    try:
        try:
            assert c.recv(4096) == b""
        except ConnectionResetError:
            pass
    finally:
        c.close()
    with client(mx) as s:
        assert s.ehlo()[0] == 250
        s.quit()
    assert mx.transcripts[2][0] == "S: 220 mx1.remote.example custom banner"
    assert mx.transcripts[1] == ["S: <drop>"]


def test_mx_drop_and_421_mid_session(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    mx.script = {"RCPT": ["DROP"], "DOT": [(421, "4.4.2 bye now")]}
    with client(mx) as s:
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.sendmail("a@local.example", ["b@remote.example"], MSG)
    with client(mx) as s:
        s.ehlo("client.example")
        with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPServerDisconnected)):
            s.sendmail("a@local.example", ["b@remote.example"], MSG)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.noop()
    mx.script = {"DOT": ["DROP"]}
    with client(mx) as s:
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.sendmail("a@local.example", ["b@remote.example"], MSG)
    assert mx.messages == [] and len(mx.rejected) == 2
    assert mx.rejected[1]["reply"] is None and mx.rejected[1]["data"] == MSG
    assert mx.transcripts[2][-1] == "S: <drop>"


def test_mx_delays_for_timeouts(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    mx.script = {"CONNECT": [("DELAY", 0.8)], "DOT": [("DELAY", 0.5, (250, "2.0.0 late"))]}
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
        smtplib.SMTP(mx.host, mx.port, timeout=0.2, local_hostname=LOCAL)
    with client(mx) as s:
        s.ehlo("client.example")
        t0 = time.monotonic()
        assert s.sendmail("a@local.example", ["b@remote.example"], MSG) == {}
        assert time.monotonic() - t0 >= 0.45
        s.quit()
    assert mx.messages[0]["reply"] == (250, "2.0.0 late")


def test_mx_bad_script_entry_is_reported(serve):
    mx = serve(FakeMX(host="127.0.0.2", port=0))
    with pytest.raises(ValueError):
        mx.script = {"MAIL": [(99, "nonsense")]}
        mx._next("MAIL")


def test_mx_stop_is_bounded_mid_transaction():
    mx = FakeMX(host="127.0.0.2", port=0).start()
    mx.script = {"DOT": [("DELAY", 60)]}
    c = socket.create_connection((mx.host, mx.port), timeout=T)
    try:
        f = c.makefile("rb")
        f.readline()
        c.sendall(b"HELO c.example\r\nMAIL FROM:<a@b.example>\r\n"
                  b"RCPT TO:<c@d.example>\r\nDATA\r\nhello\r\n.\r\n")
        for _ in range(4):
            f.readline()
        time.sleep(0.1)
        c2 = socket.create_connection((mx.host, mx.port), timeout=T)  # idle one
    finally:
        t0 = time.monotonic()
        mx.stop()
        assert time.monotonic() - t0 < 5
    c.settimeout(T)
    assert f.read() == b""
    f.close()
    c.close()
    c2.close()
    with pytest.raises(OSError):
        socket.create_connection((mx.host, mx.port), timeout=1).close()


@pytest.mark.skipif(os.geteuid() != 0, reason="port 25 needs root")
def test_mx_port_25_on_other_loopback_address(serve):
    # a loopback address of its own, so as not to collide with other tests
    host = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 250)}"
    mx = serve(FakeMX(host=host, port=25))
    with smtplib.SMTP(host, 25, timeout=T, local_hostname=LOCAL) as s:
        s.ehlo("client.example")
        assert s.sendmail("a@local.example", ["b@remote.example"], MSG) == {}
        s.quit()
    assert mx.wait_messages(1, timeout=T)[0]["data"] == MSG


def test_silent_port(serve):
    sp = serve(SilentPort(host="127.0.0.2"))
    c = socket.create_connection(("127.0.0.2", sp.port), timeout=T)
    try:
        c.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.recv(10)
        c.sendall(b"EHLO x\r\n")
        with pytest.raises(socket.timeout):
            c.recv(10)
    finally:
        c.close()
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
        smtplib.SMTP("127.0.0.2", sp.port, timeout=0.3, local_hostname=LOCAL)
    assert sp.connections == 2
    assert b"EHLO x\r\n" in sp.received
