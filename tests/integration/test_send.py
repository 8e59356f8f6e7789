"""`tern send` (src/cli/send.c): one message, MIME with base64 attachments,
submitted through ternd's submission ports with AUTH, and the automatic
order of ports and TLS modes tried against refused, silent and fake ports.

Every run of tern is bounded: --timeout 2 and a subprocess timeout."""

import email
import email.policy
import os
import subprocess

import pytest

import tern_harness as th
from fake_mx import FakeMX, SilentPort, refused_port

ALICE, ALICE_PW = "alice@localhost", "secret-Alice-42"
BOB, BOB_PW = "bob@example.test", "hunter2-Bob"
LISTENERS = ["mx", "submission", "submission-alt", "submissions"]


def tern(*args, timeout=30):
    p = subprocess.run([th.TERN, "send", *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def srv(module_factory):
    base = module_factory.base()
    users = th.write_users(base / "users", {ALICE: ALICE_PW, BOB: BOB_PW})
    return module_factory.start(base=base, listeners=LISTENERS, users=str(users),
                                name="send", auth_max_failures=64,
                                auth_failure_window="1s", auth_failure_delay=0)


@pytest.fixture(scope="module")
def pwfile(tmp_path_factory):
    d = tmp_path_factory.mktemp("send-pw")
    good, bad = d / "good", d / "bad"
    good.write_text(ALICE_PW + "\n")
    bad.write_text("Wr0ng-Passw0rd-zq\n")
    os.chmod(good, 0o600)
    os.chmod(bad, 0o600)
    return good, bad


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def bob_mail(srv, count):
    return th.wait_mail(srv.data_dir, "example.test", "bob", count=count, timeout=10)


def test_send_submission_starttls_auth(srv, pwfile):
    before = len(th.read_mail(srv.data_dir, "example.test", "bob"))
    rc, out, err = tern("--server", "127.0.0.1", "--port",
                        f"{srv.port_for('submission')}:starttls",
                        "--from", ALICE, "--to", BOB, "--subject", "hello from tern send",
                        "--auth", ALICE, "--password-file", pwfile[0], "--timeout", 2)
    assert rc == 0, (out, err)
    assert "sent: port" in out and "250" in out
    qid = [ln for ln in out.splitlines() if ln.startswith("queue id: ")][0][10:]
    assert qid and " " not in qid
    mails = bob_mail(srv, before + 1)
    msg = parse(mails[-1])
    assert msg["Subject"] == "hello from tern send"
    assert msg["Date"] and msg["Message-ID"].startswith("<") and "@localhost>" in msg["Message-ID"]
    assert msg["From"] == f"<{ALICE}>" or ALICE in msg["From"]
    assert "test message sent by tern send" in msg.get_content()


def test_send_implicit_tls_verbose_masks_password(srv, pwfile):
    rc, out, err = tern("--server", "127.0.0.1", "--port",
                        f"{srv.port_for('submissions')}:implicit",
                        "--from", ALICE, "--to", BOB, "--auth", ALICE,
                        "--password-file", pwfile[0], "--timeout", 2, "-v")
    assert rc == 0, (out, err)
    assert "implicit TLS" in out
    assert "*  TLS: TLSv1." in out
    assert "-> AUTH PLAIN ******** (user alice@localhost, password masked)" in out
    assert "<- 235" in out
    assert f"-> MAIL FROM:<{ALICE}>" in out and f"-> RCPT TO:<{BOB}>" in out
    assert "<- 250" in out and "-> QUIT" in out
    assert ALICE_PW not in out + err
    import base64
    assert base64.b64encode(f"\0{ALICE}\0{ALICE_PW}".encode()).decode() not in out + err


def test_send_attachment_multipart_base64(srv, pwfile, tmp_path):
    before = len(th.read_mail(srv.data_dir, "example.test", "bob"))
    blob = bytes(range(256)) * 40 + b"\r\n.\r\nend"
    att = tmp_path / "data.bin"
    att.write_bytes(blob)
    body = tmp_path / "body.txt"
    body.write_text("Grüße aus tern\nzweite Zeile\n", encoding="utf-8")
    rc, out, err = tern("--server", "127.0.0.1", "--port",
                        f"{srv.port_for('submission-alt')}:starttls",
                        "--from", ALICE, "--to", BOB, "--subject", "Anhang: Grüße",
                        "--body", body, "--attach", att,
                        "--auth", ALICE, "--password-file", pwfile[0], "--timeout", 2)
    assert rc == 0, (out, err)
    msg = parse(bob_mail(srv, before + 1)[-1])
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["Subject"] == "Anhang: Grüße"
    parts = list(msg.iter_parts())
    assert parts[0].get_content_type() == "text/plain"
    assert parts[0].get_content() .replace("\r\n", "\n") == "Grüße aus tern\nzweite Zeile\n"
    assert parts[1].get_filename() == "data.bin"
    assert parts[1]["Content-Transfer-Encoding"] == "base64"
    assert parts[1].get_content() == blob


def test_send_wrong_password_stops_with_reply(srv, pwfile):
    # the wrong password is final: the next port (which would work) is not tried
    rc, out, err = tern("--server", "127.0.0.1",
                        "--port", f"{srv.port_for('submission')}:starttls",
                        "--port", f"{srv.port_for('submissions')}:implicit",
                        "--from", ALICE, "--to", BOB, "--auth", ALICE,
                        "--password-file", pwfile[1], "--timeout", 2, "-v")
    assert rc == 1, (out, err)
    assert "login failed: wrong credentials" in err
    assert "535" in err
    assert f"port {srv.port_for('submissions')}" not in out + err
    assert "Wr0ng-Passw0rd-zq" not in out + err


def test_send_recipient_refused(srv, pwfile):
    rc, out, err = tern("--server", "127.0.0.1", "--port",
                        f"{srv.port_for('submission')}:starttls",
                        "--from", ALICE, "--to", "nobody-here@example.test",
                        "--auth", ALICE, "--password-file", pwfile[0], "--timeout", 2)
    assert rc == 1, (out, err)
    assert "recipient <nobody-here@example.test> refused: 5" in err


def test_send_fallback_order():
    """refused -> silent (timeout) -> STARTTLS not offered -> FakeMX with
    STARTTLS and AUTH: each skipped for its reason, the last one takes it."""
    closed = refused_port("127.0.0.1")
    with SilentPort("127.0.0.1") as silent, \
            FakeMX(host="127.0.0.1", port=0) as plain, \
            FakeMX(host="127.0.0.1", port=0, starttls=True, auth={"u@x.test": "pw-u"}) as good:
        pw = th.make_base("tern-send-pw-") / "pw"
        try:
            pw.write_text("pw-u\n")
            rc, out, err = tern("--server", "127.0.0.1",
                                "--port", f"{closed}:starttls",
                                "--port", f"{silent.port}:implicit",
                                "--port", f"{plain.port}:starttls",
                                "--port", f"{good.port}:starttls",
                                "--from", "u@x.test", "--to", "r@y.test",
                                "--auth", "u@x.test", "--password-file", pw,
                                "--timeout", 2, "-v", timeout=30)
        finally:
            th.rmtree(pw.parent)
        assert rc == 0, (out, err)
        lines = err.splitlines()
        assert f"port {closed} (STARTTLS): connect failed" in err and "refused" in err
        assert f"port {silent.port} (implicit TLS): " in err and "timeout" in err
        assert f"port {plain.port} (STARTTLS): tls failed" in err
        order = [out.index(f"port {p} with") for p in (closed, silent.port, plain.port, good.port)]
        assert order == sorted(order)
        assert f"sent: port {good.port} (STARTTLS)" in out
        m = good.wait_messages(1, timeout=5)[0]
        assert m["auth_user"] == "u@x.test" and m["tls"] is not None
        assert plain.messages == []
        qid = [ln for ln in out.splitlines() if ln.startswith("queue id: ")][0][10:]
        assert qid == m["queue_id"]
        assert len(lines) >= 3


def test_send_port25_may_plaintext_without_auth():
    with FakeMX(host="127.0.0.1", port=0) as mx:
        rc, out, err = tern("--server", "127.0.0.1", "--port", f"{mx.port}:may",
                            "--from", "a@x.test", "--to", "b@y.test", "--timeout", 2)
        assert rc == 0, (out, err)
        assert len(mx.wait_messages(1, timeout=5)) == 1


def test_send_usage():
    rc, out, err = tern("--server", "127.0.0.1")
    assert rc == 2 and "usage: tern send" in err
