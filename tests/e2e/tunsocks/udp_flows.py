"""DNS-like UDP flows for the load test: every query from a new socket (a new source
port, so a new association in tunsocks), one small datagram each way.

udp_flows.py HOST PORT --flows N --seconds S [--first-port P]
  sends N queries paced over S seconds, collects the echoes as they come (a query counts
  as answered when its exact bytes come back); prints `flows sent=N answered=A
  seconds=T`. Then one more flow after them: `new_flow answered=yes|no ms=M`.
  --first-port P: query i is sent from port P+i and the new flow from P+N, so that every
  flow is a new source port (the kernel's own choice may repeat a recent port, which is
  then the same socket as far as tunsocks can tell).
"""

import argparse
import select
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--flows", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--first-port", type=int, default=0)
    a = ap.parse_args()
    dst = (a.host, a.port)
    pending = {}
    answered = 0

    def new_socket(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if a.first_port:
            s.bind(("0.0.0.0", a.first_port + i))
        return s

    def drain(timeout):
        nonlocal answered
        if not pending:
            return
        ready, _, _ = select.select(list(pending), [], [], timeout)
        for s in ready:
            try:
                data = s.recv(2048)
            except OSError:
                data = b""
            if data == pending[s]:
                answered += 1
            del pending[s]
            s.close()

    t0 = time.monotonic()
    for i in range(a.flows):
        s = new_socket(i)
        query = b"query %06d " % i + b"x" * 20
        s.setblocking(False)
        s.sendto(query, dst)
        pending[s] = query
        # Pace to S seconds; keep the number of open sockets bounded by draining.
        due = t0 + (i + 1) * a.seconds / a.flows
        while True:
            now = time.monotonic()
            drain(max(0.0, min(due - now, 0.01)) if now < due else 0)
            if time.monotonic() >= due:
                break
        if len(pending) > 1000:
            oldest = next(iter(pending))
            oldest.close()
            del pending[oldest]
    deadline = time.monotonic() + 2
    while pending and time.monotonic() < deadline:
        drain(0.1)
    for s in pending:
        s.close()
    print(f"flows sent={a.flows} answered={answered} seconds={time.monotonic() - t0:.1f}", flush=True)

    s = new_socket(a.flows)
    s.settimeout(1.0)
    t1 = time.monotonic()
    ok = "no"
    try:
        s.sendto(b"the new flow", dst)
        if s.recv(2048) == b"the new flow":
            ok = "yes"
    except OSError:
        pass
    print(f"new_flow answered={ok} ms={int((time.monotonic() - t1) * 1000)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
