#!/usr/bin/env bash
# RLIMIT_NOFILE of 64 on a running tunsocks (prlimit): 100 connections through the TUN.
#  load shed: some connect, the rest fail at once with an error (no hang, no timeout);
#    each failed one has a flow line that names the cause (detail with EMFILE); while
#    tunsocks sits at the limit with the rest held, its
#    CPU time over 3 s (from /proc/PID/stat) stays under a third of one core: it does not
#    spin on a failing call;
#  recovery: once the held connections close, every flow ends, the fds return to the
#    baseline and a new connect() succeeds.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd prlimit

topo_setup
start_socksd s
start_echo holder "$SERVER_IP4"
start_tunsocks ts
hz=$(getconf CLK_TCK)

# Warm-up: libuv opens one spare descriptor on first use; the baseline comes after it.
r=$(probe "$SERVER_IP4" "$holder_port" 20)
expect_probe "$r" connected 5000 "the warm-up connect()"
wait_for 5 bash -c "grep -qE 'flow id=1 .* end=' '$E2E_TMP/ts.log'" || fail "the warm-up flow did not end"
base=$(fd_count "$ts_pid")
prlimit --pid "$ts_pid" --nofile=64:64 || fail "prlimit failed"
start_bg hold ip netns exec "$client_ns" "$SYSTEM_PYTHON" -u "$HOLD_MANY" \
  hold --host "$SERVER_IP4" --port "$holder_port" --count 100 --release "$E2E_TMP/release" --timeout 20
register_cleanup "touch $E2E_TMP/release"
wait_for 60 grep -q '^opened ' "$E2E_TMP/hold.log" || fail "the holding client never finished connecting: $(cat "$E2E_TMP/hold.log")"
opened=$(grep '^opened ' "$E2E_TMP/hold.log")
ok=$(field "$opened" ok)
failed=$(field "$opened" failed)
log "with 64 fds: $opened (tunsocks holds $(fd_count "$ts_pid") fds, baseline $base)"
((ok > 0 && failed > 0)) || fail "expected some connections to succeed and some to be shed: $opened"
[[ $(field "$opened" errors) != *timeout* ]] || fail "a shed connection hung until its timeout instead of failing: $opened"
shed=$(grep -E 'flow id=[0-9]+ ' "$E2E_TMP/ts.log" | grep -c 'EMFILE' || true)
((shed == failed)) ||
  fail "$failed connections were shed but $shed flow lines name EMFILE: $(grep -E 'flow id=' "$E2E_TMP/ts.log" | tail -n 3)"
log "a shed flow: $(grep -E 'flow id=[0-9]+ .*EMFILE' "$E2E_TMP/ts.log" | head -n 1)"

t0=$(cpu_ticks "$ts_pid")
sleep 3
# One more attempt at the limit, then the idle period's CPU.
r=$(probe "$SERVER_IP4" "$holder_port" 20)
[[ $(field "$r" result) != connected && $(field "$r" result) != timeout ]] ||
  fail "at the fd limit a new connect() gave $(field "$r" result), expected an error: $r"
ticks=$(($(cpu_ticks "$ts_pid") - t0))
((ticks * 3 < 3 * hz)) || fail "tunsocks used $ticks CPU ticks (${hz}/s) in 3 s at the fd limit: spinning"
log "ok: at the limit: $ticks CPU ticks in 3 s; a new attempt: $r"

touch "$E2E_TMP/release"
wait_for 20 grep -q '^closed' "$E2E_TMP/hold.log" || fail "the holding client did not finish"
alive=$(grep '^answered ' "$E2E_TMP/hold.log")
expect_field "$alive" ok "$ok"
expect_fds_back "$ts_pid" "$base" 10 "tunsocks, once the held flows closed,"
c=$(tunsocks_counters ts)
wait_for 10 bash -c "kill -USR1 $ts_pid; sleep 0.2; grep 'counters {' '$E2E_TMP/ts.log' | tail -n 1 | grep -q '\"flows_open\":0,'" ||
  fail "flows still open after every app connection closed: $(tunsocks_counters ts)"
r=$(probe "$SERVER_IP4" "$holder_port" 20)
expect_probe "$r" connected 5000 "a connect() after the fds were freed"
expect_alive ts
log "ok: recovered: $alive; $r"
