"""The Authentication-Results fields tern writes (src/mailauth/authres.c),
read by another parser: Debian python3-authres (authentication-results-python
1.2.0, see ../shared/testdata/authres/SOURCE.md).

The strings below are copies of W1, W2, W3 and W5 in tests/unit/test_authres.c,
where the C unit test asserts that the writer produces exactly these bytes;
change both together. No build is needed.

What authres 1.2 cannot read, although RFC 8601 2.2 allows it, is left out on
purpose (W4 in the unit test): a quoted-string authserv-id, and a quoted value
(or an empty "") followed by another property in the same resinfo. It also
keeps quoted-pairs undecoded in reason, which the W3 check below expects.
"""

import pytest

authres = pytest.importorskip("authres")

W1 = ("Authentication-Results: mx.example.net;\r\n"
      "\tspf=pass smtp.mailfrom=sender@example.org;\r\n"
      "\tdkim=pass header.d=example.org header.s=sel1 header.b=\"Qgi/FoC0\"\r\n")
W2 = "Authentication-Results: mx.example.net; none\r\n"
W3 = ("Authentication-Results: mx.example.net;\r\n"
      "\tiprev=pass (mail.example.org) policy.iprev=\"2001:db8::25\";\r\n"
      "\tdkim=fail reason=\"signature \\\"b=\\\" did not verify\"\r\n"
      "\t(key \\(2048 bits\\) \\\\ rsa-sha256) header.d=example.org header.s=sel1\r\n"
      "\theader.b=\"Qgi/FoC0\";\r\n"
      "\tdmarc=fail header.from=example.org\r\n")
W5 = ("Authentication-Results: mx.example.net;\r\n"
      "\tauth=pass smtp.auth=user@example.org smtp.mailfrom=\"a b@example.org\"\r\n")


def read(field):
    h = authres.AuthenticationResultsHeader.parse(field)
    return h.authserv_id, [
        (r.method, r.result, r.reason,
         [(p.type + "." + p.name, p.value) for p in r.properties])
        for r in h.results]


CASES = {
    "W1": (W1, [
        ("spf", "pass", None, [("smtp.mailfrom", "sender@example.org")]),
        ("dkim", "pass", None, [("header.d", "example.org"), ("header.s", "sel1"),
                                ("header.b", "Qgi/FoC0")]),
    ]),
    "W2": (W2, []),
    "W3": (W3, [
        ("iprev", "pass", None, [("policy.iprev", "2001:db8::25")]),
        # authres leaves the quoted-pairs in: the reason is 'signature "b=" did not verify'
        ("dkim", "fail", 'signature \\"b=\\" did not verify',
         [("header.d", "example.org"), ("header.s", "sel1"), ("header.b", "Qgi/FoC0")]),
        ("dmarc", "fail", None, [("header.from", "example.org")]),
    ]),
    "W5": (W5, [
        ("auth", "pass", None, [("smtp.auth", "user@example.org"),
                                ("smtp.mailfrom", "a b@example.org")]),
    ]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_authres_reads_what_tern_writes(name):
    field, want = CASES[name]
    assert read(field) == ("mx.example.net", want)
    # every line under 998 octets, folded lines start with HTAB (RFC 5322 2.1.1, 2.2.3)
    lines = field.split("\r\n")
    assert lines[-1] == ""
    assert all(len(x) < 998 for x in lines)
    assert all(x.startswith("\t") for x in lines[1:-1])
