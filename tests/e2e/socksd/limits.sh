#!/usr/bin/env bash
# Connection limits: max_connections_per_client and max_connections. Assertions are at
# the top of limits.py; afterwards the server is alive and a fresh curl fetch works.
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd curl

start_http http
cat >"$E2E_TMP/per_client.json" <<JSON
{"listen": ["127.0.0.1:0"], "allow_private": true, "limits": {"max_connections_per_client": 3}}
JSON
cat >"$E2E_TMP/global.json" <<JSON
{"listen": ["127.0.0.1:0"], "allow_private": true, "limits": {"max_connections": 4}}
JSON
start_socksd pc --config "$E2E_TMP/per_client.json"
start_socksd gl --config "$E2E_TMP/global.json"
raw limits.py "$pc_addr" "$pc_pid" "$E2E_TMP/pc.log" per_client || fail "max_connections_per_client"
raw limits.py "$gl_addr" "$gl_pid" "$E2E_TMP/gl.log" global || fail "max_connections"
check_fresh pc
check_fresh gl
