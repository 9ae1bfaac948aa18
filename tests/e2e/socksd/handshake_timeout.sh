#!/usr/bin/env bash
# 300 idle / half-open handshakes against socksd with handshake_timeout_s = 1: all are
# closed by the server and counted in handshake_timeouts, while an established session
# idle for longer is left alone (handshake_timeout.py). Then the server is alive and a
# fresh curl fetch works.
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd curl

start_http http
cat >"$E2E_TMP/hs.json" <<JSON
{"listen": ["127.0.0.1:0"], "allow_private": true, "limits": {"handshake_timeout_s": 1}}
JSON
start_socksd s --config "$E2E_TMP/hs.json"
raw handshake_timeout.py "$s_addr" "$s_pid" "$E2E_TMP/s.log" || fail "half-open handshakes"
check_fresh s
