// socksd's config loader (src/config/socksd_config.h) on arbitrary text: it either yields a
// config or an error that says what went wrong, and never throws or crashes (nlohmann/json's
// exceptions are the loader's to catch).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/socksd_config.h"
#include "invariants.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using tunsocks::socks::fuzz::expect;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto config = tunsocks::config::parse_socksd_config(text, "fuzz.json");
  if (!config) {
    expect(!config.error().message.empty());
    expect(config.error().to_string().find("fuzz.json") != std::string::npos);
  }
  return 0;
}
