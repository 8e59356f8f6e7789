"""The command lines of ternd and tern; configuration errors name file and line
(DESIGN.md invariant 7); SIGTERM stops everything."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

import tern_harness as th
from tern_harness import SMTPClient

GOOD = """\
# a good configuration
hostname mx.test.example
domains localhost example.test
data_dir {data}
workers 2
listen 127.0.0.1:{port} mx
listen 127.0.0.1:{port2} submission greet_pause 1s
max_message_size 64K
max_recipients 5
max_errors 3
max_connections 2000
max_connections_per_ip 1000
idle_timeout 3s
data_timeout 3s
session_timeout 3600s
bare_newline reject
queue_retry 2s
deliver maildir {data}/mail/%d/%u
"""


def need(binary):
    if not os.path.exists(binary):
        pytest.skip(f"{binary} not built yet")


def run(args, timeout=20):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    return subprocess.run(args, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def no_sanitizer(p):
    text = (p.stdout + p.stderr).decode(errors="replace")
    for pat in th.SANITIZER_PATTERNS:
        assert pat not in text, text


@pytest.fixture
def base():
    b = th.make_base("tern-itcli-")
    yield b
    th.rmtree(b)


def good_conf(base, **fmt):
    port, port2 = th.free_ports(2)
    text = GOOD.format(data=base / "data", port=port, port2=port2, **fmt)
    p = base / "good.conf"
    p.write_text(text)
    return p


def test_ternd_help():
    need(th.TERND)
    p = run([th.TERND, "--help"])
    no_sanitizer(p)
    assert p.returncode == 0, p
    out = (p.stdout + p.stderr).decode()
    assert re.search(r"(^|[\s\[|,])-f\b", out), out
    assert re.search(r"(^|[\s\[|,])-n\b", out), out


def test_tern_help():
    need(th.TERN)
    p = run([th.TERN, "--help"])
    no_sanitizer(p)
    assert p.returncode == 0, p
    assert (p.stdout + p.stderr).strip(), "tern --help printed nothing"


def test_check_good_config(base):
    need(th.TERND)
    conf = good_conf(base)
    p = run([th.TERND, "-n", "-f", str(conf)])
    no_sanitizer(p)
    assert p.returncode == 0, p
    out = (p.stdout + p.stderr).decode()
    assert f"{conf}: configuration ok" in out, out


def test_check_does_not_bind_or_start(base):
    need(th.TERND)
    conf = good_conf(base)
    port = int(re.search(r"127\.0\.0\.1:(\d+) mx", conf.read_text()).group(1))
    # hold the port: -n must not need it
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1)
    try:
        p = run([th.TERND, "-n", "-f", str(conf)])
        assert p.returncode == 0, p
    finally:
        s.close()
    assert not (base / "data" / "spool").exists(), "-n created the spool"


BAD_CASES = [
    # (name, text of the bad line, what the message should mention)
    ("unknown_keyword", "frobnicate yes", "frobnicate"),
    ("bad_role", "listen 127.0.0.1:2526 relay", "relay"),
    ("bad_size", "max_message_size 12Q", "12Q"),
    ("bad_size_word", "max_message_size lots", None),
    ("bad_duration_ms", "idle_timeout 500ms", None),
    ("bad_greet_pause", "listen 127.0.0.1:2527 mx greet_pause 500q", None),
    ("bad_number", "max_recipients many", None),
    ("negative_number", "max_errors -3", None),
    ("bad_port", "listen 127.0.0.1:99999 mx", None),
    ("missing_value", "hostname", None),
    ("bad_bare_newline", "bare_newline sometimes", "sometimes"),
    ("bad_deliver", "deliver carrier-pigeon /x", None),
    ("bad_workers", "workers -1", None),
]


@pytest.mark.parametrize("name,line,mention", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_check_bad_config_names_line(base, name, line, mention):
    need(th.TERND)
    good = good_conf(base).read_text().splitlines()
    # put the bad line after some comments and blank lines, at line 7
    lines = good[:3] + ["", "# comment", "   # indented comment", line] + good[3:]
    assert lines[6] == line
    conf = base / "bad.conf"
    conf.write_text("\n".join(lines) + "\n")
    p = run([th.TERND, "-n", "-f", str(conf)])
    no_sanitizer(p)
    assert p.returncode == 1, p
    err = p.stderr.decode()
    assert f"{conf}:7:" in err, f"expected '{conf}:7:' in stderr: {err!r}"
    assert "configuration ok" not in (p.stdout + p.stderr).decode()
    if mention:
        assert mention in err, err


def test_bad_config_fails_at_start(base):
    need(th.TERND)
    good = good_conf(base).read_text().splitlines()
    conf = base / "bad.conf"
    conf.write_text("\n".join(good[:4] + ["max_message_size 12Q"] + good[4:]) + "\n")
    p = run([th.TERND, "-f", str(conf)], timeout=20)
    no_sanitizer(p)
    assert p.returncode == 1, p
    assert f"{conf}:5:" in p.stderr.decode(), p.stderr


def test_missing_config_file(base):
    need(th.TERND)
    conf = base / "does-not-exist.conf"
    p = run([th.TERND, "-n", "-f", str(conf)])
    no_sanitizer(p)
    assert p.returncode == 1, p
    assert str(conf) in p.stderr.decode(), p.stderr


def test_duplicate_listener_refused(base):
    need(th.TERND)
    port = th.free_port()
    text = GOOD.format(data=base / "data", port=port, port2=port)
    conf = base / "dup.conf"
    conf.write_text(text.replace(" submission greet_pause 1s", " mx"))
    p = run([th.TERND, "-n", "-f", str(conf)])
    no_sanitizer(p)
    assert p.returncode == 1, p
    assert str(conf) in p.stderr.decode(), p.stderr


def test_unknown_option():
    need(th.TERND)
    p = run([th.TERND, "--no-such-option"])
    no_sanitizer(p)
    assert p.returncode != 0, p


# ---------------------------------------------------------------- running

def test_sigterm_stops_parent_and_children(ternd_factory):
    t = ternd_factory.start(workers=2)
    time.sleep(0.5)
    pids = t.all_pids()
    # parent + 2 workers + the queue process
    assert len(pids) >= 4, f"expected a parent, 2 workers and a queue process, got {pids}"
    # a session is open while we stop
    c = SMTPClient(t.port)
    c.ehlo()
    t0 = time.monotonic()
    os.kill(t.pid, signal.SIGTERM)
    t.stopped = True
    stopped = th.wait_until(lambda: not any(th.alive(p) for p in pids), timeout=5)
    elapsed = time.monotonic() - t0
    c.close()
    left = [p for p in pids if th.alive(p)]
    assert stopped and not left, f"still alive 5 s after SIGTERM: {left}"
    # the spec: "SIGTERM stops it (parent and all children) within ~2 s"
    assert elapsed <= 2.5, f"SIGTERM took {elapsed:.1f}s to stop everything"
    t.proc.wait(timeout=5)
    hits, text = t.sanitizer_errors()
    assert not hits, text[-3000:]


def test_worker_killed_is_restarted(ternd_factory):
    t = ternd_factory.start(workers=2)
    time.sleep(0.5)
    before = t.all_pids() - {t.pid}
    kids = [p for p in before if th._proc_ppid_state(p)[0] == t.pid]
    assert kids, before
    os.kill(kids[0], signal.SIGKILL)

    def healthy():
        now = t.all_pids() - {t.pid}
        return len(now) >= len(before) and kids[0] not in now
    assert th.wait_until(healthy, timeout=10), "killed child not replaced"
    assert t.running()
    for _ in range(4):
        with SMTPClient(t.port) as c:
            c.ehlo()
            c.send_message("s@client.example", ["restart@localhost"], th.message("after kill"))
    assert th.wait_mail(t.data_dir, "localhost", "restart", 4)


def test_data_option_overrides_data_dir(ternd_factory):
    base = ternd_factory.base()
    other = base / "other-data"
    t = ternd_factory.start(base=base, extra_args=["--data", str(other)])
    msg = th.message("data option")
    with SMTPClient(t.port) as c:
        c.ehlo()
        qid = c.send_message("s@client.example", ["dataopt@localhost"], msg)
    mails = th.wait_mail(other, "localhost", "dataopt")
    assert len(mails) == 1, "mail not in the --data directory"
    th.check_delivered(mails[0], "s@client.example", msg, qid=qid)
    assert not (base / "data" / "mail").exists()


def test_log_lines_are_logfmt(ternd_factory):
    t = ternd_factory.start()
    with SMTPClient(t.port) as c:
        c.ehlo()
        c.send_message("s@client.example", ["logfmt@localhost"], th.message("log"))
    assert th.wait_mail(t.data_dir, "localhost", "logfmt")
    time.sleep(0.3)
    lines = [ln for ln in t.log().splitlines() if ln.strip()]
    assert lines, "ternd logged nothing"
    pair = r'[A-Za-z_][\w.\-/]*=("([^"\\]|\\.)*"|[^\s"]*)'
    pat = re.compile(r'^' + pair + r'( ' + pair + r')*$')

    def ok(ln):
        if not pat.match(ln):
            return False
        keys = [k.split("=", 1)[0] for k in re.findall(pair.replace("(", "(?:"), ln)]
        return (keys[:1] == ["ts"] and "level" in keys and "event" in keys)
    bad = [ln for ln in lines if not ok(ln)]
    assert not bad, f"lines that are not logfmt: {bad[:5]}"


def test_tern_queue_list_shows_queued_message(ternd_factory):
    need(th.TERN)
    base = ternd_factory.base()
    blocked = base / "blocked"
    blocked.mkdir()
    blocked.chmod(0)
    t = ternd_factory.start(base=base, deliver=f"maildir {blocked}/%d/%u")
    with SMTPClient(t.port) as c:
        c.ehlo()
        qid = c.send_message("s@client.example", ["listed@localhost"], th.message("listed"))
    time.sleep(0.5)
    p = run([th.TERN, "queue", "list", "-d", str(t.data_dir)])
    no_sanitizer(p)
    assert p.returncode == 0, p
    out = p.stdout.decode(errors="replace")
    assert qid in out, out
    assert "listed@localhost" in out, out
