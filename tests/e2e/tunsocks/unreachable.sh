#!/usr/bin/env bash
# SOCKS5 refusals other than "connection refused" reach the app as what a direct connect
# would show (the contract: reply 0x03 -> ICMP net unreachable -> ENETUNREACH, 0x04 ->
# ICMP host unreachable -> EHOSTUNREACH, any other refusal -> RST -> ECONNREFUSED):
#  - no route at the proxy (10.204.0.0/16, fd01:204::/64): socksd's connect fails with
#    ENETUNREACH, it replies network_unreachable, the app gets ENETUNREACH;
#  - an `unreachable` route at the proxy (10.203.0.0/24, fd01:203::/64): socksd's connect
#    fails with EHOSTUNREACH, it replies host_unreachable, the app gets EHOSTUNREACH;
#  - a socksd rule denies the destination: reply not_allowed, the app gets ECONNREFUSED.
# Nothing leaves the namespaces: the proxy fails these connects locally.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
ip -n "$proxy_ns" route add unreachable 10.203.0.0/24
ip -n "$proxy_ns" -6 route add unreachable fd01:203::/64
denied_port=7
cat >"$E2E_TMP/socksd.json" <<JSON
{
  "listen": ["$PROXY_IP4:$UPSTREAM_PORT"],
  "allow_open": true,
  "allow_private": true,
  "rules": [
    {"action": "deny", "destinations": ["$SERVER_IP4/32"], "ports": [$denied_port]},
    {"action": "allow", "destinations": ["0.0.0.0/0", "::/0"]}
  ]
}
JSON
start_socksd s --config "$E2E_TMP/socksd.json"
start_tunsocks ts

# check DST PORT SOCKSD_REPLY ERRNO
attempts=0
check() {
  local dst=$1 port=$2 reply=$3 want=$4 shown
  [[ $dst == *:* ]] && shown="[$dst]:$port" || shown="$dst:$port"
  local r
  r=$(probe "$dst" "$port" 20)
  attempts=$((attempts + 1))
  local sline spat=" dst=\[?${dst//./\\.}\]?:$port "
  wait_for 5 grep -qE "$spat" "$E2E_TMP/s.log" ||
    fail "$shown: socksd logged no session for it (tunsocks never asked?); app got: $r"
  sline=$(grep -E "$spat" "$E2E_TMP/s.log" | tail -n 1)
  [[ $(field "$sline" reply) == "$reply" ]] ||
    fail "$shown: socksd replied $(field "$sline" reply), this test expects $reply from it (a socksd matter, not tunsocks'): $sline"
  local line
  line=$(flow_line ts "$(field "$r" port)")
  expect_field "$line" reply "$reply"
  expect_field "$line" end refused
  expect_probe "$r" "$want" 5000 "$shown (socksd reply $reply)"
  log "ok: $shown: socksd $reply -> app $want ($r); $line"
}

check 10.204.0.1 80 network_unreachable ENETUNREACH
check fd01:204::1 80 network_unreachable ENETUNREACH
check 10.203.0.1 80 host_unreachable EHOSTUNREACH
check fd01:203::1 80 host_unreachable EHOSTUNREACH
check "$SERVER_IP4" "$denied_port" not_allowed ECONNREFUSED

c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_refused) == "$attempts" ]] || fail "counters: flows_refused != $attempts: $c"
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0: $c"
expect_alive ts
log "ok: counters $c"
