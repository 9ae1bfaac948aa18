#!/usr/bin/env bash
# After --udp-timeout an association leaves nothing behind. 60 IPv4 and 60 IPv6 sockets
# each open one association (--udp-timeout 5); once they are idle, tunsocks' open counts
# (udp_sessions_open, udp_spares_open, flows_open) are back to their start values, every
# association logged end=idle_timeout (the spares set up ahead and not taken too), and tunsocks' open file descriptors (/proc/PID/fd) are back to the
# count before the load; socksd logged the end of all 120 udp_associate sessions and its
# descriptors are back too. Nothing here waits on a fixed time: each end state is polled.
# The start values are taken after one warm-up association has come and gone: libuv opens
# one descriptor per loop (/dev/null, its reserve for EMFILE) with the first TCP handle and
# keeps it for the life of the loop, the first association's control connection included.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

UDP_ECHO="$(dirname "$0")/udp_echo.py"
SOCKETS=60
topo_setup
start_socksd s
start_tunsocks ts --udp-timeout 5
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$UDP_ECHO" serve 5000
wait_for_log echo '^listening' 10
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
# fd_list PID: "fd -> target" per line, for a failure message that names what was left.
fd_list() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -printf '%f -> %l\n' | sort -n; }
# open_counts JSON: the counters that count what is open now.
open_counts() { echo "udp=$(json_get "$1" udp_sessions_open) spares=$(json_get "$1" udp_spares_open) flows=$(json_get "$1" flows_open)"; }
until_no_association() { until_udp_idle ts 30; }
w=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" roundtrip "$SERVER_IP4" 5000) || fail "warm-up round trips: $w"
until_no_association
c0=$(tunsocks_counters ts)
# socksd has ended the warm-up's session too, and those of the spares it brought
wait_for 10 bash -c "(( \$(grep -c 'cmd=udp_associate' '$E2E_TMP/s.log') == 1 + $(unused_spares "$c0") ))" ||
  fail "socksd did not end the warm-up's sessions: $(grep 'session id=' "$E2E_TMP/s.log" | tail -n 5)"
fd0=$(fds "$ts_pid")
fd_list "$ts_pid" >"$E2E_TMP/fds-start.txt"
sfd0=$(fds "$s_pid")
s0=$(grep -c 'cmd=udp_associate' "$E2E_TMP/s.log" || true)

for host in "$SERVER_IP4" "$SERVER_IP6"; do
  r=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" load "$host" 5000 $((SOCKETS * 4)) "$SOCKETS" 4000) ||
    fail "round trips to $host: $r"
  log "$host: $r"
done
c1=$(tunsocks_counters ts)
fd1=$(fds "$ts_pid")
sfd1=$(fds "$s_pid")
log "open: $(open_counts "$c1"), fds $fd0 -> $fd1, socksd fds $sfd0 -> $sfd1"
(($(json_get "$c1" udp_sessions_total) - $(json_get "$c0" udp_sessions_total) == 2 * SOCKETS)) ||
  fail "expected $((2 * SOCKETS)) associations: $c1"
# Each association holds descriptors (its control connection at least): the fd count
# must see them, or its return to the start value would prove nothing.
((fd1 >= fd0 + 2 * SOCKETS)) || fail "tunsocks' fds went from $fd0 to only $fd1 with associations open"

until_no_association
c2=$(tunsocks_counters ts)
[[ $(open_counts "$c2") == "$(open_counts "$c0")" ]] ||
  fail "open counts $(open_counts "$c2") after the idle timeout, $(open_counts "$c0") at the start"
ends=$(grep -c 'udp id=.* end=idle_timeout' "$E2E_TMP/ts.log" || true)
spares=$(unused_spares "$c2")
((ends == 2 * SOCKETS + 1 + spares)) ||
  fail "$ends udp lines with end=idle_timeout, expected $((2 * SOCKETS + 1)) (with the warm-up) + $spares spares not taken"
wait_for 5 bash -c "(( \$(find /proc/$ts_pid/fd -mindepth 1 -maxdepth 1 | wc -l) == $fd0 ))" ||
  fail "tunsocks holds $(fds "$ts_pid") fds after the idle timeout, $fd0 before the load: $(fd_list "$ts_pid" | diff "$E2E_TMP/fds-start.txt" - | grep '^[<>]' | tr '\n' ' ')"
load_spares=$((spares - $(unused_spares "$c0")))
wait_for 10 bash -c "(( \$(grep -c 'cmd=udp_associate' '$E2E_TMP/s.log') - $s0 == $((2 * SOCKETS + load_spares)) ))" ||
  fail "socksd logged the end of $(($(grep -c 'cmd=udp_associate' "$E2E_TMP/s.log") - s0)) udp_associate sessions, expected $((2 * SOCKETS)) + $load_spares spares not taken"
wait_for 5 bash -c "(( \$(find /proc/$s_pid/fd -mindepth 1 -maxdepth 1 | wc -l) == $sfd0 ))" ||
  fail "socksd holds $(fds "$s_pid") fds after its sessions ended, $sfd0 before"
log "ok: $(open_counts "$c2"), fds back to $fd0, socksd fds back to $sfd0"
expect_alive ts
stop_tunsocks ts
