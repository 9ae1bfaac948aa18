#!/usr/bin/env bash
# resets.sh with Dante as the upstream: Dante relays a reset as a reset, so a reset lost
# here is lost by tunsocks (with socksd, socksd's own handling is in the chain too).
RESETS_UPSTREAM=dante
source "$(dirname "$0")/resets.sh"
