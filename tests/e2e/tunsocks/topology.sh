# shellcheck shell=bash
# tunsocks end-to-end topology, sourced by every tests/e2e/tunsocks/*.sh (and reusable by
# a benchmark): three network namespaces joined by veths,
#
#   client ns                     proxy ns                      server ns
#   tun0 (tunsocks, default   ──  10.201.0.1 ⟷ 10.201.0.2    ──  10.202.0.1 ⟷ 10.202.0.2
#   routes v4 + v6)               fd01:201::1 ⟷ fd01:201::2      fd01:202::1 ⟷ fd01:202::2
#
# The client namespace reaches the server network only through the TUN; the upstream
# SOCKS server (socksd, Dante or microsocks) listens on 10.201.0.2 and is reached over
# the more specific connected route of the veth, so tunsocks' upstream sockets never
# enter the TUN. The proxy namespace does not forward: anything between client and
# server goes through the SOCKS server or nowhere.
#
# Knobs (environment, set before topo_setup): TOPO_TUN_MTU (tunsocks --mtu; empty = its
# default), TOPO_VETH_MTU (default 1500), TOPO_UPSTREAM_PORT (default 1080), TOPO_NSENTER
# (non-empty: start tunsocks with nsenter --net, keeping the host's /sys/fs/cgroup).
#
# Black-box: tunsocks is driven through its command line, its stderr log (`tun NAME up`,
# one `flow id=...` line per flow, `counters {json}` on SIGUSR1) and the packets on the TUN.

TUNSOCKS_E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$TUNSOCKS_E2E_DIR/../lib.sh"

TCP_PEER="$TUNSOCKS_E2E_DIR/tcp_peer.py"
HTTP_SERVER="$TUNSOCKS_E2E_DIR/../socksd/http_server.py"
export PYTHONDONTWRITEBYTECODE=1
# A proxy in the environment would change what curl does.
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY no_proxy NO_PROXY

CLIENT_VETH_IP4=10.201.0.1
PROXY_IP4=10.201.0.2
PROXY_SERVER_SIDE_IP4=10.202.0.1
SERVER_IP4=10.202.0.2
CLIENT_VETH_IP6=fd01:201::1
PROXY_IP6=fd01:201::2
PROXY_SERVER_SIDE_IP6=fd01:202::1
SERVER_IP6=fd01:202::2
# tunsocks' defaults: the app's source address on the TUN.
TUN_IP4=172.19.0.1
TUN_IP6=fdfe:dcba:9876::1
TUN_NAME=tun0
CLIENT_VETH=veth-c
UPSTREAM_PORT=${TOPO_UPSTREAM_PORT:-1080}

# require_tunsocks: the binary under test. Not a skip: ctest always sets TUNSOCKS, so a
# missing one is a broken build or registration.
require_tunsocks() {
  [[ -n "${TUNSOCKS:-}" ]] ||
    fail "TUNSOCKS is not set: it must name the tunsocks binary (ctest sets it to \$<TARGET_FILE:tunsocks>)"
  [[ -x "$TUNSOCKS" ]] || fail "TUNSOCKS=$TUNSOCKS is not an executable file"
  [[ -x "$SYSTEM_PYTHON" ]] || skip "$SYSTEM_PYTHON is missing"
}

require_socksd() {
  [[ -n "${SOCKSD:-}" ]] || fail "SOCKSD is not set: it must name the socksd binary (ctest sets it)"
  [[ -x "$SOCKSD" ]] || fail "SOCKSD=$SOCKSD is not an executable file"
}

# cmd | has ERE: like `grep -qE ERE`, but reads all its input first: under pipefail an
# early-exiting grep -q can kill the writer with SIGPIPE and fail a pipeline that matched.
has() {
  local text
  text=$(cat)
  grep -Eq -- "$1" <<<"$text"
}

in_client() { ip netns exec "$client_ns" "$@"; }
in_proxy() { ip netns exec "$proxy_ns" "$@"; }
in_server() { ip netns exec "$server_ns" "$@"; }

# ns_sysctls NS: no DAD (v6 addresses usable at once), no forwarding.
_topo_ns_sysctls() {
  local ns=$1 k
  for k in net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
    net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0; do
    ip netns exec "$ns" sysctl -qw "$k" >/dev/null || fail "sysctl $k in $ns failed"
  done
}

# topo_setup: the three namespaces and two links. Sets client_ns, proxy_ns, server_ns.
topo_setup() {
  require_root
  require_tun
  require_cmd ip
  new_netns client
  new_netns proxy
  new_netns server
  local ns
  for ns in "$client_ns" "$proxy_ns" "$server_ns"; do _topo_ns_sysctls "$ns"; done
  local mtu=${TOPO_VETH_MTU:-1500}

  # Each veth is created with its ends already in their namespaces: the host
  # namespace never sees them, so parallel tests cannot collide on names.
  ip -n "$client_ns" link add "$CLIENT_VETH" mtu "$mtu" type veth peer name veth-pc netns "$proxy_ns" ||
    fail "cannot create the client-proxy veth"
  ip -n "$proxy_ns" link add veth-ps mtu "$mtu" type veth peer name veth-s netns "$server_ns" ||
    fail "cannot create the proxy-server veth"

  ip -n "$client_ns" addr add "$CLIENT_VETH_IP4/30" dev "$CLIENT_VETH"
  ip -n "$client_ns" addr add "$CLIENT_VETH_IP6/64" dev "$CLIENT_VETH" nodad
  ip -n "$proxy_ns" addr add "$PROXY_IP4/30" dev veth-pc
  ip -n "$proxy_ns" addr add "$PROXY_IP6/64" dev veth-pc nodad
  ip -n "$proxy_ns" addr add "$PROXY_SERVER_SIDE_IP4/30" dev veth-ps
  ip -n "$proxy_ns" addr add "$PROXY_SERVER_SIDE_IP6/64" dev veth-ps nodad
  ip -n "$server_ns" addr add "$SERVER_IP4/30" dev veth-s
  ip -n "$server_ns" addr add "$SERVER_IP6/64" dev veth-s nodad
  ip -n "$client_ns" link set "$CLIENT_VETH" up
  ip -n "$proxy_ns" link set veth-pc up
  ip -n "$proxy_ns" link set veth-ps up
  ip -n "$server_ns" link set veth-s up

  # Sanity of the picture the tests rely on: the proxy is reachable from the client,
  # the server is not (no TUN route yet).
  in_client ip route get "$PROXY_IP4" >/dev/null 2>&1 || fail "topology: client has no route to the proxy"
  if in_client ip route get "$SERVER_IP4" >/dev/null 2>&1; then
    fail "topology: client has a route to the server network before the TUN exists"
  fi
  log "topology: client=$client_ns proxy=$proxy_ns server=$server_ns"
}

# ---------------------------------------------------------------- upstream servers

# start_socksd NAME [ARGS...]: socksd in the proxy namespace on $PROXY_IP4:$UPSTREAM_PORT
# (open listener, private destinations allowed: the test networks are private), waits
# for `listening on`. ARGS with --listen or --config replace those defaults.
start_socksd() {
  local name=$1
  shift
  local args=("$@")
  if [[ " ${args[*]} " != *" --config "* && " ${args[*]} " != *" --listen "* ]]; then
    args=(--listen "$PROXY_IP4:$UPSTREAM_PORT" --allow-open --allow-private "${args[@]}")
  fi
  start_bg "$name" ip netns exec "$proxy_ns" "$SOCKSD" "${args[@]}"
  _wait_started "$name" 'listening on ' "socksd"
  UPSTREAM_URL="socks5://$PROXY_IP4:$UPSTREAM_PORT"
}

# start_dante NAME [COMMANDS]: Dante's danted, config written here: no auth, COMMANDS
# (default: connect; e.g. "connect udpassociate udpreply"), any destination (v4 and v6)
# out of the server-side veth.
start_dante() {
  local name=$1 commands=${2:-connect}
  require_cmd danted
  cat >"$E2E_TMP/$name.conf" <<EOF
# written by tests/e2e/tunsocks/topology.sh: no auth, $commands
logoutput: stderr
internal: $PROXY_IP4 port = $UPSTREAM_PORT
external: veth-ps
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
  from: 0/0 to: 0/0
  log: error
}
socks pass {
  from: 0/0 to: 0/0
  command: $commands
  log: error connect disconnect
}
EOF
  start_bg "$name" ip netns exec "$proxy_ns" danted -f "$E2E_TMP/$name.conf" -p "$E2E_TMP/$name.pid"
  _wait_listening "$name" "danted"
  UPSTREAM_URL="socks5://$PROXY_IP4:$UPSTREAM_PORT"
}

# start_microsocks NAME: microsocks, no auth.
start_microsocks() {
  local name=$1
  require_cmd microsocks
  start_bg "$name" ip netns exec "$proxy_ns" microsocks -i "$PROXY_IP4" -p "$UPSTREAM_PORT"
  _wait_listening "$name" "microsocks"
  UPSTREAM_URL="socks5://$PROXY_IP4:$UPSTREAM_PORT"
}

# start_upstream KIND NAME: KIND is socksd, dante or microsocks.
start_upstream() {
  case $1 in
  socksd) start_socksd "$2" ;;
  dante) start_dante "$2" ;;
  microsocks) start_microsocks "$2" ;;
  *) fail "unknown upstream kind '$1'" ;;
  esac
}

_listening_in_proxy() {
  in_proxy ss -Hltn "sport = :$UPSTREAM_PORT" | has LISTEN
}

_wait_listening() {
  local name=$1 what=$2 pid_var="${1}_pid"
  local deadline=$((SECONDS + 10))
  until _listening_in_proxy; do
    kill -0 "${!pid_var}" 2>/dev/null || fail "$what exited before listening: $(tail -n 5 "$E2E_TMP/$name.log")"
    ((SECONDS < deadline)) || fail "$what is not listening on $PROXY_IP4:$UPSTREAM_PORT within 10s"
    sleep 0.05
  done
  log "$what $name listening on $PROXY_IP4:$UPSTREAM_PORT (pid ${!pid_var})"
}

# _wait_started NAME PATTERN WHAT: wait for PATTERN in NAME.log; fail at once if the
# process exits first.
_wait_started() {
  local name=$1 pattern=$2 what=$3 pid_var="${1}_pid"
  local pid=${!pid_var} deadline=$((SECONDS + 10)) rc
  until grep -Eq "$pattern" "$E2E_TMP/$name.log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" && rc=0 || rc=$?
      fail "$what ($name) exited with status $rc before /$pattern/: $(tail -n 5 "$E2E_TMP/$name.log")"
    fi
    ((SECONDS < deadline)) || fail "$what ($name) printed nothing matching /$pattern/ within 10s"
    sleep 0.05
  done
}

# ---------------------------------------------------------------- tunsocks

# start_tunsocks NAME [ARGS...]: tunsocks in the client namespace against $UPSTREAM_URL
# (unless ARGS has --upstream), waits for `tun tun0 up`, then points the default routes
# (v4, and v6 unless --address6 none) of the client namespace at the TUN.
start_tunsocks() {
  local name=$1
  shift
  local args=("$@")
  if [[ " ${args[*]} " != *" --upstream "* ]]; then
    args=(--upstream "$UPSTREAM_URL" "${args[@]}")
  fi
  [[ -n "${TOPO_TUN_MTU:-}" ]] && args+=(--mtu "$TOPO_TUN_MTU")
  if [[ -n "${TOPO_NSENTER:-}" ]]; then
    # nsenter switches the network namespace only: `ip netns exec` also remounts /sys,
    # which hides /sys/fs/cgroup (tunsocks' memory guard reads its cgroup there).
    start_bg "$name" nsenter "--net=/run/netns/$client_ns" "$TUNSOCKS" --tun "$TUN_NAME" "${args[@]}"
  else
    start_bg "$name" ip netns exec "$client_ns" "$TUNSOCKS" --tun "$TUN_NAME" "${args[@]}"
  fi
  _wait_started "$name" "tun $TUN_NAME up" "tunsocks"
  local pid_var="${name}_pid"
  log "tunsocks: $(grep -E "tun $TUN_NAME up" "$E2E_TMP/$name.log" | head -n 1) (pid ${!pid_var})"
  in_client ip link show "$TUN_NAME" >/dev/null 2>&1 || fail "tunsocks logged 'tun $TUN_NAME up' but there is no $TUN_NAME"
  in_client ip route replace default dev "$TUN_NAME" || fail "cannot add the v4 default route on $TUN_NAME"
  if [[ " ${args[*]} " != *" --address6 none "* ]]; then
    in_client ip -6 route replace default dev "$TUN_NAME" || fail "cannot add the v6 default route on $TUN_NAME"
  fi
  # The upstream still goes out of the veth: the connected route is more specific.
  in_client ip route get "$PROXY_IP4" | has "dev $CLIENT_VETH" ||
    fail "topology: the upstream $PROXY_IP4 would not leave through $CLIENT_VETH: $(in_client ip route get "$PROXY_IP4")"
}

# tunsocks_counters NAME: SIGUSR1 to tunsocks NAME, print the JSON of its new counters line.
tunsocks_counters() {
  local name=$1 pid_var="${1}_pid"
  local logf="$E2E_TMP/$name.log" before
  before=$(grep -c 'counters {' "$logf" || true)
  kill -USR1 "${!pid_var}" || fail "cannot signal tunsocks $name (not running?)"
  wait_for 5 bash -c "(( \$(grep -c 'counters {' '$logf') > $before ))" ||
    fail "no 'counters {...}' line within 5s of SIGUSR1 to tunsocks $name"
  grep 'counters {' "$logf" | tail -n 1 | sed 's/.*counters //'
}

# lwip_baseline NAME: lwIP's live allocations in tunsocks NAME once the TIME_WAIT (2 s) of
# any flow that just ended is over: the idle stack (listener, timers, the read buffer).
lwip_baseline() {
  sleep 3
  json_get "$(tunsocks_counters "$1")" lwip_allocations
}

# expect_lwip_back NAME BASELINE: within 20 s (closed pcbs linger 2 s in TIME_WAIT), lwIP in
# tunsocks NAME holds no more allocations than BASELINE: pcbs, segments and pbufs of every
# closed flow were freed. Prints the count.
expect_lwip_back() {
  local name=$1 base=$2 now i
  for ((i = 0; i < 20; i++)); do
    now=$(json_get "$(tunsocks_counters "$name")" lwip_allocations)
    ((now <= base)) && break
    sleep 1
  done
  ((now <= base)) || fail "lwIP holds $now allocations 20 s after every flow closed, baseline $base"
  echo "$now"
}

# until_udp_idle NAME SECONDS: poll tunsocks NAME's counters until no UDP association is
# open, neither an application socket's nor a spare (udp_sessions_open, udp_spares_open).
until_udp_idle() {
  local name=$1 pid_var="${1}_pid"
  wait_for "$2" bash -c "kill -USR1 ${!pid_var}; sleep 0.3; grep 'counters {' '$E2E_TMP/$name.log' | tail -n 1 | grep '\"udp_sessions_open\":0,' | grep -q '\"udp_spares_open\":0,'" ||
    fail "UDP associations still open after ${2}s: $(tunsocks_counters "$name")"
}
# unused_spares JSON: spare associations no socket took. Each was one more association for
# the upstream and ends with one more udp line (src=spare).
unused_spares() { echo $(($(json_get "$1" udp_spares_total) - $(json_get "$1" udp_spares_taken))); }

# json_get JSON KEY: one value of a counters JSON (KEY may be a.b for nested).
json_get() {
  "$SYSTEM_PYTHON" -c '
import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    if k not in v:
        sys.exit(f"counters JSON has no key {sys.argv[2]!r}: {sys.argv[1]}")
    v = v[k]
print(v)' "$1" "$2"
}

# flow_line NAME SRC_PORT [SECONDS]: wait for tunsocks NAME's flow line of the app
# connection from SRC_PORT (v4 or v6 source on the TUN); print it.
flow_line() {
  local name=$1 port=$2 limit=${3:-10}
  local pat="flow id=[0-9]+ src=(${TUN_IP4//./\\.}|\\[${TUN_IP6}\\]):${port} "
  wait_for "$limit" grep -Eq "$pat" "$E2E_TMP/$name.log" ||
    fail "no flow line for source port $port in $name.log within ${limit}s"
  grep -E "$pat" "$E2E_TMP/$name.log" | tail -n 1
}

# flow_lines_to NAME DST: every flow line whose dst= is DST (ip:port as logged).
flow_lines_to() {
  grep -F " dst=$2 " "$E2E_TMP/$1.log" | grep -E 'flow id=[0-9]+ ' || true
}

# sum_flow_field NAME KEY: the sum of KEY= over every flow line of tunsocks NAME.
sum_flow_field() {
  grep -E 'flow id=[0-9]+ ' "$E2E_TMP/$1.log" |
    awk -v k="$2" '{ for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) s += substr($i, length(k) + 2) } END { printf "%.0f\n", s }'
}

# field LINE KEY: value of KEY=VALUE in a log line.
field() {
  local v
  v=$(grep -Eo "(^| )$2=[^ ]*" <<<"$1" | head -n 1) || true
  v=${v# }
  printf '%s' "${v#*=}"
}

# expect_field LINE KEY EXPECTED: assert equality, naming the line on failure.
expect_field() {
  local got
  got=$(field "$1" "$2")
  [[ "$got" == "$3" ]] || fail "expected $2=$3, got $2=${got:-<absent>} in: $1"
}

# ---------------------------------------------------------------- servers and clients

# start_http NAME HOST: the HTTP server of tests/e2e/socksd (GET serves $E2E_TMP/www,
# PUT answers and logs `upload path=... bytes=N sha256=H`) in the server namespace on
# HOST, port 0. Sets NAME_port.
start_http() {
  local name=$1 host=$2
  mkdir -p "$E2E_TMP/www"
  [[ -f "$HTTP_SERVER" ]] || fail "missing $HTTP_SERVER (the socksd tests' HTTP server)"
  start_bg "$name" ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$HTTP_SERVER" --dir "$E2E_TMP/www" --host "$host"
  _wait_started "$name" 'listening on .*:[0-9]+' "http server"
  local addr
  addr=$(grep -Eo 'listening on .*:[0-9]+' "$E2E_TMP/$name.log" | head -n 1)
  printf -v "${name}_port" '%s' "${addr##*:}"
}

# start_dnsmasq NAME RECORD...: a resolver in the server namespace on $SERVER_IP4:53 and
# [$SERVER_IP6]:53 that knows only the local zone given as dnsmasq options (e.g.
# --host-record=www.zone.test,10.202.0.2); nothing upstream, no hosts file, every query
# logged (`query[A] NAME from ...`; not with DNSMASQ_LOG_QUERIES=0, for a benchmark).
# Its pid file is in the test's temp dir.
start_dnsmasq() {
  local name=$1
  shift
  require_cmd dnsmasq
  local log_queries=(--log-queries)
  [[ ${DNSMASQ_LOG_QUERIES:-1} == 1 ]] || log_queries=()
  start_bg "$name" ip netns exec "$server_ns" dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --no-resolv --no-hosts --bind-interfaces --listen-address="$SERVER_IP4" \
    --listen-address="$SERVER_IP6" --except-interface=lo --port 53 --user=root \
    --pid-file="$E2E_TMP/$name.pid" "${log_queries[@]}" --log-facility=- "$@"
  local deadline=$((SECONDS + 10))
  until in_server ss -Hlun "sport = :53" | has "$SERVER_IP4:53"; do
    expect_alive "$name"
    ((SECONDS < deadline)) || fail "dnsmasq $name is not listening on $SERVER_IP4:53 within 10s"
    sleep 0.05
  done
}

# start_peer NAME HOST MODE [ARGS...]: tcp_peer.py serve in the server namespace.
# Sets NAME_port.
start_peer() {
  local name=$1 host=$2 mode=$3
  shift 3
  start_bg "$name" ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$TCP_PEER" serve --host "$host" --mode "$mode" "$@"
  _wait_started "$name" 'listening on .*:[0-9]+' "tcp_peer $mode"
  local addr
  addr=$(grep -Eo 'listening on .*:[0-9]+' "$E2E_TMP/$name.log" | head -n 1)
  printf -v "${name}_port" '%s' "${addr##*:}"
}

# peer_client ARGS...: tcp_peer.py client in the client namespace (through the TUN).
peer_client() {
  in_client "$SYSTEM_PYTHON" -u "$TCP_PEER" client "$@"
}

# start_client NAME ARGS...: the same in the background, output in $E2E_TMP/NAME.log;
# NAME_pid is the client process itself (so it can be signalled), killed on exit.
start_client() {
  local name=$1
  shift
  start_bg "$name" ip netns exec "$client_ns" "$SYSTEM_PYTHON" -u "$TCP_PEER" client "$@"
}

# make_body NAME BYTES: a random file served as /NAME; prints its sha256.
make_body() {
  mkdir -p "$E2E_TMP/www"
  head -c "$2" /dev/urandom >"$E2E_TMP/www/$1"
  sha256_of "$E2E_TMP/www/$1"
}

# curl_in_client OUT URL [CURL_ARGS...]: curl in the client namespace, no proxy: the
# route takes it into the TUN. Prints "local_port size_header size_download
# size_request size_upload".
curl_in_client() {
  local out=$1 url=$2
  shift 2
  in_client curl -sS --fail --max-time 60 --noproxy '*' -o "$out" \
    -w '%{local_port} %{size_header} %{size_download} %{size_request} %{size_upload}\n' \
    "$@" "$url"
}

# get_and_check TS_NAME URL BODY_NAME SHA: GET through the TUN, compare sha256, check the
# flow line (reply=succeeded, or $OK_REPLY for SOCKS4's "granted"; end=eof; down =
# response bytes, up = request bytes).
# Prints the flow line.
get_and_check() {
  local ts=$1 url=$2 body=$3 sha=$4 stats
  stats=$(curl_in_client "$E2E_TMP/get.out" "$url" -g) || fail "GET $url through the TUN failed"
  local got
  got=$(sha256_of "$E2E_TMP/get.out")
  [[ $got == "$sha" ]] || fail "GET $url: sha256 $got, expected $sha ($(stat -c %s "$E2E_TMP/get.out") bytes received)"
  rm -f "$E2E_TMP/get.out"
  local cport hdr dl req upl
  read -r cport hdr dl req upl <<<"$stats"
  local size
  size=$(stat -c %s "$E2E_TMP/www/$body")
  ((dl == size)) || fail "curl downloaded $dl bytes of /$body, expected $size"
  local line
  line=$(flow_line "$ts" "$cport")
  expect_field "$line" reply "${OK_REPLY:-succeeded}"
  expect_field "$line" end eof
  expect_field "$line" down $((hdr + dl))
  expect_field "$line" up $((req + upl))
  printf '%s\n' "$line"
}

# upload_and_check TS_NAME HTTP_NAME URL FILE: PUT FILE through the TUN; the server
# side's sha256 and byte count must match; check the flow line. Prints the flow line.
upload_and_check() {
  local ts=$1 http=$2 url=$3 file=$4 stats
  local size sha
  size=$(stat -c %s "$file")
  sha=$(sha256_of "$file")
  stats=$(curl_in_client "$E2E_TMP/put.answer" "$url" -g -H 'Expect:' -T "$file") ||
    fail "PUT $url through the TUN failed"
  local want="bytes=$size sha256=$sha"
  grep -q "$want" "$E2E_TMP/put.answer" ||
    fail "PUT $url: the server received something else: $(cat "$E2E_TMP/put.answer") (expected $want)"
  local path=${url#*://*/}
  grep -q "upload path=/$path $want" "$E2E_TMP/$http.log" ||
    fail "PUT $url: no 'upload path=/$path $want' line in the server's log"
  local cport hdr dl req upl
  read -r cport hdr dl req upl <<<"$stats"
  ((upl == size)) || fail "curl uploaded $upl bytes, expected $size"
  local line
  line=$(flow_line "$ts" "$cport")
  expect_field "$line" reply "${OK_REPLY:-succeeded}"
  expect_field "$line" end eof
  expect_field "$line" up $((req + upl))
  expect_field "$line" down $((hdr + dl))
  printf '%s\n' "$line"
}

# expect_alive NAME: the background process NAME still runs.
expect_alive() {
  local pid_var="${1}_pid"
  kill -0 "${!pid_var}" 2>/dev/null || fail "$1 is not running any more: $(tail -n 5 "$E2E_TMP/$1.log")"
}

# now_ms: monotonic-enough wall clock in milliseconds, for the few explicit bounds.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# probe HOST PORT [TIMEOUT]: one connect() from the client namespace through the TUN;
# prints `result=connected|<ERRNO>|timeout ms=<elapsed> port=<source port>`.
probe() {
  peer_client --host "$1" --port "$2" --mode probe --timeout "${3:-20}" ||
    fail "probe of $1:$2 could not run"
}

# expect_probe LINE RESULT MAX_MS WHAT: the probe result is RESULT within MAX_MS.
expect_probe() {
  local line=$1 want=$2 max=$3 what=$4
  [[ $(field "$line" result) == "$want" ]] || fail "$what: connect() gave $(field "$line" result), expected $want ($line)"
  (($(field "$line" ms) <= max)) || fail "$what: $want came after $(field "$line" ms) ms, more than $max ms ($line)"
}

# transfer_suite TS HTTP [GET_BYTES] [PUT_BYTES]: the GET and the PUT of curl_transfers
# (defaults 100 MiB and 50 MiB) against the HTTP server HTTP on $SERVER_IP4, through
# tunsocks TS, with their sha256 and flow-line checks. For the upstream matrix.
transfer_suite() {
  local ts=$1 http=$2 get_bytes=${3:-$((100 * 1024 * 1024))} put_bytes=${4:-$((50 * 1024 * 1024))}
  local port_var="${http}_port"
  local base="http://$SERVER_IP4:${!port_var}" sha line
  sha=$(make_body suite_get "$get_bytes")
  line=$(get_and_check "$ts" "$base/suite_get" suite_get "$sha")
  log "ok: GET $get_bytes bytes: $line"
  rm -f "$E2E_TMP/www/suite_get"
  head -c "$put_bytes" /dev/urandom >"$E2E_TMP/suite_put"
  line=$(upload_and_check "$ts" "$http" "$base/suite_put" "$E2E_TMP/suite_put")
  log "ok: PUT $put_bytes bytes: $line"
  rm -f "$E2E_TMP/suite_put"
}

# stop_tunsocks NAME: SIGTERM, wait for exit 0 (10 s at most), the TUN gone.
stop_tunsocks() {
  local name=$1 pid_var="${1}_pid" rc=0
  kill -TERM "${!pid_var}" 2>/dev/null || fail "tunsocks $name is not running"
  wait_for 10 has_exited "${!pid_var}" || fail "tunsocks $name still runs 10 s after SIGTERM"
  wait "${!pid_var}" || rc=$?
  ((rc == 0)) || fail "tunsocks $name exited $rc on SIGTERM, expected 0"
  wait_for 5 bash -c "! ip -n $client_ns link show $TUN_NAME" || fail "$TUN_NAME still exists after tunsocks $name exited"
}

# has_exited PID: the child PID has exited (gone, or a zombie waiting for `wait`).
has_exited() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
  [[ -z $state || $state == Z || $state == X ]]
}

# kstat NS FILE PREFIX KEY: one kernel TCP counter of namespace NS, from /proc/net/FILE
# (snmp: "Tcp" EstabResets, OutRsts...; netstat: "TcpExt" TCPAbortOnData...). The
# tests use them to tell which hop turned a reset into a FIN.
kstat() {
  ip netns exec "$1" awk -v p="$3:" -v key="$4" '
    $1 == p { if (!seen) { for (i = 2; i <= NF; i++) name[i] = $i; seen = 1 }
              else for (i = 2; i <= NF; i++) if (name[i] == key) print $i }' "/proc/net/$2"
}

# expect_balanced_flows NAME: "nothing lost" in tunsocks' own accounting. Every flow line
# of tunsocks NAME that ended cleanly (end=eof) must show as many bytes written upstream as
# the application sent (up == app_in) and as many queued to the application as the upstream
# sent (down == app_out). Prints the number of clean flows checked.
expect_balanced_flows() {
  local bad n
  bad=$(awk '/flow id=[0-9]+ .* end=eof( |$)/ {
      delete f
      for (i = 1; i <= NF; i++) if ((p = index($i, "=")) > 0) f[substr($i, 1, p - 1)] = substr($i, p + 1)
      if (f["app_in"] != f["up"] || f["app_out"] != f["down"]) { print; exit }
    }' "$E2E_TMP/$1.log")
  [[ -z $bad ]] || fail "a flow ended cleanly but its two sides differ (app_in vs up, app_out vs down): $bad"
  n=$(grep -cE 'flow id=[0-9]+ .* end=eof( |$)' "$E2E_TMP/$1.log" || true)
  printf '%s\n' "$n"
}

# expect_balanced_counters JSON: with no flow open and every flow ended cleanly, the
# counters' two sides of each direction agree.
expect_balanced_counters() {
  local c=$1
  [[ $(json_get "$c" bytes_from_app) == "$(json_get "$c" bytes_up)" ]] ||
    fail "counters: bytes_from_app != bytes_up with every flow ended cleanly: $c"
  [[ $(json_get "$c" bytes_to_app) == "$(json_get "$c" bytes_down)" ]] ||
    fail "counters: bytes_to_app != bytes_down with every flow ended cleanly: $c"
}

# start_echo NAME HOST: hold_many.py's one-thread echo server (thousands of connections)
# in the server namespace. Sets NAME_port.
HOLD_MANY="$TUNSOCKS_E2E_DIR/hold_many.py"
start_echo() {
  local name=$1 host=$2
  start_bg "$name" ip netns exec "$server_ns" "$SYSTEM_PYTHON" -u "$HOLD_MANY" serve --host "$host"
  _wait_started "$name" 'listening on .*:[0-9]+' "echo server"
  local addr
  addr=$(grep -Eo 'listening on .*:[0-9]+' "$E2E_TMP/$name.log" | head -n 1)
  printf -v "${name}_port" '%s' "${addr##*:}"
}

# fd_count PID, rss_kb PID, cpu_ticks PID (user + system, in CLK_TCK units): from /proc.
fd_count() { ls "/proc/$1/fd" | wc -l; }
# expect_fds_back PID BASELINE SECONDS WHAT: within SECONDS the process holds no more
# descriptors than BASELINE (flows close asynchronously); WHAT names it in the failure.
expect_fds_back() {
  wait_for "$3" bash -c "(( \$(ls /proc/$1/fd | wc -l) <= $2 ))" ||
    fail "$4 holds $(fd_count "$1") fds, baseline $2"
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
