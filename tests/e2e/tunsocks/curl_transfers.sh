#!/usr/bin/env bash
# curl through the TUN (socksd upstream): a 100 MiB GET compared by sha256, a 50 MiB PUT
# whose sha256 the server computes, and 200 parallel GETs of 200 different bodies, every
# one compared. Each connection has its flow line: reply=succeeded, end=eof, down= the
# response bytes curl counted (head + body), up= the request bytes (head + upload).
# The counters afterwards: flows_total = connections made, flows_open = 0, none refused,
# and bytes_up / bytes_down = the sums over the flow lines.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd curl

topo_setup
start_socksd s
start_http http "$SERVER_IP4"
start_tunsocks ts
base="http://$SERVER_IP4:$http_port"

big_sha=$(make_body big $((100 * 1024 * 1024)))
line=$(get_and_check ts "$base/big" big "$big_sha")
log "ok: 100 MiB GET: $line"
rm -f "$E2E_TMP/www/big"

head -c $((50 * 1024 * 1024)) /dev/urandom >"$E2E_TMP/up50"
line=$(upload_and_check ts http "$base/up50" "$E2E_TMP/up50")
log "ok: 50 MiB PUT: $line"
rm -f "$E2E_TMP/up50"

# 200 connections at once, each body different (sizes 16 KiB + i*523 bytes), so a flow
# that delivered another flow's bytes, or lost a tail, shows up in one sha256.
n=200
mkdir -p "$E2E_TMP/par"
: >"$E2E_TMP/par.cfg"
declare -A want_sha
for ((i = 0; i < n; i++)); do
  want_sha[p$i]=$(make_body "p$i" $((16384 + i * 523)))
  printf 'url = "%s/p%d"\noutput = "%s/par/p%d"\n' "$base" "$i" "$E2E_TMP" "$i" >>"$E2E_TMP/par.cfg"
done
in_client curl -sS --fail --noproxy '*' --max-time 90 --parallel --parallel-immediate --parallel-max $n \
  -w '%{url_effective} %{local_port} %{size_header} %{size_download} %{size_request} %{http_code}\n' \
  -K "$E2E_TMP/par.cfg" >"$E2E_TMP/par.out" 2>"$E2E_TMP/par.err" ||
  fail "200 parallel GETs: curl exited non-zero: $(head -n 5 "$E2E_TMP/par.err")"
got_lines=$(grep -c . "$E2E_TMP/par.out" || true)
((got_lines == n)) || fail "200 parallel GETs: curl reported $got_lines transfers, expected $n"
declare -A seen_port
while read -r url cport hdr dl req code; do
  name=${url##*/}
  [[ $code == 200 ]] || fail "parallel GET $url: HTTP $code"
  got=$(sha256_of "$E2E_TMP/par/$name")
  [[ $got == "${want_sha[$name]}" ]] ||
    fail "parallel GET $url: sha256 differs ($(stat -c %s "$E2E_TMP/par/$name") bytes received, expected $(stat -c %s "$E2E_TMP/www/$name"))"
  [[ -z "${seen_port[$cport]:-}" ]] || fail "two transfers report the same local port $cport"
  seen_port[$cport]=1
  line=$(flow_line ts "$cport" 20)
  expect_field "$line" reply succeeded
  expect_field "$line" end eof
  expect_field "$line" dst "$SERVER_IP4:$http_port"
  expect_field "$line" down $((hdr + dl))
  expect_field "$line" up "$req"
done <"$E2E_TMP/par.out"
log "ok: $n parallel GETs, all bodies and flow lines right"

total=$((n + 2))
wait_for 10 bash -c "(( \$(grep -cE 'flow id=[0-9]+ ' '$E2E_TMP/ts.log') >= $total ))" ||
  fail "expected $total flow lines, have $(grep -cE 'flow id=[0-9]+ ' "$E2E_TMP/ts.log")"
flows=$(grep -cE 'flow id=[0-9]+ ' "$E2E_TMP/ts.log")
((flows == total)) || fail "expected exactly $total flow lines (one per connection), have $flows"
c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_total) == "$total" ]] || fail "counters: flows_total != $total: $c"
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0 after every flow ended: $c"
[[ $(json_get "$c" flows_refused) == 0 ]] || fail "counters: flows_refused != 0: $c"
sum_up=$(sum_flow_field ts up)
sum_down=$(sum_flow_field ts down)
[[ $(json_get "$c" bytes_up) == "$sum_up" ]] || fail "counters: bytes_up != $sum_up (sum of up= over the flow lines): $c"
[[ $(json_get "$c" bytes_down) == "$sum_down" ]] || fail "counters: bytes_down != $sum_down (sum of down=): $c"
log "ok: counters $c"
expect_alive ts
expect_alive s
