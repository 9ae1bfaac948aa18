#include "server/auth.h"

#include <string>
#include <vector>

#include <doctest/doctest.h>

using tunsocks::config::User;
using tunsocks::server::Authenticator;
using tunsocks::server::constant_time_equal;
using tunsocks::server::verify_crypt_hash;

namespace {

// openssl passwd -6 -salt abcdefgh s3cret
const std::string kSha512 =
    "$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9rQ4DYaXoxAFSPF"
    "lcWdxjB.";
// yescrypt of "s3cret" (libxcrypt crypt_gensalt "$y$", the format mkpasswd writes)
const std::string kYescrypt =
    "$y$j9T$/Lr5d46rK/Q/ANiR/F1H//$eXLdQv5RbHMnYLaIFzmZfOBZAmfhppsawmrXMbaosu7";

User plain(std::string name, std::string password) {
  return User{std::move(name), User::Secret::plain, std::move(password), "/users/0"};
}
User hashed(std::string name, std::string hash) {
  return User{std::move(name), User::Secret::crypt_hash, std::move(hash), "/users/1"};
}

}  // namespace

TEST_CASE("constant_time_equal_compares_exactly") {
  CHECK(constant_time_equal("s3cret", "s3cret"));
  CHECK(!constant_time_equal("s3cret", "s3creT"));
  CHECK(!constant_time_equal("s3cret", "s3cre"));
  CHECK(!constant_time_equal("s3cret", "s3crets"));
  CHECK(!constant_time_equal("s3cret", ""));
  CHECK(!constant_time_equal("", "x"));
  CHECK(constant_time_equal("", ""));
  CHECK(!constant_time_equal("abcabc", "abc"));  // the modulo must not make a prefix pass
}

TEST_CASE("crypt_hashes_verify") {
  CHECK(verify_crypt_hash("s3cret", kSha512));
  CHECK(!verify_crypt_hash("s3creT", kSha512));
  CHECK(!verify_crypt_hash("", kSha512));
  CHECK(verify_crypt_hash("s3cret", kYescrypt));
  CHECK(!verify_crypt_hash("wrong", kYescrypt));
  CHECK(!verify_crypt_hash(std::string("s3cret\0x", 8), kSha512));  // no silent cut at NUL
  CHECK(!verify_crypt_hash("s3cret", "$6$abcdefgh"));
  CHECK(!verify_crypt_hash("s3cret", "not a hash"));
}

TEST_CASE("authenticator_plain_and_hashed_users") {
  Authenticator auth(
      {plain("alice", "s3cret"), hashed("bob", kSha512), hashed("carol", kYescrypt)});
  CHECK(auth.required());
  CHECK(auth.verify("alice", "s3cret"));
  CHECK(!auth.verify("alice", "S3CRET"));
  CHECK(!auth.verify("alice", "s3cret" + std::string(200, 'x')));
  CHECK(auth.verify("bob", "s3cret"));
  CHECK(!auth.verify("bob", "nope"));
  CHECK(auth.verify("carol", "s3cret"));
  CHECK(!auth.verify("mallory", "s3cret"));
  CHECK(!auth.verify("", ""));
  CHECK(!auth.verify("Alice", "s3cret"));  // user names are exact
  CHECK(!auth.is_slow("alice"));
  CHECK(auth.is_slow("bob"));
  // Unknown users cost a hash too when hashes exist, so timing does not reveal names.
  CHECK(auth.is_slow("mallory"));
}

TEST_CASE("authenticator_without_users") {
  Authenticator none({});
  CHECK(!none.required());
  CHECK(!none.verify("alice", "s3cret"));
  Authenticator plain_only({plain("alice", "s3cret")});
  CHECK(!plain_only.is_slow("mallory"));
}
