"""Opens many TCP connections (through the TUN) and holds them: for the load and the
RLIMIT_NOFILE tests.

hold_many.py --host H --port P --count N [--release FILE] [--timeout S]
  connects N times (one after the other), sends one byte on each that connected; prints
  `opened ok=K failed=F errors=ERRNO:n,...` (a failed connect is counted by errno, never
  retried); then waits until FILE exists (or stdin closes without --release), checks that
  every held connection is still open (sends one byte, nothing read is EOF or an error):
  `alive ok=K dead=D`, closes them all and prints `closed`.
"""

import argparse
import collections
import errno
import os
import select
import socket
import sys
import time


def say(*words):
    print(" ".join(str(w) for w in words), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--release", required=True)
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()
    held = []
    errors = collections.Counter()
    for _ in range(a.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(a.timeout)
        try:
            s.connect((a.host, a.port))
            s.sendall(b"x")
            held.append(s)
        except OSError as e:
            name = "timeout" if isinstance(e, socket.timeout) else errno.errorcode.get(e.errno, str(e.errno))
            errors[name] += 1
            s.close()
    say("opened", f"ok={len(held)}", f"failed={sum(errors.values())}",
        "errors=" + (",".join(f"{k}:{v}" for k, v in sorted(errors.items())) or "none"))
    while not os.path.exists(a.release):
        time.sleep(0.1)
    alive = dead = 0
    for s in held:
        try:
            s.sendall(b"y")
            r, _, _ = select.select([s], [], [], 0)
            if r and not s.recv(1, socket.MSG_PEEK):
                dead += 1
            else:
                alive += 1
        except OSError:
            dead += 1
    say("alive", f"ok={alive}", f"dead={dead}")
    for s in held:
        s.close()
    say("closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
