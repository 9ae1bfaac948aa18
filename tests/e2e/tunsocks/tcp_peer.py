"""Small TCP programs for the tunsocks end-to-end tests: a server side (run in the server
namespace) and a client side (run in the client namespace, through the TUN).

Every result is one line of `key=value` words on stdout (flushed), so the shell checks
bytes (sha256), errno names and counts. Data is random; each side prints the sha256 of
what it sent and of what it received, and the test compares the two sides.

serve --host H [--port P] --mode M [--bytes N]     prints `listening on H:P` first
  client-closes-first  read to EOF, then send N bytes, then close
  server-closes-first  send N bytes, shutdown(SHUT_WR), read to EOF, then close
  stream               never read; send until the peer or a signal stops it
  send                 send N bytes, shutdown(SHUT_WR), read to EOF
  slow-sink            accept, sleep --pause seconds, then read to EOF
  sink                 read to EOF or error
  hold                 read to EOF or error (a connection that stays open)

client --host H --port P --mode M [...]
  client-closes-first  send N bytes, shutdown(SHUT_WR), read to EOF
  server-closes-first  read to EOF, (sleep --pause seconds,) then send N bytes,
                       shutdown(SHUT_WR), read to EOF
  read-until-error     send a few bytes the server never reads, read; `progress` once
                       --progress bytes are in; the end is `end=eof|<ERRNO>|timeout`
  upload-then-abort    send --bytes, then close with SO_LINGER 0 (a RST)
  slow-read            read --progress bytes, sleep --pause seconds, read to EOF
  send                 send --bytes, shutdown(SHUT_WR), read to EOF; a send that fails
                       prints `send-failed end=<ERRNO>`
  probe                connect once; `result=connected|<ERRNO>|timeout ms=<elapsed>`
  hold                 open --count connections, send one byte on each, print
                       `connected count=N`, then wait for each to end
"""

import argparse
import errno
import hashlib
import os
import socket
import struct
import sys
import threading
import time

CHUNK = 1 << 16


_say_lock = threading.Lock()


def say(*words):
    # One write per line, under a lock: the server's threads print concurrently, and
    # print() writes the text and its newline separately, so two lines could run together
    # ("...end=ECONNRESETreceived ...") and a line count would come out short.
    line = " ".join(str(w) for w in words) + "\n"
    with _say_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def errname(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, OSError) and e.errno is not None:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def random_stream(total):
    """Yields random chunks adding up to total bytes (one urandom block, reshuffled
    cheaply: sha256 sees every byte, so a repeated block would hide nothing we test)."""
    block = os.urandom(CHUNK)
    sent = 0
    i = 0
    while sent < total:
        n = min(CHUNK, total - sent)
        # Vary each chunk so an offset error (a duplicated or lost chunk) changes the hash.
        prefix = struct.pack("!Q", i)
        chunk = (prefix + block[len(prefix):])[:n]
        yield chunk
        sent += n
        i += 1


def send_all(sock, total):
    h = hashlib.sha256()
    for chunk in random_stream(total):
        sock.sendall(chunk)
        h.update(chunk)
    return h.hexdigest()


def read_to_end(sock):
    """Returns (bytes, sha256, end) where end is eof or the errno name."""
    h = hashlib.sha256()
    n = 0
    end = "eof"
    while True:
        try:
            data = sock.recv(CHUNK)
        except OSError as e:
            end = errname(e)
            break
        if not data:
            break
        h.update(data)
        n += len(data)
    return n, h.hexdigest(), end


# ---------------------------------------------------------------- server side


def serve_one(conn, peer, a):
    tag = f"peer={peer[0]}:{peer[1]}"
    try:
        if a.mode == "client-closes-first":
            n, sha, end = read_to_end(conn)
            say("received", tag, f"bytes={n}", f"sha256={sha}", f"end={end}")
            if end == "eof":
                sha_out = send_all(conn, a.bytes)
                say("sent", tag, f"bytes={a.bytes}", f"sha256={sha_out}")
        elif a.mode == "server-closes-first":
            sha_out = send_all(conn, a.bytes)
            conn.shutdown(socket.SHUT_WR)
            say("sent", tag, f"bytes={a.bytes}", f"sha256={sha_out}", "then=shutdown_wr")
            n, sha, end = read_to_end(conn)
            say("received", tag, f"bytes={n}", f"sha256={sha}", f"end={end}")
        elif a.mode == "stream":
            say("streaming", tag)
            for chunk in random_stream(1 << 40):
                conn.sendall(chunk)
        elif a.mode == "send":
            sha_out = send_all(conn, a.bytes)
            say("sent", tag, f"bytes={a.bytes}", f"sha256={sha_out}")
            conn.shutdown(socket.SHUT_WR)
            read_to_end(conn)
        elif a.mode == "slow-sink":
            say("accepted", tag)
            time.sleep(a.pause)
            say("reading", tag)
            n, sha, end = read_to_end(conn)
            say("received", tag, f"bytes={n}", f"sha256={sha}", f"end={end}")
        elif a.mode == "read-then-abort":
            # Reads a.bytes, then closes with SO_LINGER 0 while the client keeps sending:
            # the client's side of the chain must get a reset, and whoever writes next
            # into it gets EPIPE.
            n = 0
            while n < a.bytes:
                data = conn.recv(65536)
                if not data:
                    break
                n += len(data)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            say("aborted", tag, f"bytes={n}")
        elif a.mode in ("sink", "hold"):
            n, sha, end = read_to_end(conn)
            say("received", tag, f"bytes={n}", f"sha256={sha}", f"end={end}")
        else:
            raise SystemExit(f"unknown mode {a.mode}")
    except OSError as e:
        say("error", tag, f"end={errname(e)}")
    finally:
        conn.close()


def serve(a):
    fam = family_of(a.host)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((a.host, a.port))
    s.listen(256)
    host, port = s.getsockname()[:2]
    say(f"listening on {'[' + host + ']' if ':' in host else host}:{port}")
    while True:
        conn, peer = s.accept()
        threading.Thread(target=serve_one, args=(conn, peer, a), daemon=True).start()


# ---------------------------------------------------------------- client side


def connect(a, timeout=None):
    fam = family_of(a.host)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout if timeout is not None else a.timeout)
    s.connect((a.host, a.port))
    return s


def local_port(s):
    return s.getsockname()[1]


def client(a):
    if a.mode == "probe":
        fam = family_of(a.host)
        s = socket.socket(fam, socket.SOCK_STREAM)
        # Bound first, so a refused attempt still names its source port (and so its
        # flow line).
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
        port = local_port(s)
        s.settimeout(a.timeout)
        t0 = time.monotonic()
        try:
            s.connect((a.host, a.port))
            result = "connected"
        except OSError as e:
            result = errname(e)
        ms = int((time.monotonic() - t0) * 1000)
        say(f"result={result}", f"ms={ms}", f"port={port}")
        s.close()
        return 0

    if a.mode == "hold":
        socks = []
        for _ in range(a.count):
            s = connect(a)
            s.sendall(b"x")
            socks.append(s)
        say("connected", f"count={len(socks)}", "ports=" + ",".join(str(local_port(s)) for s in socks))
        for s in socks:
            s.settimeout(a.timeout)
            n, _, end = read_to_end(s)
            say("ended", f"port={local_port_safe(s)}", f"bytes={n}", f"end={end}")
        return 0

    s = connect(a)
    port = local_port(s)
    say("connected", f"port={port}")
    if a.mode == "client-closes-first":
        sha_out = send_all(s, a.bytes)
        s.shutdown(socket.SHUT_WR)
        say("sent", f"bytes={a.bytes}", f"sha256={sha_out}", "then=shutdown_wr")
        n, sha, end = read_to_end(s)
        say("received", f"bytes={n}", f"sha256={sha}", f"end={end}")
    elif a.mode == "server-closes-first":
        n, sha, end = read_to_end(s)
        say("received", f"bytes={n}", f"sha256={sha}", f"end={end}")
        if end == "eof":
            # The server's FIN is in; our direction must still carry everything.
            time.sleep(a.pause)
            sha_out = send_all(s, a.bytes)
            s.shutdown(socket.SHUT_WR)
            say("sent", f"bytes={a.bytes}", f"sha256={sha_out}", "then=shutdown_wr")
            n2, _, end2 = read_to_end(s)
            say("closed", f"bytes={n2}", f"end={end2}")
    elif a.mode == "read-until-error":
        s.sendall(os.urandom(4096))  # never read by the server: its death is a RST
        n = 0
        end = "eof"
        announced = False
        while True:
            try:
                data = s.recv(CHUNK)
            except OSError as e:
                end = errname(e)
                break
            if not data:
                break
            n += len(data)
            if not announced and n >= a.progress:
                say("progress", f"bytes={n}")
                announced = True
                # From here on the test kills the server; bound the wait for its news.
                s.settimeout(a.timeout)
        say("end", f"bytes={n}", f"end={end}")
    elif a.mode == "slow-read":
        h = hashlib.sha256()
        n = 0
        while n < a.progress:
            data = s.recv(CHUNK)
            if not data:
                break
            h.update(data)
            n += len(data)
        say("paused", f"bytes={n}")
        time.sleep(a.pause)
        say("resumed")
        end = "eof"
        while True:
            try:
                data = s.recv(CHUNK)
            except OSError as e:
                end = errname(e)
                break
            if not data:
                break
            h.update(data)
            n += len(data)
        say("received", f"bytes={n}", f"sha256={h.hexdigest()}", f"end={end}")
    elif a.mode == "send":
        try:
            sha_out = send_all(s, a.bytes)
        except OSError as e:
            # The chain broke under the sender (a reset): say so, never a traceback.
            say("send-failed", f"end={errname(e)}")
            return 0
        s.shutdown(socket.SHUT_WR)
        say("sent", f"bytes={a.bytes}", f"sha256={sha_out}", "then=shutdown_wr")
        n, _, end = read_to_end(s)
        say("closed", f"bytes={n}", f"end={end}")
    elif a.mode == "upload-then-abort":
        sha_out = send_all(s, a.bytes)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        say("aborted", f"bytes={a.bytes}", f"sha256={sha_out}")
        return 0
    else:
        raise SystemExit(f"unknown mode {a.mode}")
    s.close()
    return 0


def local_port_safe(s):
    try:
        return local_port(s)
    except OSError:
        return "-"


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--host", required=True)
    sv.add_argument("--port", type=int, default=0)
    sv.add_argument("--mode", required=True)
    sv.add_argument("--bytes", type=int, default=0)
    sv.add_argument("--pause", type=float, default=0.0)
    cl = sub.add_parser("client")
    cl.add_argument("--host", required=True)
    cl.add_argument("--port", type=int, required=True)
    cl.add_argument("--mode", required=True)
    cl.add_argument("--bytes", type=int, default=0)
    cl.add_argument("--count", type=int, default=1)
    cl.add_argument("--progress", type=int, default=1 << 20)
    cl.add_argument("--pause", type=float, default=0.0)
    cl.add_argument("--timeout", type=float, default=30.0,
                    help="socket timeout: a hang becomes `timeout`, never a stuck test")
    a = ap.parse_args()
    if a.cmd == "serve":
        serve(a)
        return 0
    return client(a)


if __name__ == "__main__":
    sys.exit(main())
