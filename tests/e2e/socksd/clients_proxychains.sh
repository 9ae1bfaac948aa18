#!/usr/bin/env bash
# proxychains4 (LD_PRELOAD socksifier, quiet mode, a config file written here) running
# curl through socksd: a socks5 chain entry, a socks5 entry with user/password against
# a server with users, and a socks4 entry. Asserts the body's sha256 and that socksd
# logged the session (reply=succeeded, proto, user) for it.
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd proxychains4 curl

body_sha=$(make_body body 1048576)
start_http http
start_socksd open --listen 127.0.0.1:0 --allow-private
start_socksd auth --listen 127.0.0.1:0 --allow-private --user alice:s3cret

# pc_fetch SERVER "CHAIN ENTRY" PROTO USER
pc_fetch() {
  local server=$1 entry=$2 proto=$3 user=$4
  local conf="$E2E_TMP/proxychains.conf" before
  cat >"$conf" <<CONF
strict_chain
quiet_mode
tcp_read_time_out 15000
tcp_connect_time_out 8000
[ProxyList]
$entry
CONF
  before=$(grep -c 'session id=' "$E2E_TMP/$server.log" || true)
  timeout 30 proxychains4 -q -f "$conf" curl -sS --fail --noproxy '' -o "$E2E_TMP/pc.out" \
    "http://127.0.0.1:$http_port/body" 2>"$E2E_TMP/pc.err" ||
    fail "proxychains4 ($entry) curl failed: $(cat "$E2E_TMP/pc.err")"
  [[ $(sha256_of "$E2E_TMP/pc.out") == "$body_sha" ]] || fail "proxychains4 ($entry): sha256 differs"
  wait_for 10 bash -c "(( \$(grep -c 'session id=' '$E2E_TMP/$server.log') > $before ))" ||
    fail "proxychains4 ($entry): socksd logged no session (did the traffic bypass the proxy?)"
  local line
  line=$(grep 'session id=' "$E2E_TMP/$server.log" | tail -n 1)
  expect_field "$line" proto "$proto"
  expect_field "$line" reply succeeded
  expect_field "$line" user "$user"
  (($(field "$line" down) >= 1048576)) || fail "down < body size in: $line"
  log "ok: proxychains4 $entry: $line"
}

pc_fetch open "socks5 127.0.0.1 $open_port" socks5 -
pc_fetch auth "socks5 127.0.0.1 $auth_port alice s3cret" socks5 alice
pc_fetch open "socks4 127.0.0.1 $open_port" socks4 -
