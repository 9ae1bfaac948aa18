"""BIND scenarios against a socksd started with --enable-bind (raw SOCKS bytes).

usage: bind.py ADDR PID LOG {relay|wrong_host|socks4|timeout}

relay       SOCKS5 BIND for 127.0.0.1: the first reply names a listening address and a
            port; a peer that connects there from 127.0.0.1 gets the second reply, which
            names the peer's own address and port; bytes then flow both ways, EOF is
            relayed, and the session line says cmd=bind reply=succeeded with exact
            up=/down=.
wrong_host  SOCKS5 BIND for 127.0.0.1; a peer connects from 127.0.0.2 instead. Asserted:
            no success reply names that peer, and nothing it sends reaches the client;
            if the server keeps the BIND open (no second reply), a later peer from
            127.0.0.1 is then accepted and relayed; if it answers, the answer is a
            failure code and the control connection is closed.
socks4      the same two-reply BIND in SOCKS4 (CD 0x5A twice; DSTIP 0 means the proxy's).
timeout     with limits.bind_timeout_s = 1 and no peer: the second reply is 0x06 (TTL
            expired, the contract's timeout code) within 5 s, then the connection closes.
"""
import socket
import sys
import time

from socks_raw import (CMD_BIND, Server, check, negotiate, read_reply4, read_reply5,
                       read_until_closed, recv_exact, request, request4, say, tcp_connect)

srv = Server(sys.argv[1], sys.argv[2], sys.argv[3])
mode = sys.argv[4]


def connect_host(h):
    return "127.0.0.1" if h in ("0.0.0.0", "::") else h


def bind5(expect_host="127.0.0.1"):
    ctl = tcp_connect(srv.addr)
    check(negotiate(ctl) == 0, "no-auth not chosen")
    ctl.sendall(request(CMD_BIND, expect_host, 0))
    rep, h, p = read_reply5(ctl)
    check(rep == 0, f"first BIND reply REP {rep:#04x}, expected 0x00")
    check(p != 0, f"first BIND reply names port 0 ({h}:{p})")
    say(f"first BIND reply: listening on {h}:{p}")
    return ctl, connect_host(h), p


def relay_both_ways(ctl, peer):
    down = bytes(range(256)) * 256  # peer -> client, 64 KiB
    up = b"client-to-peer " * 3000
    peer.sendall(down)
    check(recv_exact(ctl, len(down)) == down, "peer->client bytes differ")
    ctl.sendall(up)
    check(recv_exact(peer, len(up)) == up, "client->peer bytes differ")
    peer.shutdown(socket.SHUT_WR)
    rest, how = read_until_closed(ctl, 5)
    check(rest == b"" and how == "eof", f"peer's EOF not relayed to the client ({how}, {len(rest)} extra bytes)")
    ctl.close()
    rest, how = read_until_closed(peer, 5)
    check(how in ("eof", "reset"), "client's close not relayed to the peer")
    peer.close()
    return len(up), len(down)


if mode == "relay":
    ctl, h, p = bind5()
    cport = ctl.getsockname()[1]
    peer = tcp_connect((h, p), source="127.0.0.1")
    rep, h2, p2 = read_reply5(ctl)
    check(rep == 0, f"second BIND reply REP {rep:#04x}, expected 0x00")
    check((h2, p2) == peer.getsockname()[:2],
          f"second reply names {h2}:{p2}, the peer is {peer.getsockname()[:2]}")
    say(f"second BIND reply names the peer {h2}:{p2}")
    nup, ndown = relay_both_ways(ctl, peer)
    f = srv.wait_session(lambda f: f.get("client", "").endswith(f":{cport}"), what="BIND session line")
    check(f.get("cmd") == "bind" and f.get("reply") == "succeeded", f"session line: {f}")
    check(f.get("up") == str(nup) and f.get("down") == str(ndown),
          f"session line up={f.get('up')} down={f.get('down')}, relayed up={nup} down={ndown}")
    say(f"BIND relayed both ways, session line {f}")

elif mode == "wrong_host":
    ctl, h, p = bind5("127.0.0.1")
    intruder = None
    try:
        intruder = tcp_connect((h, p), source="127.0.0.2")
        intruder.sendall(b"INTRUDER")
    except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError) as e:
        say(f"the peer from the wrong host was cut at once ({type(e).__name__})")
    data, how = read_until_closed(ctl, 2.0)
    check(b"INTRUDER" not in data, "bytes of the peer from the wrong host reached the client")
    if data:
        check(len(data) >= 2 and data[0] == 5, f"unexpected bytes on the control connection: {data.hex()}")
        check(data[1] != 0, f"success reply for a peer from the wrong host: {data.hex()}")
        check(how in ("eof", "reset"), "failure reply but the control connection stays open")
        say(f"wrong host refused with REP {data[1]:#04x}, control closed")
    else:
        check(how == "open", f"control connection closed ({how}) without a reply")
        if intruder is not None:
            _, ihow = read_until_closed(intruder, 3.0)
            say(f"wrong host got no reply; its connection ended: {ihow}")
        # The BIND is still pending: the expected host now gets through.
        peer = tcp_connect((h, p), source="127.0.0.1")
        rep, h2, p2 = read_reply5(ctl)
        check(rep == 0 and (h2, p2) == peer.getsockname()[:2],
              f"after the wrong host, the right peer got REP {rep:#04x} naming {h2}:{p2}")
        relay_both_ways(ctl, peer)
        say("the right host was accepted after the wrong one and relayed")
    if intruder is not None:
        intruder.close()

elif mode == "socks4":
    ctl = tcp_connect(srv.addr)
    ctl.sendall(request4(2, "127.0.0.1", 0, b"fred"))
    cd, p, h = read_reply4(ctl)
    check(cd == 0x5A, f"first SOCKS4 BIND reply CD {cd:#04x}, expected 0x5A")
    check(p != 0, "first SOCKS4 BIND reply names port 0")
    h = srv.addr[0] if h == "0.0.0.0" else h
    peer = tcp_connect((h, p), source="127.0.0.1")
    cd, p2, h2 = read_reply4(ctl)
    check(cd == 0x5A, f"second SOCKS4 BIND reply CD {cd:#04x}, expected 0x5A")
    say(f"SOCKS4 BIND: listening {h}:{p}, peer reply names {h2}:{p2} (peer {peer.getsockname()})")
    relay_both_ways(ctl, peer)
    say("SOCKS4 BIND relayed both ways")

elif mode == "timeout":
    ctl, h, p = bind5()
    t0 = time.monotonic()
    rep, _, _ = read_reply5(ctl, timeout=5)
    check(rep == 0x06, f"BIND with no peer: second reply REP {rep:#04x}, expected 0x06 (timeout)")
    _, how = read_until_closed(ctl, 3)
    check(how in ("eof", "reset"), "connection not closed after the BIND timeout reply")
    say(f"BIND timed out after {time.monotonic() - t0:.1f}s with REP 0x06")
else:
    raise SystemExit(f"unknown mode {mode}")
