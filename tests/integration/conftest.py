"""Shared fixtures for tern's integration tests.

    ternd_factory   function scope: start(**config) -> Ternd, stopped at teardown
    module_factory  module scope, the same for servers shared by a test file

At teardown every ternd is stopped with SIGTERM (SIGKILL after 5 s) and the
test fails if ternd died on its own during the test, or if its stderr holds
a sanitizer report (ASan, LSan, UBSan "runtime error:").
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tern_harness as th  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


class TerndManager:
    def __init__(self, prefix):
        self.prefix = prefix
        self.servers = []
        self.bases = []

    def base(self):
        b = th.make_base(self.prefix)
        self.bases.append(b)
        return b

    def start(self, listeners=None, base=None, extra_args=(), wait=True,
              name="ternd", env=None, **overrides):
        """Start ternd. listeners: list of "ROLE" or "ROLE extra" strings (a
        free port on 127.0.0.1 is picked for each) or full "[ADDR:]PORT ROLE"
        lines; default
        one mx listener. Keyword overrides replace config keys (None drops)."""
        if not os.path.exists(th.TERND):
            pytest.skip(f"ternd not built yet ({th.TERND})")
        base = Path(base) if base else self.base()
        lines = []
        for spec in (listeners or ["mx"]):
            first = spec.split()[0]
            if ":" in first or first.isdigit():     # a full "[ADDR:]PORT ROLE ..." line
                lines.append(spec)
            else:
                lines.append(f"127.0.0.1:{th.free_port()} {spec}")
        cfg = th.default_config(base, lines, **overrides)
        t = th.Ternd(base, cfg, extra_args=extra_args, name=name, env=env)
        self.servers.append(t)
        t.killed = False
        t.start(wait=wait)
        return t

    def finish(self):
        try:
            self._finish()
        finally:
            for t in self.servers:
                if t.proc is not None and t.running():
                    t.kill9()
            if not os.environ.get("TERN_IT_KEEP"):
                for b in self.bases:
                    th.rmtree(b)
            self.servers = []
            self.bases = []

    def _finish(self):
        problems = []
        for t in self.servers:
            if t.proc is None:
                continue
            if t.killed:
                continue
            rc = t.proc.poll()
            if rc is not None and not getattr(t, "stopped", False):
                problems.append(f"{t.name}: ternd exited on its own with code {rc} "
                                f"during the test")
            t.stop()
            t.stopped = True
            hits, text = t.sanitizer_errors()
            if hits:
                problems.append(f"{t.name}: sanitizer report in stderr ({', '.join(hits)}):\n"
                                + _excerpt(text, hits))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


def _excerpt(text, hits):
    out = []
    for h in hits:
        i = text.find(h)
        out.append(text[max(0, i - 500): i + 3000])
    return "\n...\n".join(out)


@pytest.fixture
def ternd_factory():
    m = TerndManager("tern-it-")
    yield m
    m.finish()


@pytest.fixture(scope="module")
def module_factory():
    m = TerndManager("tern-itm-")
    yield m
    m.finish()


def stop_checked(t):
    """Stop t now and assert a clean SIGTERM shutdown without sanitizer
    reports (for tests that restart a server within one test)."""
    t.stop()
    t.stopped = True
    hits, text = t.sanitizer_errors()
    assert not hits, _excerpt(text, hits)
