#!/usr/bin/env bash
# Bad input against socksd (categories and their assertions: top of bad_input.py):
# truncated, malformed, random bytes, one byte at a time, clients vanishing, wrong
# passwords. After each category: both servers alive, and a fresh curl fetch through
# each (with --proxy-user on the one with users) compares equal by sha256.
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd curl

start_http http
cat >"$E2E_TMP/base.json" <<JSON
{
  "allow_private": true,
  "limits": {"handshake_timeout_s": 5},
  "rules": [
    {"action": "allow", "destinations": ["127.0.0.0/8", "::1/128"]},
    {"action": "allow", "domains": ["localhost"]},
    {"action": "deny", "destinations": ["0.0.0.0/0", "::/0"]}
  ]
}
JSON
start_socksd open --listen 127.0.0.1:0 --config "$E2E_TMP/base.json"
start_socksd auth --listen 127.0.0.1:0 --config "$E2E_TMP/base.json" --user alice:s3cret
check_fresh open
check_fresh auth --proxy-user alice:s3cret

for category in truncated malformed random byte_at_a_time vanish wrong_passwords; do
  log "---- $category"
  raw bad_input.py "$open_addr" "$open_pid" "$E2E_TMP/open.log" "$auth_addr" "$auth_pid" "$E2E_TMP/auth.log" \
    "$category" || fail "bad input '$category'"
  check_fresh open
  check_fresh auth --proxy-user alice:s3cret
  log "ok: after '$category' both servers alive and serving"
done
