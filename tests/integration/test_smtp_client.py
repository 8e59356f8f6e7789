"""The SMTP/LMTP client (src/deliver/smtp_client.c) against real servers, driven
through build/test/smtpc_probe (tests/unit/smtpc_probe.c, one JSON object per line):

* Postfix's smtp-sink (/usr/sbin/smtp-sink): SMTP and LMTP, over TCP and a UNIX
  socket, with its switches for no ESMTP (HELO fallback), no PIPELINING, no
  8BITMIME, refused MAIL or RCPT, a 421 at DATA; each message it takes is dumped
  to a file and compared with what was sent (dot-stuffing undone by the server,
  bare LF turned into a line end by us, DSN and BODY parameters).
* ternd itself: STARTTLS with its self-signed certificate (not verified, then
  verified against it as the CA, then a wrong name), implicit TLS on a
  submissions listener, AUTH PLAIN on submission, delivery to its Maildir.
* Dovecot's LMTP server (dovecot-lmtpd), when installed: one reply per
  recipient after the message, over TCP and over its UNIX socket.

Every server runs from files in its own temporary directory and is stopped by
its PID (SIGTERM, SIGKILL after 5 s, descendants too); every probe run has a
timeout. smtp-sink and Dovecot tests skip when the program is missing.
"""

import json
import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import tern_harness as th

PROBE = Path(th.TERND).parent / "smtpc_probe"
SMTP_SINK = "/usr/sbin/smtp-sink"
DOVECOT = "/usr/sbin/dovecot"
DOVECOT_LMTP = "/usr/lib/dovecot/lmtp"

pytestmark = pytest.mark.skipif(not PROBE.exists(),
                                reason=f"{PROBE} not built (make build/test/smtpc_probe)")


# ----------------------------------------------------------------------------
# the probe

def probe(*args, timeout=60):
    """Run smtpc_probe; returns (exit code, events by kind, all events)."""
    p = subprocess.run([str(PROBE)] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    err = p.stderr.decode(errors="replace")
    for pat in th.SANITIZER_PATTERNS:
        assert pat not in err, err
    events = [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]
    kinds = {}
    for e in events:
        kinds.setdefault(e["event"], []).append(e)
    assert kinds.get("closed"), f"the probe never closed: {events} {err}"
    return p.returncode, kinds, events


def rcpt_codes(kinds, msg=1):
    return {r["rcpt"]: r["code"] for r in kinds.get("rcpt", []) if r["msg"] == msg}


def _stop_pid_tree(proc, timeout=5.0):
    if proc is None:
        return
    pids = set(th.descendants(proc.pid)) if proc.poll() is None else set()
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    th.wait_until(lambda: not any(th.alive(p) for p in pids), timeout=timeout)
    for p in [p for p in pids if th.alive(p)] + ([proc.pid] if proc.poll() is None else []):
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _wait_tcp(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def _wait_unix(path, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(str(path))
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {path} after {timeout}s")


# ----------------------------------------------------------------------------
# smtp-sink

class Sink:
    """One smtp-sink; messages dumped to files in dir."""

    def __init__(self, base, *switches, unix=False):
        self.dir = Path(base) / f"sink-{th.free_port()}"
        self.dir.mkdir()
        os.chmod(self.dir, 0o777)        # smtp-sink writes as nobody
        self.port = th.free_port()
        self.unix = self.dir / "sink.sock" if unix else None
        where = f"unix:{self.unix}" if unix else f"127.0.0.1:{self.port}"
        self.out = open(self.dir / "sink.log", "ab")
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", "-d", str(self.dir / "msg."), *switches, where, "10"],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
            start_new_session=True)
        if unix:
            _wait_unix(self.unix, self.proc)
        else:
            _wait_tcp(self.port, self.proc)

    def dumps(self, count=0, timeout=5.0):
        files = lambda: sorted(self.dir.glob("msg.*"))  # noqa: E731
        if count:
            th.wait_until(lambda: len(files()) >= count, timeout=timeout)
        return [p.read_bytes() for p in files()]

    def stop(self):
        _stop_pid_tree(self.proc)
        self.out.close()


@pytest.fixture
def sinks():
    """start(*switches) -> Sink; each in a directory that nobody can write
    (pytest's tmp_path is closed to other users), removed afterwards."""
    started = []
    base = th.make_base("tern-smtpc-")

    def start(*switches, unix=False):
        if not os.path.exists(SMTP_SINK):
            pytest.skip(f"{SMTP_SINK} is not installed (postfix package)")
        s = Sink(base, *switches, unix=unix)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
    if not os.environ.get("TERN_IT_KEEP"):
        th.rmtree(base)


def split_dump(dump):
    """(smtp-sink's X- headers as a dict of lists, the message as received)."""
    text = dump.decode("latin-1")
    head, _, rest = text.partition("\nReceived: ")
    fields = {}
    for line in head.splitlines():
        k, _, v = line.partition(": ")
        fields.setdefault(k, []).append(v)
    # the Received field smtp-sink adds is three lines
    rest = rest.split("\n", 3)[3]
    return fields, rest


def test_sink_two_messages_one_connection(sinks):
    s = sinks()
    rc, k, _ = probe("127.0.0.1", s.port, "--from", "a@x.test", "--to", "b@y.test",
                     "--to", "c@y.test", "--count", 2, "--envid", "E1", "--ret", "hdrs",
                     "--notify", "success,failure", "--orcpt", "rfc822;b@y.test")
    assert rc == 0, k
    ready = k["ready"][0]
    assert ready["ok"] and ready["esmtp"] and ready["ext"]["pipelining"]
    assert ready["peer"] == f"127.0.0.1:{s.port}"
    assert [d["ok"] for d in k["done"]] == [True, True]
    assert k["done"][0]["reusable"]
    for m in (1, 2):
        assert rcpt_codes(k, m) == {"b@y.test": 250, "c@y.test": 250}
    dumps = s.dumps(2)
    assert len(dumps) == 2
    for d in dumps:
        f, body = split_dump(d)
        assert f["X-Mail-Args"] == ["<a@x.test> RET=HDRS ENVID=E1"]
        assert f["X-Rcpt-Args"] == ["<b@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y.test",
                                    "<c@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y.test"]
        assert f["X-Client-Proto"] == ["ESMTP"]
        # the stuffed dot was taken away by the server: the line is as written
        assert "\n.A line that starts with a dot.\n" in body.replace("\r\n", "\n")


def test_sink_without_pipelining(sinks):
    s = sinks("-p")
    rc, k, _ = probe("127.0.0.1", s.port, "--to", "b@y.test", "--to", "c@y.test")
    assert rc == 0, k
    assert not k["ready"][0]["ext"]["pipelining"]
    assert len(s.dumps(1)) == 1


def test_sink_without_esmtp_falls_back_to_helo(sinks):
    s = sinks("-e")
    rc, k, _ = probe("127.0.0.1", s.port, "--from", "a@x.test", "--to", "b@y.test",
                     "--envid", "E1", "--ret", "full")
    assert rc == 0, k
    assert not k["ready"][0]["esmtp"]
    f, _ = split_dump(s.dumps(1)[0])
    assert f["X-Client-Proto"] == ["SMTP"]
    assert f["X-Mail-Args"] == ["<a@x.test>"]        # no extension, no parameter


def test_sink_refuses_every_rcpt(sinks):
    s = sinks("-f", "RCPT")
    rc, k, _ = probe("127.0.0.1", s.port, "--to", "b@y.test", "--to", "c@y.test")
    assert rc == 1
    for r in k["rcpt"]:
        assert r["code"] // 100 == 5 and not r["temporary"], r
    done = k["done"][0]
    assert not done["ok"] and done["stage"] == "rcpt" and done["reusable"]
    assert s.dumps() == []


def test_sink_soft_refuses_mail(sinks):
    s = sinks("-r", "MAIL")
    rc, k, _ = probe("127.0.0.1", s.port, "--to", "b@y.test", "--to", "c@y.test")
    assert rc == 1
    for r in k["rcpt"]:
        assert r["code"] // 100 == 4 and r["temporary"], r
    assert k["done"][0]["stage"] == "mail"


def test_sink_421_at_data(sinks):
    s = sinks("-Q", "DATA")
    rc, k, _ = probe("127.0.0.1", s.port, "--to", "b@y.test", "--count", 2)
    assert rc == 1
    (r,) = k["rcpt"]
    assert r["code"] == 421 and r["temporary"]
    assert not k["done"][0]["reusable"]
    assert len(k["done"]) == 1                       # no second message on a closed line


def test_sink_8bit_without_8bitmime(sinks, tmp_path):
    msg = tmp_path / "8bit.eml"
    msg.write_bytes("Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu\r\n".encode())
    s = sinks("-8")
    rc, k, _ = probe("127.0.0.1", s.port, "--to", "b@y.test", "--file", msg)
    assert rc == 1
    (r,) = k["rcpt"]
    assert r["code"] == 0 and r["enh"] == "5.6.3" and not r["temporary"], r
    assert "Conversion required but not supported" in r["text"]
    assert s.dumps() == []
    # and with 8BITMIME it goes, declared
    s2 = sinks()
    rc, k, _ = probe("127.0.0.1", s2.port, "--from", "a@x.test", "--to", "b@y.test",
                     "--file", msg)
    assert rc == 0, k
    f, body = split_dump(s2.dumps(1)[0])
    assert f["X-Mail-Args"] == ["<a@x.test> BODY=8BITMIME"]
    assert "d\u00e9j\u00e0 vu".encode().decode("latin-1") in body


def test_sink_large_message_stuffing_and_bare_lf(sinks, tmp_path):
    lines = []
    for i in range(30000):
        if i % 5 == 0:
            lines.append(f".line {i} starts with a dot\r\n")
        elif i % 7 == 0:
            lines.append(f"line {i} ends in a bare LF\n")
        else:
            lines.append(f"line {i} of a long message\r\n")
    raw = "Subject: big\r\n\r\n" + "".join(lines)
    msg = tmp_path / "big.eml"
    msg.write_bytes(raw.encode())
    s = sinks()
    rc, k, _ = probe("127.0.0.1", s.port, "--to", "b@y.test", "--file", msg)
    assert rc == 0, k
    _, body = split_dump(s.dumps(1)[0])
    # smtp-sink writes lines with LF; it undid our dot-stuffing
    want = raw.replace("\r\n", "\n")
    assert body.replace("\r\n", "\n").rstrip("\n") == want.rstrip("\n")


def test_sink_lmtp(sinks):
    s = sinks("-L")
    rc, k, _ = probe("127.0.0.1", s.port, "--lmtp", "--to", "b@y.test", "--to", "c@y.test")
    assert rc == 0, k
    assert rcpt_codes(k) == {"b@y.test": 250, "c@y.test": 250}
    f, _ = split_dump(s.dumps(1)[0])
    assert f["X-Client-Proto"] == ["LMTP"]


def test_sink_lmtp_unix_socket(sinks):
    s = sinks("-L", unix=True)
    rc, k, _ = probe(f"unix:{s.unix}", "0", "--lmtp", "--to", "b@y.test")
    assert rc == 0, k
    assert k["ready"][0]["peer"].startswith("unix:")
    assert len(s.dumps(1)) == 1


def test_connection_refused():
    port = th.free_port()
    rc, k, _ = probe("127.0.0.1", port, "--to", "b@y.test", "--timeout", 5000)
    assert rc == 1
    r = k["ready"][0]
    assert not r["ok"] and r["stage"] == "connect" and r["enh"] == "4.4.1" and r["temporary"]
    assert "connection refused" in r["text"]


# ----------------------------------------------------------------------------
# ternd

ALICE, ALICE_PW = "alice@localhost", "Smtpc-pr0be-Alice"


@pytest.fixture(scope="module")
def ternd(module_factory):
    base = module_factory.base()
    users = th.write_users(base / "users", {ALICE: ALICE_PW, "bob@localhost": "Smtpc-bob-pw"})
    return module_factory.start(base=base, listeners=["mx", "submission", "submissions"],
                                users=str(users), name="smtpc",
                                auth_failure_delay=0)


def _delivered(ternd, user, marker):
    mails = th.wait_mail(ternd.data_dir, "localhost", user, count=1, timeout=15)
    return [m for m in mails if marker.encode() in m]


def test_ternd_starttls_encrypt(ternd, tmp_path):
    msg = tmp_path / "m.eml"
    msg.write_bytes(b"Subject: encrypt-1\r\n\r\nover STARTTLS\r\n..dots\r\n")
    rc, k, _ = probe("127.0.0.1", ternd.port_for("mx"), "--tls", "encrypt",
                     "--tls-name", ternd.hostname, "--to", "alice@localhost", "--file", msg)
    assert rc == 0, k
    r = k["ready"][0]
    assert r["tls_version"].startswith("TLSv1.") and r["tls_cipher"]
    assert not r["tls_verified"]
    assert r["tls_verify_error"] == "self-signed certificate"
    got = _delivered(ternd, "alice", "encrypt-1")
    assert got and got[0].endswith(b"over STARTTLS\r\n..dots\r\n")


def test_ternd_starttls_verify(ternd):
    ca = ternd.data_dir / "tls" / "cert.pem"
    rc, k, _ = probe("127.0.0.1", ternd.port_for("mx"), "--tls", "verify", "--ca", ca,
                     "--tls-name", ternd.hostname, "--to", "alice@localhost")
    assert rc == 0, k
    assert k["ready"][0]["tls_verified"] and k["ready"][0]["tls_verify_error"] == ""
    rc, k, _ = probe("127.0.0.1", ternd.port_for("mx"), "--tls", "verify", "--ca", ca,
                     "--tls-name", "wrong.example", "--to", "alice@localhost")
    assert rc == 1
    r = k["ready"][0]
    assert not r["ok"] and r["stage"] == "tls" and r["temporary"]
    assert r["tls_verify_error"] == "hostname mismatch"
    assert "rcpt" not in k


def test_ternd_submission_auth_plain(ternd, tmp_path):
    msg = tmp_path / "m.eml"
    msg.write_bytes(b"Subject: auth-plain-2\r\n\r\nsubmitted\r\n")
    rc, k, _ = probe("127.0.0.1", ternd.port_for("submission"), "--tls", "encrypt",
                     "--auth", ALICE, ALICE_PW, "--from", ALICE, "--to", "bob@localhost",
                     "--file", msg)
    assert rc == 0, k
    assert k["ready"][0]["auth_mech"] == "PLAIN"
    assert _delivered(ternd, "bob", "auth-plain-2")


def test_ternd_never_credentials_in_plaintext(ternd):
    rc, k, _ = probe("127.0.0.1", ternd.port_for("submission"), "--tls", "none",
                     "--auth", ALICE, ALICE_PW, "--from", ALICE, "--to", "bob@localhost")
    assert rc == 1
    r = k["ready"][0]
    assert not r["ok"] and r["stage"] == "auth" and r["temporary"] and r["code"] == 0
    assert ALICE_PW not in ternd.log()


def test_ternd_implicit_tls(ternd, tmp_path):
    msg = tmp_path / "m.eml"
    msg.write_bytes(b"Subject: implicit-3\r\n\r\nover 465\r\n")
    rc, k, _ = probe("127.0.0.1", ternd.port_for("submissions"), "--tls", "implicit",
                     "--verify-implicit", "yes", "--ca", ternd.data_dir / "tls" / "cert.pem",
                     "--tls-name", ternd.hostname, "--auth", ALICE, ALICE_PW,
                     "--from", ALICE, "--to", "bob@localhost", "--file", msg)
    assert rc == 0, k
    r = k["ready"][0]
    assert r["tls_verified"] and r["auth_mech"] == "PLAIN"
    assert _delivered(ternd, "bob", "implicit-3")


# ----------------------------------------------------------------------------
# Dovecot LMTP

class DovecotLMTP:
    def __init__(self, base):
        self.dir = Path(base) / "dovecot-lmtp"
        self.dir.mkdir(mode=0o755)
        self.run_dir = self.dir / "run"
        self.home = self.dir / "home"
        self.home.mkdir(mode=0o777)
        os.chmod(self.home, 0o777)
        self.port = th.free_port()
        self.log_path = self.dir / "dovecot.log"
        nobody = pwd.getpwnam("nobody")
        internal = _existing_user("dovecot")
        conf = self.dir / "dovecot.conf"
        conf.write_text(
            "# written by tests/integration/test_smtp_client.py\n"
            f"base_dir = {self.run_dir}\n"
            f"state_dir = {self.dir / 'state'}\n"
            f"log_path = {self.log_path}\n"
            f"info_log_path = {self.log_path}\n"
            "protocols = lmtp\n"
            "ssl = no\n"
            f"default_internal_user = {internal}\n"
            f"default_login_user = {_existing_user('dovenull', 'dovecot')}\n"
            "mail_location = maildir:~/Maildir\n"
            "userdb {\n"
            "  driver = static\n"
            f"  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={self.home}/%n "
            "allow_all_users=yes\n"
            "}\n"
            "passdb {\n"
            "  driver = static\n"
            "  args = nopassword=y\n"
            "}\n"
            "service lmtp {\n"
            "  inet_listener lmtp {\n"
            "    address = 127.0.0.1\n"
            f"    port = {self.port}\n"
            "  }\n"
            "  unix_listener lmtp {\n"
            "    mode = 0666\n"
            "  }\n"
            "}\n")
        self.out = open(self.dir / "dovecot.stdout", "ab")
        self.proc = subprocess.Popen([DOVECOT, "-c", str(conf), "-F"],
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_tcp(self.port, self.proc)
        except RuntimeError:
            self.stop()
            raise

    @property
    def socket(self):
        return self.run_dir / "lmtp"

    def maildir(self, user):
        d = self.home / user / "Maildir" / "new"
        return sorted(d.iterdir()) if d.exists() else []

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        _stop_pid_tree(self.proc)
        self.out.close()


def _existing_user(*names):
    for n in names:
        try:
            pwd.getpwnam(n)
            return n
        except KeyError:
            pass
    return "nobody"


@pytest.fixture(scope="module")
def dovecot():
    if not (os.path.exists(DOVECOT) and os.path.exists(DOVECOT_LMTP)):
        pytest.skip("Dovecot's LMTP server is not installed (dovecot-lmtpd)")
    base = th.make_base("tern-smtpc-")
    d = DovecotLMTP(base)
    yield d
    d.stop()
    if not os.environ.get("TERN_IT_KEEP"):
        th.rmtree(base)


def test_dovecot_lmtp_per_recipient(dovecot, tmp_path):
    msg = tmp_path / "m.eml"
    msg.write_bytes(b"Subject: lmtp-4\r\nFrom: a@x.test\r\n\r\nto Dovecot\r\n.dot line\r\n")
    rc, k, _ = probe("127.0.0.1", dovecot.port, "--lmtp", "--from", "a@x.test",
                     "--to", "u1@localhost", "--to", "u2@localhost", "--file", msg)
    assert rc == 0, (k, dovecot.log()[-2000:])
    codes = rcpt_codes(k)
    assert codes == {"u1@localhost": 250, "u2@localhost": 250}
    assert all(r["enh"].startswith("2.0.0") for r in k["rcpt"])
    for u in ("u1", "u2"):
        th.wait_until(lambda: dovecot.maildir(u), timeout=10)
        (f,) = dovecot.maildir(u)
        body = f.read_bytes().replace(b"\r\n", b"\n")
        assert body.endswith(b"to Dovecot\n.dot line\n"), body


def test_dovecot_lmtp_unix_socket(dovecot):
    rc, k, _ = probe(f"unix:{dovecot.socket}", "0", "--lmtp", "--to", "u3@localhost",
                     "--count", 2)
    assert rc == 0, (k, dovecot.log()[-2000:])
    assert [d["ok"] for d in k["done"]] == [True, True]
    th.wait_until(lambda: len(dovecot.maildir("u3")) >= 2, timeout=10)
    assert len(dovecot.maildir("u3")) == 2
