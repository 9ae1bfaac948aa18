#!/usr/bin/env bash
# --dns tcp: every DNS query to port 53 goes as DNS over TCP through ONE CONNECT to the
# configured resolver (a stand-in that echoes each framed message, out of order), with
# IDs rewritten and mapped back, so the reply reaches each application socket with its
# own ID from the address it asked. No UDP association is used: it works through a
# SOCKS4 upstream, which carries no UDP at all.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

DNS_QUERY="$(dirname "$0")/dns_query.py"
topo_setup
start_socksd s
start_bg resolver ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$(dirname "$0")/dns_tcp_echo.py" \
  "$SERVER_IP4" 5353
wait_for_log resolver '^listening' 10
start_tunsocks ts --upstream "socks4://$PROXY_IP4:$UPSTREAM_PORT" --dns tcp \
  --dns-resolver "$SERVER_IP4:5353"
sleep 1 # the kernel's own first packets on the new TUN are not ours
c0=$(tunsocks_counters ts)

for i in $(seq 20); do
  r=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" "10.53.0.$((i % 3 + 1))" "q$i.example.com" A) ||
    fail "query $i: $r"
  [[ $r == "raw "* ]] || fail "query $i was not relayed over TCP: $r"
done
r6=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" fd00::53 six.example.com AAAA) || fail "IPv6 query: $r6"
[[ $r6 == "raw "* ]] || fail "the IPv6 query was not relayed over TCP: $r6"

c1=$(tunsocks_counters ts)
(($(json_get "$c1" dns_forwarded) - $(json_get "$c0" dns_forwarded) == 21)) || fail "dns_forwarded: $c1"
(($(json_get "$c1" dns_over_tcp_connections) == 1)) || fail "expected one DNS-over-TCP connection: $c1"
(($(json_get "$c1" udp_sessions_total) == 0)) || fail "a UDP association was opened: $c1"
(($(json_get "$c1" dns_unmatched) == 0)) || fail "replies that matched no query: $c1"
n=$(grep -c '^connection ' "$E2E_TMP/resolver.log")
((n == 1)) || fail "the resolver saw $n connections, expected 1"
m=$(grep -c '^echo ' "$E2E_TMP/resolver.log")
((m == 21)) || fail "the resolver saw $m queries, expected 21"
stop_tunsocks ts
# The proxy saw exactly one CONNECT, to the resolver, over SOCKS4 (logged when it ends).
wait_for_log s "proto=socks4 cmd=connect dst=$SERVER_IP4:5353 " 5
k=$(grep -cE "session id=.* proto=socks4 cmd=connect dst=$SERVER_IP4:5353 " "$E2E_TMP/s.log" || true)
((k == 1)) || fail "socksd logged $k SOCKS4 CONNECTs to the resolver, expected 1: $(grep 'session id=' "$E2E_TMP/s.log")"
log "ok: 21 queries from 21 sockets over one CONNECT through SOCKS4: $c1"
