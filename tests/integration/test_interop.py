"""Interop with a real MTA (issue 4): Postfix from Debian's package as the
receiver of ternd's outbound delivery and as the sender to ternd's port 25
role, each with and without STARTTLS.

One private Postfix instance for the module, its configuration in a
temporary directory (config_directory, queue_directory, data_directory, the
mail store and its log file `maillog` all there; /etc/postfix is never
written and the system's Postfix is never started). It is started with
`postfix -c DIR start` and stopped with `postfix -c DIR stop`, then by PID
(master.pid and the master's descendants, SIGKILL after 5 s).

Its smtpd listens on:

    TLS_ADDR:25     mail for pf.example         STARTTLS offered (self-signed)
    PLAIN_ADDR:25   mail for pf-plain.example   no STARTTLS, no SMTPUTF8
    127.0.0.1:INJ_TLS    content_filter -> ternd-tls:[TERND_ADDR]:25
    127.0.0.1:INJ_PLAIN  content_filter -> ternd-plain:[TERND_ADDR]:25

(TLS_ADDR, PLAIN_ADDR and TERND_ADDR are 127.x.y.z addresses of this test's
own; ternd's mx role listens on TERND_ADDR:25 as well as on 127.0.0.1), and
delivers pf.example and pf-plain.example with virtual(8) into Maildirs
DIR/mail/tls and DIR/mail/plain. The transports ternd-tls and ternd-plain
are smtp(8) with smtp_tls_security_level may and none.

ternd resolves through a FakeDNS (never the machine's resolver):
pf.example MX mx1.pf.example A TLS_ADDR, pf-plain.example MX
mx1.pf-plain.example A PLAIN_ADDR.
"""

import itertools
import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

import tern_harness as th
from dsn_check import parse_dsn, parse_report
from fake_dns import FakeDNS
from tern_harness import sasl_plain

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
ALICE, ALICE_PW = "alice@localhost", "pw-Alice-interop"
DATE = "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"

pytestmark = [
    pytest.mark.skipif(not os.path.exists(POSTFIX), reason="Postfix is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix and port 25 need root"),
]

_net = itertools.count(random.randrange(1, 200))


def own_addr():
    """A loopback address for this test run (other tests and concurrent runs
    use others)."""
    n = next(_net) % 250 + 1
    return f"127.{160 + os.getpid() % 40}.{n}.{random.randrange(2, 250)}"


# ----------------------------------------------------------------------------
# a private Postfix

MASTER_CF_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    def __init__(self, base, ternd_addr):
        self.dir = Path(base) / "postfix"
        self.etc = self.dir / "etc"
        self.spool = self.dir / "spool"
        self.data = self.dir / "data"
        self.mail = self.dir / "mail"
        self.maillog = self.dir / "maillog"
        self.tls_addr = own_addr()
        self.plain_addr = own_addr()
        while self.plain_addr == self.tls_addr:
            self.plain_addr = own_addr()
        self.inj_tls, self.inj_plain = th.free_ports(2)
        self.ternd_addr = ternd_addr
        self.master_pid = None
        self.pids = set()
        for d in (self.etc, self.spool, self.data, self.mail):
            d.mkdir(parents=True, mode=0o755)
        os.chmod(self.dir, 0o755)
        nobody = pwd.getpwnam("nobody")
        for box in ("tls", "plain", "strict"):
            for sub in ("new", "cur", "tmp"):
                (self.mail / box / sub).mkdir(parents=True)
        for p in [self.mail] + list(self.mail.rglob("*")):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        os.chown(self.data, pwd.getpwnam("postfix").pw_uid, -1)
        self.cert, self.key = th.make_cert(self.dir / "tls", cn="mx1.pf.example", name="postfix")
        d = self.dir
        (self.etc / "main.cf").write_text(f"""\
# written by tests/integration/test_interop.py
compatibility_level = 3.6
config_directory = {self.etc}
queue_directory = {self.spool}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx1.pf.example
mydomain = pf.example
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = {self.maillog}
maillog_file_prefixes = {d}
alias_maps =
alias_database =
biff = no
smtpd_peername_lookup = no
local_header_rewrite_clients =
smtpd_banner = $myhostname ESMTP Postfix
virtual_mailbox_domains = pf.example pf-plain.example pf-strict.example
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = inline:{{ @pf.example=tls/, @pf-plain.example=plain/,
    bob@pf-strict.example=strict/ }}
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
virtual_minimum_uid = 1
smtpd_tls_cert_file = {self.cert}
smtpd_tls_key_file = {self.key}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtp_tls_security_level = may
smtp_tls_loglevel = 1
smtp_address_preference = ipv4
smtp_connect_timeout = 5s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
""")
        (self.etc / "master.cf").write_text(
            "# written by tests/integration/test_interop.py\n"
            f"{self.tls_addr}:25 inet n - n - - smtpd\n"
            f"{self.plain_addr}:25 inet n - n - - smtpd -o smtpd_tls_security_level=none"
            " -o smtputf8_enable=no\n"
            f"127.0.0.1:{self.inj_tls} inet n - n - - smtpd -o smtpd_tls_security_level=none"
            f" -o content_filter=ternd-tls:[{ternd_addr}]:25\n"
            f"127.0.0.1:{self.inj_plain} inet n - n - - smtpd -o smtpd_tls_security_level=none"
            f" -o content_filter=ternd-plain:[{ternd_addr}]:25\n"
            "ternd-tls unix - - n - - smtp -o smtp_tls_security_level=may"
            " -o syslog_name=postfix/ternd-tls\n"
            "ternd-plain unix - - n - - smtp -o smtp_tls_security_level=none"
            " -o syslog_name=postfix/ternd-plain\n"
            + MASTER_CF_SERVICES)

    def _postfix(self, *args, timeout=30):
        return subprocess.run([POSTFIX, "-c", str(self.etc)] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)

    def diagnose(self):
        """Postfix prints its fatal errors to a terminal only: ask `postfix
        check` under script(1) for them."""
        out = ""
        script = shutil.which("script")
        if script:
            try:
                p = subprocess.run([script, "-qec", f"{POSTFIX} -c {self.etc} check", "/dev/null"],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
                out = p.stdout.decode(errors="replace")
            except (OSError, subprocess.TimeoutExpired) as e:
                out = repr(e)
        return f"postfix check: {out}\nmaillog: {self.log()[-3000:]}"

    def start(self, timeout=30.0):
        p = self._postfix("start", timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"postfix start: {p.returncode} {p.stdout!r} {p.stderr!r}\n"
                               + self.diagnose())
        pidfile = self.spool / "pid" / "master.pid"
        th.wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=5)
        self.master_pid = int(pidfile.read_text().strip())
        self.pids.add(self.master_pid)
        deadline = time.monotonic() + 10
        for addr, port in ((self.tls_addr, 25), (self.plain_addr, 25),
                           ("127.0.0.1", self.inj_tls), ("127.0.0.1", self.inj_plain)):
            while True:
                try:
                    with socket.create_connection((addr, port), timeout=2) as s:
                        s.settimeout(2)
                        if s.recv(512).startswith(b"220 mx1.pf.example"):
                            s.sendall(b"QUIT\r\n")
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postfix does not greet on {addr}:{port}\n" + self.diagnose())
                time.sleep(0.05)
        self.pids.update(th.descendants(self.master_pid))
        return self

    def all_pids(self):
        if self.master_pid and th.alive(self.master_pid):
            self.pids.update(th.descendants(self.master_pid))
        return {p for p in self.pids if th.alive(p)}

    def stop(self, timeout=5.0):
        if self.master_pid is None:
            return []
        pids = self.all_pids()
        try:
            self._postfix("stop", timeout=15)
        except subprocess.TimeoutExpired:
            pass
        th.wait_until(lambda: not any(th.alive(p) for p in pids), timeout=timeout)
        left = [p for p in pids if th.alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        th.wait_until(lambda: not any(th.alive(p) for p in pids), timeout=5)
        return left

    def log(self):
        try:
            return self.maillog.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10.0):
        """The log once pattern is in it (postlogd writes a moment after the
        fact: a delivered file may be there before its log line)."""
        th.wait_until(lambda: re.search(pattern, self.log()), timeout=timeout)
        return self.log()

    def stored(self, box):
        d = self.mail / box / "new"
        return [p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()]

    def wait_stored(self, box, needle, timeout=15.0):
        found = th.wait_until(lambda: [m for m in self.stored(box) if needle in m], timeout=timeout)
        assert found, (f"nothing with {needle!r} in Postfix's Maildir {box}; maillog:\n"
                       f"{self.log()[-3000:]}")
        return found


# ----------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def base():
    b = th.make_base("tern-pf-it-")
    yield b
    if not os.environ.get("TERN_IT_KEEP"):
        th.rmtree(b)


@pytest.fixture(scope="module")
def ternd_addr():
    return own_addr()


@pytest.fixture(scope="module")
def postfix(base, ternd_addr):
    pf = Postfix(base, ternd_addr).start()
    yield pf
    left = pf.stop()
    assert not left, f"Postfix processes left after `postfix stop`: {left}"
    assert not pf.all_pids()
    bad = [ln for ln in pf.log().splitlines() if re.search(r": (fatal|panic|error):", ln)]
    assert not bad, bad


@pytest.fixture(scope="module")
def dns(postfix):
    d = FakeDNS().start()
    d.add("pf.example", "MX", (10, "mx1.pf.example"))
    d.add("mx1.pf.example", "A", postfix.tls_addr)
    d.add("pf-plain.example", "MX", (10, "mx1.pf-plain.example"))
    d.add("mx1.pf-plain.example", "A", postfix.plain_addr)
    d.add("pf-strict.example", "MX", (10, "mx1.pf-strict.example"))
    d.add("mx1.pf-strict.example", "A", postfix.tls_addr)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def ternd(module_factory, dns, ternd_addr):
    b = module_factory.base()
    users = th.write_users(b / "users", {ALICE: ALICE_PW})
    return module_factory.start(
        base=b, name="interop", listeners=["mx", f"{ternd_addr}:25 mx", "submissions"],
        users=str(users), dns_server=dns.addr, dns_timeout="300ms", queue_retry="1s",
        queue_retry_max="1s", smtp_connect_timeout="3s", smtp_command_timeout="10s",
        auth_failure_delay=0)


def deliveries(t, **match):
    out = []
    for ln in th.log_events(t.log(), "delivery"):
        if all(f"{k}={v}" in ln or f'{k}="{v}"' in ln for k, v in match.items()):
            out.append(ln)
    return out


def wait_delivery(t, timeout=15, **match):
    lines = th.wait_until(lambda: deliveries(t, **match), timeout=timeout)
    assert lines, f"no event=delivery with {match}; log tail:\n{t.log()[-3000:]}"
    return lines[-1]


def submit(t, rcpts, body, params=""):
    with th.smtps_client(t.port_for("submissions")) as c:
        c.ehlo()
        c.expect("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW), 235)
        qid = c.send_message(ALICE, rcpts, body, params=params)
        c.expect("QUIT", 221)
    return qid


def lf(b):
    return b.replace(b"\r\n", b"\n")


def unfold(headers):
    return re.sub(rb"\r?\n[ \t]+", b" ", headers)


def body_text(tag):
    # long lines, a dot line, a line starting with a dot, 8-bit-free
    return (f"Interop {tag}.\r\n" + "x" * 900 + "\r\n.\r\n..two dots\r\n"
            "From the start of a line\r\n" + "".join(f"line {i}\r\n" for i in range(200)))


# ----------------------------------------------------------------------------
# ternd -> Postfix

@pytest.mark.parametrize("mode", ["starttls", "plaintext"])
def test_ternd_delivers_to_postfix(ternd, postfix, mode):
    domain, box, addr = (("pf.example", "tls", postfix.tls_addr) if mode == "starttls"
                         else ("pf-plain.example", "plain", postfix.plain_addr))
    rcpt = f"bob@{domain}"
    subject = f"ternd to postfix {mode} {time.time_ns()}"
    msg = th.message(subject, body=body_text(mode), extra_headers=DATE, sender=ALICE, to=rcpt)
    qid = submit(ternd, [rcpt], msg)

    line = wait_delivery(ternd, qid=qid, to=rcpt, status="sent")
    assert f'relay="mx1.{domain}[{addr}]:25"' in line, line
    m = re.search(r'detail="250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)"', line)
    assert m, line
    pf_qid = m.group(1)
    tls = re.search(r'tls="([^"]*)"', line)
    assert tls, line

    (stored,) = postfix.wait_stored(box, f"Subject: {subject}\n".encode())
    # intact: the message as submitted, byte for byte (Postfix stores LF)
    assert stored.endswith(lf(msg)), stored[-500:]
    head = unfold(stored[:len(stored) - len(lf(msg))])
    assert head.startswith(f"Return-Path: <{ALICE}>\n".encode()), head
    assert f"Delivered-To: {rcpt}\n".encode() in head, head
    # Postfix's trace header, then ternd's own from the submission
    pf_recv = re.search(rb"Received: from " + re.escape(th.HOSTNAME.encode()) +
                        rb" \(unknown \[127\.0\.0\.1\]\)(.*?) by mx1\.pf\.example \(Postfix\) "
                        rb"with (ESMTPS?) id " + pf_qid.encode(), head)
    assert pf_recv, head
    assert re.search(rb"by " + re.escape(th.HOSTNAME.encode()) + rb" \(tern\) with ESMTPSA id "
                     + qid.encode(), head), head

    pat = (rf"postfix/virtual\[\d+\]: {pf_qid}: to=<{re.escape(rcpt)}>, relay=virtual, "
           r".*status=sent \(delivered to maildir\)")
    pf_log = postfix.wait_log(pat)
    assert re.search(pat, pf_log), pf_log[-3000:]
    if mode == "starttls":
        assert re.fullmatch(r"TLSv1\.[23] \S.*", tls.group(1)), line
        version = tls.group(1).split()[0]
        assert pf_recv.group(2) == b"ESMTPS", head
        assert f"(using {version} with cipher".encode() in pf_recv.group(1), head
        # Postfix logs the session's TLS, the same version as ternd says
        est = [ln for ln in pf_log.splitlines()
               if "TLS connection established from unknown[127.0.0.1]" in ln]
        assert est and any(f": {version} with cipher" in ln for ln in est), pf_log[-3000:]
        cipher = re.search(r": TLSv1\.[23] with cipher (\S+)", est[-1]).group(1)
        assert cipher in tls.group(1), (cipher, line)
    else:
        assert tls.group(1) == "plaintext", line
        assert pf_recv.group(2) == b"ESMTP", head
        assert b"(using TLS" not in pf_recv.group(1), head
    assert th.wait_queue_empty(ternd.data_dir)


# ----------------------------------------------------------------------------
# Postfix -> ternd

@pytest.mark.parametrize("mode", ["starttls", "plaintext"])
def test_postfix_delivers_to_ternd(ternd, postfix, mode):
    port = postfix.inj_tls if mode == "starttls" else postfix.inj_plain
    transport = "ternd-tls" if mode == "starttls" else "ternd-plain"
    sender = "carol@pf.example"
    subject = f"postfix to ternd {mode} {time.time_ns()}"
    msg = th.message(subject, body=body_text(mode), extra_headers=DATE, sender=sender, to=ALICE)
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.pf.example", timeout=15)
    try:
        assert s.sendmail(sender, [ALICE], msg) == {}
        s.quit()
    finally:
        s.close()

    def mine():
        return [m for m in th.read_mail(ternd.data_dir, "localhost", "alice")
                if f"Subject: {subject}\r\n".encode() in m]
    got = th.wait_until(mine, timeout=15)
    assert len(got) == 1, (got, postfix.log()[-3000:], ternd.log()[-3000:])
    content = got[0]
    assert content.endswith(msg), content[-500:]
    head = content[:len(content) - len(msg)]
    assert head.startswith(f"Return-Path: <{sender}>\r\nReceived: ".encode()), head
    # ternd's Received (the first), then Postfix's from the injection
    first, rest = head[len(f"Return-Path: <{sender}>\r\n"):].split(b"\r\nReceived: ", 1)
    first = unfold(first)
    proto = b"ESMTPS" if mode == "starttls" else b"ESMTP"
    m = re.match(rb"Received: from mx1\.pf\.example \(\[127\.0\.0\.1\]\)(.*) by " +
                 re.escape(th.HOSTNAME.encode()) + rb" \(tern\) with (\S+) id (\S+)", first)
    assert m, first
    assert m.group(2) == proto, first
    tern_qid = m.group(3).decode()
    assert re.match(rb"from client\.pf\.example \(unknown \[127\.0\.0\.1\]\)\s+by mx1\.pf\.example "
                    rb"\(Postfix\) with ESMTP id ", rest), rest

    pf_log = postfix.wait_log(rf"postfix/{transport}/smtp\[\d+\]: \w+: to=<{re.escape(ALICE)}>, "
                              rf".*status=sent .*queued as {tern_qid}\)")
    sent = [ln for ln in pf_log.splitlines()
            if f"postfix/{transport}/smtp[" in ln and f"to=<{ALICE}>" in ln and "status=sent" in ln
            and tern_qid in ln]
    assert sent, pf_log[-3000:]
    a = postfix.ternd_addr
    assert f"relay={a}[{a}]:25" in sent[0], sent[0]
    assert f"(250 2.0.0 Ok: queued as {tern_qid})" in sent[0], sent[0]
    est = [ln for ln in pf_log.splitlines()
           if f"postfix/{transport}/smtp[" in ln and "TLS connection established to" in ln]
    if mode == "starttls":
        assert re.search(rb"^ \(using TLSv1\.[23] with cipher \S+", m.group(1)), first
        assert est, pf_log[-3000:]
        version = re.search(r"TLSv1\.[23]", est[-1]).group(0)
        assert f"using {version}".encode() in m.group(1), (est[-1], first)
    else:
        assert m.group(1) == b"", first
        assert not est, est


def inject(postfix, sender, rcpts, msg, tls=True, mail_options=()):
    """smtplib to Postfix's injection listener, whose content_filter sends
    everything to ternd (with STARTTLS or without)."""
    port = postfix.inj_tls if tls else postfix.inj_plain
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.pf.example", timeout=15)
    try:
        refused = s.sendmail(sender, rcpts, msg, mail_options=list(mail_options))
        s.quit()
    finally:
        s.close()
    assert refused == {}, refused


def alice_mail(ternd, needle):
    return [m for m in th.read_mail(ternd.data_dir, "localhost", "alice") if needle in m]


# ----------------------------------------------------------------------------
# refusals: each side reports the other's words

def test_postfix_refusal_bounces_with_postfix_words(ternd, postfix):
    """Postfix refuses one of two recipients at RCPT (not in its virtual
    mailbox table): ternd delivers the other in the same transaction and
    bounces the refused one to alice with Postfix's reply."""
    subject = f"strict {time.time_ns()}"
    msg = th.message(subject, extra_headers=DATE, sender=ALICE,
                     to="bob@pf-strict.example, nobody@pf-strict.example")
    qid = submit(ternd, ["bob@pf-strict.example", "nobody@pf-strict.example"], msg)
    ok = wait_delivery(ternd, qid=qid, to="bob@pf-strict.example", status="sent")
    bad = wait_delivery(ternd, qid=qid, to="nobody@pf-strict.example", status="bounced")
    assert 'relay="mx1.pf-strict.example[' in ok and 'relay="mx1.pf-strict.example[' in bad
    assert "dsn=5.1.1" in bad, bad
    assert "User unknown in virtual mailbox table" in bad, bad
    (stored,) = postfix.wait_stored("strict", f"Subject: {subject}\n".encode())
    assert stored.endswith(lf(msg))
    pat = (r"(?:NOQUEUE|[0-9A-F]+): reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.1\.1 "
           r"<nobody@pf-strict\.example>")
    assert re.search(pat, postfix.wait_log(pat)), postfix.log()[-3000:]
    # the bounce, in alice's Maildir at ternd
    dsns = th.wait_until(lambda: alice_mail(ternd, b"nobody@pf-strict.example\r\nAction: failed")
                         or alice_mail(ternd, b"Final-Recipient: rfc822; nobody@pf-strict.example"),
                         timeout=15)
    assert len(dsns) == 1, dsns
    raw = dsns[0]
    assert raw.startswith(b"Return-Path: <>\r\n"), raw[:200]
    rep = parse_report(raw.split(b"\r\n", 1)[1])
    (r,) = rep["recipients"]
    assert r["action"] == "failed" and r["status"] == "5.1.1", r
    assert r["final_recipient"] == "nobody@pf-strict.example", r
    assert r["remote_mta"] == "mx1.pf-strict.example", r
    assert r["diagnostic"].startswith("550 5.1.1 <nobody@pf-strict.example>: Recipient address "
                                      "rejected: User unknown in virtual mailbox table"), r
    assert th.wait_queue_empty(ternd.data_dir)


def test_ternd_refusal_bounced_by_postfix_with_ternd_words(ternd, postfix):
    """ternd refuses an unknown local user at RCPT (550 5.1.1): Postfix
    delivers alice's copy and bounces ghost's to its sender, quoting ternd."""
    sender = "carol@pf.example"
    subject = f"ghost {time.time_ns()}"
    msg = th.message(subject, extra_headers=DATE, sender=sender, to="alice, ghost")
    inject(postfix, sender, [ALICE, "ghost@localhost"], msg, tls=False)
    got = th.wait_until(lambda: alice_mail(ternd, f"Subject: {subject}\r\n".encode()), timeout=15)
    assert len(got) == 1 and got[0].endswith(msg), got
    bounce = postfix.wait_stored("tls", b"Final-Recipient: rfc822; ghost@localhost")
    (raw,) = [b for b in bounce if subject.encode() in b]
    assert raw.startswith(b"Return-Path: <>\n"), raw[:200]
    (r,) = parse_dsn(th.to_crlf(raw))
    assert r["action"] == "failed" and r["status"] == "5.1.1", r
    assert r["final_recipient"] == "ghost@localhost", r
    assert r["diagnostic"] == "550 5.1.1 Recipient address rejected: no such user here", r
    a = re.escape(postfix.ternd_addr)
    pat = (r"postfix/ternd-plain/smtp\[\d+\]: \w+: to=<ghost@localhost>, "
           rf"relay={a}\[{a}\]:25, .*status=bounced \(host "
           rf"{a}\[{a}\] said: 550 5\.1\.1 Recipient address rejected: "
           r"no such user here \(in reply to RCPT TO command\)\)")
    assert re.search(pat, postfix.wait_log(pat)), postfix.log()[-3000:]
    # the RCPT refusal is in ternd's log with the words Postfix quoted
    assert [ln for ln in th.log_events(ternd.log(), "reply")
            if "code=550" in ln and "5.1.1" in ln], ternd.log()[-3000:]


# ----------------------------------------------------------------------------
# SMTPUTF8, 8BITMIME, a large message

def test_smtputf8_both_ways(ternd, postfix):
    """An internationalized address and an 8-bit UTF-8 body, through a
    real SMTPUTF8 server in each direction (RFC 6531)."""
    # ternd -> Postfix
    rcpt = "b\u00f8b@pf.example"
    subject = f"utf8 out {time.time_ns()}"
    msg = (f"From: <{ALICE}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n{DATE}"
           f"Message-ID: <utf8-out.{time.time_ns()}@localhost>\r\n\r\n"
           "Gr\u00fc\u00dfe, \u00e7a va? \u2713\r\n").encode()
    qid = submit(ternd, [rcpt], msg, params=" BODY=8BITMIME SMTPUTF8")
    line = wait_delivery(ternd, qid=qid, status="sent")
    assert 'relay="mx1.pf.example[' in line, line
    (stored,) = postfix.wait_stored("tls", f"Subject: {subject}\n".encode())
    assert stored.endswith(lf(msg)), stored[-300:]
    assert f"Delivered-To: {rcpt}\n".encode() in stored, stored[:600]
    assert re.search(rb"by mx1\.pf\.example \(Postfix\) with UTF8SMTPS id", unfold(stored)), \
        stored[:600]

    # Postfix -> ternd
    sender = "c\u00e4rol@pf.example"
    subject = f"utf8 in {time.time_ns()}"
    msg = (f"From: <{sender}>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n{DATE}"
           f"Message-ID: <utf8-in.{time.time_ns()}@pf.example>\r\n\r\n"
           "\u00bfQu\u00e9 tal? \u65e5\u672c\r\n").encode()
    inject(postfix, sender, [ALICE], msg, tls=True, mail_options=("SMTPUTF8", "BODY=8BITMIME"))
    got = th.wait_until(lambda: alice_mail(ternd, f"Subject: {subject}\r\n".encode()), timeout=15)
    assert len(got) == 1, (postfix.log()[-2000:], ternd.log()[-2000:])
    assert got[0].startswith(f"Return-Path: <{sender}>\r\nReceived: ".encode()), got[0][:300]
    assert got[0].endswith(msg)
    first = unfold(got[0].split(b"\r\n", 1)[1].split(b"\r\nReceived: ", 1)[0])
    assert re.search(rb"\(tern\) with UTF8SMTPS id ", first), first


def test_large_message_both_ways(ternd, postfix):
    """2 MB each way over TLS, byte for byte."""
    blob = "".join(f"{i:07d} " + "abcdefghij" * 7 + "\r\n" for i in range(26000))
    subject = f"large out {time.time_ns()}"
    msg = th.message(subject, body=blob, extra_headers=DATE, sender=ALICE, to="bob@pf.example")
    assert len(msg) > 2_000_000
    qid = submit(ternd, ["bob@pf.example"], msg)
    line = wait_delivery(ternd, qid=qid, status="sent")
    assert 'tls="TLSv1.' in line, line
    (stored,) = postfix.wait_stored("tls", f"Subject: {subject}\n".encode())
    assert stored.endswith(lf(msg))

    sender = "carol@pf.example"
    subject = f"large in {time.time_ns()}"
    msg = th.message(subject, body=blob, extra_headers=DATE, sender=sender, to=ALICE)
    inject(postfix, sender, [ALICE], msg, tls=True)
    got = th.wait_until(lambda: alice_mail(ternd, f"Subject: {subject}\r\n".encode()), timeout=15)
    assert len(got) == 1 and got[0].endswith(msg), postfix.log()[-2000:]
    assert b"with ESMTPS id" in unfold(got[0][:2000])


def test_forty_recipients_in_one_transaction(ternd, postfix):
    """ternd gives Postfix all recipients of one domain in one transaction
    (RFC 5321 3.3), pipelined; Postfix files forty copies."""
    rcpts = [f"user{i:02d}@pf.example" for i in range(40)]
    subject = f"forty {time.time_ns()}"
    msg = th.message(subject, extra_headers=DATE, sender=ALICE, to="undisclosed-recipients:;")
    qid = submit(ternd, rcpts, msg)
    th.wait_until(lambda: len(deliveries(ternd, qid=qid, status="sent")) == 40, timeout=15)
    lines = deliveries(ternd, qid=qid)
    assert len(lines) == 40 and all("status=sent" in ln for ln in lines), lines
    pf_qids = {re.search(r"queued as (\w+)", ln).group(1) for ln in lines}
    assert len(pf_qids) == 1, pf_qids           # one message at Postfix
    stored = th.wait_until(lambda: len(postfix.wait_stored("tls", subject.encode())) == 40 and
                           postfix.wait_stored("tls", subject.encode()), timeout=15)
    assert stored and all(m.endswith(lf(msg)) for m in stored)
    assert {re.search(rb"Delivered-To: (\S+)\n", m).group(1).decode() for m in stored} == set(rcpts)
    (pf_qid,) = pf_qids
    pat = (rf"postfix/qmgr\[\d+\]: {pf_qid}: from=<{re.escape(ALICE)}>, size=\d+, "
           r"nrcpt=40 \(queue active\)")
    assert re.search(pat, postfix.wait_log(pat)), postfix.log()[-3000:]



def test_smtputf8_flag_on_ascii_message_to_postfix_without_smtputf8(ternd, postfix):
    """Postfix's listener for pf-plain.example does not offer SMTPUTF8
    (smtputf8_enable=no), like many MXs. A message submitted with SMTPUTF8
    whose envelope and header fields are all ASCII (8-bit body only, with
    BODY=8BITMIME) is not an internationalized message: RFC 6531 3.5 does
    not forbid sending it there, and Postfix itself delivers such mail. It
    must arrive, not bounce 5.6.7."""
    rcpt = "bob@pf-plain.example"
    subject = f"smtputf8 ascii {time.time_ns()}"
    msg = (f"From: <{ALICE}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n{DATE}"
           f"Message-ID: <u8a.{time.time_ns()}@localhost>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           "Gr\u00fc\u00dfe\r\n").encode()
    ehlo = smtplib.SMTP(postfix.plain_addr, 25, timeout=10)
    try:
        ehlo.ehlo("probe.example")
        assert not ehlo.has_extn("smtputf8"), ehlo.esmtp_features
    finally:
        ehlo.close()
    qid = submit(ternd, [rcpt], msg, params=" SMTPUTF8 BODY=8BITMIME")
    lines = th.wait_until(lambda: [ln for ln in deliveries(ternd, qid=qid)
                                   if "status=deferred" not in ln], timeout=15)
    assert lines and "status=sent" in lines[-1], (
        f"an all-ASCII message flagged SMTPUTF8 was not delivered: {lines or ternd.log()[-2000:]}")
    (stored,) = postfix.wait_stored("plain", f"Subject: {subject}\n".encode())
    assert stored.endswith(lf(msg))


def test_utf8_recipient_to_postfix_without_smtputf8_bounces(ternd, postfix):
    """A UTF-8 address does need SMTPUTF8: not sent, bounced 5.6.7 to alice."""
    rcpt = "b\u00f8b@pf-plain.example"
    subject = f"utf8 rcpt no smtputf8 {time.time_ns()}"
    msg = (f"From: <{ALICE}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n{DATE}\r\nhej\r\n").encode()
    qid = submit(ternd, [rcpt], msg, params=" SMTPUTF8")
    line = wait_delivery(ternd, qid=qid, status="bounced")
    assert "dsn=5.6.7" in line, line
    dsns = th.wait_until(lambda: alice_mail(ternd, subject.encode()) and
                         [m for m in alice_mail(ternd, subject.encode()) if m.startswith(b"Return-Path: <>")],
                         timeout=15)
    assert dsns, ternd.log()[-2000:]
    (r,) = parse_dsn(dsns[0].split(b"\r\n", 1)[1])
    assert r["action"] == "failed" and r["status"] == "5.6.7", r
    assert not postfix.stored("plain") or not any(subject.encode() in m for m in postfix.stored("plain"))
