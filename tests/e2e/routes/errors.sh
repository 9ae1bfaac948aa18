#!/usr/bin/env bash
# Clear errors with the documented exit codes, and nothing changed by a refused up:
#  - exit 2 and a message naming the value: bad CIDRs (bad octet, host bits set, prefix
#    length too long, not an address), bad --dns, --fwmark 0, an IPv6 prefix with --ipv6
#    off, unknown command/option, up without --tun;
#  - exit 1 and a message: missing TUN device, TUN device down, not root (up and down), table already in
#    use or rule priority taken (the foreign route/rule stays), a state file that is not
#    ours (left alone);
#  - ip failing halfway (IPv6 disabled on tun0): up rolls back what it had done, exit 1,
#    no state file, namespace identical to before.
source "$(dirname "$0")/common.sh"
require_cmd setpriv

routes_netns c
ns=$c_ns
state="$E2E_TMP/routes.state"
snapshot "$ns" >"$E2E_TMP/before.txt"

# expect EXIT PATTERN ARGS...: tunsocks-routes ARGS (in the namespace) exits EXIT and says
# something matching PATTERN on stderr.
expect() {
  local want=$1 pattern=$2 got=0
  shift 2
  routes "$ns" "$@" >"$E2E_TMP/out.log" 2>"$E2E_TMP/err.log" || got=$?
  [[ $got -eq $want ]] || fail "'$*' exited $got, expected $want: $(cat "$E2E_TMP/err.log")"
  grep -Eq -- "$pattern" "$E2E_TMP/err.log" || fail "'$*' did not say /$pattern/: $(cat "$E2E_TMP/err.log")"
  [[ ! -e $state ]] || fail "'$*' left a state file"
}

expect 2 "--exclude '10\.0\.0\.300/8': not an IPv4 or IPv6" up --tun tun0 --exclude 10.0.0.300/8 --state "$state"
expect 2 "--include '10\.1\.2\.3/8': host bits set" up --tun tun0 --include 10.1.2.3/8 --state "$state"
expect 2 "--include '10\.0\.0\.0/33'" up --tun tun0 --include 10.0.0.0/33 --state "$state"
expect 2 "--exclude '2001:db8::/129'" up --tun tun0 --exclude 2001:db8::/129 --state "$state"
expect 2 "--exclude '2001:db8::1::/64'" up --tun tun0 --exclude 2001:db8::1::/64 --state "$state"
expect 2 "--include 'example\.com'" up --tun tun0 --include example.com --state "$state"
expect 2 "--dns 'localhost'" up --tun tun0 --dns localhost --state "$state"
expect 2 "--fwmark 0" up --tun tun0 --fwmark 0 --state "$state"
expect 2 "IPv6 prefix but --ipv6 is off" up --tun tun0 --ipv6 off --exclude 2001:db8::/32 --state "$state"
expect 2 "unknown command" sideways --tun tun0
expect 2 "unknown option '--tunnel'" up --tunnel tun0 --state "$state"
expect 2 "up needs --tun" up --state "$state"
expect 1 "no such network device: nosuch0" up --tun nosuch0 --state "$state"
ip -n "$ns" tuntap add dev tun1 mode tun
expect 1 "tun1 is down" up --tun tun1 --state "$state"
ip -n "$ns" link del tun1

# Not root: the same command as an unprivileged user.
got=0
ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups "$ROUTES" up --tun tun0 \
  --state "$state" 2>"$E2E_TMP/err.log" || got=$?
[[ $got -eq 1 ]] && grep -q 'must run as root' "$E2E_TMP/err.log" ||
  fail "up as nobody: exit $got, $(cat "$E2E_TMP/err.log")"
same_as_before "$ns" "$E2E_TMP/before.txt" "after the refused commands"

log "table and priority already in use"
in_ns "$ns" ip route add 198.51.100.0/24 dev tun0 table 720
expect 1 "table 720 already holds IPv4 routes" up --tun tun0 --state "$state"
has_line "$(in_ns "$ns" ip route show table 720)" '^198\.51\.100\.0/24 dev tun0' "the foreign route"
in_ns "$ns" ip route del 198.51.100.0/24 dev tun0 table 720
in_ns "$ns" ip rule add priority 2001 lookup main
expect 1 "rule already has priority 2001" up --tun tun0 --state "$state"
has_line "$(in_ns "$ns" ip rule)" '^2001:' "the foreign rule"
in_ns "$ns" ip rule del priority 2001 lookup main
same_as_before "$ns" "$E2E_TMP/before.txt" "after the refused ups"

log "a state file that is not ours"
echo "precious" >"$state"
got=0
routes "$ns" down --state "$state" 2>"$E2E_TMP/err.log" || got=$?
[[ $got -eq 1 && $(cat "$state") == precious ]] || fail "down on a foreign file: exit $got, file now '$(cat "$state")'"
got=0
setpriv --reuid=65534 --regid=65534 --clear-groups "$ROUTES" down --state "$state" 2>"$E2E_TMP/err.log" || got=$?
[[ $got -eq 1 ]] && grep -q 'must run as root' "$E2E_TMP/err.log" || fail "down as nobody: exit $got, $(cat "$E2E_TMP/err.log")"
rm -f "$state"

log "ip fails halfway: up rolls back"
in_ns "$ns" sysctl -qw net.ipv6.conf.tun0.disable_ipv6=1
snapshot "$ns" >"$E2E_TMP/before-v6off.txt"
expect 1 "rolling back" up --tun tun0 --exclude 10.211.0.1 --state "$state"
grep -q 'IPv6 is disabled' "$E2E_TMP/err.log" || log "note: ip's own message was: $(cat "$E2E_TMP/err.log")"
same_as_before "$ns" "$E2E_TMP/before-v6off.txt" "after the rolled-back up"

host_untouched
log "PASS"
