"""Reply codes of socksd, raw SOCKS bytes.

usage: reply_codes.py MODE ADDR PID LOG [ARGS]
  open   ADDR PID LOG            (no users, no --enable-bind, --allow-private)
  auth   ADDR PID LOG            (--user alice:s3cret)
  rules  ADDR PID LOG DENY_PORT  (a rule denies 127.0.0.1:DENY_PORT and *.blocked.example)

Every failure reply is followed by the server closing the connection (asserted).
"""
import sys

from socks_raw import (CMD_BIND, CMD_CONNECT, GSSAPI, NO_ACCEPTABLE, NO_AUTH, USERPASS, Server,
                       TcpEcho, authenticate, check, echo_roundtrip, free_port,
                       negotiate, open5, read_reply4, read_reply5, read_until_closed, request,
                       request4, say, tcp_connect, userpass, recv_exact)

mode, srv = sys.argv[1], Server(sys.argv[2], sys.argv[3], sys.argv[4])


def closed_after(s, what):
    rest, how = read_until_closed(s, 5)
    check(how in ("eof", "reset"), f"{what}: connection still open 5s after the failure reply")
    s.close()


def expect5(cmd, host, port, want, what, atyp=None, auth=None):
    s = tcp_connect(srv.addr)
    if auth:
        check(negotiate(s, (USERPASS,)) == USERPASS, "user/password not chosen")
        check(authenticate(s, *auth) == 0, "right password refused")
    else:
        check(negotiate(s) == NO_AUTH, "no-auth not chosen")
    s.sendall(request(cmd, host, port, atyp_override=atyp))
    rep, _, _ = read_reply5(s)
    check(rep == want, f"{what}: REP {rep:#04x}, expected {want:#04x}")
    cport = s.getsockname()[1]
    closed_after(s, what)
    say(f"{what}: REP {rep:#04x} and close")
    return cport


def expect4(cmd, ip, port, want, what, domain=None):
    s = tcp_connect(srv.addr)
    s.sendall(request4(cmd, ip, port, b"fred", domain))
    cd, _, _ = read_reply4(s)
    check(cd == want, f"{what}: CD {cd:#04x}, expected {want:#04x}")
    closed_after(s, what)
    say(f"{what}: CD {cd:#04x} and close")


def expect_method(methods, want, what):
    s = tcp_connect(srv.addr)
    m = negotiate(s, methods)
    check(m == want, f"{what}: method {m:#04x}, expected {want:#04x}")
    if want == NO_ACCEPTABLE:
        closed_after(s, what)
    say(f"{what}: method {m:#04x}")
    return s


if mode == "open":
    closed = free_port()
    cport = expect5(CMD_CONNECT, "127.0.0.1", closed, 0x05, "CONNECT to a closed port")
    f = srv.wait_session(lambda f: f.get("client", "").endswith(f":{cport}"), what="refused session line")
    check(f.get("reply") == "connection_refused" and f.get("cmd") == "connect", f"session line: {f}")
    say(f"session line {f}")
    expect4(1, "127.0.0.1", closed, 0x5B, "SOCKS4 CONNECT to a closed port")
    expect5(CMD_CONNECT, "nonexistent.invalid", 80, 0x04, "CONNECT to an unresolvable name")
    expect4(1, None, 80, 0x5B, "SOCKS4a CONNECT to an unresolvable name", domain="nonexistent.invalid")
    expect5(0x09, "127.0.0.1", 80, 0x07, "unknown command 0x09")
    expect5(0x00, "127.0.0.1", 80, 0x07, "unknown command 0x00")
    expect5(CMD_CONNECT, "127.0.0.1", 80, 0x08, "unknown ATYP 0x05", atyp=0x05)
    expect5(CMD_CONNECT, "127.0.0.1", 80, 0x08, "unknown ATYP 0x00", atyp=0x00)
    expect5(CMD_BIND, "127.0.0.1", 0, 0x07, "BIND without --enable-bind")
    expect4(2, "127.0.0.1", 0, 0x5B, "SOCKS4 BIND without --enable-bind")
    expect4(9, "127.0.0.1", 80, 0x5B, "SOCKS4 unknown command 9")
    expect_method((GSSAPI,), NO_ACCEPTABLE, "only GSSAPI offered")
    echo = TcpEcho()
    s, rep, _, _ = open5(srv.addr, CMD_CONNECT, "127.0.0.1", echo.addr[1])
    check(rep == 0, f"CONNECT to a live port: REP {rep:#04x}")
    echo_roundtrip(s, b"still fine")
    s.close()
    say("a CONNECT to a live port still succeeds")

elif mode == "auth":
    before = srv.counters()["auth_failures"]
    expect_method((NO_AUTH,), NO_ACCEPTABLE, "no-auth offered when auth is required")
    s = expect_method((NO_AUTH, USERPASS), USERPASS, "no-auth and user/password offered")
    check(authenticate(s, "alice", "s3cret") == 0, "right password refused")
    s.close()
    for user, pw, what in (("alice", "wrong", "wrong password"), ("mallory", "s3cret", "unknown user"),
                           ("alice", "s3cret" + "x" * 200, "long wrong password"), ("alice", "S3CRET", "case differs")):
        s = tcp_connect(srv.addr)
        check(negotiate(s, (USERPASS,)) == USERPASS, "user/password not chosen")
        st = authenticate(s, user, pw)
        check(st != 0, f"{what}: RFC 1929 status 0 (success)")
        closed_after(s, what)
        say(f"{what}: status {st:#04x} and close")
    # A request after a failed auth must not be served even if the server were slow to close.
    s = tcp_connect(srv.addr)
    check(negotiate(s, (USERPASS,)) == USERPASS, "user/password not chosen")
    s.sendall(userpass("alice", "nope") + request(CMD_CONNECT, "127.0.0.1", 9))
    st = recv_exact(s, 2)
    check(st[1] != 0, "wrong password: success status")
    rest, how = read_until_closed(s, 5)
    check(how in ("eof", "reset") and rest == b"", f"pipelined request after a failed auth answered: {rest.hex()}")
    say("a request pipelined after a failed auth is not answered")
    echo = TcpEcho()
    # SOCKS4 cannot carry a password: with users configured it is rejected.
    expect4(1, "127.0.0.1", echo.addr[1], 0x5B, "SOCKS4 CONNECT on a server with users")
    expect4(1, None, echo.addr[1], 0x5B, "SOCKS4a CONNECT on a server with users", domain="localhost")
    check(echo.accepted == 0, "a SOCKS4 request on a server with users reached the destination")
    s = tcp_connect(srv.addr)
    check(negotiate(s, (USERPASS,)) == USERPASS, "user/password not chosen")
    check(authenticate(s, "alice", "s3cret") == 0, "right password refused")
    s.sendall(request(CMD_CONNECT, "127.0.0.1", echo.addr[1]))
    rep, _, _ = read_reply5(s)
    check(rep == 0, f"authenticated CONNECT: REP {rep:#04x}")
    echo_roundtrip(s, b"authenticated")
    s.close()
    say("right password: CONNECT relayed")
    srv.wait_counter("auth_failures", lambda v: v >= before + 5, 3)
    say("auth_failures counted every failure")

elif mode == "rules":
    deny_port = int(sys.argv[5])
    before = srv.counters()["denied"]
    expect5(CMD_CONNECT, "127.0.0.1", deny_port, 0x02, "CONNECT denied by a destination rule")
    expect4(1, "127.0.0.1", deny_port, 0x5B, "SOCKS4 CONNECT denied by a rule")
    expect5(CMD_CONNECT, "www.blocked.example", 80, 0x02, "CONNECT denied by a domain rule")
    srv.wait_counter("denied", lambda v: v >= before + 3, 3)
    say("denied counted")
    echo = TcpEcho()
    s, rep, _, _ = open5(srv.addr, CMD_CONNECT, "127.0.0.1", echo.addr[1])
    check(rep == 0, f"allowed CONNECT: REP {rep:#04x}")
    echo_roundtrip(s, b"allowed")
    s.close()
    say("a CONNECT the rules allow still succeeds")
else:
    raise SystemExit(f"unknown mode {mode}")
