#!/usr/bin/env bash
# update switches what is routed into the TUN as a diff (a live profile switch):
#  - without a state file: exit 1, "update: nothing is up ... run up first", nothing made;
#  - up --include A (IPv4), then update to A + B (IPv4) + C (IPv6) with --exclude D:
#    table 720 (both families) and ip rule / ip -6 rule are exactly what they should be
#    (the IPv6 table and rules appear because an IPv6 prefix is now included);
#  - A's route kept its identity: `ip monitor route` running across the update shows
#    the new routes added and no deletion of A; a new route appears before any is removed;
#  - update back to A only: table and rules equal the snapshot taken right after up (the
#    IPv6 rules and routes are gone again), and status still reads "complete";
#  - update --tun tun0 --table 5: exit 2 (update takes the table from the state file);
#  - DNS: update --dns X writes the namespace's resolv.conf, update --dns Y rewrites it,
#    update without --dns removes it again (it did not exist before);
#  - down: ip rule, ip -6 rule and both route dumps equal the snapshot before up.
source "$(dirname "$0")/common.sh"

routes_netns c
ns=$c_ns
state="$E2E_TMP/routes.state"
A=10.1.0.0/16 B=10.2.0.0/16 C=2001:db8:c::/48 D=10.1.5.0/24
snapshot "$ns" >"$E2E_TMP/before.txt"

# tables_and_rules: what up/update may change (sorted route dumps: the kernel's order of
# prefixes in a dump is not what this test is about).
tables_and_rules() {
  echo "== ip -4 route show table 720"
  in_ns "$ns" ip -4 route show table 720 | sort
  echo "== ip -6 route show table 720"
  # (ip exits 2 while no IPv6 route has ever used table 720)
  { in_ns "$ns" ip -6 route show table 720 2>/dev/null || true; } | sort
  echo "== ip rule"
  in_ns "$ns" ip -4 rule
  echo "== ip -6 rule"
  in_ns "$ns" ip -6 rule
}
expect_exactly() { # expect_exactly FILE WHAT
  local d
  if ! d=$(tables_and_rules | diff -u "$1" -); then
    printf '%s\n' "$d" >&2
    fail "$2: tables/rules differ from what was expected"
  fi
}
# run_ok LOGNAME ARGS...: tunsocks-routes ARGS in the namespace must succeed.
run_ok() {
  local name=$1
  shift
  routes "$ns" "$@" 2>"$E2E_TMP/$name.log" || fail "'$*' failed: $(cat "$E2E_TMP/$name.log")"
}

log "update without a state file"
got=0
routes "$ns" update --tun tun0 --include "$A" --state "$state" 2>"$E2E_TMP/err.log" || got=$?
[[ $got -eq 1 ]] || fail "update without a state file exited $got, expected 1: $(cat "$E2E_TMP/err.log")"
grep -q 'update: nothing is up (no state file .*); run up first' "$E2E_TMP/err.log" ||
  fail "update without a state file did not say so: $(cat "$E2E_TMP/err.log")"
[[ ! -e $state ]] || fail "update without a state file created one"
same_as_before "$ns" "$E2E_TMP/before.txt" "after a refused update"

log "up --include A"
run_ok up up --tun tun0 --include "$A" --state "$state"
tables_and_rules >"$E2E_TMP/after_up.txt"
has_line "$(cat "$E2E_TMP/after_up.txt")" '^10\.1\.0\.0/16 dev tun0 ' "table 720 after up"

# start_monitor / stop_monitor LAST-PATTERN: `ip monitor route` in the namespace around an
# update; stop_monitor waits for a line matching LAST-PATTERN, then sets mon to what the
# monitor saw between the two (minus its own start marker).
start_monitor() {
  : >"$E2E_TMP/monitor.log"
  in_ns "$ns" ip monitor route >>"$E2E_TMP/monitor.log" 2>&1 &
  mon_pid=$!
  register_cleanup "kill $mon_pid 2>/dev/null; wait $mon_pid 2>/dev/null"
  # Make sure it listens before the update: a marker route (table 999) added and deleted
  # until it reports the deletion. Marker lines are left out of what it saw.
  local tries=0
  until grep -q '^Deleted.*192\.0\.2\.99' "$E2E_TMP/monitor.log"; do
    ((++tries <= 50)) || fail "ip monitor route reported nothing within 5 s"
    in_ns "$ns" ip route add unreachable 192.0.2.99 table 999
    in_ns "$ns" ip route del unreachable 192.0.2.99 table 999
    sleep 0.1
  done
  mon_mark=$(wc -l <"$E2E_TMP/monitor.log")
}
stop_monitor() {
  wait_for 5 grep -Eq -- "$1" "$E2E_TMP/monitor.log" || fail "ip monitor route did not report /$1/"
  sleep 0.2
  kill "$mon_pid" 2>/dev/null
  wait "$mon_pid" 2>/dev/null || true
  mon=$(tail -n +"$((mon_mark + 1))" "$E2E_TMP/monitor.log" | grep -v '192\.0\.2\.99' || true)
  mon_round=$((mon_round + 1))
  printf '%s\n' "$mon" >"$E2E_TMP/monitor-$mon_round.log"
}
mon_round=0

log "update to A + B + C, exclude D (with ip monitor route running)"
start_monitor
run_ok update1 update --tun tun0 --include "$A" --include "$B" --include "$C" --exclude "$D" --state "$state"
stop_monitor '2001:db8:c::/48'
lacks_line "$mon" '^Deleted' "ip monitor route during update (nothing should be removed)"
has_line "$mon" '^10\.2\.0\.0/16 dev tun0 table 720' "ip monitor route during update (B added)"
has_line "$mon" '^throw 10\.1\.5\.0/24 table 720' "ip monitor route during update (D added)"
lacks_line "$mon" '10\.1\.0\.0/16' "ip monitor route during update (A must not be touched)"

cat >"$E2E_TMP/want_abcd.txt" <<'EOF'
== ip -4 route show table 720
10.1.0.0/16 dev tun0 scope link linkdown 
10.2.0.0/16 dev tun0 scope link linkdown 
throw 10.1.5.0/24 
== ip -6 route show table 720
2001:db8:c::/48 dev tun0 metric 1024 linkdown pref medium
== ip rule
0:	from all lookup local
2000:	from all lookup main suppress_prefixlength 0
2001:	not from all fwmark 0x2d0 lookup 720
32766:	from all lookup main
32767:	from all lookup default
== ip -6 rule
0:	from all lookup local
2000:	from all lookup main suppress_prefixlength 0
2001:	not from all fwmark 0x2d0 lookup 720
32766:	from all lookup main
EOF
expect_exactly "$E2E_TMP/want_abcd.txt" "after update to A+B+C, exclude D"
st=$(routes "$ns" status --state "$state") || fail "status after update failed"
has_line "$st" '^up: complete$' "status after update"
lacks_line "$st" 'missing' "status after update"
[[ $(tail -n 1 "$state") == complete ]] || fail "the state file does not end in complete after update"

log "update to A + E: E is added before B, C and D go; A stays"
E=10.3.0.0/16
start_monitor
run_ok update2a update --tun tun0 --include "$A" --include "$E" --state "$state"
stop_monitor '^Deleted 2001:db8:c::/48'
lacks_line "$mon" '10\.1\.0\.0/16' "ip monitor route during update to A + E (A must not be touched)"
has_line "$mon" '^Deleted 10\.2\.0\.0/16 ' "ip monitor route during update to A + E (B removed)"
has_line "$mon" '^Deleted throw 10\.1\.5\.0/24 ' "ip monitor route during update to A + E (D removed)"
first_del=$(grep -n '^Deleted' <<<"$mon" | head -n 1 | cut -d: -f1)
e_add=$(grep -n '^10\.3\.0\.0/16 dev tun0' <<<"$mon" | head -n 1 | cut -d: -f1)
[[ -n $e_add ]] || fail "ip monitor route did not see E added: $mon"
((e_add < first_del)) || fail "a route was removed before E was added: $mon"
t=$(tables_and_rules)
has_line "$t" '^10\.3\.0\.0/16 dev tun0 ' "table 720 after update to A + E"
lacks_line "$(in_ns "$ns" ip -6 rule)" 'fwmark|suppress' "ip -6 rule after update to A + E (no IPv6 prefix left)"

log "update back to A only"
run_ok update2 update --tun tun0 --include "$A" --state "$state"
expect_exactly "$E2E_TMP/after_up.txt" "after update back to A"
st=$(routes "$ns" status --state "$state") || fail "status after the second update failed"
has_line "$st" '^up: complete$' "status after the second update"
lacks_line "$st" '10\.2\.0\.0|2001:db8:c|10\.1\.5\.0|ip -6' "status after the second update"

log "update with --table is refused"
got=0
routes "$ns" update --tun tun0 --include "$A" --table 5 --state "$state" 2>"$E2E_TMP/err.log" || got=$?
[[ $got -eq 2 ]] || fail "update --table exited $got, expected 2: $(cat "$E2E_TMP/err.log")"
expect_exactly "$E2E_TMP/after_up.txt" "after a refused update --table"

log "update from include to everything and back: both families, then IPv4 only"
run_ok update3 update --tun tun0 --state "$state"
t=$(tables_and_rules)
has_line "$t" '^default dev tun0 ' "table 720 (IPv4) after update to everything"
has_line "$t" '^default dev tun0 metric' "table 720 (IPv6) after update to everything"
lacks_line "$t" '10\.1\.0\.0' "table 720 after update to everything"
run_ok update4 update --tun tun0 --include "$A" --state "$state"
expect_exactly "$E2E_TMP/after_up.txt" "after update back to A (from everything)"

log "DNS: update adds, changes and removes it"
resolv="/etc/netns/$ns/resolv.conf"
register_cleanup "rm -f '$resolv'; rmdir '/etc/netns/$ns' 2>/dev/null"
[[ ! -e $resolv ]] || fail "$resolv exists before the test"
run_ok update5 update --tun tun0 --include "$A" --dns 192.0.2.53 --state "$state"
grep -qx 'nameserver 192.0.2.53' "$resolv" || fail "update --dns did not write $resolv"
run_ok update6 update --tun tun0 --include "$A" --dns 192.0.2.54 --dns 2001:db8::53 --state "$state"
[[ $(grep '^nameserver' "$resolv") == $'nameserver 192.0.2.54\nnameserver 2001:db8::53' ]] ||
  fail "update to other --dns: $(cat "$resolv")"
expect_exactly "$E2E_TMP/after_up.txt" "after the DNS updates"
run_ok update7 update --tun tun0 --include "$A" --state "$state"
[[ ! -e $resolv && ! -e /etc/netns/$ns ]] || fail "update without --dns left $resolv (or its directory)"
grep -q '^dns-\|^mkdir\|^tmpfile' "$state" && fail "update without --dns left DNS lines in the state file: $(cat "$state")"

log "down"
run_ok down down --state "$state"
[[ ! -e $state ]] || fail "down left the state file"
same_as_before "$ns" "$E2E_TMP/before.txt" "after up, updates, down"
host_untouched
log "PASS"
