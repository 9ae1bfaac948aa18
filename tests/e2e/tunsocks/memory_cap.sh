#!/usr/bin/env bash
# tunsocks in a memory cgroup (v2 memory.max where the memory controller is on the unified
# hierarchy, else v1 memory.limit_in_bytes), flow attempts held open at once until the cap:
#  no OOM kill: tunsocks still runs and the cgroup's oom_kill count is 0;
#  near the cap new flows are refused by tunsocks' memory guard (src/tunnel/memory_guard.h),
#    not accepted and starved: every attempt either connects and echoes or fails at once
#    (none hangs to its timeout); the refusals equal the counters' memory_refusals and the
#    log says so;
#  afterwards (flows closed): flows_open 0, the guard admits again (log line), and a new
#    connect() succeeds.
# Scale: the issue's 64 MiB with 20000 attempts needs 40000 descriptors in socksd (two a
# flow); the CI machine's hard RLIMIT_NOFILE is 20000, so CI runs 9000 attempts against
# 32 MiB (about 5000 idle flows fit). Long form, with a hard limit above 42000:
#   MEMORY_CAP_MB=64 MEMORY_CAP_FLOWS=20000 ctest -R memory_cap
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

cap=$((${MEMORY_CAP_MB:-32} * 1024 * 1024))
ulimit -n "$(ulimit -Hn)"
flows=${MEMORY_CAP_FLOWS:-$(( ($(ulimit -n) - 2000) / 2 < 20000 ? ($(ulimit -n) - 2000) / 2 : 20000 ))}
TOPO_NSENTER=1
topo_setup
cat >"$E2E_TMP/socksd.json" <<JSON
{"listen": ["$PROXY_IP4:$UPSTREAM_PORT"], "allow_open": true, "allow_private": true,
 "limits": {"max_connections": 100000, "max_connections_per_client": 100000}}
JSON
start_socksd s --config "$E2E_TMP/socksd.json"
start_echo echo "$SERVER_IP4"
start_tunsocks ts

cg=""
if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  cg=/sys/fs/cgroup/tunsocks-e2e-$$
  mkdir "$cg" || fail "cannot create $cg"
  echo "$cap" >"$cg/memory.max"
  echo 0 >"$cg/memory.swap.max" 2>/dev/null || true
  oom_kills() { awk '$1 == "oom_kill" { print $2 }' "$cg/memory.events"; }
  usage() { cat "$cg/memory.current"; }
elif [[ -d /sys/fs/cgroup/memory ]]; then
  cg=/sys/fs/cgroup/memory/tunsocks-e2e-$$
  mkdir "$cg" || fail "cannot create $cg"
  echo "$cap" >"$cg/memory.limit_in_bytes"
  echo "$cap" >"$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
  oom_kills() { awk '$1 == "oom_kill" { print $2 }' "$cg/memory.oom_control"; }
  usage() { cat "$cg/memory.max_usage_in_bytes"; }
else
  fail "no cgroup memory controller (v2 or v1) to cap tunsocks with"
fi
register_cleanup "for p in \$(cat $cg/cgroup.procs 2>/dev/null); do echo \$p > $(dirname "$cg")/cgroup.procs; done; rmdir $cg"
echo "$ts_pid" >"$cg/cgroup.procs" || fail "cannot move tunsocks into $cg"
log "tunsocks (pid $ts_pid) capped at $cap bytes in $cg"
# A record of the cgroup's figures for a failure's post-mortem (shown with the other logs).
start_bg mem bash -c "while sleep 0.2; do echo \$(date +%T.%N | cut -c1-12) \$(cat $cg/memory.current $cg/memory.usage_in_bytes 2>/dev/null) \$(grep -E '^(total_)?(inactive_file|rss|sock|kernel) ' $cg/memory.stat | tr '\n' ' '); done"

# One flow first: the guard reads the cgroup only when a flow asks to open.
r=$(probe "$SERVER_IP4" "$echo_port" 20)
expect_probe "$r" connected 5000 "a connect() in the cgroup"
c=$(tunsocks_counters ts)
[[ $(json_get "$c" memory_limit) == "$cap" ]] || fail "tunsocks does not see the cgroup's limit: $c"

start_bg hold ip netns exec "$client_ns" "$SYSTEM_PYTHON" -u "$HOLD_MANY" hold --host "$SERVER_IP4" \
  --port "$echo_port" --count "$flows" --release "$E2E_TMP/release" --timeout 10
register_cleanup "touch $E2E_TMP/release"
wait_for 600 grep -q '^opened ' "$E2E_TMP/hold.log" || fail "the attempts did not finish: $(cat "$E2E_TMP/hold.log")"
opened=$(grep '^opened ' "$E2E_TMP/hold.log")
c=$(tunsocks_counters ts)
log "$opened; cgroup peak usage $(usage) bytes, oom kills $(oom_kills); tunsocks RSS $(rss_kb "$ts_pid") kB"
log "counters: $c"
expect_alive ts
[[ $(oom_kills) == 0 ]] || fail "the OOM killer ran in tunsocks' cgroup"
[[ $(field "$opened" errors) != *timeout* ]] || fail "attempts hung to their timeout instead of being refused: $opened"
failed=$(field "$opened" failed)
((failed > 0)) || fail "no attempt was refused: the cap was never approached (peak $(usage) of $cap bytes)"
[[ $(json_get "$c" memory_refusals) == "$failed" ]] ||
  fail "$failed attempts failed but memory_refusals is $(json_get "$c" memory_refusals): $c"
grep -q 'memory: working set .* refusing new flows' "$E2E_TMP/ts.log" || fail "no log line says new flows are refused"
touch "$E2E_TMP/release"
wait_for 120 grep -q '^closed' "$E2E_TMP/hold.log" || fail "the holding client did not finish"
answered=$(grep '^answered ' "$E2E_TMP/hold.log")
expect_field "$answered" lost 0
wait_for 60 bash -c "kill -USR1 $ts_pid; sleep 0.5; grep 'counters {' '$E2E_TMP/ts.log' | tail -n 1 | grep -q '\"flows_open\":0,'" ||
  fail "flows still open after every app connection closed"
r=$(probe "$SERVER_IP4" "$echo_port" 20)
expect_probe "$r" connected 5000 "a connect() after the load"
grep -q 'memory: .* accepting new flows' "$E2E_TMP/ts.log" || fail "no log line says new flows are accepted again"
expect_alive ts
log "ok: $opened; $answered; then $r"
