#!/usr/bin/env bash
# --dns forward --dns-resolver: every DNS query to port 53, whatever resolver address the
# application asked (IPv4 or IPv6), goes through UDP ASSOCIATE to the configured server
# (here an echo server on port 5300, which sends the query back), and the reply reaches
# the application from the address it asked. Nothing is answered locally.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

UDP_ECHO="$(dirname "$0")/udp_echo.py"
DNS_QUERY="$(dirname "$0")/dns_query.py"
topo_setup
start_socksd s
start_tunsocks ts --dns forward --dns-resolver "$SERVER_IP4:5300"
start_bg echo ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$UDP_ECHO" serve 5300
wait_for_log echo '^listening' 10
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours
c0=$(tunsocks_counters ts)

r4=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" 10.53.0.53 example.com A) || fail "IPv4 query: $r4"
[[ $r4 == "raw "* ]] || fail "the query was not relayed to the configured server: $r4"
r6=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" fd00::53 example.com AAAA) || fail "IPv6 query: $r6"
[[ $r6 == "raw "* ]] || fail "the IPv6 query was not relayed to the configured server: $r6"
wait_for_log echo "^echo .* 5300|^echo " 5
n=$(grep -c '^echo ' "$E2E_TMP/echo.log")
((n == 2)) || fail "the configured server saw $n queries, expected 2"

c1=$(tunsocks_counters ts)
(($(json_get "$c1" dns_forwarded) - $(json_get "$c0" dns_forwarded) == 2)) || fail "dns_forwarded: $c1"
(($(json_get "$c1" dns_answered) == 0)) || fail "answered locally in forward mode: $c1"
# A resolver library that uses a fresh source port per query (here: one process per
# query) must not cost a SOCKS association per query: tunsocks is the DNS client, and
# every relayed query shares one association, IDs rewritten and mapped back (dns_query.py
# checks the reply carries its own ID and comes from the address it asked).
for i in $(seq 30); do
  r=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" "10.53.$((i % 4)).53" "q$i.example.com" A) ||
    fail "query $i from a fresh socket: $r"
  [[ $r == "raw "* ]] || fail "query $i was not relayed: $r"
done
c2=$(tunsocks_counters ts)
opened=$(($(json_get "$c2" udp_sessions_total) - $(json_get "$c1" udp_sessions_total)))
((opened <= 1)) || fail "30 queries from 30 sockets opened $opened associations, expected one shared: $c2"
(($(json_get "$c2" dns_forwarded) - $(json_get "$c1" dns_forwarded) == 30)) || fail "dns_forwarded: $c2"
(($(json_get "$c2" dns_unmatched) == 0)) || fail "replies that matched no query: $c2"
log "ok: $r4 / $r6 via $SERVER_IP4:5300, then 30 sockets over $opened new association(s): $c2"
stop_tunsocks ts
