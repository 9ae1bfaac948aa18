"""A SOCKS5 upstream that stalls part-way through the handshake, for the fault tests.

stall_upstream.py --host H --port P --mode M[,M...]   (modes taken in turn, per connection)
  greeting    read the method selection, never answer
  request     answer "no auth", read the CONNECT request, never answer
  partial     answer "no auth", read the request, send the first 3 bytes of a success
              reply, never the rest

Prints `listening on H:P`, then for every connection `accepted n=N` and, when the peer
(tunsocks) gives up, `closed n=N end=eof|<ERRNO>`: a stalled handshake must not be left
open on either side.
"""

import argparse
import errno
import socket
import threading


def say(*words):
    print(" ".join(str(w) for w in words), flush=True)


def serve_one(conn, n, mode):
    end = "eof"
    try:
        conn.recv(512)  # the method selection (tunsocks sends it in one segment)
        if mode != "greeting":
            conn.sendall(b"\x05\x00")
            conn.recv(512)  # the request
            if mode == "partial":
                conn.sendall(b"\x05\x00\x00")
        while True:  # stall: read until tunsocks gives up
            if not conn.recv(512):
                break
    except OSError as e:
        end = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    say("closed", f"n={n}", f"end={end}")
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", required=True)
    a = ap.parse_args()
    modes = a.mode.split(",")
    for m in modes:
        if m not in ("greeting", "request", "partial"):
            raise SystemExit(f"unknown mode {m}")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.host, a.port))
    s.listen(64)
    say(f"listening on {a.host}:{a.port}")
    n = 0
    while True:
        conn, _ = s.accept()
        n += 1
        mode = modes[(n - 1) % len(modes)]
        say("accepted", f"n={n}", f"mode={mode}")
        threading.Thread(target=serve_one, args=(conn, n, mode), daemon=True).start()


if __name__ == "__main__":
    main()
