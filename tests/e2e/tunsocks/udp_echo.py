"""UDP helpers of the tunsocks e2e tests.

  udp_echo.py serve PORT...        echo server on 0.0.0.0 and :: for each PORT (server ns);
                                   prints `listening` once all are bound.
  udp_echo.py roundtrip HOST PORT... one socket, to each HOST:PORT in turn, sizes 1, 512,
                                   1400, 8000: every reply byte-exact and from the address
                                   sent to; prints `ok N` with the number of datagrams.
  udp_echo.py limits HOST PORT     65000 bytes come back whole (about 45 fragments each
                                   way); 65500 bytes do not fit the relay with the SOCKS
                                   header and must not come back at all (not truncated).
  udp_echo.py load HOST PORT COUNT SOCKETS [MAX_SIZE]
                                   COUNT datagrams over SOCKETS sockets, each socket with
                                   one datagram in flight (the window: what keeps an
                                   unloaded path lossless); sizes 1..1400 (90 %),
                                   1401..9000 (9 %) and up to MAX_SIZE (1 %; default
                                   8000). No retry: a reply
                                   missing 5 s after the last one is lost. Every reply
                                   must be byte-exact and from HOST:PORT. Prints `sent N
                                   received N lost N bytes N sockets N ports LO-HI`; exits
                                   1 on any loss or wrong reply.
"""
import os
import random
import select
import socket
import sys

SIZES = (1, 512, 1400, 8000)


def _big_buffers(s):
    # Root may exceed net.core.rmem_max: the echo server must not be where load is lost.
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # SO_*BUFFORCE
        try:
            s.setsockopt(socket.SOL_SOCKET, force, 4 << 20)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, plain, 4 << 20)


def serve(ports):
    sockets = []
    for port in ports:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(family, socket.SOCK_DGRAM)
            _big_buffers(s)
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


def load(host, port, count, nsockets, max_size):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    rng = random.Random(count * 7919 + nsockets)
    sockets = []
    poller = select.epoll()
    for _ in range(nsockets):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setblocking(False)
        sockets.append(s)
        poller.register(s.fileno(), select.EPOLLIN)
    by_fd = {s.fileno(): s for s in sockets}
    pending = {}  # fd -> the payload in flight
    sent = received = total_bytes = 0
    wrong = []

    def send_next(s):
        nonlocal sent, total_bytes
        if sent >= count:
            return
        draw = rng.random()
        if draw < 0.9:
            size = rng.randint(1, 1400)
        elif draw < 0.99 or max_size <= 9000:
            size = rng.randint(1401, min(9000, max_size))
        else:
            size = rng.randint(9001, max_size)
        payload = rng.randbytes(size)
        s.sendto(payload, (host, port))
        pending[s.fileno()] = payload
        sent += 1
        total_bytes += size

    for s in sockets:
        send_next(s)
    while pending:
        events = poller.poll(5.0)
        if not events:
            break  # 5 s without a reply: what is still in flight is lost
        for fd, _ in events:
            s = by_fd[fd]
            while True:
                try:
                    data, peer = s.recvfrom(65535)
                except BlockingIOError:
                    break
                expected = pending.pop(fd, None)
                if peer[0] != host or peer[1] != port:
                    wrong.append(f"reply from {peer}, expected {host}:{port}")
                elif expected is None or data != expected:
                    wrong.append(f"reply of {len(data)} bytes is not the datagram in flight")
                else:
                    received += 1
                if fd not in pending:
                    send_next(s)
    ports = sorted(s.getsockname()[1] for s in sockets)
    lost = sent - received - len(wrong)
    print("sent", sent, "received", received, "lost", lost, "bytes", total_bytes,
          "sockets", nsockets, "ports", f"{ports[0]}-{ports[-1]}", flush=True)
    if wrong:
        sys.exit(f"{len(wrong)} wrong replies, first: {wrong[0]}")
    if lost or sent != count:
        sys.exit(f"{lost} of {sent} datagrams lost (sent {sent} of {count})")


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
             int(sys.argv[6]) if len(sys.argv) > 6 else 8000)
    elif sys.argv[1] == "limits":
        limits(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "serve":
        serve([int(p) for p in sys.argv[2:]])
    else:
        roundtrip(sys.argv[2], [int(p) for p in sys.argv[3:]])
