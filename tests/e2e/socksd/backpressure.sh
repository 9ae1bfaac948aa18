#!/usr/bin/env bash
# Backpressure through socksd: a client that does not read, and a destination that does
# not read, stall the other side instead of growing socksd's memory; the stream then
# resumes in order (relay.py backpressure has the bounds). Once with the default relay
# (which moves bulk sessions to splice(2)) and once buffered only (SOCKSD_SPLICE_AFTER=off).
source "$(dirname "$0")/common.sh"
require_socksd

for engine in default off; do
  if [[ $engine == default ]]; then unset SOCKSD_SPLICE_AFTER; else export SOCKSD_SPLICE_AFTER=$engine; fi
  name=s_${engine}
  start_socksd "$name" --listen 127.0.0.1:0 --allow-private --log-level debug
  addr_var=${name}_addr pid_var=${name}_pid
  raw relay.py "${!addr_var}" "${!pid_var}" "$E2E_TMP/$name.log" backpressure ||
    fail "backpressure (SOCKSD_SPLICE_AFTER=${SOCKSD_SPLICE_AFTER-unset})"
  kill -0 "${!pid_var}" || fail "socksd died (SOCKSD_SPLICE_AFTER=${SOCKSD_SPLICE_AFTER-unset})"
  # Both sessions move MiBs: each must have run on the engine this pass asked for.
  case $engine in default) want=2 ;; off) want=0 ;; esac
  spliced=$(grep -c ' relay spliced after ' "$E2E_TMP/$name.log" || true)
  ((spliced == want)) || fail "$spliced sessions spliced with SOCKSD_SPLICE_AFTER=$engine, expected $want"
done
unset SOCKSD_SPLICE_AFTER
