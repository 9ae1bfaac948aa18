#!/usr/bin/env bash
# 50 MiB through socksd both ways with curl over SOCKS5: a download compared by sha256
# on the client, an upload (HTTP PUT) compared by sha256 on the server side. The
# session lines count exactly the bytes relayed: down= the response bytes, up= the
# request head plus the uploaded body.
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd curl

size=$((50 * 1024 * 1024))
body_sha=$(make_body big "$size")
start_http http
start_socksd s --listen 127.0.0.1:0 --allow-private

stats=$(curl_via "$E2E_TMP/big.out" "socks5://$s_addr" "http://127.0.0.1:$http_port/big") ||
  fail "50 MiB download failed"
[[ $(sha256_of "$E2E_TMP/big.out") == "$body_sha" ]] || fail "50 MiB download: sha256 differs"
rm -f "$E2E_TMP/big.out"
read -r cport hdr dl req upl <<<"$stats"
((dl == size)) || fail "curl downloaded $dl bytes, expected $size"
line=$(session_for s "$cport")
expect_field "$line" reply succeeded
expect_field "$line" down $((hdr + dl))
expect_field "$line" up $((req + upl))
log "ok: download: $line"

# Upload: no Expect: 100-continue (the server is HTTP/1.0), a PUT of the whole file.
stats=$(curl_via "$E2E_TMP/up.answer" "socks5://$s_addr" "http://127.0.0.1:$http_port/up" \
  -H 'Expect:' -T "$E2E_TMP/www/big") || fail "50 MiB upload failed"
read -r cport hdr dl req upl <<<"$stats"
grep -q "upload path=/up bytes=$size sha256=$body_sha" "$E2E_TMP/up.answer" ||
  fail "server received something else: $(cat "$E2E_TMP/up.answer") (expected bytes=$size sha256=$body_sha)"
grep -q "upload path=/up bytes=$size sha256=$body_sha" "$E2E_TMP/http.log" ||
  fail "server log lacks the upload line"
line=$(session_for s "$cport")
expect_field "$line" reply succeeded
expect_field "$line" up $((req + upl))
expect_field "$line" down $((hdr + dl))
(($(field "$line" up) >= size)) || fail "up < upload size in: $line"
log "ok: upload: $line"
