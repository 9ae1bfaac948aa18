"""Many TCP connections at once, for the load and RLIMIT_NOFILE tests.

hold_many.py serve --host H [--port P]
    an echo server on one thread (selectors: thousands of connections, no thread each);
    prints `listening on H:P`.
hold_many.py hold --host H --port P --count N --release FILE [--timeout S]
    connects N times, one after the other; on each that connects sends one byte and waits
    for its echo. Prints `opened ok=K failed=F errors=ERRNO:n,...` (a failed connect is
    counted by errno, never retried). Then waits until FILE exists, sends one byte on
    every held connection and waits for every echo: `answered ok=A lost=L`; closes them
    all and prints `closed`.
hold_many.py churn --host H --port P --seconds S [--socks HOST:PORT] [--workers W]
    opens, echoes one 16-byte message on, and closes connections back to back for S
    seconds (W threads, default 4); with --socks each goes through a SOCKS5 CONNECT to
    HOST:PORT first. Prints `churn ok=N failed=F seconds=S rate=R errors=...`.
"""

import argparse
import collections
import errno
import os
import selectors
import socket
import struct
import sys
import threading
import time


# tcp_peer.py, beside this file: one thread-safe line writer and one errno naming.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tcp_peer import errname, say  # noqa: E402


def serve(a):
    sel = selectors.DefaultSelector()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(4096)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    say(f"listening on {a.host}:{ls.getsockname()[1]}")
    while True:
        for key, _ in sel.select():
            if key.fileobj is ls:
                try:
                    conn, _ = ls.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if data:
                try:
                    conn.sendall(data)  # small echoes: the send buffer always has room
                    continue
                except OSError:
                    pass
            sel.unregister(conn)
            conn.close()


def echo_once(s, payload):
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        d = s.recv(len(payload) - len(got))
        if not d:
            raise ConnectionResetError(errno.ECONNRESET, "eof before the echo")
        got += d
    if got != payload:
        raise ValueError("echo differs")


def hold(a):
    held = []
    errors = collections.Counter()
    for _ in range(a.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(a.timeout)
        try:
            s.connect((a.host, a.port))
            echo_once(s, b"x")
            held.append(s)
        except (OSError, ValueError) as e:
            errors[errname(e)] += 1
            s.close()
    say("opened", f"ok={len(held)}", f"failed={sum(errors.values())}",
        "errors=" + (",".join(f"{k}:{v}" for k, v in sorted(errors.items())) or "none"))
    while not os.path.exists(a.release):
        time.sleep(0.1)
    answered = lost = 0
    for s in held:
        try:
            echo_once(s, b"y")
            answered += 1
        except (OSError, ValueError):
            lost += 1
    say("answered", f"ok={answered}", f"lost={lost}")
    for s in held:
        s.close()
    say("closed")


def socks_connect(s, host, port):
    s.sendall(b"\x05\x01\x00")
    if s.recv(2) != b"\x05\x00":
        raise ValueError("method")
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack("!H", port))
    reply = b""
    while len(reply) < 10:
        d = s.recv(10 - len(reply))
        if not d:
            raise ValueError("reply")
        reply += d
    if reply[1] != 0:
        raise ValueError(f"reply {reply[1]}")


def churn(a):
    counts = collections.Counter()
    lock = threading.Lock()
    end = time.monotonic() + a.seconds
    proxy = None
    if a.socks:
        h, p = a.socks.rsplit(":", 1)
        proxy = (h, int(p))

    def worker():
        local = collections.Counter()
        payload = b"0123456789abcdef"
        while time.monotonic() < end:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                if proxy:
                    s.connect(proxy)
                    socks_connect(s, a.host, a.port)
                else:
                    s.connect((a.host, a.port))
                echo_once(s, payload)
                local["ok"] += 1
            except (OSError, ValueError) as e:
                local["err:" + errname(e)] += 1
            finally:
                s.close()
        with lock:
            counts.update(local)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(a.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    failed = sum(v for k, v in counts.items() if k != "ok")
    errs = ",".join(f"{k[4:]}:{v}" for k, v in sorted(counts.items()) if k != "ok") or "none"
    say("churn", f"ok={counts['ok']}", f"failed={failed}", f"seconds={took:.1f}",
        f"rate={counts['ok'] / took:.0f}", f"errors={errs}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--host", required=True)
    sv.add_argument("--port", type=int, default=0)
    hd = sub.add_parser("hold")
    hd.add_argument("--host", required=True)
    hd.add_argument("--port", type=int, required=True)
    hd.add_argument("--count", type=int, required=True)
    hd.add_argument("--release", required=True)
    hd.add_argument("--timeout", type=float, default=20.0)
    ch = sub.add_parser("churn")
    ch.add_argument("--host", required=True)
    ch.add_argument("--port", type=int, required=True)
    ch.add_argument("--seconds", type=float, default=5)
    ch.add_argument("--socks")
    ch.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    {"serve": serve, "hold": hold, "churn": churn}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
