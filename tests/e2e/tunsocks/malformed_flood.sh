#!/usr/bin/env bash
# Malformed packets on the TUN (written from the kernel side through an AF_PACKET socket,
# so the bytes are exactly the test's):
#  exact: 100 packets of each kind the classifier refuses (too_short, bad_version,
#    bad_header_length, bad_total_length, too_many_extension_headers), paced: the
#    counters' malformed.<reason> each grow by exactly 100;
#  flood: those kinds mixed with random garbage and mangled TCP/UDP/fragment headers, as
#    fast as the socket takes them, for $MALFORMED_SECONDS s (default 5 in CI; the issue's
#    long form is MALFORMED_SECONDS=60). Meanwhile a real connect() through the TUN still
#    succeeds; afterwards tunsocks runs, serves a transfer byte-exact, and its CPU time over
#    the flood is reported.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
seconds=${MALFORMED_SECONDS:-5}
BAD_PACKETS="$TUNSOCKS_E2E_DIR/bad_packets.py"

topo_setup
start_socksd s
start_peer holder "$SERVER_IP4" hold
start_peer echo "$SERVER_IP4" client-closes-first --bytes 65536
start_tunsocks ts
kinds="too_short bad_version bad_header_length bad_total_length too_many_extension_headers"

c0=$(tunsocks_counters ts)
in_client "$SYSTEM_PYTHON" "$BAD_PACKETS" --dev "$TUN_NAME" exact --count 100 >"$E2E_TMP/exact.out" 2>&1 ||
  fail "bad_packets.py exact failed: $(cat "$E2E_TMP/exact.out")"
# counted: the sum over every kind grows by 500 (a busy machine may take a moment)
malformed_sum() {
  local sum=0 k
  for k in $kinds; do sum=$((sum + $(json_get "$1" "malformed.$k"))); done
  echo "$sum"
}
base=$(malformed_sum "$c0")
for ((i = 0; i < 50; i++)); do
  c1=$(tunsocks_counters ts)
  (($(malformed_sum "$c1") - base >= 500)) && break
  sleep 0.2
done
for k in $kinds; do
  d=$(($(json_get "$c1" "malformed.$k") - $(json_get "$c0" "malformed.$k")))
  ((d == 100)) || fail "counters: malformed.$k grew by $d after 100 such packets: $c1"
done
log "ok: 100 of each malformed kind counted by reason"

t0=$(cpu_ticks "$ts_pid")
start_bg flood ip netns exec "$client_ns" "$SYSTEM_PYTHON" "$BAD_PACKETS" --dev "$TUN_NAME" flood --seconds "$seconds"
sleep 1
r=$(probe "$SERVER_IP4" "$holder_port" 20)
expect_probe "$r" connected 20000 "a connect() during the flood"
wait_for $((seconds + 30)) has_exited "$flood_pid" || fail "the flood did not end"
wait "$flood_pid" || fail "bad_packets.py flood failed: $(cat "$E2E_TMP/flood.log")"
ticks=$(($(cpu_ticks "$ts_pid") - t0))
expect_alive ts
out=$(peer_client --host "$SERVER_IP4" --port "$echo_port" --mode client-closes-first --bytes 65536 --timeout 20) ||
  fail "a transfer after the flood failed: $out"
got=$(grep '^received ' <<<"$out")
expect_field "$got" bytes 65536
expect_field "$got" end eof
# The last flows (the probe, the transfer) end with their FIN exchange: wait for it.
for ((i = 0; i < 50; i++)); do
  c2=$(tunsocks_counters ts)
  [[ $(json_get "$c2" flows_open) == 0 ]] && break
  sleep 0.2
done
for k in $kinds; do
  (($(json_get "$c2" "malformed.$k") > $(json_get "$c1" "malformed.$k"))) ||
    fail "counters: no malformed.$k counted during the flood: $c2"
done
[[ $(json_get "$c2" flows_open) == 0 ]] || fail "counters: flows_open != 0 10 s after the flood: $c2"
log "ok: flood of $seconds s ($(cat "$E2E_TMP/flood.log")): tunsocks used $ticks CPU ticks, still serves; counters $c2"
