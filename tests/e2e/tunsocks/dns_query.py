"""dns_query.py SERVER NAME TYPE [tcp]: one DNS query (TYPE: A, AAAA or TXT) over UDP (or
TCP, length-prefixed) to SERVER:53; prints `answer ADDRESS ttl=T` for an A/AAAA answer, `empty rcode=R` for an
answer without records, or `raw N` with the size of a reply that is not a DNS response
to the query (an echo). Checks that the reply comes from SERVER:53 and carries the query id.

dns_query.py SERVER malformed: sends malformed queries over UDP, each from its own socket
(a header without its question, a name cut short, a question whose name is a compression
pointer to itself, 5 bytes); prints `KIND rcode=R` for a reply or `KIND dropped`.
"""
import ipaddress
import os
import socket
import struct
import sys



def malformed(server):
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    header = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    cases = {
        "header_only": header,
        "name_cut_short": header + b"\x0awww",
        "pointer_loop": header + b"\xc0\x0c" + struct.pack("!HH", 1, 1),
        "short": header[:5],
    }
    for kind, message in cases.items():
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.settimeout(1.5)
        s.sendto(message, (server, 53))
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            print(kind, "dropped")
            continue
        if peer[0] != server or peer[1] != 53:
            sys.exit(f"{kind}: reply from {peer}, expected {server}:53")
        if len(data) < 12 or data[:2] != message[:2] or not data[2] & 0x80:
            sys.exit(f"{kind}: not a response to the query: {data.hex()}")
        print(kind, "rcode=%d" % (data[3] & 0xF))


if sys.argv[2] == "malformed":
    malformed(sys.argv[1])
    sys.exit(0)
server, name, qtype = sys.argv[1], sys.argv[2], sys.argv[3]
types = {"A": 1, "AAAA": 28, "TXT": 16}
qid = int.from_bytes(os.urandom(2), "big")
question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", types[qtype], 1)
family = socket.AF_INET6 if ":" in server else socket.AF_INET
if len(sys.argv) > 4 and sys.argv[4] == "tcp":
    s = socket.create_connection((server, 53), timeout=3)
    s.sendall(struct.pack("!H", len(query)) + query)
    data = b""
    while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
        chunk = s.recv(65535)
        if not chunk:
            sys.exit(f"connection closed after {len(data)} bytes")
        data += chunk
    data = data[2:]
else:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(query, (server, 53))
    data, peer = s.recvfrom(65535)
    if peer[0] != server or peer[1] != 53:
        sys.exit(f"reply from {peer}, expected {server}:53")
if data == query:
    print("raw", len(data))
    sys.exit(0)
rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
if rid != qid or not flags & 0x8000:
    sys.exit(f"not a response to the query: id {rid:#x} flags {flags:#x}")
if an == 0:
    print("empty rcode=%d" % (flags & 0xF))
    sys.exit(0)
offset = 12 + len(question) + 4
rtype, rclass, ttl, rdlength = struct.unpack("!HHIH", data[offset + 2:offset + 12])
rdata = data[offset + 12:offset + 12 + rdlength]
print("answer", ipaddress.ip_address(rdata), "ttl=%d" % ttl)
