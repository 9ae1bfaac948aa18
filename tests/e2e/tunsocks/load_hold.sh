#!/usr/bin/env bash
# Many concurrent TCP flows held through tunsocks (LOAD_FLOWS, default 2000 in CI; the
# issue's long form: LOAD_FLOWS=10000 LOAD_HOLD_SECONDS=600, with `ulimit -n 65536` first:
# socksd needs two descriptors a flow):
#  every flow opens (connect + an echoed byte), none fails;
#  tunsocks' RSS, sampled every second while the flows are held for LOAD_HOLD_SECONDS
#    (default 10), stays within 10% of its value once they are all open (flat);
#  at the end every flow still answers (one more echoed byte on each);
#  after they close: every flow line end=eof and balanced, flows_open 0, tunsocks' and
#    socksd's file descriptors and lwIP's live allocations (pcbs, segments, pbufs:
#    counter lwip_allocations) are back to their baselines.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

flows=${LOAD_FLOWS:-2000}
hold_s=${LOAD_HOLD_SECONDS:-10}
topo_setup
# socksd's default caps a client at 1000 connections (every flow here comes from one) and
# closes a connection idle for 300 s (the long form holds idle flows for 600 s).
cat >"$E2E_TMP/socksd.json" <<JSON
{"listen": ["$PROXY_IP4:$UPSTREAM_PORT"], "allow_open": true, "allow_private": true,
 "limits": {"max_connections": 100000, "max_connections_per_client": 100000,
            "idle_timeout_s": 0}}
JSON
start_socksd s --config "$E2E_TMP/socksd.json"
start_echo echo "$SERVER_IP4"
start_tunsocks ts
r=$(probe "$SERVER_IP4" "$echo_port" 20)
expect_probe "$r" connected 5000 "the warm-up connect()"
wait_for 5 grep -qE 'flow id=1 .* end=' "$E2E_TMP/ts.log" || fail "the warm-up flow did not end"
ts_fds=$(fd_count "$ts_pid")
s_fds=$(fd_count "$s_pid")
rss_base=$(rss_kb "$ts_pid")
lwip_base=$(lwip_baseline ts)

start_bg hold ip netns exec "$client_ns" "$SYSTEM_PYTHON" -u "$HOLD_MANY" hold --host "$SERVER_IP4" \
  --port "$echo_port" --count "$flows" --release "$E2E_TMP/release" --timeout 30
register_cleanup "touch $E2E_TMP/release"
wait_for 300 grep -q '^opened ' "$E2E_TMP/hold.log" || fail "the flows did not open within 300 s: $(cat "$E2E_TMP/hold.log")"
opened=$(grep '^opened ' "$E2E_TMP/hold.log")
expect_field "$opened" ok "$flows"
c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == "$flows" ]] || fail "counters: flows_open != $flows with every flow held: $c"
rss_open=$(rss_kb "$ts_pid")
log "$flows flows open: tunsocks RSS $rss_base -> $rss_open kB, fds $ts_fds -> $(fd_count "$ts_pid")"

rss_max=$rss_open
rss_min=$rss_open
for ((i = 0; i < hold_s; i++)); do
  sleep 1
  expect_alive ts
  v=$(rss_kb "$ts_pid")
  ((v > rss_max)) && rss_max=$v
  ((v < rss_min)) && rss_min=$v
done
((rss_max * 10 <= rss_open * 11)) ||
  fail "tunsocks' RSS grew from $rss_open to $rss_max kB while $flows idle flows were held $hold_s s (more than 10%)"
log "ok: held $hold_s s: RSS $rss_min..$rss_max kB (open: $rss_open kB)"

touch "$E2E_TMP/release"
wait_for 120 grep -q '^closed' "$E2E_TMP/hold.log" || fail "the holding client did not finish: $(cat "$E2E_TMP/hold.log")"
answered=$(grep '^answered ' "$E2E_TMP/hold.log")
expect_field "$answered" ok "$flows"
expect_field "$answered" lost 0
want=$((flows + 1))
wait_for 60 bash -c "(( \$(grep -cE 'flow id=[0-9]+ .* end=' '$E2E_TMP/ts.log') >= $want ))" ||
  fail "only $(grep -cE 'flow id=[0-9]+ .* end=' "$E2E_TMP/ts.log") of $want flows ended after their apps closed"
n=$(expect_balanced_flows ts)
((n == want)) || fail "$n of $want flow lines end=eof: $(grep -E 'flow id=' "$E2E_TMP/ts.log" | grep -v 'end=eof' | head -n 3)"
expect_fds_back "$ts_pid" "$ts_fds" 20 "tunsocks, after every flow closed,"
expect_fds_back "$s_pid" "$s_fds" 20 "socksd, after every flow closed,"
lwip_now=$(expect_lwip_back ts "$lwip_base")
c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0: $c"
expect_balanced_counters "$c"
log "ok: $answered; all $want flows ended cleanly; fds back to $ts_fds (tunsocks) and $s_fds (socksd); lwIP allocations $lwip_now (baseline $lwip_base); RSS now $(rss_kb "$ts_pid") kB"
