// RFC 1929 username/password verification.
//
// Plain passwords are compared in constant time. Hashed passwords are crypt(3) strings
// (yescrypt "$y$", sha512-crypt "$6$", bcrypt "$2b$", ...) verified with libxcrypt's
// crypt_rn, whose output is compared in constant time as well. A crypt computation takes
// milliseconds by design (yescrypt: ~20 ms), far too long for the event loop, so the
// session runs those checks on libuv's thread pool: is_slow() says when.
//
// An unknown user costs what a known one does (a dummy comparison or hash), so response
// times do not tell which user names exist.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/socksd_config.h"

namespace tunsocks::server {

class Authenticator {
 public:
  explicit Authenticator(const std::vector<config::User>& users);

  // Users configured: RFC 1929 is then required of every SOCKS5 client.
  [[nodiscard]] bool required() const { return !users_.empty(); }
  // True when verifying `user` means a crypt(3) computation (run it off the loop).
  [[nodiscard]] bool is_slow(std::string_view user) const;
  // Thread-safe (the object is not modified after construction).
  [[nodiscard]] bool verify(std::string_view user, std::string_view password) const;

 private:
  struct Entry {
    config::User::Secret kind;
    std::string secret;
  };
  std::unordered_map<std::string, Entry> users_;
  std::string dummy_hash_;  // a configured hash, spent on unknown users; empty if none
};

// Compares in time that depends only on the length of `given`.
[[nodiscard]] bool constant_time_equal(std::string_view expected, std::string_view given);
// crypt_rn(password, hash) == hash, compared in constant time. False for passwords with a
// NUL byte (crypt(3) would silently cut them there).
[[nodiscard]] bool verify_crypt_hash(std::string_view password, const std::string& hash);

}  // namespace tunsocks::server
