"""Delivery status notifications (src/spool/dsn.c) as a mail reader sees them:
each scenario of build/test/dsn_sample is parsed with Python's email
package (through dsn_check.py, which the outbound tests reuse on bounces
found in a Maildir)."""

import email
import email.policy
import os
import subprocess
from pathlib import Path

import pytest

from dsn_check import DSNError, check_lines, parse_dsn, parse_report

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(os.environ.get("DSN_SAMPLE", ROOT / "build/test/dsn_sample"))
SCENARIOS = ["failed", "delayed", "mixed", "full", "success", "utf8", "nullmx", "big",
             "noblank"]
SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "success": "Successful Mail Delivery Report",
}


def sample(name):
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} not built (make {SAMPLE.relative_to(ROOT)})")
    p = subprocess.run([str(SAMPLE), name], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert b"runtime error:" not in p.stderr and b"Sanitizer" not in p.stderr, p.stderr
    return p.stdout


def flat(text):
    """Human text with its line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def dsns():
    return {name: sample(name) for name in SCENARIOS}


def test_scenario_list_matches():
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} not built")
    out = subprocess.run([str(SAMPLE), "list"], capture_output=True, timeout=30, check=True)
    assert out.stdout.decode().split() == SCENARIOS


@pytest.mark.parametrize("name", SCENARIOS)
def test_structure(dsns, name):
    raw = dsns[name]
    check_lines(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.is_multipart()
    assert msg.get_content_type() == "multipart/report"
    utf8 = name == "utf8"
    want_report = "global-delivery-status" if utf8 else "delivery-status"
    assert msg.get_param("report-type") == want_report
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert "MAILER-DAEMON@mx.example.org" in str(msg["From"])
    assert msg["Message-ID"] == "<Q4F3A2B1C.dsn.1772445600@mx.example.org>"
    assert msg["Date"] == "Mon, 02 Mar 2026 10:00:00 +0000"
    parts = msg.get_payload()
    assert len(parts) == 3
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == ("message/global-delivery-status" if utf8
                                           else "message/delivery-status")
    if not utf8:
        # Python's own representation: a list of Message objects, the
        # per-message block first.
        blocks = parts[1].get_payload()
        assert isinstance(blocks, list) and len(blocks) >= 2
        assert blocks[0]["Reporting-MTA"] == "dns; mx.example.org"
        for b in blocks[1:]:
            assert b["Final-Recipient"] and b["Action"] and b["Status"]
        assert msg["Content-Transfer-Encoding"] == "7bit"
    report = parse_report(raw)
    assert report["reporting_mta"] == "mx.example.org"
    assert report["to"] == ("j\u00fcrgen@example.org" if utf8 else "alice@example.org")
    assert report["recipients"]
    # deterministic: the same scenario gives the same octets
    assert sample(name) == raw


def test_failed(dsns):
    report = parse_report(dsns["failed"])
    assert report["subject"] == SUBJECTS["failed"]
    assert report["envid"] == "QQ+314"           # ENVID xtext "QQ+2B314" decoded
    [r] = parse_dsn(dsns["failed"])
    assert r["action"] == "failed"
    assert r["status"] == "5.1.1"
    assert r["final_recipient"] == "bob@remote.example"
    assert r["final_recipient_type"] == "rfc822"
    assert r["original_recipient"] == "rfc822; bob@remote.example"
    assert r["remote_mta"] == "mx1.remote.example"
    assert r["diagnostic_type"] == "smtp"
    assert r["diagnostic"] == ("550 5.1.1 <bob@remote.example>: Recipient address rejected: "
                               "User unknown in virtual mailbox table")
    assert r["last_attempt"] == "Mon, 02 Mar 2026 09:59:59 +0000"
    assert r["will_retry_until"] is None
    human = flat(r["human"])
    assert ("The mail server for remote.example (mx1.remote.example) said: 550 5.1.1 "
            "<bob@remote.example>: Recipient address rejected") in human
    assert "Check it for typing mistakes" in human
    assert "The headers of your message are attached" in human
    assert r["original_type"] == "text/rfc822-headers"
    assert r["original"]["Subject"] == "Lunch on Friday?"
    assert r["original"]["Message-ID"] == "<lunch.42@example.org>"
    assert "are you free" not in dsns["failed"].decode()
    msg = report["message"]
    assert msg["In-Reply-To"] == "<lunch.42@example.org>"
    assert msg["References"] == "<lunch.42@example.org>"


def test_delayed(dsns):
    report = parse_report(dsns["delayed"])
    assert report["subject"] == SUBJECTS["delayed"]
    [r] = report["recipients"]
    assert r["action"] == "delayed"
    assert r["status"] == "4.4.1"
    assert r["final_recipient"] == "carol@slow.example"
    assert r["diagnostic"] is None
    assert r["will_retry_until"] == "Sat, 07 Mar 2026 09:00:00 +0000"
    human = flat(r["human"])
    assert ("will keep trying until Sat, 07 Mar 2026 09:00:00 +0000 "
            "(for another 4 days and 23 hours)") in human
    assert "You do not need to send it again" in human
    assert "No mail server for slow.example answered" in human
    assert r["original_type"] == "text/rfc822-headers"


def test_mixed_is_one_report_named_after_the_worst(dsns):
    report = parse_report(dsns["mixed"])
    assert report["subject"] == SUBJECTS["failed"]
    rs = report["recipients"]
    assert [(r["final_recipient"], r["action"], r["status"]) for r in rs] == [
        ("bob@remote.example", "failed", "5.1.1"),
        ("carol@slow.example", "delayed", "4.4.1"),
        ("dave@example.net", "delivered", "2.0.0"),
    ]
    assert rs[2]["diagnostic"] == "250 2.0.0 Ok: queued as 7D1E"
    assert rs[1]["will_retry_until"] and not rs[0]["will_retry_until"]
    human = rs[0]["human"]
    assert (human.index("<bob@remote.example>") < human.index("<carol@slow.example>")
            < human.index("<dave@example.net>"))


def test_ret_full_returns_the_message(dsns):
    report = parse_report(dsns["full"])
    assert report["original_type"] == "message/rfc822"
    orig = report["original"]
    assert orig["Subject"] == "Lunch on Friday?"
    assert "are you free for lunch on Friday?" in orig.get_content()
    assert "Your message is attached" in flat(report["human"])


def test_ret_full_over_max_full_returns_headers(dsns):
    report = parse_report(dsns["big"])
    assert report["original_type"] == "text/rfc822-headers"
    human = flat(report["human"])
    assert "larger than 64 octets, so only its headers are attached" in human
    assert "Those headers were cut at 64 octets." in human
    assert "Lunch on Friday" not in dsns["big"].decode()


def test_success_report(dsns):
    report = parse_report(dsns["success"])
    assert report["subject"] == SUBJECTS["success"]
    [r] = report["recipients"]
    assert r["action"] == "relayed"
    assert r["status"] == "2.0.0"
    assert r["original_recipient"] == "rfc822; Dave+sales@example.net"  # xtext decoded
    assert "No further report will come" in flat(r["human"])


def test_smtputf8_uses_global_types(dsns):
    raw = dsns["utf8"]
    report = parse_report(raw)
    assert report["report_type"] == "global-delivery-status"
    assert report["status_type"] == "message/global-delivery-status"
    [r] = report["recipients"]
    assert r["final_recipient_type"] == "utf-8"
    assert r["final_recipient"] == "\u7528\u6237@remote.example"
    assert r["original_recipient"] == "utf-8; \u7528\u6237@remote.example"  # \x{} decoded
    assert r["diagnostic"] == "550 5.1.1 \u7528\u6237: no such user"
    assert r["action"] == "failed" and r["status"] == "5.1.1"
    assert r["original_type"] == "message/global"
    assert "Sch\u00f6ne Gr\u00fc\u00dfe" in r["original"].get_payload(decode=True).decode()
    msg = report["message"]
    assert msg["Content-Transfer-Encoding"] == "8bit"
    assert msg.get_payload()[0].get_content_charset() == "utf-8"
    assert "<\u7528\u6237@remote.example>: delivery failed" in r["human"]


def test_null_mx_reason(dsns):
    [r] = parse_dsn(dsns["nullmx"])
    assert r["status"] == "5.1.10"
    assert r["diagnostic"] is None and r["remote_mta"] is None
    human = flat(r["human"])
    assert "Domain nullmx.example has no mail server (null MX, RFC 7505)" in human
    assert "accepts no mail at all" in human


def test_message_without_empty_line_is_all_headers(dsns):
    [r] = parse_dsn(dsns["noblank"])
    assert r["original_type"] == "text/rfc822-headers"
    assert r["original"]["Subject"] == "headers only, no body"
    assert r["original"]["To"] == "bob@remote.example"


def test_unknown_scenario():
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} not built")
    p = subprocess.run([str(SAMPLE), "nope"], capture_output=True, timeout=30)
    assert p.returncode == 2


def test_checker_rejects_what_is_not_a_dsn(dsns):
    raw = dsns["failed"]
    with pytest.raises(DSNError):
        parse_dsn(raw.replace(b"multipart/report", b"multipart/mixed"))
    with pytest.raises(DSNError):
        parse_dsn(raw.replace(b"Auto-Submitted: auto-replied\r\n", b""))
    with pytest.raises(DSNError):
        parse_dsn(raw.replace(b"Action: failed", b"Action: bounced"))
    with pytest.raises(DSNError):
        parse_dsn(raw.replace(b"Status: 5.1.1", b"Status: 5.1"))
    with pytest.raises(DSNError):
        parse_dsn(raw.replace(b"Content-Type: message/delivery-status",
                              b"Content-Type: text/plain"))
    with pytest.raises(DSNError):
        check_lines(raw.replace(b"\r\n", b"\n"))
