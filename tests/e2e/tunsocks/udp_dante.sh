#!/usr/bin/env bash
# UDP against Dante. A Dante that allows UDP ASSOCIATE: IPv4 and IPv6 round trips of 1 to
# 8000 bytes, byte-exact and from the address sent to. A Dante that allows CONNECT only
# refuses UDP ASSOCIATE: ONE warn line says so, the association ends with end=refused, and
# datagrams of other sockets meanwhile are dropped and counted as no_udp_upstream, without
# asking Dante again.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_cmd danted

UDP_ECHO="$(dirname "$0")/udp_echo.py"
TOPO_TUN_MTU=1500
topo_setup
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$UDP_ECHO" serve 5000 5001
wait_for_log echo '^listening' 10

start_dante d "connect udpassociate udpreply"
start_tunsocks ts
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours
r4=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" roundtrip "$SERVER_IP4" 5000 5001) || fail "IPv4 round trips through Dante: $r4"
log "IPv4 through Dante: $r4"
r6=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" roundtrip "$SERVER_IP6" 5000) || fail "IPv6 round trips through Dante: $r6"
log "IPv6 through Dante: $r6"
c=$(tunsocks_counters ts)
(($(json_get "$c" udp_sessions_total) == 2)) || fail "expected 2 associations: $c"
stop_tunsocks ts
kill "$d_pid"
# A port of its own: Dante's children may hold the first one a little longer.
UPSTREAM_PORT=$((UPSTREAM_PORT + 1))
start_dante d2 connect
start_tunsocks ts2
sleep 1
c0=$(tunsocks_counters ts2)
in_client "$SYSTEM_PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"first", (sys.argv[1], 5000))
' "$SERVER_IP4" || fail "cannot send"
wait_for 10 bash -c "grep -q 'WARN udp id=.*refused UDP ASSOCIATE' '$E2E_TMP/ts2.log'" ||
  fail "no warn line about the refusal: $(grep 'udp' "$E2E_TMP/ts2.log")"
in_client "$SYSTEM_PYTHON" -c '
import socket, sys
for i in range(10):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"later", (sys.argv[1], 5000))
' "$SERVER_IP4" || fail "cannot send"
sleep 1
c1=$(tunsocks_counters ts2)
warns=$(grep -c 'WARN udp' "$E2E_TMP/ts2.log" || true)
((warns == 1)) || fail "expected exactly one warn line, got $warns: $(grep WARN "$E2E_TMP/ts2.log")"
line=$(grep -E 'INFO udp id=' "$E2E_TMP/ts2.log" | head -n 1)
expect_field "$line" end refused
dropped=$(($(json_get "$c1" udp_dropped_by_reason.no_udp_upstream) - $(json_get "$c0" udp_dropped_by_reason.no_udp_upstream)))
((dropped == 10)) || fail "no_udp_upstream grew by $dropped, expected 10: $c1"
(($(json_get "$c1" udp_sessions_total) == 1)) || fail "Dante was asked again after refusing: $c1"
log "ok: $(grep 'WARN udp' "$E2E_TMP/ts2.log")"
log "ok: $line"
expect_alive ts2
stop_tunsocks ts2
