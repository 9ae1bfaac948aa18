#!/usr/bin/env bash
# Issue 7: 5000 DNS-like UDP exchanges in about 10 s, each from a new source port (a new
# association), to a UDP echo server through tunsocks and socksd, both with their DEFAULT
# limits and timeouts (tunsocks: 1024 associations, 60 s idle; socksd: 1000 UDP
# associations and 1000 connections per client). At 500 new associations a second the
# upstream is full after two seconds; from then on tunsocks hands the least recently
# active answered association to each new socket (udp_sessions_recycled), or closes an
# idle one to make room (udp_sessions_evicted), instead of dropping the new flow.
#
# Each query's socket is bound to the next port from 20000 up: a new source port for sure.
# Asserts: every exchange answered byte-exact (udp_flows.py compares the bytes); a new
# flow after them answered within a second; the counters add up (associations opened or
# recycled = flows + retries, datagrams each way = flows, nothing dropped, one log line
# per ended association, spares no socket took included, evictions and retries matching
# their counters); and once the idle
# timeout (the default 60 s) has passed, no association is open and tunsocks' and
# socksd's descriptor counts (/proc/PID/fd) are back to where they were before the load.
# UDP_FRESH_TIMEOUT=N runs tunsocks with --udp-timeout N instead (quicker by hand).
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

flows=${UDP_FRESH_FLOWS:-5000}
topo_setup
start_socksd s
start_tunsocks ts ${UDP_FRESH_TIMEOUT:+--udp-timeout "$UDP_FRESH_TIMEOUT"}
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$TUNSOCKS_E2E_DIR/udp_echo.py" serve 5300
wait_for_log echo '^listening' 10
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
fd_list() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -printf '%f -> %l\n' | sort -n; }
# Lines of associations that sockets held (a spare no socket took logs src=spare).
ended_lines() { grep -c "udp id=[0-9]* src=[^s].* end=$1" "$E2E_TMP/ts.log" || true; }

# The start values, before any association. The first association's control connection
# makes libuv open one more descriptor (/dev/null: its reserve for EMFILE) that it keeps
# for the life of the loop: at the end tunsocks must hold exactly that one more.
c0=$(tunsocks_counters ts)
fd0=$(fds "$ts_pid") sfd0=$(fds "$s_pid")
fd_list "$ts_pid" >"$E2E_TMP/fds-start.txt"
log "before: tunsocks fds $fd0, socksd fds $sfd0"

out=$(in_client "$SYSTEM_PYTHON" "$TUNSOCKS_E2E_DIR/udp_flows.py" "$SERVER_IP4" 5300 --flows "$flows" --seconds 10 --first-port 20000) ||
  fail "udp_flows.py failed: $out"
log "$(tr '\n' ' ' <<<"$out")"
expect_alive ts
res=$(grep '^flows ' <<<"$out")
new=$(grep '^new_flow ' <<<"$out")
expect_field "$res" answered "$flows"
expect_field "$new" answered yes

c1=$(tunsocks_counters ts)
log "counters after the load: $c1"
delta() { echo $(($(json_get "$c1" "$1") - $(json_get "$c0" "$1"))); }
retries=$(delta udp_setup_retries) evicted=$(delta udp_sessions_evicted)
recycled=$(delta udp_sessions_recycled)
(($(delta udp_dropped) == 0)) || fail "UDP datagrams dropped: $c1"
(($(delta udp_sessions_total) + recycled == flows + 1 + retries)) ||
  fail "associations opened $(delta udp_sessions_total) + recycled $recycled, expected $((flows + 1)) flows + $retries retries"
(($(delta udp_datagrams_up) == flows + 1)) || fail "datagrams up: $(delta udp_datagrams_up), expected $((flows + 1))"
(($(delta udp_datagrams_down) == flows + 1)) ||
  fail "datagrams down: $(delta udp_datagrams_down), expected $((flows + 1))"
(($(delta udp_bytes_up) == $(delta udp_bytes_down))) || fail "bytes up and down differ: $c1"
# Defaults: the upstream holds at most 1000 of ours, so most flows needed room made.
[[ -n ${UDP_FRESH_TIMEOUT:-} ]] || ((evicted + recycled >= flows - 1100)) ||
  fail "only $evicted associations evicted and $recycled recycled for $flows flows: $c1"
(($(json_get "$c1" udp_sessions_open) <= 1024)) || fail "more associations open than the limit: $c1"

# Every association ends, by the idle timeout at the latest; then nothing is left behind.
until_udp_idle ts "$((${UDP_FRESH_TIMEOUT:-60} + 30))"
c2=$(tunsocks_counters ts)
total=$(($(json_get "$c2" udp_sessions_total)))
ended=$(ended_lines "")
((ended == total)) || fail "$ended association end lines, $total associations opened"
spares=$(grep -c 'udp id=[0-9]* src=spare .* end=' "$E2E_TMP/ts.log" || true)
((spares == $(unused_spares "$c2"))) || fail "$spares spare end lines, $(unused_spares "$c2") spares not taken: $c2"
(($(ended_lines evicted) == $(json_get "$c2" udp_sessions_evicted))) ||
  fail "$(ended_lines evicted) end=evicted lines, udp_sessions_evicted $(json_get "$c2" udp_sessions_evicted)"
(($(ended_lines retried) == $(json_get "$c2" udp_setup_retries))) ||
  fail "$(ended_lines retried) end=retried lines, udp_setup_retries $(json_get "$c2" udp_setup_retries)"
(($(json_get "$c2" flows_open) == 0)) || fail "TCP flows open: $c2"
# Descriptors are closed within a loop turn of an association's end: a short grace.
extra() { fd_list "$ts_pid" | diff "$E2E_TMP/fds-start.txt" - | grep '^[<>]' | sed 's/^. [0-9]* -> //' | tr '\n' ' '; }
wait_for 10 bash -c "(( \$(find /proc/$ts_pid/fd -mindepth 1 -maxdepth 1 | wc -l) == $fd0 + 1 ))" ||
  fail "tunsocks holds $(fds "$ts_pid") fds, $fd0 before the load (+1 expected); changed: $(extra)"
[[ $(extra) == "/dev/null " ]] || fail "tunsocks' one new descriptor is not libuv's /dev/null reserve: $(extra)"
wait_for 30 bash -c "(( \$(find /proc/$s_pid/fd -mindepth 1 -maxdepth 1 | wc -l) == $sfd0 ))" ||
  fail "socksd holds $(fds "$s_pid") fds after every association ended, $sfd0 before"
log "ok: $res; $new; recycled $recycled, evicted $evicted, retried $retries; fds back to $fd0+1 (socksd $sfd0)"
expect_alive ts
stop_tunsocks ts
