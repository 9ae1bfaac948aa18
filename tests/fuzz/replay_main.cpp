// Replays fuzz inputs without libFuzzer, so that every normal build runs the committed
// corpus as a regression test: LLVMFuzzerTestOneInput runs once on every file named on the
// command line and on every file in every directory named there. No input at all is a
// failure, so that a wrong corpus path cannot pass.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

bool collect(const fs::path& path, std::vector<fs::path>& inputs) {
  std::error_code error;
  if (fs::is_regular_file(path, error)) {
    inputs.push_back(path);
    return true;
  }
  if (!fs::is_directory(path, error)) return false;
  for (const fs::directory_entry& entry : fs::directory_iterator(path, error)) {
    if (entry.is_regular_file(error)) inputs.push_back(entry.path());
  }
  return !error;
}

int replay(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return -1;
  const std::vector<char> bytes{std::istreambuf_iterator<char>(file),
                                std::istreambuf_iterator<char>()};
  // A block of exactly the input's size, so a sanitizer sees any read past its end.
  const auto copy = std::make_unique<std::uint8_t[]>(bytes.size());
  std::copy(bytes.begin(), bytes.end(), copy.get());
  return LLVMFuzzerTestOneInput(copy.get(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    if (!collect(argv[i], inputs)) {
      std::fprintf(stderr, "replay: cannot read %s\n", argv[i]);
      return 2;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "replay: no inputs\n");
    return 2;
  }
  std::sort(inputs.begin(), inputs.end());
  for (const fs::path& input : inputs) {
    // Named first: a broken invariant traps, and the log must say on which input.
    std::printf("replay: %s\n", input.c_str());
    std::fflush(stdout);
    if (replay(input) != 0) {
      std::fprintf(stderr, "replay: %s failed\n", input.c_str());
      return 1;
    }
  }
  std::printf("replay: %zu inputs passed\n", inputs.size());
  return 0;
}
