"""Writes malformed IP packets into a TUN device from the kernel side (an AF_PACKET socket
on the interface: the bytes reach the TUN reader exactly as written, which the routing
stack would never produce). For the malformed-packet fault test.

bad_packets.py --dev tun0 exact --count N
    N packets of each malformed kind, paced so the TUN queue never overflows; prints
    `sent kind=K count=N` per kind (the reader's per-reason counters must match).
bad_packets.py --dev tun0 flood --seconds S
    every kind plus random garbage and mangled TCP/UDP headers, as fast as the socket
    takes them, for S seconds; prints `flooded packets=N errors=E`.
"""

import argparse
import os
import random
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
SRC4 = bytes([172, 19, 0, 1])
DST4 = bytes([10, 202, 0, 2])
SRC6 = bytes.fromhex("fdfedcba987600000000000000000001")
DST6 = bytes.fromhex("fd010202000000000000000000000002")


def ipv4(payload=b"", proto=6, ihl=5, total=None, version=4):
    total = 20 + len(payload) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, 1, 0, 64, proto, 0, SRC4, DST4)
    return hdr + payload


def ipv6(payload=b"", nxt=6, plen=None):
    plen = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", 6 << 28, plen, nxt, 64, SRC6, DST6) + payload


def ext_chain(n):
    """n destination-options headers (8 bytes each) in a row, then TCP."""
    out = b""
    for i in range(n):
        out += struct.pack("!BB6s", 60 if i + 1 < n else 6, 0, b"\x01\x04\x00\x00\x00\x00")
    return out + b"\x00" * 20


# kind -> (ethertype, packet): each trips exactly one reason of tunsocks' classifier.
KINDS = {
    "too_short": (ETH_P_IP, bytes([0x45]) + b"\x00" * 12),
    "bad_version": (ETH_P_IP, ipv4(b"\x00" * 20, version=5)),
    "bad_header_length": (ETH_P_IP, ipv4(b"\x00" * 20, ihl=4)),
    "bad_total_length": (ETH_P_IP, ipv4(b"\x00" * 20, total=1400)),
    "too_many_extension_headers": (ETH_P_IPV6, ipv6(ext_chain(40), nxt=60)),
}


def garbage(rng):
    """Random bytes behind a plausible IP header: truncated TCP/UDP headers, bad
    checksums, odd flags, fragments. Whatever tunsocks does with them, it must survive."""
    choice = rng.randrange(5)
    body = rng.randbytes(rng.randrange(0, 120))
    if choice == 0:
        return ETH_P_IP, rng.randbytes(rng.randrange(1, 200))
    if choice == 1:
        return ETH_P_IP, ipv4(body, proto=rng.choice([6, 17, 1]))
    if choice == 2:
        pkt = bytearray(ipv4(body, proto=rng.choice([6, 17])))
        pkt[6:8] = struct.pack("!H", rng.randrange(0, 0x4000))  # fragment bits
        return ETH_P_IP, bytes(pkt)
    if choice == 3:
        return ETH_P_IPV6, ipv6(body, nxt=rng.choice([6, 17, 58, 0, 44, 43]))
    return ETH_P_IPV6, rng.randbytes(rng.randrange(1, 200))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("exact")
    ex.add_argument("--count", type=int, default=100)
    fl = sub.add_parser("flood")
    fl.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)
    if a.cmd == "exact":
        for kind, (proto, pkt) in KINDS.items():
            for _ in range(a.count):
                s.sendto(pkt, (a.dev, proto))
                time.sleep(0.0005)
            print(f"sent kind={kind} count={a.count}", flush=True)
        return 0
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    kinds = list(KINDS.values())
    n = errors = 0
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        for _ in range(256):
            proto, pkt = kinds[n % len(kinds)] if n % 2 else garbage(rng)
            try:
                s.sendto(pkt, (a.dev, proto))
            except OSError:
                errors += 1  # ENOBUFS: the TUN queue is full, which is the point
            n += 1
    print(f"flooded packets={n} errors={errors}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
