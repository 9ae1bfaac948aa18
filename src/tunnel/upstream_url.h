// Upstream proxy URLs, curl's convention: socks5:// resolves names locally, socks5h:// hands
// them to the proxy; socks4:// vs socks4a:// likewise. Credentials are percent-decoded.
//   socks5://user:pass@host:port   socks5h://[2001:db8::1]:1080   socks4a://proxy:1080
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include "tunnel/client_handshake.h"

namespace tunsocks::tunnel {

struct UpstreamUrl {
  SocksVersion version = SocksVersion::socks5;
  bool remote_dns = false;  // socks5h / socks4a: names go to the proxy unresolved
  std::optional<Credentials> credentials;
  std::string host;  // a name or an IP literal (IPv6 without brackets)
  std::uint16_t port = 1080;

  // The URL again with the password masked, for logs and status output.
  [[nodiscard]] std::string display() const;
};

// Errors are sentences naming the URL part that is wrong.
[[nodiscard]] std::expected<UpstreamUrl, std::string> parse_upstream_url(std::string_view text);

}  // namespace tunsocks::tunnel
