# shellcheck shell=bash
# Shared by tests/e2e/routes/*.sh: platform/linux/tunsocks-routes against a fresh network
# namespace that holds a bare TUN device (no tunsocks needed: the routes only need the
# device to exist and be up).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ROUTES=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/platform/linux/tunsocks-routes
[[ -x $ROUTES ]] || fail "$ROUTES is missing or not executable"

require_root
require_tun
require_cmd ip flock mountpoint

# routes_netns NAME: a new namespace (NAME_ns) with tun0 created and up in it.
routes_netns() {
  new_netns "$1"
  local -n ns_ref="$1_ns"
  ip -n "$ns_ref" tuntap add dev tun0 mode tun
  ip -n "$ns_ref" link set tun0 up
}

# in_ns NS CMD...: run CMD inside the namespace.
in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# routes NS ARGS...: run tunsocks-routes inside the namespace.
routes() {
  local ns=$1
  shift
  ip netns exec "$ns" "$ROUTES" "$@"
}

# snapshot NS: every rule and route of both families, in the namespace.
snapshot() {
  in_ns "$1" bash -c 'echo "== ip rule"; ip rule
    echo "== ip -6 rule"; ip -6 rule
    echo "== ip -4 route show table all"; ip -4 route show table all
    echo "== ip -6 route show table all"; ip -6 route show table all'
}

# same_as_before NS FILE WHAT: the namespace's snapshot equals FILE, else fail with the diff.
same_as_before() {
  local d
  if ! d=$(snapshot "$1" | diff -u "$2" -); then
    printf '%s\n' "$d" >&2
    fail "$3: rules/routes differ from the snapshot taken before up"
  fi
}

# has_line TEXT PATTERN WHAT: TEXT has a line matching the ERE PATTERN.
has_line() {
  grep -Eq -- "$2" <<<"$1" || {
    printf '%s\n' "$1" >&2
    fail "$3: no line matching /$2/"
  }
}

# lacks_line TEXT PATTERN WHAT
lacks_line() {
  if grep -Eq -- "$2" <<<"$1"; then
    printf '%s\n' "$1" >&2
    fail "$3: unexpected line matching /$2/"
  fi
}

# The host's own rules must never change (everything happens in the test's namespaces).
HOST_BEFORE=$(ip rule; ip -6 rule 2>/dev/null)
host_untouched() {
  [[ "$(ip rule; ip -6 rule 2>/dev/null)" == "$HOST_BEFORE" ]] || fail "the host's ip rules changed"
}
