#!/usr/bin/env bash
# python3-socks (PySocks, `import socks`) through socksd: SOCKS4, SOCKS4a (remote name),
# SOCKS5 (local name), SOCKS5 with a remote name, and SOCKS5 with user/password.
# Asserts the body's sha256 and each session line (proto, reply=succeeded, user,
# down= exactly the raw response bytes the client read).
source "$(dirname "$0")/common.sh"
require_socksd
"$SYSTEM_PYTHON" -c 'import socks' 2>/dev/null || skip "python3-socks is not installed"

body_sha=$(make_body body 1048576)
start_http http --dual
start_socksd open --listen 127.0.0.1:0 --allow-private
start_socksd auth --listen 127.0.0.1:0 --allow-private --user alice:s3cret

# pyfetch SERVER TYPE HOST PROTO USER [USER PASS]
pyfetch() {
  local server=$1 kind=$2 host=$3 proto=$4 user=$5
  shift 5
  local addr_var="${server}_addr" out="$E2E_TMP/py.out" res
  res=$(raw http_client.py pysocks "$kind" "${!addr_var}" "$host" "$http_port" /body "$out" "$@") ||
    fail "python3-socks $kind fetch failed"
  [[ $(sha256_of "$out") == "$body_sha" ]] || fail "python3-socks $kind: sha256 differs"
  read -r cport nraw <<<"$res"
  local line
  line=$(session_for "$server" "$cport")
  expect_field "$line" proto "$proto"
  expect_field "$line" cmd connect
  expect_field "$line" reply succeeded
  expect_field "$line" user "$user"
  expect_field "$line" down "$nraw"
  log "ok: python3-socks $kind: $line"
}

pyfetch open socks4 127.0.0.1 socks4 -
pyfetch open socks4a localhost socks4a -
pyfetch open socks5 127.0.0.1 socks5 -
pyfetch open socks5h localhost socks5 -
pyfetch auth socks5 127.0.0.1 socks5 alice alice s3cret
