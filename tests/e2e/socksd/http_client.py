"""HTTP/1.0 GET helpers for the real-client tests.

  pysocks TYPE PROXY URL_HOST PORT PATH OUT [USER PASS]
      fetch through python3-socks (the Debian package's `import socks`); TYPE is
      socks4, socks4a, socks5 or socks5h (the `a`/`h` forms hand the name to the proxy).
      Prints the local port of the connection to the proxy.
  split RAW OUT
      strip the HTTP head from a raw response (as ncat prints it), check the status 200.
"""

import sys


def body_of(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        sys.exit(f"no end of HTTP head in {len(raw)} bytes")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        sys.exit(f"HTTP status is not 200: {status!r}")
    return body


def pysocks(kind, proxy, host, port, path, out, user=None, password=None):
    import socks  # python3-socks

    ptype = {"socks4": socks.SOCKS4, "socks4a": socks.SOCKS4,
             "socks5": socks.SOCKS5, "socks5h": socks.SOCKS5}[kind]
    rdns = kind in ("socks4a", "socks5h")
    phost, _, pport = proxy.rpartition(":")
    s = socks.socksocket()
    s.settimeout(30)
    s.set_proxy(ptype, phost.strip("[]"), int(pport), rdns=rdns, username=user, password=password)
    s.connect((host, int(port)))
    local_port = s.getsockname()[1]
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    raw = b""
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        raw += d
    s.close()
    with open(out, "wb") as f:
        f.write(body_of(raw))
    print(local_port, len(raw))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "pysocks":
        pysocks(*args)
    elif cmd == "split":
        with open(args[0], "rb") as f:
            raw = f.read()
        with open(args[1], "wb") as f:
            f.write(body_of(raw))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
