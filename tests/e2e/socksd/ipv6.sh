#!/usr/bin/env bash
# IPv6 on both sides of socksd: a destination [::1] (curl socks5 with an IPv6 literal,
# socks5h with the literal as the name, and a raw ATYP 0x04 CONNECT), and a listener on
# [::1] (`listening on [::1]:PORT`, a curl fetch through it, client=[::1]:... logged).
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd curl
"$SYSTEM_PYTHON" -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
  skip "no IPv6 loopback (::1) here"

body_sha=$(make_body body 1048576)
start_http http --dual
start_socksd s --listen 127.0.0.1:0 --listen '[::1]:0' --allow-private

grep -Eq 'listening on 127\.0\.0\.1:[0-9]+' "$E2E_TMP/s.log" || fail "no IPv4 listening line"
v6addr=$(grep -Eo 'listening on \[::1\]:[0-9]+' "$E2E_TMP/s.log" | head -n 1) ||
  fail "no 'listening on [::1]:PORT' line for the IPv6 listener"
v6addr=${v6addr#listening on }
log "listeners: $s_addr and $v6addr"

for url in "socks5://$s_addr" "socks5h://$s_addr"; do
  stats=$(curl_via "$E2E_TMP/o" "$url" "http://[::1]:$http_port/body" -g) || fail "curl -x $url to [::1] failed"
  [[ $(sha256_of "$E2E_TMP/o") == "$body_sha" ]] || fail "$url to [::1]: sha256 differs"
  read -r cport hdr dl req upl <<<"$stats"
  line=$(session_for s "$cport")
  expect_field "$line" reply succeeded
  expect_field "$line" down $((hdr + dl))
  [[ $(field "$line" dst) == *"::1"*":$http_port" ]] || fail "dst does not name [::1]:$http_port: $line"
  log "ok: $url -> [::1]: $line"
done

raw ipv6_raw.py "$s_addr" || fail "raw ATYP 0x04 scenario failed"

stats=$(curl_via "$E2E_TMP/o" "socks5://$v6addr" "http://127.0.0.1:$http_port/body" -g) ||
  fail "curl through the IPv6 listener $v6addr failed"
[[ $(sha256_of "$E2E_TMP/o") == "$body_sha" ]] || fail "via $v6addr: sha256 differs"
read -r cport hdr dl req upl <<<"$stats"
line=$(session_for s "$cport")
[[ $(field "$line" client) == "[::1]:$cport" || $(field "$line" client) == "::1:$cport" ]] ||
  fail "client= does not name [::1]:$cport: $line"
expect_field "$line" reply succeeded
log "ok: IPv6 listener: $line"
