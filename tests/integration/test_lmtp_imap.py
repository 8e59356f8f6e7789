"""The complete system of the port table (issue 4): SMTP in to ternd, LMTP
from ternd to a real Dovecot (dovecot-lmtpd), IMAP out of that Dovecot
(dovecot-imapd), read with Python's imaplib.

Dovecot runs from its own configuration in a temporary directory (base_dir,
state_dir, log, passwd-file and the mail store all there; /etc/dovecot and
the system's Dovecot are never touched), started as `dovecot -c CONF -F` and
stopped by its PID (SIGTERM, SIGKILL after 5 s, descendants too). Its
passwd-file is both passdb and userdb: alice@localhost exists, bob@localhost
does not (ternd's users file has both, so ternd accepts mail for bob and
Dovecot refuses it at LMTP RCPT); carol@localhost starts with a 1 KiB
quota (quota plugin, quota_full_tempfail = yes: a 452 4.2.2 for her alone
after the dot). ternd resolves through a FakeDNS with no records, so nothing
ever leaves the machine.
"""

import imaplib
import os
import pwd
import re
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

import tern_harness as th
from dsn_check import parse_report
from fake_dns import FakeDNS

DOVECOT = "/usr/sbin/dovecot"
LMTPD = "/usr/lib/dovecot/lmtp"
IMAPD = "/usr/lib/dovecot/imap"

ALICE, ALICE_PW = "alice@localhost", "Imap-Alice-pw1"
BOB, BOB_PW = "bob@localhost", "Imap-Bob-pw1"          # ternd knows bob, Dovecot does not
CAROL, CAROL_PW = "carol@localhost", "Imap-Carol-pw1"  # a 1 KiB quota at first
CAROL_QUOTA = {CAROL: "userdb_quota_rule=*:storage=1K"}
SENDER = "someone@remote.example"

pytestmark = [
    pytest.mark.skipif(not all(os.path.exists(p) for p in (DOVECOT, LMTPD, IMAPD)),
                       reason="dovecot-core, dovecot-lmtpd and dovecot-imapd are needed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Dovecot with mail users needs root"),
]


# ----------------------------------------------------------------------------
# a private Dovecot with LMTP and IMAP

def _user(*names):
    for n in names:
        try:
            return pwd.getpwnam(n)
        except KeyError:
            pass
    return pwd.getpwnam("nobody")


class MailDovecot:
    """Dovecot with lmtp (UNIX socket in base_dir, and 127.0.0.1:lmtp_port)
    and imap (127.0.0.1:imap_port), a passwd-file of {user: password} as
    passdb and userdb, Maildirs under DIR/mail/USER owned by nobody."""

    def __init__(self, base, users, name="dovecot", extra=None):
        self.dir = Path(base) / name
        self.dir.mkdir(mode=0o755)
        os.chmod(self.dir, 0o755)
        self.run_dir = self.dir / "run"
        self.mail_dir = self.dir / "mail"
        self.conf = self.dir / "dovecot.conf"
        self.log_path = self.dir / "dovecot.log"
        self.passwd = self.dir / "passwd"
        self.imap_port = th.free_port()
        self.lmtp_port = th.free_port()
        self.proc = None
        self.pids = set()
        internal = _user("dovecot")
        login = _user("dovenull", "dovecot")
        self.mail_dir.mkdir(mode=0o755)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail_dir, nobody.pw_uid, nobody.pw_gid)
        self.hashes = {u: th.crypt_hash(pw) for u, pw in users.items()}
        self.write_passwd(extra or {})
        self.conf.write_text(
            "# written by tests/integration/test_lmtp_imap.py\n"
            f"base_dir = {self.run_dir}\n"
            f"state_dir = {self.dir / 'state'}\n"
            f"log_path = {self.log_path}\n"
            f"info_log_path = {self.log_path}\n"
            "protocols = lmtp imap\n"
            "ssl = no\n"
            "disable_plaintext_auth = no\n"
            "auth_mechanisms = plain\n"
            f"default_internal_user = {internal.pw_name}\n"
            f"default_login_user = {login.pw_name}\n"
            f"mail_location = maildir:{self.mail_dir}/%u\n"
            # quota (per user, from the passwd-file); a full mailbox is a
            # temporary failure (452 4.2.2), as on most real servers
            "mail_plugins = $mail_plugins quota\n"
            "quota_full_tempfail = yes\n"
            "plugin {\n"
            "  quota = maildir:User quota\n"
            "}\n"
            "passdb {\n"
            "  driver = passwd-file\n"
            f"  args = scheme=SHA512-CRYPT {self.passwd}\n"
            "}\n"
            "userdb {\n"
            "  driver = passwd-file\n"
            f"  args = {self.passwd}\n"
            "}\n"
            "service lmtp {\n"
            "  unix_listener lmtp {\n"
            "    mode = 0666\n"
            "  }\n"
            "  inet_listener lmtp {\n"
            "    address = 127.0.0.1\n"
            f"    port = {self.lmtp_port}\n"
            "  }\n"
            "}\n"
            "service imap-login {\n"
            "  inet_listener imap {\n"
            "    address = 127.0.0.1\n"
            f"    port = {self.imap_port}\n"
            "  }\n"
            "  inet_listener imaps {\n"
            "    port = 0\n"
            "  }\n"
            "}\n"
            # no auth penalty (test_dovecot.py says why)
            "service anvil {\n"
            "  unix_listener anvil-auth-penalty {\n"
            "    mode = 0\n"
            "  }\n"
            "}\n")

    def write_passwd(self, extra):
        """The passwd-file (passdb and userdb; Dovecot reads it again when it
        changes): extra = {user: "userdb_quota_rule=*:storage=1K"}."""
        nobody = pwd.getpwnam("nobody")
        internal = _user("dovecot")
        tmp = self.passwd.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            for user, h in self.hashes.items():
                # user:password:uid:gid:gecos:home:shell:extra_fields
                f.write(f"{user}:{{SHA512-CRYPT}}{h}:{nobody.pw_uid}:{nobody.pw_gid}::"
                        f"{self.mail_dir / user}::{extra.get(user, '')}\n")
        os.chown(tmp, internal.pw_uid, internal.pw_gid)
        os.replace(tmp, self.passwd)

    @property
    def lmtp_socket(self):
        return str(self.run_dir / "lmtp")

    def _greets(self, family, addr, prefix):
        with socket.socket(family) as s:
            s.settimeout(2)
            s.connect(addr)
            data = b""
            while b"\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.startswith(prefix)

    def start(self, timeout=10.0):
        self._out = open(self.dir / "dovecot.stdout", "ab")
        self.proc = subprocess.Popen([DOVECOT, "-c", str(self.conf), "-F"],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.proc.returncode}: "
                                   f"{self.log()[-3000:]}")
            try:
                if (self._greets(socket.AF_UNIX, self.lmtp_socket, b"220 ")
                        and self._greets(socket.AF_INET, ("127.0.0.1", self.lmtp_port), b"220 ")
                        and self._greets(socket.AF_INET, ("127.0.0.1", self.imap_port), b"* OK")):
                    self.pids.update(th.descendants(self.proc.pid))
                    return self
            except OSError as e:
                last = e
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot not ready after {timeout}s ({last!r}): {self.log()[-3000:]}")

    def all_pids(self):
        if self.proc is not None and self.proc.poll() is None:
            self.pids.update(th.descendants(self.proc.pid))
        return {p for p in self.pids if th.alive(p)}

    def stop(self, timeout=5.0):
        """SIGTERM the master by PID; SIGKILL it and its children after timeout."""
        if self.proc is None:
            return
        pids = self.all_pids()
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        th.wait_until(lambda: not any(th.alive(p) for p in pids), timeout=timeout)
        left = [p for p in pids if th.alive(p)]
        if self.proc.poll() is None:
            left.append(self.proc.pid)
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if not self._out.closed:
            self._out.close()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- IMAP
    def imap(self, user=ALICE, password=ALICE_PW):
        m = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        try:
            typ, _ = m.login(user, password)
            assert typ == "OK"
        except BaseException:
            m.shutdown()
            raise
        return m


def imap_messages(dc, user=ALICE, password=ALICE_PW):
    """Every message in user's INBOX, as fetched over IMAP (BODY.PEEK[])."""
    m = dc.imap(user, password)
    try:
        typ, data = m.select("INBOX", readonly=True)
        assert typ == "OK", data
        typ, data = m.search(None, "ALL")
        assert typ == "OK", data
        out = []
        for num in data[0].split():
            typ, parts = m.fetch(num, "(BODY.PEEK[])")
            assert typ == "OK", parts
            out.extend(p[1] for p in parts if isinstance(p, tuple))
        m.logout()
        return out
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def wait_imap(dc, needle, timeout=15.0, user=ALICE, password=ALICE_PW):
    """The messages in user's INBOX that contain needle (polled over IMAP)."""
    found = []

    def look():
        found[:] = [msg for msg in imap_messages(dc, user, password) if needle in msg]
        return found
    th.wait_until(look, timeout=timeout, interval=0.2)
    return found


# ----------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def dc_base():
    base = th.make_base("tern-lmtp-it-")
    yield base
    if not os.environ.get("TERN_IT_KEEP"):
        th.rmtree(base)


@pytest.fixture(scope="module")
def dovecot(dc_base):
    d = MailDovecot(dc_base, {ALICE: ALICE_PW, CAROL: CAROL_PW}, extra=CAROL_QUOTA)
    d.start()
    yield d
    d.stop()
    assert not d.all_pids(), "dovecot processes left after stop"
    for pw in (ALICE_PW, BOB_PW, CAROL_PW):
        assert pw not in d.log(), "a password in Dovecot's log"


@pytest.fixture(scope="module")
def dns():
    d = FakeDNS().start()           # no records at all: every domain is NXDOMAIN
    yield d
    d.stop()


def start_ternd(factory, dns, lmtp, name="ternd"):
    base = factory.base()
    users = th.write_users(base / "users", {ALICE: ALICE_PW, BOB: BOB_PW, CAROL: CAROL_PW})
    return factory.start(base=base, name=name, users=str(users), deliver=f"lmtp {lmtp}",
                         dns_server=dns.addr, dns_timeout="300ms", queue_retry="1s",
                         queue_retry_max="1s", smtp_connect_timeout="2s",
                         smtp_command_timeout="5s")


@pytest.fixture(scope="module")
def ternd_unix(module_factory, dns, dovecot):
    return start_ternd(module_factory, dns, f"unix:{dovecot.lmtp_socket}", name="lmtp-unix")


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


def send_raw(t, rcpts, msg, sender=SENDER):
    """Send over ternd's port 25 role with the harness client; the queue id."""
    with th.SMTPClient(t.port, timeout=15) as c:
        c.ehlo("client.remote.example")
        qid = c.send_message(sender, rcpts, msg)
        c.expect("QUIT", 221)
    return qid


def the_message(subject, to=ALICE):
    return th.message(subject, body="Hello over LMTP.\r\nA second line.\r\n..dot-stuffed line\r\n",
                      extra_headers="Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n",
                      sender=SENDER, to=to)


# ----------------------------------------------------------------------------
# tests

def test_smtp_in_lmtp_to_dovecot_imap_out(ternd_unix, dovecot):
    """smtplib -> ternd (port 25 role) -> LMTP over Dovecot's UNIX socket ->
    Maildir -> IMAP: the message read back is the one sent, after the trace
    headers of ternd and Dovecot."""
    t0 = time.monotonic()
    msg = the_message("lmtp unix imap")
    off = len(ternd_unix.log())
    s = smtplib.SMTP("127.0.0.1", ternd_unix.port, local_hostname="client.remote.example",
                     timeout=15)
    try:
        assert s.sendmail(SENDER, [ALICE], msg) == {}
        s.quit()
    finally:
        s.close()
    found = wait_imap(dovecot, b"Subject: lmtp unix imap\r\n")
    assert len(found) == 1, (found, ternd_unix.log()[off:][-3000:], dovecot.log()[-2000:])
    got = found[0]
    # over IMAP the message is CR LF text; the message as sent is its tail
    assert got.endswith(msg), got[-400:]
    head = got[:len(got) - len(msg)]
    assert head.startswith(f"Return-Path: <{SENDER}>\r\n".encode()), head
    assert f"Delivered-To: {ALICE}\r\n".encode() in head, head
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", head)
    assert re.search(rb"Received: from \S+ .*\bwith LMTP\b", unfolded), head      # Dovecot's
    assert re.search(rb"Received: from client\.remote\.example \(\[127\.0\.0\.1\]\) "
                     rb"by " + th.HOSTNAME.encode() + rb" \(tern\) with ESMTP\b", unfolded), head
    line = wait_delivery(ternd_unix, to=ALICE, status="sent")
    assert f'relay="lmtp[unix:{dovecot.lmtp_socket}]"' in line, line
    assert "detail=\"250 2.0.0" in line and "Saved" in line, line
    assert f"from={SENDER}" in line or f'from="{SENDER}"' in line, line
    assert "saved mail to INBOX" in dovecot.log()
    assert th.wait_queue_empty(ternd_unix.data_dir)
    # nothing went to ternd's own Maildir
    assert not th.all_mail_files(ternd_unix.data_dir)
    assert time.monotonic() - t0 < 20


def test_per_recipient_result_alice_delivered_bob_bounced(ternd_unix, dovecot, dns):
    """One message for alice (a Dovecot user) and bob (known to ternd only):
    Dovecot's 550 5.1.1 at RCPT bounces bob alone; alice's copy is saved and
    readable over IMAP; the bounce goes to the (remote) sender, whose domain
    does not exist here, so the bounce itself is dropped."""
    msg = the_message("lmtp split alice bob", to=f"{ALICE}, {BOB}")
    qid = send_raw(ternd_unix, [ALICE, BOB], msg)
    bob_line = wait_delivery(ternd_unix, qid=qid, to=BOB, status="bounced")
    alice_line = wait_delivery(ternd_unix, qid=qid, to=ALICE, status="sent")
    assert "dsn=5.1.1" in bob_line, bob_line
    assert "550 5.1.1" in bob_line and "User doesn't exist" in bob_line, bob_line
    assert f'relay="lmtp[unix:{dovecot.lmtp_socket}]"' in bob_line, bob_line
    assert f'relay="lmtp[unix:{dovecot.lmtp_socket}]"' in alice_line, alice_line
    # exactly one outcome each: bob bounced once, alice never bounced or deferred
    assert len(deliveries(ternd_unix, qid=qid, to=BOB)) == 1, deliveries(ternd_unix, qid=qid)
    assert len(deliveries(ternd_unix, qid=qid, to=ALICE)) == 1, deliveries(ternd_unix, qid=qid)
    # one DSN, for bob only, to the sender
    dsn = th.wait_until(lambda: [ln for ln in th.log_events(ternd_unix.log(), "dsn")
                                 if f" qid={qid} " in ln])
    assert dsn and len(dsn) == 1, ternd_unix.log()[-3000:]
    assert "action=failed" in dsn[0] and "recipients=1" in dsn[0], dsn[0]
    assert f'to="{SENDER}"' in dsn[0], dsn[0]
    dsn_qid = re.search(r"dsn_qid=(\S+)", dsn[0]).group(1)
    # the DSN is for remote.example, which does not exist (FakeDNS: NXDOMAIN)
    lost = wait_delivery(ternd_unix, qid=dsn_qid, to=SENDER, status="bounced")
    assert "dsn=5.1.2" in lost, lost
    # a bounce of a bounce is never made (null sender)
    time.sleep(0.5)
    assert not [ln for ln in th.log_events(ternd_unix.log(), "dsn") if f" qid={dsn_qid} " in ln]
    assert th.wait_queue_empty(ternd_unix.data_dir)
    found = wait_imap(dovecot, b"Subject: lmtp split alice bob\r\n")
    assert len(found) == 1 and found[0].endswith(msg), found


def test_bounce_to_local_sender_goes_over_lmtp_too(ternd_unix, dovecot):
    """alice@localhost writes to alice and bob: the DSN for bob goes to alice
    through the same LMTP socket, and alice reads it over IMAP: a
    multipart/report with bob's 5.1.1 and Dovecot's own words."""
    msg = th.message("lmtp local bounce", body="to bob who is not there\r\n",
                     sender=ALICE, to=f"{ALICE}, {BOB}")
    qid = send_raw(ternd_unix, [ALICE, BOB], msg, sender=ALICE)
    wait_delivery(ternd_unix, qid=qid, to=BOB, status="bounced")
    dsn = th.wait_until(lambda: [ln for ln in th.log_events(ternd_unix.log(), "dsn")
                                 if f" qid={qid} " in ln])
    assert dsn, ternd_unix.log()[-3000:]
    dsn_qid = re.search(r"dsn_qid=(\S+)", dsn[0]).group(1)
    line = wait_delivery(ternd_unix, qid=dsn_qid, to=ALICE, status="sent")
    assert f'relay="lmtp[unix:{dovecot.lmtp_socket}]"' in line, line
    assert "from=<>" in line or 'from=""' in line or "from= " in line, line
    reports = wait_imap(dovecot, b"Final-Recipient: rfc822; bob@localhost")
    assert len(reports) == 1, reports
    raw = reports[0]
    assert raw.startswith(b"Return-Path: <>\r\n"), raw[:300]
    rep = parse_report(raw)
    assert ALICE in rep["to"], rep["to"]
    (r,) = rep["recipients"]
    assert r["action"] == "failed" and r["status"] == "5.1.1", r
    assert r["final_recipient"] == BOB, r
    assert r["diagnostic"] and "550 5.1.1" in r["diagnostic"], r
    assert "User doesn't exist" in r["diagnostic"], r
    # and alice's own copy of the original arrived once
    assert len(wait_imap(dovecot, b"Subject: lmtp local bounce\r\n")) >= 1
    assert th.wait_queue_empty(ternd_unix.data_dir)


def test_tempfail_after_data_retries_only_that_recipient(ternd_unix, dovecot):
    """RFC 2033 4.2: after the dot an LMTP server answers for each recipient.
    Carol's mailbox is over quota (452 4.2.2 after DATA) while alice's copy
    is saved (250): carol alone is deferred and retried, alice's copy is
    never delivered a second time; once the quota is lifted (Dovecot reads
    its passwd-file again) carol gets exactly one copy too. No bounce.
    (The Dovecot is the module's: carol keeps the large quota afterwards.)"""
    blob = "".join(f"quota line {i:04d} " + "q" * 60 + "\r\n" for i in range(60))   # > 1 KiB
    msg = th.message("lmtp quota tempfail", body=blob, sender=SENDER, to=f"{ALICE}, {CAROL}",
                     extra_headers="Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n")
    try:
        qid = send_raw(ternd_unix, [ALICE, CAROL], msg)
        alice_line = wait_delivery(ternd_unix, qid=qid, to=ALICE, status="sent")
        first = wait_delivery(ternd_unix, qid=qid, to=CAROL, status="deferred")
        assert "dsn=4.2.2" in first and "452 4.2.2" in first and "Quota exceeded" in first, first
        assert "attempt=1" in first and "attempt=1" in alice_line, (first, alice_line)
        # at least one retry for carol alone while the quota stays
        again = wait_delivery(ternd_unix, qid=qid, to=CAROL, status="deferred", attempt=2)
        assert "452 4.2.2" in again, again
    finally:
        # carol: room enough (a Maildir++ quota with no rule would keep the
        # old limit from the maildirsize file)
        dovecot.write_passwd({CAROL: "userdb_quota_rule=*:storage=100M"})
    wait_delivery(ternd_unix, qid=qid, to=CAROL, status="sent")
    assert th.wait_queue_empty(ternd_unix.data_dir)
    lines = deliveries(ternd_unix, qid=qid, to=ALICE)
    assert len(lines) == 1, lines                   # alice: one attempt, one success
    assert len(wait_imap(dovecot, b"Subject: lmtp quota tempfail\r\n")) == 1
    carol = wait_imap(dovecot, b"Subject: lmtp quota tempfail\r\n", user=CAROL, password=CAROL_PW)
    assert len(carol) == 1 and carol[0].endswith(msg), carol
    time.sleep(1.5)                                 # a further retry would show up now
    assert len(imap_messages(dovecot)) == len(set(imap_messages(dovecot)))
    assert len(wait_imap(dovecot, b"Subject: lmtp quota tempfail\r\n")) == 1
    assert len(wait_imap(dovecot, b"Subject: lmtp quota tempfail\r\n", user=CAROL,
                         password=CAROL_PW)) == 1
    assert not [ln for ln in th.log_events(ternd_unix.log(), "dsn") if f" qid={qid} " in ln]


def test_replies_after_dot_follow_the_accepted_recipients(ternd_unix, dovecot):
    """Bob (refused at RCPT) comes first: after the dot Dovecot answers for
    alice and carol only, in their order; each reply must land on its own
    recipient. A 3 MB message, compared byte for byte over IMAP."""
    dovecot.write_passwd({CAROL: "userdb_quota_rule=*:storage=100M"})
    blob = "".join(f"{i:07d} " + "lmtp-big-" * 8 + "\r\n" for i in range(38000))
    msg = the_message("lmtp order big", to=f"{BOB}, {ALICE}, {CAROL}").replace(
        b"Hello over LMTP.", blob.encode() + b"Hello over LMTP.")
    assert len(msg) > 3_000_000
    qid = send_raw(ternd_unix, [BOB, ALICE, CAROL], msg)
    a = wait_delivery(ternd_unix, qid=qid, to=ALICE, status="sent")
    c = wait_delivery(ternd_unix, qid=qid, to=CAROL, status="sent")
    b = wait_delivery(ternd_unix, qid=qid, to=BOB, status="bounced")
    assert f"<{ALICE}>" in a and f"<{CAROL}>" in c and f"<{BOB}>" in b, (a, c, b)
    got = wait_imap(dovecot, b"Subject: lmtp order big\r\n")
    assert len(got) == 1 and got[0].endswith(msg)
    got = wait_imap(dovecot, b"Subject: lmtp order big\r\n", user=CAROL, password=CAROL_PW)
    assert len(got) == 1 and got[0].endswith(msg)
    assert th.wait_queue_empty(ternd_unix.data_dir)


def test_smtputf8_flag_on_an_ascii_message_is_delivered(ternd_unix, dovecot):
    """Dovecot 2.3's LMTP (Debian 12) does not offer SMTPUTF8. A client may
    say SMTPUTF8 for a message whose envelope and header fields are all
    ASCII (only the body is 8-bit, declared BODY=8BITMIME): that message is
    not an "internationalized message", and RFC 6531 3.5 forbids sending
    only those to a server without SMTPUTF8. It must be delivered (without
    the parameter), as Postfix 3.7's lmtp(8) does with the same message and
    the same Dovecot -- not bounced 5.6.7."""
    msg = ("From: <someone@remote.example>\r\nTo: <alice@localhost>\r\n"
           "Subject: lmtp smtputf8 ascii\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           f"Message-ID: <smtputf8-ascii.{time.time_ns()}@remote.example>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n"
           "Gr\u00fc\u00dfe aus K\u00f6ln\r\n").encode()
    with th.SMTPClient(ternd_unix.port, timeout=15) as c:
        c.ehlo("client.remote.example")
        qid = c.send_message(SENDER, [ALICE], msg, params=" SMTPUTF8 BODY=8BITMIME")
        c.expect("QUIT", 221)
    line = th.wait_until(lambda: [ln for ln in deliveries(ternd_unix, qid=qid, to=ALICE)
                                  if "status=deferred" not in ln], timeout=15)
    assert line and "status=sent" in line[-1], (
        "an all-ASCII message flagged SMTPUTF8 was not delivered over LMTP: "
        f"{line[-1] if line else ternd_unix.log()[-2000:]}")
    found = wait_imap(dovecot, b"Subject: lmtp smtputf8 ascii\r\n")
    assert len(found) == 1 and found[0].endswith(msg), found


def test_utf8_sender_bounces_when_dovecot_lacks_smtputf8(ternd_unix, dovecot):
    """A UTF-8 envelope address does need SMTPUTF8: ternd may not hand the
    message to Dovecot 2.3's LMTP, and bounces it 5.6.7 (as Postfix does)."""
    sender = "j\u00f6rg@remote.example"
    msg = (f"From: <{sender}>\r\nTo: <alice@localhost>\r\nSubject: lmtp utf8 sender\r\n"
           "\r\nhallo\r\n").encode()
    with th.SMTPClient(ternd_unix.port, timeout=15) as c:
        c.ehlo("client.remote.example")
        qid = c.send_message(sender, [ALICE], msg, params=" SMTPUTF8")
        c.expect("QUIT", 221)
    line = wait_delivery(ternd_unix, qid=qid, to=ALICE, status="bounced")
    assert "dsn=5.6.7" in line and "SMTPUTF8" in line, line
    assert th.wait_until(lambda: [ln for ln in th.log_events(ternd_unix.log(), "dsn")
                                  if f" qid={qid} " in ln and "action=failed" in ln])
    assert not wait_imap(dovecot, b"Subject: lmtp utf8 sender\r\n", timeout=0.5)


def test_lmtp_over_tcp(module_factory, dns, dovecot):
    """`deliver lmtp 127.0.0.1:PORT`: the same through Dovecot's inet listener."""
    t = start_ternd(module_factory, dns, f"127.0.0.1:{dovecot.lmtp_port}", name="lmtp-tcp")
    msg = the_message("lmtp tcp imap")
    qid = send_raw(t, [ALICE], msg)
    line = wait_delivery(t, qid=qid, to=ALICE, status="sent")
    assert f"[127.0.0.1]:{dovecot.lmtp_port}" in line, line
    found = wait_imap(dovecot, b"Subject: lmtp tcp imap\r\n")
    assert len(found) == 1 and found[0].endswith(msg), found
    assert th.wait_queue_empty(t.data_dir)


def test_dovecot_down_defers_then_delivers(ternd_factory, dns, dc_base):
    """No LMTP server: the message waits (deferred, 4.x.x) and goes out once
    Dovecot is there; nothing is bounced."""
    dc = MailDovecot(dc_base, {ALICE: ALICE_PW}, name="dovecot-late")
    t = start_ternd(ternd_factory, dns, f"unix:{dc.lmtp_socket}", name="lmtp-late")
    try:
        msg = the_message("lmtp late imap")
        qid = send_raw(t, [ALICE], msg)
        line = wait_delivery(t, qid=qid, to=ALICE, status="deferred")
        assert "dsn=4." in line, line
        dc.start()
        wait_delivery(t, qid=qid, to=ALICE, status="sent", timeout=15)
        found = wait_imap(dc, b"Subject: lmtp late imap\r\n")
        assert len(found) == 1 and found[0].endswith(msg), found
        assert not deliveries(t, qid=qid, status="bounced")
        assert not th.log_events(t.log(), "dsn")
    finally:
        dc.stop()
        assert not dc.all_pids()
