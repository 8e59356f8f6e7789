"""A 250 after DATA means on disk: kill -9 of the whole server loses nothing
(DESIGN.md invariant 1)."""

import re
import threading
import time

import tern_harness as th
from tern_harness import SMTPClient, check

N = 50
CONNECTIONS = 5


def blocked_dir(base):
    """A maildir root the unprivileged ternd cannot enter (root-owned, mode
    000): delivery fails with EACCES, a temporary error, and the messages
    stay queued."""
    d = base / "blocked"
    d.mkdir()
    d.chmod(0)
    return d


def send_batch(port, tag, conn_no, per_conn, results, errors):
    try:
        with SMTPClient(port, timeout=20) as c:
            c.ehlo()
            for k in range(per_conn):
                n = conn_no * per_conn + k
                rcpts = [f"dur{tag}@localhost"]
                if n % 10 == 0:
                    rcpts.append(f"dur{tag}x@example.test")
                msg = th.message(f"dur {tag} {n}", msgid=f"<dur-{tag}-{n}@client.example>")
                qid = c.send_message("sender@client.example", rcpts, msg)
                results[n] = qid
    except Exception as e:          # reported by the main thread
        errors.append(repr(e))


def send_all(port, tag):
    results, errors = {}, []
    per = N // CONNECTIONS
    threads = [threading.Thread(target=send_batch, args=(port, tag, i, per, results, errors))
               for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(results) == list(range(N)), sorted(results)
    assert len(set(results.values())) == N, "queue ids not unique"
    return results


def delivered_ids(data_dir, user, domain="localhost"):
    out = []
    for m in th.read_mail(data_dir, domain, user):
        mid = re.search(rb"Message-ID: <dur-[a-z0-9]+-(\d+)@client.example>", m)
        assert mid, m[:300]
        qid = re.search(rb"\bid\s+<?([A-Za-z0-9]+)", re.sub(rb"\r\n[ \t]+", b" ", m))
        out.append((int(mid.group(1)), qid.group(1).decode() if qid else None))
    return out


def check_all_delivered_once(data_dir, tag, qids, timeout=30):
    user = f"dur{tag}"
    assert th.wait_until(lambda: len(th.maildir_new(data_dir, "localhost", user)) >= N, timeout)
    xs = [n for n in range(N) if n % 10 == 0]
    th.wait_until(lambda: len(th.maildir_new(data_dir, "example.test", user + "x")) >= len(xs),
                  timeout)
    time.sleep(2.5)      # longer than queue_retry: a duplicate would show up now
    got = delivered_ids(data_dir, user)
    nums = sorted(n for n, _ in got)
    missing = sorted(set(range(N)) - set(nums))
    dups = sorted({n for n in nums if nums.count(n) > 1})
    assert not missing, f"accepted messages lost: {missing}"
    assert not dups, f"messages delivered more than once: {dups}"
    for n, q in got:
        assert q == qids[n], f"message {n}: Received id {q} != queue id {qids[n]}"
    gotx = sorted(n for n, _ in delivered_ids(data_dir, user + "x", "example.test"))
    assert gotx == xs, f"second recipient: got {gotx}, expected {xs}"
    assert th.wait_queue_empty(data_dir, 10), th.queue_files(data_dir)


def test_kill9_with_delivery_blocked_then_restart(ternd_factory):
    base = ternd_factory.base()
    blocker = blocked_dir(base)
    t1 = ternd_factory.start(base=base, name="blocked",
                             deliver=f"maildir {blocker}/%d/%u")
    qids = send_all(t1.port, "a")
    time.sleep(1.0)
    # nothing could be delivered, everything is in the queue
    assert th.all_mail_files(t1.data_dir) == [], "delivery was supposed to be blocked"
    assert th.queue_files(t1.data_dir), "accepted messages are not in spool/queue"
    t1.kill9()
    t1.killed = True
    assert not t1.all_pids(), "processes survived SIGKILL"
    t2 = ternd_factory.start(base=base, name="restarted")
    assert t2.data_dir == t1.data_dir
    check_all_delivered_once(t2.data_dir, "a", qids)


def test_kill9_right_after_last_250_then_restart(ternd_factory):
    base = ternd_factory.base()
    t1 = ternd_factory.start(base=base, name="first")
    # one client is in the middle of DATA when the server dies
    partial = SMTPClient(t1.port)
    partial.ehlo()
    partial.mail_rcpt_data("sender@client.example", ["durpartial@localhost"])
    partial.send(b"Subject: partial\r\nMessage-ID: <partial-1@client.example>\r\n\r\nhalf a messa")
    qids = send_all(t1.port, "b")
    t1.kill9()
    t1.killed = True
    partial.close()
    t2 = ternd_factory.start(base=base, name="restarted")
    check_all_delivered_once(t2.data_dir, "b", qids)
    assert th.read_mail(t2.data_dir, "localhost", "durpartial") == [], \
        "a message without its 250 (cut in DATA) was delivered"


def test_restart_after_clean_stop_delivers_queue(ternd_factory):
    """SIGTERM with messages still queued (delivery blocked): they stay queued
    and go out after the restart."""
    base = ternd_factory.base()
    blocker = blocked_dir(base)
    t1 = ternd_factory.start(base=base, name="blocked",
                             deliver=f"maildir {blocker}/%d/%u")
    msg = th.message("clean stop", msgid="<dur-c-0@client.example>")
    with SMTPClient(t1.port) as c:
        c.ehlo()
        qid = c.send_message("sender@client.example", ["durc@localhost"], msg)
    time.sleep(0.5)
    left = t1.stop()
    t1.stopped = True
    assert not left, f"processes left after SIGTERM: {left}"
    hits, text = t1.sanitizer_errors()
    assert not hits, text[-3000:]
    assert th.queue_files(t1.data_dir), "queued message gone after SIGTERM"
    t2 = ternd_factory.start(base=base, name="restarted")
    mails = th.wait_mail(t2.data_dir, "localhost", "durc", 1, 15)
    assert len(mails) == 1
    th.check_delivered(mails[0], "sender@client.example", msg, qid=qid)
