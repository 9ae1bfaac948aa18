#!/usr/bin/env bash
# tunsocks against microsocks (a SOCKS5 server we did not write), in the proxy namespace:
# the GET (100 MiB, sha256) and PUT (50 MiB, sha256 on the server side) of
# curl_transfers, with their flow-line checks; an IPv6 destination; and a closed port ->
# microsocks' refusal -> ECONNREFUSED at the app.
UPSTREAM_KIND=microsocks
source "$(dirname "$0")/upstream_matrix.sh"
