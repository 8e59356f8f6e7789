"""TLS in ternd: STARTTLS on mx/submission/submission-alt (RFC 3207),
implicit TLS on submissions (RFC 8314), versions and cipher policy, the
self-signed certificate, a configured certificate, trace headers and logs."""

import hashlib
import os
import re
import select
import smtplib
import socket
import ssl
import stat
import subprocess
import time

import pytest

import conftest
import tern_harness as th
from tern_harness import SMTPClient, check

HOST = th.HOSTNAME
SENDER = "sender@client.example"
STARTTLS_ROLES = ["mx", "submission", "submission-alt"]
TLS_ROLES = ["mx", "submission", "submissions"]      # one of each kind of TLS path


# ----------------------------------------------------------------------------
# servers

@pytest.fixture(scope="module")
def srv(module_factory):
    """mx first: the harness waits for a plaintext 220 on the first listener."""
    return module_factory.start(
        listeners=["mx", "submission", "submission-alt", "submissions"], name="main")


@pytest.fixture(scope="module")
def idle_srv(module_factory):
    return module_factory.start(listeners=["mx", "submissions"], idle_timeout="3s",
                                name="idle")


@pytest.fixture(scope="module")
def log_srv(module_factory):
    return module_factory.start(listeners=["mx", "submissions"], name="logs")


# ----------------------------------------------------------------------------
# helpers

def s_client(port, role, *args, input=b""):
    """openssl s_client to a listener: STARTTLS for mx/submission*, implicit
    TLS for submissions. With empty input it closes right after the
    handshake."""
    cmd = ["s_client", "-connect", f"127.0.0.1:{port}", "-servername", HOST]
    if role != "submissions":
        cmd += ["-starttls", "smtp"]
    return th.openssl_run(cmd + list(args), input=input)


def negotiated(p):
    """(label, cipher) from s_client's "New, LABEL, Cipher is CIPHER" line, or
    None if no cipher was negotiated."""
    out = p.stdout.decode(errors="replace")
    m = re.search(r"New, (\S+), Cipher is (\S+)", out)
    if not m or m.group(2) == "(NONE)":
        return None
    return m.group(1), m.group(2)


def handshake_ok(p):
    return p.returncode == 0 and negotiated(p) is not None


def show(p):
    return (f"exit {p.returncode}\nstdout:\n{p.stdout.decode(errors='replace')[-3000:]}\n"
            f"stderr:\n{p.stderr.decode(errors='replace')[-2000:]}")


def fingerprint_of_der(der):
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def log_fingerprints(text, event):
    out = []
    for ln in th.log_events(text, event):
        m = th.FPR_RE.search(ln)
        assert m, f"no fingerprint=sha256:HEX (upper-case pairs) in {ln!r}"
        assert "fingerprint=sha256:" in ln, ln
        out.append(m.group(1))
    return out


def wait_log_events(t, event, offset=0, pred=lambda ln: True, timeout=5.0):
    def found():
        return [ln for ln in th.log_events(t.log()[offset:], event) if pred(ln)]
    return th.wait_until(found, timeout=timeout)


def starttls(c):
    r = c.expect("STARTTLS", 220, "2.0.0")
    assert "Ready to start TLS" in r.text, r.raw
    th.tls_wrap(c)
    return r


def verify_ctx(t):
    """A client context that verifies against ternd's self-signed certificate
    and checks the host name."""
    return ssl.create_default_context(cafile=str(t.data_dir / "tls" / "cert.pem"))


class HostSMTP(smtplib.SMTP):
    """smtplib.SMTP that connects to 127.0.0.1 but uses the host name given
    (the server's) for TLS verification."""

    def _get_socket(self, host, port, timeout):
        return socket.create_connection(("127.0.0.1", port), timeout)


class HostSMTP_SSL(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection(("127.0.0.1", port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self._host)


def read_until_closed(sock, limit):
    """Read until EOF/reset or `limit` seconds; (data, closed, elapsed)."""
    t0 = time.monotonic()
    data = b""
    while True:
        left = limit - (time.monotonic() - t0)
        if left <= 0:
            return data, False, time.monotonic() - t0
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            return data, False, time.monotonic() - t0
        except (ConnectionResetError, BrokenPipeError):
            return data, True, time.monotonic() - t0
        if not chunk:
            return data, True, time.monotonic() - t0
        data += chunk


class SClientQuiet:
    """An interactive `openssl s_client -quiet` (implicit TLS): bytes in on
    stdin, the server's bytes out on stdout."""

    def __init__(self, port):
        self.p = subprocess.Popen(
            [th.OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}",
             "-servername", HOST, "-quiet"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = b""

    def read_until(self, pattern, timeout=10.0):
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while not re.search(pattern, self.out):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timeout waiting for {pattern!r}; got {self.out!r}")
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"s_client ended waiting for {pattern!r}; got {self.out!r}; "
                                     f"stderr {self.p.stderr.read()[-2000:]!r}")
            self.out += chunk
        return self.out

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=5)
        for f in (self.p.stdout, self.p.stderr):
            f.close()


def start_refused(factory, timeout=5, **kw):
    """Start ternd expecting it to refuse; returns (exit status, stderr)."""
    t = factory.start(wait=False, **kw)
    try:
        rc = t.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ternd started (still running after {timeout}s); "
                             f"stderr:\n{t.log()[-3000:]}")
    t.stopped = True          # exiting was expected: not "died during the test"
    return rc, t.log()


# ----------------------------------------------------------------------------
# the self-signed certificate

def test_selfsigned_created_and_logged(srv):
    tls = srv.data_dir / "tls"
    cert, key = tls / "cert.pem", tls / "key.pem"
    assert cert.is_file() and key.is_file(), sorted(os.listdir(srv.data_dir))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600, oct(key.stat().st_mode)
    text = th.openssl_run(["x509", "-in", str(cert), "-noout", "-text"]).stdout.decode()
    assert "rsaEncryption" in text and "(2048 bit)" in text, text[:2000]
    subj = th.openssl_run(["x509", "-in", str(cert), "-noout", "-subject"]).stdout.decode()
    assert re.search(r"CN\s*=\s*" + re.escape(HOST) + r"\s*$", subj.strip()), subj
    assert re.search(r"DNS:" + re.escape(HOST) + r"\b", text), text
    fp = th.cert_fingerprint(cert)
    assert wait_log_events(srv, "tls-selfsigned"), srv.log()[-3000:]
    assert log_fingerprints(srv.log(), "tls-selfsigned") == [fp]
    assert wait_log_events(srv, "tls-cert"), srv.log()[-3000:]
    assert set(log_fingerprints(srv.log(), "tls-cert")) == {fp}


def test_selfsigned_reused_after_restart(ternd_factory):
    t1 = ternd_factory.start(listeners=["mx"], name="first")
    assert wait_log_events(t1, "tls-selfsigned"), t1.log()[-3000:]
    fp1 = log_fingerprints(t1.log(), "tls-selfsigned")[0]
    cert_bytes = (t1.data_dir / "tls" / "cert.pem").read_bytes()
    key_bytes = (t1.data_dir / "tls" / "key.pem").read_bytes()
    with SMTPClient(t1.port) as c:
        c.ehlo()
        starttls(c)
        assert fingerprint_of_der(c.sock.getpeercert(binary_form=True)) == fp1
    conftest.stop_checked(t1)

    t2 = ternd_factory.start(base=t1.base, listeners=["mx"], name="second")
    assert t2.data_dir == t1.data_dir
    assert wait_log_events(t2, "tls-cert"), t2.log()[-3000:]
    assert log_fingerprints(t2.log(), "tls-cert") == [fp1]
    assert not th.log_events(t2.log(), "tls-selfsigned"), "a new certificate was made"
    assert (t2.data_dir / "tls" / "cert.pem").read_bytes() == cert_bytes
    assert (t2.data_dir / "tls" / "key.pem").read_bytes() == key_bytes
    with SMTPClient(t2.port) as c:
        c.ehlo()
        starttls(c)
        assert fingerprint_of_der(c.sock.getpeercert(binary_form=True)) == fp1


# ----------------------------------------------------------------------------
# configured certificate

def test_configured_certificate(ternd_factory):
    base = ternd_factory.base()
    cert, key = th.make_cert(base / "certs", HOST)
    fp = th.cert_fingerprint(cert)
    t = ternd_factory.start(base=base, listeners=["mx", "submissions"],
                            tls_cert=str(cert), tls_key=str(key))
    for role in ("mx", "submissions"):
        p = s_client(t.port_for(role), role, "-showcerts")
        assert handshake_ok(p), show(p)
        pems = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?",
                          p.stdout, re.S)
        assert pems, show(p)
        assert th.cert_fingerprint(pems[0]) == fp, f"{role}: another certificate is presented"
    assert wait_log_events(t, "tls-cert"), t.log()[-3000:]
    assert set(log_fingerprints(t.log(), "tls-cert")) == {fp}
    assert not th.log_events(t.log(), "tls-selfsigned"), t.log()[-3000:]
    chk = subprocess.run([th.TERND, "-n", "-f", str(t.conf_path)], capture_output=True,
                         timeout=20, stdin=subprocess.DEVNULL)
    assert chk.returncode == 0, (chk.stdout, chk.stderr)


@pytest.mark.parametrize("mode", [0o640, 0o604], ids=["group", "others"])
def test_key_readable_by_others_refused(ternd_factory, mode):
    base = ternd_factory.base()
    cert, key = th.make_cert(base / "certs", HOST)
    os.chmod(key, mode)
    rc, err = start_refused(ternd_factory, base=base, listeners=["mx"],
                            tls_cert=str(cert), tls_key=str(key))
    assert rc == 1, f"exit status {rc}; stderr:\n{err[-3000:]}"
    assert str(key) in err, err[-3000:]
    assert re.search(r"readable by\b.*\bothers", err), err[-3000:]


@pytest.mark.parametrize("given,missing", [("tls_cert", "tls_key"), ("tls_key", "tls_cert")])
def test_cert_and_key_both_or_neither(ternd_factory, given, missing):
    base = ternd_factory.base()
    cert, key = th.make_cert(base / "certs", HOST)
    os.chmod(cert, 0o600)     # so that no file is refused for its mode
    rc, err = start_refused(ternd_factory, base=base, listeners=["mx"],
                            **{given: str(cert if given == "tls_cert" else key)})
    assert rc != 0, err[-3000:]
    assert missing in err, err[-3000:]


# ----------------------------------------------------------------------------
# mx

def test_mx_ehlo_offers_starttls_not_auth(srv):
    with SMTPClient(srv.port_for("mx")) as c:
        kws = th.ehlo_keywords(c.ehlo())
        assert "STARTTLS" in kws, kws
        assert "AUTH" not in kws and not any(k.startswith("AUTH=") for k in kws), kws


def test_mx_starttls_then_ehlo_required(srv):
    with SMTPClient(srv.port_for("mx")) as c:
        c.ehlo()
        starttls(c)
        c.expect(f"MAIL FROM:<{SENDER}>", 503, "5.5.1")
        kws = th.ehlo_keywords(c.ehlo())
        assert "STARTTLS" not in kws, kws
        c.expect("STARTTLS", 503, "5.5.1")
        c.expect(f"MAIL FROM:<{SENDER}>", 250, "2.1.0")
        c.expect("QUIT", 221)


def test_mx_starttls_with_argument(srv):
    with SMTPClient(srv.port_for("mx")) as c:
        c.ehlo()
        c.expect("STARTTLS foo", 501, "5.5.4")
        c.expect("NOOP", 250)        # still a plaintext session


def test_mx_plaintext_delivery(srv):
    msg = th.message("mx plaintext")
    with SMTPClient(srv.port_for("mx")) as c:
        c.ehlo()
        qid = c.send_message(SENDER, ["plain@localhost"], msg)
    mails = th.wait_mail(srv.data_dir, "localhost", "plain")
    assert len(mails) == 1
    rec = th.check_delivered(mails[0], SENDER, msg, qid=qid, proto="ESMTP")
    assert b"using TLS" not in rec, rec


@pytest.mark.parametrize("role", ["mx", "submission"])
def test_starttls_injection_rset(srv, role):
    """CVE-2011-0411: commands pipelined after STARTTLS are discarded."""
    with SMTPClient(srv.port_for(role)) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\nRSET\r\n")
        r = c.reply()
        check(r, 220, "2.0.0", what="STARTTLS")
        assert c.nothing_pending(0.3), f"plaintext after the 220: {c.buf!r}"
        th.tls_wrap(c)
        c.send(b"EHLO x\r\n")
        r = c.reply()
        assert r.raw.startswith(b"250-"), f"first reply after TLS is not the EHLO reply: {r.raw!r}"
        assert r.first.split()[0] == HOST, r.raw
        assert "STARTTLS" not in th.ehlo_keywords(r)
        assert c.nothing_pending(0.3), f"a reply to the injected RSET: {c.buf!r}"


def test_mx_starttls_injection_mail(srv):
    with SMTPClient(srv.port_for("mx")) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<a@b.example>\r\n")
        check(c.reply(), 220, "2.0.0", what="STARTTLS")
        assert c.nothing_pending(0.3), f"plaintext after the 220: {c.buf!r}"
        th.tls_wrap(c)
        r = c.ehlo("x")
        assert r.first.split()[0] == HOST, r.raw
        c.expect("RCPT TO:<alice@localhost>", 503, "5.5.1")


def test_mx_smtplib_starttls_delivery(srv):
    msg = th.message("smtplib starttls")
    s = HostSMTP(HOST, srv.port_for("mx"), local_hostname="client.example", timeout=10)
    try:
        s.ehlo()
        assert s.has_extn("starttls")
        code, resp = s.starttls(context=verify_ctx(srv))
        assert code == 220, resp
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        assert version == "TLSv1.3", version
        s.ehlo()
        assert not s.has_extn("starttls")
        refused = s.sendmail(SENDER, ["alice@localhost"], msg)
        assert refused == {}
        s.quit()
    finally:
        s.close()
    mails = th.wait_mail(srv.data_dir, "localhost", "alice")
    mine = [m for m in mails if m.endswith(msg)]
    assert len(mine) == 1, mails
    rec = th.check_delivered(mine[0], SENDER, msg, proto="ESMTPS")
    assert b"(using TLSv1.3 with cipher " in rec, rec
    m = re.search(rb"\(using TLSv1\.3 with cipher ([A-Za-z0-9_\-]+)", rec)
    assert m and m.group(1).decode() == cipher, (cipher, rec)


def test_mx_swaks_tls_delivery(srv):
    p = subprocess.run(
        [th.SWAKS, "--server", "127.0.0.1", "--port", str(srv.port_for("mx")), "--tls",
         "--helo", "client.example", "--from", SENDER, "--to", "swaks@localhost",
         "--header", "Subject: swaks tls", "--timeout", "15"],
        capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (p.stdout.decode(errors="replace")[-3000:], p.stderr)
    mails = th.wait_mail(srv.data_dir, "localhost", "swaks")
    assert len(mails) == 1
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", mails[0])
    rec = re.search(rb"^Received: [^\r\n]*", unfolded, re.M)
    assert rec, mails[0][:500]
    assert re.search(rb"\bwith ESMTPS\b", rec.group(0)), rec.group(0)
    assert re.search(rb"\(using TLSv1\.[23] with cipher ", rec.group(0)), rec.group(0)


# ----------------------------------------------------------------------------
# submission, submission-alt

@pytest.mark.parametrize("role", ["submission", "submission-alt"])
def test_submission_requires_starttls(srv, role):
    with SMTPClient(srv.port_for(role)) as c:
        kws = th.ehlo_keywords(c.ehlo())
        assert "STARTTLS" in kws, kws
        assert "AUTH" not in kws and not any(k.startswith("AUTH=") for k in kws), kws
        r = c.expect(f"MAIL FROM:<{SENDER}>", 530, "5.7.0")
        assert "Must issue a STARTTLS command first" in r.text, r.raw
        c.expect("AUTH PLAIN AHVzZXIAcGFzcw==", 530, "5.7.0")


@pytest.mark.parametrize("role", ["submission", "submission-alt"])
def test_submission_after_starttls_requires_auth(srv, role):
    with SMTPClient(srv.port_for(role)) as c:
        c.ehlo()
        starttls(c)
        kws = th.ehlo_keywords(c.ehlo())
        assert "STARTTLS" not in kws, kws
        r = c.expect(f"MAIL FROM:<{SENDER}>", 530, "5.7.0")
        assert "Authentication required" in r.text, r.raw


# ----------------------------------------------------------------------------
# submissions (implicit TLS)

def test_submissions_openssl_banner_and_ehlo(srv):
    sc = SClientQuiet(srv.port_for("submissions"))
    try:
        out = sc.read_until(rb"\r\n")
        assert re.match(rb"220 " + re.escape(HOST.encode()) + rb" ESMTP tern\b", out), out
        n = len(out)
        sc.send(b"EHLO x\r\n")
        out = sc.read_until(rb"(^|\n)250 [^\r\n]*\r\n", timeout=10)
        ehlo = out[n:]
        assert ehlo.startswith(b"250"), ehlo
        assert not re.search(rb"^250[ -]STARTTLS\b", ehlo, re.M | re.I), ehlo
        sc.send(b"QUIT\r\n")
        sc.read_until(rb"(^|\n)221[ -]", timeout=10)
    finally:
        sc.close()


def test_submissions_smtp_ssl(srv):
    s = HostSMTP_SSL(HOST, srv.port_for("submissions"), local_hostname="client.example",
                     timeout=10, context=verify_ctx(srv))
    try:
        code, resp = s.ehlo()
        assert code == 250, resp
        assert not s.has_extn("starttls"), resp
        code, resp = s.mail(SENDER)
        assert code == 530 and resp.startswith(b"5.7.0"), (code, resp)
        assert b"Authentication required" in resp, resp
        s.quit()
    finally:
        s.close()


def test_submissions_plaintext_silent_client_gets_nothing(idle_srv):
    with socket.create_connection(("127.0.0.1", idle_srv.port_for("submissions")),
                                  timeout=10) as s:
        data, closed, elapsed = read_until_closed(s, 8.0)
    assert b"220" not in data, data
    assert data == b"", data
    assert closed, "connection still open after 8 s"
    assert elapsed <= 6.5, f"closed only after {elapsed:.1f} s (idle_timeout 3s)"


def test_submissions_plaintext_ehlo_gets_no_reply(idle_srv):
    with socket.create_connection(("127.0.0.1", idle_srv.port_for("submissions")),
                                  timeout=10) as s:
        s.sendall(b"EHLO x\r\n")
        data, closed, elapsed = read_until_closed(s, 8.0)
    assert not re.search(rb"(^|\n)\d{3}[ -]", data), f"an SMTP reply in plaintext: {data!r}"
    assert b"220" not in data and b"250" not in data, data
    assert closed, "connection still open after 8 s"
    assert elapsed <= 6.5, f"closed only after {elapsed:.1f} s"


# ----------------------------------------------------------------------------
# versions and ciphers

@pytest.mark.parametrize("role", TLS_ROLES)
@pytest.mark.parametrize("flag,want", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_modern_versions_accepted(srv, role, flag, want):
    p = s_client(srv.port_for(role), role, flag)
    assert handshake_ok(p), show(p)
    label, cipher = negotiated(p)
    assert label == want, show(p)


@pytest.mark.parametrize("role", TLS_ROLES)
@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_old_versions_refused(srv, role, flag):
    p = s_client(srv.port_for(role), role, flag, "-cipher", "DEFAULT@SECLEVEL=0")
    assert not handshake_ok(p), show(p)
    assert p.returncode != 0, show(p)


@pytest.mark.parametrize("role", TLS_ROLES)
@pytest.mark.parametrize("cipher,ok", [("AES128-SHA", False),
                                       ("ECDHE-RSA-AES128-SHA", False),
                                       ("ECDHE-RSA-AES128-GCM-SHA256", True)])
def test_tls12_cipher_policy(srv, role, cipher, ok):
    p = s_client(srv.port_for(role), role, "-tls1_2", "-cipher", cipher)
    if ok:
        assert handshake_ok(p), show(p)
        assert negotiated(p) == ("TLSv1.2", cipher), show(p)
    else:
        assert not handshake_ok(p), show(p)
        assert p.returncode != 0, show(p)


def test_min_version_13(ternd_factory):
    t = ternd_factory.start(listeners=TLS_ROLES, tls_min_version="1.3")
    for role in TLS_ROLES:
        p = s_client(t.port_for(role), role, "-tls1_2")
        assert not handshake_ok(p), f"{role}: TLS 1.2 accepted\n" + show(p)
        p = s_client(t.port_for(role), role, "-tls1_3")
        assert handshake_ok(p), f"{role}: TLS 1.3 refused\n" + show(p)
        assert negotiated(p)[0] == "TLSv1.3", show(p)


# ----------------------------------------------------------------------------
# logging

def test_log_tls_session_13(log_srv):
    off = len(log_srv.log())
    with th.smtps_client(log_srv.port_for("submissions")) as c:
        assert c.sock.version() == "TLSv1.3"
        c.ehlo()
        c.expect("QUIT", 221)
    lines = wait_log_events(log_srv, "tls", off, lambda ln: "version=TLSv1.3" in ln)
    assert lines, log_srv.log()[off:][-3000:]
    assert re.search(r"(^|\s)cipher=\S+", lines[0]), lines[0]


def test_log_tls_session_12_forced(log_srv):
    off = len(log_srv.log())
    ctx = th.tls_context_noverify(maximum=ssl.TLSVersion.TLSv1_2)
    with SMTPClient(log_srv.port_for("mx")) as c:
        c.ehlo()
        c.expect("STARTTLS", 220, "2.0.0")
        th.tls_wrap(c, ctx)
        assert c.sock.version() == "TLSv1.2"
        c.ehlo()
        c.expect("QUIT", 221)
    lines = wait_log_events(log_srv, "tls", off, lambda ln: "version=TLSv1.2" in ln)
    assert lines, log_srv.log()[off:][-3000:]
    assert re.search(r"(^|\s)cipher=\S+", lines[0]), lines[0]


def test_log_tls_error_on_failed_handshake(log_srv):
    off = len(log_srv.log())
    p = s_client(log_srv.port_for("mx"), "mx", "-tls1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert not handshake_ok(p), show(p)
    lines = wait_log_events(log_srv, "tls-error", off)
    assert lines, log_srv.log()[off:][-3000:]
    assert re.search(r"(^|\s)reason=\S+", lines[0]), lines[0]
    assert not th.log_events(log_srv.log()[off:], "tls"), "a failed handshake logged event=tls"
