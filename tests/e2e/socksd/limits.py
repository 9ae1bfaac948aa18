"""Connection limits of socksd.

usage: limits.py ADDR PID LOG {per_client|global}
  per_client: limits.max_connections_per_client = 3
  global:     limits.max_connections = 4

Asserted: with the limit reached by relayed (echoing) CONNECT sessions, one more client
is refused clearly, i.e. within 3 s its connection is closed (EOF or RST) and it never
gets a success reply (a failure reply code before the close is fine); limit_refusals
grows; every existing session still echoes afterwards; for per_client, another client
address (127.0.0.2) is still served; once one session ends its slot is free again.
"""
import sys
import time

from socks_raw import (CMD_CONNECT, Fail, Server, TcpEcho, check, connect5, echo_roundtrip, greeting,
                       read_until_closed, request, say, tcp_connect)

srv = Server(sys.argv[1], sys.argv[2], sys.argv[3])
mode = sys.argv[4]
echo = TcpEcho()
EP = echo.addr[1]


def refused_clearly(source, what):
    try:
        s = tcp_connect(srv.addr, source=source)
    except ConnectionRefusedError:
        say(f"{what}: TCP connect refused")
        return
    try:
        s.sendall(greeting([0]) + request(CMD_CONNECT, "127.0.0.1", EP))
    except OSError:
        pass
    data, how = read_until_closed(s, 3)
    s.close()
    check(how in ("eof", "reset"), f"{what}: over the limit but the connection is still open after 3s")
    granted = len(data) >= 4 and data[:2] == b"\x05\x00" and data[2] == 5 and data[3] == 0
    check(not granted, f"{what}: over the limit but the CONNECT succeeded ({data.hex()})")
    say(f"{what}: closed ({how}) after {data.hex() or 'no bytes'}")


def open_until_ok(source, timeout=3.0):
    """A slot freed by a close is seen by the server a moment later: retry briefly."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect5(srv.addr, "127.0.0.1", EP, source=source)
        except (Fail, OSError) as e:
            if time.monotonic() > deadline:
                raise Fail(f"no free slot {timeout}s after a session ended: {e}")
            time.sleep(0.2)


before = srv.counters()["limit_refusals"]
if mode == "per_client":
    sources = ["127.0.0.1"] * 3
    extra = "127.0.0.1"
else:
    sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    extra = "127.0.0.6"

held = [connect5(srv.addr, "127.0.0.1", EP, source=src) for src in sources]
for i, s in enumerate(held):
    echo_roundtrip(s, f"held {i}".encode())
say(f"{len(held)} relayed sessions at the limit")

refused_clearly(extra, f"one more from {extra}")
refused_clearly(extra, f"and another from {extra}")
srv.wait_counter("limit_refusals", lambda v: v >= before + 2, 3)
for i, s in enumerate(held):
    echo_roundtrip(s, f"still held {i} ".encode() * 100)
say("every existing session still echoes")

if mode == "per_client":
    other = connect5(srv.addr, "127.0.0.1", EP, source="127.0.0.2")
    echo_roundtrip(other, b"another client")
    other.close()
    say("a client from another address is served")

held.pop(0).close()
s = open_until_ok(sources[0])
echo_roundtrip(s, b"slot reused")
held.append(s)
say("after one session ended, a new one got its slot")
for s in held:
    s.close()
