"""A fake DNS server for tern's outbound delivery tests.

FakeDNS answers, on 127.0.0.1 only (UDP and TCP on one random free port),
from a zone given as Python data that tests may change while it runs:

    dns = FakeDNS()                 # or FakeDNS(zone={...})
    dns.start()                     # also: with FakeDNS() as dns: ...
    dns.add("remote.example", "MX", (10, "mx1.remote.example"))
    dns.add("mx1.remote.example", "A", "127.0.0.2")
    cfg["dns_server"] = dns.addr    # "127.0.0.1:PORT"
    ...
    assert ("mx1.remote.example", "AAAA") not in dns.queries
    dns.stop()                      # joins the server thread within 5 s

Record types: MX (preference, host), A, AAAA (address strings), TXT (a str,
or a list of str = several character-strings in ONE record; strings longer
than 255 bytes are split), CNAME (target). Names are case-insensitive and
written with or without the trailing dot.

Answers: a name with records of the asked type -> NOERROR + the records
(following CNAMEs inside the zone); a name that exists (has records, or is an
empty non-terminal above a name that has) but not of the asked type ->
NOERROR/NODATA; anything else -> NXDOMAIN. Negative answers carry a
synthetic SOA (minimum = ttl) in the authority section. set_rcode() forces
SERVFAIL / REFUSED / ... for a name (optionally only for one query type),
set_delay() answers late, set_drop() never answers, set_truncate() answers
over UDP with TC=1 and no records (so the client must retry over TCP).

Everything is served by one thread running a select() loop: no thread per
query, delayed answers wait in a heap, TCP connections are bounded in number
and closed after idle_timeout. Malformed queries are logged and ignored.
Nothing here reads or changes the machine's resolver configuration.
"""

import heapq
import ipaddress
import itertools
import logging
import select
import socket
import struct
import threading
import time

from dnslib import (AAAA, CNAME, EDNS0, MX, QTYPE, RCODE, RR, SOA, TXT, A,
                    DNSHeader, DNSRecord)

log = logging.getLogger("fake_dns")

TYPES = ("A", "AAAA", "MX", "TXT", "CNAME")
MAX_TCP_CONNS = 64
MAX_CNAME_CHAIN = 8


def _norm(name):
    """Canonical form of a domain name: lower case, no trailing dot."""
    name = str(name).strip()
    if name in ("", "."):
        return ""
    return name.rstrip(".").lower()


def _fqdn(name):
    name = str(name)
    return name if name.endswith(".") else name + "."


def _split_txt(value):
    """A TXT record value -> list of byte strings of at most 255 bytes."""
    if isinstance(value, (str, bytes)):
        value = [value]
    out = []
    for s in value:
        b = s.encode() if isinstance(s, str) else bytes(s)
        if not b:
            out.append(b"")
        while b:
            out.append(b[:255])
            b = b[255:]
    return out


def _rcode(value):
    if isinstance(value, int):
        return value
    code = getattr(RCODE, str(value).upper(), None)
    if code is None:
        raise ValueError(f"unknown DNS rcode {value!r}")
    return code


class FakeDNS:
    """A DNS server on 127.0.0.1 (UDP + TCP, same port) answering from a
    mutable in-memory zone. Thread-safe; see the module docstring."""

    def __init__(self, zone=None, host="127.0.0.1", port=0, ttl=5,
                 idle_timeout=10.0):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"FakeDNS only listens on loopback, not {host}")
        self.host = host
        self.port = port
        self.ttl = ttl
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._records = {}          # name -> list of (TYPE, value, ttl)
        self._rcodes = {}           # (name, TYPE or None) -> rcode int
        self._delays = {}           # (name, TYPE or None) -> seconds
        self._drops = set()         # (name, TYPE or None)
        self._truncs = set()        # (name, TYPE or None)
        self.queries = []           # (qname, qtype) in arrival order
        self.query_log = []         # (qname, qtype, "udp"|"tcp", monotonic time)
        self.malformed = 0          # queries that could not be parsed
        self._udp = self._tcp = None
        self._conns = {}
        self._thread = None
        self._stop = threading.Event()
        self._error = None
        if zone:
            self.load(zone)

    # ------------------------------------------------------------------
    # zone data

    @property
    def addr(self):
        """'127.0.0.1:PORT', the form tern's dns_server setting takes."""
        return f"{self.host}:{self.port}"

    def load(self, zone):
        """Add records from {name: {TYPE: value or [values]}}; a bare value
        (str, tuple) is one record, a list holds one record per item (a TXT
        record with several strings is then a list inside the list)."""
        for name, types in zone.items():
            for rtype, values in types.items():
                if not isinstance(values, list):
                    values = [values]
                for v in values:
                    self.add(name, rtype, v)

    def add(self, name, rtype, value, ttl=None):
        """Add one record. MX: (preference, host); A/AAAA: address string;
        TXT: str or list of str (one record); CNAME: target name."""
        rtype = rtype.upper()
        if rtype not in TYPES:
            raise ValueError(f"unsupported record type {rtype!r}")
        value = self._check(rtype, value)
        with self._lock:
            self._records.setdefault(_norm(name), []).append(
                (rtype, value, self.ttl if ttl is None else ttl))

    def set(self, name, rtype, values, ttl=None):
        """Replace every record of rtype at name by values (a list)."""
        self.remove(name, rtype)
        for v in values:
            self.add(name, rtype, v, ttl)

    def remove(self, name, rtype=None):
        """Remove the records of rtype (or all records) at name."""
        n = _norm(name)
        with self._lock:
            if rtype is None:
                self._records.pop(n, None)
            elif n in self._records:
                kept = [r for r in self._records[n] if r[0] != rtype.upper()]
                if kept:
                    self._records[n] = kept
                else:
                    del self._records[n]

    def null_mx(self, name):
        """RFC 7505 null MX: the single record 'MX 0 .'."""
        self.set(name, "MX", [(0, ".")])

    @staticmethod
    def _check(rtype, value):
        if rtype == "MX":
            pref, host = value
            return (int(pref), str(host))
        if rtype == "A":
            ipaddress.IPv4Address(value)
            return str(value)
        if rtype == "AAAA":
            ipaddress.IPv6Address(value)
            return str(value)
        if rtype == "TXT":
            return _split_txt(value)
        return str(value)           # CNAME

    # ------------------------------------------------------------------
    # behaviours (qtype None = every query type)

    @staticmethod
    def _key(name, qtype):
        return (_norm(name), qtype.upper() if qtype else None)

    def set_rcode(self, name, rcode, qtype=None):
        """Answer queries for name (of qtype, or any) with this rcode
        ('SERVFAIL', 'REFUSED', 'NXDOMAIN', ... or a number); None clears."""
        k = self._key(name, qtype)
        with self._lock:
            if rcode is None:
                self._rcodes.pop(k, None)
            else:
                self._rcodes[k] = _rcode(rcode)

    def set_delay(self, name, seconds, qtype=None):
        """Send the answer for name only after seconds (0/None clears)."""
        k = self._key(name, qtype)
        with self._lock:
            if seconds:
                self._delays[k] = float(seconds)
            else:
                self._delays.pop(k, None)

    def set_drop(self, name, qtype=None, drop=True):
        """Never answer queries for name (a timeout for the client)."""
        k = self._key(name, qtype)
        with self._lock:
            (self._drops.add if drop else self._drops.discard)(k)

    def set_truncate(self, name, qtype=None, truncate=True):
        """Over UDP, answer name with TC=1 and no records (TCP is normal)."""
        k = self._key(name, qtype)
        with self._lock:
            (self._truncs.add if truncate else self._truncs.discard)(k)

    def clear(self):
        """Forget everything: records, behaviours and the query log."""
        with self._lock:
            self._records.clear()
            self._rcodes.clear()
            self._delays.clear()
            self._drops.clear()
            self._truncs.clear()
            self.queries.clear()
            self.query_log.clear()

    def clear_queries(self):
        """Forget only the query log."""
        with self._lock:
            self.queries.clear()
            self.query_log.clear()

    def asked(self, name, qtype=None):
        """How many queries for name (of qtype, or any type) arrived."""
        n = _norm(name)
        with self._lock:
            return sum(1 for q, t in self.queries
                       if q == n and (qtype is None or t == qtype.upper()))

    def wait_query(self, name, qtype=None, count=1, timeout=10.0):
        """Wait until count queries for name (qtype) arrived; returns bool."""
        deadline = time.monotonic() + timeout
        while self.asked(name, qtype) < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    # ------------------------------------------------------------------
    # lifecycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        assert self._thread is None, "FakeDNS already running"
        self._bind()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"FakeDNS:{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def _bind(self):
        want = self.port
        last = None
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((self.host, want))
                port = udp.getsockname()[1]
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self.host, port))
                tcp.listen(16)
            except OSError as e:
                udp.close()
                tcp.close()
                last = e
                if want:
                    break
                continue
            udp.setblocking(False)
            tcp.setblocking(False)
            self._udp, self._tcp, self.port = udp, tcp, port
            return
        raise OSError(f"FakeDNS: cannot bind UDP+TCP on {self.host}:{want}: {last}")

    def stop(self, timeout=5.0):
        """Stop serving; joins the thread (at most timeout seconds)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        self._thread = None
        for s in (self._udp, self._tcp):
            try:
                s.close()
            except OSError:
                pass
        if alive:
            raise RuntimeError("FakeDNS thread did not stop in time")

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------
    # server loop

    def _run(self):
        conns = self._conns = {}    # sock -> [bytearray buffer, last activity]
        pending = []                # heap of (due, seq, proto, dest, payload)
        seq = itertools.count()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                while pending and pending[0][0] <= now:
                    _, _, proto, dest, payload = heapq.heappop(pending)
                    self._send(proto, dest, payload, conns)
                wait = 0.1
                if pending:
                    wait = max(0.0, min(wait, pending[0][0] - now))
                rlist = [self._udp, self._tcp] + list(conns)
                try:
                    readable, _, _ = select.select(rlist, [], [], wait)
                except (OSError, ValueError):
                    # a connection closed under us: drop the dead ones
                    for s in list(conns):
                        if s.fileno() < 0:
                            del conns[s]
                    continue
                now = time.monotonic()
                for s in readable:
                    if s is self._udp:
                        self._read_udp(pending, seq)
                    elif s is self._tcp:
                        self._accept(conns)
                    else:
                        self._read_tcp(s, conns, pending, seq)
                for s, (_, last) in list(conns.items()):
                    if now - last > self.idle_timeout:
                        self._close(s, conns)
        except Exception as e:      # pragma: no cover - reported by stop()
            self._error = e
            log.exception("FakeDNS loop died")
        finally:
            for s in list(conns):
                self._close(s, conns)

    def _read_udp(self, pending, seq):
        for _ in range(64):         # drain what is queued, bounded
            try:
                data, addr = self._udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.debug("udp recvfrom: %s", e)
                return
            self._handle(data, "udp", addr, pending, seq)

    def _accept(self, conns):
        try:
            c, _ = self._tcp.accept()
        except OSError:
            return
        if len(conns) >= MAX_TCP_CONNS:
            log.warning("FakeDNS: too many TCP connections, closing a new one")
            c.close()
            return
        c.setblocking(False)
        conns[c] = [bytearray(), time.monotonic()]

    def _read_tcp(self, s, conns, pending, seq):
        try:
            chunk = s.recv(65537)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(s, conns)
            return
        st = conns[s]
        st[0] += chunk
        st[1] = time.monotonic()
        buf = st[0]
        while len(buf) >= 2:
            (n,) = struct.unpack("!H", buf[:2])
            if len(buf) < 2 + n:
                break
            msg = bytes(buf[2:2 + n])
            del buf[:2 + n]
            self._handle(msg, "tcp", s, pending, seq)

    @staticmethod
    def _close(s, conns):
        conns.pop(s, None)
        try:
            s.close()
        except OSError:
            pass

    def _send(self, proto, dest, payload, conns):
        try:
            if proto == "udp":
                self._udp.sendto(payload, dest)
            elif dest in conns:
                dest.settimeout(2.0)
                try:
                    dest.sendall(struct.pack("!H", len(payload)) + payload)
                finally:
                    dest.setblocking(False)
                conns[dest][1] = time.monotonic()
        except OSError as e:
            log.debug("FakeDNS send failed: %s", e)
            if proto == "tcp":
                self._close(dest, conns)

    def _handle(self, data, proto, dest, pending, seq):
        try:
            q = DNSRecord.parse(data)
        except Exception as e:
            self.malformed += 1
            log.warning("FakeDNS: ignoring malformed %s query (%d bytes): %s",
                        proto, len(data), e)
            return
        if q.header.qr or not q.questions:
            self.malformed += 1
            log.warning("FakeDNS: ignoring a %s packet that is no query", proto)
            return
        try:
            payload, delay = self._answer(q, proto)
        except Exception:
            self.malformed += 1
            log.exception("FakeDNS: cannot answer %r", q.q)
            return
        if payload is None:
            return
        if delay:
            heapq.heappush(pending, (time.monotonic() + delay, next(seq), proto,
                                     dest, payload))
        else:
            self._send(proto, dest, payload, self._conns)

    # ------------------------------------------------------------------
    # answers

    def _lookup(self, table, name, qtype):
        v = table.get((name, qtype))
        if v is None:
            v = table.get((name, None))
        return v

    def _exists(self, name):
        if name in self._records:
            return True
        suffix = "." + name
        return any(n.endswith(suffix) for n in self._records)

    def _rr(self, owner, rtype, value, ttl):
        if rtype == "A":
            rd = A(value)
        elif rtype == "AAAA":
            rd = AAAA(value)
        elif rtype == "MX":
            rd = MX(_fqdn(value[1]) if value[1] != "." else ".", value[0])
        elif rtype == "TXT":
            rd = TXT(list(value))
        else:
            rd = CNAME(_fqdn(value))
        return RR(_fqdn(owner), getattr(QTYPE, rtype), rdata=rd, ttl=ttl)

    def _soa(self, name):
        labels = name.split(".") if name else []
        apex = ".".join(labels[-2:]) if labels else ""
        return RR(_fqdn(apex) if apex else ".", QTYPE.SOA, ttl=self.ttl,
                  rdata=SOA(_fqdn("ns." + apex) if apex else "ns.",
                            _fqdn("hostmaster." + apex) if apex else "hostmaster.",
                            (1, 60, 60, 600, self.ttl)))

    def _answer(self, q, proto):
        """(payload bytes or None to stay silent, delay seconds)."""
        qname_raw = str(q.q.qname)
        name = _norm(qname_raw)
        try:
            qtype = str(QTYPE[q.q.qtype]).upper()
        except Exception:
            qtype = f"TYPE{q.q.qtype}"
        with self._lock:
            self.queries.append((name, qtype))
            self.query_log.append((name, qtype, proto, time.monotonic()))
            drop = (name, qtype) in self._drops or (name, None) in self._drops
            delay = self._lookup(self._delays, name, qtype) or 0.0
            rcode = self._lookup(self._rcodes, name, qtype)
            trunc = proto == "udp" and ((name, qtype) in self._truncs
                                        or (name, None) in self._truncs)
            records = {n: list(rs) for n, rs in self._records.items()}
            exists = self._exists(name)
        if drop:
            log.debug("FakeDNS: dropping %s %s", name, qtype)
            return None, 0.0

        reply = DNSRecord(DNSHeader(id=q.header.id, qr=1, aa=1, ra=1,
                                    rd=q.header.rd, opcode=q.header.opcode),
                          q=q.q)
        edns = [r for r in q.ar if r.rtype == QTYPE.OPT]
        udp_limit = max(512, edns[0].rclass) if edns else 512

        if q.header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP
        elif rcode is not None:
            reply.header.rcode = rcode
        elif trunc:
            reply.header.tc = 1
        else:
            self._fill(reply, q.q.qname, name, qtype, records, exists)
        if edns:
            reply.add_ar(EDNS0(udp_len=1232))
        payload = reply.pack()
        if proto == "udp" and len(payload) > udp_limit:
            t = DNSRecord(DNSHeader(id=q.header.id, qr=1, aa=1, ra=1, tc=1,
                                    rd=q.header.rd), q=q.q)
            payload = t.pack()
        return payload, delay

    def _fill(self, reply, qname, name, qtype, records, exists):
        owner = str(qname)
        cur = name
        seen = set()
        for _ in range(MAX_CNAME_CHAIN + 1):
            rs = records.get(cur, [])
            if qtype == "ANY":
                matches = rs
            else:
                matches = [r for r in rs if r[0] == qtype]
            if matches:
                for rtype, value, ttl in matches:
                    reply.add_answer(self._rr(owner, rtype, value, ttl))
                return
            cn = [r for r in rs if r[0] == "CNAME"]
            if not cn or cur in seen:
                break
            seen.add(cur)
            _, target, ttl = cn[0]
            reply.add_answer(self._rr(owner, "CNAME", target, ttl))
            cur = _norm(target)
            owner = _fqdn(target)
            exists = cur in records or any(n.endswith("." + cur) for n in records)
        # negative answer: NXDOMAIN or NODATA, with an SOA for caching
        if not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        reply.add_auth(self._soa(cur))


__all__ = ["FakeDNS"]
