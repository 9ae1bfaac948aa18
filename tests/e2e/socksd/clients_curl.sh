#!/usr/bin/env bash
# curl through socksd in all four of curl's SOCKS modes (socks4, socks4a, socks5,
# socks5h with `localhost` handed to the proxy), without and with RFC 1929 auth.
# Asserts: the body's sha256; the session line (proto, cmd=connect, reply=succeeded,
# user) with up= equal to the request bytes curl sent and down= equal to the response
# bytes curl received (headers + body, so down >= body size); a missing or wrong
# password is refused; a config user with a crypt(3) password_hash (SHA-512, made by
# openssl passwd -6) authenticates with the password, not with the hash.
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd curl

body_sha=$(make_body body 1048576)
start_http http --dual
start_socksd open --listen 127.0.0.1:0 --allow-private --log-level info
start_socksd auth --listen 127.0.0.1:0 --allow-private --user alice:s3cret --user bob:pw2 --log-level info
hash=$(openssl passwd -6 -salt e2esaltsalt 'h4sh-pw') || skip "openssl passwd -6 failed"
cat >"$E2E_TMP/hashed.json" <<JSON
{"listen": ["127.0.0.1:0"], "allow_private": true, "users": [{"name": "carol", "password_hash": "$hash"}]}
JSON
start_socksd hashed --config "$E2E_TMP/hashed.json"

# fetch SERVER PROXY_URL URL PROTO USER [CURL_ARGS...]
fetch() {
  local server=$1 proxy=$2 url=$3 proto=$4 user=$5
  shift 5
  local out="$E2E_TMP/out.bin" stats
  stats=$(curl_via "$out" "$proxy" "$url" "$@") || fail "curl -x $proxy $url failed"
  [[ $(sha256_of "$out") == "$body_sha" ]] || fail "curl -x $proxy $url: sha256 differs"
  read -r cport hdr dl req upl <<<"$stats"
  local line
  line=$(session_for "$server" "$cport")
  expect_field "$line" proto "$proto"
  expect_field "$line" cmd connect
  expect_field "$line" reply succeeded
  expect_field "$line" user "$user"
  expect_field "$line" down $((hdr + dl))
  expect_field "$line" up $((req + upl))
  local dst
  dst=$(field "$line" dst)
  [[ "$dst" == *":$http_port" ]] || fail "dst=$dst does not name port $http_port in: $line"
  (($(field "$line" down) >= 1048576)) || fail "down < body size in: $line"
  log "ok: $proto via $proxy ($url): $line"
}

fetch open "socks4://$open_addr" "http://127.0.0.1:$http_port/body" socks4 -
fetch open "socks4a://$open_addr" "http://localhost:$http_port/body" socks4a -
fetch open "socks5://$open_addr" "http://127.0.0.1:$http_port/body" socks5 -
fetch open "socks5h://$open_addr" "http://localhost:$http_port/body" socks5 -
# The option spellings too (--socks5-hostname is what the curl docs show).
stats=$(curl -sS --fail --max-time 30 --socks5-hostname "$open_addr" -o "$E2E_TMP/o2" \
  "http://localhost:$http_port/body") || fail "curl --socks5-hostname failed"
[[ $(sha256_of "$E2E_TMP/o2") == "$body_sha" ]] || fail "--socks5-hostname: sha256 differs"
line=$(grep -E 'session id=.* dst=localhost:' "$E2E_TMP/open.log" | tail -n 1) ||
  fail "socks5h: no session line with dst=localhost:PORT (the name must reach the proxy)"
log "ok: --socks5-hostname: $line"

fetch auth "socks5://$auth_addr" "http://127.0.0.1:$http_port/body" socks5 alice --proxy-user alice:s3cret
fetch auth "socks5h://$auth_addr" "http://localhost:$http_port/body" socks5 bob --proxy-user bob:pw2
fetch hashed "socks5://$hashed_addr" "http://127.0.0.1:$http_port/body" socks5 carol --proxy-user carol:h4sh-pw
rc=0
curl -sS --max-time 10 -x "socks5://$hashed_addr" --proxy-user "carol:$hash" -o /dev/null \
  "http://127.0.0.1:$http_port/body" 2>/dev/null || rc=$?
((rc != 0)) || fail "the password hash itself was accepted as the password"
log "ok: the hash is not a password (curl exit $rc)"

# Auth required: curl without credentials, and with a wrong password, must not get through.
rc=0
curl -sS --max-time 10 -x "socks5://$auth_addr" -o /dev/null "http://127.0.0.1:$http_port/body" \
  2>"$E2E_TMP/noauth.err" || rc=$?
((rc != 0)) || fail "curl without --proxy-user got through a server with users"
log "ok: no credentials refused (curl exit $rc: $(head -c 200 "$E2E_TMP/noauth.err"))"
rc=0
curl -sS --max-time 10 -x "socks5://$auth_addr" --proxy-user alice:wrong -o /dev/null \
  "http://127.0.0.1:$http_port/body" 2>"$E2E_TMP/badpw.err" || rc=$?
((rc != 0)) || fail "curl with a wrong password got through"
log "ok: wrong password refused (curl exit $rc: $(head -c 200 "$E2E_TMP/badpw.err"))"
(($(counter auth auth_failures) >= 1)) || fail "auth_failures did not count the wrong password"
