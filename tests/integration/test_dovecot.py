"""Logins checked by a real Dovecot over its auth-client protocol (1.x, what
Postfix's smtpd_sasl_type=dovecot speaks).

Two parts:

* The C client (src/daemon/dovecot_client.c) against a real Dovecot, through
  the probe mode of build/test/unit/test_dovecot_client (TERN_DOVECOT_*
  environment variables, see that file): OK, wrong password, unknown user,
  Dovecot's temporary failure, PLAIN not offered, the wrong socket, Dovecot
  stopped; and the exact lines exchanged, recorded by a relay.

* ternd end to end with `auth_dovecot SOCKET` and no `users`.

Dovecot runs as a fixture from its own config in a temporary directory
(base_dir, state_dir, logs, passwd-file all there; /etc/dovecot and the
system's Dovecot are never touched), started as `dovecot -c CONF -F` and
stopped by its PID (SIGTERM, SIGKILL after 5 s, descendants too). The tests
skip only when /usr/sbin/dovecot is missing.
"""

import base64
import os
import pwd
import re
import select
import signal
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import tern_harness as th
from tern_harness import SMTPClient, check, b64, sasl_plain

DOVECOT = "/usr/sbin/dovecot"
PROBE = Path(th.TERND).parent / "unit" / "test_dovecot_client"

ALICE, ALICE_PW = "alice@localhost", "Dc-s3cret-Alice"
BOB, BOB_PW = "bob@example.test", "Dc-hunter2-Bob"
WRONG_PW = "Dc-Wr0ng-Passw0rd"
GHOST, GHOST_PW = "ghost@localhost", "Dc-gh0st-Passw0rd"
SECRETS = {ALICE_PW, BOB_PW, WRONG_PW, GHOST_PW}

pytestmark = pytest.mark.skipif(not os.path.exists(DOVECOT),
                                reason=f"Dovecot is not installed ({DOVECOT} missing)")


# ----------------------------------------------------------------------------
# Dovecot as a fixture

def _existing_user(*names):
    for n in names:
        try:
            pwd.getpwnam(n)
            return n
        except KeyError:
            pass
    return "nobody"


class Dovecot:
    """One Dovecot instance with its own config under base; stopped by PID."""

    def __init__(self, base, users, mechanisms="plain login", passdb=None, name="dovecot",
                 passwd_owner=None):
        self.base = Path(base)
        self.name = name
        self.dir = self.base / name
        self.dir.mkdir(mode=0o755)
        os.chmod(self.dir, 0o755)
        self.run_dir = self.dir / "run"
        self.conf = self.dir / "dovecot.conf"
        self.log_path = self.dir / "dovecot.log"
        self.passwd = self.dir / "passwd"
        self.proc = None
        self.pids = set()
        internal = _existing_user("dovecot")
        fd = os.open(self.passwd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            for user, pw in users.items():
                f.write(f"{user}:{th.crypt_hash(pw)}\n")
        # the auth process reads it as default_internal_user: 0600, its own
        owner = pwd.getpwnam(passwd_owner or internal)
        os.chown(self.passwd, owner.pw_uid, owner.pw_gid)
        nobody = pwd.getpwnam("nobody")
        if passdb is None:
            passdb = ("  driver = passwd-file\n"
                      f"  args = scheme=SHA512-CRYPT {self.passwd}\n")
        self.conf.write_text(
            "# written by tests/integration/test_dovecot.py\n"
            f"base_dir = {self.run_dir}\n"
            f"state_dir = {self.dir / 'state'}\n"
            f"log_path = {self.log_path}\n"
            f"info_log_path = {self.log_path}\n"
            "protocols =\n"
            "ssl = no\n"
            f"default_internal_user = {internal}\n"
            f"default_login_user = {_existing_user('dovenull', 'dovecot')}\n"
            f"auth_mechanisms = {mechanisms}\n"
            "auth_verbose = yes\n"
            "passdb {\n" + passdb + "}\n"
            "userdb {\n"
            "  driver = static\n"
            f"  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={self.dir / 'home'}\n"
            "}\n"
            "service auth {\n"
            "  unix_listener auth-client {\n"
            "    mode = 0666\n"
            "  }\n"
            "}\n"
            # Dovecot's documented way to turn the auth penalty off: without
            # the anvil socket it cannot count failures per address. The
            # penalty (up to 15 s per login from an address that failed)
            # would make the failure tests slow and their timing depend on
            # test order; auth_failure_delay (2 s) stays on.
            "service anvil {\n"
            "  unix_listener anvil-auth-penalty {\n"
            "    mode = 0\n"
            "  }\n"
            "}\n")

    @property
    def socket(self):
        return str(self.run_dir / "auth-client")

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
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(max(0.2, deadline - time.monotonic()))
                    s.connect(self.socket)
                    data = b""
                    while b"\nDONE\n" not in data:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if b"\nDONE\n" in data:
                        self.pids.update(th.descendants(self.proc.pid))
                        return self
                    last = data
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
        """SIGTERM the master by PID; SIGKILL it and what it started after timeout."""
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
        for p in [p for p in pids if th.alive(p)] + ([self.proc.pid] if self.proc.poll() is None else []):
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


@pytest.fixture(scope="module")
def dovecot_base():
    base = th.make_base("tern-dovecot-it-")
    yield base
    if not os.environ.get("TERN_IT_KEEP"):
        th.rmtree(base)


@pytest.fixture
def dovecot_factory(dovecot_base):
    """start(name, **kw) -> a running Dovecot, stopped at teardown."""
    started = []

    def start(name, users=None, **kw):
        d = Dovecot(dovecot_base, users if users is not None else {ALICE: ALICE_PW, BOB: BOB_PW},
                    name=name, **kw)
        started.append(d)
        return d.start()

    yield start
    for d in started:
        d.stop()


@pytest.fixture(scope="module")
def dovecot(dovecot_base):
    """The shared instance: alice@localhost and bob@example.test."""
    d = Dovecot(dovecot_base, {ALICE: ALICE_PW, BOB: BOB_PW}, name="shared")
    d.start()
    yield d
    d.stop()
    leaked = sorted(s for s in SECRETS if s in d.log())
    assert not leaked, f"passwords in Dovecot's log: {leaked}"


# ----------------------------------------------------------------------------
# the C client, through the probe

def probe(socket_path, user, password, expect, canon=None, err=None, secured=True,
          timeout_ms=10000, wall=30):
    """Run one dovecot_auth_check in the probe; returns its output line."""
    if not PROBE.exists():
        pytest.fail(f"the probe {PROBE} is not built (make build/test/unit/test_dovecot_client)")
    env = dict(os.environ, TERN_DOVECOT_SOCKET=socket_path, TERN_DOVECOT_USER=user,
               TERN_DOVECOT_PASSWORD=password, TERN_DOVECOT_EXPECT=expect,
               TERN_DOVECOT_SECURED="1" if secured else "0",
               TERN_DOVECOT_TIMEOUT_MS=str(timeout_ms))
    for k, v in (("TERN_DOVECOT_CANON", canon), ("TERN_DOVECOT_ERR", err)):
        if v is not None:
            env[k] = v
        else:
            env.pop(k, None)
    for attempt in range(10):
        try:
            p = subprocess.run([str(PROBE)], env=env, capture_output=True, timeout=wall,
                               stdin=subprocess.DEVNULL)
            break
        except OSError:
            # the binary is being relinked by a concurrent make (EACCES,
            # ETXTBSY): not a result of the code under test
            if attempt == 9:
                raise
            time.sleep(0.5)
    out = p.stdout.decode(errors="replace")
    errout = p.stderr.decode(errors="replace")
    assert password not in out + errout, "the probe printed the password"
    line = next((ln for ln in out.splitlines() if ln.startswith("verdict=")), "")
    assert p.returncode == 0, f"expected {expect}: {line or out[-2000:]}\n{errout[-2000:]}"
    return line


def probe_ms(line):
    return int(re.search(r"\bms=(\d+)", line).group(1))


def test_probe_good_password(dovecot):
    line = probe(dovecot.socket, ALICE, ALICE_PW, "ok", canon=ALICE)
    assert probe_ms(line) < 2000, line


def test_probe_canonical_name_from_dovecot(dovecot):
    """auth_username_format = %Lu (the default): user= is the lower-cased name."""
    probe(dovecot.socket, "ALICE@LocalHost", ALICE_PW, "ok", canon=ALICE)


def test_probe_wrong_password(dovecot):
    line = probe(dovecot.socket, ALICE, WRONG_PW, "bad", err="refused by dovecot")
    # auth_failure_delay (2 s by default) holds every FAIL back
    assert probe_ms(line) >= 1500, line


def test_probe_unknown_user(dovecot):
    probe(dovecot.socket, GHOST, GHOST_PW, "bad", err="refused by dovecot")


def test_probe_password_case_matters(dovecot):
    probe(dovecot.socket, BOB, BOB_PW.upper(), "bad")


def test_probe_timeout_shorter_than_the_failure_delay(dovecot):
    """A FAIL that comes after the deadline is an error (454), never a login."""
    line = probe(dovecot.socket, ALICE, WRONG_PW, "error", err="timeout (500 ms)", timeout_ms=500)
    assert 450 <= probe_ms(line) < 1500, line


@pytest.mark.parametrize("how", ["checkpassword-111", "passwd-file-unreadable"])
def test_probe_temporary_failure(dovecot_factory, dovecot_base, how):
    """Dovecot 2.3 says code=temp_fail (not "temp") when a passdb fails."""
    if how == "checkpassword-111":
        script = dovecot_base / "checkpassword-111.sh"
        script.write_text("#!/bin/sh\nexit 111\n")
        os.chmod(script, 0o755)
        d = dovecot_factory("tempfail-cp", passdb=f"  driver = checkpassword\n  args = {script}\n")
        sign = "exited with status 111"
    else:
        d = dovecot_factory("tempfail-pf", passwd_owner="root")  # 0600 root: auth cannot read it
        sign = "Permission denied"
    probe(d.socket, ALICE, ALICE_PW, "error", err="temporary failure in dovecot code=temp_fail")
    assert sign in d.log(), d.log()[-2000:]


def test_probe_plain_not_offered(dovecot_factory):
    d = dovecot_factory("loginonly", mechanisms="login")
    probe(d.socket, ALICE, ALICE_PW, "error", err="does not offer PLAIN")


@pytest.mark.parametrize("sock", ["auth-master", "auth-userdb"])
def test_probe_wrong_socket_detected_at_once(dovecot, sock):
    """VERSION + SPID and then silence: refused at SPID, not at the deadline."""
    line = probe(str(dovecot.run_dir / sock), ALICE, ALICE_PW, "error",
                 err="not an auth-client socket", timeout_ms=5000)
    assert probe_ms(line) < 1000, line


def test_probe_socket_missing(dovecot_base):
    probe(str(dovecot_base / "no-such-dir" / "auth-client"), ALICE, ALICE_PW, "error",
          err="No such file or directory")


def test_probe_dovecot_stopped(dovecot_factory):
    d = dovecot_factory("stopped")
    probe(d.socket, ALICE, ALICE_PW, "ok")
    d.stop()
    assert not d.all_pids(), "dovecot processes left after stop"
    line = probe(d.socket, ALICE, ALICE_PW, "error", err="connect")
    assert re.search(r"Connection refused|No such file", line), line
    assert probe_ms(line) < 1000, line


# ----------------------------------------------------------------------------
# the exact lines, recorded by a relay between the probe and Dovecot

class Relay:
    """Accept one connection on path, connect to target, copy both ways and
    record each chunk as ("C"|"S", bytes). Bounded: 15 s in all."""

    def __init__(self, path, target):
        self.path, self.target = str(path), target
        self.chunks = []
        self.lsock = socket.socket(socket.AF_UNIX)
        self.lsock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.lsock.listen(1)
        self.lsock.settimeout(15)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        deadline = time.monotonic() + 15
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(self.target)
            ends = {c: (s, "C"), s: (c, "S")}
            while time.monotonic() < deadline:
                r, _, _ = select.select(list(ends), [], [], 0.5)
                done = False
                for src in r:
                    data = src.recv(65536)
                    if not data:
                        done = True
                        break
                    dst, who = ends[src]
                    self.chunks.append((who, data))
                    dst.sendall(data)
                if done:
                    break
        finally:
            c.close()
            s.close()
            self.lsock.close()

    def join(self):
        self.t.join(timeout=20)

    def lines(self, who):
        data = b"".join(d for w, d in self.chunks if w == who)
        return data.split(b"\n")


def redact(line):
    return re.sub(rb"\tresp=[A-Za-z0-9+/=]+", b"\tresp=<redacted>", line)


def test_transcript_against_real_dovecot(dovecot, dovecot_base):
    relay = Relay(dovecot_base / "relay.sock", dovecot.socket)
    probe(str(dovecot_base / "relay.sock"), ALICE, ALICE_PW, "ok", canon=ALICE)
    relay.join()
    c, s = relay.lines("C"), relay.lines("S")
    transcript = "\n".join(
        [f"C: {redact(ln).decode()!r}" for ln in c if ln] +
        [f"S: {ln.decode()!r}" for ln in s if ln])
    print("\n" + transcript)
    (dovecot_base / "transcript.txt").write_text(transcript + "\n")

    # the client: handshake, then one AUTH line shaped like Postfix's
    assert c[0] == b"VERSION\t1\t1", c
    assert re.fullmatch(rb"CPID\t[1-9][0-9]*", c[1]), c
    assert redact(c[2]) == (b"AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\t"
                            b"rip=127.0.0.1\tsecured\tresp=<redacted>"), c
    resp = re.search(rb"\tresp=(\S+)$", c[2]).group(1)
    assert base64.b64decode(resp) == f"\0{ALICE}\0{ALICE_PW}".encode()
    assert c[3:] == [b""], c   # nothing more, and every line ends in LF

    # the server: Dovecot 2.3's handshake, then the answer
    assert re.fullmatch(rb"VERSION\t1\t\d+", s[0]), s
    mechs = [ln.split(b"\t")[1] for ln in s if ln.startswith(b"MECH\t")]
    assert b"PLAIN" in mechs, s
    kinds = [ln.split(b"\t")[0] for ln in s if ln]
    assert kinds[-5:] == [b"SPID", b"CUID", b"COOKIE", b"DONE", b"OK"], s
    assert s[-2] == f"OK\t1\tuser={ALICE}".encode(), s


# ----------------------------------------------------------------------------
# ternd end to end (wiring pending)

def start_ternd(factory, socket_path, name="dovecot", **kw):
    kw.setdefault("auth_max_failures", 64)
    kw.setdefault("auth_failure_window", "1s")
    try:
        return factory.start(listeners=["mx", "submission"], auth_dovecot=socket_path,
                             users=None, name=name, **kw)
    except RuntimeError as e:
        for t in factory.servers:   # reported here, not again at teardown
            if t.proc is not None and t.proc.poll() is not None:
                t.stopped = True
        pytest.fail(f"ternd did not start with `auth_dovecot {socket_path}` "
                    f"(is the keyword wired yet?): {e}", pytrace=False)


@pytest.fixture(scope="module")
def srv(module_factory, dovecot):
    return start_ternd(module_factory, dovecot.socket)


def starttls(c):
    c.expect("STARTTLS", 220, "2.0.0")
    th.tls_wrap(c)


def tls_client(t):
    c = SMTPClient(t.port_for("submission"), timeout=20)
    try:
        c.ehlo()
        starttls(c)
        c.ehlo()
    except BaseException:
        c.close()
        raise
    return c


def auth_events(t, offset=0):
    return th.log_events(t.log()[offset:], "auth")


def test_ternd_offers_auth_with_dovecot(srv):
    with SMTPClient(srv.port_for("submission")) as c:
        r = c.ehlo()
        assert "AUTH" not in th.ehlo_keywords(r), r.raw
        starttls(c)
        r = c.ehlo()
        auth = [t for t in r.texts[1:] if t.split() and t.split()[0].upper() == "AUTH"]
        assert auth == ["AUTH PLAIN LOGIN"], r.raw


def test_ternd_good_password_and_submit(srv):
    off = len(srv.log())
    msg = th.message("dovecot login", sender=ALICE, to="carol@localhost")
    with tls_client(srv) as c:
        c.expect("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW), 235, "2.7.0")
        qid = c.send_message(ALICE, ["carol@localhost"], msg)
        c.expect("QUIT", 221)
    assert qid
    mails = th.wait_mail(srv.data_dir, "localhost", "carol")
    mine = [m for m in mails if m.endswith(msg)]
    assert len(mine) == 1, mails
    ok = th.wait_until(lambda: [ln for ln in auth_events(srv, off) if "result=ok" in ln])
    assert ok, srv.log()[off:][-3000:]
    assert "backend=dovecot" in ok[0], ok[0]
    assert ALICE in ok[0], ok[0]


def test_ternd_login_mechanism(srv):
    with tls_client(srv) as c:
        r = c.cmd("AUTH LOGIN")
        assert r.raw == b"334 VXNlcm5hbWU6\r\n", r.raw
        r = c.cmd(b64(BOB))
        assert r.raw == b"334 UGFzc3dvcmQ6\r\n", r.raw
        c.expect(b64(BOB_PW), 235, "2.7.0")
        c.expect(f"MAIL FROM:<{BOB}>", 250, "2.1.0")


def test_ternd_smtplib_login(srv):
    msg = th.message("dovecot smtplib", sender=ALICE, to="dave@localhost")
    s = smtplib.SMTP("127.0.0.1", srv.port_for("submission"), local_hostname="client.example",
                     timeout=20)
    try:
        s.ehlo()
        s.starttls(context=th.tls_context_noverify())
        s.ehlo()
        code, resp = s.login(ALICE, ALICE_PW)
        assert code == 235, (code, resp)
        assert s.sendmail(ALICE, ["dave@localhost"], msg) == {}
        s.quit()
    finally:
        s.close()
    assert th.wait_mail(srv.data_dir, "localhost", "dave")


@pytest.mark.parametrize("user,pw", [(ALICE, WRONG_PW), (GHOST, GHOST_PW)],
                         ids=["wrong-password", "unknown-user"])
def test_ternd_refused_535(srv, user, pw):
    off = len(srv.log())
    with tls_client(srv) as c:
        c.expect("AUTH PLAIN " + sasl_plain(user, pw), 535, "5.7.8")
        c.expect(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")
    bad = th.wait_until(lambda: [ln for ln in auth_events(srv, off) if "result=failed" in ln])
    assert bad and "backend=dovecot" in bad[0], srv.log()[off:][-3000:]


def test_ternd_dovecot_stopped_454(ternd_factory, dovecot_factory):
    d = dovecot_factory("for-ternd")
    t = start_ternd(ternd_factory, d.socket, name="dovecot-stop")
    with tls_client(t) as c:
        c.expect("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW), 235, "2.7.0")
    d.stop()
    assert not d.all_pids()
    off = len(t.log())
    for pw in (ALICE_PW, WRONG_PW):
        with tls_client(t) as c:
            r = c.cmd("AUTH PLAIN " + sasl_plain(ALICE, pw))
            check(r, 454, "4.7.0", what="AUTH with Dovecot stopped")
            c.expect(f"MAIL FROM:<{ALICE}>", 530, "5.7.0")
    errs = th.wait_until(lambda: [ln for ln in auth_events(t, off) if "result=error" in ln])
    assert errs and all("backend=dovecot" in ln for ln in errs), t.log()[off:][-3000:]
    assert "result=ok" not in "\n".join(auth_events(t, off))


def test_ternd_socket_missing_454(ternd_factory):
    base = ternd_factory.base()
    missing = str(base / "no-dovecot" / "auth-client")
    t = start_ternd(ternd_factory, missing, base=base, name="dovecot-missing")
    warn = [ln for ln in t.log().splitlines() if missing in ln and "level=warn" in ln]
    assert warn, f"no warning about {missing}: {t.log()[-3000:]}"
    with tls_client(t) as c:
        check(c.cmd("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW)), 454, "4.7.0")
        c.expect("NOOP", 250)


def test_ternd_log_never_holds_passwords(srv, dovecot):
    """Runs after the others on srv."""
    with tls_client(srv) as c:
        c.expect("AUTH PLAIN " + sasl_plain(ALICE, WRONG_PW), 535, "5.7.8")
        c.expect("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW), 235, "2.7.0")
    time.sleep(0.3)
    forms = set()
    for pw in SECRETS:
        forms.update({pw, b64(pw), sasl_plain(ALICE, pw)})
    for name, text in (("ternd", srv.log()), ("dovecot", dovecot.log())):
        leaked = sorted(f for f in forms if f in text)
        assert not leaked, f"{name}: passwords in the log: {[f[:12] for f in leaked]}"
