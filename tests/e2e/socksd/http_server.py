"""A loopback HTTP server for the socksd end-to-end tests.

GET /NAME serves DIR/NAME; PUT or POST /NAME reads the body, and prints and answers
`upload path=/NAME bytes=N sha256=H` (so an upload is checked on the server side).
HTTP/1.0: one request per connection, closed after the answer, so a proxied session
ends as soon as the client has its answer.

Port 0: the kernel picks the port; once ready the server prints `listening on
HOST:PORT` (like socksd). With --dual it serves 127.0.0.1 and [::1] on one port, so a
name like `localhost` works whichever family the proxy resolves it to.
"""

import argparse
import hashlib
import http.server
import os
import socket
import socketserver
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    root = "."

    def log_message(self, fmt, *args):
        sys.stderr.write("http: " + (fmt % args) + "\n")

    def _path(self):
        name = os.path.basename(self.path.split("?", 1)[0])
        return os.path.join(self.root, name)

    def do_GET(self):
        path = self._path()
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                self.wfile.write(chunk)

    def do_PUT(self):
        length = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        got = length - left
        line = f"upload path={self.path} bytes={got} sha256={h.hexdigest()}"
        print(line, flush=True)
        body = (line + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT


class Server4(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 256


class Server6(Server4):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--dual", action="store_true", help="127.0.0.1 and [::1], same port")
    a = ap.parse_args()
    Handler.root = a.dir

    servers = []
    if a.dual:
        # Port 0 for IPv4, then the same number on [::1]; retry if that one is taken.
        for _ in range(50):
            s4 = Server4(("127.0.0.1", 0), Handler)
            try:
                s6 = Server6(("::1", s4.server_address[1]), Handler)
            except OSError:
                s4.server_close()
                continue
            servers = [s4, s6]
            break
        if not servers:
            sys.exit("could not bind one port on both 127.0.0.1 and ::1")
    elif ":" in a.host:
        servers = [Server6((a.host, 0), Handler)]
    else:
        servers = [Server4((a.host, 0), Handler)]

    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    for s in servers:
        host, port = s.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"listening on {shown}:{port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
