#!/usr/bin/env bash
# Spare UDP associations (--udp-spares 3 --udp-timeout 3), through socksd:
#  1. none before UDP is used (udp_spares_total 0 after start);
#  2. the first socket's association brings three spares, set up and ready;
#  3. the next socket takes one (udp_spares_taken +1, udp_sessions_total +1 with no
#     association dialled for it), its round trips come back byte-exact, and the spares
#     are topped up to three again;
#  4. after the idle timeout every association has ended: one `src=spare` line per spare
#     no socket took, and socksd logged one udp_associate session per association,
#     spares included;
#  5. socksd killed: the open spares end with the control connection (end=control_closed)
#     and that pauses new ones: a socket's datagram meanwhile dials its own association,
#     which fails, and no spare is set up behind it;
#  6. with --udp-spares 0 no spare is ever set up.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

UDP_ECHO="$(dirname "$0")/udp_echo.py"
topo_setup
start_socksd s
start_tunsocks ts --udp-spares 3 --udp-timeout 3
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$UDP_ECHO" serve 5000
wait_for_log echo '^listening' 10
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours

# until_spares_open NAME N: poll tunsocks NAME's counters until N spares are open.
until_spares_open() {
  local pid_var="${1}_pid"
  wait_for 10 bash -c "kill -USR1 ${!pid_var}; sleep 0.2; grep 'counters {' '$E2E_TMP/$1.log' | tail -n 1 | grep -q '\"udp_spares_open\":$2,'" ||
    fail "expected $2 spares open: $(tunsocks_counters "$1")"
}
roundtrip() { in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" roundtrip "$SERVER_IP4" 5000; }

c0=$(tunsocks_counters ts)
(($(json_get "$c0" udp_spares_total) == 0)) || fail "spares set up before any UDP: $c0"

r=$(roundtrip) || fail "first socket: $r"
until_spares_open ts 3
c1=$(tunsocks_counters ts)
(($(json_get "$c1" udp_sessions_total) == 1 && $(json_get "$c1" udp_spares_total) == 3 &&
  $(json_get "$c1" udp_spares_taken) == 0)) || fail "after the first socket: $c1"
log "first socket: $r; spares: 3 open"

r=$(roundtrip) || fail "second socket: $r"
[[ $r == "ok 4 "* ]] || fail "second socket: expected 'ok 4 PORT' (four byte-exact replies), got '$r'"
until_spares_open ts 3
c2=$(tunsocks_counters ts)
(($(json_get "$c2" udp_spares_taken) == 1)) || fail "the second socket took no spare: $c2"
(($(json_get "$c2" udp_sessions_total) == 2)) || fail "expected 2 associations for 2 sockets: $c2"
(($(json_get "$c2" udp_spares_total) == 4)) || fail "expected one spare set up to replace it: $c2"
(($(json_get "$c2" udp_dropped) == 0)) || fail "datagrams dropped: $c2"
log "second socket: $r over a spare; spares topped up: $(json_get "$c2" udp_spares_total) set up"

until_udp_idle ts 15
c3=$(tunsocks_counters ts)
unused=$(unused_spares "$c3")
((unused == 3)) || fail "expected 3 spares not taken: $c3"
spare_lines=$(grep -c 'udp id=[0-9]* src=spare .* end=idle_timeout' "$E2E_TMP/ts.log" || true)
((spare_lines == unused)) || fail "$spare_lines 'src=spare ... end=idle_timeout' lines, $unused spares not taken"
associations=$(($(json_get "$c3" udp_sessions_total) + unused))
wait_for 10 bash -c "(( \$(grep -c 'cmd=udp_associate' '$E2E_TMP/s.log') == $associations ))" ||
  fail "socksd logged $(grep -c 'cmd=udp_associate' "$E2E_TMP/s.log") udp_associate sessions, expected $associations"
log "after the idle timeout: $associations associations ended on both sides, $unused of them spares"

# An upstream that goes away: its spares fail, and new ones wait.
r=$(roundtrip) || fail "third socket: $r"
until_spares_open ts 3
kill -KILL "$s_pid"
wait "$s_pid" 2>/dev/null || true
until_spares_open ts 0
closed=$(grep -c 'udp id=[0-9]* src=spare .* end=control_closed' "$E2E_TMP/ts.log" || true)
((closed == 3)) || fail "expected 3 spares ended by the closed control connection, got $closed"
c4=$(tunsocks_counters ts)
in_client "$SYSTEM_PYTHON" -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('$SERVER_IP4', 5000))"
wait_for 10 grep -q 'udp id=[0-9]* src=[0-9].* end=upstream_unreachable' "$E2E_TMP/ts.log" ||
  fail "the socket's own association did not end upstream_unreachable: $(grep 'udp id=' "$E2E_TMP/ts.log" | tail -n 3)"
c5=$(tunsocks_counters ts)
(($(json_get "$c5" udp_spares_total) == $(json_get "$c4" udp_spares_total))) ||
  fail "spares were set up toward the dead upstream: $c4 -> $c5"
log "upstream killed: 3 spares ended control_closed, none set up after"
expect_alive ts
stop_tunsocks ts

# None at all with --udp-spares 0.
start_socksd s2
start_tunsocks ts0 --udp-spares 0
r=$(roundtrip) || fail "with --udp-spares 0: $r"
r=$(roundtrip) || fail "with --udp-spares 0: $r"
c6=$(tunsocks_counters ts0)
(($(json_get "$c6" udp_spares_total) == 0 && $(json_get "$c6" udp_sessions_total) == 2)) ||
  fail "with --udp-spares 0: $c6"
log "ok: --udp-spares 0 sets up none ($(json_get "$c6" udp_sessions_total) associations for 2 sockets)"
expect_alive ts0
stop_tunsocks ts0
