"""Bad input against socksd: each category ends with every connection it opened closed
by the server (none left hanging), no success reply to anything incomplete or malformed,
and sessions_open back to where it started. The shell then checks that a fresh client
is still served (curl + sha256) and that the process is alive.

usage: bad_input.py OPEN_ADDR OPEN_PID OPEN_LOG AUTH_ADDR AUTH_PID AUTH_LOG CATEGORY
  OPEN: no users; AUTH: --user alice:s3cret. Both run with handshake_timeout_s = 5.

categories:
  truncated       every proper prefix of every handshake shape (SOCKS5 no-auth with
                  IPv4/domain/IPv6 requests, SOCKS5 user/password, SOCKS4, SOCKS4a),
                  then EOF: closed, no request reply, no SOCKS4 grant.
  malformed       wrong versions, zero methods, HTTP and TLS bytes, bad RFC 1929 shapes,
                  an empty domain, RSV != 0, unterminated SOCKS4 USERID / SOCKS4a name of
                  64 KiB, 1 MiB of garbage after a greeting: closed (where the protocol
                  has a code for it, the code is checked in reply_codes).
  random          400 connections of seeded random bytes (seed printed; SEED=n to
                  replay), 50 at a time: each closed within the deadline.
  byte_at_a_time  a full SOCKS5 handshake + request, then data, one byte per write
                  (with and without user/password), and SOCKS4a likewise: all succeed
                  and the data is echoed.
  vanish          clients resetting mid-handshake (100) and mid-transfer (20 downloads,
                  20 uploads): sessions_open returns to its start and the destination
                  side of each vanished transfer is closed too.
  wrong_passwords 60 wrong passwords / unknown users: each gets a non-zero status and a
                  close; auth_failures grows by 60; the right password still works.
"""
import os
import random
import socket
import sys
import threading
import time

from socks_raw import (CMD_CONNECT, USERPASS, Server, TcpEcho, authenticate, check, connect5,
                       greeting, negotiate, read_reply4, read_reply5,
                       read_until_closed, recv_exact, request, request4, rst_close, say,
                       tcp_connect, userpass, wait_all_closed)

opn = Server(sys.argv[1], sys.argv[2], sys.argv[3])
auth = Server(sys.argv[4], sys.argv[5], sys.argv[6])
category = sys.argv[7]
echo = TcpEcho()
EP = echo.addr[1]


def send_then_eof(data, server=opn):
    s = tcp_connect(server.addr)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server may close before reading it all; that is an answer too
    return s


def sessions_back(server, start):
    server.wait_counter("sessions_open", lambda v: v <= start, 10)


start_open = opn.counters()["sessions_open"]
start_auth = auth.counters()["sessions_open"]

if category == "truncated":
    g = greeting([0])
    shapes = [
        ("s5-v4", opn, g + request(CMD_CONNECT, "127.0.0.1", EP), b"\x05\x00"),
        ("s5-domain", opn, g + request(CMD_CONNECT, "localhost", EP), b"\x05\x00"),
        ("s5-v6", opn, g + request(CMD_CONNECT, "::1", EP), b"\x05\x00"),
        ("s5-auth", auth, greeting([USERPASS]) + userpass("alice", "s3cret") + request(CMD_CONNECT, "127.0.0.1", EP),
         b"\x05\x02\x01\x00"),
        ("s4", opn, request4(1, "127.0.0.1", EP, b"fred"), b""),
        ("s4a", opn, request4(1, None, EP, b"fred", "localhost"), b""),
    ]
    conns, allowed = [], {}
    for name, server, msg, ok_prefix in shapes:
        for cut in range(1, len(msg)):
            label = f"{name}[:{cut}]"
            conns.append((send_then_eof(msg[:cut], server), label))
            allowed[label] = ok_prefix
    got = wait_all_closed(conns, 10, "truncated messages")
    for label, data in got.items():
        ok = allowed[label]
        if label.startswith("s4"):
            check(not (len(data) >= 2 and data[1] == 0x5A), f"{label}: SOCKS4 grant for a truncated request")
        else:
            rest = data[len(ok):] if data.startswith(ok) else data
            check(not (len(rest) >= 2 and rest[0] == 5 and rest[1] == 0),
                  f"{label}: success reply to a truncated request: {data.hex()}")
    say(f"{len(conns)} truncated handshakes: all closed, none granted")

elif category == "malformed":
    g = greeting([0])
    big = os.urandom(1 << 20)
    cases = [
        ("version 6", opn, b"\x06\x01\x00"),
        ("version 0", opn, b"\x00\x01\x00"),
        ("zero methods", opn, b"\x05\x00"),
        ("HTTP request", opn, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"),
        ("HTTP CONNECT", opn, b"CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\n"),
        ("TLS ClientHello", opn, bytes.fromhex("16030100a5010000a10303") + os.urandom(64)),
        ("request version 4 after a v5 greeting", opn, g + b"\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x50"),
        ("request RSV=0xff", opn, g + b"\x05\x01\xff\x01\x7f\x00\x00\x01" + EP.to_bytes(2, "big")),
        ("empty domain", opn, g + b"\x05\x01\x00\x03\x00\x00\x50"),
        ("domain with NUL", opn, g + b"\x05\x01\x00\x03\x0alocal\x00host" + EP.to_bytes(2, "big")),
        ("RFC1929 version 2", auth, greeting([USERPASS]) + b"\x02\x05alice\x06s3cret"),
        ("RFC1929 ulen 0", auth, greeting([USERPASS]) + b"\x01\x00\x06s3cret"),
        ("RFC1929 plen past the end", auth, greeting([USERPASS]) + b"\x01\x05alice\xffshort"),
        ("RFC1929 sent without negotiation", auth, userpass("alice", "s3cret")),
        ("user/password before method selection", auth, b"\x05\x01\x00" + userpass("alice", "s3cret")),
        ("SOCKS4 USERID without NUL, 64 KiB", opn, b"\x04\x01\x00\x50\x7f\x00\x00\x01" + b"A" * 65536),
        ("SOCKS4a name without NUL, 64 KiB", opn, b"\x04\x01\x00\x50\x00\x00\x00\x01fred\x00" + b"a" * 65536),
        ("SOCKS4a empty name", opn, b"\x04\x01\x00\x50\x00\x00\x00\x01\x00\x00"),
        ("SOCKS4 with SOCKS5 bytes", opn, b"\x04\x05\x01\x00"),
        ("1 MiB garbage after the greeting", opn, g + big),
        ("1 MiB garbage as methods", opn, b"\x05\xff" + big),
    ]
    conns = []
    for name, server, data in cases:
        s = tcp_connect(server.addr)
        s.settimeout(10)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conns.append((s, name))
    got = wait_all_closed(conns, 10, "malformed messages")
    for name, data in got.items():
        if name == "request RSV=0xff":
            continue  # RSV is reserved; a lenient server may serve it, either is fine
        granted = (len(data) >= 2 and data[0] == 0 and data[1] == 0x5A) or \
                  (len(data) >= 4 and data[:2] == b"\x05\x00" and data[2] == 5 and data[3] == 0) or \
                  (len(data) >= 6 and data[:4] == b"\x05\x02\x01\x00" and data[5] == 0)
        check(not granted, f"{name}: the server answered success: {data[:16].hex()}")
    say(f"{len(cases)} malformed messages: all closed, none granted")

elif category == "random":
    seed = int(os.environ.get("SEED", "20240601"))
    rng = random.Random(seed)
    say(f"random seed {seed}")
    total = 0
    for batch in range(8):
        conns = []
        for i in range(50):
            n = rng.randint(1, 600)
            data = bytearray(rng.getrandbits(8) for _ in range(n))
            data[0] = rng.choice([4, 5, 5, data[0]])
            if data[0] == 5 and n > 2 and rng.random() < 0.5:
                data[1] = min(data[1], n - 2)  # a greeting that parses, random after it
            server = auth if rng.random() < 0.25 else opn
            conns.append((send_then_eof(bytes(data), server), f"batch {batch} #{i} ({n} bytes)"))
        wait_all_closed(conns, 10, f"random batch {batch} (seed {seed})")
        total += len(conns)
    check(opn.alive() and auth.alive(), "socksd died on random bytes")
    say(f"{total} connections of random bytes: all closed")

elif category == "byte_at_a_time":
    def trickle(s, data):
        for b in data:
            s.send(bytes([b]))
            time.sleep(0.001)

    s = tcp_connect(opn.addr)
    trickle(s, greeting([0]))
    check(recv_exact(s, 2) == b"\x05\x00", "byte-at-a-time greeting: no-auth not chosen")
    trickle(s, request(CMD_CONNECT, "127.0.0.1", EP))
    rep, _, _ = read_reply5(s)
    check(rep == 0, f"byte-at-a-time request: REP {rep:#04x}")
    payload = bytes(range(200))
    trickle(s, payload)
    check(recv_exact(s, len(payload)) == payload, "byte-at-a-time data not echoed intact")
    s.close()
    say("SOCKS5 no-auth, one byte per write: handshake, request and data all fine")

    s = tcp_connect(auth.addr)
    trickle(s, greeting([USERPASS]))
    check(recv_exact(s, 2) == b"\x05\x02", "byte-at-a-time: user/password not chosen")
    trickle(s, userpass("alice", "s3cret"))
    check(recv_exact(s, 2) == b"\x01\x00", "byte-at-a-time: right password refused")
    trickle(s, request(CMD_CONNECT, "localhost", EP))
    rep, _, _ = read_reply5(s)
    check(rep == 0, f"byte-at-a-time auth request: REP {rep:#04x}")
    trickle(s, payload)
    check(recv_exact(s, len(payload)) == payload, "byte-at-a-time (auth) data not echoed intact")
    s.close()
    say("SOCKS5 user/password + domain request, one byte per write: fine")

    s = tcp_connect(opn.addr)
    trickle(s, request4(1, None, EP, b"fred", "localhost"))
    cd, _, _ = read_reply4(s)
    check(cd == 0x5A, f"byte-at-a-time SOCKS4a: CD {cd:#04x}")
    trickle(s, payload)
    check(recv_exact(s, len(payload)) == payload, "byte-at-a-time SOCKS4a data not echoed intact")
    s.close()
    say("SOCKS4a one byte per write: fine")

elif category == "vanish":
    # Mid-handshake.
    g = greeting([0])
    for i in range(100):
        s = tcp_connect(opn.addr)
        if i % 3 == 0:
            s.sendall(g[:2])
        elif i % 3 == 1:
            s.sendall(g)
            recv_exact(s, 2)
            s.sendall(request(CMD_CONNECT, "127.0.0.1", EP)[:5])
        else:
            s.sendall(g + request(CMD_CONNECT, "localhost", EP)[:6])
        rst_close(s)
    say("100 clients reset mid-handshake")

    # Mid-transfer: a source that streams forever, and a sink that never answers.
    src = socket.socket()
    src.bind(("127.0.0.1", 0))
    src.listen(64)
    ended = []
    lock = threading.Lock()

    def stream_forever(c):
        chunk = os.urandom(65536)
        try:
            while True:
                c.sendall(chunk)
        except OSError:
            pass
        with lock:
            ended.append(1)
        c.close()

    def sink(c):
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        with lock:
            ended.append(1)
        c.close()

    role = {"mode": stream_forever}

    def accept_loop():
        while True:
            try:
                c, _ = src.accept()
            except OSError:
                return
            threading.Thread(target=role["mode"], args=(c,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    sp = src.getsockname()[1]
    for _ in range(20):
        s = connect5(opn.addr, "127.0.0.1", sp)
        recv_exact(s, 100000, timeout=10)
        rst_close(s)
    say("20 downloads reset mid-transfer")
    time.sleep(0.3)
    role["mode"] = sink
    for _ in range(20):
        s = connect5(opn.addr, "127.0.0.1", sp)
        s.sendall(os.urandom(300000))
        rst_close(s)
    say("20 uploads reset mid-transfer")
    deadline = time.monotonic() + 10
    while len(ended) < 40 and time.monotonic() < deadline:
        time.sleep(0.1)
    check(len(ended) == 40, f"only {len(ended)} of 40 destination connections were closed after their clients vanished")
    say("every vanished client's destination connection was closed")

elif category == "wrong_passwords":
    before = auth.counters()["auth_failures"]
    for i in range(60):
        s = tcp_connect(auth.addr)
        check(negotiate(s, (USERPASS,)) == USERPASS, "user/password not chosen")
        user, pw = ("alice", f"wrong{i}") if i % 2 else (f"user{i}", "s3cret")
        st = authenticate(s, user, pw)
        check(st != 0, f"wrong credentials {user}:{pw} got status 0")
        _, how = read_until_closed(s, 5)
        check(how in ("eof", "reset"), f"connection left open after a failed auth ({user})")
        s.close()
    auth.wait_counter("auth_failures", lambda v: v >= before + 60, 5)
    s = tcp_connect(auth.addr)
    check(negotiate(s, (USERPASS,)) == USERPASS, "user/password not chosen")
    check(authenticate(s, "alice", "s3cret") == 0, "right password refused after 60 wrong ones")
    s.close()
    say("60 wrong passwords refused and counted; the right one still works")
else:
    raise SystemExit(f"unknown category {category}")

sessions_back(opn, start_open)
sessions_back(auth, start_auth)
say("sessions_open back to its start on both servers")
