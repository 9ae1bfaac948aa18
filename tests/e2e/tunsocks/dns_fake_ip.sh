#!/usr/bin/env bash
# --dns fake-ip (the default): an A query to any resolver address through the TUN is
# answered by tunsocks from 198.18.0.0/15 (AAAA: fc00::/96, the same index), the same
# name keeps its address; a TCP connection to the fake address reaches the server with
# socksd resolving the name (its log shows dst=NAME:PORT); a UDP socket talking to the
# fake address gets its echoes back from the fake address; a TXT query is not answered
# locally but relayed through UDP ASSOCIATE (an echo server on port 53 sends it back).
# DNS over TCP to any address is answered locally as well (other types: REFUSED). A TCP
# connection to a pool address that stands for no name is unreachable at once.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

UDP_ECHO="$(dirname "$0")/udp_echo.py"
DNS_QUERY="$(dirname "$0")/dns_query.py"
NAME=server.tunsocks.test
topo_setup
# The name is known to the proxy namespace only: `ip netns exec` mounts this over /etc/hosts.
mkdir -p "/etc/netns/$proxy_ns"
register_cleanup rm -rf "/etc/netns/$proxy_ns"
printf '%s %s\n' "$SERVER_IP4" "$NAME" >"/etc/netns/$proxy_ns/hosts"
start_socksd s
start_tunsocks ts
start_peer sink "$SERVER_IP4" sink
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$UDP_ECHO" serve 5000 53
wait_for_log echo '^listening' 10
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours

a1=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" 10.53.0.53 "$NAME" A) || fail "A query: $a1"
a2=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" 192.0.2.1 "$NAME" A) || fail "second A query: $a2"
aaaa=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" 10.53.0.53 "$NAME" AAAA) || fail "AAAA query: $aaaa"
log "A: $a1 / $a2; AAAA: $aaaa"
fake=$(awk '{print $2}' <<<"$a1")
[[ $fake == 198.1[89].* ]] || fail "A answer $fake is not in 198.18.0.0/15"
[[ $a1 == "$a2" ]] || fail "the same name got two answers: '$a1' and '$a2'"
low=$(printf '%02x%02x:%02x%02x' $(tr . ' ' <<<"$fake"))
low=${low#0}
[[ $(awk '{print $2}' <<<"$aaaa") == "fc00::$(sed -E 's/^0+//; s/:0+([0-9a-f])/:\1/' <<<"$low")" ]] ||
  fail "AAAA answer $aaaa does not match the A answer $fake"

r=$(probe "$fake" "$sink_port" 10)
expect_probe "$r" connected 5000 "TCP to the fake address"
wait_for 10 bash -c "grep -q 'cmd=connect dst=$NAME:$sink_port ' '$E2E_TMP/s.log'" ||
  fail "socksd did not connect by name: $(grep 'session id=' "$E2E_TMP/s.log" | tail -n 3)"

u=$(in_client "$SYSTEM_PYTHON" -u "$UDP_ECHO" roundtrip "$fake" 5000) || fail "UDP to the fake address: $u"
# A pool address no answer handed out stands for nothing: unreachable at once.
r=$(probe 198.19.200.200 80 10)
expect_probe "$r" EHOSTUNREACH 2000 "TCP to a pool address without a name"
log "UDP to $fake: $u"

t=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" "$SERVER_IP4" "$NAME" TXT) || fail "TXT query: $t"
[[ $t == "raw "* ]] || fail "the TXT query was answered locally ($t), not relayed"

# DNS over TCP is answered here too: A with the same address, TXT refused (rcode 5).
tcp=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" 10.53.0.53 "$NAME" A tcp) || fail "A query over TCP: $tcp"
[[ $tcp == "$a1" ]] || fail "over TCP the name got '$tcp', over UDP '$a1'"
tcp_txt=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" 10.53.0.53 "$NAME" TXT tcp) || fail "TXT query over TCP: $tcp_txt"
[[ $tcp_txt == "empty rcode=5" ]] || fail "TXT over TCP: $tcp_txt, expected REFUSED"

c=$(tunsocks_counters ts)
(($(json_get "$c" dns_answered) == 4)) || fail "dns_answered: $c"
(($(json_get "$c" dns_tcp_connections) == 2)) || fail "dns_tcp_connections: $c"
(($(json_get "$c" dns_forwarded) >= 1)) || fail "dns_forwarded: $c"
(($(json_get "$c" fake_ip_flows) >= 2)) || fail "fake_ip_flows: $c"
(($(json_get "$c" fake_ip_unknown) == 1)) || fail "fake_ip_unknown: $c"
log "ok: $c"
expect_alive ts
# SIGTERM with associations open or just ended: a clean exit, status 0.
stop_tunsocks ts
