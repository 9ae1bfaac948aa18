"""Raw SOCKS4/4a/5 bytes for the socksd end-to-end scenarios.

Black-box helpers: they build and parse the wire shapes of RFC 1928 / RFC 1929 and the
SOCKS4/4a memo themselves (nothing from the project), so a scenario script says what it
sends and what it expects, never how the bytes are laid out. Also: small loopback
servers (TCP echo, UDP echo), the SIGUSR1 counters reader, and the session-line parser.

Every wait here has a deadline; a helper never blocks forever.
"""

import ipaddress
import json
import os
import re
import selectors
import signal
import socket
import struct
import threading
import time

# SOCKS5 constants (RFC 1928).
VER5 = 0x05
NO_AUTH = 0x00
GSSAPI = 0x01
USERPASS = 0x02
NO_ACCEPTABLE = 0xFF
CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_UDP = 0x03
ATYP_V4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_V6 = 0x04
REP_SUCCEEDED = 0x00
REP_GENERAL = 0x01
REP_NOT_ALLOWED = 0x02
REP_NET_UNREACH = 0x03
REP_HOST_UNREACH = 0x04
REP_REFUSED = 0x05
REP_TTL = 0x06
REP_BAD_CMD = 0x07
REP_BAD_ATYP = 0x08

# SOCKS4 constants.
VER4 = 0x04
S4_GRANTED = 0x5A
S4_REJECTED = 0x5B


class Fail(Exception):
    """An assertion of a scenario failed; the message says which and why."""


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def say(msg):
    print(f"ok: {msg}", flush=True)


# ---------------------------------------------------------------- sockets


def tcp_connect(addr, timeout=5.0, source=None):
    """addr is (host, port); host may be an IPv6 literal."""
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if source:
        s.bind((source, 0))
    s.connect(addr)
    return s


def recv_exact(s, n, timeout=5.0):
    """n bytes, or Fail naming how many arrived before EOF / the deadline."""
    deadline = time.monotonic() + timeout
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail(f"timed out after {timeout}s waiting for {n} bytes (got {buf.hex()})")
        s.settimeout(left)
        try:
            chunk = s.recv(n - len(buf))
        except socket.timeout:
            continue
        if not chunk:
            raise Fail(f"EOF after {len(buf)} of {n} bytes (got {buf.hex()})")
        buf += chunk
    return buf


def read_until_closed(s, timeout=5.0, limit=1 << 20):
    """Read until the peer closes (EOF or RST). Returns (bytes, how) where how is
    'eof', 'reset' or 'open' (still open at the deadline)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return buf, "open"
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return buf, "reset"
        if not chunk:
            return buf, "eof"
        buf += chunk
        if len(buf) > limit:
            return buf, "open"


def rst_close(s):
    """Vanish: close with an RST instead of a FIN (SO_LINGER 0)."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def free_port(host="127.0.0.1", kind=socket.SOCK_STREAM):
    """A port that nothing listens on right now (bound, then released)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, kind)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def parse_hostport(text):
    """'127.0.0.1:1080' or '[::1]:1080' -> (host, port)."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)", text)
    if not m:
        raise ValueError(f"not host:port: {text!r}")
    if m.group(1):
        return m.group(1), int(m.group(2))
    return m.group(3), int(m.group(4))


def wait_all_closed(conns, deadline_s, what):
    """conns: list of (socket, label). Reads everything until each is closed by the
    server; returns {label: bytes received}. Fails naming those still open."""
    sel = selectors.DefaultSelector()
    got = {}
    for s, label in conns:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, label)
        got[label] = b""
    deadline = time.monotonic() + deadline_s
    open_ = len(conns)
    while open_ and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            try:
                d = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except (ConnectionResetError, OSError):
                d = b""
            if d:
                got[key.data] += d
                continue
            sel.unregister(key.fileobj)
            key.fileobj.close()
            open_ -= 1
    left = [k.data for k in sel.get_map().values()]
    for k in list(sel.get_map().values()):
        k.fileobj.close()
    check(not left, f"{what}: {len(left)} connection(s) still open after {deadline_s}s: {left[:8]}")
    return got


# ---------------------------------------------------------------- SOCKS5 shapes


def encode_addr(host):
    """ATYP + DST.ADDR for an IPv4/IPv6 literal or a domain name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode()
        return bytes([ATYP_DOMAIN, len(name)]) + name
    if ip.version == 4:
        return bytes([ATYP_V4]) + ip.packed
    return bytes([ATYP_V6]) + ip.packed


def greeting(methods):
    return bytes([VER5, len(methods)]) + bytes(methods)


def userpass(user, password):
    u, p = user.encode(), password.encode()
    return bytes([0x01, len(u)]) + u + bytes([len(p)]) + p


def request(cmd, host, port, atyp_override=None):
    addr = encode_addr(host)
    if atyp_override is not None:
        addr = bytes([atyp_override]) + addr[1:]
    return bytes([VER5, cmd, 0x00]) + addr + struct.pack("!H", port)


def read_addr(s, atyp, timeout=5.0):
    if atyp == ATYP_V4:
        return str(ipaddress.IPv4Address(recv_exact(s, 4, timeout)))
    if atyp == ATYP_V6:
        return str(ipaddress.IPv6Address(recv_exact(s, 16, timeout)))
    if atyp == ATYP_DOMAIN:
        n = recv_exact(s, 1, timeout)[0]
        return recv_exact(s, n, timeout).decode(errors="replace")
    raise Fail(f"reply carries unknown ATYP {atyp:#04x}")


def read_reply5(s, timeout=5.0):
    """One SOCKS5 reply: (REP, BND.ADDR, BND.PORT)."""
    head = recv_exact(s, 4, timeout)
    check(head[0] == VER5, f"reply VER is {head[0]:#04x}, expected 0x05 (reply {head.hex()})")
    check(head[2] == 0x00, f"reply RSV is {head[2]:#04x}, expected 0x00")
    host = read_addr(s, head[3], timeout)
    port = struct.unpack("!H", recv_exact(s, 2, timeout))[0]
    return head[1], host, port


def negotiate(s, methods=(NO_AUTH,), timeout=5.0):
    s.sendall(greeting(list(methods)))
    r = recv_exact(s, 2, timeout)
    check(r[0] == VER5, f"method selection VER is {r[0]:#04x}, expected 0x05")
    return r[1]


def authenticate(s, user, password, timeout=5.0):
    """RFC 1929 subnegotiation; returns STATUS (0 = success)."""
    s.sendall(userpass(user, password))
    r = recv_exact(s, 2, timeout)
    check(r[0] == 0x01, f"RFC 1929 reply VER is {r[0]:#04x}, expected 0x01")
    return r[1]


def open5(proxy, cmd, host, port, auth=None, timeout=5.0, source=None):
    """Connect to the proxy, negotiate (user/password if auth=(u, p)), send one request.
    Returns (socket, REP, BND.ADDR, BND.PORT)."""
    s = tcp_connect(proxy, timeout, source)
    if auth:
        m = negotiate(s, (USERPASS,), timeout)
        check(m == USERPASS, f"server chose method {m:#04x}, expected 0x02")
        st = authenticate(s, auth[0], auth[1], timeout)
        check(st == 0, f"RFC 1929 status {st} for the right password")
    else:
        m = negotiate(s, (NO_AUTH,), timeout)
        check(m == NO_AUTH, f"server chose method {m:#04x}, expected 0x00")
    s.sendall(request(cmd, host, port))
    rep, bh, bp = read_reply5(s, timeout)
    return s, rep, bh, bp


def connect5(proxy, host, port, auth=None, timeout=5.0, source=None):
    """A SOCKS5 CONNECT that must succeed; returns the relayed socket."""
    s, rep, _, _ = open5(proxy, CMD_CONNECT, host, port, auth, timeout, source)
    check(rep == REP_SUCCEEDED, f"CONNECT {host}:{port} got REP {rep:#04x}, expected 0x00")
    return s


# ---------------------------------------------------------------- SOCKS4 / 4a shapes


def request4(cmd, ip, port, userid=b"", domain=None):
    """SOCKS4 request; with domain, SOCKS4a (DSTIP 0.0.0.1, name after USERID)."""
    if domain is not None:
        ip = "0.0.0.1"
    out = bytes([VER4, cmd]) + struct.pack("!H", port) + ipaddress.IPv4Address(ip).packed
    out += userid + b"\x00"
    if domain is not None:
        out += domain.encode() + b"\x00"
    return out


def read_reply4(s, timeout=5.0):
    """(CD, DSTPORT, DSTIP) of an 8-byte SOCKS4 reply."""
    r = recv_exact(s, 8, timeout)
    check(r[0] == 0x00, f"SOCKS4 reply VN is {r[0]:#04x}, expected 0x00")
    return r[1], struct.unpack("!H", r[2:4])[0], str(ipaddress.IPv4Address(r[4:8]))


# ---------------------------------------------------------------- UDP request header


def udp_header(host, port, frag=0):
    return b"\x00\x00" + bytes([frag]) + encode_addr(host) + struct.pack("!H", port)


def parse_udp(d):
    """(FRAG, host, port, DATA) of a SOCKS5 UDP datagram."""
    check(len(d) >= 4, f"UDP datagram too short: {d.hex()}")
    check(d[0:2] == b"\x00\x00", f"UDP header RSV is {d[0:2].hex()}, expected 0000")
    frag, atyp = d[2], d[3]
    i = 4
    if atyp == ATYP_V4:
        host = str(ipaddress.IPv4Address(d[i:i + 4]))
        i += 4
    elif atyp == ATYP_V6:
        host = str(ipaddress.IPv6Address(d[i:i + 16]))
        i += 16
    elif atyp == ATYP_DOMAIN:
        n = d[i]
        host = d[i + 1:i + 1 + n].decode(errors="replace")
        i += 1 + n
    else:
        raise Fail(f"UDP reply carries unknown ATYP {atyp:#04x}")
    port = struct.unpack("!H", d[i:i + 2])[0]
    return frag, host, port, d[i + 2:]


# ---------------------------------------------------------------- loopback servers


class TcpEcho:
    """Echoes every byte back; counts accepted peers. Runs in daemon threads."""

    def __init__(self, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(512)
        self.addr = self.sock.getsockname()[:2]
        self.accepted = 0
        self.peers = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _serve(c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()


class UdpEcho:
    """Echoes datagrams to their sender; remembers (payload, source) of each."""

    def __init__(self, host="127.0.0.1", port=0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.addr = self.sock.getsockname()[:2]
        self.seen = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                d, src = self.sock.recvfrom(65536)
            except OSError:
                return
            self.seen.append((d, src[:2]))
            try:
                self.sock.sendto(d, src)
            except OSError:
                pass


def echo_roundtrip(s, payload, timeout=5.0):
    s.sendall(payload)
    got = recv_exact(s, len(payload), timeout)
    check(got == payload, f"echo mismatch: sent {len(payload)} bytes, got different bytes back")


# ---------------------------------------------------------------- socksd observation


class Server:
    """The socksd under test: where it listens, its PID (started by the test's shell,
    so signalling it is ours to do) and its log file."""

    def __init__(self, addr, pid=None, log=None):
        self.addr = parse_hostport(addr) if isinstance(addr, str) else addr
        self.pid = int(pid) if pid else None
        self.log = log

    def log_text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def alive(self):
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def counters(self, timeout=5.0):
        """SIGUSR1, then the JSON of the next `counters {...}` line."""
        check(self.pid and self.log, "counters need the server's pid and log")
        before = self.log_text().count("counters {")
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [l for l in self.log_text().splitlines() if "counters {" in l]
            if len(lines) > before:
                raw = lines[-1][lines[-1].index("counters {") + len("counters "):]
                try:
                    return json.loads(raw)
                except json.JSONDecodeError as e:
                    raise Fail(f"counters line is not JSON ({e}): {lines[-1]!r}")
            time.sleep(0.05)
        raise Fail(f"no new 'counters {{...}}' line within {timeout}s of SIGUSR1")

    def wait_counter(self, key, pred, timeout=5.0):
        """Poll the counters until pred(value) holds; returns the last counters."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.counters()
            check(key in c, f"counters have no key {key!r}: {c}")
            if pred(c[key]):
                return c
            if time.monotonic() > deadline:
                raise Fail(f"counter {key} still {c[key]} after {timeout}s: {c}")
            time.sleep(0.2)

    def session_lines(self):
        return [parse_session(l) for l in self.log_text().splitlines() if SESSION_RE.search(l)]

    def wait_session(self, pred, timeout=5.0, what="session line"):
        deadline = time.monotonic() + timeout
        while True:
            for f in self.session_lines():
                if pred(f):
                    return f
            if time.monotonic() > deadline:
                raise Fail(f"no {what} within {timeout}s")
            time.sleep(0.05)


SESSION_RE = re.compile(r"\bsession id=\d+ ")


def parse_session(line):
    """key=value fields of a session line (values have no spaces in the contract)."""
    return dict(re.findall(r"(\w+)=(\S+)", line[SESSION_RE.search(line).start():]))
