#!/usr/bin/env bash
# CONNECT half-close through socksd, both directions: a FIN from either side is relayed
# and the other direction keeps flowing (relay.py half_close has the details). Once per
# relay engine: the default (buffered, then splice(2) past 256 KiB), splice(2) from the
# first byte, and buffered only (SOCKSD_SPLICE_AFTER, see src/server/relay.h).
source "$(dirname "$0")/common.sh"
require_socksd

for engine in default 0 off; do
  if [[ $engine == default ]]; then unset SOCKSD_SPLICE_AFTER; else export SOCKSD_SPLICE_AFTER=$engine; fi
  name=s_${engine}
  start_socksd "$name" --listen 127.0.0.1:0 --allow-private --log-level debug
  addr_var=${name}_addr pid_var=${name}_pid
  raw relay.py "${!addr_var}" "${!pid_var}" "$E2E_TMP/$name.log" half_close ||
    fail "half-close (SOCKSD_SPLICE_AFTER=${SOCKSD_SPLICE_AFTER-unset})"
  kill -0 "${!pid_var}" || fail "socksd died (SOCKSD_SPLICE_AFTER=${SOCKSD_SPLICE_AFTER-unset})"
  # Both sessions move MiBs: each must have run on the engine this pass asked for.
  case $engine in default) want=2 ;; 0) want=2 ;; off) want=0 ;; esac
  spliced=$(grep -c ' relay spliced after ' "$E2E_TMP/$name.log" || true)
  ((spliced == want)) || fail "$spliced sessions spliced with SOCKSD_SPLICE_AFTER=$engine, expected $want"
done
unset SOCKSD_SPLICE_AFTER
