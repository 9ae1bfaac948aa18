#!/usr/bin/env bash
# The upstream closes first and the application's last data and FIN arrive while the upstream
# is not taking data (socksd stopped): lwIP has exchanged both FINs, so its connection goes
# to TIME_WAIT and is freed (lwIP alone would do it 2 s later; tunsocks drops TIME_WAIT
# after each input batch), while the flow still waits for its upstream writes and FIN.
# When the upstream takes them, the flow must end cleanly without touching lwIP's freed
# connection (before the fix valgrind showed tcp_recved on it; the ASan stage aborts on
# such a use) and nothing is lost:
#  - the server sends 100 B and FIN; the application reads them to EOF; socksd is stopped;
#  - the application sends 300 kB and FIN; lwIP acknowledges everything (no socket of the
#    application left in LAST_ACK) while socksd is still stopped; 3 s pass (TIME_WAIT over);
#  - socksd continues: the server receives the 300 kB byte-exact and EOF, the flow line
#    says end=eof with exactly those byte counts, tunsocks is alive and its counters balance.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
# Small socket buffers between tunsocks and socksd: the 300 kB cannot all vanish into the
# kernel while socksd is stopped, so the flow's own upstream writes stay pending.
in_client sysctl -qw net.ipv4.tcp_wmem="4096 16384 16384"
in_proxy sysctl -qw net.ipv4.tcp_rmem="4096 16384 16384"
start_socksd s
start_peer srv "$SERVER_IP4" server-closes-first --bytes 100
start_tunsocks ts
size=300000
start_client app --host "$SERVER_IP4" --port "$srv_port" --mode server-closes-first \
  --bytes "$size" --pause 2
wait_for 10 grep -q '^received bytes=100 .* end=eof' "$E2E_TMP/app.log" ||
  fail "the application did not get the server's 100 bytes and EOF: $(cat "$E2E_TMP/app.log")"
kill -STOP "$s_pid"
register_cleanup "kill -CONT $s_pid 2>/dev/null"
wait_for 10 grep -q '^sent ' "$E2E_TMP/app.log" || fail "the application could not send: $(cat "$E2E_TMP/app.log")"
# lwIP acknowledged the application's FIN: no application socket left waiting for it.
wait_for 10 bash -c "! ip netns exec $client_ns ss -Htn state last-ack | grep -q ':$srv_port'" ||
  fail "lwIP did not acknowledge the application's FIN while socksd was stopped: $(in_client ss -tn)"
line=$(grep -E 'flow id=[0-9]+ ' "$E2E_TMP/ts.log" | grep ' end=' || true)
[[ -z $line ]] || fail "the flow ended before its upstream took the data: $line"
sleep 3 # longer than lwIP's own TIME_WAIT (2 s): its connection is gone either way
kill -CONT "$s_pid"
wait_for 20 grep -q '^received ' "$E2E_TMP/srv.log" || fail "the server did not receive to EOF: $(cat "$E2E_TMP/srv.log")"
sent=$(grep '^sent ' "$E2E_TMP/app.log")
received=$(grep '^received ' "$E2E_TMP/srv.log")
expect_field "$received" bytes "$size"
expect_field "$received" sha256 "$(field "$sent" sha256)"
expect_field "$received" end eof
wait_for 10 grep -qE 'flow id=[0-9]+ .* end=' "$E2E_TMP/ts.log" || fail "the flow did not end once socksd continued"
line=$(grep -E 'flow id=[0-9]+ .* end=' "$E2E_TMP/ts.log" | tail -n 1)
expect_field "$line" end eof
expect_field "$line" down 100
expect_field "$line" up "$size"
expect_alive ts
expect_balanced_counters "$(tunsocks_counters ts)"
log "ok: server got $size bytes byte-exact after lwIP's TIME_WAIT was over; $line"
