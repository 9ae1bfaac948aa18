// Automatic routes ("routes": "auto"): tunsocks runs platform/linux/tunsocks-routes, the
// same script a user would run by hand, so there is one implementation of what gets
// installed and of how it is put back. `up` at start (it first removes what a crashed run
// left, per its state file), `update` on a profile switch (a diff: routes that stay are
// not touched), `down` at exit. The script runs inside the TUN's namespace when tunsocks
// was given one, asynchronously, one command at a time.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include <uv.h>

#include "config/tunsocks_config.h"

namespace tunsocks::app {

class Routes {
 public:
  // `done(ok)`: the command exited 0. Its own messages go to stderr, beside tunsocks' log.
  using Done = std::function<void(bool ok)>;

  Routes(uv_loop_t* loop, const config::TunsocksConfig& config);
  Routes(const Routes&) = delete;
  Routes& operator=(const Routes&) = delete;

  void up(const config::Profile& profile, Done done);
  void update(const config::Profile& profile, Done done);
  void down(Done done);

  // What `status` shows: "auto (table 720, state /run/tunsocks/routes-tun0.state)".
  [[nodiscard]] std::string describe() const;

  void on_exit(std::int64_t status, int signal);  // trampoline entry

 private:
  struct Command {
    std::vector<std::string> argv;
    Done done;
  };
  [[nodiscard]] std::vector<std::string> profile_arguments(const config::Profile& profile) const;
  void enqueue(std::vector<std::string> arguments, Done done);
  void run_next();
  // The process has exited (or never started): close its handle, report, run the next.
  void finish(bool ok);

  uv_loop_t* loop_;
  std::vector<std::string> prefix_;  // the script, behind nsenter when there is a netns
  std::string tun_;
  std::string state_file_;
  std::uint32_t fwmark_, table_, priority_;
  std::string dns_address_;  // where fake-ip DNS is pointed: inside the TUN's prefix
  std::deque<Command> queue_;
  bool running_ = false;
  bool last_ok_ = false;
  uv_process_t process_{};
};

// The tunsocks-routes script: next to this executable (the build and install put it
// there), else on PATH.
[[nodiscard]] std::string find_routes_script();

}  // namespace tunsocks::app
