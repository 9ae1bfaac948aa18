#!/usr/bin/env bash
# UDP through tunsocks and socksd's UDP ASSOCIATE, with --mtu 1500 on the TUN: one IPv4
# and one IPv6 application socket each talk to two echo ports; sizes 1, 512, 1400 and 8000
# come back byte-exact from the address they were sent to (8000 bytes enter the TUN as IP
# fragments: tunsocks reassembles them, and fragments its IPv4 reply). Each socket is ONE
# association (two udp_associate sessions on socksd, not four, besides the spares set up
# ahead and not taken: udp_spares_total - udp_spares_taken); both end after
# --udp-timeout with end=idle_timeout, and socksd's sessions end with them. Datagrams of
# 65000 bytes round trip; 65500 bytes cannot be carried and are dropped (too_large).
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

UDP_ECHO="$(dirname "$0")/udp_echo.py"
TOPO_TUN_MTU=1500
topo_setup
start_socksd s
start_tunsocks ts --udp-timeout 3
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$UDP_ECHO" serve 5000 5001
wait_for_log echo '^listening' 10
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours
c0=$(tunsocks_counters ts)

r4=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" roundtrip "$SERVER_IP4" 5000 5001) || fail "IPv4 round trips: $r4"
log "IPv4: $r4"
r6=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" roundtrip "$SERVER_IP6" 5000 5001) || fail "IPv6 round trips: $r6"
log "IPv6: $r6"
# The largest datagrams: 65000 bytes round trip, 65500 (+ the SOCKS header > 65507) are
# dropped as too_large, never truncated. Their associations are not the two checked below.
l4=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" limits "$SERVER_IP4" 5000) || fail "IPv4 limits: $l4"
l6=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" limits "$SERVER_IP6" 5000) || fail "IPv6 limits: $l6"
port4=$(awk '{print $3}' <<<"$r4")
port6=$(awk '{print $3}' <<<"$r6")

c1=$(tunsocks_counters ts)
delta() { echo $(($(json_get "$c1" "$1") - $(json_get "$c0" "$1"))); }
(($(delta udp_sessions_total) == 4)) || fail "expected 4 associations (one per socket): $c1"
(($(delta udp_dropped_by_reason.too_large) == 2)) || fail "expected 2 datagrams dropped as too_large: $c1"
(($(delta udp_datagrams_down) >= 16)) || fail "expected at least 16 replies: $c1"
(($(delta udp_dropped_by_reason.fragment) == 0)) || fail "fragments were dropped: $c1"

# Both associations end after the idle timeout, and so do socksd's sessions.
wait_for 10 bash -c "(( \$(grep -c '^.*udp id=.* end=idle_timeout' '$E2E_TMP/ts.log') >= 4 ))" ||
  fail "no four 'udp ... end=idle_timeout' lines: $(grep 'udp id=' "$E2E_TMP/ts.log")"
line4=$(grep -E "udp id=.* src=$TUN_IP4:$port4 " "$E2E_TMP/ts.log" | tail -n 1)
line6=$(grep -E "udp id=.* src=\[$TUN_IP6\]:$port6 " "$E2E_TMP/ts.log" | tail -n 1)
[[ -n "$line4" && -n "$line6" ]] || fail "no udp line for the two sockets: $(grep 'udp id=' "$E2E_TMP/ts.log")"
for line in "$line4" "$line6"; do
  expect_field "$line" end idle_timeout
  expect_field "$line" reply succeeded
  (($(field "$line" datagrams_up) >= 8 && $(field "$line" datagrams_down) >= 8)) || fail "datagram counts: $line"
  (($(field "$line" down) >= 2 * (1 + 512 + 1400 + 8000))) || fail "bytes down: $line"
done
until_udp_idle ts 10
c2=$(tunsocks_counters ts)
expected=$((4 + $(unused_spares "$c2")))
wait_for 10 bash -c "(( \$(grep -c 'cmd=udp_associate' '$E2E_TMP/s.log') >= $expected ))" ||
  fail "socksd did not end the udp_associate sessions: $(grep 'session id=' "$E2E_TMP/s.log" | tail -n 5)"
n=$(grep -c 'cmd=udp_associate' "$E2E_TMP/s.log")
((n == expected)) ||
  fail "socksd saw $n udp_associate sessions, expected $expected (one per application socket, 4, and per spare not taken): $c2"
log "ok: $line4"
log "ok: $line6"
expect_alive ts
# SIGTERM with associations open or just ended: a clean exit, status 0.
stop_tunsocks ts
