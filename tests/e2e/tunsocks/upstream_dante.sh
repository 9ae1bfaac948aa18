#!/usr/bin/env bash
# tunsocks against Dante (danted, a SOCKS server we did not write), in the proxy
# namespace with a config written here: the GET (100 MiB, sha256) and PUT (50 MiB,
# sha256 on the server side) of curl_transfers, with their flow-line checks; an IPv6
# destination; and a closed port -> Dante's refusal -> ECONNREFUSED at the app.
UPSTREAM_KIND=dante
source "$(dirname "$0")/upstream_matrix.sh"
