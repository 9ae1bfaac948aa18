#!/usr/bin/env bash
# No DNS leak in fake-ip mode. The client namespace's resolv.conf names the real resolver
# (dnsmasq on $SERVER_IP4, which knows the name); dig A/AAAA and curl http://NAME:PORT/
# run there. tcpdump at the resolver's interface counts port-53 packets: none may arrive
# while dig and curl resolve the name (all answered by tunsocks from the pool), and the
# body reaches curl byte-exact, with socksd connecting by the NAME (socks5h) rather than
# an address. A control query from the proxy namespace afterwards must be captured:
# otherwise a zero would prove nothing.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd dig tcpdump curl

NAME=web.zone.test
topo_setup
# socksd resolves by its own hosts file: the resolver must see nothing from this test
# until the control query.
mkdir -p "/etc/netns/$proxy_ns" "/etc/netns/$client_ns"
register_cleanup rm -rf "/etc/netns/$proxy_ns" "/etc/netns/$client_ns"
printf '%s %s\n' "$SERVER_IP4" "$NAME" >"/etc/netns/$proxy_ns/hosts"
printf 'nameserver %s\noptions attempts:1 timeout:3\n' "$SERVER_IP4" >"/etc/netns/$client_ns/resolv.conf"
: >"/etc/netns/$client_ns/hosts"
start_socksd s
start_dnsmasq resolver --host-record="$NAME,$SERVER_IP4,$SERVER_IP6"
start_http web "$SERVER_IP4"
sha=$(make_body page 300000)
start_tunsocks ts
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours

start_bg capture ip netns exec "$server_ns" tcpdump -i veth-s -n -U -w "$E2E_TMP/dns.pcap" 'port 53'
wait_for_log capture 'listening on' 10
# captured: the number of port-53 packets written so far (-U writes each one at once).
captured() {
  in_server tcpdump -n -r "$E2E_TMP/dns.pcap" 2>/dev/null | wc -l
}

a=$(in_client dig +short +time=3 +tries=1 @"$SERVER_IP4" "$NAME" A) || fail "dig A failed"
aaaa=$(in_client dig +short +time=3 +tries=1 @"$SERVER_IP6" "$NAME" AAAA) || fail "dig AAAA failed"
[[ $a =~ ^198\.1[89]\. ]] || fail "A answer '$a' is not from the pool"
[[ $aaaa =~ ^fc00:: ]] || fail "AAAA answer '$aaaa' is not from the pool"
stats=$(curl_in_client "$E2E_TMP/page.out" "http://$NAME:$web_port/page") || fail "curl by name failed"
[[ $(sha256_of "$E2E_TMP/page.out") == "$sha" ]] || fail "the page arrived altered ($stats)"
wait_for 10 bash -c "grep -q 'cmd=connect dst=$NAME:$web_port ' '$E2E_TMP/s.log'" ||
  fail "socksd did not connect by name: $(grep 'session id=' "$E2E_TMP/s.log" | tail -n 3)"
# CONNECT 0.0.0.0:0 is tunsocks' start-up probe (does the upstream take a pipelined
# request?), not the application's traffic.
if grep 'session id=' "$E2E_TMP/s.log" | grep 'cmd=connect' | grep -v -e "dst=$NAME:" -e 'dst=0.0.0.0:0 ' | has .; then
  fail "socksd was asked for an address, not the name: $(grep 'cmd=connect' "$E2E_TMP/s.log")"
fi
sleep 0.5 # a leaked query would be in flight at most this long on these veths
leaked=$(captured)
((leaked == 0)) || fail "$leaked port-53 packets reached the resolver: $(in_server tcpdump -n -r "$E2E_TMP/dns.pcap" 2>/dev/null)"
grep -q 'query\[' "$E2E_TMP/resolver.log" && fail "the resolver logged a question: $(grep 'query\[' "$E2E_TMP/resolver.log")"

# The control: the capture does see a query that does reach the resolver.
real=$(in_proxy dig +short +time=3 +tries=1 @"$SERVER_IP4" "$NAME" A) || fail "control dig from the proxy failed"
[[ $real == "$SERVER_IP4" ]] || fail "control dig got '$real'"
wait_for 5 bash -c "(( \$(tcpdump -n -r '$E2E_TMP/dns.pcap' 2>/dev/null | wc -l) >= 2 ))" ||
  fail "the capture did not see the control query and its answer: it cannot tell a leak"
c=$(tunsocks_counters ts)
(($(json_get "$c" dns_answered) >= 4)) || fail "expected at least 4 local answers (dig A, AAAA, curl's A and AAAA): $c"
(($(json_get "$c" dns_forwarded) == 0)) || fail "a query was forwarded: $c"
log "ok: A $a AAAA $aaaa, curl by name $stats, 0 packets at the resolver, control captured; $c"
stop_tunsocks ts
