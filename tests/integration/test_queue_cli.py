"""`tern queue list|show|flush|delete|hold|release` (issue 4).

list and show read the spool files; flush, delete, hold and release ask the
queue process over DATA_DIR/control.sock (src/spool/control.h, protocol in
src/proto/ctl.h). What works without the scheduler's ops is tested as is:
show on a file a running ternd wrote (its queue process stopped with
SIGSTOP so the message stays put), the CLI's messages and exit codes
against no socket, a stale one, one it may not open, and a scripted fake
control socket; and end to end against the queue process: flush, hold,
release, delete.
"""

import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

import tern_harness as th
from tern_harness import SMTPClient


NOBODY = 65534


@pytest.fixture
def base():
    """A temp directory every user can traverse (base is root-only)."""
    b = th.make_base("tern-itq-")
    yield b
    th.rmtree(b)


def need_tern():
    if not os.path.exists(th.TERN):
        pytest.skip(f"{th.TERN} not built yet")


def tern(*args, user=None, timeout=30):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    kw = {}
    if user is not None:
        def drop():
            os.setgroups([])
            os.setgid(user)
            os.setuid(user)
        kw["preexec_fn"] = drop
    p = subprocess.run([th.TERN, "queue", *args], capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env, **kw)
    text = (p.stdout + p.stderr).decode(errors="replace")
    for pat in th.SANITIZER_PATTERNS:
        assert pat not in text, text
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def queue_pid(t):
    """The queue process's pid, from its start line (newest wins)."""
    pat = r"proc=queue event=queue-start pid=(\d+)"
    assert th.wait_until(lambda: re.search(pat, t.log()), 10), t.log()[-2000:]
    pids = re.findall(pat, t.log())
    pid = int(pids[-1])
    assert pid in th.descendants(t.pid), (pid, th.descendants(t.pid))
    return pid


def send(t, rcpt, subject, extra_headers=""):
    with SMTPClient(t.port) as c:
        c.ehlo()
        qid = c.send_message("s@client.example", [rcpt],
                             th.message(subject, to=rcpt, extra_headers=extra_headers))
        c.cmd("QUIT")
    return qid


def spool(t, sub, qid):
    return t.data_dir / "spool" / sub / qid


def blocked_dir(base):
    """A Maildir root the unprivileged queue process cannot write: every
    delivery into it is a temporary failure until it is opened."""
    d = Path(base) / "blocked"
    d.mkdir()
    d.chmod(0)
    return d


# ---------------------------------------------------------------------------
# show and list, on files a running ternd wrote


def test_show_and_list_while_queue_process_stopped(ternd_factory):
    need_tern()
    t = ternd_factory.start()
    qpid = queue_pid(t)
    os.kill(qpid, signal.SIGSTOP)
    try:
        qid = send(t, "shown@localhost", "shown message",
                   extra_headers="X-Trap: a\x1b[2Jb\r\n")
        path = spool(t, "queue", qid)
        assert path.exists(), list((t.data_dir / "spool" / "queue").iterdir())

        rc, out, err = tern("show", qid, "-d", str(t.data_dir))
        assert rc == 0, (out, err)
        assert re.search(rf"^queue id:\s+{qid}$", out, re.M), out
        assert re.search(r"^status:\s+queued$", out, re.M), out
        assert re.search(r"^arrival:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\)$",
                         out, re.M), out
        assert re.search(r"^size:\s+\d+ octets$", out, re.M), out
        assert re.search(r"^sender:\s+<s@client\.example>$", out, re.M), out
        assert re.search(r"^recipients: 1$", out, re.M), out
        assert re.search(r"^  0 <shown@localhost>", out, re.M), out
        assert "state:" not in out, out          # no QID.st: nothing delivered yet
        hdrs = out.split("headers:\n", 1)[1]
        assert "  Subject: shown message\n" in hdrs, out
        assert "  From: <sender@client.example>\n" in hdrs, out
        # the message's bytes cannot drive the operator's terminal
        assert "\x1b" not in out
        assert "X-Trap: a\\x1B[2Jb" in hdrs, out
        assert "hello" not in hdrs, out          # the body is not shown

        # ids typed in lower case are found too
        rc, out2, err = tern("show", qid.lower(), "-d", str(t.data_dir))
        assert rc == 0 and f"{qid}" in out2, (out2, err)

        # the recipients already done (QID.st) are shown raw under "state:"
        st = path.with_name(qid + ".st")
        st.write_text("0\n")
        try:
            rc, out, err = tern("show", qid, "-d", str(t.data_dir))
            assert rc == 0, err
            assert re.search(r"^state: \(.*\.st\)\n  0\n", out, re.M), out
        finally:
            st.unlink()

        rc, out, err = tern("list", "-d", str(t.data_dir))
        assert rc == 0, err
        line = [ln for ln in out.splitlines() if ln.startswith(qid)]
        assert len(line) == 1 and "<shown@localhost>" in line[0], out
        assert "(held)" not in line[0]
        assert "1 message in the queue" in out, out

        # a held message (spool/hold/, where the scheduler moves it) is listed
        # and shown as held
        hold = t.data_dir / "spool" / "hold"
        made = not hold.exists()
        hold.mkdir(exist_ok=True)
        os.rename(path, hold / qid)
        try:
            rc, out, err = tern("list", "-d", str(t.data_dir))
            assert rc == 0, err
            line = [ln for ln in out.splitlines() if ln.startswith(qid)]
            assert len(line) == 1 and line[0].endswith("(held)"), out
            rc, out, err = tern("show", qid, "-d", str(t.data_dir))
            assert rc == 0, err
            assert re.search(r"^status:\s+held$", out, re.M), out
        finally:
            os.rename(hold / qid, path)
            if made:
                hold.rmdir()
    finally:
        os.kill(qpid, signal.SIGCONT)
    # and the queue process, woken, delivers it as usual
    assert th.wait_mail(t.data_dir, "localhost", "shown", 1, timeout=15), t.log()[-3000:]
    assert th.wait_queue_empty(t.data_dir, timeout=10)


def test_show_unknown_and_bad_ids(base):
    need_tern()
    (base / "spool" / "queue").mkdir(parents=True)
    rc, out, err = tern("show", "0123ABC", "-d", str(base))
    assert rc == 1, (out, err)
    assert "no message 0123ABC" in err, err
    for bad in ("../etc", "ABC.st", "", "x" * 33):
        rc, out, err = tern("show", bad, "-d", str(base))
        assert rc == 2, (bad, out, err)
        assert "usage:" in err, err


def test_list_without_hold_folder(base):
    need_tern()
    (base / "spool" / "queue").mkdir(parents=True)
    rc, out, err = tern("list", "-d", str(base))
    assert rc == 0, err
    assert "0 messages in the queue" in out, out


@pytest.mark.parametrize("args", [
    [], ["bogus"], ["delete"], ["hold"], ["release"], ["show"],
    ["delete", "ABC", "DEF"], ["flush", "ABC", "DEF"], ["list", "extra"],
    ["hold", "AB/C"], ["delete", "@example.com"], ["flush", "@bad_domain"],
    ["flush", "@example.com."], ["flush", "-x"], ["hold", "ABC", "-d"],
])
def test_usage_errors(base, args):
    need_tern()
    rc, out, err = tern(*args)
    assert rc == 2, (args, out, err)
    assert "usage: tern queue" in err, err


# ---------------------------------------------------------------------------
# the control socket from the CLI's side, without ternd


@pytest.mark.parametrize("cmd", [["flush"], ["flush", "@example.com"], ["delete", "ABC"],
                                 ["hold", "ABC"], ["release", "ABC"]])
def test_no_socket_clear_error(base, cmd):
    need_tern()
    rc, out, err = tern(*cmd, "-d", str(base))
    assert rc == 1, (out, err)
    sock = f"{base}/control.sock"
    assert err == (f"tern: cannot reach ternd's queue process at {sock}: "
                   f"No such file or directory (is ternd running with data_dir {base}?)\n"), err


def test_stale_socket_clear_error(base):
    need_tern()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(base / "control.sock"))
    s.close()                                   # what a crashed ternd leaves
    rc, out, err = tern("flush", "-d", str(base))
    assert rc == 1, (out, err)
    assert "Connection refused (is ternd running with data_dir" in err, err


def test_permission_denied_clear_error(base):
    need_tern()
    if os.geteuid() != 0:
        pytest.skip("needs root to run the CLI as another user")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = base / "control.sock"
    srv.bind(str(path))
    os.chmod(path, 0o660)                       # root:root 0660, as ternd would make it
    srv.listen(1)
    try:
        rc, out, err = tern("hold", "ABC", "-d", str(base), user=NOBODY)
    finally:
        srv.close()
    assert rc == 1, (out, err)
    assert err == (f"tern: cannot reach ternd's queue process at {path}: Permission denied "
                   f"(run as root or as a member of the tern group)\n"), err


class FakeControl:
    """A control socket answering each connection with the next scripted
    reply; records the request lines."""

    def __init__(self, path, replies, cwd=None):
        self.path = str(path)
        self.replies = list(replies)
        self.got = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.getcwd()
        if cwd is not None:
            os.chdir(cwd)                       # bind a relative path
        try:
            self.srv.bind(self.path)
        finally:
            os.chdir(old)
        self.srv.listen(4)
        self.srv.settimeout(10)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        for reply in self.replies:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with c:
                c.settimeout(10)
                data = b""
                while b"\n" not in data and len(data) < 1024:
                    chunk = c.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                self.got.append(data)
                c.sendall(reply)

    def close(self):
        self.t.join(timeout=15)
        self.srv.close()


def test_cli_against_fake_control_socket(base):
    need_tern()
    fake = FakeControl(base / "control.sock", [
        b"OK 1 message held\n",
        b"OK 4 messages scheduled for delivery\n",
        b"OK 0 messages scheduled for delivery\n",
        b"ERR no such message\n",
        b"ERR permission denied\n",
        b"250 what\n",
    ])
    d = str(base)
    try:
        rc, out, err = tern("hold", "19a2b3c4d5e6f0100002", "-d", d)
        assert (rc, out) == (0, "1 message held\n"), err
        rc, out, err = tern("flush", "-d", d)
        assert (rc, out) == (0, "4 messages scheduled for delivery\n"), err
        rc, out, err = tern("flush", "@Mail.Example.COM", "-d", d)
        assert (rc, out) == (0, "0 messages scheduled for delivery\n"), err
        rc, out, err = tern("delete", "ABC", "-d", d)
        assert rc == 1 and err == "tern: ternd's queue process refused: no such message\n", err
        rc, out, err = tern("release", "ABC", "-d", d)
        assert rc == 1 and "refused: permission denied (run as root" in err, err
        rc, out, err = tern("flush", "ABC", "-d", d)
        assert rc == 1 and "unexpected reply" in err and '"250 what"' in err, err
    finally:
        fake.close()
    # one line each, in the canonical form: upper-case qid, lower-case domain
    assert fake.got == [b"HOLD 19A2B3C4D5E6F0100002\n", b"FLUSH\n",
                        b"FLUSH @mail.example.com\n", b"DELETE ABC\n", b"RELEASE ABC\n",
                        b"FLUSH ABC\n"], fake.got


def test_cli_long_data_dir(base):
    """A socket path longer than sun_path (108 octets) is still reached."""
    need_tern()
    deep = base / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(str(deep / "control.sock")) > 108
    fake = FakeControl("control.sock", [b"OK 2 messages scheduled for delivery\n"], cwd=deep)
    try:
        rc, out, err = tern("flush", "-d", str(deep))
        assert (rc, out) == (0, "2 messages scheduled for delivery\n"), err
    finally:
        fake.close()
        os.unlink(deep / "control.sock")


# ---------------------------------------------------------------------------
# end to end, once the queue process serves the socket with the scheduler's ops


def wait_socket(t, timeout=10):
    sock = t.data_dir / "control.sock"
    assert th.wait_until(lambda: sock.exists(), timeout), \
        f"no {sock}; log tail:\n{t.log()[-2000:]}"
    return sock


def wait_attempted(t, qid, timeout=10):
    assert th.wait_until(lambda: f"event=delivery qid={qid}" in t.log(), timeout), \
        t.log()[-3000:]


def test_control_socket_mode_and_owner(ternd_factory):
    t = ternd_factory.start()
    sock = wait_socket(t)
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    qpid = queue_pid(t)
    with open(f"/proc/{qpid}/status") as f:
        status = f.read()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    gid = int(re.search(r"^Gid:\s+(\d+)", status, re.M).group(1))
    assert (st.st_uid, st.st_gid) == (uid, gid)
    assert re.search(r"event=control-listen path=\S*control\.sock mode=0660", t.log())


def test_hold_then_release(ternd_factory):
    need_tern()
    base = ternd_factory.base()
    blocked = blocked_dir(base)
    t = ternd_factory.start(base=base, deliver=f"maildir {blocked}/%d/%u", queue_retry="1s")
    d = str(t.data_dir)
    wait_socket(t)
    qid = send(t, "held@localhost", "held message")
    wait_attempted(t, qid)

    rc, out, err = tern("hold", qid, "-d", d)
    assert (rc, out) == (0, "1 message held\n"), (out, err, t.log()[-2000:])
    assert spool(t, "hold", qid).exists()
    assert not spool(t, "queue", qid).exists()
    assert re.search(rf"event=control cmd=hold arg={qid} peer_uid=0 .*result=ok n=1", t.log())

    # deliverable now, but held: not tried again
    blocked.chmod(0o777)
    time.sleep(3)
    assert not th.all_mail_files(t.data_dir) and not list(blocked.rglob("new/*"))
    assert spool(t, "hold", qid).exists()
    rc, out, err = tern("list", "-d", d)
    assert rc == 0 and re.search(rf"^{qid} .*\(held\)$", out, re.M), out
    # a held message cannot be held twice
    rc, out, err = tern("hold", qid, "-d", d)
    assert rc == 1 and "refused" in err, (out, err)

    rc, out, err = tern("release", qid, "-d", d)
    assert (rc, out) == (0, "1 message released\n"), (out, err)
    assert th.wait_until(lambda: list(blocked.glob("localhost/held/new/*")), 10), \
        t.log()[-3000:]
    assert th.wait_until(lambda: not spool(t, "queue", qid).exists()
                         and not spool(t, "hold", qid).exists(), 10)


def test_delete(ternd_factory):
    need_tern()
    base = ternd_factory.base()
    blocked = blocked_dir(base)
    t = ternd_factory.start(base=base, deliver=f"maildir {blocked}/%d/%u", queue_retry="1s")
    d = str(t.data_dir)
    wait_socket(t)
    qid = send(t, "gone@localhost", "deleted message")
    wait_attempted(t, qid)

    rc, out, err = tern("delete", qid, "-d", d)
    assert (rc, out) == (0, "1 message deleted\n"), (out, err, t.log()[-2000:])
    assert th.wait_until(lambda: not spool(t, "queue", qid).exists(), 5)
    assert not spool(t, "queue", qid + ".st").exists()
    assert th.wait_until(lambda: re.search(rf"event=deleted qid={qid}\b", t.log()), 5), \
        t.log()[-2000:]
    blocked.chmod(0o777)
    time.sleep(3)
    assert not list(blocked.rglob("new/*")), "a deleted message was delivered"
    # deleting it again: an error, exit 1
    rc, out, err = tern("delete", qid, "-d", d)
    assert rc == 1 and "refused" in err, (out, err)
    rc, out, err = tern("show", qid, "-d", d)
    assert rc == 1


@pytest.mark.parametrize("target", ["", "qid", "@localhost"])
def test_flush_retries_a_deferred_message_at_once(ternd_factory, target):
    need_tern()
    base = ternd_factory.base()
    blocked = blocked_dir(base)
    t = ternd_factory.start(base=base, deliver=f"maildir {blocked}/%d/%u", queue_retry="1h")
    d = str(t.data_dir)
    wait_socket(t)
    qid = send(t, "later@localhost", "flushed message")
    wait_attempted(t, qid)
    blocked.chmod(0o777)
    time.sleep(1)
    assert spool(t, "queue", qid).exists()      # deferred for an hour

    args = {"": [], "qid": [qid], "@localhost": ["@localhost"]}[target]
    t0 = time.monotonic()
    rc, out, err = tern("flush", *args, "-d", d)
    assert rc == 0, (out, err, t.log()[-2000:])
    assert re.fullmatch(r"[1-9]\d* messages? scheduled for delivery\n", out), out
    assert th.wait_until(lambda: list(blocked.glob("localhost/later/new/*")), 10), \
        t.log()[-3000:]
    assert time.monotonic() - t0 < 10
    assert th.wait_until(lambda: not spool(t, "queue", qid).exists(), 10)
