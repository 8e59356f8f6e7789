"""`tern doctor` (src/cli/doctor.c, docs/doctor.md): ports probed in
parallel, reachability in words, TLS mode and the mismatches, the
certificate (verified, name, expiry), AUTH in plaintext, the login and its
diagnosis, the verdict, --json and the exit status.

Every run is bounded: --timeout 2 and a subprocess timeout."""

import datetime
import json
import os
import subprocess
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
             "auth_before_tls", "auth_plaintext_risk", "tls", "works", "why_not"}
TLS_KEYS = {"version", "cipher", "verified", "verify_error", "legacy_tls_accepted",
            "certificate", "ehlo_after_tls", "auth_after_tls"}
CERT_KEYS = {"subject", "issuer", "chain_length", "name", "name_matches", "not_after",
             "days_left", "expired"}
TOP_KEYS = {"schema", "host", "timeout_ms", "ports", "login", "test_message", "verdict", "ok"}


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
                                "--from", ALICE, "--to", BOB, "--timeout", 2, "--json")
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
    th.wait_mail(good.data_dir, "example.test", "bob", count=1, timeout=10)


def test_good_server_text_report_and_settings(good):
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(good), "--tls-name", HOST,
                             "--ca", good.cert, "--timeout", 2)
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
                                    "--port", f"{silent.port}:starttls", "--timeout", 2)
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
                                 str(silent.port), "--timeout", 2, "--json")
    assert rc == 1
    j = json.loads(out)
    check_schema(j)
    assert [p["status"] for p in j["ports"]] == ["refused", "timeout"]
    assert "filtered by a firewall" in j["ports"][1]["status_words"]
    assert j["ok"] is False and j["verdict"]["port"] is None


def test_tls_mode_mismatches_named(good):
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(good, sub="implicit", subs="starttls"),
                             "--tls-name", HOST, "--ca", good.cert, "--timeout", 2)
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
                             "--timeout", 2, "--json")
    assert rc == 1, (out, err)
    j = json.loads(out)
    check_schema(j)
    assert j["login"]["ok"] is False and j["login"]["code"] == 535
    assert j["login"]["diagnosis"].startswith("wrong credentials")
    assert "Wr0ng-Passw0rd-zq" not in out + err
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(good), "--tls-name", HOST,
                             "--ca", good.cert, "--user", ALICE, "--password-file", good.bad,
                             "--timeout", 2)
    assert rc == 1
    assert "login as alice@localhost on port" in out and "FAILED: wrong credentials" in out


def test_certificate_for_another_name(ternd_factory):
    srv = start(ternd_factory, "doctor-other", lambda d: th.make_cert(d, "other.example", days=30))
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(srv), "--tls-name", HOST,
                             "--ca", srv.cert, "--timeout", 2)
    assert rc == 1, (out, err)
    assert f"name matches {HOST}: NO" in out
    assert "hostname mismatch" in out


def test_expired_certificate(ternd_factory):
    srv = start(ternd_factory, "doctor-expired", expired_cert)
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(srv), "--tls-name", HOST,
                             "--ca", srv.cert, "--timeout", 2, "--json")
    assert rc == 1, (out, err)
    j = json.loads(out)
    check_schema(j)
    for p in j["ports"]:
        assert p["tls"]["certificate"]["expired"] is True
        assert p["tls"]["certificate"]["days_left"] < 0
        assert "certificate has expired" in p["why_not"]
    rc, out, err, _ = doctor("127.0.0.1", *ports_args(srv), "--tls-name", HOST,
                             "--ca", srv.cert, "--timeout", 2)
    assert rc == 1 and "EXPIRED 1 days ago" in out


def test_auth_over_plaintext_flagged():
    with FakeMX(host="127.0.0.1", port=0, starttls=True, auth={"u@x.test": "pw"},
                auth_plaintext=True) as mx:
        rc, out, err, _ = doctor("127.0.0.1", "--port", f"{mx.port}:starttls",
                                 "--timeout", 2)
        assert "RISK: AUTH (PLAIN LOGIN) offered before TLS" in out
        rc, out, err, _ = doctor("127.0.0.1", "--port", f"{mx.port}:starttls",
                                 "--timeout", 2, "--json")
    j = json.loads(out)
    check_schema(j)
    assert j["ports"][0]["auth_plaintext_risk"] is True
    assert j["ports"][0]["auth_before_tls"] == "PLAIN LOGIN"
    # self-signed, not trusted: no working port
    assert rc == 1 and j["ok"] is False


def test_usage():
    rc, out, err, _ = doctor()
    assert rc == 2 and "usage: tern doctor" in err
