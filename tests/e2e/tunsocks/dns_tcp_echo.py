"""dns_tcp_echo.py HOST PORT: a DNS-over-TCP stand-in resolver. Accepts connections, reads
length-prefixed messages (RFC 1035 4.2.2) and sends each back framed, answering the
messages of one read in reverse order (a resolver may answer out of order). Logs
`connection N` per accepted connection and `echo LEN` per message."""
import socket
import struct
import sys
import threading

host, port = sys.argv[1], int(sys.argv[2])
server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, port))
server.listen(16)
print("listening on", f"{host}:{port}", flush=True)
count = 0


def serve(conn):
    data = b""
    while True:
        chunk = conn.recv(65535)
        if not chunk:
            conn.close()
            return
        data += chunk
        messages = []
        while len(data) >= 2 and len(data) >= 2 + struct.unpack("!H", data[:2])[0]:
            length = struct.unpack("!H", data[:2])[0]
            messages.append(data[2:2 + length])
            data = data[2 + length:]
        for message in reversed(messages):
            print("echo", len(message), flush=True)
            conn.sendall(struct.pack("!H", len(message)) + message)


while True:
    conn, _ = server.accept()
    count += 1
    print("connection", count, flush=True)
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
