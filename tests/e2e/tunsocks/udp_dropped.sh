#!/usr/bin/env bash
# A SOCKS4 upstream carries TCP only: every UDP datagram entering the TUN is dropped and
# counted. 40 datagrams to an IPv4 server, 20 to an IPv6 server and 5 DNS-like ones to
# port 53: udp_dropped and udp_dropped_by_reason.no_udp_upstream grow by exactly 65, ONE
# warn line says why, no association and no flow is made, nothing reaches the server
# namespace's UDP listeners, and TCP still works afterwards.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_tunsocks ts --upstream "socks4://$PROXY_IP4:$UPSTREAM_PORT"
start_peer sink "$SERVER_IP4" sink
start_bg udp4 ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5000))
print("listening", flush=True)
while True:
    d, a = s.recvfrom(2048); print("got", len(d), a, flush=True)'
wait_for_log udp4 '^listening' 10
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours
c0=$(tunsocks_counters ts)

in_client "$SYSTEM_PYTHON" -c '
import socket, sys
v4, v6 = sys.argv[1], sys.argv[2]
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for i in range(40): s4.sendto(b"x" * (10 + i), (v4, 5000))
for i in range(20): s6.sendto(b"y" * (10 + i), (v6, 5000))
for i in range(5): s4.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01", (v4, 53))
' "$SERVER_IP4" "$SERVER_IP6" || fail "could not send the datagrams"
# The datagrams are in the TUN's queue once sendto() returned; give tunsocks a moment.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  c1=$(tunsocks_counters ts)
  (($(json_get "$c1" udp_dropped) - $(json_get "$c0" udp_dropped) >= 65)) && break
  sleep 0.5
done
dropped=$(($(json_get "$c1" udp_dropped) - $(json_get "$c0" udp_dropped)))
((dropped == 65)) || fail "udp_dropped grew by $dropped, expected 65 (one per datagram): $c1"
[[ $(json_get "$c1" flows_total) == "$(json_get "$c0" flows_total)" ]] || fail "UDP datagrams made TCP flows: $c1"
reason=$(($(json_get "$c1" udp_dropped_by_reason.no_udp_upstream) - $(json_get "$c0" udp_dropped_by_reason.no_udp_upstream)))
((reason == 65)) || fail "udp_dropped_by_reason.no_udp_upstream grew by $reason, expected 65: $c1"
(($(json_get "$c1" udp_sessions_total) == 0)) || fail "an association was made for a SOCKS4 upstream: $c1"
warns=$(grep -c 'WARN udp: .*SOCKS4' "$E2E_TMP/ts.log" || true)
((warns == 1)) || fail "expected exactly one warn line about UDP over SOCKS4, got $warns: $(grep WARN "$E2E_TMP/ts.log")"
if grep -q '^got ' "$E2E_TMP/udp4.log"; then fail "a UDP datagram reached the server: $(head -n 3 "$E2E_TMP/udp4.log")"; fi
log "ok: 65 datagrams dropped and counted: $c1"

r=$(probe "$SERVER_IP4" "$sink_port" 20)
expect_probe "$r" connected 5000 "TCP after the UDP datagrams"
expect_alive ts
