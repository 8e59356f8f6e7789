"""Real mail clients against the three submission listeners (issue 3).

Every client logs in with a users-file account inside TLS and submits a
message to a local mailbox; the test then finds it in the Maildir with a
Received header that says `with ESMTPSA` and names the TLS version and
cipher the client itself reports. Certificates are verified against
ternd's self-signed DATA_DIR/tls/cert.pem under the server's host name.

    client    587 submission   465 submissions   2525 submission-alt  mechanisms
    smtplib   starttls()       SMTP_SSL          starttls()           PLAIN, LOGIN
    swaks     --tls            --tls-on-connect  --tls                PLAIN, LOGIN
    curl      smtp:// +        smtps://          smtp:// +            AUTH=PLAIN, AUTH=LOGIN
              --ssl-reqd                         --ssl-reqd
    msmtp     tls_starttls on  tls_starttls off  tls_starttls on      plain, login
    s_client  -starttls smtp   implicit TLS      -starttls smtp       PLAIN (initial response)

s_client and a Python ssl probe also check that ternd ends TLS with a
close_notify alert after 221 (RFC 8446 6.1).

Negative cases with the same clients: curl without TLS on 587/2525 (the
bytes it sends are captured by a relay: the password never crosses in
plaintext), swaks with a wrong password (535 5.7.8), curl against the wrong
CA (verification really happens). testssl.sh scans 465 and 587 (STARTTLS)
for the protocol and cipher policy; it runs in the background from the
start of the module against its own ternd, because it is most of this
file's time.

Every client runs under a subprocess timeout; every process started here
is stopped by its pid (process group) at the end.
"""

import json
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import pytest

import tern_harness as th
from tern_harness import b64, sasl_plain

HOST = th.HOSTNAME
ALICE, ALICE_PW = "alice@localhost", "Cl1ent-Matrix-pw7"
WRONG_PW = "Wr0ng-Matrix-pw3"

ROLES = ["submission", "submissions", "submission-alt"]
STARTTLS_ROLES = ["submission", "submission-alt"]
PORT_NAME = {"submission": "587", "submissions": "465", "submission-alt": "2525"}
MECHS = ["PLAIN", "LOGIN"]
CLIENT_TIMEOUT = 30          # seconds, every client run

CURL = shutil.which("curl") or "/usr/bin/curl"
MSMTP = shutil.which("msmtp") or "/usr/bin/msmtp"
TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")

MATRIX = [(r, m) for r in ROLES for m in MECHS]
MATRIX_IDS = [f"{PORT_NAME[r]}-{m.lower()}" for r, m in MATRIX]


def rcpt_user(client, role, mech="plain"):
    """The local mailbox one case delivers to (one per case, so that each
    Maildir holds exactly the message of its case)."""
    return f"{client}-{PORT_NAME[role]}-{mech.lower()}"


def all_rcpt_users():
    users = []
    for client in ("smtplib", "swaks", "curl", "msmtp"):
        users += [rcpt_user(client, r, m) for r, m in MATRIX]
    users += [rcpt_user("sclient", r) for r in ROLES]
    users += [rcpt_user("plaintext", r) for r in STARTTLS_ROLES]
    users += [rcpt_user("wrongpw", r, m) for r, m in MATRIX]
    users += [rcpt_user("wrongca", r) for r in ROLES]
    users += ["curl-tls12"]
    return users


# ----------------------------------------------------------------------------
# servers

def start_server(factory, name, listeners):
    base = factory.base()
    users = {ALICE: ALICE_PW}
    for u in all_rcpt_users():
        users[f"{u}@localhost"] = f"unused-{u}-pw"
    path = th.write_users(base / "users", users)
    # A few deliberate failures come from 127.0.0.1: keep the address
    # lockout (tested in test_auth.py) out of the way.
    return factory.start(base=base, listeners=listeners, users=str(path), name=name,
                         auth_max_failures=64, auth_failure_window="1s")


@pytest.fixture(scope="module")
def srv(module_factory):
    """The first listener must answer a plaintext 220 (the harness waits on
    it): submission does."""
    return start_server(module_factory, "clients", ROLES)


def cert_of(t):
    return str(t.data_dir / "tls" / "cert.pem")


# ----------------------------------------------------------------------------
# delivery checks

def wait_for_token(t, user, token, timeout=15.0):
    """The messages in user@localhost's Maildir that hold token (waits for
    the first)."""
    tok = token.encode()
    th.wait_until(lambda: [m for m in th.read_mail(t.data_dir, "localhost", user) if tok in m],
                  timeout=timeout)
    return [m for m in th.read_mail(t.data_dir, "localhost", user) if tok in m]


def check_received(t, user, token, version="TLSv1.3", cipher=None, qid=None, body=None):
    """Exactly one message with token arrived for user; its first fields are
    Return-Path <ALICE> and a Received header `with ESMTPSA` naming the TLS
    version (and cipher, when the client reported it). With body, the file
    ends with exactly the bytes sent. Returns the unfolded Received field."""
    mails = wait_for_token(t, user, token)
    box = th.maildir_new(t.data_dir, "localhost", user)
    assert len(mails) == 1, (f"{user}: expected one message with {token!r}, found "
                             f"{len(mails)}; mailbox: {box}")
    content = mails[0]
    prefix = f"Return-Path: <{ALICE}>\r\nReceived: ".encode()
    assert content.startswith(prefix), content[:400]
    if body is not None:
        th.split_delivered(content, body)
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", content)
    m = re.search(rb"^Received: [^\r\n]*", unfolded, re.M)
    assert m, content[:500]
    rec = m.group(0)
    assert re.search(rb"\bwith ESMTPSA\b", rec), rec
    assert f"by {HOST}".encode() in rec, rec
    tm = re.search(rb"\(using (TLSv[0-9.]+) with cipher ([A-Za-z0-9_\-]+)\)", rec)
    assert tm, f"no '(using TLSvX with cipher Y)' in {rec!r}"
    assert tm.group(1).decode() == version, (version, rec)
    if cipher is not None:
        assert tm.group(2).decode() == cipher, (cipher, rec)
    if qid is not None:
        assert re.search(rb"\bid <?" + re.escape(qid.encode()) + rb">?", rec), (qid, rec)
    return rec


def no_mail(t, user):
    time.sleep(0.3)
    return th.maildir_new(t.data_dir, "localhost", user) == []


def run(cmd, input=None, timeout=CLIENT_TIMEOUT, **kw):
    """A client under a timeout (subprocess.run kills it by pid on expiry)."""
    return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL, **kw)


def show(p):
    return (f"exit {p.returncode}\ncmd: {p.args}\nstdout:\n"
            f"{p.stdout.decode(errors='replace')[-3000:]}\n"
            f"stderr:\n{p.stderr.decode(errors='replace')[-3000:]}")


def token_for(client, role, mech):
    return f"tok-{client}-{PORT_NAME[role]}-{mech.lower()}-{time.time_ns()}"


# ----------------------------------------------------------------------------
# Python smtplib

class HostSMTP(smtplib.SMTP):
    """smtplib.SMTP that connects to 127.0.0.1 but verifies the certificate
    for the host name it was given (the server's)."""

    def _get_socket(self, host, port, timeout):
        return socket.create_connection(("127.0.0.1", port), timeout)


class HostSMTP_SSL(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection(("127.0.0.1", port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self._host)


def verify_ctx(t):
    return ssl.create_default_context(cafile=cert_of(t))


@pytest.mark.parametrize("role,mech", MATRIX, ids=MATRIX_IDS)
def test_smtplib(srv, role, mech):
    user = rcpt_user("smtplib", role, mech)
    token = token_for("smtplib", role, mech)
    msg = th.message(token, sender=ALICE, to=f"{user}@localhost")
    port = srv.port_for(role)
    if role == "submissions":
        s = HostSMTP_SSL(HOST, port, local_hostname="client.example", timeout=15,
                         context=verify_ctx(srv))
    else:
        s = HostSMTP(HOST, port, local_hostname="client.example", timeout=15)
    try:
        s.ehlo()
        if role != "submissions":
            assert s.has_extn("starttls"), s.ehlo_resp
            assert not s.has_extn("auth"), f"AUTH offered before TLS: {s.ehlo_resp!r}"
            code, resp = s.starttls(context=verify_ctx(srv))
            assert code == 220, resp
            s.ehlo()
            assert not s.has_extn("starttls"), s.ehlo_resp
        assert s.has_extn("auth"), s.ehlo_resp
        assert set(s.esmtp_features["auth"].upper().split()) == {"PLAIN", "LOGIN"}
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        s.user, s.password = ALICE, ALICE_PW
        authobj = s.auth_plain if mech == "PLAIN" else s.auth_login
        code, resp = s.auth(mech, authobj)
        assert (code, resp[:5]) == (235, b"2.7.0"), (code, resp)
        assert s.sendmail(ALICE, [f"{user}@localhost"], msg) == {}
        s.quit()
    finally:
        s.close()
    check_received(srv, user, token, version=version, cipher=cipher, body=msg)


# ----------------------------------------------------------------------------
# swaks

SWAKS_TLS_RE = re.compile(r"^=== TLS started with cipher (TLSv[0-9.]+):([A-Za-z0-9_\-]+):", re.M)


def swaks_cmd(t, role, mech, pw, user, subject, ca=None):
    return [th.SWAKS, "--server", "127.0.0.1", "--port", str(t.port_for(role)),
            "--tls-on-connect" if role == "submissions" else "--tls",
            "--tls-verify", "--tls-ca-path", ca or cert_of(t), "--tls-sni", HOST,
            "--auth", mech, "--auth-user", ALICE, "--auth-password", pw,
            "--helo", "client.example", "--from", ALICE, "--to", f"{user}@localhost",
            "--header", f"Subject: {subject}", "--body", f"swaks body {subject}\n",
            "--timeout", "15"]


@pytest.mark.parametrize("role,mech", MATRIX, ids=MATRIX_IDS)
def test_swaks(srv, role, mech):
    user = rcpt_user("swaks", role, mech)
    token = token_for("swaks", role, mech)
    p = run(swaks_cmd(srv, role, mech, ALICE_PW, user, token))
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, show(p)
    assert re.search(rf"^ ~> AUTH {mech}\b", out, re.M), out[-3000:]
    assert re.search(r"^<~  235 2\.7\.0 ", out, re.M), out[-3000:]
    if role == "submissions":
        assert "STARTTLS" not in out, out[-3000:]
    else:
        # plaintext lines are "->"/"<-", lines inside TLS "~>"/"<~"
        assert re.search(r"^ -> STARTTLS$", out, re.M), out[-3000:]
        assert re.search(r"^<-  220 2\.0\.0 ", out, re.M), out[-3000:]
    tls = SWAKS_TLS_RE.search(out)
    assert tls, out[-3000:]
    qid = re.search(r"^<~  250 2\.0\.0 Ok: queued as ([A-Za-z0-9]+)", out, re.M)
    assert qid, out[-3000:]
    check_received(srv, user, token, version=tls.group(1), cipher=tls.group(2),
                   qid=qid.group(1))


@pytest.mark.parametrize("role,mech", MATRIX, ids=MATRIX_IDS)
def test_swaks_wrong_password_535(srv, role, mech):
    user = rcpt_user("wrongpw", role, mech)
    off = len(srv.log())
    p = run(swaks_cmd(srv, role, mech, WRONG_PW, user, "wrong password"))
    out = p.stdout.decode(errors="replace")
    assert re.search(r"^<~\* 535 5\.7\.8 ", out, re.M), show(p)
    assert p.returncode == 28, show(p)          # swaks: authentication failed
    assert "MAIL FROM" not in out, out[-3000:]
    assert no_mail(srv, user)
    failed = th.wait_until(lambda: [ln for ln in th.log_events(srv.log()[off:], "auth")
                                    if "result=failed" in ln and ALICE in ln], timeout=5)
    assert failed, srv.log()[off:][-3000:]
    log = srv.log()
    for secret in (WRONG_PW, b64(WRONG_PW), sasl_plain(ALICE, WRONG_PW)):
        assert secret not in log, "a password is in ternd's log"


# ----------------------------------------------------------------------------
# curl

CURL_TLS_RE = re.compile(r"SSL connection using (TLSv[0-9.]+) / ([A-Za-z0-9_\-]+)")


def curl_cmd(t, role, mech, user, msgfile, ca=None, extra=()):
    port = t.port_for(role)
    scheme = "smtps" if role == "submissions" else "smtp"
    cmd = [CURL, "-sS", "-v", "--max-time", "20",
           "--url", f"{scheme}://{HOST}:{port}/client.example",
           "--resolve", f"{HOST}:{port}:127.0.0.1", "--cacert", ca or cert_of(t),
           "--login-options", f"AUTH={mech}", "--user", f"{ALICE}:{ALICE_PW}",
           "--mail-from", ALICE, "--mail-rcpt", f"{user}@localhost",
           "--upload-file", str(msgfile)]
    if role != "submissions":
        cmd.append("--ssl-reqd")
    return cmd + list(extra)


def curl_message(t, user, token):
    msg = th.message(token, sender=ALICE, to=f"{user}@localhost")
    path = t.base / f"{user}.eml"
    path.write_bytes(msg)
    return msg, path


@pytest.mark.parametrize("role,mech", MATRIX, ids=MATRIX_IDS)
def test_curl(srv, role, mech):
    user = rcpt_user("curl", role, mech)
    token = token_for("curl", role, mech)
    msg, path = curl_message(srv, user, token)
    p = run(curl_cmd(srv, role, mech, user, path))
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, show(p)
    assert "SSL certificate verify ok" in err, err[-3000:]
    assert f'host "{HOST}" matched' in err, err[-3000:]
    if role == "submissions":
        assert "> STARTTLS" not in err, err[-3000:]
    else:
        assert "> STARTTLS" in err and "< 220 2.0.0 Ready to start TLS" in err, err[-3000:]
    assert re.search(rf"^> AUTH {mech}\b", err, re.M), err[-3000:]
    assert "< 235 2.7.0 " in err, err[-3000:]
    tls = CURL_TLS_RE.search(err)
    assert tls, err[-3000:]
    qid = re.search(r"^< 250 2\.0\.0 Ok: queued as ([A-Za-z0-9]+)", err, re.M)
    assert qid, err[-3000:]
    check_received(srv, user, token, version=tls.group(1), cipher=tls.group(2),
                   qid=qid.group(1), body=msg)


def test_curl_tls12_received_header(srv):
    """A client held to TLS 1.2 gets an ECDHE+AEAD suite, and the Received
    header says TLSv1.2 with that suite."""
    user = "curl-tls12"
    token = f"tok-curl-tls12-{time.time_ns()}"
    msg, path = curl_message(srv, user, token)
    p = run(curl_cmd(srv, "submission-alt", "PLAIN", user, path, extra=["--tls-max", "1.2"]))
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, show(p)
    tls = CURL_TLS_RE.search(err)
    assert tls and tls.group(1) == "TLSv1.2", err[-3000:]
    assert re.fullmatch(r"ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)",
                        tls.group(2)), tls.group(2)
    check_received(srv, user, token, version="TLSv1.2", cipher=tls.group(2), body=msg)


@pytest.mark.parametrize("role", ROLES, ids=[PORT_NAME[r] for r in ROLES])
def test_curl_wrong_ca_refused(srv, role):
    """Verification really happens: another self-signed certificate for the
    same name as the only CA, and curl refuses the server before AUTH."""
    other, _ = th.make_cert(srv.base / "other-ca", HOST, name=f"other-{PORT_NAME[role]}")
    user = rcpt_user("wrongca", role)
    _, path = curl_message(srv, user, "wrong ca")
    p = run(curl_cmd(srv, role, "PLAIN", user, path, ca=str(other)))
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 60, show(p)          # CURLE_PEER_FAILED_VERIFICATION
    assert "AUTH" not in re.sub(r"^[^>].*$", "", err, flags=re.M), err[-3000:]
    assert no_mail(srv, user)


class Relay:
    """A one-connection TCP relay on 127.0.0.1 that records the bytes each
    way (to see what a client really puts on the wire)."""

    def __init__(self, target_port, limit=20.0):
        self.target = target_port
        self.limit = limit
        self.c2s = b""
        self.s2c = b""
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.lsock.settimeout(limit)
        self.port = self.lsock.getsockname()[1]
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        deadline = time.monotonic() + self.limit
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        finally:
            self.lsock.close()
        s = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        try:
            open_ = {c: True, s: True}
            while any(open_.values()) and time.monotonic() < deadline:
                r, _, _ = select.select([x for x in open_ if open_[x]], [], [],
                                        max(0.0, deadline - time.monotonic()))
                for x in r:
                    try:
                        data = x.recv(65536)
                    except OSError:
                        data = b""
                    other = s if x is c else c
                    if not data:
                        open_[x] = False
                        try:
                            other.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    if x is c:
                        self.c2s += data
                    else:
                        self.s2c += data
                    try:
                        other.sendall(data)
                    except OSError:
                        open_[x] = False
        finally:
            c.close()
            s.close()

    def join(self):
        self.t.join(timeout=self.limit + 5)
        assert not self.t.is_alive(), "relay still running"


@pytest.mark.parametrize("role", STARTTLS_ROLES, ids=[PORT_NAME[r] for r in STARTTLS_ROLES])
def test_curl_without_tls_never_sends_password(srv, role):
    """curl asked to log in with AUTH=PLAIN but without --ssl-reqd: ternd
    offers no AUTH before TLS and answers MAIL with 530 5.7.0; the bytes
    curl sent (captured by a relay) hold no password in any encoding."""
    user = rcpt_user("plaintext", role)
    _, path = curl_message(srv, user, "plaintext attempt")
    relay = Relay(srv.port_for(role))
    p = run([CURL, "-sS", "-v", "--max-time", "20",
             "--url", f"smtp://127.0.0.1:{relay.port}/client.example",
             "--login-options", "AUTH=PLAIN", "--user", f"{ALICE}:{ALICE_PW}",
             "--mail-from", ALICE, "--mail-rcpt", f"{user}@localhost",
             "--upload-file", str(path)])
    relay.join()
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, show(p)
    assert "< 530 5.7.0 Must issue a STARTTLS command first" in err, err[-3000:]
    s2c, c2s = relay.s2c, relay.c2s
    assert re.search(rb"(^|\n)530 5\.7\.0 ", s2c), s2c
    ehlo = re.search(rb"(^|\n)(250[ -][^\n]*\n)+", s2c)
    assert ehlo and not re.search(rb"^250[ -]AUTH\b", ehlo.group(0), re.M | re.I), s2c
    assert b"\x16\x03" not in c2s, "the session was not plaintext"
    assert not re.search(rb"(^|\n)AUTH\b", c2s, re.I), c2s
    for secret in (ALICE_PW, b64(ALICE_PW), sasl_plain(ALICE, ALICE_PW),
                   b64(f"{ALICE}\0{ALICE_PW}"), b64(f"\0{ALICE}\0{ALICE_PW}")):
        assert secret.encode() not in c2s, f"the password crossed in plaintext: {c2s!r}"
    assert no_mail(srv, user)


# ----------------------------------------------------------------------------
# msmtp

MSMTP_TLS_RE = re.compile(r"^\s*\((TLS[0-9.]+)\)-\([^)]*\)-\([^)]*\)-\(([A-Z0-9\-]+)\)", re.M)


def msmtp_rc(t, role, mech):
    pwfile = t.base / "msmtp-password"
    if not pwfile.exists():
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(ALICE_PW + "\n")
    rc = t.base / f"msmtprc-{PORT_NAME[role]}-{mech.lower()}"
    text = "\n".join([
        "defaults",
        "syslog off",
        f"account {PORT_NAME[role]}{mech.lower()}",
        "host 127.0.0.1",
        f"port {t.port_for(role)}",
        "timeout 15",
        "domain client.example",
        f"from {ALICE}",
        "tls on",
        f"tls_starttls {'off' if role == 'submissions' else 'on'}",
        f"tls_trust_file {cert_of(t)}",
        f"tls_host_override {HOST}",
        "tls_certcheck on",
        f"auth {mech.lower()}",
        f"user {ALICE}",
        f"passwordeval cat {pwfile}",
        "",
    ])
    fd = os.open(rc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return rc, f"{PORT_NAME[role]}{mech.lower()}"


@pytest.mark.parametrize("role,mech", MATRIX, ids=MATRIX_IDS)
def test_msmtp(srv, role, mech):
    user = rcpt_user("msmtp", role, mech)
    token = token_for("msmtp", role, mech)
    rc, acct = msmtp_rc(srv, role, mech)
    msg = (f"From: <{ALICE}>\nTo: <{user}@localhost>\nSubject: {token}\n\n"
           f"msmtp body {token}\n").encode()
    p = run([MSMTP, "-C", str(rc), "-a", acct, "-d", f"{user}@localhost"], input=msg)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, show(p)
    if role == "submissions":
        assert "--> STARTTLS" not in out, out[-3000:]
    else:
        assert "--> STARTTLS" in out and "<-- 220 2.0.0" in out, out[-3000:]
    assert re.search(rf"^--> AUTH {mech}\b", out, re.M), out[-3000:]
    assert "<-- 235 2.7.0 " in out, out[-3000:]
    tls = MSMTP_TLS_RE.search(out)
    assert tls, out[-3000:]
    qid = re.search(r"^<-- 250 2\.0\.0 Ok: queued as ([A-Za-z0-9]+)", out, re.M)
    assert qid, out[-3000:]
    # GnuTLS names: (TLS1.3)...(AES-256-GCM) is OpenSSL's TLSv1.3 / TLS_AES_256_GCM_SHA384
    version = "TLSv" + tls.group(1)[3:]
    rec = check_received(srv, user, token, version=version, qid=qid.group(1))
    assert tls.group(2).replace("-", "_").encode() in rec, (tls.group(2), rec)


# ----------------------------------------------------------------------------
# openssl s_client

class SClient:
    """openssl s_client driven over stdin: STARTTLS (-starttls smtp, EHLO
    client.example) or implicit TLS; certificate and host name verified;
    -crlf turns the LF of each line into CR LF. Replies are read from its
    stdout; -brief puts the session summary on stderr."""

    def __init__(self, t, role):
        self.errpath = t.base / f"s_client-{PORT_NAME[role]}-{time.time_ns()}.stderr"
        cmd = [th.OPENSSL, "s_client", "-connect", f"127.0.0.1:{t.port_for(role)}",
               "-servername", HOST, "-verify_hostname", HOST, "-CAfile", cert_of(t),
               "-verify_return_error", "-crlf", "-ign_eof", "-brief"]
        if role != "submissions":
            cmd += ["-starttls", "smtp", "-name", "client.example"]
        self.err = open(self.errpath, "wb")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.err)
        self.buf = b""
        self.out = b""
        self.rc = None

    def _fill(self, deadline):
        fd = self.p.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timeout; s_client output so far {self.out!r}; "
                                 f"stderr {self.stderr()[-2000:]!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"s_client ended; output {self.out!r}; "
                                     f"stderr {self.stderr()[-2000:]!r}")
            self.buf += chunk
            self.out += chunk

    def reply(self, timeout=10.0):
        """The lines of one reply (up to the line with a space after the code)."""
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            while b"\n" not in self.buf:
                self._fill(deadline)
            line, self.buf = self.buf.split(b"\n", 1)
            assert line.endswith(b"\r"), f"reply line not ended by CR LF: {line!r}"
            s = line[:-1].decode(errors="replace")
            lines.append(s)
            assert re.match(r"^\d{3}[ -]", s), f"not a reply line: {s!r}"
            if s[3] == " ":
                return lines

    def send(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def finish(self, timeout=10.0):
        """Close stdin; read to EOF; the exit status."""
        try:
            self.p.stdin.close()
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except AssertionError:
            pass
        try:
            self.rc = self.p.wait(timeout=max(0.5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
        return self.rc

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=5)
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.err.close()

    def stderr(self):
        try:
            return self.errpath.read_text(errors="replace")
        except OSError:
            return ""


@pytest.mark.parametrize("role", ROLES, ids=[PORT_NAME[r] for r in ROLES])
def test_openssl_s_client(srv, role):
    user = rcpt_user("sclient", role)
    token = token_for("sclient", role, "plain")
    body = f"Subject: {token}\nFrom: <{ALICE}>\nTo: <{user}@localhost>\n\ns_client body\n"
    sc = SClient(srv, role)
    try:
        if role == "submissions":
            banner = sc.reply()
            assert re.match(rf"^220 {re.escape(HOST)} ESMTP\b", banner[0]), banner
        sc.send("EHLO client.example\n")
        ehlo = sc.reply()
        assert ehlo[0].startswith(f"250-{HOST}"), ehlo
        kws = [ln[4:].upper() for ln in ehlo[1:]]
        assert "AUTH PLAIN LOGIN" in kws, ehlo
        assert "STARTTLS" not in kws, ehlo
        sc.send("AUTH PLAIN " + sasl_plain(ALICE, ALICE_PW) + "\n")
        r = sc.reply()
        assert r[0].startswith("235 2.7.0 "), r
        # one pipelined group ending with DATA (RFC 2920), then the content
        sc.send(f"MAIL FROM:<{ALICE}>\nRCPT TO:<{user}@localhost>\nDATA\n")
        assert sc.reply()[0].startswith("250 2.1.0"), sc.out
        assert sc.reply()[0].startswith("250 2.1.5"), sc.out
        assert sc.reply()[0].startswith("354 "), sc.out
        sc.send(body + ".\nQUIT\n")
        r = sc.reply()
        m = re.match(r"^250 2\.0\.0 Ok: queued as ([A-Za-z0-9]+)", r[0])
        assert m, r
        assert sc.reply()[0].startswith("221 2.0.0"), sc.out
        rc = sc.finish()
    finally:
        sc.stop()
    err = sc.stderr()
    assert "Verification: OK" in err and f"Verified peername: {HOST}" in err, err
    version = re.search(r"^Protocol version: (TLSv[0-9.]+)", err, re.M)
    cipher = re.search(r"^Ciphersuite: (\S+)", err, re.M)
    assert version and cipher, err
    check_received(srv, user, token, version=version.group(1), cipher=cipher.group(1),
                   qid=m.group(1), body=body.replace("\n", "\r\n").encode())
    # After 221 ternd closes the connection; it must end TLS with a
    # close_notify alert first (RFC 8446 6.1), else s_client reports
    # "unexpected eof while reading" and exits 1.
    assert "unexpected eof" not in err, (
        "ternd closed the TLS connection after 221 without close_notify "
        f"(RFC 8446 6.1); s_client exit {rc}, stderr:\n{err[-2000:]}")
    assert rc == 0, f"s_client exit status {rc}; stderr:\n{err[-2000:]}"


@pytest.mark.parametrize("role", ROLES, ids=[PORT_NAME[r] for r in ROLES])
def test_tls_ends_with_close_notify(srv, role):
    """After QUIT/221 the server's side of TLS ends with close_notify
    (RFC 8446 6.1, RFC 5246 7.2.1), not a bare TCP FIN. Python hides a
    missing close_notify unless OP_IGNORE_UNEXPECTED_EOF is cleared."""
    ctx = verify_ctx(srv)
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    c = th.SMTPClient(srv.port_for(role), banner=role != "submissions")
    try:
        if role != "submissions":
            c.ehlo()
            c.expect("STARTTLS", 220, "2.0.0")
        c.sock.settimeout(10)
        c.sock = ctx.wrap_socket(c.sock, server_hostname=HOST, suppress_ragged_eofs=False)
        if role == "submissions":
            c.banner = c.reply()
        c.ehlo()
        c.expect("QUIT", 221, "2.0.0")
        try:
            rest = c.sock.recv(4096)
        except ssl.SSLError as e:
            raise AssertionError(
                f"ternd closed the connection after 221 without a TLS close_notify: {e}")
        assert rest == b"", rest
    finally:
        c.close()


# ----------------------------------------------------------------------------
# testssl.sh: 465 and 587 (STARTTLS), in the background from the module's start

# --fast keeps every check asked for here (sockets for SSLv2/SSLv3, cipher
# categories, forward secrecy and its curves) and drops the slow extras;
# each scan is ~27 CPU-seconds, most of it testssl's own start-up.
TESTSSL_OPTS = ["--fast", "--protocols", "--std", "--fs", "--quiet", "--color", "0",
                "--warnings", "off", "--nodns", "none", "--openssl", th.OPENSSL]
TESTSSL_TIMEOUT = 150        # seconds per port; ~25 s alone, ~45 s both at once
TESTSSL_ROLES = ["submissions", "submission"]


class ScanRun:
    def __init__(self, t, role):
        self.role = role
        self.json = t.base / f"testssl-{PORT_NAME[role]}.json"
        self.outpath = t.base / f"testssl-{PORT_NAME[role]}.out"
        cmd = [TESTSSL] + TESTSSL_OPTS + ["--jsonfile", str(self.json),
                                          "--ip", "127.0.0.1", "--add-ca", cert_of(t)]
        if role != "submissions":
            cmd += ["--starttls", "smtp"]
        cmd.append(f"{HOST}:{t.port_for(role)}")
        self.cmd = cmd
        self.out = open(self.outpath, "wb")
        self.t0 = time.monotonic()
        # its own process group (testssl forks openssl and subshells): it
        # is stopped through its own pid
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        self.elapsed = None

    def wait(self):
        left = TESTSSL_TIMEOUT - (time.monotonic() - self.t0)
        try:
            rc = self.p.wait(timeout=max(1.0, left))
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"testssl did not finish within {TESTSSL_TIMEOUT}s: "
                                 f"{self.output()[-3000:]}")
        self.elapsed = time.monotonic() - self.t0
        return rc

    def stop(self):
        if self.p.poll() is None:
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.p.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    self.p.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if not self.out.closed:
            self.out.close()

    def output(self):
        try:
            return self.outpath.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture(scope="module")
def testssl_runs(module_factory):
    if not TESTSSL:
        pytest.skip("testssl.sh is not installed (Debian package testssl.sh)")
    t = start_server(module_factory, "testssl", ["submission", "submissions"])
    runs = {}
    try:
        for role in TESTSSL_ROLES:
            runs[role] = ScanRun(t, role)
        yield runs
    finally:
        for r in runs.values():
            r.stop()


@pytest.fixture(scope="module", autouse=True)
def _testssl_in_background(request):
    """Start testssl at the module's start when its tests are selected, so
    that it runs while the clients above do."""
    if any(item.module is request.module and "testssl_runs" in item.fixturenames
           for item in request.session.items):
        try:
            request.getfixturevalue("testssl_runs")
        except pytest.skip.Exception:
            pass


CIPHER_POLICY_RE = re.compile(
    r"TLS_(AES_(128|256)_GCM|CHACHA20_POLY1305)_SHA(256|384)"
    r"|ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)")


@pytest.mark.slow
@pytest.mark.parametrize("role", TESTSSL_ROLES, ids=[PORT_NAME[r] for r in TESTSSL_ROLES])
def test_testssl(testssl_runs, role):
    run_ = testssl_runs[role]
    rc = run_.wait()
    out = run_.output()
    assert run_.json.exists(), f"no JSON from testssl (exit {rc}):\n{out[-3000:]}"
    findings = json.loads(run_.json.read_text())
    by_id = {}
    for f in findings:
        by_id.setdefault(f["id"], f)
    problems = [f for f in findings
                if f["id"] == "scanProblem" or f["severity"] in ("FATAL", "LOW", "MEDIUM",
                                                                 "HIGH", "CRITICAL")]
    assert not problems, problems
    assert rc == 0, f"testssl exit {rc}:\n{out[-3000:]}"

    def finding(i):
        assert i in by_id, f"testssl reported no {i!r}; ids: {sorted(by_id)}\n{out[-3000:]}"
        return by_id[i]["finding"]

    for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert finding(proto) == "not offered", (proto, by_id[proto])
    for proto in ("TLS1_2", "TLS1_3"):
        assert finding(proto).startswith("offered"), (proto, by_id[proto])
    for cat in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
                "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"):
        assert finding(cat) == "not offered", (cat, by_id[cat])
    assert finding("cipherlist_STRONG") == "offered", by_id["cipherlist_STRONG"]
    fs = "PFS" if "PFS" in by_id else "FS"          # renamed in testssl 3.2
    assert finding(fs) == "offered", by_id[fs]
    fs_ciphers = finding(fs + "_ciphers").split()
    assert fs_ciphers, by_id[fs + "_ciphers"]
    off_policy = [c for c in fs_ciphers if not CIPHER_POLICY_RE.fullmatch(c)]
    assert not off_policy, f"ciphers outside ECDHE+AEAD / TLS 1.3: {off_policy}"
    if role == "submission":
        assert "smtp" in finding("service").lower(), by_id["service"]
