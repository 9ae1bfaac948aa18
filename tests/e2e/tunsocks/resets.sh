#!/usr/bin/env bash
# Resets cross tunsocks both ways, and nobody hangs:
#  server killed mid-transfer: the server streams, the app reads; after 2 MiB the server
#    process is SIGKILLed with unread bytes in its socket, so its kernel sends a RST;
#    socksd passes it on, and tunsocks must reset the app: recv() fails with
#    ECONNRESET within 10 s (not EOF, which would pass truncated data off as complete,
#    and not a hang); flow line end=upstream_reset.
#  app aborts mid-upload: the app sends 4 MiB and closes with SO_LINGER 0 (a RST);
#    tunsocks must close its upstream socket with a reset too (the client namespace's
#    TcpExt TCPAbortOnData counts both), and the server, reading, must see ECONNRESET,
#    not EOF; flow line end=app_reset.
# The chain has three hops (app - tunsocks - socksd - server); when the end-to-end
# assertion fails, kernel TCP counters of the namespaces say which hop lost the reset.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_tunsocks ts

# --- the server dies
start_peer streamer "$SERVER_IP4" stream
start_client reader --host "$SERVER_IP4" --port "$streamer_port" --mode read-until-error \
  --progress $((2 * 1024 * 1024)) --timeout 20
wait_for 20 grep -q '^progress ' "$E2E_TMP/reader.log" ||
  fail "the app never got 2 MiB from the streaming server: $(cat "$E2E_TMP/reader.log")"
# Kernel counters name the hop that lost a reset: the server's kernel counts its abort
# (TCPAbortOnClose: closed with unread data); in the client namespace EstabResets counts
# established sockets ended by a reset (tunsocks' upstream socket, the app's socket).
server_aborts_before=$(kstat "$server_ns" netstat TcpExt TCPAbortOnClose)
client_resets_before=$(kstat "$client_ns" snmp Tcp EstabResets)
killed_at=$(now_ms)
kill -KILL "$streamer_pid"
wait "$streamer_pid" 2>/dev/null || true
rc=0
wait "$reader_pid" || rc=$?
waited=$(($(now_ms) - killed_at))
end=$(grep '^end ' "$E2E_TMP/reader.log" | head -n 1)
[[ $rc -eq 0 && -n $end ]] || fail "the reading app failed (status $rc): $(cat "$E2E_TMP/reader.log")"
sline=$(grep -E "session id=.* dst=$SERVER_IP4:$streamer_port " "$E2E_TMP/s.log" | tail -n 1 || true)
server_aborts=$(($(kstat "$server_ns" netstat TcpExt TCPAbortOnClose) - server_aborts_before))
client_resets=$(($(kstat "$client_ns" snmp Tcp EstabResets) - client_resets_before))
((server_aborts >= 1)) || fail "test setup: the killed server's kernel sent no reset (TCPAbortOnClose +0)"
case $(field "$end" end) in
ECONNRESET) ;;
timeout) fail "server killed: the app still waited 20 s later (hang); socksd: ${sline:-no session line}" ;;
eof)
  if ((client_resets == 0)); then
    fail "server killed: the app saw a clean EOF after $(field "$end" bytes) bytes, expected ECONNRESET; tunsocks' upstream socket got a FIN, not a reset (client EstabResets +0): socksd passed the server's reset on as a FIN; socksd: ${sline:-no session line}"
  fi
  fail "server killed: the app saw a clean EOF after $(field "$end" bytes) bytes, expected ECONNRESET; tunsocks' upstream socket was reset (client EstabResets +$client_resets) but tunsocks gave the app a FIN"
  ;;
*) fail "server killed: the app saw $(field "$end" end), expected ECONNRESET" ;;
esac
((waited <= 10000)) || fail "server killed: the reset reached the app only after $waited ms"
port=$(field "$(grep '^connected ' "$E2E_TMP/reader.log")" port)
line=$(flow_line ts "$port")
expect_field "$line" reply succeeded
expect_field "$line" end upstream_reset
log "ok: server killed -> app ECONNRESET after ${waited} ms; $line"

# --- the app aborts
# A socket closed with SO_LINGER 0 counts in TcpExt TCPAbortOnData: in the client
# namespace that is the app's socket and, if tunsocks resets the upstream as it must,
# tunsocks' upstream socket. This tells tunsocks' part apart from socksd's.
abort_count() { kstat "$client_ns" netstat TcpExt TCPAbortOnData; }
start_peer sink "$SERVER_IP4" sink
aborts_before=$(abort_count)
peer_client --host "$SERVER_IP4" --port "$sink_port" --mode upload-then-abort --bytes $((4 * 1024 * 1024)) \
  >"$E2E_TMP/aborter.out" 2>&1 || fail "aborting client failed: $(cat "$E2E_TMP/aborter.out")"
wait_for 10 grep -q '^received ' "$E2E_TMP/sink.log" ||
  fail "app aborted: the server still has an open connection 10 s later (the reset never arrived): $(cat "$E2E_TMP/sink.log")"
srv=$(grep '^received ' "$E2E_TMP/sink.log" | head -n 1)
sline=$(grep -E "session id=.* dst=$SERVER_IP4:$sink_port " "$E2E_TMP/s.log" | tail -n 1 || true)
port=$(field "$(grep '^connected ' "$E2E_TMP/aborter.out")" port)
line=$(flow_line ts "$port")
expect_field "$line" reply succeeded
expect_field "$line" end app_reset
aborts=$(($(abort_count) - aborts_before))
((aborts >= 2)) ||
  fail "app aborted: tunsocks closed its upstream socket without a reset (TcpExt TCPAbortOnData +$aborts in the client namespace, 2 expected: the app's and tunsocks'); $line"
[[ $(field "$srv" end) == ECONNRESET ]] ||
  fail "app aborted: tunsocks reset its upstream (TCPAbortOnData +$aborts), but the server saw end=$(field "$srv" end) after $(field "$srv" bytes) bytes, expected ECONNRESET: socksd passed the reset on as a FIN; socksd: ${sline:-no session line}"
log "ok: app aborted -> server ECONNRESET; $line"

c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0: $c"
expect_alive ts
