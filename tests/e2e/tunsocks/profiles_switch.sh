#!/usr/bin/env bash
# Profiles and live switching through the control socket (tunsocks --config):
#  - two socksd upstreams (ports 1080 and 1081, separate logs), profiles "a" and "b";
#  - a long download (rate-limited, 24 MiB) starts on profile a; `tunsocks ctl switch b`;
#    the download completes byte-exact through a, and new connections after the switch
#    appear only in b's log (and none of them in a's); b's socksd is probed in the
#    background after the switch and found to take pipelined requests (logged);
#  - ctl status names the profile, upstream and counters; ctl flows lists the open flow;
#    the control socket is mode 0600;
#  - a reload with a broken file is refused with its one-line error and changes nothing;
#    SIGHUP with a fixed file that points profile b elsewhere takes effect;
#  - fake-ip mappings survive both: a name resolved on profile a is reached by its fake
#    address after the switch (b's socksd connects by name) and after the reload.
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_socksd

topo_setup
NAME=web.switch.test
# The name is known to the proxy namespace only: `ip netns exec` mounts this over /etc/hosts.
mkdir -p "/etc/netns/$proxy_ns"
register_cleanup rm -rf "/etc/netns/$proxy_ns"
printf '%s %s\n' "$SERVER_IP4" "$NAME" >"/etc/netns/$proxy_ns/hosts"
start_socksd sa
start_socksd sb --listen "$PROXY_IP4:1081" --allow-open --allow-private
start_http web "$SERVER_IP4"
start_http web2 "$SERVER_IP4" # the fetches after the switch: a port of their own
head -c $((24 * 1024 * 1024)) /dev/urandom >"$E2E_TMP/www/big"
echo small >"$E2E_TMP/www/small"
url2="http://$SERVER_IP4:$web2_port"

sock="$E2E_TMP/ctl.sock"
cfg="$E2E_TMP/tunsocks.json"
write_config() { # write_config B_PORT
  cat >"$cfg" <<JSON
{
  "tun": {"name": "$TUN_NAME"},
  "control_socket": "$sock",
  "default_profile": "a",
  "profiles": {
    "a": {"upstream": "socks5://$PROXY_IP4:1080", "dns": "fake-ip"},
    "b": {"extends": "a", "upstream": "socks5://$PROXY_IP4:$1"}
  }
}
JSON
}
write_config 1081
ctl() { in_client "$TUNSOCKS" ctl --socket "$sock" "$@"; }

start_bg ts ip netns exec "$client_ns" "$TUNSOCKS" --config "$cfg"
_wait_started ts "tun $TUN_NAME up" tunsocks
_wait_started ts "control socket $sock" tunsocks
in_client ip route replace default dev "$TUN_NAME"
in_client ip -6 route replace default dev "$TUN_NAME"

mode=$(stat -c %a "$sock")
[[ $mode == 600 ]] || fail "control socket mode is $mode, expected 600"
st=$(ctl status) || fail "ctl status failed: $st"
grep -q '^profile   a' <<<"$st" || fail "status does not name profile a: $st"
grep -q "^upstream  socks5://$PROXY_IP4:1080" <<<"$st" || fail "status does not name a's upstream: $st"
log "ok: status on a, socket mode 600"

answer=$(in_client "$SYSTEM_PYTHON" "$TUNSOCKS_E2E_DIR/dns_query.py" 10.53.0.53 "$NAME" A) || fail "A query: $answer"
fake=$(awk '{print $2}' <<<"$answer")
[[ $fake == 198.1[89].* ]] || fail "A answer '$answer' is not a fake-ip address"

# The long download, slowed so that it is still running across the switch.
url="http://$SERVER_IP4:$web_port"
start_bg dl ip netns exec "$client_ns" curl -sS --limit-rate 6M -o "$E2E_TMP/big.out" "$url/big"
wait_for 10 bash -c "[[ -s '$E2E_TMP/big.out' ]]" || fail "the download did not start"
flows=$(ctl --json flows) || fail "ctl flows failed: $flows"
grep -q "\"dst\": \"$SERVER_IP4:$web_port\"" <<<"$flows" || fail "ctl flows does not list the download: $flows"

out=$(ctl switch b) || fail "ctl switch b failed: $out"
grep -q "switched to b" <<<"$out" || fail "unexpected switch answer: $out"
kill -0 "$dl_pid" 2>/dev/null || fail "the download ended before the switch: the test did not test a switch"
st=$(ctl status)
grep -q '^profile   b' <<<"$st" || fail "status does not name profile b after the switch: $st"
wait_for_log ts "upstream socks5://$PROXY_IP4:1081: requests pipelined from now on" 10

for i in 1 2 3; do
  got=$(in_client curl -sS --max-time 10 "$url2/small") || fail "fetch $i after the switch failed"
  [[ $got == small ]] || fail "fetch $i after the switch returned '$got'"
done
count_in() { grep -c "cmd=connect dst=$SERVER_IP4:$2 " "$E2E_TMP/$1.log" || true; }
wait_for 5 bash -c "(( \$(grep -c 'cmd=connect dst=$SERVER_IP4:$web2_port ' '$E2E_TMP/sb.log') == 3 ))" ||
  fail "expected the 3 new connections in b's log, found $(count_in sb "$web2_port"): $(tail -n 5 "$E2E_TMP/sb.log")"
(($(count_in sa "$web2_port") == 0)) || fail "a's log has connections made after the switch"
got=$(in_client curl -sS --max-time 10 "http://$fake:$web2_port/small") || fail "fetch of the fake address after the switch failed"
[[ $got == small ]] || fail "fetch of the fake address returned '$got'"
wait_for 5 grep -q "cmd=connect dst=$NAME:$web2_port " "$E2E_TMP/sb.log" ||
  fail "b did not connect by the name a's fake address stands for: $(tail -n 3 "$E2E_TMP/sb.log")"

wait "$dl_pid" || fail "the download failed across the switch"
[[ $(sha256_of "$E2E_TMP/big.out") == $(sha256_of "$E2E_TMP/www/big") ]] ||
  fail "the download through a is not byte-exact after the switch ($(stat -c %s "$E2E_TMP/big.out") bytes)"
grep -Eq "flow id=[0-9]+ .*upstream=socks5://$PROXY_IP4:1080 .*down=[0-9]+ .*end=eof" "$E2E_TMP/ts.log" ||
  fail "no clean end line for the download through a"
log "ok: download byte-exact through a; 3 new connections only through b"

# A broken file: refused with its one-line error, still b.
echo '{"profiles": {"a": {"upstream": "socks5://h:1", "dns": "magic"}}}' >"$cfg"
out=$(ctl reload 2>&1) && fail "reload of a broken file succeeded: $out"
grep -q "reload refused (still running profile b): $cfg: /profiles/a/dns: expected" <<<"$out" ||
  fail "unexpected reload error: $out"
grep -q '^profile   b' <<<"$(ctl status)" || fail "a refused reload changed the profile"
log "ok: bad reload refused: $out"

# SIGHUP with a good file: b now points at a's server.
write_config 1080
kill -HUP "$ts_pid"
wait_for 5 grep -q "reloaded $cfg" "$E2E_TMP/ts.log" || fail "no reload after SIGHUP: $(tail -n 3 "$E2E_TMP/ts.log")"
in_client curl -sS --max-time 10 -o /dev/null "$url2/small" || fail "fetch after SIGHUP failed"
wait_for 5 bash -c "(( \$(grep -c 'cmd=connect dst=$SERVER_IP4:$web2_port ' '$E2E_TMP/sa.log') == 1 ))" ||
  fail "after SIGHUP the fetch did not go to port 1080: $(tail -n 3 "$E2E_TMP/sa.log")"
(($(count_in sb "$web2_port") == 3)) || fail "after SIGHUP a fetch still went to port 1081"
grep -q "^upstream  socks5://$PROXY_IP4:1080" <<<"$(ctl status)" || fail "status does not show the reloaded upstream"
in_client curl -sS --max-time 10 -o /dev/null "http://$fake:$web2_port/small" || fail "fetch of the fake address after the reload failed"
wait_for 5 grep -q "cmd=connect dst=$NAME:$web2_port " "$E2E_TMP/sa.log" ||
  fail "after the reload the fake address no longer stands for $NAME: $(tail -n 3 "$E2E_TMP/sa.log")"
log "ok: SIGHUP reload applied"

kill -TERM "$ts_pid"
wait "$ts_pid" || fail "tunsocks exited non-zero on SIGTERM"
[[ ! -e $sock ]] || fail "the control socket file was left behind"
log "ok: clean exit, control socket removed"
