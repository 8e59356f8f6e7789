"""DESIGN.md invariant 1, seen from the system calls: the 250 after DATA is
written only after the queue file and the queue directory were fsynced.
(kill -9 alone cannot show this: the page cache survives a killed process.)"""

import re
import shutil
import signal
import subprocess
import time

import pytest

import tern_harness as th
from tern_harness import SMTPClient

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")

CALL = re.compile(r"^(\d+)\s+(.*)$")


def completions(lines):
    """[(pid, syscall, path, text)] in the order the calls returned."""
    pending, out = {}, []
    for ln in lines:
        m = CALL.match(ln)
        if not m:
            continue
        pid, rest = m.group(1), m.group(2)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest
            continue
        if rest.startswith("<..."):
            rest = pending.pop(pid, rest) + rest
        name = rest.split("(", 1)[0]
        path = re.search(r"\(\d+<([^>]*)>", rest)
        out.append((pid, name, path.group(1) if path else "", rest))
    return out


def test_250_only_after_file_and_directory_fsync(ternd_factory):
    t = ternd_factory.start(workers=1)
    worker = int(re.search(r"proc=worker/0 event=worker-start pid=(\d+)", t.log()).group(1))
    trace = t.base / "strace.out"
    st = subprocess.Popen(["strace", "-f", "-y", "-qq", "-s", "256", "-e", "trace=fsync,write,writev",
                           "-o", str(trace), "-p", str(worker)])
    try:
        time.sleep(1.0)  # attached to every thread
        with SMTPClient(t.port) as c:
            c.ehlo()
            qid = c.send_message("s@client.example", ["alice@localhost"], th.message("fsync order"))
            c.cmd("QUIT")
        time.sleep(0.5)
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(timeout=10)
    calls = completions(trace.read_text().splitlines())
    reply = next(i for i, c in enumerate(calls)
                 if c[1] in ("write", "writev") and f"queued as {qid}" in c[3])
    file_sync = [i for i, c in enumerate(calls) if c[1] == "fsync" and c[2].endswith(f"/queue/{qid}")]
    dir_sync = [i for i, c in enumerate(calls) if c[1] == "fsync" and c[2].endswith("/spool/queue")]
    assert file_sync and file_sync[0] < reply, f"queue file not fsynced before the 250: {calls}"
    assert dir_sync and dir_sync[0] < reply, f"queue directory not fsynced before the 250: {calls}"
