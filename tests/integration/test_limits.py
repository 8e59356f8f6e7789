"""Every input has a limit and a clear reply (DESIGN.md invariant 2)."""

import resource
import socket
import time

import pytest

import tern_harness as th
from tern_harness import SMTPClient, check

MAX_SIZE = 10 * 1024


@pytest.fixture(scope="module")
def srv(module_factory):
    return module_factory.start(
        listeners=["mx", "mx greet_pause 1s"],
        max_message_size="10K", max_recipients=5, max_errors=3,
        idle_timeout="2s", data_timeout="2s", max_connections_per_ip=1000)


def ehlo_client(srv, port=None):
    c = SMTPClient(port or srv.port)
    c.ehlo()
    return c


def nothing_for(srv, user, domain="localhost", wait=1.0):
    time.sleep(wait)
    return th.read_mail(srv.data_dir, domain, user) == []


# ---------------------------------------------------------------- size

def test_size_declared_over_limit(srv):
    with ehlo_client(srv) as c:
        c.expect(f"MAIL FROM:<s@client.example> SIZE={MAX_SIZE + 1}", 552, "5.3.4")
        c.expect("MAIL FROM:<s@client.example> SIZE=9999999999999999999", 552, "5.3.4")
        c.expect(f"MAIL FROM:<s@client.example> SIZE={MAX_SIZE}", 250, "2.1.0")


def test_size_actual_over_limit(srv):
    body = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 200   # ~14.4 KB
    assert len(body) > MAX_SIZE
    with ehlo_client(srv) as c:
        c.mail_rcpt_data("s@client.example", ["big1@localhost"])
        # the body is full of lines that would be commands if it were cut early
        r = c.send_data(body + b"QUIT\r\n" * 10)
        check(r, 552, "5.3.4")
        c.expect("NOOP", 250, "2.0.0")
        # the transaction is over; a new one works
        q = c.send_message("s@client.example", ["big2@localhost"], th.message("small"))
    assert q
    assert th.wait_mail(srv.data_dir, "localhost", "big2")
    assert th.read_mail(srv.data_dir, "localhost", "big1") == []


def test_size_actual_over_declared_is_checked(srv):
    # declaring a small SIZE does not let a big message through
    body = b"Subject: liar\r\n\r\n" + (b"y" * 98 + b"\r\n") * 200
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<s@client.example> SIZE=100", 250, "2.1.0")
        c.expect("RCPT TO:<liar@localhost>", 250, "2.1.5")
        c.expect("DATA", 354)
        check(c.send_data(body), 552, "5.3.4")
        c.expect("NOOP", 250, "2.0.0")
    assert nothing_for(srv, "liar")


def test_size_bdat_over_limit(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<s@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<bdatbig@localhost>", 250, "2.1.5")
        chunk = b"z" * (MAX_SIZE + 100)
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        check(c.reply(), 552, "5.3.4")
        c.expect("NOOP", 250, "2.0.0")
    assert nothing_for(srv, "bdatbig")


# ---------------------------------------------------------------- text lines

def test_text_line_1000_ok_1001_refused(srv):
    ok = b"Subject: l1000\r\n\r\n" + b"a" * 998 + b"\r\n"
    bad = b"Subject: l1001\r\n\r\n" + b"b" * 999 + b"\r\n"
    with ehlo_client(srv) as c:
        c.mail_rcpt_data("s@client.example", ["line1000@localhost"])
        check(c.send_data(ok), 250, "2.0.0")
        c.mail_rcpt_data("s@client.example", ["line1001@localhost"])
        check(c.send_data(bad), 554, "5.6.0")
        c.expect("NOOP", 250, "2.0.0")
    assert th.wait_mail(srv.data_dir, "localhost", "line1000")
    assert nothing_for(srv, "line1001")


def test_authored_body_line_over_998(srv):
    msg = th.to_crlf(open("/work/shared/testdata/messages/authored/body-line-over-998.eml",
                          "rb").read())
    with ehlo_client(srv) as c:
        c.mail_rcpt_data("s@client.example", ["line1500@localhost"])
        check(c.send_data(msg), 554, "5.6.0")
        c.expect("NOOP", 250, "2.0.0")
    assert nothing_for(srv, "line1500")


# ---------------------------------------------------------------- recipients

def test_max_recipients(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<s@client.example>", 250, "2.1.0")
        for i in range(5):
            c.expect(f"RCPT TO:<rl{i}@localhost>", 250, "2.1.5")
        c.expect("RCPT TO:<rl5@localhost>", 452, "4.5.3")
        c.expect("RCPT TO:<rl6@localhost>", 452, "4.5.3")
        c.expect("DATA", 354)
        check(c.send_data(th.message("rcpt limit")), 250, "2.0.0")
    for i in range(5):
        assert th.wait_mail(srv.data_dir, "localhost", f"rl{i}"), i
    assert th.read_mail(srv.data_dir, "localhost", "rl5") == []
    assert th.read_mail(srv.data_dir, "localhost", "rl6") == []


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("bad", ["XYZZY", "MAIL FROM:bogus", "RCPT TO:<a@localhost>"])
def test_max_errors(srv, bad):
    with ehlo_client(srv) as c:
        replies = []
        got421 = False
        for i in range(5):
            try:
                r = c.cmd(bad)
            except th.Closed:
                break
            replies.append(r)
            if r.code == 421:
                got421 = True
                break
            # the 421 may follow the last error reply at once
            if not c.nothing_pending(0.3):
                r2 = c.reply()
                replies.append(r2)
                if r2.code == 421:
                    got421 = True
                    break
        codes = [r.code for r in replies]
        assert got421, f"no 421 after repeated errors: {[r.raw for r in replies]}"
        check(replies[-1], 421, "4.7.0")
        errors_before = [x for x in codes[:-1] if x >= 500]
        # max_errors is 3: the first two errors are answered normally, the
        # 421 comes with the third (or right after it), not later
        assert 2 <= len(errors_before) <= 3, codes
        assert c.at_eof(3), "connection not closed after 421"


def test_errors_counted_per_session(srv):
    with ehlo_client(srv) as c:
        c.expect("XYZZY", 500, "5.5.1")
        c.expect("XYZZY", 500, "5.5.1")
    with ehlo_client(srv) as c:
        c.expect("XYZZY", 500, "5.5.1")
        c.expect("XYZZY", 500, "5.5.1")
        c.expect("NOOP", 250, "2.0.0")


# ---------------------------------------------------------------- timeouts

def test_idle_timeout(srv):
    with SMTPClient(srv.port) as c:
        t0 = time.monotonic()
        r = c.reply(timeout=8)
        elapsed = time.monotonic() - t0
        check(r, 421, "4.4.2")
        assert 1.5 <= elapsed <= 5.0, elapsed
        assert c.at_eof(3)


def test_idle_timeout_after_commands(srv):
    with ehlo_client(srv) as c:
        time.sleep(1.2)
        c.expect("NOOP", 250, "2.0.0")       # activity resets the timer
        time.sleep(1.2)
        c.expect("MAIL FROM:<s@client.example>", 250, "2.1.0")
        t0 = time.monotonic()
        check(c.reply(timeout=8), 421, "4.4.2")
        assert 1.5 <= time.monotonic() - t0 <= 5.0
        assert c.at_eof(3)


def test_data_timeout(srv):
    with ehlo_client(srv) as c:
        c.mail_rcpt_data("s@client.example", ["dto@localhost"])
        c.send(b"Subject: stalled\r\n\r\npartial line")
        t0 = time.monotonic()
        r = c.reply(timeout=8)
        check(r, 421, "4.4.2")
        assert 1.5 <= time.monotonic() - t0 <= 5.0
        assert c.at_eof(3)
    assert nothing_for(srv, "dto")


def test_slow_but_active_client_not_cut(srv):
    # a client that keeps sending (each gap < data_timeout) is not timed out
    content = th.message("slow", body="".join(f"line {i}\r\n" for i in range(4)))
    with ehlo_client(srv) as c:
        c.mail_rcpt_data("s@client.example", ["slow1@localhost"])
        wire = th.dot_stuff(content)
        parts = [wire[i:i + 40] for i in range(0, len(wire), 40)]
        for p in parts[:4]:
            c.send(p)
            time.sleep(0.8)
        c.send(b"".join(parts[4:]) + b".\r\n")
        check(c.reply(), 250, "2.0.0")
    assert th.wait_mail(srv.data_dir, "localhost", "slow1")


# ---------------------------------------------------------------- early talker, HTTP

def test_early_talker_refused(srv):
    port = srv.listeners()[1][0]
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"EHLO x\r\n")
        c = SMTPClient.__new__(SMTPClient)
        c.sock, c.buf, c.timeout, c.transcript = s, b"", 5, []
        r = c.reply(timeout=5)
        assert r.code == 554 and r.enh == "5.5.0", r.raw
        assert c.at_eof(3), "early talker not disconnected"
    finally:
        s.close()


def test_patient_client_gets_banner_after_pause(srv):
    port = srv.listeners()[1][0]
    t0 = time.monotonic()
    with SMTPClient(port) as c:
        elapsed = time.monotonic() - t0
        check(c.banner, 220)
        assert elapsed >= 0.8, f"banner came before greet_pause: {elapsed:.2f}s"
        c.ehlo()
        c.expect("NOOP", 250, "2.0.0")


def test_http_request_refused(srv):
    with SMTPClient(srv.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: mx.test.example\r\nUser-Agent: x\r\n\r\n")
        r = c.reply()
        assert 500 <= r.code <= 599, r.raw
        assert c.at_eof(3), "HTTP client not disconnected"


def test_http_post_refused(srv):
    with SMTPClient(srv.port) as c:
        c.ehlo()
        c.send(b"POST /x HTTP/1.0\r\n")
        r = c.reply()
        assert 500 <= r.code <= 599, r.raw
        assert c.at_eof(3)


# ---------------------------------------------------------------- connections per IP

def test_connections_per_ip(module_factory):
    t = module_factory.start(max_connections_per_ip=3, name="perip")
    time.sleep(0.5)     # let the readiness probe's connection be forgotten
    held = []
    try:
        for _ in range(3):
            c = SMTPClient(t.port)
            check(c.banner, 220)
            held.append(c)
        extra = SMTPClient(t.port, banner=False)
        held.append(extra)
        r = extra.reply(timeout=5)
        check(r, 421, "4.7.0")
        assert extra.at_eof(3)
        # another client address is not affected
        with SMTPClient(t.port, source="127.0.0.2") as other:
            check(other.banner, 220)
            other.ehlo()
        # the held connections still work
        for c in held[:3]:
            c.expect("NOOP", 250, "2.0.0")
        # closing one frees a slot
        held[0].expect("QUIT", 221, "2.0.0")
        held[0].close()
        time.sleep(0.3)

        def slot_free():
            c = SMTPClient(t.port, banner=False)
            r = c.reply(timeout=5)
            if r.code == 220:
                held.append(c)
                return True
            c.close()
            return False
        assert th.wait_until(slot_free, timeout=3, interval=0.2)
    finally:
        for c in held:
            c.close()


# ---------------------------------------------------------------- many connections

def _raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_500_idle_connections_do_not_block_new_client(module_factory):
    if _raise_nofile(4096) < 1100:
        pytest.skip("cannot raise RLIMIT_NOFILE")
    t = module_factory.start(name="many", max_connections=2000,
                             max_connections_per_ip=1000, idle_timeout="60s")
    socks = []
    try:
        for i in range(500):
            s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
            socks.append(s)
        deadline = time.monotonic() + 20
        for s in socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(1024)
                assert chunk, "held connection closed before its banner"
                data += chunk
            assert data.startswith(b"220 "), data
        t0 = time.monotonic()
        with SMTPClient(t.port) as c:
            c.ehlo()
            q = c.send_message("s@client.example", ["many1@localhost"], th.message("many"))
            c.expect("QUIT", 221, "2.0.0")
        elapsed = time.monotonic() - t0
        assert q
        assert elapsed < 3.0, f"transaction took {elapsed:.1f}s with 500 idle connections"
        assert th.wait_mail(t.data_dir, "localhost", "many1")
        # the idle ones are still served
        for s in socks[:: 50]:
            s.settimeout(5)
            s.sendall(b"NOOP\r\n")
            assert s.recv(1024).startswith(b"250 2.0.0"), "held connection not served"
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------- more limits

def test_header_line_over_998(srv):
    msg = th.to_crlf(open("/work/shared/testdata/messages/authored/header-line-over-998.eml",
                          "rb").read())
    with ehlo_client(srv) as c:
        c.mail_rcpt_data("s@client.example", ["hdr2000@localhost"])
        check(c.send_data(msg), 554, "5.6.0")
        c.expect("NOOP", 250, "2.0.0")
    assert nothing_for(srv, "hdr2000")


def test_size_bdat_chunks_sum_over_limit(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<s@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<bdatsum@localhost>", 250, "2.1.5")
        chunk = b"w" * 4000 + b"\r\n"
        replies = []
        for i in range(3):
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            replies.append(c.reply())
        c.send(b"BDAT 2 LAST\r\n\r\n")
        replies.append(c.reply())
        codes = [(r.code, r.enh) for r in replies]
        assert (552, "5.3.4") in codes, codes
        assert not any("queued" in r.text for r in replies), codes
        c.expect("NOOP", 250, "2.0.0")
    assert nothing_for(srv, "bdatsum")


def test_bdat_data_timeout(srv):
    with ehlo_client(srv) as c:
        c.expect("MAIL FROM:<s@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<bdatto@localhost>", 250, "2.1.5")
        c.send(b"BDAT 100 LAST\r\nonly ten..")
        t0 = time.monotonic()
        check(c.reply(timeout=8), 421, "4.4.2")
        assert 1.5 <= time.monotonic() - t0 <= 5.0
        assert c.at_eof(3)
    assert nothing_for(srv, "bdatto")


def test_data_timeout_right_after_354(srv):
    with ehlo_client(srv) as c:
        c.mail_rcpt_data("s@client.example", ["dto2@localhost"])
        check(c.reply(timeout=8), 421, "4.4.2")
        assert c.at_eof(3)


def test_session_timeout(module_factory):
    t = module_factory.start(name="session", session_timeout="3s", idle_timeout="2s")
    with SMTPClient(t.port) as c:
        c.ehlo()
        t0 = time.monotonic()
        r = None
        while time.monotonic() - t0 < 8:
            try:
                r = c.cmd("NOOP")
            except th.Closed:
                break
            if r.code != 250:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        assert r is not None and r.code == 421, f"no 421 within 8 s: {r!r}"
        assert r.enh and r.enh.startswith("4."), r.raw
        assert 2.0 <= elapsed <= 5.0, elapsed
        assert c.at_eof(3)


def test_session_timeout_holds_inside_data(module_factory):
    """A client that trickles DATA faster than data_timeout still meets
    session_timeout, during the message and not only at the next command."""
    t = module_factory.start(name="trickle", session_timeout="3s", data_timeout="2s")
    with SMTPClient(t.port) as c:
        c.ehlo()
        c.mail_rcpt_data("s@client.example", ["trickle@localhost"])
        t0 = time.monotonic()
        while time.monotonic() - t0 < 8:
            try:
                c.send(b"x")
            except OSError:
                break
            if c.nothing_pending(0.5) is False:
                break
        elapsed = time.monotonic() - t0
        r = c.reply(timeout=3)
        check(r, 421, "4.4.2")
        assert "Session" in r.text, r.raw
        assert elapsed <= 5.0, elapsed
        assert c.at_eof(3)
    assert th.maildir_new(t.data_dir, "localhost", "trickle") == []


def test_max_connections_total(module_factory):
    t = module_factory.start(name="total", max_connections=3, max_connections_per_ip=10)
    time.sleep(0.5)
    held = []
    try:
        for i in range(3):
            c = SMTPClient(t.port, source=f"127.0.0.{10 + i}")
            check(c.banner, 220)
            held.append(c)
        extra = SMTPClient(t.port, source="127.0.0.20", banner=False)
        held.append(extra)
        r = extra.reply(timeout=5)
        assert r.code == 421 and r.enh and r.enh.startswith("4."), r.raw
        assert extra.at_eof(3)
        for c in held[:3]:
            c.expect("NOOP", 250, "2.0.0")
    finally:
        for c in held:
            c.close()
