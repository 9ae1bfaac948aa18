#!/usr/bin/env bash
# Resets cross tunsocks both ways, and nobody hangs (upstream: socksd; resets_dante.sh
# runs this with Dante, which relays resets as resets, to isolate tunsocks):
#  server killed mid-transfer: the server streams, the app reads; after 2 MiB the server
#    process is SIGKILLed with unread bytes in its socket, so its kernel sends a RST;
#    the upstream passes it on, and tunsocks must reset the app: recv() fails with
#    ECONNRESET within a second (not EOF, which would pass truncated data off as complete,
#    and not a hang); flow line end=upstream_reset.
#  app aborts mid-upload: the app sends 4 MiB and closes with SO_LINGER 0 (a RST);
#    tunsocks must close its upstream socket with a reset too, and the server, reading,
#    must see ECONNRESET, not EOF, within a second of the abort; flow line end=app_reset.
# Whether a reset arrives together with data or alone is a matter of timing, so each
# scenario runs $RESETS_TRIES times (default 5); every try must pass. Both scenarios
# run, and everything that went wrong is reported at the end.
# The chain has three hops (app - tunsocks - upstream - server); when the end-to-end
# assertion fails, kernel TCP counters of the namespaces say which hop lost the reset:
#  - the server's TcpExt TCPAbortOnClose counts its kernel's abort (closed with unread
#    data: the test's own precondition);
#  - the client namespace's Tcp EstabResets counts established sockets ended by a reset
#    received (tunsocks' upstream socket, the app's socket);
#  - the client namespace's TcpExt TCPAbortOnData counts sockets closed with SO_LINGER 0
#    (the app's, and tunsocks' upstream socket if tunsocks resets it as it must).
source "$(dirname "$0")/topology.sh"
require_tunsocks
kind=${RESETS_UPSTREAM:-socksd}
[[ $kind != socksd ]] || require_socksd
tries=${RESETS_TRIES:-5}

topo_setup
start_upstream "$kind" s
start_tunsocks ts
problems=()

# upstream_session PORT: the upstream's log line for the destination port, if it has one.
upstream_session() { grep -E "session id=.* dst=$SERVER_IP4:$1 " "$E2E_TMP/s.log" | tail -n 1 || true; }

# server_killed TRY: one try; appends to problems and returns 1 on a failure.
server_killed() {
  local t=$1
  start_peer "streamer$t" "$SERVER_IP4" stream
  local port_var="streamer${t}_port" pid_var="streamer${t}_pid"
  start_client "reader$t" --host "$SERVER_IP4" --port "${!port_var}" --mode read-until-error \
    --progress $((2 * 1024 * 1024)) --timeout 20
  local rlog="$E2E_TMP/reader$t.log" rpid_var="reader${t}_pid"
  wait_for 20 grep -q '^progress ' "$rlog" ||
    fail "the app never got 2 MiB from the streaming server: $(cat "$rlog")"
  local server_aborts_before client_resets_before killed_at
  server_aborts_before=$(kstat "$server_ns" netstat TcpExt TCPAbortOnClose)
  client_resets_before=$(kstat "$client_ns" snmp Tcp EstabResets)
  killed_at=$(now_ms)
  kill -KILL "${!pid_var}"
  wait "${!pid_var}" 2>/dev/null || true
  local rc=0
  wait "${!rpid_var}" || rc=$?
  local waited=$(($(now_ms) - killed_at)) end sline line
  end=$(grep '^end ' "$rlog" | head -n 1 || true)
  [[ $rc -eq 0 && -n $end ]] || fail "the reading app failed (status $rc): $(cat "$rlog")"
  sline=$(upstream_session "${!port_var}")
  local server_aborts client_resets
  server_aborts=$(($(kstat "$server_ns" netstat TcpExt TCPAbortOnClose) - server_aborts_before))
  client_resets=$(($(kstat "$client_ns" snmp Tcp EstabResets) - client_resets_before))
  ((server_aborts >= 1)) || fail "test setup: the killed server's kernel sent no reset (TCPAbortOnClose +0)"
  line=$(flow_line ts "$(field "$(grep '^connected ' "$rlog")" port)") || fail "no flow line for the reading app"
  local what="server killed (try $t of $tries)"
  case $(field "$end" end) in
  ECONNRESET)
    if ((waited > 1000)); then
      problems+=("$what: the reset reached the app only after $waited ms")
    elif [[ $(field "$line" end) != upstream_reset ]]; then
      problems+=("$what: expected end=upstream_reset in: $line")
    else
      log "ok: $what -> app ECONNRESET after ${waited} ms; $line"
      return 0
    fi
    ;;
  timeout) problems+=("$what: the app still waited 20 s later (hang); upstream ($kind) session: ${sline:-none}; $line") ;;
  eof)
    if ((client_resets == 0)); then
      problems+=("$what: the app saw a clean EOF after $(field "$end" bytes) bytes, expected ECONNRESET; tunsocks' upstream socket got a FIN, not a reset (client EstabResets +0): the upstream ($kind) passed the server's reset on as a FIN; its session: ${sline:-none}")
    else
      problems+=("$what: the app saw a clean EOF after $(field "$end" bytes) bytes, expected ECONNRESET; tunsocks' upstream socket was reset (client EstabResets +$client_resets) but tunsocks gave the app a FIN; tunsocks: $line")
    fi
    ;;
  *) problems+=("$what: the app saw $(field "$end" end), expected ECONNRESET; $line") ;;
  esac
  return 1
}

# app_aborts TRY: one try; appends to problems and returns 1 on a failure.
app_aborts() {
  local t=$1
  start_peer "sink$t" "$SERVER_IP4" sink
  local port_var="sink${t}_port" slog="$E2E_TMP/sink$t.log"
  local aborts_before
  aborts_before=$(kstat "$client_ns" netstat TcpExt TCPAbortOnData)
  peer_client --host "$SERVER_IP4" --port "${!port_var}" --mode upload-then-abort --bytes $((4 * 1024 * 1024)) \
    >"$E2E_TMP/aborter$t.out" 2>&1 || fail "aborting client failed: $(cat "$E2E_TMP/aborter$t.out")"
  local aborted_at waited
  aborted_at=$(now_ms)
  local what="app aborted (try $t of $tries)"
  wait_for 10 grep -q '^received ' "$slog" ||
    fail "$what: the server still has an open connection 10 s later (the reset never arrived): $(cat "$slog")"
  waited=$(($(now_ms) - aborted_at))
  local srv sline line aborts
  srv=$(grep '^received ' "$slog" | head -n 1)
  sline=$(upstream_session "${!port_var}")
  line=$(flow_line ts "$(field "$(grep '^connected ' "$E2E_TMP/aborter$t.out")" port)") || fail "no flow line for the aborting app"
  [[ $(field "$line" reply) == succeeded ]] || fail "$what: expected reply=succeeded in: $line"
  aborts=$(($(kstat "$client_ns" netstat TcpExt TCPAbortOnData) - aborts_before))
  if [[ $(field "$line" end) != app_reset ]]; then
    problems+=("$what: expected end=app_reset in: $line")
  elif ((aborts < 2)); then
    problems+=("$what: tunsocks closed its upstream socket without a reset (TcpExt TCPAbortOnData +$aborts in the client namespace, 2 expected: the app's and tunsocks'); $line")
  elif ((waited > 1000)); then
    problems+=("$what: the server saw the end only $waited ms after the app's abort, more than a second")
  elif [[ $(field "$srv" end) != ECONNRESET ]]; then
    problems+=("$what: tunsocks reset its upstream (TCPAbortOnData +$aborts), but the server saw end=$(field "$srv" end) after $(field "$srv" bytes) bytes, expected ECONNRESET: the upstream ($kind) passed the reset on as a FIN; its session: ${sline:-none}")
  else
    log "ok: $what -> server ECONNRESET within $waited ms; $line"
    return 0
  fi
  return 1
}

for ((t = 1; t <= tries; t++)); do server_killed "$t" || break; done
for ((t = 1; t <= tries; t++)); do app_aborts "$t" || break; done

c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == 0 ]] || problems+=("counters: flows_open != 0 after every flow ended: $c")
expect_alive ts
if ((${#problems[@]} > 0)); then
  for p in "${problems[@]}"; do log "problem: $p"; done
  fail "${#problems[@]} problem(s); first: ${problems[0]}"
fi
