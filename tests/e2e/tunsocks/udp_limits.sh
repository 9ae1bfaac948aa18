#!/usr/bin/env bash
# UDP associations under load and at their ends: 5000 datagrams, each from a fresh
# application socket, with --max-udp-sessions 100: tunsocks survives, never holds more
# than 100 associations, and at the limit hands answered ones to new sockets (recycled),
# closes idle ones (evicted) or counts the datagram as session_limit; once idle (--udp-timeout 2)
# has none left; UDP works again afterwards. Then an association whose upstream control
# connection goes away (socksd killed -9) ends at once with end=control_closed.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

UDP_ECHO="$(dirname "$0")/udp_echo.py"
topo_setup
start_socksd s
start_tunsocks ts --udp-timeout 2 --max-udp-sessions 100
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$UDP_ECHO" serve 5000
wait_for_log echo '^listening' 10
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours
c0=$(tunsocks_counters ts)

in_client "$SYSTEM_PYTHON" -c '
import socket, sys
for i in range(5000):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"burst %d" % i, (sys.argv[1], 5000))
    s.close()
' "$SERVER_IP4" || fail "the burst could not be sent"
c1=$(tunsocks_counters ts)
expect_alive ts
log "after the burst: $c1"
(($(json_get "$c1" udp_sessions_open) <= 100)) || fail "more than 100 associations open: $c1"
limited=$(($(json_get "$c1" udp_dropped_by_reason.session_limit) - $(json_get "$c0" udp_dropped_by_reason.session_limit)))
recycled=$(($(json_get "$c1" udp_sessions_recycled) - $(json_get "$c0" udp_sessions_recycled)))
evicted=$(($(json_get "$c1" udp_sessions_evicted) - $(json_get "$c0" udp_sessions_evicted)))
((limited + recycled + evicted > 0)) || fail "--max-udp-sessions was never reached: $c1"
log "at the limit: $limited refused, $recycled recycled, $evicted evicted"
opened=$(($(json_get "$c1" udp_sessions_total) - $(json_get "$c0" udp_sessions_total)))
((opened >= 100)) || fail "only $opened associations were opened: $c1"

until_udp_idle ts 15
c2=$(tunsocks_counters ts)
log "after the idle timeout: $c2"
ends=$(grep -c 'udp id=.* end=idle_timeout' "$E2E_TMP/ts.log" || true)
((ends >= 100)) || fail "only $ends udp lines with end=idle_timeout"

r=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" roundtrip "$SERVER_IP4" 5000) || fail "round trips after the burst: $r"
port=$(awk '{print $3}' <<<"$r")
# SIGKILL: on SIGTERM socksd drains its sessions; the kernel closes a killed one at once.
kill -KILL "$s_pid"
wait_for 5 bash -c "grep -E 'udp id=.* src=$TUN_IP4:$port .*end=control_closed' '$E2E_TMP/ts.log' >/dev/null" ||
  fail "the association did not end with its control connection: $(grep "src=$TUN_IP4:$port " "$E2E_TMP/ts.log")"
log "ok: $(grep -E "udp id=.* src=$TUN_IP4:$port " "$E2E_TMP/ts.log")"
expect_alive ts
# SIGTERM with associations open or just ended: a clean exit, status 0.
stop_tunsocks ts
