#!/usr/bin/env bash
# dig through the TUN against a real resolver (dnsmasq in the server namespace, local zone
# only), in each --dns mode:
#   fake-ip  A and AAAA (over UDP, IPv4 and IPv6, and over TCP) come from the pool, the
#            same index for both; a TXT question is relayed to the resolver asked and
#            gets the zone's real record.
#   forward  every query to any address reaches the resolver through UDP ASSOCIATE and
#            gets the zone's real answers (A, AAAA, TXT); TCP to port 53 as well.
#   tcp      the same answers over DNS over TCP through one CONNECT.
# In every mode malformed queries (no question, a name cut short, a name that points to
# itself, 5 bytes) get FORMERR, nothing, or what the resolver itself answers them (asked
# directly from the proxy namespace: dnsmasq says REFUSED to the pointer loop), never a
# local answer; tunsocks goes on answering.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd
require_cmd dig

DNS_QUERY="$(dirname "$0")/dns_query.py"
NAME=www.zone.test
TXT_NAME=txt.zone.test
topo_setup
start_socksd s
start_dnsmasq resolver --host-record="$NAME,$SERVER_IP4,$SERVER_IP6" \
  --txt-record="$TXT_NAME,tunsocks e2e"

# dig_short ARGS...: one try, no retry (a lost query must not be hidden), answers only.
dig_short() {
  in_client dig +short +time=3 +tries=1 "$@" || fail "dig $*: exit $?"
}

# What the resolver answers the malformed queries when asked directly (no tunsocks).
reference=$(in_proxy "$SYSTEM_PYTHON" "$DNS_QUERY" "$SERVER_IP4" malformed) ||
  fail "malformed queries from the proxy: $reference"
log "malformed, the resolver asked directly: $(tr '\n' ' ' <<<"$reference")"

# expect_malformed_handled RESOLVER TS: each malformed query is answered FORMERR, dropped
# or answered as the resolver answers it; the 5-byte one dropped; tunsocks TS still runs.
expect_malformed_handled() {
  local out kind result
  out=$(in_client "$SYSTEM_PYTHON" "$DNS_QUERY" "$1" malformed) || fail "malformed queries: $out"
  while read -r kind result; do
    [[ $result == "rcode=1" || $result == dropped || "$kind $result" == "$(grep "^$kind " <<<"$reference")" ]] ||
      fail "malformed query $kind to $1: $result; expected FORMERR (rcode=1), no answer or the resolver's own: $reference"
  done <<<"$out"
  grep -qx "short dropped" <<<"$out" || fail "5 bytes were answered: $out"
  [[ $(wc -l <<<"$out") -eq 4 ]] || fail "malformed: $out"
  expect_alive "$2"
  log "malformed to $1: $(tr '\n' ' ' <<<"$out")"
}

# ------------------------------------------------------------------ fake-ip
start_tunsocks ts
sleep 1 # the kernel's own first packets on the new TUN (IPv6 RS, MLD) are not ours
a=$(dig_short @"$SERVER_IP4" "$NAME" A)
aaaa=$(dig_short @"$SERVER_IP6" "$NAME" AAAA)
a_tcp=$(dig_short +tcp @"$SERVER_IP4" "$NAME" A)
aaaa_tcp=$(dig_short +tcp @10.53.0.53 "$NAME" AAAA)
log "fake-ip: A $a AAAA $aaaa; over TCP: A $a_tcp AAAA $aaaa_tcp"
[[ $a =~ ^198\.1[89]\.[0-9]+\.[0-9]+$ ]] || fail "fake-ip A answer '$a' is not one pool address"
[[ $aaaa =~ ^fc00::[0-9a-f:]+$ ]] || fail "fake-ip AAAA answer '$aaaa' is not one pool address"
# The same index: fc00::<the A answer's 32 bits>.
read -r o1 o2 o3 o4 <<<"${a//./ }"
[[ $(in_client "$SYSTEM_PYTHON" -c 'import ipaddress,sys; print(ipaddress.ip_address(sys.argv[1]))' \
  "fc00::$(printf '%x:%x' $((o1 << 8 | o2)) $((o3 << 8 | o4)))") == "$aaaa" ]] ||
  fail "AAAA $aaaa and A $a are not the same pool index"
[[ $a_tcp == "$a" && $aaaa_tcp == "$aaaa" ]] || fail "over TCP the name got A $a_tcp AAAA $aaaa_tcp"
txt=$(dig_short @"$SERVER_IP4" "$TXT_NAME" TXT)
[[ $txt == '"tunsocks e2e"' ]] || fail "fake-ip: TXT relayed to the resolver gave '$txt'"
expect_malformed_handled "$SERVER_IP4" ts
[[ $(dig_short @"$SERVER_IP4" "$NAME" A) == "$a" ]] || fail "fake-ip: no answer after the malformed queries"
c=$(tunsocks_counters ts)
(($(json_get "$c" dns_answered) == 5)) || fail "fake-ip: expected 5 local answers: $c"
stop_tunsocks ts

# ------------------------------------------------------------------ forward and tcp
for mode in forward tcp; do
  q0=$(grep -c 'query\[' "$E2E_TMP/resolver.log" || true)
  start_tunsocks "ts_$mode" --dns "$mode" --dns-resolver "$SERVER_IP4"
  sleep 1
  a=$(dig_short @10.53.0.53 "$NAME" A)
  aaaa=$(dig_short @fd00::53 "$NAME" AAAA)
  txt=$(dig_short @"$SERVER_IP6" "$TXT_NAME" TXT)
  a_tcp=$(dig_short +tcp @"$SERVER_IP4" "$NAME" A)
  log "$mode: A $a AAAA $aaaa TXT $txt; A over TCP $a_tcp"
  [[ $a == "$SERVER_IP4" ]] || fail "$mode: A answer '$a', the zone says $SERVER_IP4"
  [[ $aaaa == "$SERVER_IP6" ]] || fail "$mode: AAAA answer '$aaaa', the zone says $SERVER_IP6"
  [[ $txt == '"tunsocks e2e"' ]] || fail "$mode: TXT answer '$txt'"
  [[ $a_tcp == "$SERVER_IP4" ]] || fail "$mode: A over TCP '$a_tcp', the zone says $SERVER_IP4"
  expect_malformed_handled 10.53.0.53 "ts_$mode"
  [[ $(dig_short @10.53.0.53 "$NAME" A) == "$SERVER_IP4" ]] || fail "$mode: no answer after the malformed queries"
  c=$(tunsocks_counters "ts_$mode")
  (($(json_get "$c" dns_answered) == 0)) || fail "$mode: answered locally: $c"
  (($(json_get "$c" dns_unmatched) == 0)) || fail "$mode: replies that matched no query: $c"
  # Every question reached the real resolver, from the proxy's side only.
  q=$(($(grep -c 'query\[' "$E2E_TMP/resolver.log") - q0))
  ((q >= 5)) || fail "$mode: the resolver logged $q questions, expected at least 5"
  if grep 'query\[' "$E2E_TMP/resolver.log" | grep -v "from $PROXY_SERVER_SIDE_IP4\$" | has .; then
    fail "$mode: a question reached the resolver from elsewhere than the proxy: $(grep 'query\[' "$E2E_TMP/resolver.log" | grep -v "from $PROXY_SERVER_SIDE_IP4\$")"
  fi
  stop_tunsocks "ts_$mode"
done
log "ok"
