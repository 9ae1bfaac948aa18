#!/usr/bin/env bash
# A closed destination port looks closed to the app: socksd's connect gets a RST and
# replies 0x05 (connection refused); tunsocks answers the held SYN with a RST, so the
# app's connect() fails with ECONNREFUSED within 1 s, IPv4 and IPv6. Each attempt has a
# flow line reply=connection_refused end=refused up=0 down=0, counts in flows_refused,
# and leaves no flow open; a good connection still works afterwards.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
start_socksd s
start_tunsocks ts
closed=9 # nothing listens on it in the server namespace

attempts=0
for dst in "$SERVER_IP4" "$SERVER_IP4" "$SERVER_IP4" "$SERVER_IP6"; do
  r=$(probe "$dst" "$closed" 20)
  expect_probe "$r" ECONNREFUSED 1000 "connect to closed port $dst:$closed"
  attempts=$((attempts + 1))
  line=$(flow_line ts "$(field "$r" port)")
  expect_field "$line" reply connection_refused
  expect_field "$line" end refused
  expect_field "$line" up 0
  expect_field "$line" down 0
  log "ok: $dst:$closed -> $r; $line"
done
grep -E 'session id=.* reply=connection_refused' "$E2E_TMP/s.log" | has "dst=$SERVER_IP4:$closed " ||
  fail "socksd has no session line dst=$SERVER_IP4:$closed reply=connection_refused (was the refusal socksd's?)"

c=$(tunsocks_counters ts)
[[ $(json_get "$c" flows_refused) == "$attempts" ]] || fail "counters: flows_refused != $attempts: $c"
[[ $(json_get "$c" flows_open) == 0 ]] || fail "counters: flows_open != 0 after refusals: $c"

# Still serving: a real connection right after.
start_peer sink "$SERVER_IP4" sink
r=$(probe "$SERVER_IP4" "$sink_port" 20)
expect_probe "$r" connected 5000 "connect to an open port after the refusals"
expect_alive ts
log "ok: counters $c"
