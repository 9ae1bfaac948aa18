#include "net/log.h"

#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace net = tunsocks::net;

namespace {

struct Capture {
  std::vector<std::string> lines;
  Capture() {
    net::set_log_sink(
        [](void* self, std::string_view line) {
          static_cast<Capture*>(self)->lines.emplace_back(line);
        },
        this);
  }
  ~Capture() {
    net::reset_log_sink();
    net::set_log_level(net::LogLevel::info);
  }
};

int g_evaluations = 0;
int counted() {
  return ++g_evaluations;
}

}  // namespace

TEST_CASE("log_line_has_timestamp_level_and_message") {
  Capture capture;
  net::set_log_level(net::LogLevel::info);
  TS_LOG_INFO("listening on %s", "127.0.0.1:1080");
  REQUIRE(capture.lines.size() == 1);
  const std::string& line = capture.lines[0];
  // 2026-01-02T03:04:05.678Z INFO listening on 127.0.0.1:1080
  CHECK(line.size() > 25);
  CHECK(line[4] == '-');
  CHECK(line[10] == 'T');
  CHECK(line[23] == 'Z');
  CHECK(line.substr(24) == " INFO listening on 127.0.0.1:1080");
}

TEST_CASE("log_level_is_checked_before_arguments_are_evaluated") {
  Capture capture;
  net::set_log_level(net::LogLevel::warn);
  g_evaluations = 0;
  TS_LOG_DEBUG("%d", counted());
  TS_LOG_INFO("%d", counted());
  CHECK(g_evaluations == 0);
  CHECK(capture.lines.empty());
  TS_LOG_WARN("%d", counted());
  TS_LOG_ERROR("%d", counted());
  CHECK(g_evaluations == 2);
  REQUIRE(capture.lines.size() == 2);
  CHECK(capture.lines[0].find(" WARN 1") != std::string::npos);
  CHECK(capture.lines[1].find(" ERROR 2") != std::string::npos);
}

TEST_CASE("log_long_lines_are_not_truncated") {
  Capture capture;
  std::string big(5000, 'x');
  TS_LOG_INFO("%s|end", big.c_str());
  REQUIRE(capture.lines.size() == 1);
  CHECK(capture.lines[0].ends_with(big + "|end"));
}

TEST_CASE("log_level_names_parse") {
  CHECK(net::parse_log_level("debug") == net::LogLevel::debug);
  CHECK(net::parse_log_level("error") == net::LogLevel::error);
  CHECK(!net::parse_log_level("INFO").has_value());
  CHECK(!net::parse_log_level("verbose").has_value());
  CHECK(net::to_string(net::LogLevel::warn) == "warn");
}

TEST_CASE("log_token_escapes_spaces_and_control_bytes") {
  CHECK(net::log_token("") == "-");
  CHECK(net::log_token("alice") == "alice");
  CHECK(net::log_token("a b") == "a\\x20b");
  CHECK(net::log_token(std::string_view("a\0b\n", 4)) == "a\\x00b\\x0a");
  CHECK(net::log_token("x=\\") == "x=\\x5c");
}
