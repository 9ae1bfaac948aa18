// tunsocks' command line: the flags of a one-off run, or --config FILE --profile NAME. Both
// end up as the same thing, a TunsocksConfig and the profile to start with, so that one
// code path runs, switches and reports either way.
#pragma once

#include <string>

#include "config/tunsocks_config.h"

namespace tunsocks::app {

// The profile a command-line run is given (there is nothing to switch to or reload).
inline constexpr const char* kCommandLineProfile = "command-line";

struct Launch {
  config::TunsocksConfig config;
  std::string profile;      // to start with
  std::string config_path;  // empty: started from flags alone
  bool attach_only = false;
  bool control = false;  // listen on config.control_socket_path()
};

// Parses `tunsocks [run options]`; prints the error and exits 2 on a bad command line, or
// 1 when --config names a file with an error (the error line says which).
[[nodiscard]] Launch parse_run_options(int argc, char** argv);

// `tunsocks check --config FILE [--profile NAME]`: validates, prints the effective
// profile; returns the exit code.
[[nodiscard]] int run_check(int argc, char** argv);

}  // namespace tunsocks::app
