#!/usr/bin/env bash
# BIND (SOCKS5 and SOCKS4) through socksd --enable-bind with a raw python client: the two
# replies, relay both ways, a peer from the wrong host, the BIND timeout. What each
# scenario asserts is written at the top of bind.py.
source "$(dirname "$0")/common.sh"
require_socksd

start_socksd s --listen 127.0.0.1:0 --allow-private --enable-bind
for mode in relay wrong_host socks4; do
  raw bind.py "$s_addr" "$s_pid" "$E2E_TMP/s.log" "$mode" || fail "bind scenario '$mode' failed"
done

cat >"$E2E_TMP/timeout.json" <<JSON
{"listen": ["127.0.0.1:0"], "allow_private": true, "enable_bind": true, "limits": {"bind_timeout_s": 1}}
JSON
start_socksd t --config "$E2E_TMP/timeout.json"
raw bind.py "$t_addr" "$t_pid" "$E2E_TMP/t.log" timeout || fail "bind scenario 'timeout' failed"
kill -0 "$s_pid" && kill -0 "$t_pid" || fail "socksd died"
