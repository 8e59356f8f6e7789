"""`tern doctor` (src/cli/doctor.c, docs/doctor.md): ports probed in
parallel, reachability in words, TLS mode and the mismatches, the
certificate (verified, name, expiry), AUTH in plaintext, the login and its
diagnosis, the verdict, --json and the exit status.

Every run is bounded: --timeout 2 and a subprocess timeout."""

import datetime
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

import tern_harness as th
from fake_mx import FakeMX, SilentPort, refused_port

HOST = th.HOSTNAME
ALICE, ALICE_PW = "alice@localhost", "secret-Alice-42"
BOB, BOB_PW = "bob@example.test", "hunter2-Bob"
LISTENERS = ["mx", "submission", "submission-alt", "submissions"]

PORT_KEYS = {"port", "expected", "status", "status_words", "connect_ms", "banner_ms",
             "banner", "tls_mode", "starttls_offered", "mismatch", "ehlo_before_tls",
             "auth_before_tls", "auth_plaintext_risk", "old_tls_only", "tls", "works",
             "why_not"}
TLS_KEYS = {"version", "cipher", "verified", "verify_error", "legacy_tls_accepted",
            "certificate", "ehlo_after_tls", "auth_after_tls"}
CERT_KEYS = {"subject", "issuer", "chain_length", "name", "name_matches", "not_after",
             "days_left", "expired"}
TOP_KEYS = {"schema", "host", "timeout_ms", "ports", "login", "test_message", "checks",
            "verdict", "ok"}


def doctor(*args, timeout=40):
    t0 = time.monotonic()
    p = subprocess.run([th.TERN, "doctor", *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def check_schema(j):
    assert set(j) == TOP_KEYS
    assert j["schema"] == 1
    for p in j["ports"]:
        assert set(p) == PORT_KEYS, set(p) ^ PORT_KEYS
        assert p["status"] in ("open", "refused", "timeout", "error")
        assert p["tls_mode"] in ("starttls", "implicit", "none", "unknown")
        if p["tls"] is not None:
            assert set(p["tls"]) == TLS_KEYS
            if p["tls"]["certificate"] is not None:
                assert set(p["tls"]["certificate"]) == CERT_KEYS
    assert set(j["verdict"]) == {"port", "tls_mode", "text"}
    if j["checks"] is not None:
        assert set(j["checks"]) == {"relay", "smuggling"}
        for k in ("relay", "smuggling"):
            for c in j["checks"][k] or []:
                assert set(c) == {"port", "result", "reply", "words"}
                assert c["result"] in ("good", "bad", "inconclusive", "not_tested")
    if j["login"] is not None:
        assert set(j["login"]) == {"port", "ok", "code", "mechanism", "reply", "diagnosis"}
    if j["test_message"] is not None:
        assert set(j["test_message"]) == {"ok", "code", "reply", "queue_id"}


def expired_cert(directory, cn=HOST):
    """A self-signed certificate that expired yesterday (openssl x509 with a
    fixed -days from a past start is not in OpenSSL 3.0: cryptography, on
    OpenSSL, instead)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    c, k = directory / "expired-cert.pem", directory / "expired-key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    os.chmod(k, 0o600)
    os.chmod(c, 0o644)
    return c, k


def start(factory, name, cert_fn):
    base = factory.base()
    users = th.write_users(base / "users", {ALICE: ALICE_PW, BOB: BOB_PW})
    cert, key = cert_fn(base / "certs")
    pw = base / "pw"
    pw.write_text(ALICE_PW + "\n")
    bad = base / "bad"
    bad.write_text("Wr0ng-Passw0rd-zq\n")
    t = factory.start(base=base, listeners=LISTENERS, users=str(users), name=name,
                      tls_cert=str(cert), tls_key=str(key), auth_max_failures=64,
                      auth_failure_window="1s", auth_failure_delay=0)
    t.cert, t.pw, t.bad = cert, pw, bad
    return t


@pytest.fixture(scope="module")
def good(module_factory):
    return start(module_factory, "doctor-good", lambda d: th.make_cert(d, HOST, days=30))


def ports_args(srv, sub="starttls", subs="implicit"):
    return ["--port", f"{srv.port_for('submission')}:{sub}",
            "--port", f"{srv.port_for('submissions')}:{subs}"]


def test_good_server_json_login_and_message(good):
    rc, out, err, secs = doctor("127.0.0.1", *ports_args(good), "--tls-name", HOST,
                                "--ca", good.cert, "--user", ALICE, "--password-file", good.pw,
                                "--from", ALICE, "--to", BOB, "--timeout", 4, "--json")
    assert rc == 0, (out, err)
    j = json.loads(out)
    check_schema(j)
    assert j["ok"] is True
    sub, subs = j["ports"]
    assert sub["status"] == "open" and sub["tls_mode"] == "starttls" and sub["starttls_offered"]
    assert sub["banner"].startswith("220 ") and sub["banner_ms"] is not None
    assert subs["tls_mode"] == "implicit" and subs["banner"] is None
    for p in (sub, subs):
        assert p["works"] and p["mismatch"] is None and not p["auth_plaintext_risk"]
        assert p["tls"]["version"] in ("TLSv1.2", "TLSv1.3") and p["tls"]["cipher"]
        assert p["tls"]["verified"] is True and p["tls"]["legacy_tls_accepted"] is False
        c = p["tls"]["certificate"]
        assert c["name_matches"] and not c["expired"] and 28 <= c["days_left"] <= 30
        assert "PLAIN" in p["tls"]["auth_after_tls"]
    assert sub["auth_before_tls"] == ""          # ternd: AUTH only inside TLS
    assert j["login"]["ok"] and j["login"]["mechanism"] == "PLAIN"
    assert j["test_message"]["ok"] and j["test_message"]["queue_id"]
    assert j["verdict"]["port"] == good.port_for("submission")
    assert j["verdict"]["tls_mode"] == "starttls"
    assert th.wait_mail(good.data_dir, "example.test", "bob", count=1, timeout=10)


def test_good_server_text_report_and_settings(good):
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(good), "--tls-name", HOST,
                             "--ca", good.cert, "--timeout", 4)
    assert rc == 0, (out, err)
    assert "plaintext SMTP, STARTTLS offered" in out
    assert "TLS on connect (implicit TLS / SSL)" in out
    assert "verifies against the CA store: yes" in out
    assert f"name matches {HOST}: yes" in out
    assert "TLS 1.0/1.1: refused (good)" in out
    assert f"VERDICT: use port {good.port_for('submission')} with STARTTLS" in out
    for word in ("Python smtplib", "Nodemailer", "PHPMailer", "relayhost = [127.0.0.1]:"):
        assert word in out


def test_closed_and_filtered_ports():
    closed = refused_port("127.0.0.1")
    with SilentPort("127.0.0.1") as silent:
        rc, out, err, secs = doctor("127.0.0.1", "--port", f"{closed}:starttls",
                                    "--port", f"{silent.port}:starttls", "--timeout", 4)
        assert silent.connections >= 1
    assert rc == 1, (out, err)
    assert f"port {closed} (your client: STARTTLS): refused" in out
    assert (f"port {silent.port} (your client: STARTTLS): connected, but no greeting and no "
            "TLS in time; no answer: the port is probably filtered by a firewall or your "
            "ISP; 25 is blocked by most residential and cloud networks") in out
    assert "VERDICT: no submission port works with TLS" in out
    assert secs < 12          # parallel, each bounded by 2 s (two rounds at most)


def test_closed_and_filtered_json():
    closed = refused_port("127.0.0.1")
    with SilentPort("127.0.0.1") as silent:
        rc, out, err, _ = doctor("127.0.0.1", "--port", str(closed), "--port",
                                 str(silent.port), "--timeout", 4, "--json")
    assert rc == 1
    j = json.loads(out)
    check_schema(j)
    assert [p["status"] for p in j["ports"]] == ["refused", "timeout"]
    assert "filtered by a firewall" in j["ports"][1]["status_words"]
    assert j["ok"] is False and j["verdict"]["port"] is None


def test_tls_mode_mismatches_named(good):
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(good, sub="implicit", subs="starttls"),
                             "--tls-name", HOST, "--ca", good.cert, "--timeout", 4)
    subs, sub = good.port_for("submissions"), good.port_for("submission")
    assert (f"MISMATCH: port {subs} expects TLS from the first byte: configure implicit "
            "TLS / SSL, not STARTTLS") in out
    assert (f"MISMATCH: port {sub} starts in plaintext and offers STARTTLS: configure "
            "STARTTLS, not implicit TLS / SSL") in out
    # the ports still work in their real mode: the verdict says which
    assert rc == 0, (out, err)


def test_wrong_password_diagnosed(good):
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(good), "--tls-name", HOST,
                             "--ca", good.cert, "--user", ALICE, "--password-file", good.bad,
                             "--timeout", 4, "--json")
    assert rc == 1, (out, err)
    j = json.loads(out)
    check_schema(j)
    assert j["login"]["ok"] is False and j["login"]["code"] == 535
    assert j["login"]["diagnosis"].startswith("wrong credentials")
    assert "Wr0ng-Passw0rd-zq" not in out + err
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(good), "--tls-name", HOST,
                             "--ca", good.cert, "--user", ALICE, "--password-file", good.bad,
                             "--timeout", 4)
    assert rc == 1
    assert "login as alice@localhost on port" in out and "FAILED: wrong credentials" in out


def test_certificate_for_another_name(ternd_factory):
    srv = start(ternd_factory, "doctor-other", lambda d: th.make_cert(d, "other.example", days=30))
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(srv), "--tls-name", HOST,
                             "--ca", srv.cert, "--timeout", 4)
    assert rc == 1, (out, err)
    assert f"name matches {HOST}: NO" in out
    assert "hostname mismatch" in out


def test_expired_certificate(ternd_factory):
    srv = start(ternd_factory, "doctor-expired", expired_cert)
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(srv), "--tls-name", HOST,
                             "--ca", srv.cert, "--timeout", 4, "--json")
    assert rc == 1, (out, err)
    j = json.loads(out)
    check_schema(j)
    for p in j["ports"]:
        assert p["tls"]["certificate"]["expired"] is True
        assert p["tls"]["certificate"]["days_left"] < 0
        assert "certificate has expired" in p["why_not"]
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(srv), "--tls-name", HOST,
                             "--ca", srv.cert, "--timeout", 4)
    assert rc == 1 and "EXPIRED 1 days ago" in out


def test_auth_over_plaintext_flagged():
    with FakeMX(host="127.0.0.1", port=0, starttls=True, auth={"u@x.test": "pw"},
                auth_plaintext=True) as mx:
        rc, out, err, _ = doctor("127.0.0.1", "--port", f"{mx.port}:starttls",
                                 "--timeout", 4)
        assert "RISK: AUTH (PLAIN LOGIN) offered before TLS" in out
        rc, out, err, _ = doctor("127.0.0.1", "--port", f"{mx.port}:starttls",
                                 "--timeout", 4, "--json")
    j = json.loads(out)
    check_schema(j)
    assert j["ports"][0]["auth_plaintext_risk"] is True
    assert j["ports"][0]["auth_before_tls"] == "PLAIN LOGIN"
    # self-signed, not trusted: no working port
    assert rc == 1 and j["ok"] is False


def test_usage():
    rc, out, err, _ = doctor()
    assert rc == 2 and "usage: tern doctor" in err


# ---- --checks relay ---------------------------------------------------------

def test_open_relay_found(good):
    """FakeMX takes any RCPT: an open relay. The doctor stops after RCPT
    (RSET, QUIT, never DATA) and fails, although ternd's submission port
    works."""
    with FakeMX(host="127.0.0.1", port=0) as mx:
        rc, out, err, secs = doctor("127.0.0.1", *ports_args(good), "--port", f"{mx.port}:may",
                                    "--tls-name", HOST, "--ca", good.cert,
                                    "--checks", "relay", "--timeout", 4)
        transcript = [line for t in mx.transcripts for line in t]
        assert mx.messages == []
    assert rc == 1, (out, err)
    assert (f"open relay check: OPEN RELAY: the server accepted RCPT "
            "TO:<tern-doctor-relay-check@example.net>, a domain that is not its own, from a "
            "client that did not log in") in out
    assert f"SERIOUS: port {mx.port} is an OPEN RELAY" in out
    assert any(line.startswith("C: RCPT TO:<tern-doctor-relay-check@example.net>")
               for line in transcript), transcript
    assert any(line.startswith("C: RSET") for line in transcript), transcript
    assert not any(line.startswith("C: DATA") for line in transcript), transcript
    assert secs < 20


def test_open_relay_json_and_relay_to():
    with FakeMX(host="127.0.0.1", port=0) as mx:
        rc, out, err, _ = doctor("127.0.0.1", "--port", f"{mx.port}:may", "--checks", "relay",
                                 "--relay-to", "victim@relay-target.example",
                                 "--timeout", 4, "--json")
    assert rc == 1, (out, err)
    j = json.loads(out)
    check_schema(j)
    assert j["checks"]["smuggling"] is None
    (c,) = j["checks"]["relay"]
    assert c["port"] == mx.port and c["result"] == "bad"
    assert c["words"].startswith("OPEN RELAY") and "victim@relay-target.example" in c["words"]
    assert c["reply"].startswith("250")


def test_relay_refused_by_ternd(good):
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(good), "--port",
                             f"{good.port_for('mx')}:may", "--tls-name", HOST,
                             "--ca", good.cert, "--checks", "relay", "--timeout", 4, "--json")
    assert rc == 0, (out, err)
    j = json.loads(out)
    check_schema(j)
    res = {c["port"]: c for c in j["checks"]["relay"]}
    mx = res[good.port_for("mx")]
    assert mx["result"] == "good" and mx["words"].startswith("refused (good)")
    assert mx["reply"][0] == "5"
    # the submission port (plaintext greeting) is checked too, and refuses
    assert res[good.port_for("submission")]["result"] == "good"
    # implicit TLS ports are not checked (raw plaintext conversation)
    assert good.port_for("submissions") not in res
    assert j["ok"] is True


def test_checks_usage():
    for bad in (["--checks", "nonsense"], ["--checks", ""], ["--relay-to", "no-at-sign"],
                ["--relay-to", "a@b>\r\nDATA"]):
        rc, _, err, _ = doctor("127.0.0.1", *bad)
        assert rc == 2 and "usage: tern doctor" in err and "--checks relay,smuggling" in err


# ---- --checks smuggling -----------------------------------------------------

class BareLFServer:
    """A vulnerable SMTP server: any LF . LF (bare or not) ends DATA, with 250.
    Records what each connection sent and the replies to end of data."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = []      # bytes per connection
        self.accepted = 0       # messages ended by "\n.\n"
        self.threads = []
        self.stopping = False
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self.acceptor.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.sock.close()
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, c):
        c.settimeout(10)
        log = bytearray()
        self.received.append(log)
        buf, in_data = b"", False
        try:
            c.sendall(b"220 vulnerable.example ESMTP\r\n")
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    return
                log += chunk
                buf += chunk
                while True:
                    if in_data:
                        if b"\n.\n" not in buf and b"\n.\r\n" not in buf:
                            break
                        i = min(k for k in (buf.find(b"\n.\n"), buf.find(b"\n.\r\n"))
                                if k >= 0)
                        buf = buf[i + 3:].lstrip(b"\n")
                        in_data = False
                        self.accepted += 1
                        c.sendall(b"250 2.0.0 Ok: queued as VULN1\r\n")
                        continue
                    if b"\n" not in buf:
                        break
                    line, buf = buf.split(b"\n", 1)
                    verb = line.strip().upper()[:4]
                    if verb == b"EHLO":
                        c.sendall(b"250-vulnerable.example\r\n250 8BITMIME\r\n")
                    elif verb == b"DATA":
                        in_data = True
                        c.sendall(b"354 go ahead\r\n")
                    elif verb == b"QUIT":
                        c.sendall(b"221 bye\r\n")
                        return
                    else:
                        c.sendall(b"250 ok\r\n")
        except OSError:
            return
        finally:
            c.close()


def test_smuggling_exposed():
    with BareLFServer() as srv:
        rc, out, err, secs = doctor("127.0.0.1", "--port", f"{srv.port}:may",
                                    "--from", "doctor@example.org", "--to", "me@vulnerable.example",
                                    "--checks", "smuggling", "--timeout", 4)
    assert rc == 1, (out, err)
    assert ("SMTP smuggling check: EXPOSED to SMTP smuggling: the server took a bare LF dot "
            "(LF . LF) as the end of DATA") in out
    for cve in ("CVE-2023-51764", "CVE-2023-51765", "CVE-2023-51766"):
        assert cve in out
    assert f"SERIOUS: port {srv.port} is EXPOSED to SMTP smuggling" in out
    (wire,) = [bytes(w) for w in srv.received if b"DATA\r\n" in w]   # round 1 connects too
    # the documented bytes, and never a CR LF . CR LF
    assert wire.endswith(b"\r\n\r\nx\n.\n"), wire
    assert b"Subject: tern doctor smuggling check\r\n" in wire
    assert b"\r\n.\r\n" not in wire
    assert secs < 15


def test_smuggling_not_exposed_ternd(ternd_factory):
    srv = start(ternd_factory, "doctor-smuggle", lambda d: th.make_cert(d, HOST, days=30))
    rc, out, err, secs = doctor("127.0.0.1", *ports_args(srv), "--port",
                                f"{srv.port_for('mx')}:may", "--tls-name", HOST,
                                "--ca", srv.cert, "--from", "doctor@example.org", "--to", BOB,
                                "--checks", "relay,smuggling", "--timeout", 4)
    assert rc == 0, (out, err)
    mx = srv.port_for("mx")
    section = out.split(f"port {mx} ")[1]
    assert ("SMTP smuggling check: not exposed (good): no reply within 2 s to a bare LF dot "
            "(LF . LF): the server still reads the message") in section
    assert "open relay check: refused (good)" in section
    sub = out.split(f"port {srv.port_for('submission')} ")[1].split("\nport ")[0]
    assert "SMTP smuggling check: not tested" in sub
    assert "SERIOUS" not in out
    # the unterminated DATA was never delivered
    time.sleep(1)
    assert th.maildir_new(srv.data_dir, "example.test", "bob") == []
    assert secs < 25


def test_smuggling_needs_to():
    with BareLFServer() as srv:
        rc, out, err, _ = doctor("127.0.0.1", "--port", f"{srv.port}:may",
                                 "--checks", "smuggling", "--timeout", 4)
        assert srv.received == [] or all(b"DATA" not in w for w in srv.received)
    assert "SMTP smuggling check: not tested: needs --from/--to" in out
    assert rc == 1      # no working submission port, nothing exposed found


# ---- TLS 1.0 only -------------------------------------------------------------

def test_tls10_only_listener_flagged(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl binary")
    cert, key = th.make_cert(tmp_path, HOST, days=30)
    reasons = []
    for flag in ("-tls1", "-tls1_1"):
        port = th.free_port()
        proc = subprocess.Popen([openssl, "s_server", flag, "-cipher", "DEFAULT@SECLEVEL=0",
                                 "-cert", str(cert), "-key", str(key), "-quiet",
                                 "-accept", f"127.0.0.1:{port}"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            if not th.wait_until(lambda: _listening(port) or proc.poll() is not None,
                                 timeout=10) or proc.poll() is not None:
                reasons.append(f"openssl s_server {flag} did not start: "
                               f"{proc.stderr.read().decode(errors='replace')[-300:]}")
                continue
            rc, out, err, secs = doctor("127.0.0.1", "--port", f"{port}:implicit",
                                        "--tls-name", HOST, "--ca", cert, "--timeout", 4)
            version = "TLSv1" if flag == "-tls1" else "TLSv1.1"
            if f"OLD TLS ONLY: the server accepts only an old TLS version ({version};" not in out:
                reasons.append(f"{flag}: not negotiated here:\n{out}\n{err}")
                continue
            assert rc == 1, (out, err)
            assert "FLAGGED: outdated, RFC 8996" in out
            assert f"TLS: {version}, " in out and "(OUTDATED)" in out
            assert "TLS 1.0/1.1: still accepted (FLAGGED" in out
            assert (f"submission: does not work: the server accepts only an old TLS version "
                    f"({version})") in out
            assert "filtered" not in out
            assert secs < 15
            rc, out, err, _ = doctor("127.0.0.1", "--port", f"{port}:implicit", "--tls-name",
                                     HOST, "--ca", cert, "--timeout", 4, "--json")
            j = json.loads(out)
            check_schema(j)
            (p,) = j["ports"]
            assert p["old_tls_only"] is True and p["status"] == "open"
            assert p["tls_mode"] == "implicit" and p["tls"]["version"] == version
            assert p["tls"]["legacy_tls_accepted"] is True and j["ok"] is False
            return
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    pytest.skip("no TLS 1.0/1.1-only listener possible here: " + " | ".join(reasons))


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# ---- locked account ------------------------------------------------------------

def test_locked_account_diagnosed(ternd_factory):
    base = ternd_factory.base()
    users = th.write_users(base / "users", {ALICE: ALICE_PW})
    cert, key = th.make_cert(base / "certs", HOST, days=30)
    pw, bad = base / "pw", base / "bad"
    pw.write_text(ALICE_PW + "\n")
    bad.write_text("Wr0ng-Passw0rd-zq\n")
    srv = ternd_factory.start(base=base, listeners=LISTENERS, users=str(users),
                              name="doctor-locked", tls_cert=str(cert), tls_key=str(key),
                              auth_max_failures=1, auth_failure_window="10m",
                              auth_lockout="10m", auth_failure_delay=0)
    args = ["127.0.0.1", "--port", f"{srv.port_for('submission')}:starttls",
            "--tls-name", HOST, "--ca", cert, "--user", ALICE, "--timeout", 4]
    rc, out, err, _ = doctor(*args, "--password-file", bad)
    assert rc == 1, (out, err)
    rc, out, err, _ = doctor(*args, "--password-file", pw, "--json")
    assert rc == 1, (out, err)
    j = json.loads(out)
    check_schema(j)
    assert j["login"]["ok"] is False and j["login"]["code"] == 421
    assert j["login"]["reply"].startswith("Too many failed logins") or "4.7.0" in out
    assert j["login"]["diagnosis"].startswith("account locked by rate limits")
    rc, out, err, _ = doctor(*args, "--password-file", pw)
    assert rc == 1
    assert "FAILED: account locked by rate limits" in out and "421 4.7.0" in out
