#!/usr/bin/env bash
# --dns points the namespace's resolver at the TUN side, and down restores the file byte
# for byte (content, type, mode, owner, mtime; a symlink stays the same symlink). The
# host's /etc/resolv.conf is never touched:
#  - named namespace (ip netns exec NAME): /etc/netns/NAME/resolv.conf, which ip netns
#    exec bind-mounts over /etc/resolv.conf, is rewritten in place (seen inside as the
#    new nameserver, search/options kept); without that file, up creates it (and its
#    directories) and down removes exactly what it created;
#  - anonymous namespace plus a private mount namespace with an overlay on /etc (so the
#    real /etc/resolv.conf path is used, and only the overlay changes): a regular file,
#    a symlink (replaced by a file while up, the same link after down, its target never
#    written), a bind-mounted file (rewritten in place), no file at all, and up killed
#    with SIGKILL between recording the DNS change and making it; with /etc/resolv.conf
#    a link to systemd-resolved's stub, resolvectl is asked instead (dns, domain ~.;
#    revert on down) and no file changes.
source "$(dirname "$0")/common.sh"
require_cmd setsid unshare sha256sum stat

# fingerprint PATH: what "restored exactly" compares.
fingerprint() {
  if [[ -L $1 ]]; then
    echo "symlink -> $(readlink "$1") $(stat -c '%U %G' "$1")"
  elif [[ -e $1 ]]; then
    echo "$(stat -c '%F %a %U %G %s %Y' "$1") $(sha256sum <"$1" | cut -d' ' -f1)"
  else
    echo absent
  fi
}
same_file() { # same_file PATH BEFORE WHAT
  local now
  now=$(fingerprint "$1")
  [[ $now == "$2" ]] || fail "$3: $1 is '$now', was '$2'"
}
first_nameserver() { awk '$1 == "nameserver" { print $2; exit }' "$1"; }

if [[ ${1:-} == --inner ]]; then
  # ---- inside unshare -m -n: an anonymous namespace, /etc an overlay of the real one.
  ip link set lo up
  ip tuntap add dev tun0 mode tun
  ip link set tun0 up
  mkdir "$E2E_TMP/ovl"
  mount -t tmpfs tmpfs "$E2E_TMP/ovl"
  register_cleanup "umount -l '$E2E_TMP/ovl'"
  mkdir "$E2E_TMP/ovl/upper" "$E2E_TMP/ovl/work"
  mount -t overlay overlay -o "lowerdir=/etc,upperdir=$E2E_TMP/ovl/upper,workdir=$E2E_TMP/ovl/work" /etc ||
    skip "cannot mount an overlay on /etc in a private mount namespace"
  register_cleanup "umount -l /etc"
  state="$E2E_TMP/routes.state"
  rc=/etc/resolv.conf
  up_dns() {
    "$ROUTES" up --tun tun0 --dns 198.18.0.2 --state "$state" 2>"$E2E_TMP/up.log" ||
      fail "up --dns failed: $(cat "$E2E_TMP/up.log")"
    [[ $(first_nameserver $rc) == 198.18.0.2 ]] || fail "$rc while up: $(cat $rc)"
  }
  down() {
    "$ROUTES" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down failed: $(cat "$E2E_TMP/down.log")"
  }

  log "inner: a regular /etc/resolv.conf"
  rm -f $rc
  printf 'nameserver 10.0.0.53\nsearch lan\n# no newline at the end' >$rc
  chmod 640 $rc
  touch -d '2001-02-03 04:05:06' $rc
  before=$(fingerprint $rc)
  up_dns
  grep -qx 'search lan' $rc || fail "the search line was not kept: $(cat $rc)"
  [[ -f $rc && ! -L $rc ]] || fail "$rc is not a regular file while up"
  down
  same_file $rc "$before" "regular file"

  log "inner: a symlink"
  mkdir -p /etc/tsr-test
  printf 'nameserver 10.9.9.9\n' >/etc/tsr-test/resolv.conf
  rm -f $rc
  ln -s tsr-test/resolv.conf $rc
  before=$(fingerprint $rc) target_before=$(fingerprint /etc/tsr-test/resolv.conf)
  up_dns
  [[ ! -L $rc ]] || fail "up wrote through the symlink instead of replacing it"
  same_file /etc/tsr-test/resolv.conf "$target_before" "symlink target while up"
  down
  same_file $rc "$before" "symlink"
  same_file /etc/tsr-test/resolv.conf "$target_before" "symlink target"

  log "inner: a bind-mounted file (as containers and ip netns exec have)"
  rm -f $rc
  printf 'nameserver 10.0.0.1\n' >$rc
  printf 'nameserver 10.1.1.1\noptions edns0\n' >"$E2E_TMP/private.conf"
  touch -d '2002-03-04 05:06:07' "$E2E_TMP/private.conf"
  mount --bind "$E2E_TMP/private.conf" $rc
  register_cleanup "umount -l $rc"
  before=$(fingerprint "$E2E_TMP/private.conf")
  up_dns
  grep -qx 'options edns0' "$E2E_TMP/private.conf" || fail "not written in place: $(cat "$E2E_TMP/private.conf")"
  down
  same_file "$E2E_TMP/private.conf" "$before" "bind-mounted file"
  umount $rc

  log "inner: no /etc/resolv.conf at all"
  rm -f $rc
  up_dns
  down
  same_file $rc absent "no file"

  log "inner: SIGKILL between recording the DNS change and making it"
  printf 'nameserver 10.0.0.53\n' >$rc
  before=$(fingerprint $rc)
  TUNSOCKS_ROUTES_STEP_PAUSE=0.2 setsid "$ROUTES" up --tun tun0 --dns 198.18.0.2 --state "$state" \
    >"$E2E_TMP/killed.log" 2>&1 &
  pid=$!
  register_cleanup "kill -9 -- -$pid 2>/dev/null"
  wait_for 15 grep -q '^dns-file' "$state" || fail "up never recorded the DNS change"
  kill -9 -- "-$pid"
  wait "$pid" 2>/dev/null || true
  "$ROUTES" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down after the kill failed: $(cat "$E2E_TMP/down.log")"
  same_file $rc "$before" "after a kill during the DNS step"
  leftover=$(compgen -G '/etc/.resolv.conf.tunsocks*' || true)
  [[ -z $leftover ]] || fail "left temporary files in /etc: $leftover"

  log "inner: systemd-resolved's stub (a stand-in resolvectl that records its calls)"
  # A private /run hides the real one (and its netns names: this namespace has none).
  mount -t tmpfs tmpfs /run
  register_cleanup "umount -l /run"
  mkdir -p /run/systemd/resolve "$E2E_TMP/bin"
  printf 'nameserver 127.0.0.53\n' >/run/systemd/resolve/stub-resolv.conf
  rm -f $rc
  ln -s ../run/systemd/resolve/stub-resolv.conf $rc
  before=$(fingerprint $rc) stub_before=$(fingerprint /run/systemd/resolve/stub-resolv.conf)
  printf '#!/bin/sh\necho "$*" >>%s\n' "$E2E_TMP/resolvectl.calls" >"$E2E_TMP/bin/resolvectl"
  chmod +x "$E2E_TMP/bin/resolvectl"
  PATH="$E2E_TMP/bin:$PATH" "$ROUTES" up --tun tun0 --dns 198.18.0.2 --state "$state" 2>"$E2E_TMP/up.log" ||
    fail "up --dns with resolved failed: $(cat "$E2E_TMP/up.log")"
  [[ $(cat "$E2E_TMP/resolvectl.calls") == $'dns tun0 198.18.0.2\ndomain tun0 ~.' ]] ||
    fail "resolvectl calls while up: $(cat "$E2E_TMP/resolvectl.calls")"
  same_file $rc "$before" "resolved's symlink while up"
  PATH="$E2E_TMP/bin:$PATH" "$ROUTES" down --state "$state" 2>"$E2E_TMP/down.log" ||
    fail "down failed: $(cat "$E2E_TMP/down.log")"
  [[ $(tail -n 1 "$E2E_TMP/resolvectl.calls") == "revert tun0" ]] ||
    fail "down did not revert the link: $(cat "$E2E_TMP/resolvectl.calls")"
  same_file $rc "$before" "resolved's symlink"
  same_file /run/systemd/resolve/stub-resolv.conf "$stub_before" "resolved's stub file"
  exit 0
fi

host_before=$(fingerprint /etc/resolv.conf)

log "named namespace without /etc/netns/NAME/resolv.conf"
routes_netns c
ns=$c_ns
state="$E2E_TMP/routes.state"
netns_dir=/etc/netns/$ns
[[ ! -e $netns_dir ]] || fail "$netns_dir exists already"
# If the test fails halfway, what up created under /etc/netns must not stay behind.
register_cleanup "rm -rf '$netns_dir'; rmdir /etc/netns 2>/dev/null"
[[ -d /etc/netns ]] && had_etc_netns=yes || had_etc_netns=no
routes "$ns" up --tun tun0 --dns 198.18.0.2 --dns fd00::53 --state "$state" 2>"$E2E_TMP/up.log" ||
  fail "up --dns failed: $(cat "$E2E_TMP/up.log")"
grep -q 'ip netns exec' "$E2E_TMP/up.log" || fail "up did not say where the namespace's DNS went: $(cat "$E2E_TMP/up.log")"
[[ $(in_ns "$ns" awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf | paste -sd,) == 198.18.0.2,fd00::53 ]] ||
  fail "inside the namespace, /etc/resolv.conf is: $(in_ns "$ns" cat /etc/resolv.conf)"
same_file /etc/resolv.conf "$host_before" "the host's file while up"
routes "$ns" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down failed: $(cat "$E2E_TMP/down.log")"
[[ ! -e $netns_dir ]] || fail "down left $netns_dir"
[[ $had_etc_netns == yes || ! -e /etc/netns ]] || [[ -n $(ls -A /etc/netns) ]] || fail "down left an empty /etc/netns it created"

log "named namespace with /etc/netns/NAME/resolv.conf"
mkdir -p "$netns_dir"
printf 'nameserver 10.2.2.2\nsearch example.org\noptions ndots:2\n' >"$netns_dir/resolv.conf"
chmod 600 "$netns_dir/resolv.conf"
touch -d '2003-04-05 06:07:08' "$netns_dir/resolv.conf"
before=$(fingerprint "$netns_dir/resolv.conf")
routes "$ns" up --tun tun0 --dns 198.18.0.2 --state "$state" 2>"$E2E_TMP/up.log" ||
  fail "up --dns failed: $(cat "$E2E_TMP/up.log")"
inside=$(in_ns "$ns" cat /etc/resolv.conf)
has_line "$inside" '^nameserver 198\.18\.0\.2$' "resolv.conf inside the namespace"
lacks_line "$inside" '10\.2\.2\.2' "resolv.conf inside the namespace"
has_line "$inside" '^search example\.org$' "resolv.conf inside the namespace"
st=$(routes "$ns" status --state "$state")
has_line "$st" "dns: $netns_dir/resolv.conf \(inplace" "status"
routes "$ns" down --state "$state" 2>"$E2E_TMP/down.log" || fail "down failed: $(cat "$E2E_TMP/down.log")"
same_file "$netns_dir/resolv.conf" "$before" "/etc/netns/NAME/resolv.conf"

log "the real /etc/resolv.conf path, in private namespaces"
inner_status=0
unshare -m -n --propagation private bash "$0" --inner || inner_status=$?
[[ $inner_status -eq 77 ]] && skip "the private-namespace cases could not run (see above)"
[[ $inner_status -eq 0 ]] || fail "the private-namespace cases failed (exit $inner_status)"

same_file /etc/resolv.conf "$host_before" "the host's /etc/resolv.conf"
host_untouched
log "PASS"
