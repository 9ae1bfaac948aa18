#!/usr/bin/env bash
# The upstream misbehaves; each fault has its asserted outcome (--connect-timeout 2):
#  stalled mid-handshake (a fake upstream that answers the method selection and then says
#    nothing, or sends 3 bytes of its reply and then nothing): the app's connect() fails
#    within the timeout + 1.5 s, flow line end=connect_timeout, and tunsocks closes its
#    upstream connection (the fake upstream sees it end): nothing left open; and one
#    that is slow but working (every answer cut into one-byte segments, payload in the
#    reply's last segment) gives a working flow with that payload first;
#  black-holed (the proxy's answers are routed into a blackhole: SYNs vanish): the same
#    bound, end=connect_timeout, no SYN-SENT socket left in the client namespace, tunsocks'
#    file descriptors back to the baseline; once the route is gone, flows work again;
#  the upstream stops reading (socksd SIGSTOPped mid-upload of 256 MiB): tunsocks' RSS
#    grows by less than 24 MiB over 3 s while the app is blocked; after SIGCONT the server
#    receives every byte (sha256);
#  the upstream is killed mid-stream (SIGKILL to socksd while the app uploads): the app's
#    send fails with ECONNRESET within a second, end=upstream_reset; socksd restarted on
#    the same port: a new connect() succeeds within two seconds of its return.
# (Refused and stopped-before-greeting upstreams: refused.sh and upstream_down.sh.)
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

timeout_s=2
bound_ms=$((timeout_s * 1000 + 1500))
topo_setup
start_peer holder "$SERVER_IP4" hold

line_of() { grep -E "^$2( |\$)" "$1" | head -n 1 || true; }

# expect_refused_in_time WHAT [PORT]: one probe through the TUN fails (any errno) within bound_ms.
expect_refused_in_time() {
  local what=$1 r result
  r=$(probe "$SERVER_IP4" "${2:-$holder_port}" 30)
  result=$(field "$r" result)
  [[ $result != connected ]] || fail "$what: connect() succeeded, expected an error ($r)"
  [[ $result != timeout ]] || fail "$what: connect() still pending after 30 s: the app hangs ($r)"
  (($(field "$r" ms) <= bound_ms)) ||
    fail "$what: the error ($result) came after $(field "$r" ms) ms, more than the connect timeout + 1.5 s"
  printf '%s\n' "$r"
}

# expect_nothing_left TS WHAT: no open flow, fds at the baseline, within 5 s.
expect_nothing_left() {
  local ts=$1 what=$2 pid_var="${1}_pid" base_var="${1}_fds"
  wait_for 5 bash -c "[[ \$(ls /proc/${!pid_var}/fd | wc -l) -le ${!base_var} ]]" ||
    fail "$what: tunsocks holds $(fd_count "${!pid_var}") fds 5 s later, baseline ${!base_var}: $(ls -l "/proc/${!pid_var}/fd")"
  local c
  c=$(tunsocks_counters "$ts")
  [[ $(json_get "$c" flows_open) == 0 ]] || fail "$what: flows_open != 0: $c"
}

# --- stalled mid-handshake (the fake upstream picks its behaviour by the request's port;
# it never contacts a destination)
stall_port=1081
start_bg stall ip netns exec "$proxy_ns" "$SYSTEM_PYTHON" -u "$TUNSOCKS_E2E_DIR/stall_upstream.py" \
  --host "$PROXY_IP4" --port "$stall_port" --modes 1001=request,1002=partial,1003=dribble
_wait_started stall 'listening on' "stall_upstream"
start_tunsocks tss --upstream "socks5://$PROXY_IP4:$stall_port" --connect-timeout "$timeout_s"
# The baseline is taken after the first flow: libuv opens a spare fd on first use.
n=0
for dport in 1001 1002 1001; do
  n=$((n + 1))
  r=$(expect_refused_in_time "stall #$n" "$dport")
  line=$(flow_line tss "$(field "$r" port)" 10)
  expect_field "$line" end connect_timeout
  expect_field "$line" up 0
  expect_field "$line" down 0
  sline=$(grep -E "^request n=[0-9]+ port=$dport " "$E2E_TMP/stall.log" | tail -n 1)
  [[ -n $sline ]] || fail "stall #$n: the fake upstream never got the request: $(cat "$E2E_TMP/stall.log")"
  wait_for 2 grep -q "^closed n=$(field "$sline" n) " "$E2E_TMP/stall.log" ||
    fail "stall #$n: tunsocks left its upstream connection open after the timeout: $(cat "$E2E_TMP/stall.log")"
  log "ok: stall #$n ($(field "$sline" mode)): app got $r; $line"
  ((n > 1)) || tss_fds=$(fd_count "$tss_pid")
done
expect_nothing_left tss "stalled handshakes"
# An upstream that cuts its answers into single-byte segments is not a fault: the flow
# works, and the payload that came in the reply's last segment arrives first.
out=$(in_client "$SYSTEM_PYTHON" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"ping")
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(4096)
    if not d: break
    got += d
print(got.decode(errors="replace"))' "$SERVER_IP4" 1003 2>&1) || fail "through a dribbling upstream: $out"
[[ $out == "hello: ping" ]] || fail "through an upstream that cuts its reply: the app got '$out', expected 'hello: ping'"
line=$(flow_lines_to tss "$SERVER_IP4:1003" | tail -n 1)
expect_field "$line" end eof
expect_field "$line" down 11
log "ok: an upstream answering one byte per segment: the app got '$out'; $line"
stop_tunsocks tss

# --- black-holed
start_socksd s1
start_tunsocks ts --connect-timeout "$timeout_s"
r=$(probe "$SERVER_IP4" "$holder_port" 20)
expect_probe "$r" connected 5000 "baseline connect"
wait_for 5 bash -c "[[ \$(grep -cE 'flow id=[0-9]+ ' '$E2E_TMP/ts.log') == 1 ]]" || fail "the baseline flow did not end"
ts_fds=$(fd_count "$ts_pid")
in_proxy ip route add blackhole "$CLIENT_VETH_IP4/32" || fail "cannot add the blackhole route"
register_cleanup "ip -n $proxy_ns route del blackhole $CLIENT_VETH_IP4/32"
r=$(expect_refused_in_time "black-holed upstream")
line=$(flow_line ts "$(field "$r" port)" 10)
expect_field "$line" end connect_timeout
expect_nothing_left ts "black-holed upstream"
left=$(in_client ss -Htn state syn-sent "dst $PROXY_IP4" | wc -l)
((left == 0)) || fail "black-holed upstream: $left SYN-SENT socket(s) to the upstream left behind"
in_proxy ip route del blackhole "$CLIENT_VETH_IP4/32"
r=$(probe "$SERVER_IP4" "$holder_port" 20)
expect_probe "$r" connected 5000 "a connect() once the black hole is gone"
log "ok: black-holed upstream: $line"

# --- the upstream stops reading mid-upload
big=$((256 * 1024 * 1024))
start_peer sink "$SERVER_IP4" sink
base=$(rss_kb "$ts_pid")
start_client ul --host "$SERVER_IP4" --port "$sink_port" --mode send --bytes "$big" --timeout 60
wait_for 10 grep -q '^connected ' "$E2E_TMP/ul.log" || fail "upload: no connection: $(cat "$E2E_TMP/ul.log")"
sleep 0.3
kill -STOP "$s1_pid"
register_cleanup "kill -CONT $s1_pid"
peak=0
for _ in $(seq 15); do
  v=$(rss_kb "$ts_pid")
  ((v > peak)) && peak=$v
  sleep 0.2
done
grep -q '^sent ' "$E2E_TMP/ul.log" && fail "upload: the app sent 256 MiB while the upstream read nothing"
((peak - base < 24 * 1024)) ||
  fail "upstream reader stalled: tunsocks RSS grew by $((peak - base)) kB (from $base kB), bound 24 MiB"
kill -CONT "$s1_pid"
wait_for 60 has_exited "$ul_pid" || fail "upload: not finished 60 s after the upstream resumed"
wait "$ul_pid" || fail "upload client failed: $(cat "$E2E_TMP/ul.log")"
wait_for 10 grep -q '^received ' "$E2E_TMP/sink.log" || fail "upload: the server never saw the end"
got=$(line_of "$E2E_TMP/sink.log" received)
expect_field "$got" end eof
expect_field "$got" bytes "$big"
expect_field "$got" sha256 "$(field "$(line_of "$E2E_TMP/ul.log" sent)" sha256)"
log "ok: upstream reader stalled: tunsocks RSS $base -> $peak kB, then every byte arrived"

# --- the upstream is killed mid-stream: the app uploads to a server that does not read
# yet, so socksd dies with unread bytes and its kernel resets. (A relay killed with empty
# receive queues closes with a FIN, which no SOCKS client can tell from a finished
# stream: SOCKS has no end-of-stream status.)
start_peer parked "$SERVER_IP4" slow-sink --pause 60
start_client up2 --host "$SERVER_IP4" --port "$parked_port" --mode send --bytes $((256 * 1024 * 1024)) \
  --timeout 10
wait_for 10 grep -q '^accepted ' "$E2E_TMP/parked.log" || fail "the parked server never got the connection"
sleep 1 # every queue up to the server fills
killed_at=$(now_ms)
kill -KILL "$s1_pid"
wait "$s1_pid" 2>/dev/null || true
wait_for 10 has_exited "$up2_pid" || fail "the app still sends 10 s after the upstream died (hang)"
took=$(($(now_ms) - killed_at))
end=$(line_of "$E2E_TMP/up2.log" send-failed)
[[ -n $end ]] || fail "upstream killed: the app's upload did not fail: $(cat "$E2E_TMP/up2.log")"
expect_field "$end" end ECONNRESET
((took <= 1000)) || fail "upstream killed: the app saw the reset after $took ms, more than a second"
line=$(flow_line ts "$(field "$(line_of "$E2E_TMP/up2.log" connected)" port)")
expect_field "$line" end upstream_reset
start_socksd s2
r=$(probe "$SERVER_IP4" "$holder_port" 20)
expect_probe "$r" connected 2000 "a connect() once the upstream is back"
log "ok: upstream killed mid-stream: app reset after $took ms; back: $r"
expect_nothing_left ts "after every fault"
expect_alive ts
