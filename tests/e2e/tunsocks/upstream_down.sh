#!/usr/bin/env bash
# The upstream SOCKS server misbehaves; the app gets an error within the connect timeout
# (--connect-timeout 3), never a hang, and tunsocks serves again once the upstream is back:
#  1. a GET works (baseline);
#  2. socksd is stopped (SIGSTOP: its kernel still accepts, nobody answers the SOCKS
#     greeting): connect() fails within 3 s + 1.5 s; flow line end=connect_timeout; the
#     app's SYN retransmissions meanwhile count as duplicate_syns, not as new flows;
#  3. socksd is killed (the port is closed): connect() fails within the same bound;
#     flow line end=upstream_unreachable;
#  4. socksd is started again on the same address and port: GETs work again, bodies
#     compared by sha256.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd curl

timeout_s=3
bound_ms=$((timeout_s * 1000 + 1500))

topo_setup
start_socksd s1
start_http http "$SERVER_IP4"
start_tunsocks ts --connect-timeout "$timeout_s"
body_sha=$(make_body body 1048576)
url="http://$SERVER_IP4:$http_port/body"

line=$(get_and_check ts "$url" body "$body_sha")
log "ok: baseline GET: $line"

# expect_error WHAT: a connect through the TUN fails (any errno) within the bound.
expect_error() {
  local what=$1 r result
  r=$(probe "$SERVER_IP4" "$http_port" 30)
  result=$(field "$r" result)
  [[ $result != connected ]] || fail "$what: connect() succeeded, expected an error ($r)"
  [[ $result != timeout ]] || fail "$what: connect() still pending after 30 s: the app hangs ($r)"
  (($(field "$r" ms) <= bound_ms)) ||
    fail "$what: the error ($result) came after $(field "$r" ms) ms, more than the connect timeout + 1.5 s = $bound_ms ms"
  printf '%s\n' "$r"
}

kill -STOP "$s1_pid"
c0=$(tunsocks_counters ts)
r=$(expect_error "upstream stopped")
line=$(flow_line ts "$(field "$r" port)" 10)
expect_field "$line" end connect_timeout
expect_field "$line" up 0
expect_field "$line" down 0
# The app's kernel retransmitted its SYN (after 1 s, 3 s) while the flow was pending:
# those are duplicates of a pending flow, not new flows.
c1=$(tunsocks_counters ts)
(($(json_get "$c1" duplicate_syns) > $(json_get "$c0" duplicate_syns))) ||
  fail "counters: no duplicate_syns counted while a SYN was pending for 3 s: $c1"
[[ $(json_get "$c1" flows_total) == $(($(json_get "$c0" flows_total) + 1)) ]] ||
  fail "counters: the retransmitted SYNs made flows of their own: $c1"
log "ok: upstream stopped: app got $r; $line"

kill -KILL "$s1_pid"
wait "$s1_pid" 2>/dev/null || true
if _listening_in_proxy; then fail "socksd still listens after SIGKILL"; fi
r=$(expect_error "upstream down")
line=$(flow_line ts "$(field "$r" port)" 10)
expect_field "$line" end upstream_unreachable
expect_field "$line" up 0
expect_field "$line" down 0
log "ok: upstream down: app got $r; $line"

start_socksd s2
for i in 1 2 3; do
  line=$(get_and_check ts "$url" body "$body_sha")
done
log "ok: upstream back: $line"

c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_refused) == 2 ]] || fail "counters: flows_refused != 2: $c"
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0: $c"
[[ $(json_get "$c" flows_total) == 6 ]] || fail "counters: flows_total != 6 (4 GETs, 2 failed): $c"
expect_alive ts
log "ok: counters $c"
