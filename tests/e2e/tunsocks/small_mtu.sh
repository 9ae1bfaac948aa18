#!/usr/bin/env bash
# Smaller TUN MTUs than the 65535 default, where every transfer is many segments:
#  --mtu 1280 (the IPv6 minimum): tun0 has that MTU and the default addresses; a GET and
#    a PUT of 16 MiB over IPv4 and a GET over IPv6, sha256 compared, flow lines checked;
#  --mtu 576 --address 172.20.0.1/30 --address6 none: tun0 has that MTU, that address
#    and no global IPv6 address; the app's flows come from 172.20.0.1; GET and PUT of
#    16 MiB over IPv4.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd curl

topo_setup
start_socksd s
start_http http "$SERVER_IP4"
start_http http6 "$SERVER_IP6"
size=$((16 * 1024 * 1024))

start_tunsocks ts1280 --mtu 1280
link=$(in_client ip -o link show "$TUN_NAME")
grep -q ' mtu 1280 ' <<<"$link" || fail "--mtu 1280: $link"
in_client ip -o addr show dev "$TUN_NAME" | has "inet $TUN_IP4/30" || fail "tun0 lacks $TUN_IP4/30: $(in_client ip -o addr show dev "$TUN_NAME")"
if ! in_client ip -o addr show dev "$TUN_NAME" | has "inet6 $TUN_IP6/126"; then
  now=$(in_client ip -o addr show dev "$TUN_NAME")
  sleep 1
  fail "tun0 lacks $TUN_IP6/126 once tunsocks said 'up': [$now]; 1 s later: [$(in_client ip -o addr show dev "$TUN_NAME" | grep inet6)]; disable_ipv6=$(in_client sysctl -n "net.ipv6.conf.$TUN_NAME.disable_ipv6"); $(in_client ip -o link show "$TUN_NAME")"
fi
transfer_suite ts1280 http "$size" "$size"
sha6=$(make_body v6 "$size")
line=$(get_and_check ts1280 "http://[$SERVER_IP6]:$http6_port/v6" v6 "$sha6")
log "ok: mtu 1280, IPv6 GET: $line"
stop_tunsocks ts1280

TUN_IP4=172.20.0.1
start_tunsocks ts576 --mtu 576 --address "$TUN_IP4/30" --address6 none
link=$(in_client ip -o link show "$TUN_NAME")
grep -q ' mtu 576 ' <<<"$link" || fail "--mtu 576: $link"
in_client ip -o addr show dev "$TUN_NAME" | has "inet $TUN_IP4/30" || fail "tun0 lacks $TUN_IP4/30 (--address): $(in_client ip -o addr show dev "$TUN_NAME")"
if in_client ip -o addr show dev "$TUN_NAME" | has 'inet6 .* scope global'; then
  fail "--address6 none, yet tun0 has a global IPv6 address: $(in_client ip -o addr show dev "$TUN_NAME")"
fi
transfer_suite ts576 http "$size" "$size"
expect_alive ts576
