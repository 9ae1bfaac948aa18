// `tunsocks ctl`: the control socket's command-line client.
#pragma once

namespace tunsocks::app {

// argv[1] == "ctl". Prints the answer (status and flows as readable text, or the JSON with
// --json) and returns the exit code: 0 ok, 1 the daemon said no or could not be reached,
// 2 a bad command line.
[[nodiscard]] int run_ctl(int argc, char** argv);

}  // namespace tunsocks::app
