"""Fake remote MXs for tern's outbound delivery tests.

FakeMX is an SMTP server built on aiosmtpd (Debian 12: 1.4.3) with scripted
behaviour, listening on a loopback address only (e.g. 127.0.0.2:25 when run
as root, or port=0 for a free high port):

    with FakeMX(host="127.0.0.2", port=25, starttls=True) as mx:
        mx.script = {"RCPT": [(450, "4.2.1 try later"), None]}
        mx.rcpt_replies = {"bad@remote.example": (550, "5.1.1 no such user")}
        ...
        msgs = mx.wait_messages(1, timeout=10)
        assert msgs[0]["rcpt_tos"] == ["good@remote.example"]

Scripts (mx.script, a dict; may be changed while running):
  keys    CONNECT (the banner), HELO, EHLO, STARTTLS, AUTH, MAIL, RCPT,
          DATA (instead of the 354), DOT (after the message), RSET, NOOP, QUIT
  value   a list: one entry consumed per use of that command, across all
          connections, in order; when the list is empty the server behaves
          normally. A bare entry (not in a list) applies every time.
  entry   None                      default behaviour
          (code, text)              this reply instead of the command's normal
                                    processing (the command has no effect,
                                    except at DOT where a 2xx accepts the
                                    message); text: str (may hold "\\n") or a
                                    list of str for a multi-line reply; a 421
                                    reply closes the connection afterwards
          "DROP"                    close the connection without replying
          ("DELAY", seconds)        wait, then default behaviour
          ("DELAY", seconds, entry) wait, then the entry
  CONNECT (220, text) sets the banner text; (554, text) answers 503 to every
  command but QUIT (RFC 5321 3.1); any 4xx banner closes the connection.

Per-recipient replies (mx.rcpt_replies): {address or "@domain": entry or
[entries]} matched case-insensitively, used when script["RCPT"] gives None.

Records:
  mx.messages     accepted messages, dicts: mail_from ("" for <>), rcpt_tos,
                  data (bytes after dot-unstuffing, CRLF as received),
                  mail_options (raw MAIL parameters, list of str),
                  rcpt_options (raw RCPT parameters, one list per recipient),
                  smtputf8, tls ({"version", "cipher"} or None), auth_user,
                  helo, esmtp (EHLO was used), peer, session, queue_id, reply
  mx.rejected     messages whose DOT reply was not 2xx (same dicts)
  mx.sessions     number of connections accepted
  mx.transcripts  one list of "C: ..." / "S: ..." lines per connection
                  (message content and AUTH continuation lines not shown)
  mx.auth_attempts  (mechanism, user, success)

SilentPort accepts TCP connections and never sends a byte (a filtered port
for timeout tests); refused_port() gives a port where nothing listens.

Notes on aiosmtpd 1.4.3 and how this module deals with them:
  - its Controller is not used: Controller.start() makes a probe connection
    (it would count as a session and eat a CONNECT script entry) and stop()
    joins its thread without a timeout; FakeMX runs aiosmtpd.smtp.SMTP in an
    event loop of its own thread and stop() is bounded;
  - it advertises 8BITMIME whenever decode_data=False, AUTH after STARTTLS
    even with no users, no PIPELINING and no DSN: the EHLO reply is rewritten
    through the handle_EHLO hook (it processes pipelined commands in order);
  - it refuses every DSN parameter (RET, ENVID, NOTIFY, ORCPT) with 555 and
    upper-cases the MAIL/RCPT parameters it keeps: with dsn=True they are
    taken out before aiosmtpd sees them; the raw parameters are recorded;
  - it takes MAIL FROM:<> as the address "<>", and an empty mail_from as "no
    MAIL yet": the null path is kept as a true "" (_NullPath);
  - it accepts non-ASCII addresses without the SMTPUTF8 parameter (refused
    here with 553 5.6.7), and BODY=8BITMIME when 8BITMIME is not advertised
    (refused here with 555);
  - a text line over 999 octets + CRLF gets "500 Line too long", a command
    line over 512 octets "500 Command line too long" (RFC 5321 limits);
  - no CHUNKING/BDAT, BINARYMIME, implicit TLS or LMTP; its own replies (250
    OK, 354, 5xx syntax errors) carry no enhanced status codes;
  - it logs a deprecation warning on each successful AUTH (filtered out).
"""

import asyncio
import atexit
import functools
import ipaddress
import itertools
import logging
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword

log = logging.getLogger("fake_mx")


class _QuietDeprecation(logging.Filter):
    """aiosmtpd 1.4.3 itself sets the deprecated Session.login_data on every
    successful AUTH and logs a warning about it: not news for our tests."""

    def filter(self, record):
        return "login_data is deprecated" not in str(record.msg)


logging.getLogger("mail.log").addFilter(_QuietDeprecation())

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

SCRIPT_KEYS = {"CONNECT", "HELO", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT",
               "DATA", "DOT", "RSET", "NOOP", "QUIT"}
DSN_MAIL_PARAMS = ("RET", "ENVID")
DSN_RCPT_PARAMS = ("NOTIFY", "ORCPT")


def _check_loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"fake servers listen on loopback only, not {host}")


# ----------------------------------------------------------------------------
# certificates

_cert_lock = threading.Lock()
_cert_cache = {}
_cert_dir = None


def _cleanup_certs():
    if _cert_dir:
        shutil.rmtree(_cert_dir, ignore_errors=True)


def self_signed_cert(hostname, directory=None):
    """A self-signed ECDSA P-256 certificate for hostname (CN and
    subjectAltName DNS), made with openssl; returns (cert_path, key_path).
    Without directory, cached per hostname in a private temporary directory
    removed at interpreter exit."""
    global _cert_dir
    with _cert_lock:
        if directory is None and hostname in _cert_cache:
            return _cert_cache[hostname]
        if directory is None:
            if _cert_dir is None:
                _cert_dir = tempfile.mkdtemp(prefix="tern-fakemx-certs-")
                atexit.register(_cleanup_certs)
            d = _cert_dir
        else:
            d = str(directory)
            os.makedirs(d, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in hostname)
        cert = os.path.join(d, f"{safe}-cert.pem")
        key = os.path.join(d, f"{safe}-key.pem")
        p = subprocess.run(
            [OPENSSL, "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", f"/CN={hostname}", "-addext", f"subjectAltName=DNS:{hostname}",
             "-days", "2", "-keyout", key, "-out", cert],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"openssl failed: {p.stderr.decode(errors='replace')}")
        os.chmod(key, 0o600)
        if directory is None:
            _cert_cache[hostname] = (cert, key)
        return cert, key


# ----------------------------------------------------------------------------
# replies

class _NullPath(str):
    """The null reverse-path: equal to "" but true, because aiosmtpd tests
    `if self.envelope.mail_from` to know whether MAIL was given."""

    def __bool__(self):
        return True


def _reply_lines(code, text):
    if isinstance(text, (list, tuple)):
        lines = [str(t) for t in text]
    else:
        lines = str(text).split("\n") if text else [""]
    last = len(lines) - 1
    return [f"{code}{' ' if i == last else '-'}{t}" if t or i != last else str(code)
            for i, t in enumerate(lines)]


def _check_entry(entry):
    if entry is None or entry == "DROP":
        return
    if isinstance(entry, tuple) and entry and entry[0] == "DELAY":
        if len(entry) not in (2, 3):
            raise ValueError(f"bad DELAY entry {entry!r}")
        if len(entry) == 3:
            _check_entry(entry[2])
        return
    if (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], int)
            and 200 <= entry[0] <= 599):
        return
    raise ValueError(f"bad script entry {entry!r}")


class _Handler:
    """aiosmtpd handler: the hooks delegate to the protocol instance."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return server._ehlo_response(responses)

    async def handle_DATA(self, server, session, envelope):
        return await server._end_of_data()


class _FakeSMTP(SMTP):
    """One connection of a FakeMX (aiosmtpd makes one instance per
    connection; after STARTTLS the same instance goes on)."""

    def __init__(self, fake, index, **kwargs):
        self._fake = fake
        self._index = index
        self._transcript = []
        super().__init__(_Handler(), **kwargs)
        # log each command in the transcript (keeping HELP's syntax info)
        for name, method in list(self._smtp_methods.items()):
            self._smtp_methods[name] = self._logged(name, method)

    def _logged(self, name, method):
        @functools.wraps(method)
        async def wrapper(arg):
            if name == "AUTH" and arg and len(arg.split()) > 1:
                shown = arg.split()[0] + " ***"
            else:
                shown = arg
            self._transcript.append(f"C: {name} {shown}" if shown else f"C: {name}")
            return await method(arg)
        # HELP reads the @syntax marks, which our overrides do not repeat
        base = getattr(SMTP, "smtp_" + name, None)
        for attr in ("__smtp_syntax__", "__smtp_syntax_when__",
                     "__smtp_syntax_extended__"):
            if base is not None and hasattr(base, attr):
                setattr(wrapper, attr, getattr(base, attr))
        return wrapper

    def _create_envelope(self):
        env = Envelope()
        env.x_mail_options = []
        env.x_rcpt_options = []
        return env

    # -- output
    async def push(self, status):
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        self._transcript.append("S: " + text)
        await super().push(status)

    async def _reply(self, code, text):
        for line in _reply_lines(code, text):
            await self.push(line.encode("utf-8"))

    def _drop(self):
        """Close the connection at once, without a reply."""
        self._transcript.append("S: <drop>")
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        if self.transport is not None:
            self.transport.abort()

    def _close_after_421(self):
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        if self.transport is not None:
            self.transport.close()

    async def _resolve(self, entry):
        """Apply DELAYs; return None (default), "DROP" or (code, text)."""
        while isinstance(entry, tuple) and entry and entry[0] == "DELAY":
            await asyncio.sleep(float(entry[1]))
            entry = entry[2] if len(entry) == 3 else None
        return entry

    async def _scripted(self, command, entry=None, use_script=True):
        """Run the script entry for command, if any. True if it replied
        (the default processing must then be skipped)."""
        if use_script:
            entry = self._fake._next(command)
        entry = await self._resolve(entry)
        if entry is None:
            return False
        if entry == "DROP":
            self._drop()
            return True
        code, text = entry
        await self._reply(code, text)
        if code == 421:
            self._close_after_421()
        return True

    # -- connection
    async def _handle_client(self):
        entry = await self._resolve(self._fake._next("CONNECT"))
        if entry is None:
            return await super()._handle_client()
        if entry == "DROP":
            self._transcript.append("S: <drop>")
            self.transport.abort()
            return
        code, text = entry
        if code == 220:
            self.__ident__ = text if isinstance(text, str) else " ".join(text)
            return await super()._handle_client()
        await self._reply(code, text)
        if code >= 500:
            # RFC 5321 3.1: wait for QUIT, refuse everything else
            try:
                while self.transport is not None:
                    line = await self._reader.readuntil()
                    cmd = line.strip().split(b" ", 1)[0].upper()
                    self._transcript.append("C: " + line.strip().decode("utf-8", "replace"))
                    if cmd == b"QUIT":
                        await self.push("221 2.0.0 Bye")
                        break
                    await self.push("503 5.5.1 No SMTP service here")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ConnectionError):
                pass
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, error):
        try:
            super().connection_lost(error)
        finally:
            self._fake._protocols.discard(self)

    # -- commands
    async def smtp_HELO(self, hostname):
        if await self._scripted("HELO"):
            return
        await super().smtp_HELO(hostname)

    async def smtp_EHLO(self, hostname):
        if await self._scripted("EHLO"):
            return
        if not self._fake.ehlo:
            await self.push("502 5.5.1 EHLO not supported, use HELO")
            return
        await super().smtp_EHLO(hostname)

    def _ehlo_response(self, responses):
        f = self._fake
        greeting = responses[0][4:]
        keep = []
        for r in responses[1:]:
            kw = r[4:]
            word = kw.split()[0].upper() if kw.split() else ""
            if word == "8BITMIME" and not f.eightbitmime:
                continue
            if word == "AUTH" and not f.auth:
                continue
            if word == "HELP":
                continue
            keep.append(kw)
        if f.pipelining:
            keep.append("PIPELINING")
        if f.dsn:
            keep.append("DSN")
        keep.extend(f.extra_ehlo)
        keep.append("HELP")
        lines = [greeting] + keep
        return [f"250-{x}" for x in lines[:-1]] + [f"250 {lines[-1]}"]

    async def smtp_STARTTLS(self, arg):
        if await self._scripted("STARTTLS"):
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        if await self._scripted("AUTH"):
            return
        if not self._fake.auth:
            await self.push("502 5.5.1 AUTH not supported")
            return
        await super().smtp_AUTH(arg)

    def _split(self, keyword, arg):
        """(address, [raw params], text before the params) or None."""
        if not arg:
            return None
        rest = self._strip_command_keyword(keyword, arg)
        if rest is None:
            return None
        address, params = self._getaddr(rest)
        if address is None or not arg.endswith(params):
            return None
        return address, params.split(), arg[:len(arg) - len(params)].rstrip()

    async def smtp_MAIL(self, arg):
        if await self._scripted("MAIL"):
            return
        f = self._fake
        if (f.auth_required and self.session.host_name
                and not self.session.authenticated):
            await self.push("530 5.7.0 Authentication required")
            return
        parts = self._split("FROM:", arg)
        raw = []
        if parts is not None and self.session.host_name and not self.envelope.mail_from:
            address, raw, head = parts
            names = [p.split("=", 1)[0].upper() for p in raw]
            values = {p.split("=", 1)[0].upper(): p.split("=", 1)[1].upper()
                      for p in raw if "=" in p}
            if values.get("BODY") == "8BITMIME" and not f.eightbitmime:
                await self.push("555 5.5.4 BODY=8BITMIME not advertised")
                return
            if not f.dsn and any(n in DSN_MAIL_PARAMS for n in names):
                await self.push("555 5.5.4 DSN not advertised")
                return
            if (not address.isascii() and "SMTPUTF8" not in names
                    and f.smtputf8):
                await self.push("553 5.6.7 Non-ASCII address without SMTPUTF8")
                return
            # aiosmtpd refuses AUTH= (RFC 4954 5) with 555 although it
            # offers AUTH; real servers take it: recorded, then removed.
            drop = (DSN_MAIL_PARAMS if f.dsn else ()) + ("AUTH",)
            kept = [p for p, n in zip(raw, names) if n not in drop]
            arg = " ".join([head] + kept)
        await super().smtp_MAIL(arg)
        if self.envelope.mail_from == "<>":
            self.envelope.mail_from = _NullPath("")
        if self.envelope.mail_from is not None and not self.envelope.x_mail_options:
            self.envelope.x_mail_options = list(raw)

    async def smtp_RCPT(self, arg):
        if await self._scripted("RCPT"):
            return
        f = self._fake
        parts = self._split("TO:", arg)
        raw = []
        if (parts is not None and self.session.host_name
                and self.envelope.mail_from):
            address, raw, head = parts
            entry = f._rcpt_entry(address)
            if await self._scripted("RCPT", entry, use_script=False):
                return
            names = [p.split("=", 1)[0].upper() for p in raw]
            if not f.dsn and any(n in DSN_RCPT_PARAMS for n in names):
                await self.push("555 5.5.4 DSN not advertised")
                return
            if (not address.isascii() and f.smtputf8
                    and not self.envelope.smtp_utf8):
                await self.push("553 5.6.7 Non-ASCII address without SMTPUTF8")
                return
            if f.max_rcpts is not None and len(self.envelope.rcpt_tos) >= f.max_rcpts:
                await self.push("452 4.5.3 Too many recipients")
                return
            if f.dsn:
                kept = [p for p, n in zip(raw, names) if n not in DSN_RCPT_PARAMS]
                arg = " ".join([head] + kept)
        before = len(self.envelope.rcpt_tos)
        await super().smtp_RCPT(arg)
        if len(self.envelope.rcpt_tos) > before:
            self.envelope.x_rcpt_options.append(list(raw))

    async def smtp_DATA(self, arg):
        if await self._scripted("DATA"):
            return
        await super().smtp_DATA(arg)

    async def smtp_RSET(self, arg):
        if await self._scripted("RSET"):
            return
        await super().smtp_RSET(arg)

    async def smtp_NOOP(self, arg):
        if await self._scripted("NOOP"):
            return
        await super().smtp_NOOP(arg)

    async def smtp_QUIT(self, arg):
        if await self._scripted("QUIT"):
            return
        await super().smtp_QUIT(arg)

    # -- end of message
    def _tls_info(self):
        ssl_data = self.session.ssl if self.session else None
        obj = ssl_data.get("ssl_object") if ssl_data else None
        if obj is None:
            return None
        c = obj.cipher()
        return {"version": obj.version(), "cipher": c[0] if c else None}

    async def _end_of_data(self):
        f = self._fake
        env, sess = self.envelope, self.session
        self._transcript.append(f"C: <message, {len(env.original_content or b'')} octets>")
        auth = getattr(sess, "auth_data", None)
        rec = {
            "mail_from": ("" if isinstance(env.mail_from, _NullPath)
                          else None if env.mail_from is None else str(env.mail_from)),
            "rcpt_tos": list(env.rcpt_tos),
            "data": bytes(env.original_content or b""),
            "mail_options": list(env.x_mail_options),
            "rcpt_options": [list(o) for o in env.x_rcpt_options],
            "smtputf8": bool(env.smtp_utf8),
            "tls": self._tls_info(),
            "auth_user": (auth.login.decode("utf-8", "surrogateescape")
                          if isinstance(auth, LoginPassword) else None),
            "helo": sess.host_name,
            "esmtp": bool(sess.extended_smtp),
            "peer": sess.peer,
            "session": self._index,
            "queue_id": None,
            "reply": None,
        }
        entry = await self._resolve(f._next("DOT"))
        if entry == "DROP":
            rec["reply"] = None
            f.rejected.append(rec)
            self._drop()
            await asyncio.sleep(3600)       # cancelled by _drop()
        if entry is None:
            qid = f"FAKE{next(f._qids):06d}"
            rec["queue_id"] = qid
            entry = (250, f"2.0.0 Ok: queued as {qid}")
        code, text = entry
        rec["reply"] = (code, text)
        (f.messages if 200 <= code < 300 else f.rejected).append(rec)
        lines = _reply_lines(code, text)
        for line in lines[:-1]:
            await self.push(line.encode("utf-8"))
        if code == 421:
            await self.push(lines[-1].encode("utf-8"))
            self._close_after_421()
            await asyncio.sleep(3600)       # cancelled by the close
        return lines[-1]


# ----------------------------------------------------------------------------
# the server

class FakeMX:
    """A scripted SMTP server (aiosmtpd) in its own event-loop thread.

    Binding happens in start(): with port=0, .port is known after start().
    Options can be changed while running; they take effect for the next
    command or connection.
    """

    def __init__(self, host="127.0.0.2", port=25, *, hostname="mx1.remote.example",
                 starttls=False, cert=None, tls_context=None, tls_required=False,
                 auth=None, auth_plaintext=False, auth_required=False,
                 auth_mechanisms=None, ehlo=True, eightbitmime=True, smtputf8=True,
                 dsn=False, pipelining=True, size=None, max_rcpts=None,
                 extra_ehlo=(), ident="ESMTP FakeMX", timeout=30.0,
                 script=None, rcpt_replies=None):
        _check_loopback(host)
        self.host = host
        self.port = port
        # never None: aiosmtpd would ask the resolver for the machine's name
        self.hostname = hostname or "mx1.remote.example"
        self.starttls = bool(starttls or tls_context)
        self.cert = cert
        self.tls_context = tls_context
        self.tls_required = tls_required
        self.auth = dict(auth) if auth else None
        self.auth_plaintext = auth_plaintext
        self.auth_required = auth_required
        self.auth_mechanisms = auth_mechanisms
        self.ehlo = ehlo
        self.eightbitmime = eightbitmime
        self.smtputf8 = smtputf8
        self.dsn = dsn
        self.pipelining = pipelining
        self.size = size
        self.max_rcpts = max_rcpts
        self.extra_ehlo = list(extra_ehlo)
        self.ident = ident
        self.timeout = timeout
        self.script = dict(script or {})
        self.rcpt_replies = dict(rcpt_replies or {})

        self.messages = []
        self.rejected = []
        self.sessions = 0
        self.transcripts = []
        self.auth_attempts = []

        self._lock = threading.Lock()
        self._qids = itertools.count(1)
        self._protocols = set()
        self._loop = None
        self._thread = None
        self._server = None
        self._sock = None

    # -- scripting
    def _next(self, command):
        with self._lock:
            entries = self.script.get(command)
            if entries is None:
                return None
            if isinstance(entries, list):
                if not entries:
                    return None
                entry = entries.pop(0)
            else:
                entry = entries
        _check_entry(entry)
        return entry

    def _rcpt_entry(self, address):
        a = str(address).lower()
        with self._lock:
            table = {str(k).lower(): v for k, v in self.rcpt_replies.items()}
            key = a if a in table else "@" + a.rpartition("@")[2]
            if key not in table:
                return None
            v = table[key]
            if isinstance(v, list):
                orig = next(k for k in self.rcpt_replies if str(k).lower() == key)
                lst = self.rcpt_replies[orig]
                entry = lst.pop(0) if lst else None
            else:
                entry = v
        _check_entry(entry)
        return entry

    def reset(self):
        """Forget messages, sessions, transcripts and scripts."""
        with self._lock:
            self.messages.clear()
            self.rejected.clear()
            self.transcripts.clear()
            self.auth_attempts.clear()
            self.sessions = 0
            self.script = {}
            self.rcpt_replies = {}

    # -- waiting
    def wait_messages(self, count=1, timeout=10.0):
        """Wait until at least count messages were accepted; return them."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def wait_sessions(self, count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.sessions < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.sessions

    # -- TLS and AUTH
    @property
    def cert_path(self):
        return self.cert[0] if self.cert else None

    def _make_tls_context(self):
        if self.tls_context is not None:
            return self.tls_context
        if not self.starttls:
            return None
        if self.cert is None:
            self.cert = self_signed_cert(self.hostname)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        return ctx

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = False
        user = None
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "surrogateescape")
            pw = auth_data.password.decode("utf-8", "surrogateescape")
            ok = bool(self.auth) and user in self.auth and self.auth[user] == pw
        self.auth_attempts.append((mechanism, user, ok))
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    # -- lifecycle
    def _factory(self):
        with self._lock:
            index = self.sessions
            self.sessions += 1
        mechs = {"PLAIN", "LOGIN"}
        exclude = sorted(mechs - {m.upper() for m in self.auth_mechanisms}) \
            if self.auth_mechanisms else []
        proto = _FakeSMTP(
            self, index,
            loop=self._loop,
            hostname=self.hostname,
            ident=self.ident,
            data_size_limit=self.size or None,
            enable_SMTPUTF8=bool(self.smtputf8),
            decode_data=False,
            tls_context=self._tls_ctx,
            require_starttls=bool(self.tls_required and self._tls_ctx),
            timeout=self.timeout,
            auth_require_tls=not self.auth_plaintext,
            auth_exclude_mechanism=exclude,
            authenticator=self._authenticator,
        )
        self.transcripts.append(proto._transcript)
        self._protocols.add(proto)
        return proto

    def start(self):
        assert self._thread is None, "FakeMX already running"
        self._tls_ctx = self._make_tls_context()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure = []

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    self._loop.create_server(self._factory, sock=sock))
            except Exception as e:      # reported by start()
                failure.append(e)
                ready.set()
                self._loop.close()
                return
            ready.set()
            try:
                self._loop.run_forever()
            finally:
                try:
                    self._loop.run_until_complete(self._loop.shutdown_asyncgens())
                except Exception:
                    pass
                self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True,
                                        name=f"FakeMX:{self.host}:{self.port}")
        self._thread.start()
        if not ready.wait(5) or failure:
            self._thread.join(1)
            self._thread = None
            sock.close()
            raise RuntimeError(f"FakeMX did not start: {failure}")
        return self

    async def _shutdown(self):
        if self._server is not None:
            self._server.close()
        for p in list(self._protocols):
            for t in (p.transport, getattr(p, "_original_transport", None)):
                if t is not None:
                    try:
                        t.abort()
                    except Exception:
                        pass
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def stop(self, timeout=5.0):
        """Close the listener and every connection; join the thread."""
        if self._thread is None:
            return
        t0 = time.monotonic()
        loop = self._loop
        try:
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            fut.result(timeout=max(0.5, timeout - 1.5))
        except Exception as e:
            log.warning("FakeMX shutdown: %r", e)
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass
        self._thread.join(max(0.1, timeout - (time.monotonic() - t0)))
        alive = self._thread.is_alive()
        self._thread = None
        try:
            self._sock.close()
        except OSError:
            pass
        if alive:
            raise RuntimeError("FakeMX thread did not stop in time")

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


# ----------------------------------------------------------------------------
# ports that do not talk

class SilentPort:
    """A TCP port on loopback that accepts connections and never sends
    anything (a 'filtered' MX for timeout tests). Connections are held open
    until stop(); .connections counts them."""

    def __init__(self, host="127.0.0.1", port=0):
        _check_loopback(host)
        self.host = host
        self.port = port
        self.connections = 0
        self.received = b""
        self._conns = []
        self._sock = None
        self._thread = None
        self._stop = threading.Event()

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.host, self.port))
            s.listen(64)
        except OSError:
            s.close()
            raise
        s.setblocking(False)
        self._sock = s
        self.port = s.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"SilentPort:{self.port}")
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._sock] + self._conns, [], [], 0.1)
            except (OSError, ValueError):
                self._conns = [c for c in self._conns if c.fileno() >= 0]
                continue
            for x in r:
                if x is self._sock:
                    try:
                        c, _ = self._sock.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    self._conns.append(c)
                    self.connections += 1
                else:
                    try:
                        data = x.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        if len(self.received) < 1 << 20:
                            self.received += data
                    else:
                        self._conns.remove(x)
                        x.close()
        for c in self._conns:
            c.close()
        self._conns = []

    def stop(self, timeout=5.0):
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        self._thread = None
        self._sock.close()
        if alive:
            raise RuntimeError("SilentPort thread did not stop in time")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def refused_port(host="127.0.0.1"):
    """A port on host where nothing listens (bound, then closed): a connect
    there is refused at once (unless something else binds it meanwhile)."""
    _check_loopback(host)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


__all__ = ["FakeMX", "SilentPort", "refused_port", "self_signed_cert"]
