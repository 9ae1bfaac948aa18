#!/usr/bin/env bash
# CONNECT half-close through socksd, both directions: a FIN from either side is relayed
# and the other direction keeps flowing (relay.py half_close has the details).
source "$(dirname "$0")/common.sh"
require_socksd

start_socksd s --listen 127.0.0.1:0 --allow-private
raw relay.py "$s_addr" "$s_pid" "$E2E_TMP/s.log" half_close || fail "half-close"
kill -0 "$s_pid" || fail "socksd died"
