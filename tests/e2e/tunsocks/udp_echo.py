"""UDP helpers of the tunsocks e2e tests.

  udp_echo.py serve PORT...        echo server on 0.0.0.0 and :: for each PORT (server ns);
                                   prints `listening` once all are bound.
  udp_echo.py roundtrip HOST PORT... one socket, to each HOST:PORT in turn, sizes 1, 512,
                                   1400, 8000: every reply byte-exact and from the address
                                   sent to; prints `ok N` with the number of datagrams.
  udp_echo.py limits HOST PORT     65000 bytes come back whole (about 45 fragments each
                                   way); 65500 bytes do not fit the relay with the SOCKS
                                   header and must not come back at all (not truncated).
"""
import os
import select
import socket
import sys

SIZES = (1, 512, 1400, 8000)


def serve(ports):
    sockets = []
    for port in ports:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            sockets.append(s)
    print("listening", flush=True)
    while True:
        ready, _, _ = select.select(sockets, [], [])
        for s in ready:
            data, peer = s.recvfrom(65535)
            s.sendto(data, peer)
            print("echo", len(data), peer[0], peer[1], flush=True)


def roundtrip(host, ports):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    count = 0
    for port in ports:
        for size in SIZES:
            payload = os.urandom(size)
            # The first datagram waits while the association is set up; a lost one is
            # retried (UDP), a wrong one is an error at once.
            for attempt in range(5):
                s.sendto(payload, (host, port))
                try:
                    data, peer = s.recvfrom(65535)
                except socket.timeout:
                    continue
                if peer[0] != host or peer[1] != port:
                    sys.exit(f"reply from {peer}, expected {host}:{port}")
                if data != payload:
                    sys.exit(f"reply of {len(data)} bytes differs from the {size} sent")
                break
            else:
                sys.exit(f"no reply to {size} bytes from {host}:{port}")
            count += 1
    print("ok", count, s.getsockname()[1], flush=True)


def limits(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(2.0)
    payload = os.urandom(65000)
    for attempt in range(5):
        s.sendto(payload, (host, port))
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        if data != payload or peer[0] != host:
            sys.exit(f"65000 bytes: got {len(data)} bytes from {peer}")
        break
    else:
        sys.exit("no reply to 65000 bytes")
    s.sendto(os.urandom(65500), (host, port))
    try:
        data, peer = s.recvfrom(65535)
        sys.exit(f"65500 bytes: a reply of {len(data)} bytes came back")
    except socket.timeout:
        pass
    print("ok limits", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "limits":
        limits(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "serve":
        serve([int(p) for p in sys.argv[2:]])
    else:
        roundtrip(sys.argv[2], [int(p) for p in sys.argv[3:]])
