"""CONNECT relay semantics through socksd: half-close both ways, and backpressure.

usage: relay.py ADDR PID LOG {half_close|backpressure}

half_close    (a) the client sends 1 MiB then shuts down its write side: the destination
              sees EOF after exactly those bytes and can still answer, and the answer
              reaches the client, followed by EOF. (b) the destination sends 1 MiB then
              shuts down its write side: the client sees EOF after exactly those bytes
              and can still send; the destination receives that, then EOF. The session
              lines count up=/down= exactly.
backpressure  (a) download: a destination that writes without end to a client that does
              not read stalls (the bytes it got rid of stop growing and stay under
              64 MiB) and socksd's VmRSS grows by less than 48 MiB; once the client
              reads, the stream resumes, in order (a position-derived byte pattern).
              (b) upload: the same with a destination that does not read.
"""
import hashlib
import os
import socket
import sys
import threading
import time

from socks_raw import Server, check, connect5, read_until_closed, recv_exact, say

srv = Server(sys.argv[1], sys.argv[2], sys.argv[3])
mode = sys.argv[4]
MiB = 1 << 20


def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def rss_kib():
    with open(f"/proc/{srv.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for socksd")


def pattern(offset, n):
    """Bytes n at stream position offset: position-derived, so loss or reordering shows."""
    start = offset % 251
    base = bytes(i % 251 for i in range(251)) * ((n + start) // 251 + 2)
    return base[start:start + n]


def session_of(sock_port):
    return srv.wait_session(lambda f: f.get("client", "").endswith(f":{sock_port}"), what="session line")


if mode == "half_close":
    # (a) client half-closes first
    lst = listener()
    payload = os.urandom(MiB)
    answer = {}

    def collector():
        c, _ = lst.accept()
        got = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
        answer["len"] = len(got)
        msg = f"got {len(got)} {hashlib.sha256(got).hexdigest()}".encode()
        c.sendall(msg)
        c.close()

    t = threading.Thread(target=collector, daemon=True)
    t.start()
    s = connect5(srv.addr, "127.0.0.1", lst.getsockname()[1])
    cport = s.getsockname()[1]
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    data, how = read_until_closed(s, 10)
    want = f"got {MiB} {hashlib.sha256(payload).hexdigest()}".encode()
    check(data == want, f"after the client's FIN the destination answered {data[:80]!r} ({how}), expected {want!r}")
    check(how == "eof", f"the client's stream ended with {how}, expected EOF")
    s.close()
    f = session_of(cport)
    check(f.get("up") == str(MiB) and f.get("down") == str(len(want)), f"session up/down: {f}")
    say(f"client half-close: destination got {MiB} bytes then EOF, its answer came back; {f}")

    # (b) destination half-closes first
    lst2 = listener()
    heard = {}

    def speaker():
        c, _ = lst2.accept()
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
        heard["data"] = got
        c.close()

    t2 = threading.Thread(target=speaker, daemon=True)
    t2.start()
    s = connect5(srv.addr, "127.0.0.1", lst2.getsockname()[1])
    cport = s.getsockname()[1]
    data = recv_exact(s, MiB, 10)
    check(data == payload, "destination's 1 MiB differs")
    rest, how = read_until_closed(s, 5)
    check(rest == b"" and how == "eof", f"after the destination's FIN the client saw {how} with {len(rest)} extra bytes")
    late = b"sent after the destination's FIN " * 100
    s.sendall(late)
    s.shutdown(socket.SHUT_WR)
    t2.join(10)
    check(heard.get("data") == late, f"destination received {len(heard.get('data', b''))} bytes after its FIN, expected {len(late)}")
    s.close()
    f = session_of(cport)
    check(f.get("up") == str(len(late)) and f.get("down") == str(MiB), f"session up/down: {f}")
    say(f"destination half-close: client got EOF after 1 MiB and could still send; {f}")

elif mode == "backpressure":
    base = rss_kib()
    # (a) download to a client that does not read
    lst = listener()
    written = [0]
    stop = threading.Event()

    def source():
        c, _ = lst.accept()
        c.settimeout(0.2)
        chunk = 256 * 1024
        while not stop.is_set():
            try:
                n = c.send(pattern(written[0], chunk))
            except socket.timeout:
                continue
            except OSError:
                break
            written[0] += n
        c.close()

    threading.Thread(target=source, daemon=True).start()
    s = connect5(srv.addr, "127.0.0.1", lst.getsockname()[1])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    time.sleep(1.5)
    w1, r1 = written[0], rss_kib()
    time.sleep(1.5)
    w2, r2 = written[0], rss_kib()
    say(f"download stalled at {w2 / MiB:.1f} MiB written by the source (+{(w2 - w1) / 1024:.0f} KiB in the last 1.5 s); "
        f"socksd VmRSS {base} -> {r2} KiB")
    check(w2 < 64 * MiB, f"the source got rid of {w2 / MiB:.0f} MiB to a client that reads nothing: not bounded")
    check(w2 - w1 <= 1 * MiB, f"the source kept writing ({(w2 - w1) / MiB:.1f} MiB in 1.5 s) to a client that reads nothing")
    check(r2 - base < 48 * 1024, f"socksd VmRSS grew {(r2 - base) / 1024:.0f} MiB while the client did not read")
    got = recv_exact(s, 16 * MiB, 20)
    check(got == pattern(0, len(got)), "download resumed with lost or reordered bytes")
    stop.set()
    s.close()
    say("download resumed in order once the client read")

    # (b) upload to a destination that does not read
    lst2 = listener()
    go = threading.Event()
    received = {"n": 0, "ok": True}

    def lazy_sink():
        c, _ = lst2.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        go.wait(30)
        while True:
            d = c.recv(65536)
            if not d:
                break
            if d != pattern(received["n"], len(d)):
                received["ok"] = False
            received["n"] += len(d)
        c.close()

    t = threading.Thread(target=lazy_sink, daemon=True)
    t.start()
    s = connect5(srv.addr, "127.0.0.1", lst2.getsockname()[1])
    s.setblocking(False)
    sent = 0
    base = rss_kib()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            sent += s.send(pattern(sent, 256 * 1024))
        except BlockingIOError:
            time.sleep(0.05)
    r2 = rss_kib()
    say(f"upload stalled after the client got rid of {sent / MiB:.1f} MiB; socksd VmRSS {base} -> {r2} KiB")
    check(sent < 64 * MiB, f"the client got rid of {sent / MiB:.0f} MiB towards a destination that reads nothing")
    check(r2 - base < 48 * 1024, f"socksd VmRSS grew {(r2 - base) / 1024:.0f} MiB while the destination did not read")
    go.set()
    s.setblocking(True)
    extra = 8 * MiB
    s.sendall(pattern(sent, extra))
    sent += extra
    s.shutdown(socket.SHUT_WR)
    t.join(20)
    check(received["n"] == sent and received["ok"],
          f"destination received {received['n']} of {sent} bytes (in order: {received['ok']})")
    s.close()
    say("upload resumed and arrived whole and in order once the destination read")
else:
    raise SystemExit(f"unknown mode {mode}")
