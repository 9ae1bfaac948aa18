// Reading JSON configuration files strictly, shared by every loader in src/config: the
// document is parsed with duplicate keys refused, then read by a function that checks each
// value's type and range and stops at the first problem with its JSON path.
//
// Inside a reader, a problem is thrown as a Failure (this module's only exception) and
// turned into an Error at read_document's boundary: a loader then reads as a straight line
// of checks instead of threading an expected through every helper.
#pragma once

#include <cstdint>
#include <expected>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/error.h"
#include "net/ip.h"

namespace tunsocks::config::json_reader {

using json = nlohmann::json;

struct Failure {
  std::string path;
  std::string message;
};

[[noreturn]] void fail(std::string path, std::string message);

// JSON pointers: child("/rules", 2) == "/rules/2"; keys are escaped as RFC 6901 says.
[[nodiscard]] std::string child(const std::string& path, std::string_view key);
[[nodiscard]] std::string child(const std::string& path, std::size_t index);
// ", got a string \"x\"": the end of an "expected ..." message.
[[nodiscard]] std::string got(const json& value);

void expect_object(const json& value, const std::string& path);
// Fails on the first key of `object` not in `known`, listing the known ones.
void check_keys(const json& object, const std::string& path,
                std::initializer_list<std::string_view> known);
[[nodiscard]] const json* find(const json& object, std::string_view key);

[[nodiscard]] bool read_bool(const json& value, const std::string& path);
[[nodiscard]] std::string read_string(const json& value, const std::string& path,
                                      std::string_view what);
// A non-empty array (an empty one would mean "nothing", which is never what is meant).
[[nodiscard]] const json& read_array(const json& value, const std::string& path,
                                     std::string_view what);
[[nodiscard]] std::uint32_t read_count(const json& value, const std::string& path,
                                       std::uint32_t min, std::uint32_t max);
// Seconds, at most a year; 0 only when `zero_allowed` (it then means "never").
[[nodiscard]] double read_seconds(const json& value, const std::string& path, bool zero_allowed);
[[nodiscard]] std::vector<net::Cidr> read_cidrs(const json& value, const std::string& path);

// The document in `text`, or the syntax error (line and column) or first duplicate key.
[[nodiscard]] std::expected<json, Error> parse_document(std::string_view text,
                                                        std::string_view file_name);
// The whole file, or an Error saying why it could not be read.
[[nodiscard]] std::expected<std::string, Error> read_text_file(const std::string& file_path);

// parse_document, then `read(root)`; a Failure becomes an Error naming `file_name`.
template <class Reader>
auto read_document(std::string_view text, std::string_view file_name, Reader read)
    -> std::expected<decltype(read(std::declval<const json&>())), Error> {
  auto root = parse_document(text, file_name);
  if (!root) return std::unexpected(root.error());
  try {
    return read(*root);
  } catch (const Failure& failure) {
    return std::unexpected(Error{std::string(file_name), failure.path, failure.message});
  } catch (const json::exception& e) {
    // Every access is type-checked first; this is a safety net, not a path.
    return std::unexpected(
        Error{std::string(file_name), "", std::string("unexpected JSON error: ") + e.what()});
  }
}

}  // namespace tunsocks::config::json_reader
