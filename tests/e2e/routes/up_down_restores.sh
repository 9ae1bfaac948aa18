#!/usr/bin/env bash
# up installs the wg-quick-style policy routing and down restores the namespace exactly:
#  - default mode, IPv4 + IPv6, with excludes: the suppress_prefixlength rule at P, the
#    "not fwmark" rule at P+1, default via tun0 and throw routes in table T, per family;
#  - status lists every recorded change as present;
#  - after down, ip rule / ip -6 rule / both route dumps are identical to before up;
#    a second down is a no-op with exit 0;
#  - --include: only those prefixes go to tun0, no default route in T, no IPv6 rules
#    when no IPv6 prefix is included; --ipv6 off: IPv6 rules and routes untouched;
#  - custom --fwmark/--table/--priority are used as given.
source "$(dirname "$0")/common.sh"

routes_netns c
ns=$c_ns
state="$E2E_TMP/routes.state"
snapshot "$ns" >"$E2E_TMP/before.txt"
# Whatever the test leaves behind on failure, the namespace goes with it; the state file
# lives in E2E_TMP.

log "default mode, both families, excludes"
routes "$ns" up --tun tun0 --exclude 10.211.0.1 --exclude 192.0.2.0/24 --exclude 2001:db8:1::/48 \
  --state "$state" 2>"$E2E_TMP/up.log" || fail "up failed: $(cat "$E2E_TMP/up.log")"
r4=$(in_ns "$ns" ip rule)
r6=$(in_ns "$ns" ip -6 rule)
t4=$(in_ns "$ns" ip -4 route show table 720)
t6=$(in_ns "$ns" ip -6 route show table 720)
has_line "$r4" '^2000:[[:space:]]+from all lookup main suppress_prefixlength 0$' "ip rule"
has_line "$r4" '^2001:[[:space:]]+not from all fwmark 0x2d0 lookup 720$' "ip rule"
has_line "$r6" '^2000:[[:space:]]+from all lookup main suppress_prefixlength 0$' "ip -6 rule"
has_line "$r6" '^2001:[[:space:]]+not from all fwmark 0x2d0 lookup 720$' "ip -6 rule"
has_line "$t4" '^default dev tun0 ' "table 720 (IPv4)"
has_line "$t4" '^throw 10\.211\.0\.1 ' "table 720 (IPv4)"
has_line "$t4" '^throw 192\.0\.2\.0/24 ' "table 720 (IPv4)"
has_line "$t6" '^default dev tun0 ' "table 720 (IPv6)"
has_line "$t6" '^throw 2001:db8:1::/48 ' "table 720 (IPv6)"
[[ $(wc -l <<<"$t4") -eq 3 && $(wc -l <<<"$t6") -eq 2 ]] || fail "table 720 holds more than up added: $t4 / $t6"
# main is untouched while up.
[[ "$(in_ns "$ns" ip -4 route show table main)" == "$(sed -n '/^== ip -4 route/,/^== ip -6 route/p' "$E2E_TMP/before.txt" | grep -v '^==' | grep -v 'table' || true)" ]] ||
  fail "up changed the main table"

st=$(routes "$ns" status --state "$state") || fail "status exited $? while up"
has_line "$st" '^up: complete$' "status"
[[ $(grep -c '^  present ' <<<"$st") -eq 9 ]] || fail "status does not show 9 present changes: $st"
lacks_line "$st" 'missing' "status"

routes "$ns" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down failed: $(cat "$E2E_TMP/down.log")"
same_as_before "$ns" "$E2E_TMP/before.txt" "after down"
[[ ! -e $state ]] || fail "down left the state file"
routes "$ns" down --state "$state" 2>"$E2E_TMP/down2.log" || fail "a second down exited $?"
grep -q 'nothing to do' "$E2E_TMP/down2.log" || fail "a second down did not say it had nothing to do"
set +e
routes "$ns" status --state "$state" >/dev/null
[[ $? -eq 3 ]] || fail "status without a state file should exit 3"
set -e

log "--include, custom fwmark/table/priority"
routes "$ns" up --tun tun0 --include 198.51.100.0/24 --include 203.0.113.0/25 --exclude 203.0.113.5 \
  --fwmark 0x1234 --table 100 --priority 1500 --state "$state" 2>"$E2E_TMP/up.log" ||
  fail "up --include failed: $(cat "$E2E_TMP/up.log")"
r4=$(in_ns "$ns" ip rule)
t4=$(in_ns "$ns" ip -4 route show table 100)
has_line "$r4" '^1500:[[:space:]]+from all lookup main suppress_prefixlength 0$' "ip rule (include)"
has_line "$r4" '^1501:[[:space:]]+not from all fwmark 0x1234 lookup 100$' "ip rule (include)"
has_line "$t4" '^198\.51\.100\.0/24 dev tun0 ' "table 100"
has_line "$t4" '^203\.0\.113\.0/25 dev tun0 ' "table 100"
has_line "$t4" '^throw 203\.0\.113\.5 ' "table 100"
lacks_line "$t4" '^default' "table 100 (include mode has no default)"
[[ "$(in_ns "$ns" ip -6 rule)" == "$(sed -n '/^== ip -6 rule/,/^== ip -4 route/p' "$E2E_TMP/before.txt" | grep -v '^==')" ]] ||
  fail "only IPv4 prefixes were included, yet the IPv6 rules changed"
routes "$ns" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down failed: $(cat "$E2E_TMP/down.log")"
same_as_before "$ns" "$E2E_TMP/before.txt" "after down (include)"

log "--ipv6 off"
routes "$ns" up --tun tun0 --ipv6 off --state "$state" 2>"$E2E_TMP/up.log" || fail "up --ipv6 off failed: $(cat "$E2E_TMP/up.log")"
has_line "$(in_ns "$ns" ip -4 route show table 720)" '^default dev tun0 ' "table 720 (ipv6 off)"
[[ -z "$(in_ns "$ns" ip -6 route show table 720 2>/dev/null)" ]] || fail "--ipv6 off still added IPv6 routes"
lacks_line "$(in_ns "$ns" ip -6 rule)" 'fwmark|suppress' "ip -6 rule (ipv6 off)"
routes "$ns" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down failed: $(cat "$E2E_TMP/down.log")"
same_as_before "$ns" "$E2E_TMP/before.txt" "after down (ipv6 off)"

host_untouched
log "PASS"
