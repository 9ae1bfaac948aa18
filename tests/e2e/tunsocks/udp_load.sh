#!/usr/bin/env bash
# UDP echo under load, IPv4 and IPv6: 10000 datagrams each way through the TUN and socksd's
# UDP ASSOCIATE, over 100 application sockets at once, sizes 1..1400 (90 %), up to 9000
# (9 %) and up to 65000 bytes (1 %; with the SOCKS header that is near the most a UDP
# datagram carries, and dozens of IP fragments on the veths). Each socket keeps one
# datagram in flight, so the unloaded path is lossless: every reply must be byte-exact
# and from the echo server's address, and the loss, counted without any retry, must be
# zero. tunsocks' and the echo server's counts agree, and each socket is one association.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

UDP_ECHO="$(dirname "$0")/udp_echo.py"
COUNT=10000
SOCKETS=100
topo_setup
start_socksd s
start_tunsocks ts --max-udp-sessions 1000
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$UDP_ECHO" serve 5000
wait_for_log echo '^listening' 10
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours

for host in "$SERVER_IP4" "$SERVER_IP6"; do
  c0=$(tunsocks_counters ts)
  e0=$(grep -c '^echo ' "$E2E_TMP/echo.log" || true)
  r=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" load "$host" 5000 "$COUNT" "$SOCKETS" 65000) ||
    fail "load to $host: $r"
  log "$host: $r"
  [[ $r == "sent $COUNT received $COUNT lost 0 "* ]] || fail "load to $host: $r"
  c1=$(tunsocks_counters ts)
  delta() { echo $(($(json_get "$c1" "$1") - $(json_get "$c0" "$1"))); }
  (($(delta udp_sessions_total) == SOCKETS)) || fail "$host: expected $SOCKETS associations: $c1"
  (($(delta udp_datagrams_up) == COUNT)) || fail "$host: udp_datagrams_up: $c1"
  (($(delta udp_datagrams_down) == COUNT)) || fail "$host: udp_datagrams_down: $c1"
  (($(delta udp_dropped) == 0)) || fail "$host: datagrams dropped: $c1"
  bytes=$(awk '{print $8}' <<<"$r")
  (($(delta udp_bytes_up) == bytes && $(delta udp_bytes_down) == bytes)) ||
    fail "$host: byte counts differ from the $bytes sent: $c1"
  e=$(($(grep -c '^echo ' "$E2E_TMP/echo.log") - e0))
  ((e == COUNT)) || fail "$host: the echo server saw $e datagrams, expected $COUNT"
done
expect_alive ts
log "ok: $(tunsocks_counters ts)"
stop_tunsocks ts
