"""A raw SOCKS5 CONNECT with ATYP 0x04 ([::1]) to a TCP echo server on [::1]."""
import sys

from socks_raw import CMD_CONNECT, Server, TcpEcho, check, echo_roundtrip, open5, say

srv = Server(sys.argv[1])
echo = TcpEcho("::1")
s, rep, bh, bp = open5(srv.addr, CMD_CONNECT, "::1", echo.addr[1])
check(rep == 0, f"CONNECT [::1]:{echo.addr[1]} got REP {rep:#04x}")
echo_roundtrip(s, b"v6 hello " * 1000)
s.close()
check(echo.accepted == 1 and echo.peers[0][0] == "::1",
      f"echo server saw {echo.peers}, expected one peer from ::1")
say(f"ATYP 0x04 CONNECT [::1]:{echo.addr[1]} relayed (BND {bh} {bp})")
