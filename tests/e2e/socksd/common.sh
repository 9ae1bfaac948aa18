# shellcheck shell=bash
# socksd end-to-end helpers, sourced first by every tests/e2e/socksd/*.sh (it sources lib.sh).
#
# Black-box: everything here goes through socksd's command line, its stderr log
# (`listening on ADDR:PORT`, one `session ...` line per session, `counters {json}` on
# SIGUSR1) and the SOCKS wire. Loopback only; port 0 everywhere.

SOCKSD_E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$SOCKSD_E2E_DIR/../lib.sh"

export PYTHONPATH="$SOCKSD_E2E_DIR${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
# A proxy in the environment would change what curl does.
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY no_proxy NO_PROXY

require_socksd() {
  [[ -n "${SOCKSD:-}" && -x "${SOCKSD:-}" ]] ||
    skip "socksd binary not found (SOCKSD='${SOCKSD:-}'; ctest sets it to the built target)"
  [[ -x "$SYSTEM_PYTHON" ]] || skip "$SYSTEM_PYTHON is missing"
}

# start_socksd NAME ARGS...: start socksd logging to $E2E_TMP/NAME.log, wait for its
# `listening on` line(s). Sets NAME_pid, NAME_addr (first listener, host:port as
# printed), NAME_host (without brackets) and NAME_port. Fails if it exits instead.
start_socksd() {
  local name=$1
  shift
  start_bg "$name" "$SOCKSD" "$@"
  local pid_var="${name}_pid" log="$E2E_TMP/$name.log"
  local pid=${!pid_var} deadline=$((SECONDS + 10))
  until grep -Eq 'listening on ' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" && rc=0 || rc=$?
      fail "socksd $* exited (status $rc) before listening: $(tail -n 5 "$log")"
    fi
    ((SECONDS < deadline)) || fail "socksd $* printed no 'listening on' within 10s"
    sleep 0.05
  done
  local addr
  addr=$(grep -Eo 'listening on (\[[0-9a-fA-F:.]+\]|[0-9.]+):[0-9]+' "$log" | head -n 1)
  addr=${addr#listening on }
  local host=${addr%:*}
  host=${host#[}
  host=${host%]}
  printf -v "${name}_addr" '%s' "$addr"
  printf -v "${name}_host" '%s' "$host"
  printf -v "${name}_port" '%s' "${addr##*:}"
  log "socksd $name listening on $addr (pid $pid)"
}

# start_http NAME [--dual|--host H]: the loopback HTTP server serving $E2E_TMP/www.
# Sets NAME_port.
start_http() {
  local name=$1
  shift
  mkdir -p "$E2E_TMP/www"
  start_bg "$name" "$SYSTEM_PYTHON" -u "$SOCKSD_E2E_DIR/http_server.py" --dir "$E2E_TMP/www" "$@"
  wait_for_log "$name" 'listening on .*:[0-9]+' 10
  local addr
  addr=$(grep -Eo 'listening on .*:[0-9]+' "$E2E_TMP/$name.log" | head -n 1)
  printf -v "${name}_port" '%s' "${addr##*:}"
}

# make_body NAME BYTES: a random file served as /NAME; prints its sha256.
make_body() {
  mkdir -p "$E2E_TMP/www"
  head -c "$2" /dev/urandom >"$E2E_TMP/www/$1"
  sha256_of "$E2E_TMP/www/$1"
}

# curl_via OUT PROXY_URL URL [CURL_ARGS...]: fetch URL through the proxy into OUT.
# Prints "local_port size_header size_download size_request size_upload" (the local
# port is that of the connection to the proxy: it names the session in socksd's log).
curl_via() {
  local out=$1 proxy=$2 url=$3
  shift 3
  curl -sS --fail --max-time 30 -x "$proxy" -o "$out" \
    -w '%{local_port} %{size_header} %{size_download} %{size_request} %{size_upload}\n' \
    "$@" "$url"
}

# session_for NAME CLIENT_PORT: wait for the session line of the client whose
# connection to socksd came from CLIENT_PORT; prints it.
session_for() {
  local name=$1 cport=$2
  local pat="session id=[0-9]+ client=(127\.0\.0\.1|\[::1\]|::1):${cport} "
  wait_for 10 grep -Eq "$pat" "$E2E_TMP/$name.log" ||
    fail "no session line for client port $cport in $name.log"
  grep -E "$pat" "$E2E_TMP/$name.log" | tail -n 1
}

# field LINE KEY: value of KEY=VALUE in a log line.
field() {
  local v
  v=$(grep -Eo "(^| )$2=[^ ]*" <<<"$1" | head -n 1) || true
  printf '%s' "${v#*=}" | sed 's/^ //'
}

# expect_field LINE KEY EXPECTED: assert equality, naming the line on failure.
expect_field() {
  local got
  got=$(field "$1" "$2")
  [[ "$got" == "$3" ]] || fail "expected $2=$3, got $2=$got in: $1"
}

# counters NAME: SIGUSR1 to socksd NAME, print the JSON of its next counters line.
counters() {
  local name=$1 pid_var="${1}_pid"
  local log="$E2E_TMP/$name.log"
  local before
  before=$(grep -c 'counters {' "$log" || true)
  kill -USR1 "${!pid_var}"
  wait_for 5 bash -c "(( \$(grep -c 'counters {' '$log') > $before ))" ||
    fail "no counters line within 5s of SIGUSR1 to $name"
  grep 'counters {' "$log" | tail -n 1 | sed 's/.*counters //'
}

# counter NAME KEY: one integer from the counters JSON.
counter() {
  counters "$1" | "$SYSTEM_PYTHON" -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}

# check_fresh NAME [CURL_ARGS...]: socksd NAME is alive and serves a new client
# correctly (a curl fetch through it, compared by sha256 with the served body).
check_fresh() {
  local name=$1
  shift
  local pid_var="${name}_pid" addr_var="${name}_addr"
  kill -0 "${!pid_var}" 2>/dev/null || fail "socksd $name is not running any more"
  [[ -f "$E2E_TMP/www/fresh" ]] || make_body fresh 262144 >/dev/null
  curl_via "$E2E_TMP/fresh.out" "socks5://${!addr_var}" "http://127.0.0.1:${http_port}/fresh" "$@" \
    >/dev/null || fail "fresh curl fetch through $name failed"
  [[ $(sha256_of "$E2E_TMP/fresh.out") == "$(sha256_of "$E2E_TMP/www/fresh")" ]] ||
    fail "fresh fetch through $name: sha256 differs"
  rm -f "$E2E_TMP/fresh.out"
}

# raw SCENARIO ARGS...: run a python scenario script of this folder.
raw() {
  local script=$1
  shift
  "$SYSTEM_PYTHON" "$SOCKSD_E2E_DIR/$script" "$@"
}

# expect_exit2 LABEL PATTERN ARGS...: socksd ARGS must exit 2 within 5s with exactly
# one non-empty line on stderr, matching PATTERN (ERE, case-insensitive).
expect_exit2() {
  local label=$1 pattern=$2
  shift 2
  local err="$E2E_TMP/exit2.err" rc=0
  timeout -k 1 5 "$SOCKSD" "$@" </dev/null >/dev/null 2>"$err" || rc=$?
  [[ $rc -ne 124 && $rc -ne 137 ]] || fail "$label: socksd $* did not exit within 5s (it should refuse to start)"
  [[ $rc -eq 2 ]] || fail "$label: socksd $* exited $rc, expected 2; stderr: $(cat "$err")"
  local lines
  lines=$(grep -c . "$err" || true)
  [[ $lines -eq 1 ]] || fail "$label: expected a one-line error, got $lines lines: $(cat "$err")"
  grep -Eiq -- "$pattern" "$err" || fail "$label: error does not match /$pattern/: $(cat "$err")"
  log "ok: $label -> exit 2: $(cat "$err")"
}
