"""src/dns against an independent DNS server.

The C layer (c-ares on a libuv loop, and tern's own wire parsers) is driven
through the probe mode of build/test/unit/test_dns (TERN_DNS_PROBE: lookups
started at once on one struct dns, one JSON line each), and answered by
fake_dns.FakeDNS, which builds its packets with dnslib: name compression,
SOA records in negative answers and OPT records are dnslib's, not ours.

TERN_DNS_PROBE_BIN overrides the probe's path.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tern_harness as th  # noqa: E402
from fake_dns import FakeDNS  # noqa: E402

PROBE = Path(os.environ.get("TERN_DNS_PROBE_BIN",
                            Path(th.TERND).parent / "unit" / "test_dns"))


def lookups(dns, *specs, timeout_ms=1000, tries=2, servers=None, wall=30):
    """Run the probe on "kind:name" specs; returns one dict per spec."""
    if not PROBE.exists():
        pytest.fail(f"the probe {PROBE} is not built (make build/test/unit/test_dns)")
    env = dict(os.environ, TERN_DNS_PROBE=" ".join(specs),
               TERN_DNS_SERVERS=servers if servers is not None else dns.addr,
               TERN_DNS_TIMEOUT_MS=str(timeout_ms), TERN_DNS_TRIES=str(tries))
    p = subprocess.run([str(PROBE)], env=env, capture_output=True, timeout=wall,
                       stdin=subprocess.DEVNULL)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, f"probe exit {p.returncode}: {err}"
    assert "runtime error" not in err and "Sanitizer" not in err, err
    out = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert len(out) == len(specs)
    return out


@pytest.fixture
def dns():
    with FakeDNS() as d:
        yield d


def test_mx_sorted_and_cname(dns):
    dns.add("example.test", "MX", (20, "MX2.example.test"))
    dns.add("example.test", "MX", (10, "mx1.example.test"))
    dns.add("alias.test", "CNAME", "real.test")
    dns.add("real.test", "MX", (5, "mx.real.test"))
    dns.add("mxcname.test", "MX", (10, "host-alias.test"))
    dns.add("host-alias.test", "CNAME", "host.test")
    a, b, c = lookups(dns, "mx:example.test", "mx:alias.test.", "mx:mxcname.test")
    assert a["status"] == "ok" and a["mx"] == [[10, "mx1.example.test"], [20, "mx2.example.test"]]
    assert b["status"] == "ok" and b["mx"] == [[5, "mx.real.test"]]
    # an MX target that is a CNAME is kept: resolving it is dns_addr's job
    assert c["status"] == "ok" and c["mx"] == [[10, "host-alias.test"]]


def test_null_mx(dns):
    dns.null_mx("nomail.test")
    dns.add("mixed.test", "MX", (0, "."))
    dns.add("mixed.test", "MX", (10, "mx.mixed.test"))
    a, b = lookups(dns, "mx:nomail.test", "mx:mixed.test")
    assert a["status"] == "ok" and a["null_mx"] is True and a["n"] == 0
    # RFC 7505 3: a "." beside other MX is no null MX; "." is no host
    assert b["status"] == "ok" and b["null_mx"] is False
    assert b["mx"] == [[10, "mx.mixed.test"]]


def test_negative_answers(dns):
    dns.add("exists.test", "A", "192.0.2.1")
    dns.add("a.b.parent.test", "A", "192.0.2.2")     # parent.test: empty non-terminal
    res = lookups(dns, "mx:exists.test", "txt:exists.test", "mx:nowhere.test",
                  "a:nowhere.test", "mx:parent.test", "addr:exists.test")
    assert [r["status"] for r in res] == ["nodata", "nodata", "nxdomain", "nxdomain",
                                          "nodata", "ok"]
    assert res[5]["addr"] == ["192.0.2.1"]


def test_rcodes_are_tempfail_at_once(dns):
    dns.set_rcode("broken.test", "SERVFAIL")
    dns.set_rcode("closed.test", "REFUSED")
    t0 = time.monotonic()
    a, b = lookups(dns, "mx:broken.test", "txt:closed.test", timeout_ms=2000, tries=3)
    assert time.monotonic() - t0 < 1.9
    assert a["status"] == "tempfail" and "SERVFAIL" in a["error"]
    assert b["status"] == "tempfail" and "REFUSED" in b["error"]
    assert dns.asked("broken.test") == 1     # no resend of a SERVFAIL
    assert dns.asked("closed.test") == 1


def test_timeout_per_try(dns):
    dns.set_drop("slow.test")
    (r,) = lookups(dns, "mx:slow.test", timeout_ms=300, tries=3)
    assert r["status"] == "tempfail" and "3 tries of 300 ms" in r["error"]
    assert 850 <= r["ms"] < 1800     # not c-ares's doubling: 300 + 600 + 1200
    assert dns.asked("slow.test") == 3


def test_late_answer_within_timeout(dns):
    dns.add("late.test", "A", "192.0.2.7")
    dns.set_delay("late.test", 0.3)
    (r,) = lookups(dns, "a:late.test", timeout_ms=1000, tries=1)
    assert r["status"] == "ok" and r["addr"] == ["192.0.2.7"] and r["ms"] >= 250


def test_addr_merge(dns):
    dns.add("dual.test", "A", "192.0.2.10")
    dns.add("dual.test", "AAAA", "2001:db8::10")
    dns.add("v4.test", "A", "192.0.2.11")
    dns.add("half.test", "A", "192.0.2.12")
    dns.set_rcode("half.test", "SERVFAIL", qtype="AAAA")
    dns.set_rcode("bad6.test", "SERVFAIL", qtype="AAAA")
    dns.add("bad6.test", "MX", (1, "x.test"))       # the name exists, no A
    a, b, c, d, e = lookups(dns, "addr:dual.test", "addr:v4.test", "addr:half.test",
                            "addr:bad6.test", "aaaa:dual.test")
    assert a["status"] == "ok" and a["addr"] == ["2001:db8::10", "192.0.2.10"]
    assert b["status"] == "ok" and b["addr"] == ["192.0.2.11"]
    assert c["status"] == "ok" and c["addr"] == ["192.0.2.12"]
    assert d["status"] == "tempfail" and "SERVFAIL" in d["error"]
    assert e["addr"] == ["2001:db8::10"]


def test_txt_strings_and_tcp(dns):
    dns.add("example.test", "TXT", ["v=spf1 ", "include:_spf.example.test", " -all"])
    dns.add("example.test", "TXT", "other")
    key = "v=DKIM1; k=rsa; p=" + "A" * 3000         # > 1232: only over TCP
    dns.add("sel._domainkey.example.test", "TXT", key)
    dns.add("trunc.test", "TXT", "small")
    dns.set_truncate("trunc.test")
    a, b, c = lookups(dns, "txt:example.test", "txt:sel._domainkey.example.test",
                      "txt:trunc.test")
    assert a["status"] == "ok"
    assert sorted(a["txt"]) == ["other", "v=spf1 include:_spf.example.test -all"]
    assert b["status"] == "ok" and b["txt"] == [key]
    assert c["status"] == "ok" and c["txt"] == ["small"]
    protos = {(n, p) for n, _, p, _ in dns.query_log}
    assert ("sel._domainkey.example.test", "tcp") in protos
    assert ("trunc.test", "tcp") in protos


def test_bad_names_are_not_asked(dns):
    res = lookups(dns, "mx:[192.0.2.1]", "mx:192.0.2.1", "addr:2001:db8::1",
                  "mx:under_score.test", "txt:_dmarc.ok.test")
    assert [r["status"] for r in res] == ["badname"] * 4 + ["nxdomain"]
    assert dns.queries == [("_dmarc.ok.test", "TXT")]


def test_many_at_once(dns):
    for i in range(150):
        dns.add(f"h{i}.test", "A", f"192.0.2.{i}")
    res = lookups(dns, *[f"a:h{i}.test" for i in range(150)], timeout_ms=2000)
    assert [r["addr"] for r in res] == [[f"192.0.2.{i}"] for i in range(150)]


def test_second_server_after_dead_first(dns):
    dns.add("example.test", "MX", (10, "mx.example.test"))
    dead = f"127.0.0.1:{th.free_port()}"     # nothing listens: ICMP port unreachable
    (r,) = lookups(dns, "mx:example.test", servers=f"{dead},{dns.addr}")
    assert r["status"] == "ok" and r["mx"] == [[10, "mx.example.test"]]
