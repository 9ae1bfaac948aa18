#!/usr/bin/env bash
# No traffic loop: with the default routes on the TUN, tunsocks' own upstream connection
# still leaves through the veth. One 32 MiB GET through the TUN must show
#  - on the veth (rx): at least the 32 MiB (the upstream carried the download);
#  - on the TUN (rx: written by tunsocks): the 32 MiB once, not twice; (tx: read by
#    tunsocks): only requests and ACKs, well under 4 MiB;
#  - in tunsocks' counters: exactly one new flow (a looping upstream connection would
#    be a flow of its own, and another, ...), packets_out = the packets the kernel took
#    from tunsocks (tun rx_packets + rx_dropped), packets_in no more than it read
#    (tun tx_packets), and, idle for 2 s afterwards, counters that stay still;
#  - the upstream socket carries the fwmark (default 0x2d0), seen with ss while a flow is
#    open; --fwmark 0x1234 sets that mark instead, --fwmark 0 none.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd curl ss

topo_setup
start_socksd s
start_http http "$SERVER_IP4"
start_peer holder "$SERVER_IP4" hold
start_tunsocks ts
size=$((32 * 1024 * 1024))
sha=$(make_body body "$size")

stat_of() { in_client cat "/sys/class/net/$1/statistics/$2"; }
declare -A before after
snapshot() {
  local -n into=$1
  local dev k
  for dev in "$TUN_NAME" "$CLIENT_VETH"; do
    for k in rx_bytes tx_bytes rx_packets tx_packets rx_dropped tx_dropped; do
      into[$dev.$k]=$(stat_of "$dev" "$k")
    done
  done
}
delta() { echo $((after[$1] - before[$1])); }
cdelta() { echo $(($(json_get "$c1" "$1") - $(json_get "$c0" "$1"))); }

# Let the kernel's own first packets on a new link (IPv6 router solicitations, MLD)
# pass before the baseline.
sleep 1
c0=$(tunsocks_counters ts)
snapshot before
line=$(get_and_check ts "http://$SERVER_IP4:$http_port/body" body "$sha")
c1=$(tunsocks_counters ts)
snapshot after
log "flow: $line"
log "tun0 rx_bytes +$(delta "$TUN_NAME.rx_bytes") tx_bytes +$(delta "$TUN_NAME.tx_bytes"); $CLIENT_VETH rx_bytes +$(delta "$CLIENT_VETH.rx_bytes") tx_bytes +$(delta "$CLIENT_VETH.tx_bytes")"
log "counters before: $c0"
log "counters after:  $c1"

(($(delta "$CLIENT_VETH.rx_bytes") >= size)) ||
  fail "$CLIENT_VETH received $(delta "$CLIENT_VETH.rx_bytes") bytes during a $size-byte download: the upstream did not use the veth"
(($(delta "$TUN_NAME.rx_bytes") >= size)) ||
  fail "$TUN_NAME carried only $(delta "$TUN_NAME.rx_bytes") bytes to the app during a $size-byte download"
(($(delta "$TUN_NAME.rx_bytes") <= size + size / 20 + 1048576)) ||
  fail "$TUN_NAME carried $(delta "$TUN_NAME.rx_bytes") bytes to the kernel for a $size-byte download: more than once (a loop?)"
(($(delta "$TUN_NAME.tx_bytes") <= 4194304)) ||
  fail "$TUN_NAME carried $(delta "$TUN_NAME.tx_bytes") bytes into tunsocks for a download (only requests and ACKs expected): the upstream is routed into the TUN?"
[[ $(cdelta flows_total) == 1 ]] || fail "one GET made $(cdelta flows_total) flows (a loop makes more): $c1"
written=$(($(delta "$TUN_NAME.rx_packets") + $(delta "$TUN_NAME.rx_dropped")))
[[ $(cdelta packets_out) == "$written" ]] ||
  fail "counters: packets_out grew by $(cdelta packets_out), the kernel took $written packets from $TUN_NAME"
(($(cdelta packets_in) >= 1 && $(cdelta packets_in) <= $(delta "$TUN_NAME.tx_packets"))) ||
  fail "counters: packets_in grew by $(cdelta packets_in), the kernel handed $(delta "$TUN_NAME.tx_packets") packets to tunsocks"
[[ $(json_get "$c1" tun_write_errors) == 0 ]] || fail "counters: tun_write_errors != 0: $c1"

# Idle: nothing may keep circulating.
sleep 2
c2=$(tunsocks_counters ts)
for k in packets_in packets_out; do
  grown=$(($(json_get "$c2" "$k") - $(json_get "$c1" "$k")))
  ((grown <= 10)) || fail "counters: $k grew by $grown in 2 idle seconds (traffic circulating?): $c2"
done
[[ $(json_get "$c2" flows_total) == "$(json_get "$c1" flows_total)" ]] || fail "flows appeared while idle: $c2"
[[ $(json_get "$c2" flows_open) == 0 ]] || fail "counters: flows_open != 0 while idle: $c2"

# The fwmark on the upstream socket, while a flow is open.
start_client hold --host "$SERVER_IP4" --port "$holder_port" --mode hold --count 1 --timeout 30
wait_for 10 grep -q '^connected ' "$E2E_TMP/hold.log" || fail "holding client did not connect: $(cat "$E2E_TMP/hold.log")"
up_sock=$(in_client ss -Htne state established dst "$PROXY_IP4:$UPSTREAM_PORT" 2>/dev/null)
[[ -n $up_sock ]] || fail "no established upstream socket to $PROXY_IP4:$UPSTREAM_PORT in the client namespace"
grep -q 'fwmark:0x2d0' <<<"$up_sock" || fail "the upstream socket has no fwmark 0x2d0: $up_sock"
grep -q "$CLIENT_VETH_IP4:" <<<"$up_sock" || fail "the upstream socket is not bound to the veth address: $up_sock"
log "ok: upstream socket: $up_sock"
kill "$hold_pid" 2>/dev/null || true
expect_alive ts

# --fwmark sets another mark; --fwmark 0 sets none.
# upstream_mark NAME: the fwmark ss shows on tunsocks NAME's upstream socket ("" if none).
upstream_mark() {
  start_client "hold_$1" --host "$SERVER_IP4" --port "$holder_port" --mode hold --count 1 --timeout 30
  wait_for 10 grep -q '^connected ' "$E2E_TMP/hold_$1.log" || fail "holding client did not connect through $1"
  local sock
  sock=$(in_client ss -Htne state established dst "$PROXY_IP4:$UPSTREAM_PORT" 2>/dev/null)
  [[ -n $sock ]] || fail "no upstream socket of tunsocks $1"
  grep -Eo 'fwmark:0x[0-9a-f]+' <<<"$sock" | head -n 1 || true
  local pid_var="hold_${1}_pid"
  kill "${!pid_var}" 2>/dev/null || true
}
stop_tunsocks ts
start_tunsocks ts2 --fwmark 0x1234
mark=$(upstream_mark ts2)
[[ $mark == fwmark:0x1234 ]] || fail "--fwmark 0x1234: the upstream socket shows '${mark:-no mark}'"
stop_tunsocks ts2
start_tunsocks ts3 --fwmark 0
mark=$(upstream_mark ts3)
[[ -z $mark ]] || fail "--fwmark 0: the upstream socket still carries $mark"
log "ok: --fwmark 0x1234 and --fwmark 0"
