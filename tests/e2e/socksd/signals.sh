#!/usr/bin/env bash
# Signals: SIGUSR1 prints one `counters {json}` line at info that parses, holds the ten
# counters as non-negative integers and reflects a fetch (sessions_total, bytes_down >=
# body, sessions_open back to 0); SIGTERM with nothing open exits 0 promptly; SIGTERM
# with a session open drains (signals.py) and exits 0 within drain_timeout_s + 3 s.
source "$(dirname "$0")/common.sh"
require_socksd
require_cmd curl

body_sha=$(make_body body 1048576)
start_http http
start_socksd s --listen 127.0.0.1:0 --allow-private --log-level info
curl_via "$E2E_TMP/o" "socks5://$s_addr" "http://127.0.0.1:$http_port/body" >/dev/null || fail "fetch failed"
[[ $(sha256_of "$E2E_TMP/o") == "$body_sha" ]] || fail "sha256 differs"
wait_for 5 grep -q 'session id=' "$E2E_TMP/s.log" || fail "no session line"
counters s >"$E2E_TMP/c.json"
"$SYSTEM_PYTHON" - "$E2E_TMP/c.json" <<'PY' || fail "counters JSON check failed: $(cat "$E2E_TMP/c.json")"
import json, sys
c = json.load(open(sys.argv[1]))
keys = ["sessions_open", "sessions_total", "bytes_up", "bytes_down", "auth_failures", "denied",
        "udp_associations_open", "udp_datagrams_dropped", "handshake_timeouts", "limit_refusals"]
missing = [k for k in keys if k not in c]
assert not missing, f"missing counters: {missing}"
bad = [k for k in keys if not isinstance(c[k], int) or isinstance(c[k], bool) or c[k] < 0]
assert not bad, f"not non-negative integers: {bad}"
assert c["sessions_total"] >= 1, c
assert c["sessions_open"] == 0, c
assert c["bytes_down"] >= 1048576, c
assert c["bytes_up"] > 0, c
print("counters:", c)
PY
grep 'counters {' "$E2E_TMP/s.log" | grep -Eiq 'info' || log "note: the counters line does not say 'info'"

# SIGTERM, nothing open: exit 0 promptly.
kill -TERM "$s_pid"
wait_for 5 bash -c "[[ ! -e /proc/$s_pid ]] || grep -q '^[0-9]* (.*) Z' /proc/$s_pid/stat" ||
  fail "socksd still running 5s after SIGTERM with no sessions"
rc=0
wait "$s_pid" || rc=$?
((rc == 0)) || fail "socksd exited $rc after SIGTERM, expected 0"
log "ok: SIGTERM with nothing open -> exit 0"

cat >"$E2E_TMP/drain.json" <<JSON
{"listen": ["127.0.0.1:0"], "allow_private": true, "limits": {"drain_timeout_s": 2}}
JSON
start_socksd d --config "$E2E_TMP/drain.json"
raw signals.py "$d_addr" "$d_pid" "$E2E_TMP/d.log" || fail "drain scenario failed"
rc=0
wait "$d_pid" || rc=$?
((rc == 0)) || fail "socksd exited $rc after SIGTERM with a session open, expected 0"
log "ok: SIGTERM with a session open -> drained, exit 0"
