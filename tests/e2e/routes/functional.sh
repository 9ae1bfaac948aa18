#!/usr/bin/env bash
# The routes do what they are for, in a client namespace whose own way out is a veth to a
# second namespace (10.211.0.0/30, fd00:211::/64; default routes via the peer):
#  - an outside address (203.0.113.5, 2001:db8:ff::1) is routed to tun0, and a real UDP
#    datagram to it leaves through tun0 (tun0's tx counters move by one);
#  - the same with the fwmark (ip route get ... mark 0x2d0; a socket with SO_MARK
#    0x2d0): it goes via the veth, never tun0 (tunsocks' upstream cannot loop);
#  - the veth's own subnet stays on the veth (the suppress_prefixlength rule);
#  - an --exclude prefix (192.0.2.0/24, 2001:db8:2::/48) goes via the veth;
#  - after down, 203.0.113.5 goes via the veth again.
source "$(dirname "$0")/common.sh"
require_cmd "$SYSTEM_PYTHON"

routes_netns c
new_netns g
ip link add ts-rc$$ netns "$c_ns" type veth peer name ts-rg$$ netns "$g_ns"
cv=ts-rc$$
ip -n "$c_ns" addr add 10.211.0.1/30 dev "$cv"
ip -n "$c_ns" addr add fd00:211::1/64 dev "$cv" nodad
ip -n "$g_ns" addr add 10.211.0.2/30 dev ts-rg$$
ip -n "$g_ns" addr add fd00:211::2/64 dev ts-rg$$ nodad
# No link-local addresses: their DAD ends at some later moment and would add a route to
# the local table between the snapshots.
ip -n "$c_ns" link set "$cv" addrgenmode none
ip -n "$g_ns" link set ts-rg$$ addrgenmode none
ip -n "$c_ns" link set "$cv" up
ip -n "$g_ns" link set ts-rg$$ up
ip -n "$c_ns" route add default via 10.211.0.2
ip -n "$c_ns" -6 route add default via fd00:211::2
state="$E2E_TMP/routes.state"
snapshot "$c_ns" >"$E2E_TMP/before.txt"

# get [OPTS] ADDR [mark M]: the device `ip route get` picks in the client namespace.
get_dev() {
  in_ns "$c_ns" ip "$@" | sed -nE 's/.* dev ([^ ]+).*/\1/p' | head -n 1
}
expect_dev() { # expect_dev DEV ARGS...
  local want=$1 got
  shift
  got=$(get_dev "$@")
  [[ $got == "$want" ]] || fail "ip $*: dev '$got', expected '$want' ($(in_ns "$c_ns" ip "$@" 2>&1))"
}

expect_dev "$cv" route get 203.0.113.5
routes "$c_ns" up --tun tun0 --exclude 192.0.2.0/24 --exclude 2001:db8:2::/48 --state "$state" \
  2>"$E2E_TMP/up.log" || fail "up failed: $(cat "$E2E_TMP/up.log")"

expect_dev tun0 route get 203.0.113.5
expect_dev "$cv" route get 203.0.113.5 mark 0x2d0
expect_dev "$cv" route get 10.211.0.2
expect_dev "$cv" route get 192.0.2.7
expect_dev tun0 -6 route get 2001:db8:ff::1
expect_dev "$cv" -6 route get 2001:db8:ff::1 mark 0x2d0
expect_dev "$cv" -6 route get fd00:211::2
expect_dev "$cv" -6 route get 2001:db8:2::7
expect_dev tun0 route get 198.51.100.1 mark 0x2d1

# Real datagrams. Nobody reads tun0, so the kernel counts what it sent there as
# tx_packets or tx_dropped; either way it went to tun0.
tun_out() {
  echo $(($(in_ns "$c_ns" cat /sys/class/net/tun0/statistics/tx_packets) +
    $(in_ns "$c_ns" cat /sys/class/net/tun0/statistics/tx_dropped)))
}
veth_out() { in_ns "$c_ns" cat "/sys/class/net/$cv/statistics/tx_packets"; }
send_udp() { # send_udp MARK: one datagram to 203.0.113.5:9, with SO_MARK MARK (0: none)
  in_ns "$c_ns" "$SYSTEM_PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
mark = int(sys.argv[1], 0)
if mark:
    s.setsockopt(socket.SOL_SOCKET, 36, mark)  # SO_MARK
s.sendto(b"tunsocks-routes", ("203.0.113.5", 9))
' "$1"
}
t0=$(tun_out)
send_udp 0
t1=$(tun_out) v1=$(veth_out)
((t1 == t0 + 1)) || fail "an unmarked datagram to 203.0.113.5: tun0 sent $((t1 - t0)) packets, expected 1"
# (The veth's own counter is no witness here: IPv6 router solicitations and MLD reports
# of a fresh link may leave at any time.)
send_udp 0x2d0
sleep 0.2 # the first packet via the veth may wait for ARP
t2=$(tun_out) v2=$(veth_out)
((t2 == t1)) || fail "a datagram marked 0x2d0 went to tun0"
((v2 > v1)) || fail "a datagram marked 0x2d0 did not leave through the veth"

routes "$c_ns" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down failed: $(cat "$E2E_TMP/down.log")"
expect_dev "$cv" route get 203.0.113.5
same_as_before "$c_ns" "$E2E_TMP/before.txt" "after down"
host_untouched
log "PASS"
