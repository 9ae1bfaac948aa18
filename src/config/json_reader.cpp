#include "config/json_reader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <set>

#include "net/whole_file.h"

namespace tunsocks::config::json_reader {
namespace {

std::string escape_pointer_token(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string kind_of(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    default:
      return "something else";
  }
}

// A short rendering of an offending value for messages.
std::string shown(const json& j) {
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// nlohmann/json keeps the last of duplicate keys without a word; in a security config
// that hides mistakes ("allow_open" twice), so the parse callback tracks the JSON path
// and remembers the first duplicate.
class DuplicateKeyFinder {
 public:
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        enter_element();
        stack_.push_back(Frame{false, 0, {}, {}});
        break;
      case json::parse_event_t::array_start:
        enter_element();
        stack_.push_back(Frame{true, 0, {}, {}});
        break;
      case json::parse_event_t::key: {
        Frame& frame = stack_.back();
        frame.key = parsed.get<std::string>();
        if (!frame.seen.insert(frame.key).second && !duplicate_) duplicate_ = pointer();
        break;
      }
      case json::parse_event_t::value:
        enter_element();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        stack_.pop_back();
        break;
    }
    return true;
  }
  [[nodiscard]] const std::optional<std::string>& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    bool is_array;
    std::size_t count;  // elements seen so far (arrays)
    std::string key;    // current key (objects)
    std::set<std::string> seen;
  };
  void enter_element() {
    if (!stack_.empty() && stack_.back().is_array) ++stack_.back().count;
  }
  std::string pointer() const {
    std::string path;
    for (const Frame& f : stack_) {
      path = f.is_array ? child(path, f.count - 1) : child(path, f.key);
    }
    return path;
  }
  std::vector<Frame> stack_;
  std::optional<std::string> duplicate_;
};

std::string syntax_error_message(std::string_view text, const json::parse_error& e) {
  // Line and column of the byte nlohmann stopped at (1-based).
  std::size_t line = 1;
  std::size_t column = 1;
  std::size_t end = std::min<std::size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
  for (std::size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  std::string what = e.what();
  // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error while
  // parsing value - ..." -> the part after the location.
  auto colon = what.find(": ");
  if (colon != std::string::npos) what = what.substr(colon + 2);
  return "invalid JSON at line " + std::to_string(line) + ", column " + std::to_string(column) +
         ": " + what;
}

}  // namespace

[[noreturn]] void fail(std::string path, std::string message) {
  throw Failure{std::move(path), std::move(message)};
}

std::string child(const std::string& path, std::string_view key) {
  return path + "/" + escape_pointer_token(key);
}
std::string child(const std::string& path, std::size_t index) {
  return path + "/" + std::to_string(index);
}

std::string got(const json& j) {
  return ", got " + kind_of(j) + " " + shown(j);
}

void expect_object(const json& j, const std::string& path) {
  if (!j.is_object()) fail(path, "expected an object" + got(j));
}

void check_keys(const json& object, const std::string& path,
                std::initializer_list<std::string_view> known) {
  for (const auto& item : object.items()) {
    if (std::find(known.begin(), known.end(), item.key()) != known.end()) continue;
    std::string list;
    for (auto k : known) {
      if (!list.empty()) list += ", ";
      list += k;
    }
    fail(child(path, item.key()), "unknown key (expected one of: " + list + ")");
  }
}

const json* find(const json& object, std::string_view key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

bool read_bool(const json& j, const std::string& path) {
  if (!j.is_boolean()) fail(path, "expected true or false" + got(j));
  return j.get<bool>();
}

std::string read_string(const json& j, const std::string& path, std::string_view what) {
  if (!j.is_string()) fail(path, "expected " + std::string(what) + got(j));
  return j.get<std::string>();
}

const json& read_array(const json& j, const std::string& path, std::string_view what) {
  if (!j.is_array()) fail(path, "expected an array of " + std::string(what) + got(j));
  if (j.empty()) {
    fail(path, "expected a non-empty array of " + std::string(what) +
                   " (leave the key out to match anything)");
  }
  return j;
}

std::uint32_t read_count(const json& j, const std::string& path, std::uint32_t min,
                         std::uint32_t max) {
  std::string range = std::to_string(min) + ".." + std::to_string(max);
  if (!j.is_number_integer() && !j.is_number_unsigned()) {
    fail(path, "expected an integer " + range + got(j));
  }
  if (j.is_number_unsigned()) {
    auto v = j.get<std::uint64_t>();
    if (v < min || v > max) fail(path, "expected an integer " + range + got(j));
    return static_cast<std::uint32_t>(v);
  }
  auto v = j.get<std::int64_t>();
  if (v < static_cast<std::int64_t>(min) || v > static_cast<std::int64_t>(max)) {
    fail(path, "expected an integer " + range + got(j));
  }
  return static_cast<std::uint32_t>(v);
}

constexpr double kMaxSeconds = 365.0 * 24 * 3600;

double read_seconds(const json& j, const std::string& path, bool zero_allowed) {
  std::string what =
      zero_allowed ? "a number of seconds >= 0 (0 = never)" : "a number of seconds > 0";
  if (!j.is_number()) fail(path, "expected " + what + got(j));
  double v = j.get<double>();
  if (!std::isfinite(v) || v < 0 || (!zero_allowed && v == 0) || v > kMaxSeconds) {
    fail(path, "expected " + what + ", at most one year" + got(j));
  }
  return v;
}

std::vector<net::Cidr> read_cidrs(const json& j, const std::string& path) {
  std::vector<net::Cidr> out;
  const json& array = read_array(j, path, "CIDR strings like \"10.0.0.0/8\"");
  for (std::size_t i = 0; i < array.size(); ++i) {
    std::string where = child(path, i);
    auto text = read_string(array[i], where, "a CIDR string like \"10.0.0.0/8\"");
    auto cidr = net::Cidr::parse(text);
    if (!cidr) fail(where, cidr.error());
    out.push_back(*cidr);
  }
  return out;
}

std::expected<json, Error> parse_document(std::string_view text, std::string_view file_name) {
  std::string file(file_name);
  DuplicateKeyFinder duplicates;
  json root;
  try {
    root = json::parse(text.begin(), text.end(), std::ref(duplicates), true, false);
  } catch (const json::parse_error& e) {
    return std::unexpected(Error{file, "", syntax_error_message(text, e)});
  } catch (const json::exception& e) {
    return std::unexpected(Error{file, "", std::string("invalid JSON: ") + e.what()});
  }
  if (duplicates.duplicate()) {
    return std::unexpected(
        Error{file, *duplicates.duplicate(), "duplicate key (each key may appear once)"});
  }
  return root;
}

std::expected<std::string, Error> read_text_file(const std::string& file_path) {
  auto text = net::read_whole_file(file_path);
  if (!text)
    return std::unexpected(
        Error{file_path, "", std::string("cannot read the file: ") + std::strerror(text.error())});
  return std::move(*text);
}

}  // namespace tunsocks::config::json_reader
