"""UDP ASSOCIATE scenarios against socksd (raw SOCKS bytes, a UDP echo server here).

usage: udp.py ADDR PID LOG

Asserted, in order:
 1. UDP ASSOCIATE naming the client's UDP address gets REP 0x00 and a relay address.
 2. Echo round trips (1, 512 and 8192 payload bytes) through the relay: the reply comes
    from the relay's address, FRAG 0, and its header's source is the echo server's
    address and port; the payload is intact.
 3. ATYP domain `localhost`: the echo comes back, header source port = the echo port,
    address 127.0.0.1 / ::1 (or the name itself).
 4. FRAG != 0: no reply, the echo server never sees it, and the counter
    udp_datagrams_dropped increases (SIGUSR1).
 5. Datagrams with a valid header from another source port, and from another source
    IP (127.0.0.2), are ignored: nothing reaches the echo server, no reply anywhere.
 6. A second association that names 0.0.0.0:0 (the client does not know its address)
    relays for the first datagram's source.
 7. The session line: cmd=udp_associate reply=succeeded.
 8. After the control TCP connection closes: udp_associations_open goes back to what it
    was, a datagram to the old relay port gets no reply, never reaches the echo server,
    and the port is closed (ICMP port unreachable -> ECONNREFUSED on a connected socket).
"""
import socket
import sys

from socks_raw import (CMD_UDP, Server, UdpEcho, check, negotiate, parse_udp, read_reply5,
                       request, say, tcp_connect, udp_header)

srv = Server(sys.argv[1], sys.argv[2], sys.argv[3])
echo = UdpEcho("127.0.0.1")
EP = echo.addr[1]
try:  # the same port on ::1, so `localhost` works whichever family socksd picks
    echo6 = UdpEcho("::1", EP)
except OSError:
    echo6 = None


def udp_sock(host="127.0.0.1"):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((host, 0))
    return u


def associate(host, port):
    ctl = tcp_connect(srv.addr)
    check(negotiate(ctl) == 0, "no-auth not chosen")
    ctl.sendall(request(CMD_UDP, host, port))
    rep, rh, rp = read_reply5(ctl)
    check(rep == 0, f"UDP ASSOCIATE REP {rep:#04x}, expected 0x00")
    check(rp != 0, f"UDP ASSOCIATE relay port 0 ({rh}:{rp})")
    relay = ("127.0.0.1" if rh in ("0.0.0.0", "::") else rh, rp)
    say(f"UDP ASSOCIATE: relay at {rh}:{rp}")
    return ctl, relay


def expect_reply(u, relay, timeout=3.0):
    u.settimeout(timeout)
    try:
        d, src = u.recvfrom(65536)
    except socket.timeout:
        raise AssertionError("no UDP reply within %.1fs" % timeout)
    check(src[:2] == relay, f"reply came from {src[:2]}, not from the relay {relay}")
    return parse_udp(d)


def expect_silence(socks_, seconds=1.0):
    for u in socks_:
        u.settimeout(seconds)
        try:
            d, src = u.recvfrom(65536)
        except socket.timeout:
            continue
        except ConnectionRefusedError:
            continue
        raise AssertionError(f"unexpected datagram from {src}: {d[:40].hex()}")


def echo_saw(payload):
    return any(d == payload for d, _ in echo.seen) or (
        echo6 is not None and any(d == payload for d, _ in echo6.seen))


base = srv.counters()
u = udp_sock()
ctl, relay = associate("127.0.0.1", u.getsockname()[1])
cport = ctl.getsockname()[1]

# 2. round trips
for n in (1, 512, 8192):
    payload = bytes((i * 7 + n) % 256 for i in range(n))
    u.sendto(udp_header("127.0.0.1", EP) + payload, relay)
    frag, h, p, data = expect_reply(u, relay)
    check(frag == 0, f"reply FRAG {frag}")
    check((h, p) == ("127.0.0.1", EP), f"reply header source {h}:{p}, expected 127.0.0.1:{EP}")
    check(data == payload, f"{n}-byte payload altered")
say("UDP echo round trips (1/512/8192 bytes), header source = echo server")

# 3. domain ATYP
u.sendto(udp_header("localhost", EP) + b"by-name", relay)
frag, h, p, data = expect_reply(u, relay)
check(data == b"by-name" and p == EP and h in ("127.0.0.1", "::1", "localhost"),
      f"domain ATYP reply: {h}:{p} {data!r}")
say(f"ATYP domain 'localhost' round trip, reply header source {h}:{p}")

# 4. FRAG != 0
dropped = srv.counters()["udp_datagrams_dropped"]
u.sendto(udp_header("127.0.0.1", EP, frag=1) + b"fragment-1", relay)
expect_silence([u], 1.0)
check(not echo_saw(b"fragment-1"), "a FRAG=1 datagram was forwarded")
srv.wait_counter("udp_datagrams_dropped", lambda v: v > dropped, 3)
say("FRAG=1 dropped and counted in udp_datagrams_dropped")

# 5. other source port / other source IP
other_port = udp_sock()
other_ip = udp_sock("127.0.0.2")
other_port.sendto(udp_header("127.0.0.1", EP) + b"intruder-port", relay)
other_ip.sendto(udp_header("127.0.0.1", EP) + b"intruder-ip", relay)
expect_silence([u, other_port, other_ip], 1.0)
check(not echo_saw(b"intruder-port"), "a datagram from another source port was forwarded")
check(not echo_saw(b"intruder-ip"), "a datagram from another source IP was forwarded")
u.sendto(udp_header("127.0.0.1", EP) + b"still-mine", relay)
check(expect_reply(u, relay)[3] == b"still-mine", "association broken after intruders")
say("datagrams from another port and another IP ignored; the client's still relayed")

# 6. association naming 0.0.0.0:0
u2 = udp_sock()
ctl2, relay2 = associate("0.0.0.0", 0)
u2.sendto(udp_header("127.0.0.1", EP) + b"unknown-source", relay2)
check(expect_reply(u2, relay2)[3] == b"unknown-source", "0.0.0.0:0 association did not relay")
ctl2.close()
say("association for 0.0.0.0:0 relays the first source's datagrams")

# 7/8. close the control connection: the association goes away
ctl.close()
f = srv.wait_session(lambda f: f.get("client", "").endswith(f":{cport}"), what="UDP session line")
check(f.get("cmd") == "udp_associate" and f.get("reply") == "succeeded", f"session line: {f}")
say(f"session line {f}")
srv.wait_counter("udp_associations_open", lambda v: v <= base["udp_associations_open"], 5)
u.connect(relay)
refused = False
for _ in range(3):
    try:
        u.send(udp_header("127.0.0.1", EP) + b"after-close")
    except ConnectionRefusedError:
        refused = True
        break
    u.settimeout(0.7)
    try:
        d = u.recv(65536)
        raise AssertionError(f"a reply arrived after the control connection closed: {d[:40].hex()}")
    except socket.timeout:
        pass
    except ConnectionRefusedError:
        refused = True
        break
check(not echo_saw(b"after-close"), "a datagram sent after the close was forwarded")
check(refused, "the relay port still accepts datagrams after the association ended (no ICMP unreachable)")
say("after the close: no reply, nothing forwarded, relay port closed (ECONNREFUSED)")
