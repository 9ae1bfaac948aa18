// ICMP echo answered by tunsocks itself (--answer-ping): SOCKS has no way to carry a ping,
// so without this every ping through the TUN times out, which many health checks read as
// "no network". The answer says only that the tunnel is up, not that the destination is:
// hence off by default.
#pragma once

#include <optional>

#include "tunnel/packet.h"

namespace tunsocks::tunnel {

// The echo reply to `packet` (classified as `info`) when it is an unfragmented ICMP or
// ICMPv6 echo request; nullopt for anything else. The reply comes from the address pinged,
// carries the request's identifier, sequence and data, and has fresh checksums.
[[nodiscard]] std::optional<PacketBytes> build_echo_reply(const PacketInfo& info,
                                                          PacketView packet);

}  // namespace tunsocks::tunnel
