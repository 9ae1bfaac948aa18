#!/usr/bin/env bash
# Connection churn, nothing leaked (rates are reported, never asserted):
#  socksd: CHURN_SECONDS (default 5; the issue's long form: CHURN_SECONDS=300) of
#    back-to-back SOCKS5 CONNECT + one echoed message + close, straight to socksd;
#  tunsocks: the same through the TUN.
# Each phase: no connection fails; afterwards socksd's and tunsocks' fds return to their
# baselines, socksd's counters say sessions_open 0, tunsocks' flows_open 0 and lwIP's live
# allocations are back to their baseline, every flow line end=eof and balanced, one flow
# line per connection.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

seconds=${CHURN_SECONDS:-5}
topo_setup
# Tens of thousands of short connections: the ports in TIME_WAIT must not run out.
for ns in "$client_ns" "$proxy_ns"; do
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1 >/dev/null
done
start_socksd s
start_echo echo "$SERVER_IP4"
start_tunsocks ts
r=$(probe "$SERVER_IP4" "$echo_port" 20)
expect_probe "$r" connected 5000 "the warm-up connect()"
wait_for 5 grep -qE 'flow id=1 .* end=' "$E2E_TMP/ts.log" || fail "the warm-up flow did not end"
s_fds=$(fd_count "$s_pid")
ts_fds=$(fd_count "$ts_pid")
lwip_base=$(lwip_baseline ts)

# socksd_counters: SIGUSR1 to socksd, the JSON of its new counters line.
socksd_counters() {
  local before
  before=$(grep -c 'counters {' "$E2E_TMP/s.log" || true)
  kill -USR1 "$s_pid"
  wait_for 5 bash -c "(( \$(grep -c 'counters {' '$E2E_TMP/s.log') > $before ))" || fail "socksd printed no counters"
  grep 'counters {' "$E2E_TMP/s.log" | tail -n 1 | sed 's/.*counters //'
}

# --- socksd
out=$(in_client "$SYSTEM_PYTHON" "$HOLD_MANY" churn --host "$SERVER_IP4" --port "$echo_port" \
  --socks "$PROXY_IP4:$UPSTREAM_PORT" --seconds "$seconds") || fail "churn against socksd failed: $out"
expect_field "$out" failed 0
expect_fds_back "$s_pid" "$s_fds" 10 "socksd, after the churn,"
sc=$(socksd_counters)
[[ $(json_get "$sc" sessions_open) == 0 ]] || fail "socksd counters: sessions_open != 0 after the churn: $sc"
log "ok: socksd churn: $out"

# --- tunsocks
out=$(in_client "$SYSTEM_PYTHON" "$HOLD_MANY" churn --host "$SERVER_IP4" --port "$echo_port" \
  --seconds "$seconds") || fail "churn through tunsocks failed: $out"
expect_field "$out" failed 0
ok=$(field "$out" ok)
want=$((ok + 1))
wait_for 20 bash -c "(( \$(grep -cE 'flow id=[0-9]+ .* end=' '$E2E_TMP/ts.log') >= $want ))" ||
  fail "only $(grep -cE 'flow id=[0-9]+ .* end=' "$E2E_TMP/ts.log") of $want flows ended"
n=$(expect_balanced_flows ts)
((n == want)) || fail "$n of $want flow lines end=eof: $(grep -E 'flow id=' "$E2E_TMP/ts.log" | grep -v 'end=eof' | head -n 3)"
expect_fds_back "$ts_pid" "$ts_fds" 10 "tunsocks, after the churn,"
expect_fds_back "$s_pid" "$s_fds" 10 "socksd, after the churn,"
lwip_now=$(expect_lwip_back ts "$lwip_base")
c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0 after the churn: $c"
[[ $(json_get "$c" flows_total) == "$want" ]] || fail "counters: flows_total != $want: $c"
expect_balanced_counters "$c"
log "ok: tunsocks churn: $out; lwIP allocations $lwip_now (baseline $lwip_base); tunsocks RSS $(rss_kb "$ts_pid") kB"
