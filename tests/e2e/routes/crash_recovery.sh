#!/usr/bin/env bash
# down after a crash removes exactly what up added:
#  - up killed with SIGKILL halfway (a change recorded but not yet made, earlier ones
#    made): status says INCOMPLETE; a new up says on stderr that it runs down first, and
#    ends with exactly one copy of each rule; down then restores the snapshot exactly;
#  - up killed later (a rule into the table already in place), then only down: exact;
#  - the owner died after a complete up and the TUN went away with it (the kernel drops
#    the TUN's routes): down still removes the rules, exits 0, and the namespace matches
#    the snapshot once a TUN of the same name is back.
source "$(dirname "$0")/common.sh"
require_cmd setsid

routes_netns c
ns=$c_ns
state="$E2E_TMP/routes.state"
snapshot "$ns" >"$E2E_TMP/before.txt"

# up_killed_after N: start up with a pause after each recorded change, SIGKILL it (and
# its sleep) once the state file holds N changes.
up_killed_after() {
  local n=$1 pid
  TUNSOCKS_ROUTES_STEP_PAUSE=0.3 setsid ip netns exec "$ns" "$ROUTES" up --tun tun0 \
    --exclude 10.211.0.1 --exclude 2001:db8:1::/48 --state "$state" >"$E2E_TMP/killed.log" 2>&1 &
  pid=$!
  register_cleanup "kill -9 -- -$pid 2>/dev/null"
  wait_for 10 eval "[[ \$(wc -l <'$state' 2>/dev/null || echo 0) -ge $((n + 1)) ]]" ||
    fail "up did not record $n changes within 10 s"
  kill -9 -- "-$pid"
  wait "$pid" 2>/dev/null || true
  grep -q '^complete$' "$state" && fail "up finished before it was killed"
  return 0
}

log "SIGKILL while the 3rd change is recorded but not made, then up again, then down"
up_killed_after 3
has_line "$(in_ns "$ns" ip -4 route show table 720)" '^default dev tun0' "table 720 after the kill"
st=$(routes "$ns" status --state "$state") || fail "status failed on an incomplete state"
has_line "$st" 'INCOMPLETE' "status after the kill"
routes "$ns" up --tun tun0 --exclude 10.211.0.1 --state "$state" 2>"$E2E_TMP/up.log" ||
  fail "up over a stale state failed: $(cat "$E2E_TMP/up.log")"
grep -q 'running down first' "$E2E_TMP/up.log" || fail "up did not say it cleans the stale state: $(cat "$E2E_TMP/up.log")"
r4=$(in_ns "$ns" ip rule)
[[ $(grep -c 'suppress_prefixlength' <<<"$r4") -eq 1 && $(grep -c 'fwmark 0x2d0' <<<"$r4") -eq 1 ]] ||
  fail "rules not installed exactly once after the stale cleanup: $r4"
routes "$ns" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down failed: $(cat "$E2E_TMP/down.log")"
same_as_before "$ns" "$E2E_TMP/before.txt" "after kill, up, down"

log "SIGKILL after the IPv4 rules are in place, then only down"
up_killed_after 5
has_line "$(in_ns "$ns" ip rule)" 'fwmark 0x2d0 lookup 720' "ip rule after the kill"
routes "$ns" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down failed: $(cat "$E2E_TMP/down.log")"
same_as_before "$ns" "$E2E_TMP/before.txt" "after kill, down"
routes "$ns" down --state "$state" 2>/dev/null || fail "a second down exited $?"

log "complete up, then the TUN disappears with its owner, then down"
routes "$ns" up --tun tun0 --exclude 10.211.0.1 --state "$state" 2>"$E2E_TMP/up.log" || fail "up failed: $(cat "$E2E_TMP/up.log")"
ip -n "$ns" link del tun0
routes "$ns" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down without the TUN failed: $(cat "$E2E_TMP/down.log")"
lacks_line "$(in_ns "$ns" ip rule; in_ns "$ns" ip -6 rule)" 'fwmark|suppress' "rules after down without the TUN"
ip -n "$ns" tuntap add dev tun0 mode tun
ip -n "$ns" link set tun0 up
same_as_before "$ns" "$E2E_TMP/before.txt" "after down without the TUN"

host_untouched
log "PASS"
