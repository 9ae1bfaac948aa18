#!/usr/bin/env bash
# Reply codes, raw SOCKS bytes: closed port -> 0x05 / SOCKS4 0x5B (session line
# reply=connection_refused); unresolvable name -> 0x04 / 0x5B; unknown command -> 0x07;
# unknown ATYP -> 0x08; BIND without --enable-bind -> 0x07 / 0x5B; only GSSAPI offered
# -> 0xFF; auth required and no-auth offered -> 0xFF; wrong password / unknown user ->
# status != 0 and close (auth_failures counts them); SOCKS4/4a on a server with users
# -> 0x5B; denied by a rule -> 0x02 with a
# warn line naming the destination (denied counts it). Each failure reply is followed
# by a close.
source "$(dirname "$0")/common.sh"
require_socksd

start_http denied_http
start_socksd open --listen 127.0.0.1:0 --allow-private
start_socksd auth --listen 127.0.0.1:0 --allow-private --user alice:s3cret
cat >"$E2E_TMP/rules.json" <<JSON
{
  "listen": ["127.0.0.1:0"],
  "allow_private": true,
  "rules": [
    {"action": "deny", "destinations": ["127.0.0.1/32"], "ports": [$denied_http_port]},
    {"action": "deny", "domains": ["blocked.example"]},
    {"action": "allow", "destinations": ["0.0.0.0/0", "::/0"]}
  ]
}
JSON
start_socksd rules --config "$E2E_TMP/rules.json" --log-level info

raw reply_codes.py open "$open_addr" "$open_pid" "$E2E_TMP/open.log" || fail "reply codes (open server)"
raw reply_codes.py auth "$auth_addr" "$auth_pid" "$E2E_TMP/auth.log" || fail "reply codes (auth server)"
raw reply_codes.py rules "$rules_addr" "$rules_pid" "$E2E_TMP/rules.log" "$denied_http_port" ||
  fail "reply codes (rules server)"

grep -Ei 'warn' "$E2E_TMP/rules.log" | grep -q ":$denied_http_port" ||
  fail "no warn line naming the denied destination :$denied_http_port in rules.log"
log "ok: warn line: $(grep -Ei 'warn' "$E2E_TMP/rules.log" | grep ":$denied_http_port" | head -n 1)"
grep -E 'session id=.* reply=not_allowed' "$E2E_TMP/rules.log" | grep -q "dst=127.0.0.1:$denied_http_port " ||
  fail "no session line with dst=127.0.0.1:$denied_http_port reply=not_allowed"
for n in open auth rules; do
  v="${n}_pid"
  kill -0 "${!v}" || fail "socksd $n died"
done
