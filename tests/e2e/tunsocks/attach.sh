#!/usr/bin/env bash
# --attach: tunsocks uses an existing, already configured TUN device as it is. A
# persistent device made with `ip tuntap` (MTU 9000, 172.21.0.1/30, up) keeps its MTU and
# address (not tunsocks' defaults); traffic routed to it goes through tunsocks (GET and
# PUT of 8 MiB, sha256, flow lines from 172.21.0.1); on SIGTERM tunsocks exits 0 and
# leaves the device in place, configured, and a second tunsocks can attach to it again.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd curl

topo_setup
start_socksd s
start_http http "$SERVER_IP4"
TUN_NAME=tsatt0
TUN_IP4=172.21.0.1
ip -n "$client_ns" tuntap add dev "$TUN_NAME" mode tun || fail "ip tuntap add failed"
ip -n "$client_ns" link set "$TUN_NAME" mtu 9000
ip -n "$client_ns" addr add "$TUN_IP4/30" dev "$TUN_NAME"
ip -n "$client_ns" link set "$TUN_NAME" up

start_tunsocks ts --attach --address6 none
link=$(in_client ip -o link show "$TUN_NAME")
grep -q ' mtu 9000 ' <<<"$link" || fail "--attach changed the MTU: $link"
grep -q "tun $TUN_NAME up: mtu 9000" "$E2E_TMP/ts.log" || fail "the start line does not report the device's MTU 9000: $(grep ' up: ' "$E2E_TMP/ts.log")"
addrs=$(in_client ip -o addr show dev "$TUN_NAME")
grep -q "inet $TUN_IP4/30" <<<"$addrs" || fail "--attach lost the device's address: $addrs"
if grep -q '172.19.0.1' <<<"$addrs"; then fail "--attach added tunsocks' default address: $addrs"; fi
transfer_suite ts http $((8 * 1024 * 1024)) $((8 * 1024 * 1024))

kill -TERM "$ts_pid"
wait_for 5 has_exited "$ts_pid" || fail "tunsocks --attach still runs 5 s after SIGTERM"
rc=0
wait "$ts_pid" || rc=$?
((rc == 0)) || fail "tunsocks --attach exited $rc on SIGTERM"
in_client ip link show "$TUN_NAME" >/dev/null 2>&1 || fail "tunsocks --attach removed the device it did not create"
in_client ip -o addr show dev "$TUN_NAME" | has "inet $TUN_IP4/30" || fail "the attached device lost its address after tunsocks exited"
log "ok: device left in place after exit"

start_tunsocks ts2 --attach --address6 none
transfer_suite ts2 http 1048576 1048576
log "ok: attached again"
