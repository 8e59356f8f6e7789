"""No open relay (DESIGN.md invariant 4), postmaster, users file, submission."""

import time

import pytest

import tern_harness as th
from tern_harness import SMTPClient, check


@pytest.fixture(scope="module")
def srv(module_factory):
    base = module_factory.base()
    users = base / "users"
    users.write_text("# test users\n"
                     "alice@localhost:{CRYPT}xyz\n"
                     "alice@example.test:{CRYPT}xyz\n"
                     "bob@example.test:{CRYPT}xyz\n")
    users.chmod(0o600)
    return module_factory.start(
        base=base, users=str(users), max_errors=100, max_recipients=100,
        listeners=["mx", "submission", "submission-alt"])


@pytest.fixture(scope="module")
def open_srv(module_factory):
    """No users file: every local part of a local domain is accepted."""
    return module_factory.start(name="nousers", max_errors=100, max_recipients=100)


def in_transaction(port):
    c = SMTPClient(port)
    c.ehlo()
    c.expect("MAIL FROM:<sender@client.example>", 250, "2.1.0")
    return c


FOREIGN = [
    "someone@foreign.example",
    "alice@sub.localhost",
    "alice@localhost.foreign.example",
    "alice@example.test.foreign.example",
    "alice@foreign.example",
    "@x.example:a@foreign.example",
    "@x.example,@localhost:a@foreign.example",
    "@localhost:a@foreign.example",
    "postmaster@foreign.example",
    "alice@xn--nxasmq6b.example",
]

ROUTING_HACKS = [
    "a%b@localhost",
    "alice%foreign.example@localhost",
    "alice%foreign.example@example.test",
    "b!a@localhost",
    "foreign.example!alice@localhost",
    '"a@b"@localhost',
    '"alice@foreign.example"@localhost',
    '"alice@foreign.example"@example.test',
    "alice%foreign.example%localhost@localhost",
    '"alice%foreign.example"@localhost',
    '"foreign.example!alice"@localhost',
]


@pytest.mark.parametrize("addr", FOREIGN)
def test_foreign_domain_refused(srv, open_srv, addr):
    for s in (srv, open_srv):
        with in_transaction(s.port) as c:
            c.expect(f"RCPT TO:<{addr}>", 554, "5.7.1")


@pytest.mark.parametrize("addr", ROUTING_HACKS)
def test_routing_hacks_refused(srv, open_srv, addr):
    for s in (srv, open_srv):
        with in_transaction(s.port) as c:
            c.expect(f"RCPT TO:<{addr}>", 550, "5.7.1")


def test_address_literal_not_a_local_domain(srv, open_srv):
    for s in (srv, open_srv):
        with in_transaction(s.port) as c:
            r = c.cmd("RCPT TO:<alice@[127.0.0.1]>")
            assert r.code in (550, 554) and r.enh == "5.7.1", r.raw
            r = c.cmd("RCPT TO:<alice@[IPv6:::1]>")
            assert r.code in (550, 554) and r.enh == "5.7.1", r.raw


def test_source_route_to_local_accepted(srv, open_srv):
    with in_transaction(srv.port) as c:
        c.expect("RCPT TO:<@x.example:alice@localhost>", 250, "2.1.5")
    with in_transaction(open_srv.port) as c:
        c.expect("RCPT TO:<@x.example:a@localhost>", 250, "2.1.5")
        c.expect("RCPT TO:<@x.example,@y.example:a@example.test>", 250, "2.1.5")


def test_source_route_delivered_to_local_mailbox(open_srv):
    msg = th.message("route")
    with in_transaction(open_srv.port) as c:
        c.expect("RCPT TO:<@x.example:routed@localhost>", 250, "2.1.5")
        c.expect("DATA", 354)
        check(c.send_data(msg), 250, "2.0.0")
    mails = th.wait_mail(open_srv.data_dir, "localhost", "routed")
    assert len(mails) == 1
    th.check_delivered(mails[0], "sender@client.example", msg)


def test_relay_decided_on_every_rcpt(srv):
    msg = th.message("every rcpt")
    with in_transaction(srv.port) as c:
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")
        c.expect("RCPT TO:<victim@foreign.example>", 554, "5.7.1")
        c.expect("RCPT TO:<alice%foreign.example@localhost>", 550, "5.7.1")
        c.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
        c.expect("RCPT TO:<victim2@foreign.example>", 554, "5.7.1")
        c.expect("DATA", 354)
        check(c.send_data(msg), 250, "2.0.0")
    assert th.wait_mail(srv.data_dir, "localhost", "alice")
    assert th.wait_mail(srv.data_dir, "example.test", "bob")
    time.sleep(0.5)
    dirs = {p.parent.parent.parent.name for p in th.all_mail_files(srv.data_dir)}
    assert dirs <= {"localhost", "example.test"}, dirs


def test_no_mail_for_foreign_domains_anywhere(srv, open_srv):
    for s in (srv, open_srv):
        for p in th.all_mail_files(s.data_dir):
            dom = p.parent.parent.parent.name
            assert dom in ("localhost", "example.test"), p


# ---------------------------------------------------------------- postmaster

@pytest.mark.parametrize("addr", ["postmaster", "Postmaster", "POSTMASTER",
                                  "postmaster@localhost", "PostMaster@LOCALHOST",
                                  "postmaster@example.test"])
def test_postmaster_always_accepted(srv, addr):
    # the users file has no postmaster
    with in_transaction(srv.port) as c:
        c.expect(f"RCPT TO:<{addr}>", 250, "2.1.5")


def test_postmaster_accepted_with_null_sender_and_delivered(srv):
    msg = th.message("to postmaster")
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<>", 250, "2.1.0")
        c.expect("RCPT TO:<postmaster@localhost>", 250, "2.1.5")
        c.expect("DATA", 354)
        check(c.send_data(msg), 250, "2.0.0")
    mails = th.wait_mail(srv.data_dir, "localhost", "postmaster")
    assert mails, "postmaster@localhost not delivered"
    th.check_delivered(mails[-1], "", msg)


def test_bare_postmaster_delivered_somewhere_local(srv):
    msg = th.message("bare postmaster", msgid="<bare-postmaster-1@client.example>")
    with in_transaction(srv.port) as c:
        c.expect("RCPT TO:<postmaster>", 250, "2.1.5")
        c.expect("DATA", 354)
        check(c.send_data(msg), 250, "2.0.0")

    def found():
        return [p for p in th.all_mail_files(srv.data_dir)
                if b"<bare-postmaster-1@client.example>" in p.read_bytes()]
    got = th.wait_until(found, timeout=10)
    assert got, "mail to <postmaster> not delivered"
    assert len(got) == 1
    assert got[0].parent.parent.name == "postmaster", got


# ---------------------------------------------------------------- users file

@pytest.mark.parametrize("addr", ["nosuch@localhost", "nosuch@example.test",
                                  "bob@localhost", "alice.x@localhost", "alicе@localhost"])
def test_unknown_local_user(srv, addr):
    with in_transaction(srv.port) as c:
        if not addr.isascii():
            c.expect("RSET", 250, "2.0.0")
            c.expect("MAIL FROM:<sender@client.example> SMTPUTF8", 250, "2.1.0")
        c.expect(f"RCPT TO:<{addr}>", 550, "5.1.1")
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")


def test_known_users_accepted(srv):
    with in_transaction(srv.port) as c:
        c.expect("RCPT TO:<alice@localhost>", 250, "2.1.5")
        c.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
        c.expect("RCPT TO:<bob@example.test>", 250, "2.1.5")
        c.expect("RCPT TO:<alice@EXAMPLE.TEST>", 250, "2.1.5")


def test_without_users_file_any_local_part(open_srv):
    with in_transaction(open_srv.port) as c:
        c.expect("RCPT TO:<anything.at.all@localhost>", 250, "2.1.5")
        c.expect("RCPT TO:<zz-top+tag@example.test>", 250, "2.1.5")
        c.expect("RCPT TO:<nosuch@localhost>", 250, "2.1.5")


def test_users_file_refusal_equals_for_each_unknown(srv):
    # no hint whether a domain or a user exists beyond 550 5.1.1
    with in_transaction(srv.port) as c:
        a = c.expect("RCPT TO:<nosuch1@localhost>", 550, "5.1.1")
        b = c.expect("RCPT TO:<nosuch2@example.test>", 550, "5.1.1")
    assert a.code == b.code


# ---------------------------------------------------------------- submission

@pytest.mark.parametrize("role", ["submission", "submission-alt"])
def test_submission_requires_auth(srv, role):
    port = srv.port_for(role)
    with SMTPClient(port) as c:
        check(c.banner, 220)
        r = c.ehlo()
        exts = {t.split()[0].upper() for t in r.texts[1:]}
        # invariant 5: no AUTH over plain text
        assert "AUTH" not in exts, r.raw
        c.expect("MAIL FROM:<alice@localhost>", 530, "5.7.0")
        c.expect("MAIL FROM:<sender@client.example>", 530, "5.7.0")
        c.expect("MAIL FROM:<>", 530, "5.7.0")
        r = c.cmd("RCPT TO:<someone@foreign.example>")
        assert r.code in (503, 530), r.raw
        r = c.cmd("DATA")
        assert r.code in (503, 530), r.raw
        c.expect("NOOP", 250, "2.0.0")


@pytest.mark.parametrize("role", ["submission", "submission-alt"])
def test_submission_pipelined_cannot_relay(srv, role):
    port = srv.port_for(role)
    with SMTPClient(port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<alice@localhost>\r\nRCPT TO:<victim@foreign.example>\r\n"
               b"DATA\r\nSubject: relayed\r\n\r\nrelayed\r\n.\r\nNOOP\r\n")
        replies = []
        while len(replies) < 12:
            r = c.reply()
            replies.append(r)
            if r.code == 250 and r.enh == "2.0.0" and "queued" not in r.text:
                break       # the NOOP
        codes = [(r.code, r.enh) for r in replies]
        assert codes[0] == (530, "5.7.0"), codes
        assert codes[-1] == (250, "2.0.0"), codes
        # nothing before the NOOP was accepted
        assert all(code >= 500 for code, _ in codes[:-1]), codes
        assert not any("queued" in r.text for r in replies), codes
