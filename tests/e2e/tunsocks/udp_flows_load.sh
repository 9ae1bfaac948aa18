#!/usr/bin/env bash
# 5000 DNS-like UDP flows (each from a new source port: a new association) in 10 s against
# a UDP echo server through socksd: every query answered byte-exact, none dropped; then a
# new flow must be answered within a second, and tunsocks still runs.
#
# --udp-timeout 1 (UDP_FLOWS_TIMEOUT; empty = tunsocks' default of 60 s). With the default,
# the associations reach socksd's default caps (1000) after two seconds and tunsocks then
# recycles or evicts idle ones for new flows (configs/tunsocks.md, "UDP at the limit"):
# udp_fresh_ports.sh covers that case with every default; this one the short timeout.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

flows=${UDP_FLOWS:-5000}
topo_setup
start_socksd s
udp_timeout=${UDP_FLOWS_TIMEOUT-1}
start_tunsocks ts ${udp_timeout:+--udp-timeout "$udp_timeout"}
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$TUNSOCKS_E2E_DIR/udp_echo.py" serve 5300
wait_for_log echo '^listening' 10
out=$(in_client "$SYSTEM_PYTHON" "$TUNSOCKS_E2E_DIR/udp_flows.py" "$SERVER_IP4" 5300 --flows "$flows" --seconds 10) ||
  fail "udp_flows.py failed: $out"
log "$(tr '\n' ' ' <<<"$out")"
c=$(tunsocks_counters ts)
expect_alive ts
log "counters: $c"
res=$(grep '^flows ' <<<"$out")
expect_field "$res" answered "$flows"
[[ $(json_get "$c" udp_dropped) == 0 ]] || fail "counters: UDP datagrams dropped: $c"
new=$(grep '^new_flow ' <<<"$out")
expect_field "$new" answered yes
log "ok: $res; a new flow after them: $new"
