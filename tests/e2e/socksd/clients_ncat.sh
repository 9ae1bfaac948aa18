#!/usr/bin/env bash
# ncat (nmap) through socksd: --proxy-type socks4, and socks5 with --proxy-auth against
# a server that requires users. Asserts the body's sha256 (HTTP head stripped) and a
# session line with reply=succeeded and the right proto/user.
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd ncat

body_sha=$(make_body body 1048576)
start_http http
start_socksd open --listen 127.0.0.1:0 --allow-private
start_socksd auth --listen 127.0.0.1:0 --allow-private --user alice:s3cret

# ncat_fetch SERVER PROXY_TYPE PROTO USER [NCAT_ARGS...]
ncat_fetch() {
  local server=$1 ptype=$2 proto=$3 user=$4
  shift 4
  local addr_var="${server}_addr" before
  before=$(grep -c 'session id=' "$E2E_TMP/$server.log" || true)
  printf 'GET /body HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' |
    timeout 30 ncat --proxy "${!addr_var}" --proxy-type "$ptype" "$@" 127.0.0.1 "$http_port" \
      >"$E2E_TMP/ncat.raw" 2>"$E2E_TMP/ncat.err" ||
    fail "ncat --proxy-type $ptype failed: $(cat "$E2E_TMP/ncat.err")"
  raw http_client.py split "$E2E_TMP/ncat.raw" "$E2E_TMP/ncat.body" || fail "ncat $ptype: bad HTTP answer"
  [[ $(sha256_of "$E2E_TMP/ncat.body") == "$body_sha" ]] || fail "ncat $ptype: sha256 differs"
  wait_for 10 bash -c "(( \$(grep -c 'session id=' '$E2E_TMP/$server.log') > $before ))" ||
    fail "ncat $ptype: no session line"
  local line
  line=$(grep 'session id=' "$E2E_TMP/$server.log" | tail -n 1)
  expect_field "$line" proto "$proto"
  expect_field "$line" reply succeeded
  expect_field "$line" user "$user"
  expect_field "$line" down "$(stat -c %s "$E2E_TMP/ncat.raw")"
  log "ok: ncat $ptype: $line"
}

ncat_fetch open socks4 socks4 -
ncat_fetch open socks5 socks5 -
ncat_fetch auth socks5 socks5 alice --proxy-auth alice:s3cret
