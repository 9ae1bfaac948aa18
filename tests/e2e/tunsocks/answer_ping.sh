#!/usr/bin/env bash
# --answer-ping: ICMP echo requests through the TUN (IPv4 and IPv6) are answered by
# tunsocks from the address pinged, with the request's id, sequence and data; without the
# flag they are dropped and counted (icmp_dropped), as before.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

PING='
import os, socket, struct, sys, time
host = sys.argv[1]
v6 = ":" in host
def checksum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
if v6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
ident, data = os.getpid() & 0xFFFF, os.urandom(24)
msg = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, 7) + data
if not v6:  # the kernel sums ICMPv6 for raw sockets, not ICMP
    msg = msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]
s.sendto(msg, (host, 0))
deadline = time.time() + 2
while time.time() < deadline:
    try:
        reply, peer = s.recvfrom(2048)
    except socket.timeout:
        break
    if not v6: reply = reply[(reply[0] & 0xF) * 4:]
    kind = reply[0]
    if kind == (129 if v6 else 0) and reply[4:] == msg[4:] and peer[0] == host:
        print("reply from", peer[0]); sys.exit(0)
print("no reply"); sys.exit(1)
'

topo_setup
start_socksd s
start_tunsocks ts --answer-ping
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours
c0=$(tunsocks_counters ts)
r4=$(in_client "$SYSTEM_PYTHON" -c "$PING" "$SERVER_IP4") || fail "IPv4 ping: $r4"
r6=$(in_client "$SYSTEM_PYTHON" -c "$PING" "$SERVER_IP6") || fail "IPv6 ping: $r6"
log "$r4; $r6"
c1=$(tunsocks_counters ts)
(($(json_get "$c1" pings_answered) - $(json_get "$c0" pings_answered) == 2)) || fail "pings_answered: $c1"
stop_tunsocks ts

start_tunsocks ts2
sleep 1
c0=$(tunsocks_counters ts2)
if in_client "$SYSTEM_PYTHON" -c "$PING" "$SERVER_IP4" >/dev/null; then fail "a ping was answered without --answer-ping"; fi
c1=$(tunsocks_counters ts2)
(($(json_get "$c1" icmp_dropped) > $(json_get "$c0" icmp_dropped))) || fail "the ping was not counted as dropped: $c1"
(($(json_get "$c1" pings_answered) == 0)) || fail "pings_answered without --answer-ping: $c1"
log "ok: without --answer-ping the ping is dropped and counted"
