#!/usr/bin/env bash
# UDP ASSOCIATE through socksd with a raw python client and a UDP echo server; what is
# asserted is listed at the top of udp.py.
source "$(dirname "$0")/common.sh"
require_socksd

start_socksd s --listen 127.0.0.1:0 --allow-private
raw udp.py "$s_addr" "$s_pid" "$E2E_TMP/s.log" || fail "UDP ASSOCIATE scenarios failed"
kill -0 "$s_pid" || fail "socksd died"
