#!/usr/bin/env bash
# IPv6 through the TUN (v6 default route on tun0) to an IPv6 server [fd01:202::2]:
# a GET (32 MiB) and a PUT (16 MiB), sha256 on both sides; the flow lines name
# src=[fdfe:dcba:9876::1]:port and dst=[fd01:202::2]:port; a v6 half-close (client first).
# Then tunsocks with an IPv6 upstream (socks5://[fd01:201::2]:1080): the same GET to the
# IPv6 server and one to the IPv4 server.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd curl

topo_setup
start_socksd s --listen "$PROXY_IP4:$UPSTREAM_PORT" --listen "[$PROXY_IP6]:$UPSTREAM_PORT" --allow-open --allow-private
start_http http6 "$SERVER_IP6"
start_http http4 "$SERVER_IP4"
start_tunsocks ts --upstream "socks5://$PROXY_IP4:$UPSTREAM_PORT"
in_client ip -6 route get "$SERVER_IP6" | has "dev $TUN_NAME" ||
  fail "the v6 route to $SERVER_IP6 does not use $TUN_NAME: $(in_client ip -6 route get "$SERVER_IP6")"

base6="http://[$SERVER_IP6]:$http6_port"
sha=$(make_body v6get $((32 * 1024 * 1024)))
line=$(get_and_check ts "$base6/v6get" v6get "$sha")
expect_field "$line" dst "[$SERVER_IP6]:$http6_port"
[[ $(field "$line" src) == "[$TUN_IP6]:"* ]] || fail "src= is not [$TUN_IP6]:port in: $line"
log "ok: v6 GET: $line"

head -c $((16 * 1024 * 1024)) /dev/urandom >"$E2E_TMP/v6put"
line=$(upload_and_check ts http6 "$base6/v6put" "$E2E_TMP/v6put")
expect_field "$line" dst "[$SERVER_IP6]:$http6_port"
log "ok: v6 PUT: $line"

start_peer hc "$SERVER_IP6" client-closes-first --bytes 2097152
peer_client --host "$SERVER_IP6" --port "$hc_port" --mode client-closes-first --bytes 1048576 \
  >"$E2E_TMP/hc.out" 2>&1 || fail "v6 half-close client failed: $(cat "$E2E_TMP/hc.out")"
wait_for 10 grep -q '^sent ' "$E2E_TMP/hc.log" || fail "v6 half-close: the server never saw the app's FIN"
c_sent=$(grep '^sent ' "$E2E_TMP/hc.out")
c_recv=$(grep '^received ' "$E2E_TMP/hc.out")
s_recv=$(grep '^received ' "$E2E_TMP/hc.log")
s_sent=$(grep '^sent ' "$E2E_TMP/hc.log")
expect_field "$s_recv" sha256 "$(field "$c_sent" sha256)"
expect_field "$c_recv" sha256 "$(field "$s_sent" sha256)"
expect_field "$c_recv" bytes 2097152
log "ok: v6 half-close"

stop_tunsocks ts
start_tunsocks ts6 --upstream "socks5://[$PROXY_IP6]:$UPSTREAM_PORT"
in_client ip -6 route get "$PROXY_IP6" | has "dev $CLIENT_VETH" ||
  fail "the v6 upstream $PROXY_IP6 would not leave through $CLIENT_VETH"
line=$(get_and_check ts6 "$base6/v6get" v6get "$sha")
log "ok: v6 upstream, v6 destination: $line"
sha4=$(make_body v4get $((4 * 1024 * 1024)))
line=$(get_and_check ts6 "http://$SERVER_IP4:$http4_port/v4get" v4get "$sha4")
log "ok: v6 upstream, v4 destination: $line"
grep -E 'session id=' "$E2E_TMP/s.log" | has "client=\[?$CLIENT_VETH_IP6" ||
  fail "socksd saw no session from the client's IPv6 address (the v6 upstream was not used?)"
