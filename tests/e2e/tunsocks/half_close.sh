#!/usr/bin/env bash
# Half-close through the TUN, both ways (socksd upstream).
#  client first: the app sends 8 MiB and shuts down its write side; the server reads to
#    EOF (so the FIN crossed tunsocks), only then sends 1 MiB and closes; the app receives
#    all of it, then EOF.
#  server first (the mirror): the server sends 8 MiB and shuts down its write side; the
#    app reads to EOF, only then sends 1 MiB; the server receives all of it.
# Both sides compare sha256 and byte counts; the flow lines say end=eof with up= and
# down= equal to what each side sent, and tunsocks' two sides of each direction agree.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_tunsocks ts

small=$((1 * 1024 * 1024))
large=$((8 * 1024 * 1024))

# line_of FILE WORD: the first line of FILE starting with WORD.
line_of() { grep -E "^$2( |\$)" "$1" | head -n 1 || true; }

# --- the client closes first
start_peer hc1 "$SERVER_IP4" client-closes-first --bytes "$small"
peer_client --host "$SERVER_IP4" --port "$hc1_port" --mode client-closes-first --bytes "$large" --timeout 30 \
  >"$E2E_TMP/c1.out" 2>&1 || fail "client-closes-first client failed: $(cat "$E2E_TMP/c1.out")"
c_sent=$(line_of "$E2E_TMP/c1.out" sent)
c_recv=$(line_of "$E2E_TMP/c1.out" received)
wait_for 10 grep -q '^sent ' "$E2E_TMP/hc1.log" ||
  fail "client-closes-first: the server never sent its data, i.e. never saw the app's FIN: $(cat "$E2E_TMP/hc1.log")"
s_recv=$(line_of "$E2E_TMP/hc1.log" received)
s_sent=$(line_of "$E2E_TMP/hc1.log" sent)
[[ -n $c_sent && -n $c_recv ]] || fail "client-closes-first: client output incomplete: $(cat "$E2E_TMP/c1.out")"
expect_field "$s_recv" end eof
expect_field "$s_recv" bytes "$large"
expect_field "$s_recv" sha256 "$(field "$c_sent" sha256)"
expect_field "$c_recv" end eof
expect_field "$c_recv" bytes "$small"
expect_field "$c_recv" sha256 "$(field "$s_sent" sha256)"
port=$(field "$(line_of "$E2E_TMP/c1.out" connected)" port)
line=$(flow_line ts "$port")
expect_field "$line" reply succeeded
expect_field "$line" end eof
expect_field "$line" up "$large"
expect_field "$line" down "$small"
log "ok: client closes first: $line"

# --- the server closes first
start_peer hc2 "$SERVER_IP4" server-closes-first --bytes "$large"
peer_client --host "$SERVER_IP4" --port "$hc2_port" --mode server-closes-first --bytes "$small" --timeout 30 \
  >"$E2E_TMP/c2.out" 2>&1 || fail "server-closes-first client failed: $(cat "$E2E_TMP/c2.out")"
c_recv=$(line_of "$E2E_TMP/c2.out" received)
c_sent=$(line_of "$E2E_TMP/c2.out" sent)
c_closed=$(line_of "$E2E_TMP/c2.out" closed)
expect_field "$c_recv" end eof
expect_field "$c_recv" bytes "$large"
[[ -n $c_sent ]] || fail "server-closes-first: the app did not send after the server's FIN: $(cat "$E2E_TMP/c2.out")"
wait_for 10 grep -q '^received ' "$E2E_TMP/hc2.log" ||
  fail "server-closes-first: the server never saw the app's data end: $(cat "$E2E_TMP/hc2.log")"
s_sent=$(line_of "$E2E_TMP/hc2.log" sent)
s_recv=$(line_of "$E2E_TMP/hc2.log" received)
expect_field "$c_recv" sha256 "$(field "$s_sent" sha256)"
expect_field "$s_recv" end eof
expect_field "$s_recv" bytes "$small"
expect_field "$s_recv" sha256 "$(field "$c_sent" sha256)"
# After both FINs the app sees the end of the connection as an orderly one.
expect_field "$c_closed" end eof
expect_field "$c_closed" bytes 0
port=$(field "$(line_of "$E2E_TMP/c2.out" connected)" port)
line=$(flow_line ts "$port")
expect_field "$line" reply succeeded
expect_field "$line" end eof
expect_field "$line" up "$small"
expect_field "$line" down "$large"
log "ok: server closes first: $line"

c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0 after both flows ended: $c"
[[ $(expect_balanced_flows ts) == 2 ]] || fail "expected 2 clean flow lines"
expect_balanced_counters "$c"
expect_alive ts
