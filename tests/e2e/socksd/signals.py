"""SIGTERM drain of socksd (limits.drain_timeout_s = 2), with one relayed session open.

usage: signals.py ADDR PID LOG

Asserted: right after SIGTERM the open session still echoes and a new TCP connection
to the listener is refused (the listener is closed while draining); the process has
exited (zombie or gone) within drain_timeout_s + 3 s of the signal. The exit code is
checked by the shell, which is the parent.
"""
import os
import signal
import sys
import time

from socks_raw import Server, TcpEcho, check, connect5, echo_roundtrip, read_until_closed, say, tcp_connect

srv = Server(sys.argv[1], sys.argv[2], sys.argv[3])
echo = TcpEcho()
s = connect5(srv.addr, "127.0.0.1", echo.addr[1])
echo_roundtrip(s, b"before")


def exited(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


t0 = time.monotonic()
os.kill(srv.pid, signal.SIGTERM)
time.sleep(0.3)
echo_roundtrip(s, b"during the drain")
say("the open session still echoes during the drain")
try:
    n = tcp_connect(srv.addr, timeout=2)
    data, how = read_until_closed(n, 2)
    raise AssertionError(f"a new connection was accepted during the drain ({how}, {data.hex()})")
except (ConnectionRefusedError, ConnectionResetError):
    say("new connections are refused during the drain")
while not exited(srv.pid) and time.monotonic() - t0 < 5.0:
    time.sleep(0.05)
check(exited(srv.pid), "socksd still running 5 s after SIGTERM (drain_timeout_s is 2)")
say(f"socksd exited {time.monotonic() - t0:.1f}s after SIGTERM")
_, how = read_until_closed(s, 2)
check(how in ("eof", "reset"), "the drained session was left open by an exited process?")
