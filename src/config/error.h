// A configuration error: which file, where in it, what was expected. One line when shown.
#pragma once

#include <string>

namespace tunsocks::config {

struct Error {
  std::string file;     // as given to the loader
  std::string path;     // JSON pointer (RFC 6901); empty for the document as a whole
  std::string message;  // what was expected / what went wrong

  // "socksd.json: /rules/2/ports/1: expected ..." (one line).
  [[nodiscard]] std::string to_string() const {
    if (path.empty()) return file + ": " + message;
    return file + ": " + path + ": " + message;
  }
};

}  // namespace tunsocks::config
