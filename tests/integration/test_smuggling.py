"""SMTP smuggling (CVE-2023-51764 family): only CR LF . CR LF ends DATA."""

import time
from pathlib import Path

import pytest

import tern_harness as th
from tern_harness import SMTPClient, check

SEPARATORS = [b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\r\n.\n"]
SEP_IDS = ["LF.LF", "LF.CRLF", "CR.CRLF", "CRLF.CR", "CRLF.LF"]


@pytest.fixture(scope="module")
def reject_srv(module_factory):
    return module_factory.start(bare_newline="reject", name="reject")


@pytest.fixture(scope="module")
def normalize_srv(module_factory):
    return module_factory.start(bare_newline="normalize", name="normalize")


def smuggle_wire(sep, victim):
    pre = b"Subject: smuggle test\r\n\r\nhello"
    inject = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<" + victim.encode() + b">\r\nDATA\r\n"
              b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
    return pre + sep + inject


def normalize_model(wire):
    """The documented DATA reader in normalize mode (src/proto/data.h): only
    a real CR LF starts a line; a leading dot is removed; bare CR or LF
    becomes CR LF; the message ends at the first line that is '.'."""
    out = bytearray()
    i = 0
    bol = True
    n = len(wire)
    while i < n:
        if bol and wire[i:i + 3] == b".\r\n":
            return bytes(out)
        if bol and wire[i:i + 1] == b".":
            i += 1
            bol = False
            continue
        bol = False
        b = wire[i:i + 1]
        if b == b"\r":
            if wire[i + 1:i + 2] == b"\n":
                out += b"\r\n"
                i += 2
                bol = True
                continue
            out += b"\r\n"
            i += 1
            continue
        if b == b"\n":
            out += b"\r\n"
            i += 1
            continue
        out += b
        i += 1
    raise AssertionError("wire text has no terminator")


def canary_and_check_victim(srv, tag, victim_user):
    """Send a later message and wait for it; by then a smuggled message
    would have been delivered too."""
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.send_message("s@client.example", [f"canary{tag}@localhost"], th.message("canary"))
    assert th.wait_mail(srv.data_dir, "localhost", f"canary{tag}"), "canary not delivered"
    time.sleep(0.5)
    assert th.read_mail(srv.data_dir, "localhost", victim_user) == [], \
        "a smuggled message reached the victim"


@pytest.mark.parametrize("sep", SEPARATORS, ids=SEP_IDS)
def test_smuggling_reject(reject_srv, sep):
    i = SEPARATORS.index(sep)
    victim = f"victimr{i}"
    rcpt = f"smugr{i}"
    wire = smuggle_wire(sep, f"{victim}@localhost")
    with SMTPClient(reject_srv.port) as c:
        c.ehlo()
        c.mail_rcpt_data("s@client.example", [f"{rcpt}@localhost"])
        c.send(wire)
        r = c.reply()
        check(r, 554, "5.6.0", what="end of DATA with a bare CR/LF")
        # nothing of the injected commands was answered
        assert c.nothing_pending(0.7), f"extra replies after the 554: {c.buf!r}"
        c.expect("NOOP", 250, "2.0.0")
        # the session is in a clean state: RCPT needs a new MAIL
        c.expect("RCPT TO:<x@localhost>", 503, "5.5.1")
    canary_and_check_victim(reject_srv, f"r{i}", victim)
    assert th.read_mail(reject_srv.data_dir, "localhost", rcpt) == []


@pytest.mark.parametrize("sep", SEPARATORS, ids=SEP_IDS)
def test_smuggling_normalize(normalize_srv, sep):
    i = SEPARATORS.index(sep)
    victim = f"victimn{i}"
    rcpt = f"smugn{i}"
    wire = smuggle_wire(sep, f"{victim}@localhost")
    expected = normalize_model(wire)
    assert b"smuggled" in expected and b"\n" not in expected.replace(b"\r\n", b"")
    with SMTPClient(normalize_srv.port) as c:
        c.ehlo()
        c.mail_rcpt_data("s@client.example", [f"{rcpt}@localhost"])
        c.send(wire)
        r = c.reply()
        check(r, 250, "2.0.0", what="end of DATA in normalize mode")
        qid = th.queue_id(r)
        assert c.nothing_pending(0.7), f"extra replies after the 250: {c.buf!r}"
        c.expect("NOOP", 250, "2.0.0")
    mails = th.wait_mail(normalize_srv.data_dir, "localhost", rcpt)
    canary_and_check_victim(normalize_srv, f"n{i}", victim)
    mails = th.read_mail(normalize_srv.data_dir, "localhost", rcpt)
    assert len(mails) == 1, f"{len(mails)} messages for {rcpt}"
    th.check_delivered(mails[0], "s@client.example", expected, qid=qid)


@pytest.mark.parametrize("body", [b"one\ntwo\r\n", b"one\rtwo\r\n", b"end with bare LF\n",
                                  b"x\r\r\n", b"\n"],
                         ids=["bareLF", "bareCR", "trailingLF", "CRCRLF", "onlyLF"])
def test_bare_newline_rejected(reject_srv, body):
    content = b"Subject: bare\r\n\r\n" + body
    with SMTPClient(reject_srv.port) as c:
        c.ehlo()
        c.mail_rcpt_data("s@client.example", ["bare1@localhost"])
        c.send(content + b"\r\n.\r\n" if not content.endswith(b"\r\n") else content + b".\r\n")
        check(c.reply(), 554, "5.6.0")
        c.expect("NOOP", 250, "2.0.0")
    time.sleep(0.5)
    assert th.read_mail(reject_srv.data_dir, "localhost", "bare1") == []


AUTHORED_BARE = Path("/work/shared/testdata/messages/authored/bare-lf-and-cr-in-body.eml")


def test_authored_bare_lf_cr_reject(reject_srv):
    raw = AUTHORED_BARE.read_bytes()
    assert b"\r\n" in raw
    wire = th.dot_stuff(raw) if raw.endswith(b"\r\n") else raw + b"\r\n"
    with SMTPClient(reject_srv.port) as c:
        c.ehlo()
        c.mail_rcpt_data("s@client.example", ["barefile@localhost"])
        c.send(wire + b".\r\n")
        check(c.reply(), 554, "5.6.0")
        c.expect("NOOP", 250, "2.0.0")


def test_authored_bare_lf_cr_normalize(normalize_srv):
    raw = AUTHORED_BARE.read_bytes()
    wire = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    wire += b".\r\n"
    expected = normalize_model(wire)
    with SMTPClient(normalize_srv.port) as c:
        c.ehlo()
        c.mail_rcpt_data("s@client.example", ["barefile@localhost"])
        c.send(wire)
        qid = th.queue_id(check(c.reply(), 250, "2.0.0"))
    mails = th.wait_mail(normalize_srv.data_dir, "localhost", "barefile")
    assert len(mails) == 1
    th.check_delivered(mails[0], "s@client.example", expected, qid=qid)


@pytest.mark.parametrize("mode", ["reject", "normalize"])
def test_bdat_terminator_is_content(reject_srv, normalize_srv, mode):
    srv = reject_srv if mode == "reject" else normalize_srv
    victim = f"bdatvictim{mode}"
    rcpt = f"bdatsmug{mode}"
    chunk1 = (b"Subject: bdat smuggle\r\n\r\nhello\r\n.\r\n"
              b"MAIL FROM:<evil@x>\r\nRCPT TO:<" + victim.encode() + b"@localhost>\r\n"
              b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
    chunk2 = b"QUIT\r\n.\r\n"
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@client.example>", 250, "2.1.0")
        c.expect(f"RCPT TO:<{rcpt}@localhost>", 250, "2.1.5")
        c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        check(c.reply(), 250, "2.0.0")
        assert c.nothing_pending(0.5), f"replies to chunk content: {c.buf!r}"
        c.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
        qid = th.queue_id(check(c.reply(), 250, "2.0.0"))
        assert c.nothing_pending(0.5), c.buf
        c.expect("NOOP", 250, "2.0.0")
    mails = th.wait_mail(srv.data_dir, "localhost", rcpt)
    canary_and_check_victim(srv, f"b{mode}", victim)
    assert len(th.read_mail(srv.data_dir, "localhost", rcpt)) == 1
    th.check_delivered(mails[0], "s@client.example", chunk1 + chunk2, qid=qid)


def test_no_separate_smuggled_message_anywhere(reject_srv, normalize_srv):
    """Run last in this file: no mailbox holds a message whose own header
    says 'Subject: smuggled'."""
    for srv in (reject_srv, normalize_srv):
        for p in th.all_mail_files(srv.data_dir):
            content = p.read_bytes()
            head = content.split(b"\r\n\r\n", 1)[0]
            assert b"Subject: smuggled" not in head, p
            assert b"<evil@x>" not in content.split(b"\r\n", 1)[0], p
