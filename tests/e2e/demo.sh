#!/usr/bin/env bash
# The README's first command, platform/linux/demo, run as a newcomer would (with the
# binaries of this build instead of its own install-and-build step), output checked:
# the page arrives, `tunsocks ctl status` names the demo profile, socksd's log line for
# the request is shown, tunsocks removed its routes; afterwards the host's rules and
# routes are exactly as before and no demo namespace is left.
source "$(dirname "$0")/lib.sh"
require_root
require_tun
[[ -n ${TUNSOCKS:-} && -n ${SOCKSD:-} ]] || fail "TUNSOCKS and SOCKSD must name the built binaries"
top=$(cd "$(dirname "$0")/../.." && pwd)

snapshot() { ip rule; ip -4 route show table all; ip -6 route show table all; }
before=$(snapshot)
rc=0
SOCKSD=$SOCKSD TUNSOCKS=$TUNSOCKS timeout -k 5 60 "$top/platform/linux/demo" >"$E2E_TMP/demo.out" 2>&1 || rc=$?
out=$(cat "$E2E_TMP/demo.out")
((rc == 0)) || fail "the demo exited with status $rc: $(tail -n 20 <<<"$out")"
expect_line() { grep -Eq -- "$1" <<<"$out" || fail "$2; demo output: $out"; }
expect_line '^hello from the demo internet: this page came through tunsocks and socksd$' "the page did not arrive"
expect_line '^  profile   demo \(' "ctl status does not show the demo profile"
expect_line '^  flows     0 open, 1 total, 0 refused$' "ctl status does not count the one flow"
expect_line 'session id=[0-9]+ .*cmd=connect dst=10\.77\.0\.2:8080 reply=succeeded .*end=eof' "socksd's line for the request is missing"
expect_line 'flow id=1 .*dst=10\.77\.0\.2:8080 .*reply=succeeded .*end=eof' "tunsocks' line for the request is missing"
expect_line '2001:	not from all fwmark 0x2d0 lookup 720' "the demo did not show the policy rule tunsocks installed"
expect_line 'tunsocks-routes: down: done' "tunsocks did not remove its routes"
expect_line '^rules left in tsdemo-client-[0-9]+: 0$' "rules were left in the client namespace"
after=$(snapshot)
[[ $before == "$after" ]] || fail "the demo changed the host's rules or routes: $(diff <(echo "$before") <(echo "$after"))"
if ip netns list | grep -q '^tsdemo-'; then fail "demo namespaces left: $(ip netns list | grep tsdemo-)"; fi
log "ok: demo output checked; host routing unchanged; nothing left"
