#include "tunnel/upstream_url.h"

#include <charconv>

namespace tunsocks::tunnel {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::expected<std::string, std::string> percent_decode(std::string_view text,
                                                       std::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) {
      return std::unexpected("incomplete %-escape in the " + std::string(what));
    }
    const int high = hex_value(text[i + 1]);
    const int low = hex_value(text[i + 2]);
    if (high < 0 || low < 0) return std::unexpected("bad %-escape in the " + std::string(what));
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

}  // namespace

std::expected<UpstreamUrl, std::string> parse_upstream_url(std::string_view text) {
  UpstreamUrl url;
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    return std::unexpected("upstream '" + std::string(text) +
                           "' needs a scheme: socks5://, socks5h://, socks4:// or socks4a://");
  }
  const std::string_view scheme = text.substr(0, scheme_end);
  if (scheme == "socks5") {
    url.version = SocksVersion::socks5;
  } else if (scheme == "socks5h") {
    url.version = SocksVersion::socks5;
    url.remote_dns = true;
  } else if (scheme == "socks4") {
    url.version = SocksVersion::socks4;
  } else if (scheme == "socks4a") {
    url.version = SocksVersion::socks4;
    url.remote_dns = true;
  } else {
    return std::unexpected("unknown upstream scheme '" + std::string(scheme) +
                           "': use socks5, socks5h, socks4 or socks4a");
  }
  std::string_view rest = text.substr(scheme_end + 3);
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash) != "/") {
      return std::unexpected("an upstream URL has no path: '" + std::string(rest.substr(slash)) +
                             "'");
    }
    rest = rest.substr(0, slash);
  }
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    auto user = percent_decode(userinfo.substr(0, colon), "user name");
    if (!user) return std::unexpected(user.error());
    Credentials credentials{*user, {}};
    if (colon != std::string_view::npos) {
      auto password = percent_decode(userinfo.substr(colon + 1), "password");
      if (!password) return std::unexpected(password.error());
      credentials.password = *password;
    }
    if (credentials.user.empty()) return std::unexpected("the upstream user name is empty");
    if (credentials.user.size() > 255 || credentials.password.size() > 255) {
      return std::unexpected("upstream user name and password are limited to 255 bytes");
    }
    url.credentials = std::move(credentials);
  }
  std::string_view port_text;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos)
      return std::unexpected("unclosed '[' in the upstream host");
    url.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return std::unexpected("expected ':port' after the IPv6 address");
      port_text = rest.substr(1);
    }
  } else {
    const auto colon = rest.rfind(':');
    url.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (url.host.empty()) return std::unexpected("the upstream URL has no host");
  if (!port_text.empty() || rest.ends_with(':')) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      return std::unexpected("upstream port '" + std::string(port_text) + "' is not 1..65535");
    }
    url.port = static_cast<std::uint16_t>(value);
  }
  return url;
}

std::string UpstreamUrl::display() const {
  std::string text = version == SocksVersion::socks5 ? (remote_dns ? "socks5h" : "socks5")
                                                     : (remote_dns ? "socks4a" : "socks4");
  text += "://";
  if (credentials) text += credentials->user + ":***@";
  text += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return text + ":" + std::to_string(port);
}

}  // namespace tunsocks::tunnel
