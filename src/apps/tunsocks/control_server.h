// The control socket: a unix stream socket that speaks JSON lines. Each request is one
// JSON object on a line ({"cmd": "status"}); each answer is one JSON object on a line with
// "ok": true or false. The socket file is created with the configured mode (0600 by
// default: whoever may talk to it may switch the machine's proxy) and removed at close.
#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <uv.h>

namespace tunsocks::app {

class ControlServer {
 public:
  // Answers one request; runs on the loop.
  using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

  // Listens on `path`. A stale socket file (no one accepting) is replaced; one that a
  // running process still serves is an error, as is anything that is not a socket.
  [[nodiscard]] static std::expected<std::unique_ptr<ControlServer>, std::string> start(
      uv_loop_t* loop, const std::string& path, unsigned mode, Handler handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Stops listening, drops clients, removes the socket file; `done` runs when every
  // handle is closed (the object may then be destroyed).
  void close(std::function<void()> done);

  struct Client;
  // Trampolines' entry points.
  void on_connection(int status);
  void on_client_closed(Client* client);
  void on_listener_closed();

 private:
  ControlServer(uv_loop_t* loop, std::string path, Handler handler);
  void answer(Client& client, const std::string& line);
  void maybe_closed();

  uv_loop_t* loop_;
  const std::string path_;
  Handler handler_;
  uv_pipe_t listener_{};
  bool listener_open_ = false;
  bool bound_ = false;  // the socket file is ours to remove
  std::vector<std::unique_ptr<Client>> clients_;
  std::function<void()> closed_;
};

}  // namespace tunsocks::app
