#!/usr/bin/env bash
# Safe defaults and the startup contract: each refusal is exit 2 with a one-line error.
#  - a non-loopback listener without users refuses to start, naming --allow-open; with
#    --allow-open, or with a user, it starts;
#  - bad command lines (unknown option, bad listen address, bad port, bad log level,
#    bad --user, missing values) exit 2;
#  - config errors name the JSON path: unknown keys (top level, in a rule, in limits,
#    in a user), a bad CIDR, bad port ranges, a bad action, a wrong type; invalid JSON
#    and a missing file exit 2 as well;
#  - --help and --version exit 0.
source "$(dirname "$0")/common.sh"
require_socksd

expect_exit2 "0.0.0.0 without users" 'allow-open' --listen 0.0.0.0:0
printf '{"listen": ["0.0.0.0:0"]}' >"$E2E_TMP/any.json"
expect_exit2 "0.0.0.0 without users (config)" 'allow[-_]open' --config "$E2E_TMP/any.json"

# Non-loopback listener allowed explicitly: it starts (and is stopped at once).
start_socksd open_any --listen 0.0.0.0:0 --allow-open
kill -TERM "$open_any_pid"
start_socksd with_user --listen 0.0.0.0:0 --user alice:s3cret
kill -TERM "$with_user_pid"

expect_exit2 "unknown option" 'bogus' --bogus
expect_exit2 "bad listen address" 'listen|address|nonsense' --listen nonsense
expect_exit2 "listen port out of range" 'listen|port|70000' --listen 127.0.0.1:70000
expect_exit2 "bad log level" 'log|level|loud' --listen 127.0.0.1:0 --log-level loud
expect_exit2 "--user without a password" 'user' --listen 127.0.0.1:0 --user alice
expect_exit2 "--listen without a value" 'listen' --listen

cfg() { printf '%s' "$1" >"$E2E_TMP/c.json"; echo "$E2E_TMP/c.json"; }
# A path may be written rules[0].x, rules.0.x or /rules/0/x: accept each spelling.
expect_exit2 "unknown top-level key" 'bogus_key' --config "$(cfg '{"listen":["127.0.0.1:0"],"bogus_key":1}')"
expect_exit2 "unknown key in a rule" 'rules(\[0\]|\.0|/0)(\.|/)colour' \
  --config "$(cfg '{"listen":["127.0.0.1:0"],"rules":[{"action":"allow","colour":"red"}]}')"
expect_exit2 "unknown key in limits" 'limits(\.|/)max_bananas' \
  --config "$(cfg '{"listen":["127.0.0.1:0"],"limits":{"max_bananas":3}}')"
expect_exit2 "unknown key in a user" 'users(\[0\]|\.0|/0)(\.|/)pin' \
  --config "$(cfg '{"listen":["127.0.0.1:0"],"users":[{"name":"a","password":"b","pin":1}]}')"
expect_exit2 "bad CIDR" 'rules(\[1\]|\.1|/1)(\.|/)destinations(\[0\]|\.0|/0)' \
  --config "$(cfg '{"listen":["127.0.0.1:0"],"rules":[{"action":"allow"},{"action":"deny","destinations":["10.0.0.0/33"]}]}')"
expect_exit2 "bad CIDR (not an address)" 'rules(\[0\]|\.0|/0)(\.|/)clients(\[1\]|\.1|/1)' \
  --config "$(cfg '{"listen":["127.0.0.1:0"],"rules":[{"action":"allow","clients":["127.0.0.0/8","banana/8"]}]}')"
expect_exit2 "reversed port range" 'rules(\[0\]|\.0|/0)(\.|/)ports(\[1\]|\.1|/1)' \
  --config "$(cfg '{"listen":["127.0.0.1:0"],"rules":[{"action":"allow","ports":[80,"9000-80"]}]}')"
expect_exit2 "port range past 65535" 'rules(\[0\]|\.0|/0)(\.|/)ports(\[0\]|\.0|/0)' \
  --config "$(cfg '{"listen":["127.0.0.1:0"],"rules":[{"action":"allow","ports":["1-70000"]}]}')"
expect_exit2 "bad action" 'rules(\[0\]|\.0|/0)(\.|/)action' \
  --config "$(cfg '{"listen":["127.0.0.1:0"],"rules":[{"action":"maybe"}]}')"
expect_exit2 "wrong type" 'limits(\.|/)max_connections' \
  --config "$(cfg '{"listen":["127.0.0.1:0"],"limits":{"max_connections":"many"}}')"
expect_exit2 "bad listen in config" 'listen(\[0\]|\.0|/0)' \
  --config "$(cfg '{"listen":["127.0.0.1:99999"]}')"
expect_exit2 "invalid JSON" 'json|parse|syntax|c\.json' --config "$(cfg '{"listen": [')"
expect_exit2 "missing config file" 'no-such-file' --config "$E2E_TMP/no-such-file.json"

for flag in --help --version; do
  rc=0
  timeout -k 1 5 "$SOCKSD" "$flag" >"$E2E_TMP/out.txt" 2>&1 || rc=$?
  ((rc == 0)) || fail "socksd $flag exited $rc"
  [[ -s "$E2E_TMP/out.txt" ]] || fail "socksd $flag printed nothing"
  log "ok: $flag -> exit 0: $(head -n 1 "$E2E_TMP/out.txt")"
done
