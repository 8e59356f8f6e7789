"""The process model a user relies on: a crashed worker or queue process is
restarted and logged, children run unprivileged, listeners on IPv6 and on
all addresses, and start-up refusals that name their cause."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

import tern_harness as th


def child_pids(t, what):
    """{index_or_name: pid} from the start lines in the log (newest wins)."""
    out = {}
    for m in re.finditer(r"proc=(worker/\d+|queue) event=(?:worker|queue)-start pid=(\d+) uid=(\d+)",
                         t.log()):
        out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return {k: v for k, v in out.items() if k.startswith(what)}


def deliver_one(t, user, subject):
    with th.SMTPClient(t.port) as c:
        c.ehlo()
        c.send_message("s@client.example", [f"{user}@localhost"], th.message(subject, to=f"{user}@localhost"))
        c.cmd("QUIT")


def wait_mail(t, user, n, timeout=15):
    return th.wait_until(lambda: len(th.maildir_new(t.data_dir, "localhost", user)) >= n, timeout)


def test_crashed_worker_is_restarted_and_logged(ternd_factory):
    t = ternd_factory.start()
    assert th.wait_until(lambda: len(child_pids(t, "worker")) == 2, 10)
    old_pid, _ = child_pids(t, "worker")["worker/0"]
    os.kill(old_pid, signal.SIGKILL)
    assert th.wait_until(lambda: "event=child-exit child=worker/0" in t.log(), 10), t.log()[-2000:]
    assert th.wait_until(lambda: child_pids(t, "worker").get("worker/0", (old_pid,))[0] != old_pid, 10)
    assert re.search(r"event=child-exit child=worker/0 pid=%d signal=9 action=restart" % old_pid, t.log())
    # Both workers serve again: enough sessions that the kernel uses each socket.
    for i in range(12):
        deliver_one(t, "alice", f"after-crash-{i}")
    assert wait_mail(t, "alice", 12)


def test_crashed_queue_process_is_restarted_and_delivers(ternd_factory):
    t = ternd_factory.start()
    assert th.wait_until(lambda: "queue" in child_pids(t, "queue"), 10)
    old_pid, _ = child_pids(t, "queue")["queue"]
    os.kill(old_pid, signal.SIGKILL)
    assert th.wait_until(lambda: "event=child-exit child=queue" in t.log(), 10)
    assert th.wait_until(lambda: child_pids(t, "queue")["queue"][0] != old_pid, 10)
    deliver_one(t, "bob", "after-queue-crash")
    assert wait_mail(t, "bob", 1)


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop happens only when started as root")
def test_children_run_unprivileged(ternd_factory):
    t = ternd_factory.start()
    assert th.wait_until(lambda: len(child_pids(t, "worker")) == 2 and child_pids(t, "queue"), 10)
    for name, (pid, uid) in {**child_pids(t, "worker"), **child_pids(t, "queue")}.items():
        assert uid != 0, f"{name} runs as root"
        with open(f"/proc/{pid}/status") as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        assert all(u != "0" for u in uids), f"{name} kept a root uid: {uids}"
    with open(f"/proc/{t.pid}/status") as f:
        assert [l for l in f if l.startswith("Uid:")][0].split()[1] == "0"


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_listener(ternd_factory):
    port = th.free_port()
    t = ternd_factory.start(listeners=[f"[::1]:{port} mx"], wait=False)
    assert th.wait_until(lambda: "event=start " in t.log(), 10)
    s = socket.create_connection(("::1", port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220 ")
    s.sendall(b"EHLO v6.example\r\n")
    line = f.readline()
    assert line.startswith(b"250-") and b"[::1]" in line
    s.close()


def test_listener_on_all_addresses_answers_on_loopback(ternd_factory):
    port = th.free_port()
    base = ternd_factory.base()
    # "listen PORT mx" (no address) is outside the harness's listener format.
    t = th.Ternd(base, th.default_config(base, [f"127.0.0.1:{port} mx"]))
    t.config["listen"] = [f"{port} mx"]
    ternd_factory.servers.append(t)
    t.killed = False
    t.start(wait=False)
    assert th.wait_until(lambda: "event=start " in t.log(), 10), t.log()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert s.makefile("rb").readline().startswith(b"220 ")
    if ipv6_loopback():
        with socket.create_connection(("::1", port), timeout=10) as s:
            assert s.makefile("rb").readline().startswith(b"220 ")


def run_ternd(args, timeout=15):
    return subprocess.run([th.TERND] + args, capture_output=True, text=True, timeout=timeout)


def test_second_ternd_on_same_data_dir_is_refused(ternd_factory):
    t = ternd_factory.start()
    other = t.base / "other.conf"
    other.write_text(f"data_dir {t.data_dir}\nlisten 127.0.0.1:{th.free_port()} mx\n")
    r = run_ternd(["-f", str(other)])
    assert r.returncode == 1
    assert "another ternd uses data_dir" in r.stderr


def test_port_in_use_is_refused_with_reason(ternd_factory):
    base = ternd_factory.base()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        conf = base / "busy.conf"
        conf.write_text(f"data_dir {base}/data\nlisten 127.0.0.1:{port} mx\n")
        r = run_ternd(["-f", str(conf)])
        assert r.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
        assert "another server holds the port" in r.stderr
    finally:
        holder.close()
