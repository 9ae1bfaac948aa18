// Leveled logging to stderr: one line per event, "<UTC time> <LEVEL> <message>", e.g.
// "2026-01-02T03:04:05.678Z INFO listening on 127.0.0.1:1080". The level is checked
// before any argument is formatted (the TS_LOG_* macros do not evaluate their arguments
// when the level is off), so debug lines cost one comparison in production.
//
// Each line goes out in a single write(2): lines from one process never interleave, and a
// reader polling the file (the e2e tests do) never sees half a line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tunsocks::net {

enum class LogLevel : std::uint8_t { error = 0, warn = 1, info = 2, debug = 3 };

// "error", "warn", "info", "debug" (the spellings of the CLI and the config file).
[[nodiscard]] std::optional<LogLevel> parse_log_level(std::string_view text);
[[nodiscard]] std::string_view to_string(LogLevel level);

namespace detail {
inline LogLevel g_log_level = LogLevel::info;
}  // namespace detail

inline void set_log_level(LogLevel level) {
  detail::g_log_level = level;
}
[[nodiscard]] inline LogLevel log_level() {
  return detail::g_log_level;
}
[[nodiscard]] inline bool log_enabled(LogLevel level) {
  return level <= detail::g_log_level;
}

// Where finished lines go (without the trailing newline). The default writes to stderr;
// tests install their own to look at what was logged. Not thread-safe: set it at start.
using LogSink = void (*)(void* context, std::string_view line);
void set_log_sink(LogSink sink, void* context);
void reset_log_sink();

// Formats and emits one line; callers normally use the macros below.
void log_write(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

// A log value that must not contain spaces or control bytes (key=value lines): printable
// ASCII passes through, anything else becomes \xNN; an empty value becomes "-".
[[nodiscard]] std::string log_token(std::string_view value);

}  // namespace tunsocks::net

#define TS_LOG(level, ...)                            \
  do {                                                \
    if (::tunsocks::net::log_enabled(level)) {        \
      ::tunsocks::net::log_write(level, __VA_ARGS__); \
    }                                                 \
  } while (false)
#define TS_LOG_ERROR(...) TS_LOG(::tunsocks::net::LogLevel::error, __VA_ARGS__)
#define TS_LOG_WARN(...) TS_LOG(::tunsocks::net::LogLevel::warn, __VA_ARGS__)
#define TS_LOG_INFO(...) TS_LOG(::tunsocks::net::LogLevel::info, __VA_ARGS__)
#define TS_LOG_DEBUG(...) TS_LOG(::tunsocks::net::LogLevel::debug, __VA_ARGS__)
