"""SPF, DKIM verification and DMARC on port 25 (src/smtp/msgauth.h), end to
end: the real ternd, a real SMTP client on loopback, DNS from fake_dns.py,
messages signed by dkimpy, and the Authentication-Results fields tern adds
read back with python3-authres.

Every server here is started with `mail_auth_ignore none` (the default skips
loopback, which is where the tests connect from; one test checks that
default) and `dns_server` pointing at a FakeDNS of its own. The recipient is
bob@localhost, delivered to DATA_DIR/mail/localhost/bob (Maildir).
"""

import base64
import json
import re
import time

import pytest

import tern_harness as th
from fake_dns import FakeDNS
from tern_harness import SMTPClient, check

dkim = pytest.importorskip("dkim")
authres = pytest.importorskip("authres")
pytest.importorskip("cryptography")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: E402

AUTHSERV = "mx.tern.test"
RCPT = "bob@localhost"
HELO = "mail.good.example"


# ----------------------------------------------------------------------------
# keys (made once per process) and signing

class Key:
    def __init__(self, kind):
        self.kind = kind
        if kind == "rsa":
            k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.priv = k.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
            pub = k.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
            self.record = "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode()
            self.algo = b"rsa-sha256"
        else:
            k = ed25519.Ed25519PrivateKey.generate()
            raw = k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                  serialization.NoEncryption())
            self.priv = base64.b64encode(raw)
            pub = k.public_key().public_bytes(serialization.Encoding.Raw,
                                              serialization.PublicFormat.Raw)
            self.record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(pub).decode()
            self.algo = b"ed25519-sha256"


_KEYS = {}


def key(kind="rsa"):
    if kind not in _KEYS:
        _KEYS[kind] = Key(kind)
    return _KEYS[kind]


def sign(msg, domain, selector="sel", kind="rsa", canon=(b"relaxed", b"relaxed"),
         length=False):
    k = key(kind)
    sig = dkim.sign(msg, selector.encode(), domain.encode(), k.priv, canonicalize=canon,
                    signature_algorithm=k.algo, length=length,
                    include_headers=[b"from", b"to", b"subject", b"message-id", b"date"])
    assert sig.startswith(b"DKIM-Signature:"), sig
    return sig + msg


def publish_key(dns, domain, selector="sel", kind="rsa", record=None):
    value = record if record is not None else key(kind).record
    dns.set(f"{selector}._domainkey.{domain}", "TXT",
            [[value[i:i + 255] for i in range(0, len(value), 255)]])


def msg(frm, subject="test", body="hello\r\n", extra="", to=RCPT):
    mid = f"<{subject.replace(' ', '-')}.{time.time_ns()}@mailauth.test>"
    head = f"From: {frm}\r\n" if frm is not None else ""
    return (f"{head}To: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: {mid}\r\n"
            f"{extra}\r\n{body}").encode()


# ----------------------------------------------------------------------------
# servers and DNS

@pytest.fixture
def dns():
    d = FakeDNS().start()
    yield d
    d.stop()


def start(factory, dns, listeners=None, **kw):
    cfg = dict(dns_server=dns.addr, dns_timeout="1s", mail_auth_ignore="none",
               authserv_id=AUTHSERV, mail_auth_timeout="5s", workers=1)
    cfg.update(kw)              # a None value drops the key (the server default)
    return factory.start(listeners=listeners, **cfg)


def domain(dns, name, spf="v=spf1 ip4:127.0.0.0/8 -all", dmarc="v=DMARC1; p=reject",
           keys=()):
    """Publish SPF, DMARC and DKIM keys ((selector, kind) pairs) for name."""
    if spf is not None:
        dns.add(name, "TXT", spf)
    if dmarc is not None:
        dns.add(f"_dmarc.{name}", "TXT", dmarc)
    for sel, kind in keys:
        publish_key(dns, name, sel, kind)


# ----------------------------------------------------------------------------
# SMTP

def transact(t, mail_from, content, helo=HELO, rcpts=(RCPT,), source=None):
    """One transaction on a new connection; the reply to the end of DATA."""
    with SMTPClient(t.port, source=source) as c:
        c.ehlo(helo)
        c.mail_rcpt_data(mail_from, list(rcpts))
        r = c.send_data(content)
        c.cmd("QUIT")
    return r


def deliver(t, mail_from, content, helo=HELO, count=1, folder=None, source=None):
    """Send, expect 250, wait for the count-th message in bob's mailbox (or
    its Maildir++ folder); return the newest delivered file's content."""
    r = transact(t, mail_from, content, helo=helo, source=source)
    check(r, 250, "2.0.0", what="end of DATA")
    files = th.wait_until(lambda: len(mailbox(t, folder)) >= count and mailbox(t, folder),
                          timeout=10)
    assert files, (f"message not delivered to {folder or 'inbox'}; log tail:\n"
                   + t.log()[-3000:])
    return files[-1].read_bytes()


def mailbox(t, folder=None):
    d = t.data_dir / "mail" / "localhost" / "bob"
    if folder:
        d = d / f".{folder}"
    d = d / "new"
    try:
        return sorted((p for p in d.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime_ns)
    except OSError:
        return []


# ----------------------------------------------------------------------------
# Authentication-Results

def header_fields(content):
    """[(name, raw field with its CR LF folding)] of the header section."""
    head = content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace") + "\r\n"
    out = []
    for m in re.finditer(r"([^:\r\n]+):(?:[^\r\n]*\r\n)(?:[ \t][^\r\n]*\r\n)*", head):
        out.append((m.group(1).strip(), m.group(0)))
    return out


def ar_fields(content):
    return [f for n, f in header_fields(content) if n.lower() == "authentication-results"]


def ours(content):
    """The Authentication-Results field tern added, parsed; asserts it is the
    only one with our authserv-id and that it sits in front of Received."""
    fields = header_fields(content)
    names = [n.lower() for n, _ in fields]
    assert names[0] == "return-path", names
    assert names[1] == "authentication-results", f"no A-R in front: {names}"
    assert names[2] in ("received", "x-tern-quarantine"), names
    field = fields[1][1]
    h = authres.AuthenticationResultsHeader.parse(field)
    assert h.authserv_id == AUTHSERV, field
    claiming = [f for f in ar_fields(content)
                if authres.AuthenticationResultsHeader.parse(f).authserv_id.lower() == AUTHSERV]
    assert claiming == [field], f"more than one field with our id: {claiming}"
    for line in field.split("\r\n")[:-1]:
        assert len(line) < 998
    for line in field.split("\r\n")[1:-1]:
        assert line.startswith("\t"), field
    h.raw = field
    return h


def results(h, method):
    return [r for r in h.results if r.method == method]


def one(h, method, ptype=None, pname=None):
    rs = results(h, method)
    if ptype:
        rs = [r for r in rs if any(p.type == ptype and p.name == pname for p in r.properties)]
    assert len(rs) == 1, (method, ptype, pname, h.raw)
    return rs[0]


def prop(r, name):
    t, n = name.split(".")
    for p in r.properties:
        if p.type == t and p.name == n:
            return p.value
    return None


def comment(h, method, n=0):
    """The comment after the n-th `method=result` of h (authres drops comments)."""
    flat = re.sub(r"\r\n[ \t]+", " ", h.raw)
    found = re.findall(r"(?:;|\s)" + re.escape(method) + r"=[a-z]+ \(((?:[^()\\]|\\.)*)\)", flat)
    return found[n] if len(found) > n else ""


def no_ar(content):
    assert ar_fields(content) == [], content[:600]


# ----------------------------------------------------------------------------
# log

def mailauth_events(t):
    return th.log_events(t.log(), "mailauth")


def last_mailauth(t):
    ev = th.wait_until(lambda: mailauth_events(t), timeout=5)
    assert ev, "no event=mailauth line; log tail:\n" + t.log()[-3000:]
    return ev[-1]


def kv(line, key):
    m = re.search(r"(?:^|\s)" + re.escape(key) + r'=("(?:[^"\\]|\\.)*"|\S+)', line)
    if not m:
        return None
    v = m.group(1)
    return v[1:-1] if v.startswith('"') else v


def nothing_delivered(t):
    assert th.all_mail_files(t.data_dir) == [], th.all_mail_files(t.data_dir)
    assert th.wait_queue_empty(t.data_dir, timeout=5), th.queue_files(t.data_dir)


# ============================================================================
# 1. the forged sender is refused

def test_forged_spf_fail_sender_refused_under_p_reject(ternd_factory, dns):
    domain(dns, "evil.example", spf="v=spf1 -all", dmarc="v=DMARC1; p=reject")
    domain(dns, "good.example", keys=[("sel", "rsa")])
    t = start(ternd_factory, dns)
    marker = f"forged-{time.time_ns()}"
    with SMTPClient(t.port) as c:
        c.ehlo(HELO)
        c.mail_rcpt_data("ceo@evil.example", [RCPT])
        r = c.send_data(msg("CEO <ceo@evil.example>", subject=marker, body="pay now\r\n"))
        check(r, 550, "5.7.1", what="forged message")
        assert "evil.example" in r.text and "DMARC" in r.text and "reject" in r.text, r.text
        assert "SPF fail" in r.text, r.text
        # the session goes on: a genuine message after it is taken
        c.mail_rcpt_data("alice@good.example", [RCPT])
        ok = c.send_data(sign(msg("alice@good.example", subject="genuine"), "good.example"))
        check(ok, 250, "2.0.0")
        c.expect("QUIT", 221)
    assert th.wait_until(lambda: len(mailbox(t)) == 1, timeout=10)
    assert th.wait_queue_empty(t.data_dir, timeout=10), th.queue_files(t.data_dir)
    files = th.all_mail_files(t.data_dir)
    assert len(files) == 1 and b"genuine" in files[0].read_bytes(), files
    # nothing of the refused message anywhere under data_dir
    for p in t.data_dir.rglob("*"):
        if p.is_file() and p.suffix != ".jsonl":
            assert marker.encode() not in p.read_bytes(), p
    ev = [e for e in mailauth_events(t) if "action=reject" in e]
    assert len(ev) == 1 and "spf=fail" in ev[0] and "dmarc=fail" in ev[0], ev
    assert 'from_domain="evil.example"' in ev[0] and "policy=reject" in ev[0]


# ============================================================================
# 2. a properly signed message passes

@pytest.mark.parametrize("kind,canon", [
    ("rsa", (b"relaxed", b"relaxed")),
    ("ed25519", (b"relaxed", b"relaxed")),
    ("rsa", (b"simple", b"simple")),
    ("ed25519", (b"simple", b"simple")),
], ids=["rsa-relaxed", "ed25519-relaxed", "rsa-simple", "ed25519-simple"])
def test_signed_message_passes_spf_dkim_dmarc(ternd_factory, dns, kind, canon):
    domain(dns, "good.example", keys=[("sel", kind)])
    t = start(ternd_factory, dns)
    # content that simple canonicalization must keep byte for byte
    body = "Hello  Bob,\r\n\tindented  line \r\n.dot line\r\n\r\n"
    signed = sign(msg("Alice <alice@good.example>", body=body), "good.example", kind=kind,
                  canon=canon)
    got = deliver(t, "alice@good.example", signed)
    assert got.endswith(signed), "the message was changed on its way"
    h = ours(got)
    spf = one(h, "spf", "smtp", "mailfrom")
    assert spf.result == "pass" and prop(spf, "smtp.mailfrom") == "alice@good.example"
    d = one(h, "dkim")
    assert d.result == "pass", h.raw
    assert prop(d, "header.d") == "good.example" and prop(d, "header.s") == "sel"
    assert prop(d, "header.a") == k_algo(kind)
    b = re.search(rb"\bb=([A-Za-z0-9+/=\s]+)", signed.split(b"\r\n\r\n")[0].split(b"bh=")[1])
    bval = re.sub(rb"\s", b"", b.group(1)).decode()
    assert len(prop(d, "header.b")) >= 8 and bval.startswith(prop(d, "header.b"))
    dm = one(h, "dmarc")
    assert dm.result == "pass" and prop(dm, "header.from") == "good.example"
    assert comment(h, "dmarc") == "p=reject sp=reject dis=none", h.raw
    # what tern delivered still verifies for an independent verifier
    assert dkim.verify(got, dnsfunc=lambda name, timeout=5: key(kind).record.encode())
    ev = last_mailauth(t)
    assert "action=accept" in ev and "dkim0=pass" in ev and "dmarc=pass" in ev, ev
    q = [e for e in th.log_events(t.log(), "queued")]
    assert q and "spf=pass dkim=pass dmarc=pass" in q[-1], q


def k_algo(kind):
    return key(kind).algo.decode()


# ============================================================================
# 3. forged Authentication-Results

def test_forged_authentication_results_removed(ternd_factory, dns):
    domain(dns, "good.example")
    t = start(ternd_factory, dns)
    forged = ("Authentication-Results: mx.tern.test; dkim=pass header.d=paypal.example\r\n"
              "Authentication-Results: MX.Tern.TEST;\r\n\tspf=pass smtp.mailfrom=a@paypal.example\r\n"
              "Authentication-Results:mx.tern.test;dmarc=pass header.from=paypal.example\r\n"
              "authentication-results: mx.tern.test ; arc=pass\r\n")
    kept = ("Authentication-Results: relay.other.example; spf=fail smtp.mailfrom=x@y.example\r\n"
            "Authentication-Results: mx.tern.test.evil.example; dkim=pass header.d=z.example\r\n")
    content = msg("alice@good.example", extra=forged + kept)
    got = deliver(t, "alice@good.example", content)
    h = ours(got)
    assert one(h, "spf", "smtp", "mailfrom").result == "pass"
    ids = [authres.AuthenticationResultsHeader.parse(f).authserv_id for f in ar_fields(got)]
    assert ids == [AUTHSERV, "relay.other.example", "mx.tern.test.evil.example"], ids
    assert b"paypal.example" not in got
    assert kept.encode() in got
    ev = last_mailauth(t)
    assert kv(ev, "removed_authres") == "4", ev


@pytest.mark.parametrize("field", [
    "Authentication-Results:\r\n mx.tern.test; spf=pass",          # id on a continuation line
    "Authentication-Results: (forged) mx.tern.test; spf=pass",       # CFWS before the id
    "Authentication-Results: mx.tern.test 1; spf=pass",              # with a version
    'Authentication-Results: "mx.tern.test"; spf=pass',              # quoted-string id
    "Authentication-Results: mx.tern.test(c); spf=pass",
    "Authentication-Results: mx.tern.test; none",
    "Authentication-Results : mx.tern.test; spf=pass",               # WSP before the colon
    "AUTHENTICATION-RESULTS: mx.tern.test; spf=pass",
    "Authentication-Results: mx.tern.test.; spf=pass",               # the root dot: the same host
], ids=["folded", "comment-first", "version", "quoted", "comment-after", "none",
        "wsp-colon", "upper-name", "trailing-dot"])
def test_forged_authentication_results_forms(ternd_factory, dns, field):
    domain(dns, "good.example", dmarc=None)
    t = start(ternd_factory, dns)
    got = deliver(t, "alice@good.example", msg("alice@good.example", extra=field + "\r\n"))
    ours(got)
    assert len(ar_fields(got)) == 1, ar_fields(got)
    assert kv(last_mailauth(t), "removed_authres") == "1"


def test_forged_authentication_results_removed_other_authserv_id(ternd_factory, dns):
    """authserv_id is what is matched, not the hostname."""
    domain(dns, "good.example")
    t = start(ternd_factory, dns, authserv_id="Auth.Example.NET")
    content = msg("alice@good.example",
                  extra="Authentication-Results: auth.example.net; dkim=pass\r\n"
                        f"Authentication-Results: {th.HOSTNAME}; dkim=pass\r\n")
    got = deliver(t, "alice@good.example", content)
    ids = [authres.AuthenticationResultsHeader.parse(f).authserv_id for f in ar_fields(got)]
    assert [i.lower() for i in ids] == ["auth.example.net", th.HOSTNAME], ids
    assert kv(last_mailauth(t), "removed_authres") == "1"


# ============================================================================
# 4. quarantine

@pytest.mark.parametrize("mode", ["quarantine", "folder-none", "reject-off", "folder-spam"])
def test_quarantine(ternd_factory, dns, mode):
    policy = "reject" if mode == "reject-off" else "quarantine"
    domain(dns, "q.example", spf="v=spf1 -all", dmarc=f"v=DMARC1; p={policy}")
    kw = {"folder-none": dict(quarantine_folder="none"),
          "reject-off": dict(dmarc_reject="off"),
          "folder-spam": dict(quarantine_folder="Spam")}.get(mode, {})
    t = start(ternd_factory, dns, **kw)
    folder = {"folder-none": None, "folder-spam": "Spam"}.get(mode, "Junk")
    got = deliver(t, "x@q.example", msg("x@q.example"), folder=folder)
    names = [n.lower() for n, _ in header_fields(got)]
    assert names[:4] == ["return-path", "authentication-results", "x-tern-quarantine",
                         "received"], names
    xq = [f for n, f in header_fields(got) if n.lower() == "x-tern-quarantine"][0]
    assert "q.example" in xq and policy in xq, xq
    h = ours(got)
    dm = one(h, "dmarc")
    assert dm.result == "fail" and prop(dm, "header.from") == "q.example"
    assert comment(h, "dmarc") == f"p={policy} sp={policy} dis={policy}", h.raw
    assert one(h, "spf", "smtp", "mailfrom").result == "fail"
    if folder:
        assert mailbox(t) == [], "quarantined message also in the inbox"
    else:
        assert not (t.data_dir / "mail/localhost/bob/.Junk").exists()
    ev = last_mailauth(t)
    assert "action=quarantine" in ev, ev


# ============================================================================
# 5. SPF at MAIL FROM

def test_spf_reject_fail_at_mail_from_pipelined(ternd_factory, dns):
    domain(dns, "spffail.example", spf="v=spf1 ip4:192.0.2.1 -all", dmarc=None)
    domain(dns, "good.example", dmarc=None)
    dns.set_delay("spffail.example", 0.4, "TXT")     # MAIL must wait for it
    t = start(ternd_factory, dns, spf_reject="fail")
    with SMTPClient(t.port) as c:
        ehlo = c.ehlo(HELO)
        assert "PIPELINING" in th.ehlo_keywords(ehlo)
        c.send(f"MAIL FROM:<x@spffail.example>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n")
        r1, r2, r3 = c.reply(), c.reply(), c.reply()
        check(r1, 550, "5.7.23", what="MAIL")
        assert "spffail.example" in r1.text and "127.0.0.1" in r1.text, r1
        check(r2, 503, what="RCPT after refused MAIL")
        assert r3.code in (503, 554), f"DATA after refused MAIL: {r3.raw!r}"
        # not in DATA mode: commands are commands
        c.expect("NOOP", 250)
        # a passing sender, pipelined the same way, gets through
        dns.set_delay("good.example", 0.4, "TXT")
        c.send(f"MAIL FROM:<a@good.example>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n")
        check(c.reply(), 250, "2.1.0")
        check(c.reply(), 250, "2.1.5")
        check(c.reply(), 354)
        check(c.send_data(msg("a@good.example")), 250, "2.0.0")
        c.expect("QUIT", 221)
    assert th.wait_until(lambda: len(mailbox(t)) == 1, timeout=10)
    assert len(th.all_mail_files(t.data_dir)) == 1


@pytest.mark.parametrize("tempfail", ["defer", "accept"])
def test_spf_temperror(ternd_factory, dns, tempfail):
    domain(dns, "tf.example", dmarc=None)
    dns.set_rcode("tf.example", "SERVFAIL", "TXT")
    t = start(ternd_factory, dns, mail_auth_tempfail=tempfail)
    if tempfail == "defer":
        with SMTPClient(t.port) as c:
            c.ehlo(HELO)
            r = c.expect("MAIL FROM:<x@tf.example>", 451, "4.7.24")
            assert "SPF" in r.text
            c.expect(f"RCPT TO:<{RCPT}>", 503)
            c.expect("QUIT", 221)
        nothing_delivered(t)
        return
    got = deliver(t, "x@tf.example", msg("x@tf.example"))
    h = ours(got)
    assert one(h, "spf", "smtp", "mailfrom").result == "temperror", h.raw
    assert "spf=temperror" in last_mailauth(t)


# ============================================================================
# 6. DMARC temperror

@pytest.mark.parametrize("tempfail", ["defer", "accept"])
def test_dmarc_temperror(ternd_factory, dns, tempfail):
    domain(dns, "dt.example", dmarc=None)
    dns.set_rcode("_dmarc.dt.example", "SERVFAIL")
    t = start(ternd_factory, dns, mail_auth_tempfail=tempfail)
    if tempfail == "defer":
        r = transact(t, "x@dt.example", msg("x@dt.example"))
        check(r, 451, "4.7.0")
        assert "dt.example" in r.text and "DMARC" in r.text, r
        nothing_delivered(t)
        assert "action=defer" in last_mailauth(t)
        return
    got = deliver(t, "x@dt.example", msg("x@dt.example"))
    h = ours(got)
    assert one(h, "spf", "smtp", "mailfrom").result == "pass"
    dm = one(h, "dmarc")
    assert dm.result == "temperror" and prop(dm, "header.from") == "dt.example", h.raw


# ============================================================================
# 7. mail_auth_timeout: a bounded wait, and the loop goes on meanwhile

def test_mail_auth_timeout_bounds_the_wait_and_does_not_block(ternd_factory, dns):
    for name in ("slow.example", "_dmarc.slow.example", "sel._domainkey.slow.example",
                 HELO):
        dns.set_drop(name)
    domain(dns, "good.example", dmarc="v=DMARC1; p=none")
    t = start(ternd_factory, dns, mail_auth_timeout="2s", dns_timeout="30s", workers=1)
    c1 = SMTPClient(t.port, timeout=20)
    try:
        c1.ehlo("helo.good.example")
        c1.mail_rcpt_data("x@slow.example", [RCPT])
        c1.send(th.dot_stuff(sign(msg("x@slow.example", subject="slow"), "slow.example"))
                + b".\r\n")
        t0 = time.monotonic()
        # meanwhile, another client does a whole transaction on the same
        # (single) worker
        with SMTPClient(t.port, timeout=5) as c2:
            c2.ehlo("helo.good.example")
            qid = c2.send_message("a@good.example", [RCPT], msg("a@good.example", subject="fast"))
            c2.expect("QUIT", 221)
        t2 = time.monotonic() - t0
        assert t2 < 1.5, f"the second transaction took {t2:.2f}s: the loop is blocked"
        assert c1.nothing_pending(0), "the slow message was answered before its DNS ran out"
        r = c1.reply(timeout=15)
        t1 = time.monotonic() - t0
        c1.cmd("QUIT")
    finally:
        c1.close()
    check(r, 250, "2.0.0")
    assert 1.5 <= t1 < 6, f"answered after {t1:.2f}s (mail_auth_timeout 2s)"
    assert th.wait_until(lambda: len(mailbox(t)) == 2, timeout=10)
    slow = [m.read_bytes() for m in mailbox(t) if b"Subject: slow" in m.read_bytes()][0]
    h = ours(slow)
    assert one(h, "spf", "smtp", "mailfrom").result == "temperror", h.raw
    assert one(h, "dkim").result == "temperror", h.raw
    assert one(h, "dmarc").result == "temperror", h.raw
    assert "mail_auth_timeout" in h.raw
    assert qid


# ============================================================================
# 8. From field count

@pytest.mark.parametrize("froms", [0, 2], ids=["no-from", "two-from"])
def test_from_field_count_refused(ternd_factory, dns, froms):
    domain(dns, "good.example")
    t = start(ternd_factory, dns)
    extra = "From: bob@good.example\r\n" if froms == 2 else ""
    content = msg("alice@good.example" if froms else None, extra=extra)
    r = transact(t, "alice@good.example", content)
    check(r, 550, "5.7.1")
    assert "From" in r.text, r
    nothing_delivered(t)


def test_from_field_count_with_dmarc_reject_off_not_refused(ternd_factory, dns):
    """dmarc_reject off: 'A message with no From: field, or with several, is
    refused too [...] With off such messages are quarantined instead.'"""
    domain(dns, "good.example")
    t = start(ternd_factory, dns, dmarc_reject="off")
    content = msg("alice@good.example", extra="From: bob@good.example\r\n")
    check(transact(t, "alice@good.example", content), 250, "2.0.0")
    files = th.wait_until(lambda: th.all_mail_files(t.data_dir), timeout=10)
    assert files
    got = files[0].read_bytes()
    assert one(ours(got), "dmarc").result == "permerror"
    assert b"X-Tern-Quarantine:" in got, got[:700]
    assert files[0].parent.parent.name == ".Junk", files[0]
    assert "action=quarantine" in last_mailauth(t)


def test_from_mailboxes_of_one_domain_evaluated(ternd_factory, dns):
    """One From field, two mailboxes of one domain: that domain is judged."""
    domain(dns, "evil.example", spf="v=spf1 -all", dmarc="v=DMARC1; p=reject")
    t = start(ternd_factory, dns)
    r = transact(t, "x@evil.example", msg("ceo@evil.example, cfo@Evil.Example"))
    check(r, 550, "5.7.1")
    assert "evil.example publishes a DMARC policy of reject" in r.text, r.text
    nothing_delivered(t)


def test_from_mailboxes_of_different_domains_refused(ternd_factory, dns):
    """One From field naming a p=reject domain that fails and a second
    mailbox of another domain must not slip past DMARC (RFC 7489 6.6.1:
    apply the strictest policy, or refuse; tests/data/dmarc/cases.yml
    author-two-domains: 'mailboxes of different domains are refused, never
    evaluated for the first only')."""
    domain(dns, "evil.example", spf="v=spf1 -all", dmarc="v=DMARC1; p=reject")
    dns.add("attacker.example", "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
    t = start(ternd_factory, dns)
    r = transact(t, "x@attacker.example",
                 msg("CEO <ceo@evil.example>, Mallory <m@attacker.example>"))
    check(r, 550, "5.7.1", what="From: ceo@evil.example (p=reject, fails), m@attacker.example")
    nothing_delivered(t)


# ============================================================================
# 9. DMARC policy discovery and alignment

def test_subdomain_policy_from_org_domain(ternd_factory, dns):
    # _dmarc only at the organizational domain; sp= differs from p=
    dns.add("_dmarc.org.example", "TXT", "v=DMARC1; p=none; sp=reject")
    dns.add("sub.org.example", "TXT", "v=spf1 -all")
    dns.add("org.example", "TXT", "v=spf1 -all")
    t = start(ternd_factory, dns)
    r = transact(t, "x@sub.org.example", msg("x@sub.org.example"))
    check(r, 550, "5.7.1")
    assert "sub.org.example" in r.text
    assert dns.asked("_dmarc.sub.org.example", "TXT") >= 1
    assert dns.asked("_dmarc.org.example", "TXT") >= 1
    # the org domain itself fails under p=none: taken, dmarc=fail, no quarantine
    got = deliver(t, "x@org.example", msg("x@org.example"))
    h = ours(got)
    dm = one(h, "dmarc")
    assert dm.result == "fail" and comment(h, "dmarc") == "p=none sp=reject dis=none", h.raw
    assert b"X-Tern-Quarantine" not in got


def test_subdomain_policy_sp_none(ternd_factory, dns):
    dns.add("_dmarc.org2.example", "TXT", "v=DMARC1; p=reject; sp=none")
    dns.add("a.b.org2.example", "TXT", "v=spf1 -all")
    t = start(ternd_factory, dns)
    got = deliver(t, "x@a.b.org2.example", msg("x@a.b.org2.example"))
    h = ours(got)
    dm = one(h, "dmarc")
    assert dm.result == "fail" and prop(dm, "header.from") == "a.b.org2.example"
    assert comment(h, "dmarc") == "p=reject sp=none dis=none", h.raw
    assert b"X-Tern-Quarantine" not in got


def test_strict_alignment_fails_relaxed_passes(ternd_factory, dns):
    for org, rec in (("strict.example", "v=DMARC1; p=reject; adkim=s; aspf=s"),
                     ("relaxed.example", "v=DMARC1; p=reject")):
        dns.add(f"_dmarc.{org}", "TXT", rec)
        dns.add(f"mail.{org}", "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
        publish_key(dns, f"mail.{org}", "sel", "rsa")
    t = start(ternd_factory, dns)
    # both SPF (MAIL FROM mail.strict.example) and DKIM (d=mail.strict.example)
    # pass, but for a subdomain of the From domain
    r = transact(t, "x@mail.strict.example",
                 sign(msg("x@strict.example"), "mail.strict.example"))
    check(r, 550, "5.7.1")
    assert "strict.example" in r.text and "not aligned" in r.text, r.text
    ev = last_mailauth(t)
    assert "spf=pass" in ev and "dkim0=pass" in ev and "dmarc=fail" in ev, ev
    got = deliver(t, "x@mail.relaxed.example",
                  sign(msg("x@relaxed.example"), "mail.relaxed.example"))
    h = ours(got)
    assert one(h, "dkim").result == "pass" and one(h, "dmarc").result == "pass", h.raw


@pytest.mark.parametrize("which", ["dkim", "spf"])
def test_strict_alignment_one_mechanism(ternd_factory, dns, which):
    """adkim=s only: an aligned SPF pass still passes; aspf=s only: an
    aligned DKIM pass still passes."""
    rec = "v=DMARC1; p=reject; adkim=s" if which == "dkim" else "v=DMARC1; p=reject; aspf=s"
    dns.add("_dmarc.one.example", "TXT", rec)
    dns.add("mail.one.example", "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
    publish_key(dns, "mail.one.example", "sel", "rsa")
    t = start(ternd_factory, dns)
    got = deliver(t, "x@mail.one.example", sign(msg("x@one.example"), "mail.one.example"))
    assert one(ours(got), "dmarc").result == "pass"


def test_pct_zero_reject_becomes_quarantine(ternd_factory, dns):
    domain(dns, "pct.example", spf="v=spf1 -all", dmarc="v=DMARC1; p=reject; pct=0")
    t = start(ternd_factory, dns)
    got = deliver(t, "x@pct.example", msg("x@pct.example"), folder="Junk")
    h = ours(got)
    dm = one(h, "dmarc")
    assert dm.result == "fail"
    assert comment(h, "dmarc") == "p=reject sp=reject dis=quarantine pct", h.raw
    assert b"X-Tern-Quarantine:" in got
    ev = last_mailauth(t)
    assert "action=quarantine" in ev and "sampled_out=yes" in ev and \
        "disposition=quarantine" in ev, ev


# ============================================================================
# 10. DKIM failures as Authentication-Results show them

def test_dkim_tampered_body(ternd_factory, dns):
    domain(dns, "good.example", keys=[("sel", "rsa")])
    t = start(ternd_factory, dns)
    signed = sign(msg("alice@good.example", body="pay 10 EUR\r\n"), "good.example")
    got = deliver(t, "alice@good.example", signed.replace(b"pay 10 EUR", b"pay 99 EUR"))
    h = ours(got)
    d = one(h, "dkim")
    assert d.result == "fail" and "body hash" in (d.reason or ""), h.raw
    assert prop(d, "header.d") == "good.example"
    assert one(h, "dmarc").result == "pass"       # by SPF
    ev = last_mailauth(t)
    assert "dkim0=fail" in ev and "body hash" in (kv(ev, "why") or ""), ev


def test_dkim_tampered_header(ternd_factory, dns):
    domain(dns, "good.example", keys=[("sel", "ed25519")])
    t = start(ternd_factory, dns)
    signed = sign(msg("alice@good.example", subject="original"), "good.example", kind="ed25519")
    got = deliver(t, "alice@good.example", signed.replace(b"Subject: original", b"Subject: changed"))
    d = one(ours(got), "dkim")
    assert d.result == "fail" and "body hash" not in (d.reason or "") and d.reason, d.reason


def test_dkim_revoked_key(ternd_factory, dns):
    domain(dns, "good.example")
    publish_key(dns, "good.example", "sel", record="v=DKIM1; k=rsa; p=")
    t = start(ternd_factory, dns)
    got = deliver(t, "alice@good.example", sign(msg("alice@good.example"), "good.example"))
    h = ours(got)
    d = one(h, "dkim")
    assert d.result == "fail" and "revoked" in (d.reason or ""), h.raw


def test_dkim_no_key_record(ternd_factory, dns):
    domain(dns, "good.example")
    t = start(ternd_factory, dns)
    got = deliver(t, "alice@good.example", sign(msg("alice@good.example"), "good.example"))
    h = ours(got)
    d = one(h, "dkim")
    assert d.result == "permerror" and prop(d, "header.s") == "sel", h.raw
    assert dns.asked("sel._domainkey.good.example", "TXT") >= 1


def test_dkim_length_tag_with_appended_text(ternd_factory, dns):
    domain(dns, "good.example", keys=[("sel", "rsa")])
    t = start(ternd_factory, dns)
    signed = sign(msg("alice@good.example", body="signed part\r\n"), "good.example", length=True)
    assert b" l=" in signed or b";l=" in signed or b"\tl=" in signed
    appended = b"UNSIGNED: click here\r\n"
    got = deliver(t, "alice@good.example", signed + appended)
    h = ours(got)
    d = one(h, "dkim")
    assert d.result == "pass", h.raw
    assert f"{len(appended)} octets of the body are not signed" in h.raw, h.raw


def test_dkim_two_signatures_one_bad(ternd_factory, dns):
    """One result per signature, told apart by header.b; the good one
    carries DMARC."""
    domain(dns, "good.example", spf="v=spf1 -all", keys=[("ed", "ed25519")])
    publish_key(dns, "good.example", "rsa", record="v=DKIM1; k=rsa; p=")
    t = start(ternd_factory, dns)
    m = msg("alice@good.example")
    both = sign(sign(m, "good.example", selector="ed", kind="ed25519"), "good.example",
                selector="rsa", kind="rsa")
    got = deliver(t, "alice@good.example", both)
    h = ours(got)
    ds = results(h, "dkim")
    assert sorted((prop(r, "header.s"), r.result) for r in ds) == [("ed", "pass"), ("rsa", "fail")]
    assert len({prop(r, "header.b") for r in ds}) == 2
    assert one(h, "spf", "smtp", "mailfrom").result == "fail"
    assert one(h, "dmarc").result == "pass"


# ============================================================================
# 11. who is not checked

def _evil_zone(dns):
    domain(dns, "evil.example", spf="v=spf1 -all", dmarc="v=DMARC1; p=reject")


def _unchecked(t, dns, via=None):
    content = msg("ceo@evil.example", extra="Authentication-Results: other.example; spf=pass\r\n")
    if via is None:
        got = deliver(t, "ceo@evil.example", content)
    else:
        via(content)
        files = th.wait_until(lambda: mailbox(t), timeout=10)
        assert files, t.log()[-3000:]
        got = files[-1].read_bytes()
    assert [f for f in ar_fields(got) if AUTHSERV in f.lower()] == [], got[:800]
    assert b"X-Tern-Quarantine" not in got
    assert dns.queries == [], dns.queries
    assert mailauth_events(t) == []
    return got


def test_default_mail_auth_ignore_skips_loopback(ternd_factory, dns):
    _evil_zone(dns)
    t = start(ternd_factory, dns, mail_auth_ignore=None)
    _unchecked(t, dns)
    # another address of 127.0.0.0/8 is skipped too
    r = transact(t, "ceo@evil.example", msg("ceo@evil.example"), source="127.0.0.9")
    check(r, 250, "2.0.0")
    assert dns.queries == []


def test_trusted_networks_not_checked(ternd_factory, dns):
    _evil_zone(dns)
    t = start(ternd_factory, dns, trusted_networks="127.0.0.0/8")
    _unchecked(t, dns)


def test_mail_auth_off_not_checked(ternd_factory, dns):
    _evil_zone(dns)
    t = start(ternd_factory, dns, mail_auth="off")
    _unchecked(t, dns)


def test_mail_auth_ignore_list_other_address(ternd_factory, dns):
    """An explicit list: 127.0.0.9 is skipped, 127.0.0.1 is checked."""
    _evil_zone(dns)
    t = start(ternd_factory, dns, mail_auth_ignore="127.0.0.9/32 ::1")
    r = transact(t, "ceo@evil.example", msg("ceo@evil.example"), source="127.0.0.9")
    check(r, 250, "2.0.0")
    assert dns.queries == []
    r = transact(t, "ceo@evil.example", msg("ceo@evil.example"))
    check(r, 550, "5.7.1")


USERS = {"carol@localhost": "pw-Carol-mailauth", "bob@localhost": "pw-Bob-mailauth"}


@pytest.mark.parametrize("how", ["submission-starttls", "mx-auth-loopback"])
def test_authenticated_client_not_checked(ternd_factory, dns, how):
    _evil_zone(dns)
    base = ternd_factory.base()
    users = th.write_users(base / "users", USERS)
    if how == "submission-starttls":
        listeners = ["mx", "submission"]
    else:
        listeners = ["mx auth optional plaintext_auth loopback"]
    t = start(ternd_factory, dns, listeners=listeners, users=str(users), base=base,
              auth_failure_delay=0)

    def send(content):
        port = t.port_for("submission") if how == "submission-starttls" else t.port
        with SMTPClient(port) as c:
            c.ehlo(HELO)
            if how == "submission-starttls":
                c.expect("STARTTLS", 220)
                th.tls_wrap(c)
                c.ehlo(HELO)
            c.expect("AUTH PLAIN " + th.sasl_plain("carol@localhost", USERS["carol@localhost"]),
                     235)
            c.mail_rcpt_data("carol@localhost", [RCPT])
            check(c.send_data(content), 250, "2.0.0")
            c.cmd("QUIT")
    _unchecked(t, dns, via=send)
    if how == "mx-auth-loopback":
        # the same listener without AUTH: checked
        r = transact(t, "ceo@evil.example", msg("ceo@evil.example"))
        check(r, 550, "5.7.1")


# ============================================================================
# 12. null sender

def test_null_sender_checks_helo_once(ternd_factory, dns):
    dns.add("mail.helo.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns.add("_dmarc.helo.example", "TXT", "v=DMARC1; p=reject")
    t = start(ternd_factory, dns)
    got = deliver(t, "", msg("MAILER-DAEMON@helo.example", subject="bounce"),
                  helo="mail.helo.example")
    h = ours(got)
    spfs = results(h, "spf")
    assert len(spfs) == 1, h.raw
    assert spfs[0].result == "pass" and prop(spfs[0], "smtp.helo") == "mail.helo.example"
    assert prop(spfs[0], "smtp.mailfrom") is None
    dm = one(h, "dmarc")
    assert dm.result == "pass" and prop(dm, "header.from") == "helo.example", h.raw
    assert dns.asked("mail.helo.example", "TXT") == 1, dns.queries
    ev = last_mailauth(t)
    assert "helo_spf=" not in ev and kv(ev, "spf_domain") == "mail.helo.example", ev


def test_null_sender_helo_fail_under_p_reject(ternd_factory, dns):
    dns.add("bad.helo.example", "TXT", "v=spf1 -all")
    dns.add("_dmarc.helo.example", "TXT", "v=DMARC1; p=reject")
    t = start(ternd_factory, dns)
    r = transact(t, "", msg("MAILER-DAEMON@helo.example"), helo="bad.helo.example")
    check(r, 550, "5.7.1")
    assert "helo.example" in r.text and "SPF fail" in r.text, r.text


def test_helo_identity_reported_next_to_mailfrom(ternd_factory, dns):
    domain(dns, "good.example", dmarc=None)
    dns.add("mail.good.example", "TXT", "v=spf1 -all")
    t = start(ternd_factory, dns)
    got = deliver(t, "alice@good.example", msg("alice@good.example"))
    h = ours(got)
    assert one(h, "spf", "smtp", "mailfrom").result == "pass"
    helo = one(h, "spf", "smtp", "helo")
    assert helo.result == "fail" and prop(helo, "smtp.helo") == HELO
    assert "helo_spf=fail" in last_mailauth(t)


# ============================================================================
# 13. BDAT

def test_bdat_chunks_signed_and_forged_ar_removed(ternd_factory, dns):
    domain(dns, "good.example", keys=[("sel", "rsa")])
    t = start(ternd_factory, dns)
    content = sign(msg("alice@good.example", body="chunked body\r\n" * 50,
                       extra="Authentication-Results: mx.tern.test; dkim=pass\r\n"),
                   "good.example")
    # cut inside the DKIM-Signature, inside the forged field's name, and in the body
    i1 = content.index(b"bh=") + 5
    i2 = content.index(b"Authentication-Res") + 7
    i3 = content.index(b"chunked body") + 100
    parts = [content[:i1], content[i1:i2], content[i2:i3], content[i3:]]
    with SMTPClient(t.port) as c:
        assert "CHUNKING" in th.ehlo_keywords(c.ehlo(HELO))
        c.expect("MAIL FROM:<alice@good.example>", 250)
        c.expect(f"RCPT TO:<{RCPT}>", 250)
        for p in parts[:-1]:
            c.send(b"BDAT %d\r\n" % len(p) + p)
            check(c.reply(), 250)
        c.send(b"BDAT %d LAST\r\n" % len(parts[-1]) + parts[-1])
        check(c.reply(), 250, "2.0.0")
        c.cmd("QUIT")
    files = th.wait_until(lambda: mailbox(t), timeout=10)
    assert files
    got = files[0].read_bytes()
    h = ours(got)
    assert one(h, "dkim").result == "pass", h.raw
    assert one(h, "dmarc").result == "pass"
    assert len(ar_fields(got)) == 1, ar_fields(got)
    assert kv(last_mailauth(t), "removed_authres") == "1"


# ============================================================================
# 14. a large signed message

def test_large_signed_message_verifies(ternd_factory, dns):
    domain(dns, "good.example", keys=[("sel", "ed25519")])
    t = start(ternd_factory, dns)
    line = "0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n"
    body = line * (5 * 1024 * 1024 // len(line))
    signed = sign(msg("alice@good.example", body=body), "good.example", kind="ed25519")
    assert len(signed) > 5 * 1000 * 1000
    with SMTPClient(t.port, timeout=60) as c:
        c.ehlo(HELO)
        c.mail_rcpt_data("alice@good.example", [RCPT])
        check(c.send_data(signed), 250, "2.0.0")
        c.cmd("QUIT")
    files = th.wait_until(lambda: mailbox(t), timeout=30)
    assert files
    got = files[0].read_bytes()
    assert got.endswith(signed)
    h = ours(got)
    assert one(h, "dkim").result == "pass", h.raw
    assert one(h, "dmarc").result == "pass"


# ============================================================================
# 15. aggregate report data

def test_dmarc_records_jsonl(ternd_factory, dns):
    domain(dns, "good.example", keys=[("sel", "rsa")],
           dmarc="v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=100; rua=mailto:agg@good.example")
    domain(dns, "q.example", spf="v=spf1 -all", dmarc="v=DMARC1; p=quarantine")
    domain(dns, "nodmarc.example", dmarc=None)
    domain(dns, "evil.example", spf="v=spf1 -all")
    t = start(ternd_factory, dns)
    t_start = time.time()
    deliver(t, "alice@good.example", sign(msg("Alice <alice@good.example>"), "good.example"),
            source="127.0.0.5")
    deliver(t, "x@q.example", msg("x@q.example"), folder="Junk")
    deliver(t, "x@nodmarc.example", msg("x@nodmarc.example"), count=2)
    check(transact(t, "x@evil.example", msg("x@evil.example")), 550, "5.7.1")
    path = t.data_dir / "dmarc" / "records.jsonl"
    assert th.wait_until(lambda: path.exists() and path.read_text().count("\n") >= 3, timeout=5)
    time.sleep(0.3)
    lines = path.read_text().splitlines()
    # nodmarc has no record; the refused one is there (RFC 7489 7.2 reports
    # count rejected messages with disposition reject).
    assert len(lines) == 3, lines
    good, q, evil = [json.loads(x) for x in lines]
    assert evil["header_from"] == "evil.example" and evil["dmarc"] == "fail"
    assert evil["policy_evaluated"]["disposition"] == "reject"

    assert abs(good["time"] - t_start) < 60
    assert good["source_ip"] == "127.0.0.5"
    assert good["header_from"] == "good.example"
    assert good["envelope_from"] == "alice@good.example"
    assert good["dmarc"] == "pass"
    assert good["spf"] == {"domain": "good.example", "result": "pass"}
    assert good["dkim"] == [{"domain": "good.example", "selector": "sel", "result": "pass"}]
    pp = good["policy_published"]
    assert pp["domain"] == "good.example" and pp["p"] == "reject" and pp["sp"] == "quarantine"
    assert pp["adkim"] == "s" and pp["aspf"] == "r" and pp["pct"] == 100
    assert good["policy_evaluated"] == {"disposition": "none", "dkim": "pass", "spf": "pass"}

    assert q["source_ip"] == "127.0.0.1" and q["header_from"] == "q.example"
    assert q["dmarc"] == "fail"
    assert q["spf"] == {"domain": "q.example", "result": "fail"}
    assert q["dkim"] == []
    assert q["policy_published"]["p"] == "quarantine"
    assert q["policy_evaluated"] == {"disposition": "quarantine", "dkim": "fail", "spf": "fail"}


# ============================================================================
# 16. tern's fields read by another parser, and round-trip

def test_authres_parse_round_trip(ternd_factory, dns):
    domain(dns, "good.example", keys=[("ed", "ed25519"), ("sel", "rsa")])
    dns.add(HELO, "TXT", "v=spf1 -all")
    t = start(ternd_factory, dns)
    m = msg('"Alice (the sender)" <alice@good.example>', body="body\r\n")
    both = sign(sign(m, "good.example", "ed", "ed25519"), "good.example", "sel", "rsa")
    tampered = both.replace(b"body\r\n", b"bodY\r\n")
    got = deliver(t, "alice@good.example", tampered)
    h = ours(got)
    assert [r.method for r in h.results] == ["spf", "spf", "dkim", "dkim", "dmarc"], h.raw
    again = authres.AuthenticationResultsHeader.parse(str(h))

    def flat(x):
        return (x.authserv_id, [(r.method, r.result, r.reason,
                                 [(p.type, p.name, p.value) for p in r.properties])
                                for r in x.results])
    assert flat(again) == flat(h)
    assert all(r.result == "fail" and "body hash" in r.reason for r in results(h, "dkim"))
    assert one(h, "dmarc").result == "pass"          # SPF carries it


# ============================================================================
# the client leaves while a check waits: no crash, no leak, nothing queued

@pytest.mark.parametrize("when", ["mail-wait", "rset-during-mail-wait", "data-wait"])
def test_client_gone_while_checks_wait(ternd_factory, dns, when):
    domain(dns, "good.example", dmarc="v=DMARC1; p=none")
    domain(dns, "slow.example", keys=[("sel", "rsa")])
    domain(dns, "slow2.example", dmarc=None)
    if when == "data-wait":
        dns.set_drop("sel._domainkey.slow.example")
        dns.set_drop("_dmarc.slow.example")
    else:
        dns.set_delay("slow.example", 1.0, "TXT")
        dns.set_delay("slow2.example", 1.0, "TXT")
    t = start(ternd_factory, dns, spf_reject="fail", mail_auth_timeout="1s")
    c = SMTPClient(t.port)
    try:
        c.ehlo(HELO)
        if when == "mail-wait":
            c.send("MAIL FROM:<x@slow.example>\r\n")
        elif when == "rset-during-mail-wait":
            c.send(f"MAIL FROM:<x@slow.example>\r\nRSET\r\nRCPT TO:<{RCPT}>\r\n")
            check(c.reply(timeout=5), 250, "2.1.0")
            check(c.reply(timeout=5), 250)          # RSET
            check(c.reply(timeout=5), 503)          # no transaction any more
            c.send("MAIL FROM:<y@slow2.example>\r\n")
        else:
            c.mail_rcpt_data("x@slow.example", [RCPT])
            c.send(th.dot_stuff(sign(msg("x@slow.example"), "slow.example")) + b".\r\n")
        time.sleep(0.2)
    finally:
        c.close()                                   # gone while the check waits
    time.sleep(1.8)                                 # the answers / timeout arrive
    assert t.running()
    got = deliver(t, "a@good.example", msg("a@good.example"))
    assert one(ours(got), "spf", "smtp", "mailfrom").result == "pass"
    assert th.wait_queue_empty(t.data_dir, timeout=5)
    assert len(th.all_mail_files(t.data_dir)) == 1
