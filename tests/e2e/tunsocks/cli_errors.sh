#!/usr/bin/env bash
# Command-line and device errors, each in a namespace of its own (a flag wrongly accepted
# must not create a TUN in the host's namespace):
#  exit 2 with one line naming the problem: unknown flag, bad URL scheme (http://,
#    socks6://), missing --upstream, a value missing, --mtu below 576, a bad
#    --log-level, --address without a valid CIDR, a bad --dns mode, a zero --udp-timeout
#    or --max-udp-sessions;
#  exit 0: --help (usage on stdout), --version;
#  exit 1 with a message containing "busy": the TUN name held by another program (a
#    tunsocks, or a plain process holding it with TUNSETIFF); the holder keeps working;
#  exit 1 with a message about permission: /dev/net/tun not openable (unprivileged user).
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_root
require_tun
new_netns cli

up="socks5://127.0.0.1:1080"

# run_ts OUT_PREFIX ARGS...: tunsocks in the cli namespace, 5 s at most; sets rc.
run_ts() {
  local out=$1
  shift
  rc=0
  timeout -k 1 5 ip netns exec "$cli_ns" "$TUNSOCKS" "$@" </dev/null >"$out.stdout" 2>"$out.stderr" || rc=$?
  [[ $rc -ne 124 && $rc -ne 137 ]] || fail "tunsocks $* did not exit within 5 s (it should have refused to start)"
}

# expect_exit CODE LABEL PATTERN ARGS...: exit CODE, exactly one non-empty stderr line
# matching PATTERN (ERE, case-insensitive).
expect_exit() {
  local want=$1 label=$2 pattern=$3
  shift 3
  run_ts "$E2E_TMP/x" "$@"
  local err
  err=$(cat "$E2E_TMP/x.stderr")
  [[ $rc -eq $want ]] || fail "$label: tunsocks $* exited $rc, expected $want; stderr: $err"
  local lines
  lines=$(grep -c . "$E2E_TMP/x.stderr" || true)
  [[ $lines -eq 1 ]] || fail "$label: expected a one-line error, got $lines lines: $err"
  grep -Eiq -- "$pattern" "$E2E_TMP/x.stderr" || fail "$label: the error does not match /$pattern/: $err"
  if ip -n "$cli_ns" link show "$TUN_NAME" >/dev/null 2>&1; then
    fail "$label: a $TUN_NAME device was left behind"
  fi
  log "ok: $label -> exit $rc: $err"
}

expect_exit 2 "unknown flag" '--frobnicate' --upstream "$up" --frobnicate
expect_exit 2 "bad URL scheme http" 'http|scheme|url' --upstream "http://127.0.0.1:1080"
expect_exit 2 "bad URL scheme socks6" 'socks6|scheme|url' --upstream "socks6://127.0.0.1:1080"
expect_exit 2 "URL with port 70000" 'port|url' --upstream "socks5://127.0.0.1:70000"
expect_exit 2 "missing --upstream" 'upstream'
expect_exit 2 "--tun without a value" '--tun' --upstream "$up" --tun
expect_exit 2 "--mtu too small" 'mtu' --upstream "$up" --mtu 100
expect_exit 2 "--mtu not a number" 'mtu' --upstream "$up" --mtu big
expect_exit 2 "bad --log-level" 'log-level' --upstream "$up" --log-level loud
expect_exit 2 "bad --address" 'address' --upstream "$up" --address 300.1.2.3/24
expect_exit 2 "bad --connect-timeout" 'connect-timeout' --upstream "$up" --connect-timeout -1
expect_exit 2 "bad --dns" '--dns' --upstream "$up" --dns dnssec
expect_exit 2 "zero --udp-timeout" 'udp-timeout' --upstream "$up" --udp-timeout 0
expect_exit 2 "zero --max-udp-sessions" 'max-udp-sessions' --upstream "$up" --max-udp-sessions 0

run_ts "$E2E_TMP/h" --help
[[ $rc -eq 0 ]] || fail "--help exited $rc"
grep -q -- '--upstream' "$E2E_TMP/h.stdout" || fail "--help does not describe --upstream on stdout"
run_ts "$E2E_TMP/v" --version
[[ $rc -eq 0 ]] || fail "--version exited $rc"
grep -Eq 'tunsocks [0-9]' "$E2E_TMP/v.stdout" || fail "--version printed: $(cat "$E2E_TMP/v.stdout")"
log "ok: --help, --version"

# --- busy: a running tunsocks holds the name.
start_bg first ip netns exec "$cli_ns" "$TUNSOCKS" --upstream "$up" --tun tsbusy0
_wait_started first 'tun tsbusy0 up' tunsocks
expect_exit 1 "TUN name held by a running tunsocks" 'busy' --upstream "$up" --tun tsbusy0
kill -0 "$first_pid" 2>/dev/null || fail "the first tunsocks died when a second one tried its device"
ip -n "$cli_ns" link show tsbusy0 >/dev/null 2>&1 || fail "tsbusy0 disappeared when a second tunsocks tried it"

# --- busy: another program holds a TUN of that name.
start_bg holder ip netns exec "$cli_ns" "$SYSTEM_PYTHON" -u -c '
import fcntl, os, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
IFF_TUN, IFF_NO_PI, TUNSETIFF = 0x0001, 0x1000, 0x400454CA
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"tsheld0", IFF_TUN | IFF_NO_PI))
print("holding tsheld0", flush=True)
time.sleep(3600)
'
wait_for_log holder '^holding tsheld0' 10
expect_exit 1 "TUN name held by another program" 'busy' --upstream "$up" --tun tsheld0
ip -n "$cli_ns" link show tsheld0 >/dev/null 2>&1 || fail "tsheld0 disappeared when tunsocks tried it"

# --- no permission on /dev/net/tun.
require_cmd setpriv
# A copy the unprivileged user can execute (the build tree may be private to root).
permdir=$(mktemp -d /tmp/tunsocks-e2e-perm.XXXXXX)
register_cleanup "rm -rf $permdir"
chmod 755 "$permdir"
cp "$TUNSOCKS" "$permdir/tunsocks"
chmod 755 "$permdir/tunsocks"
rc=0
timeout -k 1 5 ip netns exec "$cli_ns" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
  "$permdir/tunsocks" --upstream "$up" --tun tsperm0 </dev/null >/dev/null 2>"$E2E_TMP/perm.stderr" || rc=$?
[[ $rc -eq 1 ]] || fail "unprivileged tunsocks exited $rc, expected 1: $(cat "$E2E_TMP/perm.stderr")"
grep -Eiq 'permission|privilege|CAP_NET_ADMIN|root' "$E2E_TMP/perm.stderr" ||
  fail "unprivileged tunsocks: the error does not say it is about permission: $(cat "$E2E_TMP/perm.stderr")"
log "ok: no permission -> exit 1: $(cat "$E2E_TMP/perm.stderr")"
