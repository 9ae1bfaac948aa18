#!/usr/bin/env bash
# The other upstream URL forms, against socksd: each runs a GET and a PUT (16 MiB each,
# sha256 both sides, flow lines checked) and a closed port (ECONNREFUSED at the app).
#  socks5://alice:s3cret@  (RFC 1929) -> reply=succeeded / connection_refused
#  socks5h://              -> reply=succeeded / connection_refused (the app uses IPs)
#  socks4://               -> reply=granted / rejected
#  socks4a://              -> reply=granted / rejected
#  socks5://alice:wrong@   -> the handshake fails: the app gets an error within the
#                             connect timeout; flow line end=handshake_failed.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd curl

topo_setup
auth_port=1080
open_port=1081
start_socksd sa --listen "$PROXY_IP4:$auth_port" --allow-private --user alice:s3cret
start_socksd so --listen "$PROXY_IP4:$open_port" --allow-open --allow-private
start_http http "$SERVER_IP4"
size=$((16 * 1024 * 1024))

# variant NAME URL OK_REPLY REFUSED_REPLY REQUESTS
variant() {
  local name=$1 url=$2 ok=$3 refused=$4 requests=$5 line r
  start_tunsocks "$name" --upstream "$url" --connect-timeout 5
  # The start-up probe found that socksd answers a SOCKS5 request pipelined behind the
  # greeting (and the credentials); SOCKS4 has no greeting to pipeline behind.
  grep -q "requests $requests)" "$E2E_TMP/$name.log" ||
    fail "$url: the start line does not say 'requests $requests': $(grep ' up: ' "$E2E_TMP/$name.log")"
  OK_REPLY=$ok transfer_suite "$name" http "$size" "$size"
  line=$(grep -E 'flow id=[0-9]+ ' "$E2E_TMP/$name.log" | head -n 1)
  expect_field "$line" reply "$ok"
  local shown
  shown=$(field "$line" upstream)
  [[ $shown == "${url%%://*}://"*"@$PROXY_IP4:"* || $shown == "$url" ]] ||
    fail "flow line names upstream=$shown, expected $url (credentials may be masked)"
  ! grep -q 's3cret' "$E2E_TMP/$name.log" || fail "tunsocks logged the upstream password: $(grep -m1 s3cret "$E2E_TMP/$name.log")"
  r=$(probe "$SERVER_IP4" 9 20)
  line=$(flow_line "$name" "$(field "$r" port)")
  expect_field "$line" reply "$refused"
  expect_field "$line" end refused
  expect_probe "$r" ECONNREFUSED 1000 "closed port via $url"
  log "ok: $url: closed port -> $r; $line"
  stop_tunsocks "$name"
}

variant ts5 "socks5://alice:s3cret@$PROXY_IP4:$auth_port" succeeded connection_refused pipelined
variant ts5h "socks5h://$PROXY_IP4:$open_port" succeeded connection_refused pipelined
variant ts4 "socks4://$PROXY_IP4:$open_port" granted rejected "in turn"
variant ts4a "socks4a://$PROXY_IP4:$open_port" granted rejected "in turn"

# A wrong password: the upstream says no before any CONNECT.
start_tunsocks tsbad --upstream "socks5://alice:wrong@$PROXY_IP4:$auth_port" --connect-timeout 3
r=$(probe "$SERVER_IP4" "$http_port" 30)
[[ $(field "$r" result) != connected ]] || fail "wrong password: connect() succeeded ($r)"
[[ $(field "$r" result) != timeout ]] || fail "wrong password: connect() hangs ($r)"
(($(field "$r" ms) <= 4500)) || fail "wrong password: the error came after $(field "$r" ms) ms (> connect timeout + 1.5 s)"
grep -q "upstream socks5://alice:.*refuses our handshake (authentication rejected" "$E2E_TMP/tsbad.log" ||
  fail "wrong password: no start-up warning that the upstream refuses the handshake: $(grep -i 'upstream' "$E2E_TMP/tsbad.log" | head -n 3)"
line=$(flow_line tsbad "$(field "$r" port)")
expect_field "$line" end handshake_failed
log "ok: wrong password -> $r; $line"
grep -q 'password' "$E2E_TMP/tsbad.log" || grep -q 'auth' "$E2E_TMP/tsbad.log" ||
  log "note: tunsocks' log does not mention the authentication failure in words: $line"
stop_tunsocks tsbad
