# shellcheck shell=bash
# The body of upstream_<kind>.sh (sourced with UPSTREAM_KIND set): one third-party
# SOCKS server as tunsocks' upstream, the same transfers as against socksd.
source "$(dirname "${BASH_SOURCE[0]}")/topology.sh"
require_tunsocks
require_cmd curl

topo_setup
start_upstream "$UPSTREAM_KIND" up
start_http http "$SERVER_IP4"
start_http http6 "$SERVER_IP6"
start_tunsocks ts
# The start-up probe: Dante answers a request pipelined behind the greeting, microsocks
# drops the bytes behind it (so each flow waits for the method selection).
case $UPSTREAM_KIND in
  microsocks) mode="requests in turn" ;;
  *) mode="requests pipelined" ;;
esac
grep -q "$mode" "$E2E_TMP/ts.log" ||
  fail "tunsocks did not log '$mode' for $UPSTREAM_KIND: $(grep -E 'up:|requests' "$E2E_TMP/ts.log")"
log "ok: $mode for $UPSTREAM_KIND"

transfer_suite ts http

sha6=$(make_body v6 $((8 * 1024 * 1024)))
line=$(get_and_check ts "http://[$SERVER_IP6]:$http6_port/v6" v6 "$sha6")
expect_field "$line" dst "[$SERVER_IP6]:$http6_port"
log "ok: IPv6 GET via $UPSTREAM_KIND: $line"

r=$(probe "$SERVER_IP4" 9 20)
line=$(flow_line ts "$(field "$r" port)")
expect_field "$line" reply connection_refused
expect_field "$line" end refused
expect_probe "$r" ECONNREFUSED 1000 "closed port via $UPSTREAM_KIND"
log "ok: closed port via $UPSTREAM_KIND: $r; $line"

c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0: $c"
[[ $(json_get "$c" flows_total) == 4 ]] || fail "counters: flows_total != 4: $c"
expect_alive ts
expect_alive up
log "ok: counters $c"
