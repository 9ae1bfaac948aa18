#!/usr/bin/env bash
# Flow limits and timeouts:
#  --max-flows 3: with 3 flows open a 4th connect() fails (not accepted, not hung) and
#    counts in flow_limit_refusals; once the 3 end, a new connect() succeeds;
#  --idle-timeout 2: a flow with no traffic either way is ended by tunsocks (flow line
#    end=idle_timeout) and its app sees the end (an error or EOF) within 10 s instead of
#    waiting for ever; a flow that keeps talking is not ended.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_peer holder "$SERVER_IP4" hold

# --- the flow limit (no idle timeout: the 3 flows stay open as long as the test wants)
start_tunsocks tsmax --max-flows 3
start_client hold3 --host "$SERVER_IP4" --port "$holder_port" --mode hold --count 3 --timeout 30
wait_for 10 grep -q '^connected ' "$E2E_TMP/hold3.log" || fail "3 flows did not open: $(cat "$E2E_TMP/hold3.log")"
r=$(probe "$SERVER_IP4" "$holder_port" 20)
[[ $(field "$r" result) != connected ]] || fail "--max-flows 3: a 4th connect() succeeded with 3 flows open ($r)"
[[ $(field "$r" result) != timeout ]] || fail "--max-flows 3: a 4th connect() hangs ($r)"
c=$(tunsocks_counters tsmax)
[[ $(json_get "$c" flow_limit_refusals) == 1 ]] || fail "counters: flow_limit_refusals != 1 after one refusal: $c"
[[ $(json_get "$c" flows_open) == 3 ]] || fail "counters: flows_open != 3: $c"
log "ok: 4th flow refused: $r"
kill "$hold3_pid"
wait "$hold3_pid" 2>/dev/null || true
wait_for 10 bash -c "[[ \$(grep -cE 'flow id=[0-9]+ .* end=' '$E2E_TMP/tsmax.log') == 3 ]]" ||
  fail "the 3 held flows did not end after their app was killed: $(grep -E 'flow id=' "$E2E_TMP/tsmax.log")"
r=$(probe "$SERVER_IP4" "$holder_port" 20)
expect_probe "$r" connected 5000 "a connect() once the 3 flows ended"
stop_tunsocks tsmax

# --- the idle timeout
start_tunsocks ts --idle-timeout 2
start_client hold --host "$SERVER_IP4" --port "$holder_port" --mode hold --count 3 --timeout 15
wait_for 10 grep -q '^connected ' "$E2E_TMP/hold.log" || fail "3 flows did not open: $(cat "$E2E_TMP/hold.log")"

# The idle flows end after ~2 s of silence.
wait_for 15 has_exited "$hold_pid" || fail "--idle-timeout 2: the idle apps still wait 15 s later: $(cat "$E2E_TMP/hold.log")"
ended=$(grep -c '^ended ' "$E2E_TMP/hold.log" || true)
((ended == 3)) || fail "--idle-timeout 2: $ended of 3 idle flows ended: $(cat "$E2E_TMP/hold.log")"
if grep '^ended ' "$E2E_TMP/hold.log" | has 'end=timeout'; then
  fail "--idle-timeout 2: an idle app was never told its flow ended: $(cat "$E2E_TMP/hold.log")"
fi
idle=$(grep -E 'flow id=[0-9]+ ' "$E2E_TMP/ts.log" | grep -c ' end=idle_timeout' || true)
((idle == 3)) || fail "expected 3 flow lines end=idle_timeout, have $idle: $(grep -E 'flow id=' "$E2E_TMP/ts.log")"
log "ok: idle flows ended: $(grep '^ended ' "$E2E_TMP/hold.log" | tr '\n' ' ')"

# A flow that keeps talking outlives the timeout.
in_client "$SYSTEM_PYTHON" -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
for i in range(8):  # 4 s of traffic, a byte every 0.5 s: never idle for 2 s
    s.sendall(b"x"); time.sleep(0.5)
s.shutdown(socket.SHUT_WR)
n = 0
while True:
    d = s.recv(65536)
    if not d: break
    n += len(d)
print("talker", n, flush=True)
' "$SERVER_IP4" "$holder_port" >"$E2E_TMP/talk.out" 2>&1 || fail "a talking flow was cut: $(cat "$E2E_TMP/talk.out")"
log "ok: a talking flow outlived the idle timeout"
expect_alive ts
