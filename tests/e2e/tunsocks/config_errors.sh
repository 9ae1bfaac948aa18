#!/usr/bin/env bash
# tunsocks --config and `tunsocks check` with broken files: each error class gives exit
# status 1 and exactly one stderr line "FILE: JSON-PATH: what was expected" (checked word
# for word), and a run with a broken file creates no TUN. A good file: `check` prints the
# effective profile (password masked) and exits 0; combining --config with a profile flag
# is a usage error (exit 2).
source "$(dirname "$0")/topology.sh"
require_tunsocks
require_root
require_tun
new_netns cfg

cfg="$E2E_TMP/t.json"
good='"upstream": "socks5://u:secret@10.0.0.1:1080"'
# expect_config_error JSON EXPECTED-LINE: both `check` and a run refuse it so.
expect_config_error() {
  printf '%s\n' "$1" >"$cfg"
  local mode out rc
  for mode in check run; do
    rc=0
    if [[ $mode == check ]]; then
      out=$("$TUNSOCKS" check --config "$cfg" 2>&1 >/dev/null) || rc=$?
    else
      out=$(timeout -k 1 5 ip netns exec "$cfg_ns" "$TUNSOCKS" --config "$cfg" 2>&1 >/dev/null) || rc=$?
    fi
    ((rc == 1)) || fail "$mode: exit $rc (expected 1) for $1: $out"
    [[ $out == "tunsocks: $2" ]] || fail "$mode: got '$out', expected 'tunsocks: $2'"
  done
  if ip -n "$cfg_ns" link show tun0 >/dev/null 2>&1; then fail "a broken config left a tun0"; fi
  log "ok: $2"
}

expect_config_error '{"profiles": {"a": {'"$good"', "dns": "magic"}}}' \
  "$cfg: /profiles/a/dns: expected \"fake-ip\", \"forward\", \"tcp\" or \"off\", got \"magic\""
expect_config_error '{"profiles": {"a": {'"$good"', "colour": "red"}}}' \
  "$cfg: /profiles/a/colour: unknown key (expected one of: extends, upstream, username, password, password_env, password_file, dns, dns_resolver, udp, connect_timeout_s, idle_timeout_s, udp_timeout_s, max_flows, max_udp_sessions, udp_recycle, udp_spares, answer_ping, routes, on_switch)"
expect_config_error '{"tun": {"mtu": "big"}, "profiles": {"a": {'"$good"'}}}' \
  "$cfg: /tun/mtu: expected an integer 576..65535, got a string \"big\""
expect_config_error '{"profiles": {"a": {'"$good"', "routes": {"exclude": ["10.0.0.0/8", "fd00::/129"]}}}}' \
  "$cfg: /profiles/a/routes/exclude/1: prefix length in \"fd00::/129\" must be 0..128"
expect_config_error '{"profiles": {"a": {"upstream": "http://10.0.0.1:80"}}}' \
  "$cfg: /profiles/a/upstream: unknown upstream scheme 'http': use socks5, socks5h, socks4 or socks4a"
expect_config_error '{"default_profile": "a", "profiles": {"a": {"extends": "b"}, "b": {"extends": "a"}}}' \
  "$cfg: /profiles/a/extends: \"extends\" makes a cycle: a -> b -> a"
expect_config_error '{"profiles": {"a": {"extends": "nope"}}}' \
  "$cfg: /profiles/a/extends: no profile is named \"nope\""
expect_config_error '{"profiles": {"a": {'"$good"'}}, "profiles": {}}' \
  "$cfg: /profiles: duplicate key (each key may appear once)"
expect_config_error '{"profiles": {"a": {'"$good" \
  "$cfg: invalid JSON at line 2, column 1: syntax error while parsing object - unexpected end of input; expected '}'"
expect_config_error '{"profiles": {"a": {'"$good"', "password_env": "TUNSOCKS_E2E_UNSET"}}}' \
  "$cfg: /profiles/a/password_env: the environment variable TUNSOCKS_E2E_UNSET is not set (or empty)"

# An unknown --profile, a missing file.
printf '%s\n' '{"profiles": {"a": {'"$good"'}}}' >"$cfg"
out=$("$TUNSOCKS" check --config "$cfg" --profile zz 2>&1 >/dev/null) && fail "check accepted an unknown profile"
[[ $out == "tunsocks: $cfg: no profile is named \"zz\"" ]] || fail "unknown profile: $out"
out=$("$TUNSOCKS" check --config "$E2E_TMP/missing.json" 2>&1 >/dev/null) && fail "check accepted a missing file"
[[ $out == "tunsocks: $E2E_TMP/missing.json: cannot read the file: No such file or directory" ]] || fail "missing file: $out"

# A good file: the effective profile, password masked.
out=$("$TUNSOCKS" check --config "$cfg" 2>"$E2E_TMP/check.err") || fail "check refused a good file: $(cat "$E2E_TMP/check.err")"
grep -q '"profile": "a"' <<<"$out" || fail "check did not print the profile: $out"
grep -q '"dns": "fake-ip"' <<<"$out" || fail "check did not print the effective DNS mode: $out"
grep -q 'secret' <<<"$out" && fail "check printed the password: $out"
grep -q "OK (1 profiles; default \"a\")" "$E2E_TMP/check.err" || fail "check's summary line: $(cat "$E2E_TMP/check.err")"

rc=0
out=$("$TUNSOCKS" --config "$cfg" --upstream socks5://1.2.3.4:1 2>&1) || rc=$?
((rc == 2)) || fail "--config with --upstream: exit $rc, expected 2"
grep -q -- '--upstream cannot be combined with --config' <<<"$out" || fail "--config with --upstream: $out"
log "ok: unknown profile, missing file, good file, flag conflict"

# The documented example (configs/tunsocks.json) is valid, given its secrets.
top=$(cd "$(dirname "$0")/../../.." && pwd)
echo work-secret >"$E2E_TMP/work.password"
sed "s#/etc/tunsocks/work.password#$E2E_TMP/work.password#" "$top/configs/tunsocks.json" >"$E2E_TMP/example.json"
for p in home work work-tcp-only lab; do
  out=$(TUNSOCKS_LAB_PASSWORD=lab-secret "$TUNSOCKS" check --config "$E2E_TMP/example.json" --profile "$p" 2>&1) ||
    fail "the example config does not check for profile $p: $out"
  grep -q "\"profile\": \"$p\"" <<<"$out" || fail "check of example profile $p: $out"
done
out=$(TUNSOCKS_LAB_PASSWORD=lab-secret "$TUNSOCKS" check --config "$E2E_TMP/example.json" --profile work-tcp-only 2>&1)
grep -q '"dns": "tcp"' <<<"$out" && grep -q '"udp": "block"' <<<"$out" && grep -q '"on_switch": "reset"' <<<"$out" ||
  fail "work-tcp-only does not inherit and override as documented: $out"
log "ok: configs/tunsocks.json checks for every profile"
