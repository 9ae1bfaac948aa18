#include "net/log.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <unistd.h>
#include <vector>

namespace tunsocks::net {
namespace {

void write_stderr(void* /*context*/, std::string_view line) {
  // The newline goes in the same write so a line is never split between two writes.
  std::string out;
  out.reserve(line.size() + 1);
  out.append(line);
  out.push_back('\n');
  const char* p = out.data();
  std::size_t left = out.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report a failing stderr
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

LogSink g_sink = &write_stderr;
void* g_sink_context = nullptr;

constexpr std::string_view kLevelNames[] = {"ERROR", "WARN", "INFO", "DEBUG"};

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view text) {
  if (text == "error") return LogLevel::error;
  if (text == "warn") return LogLevel::warn;
  if (text == "info") return LogLevel::info;
  if (text == "debug") return LogLevel::debug;
  return std::nullopt;
}

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::error:
      return "error";
    case LogLevel::warn:
      return "warn";
    case LogLevel::info:
      return "info";
    case LogLevel::debug:
      return "debug";
  }
  return "?";
}

void set_log_sink(LogSink sink, void* context) {
  g_sink = sink;
  g_sink_context = context;
}

void reset_log_sink() {
  set_log_sink(&write_stderr, nullptr);
}

void log_write(LogLevel level, const char* format, ...) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);

  // Most lines fit the stack buffer; a longer one is formatted a second time into a heap
  // buffer of the exact size rather than being cut.
  char stack[1024];
  int prefix = std::snprintf(stack, sizeof stack, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                             utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                             utc.tm_min, utc.tm_sec, now.tv_nsec / 1000000,
                             kLevelNames[static_cast<std::size_t>(level)].data());
  if (prefix < 0) return;
  const auto prefix_len = static_cast<std::size_t>(prefix);

  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  int body = std::vsnprintf(stack + prefix_len, sizeof stack - prefix_len, format, args);
  va_end(args);
  if (body < 0) {
    va_end(again);
    return;
  }
  const auto body_len = static_cast<std::size_t>(body);
  if (prefix_len + body_len < sizeof stack) {
    va_end(again);
    g_sink(g_sink_context, std::string_view(stack, prefix_len + body_len));
    return;
  }
  std::vector<char> heap(prefix_len + body_len + 1);
  std::copy(stack, stack + prefix_len, heap.begin());
  std::vsnprintf(heap.data() + prefix_len, body_len + 1, format, again);
  va_end(again);
  g_sink(g_sink_context, std::string_view(heap.data(), prefix_len + body_len));
}

std::string log_token(std::string_view value) {
  if (value.empty()) return "-";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    auto byte = static_cast<unsigned char>(c);
    if (byte > 0x20 && byte < 0x7f && byte != '\\') {
      out.push_back(c);
    } else {
      out.append("\\x");
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    }
  }
  return out;
}

}  // namespace tunsocks::net
