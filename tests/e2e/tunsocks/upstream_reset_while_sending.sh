#!/usr/bin/env bash
# The server resets the connection while the app is still uploading. The reset travels
# back through the upstream, and tunsocks' next write into its upstream socket fails with
# EPIPE: that must end the flow (the app sees a reset), never the process (a SIGPIPE that
# is not ignored kills it silently; the benchmark found exactly that). Three rounds, then
# a fresh GET proves the tunnel still serves.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_upstream socksd s
start_tunsocks ts
start_http http "$SERVER_IP4"
body_sha=$(make_body after 65536)

for round in 1 2 3; do
  start_peer "abort$round" "$SERVER_IP4" read-then-abort --bytes 1048576
  port_var="abort${round}_port"
  out=$(peer_client --host "$SERVER_IP4" --port "${!port_var}" --mode send --bytes $((256 << 20)) 2>&1; echo "exit=$?")
  expect_alive ts
  echo "$out" | has "ECONNRESET|EPIPE|ConnectionReset|BrokenPipe" ||
    fail "round $round: the app's upload did not end with a reset: $out"
done
resets=$(grep -E 'flow id=[0-9]+ ' "$E2E_TMP/ts.log" | grep -c "end=upstream_reset" || true)
((resets == 3)) || fail "expected 3 flows ended by upstream_reset, got $resets: $(grep 'flow id=' "$E2E_TMP/ts.log")"
get_and_check ts "http://$SERVER_IP4:$http_port/after" after "$body_sha" >/dev/null
expect_alive ts
log "ok: 3 upstream resets during uploads ended 3 flows, tunsocks alive and serving"
