#!/usr/bin/env bash
# The TUN's checksum and segmentation offload (src/tunnel/tun_io.h) at TUN MTU 1500, where
# it changes most:
#  - default: tunsocks logs "offload checksum+segmentation"; a 16 MiB GET and PUT over
#    IPv4 and a GET over IPv6 arrive byte-exact, and tunsocks read and wrote fewer than a
#    third of the packets MTU-sized segments need (the kernel and lwIP exchanged large
#    segments through the TUN), and the GET took less than 1.5 packets per full segment;
#  - a LAN host routed through the client namespace (the client as its gateway), GSO and
#    TSO off on the gateway's LAN port: lwIP's large segments are cut in software to the
#    LAN's MTU by the header tunsocks wrote: 16 MiB GET byte-exact, while the LAN host
#    received one packet per MTU-sized segment (not fragments) and tunsocks wrote few, large
#    ones. With the LAN at MTU 1280 (an MSS below the TUN's), lwIP keeps that MSS: GET
#    byte-exact, and tunsocks wrote at least one packet per 1240-byte segment.
#  - --no-offload: logs "offload off"; the same GET and PUT byte-exact, with at least one
#    packet per MTU-sized segment.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd curl
require_cmd ethtool

topo_setup
start_socksd s
start_http http "$SERVER_IP4"
start_http http6 "$SERVER_IP6"
size=$((16 * 1024 * 1024))
sha=$(make_body big "$size")
mtu_segments=$((size / 1460))

# packets NAME FIELD: a counter of tunsocks NAME.
packets() { json_get "$(tunsocks_counters "$1")" "$2"; }

start_tunsocks on --mtu 1500
grep -q "tun $TUN_NAME up: mtu 1500, offload checksum+segmentation" "$E2E_TMP/on.log" ||
  fail "offload not granted: $(grep "tun $TUN_NAME up" "$E2E_TMP/on.log")"
in0=$(packets on packets_in) out0=$(packets on packets_out)
get_and_check on "http://$SERVER_IP4:$http_port/big" big "$sha" >/dev/null
out1=$(packets on packets_out)
((out1 - out0 < mtu_segments / 3)) ||
  fail "16 MiB GET: tunsocks wrote $((out1 - out0)) packets; large segments need fewer than $((mtu_segments / 3))"
# Upstream reads are cut to whole segments: reads of 64 KiB against the 65435-byte MSS went
# out as a full segment and a 101-byte one each (twice the packets).
full_segments=$((size / 65435 + 1))
((out1 - out0 < full_segments * 3 / 2)) ||
  fail "16 MiB GET: tunsocks wrote $((out1 - out0)) packets for $full_segments full segments: short segments between them"
head -c "$size" /dev/urandom >"$E2E_TMP/up.bin"
upload_and_check on http "http://$SERVER_IP4:$http_port/up" "$E2E_TMP/up.bin" >/dev/null
in1=$(packets on packets_in)
((in1 - in0 < mtu_segments / 3)) ||
  fail "16 MiB PUT: tunsocks read $((in1 - in0)) packets; the kernel's large segments need fewer than $((mtu_segments / 3))"
log "ok: offload on, MTU 1500: GET wrote $((out1 - out0)) packets, PUT read $((in1 - in0)) (MTU-sized: $mtu_segments each)"
get_and_check on "http://[$SERVER_IP6]:$http6_port/big" big "$sha" >/dev/null
log "ok: offload on, IPv6 GET"

# A LAN behind the client namespace: 10.203.0.2 -> gateway 10.203.0.1 (client ns) -> TUN.
new_netns lan
ip -n "$client_ns" link add veth-lan mtu 1500 type veth peer name veth-gw netns "$lan_ns" ||
  fail "cannot create the LAN veth"
ip -n "$client_ns" addr add 10.203.0.1/30 dev veth-lan
ip -n "$lan_ns" addr add 10.203.0.2/30 dev veth-gw
ip -n "$client_ns" link set veth-lan up
ip -n "$lan_ns" link set veth-gw up
ip -n "$lan_ns" route add default via 10.203.0.1
in_client sysctl -qw net.ipv4.ip_forward=1
# Forwarded large segments would otherwise cross the veth whole; cut them here instead.
in_client ethtool -K veth-lan tso off gso off >/dev/null || fail "cannot turn GSO off on veth-lan"

# lan_get MTU: sets the LAN's MTU, GETs /big in the LAN host; sets rx (packets the LAN
# host received) and written (packets tunsocks wrote) meanwhile.
lan_get() {
  ip -n "$client_ns" link set veth-lan mtu "$1"
  ip -n "$lan_ns" link set veth-gw mtu "$1"
  local rx0 rx1 w0 w1 got
  rx0=$(ip netns exec "$lan_ns" cat /sys/class/net/veth-gw/statistics/rx_packets)
  w0=$(packets on packets_out)
  ip netns exec "$lan_ns" curl -sS --fail --max-time 60 --noproxy '*' -o "$E2E_TMP/lan.out" \
    "http://$SERVER_IP4:$http_port/big" || fail "GET from the LAN host (MTU $1) failed"
  got=$(sha256_of "$E2E_TMP/lan.out")
  [[ $got == "$sha" ]] || fail "GET from the LAN host (MTU $1): sha256 $got, expected $sha"
  rx1=$(ip netns exec "$lan_ns" cat /sys/class/net/veth-gw/statistics/rx_packets)
  w1=$(packets on packets_out)
  rx=$((rx1 - rx0)) written=$((w1 - w0))
}
lan_get 1500
# At least one packet per MTU-sized segment, and not many more: segments cut larger than
# the MTU would be fragmented, doubling the count.
((rx >= mtu_segments && rx <= mtu_segments * 5 / 4)) ||
  fail "LAN at MTU 1500: $rx packets received; cut to the MTU they are $mtu_segments to $((mtu_segments * 5 / 4))"
((written < mtu_segments / 3)) || fail "LAN at MTU 1500: tunsocks wrote $written packets; large segments need fewer than $((mtu_segments / 3))"
log "ok: LAN host at MTU 1500 behind the gateway: GET byte-exact, tunsocks wrote $written packets, the LAN received $rx"
lan_get 1280
((written >= size / 1240)) || fail "LAN at MTU 1280: tunsocks wrote $written packets; its MSS of 1240 needs at least $((size / 1240))"
log "ok: LAN host at MTU 1280: GET byte-exact, tunsocks kept its MSS ($written packets written)"
stop_tunsocks on

start_tunsocks off --mtu 1500 --no-offload
grep -q "tun $TUN_NAME up: mtu 1500, offload off" "$E2E_TMP/off.log" ||
  fail "--no-offload: $(grep "tun $TUN_NAME up" "$E2E_TMP/off.log")"
in0=$(packets off packets_in) out0=$(packets off packets_out)
get_and_check off "http://$SERVER_IP4:$http_port/big" big "$sha" >/dev/null
upload_and_check off http "http://$SERVER_IP4:$http_port/up" "$E2E_TMP/up.bin" >/dev/null
in1=$(packets off packets_in) out1=$(packets off packets_out)
((out1 - out0 >= mtu_segments && in1 - in0 >= mtu_segments)) ||
  fail "--no-offload: read $((in1 - in0)) and wrote $((out1 - out0)) packets; MTU-sized segments need $mtu_segments each way"
log "ok: --no-offload: GET and PUT byte-exact, $((out1 - out0)) packets written, $((in1 - in0)) read"
stop_tunsocks off
