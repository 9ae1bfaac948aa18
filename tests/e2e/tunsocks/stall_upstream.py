"""A SOCKS5 upstream that stalls part-way through the handshake, or dribbles it, for the
fault tests. It never contacts a destination: the CONNECT request's port picks what it does.

stall_upstream.py --host H --port P --modes PORT=MODE[,PORT=MODE...]
  It reads the method selection and answers "no auth" one byte per segment (20 ms apart),
  reads the request, then by its DST.PORT (any other port, and UDP ASSOCIATE: request):
  request     never answers
  partial     sends the first 3 bytes of a success reply, never the rest
  dribble     works, but cuts its answer: a success reply with a domain BND.ADDR one byte
              per segment, its last byte in one segment with the first payload ("hello: "),
              then plays the destination itself and echoes whatever comes

Prints `listening on H:P`, then per connection `accepted n=N`, `request n=N port=P
mode=M` and, when the peer (tunsocks) ends it, `closed n=N end=eof|<ERRNO>`: a stalled
handshake must not be left open on either side.
"""

import argparse
import errno
import socket
import struct
import threading
import time

MODES = ("request", "partial", "dribble")


def say(*words):
    print(" ".join(str(w) for w in words), flush=True)


def dribble(conn, data):
    for i in range(len(data)):
        conn.sendall(data[i:i + 1])
        time.sleep(0.02)


def request_port(req):
    """DST.PORT of a SOCKS5 request (the last two bytes), or None if it is cut short."""
    return struct.unpack("!H", req[-2:])[0] if len(req) >= 10 else None


def serve_one(conn, n, modes):
    end = "eof"
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        conn.recv(512)  # the method selection (tunsocks sends it in one segment)
        dribble(conn, b"\x05\x00")
        req = conn.recv(512)
        port = request_port(req)
        mode = modes.get(port, "request")
        say("request", f"n={n}", f"port={port}", f"mode={mode}")
        if mode == "partial":
            conn.sendall(b"\x05\x00\x00")
        elif mode == "dribble":
            name = b"relay.example"
            reply = b"\x05\x00\x00\x03" + bytes([len(name)]) + name + b"\x04\x38"
            dribble(conn, reply[:-1])
            conn.sendall(reply[-1:] + b"hello: ")
        while True:  # stall (or echo, once dribbled)
            data = conn.recv(65536)
            if not data:
                break
            if mode == "dribble":
                conn.sendall(data)
    except OSError as e:
        end = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    say("closed", f"n={n}", f"end={end}")
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--modes", required=True)
    a = ap.parse_args()
    modes = {}
    for item in a.modes.split(","):
        port, mode = item.split("=")
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode}")
        modes[int(port)] = mode
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.host, a.port))
    s.listen(64)
    say(f"listening on {a.host}:{a.port}")
    n = 0
    while True:
        conn, _ = s.accept()
        n += 1
        say("accepted", f"n={n}")
        threading.Thread(target=serve_one, args=(conn, n, modes), daemon=True).start()


if __name__ == "__main__":
    main()
