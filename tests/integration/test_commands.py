"""Every SMTP command and its reply code (the reply table of the spec)."""

import re
import time

import pytest

import tern_harness as th
from tern_harness import SMTPClient, check

HOST = th.HOSTNAME
EXTENSIONS = {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES",
              "SMTPUTF8", "DSN", "CHUNKING"}


@pytest.fixture(scope="module")
def srv(module_factory):
    base = module_factory.base()
    users = base / "users"
    users.write_text("alice@localhost:{CRYPT}xyz\n"
                     "alice@example.test:{CRYPT}xyz\n"
                     "bob@example.test:{CRYPT}xyz\n")
    users.chmod(0o600)
    return module_factory.start(base=base, users=str(users), max_errors=100,
                                max_message_size="64K", max_recipients=50)


def client(srv, **kw):
    return SMTPClient(srv.port, **kw)


def ehlo_client(srv):
    c = client(srv)
    c.ehlo()
    return c


# ---------------------------------------------------------------- greeting

def test_greeting(srv):
    with client(srv) as c:
        b = c.banner
        assert b.code == 220, b.raw
        assert len(b.texts) == 1, b.raw
        assert b.first.split()[0] == HOST, b.raw
        assert "ESMTP" in b.first.split(), b.raw
        assert "tern" in b.first, b.raw
        assert b.enh is None, f"greeting must carry no enhanced code: {b.raw!r}"


def test_ehlo_extensions(srv):
    with client(srv) as c:
        r = c.expect("EHLO client.example", 250)
        assert len(r.texts) >= 2, r.raw
        assert r.raw.startswith(f"250-{HOST}".encode()), r.raw
        assert r.enh is None, r.raw
        kw = {}
        for t in r.texts[1:]:
            assert th.ENH_RE.match(t.split(" ")[0]) is None, f"EHLO line with enhanced code: {t!r}"
            parts = t.split()
            kw[parts[0].upper()] = parts[1:]
        missing = EXTENSIONS - set(kw)
        assert not missing, f"EHLO lacks {missing}: {r.raw!r}"
        assert kw["SIZE"] == ["65536"], f"SIZE must announce max_message_size: {r.raw!r}"
        assert "AUTH" not in kw, r.raw          # never offered on mx, never in plaintext
        assert "STARTTLS" in kw, r.raw          # offered, optional, on mx


def test_helo_single_line(srv):
    with client(srv) as c:
        r = c.expect("HELO client.example", 250)
        assert len(r.texts) == 1, r.raw
        assert r.first.split()[0] == HOST, r.raw
        assert r.enh is None, r.raw


@pytest.mark.parametrize("cmd", ["EHLO", "HELO", "EHLO ", "HELO  "])
def test_ehlo_helo_without_argument(srv, cmd):
    with client(srv) as c:
        c.expect(cmd, 501, "5.5.4")
        # the session is still usable
        c.ehlo()


def test_ehlo_twice_resets(srv):
    with client(srv) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@client.example>", 250, "2.1.0")
        c.ehlo("again.example")
        # EHLO resets the transaction: RCPT now is a bad sequence
        c.expect("RCPT TO:<alice@localhost>", 503, "5.5.1")


# ---------------------------------------------------------------- transaction

def test_full_transaction_codes(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")
        c.expect("DATA", 354)
        r = c.send_data(th.message("codes"))
        check(r, 250, "2.0.0")
        assert re.search(r"Ok: queued as [A-Za-z0-9]+$", r.first), r.raw
        c.expect("QUIT", 221, "2.0.0")
        assert c.at_eof(3), "connection not closed after QUIT"


def test_lowercase_commands(srv):
    with client(srv) as c:
        c.expect("ehlo client.example", 250)
        c.expect("mail from:<sender@client.example>", 250, "2.1.0")
        c.expect("rcpt to:<alice@localhost>", 250, "2.1.5")
        c.expect("rset", 250, "2.0.0")
        c.expect("noop", 250, "2.0.0")


def test_queue_ids_unique_and_sortable(srv):
    ids = []
    for i in range(3):
        with ehlo_client(srv) as c:
            ids.append(c.send_message("s@client.example", ["alice@localhost"],
                                      th.message(f"qid {i}")))
        if i < 2:
            time.sleep(1.1)
    for q in ids:
        assert re.fullmatch(r"[A-Za-z0-9]+", q), q
    assert len(set(ids)) == 3, ids
    assert ids == sorted(ids), f"queue ids not sortable by time: {ids}"


def test_rset_noop_quit(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RSET", 250, "2.0.0")
        # RSET ended the transaction
        c.expect("RCPT TO:<alice@localhost>", 503, "5.5.1")
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("NOOP", 250, "2.0.0")
        c.expect("NOOP with an argument", 250, "2.0.0")
        c.expect("QUIT", 221, "2.0.0")
        assert c.at_eof(3)


def test_noop_rset_before_ehlo(srv):
    with client(srv) as c:
        c.expect("NOOP", 250, "2.0.0")
        c.expect("RSET", 250, "2.0.0")


def test_vrfy_no_enumeration(srv):
    with ehlo_client(srv) as c:
        known = c.expect("VRFY alice@localhost", 252, "2.0.0")
        unknown = c.expect("VRFY nosuchuser@localhost", 252, "2.0.0")
        plain = c.expect("VRFY alice", 252, "2.0.0")
        plain2 = c.expect("VRFY zzzzz", 252, "2.0.0")
    a = known.text.replace("alice@localhost", "X")
    b = unknown.text.replace("nosuchuser@localhost", "X")
    assert a == b, f"VRFY replies differ for a known and an unknown user: {known.raw!r} / {unknown.raw!r}"
    assert plain.text.replace("alice", "X") == plain2.text.replace("zzzzz", "X")


def test_expn(srv):
    with ehlo_client(srv) as c:
        c.expect("EXPN staff", 502, "5.5.1")


def test_help(srv):
    with client(srv) as c:
        r = c.expect("HELP", 214, "2.0.0")
        for i in range(len(r.texts)):
            assert r.line_enh(i) == "2.0.0", f"every HELP line needs 2.0.0: {r.raw!r}"
        c.expect("HELP xyzzy", 504, "5.5.4")
        c.expect("NOOP", 250, "2.0.0")


def test_etrn_starttls_auth(srv):
    with ehlo_client(srv) as c:
        c.expect("ETRN example.test", 502, "5.7.0")   # no etrn_allow: nobody may
        # STARTTLS takes no argument (the handshake itself: test_tls.py)
        c.expect("STARTTLS now", 501, "5.5.4")
        c.expect("AUTH PLAIN AGFsaWNlAHNlY3JldA==", 502, "5.5.1")
        # still plain text and working after the refusals
        c.expect("NOOP", 250, "2.0.0")


@pytest.mark.parametrize("line", ["XYZZY", "MAILFROM:<a@b.example>", "DATAX",
                                  "\x01\x02", "BOGUS with args"])
def test_unknown_command(srv, line):
    with ehlo_client(srv) as c:
        c.expect(line, 500, "5.5.1")
        c.expect("NOOP", 250, "2.0.0")


def test_empty_line(srv):
    with ehlo_client(srv) as c:
        r = c.cmd("")
        assert r.code in (500, 501), r.raw
        assert r.enh in ("5.5.1", "5.5.2", "5.5.4"), r.raw
        c.expect("NOOP", 250, "2.0.0")


# ---------------------------------------------------------------- long lines

def test_command_line_512_ok_513_refused(srv):
    with ehlo_client(srv) as c:
        line512 = "NOOP " + "x" * (512 - 2 - 5)
        assert len(line512) + 2 == 512
        c.expect(line512, 250, "2.0.0")
        line513 = "NOOP " + "x" * (513 - 2 - 5)
        c.expect(line513, 500, "5.5.2")
        c.expect("NOOP", 250, "2.0.0")


def test_very_long_command_line_session_continues(srv):
    with ehlo_client(srv) as c:
        c.send(b"MAIL FROM:<" + b"a" * 200000 + b"@client.example>\r\n")
        r = c.reply()
        check(r, 500, "5.5.2")
        # exactly one reply for the long line: the next command gets its own
        c.expect("NOOP", 250, "2.0.0")
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")


def test_long_line_in_pipeline_does_not_desync(srv):
    with ehlo_client(srv) as c:
        c.send(b"NOOP " + b"y" * 3000 + b"\r\nNOOP\r\nRSET\r\n")
        check(c.reply(), 500, "5.5.2")
        check(c.reply(), 250, "2.0.0")
        check(c.reply(), 250, "2.0.0")
        assert c.nothing_pending(0.3)


# ---------------------------------------------------------------- syntax

@pytest.mark.parametrize("line,code,enh", [
    ("MAIL FROM:bogus", 501, "5.1.7"),
    ("MAIL FROM:<a b@client.example>", 501, "5.1.7"),
    ("MAIL FROM:<sender@client.example", 501, "5.1.7"),
    ("MAIL FROM:<a@b@client.example>", 501, "5.1.7"),
    ("MAIL FROM:<sender@client.example.>", 501, "5.1.7"),
    ("MAIL FROM:<sender@-bad.example>", 501, "5.1.7"),
    ("MAIL TO:<sender@client.example>", 501, "5.5.4"),
    ("MAIL", 501, "5.5.4"),
])
def test_mail_syntax_errors(srv, line, code, enh):
    with ehlo_client(srv) as c:
        c.expect(line, code, enh)
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")


@pytest.mark.parametrize("line,code,enh", [
    ("RCPT TO:<a b>", 501, "5.1.3"),
    ("RCPT TO:alice@localhost", 501, "5.1.3"),
    ("RCPT TO:<>", 501, "5.1.3"),
    ("RCPT TO:<alice@localhost", 501, "5.1.3"),
    ("RCPT TO:<" + "a" * 65 + "@localhost>", 501, "5.1.3"),
    ("RCPT FROM:<alice@localhost>", 501, "5.5.4"),
    ("RCPT", 501, "5.5.4"),
])
def test_rcpt_syntax_errors(srv, line, code, enh):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        r = c.cmd(line)
        if line == "RCPT TO:<>":
            # the null path is never a recipient
            assert r.code == 501 and r.enh in ("5.1.3", "5.5.4"), r.raw
        else:
            check(r, code, enh, what=line)
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")


def test_spaces_after_colon_tolerated(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM: <sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO: <alice@localhost>", 250, "2.1.5")


# ---------------------------------------------------------------- parameters

@pytest.mark.parametrize("params,code,enh", [
    (" FOO=bar", 555, "5.5.4"),
    (" XUNKNOWN", 555, "5.5.4"),
    (" SIZE=abc", 501, "5.5.4"),
    (" SIZE=", 501, "5.5.4"),
    (" SIZE=-1", 501, "5.5.4"),
    (" SIZE=123456789012345678901", 501, "5.5.4"),
    (" BODY=BOGUS", 501, "5.5.4"),
    (" RET=SOMETIMES", 501, "5.5.4"),
    (" ENVID=" + "a" * 101, 501, "5.5.4"),
    (" ENVID=bad+zz", 501, "5.5.4"),
    (" SMTPUTF8=yes", 501, "5.5.4"),
])
def test_mail_parameter_errors(srv, params, code, enh):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>" + params, code, enh)
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")


def test_mail_duplicate_size(srv):
    with ehlo_client(srv) as c:
        r = c.cmd("MAIL FROM:<sender@client.example> SIZE=10 SIZE=20")
        assert r.code in (501, 555) and r.enh == "5.5.4", r.raw


def test_mail_parameters_ok(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example> SIZE=1000 BODY=8BITMIME "
                 "RET=HDRS ENVID=abc+2Bdef", 250, "2.1.0")
        c.expect("RSET", 250, "2.0.0")
        c.expect("MAIL FROM:<sender@client.example> body=7bit size=0", 250, "2.1.0")
        c.expect("RSET", 250, "2.0.0")
        c.expect("MAIL FROM:<sender@client.example> ENVID=" + "a" * 100, 250, "2.1.0")


@pytest.mark.parametrize("params,code,enh", [
    (" FOO=bar", 555, "5.5.4"),
    (" NOTIFY=NEVER,SUCCESS", 501, "5.5.4"),
    (" NOTIFY=SOMETIMES", 501, "5.5.4"),
    (" NOTIFY=", 501, "5.5.4"),
    (" ORCPT=rfc822", 501, "5.5.4"),
    (" ORCPT=rfc822;a+zz", 501, "5.5.4"),
    (" ORCPT=;a@b", 501, "5.5.4"),
])
def test_rcpt_parameter_errors(srv, params, code, enh):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@localhost>" + params, code, enh)
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")


def test_rcpt_dsn_parameters_ok(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@localhost> NOTIFY=SUCCESS,FAILURE,DELAY "
                 "ORCPT=rfc822;alice@localhost", 250, "2.1.5")
        c.expect("RCPT TO:<bob@example.test> NOTIFY=NEVER", 250, "2.1.5")


# ---------------------------------------------------------------- SMTPUTF8

def test_smtputf8_address_accepted_with_param(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<jösé@bücher.example> SMTPUTF8", 250, "2.1.0")
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")


def test_utf8_address_without_smtputf8(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<jösé@bücher.example>", 553, "5.6.7")
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<jösé@localhost>", 553, "5.6.7")


def test_invalid_utf8_refused_even_with_smtputf8(srv):
    with ehlo_client(srv) as c:
        c.send(b"MAIL FROM:<a\xff\xfe@client.example> SMTPUTF8\r\n")
        r = c.reply()
        assert r.code in (501, 553), r.raw


# ---------------------------------------------------------------- sequence

def test_mail_before_ehlo(srv):
    with client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 503, "5.5.1")


def test_rcpt_before_mail(srv):
    with ehlo_client(srv) as c:
        c.expect("RCPT TO:<alice@localhost>", 503, "5.5.1")


def test_data_before_mail(srv):
    with ehlo_client(srv) as c:
        c.expect("DATA", 503, "5.5.1")
        c.expect("NOOP", 250, "2.0.0")


def test_data_before_rcpt(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("DATA", 503, "5.5.1")
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")


def test_mail_inside_transaction(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("MAIL FROM:<other@client.example>", 503, "5.5.1")
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")


def test_data_after_all_rcpts_refused(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<someone@foreign.example>", 554, "5.7.1")
        c.expect("RCPT TO:<nosuchuser@localhost>", 550, "5.1.1")
        c.expect("DATA", 554, "5.5.1")
        # not in DATA mode: a command is read as a command
        c.expect("NOOP", 250, "2.0.0")


def test_bdat_before_rcpt_consumes_chunk(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        chunk = b"QUIT\r\nXYZZY\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        check(c.reply(), 503, "5.5.1")
        # the chunk was swallowed: no 221 and no 500 for its lines
        assert c.nothing_pending(0.5), c.buf
        c.expect("NOOP", 250, "2.0.0")


def test_bdat_before_mail_consumes_chunk(srv):
    with ehlo_client(srv) as c:
        chunk = b"RSET\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        check(c.reply(), 503, "5.5.1")
        assert c.nothing_pending(0.5), c.buf
        c.expect("NOOP", 250, "2.0.0")


def test_bdat_codes(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")
        part1 = b"Subject: bdat\r\n"
        part2 = b"\r\nbody\r\n"
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        check(c.reply(), 250, "2.0.0")
        c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        r = c.reply()
        check(r, 250, "2.0.0")
        th.queue_id(r)
        # after BDAT, DATA is a bad sequence until a new transaction
        c.expect("DATA", 503, "5.5.1")


def test_bdat_then_data_in_same_transaction(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")
        c.send(b"BDAT 3\r\nabc")
        check(c.reply(), 250, "2.0.0")
        # RFC 3030: DATA after BDAT in one transaction is a bad sequence
        c.expect("DATA", 503, "5.5.1")


def test_bdat_syntax(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")
        c.expect("BDAT", 501, "5.5.4")
        c.expect("BDAT abc", 501, "5.5.4")
        c.expect("NOOP", 250, "2.0.0")


# ---------------------------------------------------------------- pipelining

def test_pipelined_transaction(srv):
    with ehlo_client(srv) as c:
        c.send(b"MAIL FROM:<sender@client.example>\r\n"
               b"RCPT TO:<alice@localhost>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        check(c.reply(), 250, "2.1.0")
        check(c.reply(), 250, "2.1.5")
        check(c.reply(), 250, "2.1.5")
        check(c.reply(), 354)
        c.send(th.dot_stuff(th.message("pipelined")) + b".\r\nQUIT\r\n")
        r = c.reply()
        check(r, 250, "2.0.0")
        th.queue_id(r)
        check(c.reply(), 221, "2.0.0")
        assert c.at_eof(3)


def test_pipelined_with_errors_in_order(srv):
    with ehlo_client(srv) as c:
        c.send(b"MAIL FROM:<sender@client.example>\r\n"
               b"RCPT TO:<someone@foreign.example>\r\n"
               b"RCPT TO:<alice@localhost>\r\n"
               b"XYZZY\r\n"
               b"RSET\r\n"
               b"NOOP\r\n")
        check(c.reply(), 250, "2.1.0")
        check(c.reply(), 554, "5.7.1")
        check(c.reply(), 250, "2.1.5")
        check(c.reply(), 500, "5.5.1")
        check(c.reply(), 250, "2.0.0")
        check(c.reply(), 250, "2.0.0")
        assert c.nothing_pending(0.3)


def test_pipelined_two_messages_one_write(srv):
    m1 = th.message("pipe one")
    m2 = th.message("pipe two")
    with ehlo_client(srv) as c:
        c.send(b"MAIL FROM:<sender@client.example>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
        check(c.reply(), 250, "2.1.0")
        check(c.reply(), 250, "2.1.5")
        check(c.reply(), 354)
        c.send(th.dot_stuff(m1) + b".\r\nMAIL FROM:<sender@client.example>\r\n"
               b"RCPT TO:<alice@localhost>\r\nDATA\r\n")
        q1 = th.queue_id(check(c.reply(), 250, "2.0.0"))
        check(c.reply(), 250, "2.1.0")
        check(c.reply(), 250, "2.1.5")
        check(c.reply(), 354)
        q2 = th.queue_id(c.send_data(m2))
        assert q1 != q2


# ---------------------------------------------------------------- reply format

def test_every_non_greeting_reply_has_enhanced_code(srv):
    cmds = ["NOOP", "RSET", "XYZZY", "MAIL FROM:<a@client.example>",
            "RCPT TO:<alice@localhost>", "RCPT TO:<x@foreign.example>",
            "VRFY a", "EXPN a", "HELP", "ETRN x", "STARTTLS x", "AUTH LOGIN",
            "MAIL FROM:<b@client.example>", "RSET", "DATA", "QUIT"]
    with ehlo_client(srv) as c:
        for cmd in cmds:
            r = c.cmd(cmd)
            assert r.enh is not None and r.enh[0] == str(r.code)[0], \
                f"{cmd!r}: reply without a matching enhanced code: {r.raw!r}"


def test_nul_in_command(srv):
    with ehlo_client(srv) as c:
        c.send(b"NOOP\x00junk\r\n")
        r = c.reply()
        assert r.code == 500 and r.enh and r.enh.startswith("5.5."), r.raw
        c.send(b"MAIL FROM:<a\x00b@client.example>\r\n")
        r = c.reply()
        assert 500 <= r.code <= 501, r.raw
        c.expect("NOOP", 250, "2.0.0")


def test_nothing_after_quit(srv):
    with ehlo_client(srv) as c:
        c.send(b"QUIT\r\nNOOP\r\nMAIL FROM:<a@client.example>\r\n")
        check(c.reply(), 221, "2.0.0")
        assert c.at_eof(3), f"data after 221: {c.buf!r}"
        assert c.buf == b"", c.buf


def test_client_talking_at_once_without_greet_pause(srv):
    # no greet_pause on this listener: a client that does not wait is served
    import socket
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"EHLO fast.example\r\nNOOP\r\n")
    c = SMTPClient.__new__(SMTPClient)
    c.sock, c.buf, c.timeout, c.transcript = s, b"", 10, []
    try:
        check(c.reply(), 220)
        check(c.reply(), 250)
        check(c.reply(), 250, "2.0.0")
    finally:
        s.close()
