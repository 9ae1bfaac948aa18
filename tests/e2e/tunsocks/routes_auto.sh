#!/usr/bin/env bash
# "routes": "auto": tunsocks installs policy routing (and, in fake-ip mode, the DNS of its
# namespace) with tunsocks-routes at start and removes it at exit.
#  - snapshot `ip rule`, `ip -4/-6 route show table all` and the namespace's resolv.conf
#    before; while up: the rules and table exist, the resolver is the TUN's peer address,
#    a fetch reaches the server through the proxy; after SIGTERM: identical snapshot;
#  - the same after SIGKILL (nothing is removed then) followed by a fresh start, which
#    cleans up the stale state first, and a clean stop;
#  - a live switch to a profile with an include list and no fake-ip DNS applies the route
#    diff (default route replaced by the two prefixes, resolv.conf restored), the fetch
#    still works, and the switch back restores the first state exactly.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_http web "$SERVER_IP4"
echo through >"$E2E_TMP/www/page"
cfg="$E2E_TMP/tunsocks.json"
cat >"$cfg" <<JSON
{
  "tun": {"name": "$TUN_NAME"},
  "routes": "auto",
  "route_table": 4242,
  "control_socket": "$E2E_TMP/ctl.sock",
  "default_profile": "p",
  "profiles": {
    "p": {"upstream": "socks5://$PROXY_IP4:$UPSTREAM_PORT", "dns": "fake-ip"},
    "q": {"extends": "p", "dns": "off", "routes": {"include": ["$SERVER_IP4/32", "10.99.0.0/16"]}}
  }
}
JSON
resolv="/etc/netns/$client_ns/resolv.conf"
register_cleanup "rm -rf /etc/netns/$client_ns"
snapshot() {
  in_client ip rule
  in_client ip -4 route show table all
  in_client ip -6 route show table all
  cat "$resolv" 2>/dev/null || echo "(no $resolv)"
}
before=$(snapshot)

start_auto() { # start_auto NAME
  start_bg "$1" ip netns exec "$client_ns" "$TUNSOCKS" --config "$cfg"
  _wait_started "$1" "tunsocks-routes: up: $TUN_NAME" "tunsocks routes up"
}
check_up() {
  in_client ip rule | has "not from all fwmark 0x2d0 lookup 4242" || fail "no fwmark rule while up: $(in_client ip rule)"
  in_client ip route show table 4242 | has "default dev $TUN_NAME" || fail "no default route in table 4242"
  grep -q '^nameserver 172.19.0.2$' "$resolv" || fail "the namespace's resolver is not the TUN peer: $(cat "$resolv" 2>&1)"
  local got
  got=$(in_client curl -sS --max-time 10 "http://$SERVER_IP4:$web_port/page") || fail "fetch through auto routes failed"
  [[ $got == through ]] || fail "fetch returned '$got'"
  wait_for 5 grep -q "cmd=connect dst=$SERVER_IP4:$web_port " "$E2E_TMP/s.log" || fail "socksd did not carry the fetch"
}

start_auto ts1
check_up
up_state=$(snapshot)
ctl() { in_client "$TUNSOCKS" ctl --socket "$E2E_TMP/ctl.sock" "$@"; }
ctl switch q >/dev/null || fail "switch to q failed"
wait_for 5 bash -c "ip -n $client_ns route show table 4242 | grep -q '10.99.0.0/16'" ||
  fail "the switch did not add q's include routes: $(in_client ip route show table 4242)"
wait_for 5 bash -c "! ip -n $client_ns route show table 4242 | grep -q '^default'" ||
  fail "the switch left the default route: $(in_client ip route show table 4242)"
[[ ! -e $resolv ]] || fail "q has no fake-ip DNS, but $resolv is still there: $(cat "$resolv")"
got=$(in_client curl -sS --max-time 10 "http://$SERVER_IP4:$web_port/page") || fail "fetch after the switch to q failed"
[[ $got == through ]] || fail "fetch after the switch returned '$got'"
ctl switch p >/dev/null || fail "switch back to p failed"
wait_for 5 bash -c "[[ -e $resolv ]] && ! ip -n $client_ns route show table 4242 | grep -q 10.99.0.0" ||
  fail "the switch back did not restore p's routes and DNS"
now=$(snapshot)
[[ $now == "$up_state" ]] || fail "p -> q -> p is not where p started: $(diff <(echo "$up_state") <(echo "$now"))"
log "ok: live switch applied the route diff both ways"
kill -TERM "$ts1_pid"
wait "$ts1_pid" || fail "tunsocks exited non-zero on SIGTERM: $(tail -n 3 "$E2E_TMP/ts1.log")"
grep -q 'tunsocks-routes: down: done' "$E2E_TMP/ts1.log" || fail "no routes down at exit: $(tail -n 5 "$E2E_TMP/ts1.log")"
after=$(snapshot)
[[ $before == "$after" ]] || fail "routes/DNS differ after a clean stop: $(diff <(echo "$before") <(echo "$after"))"
log "ok: up, fetch, down: identical snapshot"

start_auto ts2
check_up
kill -KILL "$ts2_pid"
wait "$ts2_pid" 2>/dev/null || true
in_client ip rule | has "lookup 4242" || fail "SIGKILL cannot have removed the rules; the test needs them left"
start_auto ts3
grep -q "found the state file" "$E2E_TMP/ts3.log" || fail "the fresh start did not report the stale state: $(head -n 5 "$E2E_TMP/ts3.log")"
check_up
kill -TERM "$ts3_pid"
wait "$ts3_pid" || fail "tunsocks exited non-zero on SIGTERM after a stale cleanup"
after=$(snapshot)
[[ $before == "$after" ]] || fail "routes/DNS differ after SIGKILL + restart + stop: $(diff <(echo "$before") <(echo "$after"))"
log "ok: SIGKILL, restart (stale state cleaned), stop: identical snapshot"
