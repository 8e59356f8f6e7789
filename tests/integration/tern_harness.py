"""Helpers for tern's integration tests: start/stop ternd, a raw SMTP client,
Maildir and spool readers.

Everything here is bounded in time: sockets carry timeouts, polls have
deadlines, and a ternd that does not stop on SIGTERM is killed with SIGKILL
(the parent and every descendant found under /proc).
"""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

TERND = os.environ.get("TERND", "/work/main/build/test/ternd")
TERN = os.environ.get("TERN", "/work/main/build/test/tern")

HOSTNAME = "mx.test.example"

SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
)

ENH_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


# ----------------------------------------------------------------------------
# small utilities

def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def make_base(prefix="tern-it-"):
    """A temp directory that the unprivileged ternd user can traverse."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return Path(d)


def wait_until(pred, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ----------------------------------------------------------------------------
# processes

def _proc_ppid_state(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None, None
    # pid (comm) state ppid ...; comm may contain spaces and parens
    rest = data[data.rfind(b")") + 2:].split()
    return int(rest[1]), rest[0].decode()


def alive(pid):
    """True if pid exists and is not a zombie."""
    ppid, state = _proc_ppid_state(pid)
    return state is not None and state not in ("Z", "X")


def descendants(pid):
    """Every descendant of pid (children, grandchildren...), from /proc."""
    found = []
    # /proc/<pid>/task/*/children first (not every kernel has it) ...
    frontier = [pid]
    seen = set()
    children_files_ok = os.path.exists(f"/proc/{pid}/task/{pid}/children")
    if children_files_ok:
        while frontier:
            p = frontier.pop()
            try:
                tasks = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for t in tasks:
                try:
                    with open(f"/proc/{p}/task/{t}/children") as f:
                        kids = [int(x) for x in f.read().split()]
                except OSError:
                    kids = []
                for k in kids:
                    if k not in seen:
                        seen.add(k)
                        found.append(k)
                        frontier.append(k)
        return found
    # ... else scan every process's parent
    parent_of = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid, _ = _proc_ppid_state(int(name))
            if ppid is not None:
                parent_of[int(name)] = ppid
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, ppid in parent_of.items():
            if ppid == p and child not in seen:
                seen.add(child)
                found.append(child)
                frontier.append(child)
    return found


class Ternd:
    """One ternd process tree started from a config dict.

    config: ordered dict keyword -> value; a list value gives one line per
    item (e.g. "listen"); None leaves the keyword out.
    """

    def __init__(self, base, config, extra_args=(), name="ternd", env=None):
        self.base = Path(base)
        self.config = dict(config)
        self.extra_args = list(extra_args)
        self.name = name
        self.conf_path = self.base / f"{name}.conf"
        self.log_path = self.base / f"{name}.stderr"
        self.out_path = self.base / f"{name}.stdout"
        self.proc = None
        self.env = env
        self.leftover = []      # pids still alive after SIGTERM + 5 s
        self.stop_seconds = None
        self.known_pids = set()

    # -- config
    @property
    def data_dir(self):
        return Path(self.config["data_dir"])

    @property
    def hostname(self):
        return self.config.get("hostname", HOSTNAME)

    def listeners(self):
        """[(port, role)] in config order."""
        out = []
        ls = self.config.get("listen") or []
        if isinstance(ls, str):
            ls = [ls]
        for line in ls:
            parts = line.split()
            port = parts[0].rsplit(":", 1)[-1]     # "ADDR:PORT" or just "PORT"
            out.append((int(port), parts[1] if len(parts) > 1 else "mx"))
        return out

    @property
    def port(self):
        return self.listeners()[0][0]

    def port_for(self, role):
        for p, r in self.listeners():
            if r == role:
                return p
        raise KeyError(role)

    def render_config(self):
        lines = ["# written by tests/integration/tern_harness.py"]
        for k, v in self.config.items():
            if v is None:
                continue
            if isinstance(v, (list, tuple)):
                for item in v:
                    lines.append(f"{k} {item}")
            else:
                lines.append(f"{k} {v}")
        return "\n".join(lines) + "\n"

    def write_config(self):
        self.conf_path.write_text(self.render_config())
        os.chmod(self.conf_path, 0o644)

    # -- lifecycle
    def start(self, wait=True, timeout=10.0):
        assert os.path.exists(TERND), f"ternd binary not found at {TERND}"
        self.write_config()
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        if self.env:
            env.update(self.env)
        self._err = open(self.log_path, "ab")
        self._out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(
            [TERND, "-f", str(self.conf_path)] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
            env=env, start_new_session=True)
        self.stop_seconds = None
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ternd exited with {self.proc.returncode} before it was "
                    f"ready; stderr:\n{self.log()[-4000:]}")
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            except OSError as e:
                last = e
                time.sleep(0.05)
                continue
            try:
                s.settimeout(max(0.5, deadline - time.monotonic()))
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                        s.recv(4096)
                    except OSError:
                        pass
                    self.snapshot_pids()
                    return
                last = data
            except OSError as e:
                last = e
            finally:
                s.close()
            time.sleep(0.05)
        raise RuntimeError(f"ternd not ready after {timeout}s (last: {last!r}); "
                           f"stderr:\n{self.log()[-4000:]}")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def snapshot_pids(self):
        if self.running():
            self.known_pids.update(descendants(self.proc.pid))
        return set(self.known_pids)

    def all_pids(self):
        pids = set(self.known_pids)
        if self.running():
            pids.update(descendants(self.proc.pid))
            pids.add(self.proc.pid)
        return {p for p in pids if alive(p)}

    def stop(self, timeout=5.0):
        """SIGTERM the parent; wait; SIGKILL whatever is left after timeout.
        Returns the list of pids that had to be SIGKILLed."""
        if self.proc is None:
            return []
        pids = self.all_pids()
        t0 = time.monotonic()
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # children must be gone too
        wait_until(lambda: not any(alive(p) for p in pids),
                   timeout=max(0.0, timeout - (time.monotonic() - t0)))
        self.stop_seconds = time.monotonic() - t0
        left = [p for p in pids if alive(p)]
        if self.proc.poll() is None and self.proc.pid not in left:
            left.append(self.proc.pid)
        self.leftover = left
        if left:
            self._kill_all(left)
        self._close_files()
        return left

    def kill9(self):
        """SIGKILL the whole tree at once (crash simulation)."""
        if self.proc is None:
            return
        pids = self.all_pids()
        pids.add(self.proc.pid)
        self._kill_all(pids)
        self._close_files()

    def _kill_all(self, pids):
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        wait_until(lambda: not any(alive(p) for p in pids), timeout=5)

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f and not f.closed:
                f.close()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def sanitizer_errors(self):
        text = self.log()
        hits = [p for p in SANITIZER_PATTERNS if p in text]
        return hits, text


def default_config(base, port_or_ports, **overrides):
    """A config dict with sensible test defaults; overrides replace keys
    (use None to drop a key)."""
    if isinstance(port_or_ports, int):
        listen = [f"127.0.0.1:{port_or_ports} mx"]
    else:
        listen = list(port_or_ports)
    data = Path(base) / "data"
    cfg = {
        "hostname": HOSTNAME,
        "domains": "localhost example.test",
        "data_dir": str(data),
        "workers": 2,
        "listen": listen,
        "queue_retry": "2s",
    }
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


# ----------------------------------------------------------------------------
# SMTP client

class ProtocolError(AssertionError):
    pass


class Reply:
    def __init__(self, code, texts, raw):
        self.code = code
        self.texts = texts          # text of each line after "NNN-" / "NNN "
        self.raw = raw              # raw bytes of the whole reply

    @property
    def text(self):
        return "\n".join(self.texts)

    @property
    def first(self):
        return self.texts[0] if self.texts else ""

    @property
    def enh(self):
        tok = self.first.split(" ", 1)[0]
        return tok if ENH_RE.match(tok) else None

    def line_enh(self, i):
        tok = self.texts[i].split(" ", 1)[0]
        return tok if ENH_RE.match(tok) else None

    def __repr__(self):
        return f"Reply({self.raw!r})"


class Closed(ProtocolError):
    pass


class SMTPClient:
    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None,
                 banner=True):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.banner = None
        self.transcript = []
        if banner:
            self.banner = self.reply()

    # -- context manager
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- raw I/O
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.transcript.append((">", data))
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise ProtocolError(
                f"timeout waiting for the server (buffered {self.buf!r}); "
                f"transcript tail {self.transcript[-6:]!r}")
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed(f"connection closed by server (buffered {self.buf!r})")
        self.buf += chunk

    def readline(self, timeout=None):
        while b"\n" not in self.buf:
            if len(self.buf) > 100000:
                raise ProtocolError("reply line too long")
            self._fill(timeout)
        i = self.buf.index(b"\n")
        line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        if not line.endswith(b"\r\n"):
            raise ProtocolError(f"reply line not ended by CR LF: {line!r}")
        return line

    def reply(self, timeout=None):
        texts = []
        raw = b""
        code = None
        while True:
            line = self.readline(timeout)
            raw += line
            s = line[:-2].decode("utf-8", errors="replace")
            m = re.match(r"^(\d{3})([ -]?)(.*)$", s)
            if not m or (m.group(2) == "" and m.group(3) != ""):
                raise ProtocolError(f"malformed reply line {line!r}")
            c = int(m.group(1))
            if code is None:
                code = c
            elif c != code:
                raise ProtocolError(f"reply code changed in a multi-line reply: {raw!r}")
            texts.append(m.group(3))
            if m.group(2) != "-":
                break
        r = Reply(code, texts, raw)
        self.transcript.append(("<", raw))
        return r

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def expect(self, line, code, enh=None, timeout=None):
        r = self.cmd(line, timeout) if line is not None else self.reply(timeout)
        check(r, code, enh, what=line)
        return r

    def ehlo(self, name="client.example"):
        return self.expect(f"EHLO {name}", 250)

    def at_eof(self, timeout=5.0):
        """True if the server closes the connection within timeout (any
        further data read first is returned in self.buf)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._fill(timeout=max(0.05, deadline - time.monotonic()))
            except Closed:
                return True
            except ProtocolError:
                return False
            except OSError:
                return True
        return False

    def nothing_pending(self, wait=0.3):
        """True if the server sent nothing more within `wait` seconds."""
        if self.buf:
            return False
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return True
        try:
            self.sock.settimeout(0.5)
            data = self.sock.recv(65536)
        except OSError:
            return True
        self.buf += data
        return not data

    # -- transactions
    def mail_rcpt_data(self, mail_from, rcpts, params=""):
        self.expect(f"MAIL FROM:<{mail_from}>{params}", 250, "2.1.0")
        for r in rcpts:
            self.expect(f"RCPT TO:<{r}>", 250, "2.1.5")
        self.expect("DATA", 354)

    def send_data(self, content, stuff=True):
        """Send content (CR LF lines) dot-stuffed plus the terminator;
        returns the reply."""
        payload = dot_stuff(content) if stuff else content
        self.send(payload + b".\r\n")
        return self.reply()

    def send_message(self, mail_from, rcpts, content, params=""):
        self.mail_rcpt_data(mail_from, rcpts, params)
        r = self.send_data(content)
        check(r, 250, "2.0.0", what="end of DATA")
        return queue_id(r)


def check(r, code, enh=None, what=None):
    assert r.code == code, f"{what!r}: expected {code} {enh or ''}, got {r.raw!r}"
    if enh is not None:
        assert r.enh == enh, f"{what!r}: expected {code} {enh}, got {r.raw!r}"
    return r


def queue_id(reply):
    m = re.search(r"queued as ([A-Za-z0-9]+)\b", reply.text)
    assert m, f"no queue id in {reply.raw!r}"
    return m.group(1)


def dot_stuff(content):
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    lines = content.split(b"\r\n")
    out = []
    for ln in lines:
        out.append(b"." + ln if ln.startswith(b".") else ln)
    return b"\r\n".join(out)


def to_crlf(b):
    b = b.replace(b"\r\n", b"\n")
    return b.replace(b"\n", b"\r\n")


def message(subject, body="hello\r\n", extra_headers="", msgid=None,
            sender="sender@client.example", to="alice@localhost"):
    mid = msgid or f"<{subject.replace(' ', '-')}.{time.time_ns()}@client.example>"
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: {mid}\r\n{extra_headers}\r\n{body}").encode()


# ----------------------------------------------------------------------------
# Maildir and spool

def maildir_new(data_dir, domain, user):
    d = Path(data_dir) / "mail" / domain / user / "new"
    try:
        return sorted(p for p in d.iterdir() if p.is_file())
    except OSError:
        return []


def read_mail(data_dir, domain, user):
    return [p.read_bytes() for p in maildir_new(data_dir, domain, user)]


def wait_mail(data_dir, domain, user, count=1, timeout=10.0):
    """Poll until the Maildir holds at least count messages; return them."""
    wait_until(lambda: len(maildir_new(data_dir, domain, user)) >= count,
               timeout=timeout)
    return read_mail(data_dir, domain, user)


def all_mail_files(data_dir):
    root = Path(data_dir) / "mail"
    out = []
    if root.exists():
        for p in root.rglob("*"):
            if p.is_file() and p.parent.name in ("new", "cur"):
                out.append(p)
    return sorted(out)


def queue_files(data_dir):
    root = Path(data_dir) / "spool" / "queue"
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file())


def wait_queue_empty(data_dir, timeout=10.0):
    return wait_until(lambda: not queue_files(data_dir), timeout=timeout)


def split_delivered(content, body):
    """(prefix, headers added by the server) if content ends with body."""
    assert content.endswith(body), (
        f"delivered content does not end with the message as sent:\n"
        f"delivered tail {content[-300:]!r}\nsent tail {body[-300:]!r}")
    return content[:len(content) - len(body)]


def check_delivered(content, sender, body, qid=None, hostname=HOSTNAME,
                    proto="ESMTP"):
    """Return-Path, one Received header field, then exactly the body."""
    prefix = f"Return-Path: <{sender}>\r\nReceived: ".encode()
    assert content.startswith(prefix), f"bad start of delivered file: {content[:200]!r}"
    added = split_delivered(content, body)
    assert added.startswith(prefix)
    received = added[len(b"Return-Path: <") + len(sender.encode()) + 3:]
    assert received.startswith(b"Received: ") and received.endswith(b"\r\n"), received
    # one header field: later physical lines are folded continuations
    phys = received[:-2].split(b"\r\n")
    for ln in phys[1:]:
        assert ln[:1] in (b" ", b"\t"), f"Received is not one header field: {received!r}"
    assert b"\n" not in received.replace(b"\r\n", b""), received
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", received)
    assert f"by {hostname}".encode() in unfolded, unfolded
    assert re.search(rb"\bwith\s+" + proto.encode() + rb"\b", unfolded), unfolded
    if qid:
        assert re.search(rb"\bid\s+<?" + re.escape(qid.encode()) + rb">?", unfolded), \
            (qid, unfolded)
    return unfolded


# ----------------------------------------------------------------------------
# a capturing SMTP sink (to learn what a client puts on the wire)

class CaptureSink:
    """A one-connection SMTP server in a thread that records the raw DATA
    text (dot-stuffed, terminator included) and advertises 8BITMIME."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.lsock.settimeout(15)
        self.port = self.lsock.getsockname()[1]
        self.data = None
        self.commands = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        c.settimeout(15)
        f = c.makefile("rb")
        c.sendall(b"220 sink ESMTP\r\n")
        data = b""
        indata = False
        try:
            while True:
                ln = f.readline()
                if not ln:
                    break
                if indata:
                    data += ln
                    if ln == b".\r\n":
                        indata = False
                        self.data = data
                        c.sendall(b"250 2.0.0 ok\r\n")
                    continue
                self.commands.append(ln)
                u = ln.upper()
                if u.startswith(b"EHLO"):
                    c.sendall(b"250-sink\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
                elif u.startswith(b"DATA"):
                    indata = True
                    c.sendall(b"354 go\r\n")
                elif u.startswith(b"QUIT"):
                    c.sendall(b"221 bye\r\n")
                    break
                else:
                    c.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            c.close()
            self.lsock.close()

    def join(self):
        self.t.join(timeout=20)


def unstuff(data_text):
    """Reference un-stuffing of well-formed DATA text ending in CRLF.CRLF."""
    assert data_text.endswith(b"\r\n.\r\n") or data_text == b".\r\n"
    body = data_text[:-3]
    lines = body.split(b"\r\n")
    return b"\r\n".join(ln[1:] if ln.startswith(b".") else ln for ln in lines)


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------
# TLS helpers (tests/integration/test_tls.py)

import ssl  # noqa: E402

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
SWAKS = shutil.which("swaks") or "/usr/bin/swaks"
FPR_RE = re.compile(r"sha256:((?:[0-9A-F]{2}:){31}[0-9A-F]{2})(?![0-9A-Fa-f:])")


def tls_context_noverify(minimum=None, maximum=None):
    """A client context that accepts any certificate (tests of the SMTP
    layer, not of the certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def tls_wrap(client, context=None, server_hostname=HOSTNAME):
    """Start TLS on an SMTPClient whose plaintext buffer is empty (after a
    220 to STARTTLS, or right after connecting to an implicit-TLS port)."""
    assert client.buf == b"", f"plaintext bytes left before the handshake: {client.buf!r}"
    ctx = context or tls_context_noverify()
    client.sock.settimeout(client.timeout)
    client.sock = ctx.wrap_socket(client.sock, server_hostname=server_hostname)
    client.transcript.append(("=", b"TLS " + client.sock.version().encode()))
    return client.sock


def smtps_client(port, context=None, server_hostname=HOSTNAME, timeout=10.0):
    """An SMTPClient on an implicit-TLS port: handshake, then the banner."""
    c = SMTPClient(port, timeout=timeout, banner=False)
    try:
        tls_wrap(c, context, server_hostname)
        c.banner = c.reply()
    except BaseException:
        c.close()
        raise
    return c


def ehlo_keywords(reply):
    """Upper-case keywords of the extension lines of an EHLO reply."""
    return [t.split()[0].upper() for t in reply.texts[1:] if t.split()]


def openssl_run(args, input=b"", timeout=20):
    return subprocess.run([OPENSSL] + list(args), input=input, capture_output=True,
                          timeout=timeout)


def make_cert(directory, cn=HOSTNAME, days=2, name="configured"):
    """A self-signed RSA-2048 certificate for cn (CN and subjectAltName DNS);
    returns (cert_path, key_path), the key mode 0600."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / f"{name}-cert.pem", d / f"{name}-key.pem"
    p = openssl_run(["req", "-x509", "-newkey", "rsa:2048", "-nodes",
                     "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}",
                     "-days", str(days), "-keyout", str(key), "-out", str(cert)])
    assert p.returncode == 0, p.stderr
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert, key


def cert_fingerprint(pem):
    """SHA-256 fingerprint (upper-case hex pairs with colons) of a PEM
    certificate given as a path or as bytes."""
    if isinstance(pem, (bytes, bytearray)):
        p = openssl_run(["x509", "-fingerprint", "-sha256", "-noout"], input=bytes(pem))
    else:
        p = openssl_run(["x509", "-fingerprint", "-sha256", "-noout", "-in", str(pem)])
    assert p.returncode == 0, p.stderr
    m = re.search(rb"=\s*((?:[0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2})", p.stdout)
    assert m, p.stdout
    return m.group(1).decode().upper()


def log_events(text, event):
    """The log lines whose event is exactly `event`."""
    pat = re.compile(r"(?:^|\s)event=" + re.escape(event) + r"(?=\s|$)")
    return [ln for ln in text.splitlines() if pat.search(ln)]


# ----------------------------------------------------------------------------
# SMTP AUTH helpers (tests/integration/test_auth.py)

import base64  # noqa: E402
import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt as _crypt  # noqa: E402


def crypt_hash(password, method=None):
    """A crypt(3) hash of password (SHA-512 by default)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _crypt.crypt(password, _crypt.mksalt(method or _crypt.METHOD_SHA512))


def write_users(path, users, mode=0o600):
    """Write a users file of name:hash lines from {name: password}; returns
    the path. The mode is set before any content is written."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        for name, pw in users.items():
            f.write(f"{name}:{crypt_hash(pw)}\n")
    os.chmod(path, mode)
    return path


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode("ascii")


def sasl_plain(authcid, password, authzid=""):
    """base64 of a SASL PLAIN message (RFC 4616): authzid NUL authcid NUL passwd."""
    return b64(f"{authzid}\0{authcid}\0{password}")
