# Shared helpers for end-to-end tests (sourced by every tests/e2e/**/*.sh).
#
# Contract with ctest: exit 0 = pass, 77 = skipped (SKIP_RETURN_CODE), anything else = fail.
# A skip always prints its reason. Under CI (CI=true) nothing may skip: a missing
# prerequisite there is a broken CI machine, so skip() fails the test instead.
#
# Cleanup: register_cleanup "cmd ..." pushes a command run (in reverse order) on every exit,
# pass or fail or signal. Only PIDs started by the test itself are ever killed.

set -euo pipefail

E2E_NAME=$(basename "${0%.sh}")
E2E_TMP=$(mktemp -d "/tmp/tunsocks-e2e-${E2E_NAME}.XXXXXX")
_e2e_cleanups=()

log() { printf '[%s] %s\n' "$E2E_NAME" "$*" >&2; }

fail() {
  log "FAIL: $*"
  exit 1
}

skip() {
  if [[ "${CI:-}" == "true" ]]; then
    log "FAIL (CI=true, nothing may skip): would have skipped: $*"
    exit 1
  fi
  log "SKIP: $*"
  exit 77
}

register_cleanup() { _e2e_cleanups+=("$*"); }

_e2e_run_cleanups() {
  local status=$?
  set +e
  local i
  for ((i = ${#_e2e_cleanups[@]} - 1; i >= 0; i--)); do
    eval "${_e2e_cleanups[i]}" >/dev/null 2>&1
  done
  if [[ $status -ne 0 && $status -ne 77 && -d "$E2E_TMP" ]]; then
    # Keep the logs of a failed run visible in ctest's output.
    for f in "$E2E_TMP"/*.log; do
      [[ -f "$f" ]] || continue
      log "---- tail of $(basename "$f") ----"
      tail -n 40 "$f" >&2
    done
  fi
  rm -rf "$E2E_TMP"
  exit "$status"
}
trap _e2e_run_cleanups EXIT
trap 'exit 130' INT TERM

require_root() {
  [[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces / TUN)"
}

require_tun() {
  [[ -c /dev/net/tun ]] || skip "/dev/net/tun is missing"
}

require_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || skip "'$c' is not installed (platform/linux/install-deps installs it)"
  done
}

# start_bg NAME CMD...: start a process in the background, logging to $E2E_TMP/NAME.log;
# its PID is stored in the variable NAME_pid and it is killed (only it) on exit.
start_bg() {
  local name=$1
  shift
  "$@" >"$E2E_TMP/$name.log" 2>&1 &
  local pid=$!
  printf -v "${name}_pid" '%s' "$pid"
  register_cleanup "kill $pid 2>/dev/null; sleep 0.1; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null"
}

# wait_for SECONDS CMD...: poll CMD every 50 ms until it succeeds or time runs out.
wait_for() {
  local limit=$1
  shift
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

# wait_for_log NAME PATTERN [SECONDS]: wait until $E2E_TMP/NAME.log matches PATTERN (ERE).
wait_for_log() {
  local name=$1 pattern=$2 limit=${3:-10}
  wait_for "$limit" grep -Eq "$pattern" "$E2E_TMP/$name.log" ||
    fail "no line matching /$pattern/ in $name.log within ${limit}s"
}

# new_netns NAME: create a namespace with a unique name, loopback up, removed on exit.
# The real name is stored in NAME_ns.
new_netns() {
  local name=$1
  local ns="ts-${name}-$$"
  ip netns add "$ns"
  register_cleanup "ip netns pids $ns 2>/dev/null | xargs -r kill -9; ip netns del $ns"
  ip -n "$ns" link set lo up
  printf -v "${name}_ns" '%s' "$ns"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# The Debian system interpreter: Debian's python3-* packages (python3-socks) live there,
# whatever python3 comes first on PATH.
SYSTEM_PYTHON=/usr/bin/python3
