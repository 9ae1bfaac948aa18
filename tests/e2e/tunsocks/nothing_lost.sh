#!/usr/bin/env bash
# Nothing lost, byte for byte, through the TUN (socksd upstream):
#  sizes 0, 1, 65535, 1 MiB, 8 MiB and 50 MiB: the app sends N bytes and shuts down its
#    write side, the server reads to EOF, sends N bytes back and closes; both sides compare
#    byte counts and sha256, both see EOF (no reset); the flow line says end=eof, up=N,
#    down=N, and its other sides agree (app_in == up, app_out == down);
#  a receiver that pauses longer than every buffer on the path can hold (50 MiB, paused
#    $NOTHING_LOST_PAUSE s, default 4): first the app stops reading a download, then the
#    server stops reading an upload; while paused the sender must be blocked (it has not
#    finished: proof the pause outlasted the buffers), and afterwards every byte arrives;
#  the counters with no flow open: flows_open 0, bytes_up/bytes_down equal to the sums
#    of the flow lines and to what the test sent, and each direction's two sides equal.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_tunsocks ts
pause=${NOTHING_LOST_PAUSE:-4}
mib=$((1024 * 1024))
line_of() { grep -E "^$2( |\$)" "$1" | head -n 1 || true; }
total_up=0
total_down=0

# --- both directions, each size

for size in 0 1 65535 $mib $((8 * mib)) $((50 * mib)); do
  # One server per size: its reply is as long as the request (--bytes of the server).
  stop_var=peer$size
  start_peer "$stop_var" "$SERVER_IP4" client-closes-first --bytes "$size"
  port_var="${stop_var}_port"
  out="$E2E_TMP/c$size.out"
  peer_client --host "$SERVER_IP4" --port "${!port_var}" --mode client-closes-first --bytes "$size" \
    --timeout 60 >"$out" 2>&1 || fail "size $size: client failed: $(cat "$out")"
  wait_for 20 grep -q '^sent ' "$E2E_TMP/$stop_var.log" ||
    fail "size $size: the server never answered (never saw the app's EOF): $(cat "$E2E_TMP/$stop_var.log")"
  c_sent=$(line_of "$out" sent)
  c_recv=$(line_of "$out" received)
  s_recv=$(line_of "$E2E_TMP/$stop_var.log" received)
  s_sent=$(line_of "$E2E_TMP/$stop_var.log" sent)
  expect_field "$s_recv" end eof
  expect_field "$s_recv" bytes "$size"
  expect_field "$s_recv" sha256 "$(field "$c_sent" sha256)"
  expect_field "$c_recv" end eof
  expect_field "$c_recv" bytes "$size"
  expect_field "$c_recv" sha256 "$(field "$s_sent" sha256)"
  line=$(flow_line ts "$(field "$(line_of "$out" connected)" port)")
  expect_field "$line" end eof
  expect_field "$line" up "$size"
  expect_field "$line" down "$size"
  expect_field "$line" app_in "$size"
  expect_field "$line" app_out "$size"
  total_up=$((total_up + size))
  total_down=$((total_down + size))
  log "ok: $size bytes each way: $line"
done

# --- the app pauses reading a 50 MiB download
big=$((50 * mib))
start_peer sender "$SERVER_IP4" send --bytes "$big"
start_client dl --host "$SERVER_IP4" --port "$sender_port" --mode slow-read --progress 1 --pause "$pause" \
  --timeout 60
wait_for 10 grep -q '^paused ' "$E2E_TMP/dl.log" || fail "download: the app never got its first bytes: $(cat "$E2E_TMP/dl.log")"
sleep $((pause - 1))
grep -q '^resumed' "$E2E_TMP/dl.log" && fail "test setup: the app resumed before the check (pause too short?)"
if grep -q '^sent ' "$E2E_TMP/sender.log"; then
  fail "download: the server finished sending 50 MiB while the app read nothing: the pause did not outlast the buffers (or something buffers without bound)"
fi
wait_for 60 has_exited "$dl_pid" || fail "download: not finished 60 s after the app resumed: $(cat "$E2E_TMP/dl.log")"
wait "$dl_pid" || fail "download client failed: $(cat "$E2E_TMP/dl.log")"
wait_for 10 grep -q '^sent ' "$E2E_TMP/sender.log" || fail "download: the server never finished sending"
got=$(line_of "$E2E_TMP/dl.log" received)
sent=$(line_of "$E2E_TMP/sender.log" sent)
expect_field "$got" end eof
expect_field "$got" bytes "$big"
expect_field "$got" sha256 "$(field "$sent" sha256)"
line=$(flow_line ts "$(field "$(line_of "$E2E_TMP/dl.log" connected)" port)")
expect_field "$line" end eof
expect_field "$line" down "$big"
expect_field "$line" app_out "$big"
total_down=$((total_down + big))
log "ok: download with a ${pause}s reader pause: $line"

# --- the server pauses reading a 50 MiB upload
start_peer slowsink "$SERVER_IP4" slow-sink --pause "$pause"
start_client ul --host "$SERVER_IP4" --port "$slowsink_port" --mode send --bytes "$big" --timeout 60
wait_for 10 grep -q '^accepted ' "$E2E_TMP/slowsink.log" || fail "upload: the server never got the connection"
sleep $((pause - 1))
grep -q '^reading' "$E2E_TMP/slowsink.log" && fail "test setup: the server resumed before the check"
if grep -q '^sent ' "$E2E_TMP/ul.log"; then
  fail "upload: the app sent all 50 MiB while the server read nothing: the pause did not outlast the buffers"
fi
wait_for 60 has_exited "$ul_pid" || fail "upload: not finished 60 s after the server resumed: $(cat "$E2E_TMP/ul.log")"
wait "$ul_pid" || fail "upload client failed: $(cat "$E2E_TMP/ul.log")"
wait_for 10 grep -q '^received ' "$E2E_TMP/slowsink.log" || fail "upload: the server never saw the end"
got=$(line_of "$E2E_TMP/slowsink.log" received)
sent=$(line_of "$E2E_TMP/ul.log" sent)
expect_field "$got" end eof
expect_field "$got" bytes "$big"
expect_field "$got" sha256 "$(field "$sent" sha256)"
line=$(flow_line ts "$(field "$(line_of "$E2E_TMP/ul.log" connected)" port)")
expect_field "$line" end eof
expect_field "$line" up "$big"
expect_field "$line" app_in "$big"
total_up=$((total_up + big))
log "ok: upload with a ${pause}s server pause: $line"

# --- every flow, and the counters
n=$(expect_balanced_flows ts)
((n == 8)) || fail "expected 8 clean flow lines, have $n: $(grep -E 'flow id=' "$E2E_TMP/ts.log")"
wait_for 10 bash -c "[[ \$(grep -cE 'flow id=[0-9]+ ' '$E2E_TMP/ts.log') == 8 ]]" || true
c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0 after every flow ended: $c"
[[ $(json_get "$c" bytes_up) == "$total_up" ]] || fail "counters: bytes_up != $total_up sent by the apps: $c"
[[ $(json_get "$c" bytes_down) == "$total_down" ]] || fail "counters: bytes_down != $total_down sent by the servers: $c"
[[ $(sum_flow_field ts up) == "$total_up" ]] || fail "the flow lines' up= add up to $(sum_flow_field ts up), expected $total_up"
[[ $(sum_flow_field ts down) == "$total_down" ]] || fail "the flow lines' down= add up to $(sum_flow_field ts down), expected $total_down"
expect_balanced_counters "$c"
expect_alive ts
log "ok: $n flows balanced; counters $c"
