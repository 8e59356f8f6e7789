"""Read a delivery status notification (RFC 3464 in RFC 6522 multipart/report,
RFC 6533 for the global types) the way a test wants to assert on it.

    from dsn_check import parse_dsn, parse_report, check_lines

    for rcpt in parse_dsn(raw_bytes):        # one dict per recipient block
        rcpt["action"], rcpt["status"], rcpt["final_recipient"], ...

parse_dsn(raw) -> list of dicts, one per per-recipient block, in order:
    action            "failed" | "delayed" | "delivered" | "relayed" | "expanded"
    status            "5.1.1"
    final_recipient   the address, its type stripped ("bob@remote.example")
    final_recipient_type   "rfc822" or "utf-8"
    original_recipient     the Original-Recipient value ("rfc822; x@y") or None
    remote_mta        "mx1.remote.example" (the "dns; " stripped) or None
    diagnostic        the Diagnostic-Code text after "smtp; " or None
    diagnostic_type   "smtp" or None
    last_attempt, will_retry_until   the date strings or None
    fields            every field of the block, {name.lower(): value}
    human             the text/plain part, as text
    original          the returned message or headers as an
                      email.message.Message (headers only unless the whole
                      message came back), or None when there is no part 3
    original_type     "message/rfc822", "text/rfc822-headers",
                      "message/global", "message/global-headers"
parse_report(raw) -> dict with the report-level facts (to, from, subject,
    auto_submitted, report_type, status_type, reporting_mta, envid,
    per_message fields, human, original, original_type) and "recipients":
    the list parse_dsn returns.
check_lines(raw) raises DSNError unless every line ends in CR LF and is at
    most 998 octets (RFC 5322 2.1.1).

Parsing uses Python's email package (policy=email.policy.default). For
message/delivery-status it gives the blocks as a list of Message objects;
message/global-delivery-status it does not know, and parses as one message
whose body holds the per-recipient blocks: those are re-parsed here, and
UTF-8 that the bytes parser left as surrogates is decoded.

Anything that makes the message not a well-formed DSN raises DSNError (an
AssertionError, so pytest reports it as a failed check): not
multipart/report, report-type not (global-)delivery-status, fewer than two
parts, a second part of another type, no per-recipient block, a block
without Final-Recipient, Action or Status, an Action RFC 3464 does not
define, a Status that is not RFC 3463 "c.s.d", or no Auto-Submitted header
(RFC 3834 5).
"""

import email
import email.parser
import email.policy
import re

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
STATUS_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
ORIGINAL_TYPES = ("message/rfc822", "text/rfc822-headers",
                  "message/global", "message/global-headers")


class DSNError(AssertionError):
    pass


def _fix(s):
    """Text the bytes parser decoded as ASCII with surrogate escapes, as UTF-8."""
    if s is None:
        return None
    s = str(s)
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _typed(value):
    """"type; value" -> ("type", "value"); the value's <> stripped."""
    if value is None:
        return None, None
    value = " ".join(_fix(value).split())
    kind, sep, rest = value.partition(";")
    if not sep:
        return None, value
    rest = rest.strip()
    if rest.startswith("<") and rest.endswith(">"):
        rest = rest[1:-1]
    return kind.strip().lower(), rest


def _fields(block):
    return {k.lower(): " ".join(_fix(v).split()) for k, v in block.items()}


def _blocks(part):
    """The per-message block and the per-recipient blocks of part 2, as
    lists of {field: value} dicts."""
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status" and isinstance(payload, list):
        blocks = [_fields(b) for b in payload]
    else:
        # message/global-delivery-status: one message whose headers are the
        # per-message fields and whose body is the rest.
        if isinstance(payload, list):
            if len(payload) != 1:
                raise DSNError(f"{part.get_content_type()}: {len(payload)} sub-parts")
            first = payload[0]
            blocks = [_fields(first)]
            if first.is_multipart():
                raise DSNError("global delivery-status body is not text")
            # decode=True gives the octets back (get_payload() alone would
            # decode them as ASCII and replace the UTF-8)
            rest = (first.get_payload(decode=True) or b"").decode("utf-8", "replace")
        else:
            blocks = []
            rest = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
        rest = rest.replace("\r\n", "\n")
        hp = email.parser.HeaderParser(policy=email.policy.default)
        for chunk in re.split(r"\n[ \t]*\n", rest):
            if chunk.strip():
                blocks.append(_fields(hp.parsestr(chunk + "\n")))
    blocks = [b for b in blocks if b]
    if len(blocks) < 2:
        raise DSNError(f"delivery-status has {len(blocks)} blocks; "
                       "want per-message fields and at least one recipient")
    return blocks[0], blocks[1:]


def _original(part):
    """Part 3 as a Message (headers, and the body when the whole message
    came back)."""
    ctype = part.get_content_type()
    payload = part.get_payload()
    if isinstance(payload, list):
        if len(payload) != 1:
            raise DSNError(f"{ctype}: {len(payload)} sub-parts")
        return payload[0]
    text = part.get_payload(decode=True) or b""
    return email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(text)


def _human(part):
    try:
        return part.get_content()
    except (LookupError, ValueError):
        return _fix(part.get_payload())


def check_lines(raw):
    """Every line CR LF terminated and at most 998 octets."""
    if not raw.endswith(b"\r\n"):
        raise DSNError("the message does not end with CR LF")
    for i, line in enumerate(raw[:-2].split(b"\r\n")):
        if b"\r" in line or b"\n" in line:
            raise DSNError(f"line {i + 1}: bare CR or LF")
        if len(line) > 998:
            raise DSNError(f"line {i + 1}: {len(line)} octets, more than 998")


def parse_report(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if not msg.is_multipart() or msg.get_content_type() != "multipart/report":
        raise DSNError(f"not multipart/report but {msg.get_content_type()}")
    report_type = (msg.get_param("report-type") or "").lower()
    if report_type not in ("delivery-status", "global-delivery-status"):
        raise DSNError(f"report-type={report_type!r}")
    if msg["Auto-Submitted"] is None:
        raise DSNError("no Auto-Submitted header (RFC 3834 5)")
    parts = msg.get_payload()
    if len(parts) < 2:
        raise DSNError(f"{len(parts)} parts; a report has at least two")
    status_part = parts[1]
    if status_part.get_content_type() not in STATUS_TYPES:
        raise DSNError(f"part 2 is {status_part.get_content_type()}")
    if status_part.get_content_type().split("/")[1] != report_type:
        raise DSNError(f"report-type={report_type} but part 2 is "
                       f"{status_part.get_content_type()}")
    per_message, per_rcpt = _blocks(status_part)
    human = _human(parts[0]) if parts[0].get_content_maintype() == "text" else None
    original = original_type = None
    if len(parts) >= 3:
        original_type = parts[2].get_content_type()
        if original_type not in ORIGINAL_TYPES:
            raise DSNError(f"part 3 is {original_type}")
        original = _original(parts[2])

    recipients = []
    for i, f in enumerate(per_rcpt):
        for need in ("final-recipient", "action", "status"):
            if need not in f:
                raise DSNError(f"recipient block {i + 1} has no {need}: {f}")
        action = f["action"].lower()
        if action not in ACTIONS:
            raise DSNError(f"recipient block {i + 1}: Action {action!r}")
        status = f["status"].split()[0] if f["status"] else ""
        if not STATUS_RE.match(status):
            raise DSNError(f"recipient block {i + 1}: Status {f['status']!r}")
        ftype, faddr = _typed(f["final-recipient"])
        dtype, dtext = _typed(f.get("diagnostic-code"))
        _, mta = _typed(f.get("remote-mta"))
        recipients.append(dict(
            action=action,
            status=status,
            final_recipient=faddr,
            final_recipient_type=ftype,
            original_recipient=f.get("original-recipient"),
            remote_mta=mta,
            diagnostic=dtext,
            diagnostic_type=dtype,
            last_attempt=f.get("last-attempt-date"),
            will_retry_until=f.get("will-retry-until"),
            fields=f,
            human=human,
            original=original,
            original_type=original_type,
        ))
    _, reporting_mta = _typed(per_message.get("reporting-mta"))
    return dict(
        to=_fix(msg["To"]),
        from_=_fix(msg["From"]),
        subject=_fix(msg["Subject"]),
        auto_submitted=str(msg["Auto-Submitted"]),
        report_type=report_type,
        status_type=status_part.get_content_type(),
        reporting_mta=reporting_mta,
        envid=per_message.get("original-envelope-id"),
        per_message=per_message,
        human=human,
        original=original,
        original_type=original_type,
        parts=[p.get_content_type() for p in parts],
        message=msg,
        recipients=recipients,
    )


def parse_dsn(raw):
    return parse_report(raw)["recipients"]
