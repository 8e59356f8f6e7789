"""Several certificates chosen by SNI (`tls_sni CERT KEY`), and SIGHUP:
certificates, users and configuration reloaded without dropping a
connection; a bad file changes nothing."""

import os
import shutil
import signal
import socket
import ssl
import threading
import time

import pytest

import tern_harness as th
from tern_harness import SMTPClient, check, sasl_plain

ALICE, ALICE_PW = "alice@localhost", "pw-Alice-reload"
BOB, BOB_PW = "bob@localhost", "pw-Bob-reload"


def cert(directory, name, cn, sans=None):
    """A self-signed certificate: CN cn, DNS subjectAltNames sans (None:
    no subjectAltName at all)."""
    d = os.fspath(directory)
    c, k = os.path.join(d, f"{name}-cert.pem"), os.path.join(d, f"{name}-key.pem")
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
            "-days", "2", "-keyout", k, "-out", c]
    if sans:
        args += ["-addext", "subjectAltName=" + ",".join(f"DNS:{s}" for s in sans)]
    p = th.openssl_run(args)
    assert p.returncode == 0, p.stderr
    os.chmod(k, 0o600)
    return c, k


def peer_fp(port, server_hostname, starttls=False, context=None):
    ctx = context or th.tls_context_noverify()
    if starttls:
        c = SMTPClient(port)
        c.ehlo()
        c.expect("STARTTLS", 220, "2.0.0")
        th.tls_wrap(c, ctx, server_hostname=server_hostname)
    else:
        c = th.smtps_client(port, ctx, server_hostname=server_hostname)
    with c:
        der = c.sock.getpeercert(binary_form=True)
    return th.cert_fingerprint(ssl.DER_cert_to_PEM_cert(der).encode())


# ----------------------------------------------------------------------------
# SNI

@pytest.fixture(scope="module")
def sni(module_factory):
    base = module_factory.base()
    d = base / "certs"
    d.mkdir()
    default = cert(d, "default", th.HOSTNAME, [th.HOSTNAME])
    alpha = cert(d, "alpha", "mail.alpha.example", ["mail.alpha.example", "*.beta.example"])
    gamma = cert(d, "gamma", "gamma.example")           # CN only
    t = module_factory.start(base=base, name="sni", listeners=["mx", "submissions"],
                             tls_cert=default[0], tls_key=default[1],
                             tls_sni=[f"{alpha[0]} {alpha[1]}", f"{gamma[0]} {gamma[1]}"])
    t.fp = {n: th.cert_fingerprint(c[0]) for n, c in
            (("default", default), ("alpha", alpha), ("gamma", gamma))}
    return t


@pytest.mark.parametrize("name,want", [
    ("mail.alpha.example", "alpha"),
    ("MAIL.Alpha.Example", "alpha"),        # names compare without case
    ("smtp.beta.example", "alpha"),         # wildcard: one label
    ("a.b.beta.example", "default"),        # not two labels
    ("beta.example", "default"),            # nor none
    ("gamma.example", "gamma"),             # from the CN when no subjectAltName
    ("unknown.example", "default"),
    (None, "default"),                      # no SNI at all
])
@pytest.mark.parametrize("role", ["mx", "submissions"])
def test_certificate_chosen_by_sni(sni, name, want, role):
    got = peer_fp(sni.port_for(role), name, starttls=(role == "mx"))
    assert got == sni.fp[want], (name, role)


def test_sni_certificates_logged_at_start(sni):
    lines = th.log_events(sni.log(), "tls-sni-cert")
    names = {ln.split("name=")[1].split()[0] for ln in lines}
    assert names == {"mail.alpha.example", "*.beta.example", "gamma.example"}


def test_sni_key_readable_by_others_refused(ternd_factory, tmp_path):
    c, k = cert(tmp_path, "loose", "loose.example", ["loose.example"])
    os.chmod(k, 0o644)
    t = ternd_factory.start(tls_sni=f"{c} {k}", wait=False)
    assert t.proc.wait(timeout=15) != 0
    t.killed = True
    assert f"{k} is readable by group or others" in t.log()


def test_sni_missing_key_value_names_file_and_line(ternd_factory, tmp_path):
    t = ternd_factory.start(tls_sni="/nonexistent/cert.pem", wait=False)
    assert t.proc.wait(timeout=15) != 0
    t.killed = True
    assert f"{t.conf_path}:" in t.log() and "tls_sni: missing value" in t.log()


# ----------------------------------------------------------------------------
# SIGHUP

def hup_and_wait(t, event="reload", timeout=15):
    n = len(th.log_events(t.log(), event))
    os.kill(t.pid, signal.SIGHUP)
    assert th.wait_until(lambda: len(th.log_events(t.log(), event)) > n, timeout=timeout)
    return th.log_events(t.log(), event)[-1]


def wait_generation(t, gen, timeout=15):
    assert th.wait_until(lambda: len([ln for ln in th.log_events(t.log(), "worker-start")
                               if f"generation={gen}" in ln]) >= 2, timeout=timeout)


@pytest.fixture
def rl(ternd_factory):
    base = ternd_factory.base()
    d = base / "certs"
    d.mkdir()
    one = cert(d, "one", th.HOSTNAME, [th.HOSTNAME])
    two = cert(d, "two", th.HOSTNAME, [th.HOSTNAME])
    live_c, live_k = d / "live-cert.pem", d / "live-key.pem"
    shutil.copy(one[0], live_c)
    shutil.copy(one[1], live_k)
    os.chmod(live_k, 0o600)
    users = th.write_users(base / "users", {ALICE: ALICE_PW})
    t = ternd_factory.start(base=base, name="reload", listeners=["mx", "submission"],
                            tls_cert=str(live_c), tls_key=str(live_k), users=str(users),
                            max_message_size="1M")
    t.certs = {"one": one, "two": two, "live": (live_c, live_k)}
    t.users_path = users
    return t


def test_reload_new_certificate_seen_by_new_connection_open_session_continues(rl):
    mx = rl.port_for("mx")
    fp_one = th.cert_fingerprint(rl.certs["one"][0])
    fp_two = th.cert_fingerprint(rl.certs["two"][0])
    assert peer_fp(mx, th.HOSTNAME, starttls=True) == fp_one
    # a session in the middle of a transaction, inside TLS
    old = SMTPClient(mx)
    old.ehlo()
    old.expect("STARTTLS", 220, "2.0.0")
    th.tls_wrap(old)
    old.ehlo()
    old.expect("MAIL FROM:<sender@remote.example>", 250)
    old.expect(f"RCPT TO:<{ALICE}>", 250)
    shutil.copy(rl.certs["two"][0], rl.certs["live"][0])
    shutil.copy(rl.certs["two"][1], rl.certs["live"][1])
    line = hup_and_wait(rl)
    assert "generation=1" in line
    wait_generation(rl, 1)
    assert peer_fp(mx, th.HOSTNAME, starttls=True) == fp_two
    with old:
        old.expect("DATA", 354)
        old.send(b"Subject: across a reload\r\n\r\nstill here\r\n.\r\n")
        check(old.reply(), 250, "2.0.0")
        old.expect("QUIT", 221)
    mail = th.wait_mail(rl.data_dir, "localhost", "alice")
    assert any(b"across a reload" in m for m in mail)
    # the old worker left once its last session ended
    assert th.wait_until(lambda: "child=worker/draining" in rl.log())


def test_reload_applies_configuration_and_users(rl):
    mx = rl.port_for("mx")
    with SMTPClient(mx) as c:
        assert "SIZE 1048576" in c.ehlo().text
    cfg = rl.conf_path.read_text().replace("max_message_size 1M", "max_message_size 2M")
    rl.conf_path.write_text(cfg)
    th.write_users(rl.users_path, {ALICE: ALICE_PW, BOB: BOB_PW})
    hup_and_wait(rl)
    wait_generation(rl, 1)
    with SMTPClient(mx) as c:
        assert "SIZE 2097152" in c.ehlo().text
    with SMTPClient(rl.port_for("submission")) as c:
        c.ehlo()
        c.expect("STARTTLS", 220)
        th.tls_wrap(c)
        c.ehlo()
        c.expect("AUTH PLAIN " + sasl_plain(BOB, BOB_PW), 235, "2.7.0")


@pytest.mark.parametrize("breakage,words", [
    ("config", "unknown keyword 'max_mesage_size'"),
    ("users", "is readable by group or others"),
    ("cert", "cannot load"),
])
def test_bad_reload_changes_nothing(rl, breakage, words):
    mx = rl.port_for("mx")
    fp_one = th.cert_fingerprint(rl.certs["one"][0])
    if breakage == "config":
        with open(rl.conf_path, "a") as f:
            f.write("max_mesage_size 5M\n")
    elif breakage == "users":
        os.chmod(rl.users_path, 0o644)
    else:
        rl.certs["live"][0].write_text("not a certificate\n")
    line = hup_and_wait(rl, event="reload-failed")
    assert words in line and "kept the running configuration" in line
    assert rl.running()
    # the same workers, the same certificate, still serving
    assert "generation=1" not in rl.log()
    with SMTPClient(mx) as c:
        c.ehlo()
        c.expect("STARTTLS", 220)
        th.tls_wrap(c)
        assert th.cert_fingerprint(ssl.DER_cert_to_PEM_cert(
            c.sock.getpeercert(binary_form=True)).encode()) == fp_one
        c.ehlo()
        c.expect("MAIL FROM:<x@remote.example>", 250)


def test_reload_adds_a_listener(rl):
    port = th.free_port()
    cfg = rl.conf_path.read_text() + f"listen 127.0.0.1:{port} mx\n"
    rl.conf_path.write_text(cfg)
    hup_and_wait(rl)
    wait_generation(rl, 1)
    with SMTPClient(port) as c:
        c.ehlo()
        c.expect("NOOP", 250)


def test_tls_session_resumes_across_reload(rl):
    """The ticket keys carry over: a client's TLS session survives SIGHUP."""
    mx = rl.port_for("mx")
    ctx = th.tls_context_noverify()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2   # a session object before close, simply
    c = SMTPClient(mx)
    c.ehlo()
    c.expect("STARTTLS", 220)
    th.tls_wrap(c, ctx)
    c.ehlo()
    sess = c.sock.session
    c.expect("QUIT", 221)
    c.close()
    hup_and_wait(rl)
    wait_generation(rl, 1)
    c = SMTPClient(mx)
    c.ehlo()
    c.expect("STARTTLS", 220)
    c.sock = ctx.wrap_socket(c.sock, server_hostname=th.HOSTNAME, session=sess)
    try:
        assert c.sock.session_reused
    finally:
        c.close()


def test_no_connection_dropped_during_reloads(rl):
    """Connections arriving throughout three reloads all get their banner."""
    mx = rl.port_for("mx")
    results = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", mx), timeout=10)
                s.settimeout(10)
                data = s.recv(100)
                s.sendall(b"QUIT\r\n")
                s.recv(100)
                s.close()
                results.append(data[:3])
            except OSError as e:
                results.append(repr(e).encode())

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for th_ in threads:
        th_.start()
    try:
        for gen in (1, 2, 3):
            time.sleep(0.3)
            hup_and_wait(rl)
            wait_generation(rl, gen)
        time.sleep(0.3)
    finally:
        stop.set()
        for th_ in threads:
            th_.join(timeout=20)
    assert len(results) > 20
    bad = [r for r in results if r != b"220"]
    assert not bad, bad[:5]
