#!/usr/bin/env bash
# Many sessions at once through one socksd: 32 curl downloads (2 MiB) and 8 uploads
# (4 MiB) in parallel, SOCKS5 and SOCKS5h mixed. Each body compares equal by sha256 (the
# uploads on the server side), every session line says reply=succeeded, and afterwards
# the counters show sessions_open 0, sessions_total >= 40, bytes_down >= 32 x 2 MiB and
# bytes_up >= 8 x 4 MiB.
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd curl

down_sha=$(make_body down 2097152)
up_sha=$(make_body up 4194304)
start_http http --dual
start_socksd s --listen 127.0.0.1:0 --allow-private

pids=()
for i in $(seq 1 32); do
  scheme=socks5
  host=127.0.0.1
  ((i % 2)) && scheme=socks5h host=localhost
  curl -sS --fail --max-time 60 -x "$scheme://$s_addr" -o "$E2E_TMP/d$i" "http://$host:$http_port/down" \
    2>"$E2E_TMP/d$i.err" &
  pids+=($!)
done
for i in $(seq 1 8); do
  curl -sS --fail --max-time 60 -x "socks5://$s_addr" -H 'Expect:' -T "$E2E_TMP/www/up" \
    -o "$E2E_TMP/u$i" "http://127.0.0.1:$http_port/up$i" 2>"$E2E_TMP/u$i.err" &
  pids+=($!)
done
register_cleanup "kill ${pids[*]} 2>/dev/null"
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
((failed == 0)) || fail "$failed of ${#pids[@]} parallel curls failed: $(cat "$E2E_TMP"/*.err | head -n 5)"
for i in $(seq 1 32); do
  [[ $(sha256_of "$E2E_TMP/d$i") == "$down_sha" ]] || fail "parallel download $i: sha256 differs"
done
for i in $(seq 1 8); do
  grep -q "upload path=/up$i bytes=4194304 sha256=$up_sha" "$E2E_TMP/u$i" ||
    fail "parallel upload $i arrived wrong: $(cat "$E2E_TMP/u$i")"
done
log "ok: 40 parallel transfers compared equal"
wait_for 10 bash -c "(( \$(grep -c 'session id=' '$E2E_TMP/s.log') >= 40 ))" || fail "fewer than 40 session lines"
bad=$(grep 'session id=' "$E2E_TMP/s.log" | grep -vc 'reply=succeeded' || true)
((bad == 0)) || fail "$bad session lines without reply=succeeded: $(grep 'session id=' "$E2E_TMP/s.log" | grep -v 'reply=succeeded' | head -n 3)"
counters s >"$E2E_TMP/c.json"
"$SYSTEM_PYTHON" - "$E2E_TMP/c.json" <<'PY' || fail "counters after the parallel run: $(cat "$E2E_TMP/c.json")"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["sessions_open"] == 0, c
assert c["sessions_total"] >= 40, c
assert c["bytes_down"] >= 32 * 2097152, c
assert c["bytes_up"] >= 8 * 4194304, c
PY
log "ok: counters $(cat "$E2E_TMP/c.json")"
