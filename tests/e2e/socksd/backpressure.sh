#!/usr/bin/env bash
# Backpressure through socksd: a client that does not read, and a destination that does
# not read, stall the other side instead of growing socksd's memory; the stream then
# resumes in order (relay.py backpressure has the bounds).
source "$(dirname "$0")/common.sh"
require_socksd

start_socksd s --listen 127.0.0.1:0 --allow-private
raw relay.py "$s_addr" "$s_pid" "$E2E_TMP/s.log" backpressure || fail "backpressure"
kill -0 "$s_pid" || fail "socksd died"
