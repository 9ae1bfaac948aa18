#include "server/auth.h"

#include <crypt.h>
#include <memory>

namespace tunsocks::server {

bool constant_time_equal(std::string_view expected, std::string_view given) {
  // Every byte of `given` is visited whatever matches; a length mismatch only flips the
  // result. The loop never depends on the secret's length beyond the modulo.
  unsigned char diff = expected.size() == given.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i) {
    unsigned char e =
        expected.empty() ? 0 : static_cast<unsigned char>(expected[i % expected.size()]);
    diff |= static_cast<unsigned char>(e ^ static_cast<unsigned char>(given[i]));
  }
  return diff == 0;
}

bool verify_crypt_hash(std::string_view password, const std::string& hash) {
  if (password.find('\0') != std::string_view::npos) return false;
  std::string phrase(password);
  // crypt_data is ~32 KiB: heap, and zeroed as libxcrypt requires before first use.
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_rn(phrase.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  bool ok = out != nullptr && constant_time_equal(hash, out);
  volatile char* p = phrase.data();
  for (std::size_t i = 0; i < phrase.size(); ++i)
    p[i] = 0;
  return ok;
}

Authenticator::Authenticator(const std::vector<config::User>& users) {
  for (const auto& user : users) {
    users_[user.name] = Entry{user.kind, user.secret};
    if (user.kind == config::User::Secret::crypt_hash && dummy_hash_.empty()) {
      dummy_hash_ = user.secret;
    }
  }
}

bool Authenticator::is_slow(std::string_view user) const {
  auto it = users_.find(std::string(user));
  if (it == users_.end()) return !dummy_hash_.empty();
  return it->second.kind == config::User::Secret::crypt_hash;
}

bool Authenticator::verify(std::string_view user, std::string_view password) const {
  auto it = users_.find(std::string(user));
  if (it == users_.end()) {
    if (!dummy_hash_.empty()) {
      (void)verify_crypt_hash(password, dummy_hash_);
    } else {
      (void)constant_time_equal("dummy-password-for-unknown-users", password);
    }
    return false;
  }
  if (it->second.kind == config::User::Secret::plain) {
    return constant_time_equal(it->second.secret, password);
  }
  return verify_crypt_hash(password, it->second.secret);
}

}  // namespace tunsocks::server
