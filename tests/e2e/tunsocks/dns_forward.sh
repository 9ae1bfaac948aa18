#!/usr/bin/env bash
# --dns forward --dns-server: every DNS query to port 53, whatever resolver address the
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
start_tunsocks ts --dns forward --dns-server "$SERVER_IP4:5300"
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
log "ok: $r4 / $r6 via $SERVER_IP4:5300: $c1"
stop_tunsocks ts
