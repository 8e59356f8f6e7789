"""The DMARC evaluator (src/mailauth/dmarc.c) against tern's own cases in
tests/data/dmarc/cases.yml (RFC 7489 6.3, 6.6.1-6.6.4 and 3.1; the format
is described at the top of that file). One test id per case.

The YAML is read here and handed, zone and checks, to the C driver
build/test/dmarc_tool (tests/unit/dmarc_tool.c) in one run; the driver
answers DNS from the zone, runs each check with the answers given at once,
given later, and cancelled part way, and says if those disagree. Its path
can be set with DMARC_TOOL. The driver also makes the aggregate-report line
of every check, which must be one line of JSON agreeing with the result.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "data" / "dmarc" / "cases.yml"
DRIVER = Path(os.environ.get("DMARC_TOOL", ROOT / "build/test/dmarc_tool"))

FLAGS = ("have_record", "spf_aligned", "dkim_aligned", "sampled_out")


def hx(v):
    b = v if isinstance(v, bytes) else str(v).encode("utf-8")
    return b.hex() if b else "-"


def txt_value(v):
    if isinstance(v, list):
        return "".join(str(x) for x in v)
    return str(v)


def zone_lines(zonedata):
    lines = []
    for name, entries in (zonedata or {}).items():
        for m in entries or []:
            if m == "TIMEOUT":
                lines.append(f"rr {hx(name)} TIMEOUT -")
                continue
            for t, v in m.items():
                if t == "TXT":
                    lines.append(f"rr {hx(name)} TXT {hx(txt_value(v))}")
                elif t in ("A", "MX"):
                    lines.append(f"rr {hx(name)} {t} {hx(str(v))}")
                else:
                    raise ValueError(f"unknown record type {t}")
    return lines


def load():
    cases, docs = [], []
    with open(CASES, "rb") as f:
        for si, doc in enumerate(yaml.safe_load_all(f)):
            if not doc:
                continue
            docs.append((si, doc))
            for tid, t in doc["tests"].items():
                cases.append((si, tid, t))
    return cases, docs


ALL_CASES, DOCS = load()


def check_line(key, t):
    if "header_from" in t:
        bodies = t["header_from"]
        frm = "H%d:%s" % (len(bodies), ",".join(
            b.encode("utf-8").hex() for b in bodies))
    else:
        frm = "D" + hx(t["from"])
    spf = t.get("spf") or {}
    dkim = t.get("dkim") or []
    dk = ",".join("%s/%s/%s" % (hx(d["d"]).replace("-", ""), hx(d.get("s", "")).replace("-", ""),
                                d["result"]) for d in dkim) or "-"
    return "check %s %s %s %s %s %d report" % (
        key, frm, spf.get("result", "none"), hx(spf.get("domain", "") or ""), dk,
        int(t.get("sample", 0)))


_RESULTS = {}


def results():
    if _RESULTS:
        return _RESULTS
    if not DRIVER.exists():
        pytest.skip(f"{DRIVER} not built")
    lines = []
    for si, doc in DOCS:
        lines.append("zone")
        lines += zone_lines(doc.get("zonedata"))
        for tid, t in doc["tests"].items():
            lines.append(check_line(f"{si}:{tid}", t))
    p = subprocess.run([str(DRIVER)], input=("\n".join(lines) + "\n").encode(),
                       capture_output=True, timeout=300)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    assert "runtime error:" not in err and "Sanitizer" not in err, err
    dec = (lambda h: "" if h == "-" else bytes.fromhex(h).decode("utf-8", "replace"))
    last = None
    for line in p.stdout.decode().splitlines():
        if line.startswith("report "):
            _RESULTS[last]["report"] = json.loads(line[len("report "):])
            continue
        (key, res, policy, disp, flags, dkim_index, frm, org, recd, prob,
         verdict) = line.split(" ")
        _RESULTS[key] = dict(result=res, policy=policy, disposition=disp,
                             dkim_index=int(dkim_index), from_domain=dec(frm),
                             org_domain=dec(org), record_domain=dec(recd),
                             problem=dec(prob), verdict=verdict, report=None,
                             **{f: flags[i] == "1" for i, f in enumerate(FLAGS)})
        last = key
    return _RESULTS


@pytest.mark.parametrize("si,tid,case", [pytest.param(si, tid, t, id=tid)
                                         for si, tid, t in ALL_CASES])
def test_dmarc_case(si, tid, case):
    got = results()[f"{si}:{tid}"]
    assert got["verdict"] == "ok", got
    want = case["result"]
    assert got["result"] == want, (
        f"{tid} ({case.get('spec')}): got {got['result']}, want {want}; "
        f"problem: {got['problem']!r}")
    if "problem" in case:
        assert case["problem"] in got["problem"], got
    if want == "author-error":
        return
    for f in FLAGS:
        assert got[f] == bool(case.get(f, False)), (f, got)
    if got["have_record"]:
        assert got["policy"] == case["policy"], got
    else:
        assert "policy" not in case, got
    assert got["disposition"] == case.get("disposition", "none"), got
    for f in ("record_domain", "org_domain"):
        if f in case:
            assert got[f] == case[f], (f, got)
    # the report line agrees with the result
    rep = got["report"]
    assert rep is not None
    assert rep["header_from"] == got["from_domain"]
    assert rep["dmarc"] == got["result"]
    assert rep["policy_evaluated"]["disposition"] == got["disposition"]
    assert rep["policy_evaluated"]["spf"] == ("pass" if got["spf_aligned"] else "fail")
    assert rep["policy_evaluated"]["dkim"] == ("pass" if got["dkim_aligned"] else "fail")
    assert (rep.get("reason") == "sampled_out") == got["sampled_out"]
    assert len(rep["dkim"]) == len(case.get("dkim") or [])
    if got["have_record"]:
        assert rep["policy_published"]["domain"] == got["record_domain"]
        assert rep["policy_published"]["p"] in ("none", "quarantine", "reject")
    else:
        assert rep["policy_published"] is None


def test_every_clause_covered():
    """At least one case per clause the brief names."""
    specs = {str(t.get("spec")) for _, _, t in ALL_CASES}
    for clause in ("6.3", "6.4", "6.6.1", "6.6.2", "6.6.3", "6.6.4", "3.1", "3.1.1", "3.1.2", "3.2"):
        assert clause in specs, clause
