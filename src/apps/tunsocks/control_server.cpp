#include "control_server.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/log.h"

namespace tunsocks::app {

namespace {

constexpr std::size_t kMaxLine = 64 * 1024;  // a request is a few dozen bytes
constexpr std::size_t kMaxClients = 16;

// Whether a process accepts on the unix socket at `path` now.
bool someone_listens(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const bool connected =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

}  // namespace

struct ControlServer::Client {
  ControlServer* server = nullptr;
  uv_pipe_t pipe{};
  std::string pending;  // bytes of a line not yet complete
  char buffer[4096];
  bool closing = false;
};

namespace {

ControlServer::Client* client_of(uv_handle_t* handle) {
  return static_cast<ControlServer::Client*>(handle->data);
}

void close_client(ControlServer::Client& client) {
  if (client.closing) return;
  client.closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&client.pipe), [](uv_handle_t* handle) {
    ControlServer::Client* closed = client_of(handle);
    closed->server->on_client_closed(closed);
  });
}

struct WriteRequest {
  uv_write_t request{};
  std::string bytes;
};

}  // namespace

ControlServer::ControlServer(uv_loop_t* loop, std::string path, Handler handler)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)) {
  listener_.data = this;
}

ControlServer::~ControlServer() = default;

std::expected<std::unique_ptr<ControlServer>, std::string> ControlServer::start(
    uv_loop_t* loop, const std::string& path, unsigned mode, Handler handler) {
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return std::unexpected("control socket path too long: " + path);
  }
  // The directory (/run/tunsocks) is the service's own: made if missing, never loosened.
  const std::string directory = path.substr(0, path.rfind('/'));
  if (!directory.empty() && ::mkdir(directory.c_str(), 0755) < 0 && errno != EEXIST) {
    return std::unexpected("cannot create " + directory + ": " + std::strerror(errno));
  }
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      return std::unexpected(path + " exists and is not a socket; not replacing it");
    }
    if (someone_listens(path)) {
      return std::unexpected(
          "another process serves the control socket " + path +
          " (another tunsocks on the same TUN name?); stop it or set another control_socket");
    }
    ::unlink(path.c_str());  // left by a crashed run
  }
  std::unique_ptr<ControlServer> server(new ControlServer(loop, path, std::move(handler)));
  uv_pipe_init(loop, &server->listener_, 0);
  server->listener_open_ = true;
  // The mode is set at creation (umask), so the socket is never reachable by others, not
  // even between bind and chmod.
  const mode_t previous = ::umask(static_cast<mode_t>(~mode & 0777));
  int status = uv_pipe_bind(&server->listener_, path.c_str());
  ::umask(previous);
  if (status == 0) {
    server->bound_ = true;
    status = uv_listen(reinterpret_cast<uv_stream_t*>(&server->listener_), 8,
                       [](uv_stream_t* listener, int result) {
                         static_cast<ControlServer*>(listener->data)->on_connection(result);
                       });
  }
  if (status < 0) {
    const std::string error = "control socket " + path + ": " + uv_strerror(status);
    server->close(nullptr);
    // The loop finishes closing the handle; the object must outlive it.
    server.release();
    return std::unexpected(error);
  }
  ::chmod(path.c_str(), mode);
  return server;
}

void ControlServer::on_connection(int status) {
  if (status < 0) return;
  auto client = std::make_unique<Client>();
  client->server = this;
  client->pipe.data = client.get();
  uv_pipe_init(loop_, &client->pipe, 0);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_),
                reinterpret_cast<uv_stream_t*>(&client->pipe)) < 0 ||
      clients_.size() >= kMaxClients) {
    Client* raw = client.get();
    clients_.push_back(std::move(client));
    return close_client(*raw);
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&client->pipe),
      [](uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
        Client* owner = client_of(handle);
        *buffer = uv_buf_init(owner->buffer, sizeof owner->buffer);
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer) {
        Client* owner = client_of(reinterpret_cast<uv_handle_t*>(stream));
        if (nread < 0) return close_client(*owner);
        owner->pending.append(buffer->base, static_cast<std::size_t>(nread));
        for (auto newline = owner->pending.find('\n');
             newline != std::string::npos && !owner->closing; newline = owner->pending.find('\n')) {
          const std::string line = owner->pending.substr(0, newline);
          owner->pending.erase(0, newline + 1);
          owner->server->answer(*owner, line);
        }
        if (owner->pending.size() > kMaxLine) close_client(*owner);
      });
  clients_.push_back(std::move(client));
}

void ControlServer::answer(Client& client, const std::string& line) {
  nlohmann::json reply;
  try {
    const nlohmann::json request = nlohmann::json::parse(line);
    if (!request.is_object() || !request.contains("cmd") || !request["cmd"].is_string()) {
      reply = {{"ok", false}, {"error", "expected a JSON object with a \"cmd\" string"}};
    } else {
      reply = handler_(request);
    }
  } catch (const nlohmann::json::exception& e) {
    reply = {{"ok", false}, {"error", std::string("not JSON: ") + e.what()}};
  }
  auto* write = new WriteRequest;
  write->bytes = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  write->request.data = write;
  uv_buf_t buffer = uv_buf_init(write->bytes.data(), static_cast<unsigned>(write->bytes.size()));
  const int status =
      uv_write(&write->request, reinterpret_cast<uv_stream_t*>(&client.pipe), &buffer, 1,
               [](uv_write_t* request, int) { delete static_cast<WriteRequest*>(request->data); });
  if (status < 0) {
    delete write;
    close_client(client);
  }
}

void ControlServer::on_client_closed(Client* client) {
  std::erase_if(clients_, [client](const auto& owned) { return owned.get() == client; });
  maybe_closed();
}

void ControlServer::on_listener_closed() {
  listener_open_ = false;
  maybe_closed();
}

void ControlServer::close(std::function<void()> done) {
  closed_ = std::move(done);
  auto* listener = reinterpret_cast<uv_handle_t*>(&listener_);
  if (listener_open_ && !uv_is_closing(listener)) {
    if (bound_) ::unlink(path_.c_str());
    uv_close(listener, [](uv_handle_t* handle) {
      static_cast<ControlServer*>(handle->data)->on_listener_closed();
    });
  }
  for (const auto& client : clients_)
    close_client(*client);
  maybe_closed();
}

void ControlServer::maybe_closed() {
  if (listener_open_ || !clients_.empty() || !closed_) return;
  std::exchange(closed_, {})();
}

}  // namespace tunsocks::app
