#!/usr/bin/env bash
# Backpressure both ways: a receiver that stops reading must stall the sender, not grow
# tunsocks' memory.
#  download: the server sends 256 MiB as fast as it can; the app reads 1 MiB and then
#    sleeps 3 s. Meanwhile tunsocks' RSS grows by less than 24 MiB (its windows are
#    about 1 MiB a flow) and the server has not finished sending (it is blocked: the
#    stall reached it). Then the app reads the rest: byte count and sha256 equal the
#    server's.
#  upload: the app sends 256 MiB to a server that sleeps 3 s before reading; the same
#    bounds, the app blocked, then sha256 equal on the server side.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_tunsocks ts
big=$((256 * 1024 * 1024))
bound_kb=$((24 * 1024))
start_peer sender "$SERVER_IP4" send --bytes "$big"
start_peer slowsink "$SERVER_IP4" slow-sink --pause 3

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# max_rss_during PID SECONDS: the largest VmRSS of PID sampled every 0.2 s.
max_rss_during() {
  local pid=$1 until=$(($(now_ms) + $2 * 1000)) max=0 v
  while (($(now_ms) < until)); do
    v=$(rss_kb "$pid")
    ((v > max)) && max=$v
    sleep 0.2
  done
  echo "$max"
}

# --- download, the app stalls
base_ts=$(rss_kb "$ts_pid")
base_s=$(rss_kb "$s_pid")
start_client dl --host "$SERVER_IP4" --port "$sender_port" --mode slow-read --progress 1048576 --pause 3 \
  --timeout 60
wait_for 10 grep -q '^paused ' "$E2E_TMP/dl.log" || fail "download: the app never got its first 1 MiB: $(cat "$E2E_TMP/dl.log")"
peak_ts=$(max_rss_during "$ts_pid" 2)
peak_s=$(rss_kb "$s_pid")
if grep -q '^sent ' "$E2E_TMP/sender.log"; then
  fail "download: the server finished sending 256 MiB while the app read nothing: something buffers it all (tunsocks RSS +$((peak_ts - base_ts)) kB, socksd RSS +$((peak_s - base_s)) kB)"
fi
((peak_ts - base_ts < bound_kb)) ||
  fail "download: tunsocks' RSS grew by $((peak_ts - base_ts)) kB (from $base_ts kB) while the app did not read; bound $bound_kb kB"
log "ok: download stalled: tunsocks RSS $base_ts -> $peak_ts kB, the server blocked"
wait_for 60 has_exited "$dl_pid" || fail "download: not finished 60 s after the app resumed: $(cat "$E2E_TMP/dl.log")"
wait "$dl_pid" || fail "download client failed: $(cat "$E2E_TMP/dl.log")"
got=$(grep '^received ' "$E2E_TMP/dl.log")
wait_for 10 grep -q '^sent ' "$E2E_TMP/sender.log" || fail "download: the server never finished sending"
sent=$(grep '^sent ' "$E2E_TMP/sender.log" | head -n 1)
expect_field "$got" end eof
expect_field "$got" bytes "$big"
expect_field "$got" sha256 "$(field "$sent" sha256)"
line=$(flow_line ts "$(field "$(grep '^connected ' "$E2E_TMP/dl.log")" port)")
expect_field "$line" down "$big"
expect_field "$line" end eof
log "ok: download complete after the stall: $line"

# --- upload, the server stalls
base_ts=$(rss_kb "$ts_pid")
start_client ul --host "$SERVER_IP4" --port "$slowsink_port" --mode send --bytes "$big" \
  --timeout 60
wait_for 10 grep -q '^accepted ' "$E2E_TMP/slowsink.log" || fail "upload: the server never got the connection"
peak_ts=$(max_rss_during "$ts_pid" 2)
peak_s=$(rss_kb "$s_pid")
if grep -q '^sent ' "$E2E_TMP/ul.log"; then
  fail "upload: the app sent all 256 MiB while the server read nothing: something buffers it all (tunsocks RSS +$((peak_ts - base_ts)) kB, socksd RSS +$((peak_s - base_s)) kB)"
fi
((peak_ts - base_ts < bound_kb)) ||
  fail "upload: tunsocks' RSS grew by $((peak_ts - base_ts)) kB (from $base_ts kB) while the server did not read; bound $bound_kb kB"
log "ok: upload stalled: tunsocks RSS $base_ts -> $peak_ts kB, the app blocked"
wait_for 60 has_exited "$ul_pid" || fail "upload: not finished 60 s after the server resumed: $(cat "$E2E_TMP/ul.log")"
wait "$ul_pid" || fail "upload client failed: $(cat "$E2E_TMP/ul.log")"
wait_for 10 grep -q '^received ' "$E2E_TMP/slowsink.log" || fail "upload: the server never saw the end of the data"
got=$(grep '^received ' "$E2E_TMP/slowsink.log" | head -n 1)
sent=$(grep '^sent ' "$E2E_TMP/ul.log")
expect_field "$got" end eof
expect_field "$got" bytes "$big"
expect_field "$got" sha256 "$(field "$sent" sha256)"
line=$(flow_line ts "$(field "$(grep '^connected ' "$E2E_TMP/ul.log")" port)")
expect_field "$line" up "$big"
expect_field "$line" end eof
log "ok: upload complete after the stall: $line"
expect_alive ts
