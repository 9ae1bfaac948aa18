#!/usr/bin/env bash
# Resets cross tunsocks both ways, and nobody hangs:
#  server killed mid-transfer: the server streams, the app reads; after 2 MiB the server
#    process is SIGKILLed with unread bytes in its socket, so its kernel sends a RST;
#    socksd passes it on, and tunsocks must reset the app: recv() fails with
#    ECONNRESET within 10 s (not EOF, which would pass truncated data off as complete,
#    and not a hang); flow line end=upstream_reset.
#  app aborts mid-upload: the app sends 4 MiB and closes with SO_LINGER 0 (a RST); the
#    server, reading, must see ECONNRESET, not EOF; flow line end=app_reset.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_tunsocks ts

# --- the server dies
start_peer streamer "$SERVER_IP4" stream
peer_client --host "$SERVER_IP4" --port "$streamer_port" --mode read-until-error \
  --progress $((2 * 1024 * 1024)) --timeout 20 >"$E2E_TMP/reader.out" 2>&1 &
reader_pid=$!
register_cleanup "kill $reader_pid 2>/dev/null"
wait_for 20 grep -q '^progress ' "$E2E_TMP/reader.out" ||
  fail "the app never got 2 MiB from the streaming server: $(cat "$E2E_TMP/reader.out")"
killed_at=$(now_ms)
kill -KILL "$streamer_pid"
wait "$streamer_pid" 2>/dev/null || true
rc=0
wait "$reader_pid" || rc=$?
waited=$(($(now_ms) - killed_at))
end=$(grep '^end ' "$E2E_TMP/reader.out" | head -n 1)
[[ $rc -eq 0 && -n $end ]] || fail "the reading app failed (status $rc): $(cat "$E2E_TMP/reader.out")"
sline=$(grep -E "session id=.* dst=$SERVER_IP4:$streamer_port " "$E2E_TMP/s.log" | tail -n 1 || true)
case $(field "$end" end) in
ECONNRESET) ;;
timeout) fail "server killed: the app still waited 20 s later (hang); socksd: ${sline:-no session line}" ;;
eof) fail "server killed: the app saw a clean EOF after $(field "$end" bytes) bytes, expected ECONNRESET; socksd: ${sline:-no session line}" ;;
*) fail "server killed: the app saw $(field "$end" end), expected ECONNRESET" ;;
esac
((waited <= 10000)) || fail "server killed: the reset reached the app only after $waited ms"
port=$(field "$(grep '^connected ' "$E2E_TMP/reader.out")" port)
line=$(flow_line ts "$port")
expect_field "$line" reply succeeded
expect_field "$line" end upstream_reset
log "ok: server killed -> app ECONNRESET after ${waited} ms; $line"

# --- the app aborts
start_peer sink "$SERVER_IP4" sink
peer_client --host "$SERVER_IP4" --port "$sink_port" --mode upload-then-abort --bytes $((4 * 1024 * 1024)) \
  >"$E2E_TMP/aborter.out" 2>&1 || fail "aborting client failed: $(cat "$E2E_TMP/aborter.out")"
wait_for 10 grep -q '^received ' "$E2E_TMP/sink.log" ||
  fail "app aborted: the server still has an open connection 10 s later (the reset never arrived): $(cat "$E2E_TMP/sink.log")"
srv=$(grep '^received ' "$E2E_TMP/sink.log" | head -n 1)
sline=$(grep -E "session id=.* dst=$SERVER_IP4:$sink_port " "$E2E_TMP/s.log" | tail -n 1 || true)
[[ $(field "$srv" end) == ECONNRESET ]] ||
  fail "app aborted: the server saw end=$(field "$srv" end) after $(field "$srv" bytes) bytes, expected ECONNRESET; socksd: ${sline:-no session line}"
port=$(field "$(grep '^connected ' "$E2E_TMP/aborter.out")" port)
line=$(flow_line ts "$port")
expect_field "$line" reply succeeded
expect_field "$line" end app_reset
log "ok: app aborted -> server ECONNRESET; $line"

c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0: $c"
expect_alive ts
