"""Idle and half-open handshakes against socksd with limits.handshake_timeout_s = 1.

usage: handshake_timeout.py ADDR PID LOG

Asserted: 300 connections that stop mid-handshake (100 silent, 100 after one greeting
byte, 100 after a greeting and half a request), left open by the client, are all closed
by the server within 8 s; handshake_timeouts grows by at least 300; sessions_open
returns to its start; and an established CONNECT idle for 3 s (longer than the
handshake timeout) is not cut and still echoes.
"""
import sys
import time

from socks_raw import (CMD_CONNECT, Server, TcpEcho, connect5, echo_roundtrip, greeting, request, say,
                       tcp_connect, wait_all_closed)


srv = Server(sys.argv[1], sys.argv[2], sys.argv[3])
echo = TcpEcho()
c0 = srv.counters()
established = connect5(srv.addr, "127.0.0.1", echo.addr[1])

conns = []
t0 = time.monotonic()
for i in range(300):
    s = tcp_connect(srv.addr)
    if i % 3 == 1:
        s.sendall(b"\x05")
    elif i % 3 == 2:
        s.sendall(greeting([0]) + request(CMD_CONNECT, "127.0.0.1", echo.addr[1])[:4])
    conns.append((s, f"#{i} ({['silent', 'one byte', 'half request'][i % 3]})"))
say(f"300 half-open handshakes opened in {time.monotonic() - t0:.1f}s")
wait_all_closed(conns, 8, "half-open handshakes")
say(f"all 300 closed by the server {time.monotonic() - t0:.1f}s after the first")
srv.wait_counter("handshake_timeouts", lambda v: v >= c0["handshake_timeouts"] + 300, 5)
say("handshake_timeouts counted them")

time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
echo_roundtrip(established, b"idle but established " * 100)
established.close()
say("an established session idle past the handshake timeout still echoes")
srv.wait_counter("sessions_open", lambda v: v <= c0["sessions_open"], 5)
