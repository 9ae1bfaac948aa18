#!/usr/bin/env bash
# SIGTERM with 5 flows open: tunsocks exits with status 0 within 2 s, the TUN device is
# gone, each open flow is reset (the apps' recv() fails with ECONNRESET, no hang) and
# logged with end=shutdown; the server side sees its 5 connections end too. Then a new
# tunsocks on the same TUN name starts and serves (nothing was left behind).
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_peer holder "$SERVER_IP4" hold
start_tunsocks ts
n=5

start_client hold --host "$SERVER_IP4" --port "$holder_port" --mode hold --count "$n" --timeout 10
wait_for 10 grep -q '^connected ' "$E2E_TMP/hold.log" || fail "holding client did not connect: $(cat "$E2E_TMP/hold.log")"
c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == "$n" ]] || fail "expected $n open flows before SIGTERM: $c"

t0=$(now_ms)
kill -TERM "$ts_pid"
wait_for 2 has_exited "$ts_pid" ||
  fail "tunsocks still runs 2 s after SIGTERM with $n flows open: $(tail -n 3 "$E2E_TMP/ts.log")"
rc=0
wait "$ts_pid" || rc=$?
took=$(($(now_ms) - t0))
((rc == 0)) || fail "tunsocks exited with status $rc on SIGTERM, expected 0: $(tail -n 3 "$E2E_TMP/ts.log")"
if in_client ip link show "$TUN_NAME" >/dev/null 2>&1; then
  fail "$TUN_NAME still exists after tunsocks exited"
fi
log "ok: exit 0 after ${took} ms, $TUN_NAME gone"

wait_for 15 has_exited "$hold_pid" || fail "the apps still wait 15 s after tunsocks stopped (no reset): $(cat "$E2E_TMP/hold.log")"
ended=$(grep -c '^ended ' "$E2E_TMP/hold.log" || true)
((ended == n)) || fail "$ended of $n app connections ended: $(cat "$E2E_TMP/hold.log")"
while read -r l; do
  [[ $(field "$l" end) == ECONNRESET ]] || fail "an open flow was not reset at shutdown: app saw $l"
done < <(grep '^ended ' "$E2E_TMP/hold.log")
shut=$(grep -E 'flow id=[0-9]+ ' "$E2E_TMP/ts.log" | grep -c ' end=shutdown' || true)
((shut == n)) || fail "expected $n flow lines with end=shutdown, have $shut"
wait_for 10 bash -c "(( \$(grep -c '^received ' '$E2E_TMP/holder.log') >= $n ))" ||
  fail "the server still holds connections 10 s after tunsocks stopped: $(cat "$E2E_TMP/holder.log")"
log "ok: apps reset; server side ended: $(grep '^received ' "$E2E_TMP/holder.log" | sed 's/.* end=/end=/' | sort | uniq -c | tr -s ' \n' ' ')"

# Nothing left behind: the same name again.
start_tunsocks ts2
r=$(probe "$SERVER_IP4" "$holder_port" 20)
expect_probe "$r" connected 5000 "connect through a restarted tunsocks"
