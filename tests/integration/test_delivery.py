"""Messages go in over SMTP (smtplib, swaks, raw sockets) and come out in
Maildir byte-exact: Return-Path, one Received field, then the content."""

import os
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

import tern_harness as th
from tern_harness import SMTPClient, check

AUTHORED = Path("/work/shared/testdata/messages/authored")


@pytest.fixture(scope="module")
def srv(module_factory):
    return module_factory.start(max_message_size="4M", max_recipients=20)


def data(srv):
    return srv.data_dir


def one_mail(srv, user, domain="localhost", timeout=10.0):
    mails = th.wait_mail(srv.data_dir, domain, user, 1, timeout)
    assert mails, f"nothing delivered to {user}@{domain} within {timeout}s; " \
                  f"queue={th.queue_files(srv.data_dir)}"
    # give a duplicate a moment to show up
    assert len(th.read_mail(srv.data_dir, domain, user)) == 1, \
        f"more than one message for {user}@{domain}"
    return mails[0]


def raw_send(srv, sender, rcpts, content, params="", stuff=True, helo=False):
    with SMTPClient(srv.port) as c:
        if helo:
            c.expect("HELO client.example", 250)
        else:
            c.ehlo()
        c.mail_rcpt_data(sender, rcpts, params)
        r = c.send_data(content, stuff=stuff)
        check(r, 250, "2.0.0", what="end of DATA")
        qid = th.queue_id(r)
        c.expect("QUIT", 221, "2.0.0")
    return qid


# ---------------------------------------------------------------- smtplib

def test_smtplib_byte_exact(srv):
    msg = th.message("smtplib", body="line one\r\nline two\r\n\r\nlast\r\n",
                     to="smtplib1@localhost")
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert s.has_extn("pipelining") and s.has_extn("8bitmime")
        code, resp = s.mail("sender@client.example")
        assert code == 250 and resp.startswith(b"2.1.0"), resp
        code, resp = s.rcpt("smtplib1@localhost")
        assert code == 250 and resp.startswith(b"2.1.5"), resp
        code, resp = s.data(msg)
        assert code == 250 and resp.startswith(b"2.0.0"), resp
        qid = resp.split()[-1].decode()
    mail = one_mail(srv, "smtplib1")
    th.check_delivered(mail, "sender@client.example", msg, qid=qid)
    assert th.wait_queue_empty(srv.data_dir), th.queue_files(srv.data_dir)


def test_smtplib_sendmail_dot_lines(srv):
    raw = (AUTHORED / "dot-lines-in-body.eml").read_bytes()
    msg = th.to_crlf(raw)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        refused = s.sendmail("sender@client.example", ["dots1@localhost"], msg)
        assert refused == {}
    th.check_delivered(one_mail(srv, "dots1"), "sender@client.example", msg)


def test_helo_gives_with_smtp(srv):
    msg = th.message("helo", to="helo1@localhost")
    qid = raw_send(srv, "sender@client.example", ["helo1@localhost"], msg, helo=True)
    th.check_delivered(one_mail(srv, "helo1"), "sender@client.example", msg,
                       qid=qid, proto="SMTP")


# ---------------------------------------------------------------- swaks

def swaks(*args, timeout=30):
    return subprocess.run(["swaks", "--timeout", "10", *args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)


def test_swaks_simple(srv):
    p = swaks("--server", f"127.0.0.1:{srv.port}", "--from", "a@b.example",
              "--to", "swaks1@localhost", "--h-Subject", "hi", "--body", "x",
              "--silent", "2")
    assert p.returncode == 0, (p.stdout, p.stderr)
    mail = one_mail(srv, "swaks1")
    assert mail.startswith(b"Return-Path: <a@b.example>\r\nReceived: ")
    assert b"\r\nSubject: hi\r\n" in mail
    assert b"\r\nTo: swaks1@localhost\r\n" in mail
    assert b"\r\n\r\nx\r\n" in mail
    assert b"\n" not in mail.replace(b"\r\n", b"")


def test_swaks_data_file_byte_exact(srv, tmp_path):
    src = th.to_crlf((AUTHORED / "dot-lines-in-body.eml").read_bytes())
    f = tmp_path / "m.eml"
    f.write_bytes(src)
    # what does swaks put on the wire for this file?
    sink = th.CaptureSink()
    p = swaks("--server", f"127.0.0.1:{sink.port}", "--from", "a@b.example",
              "--to", "x@y.example", "--data", f"@{f}", "--silent", "2")
    sink.join()
    assert p.returncode == 0 and sink.data, (p.stdout, p.stderr)
    expected = th.unstuff(sink.data)
    assert src in expected
    p = swaks("--server", f"127.0.0.1:{srv.port}", "--from", "a@b.example",
              "--to", "swaks2@localhost", "--data", f"@{f}", "--silent", "2")
    assert p.returncode == 0, (p.stdout, p.stderr)
    th.check_delivered(one_mail(srv, "swaks2"), "a@b.example", expected)


def test_swaks_pipelining_multiple_recipients(srv):
    p = swaks("--server", f"127.0.0.1:{srv.port}", "--from", "a@b.example",
              "--to", "swaks3@localhost,swaks4@example.test", "--pipeline",
              "--h-Subject", "piped", "--body", "y", "--silent", "2")
    assert p.returncode == 0, (p.stdout, p.stderr)
    a = one_mail(srv, "swaks3")
    b = one_mail(srv, "swaks4", domain="example.test")
    assert b"Subject: piped" in a and b"Subject: piped" in b


# ---------------------------------------------------------------- dot-stuffing

def test_dot_stuffed_lines_raw(srv):
    content = (b"Subject: dots\r\n\r\n"
               b".hidden\r\n"
               b"..two\r\n"
               b".\r\n"
               b"...\r\n"
               b". space\r\n"
               b"end.\r\n"
               b"mid . dot\r\n")
    wire = (b"Subject: dots\r\n\r\n"
            b"..hidden\r\n"
            b"...two\r\n"
            b"..\r\n"
            b"....\r\n"
            b".. space\r\n"
            b"end.\r\n"
            b"mid . dot\r\n")
    assert th.dot_stuff(content) == wire
    qid = raw_send(srv, "sender@client.example", ["dots2@localhost"], wire + b"", stuff=False)
    th.check_delivered(one_mail(srv, "dots2"), "sender@client.example", content, qid=qid)


def test_unstuffed_leading_dot_tolerated(srv):
    # a client that forgets to stuff a single leading dot: the dot is removed
    # (RFC 5321 4.5.2), the message is not cut
    wire = b"Subject: lazy\r\n\r\n.not stuffed\r\nafter\r\n"
    raw_send(srv, "sender@client.example", ["dots3@localhost"], wire, stuff=False)
    th.check_delivered(one_mail(srv, "dots3"), "sender@client.example",
                       b"Subject: lazy\r\n\r\nnot stuffed\r\nafter\r\n")


def test_empty_message(srv):
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.mail_rcpt_data("sender@client.example", ["empty1@localhost"])
        c.send(b".\r\n")
        qid = th.queue_id(check(c.reply(), 250, "2.0.0"))
    mail = one_mail(srv, "empty1")
    th.check_delivered(mail, "sender@client.example", b"", qid=qid)


# ---------------------------------------------------------------- 8-bit and authored files

def test_8bit_body_exact(srv):
    high = bytes(range(0x80, 0x100))
    printable = bytes(range(0x20, 0x7f))
    body = (b"Subject: 8bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + high + b"\r\n" + printable + b"\r\n"
            + "Grüße, ça va? Ελληνικά 日本語\r\n".encode() + b"\tTab\x0b\x0c\r\n")
    qid = raw_send(srv, "sender@client.example", ["eight1@localhost"], body,
                   params=" BODY=8BITMIME")
    th.check_delivered(one_mail(srv, "eight1"), "sender@client.example", body, qid=qid)


AUTHORED_FILES = [
    ("8bitmime-body.eml", " BODY=8BITMIME"),
    ("dot-lines-in-body.eml", ""),
    ("utf8-subject-ascii-addresses.eml", " BODY=8BITMIME SMTPUTF8"),
    ("long-folded-header.eml", ""),
    ("many-header-fields.eml", ""),
]


@pytest.mark.parametrize("name,params", AUTHORED_FILES)
def test_authored_messages_byte_exact(srv, name, params):
    raw = (AUTHORED / name).read_bytes()
    msg = th.to_crlf(raw)          # they are CRLF already; this is a no-op then
    assert msg.endswith(b"\r\n")
    user = "auth-" + name.split(".")[0].replace("-", "")[:40]
    qid = raw_send(srv, "alice@sender.example", [f"{user}@localhost"], msg, params=params)
    # RFC 6531 4.3: a transaction with SMTPUTF8 is recorded "with UTF8SMTP"
    proto = "UTF8SMTP" if "SMTPUTF8" in params else "ESMTP"
    th.check_delivered(one_mail(srv, user.lower()), "alice@sender.example", msg, qid=qid,
                       proto=proto)


def test_large_message_exact(srv):
    lines = [(b"%06d " % i) + bytes([0x41 + i % 26]) * 90 for i in range(6000)]
    body = b"Subject: large\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    assert len(body) > 500_000
    qid = raw_send(srv, "sender@client.example", ["large1@localhost"], body)
    th.check_delivered(one_mail(srv, "large1"), "sender@client.example", body, qid=qid)


def test_data_split_in_tiny_writes(srv):
    content = th.message("tiny writes", body=".a\r\nb\r\n..\r\n")
    wire = th.dot_stuff(content) + b".\r\n"
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.mail_rcpt_data("sender@client.example", ["tiny1@localhost"])
        for i in range(len(wire)):
            c.send(wire[i:i + 1])
        qid = th.queue_id(check(c.reply(), 250, "2.0.0"))
    th.check_delivered(one_mail(srv, "tiny1"), "sender@client.example", content, qid=qid)


# ---------------------------------------------------------------- envelopes

def test_multiple_recipients_one_file_each(srv):
    rcpts = ["multi1@localhost", "multi2@localhost", "multi3@example.test"]
    msg = th.message("multi")
    qid = raw_send(srv, "sender@client.example", rcpts, msg)
    a = one_mail(srv, "multi1")
    b = one_mail(srv, "multi2")
    c = one_mail(srv, "multi3", domain="example.test")
    for m in (a, b, c):
        th.check_delivered(m, "sender@client.example", msg, qid=qid)


def test_recipient_case_folded_to_lowercase_dir(srv):
    msg = th.message("case")
    raw_send(srv, "sender@client.example", ["Case.Mixed@LocalHost"], msg)
    th.check_delivered(one_mail(srv, "case.mixed"), "sender@client.example", msg)


def test_null_sender(srv):
    msg = th.message("bounce", sender="MAILER-DAEMON@client.example")
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<>", 250, "2.1.0")
        c.expect("RCPT TO:<null1@localhost>", 250, "2.1.5")
        c.expect("DATA", 354)
        qid = th.queue_id(check(c.send_data(msg), 250, "2.0.0"))
    mail = one_mail(srv, "null1")
    assert mail.startswith(b"Return-Path: <>\r\nReceived: "), mail[:100]
    th.check_delivered(mail, "", msg, qid=qid)


def test_dsn_parameters_accepted(srv):
    msg = th.message("dsn")
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<sender@client.example> RET=HDRS ENVID=abc", 250, "2.1.0")
        c.expect("RCPT TO:<dsn1@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b",
                 250, "2.1.5")
        c.expect("RCPT TO:<dsn2@localhost> NOTIFY=NEVER", 250, "2.1.5")
        c.expect("DATA", 354)
        qid = th.queue_id(check(c.send_data(msg), 250, "2.0.0"))
    th.check_delivered(one_mail(srv, "dsn1"), "sender@client.example", msg, qid=qid)
    th.check_delivered(one_mail(srv, "dsn2"), "sender@client.example", msg, qid=qid)


def test_source_route_sender_and_postmaster(srv):
    msg = th.message("pm")
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<@relay.example:sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<postmaster@localhost>", 250, "2.1.5")
        c.expect("DATA", 354)
        check(c.send_data(msg), 250, "2.0.0")
    # the route is stripped from the sender
    th.check_delivered(one_mail(srv, "postmaster"), "sender@client.example", msg)


def test_two_transactions_one_session(srv):
    m1 = th.message("first")
    m2 = th.message("second")
    with SMTPClient(srv.port) as c:
        c.ehlo()
        q1 = c.send_message("s1@client.example", ["twice1@localhost"], m1)
        q2 = c.send_message("s2@client.example", ["twice2@localhost"], m2)
    assert q1 != q2
    th.check_delivered(one_mail(srv, "twice1"), "s1@client.example", m1, qid=q1)
    th.check_delivered(one_mail(srv, "twice2"), "s2@client.example", m2, qid=q2)


def test_rset_discards_transaction(srv):
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<rsetgone@localhost>", 250, "2.1.5")
        c.expect("RSET", 250, "2.0.0")
        m = th.message("after rset")
        q = c.send_message("sender@client.example", ["rsetkept@localhost"], m)
    th.check_delivered(one_mail(srv, "rsetkept"), "sender@client.example", m, qid=q)
    assert th.read_mail(srv.data_dir, "localhost", "rsetgone") == []


# ---------------------------------------------------------------- BDAT

def test_bdat_byte_exact(srv):
    chunks = [b"Subject: bdat\r\n\r\n.leading dot stays\r\n",
              b"..two dots stay\r\n.\r\n",
              b"line split ac",
              b"ross chunks\r",
              b"\nend\r\n"]
    content = b"".join(chunks)
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<sender@client.example> BODY=8BITMIME", 250, "2.1.0")
        c.expect("RCPT TO:<bdat1@localhost>", 250, "2.1.5")
        for ch in chunks[:-1]:
            c.send(b"BDAT %d\r\n" % len(ch) + ch)
            check(c.reply(), 250, "2.0.0")
        c.send(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1])
        qid = th.queue_id(check(c.reply(), 250, "2.0.0"))
    th.check_delivered(one_mail(srv, "bdat1"), "sender@client.example", content, qid=qid)


def test_bdat_pipelined_and_zero_last(srv):
    content = b"Subject: bdat2\r\n\r\nbody\r\n"
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<sender@client.example>\r\nRCPT TO:<bdat2@localhost>\r\n"
               + b"BDAT %d\r\n" % len(content) + content + b"BDAT 0 LAST\r\nNOOP\r\n")
        check(c.reply(), 250, "2.1.0")
        check(c.reply(), 250, "2.1.5")
        check(c.reply(), 250, "2.0.0")
        qid = th.queue_id(check(c.reply(), 250, "2.0.0"))
        check(c.reply(), 250, "2.0.0")
    th.check_delivered(one_mail(srv, "bdat2"), "sender@client.example", content, qid=qid)


# ---------------------------------------------------------------- spool

def test_spool_empty_after_delivery(srv):
    msg = th.message("spool")
    raw_send(srv, "sender@client.example", ["spool1@localhost"], msg)
    one_mail(srv, "spool1")
    assert th.wait_queue_empty(srv.data_dir), th.queue_files(srv.data_dir)
    tmp = srv.data_dir / "spool" / "tmp"
    assert th.wait_until(lambda: not any(p.is_file() for p in tmp.rglob("*")), 5), \
        list(tmp.rglob("*"))
    assert (srv.data_dir / "spool" / "queue").is_dir()
    # Maildir: the file was moved from tmp/ to new/
    mtmp = srv.data_dir / "mail" / "localhost" / "spool1" / "tmp"
    assert mtmp.is_dir() and not any(mtmp.iterdir()), list(mtmp.iterdir())
    assert (srv.data_dir / "mail" / "localhost" / "spool1" / "cur").is_dir()


# ---------------------------------------------------------------- temporary failures

def test_file_in_the_way_is_a_temporary_failure(ternd_factory):
    """A regular file where a Maildir directory should be is a local,
    temporary problem (the spec: 'delivery fails with a temporary error'):
    the message stays queued and is delivered once the obstacle is gone."""
    base = ternd_factory.base()
    root = base / "maildirs"
    root.mkdir()
    obstacle = root / "localhost"
    obstacle.write_text("a regular file where a directory should be\n")
    t = ternd_factory.start(base=base, queue_retry="1s", deliver=f"maildir {root}/%d/%u")
    os.chown(root, *owner_of(t.data_dir))
    msg = th.message("obstacle")
    with SMTPClient(t.port) as c:
        c.ehlo()
        qid = c.send_message("sender@client.example", ["obst@localhost"], msg)
    time.sleep(2.5)
    assert th.queue_files(t.data_dir), \
        "message no longer queued after a temporary delivery failure (dropped?)"
    obstacle.unlink()

    def delivered():
        d = root / "localhost" / "obst" / "new"
        return d.is_dir() and [p for p in d.iterdir() if p.is_file()]
    got = th.wait_until(delivered, timeout=10)
    assert got and len(got) == 1, "not delivered after the obstacle was removed"
    th.check_delivered(got[0].read_bytes(), "sender@client.example", msg, qid=qid)


def owner_of(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid


def test_smtputf8_eai_message(srv):
    """UTF-8 envelope addresses with SMTPUTF8, a UTF-8 local part delivered
    to its own Maildir, content byte-exact."""
    msg = th.to_crlf((AUTHORED / "smtputf8-eai-addresses.eml").read_bytes())
    sender = "jöran@bücher.example"
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect(f"MAIL FROM:<{sender}> SMTPUTF8 BODY=8BITMIME", 250, "2.1.0")
        c.expect("RCPT TO:<用户@localhost>", 250, "2.1.5")
        c.expect("RCPT TO:<δοκιμή@example.test>", 250, "2.1.5")
        c.expect("DATA", 354)
        qid = th.queue_id(check(c.send_data(msg), 250, "2.0.0"))
    a = one_mail(srv, mailbox_dir_name(srv, "localhost", "用户"))
    b = one_mail(srv, mailbox_dir_name(srv, "example.test", "δοκιμή"), domain="example.test")
    for m in (a, b):
        assert m.startswith(f"Return-Path: <{sender}>\r\n".encode()), m[:80]
        th.check_delivered(m, sender, msg, qid=qid, proto="UTF8SMTP")


def mailbox_dir_name(srv, domain, local):
    """The directory of a non-ASCII local part: the spec only fixes ASCII
    (lower-cased); accept it as is or percent-encoded (%XX of each octet)."""
    raw = local.lower()
    enc = "".join(ch if (ch.isascii() and (ch.isalnum() or ch in "_+=-.")) else
                  "".join("%%%02X" % b for b in ch.encode()) for ch in raw)
    root = srv.data_dir / "mail" / domain

    def find():
        for cand in (raw, enc):
            if (root / cand / "new").is_dir():
                return cand
        return None
    got = th.wait_until(find, timeout=10)
    assert got, f"no Maildir for {local}@{domain}: {list(root.iterdir()) if root.exists() else []}"
    return got


def test_local_part_cannot_escape_maildir_root(srv):
    """Local parts that look like paths stay inside DATA/mail/<domain>/."""
    rcpts = ['"../../../escape1"@localhost', "a/b@localhost", '"..\\x"@localhost',
             '"/abs"@localhost', "...@localhost"]
    accepted = []
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        for r in rcpts:
            rep = c.cmd(f"RCPT TO:<{r}>")
            assert rep.code in (250, 501, 550, 553), rep.raw
            if rep.code == 250:
                accepted.append(r)
        if not accepted:
            pytest.skip("no path-like local part accepted")
        c.expect("DATA", 354)
        msg = th.message("escape", msgid="<escape-1@client.example>")
        check(c.send_data(msg), 250, "2.0.0")
    base = srv.data_dir / "mail" / "localhost"

    def count():
        return [p for p in srv.base.rglob("*")
                if p.is_file() and p.parent.name == "new"
                and b"<escape-1@client.example>" in p.read_bytes()]
    th.wait_until(lambda: len(count()) >= len(accepted), timeout=10)
    time.sleep(0.5)
    files = count()
    assert len(files) == len(accepted), (accepted, files)
    for f in files:
        rel = f.resolve().relative_to(base.resolve())
        assert len(rel.parts) == 3 and rel.parts[1] == "new", f"escaped: {f}"
        assert not rel.parts[0].startswith("."), f"hidden/relative Maildir name: {f}"


def test_nul_in_body_refused_or_kept_exact(srv):
    """Policy for a NUL octet is the server's; either a clean refusal or
    byte-exact storage, never a truncated message."""
    msg = th.to_crlf((AUTHORED / "nul-in-body.eml").read_bytes())
    assert b"\0" in msg
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.mail_rcpt_data("sender@client.example", ["nul1@localhost"])
        r = c.send_data(msg)
        assert r.code in (250, 554), r.raw
        c.expect("NOOP", 250, "2.0.0")
    if r.code == 250:
        th.check_delivered(one_mail(srv, "nul1"), "sender@client.example", msg,
                           qid=th.queue_id(r))
    else:
        assert r.enh and r.enh.startswith("5."), r.raw
        time.sleep(1)
        assert th.read_mail(srv.data_dir, "localhost", "nul1") == []


def test_concurrent_clients_all_delivered_once(srv):
    import threading
    results, errors = {}, []

    def worker(k):
        try:
            with SMTPClient(srv.port, timeout=20) as c:
                c.ehlo()
                for j in range(5):
                    n = k * 5 + j
                    m = th.message(f"conc {n}", msgid=f"<conc-{n}@client.example>")
                    results[n] = c.send_message("s@client.example", ["conc@localhost"], m)
        except Exception as e:
            errors.append(repr(e))
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not errors, errors
    assert len(results) == 100 and len(set(results.values())) == 100
    th.wait_until(lambda: len(th.maildir_new(srv.data_dir, "localhost", "conc")) >= 100, 20)
    time.sleep(0.5)
    mails = th.read_mail(srv.data_dir, "localhost", "conc")
    ids = sorted(int(m.split(b"<conc-", 1)[1].split(b"@", 1)[0]) for m in mails)
    assert ids == list(range(100)), f"{len(mails)} delivered; missing " \
        f"{sorted(set(range(100)) - set(ids))}"


def test_client_vanishes_mid_data(srv):
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.mail_rcpt_data("sender@client.example", ["vanish@localhost"])
        c.send(b"Subject: cut\r\n\r\nhalf")
    # the connection is closed without the terminator
    with SMTPClient(srv.port) as c:
        c.ehlo()
        m = th.message("after vanish")
        c.send_message("sender@client.example", ["vanish2@localhost"], m)
    one_mail(srv, "vanish2")
    time.sleep(0.5)
    assert th.read_mail(srv.data_dir, "localhost", "vanish") == [], \
        "a message cut by a disconnect was delivered"


def test_quoted_sender_in_return_path(srv):
    msg = th.message("quoted sender")
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect('MAIL FROM:<"john doe"@client.example>', 250, "2.1.0")
        c.expect("RCPT TO:<quoted1@localhost>", 250, "2.1.5")
        c.expect("DATA", 354)
        qid = th.queue_id(check(c.send_data(msg), 250, "2.0.0"))
    th.check_delivered(one_mail(srv, "quoted1"), '"john doe"@client.example', msg, qid=qid)
