"""A full disk while spooling: 452 4.3.1, the server keeps running, nothing
accepted is lost, and it recovers when space comes back."""

import os
import subprocess
import time

import pytest

import tern_harness as th
from conftest import TerndManager
from tern_harness import SMTPClient, check


@pytest.fixture
def tmpfs_server():
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if not os.path.exists(th.TERND):
        pytest.skip(f"ternd not built yet ({th.TERND})")
    base = th.make_base("tern-itdf-")
    mnt = base / "data"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, timeout=20)
    if p.returncode != 0:
        th.rmtree(base)
        pytest.skip(f"cannot mount tmpfs: {p.stderr.decode(errors='replace')}")
    m = TerndManager("tern-itdf-")
    try:
        t = m.start(base=base, max_message_size="1M", queue_retry="1s")
        yield t, mnt
    finally:
        try:
            m.finish()
        finally:
            r = subprocess.run(["umount", str(mnt)], capture_output=True, timeout=20)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)
            if not os.environ.get("TERN_IT_KEEP"):
                th.rmtree(base)


def big_message(n):
    body = "".join(f"{n:04d} {'m' * 90}\r\n" for _ in range(400))       # ~38 KB
    return th.message(f"df {n}", body=body, msgid=f"<df-{n}@client.example>")


def try_send(port, n):
    """Returns ('ok', qid) or ('full', stage, reply); asserts on anything else."""
    with SMTPClient(port, timeout=20) as c:
        c.ehlo()
        steps = [("MAIL", "MAIL FROM:<sender@client.example>", 250),
                 ("RCPT", f"RCPT TO:<df@localhost>", 250),
                 ("DATA", "DATA", 354)]
        for stage, line, code in steps:
            r = c.cmd(line)
            if r.code == 452:
                check(r, 452, "4.3.1", what=line)
                c.expect("NOOP", 250, "2.0.0")
                return ("full", stage, r)
            check(r, code, what=line)
        r = c.send_data(big_message(n))
        if r.code == 452:
            check(r, 452, "4.3.1", what="end of DATA")
            # the whole DATA was read to its end: no reply to body lines
            # (they must never be read as commands), and the session goes on
            assert c.nothing_pending(0.5), \
                f"after 452 the server answered the message body as commands: {c.buf[:300]!r}"
            c.expect("NOOP", 250, "2.0.0")
            return ("full", "end of DATA", r)
        check(r, 250, "2.0.0", what="end of DATA")
        c.expect("QUIT", 221, "2.0.0")
        return ("ok", th.queue_id(r))


def find_msgid(root, n):
    needle = f"<df-{n}@client.example>".encode()
    hits = []
    for sub in ("spool", "mail"):
        d = root / sub
        if not d.exists():
            continue
        for p in d.rglob("*"):
            try:
                if p.is_file() and needle in p.read_bytes():
                    hits.append(p)
            except OSError:
                pass
    return hits


def test_disk_full_452_and_recovery(tmpfs_server):
    t, mnt = tmpfs_server
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - 300 * 1024))
        f.flush()
        os.fsync(f.fileno())
    accepted = {}
    full = None
    for n in range(40):
        res = try_send(t.port, n)
        if res[0] == "full":
            full = res
            break
        accepted[n] = res[1]
    assert full is not None, f"no 452 4.3.1 after {len(accepted)} messages on a full disk"
    assert t.running(), "ternd died on a full disk"
    # the server still answers, on a new connection too
    with SMTPClient(t.port) as c:
        check(c.banner, 220)
        c.ehlo()
        c.expect("NOOP", 250, "2.0.0")
    # everything that got a 250 is somewhere on disk
    for n in accepted:
        assert find_msgid(mnt, n), f"message {n} got a 250 but is neither queued nor delivered"
    # free the space: a new message is accepted and the backlog delivered
    filler.unlink()
    res = try_send(t.port, 1000)
    assert res[0] == "ok", f"still refused after space came back: {res}"
    accepted[1000] = res[1]

    def delivered():
        got = set()
        for m in th.read_mail(t.data_dir, "localhost", "df"):
            for n in accepted:
                if f"<df-{n}@client.example>".encode() in m:
                    got.add(n)
        return got == set(accepted)
    assert th.wait_until(delivered, timeout=20), \
        f"not all accepted messages delivered after recovery; queue={th.queue_files(t.data_dir)}"
    mails = th.read_mail(t.data_dir, "localhost", "df")
    assert len(mails) == len(accepted), f"{len(mails)} files for {len(accepted)} messages"
    # a file cut short by ENOSPC must never be delivered
    for m in mails:
        n = int(m.split(b"Message-ID: <df-", 1)[1].split(b"@", 1)[0])
        th.check_delivered(m, "sender@client.example", big_message(n), qid=accepted[n])


def test_disk_full_in_maildir_is_retried(tmpfs_server):
    """The spool has room for the message but the Maildir copy does not:
    delivery is a temporary failure, retried once space comes back."""
    t, mnt = tmpfs_server
    st = os.statvfs(mnt)
    filler = mnt / "filler2"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 70 * 1024))
    res = try_send(t.port, 7)
    assert res[0] == "ok", f"a 38 KB message refused with 70 KB free: {res}"
    qid = res[1]
    time.sleep(2.5)
    assert t.running()
    assert find_msgid(mnt, 7), "accepted message neither queued nor delivered"
    # a Maildir file cut short by ENOSPC must not be in new/
    for m in th.read_mail(t.data_dir, "localhost", "df"):
        th.check_delivered(m, "sender@client.example", big_message(7), qid=qid)
    filler.unlink()
    assert th.wait_until(lambda: th.read_mail(t.data_dir, "localhost", "df"), timeout=15), \
        th.queue_files(t.data_dir)
    time.sleep(1.5)
    mails = th.read_mail(t.data_dir, "localhost", "df")
    assert len(mails) == 1, f"{len(mails)} files for 1 message"
    th.check_delivered(mails[0], "sender@client.example", big_message(7), qid=qid)
    assert th.wait_queue_empty(t.data_dir, 10)
